//! Delivery QC over HTTP (docs/QC.md): the built-in specifications, and an uploaded file judged
//! against one — the JSON report, the HTML page or the loudness history as CSV, the same as
//! `sluice qc` writes.

use super::blocking;
use super::{ApiError, AppState, ErrorBody, ErrorKind};
use axum::Json;
use axum::extract::{DefaultBodyLimit, Path as UrlPath, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use sluice_core::qc;
use std::path::PathBuf;
use std::sync::Arc;
use utoipa::ToSchema;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;

type St = State<Arc<AppState>>;

pub(super) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(specs))
        .routes(routes!(file_qc, file_qc_custom).layer(DefaultBodyLimit::max(MAX_SPEC_BYTES)))
}

/// A built-in delivery specification.
#[derive(Serialize, ToSchema)]
struct SpecInfo {
    /// What `spec=` names it by.
    id: String,
    name: String,
    /// The document its limits come from.
    source: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    summary: Option<String>,
    /// Whether its loudness is speech-gated (Sluice's own speech detector runs).
    speech_gated: bool,
}

/// The built-in delivery specifications.
#[utoipa::path(get, path = "/api/v1/qc/specs", operation_id = "v1_qc_specs", tag = "v1",
    responses((status = 200, description = "OK", body = [SpecInfo])))]
async fn specs() -> Json<Vec<SpecInfo>> {
    Json(
        qc::spec::builtins()
            .into_iter()
            .map(|s| SpecInfo {
                speech_gated: s.rules.iter().any(|r| r.gating == qc::Gating::Speech),
                id: s.id,
                name: s.name,
                source: s.source,
                url: s.url,
                summary: s.summary,
            })
            .collect(),
    )
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct QcQuery {
    /// A built-in specification's id (`/api/v1/qc/specs`).
    spec: String,
    /// `json` (the default), `html` (the report page) or `csv` (the loudness history).
    format: Option<String>,
}

/// An uploaded file judged against a delivery specification: per rule the measured value, the
/// limit and the verdict (`passed` overall), the true-peak events, the loudness history; or
/// the same as one HTML page (`format=html`) or CSV (`format=csv`).
#[utoipa::path(get, path = "/api/v1/files/{file_id}/qc", operation_id = "v1_file_qc", tag = "v1",
    params(("file_id" = String, Path, description = "The id the upload answered with"), QcQuery),
    responses(
        (status = 200, description = "The report (JSON, HTML or CSV)", body = Object),
        (status = 400, description = "No such specification, or an unknown format", body = ErrorBody),
        (status = 404, description = "No such file", body = ErrorBody),
        (status = 422, description = "The audio could not be decoded to its end", body = ErrorBody),
        (status = 503, description = "Stopped (the server is stopping or the work limit passed)", body = ErrorBody),
    ))]
async fn file_qc(
    State(st): St,
    UrlPath(file_id): UrlPath<String>,
    Query(q): Query<QcQuery>,
) -> Result<Response, ApiError> {
    let spec = qc::spec::builtin(&q.spec).ok_or_else(|| {
        ApiError::bad_request(
            ErrorKind::BadField,
            format!(
                "no built-in specification `{}`: one of {}",
                q.spec,
                qc::spec::builtin_ids().join(", ")
            ),
        )
    })?;
    answer(&st, &file_id, spec, q.format.as_deref(), "").await
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct FormatQuery {
    /// `json` (the default), `html` (the report page) or `csv` (the loudness history).
    format: Option<String>,
}

/// The most a specification sent in a request may weigh (a `sluice qc --spec FILE` file's).
const MAX_SPEC_BYTES: usize = 1 << 20;

/// An uploaded file judged against a specification of the client's own, sent as the body in
/// the TOML format of docs/QC.md (`id`, `name`, `source`, `[[rule]]`s): the same answer as the
/// built-in route's. A specification that does not parse or whose rules make no sense is
/// refused with the reason.
#[utoipa::path(post, path = "/api/v1/files/{file_id}/qc", operation_id = "v1_file_qc_custom", tag = "v1",
    params(("file_id" = String, Path, description = "The id the upload answered with"), FormatQuery),
    request_body(content = String, content_type = "application/toml", description = "The specification, TOML"),
    responses(
        (status = 200, description = "The report (JSON, HTML or CSV)", body = Object),
        (status = 400, description = "Not a usable specification, or an unknown format", body = ErrorBody),
        (status = 401, description = "No or wrong bearer token", body = ErrorBody),
        (status = 404, description = "No such file", body = ErrorBody),
        (status = 413, description = "A specification over 1 MiB", body = ErrorBody),
        (status = 422, description = "The audio could not be decoded to its end", body = ErrorBody),
        (status = 503, description = "Stopped (the server is stopping or the work limit passed)", body = ErrorBody),
    ),
    security(("bearer" = [])))]
async fn file_qc_custom(
    State(st): St,
    UrlPath(file_id): UrlPath<String>,
    Query(q): Query<FormatQuery>,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|e| match ApiError::from(e) {
        e if e.status == axum::http::StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::too_large("a specification over 1 MiB: send at most 1 MiB")
        }
        e => e,
    })?;
    let text = std::str::from_utf8(&body).map_err(|_| {
        ApiError::bad_request(ErrorKind::BadField, "the specification is not UTF-8 text")
    })?;
    let spec = qc::spec::parse(text, "the specification sent")
        .map_err(|e| ApiError::bad_request(ErrorKind::BadField, e.to_string()))?;
    // Kept apart from the built-in ones' judgements (and each text apart from another).
    let tag = format!("custom-{}", &blake3::hash(&body).to_hex()[..16]);
    answer(&st, &file_id, spec, q.format.as_deref(), &tag).await
}

/// The judgement of the upload `file_id` against `spec` in `format`: kept from before, or
/// measured. `tag` tells a client's specification from a built-in one of the same id.
async fn answer(
    st: &Arc<AppState>,
    file_id: &str,
    spec: qc::Spec,
    format: Option<&str>,
    tag: &str,
) -> Result<Response, ApiError> {
    let format = format.unwrap_or("json").to_ascii_lowercase();
    if !["json", "html", "csv"].contains(&format.as_str()) {
        return Err(ApiError::bad_request(
            ErrorKind::BadField,
            format!("format `{format}`: json, html or csv"),
        ));
    }
    // The content never changes (an upload's id is its hash) nor does a specification's
    // text: the three renderings of a judgement are kept, so that the dashboard's page and
    // CSV after its JSON measure nothing again.
    let key = |f: &str| format!("qc:{file_id}:{}{tag}:{f}", spec.id);
    let body = match st.answers.get(&key(&format)) {
        Some(body) => body,
        None => {
            // One measurement at a time (each takes every core); a request that waited for
            // the same judgement finds it made.
            let _permit = st.heavy.acquire().await.map_err(ApiError::internal)?;
            match st.answers.get(&key(&format)) {
                Some(body) => body,
                None => judged(st, file_id, spec.clone(), &format, key).await?,
            }
        }
    };
    let kind = match format.as_str() {
        "html" => "text/html; charset=utf-8",
        "csv" => "text/csv; charset=utf-8",
        _ => "application/json",
    };
    Ok(([(header::CONTENT_TYPE, kind)], body).into_response())
}

/// Measures the upload `file_id` for `spec` (stopped with the client or the work limit),
/// keeps the JSON, HTML and CSV renderings (under `key(format)`) and answers the one asked for.
async fn judged(
    st: &Arc<AppState>,
    file_id: &str,
    spec: qc::Spec,
    format: &str,
    key: impl Fn(&str) -> String,
) -> Result<axum::body::Bytes, ApiError> {
    let (work, _guard) = super::Work::start(st);
    let st2 = Arc::clone(st);
    let id = file_id.to_string();
    let report = blocking(move || {
        let st = st2;
        let rec = super::audio::find(&st, &id)?;
        let opts = qc::options(&spec);
        let analysis = super::audio::analyse_upload(&st, &rec, &opts, &work)?;
        let mut measured = qc::measured(analysis, &opts);
        // The file as the client named it, never the server's path.
        measured.path = PathBuf::from(&rec.file_name);
        Ok(qc::judge(&spec, measured))
    })
    .await?;
    let json = serde_json::to_vec(&report).map_err(ApiError::internal)?;
    let mut asked = None;
    for (f, body) in [
        ("json", json),
        ("html", qc::html::report_html(&report).into_bytes()),
        ("csv", qc::history_csv(&report).into_bytes()),
    ] {
        let body = axum::body::Bytes::from(body);
        if f == format {
            asked = Some(body.clone());
        }
        st.answers.put(key(f), body);
    }
    asked.ok_or_else(|| ApiError::internal(format!("no rendering `{format}`")))
}
