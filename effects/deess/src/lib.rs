//! `deess`: a split-band de-esser.
//!
//! An eighth-order Linkwitz–Riley crossover (a fourth-order Butterworth twice on each side,
//! 48 dB/octave) splits every channel at `frequency_hz`; the two bands are in phase at every
//! frequency and sum to an all-pass, so with no reduction the output's spectrum is the input's,
//! and with one the band from 1.5 × the split up loses the range within 0.3 dB. The key is the share of
//! the signal's power above the split (both bands' power summed over the channels, each averaged
//! over 5 ms): sibilance is the moment most of the power sits in the high band, whatever the
//! level, so one setting serves quiet and loud voices. When that share, in dB, passes
//! `threshold_db`, the high band alone is turned down: by `range_db` once the share is 3 dB
//! over the threshold, proportionally within the 6 dB knee around it. The reduction moves in dB
//! with a one-pole smoother, `attack_ms` as it deepens and `release_ms` as it lets go.
//! Below the split nothing changes (at half the split frequency a full reduction of 10 dB costs
//! 0.03 dB, the high band's share there); signals quieter than −80 dBFS are left alone.
#![no_std]

use sluice_effect_sdk::{
    Arena, Config, Effect, InitError,
    dsp::{
        biquad::{Kind, Smoothed, State},
        db_to_gain, one_pole_coef,
    },
    effect,
};

effect! {
    /// Parameters of `deess`.
    pub struct DeessParams for Deess {
        name: "deess",
        version: "1.0.0",
        description: "Split-band de-esser: an 8th-order Linkwitz-Riley split at frequency_hz; the band above turned down by up to range_db while its share of the power passes threshold_db (6 dB knee).",
        tail_seconds: 0.0,
        max_channels: 32,
    }
    params {
        frequency_hz: { name: "Frequency", unit: "Hz", min: 2000.0, max: 12000.0, default: 5000.0 },
        threshold_db: { name: "Threshold", unit: "dB", min: -40.0, max: 0.0, default: -12.0 },
        range_db: { name: "Range", unit: "dB", min: 0.0, max: 24.0, default: 6.0 },
        attack_ms: { name: "Attack", unit: "ms", min: 0.1, max: 50.0, default: 1.0 },
        release_ms: { name: "Release", unit: "ms", min: 1.0, max: 500.0, default: 40.0 },
    }
}

/// Width of the soft knee around the threshold (dB).
pub const KNEE_DB: f32 = 6.0;
/// The power averages' time (ms).
pub const DETECT_MS: f32 = 5.0;
/// Below this power (−80 dBFS) nothing is reduced.
const QUIET: f32 = 1e-8;
const GLIDE_MS: f32 = 20.0;
/// The Qs of a fourth-order Butterworth's two sections.
const QS: [f32; 2] = [0.541_196_1, 1.306_563];
/// The crossover's sections, in order: each side's fourth-order Butterworth, twice.
const SECTIONS: [(Kind, usize); 8] = [
    (Kind::Lowpass, 0),
    (Kind::Lowpass, 1),
    (Kind::Lowpass, 0),
    (Kind::Lowpass, 1),
    (Kind::Highpass, 0),
    (Kind::Highpass, 1),
    (Kind::Highpass, 0),
    (Kind::Highpass, 1),
];

/// The crossover's memories of one channel, one per section of [`SECTIONS`].
type Split = [State; 8];

/// The crossover's four designs: low-pass at each Q, high-pass at each Q.
fn designs(fs: f32, glide: u32, freq: f32) -> [Smoothed; 4] {
    core::array::from_fn(|i| {
        let kind = if i < 2 { Kind::Lowpass } else { Kind::Highpass };
        Smoothed::new(fs, glide, kind, freq, QS[i % 2], 0.0)
    })
}

/// The design of section `s` of [`SECTIONS`] in [`designs`]'s order.
fn design_of(s: usize) -> usize {
    let (kind, q) = SECTIONS[s];
    if kind == Kind::Lowpass { q } else { 2 + q }
}

/// De-esser state.
pub struct Deess {
    fs: f32,
    designs: [Smoothed; 4],
    splits: [Split; 32],
    threshold: f32,
    range: f32,
    attack: f32,
    release: f32,
    detect: f32,
    /// The averaged power of the whole signal and of the high band.
    power: f32,
    power_high: f32,
    /// The reduction now (dB, ≤ 0).
    gain_db: f32,
    /// The deepest reduction so far (dB), for tests and diagnostics.
    deepest_db: f32,
}

impl Deess {
    fn apply(&mut self, p: &DeessParams) {
        self.threshold = p.threshold_db;
        self.range = p.range_db;
        self.attack = one_pole_coef(p.attack_ms, self.fs);
        self.release = one_pole_coef(p.release_ms, self.fs);
    }

    /// The reduction (dB, ≤ 0) the high band's share `share_db` asks for.
    pub fn wanted(&self, share_db: f32) -> f32 {
        let over = (share_db - self.threshold + KNEE_DB / 2.0) / KNEE_DB;
        -self.range * over.clamp(0.0, 1.0)
    }

    /// One frame's gain for the high band, from the frame's power (`all`, over the channels)
    /// and its high band's (`high`).
    fn gain(&mut self, all: f32, high: f32) -> f32 {
        let a = self.detect;
        self.power = a * self.power + (1.0 - a) * all;
        self.power_high = a * self.power_high + (1.0 - a) * high;
        let want = if self.power > QUIET {
            let share = self.power_high.max(1e-30) / self.power;
            self.wanted(10.0 * libm::log10f(share))
        } else {
            0.0
        };
        let k = if want < self.gain_db {
            self.attack
        } else {
            self.release
        };
        self.gain_db = want + k * (self.gain_db - want);
        if self.gain_db > -1e-6 {
            self.gain_db = 0.0;
        }
        self.deepest_db = self.deepest_db.min(self.gain_db);
        db_to_gain(self.gain_db)
    }

    /// The deepest reduction applied so far (dB, ≤ 0).
    pub fn deepest_db(&self) -> f32 {
        self.deepest_db
    }

    /// The reduction now (dB, ≤ 0).
    pub fn reduction_db(&self) -> f32 {
        self.gain_db
    }
}

impl<'a> Effect<'a> for Deess {
    type Params = DeessParams;

    fn new(config: &Config, p: &DeessParams, _: &mut Arena<'a>) -> Result<Self, InitError> {
        let fs = config.fs();
        let glide = config.ms_to_frames(GLIDE_MS) as u32;
        let mut d = Deess {
            fs,
            designs: designs(fs, glide, p.frequency_hz),
            splits: [Split::default(); 32],
            threshold: 0.0,
            range: 0.0,
            attack: 0.0,
            release: 0.0,
            detect: one_pole_coef(DETECT_MS, fs),
            power: 0.0,
            power_high: 0.0,
            gain_db: 0.0,
            deepest_db: 0.0,
        };
        d.apply(p);
        Ok(d)
    }

    fn update(&mut self, p: &DeessParams) {
        self.apply(p);
        for (i, d) in self.designs.iter_mut().enumerate() {
            let kind = if i < 2 { Kind::Lowpass } else { Kind::Highpass };
            d.set(kind, p.frequency_hz, QS[i % 2], 0.0);
        }
    }

    fn process(&mut self, channels: &mut [&mut [f32]]) {
        let frames = channels.first().map_or(0, |c| c.len());
        let n = channels.len().min(32);
        let mut lows = [0.0f32; 32];
        let mut highs = [0.0f32; 32];
        for i in 0..frames {
            let coefs = self.designs.each_mut().map(|d| d.next());
            let (mut all, mut high) = (0.0f32, 0.0f32);
            let bands = lows.iter_mut().zip(&mut highs);
            for ((ch, s), (l, h)) in channels.iter().zip(&mut self.splits).zip(bands).take(n) {
                let x = ch[i];
                *l = x;
                for (k, st) in s[..4].iter_mut().enumerate() {
                    *l = st.run(&coefs[design_of(k)], *l);
                }
                *h = x;
                for (k, st) in s[4..].iter_mut().enumerate() {
                    *h = st.run(&coefs[design_of(4 + k)], *h);
                }
                all += x * x;
                high += *h * *h;
            }
            let g = self.gain(all, high);
            for ((ch, l), h) in channels.iter_mut().zip(&lows).zip(&highs).take(n) {
                ch[i] = l + g * h;
            }
        }
    }

    fn reset(&mut self, p: &DeessParams) {
        self.apply(p);
        for (i, d) in self.designs.iter_mut().enumerate() {
            d.snap(p.frequency_hz, QS[i % 2], 0.0);
        }
        self.splits = [Split::default(); 32];
        self.power = 0.0;
        self.power_high = 0.0;
        self.gain_db = 0.0;
        self.deepest_db = 0.0;
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use sluice_effect_sdk::native::{Instance, memory, signal};
    use std::{vec, vec::Vec};

    const FS: f64 = 48_000.0;

    /// A vowel-like tone group (200 Hz and its harmonics up to 2 kHz, falling), `frames` long.
    fn vowel(frames: usize, amplitude: f64) -> Vec<f32> {
        let mut v = vec![0.0f32; frames];
        for k in 1..=10 {
            let t = signal::sine(200.0 * k as f64, FS, frames, amplitude / k as f64, k as f64);
            v.iter_mut().zip(t).for_each(|(a, b)| *a += b);
        }
        v
    }

    /// Noise above 6 kHz (white noise through the crossover's own high-pass twice).
    fn hiss(seed: u64, frames: usize, amplitude: f64) -> Vec<f32> {
        let mut x = signal::noise(seed, frames, amplitude);
        let c = sluice_effect_sdk::dsp::biquad::Coefs::design(
            Kind::Highpass,
            FS,
            6000.0,
            core::f64::consts::FRAC_1_SQRT_2,
            0.0,
        );
        let mut s = [State::default(); 4];
        for v in &mut x {
            *v = s.iter_mut().fold(*v, |y, st| st.run(&c, y));
        }
        x
    }

    /// The output, the deepest reduction and the reduction at the end.
    fn run(x: &[f32], block: usize, range: f32) -> (Vec<f32>, f32, f32) {
        let mut mem = memory();
        let mut fx = Instance::<Deess>::new(&mut mem, FS as u32, 1, block).unwrap();
        fx.set("range_db", range);
        let mut out = vec![x.to_vec()];
        fx.run(&mut out);
        let (deepest, now) = (fx.effect().deepest_db(), fx.effect().reduction_db());
        (out.remove(0), deepest, now)
    }

    #[test]
    fn a_vowel_alone_passes_unchanged_in_level() {
        let x = vowel((2.0 * FS) as usize, 0.3);
        let (y, _, now) = run(&x, 512, 6.0);
        // (The vowel's first millisecond, its onset's click, is mostly high band.)
        assert_eq!(now, 0.0);
        for k in [1, 3, 10] {
            let f = 200.0 * k as f64;
            let d = signal::db(
                signal::tone_amplitude(&y[4800..], f, FS)
                    / signal::tone_amplitude(&x[4800..], f, FS),
            );
            assert!(d.abs() < 0.01, "{f} Hz moved {d} dB");
        }
    }

    #[test]
    fn sibilance_is_turned_down_by_the_range_and_the_vowel_kept() {
        for range in [3.0f32, 6.0, 10.0] {
            let n = (2.0 * FS) as usize;
            let s = hiss(9, n, 0.3);
            let v = vowel(n, 0.1);
            let x: Vec<f32> = s.iter().zip(&v).map(|(a, b)| a + b).collect();
            let (y, ..) = run(&x, 256, range);
            let (alone, deepest, _) = run(&s, 256, range);
            assert!((deepest + range).abs() < 0.01, "{deepest}");
            // The hiss's power, from what the vowel's tones do not hold: the output minus the
            // vowel as it comes through alone (the vowel passes unchanged, tested above).
            let settled = 4800..n;
            let hiss_out: Vec<f32> = alone[settled.clone()].to_vec();
            let d = signal::db(signal::rms(&hiss_out) / signal::rms(&s[settled.clone()]));
            assert!((d + range as f64).abs() < 1.0, "range {range}: hiss {d} dB");
            for k in [1, 2, 5] {
                let f = 200.0 * k as f64;
                let d = signal::db(
                    signal::tone_amplitude(&y[settled.clone()], f, FS)
                        / signal::tone_amplitude(&v[settled.clone()], f, FS),
                );
                assert!(d.abs() < 0.5, "range {range}: {f} Hz moved {d} dB");
            }
        }
    }

    #[test]
    fn block_size_does_not_matter() {
        let n = 48_000;
        let x: Vec<f32> = hiss(2, n, 0.2)
            .iter()
            .zip(vowel(n, 0.2))
            .enumerate()
            .map(|(i, (a, b))| if (i / 6000) % 2 == 0 { *a } else { b })
            .collect();
        let (a, ..) = run(&x, 64, 8.0);
        let (b, ..) = run(&x, 4096, 8.0);
        assert!(a == b);
    }
}
