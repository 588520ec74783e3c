//! Deterministic test and benchmark signals: tones, sweeps, seeded noise and a programme-like
//! mix. Used by tests and benches across the workspace; cheap enough to generate minutes of.

use std::f64::consts::TAU;

/// A small, fast, seeded PRNG (xorshift64*), so generated noise is the same on every machine.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [-1, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }
}

/// A sine of `freq` Hz at `amp` (linear), `frames` long.
pub fn sine(sample_rate: u32, freq: f64, amp: f64, frames: usize) -> Vec<f32> {
    let w = TAU * freq / f64::from(sample_rate);
    (0..frames)
        .map(|n| (amp * (w * n as f64).sin()) as f32)
        .collect()
}

/// A logarithmic sweep from `f0` to `f1` Hz.
pub fn log_sweep(sample_rate: u32, f0: f64, f1: f64, amp: f64, frames: usize) -> Vec<f32> {
    let t_total = frames as f64 / f64::from(sample_rate);
    let k = (f1 / f0).ln();
    (0..frames)
        .map(|n| {
            let t = n as f64 / f64::from(sample_rate);
            let phase = TAU * f0 * t_total / k * ((t / t_total * k).exp() - 1.0);
            (amp * phase.sin()) as f32
        })
        .collect()
}

/// White noise, uniform, peak `amp`.
pub fn noise(seed: u64, amp: f64, frames: usize) -> Vec<f32> {
    let mut r = Rng::new(seed);
    (0..frames).map(|_| (amp * r.uniform()) as f32).collect()
}

/// A programme-like multichannel signal: a few harmonic "notes" changing every half second,
/// a decaying noise "drum" on each beat at 120 BPM, a slow level envelope, and per-channel
/// differences so channels are correlated but not identical. Peak stays below 0.9.
pub fn programme(sample_rate: u32, channels: usize, frames: usize, seed: u64) -> Vec<Vec<f32>> {
    let sr = f64::from(sample_rate);
    let mut rng = Rng::new(seed);
    let notes = [220.0, 261.63, 329.63, 392.0, 293.66, 246.94, 349.23, 440.0];
    let beat = (sr * 0.5) as usize;
    let mut drum = vec![0f64; frames];
    for (n, d) in drum.iter_mut().enumerate() {
        let since = n % beat;
        let env = (-(since as f64) / (0.04 * sr)).exp();
        *d = env * rng.uniform();
    }
    (0..channels)
        .map(|c| {
            let detune = 1.0 + 0.002 * c as f64;
            let pan = 0.8 + 0.2 * ((c as f64) * 1.3).sin().abs();
            (0..frames)
                .map(|n| {
                    let t = n as f64 / sr;
                    let f = notes[(n / beat) % notes.len()] * detune;
                    let tone = (TAU * f * t).sin() * 0.3
                        + (TAU * 2.0 * f * t).sin() * 0.12
                        + (TAU * 3.0 * f * t).sin() * 0.06;
                    let level = 0.75 + 0.25 * (TAU * 0.1 * t).sin();
                    (pan * level * (tone + 0.35 * drum[n])) as f32
                })
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_bounded() {
        assert_eq!(noise(7, 0.5, 100), noise(7, 0.5, 100));
        assert_ne!(noise(7, 0.5, 100), noise(8, 0.5, 100));
        let p = programme(48_000, 2, 48_000, 1);
        assert_eq!(p.len(), 2);
        let peak = p.iter().flatten().fold(0f32, |m, x| m.max(x.abs()));
        assert!(peak > 0.3 && peak < 0.9, "peak {peak}");
        assert_ne!(p[0], p[1]);
    }

    #[test]
    fn sine_has_its_frequency() {
        // 1 kHz at 48 kHz: 1000 cycles → 2000 zero crossings in one second.
        let s = sine(48_000, 1000.0, 0.5, 48_000);
        let zc = s
            .windows(2)
            .filter(|w| (w[0] < 0.0) != (w[1] < 0.0))
            .count();
        assert!((1998..=2001).contains(&zc), "{zc}");
    }
}
