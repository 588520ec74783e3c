//! The monitoring routes of the real-time processing specification: a detailed health,
//! statistics of the real-time sessions, and their buffers (the queue in front of each
//! session's chain). Read-only, and cheap: counters and the sessions' registry, no decoding.

use super::AppState;
use super::stream::{MAX_SESSIONS, QUEUE};
use axum::Json;
use axum::extract::State;
use serde::Serialize;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(super) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(statistics))
        .routes(routes!(buffers))
}

/// In use out of a limit.
#[derive(Serialize, ToSchema)]
struct Load {
    active: usize,
    max: usize,
}

/// The server in detail: whether it serves, and how loaded it is.
#[derive(Serialize, ToSchema)]
struct DetailedHealth {
    /// `healthy`, `degraded` (the state database cannot be read) or `stopping`.
    status: &'static str,
    version: &'static str,
    uptime_seconds: f64,
    /// `ok`, or why the state database cannot be read.
    database: String,
    /// Real-time sessions (`/api/v1/stream`).
    sessions: Load,
    /// Uploads being received.
    uploads: Load,
    /// Exports running (single exports and batches' files) out of the slots.
    exports: Load,
    /// Exports waiting for a slot.
    exports_waiting: usize,
    /// Analyses running (one at a time; the others wait).
    analyses: Load,
}

/// The server's health in detail: the state database read, and the load of sessions, uploads,
/// exports and analyses.
#[utoipa::path(get, path = "/api/audio/health", operation_id = "health_detailed", tag = "monitoring",
    responses((status = 200, description = "OK", body = DetailedHealth)))]
async fn health(State(st): State<Arc<AppState>>) -> Json<DetailedHealth> {
    let database = {
        let st = st.clone();
        super::blocking(move || Ok(st.store.has_ready().map_err(|e| e.to_string())))
            .await
            .map_or_else(|e| e.message, |r| r.err().unwrap_or_else(|| "ok".into()))
    };
    let (running, waiting, slots) = st.exports.counts();
    let status = if *st.closing.borrow() {
        "stopping"
    } else if database != "ok" {
        "degraded"
    } else {
        "healthy"
    };
    Json(DetailedHealth {
        status,
        version: env!("CARGO_PKG_VERSION"),
        uptime_seconds: st.started.elapsed().as_secs_f64(),
        database,
        sessions: Load {
            active: MAX_SESSIONS - st.streams.available_permits(),
            max: MAX_SESSIONS,
        },
        uploads: Load {
            active: st.max_uploads - st.uploads.available_permits().min(st.max_uploads),
            max: st.max_uploads,
        },
        exports: Load {
            active: running,
            max: slots,
        },
        exports_waiting: waiting,
        analyses: Load {
            active: 1 - st.heavy.available_permits().min(1),
            max: 1,
        },
    })
}

/// What the real-time sessions have done since the server started.
#[derive(Serialize, ToSchema)]
struct Statistics {
    uptime_seconds: f64,
    /// Sessions open now.
    active_sessions: usize,
    max_sessions: usize,
    /// Sessions opened (their chain built) since the start.
    total_sessions: u64,
    /// Sessions refused at the limit.
    refused_sessions: u64,
    /// Sessions ended on an error (a malformed block, a flood, an effect that trapped).
    failed_sessions: u64,
    blocks_processed: u64,
    frames_processed: u64,
    /// Seconds of audio processed.
    audio_seconds_processed: f64,
    /// Seconds the chains took to process it.
    processing_seconds: f64,
    /// Audio seconds per processing second (how many times faster than real time).
    realtime_factor: Option<f64>,
}

/// Statistics of the real-time sessions (`/api/v1/stream`) since the server started.
#[utoipa::path(get, path = "/api/audio/statistics", operation_id = "statistics", tag = "monitoring",
    responses((status = 200, description = "OK", body = Statistics)))]
async fn statistics(State(st): State<Arc<AppState>>) -> Json<Statistics> {
    let s = &st.sessions;
    let audio = s.audio_ns.load(Relaxed) as f64 / 1e9;
    let busy = s.busy_ns.load(Relaxed) as f64 / 1e9;
    Json(Statistics {
        uptime_seconds: st.started.elapsed().as_secs_f64(),
        active_sessions: s.open().len(),
        max_sessions: MAX_SESSIONS,
        total_sessions: s.opened.load(Relaxed),
        refused_sessions: s.refused.load(Relaxed),
        failed_sessions: s.failed.load(Relaxed),
        blocks_processed: s.blocks.load(Relaxed),
        frames_processed: s.frames.load(Relaxed),
        audio_seconds_processed: audio,
        processing_seconds: busy,
        realtime_factor: (busy > 0.0).then(|| audio / busy),
    })
}

/// One open session's buffer.
#[derive(Serialize, ToSchema)]
struct SessionBuffer {
    session_id: u64,
    /// RFC 3339, UTC.
    opened_at: Option<String>,
    sample_rate: u32,
    channels: usize,
    /// The largest block the session takes, in frames.
    max_frames: usize,
    /// How far the output lags the input (the chain's latency), in frames.
    latency_frames: usize,
    effects: Vec<String>,
    /// Blocks received and waiting for the chain now.
    queued_blocks: usize,
    /// The queue's size: one more block waiting ends the session (a flood).
    queue_capacity: usize,
    /// `queued_blocks / queue_capacity`.
    fill: f64,
    blocks_processed: u64,
    frames_processed: u64,
}

/// The real-time sessions' buffers.
#[derive(Serialize, ToSchema)]
struct Buffers {
    /// The queue in front of every session's chain, in blocks.
    queue_capacity: usize,
    sessions: Vec<SessionBuffer>,
}

/// The buffers of the real-time sessions open now: each session's queue of blocks waiting for
/// its chain, and what it has processed.
#[utoipa::path(get, path = "/api/audio/buffers", operation_id = "buffers", tag = "monitoring",
    responses((status = 200, description = "OK", body = Buffers)))]
async fn buffers(State(st): State<Arc<AppState>>) -> Json<Buffers> {
    let sessions = st
        .sessions
        .open()
        .iter()
        .map(|s| {
            let queued = s.queued();
            SessionBuffer {
                session_id: s.id,
                opened_at: super::rfc3339(Some(s.opened_ms)),
                sample_rate: s.sample_rate,
                channels: s.channels,
                max_frames: s.max_frames,
                latency_frames: s.latency_frames,
                effects: s.effects.clone(),
                queued_blocks: queued,
                queue_capacity: QUEUE,
                fill: queued as f64 / QUEUE as f64,
                blocks_processed: s.blocks.load(Relaxed),
                frames_processed: s.frames.load(Relaxed),
            }
        })
        .collect();
    Json(Buffers {
        queue_capacity: QUEUE,
        sessions,
    })
}
