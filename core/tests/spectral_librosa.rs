//! The spectral features (`spectrum.centroid_hz`, `bandwidth_hz`, `rolloff_hz`, `flatness`)
//! against librosa 0.11, and on cases with closed-form answers.
//!
//! The music-like signals are generated here, written as 16-bit WAV files and analysed
//! through `analyze`, as a user's file would be. Their expected values were computed once by
//! `core/tests/reference/librosa_spectral.py` from the same WAV files:
//!
//! ```text
//! SLUICE_SPECTRAL_WAVS=/tmp/wavs cargo test -p sluice-core --test spectral_librosa
//! python3 core/tests/reference/librosa_spectral.py /tmp/wavs
//! ```
//!
//! The script prints the `LIBROSA` table below.

use sluice_core::analysis::spectrum::{
    FEATURE_FFT, FEATURE_HOP, FLATNESS_AMIN, FeatureMeter, FrameFeatures, frame_features,
};
use sluice_core::analysis::{AnalysisOptions, Section, analyze};
use sluice_core::signal::Rng;
use std::f64::consts::TAU;
use std::path::Path;

// ------------------------------------------------------------------------------------------
// Signal generators (deterministic: seeded xorshift, no platform-dependent randomness)

struct Noise(Rng);

impl Noise {
    fn new(seed: u64) -> Self {
        Noise(Rng::new(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1))
    }
    /// Uniform in [-1, 1).
    fn next(&mut self) -> f64 {
        2.0 * self.0.uniform() - 1.0
    }
}

/// A struck or bowed harmonic note added into `out`: `partials` (harmonic, amplitude), a
/// linear attack, exponential decay (upper partials faster) and a short release.
#[allow(clippy::too_many_arguments)]
fn note(
    out: &mut [f64],
    rate: f64,
    start: f64,
    dur: f64,
    f0: f64,
    gain: f64,
    partials: &[(f64, f64)],
    attack: f64,
    tau: f64,
) {
    let s = (start * rate) as usize;
    let len = (((dur + 0.05) * rate) as usize).min(out.len().saturating_sub(s));
    for &(h, a) in partials {
        let f = h * f0;
        if f >= 0.45 * rate {
            continue;
        }
        let w = TAU * f / rate;
        let tau_h = tau / h.sqrt();
        let ph = (h * 0.731 + f0 * 0.013).fract() * TAU;
        for (i, o) in out[s..s + len].iter_mut().enumerate() {
            let t = i as f64 / rate;
            let env = (t / attack).min(1.0)
                * (-t / tau_h).exp()
                * if t > dur {
                    (-(t - dur) / 0.01).exp()
                } else {
                    1.0
                };
            *o += gain * a * env * (w * i as f64 + ph).sin();
        }
    }
}

const PIANO: &[(f64, f64)] = &[
    (1.0, 1.0),
    (2.0, 0.6),
    (3.0, 0.35),
    (4.0, 0.3),
    (5.0, 0.18),
    (6.0, 0.12),
    (7.0, 0.08),
    (8.0, 0.06),
    (9.0, 0.04),
    (10.0, 0.03),
];
const BASS: &[(f64, f64)] = &[(1.0, 1.0), (2.0, 0.45), (3.0, 0.2), (4.0, 0.1)];
const FLUTE: &[(f64, f64)] = &[(1.0, 1.0), (2.0, 0.3), (3.0, 0.12), (4.0, 0.05)];

/// Sawtooth partials up to `n`.
fn saw(n: usize) -> Vec<(f64, f64)> {
    (1..=n).map(|h| (h as f64, 1.0 / h as f64)).collect()
}

fn midi(m: f64) -> f64 {
    440.0 * 2f64.powf((m - 69.0) / 12.0)
}

/// Drum hits added into `out`: a pitched kick, a noisy snare and a differentiated-noise hat.
fn drum(out: &mut [f64], rate: f64, start: f64, kind: u8, rng: &mut Noise, gain: f64) {
    let s = (start * rate) as usize;
    let dur = [0.3, 0.2, 0.05][kind as usize];
    let len = ((dur * rate) as usize).min(out.len().saturating_sub(s));
    let mut ph = 0.0;
    let mut prev = 0.0;
    for (i, o) in out[s..s + len].iter_mut().enumerate() {
        let t = i as f64 / rate;
        let n = rng.next();
        *o += gain
            * match kind {
                0 => {
                    ph += TAU * (50.0 + 90.0 * (-t / 0.03).exp()) / rate;
                    (-t / 0.1).exp() * ph.sin()
                }
                1 => (-t / 0.05).exp() * (0.6 * n + 0.4 * (TAU * 190.0 * t).sin()),
                _ => {
                    let d = n - prev;
                    prev = n;
                    0.5 * (-t / 0.012).exp() * d
                }
            };
    }
}

/// Pink-ish noise (Voss–McCartney, 12 rows) at amplitude about `amp`.
fn pink(rng: &mut Noise, frames: usize, amp: f64) -> Vec<f64> {
    let mut rows = [0.0f64; 12];
    for r in &mut rows {
        *r = rng.next();
    }
    let mut sum: f64 = rows.iter().sum();
    (0..frames)
        .map(|i| {
            if i > 0 {
                let k = (i.trailing_zeros() as usize).min(11);
                sum -= rows[k];
                rows[k] = rng.next();
                sum += rows[k];
            }
            amp * (sum + rng.next()) / 4.0
        })
        .collect()
}

/// One-pole low-pass at `fc`.
fn lowpass(x: &mut [f64], rate: f64, fc: f64) {
    let a = (-TAU * fc / rate).exp();
    let mut y = 0.0;
    for v in x {
        y = (1.0 - a) * *v + a * y;
        *v = y;
    }
}

/// Scale to a peak of `peak`.
fn normalise(x: &mut [f64], peak: f64) {
    let m = x.iter().fold(0f64, |m, v| m.max(v.abs())).max(1e-12);
    x.iter_mut().for_each(|v| *v *= peak / m);
}

struct Signal {
    name: &'static str,
    rate: u32,
    /// Planar channels.
    planes: Vec<Vec<f64>>,
}

/// Piano chords, a bass line and a flute melody with attacks; stereo, 44.1 kHz.
fn ensemble() -> Signal {
    let rate = 44_100.0;
    let n = (3.0 * rate) as usize;
    let (mut l, mut r) = (vec![0.0; n], vec![0.0; n]);
    let chords = [[60.0, 64.0, 67.0], [57.0, 60.0, 64.0], [65.0, 69.0, 72.0]];
    for (i, ch) in chords.iter().enumerate() {
        for (j, &m) in ch.iter().enumerate() {
            let t = i as f64 + 0.01 * j as f64;
            note(&mut l, rate, t, 0.9, midi(m), 0.25, PIANO, 0.004, 1.2);
            note(&mut r, rate, t, 0.9, midi(m), 0.18, PIANO, 0.004, 1.2);
        }
        for b in 0..2 {
            let m = [36.0, 33.0, 41.0][i];
            let t = i as f64 + 0.5 * b as f64;
            for out in [&mut l, &mut r] {
                note(out, rate, t, 0.45, midi(m), 0.35, BASS, 0.008, 0.8);
            }
        }
    }
    for (i, m) in [
        72.0, 74.0, 76.0, 79.0, 77.0, 76.0, 74.0, 72.0, 71.0, 72.0, 74.0, 72.0,
    ]
    .into_iter()
    .enumerate()
    {
        note(
            &mut r,
            rate,
            0.25 * i as f64,
            0.24,
            midi(m),
            0.2,
            FLUTE,
            0.03,
            3.0,
        );
    }
    normalise(&mut l, 0.7);
    normalise(&mut r, 0.7);
    Signal {
        name: "ensemble",
        rate: 44_100,
        planes: vec![l, r],
    }
}

/// A pink-noise bed under kick, snare and hat bursts at 120 BPM; mono, 22.05 kHz.
fn pink_drums() -> Signal {
    let rate = 22_050.0;
    let n = (3.0 * rate) as usize;
    let mut rng = Noise::new(1);
    let mut x = pink(&mut rng, n, 0.05);
    for i in 0..24 {
        let t = 0.125 * i as f64;
        drum(&mut x, rate, t, 2, &mut rng, 0.5);
        if i % 4 == 0 {
            drum(
                &mut x,
                rate,
                t,
                if i % 8 == 0 { 0 } else { 1 },
                &mut rng,
                0.8,
            );
        }
    }
    normalise(&mut x, 0.8);
    Signal {
        name: "pink_drums",
        rate: 22_050,
        planes: vec![x],
    }
}

/// Dense sawtooth chords, hats and noise, driven into a soft clipper and limited: a bright,
/// loud master; stereo, 48 kHz.
fn bright_limited() -> Signal {
    let rate = 48_000.0;
    let n = (3.0 * rate) as usize;
    let mut rng = Noise::new(2);
    let mut planes = Vec::new();
    for side in 0..2 {
        let mut x = vec![0.0; n];
        let partials = saw(40);
        for (i, ch) in [[57.0, 64.0, 69.0, 73.0], [62.0, 69.0, 74.0, 78.0]]
            .iter()
            .cycle()
            .take(6)
            .enumerate()
        {
            for &m in ch {
                let f = midi(m) * (1.0 + 0.002 * side as f64);
                note(
                    &mut x,
                    rate,
                    0.5 * i as f64,
                    0.5,
                    f,
                    0.2,
                    &partials,
                    0.002,
                    2.0,
                );
            }
        }
        for i in 0..48 {
            drum(&mut x, rate, 0.0625 * i as f64, 2, &mut rng, 0.6);
        }
        for v in &mut x {
            *v += 0.05 * rng.next();
        }
        normalise(&mut x, 1.0);
        for v in &mut x {
            *v = (3.0 * *v).tanh().clamp(-0.98, 0.98);
        }
        planes.push(x);
    }
    Signal {
        name: "bright_limited",
        rate: 48_000,
        planes,
    }
}

/// A slow-attack string pad low-passed at 500 Hz twice: a dark pad; mono, 22.05 kHz.
fn dark_pad() -> Signal {
    let rate = 22_050.0;
    let n = (3.0 * rate) as usize;
    let mut x = vec![0.0; n];
    let partials = saw(12);
    for &m in &[45.0, 52.0, 57.0, 60.0, 64.0] {
        for detune in [-0.004, 0.003] {
            let f = midi(m) * (1.0 + detune);
            note(&mut x, rate, 0.0, 2.9, f, 0.2, &partials, 0.8, 20.0);
        }
    }
    lowpass(&mut x, rate, 500.0);
    lowpass(&mut x, rate, 500.0);
    normalise(&mut x, 0.5);
    Signal {
        name: "dark_pad",
        rate: 22_050,
        planes: vec![x],
    }
}

/// Sparse piano notes after 0.3 s of digital silence and with silent gaps (frames of zeros
/// count as librosa counts them); mono, 44.1 kHz.
fn sparse_piano() -> Signal {
    let rate = 44_100.0;
    let n = (3.0 * rate) as usize;
    let mut x = vec![0.0; n];
    for (i, m) in [64.0, 71.0, 67.0, 76.0].into_iter().enumerate() {
        note(
            &mut x,
            rate,
            0.3 + 0.65 * i as f64,
            0.25,
            midi(m),
            0.3,
            PIANO,
            0.003,
            0.3,
        );
    }
    // Hard silence after each note's release.
    for i in 0..4 {
        let a = ((0.3 + 0.65 * i as f64 + 0.45) * rate) as usize;
        let b = ((0.3 + 0.65 * (i + 1) as f64) * rate) as usize;
        x[a..b.min(n)].iter_mut().for_each(|v| *v = 0.0);
    }
    normalise(&mut x, 0.6);
    Signal {
        name: "sparse_piano",
        rate: 44_100,
        planes: vec![x],
    }
}

/// Organ chords with a drum loop at 96 kHz (the features' 2048-point frame is 21 ms there);
/// mono, 1.5 s.
fn organ_96k() -> Signal {
    let rate = 96_000.0;
    let n = (1.5 * rate) as usize;
    let mut x = vec![0.0; n];
    let organ = [
        (1.0, 1.0),
        (2.0, 0.7),
        (3.0, 0.4),
        (4.0, 0.3),
        (6.0, 0.2),
        (8.0, 0.15),
    ];
    for (i, ch) in [[55.0, 59.0, 62.0], [57.0, 60.0, 64.0]].iter().enumerate() {
        for &m in ch {
            note(
                &mut x,
                rate,
                0.75 * i as f64,
                0.7,
                midi(m),
                0.3,
                &organ,
                0.02,
                50.0,
            );
        }
    }
    let mut rng = Noise::new(3);
    for i in 0..6 {
        drum(
            &mut x,
            rate,
            0.25 * i as f64,
            if i % 2 == 0 { 0 } else { 1 },
            &mut rng,
            0.5,
        );
    }
    normalise(&mut x, 0.7);
    Signal {
        name: "organ_96k",
        rate: 96_000,
        planes: vec![x],
    }
}

/// 50 ms of a chord: fewer samples than one frame, so every frame is mostly padding.
fn short_chord() -> Signal {
    let rate = 22_050.0;
    let n = (0.05 * rate) as usize;
    let mut x = vec![0.0; n];
    for &m in &[60.0, 64.0, 67.0] {
        note(&mut x, rate, 0.0, 0.05, midi(m), 0.3, PIANO, 0.002, 1.0);
    }
    normalise(&mut x, 0.5);
    Signal {
        name: "short_chord",
        rate: 22_050,
        planes: vec![x],
    }
}

fn signals() -> Vec<Signal> {
    vec![
        ensemble(),
        pink_drums(),
        bright_limited(),
        dark_pad(),
        sparse_piano(),
        organ_96k(),
        short_chord(),
    ]
}

/// Writes `s` as 16-bit PCM WAV (the samples the test and librosa both read).
fn write_wav(dir: &Path, s: &Signal) -> std::path::PathBuf {
    let path = dir.join(format!("{}.wav", s.name));
    let spec = hound::WavSpec {
        channels: s.planes.len() as u16,
        sample_rate: s.rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&path, spec).unwrap();
    for i in 0..s.planes[0].len() {
        for p in &s.planes {
            let v = (p[i] * 32768.0).round().clamp(-32768.0, 32767.0) as i16;
            w.write_sample(v).unwrap();
        }
    }
    w.finalize().unwrap();
    path
}

// ------------------------------------------------------------------------------------------
// librosa's values

/// (signal, centroid Hz, bandwidth Hz, roll-off Hz, flatness): `np.mean` over the frames of
/// `librosa.feature.spectral_{centroid,bandwidth,rolloff,flatness}(y=y, sr=sr)` with
/// `y, sr = librosa.load(path, sr=None, mono=True)`, librosa 0.11.0, printed by
/// `core/tests/reference/librosa_spectral.py`.
const LIBROSA: &[(&str, f64, f64, f64, f64)] = &[
    // librosa 0.11.0, numpy 2.4.6
    (
        "ensemble",
        626.3393264093692,
        684.3825576642299,
        1147.5783889358108,
        1.3054839200776769e-06,
    ),
    (
        "pink_drums",
        4433.848464790173,
        3491.708409043343,
        8760.949331430289,
        0.0686417669057846,
    ),
    (
        "bright_limited",
        9416.143732612933,
        7738.582894458152,
        19297.29055851064,
        0.11768381297588348,
    ),
    (
        "dark_pad",
        391.9919784766327,
        437.551442220452,
        620.6531700721154,
        0.007580740377306938,
    ),
    (
        "sparse_piano",
        567.3018272176637,
        570.5455749961309,
        972.1534522804054,
        0.5368703007698059,
    ),
    (
        "organ_96k",
        4742.558725591678,
        6076.715609886402,
        10753.158244680852,
        0.015228478237986565,
    ),
    (
        "short_chord",
        925.2632809473298,
        895.727308156918,
        1593.45703125,
        0.00020206889894325286,
    ),
];

#[test]
fn features_agree_with_librosa() {
    let keep = std::env::var_os("SLUICE_SPECTRAL_WAVS");
    let tmp = tempfile::tempdir().unwrap();
    let dir = keep.as_ref().map_or(tmp.path(), Path::new);
    std::fs::create_dir_all(dir).unwrap();
    let opts = AnalysisOptions {
        sections: vec![Section::Spectrum],
        ..AnalysisOptions::default()
    };
    println!(
        "{:<16} {:>10} {:>10} {:>10} {:>8}   worst relative error",
        "signal", "centroid", "bandwidth", "roll-off", "flatness"
    );
    let sigs = signals();
    let paths: Vec<_> = sigs.iter().map(|s| write_wav(dir, s)).collect();
    assert_eq!(sigs.len(), LIBROSA.len(), "one librosa row per signal");
    for (s, path) in sigs.iter().zip(&paths) {
        let r = analyze(path, &opts, &mut |_| {}).unwrap();
        let sp = r.spectrum.unwrap();
        let got = [
            sp.centroid_hz.unwrap(),
            sp.bandwidth_hz.unwrap(),
            sp.rolloff_hz.unwrap(),
            sp.flatness.unwrap(),
        ];
        let row = LIBROSA
            .iter()
            .find(|r| r.0 == s.name)
            .unwrap_or_else(|| panic!("no librosa values for {}", s.name));
        let want = [row.1, row.2, row.3, row.4];
        let errs: Vec<f64> = got
            .iter()
            .zip(&want)
            .map(|(g, w)| (g - w).abs() / w.abs())
            .collect();
        println!(
            "{:<16} {:>10.2} {:>10.2} {:>10.2} {:>8.5}   {}",
            s.name,
            got[0],
            got[1],
            got[2],
            got[3],
            errs.iter()
                .map(|e| format!("{:.1e}", e))
                .collect::<Vec<_>>()
                .join(" ")
        );
        // The issue asks for 2 %; the implementations agree to about 1e-6 (librosa computes
        // the flatness's logarithms in float32), so a regression shows long before 2 %.
        for (i, what) in ["centroid", "bandwidth", "roll-off", "flatness"]
            .iter()
            .enumerate()
        {
            assert!(
                errs[i] < 1e-4,
                "{}: {what} {} vs librosa's {} ({:.2e} relative)",
                s.name,
                got[i],
                want[i],
                errs[i]
            );
        }
    }
}

// ------------------------------------------------------------------------------------------
// Closed-form cases

fn close(got: f64, want: f64, tol: f64, what: &str) {
    assert!(
        (got - want).abs() <= tol,
        "{what}: {got}, expected {want} ±{tol}"
    );
}

/// The magnitude spectrum of a sine of amplitude `a` exactly at bin `k0` under a periodic
/// Hann window of `n`: `a·n/4` at `k0` and `a·n/8` at `k0 ± 1`, zero elsewhere.
fn sine_at_bin(a: f64, k0: usize, n: usize) -> Vec<f64> {
    let mut m = vec![0.0; n / 2 + 1];
    m[k0] = a * n as f64 / 4.0;
    m[k0 - 1] = a * n as f64 / 8.0;
    m[k0 + 1] = a * n as f64 / 8.0;
    m
}

#[test]
fn one_frame_of_a_sine_at_a_bin_centre() {
    let (rate, n, k0, a) = (48_000, FEATURE_FFT, 43, 0.5);
    let df = f64::from(rate) / n as f64;
    let f = frame_features(&sine_at_bin(a, k0, n), rate);
    // Weights 1/4, 1/2, 1/4 at k0-1, k0, k0+1.
    close(f.centroid_hz, k0 as f64 * df, 1e-9, "centroid");
    close(f.bandwidth_hz, df / 2f64.sqrt(), 1e-6, "bandwidth");
    // Cumulative 1/4, 3/4, 1: 85 % is reached at k0 + 1.
    close(f.rolloff_hz, (k0 + 1) as f64 * df, 1e-9, "roll-off");
    // Flatness from its definition: three bins of power, the rest at the floor.
    let (p0, p1) = ((a * n as f64 / 4.0).powi(2), (a * n as f64 / 8.0).powi(2));
    let bins = (n / 2 + 1) as f64;
    let amin = FLATNESS_AMIN;
    let geo = ((p0.ln() + 2.0 * p1.ln() + (bins - 3.0) * amin.ln()) / bins).exp();
    let arith = (p0 + 2.0 * p1 + (bins - 3.0) * amin) / bins;
    close(f.flatness, geo / arith, 1e-6 * geo / arith, "flatness");
    assert!(f.flatness < 1e-6);
}

#[test]
fn one_frame_flat_and_silent() {
    let rate = 22_050;
    let n = FEATURE_FFT;
    let df = f64::from(rate) / n as f64;
    let bins = n / 2 + 1;
    // Equal magnitude in every bin: the mean bin frequency, the spread of a uniform grid, the
    // bin where 85 % of the bins are counted, flatness 1.
    let f = frame_features(&vec![3.0; bins], rate);
    close(
        f.centroid_hz,
        (bins - 1) as f64 / 2.0 * df,
        1e-6,
        "centroid",
    );
    let var = ((bins * bins - 1) as f64 / 12.0) * df * df;
    close(f.bandwidth_hz, var.sqrt(), 1e-6, "bandwidth");
    let k = (0.85 * bins as f64).ceil() as usize - 1;
    close(f.rolloff_hz, k as f64 * df, 1e-9, "roll-off");
    close(f.flatness, 1.0, 1e-12, "flatness");
    // Silence: librosa's convention (every power at the floor, so flatness 1).
    let f = frame_features(&vec![0.0; bins], rate);
    assert_eq!(
        (f.centroid_hz, f.bandwidth_hz, f.rolloff_hz),
        (0.0, 0.0, 0.0)
    );
    close(f.flatness, 1.0, 1e-12, "flatness of silence");
}

fn stream(x: &[f32], rate: u32, block: usize) -> Option<FrameFeatures> {
    let mut m = FeatureMeter::new(rate);
    for b in x.chunks(block) {
        m.feed(b);
    }
    m.finish()
}

/// librosa's framing done directly: zero-pad 1024 samples at each end, a frame every 512
/// samples (`1 + ⌊L / 512⌋` of them), periodic Hann, an f64 FFT per frame; the features of each
/// frame.
fn direct_frames(x: &[f32], rate: u32) -> Vec<FrameFeatures> {
    use rustfft::{FftPlanner, num_complex::Complex};
    let n = FEATURE_FFT;
    let mut padded = vec![0f64; n / 2];
    padded.extend(x.iter().map(|&v| f64::from(v)));
    padded.extend(std::iter::repeat_n(0.0, n / 2));
    let fft = FftPlanner::<f64>::new().plan_fft_forward(n);
    (0..1 + x.len() / FEATURE_HOP)
        .map(|t| {
            let mut buf: Vec<Complex<f64>> = (0..n)
                .map(|i| {
                    let w = 0.5 - 0.5 * (TAU * i as f64 / n as f64).cos();
                    Complex::new(w * padded[t * FEATURE_HOP + i], 0.0)
                })
                .collect();
            fft.process(&mut buf);
            let mag: Vec<f64> = buf[..=n / 2].iter().map(|c| c.norm()).collect();
            frame_features(&mag, rate)
        })
        .collect()
}

#[test]
fn a_sine_at_a_bin_centre_frame_by_frame_and_streamed() {
    let rate = 48_000;
    let df = f64::from(rate) / FEATURE_FFT as f64;
    let f0 = 43.0 * df;
    let len = 5 * rate as usize + 123;
    let x = sluice_core::signal::sine(rate, f0, 0.5, len);
    let frames = direct_frames(&x, rate);
    // Every frame that lies wholly inside the signal sees the exact three-bin spectrum.
    let inside: Vec<&FrameFeatures> = frames
        .iter()
        .enumerate()
        .filter(|(t, _)| {
            t * FEATURE_HOP >= FEATURE_FFT / 2 && t * FEATURE_HOP + FEATURE_FFT / 2 <= len
        })
        .map(|(_, f)| f)
        .collect();
    assert!(inside.len() > 400);
    let worst = |g: fn(&FrameFeatures) -> f64, want: f64| {
        inside
            .iter()
            .map(|f| (g(f) - want).abs())
            .fold(0.0, f64::max)
    };
    println!(
        "sine frames: centroid {:.2e} Hz, bandwidth {:.2e} Hz from the closed form",
        worst(|f| f.centroid_hz, f0),
        worst(|f| f.bandwidth_hz, df / 2f64.sqrt())
    );
    // The input's f32 rounding leaves a floor about 150 dB down in every bin, which moves the
    // centroid by a few mHz and the bandwidth (weighted by the squared distance) by ~1.6 Hz.
    for f in &inside {
        close(f.centroid_hz, f0, 0.01, "centroid");
        close(f.bandwidth_hz, df / 2f64.sqrt(), 0.2 * df, "bandwidth");
        close(f.rolloff_hz, f0 + df, 1e-9, "roll-off");
        assert!(f.flatness < 1e-6, "flatness {}", f.flatness);
    }
    // The streamed mean is the mean of those frames and of the frames at the ends, which the
    // zero padding cuts (their spectra leak, so the mean is not f0 itself).
    let mean =
        |g: fn(&FrameFeatures) -> f64| frames.iter().map(g).sum::<f64>() / frames.len() as f64;
    for block in [1000, 4096, 77_777] {
        let f = stream(&x, rate, block).unwrap();
        let c = mean(|f| f.centroid_hz);
        let bw = mean(|f| f.bandwidth_hz);
        println!(
            "streamed − direct: centroid {:.1e} Hz, bandwidth {:.1e} Hz",
            f.centroid_hz - c,
            f.bandwidth_hz - bw
        );
        close(f.centroid_hz, c, 1e-4 * c, "streamed centroid");
        close(f.bandwidth_hz, bw, 1e-4 * bw, "streamed bandwidth");
        close(
            f.rolloff_hz,
            mean(|f| f.rolloff_hz),
            1e-9,
            "streamed roll-off",
        );
        close(f.flatness, mean(|f| f.flatness), 1e-6, "streamed flatness");
    }
}

#[test]
fn streamed_equals_direct_on_music_and_odd_lengths() {
    // The padding and frame count at both ends, for lengths around the hop and the frame.
    let s = ensemble();
    let mono: Vec<f32> = s.planes[0]
        .iter()
        .zip(&s.planes[1])
        .map(|(a, b)| ((a + b) / 2.0) as f32)
        .collect();
    for len in [
        1,
        511,
        512,
        513,
        1023,
        1024,
        2047,
        2048,
        2049,
        5000,
        mono.len(),
    ] {
        let x = &mono[mono.len() / 3..][..len.min(mono.len() - mono.len() / 3)];
        let frames = direct_frames(x, s.rate);
        let got = stream(x, s.rate, 700).unwrap();
        let n = frames.len() as f64;
        let want = [
            frames.iter().map(|f| f.centroid_hz).sum::<f64>() / n,
            frames.iter().map(|f| f.bandwidth_hz).sum::<f64>() / n,
            frames.iter().map(|f| f.rolloff_hz).sum::<f64>() / n,
            frames.iter().map(|f| f.flatness).sum::<f64>() / n,
        ];
        let got = [
            got.centroid_hz,
            got.bandwidth_hz,
            got.rolloff_hz,
            got.flatness,
        ];
        for ((g, w), what) in
            got.iter()
                .zip(want)
                .zip(["centroid", "bandwidth", "roll-off", "flatness"])
        {
            close(
                *g,
                w,
                1e-4 * w.abs().max(1.0),
                &format!("{len} samples: {what}"),
            );
        }
    }
}

#[test]
fn white_noise() {
    // Each bin's magnitude is Rayleigh with the same mean and its power exponential: centroid
    // at half the Nyquist frequency, the bandwidth of a uniform grid of 1025 bins, roll-off at
    // the 85 % bin, flatness e^−γ.
    for rate in [22_050, 48_000] {
        let x = sluice_core::signal::noise(5, 0.5, 20 * rate as usize);
        let f = stream(&x, rate, 1000).unwrap();
        let df = f64::from(rate) / FEATURE_FFT as f64;
        let bins = FEATURE_FFT / 2 + 1;
        let nyq = f64::from(rate) / 2.0;
        close(f.centroid_hz, nyq / 2.0, 0.005 * nyq / 2.0, "centroid");
        let bw = (((bins * bins - 1) as f64) / 12.0).sqrt() * df;
        close(f.bandwidth_hz, bw, 0.005 * bw, "bandwidth");
        let k = (0.85 * bins as f64).ceil() - 1.0;
        close(f.rolloff_hz, k * df, 1.5 * df, "roll-off");
        let euler_gamma = 0.577_215_664_901_532_9_f64;
        close(f.flatness, (-euler_gamma).exp(), 0.01, "flatness");
    }
}

#[test]
fn frames_and_padding_follow_librosa() {
    // A file of L samples has 1 + ⌊L / 512⌋ frames; an impulse at sample i sits in the frames
    // whose 2048-sample span (centred, zero-padded) covers it. With an impulse, a frame's
    // magnitude spectrum is flat (the window value at its position), so its centroid is half
    // the Nyquist frequency, and empty frames read 0: the mean centroid counts both.
    let rate = 8_000;
    let nyq_half = f64::from(rate) / 4.0;
    for (len, at) in [
        (10_000usize, 5_000usize),
        (3_000, 0),
        (3_000, 2_999),
        (700, 350),
    ] {
        let mut x = vec![0f32; len];
        x[at] = 0.5;
        let frames = 1 + len / FEATURE_HOP;
        // Frame t spans samples t·hop − 1024 .. t·hop + 1024; the periodic Hann is zero only at
        // its first sample.
        let hit = (0..frames)
            .filter(|&t| {
                let lo = (t * FEATURE_HOP) as i64 - (FEATURE_FFT / 2) as i64;
                let pos = at as i64 - lo;
                pos > 0 && pos < FEATURE_FFT as i64
            })
            .count();
        let f = stream(&x, rate, 333).unwrap();
        close(
            f.centroid_hz,
            nyq_half * hit as f64 / frames as f64,
            1e-3,
            &format!("{len} samples, impulse at {at}"),
        );
        // Empty frames have flatness 1, as do the flat spectra of the impulse frames.
        close(f.flatness, 1.0, 1e-6, "flatness");
    }
}

#[test]
fn block_size_does_not_matter_and_silence_is_undefined() {
    let x = sluice_core::signal::noise(3, 0.3, 30_000);
    let a = stream(&x, 44_100, 30_000);
    assert!(a.is_some());
    for block in [1, 511, 512, 4096] {
        assert_eq!(stream(&x, 44_100, block), a, "block {block}");
    }
    assert_eq!(stream(&vec![0.0; 44_100], 44_100, 4096), None);
    assert_eq!(stream(&[], 44_100, 4096), None);
}
