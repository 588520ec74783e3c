//! Real-time processing over a WebSocket: `GET /api/v1/stream`.
//!
//! The client opens a session with a text message (JSON: `sample_rate`, `channels`, `chain`
//! of effects with their parameters, optional `max_frames`), gets `{"type":"ready"}` with the
//! chain's latency, then sends binary messages of interleaved little-endian `f32` PCM and gets
//! each back processed, the same length, in order; text messages `{"type":"meters"}` carry
//! the output's momentary and short-term loudness and true peak every 100 ms of audio (the
//! integrated loudness every second). Effects are the built-in ones and the root's modules,
//! run by the same runtime and limits as in pipelines.
//!
//! Each session runs on its own thread with a bounded queue in front: a client that sends
//! faster than the chain runs (a flood), a malformed message or an effect that traps ends that
//! session with `{"type":"error"}` and a close frame, never the server.

use super::ErrorKind;
use super::{ApiError, AppState};
use crate::effects::{Instance, Limits};
use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use sluice_core::analysis::loudness::LoudnessMeter;
use sluice_core::analysis::truepeak::TruePeakMeter;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Blocks a session may have waiting; one more and the session is a flood.
pub(crate) const QUEUE: usize = 64;
/// The largest block a message may carry, frames.
const MAX_FRAMES: usize = 8192;
const MAX_CHANNELS: usize = *sluice_core::formats::limits::CHANNELS.end() as usize;
/// Sessions at once per server.
pub(super) const MAX_SESSIONS: usize = 16;

pub(super) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new().routes(routes!(stream))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Open {
    sample_rate: u32,
    channels: usize,
    chain: Vec<ChainEffect>,
    /// The largest block the client will send (default and at most 8192 frames).
    max_frames: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChainEffect {
    effect: String,
    #[serde(default)]
    params: BTreeMap<String, f64>,
    /// Audio files for the effect's data slots (`{"ir": "irs/hall.wav"}`), inside the root.
    #[serde(default)]
    data: BTreeMap<String, String>,
}

/// Process live audio through a chain of effects (WebSocket; see the module documentation
/// and docs/API.md for the messages).
#[utoipa::path(get, path = "/api/v1/stream", operation_id = "v1_stream", tag = "v1",
    responses((status = 101, description = "Switching to the WebSocket protocol"),
        (status = 400, description = "Not a WebSocket upgrade", body = super::ErrorBody)))]
async fn stream(
    State(st): State<Arc<AppState>>,
    headers: axum::http::HeaderMap,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    // Browsers apply no CORS to WebSockets: a page of another origin could open a session (and
    // read root files back through an effect's data). A browser always says whose page it is.
    if let Some(origin) = headers.get(axum::http::header::ORIGIN)
        && !allowed_origin(&st, &headers, origin)
    {
        let shown = String::from_utf8_lossy(origin.as_bytes()).into_owned();
        return ApiError::new(
                axum::http::StatusCode::FORBIDDEN,
                ErrorKind::ForbiddenOrigin,
                format!(
                    "a session opened by a page of {shown}: not this server's origin nor one allowed (sluice serve --cors-origin)"
                ),
            )
            .into_response();
    }
    let ws = match ws {
        Ok(ws) => ws,
        Err(e) => {
            return ApiError::bad_request(
                ErrorKind::BadRequest,
                format!("{}: open it as a WebSocket", e.body_text()),
            )
            .into_response();
        }
    };
    let bytes = MAX_FRAMES * MAX_CHANNELS * 4;
    ws.max_message_size(bytes + 1024)
        .max_frame_size(bytes + 1024)
        .on_upgrade(move |socket| session(st, socket))
}

/// Whether a WebSocket opened by a page of `origin` may start a session: a page the server
/// itself served (its origin's host is the request's `Host`), or an origin allowed by CORS.
fn allowed_origin(
    st: &AppState,
    headers: &axum::http::HeaderMap,
    origin: &axum::http::HeaderValue,
) -> bool {
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let own = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .is_some_and(|h| !host.is_empty() && h.eq_ignore_ascii_case(host));
    own || st.cors_origins.iter().any(|o| o == origin)
}

/// What the session's thread sends back.
enum Out {
    Audio(Vec<u8>),
    Text(String),
    /// The session ends with this message.
    Fail(String),
}

fn json(v: serde_json::Value) -> String {
    v.to_string()
}

async fn close(mut socket: WebSocket, code: u16, message: String) {
    let _ = socket
        .send(Message::Text(
            json(serde_json::json!({"type": "error", "message": message})).into(),
        ))
        .await;
    let reason: String = message.chars().take(100).collect();
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        })))
        .await;
    // The closing handshake: what the client still sends is read and dropped (for at most a
    // second) so that closing does not reset the connection under the reason sent above.
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        while let Some(Ok(m)) = socket.recv().await {
            if matches!(m, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

/// What was wrong with a session's opening (its close reason).
#[derive(Debug, thiserror::Error)]
enum BadOpening {
    #[error("the opening message: {0}")]
    NotJson(serde_json::Error),
    #[error("open the session with a text message (JSON: sample_rate, channels, chain)")]
    NotText,
    #[error("no opening message within 10 s")]
    Silent,
}

/// The session's opening message, read for up to 10 s: `None` when the client went away.
async fn opening(socket: &mut WebSocket) -> Option<Result<Open, BadOpening>> {
    let open = match tokio::time::timeout(Duration::from_secs(10), socket.recv()).await {
        Ok(Some(Ok(Message::Text(t)))) => {
            serde_json::from_str::<Open>(&t).map_err(BadOpening::NotJson)
        }
        Ok(Some(Ok(_))) => Err(BadOpening::NotText),
        Ok(_) => return None,
        Err(_) => Err(BadOpening::Silent),
    };
    Some(open)
}

async fn session(st: Arc<AppState>, mut socket: WebSocket) {
    let Ok(_slot) = Arc::clone(&st.streams).try_acquire_owned() else {
        st.sessions
            .refused
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        return close(
            socket,
            1013,
            format!("this server runs {MAX_SESSIONS} sessions at once: try again later"),
        )
        .await;
    };
    // The opening message, within 10 s.
    let Some(open) = opening(&mut socket).await else {
        return;
    };
    let open = match open {
        Ok(o) => o,
        Err(m) => return close(socket, 1008, m.to_string()).await,
    };
    let root = st.root.clone();
    let built = tokio::task::spawn_blocking(move || Chain::build(&root, &open)).await;
    let chain = match built {
        Ok(Ok(c)) => c,
        Ok(Err(m)) => return close(socket, 1008, m.to_string()).await,
        Err(e) => return close(socket, 1011, format!("the session could not start: {e}")).await,
    };
    let ready = json(serde_json::json!({
        "type": "ready",
        "sample_rate": chain.rate,
        "channels": chain.channels,
        "max_frames": chain.max_frames,
        "latency_frames": chain.latency,
        "queue": QUEUE,
        "effects": chain.names,
    }));
    if socket.send(Message::Text(ready.into())).await.is_err() {
        return;
    }
    let (in_tx, in_rx) = crossbeam_channel::bounded::<Vec<u8>>(QUEUE);
    let (out_tx, mut out_rx) = tokio::sync::mpsc::unbounded_channel::<Out>();
    // Shown by the monitoring routes while it is open; its figures counted as it runs.
    let registered = st.sessions.register(&chain, in_rx.clone());
    let (sessions, me) = (st.sessions.clone(), registered.session.clone());
    let worker = std::thread::Builder::new()
        .name("sluice-stream".into())
        .spawn(move || process_blocks(chain, in_rx, out_tx, &sessions, &me));
    if worker.is_err() {
        return close(socket, 1011, "the session could not start a thread".into()).await;
    }
    let mut closing = st.closing.clone();
    // A session that sends nothing for the request timeout holds its slot no longer.
    let idle = st.request_timeout;
    let mut deadline = tokio::time::Instant::now() + idle;
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(deadline) => {
                return close(
                    socket,
                    1008,
                    format!("nothing received for {} s: the session is closed", idle.as_secs()),
                )
                .await;
            }
            got = socket.recv() => match got {
                Some(Ok(Message::Binary(b))) => {
                    deadline = tokio::time::Instant::now() + idle;
                    if let Err(e) = in_tx.try_send(b.to_vec()) {
                        let m = match e {
                            crossbeam_channel::TrySendError::Full(_) => format!(
                                "flooding: {QUEUE} blocks were already waiting (send in real time, or wait for each block's answer)"
                            ),
                            crossbeam_channel::TrySendError::Disconnected(_) => "the session has ended".into(),
                        };
                        st.sessions.failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        return close(socket, 1008, m).await;
                    }
                }
                Some(Ok(Message::Text(_))) => {
                    st.sessions.failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    return close(socket, 1003, "after the opening message, send audio as binary messages".into()).await;
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                // A ping or pong keeps a paused session open.
                Some(Ok(_)) => deadline = tokio::time::Instant::now() + idle,
            },
            out = out_rx.recv() => match out {
                Some(Out::Audio(a)) => {
                    if socket.send(Message::Binary(a.into())).await.is_err() {
                        return;
                    }
                }
                Some(Out::Text(t)) => {
                    if socket.send(Message::Text(t.into())).await.is_err() {
                        return;
                    }
                }
                Some(Out::Fail(m)) => {
                    st.sessions.failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    return close(socket, 1011, m).await;
                }
                None => return,
            },
            () = stopped(&mut closing) => {
                return close(socket, 1001, "the server is stopping".into()).await;
            }
        }
    }
}

/// A session's thread: each block through the chain, in order, its audio and meters sent
/// back; ends when the session's queue closes, the answer's receiver goes or the chain fails.
fn process_blocks(
    mut chain: Chain,
    in_rx: crossbeam_channel::Receiver<Vec<u8>>,
    out_tx: tokio::sync::mpsc::UnboundedSender<Out>,
    sessions: &Sessions,
    me: &Session,
) {
    for msg in in_rx {
        let t = std::time::Instant::now();
        let processed = chain.process(&msg);
        if processed.is_ok() {
            let frames = msg.len() / (4 * chain.channels.max(1));
            sessions.processed(me, frames, chain.rate, t.elapsed());
        }
        match processed {
            Ok((audio, meters)) => {
                if out_tx.send(Out::Audio(audio)).is_err() {
                    return;
                }
                for m in meters {
                    let _ = out_tx.send(Out::Text(m));
                }
            }
            Err(m) => {
                let _ = out_tx.send(Out::Fail(m.to_string()));
                return;
            }
        }
    }
}

/// Resolves when the server stops.
async fn stopped(closing: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = closing.wait_for(|c| *c).await;
}

/// A session's effects and meters.
struct Chain {
    rate: u32,
    channels: usize,
    max_frames: usize,
    latency: usize,
    names: Vec<String>,
    instances: Vec<Instance>,
    planes: Vec<Vec<f32>>,
    loudness: LoudnessMeter,
    peaks: Vec<TruePeakMeter>,
    /// Frames since the last meters, and in all.
    since_meters: usize,
    frames: u64,
    steps_reported: u64,
}

/// Why a session cannot open, or a block cannot be processed (said to the client as the close
/// reason).
#[derive(Debug, thiserror::Error)]
enum StreamError {
    #[error("{}", .0.to_string().replace("sample rate", "sample_rate"))]
    Rate(sluice_core::formats::limits::OutOfRange),
    #[error("channels {0}: give 1 to {MAX_CHANNELS}")]
    Channels(usize),
    #[error("max_frames {0}: give 1 to {MAX_FRAMES}")]
    MaxFrames(usize),
    #[error("a chain of {0} effects: at most 16")]
    ChainLength(usize),
    #[error("{0}")]
    Root(anyhow::Error),
    #[error("effect {effect:?} was refused: {why}")]
    Refused { effect: String, why: String },
    #[error("no effect {0:?} (GET /api/v1/effects lists them)")]
    NoEffect(String),
    #[error("{effect}: no parameter {param:?} (it has {has})")]
    NoParam {
        effect: String,
        param: String,
        has: String,
    },
    #[error("{effect}: {param} = {value} is outside {min} to {max}")]
    ParamRange {
        effect: String,
        param: String,
        value: f64,
        min: f64,
        max: f64,
    },
    #[error(transparent)]
    Effect(#[from] crate::effects::EffectError),
    #[error("{effect}: {message}")]
    Data { effect: String, message: String },
    #[error(
        "a block of {bytes} bytes: give interleaved 32-bit float frames of {channels} channel(s) ({} bytes each)",
        4 * .channels
    )]
    BlockBytes { bytes: usize, channels: usize },
    #[error("a block of {frames} frames: at most {max} (max_frames)")]
    BlockFrames { frames: usize, max: usize },
}

impl Chain {
    fn build(root: &std::path::Path, open: &Open) -> Result<Chain, StreamError> {
        sluice_core::formats::limits::check_rate(open.sample_rate).map_err(StreamError::Rate)?;
        if !(1..=MAX_CHANNELS).contains(&open.channels) {
            return Err(StreamError::Channels(open.channels));
        }
        let max_frames = open.max_frames.unwrap_or(MAX_FRAMES);
        if !(1..=MAX_FRAMES).contains(&max_frames) {
            return Err(StreamError::MaxFrames(max_frames));
        }
        if open.chain.len() > 16 {
            return Err(StreamError::ChainLength(open.chain.len()));
        }
        let cfg = crate::config::Config::load(root).map_err(StreamError::Root)?;
        let fx = cfg.effects().map_err(StreamError::Root)?;
        let mut instances = Vec::new();
        let mut names = Vec::new();
        let mut latency = 0;
        for c in &open.chain {
            let entry = fx
                .get(&c.effect)
                .ok_or_else(|| match fx.refusal(&c.effect) {
                    Some(why) => StreamError::Refused {
                        effect: c.effect.clone(),
                        why: why.to_string(),
                    },
                    None => StreamError::NoEffect(c.effect.clone()),
                })?;
            let d = &entry.effect.descriptor;
            let given: Vec<(String, String)> =
                c.data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            let data_err = |message: String| StreamError::Data {
                effect: d.name.clone(),
                message,
            };
            let cap = Limits::default().memory_bytes;
            let data = crate::effects::data_at_rate(d, &given, Some(root), cap, open.sample_rate)
                .map_err(data_err)?;
            let data: Vec<&[Vec<f32>]> = data.iter().map(Vec::as_slice).collect();
            let mut inst = Instance::with_data(
                fx.runtime(),
                &entry.effect,
                open.sample_rate,
                open.channels,
                max_frames,
                Limits::default(),
                &data,
            )?;
            for (k, v) in &c.params {
                let (i, p) = d
                    .params
                    .iter()
                    .enumerate()
                    .find(|(_, p)| &p.id == k)
                    .ok_or_else(|| StreamError::NoParam {
                        effect: d.name.clone(),
                        param: k.clone(),
                        has: d.param_ids(),
                    })?;
                if !v.is_finite() || *v < p.min || *v > p.max {
                    return Err(StreamError::ParamRange {
                        effect: d.name.clone(),
                        param: k.clone(),
                        value: *v,
                        min: p.min,
                        max: p.max,
                    });
                }
                inst.set_param(i, *v)?;
            }
            // The stream starts at the given values (no ramp from the defaults).
            inst.reset()?;
            latency += inst.latency()?;
            names.push(d.name.clone());
            instances.push(inst);
        }
        Ok(Chain {
            rate: open.sample_rate,
            channels: open.channels,
            max_frames,
            latency,
            names,
            instances,
            planes: vec![Vec::with_capacity(max_frames); open.channels],
            loudness: LoudnessMeter::new(open.sample_rate, vec![1.0; open.channels]),
            peaks: (0..open.channels)
                .map(|_| TruePeakMeter::new(open.sample_rate))
                .collect(),
            since_meters: 0,
            frames: 0,
            steps_reported: 0,
        })
    }

    /// One block: its processed audio, and the meters due.
    fn process(&mut self, msg: &[u8]) -> Result<(Vec<u8>, Vec<String>), StreamError> {
        let ch = self.channels;
        if msg.is_empty() || !msg.len().is_multiple_of(4 * ch) {
            return Err(StreamError::BlockBytes {
                bytes: msg.len(),
                channels: ch,
            });
        }
        let frames = msg.len() / (4 * ch);
        if frames > self.max_frames {
            return Err(StreamError::BlockFrames {
                frames,
                max: self.max_frames,
            });
        }
        for p in &mut self.planes {
            p.clear();
        }
        for (i, s) in msg.chunks_exact(4).enumerate() {
            let v = f32::from_le_bytes([s[0], s[1], s[2], s[3]]);
            self.planes[i % ch].push(if v.is_finite() { v } else { 0.0 });
        }
        for inst in &mut self.instances {
            // In pieces no longer than the effect takes at once.
            let mut at = 0;
            while at < frames {
                let n = (frames - at).min(inst.max_frames().max(1));
                let mut planes: Vec<&mut [f32]> =
                    self.planes.iter_mut().map(|p| &mut p[at..at + n]).collect();
                inst.process(&mut planes)?;
                at += n;
            }
        }
        let views: Vec<&[f32]> = self.planes.iter().map(|p| p.as_slice()).collect();
        self.loudness.feed(&views);
        for (m, p) in self.peaks.iter_mut().zip(&self.planes) {
            m.feed(p);
        }
        let mut out = Vec::with_capacity(msg.len());
        for i in 0..frames {
            for p in &self.planes {
                out.extend_from_slice(&p[i].to_le_bytes());
            }
        }
        self.frames += frames as u64;
        self.since_meters += frames;
        let mut meters = Vec::new();
        let step = (self.rate / 10) as usize;
        if self.since_meters >= step {
            self.since_meters %= step;
            let steps = self.loudness.steps().len() as u64;
            // The integrated loudness (over everything so far) once a second.
            let integrated = if steps >= self.steps_reported + 10 {
                self.steps_reported = steps;
                Some(self.loudness.summary(None).integrated_lufs)
            } else {
                None
            };
            let peak = self
                .peaks
                .iter()
                .map(TruePeakMeter::true_peak)
                .fold(0.0, f64::max);
            let mut m = serde_json::json!({
                "type": "meters",
                "seconds": self.frames as f64 / f64::from(self.rate),
                "momentary_lufs": self.loudness.momentary(),
                "short_term_lufs": self.loudness.short_term(),
                "true_peak_dbtp": if peak > 0.0 { Some(20.0 * peak.log10()) } else { None },
            });
            if let Some(i) = integrated {
                m["integrated_lufs"] = serde_json::json!(i);
            }
            meters.push(json(m));
        }
        Ok((out, meters))
    }
}

/// The real-time sessions open now and the counts since the server started, for the monitoring
/// routes (`serve/monitor.rs`).
#[derive(Default)]
pub(crate) struct Sessions {
    next: std::sync::atomic::AtomicU64,
    open: std::sync::Mutex<std::collections::BTreeMap<u64, Arc<Session>>>,
    /// Sessions that opened (their chain built), refused at the session limit, ended on an
    /// error (a bad block, a flood, a trapping effect).
    pub opened: std::sync::atomic::AtomicU64,
    pub refused: std::sync::atomic::AtomicU64,
    pub failed: std::sync::atomic::AtomicU64,
    /// Over every session, ended or open: blocks and frames processed, and the time the chains
    /// took (nanoseconds).
    pub blocks: std::sync::atomic::AtomicU64,
    pub frames: std::sync::atomic::AtomicU64,
    /// Audio processed, in nanoseconds of audio.
    pub audio_ns: std::sync::atomic::AtomicU64,
    pub busy_ns: std::sync::atomic::AtomicU64,
}

/// One open session, as the monitoring routes show it.
pub(crate) struct Session {
    pub id: u64,
    pub opened_ms: i64,
    pub sample_rate: u32,
    pub channels: usize,
    pub max_frames: usize,
    pub latency_frames: usize,
    pub effects: Vec<String>,
    /// Its queue: blocks received and waiting for the chain.
    queue: crossbeam_channel::Receiver<Vec<u8>>,
    pub blocks: std::sync::atomic::AtomicU64,
    pub frames: std::sync::atomic::AtomicU64,
}

impl Session {
    /// Blocks waiting in its queue now.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }
}

/// A session's place in [`Sessions`], given up when the session ends.
struct Registered {
    sessions: Arc<Sessions>,
    session: Arc<Session>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.sessions
            .open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.session.id);
    }
}

impl Sessions {
    /// The sessions open now, oldest first.
    pub fn open(&self) -> Vec<Arc<Session>> {
        self.open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    fn register(
        self: &Arc<Self>,
        chain: &Chain,
        queue: crossbeam_channel::Receiver<Vec<u8>>,
    ) -> Registered {
        use std::sync::atomic::Ordering::Relaxed;
        let id = self.next.fetch_add(1, Relaxed) + 1;
        self.opened.fetch_add(1, Relaxed);
        let session = Arc::new(Session {
            id,
            opened_ms: jiff::Timestamp::now().as_millisecond(),
            sample_rate: chain.rate,
            channels: chain.channels,
            max_frames: chain.max_frames,
            latency_frames: chain.latency,
            effects: chain.names.clone(),
            queue,
            blocks: Default::default(),
            frames: Default::default(),
        });
        self.open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, session.clone());
        Registered {
            sessions: self.clone(),
            session,
        }
    }

    /// A block of `frames` at `rate` went through a session's chain in `took`.
    fn processed(&self, session: &Session, frames: usize, rate: u32, took: Duration) {
        use std::sync::atomic::Ordering::Relaxed;
        session.blocks.fetch_add(1, Relaxed);
        session.frames.fetch_add(frames as u64, Relaxed);
        self.blocks.fetch_add(1, Relaxed);
        self.frames.fetch_add(frames as u64, Relaxed);
        self.busy_ns
            .fetch_add(took.as_nanos().min(u128::from(u64::MAX)) as u64, Relaxed);
        self.audio_ns.fetch_add(
            frames as u64 * 1_000_000_000 / u64::from(rate.max(1)),
            Relaxed,
        );
    }
}
