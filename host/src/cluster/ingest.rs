//! The ingest node's side of the farm: jobs out, results in (see [`super`]).

use super::{Farm, FarmState, JobMsg, Outcome, ResultMsg, job_key};
use crate::config::Config;
use crate::effects::Catalog;
use crate::job::{self, Ctx, Failure};
use crate::pipeline::Pipeline;
use crate::store::{JobRecord, JobState, Store};
use async_nats::jetstream;
use futures_util::StreamExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

/// The ingest node's handle on the farm.
pub struct Ingest {
    pub farm: Farm,
    /// Jobs out on the farm now.
    pub out: AtomicUsize,
    /// Of those, how many by source content (the source's object goes when none is left).
    sources: std::sync::Mutex<std::collections::HashMap<String, usize>>,
    /// Contents whose source may be in the object store (not carried in their messages).
    stored: std::sync::Mutex<std::collections::HashSet<String>>,
}

pub use crate::host::Lookup;

/// The watch host's farm: jobs go out through [`Ingest`].
impl crate::host::Dispatch for Ingest {
    fn has_room(&self) -> bool {
        Ingest::has_room(self)
    }
    fn dispatch(&self, ctx: &Ctx, p: &Pipeline, job: JobRecord) -> JobRecord {
        Ingest::dispatch(self, ctx, p, job)
    }
    fn republish(&self, cfg: &Config, store: &Store, lookup: Lookup) {
        Ingest::republish(self, cfg, store, lookup)
    }
    fn results(&self, cfg: &Config, store: &Store, lookup: Lookup, stop: &AtomicBool) {
        Ingest::results(self, cfg, store, lookup, stop)
    }
}

/// Connects the farm of `[cluster]` for the ingest node whose store is `store` (the watch
/// host's [`crate::host::ConnectFarm`]).
pub fn connect(
    c: &crate::config::ClusterConfig,
    store: &Store,
) -> anyhow::Result<Arc<dyn crate::host::Dispatch>> {
    let farm = Farm::connect(c, Duration::from_secs(30))?;
    Ok(Arc::new(Ingest::new(farm, store)))
}

fn source_object(node: &str, hash: &str) -> String {
    format!("src/{node}/{hash}")
}

/// What an answer whose body does not read still says — which job and attempt it answers and
/// from which worker — as a failed attempt (worth another try), or `None` when it does not say
/// even that.
fn unreadable(payload: &[u8], e: &serde_json::Error) -> Option<ResultMsg> {
    #[derive(serde::Deserialize)]
    struct Header {
        node: String,
        job: u64,
        attempt: u32,
        worker: String,
        #[serde(default)]
        delivery: i64,
        #[serde(default)]
        seconds: f64,
    }
    let h: Header = serde_json::from_slice(payload).ok()?;
    let worker: String = h.worker.chars().take(200).collect();
    Some(ResultMsg {
        node: h.node,
        job: h.job,
        attempt: h.attempt,
        outcome: Outcome::Failed(Failure::Transient(format!(
            "the answer of worker {worker} could not be read ({e}); the job is tried again"
        ))),
        worker,
        delivery: h.delivery,
        seconds: h.seconds,
    })
}

/// The user effects `p` names, with the files they were loaded from and their modules'
/// BLAKE3 hashes (taken when the catalog loaded them: a module changed since is loaded again
/// by the catalog, and a worker that fetches other bytes than the hash says refuses them).
fn user_effects(p: &Pipeline, effects: &Catalog) -> Vec<(String, std::path::PathBuf, String)> {
    let mut out: Vec<(String, std::path::PathBuf, String)> = Vec::new();
    // Those in parallel branches too.
    for e in sluice_core::render::steps::effect_steps(&p.steps) {
        if let Some(entry) = effects.get(&e.name)
            && let crate::effects::Origin::File(path) = &entry.origin
            && !out.iter().any(|(n, _, _)| *n == e.name)
        {
            out.push((e.name.clone(), path.clone(), entry.effect.hash.clone()));
        }
    }
    out
}

fn message(
    farm: &Farm,
    cfg: &Config,
    store: &Store,
    p: &Pipeline,
    effects: &Catalog,
    job: &JobRecord,
    source: &Path,
) -> anyhow::Result<(JobMsg, Vec<std::path::PathBuf>)> {
    // With a shared root the source goes by its path in the root.
    let shared_source = match &farm.cfg.shared_root {
        Some(_) => Some(crate::store::path_codec::encode(
            source
                .strip_prefix(&cfg.root)
                .map_err(|_| anyhow::anyhow!("{}: not under the shared root", source.display()))?,
        )),
        None => None,
    };
    let node = farm.cfg.node.clone();
    let mut modules = Vec::new();
    let mut files = Vec::new();
    for (name, path, blake3) in user_effects(p, effects) {
        modules.push(super::EffectModule {
            name,
            object: format!("fx/{blake3}"),
            blake3,
        });
        files.push(path);
    }
    // The effect steps' data files, each once, by content.
    let mut data: Vec<super::DataFile> = Vec::new();
    for e in sluice_core::render::steps::effect_steps(&p.steps) {
        for (_, written) in &e.data {
            if data.iter().any(|d| d.path == *written) {
                continue;
            }
            let path = crate::effects::data::locate(Some(&cfg.root), written)
                .map_err(|m| anyhow::anyhow!("pipeline {}: {m}", p.name))?;
            let bytes =
                std::fs::read(&path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            let blake3 = blake3::hash(&bytes).to_hex().to_string();
            data.push(super::DataFile {
                path: written.clone(),
                object: format!("data/{blake3}"),
                blake3,
            });
            files.push(path);
        }
    }
    let stage = shared_source.is_some();
    let msg = JobMsg {
        source_object: if stage {
            String::new()
        } else {
            source_object(&node, &job.content_hash)
        },
        shared_source,
        source_inline: None,
        node,
        job: job.id,
        attempt: job.attempts,
        input: job.input.clone(),
        content_hash: job.content_hash.clone(),
        pipeline: p.name.clone(),
        pipeline_hash: p.hash.clone(),
        pipeline_file: p
            .file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        pipeline_text: p.text.to_string(),
        target_lufs: cfg.target_lufs,
        target_true_peak_dbtp: cfg.target_true_peak_dbtp,
        planned: job.planned.clone(),
        effects: modules,
        data,
        profiles: job::profiles_for(p, store),
        stage,
        album: job.album.clone(),
    };
    Ok((msg, files))
}

impl Ingest {
    pub fn new(farm: Farm, store: &Store) -> Ingest {
        let mut sources = std::collections::HashMap::new();
        let mut out = 0;
        for j in store.jobs(Some(JobState::Running)).unwrap_or_default() {
            if j.ran_on.is_some() {
                out += 1;
                *sources.entry(j.content_hash).or_insert(0) += 1;
            }
        }
        Ingest {
            farm,
            out: AtomicUsize::new(out),
            // Those of jobs out before a restart may have their source in the store.
            stored: std::sync::Mutex::new(sources.keys().cloned().collect()),
            sources: std::sync::Mutex::new(sources),
        }
    }

    fn hold(&self, hash: &str) {
        *self
            .sources
            .lock()
            .expect("not poisoned")
            .entry(hash.to_string())
            .or_insert(0) += 1;
    }

    /// One job of content `hash` off the farm: how many are left.
    fn release(&self, hash: &str) -> usize {
        let mut m = self.sources.lock().expect("not poisoned");
        let left = m.get(hash).map_or(0, |n| n.saturating_sub(1));
        if left == 0 {
            m.remove(hash);
        } else {
            m.insert(hash.to_string(), left);
        }
        left
    }

    /// Whether another job may go out now.
    pub fn has_room(&self) -> bool {
        self.out.load(Ordering::SeqCst) < self.farm.cfg.in_flight
    }

    /// Sends claimed job `job` to the farm: its paths planned and reserved here, its source
    /// in the object store, marked out on the farm, then published. Returns the job as
    /// recorded (failed as a local job fails when that cannot be done).
    pub fn dispatch(&self, ctx: &Ctx, p: &Pipeline, job: JobRecord) -> JobRecord {
        let (job, source) = match job::plan_detached(ctx, p, &job) {
            Ok(x) => x,
            Err(f) => return job::fail_detached(ctx, p, job, f),
        };
        // Marked first: a crash between the mark and the publish is mended at the next start
        // (the publish made again, a no-op if it had been made).
        let job = match ctx.store.update_job(
            job.id,
            Some((
                crate::store::EventKind::Farmed,
                format!("sent to the farm ({})", self.farm.cfg.node),
            )),
            |j| j.ran_on = Some("?".into()),
        ) {
            Ok(j) => j,
            Err(e) => {
                return job::fail_detached(ctx, p, job, Failure::Transient(e.to_string()));
            }
        };
        self.out.fetch_add(1, Ordering::SeqCst);
        self.hold(&job.content_hash);
        if let Err(e) = self.publish(ctx.cfg, ctx.store, p, ctx.effects, &job, &source) {
            self.out.fetch_sub(1, Ordering::SeqCst);
            self.release(&job.content_hash);
            let job = ctx
                .store
                .update_job(job.id, None, |j| j.ran_on = None)
                .unwrap_or(job);
            return job::fail_detached(
                ctx,
                p,
                job,
                Failure::Transient(format!("cannot send the job to the farm: {e:#}")),
            );
        }
        job
    }

    fn publish(
        &self,
        cfg: &Config,
        store: &Store,
        p: &Pipeline,
        effects: &Catalog,
        job: &JobRecord,
        source: &Path,
    ) -> anyhow::Result<()> {
        let farm = &self.farm;
        let (mut msg, modules) = message(farm, cfg, store, p, effects, job, source)?;
        // A small source goes in the message itself.
        let mut in_store = msg.shared_source.is_none();
        if in_store {
            let size = std::fs::metadata(source)
                .map_err(|e| anyhow::anyhow!("{}: {e}", source.display()))?
                .len();
            if size <= farm.inline_limit() {
                let data = std::fs::read(source)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", source.display()))?;
                msg.source_inline = Some(super::encode_inline(&data));
                msg.source_object = String::new();
                in_store = false;
            }
        }
        farm.rt.block_on(async {
            if in_store {
                self.stored
                    .lock()
                    .expect("not poisoned")
                    .insert(job.content_hash.clone());
                farm.put_file(&msg.source_object, source).await?;
            }
            // The modules' files, then the data files (in the order `message` listed them).
            let objects = msg.effects.iter().map(|m| &m.object);
            let objects = objects.chain(msg.data.iter().map(|d| &d.object));
            for (object, path) in objects.zip(&modules) {
                farm.put_file(object, path).await?;
            }
            farm.set_state(
                &msg.key(),
                &FarmState::now(
                    super::FarmStep::Queued,
                    msg.attempt,
                    None,
                    &msg.input,
                    &msg.pipeline,
                ),
            )
            .await?;
            let dup = farm
                .publish(farm.jobs_subject(), msg.msg_id(), serde_json::to_vec(&msg)?)
                .await?;
            if dup {
                tracing::info!(
                    job = job.id,
                    "already on the farm (the publish was a duplicate)"
                );
            }
            anyhow::Ok(())
        })
    }

    /// At start: jobs marked out on the farm are published again (a no-op for those the
    /// stream has; the others were cut off between the mark and the publish).
    pub fn republish(&self, cfg: &Config, store: &Store, lookup: Lookup) {
        self.mend_bucket(store);
        let Ok(running) = store.jobs(Some(JobState::Running)) else {
            return;
        };
        for j in running.into_iter().filter(|j| j.ran_on.is_some()) {
            let Some((p, effects)) = lookup(&j.pipeline) else {
                continue;
            };
            let source = cfg.root.join(&j.input);
            let source = if source.exists() {
                source
            } else {
                match j.source_now.as_ref().map(|s| cfg.root.join(s)) {
                    Some(s) if s.exists() => s,
                    _ => continue,
                }
            };
            if let Err(e) = self.publish(cfg, store, &p, &effects, &j, &source) {
                tracing::warn!(job = j.id, "cannot publish the job again: {e:#}");
            }
        }
    }

    /// At a start: a job this node recorded as ended while the bucket still shows it on the
    /// farm (the node died between recording the end and telling the bucket) gets its end in
    /// the bucket now. The result's redelivery mends it too, but only once the server's
    /// acknowledgement wait has passed.
    fn mend_bucket(&self, store: &Store) {
        let farm = &self.farm;
        // This node's keys ([`job_key`]: `NODE.ID`).
        let prefix = format!("{}.", farm.cfg.node);
        let states = match farm.rt.block_on(farm.states_with_prefix(&prefix)) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("cannot read the farm's job states: {e:#}");
                return;
            }
        };
        for (key, s) in states {
            let on_farm = matches!(
                s.state,
                super::FarmStep::Queued | super::FarmStep::Running | super::FarmStep::Rendered
            );
            let Some(id) = key[prefix.len()..].parse::<u64>().ok().filter(|_| on_farm) else {
                continue;
            };
            if let Ok(Some(j)) = store.job(id)
                && self.tell_end(&key, &j)
            {
                tracing::info!(job = id, "its end told to the farm's bucket again");
            }
        }
    }

    /// Puts the end of `j` (done, failed or quarantined, as this node recorded it) into the
    /// bucket under `key`: whether it did. A job not ended here is left alone.
    fn tell_end(&self, key: &str, j: &JobRecord) -> bool {
        if !matches!(
            j.state,
            JobState::Done | JobState::Failed | JobState::Quarantined
        ) {
            return false;
        }
        let farm = &self.farm;
        let state = FarmState::now(
            super::FarmStep::of(j.state),
            j.attempts,
            j.ran_on.clone(),
            &j.input,
            &j.pipeline,
        );
        match farm.rt.block_on(farm.set_state(key, &state)) {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(job = j.id, "{e:#}");
                false
            }
        }
    }

    /// Applies the farm's results for this node until `stop`.
    pub fn results(&self, cfg: &Config, store: &Store, lookup: Lookup, stop: &AtomicBool) {
        let farm = &self.farm;
        let consumer = farm.rt.block_on(async {
            let stream = farm.js.get_stream(&farm.cfg.results).await?;
            anyhow::Ok(
                stream
                    .get_or_create_consumer(
                        &format!("ingest-{}", farm.cfg.node),
                        jetstream::consumer::pull::Config {
                            durable_name: Some(format!("ingest-{}", farm.cfg.node)),
                            filter_subject: farm.results_subject(&farm.cfg.node),
                            ack_policy: jetstream::consumer::AckPolicy::Explicit,
                            // A result being applied is kept by heartbeats; one the host
                            // took and died with goes again after this wait.
                            ack_wait: farm.cfg.ack_wait,
                            ..Default::default()
                        },
                    )
                    .await?,
            )
        });
        let consumer = match consumer {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(
                    "the farm's results cannot be read: {e:#}; jobs sent out stay running until the host starts again"
                );
                return;
            }
        };
        // Staging folders of deliveries no longer awaited (a worker killed while it
        // rendered, a result this node applied before it died).
        self.sweep(cfg, store, None);
        std::thread::scope(|s| {
            // Workers' progress, into the jobs' records (beside the results).
            s.spawn(|| self.progress(store, stop));
            self.apply_results(cfg, store, lookup, stop, &consumer);
        });
    }

    /// Workers' progress reports for this node's jobs into their records, until `stop` (a
    /// report for an attempt no longer out is ignored).
    fn progress(&self, store: &Store, stop: &AtomicBool) {
        let farm = &self.farm;
        farm.rt.block_on(async {
            let mut sub = match farm
                .client
                .subscribe(farm.progress_subject(&farm.cfg.node))
                .await
            {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!("the farm's progress reports cannot be read: {e}");
                    return;
                }
            };
            while !stop.load(Ordering::SeqCst) {
                let next = tokio::time::timeout(Duration::from_millis(500), sub.next()).await;
                let m = match next {
                    Ok(Some(m)) => m,
                    Ok(None) => return,
                    Err(_) => continue,
                };
                let Ok(p) = serde_json::from_slice::<super::ProgressMsg>(&m.payload) else {
                    continue;
                };
                let _ = store.update_job(p.job, None, |j| {
                    if j.state == JobState::Running && j.attempts == p.attempt && j.ran_on.is_some()
                    {
                        j.progress = p.progress.clamp(0.0, 1.0).max(j.progress);
                    }
                });
            }
        });
    }

    fn apply_results(
        &self,
        cfg: &Config,
        store: &Store,
        lookup: Lookup,
        stop: &AtomicBool,
        consumer: &jetstream::consumer::Consumer<jetstream::consumer::pull::Config>,
    ) {
        let farm = &self.farm;
        while !stop.load(Ordering::SeqCst) {
            let batch = farm.rt.block_on(async {
                let mut msgs = consumer
                    .fetch()
                    .max_messages(1)
                    .expires(Duration::from_millis(500))
                    .messages()
                    .await?;
                let mut out = Vec::new();
                while let Some(m) = msgs.next().await {
                    match m {
                        Ok(m) => out.push(m),
                        Err(e) => tracing::debug!("results: {e}"),
                    }
                }
                anyhow::Ok(out)
            });
            let batch = match batch {
                Ok(b) => b,
                Err(e) => {
                    tracing::debug!("results: {e:#}");
                    std::thread::sleep(Duration::from_millis(250));
                    continue;
                }
            };
            for m in batch {
                let beat = farm.heartbeat(&m);
                match serde_json::from_slice::<ResultMsg>(&m.payload) {
                    Ok(r) => self.apply(cfg, store, lookup, r),
                    Err(e) => match unreadable(&m.payload, &e) {
                        // An answer for a job whose report does not read (a garbled or
                        // hostile worker): that attempt failed, and the job is tried again
                        // rather than left waiting for an answer that never comes.
                        Some(r) => {
                            tracing::error!(
                                job = r.job,
                                worker = %r.worker,
                                "an answer that does not read: {e}"
                            );
                            self.apply(cfg, store, lookup, r)
                        }
                        None => tracing::error!("a result that is not one: {e}"),
                    },
                }
                beat.abort();
                if !farm.rt.block_on(super::ack(&m)) {
                    tracing::info!(
                        "a result could not be acknowledged (the server away?): it comes again and is then dropped"
                    );
                }
            }
        }
    }

    /// One result: a job still out on the farm with that attempt takes it; anything else is
    /// a late or second answer, dropped.
    /// Applies result `r`, in a span carrying its job's id, attempt and worker.
    fn apply(&self, cfg: &Config, store: &Store, lookup: Lookup, r: ResultMsg) {
        let span = tracing::info_span!(
            "farm_result",
            job = r.job,
            attempt = r.attempt,
            worker = %r.worker
        );
        span.in_scope(|| self.apply_in_span(cfg, store, lookup, r))
    }

    fn apply_in_span(&self, cfg: &Config, store: &Store, lookup: Lookup, r: ResultMsg) {
        let farm = &self.farm;
        let objects: Vec<String> = match &r.outcome {
            Outcome::Done { outputs, .. } => outputs.iter().map(|o| o.object.clone()).collect(),
            Outcome::Failed(_) => Vec::new(),
        };
        let job = match store.job(r.job) {
            Ok(Some(j))
                if j.state == JobState::Running
                    && j.attempts == r.attempt
                    && j.ran_on.is_some() =>
            {
                j
            }
            Ok(other) => {
                self.not_awaited(other, &r);
                farm.rt.block_on(farm.delete_objects(objects));
                self.sweep(cfg, store, Some(r.job));
                return;
            }
            Err(e) => {
                tracing::error!("cannot read the job: {e}");
                return;
            }
        };
        let Some((p, effects)) = lookup(&job.pipeline) else {
            // Taken again when the pipeline is back (the job waits as a local one does).
            let _ = job::wait_for_pipeline(store, job.id, &job.pipeline);
            self.out.fetch_sub(1, Ordering::SeqCst);
            self.release(&job.content_hash);
            farm.rt.block_on(farm.delete_objects(objects));
            self.sweep(cfg, store, Some(job.id));
            return;
        };
        let ctx = Ctx {
            interrupt: None,
            cfg,
            store,
            effects: &effects,
            progress: None,
            profiles: None,
        };
        let job = store
            .update_job(job.id, None, |j| j.ran_on = Some(r.worker.clone()))
            .unwrap_or(job);
        let started = job
            .started_ms
            .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
            .unwrap_or_else(jiff::Timestamp::now);
        let ResultMsg {
            outcome,
            worker,
            attempt,
            seconds,
            delivery,
            ..
        } = r;
        let rendition = match outcome {
            Outcome::Failed(f) => Err(f),
            Outcome::Done {
                rendition,
                outputs,
                work_root,
                source_at,
            } => {
                let staging =
                    super::staging_name(&farm.cfg.node, job.id, attempt, &worker, delivery)
                        .map(|name| Path::new(super::STAGING).join(name));
                self.place(cfg, &job, &outputs, staging.as_deref())
            }
            .map(|()| {
                let mut r = (*rendition).moved(&work_root, &cfg.root);
                // The source as this node names it, not where the worker mounts it.
                if let Some(at) = source_at {
                    r = r.moved(&at, &cfg.root.join(&job.input));
                }
                // Each checked against the bytes placed.
                // (The outputs' only: their QC pages follow them.)
                r.hashes = outputs
                    .iter()
                    .take(r.outputs.len())
                    .map(|o| o.blake3.clone())
                    .collect();
                r
            }),
        };
        let rec = job::finish_detached(&ctx, &p, job, started, rendition);
        let answered = Answered {
            worker,
            attempt,
            seconds,
        };
        self.out.fetch_sub(1, Ordering::SeqCst);
        self.sweep(cfg, store, Some(rec.id));
        self.recorded(&rec, &answered, objects);
    }

    /// A result for an attempt `job` (as stored) no longer awaits. When that attempt ended
    /// here already (this node died between recording it and acknowledging the result), the
    /// bucket gets its end again, in case the death came before the bucket had it.
    fn not_awaited(&self, job: Option<JobRecord>, r: &ResultMsg) {
        let farm = &self.farm;
        if let Some(j) = job.filter(|j| j.attempts == r.attempt) {
            self.tell_end(&job_key(&farm.cfg.node, j.id), &j);
        }
        tracing::info!(
            "a result from {} for attempt {} that is no longer awaited: dropped",
            r.worker,
            r.attempt
        );
    }

    /// The farm told of a result applied (`rec` the job as recorded now): its state in the
    /// bucket, its output objects deleted, and its source's object once no job needs it.
    fn recorded(&self, rec: &JobRecord, r: &Answered, objects: Vec<String>) {
        let farm = &self.farm;
        let key = job_key(&farm.cfg.node, rec.id);
        let state = FarmState::now(
            super::FarmStep::of(rec.state),
            r.attempt,
            Some(r.worker.clone()),
            &rec.input,
            &rec.pipeline,
        );
        let still_needed = self.release(&rec.content_hash) > 0;
        farm.rt.block_on(async {
            if let Err(e) = farm.set_state(&key, &state).await {
                tracing::warn!("{e:#}");
            }
            farm.delete_objects(objects).await;
            if rec.state != JobState::Queued
                && !still_needed
                && self
                    .stored
                    .lock()
                    .expect("not poisoned")
                    .remove(&rec.content_hash)
            {
                farm.delete_objects([source_object(&farm.cfg.node, &rec.content_hash)])
                    .await;
            }
        });
        let what = match rec.state {
            JobState::Done => format!(
                "done on {} ({} output(s), {:.1} s)",
                r.worker,
                rec.outputs.len(),
                r.seconds
            ),
            s => format!(
                "{} on {}: {}",
                s.name(),
                r.worker,
                rec.error.clone().unwrap_or_default()
            ),
        };
        tracing::info!("{} {what}", rec.input.display());
    }

    /// The staging folders (see [`super::STAGING`]) of this node's deliveries that are no
    /// longer awaited, removed: job `only`'s, or every job's. A delivery is awaited while its
    /// job is out on the farm with its attempt.
    fn sweep(&self, cfg: &Config, store: &Store, only: Option<u64>) {
        let Ok(dir) = crate::confine::resolve(&cfg.root, Path::new(super::STAGING)) else {
            return;
        };
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some((node, id, attempt)) = name.to_str().and_then(super::staging_of) else {
                continue;
            };
            if node != self.farm.cfg.node || only.is_some_and(|j| j != id) {
                continue;
            }
            let awaited = matches!(
                store.job(id),
                Ok(Some(j)) if j.state == JobState::Running && j.ran_on.is_some() && j.attempts == attempt
            );
            if !awaited {
                // (A link there is removed, not followed.)
                if let Err(e) = std::fs::remove_dir_all(entry.path())
                    && e.kind() != std::io::ErrorKind::NotFound
                {
                    tracing::warn!(job = id, "{}: {e}", entry.path().display());
                }
            }
        }
    }

    /// The worker's outputs into their planned paths in the root, each complete under its
    /// name only once fetched whole (or, staged on the shared root, found in the delivery's
    /// folder `staging`) and checked.
    fn place(
        &self,
        cfg: &Config,
        job: &JobRecord,
        outputs: &[super::OutputObject],
        staging: Option<&Path>,
    ) -> Result<(), Failure> {
        let farm = &self.farm;
        for (o, rel) in outputs.iter().zip(&job.planned) {
            let dest = crate::confine::prepare(&cfg.root, rel)?;
            if o.staged {
                let Some(staging) = staging else {
                    return Err(Failure::Refused(format!(
                        "{}: a worker whose name cannot name a folder says it left the output on the shared root",
                        dest.display()
                    )));
                };
                place_staged(&cfg.root, &staging.join(rel), &dest, o)?;
                continue;
            }
            let transient = |e: String| Failure::Transient(format!("{}: {e}", dest.display()));
            let (atomic, mut file) = sluice_core::io::AtomicFile::create(&dest, true)
                .map_err(|e| transient(e.to_string()))?;
            let (hash, size) = match &o.inline {
                // A small output came in the result.
                Some(text) => {
                    let data =
                        super::decode_inline(text).map_err(|e| transient(format!("{e:#}")))?;
                    std::io::Write::write_all(&mut file, &data)
                        .map_err(|e| transient(e.to_string()))?;
                    (blake3::hash(&data).to_hex().to_string(), data.len() as u64)
                }
                None => farm
                    .rt
                    .block_on(farm.get_into(&o.object, &mut file))
                    .map_err(|e| transient(format!("fetching the output from the farm: {e:#}")))?,
            };
            if hash != o.blake3 || size != o.bytes {
                return Err(transient(format!(
                    "the output fetched from the farm is not what the worker wrote ({size} bytes, BLAKE3 {hash}; the worker's: {} bytes, {})",
                    o.bytes, o.blake3
                )));
            }
            file.sync_all().map_err(|e| transient(e.to_string()))?;
            drop(file);
            atomic.commit().map_err(|e| transient(e.to_string()))?;
        }
        Ok(())
    }
}

/// Who answered a job's attempt, and how long it took there.
struct Answered {
    worker: String,
    attempt: u32,
    seconds: f64,
}

/// One output a worker left on the shared root (at `staged`, relative to `root`) moved to
/// `dest`: it must be a regular file of its own (not a link, nor a second name of another
/// file) with the size and BLAKE3 the worker gave, and is then renamed (one file system: no
/// copy), the rename synced with its folder. When it is gone and `dest` holds those bytes, it
/// was placed already (this node died after moving it, before recording the job).
fn place_staged(
    root: &Path,
    staged: &Path,
    dest: &Path,
    o: &super::OutputObject,
) -> Result<(), Failure> {
    use std::os::unix::fs::MetadataExt;
    let transient = |e: String| Failure::Transient(format!("{}: {e}", dest.display()));
    let from = crate::confine::resolve(root, staged)?;
    let meta = match std::fs::symlink_metadata(&from) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let placed = std::fs::symlink_metadata(dest)
                .is_ok_and(|m| m.is_file() && m.len() == o.bytes)
                && crate::digest::hash_file(dest).is_ok_and(|h| h == o.blake3);
            if placed {
                return Ok(());
            }
            return Err(transient(format!(
                "the worker's output {} is not on the shared root here (does every node mount the same root?)",
                from.display()
            )));
        }
        Err(e) => return Err(transient(format!("{}: {e}", from.display()))),
    };
    if !meta.file_type().is_file() || meta.nlink() != 1 {
        return Err(Failure::Refused(format!(
            "{}: the worker's output on the shared root is not a file of its own ({}): not moved",
            from.display(),
            if meta.file_type().is_symlink() {
                "a symbolic link".to_string()
            } else if meta.is_file() {
                format!("{} names for it", meta.nlink())
            } else {
                "not a regular file".to_string()
            }
        )));
    }
    let hash = crate::digest::hash_file(&from)
        .map_err(|e| transient(format!("{}: {e}", from.display())))?;
    if hash != o.blake3 || meta.len() != o.bytes {
        return Err(transient(format!(
            "the output on the shared root is not what the worker wrote ({} bytes, BLAKE3 {hash}; the worker's: {} bytes, {})",
            meta.len(),
            o.bytes,
            o.blake3
        )));
    }
    std::fs::rename(&from, dest).map_err(|e| transient(e.to_string()))?;
    if let Some(dir) = dest.parent()
        && let Ok(d) = std::fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::{OutputObject, STAGING, staging_name, staging_of};
    use super::*;

    /// A root with one staged output (`bytes`) of delivery `name`, and the output's record as
    /// its worker would send it.
    fn staged(root: &Path, bytes: &[u8]) -> (std::path::PathBuf, OutputObject) {
        let name = staging_name("ingest", 7, 1, "w1", 1).unwrap();
        let rel = Path::new(STAGING).join(name).join("out/a.flac");
        std::fs::create_dir_all(root.join(&rel).parent().unwrap()).unwrap();
        std::fs::write(root.join(&rel), bytes).unwrap();
        let o = OutputObject {
            object: String::new(),
            blake3: blake3::hash(bytes).to_hex().to_string(),
            bytes: bytes.len() as u64,
            inline: None,
            staged: true,
        };
        (rel, o)
    }

    fn dest(root: &Path) -> std::path::PathBuf {
        crate::confine::prepare(root, Path::new("out/a.flac")).unwrap()
    }

    #[test]
    fn a_staged_output_is_checked_then_moved_and_a_second_apply_finds_it_placed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let (rel, o) = staged(root, b"the output's bytes");
        let to = dest(root);
        place_staged(root, &rel, &to, &o).unwrap();
        assert_eq!(std::fs::read(&to).unwrap(), b"the output's bytes");
        assert!(!root.join(&rel).exists());
        // This node died after the move, before recording the job: the result comes again.
        place_staged(root, &rel, &to, &o).unwrap();
        // Gone, and not at the destination either: the reason, nothing placed.
        std::fs::remove_file(&to).unwrap();
        let e = place_staged(root, &rel, &to, &o).unwrap_err();
        assert!(matches!(e, Failure::Transient(_)), "{e:?}");
        assert!(
            e.message().contains("does every node mount the same root"),
            "{}",
            e.message()
        );
        assert!(!to.exists());
    }

    #[test]
    fn a_staged_output_that_is_not_what_the_worker_wrote_stays_where_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let (rel, mut o) = staged(root, b"what is on the shared root");
        let to = dest(root);
        o.blake3 = blake3::hash(b"what the worker wrote").to_hex().to_string();
        let e = place_staged(root, &rel, &to, &o).unwrap_err();
        assert!(e.message().contains("not what the worker wrote"), "{e:?}");
        assert!(!to.exists());
        assert!(root.join(&rel).is_file());
        // The right hash but another size: refused too.
        let (rel, mut o) = staged(root, b"what is on the shared root");
        o.bytes += 1;
        assert!(place_staged(root, &rel, &to, &o).is_err());
        assert!(!to.exists());
    }

    #[test]
    fn a_link_or_a_second_name_on_the_shared_root_is_not_moved() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(&root).unwrap();
        let secret = dir.path().join("secret.txt");
        std::fs::write(&secret, b"not the root's").unwrap();
        let (rel, mut o) = staged(&root, b"x");
        o.blake3 = blake3::hash(b"not the root's").to_hex().to_string();
        o.bytes = 14;
        let to = dest(&root);
        // A symbolic link to a file outside the root, with that file's hash.
        std::fs::remove_file(root.join(&rel)).unwrap();
        std::os::unix::fs::symlink(&secret, root.join(&rel)).unwrap();
        let e = place_staged(&root, &rel, &to, &o).unwrap_err();
        assert!(matches!(e, Failure::Refused(_)), "{e:?}");
        assert!(e.message().contains("a symbolic link"), "{}", e.message());
        // A hard link to a file of the root (another job's output, say).
        std::fs::remove_file(root.join(&rel)).unwrap();
        let other = root.join("done/other.flac");
        std::fs::create_dir_all(other.parent().unwrap()).unwrap();
        std::fs::write(&other, b"not the root's").unwrap();
        std::fs::hard_link(&other, root.join(&rel)).unwrap();
        let e = place_staged(&root, &rel, &to, &o).unwrap_err();
        assert!(e.message().contains("2 names for it"), "{}", e.message());
        assert!(!to.exists());
        assert!(other.is_file());
        // The staging folder itself a link out of the root.
        let (rel, o) = staged(&root, b"y");
        let staging = root.join(STAGING);
        let outside = dir.path().join("outside");
        std::fs::rename(&staging, &outside).unwrap();
        std::os::unix::fs::symlink(&outside, &staging).unwrap();
        let e = place_staged(&root, &rel, &to, &o).unwrap_err();
        assert!(matches!(e, Failure::Refused(_)), "{e:?}");
        assert!(!to.exists());
        assert_eq!(std::fs::read(&secret).unwrap(), b"not the root's");
    }

    #[test]
    fn staging_folders_are_named_only_for_node_names() {
        let n = staging_name("ingest-1", 12, 3, "w_2", 4).unwrap();
        assert_eq!(n, "ingest-1.12.3.w_2.4");
        assert_eq!(staging_of(&n), Some(("ingest-1", 12, 3)));
        for worker in ["..", "a/b", "", "w.1", "w 1"] {
            assert_eq!(staging_name("ingest", 1, 1, worker, 1), None, "{worker:?}");
        }
        assert_eq!(staging_name("ingest", 1, 1, "w1", -1), None);
        for name in [
            "ingest.1.1.w1",
            "ingest.1.1.w1.1.x",
            "ingest.x.1.w1.1",
            ".1.1.w1.1",
        ] {
            assert_eq!(staging_of(name), None, "{name:?}");
        }
    }
}
