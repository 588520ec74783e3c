//! Transient and harmonic character of the mono mix: how often and how fast the signal
//! attacks, and how harmonic it is.
//!
//! **Transients.** The RMS level in 1 ms steps. An onset is a rise of at least
//! [`ONSET_RISE_DB`] above the lowest level of the previous 50 ms, to above [`ONSET_FLOOR_DBFS`],
//! at least 50 ms after the previous onset. Its *attack time* is the time the level takes from
//! 10 % to 90 % of the way (in amplitude) from that lowest level to the highest level of the
//! 100 ms after it, interpolated between steps (a step change reads about 0.8 ms: one RMS step);
//! its *rise* is that peak over that floor, dB. The section gives the onsets per second of the
//! file, and the median attack time and rise. Only the onsets' figures are kept, never the
//! level curve.
//!
//! **Harmonic-to-noise ratio** (Boersma's autocorrelation method): 40 ms Hann frames (hop
//! half a frame) above −50 dBFS; in each, the highest normalised autocorrelation `r` at a lag
//! of a 60 Hz to 1 kHz period (the window's own autocorrelation divided out), read as
//! `10·log10(r / (1 − r))` dB, clamped to ±40; the section gives their mean weighted by the
//! frames' energy. A periodic signal in noise reads its signal-to-noise ratio.
//!
//! **THD** of the long-term spectrum's strongest partial between 20 Hz and 5 kHz (Hann frames
//! of about a sixth of a second, power averaged): harmonics 2 to 10 (those under the Nyquist
//! frequency, each the power within ±3 bins of its multiple of the partial's interpolated
//! frequency) over the partial, as a percentage of amplitude. For a tone it is its THD; for
//! music, how strongly the dominant partial's harmonic series stands out.

use super::{AnalysisReport, Analyzer, mono_into};
use realfft::num_complex::Complex;
use realfft::num_traits::Float;
use realfft::{ComplexToReal, FftNum, RealFftPlanner, RealToComplex};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::sync::Arc;

/// A rise that makes an onset, dB.
pub const ONSET_RISE_DB: f64 = 6.0;
/// The level an onset must reach, dBFS (RMS over 1 ms).
pub const ONSET_FLOOR_DBFS: f64 = -50.0;
/// Steps (ms) before an onset searched for its floor, and after it for its peak.
const LOOK_BACK: usize = 50;
const LOOK_AHEAD: usize = 100;
/// Least time between onsets, steps.
const REFRACTORY: usize = 50;

/// The character section (see the module documentation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Character {
    pub onsets: u64,
    /// Onsets per second of the file.
    pub onset_density: f64,
    /// Median 10–90 % attack time of the onsets, ms.
    pub attack_ms: Option<f64>,
    /// Median rise of the onsets, floor to peak, dB.
    pub transient_db: Option<f64>,
    /// Harmonic-to-noise ratio, dB (−40..40); `None` when no frame is above −50 dBFS.
    pub hnr_db: Option<f64>,
    /// Harmonics 2–10 of the strongest partial over it, percent of amplitude.
    pub thd_percent: Option<f64>,
    /// That partial's frequency, Hz.
    pub fundamental_hz: Option<f64>,
}

/// Onsets from 1 ms RMS steps (see the module documentation).
#[derive(Debug)]
pub struct TransientMeter {
    step: usize,
    in_step: usize,
    sum: f64,
    /// Amplitudes (RMS) of the last steps, oldest first, for the floor.
    recent: VecDeque<f64>,
    /// An onset being followed: the amplitudes from its floor on.
    open: Option<Vec<f64>>,
    since_onset: usize,
    attacks: Vec<f64>,
    rises: Vec<f64>,
    frames: u64,
}

impl TransientMeter {
    pub fn new(rate: u32) -> Self {
        TransientMeter {
            step: (rate as usize / 1000).max(1),
            in_step: 0,
            sum: 0.0,
            recent: VecDeque::with_capacity(LOOK_BACK + 1),
            open: None,
            since_onset: REFRACTORY,
            attacks: Vec::new(),
            rises: Vec::new(),
            frames: 0,
        }
    }

    pub fn feed(&mut self, x: &[f32]) {
        self.frames += x.len() as u64;
        let mut rest = x;
        while !rest.is_empty() {
            let (now, later) = rest.split_at((self.step - self.in_step).min(rest.len()));
            self.sum += sum_of_squares(now);
            self.in_step += now.len();
            rest = later;
            if self.in_step == self.step {
                let amp = (self.sum / self.step as f64).sqrt();
                self.in_step = 0;
                self.sum = 0.0;
                self.push(amp);
            }
        }
    }

    fn push(&mut self, amp: f64) {
        self.since_onset = self.since_onset.saturating_add(1);
        if let Some(run) = &mut self.open {
            run.push(amp);
            if run.len() > LOOK_BACK + LOOK_AHEAD {
                let run = self.open.take().expect("open");
                self.close(&run);
            }
        } else if self.since_onset >= REFRACTORY && self.recent.len() == LOOK_BACK {
            let db = |a: f64| 20.0 * a.max(1e-10).log10();
            let (at, floor) =
                self.recent
                    .iter()
                    .copied()
                    .enumerate()
                    .fold(
                        (0, f64::INFINITY),
                        |m, (i, a)| if a < m.1 { (i, a) } else { m },
                    );
            if db(amp) >= ONSET_FLOOR_DBFS && db(amp) - db(floor) >= ONSET_RISE_DB {
                let mut run: Vec<f64> = self.recent.iter().skip(at).copied().collect();
                run.push(amp);
                self.open = Some(run);
                self.since_onset = 0;
            }
        }
        self.recent.push_back(amp);
        if self.recent.len() > LOOK_BACK {
            self.recent.pop_front();
        }
    }

    /// The attack and rise of an onset's run: its floor first, then up to [`LOOK_AHEAD`]
    /// steps past the step that made it.
    fn close(&mut self, run: &[f64]) {
        let floor = run[0];
        let peak = run.iter().copied().fold(0f64, f64::max);
        if peak <= floor {
            return;
        }
        let cross = |frac: f64| {
            let level = floor + frac * (peak - floor);
            run.windows(2).enumerate().find_map(|(i, w)| {
                (w[1] >= level).then(|| i as f64 + (level - w[0]) / (w[1] - w[0]).max(1e-30))
            })
        };
        if let (Some(a), Some(b)) = (cross(0.1), cross(0.9)) {
            self.attacks.push((b - a).max(0.0));
            self.rises
                .push(20.0 * (peak / floor.max(1e-10)).log10().min(6.0));
        }
    }

    /// Onsets, onsets per second, median attack (ms) and median rise (dB).
    pub fn finish(mut self, rate: u32) -> (u64, f64, Option<f64>, Option<f64>) {
        if let Some(run) = self.open.take() {
            self.close(&run);
        }
        let seconds = self.frames as f64 / f64::from(rate.max(1));
        let n = self.attacks.len() as u64;
        let density = if seconds > 0.0 {
            n as f64 / seconds
        } else {
            0.0
        };
        (n, density, median(self.attacks), median(self.rises))
    }
}

/// Σ x² in `f64`, a non-finite sample counted as silence (four partial sums, so that it
/// vectorises).
fn sum_of_squares(x: &[f32]) -> f64 {
    let sq = |v: f32| {
        let v = f64::from(v);
        if v.is_finite() { v * v } else { 0.0 }
    };
    let mut acc = [0f64; 4];
    let mut quads = x.chunks_exact(4);
    for q in &mut quads {
        for (a, &v) in acc.iter_mut().zip(q) {
            *a += sq(v);
        }
    }
    let tail: f64 = quads.remainder().iter().map(|&v| sq(v)).sum();
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// Frames of the mono mix for the harmonic figures: one size and hop, a window, a real
/// transform (zero-padded to `transform`) in `f32` or `f64`.
struct Framer<T: FftNum> {
    n: usize,
    hop: usize,
    window: Vec<T>,
    pending: Vec<T>,
    fft: Arc<dyn RealToComplex<T>>,
    frame: Vec<T>,
    spectrum: Vec<Complex<T>>,
    scratch: Vec<Complex<T>>,
}

impl<T: FftNum + Float> Framer<T> {
    fn new(n: usize, transform: usize) -> Self {
        let fft = RealFftPlanner::new().plan_fft_forward(transform);
        Framer {
            n,
            hop: n / 2,
            window: super::hann(n)
                .into_iter()
                .map(T::from_f32)
                .map(|w| w.unwrap_or_else(T::zero))
                .collect(),
            pending: Vec::with_capacity(2 * n),
            frame: fft.make_input_vec(),
            spectrum: fft.make_output_vec(),
            scratch: fft.make_scratch_vec(),
            fft,
        }
    }

    /// Calls `f` with each complete frame's transform (windowed, zero-padded; bins 0 to half
    /// the transform's length) and its mean square.
    fn feed(&mut self, x: &[f32], mut f: impl FnMut(&[Complex<T>], f64)) {
        self.pending
            .extend(x.iter().map(|&v| {
                T::from_f32(if v.is_finite() { v } else { 0.0 }).unwrap_or_else(T::zero)
            }));
        let mut at = 0;
        while at + self.n <= self.pending.len() {
            let frame = &self.pending[at..at + self.n];
            let (head, tail) = self.frame.split_at_mut(self.n);
            let mut acc = [0f64; 4];
            for (((b, x), w), k) in head
                .chunks_exact_mut(4)
                .zip(frame.chunks_exact(4))
                .zip(self.window.chunks_exact(4))
                .map(|c| (c, 0..4))
            {
                for i in k {
                    acc[i] += (x[i] * x[i]).to_f64().unwrap_or(0.0);
                    b[i] = x[i] * w[i];
                }
            }
            let ms = ((acc[0] + acc[1]) + (acc[2] + acc[3])) / self.n as f64;
            // The transform uses its input as scratch: the padding is cleared every frame.
            tail.fill(T::zero());
            self.fft
                .process_with_scratch(&mut self.frame, &mut self.spectrum, &mut self.scratch)
                .expect("buffers of the planned lengths");
            f(&self.spectrum, ms);
            at += self.hop;
        }
        self.pending.drain(..at);
    }
}

/// Harmonic-to-noise ratio and THD (see the module documentation).
pub struct HarmonicMeter {
    rate: u32,
    /// The HNR's frames in `f32`: its autocorrelations are read to 1e-6 of their value at lag
    /// 0, far inside the 1e-4 that separates 40 dB (the clamp) from a perfect period.
    hnr: Framer<f32>,
    inverse: Arc<dyn ComplexToReal<f32>>,
    /// The power spectrum of a frame, and its inverse transform: the autocorrelation.
    inv_in: Vec<Complex<f32>>,
    inv_out: Vec<f32>,
    inv_scratch: Vec<Complex<f32>>,
    /// The reciprocal of the window's normalised autocorrelation.
    window_ac: Vec<f64>,
    hnr_sum: f64,
    hnr_weight: f64,
    thd: Framer<f64>,
    power: Vec<f64>,
}

impl std::fmt::Debug for HarmonicMeter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HarmonicMeter")
            .field("rate", &self.rate)
            .finish()
    }
}

/// Frames under this mean square (−50 dBFS) have no HNR.
const HNR_GATE: f64 = 1e-5;

impl HarmonicMeter {
    pub fn new(rate: u32) -> Self {
        let r = f64::from(rate.max(1));
        let n = ((r * 0.04) as usize).next_power_of_two().max(256);
        // Zero-padded by half a frame: the lags read (under half a frame) do not wrap.
        let hnr = Framer::new(n, 3 * n / 2);
        let inverse = RealFftPlanner::new().plan_fft_inverse(3 * n / 2);
        // The window's autocorrelation, directly (once).
        let w: Vec<f64> = hnr.window.iter().map(|&v| f64::from(v)).collect();
        let w0: f64 = w.iter().map(|v| v * v).sum();
        let window_ac = (0..n)
            .map(|lag| {
                w[..n - lag]
                    .iter()
                    .zip(&w[lag..])
                    .map(|(a, b)| a * b)
                    .sum::<f64>()
                    / w0
            })
            .map(|a: f64| if a > 0.0 { 1.0 / a } else { 0.0 })
            .collect();
        let thd_n = ((r / 6.0) as usize).next_power_of_two().max(1024);
        HarmonicMeter {
            rate,
            inv_scratch: inverse.make_scratch_vec(),
            inv_in: inverse.make_input_vec(),
            inv_out: inverse.make_output_vec(),
            inverse,
            window_ac,
            hnr,
            hnr_sum: 0.0,
            hnr_weight: 0.0,
            power: vec![0.0; thd_n / 2 + 1],
            thd: Framer::new(thd_n, thd_n),
        }
    }

    pub fn feed(&mut self, x: &[f32]) {
        let rate = f64::from(self.rate.max(1));
        let (lo, hi) = ((rate / 1000.0) as usize, (rate / 60.0) as usize);
        let inv = &self.inverse;
        let (spectrum, ac, scratch) = (&mut self.inv_in, &mut self.inv_out, &mut self.inv_scratch);
        let wac = &self.window_ac;
        let (sum, weight) = (&mut self.hnr_sum, &mut self.hnr_weight);
        let n = self.hnr.n;
        self.hnr.feed(x, |spec, ms| {
            if ms < HNR_GATE {
                return;
            }
            for (b, s) in spectrum.iter_mut().zip(spec) {
                *b = Complex::new(s.norm_sqr(), 0.0);
            }
            inv.process_with_scratch(spectrum, ac, scratch)
                .expect("a real spectrum of the planned length");
            let r0 = f64::from(ac[0]);
            if r0 <= 0.0 {
                return;
            }
            let hi = hi.min(n / 2);
            let r = (lo.max(1)..hi)
                .map(|lag| f64::from(ac[lag]) * wac[lag])
                .fold(f64::NEG_INFINITY, f64::max)
                / r0;
            if r.is_finite() {
                let r = r.clamp(1e-4, 1.0 - 1e-4);
                *sum += ms * 10.0 * (r / (1.0 - r)).log10();
                *weight += ms;
            }
        });
        let power = &mut self.power;
        self.thd.feed(x, |spec, _| {
            for (p, s) in power.iter_mut().zip(spec) {
                *p += s.norm_sqr();
            }
        });
    }

    /// HNR (dB), THD (percent) and the partial's frequency (Hz).
    pub fn finish(self) -> (Option<f64>, Option<f64>, Option<f64>) {
        let hnr = (self.hnr_weight > 0.0).then(|| self.hnr_sum / self.hnr_weight);
        let n = self.thd.n;
        let df = f64::from(self.rate) / n as f64;
        let p = &self.power;
        let (lo, hi) = (
            ((20.0 / df).ceil() as usize).max(1),
            ((5000.0 / df) as usize).min(p.len().saturating_sub(2)),
        );
        let Some(k0) = (lo..=hi).max_by(|&a, &b| p[a].total_cmp(&p[b])) else {
            return (hnr, None, None);
        };
        if p[k0] <= 0.0 {
            return (hnr, None, None);
        }
        // The partial's frequency, parabolic on the log power of the peak and its neighbours.
        let (a, b, c) = (
            p[k0 - 1].max(1e-300).ln(),
            p[k0].ln(),
            p[k0 + 1].max(1e-300).ln(),
        );
        let d = a - 2.0 * b + c;
        let delta = if d < 0.0 { 0.5 * (a - c) / d } else { 0.0 };
        let f0 = (k0 as f64 + delta.clamp(-0.5, 0.5)) * df;
        let around = |centre: f64| -> f64 {
            let k = (centre / df).round() as isize;
            (k - 3..=k + 3)
                .filter(|&j| j >= 0 && (j as usize) < p.len())
                .map(|j| p[j as usize])
                .sum()
        };
        let fundamental = around(f0);
        let nyquist = f64::from(self.rate) / 2.0;
        let harmonics: f64 = (2..=10)
            .map(|h| h as f64 * f0)
            .filter(|&f| f + 3.0 * df < nyquist)
            .map(around)
            .sum();
        (
            hnr,
            Some(100.0 * (harmonics / fundamental).sqrt()),
            Some(f0),
        )
    }
}

/// The analyzer: both meters on the mono mix.
pub(super) struct CharacterA {
    pub(super) transients: TransientMeter,
    pub(super) harmonics: HarmonicMeter,
    pub(super) rate: u32,
    pub(super) mono: Vec<f32>,
}

impl CharacterA {
    pub(super) fn new(rate: u32) -> Self {
        CharacterA {
            transients: TransientMeter::new(rate),
            harmonics: HarmonicMeter::new(rate),
            rate,
            mono: Vec::new(),
        }
    }
}

impl Analyzer for CharacterA {
    fn feed(&mut self, planes: &[&[f32]]) {
        mono_into(planes, &mut self.mono);
        self.transients.feed(&self.mono);
        self.harmonics.feed(&self.mono);
    }
    fn finish(self: Box<Self>, r: &mut AnalysisReport) {
        let (onsets, onset_density, attack_ms, transient_db) = self.transients.finish(self.rate);
        let (hnr_db, thd_percent, fundamental_hz) = self.harmonics.finish();
        r.character = Some(Character {
            onsets,
            onset_density,
            attack_ms,
            transient_db,
            hnr_db,
            thd_percent,
            fundamental_hz,
        });
    }
    fn cost(&self) -> f64 {
        100.0
    }
    fn name(&self) -> &'static str {
        "character"
    }
}
