//! Export: one input file rendered through the shared stages into one or more output files,
//! each with its own format, dither and tags. Outputs appear under their final names only when
//! complete and tagged; on any error none of them is left behind, and existing files are never
//! overwritten unless asked.

use crate::encode::tags::{Container, TagPlan, read_source_tag, write_tags};
use crate::encode::{AtomicFile, EncodeError, Encoder, PcmFormat};
use crate::render::dither::{DitherMode, Quantize};
use crate::render::normalize::{Normalize, NormalizeTarget};
use crate::render::stages::{ChannelMapping, Channels, Fade, FadeCurve, Region, TrimSilence};
use crate::render::{
    FileSource, OutputChain, OutputLoudness, OutputMeter, Probe, Progress, Render, RenderError,
    SignalSpec, Source, Stage, StageReport,
};
use crate::riff::Bext;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// An output's format and its options.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "format")]
pub enum OutputFormat {
    Wav {
        sample: PcmFormat,
    },
    Aiff {
        bits: u32,
    },
    Flac {
        bits: u32,
        compression_level: u8,
    },
    Mp3 {
        vbr_quality: Option<u8>,
        bitrate_kbps: Option<u32>,
    },
    Ogg {
        quality: f32,
    },
}

impl OutputFormat {
    pub fn container(&self) -> Container {
        match self {
            OutputFormat::Wav { .. } => Container::Wav,
            OutputFormat::Aiff { .. } => Container::Aiff,
            OutputFormat::Flac { .. } => Container::Flac,
            OutputFormat::Mp3 { .. } => Container::Mp3,
            OutputFormat::Ogg { .. } => Container::Ogg,
        }
    }
    /// The format's name, as the encoders' errors give it.
    pub fn name(&self) -> &'static str {
        match self {
            OutputFormat::Wav { .. } => "WAV",
            OutputFormat::Aiff { .. } => "AIFF",
            OutputFormat::Flac { .. } => crate::encode::flac::FORMAT,
            OutputFormat::Mp3 { .. } => crate::encode::mp3::FORMAT,
            OutputFormat::Ogg { .. } => crate::encode::vorbis::FORMAT,
        }
    }
    /// The usual file extension.
    pub fn extension(&self) -> &'static str {
        match self {
            OutputFormat::Wav { .. } => "wav",
            OutputFormat::Aiff { .. } => "aiff",
            OutputFormat::Flac { .. } => "flac",
            OutputFormat::Mp3 { .. } => "mp3",
            OutputFormat::Ogg { .. } => "ogg",
        }
    }
    /// Whether the format's codec changes the signal (MP3, Vorbis): its output is measured as
    /// decoded (see [`OutputPlan::true_peak_check`]).
    pub fn lossy(&self) -> bool {
        matches!(self, OutputFormat::Mp3 { .. } | OutputFormat::Ogg { .. })
    }
    /// Integer bit depth the format stores, where it has one (quantization target).
    pub fn integer_bits(&self) -> Option<u32> {
        match self {
            OutputFormat::Wav {
                sample: PcmFormat::Int(b),
            }
            | OutputFormat::Aiff { bits: b }
            | OutputFormat::Flac { bits: b, .. } => Some(*b),
            _ => None,
        }
    }
}

/// The processing every output of an export shares, in this order: region, trim silence,
/// channel mapping, resampling, fades, normalization.
#[derive(Debug, Clone, Default)]
pub struct RenderPlan {
    /// Start and end in seconds (end `None` = to the end).
    pub region: Option<(f64, Option<f64>)>,
    /// Threshold (dBFS) and pad (seconds).
    pub trim_silence: Option<(f64, f64)>,
    pub channels: Option<ChannelMapping>,
    pub sample_rate: Option<u32>,
    pub fast_resampling: bool,
    pub fade_in: f64,
    pub fade_out: f64,
    pub fade_curve: FadeCurve,
    pub normalize: Option<NormalizeTarget>,
}

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
#[derive(Debug, Clone, Serialize)]
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
#[derive(Debug, Clone, Serialize)]
pub struct ExportReport {
    pub input: PathBuf,
    pub outputs: Vec<OutputReport>,
    pub stages: Vec<StageReport>,
    /// Passes over the input (prepasses for normalization and trimming, then the render).
    pub passes: u32,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
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
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<StageReport>,
}

/// How far an output may measure from its loudness-normalization target before its export
/// gets a warning, LU.
pub const TARGET_TOLERANCE_LU: f64 = 0.5;

/// Warnings for the outputs of `report` whose loudness, measured as they were written, lies
/// more than [`TARGET_TOLERANCE_LU`] from the loudness `target` (none for a peak target).
pub fn target_warnings(report: &ExportReport, target: &NormalizeTarget) -> Vec<String> {
    let NormalizeTarget::Loudness { lufs, .. } = *target else {
        return Vec::new();
    };
    report
        .outputs
        .iter()
        .filter_map(|o| {
            let i = o.loudness.as_ref()?.loudness.integrated_lufs?;
            // Digital silence is not normalized (the normalize stage says so).
            (i >= crate::render::normalize::SILENCE_LUFS && (i - lufs).abs() > TARGET_TOLERANCE_LU)
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
}

impl From<crate::InputError> for ExportError {
    fn from(e: crate::InputError) -> Self {
        ExportError::Render(RenderError::Input(e))
    }
}

/// The resampler precision that suffices for outputs of `formats`: `Single` (`f32`, THD+N
/// about −128 dB) when every one is lossy or integer of at most 16 bits, whose own noise
/// floor lies more than 30 dB higher (16-bit TPDF dither alone puts a −1 dBFS tone's THD+N
/// near −92 dB); `Double` as soon as one keeps more (24/32-bit integer, float).
pub fn resample_precision<'a>(
    formats: impl IntoIterator<Item = &'a OutputFormat>,
) -> crate::render::resample::ResamplePrecision {
    use crate::render::resample::ResamplePrecision;
    let single = formats.into_iter().all(|f| match f {
        OutputFormat::Mp3 { .. } | OutputFormat::Ogg { .. } => true,
        other => other.integer_bits().is_some_and(|b| b <= 16),
    });
    if single {
        ResamplePrecision::Single
    } else {
        ResamplePrecision::Double
    }
}

/// The shared stages for `plan` (the resampler in `f64`).
pub fn stages_for(plan: &RenderPlan) -> Result<Vec<Box<dyn Stage>>, String> {
    stages_with_precision(plan, crate::render::resample::ResamplePrecision::Double)
}

/// The shared stages for `plan`, the resampler computing in `precision`.
pub fn stages_with_precision(
    plan: &RenderPlan,
    precision: crate::render::resample::ResamplePrecision,
) -> Result<Vec<Box<dyn Stage>>, String> {
    let mut s: Vec<Box<dyn Stage>> = Vec::new();
    if let Some((start, end)) = plan.region {
        s.push(Box::new(Region::new(start, end)));
    }
    if let Some((threshold, pad)) = plan.trim_silence {
        s.push(Box::new(TrimSilence::new(threshold, pad)));
    }
    if let Some(m) = &plan.channels {
        s.push(Box::new(Channels::new(m.clone())));
    }
    if let Some(rate) = plan.sample_rate {
        s.push(Box::new(
            crate::render::resample::Resample::new(
                rate,
                if plan.fast_resampling {
                    crate::render::resample::ResampleQuality::Fast
                } else {
                    crate::render::resample::ResampleQuality::High
                },
            )
            .with_precision(precision),
        ));
    }
    if plan.fade_in > 0.0 || plan.fade_out > 0.0 {
        s.push(Box::new(Fade::new(
            plan.fade_in,
            plan.fade_out,
            plan.fade_curve,
        )));
    }
    if let Some(t) = plan.normalize {
        s.push(Box::new(Normalize::new(t)));
    }
    Ok(s)
}

/// Create the encoder for `format` writing into `file`.
pub fn create_encoder(
    format: &OutputFormat,
    file: std::fs::File,
    path: &Path,
    spec: &SignalSpec,
    bext: Option<Bext>,
) -> Result<Box<dyn Encoder>, EncodeError> {
    let path = path.to_path_buf();
    Ok(match format {
        OutputFormat::Wav { sample } => Box::new(crate::encode::wav::WavEncoder::new(
            file,
            path,
            spec,
            &crate::encode::wav::WavOptions {
                format: *sample,
                bext,
            },
        )?),
        OutputFormat::Aiff { bits } => Box::new(crate::encode::aiff::AiffEncoder::new(
            file, path, spec, *bits,
        )?),
        OutputFormat::Flac {
            bits,
            compression_level,
        } => Box::new(crate::encode::flac::FlacEncoder::new(
            file,
            path,
            spec,
            &crate::encode::flac::FlacOptions {
                bits: *bits,
                compression_level: *compression_level,
            },
        )?),
        OutputFormat::Mp3 {
            vbr_quality,
            bitrate_kbps,
        } => {
            use crate::encode::mp3::{Mp3Encoder, Mp3Mode, Mp3Options};
            let mode = match (vbr_quality, bitrate_kbps) {
                (_, Some(kbps)) => Mp3Mode::Cbr { kbps: *kbps },
                (Some(q), None) => Mp3Mode::Vbr { quality: *q },
                (None, None) => Mp3Mode::Vbr { quality: 2 },
            };
            Box::new(Mp3Encoder::new(
                file,
                path,
                spec,
                &Mp3Options {
                    mode,
                    ..Mp3Options::default()
                },
            )?)
        }
        OutputFormat::Ogg { quality } => Box::new(crate::encode::vorbis::VorbisEncoder::new(
            file,
            path,
            spec,
            &crate::encode::vorbis::VorbisOptions { quality: *quality },
        )?),
    })
}

/// Where an export may put work on other threads. The core renders, measures and encodes on
/// the calling thread (it never spawns one); a caller that may spawn threads (the host)
/// implements this to move each encoder, and each prepass probe, onto a thread of its own.
/// The defaults keep everything on the calling thread.
pub trait Offload {
    /// Wrap the encoder of output `plan`, once created and before the first block reaches it.
    /// The wrapper must keep the [`Encoder`] contract: every block in order, then
    /// `set_loudness`, then `finish`, whose result is the inner encoder's.
    fn encoder(&mut self, plan: &OutputPlan, encoder: Box<dyn Encoder>) -> Box<dyn Encoder> {
        let _ = plan;
        encoder
    }
    /// Wrap a prepass probe (a measuring pass's meter); see [`Render::prepare_with`].
    fn probe(&mut self, probe: Box<dyn Probe>) -> Box<dyn Probe> {
        probe
    }
}

/// Everything on the calling thread.
pub struct NoOffload;

impl Offload for NoOffload {}

/// Export `input` to every output of `outputs` through `plan`.
pub fn export(
    input: &Path,
    plan: &RenderPlan,
    outputs: &[OutputPlan],
    progress: &mut dyn FnMut(Progress),
) -> Result<ExportReport, ExportError> {
    export_with(input, plan, outputs, progress, &mut NoOffload)
}

/// [`export`], with encoders and measuring probes passed through `offload` (see [`Offload`]),
/// so the outputs encode in parallel with each other and with the render, and a measuring
/// pass meters while it decodes.
pub fn export_with(
    input: &Path,
    plan: &RenderPlan,
    outputs: &[OutputPlan],
    progress: &mut dyn FnMut(Progress),
    offload: &mut dyn Offload,
) -> Result<ExportReport, ExportError> {
    // The shared resampler computes in `f32` when no output could carry the difference.
    let precision = resample_precision(outputs.iter().map(|o| &o.format));
    // Loudness is measured on what each output receives: when an output maps its channels
    // itself, normalization moves into every output's own chain, after that mapping (it is
    // the last shared stage, so the order of everything else stays).
    let per_output = plan
        .normalize
        .filter(|_| outputs.iter().any(|o| o.channels.is_some()));
    let shared_plan = RenderPlan {
        normalize: if per_output.is_some() {
            None
        } else {
            plan.normalize
        },
        ..plan.clone()
    };
    let stages =
        stages_with_precision(&shared_plan, precision).map_err(|detail| ExportError::Invalid {
            path: input.to_path_buf(),
            detail,
        })?;
    let mut report = export_split_with(
        input,
        stages,
        &mut |_| {
            Ok(per_output
                .map(|t| Box::new(Normalize::new(t)) as Box<dyn Stage>)
                .into_iter()
                .collect())
        },
        outputs,
        progress,
        offload,
    )?;
    if let Some(t) = &plan.normalize {
        let w = target_warnings(&report, t);
        report.warnings.extend(w);
    }
    Ok(report)
}

/// Complete an output's stream, giving its encoder the loudness measured as it went in.
fn finish_encoder(
    mut enc: Box<dyn Encoder>,
    result: &crate::render::OutputResult,
) -> Result<(), EncodeError> {
    if let Some(l) = &result.loudness {
        enc.set_loudness(l);
    }
    enc.finish()
}

/// Decode an encoded output and measure it as a listener's player would see it.
fn measure_encoded(path: &Path, offload: &mut dyn Offload) -> Result<OutputLoudness, ExportError> {
    let mut source = FileSource::open(path)?;
    let mut probe = offload.probe(Box::new(OutputMeter::new(source.spec())));
    let mut block = crate::render::Block::default();
    while source.next(&mut block)? {
        probe.feed(&block);
    }
    Ok(probe
        .into_any()
        .downcast::<OutputMeter>()
        .expect("the probe given back is ours")
        .finish())
}

/// Builds the stages one output runs on its own (see [`export_split_with`]).
pub type OutputStages<'a> = dyn FnMut(&OutputPlan) -> Result<Vec<Box<dyn Stage>>, ExportError> + 'a;

/// Export `input` to every output of `outputs` through `stages`, in their order (a pipeline
/// chooses its own order, and may add stages of its own such as effects).
pub fn export_stages(
    input: &Path,
    stages: Vec<Box<dyn Stage>>,
    outputs: &[OutputPlan],
    progress: &mut dyn FnMut(Progress),
) -> Result<ExportReport, ExportError> {
    export_stages_with(input, stages, outputs, progress, &mut NoOffload)
}

/// [`export_stages`] with encoders and probes passed through `offload` (see [`Offload`]).
pub fn export_stages_with(
    input: &Path,
    stages: Vec<Box<dyn Stage>>,
    outputs: &[OutputPlan],
    progress: &mut dyn FnMut(Progress),
    offload: &mut dyn Offload,
) -> Result<ExportReport, ExportError> {
    export_split_with(
        input,
        stages,
        &mut |_| Ok(Vec::new()),
        outputs,
        progress,
        offload,
    )
}

/// [`export_stages_with`], each output also running stages of its own: `per_output` builds
/// them for each output; they run after that output's channel mapping and before its
/// resampling and dither. Stages that measure (normalization) belong there when the outputs'
/// channels differ, so each output is measured as it will be written.
pub fn export_split_with(
    input: &Path,
    stages: Vec<Box<dyn Stage>>,
    per_output: &mut OutputStages<'_>,
    outputs: &[OutputPlan],
    progress: &mut dyn FnMut(Progress),
    offload: &mut dyn Offload,
) -> Result<ExportReport, ExportError> {
    let invalid = |detail: String| ExportError::Invalid {
        path: input.to_path_buf(),
        detail,
    };
    for o in outputs {
        o.tags.validate().map_err(|d| ExportError::Invalid {
            path: o.path.clone(),
            detail: d,
        })?;
    }
    let mut source = FileSource::open(input)?;
    let source_bext = source.bext().cloned();
    let source_tag = if outputs.iter().any(|o| o.tags.carry_from.is_some()) {
        read_source_tag(input).ok().flatten()
    } else {
        None
    };
    let mut warnings = Vec::new();
    if let Some(info) = source.info() {
        warnings.extend(info.warnings.iter().cloned());
    }
    let chains = outputs
        .iter()
        .map(|o| {
            let mut stages: Vec<Box<dyn Stage>> = Vec::new();
            if let Some(m) = &o.channels {
                stages.push(Box::new(Channels::new(m.clone())));
            }
            stages.extend(per_output(o)?);
            if let Some(rate) = o.sample_rate {
                stages.push(Box::new(
                    crate::render::resample::Resample::new(
                        rate,
                        crate::render::resample::ResampleQuality::High,
                    )
                    .with_precision(resample_precision([&o.format])),
                ));
            }
            if let Some(b) = o.format.integer_bits() {
                stages.push(Box::new(Quantize::new(b, o.dither)));
            }
            Ok(OutputChain {
                stages,
                measure: true,
            })
        })
        .collect::<Result<Vec<_>, ExportError>>()?;
    let src_frames = source.frames();
    let mut render = Render::new(&mut source, stages, chains);
    let specs = render.prepare_with(progress, &mut |p| offload.probe(p))?;

    // Temporary files and encoders, created only now that the options proved valid.
    let mut files = Vec::with_capacity(outputs.len());
    let mut encoders = Vec::with_capacity(outputs.len());
    for (o, spec) in outputs.iter().zip(&specs) {
        let (atomic, file) = AtomicFile::create(&o.path, o.overwrite)?;
        let bext = (o.bext && o.format.container() == Container::Wav).then(|| {
            let mut b = source_bext.clone().unwrap_or_default();
            if b.originator.is_empty() {
                b.originator = "Sluice".into();
            }
            if !b.coding_history.is_empty() && !b.coding_history.ends_with('\n') {
                b.coding_history.push('\n');
            }
            let (mode, bits) = match &o.format {
                OutputFormat::Wav {
                    sample: PcmFormat::Float32,
                } => ("FLOAT", 32),
                other => ("PCM", other.integer_bits().unwrap_or(16)),
            };
            b.coding_history.push_str(&format!(
                "A={mode},F={},W={bits},M={},T=Sluice {}",
                spec.sample_rate,
                if spec.channels() == 1 {
                    "mono"
                } else if spec.channels() == 2 {
                    "stereo"
                } else {
                    "multitrack"
                },
                env!("CARGO_PKG_VERSION")
            ));
            // A region or trim moves the start: the time reference stays the source's.
            b
        });
        let encoder = offload.encoder(o, create_encoder(&o.format, file, &o.path, spec, bext)?);
        files.push(atomic);
        encoders.push(encoder);
    }
    let mut results = render.run(&mut encoders, progress)?;
    if results.iter().all(|r| r.frames == 0) && src_frames.unwrap_or(1) > 0 {
        return Err(invalid(
            "nothing is left to write after the region and trimming (see the warnings)".into(),
        ));
    }
    for (enc, result) in encoders.into_iter().zip(&results) {
        finish_encoder(enc, result)?;
    }
    // Lossy outputs are measured as a listener decodes them, and encoded again under a lower
    // ceiling while the codec's overshoot takes them over it.
    let mut checks: Vec<Option<TruePeakCheck>> = vec![None; outputs.len()];
    for (o, plan) in outputs.iter().enumerate() {
        if !(plan.true_peak_check && plan.format.lossy()) {
            continue;
        }
        let target = render.loudness_target(o);
        let ceiling = target.map(|t| t.1);
        let mut encodes = 1;
        let mut lowered = 0.0;
        let mut offset = 0.0;
        loop {
            let decoded = measure_encoded(files[o].temp_path(), offload)?;
            let over = ceiling.map_or(0.0, |c| decoded.true_peak_dbtp - (c - CODEC_MARGIN_DB));
            // What the codec took from the loudness (a low-pass removes the top octave's
            // energy), where the target was reached before it.
            let short = match (target, decoded.loudness.integrated_lufs) {
                (Some((lufs, _)), Some(i)) if i >= crate::render::normalize::SILENCE_LUFS => {
                    lufs - i
                }
                _ => 0.0,
            };
            let short = if short.abs() > CODEC_LOUDNESS_TOLERANCE_LU {
                short
            } else {
                0.0
            };
            let lower = if over > 0.0 { over + 0.05 } else { 0.0 };
            if (lower > 0.0 || short != 0.0)
                && encodes < MAX_ENCODES
                && render.correct_for_codec(o, lower, short)
            {
                lowered += lower;
                offset += short;
                let specs = render.prepare_with(progress, &mut |p| offload.probe(p))?;
                let temp = files[o].temp_path().to_path_buf();
                let file = std::fs::File::create(&temp).map_err(|source| EncodeError::Io {
                    path: temp.clone(),
                    source,
                })?;
                let enc = create_encoder(&plan.format, file, &plan.path, &specs[o], None)?;
                let mut encs = vec![offload.encoder(plan, enc)];
                let again = render.run_outputs(&[o], &mut encs, progress)?;
                results[o] = again.into_iter().next().expect("one output");
                for enc in encs {
                    finish_encoder(enc, &results[o])?;
                }
                encodes += 1;
                continue;
            }
            let met = over <= 0.0;
            if short != 0.0 {
                warnings.push(format!(
                    "{}: decoded, the output measures {:+.2} LU from the loudness target after {encodes} encode(s)",
                    plan.path.display(),
                    -short
                ));
            }
            if !met && let Some(c) = ceiling {
                warnings.push(format!(
                    "{}: decoded, the output's true peak is {:.2} dBTP, over the {c:.1} dBTP ceiling after {encodes} encode(s)",
                    plan.path.display(),
                    decoded.true_peak_dbtp,
                ));
            }
            checks[o] = Some(TruePeakCheck {
                ceiling_dbtp: ceiling,
                encodes,
                met,
                lowered_db: lowered,
                loudness_offset_lu: offset,
                rendered: results[o].loudness.take(),
            });
            results[o].loudness = Some(decoded);
            break;
        }
    }
    let passes = render.passes();
    let stage_reports = render.shared_reports();
    let mut own_reports: Vec<Vec<StageReport>> = (0..outputs.len())
        .map(|o| render.output_reports(o))
        .collect();
    drop(render);
    for r in &stage_reports {
        warnings.extend(r.warnings.iter().map(|w| format!("{}: {w}", r.stage)));
    }
    for (o, own) in outputs.iter().zip(&own_reports) {
        for r in own {
            warnings.extend(
                r.warnings
                    .iter()
                    .map(|w| format!("{}: {}: {w}", o.path.display(), r.stage)),
            );
        }
    }
    let mut reports = Vec::with_capacity(outputs.len());
    for ((((o, atomic), result), spec), check) in outputs
        .iter()
        .zip(files)
        .zip(results)
        .zip(specs)
        .zip(checks)
    {
        let source_tag = o.tags.carry_from.as_ref().and(source_tag.as_ref());
        write_tags(
            atomic.temp_path(),
            &o.path,
            o.format.container(),
            &o.tags,
            source_tag,
            result.loudness.as_ref(),
        )?;
        reports.push((o, atomic, result, spec, check));
    }
    // Everything encoded and tagged: now the outputs take their names.
    let mut out = Vec::with_capacity(reports.len());
    for ((o, atomic, result, spec, check), own) in reports.into_iter().zip(own_reports.iter_mut()) {
        let bytes = atomic.commit()?;
        out.push(OutputReport {
            path: o.path.clone(),
            format: o.format.clone(),
            sample_rate: spec.sample_rate,
            channels: spec.channels(),
            frames: result.frames,
            duration_seconds: result.frames as f64 / f64::from(spec.sample_rate),
            bytes,
            loudness: result.loudness,
            true_peak_check: check,
            stages: std::mem::take(own),
        });
    }
    Ok(ExportReport {
        input: input.to_path_buf(),
        outputs: out,
        stages: stage_reports,
        passes,
        warnings,
    })
}
