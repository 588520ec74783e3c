//! The mastering routes of the specification Sluice grew from: a track analysed in five bands
//! and compared with a genre's references (`POST /api/analyze`, `GET /api/analysis/{id}`), the
//! reference library (`GET`/`POST /api/references`, `DELETE /api/references/{id}`) and the
//! references closest to an analysed track (`POST /api/similarity/{analysis_id}`).
//!
//! The same library as `sluice ref` (the root's state database) and the same figures as
//! `sluice compare` (docs/MASTERING.md). A track's signature is measured once per content and
//! kept with its upload; an analysis records the comparison as the library stood when it ran.

use super::ErrorKind;
use super::audio::{find, keep_upload};
use super::blocking;
use super::form;
use super::{ApiError, AppState, ErrorBody};
use crate::library::{self, LibraryError, Target};
use crate::store::{self, AnalysisRecord, ReferenceRecord, UploadRecord};
use axum::Json;
use axum::extract::{DefaultBodyLimit, Multipart, Path as UrlPath, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sluice_core::analysis::compare::{self, Level};
use sluice_core::analysis::signature::{FEATURE_VERSION, SIGNATURE_VERSION, Signature};
use sluice_core::analysis::spectrum::BANDS;
use std::path::Path;
use std::sync::Arc;
use utoipa::ToSchema;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;

type St = State<Arc<AppState>>;

pub(super) fn routes(max_upload_bytes: u64) -> OpenApiRouter<Arc<AppState>> {
    let limit = usize::try_from(max_upload_bytes.saturating_add(1 << 20)).unwrap_or(usize::MAX);
    OpenApiRouter::new()
        .routes(routes!(analyze).layer(DefaultBodyLimit::max(limit)))
        .routes(routes!(analysis))
        .routes(routes!(references, add_reference).layer(DefaultBodyLimit::max(limit)))
        .routes(routes!(remove_reference))
        .routes(routes!(similarity))
}

/// The multipart form of an analysis (for the OpenAPI document).
#[derive(ToSchema)]
#[allow(dead_code)]
struct AnalyzeForm {
    /// The audio file.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
    /// Compare with this genre's references (their profile: mean and spread per figure).
    genre: Option<String>,
    /// `gentle`, `suggestive` (default) or `assertive`: how far outside the references' spread
    /// a figure may be before it is recommended on, and how firmly it is worded. The measured
    /// facts are the same at every level.
    recommendation_level: Option<String>,
}

/// The figures of the whole track.
#[derive(Serialize, ToSchema)]
struct OverallMetrics {
    /// Seconds.
    duration: f64,
    sample_rate: u32,
    integrated_lufs: f64,
    /// EBU R 128 loudness range, LU (0 when the track is too steady for a range).
    loudness_range_lu: f64,
    /// Peak-to-loudness ratio (true peak − integrated), LU.
    plr_lu: f64,
    /// Peak over RMS of the samples, dB.
    crest_db: f64,
    /// Highest short-term loudness − integrated, LU.
    max_short_term_lu: f64,
    /// Stereo width: 0 mono .. 0.5 unrelated .. 1 inverted.
    width: f64,
    /// +1 mono .. −1 inverted.
    correlation: f64,
    /// Right over left, dB.
    balance_db: f64,
    /// Onsets per second.
    onset_density: f64,
    /// Mean attack time of the onsets, ms.
    attack_ms: f64,
    /// Mean rise of the onsets over what precedes them, dB.
    transient_db: f64,
    /// Harmonic-to-noise ratio, dB.
    hnr_db: f64,
    /// Total harmonic distortion of the steady partials, %.
    thd_percent: f64,
}

/// One band's figures.
#[derive(Serialize, ToSchema)]
struct BandMetrics {
    /// `low`, `low_mid`, `mid`, `high_mid` or `high`.
    band: &'static str,
    low_hz: f64,
    high_hz: f64,
    /// The band's share of the power of the five, 0..1.
    power_share: f64,
    /// RMS level, dB re the integrated loudness.
    level_db: f64,
    crest_db: f64,
    /// Short-term loudness spread in the band (10th to 95th percentile), dB.
    spread_db: f64,
    width: f64,
    correlation: f64,
}

/// The feature vector the similarity search compares (its dimensions are named in
/// docs/MASTERING.md).
#[derive(Serialize, ToSchema)]
struct FeatureVector {
    version: u32,
    values: Vec<f32>,
}

/// One recommendation, worded for a person.
#[derive(Serialize, ToSchema)]
struct RecommendationView {
    /// The band or figure it is about (`low_mid`, `plr`, `low_width`...).
    subject: String,
    /// The measured difference it answers.
    delta: f64,
    text: String,
}

/// A mastering analysis.
#[derive(Serialize, ToSchema)]
struct MasteringAnalysis {
    analysis_id: String,
    /// `completed` (an analysis is answered once it is done).
    status: &'static str,
    /// The upload measured (the same id as `/api/audio/upload` gives).
    file_id: String,
    file_name: String,
    genre: Option<String>,
    recommendation_level: String,
    /// RFC 3339, UTC.
    created_at: Option<String>,
    overall_metrics: OverallMetrics,
    band_metrics: Vec<BandMetrics>,
    feature_vector: FeatureVector,
    /// Per band and per figure: the track, the target's mean and spread, the difference and
    /// whether it is inside the tolerance (`sluice compare`'s report); null without a genre.
    #[schema(value_type = Option<Object>)]
    comparison: Option<Value>,
    /// Empty without a genre to compare with.
    recommendations: Vec<RecommendationView>,
    /// What the client should know about the answer: a genre asked for with no references in
    /// the library, compared with Sluice's built-in profile of the genre, or, without one, with
    /// no targets (so no comparison and no recommendations).
    notes: Vec<String>,
}

fn view(rec: &AnalysisRecord, sig: &Signature) -> MasteringAnalysis {
    let powers: Vec<f64> = sig
        .bands
        .iter()
        .map(|b| 10f64.powf(b.level_db / 10.0))
        .collect();
    let total: f64 = powers.iter().sum();
    let band_metrics = BANDS
        .iter()
        .zip(&sig.bands)
        .zip(&powers)
        .map(|((&(band, low_hz, high_hz), b), p)| BandMetrics {
            band,
            low_hz,
            high_hz,
            power_share: if total > 0.0 { p / total } else { 0.0 },
            level_db: b.level_db,
            crest_db: b.crest_db,
            spread_db: b.spread_db,
            width: b.width,
            correlation: b.correlation,
        })
        .collect();
    let recommendations = rec
        .comparison
        .as_ref()
        .and_then(|c| c.get("recommendations"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|r| RecommendationView {
                    subject: r["subject"].as_str().unwrap_or_default().to_string(),
                    delta: r["delta"].as_f64().unwrap_or_default(),
                    text: r["text"].as_str().unwrap_or_default().to_string(),
                })
                .collect()
        })
        .unwrap_or_default();
    MasteringAnalysis {
        analysis_id: rec.id.to_string(),
        status: "completed",
        file_id: rec.file_id.clone(),
        file_name: rec.file_name.clone(),
        genre: rec.genre.clone(),
        recommendation_level: rec.recommendation_level.clone(),
        created_at: jiff::Timestamp::from_millisecond(rec.created_ms)
            .ok()
            .map(|t| t.to_string()),
        overall_metrics: OverallMetrics {
            duration: sig.duration_seconds,
            sample_rate: sig.sample_rate,
            integrated_lufs: sig.integrated_lufs,
            loudness_range_lu: sig.loudness_range_lu,
            plr_lu: sig.plr_lu,
            crest_db: sig.crest_db,
            max_short_term_lu: sig.max_short_term_lu,
            width: sig.width,
            correlation: sig.correlation,
            balance_db: sig.balance_db,
            onset_density: sig.onset_density,
            attack_ms: sig.attack_ms,
            transient_db: sig.transient_db,
            hnr_db: sig.hnr_db,
            thd_percent: sig.thd_percent,
        },
        band_metrics,
        feature_vector: FeatureVector {
            version: FEATURE_VERSION,
            values: sig.features(),
        },
        comparison: rec.comparison.clone(),
        recommendations,
        notes: match (&rec.genre, &rec.comparison) {
            (Some(g), None) => vec![no_targets(g)],
            (Some(g), Some(c)) => c
                .get("target")
                .and_then(Value::as_str)
                .filter(|t| t.starts_with("built-in"))
                .map(|t| vec![built_in_targets(g, t)])
                .unwrap_or_default(),
            _ => Vec::new(),
        },
    }
}

/// The note of an analysis compared with a built-in genre profile (`profile` its name).
fn built_in_targets(genre: &str, profile: &str) -> String {
    format!(
        "no references for genre `{genre}` in this library: compared with Sluice's {profile}; references of the genre added with POST /api/references take its place"
    )
}

/// The note of an analysis asked against a genre the library has no references for (and
/// Sluice has no built-in profile of).
fn no_targets(genre: &str) -> String {
    format!(
        "no references for genre `{genre}` in this library: no targets exist for it, so the analysis has no comparison and no recommendations (add references with POST /api/references, then analyse again)"
    )
}

/// A library error as the API answers it (the server's paths replaced by the client's name).
pub(super) fn library_error(e: LibraryError, path: &Path, name: &str) -> ApiError {
    let mut msg = e.to_string();
    if !path.as_os_str().is_empty() {
        msg = msg.replace(&path.display().to_string(), name);
    }
    match e {
        LibraryError::NoReferences { .. } => ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorKind::NoReferences,
            format!("{msg} (over HTTP: POST /api/references)"),
        ),
        LibraryError::UnknownReference(_) => ApiError::not_found(msg),
        LibraryError::Refused { .. } => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorKind::NotMeasurable,
            msg,
        ),
        LibraryError::Input(_) | LibraryError::Io { .. } => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorKind::UndecodableAudio,
            msg,
        ),
        LibraryError::Usage(_) | LibraryError::Ambiguous { .. } => {
            ApiError::bad_request(ErrorKind::BadField, msg)
        }
        LibraryError::Store(e) => ApiError::internal(e),
    }
}

/// The signature of an upload's content: kept with the upload once measured. Measuring runs
/// one at a time (it takes every core); a second request for the same content finds the first
/// one's result.
async fn signature(st: &Arc<AppState>, rec: &UploadRecord) -> Result<Signature, ApiError> {
    let cached = |r: &UploadRecord| {
        r.signature
            .clone()
            .filter(|s| s.version == SIGNATURE_VERSION)
    };
    if let Some(s) = cached(rec) {
        return Ok(s);
    }
    let _permit = st.heavy.acquire().await.map_err(ApiError::internal)?;
    let (work, _guard) = super::Work::start(st);
    let st = Arc::clone(st);
    let id = rec.id.clone();
    blocking(move || {
        let rec = find(&st, &id)?;
        if let Some(s) = cached(&rec) {
            return Ok(s);
        }
        let path = crate::confine::resolve(&st.root, Path::new(&rec.rel))
            .map_err(|e| ApiError::internal(e.to_string()))?;
        let lanes = std::thread::available_parallelism().map_or(2, |n| n.get());
        let sig = library::measure_until(&path, lanes, &|| work.stop()).map_err(|e| match e {
            LibraryError::Input(e @ sluice_core::InputError::Interrupted { .. }) => {
                ApiError::analysis(e, &work)
            }
            e => library_error(e, &path, &rec.file_name),
        })?;
        st.store
            .set_upload_signature(&rec.id, &sig)
            .map_err(ApiError::internal)?;
        Ok(sig)
    })
    .await
}

fn level_of(given: Option<String>) -> Result<Level, ApiError> {
    match given {
        None => Ok(Level::default()),
        Some(l) => Level::parse(&l.to_ascii_lowercase()).ok_or_else(|| {
            ApiError::bad_request(
                ErrorKind::BadField,
                format!("recommendation_level: `{l}` is not gentle, suggestive or assertive"),
            )
        }),
    }
}

/// Analyse a track in five bands and, given a genre, against that genre's references, with
/// recommendations (multipart `file`, `genre`, `recommendation_level`).
#[utoipa::path(
    post,
    path = "/api/analyze",
    operation_id = "mastering_analyze",
    tag = "mastering",
    request_body(content = AnalyzeForm, content_type = "multipart/form-data"),
    responses(
        (status = 200, description = "The analysis (also at /api/analysis/{analysis_id})", body = MasteringAnalysis),
        (status = 400, description = "No file, not audio Sluice reads, or a field it cannot take", body = ErrorBody),
        (status = 401, description = "No or wrong bearer token", body = ErrorBody),
        (status = 413, description = "Larger than the server's upload limit", body = ErrorBody),
        (status = 422, description = "Audio that cannot be measured: undecodable, silent or under 3 s", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
async fn analyze(
    State(st): St,
    form: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Result<Json<MasteringAnalysis>, ApiError> {
    let mut form = form::receive(&st, form, Some("file")).await?;
    let level = level_of(form.get("recommendation_level"))?;
    let genre = form.get("genre").map(|g| store::genre_key(&g));
    let got = form.take_file("file")?;
    // A genre with no references still gets its analysis: the answer's `notes` say that no
    // targets exist for it.
    let profile = match &genre {
        Some(g) => {
            let (st2, g) = (Arc::clone(&st), g.clone());
            blocking(
                move || match library::profile(&st2.store, &Target::Genre(g)) {
                    Ok(p) => Ok(Some(p)),
                    Err(LibraryError::NoReferences { .. }) => Ok(None),
                    Err(e) => Err(library_error(e, Path::new(""), "")),
                },
            )
            .await?
        }
        None => None,
    };
    let st2 = Arc::clone(&st);
    let up = blocking(move || keep_upload(&st2, got)).await?;
    let sig = signature(&st, &up).await?;
    let comparison = match &profile {
        Some(p) => Some(
            serde_json::to_value(compare::compare(&sig, p, level)).map_err(ApiError::internal)?,
        ),
        None => None,
    };
    let rec = AnalysisRecord {
        id: 0,
        file_id: up.id.clone(),
        file_name: up.file_name.clone(),
        genre,
        recommendation_level: level.name().to_string(),
        created_ms: store::now_ms(),
        comparison,
    };
    let st2 = Arc::clone(&st);
    let rec = blocking(move || st2.store.add_analysis(rec).map_err(ApiError::internal)).await?;
    Ok(Json(view(&rec, &sig)))
}

fn analysis_id(s: &str) -> Result<u64, ApiError> {
    s.parse()
        .map_err(|_| ApiError::not_found(format!("no analysis `{s}`")))
}

/// An analysis, with its signature.
async fn stored_analysis(
    st: &Arc<AppState>,
    id: String,
) -> Result<(AnalysisRecord, Signature), ApiError> {
    let n = analysis_id(&id)?;
    let st2 = Arc::clone(st);
    let (rec, up) = blocking(move || {
        let rec = st2
            .store
            .analysis(n)
            .map_err(ApiError::internal)?
            .ok_or_else(|| ApiError::not_found(format!("no analysis `{id}`")))?;
        let up = find(&st2, &rec.file_id)?;
        Ok((rec, up))
    })
    .await?;
    // Measured again only if this build's signature differs from the one kept.
    let sig = signature(st, &up).await?;
    Ok((rec, sig))
}

/// A mastering analysis: band metrics, overall metrics, the comparison and recommendations.
#[utoipa::path(
    get,
    path = "/api/analysis/{analysis_id}",
    operation_id = "mastering_analysis",
    tag = "mastering",
    params(("analysis_id" = String, Path, description = "The id `/api/analyze` answered with")),
    responses(
        (status = 200, description = "OK", body = MasteringAnalysis),
        (status = 404, description = "No such analysis", body = ErrorBody),
    )
)]
async fn analysis(
    State(st): St,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<MasteringAnalysis>, ApiError> {
    let (rec, sig) = stored_analysis(&st, id).await?;
    Ok(Json(view(&rec, &sig)))
}

/// A reference as the API lists it.
#[derive(Serialize, ToSchema)]
struct ReferenceView {
    reference_id: String,
    name: String,
    artist: Option<String>,
    genre: String,
    year: Option<i32>,
    /// The name of the file it was measured from.
    file_name: String,
    /// Seconds.
    duration: f64,
    sample_rate: u32,
    integrated_lufs: f64,
    /// RFC 3339, UTC.
    added_at: Option<String>,
}

impl From<&ReferenceRecord> for ReferenceView {
    fn from(r: &ReferenceRecord) -> Self {
        ReferenceView {
            reference_id: r.id.to_string(),
            name: r.name.clone(),
            artist: r.artist.clone(),
            genre: r.genre.clone(),
            year: r.year,
            file_name: r
                .source
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            duration: r.signature.duration_seconds,
            sample_rate: r.signature.sample_rate,
            integrated_lufs: r.signature.integrated_lufs,
            added_at: jiff::Timestamp::from_millisecond(r.added_ms)
                .ok()
                .map(|t| t.to_string()),
        }
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct GenreQuery {
    /// Only this genre's references (any case).
    genre: Option<String>,
}

/// The reference library, or one genre of it.
#[utoipa::path(
    get,
    path = "/api/references",
    operation_id = "references_list",
    tag = "mastering",
    params(GenreQuery),
    responses((status = 200, description = "The references, oldest first", body = Vec<ReferenceView>))
)]
async fn references(
    State(st): St,
    Query(q): Query<GenreQuery>,
) -> Result<Json<Vec<ReferenceView>>, ApiError> {
    let out = blocking(move || {
        let genre = q.genre.filter(|g| !g.trim().is_empty());
        let refs = st
            .store
            .references(genre.as_deref())
            .map_err(ApiError::internal)?;
        Ok(refs.iter().map(ReferenceView::from).collect())
    })
    .await?;
    Ok(Json(out))
}

/// The multipart form of a new reference (for the OpenAPI document).
#[derive(ToSchema)]
#[allow(dead_code)]
struct ReferenceForm {
    /// The audio file.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
    genre: String,
    /// Default: the file's title tag, else its name.
    name: Option<String>,
    /// Default: the file's artist tag.
    artist: Option<String>,
    /// Default: the file's year tag.
    year: Option<i32>,
}

/// Add a track to the reference library (multipart `file`, `genre`, `name`, `artist`, `year`).
#[utoipa::path(
    post,
    path = "/api/references",
    operation_id = "reference_add",
    tag = "mastering",
    request_body(content = ReferenceForm, content_type = "multipart/form-data"),
    responses(
        (status = 201, description = "Added", body = ReferenceView),
        (status = 400, description = "No file or genre, or not audio Sluice reads", body = ErrorBody),
        (status = 401, description = "No or wrong bearer token", body = ErrorBody),
        (status = 409, description = "The same content is a reference already (kind `exists`)", body = ErrorBody),
        (status = 413, description = "Larger than the server's upload limit", body = ErrorBody),
        (status = 422, description = "Audio that cannot be a reference: undecodable, silent or under 3 s", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
async fn add_reference(
    State(st): St,
    form: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Result<(StatusCode, Json<ReferenceView>), ApiError> {
    let mut form = form::receive(&st, form, Some("file")).await?;
    let genre = form
        .get("genre")
        .map(|g| store::genre_key(&g))
        .ok_or_else(|| ApiError::bad_request(ErrorKind::BadField, "genre: required"))?;
    let year = match form.get("year") {
        None => None,
        Some(y) => Some(y.parse::<i32>().map_err(|_| {
            ApiError::bad_request(ErrorKind::BadField, format!("year: `{y}` is not a year"))
        })?),
    };
    let (name, artist) = (form.get("name"), form.get("artist"));
    let got = form.take_file("file")?;
    let st2 = Arc::clone(&st);
    let up = blocking(move || keep_upload(&st2, got)).await?;
    let sig = signature(&st, &up).await?;
    let st2 = Arc::clone(&st);
    let added = blocking(move || {
        let path = crate::confine::resolve(&st2.root, Path::new(&up.rel))
            .map_err(|e| ApiError::internal(e.to_string()))?;
        let meta = library::Meta {
            genre: genre.clone(),
            name,
            artist,
            year,
        };
        let new = library::describe(
            path,
            Path::new(&up.file_name),
            &meta,
            &genre,
            up.id.clone(),
            sig,
        );
        st2.store.add_reference(new).map_err(ApiError::internal)
    })
    .await?;
    match added {
        Ok(rec) => {
            tracing::info!(id = rec.id, name = %rec.name, genre = %rec.genre, "reference added over HTTP");
            Ok((StatusCode::CREATED, Json(ReferenceView::from(&rec))))
        }
        Err(d) => Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorKind::Exists,
            format!("this content is reference {} ({:?}) already", d.id, d.name),
        )),
    }
}

#[derive(Serialize, ToSchema)]
struct Removed {
    message: String,
}

/// Remove a reference from the library.
#[utoipa::path(
    delete,
    path = "/api/references/{reference_id}",
    operation_id = "reference_remove",
    tag = "mastering",
    params(("reference_id" = String, Path)),
    responses(
        (status = 200, description = "Removed", body = Removed),
        (status = 401, description = "No or wrong bearer token", body = ErrorBody),
        (status = 404, description = "No such reference", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
async fn remove_reference(
    State(st): St,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<Removed>, ApiError> {
    let none = || ApiError::not_found(format!("no reference `{id}`"));
    let n: u64 = id.parse().map_err(|_| none())?;
    let removed = blocking(move || st.store.remove_reference(n).map_err(ApiError::internal))
        .await?
        .ok_or_else(none)?;
    Ok(Json(Removed {
        message: format!("reference {} ({:?}) removed", removed.id, removed.name),
    }))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct SimilarityQuery {
    /// Only this genre's references (default: the whole library).
    genre: Option<String>,
    /// How many to answer (default 5, at most 100).
    top_k: Option<usize>,
}

/// A reference near an analysed track.
#[derive(Serialize, ToSchema)]
struct SimilarReference {
    /// Centred cosine similarity of the feature vectors, −1..1 (1: the same figures).
    score: f64,
    #[serde(flatten)]
    reference: ReferenceView,
}

#[derive(Serialize, ToSchema)]
struct SimilarityAnswer {
    analysis_id: String,
    genre: Option<String>,
    /// How many references were compared.
    compared: usize,
    /// Nearest first.
    similar_references: Vec<SimilarReference>,
    /// Why the list is empty when the library (or the genre) has no references.
    notes: Vec<String>,
}

/// The references closest to an analysed track, ranked by cosine similarity of their feature
/// vectors.
#[utoipa::path(
    post,
    path = "/api/similarity/{analysis_id}",
    operation_id = "mastering_similarity",
    tag = "mastering",
    params(("analysis_id" = String, Path), SimilarityQuery),
    responses(
        (status = 200, description = "OK", body = SimilarityAnswer),
        (status = 400, description = "top_k out of range", body = ErrorBody),
        (status = 401, description = "No or wrong bearer token", body = ErrorBody),
        (status = 404, description = "No such analysis", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
async fn similarity(
    State(st): St,
    UrlPath(id): UrlPath<String>,
    Query(q): Query<SimilarityQuery>,
) -> Result<Json<SimilarityAnswer>, ApiError> {
    let top = q.top_k.unwrap_or(5);
    if !(1..=100).contains(&top) {
        return Err(ApiError::bad_request(
            ErrorKind::BadField,
            format!("top_k: {top} is not between 1 and 100"),
        ));
    }
    let (rec, sig) = stored_analysis(&st, id).await?;
    let genre = q
        .genre
        .filter(|g| !g.trim().is_empty())
        .map(|g| store::genre_key(&g));
    let out = blocking(move || {
        let mut notes = Vec::new();
        let (near, compared) =
            match library::nearest_to(&st.store, &sig.features(), genre.as_deref(), top) {
                Ok(x) => x,
                Err(LibraryError::NoReferences { .. }) => {
                    notes.push(match &genre {
                        Some(g) => format!(
                            "no references for genre `{g}` in this library: nothing to compare with (add references with POST /api/references)"
                        ),
                        None => "the reference library is empty: nothing to compare with (add references with POST /api/references)".to_string(),
                    });
                    (Vec::new(), 0)
                }
                Err(e) => return Err(library_error(e, Path::new(""), "")),
            };
        let mut similar_references = Vec::with_capacity(near.len());
        for (rid, score) in near {
            if let Some(r) = st.store.reference(rid).map_err(ApiError::internal)? {
                similar_references.push(SimilarReference {
                    score,
                    reference: ReferenceView::from(&r),
                });
            }
        }
        Ok(SimilarityAnswer {
            analysis_id: rec.id.to_string(),
            genre,
            compared,
            similar_references,
            notes,
        })
    })
    .await?;
    Ok(Json(out))
}
