//! `highpass`: a 12 dB/octave Butterworth high-pass (RBJ cookbook HPF, Q = 1/√2), for rumble
//! and handling noise; cut-off changes glide over 20 ms.
#![no_std]

use core::f32::consts::FRAC_1_SQRT_2;

use sluice_effect_sdk::{
    Arena, Config, Effect, InitError,
    dsp::biquad::{Band, Kind},
    effect,
};

effect! {
    /// Parameters of `highpass`.
    pub struct HighpassParams for Highpass {
        name: "highpass",
        version: "1.0.0",
        description: "12 dB/octave Butterworth high-pass filter (RBJ cookbook, Q 0.7071); cut-off changes glide over 20 ms.",
        tail_seconds: 0.1,
        max_channels: 32,
    }
    params {
        cutoff_hz: { name: "Cutoff", unit: "Hz", min: 20.0, max: 20000.0, default: 80.0 },
    }
}

/// Q of a second-order Butterworth filter.
pub const Q: f32 = FRAC_1_SQRT_2;
const GLIDE_MS: f32 = 20.0;

/// The filter.
pub struct Highpass {
    band: Band,
}

impl<'a> Effect<'a> for Highpass {
    type Params = HighpassParams;

    fn new(config: &Config, p: &HighpassParams, _: &mut Arena<'a>) -> Result<Self, InitError> {
        let frames = config.ms_to_frames(GLIDE_MS) as u32;
        Ok(Highpass {
            band: Band::new(config.fs(), frames, Kind::Highpass, p.cutoff_hz, Q, 0.0),
        })
    }

    fn update(&mut self, p: &HighpassParams) {
        self.band.set(Kind::Highpass, p.cutoff_hz, Q, 0.0);
    }

    fn process(&mut self, channels: &mut [&mut [f32]]) {
        self.band.process(channels);
    }

    fn reset(&mut self, p: &HighpassParams) {
        self.band.reset(Kind::Highpass, p.cutoff_hz, Q, 0.0);
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use sluice_effect_sdk::native::{Instance, memory, signal};
    use std::{vec, vec::Vec};

    /// Measured gain in dB of a sine at `f` through the filter.
    fn response(fx: &mut Instance<'_, Highpass>, fs: f64, f: f64) -> f64 {
        fx.reset();
        let n = fs as usize;
        let mut out = vec![signal::sine(f, fs, n, 0.5, 0.0)];
        fx.run(&mut out);
        signal::db(signal::tone_amplitude(&out[0][n / 2..], f, fs) / 0.5)
    }

    #[test]
    fn butterworth_response() {
        let mut mem = memory();
        for fs in [44_100u32, 48_000, 96_000] {
            let mut fx = Instance::<Highpass>::new(&mut mem, fs, 1, 1024).unwrap();
            let fsf = fs as f64;
            let fc = 80.0;
            for f in [20.0, 40.0, 80.0, 160.0, 1_000.0, 10_000.0] {
                // |H| of s²/(s² + √2 s + 1) at the prewarped frequency: 1/√(1 + Ω⁻⁴).
                let w = (std::f64::consts::PI * f / fsf).tan()
                    / (std::f64::consts::PI * fc / fsf).tan();
                let expect = -10.0 * (1.0 + w.powi(-4)).log10();
                let got = response(&mut fx, fsf, f);
                assert!(
                    (got - expect).abs() < 0.05,
                    "fs {fs} f {f}: {got} vs {expect}"
                );
            }
            assert!((response(&mut fx, fsf, fc) + 3.0103).abs() < 0.05);
        }
    }

    #[test]
    fn removes_dc_and_rumble_keeps_voice() {
        let mut mem = memory();
        let mut fx = Instance::<Highpass>::new(&mut mem, 48_000, 2, 512).unwrap();
        let n = 96_000;
        let voice = signal::sine(300.0, 48_000.0, n, 0.3, 0.0);
        let rumble = signal::sine(25.0, 48_000.0, n, 0.3, 0.0);
        let mix: Vec<f32> = voice
            .iter()
            .zip(&rumble)
            .map(|(a, b)| a + b + 0.2)
            .collect();
        let mut out = vec![mix.clone(), mix];
        fx.run(&mut out);
        let tail = &out[0][n / 2..];
        let mean = tail.iter().map(|&x| x as f64).sum::<f64>() / tail.len() as f64;
        assert!(mean.abs() < 1e-4, "DC left: {mean}");
        assert!(signal::tone_amplitude(tail, 25.0, 48_000.0) < 0.3 * 0.11);
        assert!((signal::tone_amplitude(tail, 300.0, 48_000.0) - 0.3).abs() < 0.3 * 0.01);
        assert!(out[0] == out[1], "channels differ");
    }

    #[test]
    fn cutoff_glides_and_block_size_does_not_matter() {
        let mut mem = memory();
        let input = signal::noise(3, 30_000, 0.5);
        let mut results = vec![];
        for blocks in [&[1024usize][..], &[1, 17, 500]] {
            let mut fx = Instance::<Highpass>::new(&mut mem, 48_000, 1, 1024).unwrap();
            let mut out = vec![input.clone()];
            fx.run_blocks(&mut out, blocks);
            fx.set("cutoff_hz", 2_000.0);
            let mut more = vec![input.clone()];
            fx.run_blocks(&mut more, blocks);
            out[0].extend(more.remove(0));
            results.push(out.remove(0));
        }
        assert!(
            results[0] == results[1],
            "the result depends on the block size"
        );
        // No step: the output right after the change stays within the input's range.
        assert!(signal::peak(&results[0][30_000..31_000]) < 1.0);
    }
}
