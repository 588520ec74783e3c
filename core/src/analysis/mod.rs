//! Analysis: streaming analyzers that one decode pass feeds, and the report they fill.
//!
//! [`plan`] builds the analyzers a file needs for the requested [`Section`]s; each is an
//! [`Analyzer`] that takes planar blocks and at the end writes its part of the
//! [`AnalysisReport`]. [`analyze`] runs them all in one thread; the host spreads them over
//! threads (they are `Send` and independent), which is why true peak is one analyzer per
//! channel. Memory is bounded by the block size plus each analyzer's reduced data (100 ms
//! loudness energies, 3 s level blocks, the tempo onset envelope), never by the samples.
//!
//! One file per analyzer: each module holds its meter and the [`Analyzer`] adapter that feeds
//! it and writes its section (`loudness.rs`: K-weighting and the loudness figures,
//! `truepeak.rs`, `levels.rs`, `stereo.rs`, `waveform.rs`, `spectrum.rs`: the long-term
//! spectrum and the spectral features, `music.rs`: tempo and key from one mono mix,
//! `targets.rs`); this file has the report, the options and [`plan`].

/// Defines `fn $name(args) -> R` that runs `$body(args)` compiled with AVX2 enabled where the
/// CPU has it, and as plain code elsewhere. The body is `#[inline(always)]` code written so
/// that it vectorises (lanes of independent sums); AVX2 only widens the vectors, the operations
/// and their order stay the same, so both give the same results.
macro_rules! avx2_where_present {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? => $body:path) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2")]
                fn avx2($($arg: $ty),*) $(-> $ret)? {
                    $body($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: the CPU has the feature `avx2` is compiled for.
                    return unsafe { avx2($($arg),*) };
                }
            }
            $body($($arg),*)
        }
    };
}

pub mod bands;
pub mod character;
pub mod compare;
pub mod key;
pub mod levels;
pub mod loudness;
mod music;
pub mod signature;
pub mod spectrum;
pub mod speech;
mod speech_model;
pub mod stereo;
pub mod targets;
pub mod tempo;
pub mod truepeak;
pub mod waveform;

use crate::decode::{Decoder, StreamInfo};
use crate::error::InputError;
use serde::Serialize;
use std::path::{Path, PathBuf};

pub use levels::Levels;
pub use spectrum::Spectrum;
pub use stereo::Stereo;
pub use targets::{Target, TargetCheck};
pub use waveform::Waveform;

/// A periodic Hann window of `n` samples (the STFT window of the spectrum and key analyzers).
pub fn hann(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (0.5 - 0.5 * (std::f64::consts::TAU * i as f64 / n as f64).cos()) as f32)
        .collect()
}

/// A part of the analysis that can be asked for on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Section {
    Loudness,
    Levels,
    Spectrum,
    Stereo,
    Tempo,
    Key,
    Waveform,
    Targets,
    /// Per-band metrics (see [`bands`]): asked for by name, not yet part of [`Section::ALL`]
    /// (they add about 30 % to the full analysis, where 15 % is the budget).
    Bands,
    /// Transients and harmonic figures (see [`character`]): asked for by name.
    Character,
    /// Speech steps and segments (see [`speech`]): asked for by name (delivery QC asks for it
    /// when a rule is speech-gated).
    Speech,
}

impl Section {
    /// Every section that can be asked for: [`Section::ALL`], the per-band metrics and the
    /// character.
    pub const KNOWN: [Section; 11] = [
        Section::Loudness,
        Section::Levels,
        Section::Spectrum,
        Section::Stereo,
        Section::Tempo,
        Section::Key,
        Section::Waveform,
        Section::Targets,
        Section::Bands,
        Section::Character,
        Section::Speech,
    ];

    /// The full analysis: every known section but the per-band metrics and the character (the
    /// last two).
    pub const ALL: [Section; 8] = {
        let mut all = [Section::Loudness; 8];
        let mut i = 0;
        while i < all.len() {
            all[i] = Section::KNOWN[i];
            i += 1;
        }
        all
    };

    pub fn name(self) -> &'static str {
        match self {
            Section::Loudness => "loudness",
            Section::Levels => "levels",
            Section::Spectrum => "spectrum",
            Section::Stereo => "stereo",
            Section::Tempo => "tempo",
            Section::Key => "key",
            Section::Waveform => "waveform",
            Section::Targets => "targets",
            Section::Bands => "bands",
            Section::Character => "character",
            Section::Speech => "speech",
        }
    }

    pub fn parse(s: &str) -> Option<Section> {
        Section::KNOWN.into_iter().find(|x| x.name() == s)
    }
}

/// What to analyse and how.
#[derive(Debug, Clone)]
pub struct AnalysisOptions {
    pub sections: Vec<Section>,
    /// Keep momentary/short-term loudness history at this step (seconds, multiple of 0.1).
    pub loudness_history_seconds: Option<f64>,
    /// Number of waveform buckets.
    pub waveform_buckets: usize,
    /// Threshold for leading/trailing silence, dBFS.
    pub silence_threshold_dbfs: f64,
    /// Targets to check (the presets by default).
    pub targets: Vec<Target>,
    /// Preferred tempo range (BPM, low and high); `None` for the default
    /// ([`tempo::DEFAULT_RANGE`]). See [`tempo::TempoAnalyzer::with_range`].
    pub tempo_range: Option<(f64, f64)>,
}

impl Default for AnalysisOptions {
    fn default() -> Self {
        AnalysisOptions {
            sections: Section::ALL.to_vec(),
            loudness_history_seconds: None,
            waveform_buckets: 1000,
            silence_threshold_dbfs: -60.0,
            targets: Target::presets(),
            tempo_range: None,
        }
    }
}

impl AnalysisOptions {
    pub fn wants(&self, s: Section) -> bool {
        self.sections.contains(&s)
    }
}

/// The loudness section: BS.1770-4 / EBU R 128 figures.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Loudness {
    #[serde(flatten)]
    pub summary: loudness::LoudnessSummary,
    /// Highest absolute sample value, dBFS.
    pub sample_peak_dbfs: Option<f64>,
    /// True peak over all channels, dBTP.
    pub true_peak_dbtp: Option<f64>,
    pub true_peak_dbtp_per_channel: Vec<Option<f64>>,
    /// Peak-to-loudness ratio: true peak minus integrated loudness, LU.
    pub plr_lu: Option<f64>,
    /// With a loudness history: the true peak (all channels) of each of its steps, dBTP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub true_peak_history_dbtp: Option<Vec<Option<f64>>>,
}

/// Tempo: `bpm` and `confidence` are `None` when the file has no clear beat or is too short.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, Default)]
pub struct TempoSection {
    pub bpm: Option<f64>,
    pub confidence: Option<f64>,
    /// The runner-up metrical level (usually ×2 or ×½ of `bpm`) and its confidence.
    pub alternative_bpm: Option<f64>,
    pub alternative_confidence: Option<f64>,
}

/// Key: `None` fields when the file is atonal, silent or too short.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, Default)]
pub struct KeySection {
    /// For example "A minor".
    pub key: Option<String>,
    pub tonic: Option<String>,
    pub mode: Option<String>,
    pub confidence: Option<f64>,
    /// Tuning offset from A4 = 440 Hz, cents.
    pub tuning_cents: Option<f64>,
}

/// Everything measured about one file. Sections not asked for are absent from the JSON;
/// figures that are undefined for this file (the loudness of silence, the tempo of 10 ms) are
/// `null`.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct AnalysisReport {
    pub path: PathBuf,
    pub stream: StreamInfo,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loudness: Option<Loudness>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub levels: Option<Levels>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spectrum: Option<Spectrum>,
    /// `null` for files without a left/right pair.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stereo: Option<Option<Stereo>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tempo: Option<TempoSection>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<KeySection>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waveform: Option<Waveform>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub targets: Option<Vec<TargetCheck>>,
    /// Per-band metrics of the front pair (or the mono mix), see [`bands`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bands: Option<Vec<bands::BandMetrics>>,
    /// Transients and harmonic figures of the mono mix, see [`character`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub character: Option<character::Character>,
    /// Speech share and segments of the mono mix, see [`speech`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub speech: Option<speech::Speech>,
    /// Partial results passed between analyzers while finishing.
    #[serde(skip)]
    scratch: Scratch,
}

#[derive(Debug, Clone, Default)]
struct Scratch {
    /// (channel, K-weighted energy per 100 ms step).
    channel_energy: Vec<(usize, Vec<f64>)>,
}

impl AnalysisReport {
    fn new(path: PathBuf, stream: StreamInfo) -> Self {
        AnalysisReport {
            path,
            stream,
            loudness: None,
            levels: None,
            spectrum: None,
            stereo: None,
            tempo: None,
            key: None,
            waveform: None,
            targets: None,
            bands: None,
            character: None,
            speech: None,
            scratch: Scratch::default(),
        }
    }
}

/// One streaming analyzer. `feed` gets every block of the file in order (planar, all
/// channels); `finish` writes its part of the report. Analyzers are finished in plan order.
pub trait Analyzer: Send {
    fn feed(&mut self, planes: &[&[f32]]);
    fn finish(self: Box<Self>, report: &mut AnalysisReport);
    /// CPU cost, for spreading analyzers over threads: milliseconds of CPU per minute of
    /// 48 kHz audio on the machine the figures were measured on (only their ratios matter).
    /// `cargo run --release -p sluice-core --example analyzer_costs -- FILE` measures them.
    fn cost(&self) -> f64;
    fn name(&self) -> &'static str;
}

/// A linear level in dB; `None` for zero (silence).
pub(crate) fn db(lin: f64) -> Option<f64> {
    (lin > 0.0).then(|| 20.0 * lin.log10())
}

/// The largest magnitude in `x`, NaN ignored (as `f32::max` folds it): on the bit patterns,
/// whose order is the order of the magnitudes, so that it vectorises (`f32::max`'s NaN rule
/// kept the fold scalar).
#[inline]
pub(crate) fn abs_max(x: &[f32]) -> f32 {
    const INF: u32 = 0x7f80_0000;
    let bits = |v: f32| {
        let b = v.to_bits() & 0x7fff_ffff;
        if b > INF { 0 } else { b }
    };
    let mut lanes = [0u32; 8];
    let chunks = x.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for (l, &v) in lanes.iter_mut().zip(c) {
            *l = (*l).max(bits(v));
        }
    }
    let m = rest.iter().fold(0, |m, &v| m.max(bits(v)));
    f32::from_bits(lanes.into_iter().fold(m, u32::max))
}

/// Mean of all channels, for the analyzers of the mono mix.
pub(crate) fn mono_into(planes: &[&[f32]], out: &mut Vec<f32>) {
    out.clear();
    match planes {
        [] => {}
        // One pass for the usual layouts (zeroing, adding and scaling in turn went over the
        // round three times).
        [m] => out.extend_from_slice(m),
        [l, r] => out.extend(l.iter().zip(*r).map(|(a, b)| (a + b) * 0.5)),
        [first, rest @ ..] => {
            out.extend_from_slice(first);
            for p in rest {
                for (o, v) in out.iter_mut().zip(*p) {
                    *o += v;
                }
            }
            let k = 1.0 / planes.len() as f32;
            out.iter_mut().for_each(|v| *v *= k);
        }
    }
}

/// Index of the left and right channels, when the file has such a pair.
fn front_pair(info: &StreamInfo) -> Option<(usize, usize)> {
    let pos = |name: &str| info.channel_layout.iter().position(|p| p == name);
    match (pos("FL"), pos("FR")) {
        (Some(l), Some(r)) => Some((l, r)),
        _ if info.channels == 2 => Some((0, 1)),
        _ => None,
    }
}

/// The analyzers for a file with these stream facts. Targets imply loudness.
pub fn plan(info: &StreamInfo, opts: &AnalysisOptions) -> Vec<Box<dyn Analyzer>> {
    let rate = info.sample_rate;
    let ch = info.channels as usize;
    let mut out: Vec<Box<dyn Analyzer>> = Vec::new();
    if opts.wants(Section::Loudness) || opts.wants(Section::Targets) {
        let weights: Vec<f64> = layout(info)
            .iter()
            .map(|p| loudness::channel_weight(p))
            .collect();
        let weighted: Vec<usize> = (0..ch).filter(|&c| weights[c] != 0.0).collect();
        for pair in weighted.chunks(2) {
            out.push(Box::new(loudness::ChannelEnergyA {
                channels: pair
                    .iter()
                    .map(|&c| (c, loudness::ChannelEnergy::new(rate)))
                    .collect(),
            }));
        }
        out.push(Box::new(loudness::LoudnessA {
            weights,
            history: opts.loudness_history_seconds,
            channels: ch,
        }));
        for c in 0..ch {
            // With a loudness history, the true peak of each of its steps too.
            let step = opts
                .loudness_history_seconds
                .map(|s| (f64::from(rate) * (s * 10.0).round().max(1.0) / 10.0).round() as usize);
            out.push(Box::new(truepeak::TruePeakA::new(c, rate, step)));
        }
    }
    if opts.wants(Section::Levels) {
        out.push(Box::new(levels::LevelsA(
            levels::LevelMeter::new(rate, ch, opts.silence_threshold_dbfs),
            ch,
        )));
    }
    // The bands analyzer measures the stereo section in its own pass over the front pair.
    let stereo_in_bands = opts.wants(Section::Bands) && front_pair(info).is_some();
    if opts.wants(Section::Bands) {
        out.push(Box::new(bands::BandsA {
            meter: bands::BandMeter::new(rate),
            pair: front_pair(info).or(Some((0, 0)).filter(|_| ch == 1)),
            stereo: stereo_in_bands && opts.wants(Section::Stereo),
            mono: Vec::new(),
        }));
    }
    if opts.wants(Section::Stereo)
        && !stereo_in_bands
        && let Some((l, r)) = front_pair(info)
    {
        out.push(Box::new(stereo::StereoA(
            stereo::StereoMeter::new(rate),
            l,
            r,
        )));
    }
    if opts.wants(Section::Spectrum) {
        let chans: Vec<usize> = (0..ch)
            .filter(|&c| info.channel_layout.get(c).is_none_or(|p| p != "LFE"))
            .collect();
        let n = chans.len();
        out.push(Box::new(spectrum::SpectrumA(
            spectrum::SpectrumMeter::new(rate, chans),
            n,
        )));
        out.push(Box::new(spectrum::FeaturesA(
            spectrum::FeatureMeter::new(rate),
            Vec::new(),
        )));
    }
    if opts.wants(Section::Waveform) {
        out.push(Box::new(waveform::WaveformA(
            waveform::WaveformMeter::new(ch, opts.waveform_buckets, info.frames),
            rate,
            ch,
        )));
    }
    if opts.wants(Section::Tempo) || opts.wants(Section::Key) {
        out.push(Box::new(music::MusicA {
            tempo: opts.wants(Section::Tempo).then(|| {
                let (lo, hi) = opts.tempo_range.unwrap_or(tempo::DEFAULT_RANGE);
                tempo::TempoAnalyzer::with_range(rate, lo, hi)
            }),
            key: opts
                .wants(Section::Key)
                .then(|| key::KeyAnalyzer::new(rate)),
            mono: Vec::new(),
        }));
    }
    if opts.wants(Section::Character) {
        out.push(Box::new(character::CharacterA::new(rate)));
    }
    if opts.wants(Section::Speech) {
        out.push(Box::new(speech::SpeechA {
            detector: speech::SpeechDetector::new(rate),
            mono: Vec::new(),
        }));
    }
    if opts.wants(Section::Targets) {
        out.push(Box::new(targets::TargetsA(opts.targets.clone())));
    }
    out
}

/// Speaker positions, padded with unnamed channels if the layout is shorter.
fn layout(info: &StreamInfo) -> Vec<String> {
    let mut l = info.channel_layout.clone();
    l.resize(info.channels as usize, String::new());
    l
}

/// Sections that apply to this stream but were not filled by an analyzer get their
/// "undefined" value (for example `stereo: null` for a mono file).
fn complete(report: &mut AnalysisReport, opts: &AnalysisOptions) {
    if opts.wants(Section::Stereo) && report.stereo.is_none() {
        report.stereo = Some(None);
    }
    if !opts.wants(Section::Loudness) {
        report.loudness = None;
    }
}

/// The report of a file whose every block has been fed to `analyzers` (in plan order, as
/// [`plan`] made them): each writes its part, then undefined sections are filled in. The host
/// uses this after feeding the analyzers on its own threads.
pub fn conclude(
    decoder: Decoder,
    analyzers: impl IntoIterator<Item = Box<dyn Analyzer>>,
    opts: &AnalysisOptions,
) -> AnalysisReport {
    let path = decoder.path().to_path_buf();
    let decoded = decoder.frames_decoded();
    let mut info = decoder.into_info();
    // A stream whose header gave no length (a raw MP3 without an Info tag) has it now.
    if info.frames.is_none() {
        info.frames = Some(decoded);
        info.frames_source = Some(crate::decode::FrameCountSource::Decoded);
        info.duration_seconds =
            (info.sample_rate > 0).then(|| decoded as f64 / f64::from(info.sample_rate));
    }
    conclude_stream(path, info, analyzers, opts)
}

/// [`conclude`] for analyzers fed a signal other than a decoder's (the render's analysis tap):
/// `stream` describes what they were fed.
pub fn conclude_stream(
    path: PathBuf,
    stream: StreamInfo,
    analyzers: impl IntoIterator<Item = Box<dyn Analyzer>>,
    opts: &AnalysisOptions,
) -> AnalysisReport {
    let mut report = AnalysisReport::new(path, stream);
    for a in analyzers {
        a.finish(&mut report);
    }
    complete(&mut report, opts);
    report
}

/// Analyse `path` in one decode pass on this thread. `progress` is called after each block
/// with the frames decoded so far.
pub fn analyze(
    path: &Path,
    opts: &AnalysisOptions,
    progress: &mut dyn FnMut(u64),
) -> Result<AnalysisReport, InputError> {
    let mut dec = Decoder::open(path)?;
    let mut analyzers = plan(dec.info(), opts);
    while let Some(block) = dec.next_block()? {
        let planes: Vec<&[f32]> = block.planes().collect();
        for a in &mut analyzers {
            a.feed(&planes);
        }
        progress(dec.frames_decoded());
    }
    Ok(conclude(dec, analyzers, opts))
}
