//! `chorus`: voices that read the signal through a delay of `centre_ms`, swung by ±`depth_ms`
//! at `rate_hz` (sine LFOs spread evenly in phase; each further channel a quarter turn later,
//! which widens a stereo image), mixed with the dry signal; `feedback` returns the voices to the
//! line. The engine is the SDK's `Modulated` delay (cubic interpolation), shared with
//! `flanger`. The defaults are Pedalboard's `Chorus` centre (7 ms) and rate (1 Hz) with two
//! voices.
#![no_std]

use sluice_effect_sdk::{
    dsp::{ModulatedEffect, Modulates, Modulation},
    effect,
};

/// The longest delay a voice reads: the largest centre plus the largest depth, ms.
const MAX_DELAY_MS: f32 = 60.0;

effect! {
    /// Parameters of `chorus`.
    pub struct ChorusParams for Chorus {
        name: "chorus",
        version: "1.0.0",
        description: "Chorus: voices reading the signal through a delay of centre_ms swung by +/-depth_ms at rate_hz (sine LFOs spread evenly in phase; each further channel a quarter turn later), mixed with the dry signal; feedback returns the voices to the line. The tail bound is a 60 ms line at feedback 0.95, 60 dB down.",
        tail_seconds: 8.1,
        max_channels: 8,
    }
    params {
        rate_hz: { name: "Rate", unit: "Hz", min: 0.01, max: 20.0, default: 1.0 },
        depth_ms: { name: "Depth", unit: "ms", min: 0.0, max: 20.0, default: 2.0 },
        centre_ms: { name: "Centre delay", unit: "ms", min: 1.0, max: 40.0, default: 7.0 },
        feedback: { name: "Feedback", unit: "", min: -0.95, max: 0.95, default: 0.0 },
        mix: { name: "Mix", unit: "", min: 0.0, max: 1.0, default: 0.5 },
        voices: { name: "Voices", unit: "", min: 1.0, max: 4.0, default: 2.0 },
    }
}

impl Modulates for ChorusParams {
    const MAX_DELAY_MS: f32 = MAX_DELAY_MS;

    fn modulation(&self) -> Modulation {
        Modulation {
            rate_hz: self.rate_hz,
            depth_ms: self.depth_ms,
            centre_ms: self.centre_ms,
            feedback: self.feedback,
            mix: self.mix,
            voices: self.voices as usize,
        }
    }
}

/// The modulated delay, driven by these parameters.
pub type Chorus<'a> = ModulatedEffect<'a, ChorusParams>;

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use sluice_effect_sdk::native::{Instance, memory, signal};
    use std::vec;

    const FS: f64 = 48_000.0;

    /// Bessel function of the first kind, by its series.
    fn bessel_j(n: i32, x: f64) -> f64 {
        let mut sum = 0.0;
        let mut fact_k = 1.0;
        for k in 0..30 {
            if k > 0 {
                fact_k *= k as f64;
            }
            let fact_nk: f64 = (1..=(n + k)).map(f64::from).product();
            sum += (-1f64).powi(k) / (fact_k * fact_nk) * (x / 2.0).powi(2 * k + n);
        }
        sum
    }

    /// The wet signal of a sine through one voice is the sine phase-modulated by the swung
    /// delay: its spectrum has sidebands at the LFO's rate whose sizes are Bessel functions of
    /// 2π·f0·depth. The rate and the depth read from the output's spectrum are the ones set.
    #[test]
    fn rate_and_depth_read_from_the_spectrum_are_the_ones_set() {
        let mut mem = memory();
        let f0 = 1_000.0;
        for (rate, depth_ms) in [(2.0f32, 0.1f32), (5.0, 0.25), (0.5, 0.05)] {
            let mut fx = Instance::<Chorus>::new(&mut mem, 48_000, 1, 512).unwrap();
            fx.set("rate_hz", rate)
                .set("depth_ms", depth_ms)
                .set("voices", 1.0)
                .set("mix", 1.0);
            fx.reset();
            // The last 8 s of 9: whole numbers of LFO cycles and of the tone's, and every
            // frequency looked at a whole number of cycles in the window.
            let mut out = vec![signal::sine(f0, FS, 9 * 48_000, 0.5, 0.0)];
            fx.run(&mut out);
            let tail = &out[0][48_000..];
            let amp = |f: f64| signal::tone_amplitude(tail, f, FS);
            let beta = std::f64::consts::TAU * f0 * f64::from(depth_ms) / 1000.0;
            let r = f64::from(rate);
            let carrier = amp(f0) / 0.5;
            let upper = amp(f0 + r) / 0.5;
            let lower = amp(f0 - r) / 0.5;
            assert!(
                (carrier - bessel_j(0, beta).abs()).abs() < 0.01,
                "{rate} Hz {depth_ms} ms: carrier {carrier} against J0 {}",
                bessel_j(0, beta)
            );
            for side in [upper, lower] {
                assert!(
                    (side - bessel_j(1, beta)).abs() < 0.01,
                    "{rate} Hz {depth_ms} ms: sideband {side} against J1 {}",
                    bessel_j(1, beta)
                );
            }
            // Nothing between the sidebands: the modulation is at the rate set.
            assert!(
                amp(f0 + 0.5 * r) / 0.5 < 0.01,
                "{rate} Hz: energy at half the rate"
            );
        }
    }

    #[test]
    fn a_dry_mix_passes_the_input_and_silence_stays_silent() {
        let mut mem = memory();
        let mut fx = Instance::<Chorus>::new(&mut mem, 48_000, 2, 512).unwrap();
        fx.set("mix", 0.0);
        fx.reset();
        let input = vec![signal::noise(1, 9_000, 0.5), signal::noise(2, 9_000, 0.5)];
        let mut out = input.clone();
        fx.run(&mut out);
        assert!(out == input);
        let mut fx = Instance::<Chorus>::new(&mut mem, 48_000, 2, 512).unwrap();
        fx.set("feedback", 0.95).set("mix", 1.0);
        fx.reset();
        let mut zeros = vec![vec![0.0f32; 9_000]; 2];
        fx.run(&mut zeros);
        assert!(zeros.iter().flatten().all(|&x| x == 0.0));
    }

    #[test]
    fn the_wet_signal_lags_by_the_centre_delay() {
        // Depth 0: a plain delay of centre_ms, one voice.
        let mut mem = memory();
        let mut fx = Instance::<Chorus>::new(&mut mem, 48_000, 1, 512).unwrap();
        fx.set("depth_ms", 0.0)
            .set("centre_ms", 10.0)
            .set("voices", 1.0)
            .set("mix", 1.0);
        fx.reset();
        let mut impulse = vec![vec![0.0f32; 2_000]];
        impulse[0][100] = 1.0;
        fx.run(&mut impulse);
        let peak = impulse[0]
            .iter()
            .enumerate()
            .fold(
                (0, 0.0f32),
                |m, (i, &x)| if x.abs() > m.1 { (i, x.abs()) } else { m },
            );
        assert_eq!(peak.0, 100 + 480, "10 ms at 48 kHz");
        assert!((peak.1 - 1.0).abs() < 1e-6);
    }
}
