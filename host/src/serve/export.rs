//! `POST /api/audio/export`: an uploaded file rendered by the same code as `sluice export`,
//! into the root's export area (`exports/`) and nowhere else.

use super::ErrorKind;
use super::audio::find;
use super::blocking;
use super::{ApiError, AppState, ErrorBody, Work};
use crate::confine;
use crate::export::{Destination, ExportOrder, OrderError, Trim};
use crate::store::UploadRecord;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sluice_core::block::ChannelMapping;
use sluice_core::export::ExportError;
use sluice_core::formats::{OptionNames, Request};
use sluice_core::render::RenderError;
use sluice_core::render::dither::DitherMode;
use sluice_core::render::normalize::NormalizeTarget;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(super) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new().routes(routes!(export))
}

/// The folder of the root that exports are written into.
pub(crate) const AREA: &str = "exports";

/// An export's settings (the specification's object; every field optional).
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExportSettings {
    /// `wav`, `flac`, `mp3`, `ogg`, `opus`, `m4a` (AAC), `alac`... (default: from
    /// `output_path`'s extension; `sluice formats` lists them).
    format: Option<String>,
    sample_rate: Option<u32>,
    /// 8, 16, 24 or 32 (integer PCM).
    bit_depth: Option<u32>,
    /// 1 (mono) or 2 (stereo).
    channels: Option<u32>,
    /// The lossy encoders' quality (MP3 VBR 0-9, Vorbis −1 to 10).
    quality: Option<f32>,
    /// `none`, `triangular` (TPDF, the default) or `shaped`.
    dither: Option<String>,
    /// Normalize the integrated loudness to `normalize_target` (with a −1 dBTP ceiling).
    normalize: Option<bool>,
    /// LUFS (default −14).
    normalize_target: Option<f64>,
    trim_silence: Option<bool>,
    /// Seconds.
    fade_in: Option<f64>,
    /// Seconds.
    fade_out: Option<f64>,
    /// Sluice's addition: effects run in order after the resampling and before the fades and
    /// the normalization (the root's effects: built in, and its effects folder's), as the
    /// live stream names them (`GET /api/v1/effects` lists them with their parameters).
    effects: Option<Vec<ExportEffect>>,
    /// Sluice's addition: time stretch after the effects, this many times as fast at the same
    /// pitch (0.25 to 4; 1.25 plays in 80 % of the time).
    speed: Option<f64>,
}

/// One effect of an export: its name and its parameters (numbers, switches, or a choice's
/// name).
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExportEffect {
    effect: String,
    #[serde(default)]
    #[schema(value_type = Object)]
    params: serde_json::Map<String, Value>,
    /// Audio files for the effect's data slots, by slot (`{"ir": "irs/hall.wav"}` for
    /// `convolve`'s impulse response), inside the root.
    #[serde(default)]
    #[schema(value_type = Object)]
    data: std::collections::BTreeMap<String, String>,
}

/// The most effects one export runs (as a live stream's chain).
const MAX_EFFECTS: usize = 16;

/// The effect steps `effects` ask for, each parameter a number, a switch or a text.
fn effect_steps(
    effects: &[ExportEffect],
    root: &Path,
    catalog: Option<&crate::effects::Catalog>,
) -> Result<Vec<sluice_core::render::steps::EffectStep>, ApiError> {
    use sluice_core::render::steps::{EffectStep, ParamValue};
    let bad = |m: String| ApiError::bad_request(ErrorKind::BadField, m);
    if effects.len() > MAX_EFFECTS {
        return Err(bad(format!(
            "settings.effects: {} effects; an export runs at most {MAX_EFFECTS}",
            effects.len()
        )));
    }
    effects
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let params = e
                .params
                .iter()
                .map(|(k, v)| {
                    let value = match v {
                        Value::Bool(b) => ParamValue::Bool(*b),
                        Value::Number(n) => ParamValue::Number(n.as_f64().unwrap_or(f64::NAN)),
                        Value::String(t) => ParamValue::Text(t.clone()),
                        other => {
                            return Err(bad(format!(
                                "settings.effects[{i}].params.{k}: {other}: give a number, true or false, or a choice's name"
                            )));
                        }
                    };
                    Ok((k.clone(), value))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let data = e
                .data
                .iter()
                .map(|(k, rel)| {
                    let path = crate::effects::data::locate(Some(root), rel).map_err(|m| {
                        bad(format!("settings.effects[{i}].data.{k}: {m}"))
                    })?;
                    if !path.is_file() {
                        return Err(bad(format!(
                            "settings.effects[{i}].data.{k}: {rel} is not a file in the root"
                        )));
                    }
                    // Read now, so that a file that is no audio (or too long) is a 400 too.
                    if let Some(slot) = catalog
                        .and_then(|c| c.get(&e.effect))
                        .and_then(|x| x.effect.descriptor.data_slot(k).map(|(_, s)| s.clone()))
                    {
                        let cap = crate::effects::Limits::default().memory_bytes;
                        crate::effects::data::load(&path, rel, &slot, cap).map_err(|m| {
                            bad(format!("settings.effects[{i}].data.{k}: {m}"))
                        })?;
                    }
                    Ok((k.clone(), path.to_string_lossy().into_owned()))
                })
                .collect::<Result<Vec<_>, _>>()?;
            if let Some(d) = catalog.and_then(|c| c.get(&e.effect)).map(|x| &x.effect.descriptor)
                && let Some(m) = crate::effects::data_problems(d, &data).into_iter().next()
            {
                return Err(bad(format!("settings.effects[{i}]: effect {}: {m}", e.effect)));
            }
            Ok(EffectStep {
                name: e.effect.clone(),
                params,
                time_budget_ms: None,
                memory_mb: None,
                data,
            })
        })
        .collect()
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExportRequest {
    file_id: String,
    /// Where to write, inside the root's `exports/` folder (relative, or absolute inside it).
    output_path: String,
    #[serde(default)]
    settings: ExportSettings,
    /// Seconds from the start of the file.
    start_time: Option<f64>,
    /// Seconds from the start of the file.
    end_time: Option<f64>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct ExportResponse {
    /// The file written, relative to the root's `exports/` folder.
    pub(super) output_path: String,
    /// Settings the format could not take as asked, and what was done instead.
    warnings: Vec<String>,
    /// Sluice's export report (format, loudness, true peak of the file as written...).
    #[schema(value_type = Object)]
    sluice: Value,
}

/// `given` inside the export area: the path relative to it, or a refusal for anything that
/// would leave it (`..`, an absolute path elsewhere, a symbolic link out of it).
pub(crate) fn export_target(root: &Path, given: &str) -> Result<(PathBuf, PathBuf), ApiError> {
    let escape = |why: &str| {
        ApiError::bad_request(
            ErrorKind::PathEscape,
            format!("{given}: {why}; exports are written inside the export area only"),
        )
    };
    let area = root.join(AREA);
    std::fs::create_dir_all(&area).map_err(ApiError::internal)?;
    let path = Path::new(given);
    let rel = if path.is_absolute() {
        let canon_area = area.canonicalize().map_err(ApiError::internal)?;
        path.strip_prefix(&area)
            .or_else(|_| path.strip_prefix(&canon_area))
            .map_err(|_| escape("an absolute path outside the export area"))?
            .to_path_buf()
    } else {
        path.to_path_buf()
    };
    if rel.as_os_str().is_empty() || rel.components().any(|c| !matches!(c, Component::Normal(_))) {
        return Err(escape("not a plain path (no `..`, no root)"));
    }
    // Confined to the area itself, step by step: a link on the way that leads out of it is
    // refused before any folder is made behind it (made first, then refused, before).
    let full = confine::prepare(&area, &rel).map_err(|e| {
        if e.is_io() {
            ApiError::internal(e)
        } else {
            escape("a symbolic link on the way leads out of the export area")
        }
    })?;
    // Inside the root is not enough: a link in the area to elsewhere in the root is refused.
    let canon_area = area.canonicalize().map_err(ApiError::internal)?;
    let parent = full
        .parent()
        .and_then(|p| p.canonicalize().ok())
        .ok_or_else(|| escape("its folder cannot be made"))?;
    if !parent.starts_with(&canon_area) {
        return Err(escape(
            "a symbolic link on the way leads out of the export area",
        ));
    }
    if full
        .symlink_metadata()
        .is_ok_and(|m| m.file_type().is_symlink())
    {
        return Err(escape("a symbolic link"));
    }
    Ok((rel, full))
}

/// How the export request's JSON spells the format options, for messages about them.
const SETTINGS_NAMES: OptionNames = OptionNames {
    bit_depth: "settings.bit_depth",
    quality: "settings.quality",
    bitrate: "settings.bitrate_kbps",
    compression_level: "settings.compression_level",
    sample_rate: "settings.sample_rate",
};

/// The export of `input` to `out` that a request's settings ask for (messages name the
/// request's fields).
fn order(
    root: &Path,
    input: &Path,
    out: &Path,
    s: &ExportSettings,
    (start, end): (Option<f64>, Option<f64>),
) -> Result<ExportOrder, ApiError> {
    let bad = |m: String| ApiError::bad_request(ErrorKind::BadField, m);
    let codec = crate::export::codec_for(s.format.as_deref(), Some(out), "settings.format")
        .map_err(|e| bad(e.to_string()))?;
    let request = Request {
        codec,
        bit_depth: s.bit_depth.map(|b| b.to_string()),
        quality: s.quality,
        bitrate_kbps: None,
        compression_level: None,
    };
    let mut o = ExportOrder::new(
        vec![input.to_path_buf()],
        Destination::File(out.to_path_buf()),
        request,
        SETTINGS_NAMES,
    );
    o.sample_rate = s.sample_rate;
    o.channels = match s.channels {
        None => None,
        Some(1) => Some(ChannelMapping::Mono),
        Some(2) => Some(ChannelMapping::Stereo),
        Some(n) => {
            return Err(bad(format!(
                "settings.channels: {n}: choose 1 (mono) or 2 (stereo)"
            )));
        }
    };
    if let Some(d) = &s.dither {
        o.dither = match d.to_ascii_lowercase().as_str() {
            "triangular" => DitherMode::Tpdf,
            other => DitherMode::parse(other).ok_or_else(|| {
                bad(format!(
                    "settings.dither: `{d}`: choose none, triangular or shaped"
                ))
            })?,
        };
    }
    if s.normalize == Some(true) {
        let lufs = s.normalize_target.unwrap_or(-14.0);
        if !(-70.0..=0.0).contains(&lufs) {
            return Err(bad(format!(
                "settings.normalize_target: {lufs}: a loudness from -70 to 0 LUFS"
            )));
        }
        o.normalize = Some(NormalizeTarget::Loudness {
            lufs,
            true_peak_dbtp: -1.0,
            limiter: true,
            rule: Default::default(),
        });
    }
    let seconds = |name: &str, v: Option<f64>| match v {
        Some(t) if !(t >= 0.0 && t.is_finite()) => {
            Err(bad(format!("{name}: {t}: a time in seconds, 0 or more")))
        }
        v => Ok(v),
    };
    o.fade_in = seconds("settings.fade_in", s.fade_in)?.unwrap_or(0.0);
    o.fade_out = seconds("settings.fade_out", s.fade_out)?.unwrap_or(0.0);
    let (start, end) = (seconds("start_time", start)?, seconds("end_time", end)?);
    if let (Some(a), Some(b)) = (start, end)
        && b <= a
    {
        return Err(bad(format!("end_time {b} is not after start_time {a}")));
    }
    o.region = (start.is_some() || end.is_some()).then(|| (start.unwrap_or(0.0), end));
    o.trim = (s.trim_silence == Some(true)).then(Trim::default);
    if let Some(speed) = s.speed {
        if !sluice_core::render::stretch::SPEEDS.contains(&speed) {
            return Err(bad(format!(
                "settings.speed: {speed}: from 0.25 (four times as long) to 4 (a quarter of the time)"
            )));
        }
        o.speed = Some(speed);
    }
    if let Some(effects) = s.effects.as_deref().filter(|e| !e.is_empty()) {
        let cfg = crate::config::Config::load(root).map_err(ApiError::internal)?;
        let catalog = cfg.effects().map_err(ApiError::internal)?;
        o.effects = effect_steps(effects, root, Some(&catalog))?;
        o.catalog = Some(Arc::new(catalog));
    }
    Ok(o)
}

/// A message with the server's paths taken out: the root becomes nothing, the input its name.
fn scrub(msg: &str, root: &Path, input: &Path, name: &str) -> String {
    let area = root.join(AREA).display().to_string() + "/";
    msg.replace(&input.display().to_string(), name)
        .replace(&area, "")
        .replace(&root.display().to_string(), "")
}

/// `stem` with the extension of the format `settings` ask for (else the upload's own).
pub(super) fn with_extension(
    rec: &UploadRecord,
    stem: &str,
    settings: &ExportSettings,
) -> Result<String, ApiError> {
    let ext = match &settings.format {
        Some(f) => sluice_core::encode::codec(f)
            .map(|c| c.about().extension)
            .ok_or_else(|| {
                ApiError::bad_request(
                    ErrorKind::BadField,
                    format!(
                        "format `{f}`: choose {}",
                        sluice_core::encode::codec_names()
                    ),
                )
            })?
            .to_string(),
        None => rec
            .file_name
            .rsplit_once('.')
            .map_or("wav".to_string(), |(_, e)| e.to_string()),
    };
    Ok(format!("{stem}.{ext}"))
}

/// Exports upload `rec` to `output_path` in the export area; `progress` gets the share
/// rendered (0..1); `work` stops it (503, nothing written).
pub(super) fn run_export(
    st: &AppState,
    rec: &UploadRecord,
    output_path: &str,
    settings: &ExportSettings,
    region: (Option<f64>, Option<f64>),
    work: &Arc<Work>,
    progress: &mut dyn FnMut(f64),
) -> Result<ExportResponse, ApiError> {
    let input = confine::resolve(&st.root, Path::new(&rec.rel)).map_err(ApiError::internal)?;
    let (rel, full) = export_target(&st.root, output_path)?;
    if full.exists() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorKind::Exists,
            format!("{}: exists; exports never replace a file", rel.display()),
        ));
    }
    let clean = |m: &str| scrub(m, &st.root, &input, &rec.file_name);
    let order = order(&st.root, &input, &full, settings, region).map_err(|mut e| {
        e.message = clean(&e.message);
        e
    })?;
    let stop: sluice_core::render::StopCheck = {
        let work = std::sync::Arc::clone(work);
        std::sync::Arc::new(move || work.stop())
    };
    let mut done = crate::export::export_quiet(&order, &mut |_, p| progress(p), Some(stop))
        .map_err(|e| match e {
            OrderError::Usage(m) => ApiError::bad_request(ErrorKind::BadField, clean(&m)),
            OrderError::Input(e) => ApiError::analysis(e, work).map_message(clean),
        })?;
    let one = done
        .pop()
        .ok_or_else(|| ApiError::internal("an export of one file gave nothing"))?;
    let report = one.result.map_err(|e| match e {
        ExportError::Render(RenderError::Input(
            e @ sluice_core::InputError::Interrupted { .. },
        )) => ApiError::analysis(e, work).map_message(clean),
        e => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorKind::ExportFailed,
            clean(&e.to_string()),
        ),
    })?;
    let sluice = serde_json::to_value(&report).map_err(ApiError::internal)?;
    // Paths in the report, as the client knows them.
    let sluice = serde_json::from_str(&clean(&sluice.to_string())).unwrap_or(Value::Null);
    let mut warnings = one.notes;
    warnings.extend(report.warnings.iter().map(|w| clean(w)));
    Ok(ExportResponse {
        output_path: rel.to_string_lossy().into_owned(),
        warnings,
        sluice,
    })
}

/// Render an uploaded file to another format and settings.
#[utoipa::path(
    post,
    path = "/api/audio/export",
    operation_id = "export_audio",
    tag = "audio",
    request_body = ExportRequest,
    responses(
        (status = 200, description = "OK", body = ExportResponse),
        (status = 400, description = "Bad settings, or an output path that leaves the export area", body = ErrorBody),
        (status = 404, description = "No such item", body = ErrorBody),
        (status = 409, description = "The output exists", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
async fn export(
    State(st): State<Arc<AppState>>,
    req: Result<Json<ExportRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<ExportResponse>, ApiError> {
    let Json(req) = req?;
    let (work, _guard) = Work::start(&st);
    let work = Arc::new(work);
    let out = blocking(move || {
        let rec = find(&st, &req.file_id)?;
        let _slot = st.exports.take();
        run_export(
            &st,
            &rec,
            &req.output_path,
            &req.settings,
            (req.start_time, req.end_time),
            &work,
            &mut |_| {},
        )
    })
    .await?;
    Ok(Json(out))
}
