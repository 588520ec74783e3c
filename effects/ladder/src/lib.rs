//! `ladder`: the four-pole resonant ladder filter (Moog's), as a zero-delay-feedback
//! (topology-preserving) model: four one-pole low-passes at the cutoff in series, their output
//! fed back to the input `k = 3.96·resonance` times, the loop solved each frame so that the
//! digital filter is the bilinear image of the analogue one — the low-pass response is exactly
//! `1/((1+s)^4 + k)` at the pre-warped frequency `s = jΩ`, `Ω = tan(πf/fs)/tan(πfc/fs)`. The
//! other modes mix the stages (`u` the loop's input, `y1..y4` the stages' outputs), which gives:
//!
//! | mode | response |
//! | --- | --- |
//! | `lpf24` | `1/D` |
//! | `lpf12` | `(1+s)²/D` |
//! | `hpf24` | `s⁴/D` |
//! | `hpf12` | `s²(1+s)²/D` |
//! | `bpf24` | `4s²/D` |
//! | `bpf12` | `2s(1+s)²/D` |
//!
//! with `D = (1+s)^4 + k` (Pedalboard's `LadderFilter` has the same six modes). At 0 dB of
//! `drive_db` the filter is linear; above, the loop's input is driven into `tanh` (and the gain
//! taken back at the output), so small signals keep their level and loud ones saturate inside
//! the loop, as an analogue ladder does. The
//! cutoff glides over 20 ms (coefficients every 16 frames).
#![no_std]

use core::f32::consts::PI;

use sluice_effect_sdk::{
    Arena, Config, Effect, InitError,
    dsp::{Ramp, db_to_gain, flush},
    effect, libm,
};

const MAX_CHANNELS: usize = 8;
/// Frames between recomputations of the coefficient while the cutoff glides.
const UPDATE: u32 = 16;
/// The feedback at full resonance (just under self-oscillation at 4).
pub const MAX_K: f32 = 3.96;

effect! {
    /// Parameters of `ladder`.
    pub struct LadderParams for Ladder {
        name: "ladder",
        version: "1.0.0",
        description: "Four-pole resonant ladder filter (zero-delay-feedback model of Moog's): low, high or band pass at 12 or 24 dB/oct, resonance up to just under self-oscillation, drive into tanh inside the loop (level kept for small signals). The cutoff glides 20 ms.",
        tail_seconds: 0.5,
        max_channels: 8,
    }
    params {
        mode: { name: "Mode", choices: ["lpf24", "lpf12", "hpf24", "hpf12", "bpf24", "bpf12"], default: "lpf24" },
        cutoff_hz: { name: "Cutoff", unit: "Hz", min: 20.0, max: 20000.0, default: 1000.0 },
        resonance: { name: "Resonance", unit: "", min: 0.0, max: 1.0, default: 0.0 },
        drive_db: { name: "Drive", unit: "dB", min: 0.0, max: 36.0, default: 0.0 },
    }
}

/// The filter per channel and its settings.
pub struct Ladder {
    fs: f32,
    mode: usize,
    k: Ramp,
    drive: Ramp,
    /// log2 of the cutoff, gliding.
    cutoff: Ramp,
    /// The one-pole gain `G = g/(1+g)`, `g = tan(π·fc/fs)`.
    big_g: f32,
    phase: u32,
    state: [[f32; 4]; MAX_CHANNELS],
}

impl Ladder {
    fn design(&mut self) {
        let fc = libm::exp2f(self.cutoff.value()).min(0.49 * self.fs);
        let g = libm::tanf(PI * fc / self.fs);
        self.big_g = g / (1.0 + g);
    }

    fn targets(p: &LadderParams) -> [f32; 3] {
        [
            MAX_K * p.resonance,
            db_to_gain(p.drive_db),
            libm::log2f(p.cutoff_hz),
        ]
    }

    /// One frame of one channel.
    #[inline]
    fn tick(&self, s: &mut [f32; 4], x: f32, k: f32, drive: f32) -> f32 {
        let g = self.big_g;
        // Each stage is y = G·in + (1−G)·s; the loop's output is G⁴·u + S.
        let h = 1.0 - g;
        let sum = ((h * s[0] * g + h * s[1]) * g + h * s[2]) * g + h * s[3];
        let g4 = g * g * g * g;
        let u_lin = (drive * x - k * sum) / (1.0 + k * g4);
        // At 0 dB of drive the ladder is linear; past it, its input saturates.
        let u = if drive == 1.0 {
            u_lin
        } else {
            libm::tanhf(u_lin)
        };
        let mut input = u;
        let mut y = [0.0f32; 4];
        for (st, out) in s.iter_mut().zip(y.iter_mut()) {
            let v = (input - *st) * g;
            *out = v + *st;
            *st = flush(*out + v);
            input = *out;
        }
        let [y1, y2, y3, y4] = y;
        let out = match self.mode {
            0 => y4,
            1 => y2,
            2 => u - 4.0 * y1 + 6.0 * y2 - 4.0 * y3 + y4,
            3 => u - 2.0 * y1 + y2,
            4 => 4.0 * (y2 - 2.0 * y3 + y4),
            _ => 2.0 * (y1 - y2),
        };
        out / drive
    }
}

impl<'a> Effect<'a> for Ladder {
    type Params = LadderParams;

    fn new(config: &Config, params: &LadderParams, _: &mut Arena<'a>) -> Result<Self, InitError> {
        let glide = config.ms_to_frames(20.0) as u32;
        let mut fx = Ladder {
            fs: config.fs(),
            mode: 0,
            k: Ramp::new(0.0, glide),
            drive: Ramp::new(1.0, glide),
            cutoff: Ramp::new(10.0, glide),
            big_g: 0.0,
            phase: 0,
            state: [[0.0; 4]; MAX_CHANNELS],
        };
        fx.reset(params);
        Ok(fx)
    }

    fn update(&mut self, params: &LadderParams) {
        self.mode = params.mode;
        let [k, d, c] = Self::targets(params);
        self.k.set(k);
        self.drive.set(d);
        self.cutoff.set(c);
    }

    fn process(&mut self, channels: &mut [&mut [f32]]) {
        let frames = channels.first().map_or(0, |c| c.len());
        for i in 0..frames {
            if self.cutoff.is_active() {
                self.cutoff.next();
                self.phase += 1;
                if self.phase == UPDATE || !self.cutoff.is_active() {
                    self.phase = 0;
                    self.design();
                }
            }
            let (k, drive) = (self.k.next(), self.drive.next());
            for (ch, chan) in channels.iter_mut().enumerate().take(MAX_CHANNELS) {
                let mut s = self.state[ch];
                chan[i] = self.tick(&mut s, chan[i], k, drive);
                self.state[ch] = s;
            }
        }
    }

    fn reset(&mut self, params: &LadderParams) {
        self.mode = params.mode;
        let [k, d, c] = Self::targets(params);
        self.k.snap(k);
        self.drive.snap(d);
        self.cutoff.snap(c);
        self.phase = 0;
        self.state = [[0.0; 4]; MAX_CHANNELS];
        self.design();
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use sluice_effect_sdk::native::{Instance, memory, signal};
    use std::vec;

    const FS: f64 = 48_000.0;

    /// |N(s)/((1+s)^4 + k)| at s = jΩ, by complex arithmetic.
    fn analogue(mode: usize, omega: f64, k: f64) -> f64 {
        type C = (f64, f64);
        let mul = |a: C, b: C| (a.0 * b.0 - a.1 * b.1, a.0 * b.1 + a.1 * b.0);
        let s: C = (0.0, omega);
        let one_s: C = (1.0, omega);
        let p2 = mul(one_s, one_s);
        let p4 = mul(p2, p2);
        let d = (p4.0 + k, p4.1);
        let s2 = mul(s, s);
        let n = match mode {
            0 => (1.0, 0.0),
            1 => p2,
            2 => mul(s2, s2),
            3 => mul(s2, p2),
            4 => (4.0 * s2.0, 4.0 * s2.1),
            _ => {
                let t = mul(s, p2);
                (2.0 * t.0, 2.0 * t.1)
            }
        };
        (n.0.hypot(n.1)) / d.0.hypot(d.1)
    }

    /// Every mode's response, measured with small sines, is the analogue ladder's at the
    /// pre-warped frequency, within 0.1 dB, with and without resonance.
    #[test]
    fn every_mode_follows_the_analogue_ladder() {
        let mut mem = memory();
        let modes = ["lpf24", "lpf12", "hpf24", "hpf12", "bpf24", "bpf12"];
        let fc = 1_000.0;
        for (m, mode) in modes.iter().enumerate() {
            for resonance in [0.0f32, 0.5] {
                let k = f64::from(MAX_K * resonance);
                for f in [250.0, 500.0, 1_000.0, 2_000.0, 4_000.0] {
                    let mut fx = Instance::<Ladder>::new(&mut mem, 48_000, 1, 512).unwrap();
                    fx.set_choice("mode", mode)
                        .set("cutoff_hz", fc as f32)
                        .set("resonance", resonance);
                    fx.reset();
                    let mut out = vec![signal::sine(f, FS, 48_000, 0.001, 0.0)];
                    fx.run(&mut out);
                    let got = signal::db(signal::tone_amplitude(&out[0][24_000..], f, FS) / 0.001);
                    let w = |hz: f64| (std::f64::consts::PI * hz / FS).tan();
                    let want = signal::db(analogue(m, w(f) / w(fc), k));
                    if want > -80.0 {
                        assert!(
                            (got - want).abs() < 0.1,
                            "{mode} resonance {resonance} at {f} Hz: {got:.2} dB against {want:.2} dB"
                        );
                    }
                }
            }
        }
    }

    /// Resonance lifts the low-pass near the cutoff; drive saturates loud input and keeps a
    /// quiet one's level.
    #[test]
    fn resonance_peaks_and_drive_saturates() {
        let mut mem = memory();
        let level = |mem: &mut [f32], res: f32, drive: f32, amp: f64| {
            let mut fx = Instance::<Ladder>::new(mem, 48_000, 1, 512).unwrap();
            fx.set("cutoff_hz", 1_000.0)
                .set("resonance", res)
                .set("drive_db", drive);
            fx.reset();
            let mut out = vec![signal::sine(950.0, FS, 48_000, amp, 0.0)];
            fx.run(&mut out);
            signal::tone_amplitude(&out[0][24_000..], 950.0, FS) / amp
        };
        let flat = level(&mut mem, 0.0, 0.0, 0.001);
        let peaked = level(&mut mem, 0.9, 0.0, 0.001);
        assert!(signal::db(peaked / flat) > 12.0, "{flat} -> {peaked}");
        let quiet = level(&mut mem, 0.0, 24.0, 0.0001);
        assert!(
            (signal::db(quiet / flat)).abs() < 0.1,
            "drive changed a quiet signal's level"
        );
        let loud = level(&mut mem, 0.0, 24.0, 0.5);
        assert!(
            signal::db(loud / flat) < -6.0,
            "drive did not saturate: {}",
            signal::db(loud / flat)
        );
    }
}
