//! `reverb`: Freeverb (Jezar at Dreampoint's public-domain design): per channel eight parallel
//! low-pass-feedback comb filters and four series all-passes; the second channel of each pair
//! has its delays 23 samples longer (the stereo spread). Delay lengths are Freeverb's at
//! 44.1 kHz scaled to the sample rate, so the sound does not change with the rate.
//!
//! Channels are processed in pairs (0-1, 2-3, ...), each pair fed the sum of its two inputs; a
//! last unpaired channel is a mono reverb of itself. Output = dry × (1 − mix) + wet × mix (the
//! wet signal scaled to about the input's level at room size 0.5), with
//! `width` blending each pair's two wet signals (1: fully separate, 0: both the same). Mix and
//! width ramp over 20 ms; room size and damping apply at once.
#![no_std]

use sluice_effect_sdk::{
    Arena, Config, Effect, InitError,
    dsp::{Ramp, flush},
    effect, libm,
};

effect! {
    /// Parameters of `reverb`.
    pub struct ReverbParams for Reverb {
        name: "reverb",
        version: "1.0.0",
        description: "Freeverb-style reverb: 8 damped combs and 4 all-passes per channel, stereo spread, delays scaled to the sample rate; channels in pairs. The tail bound is for room size 1, no damping.",
        tail_seconds: 15.0,
        max_channels: 8,
    }
    params {
        room_size: { name: "Room size", unit: "", min: 0.0, max: 1.0, default: 0.5 },
        damping: { name: "Damping", unit: "", min: 0.0, max: 1.0, default: 0.5 },
        mix: { name: "Mix", unit: "", min: 0.0, max: 1.0, default: 0.25 },
        width: { name: "Width", unit: "", min: 0.0, max: 1.0, default: 1.0 },
    }
}

/// Freeverb's comb delays at 44.1 kHz.
pub const COMBS: [usize; 8] = [1116, 1188, 1277, 1356, 1422, 1491, 1557, 1617];
/// Freeverb's all-pass delays at 44.1 kHz.
pub const ALLPASSES: [usize; 4] = [556, 441, 341, 225];
/// Extra delay of the second channel of a pair, at 44.1 kHz.
pub const SPREAD: usize = 23;
const FIXED_GAIN: f32 = 0.015;
const SCALE_DAMP: f32 = 0.4;
const SCALE_ROOM: f32 = 0.28;
const OFFSET_ROOM: f32 = 0.7;
const RAMP_MS: f32 = 20.0;
/// Wet gain: makes the wet signal about as loud as the input at room size 0.5 (for noise), so
/// that mix 0.5 is an even blend.
const WET_GAIN: f32 = 2.0;

#[derive(Default)]
struct Comb<'a> {
    buf: &'a mut [f32],
    idx: usize,
    store: f32,
}

#[derive(Default)]
struct Allpass<'a> {
    buf: &'a mut [f32],
    idx: usize,
}

#[derive(Default)]
struct Bank<'a> {
    combs: [Comb<'a>; 8],
    allpasses: [Allpass<'a>; 4],
}

impl<'a> Bank<'a> {
    fn new(fs: f32, spread: usize, arena: &mut Arena<'a>) -> Result<Self, InitError> {
        let scaled =
            |len: usize| (libm::roundf((len + spread) as f32 * fs / 44_100.0) as usize).max(1);
        let mut b = Bank::default();
        for (c, len) in b.combs.iter_mut().zip(COMBS) {
            c.buf = arena.take(scaled(len))?;
        }
        for (a, len) in b.allpasses.iter_mut().zip(ALLPASSES) {
            a.buf = arena.take(scaled(len))?;
        }
        Ok(b)
    }

    #[inline]
    fn run(&mut self, input: f32, feedback: f32, damp1: f32, damp2: f32) -> f32 {
        let mut out = 0.0;
        for c in self.combs.iter_mut() {
            let y = c.buf[c.idx];
            c.store = flush(y * damp2 + c.store * damp1);
            c.buf[c.idx] = input + c.store * feedback;
            c.idx += 1;
            if c.idx == c.buf.len() {
                c.idx = 0;
            }
            out += y;
        }
        for a in self.allpasses.iter_mut() {
            let b = a.buf[a.idx];
            a.buf[a.idx] = flush(out + b * 0.5);
            a.idx += 1;
            if a.idx == a.buf.len() {
                a.idx = 0;
            }
            out = b - out;
        }
        out
    }

    fn clear(&mut self) {
        for c in self.combs.iter_mut() {
            c.buf.fill(0.0);
            c.idx = 0;
            c.store = 0.0;
        }
        for a in self.allpasses.iter_mut() {
            a.buf.fill(0.0);
            a.idx = 0;
        }
    }
}

/// The reverb: one bank per channel.
pub struct Reverb<'a> {
    banks: [Bank<'a>; 8],
    channels: usize,
    feedback: f32,
    damp1: f32,
    damp2: f32,
    mix: Ramp,
    width: Ramp,
}

impl Reverb<'_> {
    fn apply(&mut self, p: &ReverbParams) {
        self.feedback = p.room_size * SCALE_ROOM + OFFSET_ROOM;
        self.damp1 = p.damping * SCALE_DAMP;
        self.damp2 = 1.0 - self.damp1;
    }
}

impl<'a> Effect<'a> for Reverb<'a> {
    type Params = ReverbParams;

    fn new(config: &Config, p: &ReverbParams, arena: &mut Arena<'a>) -> Result<Self, InitError> {
        let mut banks: [Bank<'a>; 8] = Default::default();
        for (c, bank) in banks.iter_mut().enumerate().take(config.channels) {
            // The second channel of a pair gets the spread.
            let spread = if c % 2 == 1 { SPREAD } else { 0 };
            *bank = Bank::new(config.fs(), spread, arena)?;
        }
        let ramp = config.ms_to_frames(RAMP_MS) as u32;
        let mut r = Reverb {
            banks,
            channels: config.channels,
            feedback: 0.0,
            damp1: 0.0,
            damp2: 1.0,
            mix: Ramp::new(p.mix, ramp),
            width: Ramp::new(p.width, ramp),
        };
        r.apply(p);
        Ok(r)
    }

    fn update(&mut self, p: &ReverbParams) {
        self.apply(p);
        self.mix.set(p.mix);
        self.width.set(p.width);
    }

    // Frames outside, channel pairs inside: each pair's banks read both channels per frame.
    #[allow(clippy::needless_range_loop)]
    fn process(&mut self, channels: &mut [&mut [f32]]) {
        let frames = channels.first().map_or(0, |c| c.len());
        let (fb, d1, d2) = (self.feedback, self.damp1, self.damp2);
        for i in 0..frames {
            let (mix, width) = (self.mix.next(), self.width.next());
            let dry = 1.0 - mix;
            let wet = mix * WET_GAIN;
            let wet1 = wet * (width / 2.0 + 0.5);
            let wet2 = wet * ((1.0 - width) / 2.0);
            let mut c = 0;
            while c + 1 < self.channels {
                let (l, r) = (channels[c][i], channels[c + 1][i]);
                let input = (l + r) * FIXED_GAIN;
                let (banks_l, banks_r) = self.banks.split_at_mut(c + 1);
                let ol = banks_l[c].run(input, fb, d1, d2);
                let or = banks_r[0].run(input, fb, d1, d2);
                channels[c][i] = l * dry + ol * wet1 + or * wet2;
                channels[c + 1][i] = r * dry + or * wet1 + ol * wet2;
                c += 2;
            }
            if c < self.channels {
                let x = channels[c][i];
                let o = self.banks[c].run(x * 2.0 * FIXED_GAIN, fb, d1, d2);
                channels[c][i] = x * dry + o * wet;
            }
        }
    }

    fn reset(&mut self, p: &ReverbParams) {
        self.banks.iter_mut().for_each(Bank::clear);
        self.apply(p);
        self.mix.snap(p.mix);
        self.width.snap(p.width);
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use sluice_effect_sdk::{
        Params,
        native::{Instance, memory, signal},
    };
    use std::{vec, vec::Vec};

    /// The stereo impulse response (mix 1) at `fs` for the given room and damping.
    fn impulse_response(fs: u32, room: f32, damping: f32, seconds: f32) -> Vec<Vec<f32>> {
        let mut mem = memory();
        let mut fx = Instance::<Reverb>::new(&mut mem, fs, 2, 4096).unwrap();
        fx.set("room_size", room)
            .set("damping", damping)
            .set("mix", 1.0)
            .reset();
        let n = (seconds * fs as f32) as usize;
        let mut out = vec![signal::impulse(n, 0, 1.0), signal::impulse(n, 0, 1.0)];
        fx.run(&mut out);
        out
    }

    /// T60 from the Schroeder backward-integrated energy decay between -5 and -35 dB (T30 × 2).
    fn t60(ir: &[Vec<f32>], fs: u32) -> f64 {
        let energy: Vec<f64> = (0..ir[0].len())
            .map(|n| ir.iter().map(|c| (c[n] as f64).powi(2)).sum())
            .collect();
        let mut edc = vec![0.0; energy.len()];
        let mut acc = 0.0;
        for n in (0..energy.len()).rev() {
            acc += energy[n];
            edc[n] = acc;
        }
        let db = |n: usize| 10.0 * (edc[n] / edc[0]).log10();
        let at = |level: f64| {
            (0..edc.len())
                .find(|&n| db(n) <= level)
                .expect("decays far enough")
        };
        2.0 * (at(-35.0) - at(-5.0)) as f64 / fs as f64
    }

    #[test]
    fn decay_time_follows_room_size_not_sample_rate() {
        let t = |room, fs| t60(&impulse_response(fs, room, 0.0, 6.0), fs);
        let (small, medium, large) = (t(0.2, 48_000), t(0.5, 48_000), t(0.8, 48_000));
        assert!(small < medium && medium < large, "{small} {medium} {large}");
        // Comb feedback g = 0.84 at room 0.5: −60 dB after ln(1e-3)/ln(g) passes of the
        // average comb (1378 samples at 44.1 kHz): about 1.24 s.
        let theory = (1e-3f64).ln() / (0.84f64).ln() * 1378.5 / 44_100.0;
        assert!((medium / theory - 1.0).abs() < 0.2, "{medium} vs {theory}");
        let at96 = t(0.5, 96_000);
        assert!(
            (at96 / medium - 1.0).abs() < 0.05,
            "48 kHz {medium}, 96 kHz {at96}"
        );
    }

    #[test]
    fn damping_darkens_the_tail() {
        // Share of the tail's energy in its first difference: a high-frequency measure.
        let brightness = |damping| {
            let ir = impulse_response(48_000, 0.7, damping, 1.0);
            let tail = &ir[0][14_400..];
            let diff: Vec<f32> = tail.windows(2).map(|w| w[1] - w[0]).collect();
            signal::rms(&diff) / signal::rms(tail)
        };
        let (bright, dark) = (brightness(0.0), brightness(1.0));
        assert!(dark < 0.5 * bright, "{bright} {dark}");
    }

    #[test]
    fn width_and_dry_mix() {
        let mut mem = memory();
        let l = signal::noise(1, 48_000, 0.5);
        let r = signal::sine(300.0, 48_000.0, 48_000, 0.5, 0.0);
        // mix 0: the input untouched.
        let mut fx = Instance::<Reverb>::new(&mut mem, 48_000, 2, 1024).unwrap();
        fx.set("mix", 0.0).reset();
        let mut out = vec![l.clone(), r.clone()];
        fx.run(&mut out);
        assert!(out == vec![l.clone(), r.clone()], "not transparent");
        // Width 0: both wet outputs the same; width 1: decorrelated.
        fx.set("mix", 1.0).set("width", 0.0).reset();
        let mut out = vec![l.clone(), r.clone()];
        fx.run(&mut out);
        assert!(out[0] == out[1], "channels differ");
        fx.set("width", 1.0).reset();
        let mut out = vec![l.clone(), r.clone()];
        fx.run(&mut out);
        let dot: f64 = out[0]
            .iter()
            .zip(&out[1])
            .map(|(a, b)| *a as f64 * *b as f64)
            .sum();
        let corr = dot / (signal::rms(&out[0]) * signal::rms(&out[1]) * out[0].len() as f64);
        assert!(corr.abs() < 0.5, "correlation {corr}");
    }

    #[test]
    fn odd_channels_and_tail_bound() {
        let fs = 8_000;
        let mut mem = memory();
        let mut fx = Instance::<Reverb>::new(&mut mem, fs, 3, 4096).unwrap();
        fx.set("room_size", 1.0)
            .set("damping", 0.0)
            .set("mix", 1.0)
            .reset();
        let tail = (ReverbParams::INFO.tail_seconds * fs as f32) as usize;
        let n = tail + fs as usize;
        let mut out = vec![signal::impulse(n, 0, 1.0); 3];
        fx.run(&mut out);
        for c in &out {
            let early = signal::peak(&c[..fs as usize]);
            assert!(early > 0.01);
            assert!(signal::db(signal::peak(&c[tail..]) / early) < -60.0);
        }
        // The mono third channel reverberates its own input only.
        let mut out = vec![
            vec![0.0; 8_000],
            vec![0.0; 8_000],
            signal::impulse(8_000, 0, 1.0),
        ];
        fx.reset();
        fx.run(&mut out);
        assert!(out[0].iter().chain(&out[1]).all(|&x| x == 0.0));
        assert!(signal::rms(&out[2]) > 0.0);
    }

    #[test]
    fn block_size_does_not_change_the_result() {
        let mut mem = memory();
        let input = vec![signal::noise(1, 20_000, 0.5), signal::noise(2, 20_000, 0.5)];
        let mut results = vec![];
        for blocks in [&[1024usize][..], &[1, 1000, 13]] {
            let mut fx = Instance::<Reverb>::new(&mut mem, 44_100, 2, 1024).unwrap();
            fx.set("mix", 0.6).set("width", 0.5);
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
