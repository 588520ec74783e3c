//! `leveler`: brings speakers and passages to one loudness, moving its gain between words.
//!
//! **Measuring.** Every 10 ms step, the mean square of the channels' K-weighted sum (the
//! cookbook's +4 dB high shelf at 1682 Hz and second-order high-pass at 38 Hz, the BS.1770
//! weighting to within a few tenths of a dB). A step is *speech* (or programme) when it is above
//! `gate_db` under the target and 10 dB above the quietest steps of the last few seconds (the
//! noise floor); other steps are pauses.
//!
//! **Deciding.** The audio is delayed by `lookahead_ms`; the gain for the step now going out
//! aims at `target_db` minus the mean loudness of the active steps from `window_s` before it to
//! the end of the look-ahead (the voice as it is now and as it will be), limited to
//! ±`max_gain_db`. The window starts no earlier than the end of the last pause of 300 ms or
//! more: after a pause (a speaker handing over) the level is the coming speech's alone.
//!
//! **Moving.** While the step going out is speech, the gain moves at most `drift_db_s` dB per
//! second (0.3 dB over a half-second word at the default 0.6); in a pause it holds still (the room does not
//! swell between sentences) except in the last 200 ms before speech resumes, where it moves as
//! fast as it needs (up to 60 dB/s) to the level the coming speech asks for: a new speaker
//! starts at their level, the change made in the silence before them. Within a step the gain is
//! interpolated sample by sample.
#![no_std]

use sluice_effect_sdk::{
    Arena, Config, Effect, InitError,
    dsp::biquad::{Coefs, Kind, State},
    effect,
};

effect! {
    /// Parameters of `leveler`.
    pub struct LevelerParams for Leveler {
        name: "leveler",
        version: "1.0.0",
        description: "Speech leveler: K-weighted loudness of the active 10 ms steps around each moment (look-ahead), the gain to the target moving slowly in speech, held in pauses, changed in the 200 ms before speech resumes.",
        tail_seconds: 0.0,
        max_channels: 8,
    }
    params {
        target_db: { name: "Target", unit: "LUFS", min: -40.0, max: -6.0, default: -20.0 },
        max_gain_db: { name: "Max gain", unit: "dB", min: 0.0, max: 30.0, default: 15.0 },
        window_s: { name: "Window", unit: "s", min: 0.5, max: 10.0, default: 2.0 },
        drift_db_s: { name: "Drift", unit: "dB/s", min: 0.0, max: 20.0, default: 0.6 },
        gate_db: { name: "Gate", unit: "dB", min: -60.0, max: -10.0, default: -30.0 },
        lookahead_ms: { name: "Look-ahead", unit: "ms", min: 100.0, max: 1000.0, default: 600.0 },
    }
}

/// The step (s).
pub const STEP_S: f32 = 0.01;
/// The longest window plus look-ahead, in steps (the rings' length).
const RING: usize = 1100;
/// The floor: the least step level over this many steps (4 s).
const FLOOR_STEPS: usize = 400;
/// Speech is this far above the floor (dB).
const OVER_FLOOR_DB: f32 = 10.0;
/// A pause this long (300 ms) ends the stretch the level is measured over.
const PAUSE_STEPS: usize = 30;
/// Before speech resumes, the gain may move within this many steps (200 ms)...
const PRE_STEPS: usize = 20;
/// ... at most this fast (dB per second).
const FAST_DB_S: f32 = 60.0;
/// The longest look-ahead, in frames at the highest rate (1 s at 384 kHz).
const MAX_DELAY_S: f32 = 1.0;

/// Leveler state.
pub struct Leveler<'a> {
    channels: usize,
    step: usize,
    into_step: usize,
    /// K-weighting sections and their memories (per channel).
    shelf: Coefs,
    highpass: Coefs,
    states: [[State; 2]; 8],
    /// This step's sum of K-weighted squares so far.
    acc: f64,
    /// Per step (rings of [`RING`]): mean square, active.
    level: &'a mut [f32],
    active: &'a mut [u8],
    /// Steps measured so far.
    steps: usize,
    /// The delay line (per channel, `delay + 1` frames, a ring) and where it writes.
    line: &'a mut [f32],
    line_len: usize,
    write: usize,
    delay: usize,
    lookahead_steps: usize,
    window_steps: usize,
    target: f32,
    max_gain: f32,
    drift: f32,
    gate: f32,
    /// Whether the gain has been set for some speech yet.
    heard: bool,
    /// The gain (dB) at the start of the step going out, and at its end.
    gain_db: f32,
    next_db: f32,
    /// The gain's linear value per frame within the step going out, and its step per frame.
    gain: f32,
    gain_step: f32,
}

fn db(x: f32) -> f32 {
    10.0 * libm::log10f(x.max(1e-20))
}

impl Leveler<'_> {
    fn apply(&mut self, p: &LevelerParams) {
        self.target = p.target_db;
        self.max_gain = p.max_gain_db;
        self.drift = p.drift_db_s * STEP_S;
        self.gate = p.target_db + p.gate_db;
        self.window_steps = ((p.window_s / STEP_S) as usize).clamp(1, RING - 200);
        let look = (p.lookahead_ms * 0.001 / STEP_S) as usize;
        self.lookahead_steps = look.clamp(PRE_STEPS, RING - self.window_steps - 1);
        self.delay = (self.lookahead_steps * self.step).min(self.line_len - 1);
    }

    fn clear(&mut self) {
        self.states = [[State::default(); 2]; 8];
        self.acc = 0.0;
        self.level.fill(0.0);
        self.active.fill(0);
        self.steps = 0;
        self.line.fill(0.0);
        self.write = 0;
        self.into_step = 0;
        self.heard = false;
        self.gain_db = 0.0;
        self.next_db = 0.0;
        self.gain = 1.0;
        self.gain_step = 0.0;
    }

    /// The gain now (dB), for tests.
    pub fn gain_db(&self) -> f32 {
        self.gain_db
    }

    /// A step measured: its level and whether it is speech; then the gain for the step going
    /// out, `lookahead_steps` behind it.
    fn end_step(&mut self) {
        let ms = (self.acc / self.step as f64) as f32;
        self.acc = 0.0;
        let now = self.steps % RING;
        // K-weighted level in LUFS (−0.691 dB as BS.1770 has it).
        let lufs = db(ms) - 0.691;
        self.level[now] = ms;
        let floor = self.floor();
        self.active[now] = u8::from(lufs > self.gate && lufs > floor + OVER_FLOOR_DB);
        self.steps += 1;
        self.decide();
    }

    /// The quietest step level (LUFS) of the last [`FLOOR_STEPS`].
    fn floor(&self) -> f32 {
        let n = self.steps.min(FLOOR_STEPS);
        let least = (0..n)
            .map(|i| self.level[(self.steps - 1 - i) % RING])
            .fold(f32::MAX, f32::min);
        if n == 0 { -120.0 } else { db(least) - 0.691 }
    }

    /// The gain for the step going out (the one `lookahead_steps` behind the newest).
    fn decide(&mut self) {
        self.gain_db = self.next_db;
        if self.steps < self.lookahead_steps {
            self.gain_step = 0.0;
            return;
        }
        // The step whose samples go out next.
        let out = self.steps - self.lookahead_steps;
        // The window reaches back at most to the end of the last long pause (where one
        // speaker often hands over to another), and in a pause starts after it.
        let mut from = out.saturating_sub(self.window_steps);
        let mut run = 0;
        for s in (from..=out).rev() {
            if self.active[s % RING] != 0 {
                run = 0;
            } else {
                run += 1;
                if run >= PAUSE_STEPS {
                    from = s + run;
                    break;
                }
            }
        }
        let (mut sum, mut n) = (0.0f64, 0usize);
        for s in from..self.steps {
            if self.active[s % RING] != 0 {
                sum += self.level[s % RING] as f64;
                n += 1;
            }
        }
        let speech_now = self.active[out % RING] != 0;
        let soon =
            (out + 1..(out + 1 + PRE_STEPS).min(self.steps)).any(|s| self.active[s % RING] != 0);
        let mut next = self.gain_db;
        if n > 0 {
            let loud = db((sum / n as f64) as f32) - 0.691;
            let want = (self.target - loud).clamp(-self.max_gain, self.max_gain);
            if !self.heard {
                // Nothing has gone out yet that the gain was set for: start where the voice
                // asks.
                self.heard = true;
                self.gain_db = want;
            }
            let limit = if speech_now {
                self.drift
            } else if soon {
                FAST_DB_S * STEP_S
            } else {
                0.0
            };
            next = self.gain_db + (want - self.gain_db).clamp(-limit, limit);
        }
        self.next_db = next;
        let (a, b) = (
            libm::powf(10.0, self.gain_db / 20.0),
            libm::powf(10.0, next / 20.0),
        );
        self.gain = a;
        self.gain_step = (b - a) / self.step as f32;
    }
}

impl<'a> Effect<'a> for Leveler<'a> {
    type Params = LevelerParams;

    fn new(config: &Config, p: &LevelerParams, arena: &mut Arena<'a>) -> Result<Self, InitError> {
        let fs = config.fs();
        let step = ((fs * STEP_S) as usize).max(1);
        let line_len = (fs * MAX_DELAY_S) as usize + step + 1;
        let f = fs as f64;
        let mut l = Leveler {
            channels: config.channels,
            step,
            into_step: 0,
            shelf: Coefs::design(Kind::Highshelf, f, 1681.974, 0.707_175, 3.999_843),
            highpass: Coefs::design(Kind::Highpass, f, 38.135, 0.500_327, 0.0),
            states: [[State::default(); 2]; 8],
            acc: 0.0,
            level: arena.take(RING)?,
            active: arena.take_zeroed::<u8>(RING)?,
            steps: 0,
            line: arena.take(line_len * config.channels)?,
            line_len,
            write: 0,
            delay: 0,
            lookahead_steps: 0,
            window_steps: 0,
            target: 0.0,
            max_gain: 0.0,
            drift: 0.0,
            gate: 0.0,
            heard: false,
            gain_db: 0.0,
            next_db: 0.0,
            gain: 1.0,
            gain_step: 0.0,
        };
        l.apply(p);
        l.clear();
        Ok(l)
    }

    fn update(&mut self, p: &LevelerParams) {
        let delay = self.delay;
        self.apply(p);
        if self.delay != delay {
            // A new look-ahead is a new latency: start again.
            self.clear();
        }
    }

    fn process(&mut self, channels: &mut [&mut [f32]]) {
        let frames = channels.first().map_or(0, |c| c.len());
        let n = self.channels.min(channels.len());
        for i in 0..frames {
            let mut sq = 0.0f64;
            let read = (self.write + self.line_len - self.delay) % self.line_len;
            for (c, ch) in channels.iter_mut().enumerate().take(n) {
                let x = ch[i];
                let st = &mut self.states[c];
                let k = st[0].run(&self.shelf, x);
                let k = st[1].run(&self.highpass, k);
                sq += k as f64 * k as f64;
                let line = &mut self.line[c * self.line_len..(c + 1) * self.line_len];
                line[self.write] = x;
                ch[i] = line[read] * self.gain;
            }
            self.gain += self.gain_step;
            self.write = (self.write + 1) % self.line_len;
            self.acc += sq;
            self.into_step += 1;
            if self.into_step == self.step {
                self.into_step = 0;
                self.end_step();
            }
        }
    }

    fn reset(&mut self, p: &LevelerParams) {
        self.apply(p);
        self.clear();
    }

    fn latency(&self) -> u32 {
        self.delay as u32
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use sluice_effect_sdk::native::{Instance, memory, signal};
    use std::{vec, vec::Vec};

    const FS: u32 = 48_000;

    /// Syllable-like bursts (noise, 250 ms on, 120 ms off) with a 600 ms pause every 2 s, at
    /// `db` dBFS RMS while sounding.
    fn talk(seconds: f32, db: f64, seed: u64) -> (Vec<f32>, Vec<bool>) {
        let n = (seconds * FS as f32) as usize;
        let x = signal::noise(seed, n, 1.0);
        let rms = signal::rms(&x);
        let g = 10f64.powf(db / 20.0) / rms;
        let on: Vec<bool> = (0..n)
            .map(|i| {
                let t = i % (2 * FS as usize);
                t < (1.4 * FS as f32) as usize && (t % 17_760) < 12_000
            })
            .collect();
        let y = x
            .iter()
            .zip(&on)
            .map(|(v, &o)| {
                if o {
                    (*v as f64 * g) as f32
                } else {
                    0.0003 * v
                }
            })
            .collect();
        (y, on)
    }

    fn run(x: &[f32]) -> (Vec<f32>, usize) {
        let mut mem = memory();
        let mut fx = Instance::<Leveler>::new(&mut mem, FS, 1, 480).unwrap();
        let late = fx.latency();
        let mut out = vec![
            x.iter()
                .copied()
                .chain(core::iter::repeat_n(0.0, late))
                .collect(),
        ];
        fx.run(&mut out);
        let y = out.remove(0);
        (y[late..].to_vec(), late)
    }

    #[test]
    fn two_speakers_12_db_apart_end_at_one_level_and_the_gain_holds_within_words() {
        let (a, on_a) = talk(8.0, -18.0, 1);
        let (b, on_b) = talk(8.0, -30.0, 2);
        let x: Vec<f32> = [&a[..], &b[..], &a[..], &b[..]].concat();
        let on: Vec<bool> = [&on_a[..], &on_b[..], &on_a[..], &on_b[..]].concat();
        let (y, late) = run(&x);
        assert_eq!(late, 600 * 48);
        // Each speaker's sounding level after the first two seconds of their turn.
        let turn = 8 * FS as usize;
        let level = |sig: &[f32], k: usize| {
            let r = k * turn + 2 * FS as usize..(k + 1) * turn;
            let e: Vec<f32> = r.clone().filter(|&i| on[i]).map(|i| sig[i]).collect();
            signal::db(signal::rms(&e))
        };
        let before: Vec<f64> = (0..4).map(|k| level(&x, k)).collect();
        let after: Vec<f64> = (0..4).map(|k| level(&y, k)).collect();
        let spread = after.iter().cloned().fold(f64::MIN, f64::max)
            - after.iter().cloned().fold(f64::MAX, f64::min);
        assert!(spread < 2.0, "before {before:?}, after {after:?}");
        // Within every burst (a word), the gain moves less than 1 dB.
        let mut i = 0;
        while i < x.len() {
            if !on[i] {
                i += 1;
                continue;
            }
            let start = i;
            while i < x.len() && on[i] {
                i += 1;
            }
            let gains: Vec<f64> = (start..i)
                .step_by(480)
                .filter(|&j| x[j].abs() > 1e-4)
                .map(|j| signal::db((y[j] / x[j]).abs() as f64))
                .collect();
            let range = gains.iter().cloned().fold(f64::MIN, f64::max)
                - gains.iter().cloned().fold(f64::MAX, f64::min);
            assert!(
                range < 1.0,
                "the gain moved {range:.2} dB within the word at {start}"
            );
        }
    }

    #[test]
    fn block_size_does_not_matter() {
        let (x, _) = talk(6.0, -25.0, 4);
        let mut outs = Vec::new();
        for block in [64, 4096] {
            let mut mem = memory();
            let mut fx = Instance::<Leveler>::new(&mut mem, FS, 1, block).unwrap();
            let mut out = vec![x.clone()];
            fx.run(&mut out);
            outs.push(out);
        }
        assert!(outs[0] == outs[1]);
    }
}
