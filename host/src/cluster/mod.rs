//! A Sluice farm on NATS JetStream (`[cluster]` in sluice.toml; docs/CLUSTER.md).
//!
//! - The **ingest node** is `sluice watch` with `[cluster]`: it watches, settles, indexes and
//!   queues files as a single machine does, and where a local worker would run a job it plans
//!   its paths (reserved in its redb store), puts the source into the object store under its
//!   content hash, and publishes a [`JobMsg`] to the work-queue stream with the message ID
//!   `node.job.attempt`, so a publish made again after a crash is a no-op. When a worker's
//!   [`ResultMsg`] arrives on `SUBJECT.results.NODE` it fetches each output into its root as a
//!   local job writes one (temporary file, sync, rename; the BLAKE3 hash checked), writes the
//!   report, moves the source, and records the job done in redb, then acknowledges the result.
//! - A **worker** is `sluice worker`: it pulls one job at a time per thread from a durable
//!   consumer (explicit acks; `ack_wait`; heartbeats while a job runs), fetches the source by
//!   hash and checks it, parses the pipeline text the message carries, renders with the same
//!   code as the local host into a folder of its own, uploads the outputs, publishes the
//!   result, and only then acknowledges the job.
//! - Job state farm-wide lives in a key-value bucket (`NODE.JOB` → [`FarmState`]); each node's
//!   redb stays its own truth.
//!
//! Exactly once: a job is acknowledged only after its result is stored in the results stream,
//! and a result is applied only to a job still out on the farm with the same attempt; a second
//! result (a worker thought dead that finished after all, or a redelivery) is dropped. A job
//! delivered more than `max_deliveries` times (every worker that took it died or hung) is
//! answered with a failure by the worker that sees it next, and its source is quarantined.

pub mod ingest;
pub mod worker;

use crate::config::{ClusterAuth, ClusterConfig};
use crate::store::JobState;
use anyhow::{Context, Result};
use async_nats::jetstream;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A job sent to the farm.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobMsg {
    /// The ingest node that owns the job, and the job's id and attempt there.
    pub node: String,
    pub job: u64,
    pub attempt: u32,
    /// The source relative to the ingest node's root, and its BLAKE3 hash.
    #[serde(with = "crate::store::path_codec")]
    pub input: PathBuf,
    pub content_hash: String,
    /// The object holding the source, or (`shared_root`) none: the source is then at
    /// `shared_source` under the shared root.
    pub source_object: String,
    /// (`path_codec`'s form: any bytes a file name may hold.)
    #[serde(default)]
    pub shared_source: Option<String>,
    /// A small source carried in the message itself (base64), not through the object store:
    /// see [`Farm::inline_limit`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_inline: Option<String>,
    pub pipeline: String,
    pub pipeline_hash: String,
    /// The pipeline file's name (for messages) and its text (the worker parses it).
    pub pipeline_file: String,
    pub pipeline_text: String,
    /// The ingest node's `target_lufs` and `target_true_peak_dbtp` (what `normalize = {}`
    /// means there).
    pub target_lufs: f64,
    pub target_true_peak_dbtp: f64,
    /// Output, report and moved-source paths, relative to the root, fixed by the ingest node.
    pub planned: Vec<PathBuf>,
    /// The user effects (wasm modules of the ingest root's `effects/`) the pipeline names,
    /// by BLAKE3 hash: a worker fetches each from the object store, checks it, and runs it
    /// rather than any module of its own of that name.
    #[serde(default)]
    pub effects: Vec<EffectModule>,
    /// The audio files the pipeline's effect steps name for their data slots (impulse
    /// responses), by BLAKE3 hash: a worker fetches each, checks its hash, and puts it at the
    /// same path in the job's own root.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data: Vec<DataFile>,
    /// The profiles the pipeline's compare and match steps name, from the ingest node's
    /// reference library (a worker's own library is not the one the pipeline means).
    #[serde(default)]
    pub profiles: Vec<crate::job::SentProfile>,
    /// Outputs rendered on the shared root, in the delivery's staging folder ([`STAGING`]),
    /// and moved into place from there by the ingest node, rather than sent through the
    /// object store (set with `shared_root`).
    #[serde(default)]
    pub stage: bool,
    /// The album the source arrived in, measured by the ingest node (the worker sees one file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub album: Option<crate::store::AlbumRecord>,
}

/// A data file a job needs: its path in the root as the pipeline writes it, its hash, and its
/// object in the store.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DataFile {
    pub path: String,
    pub blake3: String,
    pub object: String,
}

/// A user effect a job needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EffectModule {
    pub name: String,
    pub blake3: String,
    pub object: String,
}

impl JobMsg {
    /// The key of the job in the state bucket, and the ID of its publish.
    pub fn key(&self) -> String {
        job_key(&self.node, self.job)
    }
    pub fn msg_id(&self) -> String {
        format!("{}.{}.{}", self.node, self.job, self.attempt)
    }
}

pub fn job_key(node: &str, job: u64) -> String {
    format!("{node}.{job}")
}

/// One output a worker uploaded.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OutputObject {
    /// The object holding the output; empty when it travels in the result (`inline`).
    pub object: String,
    pub blake3: String,
    pub bytes: u64,
    /// A small output carried in the result message itself (base64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inline: Option<String>,
    /// Left on the shared root at its planned path in the delivery's staging folder (see
    /// [`STAGING`]), for the ingest node to check and move into place.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub staged: bool,
}

/// Where workers render the jobs of a shared root (`shared_root`, every node mounting the
/// same root): a folder in the root's own `.sluice` (hidden, never watched), one folder per
/// delivery of a job ([`staging_name`]). The ingest node checks each output there and moves
/// it into place (one file system: a rename, no copy and nothing through NATS), and removes
/// the folders of deliveries it no longer awaits.
pub const STAGING: &str = ".sluice/farm-staging";

/// The staging folder of one delivery of a job, `NODE.JOB.ATTEMPT.WORKER.DELIVERY`; `None`
/// when a node's name is not one a node may have (a result naming a worker `..` would
/// otherwise point the ingest node at another folder).
pub fn staging_name(
    node: &str,
    job: u64,
    attempt: u32,
    worker: &str,
    delivery: i64,
) -> Option<String> {
    let ok = crate::config::is_node_name;
    (ok(node) && ok(worker) && delivery >= 0)
        .then(|| format!("{node}.{job}.{attempt}.{worker}.{delivery}"))
}

/// The node, job and attempt of a staging folder's name (see [`staging_name`]).
pub fn staging_of(name: &str) -> Option<(&str, u64, u32)> {
    let parts: Vec<&str> = name.split('.').collect();
    let [node, job, attempt, worker, delivery] = parts[..] else {
        return None;
    };
    let (job, attempt) = (job.parse().ok()?, attempt.parse().ok()?);
    let delivery: i64 = delivery.parse().ok()?;
    (staging_name(node, job, attempt, worker, delivery)? == name).then_some((node, job, attempt))
}

/// Bytes as the messages carry them.
pub fn encode_inline(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The bytes a message carries, or what is wrong with them.
pub fn decode_inline(text: &str) -> Result<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| anyhow::anyhow!("the bytes carried in the message are not base64: {e}"))
}

/// What a worker made of a job.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Outcome {
    Done {
        /// As CBOR in base64 (see [`rendition_wire`]).
        #[serde(with = "rendition_wire")]
        rendition: Box<crate::job::Rendition>,
        outputs: Vec<OutputObject>,
        /// The folder the worker rendered in (the rendition's paths are under it).
        work_root: PathBuf,
        /// Where the worker read the source, when that was not under `work_root` (on the
        /// shared root, where the worker mounts it).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        source_at: Option<PathBuf>,
    },
    Failed(crate::job::Failure),
}

/// A rendition on the wire: its typed reports as CBOR, carried in the JSON message as base64.
/// (JSON has no infinity or NaN: serde_json writes them as `null`, which would not read back
/// into the reports' numbers — the loudness of silence is minus infinity.)
mod rendition_wire {
    use crate::job::Rendition;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(r: &Rendition, s: S) -> Result<S::Ok, S::Error> {
        let mut bytes = Vec::new();
        ciborium::into_writer(r, &mut bytes).map_err(serde::ser::Error::custom)?;
        s.serialize_str(&super::encode_inline(&bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Box<Rendition>, D::Error> {
        let text = String::deserialize(d)?;
        let bytes = super::decode_inline(&text).map_err(serde::de::Error::custom)?;
        ciborium::from_reader(bytes.as_slice())
            .map(Box::new)
            .map_err(|e| serde::de::Error::custom(format!("the rendition: {e}")))
    }
}

/// How far a worker's render of a job has come (sent about once a second while it runs).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProgressMsg {
    pub job: u64,
    pub attempt: u32,
    /// 0..1.
    pub progress: f64,
}

/// A worker's answer for one job.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResultMsg {
    pub node: String,
    pub job: u64,
    pub attempt: u32,
    pub worker: String,
    /// Which delivery of the job this was (1 for the first worker to take it).
    pub delivery: i64,
    pub seconds: f64,
    pub outcome: Outcome,
}

/// A job's state in the farm's key-value bucket.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FarmState {
    pub state: FarmStep,
    pub attempt: u32,
    #[serde(default)]
    pub worker: Option<String>,
    pub input: String,
    pub pipeline: String,
    pub updated_ms: i64,
}

/// Where a job stands on the farm (stored in the bucket by its lower-case name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FarmStep {
    /// Published, no worker has answered.
    Queued,
    /// A worker renders it.
    Running,
    /// Rendered and answered; the ingest node has not applied the answer yet.
    Rendered,
    Done,
    Failed,
    Quarantined,
}

impl FarmStep {
    /// The step of a job in this state on the ingest node.
    pub fn of(state: JobState) -> FarmStep {
        match state {
            JobState::Queued => FarmStep::Queued,
            JobState::Running => FarmStep::Running,
            JobState::Done => FarmStep::Done,
            JobState::Failed => FarmStep::Failed,
            JobState::Quarantined => FarmStep::Quarantined,
        }
    }
}

impl std::fmt::Display for FarmStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FarmStep::Queued => "queued",
            FarmStep::Running => "running",
            FarmStep::Rendered => "rendered",
            FarmStep::Done => "done",
            FarmStep::Failed => "failed",
            FarmStep::Quarantined => "quarantined",
        })
    }
}

impl FarmState {
    /// `state` of attempt `attempt` of the job of `input` through `pipeline`, as of now.
    pub fn now(
        state: FarmStep,
        attempt: u32,
        worker: Option<String>,
        input: &std::path::Path,
        pipeline: &str,
    ) -> FarmState {
        FarmState {
            state,
            attempt,
            worker,
            input: input.to_string_lossy().into_owned(),
            pipeline: pipeline.to_string(),
            updated_ms: now_ms(),
        }
    }
}

/// A connection to the farm: the work-queue stream, the results stream, the state bucket and
/// the object store, made when missing. Blocking methods for the host's threads (its own
/// runtime underneath).
pub struct Farm {
    pub cfg: ClusterConfig,
    pub rt: tokio::runtime::Runtime,
    pub client: async_nats::Client,
    pub js: jetstream::Context,
    pub kv: jetstream::kv::Store,
    pub objects: jetstream::object_store::ObjectStore,
}

impl Farm {
    /// Connects (trying for up to `patience`: the NATS server may be starting) and makes what
    /// is missing.
    pub fn connect(cfg: &ClusterConfig, patience: Duration) -> Result<Farm> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("sluice-nats")
            .enable_all()
            .build()
            .context("the cluster's runtime")?;
        let servers = cfg.servers.join(", ");
        let (client, js, kv, objects) = rt.block_on(async {
            let deadline = tokio::time::Instant::now() + patience;
            let client = loop {
                match options(cfg).await?.connect(cfg.servers.as_slice()).await {
                    Ok(c) => break c,
                    // Waiting does not mend refused credentials or a bad address.
                    Err(e)
                        if matches!(
                            e.kind(),
                            async_nats::ConnectErrorKind::AuthorizationViolation
                                | async_nats::ConnectErrorKind::Authentication
                                | async_nats::ConnectErrorKind::ServerParse
                                | async_nats::ConnectErrorKind::Tls
                        ) =>
                    {
                        anyhow::bail!(
                            "the cluster's NATS server at {servers} refused this node ({:?} login of [cluster]): {e}",
                            cfg.auth
                        )
                    }
                    // Nor a server certificate this node does not trust.
                    Err(e) if tls_refused(&e) => {
                        anyhow::bail!(
                            "the cluster's NATS server at {servers} has a certificate this node does not trust ({e}): give its authority in [cluster] tls_ca"
                        )
                    }
                    Err(e) if tokio::time::Instant::now() >= deadline => {
                        anyhow::bail!("cannot reach the cluster's NATS server at {servers}: {e}")
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
                }
            };
            let js = jetstream::new(client.clone());
            let setup = async {
                js.get_or_create_stream(jetstream::stream::Config {
                    name: cfg.stream.clone(),
                    subjects: vec![format!("{}.jobs", cfg.subject)],
                    retention: jetstream::stream::RetentionPolicy::WorkQueue,
                    storage: jetstream::stream::StorageType::File,
                    duplicate_window: Duration::from_secs(3600),
                    ..Default::default()
                })
                .await
                .map_err(|e| anyhow::anyhow!("the job stream {}: {e}", cfg.stream))?;
                js.get_or_create_stream(jetstream::stream::Config {
                    name: cfg.results.clone(),
                    subjects: vec![format!("{}.results.*", cfg.subject)],
                    retention: jetstream::stream::RetentionPolicy::WorkQueue,
                    storage: jetstream::stream::StorageType::File,
                    duplicate_window: Duration::from_secs(3600),
                    ..Default::default()
                })
                .await
                .map_err(|e| anyhow::anyhow!("the results stream {}: {e}", cfg.results))?;
                let kv = match js.get_key_value(&cfg.bucket).await {
                    Ok(kv) => kv,
                    Err(_) => js
                        .create_key_value(jetstream::kv::Config {
                            bucket: cfg.bucket.clone(),
                            description: "Sluice: job state across the farm".into(),
                            history: 1,
                            storage: jetstream::stream::StorageType::File,
                            ..Default::default()
                        })
                        .await
                        .map_err(|e| anyhow::anyhow!("the state bucket {}: {e}", cfg.bucket))?,
                };
                let objects = match js.get_object_store(&cfg.objects).await {
                    Ok(o) => o,
                    Err(_) => js
                        .create_object_store(jetstream::object_store::Config {
                            bucket: cfg.objects.clone(),
                            description: Some("Sluice: sources and outputs in transit".into()),
                            // What a crash leaves behind goes in a week.
                            max_age: Duration::from_secs(7 * 86_400),
                            storage: jetstream::stream::StorageType::File,
                            ..Default::default()
                        })
                        .await
                        .map_err(|e| anyhow::anyhow!("the object store {}: {e}", cfg.objects))?,
                };
                anyhow::Ok((kv, objects))
            };
            let (kv, objects) = tokio::time::timeout(Duration::from_secs(30), setup)
                .await
                .map_err(|_| {
                    anyhow::anyhow!(
                        "the NATS server at {servers} did not answer JetStream requests in 30 s (is it started with -js?)"
                    )
                })??;
            anyhow::Ok((client, js, kv, objects))
        })?;
        Ok(Farm {
            cfg: cfg.clone(),
            rt,
            client,
            js,
            kv,
            objects,
        })
    }

    /// The job's state in the bucket.
    pub async fn state(&self, key: &str) -> Option<FarmState> {
        let v = self.kv.get(key).await.ok().flatten()?;
        serde_json::from_slice(&v).ok()
    }

    /// Sets the job's state (retried while the server is away, for up to a minute); returns
    /// the bucket's revision of it.
    /// The job states in the bucket whose keys start with `prefix` (a node's `NODE.`), by key.
    pub async fn states_with_prefix(&self, prefix: &str) -> Result<Vec<(String, FarmState)>> {
        use futures_util::StreamExt;
        let mut keys = self.kv.keys().await.context("the job states' keys")?;
        let mut out = Vec::new();
        while let Some(k) = keys.next().await {
            let k = k.context("a job state's key")?;
            if !k.starts_with(prefix) {
                continue;
            }
            if let Some(v) = self.kv.get(&k).await.context("a job state")?
                && let Ok(s) = serde_json::from_slice::<FarmState>(&v)
            {
                out.push((k, s));
            }
        }
        Ok(out)
    }

    pub async fn set_state(&self, key: &str, s: &FarmState) -> Result<u64> {
        let bytes: bytes::Bytes = serde_json::to_vec(s)?.into();
        retry("a job state", || async {
            self.kv.put(key, bytes.clone()).await
        })
        .await
    }

    /// Puts the file at `path` into the object store as `name`, unless an object of that
    /// name and size is there already.
    pub async fn put_file(&self, name: &str, path: &Path) -> Result<()> {
        let size = std::fs::metadata(path)
            .with_context(|| format!("{}", path.display()))?
            .len();
        if let Ok(info) = self.objects.info(name).await
            && !info.deleted
            && info.size as u64 == size
        {
            return Ok(());
        }
        self.put_new(name, path).await
    }

    /// Puts the file at `path` into the object store as `name`, a name no object has yet
    /// (an output's): no look for an existing one first.
    pub async fn put_new(&self, name: &str, path: &Path) -> Result<()> {
        retry("an upload", || async {
            let mut f = tokio::fs::File::open(path).await?;
            // Chunks of 512 KiB (half NATS's default largest message): each is published
            // and acknowledged in turn, so the library's 128 KiB meant four times the round
            // trips.
            let meta = jetstream::object_store::ObjectMetadata {
                name: name.to_string(),
                chunk_size: Some(512 << 10),
                ..Default::default()
            };
            self.objects
                .put(meta, &mut f)
                .await
                .map(|_| ())
                .map_err(anyhow::Error::from)
        })
        .await
        .with_context(|| format!("{} into the object store as {name}", path.display()))
    }

    /// Fetches object `name` into `out`, returning its BLAKE3 hash and size (the writes are
    /// the caller's file's, made on this thread).
    pub async fn get_into(
        &self,
        name: &str,
        out: &mut impl std::io::Write,
    ) -> Result<(String, u64)> {
        use tokio::io::AsyncReadExt;
        let mut obj = self
            .objects
            .get(name)
            .await
            .map_err(|e| anyhow::anyhow!("object {name}: {e}"))?;
        let mut hasher = blake3::Hasher::new();
        let mut buf = vec![0u8; 256 << 10];
        let mut size = 0u64;
        loop {
            let n = obj
                .read(&mut buf)
                .await
                .map_err(|e| anyhow::anyhow!("object {name}: {e}"))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n])?;
            size += n as u64;
        }
        Ok((hasher.finalize().to_hex().to_string(), size))
    }

    /// How many bytes of files a message may carry itself instead of through the object
    /// store (for a short file the object store's own requests — a lookup, the chunks, the
    /// metadata, a consumer to read it back, a purge — cost more than the bytes): a quarter
    /// of the server's largest message, at most 256 KiB.
    pub fn inline_limit(&self) -> u64 {
        let max = self.client.server_info().max_payload as u64;
        (max / 4).min(256 << 10)
    }

    /// Deletes objects, quietly (they expire anyway); empty names (files carried in their
    /// message) are skipped.
    pub async fn delete_objects(&self, names: impl IntoIterator<Item = String>) {
        for n in names.into_iter().filter(|n| !n.is_empty()) {
            let _ = self.objects.delete(&n).await;
        }
    }

    /// Publishes `payload` on `subject` with message ID `id` and waits for the stream's
    /// acknowledgement (retried while the server is away). Returns whether the stream had the
    /// ID already (a duplicate, not stored again).
    pub async fn publish(&self, subject: String, id: String, payload: Vec<u8>) -> Result<bool> {
        let payload: bytes::Bytes = payload.into();
        let ack = retry("a publish", || async {
            let ack = self
                .js
                .send_publish(
                    subject.clone(),
                    jetstream::message::PublishMessage::build()
                        .payload(payload.clone())
                        .message_id(&id),
                )
                .await?
                .await?;
            anyhow::Ok(ack)
        })
        .await?;
        Ok(ack.duplicate)
    }

    /// Tells the stream every third of `ack_wait` that `m` is still being worked on, until
    /// the returned task is aborted.
    pub fn heartbeat(&self, m: &jetstream::Message) -> tokio::task::JoinHandle<()> {
        let m = m.clone();
        let every = self.cfg.ack_wait / 3;
        self.rt.spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let _ = m.ack_with(jetstream::AckKind::Progress).await;
            }
        })
    }

    pub fn jobs_subject(&self) -> String {
        format!("{}.jobs", self.cfg.subject)
    }
    pub fn results_subject(&self, node: &str) -> String {
        format!("{}.results.{node}", self.cfg.subject)
    }
    pub fn progress_subject(&self, node: &str) -> String {
        format!("{}.progress.{node}", self.cfg.subject)
    }
}

/// `f` until it works, for up to a minute (a NATS server restarting, a connection being made
/// again), with a short wait between tries.
async fn retry<F, Fut, T, E>(what: &str, mut f: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<T, E>>,
    E: std::fmt::Display,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut wait = Duration::from_millis(100);
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) => {
                let e = anyhow::anyhow!("{e:#}");
                if tokio::time::Instant::now() >= deadline {
                    return Err(e.context(format!("{what} failed for a minute")));
                }
                tracing::debug!("{what}: {e:#}; trying again");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(2));
            }
        }
    }
}

/// Acknowledges `m` and waits for the server's word, tried a few times over a few seconds.
/// Not acknowledged (the server away), the message comes again after its wait, and is
/// then found answered already: acks are not worth waiting a minute for.
pub async fn ack(m: &jetstream::Message) -> bool {
    for _ in 0..3 {
        if let Ok(Ok(())) = tokio::time::timeout(Duration::from_secs(2), m.double_ack()).await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

async fn options(cfg: &ClusterConfig) -> Result<async_nats::ConnectOptions> {
    let mut o = match &cfg.auth {
        ClusterAuth::None => async_nats::ConnectOptions::new(),
        ClusterAuth::Token(t) => async_nats::ConnectOptions::with_token(t.clone()),
        ClusterAuth::User { user, password } => {
            async_nats::ConnectOptions::with_user_and_password(user.clone(), password.clone())
        }
        ClusterAuth::Nkey(seed) => async_nats::ConnectOptions::with_nkey(seed.clone()),
        ClusterAuth::Credentials(path) => {
            async_nats::ConnectOptions::with_credentials_file(path.clone())
                .await
                .with_context(|| format!("[cluster] credentials {}", path.display()))?
        }
    };
    if cfg.tls {
        o = o.require_tls(true);
    }
    if let Some(ca) = &cfg.tls_ca {
        o = o.add_root_certificates(ca.clone());
    }
    Ok(o.name(format!("sluice {}", cfg.node))
        .connection_timeout(Duration::from_secs(5))
        .max_reconnects(None))
}

/// Whether a failed connection was a TLS handshake the server's certificate failed.
fn tls_refused(e: &async_nats::ConnectError) -> bool {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if s.is::<tokio_rustls::rustls::Error>()
            || s.downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .is_some_and(|inner| inner.is::<tokio_rustls::rustls::Error>())
        {
            return true;
        }
        source = s.source();
    }
    // (As async-nats words it when it keeps no source.)
    e.to_string().contains("invalid peer certificate")
}

pub fn now_ms() -> i64 {
    crate::store::now_ms()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_core::export::{OutputPlan, export};
    use std::path::Path;

    /// Half a second of digital silence, then a tone, then silence again (`silent`: all
    /// silence), as a 24-bit WAV.
    fn material(path: &Path, silent: bool) {
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 48_000,
            bits_per_sample: 24,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(path, spec).unwrap();
        for i in 0..48_000 * 4 {
            let t = f64::from(i) / 48_000.0;
            let on = !silent && (0.5..3.5).contains(&t);
            let x = if on {
                0.3 * (std::f64::consts::TAU * 997.0 * t).sin()
            } else {
                0.0
            };
            let s = (x * 8_388_607.0) as i32;
            w.write_sample(s).unwrap();
            w.write_sample(-s).unwrap();
        }
        w.finalize().unwrap();
    }

    /// A rendition of `src` as a job makes one: every analysis section, an export with its
    /// output judged against a delivery specification.
    fn rendition(src: &Path, out: &Path) -> crate::job::Rendition {
        let opts = sluice_core::analysis::AnalysisOptions {
            loudness_history_seconds: Some(0.1),
            ..Default::default()
        };
        let analysis = sluice_core::analysis::analyze(src, &opts, &mut |_| {}).unwrap();
        let info = sluice_core::info(src, &Default::default()).unwrap();
        let mut report = export(
            src,
            &[],
            &[OutputPlan::new(
                out.to_path_buf(),
                sluice_core::encode::flac::output(24, 5),
            )],
            &mut |_| {},
        )
        .unwrap();
        let spec = sluice_core::qc::spec::load("ebu-r128").unwrap();
        let measured = sluice_core::qc::measure(out, &spec, &mut |_| {}).unwrap();
        report.outputs[0].qc = Some(sluice_core::qc::judge(&spec, measured).summary());
        crate::job::Rendition {
            outputs: vec![(report.outputs[0].bytes, "flac".into())],
            export: Some(report),
            analysis: Some(analysis),
            comparison: None,
            source: info.stream,
            tags: info.tags,
            index: None,
            warnings: vec![format!("{}: a warning naming the source", src.display())],
            hashes: Vec::new(),
        }
    }

    /// A rendition crosses the farm's wire typed and comes back as the report file would show
    /// it, silence (whose loudness and peaks are not finite) included; through the farm's
    /// folder move its paths are the root's.
    #[test]
    fn a_rendition_crosses_the_wire_whole() {
        let dir = tempfile::tempdir().unwrap();
        for silent in [false, true] {
            let src = dir.path().join(format!("in-{silent}.wav"));
            material(&src, silent);
            let out = dir.path().join(format!("out-{silent}.flac"));
            let r = rendition(&src, &out);
            let msg = Outcome::Done {
                rendition: Box::new(r.clone()),
                outputs: Vec::new(),
                work_root: dir.path().to_path_buf(),
                source_at: None,
            };
            let wire = serde_json::to_vec(&msg).unwrap();
            let Outcome::Done {
                rendition: back, ..
            } = serde_json::from_slice::<Outcome>(&wire).unwrap()
            else {
                panic!("not Done");
            };
            let shown = |r: &crate::job::Rendition| serde_json::to_value(r).unwrap();
            assert_eq!(shown(&back), shown(&r), "silent {silent}");
            let back = back.moved(dir.path(), Path::new("/srv/root"));
            let e = back.export.as_ref().unwrap();
            assert_eq!(
                e.input,
                Path::new("/srv/root").join(format!("in-{silent}.wav"))
            );
            assert_eq!(
                e.outputs[0].path,
                Path::new("/srv/root").join(format!("out-{silent}.flac"))
            );
            assert_eq!(
                back.analysis.as_ref().unwrap().path,
                Path::new("/srv/root").join(format!("in-{silent}.wav"))
            );
            assert!(
                back.warnings[0].starts_with("/srv/root/in-"),
                "{:?}",
                back.warnings
            );
            let qc = e.outputs[0].qc.as_ref().unwrap();
            assert_eq!(
                qc.passed,
                r.export.as_ref().unwrap().outputs[0]
                    .qc
                    .as_ref()
                    .unwrap()
                    .passed
            );
            // A source read elsewhere (a shared root's mount) is named where it is here.
            let here = Path::new("/srv/root/inbox/x.wav");
            let back = back.moved(
                &Path::new("/srv/root").join(format!("in-{silent}.wav")),
                here,
            );
            assert_eq!(back.export.as_ref().unwrap().input, here);
            assert_eq!(back.analysis.as_ref().unwrap().path, here);
            if silent {
                // What JSON alone would have lost: a number that is not finite.
                let json = serde_json::to_string(&r).unwrap();
                assert!(
                    serde_json::from_str::<crate::job::Rendition>(&json).is_err(),
                    "silence's report read back from JSON: it has no non-finite number, \
                     so this test no longer shows why the wire is CBOR"
                );
            }
        }
    }
}
