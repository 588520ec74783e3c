//! Levels, stereo, spectrum, waveform and targets on signals with closed-form answers, and the
//! whole `analyze` pass on fixture files (checked against ffmpeg's ebur128 filter).

mod common;

use sluice_core::analysis::levels::LevelMeter;
use sluice_core::analysis::spectrum::{FeatureMeter, SpectrumMeter};
use sluice_core::analysis::stereo::StereoMeter;
use sluice_core::analysis::waveform::WaveformMeter;
use sluice_core::analysis::{AnalysisOptions, Section, Target, analyze};
use sluice_core::signal::{noise, sine};

const SR: u32 = 48_000;

fn close(got: f64, want: f64, tol: f64, what: &str) {
    assert!(
        (got - want).abs() <= tol,
        "{what}: {got}, expected {want} ±{tol}"
    );
}

fn feed_levels(planes: &[Vec<f32>]) -> sluice_core::analysis::Levels {
    let mut m = LevelMeter::new(SR, planes.len(), -60.0);
    let n = planes[0].len();
    for at in (0..n).step_by(1000) {
        let e = (at + 1000).min(n);
        let s: Vec<&[f32]> = planes.iter().map(|p| &p[at..e]).collect();
        m.feed(&s);
    }
    m.finish()
}

#[test]
fn levels_of_a_sine() {
    let x = sine(SR, 997.0, 0.5, SR as usize * 4);
    let l = feed_levels(&[x]);
    close(l.peak_dbfs.unwrap(), -6.0206, 0.01, "peak");
    close(l.rms_dbfs.unwrap(), -9.0309, 0.01, "rms");
    close(l.crest_factor_db.unwrap(), 3.0103, 0.02, "crest");
    close(l.dc_offset_per_channel[0], 0.0, 1e-4, "dc");
    close(
        l.zero_crossing_rate_hz.unwrap(),
        2.0 * 997.0,
        1.0,
        "zero-crossing rate",
    );
    // One 3 s block of a steady sine: RMS+3 dB equals the peak, so DR is 0.
    close(l.dynamic_range_db.unwrap(), 0.0, 0.05, "DR of a sine");
    assert_eq!(l.clipped_samples, 0);
    assert_eq!(l.clipped_fraction, Some(0.0));
    close(l.leading_silence_seconds, 0.0, 1e-3, "leading silence");
}

#[test]
fn clipped_fraction_counts_full_scale_samples_on_every_channel() {
    // A square wave at full scale is all full-scale samples, at the 16-bit maximum too; just
    // below it (0.9999, which still counts as a clip run) none.
    let square = |amp: f32| -> Vec<f32> {
        (0..SR as usize)
            .map(|i| if (i / 240) % 2 == 0 { amp } else { -amp })
            .collect()
    };
    assert_eq!(feed_levels(&[square(1.0)]).clipped_fraction, Some(1.0));
    assert_eq!(
        feed_levels(&[square(32_767.0 / 32_768.0)]).clipped_fraction,
        Some(1.0)
    );
    let l = feed_levels(&[square(0.9999)]);
    assert_eq!(l.clipped_fraction, Some(0.0));
    assert!(l.clipped_samples > 0);
    // A sine at 0.5: none.
    let l = feed_levels(&[sine(SR, 440.0, 0.5, SR as usize)]);
    assert_eq!(l.clipped_fraction, Some(0.0));
    // Stereo: a full-scale square on the left for a quarter of the file, a quiet sine on the
    // right: 1/4 of one channel's samples, 1/8 of all.
    let n = SR as usize * 2;
    let mut left = vec![0.0f32; n];
    left[..n / 4].copy_from_slice(&square(1.0)[..n / 4]);
    let right = sine(SR, 1000.0, 0.25, n);
    let l = feed_levels(&[left, right]);
    assert_eq!(l.clipped_fraction, Some(0.125));
    // Isolated full-scale samples count too, though they make no clip run.
    let mut x = sine(SR, 100.0, 0.5, 48_000);
    for i in (0..x.len()).step_by(100) {
        x[i] = -1.0;
    }
    let l = feed_levels(&[x]);
    assert_eq!(l.clip_events, 0);
    assert_eq!(l.clipped_fraction, Some(480.0 / 48_000.0));
    // No samples: undefined.
    assert_eq!(feed_levels(&[Vec::new()]).clipped_fraction, None);
}

#[test]
fn dynamic_range_of_uniform_noise_and_dc_offset() {
    // Uniform noise: RMS = A/√3, so DR = 20·log10(A / (A/√3·√2)) = 1.76 dB.
    let x: Vec<f32> = noise(3, 0.5, SR as usize * 30)
        .iter()
        .map(|v| v + 0.1)
        .collect();
    let l = feed_levels(&[x]);
    close(l.dc_offset_per_channel[0], 0.1, 0.002, "dc offset");
    let y = noise(4, 0.5, SR as usize * 30);
    let l = feed_levels(&[y]);
    close(
        l.dynamic_range_db.unwrap(),
        1.761,
        0.05,
        "DR of uniform noise",
    );
    // Under 3 s there is no complete block: undefined.
    let l = feed_levels(&[sine(SR, 100.0, 0.5, SR as usize)]);
    assert_eq!(l.dynamic_range_db, None);
}

#[test]
fn clipping_and_silence() {
    // A sine driven to 1.5 and hard-clipped: two flat tops per cycle.
    let f = 50.0;
    let x: Vec<f32> = sine(SR, f, 1.5, SR as usize * 2)
        .iter()
        .map(|v| v.clamp(-1.0, 1.0))
        .collect();
    let expected_run = x
        .iter()
        .take((SR as f64 / f) as usize)
        .filter(|v| v.abs() >= 0.9999)
        .count();
    let mut pad = vec![0.0f32; SR as usize];
    pad.extend(&x);
    pad.extend(vec![0.0f32; SR as usize / 2]);
    let l = feed_levels(&[pad]);
    assert_eq!(
        l.clip_events,
        2 * 50 * 2,
        "two clipped tops per cycle for 2 s"
    );
    close(
        l.clipped_samples as f64,
        (expected_run * 100) as f64,
        200.0,
        "clipped samples",
    );
    close(l.leading_silence_seconds, 1.0, 0.001, "leading silence");
    close(l.trailing_silence_seconds, 0.5, 0.001, "trailing silence");
    // Full-scale share: 1.5·|sin| ≥ 32767/32768 for 1 − (2/π)·asin(c/1.5) of the time, over
    // the 2 s of 3.5.
    let c = 32_767.0 / 32_768.0;
    let tops = 1.0 - 2.0 / std::f64::consts::PI * (c / 1.5f64).asin();
    close(
        l.clipped_fraction.unwrap(),
        tops * 2.0 / 3.5,
        2e-4,
        "clipped fraction",
    );
    // Pure silence: levels undefined, the whole file is silence.
    let l = feed_levels(&[vec![0.0; SR as usize]]);
    assert_eq!(l.peak_dbfs, None);
    assert_eq!(l.rms_dbfs, None);
    close(l.leading_silence_seconds, 1.0, 1e-9, "all silence");
}

fn stereo_of(l: &[f32], r: &[f32]) -> sluice_core::analysis::Stereo {
    let mut m = StereoMeter::new(SR);
    for (a, b) in l.chunks(777).zip(r.chunks(777)) {
        m.feed(a, b);
    }
    m.finish()
}

#[test]
fn stereo_correlation_width_balance() {
    let a = noise(1, 0.5, SR as usize * 5);
    let b = noise(2, 0.5, SR as usize * 5);
    let mono = stereo_of(&a, &a);
    close(mono.correlation.unwrap(), 1.0, 1e-9, "mono correlation");
    close(mono.width.unwrap(), 0.0, 1e-9, "mono width");
    close(mono.balance_db.unwrap(), 0.0, 1e-9, "mono balance");
    let inv: Vec<f32> = a.iter().map(|v| -v).collect();
    let s = stereo_of(&a, &inv);
    close(s.correlation.unwrap(), -1.0, 1e-9, "inverted correlation");
    close(s.width.unwrap(), 1.0, 1e-9, "inverted width");
    close(
        s.correlation_min.unwrap(),
        -1.0,
        1e-6,
        "inverted min correlation",
    );
    let s = stereo_of(&a, &b);
    close(s.correlation.unwrap(), 0.0, 0.02, "independent correlation");
    close(s.width.unwrap(), 0.5, 0.02, "independent width");
    let half: Vec<f32> = b.iter().map(|v| v * 0.5).collect();
    let s = stereo_of(&a, &half);
    close(s.balance_db.unwrap(), -6.02, 0.1, "right at half level");
}

fn spectrum_of(planes: &[Vec<f32>], rate: u32) -> sluice_core::analysis::Spectrum {
    // The long-term spectrum, and the features of the mono mix beside it, as `analyze` does.
    let mut m = SpectrumMeter::new(rate, (0..planes.len()).collect());
    let mut features = FeatureMeter::new(rate);
    let n = planes[0].len();
    for at in (0..n).step_by(3000) {
        let e = (at + 3000).min(n);
        let s: Vec<&[f32]> = planes.iter().map(|p| &p[at..e]).collect();
        m.feed(&s);
        let mono: Vec<f32> = (at..e)
            .map(|i| planes.iter().map(|p| p[i]).sum::<f32>() / planes.len() as f32)
            .collect();
        features.feed(&mono);
    }
    let mut s = m.finish();
    s.set_features(features.finish());
    s
}

#[test]
fn spectrum_of_a_sine() {
    let s = spectrum_of(&[sine(SR, 1000.0, 0.5, SR as usize * 5)], SR);
    close(s.centroid_hz.unwrap(), 1000.0, 5.0, "centroid");
    // librosa's bandwidth weights the magnitude (not the power) by the squared distance, so the
    // Hann window's side lobes count: a few bins (23.4 Hz each at 2048 points), not zero.
    assert!(
        s.bandwidth_hz.unwrap() < 60.0,
        "bandwidth {:?}",
        s.bandwidth_hz
    );
    close(s.rolloff_hz.unwrap(), 1000.0, 24.0, "roll-off");
    assert!(s.flatness.unwrap() < 0.01, "flatness {:?}", s.flatness);
    let mid = s.bands.iter().find(|b| b.name == "mid").unwrap();
    close(mid.share_percent.unwrap(), 100.0, 0.01, "mid band share");
    // The LTAS reads the sine's level in the band holding it.
    let peak = s.ltas.iter().max_by(|a, b| a.db.total_cmp(&b.db)).unwrap();
    close(peak.hz, 1000.0, 35.0, "LTAS peak frequency");
    close(peak.db, -6.02, 0.3, "LTAS peak level");
}

#[test]
fn ltas_reads_the_level_of_tones_low_and_high() {
    for (rate, f) in [
        (44_100, 55.0),
        (44_100, 220.0),
        (48_000, 3_000.0),
        (96_000, 12_345.0),
    ] {
        let s = spectrum_of(&[sine(rate, f, 0.25, rate as usize * 3)], rate);
        let peak = s.ltas.iter().max_by(|a, b| a.db.total_cmp(&b.db)).unwrap();
        close(
            peak.db,
            -12.04,
            0.5,
            &format!("{f} Hz at {rate} Hz: LTAS level"),
        );
        // Within a band, or within the FFT's resolution (2 bins) where bands are finer.
        let df = f64::from(rate) / s.fft_size as f64;
        let tol = (f * (2f64.powf(1.0 / 12.0) - 1.0)).max(2.0 * df);
        close(peak.hz, f, tol, &format!("{f} Hz at {rate} Hz: LTAS band"));
    }
}

#[test]
fn spectrum_of_white_noise() {
    // Flat spectrum to 24 kHz: centroid at the middle, bandwidth = width/√12, roll-off at 85 %
    // of the width, flatness e^−γ (each bin's power is exponentially distributed), band shares
    // in proportion to their widths.
    let x = noise(9, 0.5, SR as usize * 20);
    let y = noise(10, 0.5, SR as usize * 20);
    let s = spectrum_of(&[x, y], SR);
    let (lo, hi) = (0.0, 24_000.0);
    close(
        s.centroid_hz.unwrap(),
        (lo + hi) / 2.0,
        0.01 * 12_000.0,
        "centroid",
    );
    close(
        s.bandwidth_hz.unwrap(),
        (hi - lo) / 12f64.sqrt(),
        0.02 * 6_922.0,
        "bandwidth",
    );
    close(
        s.rolloff_hz.unwrap(),
        lo + 0.85 * (hi - lo),
        0.01 * 20_400.0,
        "roll-off",
    );
    close(
        s.flatness.unwrap(),
        (-0.577_215_664_9f64).exp(),
        0.01,
        "flatness",
    );
    for b in &s.bands {
        let want = 100.0 * (b.high_hz - b.low_hz) / (20_000.0 - 20.0);
        close(
            b.share_percent.unwrap(),
            want,
            0.05 * want + 0.1,
            &format!("{} share", b.name),
        );
    }
}

/// White noise filtered to `lo..hi` Hz by zeroing FFT bins.
fn band_noise(seed: u64, lo: f64, hi: f64, frames: usize) -> Vec<f32> {
    use rustfft::{FftPlanner, num_complex::Complex};
    let x = noise(seed, 1.0, frames);
    let mut a: Vec<Complex<f64>> = x.iter().map(|&v| Complex::new(f64::from(v), 0.0)).collect();
    let mut p = FftPlanner::new();
    p.plan_fft_forward(frames).process(&mut a);
    for (k, v) in a.iter_mut().enumerate() {
        let f = k.min(frames - k) as f64 * f64::from(SR) / frames as f64;
        if f < lo || f > hi {
            *v = Complex::new(0.0, 0.0);
        }
    }
    p.plan_fft_inverse(frames).process(&mut a);
    a.iter()
        .map(|v| (0.5 * v.re / frames as f64) as f32)
        .collect()
}

#[test]
fn spectrum_of_band_limited_noise() {
    let x = band_noise(5, 500.0, 2000.0, SR as usize * 10);
    let s = spectrum_of(&[x], SR);
    close(s.centroid_hz.unwrap(), 1250.0, 0.02 * 1250.0, "centroid");
    // The window's magnitude leakage past the band edges, weighted by the squared distance,
    // adds a few percent to the ideal width/√12.
    close(
        s.bandwidth_hz.unwrap(),
        1500.0 / 12f64.sqrt(),
        0.05 * 433.0,
        "bandwidth",
    );
    close(
        s.rolloff_hz.unwrap(),
        500.0 + 0.85 * 1500.0,
        0.01 * 1775.0,
        "roll-off",
    );
    let mid = s.bands.iter().find(|b| b.name == "mid").unwrap();
    assert!(
        mid.share_percent.unwrap() > 99.0,
        "mid share {:?}",
        mid.share_percent
    );
    // Low-band noise lands in the low band.
    let s = spectrum_of(&[band_noise(6, 40.0, 180.0, SR as usize * 10)], SR);
    let low = s.bands.iter().find(|b| b.name == "low").unwrap();
    assert!(
        low.share_percent.unwrap() > 99.0,
        "low share {:?}",
        low.share_percent
    );
}

#[test]
fn spectrum_of_silence_is_undefined() {
    let s = spectrum_of(&[vec![0.0; SR as usize]], SR);
    assert_eq!(s.centroid_hz, None);
    assert_eq!(s.flatness, None);
    assert!(s.bands.iter().all(|b| b.share_percent.is_none()));
}

#[test]
fn waveform_buckets_known_and_unknown_length() {
    // A ramp from -1 to 1: bucket i spans known values.
    let n = 100_000usize;
    let x: Vec<f32> = (0..n)
        .map(|i| -1.0 + 2.0 * i as f32 / (n - 1) as f32)
        .collect();
    for known in [Some(n as u64), None] {
        let mut m = WaveformMeter::new(1, 100, known);
        for c in x.chunks(4096) {
            m.feed(&[c]);
        }
        let w = m.finish(SR);
        assert_eq!(w.buckets, 100);
        let ch = &w.channels[0];
        assert_eq!(ch.min.len(), 100);
        for i in 0..100 {
            let lo = -1.0 + 2.0 * i as f32 / 100.0;
            let hi = -1.0 + 2.0 * (i + 1) as f32 / 100.0;
            let tol = if known.is_some() { 1e-3 } else { 0.02 };
            assert!(
                (ch.min[i] - lo).abs() < tol,
                "{known:?} bucket {i} min {} vs {lo}",
                ch.min[i]
            );
            assert!(
                (ch.max[i] - hi).abs() < tol,
                "{known:?} bucket {i} max {} vs {hi}",
                ch.max[i]
            );
        }
        close(
            w.bucket_seconds,
            n as f64 / 100.0 / f64::from(SR),
            1e-9,
            "bucket seconds",
        );
    }
}

#[test]
fn targets_gain_and_ceiling() {
    let spotify = Target::preset("spotify").unwrap();
    let c = spotify.assess(Some(-20.0), Some(-3.0));
    close(c.gain_db.unwrap(), 6.0, 1e-9, "gain");
    close(c.true_peak_after_gain_dbtp.unwrap(), 3.0, 1e-9, "tp after");
    assert_eq!(c.exceeds_ceiling, Some(true));
    close(c.max_gain_within_ceiling_db.unwrap(), 2.0, 1e-9, "headroom");
    let ebu = Target::preset("ebu_r128")
        .unwrap()
        .assess(Some(-20.0), Some(-3.0));
    assert_eq!(ebu.exceeds_ceiling, Some(false));
    // Silence has no loudness: no gain, no verdict.
    let none = spotify.assess(None, None);
    assert_eq!((none.gain_db, none.exceeds_ceiling), (None, None));
    assert_eq!(Target::presets().len(), 5);
    let custom = Target::parse("club=-9,-0.3").unwrap();
    assert_eq!(
        (custom.integrated_lufs, custom.true_peak_dbtp),
        (-9.0, -0.3)
    );
    assert_eq!(Target::parse("radio=-18").unwrap().true_peak_dbtp, -1.0);
    for bad in ["x", "=-14", "a=loud", "a=-14,-1,2", "a=-90", "a=-14,9"] {
        assert!(Target::parse(bad).is_err(), "{bad} should be refused");
    }
}

#[test]
fn analyze_fixture_matches_ffmpeg_ebur128() {
    // ffmpeg 5.1 `-af ebur128=peak=true+sample` on these files (one decimal): see
    // tests/fixtures/README.md.
    for (name, i, tp) in [("source.wav", -13.0, -12.0), ("tagged.mp3", -13.3, -12.3)] {
        let r = analyze(
            &common::fixture(name),
            &AnalysisOptions::default(),
            &mut |_| {},
        )
        .unwrap();
        let l = r.loudness.as_ref().unwrap();
        close(
            l.summary.integrated_lufs.unwrap(),
            i,
            0.15,
            &format!("{name} I"),
        );
        close(l.true_peak_dbtp.unwrap(), tp, 0.15, &format!("{name} TP"));
        assert!(r.levels.is_some() && r.spectrum.is_some() && r.waveform.is_some());
        let st = r.stereo.clone().unwrap().unwrap();
        // Left and right carry different tones: unrelated channels.
        assert!(
            st.correlation.unwrap().abs() < 0.05,
            "{name} correlation {:?}",
            st.correlation
        );
        let t = r.targets.as_ref().unwrap();
        assert_eq!(t.len(), 5);
        let json = serde_json::to_value(&r).unwrap();
        for key in [
            "loudness", "levels", "spectrum", "stereo", "waveform", "targets",
        ] {
            assert!(json.get(key).is_some(), "{name}: JSON lacks {key}");
        }
        assert!(json["loudness"]["integrated_lufs"].is_number());
    }
}

#[test]
fn analyze_only_some_sections_and_short_or_mono_files() {
    let opts = AnalysisOptions {
        sections: vec![Section::Levels],
        ..Default::default()
    };
    let r = analyze(&common::fixture("source.wav"), &opts, &mut |_| {}).unwrap();
    assert!(r.loudness.is_none() && r.spectrum.is_none() && r.levels.is_some());
    let json = serde_json::to_value(&r).unwrap();
    assert!(json.get("loudness").is_none());
    // 10 ms: no loudness (no 400 ms block), no targets verdict; mono: stereo is null.
    let r = analyze(
        &common::fixture("ten_ms.wav"),
        &AnalysisOptions::default(),
        &mut |_| {},
    )
    .unwrap();
    let l = r.loudness.unwrap();
    assert_eq!(l.summary.integrated_lufs, None);
    assert!(l.true_peak_dbtp.is_some());
    assert_eq!(r.stereo, Some(None));
    assert!(r.targets.unwrap().iter().all(|t| t.gain_db.is_none()));
    // 5.1: the LFE is left out of loudness and spectrum; every channel has a true peak.
    let r = analyze(
        &common::fixture("surround51.wav"),
        &AnalysisOptions::default(),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(r.loudness.unwrap().true_peak_dbtp_per_channel.len(), 6);
    assert!(r.stereo.unwrap().is_some());
}

#[test]
fn analyze_reports_bad_input_as_errors() {
    let e = analyze(
        &common::fixture("unsupported.mid"),
        &AnalysisOptions::default(),
        &mut |_| {},
    )
    .unwrap_err();
    assert!(e.to_string().contains("unsupported.mid"), "{e}");
}

/// The long-term spectrum does not depend on how the samples are split into blocks: frames
/// that lie in one block are windowed from it directly, frames across blocks are put together
/// from the held samples, and both give the same frames. (Not bit for bit: frames share an FFT
/// in pairs, and which frames pair up follows the blocks, which moves the rounding by about
/// 1e-8 dB; a frame lost or misplaced moves the figures by orders of magnitude more.) Lengths
/// that are and are not a multiple of the hop, and one shorter than a frame.
#[test]
fn long_term_spectrum_is_the_same_for_any_block_sizes() {
    let rate = 48_000;
    for frames in [110_257, 4096 * 20, 3_000] {
        let planes = sluice_core::signal::dense_master(rate, frames as f64 / f64::from(rate), 5);
        // The long-term spectrum of `planes` fed in blocks of `next()` frames.
        let in_blocks = |mut next: Box<dyn FnMut() -> usize>| {
            let mut m = SpectrumMeter::new(rate, vec![0, 1]);
            let mut at = 0;
            while at < frames {
                let e = (at + next()).min(frames);
                m.feed(&[&planes[0][at..e], &planes[1][at..e]]);
                at = e;
            }
            m.finish()
        };
        let whole = in_blocks(Box::new(move || frames));
        for size in [1, 7, 2047, 2048, 4097, 30_000] {
            let got = in_blocks(Box::new(move || size));
            same_spectrum(
                &got,
                &whole,
                &format!("{frames} frames in blocks of {size}"),
            );
        }
        // Random block sizes, including empty blocks.
        let mut rng = sluice_core::signal::Rng::new(11);
        let got = in_blocks(Box::new(move || (rng.next_u64() % 9000) as usize));
        same_spectrum(&got, &whole, &format!("{frames} frames in random blocks"));
    }
}

fn same_spectrum(
    a: &sluice_core::analysis::Spectrum,
    b: &sluice_core::analysis::Spectrum,
    what: &str,
) {
    assert_eq!(a.bands.len(), b.bands.len(), "{what}");
    for (x, y) in a.bands.iter().zip(&b.bands) {
        match (x.share_percent, y.share_percent) {
            (Some(p), Some(q)) => close(p, q, 1e-6, &format!("{what}: {} share", x.name)),
            (p, q) => panic!("{what}: {} share {p:?} vs {q:?}", x.name),
        }
    }
    assert_eq!(a.ltas.len(), b.ltas.len(), "{what}");
    for (x, y) in a.ltas.iter().zip(&b.ltas) {
        assert_eq!(x.hz, y.hz, "{what}");
        close(x.db, y.db, 1e-5, &format!("{what}: LTAS at {} Hz", x.hz));
    }
}
