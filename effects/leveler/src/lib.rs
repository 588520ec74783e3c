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
//!
//! **Music.** Speech dips between syllables and words: over a second, a quarter to a half of its
//! 10 ms steps lie more than 12 dB under the second's mean level, and the steps' levels spread
//! 10–16 dB. Music holds its level: a tenth or fewer of its steps dip so far and the spread is
//! 2–5 dB (measured on 74 pieces of orchestral, electronic, rock and metal recordings and on
//! espeak-ng's voices: host/benches/leveler.rs, effects/README.md). Each step is judged by the
//! second around it; the leveler takes music for music after 300 ms of music-like seconds, and
//! speech for speech again only after a second of speech-like ones (a break in the music does not
//! start the levelling), then relabels the steps not yet gone out back to the last dip. `music`
//! says what then happens: `fixed` (the default) brings the gain to `music_gain_db` (0: the
//! music as it came) at 30 dB/s and keeps it there, and the speech after it is measured from
//! where the music ends; `hold` keeps the gain speech last had; `level` levels music like speech
//! (no decision made, the leveler before it could tell). Speech over a bed 15 dB under it stays
//! speech on all but a few per cent of its steps; a louder bed, or a voice in steady noise
//! within about 10 dB of it (20 dB is still speech), reads as music: run `denoise` first on
//! noisy speech, as the `podcast` pipeline does.
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
        version: "1.1.0",
        description: "Speech leveler: K-weighted loudness of the active 10 ms steps around each moment (look-ahead), the gain to the target moving slowly in speech, held in pauses, changed in the 200 ms before speech resumes; music recognised and left at a set gain (or held, or levelled).",
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
        music: { name: "Music", choices: ["fixed", "hold", "level"], default: "fixed" },
        music_gain_db: { name: "Music gain", unit: "dB", min: -30.0, max: 30.0, default: 0.0 },
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
/// The span a step is judged by (1 s, centred on it), in steps; judging starts once
/// [`MUSIC_FIRST`] steps are in.
const MUSIC_WINDOW: usize = 100;
const MUSIC_FIRST: usize = 30;
/// A step dips when it is this far under its span's mean level (dB)...
const DIP_DB: f32 = 12.0;
/// ... and the span is music-like when fewer than this share of its steps dip and their levels
/// (held within 40 dB under the mean) spread less than [`MUSIC_SPREAD_DB`] (standard deviation).
const MUSIC_DIPS: f32 = 0.1;
const MUSIC_SPREAD_DB: f32 = 6.5;
/// Music-like spans in a row that make music, speech-like ones that make speech again.
const TO_MUSIC: usize = 30;
const TO_SPEECH: usize = 100;
/// How fast the gain moves to the music's (dB per second).
const MUSIC_DB_S: f32 = 30.0;
/// `music` choices (`hold`, 1, keeps the gain: nothing to do).
const FIXED: usize = 0;
const LEVEL: usize = 2;

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
    /// Per step (rings of [`RING`]): mean square, active, music (labels below `labelled`).
    level: &'a mut [f32],
    active: &'a mut [u8],
    music: &'a mut [u8],
    labelled: usize,
    /// Whether music is playing now, and how many spans in a row have said otherwise.
    in_music: bool,
    contrary: usize,
    music_mode: usize,
    music_gain: f32,
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
    /// Whether the gain has been set for something that went out yet.
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
        self.music_mode = p.music;
        self.music_gain = p.music_gain_db;
    }

    fn clear(&mut self) {
        self.states = [[State::default(); 2]; 8];
        self.acc = 0.0;
        self.level.fill(0.0);
        self.active.fill(0);
        self.music.fill(0);
        self.labelled = 0;
        self.in_music = false;
        self.contrary = 0;
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
        if self.music_mode != LEVEL {
            self.judge();
        }
        self.decide();
    }

    /// Whether the span of the last [`MUSIC_WINDOW`] steps is music-like, and its mean level
    /// (dB of the mean square; `None` when it is too quiet to say: under the gate).
    fn music_like(&self) -> Option<(bool, f32)> {
        let n = self.steps.min(MUSIC_WINDOW);
        let newest = self.steps - 1;
        let step = |i: usize| self.level[(newest - i) % RING];
        let mean = (0..n).map(|i| step(i) as f64).sum::<f64>() / n as f64;
        let mean_db = db(mean as f32);
        if mean_db - 0.691 < self.gate {
            return None;
        }
        let (mut dips, mut s1, mut s2) = (0usize, 0.0f32, 0.0f32);
        for i in 0..n {
            let d = db(step(i));
            dips += usize::from(d < mean_db - DIP_DB);
            let d = d.max(mean_db - 40.0) - mean_db;
            s1 += d;
            s2 += d * d;
        }
        let nf = n as f32;
        let spread = libm::sqrtf((s2 / nf - (s1 / nf) * (s1 / nf)).max(0.0));
        Some((
            (dips as f32) < MUSIC_DIPS * nf && spread < MUSIC_SPREAD_DB,
            mean_db,
        ))
    }

    /// Labels the step at the centre of the newest span music or speech.
    fn judge(&mut self) {
        if self.steps < MUSIC_FIRST {
            return;
        }
        let centre = self.steps - 1 - self.steps.min(MUSIC_WINDOW) / 2;
        // The first step not yet gone out (`decide` sends `steps - lookahead_steps` next).
        let unsent = self.steps.saturating_sub(self.lookahead_steps);
        // Speech is assumed at first: music at the start is found by its first 300 ms of spans
        // and relabelled back to the first step, which at the default look-ahead has not gone
        // out yet (a 300 ms word alone is not taken for music).
        if let Some((m, mean_db)) = self.music_like() {
            if m == self.in_music {
                self.contrary = 0;
            } else {
                self.contrary += 1;
                if self.contrary >= if m { TO_MUSIC } else { TO_SPEECH } {
                    self.in_music = m;
                    self.contrary = 0;
                    // What has not gone out yet is relabelled: music back to the last dip
                    // (it plays on from there), speech all of it.
                    for s in (unsent..self.labelled).rev() {
                        if m && db(self.level[s % RING]) < mean_db - DIP_DB {
                            break;
                        }
                        self.music[s % RING] = u8::from(m);
                    }
                }
            }
        }
        for s in self.labelled..=centre {
            self.music[s % RING] = u8::from(self.in_music);
        }
        self.labelled = self.labelled.max(centre + 1);
    }

    /// Whether step `s` is music (the newest, not yet labelled, are what is playing now).
    fn is_music(&self, s: usize) -> bool {
        self.music_mode != LEVEL
            && if s < self.labelled {
                self.music[s % RING] != 0
            } else {
                self.in_music
            }
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
            if self.is_music(s) {
                // The speech's level is measured from where the music ends.
                from = s + 1;
                break;
            }
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
            if self.active[s % RING] != 0 && !self.is_music(s) {
                sum += self.level[s % RING] as f64;
                n += 1;
            }
        }
        let speech_now = self.active[out % RING] != 0;
        let soon = (out + 1..(out + 1 + PRE_STEPS).min(self.steps))
            .any(|s| self.active[s % RING] != 0 && !self.is_music(s));
        let mut next = self.gain_db;
        if self.is_music(out) {
            if self.music_mode == FIXED {
                if !self.heard {
                    self.heard = true;
                    self.gain_db = self.music_gain;
                }
                let limit = MUSIC_DB_S * STEP_S;
                next = self.gain_db + (self.music_gain - self.gain_db).clamp(-limit, limit);
            }
        } else if n > 0 {
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
            music: arena.take_zeroed::<u8>(RING)?,
            labelled: 0,
            in_music: false,
            contrary: 0,
            music_mode: LEVEL,
            music_gain: 0.0,
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
        run_set(x, &[])
    }

    /// `x` through the leveler with `set` parameters, its latency taken off; and the latency.
    fn run_set(x: &[f32], set: &[(&str, f32)]) -> (Vec<f32>, usize) {
        let mut mem = memory();
        let mut fx = Instance::<Leveler>::new(&mut mem, FS, 1, 480).unwrap();
        for &(id, v) in set {
            fx.set(id, v);
        }
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

    /// The gain (dB) over `r` of `y` against `x`.
    fn gain_over(x: &[f32], y: &[f32], r: core::ops::Range<usize>) -> f64 {
        signal::db(signal::rms(&y[r.clone()]) / signal::rms(&x[r]))
    }

    #[test]
    fn music_keeps_its_set_gain_and_the_speech_after_it_is_levelled_as_alone() {
        // Six seconds of a steady, undipping sound (music's level held), then talk 10 dB under.
        let n = 6 * FS as usize;
        let music = signal::noise(9, n, 0.2);
        let (talk, _) = talk(8.0, -30.0, 3);
        let x: Vec<f32> = music.iter().chain(&talk).copied().collect();
        let run_with = |x: &[f32], mode: f32, gain: f32| {
            run_set(x, &[("music", mode), ("music_gain_db", gain)]).0
        };
        // fixed at -6 dB: the music at -6 dB from its first sample (the look-ahead saw it) to
        // a second before its end (where the talk is being recognised).
        let y = run_with(&x, 0.0, -6.0);
        let body = 0..n - FS as usize;
        let g = gain_over(&x, &y, body.clone());
        assert!((g + 6.0).abs() < 0.1, "the music went out at {g:.2} dB");
        // The talk after it is levelled as the same talk alone is.
        let alone = run_with(&talk, 2.0, 0.0);
        let t = n + 3 * FS as usize..x.len();
        let (ours, solo) = (
            gain_over(&x, &y, t.clone()),
            gain_over(&talk, &alone, 3 * FS as usize..talk.len()),
        );
        assert!(
            ours > 5.0,
            "the talk 10 dB under the target gained {ours:.2} dB"
        );
        assert!(
            (ours - solo).abs() < 1.0,
            "after the music {ours:.2} dB, alone {solo:.2} dB"
        );
        // hold: the music keeps the gain the start was given (none: 0 dB); level: it is levelled
        // (brought up to the target, the old behaviour).
        let held = gain_over(&x, &run_with(&x, 1.0, -6.0), body.clone());
        assert!(held.abs() < 0.1, "held at {held:.2} dB");
        let levelled = gain_over(&x, &run_with(&x, 2.0, -6.0), body);
        assert!(levelled < -3.0, "levelled to {levelled:.2} dB");
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
