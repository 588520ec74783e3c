//! Acceptance tests for the key estimator, on music synthesized here: additive-partial piano,
//! organ, string-pad and bass voices playing voice-led chord progressions in all 24 keys, a
//! bass line, a melody drawn from the scale, and drums or noise in some cases.
//!
//! `cargo test --test key -- --nocapture` prints the per-case table and the profile comparison.

use std::f64::consts::TAU;

use sluice_core::analysis::key::{Key, KeyAnalyzer, Mode, PROFILE_SETS, key_for_profile};

// ------------------------------------------------------------------------------------------
// Deterministic randomness

/// The core's seeded xorshift64* (seed spread so that nearby seeds differ at once), with the
/// draws these tests need.
struct Rng(sluice_core::signal::Rng);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(sluice_core::signal::Rng::new(
            seed.wrapping_mul(0x9E37_79B9_7F4A_7C15),
        ))
    }
    fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }
    fn below(&mut self, n: usize) -> usize {
        (self.unit() * n as f64) as usize % n
    }
    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
}

// ------------------------------------------------------------------------------------------
// Instruments and rendering

#[derive(Debug, Clone, Copy, PartialEq)]
enum Timbre {
    Piano,
    Organ,
    Strings,
    Bass,
    Flute,
}

struct Instrument {
    /// (harmonic number, relative amplitude)
    partials: &'static [(f64, f64)],
    attack: f64,
    release: f64,
    /// Decay time constant of the fundamental, s (infinite = sustained).
    tau: f64,
    /// Higher partials decay faster: tau_k = tau / (1 + tau_slope (k - 1)).
    tau_slope: f64,
    /// Inharmonicity coefficient (stiff strings).
    inharm: f64,
    /// Extra detuned copies (cents, gain) for chorus / unison.
    unison: &'static [(f64, f64)],
}

fn instrument(t: Timbre) -> Instrument {
    match t {
        Timbre::Piano => Instrument {
            partials: &[
                (1.0, 1.0),
                (2.0, 0.55),
                (3.0, 0.32),
                (4.0, 0.25),
                (5.0, 0.14),
                (6.0, 0.1),
                (7.0, 0.05),
                (8.0, 0.05),
            ],
            attack: 0.004,
            release: 0.12,
            tau: 1.6,
            tau_slope: 0.5,
            inharm: 0.0004,
            unison: &[],
        },
        Timbre::Organ => Instrument {
            partials: &[
                (1.0, 1.0),
                (2.0, 0.7),
                (3.0, 0.35),
                (4.0, 0.3),
                (6.0, 0.15),
                (8.0, 0.12),
            ],
            attack: 0.02,
            release: 0.06,
            tau: f64::INFINITY,
            tau_slope: 0.0,
            inharm: 0.0,
            unison: &[(6.0, 0.5)],
        },
        Timbre::Strings => Instrument {
            partials: &[
                (1.0, 1.0),
                (2.0, 0.5),
                (3.0, 0.33),
                (4.0, 0.25),
                (5.0, 0.2),
                (6.0, 0.16),
                (7.0, 0.12),
            ],
            attack: 0.15,
            release: 0.25,
            tau: 8.0,
            tau_slope: 0.1,
            inharm: 0.0,
            unison: &[(-9.0, 0.7), (8.0, 0.7)],
        },
        Timbre::Bass => Instrument {
            partials: &[(1.0, 1.0), (2.0, 0.5), (3.0, 0.3), (4.0, 0.15), (5.0, 0.08)],
            attack: 0.006,
            release: 0.06,
            tau: 1.2,
            tau_slope: 0.4,
            inharm: 0.0001,
            unison: &[],
        },
        Timbre::Flute => Instrument {
            partials: &[(1.0, 1.0), (2.0, 0.35), (3.0, 0.15), (4.0, 0.07)],
            attack: 0.03,
            release: 0.08,
            tau: 4.0,
            tau_slope: 0.0,
            inharm: 0.0,
            unison: &[],
        },
    }
}

#[derive(Debug, Clone, Copy)]
struct Note {
    midi: f64,
    start: f64,
    dur: f64,
    gain: f64,
    timbre: Timbre,
}

#[derive(Debug, Clone, Copy)]
enum Drum {
    Kick,
    Snare,
    Hat,
}

#[derive(Debug, Clone, Default)]
struct Piece {
    notes: Vec<Note>,
    drums: Vec<(f64, Drum)>,
    /// White-noise amplitude relative to the music's peak before normalisation.
    noise: f64,
    seconds: f64,
    /// Global detuning, cents.
    cents: f64,
    seed: u64,
}

fn render(piece: &Piece, sample_rate: u32) -> Vec<f32> {
    let sr = f64::from(sample_rate);
    let frames = (piece.seconds * sr) as usize;
    let mut out = vec![0f64; frames];
    let mut env = Vec::new();
    let tune = 2f64.powf(piece.cents / 1200.0);
    for note in &piece.notes {
        let inst = instrument(note.timbre);
        let start = (note.start * sr) as usize;
        if start >= frames {
            continue;
        }
        let on = (note.dur * sr) as usize;
        let rel = (inst.release * sr).max(1.0) as usize;
        let len = (on + rel).min(frames - start);
        let att = (inst.attack * sr).max(1.0);
        let rel_k = (-5.0 / rel as f64).exp();
        env.clear();
        let mut r = 1.0;
        for i in 0..len {
            if i >= on {
                r *= rel_k;
            }
            env.push((i as f64 / att).min(1.0) * r);
        }
        let f0 = 440.0 * 2f64.powf((note.midi - 69.0) / 12.0) * tune;
        let copies = std::iter::once((0.0, 1.0)).chain(inst.unison.iter().copied());
        for (cents, copy_gain) in copies {
            let f_copy = f0 * 2f64.powf(cents / 1200.0);
            for &(k, a) in inst.partials {
                let f = k * f_copy * (1.0 + inst.inharm * k * k).sqrt();
                if f > 0.45 * sr {
                    continue;
                }
                let tau = inst.tau / (1.0 + inst.tau_slope * (k - 1.0));
                let g = if tau.is_finite() {
                    (-1.0 / (tau * sr)).exp()
                } else {
                    1.0
                };
                let w = TAU * f / sr;
                let (c, s) = (w.cos(), w.sin());
                // Start each partial at a pseudo-random phase.
                let ph = (k * 1.618 + note.midi * 0.37 + cents).fract() * TAU;
                let (mut x, mut y) = (ph.cos(), ph.sin());
                let mut amp = a * copy_gain * note.gain;
                for (o, e) in out[start..start + len].iter_mut().zip(&env) {
                    *o += amp * e * y;
                    let nx = x * c - y * s;
                    y = x * s + y * c;
                    x = nx;
                    amp *= g;
                }
            }
        }
    }
    let mut rng = Rng::new(piece.seed ^ 0xD5);
    for &(t, drum) in &piece.drums {
        let start = (t * sr) as usize;
        if start >= frames {
            continue;
        }
        match drum {
            Drum::Kick => {
                let len = ((0.35 * sr) as usize).min(frames - start);
                let mut ph = 0.0;
                for (i, o) in out[start..start + len].iter_mut().enumerate() {
                    let t = i as f64 / sr;
                    let f = 45.0 + 75.0 * (-t / 0.03).exp();
                    ph += TAU * f / sr;
                    *o += 0.9 * (-t / 0.12).exp() * ph.sin();
                }
            }
            Drum::Snare => {
                let len = ((0.25 * sr) as usize).min(frames - start);
                for (i, o) in out[start..start + len].iter_mut().enumerate() {
                    let t = i as f64 / sr;
                    let noise = 2.0 * rng.unit() - 1.0;
                    *o += 0.5 * (-t / 0.07).exp() * noise
                        + 0.3 * (-t / 0.04).exp() * (TAU * 185.0 * t).sin();
                }
            }
            Drum::Hat => {
                let len = ((0.06 * sr) as usize).min(frames - start);
                let mut prev = 0.0;
                for (i, o) in out[start..start + len].iter_mut().enumerate() {
                    let t = i as f64 / sr;
                    let noise = 2.0 * rng.unit() - 1.0;
                    *o += 0.25 * (-t / 0.015).exp() * (noise - prev);
                    prev = noise;
                }
            }
        }
    }
    let peak = out.iter().fold(0f64, |m, x| m.max(x.abs())).max(1e-9);
    if piece.noise > 0.0 {
        for o in out.iter_mut() {
            *o += piece.noise * peak * (2.0 * rng.unit() - 1.0);
        }
    }
    let peak = out.iter().fold(0f64, |m, x| m.max(x.abs())).max(1e-9);
    out.iter().map(|&x| (0.8 * x / peak) as f32).collect()
}

// ------------------------------------------------------------------------------------------
// Harmony

/// A chord: root as semitones above the tonic, intervals above the root.
#[derive(Debug, Clone, Copy)]
struct Chord(i32, &'static [i32]);

const MAJ: &[i32] = &[0, 4, 7];
const MIN: &[i32] = &[0, 3, 7];
const DOM7: &[i32] = &[0, 4, 7, 10];
const MIN7: &[i32] = &[0, 3, 7, 10];
const MAJ7: &[i32] = &[0, 4, 7, 11];
const HALF_DIM7: &[i32] = &[0, 3, 6, 10];

struct Progression {
    name: &'static str,
    chords: &'static [Chord],
}

const MAJOR_PROGRESSIONS: &[Progression] = &[
    Progression {
        name: "I-IV-V-I",
        chords: &[Chord(0, MAJ), Chord(5, MAJ), Chord(7, MAJ), Chord(0, MAJ)],
    },
    Progression {
        name: "I-vi-IV-V",
        chords: &[Chord(0, MAJ), Chord(9, MIN), Chord(5, MAJ), Chord(7, MAJ)],
    },
    Progression {
        name: "ii7-V7-Imaj7",
        chords: &[
            Chord(2, MIN7),
            Chord(7, DOM7),
            Chord(0, MAJ7),
            Chord(0, MAJ7),
        ],
    },
    Progression {
        name: "I-V-vi-IV",
        chords: &[Chord(0, MAJ), Chord(7, MAJ), Chord(9, MIN), Chord(5, MAJ)],
    },
];

const MINOR_PROGRESSIONS: &[Progression] = &[
    Progression {
        name: "i-iv-V-i",
        chords: &[Chord(0, MIN), Chord(5, MIN), Chord(7, MAJ), Chord(0, MIN)],
    },
    Progression {
        name: "i-VI-III-VII",
        chords: &[Chord(0, MIN), Chord(8, MAJ), Chord(3, MAJ), Chord(10, MAJ)],
    },
    Progression {
        name: "i-iv-v-i",
        chords: &[Chord(0, MIN), Chord(5, MIN), Chord(7, MIN), Chord(0, MIN)],
    },
    Progression {
        name: "i-VII-VI-V",
        chords: &[Chord(0, MIN), Chord(10, MAJ), Chord(8, MAJ), Chord(7, MAJ)],
    },
    Progression {
        name: "i-VI-iv-V",
        chords: &[Chord(0, MIN), Chord(8, MAJ), Chord(5, MIN), Chord(7, MAJ)],
    },
    Progression {
        name: "iiø7-V7-i7",
        chords: &[
            Chord(2, HALF_DIM7),
            Chord(7, DOM7),
            Chord(0, MIN7),
            Chord(0, MIN),
        ],
    },
];

const MAJOR_SCALE: [i32; 7] = [0, 2, 4, 5, 7, 9, 11];
const NATURAL_MINOR: [i32; 7] = [0, 2, 3, 5, 7, 8, 10];
const HARMONIC_MINOR: [i32; 7] = [0, 2, 3, 5, 7, 8, 11];

const NAMES: [&str; 12] = [
    "C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B",
];

/// How a case is arranged and produced.
#[derive(Debug, Clone, Copy)]
struct Style {
    comp: Timbre,
    lead: Timbre,
    drums: bool,
    noise: bool,
    bpm: f64,
    /// End with a held tonic chord (a final cadence) instead of stopping mid-loop.
    ending: bool,
}

impl Style {
    fn label(&self) -> String {
        let mut s = format!("{:?}/{:?} {:.0}bpm", self.comp, self.lead, self.bpm);
        if self.drums {
            s.push_str(" +drums");
        }
        if self.noise {
            s.push_str(" +noise");
        }
        if self.ending {
            s.push_str(" +end");
        }
        s
    }
}

fn random_style(rng: &mut Rng) -> Style {
    let comp = [Timbre::Piano, Timbre::Organ, Timbre::Strings][rng.below(3)];
    let lead = [Timbre::Piano, Timbre::Flute, Timbre::Organ][rng.below(3)];
    Style {
        comp,
        lead,
        drums: rng.chance(0.5),
        noise: rng.chance(0.3),
        bpm: rng.range(80.0, 132.0),
        ending: rng.chance(0.5),
    }
}

/// Close-position voicing of `pcs` nearest to the previous voicing (or around E4 at first).
fn voice(pcs: &[i32], prev: &[i32]) -> Vec<i32> {
    let mut best: Option<(i32, Vec<i32>)> = None;
    for inv in 0..pcs.len() {
        for base in [52, 55, 58] {
            let mut v = Vec::with_capacity(pcs.len());
            let mut last = base - 1;
            for j in 0..pcs.len() {
                let pc = pcs[(inv + j) % pcs.len()];
                let mut m = last + 1 + (pc - (last + 1)).rem_euclid(12);
                if m <= last {
                    m += 12;
                }
                v.push(m);
                last = m;
            }
            if *v.last().unwrap() > 76 {
                continue;
            }
            let cost = if prev.is_empty() {
                (v.iter().sum::<i32>() / v.len() as i32 - 64).abs()
            } else {
                let mean_v = v.iter().sum::<i32>() as f64 / v.len() as f64;
                let mean_p = prev.iter().sum::<i32>() as f64 / prev.len() as f64;
                let mut c = (mean_v - mean_p).abs() as i32 * 2;
                for &n in &v {
                    c += prev.iter().map(|&p| (p - n).abs()).min().unwrap();
                }
                c
            };
            if best.as_ref().is_none_or(|(bc, _)| cost < *bc) {
                best = Some((cost, v));
            }
        }
    }
    best.unwrap().1
}

/// A piece in `tonic`/`mode` playing `prog` (looped to at least 8 s) in `style`.
fn compose(tonic: i32, mode: Mode, prog: &Progression, style: Style, seed: u64) -> Piece {
    let mut rng = Rng::new(seed);
    let beat = 60.0 / style.bpm;
    let bar = 4.0 * beat;
    let loop_len = bar * prog.chords.len() as f64;
    let loops = (8.0 / loop_len).ceil().max(1.0) as usize;
    let bars = loops * prog.chords.len() + usize::from(style.ending);
    let mut piece = Piece {
        seconds: bars as f64 * bar + 0.5,
        noise: if style.noise { 0.06 } else { 0.0 },
        seed,
        ..Piece::default()
    };
    let bass_fifth = rng.chance(0.5);
    let mut prev_voicing: Vec<i32> = Vec::new();
    let mut mel = 72 + (tonic + 2).rem_euclid(12) - 2; // around D5 of the key
    for bar_i in 0..bars {
        let t0 = bar_i as f64 * bar;
        let final_bar = style.ending && bar_i + 1 == bars;
        let Chord(root, ivs) = if final_bar {
            Chord(0, if mode == Mode::Major { MAJ } else { MIN })
        } else {
            prog.chords[bar_i % prog.chords.len()]
        };
        let pcs: Vec<i32> = ivs
            .iter()
            .map(|i| (tonic + root + i).rem_euclid(12))
            .collect();
        let v = voice(&pcs, &prev_voicing);
        // Comping.
        let strikes: &[(f64, f64)] = if style.comp == Timbre::Piano {
            &[(0.0, 2.0), (2.0, 1.5), (3.5, 0.5)]
        } else {
            &[(0.0, 4.0)]
        };
        for &(at, dur) in strikes {
            for &m in &v {
                piece.notes.push(Note {
                    midi: f64::from(m) + rng.range(-0.06, 0.06),
                    start: t0 + at * beat + rng.range(0.0, 0.015),
                    dur: dur * beat,
                    gain: 0.22,
                    timbre: style.comp,
                });
            }
        }
        prev_voicing = v;
        // Bass: root on 1, root or fifth on 3.
        let bass_root = 36 + (tonic + root).rem_euclid(12);
        let third_beat = if bass_fifth {
            bass_root + 7
        } else {
            bass_root + 12
        };
        for (at, m) in [(0.0, bass_root), (2.0, third_beat)] {
            piece.notes.push(Note {
                midi: f64::from(m),
                start: t0 + at * beat,
                dur: 1.8 * beat,
                gain: 0.45,
                timbre: Timbre::Bass,
            });
        }
        // Melody: random walk on the scale; chord tone on the downbeat.
        let leading_tone = ivs.iter().any(|i| (root + i).rem_euclid(12) == 11);
        let scale = match mode {
            Mode::Major => MAJOR_SCALE,
            Mode::Minor if leading_tone => HARMONIC_MINOR,
            Mode::Minor => NATURAL_MINOR,
        };
        let in_scale: Vec<i32> = (60..=90)
            .filter(|m| scale.contains(&(m - tonic).rem_euclid(12)))
            .collect();
        const RHYTHMS: &[&[f64]] = &[
            &[1.0, 1.0, 1.0, 1.0],
            &[2.0, 1.0, 1.0],
            &[1.0, 0.5, 0.5, 2.0],
            &[1.5, 0.5, 1.0, 1.0],
            &[0.5, 0.5, 1.0, 1.0, 1.0],
            &[3.0, 1.0],
        ];
        let rhythm = RHYTHMS[rng.below(RHYTHMS.len())];
        let mut at = 0.0;
        for (j, &d) in rhythm.iter().enumerate() {
            let phrase_end = j + 1 == rhythm.len()
                && (final_bar || bar_i % prog.chords.len() + 1 == prog.chords.len());
            if phrase_end {
                // Melodic closure: a phrase ends on a tone of the tonic triad.
                let third = if mode == Mode::Major { 4 } else { 3 };
                mel = (62..=86)
                    .filter(|m| [0, third, 7].contains(&(m - tonic).rem_euclid(12)))
                    .min_by_key(|m| (m - mel).abs())
                    .unwrap();
            } else if j == 0 {
                mel = (62..=86)
                    .filter(|m| pcs.contains(&(m % 12)))
                    .min_by_key(|m| (m - mel).abs())
                    .unwrap();
            } else {
                let idx = in_scale.iter().position(|&m| m >= mel).unwrap_or(0) as i32;
                let mut step = [-2, -1, -1, 1, 1, 2][rng.below(6)];
                if (mel > 82 && step > 0) || (mel < 66 && step < 0) {
                    step = -step;
                }
                let k = (idx + step).clamp(0, in_scale.len() as i32 - 1);
                mel = in_scale[k as usize];
            }
            if !rng.chance(0.1) {
                piece.notes.push(Note {
                    midi: f64::from(mel) + rng.range(-0.08, 0.08),
                    start: t0 + at * beat,
                    dur: d * beat * 0.9,
                    gain: 0.4,
                    timbre: style.lead,
                });
            }
            at += d;
        }
        if style.drums {
            for eighth in 0..8 {
                let t = t0 + eighth as f64 * beat / 2.0;
                piece.drums.push((t, Drum::Hat));
                match eighth {
                    0 | 4 => piece.drums.push((t, Drum::Kick)),
                    2 | 6 => piece.drums.push((t, Drum::Snare)),
                    _ => {}
                }
            }
        }
    }
    piece
}

// ------------------------------------------------------------------------------------------
// Analysis helpers and scoring

fn analyze(samples: &[f32], sample_rate: u32, block: usize) -> Option<Key> {
    let mut a = KeyAnalyzer::new(sample_rate);
    for b in samples.chunks(block) {
        a.feed(b);
    }
    a.finish()
}

fn key_name(tonic: i32, mode: Mode) -> String {
    format!(
        "{} {}",
        NAMES[tonic as usize],
        if mode == Mode::Major {
            "major"
        } else {
            "minor"
        }
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Exact,
    Relative,
    Fifth,
    Parallel,
    Other,
    Undefined,
}

fn verdict(truth: (i32, Mode), got: Option<(i32, Mode)>) -> Verdict {
    let Some((t, m)) = got else {
        return Verdict::Undefined;
    };
    let (tt, tm) = truth;
    let d = (t - tt).rem_euclid(12);
    if (t, m) == truth {
        Verdict::Exact
    } else if m == tm && (d == 7 || d == 5) {
        Verdict::Fifth
    } else if m != tm && d == 0 {
        Verdict::Parallel
    } else if (tm == Mode::Major && m == Mode::Minor && d == 9)
        || (tm == Mode::Minor && m == Mode::Major && d == 3)
    {
        Verdict::Relative
    } else {
        Verdict::Other
    }
}

struct Case {
    tonic: i32,
    mode: Mode,
    prog: &'static str,
    style: Style,
    rate: u32,
    key: Option<Key>,
}

fn run_case(index: usize) -> Case {
    let tonic = (index % 12) as i32;
    let mode = if (index / 12).is_multiple_of(2) {
        Mode::Major
    } else {
        Mode::Minor
    };
    let second = index >= 24;
    let progs = if mode == Mode::Major {
        MAJOR_PROGRESSIONS
    } else {
        MINOR_PROGRESSIONS
    };
    // Each progression type gets the same number of cases (6 per major, 4 per minor type).
    let p = (tonic as usize + if second { progs.len() / 2 } else { 0 }) % progs.len();
    let prog = &progs[p];
    let seed = 1000 + index as u64;
    let style = random_style(&mut Rng::new(seed * 7));
    let rate = if index.is_multiple_of(2) {
        44_100
    } else {
        48_000
    };
    let piece = compose(tonic, mode, prog, style, seed);
    let samples = render(&piece, rate);
    let key = analyze(&samples, rate, 4096);
    Case {
        tonic,
        mode,
        prog: prog.name,
        style,
        rate,
        key,
    }
}

// ------------------------------------------------------------------------------------------
// Tests

#[test]
fn all_24_keys_two_progressions_each() {
    const N: usize = 48;
    // Render and analyse on two threads (the test machine has two cores).
    let mut cases: Vec<Case> = std::thread::scope(|s| {
        let a = s.spawn(|| (0..N).step_by(2).map(run_case).collect::<Vec<_>>());
        let b = s.spawn(|| (1..N).step_by(2).map(run_case).collect::<Vec<_>>());
        let mut v = a.join().unwrap();
        v.extend(b.join().unwrap());
        v
    });
    cases.sort_by_key(|c| (c.mode == Mode::Minor, c.tonic, c.prog));

    println!(
        "\n{:<10} {:<14} {:<32} {:>6}  {:<10} {:>5} {:>6}  verdict",
        "key", "progression", "arrangement", "rate", "estimate", "conf", "cents"
    );
    let mut counts = [0usize; 6];
    for c in &cases {
        let truth = (c.tonic, c.mode);
        let got = c.key.as_ref().map(|k| (i32::from(k.tonic), k.mode));
        let v = verdict(truth, got);
        counts[v as usize] += 1;
        let (est, conf, cents) = match &c.key {
            Some(k) => (k.name.clone(), k.confidence, k.tuning_cents),
            None => ("-".into(), 0.0, 0.0),
        };
        println!(
            "{:<10} {:<14} {:<32} {:>6}  {:<10} {:>5.2} {:>+6.1}  {:?}",
            key_name(c.tonic, c.mode),
            c.prog,
            c.style.label(),
            c.rate,
            est,
            conf,
            cents,
            v
        );
    }
    println!(
        "exact {}/{N}, relative {}, fifth {}, parallel {}, other {}, undefined {}",
        counts[0], counts[1], counts[2], counts[3], counts[4], counts[5]
    );

    // Spelling: every exact result carries the conventional name.
    for c in &cases {
        if let Some(k) = &c.key {
            assert_eq!(k.tonic_name, spelled(i32::from(k.tonic), k.mode));
            let mode = if k.mode == Mode::Major {
                "major"
            } else {
                "minor"
            };
            assert_eq!(k.name, format!("{} {mode}", k.tonic_name));
            assert!((0.0..=1.0).contains(&k.confidence));
        }
    }

    // Profile comparison on the same chroma vectors.
    println!(
        "\n{:<26} {:>6} {:>9} {:>6} {:>9} {:>6}",
        "profile set", "exact", "relative", "fifth", "parallel", "other"
    );
    let mut exact_by_profile = Vec::new();
    for set in &PROFILE_SETS {
        let name = set.name;
        let mut pc = [0usize; 6];
        for c in &cases {
            let got = c.key.as_ref().map(|k| {
                let (tonic, mode) = key_for_profile(&k.chroma, set);
                (i32::from(tonic), mode)
            });
            pc[verdict((c.tonic, c.mode), got) as usize] += 1;
        }
        println!(
            "{name:<26} {:>3}/{N} {:>9} {:>6} {:>9} {:>6}",
            pc[0], pc[1], pc[2], pc[3], pc[4]
        );
        exact_by_profile.push(pc[0]);
    }
    assert!(
        counts[0] * 10 >= N * 9,
        "only {}/{N} keys exactly right",
        counts[0]
    );
    // The analyzer's default must be (one of) the best measured profile sets.
    let best = *exact_by_profile.iter().max().unwrap();
    assert_eq!(counts[0], best, "default profile is not the best measured");
}

fn spelled(tonic: i32, mode: Mode) -> &'static str {
    let names = match mode {
        Mode::Major => [
            "C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B",
        ],
        Mode::Minor => [
            "C", "C#", "D", "Eb", "E", "F", "F#", "G", "G#", "A", "Bb", "B",
        ],
    };
    names[tonic as usize]
}

fn standard_style() -> Style {
    Style {
        comp: Timbre::Piano,
        lead: Timbre::Flute,
        drums: true,
        noise: false,
        bpm: 100.0,
        ending: false,
    }
}

#[test]
fn undefined_inputs_give_none() {
    let sr = 44_100;
    assert_eq!(analyze(&vec![0.0; 10 * sr as usize], sr, 4096), None);

    let music = render(
        &compose(9, Mode::Minor, &MINOR_PROGRESSIONS[0], standard_style(), 5),
        sr,
    );
    assert_eq!(analyze(&music[..441], sr, 4096), None, "10 ms");
    assert_eq!(
        analyze(&music[..sr as usize * 3 / 2], sr, 4096),
        None,
        "1.5 s"
    );
    // 2 s of music followed by silence is still too little sounding audio.
    let mut padded = music[..sr as usize * 3 / 2].to_vec();
    padded.resize(sr as usize * 10, 0.0);
    assert_eq!(analyze(&padded, sr, 4096), None, "1.5 s + silence");
    // ... while 4 s is enough.
    let k = analyze(&music[..sr as usize * 4], sr, 4096).expect("4 s of music");
    println!("4 s excerpt: {} ({:.2})", k.name, k.confidence);

    let mut rng = Rng::new(42);
    let noise: Vec<f32> = (0..10 * sr as usize)
        .map(|_| (0.5 * (2.0 * rng.unit() - 1.0)) as f32)
        .collect();
    assert_eq!(analyze(&noise, sr, 4096), None, "white noise");

    let mut clicks = vec![0f32; 10 * sr as usize];
    for i in (0..clicks.len()).step_by(sr as usize / 2) {
        clicks[i] = 0.9;
    }
    assert_eq!(analyze(&clicks, sr, 4096), None, "click train");

    let drums = Piece {
        drums: (0..40)
            .flat_map(|i| {
                let t = i as f64 * 0.25;
                [
                    (t, Drum::Hat),
                    (t, if i % 2 == 0 { Drum::Kick } else { Drum::Snare }),
                ]
            })
            .collect(),
        seconds: 10.0,
        seed: 3,
        ..Piece::default()
    };
    let d = analyze(&render(&drums, sr), sr, 4096);
    println!("drums only: {d:?}");

    // Out-of-range sample rates are undefined, not a panic.
    assert_eq!(analyze(&music, 4_000, 4096), None);
}

#[test]
fn sample_rates_agree() {
    let pieces = [
        (4, Mode::Minor, &MINOR_PROGRESSIONS[0]),
        (10, Mode::Major, &MAJOR_PROGRESSIONS[1]),
    ];
    for (i, (tonic, mode, prog)) in pieces.into_iter().enumerate() {
        let piece = compose(tonic, mode, prog, standard_style(), 77 + i as u64);
        for rate in [8_000, 22_050, 44_100, 96_000, 192_000] {
            let k = analyze(&render(&piece, rate), rate, 4096).expect("a key");
            println!("{:>6} Hz: {} ({:.2})", rate, k.name, k.confidence);
            assert_eq!((i32::from(k.tonic), k.mode), (tonic, mode), "at {rate} Hz");
        }
    }
}

#[test]
fn detuned_by_30_cents() {
    for (i, (tonic, mode, prog, cents)) in [
        (2, Mode::Major, &MAJOR_PROGRESSIONS[0], 30.0),
        (7, Mode::Minor, &MINOR_PROGRESSIONS[2], 30.0),
        (11, Mode::Major, &MAJOR_PROGRESSIONS[3], -30.0),
    ]
    .into_iter()
    .enumerate()
    {
        let mut piece = compose(tonic, mode, prog, standard_style(), 300 + i as u64);
        piece.cents = cents;
        let k = analyze(&render(&piece, 48_000), 48_000, 4096).expect("a key");
        println!("{cents:+} cents: {} tuning {:+.1}", k.name, k.tuning_cents);
        assert_eq!((i32::from(k.tonic), k.mode), (tonic, mode));
        assert!((k.tuning_cents - cents).abs() < 8.0, "{}", k.tuning_cents);
    }
}

#[test]
fn block_size_does_not_matter() {
    let piece = compose(1, Mode::Major, &MAJOR_PROGRESSIONS[2], standard_style(), 9);
    let x = render(&piece, 44_100);
    let a = analyze(&x, 44_100, 4096);
    let b = analyze(&x, 44_100, 1);
    assert!(a.is_some());
    assert_eq!(a, b);
    // Irregular block sizes, too.
    let mut an = KeyAnalyzer::new(44_100);
    let mut rng = Rng::new(5);
    let mut rest = &x[..];
    while !rest.is_empty() {
        let n = (1 + rng.below(3000)).min(rest.len());
        an.feed(&rest[..n]);
        rest = &rest[n..];
    }
    assert_eq!(an.finish(), a);
}

#[test]
fn analyzer_is_send() {
    fn assert_send<T: Send>() {}
    assert_send::<KeyAnalyzer>();
    assert_send::<Key>();
}

/// Pink noise (Voss–McCartney: 16 white sources, source k redrawn every 2^k samples, summed).
fn pink_noise(seed: u64, frames: usize) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    let mut rows = [0.0f64; 16];
    for r in &mut rows {
        *r = rng.range(-1.0, 1.0);
    }
    let mut sum: f64 = rows.iter().sum();
    (0..frames)
        .map(|i| {
            if i > 0 {
                let k = (i.trailing_zeros() as usize).min(15);
                sum -= rows[k];
                rows[k] = rng.range(-1.0, 1.0);
                sum += rows[k];
            }
            (0.05 * (sum + rng.range(-1.0, 1.0))) as f32
        })
        .collect()
}

/// Notes of one timbre struck together every `every` seconds for 10 s.
fn repeated(midis: &[f64], timbre: Timbre, every: f64) -> Piece {
    let count = (10.0 / every) as usize;
    Piece {
        notes: (0..count)
            .flat_map(|i| {
                midis.iter().map(move |&midi| Note {
                    midi,
                    start: i as f64 * every,
                    dur: every * 0.9,
                    gain: 0.5,
                    timbre,
                })
            })
            .collect(),
        seconds: 10.0,
        seed: 11,
        ..Piece::default()
    }
}

/// A band-limited sawtooth (or, `odd`, square) wave at `f0` for 10 s: partials `1/k` up to
/// 5 kHz, the brightest harmonic tones.
fn harmonic_tone(f0: f64, sr: u32, odd: bool) -> Vec<f32> {
    let sr = f64::from(sr);
    let partials = (5_000.0 / f0) as usize;
    let mut out = vec![0f32; 10 * sr as usize];
    for k in (1..=partials).filter(|k| !odd || k % 2 == 1) {
        let w = TAU * k as f64 * f0 / sr;
        for (i, o) in out.iter_mut().enumerate() {
            *o += (0.3 * (w * i as f64).sin() / k as f64) as f32;
        }
    }
    out
}

#[test]
fn no_tonal_centre_gives_none() {
    let sr = 44_100;
    let mut cases: Vec<(String, Vec<f32>)> = Vec::new();
    for f in [440.0, 261.63, 97.0, 1234.5] {
        cases.push((
            format!("sine {f} Hz"),
            sluice_core::signal::sine(sr, f, 0.5, 10 * sr as usize),
        ));
    }
    for timbre in [
        Timbre::Piano,
        Timbre::Organ,
        Timbre::Strings,
        Timbre::Bass,
        Timbre::Flute,
    ] {
        for midi in [45.0, 57.0, 64.0, 70.0] {
            cases.push((
                format!("{timbre:?} note {midi}"),
                render(&repeated(&[midi], timbre, 0.5), sr),
            ));
        }
        cases.push((
            format!("{timbre:?} held note"),
            render(&repeated(&[60.0], timbre, 10.0), sr),
        ));
        for (lo, hi) in [(57.0, 64.0), (48.0, 55.0), (62.0, 69.0)] {
            cases.push((
                format!("{timbre:?} fifth {lo}+{hi}"),
                render(&repeated(&[lo, hi], timbre, 0.5), sr),
            ));
        }
    }
    for f0 in [55.0, 110.0, 220.0, 330.0] {
        cases.push((format!("sawtooth {f0} Hz"), harmonic_tone(f0, sr, false)));
    }
    for f0 in [98.0, 220.0] {
        cases.push((format!("square {f0} Hz"), harmonic_tone(f0, sr, true)));
    }
    for (lo, hi) in [(57.0, 60.0), (57.0, 69.0), (50.0, 54.0)] {
        cases.push((
            format!("Piano interval {lo}+{hi}"),
            render(&repeated(&[lo, hi], Timbre::Piano, 0.5), sr),
        ));
    }
    let n = 10 * sr as usize;
    let pair: Vec<f32> = sluice_core::signal::sine(sr, 440.0, 0.4, n)
        .iter()
        .zip(sluice_core::signal::sine(sr, 660.0, 0.4, n))
        .map(|(a, b)| a + b)
        .collect();
    cases.push(("sines 440+660 Hz".into(), pair));
    let mut rng = Rng::new(42);
    cases.push((
        "white noise".into(),
        (0..10 * sr as usize)
            .map(|_| (0.5 * (2.0 * rng.unit() - 1.0)) as f32)
            .collect(),
    ));
    cases.push(("pink noise".into(), pink_noise(7, 10 * sr as usize)));
    let drums = Piece {
        drums: (0..40)
            .flat_map(|i| {
                let t = i as f64 * 0.25;
                [
                    (t, Drum::Hat),
                    (t, if i % 2 == 0 { Drum::Kick } else { Drum::Snare }),
                ]
            })
            .collect(),
        seconds: 10.0,
        seed: 3,
        ..Piece::default()
    };
    cases.push(("drums only".into(), render(&drums, sr)));
    let mut wrong = Vec::new();
    for (name, x) in &cases {
        let k = analyze(x, sr, 4096);
        println!(
            "{name:<28} {}",
            k.as_ref().map_or("-".to_string(), |k| format!(
                "{} ({:.2})",
                k.name, k.confidence
            ))
        );
        if let Some(k) = k {
            wrong.push(format!("{name}: {}", k.name));
        }
    }
    assert!(wrong.is_empty(), "keys for atonal inputs: {wrong:?}");
}
