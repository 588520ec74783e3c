//! Sluice's own routes, under `/api/v1/`: the watch-folder host over HTTP — pipelines, jobs
//! (list, filter, detail with events, report, retry, and new ones from an upload into a
//! pipeline's watch folder), effects, what the root holds, and a live feed of job events
//! (server-sent events). The jobs are the ones `sluice watch` runs on the same root (in this
//! process when `[server]` is set in sluice.toml, or in another).

use super::ErrorKind;
use super::blocking;
use super::form;
use super::{ApiError, AppState, ErrorBody};
use crate::commands;
use crate::confine;
use crate::store::{Event, JobRecord, JobState};
use axum::Json;
use axum::extract::{DefaultBodyLimit, Multipart, Path as UrlPath, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{self, KeepAlive, Sse};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;
use utoipa::ToSchema;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;

type St = State<Arc<AppState>>;

pub(super) fn routes(max_upload_bytes: u64) -> OpenApiRouter<Arc<AppState>> {
    let limit = usize::try_from(max_upload_bytes.saturating_add(1 << 20)).unwrap_or(usize::MAX);
    OpenApiRouter::new()
        .routes(routes!(pipelines))
        .routes(routes!(jobs, submit).layer(DefaultBodyLimit::max(limit)))
        .routes(routes!(job))
        .routes(routes!(job_report))
        .routes(routes!(job_plot))
        .routes(routes!(retry))
        .routes(routes!(effects))
        .routes(routes!(effect))
        .routes(routes!(stats))
        .routes(routes!(references))
        .routes(routes!(reference))
        .routes(routes!(genres))
        .routes(routes!(genre_profile))
        .routes(routes!(events))
}

/// A job as the API shows it.
#[derive(Serialize, Clone, ToSchema)]
pub(crate) struct JobView {
    id: u64,
    pipeline: String,
    /// The source, relative to the root, where it arrived.
    input: String,
    /// `queued`, `running`, `done`, `failed` or `quarantined`.
    state: String,
    /// 0..1.
    progress: f64,
    attempts: u32,
    error: Option<String>,
    /// RFC 3339, UTC.
    created_at: Option<String>,
    started_at: Option<String>,
    finished_at: Option<String>,
    /// Written outputs, relative to the root.
    outputs: Vec<OutputView>,
    /// The report (JSON), relative to the root.
    report: Option<String>,
    /// Where the source is now, relative to the root (moved when done or quarantined).
    source_now: Option<String>,
    /// Only while the job is `running` but the process that ran it has ended (killed or
    /// crashed): that, and what runs the job again.
    #[serde(skip_serializing_if = "Option::is_none")]
    cut_short: Option<String>,
}

#[derive(Serialize, Clone, ToSchema)]
struct OutputView {
    path: String,
    bytes: u64,
    /// BLAKE3, hex.
    hash: String,
    format: String,
}

fn rel(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

impl From<&JobRecord> for JobView {
    fn from(j: &JobRecord) -> Self {
        JobView {
            id: j.id,
            pipeline: j.pipeline.clone(),
            input: rel(&j.input),
            state: j.state.name().to_string(),
            progress: j.progress,
            attempts: j.attempts,
            error: j.error.clone(),
            created_at: super::rfc3339(Some(j.created_ms)),
            started_at: super::rfc3339(j.started_ms),
            finished_at: super::rfc3339(j.finished_ms),
            outputs: j
                .outputs
                .iter()
                .map(|o| OutputView {
                    path: rel(&o.path),
                    bytes: o.bytes,
                    hash: o.hash.clone(),
                    format: o.format.clone(),
                })
                .collect(),
            report: j.report.as_deref().map(rel),
            source_now: j.source_now.as_deref().map(rel),
            cut_short: commands::cut_short_note(j),
        }
    }
}

/// A store event as the API shows it.
#[derive(Serialize, Clone, ToSchema)]
pub(crate) struct EventView {
    id: u64,
    /// RFC 3339, UTC.
    time: Option<String>,
    job: Option<u64>,
    /// `queued`, `started`, `done`, `failed`, `quarantined`, `retry`, `pipeline_refused`...
    kind: String,
    message: String,
}

impl From<&Event> for EventView {
    fn from(e: &Event) -> Self {
        EventView {
            id: e.id,
            time: super::rfc3339(Some(e.time_ms)),
            job: e.job,
            kind: e.kind.name().to_string(),
            message: e.message.clone(),
        }
    }
}

/// A pipeline that loads.
#[derive(Serialize, ToSchema)]
struct PipelineView {
    name: String,
    /// Its file, relative to the root.
    file: String,
    description: Option<String>,
    steps: usize,
    outputs: usize,
    /// Watch folders, relative to the root.
    watch: Vec<String>,
}

/// The root's pipelines.
#[derive(Serialize, ToSchema)]
struct PipelineList {
    pipelines: Vec<PipelineView>,
    /// Problems of the pipeline files that do not load, as `file:line:column: message`.
    problems: Vec<String>,
}

fn under_root(root: &Path, p: &Path) -> String {
    rel(p.strip_prefix(root).unwrap_or(p))
}

fn config(st: &AppState) -> Result<crate::config::Config, ApiError> {
    crate::config::Config::load(&st.root).map_err(|e| ApiError::config(&st.root, e))
}

fn view(root: &Path, p: &crate::pipeline::Pipeline) -> PipelineView {
    let s = commands::PipelineSummary::from(p);
    PipelineView {
        name: s.name,
        file: under_root(root, &s.file),
        description: s.description,
        steps: s.steps,
        outputs: s.outputs,
        watch: s.watch.iter().map(|w| under_root(root, w)).collect(),
    }
}

/// The root's configuration and its pipelines, loaded once.
fn load(
    st: &AppState,
) -> Result<
    (
        crate::config::Config,
        Vec<crate::pipeline::Pipeline>,
        PipelineList,
    ),
    ApiError,
> {
    let (cfg, ok, problems) =
        commands::load_root(&st.root).map_err(|e| ApiError::config(&st.root, e))?;
    let list = PipelineList {
        pipelines: ok.iter().map(|p| view(&st.root, p)).collect(),
        problems: problems
            .iter()
            .map(|d| {
                d.to_string()
                    .replace(&format!("{}/", st.root.display()), "")
            })
            .collect(),
    };
    Ok((cfg, ok, list))
}

/// The root's pipelines (those that load) and the problems of those that do not.
#[utoipa::path(get, path = "/api/v1/pipelines", operation_id = "v1_pipelines", tag = "v1",
    responses((status = 200, description = "OK", body = PipelineList)))]
async fn pipelines(State(st): St) -> Result<Json<PipelineList>, ApiError> {
    Ok(Json(blocking(move || load(&st).map(|(_, _, l)| l)).await?))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct JobsQuery {
    /// `queued`, `running`, `done`, `failed` or `quarantined`.
    state: Option<String>,
    /// Only this pipeline's jobs.
    pipeline: Option<String>,
    /// The newest N (default 200, at most 10000).
    limit: Option<usize>,
}

/// Jobs, newest first, filtered by state and pipeline.
#[utoipa::path(get, path = "/api/v1/jobs", operation_id = "v1_jobs", tag = "v1",
    params(JobsQuery),
    responses((status = 200, description = "OK", body = Vec<JobView>),
        (status = 400, description = "An unknown state", body = ErrorBody)))]
async fn jobs(State(st): St, Query(q): Query<JobsQuery>) -> Result<Json<Vec<JobView>>, ApiError> {
    let state = match q.state.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(JobState::parse(s).ok_or_else(|| {
            ApiError::bad_request(
                ErrorKind::BadField,
                format!("state: `{s}` is not queued, running, done, failed or quarantined"),
            )
        })?),
    };
    let limit = q.limit.unwrap_or(200).clamp(1, 10_000);
    let out = blocking(move || {
        let mut all = st.store.jobs(state).map_err(ApiError::internal)?;
        if let Some(p) = q.pipeline.as_deref().filter(|p| !p.is_empty()) {
            all.retain(|j| j.pipeline == p);
        }
        all.sort_by_key(|j| std::cmp::Reverse(j.id));
        all.truncate(limit);
        Ok(all.iter().map(JobView::from).collect())
    })
    .await?;
    Ok(Json(out))
}

fn job_id(s: &str) -> Result<u64, ApiError> {
    s.parse()
        .map_err(|_| ApiError::not_found(format!("no job `{s}`")))
}

fn find_job(st: &AppState, id: &str) -> Result<JobRecord, ApiError> {
    let n = job_id(id)?;
    st.store
        .job(n)
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found(format!("no job `{id}`")))
}

/// A job and its events.
#[derive(Serialize, ToSchema)]
struct JobDetail {
    job: JobView,
    events: Vec<EventView>,
}

/// One job with its events, oldest first.
#[utoipa::path(get, path = "/api/v1/jobs/{id}", operation_id = "v1_job", tag = "v1",
    params(("id" = String, Path)),
    responses((status = 200, description = "OK", body = JobDetail),
        (status = 404, description = "No such job", body = ErrorBody)))]
async fn job(State(st): St, UrlPath(id): UrlPath<String>) -> Result<Json<JobDetail>, ApiError> {
    let out = blocking(move || {
        let j = find_job(&st, &id)?;
        let events = st.store.events(Some(j.id)).map_err(ApiError::internal)?;
        Ok(JobDetail {
            job: JobView::from(&j),
            events: events.iter().map(EventView::from).collect(),
        })
    })
    .await?;
    Ok(Json(out))
}

/// A job's report (the JSON file it wrote beside its outputs).
#[utoipa::path(get, path = "/api/v1/jobs/{id}/report", operation_id = "v1_job_report", tag = "v1",
    params(("id" = String, Path)),
    responses((status = 200, description = "The report (docs/PIPELINES.md)", body = Object),
        (status = 404, description = "No such job, or it has no report (yet)", body = ErrorBody)))]
async fn job_report(State(st): St, UrlPath(id): UrlPath<String>) -> Result<Json<Value>, ApiError> {
    let out = blocking(move || {
        let j = find_job(&st, &id)?;
        let Some(report) = &j.report else {
            return Err(ApiError::not_found(format!(
                "job {id} has no report ({})",
                j.state.name()
            )));
        };
        let path = confine::resolve(&st.root, report).map_err(|e| {
            ApiError::internal(format!("job {id}'s report {}: {e}", report.display()))
        })?;
        let text = std::fs::read(&path).map_err(|e| {
            ApiError::not_found(format!(
                "job {id}'s report {} cannot be read: {e}",
                report.display()
            ))
        })?;
        serde_json::from_slice(&text).map_err(ApiError::internal)
    })
    .await?;
    Ok(Json(out))
}

/// The audio a job's pictures are drawn from: its source where it is now, else where it
/// arrived, else its first output; with the content hash that keys the pictures.
fn picture_source(st: &AppState, j: &JobRecord) -> Option<(PathBuf, String)> {
    let mut candidates: Vec<(&Path, &str)> = Vec::new();
    if let Some(now) = &j.source_now {
        candidates.push((now, &j.content_hash));
    }
    candidates.push((&j.input, &j.content_hash));
    for o in &j.outputs {
        candidates.push((&o.path, &o.hash));
    }
    candidates.into_iter().find_map(|(p, hash)| {
        let path = confine::resolve(&st.root, p).ok()?;
        (path.is_file() && hash.bytes().all(|b| b.is_ascii_hexdigit()) && !hash.is_empty())
            .then(|| (path, hash.to_string()))
    })
}

/// Draws (once per content, kept in `.sluice/plots/HASH/`) and reads a picture.
fn picture(
    st: &AppState,
    j: &JobRecord,
    kind: &str,
    work: &super::Work,
) -> Result<Vec<u8>, ApiError> {
    let (path, hash) = picture_source(st, j).ok_or_else(|| {
        ApiError::not_found(format!(
            "job {}: neither its source nor an output is there to draw",
            j.id
        ))
    })?;
    let dir = st.root.join(".sluice").join("plots").join(&hash);
    let png = dir.join(format!("{kind}.png"));
    if let Ok(bytes) = std::fs::read(&png) {
        return Ok(bytes);
    }
    std::fs::create_dir_all(&dir).map_err(ApiError::internal)?;
    let opts = sluice_core::analysis::AnalysisOptions {
        sections: vec![
            sluice_core::analysis::Section::Loudness,
            sluice_core::analysis::Section::Spectrum,
            sluice_core::analysis::Section::Waveform,
        ],
        loudness_history_seconds: Some(0.1),
        ..Default::default()
    };
    let lanes = std::thread::available_parallelism().map_or(2, |n| n.get());
    let report =
        crate::analyze::analyze_file_until(&path, &opts, lanes, &crate::analyze::Silent, &|| {
            work.stop()
        })
        .map_err(|e| {
            ApiError::analysis(e, work)
                .map_message(|m| m.replace(&format!("{}/", st.root.display()), ""))
        })?;
    // Drawn under the file's name, then kept under the picture's kind (each an atomic write
    // and a rename: a reader never sees half a picture).
    for drawn in crate::render::plots(&dir, &report).map_err(ApiError::internal)? {
        let name = drawn
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if let Some(k) = ["waveform", "loudness", "spectrum"]
            .into_iter()
            .find(|k| name.ends_with(&format!(".{k}.png")))
        {
            std::fs::rename(&drawn, dir.join(format!("{k}.png"))).map_err(ApiError::internal)?;
        }
    }
    std::fs::read(&png).map_err(|e| ApiError::internal(format!("{}: {e}", png.display())))
}

/// A picture of a job's audio (PNG, 1200 px wide): the waveform, the loudness history
/// (momentary and short-term, with the integrated loudness), or the long-term spectrum with
/// its bands. Drawn once per content.
#[utoipa::path(get, path = "/api/v1/jobs/{id}/plots/{kind}", operation_id = "v1_job_plot", tag = "v1",
    params(("id" = String, Path), ("kind" = String, Path, description = "`waveform`, `loudness` or `spectrum`")),
    responses((status = 200, description = "The picture", content_type = "image/png", body = Vec<u8>),
        (status = 404, description = "No such job or kind, or no audio left to draw", body = ErrorBody),
        (status = 422, description = "The audio cannot be decoded", body = ErrorBody)))]
async fn job_plot(
    State(st): St,
    UrlPath((id, kind)): UrlPath<(String, String)>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    if !matches!(kind.as_str(), "waveform" | "loudness" | "spectrum") {
        return Err(ApiError::not_found(format!(
            "no picture `{kind}`: waveform, loudness or spectrum"
        )));
    }
    let st2 = Arc::clone(&st);
    let j = blocking(move || find_job(&st2, &id)).await?;
    // Drawing decodes the file: one at a time, as the analyses.
    let _permit = st.heavy.acquire().await.map_err(ApiError::internal)?;
    let st2 = Arc::clone(&st);
    let (work, _guard) = super::Work::start(&st);
    let bytes = blocking(move || picture(&st2, &j, &kind, &work)).await?;
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, "image/png"),
            (axum::http::header::CACHE_CONTROL, "private, max-age=3600"),
        ],
        bytes,
    )
        .into_response())
}

#[derive(Serialize, ToSchema)]
struct Retried {
    job: JobView,
    message: String,
}

/// Queue a failed or quarantined job again.
#[utoipa::path(post, path = "/api/v1/jobs/{id}/retry", operation_id = "v1_job_retry", tag = "v1",
    params(("id" = String, Path)),
    responses((status = 200, description = "Queued again", body = Retried),
        (status = 401, description = "No or wrong bearer token", body = ErrorBody),
        (status = 404, description = "No such job", body = ErrorBody),
        (status = 409, description = "Not failed or quarantined (kind `busy`)", body = ErrorBody)),
    security(("bearer" = [])))]
async fn retry(State(st): St, UrlPath(id): UrlPath<String>) -> Result<Json<Retried>, ApiError> {
    let out = blocking(move || {
        let j = find_job(&st, &id)?;
        let done = commands::retry_in(&st.store, &[j.id], false).map_err(ApiError::internal)?;
        if done.queued.is_empty() {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                ErrorKind::Busy,
                format!(
                    "job {id} is {}: only failed or quarantined jobs are retried",
                    j.state.name()
                ),
            ));
        }
        let j = find_job(&st, &id)?;
        Ok(Retried {
            job: JobView::from(&j),
            message: format!("job {id} queued again"),
        })
    })
    .await?;
    Ok(Json(out))
}

/// The multipart form of a new job (for the OpenAPI document).
#[derive(ToSchema)]
#[allow(dead_code)]
struct SubmitForm {
    /// The audio file.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
    /// The pipeline to run it through (its first watch folder receives the file).
    pipeline: String,
}

#[derive(Serialize, ToSchema)]
struct Submitted {
    pipeline: String,
    /// Where the file was placed, relative to the root: the watch host takes it from there.
    path: String,
    /// Whether a `sluice watch` host is running on this root now (else the file waits for one).
    host_running: bool,
    message: String,
}

/// Places an upload into `dir` under its own name (`-2`, `-3`... when taken), complete at
/// once: a hard link of the finished temporary file, which never replaces a file.
/// Submit a file to a pipeline: it is placed, complete, into the pipeline's first watch
/// folder, where the watch host takes it like any file that settles there (multipart `file`,
/// `pipeline`).
#[utoipa::path(post, path = "/api/v1/jobs", operation_id = "v1_job_submit", tag = "v1",
    request_body(content = SubmitForm, content_type = "multipart/form-data"),
    responses((status = 202, description = "Placed in the watch folder", body = Submitted),
        (status = 400, description = "No file, or no such pipeline (kind `bad_field`)", body = ErrorBody),
        (status = 401, description = "No or wrong bearer token", body = ErrorBody),
        (status = 413, description = "Larger than the server's upload limit", body = ErrorBody)),
    security(("bearer" = [])))]
async fn submit(
    State(st): St,
    form: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Result<(StatusCode, Json<Submitted>), ApiError> {
    let mut form = form::receive(&st, form, Some("file")).await?;
    let pipeline = form
        .get("pipeline")
        .ok_or_else(|| ApiError::bad_request(ErrorKind::BadField, "pipeline: required"))?;
    let got = form.take_file("file")?;
    let out = blocking(move || {
        let (cfg, loaded, list) = load(&st)?;
        let Some(p) = loaded.iter().find(|p| p.name == pipeline) else {
            return Err(ApiError::bad_request(
                ErrorKind::BadField,
                format!(
                    "pipeline: no pipeline `{pipeline}` (this root has {})",
                    list.pipelines
                        .iter()
                        .map(|p| p.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        };
        // A name the pipeline does not take would wait in its folder, unprocessed, for ever.
        if !p.matches(Path::new(&got.name)) {
            return Err(ApiError::bad_request(
                ErrorKind::BadField,
                format!(
                    "{}: the pipeline `{pipeline}` takes only {} (its `include`)",
                    got.name,
                    p.include_patterns.join(", ")
                ),
            ));
        }
        let watch = view(&st.root, p).watch;
        let Some(dir) = watch.first() else {
            return Err(ApiError::bad_request(
                ErrorKind::BadField,
                format!("pipeline: `{pipeline}` watches no folder"),
            ));
        };
        let (placed, _) = form::link_unique(&st.root, Path::new(dir), &got.name, &got.tmp.path)?;
        let running = crate::host::host_running(&cfg);
        Ok(Submitted {
            pipeline: pipeline.clone(),
            path: rel(&placed),
            host_running: running,
            message: if running {
                format!("placed in {dir}: the watch host takes it once it settles")
            } else {
                format!(
                    "placed in {dir}; no `sluice watch` runs on this root now: it is taken when one starts"
                )
            },
        })
    })
    .await?;
    Ok((StatusCode::ACCEPTED, Json(out)))
}

/// An effect a pipeline can use.
#[derive(Serialize, ToSchema)]
struct EffectView {
    name: String,
    version: String,
    description: String,
    /// `built in`, or the module's file relative to the root.
    origin: String,
    hash: String,
}

#[derive(Serialize, ToSchema)]
struct EffectList {
    effects: Vec<EffectView>,
    /// Modules in the root's effects folder that were refused, and why.
    refused: Vec<RefusedView>,
}

#[derive(Serialize, ToSchema)]
struct RefusedView {
    module: String,
    error: String,
}

/// The effects this root's pipelines can use: built in, and the modules of its effects
/// folder (with those refused and why).
#[utoipa::path(get, path = "/api/v1/effects", operation_id = "v1_effects", tag = "v1",
    responses((status = 200, description = "OK", body = EffectList)))]
async fn effects(State(st): St) -> Result<Json<EffectList>, ApiError> {
    let out = blocking(move || {
        let cfg = config(&st)?;
        let l = commands::effects_list(&cfg).map_err(ApiError::internal)?;
        let strip = |s: &str| s.replace(&format!("{}/", st.root.display()), "");
        Ok(EffectList {
            effects: l
                .effects
                .iter()
                .map(|e| EffectView {
                    name: e.name.clone(),
                    version: e.version.clone(),
                    description: e.description.clone(),
                    origin: strip(&e.origin),
                    hash: e.hash.clone(),
                })
                .collect(),
            refused: l
                .refused
                .iter()
                .map(|r| RefusedView {
                    module: strip(&r.module),
                    error: strip(&r.error),
                })
                .collect(),
        })
    })
    .await?;
    Ok(Json(out))
}

/// One effect: its descriptor (parameters with ranges and units, channels, latency).
#[utoipa::path(get, path = "/api/v1/effects/{name}", operation_id = "v1_effect", tag = "v1",
    params(("name" = String, Path)),
    responses((status = 200, description = "The descriptor, its origin and hash", body = Object),
        (status = 404, description = "No such effect", body = ErrorBody)))]
async fn effect(State(st): St, UrlPath(name): UrlPath<String>) -> Result<Json<Value>, ApiError> {
    let out = blocking(move || {
        let cfg = config(&st)?;
        let fx = cfg.effects().map_err(ApiError::internal)?;
        let e = fx.get(&name).ok_or_else(|| {
            ApiError::not_found(format!(
                "no effect `{name}` (GET /api/v1/effects lists them)"
            ))
        })?;
        let mut v = serde_json::to_value(&e.effect.descriptor).map_err(ApiError::internal)?;
        if let Some(o) = v.as_object_mut() {
            o.insert(
                "origin".into(),
                Value::String(
                    e.origin
                        .to_string()
                        .replace(&format!("{}/", st.root.display()), ""),
                ),
            );
            o.insert("hash".into(), Value::String(e.effect.hash.clone()));
        }
        Ok(v)
    })
    .await?;
    Ok(Json(out))
}

/// What the root holds: files by type, jobs by state; and the server's exports now
/// (`exports`: its `workers` slots, how many `running` and `waiting`).
#[utoipa::path(get, path = "/api/v1/stats", operation_id = "v1_stats", tag = "v1",
    responses((status = 200, description = "`sluice stats --json`", body = Object)))]
async fn stats(State(st): St) -> Result<Json<Value>, ApiError> {
    let out = blocking(move || {
        let cfg = config(&st)?;
        let s = commands::stats_in(&cfg, Some(&st.store)).map_err(ApiError::internal)?;
        let mut v = serde_json::to_value(&s).map_err(ApiError::internal)?;
        if let Some(o) = v.as_object_mut() {
            o.remove("root");
            // The server's exports (batches and single ones): its slots, and how many are
            // running and waiting now.
            let (running, waiting) = st.exports.now();
            o.insert(
                "exports".into(),
                serde_json::json!({
                    "workers": st.exports.capacity(),
                    "running": running,
                    "waiting": waiting,
                }),
            );
        }
        Ok(v)
    })
    .await?;
    Ok(Json(out))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct GenreFilter {
    /// Only this genre's references (any case).
    genre: Option<String>,
}

/// A reference as `/api/v1` shows it: every stored figure (its signature: loudness, the five
/// bands' metrics, the feature vector), its source by file name only.
fn reference_json(r: &crate::store::ReferenceRecord) -> Result<Value, ApiError> {
    let mut v = serde_json::to_value(r).map_err(ApiError::internal)?;
    if let Some(o) = v.as_object_mut() {
        let name = r
            .source
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        o.insert("source".into(), Value::String(name));
        o.insert("added_at".into(), super::rfc3339(Some(r.added_ms)).into());
    }
    Ok(v)
}

/// The reference library with every measured figure, or one genre of it.
#[utoipa::path(get, path = "/api/v1/references", operation_id = "v1_references", tag = "v1",
    params(GenreFilter),
    responses((status = 200, description = "The references, oldest first, each with its signature", body = Vec<Object>)))]
async fn references(
    State(st): St,
    Query(q): Query<GenreFilter>,
) -> Result<Json<Vec<Value>>, ApiError> {
    let out = blocking(move || {
        let genre = q.genre.filter(|g| !g.trim().is_empty());
        st.store
            .references(genre.as_deref())
            .map_err(ApiError::internal)?
            .iter()
            .map(reference_json)
            .collect()
    })
    .await?;
    Ok(Json(out))
}

/// One reference with every measured figure.
#[utoipa::path(get, path = "/api/v1/references/{reference_id}", operation_id = "v1_reference", tag = "v1",
    params(("reference_id" = u64, Path)),
    responses((status = 200, description = "The reference", body = Object),
        (status = 404, description = "No such item", body = ErrorBody)))]
async fn reference(
    State(st): St,
    UrlPath(reference_id): UrlPath<String>,
) -> Result<Json<Value>, ApiError> {
    let out = blocking(move || {
        let missing = || ApiError::not_found(format!("no reference `{reference_id}`"));
        let id: u64 = reference_id.parse().map_err(|_| missing())?;
        let r = st
            .store
            .reference(id)
            .map_err(ApiError::internal)?
            .ok_or_else(missing)?;
        reference_json(&r)
    })
    .await?;
    Ok(Json(out))
}

#[derive(Serialize, ToSchema)]
struct GenreView {
    genre: String,
    references: usize,
}

/// The library's genres and how many references each has.
#[utoipa::path(get, path = "/api/v1/genres", operation_id = "v1_genres", tag = "v1",
    responses((status = 200, description = "Genres, by name", body = Vec<GenreView>)))]
async fn genres(State(st): St) -> Result<Json<Vec<GenreView>>, ApiError> {
    let out = blocking(move || {
        Ok(st
            .store
            .genres()
            .map_err(ApiError::internal)?
            .into_iter()
            .map(|(genre, references)| GenreView { genre, references })
            .collect())
    })
    .await?;
    Ok(Json(out))
}

/// A genre's profile: the mean and spread of every figure over its references (what a track
/// is compared with; `sluice ref profile GENRE --json`).
#[utoipa::path(get, path = "/api/v1/genres/{genre}/profile", operation_id = "v1_genre_profile", tag = "v1",
    params(("genre" = String, Path)),
    responses((status = 200, description = "The profile", body = Object),
        (status = 404, description = "No references of that genre", body = ErrorBody)))]
async fn genre_profile(
    State(st): St,
    UrlPath(genre): UrlPath<String>,
) -> Result<Json<Value>, ApiError> {
    let out = blocking(move || {
        let p = crate::library::profile(&st.store, &crate::library::Target::Genre(genre))
            .map_err(|e| super::mastering::library_error(e, Path::new(""), ""))?;
        serde_json::to_value(&p).map_err(ApiError::internal)
    })
    .await?;
    Ok(Json(out))
}

/// What the live feed carries.
#[derive(Clone, Debug)]
pub(crate) enum Live {
    /// A job's state or progress changed.
    Job(Arc<String>, u64),
    /// An event was logged.
    Log(Arc<String>, Option<u64>, u64),
}

/// The live feed's channel (one per server; [`start_feed`] fills it).
pub(crate) fn feed() -> broadcast::Sender<Live> {
    broadcast::channel(4096).0
}

/// Starts the feed's poller: it reads the store's new events and the running jobs' progress
/// twice a second and tells every subscriber; it stops with the server.
pub(crate) fn start_feed(st: &Arc<AppState>) {
    let weak = Arc::downgrade(st);
    let sender = st.feed.clone();
    tokio::spawn(async move {
        let mut last = None::<u64>;
        let mut running: HashMap<u64, (String, f64)> = HashMap::new();
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tick.tick().await;
            let Some(st) = weak.upgrade() else { break };
            if sender.receiver_count() == 0 {
                // Nobody listens: no reads; the next listener starts from the store as it is
                // then (having read the jobs first).
                last = None;
                running.clear();
                continue;
            }
            let from = last;
            let seen: HashSet<u64> = running.keys().copied().collect();
            let polled = tokio::task::spawn_blocking(move || poll(&st, from, &seen)).await;
            let Ok(Ok((new_last, events, jobs))) = polled else {
                continue;
            };
            last = Some(new_last);
            for e in &events {
                if let Ok(text) = serde_json::to_string(&EventView::from(e)) {
                    let _ = sender.send(Live::Log(Arc::new(text), e.job, e.id));
                }
            }
            for j in jobs {
                let key = (j.state.name().to_string(), j.progress);
                let changed = running.get(&j.id) != Some(&key);
                if j.state == JobState::Running {
                    running.insert(j.id, key);
                } else {
                    running.remove(&j.id);
                }
                if changed && let Ok(text) = serde_json::to_string(&JobView::from(&j)) {
                    let _ = sender.send(Live::Job(Arc::new(text), j.id));
                }
            }
        }
    });
}

/// New events after `from` (none on the first poll, which only finds the place and the
/// running jobs), and the jobs they name plus those running.
fn poll(
    st: &AppState,
    from: Option<u64>,
    running: &HashSet<u64>,
) -> Result<(u64, Vec<Event>, Vec<JobRecord>), crate::store::StoreError> {
    let Some(from) = from else {
        let last = st.store.last_event_id()?;
        let jobs = st.store.jobs(Some(JobState::Running))?;
        return Ok((last, Vec::new(), jobs));
    };
    let events = st.store.events_after(from, 1000)?;
    let last = events.last().map_or(from, |e| e.id);
    let mut ids: Vec<u64> = running.iter().copied().collect();
    ids.extend(events.iter().filter_map(|e| e.job));
    ids.sort_unstable();
    ids.dedup();
    let mut jobs = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(j) = st.store.job(id)? {
            jobs.push(j);
        }
    }
    Ok((last, events, jobs))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct EventsQuery {
    /// Only this job's events.
    job: Option<u64>,
}

/// The live feed of job events (server-sent events): `event: job` with the job (as in
/// `/api/v1/jobs`) whenever its state or progress changes, and `event: log` with each event
/// the host logs; a comment every 15 s keeps the connection open.
#[utoipa::path(get, path = "/api/v1/events", operation_id = "v1_events", tag = "v1",
    params(EventsQuery),
    responses((status = 200, description = "text/event-stream", content_type = "text/event-stream", body = String)))]
async fn events(
    State(st): St,
    Query(q): Query<EventsQuery>,
) -> Sse<impl futures_util::Stream<Item = Result<sse::Event, std::convert::Infallible>>> {
    let rx = st.feed.subscribe();
    let closing = st.closing.clone();
    let only = q.job;
    let stream =
        futures_util::stream::unfold((rx, closing), move |(mut rx, mut closing)| async move {
            loop {
                let got = tokio::select! {
                    r = rx.recv() => r,
                    _ = closing.wait_for(|c| *c) => return None,
                };
                let ev = match got {
                    Ok(Live::Job(text, id)) if only.is_none_or(|j| j == id) => {
                        sse::Event::default().event("job").data(text.as_str())
                    }
                    Ok(Live::Log(text, job, id)) if only.is_none() || job == only => {
                        sse::Event::default()
                            .event("log")
                            .id(id.to_string())
                            .data(text.as_str())
                    }
                    Ok(_) => continue,
                    Err(broadcast::error::RecvError::Lagged(n)) => sse::Event::default()
                        .event("lagged")
                        .data(format!("{{\"missed\":{n}}}")),
                    Err(broadcast::error::RecvError::Closed) => return None,
                };
                return Some((Ok(ev), (rx, closing)));
            }
        });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

#[cfg(test)]
mod tests {
    use super::JobView;
    use crate::store::{JobRecord, Runner};

    /// A job left running by a process that has ended says so; one whose runner lives does not.
    #[test]
    fn a_job_whose_runner_ended_is_shown_cut_short() {
        let mut j = JobRecord::detached(7, "p", "v1", "in/x.wav".into(), "c".into(), Vec::new());
        j.runner = Some(Runner {
            pid: std::process::id(),
            by_hand: true,
        });
        let v = serde_json::to_value(JobView::from(&j)).unwrap();
        assert!(v.get("cut_short").is_none(), "{v}");
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        j.runner = Some(Runner {
            pid: dead,
            by_hand: true,
        });
        let v = serde_json::to_value(JobView::from(&j)).unwrap();
        assert_eq!(v["state"], "running");
        let note = v["cut_short"].as_str().unwrap_or_default();
        assert!(note.contains(&format!("pid {dead}")), "{v}");
    }
}
