//! `sluice serve`: the HTTP face of the engine (axum), with its OpenAPI 3.1 document at
//! `/openapi.json` (utoipa).
//!
//! The routes of the specifications Sluice grew from keep their paths and JSON field names
//! (see `audio.rs` and docs/API.md), so their clients work unchanged. What the server keeps
//! lives in the root like everything else: uploads under `uploads/YYYY/MM/DD/`, their index and
//! cached analyses in the root's state database (the same redb file as the watch folders'), the
//! API token in `.sluice/api-token`.
//!
//! Security: it listens on loopback unless told otherwise; every mutating route (POST, PUT,
//! PATCH, DELETE) needs `Authorization: Bearer TOKEN`, and on a non-loopback address every
//! route but `/health` does. Errors are a JSON object `{"detail": MESSAGE, "error": {"kind":
//! KIND, "message": MESSAGE}}` (`detail` as FastAPI clients expect it) and never carry a stack
//! trace or a path outside what the client sent.

mod audio;
mod batch;
mod export;
mod form;
mod mastering;
mod monitor;
mod pages;
mod qc;
mod regions;
mod stream;
mod v1;
pub(crate) mod webhooks;

use crate::config::Config;
use crate::store::Store;
use anyhow::{Context, Result};
use axum::Json;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

/// How `sluice serve` runs.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub listen: SocketAddr,
    /// The largest upload accepted, bytes.
    pub max_upload_bytes: u64,
    /// Uploads received at once; one more is answered 429 `busy`.
    pub max_uploads: usize,
    /// Web origins allowed to call the API from a browser (CORS); none by default.
    pub cors_origins: Vec<String>,
    /// A client that sends no request head, or no upload data, for this long is disconnected
    /// (a slow client cannot hold a connection or an upload slot for ever).
    pub request_timeout: std::time::Duration,
    /// Connections open at once; one more is closed at once.
    pub max_connections: usize,
    /// The longest an analysis may run for one request before it is stopped and answered
    /// 503 `time_limit`.
    pub work_limit: std::time::Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            listen: SocketAddr::from(([127, 0, 0, 1], 8750)),
            max_upload_bytes: 2_048_000_000,
            max_uploads: 8,
            cors_origins: Vec::new(),
            request_timeout: std::time::Duration::from_secs(30),
            max_connections: 1024,
            work_limit: std::time::Duration::from_secs(crate::config::DEFAULT_WORK_LIMIT),
        }
    }
}

impl ServeOptions {
    /// The options of a root's `[server]` table.
    pub fn from_config(sv: &crate::config::ServerConfig) -> ServeOptions {
        ServeOptions {
            listen: sv.listen,
            max_upload_bytes: sv.max_upload_bytes,
            max_uploads: sv.max_uploads,
            cors_origins: sv.cors_origins.clone(),
            request_timeout: sv.request_timeout,
            max_connections: sv.max_connections,
            work_limit: sv.work_limit,
        }
    }
}

/// What every handler shares.
pub(crate) struct AppState {
    pub root: PathBuf,
    pub store: Store,
    pub token: String,
    /// Listening on a loopback address: reads need no token.
    pub loopback: bool,
    pub max_upload_bytes: u64,
    /// Progress of the batches being processed.
    pub live: batch::Live,
    /// Every export (a batch's files, single exports) runs in one of these.
    pub exports: batch::Slots,
    /// Analyses run one at a time: each takes every core (a queue, not a pile-up).
    pub heavy: tokio::sync::Semaphore,
    /// Uploads being received.
    pub uploads: Arc<tokio::sync::Semaphore>,
    pub max_uploads: usize,
    /// How long a client may send nothing in the middle of a request.
    pub request_timeout: std::time::Duration,
    /// Answers that never change once made (an upload's analysis), kept serialized.
    pub answers: Answers,
    /// Real-time sessions (`/api/v1/stream`) open now, at most [`stream::MAX_SESSIONS`].
    pub streams: Arc<tokio::sync::Semaphore>,
    /// The real-time sessions open now and their counts (the monitoring routes).
    pub sessions: Arc<stream::Sessions>,
    /// When the server started.
    pub started: std::time::Instant,
    /// The live feed of job events (`/api/v1/events`).
    pub feed: tokio::sync::broadcast::Sender<v1::Live>,
    /// Set when the server stops: endless responses (the live feed) end, so the graceful
    /// shutdown is not held open by a dashboard left open.
    pub closing: tokio::sync::watch::Receiver<bool>,
    /// How long one request's analysis may run ([`ServeOptions::work_limit`]).
    pub work_limit: std::time::Duration,
    /// Web origins allowed besides the server's own (CORS, and the stream's WebSocket).
    pub cors_origins: Vec<String>,
}

/// Runs blocking work (the store, decoding) off the server's threads.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    // The request's span (its id) goes with the work onto the blocking thread.
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(f))
        .await
        .map_err(ApiError::internal)?
}

/// Each request in a span carrying its id (`request{id=.. method=.. path=..}` on every log line
/// of its work), the id answered in `x-request-id`: the client's own when it sends a short
/// plain one, else the server's count.
async fn request_span(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use tracing::Instrument;
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let given = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        })
        .map(str::to_string);
    let id = given.unwrap_or_else(|| {
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            .to_string()
    });
    let span = tracing::info_span!(
        "request",
        id = %id,
        method = %req.method(),
        path = %req.uri().path()
    );
    let mut response = next.run(req).instrument(span).await;
    if let Ok(v) = axum::http::HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", v);
    }
    response
}

/// The stop condition of one request's blocking work (an analysis, a picture): its client went
/// away (the handler was dropped, and with it the [`WorkGuard`]), it ran past the work limit, or
/// the server is stopping. The work asks [`Work::stop`] between rounds of a fraction of a second
/// and ends with [`InputError::Interrupted`](sluice_core::InputError::Interrupted).
pub(crate) struct Work {
    gone: Arc<std::sync::atomic::AtomicBool>,
    closing: tokio::sync::watch::Receiver<bool>,
    started: std::time::Instant,
    limit: std::time::Duration,
}

/// Held by the request's handler: dropped (the client went away, or the request ended), it
/// stops the work it was made with.
pub(crate) struct WorkGuard(Arc<std::sync::atomic::AtomicBool>);

impl Drop for WorkGuard {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Why a request's work was stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    Gone,
    Stopping,
    OverLimit(std::time::Duration),
}

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stop::Gone => f.write_str("the client went away"),
            Stop::Stopping => f.write_str("the server is stopping"),
            Stop::OverLimit(limit) => write!(
                f,
                "the server's work limit of {} s was reached",
                limit.as_secs()
            ),
        }
    }
}

impl Work {
    /// Work for one request, timed from now.
    pub fn start(st: &AppState) -> (Work, WorkGuard) {
        let gone = Arc::new(std::sync::atomic::AtomicBool::new(false));
        (
            Work {
                gone: Arc::clone(&gone),
                closing: st.closing.clone(),
                started: std::time::Instant::now(),
                limit: st.work_limit,
            },
            WorkGuard(gone),
        )
    }

    /// Work no client waits for (a batch's file), timed from now: stopped by the work limit
    /// and by the server stopping.
    pub fn background(st: &AppState) -> Work {
        Work {
            gone: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            closing: st.closing.clone(),
            started: std::time::Instant::now(),
            limit: st.work_limit,
        }
    }

    /// Why the work should stop now, if it should.
    pub fn why(&self) -> Option<Stop> {
        if self.gone.load(std::sync::atomic::Ordering::Relaxed) {
            Some(Stop::Gone)
        } else if *self.closing.borrow() {
            Some(Stop::Stopping)
        } else if self.started.elapsed() > self.limit {
            Some(Stop::OverLimit(self.limit))
        } else {
            None
        }
    }

    /// [`Work::why`] in words, as the analysis's stop check takes it.
    pub fn stop(&self) -> Option<String> {
        self.why().map(|s| s.to_string())
    }
}

/// Serialized answers that are facts about content (an upload's analysis is the same for as
/// long as its content is), kept in memory up to a number of bytes, the oldest dropped first:
/// a client polling an analysis gets it without a database read or a serialization.
pub(crate) struct Answers {
    max_bytes: usize,
    kept: std::sync::Mutex<AnswersInner>,
}

#[derive(Default)]
struct AnswersInner {
    map: std::collections::HashMap<String, axum::body::Bytes>,
    order: std::collections::VecDeque<String>,
    bytes: usize,
}

impl Answers {
    pub fn new(max_bytes: usize) -> Answers {
        Answers {
            max_bytes,
            kept: std::sync::Mutex::new(AnswersInner::default()),
        }
    }
    pub fn get(&self, key: &str) -> Option<axum::body::Bytes> {
        let kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        kept.map.get(key).cloned()
    }
    pub fn put(&self, key: String, value: axum::body::Bytes) {
        if value.len() > self.max_bytes / 4 {
            return;
        }
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        if kept.map.contains_key(&key) {
            return;
        }
        kept.bytes += value.len();
        kept.order.push_back(key.clone());
        kept.map.insert(key, value);
        while kept.bytes > self.max_bytes {
            let Some(old) = kept.order.pop_front() else {
                break;
            };
            if let Some(v) = kept.map.remove(&old) {
                kept.bytes -= v.len();
            }
        }
    }
}

/// A JSON answer from bytes serialized before.
pub(crate) fn json_bytes(body: axum::body::Bytes) -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        [(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

/// Declares [`ErrorKind`] with each kind's name written once: `name()` and `ALL` both come
/// from it.
macro_rules! error_kinds {
    ($($variant:ident => $name:literal,)*) => {
        /// The kinds of error the API answers with, each under its stable name (docs/API.md
        /// lists them with their statuses).
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub(crate) enum ErrorKind {
            $($variant,)*
        }

        impl ErrorKind {
            /// Every kind.
            #[cfg(test)]
            pub const ALL: &[ErrorKind] = &[$(ErrorKind::$variant,)*];

            /// The name the answer gives it (`error.kind`).
            pub fn name(self) -> &'static str {
                match self {
                    $(ErrorKind::$variant => $name,)*
                }
            }
        }
    };
}

error_kinds! {
    Unauthorized => "unauthorized",
    NotFound => "not_found",
    Timeout => "timeout",
    TooLarge => "too_large",
    BadMultipart => "bad_multipart",
    NoFile => "no_file",
    BadField => "bad_field",
    BadJson => "bad_json",
    BadRequest => "bad_request",
    PathEscape => "path_escape",
    UnsupportedAudio => "unsupported_audio",
    NoReferences => "no_references",
    Exists => "exists",
    Busy => "busy",
    UndecodableAudio => "undecodable_audio",
    NotMeasurable => "not_measurable",
    ExportFailed => "export_failed",
    TimeLimit => "time_limit",
    Stopping => "stopping",
    BadConfig => "bad_config",
    ForbiddenOrigin => "forbidden_origin",
    Internal => "internal",
}

/// An error as the API answers it.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub kind: ErrorKind,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, kind: ErrorKind, message: impl Into<String>) -> Self {
        ApiError {
            status,
            kind,
            message: message.into(),
        }
    }
    pub fn not_found(what: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, ErrorKind::NotFound, what)
    }
    pub fn bad_request(kind: ErrorKind, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, kind, message)
    }
    /// A request body over the route's limit: 413 `too_large`.
    pub fn too_large(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, ErrorKind::TooLarge, message)
    }
    /// A failure of the server itself: logged in full, answered without internals.
    pub fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!("internal error: {e}");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorKind::Internal,
            "the server could not complete the request (see its log)",
        )
    }
    /// An analysis's failure as answered: 503 where `work` stopped it, else 422
    /// `undecodable_audio` (server paths are taken out with [`ApiError::map_message`]).
    pub fn analysis(e: sluice_core::InputError, work: &Work) -> Self {
        match (e, work.why()) {
            (sluice_core::InputError::Interrupted { reason, .. }, why) => {
                let kind = match why {
                    Some(Stop::OverLimit(_)) => ErrorKind::TimeLimit,
                    _ => ErrorKind::Stopping,
                };
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    kind,
                    format!("the work was stopped: {reason}"),
                )
            }
            (e, _) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorKind::UndecodableAudio,
                e.to_string(),
            ),
        }
    }
    /// The same error, its message passed through `f` (a server path taken out).
    pub fn map_message(mut self, f: impl Fn(&str) -> String) -> Self {
        self.message = f(&self.message);
        self
    }
    /// The root's configuration (sluice.toml, pipelines, effects) does not load: said with the
    /// root's path left out.
    pub fn config(root: &std::path::Path, e: impl std::fmt::Display) -> Self {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorKind::BadConfig,
            e.to_string().replace(&root.display().to_string(), "(root)"),
        )
    }
}

/// A time in milliseconds since the epoch as RFC 3339, UTC.
pub(super) fn rfc3339(ms: Option<i64>) -> Option<String> {
    ms.and_then(|m| jiff::Timestamp::from_millisecond(m).ok())
        .map(|t| t.to_string())
}

impl From<axum::extract::multipart::MultipartRejection> for ApiError {
    fn from(e: axum::extract::multipart::MultipartRejection) -> Self {
        ApiError::bad_request(
            ErrorKind::BadMultipart,
            format!("{}: send the form as multipart/form-data", e.body_text()),
        )
    }
}

impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(e: axum::extract::rejection::JsonRejection) -> Self {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return ApiError::too_large(e.body_text());
        }
        ApiError::bad_request(ErrorKind::BadJson, e.body_text())
    }
}

impl From<axum::extract::rejection::BytesRejection> for ApiError {
    fn from(e: axum::extract::rejection::BytesRejection) -> Self {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return ApiError::too_large(e.body_text());
        }
        ApiError::bad_request(ErrorKind::BadField, e.body_text())
    }
}

/// The body of every error answer.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ErrorBody {
    /// The message (FastAPI's field).
    detail: String,
    error: ErrorDetail,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ErrorDetail {
    /// A stable name for the kind of error (`not_found`, `too_large`, `unsupported_audio`...).
    kind: String,
    message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            detail: self.message.clone(),
            error: ErrorDetail {
                kind: self.kind.name().to_string(),
                message: self.message,
            },
        };
        (self.status, Json(body)).into_response()
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Sluice",
        description = "The Sluice audio engine over HTTP: the routes of the specifications Sluice grew from (uploads, metadata, analysis, waveforms, exports, batches, regions, formats; mastering analysis against a reference library), with Sluice's full reports; Sluice's own /api/v1 (the watch-folder host's pipelines, jobs with their events, reports and pictures, effects, and a live feed of job events); the dashboard at /.",
        license(name = "MIT OR Apache-2.0")
    ),
    components(schemas(ErrorBody, ErrorDetail)),
    modifiers(&BearerAuth)
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let c = api.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The documented routes.
fn api(max_upload_bytes: u64) -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(audio::routes(max_upload_bytes))
        .merge(export::routes())
        .merge(batch::routes())
        .merge(regions::routes())
        .merge(mastering::routes(max_upload_bytes))
        .merge(v1::routes(max_upload_bytes))
        .merge(pages::routes())
        .merge(stream::routes())
        .merge(monitor::routes())
        .merge(qc::routes())
}

/// The API's router and its OpenAPI document.
fn router(state: Arc<AppState>) -> (axum::Router, utoipa::openapi::OpenApi) {
    let (api_router, api) = api(state.max_upload_bytes).split_for_parts();
    let doc = api.clone();
    let router = api_router
        .route(
            "/openapi.json",
            axum::routing::get(move || {
                let doc = doc.clone();
                async move { Json(doc) }
            }),
        )
        .fallback(|| async { ApiError::not_found("no such route") })
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            authorize,
        ))
        // Answers gzip-compressed for clients that ask (not pictures, not the live feed), and
        // each request traced (`RUST_LOG=tower_http=debug` shows them).
        .layer(tower_http::compression::CompressionLayer::new().gzip(true))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .layer(axum::middleware::from_fn(request_span))
        .with_state(state);
    (router, api)
}

/// The CORS layer for these origins (`scheme://host[:port]`), or none: without it a browser
/// page of another origin cannot read the API's answers.
fn cors(origins: &[String]) -> Result<Option<tower_http::cors::CorsLayer>> {
    use tower_http::cors::{AllowOrigin, CorsLayer};
    if origins.is_empty() {
        return Ok(None);
    }
    let mut values = Vec::new();
    for o in origins {
        values.push(crate::config::check_origin(o)?);
    }
    let values: Vec<axum::http::HeaderValue> = values
        .iter()
        .map(|o| axum::http::HeaderValue::from_str(o))
        .collect::<std::result::Result<_, _>>()
        .context("a CORS origin")?;
    Ok(Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(values))
            .allow_methods([Method::GET, Method::POST, Method::DELETE])
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
            .max_age(std::time::Duration::from_secs(600)),
    ))
}

/// Checks the bearer token where one is needed (see the module documentation).
async fn authorize(State(st): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let reads = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let needed = !reads || (!st.loopback && req.uri().path() != "/health");
    if needed {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        let ok = given.is_some_and(|g| same(g.as_bytes(), st.token.as_bytes()));
        if !ok {
            let message = if given.is_some() {
                "wrong bearer token"
            } else if reads {
                "this server listens beyond loopback: every route needs `Authorization: Bearer TOKEN` (the token is in the root's .sluice/api-token)"
            } else {
                "this route changes state: it needs `Authorization: Bearer TOKEN` (the token is in the root's .sluice/api-token)"
            };
            return ApiError::new(StatusCode::UNAUTHORIZED, ErrorKind::Unauthorized, message)
                .into_response();
        }
    }
    next.run(req).await
}

/// Equality in a time that does not depend on where the inputs differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// The root's API token: read, or made (random, 256 bits) and written owner-only on first use;
/// `true` when it was made now.
pub fn token(root: &Path) -> Result<(String, bool)> {
    let path = root.join(".sluice").join("api-token");
    match std::fs::read_to_string(&path) {
        Ok(t) if !t.trim().is_empty() => return Ok((t.trim().to_string(), false)),
        Ok(_) => anyhow::bail!(
            "{}: empty; delete it to have a new token made",
            path.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| path.display().to_string()),
    }
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .context("reading /dev/urandom for the API token")?;
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    std::fs::create_dir_all(root.join(".sluice"))
        .with_context(|| root.join(".sluice").display().to_string())?;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts
        .open(&path)
        .with_context(|| path.display().to_string())?;
    f.write_all(token.as_bytes())
        .and_then(|_| f.sync_all())
        .with_context(|| path.display().to_string())?;
    Ok((token, true))
}

/// The OpenAPI document of the server, as JSON (for docs and tests).
pub fn openapi_json() -> String {
    let (_, doc) = api(ServeOptions::default().max_upload_bytes).split_for_parts();
    doc.to_pretty_json().unwrap_or_default()
}

/// Serves the root until `stop` resolves (Ctrl-C or SIGTERM in `sluice serve`). Prints
/// `listening on http://ADDR` once the socket is bound (with the port the system chose when
/// asked for port 0).
pub fn run(cfg: &Config, opts: &ServeOptions, notify: &dyn Fn(Notice)) -> Result<()> {
    serve(cfg, opts, shutdown(), notify)
}

/// What the server tells whoever runs it (`sluice serve` and `sluice watch` print each).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// Temporaries a stopped process left (exports', uploads in progress), removed at start.
    Swept(usize),
    /// A batch a stop cut off: pending again.
    BatchInterrupted(u64),
    /// Listening at `addr`; the API token is kept in `token_file`, and `new_token` is it when
    /// it was made just now (shown once).
    Listening {
        addr: SocketAddr,
        token_file: PathBuf,
        new_token: Option<String>,
    },
    /// Requests still under way 5 s after the stop were cut off.
    CutOff,
}

/// Serves the root beside `sluice watch` (its `[server]`) until `stop` is set.
pub fn run_until(
    cfg: &Config,
    opts: &ServeOptions,
    stop: Arc<std::sync::atomic::AtomicBool>,
    notify: &dyn Fn(Notice),
) -> Result<()> {
    serve(
        cfg,
        opts,
        async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        },
        notify,
    )
}

fn serve(
    cfg: &Config,
    opts: &ServeOptions,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
    notify: &dyn Fn(Notice),
) -> Result<()> {
    let store = Store::open(&cfg.db_path(), true)?;
    // What a server or host killed mid-write left: exports' temporaries, uploads in progress.
    let swept = crate::host::sweep_temporaries(&cfg.root) + audio::sweep_incoming(&cfg.root);
    if swept > 0 {
        notify(Notice::Swept(swept));
    }
    for id in store.interrupted_batches()? {
        notify(Notice::BatchInterrupted(id));
    }
    let (token, made) = token(&cfg.root)?;
    let (closing_tx, closing) = tokio::sync::watch::channel(false);
    let state = Arc::new(AppState {
        root: cfg.root.clone(),
        store,
        token,
        loopback: opts.listen.ip().is_loopback(),
        max_upload_bytes: opts.max_upload_bytes,
        live: batch::Live::default(),
        exports: batch::Slots::new(cfg.workers),
        heavy: tokio::sync::Semaphore::new(1),
        uploads: Arc::new(tokio::sync::Semaphore::new(opts.max_uploads.max(1))),
        max_uploads: opts.max_uploads.max(1),
        request_timeout: opts.request_timeout,
        streams: Arc::new(tokio::sync::Semaphore::new(stream::MAX_SESSIONS)),
        sessions: Arc::default(),
        started: std::time::Instant::now(),
        answers: Answers::new(64 << 20),
        feed: v1::feed(),
        closing,
        work_limit: opts.work_limit,
        cors_origins: opts.cors_origins.clone(),
    });
    let (app, _) = router(Arc::clone(&state));
    let app = match cors(&opts.cors_origins)? {
        Some(layer) => app.layer(layer),
        None => app,
    };
    let hooks = cfg
        .server
        .as_ref()
        .and_then(|sv| webhooks::prepare(&state, &sv.webhooks));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("sluice-serve")
        .build()
        .context("starting the server's runtime")?;
    let served = rt.block_on(async move {
        v1::start_feed(&state);
        if let Some(p) = hooks {
            webhooks::spawn(&state, p);
        }
        let listener = tokio::net::TcpListener::bind(opts.listen)
            .await
            .with_context(|| format!("listening on {}", opts.listen))?;
        let addr = listener.local_addr()?;
        notify(Notice::Listening {
            addr,
            token_file: cfg.root.join(".sluice").join("api-token"),
            // Shown once: from now on it is read from the root.
            new_token: made.then(|| state.token.clone()),
        });
        let stopping = async move {
            stop.await;
            let _ = closing_tx.send(true);
        };
        let served = async {
            tokio::join!(stopping, accept(listener, app, opts, state.closing.clone()));
        };
        // Requests under way get 5 s to finish after the stop (analyses stop at once: their
        // `Work` sees `closing`, and they answer 503 `stopping`); then the server closes.
        let mut closing = state.closing.clone();
        let bound = async move {
            let _ = closing.wait_for(|c| *c).await;
            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
        };
        tokio::select! {
            () = served => Ok(()),
            _ = bound => {
                notify(Notice::CutOff);
                Ok(())
            }
        }
    });
    // Dropping the runtime would wait for every blocking task to end (an export of an hour's
    // file, a store write): the stop waits at most 2 s more. Work cut off here leaves only
    // temporaries (outputs appear by rename), swept at the next start; a batch resumes.
    rt.shutdown_timeout(std::time::Duration::from_secs(2));
    served
}

/// Serves HTTP/1.1 connections until the server stops, then lets each finish the request it
/// is in. A connection that sends no request head within `request_timeout` (a slow or idle
/// client) is closed; beyond `max_connections` a new one is closed at once, so that no client
/// can take every socket the process may open.
async fn accept(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    opts: &ServeOptions,
    mut closing: tokio::sync::watch::Receiver<bool>,
) {
    let limit = opts.max_connections.max(1);
    let conns = Arc::new(tokio::sync::Semaphore::new(limit));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(opts.request_timeout)
        // Each connection reads at most 64 KB ahead (hyper's default lets it grow to ~400 KB:
        // with 50 uploads at once the server held 45 MB more).
        .max_buf_size(64 << 10);
    let mut refusing = false;
    loop {
        let tcp = tokio::select! {
            got = listener.accept() => match got {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    // Out of file descriptors and the like: wait, rather than spin.
                    tracing::warn!("accepting a connection: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = closing.wait_for(|c| *c) => break,
        };
        let Ok(permit) = Arc::clone(&conns).try_acquire_owned() else {
            if !refusing {
                tracing::warn!("{limit} connections are open: new ones are closed at once");
                refusing = true;
            }
            drop(tcp);
            continue;
        };
        refusing = false;
        // No Nagle delay: a live stream's small blocks go out at once (with it, one round trip
        // in a hundred waited ~40 ms for a delayed acknowledgement).
        let _ = tcp.set_nodelay(true);
        let svc = hyper_util::service::TowerToHyperService::new(app.clone());
        let conn = http
            .serve_connection(hyper_util::rt::TokioIo::new(tcp), svc)
            .with_upgrades();
        let mut closing = closing.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => return,
                _ = closing.wait_for(|c| *c) => conn.as_mut().graceful_shutdown(),
            }
            let _ = conn.await;
        });
    }
    drop(listener);
    // Every connection done: every permit back.
    let _ = conns.acquire_many(limit as u32).await;
}

async fn shutdown() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(t) => t,
                Err(_) => {
                    ctrl_c.await.ok();
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    ctrl_c.await.ok();
}

#[cfg(test)]
mod tests {
    use super::{Answers, ErrorKind};
    use axum::body::Bytes;

    #[test]
    fn every_error_kind_is_documented_and_named_once() {
        let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/API.md"))
            .unwrap();
        let mut names: Vec<&str> = ErrorKind::ALL.iter().map(|k| k.name()).collect();
        for n in &names {
            assert!(
                doc.contains(&format!("`{n}`")),
                "docs/API.md does not list `{n}`"
            );
        }
        let all = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), all, "a name given twice");
    }

    #[test]
    fn kept_answers_stay_under_their_budget_dropping_the_oldest() {
        let a = Answers::new(1000);
        a.put("a".into(), Bytes::from(vec![1u8; 200]));
        a.put("b".into(), Bytes::from(vec![2u8; 200]));
        // The same key again keeps the first answer.
        a.put("a".into(), Bytes::from(vec![9u8; 10]));
        assert_eq!(a.get("a").unwrap().len(), 200);
        for k in ["c", "d", "e"] {
            a.put(k.into(), Bytes::from(vec![3u8; 200]));
        }
        assert!(a.get("a").is_some(), "1000 bytes fit exactly");
        a.put("f".into(), Bytes::from(vec![4u8; 200]));
        assert!(a.get("a").is_none(), "the oldest goes first");
        assert!(a.get("b").is_some() && a.get("f").is_some());
        // An answer larger than a quarter of the budget is not kept.
        a.put("big".into(), Bytes::from(vec![5u8; 300]));
        assert!(a.get("big").is_none());
        assert!(a.get("b").is_some());
    }
}
