//! The pages the binary serves: the dashboard at `/` and the page that renders the OpenAPI
//! document at `/api/docs` (also at `/docs` and `/redoc`, where FastAPI services keep theirs). Plain HTML, CSS and JavaScript compiled into the binary (no build
//! step, no CDN: the machines that run Sluice may be offline).

use super::AppState;
use axum::http::header;
use axum::response::IntoResponse;
use std::sync::Arc;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

const DASHBOARD: &str = include_str!("dashboard.html");
const API_DOCS: &str = include_str!("api_docs.html");

pub(super) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(dashboard))
        .routes(routes!(api_docs))
        .routes(routes!(docs))
        .routes(routes!(redoc))
}

fn html(page: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            // The pages load nothing from elsewhere; no other site may frame them.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; img-src 'self' blob:; style-src 'unsafe-inline'; script-src 'unsafe-inline'; frame-ancestors 'none'",
            ),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        page,
    )
}

/// The dashboard: submit files to a pipeline, jobs with live progress, a job's report with
/// its pictures, the pipelines and effects.
#[utoipa::path(get, path = "/", operation_id = "dashboard", tag = "pages",
    responses((status = 200, description = "The dashboard (HTML)", content_type = "text/html", body = String)))]
async fn dashboard() -> impl IntoResponse {
    html(DASHBOARD)
}

/// This API's reference, rendered from `/openapi.json`.
#[utoipa::path(get, path = "/api/docs", operation_id = "api_docs", tag = "pages",
    responses((status = 200, description = "The API reference (HTML)", content_type = "text/html", body = String)))]
async fn api_docs() -> impl IntoResponse {
    html(API_DOCS)
}

/// The API reference where FastAPI services keep it (the specifications send their users to
/// `/docs`): the same page as `/api/docs`.
#[utoipa::path(get, path = "/docs", operation_id = "docs", tag = "pages",
    responses((status = 200, description = "The API reference (HTML)", content_type = "text/html", body = String)))]
async fn docs() -> impl IntoResponse {
    html(API_DOCS)
}

/// The API reference at FastAPI's other address (`/redoc`): the same page as `/api/docs`.
#[utoipa::path(get, path = "/redoc", operation_id = "redoc", tag = "pages",
    responses((status = 200, description = "The API reference (HTML)", content_type = "text/html", body = String)))]
async fn redoc() -> impl IntoResponse {
    html(API_DOCS)
}
