//! `denoise`: reduces stationary noise (hiss, hum's broadband bed, room tone, fans) under speech
//! and music by up to a set amount, learning the noise from the pauses and from the gaps
//! between a voice's harmonics.
//!
//! **Frames.** A short-time Fourier transform: frames of about 40 ms (`n` = the power of two
//! nearest above 0.04 × the sample rate: 2048 at 44.1 and 48 kHz, 1024 at 22.05 kHz), half
//! overlapping, under a square-root Hann window on the way in and out (their products sum to
//! one: a gain of one everywhere gives back the input exactly, `n` frames late — the effect's
//! latency).
//!
//! **The noise**, per frequency bin, over the channels' mean power `P` of each frame:
//! - a low quantile: tracking the 10 % point of `ln P` (Robbins–Monro: up by `0.1 μ` when
//!   `ln P` is above it, down by `0.9 μ` when below; `μ` = 2/frames seen, never under 0.05).
//!   Noise's power in a bin is exponentially distributed (chi-square with two degrees of
//!   freedom; one at 0 Hz and at the top), so its mean is the quantile times a known factor. A
//!   voice sounds in a bin some of the time, not nine tenths of it, so the 10 % point is noise;
//! - a truncated mean: the mean of `P` over the frames where `P` stays under twice the estimate,
//!   divided by what truncating an exponential there leaves of its mean (0.687; 0.507 with one
//!   degree of freedom). Speech far above the noise never enters it; it is the estimate `N`,
//!   held within 4× of the quantile's;
//! - from below, the least of the last 3 s of the power's mean over five bins, times 2.5 —
//!   under what that minimum gives for noise alone (over 3 s its mean is 5.7× the minimum,
//!   2.9× in one case of a thousand): a noise that grows is followed within 4 s; and in the
//!   first 2 s, before the quantile has seen a pause, `N` is at most that minimum times its
//!   bias for noise alone (2.55 + 0.78·log2(frames/10), at least 1; measured on white noise):
//!   a voice from the first frame is not taken for noise once it has paused for a frame. Where
//!   the frames' total power moved more than 6 dB in the first half second (a voice from the
//!   first frame, not a room's tone) that bias is taken less, none past 12 dB: the minimum of a
//!   voice lies above the noise;
//! - from above, after the opening: at most that 3 s minimum times 16. A voice that sounds in a
//!   bin nine frames in ten from the start lifts the quantile and the mean to itself; its
//!   pauses bring the minimum down (a voice from the first frame at 20 dB SNR lost 1.6 dB of
//!   SI-SDR without this bound and gains 2.5 dB with it).
//!
//! Frames before the first full one (the opening's zeros) and digital silence teach nothing.
//!
//! **The gain.** The bins whose centre lies under 20 Hz (the 0 Hz bin; at 8 and 16 kHz the next
//! too) take the floor: nothing a listener hears is there, and a noise's rumble often is.
//! Elsewhere a gain in the manner of Cohen's optimally-modified estimator: Ephraim and Malah's
//! decision-directed a-priori SNR `ξ = α·G₁²γ(previous frame) + (1 − α)·max(γ − 1, 0)` with
//! `γ = P / (N·sensitivity)` and `α = smoothing`; the Wiener gain `G₁ = ξ/(1+ξ)`; a
//! speech-presence probability `p = 1 / (1 + q/(1−q)·(1+ξ)·e^−ν)`, `ν = γξ/(1+ξ)`, its prior
//! absence `q` from a smoothed `ξ` (absent below −5 dB, present above 10 dB);
//! `G = G₁^p · floor^(1−p)`; then the Wiener gain once more from the SNR that `G` implies
//! (the decision-directed estimate's frame of lag taken out), never under the floor
//! `−reduction_db` nor over one. (The log-spectral amplitude gain in place of Wiener's measured
//! the same here, within 0.05 dB of SI-SDR, at three times the cost.) The slow `ξ` keeps the
//! residual noise free of "musical" tones (isolated bins that flicker open); the floor leaves
//! a natural, quieter bed instead of a gated silence. The same gain goes to every channel (the
//! stereo image stays).
#![no_std]

use sluice_effect_sdk::{
    Arena, Config, Effect, InitError,
    dsp::{db_to_gain, fast_exp2, fast_log2, fft::RealFft},
    effect,
};

effect! {
    /// Parameters of `denoise`.
    pub struct DenoiseParams for Denoise {
        name: "denoise",
        version: "1.2.0",
        description: "Noise reduction: STFT (40 ms frames, half overlap), the noise learnt as a low quantile and a truncated mean per bin (pauses and the gaps between harmonics), a Wiener gain weighed by speech presence, floored at -reduction_db; latency one frame.",
        tail_seconds: 0.0,
        max_channels: 8,
    }
    params {
        reduction_db: { name: "Reduction", unit: "dB", min: 0.0, max: 40.0, default: 18.0 },
        sensitivity_db: { name: "Sensitivity", unit: "dB", min: -10.0, max: 10.0, default: 0.0 },
        smoothing: { name: "Smoothing", unit: "", min: 0.8, max: 0.998, default: 0.85 },
    }
}

/// Frame length in seconds (rounded up to a power of two in frames).
pub const FRAME_S: f32 = 0.04;
/// Frames per frame length: the hop is `n / OVERLAP`.
const OVERLAP: usize = 2;
/// The quantile tracked (of `ln P`), its least step and the step's start (`START_STEP / t`).
const QUANTILE: f32 = 0.1;
const STEP: f32 = 0.05;
const START_STEP: f32 = 2.0;
/// The mean of an exponential over its 10 % point (`−1/ln 0.9`), and of a chi-square with one
/// degree of freedom over its 10 % point (that point is 0.0157908 of the mean).
const QUANTILE_TO_MEAN: f32 = 9.491_221;
const QUANTILE_TO_MEAN_EDGE: f32 = 63.328_1;
/// The truncated mean takes `P` under `TRUNCATE` times the estimate, and moves by
/// `1 − MEAN_SMOOTH` (after its first frames, where it is the plain mean so far).
const TRUNCATE: f32 = 2.0;
const MEAN_SMOOTH: f32 = 0.98;
/// The truncated mean stays within this factor of the quantile's estimate.
const AGREE: f32 = 4.0;
/// The minimum's window (s) and its sub-windows; the power it takes is the mean of five bins.
const MIN_WINDOW_S: f32 = 3.0;
const SUB_WINDOWS: usize = 8;
/// The estimate is at least this multiple of the minimum (under its bias for noise alone:
/// over 3 s the mean is 5.7 times the minimum, 2.9 times in one case of a thousand).
const FROM_BELOW: f32 = 2.5;
/// How far the frames' power may range in the first `STEADY_S` (s, dB) before the minimum's
/// bias in the opening is taken less, and over how many more dB it is dropped.
const STEADY_S: f32 = 0.5;
const STEADY_DB: f32 = 6.0;
const STEADY_SPAN_DB: f32 = 6.0;
/// After the opening the estimate is at most the 3 s minimum times this (12 dB over it; noise
/// alone's mean is 5.7× its minimum on average: a lower ceiling cost SI-SDR on noise alone).
const CEILING: f32 = 16.0;
/// The opening (s) in which the estimate is at most the minimum times its bias for noise alone.
const OPENING_S: f32 = 2.0;
/// A frame whose mean power per bin is under this is digital silence: it teaches nothing.
const SILENCE: f32 = 1e-20;
/// Bins whose centre lies under this (Hz) hold nothing a listener hears: they take the floor.
const INFRASONIC_HZ: f32 = 20.0;
/// The a-priori SNR's least value, and the speech-presence thresholds on the smoothed one (dB)
/// with its smoothing and the largest probability of absence.
const XI_MIN: f32 = 0.003_162_278;
const MAX_SNR: f32 = 1e12;
const ABSENT_DB: f32 = -5.0;
const PRESENT_DB: f32 = 10.0;
const SMOOTH_XI: f32 = 0.9;
const MAX_ABSENCE: f32 = 0.95;

/// The frame length at `sample_rate`.
pub fn frame_len(sample_rate: u32) -> usize {
    ((sample_rate as f32 * FRAME_S) as usize)
        .next_power_of_two()
        .max(64)
}

/// What truncating an exponential at `k` times its mean leaves of the mean
/// (`1 − k·e^−k / (1 − e^−k)`).
fn truncated_exponential(k: f32) -> f32 {
    let e = libm::expf(-k);
    1.0 - k * e / (1.0 - e)
}

/// The same for a chi-square with one degree of freedom.
fn truncated_chi1(k: f32) -> f32 {
    let a = libm::sqrtf(k);
    let erf = libm::erff(a / core::f32::consts::SQRT_2);
    let pdf = libm::sqrtf(2.0 / core::f32::consts::PI) * a * libm::expf(-k / 2.0);
    (erf - pdf) / erf
}

/// `e^y` from the SDK's branch-free base-2 form (relative error under 1e-6; `libm`'s call
/// costs more than the frame's FFTs here).
#[inline(always)]
fn exp(y: f32) -> f32 {
    fast_exp2(y * core::f32::consts::LOG2_E)
}

/// Per-bin state.
struct Bins<'a> {
    /// The noise estimate (what the gains use); the tracked quantile of `P`; the truncated
    /// mean and how many frames it has taken; the running minimum of the frequency-smoothed
    /// power in the current sub-window and over the window; `G²γ` of the previous
    /// frame; the smoothed a-priori SNR; this frame's mean power, its frequency-smoothed
    /// version, and the gain.
    noise: &'a mut [f32],
    quantile: &'a mut [f32],
    mean: &'a mut [f32],
    taken: &'a mut [f32],
    current_min: &'a mut [f32],
    minimum: &'a mut [f32],
    previous: &'a mut [f32],
    xi_smooth: &'a mut [f32],
    power: &'a mut [f32],
    spread: &'a mut [f32],
    gain: &'a mut [f32],
    /// The sub-windows' minima, `SUB_WINDOWS` rows of `bins`.
    sub_min: &'a mut [f32],
}

/// The noise reducer.
pub struct Denoise<'a> {
    n: usize,
    hop: usize,
    channels: usize,
    fft: RealFft<'a>,
    window: &'a mut [f32],
    /// Per channel: the last `n` input samples, the overlap-add accumulator (`n`), the hop
    /// ready to go out (`hop`), and the spectrum (`n + 2`).
    input: &'a mut [f32],
    overlap: &'a mut [f32],
    ready: &'a mut [f32],
    spectra: &'a mut [f32],
    frame: &'a mut [f32],
    bins: Bins<'a>,
    work: Work<'a>,
    /// Samples into the current hop; frames analysed; frames that taught the estimate; frames
    /// per minimum sub-window and where in it; the first frame that is all input; the frames
    /// of the opening.
    fill: usize,
    frames: u32,
    learnt: u32,
    sub_len: u32,
    sub_at: u32,
    sub_index: usize,
    first_full: u32,
    opening: u32,
    /// The least and the most power of a frame (all bins) in the first `steady` frames.
    steady: u32,
    open_lo: f32,
    open_hi: f32,
    /// The bins under 20 Hz (their centres), which take the floor.
    infrasonic: usize,
    /// What truncating leaves of the mean, inside and at the edges (0 Hz and the top).
    truncated: f32,
    truncated_edge: f32,
    floor: f32,
    log_floor: f32,
    sensitivity: f32,
    alpha: f32,
}

impl Denoise<'_> {
    fn apply(&mut self, p: &DenoiseParams) {
        self.floor = db_to_gain(-p.reduction_db);
        self.log_floor = fast_log2(self.floor);
        self.sensitivity = libm::powf(10.0, p.sensitivity_db / 10.0);
        self.alpha = p.smoothing;
    }

    fn clear(&mut self) {
        for s in [
            &mut *self.input,
            &mut *self.overlap,
            &mut *self.ready,
            &mut *self.spectra,
            &mut *self.bins.noise,
            &mut *self.bins.quantile,
            &mut *self.bins.mean,
            &mut *self.bins.taken,
            &mut *self.bins.previous,
            &mut *self.bins.xi_smooth,
            &mut *self.bins.power,
            &mut *self.bins.spread,
            &mut *self.bins.gain,
        ] {
            s.fill(0.0);
        }
        self.bins.current_min.fill(f32::MAX);
        self.bins.minimum.fill(f32::MAX);
        self.bins.sub_min.fill(f32::MAX);
        self.fill = 0;
        self.frames = 0;
        self.learnt = 0;
        self.sub_at = 0;
        self.sub_index = 0;
    }

    /// The noise estimate per bin (for tests): `None` until the first frame.
    pub fn noise(&self) -> Option<&[f32]> {
        (self.learnt > 0).then_some(&*self.bins.noise)
    }

    /// The frame length.
    pub fn frame_len(&self) -> usize {
        self.n
    }

    /// One frame: the last `n` inputs of every channel to spectra, gains, and back into the
    /// overlap-add; the oldest hop, now complete, becomes the one ready to go out.
    fn frame(&mut self) {
        let (n, hop) = (self.n, self.hop);
        self.bins.power.fill(0.0);
        let per = 1.0 / self.channels as f32;
        for c in 0..self.channels {
            for (f, (x, w)) in self
                .frame
                .iter_mut()
                .zip(self.input[c * n..(c + 1) * n].iter().zip(&*self.window))
            {
                *f = x * w;
            }
            let spec = &mut self.spectra[c * (n + 2)..(c + 1) * (n + 2)];
            self.fft.forward(self.frame, spec);
            for (p, s) in self.bins.power.iter_mut().zip(spec.chunks_exact(2)) {
                *p += (s[0] * s[0] + s[1] * s[1]) * per;
            }
        }
        if self.frames >= self.first_full {
            self.learn();
        }
        self.gains();
        // The windows' products over the overlapping frames sum to OVERLAP / 2.
        let out = 2.0 / OVERLAP as f32;
        for c in 0..self.channels {
            let spec = &mut self.spectra[c * (n + 2)..(c + 1) * (n + 2)];
            for (s, g) in spec.chunks_exact_mut(2).zip(&*self.bins.gain) {
                s[0] *= g * out;
                s[1] *= g * out;
            }
            self.fft.inverse(spec, self.frame);
            let acc = &mut self.overlap[c * n..(c + 1) * n];
            for (a, (y, w)) in acc.iter_mut().zip(self.frame.iter().zip(&*self.window)) {
                *a += y * w;
            }
            self.ready[c * hop..(c + 1) * hop].copy_from_slice(&acc[..hop]);
            acc.copy_within(hop.., 0);
            acc[n - hop..].fill(0.0);
        }
        self.frames = self.frames.saturating_add(1);
    }

    /// Teaches the estimate this frame's power: the quantile, the truncated mean, the minimum,
    /// and from them the noise `N`.
    fn learn(&mut self) {
        let b = &mut self.bins;
        let n = b.power.len();
        let total = b.power.iter().sum::<f32>();
        if total < SILENCE * n as f32 {
            return;
        }
        let first = self.learnt == 0;
        self.learnt = self.learnt.saturating_add(1);
        if first {
            (self.open_lo, self.open_hi) = (total, total);
        } else if self.learnt <= self.steady {
            self.open_lo = self.open_lo.min(total);
            self.open_hi = self.open_hi.max(total);
        }
        // The power spread over five bins (fewer at the edges).
        let (power, spread) = (&b.power[..n], &mut b.spread[..n]);
        for k in 2..n - 2 {
            spread[k] =
                (power[k - 2] + power[k - 1] + power[k] + power[k + 1] + power[k + 2]) * 0.2;
        }
        for k in [0, 1, n - 2, n - 1] {
            let (lo, hi) = (k.saturating_sub(2), (k + 3).min(n));
            spread[k] = power[lo..hi].iter().sum::<f32>() / (hi - lo) as f32;
        }
        let step = STEP.max(START_STEP / self.learnt as f32);
        // The quantile moves in the log domain, kept as a power: up by e^(0.1 μ), down by
        // e^(−0.9 μ); the first frame sets it.
        let cap = if self.learnt <= self.opening {
            let bias = (2.55 + 0.78 * libm::log2f(self.learnt as f32 / 10.0)).max(1.0);
            // A level that moved in the first half second (a voice from the first frame)
            // leaves the minimum above the noise: the bias is taken less, none once the
            // frames' power spanned STEADY_DB + STEADY_SPAN_DB. A room's tone first is steady.
            let range = 10.0 * libm::log10f(self.open_hi / self.open_lo);
            let moved = ((range - STEADY_DB) / STEADY_SPAN_DB).clamp(0.0, 1.0);
            libm::powf(bias, 1.0 - moved)
        } else {
            0.0
        };
        let inner = Learn {
            to_mean: QUANTILE_TO_MEAN,
            truncated: self.truncated,
            up: libm::expf(step * QUANTILE),
            down: libm::expf(-step * (1.0 - QUANTILE)),
            cap,
            first,
        };
        // 0 Hz and the top bin (one degree of freedom) have their own constants.
        let edge = Learn {
            to_mean: QUANTILE_TO_MEAN_EDGE,
            truncated: self.truncated_edge,
            ..inner
        };
        let (quantile, mean, taken) = (&mut b.quantile[..n], &mut b.mean[..n], &mut b.taken[..n]);
        let (current_min, minimum, noise) = (
            &mut b.current_min[..n],
            &mut b.minimum[..n],
            &mut b.noise[..n],
        );
        let spread = &b.spread[..n];
        for k in 0..n {
            let c = if k == 0 || k == n - 1 { &edge } else { &inner };
            noise[k] = c.bin(
                power[k],
                spread[k],
                &mut quantile[k],
                &mut mean[k],
                &mut taken[k],
                &mut current_min[k],
                &mut minimum[k],
            );
        }
        self.sub_at += 1;
        if self.sub_at == self.sub_len {
            // A sub-window ends: it replaces the oldest, and the window's minimum is taken anew.
            self.sub_at = 0;
            let row = &mut b.sub_min[self.sub_index * n..(self.sub_index + 1) * n];
            row.copy_from_slice(b.current_min);
            self.sub_index = (self.sub_index + 1) % SUB_WINDOWS;
            b.current_min.fill(f32::MAX);
            b.minimum.copy_from_slice(b.current_min);
            for r in b.sub_min.chunks_exact(n) {
                for (m, v) in b.minimum.iter_mut().zip(r) {
                    *m = m.min(*v);
                }
            }
        }
    }

    /// The gains of this frame (optimally-modified log-spectral amplitude, two steps, floored).
    fn gains(&mut self) {
        let b = &mut self.bins;
        let n = b.power.len();
        let (alpha, floor, log_floor, sens) =
            (self.alpha, self.floor, self.log_floor, self.sensitivity);
        // Under 20 Hz nothing is signal.
        b.gain[..self.infrasonic].fill(floor);
        if floor >= 1.0 {
            b.gain.fill(1.0);
            return;
        }
        let from = self.infrasonic;
        gain_bins(
            Gains {
                alpha,
                floor,
                log_floor,
                sens,
            },
            &b.power[from..n],
            &b.noise[from..n],
            &mut b.previous[from..n],
            &mut b.xi_smooth[from..n],
            &mut b.gain[from..n],
            &mut self.work,
        );
    }
}

/// One frame's gain constants.
#[derive(Clone, Copy)]
struct Gains {
    alpha: f32,
    floor: f32,
    log_floor: f32,
    sens: f32,
}

/// Per-bin working space of the gains.
struct Work<'a> {
    gamma: &'a mut [f32],
    xi: &'a mut [f32],
    nu: &'a mut [f32],
    /// The Wiener gain `ξ/(1+ξ)`; then the second step's SNR.
    gain: &'a mut [f32],
}

/// The gains of a run of bins: simple passes over separate slices (which cannot overlap),
/// without branches, so that they vectorise. (The three passes folded into one loop without
/// the `Work` slices ran 15 % slower, in wasm and natively: measured 2026-11-29 with
/// `cargo bench -p sluice-host --bench effects -- --only denoise`.)
#[allow(clippy::too_many_arguments)]
fn gain_bins(
    c: Gains,
    power: &[f32],
    noise: &[f32],
    previous: &mut [f32],
    xi_smooth: &mut [f32],
    gain: &mut [f32],
    w: &mut Work,
) {
    let n = power.len();
    let (noise, previous, xi_smooth, gain) = (
        &noise[..n],
        &mut previous[..n],
        &mut xi_smooth[..n],
        &mut gain[..n],
    );
    let (gamma, xi, nu, g1) = (
        &mut w.gamma[..n],
        &mut w.xi[..n],
        &mut w.nu[..n],
        &mut w.gain[..n],
    );
    snrs(c, power, noise, previous, gamma, xi, nu, g1);
    presence(c, noise, previous, xi_smooth, gamma, xi, nu, g1);
    // The second step's Wiener gain, never under the floor nor over one.
    for k in 0..n {
        let known = noise[k] * c.sens > 1e-30;
        let x2 = g1[k];
        let g2 = (x2 / (1.0 + x2)).max(c.floor).min(1.0);
        gain[k] = if known { g2 } else { 1.0 };
    }
}

/// The SNRs of a run of bins (γ held under 120 dB: a bin whose noise is all but nothing must
/// not overflow), `ν = γξ/(1+ξ)`, and the Wiener gain `ξ/(1+ξ)` in `g1`. Slices as arguments
/// (which cannot overlap) and no branch, so that the loop vectorises.
#[allow(clippy::too_many_arguments)]
#[inline(never)]
fn snrs(
    c: Gains,
    power: &[f32],
    noise: &[f32],
    previous: &[f32],
    gamma: &mut [f32],
    xi: &mut [f32],
    nu: &mut [f32],
    g1: &mut [f32],
) {
    let n = power.len();
    let (noise, previous, gamma, xi, nu, g1) = (
        &noise[..n],
        &previous[..n],
        &mut gamma[..n],
        &mut xi[..n],
        &mut nu[..n],
        &mut g1[..n],
    );
    for k in 0..n {
        let g = (power[k] / (noise[k] * c.sens).max(1e-30)).min(MAX_SNR);
        let x = (c.alpha * previous[k] + (1.0 - c.alpha) * (g - 1.0).max(0.0)).max(XI_MIN);
        let r = x / (1.0 + x);
        gamma[k] = g;
        xi[k] = x;
        nu[k] = g * r;
        g1[k] = r;
    }
}

/// The speech-presence probability of a run of bins, the gain between the Wiener gain `g1`
/// and the floor, and the second step's SNR (the one this gain implies) into `g1`. Also the
/// decision-directed memory.
#[allow(clippy::too_many_arguments)]
#[inline(never)]
fn presence(
    c: Gains,
    noise: &[f32],
    previous: &mut [f32],
    xi_smooth: &mut [f32],
    gamma: &[f32],
    xi: &[f32],
    nu: &[f32],
    g1: &mut [f32],
) {
    let n = noise.len();
    let (previous, xi_smooth, gamma, xi, nu, g1) = (
        &mut previous[..n],
        &mut xi_smooth[..n],
        &gamma[..n],
        &xi[..n],
        &nu[..n],
        &mut g1[..n],
    );
    let span = PRESENT_DB - ABSENT_DB;
    for k in 0..n {
        let known = noise[k] * c.sens > 1e-30;
        let smooth = SMOOTH_XI * xi_smooth[k] + (1.0 - SMOOTH_XI) * xi[k];
        let db = 10.0 * core::f32::consts::LOG10_2 * fast_log2(smooth);
        let absent = (1.0 - ((db - ABSENT_DB) / span).clamp(0.0, 1.0)).min(MAX_ABSENCE);
        let present = 1.0 / (1.0 + absent / (1.0 - absent) * (1.0 + xi[k]) * exp(-nu[k].min(80.0)));
        let g = fast_exp2(present * fast_log2(g1[k]) + (1.0 - present) * c.log_floor);
        let first = g1[k];
        previous[k] = if known {
            first * first * gamma[k]
        } else {
            previous[k]
        };
        xi_smooth[k] = if known { smooth } else { xi_smooth[k] };
        g1[k] = g * g * gamma[k];
    }
}

/// One frame's learning constants for a run of bins.
#[derive(Clone, Copy)]
struct Learn {
    to_mean: f32,
    truncated: f32,
    up: f32,
    down: f32,
    /// In the opening, the minimum's bias for noise alone (the estimate's ceiling); else 0.
    cap: f32,
    /// The first frame that teaches: it sets the quantile and the mean.
    first: bool,
}

impl Learn {
    /// One bin: its power `p` and five-bin power `s` teach its state; the noise estimate out.
    /// Branch-free, so that the loop over bins vectorises.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn bin(
        &self,
        p: f32,
        s: f32,
        quantile: &mut f32,
        mean: &mut f32,
        taken: &mut f32,
        current_min: &mut f32,
        minimum: &mut f32,
    ) -> f32 {
        let p = p.max(1e-30);
        if self.first {
            *quantile = p;
            *mean = p * self.truncated;
        }
        let q = if self.first {
            p
        } else {
            *quantile * if p < *quantile { self.down } else { self.up }
        };
        *current_min = current_min.min(s);
        let least = minimum.min(s);
        *minimum = least;
        let from_quantile = q * self.to_mean;
        let take = p < TRUNCATE * *mean / self.truncated;
        let t = *taken + if take { 1.0 } else { 0.0 };
        let keep = MEAN_SMOOTH.min(1.0 - 1.0 / (t + 1.0));
        let m = if take {
            keep * *mean + (1.0 - keep) * p
        } else {
            *mean
        };
        let noise = (m / self.truncated)
            .max(from_quantile / AGREE)
            .min(from_quantile * AGREE);
        // The noise has grown past the estimate: the mean starts afresh there (a plain mean
        // again until it has taken enough frames), the quantile too.
        let below = least * FROM_BELOW;
        let grown = below > noise;
        let noise = if grown { below } else { noise };
        *mean = noise * self.truncated;
        *taken = if grown { 0.0 } else { t };
        *quantile = if grown {
            q.max(noise / self.to_mean)
        } else {
            q
        };
        // In the opening no more than the minimum times its bias; after it no more than the
        // minimum times what that is for noise alone (a voice sounding in this bin more than
        // nine frames in ten lifts the quantile; a pause in 3 s brings the minimum down).
        let cap = if self.cap > 0.0 { self.cap } else { CEILING };
        noise.min(least * cap)
    }
}

impl<'a> Effect<'a> for Denoise<'a> {
    type Params = DenoiseParams;

    fn new(config: &Config, p: &DenoiseParams, arena: &mut Arena<'a>) -> Result<Self, InitError> {
        let n = frame_len(config.sample_rate);
        let hop = n / OVERLAP;
        let ch = config.channels;
        let bins = n / 2 + 1;
        let fft = RealFft::new(n, arena)?;
        let window = arena.take(n)?;
        for (i, w) in window.iter_mut().enumerate() {
            let a = 2.0 * core::f64::consts::PI * i as f64 / n as f64;
            *w = libm::sqrt(0.5 - 0.5 * libm::cos(a)) as f32;
        }
        let frame_s = hop as f32 / config.fs();
        let [noise, quantile, mean, taken, current_min, minimum] = arena.take_many(bins)?;
        let [previous, xi_smooth, power, spread, gain] = arena.take_many(bins)?;
        let [w_gamma, w_xi, w_nu, w_gain] = arena.take_many(bins)?;
        let mut d = Denoise {
            n,
            hop,
            channels: ch,
            fft,
            window,
            input: arena.take(n * ch)?,
            overlap: arena.take(n * ch)?,
            ready: arena.take(hop * ch)?,
            spectra: arena.take((n + 2) * ch)?,
            frame: arena.take(n)?,
            work: Work {
                gamma: w_gamma,
                xi: w_xi,
                nu: w_nu,
                gain: w_gain,
            },
            bins: Bins {
                noise,
                quantile,
                mean,
                taken,
                current_min,
                minimum,
                previous,
                xi_smooth,
                power,
                spread,
                gain,
                sub_min: arena.take(bins * SUB_WINDOWS)?,
            },
            fill: 0,
            frames: 0,
            learnt: 0,
            sub_len: ((MIN_WINDOW_S / SUB_WINDOWS as f32 / frame_s) as u32).max(1),
            sub_at: 0,
            sub_index: 0,
            // Frame `t` holds input up to `(t + 1)·hop`: the first all input is `n/hop − 1`.
            first_full: (OVERLAP - 1) as u32,
            opening: (OPENING_S / frame_s) as u32,
            steady: (STEADY_S / frame_s) as u32,
            open_lo: 0.0,
            open_hi: 0.0,
            infrasonic: (INFRASONIC_HZ * n as f32 / config.fs()) as usize + 1,
            truncated: truncated_exponential(TRUNCATE),
            truncated_edge: truncated_chi1(TRUNCATE),
            floor: 0.0,
            log_floor: 0.0,
            sensitivity: 1.0,
            alpha: 0.92,
        };
        d.apply(p);
        d.clear();
        Ok(d)
    }

    fn update(&mut self, p: &DenoiseParams) {
        self.apply(p);
    }

    fn process(&mut self, channels: &mut [&mut [f32]]) {
        let frames = channels.first().map_or(0, |c| c.len());
        let (n, hop) = (self.n, self.hop);
        let mut at = 0;
        while at < frames {
            let take = (hop - self.fill).min(frames - at);
            for (c, ch) in channels.iter_mut().enumerate().take(self.channels) {
                let input = &mut self.input[c * n..(c + 1) * n];
                let ready = &self.ready[c * hop..(c + 1) * hop];
                let part = &mut ch[at..at + take];
                // The newest hop fills the input's last `hop` places.
                input[n - hop + self.fill..n - hop + self.fill + take].copy_from_slice(part);
                part.copy_from_slice(&ready[self.fill..self.fill + take]);
            }
            self.fill += take;
            at += take;
            if self.fill == hop {
                self.fill = 0;
                self.frame();
                for c in 0..self.channels {
                    self.input[c * n..(c + 1) * n].copy_within(hop.., 0);
                }
            }
        }
    }

    fn reset(&mut self, p: &DenoiseParams) {
        self.apply(p);
        self.clear();
    }

    fn latency(&self) -> u32 {
        self.n as u32
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use sluice_effect_sdk::native::{Instance, memory, signal};
    use std::{vec, vec::Vec};

    const FS: u32 = 48_000;

    fn run(x: &[Vec<f32>], block: usize, set: &[(&str, f32)]) -> Vec<Vec<f32>> {
        let mut mem = memory();
        let mut fx = Instance::<Denoise>::new(&mut mem, FS, x.len(), block).unwrap();
        for &(id, v) in set {
            fx.set(id, v);
        }
        assert_eq!(fx.latency(), frame_len(FS));
        let mut out = x.to_vec();
        fx.run(&mut out);
        out
    }

    #[test]
    fn with_no_reduction_the_input_comes_back_one_frame_late() {
        let x = vec![
            signal::noise(1, 20_000, 0.3),
            signal::sine(440.0, 48e3, 20_000, 0.5, 0.0),
        ];
        let y = run(&x, 333, &[("reduction_db", 0.0)]);
        for (a, b) in x.iter().zip(&y) {
            let late = frame_len(FS);
            for i in 0..20_000 - late {
                assert!((a[i] - b[i + late]).abs() < 1e-5, "frame {i}");
            }
            assert!(b[..late].iter().all(|&v| v.abs() < 1e-6));
        }
    }

    #[test]
    fn steady_noise_alone_loses_the_set_reduction() {
        for reduction in [6.0f32, 12.0, 20.0] {
            let x = vec![signal::noise(4, 5 * FS as usize, 0.1)];
            let y = run(&x, 512, &[("reduction_db", reduction)]);
            let tail = 2 * FS as usize..;
            let d = signal::db(signal::rms(&y[0][tail.clone()]) / signal::rms(&x[0][tail]));
            // The floor is where a bin's speech is surely absent; noise's own peaks leave a
            // little more (the speech-presence probability is never quite zero).
            assert!(
                d >= -(reduction as f64) - 0.5 && d < -(reduction as f64) + 2.0,
                "reduction {reduction}: {d} dB"
            );
        }
    }

    /// A tone that comes and goes (400 ms on, 400 ms off, like syllables and pauses) over
    /// noise keeps its level while it sounds; the noise in the pauses loses the reduction.
    #[test]
    fn a_tone_over_noise_keeps_its_level() {
        let n = 6 * FS as usize;
        let on = |i: usize| (i / 19_200) % 2 == 1;
        let noise = signal::noise(9, n, 0.05);
        let tone = signal::sine(1000.0, 48e3, n, 0.3, 0.0);
        let x: Vec<f32> = (0..n)
            .map(|i| noise[i] + if on(i) { tone[i] } else { 0.0 })
            .collect();
        let y = run(&[x], 1024, &[]);
        // Whole "on" stretches after 2 s, taken where the output has them (one frame late),
        // less 50 ms at each edge.
        let (mut sounding, mut pauses) = (Vec::new(), (0.0, 0.0));
        for start in (2 * FS as usize..n - 19_200).step_by(19_200) {
            let part = start + 2400..start + 19_200 - 2400;
            let late = frame_len(FS);
            let out = &y[0][part.start + late..part.end + late];
            if on(start) {
                sounding.extend_from_slice(out);
            } else {
                pauses.0 += noise[part].iter().map(|v| (v * v) as f64).sum::<f64>();
                pauses.1 += out.iter().map(|v| (v * v) as f64).sum::<f64>();
            }
        }
        let d = signal::db(signal::tone_amplitude(&sounding, 1000.0, 48e3) / 0.3);
        assert!(d.abs() < 0.2, "the tone moved {d} dB");
        let p = 10.0 * (pauses.1 / pauses.0).log10();
        assert!(
            (-18.5..-16.0).contains(&p),
            "the pauses' noise moved {p} dB"
        );
    }

    /// White noise alone: after two seconds the estimate is its mean power per bin (the
    /// periodogram's expectation, the variance times the window's energy): the median bin
    /// within 0.5 dB, eight in ten within 2 dB (the estimate's own spread).
    #[test]
    fn the_estimate_is_the_noise_s_mean_power() {
        let x = signal::noise(6, 6 * FS as usize, 0.2);
        let variance = signal::rms(&x).powi(2);
        let mut mem = memory();
        let mut fx = Instance::<Denoise>::new(&mut mem, FS, 1, 512).unwrap();
        fx.run(&mut [x]);
        let n = frame_len(FS);
        let expected = variance * n as f64 / 2.0;
        let noise = fx.effect().noise().unwrap();
        let mut off: Vec<f64> = noise[1..noise.len() - 1]
            .iter()
            .map(|&v| 10.0 * (v as f64 / expected).log10())
            .collect();
        off.sort_by(f64::total_cmp);
        let at = |q: usize| off[off.len() * q / 100];
        assert!(at(50).abs() < 0.5, "the median bin is {} dB off", at(50));
        assert!(
            at(10) > -2.0 && at(90) < 2.0,
            "eight bins in ten within {} … {} dB",
            at(10),
            at(90)
        );
    }

    /// Noise that grows by 20 dB is followed: four seconds after the step (the minimum's
    /// window and a little) the louder noise loses the set reduction as the quieter one did.
    #[test]
    fn a_noise_that_grows_is_followed() {
        let fs = FS as usize;
        let mut x = signal::noise(7, 10 * fs, 0.01);
        for (v, w) in x[4 * fs..].iter_mut().zip(signal::noise(8, 6 * fs, 0.1)) {
            *v = w;
        }
        let y = run(&[x.clone()], 512, &[]);
        let late = frame_len(FS);
        for part in [2 * fs..4 * fs, 8 * fs..10 * fs - late] {
            let out = &y[0][part.start + late..part.end + late];
            let d = signal::db(signal::rms(out) / signal::rms(&x[part.clone()]));
            assert!((-18.5..-15.0).contains(&d), "{part:?}: {d} dB");
        }
    }

    /// Syllables of a tone from the very first frame (no pause longer than 100 ms to learn
    /// from) are not taken for noise: their level holds in the first second from the second
    /// syllable on. (The first, before any pause, is: nothing tells it from a steady noise.)
    #[test]
    fn a_signal_from_the_first_frame_is_not_taken_for_noise() {
        let fs = FS as usize;
        let noise = signal::noise(10, 4 * fs, 0.01);
        let tone = signal::sine(220.0, 48e3, 4 * fs, 0.3, 0.0);
        // Syllables: 200 ms sounding, 100 ms not.
        let on = |i: usize| i % 14_400 < 9_600;
        let x: Vec<f32> = (0..4 * fs)
            .map(|i| noise[i] + if on(i) { tone[i] } else { 0.0 })
            .collect();
        let y = run(&[x], 512, &[]);
        let late = frame_len(FS);
        // The middle 100 ms of each syllable in the first second after the first.
        let mut sounding = Vec::new();
        for start in (14_400..fs).step_by(14_400) {
            let part = &y[0][start + 2400 + late..start + 7200 + late];
            sounding.extend_from_slice(part);
        }
        let d = signal::db(signal::tone_amplitude(&sounding, 220.0, 48e3) / 0.3);
        assert!(d.abs() < 0.1, "the tone moved {d} dB in its first second");
    }

    #[test]
    fn block_size_does_not_matter() {
        let x = vec![signal::noise(2, 60_000, 0.2), signal::noise(3, 60_000, 0.1)];
        assert!(run(&x, 64, &[]) == run(&x, 4096, &[]));
    }
}
