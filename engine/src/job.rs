//! Running one job: a source file through one pipeline.
//!
//! The order makes a crash at any moment harmless. Output paths (and the report's and the
//! moved source's) are fixed and recorded before anything is written, so a re-run writes the
//! same files. Every file appears under its final name only when complete (temporary file, sync,
//! rename). The source is moved before the job is marked done; a re-run finds it at its
//! recorded destination. It is deleted only after the done record is committed.

use crate::config::Config;
use crate::encode_thread::export_from;
use crate::pipeline::{Pipeline, QcFail, SourceAction};
use crate::store::{JobRecord, JobState, OutputRecord, Store, now_ms};
use crate::template::{Template, Vars};
use serde::{Deserialize, Serialize};
use sluice_core::analysis::AnalysisOptions;
use sluice_core::analysis::compare::Profile;
use sluice_core::encode::EncodeError;
use sluice_core::encode::tags::TagPlan;
use sluice_core::export::{ExportError, ExportReport, OutputPlan};
use sluice_core::io::AtomicFile;
use sluice_core::render::analyze::{AnalysisTap, Analyze};
use sluice_core::render::matching::MatchTarget;
use sluice_core::render::steps::{
    AnalyzeStep, CompareStep, EffectStep, MatchSource, StageResolver, StepError, StepSpec,
    signal_after,
};
use sluice_core::render::{FileSource, RenderError, Stage};
use sluice_core::{FileInfo, InputError};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// How a job failed, which decides what happens next.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Failure {
    /// Worth another try later (I/O: a full disk, a folder without permission, a network
    /// share that went away).
    Transient(String),
    /// The source itself is bad: retrying cannot help. It goes to quarantine.
    Input(String),
    /// An output failed its delivery QC and the pipeline sets such sources aside (`qc_fail =
    /// "quarantine"`): the source goes to the quarantine's `qc/` folder, apart from the
    /// sources that could not be read.
    Rejected(String),
    /// The source is gone.
    Vanished(String),
    /// An effect failed (trapped, ran out of time or memory, produced NaN) or is missing:
    /// not the source's fault, and the same again would fail the same way.
    Effect(String),
    /// The pipeline asked for something the host refuses (a path out of the root through a
    /// symbolic link): not the source's fault, it stays where it is.
    Refused(String),
    /// The source changed while the job ran (it was still being written, or was replaced):
    /// the job's work is void, and the file is taken again once it settles.
    Changed(String),
    /// The host stopped the job (it is stopping): back in the queue, the attempt not counted.
    Interrupted(String),
}

impl Failure {
    pub fn message(&self) -> &str {
        match self {
            Failure::Transient(m)
            | Failure::Input(m)
            | Failure::Rejected(m)
            | Failure::Vanished(m)
            | Failure::Effect(m)
            | Failure::Refused(m)
            | Failure::Changed(m)
            | Failure::Interrupted(m) => m,
        }
    }
}

/// The opened source, stopping at its next block once the host is stopping ([`Ctx::interrupt`]).
fn stoppable(ctx: &Ctx, opened: Result<FileSource, RenderError>) -> Result<FileSource, Failure> {
    let source = opened.map_err(|e| classify(&ExportError::Render(e)))?;
    Ok(match &ctx.interrupt {
        Some(flag) => {
            let flag = std::sync::Arc::clone(flag);
            source.stop_when(std::sync::Arc::new(move || {
                flag.load(std::sync::atomic::Ordering::Relaxed).then(|| {
                    "the host is stopping; the job runs again at its next start".to_string()
                })
            }))
        }
        None => source,
    })
}

fn classify_input(e: &InputError) -> Failure {
    match e {
        InputError::NotFound { .. } => Failure::Vanished(e.to_string()),
        // The machine's fault, not the file's: worth another try, never quarantine.
        InputError::Io { .. } | InputError::PermissionDenied { .. } => {
            Failure::Transient(e.to_string())
        }
        InputError::Interrupted { .. } => Failure::Interrupted(e.to_string()),
        _ => Failure::Input(e.to_string()),
    }
}

/// How an export failed. Only a fault of the source itself is bad input (quarantined); any
/// failure with an I/O error underneath (a full disk or quota, a file too large, an I/O error,
/// a permission), wherever it surfaced (an encoder, its thread, the tags, the commit), is an
/// I/O failure: retried, then failed, the source left where it is.
fn classify(e: &ExportError) -> Failure {
    match e {
        ExportError::Render(RenderError::Input(i)) => classify_input(i),
        ExportError::Render(RenderError::Stage { .. }) | ExportError::Step(_) => {
            Failure::Effect(e.to_string())
        }
        ExportError::Render(RenderError::Encode(EncodeError::Io { .. }))
        | ExportError::Encode(EncodeError::Io { .. }) => Failure::Transient(e.to_string()),
        _ if sluice_core::encode::io_cause(e).is_some() => Failure::Transient(e.to_string()),
        _ => Failure::Input(e.to_string()),
    }
}

/// Everything a job needs from the host.
pub struct Ctx<'a> {
    pub cfg: &'a Config,
    pub store: &'a Store,
    pub effects: &'a crate::effects::Catalog,
    /// Where a render's progress goes (at most about once a second) instead of the job's
    /// record in `store`: a farm worker's renders report to their ingest node.
    pub progress: Option<&'a (dyn Fn(f64) + Sync)>,
    /// Set when the host is stopping: a render under way ends at its next block with
    /// [`Failure::Interrupted`] (the job goes back to the queue), so the host stops promptly.
    pub interrupt: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    /// The profiles compare and match steps name, as another node's library gave them (a
    /// farm worker's renders: its own library is not the ingest node's); otherwise they come
    /// from `store`'s library.
    pub profiles: Option<&'a [SentProfile]>,
}

/// A compare or match step's target (`MatchSource`'s words: "genre techno") and the profile
/// the library gave for it, or why it gave none.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct SentProfile {
    pub target: String,
    pub profile: Result<Profile, NoProfile>,
}

/// Why there is no profile for a target, in the library's words (they cross the farm's wire).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, thiserror::Error)]
#[serde(transparent)]
#[error("{0}")]
pub struct NoProfile(pub String);

/// The profiles `p`'s compare and match steps name, from `store`'s library (for a job that
/// runs on another node).
pub fn profiles_for(p: &Pipeline, store: &Store) -> Vec<SentProfile> {
    let mut out: Vec<SentProfile> = Vec::new();
    for s in &p.steps {
        let source = match s {
            StepSpec::Compare(c) => &c.target,
            StepSpec::Match(m) => &m.target,
            _ => continue,
        };
        let target = match source {
            MatchSource::Genre(g) => crate::library::Target::Genre(g.clone()),
            MatchSource::Reference(r) => crate::library::Target::Reference(r.clone()),
            MatchSource::Given(_) => continue,
        };
        let key = source.to_string();
        if out.iter().any(|s| s.target == key) {
            continue;
        }
        out.push(SentProfile {
            target: key,
            profile: crate::library::profile(store, &target).map_err(|e| NoProfile(e.to_string())),
        });
    }
    out
}

/// The job's report file.
#[derive(Serialize)]
struct Report<'a> {
    job: u64,
    pipeline: &'a str,
    pipeline_version: &'a str,
    input: &'a Path,
    content_hash: &'a str,
    started: String,
    finished: String,
    source: &'a sluice_core::StreamInfo,
    tags: &'a sluice_core::tags::Tags,
    analysis: Option<&'a sluice_core::analysis::AnalysisReport>,
    /// The compare step's comparison with its reference or genre.
    #[serde(skip_serializing_if = "Option::is_none")]
    comparison: Option<&'a sluice_core::analysis::compare::Comparison>,
    export: Option<&'a ExportReport>,
    outputs: &'a [OutputRecord],
    source_now: Option<&'a Path>,
    warnings: Vec<String>,
}

fn tag_map(info: &FileInfo) -> BTreeMap<String, String> {
    let t = &info.tags;
    let mut m = BTreeMap::new();
    let mut put = |k: &str, v: Option<String>| {
        if let Some(v) = v.filter(|v| !v.trim().is_empty()) {
            m.insert(k.to_string(), v);
        }
    };
    put("title", t.title.clone());
    put("artist", t.artist.clone());
    put("album", t.album.clone());
    put("album_artist", t.album_artist.clone());
    put("genre", t.genre.clone());
    put(
        "year",
        t.year
            .map(|y| y.to_string())
            .or_else(|| t.date.as_ref().map(|d| d.chars().take(4).collect())),
    );
    put("track", t.track.map(|n| format!("{n:02}")));
    put("disc", t.disc.map(|n| n.to_string()));
    put("isrc", t.isrc.clone());
    put("bpm", t.bpm.map(|b| format!("{}", b.round())));
    put("initial_key", t.initial_key.clone());
    put("comment", t.comment.clone());
    m
}

/// `a/b/name.ext` → `a/b/name (n).ext`.
fn numbered(p: &Path, n: u32) -> PathBuf {
    let stem = p
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = match p.extension() {
        Some(e) => format!("{stem} ({n}).{}", e.to_string_lossy()),
        None => format!("{stem} ({n})"),
    };
    p.with_file_name(name)
}

/// Move `from` to `to` (no clobbering), across file systems if need be. Nothing at `to` is ever
/// replaced, however late it appeared: a hard link fails on any name that is taken (a file, a
/// folder, a link, even a dangling one), and only then is the source's own name removed.
pub fn move_file(from: &Path, to: &Path) -> std::io::Result<()> {
    if let Some(dir) = to.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let taken = || {
        std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            format!("{} exists", to.display()),
        )
    };
    match std::fs::hard_link(from, to) {
        Ok(()) => {
            if let Err(e) = std::fs::remove_file(from) {
                // Not moved after all: one name, as before.
                let _ = std::fs::remove_file(to);
                return Err(e);
            }
            return Ok(());
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Err(taken()),
        Err(e) if e.kind() == std::io::ErrorKind::CrossesDevices => {}
        // A file system without hard links: checked, then renamed.
        Err(_) => {
            if to.symlink_metadata().is_ok() {
                return Err(taken());
            }
            match std::fs::rename(from, to) {
                Err(e) if e.kind() == std::io::ErrorKind::CrossesDevices => {}
                r => return r,
            }
        }
    }
    // Another file system: copy to a temporary beside the destination, then link it into
    // place (AtomicFile without overwrite refuses a name taken meanwhile).
    let (atomic, mut f) = AtomicFile::create(to, false).map_err(|e| e.source)?;
    std::io::copy(&mut std::fs::File::open(from)?, &mut f)?;
    drop(f);
    atomic.commit().map_err(|e| e.source)?;
    std::fs::remove_file(from)
}

/// Run `job` (already marked running) through `p`. Returns the job as recorded at the end.
pub fn run(ctx: &Ctx, p: &Pipeline, job: JobRecord) -> JobRecord {
    let id = job.id;
    let result = attempt(ctx, p, job.clone());
    let job_now = ctx.store.job(id).ok().flatten().unwrap_or(job);
    match result {
        Ok(j) => j,
        Err(f) => fail(ctx, p, job_now, f),
    }
}

/// Job `id` names pipeline `pipeline`, which is not loaded (removed, or invalid now): it goes
/// back to the queue for 30 s without counting as an attempt (off the farm if it was out), and
/// runs once the pipeline is back.
pub fn wait_for_pipeline(
    store: &Store,
    id: u64,
    pipeline: &str,
) -> Result<JobRecord, crate::store::StoreError> {
    store.update_job(
        id,
        Some((
            crate::store::EventKind::Waiting,
            format!("pipeline {pipeline} is not loaded (removed or invalid): waiting"),
        )),
        |j| {
            j.state = JobState::Queued;
            j.ran_on = None;
            j.attempts = j.attempts.saturating_sub(1);
            j.not_before_ms = now_ms() + 30_000;
        },
    )
}

/// Quarantine the source of a job that is not to run again on its own (`msg` says why), as
/// bad input is.
pub fn give_up(ctx: &Ctx, p: &Pipeline, job: JobRecord, msg: String) -> JobRecord {
    fail(ctx, p, job, Failure::Input(msg))
}

/// Record a failure: retry later, or fail, or quarantine the source.
fn fail(ctx: &Ctx, p: &Pipeline, job: JobRecord, f: Failure) -> JobRecord {
    let id = job.id;
    let msg = f.message().to_string();
    tracing::warn!(job = id, pipeline = %p.name, "{msg}");
    if let Failure::Interrupted(_) = f {
        return ctx
            .store
            .update_job(
                id,
                Some((crate::store::EventKind::Interrupted, msg.clone())),
                |j| {
                    j.state = JobState::Queued;
                    j.attempts = j.attempts.saturating_sub(1);
                    j.progress = 0.0;
                    j.not_before_ms = now_ms();
                },
            )
            .unwrap_or_else(|e| {
                tracing::error!(job = id, "cannot put the job back in the queue: {e}");
                job.clone()
            });
    }
    if let Failure::Changed(_) = f {
        remove_committed(ctx, p, &job);
        return ctx.store.invalidate(id, msg).unwrap_or_else(|e| {
            tracing::error!(job = id, "cannot record the failure: {e}");
            job.clone()
        });
    }
    if !matches!(f, Failure::Transient(_) if job.attempts <= p.retries) {
        remove_committed(ctx, p, &job);
    }
    let store = ctx.store;
    let update = |state: JobState,
                  kind: crate::store::EventKind,
                  extra: &str,
                  not_before: i64,
                  source_now: Option<PathBuf>| {
        store
            .update_job(id, Some((kind, format!("{msg}{extra}"))), |j| {
                j.state = state;
                j.error = Some(msg.clone());
                j.not_before_ms = not_before;
                j.finished_ms = (state != JobState::Queued).then(now_ms);
                if source_now.is_some() {
                    j.source_now = source_now.clone();
                }
            })
            .unwrap_or_else(|e| {
                tracing::error!(job = id, "cannot record the failure: {e}");
                job.clone()
            })
    };
    match f {
        Failure::Transient(_) if job.attempts <= p.retries => {
            // 2 s, 4 s, 8 s... up to 5 minutes.
            let wait = (2_000i64 << job.attempts.saturating_sub(1).min(8)).min(300_000);
            update(
                JobState::Queued,
                crate::store::EventKind::RetryScheduled,
                &format!(
                    " (attempt {} of {}; next in {} s)",
                    job.attempts,
                    p.retries + 1,
                    wait / 1000
                ),
                now_ms() + wait,
                None,
            )
        }
        Failure::Transient(_)
        | Failure::Vanished(_)
        | Failure::Effect(_)
        | Failure::Refused(_)
        | Failure::Changed(_)
        | Failure::Interrupted(_) => update(
            JobState::Failed,
            crate::store::EventKind::Failed,
            "",
            0,
            None,
        ),
        Failure::Input(_) | Failure::Rejected(_) => {
            match quarantine(ctx, p, &job, &msg, matches!(f, Failure::Rejected(_))) {
                Ok(rel) => update(
                    JobState::Quarantined,
                    crate::store::EventKind::Quarantined,
                    &format!(" (source moved to {})", rel.display()),
                    0,
                    Some(rel),
                ),
                Err(why) => update(
                    JobState::Failed,
                    crate::store::EventKind::Failed,
                    &format!(" ({why})"),
                    0,
                    None,
                ),
            }
        }
    }
}

/// Why a source could not be quarantined (added to its failure's message).
#[derive(Debug, thiserror::Error)]
enum Unquarantined {
    #[error("the source could not be moved to quarantine: {0}")]
    Folder(String),
    #[error("the source could not be moved to quarantine")]
    Source,
    #[error("the source stays where it is: it is outside the root")]
    Outside,
}

/// The source of `job` moved to the pipeline's quarantine folder (under a free name; its `qc/`
/// part for a source set aside by its outputs' QC, `rejected`), with its error (`msg`)
/// written beside it: where it went, relative to the root.
fn quarantine(
    ctx: &Ctx,
    p: &Pipeline,
    job: &JobRecord,
    msg: &str,
    rejected: bool,
) -> Result<PathBuf, Unquarantined> {
    // A file given to `sluice run` from outside the root is the user's: never moved.
    if job.input.is_absolute() {
        return Err(Unquarantined::Outside);
    }
    let src = ctx.cfg.root.join(&job.input);
    let name = job
        .input
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "source".into());
    let mut dir = ctx
        .cfg
        .quarantine_dir
        .join(crate::template::sanitize(&p.name));
    if rejected {
        dir.push("qc");
    }
    let confined = dir
        .strip_prefix(&ctx.cfg.root)
        .map_err(|_| "the quarantine folder is outside the root".to_string())
        .and_then(|rel| {
            crate::confine::prepare(&ctx.cfg.root, &rel.join("x")).map_err(|e| e.to_string())
        });
    if let Err(e) = confined {
        return Err(Unquarantined::Folder(e));
    }
    let mut dest = dir.join(&name);
    let mut n = 2;
    while dest.exists() {
        dest = numbered(&dir.join(&name), n);
        n += 1;
    }
    let moved = src.exists() && move_file(&src, &dest).is_ok();
    let error_file = PathBuf::from(format!("{}.error.json", dest.display()));
    let record = serde_json::json!({
        "job": job.id,
        "pipeline": p.name,
        "source": job.input,
        "error": msg,
        "attempts": job.attempts,
        "time": jiff::Timestamp::now().to_string(),
    });
    let _ = AtomicFile::write(
        &error_file,
        serde_json::to_string_pretty(&record)
            .unwrap_or_default()
            .as_bytes(),
    );
    if !moved {
        return Err(Unquarantined::Source);
    }
    Ok(dest
        .strip_prefix(&ctx.cfg.root)
        .map(Path::to_path_buf)
        .unwrap_or(dest))
}

/// A job that ends failed keeps no outputs: what an attempt of it committed before a later
/// step failed (outputs, report) is removed. Its planned paths were free when they were
/// planned, so whatever is there now is its own.
fn remove_committed(ctx: &Ctx, p: &Pipeline, job: &JobRecord) {
    // Not the move destination (the layout as planned; from before it was kept, the
    // pipeline's).
    let n = if job.planned_for.is_some() {
        job.planned.len() - usize::from(job.planned_move)
    } else {
        p.outputs.len() + p.qc_pages() + usize::from(p.report.is_some())
    };
    for rel in job.planned.iter().take(n) {
        let path = match crate::confine::resolve(&ctx.cfg.root, rel) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(job = job.id, "not removed: {e}");
                continue;
            }
        };
        match std::fs::remove_file(&path) {
            Ok(()) => tracing::info!(
                job = job.id,
                "{}: removed, as the job did not finish",
                path.display()
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(job = job.id, "{}: cannot remove: {e}", path.display()),
        }
    }
}

/// Builds a job's effect and analyze steps for the core's step builder: effects from the
/// catalog as it is now (their parameters resolved against the effect's descriptor), the
/// analysis as a tap given to the first chain that has the step (the shared chain, or after
/// a per-output split the first output's).
struct JobResolver<'a> {
    effects: &'a crate::effects::Catalog,
    /// Where the pipeline's data files are.
    root: &'a Path,
    /// The root's reference library, for match steps.
    store: &'a Store,
    /// Profiles given with the job (see [`Ctx::profiles`]).
    profiles: Option<&'a [SentProfile]>,
    /// The source, its stream, and its length when the tap sees the source as it is.
    analysis: Option<(PathBuf, sluice_core::StreamInfo, Option<u64>)>,
    tap: Option<AnalysisTap>,
    /// The source and its stream, for a compare step's tap.
    source: (PathBuf, sluice_core::StreamInfo),
    /// The compare step's tap and the profile it compares with.
    compare: Option<(AnalysisTap, Profile, CompareStep)>,
}

impl StageResolver for JobResolver<'_> {
    fn effect(&mut self, step: &EffectStep) -> Result<Box<dyn Stage>, StepError> {
        crate::effects::stage_for(self.effects, step, Some(self.root))
    }

    fn analyze(&mut self, step: &AnalyzeStep) -> Option<Box<dyn Stage>> {
        let (path, stream, frames_hint) = self.analysis.take()?;
        let opts = AnalysisOptions {
            sections: step.sections.clone(),
            tempo_range: step.tempo_range,
            ..AnalysisOptions::default()
        };
        let (stage, tap) = Analyze::new(opts, path, stream, frames_hint);
        self.tap = Some(tap);
        Some(Box::new(stage))
    }

    fn compare(&mut self, step: &CompareStep) -> Result<Box<dyn Stage>, StepError> {
        let target = match &step.target {
            MatchSource::Genre(g) => crate::library::Target::Genre(g.clone()),
            MatchSource::Reference(r) => crate::library::Target::Reference(r.clone()),
            MatchSource::Given(_) => {
                return Err(StepError::Compare {
                    target: step.target.to_string(),
                    message: "compares with a reference or a genre of the library".into(),
                });
            }
        };
        let profile = self
            .profile(&step.target, &target)
            .map_err(|e| StepError::Compare {
                target: step.target.to_string(),
                message: e.0,
            })?;
        let (path, stream) = self.source.clone();
        let (stage, tap) = Analyze::new(crate::library::signature_options(), path, stream, None);
        self.compare = Some((tap, profile, step.clone()));
        Ok(Box::new(stage))
    }

    fn match_target(&mut self, source: &MatchSource) -> Result<MatchTarget, StepError> {
        let refused = |message: String| StepError::Match {
            target: source.to_string(),
            message,
        };
        let target = match source {
            MatchSource::Given(t) => return Ok(t.clone()),
            MatchSource::Reference(r) => crate::library::Target::Reference(r.clone()),
            MatchSource::Genre(g) => crate::library::Target::Genre(g.clone()),
        };
        let p = self.profile(source, &target).map_err(|e| refused(e.0))?;
        Ok(crate::library::match_target_of(&p))
    }
}

impl JobResolver<'_> {
    /// The profile `source` names: given with the job, or from the root's library.
    fn profile(
        &self,
        source: &MatchSource,
        target: &crate::library::Target,
    ) -> Result<Profile, NoProfile> {
        match self.profiles {
            Some(given) => given
                .iter()
                .find(|s| s.target == source.to_string())
                .map(|s| s.profile.clone())
                .unwrap_or_else(|| {
                    Err(NoProfile(format!(
                        "no profile for {source} was sent with the job"
                    )))
                }),
            None => {
                crate::library::profile(self.store, target).map_err(|e| NoProfile(e.to_string()))
            }
        }
    }
}

fn io_failure(path: &Path, e: std::io::Error) -> Failure {
    Failure::Transient(format!("{}: {e}", path.display()))
}

/// A path [`crate::confine`] refused: a refusal, or an I/O failure worth retrying.
impl From<crate::confine::ConfineError> for Failure {
    fn from(e: crate::confine::ConfineError) -> Failure {
        if e.is_io() {
            Failure::Transient(e.to_string())
        } else {
            Failure::Refused(e.to_string())
        }
    }
}

/// `root/rel`, its folders made, confined to the root (see [`crate::confine`]).
fn confined(root: &Path, rel: &Path) -> Result<PathBuf, Failure> {
    Ok(crate::confine::prepare(root, rel)?)
}

/// The source must be what was taken, complete: no program holds it open for writing and its
/// content hash is the one the job was made for. Checked after the render, before anything is
/// final (report, source moved, job done): a file that changed under the job voids it.
fn unchanged(source: &Path, job: &JobRecord) -> Result<(), Failure> {
    let changed = |why: String| {
        Failure::Changed(format!(
            "{}: {why} while the job ran; its outputs were removed and the file is taken again once it is complete",
            source.display()
        ))
    };
    if crate::writers::is_being_written(source) {
        return Err(changed("still open for writing by another program".into()));
    }
    match crate::digest::hash_file(source) {
        Ok(h) if h == job.content_hash => Ok(()),
        Ok(_) => Err(changed("the content changed".into())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_failure(source, e)),
    }
}

/// A job planned under another version of its pipeline (cut short, then the pipeline edited)
/// gives up the paths planned for the old version, to be planned afresh for the pipeline as it
/// is now: the old names may carry another format (an MP3 under a `.flac` name), and read with
/// the new version's layout they would put an output where the old version moved the source.
/// What the earlier run wrote under the old names is removed — they were free when planned, so
/// what is there is its own — but never the old version's move destination, nor a file with
/// the source's content. When the earlier run had already moved the source (cut short between
/// the move and the job's end), the job goes on from there: that place becomes `source_now`.
/// A job whose source is nowhere (at its input, moved, or quarantined) is left as it is, for
/// [`locate`] to fail.
fn replan_if_edited(ctx: &Ctx, p: &Pipeline, job: JobRecord) -> Result<JobRecord, Failure> {
    let root = &ctx.cfg.root;
    if job.planned.is_empty() || job.planned_version() == p.hash {
        return Ok(job);
    }
    // Only a regular file (not a link, nor a FIFO that would block the read) is looked at.
    let content = |rel: &Path| {
        let path = crate::confine::resolve(root, rel).ok()?;
        let regular = std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_file());
        let hash = regular.then(|| crate::digest::hash_file(&path).ok())??;
        Some((path, hash))
    };
    // A record from before the layout was kept cannot say whether its last path is where the
    // source was to go: that one is never removed as written.
    let legacy = job.planned_for.is_none();
    let written = job.planned.len() - usize::from(job.planned_move || legacy);
    let moved = if root.join(&job.input).exists() {
        None
    } else {
        // Where the old version moved it (with a record from before the layout was kept,
        // whichever old name holds the source's content).
        let candidates = if job.planned_move {
            &job.planned[written..]
        } else {
            &job.planned[..]
        };
        let here = candidates
            .iter()
            .find(|rel| content(rel).is_some_and(|(_, h)| h == job.content_hash))
            .cloned();
        let elsewhere = job
            .source_now
            .as_ref()
            .is_some_and(|r| root.join(r).exists());
        if here.is_none() && !elsewhere {
            return Ok(job);
        }
        here
    };
    for rel in &job.planned[..written] {
        let Some((path, hash)) = content(rel) else {
            continue;
        };
        if hash == job.content_hash {
            continue;
        }
        match std::fs::remove_file(&path) {
            Ok(()) => tracing::info!(
                job = job.id,
                "{}: removed, written for an earlier version of pipeline {}",
                path.display(),
                p.name
            ),
            Err(e) => tracing::warn!(job = job.id, "{}: cannot remove: {e}", path.display()),
        }
    }
    let from = moved
        .as_ref()
        .map(|m| {
            format!(
                "; the source is in {}, where that version moved it",
                m.display()
            )
        })
        .unwrap_or_default();
    ctx.store
        .update_job(
            job.id,
            Some((
                crate::store::EventKind::Note,
                format!(
                    "pipeline {} changed since this job's paths were planned (version {}): planned again for version {}{from}",
                    p.name,
                    job.planned_version(),
                    p.hash
                ),
            )),
            |j| {
                j.unplan();
                if moved.is_some() {
                    j.source_now = moved.clone();
                }
            },
        )
        .map_err(|e| Failure::Transient(e.to_string()))
}

/// One attempt at a job, in phases: find the source ([`locate`]), open its one decoder, fix
/// the paths ([`plan_paths`], once), [`render`] the outputs and the analysis, and [`finish`]
/// (report, source moved, done).
fn attempt(ctx: &Ctx, p: &Pipeline, job: JobRecord) -> Result<JobRecord, Failure> {
    let started = jiff::Timestamp::now();
    let job = replan_if_edited(ctx, p, job)?;
    let source = locate(ctx, p, &job)?;
    // The one decoder of the job: its format facts and tags now, its audio in the render.
    let file_source = stoppable(ctx, FileSource::open(&source))?;
    let info = match file_source.decoder() {
        Some(d) => sluice_core::info_of(d).map_err(|e| classify_input(&e))?,
        None => unreachable!("a source just opened has its decoder"),
    };
    // Fix the paths once, reserved in the store.
    let job = if job.planned.is_empty() {
        plan_paths(ctx, p, &job, &tag_map(&info)).map_err(|e| Failure::Transient(e.to_string()))?
    } else {
        job
    };
    let paths = Paths::of(ctx, p, &job)?;
    let rendition = render(ctx, p, &job, &source, file_source, &info, &paths)?;
    finish(
        ctx,
        p,
        job,
        Finished {
            started,
            source,
            paths,
            rendition,
        },
    )
}

/// What a render leaves, as the report and the job record take it: made here, or by a cluster
/// worker, which sends it back (its paths then under the worker's folder for the job, see
/// [`Rendition::moved`]). Every report in it is the core's type, as the report file shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Rendition {
    /// The export's report (with its outputs and their QC), when the pipeline has outputs.
    pub export: Option<ExportReport>,
    /// Per output, in order: its size and its format's extension.
    pub outputs: Vec<(u64, String)>,
    pub analysis: Option<sluice_core::analysis::AnalysisReport>,
    pub comparison: Option<sluice_core::analysis::compare::Comparison>,
    /// The source's stream as it was read to the end (its decoded length, any damage).
    pub source: sluice_core::StreamInfo,
    pub tags: sluice_core::tags::Tags,
    /// The file index's loudness of the file as it arrived (an analysis at the head).
    pub index: Option<IndexLoudness>,
    pub warnings: Vec<String>,
    /// The outputs' BLAKE3 hashes when they are known already (a farm's outputs, checked as
    /// they were fetched): not read again to hash them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hashes: Vec<String>,
}

/// The loudness the file index keeps for a file, from an analysis at the head of its job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexLoudness {
    pub integrated_lufs: Option<f64>,
    pub loudness_range_lu: Option<f64>,
    pub true_peak_dbtp: Option<f64>,
    pub analysed_ms: i64,
}

impl Rendition {
    /// The same with every path under `from` (the folder it was rendered in) under `to`:
    /// the reports' path fields moved as paths; the warnings, which are prose naming paths,
    /// with the folder's name replaced where it begins a path.
    pub fn moved(mut self, from: &Path, to: &Path) -> Rendition {
        let m = Mover { from, to };
        if let Some(e) = &mut self.export {
            m.path(&mut e.input);
            m.texts(&mut e.warnings);
            for s in &mut e.stages {
                m.texts(&mut s.warnings);
            }
            for o in &mut e.outputs {
                m.path(&mut o.path);
                for s in &mut o.stages {
                    m.texts(&mut s.warnings);
                }
            }
        }
        if let Some(a) = &mut self.analysis {
            m.path(&mut a.path);
            m.texts(&mut a.stream.warnings);
        }
        m.texts(&mut self.source.warnings);
        m.texts(&mut self.warnings);
        self
    }
}

/// Moves paths from one folder to another (see [`Rendition::moved`]).
struct Mover<'a> {
    from: &'a Path,
    to: &'a Path,
}

impl Mover<'_> {
    fn path(&self, p: &mut PathBuf) {
        if let Ok(rel) = p.strip_prefix(self.from) {
            // (Joining an empty path would end it with a separator.)
            *p = if rel.as_os_str().is_empty() {
                self.to.to_path_buf()
            } else {
                self.to.join(rel)
            };
        }
    }

    fn texts(&self, texts: &mut [String]) {
        let (from, to) = (self.from.to_string_lossy(), self.to.to_string_lossy());
        for t in texts {
            if t.contains(&*from) {
                *t = t.replace(&*from, &to);
            }
        }
    }
}

/// The render of `job` (its paths planned) from `source`, for a cluster worker: every output
/// written where `job.planned` puts it under `ctx`'s root, nothing recorded.
pub fn render_detached(
    ctx: &Ctx,
    p: &Pipeline,
    job: &JobRecord,
    source: &Path,
) -> Result<Rendition, Failure> {
    let file_source = stoppable(ctx, FileSource::open(source))?;
    let info = match file_source.decoder() {
        Some(d) => sluice_core::info_of(d).map_err(|e| classify_input(&e))?,
        None => unreachable!("a source just opened has its decoder"),
    };
    let paths = Paths::of(ctx, p, job)?;
    render(ctx, p, job, source, file_source, &info, &paths)
}

/// For a job run elsewhere (a cluster worker): its source found and its paths fixed and
/// reserved, as a local run does first. Returns the job as planned and where the source is.
pub fn plan_detached(
    ctx: &Ctx,
    p: &Pipeline,
    job: &JobRecord,
) -> Result<(JobRecord, PathBuf), Failure> {
    let job = replan_if_edited(ctx, p, job.clone())?;
    let source = locate(ctx, p, &job)?;
    let info = sluice_core::info(&source, &Default::default()).map_err(|e| classify_input(&e))?;
    let job = if job.planned.is_empty() {
        plan_paths(ctx, p, &job, &tag_map(&info)).map_err(|e| Failure::Transient(e.to_string()))?
    } else {
        job
    };
    Ok((job, source))
}

/// The end of a job rendered elsewhere: its outputs already in place (see
/// [`crate::cluster`]), the report written, the source moved, the job done; or, on a
/// failure, what a local failure does. Returns the job as recorded.
pub fn finish_detached(
    ctx: &Ctx,
    p: &Pipeline,
    job: JobRecord,
    started: jiff::Timestamp,
    rendition: Result<Rendition, Failure>,
) -> JobRecord {
    let id = job.id;
    let result = rendition.and_then(|rendition| {
        // The pipeline as loaded now must have the paths the job was planned with.
        if job.planned.len() != p.planned_len() || rendition.outputs.len() != p.outputs.len() {
            return Err(Failure::Refused(format!(
                "{}: pipeline {} changed while the job was out on the farm (its outputs no longer match): `sluice retry {id}` runs it with the pipeline as it is now",
                job.input.display(),
                p.name
            )));
        }
        let source = locate(ctx, p, &job)?;
        let paths = Paths::of(ctx, p, &job)?;
        finish(
            ctx,
            p,
            job.clone(),
            Finished {
                started,
                source,
                paths,
                rendition,
            },
        )
    });
    match result {
        Ok(j) => j,
        Err(f) => {
            let job_now = ctx.store.job(id).ok().flatten().unwrap_or(job);
            fail(ctx, p, job_now, f)
        }
    }
}

/// A failure of a job that ran elsewhere, recorded as a local one is (retry, fail or
/// quarantine).
pub fn fail_detached(ctx: &Ctx, p: &Pipeline, job: JobRecord, f: Failure) -> JobRecord {
    fail(ctx, p, job, f)
}

/// Where the job's source is: where it arrived, or, after a crash between moving it and
/// marking the job done, where it was moved to; a retried quarantined job reads it from
/// quarantine.
fn locate(ctx: &Ctx, p: &Pipeline, job: &JobRecord) -> Result<PathBuf, Failure> {
    let root = &ctx.cfg.root;
    let arrived = root.join(&job.input);
    if arrived.exists() {
        return Ok(arrived);
    }
    let quarantined = job.source_now.as_ref().map(|r| root.join(r));
    let moved = Paths::move_to(root, p, &job.planned);
    quarantined
        .into_iter()
        .chain(moved)
        .find(|q| q.exists())
        .ok_or_else(|| {
            Failure::Vanished(format!(
                "{}: the source is gone (moved or deleted before it was processed)",
                arrived.display()
            ))
        })
}

/// A planned job's files, absolute.
struct Paths {
    outputs: Vec<PathBuf>,
    /// Per output, where its QC report page goes (`qc_report`).
    qc_pages: Vec<Option<PathBuf>>,
    report: Option<PathBuf>,
    /// Where the source goes, when the pipeline moves it.
    move_to: Option<PathBuf>,
}

impl Paths {
    /// The planned paths are the outputs', then their QC pages', then the report's, then the
    /// moved source's. Paths planned for another layout are refused, never misread.
    fn of(ctx: &Ctx, p: &Pipeline, job: &JobRecord) -> Result<Paths, Failure> {
        if job.planned.len() != p.planned_len() {
            return Err(Failure::Refused(format!(
                "{}: its {} planned paths do not fit pipeline {} as it is now ({} paths): `sluice retry {}` plans it afresh",
                job.input.display(),
                job.planned.len(),
                p.name,
                p.planned_len(),
                job.id
            )));
        }
        let root = &ctx.cfg.root;
        let n = p.outputs.len();
        let mut page = n;
        let qc_pages = p
            .outputs
            .iter()
            .map(|o| {
                o.qc_page().map(|_| {
                    page += 1;
                    root.join(&job.planned[page - 1])
                })
            })
            .collect();
        Ok(Paths {
            outputs: job.planned[..n].iter().map(|r| root.join(r)).collect(),
            qc_pages,
            report: p.report.as_ref().map(|_| root.join(&job.planned[page])),
            move_to: Paths::move_to(root, p, &job.planned),
        })
    }

    fn move_to(root: &Path, p: &Pipeline, planned: &[PathBuf]) -> Option<PathBuf> {
        match &p.source {
            SourceAction::Move(_) => planned.last().map(|r| root.join(r)),
            _ => None,
        }
    }
}

/// Every output's plan: its format resolved against the signal arriving (adjustments noted
/// in `warnings`), its path confined to the root.
fn output_plans(
    ctx: &Ctx,
    p: &Pipeline,
    source: &Path,
    info: &FileInfo,
    paths: &Paths,
    warnings: &mut Vec<String>,
) -> Result<Vec<OutputPlan>, Failure> {
    let root = &ctx.cfg.root;
    let (src_rate, src_channels) = (info.stream.sample_rate, info.stream.channels as usize);
    let (rate, channels) = signal_after(&p.steps, src_rate, src_channels);
    let int_bits = info.stream.integer_bits();
    let mut plans = Vec::with_capacity(p.outputs.len());
    for (o, path) in p.outputs.iter().zip(&paths.outputs) {
        let out_channels = o.channels.as_ref().map(|m| m.channels_after(channels));
        let arriving = sluice_core::formats::Arriving {
            sample_rate: o.sample_rate.unwrap_or(rate),
            channels: out_channels.unwrap_or(channels),
            int_bits,
            float: info.stream.sample_type == Some(sluice_core::decode::SampleType::Float),
        };
        let resolved = sluice_core::formats::resolve(&o.format, &arriving, o.sample_rate.is_some())
            .map_err(|e| Failure::Input(format!("{}: {e}", source.display())))?;
        warnings.extend(
            resolved
                .notes
                .iter()
                .map(|n| format!("{}: {n}", path.display())),
        );
        confined(root, path.strip_prefix(root).unwrap_or(path))?;
        plans.push(OutputPlan {
            path: path.clone(),
            format: resolved.format,
            dither: o.dither,
            tags: TagPlan {
                carry_from: o.keep_tags.then(|| source.to_path_buf()),
                set: o.tags.clone(),
                replaygain: o.replaygain,
            },
            bext: o.bext,
            // These paths belong to this job (fixed before the first attempt).
            overwrite: true,
            channels: resolved.channels.or_else(|| o.channels.clone()),
            sample_rate: resolved
                .sample_rate
                .or(o.sample_rate.filter(|&r| r != rate)),
            true_peak_check: o.true_peak_check,
            max_encodes: o.true_peak_encodes,
        });
    }
    Ok(plans)
}

/// The render: every step in order, the analysis a tap at its position; with no outputs the
/// chain still runs when there is an analysis to make. The file index keeps the loudness of
/// the file as it arrived (an analysis at the head).
#[allow(clippy::too_many_arguments)]
fn render(
    ctx: &Ctx,
    p: &Pipeline,
    job: &JobRecord,
    source: &Path,
    file_source: FileSource,
    info: &FileInfo,
    paths: &Paths,
) -> Result<Rendition, Failure> {
    let mut warnings = Vec::new();
    let warnings = &mut warnings;
    let analyzes = p.analyze().is_some();
    // The tap at the head sees the source as it is: its length is known in advance.
    let analysis_at_head = matches!(p.steps.first(), Some(StepSpec::Analyze(_)));
    let mut resolver = JobResolver {
        effects: ctx.effects,
        root: &ctx.cfg.root,
        store: ctx.store,
        profiles: ctx.profiles,
        analysis: analyzes.then(|| {
            (
                source.to_path_buf(),
                info.stream.clone(),
                info.stream.frames.filter(|_| analysis_at_head),
            )
        }),
        tap: None,
        source: (source.to_path_buf(), info.stream.clone()),
        compare: None,
    };
    let compares = p.steps.iter().any(|s| matches!(s, StepSpec::Compare(_)));
    let export = if !p.outputs.is_empty() || analyzes || compares {
        let plans = output_plans(ctx, p, source, info, paths, warnings)?;
        // The steps in order; the core moves the normalize step and those after it into
        // every output's own chain when an output maps its channels itself (`channels =
        // "mono"`, or MP3's downmix), so loudness is measured on what each output receives.
        // (`check` refuses a channels step after normalize.)
        let mut progress = Progress::new(ctx, job.id);
        let base = progress.base;
        let mut prepasses = false;
        let steps = p.steps_for(job.album.as_ref());
        let report = export_from(file_source, &steps, &mut resolver, &plans, &mut |pr| {
            let frac = pr.total.map_or(0.0, |t| pr.frames as f64 / t.max(1) as f64);
            prepasses |= !pr.final_pass;
            let within = match (pr.final_pass, prepasses) {
                (true, true) => 0.5 + 0.5 * frac,
                (true, false) => frac,
                (false, _) => 0.5 * frac,
            };
            progress.set(base + (0.98 - base) * within);
        })
        .map_err(|e| classify(&e))?;
        ceilings_met(p, &report)?;
        // With them, every output measured as written: one that misses the loudness
        // target says so.
        warnings.extend(report.warnings.iter().cloned());
        let judged = quality_checked(p, &report, &ctx.cfg.root, &paths.qc_pages, warnings)?;
        Some((report, judged))
    } else {
        None
    };
    let (export, judged) = match export {
        Some((report, judged)) => (Some(report), judged),
        None => (None, Vec::new()),
    };
    // The source as it was read to the end (its decoded length, any truncation or damage).
    let source_stream = export
        .as_ref()
        .and_then(|e| e.source.clone())
        .unwrap_or_else(|| info.stream.clone());
    let analysis = resolver.tap.and_then(|t| t.take()).map(|mut a| {
        a.stream = sluice_core::render::analyze::measured(&source_stream, &a.stream);
        a
    });
    let index = analysis
        .as_ref()
        .filter(|_| analysis_at_head)
        .and_then(|a| a.loudness.as_ref())
        .map(|l| IndexLoudness {
            integrated_lufs: l.summary.integrated_lufs,
            loudness_range_lu: l.summary.loudness_range_lu,
            true_peak_dbtp: l.true_peak_dbtp,
            analysed_ms: now_ms(),
        });
    let comparison = resolver.compare.and_then(|(tap, profile, step)| {
        let report = tap.take()?;
        match crate::library::signature_of(&report) {
            Ok(sig) => Some(sluice_core::analysis::compare::compare(
                &sig, &profile, step.level,
            )),
            Err(e) => {
                warnings.push(format!("compare with the {}: {e}", profile.name));
                None
            }
        }
    });
    let export = export.filter(|_| !p.outputs.is_empty());
    Ok(Rendition {
        outputs: export
            .iter()
            .flat_map(|e| &e.outputs)
            .map(|o| (o.bytes, o.format.extension().to_string()))
            .collect(),
        export: export.map(|e| with_qc(e, judged)),
        analysis,
        comparison,
        source: source_stream,
        tags: info.tags.clone(),
        index,
        warnings: std::mem::take(warnings),
        hashes: Vec::new(),
    })
}

/// Values as JSON (what the report writes).
/// Each output with `qc = "SPEC"` measured as written and judged against the specification:
/// one that fails fails the job (`qc_fail = "fail"`, the default; its outputs are then removed
/// with the job), sets its source aside in quarantine (`"quarantine"`, its outputs removed
/// too), or is delivered with a warning naming the rules it breaks (`"warn"`). Per output, the verdicts for the report (`None` where there is no QC).
fn quality_checked(
    p: &Pipeline,
    report: &ExportReport,
    root: &Path,
    pages: &[Option<PathBuf>],
    warnings: &mut Vec<String>,
) -> Result<Vec<Option<sluice_core::qc::OutputQc>>, Failure> {
    use sluice_core::qc;
    let mut judged = Vec::new();
    for (i, (o, written)) in p.outputs.iter().zip(&report.outputs).enumerate() {
        let Some(q) = &o.qc else {
            judged.push(None);
            continue;
        };
        let measured = qc::measure(&written.path, &q.spec, &mut |_| {}).map_err(|e| {
            Failure::Refused(format!("QC of the output {}: {e}", written.path.display()))
        })?;
        let r = qc::judge(&q.spec, measured);
        // The page first: a job that fails on it removes it with its outputs.
        // The output named by its path in the root, the same wherever it was rendered (a farm
        // worker renders in a folder of its own).
        if let Some(page) = pages.get(i).and_then(Option::as_ref) {
            let mut shown = r.clone();
            if let Ok(rel) = written.path.strip_prefix(root) {
                shown.measured.path = rel.to_path_buf();
            }
            AtomicFile::write(page, qc::html::report_html(&shown).as_bytes())
                .map_err(|e| Failure::Transient(e.to_string()))?;
        }
        if !r.passed {
            let broken = r.broken();
            let msg = format!(
                "{}: fails {} ({}): {}",
                written.path.display(),
                r.spec_name,
                r.spec,
                broken.join("; ")
            );
            match q.on_fail {
                QcFail::Fail => {
                    return Err(Failure::Refused(format!(
                        "{msg}; the pipeline fails the job on a QC failure (qc_fail = \"fail\")"
                    )));
                }
                QcFail::Quarantine => {
                    return Err(Failure::Rejected(format!(
                        "{msg}; the pipeline sets such sources aside (qc_fail = \"quarantine\")"
                    )));
                }
                QcFail::Warn => warnings.push(msg),
            }
        }
        judged.push(Some(r.summary()));
    }
    Ok(judged)
}

/// The export's report with each judged output's QC beside its loudness (`outputs[i].qc`).
fn with_qc(
    mut export: ExportReport,
    judged: Vec<Option<sluice_core::qc::OutputQc>>,
) -> ExportReport {
    for (o, q) in export.outputs.iter_mut().zip(judged) {
        o.qc = q;
    }
    export
}

/// A lossy output still over its ceiling once decoded fails the job where the pipeline asks
/// (`true_peak_miss = "fail"`); its outputs are removed with the job.
fn ceilings_met(p: &Pipeline, report: &ExportReport) -> Result<(), Failure> {
    for (o, out) in p.outputs.iter().zip(&report.outputs) {
        if let Some(c) = out.true_peak_check.as_ref().filter(|c| !c.met)
            && o.fail_on_true_peak_miss
        {
            let tp = out.loudness.as_ref().map_or(f64::NAN, |l| l.true_peak_dbtp);
            return Err(Failure::Refused(format!(
                "{}: decoded, the output's true peak is {tp:.2} dBTP, over the {:.1} dBTP ceiling after {} encode(s); the pipeline fails the job on a ceiling miss (true_peak_miss = \"fail\"): lower the ceiling or raise the bitrate",
                out.path.display(),
                c.ceiling_dbtp.unwrap_or(f64::NAN),
                c.encodes
            )));
        }
    }
    Ok(())
}

/// A rendered job, to be finished.
struct Finished {
    started: jiff::Timestamp,
    source: PathBuf,
    paths: Paths,
    rendition: Rendition,
}

/// The job's record of each output: its path in the root, size, format and BLAKE3 hash (the
/// farm's, checked as the outputs were fetched, or read here).
fn output_records(
    rendition: &Rendition,
    job: &JobRecord,
    paths: &Paths,
) -> Result<Vec<OutputRecord>, Failure> {
    let mut outputs = Vec::new();
    let known = rendition.hashes.len() == rendition.outputs.len();
    for (i, (((bytes, format), rel), path)) in rendition
        .outputs
        .iter()
        .zip(&job.planned)
        .zip(&paths.outputs)
        .enumerate()
    {
        let hash = if known {
            rendition.hashes[i].clone()
        } else {
            crate::digest::hash_file(path).map_err(|e| io_failure(path, e))?
        };
        outputs.push(OutputRecord {
            path: rel.clone(),
            bytes: *bytes,
            hash,
            format: format.clone(),
        });
    }
    Ok(outputs)
}

/// The outputs hashed, the report written, the source moved, and the job marked done with its
/// outputs in one transaction (then the source deleted, where the pipeline says so). The
/// report and the move are the last steps that can fail before the job is done (a re-run
/// finds the source where it was moved); a failure before the move leaves the source where
/// it arrived.
fn finish(ctx: &Ctx, p: &Pipeline, job: JobRecord, f: Finished) -> Result<JobRecord, Failure> {
    let root = &ctx.cfg.root;
    let Finished {
        started,
        source,
        paths,
        rendition,
    } = f;
    let mut warnings = rendition.warnings.clone();
    if let Some(summary) = &rendition.index
        && let Ok(summary) = serde_json::to_value(summary)
    {
        let _ = ctx
            .store
            .set_analysis(&job.input.to_string_lossy(), summary);
    }
    let outputs = output_records(&rendition, &job, &paths)?;
    let planned_source = paths
        .move_to
        .as_ref()
        .map(|m| m.strip_prefix(root).unwrap_or(m).to_path_buf());
    let write_report = |source_now: Option<&Path>, warnings: &[String]| {
        let Some(rp) = &paths.report else {
            return Ok(());
        };
        let report = Report {
            job: job.id,
            pipeline: &p.name,
            pipeline_version: &p.hash,
            input: &job.input,
            content_hash: &job.content_hash,
            started: started.to_string(),
            finished: jiff::Timestamp::now().to_string(),
            source: &rendition.source,
            tags: &rendition.tags,
            analysis: rendition.analysis.as_ref(),
            comparison: rendition.comparison.as_ref(),
            export: rendition.export.as_ref(),
            outputs: &outputs,
            source_now,
            warnings: warnings.to_vec(),
        };
        // Through a JSON value, as reports have always been written (an `f32` figure, such
        // as a waveform's, then shows its exact value rather than its shortest spelling).
        let text = serde_json::to_value(&report)
            .and_then(|v| serde_json::to_string_pretty(&v))
            .unwrap_or_default();
        AtomicFile::write(rp, text.as_bytes())
            .map(|_| ())
            .map_err(|e| Failure::Transient(e.to_string()))
    };
    unchanged(&source, &job)?;
    for path in paths.report.iter().chain(&paths.move_to) {
        confined(root, path.strip_prefix(root).unwrap_or(path))?;
    }
    write_report(planned_source.as_deref(), &warnings)?;
    let source_now = match &paths.move_to {
        Some(m) if source != *m => match move_file(&source, m) {
            Ok(()) => planned_source,
            // Deleted while the job ran, after it was read to the end: the outputs stand.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                warnings.push(format!(
                    "{}: the source was gone when it was to be moved to {}",
                    source.display(),
                    m.display()
                ));
                write_report(None, &warnings)?;
                None
            }
            Err(e) => return Err(io_failure(&source, e)),
        },
        // Not moved now: where it was found, when that is not where it arrived (moved by an
        // earlier version of the pipeline, or taken from quarantine).
        _ => planned_source.or_else(|| {
            (source != root.join(&job.input))
                .then(|| source.strip_prefix(root).ok().map(Path::to_path_buf))
                .flatten()
        }),
    };

    // Done, with the outputs, in one transaction.
    let delete = matches!(p.source, SourceAction::Delete);
    let report_rel = paths
        .report
        .as_ref()
        .map(|_| job.planned[p.outputs.len() + p.qc_pages()].clone());
    let summary = format!(
        "{} output(s){}",
        outputs.len(),
        if warnings.is_empty() {
            String::new()
        } else {
            format!("; warnings: {}", warnings.join("; "))
        }
    );
    let done = ctx
        .store
        .update_job(
            job.id,
            Some((crate::store::EventKind::Done, summary)),
            |j| {
                j.state = JobState::Done;
                j.progress = 1.0;
                j.finished_ms = Some(now_ms());
                j.outputs = outputs.clone();
                j.report = report_rel.clone();
                j.source_now = source_now.clone();
                j.delete_pending = delete;
                j.error = None;
            },
        )
        .map_err(|e| Failure::Transient(e.to_string()))?;
    if delete {
        finish_delete(ctx.store, &ctx.cfg.root, &done);
    }
    Ok(ctx.store.job(done.id).ok().flatten().unwrap_or(done))
}

/// Delete a done job's source (also used at start for deletions a crash interrupted).
pub fn finish_delete(store: &Store, root: &Path, job: &JobRecord) {
    let src = root.join(&job.input);
    match std::fs::remove_file(&src) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            let _ = store.event(
                Some(job.id),
                crate::store::EventKind::Warning,
                format!("{}: cannot delete the source: {e}", src.display()),
            );
        }
    }
    let _ = store.update_job(job.id, None, |j| j.delete_pending = false);
}

/// Output, report and source destinations for `job`: rendered, made unique against existing
/// files and paths other jobs hold, and reserved for it (see the store's invariant 3).
fn plan_paths(
    ctx: &Ctx,
    p: &Pipeline,
    job: &JobRecord,
    tags: &BTreeMap<String, String>,
) -> Result<JobRecord, crate::store::StoreError> {
    let name = job
        .input
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (stem, ext) = match name.rsplit_once('.') {
        Some((s, e)) if !s.is_empty() => (s.to_string(), e.to_string()),
        _ => (name.clone(), String::new()),
    };
    let now = jiff::Zoned::now();
    // The folder the file arrived in, inside the watch folder (an album's).
    let folder = p
        .watched(&job.input)
        .and_then(Path::parent)
        .and_then(Path::file_name)
        .map(|n| n.to_string_lossy().into_owned());
    let vars = Vars {
        stem: &stem,
        name: &name,
        ext: &ext,
        folder: folder.as_deref(),
        pipeline: &p.name,
        now: &now,
        job: job.id,
        tags,
    };
    let mut templates: Vec<&Template> = p.outputs.iter().map(|o| &o.path).collect();
    templates.extend(p.outputs.iter().filter_map(|o| o.qc_page()));
    if let Some(r) = &p.report {
        templates.push(r);
    }
    if let SourceAction::Move(t) = &p.source {
        templates.push(t);
    }
    let wanted: Vec<PathBuf> = templates.iter().map(|t| t.render(&vars)).collect();
    let layout = crate::store::Layout {
        version: &p.hash,
        moves_source: matches!(p.source, SourceAction::Move(_)),
    };
    ctx.store.plan(job.id, &wanted, layout, numbered, |rel| {
        // A dangling symlink is a name taken too.
        ctx.cfg.root.join(rel).symlink_metadata().is_ok()
    })
}

/// Progress written to the store (or given to the context's `progress`) at most about once a
/// second.
struct Progress<'a> {
    store: &'a Store,
    report: Option<&'a (dyn Fn(f64) + Sync)>,
    id: u64,
    last: std::time::Instant,
    value: f64,
    base: f64,
}

impl<'a> Progress<'a> {
    fn new(ctx: &Ctx<'a>, id: u64) -> Self {
        Progress {
            store: ctx.store,
            report: ctx.progress,
            id,
            last: std::time::Instant::now(),
            value: 0.0,
            base: 0.0,
        }
    }
    fn set(&mut self, v: f64) {
        if v > self.value {
            self.value = v;
            if self.last.elapsed() >= std::time::Duration::from_secs(1) {
                self.last = std::time::Instant::now();
                match self.report {
                    Some(report) => report(v),
                    None => {
                        let _ = self.store.progress(self.id, v);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::{Defaults, parse};

    #[test]
    fn a_move_never_replaces_what_is_at_the_destination() {
        let dir = tempfile::tempdir().unwrap();
        let (from, to) = (dir.path().join("a.wav"), dir.path().join("out/a.wav"));
        std::fs::write(&from, b"source").unwrap();
        move_file(&from, &to).unwrap();
        assert!(!from.exists());
        assert_eq!(std::fs::read(&to).unwrap(), b"source");

        // A file there already: refused, both left as they were.
        std::fs::write(&from, b"second").unwrap();
        let e = move_file(&from, &to).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&from).unwrap(), b"second");
        assert_eq!(std::fs::read(&to).unwrap(), b"source");

        // A dangling symbolic link is a name taken too (`exists()` says no to it): the link
        // stays, the source stays.
        let link = dir.path().join("out/link.wav");
        std::os::unix::fs::symlink(dir.path().join("nowhere"), &link).unwrap();
        let e = move_file(&from, &link).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::AlreadyExists);
        assert!(link.symlink_metadata().unwrap().file_type().is_symlink());
        assert_eq!(std::fs::read(&from).unwrap(), b"second");
    }

    /// A root with a hot 6 s stereo master in `in/NAME.wav`; returns its path.
    fn source(root: &Path, name: &str) -> PathBuf {
        let rate = 48_000;
        let planes = sluice_core::signal::hot_master(rate, 6.0);
        let path = root.join("in").join(format!("{name}.wav"));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: rate,
            bits_per_sample: 24,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&path, spec).unwrap();
        for i in 0..planes[0].len() {
            for p in &planes {
                w.write_sample((f64::from(p[i]) * 8_388_607.0).round() as i32)
                    .unwrap();
            }
        }
        w.finalize().unwrap();
        path
    }

    /// A fresh root with a source in `in/NAME.wav`, its store and an effect catalog: what
    /// running a job needs.
    struct Fixture {
        _dir: tempfile::TempDir,
        root: PathBuf,
        name: String,
        src: PathBuf,
        cfg: Config,
        store: Store,
        fx: crate::effects::Catalog,
    }

    impl Fixture {
        fn new(name: &str) -> Self {
            let dir = tempfile::tempdir().unwrap();
            let root = dir.path().to_path_buf();
            let src = source(&root, name);
            let cfg = Config::defaults(&root);
            let store = Store::open(&cfg.db_path(), true).unwrap();
            let fx =
                crate::effects::Catalog::load(crate::effects::Runtime::new(None).unwrap(), None);
            Fixture {
                _dir: dir,
                root,
                name: name.to_string(),
                src,
                cfg,
                store,
                fx,
            }
        }

        /// The pipeline `text` as the host parses it.
        fn parse(&self, text: &str) -> Pipeline {
            parse(
                Path::new("p.toml"),
                text,
                Defaults {
                    target_lufs: -16.0,
                    target_true_peak_dbtp: -1.0,
                    effects: Some(&self.fx),
                    root: None,
                },
            )
            .unwrap_or_else(|d| panic!("{d:?}"))
        }

        fn ctx(&self) -> Ctx<'_> {
            Ctx {
                interrupt: None,
                cfg: &self.cfg,
                store: &self.store,
                effects: &self.fx,
                progress: None,
                profiles: None,
            }
        }

        /// A running job of `p` on the source, as the watcher adds one.
        fn job(&self, p: &Pipeline) -> JobRecord {
            self.store
                .add_running_job(
                    &p.name,
                    &p.hash,
                    PathBuf::from(format!("in/{}.wav", self.name)),
                    crate::digest::hash_file(&self.src).unwrap(),
                )
                .unwrap()
        }
    }

    /// Runs the pipeline `steps` (with `outputs`) on a fresh source in a fresh root; returns the
    /// job's report and how many decoders were opened on the source.
    fn run_job(name: &str, steps: &str, outputs: &str) -> (serde_json::Value, usize) {
        let f = Fixture::new(name);
        let p = f.parse(&format!(
            "watch = \"in\"\nreport = \"reports/{{stem}}.json\"\n{steps}\n{outputs}\n[source]\naction = \"keep\"\n"
        ));
        let done = run(&f.ctx(), &p, f.job(&p));
        assert_eq!(done.state, JobState::Done, "{:?}", done.error);
        let report: serde_json::Value =
            serde_json::from_slice(&std::fs::read(f.root.join(done.report.unwrap())).unwrap())
                .unwrap();
        let opens = sluice_core::decode::opens::of(&f.src);
        (report, opens)
    }

    /// Paths planned for another layout of the pipeline (more or fewer than it plans now)
    /// are refused with a message saying what runs the job afresh — never sliced into a
    /// panic, nor read as other paths (an output written where the source was to go).
    #[test]
    fn paths_planned_for_another_layout_are_refused_not_misread() {
        let f = Fixture::new("odd");
        let p = f.parse(
            "watch = \"in\"\nreport = \"reports/{stem}.json\"\n[[output]]\n\
             path = \"out/{stem}.flac\"\n[source]\naction = \"keep\"\n",
        );
        assert_eq!(p.planned_len(), 2);
        for planned in [&["out/odd.flac"][..], &["out/odd.flac", "r.json", "x.wav"]] {
            let rec = f.job(&p);
            let planned: Vec<PathBuf> = planned.iter().map(PathBuf::from).collect();
            let layout = crate::store::Layout {
                version: &p.hash,
                moves_source: false,
            };
            f.store
                .plan(rec.id, &planned, layout, numbered, |_| false)
                .unwrap();
            let rec = f.store.job(rec.id).unwrap().unwrap();
            let ended = run(&f.ctx(), &p, rec);
            assert_eq!(ended.state, JobState::Failed, "{ended:?}");
            let error = ended.error.unwrap_or_default();
            assert!(
                error.contains("planned paths do not fit pipeline")
                    && error.contains("sluice retry"),
                "{error}"
            );
            assert!(!f.root.join("out/odd.flac").exists());
            assert!(f.src.is_file());
        }
    }

    /// A job planned by a host from before the layout was kept (no `planned_for`) for a version
    /// of its pipeline that moved the source, cut short before the move, then run under an
    /// edited pipeline: what a stranger put at the name the source was to be moved to is not
    /// the old version's output and stays. (Such a record cannot say whether its last path is
    /// the move's, so that path is never removed as written.)
    #[test]
    fn a_record_without_its_layout_never_removes_what_may_be_the_move_destination() {
        let f = Fixture::new("leg");
        let p = f.parse(
            "watch = \"in\"\nreport = \"reports/{stem}.json\"\n[[output]]\n\
             path = \"out/{stem}.flac\"\n[source]\naction = \"keep\"\n",
        );
        let old = f
            .store
            .add_running_job(
                &p.name,
                "an-older-version",
                PathBuf::from("in/leg.wav"),
                crate::digest::hash_file(&f.src).unwrap(),
            )
            .unwrap();
        let planned: Vec<PathBuf> = ["out/leg.mp3", "reports/old/leg.json", "done/leg.wav"]
            .iter()
            .map(PathBuf::from)
            .collect();
        let layout = crate::store::Layout {
            version: "an-older-version",
            moves_source: true,
        };
        f.store
            .plan(old.id, &planned, layout, numbered, |_| false)
            .unwrap();
        // As such a record was written: no layout.
        let rec = f
            .store
            .update_job(old.id, None, |j| {
                j.planned_for = None;
                j.planned_move = false;
            })
            .unwrap();
        std::fs::create_dir_all(f.root.join("done")).unwrap();
        std::fs::write(f.root.join("done/leg.wav"), b"a stranger's").unwrap();
        std::fs::create_dir_all(f.root.join("out")).unwrap();
        std::fs::write(f.root.join("out/leg.mp3"), b"the old version's output").unwrap();

        let done = run(&f.ctx(), &p, rec);
        assert_eq!(done.state, JobState::Done, "{:?}", done.error);
        assert_eq!(
            std::fs::read(f.root.join("done/leg.wav")).unwrap(),
            b"a stranger's"
        );
        // The old version's output, at a name that was certainly written, is gone.
        assert!(!f.root.join("out/leg.mp3").exists());
        assert!(f.root.join("out/leg.flac").is_file());
        assert!(f.src.is_file());
    }

    fn integrated(report: &serde_json::Value) -> f64 {
        report["analysis"]["loudness"]["integrated_lufs"]
            .as_f64()
            .unwrap_or_else(|| panic!("no loudness in {report}"))
    }

    const OUT: &str = "[[output]]\npath = \"out/{stem}.flac\"\n";
    const NORMALIZE: &str =
        "[[step]]\nnormalize = { loudness_lufs = -20, true_peak_dbtp = -1, limiter = true }\n";
    const ANALYZE: &str = "[[step]]\nanalyze = [\"loudness\", \"levels\"]\n";

    #[test]
    fn analyze_after_normalize_reports_the_normalized_signal_from_one_decode() {
        let (after, opens) = run_job("after", &format!("{NORMALIZE}{ANALYZE}"), OUT);
        let i = integrated(&after);
        assert!((i + 20.0).abs() < 0.15, "after normalize: {i} LUFS");
        // The output as written measures what the analysis saw.
        let written = after["export"]["outputs"][0]["loudness"]["integrated_lufs"]
            .as_f64()
            .unwrap();
        assert!(
            (i - written).abs() < 0.05,
            "analysed {i}, written {written}"
        );
        assert_eq!(
            opens, 1,
            "one decode for the normalize prepass, analysis and output"
        );

        let (head, opens) = run_job("head", &format!("{ANALYZE}{NORMALIZE}"), OUT);
        let source = integrated(&head);
        assert!(
            source > -16.0,
            "the hot source as it arrived: {source} LUFS"
        );
        assert_eq!(opens, 1, "analysis first: still one decode");

        let (only, opens) = run_job("only", ANALYZE, "");
        assert_eq!(
            integrated(&only),
            source,
            "analysis only: the same source figure"
        );
        assert!(only.get("export").is_none_or(|e| e.is_null()));
        assert_eq!(opens, 1, "analysis only: one decode");
    }

    #[test]
    fn a_second_analyze_step_is_refused() {
        let e = parse(
            Path::new("p.toml"),
            &format!("watch = \"in\"\n{ANALYZE}{NORMALIZE}{ANALYZE}"),
            Defaults {
                target_lufs: -16.0,
                target_true_peak_dbtp: -1.0,
                effects: None,
                root: None,
            },
        )
        .unwrap_err();
        assert!(
            e[0].to_string().contains("one analyze step per pipeline"),
            "{}",
            e[0]
        );
    }
}
