//! The host's state in one redb file: the file index, jobs, the queue and an event log.
//!
//! Records are JSON inside redb values, so a field added later reads as its default; changes
//! that need rewriting go through [`MIGRATIONS`], applied in order when an older file is
//! opened. A file written by a newer sluice is refused, and a damaged one is an error: the host
//! never starts over silently.
//!
//! The database is opened in redb's multi-writer mode, so `sluice jobs`, `sluice retry` and the
//! other commands work while `sluice watch` runs; the host picks up what they queue.
//!
//! ## The only truth
//!
//! Job state lives here and nowhere else: workers claim from the store (a channel only wakes
//! them, carrying nothing), and the paths a job will write are reserved in a table, not in a
//! process's memory. The tables come in families, each in its own file with the invariants
//! its write transactions keep; `Store::check` verifies them all over a whole file, and the
//! tests run it after every kind of change:
//!
//! - `files.rs`: the file index (FILES) and what each pipeline has taken (SEEN);
//! - `jobs.rs`: jobs, their dedup keys, the queue and the reserved output paths (JOBS,
//!   JOB_KEYS, QUEUE, RESERVED, PIPELINE_FILES), invariants 1 to 4;
//! - `events.rs`: the event log (EVENTS);
//! - `references.rs`: the reference library (REFS, REF_CHUNKS, REF_HASHES, REF_SUMS),
//!   invariant 5;
//! - `uploads.rs`: the HTTP API's uploads, batches, regions and analyses.
//!
//! META (here) holds the schema version and the next job and event ids.

use redb::{ReadableDatabase, ReadableTable, TableDefinition, TableHandle};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// `schema_version`, `next_job`, `next_event`.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

mod events;
mod files;
mod jobs;
use events::{EVENTS, log_event, log_in};
use files::{FILES, SEEN};
use jobs::{JOB_KEYS, JOBS, PIPELINE_FILES, QUEUE, RESERVED, holds_paths, job_key};
mod references;
pub use references::{Duplicate, NewReference, ReferenceRecord, genre_key};
use references::{REF_CHUNKS, REF_HASHES, REF_SUMS, REFS};
mod uploads;
use uploads::{ANALYSES, BATCHES, REGIONS, UPLOADS};
pub use uploads::{
    AnalysisRecord, BatchFile, BatchRecord, BatchStatus, FileStatus, RegionRecord, UploadRecord,
};

type Migration = fn(&redb::WriteTransaction) -> std::result::Result<(), redb::Error>;
/// `MIGRATIONS[i]` takes a file from version `i + 1` to `i + 2`. A change to the tables or
/// records that old files cannot be read as goes here, and never changes once released.
const MIGRATIONS: &[Migration] = &[
    jobs::reserve_planned_paths,
    references::reference_tables,
    uploads::upload_table,
    uploads::analysis_table,
];

/// The schema this build writes: the first, plus one per migration.
pub const SCHEMA_VERSION: u64 = 1 + MIGRATIONS.len() as u64;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "{path}: the state database is damaged ({detail}). sluice does not start over on its own: move the file aside to start with an empty state (jobs and the file index are then forgotten), or restore a backup"
    )]
    Damaged { path: PathBuf, detail: String },
    #[error(
        "{path}: written by a newer sluice (schema {found}; this one knows up to {SCHEMA_VERSION}): upgrade sluice"
    )]
    Newer { path: PathBuf, found: u64 },
    #[error("{path}: no state yet (has `sluice watch` run on this root?)")]
    Missing { path: PathBuf },
    #[error("{path}: {detail}")]
    Db { path: PathBuf, detail: String },
}

pub type Result<T> = std::result::Result<T, StoreError>;

pub fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// What the index knows about a file in a watch folder.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FileRecord {
    pub size: u64,
    /// Modification time, ns since the epoch.
    pub mtime_ns: i128,
    /// BLAKE3 of the content, hex.
    pub hash: String,
    pub indexed_ms: i64,
    /// Format facts from the header, when it could be read.
    #[serde(default)]
    pub probe: Option<ProbeSummary>,
    /// The last analysis of this content (integrated loudness, true peak...).
    #[serde(default)]
    pub analysis: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ProbeSummary {
    pub format: String,
    pub sample_rate: u32,
    pub channels: u32,
    pub duration_seconds: Option<f64>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Queued,
    Running,
    Done,
    Failed,
    Quarantined,
}

impl JobState {
    pub const ALL: [JobState; 5] = [
        JobState::Queued,
        JobState::Running,
        JobState::Done,
        JobState::Failed,
        JobState::Quarantined,
    ];
    pub fn name(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Done => "done",
            JobState::Failed => "failed",
            JobState::Quarantined => "quarantined",
        }
    }
    pub fn parse(s: &str) -> Option<JobState> {
        JobState::ALL.into_iter().find(|j| j.name() == s)
    }
}

/// An output a job wrote.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OutputRecord {
    /// Relative to the root.
    pub path: PathBuf,
    pub bytes: u64,
    /// BLAKE3, hex.
    pub hash: String,
    pub format: String,
}

/// What a job's planned paths are for (see [`Store::plan`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct Layout<'a> {
    /// The pipeline version they follow.
    pub version: &'a str,
    /// Whether the last of them is where the source is moved.
    pub moves_source: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct JobRecord {
    pub id: u64,
    pub pipeline: String,
    pub pipeline_hash: String,
    /// The source, relative to the root, where it arrived (any bytes the file system allows:
    /// a name that is not UTF-8 is kept exactly, see [`path_codec`]).
    #[serde(with = "path_codec")]
    pub input: PathBuf,
    pub content_hash: String,
    pub state: JobState,
    pub attempts: u32,
    pub progress: f64,
    pub created_ms: i64,
    #[serde(default)]
    pub started_ms: Option<i64>,
    #[serde(default)]
    pub finished_ms: Option<i64>,
    /// Earliest start (retries wait).
    #[serde(default)]
    pub not_before_ms: i64,
    #[serde(default)]
    pub error: Option<String>,
    /// Where the outputs, report and moved source go, fixed when the job first starts so a
    /// re-run after a crash writes the same files.
    #[serde(default)]
    pub planned: Vec<PathBuf>,
    /// The pipeline version `planned` was made for: a job planned before an edit of its
    /// pipeline is planned again (`None`: a record from before this was kept, planned for its
    /// `pipeline_hash`).
    #[serde(default)]
    pub planned_for: Option<String>,
    /// Whether the last of `planned` is where the source is moved (the rest are written).
    #[serde(default)]
    pub planned_move: bool,
    #[serde(default)]
    pub outputs: Vec<OutputRecord>,
    #[serde(default)]
    pub report: Option<PathBuf>,
    /// Where the source is now, when it was moved (done, or quarantined).
    #[serde(default)]
    pub source_now: Option<PathBuf>,
    /// A source deletion decided but not yet done.
    #[serde(default)]
    pub delete_pending: bool,
    /// Settle-to-start latency, ms (for the load figures).
    #[serde(default)]
    pub settled_ms: Option<i64>,
    /// Runs of this job that a host stopping (a crash, `kill -9`, a power cut) cut short. They
    /// count as attempts; past the ceiling the source is quarantined, since it may be what
    /// stops the host.
    #[serde(default)]
    pub interrupted: u32,
    /// Who runs it now: the process id, and whether by hand (`sluice run`) rather than by a
    /// `sluice watch` host.
    #[serde(default)]
    pub runner: Option<Runner>,
    /// On a farm (`[cluster]`): the worker the job ran on, `?` while it is out on the farm
    /// and no worker has answered yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ran_on: Option<String>,
    /// The album the file arrived in, when the pipeline normalizes albums.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub album: Option<AlbumRecord>,
}

/// The process running a job.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct Runner {
    pub pid: u32,
    pub by_hand: bool,
}

impl Runner {
    pub fn watch() -> Runner {
        Runner {
            pid: std::process::id(),
            by_hand: false,
        }
    }
}

/// Whether process `pid` is running (Linux: `/proc`). A zombie (a process that has ended but
/// whose parent has not yet collected it, as after a `kill -9`) is not.
fn alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // "pid (command) state ...": the command may hold spaces and parentheses.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next())
            .is_some_and(|state| !matches!(state, 'Z' | 'X')),
        Err(_) => false,
    }
}

/// File paths in records and keys, exactly. A UTF-8 path is its text; any other is `\0x:`
/// and the hex of its bytes, which no real name can be (a name cannot hold NUL).
pub mod path_codec {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::path::{Path, PathBuf};

    const RAW: &str = "\0x:";

    pub fn encode(p: &Path) -> String {
        match p.to_str() {
            Some(s) => s.to_string(),
            None => {
                use std::os::unix::ffi::OsStrExt;
                let mut s = String::from(RAW);
                for b in p.as_os_str().as_bytes() {
                    s.push_str(&format!("{b:02x}"));
                }
                s
            }
        }
    }

    pub fn decode(s: &str) -> PathBuf {
        use std::os::unix::ffi::OsStringExt;
        if let Some(hex) = s.strip_prefix(RAW)
            && hex.len() % 2 == 0
            && let Some(bytes) = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok())
                .collect::<Option<Vec<u8>>>()
        {
            return PathBuf::from(std::ffi::OsString::from_vec(bytes));
        }
        PathBuf::from(s)
    }

    pub fn serialize<S: Serializer>(p: &Path, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&encode(p))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<PathBuf, D::Error> {
        String::deserialize(d).map(|s| decode(&s))
    }
}

impl JobRecord {
    /// A job another node owns, as a farm worker runs it: its paths already planned, nothing
    /// recorded here.
    pub fn detached(
        id: u64,
        pipeline: &str,
        pipeline_hash: &str,
        input: PathBuf,
        content_hash: String,
        planned: Vec<PathBuf>,
    ) -> JobRecord {
        JobRecord {
            planned,
            runner: None,
            ..JobRecord::new(
                id,
                pipeline,
                pipeline_hash,
                input,
                content_hash,
                JobState::Running,
            )
        }
    }

    /// The pipeline version the job's paths were planned for.
    pub fn planned_version(&self) -> &str {
        self.planned_for.as_deref().unwrap_or(&self.pipeline_hash)
    }

    /// The paths given up, to be planned afresh.
    pub fn unplan(&mut self) {
        self.planned.clear();
        self.planned_for = None;
        self.planned_move = false;
    }

    /// The runner of a job left `running` by a process that has since ended (a `sluice run` or
    /// a host killed or crashed mid-render); `None` when the job is not running, its runner is
    /// alive or unknown, or it is out on a farm. Such a job waits for the next `sluice run` of
    /// the file (when a `sluice run` left it) or the next host start to run it again.
    pub fn cut_short(&self) -> Option<Runner> {
        match self.runner {
            Some(r) if self.state == JobState::Running && self.ran_on.is_none() => {
                (!alive(r.pid)).then_some(r)
            }
            _ => None,
        }
    }

    /// A new job for `input` (relative to the root, or absolute for `sluice run`).
    fn new(
        id: u64,
        pipeline: &str,
        pipeline_hash: &str,
        input: PathBuf,
        content_hash: String,
        state: JobState,
    ) -> JobRecord {
        let now = now_ms();
        let running = state == JobState::Running;
        JobRecord {
            id,
            pipeline: pipeline.to_string(),
            pipeline_hash: pipeline_hash.to_string(),
            input,
            content_hash,
            state,
            attempts: u32::from(running),
            progress: 0.0,
            created_ms: now,
            started_ms: running.then_some(now),
            finished_ms: None,
            not_before_ms: 0,
            error: None,
            planned: Vec::new(),
            planned_for: None,
            planned_move: false,
            outputs: Vec::new(),
            report: None,
            source_now: None,
            delete_pending: false,
            settled_ms: None,
            interrupted: 0,
            album: None,
            runner: running.then(|| Runner {
                pid: std::process::id(),
                by_hand: true,
            }),
            ran_on: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Event {
    pub id: u64,
    pub time_ms: i64,
    #[serde(default)]
    pub job: Option<u64>,
    pub kind: EventKind,
    pub message: String,
}

/// Declares [`EventKind`] with each variant's name written once: the serde name, `name()` and
/// `ALL` all come from it, so a new kind cannot be missing from any of them.
macro_rules! event_kinds {
    ($($(#[doc = $doc:literal])* $v:ident => $n:literal,)*) => {
        /// What an event of the log records: stored, shown and sent (webhooks, the live feed) as
        /// its snake_case name.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum EventKind {
            $($(#[doc = $doc])* #[serde(rename = $n)] $v,)*
            /// A kind this version does not know (written by another version).
            #[serde(other, rename = "other")]
            Other,
        }

        impl EventKind {
            /// Every kind, in the order declared, `Other` last.
            pub const ALL: &[EventKind] = &[$(EventKind::$v,)* EventKind::Other];

            /// Its name, as stored and sent.
            pub fn name(self) -> &'static str {
                match self {
                    $(EventKind::$v => $n,)*
                    EventKind::Other => "other",
                }
            }
        }
    };
}

event_kinds! {
    /// A job was queued for a file that settled.
    Queued => "queued",
    /// A job started (`sluice run`).
    Started => "started",
    Done => "done",
    Failed => "failed",
    Quarantined => "quarantined",
    /// Queued again by hand (`sluice retry`, the API's retry).
    Retry => "retry",
    /// Queued again after a transient failure, with a wait.
    RetryScheduled => "retry_scheduled",
    /// A job cut off by a stop, queued again at the next start.
    Interrupted => "interrupted",
    /// A job left running by a process that ended, queued again at start.
    Requeued => "requeued",
    /// A file with the content of another job's input.
    Duplicate => "duplicate",
    /// A job waiting (its pipeline not loaded, or a duplicate's outcome).
    Waiting => "waiting",
    /// A job's source changed under it.
    Invalidated => "invalidated",
    /// Sent to the farm.
    Farmed => "farmed",
    /// Something worth knowing that changes nothing (a pipeline changed since queued).
    Note => "note",
    /// Something that went wrong beside the job's outcome (a source that could not be deleted).
    Warning => "warning",
    /// A path not taken (a symbolic link).
    Ignored => "ignored",
    /// An effect in the root's effects folder refused at load.
    EffectRefused => "effect_refused",
    /// A pipeline file refused at load.
    PipelineRefused => "pipeline_refused",
}

impl EventKind {
    /// The job events a webhook can ask for.
    pub const WEBHOOK: [EventKind; 6] = [
        EventKind::Queued,
        EventKind::Started,
        EventKind::Done,
        EventKind::Failed,
        EventKind::Quarantined,
        EventKind::Retry,
    ];

    /// The kind of this name.
    pub fn named(name: &str) -> Option<EventKind> {
        EventKind::ALL.iter().copied().find(|k| k.name() == name)
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A file that settled, for [`Store::intake`].
pub struct Arrival<'a> {
    pub rel: &'a str,
    pub record: FileRecord,
    /// Pipelines that take this file: (name, version hash).
    pub pipelines: Vec<(&'a str, &'a str)>,
    /// The album the file arrived in, for each pipeline above that normalizes albums.
    pub albums: Vec<(&'a str, AlbumRecord)>,
    pub settled_ms: i64,
}

/// The album a job's file belongs to: the folder it arrived in (settled as a whole), measured
/// when it settled. The job's loudness normalization steers from `lufs` (the album's
/// loudness by the pipeline's album mode), so every file of the album gets the same gain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlbumRecord {
    /// The folder, relative to the root.
    #[serde(with = "path_codec")]
    pub folder: PathBuf,
    pub mode: sluice_core::render::normalize::AlbumMode,
    /// The files measured (those of the folder the pipeline takes, readable as audio).
    pub tracks: u32,
    pub lufs: f64,
}

/// What [`Store::intake`] decided for one pipeline.
#[derive(Debug, Clone, PartialEq)]
pub enum Intake {
    Queued(u64),
    /// This file, unchanged, was already taken by the pipeline.
    AlreadySeen,
    /// The same content already went through this pipeline version and gave its outputs.
    Duplicate(u64),
    /// The same content is queued or running in this pipeline version: if that job fails,
    /// this file is taken on its own (see [`Store::update_job`]).
    Waiting(u64),
}

pub struct Store {
    db: redb::Database,
    path: PathBuf,
}

fn builder() -> redb::Builder {
    let mut b = redb::Builder::new();
    b.set_concurrency_mode(redb::ConcurrencyMode::MultiWriter);
    b
}

fn json<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("records serialize")
}

impl Store {
    fn err(&self, e: impl std::fmt::Display) -> StoreError {
        StoreError::Db {
            path: self.path.clone(),
            detail: e.to_string(),
        }
    }

    /// Open the state database, creating it when `create` and it does not exist.
    pub fn open(path: &Path, create: bool) -> Result<Store> {
        Store::open_migrating(path, create, MIGRATIONS)
    }

    fn open_migrating(path: &Path, create: bool, migrations: &[Migration]) -> Result<Store> {
        // An empty file is a database another handle is making this moment (a watch host and
        // its server starting together): made (or joined) here too, not taken for damage.
        let exists = std::fs::metadata(path).is_ok_and(|m| m.len() > 0);
        if !exists && !create {
            return Err(StoreError::Missing {
                path: path.to_path_buf(),
            });
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Db {
                path: path.to_path_buf(),
                detail: e.to_string(),
            })?;
        }
        let damaged = |detail: String| StoreError::Damaged {
            path: path.to_path_buf(),
            detail,
        };
        // redb may panic on some damage instead of returning an error.
        let opened = std::panic::catch_unwind(|| {
            let mut b = builder();
            // Verify every page: damage is found here instead of trusted.
            b.set_check_integrity_on_open(true);
            // `create` opens a valid database as it is and makes a new one in a missing or
            // empty file.
            if create { b.create(path) } else { b.open(path) }
        });
        let db = match opened {
            Ok(Ok(db)) => db,
            Ok(Err(redb::DatabaseError::Storage(e))) => return Err(damaged(e.to_string())),
            Ok(Err(redb::DatabaseError::UpgradeRequired(v))) => {
                return Err(damaged(format!("redb file format {v} needs an upgrade")));
            }
            Ok(Err(e)) => {
                return Err(StoreError::Db {
                    path: path.to_path_buf(),
                    detail: e.to_string(),
                });
            }
            Err(_) => return Err(damaged("redb could not read it".into())),
        };
        let store = Store {
            db,
            path: path.to_path_buf(),
        };
        store.init(migrations).map_err(|e| match e {
            StoreError::Db { detail, .. } => damaged(detail),
            other => other,
        })?;
        Ok(store)
    }

    /// Create the tables of a new file, check the version of an existing one, migrate: all in
    /// one transaction, so a failed migration leaves the file as it was.
    fn init(&self, migrations: &[Migration]) -> Result<()> {
        let target = 1 + migrations.len() as u64;
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        let version = {
            let mut meta = tx.open_table(META).map_err(|e| self.err(e))?;
            let v = meta
                .get("schema_version")
                .map_err(|e| self.err(e))?
                .map(|v| v.value());
            match v {
                Some(v) => v,
                None => {
                    // A new file, or a redb file that is not ours.
                    let foreign = tx
                        .list_tables()
                        .map_err(|e| self.err(e))?
                        .any(|t| t.name() != "meta");
                    if foreign {
                        return Err(StoreError::Db {
                            path: self.path.clone(),
                            detail: "a redb file, but not a sluice state database".into(),
                        });
                    }
                    meta.insert("schema_version", target)
                        .map_err(|e| self.err(e))?;
                    meta.insert("next_job", 1).map_err(|e| self.err(e))?;
                    meta.insert("next_event", 1).map_err(|e| self.err(e))?;
                    meta.insert("next_reference", 1).map_err(|e| self.err(e))?;
                    target
                }
            }
        };
        if version > target {
            return Err(StoreError::Newer {
                path: self.path.clone(),
                found: version,
            });
        }
        for (i, m) in migrations
            .iter()
            .enumerate()
            .skip((version as usize).saturating_sub(1))
        {
            m(&tx).map_err(|e| self.err(format!("migration to schema {}: {e}", i + 2)))?;
        }
        {
            let mut meta = tx.open_table(META).map_err(|e| self.err(e))?;
            meta.insert("schema_version", target)
                .map_err(|e| self.err(e))?;
        }
        // Open every table once so readers find them.
        tx.open_table(FILES).map_err(|e| self.err(e))?;
        tx.open_table(SEEN).map_err(|e| self.err(e))?;
        tx.open_table(JOBS).map_err(|e| self.err(e))?;
        tx.open_table(JOB_KEYS).map_err(|e| self.err(e))?;
        tx.open_table(QUEUE).map_err(|e| self.err(e))?;
        tx.open_table(EVENTS).map_err(|e| self.err(e))?;
        tx.open_table(PIPELINE_FILES).map_err(|e| self.err(e))?;
        tx.open_table(RESERVED).map_err(|e| self.err(e))?;
        if target >= 3 {
            tx.open_table(REFS).map_err(|e| self.err(e))?;
            tx.open_table(REF_CHUNKS).map_err(|e| self.err(e))?;
            tx.open_table(REF_SUMS).map_err(|e| self.err(e))?;
            tx.open_table(REF_HASHES).map_err(|e| self.err(e))?;
        }
        if target >= 4 {
            tx.open_table(UPLOADS).map_err(|e| self.err(e))?;
            tx.open_table(BATCHES).map_err(|e| self.err(e))?;
            tx.open_table(REGIONS).map_err(|e| self.err(e))?;
        }
        if target >= 5 {
            tx.open_table(ANALYSES).map_err(|e| self.err(e))?;
        }
        tx.commit().map_err(|e| self.err(e))
    }

    fn write<T>(
        &self,
        f: impl FnOnce(&redb::WriteTransaction) -> std::result::Result<T, redb::Error>,
    ) -> Result<T> {
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        let v = f(&tx).map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))?;
        Ok(v)
    }

    fn read<T>(
        &self,
        f: impl FnOnce(&redb::ReadTransaction) -> std::result::Result<T, redb::Error>,
    ) -> Result<T> {
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        f(&tx).map_err(|e| self.err(e))
    }

    /// Check the invariants (written at the top of `jobs.rs` and in `references.rs`) over the
    /// whole file; the problems found, in words (none for a sound file).
    pub fn check(&self) -> Result<Vec<String>> {
        self.read(|tx| {
            let mut problems = Vec::new();
            let jobs: Vec<JobRecord> = tx
                .open_table(JOBS)?
                .iter()?
                .filter_map(|r| r.ok())
                .filter_map(|(_, v)| serde_json::from_slice(v.value()).ok())
                .collect();
            let by_id: std::collections::HashMap<u64, &JobRecord> =
                jobs.iter().map(|j| (j.id, j)).collect();
            // 1. QUEUE mirrors the queued jobs.
            let queue: Vec<(i64, u64)> = tx
                .open_table(QUEUE)?
                .iter()?
                .filter_map(|r| r.ok())
                .map(|(k, _)| k.value())
                .collect();
            for &(nb, id) in &queue {
                match by_id.get(&id) {
                    Some(j) if j.state == JobState::Queued && j.not_before_ms == nb => {}
                    Some(j) => problems.push(format!(
                        "QUEUE has job {id} at {nb}, which is {} at {}",
                        j.state.name(),
                        j.not_before_ms
                    )),
                    None => problems.push(format!("QUEUE has job {id}, which does not exist")),
                }
            }
            for j in jobs.iter().filter(|j| j.state == JobState::Queued) {
                if !queue.contains(&(j.not_before_ms, j.id)) {
                    problems.push(format!("job {} is queued but not in QUEUE", j.id));
                }
            }
            // 2. JOB_KEYS names live or successful work.
            for r in tx.open_table(JOB_KEYS)?.iter()? {
                let (k, v) = r?;
                let (key, id) = (k.value().to_string(), v.value());
                match by_id.get(&id) {
                    Some(j) if job_key(j) != key => problems.push(format!(
                        "JOB_KEYS {key:?} names job {id}, whose key is {:?}",
                        job_key(j)
                    )),
                    Some(j) if matches!(j.state, JobState::Failed | JobState::Quarantined) => {
                        problems.push(format!(
                            "JOB_KEYS {key:?} names job {id}, which is {}",
                            j.state.name()
                        ))
                    }
                    Some(_) => {}
                    None => problems.push(format!("JOB_KEYS {key:?} names missing job {id}")),
                }
            }
            // 3. RESERVED holds the planned paths of queued and running jobs.
            let reserved: std::collections::HashMap<String, u64> = tx
                .open_table(RESERVED)?
                .iter()?
                .filter_map(|r| r.ok())
                .map(|(k, v)| (k.value().to_string(), v.value()))
                .collect();
            let mut wanted = std::collections::HashMap::new();
            for j in jobs.iter().filter(|j| holds_paths(j.state)) {
                for p in &j.planned {
                    if let Some(other) = wanted.insert(path_codec::encode(p), j.id) {
                        problems.push(format!(
                            "{} is planned by jobs {other} and {}",
                            p.display(),
                            j.id
                        ));
                    }
                }
            }
            for (p, id) in &wanted {
                if reserved.get(p) != Some(id) {
                    problems.push(format!(
                        "{p} is planned by job {id} but not reserved for it"
                    ));
                }
            }
            for (p, id) in &reserved {
                if wanted.get(p) != Some(id) {
                    problems.push(format!(
                        "{p} is reserved for job {id}, which is not queued or running with it"
                    ));
                }
            }
            // 5. The reference tables name the same references.
            references::check(tx, &mut problems)?;
            Ok(problems)
        })
    }

    /// A number kept under `key` in the META table (cursors and counters).
    pub fn meta(&self, key: &str) -> Result<Option<u64>> {
        self.read(|tx| Ok(tx.open_table(META)?.get(key)?.map(|v| v.value())))
    }

    pub fn set_meta(&self, key: &str, value: u64) -> Result<()> {
        self.write(|tx| {
            tx.open_table(META)?.insert(key, value)?;
            Ok(())
        })
    }

    pub fn schema_version(&self) -> Result<u64> {
        self.read(|tx| {
            let t = tx.open_table(META)?;
            Ok(t.get("schema_version")?.map_or(0, |v| v.value()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An event kind is stored under its name; a record written by another version with a kind
    /// this one does not know still reads (as `Other`).
    #[test]
    fn event_kinds_are_stored_by_name_and_unknown_ones_still_read() {
        for &k in EventKind::ALL {
            assert_eq!(
                serde_json::to_string(&k).unwrap(),
                format!("\"{}\"", k.name())
            );
            assert_eq!(EventKind::named(k.name()), Some(k));
        }
        let old = r#"{"id":4,"time_ms":1,"job":2,"kind":"requeued","message":"m"}"#;
        let e: Event = serde_json::from_str(old).unwrap();
        assert_eq!(e.kind, EventKind::Requeued);
        let future = r#"{"id":5,"time_ms":1,"job":null,"kind":"teleported","message":"m"}"#;
        let e: Event = serde_json::from_str(future).unwrap();
        assert_eq!(e.kind, EventKind::Other);
    }

    fn rec(hash: &str) -> FileRecord {
        FileRecord {
            size: 10,
            mtime_ns: 1,
            hash: hash.into(),
            indexed_ms: 0,
            probe: None,
            analysis: None,
        }
    }

    /// A host and its server (or two processes) opening a root's new database at the same
    /// moment: both get it, made once.
    #[test]
    fn a_new_database_opened_twice_at_once_is_made_once() {
        for _ in 0..40 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join(".sluice/state.redb");
            let barrier = std::sync::Barrier::new(2);
            std::thread::scope(|s| {
                let opens: Vec<_> = (0..2)
                    .map(|_| {
                        s.spawn(|| {
                            barrier.wait();
                            Store::open(&path, true).map(|_| ())
                        })
                    })
                    .collect();
                for o in opens {
                    o.join().unwrap().unwrap();
                }
            });
            assert!(Store::open(&path, false).is_ok());
        }
    }

    /// A database file that exists but is empty (another handle is making it): opened with
    /// `create` it is made, not called damaged; without, it is missing.
    #[test]
    fn an_empty_database_file_is_one_being_made() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        std::fs::File::create(&path).unwrap();
        assert!(matches!(
            Store::open(&path, false),
            Err(StoreError::Missing { .. })
        ));
        let s = Store::open(&path, true).unwrap();
        s.set_meta("k", 7).unwrap();
        drop(s);
        assert_eq!(
            Store::open(&path, false).unwrap().meta("k").unwrap(),
            Some(7)
        );
    }

    /// A second handle opened while the first writes (the server starting beside a busy
    /// host): it opens.
    #[test]
    fn a_database_opens_while_another_handle_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        let a = Store::open(&path, true).unwrap();
        let stop = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                let mut i = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    a.set_meta(&format!("k{}", i % 50), i).unwrap();
                    i += 1;
                }
            });
            for _ in 0..100 {
                if let Err(e) = Store::open(&path, true) {
                    stop.store(true, std::sync::atomic::Ordering::Relaxed);
                    panic!("{e}");
                }
            }
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
        });
    }

    #[test]
    fn intake_dedups_by_content_and_version() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("s.redb"), true).unwrap();
        let arrive = |rel: &str, hash: &str, ver: &'static str| {
            s.intake(&[Arrival {
                rel,
                record: rec(hash),
                pipelines: vec![("p", ver)],
                albums: vec![],
                settled_ms: 0,
            }])
            .unwrap()
            .remove(0)
            .remove(0)
            .1
        };
        assert_eq!(arrive("in/a.wav", "h1", "v1"), Intake::Queued(1));
        assert_eq!(arrive("in/a.wav", "h1", "v1"), Intake::AlreadySeen);
        // A rename: same content, same version, while job 1 has not finished: it waits on it.
        assert_eq!(arrive("in/b.wav", "h1", "v1"), Intake::Waiting(1));
        // The same file is not redone when the pipeline changes...
        assert_eq!(arrive("in/a.wav", "h1", "v2"), Intake::AlreadySeen);
        // ...but the same content arriving anew goes through the new version.
        assert_eq!(arrive("in/c.wav", "h1", "v2"), Intake::Queued(2));
        // Changed content at the same path is new.
        assert_eq!(arrive("in/a.wav", "h2", "v2"), Intake::Queued(3));
        assert_eq!(s.jobs(Some(JobState::Queued)).unwrap().len(), 3);

        let j = s.claim_next().unwrap().unwrap();
        assert_eq!((j.id, j.state, j.attempts), (1, JobState::Running, 1));
        drop(s);
        let s = Store::open(&dir.path().join("s.redb"), false).unwrap();
        let (back, over) = s.requeue_running(3, false).unwrap();
        assert_eq!((back.len(), over.len()), (1, 0));
        assert_eq!((back[0].interrupted, back[0].attempts), (1, 1));
        let order: Vec<u64> =
            std::iter::from_fn(|| s.claim_next().unwrap().map(|j| j.id)).collect();
        assert_eq!(order, [1, 2, 3]);
        assert!(
            s.events(Some(1))
                .unwrap()
                .iter()
                .any(|e| e.kind == EventKind::Requeued)
        );
    }

    fn arrive(s: &Store, rel: &str, hash: &str) -> Intake {
        s.intake(&[Arrival {
            rel,
            record: rec(hash),
            pipelines: vec![("p", "v1")],
            albums: vec![],
            settled_ms: 0,
        }])
        .unwrap()
        .remove(0)
        .remove(0)
        .1
    }

    fn seen_again(s: &Store, rel: &str, hash: &str) -> bool {
        s.seen("p", rel).unwrap().as_deref() != Some(hash)
    }

    #[test]
    fn content_that_failed_is_taken_again_and_waiting_copies_are_released() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("s.redb"), true).unwrap();
        assert_eq!(arrive(&s, "in/a.flac", "h"), Intake::Queued(1));
        // A copy while the first is queued waits on it.
        assert_eq!(arrive(&s, "in/copy.flac", "h"), Intake::Waiting(1));
        let j = s.claim_next().unwrap().unwrap();
        s.update_job(j.id, None, |j| j.state = JobState::Quarantined)
            .unwrap();
        // The copy is forgotten by the index (the host takes it at its next look), the
        // failed file itself is not (it is not retried on its own).
        assert!(seen_again(&s, "in/copy.flac", "h"));
        assert!(!seen_again(&s, "in/a.flac", "h"));
        assert_eq!(arrive(&s, "in/copy.flac", "h"), Intake::Queued(2));
        // Content that failed, arriving under another name later: a new job too.
        let j = s.claim_next().unwrap().unwrap();
        s.update_job(j.id, None, |j| j.state = JobState::Failed)
            .unwrap();
        assert_eq!(arrive(&s, "in/b.wav", "h"), Intake::Queued(3));
        let j = s.claim_next().unwrap().unwrap();
        s.update_job(j.id, None, |j| j.state = JobState::Done)
            .unwrap();
        // Done: now the same content is a duplicate.
        assert_eq!(arrive(&s, "in/c.wav", "h"), Intake::Duplicate(3));
        // A failed job retried by hand takes its key back when no other job has it.
        assert_eq!(s.retry(&[1]).unwrap(), [1]);
    }

    #[test]
    fn a_job_whose_source_changed_forgets_its_own_file() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("s.redb"), true).unwrap();
        assert_eq!(arrive(&s, "in/a.wav", "h"), Intake::Queued(1));
        let j = s.claim_next().unwrap().unwrap();
        let j = s.invalidate(j.id, "changed".into()).unwrap();
        assert_eq!(j.state, JobState::Failed);
        assert!(seen_again(&s, "in/a.wav", "h"));
        // Taken again even with the same content (it was re-opened, then closed unchanged).
        assert_eq!(arrive(&s, "in/a.wav", "h"), Intake::Queued(2));
    }

    #[test]
    fn interrupted_runs_count_and_past_the_ceiling_are_handed_back() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.redb");
        let s = Store::open(&p, true).unwrap();
        arrive(&s, "in/a.wav", "h");
        for n in 1..=2 {
            let j = s.claim_next().unwrap().unwrap();
            assert_eq!(j.attempts, n);
            let (back, over) = s.requeue_running(3, false).unwrap();
            assert_eq!((back.len(), over.len()), (1, 0));
            assert_eq!(back[0].interrupted, n);
        }
        s.claim_next().unwrap().unwrap();
        let (back, over) = s.requeue_running(3, false).unwrap();
        assert_eq!((back.len(), over.len()), (0, 1));
        assert_eq!((over[0].interrupted, over[0].state), (3, JobState::Running));
        assert_eq!(over[0].attempts, 3, "interrupted runs are attempts");

        // A job run by hand by a live `sluice run` (this process) is not taken from it.
        let by_hand = s
            .add_running_job("p", "v1", "x.wav".into(), "c".into())
            .unwrap();
        let (back, over) = s.requeue_running(3, false).unwrap();
        assert!(back.iter().chain(&over).all(|j| j.id != by_hand.id));
    }

    /// A killed runner counts as ended at once, before its parent collects it (a zombie keeps
    /// its /proc entry until then).
    #[test]
    fn a_killed_runner_is_dead_before_its_parent_collects_it() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id();
        assert!(alive(pid));
        child.kill().unwrap();
        // Not yet waited for: a zombie, its /proc entry still there.
        let t = std::time::Instant::now();
        while alive(pid) {
            assert!(
                t.elapsed().as_secs() < 10,
                "a killed process counted as running"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(
            Path::new(&format!("/proc/{pid}")).exists(),
            "already collected"
        );
        child.wait().unwrap();
        assert!(!alive(pid));
    }

    /// A job a `sluice run` left running when it died is taken over once, by a live process,
    /// with its id and paths; a live run's job is never taken.
    #[test]
    fn a_dead_runs_job_is_taken_over_once() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("s.redb"), true).unwrap();
        let none = |_: &Path| false;
        let j = s
            .add_running_job("p", "v1", "/in/x.wav".into(), "c".into())
            .unwrap();
        let out = [PathBuf::from("out/x.flac")];
        s.plan(j.id, &out, Layout::default(), numbered, none)
            .unwrap();
        // Run by this process, alive: not abandoned.
        assert!(s.abandoned_by_hand("p").unwrap().is_empty());
        assert!(s.take_over(j.id).unwrap().is_none());
        // Its runner gone (a process that has ended).
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        s.update_job(j.id, None, |j| j.runner.as_mut().unwrap().pid = dead)
            .unwrap();
        assert!(s.abandoned_by_hand("q").unwrap().is_empty());
        let found = s.abandoned_by_hand("p").unwrap();
        assert_eq!(found.iter().map(|j| j.id).collect::<Vec<_>>(), [j.id]);
        let taken = s.take_over(j.id).unwrap().expect("taken over");
        assert_eq!((taken.id, taken.interrupted, taken.attempts), (j.id, 1, 2));
        assert_eq!(taken.planned, out);
        assert_eq!(taken.runner.unwrap().pid, std::process::id());
        sound(&s);
        assert!(s.take_over(j.id).unwrap().is_none(), "taken twice");
        // A host starting now leaves it to this process.
        let (back, over) = s.requeue_running(3, false).unwrap();
        assert!(back.is_empty() && over.is_empty());
    }

    #[test]
    fn paths_that_are_not_utf8_are_kept_exactly() {
        use std::os::unix::ffi::OsStrExt;
        let raw = Path::new(std::ffi::OsStr::from_bytes(b"in/caf\xe9\n.wav"));
        let enc = path_codec::encode(raw);
        assert_eq!(path_codec::decode(&enc), raw);
        assert_eq!(path_codec::encode(Path::new("in/ok.wav")), "in/ok.wav");
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("s.redb"), true).unwrap();
        assert_eq!(arrive(&s, &enc, "h"), Intake::Queued(1));
        assert_eq!(s.job(1).unwrap().unwrap().input, raw);
    }

    #[test]
    fn damaged_foreign_and_newer_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.redb");
        Store::open(&p, true).unwrap();
        let good = std::fs::read(&p).unwrap();
        // Damage of two kinds: pages overwritten after the header, and a cut-short file.
        let mut scribbled = good.clone();
        for (i, b) in scribbled[4096.min(good.len() / 2)..].iter_mut().enumerate() {
            *b = (i * 7 + 3) as u8;
        }
        for damaged in [scribbled, good[..good.len() / 3].to_vec()] {
            std::fs::write(&p, &damaged).unwrap();
            let e = Store::open(&p, true).err().expect("refused");
            assert!(matches!(e, StoreError::Damaged { .. }), "{e}");
            assert!(e.to_string().contains("does not start over"), "{e}");
            assert_eq!(std::fs::read(&p).unwrap(), damaged, "left as it was");
        }

        let p2 = dir.path().join("text.redb");
        std::fs::write(&p2, "not a database at all, just some text").unwrap();
        assert!(matches!(
            Store::open(&p2, true).err().unwrap(),
            StoreError::Damaged { .. }
        ));

        let p3 = dir.path().join("newer.redb");
        drop(Store::open(&p3, true).unwrap());
        {
            let db = builder().open(&p3).unwrap();
            let tx = db.begin_write().unwrap();
            tx.open_table(META)
                .unwrap()
                .insert("schema_version", SCHEMA_VERSION + 1)
                .unwrap();
            tx.commit().unwrap();
        }
        let e = Store::open(&p3, false).err().unwrap();
        assert!(matches!(e, StoreError::Newer { .. }), "{e}");
    }

    #[test]
    fn older_files_are_migrated_once_in_order_and_a_failed_migration_changes_nothing() {
        const MARKS: TableDefinition<&str, u64> = TableDefinition::new("test_marks");
        fn mark(tx: &redb::WriteTransaction, step: &str) -> std::result::Result<(), redb::Error> {
            let mut t = tx.open_table(MARKS)?;
            let n = t.get(step)?.map_or(0, |v| v.value());
            t.insert(step, n + 1)?;
            Ok(())
        }
        let to2: Migration = |tx| mark(tx, "to2");
        let to3: Migration = |tx| {
            // Rewrites what version 2 wrote, so it must run after it.
            assert_eq!(
                tx.open_table(MARKS)?.get("to2")?.map(|v| v.value()),
                Some(1)
            );
            mark(tx, "to3")
        };
        let broken: Migration = |_| Err(redb::Error::Corrupted("test: cannot migrate".into()));

        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.redb");
        // A version 1 file with a job in it.
        let s = Store::open_migrating(&p, true, &[]).unwrap();
        assert_eq!(s.schema_version().unwrap(), 1);
        let job = s
            .add_running_job("p", "h", "in/x.wav".into(), "c".into())
            .unwrap();
        drop(s);
        // Opened by a build that knows schema 3: both migrations, in order, once.
        let s = Store::open_migrating(&p, false, &[to2, to3]).unwrap();
        assert_eq!(s.schema_version().unwrap(), 3);
        drop(s);
        let s = Store::open_migrating(&p, false, &[to2, to3]).unwrap();
        let marks = |s: &Store| {
            let tx = s.db.begin_read().unwrap();
            let t = tx.open_table(MARKS).unwrap();
            ["to2", "to3"].map(|k| t.get(k).unwrap().map(|v| v.value()))
        };
        assert_eq!(marks(&s), [Some(1), Some(1)]);
        assert_eq!(s.job(job.id).unwrap().unwrap().input, Path::new("in/x.wav"));
        drop(s);
        // A migration that fails: an error naming it, and the file still at version 3.
        let e = Store::open_migrating(&p, false, &[to2, to3, broken])
            .err()
            .unwrap();
        assert!(e.to_string().contains("migration to schema 4"), "{e}");
        let s = Store::open_migrating(&p, false, &[to2, to3]).unwrap();
        assert_eq!(s.schema_version().unwrap(), 3);
        assert_eq!(marks(&s), [Some(1), Some(1)]);
    }

    #[test]
    fn two_handles_share_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.redb");
        let a = Store::open(&p, true).unwrap();
        a.intake(&[Arrival {
            rel: "x.wav",
            record: rec("h"),
            pipelines: vec![("p", "v")],
            albums: vec![],
            settled_ms: 0,
        }])
        .unwrap();
        let j = a.claim_next().unwrap().unwrap();
        a.update_job(j.id, None, |j| j.state = JobState::Failed)
            .unwrap();
        // Another handle (as `sluice retry` in another process would be) queues it again.
        let b = Store::open(&p, false).unwrap();
        assert_eq!(b.retry(&[j.id]).unwrap(), [j.id]);
        drop(b);
        assert_eq!(a.claim_next().unwrap().map(|j| j.id), Some(j.id));
    }

    fn sound(s: &Store) {
        let problems = s.check().unwrap();
        assert!(problems.is_empty(), "{problems:#?}");
    }

    fn numbered(p: &Path, n: u32) -> PathBuf {
        PathBuf::from(format!("{}-{n}", p.display()))
    }

    /// Every kind of change, with the invariants checked after each: intake (new, waiting,
    /// duplicate), claim, plan, requeue after a crash, a retry wait, done, failure and its
    /// released content, a retry by hand, invalidation, a job run by hand.
    #[test]
    fn the_invariants_hold_after_every_kind_of_change() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("s.redb"), true).unwrap();
        let none = |_: &Path| false;
        sound(&s);
        assert_eq!(arrive(&s, "in/a.wav", "A"), Intake::Queued(1));
        assert_eq!(arrive(&s, "in/b.wav", "B"), Intake::Queued(2));
        assert_eq!(arrive(&s, "in/a2.wav", "A"), Intake::Waiting(1));
        sound(&s);
        let a = s.claim_next().unwrap().unwrap();
        sound(&s);
        let out = [PathBuf::from("out/a.flac"), PathBuf::from("out/a.json")];
        let layout = Layout {
            version: "v2",
            moves_source: true,
        };
        let a = s.plan(a.id, &out, layout, numbered, none).unwrap();
        assert_eq!(a.planned, out);
        // What the paths are for is kept with them.
        assert_eq!((a.planned_version(), a.planned_move), ("v2", true), "{a:?}");
        sound(&s);
        // A crash: back to the queue, paths still held; claimed again, planned the same.
        let (back, _) = s.requeue_running(5, false).unwrap();
        assert_eq!(back.len(), 1);
        sound(&s);
        let a = s.claim_next().unwrap().unwrap();
        assert_eq!(
            s.plan(a.id, &[], Layout::default(), numbered, none)
                .unwrap()
                .planned,
            out
        );
        // A transient failure waits in the queue with its paths.
        s.update_job(a.id, None, |j| {
            j.state = JobState::Queued;
            j.not_before_ms = now_ms() + 60_000;
        })
        .unwrap();
        sound(&s);
        assert_eq!(s.reserved().unwrap().len(), 2);
        // The other job wants the same names: numbered around the reservation.
        let b = s.claim_next().unwrap().unwrap();
        assert_eq!(b.id, 2);
        let b = s
            .plan(b.id, &out[..1], Layout::default(), numbered, none)
            .unwrap();
        assert_eq!(b.planned, [PathBuf::from("out/a.flac-2")]);
        sound(&s);
        s.update_job(b.id, Some((EventKind::Done, "ok".into())), |j| {
            j.state = JobState::Done
        })
        .unwrap();
        sound(&s);
        assert!(s.reserved().unwrap().iter().all(|(_, id)| *id == a.id));
        // Failure gives up the content key and the paths.
        s.update_job(a.id, None, |j| {
            j.state = JobState::Running;
        })
        .unwrap();
        s.update_job(a.id, None, |j| j.state = JobState::Failed)
            .unwrap();
        sound(&s);
        assert!(s.reserved().unwrap().is_empty());
        // Run again, it is planned afresh: nothing of the old layout is left.
        let again = s
            .update_job(a.id, None, |j| j.state = JobState::Queued)
            .unwrap();
        assert!(again.planned.is_empty(), "{again:?}");
        assert_eq!(
            (again.planned_for.as_deref(), again.planned_move),
            (None, false),
            "{again:?}"
        );
        s.update_job(a.id, None, |j| j.state = JobState::Failed)
            .unwrap();
        sound(&s);
        // Queued again by hand: planned afresh at its next start.
        assert_eq!(s.retry(&[a.id]).unwrap(), [a.id]);
        let a = s.job(a.id).unwrap().unwrap();
        assert!(a.planned.is_empty());
        sound(&s);
        let a = s.claim_next().unwrap().unwrap();
        let a = s
            .plan(a.id, &out, Layout::default(), numbered, |p| {
                p == Path::new("out/a.flac")
            })
            .unwrap();
        assert_eq!(a.planned[0], PathBuf::from("out/a.flac-2"));
        sound(&s);
        s.invalidate(a.id, "changed".into()).unwrap();
        sound(&s);
        assert!(s.reserved().unwrap().is_empty());
        let by_hand = s
            .add_running_job("p", "v1", "x.wav".into(), "c".into())
            .unwrap();
        s.plan(by_hand.id, &out, Layout::default(), numbered, none)
            .unwrap();
        sound(&s);
    }

    #[test]
    fn the_check_finds_each_broken_invariant() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("s.redb"), true).unwrap();
        arrive(&s, "in/a.wav", "A");
        let j = s.claim_next().unwrap().unwrap();
        s.plan(
            j.id,
            &[PathBuf::from("o.wav")],
            Layout::default(),
            numbered,
            |_| false,
        )
        .unwrap();
        sound(&s);
        let broken = |f: &dyn Fn(&redb::WriteTransaction)| {
            let tx = s.db.begin_write().unwrap();
            f(&tx);
            tx.commit().unwrap();
            let problems = s.check().unwrap();
            assert!(!problems.is_empty(), "not found");
            problems
        };
        let p = broken(&|tx| {
            tx.open_table(QUEUE).unwrap().insert((0, j.id), ()).unwrap();
        });
        assert!(p[0].contains("QUEUE has job 1"), "{p:?}");
        broken(&|tx| {
            tx.open_table(QUEUE).unwrap().remove((0, j.id)).unwrap();
            tx.open_table(RESERVED).unwrap().remove("o.wav").unwrap();
        });
        broken(&|tx| {
            tx.open_table(RESERVED)
                .unwrap()
                .insert("o.wav", j.id)
                .unwrap();
            tx.open_table(RESERVED)
                .unwrap()
                .insert("stray.wav", 9)
                .unwrap();
        });
        broken(&|tx| {
            tx.open_table(RESERVED)
                .unwrap()
                .remove("stray.wav")
                .unwrap();
            tx.open_table(JOB_KEYS)
                .unwrap()
                .insert("p\0v1\0other", j.id)
                .unwrap();
        });
    }

    /// Four threads claim from one queue through their own handles: every job is run once.
    #[test]
    fn concurrent_claims_never_share_a_job() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        let s = Store::open(&path, true).unwrap();
        for i in 0..40 {
            arrive(&s, &format!("in/{i}.wav"), &format!("h{i}"));
        }
        let s = std::sync::Arc::new(s);
        let claimed: Vec<u64> = std::thread::scope(|sc| {
            let hs: Vec<_> = (0..4)
                .map(|_| {
                    let s = s.clone();
                    sc.spawn(move || {
                        let mut mine = Vec::new();
                        while let Some(j) = s.claim_next().unwrap() {
                            mine.push(j.id);
                        }
                        mine
                    })
                })
                .collect();
            hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
        });
        let mut sorted = claimed.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), claimed.len(), "a job was claimed twice");
        assert_eq!(sorted, (1..=40).collect::<Vec<_>>());
        assert!(s.jobs(Some(JobState::Running)).unwrap().len() == 40);
        sound(&s);
    }

    /// A file of schema 1 (paths held in the host's memory) gets its queued and running jobs'
    /// paths reserved when opened.
    #[test]
    fn a_schema_1_file_gets_its_reservations() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.redb");
        {
            let s = Store::open_migrating(&p, true, &[]).unwrap();
            arrive(&s, "in/a.wav", "A");
            let j = s.claim_next().unwrap().unwrap();
            s.plan(
                j.id,
                &[PathBuf::from("o.wav")],
                Layout::default(),
                numbered,
                |_| false,
            )
            .unwrap();
            let tx = s.db.begin_write().unwrap();
            tx.open_table(RESERVED).unwrap().remove("o.wav").unwrap();
            tx.commit().unwrap();
            assert!(!s.check().unwrap().is_empty());
            assert_eq!(s.schema_version().unwrap(), 1);
        }
        let s = Store::open(&p, false).unwrap();
        assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
        sound(&s);
        assert_eq!(s.reserved().unwrap(), [(PathBuf::from("o.wav"), 1)]);
    }
}
