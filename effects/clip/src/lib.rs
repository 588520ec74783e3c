//! `clip`: clipping at a threshold. `hard` holds every sample within ±threshold (Pedalboard's
//! `Clipping`); `soft` bends towards it, `t·tanh(x/t)`: unity gain for small samples, within
//! 1 % of linear up to a tenth of the threshold, never past the threshold. Neither
//! oversamples, so a clipped high tone aliases (as Pedalboard's does).
#![no_std]

use sluice_effect_sdk::{Arena, Config, Effect, InitError, dsp::db_to_gain, effect, libm};

effect! {
    /// Parameters of `clip`.
    pub struct ClipParams for Clip {
        name: "clip",
        version: "1.0.0",
        description: "Clipping at threshold_db: hard holds every sample within the threshold (as Pedalboard's Clipping); soft is t*tanh(x/t), unity for small samples and never past the threshold.",
        tail_seconds: 0.0,
        max_channels: 32,
    }
    params {
        threshold_db: { name: "Threshold", unit: "dBFS", min: -60.0, max: 0.0, default: -6.0 },
        mode: { name: "Mode", choices: ["hard", "soft"], default: "hard" },
    }
}

/// The threshold as a level, and the mode.
pub struct Clip {
    threshold: f32,
    soft: bool,
}

impl Clip {
    fn set(&mut self, p: &ClipParams) {
        self.threshold = db_to_gain(p.threshold_db);
        self.soft = p.mode == 1;
    }
}

impl<'a> Effect<'a> for Clip {
    type Params = ClipParams;

    fn new(_: &Config, params: &ClipParams, _: &mut Arena<'a>) -> Result<Self, InitError> {
        let mut fx = Clip {
            threshold: 1.0,
            soft: false,
        };
        fx.set(params);
        Ok(fx)
    }

    fn update(&mut self, params: &ClipParams) {
        self.set(params);
    }

    fn process(&mut self, channels: &mut [&mut [f32]]) {
        let t = self.threshold;
        if self.soft {
            let inv = 1.0 / t;
            for c in channels.iter_mut() {
                for x in c.iter_mut() {
                    *x = t * libm::tanhf(*x * inv);
                }
            }
        } else {
            for c in channels.iter_mut() {
                for x in c.iter_mut() {
                    // (Written so that the compiler vectorises it; a NaN stays NaN.)
                    *x = if *x > t {
                        t
                    } else if *x < -t {
                        -t
                    } else {
                        *x
                    };
                }
            }
        }
    }

    fn reset(&mut self, params: &ClipParams) {
        self.set(params);
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use sluice_effect_sdk::native::{Instance, memory, signal};
    use std::{vec, vec::Vec};

    fn noise() -> Vec<Vec<f32>> {
        vec![signal::noise(4, 20_000, 1.0), signal::noise(5, 20_000, 0.3)]
    }

    #[test]
    fn hard_clipping_holds_every_sample_within_the_threshold() {
        let mut mem = memory();
        let mut fx = Instance::<Clip>::new(&mut mem, 48_000, 2, 512).unwrap();
        fx.set("threshold_db", -6.0);
        let input = noise();
        let mut out = input.clone();
        fx.run(&mut out);
        let t = db_to_gain(-6.0);
        for (i, o) in input.iter().zip(&out) {
            for (&x, &y) in i.iter().zip(o) {
                assert_eq!(y, x.clamp(-t, t));
            }
        }
        assert!(out[0].contains(&t) && out[0].contains(&-t));
    }

    #[test]
    fn soft_clipping_is_linear_for_small_samples_and_bounded() {
        let mut mem = memory();
        let mut fx = Instance::<Clip>::new(&mut mem, 48_000, 2, 512).unwrap();
        fx.set("threshold_db", -12.0).set_choice("mode", "soft");
        let t = db_to_gain(-12.0);
        let mut out = noise();
        let input = out.clone();
        fx.run(&mut out);
        for (i, o) in input.iter().zip(&out) {
            for (&x, &y) in i.iter().zip(o) {
                assert!(y.abs() <= t && y.signum() == x.signum() || x == 0.0);
                if x.abs() < 0.1 * t {
                    assert!((y - x).abs() <= 0.01 * x.abs(), "{x} -> {y}");
                }
            }
        }
        // A full-scale sine comes out with its peaks held near the threshold.
        let sine = signal::sine(100.0, 48_000.0, 4_800, 1.0, 0.0);
        let mut sine = vec![sine.clone(), sine];
        fx.reset();
        fx.run(&mut sine);
        let peak = sine[0].iter().fold(0.0f32, |m, &y| m.max(y.abs()));
        assert!(peak < t && peak > 0.99 * t, "peak {peak} against {t}");
    }
}
