//! What an export is asked for and what it reports: the output plans, the reports, the
//! tolerances, and its errors.

use crate::encode::EncodeError;
use crate::encode::tags::TagPlan;
use crate::render::dither::DitherMode;
use crate::render::normalize::NormalizeTarget;
use crate::render::stages::ChannelMapping;
use crate::render::steps::StepError;
use crate::render::{OutputLoudness, RenderError, StageReport};
use serde::Serialize;
use std::path::PathBuf;

pub use crate::formats::OutputFormat;

/// One output of an export.
#[derive(Debug, Clone)]
pub struct OutputPlan {
    pub path: PathBuf,
    pub format: OutputFormat,
    /// Used where the format's integer depth needs quantization.
    pub dither: DitherMode,
    pub tags: TagPlan,
    /// On WAV: a `bext` chunk (version 2, loudness measured on this output). A WAV source's
    /// own `bext` is carried over with a coding-history line added.
    pub bext: bool,
    pub overwrite: bool,
    /// Channel mapping for this output alone, after the shared stages.
    pub channels: Option<ChannelMapping>,
    /// Resample this output alone to this rate (high quality), after the shared stages.
    pub sample_rate: Option<u32>,
    /// For a lossy format: decode the encoded file, measure it (the figures reported and
    /// tagged are the file's), and where its true peak passes the loudness target's ceiling,
    /// encode it again under a lower limiter ceiling (up to [`MAX_ENCODES`] encodes). Ignored
    /// for lossless formats, which are measured exactly as written. Default on.
    pub true_peak_check: bool,
    /// Encodes the check may make of this output, 1 (measure and report only) to
    /// [`MAX_ENCODES`] (the usual; values outside are taken as the nearest).
    pub max_encodes: u32,
}

impl OutputPlan {
    /// `path` in `format` with the usual settings: TPDF dither, no tags beyond the source's
    /// plan, no `bext`, never over an existing file, the channels and rate of the chain, the
    /// lossy true-peak check on with up to [`MAX_ENCODES`] encodes.
    pub fn new(path: PathBuf, format: OutputFormat) -> OutputPlan {
        OutputPlan {
            path,
            format,
            dither: DitherMode::Tpdf,
            tags: TagPlan::default(),
            bext: false,
            overwrite: false,
            channels: None,
            sample_rate: None,
            true_peak_check: true,
            max_encodes: MAX_ENCODES,
        }
    }
}

/// Encodes of one lossy output at most (see [`OutputPlan::true_peak_check`]).
pub const MAX_ENCODES: u32 = 4;

/// A lossy output's decoded true peak is held this far under the ceiling: ffmpeg's ebur128
/// meter reads up to about 0.1 dB above ours on codec overshoot.
pub const CODEC_MARGIN_DB: f64 = 0.1;

/// A lossy output's decoded loudness may lie this far from the target before it is encoded
/// again with the difference made up, LU.
pub const CODEC_LOUDNESS_TOLERANCE_LU: f64 = 0.1;

/// What the check of a lossy output found.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct TruePeakCheck {
    /// The ceiling held (the loudness target's), when there is one.
    pub ceiling_dbtp: Option<f64>,
    /// Encodes made (1: the first held).
    pub encodes: u32,
    /// Whether the decoded output is at or under the ceiling (true without a ceiling).
    pub met: bool,
    /// By how much the limiter's ceiling was lowered for the codec, dB.
    pub lowered_db: f64,
    /// How far above the target the encoder's input was aimed for what the codec takes
    /// away, LU.
    pub loudness_offset_lu: f64,
    /// What the encoder received (before the codec), for comparison with `loudness`.
    pub rendered: Option<OutputLoudness>,
}

/// What an export did.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct ExportReport {
    pub input: PathBuf,
    pub outputs: Vec<OutputReport>,
    pub stages: Vec<StageReport>,
    /// Passes over the input (prepasses for normalization and trimming, then the render).
    pub passes: u32,
    pub warnings: Vec<String>,
    /// The source's stream as it was read to the end (frames decoded, truncation, warnings).
    #[serde(skip)]
    pub source: Option<crate::StreamInfo>,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct OutputReport {
    pub path: PathBuf,
    #[serde(flatten)]
    pub format: OutputFormat,
    pub sample_rate: u32,
    pub channels: usize,
    pub frames: u64,
    pub duration_seconds: f64,
    pub bytes: u64,
    /// The output as written: measured on what the encoder received for lossless formats,
    /// on the decoded file for lossy ones.
    pub loudness: Option<OutputLoudness>,
    /// For a lossy output: its decoded measurement against the ceiling, and the encodes made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub true_peak_check: Option<TruePeakCheck>,
    /// The stages only this output went through (its own normalization when its channels
    /// differ from the other outputs', its dither...), with what they did.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<StageReport>,
    /// The output judged against a delivery specification, where a pipeline asks for it (an
    /// export alone judges nothing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qc: Option<crate::qc::OutputQc>,
}

/// How far an output may measure from its loudness-normalization target before its export
/// gets a warning, LU.
pub const TARGET_TOLERANCE_LU: f64 = 0.5;

/// Warnings for the outputs of `report` whose loudness, measured as they were written, lies
/// more than [`TARGET_TOLERANCE_LU`] from the loudness `target` (none for a peak target).
/// Under an album's gain the files measure where the album puts them, and under a largest
/// gain a quiet file stays under the target: neither is warned about.
pub fn target_warnings(report: &ExportReport, target: &NormalizeTarget) -> Vec<String> {
    let NormalizeTarget::Loudness { lufs, rule, .. } = *target else {
        return Vec::new();
    };
    if rule.from_lufs.is_some() {
        return Vec::new();
    }
    let capped = rule.max_gain_db.is_some();
    report
        .outputs
        .iter()
        .filter_map(|o| {
            let i = o.loudness.as_ref()?.loudness.integrated_lufs?;
            // Digital silence is not normalized (the normalize stage says so).
            (i >= crate::render::normalize::SILENCE_LUFS
                && (i - lufs).abs() > TARGET_TOLERANCE_LU
                && !(capped && i < lufs))
                .then(|| {
                    format!(
                        "{}: measures {i:.1} LUFS as written, {:+.1} LU from the normalize target {lufs:.1} LUFS",
                        o.path.display(),
                        i - lufs
                    )
                })
        })
        .collect()
}

/// Why an export failed; every message names the file.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error(transparent)]
    Encode(#[from] EncodeError),
    #[error("{}: {detail}", path.display())]
    Invalid { path: PathBuf, detail: String },
    /// A step the caller's resolver could not build (an effect).
    #[error(transparent)]
    Step(#[from] StepError),
}

impl From<crate::io::FileError> for ExportError {
    fn from(e: crate::io::FileError) -> Self {
        ExportError::Encode(e.into())
    }
}

impl From<crate::InputError> for ExportError {
    fn from(e: crate::InputError) -> Self {
        ExportError::Render(RenderError::Input(e))
    }
}
