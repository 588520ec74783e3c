//! Export: one input file rendered through the shared stages into one or more output files,
//! each with its own format, dither and tags. Outputs appear under their final names only when
//! complete and tagged; on any error none of them is left behind, and existing files are never
//! overwritten unless asked.

use crate::encode::tags::{read_source_tag, write_tags};
use crate::encode::{EncodeError, Encoder, PcmFormat};
use crate::io::AtomicFile;
use crate::render::dither::Quantize;
use crate::render::stages::Channels;
use crate::render::steps::{
    NoResolver, StageResolver, StepSpec, build, normalize_target, signal_after,
};
use crate::render::{
    FileSource, OutputChain, OutputLoudness, Probe, Progress, Render, Source, Stage, StageReport,
};
use std::path::Path;

mod measure;
mod plan;

use measure::{Followed, Following, WRITING, finish_encoder, measure_encoded, measure_following};
pub use plan::*;

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
    let (rate, channels) = signal_after(steps, src_rate, src_channels);
    let lowpasses: Vec<Option<f64>> = outputs
        .iter()
        .map(|o| codec_lowpass(o, rate, channels))
        .collect();
    // The normalize step runs in each output's own chain when the outputs need different
    // things of it: other channels, or a lossy codec's low-pass whose ringing the peak
    // ceiling must allow for (a lossless output beside an MP3 keeps its full ceiling).
    let split = steps
        .iter()
        .position(|s| matches!(s, StepSpec::Normalize(_)))
        .filter(|_| {
            outputs.iter().any(|o| {
                o.channels
                    .as_ref()
                    .is_some_and(|m| !m.is_identity(channels))
            }) || lowpasses.windows(2).any(|w| w[0] != w[1])
        });
    let (shared, tail) = steps.split_at(split.unwrap_or(steps.len()));
    let stages = build(shared, src_rate, precision, resolver)?;
    let (tail_rate, _) = signal_after(shared, src_rate, src_channels);
    let mut report = export_source_with(
        source,
        stages,
        &mut |_| Ok(build(tail, tail_rate, precision, resolver)?),
        &lowpasses,
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

/// The low-pass of output `o`'s codec (Hz) when its decoded true peak is checked, for the
/// signal arriving at `rate` with `channels` (before the output's own mapping and rate).
fn codec_lowpass(o: &OutputPlan, rate: u32, channels: usize) -> Option<f64> {
    if !(o.true_peak_check && o.format.lossy()) {
        return None;
    }
    let rate = o.sample_rate.unwrap_or(rate);
    let channels = o
        .channels
        .as_ref()
        .map_or(channels, |m| m.channels_after(channels));
    o.format
        .lowpass_hz(&crate::render::SignalSpec::with_channels(rate, channels))
}

/// Builds the stages one output runs on its own (the normalize step and those after it, when
/// the outputs map their channels differently: see [`export_from`]).
type OutputStages<'a> = dyn FnMut(&OutputPlan) -> Result<Vec<Box<dyn Stage>>, ExportError> + 'a;

/// Each output's own chain: its channel mapping, the stages `per_output` builds for it, its
/// resampling and its quantization (with its dither).
fn output_chains(
    outputs: &[OutputPlan],
    per_output: &mut OutputStages<'_>,
) -> Result<Vec<OutputChain>, ExportError> {
    outputs
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
                        crate::render::resample::ResampleQuality::default(),
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
        .collect()
}

/// The outputs' temporary files and their encoders (wrapped by `offload`), each with its
/// `bext` chunk where the output writes one: the source's, its coding history extended.
type Opened = (Vec<AtomicFile>, Vec<Box<dyn crate::formats::Encoder>>);

fn open_outputs(
    outputs: &[OutputPlan],
    specs: &[crate::render::SignalSpec],
    source_bext: Option<&crate::riff::Bext>,
    offload: &mut dyn Offload,
) -> Result<Opened, ExportError> {
    let mut files = Vec::with_capacity(outputs.len());
    let mut encoders = Vec::with_capacity(outputs.len());
    for (o, spec) in outputs.iter().zip(specs) {
        let (atomic, file) = AtomicFile::create(&o.path, o.overwrite)?;
        let bext = (o.bext && o.format.codec.about().bext).then(|| {
            let mut b = source_bext.cloned().unwrap_or_default();
            if b.originator.is_empty() {
                b.originator = "Sluice".into();
            }
            let (float, bits) = match o.format.settings.sample() {
                Some(PcmFormat::Float32) => (true, 32),
                _ => (false, o.format.integer_bits().unwrap_or(16)),
            };
            b.add_coding(
                float,
                spec.sample_rate,
                bits,
                spec.channels(),
                concat!("Sluice ", env!("CARGO_PKG_VERSION")),
            );
            // A region or trim moves the start: the time reference stays the source's.
            b
        });
        let encoder = offload.encoder(o, o.format.create(file, &o.path, spec, bext)?);
        files.push(atomic);
        encoders.push(encoder);
    }
    Ok((files, encoders))
}

/// Lossy output `o`, checked: measured as a listener decodes it (`pending`, its reading taken
/// while it was written, or the file at `temp` read again), and encoded again under a lower
/// ceiling, or at a corrected loudness, while the codec takes it over the ceiling or off the
/// target, up to its encode limit. Its check; its reading in `result`; a miss in `warnings`.
#[allow(clippy::too_many_arguments)]
fn hold_ceiling(
    render: &mut Render<'_>,
    o: usize,
    plan: &OutputPlan,
    temp: &Path,
    mut pending: Option<Pending>,
    result: &mut crate::render::OutputResult,
    progress: &mut dyn FnMut(Progress),
    offload: &mut dyn Offload,
    warnings: &mut Vec<String>,
) -> Result<TruePeakCheck, ExportError> {
    let target = render.loudness_target(o);
    let ceiling = target.map(|t| t.1);
    let mut encodes = 1;
    let mut lowered = 0.0;
    let mut offset = 0.0;
    loop {
        // The first encode was measured as it was written; should that reading have
        // failed, the finished file is read again.
        let streamed = pending.take().and_then(|p| p().ok());
        let decoded = match streamed {
            Some(d) => d,
            None => measure_encoded(temp, offload)?,
        };
        let over = ceiling.map_or(0.0, |c| decoded.true_peak_dbtp - (c - CODEC_MARGIN_DB));
        // What the codec took from the loudness (a low-pass removes the top octave's
        // energy), where the target was reached before it.
        let short = match (target, decoded.loudness.integrated_lufs) {
            (Some((lufs, _)), Some(i)) if i >= crate::render::normalize::SILENCE_LUFS => lufs - i,
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
            tracing::info!(
                "{}: decoded, {} (encode {encodes}): encoding again{}{}",
                plan.path.display(),
                if over > 0.0 {
                    format!("the true peak is {over:.2} dB over the ceiling")
                } else {
                    format!("the loudness is {:+.2} LU from the target", -short)
                },
                if lower > 0.0 {
                    format!(", {lower:.2} dB lower")
                } else {
                    String::new()
                },
                if short != 0.0 {
                    format!(", {short:+.2} LU")
                } else {
                    String::new()
                }
            );
            lowered += lower;
            offset += short;
            let specs = render.prepare_with(progress, &mut |p| offload.probe(p))?;
            let temp = temp.to_path_buf();
            let file = std::fs::File::create(&temp).map_err(|source| EncodeError::Io {
                path: temp.clone(),
                source,
            })?;
            let enc = plan.format.create(file, &plan.path, &specs[o], None)?;
            let mut encs = vec![offload.encoder(plan, enc)];
            let again = render.run_outputs(&[o], &mut encs, progress)?;
            *result = again.into_iter().next().expect("one output");
            for enc in encs {
                finish_encoder(enc, result)?;
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
        let check = TruePeakCheck {
            ceiling_dbtp: ceiling,
            encodes,
            met,
            lowered_db: lowered,
            loudness_offset_lu: offset,
            rendered: result.loudness.take(),
        };
        result.loudness = Some(decoded);
        return Ok(check);
    }
}

/// A reader for each checked lossy output, decoding and measuring it (on `offload`'s
/// background) while its encoder writes it: the writers' states, and the readings to come.
fn follow_lossy(
    outputs: &[OutputPlan],
    files: &[AtomicFile],
    offload: &mut dyn Offload,
) -> (Followed, Vec<Option<Pending>>) {
    let mut followed = Followed(Vec::with_capacity(outputs.len()));
    let mut pending: Vec<Option<Pending>> = Vec::with_capacity(outputs.len());
    for (o, atomic) in outputs.iter().zip(files) {
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
    (followed, pending)
}

/// The stages' warnings, each after its stage's name (and its output's path, for an
/// output's own stages).
fn stage_warnings(
    warnings: &mut Vec<String>,
    shared: &[StageReport],
    outputs: &[OutputPlan],
    own: &[Vec<StageReport>],
) {
    for r in shared {
        warnings.extend(r.warnings.iter().map(|w| format!("{}: {w}", r.stage)));
    }
    for (o, own) in outputs.iter().zip(own) {
        for r in own {
            warnings.extend(
                r.warnings
                    .iter()
                    .map(|w| format!("{}: {}: {w}", o.path.display(), r.stage)),
            );
        }
    }
}

/// The outputs rendered from a source already open, through `stages` shared by all and the
/// stages `per_output` builds for each (after that output's channel mapping, before its
/// resampling and dither). With no outputs the chain still runs, for the stages that measure
/// (an analysis tap).
fn export_source_with(
    mut source: FileSource,
    stages: Vec<Box<dyn Stage>>,
    per_output: &mut OutputStages<'_>,
    lowpasses: &[Option<f64>],
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
    let chains = output_chains(outputs, per_output)?;
    let src_frames = source.frames();
    let mut render = Render::new(&mut source, stages, chains);
    // A checked lossy output's low-pass rings over the peaks the normalize step holds: it
    // holds the low-passed signal's peak too, so that the first encode usually holds.
    for (o, hz) in lowpasses.iter().enumerate() {
        if let Some(hz) = hz {
            render.expect_codec_lowpass(o, *hz);
        }
    }
    let specs = render.prepare_with(progress, &mut |p| offload.probe(p))?;

    // Temporary files and encoders, created only now that the options proved valid.
    let (files, mut encoders) = open_outputs(outputs, &specs, source_bext.as_ref(), offload)?;
    // Each checked lossy output is decoded and measured while its encoder writes it.
    let (followed, mut pending) = follow_lossy(outputs, &files, offload);
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
        if plan.true_peak_check && plan.format.lossy() {
            checks[o] = Some(hold_ceiling(
                &mut render,
                o,
                plan,
                files[o].temp_path(),
                pending[o].take(),
                &mut results[o],
                progress,
                offload,
                &mut warnings,
            )?);
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
    stage_warnings(&mut warnings, &stage_reports, outputs, &own_reports);
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
            qc: None,
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
    use super::measure::COMPLETE;
    use super::*;
    use crate::render::SignalSpec;
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
        let mp3 = |settings| crate::encode::named("mp3", settings).unwrap();
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
        follow_while_encoding(crate::encode::named("ogg", settings).unwrap(), "ogg");
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
