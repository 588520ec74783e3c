//! `gate`: a noise gate with hold and range, or a downward expander with a ratio.
//!
//! `mode = "gate"` (the default): the key is the largest magnitude over all channels
//! (stereo-linked). The gate opens in the frame the key reaches the threshold, stays open while
//! it does and for `hold_ms` after it last did, then closes. Its gain moves linearly in dB: from
//! `range_db` up to 0 dB in `attack_ms` when opening, from 0 dB down to `range_db` in
//! `release_ms` when closing (a partial move takes the proportional time).
//!
//! `mode = "expander"`: each channel's level is an RMS detector (instant rise, 50 ms fall)
//! followed by a peak envelope that rises with `attack_ms` and falls with `release_ms` (one-pole
//! ballistics, coefficient `exp(-2π·1000 / (fs·ms))`, none under 1 µs). Below the threshold the
//! gain is `(level / threshold)^(ratio − 1)` — every dB under the threshold becomes `ratio` dB
//! under it — floored at `range_db`; at or above it the gain is 1. `link = "linked"` keys every
//! channel from the loudest channel's level; `"independent"` gives each channel its own gain.
//! With `link = "independent"` and `range_db = -96` this is Pedalboard's (JUCE's) `NoiseGate`
//! (equal within 1e-4, host/tests/pedalboard.rs). `hold_ms` applies only to the gate.
#![no_std]

use sluice_effect_sdk::{
    Arena, Config, Effect, InitError,
    dsp::{db_to_gain, fast_exp2, fast_log2, fast_sqrt, flush, max, min},
    effect, libm,
};

/// The most channels the expander keeps levels for (the descriptor's `max_channels`).
const MAX_CHANNELS: usize = 32;
/// The expander's RMS detector's fall time.
const RMS_RELEASE_MS: f32 = 50.0;

effect! {
    /// Parameters of `gate`.
    pub struct GateParams for Gate {
        name: "gate",
        version: "1.0.0",
        description: "Noise gate (stereo-linked peak key, hold, attack/release as linear-in-dB moves between 0 dB and the range) or downward expander (RMS level, ratio, linked or per channel).",
        tail_seconds: 0.0,
        max_channels: 32,
    }
    params {
        threshold_db: { name: "Threshold", unit: "dB", min: -96.0, max: 0.0, default: -50.0 },
        attack_ms: { name: "Attack", unit: "ms", min: 0.0, max: 500.0, default: 1.0 },
        hold_ms: { name: "Hold", unit: "ms", min: 0.0, max: 5000.0, default: 50.0 },
        release_ms: { name: "Release", unit: "ms", min: 1.0, max: 5000.0, default: 100.0 },
        range_db: { name: "Range", unit: "dB", min: -96.0, max: 0.0, default: -80.0 },
        mode: { name: "Mode", choices: ["gate", "expander"], default: "gate" },
        ratio: { name: "Ratio", unit: "", min: 1.0, max: 100.0, default: 10.0 },
        link: { name: "Link", choices: ["linked", "independent"], default: "linked" },
    }
}

/// Gate state.
pub struct Gate {
    config: Config,
    threshold: f32,
    range_db: f32,
    /// dB per frame while opening / closing.
    up: f32,
    down: f32,
    hold: u32,
    hold_left: u32,
    gain_db: f32,
    /// The last gain below 0 dB and its linear value (not worked out again while it holds).
    last_db: f32,
    last_gain: f32,
    expander: Expander,
}

/// The expander's settings and per-channel detector state.
struct Expander {
    on: bool,
    linked: bool,
    threshold: f32,
    threshold_inv: f32,
    /// `ratio - 1`.
    exponent: f32,
    floor: f32,
    /// Ballistic coefficients: the RMS detector's fall, the envelope's rise and fall.
    rms_fall: f32,
    rise: f32,
    fall: f32,
    /// Mean square and envelope per channel.
    ms: [f32; MAX_CHANNELS],
    env: [f32; MAX_CHANNELS],
}

/// A one-pole ballistic coefficient for `ms` milliseconds at `fs` (0, an instant move, under 1 µs).
fn ballistic(ms: f32, fs: f32) -> f32 {
    if ms < 1.0e-3 {
        0.0
    } else {
        libm::exp(-2.0 * core::f64::consts::PI * 1000.0 / f64::from(fs) / f64::from(ms)) as f32
    }
}

impl Expander {
    fn apply(&mut self, p: &GateParams, fs: f32) {
        self.on = p.mode == 1;
        self.linked = p.link == 0;
        self.threshold = db_to_gain(p.threshold_db);
        self.threshold_inv = 1.0 / self.threshold;
        self.exponent = p.ratio - 1.0;
        self.floor = if p.range_db <= -96.0 {
            0.0
        } else {
            db_to_gain(p.range_db)
        };
        self.rms_fall = ballistic(RMS_RELEASE_MS, fs);
        self.rise = ballistic(p.attack_ms, fs);
        self.fall = ballistic(p.release_ms, fs);
    }

    /// The levels of channels `c` and `c + 1` after each sample of `a` and `b`, into `la` and
    /// `lb` (two detectors at once: each is a chain of dependent operations, and two chains
    /// side by side keep the processor busy). The state stays in registers over the chunk and
    /// is flushed to zero under 1e-20 at its end (over one chunk it falls by at most 10^4, so it
    /// never reaches subnormal numbers, slow without flush-to-zero in wasm). With `b` empty,
    /// channel `c` alone.
    fn levels(&mut self, c: usize, a: &[f32], b: &[f32], la: &mut [f32], lb: &mut [f32]) {
        let (rms_fall, rise, fall) = (self.rms_fall, self.rise, self.fall);
        let step = |ms: &mut f32, env: &mut f32, x: f32| {
            let sq = x * x;
            let k = if sq > *ms { 0.0 } else { rms_fall };
            *ms = sq + k * (*ms - sq);
            let e = fast_sqrt(*ms);
            let k = if e > *env { rise } else { fall };
            *env = e + k * (*env - e);
            *env
        };
        let (mut ms_a, mut env_a) = (self.ms[c], self.env[c]);
        if b.is_empty() {
            for (o, &x) in la.iter_mut().zip(a) {
                *o = step(&mut ms_a, &mut env_a, x);
            }
        } else {
            let (mut ms_b, mut env_b) = (self.ms[c + 1], self.env[c + 1]);
            for (((oa, ob), &xa), &xb) in la.iter_mut().zip(lb.iter_mut()).zip(a).zip(b) {
                *oa = step(&mut ms_a, &mut env_a, xa);
                *ob = step(&mut ms_b, &mut env_b, xb);
            }
            self.ms[c + 1] = flush(ms_b);
            self.env[c + 1] = flush(env_b);
        }
        self.ms[c] = flush(ms_a);
        self.env[c] = flush(env_a);
    }

    /// The gains for `levels` (a chunk's), in place: 1 above the threshold, else
    /// `(level / threshold)^(ratio − 1)` no lower than the floor. Branch-free over the chunk
    /// (`2^(e·log2 x)`, within 2e-5 relative of `powf`), so that it vectorises.
    /// Returns `false`, leaving `levels` as they are, when every level is above the threshold
    /// (all gains 1: nothing to apply).
    fn gains(&self, levels: &mut [f32]) -> bool {
        let (threshold, inv, exponent, floor) = (
            self.threshold,
            self.threshold_inv,
            self.exponent,
            self.floor,
        );
        if levels.iter().all(|&l| l > threshold) {
            return false;
        }
        for l in levels.iter_mut() {
            let g = max(fast_exp2(exponent * fast_log2(*l * inv)), floor);
            *l = if *l > threshold { 1.0 } else { g };
        }
        true
    }

    fn process(&mut self, channels: &mut [&mut [f32]]) {
        const CHUNK: usize = 64;
        let frames = channels.first().map_or(0, |c| c.len());
        let n = channels.len().min(MAX_CHANNELS);
        let mut at = 0;
        while at < frames {
            let len = CHUNK.min(frames - at);
            let mut levels = [0.0f32; CHUNK];
            let mut other = [0.0f32; CHUNK];
            if self.linked {
                let mut loudest = [0.0f32; CHUNK];
                for c in (0..n).step_by(2) {
                    let b: &[f32] = if c + 1 < n {
                        &channels[c + 1][at..at + len]
                    } else {
                        &[]
                    };
                    self.levels(
                        c,
                        &channels[c][at..at + len],
                        b,
                        &mut levels[..len],
                        &mut other[..len],
                    );
                    let pair = if b.is_empty() { &levels } else { &other };
                    for ((l, a), b) in loudest[..len]
                        .iter_mut()
                        .zip(&levels[..len])
                        .zip(&pair[..len])
                    {
                        *l = max(*l, max(*a, *b));
                    }
                }
                if self.gains(&mut loudest[..len]) {
                    for chan in channels[..n].iter_mut() {
                        for (x, g) in chan[at..at + len].iter_mut().zip(&loudest[..len]) {
                            *x *= g;
                        }
                    }
                }
            } else {
                for c in (0..n).step_by(2) {
                    let (head, tail) = channels[..n].split_at_mut(c + 1);
                    let a = &mut head[c][at..at + len];
                    let b: &mut [f32] = match tail.first_mut() {
                        Some(t) => &mut t[at..at + len],
                        None => &mut [],
                    };
                    self.levels(c, a, b, &mut levels[..len], &mut other[..len]);
                    if self.gains(&mut levels[..len]) {
                        for (x, g) in a.iter_mut().zip(&levels[..len]) {
                            *x *= g;
                        }
                    }
                    if !b.is_empty() && self.gains(&mut other[..len]) {
                        for (x, g) in b.iter_mut().zip(&other[..len]) {
                            *x *= g;
                        }
                    }
                }
            }
            at += len;
        }
    }

    fn clear(&mut self) {
        self.ms = [0.0; MAX_CHANNELS];
        self.env = [0.0; MAX_CHANNELS];
    }
}

impl Gate {
    fn apply(&mut self, p: &GateParams) {
        self.threshold = db_to_gain(p.threshold_db);
        self.range_db = p.range_db;
        let span = -p.range_db;
        let rate = |ms: f32| {
            let frames = ms * 0.001 * self.config.fs();
            if frames < 1.0 {
                f32::INFINITY
            } else {
                span / frames
            }
        };
        self.up = rate(p.attack_ms);
        self.down = rate(p.release_ms);
        self.hold = self.config.ms_to_frames(p.hold_ms) as u32;
        self.gain_db = self.gain_db.max(self.range_db);
        self.expander.apply(p, self.config.fs());
    }
}

impl<'a> Effect<'a> for Gate {
    type Params = GateParams;

    fn new(config: &Config, p: &GateParams, _: &mut Arena<'a>) -> Result<Self, InitError> {
        let mut g = Gate {
            config: *config,
            threshold: 0.0,
            range_db: 0.0,
            up: 0.0,
            down: 0.0,
            hold: 0,
            hold_left: 0,
            gain_db: 0.0,
            last_db: f32::NAN,
            last_gain: 1.0,
            expander: Expander {
                on: false,
                linked: true,
                threshold: 1.0,
                threshold_inv: 1.0,
                exponent: 0.0,
                floor: 0.0,
                rms_fall: 0.0,
                rise: 0.0,
                fall: 0.0,
                ms: [0.0; MAX_CHANNELS],
                env: [0.0; MAX_CHANNELS],
            },
        };
        g.reset(p);
        Ok(g)
    }

    fn update(&mut self, p: &GateParams) {
        self.apply(p);
    }

    fn process(&mut self, channels: &mut [&mut [f32]]) {
        if self.expander.on {
            self.expander.process(channels);
            return;
        }
        // In chunks, each in passes the compiler vectorises where it can: the key (the largest
        // magnitude across channels) per frame, the gate's state per frame into a gain, then the
        // gains applied channel by channel. Frame for frame the same numbers as one pass.
        const CHUNK: usize = 64;
        let frames = channels.first().map_or(0, |c| c.len());
        let mut at = 0;
        while at < frames {
            let n = CHUNK.min(frames - at);
            let mut key = [0.0f32; CHUNK];
            for c in channels.iter() {
                for (k, x) in key[..n].iter_mut().zip(&c[at..at + n]) {
                    *k = max(x.abs(), *k);
                }
            }
            let mut gain = [1.0f32; CHUNK];
            let mut any = false;
            for (g, &k) in gain[..n].iter_mut().zip(&key[..n]) {
                let open = if k >= self.threshold {
                    self.hold_left = self.hold;
                    true
                } else if self.hold_left > 0 {
                    self.hold_left -= 1;
                    true
                } else {
                    false
                };
                self.gain_db = if open {
                    min(self.gain_db + self.up, 0.0)
                } else {
                    max(self.gain_db - self.down, self.range_db)
                };
                if self.gain_db < 0.0 {
                    // Held at the range while closed: the gain of the last frame again.
                    if self.gain_db != self.last_db {
                        self.last_db = self.gain_db;
                        self.last_gain = db_to_gain(self.gain_db);
                    }
                    *g = self.last_gain;
                    any = true;
                }
            }
            if any {
                for c in channels.iter_mut() {
                    for (x, g) in c[at..at + n].iter_mut().zip(&gain[..n]) {
                        *x *= g;
                    }
                }
            }
            at += n;
        }
    }

    fn reset(&mut self, p: &GateParams) {
        // A fresh gate is closed: audio before the first loud frame is attenuated.
        self.gain_db = p.range_db;
        self.hold_left = 0;
        self.expander.clear();
        self.apply(p);
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use sluice_effect_sdk::native::{Instance, memory, signal};
    use std::{vec, vec::Vec};

    const FS: usize = 48_000;

    /// Noise at -70 dBFS with a 1 kHz tone at -20 dBFS from 0.2 s to 0.5 s.
    fn burst() -> (Vec<f32>, Vec<f32>) {
        let noise = signal::noise(5, FS, 10f64.powf(-70.0 / 20.0));
        let tone = signal::sine(1_000.0, FS as f64, FS, 0.1, 0.0);
        let x: Vec<f32> = (0..FS)
            .map(|n| {
                noise[n]
                    + if (9_600..24_000).contains(&n) {
                        tone[n]
                    } else {
                        0.0
                    }
            })
            .collect();
        (x, noise)
    }

    /// The gain applied at frame n.
    fn gain_db(out: &[f32], input: &[f32], n: usize) -> f64 {
        signal::db((out[n] / input[n]) as f64)
    }

    #[test]
    fn opens_on_the_burst_and_attenuates_noise_by_the_range() {
        let mut mem = memory();
        let mut fx = Instance::<Gate>::new(&mut mem, FS as u32, 2, 512).unwrap();
        fx.set("threshold_db", -40.0).set("range_db", -40.0).reset();
        let (x, noise) = burst();
        let mut out = vec![x.clone(), noise.clone()];
        fx.run(&mut out);
        // Before the burst: noise 40 dB down (both channels, linked).
        assert!(
            (signal::db(signal::rms(&out[1][1_000..9_000]) / signal::rms(&noise[1_000..9_000]))
                + 40.0)
                .abs()
                < 0.01
        );
        // During it (after the 1 ms attack): untouched.
        assert_eq!(&out[0][10_000..24_000], &x[10_000..24_000]);
        // Well after it (hold 50 ms + release 100 ms): 40 dB down again.
        assert!(
            (signal::db(signal::rms(&out[0][32_000..]) / signal::rms(&x[32_000..])) + 40.0).abs()
                < 0.01
        );
    }

    #[test]
    fn attack_hold_and_release_timing() {
        let mut mem = memory();
        let mut fx = Instance::<Gate>::new(&mut mem, FS as u32, 1, 512).unwrap();
        fx.set("threshold_db", -30.0).set("range_db", -60.0);
        fx.set("attack_ms", 2.0)
            .set("hold_ms", 20.0)
            .set("release_ms", 50.0)
            .reset();
        // DC keeps the key steady: 0.01 (-40 dB, closed), 0.5 from frame 1000 to 5000.
        let x: Vec<f32> = (0..20_000)
            .map(|n| {
                if (1_000..5_000).contains(&n) {
                    0.5
                } else {
                    0.01
                }
            })
            .collect();
        let mut out = vec![x.clone()];
        fx.run(&mut out);
        let g = |n| gain_db(&out[0], &x, n);
        assert!((g(999) + 60.0).abs() < 1e-3);
        // Opening: 60 dB in 2 ms = 96 frames, linearly in dB.
        assert!((g(1_000) + 60.0 - 60.0 / 96.0).abs() < 1e-3, "{}", g(1_000));
        assert!((g(1_047) + 30.0).abs() < 1e-3, "{}", g(1_047));
        assert_eq!(g(1_095), 0.0);
        // Held for 20 ms (960 frames) after the last loud frame 4999, then 60 dB in 50 ms.
        assert_eq!(g(4_999 + 960), 0.0);
        assert!(
            (g(4_999 + 961) + 60.0 / 2_400.0).abs() < 1e-3,
            "{}",
            g(4_999 + 961)
        );
        assert!((g(4_999 + 960 + 1_200) + 30.0).abs() < 1e-3);
        assert!((g(4_999 + 960 + 2_400) + 60.0).abs() < 1e-3);
        assert!((g(19_999) + 60.0).abs() < 1e-3);
    }

    #[test]
    fn zero_range_is_transparent_and_blocks_do_not_matter() {
        let mut mem = memory();
        let (x, noise) = burst();
        let mut fx = Instance::<Gate>::new(&mut mem, FS as u32, 2, 512).unwrap();
        fx.set("range_db", 0.0).reset();
        let mut out = vec![x.clone(), noise.clone()];
        fx.run(&mut out);
        assert!(out == vec![x.clone(), noise.clone()], "not transparent");
        let mut results = vec![];
        for blocks in [&[512usize][..], &[1, 99, 512, 3]] {
            let mut fx = Instance::<Gate>::new(&mut mem, FS as u32, 2, 512).unwrap();
            fx.set("threshold_db", -40.0);
            let mut out = vec![x.clone(), noise.clone()];
            fx.run_blocks(&mut out, blocks);
            results.push(out);
        }
        assert!(
            results[0] == results[1],
            "the result depends on the block size"
        );
    }

    #[test]
    fn expander_turns_each_db_under_the_threshold_into_ratio_db() {
        let mut mem = memory();
        // DC at -20 dBFS on the left, -40 dBFS on the right; threshold -10 dB, ratio 3.
        let x: Vec<f32> = vec![0.1; 24_000];
        let y: Vec<f32> = vec![0.01; 24_000];
        let settle = |out: &[f32], input: &[f32]| gain_db(out, input, 23_999);
        let mut fx = Instance::<Gate>::new(&mut mem, FS as u32, 2, 512).unwrap();
        fx.set("mode", 1.0)
            .set("ratio", 3.0)
            .set("threshold_db", -10.0);
        fx.set("link", 1.0).reset();
        let mut out = vec![x.clone(), y.clone()];
        fx.run(&mut out);
        // Independent: 10 dB under -> 30 dB under (gain -20 dB); 30 dB under -> gain -60 dB.
        assert!(
            (settle(&out[0], &x) + 20.0).abs() < 1e-3,
            "{}",
            settle(&out[0], &x)
        );
        assert!(
            (settle(&out[1], &y) + 60.0).abs() < 1e-3,
            "{}",
            settle(&out[1], &y)
        );
        // Linked: both channels take the louder one's gain.
        let mut fx = Instance::<Gate>::new(&mut mem, FS as u32, 2, 512).unwrap();
        fx.set("mode", 1.0)
            .set("ratio", 3.0)
            .set("threshold_db", -10.0);
        fx.reset();
        let mut out = vec![x.clone(), y.clone()];
        fx.run(&mut out);
        assert!((settle(&out[0], &x) + 20.0).abs() < 1e-3);
        assert!((settle(&out[1], &y) + 20.0).abs() < 1e-3);
        // The range floors the gain; above the threshold nothing changes.
        let mut fx = Instance::<Gate>::new(&mut mem, FS as u32, 2, 512).unwrap();
        fx.set("mode", 1.0)
            .set("ratio", 3.0)
            .set("threshold_db", -10.0);
        fx.set("link", 1.0).set("range_db", -30.0).reset();
        let mut out = vec![x.clone(), vec![0.5; 24_000]];
        fx.run(&mut out);
        assert!((settle(&out[0], &x) + 20.0).abs() < 1e-3);
        // (after the 1 ms attack has brought the level over the threshold)
        assert!(out[1][2_000..].iter().all(|&v| v == 0.5));
        let mut out = vec![y.clone(), y.clone()];
        fx.reset();
        fx.run(&mut out);
        assert!((settle(&out[0], &y) + 30.0).abs() < 1e-3);
    }

    #[test]
    fn expander_attack_and_release_follow_their_times() {
        let mut mem = memory();
        let mut fx = Instance::<Gate>::new(&mut mem, FS as u32, 1, 512).unwrap();
        fx.set("mode", 1.0)
            .set("ratio", 2.0)
            .set("threshold_db", 0.0);
        fx.set("attack_ms", 10.0).set("release_ms", 200.0).reset();
        // Ratio 2 from a 0 dB threshold: the gain is the level itself, so out/in traces the
        // envelope. A step from silence to 0.5 at frame 0, back to silence (-> 1e-3) at 24,000.
        let x: Vec<f32> = (0..96_000)
            .map(|n| if n < 24_000 { 0.5 } else { 1e-3 })
            .collect();
        let mut out = vec![x.clone()];
        fx.run(&mut out);
        let env = |n: usize| f64::from(out[0][n] / x[n]);
        // Rising: 1 - e^-1 of the way at one time constant (10 ms / 2π).
        let tau = (0.010 / std::f64::consts::TAU * FS as f64) as usize;
        assert!(
            (env(tau - 1) / 0.5 - (1.0 - (-1.0f64).exp())).abs() < 0.01,
            "{}",
            env(tau)
        );
        assert!((env(23_999) - 0.5).abs() < 1e-4);
        // Falling: the RMS detector's 50 ms and the envelope's 200 ms in series; the slower
        // dominates, so after 200 ms / 2π·5 the envelope is near e^-5 of the step, far from 0.
        let tau = 0.200 / std::f64::consts::TAU * FS as f64;
        let at = 24_000 + (5.0 * tau) as usize;
        let e = env(at) / 0.5;
        assert!(e > (-5.0f64).exp() && e < 3.0 * (-5.0f64).exp(), "{e}");
        assert!(env(95_999) < 2e-3);
    }

    #[test]
    fn expander_blocks_do_not_matter_and_reset_clears_it() {
        let mut mem = memory();
        let (x, noise) = burst();
        let mut results = vec![];
        for blocks in [&[512usize][..], &[1, 99, 512, 3]] {
            let mut fx = Instance::<Gate>::new(&mut mem, FS as u32, 2, 512).unwrap();
            fx.set("mode", 1.0).set("threshold_db", -30.0).reset();
            let mut out = vec![x.clone(), noise.clone()];
            fx.run_blocks(&mut out, blocks);
            results.push(out);
            let mut again = vec![x.clone(), noise.clone()];
            fx.reset();
            fx.run_blocks(&mut again, blocks);
            assert!(
                again == results[results.len() - 1],
                "reset left state behind"
            );
        }
        assert!(
            results[0] == results[1],
            "the result depends on the block size"
        );
    }
}
