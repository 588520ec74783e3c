//! `delay`: a feedback delay of up to 2 s per channel.
//!
//! Each channel has its own line (taken from the arena at init: 2 s at the sample rate, per
//! channel). The delay is a whole number of frames (`time_ms` rounded); when it changes, the
//! output crossfades from the old tap to the new one over 50 ms (no pitch glide, no click).
//! Feedback and mix ramp over 20 ms. Output = input × (1 − mix) + delayed × mix; the line is
//! fed input + delayed × feedback.
#![no_std]

use sluice_effect_sdk::{
    Arena, Config, Effect, InitError,
    dsp::{Ramp, flush},
    effect, libm,
};

effect! {
    /// Parameters of `delay`.
    pub struct DelayParams for Delay {
        name: "delay",
        version: "1.0.0",
        description: "Feedback delay up to 2 s per channel; time changes crossfade between taps over 50 ms, feedback and mix ramp over 20 ms. The tail bound is where echoes of 2 s at feedback 0.9 are 60 dB down.",
        tail_seconds: 134.0,
        max_channels: 8,
    }
    params {
        time_ms: { name: "Time", unit: "ms", min: 1.0, max: 2000.0, default: 250.0 },
        feedback: { name: "Feedback", unit: "", min: 0.0, max: 0.9, default: 0.35 },
        mix: { name: "Mix", unit: "", min: 0.0, max: 1.0, default: 0.3 },
    }
}

/// The longest delay.
pub const MAX_SECONDS: f32 = 2.0;
const CROSSFADE_MS: f32 = 50.0;
const RAMP_MS: f32 = 20.0;

/// Delay lines and taps.
pub struct Delay<'a> {
    config: Config,
    lines: [&'a mut [f32]; 8],
    len: usize,
    write: usize,
    /// The tap in use, and the one being faded to (equal when no fade runs).
    tap: usize,
    next_tap: usize,
    target_tap: usize,
    fade: u32,
    fade_frames: u32,
    feedback: Ramp,
    mix: Ramp,
}

impl Delay<'_> {
    fn frames(&self, ms: f32) -> usize {
        self.config.ms_to_frames(ms).clamp(1, self.len - 1)
    }

    fn read(&self, ch: usize, tap: usize) -> f32 {
        self.lines[ch][(self.write + self.len - tap) % self.len]
    }
}

impl<'a> Effect<'a> for Delay<'a> {
    type Params = DelayParams;

    fn new(config: &Config, p: &DelayParams, arena: &mut Arena<'a>) -> Result<Self, InitError> {
        let len = libm::ceilf(MAX_SECONDS * config.fs()) as usize + 1;
        let mut lines: [&'a mut [f32]; 8] = Default::default();
        for line in lines.iter_mut().take(config.channels) {
            *line = arena.take(len)?;
        }
        let ramp = config.ms_to_frames(RAMP_MS) as u32;
        let mut d = Delay {
            config: *config,
            lines,
            len,
            write: 0,
            tap: 1,
            next_tap: 1,
            target_tap: 1,
            fade: 0,
            fade_frames: config.ms_to_frames(CROSSFADE_MS).max(1) as u32,
            feedback: Ramp::new(p.feedback, ramp),
            mix: Ramp::new(p.mix, ramp),
        };
        d.reset(p);
        Ok(d)
    }

    fn update(&mut self, p: &DelayParams) {
        self.target_tap = self.frames(p.time_ms);
        self.feedback.set(p.feedback);
        self.mix.set(p.mix);
    }

    fn process(&mut self, channels: &mut [&mut [f32]]) {
        let frames = channels.first().map_or(0, |c| c.len());
        // Steady (no crossfade due or running, feedback and mix settled: the usual case): each
        // channel in runs where neither the write nor the read position wraps, without the
        // per-frame checks. The same numbers as the frame-by-frame path below.
        if self.fade == 0
            && self.target_tap == self.tap
            && !self.feedback.is_active()
            && !self.mix.is_active()
        {
            let (fb, mix) = (self.feedback.value(), self.mix.value());
            let dry = 1.0 - mix;
            let len = self.len;
            let mut i = 0;
            while i < frames {
                let write = self.write;
                let read = (write + len - self.tap) % len;
                // A run where the read and write ranges neither wrap nor overlap (at most
                // `tap` frames, and at most `len - tap`): what this frame reads was written
                // before the run, as frame by frame.
                let n = (frames - i)
                    .min(len - write)
                    .min(len - read)
                    .min(self.tap)
                    .min(len - self.tap);
                for (c, ch) in channels.iter_mut().enumerate() {
                    let line = &mut *self.lines[c];
                    let (src, dst): (&[f32], &mut [f32]) = if read < write {
                        let (lo, hi) = line.split_at_mut(write);
                        (&lo[read..read + n], &mut hi[..n])
                    } else {
                        let (lo, hi) = line.split_at_mut(read);
                        (&hi[..n], &mut lo[write..write + n])
                    };
                    for ((y, &w), d) in ch[i..i + n].iter_mut().zip(src).zip(dst.iter_mut()) {
                        let x = *y;
                        *y = x * dry + w * mix;
                        *d = flush(x + w * fb);
                    }
                }
                i += n;
                self.write = (write + n) % len;
            }
            return;
        }
        for i in 0..frames {
            if self.fade == 0 && self.target_tap != self.tap {
                self.next_tap = self.target_tap;
                self.fade = 1;
            }
            let t = self.fade as f32 / (self.fade_frames + 1) as f32;
            let (fb, mix) = (self.feedback.next(), self.mix.next());
            for (c, ch) in channels.iter_mut().enumerate() {
                let mut w = self.read(c, self.tap);
                if self.fade > 0 {
                    w += (self.read(c, self.next_tap) - w) * t;
                }
                let x = ch[i];
                ch[i] = x * (1.0 - mix) + w * mix;
                self.lines[c][self.write] = flush(x + w * fb);
            }
            if self.fade > 0 {
                self.fade += 1;
                if self.fade > self.fade_frames {
                    self.fade = 0;
                    self.tap = self.next_tap;
                }
            }
            self.write = (self.write + 1) % self.len;
        }
    }

    fn reset(&mut self, p: &DelayParams) {
        for line in self.lines.iter_mut() {
            line.fill(0.0);
        }
        self.write = 0;
        self.tap = self.frames(p.time_ms);
        self.next_tap = self.tap;
        self.target_tap = self.tap;
        self.fade = 0;
        self.feedback.snap(p.feedback);
        self.mix.snap(p.mix);
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use sluice_effect_sdk::{
        abi,
        native::{Instance, memory, signal},
    };
    use std::{vec, vec::Vec};

    #[test]
    fn impulse_gives_echoes_at_the_delay_decaying_by_the_feedback() {
        let mut mem = memory();
        let mut fx = Instance::<Delay>::new(&mut mem, 48_000, 2, 1000).unwrap();
        fx.set("time_ms", 250.0)
            .set("feedback", 0.5)
            .set("mix", 0.4)
            .reset();
        let mut out = vec![signal::impulse(60_000, 0, 1.0), vec![0.0; 60_000]];
        fx.run(&mut out);
        let d = 12_000;
        for (n, &y) in out[0].iter().enumerate() {
            let expect = match n {
                0 => 0.6,
                n if n % d == 0 => 0.4 * 0.5f32.powi((n / d - 1) as i32),
                _ => 0.0,
            };
            assert!((y - expect).abs() < 1e-6, "frame {n}: {y} vs {expect}");
        }
        assert!(out[1].iter().all(|&y| y == 0.0), "channels are independent");
    }

    #[test]
    fn time_changes_crossfade_without_clicks() {
        let mut mem = memory();
        let mut fx = Instance::<Delay>::new(&mut mem, 48_000, 1, 512).unwrap();
        fx.set("mix", 1.0)
            .set("feedback", 0.0)
            .set("time_ms", 100.0)
            .reset();
        let tone = signal::sine(220.0, 48_000.0, 96_000, 0.5, 0.0);
        let mut a = vec![tone[..48_000].to_vec()];
        fx.run(&mut a);
        fx.set("time_ms", 250.0);
        let mut b = vec![tone[48_000..].to_vec()];
        fx.run(&mut b);
        let y: Vec<f32> = a[0].iter().chain(&b[0]).copied().collect();
        // A 220 Hz sine of 0.5 moves at most 2π·220·0.5/48000 ≈ 0.0144 per frame.
        let step = y[10_000..]
            .windows(2)
            .map(|w| (w[1] - w[0]).abs())
            .fold(0.0, f32::max);
        assert!(step < 0.03, "largest step {step}");
        // After the fade the output is the input 250 ms (12 000 frames) earlier.
        for n in 60_000..96_000 {
            assert!((y[n] - tone[n - 12_000]).abs() < 1e-6);
        }
    }

    #[test]
    fn memory_comes_from_the_arena_by_rate_and_channels() {
        let mut small = vec![0.0f32; 96_000];
        let e = Instance::<Delay>::new(&mut small, 48_000, 1, 256).err();
        assert_eq!(e.map(|e| e.code()), Some(abi::ERR_MEMORY));
        let mut mem = memory();
        let mut fx = Instance::<Delay>::new(&mut mem, 768_000, 8, 4096).unwrap();
        fx.set("time_ms", 2000.0).reset();
        let mut out = vec![signal::impulse(1_536_001, 0, 1.0); 8];
        fx.run(&mut out);
        assert!((out[7][1_536_000] - 0.3).abs() < 1e-6);
    }

    #[test]
    fn tail_is_within_the_declared_bound() {
        let mut mem = memory();
        let fs = 8_000;
        let mut fx = Instance::<Delay>::new(&mut mem, fs, 1, 4096).unwrap();
        fx.set("time_ms", 2000.0)
            .set("feedback", 0.9)
            .set("mix", 1.0)
            .reset();
        let tail =
            (<DelayParams as sluice_effect_sdk::Params>::INFO.tail_seconds * fs as f32) as usize;
        let mut out = vec![signal::impulse(tail + 2 * fs as usize + 1, 0, 1.0)];
        fx.run(&mut out);
        let first = signal::peak(&out[0][..20_000]);
        let last = signal::peak(&out[0][tail..]);
        assert!(
            signal::db(last / first) < -60.0,
            "{}",
            signal::db(last / first)
        );
    }

    #[test]
    fn block_size_does_not_change_the_result() {
        let mut mem = memory();
        let input = vec![signal::noise(1, 30_000, 0.5), signal::noise(2, 30_000, 0.5)];
        let mut results = vec![];
        for blocks in [&[512usize][..], &[1, 2, 500, 77]] {
            let mut fx = Instance::<Delay>::new(&mut mem, 48_000, 2, 512).unwrap();
            fx.set("time_ms", 10.0).set("feedback", 0.8);
            let mut out = input.clone();
            fx.run_blocks(&mut out, blocks);
            fx.set("time_ms", 3.0).set("mix", 0.9);
            let mut more = input.clone();
            fx.run_blocks(&mut more, blocks);
            out.extend(more);
            results.push(out);
        }
        assert!(
            results[0] == results[1],
            "the result depends on the block size"
        );
    }
}
