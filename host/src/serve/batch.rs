//! Batches of exports (the specification's routes): created with their files and settings,
//! processed in the background on the server's export workers, polled for progress. Kept in
//! the state database: a batch the server was processing when it stopped is `pending` again
//! at the next start, its finished files finished, and processing it again does the rest.
//!
//! Every export the server makes — a batch's files and single exports alike — runs in one of
//! the root's `workers` slots (the watch-folder host's count of workers, by default the number
//! of cores): a batch's files spread over the free slots, and two batches share them instead
//! of each taking every core. A file that cannot be exported is recorded as failed with its
//! reason (the batch goes on with the others); its upload stays as it was.

use super::ErrorKind;
use super::audio::find;
use super::blocking;
use super::export::{AREA, ExportSettings, export_target, run_export, with_extension};
use super::{ApiError, AppState, ErrorBody, Work};
use crate::store::BatchStatus as BatchState;
use crate::store::{BatchFile, BatchRecord, FileStatus};
use axum::Json;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(super) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(create))
        .routes(routes!(process))
        .routes(routes!(status))
}

/// The server's export slots: at most `capacity` exports at once, the others waiting.
pub(crate) struct Slots {
    capacity: usize,
    /// Running, waiting.
    now: Mutex<(usize, usize)>,
    freed: std::sync::Condvar,
}

/// A taken slot, given back when dropped.
pub(crate) struct Slot<'a>(&'a Slots);

impl Slots {
    pub(crate) fn new(capacity: usize) -> Slots {
        Slots {
            capacity: capacity.max(1),
            now: Mutex::new((0, 0)),
            freed: std::sync::Condvar::new(),
        }
    }

    /// Exports running, exports waiting for a slot, and the slots.
    pub(crate) fn counts(&self) -> (usize, usize, usize) {
        let (running, waiting) = *self.now.lock().unwrap_or_else(|e| e.into_inner());
        (running, waiting, self.capacity)
    }

    /// Waits for a free slot (call from a blocking thread).
    pub(crate) fn take(&self) -> Slot<'_> {
        let mut now = self.now.lock().unwrap_or_else(|e| e.into_inner());
        now.1 += 1;
        while now.0 >= self.capacity {
            now = self.freed.wait(now).unwrap_or_else(|e| e.into_inner());
        }
        now.1 -= 1;
        now.0 += 1;
        Slot(self)
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Exports running and waiting now.
    pub(crate) fn now(&self) -> (usize, usize) {
        *self.now.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut now = self.0.now.lock().unwrap_or_else(|e| e.into_inner());
        now.0 -= 1;
        self.0.freed.notify_one();
    }
}

/// The share done of each batch being processed now, between its files.
#[derive(Default)]
pub(crate) struct Live(Mutex<HashMap<u64, f64>>);

impl Live {
    fn set(&self, id: u64, p: f64) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, p);
    }
    fn get(&self, id: u64) -> Option<f64> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .copied()
    }
    fn end(&self, id: u64) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct BatchCreate {
    /// Ids of uploaded files.
    input_files: Vec<String>,
    #[serde(default)]
    export_settings: ExportSettings,
    /// Inside the root's `exports/` folder; each file is written there as its upload's name
    /// with the format's extension.
    output_directory: String,
}

#[derive(Serialize, ToSchema)]
struct BatchCreated {
    job_id: String,
}

#[derive(Serialize, ToSchema)]
struct BatchMessage {
    message: String,
}

#[derive(Serialize, ToSchema)]
struct BatchStatus {
    job_id: String,
    /// `pending`, `processing`, `completed` or `failed` (every file failed).
    status: String,
    /// 0..1.
    progress: f64,
    /// Output paths written, relative to `exports/`.
    completed_files: Vec<String>,
    /// The file ids that failed, each with its reason in `errors`.
    failed_files: Vec<String>,
    errors: Vec<BatchError>,
    /// RFC 3339, UTC.
    start_time: Option<String>,
    end_time: Option<String>,
}

#[derive(Serialize, ToSchema)]
struct BatchError {
    file_id: String,
    error: String,
}

fn batch_id(s: &str) -> Result<u64, ApiError> {
    s.parse()
        .map_err(|_| ApiError::not_found(format!("no batch `{s}`")))
}

/// Create a batch of exports (not started until processed).
#[utoipa::path(
    post,
    path = "/api/audio/batch/create",
    operation_id = "batch_create",
    tag = "audio",
    request_body = BatchCreate,
    responses(
        (status = 200, description = "OK", body = BatchCreated),
        (status = 400, description = "A field or form the server cannot take", body = ErrorBody),
        (status = 404, description = "An input file is not uploaded", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
async fn create(
    State(st): State<Arc<AppState>>,
    req: Result<Json<BatchCreate>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<BatchCreated>, ApiError> {
    let Json(req) = req?;
    let rec = blocking(move || {
        if req.input_files.is_empty() {
            return Err(ApiError::bad_request(
                ErrorKind::BadField,
                "input_files: name at least one uploaded file",
            ));
        }
        for id in &req.input_files {
            find(&st, id)?;
        }
        // Checked now, so a batch that would write out of the area is never made.
        let probe = Path::new(&req.output_directory).join("x");
        export_target(&st.root, &probe.to_string_lossy())?;
        let rec = BatchRecord {
            id: 0,
            status: BatchState::Pending,
            settings: serde_json::to_value(&req.export_settings).map_err(ApiError::internal)?,
            output_directory: req.output_directory.clone(),
            files: req
                .input_files
                .iter()
                .map(|f| BatchFile {
                    file_id: f.clone(),
                    status: FileStatus::Pending,
                    output_path: None,
                    error: None,
                })
                .collect(),
            created_ms: crate::store::now_ms(),
            start_ms: None,
            end_ms: None,
        };
        st.store.add_batch(rec).map_err(ApiError::internal)
    })
    .await?;
    Ok(Json(BatchCreated {
        job_id: rec.id.to_string(),
    }))
}

/// Start processing a batch in the background.
#[utoipa::path(
    post,
    path = "/api/audio/batch/{job_id}/process",
    operation_id = "batch_process",
    tag = "audio",
    params(("job_id" = String, Path)),
    responses(
        (status = 200, description = "OK", body = BatchMessage),
        (status = 404, description = "No such item", body = ErrorBody),
        (status = 409, description = "Already processing", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
async fn process(
    State(st): State<Arc<AppState>>,
    UrlPath(job_id): UrlPath<String>,
) -> Result<Json<BatchMessage>, ApiError> {
    let id = batch_id(&job_id)?;
    let st2 = Arc::clone(&st);
    // Claimed in one transaction: two calls never both start it.
    let claimed = blocking(move || {
        st2.store
            .update_batch(id, |b| {
                if matches!(b.status, BatchState::Processing | BatchState::Completed) {
                    return false;
                }
                b.status = BatchState::Processing;
                b.start_ms.get_or_insert(crate::store::now_ms());
                b.end_ms = None;
                true
            })
            .map_err(ApiError::internal)?
            .ok_or_else(|| ApiError::not_found(format!("no batch `{id}`")))
    })
    .await?;
    let (rec, started) = claimed;
    if !started {
        return match rec.status {
            BatchState::Completed => Ok(Json(BatchMessage {
                message: format!("batch {id} is already completed"),
            })),
            _ => Err(ApiError::new(
                StatusCode::CONFLICT,
                ErrorKind::Busy,
                format!("batch {id} is already processing"),
            )),
        };
    }
    st.live.set(id, progress_of(&rec, 0.0));
    let n = rec.files.len();
    tokio::task::spawn_blocking(move || run_batch(&st, rec));
    Ok(Json(BatchMessage {
        message: format!("batch {id}: processing {n} file(s)"),
    }))
}

fn progress_of(rec: &BatchRecord, current: f64) -> f64 {
    let n = rec.files.len().max(1) as f64;
    let done = rec
        .files
        .iter()
        .filter(|f| f.status != FileStatus::Pending)
        .count() as f64;
    ((done + current) / n).min(1.0)
}

/// Exports the pending files of the batch on the server's export slots, recording each as it
/// ends.
fn run_batch(st: &AppState, rec: BatchRecord) {
    let id = rec.id;
    let settings: ExportSettings = serde_json::from_value(rec.settings.clone()).unwrap_or_default();
    let n = rec.files.len().max(1) as f64;
    let pending: Vec<usize> = (0..rec.files.len())
        .filter(|&i| rec.files[i].status == FileStatus::Pending)
        .collect();
    // Files finished (by this run or an earlier one), and the share done of each running
    // one: the progress, only ever rising (set under the one lock).
    let shares = Mutex::new((
        rec.files
            .iter()
            .filter(|f| f.status != FileStatus::Pending)
            .count(),
        vec![0.0f64; rec.files.len()],
    ));
    let report = |i: usize, p: Option<f64>| {
        let mut s = shares.lock().unwrap_or_else(|e| e.into_inner());
        match p {
            Some(p) => s.1[i] = p.clamp(0.0, 1.0),
            None => {
                s.0 += 1;
                s.1[i] = 0.0;
            }
        }
        let running: f64 = s.1.iter().sum();
        st.live.set(id, ((s.0 as f64 + running) / n).min(1.0));
    };
    let stopped = std::sync::atomic::AtomicBool::new(false);
    crate::parallel::map(&pending, st.exports.capacity(), |&i| {
        // A server that is stopping starts no more files (the batch resumes at the next start).
        if *st.closing.borrow() {
            stopped.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        if stopped.load(std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        let _slot = st.exports.take();
        let f = &rec.files[i];
        let outcome = find(st, &f.file_id).and_then(|up| {
            let stem = up
                .file_name
                .rsplit_once('.')
                .map_or(up.file_name.as_str(), |(s, _)| s);
            let planned =
                with_extension(&up, &format!("{}/{stem}", rec.output_directory), &settings)?;
            // An output planned by a run that was stopped after its rename (which is atomic)
            // and before its record: that file is this one, whole.
            if f.output_path.as_deref() == Some(planned.as_str())
                && st.root.join(AREA).join(&planned).is_file()
            {
                return Ok(planned);
            }
            st.store
                .update_batch(id, |b| {
                    if let Some(g) = b.files.get_mut(i) {
                        g.output_path = Some(planned.clone());
                    }
                    true
                })
                .map_err(ApiError::internal)?;
            run_export(
                st,
                &up,
                &planned,
                &settings,
                (None, None),
                &Arc::new(Work::background(st)),
                &mut |p| report(i, Some(p)),
            )
            .map(|done| done.output_path)
        });
        // Stopped with the server: the file stays pending, and the batch resumes with it at
        // the next start (its output was never renamed into place).
        if outcome
            .as_ref()
            .is_err_and(|e| e.kind == ErrorKind::Stopping)
        {
            stopped.store(true, std::sync::atomic::Ordering::SeqCst);
            return;
        }
        let stored = st.store.update_batch(id, |b| {
            if let Some(g) = b.files.get_mut(i) {
                match &outcome {
                    Ok(path) => {
                        g.status = FileStatus::Completed;
                        g.output_path = Some(path.clone());
                    }
                    Err(e) => {
                        g.status = FileStatus::Failed;
                        g.output_path = None;
                        g.error = Some(e.message.clone());
                    }
                }
            }
            true
        });
        match stored {
            Ok(Some(_)) => report(i, None),
            Ok(None) => stopped.store(true, std::sync::atomic::Ordering::SeqCst),
            Err(e) => {
                tracing::error!("batch {id}: {e}");
                stopped.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        }
    });
    if stopped.load(std::sync::atomic::Ordering::SeqCst) {
        st.live.end(id);
        return;
    }
    let ended = st.store.update_batch(id, |b| {
        let all_failed = b.files.iter().all(|f| f.status == FileStatus::Failed);
        b.status = if all_failed {
            BatchState::Failed
        } else {
            BatchState::Completed
        };
        b.end_ms = Some(crate::store::now_ms());
        true
    });
    if let Err(e) = ended {
        tracing::error!("batch {id}: {e}");
    }
    st.live.end(id);
}

/// A batch's status and progress.
#[utoipa::path(
    get,
    path = "/api/audio/batch/{job_id}",
    operation_id = "batch_status",
    tag = "audio",
    params(("job_id" = String, Path)),
    responses((status = 200, description = "OK", body = BatchStatus), (status = 404, description = "No such item", body = ErrorBody))
)]
async fn status(
    State(st): State<Arc<AppState>>,
    UrlPath(job_id): UrlPath<String>,
) -> Result<Json<BatchStatus>, ApiError> {
    let id = batch_id(&job_id)?;
    // The live progress first, the record after: the run writes the record's last file and
    // status before it drops its live progress, so either the live value is read, or the run
    // had ended and the record read after it is final. (Read the other way round, a run ending
    // between the two reads left a stale "processing" record without its live value, and the
    // progress fell back to the files done before the last: 0.92, then 0.67, then 1.)
    let live = st.live.get(id);
    let st2 = Arc::clone(&st);
    let rec = blocking(move || {
        st2.store
            .batch(id)
            .map_err(ApiError::internal)?
            .ok_or_else(|| ApiError::not_found(format!("no batch `{id}`")))
    })
    .await?;
    let progress = match rec.status {
        BatchState::Completed | BatchState::Failed => 1.0,
        BatchState::Processing => live.unwrap_or_else(|| progress_of(&rec, 0.0)),
        _ => progress_of(&rec, 0.0),
    };
    Ok(Json(BatchStatus {
        job_id: id.to_string(),
        status: rec.status.as_str().to_string(),
        progress,
        completed_files: rec
            .files
            .iter()
            .filter(|f| f.status == FileStatus::Completed)
            .filter_map(|f| f.output_path.clone())
            .collect(),
        failed_files: rec
            .files
            .iter()
            .filter(|f| f.status == FileStatus::Failed)
            .map(|f| f.file_id.clone())
            .collect(),
        errors: rec
            .files
            .iter()
            .filter_map(|f| {
                f.error.clone().map(|error| BatchError {
                    file_id: f.file_id.clone(),
                    error,
                })
            })
            .collect(),
        start_time: super::rfc3339(rec.start_ms),
        end_time: super::rfc3339(rec.end_ms),
    }))
}
