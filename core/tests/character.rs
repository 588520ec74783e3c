//! Transients and harmonic figures (`analysis::character`) on signals whose answers are known:
//! bursts with linear attacks of known length at a known rate, a tone in noise at a known
//! signal-to-noise ratio, and tones with harmonics of known level.

use sluice_core::analysis::character::{HarmonicMeter, TransientMeter};
use sluice_core::signal;
use std::f64::consts::TAU;

const RATE: u32 = 48_000;

/// 1 kHz bursts every `period` s from 0.25 s: a linear attack of `attack_ms`, 100 ms held,
/// 150 ms linear decay, silence (−80 dB of noise) between.
fn bursts(seconds: f64, period: f64, attack_ms: f64) -> Vec<f32> {
    let n = (seconds * f64::from(RATE)) as usize;
    let floor = signal::noise(9, 1e-4, n);
    (0..n)
        .map(|i| {
            let t = i as f64 / f64::from(RATE);
            let local = if t < 0.25 { -1.0 } else { (t - 0.25) % period };
            let a = attack_ms / 1000.0;
            let env = if local < 0.0 {
                0.0
            } else if local < a {
                local / a
            } else if local < a + 0.1 {
                1.0
            } else if local < a + 0.25 {
                1.0 - (local - a - 0.1) / 0.15
            } else {
                0.0
            };
            (0.5 * env * (TAU * 1000.0 * t).sin()) as f32 + floor[i]
        })
        .collect()
}

fn transients(x: &[f32]) -> (u64, f64, Option<f64>, Option<f64>) {
    let mut m = TransientMeter::new(RATE);
    for chunk in x.chunks(4093) {
        m.feed(chunk);
    }
    m.finish(RATE)
}

#[test]
fn bursts_are_counted_and_their_attacks_timed() {
    // 10 s of bursts every 0.5 s from 0.25 s: 20 onsets, 2 per second. A linear attack of
    // T ms goes from 10 % to 90 % of its amplitude in 0.8 T.
    for (attack, tolerance) in [(20.0, 1.5), (5.0, 1.2), (40.0, 2.0)] {
        let (n, density, attack_ms, rise) = transients(&bursts(10.0, 0.5, attack));
        assert_eq!(n, 20, "{attack} ms attacks");
        assert!((density - 2.0).abs() < 1e-9, "{density}");
        let a = attack_ms.unwrap();
        assert!(
            (a - 0.8 * attack).abs() < tolerance,
            "{attack} ms: read {a:.2} ms"
        );
        // From the −80 dB floor to a 0.5 sine's RMS (−9 dB): about 70 dB.
        let rise = rise.unwrap();
        assert!(rise > 60.0, "{rise}");
    }
    // Steady noise has no onsets; silence neither.
    let (n, density, attack, _) = transients(&signal::noise(3, 0.5, 5 * RATE as usize));
    assert_eq!((n, density, attack), (0, 0.0, None));
    assert_eq!(transients(&vec![0.0; RATE as usize]).0, 0);
}

fn harmonics(x: &[f32]) -> (Option<f64>, Option<f64>, Option<f64>) {
    let mut m = HarmonicMeter::new(RATE);
    for chunk in x.chunks(5000) {
        m.feed(chunk);
    }
    m.finish()
}

/// A tone at `f` Hz with harmonics of the given amplitudes (relative to the fundamental's 0.3).
fn tone(f: f64, harmonics: &[(usize, f64)], seconds: f64) -> Vec<f32> {
    let n = (seconds * f64::from(RATE)) as usize;
    (0..n)
        .map(|i| {
            let t = i as f64 / f64::from(RATE);
            let mut v = (TAU * f * t).sin();
            for &(h, a) in harmonics {
                v += a * (TAU * f * h as f64 * t + 0.3 * h as f64).sin();
            }
            (0.3 * v) as f32
        })
        .collect()
}

#[test]
fn thd_of_tones_with_known_harmonics() {
    // 2nd harmonic at 10 % and 3rd at 3.16 %: THD sqrt(0.01 + 0.001) = 10.49 %.
    for f in [1000.0, 441.0, 97.0] {
        let (_, thd, f0) = harmonics(&tone(f, &[(2, 0.1), (3, 0.0316)], 5.0));
        let thd = thd.unwrap();
        assert!((thd - 10.49).abs() < 0.3, "{f} Hz: THD {thd:.3} %");
        assert!((f0.unwrap() - f).abs() < 1.0, "{f} Hz read {f0:?}");
    }
    // 1 % of 5th harmonic alone.
    let (_, thd, _) = harmonics(&tone(300.0, &[(5, 0.01)], 5.0));
    assert!((thd.unwrap() - 1.0).abs() < 0.1, "{thd:?}");
    // A pure tone.
    let (_, thd, _) = harmonics(&tone(500.0, &[], 5.0));
    assert!(thd.unwrap() < 0.05, "{thd:?}");
}

#[test]
fn hnr_reads_a_periodic_signals_snr_in_noise() {
    // A 220 Hz tone with harmonics (periodic) plus white noise at a known power ratio.
    let n = 6 * RATE as usize;
    let periodic = tone(220.0, &[(2, 0.5), (3, 0.25)], 6.0);
    let p_per: f64 = periodic.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / n as f64;
    for snr in [0.0, 10.0, 20.0] {
        let noise = signal::noise(11, 1.0, n);
        let p_noise: f64 = noise.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / n as f64;
        let k = (p_per / p_noise / 10f64.powf(snr / 10.0)).sqrt();
        let x: Vec<f32> = periodic
            .iter()
            .zip(&noise)
            .map(|(&a, &b)| a + (f64::from(b) * k) as f32)
            .collect();
        let (hnr, _, _) = harmonics(&x);
        let hnr = hnr.unwrap();
        assert!((hnr - snr).abs() < 2.0, "SNR {snr} dB read HNR {hnr:.2} dB");
    }
    let (hnr, _, _) = harmonics(&signal::noise(4, 0.5, n));
    assert!(hnr.unwrap() < -5.0, "noise: {hnr:?}");
    let (hnr, _, _) = harmonics(&tone(220.0, &[(2, 0.5)], 3.0));
    assert!(hnr.unwrap() > 30.0, "a tone: {hnr:?}");
    // Silence has none.
    assert_eq!(harmonics(&vec![0.0; n]).0, None);
}
