//! `flanger`: one voice reading the signal through a short delay (`centre_ms`, swung by
//! ±`depth_ms` at `rate_hz`) with `feedback`, mixed half and half with the dry signal by
//! default: a comb of notches (and, with feedback, peaks) sweeping through the spectrum.
//! Negative feedback moves the peaks to odd multiples of half the delay's frequency. The engine
//! is the SDK's `Modulated` delay, shared with `chorus`; each further channel's LFO is a
//! quarter turn later.
#![no_std]

use sluice_effect_sdk::{
    dsp::{ModulatedEffect, Modulates, Modulation},
    effect,
};

/// The longest delay read: the largest centre plus the largest depth, ms.
const MAX_DELAY_MS: f32 = 20.0;

effect! {
    /// Parameters of `flanger`.
    pub struct FlangerParams for Flanger {
        name: "flanger",
        version: "1.0.0",
        description: "Flanger: the signal through a short delay of centre_ms swung by +/-depth_ms at rate_hz, fed back by feedback, mixed with the dry signal (a sweeping comb). Each further channel's LFO is a quarter turn later. The tail bound is a 20 ms line at feedback 0.95, 60 dB down.",
        tail_seconds: 2.7,
        max_channels: 8,
    }
    params {
        rate_hz: { name: "Rate", unit: "Hz", min: 0.01, max: 10.0, default: 0.25 },
        depth_ms: { name: "Depth", unit: "ms", min: 0.0, max: 10.0, default: 1.5 },
        centre_ms: { name: "Centre delay", unit: "ms", min: 0.1, max: 10.0, default: 2.5 },
        feedback: { name: "Feedback", unit: "", min: -0.95, max: 0.95, default: 0.5 },
        mix: { name: "Mix", unit: "", min: 0.0, max: 1.0, default: 0.5 },
    }
}

impl Modulates for FlangerParams {
    const MAX_DELAY_MS: f32 = MAX_DELAY_MS;

    fn modulation(&self) -> Modulation {
        Modulation {
            rate_hz: self.rate_hz,
            depth_ms: self.depth_ms,
            centre_ms: self.centre_ms,
            feedback: self.feedback,
            mix: self.mix,
            voices: 1,
        }
    }
}

/// The modulated delay, driven by these parameters.
pub type Flanger<'a> = ModulatedEffect<'a, FlangerParams>;

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use sluice_effect_sdk::native::{Instance, memory, signal};
    use std::{vec, vec::Vec};

    const FS: f64 = 48_000.0;

    /// With the delay held still (depth 0) and no feedback, half dry and half delayed is a
    /// comb: notches at odd multiples of 1/(2·delay), over 15 dB under the peaks between them
    /// on white noise's averaged spectrum.
    #[test]
    fn a_still_delay_makes_the_comb_its_delay_says() {
        let mut mem = memory();
        let mut fx = Instance::<Flanger>::new(&mut mem, 48_000, 1, 512).unwrap();
        fx.set("depth_ms", 0.0)
            .set("centre_ms", 1.0)
            .set("feedback", 0.0);
        fx.reset();
        let mut out = vec![signal::noise(5, 4 * 48_000, 0.5)];
        fx.run(&mut out);
        // 1 ms: notches at 500, 1500, 2500 Hz; peaks at 1000, 2000 Hz.
        let band = |f: f64| -> f64 {
            // The power near f, from 32 sines' amplitudes a few Hz apart (noise averages).
            let xs: Vec<f64> = (0..32)
                .map(|k| signal::tone_amplitude(&out[0][48_000..], f - 16.0 + k as f64, FS).powi(2))
                .collect();
            xs.iter().sum::<f64>() / xs.len() as f64
        };
        for notch in [500.0, 1500.0, 2500.0] {
            let peak = band(notch + 500.0);
            let depth = 10.0 * (peak / band(notch)).log10();
            assert!(depth > 15.0, "notch at {notch} Hz only {depth:.1} dB deep");
        }
    }

    /// The comb sweeps at the rate set: the output's level in a narrow band rises and falls
    /// once per LFO cycle as notches pass it.
    #[test]
    fn the_comb_sweeps_at_the_rate_set() {
        let mut mem = memory();
        let mut fx = Instance::<Flanger>::new(&mut mem, 48_000, 1, 512).unwrap();
        fx.set("rate_hz", 1.0)
            .set("depth_ms", 0.5)
            .set("centre_ms", 1.0)
            .set("feedback", 0.0);
        fx.reset();
        // A 1 kHz tone: the comb's gain at 1 kHz is |1 + e^{-iωd}|/2 = |cos(π·f·d)|, d swinging
        // 0.5..1.5 ms: the tone's level follows cos(π·1000·d(t)).
        let mut out = vec![signal::sine(1_000.0, FS, 4 * 48_000, 0.5, 0.0)];
        fx.run(&mut out);
        for k in 0..8 {
            let t = 0.5 + 0.25 * k as f64; // seconds
            let from = (t * FS) as usize;
            let seg = &out[0][from - 480..from + 480];
            let level = signal::tone_amplitude(seg, 1_000.0, FS) / 0.5;
            let d = 1e-3 + 0.5e-3 * (std::f64::consts::TAU * t).sin();
            let want = (std::f64::consts::PI * 1_000.0 * d).cos().abs();
            assert!(
                (level - want).abs() < 0.05,
                "at {t} s: {level:.3} against {want:.3}"
            );
        }
    }
}
