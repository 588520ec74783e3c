//! `sluice watch`: the watch-folder host.
//!
//! One coordinating thread watches (notify events plus a rescan at start and periodically,
//! since events get lost on some file systems), lets files settle, indexes them and queues jobs
//! in the store. Workers claim jobs from the store themselves (a channel carrying nothing wakes
//! them; the store is the only record of what is queued and running). Pipelines reload when
//! their files change; an invalid one is refused and the others keep running.

use crate::config::Config;
use crate::effects::{Catalog, Loader, Origin, Runtime, Update};
use crate::job::{self, Ctx};
use crate::pipeline::{self, Defaults, Pipeline};
use crate::settle::{Disk, Look, Note, Settled, Settler, mtime_ns};
use crate::store::{
    AlbumRecord, Arrival, FileRecord, Intake, JobRecord, JobState, ProbeSummary, Store, now_ms,
    path_codec,
};
use anyhow::{Context, Result};
use notify::Watcher;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// Names that are never taken as input: hidden files, our own and other programs' temporaries.
pub fn ignored(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    name.starts_with('.')
        || name.starts_with('~')
        || name.starts_with('#')
        || name.ends_with('~')
        || [
            ".part",
            ".partial",
            ".tmp",
            ".temp",
            ".crdownload",
            ".download",
            ".swp",
            ".lock",
            ".error.json",
        ]
        .iter()
        .any(|s| lower.ends_with(s))
}

/// How long a stopping host lets its running jobs finish before it interrupts them (each
/// render ends at its next block, its temporaries removed, and the job goes back to the queue).
/// Container runtimes send SIGKILL 10 s after SIGTERM by default.
pub const STOP_GRACE: Duration = Duration::from_secs(3);

/// Remove temporaries left by a process that died (`.NAME.sluice-PID-N.part`), anywhere in
/// the root except the state folder.
pub fn sweep_temporaries(root: &Path) -> usize {
    let mut removed = 0;
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            let Ok(ft) = e.file_type() else { continue };
            let name = e.file_name().to_string_lossy().into_owned();
            if ft.is_dir() {
                if name != ".sluice" {
                    stack.push(e.path());
                }
            } else if ft.is_file()
                && sluice_core::io::stale_temporary(&name)
                && std::fs::remove_file(e.path()).is_ok()
            {
                removed += 1;
            }
        }
    }
    removed
}

/// Loaded pipelines, by name, with the watch folders they need.
struct Pipelines {
    by_name: BTreeMap<String, Arc<Pipeline>>,
    /// The effects they were checked against (and run with).
    effects: Arc<Catalog>,
    /// The pipelines folder's files and mtimes when loaded.
    stamp: Vec<(PathBuf, i128)>,
}

fn stamp(dir: &Path) -> Vec<(PathBuf, i128)> {
    let mut v: Vec<(PathBuf, i128)> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "toml"))
                .map(|e| {
                    let m = e
                        .metadata()
                        .map(|m| mtime_ns(&m) ^ m.len() as i128)
                        .unwrap_or(0);
                    (e.path(), m)
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The effects of a root, with what was refused said in the log and the event list (once).
fn load_effects(store: &Store, Update { catalog, refused }: Update) -> Arc<Catalog> {
    for (what, why) in &refused {
        tracing::error!("effect refused: {what}: {why}");
        let _ = store.event(
            None,
            crate::store::EventKind::EffectRefused,
            format!("{what}: {why}"),
        );
    }
    tracing::info!(
        "effects: {}",
        catalog
            .effects
            .iter()
            .map(|(n, e)| match &e.origin {
                Origin::Builtin => n.clone(),
                o => format!("{n} ({o})"),
            })
            .collect::<Vec<_>>()
            .join(", ")
    );
    if !catalog.loading.is_empty() {
        tracing::info!(
            "effects still being checked: {}",
            catalog
                .loading
                .iter()
                .map(|(n, l)| format!("{n} ({})", l.file.display()))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Arc::new(catalog)
}

/// Load the pipelines. A name stays with the file that had it first (in this run, else as
/// the store recorded it): a newcomer claiming it is refused, never the pipeline in use.
fn load(
    cfg: &Config,
    store: &Store,
    effects: Arc<Catalog>,
    before: Option<&Pipelines>,
) -> Pipelines {
    let defaults = Defaults {
        target_lufs: cfg.target_lufs,
        target_true_peak_dbtp: cfg.target_true_peak_dbtp,
        effects: Some(&effects),
        root: Some(&cfg.root),
    };
    let mut owners: BTreeMap<String, PathBuf> = store
        .pipeline_files()
        .unwrap_or_default()
        .into_iter()
        .map(|(n, f)| (n, cfg.pipelines_dir.join(f)))
        .collect();
    if let Some(b) = before {
        owners.extend(b.by_name.values().map(|p| (p.name.clone(), p.file.clone())));
    }
    let (ok, problems) = pipeline::load_dir_keeping(&cfg.pipelines_dir, defaults, &owners);
    let recorded: Vec<(String, String)> = ok
        .iter()
        .filter_map(|p| {
            let f = p.file.strip_prefix(&cfg.pipelines_dir).ok()?;
            Some((p.name.clone(), path_codec::encode(f)))
        })
        .collect();
    if let Err(e) = store.set_pipeline_files(&recorded) {
        tracing::warn!("cannot record the pipelines' files: {e}");
    }
    for d in &problems {
        tracing::error!("pipeline refused: {d}");
        let _ = store.event(
            None,
            crate::store::EventKind::PipelineRefused,
            d.to_string(),
        );
    }
    // A pipeline that names an effect still being checked waits for it (its folders ready).
    let (ok, waiting): (Vec<Pipeline>, Vec<Pipeline>) =
        ok.into_iter().partition(|p| p.waiting_for.is_empty());
    for p in &waiting {
        tracing::info!(
            "pipeline {} waits for effect(s) still being checked: {}",
            p.name,
            p.waiting_for.join(", ")
        );
        for w in &p.watch {
            let _ = std::fs::create_dir_all(cfg.root.join(w));
        }
    }
    for p in &ok {
        tracing::info!(
            "pipeline {} ({}): watching {} for {}",
            p.name,
            p.hash,
            p.watch
                .iter()
                .map(|w| w.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            p.include_patterns.join(" ")
        );
        for w in &p.watch {
            let _ = std::fs::create_dir_all(cfg.root.join(w));
        }
    }
    Pipelines {
        effects: effects.clone(),
        by_name: ok
            .into_iter()
            .map(|p| (p.name.clone(), Arc::new(p)))
            .collect(),
        stamp: stamp(&cfg.pipelines_dir),
    }
}

/// Finds a pipeline loaded now by name, with the effects it was checked against.
pub type Lookup<'a> = &'a (dyn Fn(&str) -> Option<(Arc<Pipeline>, Arc<Catalog>)> + Sync);

/// A farm the watch host sends its jobs to (`[cluster]`, docs/CLUSTER.md). The farm face
/// (`sluice-host`'s `cluster::ingest::Ingest`, over NATS JetStream) implements it; the engine
/// knows only this.
pub trait Dispatch: Send + Sync {
    /// Whether another job may go out now.
    fn has_room(&self) -> bool;
    /// Sends claimed job `job` out: the job as recorded after (failed as a local job fails
    /// when it cannot be sent).
    fn dispatch(&self, ctx: &Ctx, p: &Pipeline, job: JobRecord) -> JobRecord;
    /// At start: jobs marked out on the farm before a restart are sent again.
    fn republish(&self, cfg: &Config, store: &Store, lookup: Lookup);
    /// Applies the farm's results for this node until `stop`.
    fn results(&self, cfg: &Config, store: &Store, lookup: Lookup, stop: &AtomicBool);
}

/// Connects the farm a root's `[cluster]` names, for this ingest node and its store.
pub type ConnectFarm =
    dyn Fn(&crate::config::ClusterConfig, &Store) -> Result<Arc<dyn Dispatch>> + Sync;

/// Run the host until `stop` is set (a signal). Returns when running jobs have finished;
/// `notify` hears what its operator is told ([`Notice`]).
///
/// In phases: the root locked and its store opened, [`recover`] what a dead host left, the
/// effects and pipelines loaded, the jobs stopped under too often given up
/// ([`give_up_interrupted`]), the watch folders followed ([`Folders`]), the farm connected
/// ([`connect_farm`], [`FarmResults`]), the workers started ([`Crew`]), then the
/// [`Coordinator`]'s turns until the stop, and the shutdown.
pub fn watch(
    cfg: Config,
    stop: Arc<AtomicBool>,
    abort: Arc<AtomicBool>,
    notify: &dyn Fn(Notice),
    farm: Option<&ConnectFarm>,
) -> Result<()> {
    let _lock = lock_root(&cfg)?;
    let store = Arc::new(Store::open(&cfg.db_path(), true)?);
    std::fs::create_dir_all(&cfg.quarantine_dir)
        .with_context(|| format!("{}", cfg.quarantine_dir.display()))?;
    let interrupted = recover(&cfg, &store)?;

    // The built-in effects now, the root's own in the background (crate::effects::loader).
    let runtime = Runtime::new(Some(cfg.effects_cache())).context("the effects runtime")?;
    let (loader, first) =
        Loader::start(runtime, Some(cfg.effects_dir())).context("the effects loader")?;
    let effects = load_effects(&store, first);
    let pipelines = load(&cfg, &store, effects, None);
    give_up_interrupted(&cfg, &store, &pipelines, interrupted)?;
    let cfg = Arc::new(cfg);

    let mut folders = Folders::start()?;
    folders.follow(&cfg, &pipelines);

    // Workers: each claims from the store when woken (or every half second, for retries
    // that come due and jobs queued by other processes), runs the job with the pipelines
    // loaded at that moment, and logs the result.
    let loaded: Arc<RwLock<Loaded>> = Arc::new(RwLock::new(Loaded::of(&pipelines)));
    // `[cluster]`: jobs go out to the farm's workers, their results come back here.
    let lookup = {
        let loaded = loaded.clone();
        move |name: &str| {
            let l = loaded.read().expect("not poisoned");
            l.by_name.get(name).cloned().map(|p| (p, l.effects.clone()))
        }
    };
    let farm = connect_farm(&cfg, &store, farm, &lookup)?;
    let results = FarmResults::start(farm.as_ref(), &cfg, &store, lookup)?;
    let crew = Crew::start(&cfg, &store, &loaded, farm)?;

    notify(Notice::Watching(welcome(&cfg, &pipelines)));
    let mut turns = Coordinator {
        cfg: cfg.clone(),
        store,
        pipelines,
        loaded,
        loader,
        settling: Settler::new(cfg.settle),
        last_rescan: None,
        said_once: HashSet::new(),
        pipelines_changed: None,
        last_stamp_check: Instant::now(),
        stopping: None,
        held: BTreeMap::new(),
    };
    turns.run(&stop, &abort, notify, &crew, &mut folders);

    let abort = abort.load(Ordering::SeqCst);
    crew.finish(abort);
    drop(folders);
    results.finish(abort);
    notify(Notice::Stopped);
    Ok(())
}

/// At start, what a host that died left: the store's invariants checked (a problem is a bug of
/// ours, reported so it can be fixed rather than worked around), jobs left running queued
/// again, interrupted deletions finished, temporaries removed. Returns the jobs the host
/// stopped under too often to run again on their own.
fn recover(cfg: &Config, store: &Store) -> Result<Vec<JobRecord>> {
    match store.check() {
        Ok(problems) => {
            for p in problems {
                tracing::error!("state database inconsistent: {p}");
            }
        }
        Err(e) => tracing::warn!("cannot check the state database: {e}"),
    }
    let (requeued, interrupted) =
        store.requeue_running(cfg.max_interrupted_runs, cfg.cluster.is_some())?;
    for j in requeued {
        tracing::warn!(
            job = j.id,
            "{} was running when the host stopped ({} time(s) so far): queued again",
            j.input.display(),
            j.interrupted
        );
    }
    for j in store.jobs(Some(JobState::Done))? {
        if j.delete_pending {
            job::finish_delete(store, &cfg.root, &j);
        }
    }
    let swept = sweep_temporaries(&cfg.root);
    if swept > 0 {
        tracing::info!("removed {swept} temporary file(s) left by an earlier run");
    }
    Ok(interrupted)
}

/// Jobs the host stopped under too often: their input may be what stops it, so they fail with
/// the reason (and `sluice retry` runs them again).
fn give_up_interrupted(
    cfg: &Config,
    store: &Store,
    pipelines: &Pipelines,
    interrupted: Vec<JobRecord>,
) -> Result<()> {
    for j in interrupted {
        let ctx = Ctx {
            interrupt: None,
            cfg,
            store,
            effects: &pipelines.effects,
            progress: None,
            profiles: None,
        };
        let msg = format!(
            "{}: the host stopped {} times while this job ran (a crash, a kill, a power cut); the input may be what stops it, so it is not run again on its own: `sluice retry {}` runs it again",
            j.input.display(),
            j.interrupted,
            j.id
        );
        let rec = match pipelines.by_name.get(&j.pipeline) {
            Some(p) => job::give_up(&ctx, p, j, msg),
            None => store.update_job(
                j.id,
                Some((crate::store::EventKind::Failed, msg.clone())),
                |r| {
                    r.state = JobState::Failed;
                    r.error = Some(msg.clone());
                    r.finished_ms = Some(now_ms());
                },
            )?,
        };
        tracing::error!(
            job = rec.id,
            "{}: {}",
            rec.state.name(),
            rec.error.clone().unwrap_or_default()
        );
    }
    Ok(())
}

/// The watch folders and the pipelines folder, followed with notify: the paths its events name
/// arrive on `events`.
struct Folders {
    watcher: notify::RecommendedWatcher,
    watched: HashSet<PathBuf>,
    events: crossbeam_channel::Receiver<PathBuf>,
}

impl Folders {
    fn start() -> Result<Folders> {
        let (tx, events) = crossbeam_channel::unbounded::<PathBuf>();
        let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            // Reads (ours included) say nothing new; a writer closing the file does (the file
            // may be complete now).
            use notify::event::{AccessKind, AccessMode};
            if let Ok(ev) = res
                && !matches!(ev.kind, notify::EventKind::Access(a)
                    if a != AccessKind::Close(AccessMode::Write))
            {
                for p in ev.paths {
                    let _ = tx.send(p);
                }
            }
        })
        .context("cannot start watching files")?;
        Ok(Folders {
            watcher,
            watched: HashSet::new(),
            events,
        })
    }

    /// Follows the folders the pipelines `ps` watch (made when missing) and the pipelines
    /// folder, and no others.
    fn follow(&mut self, cfg: &Config, ps: &Pipelines) {
        let want: HashSet<PathBuf> = ps
            .by_name
            .values()
            .flat_map(|p| p.watch.iter().map(|w| cfg.root.join(w)))
            .chain([cfg.pipelines_dir.clone()])
            .collect();
        for gone in self.watched.difference(&want).cloned().collect::<Vec<_>>() {
            let _ = self.watcher.unwatch(&gone);
            self.watched.remove(&gone);
        }
        for new in want {
            if !self.watched.contains(&new) {
                let _ = std::fs::create_dir_all(&new);
                match self.watcher.watch(&new, notify::RecursiveMode::Recursive) {
                    Ok(()) => {
                        self.watched.insert(new);
                    }
                    Err(e) => tracing::warn!(
                        "{}: cannot watch ({e}); the periodic rescan still finds new files",
                        new.display()
                    ),
                }
            }
        }
    }
}

/// The farm of `[cluster]`, connected with the face's `connect` (a root on a shared file system
/// must name itself), its jobs left out before a restart sent again; none without `[cluster]`.
fn connect_farm(
    cfg: &Config,
    store: &Store,
    connect: Option<&ConnectFarm>,
    lookup: Lookup,
) -> Result<Option<Arc<dyn Dispatch>>> {
    let Some(c) = &cfg.cluster else {
        return Ok(None);
    };
    if let Some(shared) = &c.shared_root {
        let same = std::fs::canonicalize(shared).ok() == std::fs::canonicalize(&cfg.root).ok();
        if !same {
            anyhow::bail!(
                "{}: [cluster] shared_root = {} is not this root ({}): on the ingest node it names its own root, as the farm shares it",
                cfg.root.join(crate::config::CONFIG_FILE).display(),
                shared.display(),
                cfg.root.display()
            );
        }
    }
    let Some(connect) = connect else {
        // The binary's refusal, for a caller that did not check first.
        cfg.needs_only(crate::config::Faces {
            server: true,
            farm: false,
        })?;
        return Ok(None);
    };
    let ingest = connect(c, store)?;
    ingest.republish(cfg, store, lookup);
    Ok(Some(ingest))
}

/// The thread applying the farm's results (none without a farm).
struct FarmResults {
    thread: Option<std::thread::JoinHandle<()>>,
    stop: Arc<AtomicBool>,
}

impl FarmResults {
    fn start(
        farm: Option<&Arc<dyn Dispatch>>,
        cfg: &Arc<Config>,
        store: &Arc<Store>,
        lookup: impl Fn(&str) -> Option<(Arc<Pipeline>, Arc<Catalog>)> + Sync + Send + 'static,
    ) -> Result<FarmResults> {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = match farm {
            Some(ingest) => {
                let (ingest, cfg, store, stop) =
                    (ingest.clone(), cfg.clone(), store.clone(), stop.clone());
                Some(
                    std::thread::Builder::new()
                        .name("farm-results".into())
                        .spawn(move || ingest.results(&cfg, &store, &lookup, &stop))
                        .context("cannot start the farm's results thread")?,
                )
            }
            None => None,
        };
        Ok(FarmResults { thread, stop })
    }

    /// Stops the thread, and waits for it unless the host is aborting.
    fn finish(self, abort: bool) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread
            && !abort
        {
            let _ = t.join();
        }
    }
}

/// The worker threads and what the coordinator shares with them.
struct Crew {
    threads: Vec<std::thread::JoinHandle<()>>,
    /// A `()` wakes one worker, which claims until the queue has nothing ready.
    wake: crossbeam_channel::Sender<()>,
    /// Workers claiming or running a job.
    busy: Arc<AtomicUsize>,
    /// Cleared when the host stops: workers claim nothing more.
    claiming: Arc<AtomicBool>,
    /// Set once a stop has waited [`STOP_GRACE`] for the running jobs: their renders end at the
    /// next block and the jobs go back to the queue (job::Failure::Interrupted).
    interrupt: Arc<AtomicBool>,
    /// A failed job's content may be waiting in copies: the coordinator rescans soon.
    rescan_soon: Arc<AtomicBool>,
}

impl Crew {
    fn start(
        cfg: &Arc<Config>,
        store: &Arc<Store>,
        loaded: &Arc<RwLock<Loaded>>,
        farm: Option<Arc<dyn Dispatch>>,
    ) -> Result<Crew> {
        let (wake, wake_rx) = crossbeam_channel::bounded::<()>(cfg.workers.max(1));
        let busy = Arc::new(AtomicUsize::new(0));
        let claiming = Arc::new(AtomicBool::new(true));
        let interrupt = Arc::new(AtomicBool::new(false));
        let rescan_soon = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for w in 0..cfg.workers {
            let worker = Worker {
                cfg: cfg.clone(),
                store: store.clone(),
                loaded: loaded.clone(),
                wake: wake_rx.clone(),
                busy: busy.clone(),
                claiming: claiming.clone(),
                rescan_soon: rescan_soon.clone(),
                farm: farm.clone(),
                interrupt: interrupt.clone(),
            };
            threads.push(
                std::thread::Builder::new()
                    .name(format!("worker-{w}"))
                    .spawn(move || worker.run())
                    .context("cannot start a worker thread")?,
            );
        }
        Ok(Crew {
            threads,
            wake,
            busy,
            claiming,
            interrupt,
            rescan_soon,
        })
    }

    fn busy(&self) -> usize {
        self.busy.load(Ordering::SeqCst)
    }

    /// No more claims; the workers finish their jobs and end (waited for unless aborting).
    fn finish(self, abort: bool) {
        self.claiming.store(false, Ordering::SeqCst);
        drop(self.wake);
        if !abort {
            for t in self.threads {
                let _ = t.join();
            }
        }
    }
}

/// The watch host's coordinator: its turns of a tenth of a second take events, reload the
/// pipelines, rescan, settle files, take them in and wake the workers, until the stop.
struct Coordinator {
    cfg: Arc<Config>,
    store: Arc<Store>,
    pipelines: Pipelines,
    loaded: Arc<RwLock<Loaded>>,
    loader: Loader,
    settling: Settler,
    last_rescan: Option<Instant>,
    /// Paths already reported as not taken (said once, not at every rescan).
    said_once: HashSet<PathBuf>,
    /// When the pipelines folder last changed, until the reload.
    pipelines_changed: Option<Instant>,
    last_stamp_check: Instant,
    /// When the stop was asked for.
    stopping: Option<Instant>,
    /// Settled files of album folders (absolute), held until their folder is settled as a
    /// whole.
    held: BTreeMap<PathBuf, Held>,
}

/// An album folder's settled files, held.
struct Held {
    files: BTreeMap<PathBuf, Settled>,
    /// When the last of them settled.
    last: Instant,
}

impl Coordinator {
    fn run(
        &mut self,
        stop: &AtomicBool,
        abort: &AtomicBool,
        notify: &dyn Fn(Notice),
        crew: &Crew,
        folders: &mut Folders,
    ) {
        loop {
            let stopping = self.stopping(stop, notify, crew);
            if abort.load(Ordering::SeqCst) || (stopping && crew.busy() == 0) {
                return;
            }
            self.events(folders);
            self.reload(folders);
            if !stopping {
                self.rescan();
            }
            self.settle(stopping);
            if crew.rescan_soon.swap(false, Ordering::SeqCst) {
                // Files with the same content as a failed job, which waited on it, are taken
                // now.
                self.last_rescan = None;
            }
            // Wake the workers when there is work ready (a worker takes one wake and claims
            // until the queue has nothing ready).
            if !stopping
                && crew.busy() < self.cfg.workers
                && self.store.has_ready().unwrap_or(false)
            {
                let _ = crew.wake.try_send(());
            }
        }
    }

    /// Whether the host is stopping: from the stop on, workers claim nothing more; after
    /// [`STOP_GRACE`] the running jobs are interrupted.
    fn stopping(&mut self, stop: &AtomicBool, notify: &dyn Fn(Notice), crew: &Crew) -> bool {
        if stop.load(Ordering::SeqCst) && self.stopping.is_none() {
            self.stopping = Some(Instant::now());
            let n = crew.busy();
            if n > 0 {
                notify(Notice::Stopping {
                    running: n,
                    grace: STOP_GRACE,
                });
            }
        }
        if let Some(since) = self.stopping
            && since.elapsed() >= STOP_GRACE
            && crew.busy() > 0
            && !crew.interrupt.swap(true, Ordering::SeqCst)
        {
            notify(Notice::Interrupting);
        }
        let stopping = self.stopping.is_some();
        if stopping {
            crew.claiming.store(false, Ordering::SeqCst);
        }
        stopping
    }

    /// A path an event or a rescan named, considered for settling.
    fn consider(&mut self, p: &Path) {
        if let Some(dir) = p.parent()
            && let Some(h) = self.held.get_mut(dir)
            && let Some(s) = h.files.get(p)
        {
            // Held, unchanged: nothing to do; changed since it settled: it settles again.
            let same = std::fs::symlink_metadata(p)
                .is_ok_and(|m| m.is_file() && m.len() == s.size && mtime_ns(&m) == s.mtime_ns);
            if same {
                return;
            }
            h.files.remove(p);
        }
        consider(
            &self.cfg,
            &self.store,
            &self.pipelines,
            p,
            &mut self.settling,
            &mut self.said_once,
        );
    }

    /// The watcher's events, for a tenth of a second.
    fn events(&mut self, folders: &Folders) {
        let deadline = Instant::now() + Duration::from_millis(100);
        loop {
            let p = crossbeam_channel::select! {
                recv(folders.events) -> p => match p {
                    Ok(p) => p,
                    Err(_) => break,
                },
                default(deadline.saturating_duration_since(Instant::now())) => break,
            };
            if p.starts_with(&self.cfg.pipelines_dir) {
                self.pipelines_changed = Some(Instant::now());
            } else {
                self.consider(&p);
            }
        }
    }

    /// Pipelines: reloaded after changes calm down (events, or a changed folder listing), and
    /// when the loader has new effects (the pipelines are checked again against them).
    fn reload(&mut self, folders: &mut Folders) {
        if self.last_stamp_check.elapsed() >= Duration::from_secs(2) {
            self.last_stamp_check = Instant::now();
            if stamp(&self.cfg.pipelines_dir) != self.pipelines.stamp
                && self.pipelines_changed.is_none()
            {
                self.pipelines_changed = Some(Instant::now());
            }
        }
        let new_effects = self.loader.poll();
        let calm = self
            .pipelines_changed
            .is_some_and(|t| t.elapsed() >= Duration::from_millis(300));
        if new_effects.is_none() && !calm {
            return;
        }
        self.pipelines_changed = None;
        let fx = match new_effects {
            Some(u) => {
                tracing::info!("effects checked: reloading the pipelines");
                load_effects(&self.store, u)
            }
            None => {
                tracing::info!("pipelines changed: reloading");
                self.pipelines.effects.clone()
            }
        };
        self.pipelines = load(&self.cfg, &self.store, fx, Some(&self.pipelines));
        *self.loaded.write().expect("not poisoned") = Loaded::of(&self.pipelines);
        folders.follow(&self.cfg, &self.pipelines);
        self.last_rescan = None;
    }

    /// Every `rescan` interval, the watch folders listed: files that left are forgotten by the
    /// index, the others considered as if an event named them.
    fn rescan(&mut self) {
        if self
            .last_rescan
            .is_some_and(|t| t.elapsed() < self.cfg.rescan)
        {
            return;
        }
        self.last_rescan = Some(Instant::now());
        let present = rescan(&self.cfg, &self.pipelines, &mut self.said_once);
        let here: HashSet<String> = present
            .iter()
            .filter_map(|p| rel(&self.cfg.root, p))
            .map(|r| path_codec::encode(&r))
            .collect();
        if let Ok(known) = self.store.file_paths() {
            let gone: Vec<String> = known.into_iter().filter(|k| !here.contains(k)).collect();
            if let Err(e) = self.store.forget_files(&gone) {
                tracing::warn!("cannot update the file index: {e}");
            }
        }
        for p in present {
            self.consider(&p);
        }
    }

    /// Settling (crate::settle): quiet for the settle time, openable, and no program holding it
    /// open for writing; what settled is taken in unless the host is stopping.
    fn settle(&mut self, stopping: bool) {
        let (settled, notes) = self.settling.step(Instant::now(), &Disk);
        for n in notes {
            match n {
                Note::Readable(p) => tracing::info!("{}: readable now", p.display()),
                Note::Unreadable(p, e) => tracing::warn!(
                    "{}: cannot open ({e}); left where it is, and taken when it becomes readable",
                    p.display()
                ),
                Note::Writing(p) => tracing::info!(
                    "{}: quiet, but still open for writing by another program: taken once it is closed",
                    p.display()
                ),
            }
        }
        if stopping {
            return;
        }
        let mut now = Vec::new();
        for f in settled {
            match album_folder(&self.cfg, &self.pipelines, &f.path) {
                Some(dir) => {
                    let h = self.held.entry(dir).or_insert_with(|| Held {
                        files: BTreeMap::new(),
                        last: Instant::now(),
                    });
                    h.last = Instant::now();
                    h.files.insert(f.path.clone(), f);
                }
                None => now.push(f),
            }
        }
        if !now.is_empty() {
            intake(&self.cfg, &self.store, &self.pipelines, now, &[]);
        }
        self.release_albums();
    }

    /// Album folders settled as a whole (nothing in them waiting, and none of their files
    /// settled for a settle time): measured, and their files taken in together.
    fn release_albums(&mut self) {
        let ready: Vec<PathBuf> = self
            .held
            .iter()
            .filter(|(dir, h)| {
                h.last.elapsed() >= self.cfg.settle && !self.settling.waiting_in(dir)
            })
            .map(|(d, _)| d.clone())
            .collect();
        for dir in ready {
            let Some(h) = self.held.remove(&dir) else {
                continue;
            };
            if h.files.is_empty() {
                continue;
            }
            let albums = measure_album(&self.cfg, &self.pipelines, &dir);
            intake(
                &self.cfg,
                &self.store,
                &self.pipelines,
                h.files.into_values().collect(),
                &albums,
            );
        }
    }
}

/// The album folder `path` belongs to, for a pipeline that normalizes albums: the folder it
/// is in, when that is below the pipeline's watch folder (a file directly in a watch folder is
/// a track of its own).
fn album_folder(cfg: &Config, ps: &Pipelines, path: &Path) -> Option<PathBuf> {
    let relp = rel(&cfg.root, path)?;
    takers(ps, &relp)
        .iter()
        .filter(|p| p.album().is_some())
        .any(|p| {
            p.watched(&relp)
                .and_then(Path::parent)
                .is_some_and(|d| !d.as_os_str().is_empty())
        })
        .then(|| path.parent().map(Path::to_path_buf))
        .flatten()
}

/// Measure the album in `dir` (absolute) for each pipeline that normalizes albums: the files
/// directly in it that the pipeline takes, measured as one programme (`album`) or by the
/// loudest (`album-loudest`). A file that cannot be measured is left out (its own job says
/// why); an album that is all silence gets no album loudness.
fn measure_album(cfg: &Config, ps: &Pipelines, dir: &Path) -> Vec<(String, AlbumRecord)> {
    use sluice_core::render::normalize::{AlbumMode, SILENCE_LUFS};
    let Some(rel_dir) = rel(&cfg.root, dir) else {
        return Vec::new();
    };
    let mut members: Vec<(PathBuf, Vec<&Arc<Pipeline>>)> = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if ignored(&e.file_name().to_string_lossy())
                || !e.file_type().is_ok_and(|t| t.is_file())
            {
                continue;
            }
            let path = e.path();
            let Some(relp) = rel(&cfg.root, &path) else {
                continue;
            };
            let by: Vec<&Arc<Pipeline>> = takers(ps, &relp)
                .into_iter()
                .filter(|p| p.album().is_some())
                .collect();
            if !by.is_empty() {
                members.push((path, by));
            }
        }
    }
    members.sort_by(|a, b| a.0.cmp(&b.0));
    let started = Instant::now();
    let measured = crate::parallel::map(&members, cfg.workers.max(1), |(p, _)| {
        crate::gaintag::measure(p)
    });
    for ((p, _), m) in members.iter().zip(&measured) {
        if let Err(e) = m {
            tracing::warn!("{}: left out of its album's loudness: {e}", p.display());
        }
    }
    let mut pipelines: Vec<&Arc<Pipeline>> =
        members.iter().flat_map(|(_, by)| by.clone()).collect();
    pipelines.sort_by(|a, b| a.name.cmp(&b.name));
    pipelines.dedup_by(|a, b| a.name == b.name);
    let mut out = Vec::new();
    for p in pipelines {
        let Some(mode) = p.album() else { continue };
        let ok: Vec<&crate::gaintag::Measured> = members
            .iter()
            .zip(&measured)
            .filter(|((_, by), _)| by.iter().any(|q| q.name == p.name))
            .filter_map(|(_, m)| m.as_ref().ok())
            .collect();
        let lufs = match mode {
            AlbumMode::Album => crate::gaintag::together(&ok),
            AlbumMode::AlbumLoudest => ok
                .iter()
                .filter_map(|m| m.integrated_lufs)
                .filter(|i| *i >= SILENCE_LUFS)
                .max_by(f64::total_cmp),
        };
        match lufs {
            Some(lufs) => {
                tracing::info!(
                    pipeline = %p.name,
                    "{}: album of {} files, {lufs:.2} LUFS ({}), measured in {:.1} s",
                    rel_dir.display(),
                    ok.len(),
                    mode.name(),
                    started.elapsed().as_secs_f64()
                );
                out.push((
                    p.name.clone(),
                    AlbumRecord {
                        folder: rel_dir.clone(),
                        mode,
                        tracks: ok.len() as u32,
                        lufs,
                    },
                ));
            }
            None => tracing::info!(
                pipeline = %p.name,
                "{}: album is silent: each file is normalized on its own",
                rel_dir.display()
            ),
        }
    }
    out
}

/// The pipelines and effects the workers run jobs with (replaced when they reload).
struct Loaded {
    by_name: BTreeMap<String, Arc<Pipeline>>,
    effects: Arc<Catalog>,
}

impl Loaded {
    fn of(p: &Pipelines) -> Loaded {
        Loaded {
            by_name: p.by_name.clone(),
            effects: p.effects.clone(),
        }
    }
}

/// One worker thread: claims jobs from the store and runs them.
struct Worker {
    cfg: Arc<Config>,
    store: Arc<Store>,
    loaded: Arc<RwLock<Loaded>>,
    wake: crossbeam_channel::Receiver<()>,
    busy: Arc<AtomicUsize>,
    claiming: Arc<AtomicBool>,
    rescan_soon: Arc<AtomicBool>,
    /// On a farm: jobs are sent out rather than run here.
    farm: Option<Arc<dyn Dispatch>>,
    /// The host is stopping and its grace is over: renders end at their next block.
    interrupt: Arc<AtomicBool>,
}

impl Worker {
    fn run(self) {
        loop {
            while self.claiming.load(Ordering::SeqCst) {
                // Counted busy before the claim, so the coordinator never sees an idle host
                // while a job is being taken.
                self.busy.fetch_add(1, Ordering::SeqCst);
                let room = self.farm.as_ref().is_none_or(|f| f.has_room());
                let claimed = if self.claiming.load(Ordering::SeqCst) && room {
                    self.store.claim_next()
                } else {
                    Ok(None)
                };
                match claimed {
                    Ok(Some(j)) => self.one(j),
                    Ok(None) => {
                        self.busy.fetch_sub(1, Ordering::SeqCst);
                        break;
                    }
                    Err(e) => {
                        self.busy.fetch_sub(1, Ordering::SeqCst);
                        tracing::error!("cannot claim a job: {e}");
                        break;
                    }
                }
                self.busy.fetch_sub(1, Ordering::SeqCst);
            }
            match self.wake.recv_timeout(Duration::from_millis(500)) {
                Ok(()) | Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return,
            }
            if !self.claiming.load(Ordering::SeqCst) {
                return;
            }
        }
    }

    /// Run claimed job `j` with the pipeline it names, as loaded now, in a span carrying the
    /// job's id and pipeline (`job{id=.. pipeline=..}` on every log line of its work).
    fn one(&self, j: JobRecord) {
        let span = tracing::info_span!("job", id = j.id, pipeline = %j.pipeline);
        span.in_scope(|| self.one_in_span(j))
    }

    fn one_in_span(&self, j: JobRecord) {
        let (p, effects) = {
            let l = self.loaded.read().expect("not poisoned");
            (l.by_name.get(&j.pipeline).cloned(), l.effects.clone())
        };
        let Some(p) = p else {
            let r = job::wait_for_pipeline(&self.store, j.id, &j.pipeline);
            if let Err(e) = r {
                tracing::error!("cannot put the job back in the queue: {e}");
            }
            return;
        };
        if p.hash != j.pipeline_hash {
            let _ = self.store.event(
                Some(j.id),
                crate::store::EventKind::Note,
                format!(
                    "pipeline {} changed since this job was queued: running version {}",
                    p.name, p.hash
                ),
            );
        }
        let t = Instant::now();
        let ctx = Ctx {
            interrupt: Some(self.interrupt.clone()),
            cfg: &self.cfg,
            store: &self.store,
            effects: &effects,
            progress: None,
            profiles: None,
        };
        let id = j.id;
        if let Some(farm) = &self.farm {
            let rec = farm.dispatch(&ctx, &p, j);
            if rec.state != JobState::Running {
                tracing::info!(
                    "{} {}: {}",
                    rec.input.display(),
                    rec.state.name(),
                    rec.error.clone().unwrap_or_default()
                );
            }
            return;
        }
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            job::run(&ctx, &p, j.clone())
        }));
        let rec = match ran {
            Ok(r) => r,
            Err(_) => {
                // A bug of ours, not the file's: recorded, the host goes on.
                self.store
                    .update_job(
                        id,
                        Some((
                            crate::store::EventKind::Failed,
                            "internal error (panic) while running the job".into(),
                        )),
                        |j| {
                            j.state = JobState::Failed;
                            j.error = Some("internal error (panic); see the log".into());
                            j.finished_ms = Some(now_ms());
                        },
                    )
                    .unwrap_or(j)
            }
        };
        if matches!(rec.state, JobState::Failed | JobState::Quarantined) {
            self.rescan_soon.store(true, Ordering::SeqCst);
        }
        let what = match rec.state {
            JobState::Done => format!(
                "done ({} output(s), {:.1} s)",
                rec.outputs.len(),
                t.elapsed().as_secs_f64()
            ),
            s => format!("{}: {}", s.name(), rec.error.clone().unwrap_or_default()),
        };
        tracing::info!("{} {what}", rec.input.display());
    }
}

/// Relative path inside the root, when `p` is inside it.
fn rel(root: &Path, p: &Path) -> Option<PathBuf> {
    p.strip_prefix(root).ok().map(Path::to_path_buf)
}

/// The pipelines that take `relp`.
fn takers<'a>(ps: &'a Pipelines, relp: &Path) -> Vec<&'a Arc<Pipeline>> {
    ps.by_name
        .values()
        .filter(|p| p.watched(relp).is_some_and(|inner| p.matches(inner)))
        .collect()
}

/// Start settling `path` if it is a candidate: not settling already, a regular file (not a
/// link), not ignored, taken by a pipeline, and not already taken unchanged.
fn consider(
    cfg: &Config,
    store: &Store,
    ps: &Pipelines,
    path: &Path,
    settling: &mut Settler,
    said_once: &mut HashSet<PathBuf>,
) {
    if settling.contains(path) {
        return;
    }
    let Some(relp) = rel(&cfg.root, path) else {
        return;
    };
    if relp
        .components()
        .any(|c| ignored(&c.as_os_str().to_string_lossy()))
    {
        return;
    }
    let Ok(m) = std::fs::symlink_metadata(path) else {
        return;
    };
    if m.file_type().is_symlink() {
        if said_once.insert(path.to_path_buf()) {
            tracing::warn!(
                "{}: a symbolic link; links in watch folders are not followed",
                path.display()
            );
            let _ = store.event(
                None,
                crate::store::EventKind::Ignored,
                format!("{}: symbolic link not followed", relp.display()),
            );
        }
        return;
    }
    if !m.is_file() {
        return;
    }
    let takers = takers(ps, &relp);
    if takers.is_empty() {
        let watching: Vec<&Arc<Pipeline>> = ps
            .by_name
            .values()
            .filter(|p| p.watched(&relp).is_some())
            .collect();
        if !watching.is_empty() && said_once.insert(path.to_path_buf()) {
            tracing::info!(
                "{}: not taken: {}",
                path.display(),
                watching
                    .iter()
                    .map(|p| format!(
                        "pipeline {} takes only {}",
                        p.name,
                        p.include_patterns.join(" ")
                    ))
                    .collect::<Vec<_>>()
                    .join("; ")
            );
        }
        return;
    }
    let key = path_codec::encode(&relp);
    if let Ok(Some(f)) = store.file(&key)
        && f.size == m.len()
        && f.mtime_ns == mtime_ns(&m)
        && takers
            .iter()
            .all(|p| store.seen(&p.name, &key).ok().flatten().as_deref() == Some(f.hash.as_str()))
    {
        return;
    }
    settling.watch(path.to_path_buf(), &Look::of(&m), Instant::now());
}

/// Every candidate file in the watch folders (links are not followed).
fn rescan(cfg: &Config, ps: &Pipelines, said_once: &mut HashSet<PathBuf>) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let roots: HashSet<PathBuf> = ps
        .by_name
        .values()
        .flat_map(|p| p.watch.iter().map(|w| cfg.root.join(w)))
        .collect();
    for r in roots {
        let mut stack = vec![r];
        while let Some(dir) = stack.pop() {
            let Ok(rd) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if ignored(&name) {
                    continue;
                }
                let Ok(ft) = e.file_type() else { continue };
                if ft.is_dir() {
                    stack.push(e.path());
                } else if ft.is_file() {
                    out.push(e.path());
                } else if ft.is_symlink() && said_once.insert(e.path()) {
                    tracing::warn!(
                        "{}: a symbolic link; links in watch folders are not followed",
                        e.path().display()
                    );
                }
            }
        }
    }
    out
}

/// Hash and index settled files; queue their jobs.
/// `albums`: the album the files arrived in, for each pipeline that normalizes albums.
fn intake(
    cfg: &Config,
    store: &Store,
    ps: &Pipelines,
    settled: Vec<Settled>,
    albums: &[(String, AlbumRecord)],
) {
    let settled_ms = now_ms();
    /// A settled file: where, what, and the pipelines that take it (name, version).
    struct Found {
        rel: String,
        record: FileRecord,
        pipelines: Vec<(String, String)>,
    }
    let mut found = Vec::new();
    for Settled {
        path,
        size,
        mtime_ns: mt,
    } in settled
    {
        let Some(relp) = rel(&cfg.root, &path) else {
            continue;
        };
        let hash = match crate::digest::hash_file(&path) {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!("{}: cannot read ({e}); will look again", path.display());
                continue;
            }
        };
        let probe = sluice_core::probe(&path).ok().map(|i| ProbeSummary {
            format: i.format.to_string(),
            sample_rate: i.sample_rate,
            channels: i.channels,
            duration_seconds: i.duration_seconds,
        });
        let pipelines = takers(ps, &relp)
            .iter()
            .map(|p| (p.name.clone(), p.hash.clone()))
            .collect();
        let record = FileRecord {
            size,
            mtime_ns: mt,
            hash,
            indexed_ms: now_ms(),
            probe,
            analysis: None,
        };
        found.push(Found {
            rel: path_codec::encode(&relp),
            record,
            pipelines,
        });
    }
    let arrivals: Vec<Arrival> = found
        .iter()
        .map(|f| Arrival {
            rel: &f.rel,
            record: f.record.clone(),
            pipelines: f
                .pipelines
                .iter()
                .map(|(a, b)| (a.as_str(), b.as_str()))
                .collect(),
            albums: albums
                .iter()
                .filter(|(n, _)| f.pipelines.iter().any(|(p, _)| p == n))
                .map(|(n, r)| (n.as_str(), r.clone()))
                .collect(),
            settled_ms,
        })
        .collect();
    match store.intake(&arrivals) {
        Ok(decisions) => {
            for (a, d) in arrivals.iter().zip(decisions) {
                for (p, i) in d {
                    match i {
                        Intake::Queued(id) => {
                            tracing::info!(job = id, pipeline = %p, "{} queued", a.rel)
                        }
                        Intake::Duplicate(id) => tracing::info!(
                            pipeline = %p,
                            "{}: same content as job {id}'s input, not processed again",
                            a.rel
                        ),
                        Intake::Waiting(id) => tracing::info!(
                            pipeline = %p,
                            "{}: same content as job {id}'s input, which has not finished: taken if it fails",
                            a.rel
                        ),
                        Intake::AlreadySeen => {}
                    }
                }
            }
        }
        Err(e) => tracing::error!("cannot record new files: {e}"),
    }
}

/// One host per root: an exclusive lock on `.sluice/host.lock`, held while the host runs. The
/// kernel lets it go when the process ends, however it ends, so a crash never leaves a stale
/// lock. A second host on the root is an error naming the first.
/// Whether a `sluice watch` host holds this root now.
pub fn host_running(cfg: &Config) -> bool {
    let Ok(f) = std::fs::OpenOptions::new()
        .read(true)
        .open(cfg.state_dir().join("host.lock"))
    else {
        return false;
    };
    matches!(f.try_lock_shared(), Err(std::fs::TryLockError::WouldBlock))
}

fn lock_root(cfg: &Config) -> Result<std::fs::File> {
    use std::io::{Read, Seek, Write};
    let dir = cfg.state_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("{}", dir.display()))?;
    let path = dir.join("host.lock");
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("{}", path.display()))?;
    match f.try_lock() {
        Ok(()) => {
            f.set_len(0)?;
            f.rewind()?;
            writeln!(f, "{}", std::process::id())?;
            Ok(f)
        }
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut pid = String::new();
            let _ = f.read_to_string(&mut pid);
            anyhow::bail!(
                "{}: another `sluice watch` (pid {}) is already running on this root; two hosts on one root would run jobs twice. Stop that one first.",
                cfg.root.display(),
                pid.trim()
            )
        }
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("{}: cannot lock", path.display()))
        }
    }
}

/// The start-up message: where to drop files, and what each pipeline takes from there.
fn welcome(cfg: &Config, ps: &Pipelines) -> String {
    let mut s = format!(
        "sluice: watching {} with {} pipeline(s) and {} worker(s){}",
        cfg.root.display(),
        ps.by_name.len(),
        cfg.workers,
        if ps.by_name.is_empty() {
            ""
        } else {
            "; drop files into (inside the root):"
        }
    );
    if ps.by_name.is_empty() {
        s.push_str(&format!(
            "\n  no pipeline is loaded: add one to {} (see `sluice check`)",
            cfg.pipelines_dir.display()
        ));
    }
    for p in ps.by_name.values() {
        for w in &p.watch {
            s.push_str(&format!(
                "\n  {}/  ->  pipeline {} ({})",
                w.display(),
                p.name,
                p.include_patterns.join(" ")
            ));
        }
    }
    s
}

/// What the host tells whoever runs it, as it runs (`sluice watch` prints each as a line).
#[derive(Debug, Clone, PartialEq)]
pub enum Notice {
    /// Watching: what the root holds and how the host runs it.
    Watching(String),
    /// A stop was asked for while `running` jobs run: they have `grace` to finish.
    Stopping { running: usize, grace: Duration },
    /// The grace is over: the running jobs are interrupted and go back to the queue.
    Interrupting,
    /// The host has stopped.
    Stopped,
}

impl std::fmt::Display for Notice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Notice::Watching(w) => f.write_str(w),
            Notice::Stopping { running, grace } => write!(
                f,
                "sluice: stopping: the {running} running job(s) have {} s to finish, then run again at the next start (signal again to stop now)",
                grace.as_secs()
            ),
            Notice::Interrupting => {
                f.write_str("sluice: interrupting the running job(s); they are back in the queue")
            }
            Notice::Stopped => f.write_str("sluice: stopped"),
        }
    }
}
