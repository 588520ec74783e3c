//! Speech detection: for each 100 ms step of a file, whether someone is speaking — over music,
//! noise or nothing. Used for speech-gated (dialogue-gated) loudness in delivery QC.
//!
//! Classical features and a small classifier, nothing fetched at run time:
//! 1. The mono mix is low-passed and decimated to 8–16 kHz (speech lives under 4 kHz).
//! 2. Every 10 ms a 32 ms Hann frame gives its level, the share of its energy in the telephone
//!    band (300–3400 Hz), its voicing (the normalised autocorrelation peak at 2.5–12.5 ms, a
//!    voice's 80–400 Hz pitch) and pitch, the spectral flux and centroid over 16 bands, and how
//!    alike its spectrum is to the one 50 ms before.
//! 3. Each 100 ms step is described over the second around it ([`NF`] figures): syllabic
//!    modulation (the 2–8 Hz share and depth of the speech-band envelope's modulation spectrum),
//!    the alternation of voiced and unvoiced frames, pitch movement between voiced frames,
//!    the share of low-energy frames (speech pauses between syllables, music holds), spectral
//!    flux and stability, and the step's level against its surroundings; and over the three
//!    seconds around it, how strongly its level onsets, spectral flux and speech-band level
//!    repeat at a lag of 0.25–1.5 s (a beat repeats, syllables do not).
//! 4. A one-hidden-layer network ([`Model`], its coefficients in `speech_model.rs`, trained by
//!    `core/examples/speech_train.rs` on espeak-ng speech over music and noise beds) gives each
//!    step a probability; a short smoothing and minimum run lengths give the decision.
//!
//! This is an open detector of its own, not Dolby's Dialogue Intelligence, and its figures
//! will differ from a Dolby meter's on some material (docs/QC.md has what it was measured on).

use realfft::{ComplexToReal, RealFftPlanner, RealToComplex};
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::Arc;

use super::{AnalysisReport, Analyzer, mono_into};

/// Length of one decision step, seconds (the loudness history's step).
pub const STEP_S: f64 = 0.1;
/// Figures per step given to the classifier.
pub const NF: usize = 18;
/// Hidden units of the classifier.
pub const HIDDEN: usize = 16;
/// Frames (10 ms) per step.
const FPS: usize = 10;
/// Frames in a step's context (one second, centred on the step).
const CONTEXT: usize = 100;
/// Frames in a step's rhythm context (three seconds, centred on the step): a beat repeats
/// within it, syllables do not.
const LONG: usize = 300;
/// Lags at which the rhythm context is searched for repetition, frames (0.25–1.5 s).
const BEAT_LAGS: (usize, usize) = (25, 150);
/// Pitch search range, Hz.
const PITCH_HZ: (f32, f32) = (80.0, 400.0);
/// The telephone band, Hz.
const SPEECH_HZ: (f32, f32) = (300.0, 3400.0);
/// Spectral bands for flux, centroid and stability.
const BANDS: usize = 16;
/// Steps quieter than this (dBFS, mean square of the step) are never speech.
const QUIET_DB: f32 = -65.0;

/// What a frame (32 ms every 10 ms) contributes.
#[derive(Debug, Clone, Copy, Default)]
struct Frame {
    /// Mean square of the frame.
    ms: f32,
    /// Level in the speech band, dB.
    speech_db: f32,
    /// Share of the energy in the speech band.
    ratio: f32,
    voicing: f32,
    /// Pitch, semitones (12·log2 Hz).
    pitch_st: f32,
    flux: f32,
    /// Spectral centroid, kHz.
    centroid: f32,
    /// Correlation of the band levels with those of the frame 50 ms before.
    stability: f32,
}

/// The figures of one step, as the classifier sees them, and its level.
#[derive(Debug, Clone, Copy)]
pub struct StepFeatures {
    pub x: [f32; NF],
    /// Mean square of the step's frames, dBFS.
    pub level_db: f32,
}

/// The classifier: standardisation, one tanh layer, a logistic output.
#[derive(Debug, Clone)]
pub struct Model {
    pub mean: [f32; NF],
    pub scale: [f32; NF],
    pub w1: [[f32; NF]; HIDDEN],
    pub b1: [f32; HIDDEN],
    pub w2: [f32; HIDDEN],
    pub b2: f32,
}

impl Model {
    /// The model shipped with Sluice.
    pub fn built_in() -> Model {
        use super::speech_model as m;
        Model {
            mean: m::MEAN,
            scale: m::SCALE,
            w1: m::W1,
            b1: m::B1,
            w2: m::W2,
            b2: m::B2,
        }
    }

    /// The probability that a step with these figures is speech.
    pub fn probability(&self, x: &[f32; NF]) -> f32 {
        let z: [f32; NF] = std::array::from_fn(|i| (x[i] - self.mean[i]) / self.scale[i]);
        let mut out = self.b2;
        for h in 0..HIDDEN {
            let a = self.b1[h] + self.w1[h].iter().zip(&z).map(|(w, v)| w * v).sum::<f32>();
            out += self.w2[h] * a.tanh();
        }
        1.0 / (1.0 + (-out).exp())
    }
}

/// The speech steps from per-step probabilities: a three-step average over 0.5, quiet steps
/// excluded, gaps of up to 200 ms inside speech closed and runs of up to 200 ms dropped.
pub fn decide(probs: &[f32], features: &[StepFeatures]) -> Vec<bool> {
    let n = probs.len();
    let mut s: Vec<bool> = (0..n)
        .map(|i| {
            let (lo, hi) = (i.saturating_sub(1), (i + 2).min(n));
            let p = probs[lo..hi].iter().sum::<f32>() / (hi - lo) as f32;
            p >= 0.5 && features.get(i).is_none_or(|f| f.level_db > QUIET_DB)
        })
        .collect();
    fill_runs(&mut s, false, 2);
    fill_runs(&mut s, true, 2);
    s
}

/// Inner runs of `value` of at most `max` steps (bounded on both sides) take the other value.
fn fill_runs(s: &mut [bool], value: bool, max: usize) {
    let mut i = 0;
    while i < s.len() {
        if s[i] != value {
            i += 1;
            continue;
        }
        let start = i;
        while i < s.len() && s[i] == value {
            i += 1;
        }
        if start > 0 && i < s.len() && i - start <= max {
            s[start..i].iter_mut().for_each(|v| *v = !value);
        }
    }
}

/// The speech section of a report: each 100 ms step is speech, silence or other sound (music,
/// noise, effects: anything sounding that is not speech).
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Speech {
    /// Share of the file's steps that are speech, 0–1.
    pub share: f64,
    /// Speech segments, `[start, end]` in seconds.
    pub segments: Vec<[f64; 2]>,
    /// Share and segments of silence: steps under −65 dBFS, or more than [`SILENCE_UNDER_DB`]
    /// under the file's loud steps (its 95th percentile), that are not speech.
    pub silence_share: f64,
    pub silence_segments: Vec<[f64; 2]>,
    /// Share and segments of everything else: sound that is not speech (music, noise).
    pub music_share: f64,
    pub music_segments: Vec<[f64; 2]>,
    /// Per 100 ms step: speech or not.
    #[serde(skip)]
    pub steps: Vec<bool>,
}

/// Silence is this far under the file's loud steps (dB).
pub const SILENCE_UNDER_DB: f32 = 45.0;

/// What a 100 ms step holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    Speech,
    Music,
    Silence,
}

/// The steps that are `class`, as `[start, end]` seconds, and their share of all steps.
fn runs(classes: &[Class], class: Class) -> (f64, Vec<[f64; 2]>) {
    let mut segments: Vec<[f64; 2]> = Vec::new();
    for (i, &c) in classes.iter().enumerate() {
        let (a, b) = (i as f64 * STEP_S, (i + 1) as f64 * STEP_S);
        let on = c == class;
        match segments.last_mut() {
            Some(seg) if on && (seg[1] - a).abs() < 1e-9 => seg[1] = b,
            _ if on => segments.push([a, b]),
            _ => {}
        }
    }
    let share = if classes.is_empty() {
        0.0
    } else {
        classes.iter().filter(|&&c| c == class).count() as f64 / classes.len() as f64
    };
    (share, segments)
}

/// Each step's class, from its speech decision and its level (dBFS; `None`: unknown, counted
/// as sound).
pub fn classes(steps: &[bool], levels: &[Option<f32>]) -> Vec<Class> {
    let mut known: Vec<f32> = levels.iter().flatten().copied().collect();
    known.sort_by(f32::total_cmp);
    let loud = known
        .get(((known.len().max(1) - 1) as f32 * 0.95) as usize)
        .copied()
        .unwrap_or(0.0);
    let quiet = QUIET_DB.max(loud - SILENCE_UNDER_DB);
    steps
        .iter()
        .enumerate()
        .map(|(i, &speech)| match levels.get(i).copied().flatten() {
            _ if speech => Class::Speech,
            Some(l) if l <= quiet => Class::Silence,
            _ => Class::Music,
        })
        .collect()
}

impl Speech {
    /// From each step's speech decision alone (silence not told apart: every other step is
    /// other sound).
    pub fn from_steps(steps: Vec<bool>) -> Speech {
        Speech::from_classes(steps, &[])
    }

    /// From each step's speech decision and level (dBFS mean square).
    pub fn from_classes(steps: Vec<bool>, levels: &[Option<f32>]) -> Speech {
        let classes = classes(&steps, levels);
        let (share, segments) = runs(&classes, Class::Speech);
        let (silence_share, silence_segments) = runs(&classes, Class::Silence);
        let (music_share, music_segments) = runs(&classes, Class::Music);
        Speech {
            share,
            segments,
            silence_share,
            silence_segments,
            music_share,
            music_segments,
            steps,
        }
    }
}

/// The streaming front end: mono samples in, per-step figures out.
pub struct SpeechDetector {
    rate: u32,
    /// Decimation factor and the decimated rate.
    factor: usize,
    r: f64,
    taps: Vec<f32>,
    /// Undecimated samples from absolute index `in_base`.
    input: Vec<f32>,
    in_base: usize,
    /// Decimated samples from absolute index `dec_base`.
    dec: Vec<f32>,
    dec_base: usize,
    /// Next frame to compute.
    frame_no: usize,
    n: usize,
    window: Vec<f32>,
    window_power: f32,
    /// Autocorrelation of the window, normalised, by lag.
    window_acf: Vec<f32>,
    fft: Arc<dyn RealToComplex<f32>>,
    ifft: Arc<dyn ComplexToReal<f32>>,
    buf: Vec<f32>,
    spec: Vec<realfft::num_complex::Complex<f32>>,
    acf: Vec<f32>,
    bins: Bins,
    /// Band levels (ln) of the last few frames, newest last.
    recent_bands: VecDeque<[f32; BANDS]>,
    frames: VecDeque<Frame>,
    /// Absolute number of `frames[0]`.
    frames_base: usize,
    steps: Vec<StepFeatures>,
    /// Samples taken, at the file's rate.
    taken: u64,
    /// Modulation spectrum basis: (cos, sin) for 1–25 Hz over the context, Hann-windowed.
    basis: Vec<(Vec<f32>, Vec<f32>)>,
}

/// FFT bin ranges of the figures.
struct Bins {
    all: (usize, usize),
    speech: (usize, usize),
    bands: Vec<(usize, usize)>,
    /// Centre frequency of each bin, kHz.
    khz: Vec<f32>,
    lags: (usize, usize),
}

impl SpeechDetector {
    pub fn new(rate: u32) -> SpeechDetector {
        let factor = (rate / 8000).max(1) as usize;
        let r = f64::from(rate) / factor as f64;
        // Low-pass at 3.7 kHz (or 0.45 of the new rate) before decimating: windowed sinc.
        let cutoff = (3700.0f64).min(0.45 * r) / f64::from(rate);
        let len = 8 * factor + 1;
        let taps: Vec<f32> = if factor == 1 {
            vec![1.0]
        } else {
            let mid = (len / 2) as f64;
            let raw: Vec<f64> = (0..len)
                .map(|i| {
                    let t = i as f64 - mid;
                    let sinc = if t == 0.0 {
                        2.0 * cutoff
                    } else {
                        (2.0 * std::f64::consts::PI * cutoff * t).sin() / (std::f64::consts::PI * t)
                    };
                    let w = 0.42
                        - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / (len - 1) as f64).cos()
                        + 0.08 * (4.0 * std::f64::consts::PI * i as f64 / (len - 1) as f64).cos();
                    sinc * w
                })
                .collect();
            let sum: f64 = raw.iter().sum();
            raw.iter().map(|v| (v / sum) as f32).collect()
        };
        let n = (0.032 * r).round() as usize;
        let m = (2 * n).next_power_of_two();
        let window: Vec<f32> = (0..n)
            .map(|i| 0.5 - 0.5 * (2.0 * std::f32::consts::PI * (i as f32 + 0.5) / n as f32).cos())
            .collect();
        let window_power: f32 = window.iter().map(|w| w * w).sum();
        let window_acf: Vec<f32> = (0..n)
            .map(|t| {
                window[..n - t]
                    .iter()
                    .zip(&window[t..])
                    .map(|(a, b)| a * b)
                    .sum::<f32>()
                    / window_power
            })
            .collect();
        let mut planner = RealFftPlanner::<f32>::new();
        let fft = planner.plan_fft_forward(m);
        let ifft = planner.plan_fft_inverse(m);
        let hz = |k: usize| k as f64 * r / m as f64;
        let bin = |f: f32| ((f64::from(f) * m as f64 / r).round() as usize).min(m / 2);
        let top = (4000.0f32).min((0.47 * r) as f32);
        let edges: Vec<f32> = (0..=BANDS)
            .map(|j| 100.0 * (top / 100.0).powf(j as f32 / BANDS as f32))
            .collect();
        let bands = edges
            .windows(2)
            .map(|e| {
                let (a, b) = (bin(e[0]), bin(e[1]));
                (a, b.max(a + 1))
            })
            .collect();
        let bins = Bins {
            all: (bin(60.0), bin(top)),
            speech: (bin(SPEECH_HZ.0), bin(SPEECH_HZ.1.min(top))),
            bands,
            khz: (0..=m / 2).map(|k| (hz(k) / 1000.0) as f32).collect(),
            lags: (
                (r / f64::from(PITCH_HZ.1)).floor() as usize,
                ((r / f64::from(PITCH_HZ.0)).ceil() as usize).min(n - 1),
            ),
        };
        let basis = (1..=25)
            .map(|k| {
                let w = |i: usize| {
                    0.5 - 0.5
                        * (2.0 * std::f32::consts::PI * (i as f32 + 0.5) / CONTEXT as f32).cos()
                };
                let ang =
                    |i: usize| 2.0 * std::f32::consts::PI * k as f32 * i as f32 / CONTEXT as f32;
                (
                    (0..CONTEXT).map(|i| w(i) * ang(i).cos()).collect(),
                    (0..CONTEXT).map(|i| w(i) * ang(i).sin()).collect(),
                )
            })
            .collect();
        SpeechDetector {
            rate,
            factor,
            r,
            taps,
            input: Vec::new(),
            in_base: 0,
            dec: Vec::new(),
            dec_base: 0,
            frame_no: 0,
            n,
            window,
            window_power,
            window_acf,
            buf: fft.make_input_vec(),
            spec: fft.make_output_vec(),
            acf: ifft.make_output_vec(),
            fft,
            ifft,
            bins,
            recent_bands: VecDeque::new(),
            frames: VecDeque::new(),
            frames_base: 0,
            steps: Vec::new(),
            taken: 0,
            basis,
        }
    }

    /// Feed the next samples of the mono mix.
    pub fn feed(&mut self, mono: &[f32]) {
        self.taken += mono.len() as u64;
        self.push(mono);
        self.steps_ready();
    }

    /// The figures of every step of what was fed.
    pub fn finish(mut self) -> Vec<StepFeatures> {
        // The tail: zeros so that the last samples reach a frame and the last steps a context.
        let pad = vec![0.0; self.taps.len() + (self.n + (1.6 * self.r) as usize) * self.factor];
        self.push(&pad);
        self.steps_ready();
        self.steps
    }

    /// Decimate `mono` and cut the frames it completes.
    fn push(&mut self, mono: &[f32]) {
        self.input.extend_from_slice(mono);
        // Decimate: output j is the filtered input from j·factor on.
        let (f, len) = (self.factor, self.taps.len());
        let mut j = (self.in_base).div_ceil(f);
        while j * f + len <= self.in_base + self.input.len() {
            let at = j * f - self.in_base;
            let y: f32 = self.input[at..at + len]
                .iter()
                .zip(&self.taps)
                .map(|(x, t)| x * t)
                .sum();
            self.dec.push(y);
            j += 1;
        }
        let keep_from = (j * f).saturating_sub(self.in_base).min(self.input.len());
        self.input.drain(..keep_from);
        self.in_base += keep_from;
        self.frames_ready();
    }

    /// Start of frame `k` in decimated samples (10 ms apart, not rounded cumulatively).
    fn frame_start(&self, k: usize) -> usize {
        (k as f64 * self.r / 100.0).round() as usize
    }

    fn frames_ready(&mut self) {
        loop {
            let start = self.frame_start(self.frame_no);
            if start + self.n > self.dec_base + self.dec.len() {
                break;
            }
            let at = start - self.dec_base;
            let frame = self.frame(at);
            self.frames.push_back(frame);
            self.frame_no += 1;
            let next = self.frame_start(self.frame_no) - self.dec_base;
            let drop = next.min(self.dec.len());
            self.dec.drain(..drop);
            self.dec_base += drop;
        }
    }

    /// The figures of the frame at `dec[at..at + n]`.
    fn frame(&mut self, at: usize) -> Frame {
        let n = self.n;
        let mut energy = 0.0f32;
        for (b, (x, w)) in self
            .buf
            .iter_mut()
            .zip(self.dec[at..at + n].iter().zip(&self.window))
        {
            *b = x * w;
            energy += *b * *b;
        }
        self.buf[n..].iter_mut().for_each(|b| *b = 0.0);
        let ms = energy / self.window_power;
        if self.fft.process(&mut self.buf, &mut self.spec).is_err() {
            return Frame::default();
        }
        let bins = &self.bins;
        let power: Vec<f32> = self.spec.iter().map(|c| c.norm_sqr()).collect();
        let sum = |(a, b): (usize, usize)| power[a..b].iter().sum::<f32>();
        let all = sum(bins.all) + 1e-20;
        let speech = sum(bins.speech);
        let ratio = speech / all;
        let speech_db = 10.0 * (ms * ratio + 1e-12).log10();
        let centroid = power[bins.all.0..bins.all.1]
            .iter()
            .zip(&bins.khz[bins.all.0..bins.all.1])
            .map(|(p, f)| p * f)
            .sum::<f32>()
            / all;
        // Voicing: the autocorrelation of the 60 Hz–top band, normalised by the window's.
        for (k, c) in self.spec.iter_mut().enumerate() {
            let keep = k >= bins.all.0 && k < bins.all.1;
            *c = realfft::num_complex::Complex::new(if keep { power[k] } else { 0.0 }, 0.0);
        }
        let (mut voicing, mut lag) = (0.0f32, 0usize);
        if self.ifft.process(&mut self.spec, &mut self.acf).is_ok() && self.acf[0] > 0.0 {
            let a0 = self.acf[0];
            for t in bins.lags.0..=bins.lags.1 {
                let v = self.acf[t] / a0 / self.window_acf[t].max(0.05);
                if v > voicing {
                    voicing = v;
                    lag = t;
                }
            }
        }
        let voicing = voicing.clamp(0.0, 1.0);
        let pitch_st = if lag > 0 {
            12.0 * ((self.r / lag as f64) as f32).log2()
        } else {
            0.0
        };
        let levels: [f32; BANDS] = std::array::from_fn(|j| (sum(bins.bands[j]) / all + 1e-9).ln());
        let flux = self.recent_bands.back().map_or(0.0, |prev| {
            levels
                .iter()
                .zip(prev)
                .map(|(a, b)| (a - b).max(0.0))
                .sum::<f32>()
                / BANDS as f32
        });
        let stability = if self.recent_bands.len() >= 5 {
            correlation(&levels, &self.recent_bands[self.recent_bands.len() - 5])
        } else {
            0.0
        };
        self.recent_bands.push_back(levels);
        if self.recent_bands.len() > 5 {
            self.recent_bands.pop_front();
        }
        Frame {
            ms,
            speech_db,
            ratio,
            voicing,
            pitch_st,
            flux,
            centroid,
            stability,
        }
    }

    /// Describe every step whose context is complete (after the padding of `finish`, all).
    fn steps_ready(&mut self) {
        let total_steps = (self.taken as f64 / f64::from(self.rate) / STEP_S).ceil() as usize;
        loop {
            let s = self.steps.len();
            let centre = s * FPS + FPS / 2 - 1;
            let end = centre + LONG / 2;
            if s >= total_steps || self.frames_base + self.frames.len() < end {
                break;
            }
            let have = self.frames_base + self.frames.len();
            let long = (
                centre.saturating_sub(LONG / 2).max(self.frames_base),
                end.min(have),
            );
            let lo = centre.saturating_sub(CONTEXT / 2).max(self.frames_base);
            let hi = (centre + CONTEXT / 2).min(have);
            let own_lo = (s * FPS).saturating_sub(1).max(self.frames_base);
            let own_hi = (s * FPS + FPS - 1).min(hi);
            let f = describe(
                &self.frames,
                self.frames_base,
                [long, (lo, hi), (own_lo, own_hi)],
                &self.basis,
            );
            self.steps.push(f);
            // Frames before the next step's context are no longer needed.
            let next_lo = ((s + 1) * FPS + FPS / 2 - 1).saturating_sub(LONG / 2);
            while self.frames_base < next_lo.min(self.frames_base + self.frames.len()) {
                self.frames.pop_front();
                self.frames_base += 1;
            }
        }
    }
}

/// Pearson correlation of two band-level vectors.
fn correlation(a: &[f32; BANDS], b: &[f32; BANDS]) -> f32 {
    let ma = a.iter().sum::<f32>() / BANDS as f32;
    let mb = b.iter().sum::<f32>() / BANDS as f32;
    let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        let (x, y) = (x - ma, y - mb);
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    if aa * bb > 0.0 {
        ab / (aa * bb).sqrt()
    } else {
        0.0
    }
}

/// How strongly `x` repeats itself at a lag of 0.25–1.5 s: the highest normalised
/// autocorrelation over those lags (a beat: high; speech, noise: low).
fn periodicity(x: &[f32]) -> f32 {
    let n = x.len();
    if n < 2 * BEAT_LAGS.0 {
        return 0.0;
    }
    let m = x.iter().sum::<f32>() / n as f32;
    let d: Vec<f32> = x.iter().map(|v| v - m).collect();
    let r0 = d.iter().map(|v| v * v).sum::<f32>() / n as f32;
    if r0 <= 1e-12 {
        return 0.0;
    }
    (BEAT_LAGS.0..=BEAT_LAGS.1.min(n / 2))
        .map(|lag| dot(&d[..n - lag], &d[lag..]) / (n - lag) as f32 / r0)
        .fold(0.0f32, f32::max)
        .min(1.0)
}

/// Σ a·b over two slices of one length, in eight lanes (a plain sum of `f32` keeps its order,
/// so the compiler cannot vectorise it; this runs about eight times faster).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let (ca, ra) = a.as_chunks::<8>();
    let (cb, rb) = b.as_chunks::<8>();
    let mut acc = [0.0f32; 8];
    for (x, y) in ca.iter().zip(cb) {
        for k in 0..8 {
            acc[k] += x[k] * y[k];
        }
    }
    acc.iter().sum::<f32>() + ra.iter().zip(rb).map(|(x, y)| x * y).sum::<f32>()
}

/// The rhythm figures of a step's long context: the repetition of its level onsets, of its
/// spectral flux and of its speech-band level.
fn rhythm(long: &[Frame]) -> [f32; 3] {
    let db: Vec<f32> = long.iter().map(|f| 10.0 * (f.ms + 1e-10).log10()).collect();
    let peak = db.iter().copied().fold(f32::MIN, f32::max);
    let db: Vec<f32> = db.iter().map(|v| v.max(peak - 60.0)).collect();
    let onsets: Vec<f32> = std::iter::once(0.0)
        .chain(db.windows(2).map(|w| (w[1] - w[0]).max(0.0)))
        .collect();
    let flux: Vec<f32> = long.iter().map(|f| f.flux).collect();
    let speech_peak = long.iter().map(|f| f.speech_db).fold(f32::MIN, f32::max);
    let env: Vec<f32> = long
        .iter()
        .map(|f| f.speech_db.max(speech_peak - 60.0))
        .collect();
    [periodicity(&onsets), periodicity(&flux), periodicity(&env)]
}

/// The figures of a step from the frames of its rhythm context, its context and its own
/// (ranges of absolute frame numbers; `frames[0]` is frame `base`).
fn describe(
    frames: &VecDeque<Frame>,
    base: usize,
    [(long_lo, long_hi), (lo, hi), (own_lo, own_hi)]: [(usize, usize); 3],
    basis: &[(Vec<f32>, Vec<f32>)],
) -> StepFeatures {
    let ctx: Vec<Frame> = (lo..hi).map(|k| frames[k - base]).collect();
    let long: Vec<Frame> = (long_lo..long_hi).map(|k| frames[k - base]).collect();
    let own: Vec<Frame> = (own_lo..own_hi.max(own_lo))
        .filter(|&k| k < hi)
        .map(|k| frames[k - base])
        .collect();
    if ctx.is_empty() {
        return StepFeatures {
            x: [0.0; NF],
            level_db: -200.0,
        };
    }
    let n = ctx.len() as f32;
    let mean = |f: &dyn Fn(&Frame) -> f32| ctx.iter().map(f).sum::<f32>() / n;
    let std = |f: &dyn Fn(&Frame) -> f32, m: f32| {
        (ctx.iter().map(|x| (f(x) - m).powi(2)).sum::<f32>() / n).sqrt()
    };
    let m_voice = mean(&|f| f.voicing);
    let s_voice = std(&|f| f.voicing, m_voice);
    let voiced_share = ctx.iter().filter(|f| f.voicing > 0.6).count() as f32 / n;
    let m_ms = mean(&|f| f.ms);
    let lefr = ctx.iter().filter(|f| f.ms < 0.5 * m_ms).count() as f32 / n;
    let m_db = mean(&|f| f.speech_db);
    let dyn_db = std(&|f| f.speech_db, m_db).min(30.0);
    // The modulation spectrum of the speech-band level (dB, clamped 60 dB under its peak so
    // that digital silence does not dominate).
    let peak = ctx.iter().map(|f| f.speech_db).fold(f32::MIN, f32::max);
    let env: Vec<f32> = ctx
        .iter()
        .map(|f| f.speech_db.max(peak - 60.0) - m_db)
        .collect();
    let power: Vec<f32> = basis
        .iter()
        .map(|(c, s)| {
            let re: f32 = env.iter().zip(c).map(|(e, w)| e * w).sum();
            let im: f32 = env.iter().zip(s).map(|(e, w)| e * w).sum();
            re * re + im * im
        })
        .collect();
    let total: f32 = power.iter().sum::<f32>() + 1e-9;
    let syllabic: f32 = power[1..8].iter().sum();
    let mod_share = syllabic / total;
    let mod_depth = 10.0 * (syllabic / n + 1e-6).log10();
    let (mut moves, mut pairs) = (0.0f32, 0usize);
    for w in ctx.windows(2) {
        if w[0].voicing > 0.6 && w[1].voicing > 0.6 {
            moves += (w[1].pitch_st - w[0].pitch_st).abs().min(3.0);
            pairs += 1;
        }
    }
    let pitch_move = if pairs > 0 { moves / pairs as f32 } else { 0.0 };
    let m_flux = mean(&|f| f.flux);
    let own_ms = if own.is_empty() {
        m_ms
    } else {
        own.iter().map(|f| f.ms).sum::<f32>() / own.len() as f32
    };
    let own_voice = if own.is_empty() {
        m_voice
    } else {
        own.iter().map(|f| f.voicing).sum::<f32>() / own.len() as f32
    };
    let beat = rhythm(&long);
    let x = [
        m_voice,
        s_voice,
        voiced_share,
        lefr,
        dyn_db,
        mod_share,
        mod_depth,
        pitch_move,
        mean(&|f| f.ratio),
        m_flux,
        std(&|f| f.flux, m_flux),
        mean(&|f| f.centroid),
        mean(&|f| f.stability),
        (10.0 * ((own_ms + 1e-12) / (m_ms + 1e-12)).log10()).clamp(-30.0, 10.0),
        own_voice,
        beat[0],
        beat[1],
        beat[2],
    ];
    StepFeatures {
        x,
        level_db: 10.0 * (own_ms + 1e-20).log10(),
    }
}

/// The figures of every step of `mono` at `rate`.
pub fn features(mono: &[f32], rate: u32) -> Vec<StepFeatures> {
    let mut d = SpeechDetector::new(rate);
    for chunk in mono.chunks(4096) {
        d.feed(chunk);
    }
    d.finish()
}

/// Speech steps of `mono` at `rate` with the built-in model.
pub fn detect(mono: &[f32], rate: u32) -> Vec<bool> {
    let f = features(mono, rate);
    let model = Model::built_in();
    let p: Vec<f32> = f.iter().map(|s| model.probability(&s.x)).collect();
    decide(&p, &f)
}

/// The analyzer: the mono mix through the detector.
pub(super) struct SpeechA {
    pub(super) detector: SpeechDetector,
    pub(super) mono: Vec<f32>,
}

impl Analyzer for SpeechA {
    fn feed(&mut self, planes: &[&[f32]]) {
        mono_into(planes, &mut self.mono);
        self.detector.feed(&self.mono);
    }
    fn finish(self: Box<Self>, r: &mut AnalysisReport) {
        let f = self.detector.finish();
        let model = Model::built_in();
        let p: Vec<f32> = f.iter().map(|s| model.probability(&s.x)).collect();
        let levels: Vec<Option<f32>> = f.iter().map(|s| Some(s.level_db)).collect();
        r.speech = Some(Speech::from_classes(decide(&p, &f), &levels));
    }
    fn cost(&self) -> f64 {
        150.0
    }
    fn name(&self) -> &'static str {
        "speech"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(freq: f32, secs: f32, rate: u32) -> Vec<f32> {
        (0..(secs * rate as f32) as usize)
            .map(|i| 0.3 * (2.0 * std::f32::consts::PI * freq * i as f32 / rate as f32).sin())
            .collect()
    }

    #[test]
    fn one_step_per_100_ms_at_any_rate() {
        for rate in [8_000, 16_000, 22_050, 44_100, 48_000, 96_000] {
            let x = sine(440.0, 2.35, rate);
            assert_eq!(features(&x, rate).len(), 24, "{rate} Hz");
        }
        assert!(features(&[], 48_000).is_empty());
    }

    #[test]
    fn a_held_tone_is_other_sound_and_a_quiet_gap_silence() {
        let rate = 48_000;
        let quiet = vec![0.0f32; 2 * rate as usize];
        let x: Vec<f32> = [sine(220.0, 3.0, rate), quiet, sine(330.0, 2.0, rate)].concat();
        let f = features(&x, rate);
        let model = Model::built_in();
        let p: Vec<f32> = f.iter().map(|s| model.probability(&s.x)).collect();
        let levels: Vec<Option<f32>> = f.iter().map(|s| Some(s.level_db)).collect();
        let s = Speech::from_classes(decide(&p, &f), &levels);
        assert_eq!(s.share, 0.0);
        assert!((s.silence_share - 2.0 / 7.0).abs() < 0.03, "{s:?}");
        assert!((s.music_share - 5.0 / 7.0).abs() < 0.03, "{s:?}");
        assert_eq!(s.silence_segments.len(), 1, "{s:?}");
        let [a, b] = s.silence_segments[0];
        // Within a step of the edges (a step that holds some of the tone is not silent).
        assert!(
            (a - 3.0).abs() <= 0.15 && (b - 5.0).abs() <= 0.15,
            "{a}..{b}"
        );
        assert!((s.share + s.silence_share + s.music_share - 1.0).abs() < 1e-9);
    }

    #[test]
    fn silence_and_a_held_tone_are_not_speech() {
        for rate in [44_100, 48_000] {
            assert!(!detect(&vec![0.0; rate as usize * 5], rate).contains(&true));
            // A held chord: voiced, but no syllables.
            let x: Vec<f32> = sine(220.0, 5.0, rate)
                .iter()
                .zip(sine(277.2, 5.0, rate))
                .zip(sine(329.6, 5.0, rate))
                .map(|((a, b), c)| (a + b + c) / 3.0)
                .collect();
            let s = detect(&x, rate);
            assert!(s.iter().filter(|&&v| v).count() <= 2, "{s:?}");
        }
    }

    #[test]
    fn the_lane_sum_is_the_plain_sum() {
        for n in [0, 1, 7, 8, 9, 150, 275] {
            let a: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..n).map(|i| (i as f32 * 0.11).cos()).collect();
            let plain: f64 = a.iter().zip(&b).map(|(x, y)| f64::from(x * y)).sum();
            assert!((f64::from(dot(&a, &b)) - plain).abs() < 1e-4, "{n}");
        }
        // A beat repeats; noise does not.
        let beat: Vec<f32> = (0..300)
            .map(|i| if i % 50 == 0 { 1.0 } else { 0.0 })
            .collect();
        assert!(periodicity(&beat) > 0.9);
        let mut rng = 1u64;
        let noise: Vec<f32> = (0..300)
            .map(|_| {
                rng = rng
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (rng >> 40) as f32 / (1u64 << 24) as f32
            })
            .collect();
        assert!(periodicity(&noise) < 0.4, "{}", periodicity(&noise));
    }

    #[test]
    fn short_runs_and_gaps_are_evened_out() {
        let (t, f) = (true, false);
        let mut s = vec![t, t, t, f, f, t, t, t, f, f, f, t, f, f, f];
        fill_runs(&mut s, false, 2);
        assert_eq!(s[..8], [true; 8], "a gap of 200 ms closed");
        fill_runs(&mut s, true, 2);
        assert_eq!(s[8..], [false; 7], "a lone step of speech dropped");
        let seg = Speech::from_steps(vec![false, true, true, false, true]);
        assert_eq!(seg.segments.len(), 2);
        assert!((seg.segments[0][0] - 0.1).abs() < 1e-9 && (seg.segments[0][1] - 0.3).abs() < 1e-9);
        assert!((seg.share - 0.6).abs() < 1e-9);
    }
}
