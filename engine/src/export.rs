//! Exports: files rendered to other formats with normalization, resampling, dither, fades,
//! trimming and tags. An [`ExportOrder`] (what `sluice export`'s options and the HTTP API's
//! settings both become) is planned into one [`Job`] per input, each checked before any runs.

use sluice_core::encode::tags::TagPlan;
use sluice_core::export::{ExportError, ExportReport, OutputPlan};
use sluice_core::formats::{self, Arriving, OptionNames, Request};
use sluice_core::render::dither::DitherMode;
use sluice_core::render::normalize::NormalizeTarget;
use sluice_core::render::resample::ResampleQuality;
use sluice_core::render::stages::{ChannelMapping, FadeCurve};
use sluice_core::render::steps::StepSpec;
use sluice_core::render::steps::{EffectStep, NoResolver, StageResolver};
use sluice_core::render::{FileSource, StopCheck};
use std::path::{Path, PathBuf};

/// Where an export's outputs go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// One output file (one input only).
    File(PathBuf),
    /// A folder: each output named after its input, with the format's extension.
    Dir(PathBuf),
}

/// Trim leading and trailing silence.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Trim {
    /// Level under which audio counts as silence (dBFS).
    pub threshold_dbfs: f64,
    /// Silence kept at each trimmed end (seconds).
    pub pad_seconds: f64,
}

impl Default for Trim {
    fn default() -> Self {
        Trim {
            threshold_dbfs: -60.0,
            pad_seconds: 0.05,
        }
    }
}

/// An export with every option read and typed: what `sluice export`'s options
/// (`sluice export`'s `order`) and the HTTP API's settings both become before anything runs.
/// [`export_quiet`] checks it against each input.
#[derive(Debug, Clone)]
pub struct ExportOrder {
    pub inputs: Vec<PathBuf>,
    pub destination: Destination,
    /// The format and its options, as asked (checked with [`Request::check`]).
    pub request: Request,
    /// How option names are spelt in messages (`--bit-depth`, `settings.bit_depth`).
    pub names: OptionNames,
    pub sample_rate: Option<u32>,
    pub resampler: ResampleQuality,
    pub channels: Option<ChannelMapping>,
    pub dither: DitherMode,
    pub normalize: Option<NormalizeTarget>,
    /// Start and end (seconds).
    pub region: Option<(f64, Option<f64>)>,
    pub trim: Option<Trim>,
    pub fade_in: f64,
    pub fade_out: f64,
    pub fade_curve: FadeCurve,
    /// Time stretch: this many times as fast at the same pitch (after the effects).
    pub speed: Option<f64>,
    /// Tags set (lower-case keys; an empty value removes the field).
    pub tags: Vec<(String, String)>,
    pub source_tags: bool,
    pub replaygain: bool,
    pub true_peak_check: bool,
    pub bext: bool,
    pub overwrite: bool,
    /// Effects (wasm effects by name, with parameters), applied in order after the
    /// resampling and before the fades and the normalization.
    pub effects: Vec<EffectStep>,
    /// Where `effects` are found: a root's effects (the server's), or, when `None`, the
    /// built-ins (`sluice export`).
    pub catalog: Option<std::sync::Arc<crate::effects::Catalog>>,
}

impl ExportOrder {
    /// An export of `inputs` to `destination` as `request` says, every other option at
    /// `sluice export`'s default.
    pub fn new(
        inputs: Vec<PathBuf>,
        destination: Destination,
        request: Request,
        names: OptionNames,
    ) -> ExportOrder {
        ExportOrder {
            inputs,
            destination,
            request,
            names,
            sample_rate: None,
            resampler: ResampleQuality::Fft,
            channels: None,
            dither: DitherMode::Tpdf,
            normalize: None,
            region: None,
            trim: None,
            fade_in: 0.0,
            fade_out: 0.0,
            fade_curve: FadeCurve::EqualPower,
            speed: None,
            tags: Vec::new(),
            source_tags: true,
            replaygain: true,
            true_peak_check: true,
            bext: true,
            overwrite: false,
            effects: Vec::new(),
            catalog: None,
        }
    }
}

pub use sluice_core::render::normalize::AlbumMode;

/// An input's loudness and the gain its normalization will apply (before any limiter).
#[derive(Debug, Clone, serde::Serialize)]
pub struct PlannedGain {
    pub path: PathBuf,
    pub integrated_lufs: Option<f64>,
    pub true_peak_dbtp: Option<f64>,
    /// `None`: silent, left as it is.
    pub gain_db: Option<f64>,
    /// The gain would put the true peak over the ceiling: the limiter works on this file (or,
    /// with the limiter off, the gain is lowered).
    pub needs_limiter: bool,
    /// The largest gain (or lower-only) held the gain under what reaches the target.
    pub capped: bool,
}

/// The gains of an export's loudness normalization, measured before it runs.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GainPlan {
    pub album: Option<AlbumMode>,
    /// The loudness the album's gain comes from (all inputs together, or the loudest).
    pub album_lufs: Option<f64>,
    pub target_lufs: f64,
    pub files: Vec<PlannedGain>,
}

/// Measure every input (decoded as it is, on `threads` threads) and work out the gain each
/// gets under the order's loudness normalization; with `album`, one gain for all, set into
/// the order so that its jobs apply it. The measurement is of the sources: steps before the
/// normalization (trimming, fades, a region, a channel mapping) are not in it.
pub fn plan_gains(
    o: &mut ExportOrder,
    album: Option<AlbumMode>,
    threads: usize,
) -> Result<GainPlan, OrderError> {
    use sluice_core::render::normalize::{LIMITER_MARGIN_DB, SILENCE_LUFS};
    let Some(NormalizeTarget::Loudness {
        lufs,
        true_peak_dbtp,
        rule,
        ..
    }) = o.normalize.as_mut()
    else {
        return Err(OrderError::Usage(
            "album gain and a gain plan need loudness normalization (a LUFS target or preset)"
                .into(),
        ));
    };
    if !o.effects.is_empty() {
        return Err(OrderError::Usage(
            "album gain and a gain plan measure the sources, which effects would change: export with the effects first, then normalize the album".into(),
        ));
    }
    let measured = crate::parallel::map(&o.inputs, threads, |p| crate::gaintag::measure(p));
    let mut ok = Vec::new();
    for (p, m) in o.inputs.iter().zip(&measured) {
        match m {
            Ok(m) => ok.push(m),
            Err(e) => return Err(OrderError::Usage(format!("{}: {e}", p.display()))),
        }
    }
    let album_lufs = match album {
        None => None,
        Some(AlbumMode::Album) => crate::gaintag::together(&ok),
        Some(AlbumMode::AlbumLoudest) => ok
            .iter()
            .filter_map(|m| m.integrated_lufs)
            .filter(|i| *i >= SILENCE_LUFS)
            .max_by(f64::total_cmp),
    };
    if album.is_some() {
        rule.from_lufs = Some(album_lufs.ok_or_else(|| {
            OrderError::Usage("every input is silent: there is no album loudness".into())
        })?);
    }
    let files = o
        .inputs
        .iter()
        .zip(&ok)
        .map(|(p, m)| {
            let own = m.integrated_lufs.filter(|i| *i >= SILENCE_LUFS);
            let tp = (m.true_peak > 0.0).then(|| 20.0 * m.true_peak.log10());
            let want = own.map(|i| *lufs - rule.from_lufs.unwrap_or(i));
            let gain = want.map(|g| rule.max_gain_db.map_or(g, |max| g.min(max)));
            PlannedGain {
                path: p.clone(),
                integrated_lufs: m.integrated_lufs,
                true_peak_dbtp: tp,
                gain_db: gain,
                needs_limiter: matches!((gain, tp), (Some(g), Some(t)) if t + g > *true_peak_dbtp - LIMITER_MARGIN_DB),
                capped: matches!((want, gain), (Some(w), Some(g)) if g < w),
            }
        })
        .collect();
    Ok(GainPlan {
        album,
        album_lufs,
        target_lufs: *lufs,
        files,
    })
}

/// Why an export could not start.
#[derive(Debug, thiserror::Error)]
pub enum OrderError {
    /// Options that do not hold together (said with the caller's option names).
    #[error("{0}")]
    Usage(String),
    /// An input that cannot be read.
    #[error(transparent)]
    Input(#[from] sluice_core::InputError),
}

/// The codec `format` names, else the one `output`'s extension names (`format_option` is how
/// the caller spells the format's option, for the message).
pub fn codec_for(
    format: Option<&str>,
    output: Option<&std::path::Path>,
    format_option: &str,
) -> Result<&'static dyn sluice_core::formats::OutputCodec, OrderError> {
    let kinds = sluice_core::encode::codec_names();
    let usage = OrderError::Usage;
    match (format, output) {
        (Some(f), _) => sluice_core::encode::codec(f)
            .ok_or_else(|| usage(format!("{format_option} {f}: choose {kinds}"))),
        (None, Some(o)) => o
            .extension()
            .and_then(|e| sluice_core::encode::codec(&e.to_string_lossy()))
            .ok_or_else(|| {
                usage(format!(
                    "{}: cannot tell the format from the extension; add {format_option}",
                    o.display()
                ))
            }),
        (None, None) => Err(usage(format!("{format_option} is needed ({kinds})"))),
    }
}

/// One input's export, planned and checked: where it goes and how.
pub struct Job {
    input: PathBuf,
    steps: Vec<StepSpec>,
    output: OutputPlan,
    notes: Vec<String>,
    /// The effects the steps name, when they name any.
    effects: Option<std::sync::Arc<crate::effects::Catalog>>,
}

impl Job {
    pub fn input(&self) -> &Path {
        &self.input
    }
    /// What the format could not take as asked (said before the export's own warnings).
    pub fn notes(&self) -> &[String] {
        &self.notes
    }
    /// Renders and writes it; `progress` hears each block, `stop` is asked before each (its
    /// reason ends the export with
    /// [`InputError::Interrupted`](sluice_core::InputError::Interrupted), nothing written).
    pub fn run(
        &self,
        progress: &mut dyn FnMut(sluice_core::render::Progress),
        stop: Option<StopCheck>,
    ) -> Result<ExportReport, ExportError> {
        let source = FileSource::open(&self.input)?;
        let source = match stop {
            Some(stop) => source.stop_when(stop),
            None => source,
        };
        let mut resolver: Box<dyn StageResolver + '_> = match &self.effects {
            Some(c) => Box::new(crate::effects::CatalogResolver(c)),
            None => Box::new(NoResolver),
        };
        crate::encode_thread::export_from(
            source,
            &self.steps,
            &mut *resolver,
            std::slice::from_ref(&self.output),
            progress,
        )
    }
}

/// The steps the order asks for, in the order `sluice export` applies them: region, trim
/// silence, channels, resample, effects, time stretch, fades, normalize.
fn steps(
    o: &ExportOrder,
    effects: &[EffectStep],
    channels: Option<ChannelMapping>,
    sample_rate: Option<u32>,
) -> Vec<StepSpec> {
    let mut steps = Vec::new();
    if let Some((start, end)) = o.region {
        steps.push(StepSpec::Region { start, end });
    }
    if let Some(t) = o.trim {
        steps.push(StepSpec::TrimSilence {
            threshold_dbfs: t.threshold_dbfs,
            pad_seconds: t.pad_seconds,
        });
    }
    steps.extend(channels.map(StepSpec::Channels));
    steps.extend(sample_rate.map(|sample_rate| StepSpec::Resample {
        sample_rate,
        quality: o.resampler,
    }));
    steps.extend(effects.iter().cloned().map(StepSpec::Effect));
    steps.extend(o.speed.map(|speed| StepSpec::TimeStretch { speed }));
    steps.push(StepSpec::Fade {
        fade_in: o.fade_in,
        fade_out: o.fade_out,
        curve: o.fade_curve,
    });
    steps.extend(o.normalize.map(StepSpec::Normalize));
    steps
}

/// One job per input (every option checked against every input before anything runs).
pub fn plan(o: &ExportOrder) -> Result<Vec<Job>, OrderError> {
    let usage = OrderError::Usage;
    if matches!(o.destination, Destination::File(_)) && o.inputs.len() > 1 {
        return Err(usage(
            "one output file names one input: with several inputs name a folder".into(),
        ));
    }
    o.request.check().map_err(|e| usage(e.message(&o.names)))?;
    let (effects, effect_steps) = match effect_catalog(&o.effects, o.catalog.as_ref())? {
        Some((c, s)) => (Some(c), s),
        None => (None, Vec::new()),
    };
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for input in &o.inputs {
        let info = sluice_core::probe(input)?;
        let src_rate = info.sample_rate;
        let arriving = Arriving {
            sample_rate: o.sample_rate.unwrap_or(src_rate),
            channels: o.channels.as_ref().map_or(info.channels as usize, |m| {
                m.channels_after(info.channels as usize)
            }),
            int_bits: info.integer_bits(),
            float: info.sample_type == Some(sluice_core::decode::SampleType::Float),
        };
        let resolved = formats::resolve(&o.request, &arriving, o.sample_rate.is_some())
            .map_err(|e| usage(e.message(&o.names)))?;
        let format = resolved.format;
        let notes = resolved.notes;
        let sample_rate = resolved.sample_rate.or(o.sample_rate);
        let channels = resolved.channels.or(o.channels.clone());
        let path = match &o.destination {
            Destination::File(f) => f.clone(),
            Destination::Dir(dir) => {
                let stem = input
                    .file_stem()
                    .ok_or_else(|| usage(format!("{}: no file name", input.display())))?;
                dir.join(stem).with_extension(format.extension())
            }
        };
        if !seen.insert(path.clone()) {
            return Err(usage(format!(
                "two inputs would both be written to {}: rename one, or export them separately",
                path.display()
            )));
        }
        if std::fs::canonicalize(&path).ok() == std::fs::canonicalize(input).ok() && path.exists() {
            return Err(usage(format!(
                "{}: the output would replace its own input",
                path.display()
            )));
        }
        out.push(Job {
            input: input.clone(),
            steps: steps(o, &effect_steps, channels, sample_rate),
            output: OutputPlan {
                path,
                format,
                dither: o.dither,
                tags: TagPlan {
                    carry_from: o.source_tags.then(|| input.clone()),
                    set: o.tags.clone(),
                    replaygain: o.replaygain,
                },
                bext: o.bext,
                overwrite: o.overwrite,
                channels: None,
                sample_rate: None,
                true_peak_check: o.true_peak_check,
                max_encodes: sluice_core::export::MAX_ENCODES,
            },
            notes,
            effects: effects.clone(),
        });
    }
    Ok(out)
}

/// The effects an export runs: the catalog, and the steps as they will run.
type ExportEffects = (std::sync::Arc<crate::effects::Catalog>, Vec<EffectStep>);

/// The effects of `catalog` (default: the built-ins), when `steps` name any: each found and its
/// parameters checked, so an unknown effect or a parameter it refuses is said before anything
/// runs. Returns the catalog and the steps as they will run: a number given to an enumerated
/// parameter that is the name of one of its choices (`mains=60` on a command line) is that
/// choice.
fn effect_catalog(
    steps: &[EffectStep],
    catalog: Option<&std::sync::Arc<crate::effects::Catalog>>,
) -> Result<Option<ExportEffects>, OrderError> {
    if steps.is_empty() {
        return Ok(None);
    }
    let catalog = match catalog {
        Some(c) => std::sync::Arc::clone(c),
        None => {
            let runtime = crate::effects::Runtime::new(None)
                .map_err(|e| OrderError::Usage(format!("the effect runtime: {e}")))?;
            std::sync::Arc::new(crate::effects::Catalog::load(runtime, None))
        }
    };
    let mut steps = steps.to_vec();
    for s in &mut steps {
        let Some(entry) = catalog.get(&s.name) else {
            if let Some(why) = catalog.refusal(&s.name) {
                return Err(OrderError::Usage(if why.contains(&s.name) {
                    why.to_string()
                } else {
                    format!("effect {}: {why}", s.name)
                }));
            }
            let names: Vec<&str> = catalog.effects.keys().map(String::as_str).collect();
            return Err(OrderError::Usage(format!(
                "effect {}: no such effect (there are: {})",
                s.name,
                names.join(", ")
            )));
        };
        let descriptor = &entry.effect.descriptor;
        for (k, v) in &s.params {
            descriptor
                .resolve(k, &crate::effects::toml_value(v))
                .map_err(|e| OrderError::Usage(format!("effect {}: {e}", s.name)))?;
        }
    }
    Ok(Some((catalog, steps)))
}

/// One input's export, as [`export_quiet`] gives it: the report or the error, and the notes
/// about settings the format could not take as asked.
pub struct Exported {
    pub input: PathBuf,
    pub result: std::result::Result<ExportReport, ExportError>,
    pub notes: Vec<String>,
}

/// The export `o` asks for, without progress bars or printing, each input in turn on this
/// thread; `progress` gets each input's share done (0..1) as it renders, and `stop` is asked
/// before every block (its reason ends the input with
/// [`InputError::Interrupted`](sluice_core::InputError::Interrupted), nothing written).
pub fn export_quiet(
    o: &ExportOrder,
    progress: &mut dyn FnMut(usize, f64),
    stop: Option<StopCheck>,
) -> Result<Vec<Exported>, OrderError> {
    let jobs = plan(o)?;
    let mut out = Vec::new();
    for (i, job) in jobs.into_iter().enumerate() {
        let result = job.run(
            &mut |p| {
                if let Some(total) = p.total.filter(|t| *t > 0) {
                    let done = p.frames.min(total) as f64 / total as f64;
                    progress(i, if p.final_pass { done } else { 0.0 });
                }
            },
            stop.clone(),
        );
        out.push(Exported {
            input: job.input,
            result,
            notes: job.notes,
        });
    }
    Ok(out)
}
