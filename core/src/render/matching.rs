//! Matching a reference: a stage that moves a signal's tonal balance, loudness and stereo width
//! toward a target's (a reference track, a genre's profile, or figures given directly), each
//! aspect on its own switch and by a strength from 0 to 1.
//!
//! - **Tonal balance (EQ).** A prepass measures the input's long-term average spectrum (LTAS,
//!   1/12-octave points, [`SpectrumMeter`]). The correction at each point is the target's level
//!   minus the input's, both as a density (dB per Hz, so spectra measured at different sample
//!   rates compare: their FFT bins differ in width), with the loudness-weighted mean taken away
//!   (only the shape is matched: the EQ alone keeps the K-weighted power, so it hardly moves the
//!   loudness), smoothed over `smoothing_octaves` (a raised-cosine window in log frequency whose
//!   half-height width is that many octaves), limited to ±`max_gain_db`, then scaled by the
//!   strength (and centred again). Points are corrected from 20 Hz to the lowest of 20 kHz,
//!   0.45 of the input's rate and 0.45 of the target's (beyond a spectrum's Nyquist frequency
//!   nothing is known), and only where both spectra are above −100 dB; the curve fades to 0 dB
//!   over a third of an octave outside that range (above it, by 0.49 of the rate at the
//!   latest). It is applied as a linear-phase FIR
//!   (frequency sampling of the curve on a dense grid, then a Hann window) of about 0.43 s of
//!   taps (1/3-octave resolution at 20–40 Hz at any rate) by FFT convolution
//!   ([`FftConvolver`]); the filter's delay is removed, so the output has the input's length
//!   and alignment.
//! - **Width.** On a stereo signal, mid and side are scaled (mid = (L+R)/2, side = (L−R)/2) so
//!   that the wideband width (side energy over mid plus side, as [`crate::analysis::stereo`]
//!   measures it) moves to the target's by the strength; the two gains keep the mid-plus-side
//!   energy, so the loudness hardly moves. The side-over-mid gain is limited to
//!   ±`max_gain_db`. A mono or multichannel signal is left as it is, with a warning.
//! - **Loudness.** One gain brings the integrated loudness (BS.1770) to the target's, by the
//!   strength in dB.
//!
//! Where the EQ or the width change what the loudness or the width measure, further prepasses
//! measure the stage's own output and correct the gain and the mid/side gains (at most four),
//! until the loudness is within 0.02 LU of its aim and the width within 0.002.

use super::lowpass::FftConvolver;
use super::stages::db_to_gain;
use super::{Block, Prepass, Probe, RenderError, SignalSpec, Stage, StageReport};
use crate::analysis::loudness::LoudnessMeter;
use crate::analysis::spectrum::{LtasPoint, SpectrumMeter, fft_size, ltas_bands};
use crate::analysis::stereo;
use rustfft::FftPlanner;
use rustfft::num_complex::Complex;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What a signal is matched to: a long-term average spectrum in 1/12-octave points as
/// [`SpectrumMeter`] gives it (dB re a full-scale sine), an integrated loudness (LUFS) and a
/// wideband stereo width (0 mono, 0.5 unrelated channels, 1 inverted). Each may be missing
/// (empty, `None`); a switch that needs a missing figure is left off with a warning.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MatchTarget {
    pub ltas: Vec<LtasPoint>,
    pub loudness_lufs: Option<f64>,
    pub width: Option<f64>,
}

impl MatchTarget {
    /// Why the target cannot be matched to, if it cannot: values that are not numbers, points
    /// out of order, a width outside 0..=1.
    pub fn check(&self) -> Result<(), MatchError> {
        if self
            .ltas
            .iter()
            .any(|p| !(p.hz.is_finite() && p.hz > 0.0) || p.db.is_nan())
        {
            return Err(MatchError::SpectrumNotANumber);
        }
        if self.ltas.windows(2).any(|w| w[1].hz <= w[0].hz) {
            return Err(MatchError::SpectrumOrder);
        }
        if let Some(l) = self.loudness_lufs
            && !(l.is_finite() && l <= 0.0)
        {
            return Err(MatchError::Loudness(l));
        }
        if let Some(w) = self.width
            && !(0.0..=1.0).contains(&w)
        {
            return Err(MatchError::Width(w));
        }
        Ok(())
    }
}

/// Why a match target or match options cannot be used ([`MatchTarget::check`],
/// [`MatchOptions::check`]).
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum MatchError {
    #[error("the target's spectrum has a point that is not a number")]
    SpectrumNotANumber,
    #[error("the target's spectrum points are not in rising frequency order")]
    SpectrumOrder,
    /// The target's loudness (LUFS) is not a number or above 0.
    #[error("the target's loudness {0} LUFS: give a loudness of 0 LUFS or lower")]
    Loudness(f64),
    /// The target's width is outside 0..=1.
    #[error("the target's width {0}: from 0 (mono) to 1 (inverted)")]
    Width(f64),
    /// The strength is outside 0..=1.
    #[error("strength {0}: from 0 to 1 (0 % to 100 %)")]
    Strength(f64),
    /// `max_gain_db` is not in (0, [`MAX_GAIN_DB`]].
    #[error("max_gain_db {0}: more than 0, at most {max} dB", max = MAX_GAIN_DB)]
    MaxGain(f64),
    /// `smoothing_octaves` is not in 0..=[`MAX_SMOOTHING_OCTAVES`].
    #[error("smoothing_octaves {0}: from 0 to {max} octaves", max = MAX_SMOOTHING_OCTAVES)]
    Smoothing(f64),
}

/// How far and in what to match.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MatchOptions {
    /// 0 (nothing changes) to 1 (all the way to the target); the EQ curve and the loudness
    /// gain in dB, and the width, are scaled by it.
    pub strength: f64,
    /// Match the tonal balance.
    pub eq: bool,
    /// Match the integrated loudness.
    pub loudness: bool,
    /// Match the stereo width (stereo signals only).
    pub width: bool,
    /// The most the EQ boosts or cuts any frequency (and the side-over-mid gain), dB.
    pub max_gain_db: f64,
    /// The smoothing of the EQ curve, octaves (half-height width; 0 for none).
    pub smoothing_octaves: f64,
}

impl Default for MatchOptions {
    fn default() -> Self {
        MatchOptions {
            strength: 1.0,
            eq: true,
            loudness: false,
            width: false,
            max_gain_db: 12.0,
            smoothing_octaves: 1.0 / 3.0,
        }
    }
}

/// The largest `max_gain_db`.
pub const MAX_GAIN_DB: f64 = 24.0;
/// The widest `smoothing_octaves`.
pub const MAX_SMOOTHING_OCTAVES: f64 = 2.0;

impl MatchOptions {
    /// Why the options cannot be used, if they cannot.
    pub fn check(&self) -> Result<(), MatchError> {
        if !(0.0..=1.0).contains(&self.strength) {
            return Err(MatchError::Strength(self.strength));
        }
        if !(self.max_gain_db > 0.0 && self.max_gain_db <= MAX_GAIN_DB) {
            return Err(MatchError::MaxGain(self.max_gain_db));
        }
        if !(0.0..=MAX_SMOOTHING_OCTAVES).contains(&self.smoothing_octaves) {
            return Err(MatchError::Smoothing(self.smoothing_octaves));
        }
        Ok(())
    }
}

/// A point of a spectrum at or below this level (dB re a full-scale sine) counts as silence:
/// no correction there.
pub const SILENT_DB: f64 = -100.0;
/// The lowest frequency corrected, Hz.
pub const LOW_HZ: f64 = 20.0;
/// The highest frequency corrected, Hz (and never above this fraction of either rate).
pub const HIGH_HZ: f64 = 20_000.0;
pub const TOP_OF_RATE: f64 = 0.45;
/// Outside the corrected range the curve fades to 0 dB over this many octaves.
const TAPER_OCTAVES: f64 = 1.0 / 3.0;
/// Measuring passes over the stage's own output, at most.
const MAX_OUTPUT_PASSES: u32 = 4;
const LOUDNESS_TOLERANCE_LU: f64 = 0.02;
const WIDTH_TOLERANCE: f64 = 0.002;

/// One point of the 1/12-octave grid [`SpectrumMeter`] uses at a rate: the band's centre and
/// edges, and the width in Hz of the FFT bins its level sums (4 bins around the centre where
/// the band is narrower than that, as the meter does).
#[derive(Debug, Clone, Copy, PartialEq)]
struct GridPoint {
    centre: f64,
    lo: f64,
    hi: f64,
    measured_hz: f64,
}

/// The LTAS grid of [`SpectrumMeter`] at `rate` (the same bands, computed the same way).
fn grid(rate: u32) -> Vec<GridPoint> {
    let n = fft_size(rate);
    let df = f64::from(rate) / n as f64;
    ltas_bands(rate, df)
        .into_iter()
        .map(|band| {
            // The bins k·df in [from, to), counted as the meter sums them.
            let first = ((band.from / df).floor() as i64 - 1).max(0) as usize;
            let bins = (first..=n / 2)
                .map(|k| k as f64 * df)
                .skip_while(|&f| f < band.from)
                .take_while(|&f| f < band.to)
                .count();
            GridPoint {
                centre: band.centre,
                lo: band.lo,
                hi: band.hi,
                measured_hz: bins as f64 * df,
            }
        })
        .collect()
}

/// The sample rates an LTAS's own rate is recognised among.
const RATES: [u32; 16] = [
    8_000, 11_025, 12_000, 16_000, 22_050, 24_000, 32_000, 44_100, 48_000, 64_000, 88_200, 96_000,
    176_400, 192_000, 352_800, 384_000,
];

/// The sample rate an LTAS was measured at, when its points are [`SpectrumMeter`]'s grid at
/// a common rate (the last point, cut at the Nyquist frequency, tells which). A spectrum
/// without that last point (a profile averaged over files) has none.
fn ltas_rate(ltas: &[LtasPoint]) -> Option<u32> {
    let last = ltas.last()?;
    let lo_last = 20.0 * 2f64.powf((ltas.len() - 1) as f64 / 12.0);
    let nearly = 2.0 * last.hz * last.hz / lo_last;
    let &rate = RATES
        .iter()
        .find(|&&r| (f64::from(r) - nearly).abs() < 1.0)?;
    let g = grid(rate);
    (g.len() == ltas.len()
        && g.iter()
            .zip(ltas)
            .all(|(g, p)| (g.centre - p.hz).abs() <= 1e-6 * p.hz))
    .then_some(rate)
}

/// Linear interpolation of `ys` over rising `xs` at `x`, `None` outside them.
fn interpolate(xs: &[f64], ys: &[f64], x: f64) -> Option<f64> {
    let k = xs.partition_point(|&v| v <= x);
    if k == 0 {
        return None;
    }
    if k == xs.len() {
        return (x == xs[k - 1]).then(|| ys[k - 1]);
    }
    let (x0, x1) = (xs[k - 1], xs[k]);
    let t = (x - x0) / (x1 - x0);
    Some(ys[k - 1] + t * (ys[k] - ys[k - 1]))
}

/// The BS.1770 K-weighting's power gain at `hz`, from the analogue prototypes of its two
/// filters (the high shelf of +4 dB at 1.68 kHz and the RLB high-pass at 38 Hz, Q ≈ 0.5; the
/// bilinear transform of the digital filters bends them a little near the Nyquist frequency):
/// the weight of each frequency's power in the loudness, to centre the EQ curve.
fn k_weight(hz: f64) -> f64 {
    let (f0, vh, q) = (1_681.97, 10f64.powf(4.0 / 20.0), 0.7072);
    let vb = vh.powf(0.4997);
    let (w2, w02) = (hz * hz, f0 * f0);
    let shelf = ((w02 - vh * w2).powi(2) + (vb * f0 * hz / q).powi(2))
        / ((w02 - w2).powi(2) + (f0 * hz / q).powi(2));
    let (h0, hq) = (38.135, 0.5003);
    let highpass = w2 * w2 / ((h0 * h0 - w2).powi(2) + (h0 * hz / hq).powi(2));
    shelf * highpass
}

/// The EQ's correction at the input spectrum's points.
#[derive(Debug, Clone, PartialEq)]
pub struct Curve {
    /// The points' frequencies, Hz (the input LTAS's).
    pub hz: Vec<f64>,
    /// The correction, dB (0 where a point is not corrected).
    pub db: Vec<f64>,
    /// Whether each point is corrected (in range, both spectra sounding there).
    pub corrected: Vec<bool>,
    /// The corrected range, Hz.
    pub low_hz: f64,
    pub high_hz: f64,
    /// The loudness-weighted mean difference taken away (target − input, dB): the tonal
    /// correction is the shape only.
    pub offset_db: f64,
    /// Points held at the limit.
    pub clamped: usize,
    /// Over how many octaves the curve fades to 0 dB above the corrected range (a third of an
    /// octave, or less to be flat by 0.49 of the rate).
    pub fade_high_octaves: f64,
}

impl Curve {
    /// The correction at `hz`: the points interpolated in log frequency inside the corrected
    /// range, fading to 0 dB outside it (over a third of an octave, or by 0.49 of the rate).
    pub fn at(&self, hz: f64) -> f64 {
        if hz <= 0.0 || self.hz.is_empty() {
            return 0.0;
        }
        let inside = |f: f64| {
            let x = f.log2();
            let xs = self.xs();
            if x <= xs[0] {
                self.db[0]
            } else {
                interpolate(&xs, &self.db, x).unwrap_or(self.db[self.db.len() - 1])
            }
        };
        let fade = |octaves: f64, width: f64| {
            if octaves >= width {
                0.0
            } else {
                0.5 + 0.5 * (std::f64::consts::PI * octaves / width).cos()
            }
        };
        if hz < self.low_hz {
            inside(self.low_hz) * fade((self.low_hz / hz).log2(), TAPER_OCTAVES)
        } else if hz > self.high_hz {
            inside(self.high_hz) * fade((hz / self.high_hz).log2(), self.fade_high_octaves)
        } else {
            inside(hz)
        }
    }

    fn xs(&self) -> Vec<f64> {
        self.hz.iter().map(|f| f.log2()).collect()
    }

    /// The largest boost (≥ 0) and the deepest cut (≤ 0) of the corrected points, dB.
    pub fn extremes(&self) -> (f64, f64) {
        self.db
            .iter()
            .fold((0.0f64, 0.0f64), |(hi, lo), &d| (hi.max(d), lo.min(d)))
    }

    pub fn is_empty(&self) -> bool {
        !self.corrected.iter().any(|&c| c)
    }
}

/// Smooth `values` at log-frequencies `xs` (only the `used` ones, each from the used points
/// around it) with a raised-cosine window of half-height width `octaves`.
fn smooth(xs: &[f64], values: &[f64], used: &[bool], octaves: f64) -> Vec<f64> {
    if octaves <= 0.0 {
        return values.to_vec();
    }
    (0..xs.len())
        .map(|i| {
            if !used[i] {
                return values[i];
            }
            let (mut sum, mut weight) = (0.0, 0.0);
            for j in 0..xs.len() {
                let u = (xs[i] - xs[j]).abs();
                if used[j] && u < octaves {
                    let w = 0.5 + 0.5 * (std::f64::consts::PI * u / octaves).cos();
                    sum += w * values[j];
                    weight += w;
                }
            }
            sum / weight
        })
        .collect()
}

/// The power-weighted mean of `db` over the used points, dB: the level change a correction of
/// `db` makes to a signal whose power at each point is `weights`.
fn weighted_offset(db: &[f64], weights: &[f64], used: &[bool]) -> f64 {
    let (mut num, mut den) = (0.0, 0.0);
    for ((&d, &w), &u) in db.iter().zip(weights).zip(used) {
        if u {
            num += w * 10f64.powf(d / 10.0);
            den += w;
        }
    }
    if den > 0.0 && num > 0.0 {
        10.0 * (num / den).log10()
    } else {
        0.0
    }
}

/// The EQ curve that moves `input` (an LTAS measured at `rate`) toward `target` (an LTAS at
/// any rate: when its points are [`SpectrumMeter`]'s grid the rate is read from them, else it
/// is taken as measured like the input), with `options`' smoothing, limit and strength.
pub fn correction_curve(
    input: &[LtasPoint],
    rate: u32,
    target: &[LtasPoint],
    options: &MatchOptions,
) -> Curve {
    let in_grid = grid(rate);
    let grid_x: Vec<f64> = in_grid.iter().map(|g| g.centre.log2()).collect();
    let grid_bw: Vec<f64> = in_grid.iter().map(|g| g.measured_hz).collect();
    // The width in Hz a point's level was summed over at `rate`'s grid (the input's own points
    // match it one for one; anything else is interpolated).
    let input_bw = |k: usize, hz: f64| -> f64 {
        match in_grid.get(k) {
            Some(g) if (g.centre - hz).abs() <= 1e-6 * hz => g.measured_hz,
            _ => interpolate(&grid_x, &grid_bw, hz.log2())
                .unwrap_or(if hz < in_grid[0].centre {
                    grid_bw[0]
                } else {
                    grid_bw[grid_bw.len() - 1]
                })
                .max(1e-9),
        }
    };
    let target_rate = ltas_rate(target);
    let target_grid = target_rate.map(grid);
    let target_top = match target_rate {
        Some(r) => TOP_OF_RATE * f64::from(r),
        None => target.last().map_or(0.0, |p| p.hz * 2f64.powf(1.0 / 24.0)),
    };
    let high_hz = HIGH_HZ.min(TOP_OF_RATE * f64::from(rate)).min(target_top);
    // The target as a density (dB per Hz) at its points, where it sounds.
    let (mut tx, mut ty) = (Vec::new(), Vec::new());
    let mut sounding = Vec::new();
    for (k, p) in target.iter().enumerate() {
        let bw = match &target_grid {
            Some(g) => g[k].measured_hz,
            None => input_bw(usize::MAX, p.hz),
        };
        tx.push(p.hz.log2());
        ty.push(p.db - 10.0 * bw.log10());
        sounding.push(p.db > SILENT_DB);
    }
    let n = input.len();
    let hz: Vec<f64> = input.iter().map(|p| p.hz).collect();
    let xs: Vec<f64> = hz.iter().map(|f| f.log2()).collect();
    let mut diff = vec![0.0; n];
    let mut used = vec![false; n];
    let mut weights = vec![0.0; n];
    for (i, p) in input.iter().enumerate() {
        let in_density = p.db - 10.0 * input_bw(i, p.hz).log10();
        let band = in_grid.get(i).map_or(
            p.hz * (2f64.powf(1.0 / 24.0) - 2f64.powf(-1.0 / 24.0)),
            |g| g.hi - g.lo,
        );
        weights[i] = 10f64.powf(in_density / 10.0) * band * k_weight(p.hz);
        if p.hz < LOW_HZ || p.hz > high_hz || p.db <= SILENT_DB || !p.db.is_finite() {
            continue;
        }
        // The target between two of its points, both sounding.
        let x = xs[i];
        let k = tx.partition_point(|&v| v <= x);
        if k == 0 {
            continue;
        }
        let hi = if k < tx.len() { k } else { k - 1 };
        let Some(t) = interpolate(&tx, &ty, x) else {
            continue;
        };
        if !(sounding[k - 1] && sounding[hi]) {
            continue;
        }
        diff[i] = t - in_density;
        used[i] = true;
    }
    let offset_db = weighted_offset(&diff, &weights, &used);
    for (d, &u) in diff.iter_mut().zip(&used) {
        *d = if u { *d - offset_db } else { 0.0 };
    }
    let mut db = smooth(&xs, &diff, &used, options.smoothing_octaves);
    let limit = options.max_gain_db;
    for d in &mut db {
        *d = d.clamp(-limit, limit) * options.strength;
    }
    // Centred again after the limit and the strength (the EQ keeps the K-weighted power),
    // within the limit the strength leaves.
    let bound = limit * options.strength;
    for _ in 0..8 {
        let c = weighted_offset(&db, &weights, &used);
        if c.abs() < 1e-6 {
            break;
        }
        for (d, &u) in db.iter_mut().zip(&used) {
            if u {
                *d = (*d - c).clamp(-bound, bound);
            }
        }
    }
    let clamped = db
        .iter()
        .zip(&used)
        .filter(|&(d, &u)| u && d.abs() >= bound - 1e-9 && bound > 0.0)
        .count();
    Curve {
        hz,
        db,
        corrected: used,
        low_hz: LOW_HZ,
        high_hz,
        offset_db,
        clamped,
        fade_high_octaves: (0.49 * f64::from(rate) / high_hz)
            .log2()
            .clamp(0.02, TAPER_OCTAVES),
    }
}

/// Taps of the EQ's FIR at `rate` for a curve smoothed over `octaves`: the Hann window's
/// main lobe (±2 bins of rate/taps) no wider than the smoothing at 20 Hz, and never coarser
/// than a third of an octave there (about 0.43 s of taps).
pub fn eq_taps(rate: u32, octaves: f64) -> usize {
    let s = octaves.max(1.0 / 3.0);
    let resolution = LOW_HZ * (2f64.powf(s / 2.0) - 2f64.powf(-s / 2.0));
    let taps = (2.0 * f64::from(rate) / resolution).ceil() as usize;
    taps | 1
}

/// The linear-phase FIR of `curve` at `rate` with `taps` taps (odd): the curve sampled on a
/// grid of at least four times the taps, transformed to a zero-phase impulse response, cut to
/// the taps around its centre by a Hann window.
pub fn design_fir(curve: &Curve, rate: u32, taps: usize) -> Vec<f64> {
    let m = (4 * taps).next_power_of_two();
    let mut spectrum: Vec<Complex<f64>> = (0..m)
        .map(|k| {
            let f = k.min(m - k) as f64 * f64::from(rate) / m as f64;
            Complex::new(db_to_gain(curve.at(f)), 0.0)
        })
        .collect();
    FftPlanner::new().plan_fft_inverse(m).process(&mut spectrum);
    let half = (taps - 1) / 2;
    (0..taps)
        .map(|i| {
            let at = (i + m - half) % m;
            let w = 0.5 - 0.5 * (std::f64::consts::TAU * (i + 1) as f64 / (taps + 1) as f64).cos();
            spectrum[at].re / m as f64 * w
        })
        .collect()
}

/// What a measuring pass found: the LTAS (the first pass, when the EQ is on), the integrated
/// loudness and the left/right sums of a stereo signal.
struct MatchMeter {
    spectrum: Option<SpectrumMeter>,
    loudness: LoudnessMeter,
    /// Σ left², Σ right², Σ left·right.
    sums: Option<[f64; 3]>,
}

impl MatchMeter {
    fn new(spec: &SignalSpec, spectrum: bool) -> Self {
        let mut channels: Vec<usize> = (0..spec.channels())
            .filter(|&c| !spec.layout[c].starts_with("LFE"))
            .collect();
        if channels.is_empty() {
            channels = (0..spec.channels()).collect();
        }
        MatchMeter {
            spectrum: spectrum.then(|| SpectrumMeter::new(spec.sample_rate, channels)),
            loudness: LoudnessMeter::for_layout(spec.sample_rate, &spec.layout),
            sums: (spec.channels() == 2).then_some([0.0; 3]),
        }
    }
}

impl Probe for MatchMeter {
    fn feed(&mut self, block: &Block) {
        let planes = block.slices();
        if let Some(s) = &mut self.spectrum {
            s.feed(&planes);
        }
        self.loudness.feed(&planes);
        if let Some(sums) = &mut self.sums {
            let (mut ll, mut rr, mut lr) = (0.0f64, 0.0f64, 0.0f64);
            for (&l, &r) in planes[0].iter().zip(planes[1]) {
                let (l, r) = (f64::from(l), f64::from(r));
                ll += l * l;
                rr += r * r;
                lr += l * r;
            }
            sums[0] += ll;
            sums[1] += rr;
            sums[2] += lr;
        }
    }
    fn into_any(self: Box<Self>) -> Box<dyn std::any::Any> {
        self
    }
}

/// The figures of a measuring pass.
#[derive(Debug, Clone)]
struct Measured {
    ltas: Option<Vec<LtasPoint>>,
    lufs: Option<f64>,
    /// Σ left², Σ right², Σ left·right (stereo only).
    sums: Option<[f64; 3]>,
}

impl Measured {
    fn of(m: MatchMeter) -> Self {
        Measured {
            ltas: m.spectrum.map(|s| s.finish().ltas),
            lufs: m
                .loudness
                .summary(None)
                .integrated_lufs
                .filter(|&l| l >= super::normalize::SILENCE_LUFS),
            sums: m.sums,
        }
    }
    fn width(&self) -> Option<f64> {
        self.sums.and_then(|[ll, rr, lr]| stereo::width(ll, rr, lr))
    }
}

/// The width the mid/side gains aim at, and what they act on.
#[derive(Debug, Clone, Copy)]
struct WidthAim {
    aim: f64,
    /// Side over mid energy of the signal the gains act on (the input's, then as measured
    /// through the stage).
    side_over_mid: f64,
    /// Side over mid gain, dB (limited).
    ratio_db: f64,
}

/// The reference-matching stage (see the module documentation).
pub struct Match {
    target: MatchTarget,
    options: MatchOptions,
    spec: Option<SignalSpec>,
    input: Option<Measured>,
    curve: Option<Curve>,
    conv: Option<FftConvolver>,
    /// The FIR's delay, frames, and what is left to drop of it in this pass.
    latency: usize,
    skip: usize,
    held: Vec<Vec<f32>>,
    gain_db: f64,
    gain: f32,
    loudness_aim: Option<f64>,
    width: Option<WidthAim>,
    mid: f32,
    side: f32,
    output: Option<Measured>,
    output_passes: u32,
    settled: bool,
    warnings: Vec<String>,
}

impl Match {
    pub fn new(target: MatchTarget, options: MatchOptions) -> Self {
        Match {
            target,
            options,
            spec: None,
            input: None,
            curve: None,
            conv: None,
            latency: 0,
            skip: 0,
            held: Vec::new(),
            gain_db: 0.0,
            gain: 1.0,
            loudness_aim: None,
            width: None,
            mid: 1.0,
            side: 1.0,
            output: None,
            output_passes: 0,
            settled: false,
            warnings: Vec::new(),
        }
    }

    /// The EQ curve decided on (after the first measuring pass, when the EQ is on).
    pub fn curve(&self) -> Option<&Curve> {
        self.curve.as_ref()
    }

    /// Why the options or the target cannot be used, if they cannot.
    fn refusal(&self) -> Option<String> {
        if let Err(e) = self.options.check().and_then(|()| self.target.check()) {
            return Some(e.to_string());
        }
        (self.options.eq && self.target.ltas.is_empty() && self.active())
            .then(|| "the EQ is on but the target has no spectrum".into())
    }

    /// Whether the options ask for anything at all.
    fn active(&self) -> bool {
        self.options.strength > 0.0
            && (self.options.eq || self.options.loudness || self.options.width)
    }

    fn set_gain(&mut self, db: f64) {
        self.gain_db = db;
        self.gain = db_to_gain(db) as f32;
    }

    /// Mid and side gains for `w`: side over mid at the ratio that gives its aim (limited),
    /// both scaled so the mid-plus-side energy stays.
    fn set_width(&mut self, mut w: WidthAim) {
        let limit = self.options.max_gain_db;
        let q = w.side_over_mid;
        let ratio_db = if w.aim <= 0.0 {
            -limit
        } else if w.aim >= 1.0 {
            limit
        } else {
            10.0 * (w.aim / (1.0 - w.aim) / q).log10()
        };
        w.ratio_db = ratio_db.clamp(-limit, limit);
        let r2 = 10f64.powf(w.ratio_db / 10.0);
        let a = ((1.0 + q) / (1.0 + r2 * q)).sqrt();
        self.mid = a as f32;
        self.side = (a * r2.sqrt()) as f32;
        self.width = Some(w);
    }

    /// Decide the EQ, the width and the gain from the input's measurement.
    fn decide(&mut self, m: &Measured, spec: &SignalSpec) {
        let strength = self.options.strength;
        if self.options.eq {
            let ltas = m.ltas.as_deref().unwrap_or(&[]);
            let curve = correction_curve(ltas, spec.sample_rate, &self.target.ltas, &self.options);
            if curve.is_empty() {
                self.warnings.push(
                    "eq: no frequency where both the input and the target sound (silent input?): the tonal balance is left as it is".into(),
                );
            } else {
                let taps = eq_taps(spec.sample_rate, self.options.smoothing_octaves);
                let h = design_fir(&curve, spec.sample_rate, taps);
                self.conv = Some(FftConvolver::for_filter(&h, spec.channels()));
                self.latency = (taps - 1) / 2;
                self.curve = Some(curve);
            }
        }
        if self.options.width {
            match (spec.channels(), self.target.width, m.sums, m.width()) {
                (1, ..) => self
                    .warnings
                    .push("width: the input is mono, left as it is".into()),
                (c, ..) if c != 2 => self.warnings.push(format!(
                    "width: the input has {c} channels; only a stereo pair's width is matched, it is left as it is"
                )),
                (_, None, ..) => self
                    .warnings
                    .push("width: the target has no stereo width (mono?), left as it is".into()),
                (_, Some(target), Some([ll, rr, lr]), Some(now)) => {
                    let mid = (ll + rr + 2.0 * lr) / 4.0;
                    let side = (ll + rr - 2.0 * lr) / 4.0;
                    if mid <= 0.0 || side <= 0.0 {
                        self.warnings.push(format!(
                            "width: the input has no {} signal to scale, left as it is",
                            if side <= 0.0 { "side" } else { "mid" }
                        ));
                    } else {
                        self.set_width(WidthAim {
                            aim: now + strength * (target - now),
                            side_over_mid: side / mid,
                            ratio_db: 0.0,
                        });
                    }
                }
                _ => self
                    .warnings
                    .push("width: the input is silent, left as it is".into()),
            }
        }
        if self.options.loudness {
            match (self.target.loudness_lufs, m.lufs) {
                (None, _) => self
                    .warnings
                    .push("loudness: the target has no loudness, left as it is".into()),
                (_, None) => self.warnings.push(format!(
                    "loudness: the input is silent (below {} LUFS), left as it is",
                    super::normalize::SILENCE_LUFS
                )),
                (Some(target), Some(now)) => {
                    let aim = now + strength * (target - now);
                    self.loudness_aim = Some(aim);
                    self.set_gain(aim - now);
                }
            }
        }
        // What the EQ and the mid/side gains do to the loudness and the width is measured on
        // the stage's own output.
        let shaped = self.conv.is_some() || self.width.is_some();
        self.settled =
            !(self.loudness_aim.is_some() && shaped || self.width.is_some() && self.conv.is_some());
    }

    /// Correct the gain and the mid/side gains from a measurement of the stage's output.
    fn refine(&mut self, out: &Measured) {
        self.output_passes += 1;
        let loudness_off = match (self.loudness_aim, out.lufs) {
            (Some(aim), Some(now)) => Some(aim - now),
            _ => None,
        };
        let width_now = out.width();
        let width_off = match (self.width, width_now) {
            (Some(w), Some(now)) => {
                let limited = w.ratio_db.abs() >= self.options.max_gain_db - 1e-9;
                (!limited).then_some(w.aim - now)
            }
            _ => None,
        };
        let ok = loudness_off.is_none_or(|d| d.abs() <= LOUDNESS_TOLERANCE_LU)
            && width_off.is_none_or(|d| d.abs() <= WIDTH_TOLERANCE);
        if ok || self.output_passes >= MAX_OUTPUT_PASSES {
            if !ok {
                self.warnings.push(format!(
                    "after {} measuring passes the output is {:+.3} LU and {:+.4} in width from the aims",
                    self.output_passes,
                    -loudness_off.unwrap_or(0.0),
                    -width_off.unwrap_or(0.0)
                ));
            }
            self.settled = true;
            return;
        }
        if let (Some(mut w), Some(now)) = (self.width, width_now) {
            // The signal the gains act on has side over mid q' with
            // now = r²q' / (1 + r²q'), r the side-over-mid gain.
            let r2 = 10f64.powf(w.ratio_db / 10.0);
            let now = now.clamp(1e-9, 1.0 - 1e-9);
            w.side_over_mid = now / (1.0 - now) / r2;
            self.set_width(w);
        }
        if let Some(d) = loudness_off {
            self.set_gain(self.gain_db + d);
        }
    }

    /// Mid/side gains, then the gain, in place.
    fn apply_gains(&self, block: &mut Block) {
        if block.channels() == 2 && (self.mid != 1.0 || self.side != 1.0) {
            let (a, b) = (0.5 * self.mid * self.gain, 0.5 * self.side * self.gain);
            let [l, r] = block.planes_mut() else {
                return;
            };
            for (l, r) in l.iter_mut().zip(r.iter_mut()) {
                let (m, s) = (*l + *r, *l - *r);
                *l = a * m + b * s;
                *r = a * m - b * s;
            }
        } else if self.gain != 1.0 {
            let g = self.gain;
            block
                .planes_mut()
                .iter_mut()
                .for_each(|p| p.iter_mut().for_each(|x| *x *= g));
        }
    }

    /// Filtered outputs into `held`, the first `skip` of them dropped (the filter's delay).
    fn take(held: &mut [Vec<f32>], skip: &mut usize, outs: &[Vec<f32>]) {
        let n = outs.first().map_or(0, Vec::len);
        let drop = (*skip).min(n);
        *skip -= drop;
        for (h, o) in held.iter_mut().zip(outs) {
            h.extend_from_slice(&o[drop..]);
        }
    }

    /// `block` replaced by what the filter gives back for it (`end`: the tail after the
    /// stream, into the empty `block`).
    fn filter(&mut self, block: &mut Block, end: bool) {
        let Some(conv) = &mut self.conv else {
            return;
        };
        let (held, skip) = (&mut self.held, &mut self.skip);
        held.iter_mut().for_each(Vec::clear);
        if end {
            conv.flush(self.latency, &mut |o| Self::take(held, skip, o));
        } else {
            conv.feed(block.planes(), &mut |o| Self::take(held, skip, o));
        }
        for (p, h) in block.planes_mut().iter_mut().zip(held.iter_mut()) {
            std::mem::swap(p, h);
        }
    }
}

impl Stage for Match {
    fn name(&self) -> &'static str {
        "match"
    }
    fn start(&mut self, input: &SignalSpec) -> Result<SignalSpec, RenderError> {
        if let Some(e) = self.refusal() {
            return Err(RenderError::Invalid(format!("match: {e}")));
        }
        if let Some(s) = self.spec.as_ref().filter(|_| self.input.is_some())
            && (s.sample_rate != input.sample_rate || s.channels() != input.channels())
        {
            return Err(RenderError::Invalid(format!(
                "match: measured at {} Hz with {} channels, now given {} Hz with {}",
                s.sample_rate,
                s.channels(),
                input.sample_rate,
                input.channels()
            )));
        }
        if let Some(c) = &mut self.conv {
            c.reset();
        }
        self.skip = self.latency;
        self.held = vec![Vec::new(); input.channels()];
        let mut out = input.clone();
        if self.active() {
            out.exact_bits = None;
        }
        Ok(out)
    }
    fn prepass(&mut self, input: &SignalSpec) -> Option<Prepass> {
        if self.settled {
            return None;
        }
        if self.input.is_none() {
            self.spec = Some(input.clone());
            // Options or a target that cannot be used: nothing to measure; `start` says why.
            if !self.active() || self.refusal().is_some() {
                self.settled = true;
                return None;
            }
            return Some(Prepass::Input(Box::new(MatchMeter::new(
                input,
                self.options.eq,
            ))));
        }
        Some(Prepass::Output(Box::new(MatchMeter::new(input, false))))
    }
    fn prepass_done(&mut self, probe: Box<dyn Probe>) -> Result<(), RenderError> {
        let probe = probe
            .into_any()
            .downcast::<MatchMeter>()
            .expect("our own probe");
        let m = Measured::of(*probe);
        if self.input.is_none() {
            let spec = self
                .spec
                .clone()
                .ok_or_else(|| RenderError::Invalid("match: measured before it started".into()))?;
            self.decide(&m, &spec);
            self.input = Some(m);
        } else {
            self.refine(&m);
            self.output = Some(m);
        }
        Ok(())
    }
    fn process(&mut self, block: &mut Block) {
        self.filter(block, false);
        self.apply_gains(block);
    }
    fn finish(&mut self, block: &mut Block) -> bool {
        if self.conv.is_some() {
            block.reset(self.held.len());
            self.filter(block, true);
            self.apply_gains(block);
        }
        false
    }
    fn report(&self) -> Option<StageReport> {
        let mut values = BTreeMap::from([("strength".to_string(), self.options.strength)]);
        let mut warnings = self.warnings.clone();
        if !self.active() {
            warnings.push("match: strength 0 or every switch off: nothing changed".into());
        }
        if let Some(c) = &self.curve {
            let (boost, cut) = c.extremes();
            values.insert("eq_max_boost_db".into(), boost);
            values.insert("eq_max_cut_db".into(), cut);
            values.insert("eq_tonal_offset_db".into(), c.offset_db);
            values.insert(
                "eq_points_corrected".into(),
                c.corrected.iter().filter(|&&u| u).count() as f64,
            );
            values.insert("eq_points_clamped".into(), c.clamped as f64);
            values.insert("eq_high_hz".into(), c.high_hz);
        }
        if let Some(conv) = &self.conv {
            values.insert("eq_taps".into(), conv.taps() as f64);
            values.insert("eq_latency_frames".into(), self.latency as f64);
        }
        let input = self.input.as_ref();
        if let Some(l) = input.and_then(|m| m.lufs) {
            values.insert("input_integrated_lufs".into(), l);
        }
        if let Some(w) = input.and_then(Measured::width) {
            values.insert("input_width".into(), w);
        }
        if self.options.loudness {
            if let Some(t) = self.target.loudness_lufs {
                values.insert("target_integrated_lufs".into(), t);
            }
            values.insert("loudness_gain_db".into(), self.gain_db);
        }
        if let Some(w) = &self.width {
            values.insert("target_width".into(), self.target.width.unwrap_or(w.aim));
            values.insert("width_aim".into(), w.aim);
            values.insert("side_gain_db".into(), 20.0 * f64::from(self.side).log10());
            values.insert("mid_gain_db".into(), 20.0 * f64::from(self.mid).log10());
        }
        match &self.output {
            Some(o) => {
                if let Some(l) = o.lufs {
                    values.insert("output_integrated_lufs".into(), l);
                }
                if let Some(w) = o.width() {
                    values.insert("output_width".into(), w);
                }
            }
            // Without a measuring pass of the output, its figures follow exactly: a gain
            // alone, or mid/side gains alone.
            None if self.conv.is_none() => {
                if let (Some(l), Some(_)) = (input.and_then(|m| m.lufs), self.loudness_aim) {
                    values.insert("output_integrated_lufs".into(), l + self.gain_db);
                }
                if let Some(w) = &self.width {
                    let r2q = 10f64.powf(w.ratio_db / 10.0) * w.side_over_mid;
                    values.insert("output_width".into(), r2q / (1.0 + r2q));
                }
            }
            None => {}
        }
        values.insert(
            "measuring_passes".into(),
            f64::from(u32::from(self.input.is_some()) + self.output_passes),
        );
        Some(StageReport {
            stage: "match".into(),
            values,
            warnings,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An LTAS on `rate`'s grid whose density (dB per Hz) is `density(hz)`.
    fn on_grid(rate: u32, density: &dyn Fn(f64) -> f64) -> Vec<LtasPoint> {
        grid(rate)
            .iter()
            .map(|g| LtasPoint {
                hz: g.centre,
                db: density(g.centre) + 10.0 * g.measured_hz.log10(),
            })
            .collect()
    }

    #[test]
    fn the_grid_is_the_spectrum_meters_and_gives_the_rate_back() {
        for rate in [22_050, 32_000, 44_100, 48_000, 88_200, 96_000, 192_000] {
            let noise = crate::signal::noise(rate.into(), 0.5, rate as usize / 2);
            let mut m = SpectrumMeter::new(rate, vec![0]);
            m.feed(&[&noise]);
            let ltas = m.finish().ltas;
            let g = grid(rate);
            assert_eq!(ltas.len(), g.len(), "{rate}");
            for (p, g) in ltas.iter().zip(&g) {
                assert_eq!(p.hz, g.centre, "{rate}");
                assert!(g.measured_hz > 0.0 && g.hi > g.lo);
            }
            assert_eq!(ltas_rate(&ltas), Some(rate));
            // Without its last point (a profile's averaged spectrum) the rate is unknown.
            assert_eq!(ltas_rate(&ltas[..ltas.len() - 1]), None);
        }
    }

    #[test]
    fn white_noise_at_two_rates_needs_no_correction() {
        // The same density at 44.1 and 96 kHz: the LTAS points differ (the bins are 10.8 and
        // 11.7 Hz wide, and the lowest points sum 4 of them), the curve does not.
        let measure = |rate: u32, seconds: f64| {
            let amp = (f64::from(rate) / 44_100.0).sqrt() * 0.3;
            let planes: Vec<Vec<f32>> = (0..2)
                .map(|c| {
                    crate::signal::noise(rate as u64 + c, amp, (seconds * f64::from(rate)) as usize)
                })
                .collect();
            let mut m = SpectrumMeter::new(rate, vec![0, 1]);
            m.feed(&[&planes[0], &planes[1]]);
            m.finish().ltas
        };
        let (input, target) = (measure(44_100, 20.0), measure(96_000, 20.0));
        let low = (input[0].db - target[0].db).abs();
        assert!(low > 0.2, "the raw points differ at 20 Hz: {low}");
        let c = correction_curve(&input, 44_100, &target, &MatchOptions::default());
        let (boost, cut) = c.extremes();
        assert!(boost < 0.25 && cut > -0.25, "{boost} {cut}");
        assert_eq!(c.high_hz, 0.45 * 44_100.0);
        assert_eq!(c.corrected.iter().filter(|&&u| u).count(), 119);
    }

    #[test]
    fn a_spike_is_smoothed_limited_and_centred() {
        let rate = 48_000;
        let input = on_grid(rate, &|_| -60.0);
        let spike = |f: f64| {
            if (f / 1000.0).log2().abs() < 1.0 / 24.0 {
                -40.0
            } else {
                -60.0
            }
        };
        let target = on_grid(rate, &spike);
        let at = input
            .iter()
            .position(|p| (p.hz / 1000.0).log2().abs() < 1.0 / 24.0)
            .unwrap();
        let x = |i: usize| input[i].hz.log2();
        for octaves in [0.0, 1.0 / 3.0, 1.0] {
            let options = MatchOptions {
                smoothing_octaves: octaves,
                max_gain_db: 24.0,
                ..MatchOptions::default()
            };
            let c = correction_curve(&input, rate, &target, &options);
            // Away from the spike (farther than the window reaches) every point has the same
            // value: the offset that keeps the weighted power.
            let far: Vec<f64> = (0..c.db.len())
                .filter(|&i| {
                    c.corrected[i] && (x(i) - x(at)).abs() >= octaves.max(1.0 / 24.0) + 1e-9
                })
                .map(|i| c.db[i])
                .collect();
            assert!(
                far.iter().all(|v| (v - far[0]).abs() < 1e-9),
                "{octaves}: {far:?}"
            );
            assert!(far[0] < 0.0);
            // The spike spreads over the window: 20 dB at 1 point, less over more points.
            let peak = c.db[at];
            eprintln!(
                "smoothing {octaves}: peak {peak:.2}, elsewhere {:.3}",
                far[0]
            );
            if octaves == 0.0 {
                assert!((peak - far[0] - 20.0).abs() < 1e-6, "{peak}");
            } else {
                assert!(peak - far[0] < 20.0 / 3.0, "{peak}");
                assert!(c.db[at + 1] > far[0] && c.db[at - 1] > far[0]);
            }
        }
        // Limited: no point beyond the limit, and the K-weighted power kept.
        let options = MatchOptions {
            smoothing_octaves: 0.0,
            max_gain_db: 6.0,
            ..MatchOptions::default()
        };
        let c = correction_curve(&input, rate, &target, &options);
        let (boost, cut) = c.extremes();
        assert!((boost - 6.0).abs() < 1e-9 && cut >= -6.0, "{boost} {cut}");
        assert_eq!(c.clamped, 1);
        let g = grid(rate);
        let power = |db: &[f64]| -> f64 {
            (0..db.len())
                .filter(|&i| c.corrected[i])
                .map(|i| (g[i].hi - g[i].lo) * k_weight(g[i].centre) * 10f64.powf(db[i] / 10.0))
                .sum()
        };
        let kept = power(&c.db) / power(&vec![0.0; c.db.len()]);
        assert!((10.0 * kept.log10()).abs() < 1e-4, "{kept}");
    }

    #[test]
    fn strength_scales_the_curve_and_the_fir_follows_it() {
        let rate = 44_100;
        let input = on_grid(rate, &|_| -60.0);
        let tilt = |f: f64| -60.0 + 2.0 * (f / 1000.0).log2();
        let target = on_grid(rate, &tilt);
        let full = correction_curve(&input, rate, &target, &MatchOptions::default());
        let half = correction_curve(
            &input,
            rate,
            &target,
            &MatchOptions {
                strength: 0.5,
                ..MatchOptions::default()
            },
        );
        for (f, h) in full.db.iter().zip(&half.db) {
            assert!((h - f / 2.0).abs() < 0.1, "{f} {h}");
        }
        // The FIR is symmetric (linear phase) and its response is the curve's, within 0.2 dB
        // from 30 Hz to 18 kHz.
        let taps = eq_taps(rate, 1.0 / 3.0);
        let h = design_fir(&full, rate, taps);
        assert_eq!(h.len(), taps);
        assert!((0..taps / 2).all(|i| (h[i] - h[taps - 1 - i]).abs() < 1e-12));
        for f in [30.0, 50.0, 100.0, 440.0, 1000.0, 5000.0, 12_000.0, 18_000.0] {
            let w = std::f64::consts::TAU * f / f64::from(rate);
            let (re, im) = h.iter().enumerate().fold((0.0, 0.0), |(re, im), (n, &v)| {
                (re + v * (w * n as f64).cos(), im - v * (w * n as f64).sin())
            });
            let got = 10.0 * (re * re + im * im).log10();
            let want = full.at(f);
            assert!(
                (got - want).abs() < 0.2,
                "{f} Hz: {got:.3} dB, curve {want:.3}"
            );
        }
        // Flat outside the corrected range.
        let at = |f: f64| full.at(f);
        assert_eq!(at(10.0), 0.0);
        assert_eq!(at(0.49 * 44_100.0), 0.0);
        assert!(at(21_000.0).abs() < at(19_845.0).abs() / 2.0);
        assert!(at(20.0).abs() > 5.0);
    }
}
