//! `sluice worker`: takes jobs from the farm and runs them (see [`super`]).

use super::{Farm, FarmState, FarmStep, JobMsg, Outcome, OutputObject, ResultMsg, now_ms};
use crate::config::Config;
use crate::effects::Catalog;
use crate::job::{self, Ctx, Failure};
use crate::pipeline::{self, Defaults};
use crate::store::{JobRecord, Store};
use anyhow::{Context, Result};
use async_nats::jetstream;
use futures_util::StreamExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// An output that cannot be read back (to hash it).
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
struct Unreadable {
    path: PathBuf,
    source: std::io::Error,
}

/// A worker process: its root (for its state, its compiled effects and the folders jobs run
/// in), the farm, and what it runs jobs with.
struct Worker {
    cfg: Config,
    farm: Farm,
    store: Store,
    effects: Catalog,
    consumer: jetstream::consumer::Consumer<jetstream::consumer::pull::Config>,
    /// User effects fetched from the farm and checked, by module hash.
    modules: std::sync::Mutex<std::collections::HashMap<String, crate::effects::Entry>>,
}

/// What a worker tells whoever runs it (`sluice worker` prints each as a line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    Started {
        node: String,
        threads: usize,
        stream: String,
        servers: Vec<String>,
    },
    Stopped {
        node: String,
    },
}

impl std::fmt::Display for Notice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Notice::Started {
                node,
                threads,
                stream,
                servers,
            } => write!(
                f,
                "sluice worker {node}: {threads} thread(s), jobs from {stream} on {}",
                servers.join(", ")
            ),
            Notice::Stopped { node } => write!(f, "sluice worker {node}: stopped"),
        }
    }
}

/// Runs jobs from the farm on `cfg.workers` threads until `stop`; each running job finishes
/// first. `notify` hears what its operator is told ([`Notice`]).
pub fn run(cfg: Config, stop: Arc<AtomicBool>, notify: &dyn Fn(Notice)) -> Result<()> {
    let Some(cluster) = cfg.cluster.clone() else {
        anyhow::bail!(
            "{}: no [cluster] table: a worker needs the farm's NATS server (docs/CLUSTER.md)",
            cfg.root.join(crate::config::CONFIG_FILE).display()
        );
    };
    std::fs::create_dir_all(cfg.state_dir())
        .with_context(|| format!("{}", cfg.state_dir().display()))?;
    let store = Store::open(&cfg.db_path(), true)?;
    let runtime =
        crate::effects::Runtime::new(Some(cfg.effects_cache())).context("the effects runtime")?;
    let effects = Catalog::load(runtime, Some(&cfg.effects_dir()));
    // Folders of jobs a killed worker left.
    let work = work_dir(&cfg);
    let _ = std::fs::remove_dir_all(&work);
    let farm = Farm::connect(&cluster, Duration::from_secs(60))?;
    let consumer = farm.rt.block_on(async {
        let stream = farm.js.get_stream(&cluster.stream).await?;
        anyhow::Ok(
            stream
                .get_or_create_consumer(
                    "workers",
                    jetstream::consumer::pull::Config {
                        durable_name: Some("workers".into()),
                        filter_subject: farm.jobs_subject(),
                        ack_policy: jetstream::consumer::AckPolicy::Explicit,
                        ack_wait: cluster.ack_wait,
                        // Unlimited here: the worker that sees a job past `max_deliveries`
                        // answers it with the failure, unless another still runs it.
                        max_deliver: -1,
                        ..Default::default()
                    },
                )
                .await?,
        )
    })?;
    let threads = cfg.workers;
    notify(Notice::Started {
        node: cluster.node.clone(),
        threads,
        stream: cluster.stream.clone(),
        servers: cluster.servers.clone(),
    });
    let w = Arc::new(Worker {
        cfg,
        farm,
        store,
        effects,
        consumer,
        modules: Default::default(),
    });
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (w, stop) = (w.clone(), stop.clone());
            std::thread::Builder::new()
                .name(format!("farm-worker-{t}"))
                .spawn(move || w.take_jobs(t, &stop))
        })
        .collect::<std::io::Result<_>>()?;
    for h in handles {
        let _ = h.join();
    }
    notify(Notice::Stopped {
        node: w.farm.cfg.node.clone(),
    });
    Ok(())
}

fn work_dir(cfg: &Config) -> PathBuf {
    cfg.state_dir().join("farm")
}

impl Worker {
    fn take_jobs(self: &Arc<Self>, thread: usize, stop: &AtomicBool) {
        // The previous job's uploads and answer, still going while this thread takes and
        // renders the next one.
        let mut answering: Option<tokio::task::JoinHandle<()>> = None;
        while !stop.load(Ordering::SeqCst) {
            let got = self.farm.rt.block_on(async {
                let mut msgs = self
                    .consumer
                    .fetch()
                    .max_messages(1)
                    .expires(Duration::from_secs(1))
                    .messages()
                    .await?;
                let m = msgs
                    .next()
                    .await
                    .transpose()
                    .map_err(|e| anyhow::anyhow!(e))?;
                anyhow::Ok(m)
            });
            match got {
                Ok(Some(m)) => self.one(thread, m, &mut answering),
                Ok(None) => {}
                Err(e) => {
                    tracing::debug!("fetching a job: {e:#}");
                    std::thread::sleep(Duration::from_millis(250));
                }
            }
        }
        if let Some(a) = answering.take() {
            let _ = self.farm.rt.block_on(a);
        }
    }

    /// One delivery of a job: rendered here, then its outputs uploaded, its result published
    /// and the job acknowledged in `answering` (awaited before the next job's answer starts,
    /// so at most one is in flight per thread).
    fn one(
        self: &Arc<Self>,
        thread: usize,
        m: jetstream::Message,
        answering: &mut Option<tokio::task::JoinHandle<()>>,
    ) {
        let farm = &self.farm;
        let delivery = m.info().map(|i| i.delivered).unwrap_or(1);
        let job: JobMsg = match serde_json::from_slice(&m.payload) {
            Ok(j) => j,
            Err(e) => {
                tracing::error!("a job message that is not one ({e}): dropped");
                let _ = farm.rt.block_on(m.ack_with(jetstream::AckKind::Term));
                return;
            }
        };
        // Every log line of this delivery carries the job's node, id and attempt.
        let span = tracing::info_span!(
            "farm_job",
            node = %job.node,
            job = job.job,
            attempt = job.attempt,
            delivery
        );
        let _in_span = span.enter();
        let key = job.key();
        if !self.admit(&m, &job, &key, delivery) {
            return;
        }
        let d = Delivery {
            started: Instant::now(),
            revision: Arc::new(std::sync::atomic::AtomicU64::new(0)),
            m,
            job,
            key,
            delivery,
        };
        // What was made, and what keeps the job's claim alive until it is answered.
        let (made, claim) = if delivery > i64::from(farm.cfg.max_deliveries) {
            let f = Failure::Input(format!(
                "{}: {} workers took this job and none finished it (each died or stopped answering): the file may be what stops them",
                d.job.input.display(),
                delivery - 1
            ));
            (Err(f), None)
        } else {
            let claim = self.claim(&d, thread);
            (
                self.render_caught(&d.job, &claim.dir, claim.staging.as_ref()),
                Some(claim),
            )
        };
        let answer = Arc::clone(self).answer(d, made, claim);
        if let Some(a) = answering.take() {
            let _ = farm.rt.block_on(a);
        }
        *answering = Some(
            farm.rt
                .spawn(tracing::Instrument::instrument(answer, span.clone())),
        );
    }

    /// Whether this delivery of `job` is to be worked on: not when it is answered already
    /// (acknowledged, then), nor when it is past the delivery limit while another worker still
    /// runs it (asked for again later).
    fn admit(&self, m: &jetstream::Message, job: &JobMsg, key: &str, delivery: i64) -> bool {
        let farm = &self.farm;
        let known = farm.rt.block_on(farm.state(key));
        // Answered already (a redelivery after the answer, or an older attempt): nothing to do.
        if let Some(s) = &known
            && (s.attempt > job.attempt
                || (s.attempt == job.attempt
                    && s.state != FarmStep::Queued
                    && s.state != FarmStep::Running))
        {
            tracing::info!("answered already ({}): skipped", s.state);
            farm.rt.block_on(super::ack(m));
            return false;
        }
        // Past the delivery limit while another worker still runs it (its state kept fresh by
        // its heartbeats: JetStream also delivers again around a server restart or a lost
        // connection): not a job that stops workers; asked for again later.
        let fresh = (farm.cfg.ack_wait.as_millis() as i64) * 2 / 3;
        if delivery > i64::from(farm.cfg.max_deliveries)
            && let Some(s) = &known
            && s.attempt == job.attempt
            && s.state == FarmStep::Running
            && now_ms() - s.updated_ms < fresh
        {
            tracing::info!(
                "still running on {}: later",
                s.worker.clone().unwrap_or_default()
            );
            let _ = farm
                .rt
                .block_on(m.ack_with(jetstream::AckKind::Nak(Some(farm.cfg.ack_wait))));
            return false;
        }
        true
    }

    /// The job claimed by this worker while it renders: its `running` state recorded (its
    /// revision kept in `d.revision`) and kept fresh, heartbeats sent, and the folder it
    /// renders in chosen.
    fn claim(self: &Arc<Self>, d: &Delivery, thread: usize) -> Claim {
        let farm = &self.farm;
        let (job, key, me) = (&d.job, &d.key, &farm.cfg.node);
        let state = FarmState::now(
            FarmStep::Running,
            job.attempt,
            Some(me.clone()),
            &job.input,
            &job.pipeline,
        );
        // Recorded while the job starts (awaited before the answer is recorded).
        let running = {
            let (w, key, state) = (Arc::clone(self), key.clone(), state.clone());
            let revision = d.revision.clone();
            farm.rt.spawn(async move {
                match w.farm.set_state(&key, &state).await {
                    Ok(r) => revision.store(r, Ordering::SeqCst),
                    Err(e) => tracing::warn!("the job's state: {e:#}"),
                }
            })
        };
        // The state's time kept fresh while the job runs (each time only over this
        // worker's own last write), so a worker that sees the job again knows it runs.
        let keep = {
            let (kv, key, revision, mut state) = (
                farm.kv.clone(),
                key.clone(),
                d.revision.clone(),
                state.clone(),
            );
            let every = farm.cfg.ack_wait / 3;
            farm.rt.spawn(async move {
                loop {
                    tokio::time::sleep(every).await;
                    let rev = revision.load(Ordering::SeqCst);
                    if rev == 0 {
                        continue;
                    }
                    state.updated_ms = now_ms();
                    let Ok(bytes) = serde_json::to_vec(&state) else {
                        return;
                    };
                    match kv.update(&key, bytes.into(), rev).await {
                        Ok(r) => revision.store(r, Ordering::SeqCst),
                        Err(_) => return,
                    }
                }
            })
        };
        tracing::info!(
            "{}: running ({}{})",
            job.input.display(),
            job.pipeline,
            if job.shared_source.is_some() {
                ", the source on the shared root"
            } else if job.source_inline.is_some() {
                ", the source in the message"
            } else {
                ""
            }
        );
        // Heartbeats until it is answered: the stream gives the job to another worker
        // only if this one stops answering.
        let beat = farm.heartbeat(&d.m);
        let staging = self.staging(job, d.delivery);
        let dir = match &staging {
            Some((mount, rel)) => mount.join(rel),
            None => work_dir(&self.cfg).join(format!(
                "{}-{}-{}-{}-{thread}",
                job.node,
                job.job,
                job.attempt,
                std::process::id()
            )),
        };
        Claim {
            beat,
            keep,
            running,
            dir,
            staging,
        }
    }

    /// [`Worker::render`], a panic in it a failure of the job.
    fn render_caught(
        &self,
        job: &JobMsg,
        dir: &Path,
        staging: Option<&(PathBuf, PathBuf)>,
    ) -> Result<Rendered, Failure> {
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.render(job, dir, staging)
        }));
        ran.unwrap_or_else(|_| {
            Err(Failure::Effect(format!(
                "{}: internal error (panic) on worker {}; see its log",
                job.input.display(),
                self.farm.cfg.node
            )))
        })
    }

    /// The answer to a delivery: its outputs uploaded, the claim released, the result
    /// published, the state set to `rendered` and the message acknowledged.
    async fn answer(
        self: Arc<Self>,
        d: Delivery,
        made: Result<Rendered, Failure>,
        claim: Option<Claim>,
    ) {
        let farm = &self.farm;
        let me = farm.cfg.node.clone();
        let Delivery {
            m,
            job,
            key,
            delivery,
            started,
            revision,
        } = d;
        let outcome = match made {
            Ok(r) => match self.upload(&job, delivery, &r.files, r.staged).await {
                Ok(outputs) => Outcome::Done {
                    rendition: Box::new(r.rendition),
                    outputs,
                    work_root: r.work_root,
                    source_at: r.source_at,
                },
                Err(f) => Outcome::Failed(f),
            },
            Err(f) => Outcome::Failed(f),
        };
        // Staged outputs stay for the ingest node, which moves them into place and
        // removes the folder.
        let staged =
            matches!(&outcome, Outcome::Done { outputs, .. } if outputs.iter().any(|o| o.staged));
        if let Some(c) = claim {
            c.beat.abort();
            c.keep.abort();
            let _ = c.running.await;
            if !staged {
                let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(c.dir)).await;
            }
        }
        let what = match &outcome {
            Outcome::Done { outputs, .. } => format!(
                "rendered ({} output(s){})",
                outputs.len(),
                if staged {
                    ", staged on the shared root"
                } else {
                    ""
                }
            ),
            Outcome::Failed(f) => format!("failed: {}", f.message()),
        };
        let result = ResultMsg {
            node: job.node.clone(),
            job: job.job,
            attempt: job.attempt,
            worker: me.clone(),
            delivery,
            seconds: started.elapsed().as_secs_f64(),
            outcome,
        };
        let sent = async {
            let payload = serde_json::to_vec(&result)?;
            farm.publish(
                farm.results_subject(&job.node),
                format!("{}.r{delivery}", job.msg_id()),
                payload,
            )
            .await?;
            let state = FarmState::now(
                FarmStep::Rendered,
                job.attempt,
                Some(me.clone()),
                &job.input,
                &job.pipeline,
            );
            // The answer is stored: the state (unless the ingest node has written its own
            // since) and the acknowledgement together.
            let rendered = async {
                let rev = revision.load(Ordering::SeqCst);
                if rev != 0
                    && let Ok(bytes) = serde_json::to_vec(&state)
                {
                    let _ = farm.kv.update(&key, bytes.into(), rev).await;
                }
            };
            let ((), acked) = tokio::join!(rendered, super::ack(&m));
            if !acked {
                tracing::info!("the job could not be acknowledged (the server away?): it comes again and is then skipped");
            }
            anyhow::Ok(())
        }
        .await;
        match sent {
            Ok(()) => {
                tracing::info!("{} {what}", job.input.display())
            }
            // Not acknowledged: the job goes to a worker again once its wait runs out.
            Err(e) => tracing::error!("cannot answer: {e:#}"),
        }
    }

    /// Where a delivery of `job` renders when its outputs are staged on the shared root (the
    /// job asks for it, and this worker mounts the root): the mount, and the folder in it.
    fn staging(&self, job: &JobMsg, delivery: i64) -> Option<(PathBuf, PathBuf)> {
        let mount = self.farm.cfg.shared_root.as_ref()?;
        if !job.stage || job.shared_source.is_none() {
            return None;
        }
        let name = super::staging_name(
            &job.node,
            job.job,
            job.attempt,
            &self.farm.cfg.node,
            delivery,
        )?;
        Some((mount.clone(), Path::new(super::STAGING).join(name)))
    }

    /// The rendered outputs into the object store, all at once, each hashed first; or, when
    /// `staged`, only hashed: they stay where they are on the shared root.
    async fn upload(
        &self,
        msg: &JobMsg,
        delivery: i64,
        files: &[PathBuf],
        staged: bool,
    ) -> Result<Vec<OutputObject>, Failure> {
        let farm = &self.farm;
        let transient = |e: String| self.transient(msg, e);
        if staged {
            let files = files.to_vec();
            return tokio::task::spawn_blocking(move || {
                files
                    .iter()
                    .map(|path| {
                        let named = |source| Unreadable {
                            path: path.clone(),
                            source,
                        };
                        let bytes = std::fs::metadata(path).map_err(named)?.len();
                        let blake3 = crate::digest::hash_file(path).map_err(named)?;
                        Ok(OutputObject {
                            object: String::new(),
                            blake3,
                            bytes,
                            inline: None,
                            staged: true,
                        })
                    })
                    .collect::<Result<Vec<_>, Unreadable>>()
            })
            .await
            .map_err(|e| transient(e.to_string()))?
            .map_err(|e| transient(e.to_string()));
        }
        // Small outputs travel in the result itself, as long as together they stay under
        // the limit; the others through the object store.
        let limit = farm.inline_limit();
        let mut carried = 0u64;
        let mut plan = Vec::new();
        for path in files {
            let bytes = std::fs::metadata(path)
                .map_err(|e| transient(format!("{}: {e}", path.display())))?
                .len();
            let inline = carried + bytes <= limit;
            if inline {
                carried += bytes;
            }
            plan.push((path, bytes, inline));
        }
        let each = plan
            .into_iter()
            .enumerate()
            .map(|(i, (path, bytes, inline))| async move {
                if inline {
                    let p = path.clone();
                    let data = tokio::task::spawn_blocking(move || std::fs::read(p))
                        .await
                        .map_err(|e| transient(e.to_string()))?
                        .map_err(|e| transient(format!("{}: {e}", path.display())))?;
                    if data.len() as u64 != bytes {
                        return Err(transient(format!("{}: changed while read", path.display())));
                    }
                    return Ok(OutputObject {
                        object: String::new(),
                        blake3: blake3::hash(&data).to_hex().to_string(),
                        bytes,
                        inline: Some(super::encode_inline(&data)),
                        staged: false,
                    });
                }
                let p = path.clone();
                let blake3 = tokio::task::spawn_blocking(move || crate::digest::hash_file(&p))
                    .await
                    .map_err(|e| transient(e.to_string()))?
                    .map_err(|e| transient(format!("{}: {e}", path.display())))?;
                let object = format!(
                    "out/{}/{}/{}/{}-{delivery}/{i}",
                    msg.node, msg.job, msg.attempt, farm.cfg.node
                );
                farm.put_new(&object, path)
                    .await
                    .map_err(|e| transient(format!("cannot upload an output: {e:#}")))?;
                Ok(OutputObject {
                    object,
                    blake3,
                    bytes,
                    inline: None,
                    staged: false,
                })
            });
        futures_util::future::try_join_all(each).await
    }

    /// This worker's effects with the job's user effects put in: each module fetched once
    /// (kept under `.sluice/farm-effects/HASH.wasm`), its hash checked, and checked as the
    /// effects folder checks a module.
    fn catalog_for(&self, msg: &JobMsg) -> Result<Catalog, Failure> {
        let mut c = self.effects.clone();
        let me = &self.farm.cfg.node;
        for m in &msg.effects {
            let cached = self
                .modules
                .lock()
                .expect("not poisoned")
                .get(&m.blake3)
                .cloned();
            let entry = match cached {
                Some(e) => e,
                None => {
                    let transient = |e: String| {
                        Failure::Transient(format!(
                            "effect {} (module {}) on worker {me}: {e}",
                            m.name, m.blake3
                        ))
                    };
                    let dir = self.cfg.state_dir().join("farm-effects");
                    std::fs::create_dir_all(&dir)
                        .map_err(|e| transient(format!("{}: {e}", dir.display())))?;
                    let path = dir.join(format!("{}.wasm", m.blake3));
                    self.fetch_once(&m.object, &m.blake3, &path, "module")
                        .map_err(transient)?;
                    let e = c.check_file(&path).map_err(|e| {
                        Failure::Effect(format!(
                            "effect {} (module {}) is refused on worker {me}: {e}",
                            m.name, m.blake3
                        ))
                    })?;
                    if e.effect.descriptor.name != m.name {
                        return Err(Failure::Effect(format!(
                            "module {} names itself {}, not {}",
                            m.blake3, e.effect.descriptor.name, m.name
                        )));
                    }
                    self.modules
                        .lock()
                        .expect("not poisoned")
                        .insert(m.blake3.clone(), e.clone());
                    e
                }
            };
            c.insert(entry);
        }
        Ok(c)
    }

    /// `object` of the farm's store at `path` (kept there: fetched only when it is not there
    /// yet), written whole or not at all, and only if its BLAKE3 is `blake3`. `what` names it in
    /// errors.
    fn fetch_once(
        &self,
        object: &str,
        blake3: &str,
        path: &Path,
        what: &str,
    ) -> Result<(), String> {
        if path.is_file() {
            return Ok(());
        }
        let (atomic, mut f) =
            sluice_core::io::AtomicFile::create(path, true).map_err(|e| e.to_string())?;
        match self.farm.rt.block_on(self.farm.get_into(object, &mut f)) {
            Ok((hash, _)) if hash == blake3 => {}
            Ok((hash, _)) => {
                return Err(format!(
                    "the {what} fetched from the farm has BLAKE3 {hash}"
                ));
            }
            Err(e) => return Err(format!("cannot fetch the {what} from the farm: {e:#}")),
        }
        drop(f);
        atomic
            .commit()
            .map(|_| ())
            .map_err(|e| format!("cannot keep the {what}: {e}"))
    }

    /// The job's data files at their paths in the job's root `dir`: each fetched once into
    /// `.sluice/farm-data/HASH` (its hash checked), then copied in.
    fn fetch_data(&self, msg: &JobMsg, dir: &Path) -> Result<(), Failure> {
        let me = &self.farm.cfg.node;
        for d in &msg.data {
            let transient =
                |e: String| Failure::Transient(format!("data file {} on worker {me}: {e}", d.path));
            if d.blake3.len() != 64 || !d.blake3.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(Failure::Refused(format!(
                    "data file {}: {:?} is not a BLAKE3 hash",
                    d.path, d.blake3
                )));
            }
            let cache = self.cfg.state_dir().join("farm-data");
            std::fs::create_dir_all(&cache)
                .map_err(|e| transient(format!("{}: {e}", cache.display())))?;
            let kept = cache.join(&d.blake3);
            self.fetch_once(&d.object, &d.blake3, &kept, "file")
                .map_err(transient)?;
            // Where the pipeline looks for it, inside the job's root (a path that would leave
            // it is refused).
            let at = crate::confine::prepare(dir, Path::new(&d.path))
                .map_err(|e| Failure::Refused(format!("data file {}: {e}", d.path)))?;
            std::fs::copy(&kept, &at).map_err(|e| transient(format!("{}: {e}", at.display())))?;
        }
        Ok(())
    }

    /// A transient failure of `msg` on this worker: `e`.
    fn transient(&self, msg: &JobMsg, e: String) -> Failure {
        Failure::Transient(format!(
            "{} on worker {}: {e}",
            msg.input.display(),
            self.farm.cfg.node
        ))
    }

    /// The folder `dir` made afresh (with `staging`, the delivery's staging folder on the
    /// shared root: the mount and the folder in it), and the job's source where this worker
    /// reads it: on the shared root, or written into `dir` from the message or the object
    /// store, its hash checked against the job's.
    fn fetch_source(
        &self,
        msg: &JobMsg,
        dir: &Path,
        staging: Option<&(PathBuf, PathBuf)>,
    ) -> Result<PathBuf, Failure> {
        let farm = &self.farm;
        let transient = |e: String| self.transient(msg, e);
        let _ = std::fs::remove_dir_all(dir);
        match staging {
            // Made a step at a time inside the shared root (a link on the way out of it is
            // refused), as the ingest node will look for it.
            Some((mount, rel)) => {
                crate::confine::prepare(mount, &rel.join("_")).map_err(|e| {
                    transient(format!("the staging folder on the shared root: {e}"))
                })?;
            }
            None => std::fs::create_dir_all(dir)
                .map_err(|e| transient(format!("{}: {e}", dir.display())))?,
        }
        let (source, hash) = match &msg.shared_source {
            // On the shared root: read there, where this node mounts it.
            Some(rel) => {
                let Some(mount) = &farm.cfg.shared_root else {
                    return Err(transient(
                        "the source is on the farm's shared root, and this worker has no [cluster] shared_root".into(),
                    ));
                };
                let rel = crate::store::path_codec::decode(rel);
                let source = crate::confine::resolve(mount, &rel)
                    .map_err(|e| transient(format!("on the shared root: {e}")))?;
                let hash = crate::digest::hash_file(&source)
                    .map_err(|e| transient(format!("{}: {e}", source.display())))?;
                (source, hash)
            }
            None => {
                let source = crate::confine::prepare(dir, &msg.input)
                    .map_err(|e| Failure::Refused(format!("{}: {e}", msg.input.display())))?;
                let mut f = std::fs::File::create(&source)
                    .map_err(|e| transient(format!("{}: {e}", source.display())))?;
                // A small source came in the message.
                if let Some(text) = &msg.source_inline {
                    let data =
                        super::decode_inline(text).map_err(|e| transient(format!("{e:#}")))?;
                    std::io::Write::write_all(&mut f, &data)
                        .map_err(|e| transient(format!("{}: {e}", source.display())))?;
                    (source, blake3::hash(&data).to_hex().to_string())
                } else {
                    let (hash, _) = farm
                        .rt
                        .block_on(farm.get_into(&msg.source_object, &mut f))
                        .map_err(|e| {
                            transient(format!("cannot fetch the source from the farm: {e:#}"))
                        })?;
                    (source, hash)
                }
            }
        };
        if hash != msg.content_hash {
            return Err(transient(format!(
                "the source fetched from the farm has BLAKE3 {hash}, not the job's {}",
                msg.content_hash
            )));
        }
        Ok(source)
    }

    /// The job's pipeline as sent, loaded here with `effects`: refused when it does not load
    /// or loads as another version than the ingest node's.
    fn pipeline_of(&self, msg: &JobMsg, effects: &Catalog) -> Result<pipeline::Pipeline, Failure> {
        let node = &self.farm.cfg.node;
        let p = pipeline::parse(
            Path::new(&msg.pipeline_file),
            &msg.pipeline_text,
            Defaults {
                target_lufs: msg.target_lufs,
                target_true_peak_dbtp: msg.target_true_peak_dbtp,
                effects: Some(effects),
                // The job's data files are read when it runs (from this worker's root).
                root: None,
            },
        )
        .map_err(|ds| {
            Failure::Refused(format!(
                "pipeline {} does not load on worker {node}: {}",
                msg.pipeline,
                ds.iter()
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join("; ")
            ))
        })?;
        if p.hash != msg.pipeline_hash {
            return Err(Failure::Refused(format!(
                "pipeline {}: version {} on worker {node}, {} sent",
                msg.pipeline, p.hash, msg.pipeline_hash
            )));
        }
        Ok(p)
    }

    /// The job rendered in `dir` (a root of its own; with `staging`, the delivery's staging
    /// folder on the shared root: the mount and the folder in it).
    fn render(
        &self,
        msg: &JobMsg,
        dir: &Path,
        staging: Option<&(PathBuf, PathBuf)>,
    ) -> Result<Rendered, Failure> {
        let farm = &self.farm;
        let source = self.fetch_source(msg, dir, staging)?;
        let effects = self.catalog_for(msg)?;
        self.fetch_data(msg, dir)?;
        let p = self.pipeline_of(msg, &effects)?;
        let cfg = Config {
            target_lufs: msg.target_lufs,
            target_true_peak_dbtp: msg.target_true_peak_dbtp,
            ..Config::defaults(dir)
        };
        // The render's progress to the ingest node (core NATS: a progress message lost is
        // only a less fresh figure).
        let subject = farm.progress_subject(&msg.node);
        let report = |progress: f64| {
            let m = super::ProgressMsg {
                job: msg.job,
                attempt: msg.attempt,
                progress,
            };
            if let Ok(payload) = serde_json::to_vec(&m) {
                let _ = farm
                    .rt
                    .block_on(farm.client.publish(subject.clone(), payload.into()));
            }
        };
        let ctx = Ctx {
            interrupt: None,
            cfg: &cfg,
            store: &self.store,
            effects: &effects,
            progress: Some(&report),
            profiles: Some(&msg.profiles),
        };
        let record = JobRecord {
            album: msg.album.clone(),
            ..JobRecord::detached(
                msg.job,
                &p.name,
                &p.hash,
                msg.input.clone(),
                msg.content_hash.clone(),
                msg.planned.clone(),
            )
        };
        let rendition = job::render_detached(&ctx, &p, &record, &source)?;
        let files = msg
            .planned
            .iter()
            // The outputs, then their QC report pages (planned after them).
            .take(rendition.outputs.len() + p.qc_pages())
            .map(|rel| dir.join(rel))
            .collect();
        Ok(Rendered {
            rendition,
            files,
            staged: staging.is_some(),
            work_root: dir.to_path_buf(),
            source_at: msg.shared_source.is_some().then_some(source),
        })
    }
}

/// A delivery of a job being worked on.
struct Delivery {
    m: jetstream::Message,
    job: JobMsg,
    /// The job's key in the state bucket.
    key: String,
    /// Which delivery of the message this is (from 1).
    delivery: i64,
    started: Instant,
    /// The revision of this worker's `running` state, which its `rendered` replaces only if
    /// nothing came between (the ingest node may have the answer applied already).
    revision: Arc<std::sync::atomic::AtomicU64>,
}

/// What keeps a job claimed by this worker until it is answered, and where it renders.
struct Claim {
    beat: tokio::task::JoinHandle<()>,
    keep: tokio::task::JoinHandle<()>,
    /// The `running` state being recorded.
    running: tokio::task::JoinHandle<()>,
    dir: PathBuf,
    /// The shared root's mount and the staging folder in it, when staged there.
    staging: Option<(PathBuf, PathBuf)>,
}

/// A job rendered on this worker, its outputs not yet uploaded.
struct Rendered {
    rendition: job::Rendition,
    /// The outputs, in the order of the job's planned paths.
    files: Vec<PathBuf>,
    /// Rendered in the staging folder on the shared root (left there for the ingest node).
    staged: bool,
    /// The folder it was rendered in.
    work_root: PathBuf,
    /// Where the source was read, when not in that folder (the shared root).
    source_at: Option<PathBuf>,
}
