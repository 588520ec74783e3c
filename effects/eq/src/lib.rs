//! `eq`: one biquad band designed by the RBJ Audio EQ Cookbook. Frequency, Q and gain glide
//! over 20 ms when changed (the coefficients are recomputed every 16 frames of the glide); a
//! change of type takes effect at once.
#![no_std]

use sluice_effect_sdk::{
    Arena, Config, Effect, InitError,
    dsp::biquad::{Band, Kind},
    effect,
};

effect! {
    /// Parameters of `eq`.
    pub struct EqParams for Eq {
        name: "eq",
        version: "1.0.0",
        description: "One biquad band from the RBJ Audio EQ Cookbook: lowpass, highpass, bandpass (0 dB peak), notch, peaking, lowshelf, highshelf. gain_db applies to peaking and shelves; frequency, Q and gain glide over 20 ms.",
        tail_seconds: 0.5,
        max_channels: 32,
    }
    params {
        r#type: {
            name: "Type",
            choices: ["lowpass", "highpass", "bandpass", "notch", "peaking", "lowshelf", "highshelf"],
            default: "peaking",
        },
        freq_hz: { name: "Frequency", unit: "Hz", min: 20.0, max: 20000.0, default: 1000.0 },
        q: { name: "Q", unit: "", min: 0.1, max: 18.0, default: 0.707 },
        gain_db: { name: "Gain", unit: "dB", min: -24.0, max: 24.0, default: 0.0 },
    }
}

/// The filter type of the `type` parameter's index.
pub fn kind(index: usize) -> Kind {
    [
        Kind::Lowpass,
        Kind::Highpass,
        Kind::Bandpass,
        Kind::Notch,
        Kind::Peaking,
        Kind::Lowshelf,
        Kind::Highshelf,
    ][index.min(6)]
}

const GLIDE_MS: f32 = 20.0;

/// The band.
pub struct Eq {
    band: Band,
}

impl<'a> Effect<'a> for Eq {
    type Params = EqParams;

    fn new(config: &Config, p: &EqParams, _: &mut Arena<'a>) -> Result<Self, InitError> {
        let frames = config.ms_to_frames(GLIDE_MS) as u32;
        Ok(Eq {
            band: Band::new(
                config.fs(),
                frames,
                kind(p.r#type),
                p.freq_hz,
                p.q,
                p.gain_db,
            ),
        })
    }

    fn update(&mut self, p: &EqParams) {
        self.band.set(kind(p.r#type), p.freq_hz, p.q, p.gain_db);
    }

    fn process(&mut self, channels: &mut [&mut [f32]]) {
        self.band.process(channels);
    }

    fn reset(&mut self, p: &EqParams) {
        self.band.reset(kind(p.r#type), p.freq_hz, p.q, p.gain_db);
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use sluice_effect_sdk::{
        dsp::biquad::Coefs,
        native::{Instance, memory, signal},
    };
    use std::{f64::consts::PI, vec, vec::Vec};

    /// |H(jΩ)| of the cookbook's analog prototypes, Ω normalised to the centre frequency.
    /// The cookbook's digital filters are their bilinear transforms with the centre frequency
    /// prewarped, so the digital response at f is this at Ω = tan(πf/fs) / tan(πf0/fs).
    fn prototype(kind: &str, w: f64, q: f64, gain_db: f64) -> f64 {
        let a = 10f64.powf(gain_db / 40.0);
        // Evaluate num(s)/den(s) at s = jΩ with polynomials c2 s² + c1 s + c0.
        let h = |n: [f64; 3], d: [f64; 3]| {
            let re_n = n[0] - n[2] * w * w;
            let im_n = n[1] * w;
            let re_d = d[0] - d[2] * w * w;
            let im_d = d[1] * w;
            ((re_n * re_n + im_n * im_n) / (re_d * re_d + im_d * im_d)).sqrt()
        };
        let den = [1.0, 1.0 / q, 1.0];
        match kind {
            "lowpass" => h([1.0, 0.0, 0.0], den),
            "highpass" => h([0.0, 0.0, 1.0], den),
            "bandpass" => h([0.0, 1.0 / q, 0.0], den),
            "notch" => h([1.0, 0.0, 1.0], den),
            "peaking" => h([1.0, a / q, 1.0], [1.0, 1.0 / (a * q), 1.0]),
            "lowshelf" => a * h([a, a.sqrt() / q, 1.0], [1.0, a.sqrt() / q, a]),
            "highshelf" => a * h([1.0, a.sqrt() / q, a], [a, a.sqrt() / q, 1.0]),
            _ => unreachable!(),
        }
    }

    const KINDS: [&str; 7] = [
        "lowpass",
        "highpass",
        "bandpass",
        "notch",
        "peaking",
        "lowshelf",
        "highshelf",
    ];
    const SETTINGS: [(f64, f64, f64); 4] = [
        (1_000.0, 0.707, 6.0),
        (100.0, 2.0, -12.0),
        (5_000.0, 0.5, 12.0),
        (12_000.0, 4.0, -3.0),
    ];

    fn probe_freqs(f0: f64, fs: f64) -> Vec<f64> {
        [0.1, 0.3, 0.5, 0.8, 1.0, 1.25, 2.0, 3.0, 10.0]
            .iter()
            .map(|m| m * f0)
            .filter(|&f| f > 15.0 && f < 0.45 * fs)
            .collect()
    }

    #[test]
    fn coefficients_match_the_cookbook_prototypes() {
        let fs = 48_000.0;
        for (k, name) in KINDS.iter().enumerate() {
            for (f0, q, g) in SETTINGS {
                let c = Coefs::design(kind(k), fs, f0, q, g);
                for f in probe_freqs(f0, fs) {
                    let w = (PI * f / fs).tan() / (PI * f0 / fs).tan();
                    let (got, expect) = (c.magnitude(fs, f), prototype(name, w, q, g));
                    assert!(
                        (got - expect).abs() < 1e-9 * expect.max(1.0),
                        "{name} f0 {f0} q {q} g {g} at {f}: {got} vs {expect}"
                    );
                }
            }
        }
    }

    /// Runs a sine at `f` through the effect and returns its measured gain (linear).
    fn measured(fx: &mut Instance<'_, Eq>, fs: f64, f: f64) -> f64 {
        fx.reset();
        let n = (fs * 0.6) as usize;
        let mut out = vec![signal::sine(f, fs, n, 0.25, 0.0)];
        fx.run(&mut out);
        // The last 0.2 s, long after the filter settled.
        let tail = &out[0][n - (fs * 0.2) as usize..];
        signal::tone_amplitude(tail, f, fs) / 0.25
    }

    #[test]
    fn measured_response_matches_the_cookbook() {
        let mut mem = memory();
        let fs = 48_000.0;
        let mut fx = Instance::<Eq>::new(&mut mem, 48_000, 1, 4096).unwrap();
        for name in KINDS {
            for (f0, q, g) in SETTINGS {
                fx.set_choice("type", name)
                    .set("freq_hz", f0 as f32)
                    .set("q", q as f32)
                    .set("gain_db", g as f32);
                for f in probe_freqs(f0, fs) {
                    let w = (PI * f / fs).tan() / (PI * f0 / fs).tan();
                    let expect = prototype(name, w, q as f32 as f64, g);
                    let got = measured(&mut fx, fs, f);
                    // 0.05 dB, or for deep cuts (below -40 dB) 0.001 absolute.
                    let ok = (signal::db(got) - signal::db(expect)).abs() < 0.05
                        || (expect < 0.01 && (got - expect).abs() < 1e-3);
                    assert!(
                        ok,
                        "{name} f0 {f0} q {q} g {g} at {f} Hz: {} dB vs {} dB",
                        signal::db(got),
                        signal::db(expect)
                    );
                }
            }
        }
    }

    #[test]
    fn peaking_at_zero_gain_is_transparent_and_boost_hits_its_gain() {
        let mut mem = memory();
        let mut fx = Instance::<Eq>::new(&mut mem, 44_100, 2, 512).unwrap();
        let input = vec![signal::noise(1, 20_000, 0.5), signal::noise(2, 20_000, 0.5)];
        let mut out = input.clone();
        fx.run(&mut out);
        for (a, b) in out.iter().flatten().zip(input.iter().flatten()) {
            assert!((a - b).abs() < 1e-6);
        }
        fx.set("gain_db", 9.0)
            .set("freq_hz", 3_000.0)
            .set("q", 1.0)
            .reset();
        let g = measured_stereo(&mut fx, 44_100.0, 3_000.0);
        assert!((signal::db(g) - 9.0).abs() < 0.02, "{}", signal::db(g));
    }

    fn measured_stereo(fx: &mut Instance<'_, Eq>, fs: f64, f: f64) -> f64 {
        let tone = signal::sine(f, fs, fs as usize, 0.25, 0.0);
        let mut out = vec![tone.clone(), tone];
        fx.run(&mut out);
        assert!(out[0] == out[1], "channels differ");
        signal::tone_amplitude(&out[0][fs as usize / 2..], f, fs) / 0.25
    }

    #[test]
    fn changes_glide_and_block_size_does_not_matter() {
        let mut mem = memory();
        let input = signal::sweep(20.0, 20_000.0, 48_000.0, 48_000, 0.5);
        let mut results = vec![];
        for blocks in [&[256usize][..], &[3, 100, 31]] {
            let mut fx = Instance::<Eq>::new(&mut mem, 48_000, 1, 256).unwrap();
            fx.set("gain_db", 12.0).set("freq_hz", 200.0);
            let mut a = vec![input[..24_000].to_vec()];
            fx.run_blocks(&mut a, blocks);
            fx.set("freq_hz", 8_000.0).set("gain_db", -12.0);
            let mut b = vec![input[24_000..].to_vec()];
            fx.run_blocks(&mut b, blocks);
            a[0].extend_from_slice(&b[0]);
            results.push(a.remove(0));
        }
        assert!(
            results[0] == results[1],
            "the result depends on the block size"
        );
        // A glide, not a jump: no sample-to-sample step larger than the sweep itself makes.
        let max_step = results[0][23_900..25_500]
            .windows(2)
            .map(|w| (w[1] - w[0]).abs())
            .fold(0.0, f32::max);
        assert!(max_step < 0.5, "{max_step}");
    }
}
