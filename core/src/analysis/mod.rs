//! Analysis: streaming analyzers that one decode pass feeds, and the report they fill.
//!
//! [`plan`] builds the analyzers a file needs for the requested [`Section`]s; each is an
//! [`Analyzer`] that takes planar blocks and at the end writes its part of the
//! [`AnalysisReport`]. [`analyze`] runs them all in one thread; the host spreads them over
//! threads (they are `Send` and independent), which is why true peak is one analyzer per
//! channel. Memory is bounded by the block size plus each analyzer's reduced data (100 ms
//! loudness energies, 3 s level blocks, the tempo onset envelope), never by the samples.

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

pub mod key;
pub mod levels;
pub mod loudness;
pub mod spectrum;
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
}

impl Section {
    pub const ALL: [Section; 8] = [
        Section::Loudness,
        Section::Levels,
        Section::Spectrum,
        Section::Stereo,
        Section::Tempo,
        Section::Key,
        Section::Waveform,
        Section::Targets,
    ];

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
        }
    }

    pub fn parse(s: &str) -> Option<Section> {
        Section::ALL.into_iter().find(|x| x.name() == s)
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
#[derive(Debug, Clone, PartialEq, Serialize)]
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
}

/// Tempo: `bpm` and `confidence` are `None` when the file has no clear beat or is too short.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct TempoSection {
    pub bpm: Option<f64>,
    pub confidence: Option<f64>,
    /// The runner-up metrical level (usually ×2 or ×½ of `bpm`) and its confidence.
    pub alternative_bpm: Option<f64>,
    pub alternative_confidence: Option<f64>,
}

/// Key: `None` fields when the file is atonal, silent or too short.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
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
#[derive(Debug, Clone, Serialize)]
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

/// K-weighting of one channel or a pair (filtered together, which costs little more than one);
/// the energies go to [`LoudnessA`] through the report's scratch.
struct ChannelEnergyA {
    channels: Vec<(usize, loudness::ChannelEnergy)>,
}

impl Analyzer for ChannelEnergyA {
    fn feed(&mut self, planes: &[&[f32]]) {
        match self.channels.as_mut_slice() {
            [(ca, a), (cb, b)] => {
                loudness::ChannelEnergy::feed_pair(a, b, planes[*ca], planes[*cb]);
            }
            list => {
                for (c, e) in list {
                    e.feed(planes[*c]);
                }
            }
        }
    }
    fn finish(self: Box<Self>, r: &mut AnalysisReport) {
        for (c, mut e) in self.channels {
            r.scratch.channel_energy.push((c, e.take_steps()));
        }
    }
    fn cost(&self) -> f64 {
        // A pair is filtered together, for little more than one channel.
        if self.channels.len() == 2 { 10.0 } else { 8.0 }
    }
    fn name(&self) -> &'static str {
        "k_weighting"
    }
}

/// Combines the channels' energies into the loudness figures (after every [`ChannelEnergyA`]).
struct LoudnessA {
    weights: Vec<f64>,
    history: Option<f64>,
    channels: usize,
}

impl Analyzer for LoudnessA {
    fn feed(&mut self, _: &[&[f32]]) {}
    fn finish(self: Box<Self>, r: &mut AnalysisReport) {
        let mut parts = std::mem::take(&mut r.scratch.channel_energy);
        parts.sort_by_key(|p| p.0);
        let weights: Vec<f64> = parts.iter().map(|p| self.weights[p.0]).collect();
        let energies: Vec<Vec<f64>> = parts.into_iter().map(|p| p.1).collect();
        let steps = loudness::combine(&weights, &energies);
        let summary = loudness::summarize(&steps, self.history);
        r.loudness = Some(Loudness {
            summary,
            sample_peak_dbfs: None,
            true_peak_dbtp: None,
            true_peak_dbtp_per_channel: vec![None; self.channels],
            plr_lu: None,
        });
    }
    fn cost(&self) -> f64 {
        0.0
    }
    fn name(&self) -> &'static str {
        "loudness"
    }
}

struct TruePeakA {
    channel: usize,
    meter: truepeak::TruePeakMeter,
}

impl Analyzer for TruePeakA {
    fn feed(&mut self, planes: &[&[f32]]) {
        self.meter.feed(planes[self.channel]);
    }
    fn finish(self: Box<Self>, r: &mut AnalysisReport) {
        let sp = self.meter.sample_peak();
        let tp = self.meter.finish();
        if let Some(l) = r.loudness.as_mut() {
            l.true_peak_dbtp_per_channel[self.channel] = db(tp);
            let best = |a: Option<f64>, b: Option<f64>| match (a, b) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
            l.true_peak_dbtp = best(l.true_peak_dbtp, db(tp));
            l.sample_peak_dbfs = best(l.sample_peak_dbfs, db(sp));
            l.plr_lu = l
                .true_peak_dbtp
                .zip(l.summary.integrated_lufs)
                .map(|(t, i)| t - i);
        }
    }
    fn cost(&self) -> f64 {
        // 3 on programme material, where most chunks are skipped by the bound, 13 on a loud
        // master, where none are.
        8.0
    }
    fn name(&self) -> &'static str {
        "true_peak"
    }
}

struct LevelsA(levels::LevelMeter, usize);

impl Analyzer for LevelsA {
    fn feed(&mut self, planes: &[&[f32]]) {
        self.0.feed(planes);
    }
    fn finish(self: Box<Self>, r: &mut AnalysisReport) {
        r.levels = Some(self.0.finish());
    }
    fn cost(&self) -> f64 {
        2.5 * self.1 as f64
    }
    fn name(&self) -> &'static str {
        "levels"
    }
}

struct StereoA(stereo::StereoMeter, usize, usize);

impl Analyzer for StereoA {
    fn feed(&mut self, planes: &[&[f32]]) {
        self.0.feed(planes[self.1], planes[self.2]);
    }
    fn finish(self: Box<Self>, r: &mut AnalysisReport) {
        r.stereo = Some(Some(self.0.finish()));
    }
    fn cost(&self) -> f64 {
        4.0
    }
    fn name(&self) -> &'static str {
        "stereo"
    }
}

struct WaveformA(waveform::WaveformMeter, u32, usize);

impl Analyzer for WaveformA {
    fn feed(&mut self, planes: &[&[f32]]) {
        self.0.feed(planes);
    }
    fn finish(self: Box<Self>, r: &mut AnalysisReport) {
        r.waveform = Some(self.0.finish(self.1));
    }
    fn cost(&self) -> f64 {
        1.5 * self.2 as f64
    }
    fn name(&self) -> &'static str {
        "waveform"
    }
}

struct SpectrumA(spectrum::SpectrumMeter, usize);

impl Analyzer for SpectrumA {
    fn feed(&mut self, planes: &[&[f32]]) {
        self.0.feed(planes);
    }
    fn finish(self: Box<Self>, r: &mut AnalysisReport) {
        r.spectrum = Some(self.0.finish());
    }
    fn cost(&self) -> f64 {
        // The long-term spectrum per channel.
        11.5 * self.1 as f64
    }
    fn name(&self) -> &'static str {
        "spectrum"
    }
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

/// The spectral features of the mono mix (see [`spectrum::FeatureMeter`]), added to the
/// spectrum section, which [`SpectrumA`] wrote before. Apart from tempo and key (which mix
/// their own): each is a large share of the analysis, and two parts balance the threads better
/// than one.
struct FeaturesA(spectrum::FeatureMeter, Vec<f32>);

impl Analyzer for FeaturesA {
    fn feed(&mut self, planes: &[&[f32]]) {
        mono_into(planes, &mut self.1);
        self.0.feed(&self.1);
    }
    fn finish(self: Box<Self>, r: &mut AnalysisReport) {
        if let Some(s) = r.spectrum.as_mut() {
            s.set_features(self.0.finish());
        }
    }
    fn cost(&self) -> f64 {
        // A 2048-point transform every 512 frames.
        36.0
    }
    fn name(&self) -> &'static str {
        "spectral_features"
    }
}

/// Tempo and key, both from the mean of all channels, which is mixed once for the two.
struct MusicA {
    tempo: Option<tempo::TempoAnalyzer>,
    key: Option<key::KeyAnalyzer>,
    mono: Vec<f32>,
}

impl Analyzer for MusicA {
    fn feed(&mut self, planes: &[&[f32]]) {
        mono_into(planes, &mut self.mono);
        if let Some(t) = &mut self.tempo {
            t.feed(&self.mono);
        }
        if let Some(k) = &mut self.key {
            k.feed(&self.mono);
        }
    }
    fn finish(self: Box<Self>, r: &mut AnalysisReport) {
        if let Some(t) = self.tempo {
            r.tempo = Some(match t.finish() {
                Some(t) => TempoSection {
                    bpm: Some(t.bpm),
                    confidence: Some(t.confidence),
                    alternative_bpm: t.alternative_bpm,
                    alternative_confidence: t.alternative_confidence,
                },
                None => TempoSection::default(),
            });
        }
        if let Some(k) = self.key {
            r.key = Some(match k.finish() {
                Some(k) => KeySection {
                    key: Some(k.name),
                    tonic: Some(k.tonic_name),
                    mode: Some(
                        match k.mode {
                            key::Mode::Major => "major",
                            key::Mode::Minor => "minor",
                        }
                        .to_string(),
                    ),
                    confidence: Some(k.confidence),
                    tuning_cents: Some(k.tuning_cents),
                },
                None => KeySection::default(),
            });
        }
    }
    fn cost(&self) -> f64 {
        let on = |b: bool| f64::from(u8::from(b));
        6.0 * on(self.tempo.is_some()) + 11.0 * on(self.key.is_some())
    }
    fn name(&self) -> &'static str {
        "tempo_key"
    }
}

/// Targets need the loudness and true peak: finished after them.
struct TargetsA(Vec<Target>);

impl Analyzer for TargetsA {
    fn feed(&mut self, _: &[&[f32]]) {}
    fn finish(self: Box<Self>, r: &mut AnalysisReport) {
        let (i, tp) = r.loudness.as_ref().map_or((None, None), |l| {
            (l.summary.integrated_lufs, l.true_peak_dbtp)
        });
        r.targets = Some(self.0.iter().map(|t| t.assess(i, tp)).collect());
    }
    fn cost(&self) -> f64 {
        0.0
    }
    fn name(&self) -> &'static str {
        "targets"
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
            out.push(Box::new(ChannelEnergyA {
                channels: pair
                    .iter()
                    .map(|&c| (c, loudness::ChannelEnergy::new(rate)))
                    .collect(),
            }));
        }
        out.push(Box::new(LoudnessA {
            weights,
            history: opts.loudness_history_seconds,
            channels: ch,
        }));
        for c in 0..ch {
            out.push(Box::new(TruePeakA {
                channel: c,
                meter: truepeak::TruePeakMeter::new(rate),
            }));
        }
    }
    if opts.wants(Section::Levels) {
        out.push(Box::new(LevelsA(
            levels::LevelMeter::new(rate, ch, opts.silence_threshold_dbfs),
            ch,
        )));
    }
    if opts.wants(Section::Stereo)
        && let Some((l, r)) = front_pair(info)
    {
        out.push(Box::new(StereoA(stereo::StereoMeter::new(rate), l, r)));
    }
    if opts.wants(Section::Spectrum) {
        let chans: Vec<usize> = (0..ch)
            .filter(|&c| info.channel_layout.get(c).is_none_or(|p| p != "LFE"))
            .collect();
        let n = chans.len();
        out.push(Box::new(SpectrumA(
            spectrum::SpectrumMeter::new(rate, chans),
            n,
        )));
        out.push(Box::new(FeaturesA(
            spectrum::FeatureMeter::new(rate),
            Vec::new(),
        )));
    }
    if opts.wants(Section::Waveform) {
        out.push(Box::new(WaveformA(
            waveform::WaveformMeter::new(ch, opts.waveform_buckets, info.frames),
            rate,
            ch,
        )));
    }
    if opts.wants(Section::Tempo) || opts.wants(Section::Key) {
        out.push(Box::new(MusicA {
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
    if opts.wants(Section::Targets) {
        out.push(Box::new(TargetsA(opts.targets.clone())));
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
    conclude_stream(path, decoder.into_info(), analyzers, opts)
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
