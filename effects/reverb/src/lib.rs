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

    /// Runs the bank over a block: `out` becomes the all-passes' output for `input`. The
    /// combs run four at a time over the whole block, their state in locals (four independent
    /// feedback loops per frame keep the pipeline busy; one at a time would wait on each
    /// loop's latency), then each all-pass over the block. Sums and products are those of
    /// running the filters one frame at a time, in the same order.
    fn run(&mut self, input: &[f32], out: &mut [f32], feedback: f32, damp1: f32, damp2: f32) {
        out.fill(0.0);
        for pair in self.combs.chunks_exact_mut(2) {
            let [c0, c1] = pair else {
                unreachable!("chunks of 2")
            };
            comb_pair(c0, c1, input, out, feedback, damp1, damp2);
        }
        for a in self.allpasses.iter_mut() {
            allpass(a, out);
        }
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

/// Frames per turn of the filter loops. A wasm runtime that bounds run time checks the clock
/// at the head of every loop, and the rarely taken call in that check makes its compiler keep
/// the filter state in memory rather than in registers across the loop; eight frames per turn
/// cut those checks and reloads eightfold.
const UNROLL: usize = 8;

/// Runs the statement `$frame` (with `$o: &mut f32` and `$x: f32` bound) over `$out` and
/// `$input`, [`UNROLL`] frames per loop turn. A macro rather than a closure: a closure that
/// the compiler does not inline everywhere puts the state it captures in memory.
macro_rules! unrolled {
    ($out:expr, $input:expr, |$o:ident, $x:ident| $frame:block) => {{
        let mut outs = $out.chunks_exact_mut(UNROLL);
        let mut ins = $input.chunks_exact(UNROLL);
        for (o, x) in (&mut outs).zip(&mut ins) {
            for k in 0..UNROLL {
                let ($o, $x) = (&mut o[k], x[k]);
                $frame
            }
        }
        for ($o, &$x) in outs.into_remainder().iter_mut().zip(ins.remainder()) {
            $frame
        }
    }};
}

/// One frame of a comb: returns its output and feeds `x` back in.
#[inline(always)]
fn comb_frame(
    buf: &mut [f32],
    idx: &mut usize,
    store: &mut f32,
    x: f32,
    feedback: f32,
    damp1: f32,
    damp2: f32,
) -> f32 {
    let y = buf[*idx];
    *store = flush(y * damp2 + *store * damp1);
    buf[*idx] = x + *store * feedback;
    *idx += 1;
    if *idx == buf.len() {
        *idx = 0;
    }
    y
}

/// Two combs over a block, their outputs added to `out`. Kept out of line: a small function
/// whose state fits in registers is what wasm compilers do well with.
#[inline(never)]
fn comb_pair(
    c0: &mut Comb,
    c1: &mut Comb,
    input: &[f32],
    out: &mut [f32],
    feedback: f32,
    damp1: f32,
    damp2: f32,
) {
    let (b0, b1) = (&mut *c0.buf, &mut *c1.buf);
    let (mut i0, mut i1) = (c0.idx, c1.idx);
    let (mut s0, mut s1) = (c0.store, c1.store);
    unrolled!(out, input, |o, x| {
        let y0 = comb_frame(b0, &mut i0, &mut s0, x, feedback, damp1, damp2);
        let y1 = comb_frame(b1, &mut i1, &mut s1, x, feedback, damp1, damp2);
        *o = *o + y0 + y1;
    });
    (c0.idx, c0.store, c1.idx, c1.store) = (i0, s0, i1, s1);
}

/// One all-pass over a block, in place.
#[inline(never)]
fn allpass(a: &mut Allpass, out: &mut [f32]) {
    let (buf, mut idx) = (&mut *a.buf, a.idx);
    let mut outs = out.chunks_exact_mut(UNROLL);
    for o in &mut outs {
        for v in o.iter_mut() {
            allpass_frame(buf, &mut idx, v);
        }
    }
    for v in outs.into_remainder() {
        allpass_frame(buf, &mut idx, v);
    }
    a.idx = idx;
}

#[inline(always)]
fn allpass_frame(buf: &mut [f32], idx: &mut usize, o: &mut f32) {
    let b = buf[*idx];
    buf[*idx] = flush(*o + b * 0.5);
    *idx += 1;
    if *idx == buf.len() {
        *idx = 0;
    }
    *o = b - *o;
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
    /// Per block: each pair's input, the two banks' outputs, the mix and width of each frame.
    scratch: [&'a mut [f32]; 5],
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
            scratch: arena.take_many(config.max_frames)?,
        };
        r.apply(p);
        Ok(r)
    }

    fn update(&mut self, p: &ReverbParams) {
        self.apply(p);
        self.mix.set(p.mix);
        self.width.set(p.width);
    }

    // Pair by pair, each bank over the whole block (see `Bank::run`).
    fn process(&mut self, channels: &mut [&mut [f32]]) {
        let frames = channels.first().map_or(0, |c| c.len());
        let (fb, d1, d2) = (self.feedback, self.damp1, self.damp2);
        let [input, out_a, out_b, mixes, widths] = &mut self.scratch;
        let (input, out_a, out_b) = (
            &mut input[..frames],
            &mut out_a[..frames],
            &mut out_b[..frames],
        );
        let (mixes, widths) = (&mut mixes[..frames], &mut widths[..frames]);
        for (m, w) in mixes.iter_mut().zip(widths.iter_mut()) {
            (*m, *w) = (self.mix.next(), self.width.next());
        }
        let mut c = 0;
        while c + 1 < self.channels {
            let (left, right) = channels[c..].split_at_mut(1);
            let (l, r) = (&mut *left[0], &mut *right[0]);
            for ((x, a), b) in input.iter_mut().zip(l.iter()).zip(r.iter()) {
                *x = (a + b) * FIXED_GAIN;
            }
            let (banks_l, banks_r) = self.banks.split_at_mut(c + 1);
            banks_l[c].run(input, out_a, fb, d1, d2);
            banks_r[0].run(input, out_b, fb, d1, d2);
            let wets = out_a.iter().zip(out_b.iter());
            let ramps = mixes.iter().zip(widths.iter());
            for (((l, r), (&ol, &or)), (&mix, &width)) in l.iter_mut().zip(r).zip(wets).zip(ramps) {
                let dry = 1.0 - mix;
                let wet = mix * WET_GAIN;
                let wet1 = wet * (width / 2.0 + 0.5);
                let wet2 = wet * ((1.0 - width) / 2.0);
                *l = *l * dry + ol * wet1 + or * wet2;
                *r = *r * dry + or * wet1 + ol * wet2;
            }
            c += 2;
        }
        if c < self.channels {
            let x = &mut *channels[c];
            for (i, s) in input.iter_mut().zip(x.iter()) {
                *i = s * 2.0 * FIXED_GAIN;
            }
            self.banks[c].run(input, out_a, fb, d1, d2);
            for ((s, o), m) in x.iter_mut().zip(out_a.iter()).zip(mixes.iter()) {
                *s = *s * (1.0 - m) + o * (m * WET_GAIN);
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
