//! Regions (the specification's routes): stretches of uploaded files placed on tracks, with a
//! name and a gain, kept in the state database.

use super::ErrorKind;
use super::audio::find;
use super::blocking;
use super::form;
use super::{ApiError, AppState, ErrorBody};
use crate::store::RegionRecord;
use axum::Json;
use axum::extract::{Multipart, Path as UrlPath, State};
use serde::Serialize;
use std::sync::Arc;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(super) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(create))
        .routes(routes!(of_track))
        .routes(routes!(delete))
}

/// The multipart form of a new region (for the OpenAPI document).
#[derive(ToSchema)]
#[allow(dead_code)]
struct RegionForm {
    track_id: String,
    /// An uploaded file's id.
    file_id: String,
    /// Seconds into the file.
    start_time: f64,
    /// Seconds (default: to the end of the file).
    duration: Option<f64>,
    name: Option<String>,
    /// Linear gain (default 1.0).
    gain: Option<f64>,
}

#[derive(Serialize, ToSchema)]
struct Deleted {
    message: String,
}

/// Place a region of an uploaded file on a track (multipart form).
#[utoipa::path(
    post,
    path = "/api/audio/regions",
    operation_id = "region_create",
    tag = "audio",
    request_body(content = RegionForm, content_type = "multipart/form-data"),
    responses(
        (status = 200, description = "OK", body = RegionRecord),
        (status = 400, description = "A field or form the server cannot take", body = ErrorBody),
        (status = 404, description = "The file is not uploaded", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
async fn create(
    State(st): State<Arc<AppState>>,
    form: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Result<Json<RegionRecord>, ApiError> {
    let f = form::receive(&st, form, None).await?;
    let need = |k: &str| {
        f.get(k)
            .ok_or_else(|| ApiError::bad_request(ErrorKind::BadField, format!("{k}: required")))
    };
    let track_id = need("track_id")?;
    let file_id = need("file_id")?;
    let start = f
        .number("start_time")?
        .ok_or_else(|| ApiError::bad_request(ErrorKind::BadField, "start_time: required"))?;
    let duration = f.number("duration")?;
    let gain = f.number("gain")?.unwrap_or(1.0);
    let name = f.get("name");
    let rec = blocking(move || {
        let up = find(&st, &file_id)?;
        let length = up
            .info
            .pointer("/duration_seconds")
            .and_then(serde_json::Value::as_f64);
        if start < 0.0 || length.is_some_and(|l| start >= l) {
            return Err(ApiError::bad_request(
                ErrorKind::BadField,
                format!(
                    "start_time: {start} s is not inside {} ({})",
                    up.file_name,
                    length.map_or("length unknown".into(), |l| format!("{l:.3} s long"))
                ),
            ));
        }
        if let Some(d) = duration
            && (d <= 0.0 || length.is_some_and(|l| start + d > l + 1e-3))
        {
            return Err(ApiError::bad_request(
                ErrorKind::BadField,
                format!(
                    "duration: {d} s from {start} s does not fit in {}",
                    up.file_name
                ),
            ));
        }
        if gain < 0.0 {
            return Err(ApiError::bad_request(
                ErrorKind::BadField,
                format!("gain: {gain} is negative (a linear gain, 1.0 leaves the level)"),
            ));
        }
        let rec = RegionRecord {
            region_id: String::new(),
            track_id,
            file_id: up.id,
            start_time: start,
            duration,
            name,
            gain,
            created_at: jiff::Timestamp::now().to_string(),
        };
        st.store.add_region(rec).map_err(ApiError::internal)
    })
    .await?;
    Ok(Json(rec))
}

/// The regions of a track, in the order they were made.
#[utoipa::path(
    get,
    path = "/api/audio/regions/track/{track_id}",
    operation_id = "regions_of_track",
    tag = "audio",
    params(("track_id" = String, Path)),
    responses((status = 200, description = "OK", body = Vec<RegionRecord>))
)]
async fn of_track(
    State(st): State<Arc<AppState>>,
    UrlPath(track_id): UrlPath<String>,
) -> Result<Json<Vec<RegionRecord>>, ApiError> {
    let v = blocking(move || st.store.regions(&track_id).map_err(ApiError::internal)).await?;
    Ok(Json(v))
}

/// Delete a region.
#[utoipa::path(
    delete,
    path = "/api/audio/regions/{region_id}",
    operation_id = "region_delete",
    tag = "audio",
    params(("region_id" = String, Path)),
    responses((status = 200, description = "OK", body = Deleted), (status = 404, description = "No such item", body = ErrorBody)),
    security(("bearer" = []))
)]
async fn delete(
    State(st): State<Arc<AppState>>,
    UrlPath(region_id): UrlPath<String>,
) -> Result<Json<Deleted>, ApiError> {
    let missing = || ApiError::not_found(format!("no region `{region_id}`"));
    let id: u64 = region_id.parse().map_err(|_| missing())?;
    let gone = blocking(move || st.store.remove_region(id).map_err(ApiError::internal)).await?;
    match gone {
        Some(r) => Ok(Json(Deleted {
            message: format!("region {} deleted", r.region_id),
        })),
        None => Err(missing()),
    }
}
