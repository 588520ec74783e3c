//! Deterministic test and benchmark signals: tones, sweeps, seeded noise and a programme-like
//! mix. Used by tests and benches across the workspace; cheap enough to generate minutes of.

use std::f64::consts::TAU;

/// A small, fast, seeded PRNG (xorshift64*), so generated noise is the same on every machine.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [-1, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }
}

/// A sine of `freq` Hz at `amp` (linear), `frames` long.
pub fn sine(sample_rate: u32, freq: f64, amp: f64, frames: usize) -> Vec<f32> {
    let w = TAU * freq / f64::from(sample_rate);
    (0..frames)
        .map(|n| (amp * (w * n as f64).sin()) as f32)
        .collect()
}

/// A logarithmic sweep from `f0` to `f1` Hz.
pub fn log_sweep(sample_rate: u32, f0: f64, f1: f64, amp: f64, frames: usize) -> Vec<f32> {
    let t_total = frames as f64 / f64::from(sample_rate);
    let k = (f1 / f0).ln();
    (0..frames)
        .map(|n| {
            let t = n as f64 / f64::from(sample_rate);
            let phase = TAU * f0 * t_total / k * ((t / t_total * k).exp() - 1.0);
            (amp * phase.sin()) as f32
        })
        .collect()
}

/// White noise, uniform, peak `amp`.
pub fn noise(seed: u64, amp: f64, frames: usize) -> Vec<f32> {
    let mut r = Rng::new(seed);
    (0..frames).map(|_| (amp * r.uniform()) as f32).collect()
}

/// A programme-like multichannel signal: a few harmonic "notes" changing every half second,
/// a decaying noise "drum" on each beat at 120 BPM, a slow level envelope, and per-channel
/// differences so channels are correlated but not identical. Peak stays below 0.9.
pub fn programme(sample_rate: u32, channels: usize, frames: usize, seed: u64) -> Vec<Vec<f32>> {
    let sr = f64::from(sample_rate);
    let mut rng = Rng::new(seed);
    let notes = [220.0, 261.63, 329.63, 392.0, 293.66, 246.94, 349.23, 440.0];
    let beat = (sr * 0.5) as usize;
    let mut drum = vec![0f64; frames];
    for (n, d) in drum.iter_mut().enumerate() {
        let since = n % beat;
        let env = (-(since as f64) / (0.04 * sr)).exp();
        *d = env * rng.uniform();
    }
    (0..channels)
        .map(|c| {
            let detune = 1.0 + 0.002 * c as f64;
            let pan = 0.8 + 0.2 * ((c as f64) * 1.3).sin().abs();
            (0..frames)
                .map(|n| {
                    let t = n as f64 / sr;
                    let f = notes[(n / beat) % notes.len()] * detune;
                    let tone = (TAU * f * t).sin() * 0.3
                        + (TAU * 2.0 * f * t).sin() * 0.12
                        + (TAU * 3.0 * f * t).sin() * 0.06;
                    let level = 0.75 + 0.25 * (TAU * 0.1 * t).sin();
                    (pan * level * (tone + 0.35 * drum[n])) as f32
                })
                .collect()
        })
        .collect()
}

/// A "hot master": programme material with loud transients, peaking at 0 dBFS.
pub fn hot_master(rate: u32, seconds: f64) -> Vec<Vec<f32>> {
    let n = (f64::from(rate) * seconds) as usize;
    let mut p = programme(rate, 2, n, 11);
    // Sharp clicks every 0.37 s push the peaks without adding much loudness.
    let mut rng = Rng::new(3);
    let step = (f64::from(rate) * 0.37) as usize;
    for start in (step..n).step_by(step) {
        for k in 0..(rate as usize / 500) {
            let v = (rng.uniform() * 0.9 * (-(k as f64) / (f64::from(rate) * 0.0005)).exp()) as f32;
            for ch in p.iter_mut() {
                if start + k < n {
                    ch[start + k] += v;
                }
            }
        }
    }
    let peak = p.iter().flatten().fold(0f32, |m, x| m.max(x.abs()));
    p.iter_mut().flatten().for_each(|x| *x /= peak);
    p
}

/// Speech-like: a glottal pulse train (110–160 Hz) through a few formant resonances, in
/// syllables of about 200 ms with pauses between phrases, at a low level.
pub fn speech(rate: u32, seconds: f64, level: f32) -> Vec<Vec<f32>> {
    let sr = f64::from(rate);
    let n = (sr * seconds) as usize;
    let mut rng = Rng::new(9);
    let mut out = vec![0f32; n];
    // Two-pole resonators for formants that move with each syllable.
    let formants = [
        [700.0, 1200.0],
        [400.0, 2000.0],
        [300.0, 900.0],
        [600.0, 1700.0],
    ];
    let mut state = [[0f64; 2]; 2];
    let mut phase = 0.0;
    for (i, o) in out.iter_mut().enumerate() {
        let t = i as f64 / sr;
        let syllable = (t / 0.2) as usize;
        let in_phrase = (t % 3.0) < 2.2;
        let env = if in_phrase {
            (std::f64::consts::PI * (t / 0.2).fract()).sin().powi(2)
        } else {
            0.0
        };
        let f0 = 110.0 + 50.0 * (0.7 * t).sin().abs();
        phase += f0 / sr;
        let pulse = if phase >= 1.0 {
            phase -= 1.0;
            1.0
        } else {
            0.0
        } + 0.02 * rng.uniform();
        let fs = formants[syllable % 4];
        let mut y = 0.0;
        for (k, f) in fs.iter().enumerate() {
            let r: f64 = 0.995;
            let w = std::f64::consts::TAU * f / sr;
            let v = pulse + 2.0 * r * w.cos() * state[k][0] - r * r * state[k][1];
            state[k][1] = state[k][0];
            state[k][0] = v;
            y += v * (1.0 - r);
        }
        *o = (y * env) as f32;
    }
    let peak = out.iter().fold(0f32, |m, x| m.max(x.abs()));
    out.iter_mut().for_each(|x| *x *= level / peak);
    vec![out]
}

/// EBU Tech 3341 (loudness meters) and Tech 3342 (loudness range) test signals, generated from
/// their published definitions (the EBU's own files may not be redistributed): 1 kHz sine
/// sequences on both channels of a stereo pair (and case 6 in 5.1), for every conformance test
/// in the workspace.
pub mod ebu {
    use std::f64::consts::TAU;

    /// A 1 kHz tone level (dBFS peak) or `None` for silence, and a duration in seconds.
    pub type Segment = (Option<f64>, f64);

    /// A 1 kHz sine whose peak is `dbfs`, `secs` long, continuing the phase of `phase`.
    pub fn tone(rate: u32, dbfs: f64, secs: f64, phase: &mut f64) -> Vec<f32> {
        let n = (secs * f64::from(rate)).round() as usize;
        let a = 10f64.powf(dbfs / 20.0);
        let w = TAU * 1000.0 / f64::from(rate);
        (0..n)
            .map(|_| {
                let v = a * phase.sin();
                *phase = (*phase + w) % TAU;
                v as f32
            })
            .collect()
    }

    /// `secs` of digital silence.
    pub fn silence(rate: u32, secs: f64) -> Vec<f32> {
        vec![0.0; (secs * f64::from(rate)).round() as usize]
    }

    /// Segments as one channel, the tone's phase running on across them.
    pub fn sequence(rate: u32, segs: &[Segment]) -> Vec<f32> {
        let mut phase = 0.0;
        let mut out = Vec::new();
        for &(level, secs) in segs {
            match level {
                Some(db) => out.extend(tone(rate, db, secs, &mut phase)),
                None => out.extend(silence(rate, secs)),
            }
        }
        out
    }

    /// The same channel twice.
    pub fn stereo(x: Vec<f32>) -> Vec<Vec<f32>> {
        vec![x.clone(), x]
    }

    /// A stereo case with a published integrated loudness or loudness range.
    #[derive(Debug, Clone)]
    pub struct LoudnessCase {
        /// `3341-N` or `3342-N`.
        pub name: &'static str,
        pub segments: Vec<Segment>,
        /// Expected integrated loudness (±0.1 LU), where the case fixes it.
        pub integrated_lufs: Option<f64>,
        /// Expected loudness range (±1 LU), where the case fixes it.
        pub loudness_range_lu: Option<f64>,
    }

    impl LoudnessCase {
        /// The case's signal at `rate`, planar stereo.
        pub fn signal(&self, rate: u32) -> Vec<Vec<f32>> {
            stereo(sequence(rate, &self.segments))
        }
        /// Its length in seconds.
        pub fn seconds(&self) -> f64 {
            self.segments.iter().map(|s| s.1).sum()
        }
    }

    /// Tech 3341 case 6 in 5.1, in WAVE_FORMAT_EXTENSIBLE order (L R C LFE Ls Rs): 20 s of L and
    /// R at −28 dBFS, C at −24, Ls and Rs at −30 (−23 LUFS), and the LFE at `lfe_dbfs` or
    /// silent; BS.1770 leaves the LFE out, so a loud one must not change the reading.
    pub fn case_6_surround_5_1(rate: u32, lfe_dbfs: Option<f64>) -> Vec<Vec<f32>> {
        let ch = |db| sequence(rate, &[(db, 20.0)]);
        vec![
            ch(Some(-28.0)),
            ch(Some(-28.0)),
            ch(Some(-24.0)),
            ch(lfe_dbfs),
            ch(Some(-30.0)),
            ch(Some(-30.0)),
        ]
    }

    /// Tech 3341 cases 1-5 (integrated loudness of steady and gated sequences) and Tech 3342
    /// cases 1-4 (loudness range).
    pub fn stereo_loudness_cases() -> Vec<LoudnessCase> {
        let i = |name, segments, lufs| LoudnessCase {
            name,
            segments,
            integrated_lufs: Some(lufs),
            loudness_range_lu: None,
        };
        let lra = |name, segments, lu| LoudnessCase {
            name,
            segments,
            integrated_lufs: None,
            loudness_range_lu: Some(lu),
        };
        vec![
            i("3341-1", vec![(Some(-23.0), 20.0)], -23.0),
            i("3341-2", vec![(Some(-33.0), 20.0)], -33.0),
            i(
                "3341-3",
                vec![
                    (Some(-36.0), 10.0),
                    (Some(-23.0), 60.0),
                    (Some(-36.0), 10.0),
                ],
                -23.0,
            ),
            i(
                "3341-4",
                vec![
                    (Some(-72.0), 10.0),
                    (Some(-36.0), 10.0),
                    (Some(-23.0), 60.0),
                    (Some(-36.0), 10.0),
                    (Some(-72.0), 10.0),
                ],
                -23.0,
            ),
            i(
                "3341-5",
                vec![
                    (Some(-26.0), 20.0),
                    (Some(-20.0), 20.1),
                    (Some(-26.0), 20.0),
                ],
                -23.0,
            ),
            lra(
                "3342-1",
                vec![(Some(-20.0), 20.0), (Some(-30.0), 20.0)],
                10.0,
            ),
            lra(
                "3342-2",
                vec![(Some(-20.0), 20.0), (Some(-15.0), 20.0)],
                5.0,
            ),
            lra(
                "3342-3",
                vec![(Some(-40.0), 20.0), (Some(-20.0), 20.0)],
                20.0,
            ),
            lra(
                "3342-4",
                vec![
                    (Some(-50.0), 20.0),
                    (Some(-35.0), 20.0),
                    (Some(-20.0), 20.0),
                    (Some(-35.0), 20.0),
                    (Some(-50.0), 20.0),
                ],
                15.0,
            ),
        ]
    }
}

/// Pink noise (Paul Kellet's economy filter over white noise), about unit RMS × `amp`.
struct Pink {
    b: [f64; 3],
}

impl Pink {
    fn new() -> Self {
        Pink { b: [0.0; 3] }
    }
    fn next(&mut self, white: f64) -> f64 {
        self.b[0] = 0.99765 * self.b[0] + white * 0.099_046;
        self.b[1] = 0.96300 * self.b[1] + white * 0.296_516_4;
        self.b[2] = 0.57000 * self.b[2] + white * 1.052_691_3;
        (self.b[0] + self.b[1] + self.b[2] + white * 0.1848) * 0.25
    }
}

/// A small Schroeder reverb (four combs, two all-passes), one per channel with its own
/// delay lengths so the tails are decorrelated.
struct Reverb {
    combs: Vec<(Vec<f64>, usize, f64)>,
    passes: Vec<(Vec<f64>, usize)>,
}

impl Reverb {
    fn new(sample_rate: u32, spread: f64, decay: f64) -> Self {
        let ms = |m: f64| ((m * spread * f64::from(sample_rate) / 1000.0) as usize).max(1);
        Reverb {
            combs: [29.7, 37.1, 41.1, 43.7]
                .iter()
                .map(|&m| (vec![0.0; ms(m)], 0, decay))
                .collect(),
            passes: [5.0, 1.7].iter().map(|&m| (vec![0.0; ms(m)], 0)).collect(),
        }
    }
    fn next(&mut self, x: f64) -> f64 {
        let mut y = 0.0;
        for (buf, at, g) in &mut self.combs {
            let d = buf[*at];
            buf[*at] = x + d * *g;
            *at = (*at + 1) % buf.len();
            y += d;
        }
        y *= 0.25;
        for (buf, at) in &mut self.passes {
            let d = buf[*at];
            let v = y + 0.7 * d;
            buf[*at] = v;
            *at = (*at + 1) % buf.len();
            y = d - 0.7 * v;
        }
        y
    }
}

/// MIDI note to Hz.
fn hz(note: f64) -> f64 {
    440.0 * 2f64.powf((note - 69.0) / 12.0)
}

/// A loud, dense master, the material real releases are: a 126 BPM groove (pitched kick on
/// every beat, noisy snare, hats with random velocities on sixteenths), a bass line, detuned
/// pads and a bright lead that change notes with a chord progression, a pink-noise bed, a room
/// reverb on the snare and lead, then driven into a soft clipper and a hard ceiling, so it sits
/// near full scale all the time with inter-sample peaks over 0 dBTP. Stereo, seeded.
pub fn dense_master(sample_rate: u32, seconds: f64, seed: u64) -> Vec<Vec<f32>> {
    let sr = f64::from(sample_rate);
    let n = (sr * seconds) as usize;
    let mut rng = Rng::new(seed);
    let beat = 60.0 / 126.0;
    let six = beat / 4.0;
    let progression = [
        [57.0, 60.0, 64.0],
        [53.0, 57.0, 60.0],
        [48.0, 52.0, 55.0],
        [55.0, 59.0, 62.0],
    ];
    let scale = [0.0, 2.0, 3.0, 5.0, 7.0, 8.0, 10.0, 12.0];
    let mut out = vec![vec![0f32; n]; 2];
    let mut pinks = [Pink::new(), Pink::new()];
    let mut verbs = [
        Reverb::new(sample_rate, 1.0, 0.78),
        Reverb::new(sample_rate, 1.13, 0.78),
    ];
    let mut hat_vel = 0.0;
    let mut lead_note = 69.0;
    let mut lead_vel = 0.0;
    let mut last_six = usize::MAX;
    let mut prev_w = [0.0f64; 2];
    let mut phases = [0f64; 16];
    for i in 0..n {
        let t = i as f64 / sr;
        let bar = (t / (4.0 * beat)) as usize;
        let chord = progression[bar % 4];
        let k = (t / six) as usize;
        if k != last_six {
            last_six = k;
            hat_vel = 0.3 + 0.7 * (0.5 + 0.5 * rng.uniform());
            if k.is_multiple_of(2) && rng.uniform() > -0.2 {
                lead_note = chord[0] + 12.0 + scale[(rng.next_u64() % scale.len() as u64) as usize];
                lead_vel = 0.6 + 0.4 * (0.5 + 0.5 * rng.uniform());
            }
        }
        let in_beat = t % beat;
        let in_six = t % six;
        let in_bar_beat = (t / beat) as usize % 4;
        // Kick: a pitch-swept sine.
        let kick = (TAU * (45.0 * in_beat + 3.0 * (1.0 - (-in_beat * 25.0).exp()))).sin()
            * (-in_beat * 7.0).exp();
        let kick = kick.clamp(-1.0, 1.0);
        // Snare on beats 2 and 4.
        let snare_env = if in_bar_beat % 2 == 1 {
            (-in_beat * 18.0).exp()
        } else {
            0.0
        };
        // Tones: bass (root, two octaves down), pads (detuned saws), lead (plucked, bright).
        let mut tone = [0.0f64; 2];
        let mut idx = 0;
        let mut osc = |f: f64, harmonics: usize, idx: &mut usize| -> f64 {
            let p = &mut phases[*idx];
            *idx += 1;
            *p = (*p + f / sr).fract();
            (1..=harmonics)
                .map(|h| (TAU * *p * h as f64).sin() / h as f64)
                .sum::<f64>()
        };
        let bass = 0.45 * osc(hz(chord[0] - 24.0), 6, &mut idx);
        for (v, &note) in chord.iter().enumerate() {
            let a = osc(hz(note) * 1.003, 8, &mut idx);
            let b = osc(hz(note) * 0.997, 8, &mut idx);
            tone[v % 2] += 0.07 * a + 0.05 * b;
            tone[(v + 1) % 2] += 0.05 * a + 0.07 * b;
        }
        let lead_env = lead_vel * (-(t % (2.0 * six)) * 9.0).exp();
        let lead = 0.22 * lead_env * osc(hz(lead_note), 12, &mut idx);
        for (c, ch) in out.iter_mut().enumerate() {
            let w = rng.uniform();
            let hat = (w - prev_w[c]) * hat_vel * (-in_six * 70.0).exp() * 0.22;
            prev_w[c] = w;
            let snare = snare_env * (0.5 * w + 0.3 * (TAU * 185.0 * in_beat).sin());
            let bed = 0.05 * pinks[c].next(rng.uniform());
            let wet = verbs[c].next(0.5 * snare + lead);
            let pan = if c == 0 { 0.8 } else { 1.2 };
            let x = 0.9 * kick
                + bass
                + tone[c]
                + snare
                + hat * pan
                + lead * (2.0 - pan)
                + bed
                + 0.35 * wet;
            // Mastered: soft clip, then a hard ceiling just under full scale.
            ch[i] = ((1.1 * x).tanh() * 1.02).clamp(-0.999, 0.999) as f32;
        }
    }
    out
}

/// Acoustic material with a wide dynamic range: plucked strings (Karplus–Strong) with rubato
/// timing and phrases that swell and fall back, in a room (reverb), over a faint room tone.
/// Stereo, seeded; peaks around −3 dBFS, quiet passages 30 dB lower.
pub fn acoustic(sample_rate: u32, seconds: f64, seed: u64) -> Vec<Vec<f32>> {
    let sr = f64::from(sample_rate);
    let n = (sr * seconds) as usize;
    let mut rng = Rng::new(seed);
    let scale = [
        50.0, 52.0, 54.0, 55.0, 57.0, 59.0, 61.0, 62.0, 64.0, 66.0, 67.0, 69.0,
    ];
    // Strings: each a delay line fed with a noise burst at a pluck.
    struct Pluck {
        line: Vec<f64>,
        at: usize,
        gain: f64,
        pan: f64,
    }
    let mut strings: Vec<Pluck> = Vec::new();
    let mut next_pluck = 0.0;
    let mut pinks = [Pink::new(), Pink::new()];
    let mut verbs = [
        Reverb::new(sample_rate, 1.4, 0.84),
        Reverb::new(sample_rate, 1.61, 0.84),
    ];
    let mut out = vec![vec![0f32; n]; 2];
    for i in 0..n {
        let t = i as f64 / sr;
        // Phrases of 8 s: a swell from quiet to loud and back.
        let phrase = (t / 8.0).fract();
        let dynamics = 10f64.powf((-30.0 + 30.0 * (std::f64::consts::PI * phrase).sin()) / 20.0);
        if t >= next_pluck {
            let note = scale[(rng.next_u64() % scale.len() as u64) as usize]
                + 12.0 * ((rng.next_u64() % 2) as f64);
            let len = ((sr / hz(note)) as usize).max(2);
            let amp = dynamics * (0.6 + 0.4 * (0.5 + 0.5 * rng.uniform()));
            let line = (0..len).map(|_| amp * rng.uniform()).collect();
            strings.push(Pluck {
                line,
                at: 0,
                gain: 0.996,
                pan: 0.5 + 0.4 * rng.uniform(),
            });
            if strings.len() > 12 {
                strings.remove(0);
            }
            // Rubato: 0.12-0.5 s between notes.
            next_pluck = t + 0.12 + 0.38 * (0.5 + 0.5 * rng.uniform());
        }
        let mut dry = [0.0f64; 2];
        for s in &mut strings {
            let len = s.line.len();
            let a = s.line[s.at];
            let b = s.line[(s.at + 1) % len];
            let y = s.gain * 0.5 * (a + b);
            s.line[s.at] = y;
            s.at = (s.at + 1) % len;
            dry[0] += a * (1.0 - s.pan);
            dry[1] += a * s.pan;
        }
        for (c, ch) in out.iter_mut().enumerate() {
            let room = 0.0008 * pinks[c].next(rng.uniform());
            let wet = verbs[c].next(dry[c]);
            ch[i] = (0.45 * dry[c] + 0.25 * wet + room).clamp(-1.0, 1.0) as f32;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_bounded() {
        assert_eq!(noise(7, 0.5, 100), noise(7, 0.5, 100));
        assert_ne!(noise(7, 0.5, 100), noise(8, 0.5, 100));
        let p = programme(48_000, 2, 48_000, 1);
        assert_eq!(p.len(), 2);
        let peak = p.iter().flatten().fold(0f32, |m, x| m.max(x.abs()));
        assert!(peak > 0.3 && peak < 0.9, "peak {peak}");
        assert_ne!(p[0], p[1]);
    }

    #[test]
    fn sine_has_its_frequency() {
        // 1 kHz at 48 kHz: 1000 cycles → 2000 zero crossings in one second.
        let s = sine(48_000, 1000.0, 0.5, 48_000);
        let zc = s
            .windows(2)
            .filter(|w| (w[0] < 0.0) != (w[1] < 0.0))
            .count();
        assert!((1998..=2001).contains(&zc), "{zc}");
    }
}

/// The shape of a [`styled`] track: what a family of tracks shares and the reference-library
/// tests tell apart.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Style {
    /// Spectral tilt, dB per octave around 1 kHz.
    pub tilt_db_per_octave: f64,
    /// Gain of each of the five analysis bands (low, low-mid, mid, high-mid, high), dB, eased
    /// into each other over log frequency.
    pub band_gains_db: [f64; 5],
    /// Correlation of left and right (1 mono, 0 unrelated).
    pub correlation: f64,
    /// Depth of a decaying pulse on every beat, 0 (steady) to 1 (silent between beats).
    pub pulse_depth: f64,
    /// Level difference between alternate 2-second sections, dB (a loudness range).
    pub sections_db: f64,
    /// Beats per minute of the pulse.
    pub bpm: f64,
}

impl Default for Style {
    fn default() -> Self {
        Style {
            tilt_db_per_octave: -3.0,
            band_gains_db: [0.0; 5],
            correlation: 0.7,
            pulse_depth: 0.3,
            sections_db: 3.0,
            bpm: 120.0,
        }
    }
}

/// A stereo noise "track" of `style`: seeded noise with the style's spectrum (20 Hz–20 kHz)
/// and stereo correlation, under its pulse and section envelope, at an RMS of −20 dBFS.
pub fn styled(sample_rate: u32, seconds: f64, style: &Style, seed: u64) -> Vec<Vec<f32>> {
    use rustfft::FftPlanner;
    use rustfft::num_complex::Complex;
    let sr = f64::from(sample_rate);
    let n = ((sr * seconds) as usize).max(1);
    let a = noise(seed, 1.0, n);
    let b = noise(seed ^ 0x5DEE_CE66, 1.0, n);
    let c = style.correlation.clamp(-1.0, 1.0);
    let s = (1.0 - c * c).sqrt();
    let centres = [63.0f64, 316.0, 1000.0, 3464.0, 10954.0];
    let gain = |f: f64| -> f64 {
        if !(20.0..=20_000.0).contains(&f) {
            return 0.0;
        }
        let lf = f.log2();
        let g = &style.band_gains_db;
        let band_db = if lf <= centres[0].log2() {
            g[0]
        } else if lf >= centres[4].log2() {
            g[4]
        } else {
            let k = centres
                .iter()
                .rposition(|c| c.log2() <= lf)
                .unwrap_or(0)
                .min(3);
            let (x0, x1) = (centres[k].log2(), centres[k + 1].log2());
            let t = (lf - x0) / (x1 - x0);
            let t = t * t * (3.0 - 2.0 * t);
            g[k] + (g[k + 1] - g[k]) * t
        };
        10f64.powf((style.tilt_db_per_octave * (f / 1000.0).log2() + band_db) / 20.0)
    };
    let mut planner = FftPlanner::<f64>::new();
    let fwd = planner.plan_fft_forward(n);
    let inv = planner.plan_fft_inverse(n);
    let shape = |x: &[f32]| -> Vec<f64> {
        let mut z: Vec<Complex<f64>> = x.iter().map(|&v| Complex::new(f64::from(v), 0.0)).collect();
        fwd.process(&mut z);
        for (k, v) in z.iter_mut().enumerate() {
            *v *= gain(k.min(n - k) as f64 * sr / n as f64);
        }
        inv.process(&mut z);
        z.iter().map(|v| v.re).collect()
    };
    let (l, r2) = (shape(&a), shape(&b));
    let beat = 60.0 / style.bpm.max(1.0);
    let depth = style.pulse_depth.clamp(0.0, 1.0);
    let env = |i: usize| {
        let t = i as f64 / sr;
        let since = t % beat;
        let pulse = 1.0 - depth + depth * (-since / (0.25 * beat)).exp();
        let section = if (t / 2.0) as u64 % 2 == 1 {
            10f64.powf(-style.sections_db / 20.0)
        } else {
            1.0
        };
        pulse * section
    };
    let mut left: Vec<f64> = Vec::with_capacity(n);
    let mut right: Vec<f64> = Vec::with_capacity(n);
    for i in 0..n {
        let e = env(i);
        left.push(l[i] * e);
        right.push((c * l[i] + s * r2[i]) * e);
    }
    let ms = (left.iter().chain(&right).map(|v| v * v).sum::<f64>() / (2 * n) as f64).max(1e-30);
    let k = 0.1 / ms.sqrt();
    vec![
        left.iter().map(|v| (v * k) as f32).collect(),
        right.iter().map(|v| (v * k) as f32).collect(),
    ]
}
