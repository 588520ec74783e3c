//! The host's configuration: `sluice.toml` in the root, then environment overrides.
//!
//! | key in `sluice.toml` | environment | default |
//! | --- | --- | --- |
//! | (the root itself) | `SLUICE_ROOT` | `~/Sluice` (`--root` wins over both) |
//! | `workers` | `SLUICE_WORKERS` | the number of cores |
//! | `settle_seconds` | `SLUICE_SETTLE_SECONDS` | 2 |
//! | `rescan_seconds` | `SLUICE_RESCAN_SECONDS` | 30 |
//! | `target_lufs` | `SLUICE_TARGET_LUFS` | -16 |
//! | `target_true_peak_dbtp` | `SLUICE_TARGET_TRUE_PEAK` | -1 |
//! | `pipelines` | — | `pipelines` |
//! | `quarantine` | — | `failed` |
//! | `log_files` | — | 7 (daily log files kept under `.sluice/logs`) |
//! | `max_interrupted_runs` | `SLUICE_MAX_INTERRUPTED_RUNS` | 3 (a job cut short this often by the host stopping is quarantined) |
//! | `[cluster]` | — | none: jobs run on this machine (with it, on `sluice worker`s: docs/CLUSTER.md) |

use crate::pipeline::{Diagnostic, line_col};
use crate::store::EventKind;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const CONFIG_FILE: &str = "sluice.toml";

#[derive(Debug, Clone)]
pub struct Config {
    pub root: PathBuf,
    pub workers: usize,
    pub settle: Duration,
    pub rescan: Duration,
    /// The loudness a `normalize = {}` step aims at, and its true-peak ceiling.
    pub target_lufs: f64,
    pub target_true_peak_dbtp: f64,
    pub pipelines_dir: PathBuf,
    pub quarantine_dir: PathBuf,
    pub log_files: usize,
    /// A job that was running when the host stopped this many times is quarantined instead of
    /// run again: its input may be what stops the host.
    pub max_interrupted_runs: u32,
    /// `[server]`: `sluice watch` serves the HTTP API too (docs/API.md).
    pub server: Option<ServerConfig>,
    /// `[cluster]`: jobs run on `sluice worker`s over NATS JetStream (docs/CLUSTER.md).
    pub cluster: Option<ClusterConfig>,
}

/// `[cluster]` in sluice.toml: the NATS servers, how to log in, and the names of the
/// JetStream stream, key-value bucket and object store a farm shares.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterConfig {
    /// `nats://host:port` (or `tls://`), tried in turn.
    pub servers: Vec<String>,
    pub auth: ClusterAuth,
    /// Require TLS; `tls_ca`: a PEM file of the authorities to trust besides the system's.
    pub tls: bool,
    pub tls_ca: Option<PathBuf>,
    /// This node's name in the farm (the host name by default): job messages and results are
    /// addressed with it, and `sluice jobs` shows the worker a job ran on by its name.
    pub node: String,
    /// Subject prefix, work-queue stream, results stream, key-value bucket and object store.
    pub subject: String,
    pub stream: String,
    pub results: String,
    pub bucket: String,
    pub objects: String,
    /// A job not acknowledged (nor heartbeat) for this long goes to another worker.
    pub ack_wait: Duration,
    /// Deliveries of one job (each a worker that took it and died or hung) before it is
    /// given up and its source quarantined.
    pub max_deliveries: u32,
    /// Jobs the ingest node has out on the farm at once.
    pub in_flight: usize,
    /// Where the root the farm's nodes share is mounted on this node: an ingest node with it
    /// sends sources by path instead of through the object store (it must be its own root);
    /// a worker with it reads such sources there.
    pub shared_root: Option<PathBuf>,
}

/// How a node logs in to NATS.
#[derive(Clone, PartialEq)]
pub enum ClusterAuth {
    None,
    Token(String),
    User {
        user: String,
        password: String,
    },
    /// An nkey seed (`SU...`).
    Nkey(String),
    /// A `.creds` file (a JWT and its nkey seed).
    Credentials(PathBuf),
}

impl std::fmt::Debug for ClusterAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secrets themselves.
        f.write_str(match self {
            ClusterAuth::None => "none",
            ClusterAuth::Token(_) => "token",
            ClusterAuth::User { .. } => "user and password",
            ClusterAuth::Nkey(_) => "nkey",
            ClusterAuth::Credentials(_) => "credentials file",
        })
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawCluster {
    #[serde(default)]
    servers: Vec<String>,
    token: Option<String>,
    user: Option<String>,
    password: Option<String>,
    nkey: Option<String>,
    credentials: Option<PathBuf>,
    tls: Option<bool>,
    tls_ca: Option<PathBuf>,
    node: Option<String>,
    subject: Option<String>,
    stream: Option<String>,
    results_stream: Option<String>,
    bucket: Option<String>,
    objects: Option<String>,
    ack_wait_seconds: Option<f64>,
    max_deliveries: Option<u32>,
    in_flight: Option<usize>,
    shared_root: Option<PathBuf>,
}

/// A name NATS takes for a stream, bucket or token of a subject: letters, digits, `-`, `_`.
/// Whether `v` may name a node of a farm (or a stream or bucket): 1 to 64 letters, digits,
/// '-' or '_'.
pub fn is_node_name(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 64
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// A value of the configuration that is not one Sluice takes: the message names the key and
/// says what to give.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

fn nats_name(what: &str, v: &str) -> Result<String, Invalid> {
    let v = v.trim();
    if !is_node_name(v) {
        return Err(Invalid(format!(
            "[cluster] {what} = {v:?}: give 1 to 64 letters, digits, '-' or '_'"
        )));
    }
    Ok(v.to_string())
}

impl RawCluster {
    fn build(self) -> Result<ClusterConfig, Invalid> {
        let servers = if self.servers.is_empty() {
            vec!["nats://127.0.0.1:4222".to_string()]
        } else {
            self.servers
        };
        for s in &servers {
            let ok = ["nats://", "tls://", "ws://", "wss://"]
                .iter()
                .any(|p| s.starts_with(p) && s.len() > p.len());
            if !ok {
                return Err(Invalid(format!(
                    "[cluster] servers: {s:?}: give nats://host:port (or tls://host:port)"
                )));
            }
        }
        let auth = match (
            self.token,
            self.user,
            self.password,
            self.nkey,
            self.credentials,
        ) {
            (None, None, None, None, None) => ClusterAuth::None,
            (Some(t), None, None, None, None) => ClusterAuth::Token(t),
            (None, Some(user), Some(password), None, None) => ClusterAuth::User { user, password },
            (None, Some(_), None, None, None) | (None, None, Some(_), None, None) => {
                return Err(Invalid("[cluster]: give both user and password".into()));
            }
            (None, None, None, Some(seed), None) => {
                if !seed.trim().starts_with("SU") {
                    return Err(Invalid(
                        "[cluster] nkey: give the user's seed (it starts with SU)".into(),
                    ));
                }
                ClusterAuth::Nkey(seed.trim().to_string())
            }
            (None, None, None, None, Some(path)) => ClusterAuth::Credentials(path),
            _ => {
                return Err(Invalid(
                    "[cluster]: give one way to log in: token, user and password, nkey, or credentials"
                        .into(),
                ));
            }
        };
        let host = std::fs::read_to_string("/etc/hostname")
            .ok()
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "node".into());
        let node: String = self
            .node
            .unwrap_or(host)
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let ack_wait = self.ack_wait_seconds.unwrap_or(60.0);
        if !(1.0..=3600.0).contains(&ack_wait) {
            return Err(Invalid(format!(
                "[cluster] ack_wait_seconds = {ack_wait}: give 1 to 3600"
            )));
        }
        let max_deliveries = self.max_deliveries.unwrap_or(3);
        if !(1..=100).contains(&max_deliveries) {
            return Err(Invalid(format!(
                "[cluster] max_deliveries = {max_deliveries}: give 1 to 100"
            )));
        }
        let in_flight = self.in_flight.unwrap_or(16);
        if !(1..=4096).contains(&in_flight) {
            return Err(Invalid(format!(
                "[cluster] in_flight = {in_flight}: give 1 to 4096"
            )));
        }
        if let Some(p) = &self.shared_root
            && !p.is_absolute()
        {
            return Err(Invalid(format!(
                "[cluster] shared_root = {:?}: give the absolute path where the shared root is mounted on this node",
                p.display().to_string()
            )));
        }
        Ok(ClusterConfig {
            servers,
            auth,
            tls: self.tls.unwrap_or(false),
            tls_ca: self.tls_ca,
            node: nats_name("node", &node)?,
            subject: nats_name("subject", self.subject.as_deref().unwrap_or("sluice"))?,
            stream: nats_name("stream", self.stream.as_deref().unwrap_or("SLUICE_JOBS"))?,
            results: nats_name(
                "results_stream",
                self.results_stream.as_deref().unwrap_or("SLUICE_RESULTS"),
            )?,
            bucket: nats_name("bucket", self.bucket.as_deref().unwrap_or("sluice-jobs"))?,
            objects: nats_name("objects", self.objects.as_deref().unwrap_or("sluice-files"))?,
            ack_wait: Duration::from_secs_f64(ack_wait),
            max_deliveries,
            in_flight,
            shared_root: self.shared_root,
        })
    }
}

/// `[server]` in sluice.toml.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    pub listen: std::net::SocketAddr,
    /// The largest upload accepted, bytes.
    pub max_upload_bytes: u64,
    /// `[[server.webhook]]`: where job events are posted.
    pub webhooks: Vec<Webhook>,
    /// Uploads received at once.
    pub max_uploads: usize,
    /// Web origins allowed to call the API from a browser (CORS).
    pub cors_origins: Vec<String>,
    /// A client that sends no request head, or no upload data, for this long is disconnected.
    pub request_timeout: std::time::Duration,
    /// Connections open at once; one more is closed at once.
    pub max_connections: usize,
    /// The longest an analysis asked for over HTTP may run before it is stopped and answered
    /// 503 `time_limit`.
    pub work_limit: std::time::Duration,
}

/// `[server] work_limit`'s default, seconds: an hour of audio analyses in well under a minute
/// on 2 cores, so ten minutes is only reached by something wrong.
pub const DEFAULT_WORK_LIMIT: u64 = 600;

/// A web origin as CORS names it: `scheme://host[:port]`, nothing after; returned trimmed.
pub fn check_origin(o: &str) -> Result<String, Invalid> {
    let o = o.trim().trim_end_matches('/');
    let rest = o
        .strip_prefix("https://")
        .or_else(|| o.strip_prefix("http://"))
        .ok_or_else(|| {
            Invalid(format!(
                "cors origin {o:?}: give scheme://host[:port], as \"https://app.example.com\""
            ))
        })?;
    if rest.is_empty() || rest.contains(['/', '?', '#', '*', ' ']) {
        return Err(Invalid(format!(
            "cors origin {o:?}: give scheme://host[:port] and nothing after (no path, no wildcard)"
        )));
    }
    Ok(o.to_string())
}

/// A webhook: job events of these kinds are posted to `url` as JSON, signed with `secret`
/// (HMAC-SHA256 in `X-Sluice-Signature: sha256=HEX`), retried with backoff.
#[derive(Debug, Clone, PartialEq)]
pub struct Webhook {
    pub url: String,
    pub events: Vec<EventKind>,
    pub secret: String,
    /// For an https:// receiver whose certificate a private authority signed: that
    /// authority's certificate(s), PEM (otherwise the system's trusted roots).
    pub ca_file: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebhook {
    url: String,
    events: Option<Vec<String>>,
    secret: String,
    ca_file: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: Option<String>,
    max_upload_mb: Option<u64>,
    max_uploads: Option<usize>,
    request_timeout: Option<u64>,
    max_connections: Option<usize>,
    work_limit: Option<u64>,
    #[serde(default)]
    cors_origins: Vec<String>,
    #[serde(default)]
    webhook: Vec<RawWebhook>,
}

impl RawWebhook {
    /// A `[[server.webhook]]` table checked: an http(s) address with a host, its CA file read,
    /// its events among those a webhook takes, a secret long enough.
    fn build(self, root: &Path) -> Result<Webhook, Invalid> {
        let url = self.url.trim().to_string();
        let https = url.starts_with("https://");
        let Some(rest) = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("https://"))
        else {
            return Err(Invalid(format!(
                "[[server.webhook]] url = {url:?}: give an http:// or https:// address"
            )));
        };
        let ca_file = match self.ca_file {
            None => None,
            Some(_) if !https => {
                return Err(Invalid(format!(
                    "[[server.webhook]] {url}: ca_file is for https:// receivers"
                )));
            }
            Some(f) => {
                let path = root.join(f.trim());
                crate::tls::read_ca(&path)
                    .map_err(|e| Invalid(format!("[[server.webhook]] {url}: ca_file: {e}")))?;
                Some(path)
            }
        };
        if rest.is_empty() || rest.starts_with('/') {
            return Err(Invalid(format!(
                "[[server.webhook]] url = {url:?}: no host"
            )));
        }
        let events = match self.events {
            None => vec![EventKind::Done, EventKind::Failed, EventKind::Quarantined],
            Some(names) => {
                let mut events = Vec::with_capacity(names.len());
                for e in names {
                    match EventKind::named(&e).filter(|k| EventKind::WEBHOOK.contains(k)) {
                        Some(k) => events.push(k),
                        None => {
                            return Err(Invalid(format!(
                                "[[server.webhook]] events: {e:?} is not one of {}",
                                EventKind::WEBHOOK.map(EventKind::name).join(", ")
                            )));
                        }
                    }
                }
                events
            }
        };
        if self.secret.trim().len() < 16 {
            return Err(Invalid(format!(
                "[[server.webhook]] {url}: give a secret of at least 16 characters (the receiver checks the signature with it)"
            )));
        }
        Ok(Webhook {
            url,
            events,
            secret: self.secret.trim().to_string(),
            ca_file,
        })
    }
}

impl RawServer {
    /// `[server]` checked, with its defaults.
    fn build(self, root: &Path) -> Result<ServerConfig, Invalid> {
        let listen = self.listen.unwrap_or_else(|| "127.0.0.1:8750".into());
        let listen = listen.trim().parse().map_err(|_| {
            Invalid(format!(
                "[server] listen = {listen:?}: give an address and port, as \"127.0.0.1:8750\""
            ))
        })?;
        let mb = self.max_upload_mb.unwrap_or(2048);
        if mb == 0 {
            return Err(Invalid(
                "[server] max_upload_mb = 0: give at least 1".into(),
            ));
        }
        let webhooks = self
            .webhook
            .into_iter()
            .map(|w| w.build(root))
            .collect::<Result<Vec<_>, Invalid>>()?;
        let max_uploads = self.max_uploads.unwrap_or(8);
        if !(1..=1024).contains(&max_uploads) {
            return Err(Invalid(format!(
                "[server] max_uploads = {max_uploads}: give 1 to 1024"
            )));
        }
        let request_timeout = self.request_timeout.unwrap_or(30);
        if !(1..=3600).contains(&request_timeout) {
            return Err(Invalid(format!(
                "[server] request_timeout = {request_timeout}: give 1 to 3600 seconds"
            )));
        }
        let work_limit = self.work_limit.unwrap_or(DEFAULT_WORK_LIMIT);
        if !(1..=86_400).contains(&work_limit) {
            return Err(Invalid(format!(
                "[server] work_limit = {work_limit}: give 1 to 86400 seconds"
            )));
        }
        let max_connections = self.max_connections.unwrap_or(1024);
        if !(16..=65_536).contains(&max_connections) {
            return Err(Invalid(format!(
                "[server] max_connections = {max_connections}: give 16 to 65536"
            )));
        }
        let cors_origins = self
            .cors_origins
            .iter()
            .map(|o| check_origin(o).map_err(|e| Invalid(format!("[server] {e}"))))
            .collect::<Result<Vec<_>, Invalid>>()?;
        Ok(ServerConfig {
            listen,
            max_upload_bytes: mb.saturating_mul(1_000_000),
            webhooks,
            max_uploads,
            cors_origins,
            request_timeout: std::time::Duration::from_secs(request_timeout),
            max_connections,
            work_limit: std::time::Duration::from_secs(work_limit),
        })
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    server: Option<RawServer>,
    cluster: Option<RawCluster>,
    workers: Option<usize>,
    settle_seconds: Option<f64>,
    rescan_seconds: Option<f64>,
    target_lufs: Option<f64>,
    target_true_peak_dbtp: Option<f64>,
    pipelines: Option<PathBuf>,
    quarantine: Option<PathBuf>,
    log_files: Option<usize>,
    max_interrupted_runs: Option<u32>,
}

/// The root: `--root`, else `SLUICE_ROOT`, else `~/Sluice`.
pub fn root_from(arg: Option<&Path>) -> anyhow::Result<PathBuf> {
    // Absolute: the file events name absolute paths, matched against the root's (with a
    // relative root none matched, and files waited for the next rescan).
    let absolute =
        |r: &Path| std::path::absolute(r).map_err(|e| anyhow::anyhow!("root {}: {e}", r.display()));
    if let Some(r) = arg {
        return absolute(r);
    }
    if let Some(r) = std::env::var_os("SLUICE_ROOT").filter(|r| !r.is_empty()) {
        return absolute(Path::new(&r));
    }
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .ok_or_else(|| anyhow::anyhow!("HOME is not set: give --root or SLUICE_ROOT"))?;
    Ok(PathBuf::from(home).join("Sluice"))
}

/// An environment override, when `enabled`.
fn env<T: std::str::FromStr>(enabled: bool, name: &str) -> anyhow::Result<Option<T>> {
    if !enabled {
        return Ok(None);
    }
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| anyhow::anyhow!("{name}={v}: not a valid value")),
        _ => Ok(None),
    }
}

/// A number of seconds out of range.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[error("{name} = {value}: give seconds from 0 to 86400")]
pub struct SecondsError {
    pub name: &'static str,
    pub value: f64,
}

fn seconds(name: &'static str, value: f64) -> Result<Duration, SecondsError> {
    if value.is_finite() && (0.0..=86_400.0).contains(&value) {
        Ok(Duration::from_secs_f64(value))
    } else {
        Err(SecondsError { name, value })
    }
}

/// The faces a build of the `sluice` binary has (its cargo features `server` and `farm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Faces {
    pub server: bool,
    pub farm: bool,
}

impl Faces {
    /// Every face (the binary's default features). The binary passes what it was built with:
    /// `Faces { server: cfg!(feature = "server"), farm: cfg!(feature = "farm") }`.
    pub const ALL: Faces = Faces {
        server: true,
        farm: true,
    };
}

impl Config {
    /// Refuses a root that asks for a face this build lacks (`[server]` without the server,
    /// `[cluster]` without the farm), naming the file and the cargo feature, rather than run
    /// without it.
    pub fn needs_only(&self, faces: Faces) -> anyhow::Result<()> {
        let file = self.root.join(CONFIG_FILE);
        if self.server.is_some() && !faces.server {
            anyhow::bail!(
                "{}: [server] is set, and this build of sluice has no HTTP server (cargo feature `server`)",
                file.display()
            );
        }
        if self.cluster.is_some() && !faces.farm {
            anyhow::bail!(
                "{}: [cluster] is set, and this build of sluice has no farm (cargo feature `farm`)",
                file.display()
            );
        }
        Ok(())
    }

    /// The defaults alone: no file, no environment.
    pub fn defaults(root: &Path) -> Config {
        Config::build(root, RawConfig::default(), false).expect("the defaults are valid")
    }

    /// Read `root/sluice.toml` (absent is fine) and the environment.
    pub fn load(root: &Path) -> anyhow::Result<Config> {
        let file = root.join(CONFIG_FILE);
        let raw: RawConfig = match std::fs::read_to_string(&file) {
            Ok(text) => toml::from_str(&text).map_err(|e| {
                let (line, col) = e.span().map_or((1, 1), |s| line_col(&text, s.start));
                anyhow::anyhow!(
                    "{}",
                    Diagnostic {
                        file: file.clone(),
                        line,
                        col,
                        message: e.message().to_string(),
                    }
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => RawConfig::default(),
            Err(e) => anyhow::bail!("{}: {e}", file.display()),
        };
        Config::build(root, raw, true)
    }

    fn build(root: &Path, raw: RawConfig, use_env: bool) -> anyhow::Result<Config> {
        let file = root.join(CONFIG_FILE);
        let bad = |m: String| anyhow::anyhow!("{}: {m}", file.display());
        let bad_seconds = |e: SecondsError| bad(e.to_string());
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let workers = env::<usize>(use_env, "SLUICE_WORKERS")?
            .or(raw.workers)
            .unwrap_or(cores);
        if !(1..=256).contains(&workers) {
            return Err(bad(format!("workers = {workers}: give 1 to 256")));
        }
        let settle = seconds(
            "settle_seconds",
            env(use_env, "SLUICE_SETTLE_SECONDS")?
                .or(raw.settle_seconds)
                .unwrap_or(2.0),
        )
        .map_err(bad_seconds)?;
        let rescan = seconds(
            "rescan_seconds",
            env(use_env, "SLUICE_RESCAN_SECONDS")?
                .or(raw.rescan_seconds)
                .unwrap_or(30.0),
        )
        .map_err(bad_seconds)?;
        let target_lufs = env(use_env, "SLUICE_TARGET_LUFS")?
            .or(raw.target_lufs)
            .unwrap_or(-16.0);
        let target_true_peak_dbtp = env(use_env, "SLUICE_TARGET_TRUE_PEAK")?
            .or(raw.target_true_peak_dbtp)
            .unwrap_or(-1.0);
        if !(-70.0..=0.0).contains(&target_lufs) {
            return Err(bad(format!(
                "target_lufs = {target_lufs}: give -70 to 0 LUFS"
            )));
        }
        if !(-20.0..=0.0).contains(&target_true_peak_dbtp) {
            return Err(bad(format!(
                "target_true_peak_dbtp = {target_true_peak_dbtp}: give -20 to 0 dBTP"
            )));
        }
        let inside = |p: Option<PathBuf>, default: &str| -> anyhow::Result<PathBuf> {
            let p = p.unwrap_or_else(|| PathBuf::from(default));
            if p.is_absolute()
                || p.components()
                    .any(|c| !matches!(c, std::path::Component::Normal(_)))
            {
                return Err(bad(format!(
                    "{}: give a folder inside the root, relative to it",
                    p.display()
                )));
            }
            Ok(root.join(p))
        };
        let server = raw
            .server
            .map(|sv| sv.build(root).map_err(|e| bad(e.0)))
            .transpose()?;
        let mut cluster = raw
            .cluster
            .map(|c| c.build().map_err(|e| bad(e.0)))
            .transpose()?;
        // Files named relative to the root.
        if let Some(c) = &mut cluster {
            if let Some(ca) = &mut c.tls_ca
                && ca.is_relative()
            {
                *ca = root.join(&*ca);
            }
            if let ClusterAuth::Credentials(creds) = &mut c.auth
                && creds.is_relative()
            {
                *creds = root.join(&*creds);
            }
        }
        Ok(Config {
            root: root.to_path_buf(),
            server,
            cluster,
            workers,
            settle,
            rescan,
            target_lufs,
            target_true_peak_dbtp,
            pipelines_dir: inside(raw.pipelines, "pipelines")?,
            quarantine_dir: inside(raw.quarantine, "failed")?,
            log_files: raw.log_files.unwrap_or(7).max(1),
            max_interrupted_runs: env(use_env, "SLUICE_MAX_INTERRUPTED_RUNS")?
                .or(raw.max_interrupted_runs)
                .unwrap_or(3)
                .max(1),
        })
    }

    pub fn state_dir(&self) -> PathBuf {
        self.root.join(".sluice")
    }
    pub fn db_path(&self) -> PathBuf {
        self.state_dir().join("state.redb")
    }
    pub fn log_dir(&self) -> PathBuf {
        self.state_dir().join("logs")
    }
    /// `.wasm` effects of this root, beside the built-in ones.
    pub fn effects_dir(&self) -> PathBuf {
        self.root.join("effects")
    }
    /// Compiled effects, kept between runs.
    pub fn effects_cache(&self) -> PathBuf {
        self.state_dir().join("cache/effects")
    }
    /// The effects this root can use. Compiled modules are cached once the root is in use
    /// (a command that only looks makes no folders).
    pub fn effects(&self) -> anyhow::Result<crate::effects::Catalog> {
        let cache = self.state_dir().is_dir().then(|| self.effects_cache());
        let rt = crate::effects::Runtime::new(cache)?;
        Ok(crate::effects::Catalog::load(rt, Some(&self.effects_dir())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> anyhow::Result<Config> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CONFIG_FILE), text).unwrap();
        Config::load(dir.path())
    }

    #[test]
    fn a_build_without_a_face_refuses_a_root_that_asks_for_it() {
        let (both, none) = (
            Faces::ALL,
            Faces {
                server: false,
                farm: false,
            },
        );
        let plain = load("").unwrap();
        assert!(plain.needs_only(none).is_ok());
        let server = load("[server]\n").unwrap();
        assert!(server.needs_only(both).is_ok());
        let e = server.needs_only(none).unwrap_err().to_string();
        assert!(
            e.contains(CONFIG_FILE)
                && e.contains("[server]")
                && e.contains("cargo feature `server`"),
            "{e}"
        );
        let farm = load("[cluster]\nnode = \"a\"\n").unwrap();
        assert!(farm.needs_only(both).is_ok());
        let only_server = Faces {
            server: true,
            farm: false,
        };
        let e = farm.needs_only(only_server).unwrap_err().to_string();
        assert!(
            e.contains("[cluster]") && e.contains("cargo feature `farm`"),
            "{e}"
        );
    }

    #[test]
    fn the_cluster_table_is_read_and_checked() {
        assert_eq!(load("").unwrap().cluster, None);
        let c = load("[cluster]\nnode = \"ingest 1\"\n")
            .unwrap()
            .cluster
            .unwrap();
        assert_eq!(c.servers, ["nats://127.0.0.1:4222"]);
        assert_eq!(c.node, "ingest_1");
        assert_eq!(c.auth, ClusterAuth::None);
        assert_eq!(
            (c.stream.as_str(), c.bucket.as_str()),
            ("SLUICE_JOBS", "sluice-jobs")
        );
        assert_eq!(c.ack_wait, Duration::from_secs(60));
        let c = load("[cluster]\nservers = [\"nats://a:4222\", \"tls://b:4222\"]\nuser = \"u\"\npassword = \"p\"\n")
            .unwrap()
            .cluster
            .unwrap();
        assert_eq!(c.servers.len(), 2);
        assert_eq!(format!("{:?}", c.auth), "user and password");
        for (bad, says) in [
            ("servers = [\"127.0.0.1:4222\"]", "give nats://host:port"),
            (
                "token = \"t\"\nuser = \"u\"\npassword = \"p\"",
                "give one way to log in",
            ),
            ("user = \"u\"", "give both user and password"),
            ("nkey = \"UA123\"", "starts with SU"),
            ("stream = \"a.b\"", "stream = \"a.b\""),
            ("ack_wait_seconds = 0", "give 1 to 3600"),
            ("max_deliveries = 0", "give 1 to 100"),
            ("in_flight = 0", "give 1 to 4096"),
            ("shared_root = \"mnt/x\"", "give the absolute path"),
            ("colour = 1", "unknown field"),
        ] {
            let e = load(&format!("[cluster]\n{bad}\n"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(says), "{bad}: {e}");
            assert!(e.contains("sluice.toml"), "{bad}: {e}");
        }
    }

    #[test]
    fn the_server_table_and_its_webhooks_are_read_and_checked() {
        assert_eq!(load("").unwrap().server, None);
        let c = load("[server]\n").unwrap().server.unwrap();
        assert_eq!(c.listen, "127.0.0.1:8750".parse().unwrap());
        assert_eq!(c.max_upload_bytes, 2_048_000_000);
        assert!(c.webhooks.is_empty());
        let c = load(
            "[server]\nlisten = \"0.0.0.0:9000\"\n[[server.webhook]]\nurl = \"http://10.0.0.2:8080/in\"\nsecret = \"0123456789abcdef\"\n",
        )
        .unwrap()
        .server
        .unwrap();
        assert_eq!(
            c.webhooks[0].events,
            [EventKind::Done, EventKind::Failed, EventKind::Quarantined]
        );
        for (bad, says) in [
            ("[server]\nlisten = \"nowhere\"\n", "listen"),
            ("[server]\nmax_upload_mb = 0\n", "max_upload_mb"),
            ("[server]\nmax_uploads = 0\n", "max_uploads"),
            ("[server]\nrequest_timeout = 0\n", "request_timeout"),
            ("[server]\nmax_connections = 2\n", "max_connections"),
            ("[server]\ncors_origins = [\"*\"]\n", "cors origin"),
            (
                "[server]\ncors_origins = [\"https://a.example/app\"]\n",
                "nothing after",
            ),
            ("[server]\nport = 1\n", "port"),
            (
                "[[server.webhook]]\nurl = \"ftp://x.example/in\"\nsecret = \"0123456789abcdef\"\n",
                "https://",
            ),
            (
                "[[server.webhook]]\nurl = \"http://x.example/in\"\nsecret = \"0123456789abcdef\"\nca_file = \"ca.pem\"\n",
                "ca_file is for https",
            ),
            (
                "[[server.webhook]]\nurl = \"https://x.example/in\"\nsecret = \"0123456789abcdef\"\nca_file = \"missing.pem\"\n",
                "missing.pem",
            ),
            (
                "[[server.webhook]]\nurl = \"http://x.example/in\"\nsecret = \"short\"\n",
                "16 characters",
            ),
            (
                "[[server.webhook]]\nurl = \"http://x.example/in\"\nsecret = \"0123456789abcdef\"\nevents = [\"finished\"]\n",
                "\"finished\" is not one of",
            ),
            (
                "[[server.webhook]]\nurl = \"http://x.example/in\"\n",
                "secret",
            ),
        ] {
            let e = load(bad).err().unwrap_or_else(|| panic!("{bad} was taken"));
            assert!(format!("{e:#}").contains(says), "{bad}: {e:#}");
        }
    }
}
