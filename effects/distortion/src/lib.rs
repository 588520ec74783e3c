//! `distortion`: waveshaping. The input times the drive goes through a curve, then the output
//! gain, mixed with the dry signal:
//!
//! - `tanh`: `tanh(u)`, Pedalboard's `Distortion` (at output 0 dB and mix 1, equal to it);
//! - `atan`: `2/π · atan(u)`, a softer knee reaching full scale more slowly;
//! - `cubic`: `1.5u − 0.5u³` within ±1, ±1 beyond (the classic soft clipper, no harmonics past
//!   the 3rd below full scale);
//! - `hard`: `u` clipped to ±1;
//! - `fold`: `sin(π/2 · u)`, which folds back past full scale instead of holding there.
//!
//! All are odd functions (no even harmonics from a symmetric input). There is no oversampling:
//! high drives alias, as Pedalboard's does. Drive, output and mix are smoothed over 20 ms.
#![no_std]

use core::f32::consts::{FRAC_2_PI, FRAC_PI_2};

use sluice_effect_sdk::{
    Arena, Config, Effect, InitError,
    dsp::{Ramp, db_to_gain},
    effect, libm,
};

effect! {
    /// Parameters of `distortion`.
    pub struct DistortionParams for Distortion {
        name: "distortion",
        version: "1.0.0",
        description: "Waveshaping distortion: the input times drive_db through a curve (tanh as Pedalboard's Distortion; atan; cubic soft clip; hard clip; fold = sine foldback), then output_db, mixed with the dry signal. No oversampling.",
        tail_seconds: 0.0,
        max_channels: 32,
    }
    params {
        drive_db: { name: "Drive", unit: "dB", min: 0.0, max: 60.0, default: 25.0 },
        curve: { name: "Curve", choices: ["tanh", "atan", "cubic", "hard", "fold"], default: "tanh" },
        output_db: { name: "Output", unit: "dB", min: -60.0, max: 12.0, default: 0.0 },
        mix: { name: "Mix", unit: "", min: 0.0, max: 1.0, default: 1.0 },
    }
}

/// The curves, in the order of the `curve` parameter's choices.
#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Curve {
    Tanh,
    Atan,
    Cubic,
    Hard,
    Fold,
}

impl Curve {
    fn of(index: usize) -> Curve {
        match index {
            0 => Curve::Tanh,
            1 => Curve::Atan,
            2 => Curve::Cubic,
            3 => Curve::Hard,
            _ => Curve::Fold,
        }
    }

    /// The curve at `u` (the input times the drive).
    #[inline]
    pub fn shape(self, u: f32) -> f32 {
        match self {
            Curve::Tanh => libm::tanhf(u),
            Curve::Atan => FRAC_2_PI * libm::atanf(u),
            Curve::Cubic => {
                if u >= 1.0 {
                    1.0
                } else if u <= -1.0 {
                    -1.0
                } else {
                    1.5 * u - 0.5 * u * u * u
                }
            }
            Curve::Hard => u.clamp(-1.0, 1.0),
            Curve::Fold => libm::sinf(FRAC_PI_2 * u),
        }
    }
}

/// The curve, and the drive, output and mix, each smoothed.
pub struct Distortion {
    curve: Curve,
    drive: Ramp,
    output: Ramp,
    mix: Ramp,
}

impl Distortion {
    fn targets(p: &DistortionParams) -> [f32; 3] {
        [db_to_gain(p.drive_db), db_to_gain(p.output_db), p.mix]
    }

    /// One block with the drive, output and mix settled: `shape(x·g)·o` where fully wet.
    fn settled(&self, channels: &mut [&mut [f32]]) {
        let (g, o, m) = (self.drive.value(), self.output.value(), self.mix.value());
        let curve = self.curve;
        for c in channels.iter_mut() {
            if m == 1.0 {
                for x in c.iter_mut() {
                    *x = curve.shape(*x * g) * o;
                }
            } else {
                for x in c.iter_mut() {
                    *x = (1.0 - m) * *x + m * curve.shape(*x * g) * o;
                }
            }
        }
    }
}

impl<'a> Effect<'a> for Distortion {
    type Params = DistortionParams;

    fn new(
        config: &Config,
        params: &DistortionParams,
        _: &mut Arena<'a>,
    ) -> Result<Self, InitError> {
        let frames = config.ms_to_frames(20.0) as u32;
        let mut fx = Distortion {
            curve: Curve::Tanh,
            drive: Ramp::new(1.0, frames),
            output: Ramp::new(1.0, frames),
            mix: Ramp::new(1.0, frames),
        };
        fx.reset(params);
        Ok(fx)
    }

    fn update(&mut self, params: &DistortionParams) {
        self.curve = Curve::of(params.curve);
        let [g, o, m] = Self::targets(params);
        self.drive.set(g);
        self.output.set(o);
        self.mix.set(m);
    }

    fn process(&mut self, channels: &mut [&mut [f32]]) {
        if !(self.drive.is_active() || self.output.is_active() || self.mix.is_active()) {
            self.settled(channels);
            return;
        }
        let frames = channels.first().map_or(0, |c| c.len());
        let curve = self.curve;
        for i in 0..frames {
            let (g, o, m) = (self.drive.next(), self.output.next(), self.mix.next());
            for c in channels.iter_mut() {
                let x = c[i];
                c[i] = (1.0 - m) * x + m * curve.shape(x * g) * o;
            }
        }
    }

    fn reset(&mut self, params: &DistortionParams) {
        self.curve = Curve::of(params.curve);
        let [g, o, m] = Self::targets(params);
        self.drive.snap(g);
        self.output.snap(o);
        self.mix.snap(m);
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use sluice_effect_sdk::native::{Instance, memory, signal};
    use std::vec;

    const FS: f64 = 48_000.0;

    #[test]
    fn tanh_at_unity_output_and_full_mix_is_tanh_of_the_driven_input() {
        let mut mem = memory();
        let mut fx = Instance::<Distortion>::new(&mut mem, 48_000, 2, 512).unwrap();
        fx.set("drive_db", 12.0);
        fx.reset();
        let input = vec![
            signal::noise(1, 10_000, 0.8),
            signal::sine(440.0, FS, 10_000, 0.5, 0.0),
        ];
        let mut out = input.clone();
        fx.run(&mut out);
        let g = db_to_gain(12.0);
        for (i, o) in input.iter().zip(&out) {
            for (&x, &y) in i.iter().zip(o) {
                assert_eq!(y, libm::tanhf(x * g));
            }
        }
    }

    #[test]
    fn every_curve_is_odd_bounded_and_near_linear_for_small_inputs() {
        for (k, slope) in [
            (0, 1.0f32),
            (1, FRAC_2_PI),
            (2, 1.5),
            (3, 1.0),
            (4, FRAC_PI_2),
        ] {
            let c = Curve::of(k);
            for i in -2000..=2000 {
                let u = i as f32 / 100.0;
                let y = c.shape(u);
                assert_eq!(c.shape(-u), -y, "{c:?} is odd at {u}");
                assert!(y.abs() <= 1.0, "{c:?} at {u}: {y}");
            }
            let u = 1e-3f32;
            assert!(
                (c.shape(u) / u - slope).abs() < 1e-3 * slope,
                "{c:?}: slope at 0"
            );
        }
        // The fold folds: past full scale the output turns back.
        assert!(Curve::Fold.shape(1.5) < Curve::Fold.shape(1.0));
    }

    #[test]
    fn a_sine_gains_odd_harmonics_only() {
        let mut mem = memory();
        for curve in ["tanh", "atan", "cubic", "hard", "fold"] {
            let mut fx = Instance::<Distortion>::new(&mut mem, 48_000, 1, 512).unwrap();
            fx.set("drive_db", 12.0).set_choice("curve", curve);
            fx.reset();
            // 1 kHz at a whole number of cycles in the window.
            let mut out = vec![signal::sine(1_000.0, FS, 48_000, 0.5, 0.0)];
            fx.run(&mut out);
            let h = |n: f64| signal::tone_amplitude(&out[0], 1_000.0 * n, FS);
            let (h1, h2, h3) = (h(1.0), h(2.0), h(3.0));
            assert!(
                signal::db(h3 / h1) > -40.0,
                "{curve}: 3rd harmonic at {}",
                signal::db(h3 / h1)
            );
            assert!(
                signal::db(h2 / h1) < -100.0,
                "{curve}: 2nd harmonic at {}",
                signal::db(h2 / h1)
            );
        }
    }

    #[test]
    fn a_dry_mix_passes_the_input_and_changes_are_smoothed() {
        let mut mem = memory();
        let mut fx = Instance::<Distortion>::new(&mut mem, 48_000, 1, 512).unwrap();
        fx.set("mix", 0.0);
        fx.reset();
        let input = vec![signal::noise(3, 4_000, 0.7)];
        let mut out = input.clone();
        fx.run(&mut out);
        assert!(out == input);
        // Mix to 1 while running: it moves there in a straight line over 20 ms (960 frames).
        fx.set("mix", 1.0);
        let x = signal::sine(100.0, FS, 4_800, 0.5, 0.0);
        let mut out = vec![x.clone()];
        fx.run(&mut out);
        let g = db_to_gain(25.0);
        for (i, (&x, &y)) in x.iter().zip(&out[0]).enumerate() {
            let m = ((i + 1) as f32 / 960.0).min(1.0);
            let want = (1.0 - m) * x + m * libm::tanhf(x * g);
            assert!((y - want).abs() < 1e-5, "frame {i}: {y} against {want}");
        }
    }
}
