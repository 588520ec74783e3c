//! The routes of the specifications Sluice grew from, with their JSON field names: uploads,
//! metadata, analysis, waveform, formats and health.
//!
//! A file's id is the BLAKE3 hash of its content (hex): the same audio uploaded twice is one
//! file, kept under the name it first came with. Uploads stream to a temporary file in
//! `uploads/.incoming/` while they are hashed (never whole in memory), are probed, and only
//! then take their place in `uploads/YYYY/MM/DD/` (a name already there gets `-2`, `-3`...);
//! a refused or broken upload leaves nothing behind.

use super::ErrorKind;
use super::blocking;
use super::form::{self, Received};
use super::{ApiError, AppState, ErrorBody};
use crate::confine;
use crate::store::UploadRecord;
use axum::Json;
use axum::extract::{DefaultBodyLimit, Multipart, Path as UrlPath, Query, State};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sluice_core::analysis::{AnalysisOptions, Section};
use std::path::Path;
use std::sync::Arc;
use utoipa::ToSchema;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;

type St = State<Arc<AppState>>;

pub(super) fn routes(max_upload_bytes: u64) -> OpenApiRouter<Arc<AppState>> {
    // The multipart body around the file: its headers and the other fields.
    let limit = usize::try_from(max_upload_bytes.saturating_add(1 << 20)).unwrap_or(usize::MAX);
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(upload).layer(DefaultBodyLimit::max(limit)))
        .routes(routes!(metadata))
        .routes(routes!(analysis))
        .routes(routes!(waveform))
        .routes(routes!(formats))
        .routes(routes!(format))
}

#[derive(Serialize, ToSchema)]
struct Health {
    /// `healthy`.
    status: &'static str,
    version: &'static str,
}

/// Whether the server is up.
#[utoipa::path(get, path = "/health",
    operation_id = "health", tag = "audio", responses((status = 200, description = "OK", body = Health)))]
async fn health() -> Json<Health> {
    Json(Health {
        status: "healthy",
        version: env!("CARGO_PKG_VERSION"),
    })
}

/// A file's facts and tags (the specification's metadata object).
#[derive(Serialize, ToSchema)]
pub(crate) struct AudioMetadata {
    /// The content's BLAKE3 hash, hex: the file's id in every route.
    file_id: String,
    file_name: String,
    /// Seconds.
    duration: Option<f64>,
    sample_rate: u32,
    channels: u32,
    /// Sluice's format id (`wav`, `flac`, `mp3`, `ogg_vorbis`, `m4a_aac`...).
    format: String,
    /// Bytes.
    file_size: u64,
    /// Bits per sample of stored PCM; null for lossy codecs.
    bit_depth: Option<u32>,
    title: Option<String>,
    artist: Option<String>,
    album: Option<String>,
    genre: Option<String>,
    year: Option<i32>,
    /// From the file's tags.
    bpm: Option<f64>,
    /// From the file's tags (`Am`, `F#`, `8A`...).
    key_signature: Option<String>,
}

fn metadata_of(rec: &UploadRecord, tags: bool) -> AudioMetadata {
    let i = &rec.info;
    let s = |p: &str| {
        i.pointer(p)
            .and_then(Value::as_str)
            .filter(|_| tags)
            .map(str::to_string)
    };
    AudioMetadata {
        file_id: rec.id.clone(),
        file_name: rec.file_name.clone(),
        duration: i.pointer("/duration_seconds").and_then(Value::as_f64),
        sample_rate: u32_at(i, "/sample_rate"),
        channels: u32_at(i, "/channels"),
        format: i
            .pointer("/format")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        file_size: rec.size,
        bit_depth: i
            .pointer("/bit_depth")
            .and_then(Value::as_u64)
            .map(|v| v as u32),
        title: s("/tags/title"),
        artist: s("/tags/artist"),
        album: s("/tags/album"),
        genre: s("/tags/genre"),
        year: i
            .pointer("/tags/year")
            .and_then(Value::as_i64)
            .filter(|_| tags)
            .map(|v| v as i32),
        bpm: i
            .pointer("/tags/bpm")
            .and_then(Value::as_f64)
            .filter(|_| tags),
        key_signature: s("/tags/initial_key"),
    }
}

fn u32_at(v: &Value, p: &str) -> u32 {
    v.pointer(p).and_then(Value::as_u64).unwrap_or(0) as u32
}

/// The multipart form of an upload (for the OpenAPI document).
#[derive(ToSchema)]
#[allow(dead_code)]
struct UploadForm {
    /// The audio file.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
    /// Read the file's tags (default true); false leaves the tag fields null.
    extract_metadata: Option<bool>,
}

/// Removes uploads in progress (`uploads/.incoming/PID-N-NAME`) of processes that are gone;
/// returns how many.
pub(super) fn sweep_incoming(root: &Path) -> usize {
    let me = std::process::id();
    let Ok(rd) = std::fs::read_dir(root.join("uploads").join(".incoming")) else {
        return 0;
    };
    rd.flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.split_once('-')
                .and_then(|(pid, _)| pid.parse::<u32>().ok())
                .is_some_and(|pid| pid != me && !Path::new(&format!("/proc/{pid}")).exists())
        })
        .filter(|e| std::fs::remove_file(e.path()).is_ok())
        .count()
}

/// Upload an audio file (multipart `file`, `extract_metadata`).
#[utoipa::path(
    post,
    path = "/api/audio/upload",
    operation_id = "upload_audio",
    tag = "audio",
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses(
        (status = 200, description = "The file's metadata", body = AudioMetadata),
        (status = 400, description = "No file, or not audio Sluice reads", body = ErrorBody),
        (status = 401, description = "No or wrong bearer token", body = ErrorBody),
        (status = 413, description = "Larger than the server's upload limit", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
async fn upload(
    State(st): St,
    form: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Result<Json<AudioMetadata>, ApiError> {
    let mut form = form::receive(&st, form, Some("file")).await?;
    let extract = form.flag("extract_metadata", true)?;
    let got = form.take_file("file")?;
    let st2 = Arc::clone(&st);
    let rec = blocking(move || keep_upload(&st2, got)).await?;
    Ok(Json(metadata_of(&rec, extract)))
}

/// Probes the uploaded file and gives it its place (or finds its content already there).
pub(super) fn keep_upload(st: &AppState, got: Received) -> Result<UploadRecord, ApiError> {
    let Received {
        tmp,
        _slot,
        name,
        hash,
        size,
    } = got;
    if let Some(old) = st.store.upload(&hash).map_err(ApiError::internal)? {
        return Ok(old);
    }
    let info = sluice_core::info(&tmp.path, &sluice_core::InfoOptions::default()).map_err(|e| {
        // The message names the client's file, not the server's temporary path.
        let msg = e
            .to_string()
            .replace(&tmp.path.display().to_string(), &name);
        ApiError::bad_request(ErrorKind::UnsupportedAudio, msg)
    })?;
    let mut info = serde_json::to_value(&info).map_err(ApiError::internal)?;
    if let Some(o) = info.as_object_mut() {
        o.remove("path");
    }
    let day = jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC);
    let dir = Path::new("uploads").join(day.strftime("%Y/%m/%d").to_string());
    let (rel, dest) = super::form::link_unique(&st.root, &dir, &name, &tmp.path)?;
    // `tmp` goes when dropped: the content stays under `dest`.
    let rec = UploadRecord {
        id: hash,
        file_name: name,
        rel: rel.to_string_lossy().into_owned(),
        size,
        uploaded_ms: crate::store::now_ms(),
        info,
        analysis: None,
        signature: None,
    };
    let kept = st.store.add_upload(&rec).map_err(ApiError::internal)?;
    if kept.rel != rec.rel {
        // The same content arrived at the same time and was recorded first.
        let _ = std::fs::remove_file(&dest);
    }
    Ok(kept)
}

/// The upload `id` names, or 404.
pub(super) fn find(st: &AppState, id: &str) -> Result<UploadRecord, ApiError> {
    let valid = id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit());
    let rec = if valid {
        st.store.upload(id).map_err(ApiError::internal)?
    } else {
        None
    };
    rec.ok_or_else(|| ApiError::not_found(format!("no uploaded file with id `{id}`")))
}

/// An uploaded file's metadata.
#[utoipa::path(
    get,
    path = "/api/audio/files/{file_id}/metadata",
    operation_id = "file_metadata",
    tag = "audio",
    params(("file_id" = String, Path, description = "The id the upload answered with")),
    responses(
        (status = 200, description = "OK", body = AudioMetadata),
        (status = 404, description = "No such item", body = ErrorBody),
    )
)]
async fn metadata(
    State(st): St,
    UrlPath(file_id): UrlPath<String>,
) -> Result<Json<AudioMetadata>, ApiError> {
    let rec = blocking(move || find(&st, &file_id)).await?;
    Ok(Json(metadata_of(&rec, true)))
}

/// The specification's analysis fields, and Sluice's whole report under `sluice`.
#[derive(Serialize, ToSchema)]
pub(crate) struct AudioAnalysis {
    file_id: String,
    /// Seconds.
    duration: Option<f64>,
    sample_rate: u32,
    channels: u32,
    /// Integrated loudness, LUFS (EBU R 128 / ITU-R BS.1770-4).
    loudness_lufs: Option<f64>,
    /// True peak, dBTP.
    loudness_peak: Option<f64>,
    /// RMS of all samples, dBFS (a full-scale sine reads −3.01).
    rms_level: Option<f64>,
    /// The "DR" figure mastering engineers know, dB.
    dynamic_range: Option<f64>,
    /// Sign changes, summed over channels.
    zero_crossings: Option<u64>,
    /// Hz.
    spectral_centroid: Option<f64>,
    /// Hz.
    spectral_bandwidth: Option<f64>,
    /// Hz (85 % of the energy below).
    spectral_rolloff: Option<f64>,
    /// Beats per minute; null where the music has no steady beat.
    tempo: Option<f64>,
    /// `A minor`, `F# major`...; null where no key is clear.
    key: Option<String>,
    /// Sluice's full analysis report (docs/ANALYSIS.md).
    #[schema(value_type = Object)]
    sluice: Value,
}

fn analysis_of(rec: &UploadRecord, report: &Value) -> AudioAnalysis {
    let f = |p: &str| report.pointer(p).and_then(Value::as_f64);
    AudioAnalysis {
        file_id: rec.id.clone(),
        duration: f("/stream/duration_seconds"),
        sample_rate: u32_at(report, "/stream/sample_rate"),
        channels: u32_at(report, "/stream/channels"),
        loudness_lufs: f("/loudness/integrated_lufs"),
        loudness_peak: f("/loudness/true_peak_dbtp"),
        rms_level: f("/levels/rms_dbfs"),
        dynamic_range: f("/levels/dynamic_range_db"),
        zero_crossings: report
            .pointer("/levels/zero_crossings")
            .and_then(Value::as_u64),
        spectral_centroid: f("/spectrum/centroid_hz"),
        spectral_bandwidth: f("/spectrum/bandwidth_hz"),
        spectral_rolloff: f("/spectrum/rolloff_hz"),
        tempo: f("/tempo/bpm"),
        key: report
            .pointer("/key/key")
            .and_then(Value::as_str)
            .map(str::to_string),
        sluice: report.clone(),
    }
}

/// Runs the analysis of an upload with `opts` on this thread and the others the machine has,
/// stopped when `work` says; errors name the file as uploaded, never the server's path.
pub(super) fn analyse_upload(
    st: &AppState,
    rec: &UploadRecord,
    opts: &AnalysisOptions,
    work: &super::Work,
) -> Result<sluice_core::analysis::AnalysisReport, ApiError> {
    let path = confine::resolve(&st.root, Path::new(&rec.rel))
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let lanes = std::thread::available_parallelism().map_or(2, |n| n.get());
    crate::analyze::analyze_file_until(&path, opts, lanes, &crate::analyze::Silent, &|| work.stop())
        .map_err(|e| {
            ApiError::analysis(e, work)
                .map_message(|m| m.replace(&path.display().to_string(), &rec.file_name))
        })
}

/// [`analyse_upload`] as the report's JSON, without the server's path.
fn analyse(
    st: &AppState,
    rec: &UploadRecord,
    opts: &AnalysisOptions,
    work: &super::Work,
) -> Result<Value, ApiError> {
    let report = analyse_upload(st, rec, opts, work)?;
    let mut v = serde_json::to_value(&report).map_err(ApiError::internal)?;
    if let Some(o) = v.as_object_mut() {
        o.remove("path");
    }
    Ok(v)
}

/// An uploaded file's analysis: run once per content, then kept.
#[utoipa::path(
    get,
    path = "/api/audio/files/{file_id}/analysis",
    operation_id = "file_analysis",
    tag = "audio",
    params(("file_id" = String, Path, description = "The id the upload answered with")),
    responses(
        (status = 200, description = "OK", body = AudioAnalysis),
        (status = 404, description = "No such item", body = ErrorBody),
        (status = 422, description = "The audio could not be decoded to its end", body = ErrorBody),
    )
)]
async fn analysis(
    State(st): St,
    UrlPath(file_id): UrlPath<String>,
) -> Result<axum::response::Response, ApiError> {
    let key = format!("analysis:{file_id}");
    if let Some(body) = st.answers.get(&key) {
        return Ok(super::json_bytes(body));
    }
    let st2 = Arc::clone(&st);
    let id = file_id.clone();
    let rec = blocking(move || find(&st2, &id)).await?;
    let out = match &rec.analysis {
        Some(a) => analysis_of(&rec, a),
        None => {
            // One analysis at a time (each takes every core); a request for the same content
            // that waited finds the first one's result.
            let _permit = st.heavy.acquire().await.map_err(ApiError::internal)?;
            let st2 = Arc::clone(&st);
            let (work, _guard) = super::Work::start(&st);
            blocking(move || {
                let st = st2;
                let rec = find(&st, &file_id)?;
                let report = match &rec.analysis {
                    Some(a) => a.clone(),
                    None => {
                        let a = analyse(&st, &rec, &AnalysisOptions::default(), &work)?;
                        st.store
                            .set_upload_analysis(&rec.id, a.clone())
                            .map_err(ApiError::internal)?;
                        a
                    }
                };
                Ok(analysis_of(&rec, &report))
            })
            .await?
        }
    };
    let body = axum::body::Bytes::from(serde_json::to_vec(&out).map_err(ApiError::internal)?);
    // Under the upload's id (its content's hash): the same for as long as the content is.
    st.answers
        .put(format!("analysis:{}", out.file_id), body.clone());
    Ok(super::json_bytes(body))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct WaveformQuery {
    /// Points wanted (1 to 100,000; default 1000).
    target_length: Option<usize>,
}

/// The waveform overview (the specification's object).
#[derive(Serialize, ToSchema)]
pub(crate) struct WaveformPeaks {
    /// Per point, the largest magnitude of any channel in its stretch of time (0..1).
    peaks: Vec<f32>,
    /// The number of points.
    length: usize,
    sample_rate: u32,
    /// Seconds each point covers.
    seconds_per_point: f64,
}

const MAX_WAVEFORM: usize = 100_000;

/// An uploaded file's waveform overview, `target_length` points.
#[utoipa::path(
    get,
    path = "/api/audio/files/{file_id}/waveform",
    operation_id = "file_waveform",
    tag = "audio",
    params(
        ("file_id" = String, Path, description = "The id the upload answered with"),
        WaveformQuery
    ),
    responses(
        (status = 200, description = "OK", body = WaveformPeaks),
        (status = 400, description = "A field or form the server cannot take", body = ErrorBody),
        (status = 404, description = "No such item", body = ErrorBody),
    )
)]
async fn waveform(
    State(st): St,
    UrlPath(file_id): UrlPath<String>,
    Query(q): Query<WaveformQuery>,
) -> Result<Json<WaveformPeaks>, ApiError> {
    let n = q.target_length.unwrap_or(1000);
    if n == 0 || n > MAX_WAVEFORM {
        return Err(ApiError::bad_request(
            ErrorKind::BadField,
            format!("target_length: {n} is not between 1 and {MAX_WAVEFORM}"),
        ));
    }
    let st2 = Arc::clone(&st);
    let id = file_id.clone();
    let rec = blocking(move || find(&st2, &id)).await?;
    let kept = rec.analysis.is_some() && n == AnalysisOptions::default().waveform_buckets;
    // A waveform of another resolution decodes the file: in the analyses' queue, one at a time.
    let _permit = if kept {
        None
    } else {
        Some(st.heavy.acquire().await.map_err(ApiError::internal)?)
    };
    let (work, _guard) = super::Work::start(&st);
    let st2 = Arc::clone(&st);
    let out = blocking(move || {
        let st = st2;
        let rec = find(&st, &file_id)?;
        let default = AnalysisOptions::default();
        let report = match &rec.analysis {
            Some(a) if n == default.waveform_buckets => a.clone(),
            _ => {
                let opts = AnalysisOptions {
                    sections: vec![Section::Waveform],
                    waveform_buckets: n,
                    ..default
                };
                analyse(&st, &rec, &opts, &work)?
            }
        };
        let w = report
            .get("waveform")
            .ok_or_else(|| ApiError::internal("no waveform in the report"))?;
        let buckets = w.get("buckets").and_then(Value::as_u64).unwrap_or(0) as usize;
        let mut peaks = vec![0f32; buckets];
        let values = |c: &Value, k: &str| -> Vec<f32> {
            c.get(k)
                .and_then(Value::as_array)
                .map(|a| a.iter().map(|v| v.as_f64().unwrap_or(0.0) as f32).collect())
                .unwrap_or_default()
        };
        for c in w
            .get("channels")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            for (p, (lo, hi)) in peaks
                .iter_mut()
                .zip(values(c, "min").into_iter().zip(values(c, "max")))
            {
                *p = p.max(lo.abs()).max(hi.abs());
            }
        }
        let seconds_per_point = w
            .get("bucket_seconds")
            .and_then(Value::as_f64)
            .unwrap_or(0.0);
        Ok(WaveformPeaks {
            length: peaks.len(),
            peaks,
            sample_rate: u32_at(&report, "/stream/sample_rate"),
            seconds_per_point,
        })
    })
    .await?;
    Ok(Json(out))
}

/// The formats Sluice writes.
/// One output format (the specification's object).
#[derive(Serialize, ToSchema)]
struct FormatDetail {
    name: String,
    /// The usual extension.
    extension: String,
    /// `lossless` or `lossy`.
    compression: String,
    /// What sets the quality: `lossless`, or the encoder's settings.
    quality: String,
    /// The highest rate an export writes in this format.
    max_sample_rate: u32,
    /// Bits of integer PCM; null for lossy formats.
    max_bit_depth: Option<u32>,
    /// The integer bit depths an export writes in this format (`settings.bit_depth`).
    supported_bit_depths: Vec<u32>,
    /// Bytes per minute of 44.1 kHz stereo at the default settings (for lossless
    /// compression, typical music).
    file_size_estimate: u64,
}

/// The formats export writes, each with the codec that writes it.
fn writable() -> Vec<(
    &'static sluice_core::formats::FormatInfo,
    &'static dyn sluice_core::formats::OutputCodec,
)> {
    sluice_core::encode::formats()
        .into_iter()
        .filter(|l| l.encode)
        .filter_map(|l| {
            sluice_core::encode::codecs()
                .find(|c| c.about().writes.contains(&l.info.id))
                .map(|c| (l.info, c))
        })
        .collect()
}

/// Output formats: the file extensions export writes (the specification's array).
#[utoipa::path(get, path = "/api/audio/formats",
    operation_id = "list_formats", tag = "audio", responses((status = 200, description = "The file extensions export writes", body = Vec<String>)))]
async fn formats() -> Json<Vec<String>> {
    let mut extensions: Vec<String> = Vec::new();
    for (f, _) in writable() {
        for e in f.extensions {
            if !extensions.iter().any(|x| x == e) {
                extensions.push(e.to_string());
            }
        }
    }
    Json(extensions)
}

/// One output format, by name or extension.
#[utoipa::path(
    get,
    path = "/api/audio/formats/{name}",
    operation_id = "get_format",
    tag = "audio",
    params(("name" = String, Path, description = "A format id (`wav`, `flac`...) or extension")),
    responses((status = 200, description = "OK", body = FormatDetail), (status = 404, description = "No such item", body = ErrorBody))
)]
async fn format(UrlPath(name): UrlPath<String>) -> Result<Json<FormatDetail>, ApiError> {
    let lower = name.to_ascii_lowercase();
    let (f, codec) = writable()
        .into_iter()
        .find(|(f, _)| f.id == lower || f.extensions.contains(&lower.as_str()))
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "no output format `{name}` (formats: {})",
                sluice_core::encode::codec_names()
            ))
        })?;
    let about = codec.about();
    // What export writes: the codec's bit depths, and its rates within what Sluice renders.
    let depths: Vec<u32> = about
        .options
        .iter()
        .find_map(|o| match (o.opt, o.values) {
            (
                sluice_core::formats::Opt::BitDepth,
                sluice_core::formats::Values::Depths { int, .. },
            ) => Some(int.to_vec()),
            _ => None,
        })
        .unwrap_or_default();
    let rendered = *sluice_core::formats::limits::SAMPLE_RATES.end();
    let max_sample_rate = about
        .constraints
        .sample_rates
        .and_then(|r| r.iter().copied().max())
        .unwrap_or(rendered)
        .min(rendered)
        .min(f.max_sample_rate);
    Ok(Json(FormatDetail {
        name: f.id.to_string(),
        extension: about.extension.to_string(),
        compression: if f.lossless { "lossless" } else { "lossy" }.to_string(),
        quality: about.settings.to_string(),
        max_sample_rate,
        max_bit_depth: depths.iter().copied().max(),
        supported_bit_depths: depths,
        file_size_estimate: about.minute_bytes,
    }))
}
