//! `gain`: gain and stereo balance, both smoothed.
//!
//! Pan law (a balance law, so that the default leaves audio untouched): at `pan = 0` both
//! channels pass at unity; panning right leaves the right channel at unity and scales the left
//! by `cos(pan · π/2)` (−3 dB at 0.5, silent at 1), and panning left mirrors it. Pan acts on
//! channels 0 and 1 of a layout with two or more channels; mono and any further channels get
//! the gain only.
#![no_std]

use core::f32::consts::FRAC_PI_2;

use sluice_effect_sdk::{
    Arena, Config, Effect, InitError,
    dsp::{Ramp, db_to_gain},
    effect, libm,
};

effect! {
    /// Parameters of `gain`.
    pub struct GainParams for Gain {
        name: "gain",
        version: "1.0.0",
        description: "Gain and stereo balance, smoothed. Pan 0 leaves both channels at unity; towards +1 the left channel falls by cos(pan*pi/2) to silence (mirrored towards -1); it applies to channels 0 and 1 only.",
        tail_seconds: 0.0,
        max_channels: 32,
    }
    params {
        gain_db: { name: "Gain", unit: "dB", min: -96.0, max: 24.0, default: 0.0 },
        pan: { name: "Pan", unit: "", min: -1.0, max: 1.0, default: 0.0 },
        smoothing_ms: { name: "Smoothing", unit: "ms", min: 0.0, max: 1000.0, default: 20.0 },
    }
}

/// Gain and balance: one ramp for channel 0, one for channel 1, one for all others.
pub struct Gain {
    config: Config,
    ramps: [Ramp; 3],
}

/// The balance gains of the left and right channel for `pan`.
pub fn balance(pan: f32) -> (f32, f32) {
    // max(0): cos(pi/2) in f32 is -4e-8, and hard pan should be silence.
    let away = |p: f32| {
        if p > 0.0 {
            libm::cosf(p * FRAC_PI_2).max(0.0)
        } else {
            1.0
        }
    };
    (away(pan), away(-pan))
}

impl Gain {
    fn targets(&self, p: &GainParams) -> [f32; 3] {
        let g = db_to_gain(p.gain_db);
        if self.config.channels < 2 {
            return [g; 3];
        }
        let (l, r) = balance(p.pan);
        [g * l, g * r, g]
    }
}

impl<'a> Effect<'a> for Gain {
    type Params = GainParams;

    fn new(config: &Config, params: &GainParams, _: &mut Arena<'a>) -> Result<Self, InitError> {
        let mut fx = Gain {
            config: *config,
            ramps: [Ramp::new(1.0, 0); 3],
        };
        fx.reset(params);
        Ok(fx)
    }

    fn update(&mut self, params: &GainParams) {
        let frames = self.config.ms_to_frames(params.smoothing_ms) as u32;
        let targets = self.targets(params);
        for (r, t) in self.ramps.iter_mut().zip(targets) {
            r.set_frames(frames);
            r.set(t);
        }
    }

    fn process(&mut self, channels: &mut [&mut [f32]]) {
        let frames = channels.first().map_or(0, |c| c.len());
        let [r0, r1, rest] = &mut self.ramps;
        // Settled (the usual case): one gain per channel over the block, a loop the compiler
        // vectorises (wasm SIMD too). The same numbers as the frame-by-frame path below.
        if !(r0.is_active() || r1.is_active() || rest.is_active()) {
            let gains = [r0.value(), r1.value()];
            for (k, c) in channels.iter_mut().enumerate() {
                let g = gains.get(k).copied().unwrap_or(rest.value());
                for x in c.iter_mut() {
                    *x *= g;
                }
            }
            return;
        }
        let (first, others) = channels.split_at_mut(channels.len().min(2));
        for i in 0..frames {
            let (g0, g1, g) = (r0.next(), r1.next(), rest.next());
            if let Some(c) = first.first_mut() {
                c[i] *= g0;
            }
            if let Some(c) = first.get_mut(1) {
                c[i] *= g1;
            }
            for c in others.iter_mut() {
                c[i] *= g;
            }
        }
    }

    fn reset(&mut self, params: &GainParams) {
        let targets = self.targets(params);
        let frames = self.config.ms_to_frames(params.smoothing_ms) as u32;
        for (r, t) in self.ramps.iter_mut().zip(targets) {
            r.set_frames(frames);
            r.snap(t);
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use sluice_effect_sdk::native::{Instance, memory, signal};
    use std::{vec, vec::Vec};

    const FS: f64 = 48_000.0;

    fn stereo(frames: usize) -> Vec<Vec<f32>> {
        vec![
            signal::sine(440.0, FS, frames, 0.5, 0.0),
            signal::noise(7, frames, 0.5),
        ]
    }

    #[test]
    fn defaults_leave_audio_untouched() {
        let mut mem = memory();
        let mut fx = Instance::<Gain>::new(&mut mem, 48_000, 2, 512).unwrap();
        let input = stereo(10_000);
        let mut out = input.clone();
        fx.run(&mut out);
        assert!(out == input, "output differs from input");
    }

    #[test]
    fn gain_and_balance_follow_the_pan_law() {
        let mut mem = memory();
        for (pan, l_db, r_db) in [
            (0.0, -6.0, -6.0),
            (0.5, -6.0 - 3.0103, -6.0),
            (-0.5, -6.0, -6.0 - 3.0103),
            (1.0, -400.0, -6.0),
        ] {
            let mut fx = Instance::<Gain>::new(&mut mem, 48_000, 2, 512).unwrap();
            fx.set("gain_db", -6.0).set("pan", pan);
            fx.reset(); // start at the targets
            let tone = signal::sine(1_000.0, FS, 48_000, 0.5, 0.0);
            let mut out = vec![tone.clone(), tone.clone()];
            fx.run(&mut out);
            let l = signal::db(signal::tone_amplitude(&out[0], 1_000.0, FS) / 0.5);
            let r = signal::db(signal::tone_amplitude(&out[1], 1_000.0, FS) / 0.5);
            assert!(
                (l - l_db).abs() < 0.01 || (l_db < -300.0 && l < -120.0),
                "pan {pan}: left {l}"
            );
            assert!((r - r_db).abs() < 0.01, "pan {pan}: right {r}");
        }
    }

    #[test]
    fn mono_and_extra_channels_ignore_pan() {
        let mut mem = memory();
        let mut fx = Instance::<Gain>::new(&mut mem, 48_000, 1, 256).unwrap();
        fx.set("pan", 1.0).set("gain_db", 6.0).reset();
        let mut out = vec![vec![0.25f32; 1000]];
        fx.run(&mut out);
        assert!(
            out[0]
                .iter()
                .all(|&x| (x - 0.25 * db_to_gain(6.0)).abs() < 1e-7)
        );
        let mut fx = Instance::<Gain>::new(&mut mem, 48_000, 4, 256).unwrap();
        fx.set("pan", -1.0).reset();
        let mut out = vec![vec![0.5f32; 100]; 4];
        fx.run(&mut out);
        assert_eq!(
            (out[0][50], out[1][50], out[2][50], out[3][50]),
            (0.5, 0.0, 0.5, 0.5)
        );
    }

    #[test]
    fn changes_are_smoothed_over_the_smoothing_time() {
        let mut mem = memory();
        let mut fx = Instance::<Gain>::new(&mut mem, 48_000, 2, 64).unwrap();
        fx.set("smoothing_ms", 10.0);
        let mut out = vec![vec![1.0f32; 2_000]; 2];
        fx.run_blocks(&mut out[..], &[50]);
        fx.set("gain_db", -20.0);
        let mut out = vec![vec![1.0f32; 2_000]; 2];
        fx.run(&mut out);
        // 10 ms = 480 frames from 1 to 0.1, linearly, then flat.
        let g = db_to_gain(-20.0);
        for (i, &y) in out[0].iter().enumerate() {
            let expect = if i >= 479 {
                g
            } else {
                1.0 + (g - 1.0) * (i + 1) as f32 / 480.0
            };
            assert!((y - expect).abs() < 1e-5, "frame {i}: {y} vs {expect}");
        }
        assert!(out[0] == out[1], "channels differ");
    }

    #[test]
    fn block_size_does_not_change_the_result() {
        let mut mem = memory();
        let input = stereo(20_000);
        let mut results = vec![];
        for blocks in [&[512usize][..], &[1, 7, 333, 64]] {
            let mut fx = Instance::<Gain>::new(&mut mem, 48_000, 2, 512).unwrap();
            let mut out = input.clone();
            fx.set("gain_db", -3.0).set("pan", 0.3);
            fx.run_blocks(&mut out, blocks);
            results.push(out);
        }
        assert!(
            results[0] == results[1],
            "the result depends on the block size"
        );
    }
}
