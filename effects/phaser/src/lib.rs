//! `phaser`: the signal through a chain of first-order allpass stages whose break frequency
//! swings around `centre_hz` by ±`depth_oct` octaves at `rate_hz` (a sine LFO, exponential in
//! frequency; each further channel a quarter turn later), mixed with the dry signal. Where the
//! chain's phase reaches an odd multiple of 180° the mix cancels: notches that sweep. Each stage
//! turns the phase by `−2·atan(tan(πf/fs)/tan(πfc/fs))`, so with 2, 6 or 10 stages a notch sits
//! at the break frequency itself. `feedback` returns the chain's output to its input (peaks
//! between the notches). The break frequency is recomputed every 8 frames. Defaults:
//! Pedalboard's `Phaser` rate, centre and mix with six stages and one octave of swing.
#![no_std]

use core::f32::consts::PI;

use sluice_effect_sdk::{
    Arena, Config, Effect, InitError,
    dsp::{Lfo, Ramp, flush, phase_offset},
    effect, libm,
};

/// The most channels and stages.
const MAX_CHANNELS: usize = 8;
const MAX_STAGES: usize = 12;
/// Frames between recomputations of the allpass coefficient.
const UPDATE: usize = 8;

effect! {
    /// Parameters of `phaser`.
    pub struct PhaserParams for Phaser {
        name: "phaser",
        version: "1.0.0",
        description: "Phaser: first-order allpass stages whose break frequency swings around centre_hz by +/-depth_oct octaves at rate_hz (each further channel's LFO a quarter turn later), fed back by feedback, mixed with the dry signal; with 2, 6 or 10 stages a notch sits at the break frequency.",
        tail_seconds: 0.5,
        max_channels: 8,
    }
    params {
        rate_hz: { name: "Rate", unit: "Hz", min: 0.01, max: 10.0, default: 1.0 },
        depth_oct: { name: "Depth", unit: "oct", min: 0.0, max: 4.0, default: 1.0 },
        centre_hz: { name: "Centre", unit: "Hz", min: 50.0, max: 10000.0, default: 1300.0 },
        stages: { name: "Stages", unit: "", min: 2.0, max: 12.0, default: 6.0 },
        feedback: { name: "Feedback", unit: "", min: -0.95, max: 0.95, default: 0.0 },
        mix: { name: "Mix", unit: "", min: 0.0, max: 1.0, default: 0.5 },
    }
}

/// One allpass stage's memory: its last input and output.
#[derive(Clone, Copy, Default)]
struct Stage {
    x1: f32,
    y1: f32,
}

/// The chain per channel, the LFO and the smoothed settings.
pub struct Phaser {
    fs: f32,
    channels: usize,
    stages: usize,
    state: [[Stage; MAX_STAGES]; MAX_CHANNELS],
    last: [f32; MAX_CHANNELS],
    coef: [f32; MAX_CHANNELS],
    offsets: [(f32, f32); MAX_CHANNELS],
    lfo: Lfo,
    countdown: usize,
    centre: Ramp,
    depth: Ramp,
    feedback: Ramp,
    mix: Ramp,
}

impl Phaser {
    /// The allpass coefficient for a break at `hz`.
    fn coefficient(&self, hz: f32) -> f32 {
        let t = libm::tanf(PI * hz.min(0.45 * self.fs) / self.fs);
        (t - 1.0) / (t + 1.0)
    }

    fn set(&mut self, p: &PhaserParams, snap: bool) {
        self.lfo.set_rate(p.rate_hz, self.fs);
        self.stages = (p.stages as usize).clamp(2, MAX_STAGES);
        let targets = [
            (&mut self.centre, libm::log2f(p.centre_hz)),
            (&mut self.depth, p.depth_oct),
            (&mut self.feedback, p.feedback),
            (&mut self.mix, p.mix),
        ];
        for (r, t) in targets {
            if snap { r.snap(t) } else { r.set(t) }
        }
    }
}

impl<'a> Effect<'a> for Phaser {
    type Params = PhaserParams;

    fn new(config: &Config, params: &PhaserParams, _: &mut Arena<'a>) -> Result<Self, InitError> {
        let fs = config.fs();
        let glide = (0.02 * fs) as u32;
        let mut offsets = [(1.0, 0.0); MAX_CHANNELS];
        for (ch, o) in offsets.iter_mut().enumerate() {
            *o = phase_offset(ch as f64 * 0.25);
        }
        let mut fx = Phaser {
            fs,
            channels: config.channels.min(MAX_CHANNELS),
            stages: 6,
            state: [[Stage::default(); MAX_STAGES]; MAX_CHANNELS],
            last: [0.0; MAX_CHANNELS],
            coef: [0.0; MAX_CHANNELS],
            offsets,
            lfo: Lfo::new(params.rate_hz, fs, 0.0),
            countdown: 0,
            centre: Ramp::new(0.0, glide),
            depth: Ramp::new(0.0, glide),
            feedback: Ramp::new(0.0, glide),
            mix: Ramp::new(0.0, glide),
        };
        fx.reset(params);
        Ok(fx)
    }

    fn update(&mut self, params: &PhaserParams) {
        self.set(params, false);
    }

    fn process(&mut self, channels: &mut [&mut [f32]]) {
        let frames = channels.first().map_or(0, |c| c.len());
        let n = self.stages;
        for i in 0..frames {
            let (s, c) = self.lfo.next();
            let (centre, depth) = (self.centre.next(), self.depth.next());
            let (fb, mix) = (self.feedback.next(), self.mix.next());
            if self.countdown == 0 {
                self.countdown = UPDATE;
                for ch in 0..self.channels {
                    let (ca, sa) = self.offsets[ch];
                    let hz = libm::exp2f(centre + depth * (s * ca + c * sa));
                    self.coef[ch] = self.coefficient(hz);
                }
            }
            self.countdown -= 1;
            for (ch, chan) in channels.iter_mut().enumerate().take(self.channels) {
                let a = self.coef[ch];
                let x = chan[i];
                let mut u = x + fb * self.last[ch];
                for st in self.state[ch][..n].iter_mut() {
                    let y = a * u + st.x1 - a * st.y1;
                    st.x1 = u;
                    st.y1 = flush(y);
                    u = st.y1;
                }
                self.last[ch] = u;
                chan[i] = (1.0 - mix) * x + mix * u;
            }
        }
    }

    fn reset(&mut self, params: &PhaserParams) {
        self.state = [[Stage::default(); MAX_STAGES]; MAX_CHANNELS];
        self.last = [0.0; MAX_CHANNELS];
        self.lfo = Lfo::new(params.rate_hz, self.fs, 0.0);
        self.countdown = 0;
        self.set(params, true);
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use sluice_effect_sdk::native::{Instance, memory, signal};
    use std::vec;

    const FS: f64 = 48_000.0;

    /// The level of a probe tone, half dry and half through `n` stages with the break at `fc`:
    /// `|cos(φ/2)|`, φ the chain's phase at the probe.
    fn expected(n: usize, f: f64, fc: f64) -> f64 {
        let w = |hz: f64| (std::f64::consts::PI * hz / FS).tan();
        let phi = -2.0 * n as f64 * (w(f) / w(fc)).atan();
        (phi / 2.0).cos().abs()
    }

    /// A probe tone's level over time follows the chain's phase as the break frequency swings:
    /// the rate and the depth read from the output are the ones set.
    #[test]
    fn the_notches_sweep_at_the_rate_and_depth_set() {
        let mut mem = memory();
        for (rate, depth, centre, probe) in [
            (0.25f32, 1.0f32, 1_000.0f32, 1_000.0),
            (0.5, 2.0, 800.0, 2_000.0),
            (0.1, 0.5, 3_000.0, 2_500.0),
        ] {
            let mut fx = Instance::<Phaser>::new(&mut mem, 48_000, 1, 512).unwrap();
            fx.set("rate_hz", rate)
                .set("depth_oct", depth)
                .set("centre_hz", centre)
                .set("stages", 6.0)
                .set("mix", 0.5);
            fx.reset();
            // Eleven seconds: a whole cycle of the slowest LFO after the first half second.
            let mut out = vec![signal::sine(probe, FS, 11 * 48_000, 0.5, 0.0)];
            fx.run(&mut out);
            let mut deepest: f64 = 1.0;
            for k in 0..200 {
                let t = 0.5 + 0.05 * k as f64;
                let from = (t * FS) as usize;
                let seg = &out[0][from - 240..from + 240];
                let level = signal::tone_amplitude(seg, probe, FS) / 0.5;
                let fc = f64::from(centre)
                    * 2f64.powf(
                        f64::from(depth) * (std::f64::consts::TAU * f64::from(rate) * t).sin(),
                    );
                let want = expected(6, probe, fc);
                assert!(
                    (level - want).abs() < 0.06,
                    "{rate} Hz ±{depth} oct around {centre} Hz, probe {probe} Hz at {t:.2} s: {level:.3} against {want:.3}"
                );
                deepest = deepest.min(level);
            }
            assert!(deepest < 0.1, "the probe is never notched: {deepest}");
        }
    }

    #[test]
    fn a_dry_mix_passes_the_input_and_the_wet_chain_is_allpass() {
        let mut mem = memory();
        let mut fx = Instance::<Phaser>::new(&mut mem, 48_000, 2, 512).unwrap();
        fx.set("mix", 0.0);
        fx.reset();
        let input = vec![signal::noise(1, 9_000, 0.5), signal::noise(2, 9_000, 0.5)];
        let mut out = input.clone();
        fx.run(&mut out);
        assert!(out == input);
        // Fully wet, depth 0: a fixed allpass chain keeps a tone's level.
        let mut fx = Instance::<Phaser>::new(&mut mem, 48_000, 1, 512).unwrap();
        fx.set("mix", 1.0).set("depth_oct", 0.0);
        fx.reset();
        for f in [100.0, 1_300.0, 9_000.0] {
            let mut tone = vec![signal::sine(f, FS, 48_000, 0.5, 0.0)];
            fx.run(&mut tone);
            let level = signal::tone_amplitude(&tone[0][24_000..], f, FS) / 0.5;
            assert!((level - 1.0).abs() < 1e-3, "{f} Hz: {level}");
        }
    }
}
