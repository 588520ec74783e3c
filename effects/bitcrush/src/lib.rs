//! `bitcrush`: fewer levels and (optionally) fewer samples. Each sample is rounded to the
//! nearest multiple of `2^-bit_depth`, ties to even (`rint(x·2^b)/2^b`, fractional depths
//! allowed, as Pedalboard's `Bitcrush`); `downsample` N > 1 then holds every Nth sample for N frames
//! (sample-and-hold, no filter: the lo-fi aliasing is the point).
#![no_std]

use sluice_effect_sdk::{Arena, Config, Effect, InitError, effect, libm};

/// The most channels (the hold keeps one sample per channel).
const MAX_CHANNELS: usize = 32;

effect! {
    /// Parameters of `bitcrush`.
    pub struct BitcrushParams for Bitcrush {
        name: "bitcrush",
        version: "1.0.0",
        description: "Bit-depth reduction: each sample rounded to the nearest multiple of 2^-bit_depth, ties to even (fractional depths allowed, as Pedalboard's Bitcrush); downsample N > 1 holds every Nth sample for N frames.",
        tail_seconds: 0.0,
        max_channels: 32,
    }
    params {
        bit_depth: { name: "Bit depth", unit: "bits", min: 1.0, max: 32.0, default: 8.0 },
        downsample: { name: "Downsample", unit: "x", min: 1.0, max: 64.0, default: 1.0 },
    }
}

/// The scale, the hold's period and where it stands, and each channel's held sample.
pub struct Bitcrush {
    scale: f32,
    period: u32,
    phase: u32,
    held: [f32; MAX_CHANNELS],
}

impl Bitcrush {
    fn set(&mut self, p: &BitcrushParams) {
        self.scale = libm::exp2f(p.bit_depth);
        self.period = (p.downsample as u32).max(1);
    }

    #[inline]
    fn crush(&self, x: f32) -> f32 {
        rint(x * self.scale) / self.scale
    }
}

/// `v` rounded to the nearest whole number, ties to even (as `rintf`), without a call or a
/// branch, so that a loop of it vectorises: adding and taking away 2^23 (with `v`'s sign)
/// leaves no fraction, and IEEE addition rounds ties to even. From 2^23 up every `f32` is
/// whole already.
#[inline(always)]
pub fn rint(v: f32) -> f32 {
    let m = f32::from_bits(0x4B00_0000 | (v.to_bits() & 0x8000_0000));
    let r = (v + m) - m;
    if v.abs() < 8_388_608.0 { r } else { v }
}

impl<'a> Effect<'a> for Bitcrush {
    type Params = BitcrushParams;

    fn new(_: &Config, params: &BitcrushParams, _: &mut Arena<'a>) -> Result<Self, InitError> {
        let mut fx = Bitcrush {
            scale: 256.0,
            period: 1,
            phase: 0,
            held: [0.0; MAX_CHANNELS],
        };
        fx.set(params);
        Ok(fx)
    }

    fn update(&mut self, params: &BitcrushParams) {
        self.set(params);
        if self.phase >= self.period {
            self.phase = 0;
        }
    }

    fn process(&mut self, channels: &mut [&mut [f32]]) {
        if self.period == 1 {
            for c in channels.iter_mut() {
                for x in c.iter_mut() {
                    *x = self.crush(*x);
                }
            }
            return;
        }
        let frames = channels.first().map_or(0, |c| c.len());
        for i in 0..frames {
            let take = self.phase == 0;
            for (k, c) in channels.iter_mut().enumerate() {
                if take {
                    self.held[k] = self.crush(c[i]);
                }
                c[i] = self.held[k];
            }
            self.phase += 1;
            if self.phase == self.period {
                self.phase = 0;
            }
        }
    }

    fn reset(&mut self, params: &BitcrushParams) {
        self.set(params);
        self.phase = 0;
        self.held = [0.0; MAX_CHANNELS];
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use sluice_effect_sdk::native::{Instance, memory, signal};
    use std::{collections::BTreeSet, vec, vec::Vec};

    #[test]
    fn rint_rounds_ties_to_even_everywhere() {
        for v in [
            0.5f32,
            1.5,
            2.5,
            -0.5,
            -1.5,
            -2.5,
            0.49999997,
            4_194_304.5,
            4_194_305.5,
            8_388_607.5,
            -8_388_607.5,
            8_388_609.0,
            1e30,
            -1e30,
            0.0,
            -0.0,
            123.456,
            -123.456,
        ] {
            assert_eq!(rint(v), libm::rintf(v), "{v}");
        }
        let mut s = 1u32;
        for _ in 0..1_000_000 {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            let v = f32::from_bits(s);
            if v.is_finite() {
                assert_eq!(rint(v), libm::rintf(v), "{v}");
            }
        }
        assert!(rint(f32::NAN).is_nan());
    }

    #[test]
    fn samples_are_rounded_to_the_bit_depth() {
        let mut mem = memory();
        for bits in [1.0f32, 3.5, 8.0, 16.0] {
            let mut fx = Instance::<Bitcrush>::new(&mut mem, 48_000, 1, 512).unwrap();
            fx.set("bit_depth", bits);
            let input = vec![signal::noise(9, 10_000, 0.9)];
            let mut out = input.clone();
            fx.run(&mut out);
            let scale = libm::exp2f(bits);
            for (&x, &y) in input[0].iter().zip(&out[0]) {
                assert_eq!(y, libm::rintf(x * scale) / scale);
                assert!((y - x).abs() <= 0.5 / scale + 1e-7);
            }
            let levels: BTreeSet<i64> = out[0].iter().map(|&y| (y * scale) as i64).collect();
            let most = 2.0 * libm::roundf(0.9 * scale) + 1.0;
            assert!(levels.len() as f32 <= most, "{bits}: {}", levels.len());
        }
    }

    #[test]
    fn downsampling_holds_each_nth_sample_across_blocks() {
        let mut mem = memory();
        let input: Vec<Vec<f32>> = vec![signal::noise(2, 3_000, 0.5), signal::noise(3, 3_000, 0.5)];
        let mut whole = input.clone();
        let mut fx = Instance::<Bitcrush>::new(&mut mem, 48_000, 2, 512).unwrap();
        fx.set("bit_depth", 32.0).set("downsample", 7.0);
        fx.run(&mut whole);
        let scale = libm::exp2f(32.0);
        for (i, o) in input.iter().zip(&whole) {
            for (n, &y) in o.iter().enumerate() {
                assert_eq!(y, libm::rintf(i[n - n % 7] * scale) / scale, "frame {n}");
            }
        }
        let mut split = input.clone();
        let mut fx = Instance::<Bitcrush>::new(&mut mem, 48_000, 2, 512).unwrap();
        fx.set("bit_depth", 32.0).set("downsample", 7.0);
        fx.run_blocks(&mut split, &[5, 64, 3, 500, 1]);
        assert!(split == whole, "the hold does not depend on the blocks");
    }
}
