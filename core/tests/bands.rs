//! Per-band metrics (`analysis::bands`) on signals whose answers are known: band-limited noise
//! in each band, a sine of known level, a mix that is mono below 120 Hz and wide in the high
//! band, a band whose level steps, silence and a mono file.

mod common;

use rustfft::FftPlanner;
use rustfft::num_complex::Complex;
use sluice_core::analysis::bands::{BandMeter, BandMetrics};
use sluice_core::analysis::spectrum::BANDS;
use sluice_core::signal;

const RATE: u32 = 48_000;

fn measure(l: &[f32], r: &[f32], rate: u32) -> Vec<BandMetrics> {
    let mut m = BandMeter::new(rate);
    // Odd block sizes: the result must not depend on them.
    let mut at = 0;
    for size in [1000usize, 4096, 17, 333].iter().cycle() {
        if at >= l.len() {
            break;
        }
        let end = (at + size).min(l.len());
        m.feed(&l[at..end], &r[at..end]);
        at = end;
    }
    m.finish()
}

/// White noise (seeded) kept between `lo` and `hi` Hz by an FFT brick wall, scaled to `rms`.
fn band_noise(seed: u64, lo: f64, hi: f64, rms: f64, frames: usize, rate: u32) -> Vec<f32> {
    let x = signal::noise(seed, 1.0, frames);
    let mut z: Vec<Complex<f64>> = x.iter().map(|&v| Complex::new(f64::from(v), 0.0)).collect();
    let mut planner = FftPlanner::new();
    planner.plan_fft_forward(frames).process(&mut z);
    for (k, v) in z.iter_mut().enumerate() {
        let f = k.min(frames - k) as f64 * f64::from(rate) / frames as f64;
        if f < lo || f > hi {
            *v = Complex::new(0.0, 0.0);
        }
    }
    planner.plan_fft_inverse(frames).process(&mut z);
    let y: Vec<f64> = z.iter().map(|v| v.re).collect();
    let now = (y.iter().map(|v| v * v).sum::<f64>() / frames as f64).sqrt();
    y.iter().map(|v| (v * rms / now) as f32).collect()
}

#[test]
fn noise_in_one_band_is_found_in_that_band() {
    // Independent noise in each channel, half an octave inside the band's edges: that band
    // holds nearly all the energy (what the 24 dB/octave slopes let into the neighbours is the
    // rest: the narrowest band, low-mid, keeps the least), reads the noise's level, and is as
    // wide as unrelated channels are (0.5, correlation 0). Measured: shares 94.3 (low-mid) to
    // 99.6 %, levels within 0.25 dB.
    let frames = 10 * RATE as usize;
    for (b, &(name, lo, hi)) in BANDS.iter().enumerate() {
        let (lo, hi) = (lo * 1.41, hi / 1.41);
        let l = band_noise(1 + b as u64, lo, hi, 0.1, frames, RATE);
        let r = band_noise(100 + b as u64, lo, hi, 0.1, frames, RATE);
        let m = measure(&l, &r, RATE);
        let share = m[b].share_percent.unwrap();
        let rms = m[b].rms_dbfs.unwrap();
        eprintln!(
            "{name}: share {share:.2} %, rms {rms:.2} dBFS, width {:?}",
            m[b].width
        );
        assert!(share > 93.0, "{name}: {share:.2} %");
        assert!((rms + 20.0).abs() < 0.3, "{name}: {rms:.2} dBFS");
        assert!(
            (m[b].width.unwrap() - 0.5).abs() < 0.05,
            "{name}: {:?}",
            m[b].width
        );
        assert!(
            m[b].correlation.unwrap().abs() < 0.1,
            "{name}: {:?}",
            m[b].correlation
        );
        let total: f64 = m.iter().map(|x| x.share_percent.unwrap()).sum();
        assert!((total - 100.0).abs() < 1e-9);
    }
}

#[test]
fn a_sine_reads_its_level_peak_and_crest() {
    // 1 kHz at half scale in both channels (faded in over 100 ms, so that no band's filters
    // ring at a step): the mid band's RMS is −9.03 dBFS, its peak −6.02, crest 3.01 dB (less
    // the filters' −0.03 dB an octave from both edges); the channels are identical (width 0,
    // correlation 1); the low band holds next to nothing.
    let mut x = signal::sine(RATE, 1000.0, 0.5, 10 * RATE as usize);
    let fade = RATE as usize / 10;
    for (i, v) in x[..fade].iter_mut().enumerate() {
        *v *= (0.5 - 0.5 * (std::f64::consts::PI * i as f64 / fade as f64).cos()) as f32;
    }
    let m = measure(&x, &x, RATE);
    let mid = &m[2];
    let whole = x.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / x.len() as f64;
    let whole = 10.0 * whole.log10();
    eprintln!("{mid:?}, the signal {whole:.3} dBFS");
    assert!(
        (mid.rms_dbfs.unwrap() - (whole - 0.034)).abs() < 0.01,
        "{mid:?}"
    );
    assert!(
        (mid.peak_dbfs.unwrap() - (-6.02 - 0.034)).abs() < 0.01,
        "{mid:?}"
    );
    assert!((mid.crest_db.unwrap() - 3.01).abs() < 0.05, "{mid:?}");
    assert!(mid.width.unwrap() < 1e-6 && mid.correlation.unwrap() > 0.999_999);
    assert!(mid.share_percent.unwrap() > 99.0);
    // 1 kHz is 2.3 octaves over the low band's 200 Hz edge: −56 dB under the 24 dB/octave
    // slope.
    assert!(m[0].rms_dbfs.unwrap() < -9.0 - 55.0, "{:?}", m[0]);
    // A steady tone does not move: the spread is (nearly) nothing.
    assert!(mid.spread_db.unwrap() < 0.1, "{mid:?}");
}

#[test]
fn a_mix_mono_below_120_hz_and_wide_on_top() {
    // A 60 Hz tone the same in both channels (the low end in mono, as cut for vinyl and
    // clubs), and unrelated noise in the high band: the low band is mono, the high band wide.
    let frames = 10 * RATE as usize;
    let bass = signal::sine(RATE, 60.0, 0.3, frames);
    let hl = band_noise(7, 7000.0, 15000.0, 0.05, frames, RATE);
    let hr = band_noise(8, 7000.0, 15000.0, 0.05, frames, RATE);
    let l: Vec<f32> = bass.iter().zip(&hl).map(|(a, b)| a + b).collect();
    let r: Vec<f32> = bass.iter().zip(&hr).map(|(a, b)| a + b).collect();
    let m = measure(&l, &r, RATE);
    eprintln!("low {:?}\nhigh {:?}", m[0], m[4]);
    assert!(m[0].width.unwrap() < 0.001, "{:?}", m[0]);
    assert!(m[0].correlation.unwrap() > 0.998, "{:?}", m[0]);
    assert!((m[4].width.unwrap() - 0.5).abs() < 0.05, "{:?}", m[4]);
    assert!(m[4].correlation.unwrap().abs() < 0.1, "{:?}", m[4]);
    // Fully inverted high band: width 1, correlation −1.
    let inv: Vec<f32> = hl.iter().map(|v| -v).collect();
    let m = measure(&hl, &inv, RATE);
    assert!(m[4].width.unwrap() > 0.999 && m[4].correlation.unwrap() < -0.999);
}

#[test]
fn the_spread_follows_a_band_whose_level_steps() {
    // Noise in the low-mid band, 10 s at −20 dBFS RMS and 10 s at −40, four times: the band's
    // short-term level spends time at both, so its spread is the 20 dB step (the windows
    // straddling a step fall between); steady noise moves by a fraction of a dB.
    let seg = 10 * RATE as usize;
    let mut x = Vec::new();
    for i in 0..8 {
        let rms = if i % 2 == 0 { 0.1 } else { 0.01 };
        x.extend(band_noise(20 + i, 260.0, 400.0, rms, seg, RATE));
    }
    let m = measure(&x, &x, RATE);
    let s = m[1].spread_db.unwrap();
    eprintln!("stepping: {s:.2} dB");
    assert!((s - 20.0).abs() < 1.0, "{s:.2}");
    let steady = band_noise(40, 260.0, 400.0, 0.1, 8 * seg, RATE);
    let s = measure(&steady, &steady, RATE)[1].spread_db.unwrap();
    eprintln!("steady: {s:.2} dB");
    assert!(s < 1.0, "{s:.2}");
}

#[test]
fn silence_reads_nothing_and_the_rate_does_not_matter() {
    let z = vec![0f32; RATE as usize * 4];
    for b in measure(&z, &z, RATE) {
        assert_eq!(b.share_percent, None);
        assert_eq!(b.rms_dbfs, None);
        assert_eq!(b.peak_dbfs, None);
        assert_eq!(b.width, None);
        assert_eq!(b.correlation, None);
        assert_eq!(b.spread_db, None);
    }
    // The same band noise at 44.1, 48 and 96 kHz reads the same (within 0.2 dB and 1 point).
    let mut seen = Vec::new();
    for rate in [44_100u32, 48_000, 96_000] {
        let frames = 8 * rate as usize;
        let l = band_noise(3, 2500.0, 4800.0, 0.1, frames, rate);
        let r = band_noise(4, 2500.0, 4800.0, 0.1, frames, rate);
        let m = measure(&l, &r, rate);
        seen.push((m[3].rms_dbfs.unwrap(), m[3].share_percent.unwrap()));
    }
    eprintln!("{seen:?}");
    for (rms, share) in &seen {
        assert!((rms - seen[0].0).abs() < 0.2 && (share - seen[0].1).abs() < 1.0);
    }
}

#[test]
fn the_bands_section_of_an_analysis_also_measures_the_stereo_section() {
    // Asked for with the stereo section, the bands analyzer measures it in the same pass (sums
    // per 100 ms block in f32, 400 ms windows of four blocks): the same figures as the stereo
    // analyzer's to 1e-5. A mono file gets bands (width 0 everywhere) and no stereo section.
    use sluice_core::analysis::{AnalysisOptions, Section, analyze};
    let dir = tempfile::tempdir().unwrap();
    let frames = 6 * RATE as usize;
    let l = band_noise(11, 100.0, 15_000.0, 0.1, frames, RATE);
    let r: Vec<f32> = band_noise(12, 100.0, 15_000.0, 0.1, frames, RATE)
        .iter()
        .zip(&l)
        .map(|(a, b)| 0.5 * a + 0.8 * b)
        .collect();
    let stereo = dir.path().join("stereo.wav");
    common::write_float_wav(&stereo, RATE, &[l.clone(), r]);
    let opts = |sections: Vec<Section>| AnalysisOptions {
        sections,
        ..AnalysisOptions::default()
    };
    let alone = analyze(&stereo, &opts(vec![Section::Stereo]), &mut |_| {}).unwrap();
    let both = analyze(
        &stereo,
        &opts(vec![Section::Stereo, Section::Bands]),
        &mut |_| {},
    )
    .unwrap();
    let (a, b) = (
        alone.stereo.clone().unwrap().unwrap(),
        both.stereo.clone().unwrap().unwrap(),
    );
    eprintln!("{a:?}\n{b:?}");
    for (x, y) in [
        (a.correlation, b.correlation),
        (a.correlation_min, b.correlation_min),
        (a.width, b.width),
        (a.side_to_mid_db, b.side_to_mid_db),
        (a.balance_db, b.balance_db),
    ] {
        assert!((x.unwrap() - y.unwrap()).abs() < 1e-5, "{x:?} / {y:?}");
    }
    assert_eq!(both.bands.as_ref().unwrap().len(), 5);
    assert!(alone.bands.is_none());
    // The full analysis does not include the bands yet.
    let full = analyze(&stereo, &AnalysisOptions::default(), &mut |_| {}).unwrap();
    assert!(full.bands.is_none() && full.stereo.is_some());

    let mono = dir.path().join("mono.wav");
    common::write_float_wav(&mono, RATE, &[l]);
    let m = analyze(
        &mono,
        &opts(vec![Section::Stereo, Section::Bands]),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(m.stereo, Some(None));
    for band in m.bands.unwrap() {
        assert!(band.width.unwrap() < 1e-9, "{band:?}");
    }
}

#[test]
fn telephone_rates_measure_the_bands_they_hold() {
    // At 8, 11.025 and 12 kHz the high band (from 6 kHz) is above what the file can hold:
    // it reads nothing, and the others are measured as at any rate — their shares add up to
    // 100 % and noise in the mid band is found there. (The high band's high-pass at 6 kHz,
    // past the Nyquist frequency, once turned every band's share into nothing.)
    for rate in [8_000u32, 11_025, 12_000] {
        let frames = 8 * rate as usize;
        let l = band_noise(5, 700.0, 1400.0, 0.1, frames, rate);
        let r = band_noise(6, 700.0, 1400.0, 0.1, frames, rate);
        let m = measure(&l, &r, rate);
        let high = &m[4];
        assert_eq!(high.rms_dbfs, None, "{rate} Hz: {high:?}");
        assert_eq!(high.share_percent, None, "{rate} Hz: {high:?}");
        let shares: f64 = m[..4].iter().map(|b| b.share_percent.unwrap()).sum();
        assert!((shares - 100.0).abs() < 1e-6, "{rate} Hz: {m:#?}");
        let mid = &m[2];
        assert!(mid.share_percent.unwrap() > 95.0, "{rate} Hz: {m:#?}");
        assert!(
            (mid.rms_dbfs.unwrap() + 20.0).abs() < 0.3,
            "{rate} Hz: {mid:?}"
        );
        for b in &m[..4] {
            assert!(b.peak_dbfs.is_some_and(f64::is_finite), "{rate} Hz: {b:?}");
        }
    }
}
