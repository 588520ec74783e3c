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
