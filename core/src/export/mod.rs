//! Export: one input file rendered through the shared stages into one or more output files,
//! each with its own format, dither and tags. Outputs appear under their final names only when
//! complete and tagged; on any error none of them is left behind, and existing files are never
//! overwritten unless asked.

use crate::encode::tags::{TagPlan, read_source_tag, write_tags};
use crate::encode::{EncodeError, Encoder, PcmFormat};
use crate::io::AtomicFile;
use crate::render::dither::{DitherMode, Quantize};
use crate::render::normalize::NormalizeTarget;
use crate::render::stages::{ChannelMapping, Channels};
use crate::render::steps::{
    NoResolver, StageResolver, StepError, StepSpec, build, normalize_target, signal_after,
};
use crate::render::{
    FileSource, OutputChain, OutputLoudness, OutputMeter, Probe, Progress, Render, RenderError,
    SignalSpec, Source, Stage, StageReport,
};
use serde::Serialize;
use std::path::{Path, PathBuf};

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
    /// The source's stream as it was read to the end (frames decoded, truncation, warnings).
    #[serde(skip)]
    pub source: Option<crate::StreamInfo>,
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

/// The resampler precision that suffices for outputs of `formats`: `Single` (`f32`, THD+N
/// about −128 dB) when every one is lossy or integer of at most 16 bits, whose own noise
/// floor lies more than 30 dB higher (16-bit TPDF dither alone puts a −1 dBFS tone's THD+N
/// near −92 dB); `Double` as soon as one keeps more (24/32-bit integer, float).
pub fn resample_precision<'a>(
    formats: impl IntoIterator<Item = &'a OutputFormat>,
) -> crate::render::resample::ResamplePrecision {
    use crate::render::resample::ResamplePrecision;
    let single = formats
        .into_iter()
        .all(|f| f.lossy() || f.integer_bits().is_some_and(|b| b <= 16));
    if single {
        ResamplePrecision::Single
    } else {
        ResamplePrecision::Double
    }
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
    /// Start `work` where it can run beside the render and the encoders (the host: a thread
    /// of its own). The lossy outputs' check decodes each output this way while its encoder
    /// writes it. The returned [`Pending`] waits for the work and gives its result; by default
    /// the work runs only then, once the output is complete.
    fn background(&mut self, work: Check) -> Pending {
        work
    }
}

/// A lossy output's measurement, run beside the encoder (see [`Offload::background`]).
pub type Check = Box<dyn FnOnce() -> Result<OutputLoudness, ExportError> + Send>;

/// The result of a [`Check`] once it is waited for.
pub type Pending = Box<dyn FnOnce() -> Result<OutputLoudness, ExportError>>;

/// Everything on the calling thread.
pub struct NoOffload;

impl Offload for NoOffload {}

/// Export `input` to every output of `outputs` through `steps`, without effects or analysis
/// (see [`export_with`]).
pub fn export(
    input: &Path,
    steps: &[StepSpec],
    outputs: &[OutputPlan],
    progress: &mut dyn FnMut(Progress),
) -> Result<ExportReport, ExportError> {
    export_with(
        input,
        steps,
        &mut NoResolver,
        outputs,
        progress,
        &mut NoOffload,
    )
}

/// [`export`], the effect and analyze steps built by `resolver`, and encoders and measuring
/// probes passed through `offload` (see [`Offload`]), so the outputs encode in parallel with
/// each other and with the render, and a measuring pass meters while it decodes.
pub fn export_with(
    input: &Path,
    steps: &[StepSpec],
    resolver: &mut dyn StageResolver,
    outputs: &[OutputPlan],
    progress: &mut dyn FnMut(Progress),
    offload: &mut dyn Offload,
) -> Result<ExportReport, ExportError> {
    let source = FileSource::open(input)?;
    export_from(source, steps, resolver, outputs, progress, offload)
}

/// [`export_with`] from a source already open (a job reads the format facts and tags it names
/// its outputs with from the decoder it renders with, so the file is decoded once).
///
/// The steps run in their order, shared by every output. Loudness is measured on what each
/// output receives: when an output maps its channels itself (other than as they arrive), the
/// normalize step and the steps after it run in every output's own chain, after that
/// output's mapping. Resamplers compute in `f32` when no output could carry the difference.
/// Every output that lands away from the normalize step's loudness target says so in the
/// warnings.
pub fn export_from(
    source: FileSource,
    steps: &[StepSpec],
    resolver: &mut dyn StageResolver,
    outputs: &[OutputPlan],
    progress: &mut dyn FnMut(Progress),
    offload: &mut dyn Offload,
) -> Result<ExportReport, ExportError> {
    let precision = if outputs.is_empty() {
        crate::render::resample::ResamplePrecision::Double
    } else {
        resample_precision(outputs.iter().map(|o| &o.format))
    };
    let (src_rate, src_channels) = (source.spec().sample_rate, source.spec().channels());
    let (_, channels) = signal_after(steps, src_rate, src_channels);
    let split = steps
        .iter()
        .position(|s| matches!(s, StepSpec::Normalize(_)))
        .filter(|_| {
            outputs.iter().any(|o| {
                o.channels
                    .as_ref()
                    .is_some_and(|m| !m.is_identity(channels))
            })
        });
    let (shared, tail) = steps.split_at(split.unwrap_or(steps.len()));
    let stages = build(shared, src_rate, precision, resolver)?;
    let (tail_rate, _) = signal_after(shared, src_rate, src_channels);
    let mut report = export_source_with(
        source,
        stages,
        &mut |_| Ok(build(tail, tail_rate, precision, resolver)?),
        outputs,
        progress,
        offload,
    )?;
    if let Some(t) = normalize_target(steps) {
        let w = target_warnings(&report, &t);
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

const WRITING: u8 = 0;
const COMPLETE: u8 = 1;
const ABANDONED: u8 = 2;

/// A reader of an encoder's output that follows it while it is written: at the end of what
/// is there it waits for more until the encoder has finished (or the export gave up). An
/// extending write is visible to another reader only once its bytes are in the file, so the
/// stream read is the stream written.
struct Following {
    file: std::fs::File,
    state: std::sync::Arc<std::sync::atomic::AtomicU8>,
}

impl std::io::Read for Following {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use std::sync::atomic::Ordering;
        loop {
            // Read after looking: a write that completed before the look is in the read.
            let state = self.state.load(Ordering::Acquire);
            let n = self.file.read(buf)?;
            if n > 0 || state == COMPLETE {
                return Ok(n);
            }
            if state == ABANDONED {
                return Err(std::io::Error::other(
                    "the export stopped before the output was complete",
                ));
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
}

/// Marks every followed output abandoned when the export ends without completing it (an
/// error returned early), so that no reader waits for more.
struct Followed(Vec<Option<std::sync::Arc<std::sync::atomic::AtomicU8>>>);

impl Followed {
    fn complete(&self, o: usize) {
        if let Some(s) = &self.0[o] {
            s.store(COMPLETE, std::sync::atomic::Ordering::Release);
        }
    }
}

impl Drop for Followed {
    fn drop(&mut self) {
        use std::sync::atomic::Ordering;
        for s in self.0.iter().flatten() {
            let _ = s.compare_exchange(WRITING, ABANDONED, Ordering::AcqRel, Ordering::Acquire);
        }
    }
}

/// LAME's encoder delay (576) plus the MP3 decoder's (529): what a gapless decoder drops from
/// the start of a LAME stream, after the Info frame.
const LAME_LEAD: u64 = 576 + 529;

/// Frames held back from the meter at the end of a followed stream until the finished file
/// says how many of them its decoder drops (an MP3's padding is under two frames).
const HOLD: usize = 8192;

/// Decode and measure the output at `temp` (named `path` in errors) while its encoder writes
/// it (see [`Following`]), feeding the meter exactly the samples a decoder of the finished file
/// gives. An MP3's Info frame, with the gapless trim, is written over the start only when the
/// stream ends, so the follower usually reads LAME's placeholder there (one silent frame) and
/// gets no trim: the start is then skipped by that frame plus LAME's delay, and the end held
/// back until the finished file's header gives its padding. The result stands only where the
/// finished file's frame count and trim agree with what was skipped and dropped; otherwise
/// (another encoder's delay) it is an error and the caller measures the finished file.
fn measure_following(
    path: &Path,
    temp: &Path,
    reader: Following,
) -> Result<OutputLoudness, ExportError> {
    let mismatch = |detail: String| ExportError::Invalid {
        path: path.to_path_buf(),
        detail,
    };
    let mut decoder = crate::Decoder::open_stream(path, reader)?;
    let info = decoder.info();
    let spec = SignalSpec {
        sample_rate: info.sample_rate,
        layout: info.channel_layout.clone(),
        exact_bits: None,
    };
    let placeholder = info.codec == "mp3" && info.encoder_delay.is_none();
    let mut meter = OutputMeter::new(&spec);
    // `lead`: frames still to skip at the start, known once the first frame is decoded.
    let mut lead: Option<u64> = None;
    let mut skipped = 0u64;
    let mut decoded = 0u64;
    let mut held = crate::render::Block::new(spec.channels());
    let mut block = crate::render::Block::default();
    while let Some(b) = decoder.next_block()? {
        block.copy_from_decoded(b);
        decoded += block.frames() as u64;
        let lead = *lead.get_or_insert(if placeholder {
            block.frames() as u64 + LAME_LEAD
        } else {
            0
        });
        if skipped < lead {
            let n = ((lead - skipped) as usize).min(block.frames());
            block.drain_front(n);
            skipped += n as u64;
        }
        held.extend_from(&block);
        if held.frames() > 2 * HOLD {
            let release = held.frames() - HOLD;
            let mut out = held.clone();
            out.truncate(release);
            meter.feed(&out);
            held.drain_front(release);
        }
    }
    drop(decoder);
    // The finished file, its header only: how many frames its decoder gives.
    let finished = crate::Decoder::open(temp)?;
    let f = finished.info();
    let frames = f
        .frames
        .ok_or_else(|| mismatch("the finished output states no frame count".into()))?;
    let lead = lead.unwrap_or(0);
    let kept = decoded.saturating_sub(lead);
    let end = kept
        .checked_sub(frames)
        .filter(|&e| e as usize <= held.frames());
    let agrees = match end {
        Some(e) if placeholder => {
            f.encoder_delay == Some(LAME_LEAD as u32)
                && u64::from(f.encoder_padding.unwrap_or(0)) == e
        }
        Some(e) => e == 0,
        None => false,
    };
    if !agrees {
        return Err(mismatch(format!(
            "the output read while written ({decoded} frames, {lead} skipped) does not match the finished file ({frames} frames, delay {:?}, padding {:?})",
            f.encoder_delay, f.encoder_padding
        )));
    }
    held.truncate(held.frames() - end.unwrap_or(0) as usize);
    meter.feed(&held);
    Ok(meter.finish())
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
    let source = FileSource::open(input)?;
    export_source_with(source, stages, per_output, outputs, progress, offload)
}

/// [`export_split_with`] from a source already open (a job reads its format facts and tags
/// from the decoder it renders with, so the file is decoded once). With no outputs the chain
/// still runs, for the stages that measure (an analysis tap).
pub fn export_source_with(
    mut source: FileSource,
    stages: Vec<Box<dyn Stage>>,
    per_output: &mut OutputStages<'_>,
    outputs: &[OutputPlan],
    progress: &mut dyn FnMut(Progress),
    offload: &mut dyn Offload,
) -> Result<ExportReport, ExportError> {
    let input = &source.path().to_path_buf();
    let invalid = |detail: String| ExportError::Invalid {
        path: input.to_path_buf(),
        detail,
    };
    for o in outputs {
        o.tags.validate().map_err(|d| ExportError::Invalid {
            path: o.path.clone(),
            detail: d.to_string(),
        })?;
    }
    let source_bext = source.bext().cloned();
    let source_tag = if outputs.iter().any(|o| o.tags.carry_from.is_some()) {
        read_source_tag(input).ok().flatten()
    } else {
        None
    };
    let mut warnings = Vec::new();
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
        let bext = (o.bext && o.format.codec.about().bext).then(|| {
            let mut b = source_bext.clone().unwrap_or_default();
            if b.originator.is_empty() {
                b.originator = "Sluice".into();
            }
            if !b.coding_history.is_empty() && !b.coding_history.ends_with('\n') {
                b.coding_history.push('\n');
            }
            let (mode, bits) = match o.format.settings.sample() {
                Some(PcmFormat::Float32) => ("FLOAT", 32),
                _ => ("PCM", o.format.integer_bits().unwrap_or(16)),
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
        let encoder = offload.encoder(o, o.format.create(file, &o.path, spec, bext)?);
        files.push(atomic);
        encoders.push(encoder);
    }
    // Each checked lossy output is decoded and measured while its encoder writes it.
    let mut followed = Followed(Vec::with_capacity(outputs.len()));
    let mut pending: Vec<Option<Pending>> = Vec::with_capacity(outputs.len());
    for (o, atomic) in outputs.iter().zip(&files) {
        let reader = (o.true_peak_check && o.format.lossy())
            .then(|| std::fs::File::open(atomic.temp_path()).ok())
            .flatten();
        let Some(file) = reader else {
            followed.0.push(None);
            pending.push(None);
            continue;
        };
        let state = std::sync::Arc::new(std::sync::atomic::AtomicU8::new(WRITING));
        followed.0.push(Some(state.clone()));
        let (path, temp) = (o.path.clone(), atomic.temp_path().to_path_buf());
        pending.push(Some(offload.background(Box::new(move || {
            measure_following(&path, &temp, Following { file, state })
        }))));
    }
    let mut results = render.run(&mut encoders, progress)?;
    if !results.is_empty() && results.iter().all(|r| r.frames == 0) && src_frames.unwrap_or(1) > 0 {
        return Err(invalid(
            "nothing is left to write after the region and trimming (see the warnings)".into(),
        ));
    }
    for (o, (enc, result)) in encoders.into_iter().zip(&results).enumerate() {
        finish_encoder(enc, result)?;
        followed.complete(o);
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
            // The first encode was measured as it was written; should that reading have
            // failed, the finished file is read again.
            let streamed = pending[o].take().and_then(|p| p().ok());
            let decoded = match streamed {
                Some(d) => d,
                None => measure_encoded(files[o].temp_path(), offload)?,
            };
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
                && encodes < plan.max_encodes.clamp(1, MAX_ENCODES)
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
                let enc = plan.format.create(file, &plan.path, &specs[o], None)?;
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
    // The source's warnings as it was read to the end (a truncation, damaged packets or
    // non-finite samples are found while decoding, not in the headers).
    let source_info = source.info().cloned();
    if let Some(info) = &source_info {
        warnings.splice(0..0, info.warnings.iter().cloned());
    }
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
            o.format.codec.about().tags,
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
            format: o.format,
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
        source: source_info,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicU8;

    /// Encode 20 s of programme material into a file as `format`, slowly (blocks, then a
    /// pause), while a [`Following`] reader decodes and measures it on another thread; then
    /// measure the finished file as [`measure_encoded`] does. The two must be the same to the
    /// last digit: the check that reads the output as it is written reports what the file
    /// holds.
    #[cfg(any(feature = "mp3", feature = "vorbis"))]
    fn follow_while_encoding(format: OutputFormat, ext: &str) {
        let dir = std::env::temp_dir().join(format!("sluice-follow-{}-{ext}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("out.{ext}"));
        let rate = 44_100;
        let planes = crate::signal::programme(rate, 2, rate as usize * 20, 7);
        let spec = SignalSpec::with_channels(rate, 2);
        let file = std::fs::File::create(&path).unwrap();
        let mut enc = format.create(file, &path, &spec, None).unwrap();
        let state = Arc::new(AtomicU8::new(WRITING));
        let reader = Following {
            file: std::fs::File::open(&path).unwrap(),
            state: state.clone(),
        };
        let p = path.clone();
        let follower = std::thread::spawn(move || measure_following(&p, &p, reader));
        for start in (0..planes[0].len()).step_by(4096) {
            let end = (start + 4096).min(planes[0].len());
            let block = crate::render::Block::from_planes(
                planes.iter().map(|c| c[start..end].to_vec()).collect(),
            );
            enc.write(&block).unwrap();
            if start % (4096 * 16) == 0 {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
        enc.finish().unwrap();
        state.store(COMPLETE, std::sync::atomic::Ordering::Release);
        let followed = follower
            .join()
            .unwrap()
            .unwrap_or_else(|e| panic!("{ext}: {e}"));
        let whole = measure_encoded(&path, &mut NoOffload).unwrap();
        std::fs::remove_dir_all(&dir).ok();
        // The same samples in blocks of other sizes: the sums may differ in the last bit.
        let same = |a: Option<f64>, b: Option<f64>, what: &str| {
            let (a, b) = (a.unwrap(), b.unwrap());
            assert!(
                (a - b).abs() < 1e-9,
                "{ext}: {what} {a} followed, {b} finished"
            );
        };
        same(
            followed.loudness.integrated_lufs,
            whole.loudness.integrated_lufs,
            "integrated",
        );
        same(
            Some(followed.true_peak_dbtp),
            Some(whole.true_peak_dbtp),
            "true peak",
        );
        same(
            Some(followed.sample_peak_dbfs),
            Some(whole.sample_peak_dbfs),
            "sample peak",
        );
        same(
            followed.loudness.loudness_range_lu,
            whole.loudness.loudness_range_lu,
            "loudness range",
        );
    }

    #[cfg(feature = "mp3")]
    #[test]
    fn an_mp3_read_while_it_is_written_measures_as_the_finished_file() {
        use crate::formats::Settings;
        let mp3 = |settings| OutputFormat::named("mp3", settings).unwrap();
        follow_while_encoding(
            mp3(Settings {
                quality: Some(2.0),
                ..Settings::default()
            }),
            "mp3",
        );
        follow_while_encoding(
            mp3(Settings {
                bitrate_kbps: Some(128),
                ..Settings::default()
            }),
            "cbr.mp3",
        );
    }

    #[cfg(feature = "vorbis")]
    #[test]
    fn an_ogg_read_while_it_is_written_measures_as_the_finished_file() {
        let settings = crate::formats::Settings {
            quality: Some(3.0),
            ..Default::default()
        };
        follow_while_encoding(OutputFormat::named("ogg", settings).unwrap(), "ogg");
    }

    #[test]
    fn an_abandoned_output_ends_its_reader() {
        let dir = std::env::temp_dir().join(format!("sluice-abandon-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("out.mp3");
        std::fs::write(&path, b"").unwrap();
        let state = Arc::new(AtomicU8::new(WRITING));
        let followed = Followed(vec![Some(state.clone()), None]);
        let reader = Following {
            file: std::fs::File::open(&path).unwrap(),
            state,
        };
        let p = path.clone();
        let t = std::thread::spawn(move || measure_following(&p, &p, reader));
        std::thread::sleep(std::time::Duration::from_millis(50));
        // The export returns early with an error: its guard lets the reader go.
        drop(followed);
        let r = t.join().unwrap();
        std::fs::remove_dir_all(&dir).ok();
        assert!(r.is_err(), "an abandoned output gives no measurement");
    }
}
