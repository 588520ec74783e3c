//! The host's commands besides `watch`, as functions that return what they found or did:
//! `run`, `jobs`, `job`, `retry`, `check`, `clean`, `stats`, the effects commands, and the
//! default root. They print nothing: the `sluice` binary prints their results as text or JSON,
//! and a server returns them as they are.

use crate::config::{CONFIG_FILE, Config};
use crate::job::{self, Ctx};
use crate::pipeline::{self, Defaults, Diagnostic, Pipeline, SourceAction};
use crate::store::{Event, JobRecord, JobState, Store};
use anyhow::{Context, Result, anyhow, bail};
use serde::Serialize;
use sluice_core::io::AtomicFile;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The example pipelines, built in: a new root gets them.
pub const EXAMPLES: &[(&str, &str)] = &[
    ("podcast.toml", include_str!("../../pipelines/podcast.toml")),
    (
        "streaming-master.toml",
        include_str!("../../pipelines/streaming-master.toml"),
    ),
    (
        "broadcast.toml",
        include_str!("../../pipelines/broadcast.toml"),
    ),
    (
        "analysis.toml",
        include_str!("../../pipelines/analysis.toml"),
    ),
    ("archive.toml", include_str!("../../pipelines/archive.toml")),
];

const DEFAULT_CONFIG: &str = "# sluice configuration. Every key is optional; the environment overrides them\n\
# (SLUICE_WORKERS, SLUICE_SETTLE_SECONDS, SLUICE_RESCAN_SECONDS, SLUICE_TARGET_LUFS,\n\
# SLUICE_TARGET_TRUE_PEAK).\n\
\n\
# workers = 2                  # jobs at once (default: the number of cores)\n\
# settle_seconds = 2           # a file must keep its size and time this long before it is taken\n\
# rescan_seconds = 30          # how often the watch folders are listed in full\n\
# target_lufs = -16            # what `normalize = {}` aims at\n\
# target_true_peak_dbtp = -1\n\
# pipelines = \"pipelines\"     # the pipelines folder, inside the root\n\
# quarantine = \"failed\"       # where sources that cannot be processed go\n\
# log_files = 7                # daily log files kept in .sluice/logs\n\
\n\
# The HTTP API and dashboard served by `sluice watch` too (docs/API.md); off unless set.\n\
# [server]\n\
# listen = \"127.0.0.1:8750\"     # beyond loopback every route needs the API token\n\
# max_upload_mb = 2048\n\
# max_uploads = 8              # uploads received at once\n\
# request_timeout = 30         # seconds a client may send nothing (request head, upload)\n\
# max_connections = 1024       # connections open at once\n\
# cors_origins = [\"https://app.example.com\"]   # browser pages of other origins allowed\n\
# [[server.webhook]]           # job events posted as signed JSON (docs/API.md)\n\
# url = \"http://127.0.0.1:9000/sluice\"   # or https:// (ca_file = for a private authority)\n\
# events = [\"done\", \"failed\", \"quarantined\"]\n\
# secret = \"a long random string\"\n";

/// Make `root` ready to use when it has no pipelines folder yet: configuration, the example
/// pipelines and their folders. Returns whether it did.
pub fn init_root(root: &Path) -> Result<bool> {
    if root.join("pipelines").exists() || root.join(CONFIG_FILE).exists() {
        return Ok(false);
    }
    let mk = |p: PathBuf| std::fs::create_dir_all(&p).with_context(|| format!("{}", p.display()));
    mk(root.join("pipelines"))?;
    for d in ["outbox", "done", "failed", "reports", "archive", "effects"] {
        mk(root.join(d))?;
    }
    // Written whole or not at all, as every file Sluice writes (the error names the file).
    AtomicFile::write(&root.join(CONFIG_FILE), DEFAULT_CONFIG.as_bytes())?;
    for (name, text) in EXAMPLES {
        AtomicFile::write(&root.join("pipelines").join(name), text.as_bytes())?;
        mk(root.join("inbox").join(name.trim_end_matches(".toml")))?;
    }
    Ok(true)
}

fn defaults<'a>(cfg: &'a Config, effects: &'a crate::effects::Catalog) -> Defaults<'a> {
    Defaults {
        target_lufs: cfg.target_lufs,
        target_true_peak_dbtp: cfg.target_true_peak_dbtp,
        effects: Some(effects),
        root: Some(&cfg.root),
    }
}

/// A pipeline that loaded, in short.
#[derive(Debug, Clone, Serialize)]
pub struct PipelineSummary {
    pub name: String,
    pub file: PathBuf,
    pub description: Option<String>,
    pub steps: usize,
    pub outputs: usize,
    pub watch: Vec<PathBuf>,
}

impl From<&Pipeline> for PipelineSummary {
    fn from(p: &Pipeline) -> Self {
        PipelineSummary {
            name: p.name.clone(),
            file: p.file.clone(),
            description: p.description.clone(),
            steps: p.steps.len(),
            outputs: p.outputs.len(),
            watch: p.watch.clone(),
        }
    }
}

/// What `check` found: the pipelines that load, and every problem, located.
#[derive(Debug, Clone)]
pub struct Checked {
    pub ok: Vec<PipelineSummary>,
    pub problems: Vec<Diagnostic>,
}

/// `sluice check [PATH]`: a pipeline file, a pipelines folder, or a root.
pub fn check(root: &Path, path: Option<&Path>) -> Result<Checked> {
    let (ok, problems) = match path {
        Some(p) if p.is_file() => {
            let cfg = Config::load(root).unwrap_or_else(|_| Config::defaults(root));
            let fx = cfg.effects()?;
            pipeline::load_files(&[p.to_path_buf()], defaults(&cfg, &fx), &Default::default())
        }
        Some(p) if p.is_dir() => {
            let (cfg, dir) = if p.join(CONFIG_FILE).exists() || p.join("pipelines").is_dir() {
                let cfg = Config::load(p)?;
                let d = cfg.pipelines_dir.clone();
                (cfg, d)
            } else {
                (
                    Config::load(root).unwrap_or_else(|_| Config::defaults(root)),
                    p.to_path_buf(),
                )
            };
            let fx = cfg.effects()?;
            pipeline::load_dir(&dir, defaults(&cfg, &fx))
        }
        Some(p) => bail!("{}: no such file or folder", p.display()),
        None => {
            let (_, ok, problems) = load_root(root)?;
            (ok, problems)
        }
    };
    Ok(Checked {
        ok: ok.iter().map(PipelineSummary::from).collect(),
        problems,
    })
}

/// The root's configuration, the pipelines that load and the problems of those that do not.
pub fn load_root(root: &Path) -> Result<(Config, Vec<Pipeline>, Vec<Diagnostic>)> {
    let cfg = Config::load(root)?;
    let fx = cfg.effects()?;
    let (ok, problems) = pipeline::load_dir(&cfg.pipelines_dir, defaults(&cfg, &fx));
    Ok((cfg, ok, problems))
}

/// `sluice jobs`: the jobs, all or in one state.
pub fn jobs(cfg: &Config, state: Option<JobState>) -> Result<Vec<JobRecord>> {
    Ok(Store::open(&cfg.db_path(), false)?.jobs(state)?)
}

/// What to tell a user about a job left `running` by a process that has ended, if it is one.
pub fn cut_short_note(j: &JobRecord) -> Option<String> {
    j.cut_short().map(|r| {
        if r.by_hand {
            format!(
                "cut short: its `sluice run` (pid {}) has ended; running the file again, or \
                 starting the host, runs it again",
                r.pid
            )
        } else {
            format!(
                "cut short: its host (pid {}) has ended; the next host start runs it again",
                r.pid
            )
        }
    })
}

/// One job with its history.
#[derive(Debug, Clone, Serialize)]
pub struct JobDetail {
    pub job: JobRecord,
    pub events: Vec<Event>,
}

/// `sluice job ID`.
pub fn job(cfg: &Config, id: u64) -> Result<JobDetail> {
    let store = Store::open(&cfg.db_path(), false)?;
    let job = store.job(id)?.ok_or_else(|| anyhow!("no job {id}"))?;
    let events = store.events(Some(id))?;
    Ok(JobDetail { job, events })
}

/// What `retry` did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Retried {
    /// Queued again.
    pub queued: Vec<u64>,
    /// Not failed or quarantined, or no such job: left alone.
    pub left_alone: Vec<u64>,
}

/// `sluice retry ID... | --failed`: queue failed or quarantined jobs again.
pub fn retry(cfg: &Config, ids: &[u64], failed: bool) -> Result<Retried> {
    retry_in(&Store::open(&cfg.db_path(), false)?, ids, failed)
}

/// [`retry`] in a store already open (the HTTP API's).
pub fn retry_in(store: &Store, ids: &[u64], failed: bool) -> Result<Retried> {
    let mut ids = ids.to_vec();
    if failed {
        for s in [JobState::Failed, JobState::Quarantined] {
            ids.extend(store.jobs(Some(s))?.iter().map(|j| j.id));
        }
    }
    if ids.is_empty() {
        return Ok(Retried::default());
    }
    let done = store.retry(&ids)?;
    let (queued, left_alone) = ids.into_iter().partition(|id| done.contains(id));
    Ok(Retried { queued, left_alone })
}

/// Parse `30d`, `12h`, `90m`, `45s`, `2w`.
pub fn parse_age(s: &str) -> Result<std::time::Duration> {
    let s = s.trim();
    let (num, unit) = s.split_at(
        s.find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(s.len()),
    );
    let n: f64 = num
        .parse()
        .map_err(|_| anyhow!("{s}: write an age like 30d, 12h, 90m, 45s or 2w"))?;
    let secs = match unit {
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        "d" | "" => 86_400.0,
        "w" => 7.0 * 86_400.0,
        _ => bail!("{s}: the unit is s, m, h, d or w"),
    };
    // Past a century the cut-off would fall before any job (or, as milliseconds, wrap round
    // to the future and take every job).
    if n * secs > MAX_AGE_SECONDS {
        bail!("{s}: give an age of at most 100 years (36500d)");
    }
    Ok(std::time::Duration::from_secs_f64(n * secs))
}

/// The longest age `clean` takes: 100 years.
const MAX_AGE_SECONDS: f64 = 36_500.0 * 86_400.0;

#[cfg(test)]
mod age_tests {
    /// Ages as written, the longest taken, and what is refused: past a century (an age of
    /// 1.5e11 days wrapped round and `clean` removed every job's files; 2e15 days panicked).
    #[test]
    fn ages_parse_and_huge_ones_are_refused() {
        let day = 86_400;
        for (text, secs) in [
            ("30d", 30 * day),
            ("12h", 43_200),
            ("2w", 14 * day),
            ("45s", 45),
        ] {
            assert_eq!(super::parse_age(text).unwrap().as_secs(), secs, "{text}");
        }
        assert_eq!(super::parse_age("36500d").unwrap().as_secs(), 36_500 * day);
        for text in [
            "36501d",
            "150000000000d",
            "2000000000000000d",
            "1e308d",
            "5300w",
        ] {
            let e = super::parse_age(text).unwrap_err().to_string();
            assert!(
                e.contains("at most 100 years") || e.contains("the unit is"),
                "{text}: {e}"
            );
        }
    }
}

/// What `clean` removed (or, in a dry run, would remove).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Cleaned {
    pub dry_run: bool,
    /// The files, relative to the root.
    pub files: Vec<PathBuf>,
    pub bytes: u64,
    /// Folders left empty, removed.
    pub folders: usize,
    /// Recorded paths not touched, and why (a link out of the root).
    pub skipped: Vec<String>,
}

/// `sluice clean --older-than AGE [--dry-run]`: the outputs, reports and moved sources of jobs
/// finished more than `age` ago, and the folders they leave empty; and the HTTP API's pictures
/// not drawn for as long. Job records stay.
pub fn clean(cfg: &Config, age: std::time::Duration, dry_run: bool) -> Result<Cleaned> {
    let cutoff = crate::store::now_ms() - age.as_millis() as i64;
    let store = Store::open(&cfg.db_path(), false)?;
    let mut files = Vec::new();
    for j in store.jobs(Some(JobState::Done))? {
        if j.finished_ms.is_some_and(|f| f < cutoff) {
            files.extend(j.outputs.iter().map(|o| o.path.clone()));
            files.extend(j.report.clone());
            files.extend(j.source_now.clone());
        }
    }
    let mut done = Cleaned {
        dry_run,
        ..Cleaned::default()
    };
    let mut dirs = std::collections::BTreeSet::new();
    // What goes (or would go): a dry run counts the folders a real run would leave empty.
    let mut gone = std::collections::HashSet::new();
    for rel in files {
        // Never through a link out of the root.
        let p = match crate::confine::resolve(&cfg.root, &rel) {
            Ok(p) => p,
            Err(e) => {
                done.skipped.push(e.to_string());
                continue;
            }
        };
        let Ok(m) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if !m.is_file() {
            continue;
        }
        if !dry_run {
            std::fs::remove_file(&p).with_context(|| format!("{}", p.display()))?;
        }
        done.bytes += m.len();
        gone.insert(p.clone());
        let mut d = rel.parent();
        while let Some(x) = d.filter(|x| !x.as_os_str().is_empty()) {
            dirs.insert(x.to_path_buf());
            d = x.parent();
        }
        done.files.push(rel);
    }
    prune_pictures(cfg, cutoff, dry_run, &mut done)?;
    // Deepest first; folders pipelines watch stay.
    let fx = cfg.effects()?;
    let watched: Vec<PathBuf> = pipeline::load_dir(&cfg.pipelines_dir, defaults(cfg, &fx))
        .0
        .iter()
        .flat_map(|p| p.watch.clone())
        .collect();
    for d in dirs.iter().rev() {
        if watched.iter().any(|w| w.starts_with(d)) {
            continue;
        }
        let p = cfg.root.join(d);
        let empty =
            std::fs::read_dir(&p).is_ok_and(|r| r.flatten().all(|e| gone.contains(&e.path())));
        if empty {
            gone.insert(p.clone());
            done.folders += 1;
            if !dry_run {
                let _ = std::fs::remove_dir(&p);
            }
        }
    }
    Ok(done)
}

/// The pictures the HTTP API drew (`.sluice/plots/HASH/`, redrawn when asked for again): a
/// folder none of whose files was written since `cutoff` goes. Never through a link.
fn prune_pictures(cfg: &Config, cutoff: i64, dry_run: bool, done: &mut Cleaned) -> Result<()> {
    let plots = cfg.root.join(".sluice").join("plots");
    if !std::fs::symlink_metadata(&plots).is_ok_and(|m| m.is_dir()) {
        return Ok(());
    }
    let old = |m: &std::fs::Metadata| {
        m.modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .is_some_and(|d| (d.as_millis() as i64) < cutoff)
    };
    for e in std::fs::read_dir(&plots)
        .with_context(|| plots.display().to_string())?
        .flatten()
    {
        let dir = e.path();
        if !std::fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir()) {
            continue;
        }
        let files: Vec<(PathBuf, std::fs::Metadata)> = std::fs::read_dir(&dir)
            .with_context(|| dir.display().to_string())?
            .flatten()
            .filter_map(|f| {
                let m = std::fs::symlink_metadata(f.path()).ok()?;
                (!m.is_dir()).then(|| (f.path(), m))
            })
            .collect();
        if !files.iter().all(|(_, m)| old(m)) {
            continue;
        }
        for (p, m) in &files {
            if !dry_run {
                std::fs::remove_file(p).with_context(|| p.display().to_string())?;
            }
            done.bytes += m.len();
            done.files
                .push(p.strip_prefix(&cfg.root).unwrap_or(p).to_path_buf());
        }
        done.folders += 1;
        if !dry_run {
            let _ = std::fs::remove_dir(&dir);
        }
    }
    Ok(())
}

/// Files of one type.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Count {
    pub files: u64,
    pub bytes: u64,
}

/// A file and when it was last modified (local time).
#[derive(Debug, Clone, Serialize)]
pub struct Stamped {
    pub time: String,
    pub path: PathBuf,
}

/// What a root holds and its jobs by state.
#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    pub root: PathBuf,
    pub files: u64,
    pub bytes: u64,
    /// By file extension, lower case (`(none)` without one).
    pub by_type: BTreeMap<String, Count>,
    pub oldest: Option<Stamped>,
    pub newest: Option<Stamped>,
    /// Files the store has indexed in watch folders.
    pub indexed_files: usize,
    pub jobs: BTreeMap<&'static str, u64>,
    /// On a farm: jobs by the worker they ran on (`?`: out on the farm, no answer yet).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub ran_on: BTreeMap<String, u64>,
    /// The state file's schema version, when there is one.
    pub state_schema: Option<u64>,
    #[serde(skip)]
    pub state_file: PathBuf,
}

/// `sluice stats`: what the root holds and the jobs by state.
pub fn stats(cfg: &Config) -> Result<Stats> {
    stats_in(cfg, None)
}

/// [`stats`], reading the jobs through `store` when the caller has the root's state open
/// already (a server: a second handle on the file would check it while the first writes).
pub fn stats_in(cfg: &Config, store: Option<&Store>) -> Result<Stats> {
    let mut by_type: BTreeMap<String, Count> = BTreeMap::new();
    let (mut files, mut bytes) = (0u64, 0u64);
    type Stamp = Option<(i128, PathBuf)>;
    let (mut oldest, mut newest): (Stamp, Stamp) = (None, None);
    let mut stack = vec![cfg.root.clone()];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            let Ok(m) = e.metadata() else { continue };
            let p = e.path();
            if m.is_dir() {
                if p != cfg.state_dir() {
                    stack.push(p);
                }
                continue;
            }
            if !m.is_file() {
                continue;
            }
            files += 1;
            bytes += m.len();
            let ext = p
                .extension()
                .map(|x| x.to_string_lossy().to_ascii_lowercase())
                .unwrap_or_else(|| "(none)".into());
            let k = by_type.entry(ext).or_default();
            k.files += 1;
            k.bytes += m.len();
            let t = m
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_millis() as i128);
            let rel = p.strip_prefix(&cfg.root).unwrap_or(&p).to_path_buf();
            if oldest.as_ref().is_none_or(|(o, _)| t < *o) {
                oldest = Some((t, rel.clone()));
            }
            if newest.as_ref().is_none_or(|(o, _)| t > *o) {
                newest = Some((t, rel));
            }
        }
    }
    let mut jobs: BTreeMap<&str, u64> = JobState::ALL.iter().map(|s| (s.name(), 0)).collect();
    let db = cfg.db_path();
    let mut state_schema = None;
    let mut ran_on: BTreeMap<String, u64> = BTreeMap::new();
    let opened;
    let store = match store {
        Some(s) => Some(s),
        None if db.exists() => {
            opened = Store::open(&db, false)?;
            Some(&opened)
        }
        None => None,
    };
    let indexed_files = if let Some(store) = store {
        for j in store.jobs(None)? {
            *jobs.entry(j.state.name()).or_default() += 1;
            if let Some(w) = j.ran_on {
                *ran_on.entry(w).or_default() += 1;
            }
        }
        state_schema = Some(store.schema_version()?);
        store.file_paths()?.len()
    } else {
        0
    };
    let stamped = |x: Stamp| {
        x.map(|(t, path)| Stamped {
            time: local_time(Some(t as i64)),
            path,
        })
    };
    Ok(Stats {
        root: cfg.root.clone(),
        files,
        bytes,
        by_type,
        oldest: stamped(oldest),
        newest: stamped(newest),
        indexed_files,
        jobs,
        ran_on,
        state_schema,
        state_file: db,
    })
}

/// A time in milliseconds since the epoch as local time, `-` for none.
pub fn local_time(ms: Option<i64>) -> String {
    ms.and_then(|m| jiff::Timestamp::from_millisecond(m).ok())
        .map(|t| {
            t.to_zoned(jiff::tz::TimeZone::system())
                .strftime("%Y-%m-%d %H:%M:%S")
                .to_string()
        })
        .unwrap_or_else(|| "-".into())
}

/// Find a pipeline by name in the root's pipelines, or by the path of its file.
fn find_pipeline(cfg: &Config, fx: &crate::effects::Catalog, name: &str) -> Result<Pipeline> {
    let as_path = Path::new(name);
    let (ok, problems) = if as_path.extension().is_some_and(|e| e == "toml") && as_path.is_file() {
        pipeline::load_files(
            &[as_path.to_path_buf()],
            defaults(cfg, fx),
            &Default::default(),
        )
    } else {
        pipeline::load_dir(&cfg.pipelines_dir, defaults(cfg, fx))
    };
    if let Some(p) = ok.into_iter().find(|p| p.name == name || p.file == as_path) {
        return Ok(p);
    }
    let mine: Vec<String> = problems
        .iter()
        .filter(|d| d.file.file_stem().is_some_and(|s| s == name) || d.file == as_path)
        .map(Diagnostic::to_string)
        .collect();
    if !mine.is_empty() {
        bail!("pipeline {name} is invalid:\n{}", mine.join("\n"));
    }
    bail!(
        "no pipeline {name} in {} (`sluice check` lists them)",
        cfg.pipelines_dir.display()
    )
}

/// An output a job wrote, with its loudness as measured while it was written.
#[derive(Debug, Clone, Serialize)]
pub struct WrittenOutput {
    pub path: PathBuf,
    pub integrated_lufs: Option<f64>,
    pub true_peak_dbtp: Option<f64>,
}

/// One file of `run`: its job, or why none could be made.
#[derive(Debug)]
pub enum RunOutcome {
    Job {
        job: Box<JobRecord>,
        /// The outputs (absolute paths) with their loudness, from the job's report.
        outputs: Vec<WrittenOutput>,
        /// The job's warnings, from its report.
        warnings: Vec<String>,
    },
    Refused {
        error: anyhow::Error,
    },
}

impl RunOutcome {
    /// Whether the file was processed to the end.
    pub fn done(&self) -> bool {
        matches!(self, RunOutcome::Job { job, .. } if job.state == JobState::Done)
    }
}

/// `sluice run PIPELINE FILE...`: the pipeline over these files now; the sources are left where
/// they are. `each` hears of every file as it finishes (in the order they finish).
pub fn run(
    cfg: &Config,
    pipeline: &str,
    files: &[PathBuf],
    each: &(dyn Fn(&Path, &RunOutcome) + Sync),
) -> Result<Vec<(PathBuf, RunOutcome)>> {
    let fx = cfg.effects()?;
    let mut p = find_pipeline(cfg, &fx, pipeline)?;
    p.source = SourceAction::Keep;
    let store = Store::open(&cfg.db_path(), true)?;
    let ctx = Ctx {
        interrupt: None,
        cfg,
        store: &store,
        effects: &fx,
        progress: None,
        profiles: None,
    };
    // A file an earlier `sluice run` of this pipeline was running when it died is run again
    // as that job (its id, its names, or names planned afresh if the pipeline was edited
    // since): else a host starting later would find the dead job and render the file again.
    let abandoned = store.abandoned_by_hand(&p.name)?;
    let outcomes = crate::parallel::map(files, cfg.workers, |f| {
        let made = (|| -> Result<JobRecord> {
            let abs = std::path::absolute(f).with_context(|| format!("{}", f.display()))?;
            // A FIFO would block the read, a device never end it.
            let meta = std::fs::metadata(&abs).with_context(|| format!("{}", abs.display()))?;
            if !meta.is_file() {
                bail!("{}: not a regular file", abs.display());
            }
            let hash =
                crate::digest::hash_file(&abs).with_context(|| format!("{}", abs.display()))?;
            let input = abs
                .strip_prefix(&cfg.root)
                .map(Path::to_path_buf)
                .unwrap_or(abs);
            for j in abandoned
                .iter()
                .filter(|j| j.input == input && j.content_hash == hash)
            {
                if let Some(job) = store.take_over(j.id)? {
                    // What the dead run was writing: its temporaries beside the job's names.
                    for dir in job
                        .planned
                        .iter()
                        .filter_map(|r| cfg.root.join(r).parent().map(Path::to_path_buf))
                    {
                        sluice_core::io::sweep_stale(&dir);
                    }
                    return Ok(job);
                }
            }
            Ok(store.add_running_job(&p.name, &p.hash, input, hash)?)
        })();
        let outcome = match made {
            Ok(rec) => finished(cfg, job::run(&ctx, &p, rec)),
            Err(error) => RunOutcome::Refused { error },
        };
        each(f, &outcome);
        outcome
    });
    Ok(files.iter().cloned().zip(outcomes).collect())
}

/// A finished job with its outputs' loudness and its warnings read from its report.
fn finished(cfg: &Config, job: JobRecord) -> RunOutcome {
    let report = job
        .report
        .as_ref()
        .and_then(|r| std::fs::read(cfg.root.join(r)).ok())
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
    let measured = report
        .as_ref()
        .and_then(|r| r["export"]["outputs"].as_array().cloned())
        .unwrap_or_default();
    let outputs = job
        .outputs
        .iter()
        .enumerate()
        .map(|(i, o)| {
            let l = measured.get(i).map(|m| &m["loudness"]);
            WrittenOutput {
                path: cfg.root.join(&o.path),
                integrated_lufs: l.and_then(|l| l["integrated_lufs"].as_f64()),
                true_peak_dbtp: l.and_then(|l| l["true_peak_dbtp"].as_f64()),
            }
        })
        .collect();
    let warnings = report
        .as_ref()
        .and_then(|r| r["warnings"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .map(|w| w.as_str().unwrap_or_default().to_string())
        .collect();
    RunOutcome::Job {
        job: Box::new(job),
        outputs,
        warnings,
    }
}

/// An effect a root can use.
#[derive(Debug, Clone, Serialize)]
pub struct EffectEntry {
    pub name: String,
    pub version: String,
    pub description: String,
    /// `built in`, or the module's path.
    pub origin: String,
    pub hash: String,
}

/// A module that was refused, and why.
#[derive(Debug, Clone, Serialize)]
pub struct RefusedModule {
    pub module: String,
    pub error: String,
}

/// The effects a root can use and the modules refused.
#[derive(Debug, Clone, Serialize)]
pub struct EffectList {
    pub effects: Vec<EffectEntry>,
    pub refused: Vec<RefusedModule>,
}

/// `sluice effects list`: the effects a root can use (built in and in its effects folder), and
/// the modules that were refused.
pub fn effects_list(cfg: &Config) -> Result<EffectList> {
    let fx = cfg.effects()?;
    Ok(EffectList {
        effects: fx
            .effects
            .values()
            .map(|e| EffectEntry {
                name: e.effect.descriptor.name.clone(),
                version: e.effect.descriptor.version.clone(),
                description: e.effect.descriptor.description.clone(),
                origin: e.origin.to_string(),
                hash: e.effect.hash.clone(),
            })
            .collect(),
        refused: fx
            .refused
            .iter()
            .map(|(module, error)| RefusedModule {
                module: module.clone(),
                error: error.clone(),
            })
            .collect(),
    })
}

/// An effect's descriptor with where its module came from.
#[derive(Debug, Clone)]
pub struct EffectInfo {
    pub descriptor: crate::effects::descriptor::Descriptor,
    pub origin: String,
    pub hash: String,
}

fn effect<'a>(fx: &'a crate::effects::Catalog, name: &str) -> Result<&'a crate::effects::Entry> {
    fx.get(name)
        .ok_or_else(|| anyhow!("no effect {name:?} (sluice effects list shows them)"))
}

/// `sluice effects info NAME`: an effect's descriptor.
pub fn effects_info(cfg: &Config, name: &str) -> Result<EffectInfo> {
    let fx = cfg.effects()?;
    let e = effect(&fx, name)?;
    Ok(EffectInfo {
        descriptor: e.effect.descriptor.clone(),
        origin: e.origin.to_string(),
        hash: e.effect.hash.clone(),
    })
}

/// What `effects check FILE.wasm` found.
#[derive(Debug, Clone, Serialize)]
pub struct EffectCheck {
    pub file: PathBuf,
    /// Whether the host would load it.
    pub ok: bool,
    /// Why not, when it would not.
    pub error: Option<String>,
    pub descriptor: Option<crate::effects::descriptor::Descriptor>,
    /// BLAKE3 of the module.
    pub hash: Option<String>,
    /// The effect of the same name the root has now (built in, or which file), if any: installing
    /// this module would clash with it.
    pub same_name: Option<String>,
}

/// `sluice effects check FILE.wasm`: the host's load checks and probe on one module.
pub fn effects_check(cfg: &Config, file: &Path) -> Result<EffectCheck> {
    let fx = cfg.effects()?;
    Ok(match fx.check_file(file) {
        Ok(e) => {
            let d = e.effect.descriptor.clone();
            EffectCheck {
                file: file.to_path_buf(),
                ok: true,
                error: None,
                same_name: fx.get(&d.name).map(|o| o.origin.to_string()),
                hash: Some(e.effect.hash.clone()),
                descriptor: Some(d),
            }
        }
        Err(error) => EffectCheck {
            file: file.to_path_buf(),
            ok: false,
            error: Some(error.to_string()),
            descriptor: None,
            hash: None,
            same_name: None,
        },
    })
}

/// What `effects install` did.
#[derive(Debug, Clone, Serialize)]
pub struct EffectInstalled {
    pub name: String,
    pub version: String,
    /// Where the module now is.
    pub path: PathBuf,
    /// `installed`, `replaced` (with `--force`) or `unchanged` (the same module was there).
    pub action: &'static str,
}

/// `sluice effects install FILE.wasm`: the module checked, then copied (temporary file and
/// rename) into the root's effects folder as `NAME.wasm`, where the watch host picks it up.
/// Never replaces a built-in effect; replaces another module of the same name only with
/// `force`.
pub fn effects_install(cfg: &Config, file: &Path, force: bool) -> Result<EffectInstalled> {
    let fx = cfg.effects()?;
    let e = fx
        .check_file(file)
        .map_err(|why| anyhow!("not installed: {why}"))?;
    let d = &e.effect.descriptor;
    let dir = cfg.effects_dir();
    let dest = dir.join(format!("{}.wasm", d.name));
    let mut action = "installed";
    if let Some(old) = fx.get(&d.name) {
        match &old.origin {
            crate::effects::Origin::Builtin => bail!(
                "not installed: {} declares the name `{}`, which is a built-in effect: give the effect another name",
                file.display(),
                d.name
            ),
            crate::effects::Origin::File(p) if old.effect.hash == e.effect.hash => {
                return Ok(EffectInstalled {
                    name: d.name.clone(),
                    version: d.version.clone(),
                    path: p.clone(),
                    action: "unchanged",
                });
            }
            crate::effects::Origin::File(p) => {
                if !force {
                    bail!(
                        "not installed: the root has effect `{}` {} already ({}); --force replaces it",
                        d.name,
                        old.effect.descriptor.version,
                        p.display()
                    );
                }
                if *p != dest {
                    // The old module under another file name: it goes, or two would claim the name.
                    std::fs::remove_file(p).with_context(|| p.display().to_string())?;
                }
                action = "replaced";
            }
        }
    } else if dest.exists() {
        // A file of that name that is not this effect (refused, or another effect's).
        if !force {
            bail!(
                "not installed: {} exists (a module the root refused, or named otherwise); --force replaces it",
                dest.display()
            );
        }
        action = "replaced";
    }
    // The bytes that were checked, written whole under the final name at once (the watch
    // host reads `*.wasm` only; the temporary is `.NAME.wasm....part`).
    let bytes = crate::effects::runtime::read_module(file)?;
    if blake3::hash(&bytes).to_hex().as_str() != e.effect.hash {
        bail!(
            "not installed: {} changed while it was checked",
            file.display()
        );
    }
    AtomicFile::write(&dest, &bytes)?;
    Ok(EffectInstalled {
        name: d.name.clone(),
        version: d.version.clone(),
        path: dest,
        action,
    })
}

/// What `effects test` measured.
#[derive(Debug, Clone, Serialize)]
pub struct EffectTest {
    pub name: String,
    pub version: String,
    pub sample_rate: u32,
    pub channels: usize,
    pub block: usize,
    /// Reported latency, frames.
    pub latency_frames: usize,
    /// The impulse response's largest magnitude and where it is.
    pub impulse_peak: f32,
    pub impulse_peak_frame: usize,
    /// RMS gain on a -12 dBFS log sweep from 20 Hz to `sweep_top_hz`.
    pub sweep_gain_db: f64,
    pub sweep_top_hz: f64,
    /// Seconds of CPU (wall) time per second of audio, on 10 s of noise.
    pub seconds_per_second: f64,
    /// The pictures written (`--plots DIR`): the frequency response and the impulse response.
    pub plots: Vec<PathBuf>,
}

/// The magnitude response (dB) at 1/24-octave points from 20 Hz to `top` Hz, from an impulse
/// response (the first 2^16 samples, zero-padded).
fn magnitude_response(resp: &[f32], rate: u32, top: f64) -> (Vec<f64>, Vec<f64>) {
    let n = 1 << 16;
    let mut buf: Vec<f64> = resp.iter().take(n).map(|v| f64::from(*v)).collect();
    buf.resize(n, 0.0);
    let fft = realfft::RealFftPlanner::<f64>::new().plan_fft_forward(n);
    let mut spec = fft.make_output_vec();
    if fft.process(&mut buf, &mut spec).is_err() {
        return (Vec::new(), Vec::new());
    }
    let bin_hz = f64::from(rate) / n as f64;
    let (mut freqs, mut db) = (Vec::new(), Vec::new());
    let mut f = 20.0f64;
    while f <= top {
        // The mean power of the bins within ±1/48 octave of f.
        let lo = ((f * 2f64.powf(-1.0 / 48.0)) / bin_hz).floor() as usize;
        let hi = (((f * 2f64.powf(1.0 / 48.0)) / bin_hz).ceil() as usize).min(spec.len() - 1);
        let bins = &spec[lo.min(hi)..=hi];
        let p = bins.iter().map(|c| c.norm_sqr()).sum::<f64>() / bins.len() as f64;
        freqs.push(f);
        db.push(10.0 * p.max(1e-30).log10());
        f *= 2f64.powf(1.0 / 24.0);
    }
    (freqs, db)
}

/// An effect under test: instances of it made with the parameters given, and audio run
/// through one in blocks (every channel fed the same signal; the first channel's output kept).
struct Trial<'a> {
    fx: &'a crate::effects::Catalog,
    effect: &'a crate::effects::Effect,
    values: Vec<(usize, f64)>,
    /// Audio for the effect's data slots, at `rate`.
    data: Vec<Vec<Vec<f32>>>,
    rate: u32,
    channels: usize,
    block: usize,
}

impl Trial<'_> {
    fn make(&self) -> Result<crate::effects::Instance> {
        let data: Vec<&[Vec<f32>]> = self.data.iter().map(Vec::as_slice).collect();
        let mut inst = crate::effects::Instance::with_data(
            self.fx.runtime(),
            self.effect,
            self.rate,
            self.channels,
            self.block,
            crate::effects::Limits::default(),
            &data,
        )?;
        for (i, p) in self.effect.descriptor.params.iter().enumerate() {
            let v = self
                .values
                .iter()
                .find(|(j, _)| *j == i)
                .map_or(p.default, |(_, v)| *v);
            inst.set_param(i, v)?;
        }
        // Started at the values given, as a job starts (no ramp from the defaults).
        inst.reset()?;
        Ok(inst)
    }

    fn run(&self, inst: &mut crate::effects::Instance, input: &[f32]) -> Result<Vec<f32>> {
        let mut out = Vec::with_capacity(input.len());
        for chunk in input.chunks(self.block) {
            let mut planes: Vec<Vec<f32>> = vec![chunk.to_vec(); self.channels];
            let mut views: Vec<&mut [f32]> = planes.iter_mut().map(|p| p.as_mut_slice()).collect();
            inst.process(&mut views)?;
            out.extend_from_slice(&planes[0]);
        }
        Ok(out)
    }
}

/// `KEY=VALUE` words as the effect's parameter indices and values.
fn param_values(
    d: &crate::effects::descriptor::Descriptor,
    params: &[String],
) -> Result<Vec<(usize, f64)>> {
    let mut values = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for kv in params {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| anyhow!("{kv}: give parameters as KEY=VALUE"))?;
        if seen.contains(&k) {
            bail!("{k} is given twice");
        }
        seen.push(k);
        if v.starts_with('@') {
            continue; // a data file (`data_files`)
        }
        let tv = v
            .parse::<f64>()
            .map(toml::Value::Float)
            .unwrap_or_else(|_| toml::Value::String(v.to_string()));
        let (i, x) = d
            .resolve(k, &tv)
            .map_err(|m| anyhow!("effect {}: {m}", d.name))?;
        values.push((i, x));
    }
    Ok(values)
}

/// The data files among `params` (`KEY=@FILE`), read for the effect's slots at `rate`.
fn data_files(
    d: &crate::effects::descriptor::Descriptor,
    params: &[String],
    rate: u32,
) -> Result<Vec<Vec<Vec<f32>>>> {
    let given: Vec<(String, String)> = params
        .iter()
        .filter_map(|kv| kv.split_once('='))
        .filter_map(|(k, v)| Some((k.to_string(), v.strip_prefix('@')?.to_string())))
        .map(|(k, f)| {
            let abs = std::path::absolute(&f).unwrap_or_else(|_| PathBuf::from(&f));
            (k, abs.to_string_lossy().into_owned())
        })
        .collect();
    let cap = crate::effects::Limits::default().memory_bytes;
    crate::effects::data_at_rate(d, &given, None, cap, rate).map_err(|m| {
        anyhow!(
            "effect {}: {m} (give it as {}=@FILE)",
            d.name,
            d.data.first().map_or("KEY", |s| s.id.as_str())
        )
    })
}

/// `sluice effects test NAME [KEY=VALUE...]`: an impulse and a sweep through the effect, and
/// its speed: latency, gain and CPU time per second of audio.
pub fn effects_test(
    cfg: &Config,
    name: &str,
    params: &[String],
    rate: u32,
    plots: Option<&Path>,
) -> Result<EffectTest> {
    let fx = cfg.effects()?;
    // A module file (`effects test my.wasm`), or an effect of the root by name.
    let from_file;
    let e = if name.ends_with(".wasm") && Path::new(name).is_file() {
        from_file = fx.check_file(Path::new(name))?;
        &from_file
    } else {
        effect(&fx, name)?
    };
    let d = &e.effect.descriptor;
    let trial = Trial {
        fx: &fx,
        effect: &e.effect,
        values: param_values(d, params)?,
        data: data_files(d, params, rate)?,
        rate,
        channels: d.max_channels.min(2) as usize,
        block: 512,
    };
    let mut inst = trial.make()?;
    let latency = inst.latency()?;
    // An impulse: where its response peaks.
    let mut imp = vec![0.0f32; rate as usize + latency];
    imp[0] = 1.0;
    let resp = trial.run(&mut inst, &imp)?;
    let (peak_at, peak) =
        resp.iter().enumerate().fold(
            (0, 0.0f32),
            |a, (i, v)| if v.abs() > a.1 { (i, v.abs()) } else { a },
        );
    // A logarithmic sweep, 20 Hz to 20 kHz over 5 s at -12 dBFS: the gain it sees.
    let mut inst = trial.make()?;
    let f1 = (20_000.0f64).min(f64::from(rate) * 0.45);
    let sweep = sluice_core::signal::log_sweep(rate, 20.0, f1, 0.25, rate as usize * 5);
    let out = trial.run(&mut inst, &sweep)?;
    let rms =
        |x: &[f32]| (x.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>() / x.len() as f64).sqrt();
    let gain_db = 20.0 * (rms(&out) / rms(&sweep)).log10();
    // Speed: 10 s of noise in 512-frame blocks.
    let mut inst = trial.make()?;
    let noise = sluice_core::signal::noise(0x1234_5678, 0.25, rate as usize * 10);
    let t = std::time::Instant::now();
    trial.run(&mut inst, &noise)?;
    let took = t.elapsed().as_secs_f64();
    let written = match plots {
        Some(dir) => response_plots(&trial, dir, params, latency, f1)?,
        None => Vec::new(),
    };
    Ok(EffectTest {
        name: d.name.clone(),
        version: d.version.clone(),
        sample_rate: rate,
        channels: trial.channels,
        block: trial.block,
        latency_frames: latency,
        impulse_peak: peak,
        impulse_peak_frame: peak_at,
        sweep_gain_db: gain_db,
        sweep_top_hz: f1,
        seconds_per_second: took / 10.0,
        plots: written,
    })
}

/// The effect's frequency response (up to `f1`) and impulse response as pictures in `dir`.
fn response_plots(
    trial: &Trial,
    dir: &Path,
    params: &[String],
    latency: usize,
    f1: f64,
) -> Result<Vec<PathBuf>> {
    let (d, rate) = (&trial.effect.descriptor, trial.rate);
    let mut written = Vec::new();
    std::fs::create_dir_all(dir).with_context(|| dir.display().to_string())?;
    let setting = if params.is_empty() {
        "defaults".to_string()
    } else {
        params.join(" ")
    };
    // Parameters glide to their values: the impulse comes after half a second of silence.
    let pre = rate as usize / 2;
    let mut inst = trial.make()?;
    let mut imp = vec![0.0f32; pre + rate as usize + latency];
    imp[pre] = 1.0;
    let resp = trial.run(&mut inst, &imp)?.split_off(pre);
    let peak = resp.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let (freqs, db) = magnitude_response(&resp, rate, f1);
    let title = format!("{} {}: frequency response ({setting})", d.name, d.version);
    let path = dir.join(format!("{}-frequency.png", d.name));
    crate::plot::write_response(&path, &title, &freqs, &db)
        .with_context(|| path.display().to_string())?;
    written.push(path);
    // The impulse response until it has fallen 60 dB below its peak (10 ms to 1 s).
    let floor = peak * 1e-3;
    let last = resp.iter().rposition(|v| v.abs() > floor).unwrap_or(0);
    let shown = (last + 1).clamp(rate as usize / 100, resp.len());
    let cols = 1200.min(shown);
    let per = shown.div_ceil(cols);
    let (mins, maxs): (Vec<f32>, Vec<f32>) = resp[..shown]
        .chunks(per)
        .map(|c| {
            (
                c.iter().copied().fold(f32::INFINITY, f32::min),
                c.iter().copied().fold(f32::NEG_INFINITY, f32::max),
            )
        })
        .unzip();
    let title = format!("{} {}: impulse response ({setting})", d.name, d.version);
    let path = dir.join(format!("{}-impulse.png", d.name));
    crate::plot::write_waveform(
        &path,
        &crate::plot::WaveformPlot {
            title: &title,
            duration_seconds: shown as f64 / f64::from(rate),
            channels: vec![("out", &mins, &maxs)],
        },
    )
    .with_context(|| path.display().to_string())?;
    written.push(path);
    Ok(written)
}

#[cfg(test)]
mod response_tests {
    use super::magnitude_response;

    #[test]
    fn the_magnitude_response_of_known_impulses() {
        // Half, delayed: -6.02 dB everywhere.
        let mut h = vec![0.0f32; 100];
        h[10] = 0.5;
        let (f, db) = magnitude_response(&h, 48_000, 20_000.0);
        assert!(f[0] == 20.0 && *f.last().unwrap() <= 20_000.0 && f.len() > 200);
        assert!(db.iter().all(|d| (d + 6.0206).abs() < 1e-6), "{db:?}");
        // The mean of two neighbours: |cos(pi f / fs)|, -3.01 dB at fs/4 = 12 kHz.
        let (f, db) = magnitude_response(&[0.5, 0.5], 48_000, 20_000.0);
        for (f, d) in f.iter().zip(&db) {
            let want = 20.0 * (std::f64::consts::PI * f / 48_000.0).cos().log10();
            assert!((d - want).abs() < 0.05, "{f} Hz: {d} vs {want}");
        }
    }
}

#[cfg(test)]
mod root_tests {
    /// The configuration a new root gets, with every example line uncommented, is valid.
    #[test]
    fn the_default_configuration_uncommented_loads() {
        let dir = tempfile::tempdir().unwrap();
        super::init_root(dir.path()).unwrap();
        let text = std::fs::read_to_string(dir.path().join(crate::config::CONFIG_FILE)).unwrap();
        let uncommented: String = text
            .lines()
            .filter(|l| {
                l.starts_with("# ") && !l.starts_with("# The") && !l.starts_with("# sluice")
            })
            .map(|l| {
                let l = &l[2..];
                // The comment after the value.
                let l = l.split("  #").next().unwrap_or(l);
                format!("{}\n", l.trim_end())
            })
            .filter(|l| l.contains('=') || l.starts_with('['))
            .collect();
        std::fs::write(dir.path().join(crate::config::CONFIG_FILE), &uncommented).unwrap();
        let c = crate::config::Config::load(dir.path())
            .unwrap_or_else(|e| panic!("{e:#}\n{uncommented}"));
        assert_eq!(c.server.unwrap().webhooks.len(), 1);
    }
}
