//! Acceptance tests for the tempo estimator, on synthesized drum patterns.
//!
//! Everything here is deterministic: the only randomness is a seeded xorshift64* PRNG.

use std::f64::consts::TAU;

use sluice_core::analysis::tempo::{Tempo, TempoAnalyzer};

/// The core's seeded xorshift64*, with the seed spread so that nearby seeds differ at once.
type Rng = sluice_core::signal::Rng;

fn rng(seed: u64) -> Rng {
    Rng::new(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

#[derive(Clone, Copy, Debug)]
enum Inst {
    Kick,
    /// A club kick: a 50 Hz body with a fast pitch drop from 130 Hz and a faint click, most of
    /// its energy below 100 Hz (where a broadband onset measure barely sees it).
    DeepKick,
    /// A layered clap: three noise bursts 10 ms apart and a 150 ms reverberant tail.
    BigClap,
    Snare,
    Hat,
    OpenHat,
    Clap,
    /// A bass note of this frequency (Hz).
    Bass(f64),
    /// A sustained three-note chord.
    Chord,
    /// A pad: a slow-attack minor chord held for about a bar (tonal content, no onset).
    Pad(f64),
    /// An 808-style bass: a long low sine with a short pitch drop.
    Sub(f64),
}

/// Ticks per beat: divisible by 2, 3 and 4, so straight, triplet and swung positions are exact.
const TPB: u32 = 12;

#[derive(Clone, Copy, Debug)]
enum Pattern {
    /// Straight 4/4 rock: kick 1 & 3 (+ "and" of 3), snare 2 & 4, eighth hats, bass.
    Rock,
    /// Slow rock ballad: sparse kick, snare 2 & 4, soft eighth hats, chords.
    Ballad,
    /// House: kick on every beat, clap 2 & 4, open hats on the off-beats, off-beat bass.
    FourFloor,
    /// Half-time feel: snare only on beat 3, kick on 1, quarter hats.
    HalfTime,
    /// Jazz swing: ride "ding ding-a ding ding-a" (swung eighths), hi-hat 2 & 4, walking bass.
    Swing8,
    /// Hip-hop with swung sixteenths on the hats.
    Swing16,
    /// Only the half notes are loud (kick 1, snare 3); quarters are faint hats.
    HalfNotesLoud,
    /// Hats in triplet quarters (3 against 2) over a kick/snare backbeat.
    ThreeTwo,
    /// Syncopated funk: 3-3-2 accented sixteenth hats, syncopated kick and bass.
    Funk,
    /// 3/4 "oom-pah-pah": kick on 1, snare on 2 and 3.
    Waltz,
    /// Drum and bass two-step: kick 1 & "and" of 3, snare 2 & 4, eighth hats.
    Dnb,
    /// House: kick on every beat, clap 2 & 4, open hats on the off-beats, sixteenth hats with
    /// accents, a syncopated bass line and a pad chord per bar.
    House,
    /// Techno: kick on every beat, off-beat hats, sixteenth hats, a rumble bass after each kick,
    /// a clap on 4 only, no pad.
    Techno,
    /// Driving rock: kick 1, 3 and the "and" of 2, snare 2 & 4, eighth hats with the downbeats
    /// accented, eighth-note bass, power chords.
    DriveRock,
    /// Peak-time house as a broadband onset measure hears it: a deep kick on every beat that is
    /// quiet above 100 Hz, a loud layered clap on 2 & 4 and loud open hats on the off-beats of
    /// 2 & 4 only, a pad; only the low band shows the kick on every beat.
    FaintKickHouse,
    /// Half-time trap: kick 1 and the "a" of 2, clap only on beat 3, eighth hats with sixteenth
    /// rolls, an 808 bass.
    Trap,
    /// Half-time rock: kick 1 and the "and" of 3, snare only on beat 3, eighth hats, bass on 1.
    HalfTimeRock,
}

impl Pattern {
    /// Half-time feels: their felt half tempo is an octave error, no longer a right answer
    /// (issue 22); only flagged in the table.
    fn half_time(self) -> bool {
        matches!(
            self,
            Pattern::HalfTime | Pattern::HalfNotesLoud | Pattern::Trap | Pattern::HalfTimeRock
        )
    }
}

struct Hit {
    tick: u32,
    inst: Inst,
    vel: f64,
}

fn hit(tick: u32, inst: Inst, vel: f64) -> Hit {
    Hit { tick, inst, vel }
}

/// One bar of a pattern: beats per bar and its hits.
fn bar(p: Pattern, bar_index: usize) -> (u32, Vec<Hit>) {
    use Inst::*;
    let mut h = Vec::new();
    let roots = [55.0, 55.0, 73.4, 65.4];
    let root = roots[bar_index % roots.len()];
    // A minor-ish progression for the pads (Hz of the chord root).
    let pads = [220.0, 174.6, 261.6, 196.0];
    let pad = pads[bar_index % pads.len()];
    let beats = match p {
        Pattern::Waltz => 3,
        _ => 4,
    };
    match p {
        Pattern::Rock => {
            h.extend([hit(0, Kick, 1.0), hit(24, Kick, 0.9), hit(30, Kick, 0.6)]);
            h.extend([hit(12, Snare, 0.9), hit(36, Snare, 0.9)]);
            for i in 0..8 {
                h.push(hit(i * 6, Hat, if i % 2 == 0 { 0.55 } else { 0.4 }));
            }
            h.extend([hit(0, Bass(root), 0.7), hit(24, Bass(root), 0.6)]);
        }
        Pattern::Ballad => {
            h.extend([hit(0, Kick, 1.0), hit(30, Kick, 0.6)]);
            h.extend([hit(12, Snare, 0.8), hit(36, Snare, 0.8)]);
            for i in 0..8 {
                h.push(hit(i * 6, Hat, 0.3));
            }
            h.extend([hit(0, Chord, 0.6), hit(24, Chord, 0.5)]);
        }
        Pattern::FourFloor => {
            for b in 0..4 {
                h.push(hit(b * 12, Kick, 1.0));
                h.push(hit(b * 12 + 6, OpenHat, 0.5));
                h.push(hit(b * 12 + 6, Bass(root * 2.0), 0.5));
                h.push(hit(b * 12 + 3, Hat, 0.2));
                h.push(hit(b * 12 + 9, Hat, 0.2));
            }
            h.extend([hit(12, Clap, 0.7), hit(36, Clap, 0.7)]);
        }
        Pattern::HalfTime => {
            h.extend([hit(0, Kick, 1.0), hit(42, Kick, 0.5), hit(24, Snare, 1.0)]);
            for b in 0..4 {
                h.push(hit(b * 12, Hat, 0.45));
            }
            h.push(hit(0, Bass(root), 0.6));
        }
        Pattern::Swing8 => {
            // Ride: beats 1-4 plus the swung "a" of 2 and 4 (two thirds into the beat).
            for (t, v) in [
                (0, 0.5),
                (12, 0.55),
                (20, 0.35),
                (24, 0.5),
                (36, 0.55),
                (44, 0.35),
            ] {
                h.push(hit(t, OpenHat, v));
            }
            h.extend([hit(12, Hat, 0.4), hit(36, Hat, 0.4)]);
            let walk = [1.0, 1.26, 1.5, 1.68];
            for b in 0..4 {
                h.push(hit(b * 12, Bass(root * walk[b as usize]), 0.6));
                h.push(hit(b * 12, Kick, 0.2));
            }
            h.push(hit(44, Snare, 0.3));
        }
        Pattern::Swing16 => {
            h.extend([hit(0, Kick, 1.0), hit(22, Kick, 0.7), hit(24, Kick, 0.8)]);
            h.extend([hit(12, Snare, 0.9), hit(36, Snare, 0.9)]);
            for b in 0..4 {
                for (t, v) in [(0, 0.45), (4, 0.25), (6, 0.4), (10, 0.25)] {
                    h.push(hit(b * 12 + t, Hat, v));
                }
            }
            h.extend([hit(0, Bass(root), 0.6), hit(22, Bass(root * 1.5), 0.5)]);
        }
        Pattern::HalfNotesLoud => {
            h.extend([hit(0, Kick, 1.0), hit(24, Snare, 1.0)]);
            for b in 0..4 {
                h.push(hit(b * 12, Hat, 0.2));
            }
            h.extend([hit(0, Chord, 0.5), hit(24, Chord, 0.4)]);
        }
        Pattern::ThreeTwo => {
            h.extend([hit(0, Kick, 1.0), hit(24, Kick, 0.9)]);
            h.extend([hit(12, Snare, 0.8), hit(36, Snare, 0.8)]);
            for i in 0..6 {
                h.push(hit(i * 8, Hat, 0.5));
            }
            h.push(hit(0, Bass(root), 0.5));
        }
        Pattern::Funk => {
            for i in 0..16 {
                let accent = matches!(i % 8, 0 | 3 | 6);
                h.push(hit(i * 3, Hat, if accent { 0.5 } else { 0.2 }));
            }
            h.extend([hit(0, Kick, 1.0), hit(9, Kick, 0.7), hit(30, Kick, 0.8)]);
            h.extend([
                hit(12, Snare, 0.9),
                hit(36, Snare, 0.9),
                hit(45, Snare, 0.25),
            ]);
            for t in [0, 9, 18] {
                h.push(hit(t, Bass(root), 0.5));
            }
        }
        Pattern::Waltz => {
            h.push(hit(0, Kick, 1.0));
            h.extend([hit(12, Snare, 0.55), hit(24, Snare, 0.55)]);
            for i in 0..6 {
                h.push(hit(i * 6, Hat, 0.25));
            }
            h.push(hit(0, Bass(root), 0.6));
            h.extend([hit(12, Chord, 0.4), hit(24, Chord, 0.4)]);
        }
        Pattern::Dnb => {
            h.extend([hit(0, Kick, 1.0), hit(30, Kick, 0.9)]);
            h.extend([hit(12, Snare, 1.0), hit(36, Snare, 1.0)]);
            for i in 0..8 {
                h.push(hit(i * 6, Hat, 0.35));
            }
            h.push(hit(0, Bass(root), 0.7));
        }
        Pattern::House => {
            for b in 0..4 {
                h.push(hit(b * 12, DeepKick, 1.0));
                h.push(hit(b * 12 + 6, OpenHat, 0.45));
                for s in [0, 3, 9] {
                    h.push(hit(b * 12 + s, Hat, if s == 0 { 0.12 } else { 0.2 }));
                }
            }
            h.extend([hit(12, BigClap, 0.8), hit(36, BigClap, 0.8)]);
            // Syncopated bass: off-beats plus a pickup, an octave jump.
            for (t, m, v) in [
                (6, 1.0, 0.6),
                (18, 1.0, 0.55),
                (27, 2.0, 0.45),
                (30, 1.0, 0.6),
            ] {
                h.push(hit(t, Bass(root * m), v));
            }
            h.push(hit(42, Bass(root * 1.5), 0.5));
            h.push(hit(0, Pad(pad), 0.5));
        }
        Pattern::Techno => {
            for b in 0..4 {
                h.push(hit(b * 12, DeepKick, 1.0));
                h.push(hit(b * 12 + 6, OpenHat, 0.4));
                for s in [3, 9] {
                    h.push(hit(b * 12 + s, Hat, 0.18));
                }
                // Rumble: the bass answers each kick on the following sixteenths.
                h.push(hit(b * 12 + 3, Bass(root), 0.35));
                h.push(hit(b * 12 + 9, Bass(root), 0.3));
            }
            h.push(hit(36, BigClap, 0.7));
        }
        Pattern::FaintKickHouse => {
            for b in 0..4 {
                h.push(hit(b * 12, DeepKick, 0.5));
            }
            h.extend([hit(12, BigClap, 1.0), hit(36, BigClap, 1.0)]);
            h.extend([hit(18, OpenHat, 0.6), hit(42, OpenHat, 0.6)]);
            h.extend([hit(6, Hat, 0.15), hit(30, Hat, 0.15)]);
            h.push(hit(0, Pad(pad), 0.6));
        }
        Pattern::DriveRock => {
            h.extend([hit(0, Kick, 1.0), hit(18, Kick, 0.7), hit(24, Kick, 0.9)]);
            h.extend([hit(12, Snare, 1.0), hit(36, Snare, 1.0)]);
            for i in 0..8 {
                h.push(hit(i * 6, Hat, if i % 2 == 0 { 0.5 } else { 0.3 }));
                h.push(hit(i * 6, Bass(root), 0.45));
            }
            h.extend([hit(0, Chord, 0.5), hit(24, Chord, 0.45)]);
        }
        Pattern::Trap => {
            h.extend([hit(0, Kick, 1.0), hit(21, Kick, 0.8), hit(24, Clap, 1.0)]);
            for i in 0..8 {
                h.push(hit(i * 6, Hat, if i % 2 == 0 { 0.4 } else { 0.3 }));
            }
            // A sixteenth roll into the next bar.
            h.extend([hit(39, Hat, 0.25), hit(45, Hat, 0.25)]);
            h.extend([hit(0, Sub(root), 0.8), hit(21, Sub(root * 1.19), 0.6)]);
            h.push(hit(0, Pad(pad), 0.35));
        }
        Pattern::HalfTimeRock => {
            h.extend([hit(0, Kick, 1.0), hit(30, Kick, 0.7), hit(24, Snare, 1.0)]);
            for i in 0..8 {
                h.push(hit(i * 6, Hat, if i % 2 == 0 { 0.45 } else { 0.3 }));
            }
            h.extend([hit(0, Bass(root), 0.6), hit(30, Bass(root), 0.5)]);
            h.push(hit(0, Chord, 0.4));
        }
    }
    (beats, h)
}

#[derive(Clone, Copy, Debug)]
struct Case {
    bpm: f64,
    pattern: Pattern,
    sample_rate: u32,
    seconds: f64,
    /// Timing jitter, ± this many milliseconds.
    jitter_ms: f64,
    /// Velocity variation, ± this fraction.
    vel_var: f64,
    /// Peak amplitude of added white noise.
    noise: f64,
    seed: u64,
}

fn case(bpm: f64, pattern: Pattern, sample_rate: u32) -> Case {
    Case {
        bpm,
        pattern,
        sample_rate,
        seconds: 20.0,
        jitter_ms: 0.0,
        vel_var: 0.0,
        noise: 0.0,
        seed: bpm.to_bits(),
    }
}

impl Case {
    fn human(mut self, jitter_ms: f64, vel_var: f64) -> Self {
        self.jitter_ms = jitter_ms;
        self.vel_var = vel_var;
        self
    }
    fn noisy(mut self, noise: f64) -> Self {
        self.noise = noise;
        self
    }
    fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
    fn at(mut self, sample_rate: u32, seconds: f64) -> Self {
        self.sample_rate = sample_rate;
        self.seconds = seconds;
        self
    }
}

/// Adds one instrument hit starting at sample `start`.
fn voice(out: &mut [f64], sr: f64, start: usize, inst: Inst, vel: f64, rng: &mut Rng) {
    let (len_s, _) = match inst {
        Inst::Kick => (0.4, 0),
        Inst::DeepKick => (0.45, 0),
        Inst::BigClap => (0.4, 0),
        Inst::Snare => (0.3, 0),
        Inst::Hat => (0.1, 0),
        Inst::OpenHat => (0.45, 0),
        Inst::Clap => (0.25, 0),
        Inst::Bass(_) => (0.6, 0),
        Inst::Chord => (1.5, 0),
        Inst::Pad(_) => (2.0, 0),
        Inst::Sub(_) => (0.8, 0),
    };
    let len = ((len_s * sr) as usize).min(out.len().saturating_sub(start));
    let decay = |tau: f64| (-1.0 / (tau * sr)).exp();
    let dt = 1.0 / sr;
    let mut prev_noise = 0.0;
    match inst {
        Inst::Kick => {
            let (mut phase, mut e, mut click) = (0.0f64, vel, vel * 0.4);
            let (ke, kc, kf) = (decay(0.12), decay(0.004), decay(0.025));
            let mut sweep = 110.0;
            for o in &mut out[start..start + len] {
                phase += TAU * (45.0 + sweep) * dt;
                sweep *= kf;
                *o += e * phase.sin() + click * rng.uniform();
                e *= ke;
                click *= kc;
            }
        }
        Inst::DeepKick => {
            let (mut phase, mut e, mut click) = (0.0f64, vel * 1.2, vel * 0.08);
            let (ke, kc, kf) = (decay(0.15), decay(0.002), decay(0.012));
            let mut sweep = 80.0;
            for o in &mut out[start..start + len] {
                phase += TAU * (50.0 + sweep) * dt;
                sweep *= kf;
                *o += e * phase.sin() + click * rng.uniform();
                e *= ke;
                click *= kc;
            }
        }
        Inst::BigClap => {
            let (kb, kt) = (decay(0.006), decay(0.15));
            let burst = (0.01 * sr) as usize;
            let mut tail = vel * 0.25;
            for (i, o) in out[start..start + len].iter_mut().enumerate() {
                let n = rng.uniform();
                let b =
                    vel * 0.9 * kb.powi((i % burst) as i32) * f64::from(u8::from(i < 3 * burst));
                *o += (b + tail) * (n - 0.5 * prev_noise);
                prev_noise = n;
                tail *= kt;
            }
        }
        Inst::Snare | Inst::Clap => {
            let (tone_amp, tn, nt) = match inst {
                Inst::Snare => (0.5, 0.05, 0.07),
                _ => (0.0, 0.05, 0.04),
            };
            let (mut et, mut en) = (vel * tone_amp, vel * 0.7);
            let (kt, kn) = (decay(tn), decay(nt));
            let w = TAU * 185.0 * dt;
            for (i, o) in out[start..start + len].iter_mut().enumerate() {
                let n = rng.uniform();
                *o += et * (w * i as f64).sin() + en * (n - 0.3 * prev_noise);
                prev_noise = n;
                et *= kt;
                en *= kn;
            }
        }
        Inst::Hat | Inst::OpenHat => {
            let tau = if matches!(inst, Inst::Hat) {
                0.02
            } else {
                0.12
            };
            let (mut e, k) = (vel * 0.6, decay(tau));
            for o in &mut out[start..start + len] {
                let n = rng.uniform();
                *o += e * (n - prev_noise);
                prev_noise = n;
                e *= k;
            }
        }
        Inst::Bass(f) => {
            let (mut e, k) = (vel * 0.6, decay(0.35));
            let w = TAU * f * dt;
            let attack = 0.005 * sr;
            for (i, o) in out[start..start + len].iter_mut().enumerate() {
                let a = (i as f64 / attack).min(1.0);
                *o += a * e * ((w * i as f64).sin() + 0.3 * (2.0 * w * i as f64).sin());
                e *= k;
            }
        }
        Inst::Chord => {
            let (mut e, k) = (vel * 0.25, decay(0.9));
            let ws = [261.63, 329.63, 392.0].map(|f| TAU * f * dt);
            let attack = 0.01 * sr;
            for (i, o) in out[start..start + len].iter_mut().enumerate() {
                let a = (i as f64 / attack).min(1.0);
                let x = i as f64;
                *o += a * e * ((ws[0] * x).sin() + (ws[1] * x).sin() + (ws[2] * x).sin());
                e *= k;
            }
        }
        Inst::Pad(f) => {
            // Minor triad plus a slightly detuned root; 300 ms attack, slow release.
            let ws = [1.0, 1.189, 1.498, 1.003].map(|m| TAU * f * m * dt);
            let (attack, release) = (0.3 * sr, 0.5 * sr);
            for (i, o) in out[start..start + len].iter_mut().enumerate() {
                let x = i as f64;
                let a = (x / attack).min(1.0).min((len as f64 - x) / release);
                let s: f64 = ws.iter().map(|w| (w * x).sin()).sum();
                *o += 0.06 * vel * a * s;
            }
        }
        Inst::Sub(f) => {
            let (mut e, k) = (vel * 0.7, decay(0.5));
            let (mut phase, mut drop, kd) = (0.0f64, f, decay(0.03));
            for o in &mut out[start..start + len] {
                phase += TAU * (f + drop) * dt;
                drop *= kd;
                *o += e * phase.sin();
                e *= k;
            }
        }
    }
}

/// Renders a case to mono samples.
fn render(c: &Case) -> Vec<f32> {
    let sr = f64::from(c.sample_rate);
    let frames = (c.seconds * sr) as usize;
    let mut out = vec![0f64; frames];
    let mut rng = rng(c.seed);
    let beat = 60.0 / c.bpm;
    let mut beat_index = 0u32;
    let mut bar_index = 0;
    // Start a little after 0 so early jitter cannot go negative.
    let t0 = 0.05;
    while t0 + f64::from(beat_index) * beat < c.seconds {
        let (beats, hits) = bar(c.pattern, bar_index);
        for h in hits {
            let jitter = c.jitter_ms * 1e-3 * rng.uniform();
            let t =
                t0 + (f64::from(beat_index) + f64::from(h.tick) / f64::from(TPB)) * beat + jitter;
            let vel = h.vel * (1.0 + c.vel_var * rng.uniform());
            let start = (t * sr) as usize;
            if start < frames {
                voice(&mut out, sr, start, h.inst, vel, &mut rng);
            }
        }
        beat_index += beats;
        bar_index += 1;
    }
    out.iter()
        .map(|&x| (0.3 * x + c.noise * rng.uniform()) as f32)
        .collect()
}

fn analyse(samples: &[f32], sample_rate: u32, block: usize) -> Option<Tempo> {
    let mut a = TempoAnalyzer::new(sample_rate);
    for b in samples.chunks(block) {
        a.feed(b);
    }
    a.finish()
}

fn rel_err(est: f64, truth: f64) -> f64 {
    (est / truth - 1.0).abs()
}

fn cases() -> Vec<Case> {
    use Pattern::*;
    vec![
        case(60.0, Ballad, 44_100),
        case(64.5, Ballad, 48_000).human(8.0, 0.2),
        case(67.0, Swing16, 48_000),
        case(70.0, Swing8, 44_100),
        case(76.0, HalfNotesLoud, 48_000),
        case(80.0, ThreeTwo, 44_100).human(5.0, 0.1),
        case(84.0, Waltz, 48_000),
        case(87.5, Swing16, 44_100).human(6.0, 0.15),
        case(93.0, Rock, 48_000).noisy(0.02),
        case(98.0, Funk, 44_100),
        case(100.0, HalfTime, 48_000),
        case(104.3, ThreeTwo, 48_000),
        case(110.0, Swing8, 44_100).human(10.0, 0.2),
        case(117.0, Rock, 48_000).human(5.0, 0.25),
        case(123.0, FourFloor, 44_100),
        case(128.0, FourFloor, 48_000).noisy(0.03),
        case(133.3, HalfNotesLoud, 44_100),
        case(136.0, FourFloor, 44_100).human(5.0, 0.1).noisy(0.01),
        case(140.0, HalfTime, 48_000),
        case(146.0, Funk, 44_100).human(7.0, 0.2),
        case(152.0, Rock, 48_000),
        case(155.0, HalfTime, 44_100).human(6.0, 0.1),
        case(160.0, Swing8, 44_100),
        case(165.0, Waltz, 48_000).human(5.0, 0.1),
        case(171.0, Dnb, 44_100),
        case(176.0, Rock, 48_000).human(8.0, 0.2).noisy(0.02),
        case(183.7, Dnb, 48_000).human(5.0, 0.1),
        case(190.0, Rock, 44_100),
        // Issue 22: four-on-the-floor, driving rock and funk that were read at half tempo, and
        // more half-time grooves (whose notated tempo is the answer).
        case(120.0, House, 44_100).human(4.0, 0.15).noisy(0.01),
        case(124.0, Techno, 48_000).human(3.0, 0.1),
        case(128.0, House, 48_000).human(5.0, 0.2),
        case(135.0, Techno, 44_100).human(4.0, 0.15).noisy(0.02),
        case(140.0, House, 48_000).human(3.0, 0.1),
        case(150.0, Techno, 44_100).human(4.0, 0.2),
        case(160.0, House, 44_100).human(5.0, 0.15).noisy(0.01),
        case(174.0, House, 48_000).human(3.0, 0.1),
        case(165.0, DriveRock, 48_000).human(6.0, 0.2).noisy(0.01),
        case(126.0, Funk, 44_100).human(5.0, 0.15),
        case(140.0, Trap, 44_100).human(4.0, 0.15),
        case(96.0, HalfTimeRock, 48_000).human(6.0, 0.15),
        case(150.0, HalfTimeRock, 44_100)
            .human(5.0, 0.1)
            .noisy(0.01),
    ]
}

/// Held-out validation set: the same pattern families at other tempi and seeds (and other
/// sample-rate/pattern pairings); no constant of the estimator was chosen on it (its figures
/// were printed beside the tuned set's while the range defaults were swept, and agreed with
/// them; the choice followed the tuned set). It has seven half-time grooves (the main set
/// eight), counted against their notated tempo.
fn held_out_cases() -> Vec<Case> {
    use Pattern::*;
    vec![
        case(62.0, Ballad, 48_000).human(6.0, 0.15).seed(1),
        case(68.0, Ballad, 44_100).seed(2),
        case(72.0, Swing16, 44_100).seed(3),
        case(72.0, ThreeTwo, 48_000).seed(4),
        case(82.0, Swing8, 48_000).seed(5),
        case(86.0, HalfTime, 44_100).seed(6),
        case(90.0, HalfNotesLoud, 44_100).human(5.0, 0.1).seed(7),
        case(90.0, Funk, 48_000).human(6.0, 0.15).seed(8),
        case(94.0, Swing16, 48_000).human(5.0, 0.1).seed(9),
        case(100.0, Waltz, 44_100).seed(10),
        case(108.0, Rock, 44_100).noisy(0.02).seed(11),
        case(115.0, ThreeTwo, 44_100).human(5.0, 0.1).seed(12),
        case(118.0, FourFloor, 48_000).seed(13),
        case(120.0, Funk, 44_100).seed(14),
        case(125.0, HalfTime, 48_000).seed(15),
        case(126.0, FourFloor, 44_100)
            .human(5.0, 0.1)
            .noisy(0.01)
            .seed(16),
        case(128.0, Swing8, 44_100).human(8.0, 0.2).seed(17),
        case(131.0, Rock, 48_000).human(6.0, 0.2).seed(18),
        case(138.0, Waltz, 48_000).human(5.0, 0.1).seed(19),
        case(145.0, HalfNotesLoud, 44_100).seed(20),
        case(160.0, Dnb, 48_000).seed(21),
        case(162.0, Rock, 44_100).seed(22),
        case(165.0, HalfTime, 48_000).human(6.0, 0.1).seed(23),
        case(174.0, Dnb, 44_100).human(5.0, 0.1).seed(24),
        case(122.0, House, 48_000).human(5.0, 0.15).seed(25),
        case(130.0, Techno, 44_100)
            .human(4.0, 0.2)
            .noisy(0.01)
            .seed(26),
        case(145.0, House, 44_100).human(6.0, 0.2).seed(27),
        case(170.0, Techno, 48_000).human(3.0, 0.1).seed(28),
        case(175.0, House, 44_100)
            .human(4.0, 0.15)
            .noisy(0.02)
            .seed(29),
        case(158.0, DriveRock, 44_100).human(5.0, 0.15).seed(30),
        case(112.0, DriveRock, 48_000).human(8.0, 0.2).seed(31),
        case(132.0, Funk, 48_000).human(5.0, 0.15).seed(32),
        case(150.0, Trap, 48_000)
            .human(5.0, 0.2)
            .noisy(0.01)
            .seed(33),
        case(120.0, HalfTimeRock, 44_100).human(6.0, 0.15).seed(34),
    ]
}

/// Counts of a set's results: within 4 % of the notated tempo (half-time grooves included:
/// their felt half tempo is an octave error since issue 22); within octave tolerance; cases.
struct Score {
    exact: usize,
    octave: usize,
    n: usize,
}

/// Analyses `cases` (two workers: the machine has two cores and the cases are independent),
/// prints the table and returns the counts.
fn score(cases: &[Case]) -> Score {
    let results: Vec<(Case, Option<Tempo>)> = std::thread::scope(|s| {
        let workers = 2;
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                s.spawn(move || {
                    cases
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| i % workers == w)
                        .map(|(_, c)| (*c, analyse(&render(c), c.sample_rate, 4096)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut all: Vec<_> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        all.sort_by(|a, b| a.0.bpm.total_cmp(&b.0.bpm));
        all
    });

    println!(
        "{:>7} {:<14} {:>6} {:>8} {:>7} {:>6} {:>8} {:>6}  pass",
        "truth", "pattern", "rate", "estimate", "err %", "conf", "alt", "conf"
    );
    let (mut exact, mut octave) = (0, 0);
    let mut alt_right = 0;
    for (c, t) in &results {
        let (est, conf) = t
            .as_ref()
            .map_or((f64::NAN, f64::NAN), |t| (t.bpm, t.confidence));
        let (alt, alt_conf) = t.as_ref().map_or((f64::NAN, f64::NAN), |t| {
            (
                t.alternative_bpm.unwrap_or(f64::NAN),
                t.alternative_confidence.unwrap_or(f64::NAN),
            )
        });
        let ok_exact = rel_err(est, c.bpm) <= 0.04;
        let ok_octave = [1.0 / 3.0, 0.5, 1.0, 2.0, 3.0]
            .iter()
            .any(|m| rel_err(est, c.bpm * m) <= 0.04);
        exact += usize::from(ok_exact);
        octave += usize::from(ok_octave);
        alt_right += usize::from(!ok_exact && rel_err(alt, c.bpm) <= 0.04);
        println!(
            "{:>7.1} {:<14} {:>6} {:>8.2} {:>+7.2} {:>6.3} {:>8.2} {:>6.3}  {}",
            c.bpm,
            format!("{:?}", c.pattern),
            c.sample_rate,
            est,
            100.0 * (est / c.bpm - 1.0),
            conf,
            alt,
            alt_conf,
            if ok_exact {
                "yes"
            } else if ok_octave && c.pattern.half_time() && rel_err(est, c.bpm / 2.0) <= 0.04 {
                "octave (felt half tempo)"
            } else if ok_octave {
                "octave"
            } else {
                "NO"
            },
        );
    }
    let n = results.len();
    println!(
        "within 4 % of the notated tempo: {exact}/{n}; within octave tolerance: {octave}/{n}; \
         misses whose alternative is the notated tempo: {alt_right}/{}",
        n - exact
    );
    Score { exact, octave, n }
}

#[test]
fn drum_patterns_accuracy() {
    let Score { exact, octave, n } = score(&cases());
    assert!(n >= 40);
    assert!(exact * 10 >= n * 9, "only {exact}/{n} within 4 %");
    assert_eq!(octave, n, "octave errors beyond ×{{1/3, 1/2, 2, 3}}");
}

/// The held-out set, not tuned on (31 of 34 within 4 % when the range defaults were chosen:
/// a 90 BPM funk groove at double tempo, 145 BPM "half notes loud" and 165 BPM half-time
/// grooves at half; the table prints the alternative, which is the notated tempo for all three).
#[test]
fn held_out_drum_patterns() {
    let Score { exact, octave, n } = score(&held_out_cases());
    assert!(n >= 30);
    assert!(exact * 10 >= n * 9, "only {exact}/{n} within 4 %");
    assert_eq!(octave, n, "octave errors beyond ×{{1/3, 1/2, 2, 3}}");
}

fn analyse_in(samples: &[f32], sample_rate: u32, lo: f64, hi: f64) -> Option<Tempo> {
    let mut a = TempoAnalyzer::with_range(sample_rate, lo, hi);
    a.feed(samples);
    a.finish()
}

/// A preferred range moves a reading outside it into it by an octave, and the other octave
/// becomes the alternative.
#[test]
fn range_moves_reading_into_it() {
    let sr = 44_100;
    // A 93 BPM rock groove (eighth-note hats) reads 93 by default (78–200 BPM preferred)...
    let slow = render(&case(93.0, Pattern::Rock, sr).human(5.0, 0.1));
    let t = analyse(&slow, sr, 4096).expect("rock 93");
    assert!(rel_err(t.bpm, 93.0) <= 0.04, "{t:?}");
    // ...and 186 when 130–200 BPM is asked for, with 93 as the alternative.
    let t = analyse_in(&slow, sr, 130.0, 200.0).expect("rock 93 in 130–200");
    assert!(rel_err(t.bpm, 186.0) <= 0.04, "{t:?}");
    assert!(rel_err(t.alternative_bpm.unwrap(), 93.0) <= 0.04, "{t:?}");
    // A 60 BPM ballad whose eighths are faint hats only is not moved: 120 BPM has too little
    // evidence of its own.
    let ballad = render(&case(60.0, Pattern::Ballad, sr));
    let t = analyse_in(&ballad, sr, 100.0, 180.0).expect("ballad in 100–180");
    assert!(rel_err(t.bpm, 60.0) <= 0.04, "{t:?}");
    // A 176 BPM rock groove reads 176 by default and 88 when 60–120 BPM is asked for.
    let rock = render(&case(176.0, Pattern::Rock, sr).human(8.0, 0.2));
    let t = analyse(&rock, sr, 4096).expect("rock");
    assert!(rel_err(t.bpm, 176.0) <= 0.04, "{t:?}");
    let t = analyse_in(&rock, sr, 60.0, 120.0).expect("rock in 60–120");
    assert!(rel_err(t.bpm, 88.0) <= 0.04, "{t:?}");
    assert!(rel_err(t.alternative_bpm.unwrap(), 176.0) <= 0.04, "{t:?}");
    // A reading already in the range stays; a reversed or too narrow range is made a valid
    // octave-wide one.
    let house = render(&case(126.0, Pattern::House, sr).human(4.0, 0.1));
    for (lo, hi) in [(90.0, 180.0), (180.0, 90.0), (120.0, 130.0)] {
        let t = analyse_in(&house, sr, lo, hi).expect("house");
        assert!(rel_err(t.bpm, 126.0) <= 0.04, "{lo}–{hi}: {t:?}");
    }
}

/// Four-on-the-floor whose kick is faint in the broadband envelope (issue 22's house grooves
/// read at half tempo): the low-band evidence must find the beat.
#[test]
fn faint_kick_four_on_the_floor() {
    let cs: Vec<Case> = [120.0, 128.0, 140.0, 150.0, 174.0]
        .iter()
        .enumerate()
        .map(|(i, &bpm)| {
            case(bpm, Pattern::FaintKickHouse, 44_100)
                .human(3.0, 0.1)
                .seed(100 + i as u64)
        })
        .collect();
    let Score { exact, octave, n } = score(&cs);
    assert_eq!(exact, n, "only {exact}/{n} within 4 %");
    assert_eq!(octave, n);
}

/// The runner-up octave is reported, never above the reading's confidence.
#[test]
fn alternative_is_an_octave_relative() {
    let sr = 48_000;
    for c in [
        case(128.0, Pattern::House, sr).human(4.0, 0.1),
        case(93.0, Pattern::Rock, sr),
        case(140.0, Pattern::Trap, sr).human(4.0, 0.15),
    ] {
        let t = analyse(&render(&c), sr, 4096).expect("tempo");
        let (alt, conf) = (
            t.alternative_bpm.unwrap(),
            t.alternative_confidence.unwrap(),
        );
        let ratio = alt / t.bpm;
        assert!(
            [1.0 / 3.0, 0.5, 2.0, 3.0, 2.0 / 3.0, 1.5]
                .iter()
                .any(|m| (ratio / m - 1.0).abs() <= 0.04),
            "{c:?}: {t:?}"
        );
        assert!((0.0..=t.confidence).contains(&conf), "{t:?}");
    }
}

#[test]
fn undefined_inputs_give_none() {
    // Minimum duration 6 s and confidence floor (0.25 for up to 12 s): see the module
    // documentation.
    let sr = 48_000;
    assert_eq!(
        analyse(&vec![0.0; 20 * sr as usize], sr, 4096),
        None,
        "silence"
    );
    let short = render(&case(120.0, Pattern::Rock, sr));
    assert_eq!(analyse(&short[..480], sr, 4096), None, "10 ms");
    // Below the documented minimum duration (6 s) even a clear pattern is undefined...
    assert_eq!(analyse(&short[..5 * sr as usize], sr, 4096), None, "5 s");
    // ...and just above it, it is found.
    let t = analyse(&short[..7 * sr as usize], sr, 4096).expect("7 s of rock");
    assert!(rel_err(t.bpm, 120.0) <= 0.04, "{t:?}");

    for (seed, secs) in [(99, 20.0), (5, 6.5), (6, 6.5), (7, 10.0)] {
        let mut rng = rng(seed);
        let n = (secs * f64::from(sr)) as usize;
        let noise: Vec<f32> = (0..n).map(|_| (0.5 * rng.uniform()) as f32).collect();
        assert_eq!(analyse(&noise, sr, 4096), None, "white noise {secs} s");
    }
    for f in [30.0, 55.0, 440.0, 1000.0] {
        let w = TAU * f / f64::from(sr);
        let sine: Vec<f32> = (0..20 * sr as usize)
            .map(|n| (0.5 * (w * n as f64).sin()) as f32)
            .collect();
        assert_eq!(analyse(&sine, sr, 4096), None, "sine {f} Hz");
    }
}

#[test]
fn sample_rates_agree() {
    let truth = 123.0;
    let mut got = Vec::new();
    for sr in [8_000, 22_050, 44_100, 96_000, 192_000] {
        let c = case(truth, Pattern::Rock, sr).at(sr, 12.0).human(5.0, 0.1);
        let t = analyse(&render(&c), sr, 4096).expect("tempo");
        println!(
            "{sr:>6} Hz: {:.2} BPM (confidence {:.3})",
            t.bpm, t.confidence
        );
        got.push(t.bpm);
    }
    for &b in &got {
        assert!(rel_err(b, truth) <= 0.04, "{got:?}");
        assert!(rel_err(b, got[0]) <= 0.04, "{got:?}");
    }
}

#[test]
fn block_size_does_not_matter() {
    let sr = 44_100;
    let x = render(&case(97.0, Pattern::Funk, sr).at(sr, 10.0));
    let one = analyse(&x, sr, 1).expect("tempo");
    let big = analyse(&x, sr, 4096).expect("tempo");
    let odd = analyse(&x, sr, 1237).expect("tempo");
    assert!((one.bpm - big.bpm).abs() <= 1e-9 && (one.confidence - big.confidence).abs() <= 1e-9);
    assert!((odd.bpm - big.bpm).abs() <= 1e-9 && (odd.confidence - big.confidence).abs() <= 1e-9);
    assert!(rel_err(big.bpm, 97.0) <= 0.04, "{big:?}");
}

#[test]
fn analyzer_is_send() {
    fn send<T: Send>() {}
    send::<TempoAnalyzer>();
}

#[test]
fn a_steady_beat_under_noise_is_reported_with_a_low_confidence() {
    // 90 s of a 150 BPM rock groove under loud noise: the onset pattern repeats weakly
    // (confidence 0.21 and 0.11), but over 90 s noise alone measures a fifth of that. A long
    // file reports it, with its low confidence, where one window's worth would not.
    let sr = 22_050;
    for noise in [0.5, 0.8] {
        let c = case(150.0, Pattern::Rock, sr)
            .at(sr, 90.0)
            .human(8.0, 0.3)
            .noisy(noise)
            .seed(3);
        let t = analyse(&render(&c), sr, 4096).unwrap_or_else(|| panic!("noise {noise}: none"));
        assert!(rel_err(t.bpm, 150.0) <= 0.04, "noise {noise}: {t:?}");
        assert!(
            t.confidence < 0.25,
            "noise {noise}: {t:?} (low, as it should be)"
        );
    }
    // The same length of noise alone has no tempo.
    for seed in [11, 12, 13] {
        let mut rng = rng(seed);
        let noise: Vec<f32> = (0..90 * sr as usize)
            .map(|_| (0.5 * rng.uniform()) as f32)
            .collect();
        assert_eq!(
            analyse(&noise, sr, 4096),
            None,
            "90 s of noise, seed {seed}"
        );
    }
}
