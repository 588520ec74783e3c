//! Delivery QC over HTTP (docs/QC.md): the built-in specifications, and an uploaded file judged
//! against one — the JSON report, the HTML page or the loudness history as CSV, the same as
//! `sluice qc` writes.

use super::blocking;
use super::{ApiError, AppState, ErrorBody, ErrorKind};
use axum::Json;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use sluice_core::qc;
use std::path::PathBuf;
use std::sync::Arc;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

type St = State<Arc<AppState>>;

pub(super) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(specs))
        .routes(routes!(file_qc))
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
    let spec = qc::spec::builtins()
        .into_iter()
        .find(|s| s.id.eq_ignore_ascii_case(&q.spec))
        .ok_or_else(|| {
            ApiError::bad_request(
                ErrorKind::BadField,
                format!(
                    "no built-in specification `{}`: one of {}",
                    q.spec,
                    qc::spec::builtin_ids().join(", ")
                ),
            )
        })?;
    let format = q.format.as_deref().unwrap_or("json").to_ascii_lowercase();
    if !["json", "html", "csv"].contains(&format.as_str()) {
        return Err(ApiError::bad_request(
            ErrorKind::BadField,
            format!("format `{format}`: json, html or csv"),
        ));
    }
    // One measurement at a time (each takes every core), stopped with the client or the limit.
    let _permit = st.heavy.acquire().await.map_err(ApiError::internal)?;
    let (work, _guard) = super::Work::start(&st);
    let st2 = Arc::clone(&st);
    let report = blocking(move || {
        let st = st2;
        let rec = super::audio::find(&st, &file_id)?;
        let opts = qc::options(&spec);
        let analysis = super::audio::analyse_upload(&st, &rec, &opts, &work)?;
        let mut measured = qc::measured(analysis, &opts);
        // The file as the client named it, never the server's path.
        measured.path = PathBuf::from(&rec.file_name);
        Ok(qc::judge(&spec, measured))
    })
    .await?;
    Ok(match format.as_str() {
        "html" => (
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            qc::html::report_html(&report),
        )
            .into_response(),
        "csv" => (
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            qc::history_csv(&report),
        )
            .into_response(),
        _ => Json(report).into_response(),
    })
}
