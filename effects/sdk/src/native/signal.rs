//! Test signals and measurements for effect tests (natively only). Signals are computed in
//! `f64` and rounded once to `f32`.

use std::{f64::consts::PI, vec::Vec};

/// A sine of `amplitude` at `freq` Hz, `phase` radians at frame 0.
pub fn sine(freq: f64, sample_rate: f64, frames: usize, amplitude: f64, phase: f64) -> Vec<f32> {
    (0..frames)
        .map(|n| (amplitude * (2.0 * PI * freq * n as f64 / sample_rate + phase).sin()) as f32)
        .collect()
}

/// A logarithmic sweep from `f0` to `f1` Hz over `frames`.
pub fn sweep(f0: f64, f1: f64, sample_rate: f64, frames: usize, amplitude: f64) -> Vec<f32> {
    let t = frames as f64 / sample_rate;
    let k = (f1 / f0).ln();
    (0..frames)
        .map(|n| {
            let x = n as f64 / sample_rate;
            let phase = 2.0 * PI * f0 * t / k * ((x / t * k).exp() - 1.0);
            (amplitude * phase.sin()) as f32
        })
        .collect()
}

/// Uniform white noise in `-amplitude..amplitude` from a fixed seed (xorshift64*).
pub fn noise(seed: u64, frames: usize, amplitude: f64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..frames)
        .map(|_| {
            s ^= s >> 12;
            s ^= s << 25;
            s ^= s >> 27;
            let u = (s.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64;
            (amplitude * (2.0 * u - 1.0)) as f32
        })
        .collect()
}

/// Silence with one sample of `amplitude` at `at`.
pub fn impulse(frames: usize, at: usize, amplitude: f32) -> Vec<f32> {
    let mut v = std::vec![0.0; frames];
    v[at] = amplitude;
    v
}

/// Root mean square.
pub fn rms(x: &[f32]) -> f64 {
    if x.is_empty() {
        return 0.0;
    }
    (x.iter().map(|&v| v as f64 * v as f64).sum::<f64>() / x.len() as f64).sqrt()
}

/// Largest magnitude.
pub fn peak(x: &[f32]) -> f64 {
    x.iter().fold(0.0f64, |m, &v| m.max((v as f64).abs()))
}

/// A level in dB (of an amplitude ratio); −400 for zero.
pub fn db(ratio: f64) -> f64 {
    if ratio <= 0.0 {
        -400.0
    } else {
        20.0 * ratio.log10()
    }
}

/// The amplitude of the component at `freq` Hz (a single-bin DFT over all of `x`; exact for a
/// whole number of cycles, close for many).
pub fn tone_amplitude(x: &[f32], freq: f64, sample_rate: f64) -> f64 {
    let (mut re, mut im) = (0.0, 0.0);
    for (n, &v) in x.iter().enumerate() {
        let w = 2.0 * PI * freq * n as f64 / sample_rate;
        re += v as f64 * w.cos();
        im += v as f64 * w.sin();
    }
    2.0 * (re * re + im * im).sqrt() / x.len() as f64
}

/// True peak by 4× oversampling (a 4 × 48-tap Kaiser-windowed sinc interpolator, in the spirit
/// of ITU-R BS.1770-4 Annex 2): the largest magnitude of the samples and the three points
/// interpolated between each pair.
pub fn true_peak(x: &[f32]) -> f64 {
    const PHASES: usize = 4;
    const TAPS: usize = 48;
    let bessel_i0 = |x: f64| {
        let (mut sum, mut term, mut k) = (1.0, 1.0, 1.0);
        while term > 1e-12 * sum {
            term *= (x / (2.0 * k)) * (x / (2.0 * k));
            sum += term;
            k += 1.0;
        }
        sum
    };
    let beta = 8.0;
    let half = TAPS as f64 / 2.0;
    let mut table = [[0.0f64; TAPS]; PHASES];
    for (p, row) in table.iter_mut().enumerate() {
        for (k, c) in row.iter_mut().enumerate() {
            // The tap for input sample n - k + TAPS/2 when interpolating at n + p/4.
            let t = k as f64 - half + 1.0 + p as f64 / PHASES as f64;
            let sinc = if t.abs() < 1e-12 {
                1.0
            } else {
                (PI * t).sin() / (PI * t)
            };
            let r = t / half;
            let w = if r.abs() >= 1.0 {
                0.0
            } else {
                bessel_i0(beta * (1.0 - r * r).sqrt()) / bessel_i0(beta)
            };
            *c = sinc * w;
        }
    }
    let get = |i: isize| {
        if i < 0 || i as usize >= x.len() {
            0.0
        } else {
            x[i as usize] as f64
        }
    };
    let mut m = peak(x);
    for n in 0..x.len() as isize {
        for row in table.iter().skip(1) {
            let mut acc = 0.0;
            for (k, c) in row.iter().enumerate() {
                acc += c * get(n + half as isize - 1 - k as isize);
            }
            m = m.max(acc.abs());
        }
    }
    m
}
