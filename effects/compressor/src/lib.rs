//! `compressor`: a feed-forward compressor with stereo-linked peak detection.
//!
//! Per frame: the detector level is the largest magnitude over all channels, in dB; the static
//! curve (soft knee of width `knee_db` centred on the threshold, after Giannoulis, Massberg &
//! Reiss, "Digital Dynamic Range Compressor Design", JAES 2012) gives the gain reduction it
//! asks for; that reduction is smoothed in dB by a one-pole filter with the attack time when
//! the reduction grows and the release time when it shrinks (each time is when 63 % of a step
//! is reached); makeup gain (ramped over 20 ms) is added and one gain is applied to every
//! channel.
#![no_std]

use sluice_effect_sdk::{
    Arena, Config, Effect, InitError,
    dsp::{Ramp, fast_exp2, fast_log2, max, one_pole_coef},
    effect,
};

effect! {
    /// Parameters of `compressor`.
    pub struct CompressorParams for Compressor {
        name: "compressor",
        version: "1.0.0",
        description: "Feed-forward compressor: stereo-linked peak detection, soft knee, attack/release smoothing of the gain reduction in dB, makeup gain.",
        tail_seconds: 0.0,
        max_channels: 32,
    }
    params {
        threshold_db: { name: "Threshold", unit: "dB", min: -60.0, max: 0.0, default: -18.0 },
        ratio: { name: "Ratio", unit: ":1", min: 1.0, max: 20.0, default: 4.0 },
        attack_ms: { name: "Attack", unit: "ms", min: 0.1, max: 500.0, default: 10.0 },
        release_ms: { name: "Release", unit: "ms", min: 1.0, max: 5000.0, default: 100.0 },
        knee_db: { name: "Knee", unit: "dB", min: 0.0, max: 24.0, default: 6.0 },
        makeup_db: { name: "Makeup", unit: "dB", min: 0.0, max: 24.0, default: 0.0 },
    }
}

/// The static curve: output level in dB for input level `x` dB.
pub fn static_curve(x: f32, threshold: f32, ratio: f32, knee: f32) -> f32 {
    let over = x - threshold;
    if knee > 0.0 && 2.0 * over.abs() <= knee {
        let k = over + knee / 2.0;
        x + (1.0 / ratio - 1.0) * k * k / (2.0 * knee)
    } else if over > 0.0 {
        threshold + over / ratio
    } else {
        x
    }
}

const MAKEUP_RAMP_MS: f32 = 20.0;

/// Compressor state: the smoothed gain reduction in dB.
pub struct Compressor<'a> {
    fs: f32,
    threshold: f32,
    ratio: f32,
    knee: f32,
    attack: f32,
    release: f32,
    makeup: Ramp,
    reduction_db: f32,
    /// One value per frame of a block: the detector level, then the gain.
    scratch: &'a mut [f32],
}

impl Compressor<'_> {
    fn apply(&mut self, p: &CompressorParams) {
        self.threshold = p.threshold_db;
        self.ratio = p.ratio;
        self.knee = p.knee_db;
        self.attack = one_pole_coef(p.attack_ms, self.fs);
        self.release = one_pole_coef(p.release_ms, self.fs);
    }
}

impl<'a> Effect<'a> for Compressor<'a> {
    type Params = CompressorParams;

    fn new(
        config: &Config,
        p: &CompressorParams,
        arena: &mut Arena<'a>,
    ) -> Result<Self, InitError> {
        let mut c = Compressor {
            fs: config.fs(),
            threshold: 0.0,
            ratio: 1.0,
            knee: 0.0,
            attack: 0.0,
            release: 0.0,
            makeup: Ramp::new(p.makeup_db, config.ms_to_frames(MAKEUP_RAMP_MS) as u32),
            reduction_db: 0.0,
            scratch: arena.take(config.max_frames)?,
        };
        c.apply(p);
        Ok(c)
    }

    fn update(&mut self, p: &CompressorParams) {
        self.apply(p);
        self.makeup.set(p.makeup_db);
    }

    // In three passes over the block (the level of each frame, its gain, the gain applied to
    // each channel), so that each loop is short and keeps its state in registers; wasm
    // compilers do much worse with one loop over frames doing everything (effects/README.md).
    fn process(&mut self, channels: &mut [&mut [f32]]) {
        let frames = channels.first().map_or(0, |c| c.len());
        let scratch = core::mem::take(&mut self.scratch);
        let gains = &mut scratch[..frames];
        gains.fill(0.0);
        for c in channels.iter() {
            for (g, s) in gains.iter_mut().zip(c.iter()) {
                *g = max(s.abs(), *g);
            }
        }
        // In passes, so that the logarithms and the powers vectorise (the SDK's fast ones,
        // within 1.2e-5 dB): levels in dB, then the smoothing (a recurrence, frame by frame),
        // then the gains.
        const DB_PER_OCTAVE: f32 = 6.020_6; // 20·log10(2)
        for g in gains.iter_mut() {
            *g = DB_PER_OCTAVE * fast_log2(max(*g, 1e-12));
        }
        let (threshold, ratio, knee) = (self.threshold, self.ratio, self.knee);
        let (attack, release, mut reduction) = (self.attack, self.release, self.reduction_db);
        for g in gains.iter_mut() {
            let x = *g;
            let target = static_curve(x, threshold, ratio, knee) - x;
            let a = if target < reduction { attack } else { release };
            reduction = a * reduction + (1.0 - a) * target;
            *g = reduction + self.makeup.next();
        }
        self.reduction_db = reduction;
        for g in gains.iter_mut() {
            *g = fast_exp2(*g * (1.0 / DB_PER_OCTAVE));
        }
        for c in channels.iter_mut() {
            for (s, g) in c.iter_mut().zip(gains.iter()) {
                *s *= g;
            }
        }
        self.scratch = scratch;
    }

    fn reset(&mut self, p: &CompressorParams) {
        self.apply(p);
        self.makeup.snap(p.makeup_db);
        self.reduction_db = 0.0;
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use sluice_effect_sdk::native::{Instance, memory, signal};
    use std::{vec, vec::Vec};

    /// The curve as the paper writes it, in f64, independent of the code above.
    fn curve(x: f64, t: f64, r: f64, w: f64) -> f64 {
        if 2.0 * (x - t) < -w {
            x
        } else if 2.0 * (x - t).abs() <= w && w > 0.0 {
            x + (1.0 / r - 1.0) * (x - t + w / 2.0).powi(2) / (2.0 * w)
        } else {
            t + (x - t) / r
        }
    }

    /// A square wave of `db` dBFS (constant magnitude, so the detector sees a steady level).
    fn square(db: f64, frames: usize) -> Vec<f32> {
        let a = 10f64.powf(db / 20.0) as f32;
        (0..frames)
            .map(|n| if (n / 24) % 2 == 0 { a } else { -a })
            .collect()
    }

    #[test]
    fn static_curve_with_soft_knee_and_makeup() {
        let mut mem = memory();
        let mut fx = Instance::<Compressor>::new(&mut mem, 48_000, 2, 1024).unwrap();
        let (t, r, w, makeup) = (-20.0, 4.0, 10.0, 3.0);
        fx.set("threshold_db", t)
            .set("ratio", r)
            .set("knee_db", w)
            .set("makeup_db", makeup);
        fx.set("attack_ms", 1.0).set("release_ms", 10.0);
        for level in [-40.0, -30.0, -25.0, -22.0, -20.0, -17.0, -15.0, -10.0, 0.0] {
            fx.reset();
            let input = square(level, 24_000);
            let mut out = vec![input.clone(), input];
            fx.run(&mut out);
            let got = signal::db(signal::peak(&out[0][20_000..]) as f64);
            let expect = curve(level, t as f64, r as f64, w as f64) + makeup as f64;
            assert!(
                (got - expect).abs() < 0.01,
                "{level} dB in: {got} out, expected {expect}"
            );
            assert!(out[0] == out[1], "channels differ");
        }
    }

    #[test]
    fn ratio_one_or_quiet_input_is_untouched() {
        let mut mem = memory();
        let mut fx = Instance::<Compressor>::new(&mut mem, 48_000, 1, 512).unwrap();
        fx.set("threshold_db", -10.0).set("knee_db", 6.0);
        let input = signal::sine(200.0, 48_000.0, 20_000, 10f64.powf(-14.0 / 20.0), 0.0);
        let mut out = vec![input.clone()];
        fx.run(&mut out);
        assert!(out[0] == input, "13 dB below the knee top: unity");
        fx.set("ratio", 1.0).set("threshold_db", -60.0).reset();
        let loud = signal::noise(4, 20_000, 1.0);
        let mut out = vec![loud.clone()];
        fx.run(&mut out);
        for (a, b) in out[0].iter().zip(&loud) {
            assert!((a - b).abs() < 1e-6);
        }
    }

    #[test]
    fn attack_and_release_times() {
        let mut mem = memory();
        let fs = 48_000;
        let mut fx = Instance::<Compressor>::new(&mut mem, fs, 1, 4096).unwrap();
        fx.set("threshold_db", -20.0)
            .set("ratio", 4.0)
            .set("knee_db", 0.0);
        fx.set("attack_ms", 10.0).set("release_ms", 100.0);
        // -40 dB (no reduction), then 0 dB for 0.5 s (15 dB of reduction), then -40 dB again.
        let mut x = square(-40.0, 4_800);
        x.extend(square(0.0, 24_000));
        x.extend(square(-40.0, 48_000));
        let input = x.clone();
        let mut out = vec![x];
        fx.run(&mut out);
        let gr = |n: usize| signal::db((out[0][n] / input[n]) as f64);
        assert!(gr(4_799).abs() < 1e-6);
        // 10 ms after the step (480 frames) 63 % of the 15 dB: 15 (1 - 1/e).
        let e = std::f64::consts::E;
        assert!(
            (gr(4_800 + 479) + 15.0 * (1.0 - 1.0 / e)).abs() < 0.01,
            "{}",
            gr(4_800 + 479)
        );
        assert!((gr(28_799) + 15.0).abs() < 0.01);
        // 100 ms after the level falls, 15/e dB of reduction are left.
        assert!(
            (gr(28_800 + 4_799) + 15.0 / e).abs() < 0.01,
            "{}",
            gr(28_800 + 4_799)
        );
    }

    #[test]
    fn detection_is_linked_across_channels() {
        let mut mem = memory();
        let mut fx = Instance::<Compressor>::new(&mut mem, 48_000, 2, 512).unwrap();
        fx.set("threshold_db", -30.0).set("ratio", 10.0);
        let loud = signal::sine(100.0, 48_000.0, 48_000, 0.9, 0.0);
        let quiet = signal::sine(1_000.0, 48_000.0, 48_000, 0.01, 0.0);
        let mut out = vec![loud, quiet.clone()];
        fx.run(&mut out);
        // The quiet right channel is turned down by the left channel's reduction.
        let g = signal::tone_amplitude(&out[1][24_000..], 1_000.0, 48_000.0) / 0.01;
        assert!(signal::db(g) < -15.0, "{}", signal::db(g));
    }

    #[test]
    fn block_size_does_not_change_the_result() {
        let mut mem = memory();
        let input = vec![
            signal::noise(9, 30_000, 0.9),
            signal::sweep(50.0, 5_000.0, 48_000.0, 30_000, 0.7),
        ];
        let mut results = vec![];
        for blocks in [&[512usize][..], &[1, 2, 511, 100]] {
            let mut fx = Instance::<Compressor>::new(&mut mem, 48_000, 2, 512).unwrap();
            fx.set("makeup_db", 6.0);
            let mut out = input.clone();
            fx.run_blocks(&mut out, blocks);
            results.push(out);
        }
        assert!(
            results[0] == results[1],
            "the result depends on the block size"
        );
    }
}
