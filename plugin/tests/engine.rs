//! The meter engine in-process: the EBU test signals, agreement with the core's offline
//! analysis at every rate and block size, stereo and spectrum readings, reset, and that
//! processing never allocates (every `process` call runs under `assert_no_alloc`, which aborts
//! the test binary on an allocation in debug builds).

use nice_assert_no_alloc::assert_no_alloc;
use sluice_core::analysis::loudness::LoudnessMeter;
use sluice_core::analysis::truepeak::live_true_peak_dbtp;
use sluice_core::signal::ebu::{case_6_surround_5_1, sequence, stereo, stereo_loudness_cases};
use sluice_core::signal::{programme, sine};
use sluice_plugin::engine::Engine;
use sluice_plugin::shared::{MeterShared, spectrum_point_hz};
use std::sync::Arc;
use std::sync::atomic::Ordering;

fn engine(rate: u32, channels: usize, max_block: usize) -> Engine {
    Engine::new(
        rate,
        &vec![1.0; channels],
        max_block,
        Arc::new(MeterShared::default()),
    )
}

/// Feed planar audio in blocks of the given sizes (cycled), each call under `assert_no_alloc`.
fn feed(e: &mut Engine, planes: &[Vec<f32>], blocks: &[usize]) {
    let len = planes[0].len();
    let mut at = 0;
    let mut i = 0;
    while at < len {
        let n = blocks[i % blocks.len()].min(len - at);
        let refs: Vec<&[f32]> = planes.iter().map(|p| &p[at..at + n]).collect();
        assert_no_alloc(|| e.process(&refs));
        at += n;
        i += 1;
    }
}

fn read(v: &nice_plug::prelude::AtomicF32) -> f32 {
    v.load(Ordering::Relaxed)
}

#[test]
fn ebu_tech_3341_and_3342_cases() {
    let rate = 48_000;
    let cases = stereo_loudness_cases();
    assert_eq!(cases.len(), 9, "3341 cases 1-5, 3342 cases 1-4");
    for case in cases {
        let name = case.name;
        let mut e = engine(rate, 2, 4096);
        feed(&mut e, &case.signal(rate), &[512]);
        let s = e.shared();
        if let Some(i) = case.integrated_lufs {
            let got = read(&s.integrated);
            assert!(
                (got as f64 - i).abs() <= 0.1,
                "{name}: integrated {got}, want {i}"
            );
        }
        if let Some(l) = case.loudness_range_lu {
            let got = read(&s.loudness_range);
            assert!((got as f64 - l).abs() <= 1.0, "{name}: LRA {got}, want {l}");
        }
    }
    // Case 1 also fixes momentary and short-term at -23 once their windows are full.
    let mut e = engine(rate, 2, 4096);
    feed(
        &mut e,
        &stereo(sequence(rate, &[(Some(-23.0), 20.0)])),
        &[64],
    );
    for v in [&e.shared().momentary, &e.shared().short_term] {
        assert!((read(v) + 23.0).abs() <= 0.1, "M/S {}", read(v));
    }
}

#[test]
fn surround_5_1_weights_and_the_lfe_left_out() {
    // Tech 3341 case 6 in L R C LFE Ls Rs with a loud LFE (BS.1770 leaves it out): -23 LUFS.
    let rate = 48_000;
    let weights = sluice_plugin::weights(6);
    assert_eq!(weights, [1.0, 1.0, 1.0, 0.0, 1.41, 1.41]);
    let sig = case_6_surround_5_1(rate, Some(-6.0));
    let mut e = Engine::new(rate, &weights, 4096, Arc::new(MeterShared::default()));
    feed(&mut e, &sig, &[1000]);
    let got = read(&e.shared().integrated);
    assert!((got + 23.0).abs() <= 0.1, "3341-6 5.1: integrated {got}");
    // The LFE still counts for peaks.
    let tp = read(&e.shared().true_peak_channel[3]);
    assert!((tp + 6.0).abs() < 0.1, "LFE true peak {tp}");
}

#[test]
fn agrees_with_the_core_offline_analysis_at_every_rate_and_block_size() {
    let blocks: &[&[usize]] = &[
        &[1],
        &[64],
        &[512],
        &[4096],
        &[1, 17, 512, 4096, 3, 1000, 64],
    ];
    for rate in [44_100, 48_000, 96_000] {
        for channels in [1, 2] {
            let sig = programme(
                rate,
                channels,
                rate as usize * 12,
                u64::from(rate) + channels as u64,
            );
            // The offline figures.
            let mut meter = LoudnessMeter::new(rate, vec![1.0; channels]);
            let refs: Vec<&[f32]> = sig.iter().map(Vec::as_slice).collect();
            meter.feed(&refs);
            let want = meter.summary(None);
            let want_tp = live_true_peak_dbtp(rate, &sig);
            for b in blocks {
                // Single-frame blocks are slow in a debug build: 3 s of them is enough.
                let sig: Vec<Vec<f32>> = if b == &[1] {
                    sig.iter()
                        .map(|c| c[..rate as usize * 3].to_vec())
                        .collect()
                } else {
                    sig.clone()
                };
                let mut e = engine(rate, channels, 4096);
                feed(&mut e, &sig, b);
                let s = e.shared();
                let ctx = format!("{rate} Hz, {channels} ch, blocks {b:?}");
                if b == &[1] {
                    let mut m = LoudnessMeter::new(rate, vec![1.0; channels]);
                    let refs: Vec<&[f32]> = sig.iter().map(Vec::as_slice).collect();
                    m.feed(&refs);
                    let w = m.summary(None);
                    let got = read(&s.max_momentary) as f64;
                    assert!(
                        (got - w.max_momentary_lufs.unwrap()).abs() < 0.01,
                        "{ctx}: max M {got}"
                    );
                    continue;
                }
                let got = read(&s.integrated) as f64;
                let i = want.integrated_lufs.unwrap();
                assert!(
                    (got - i).abs() <= 0.1,
                    "{ctx}: integrated {got} vs offline {i}"
                );
                assert!(
                    (got - i).abs() <= 0.01,
                    "{ctx}: integrated {got} vs offline {i} (histogram error)"
                );
                let got = read(&s.loudness_range) as f64;
                let l = want.loudness_range_lu.unwrap();
                assert!((got - l).abs() <= 0.05, "{ctx}: LRA {got} vs offline {l}");
                let got = read(&s.max_momentary) as f64;
                assert!(
                    (got - want.max_momentary_lufs.unwrap()).abs() < 0.01,
                    "{ctx}: max M"
                );
                let got = read(&s.max_short_term) as f64;
                assert!(
                    (got - want.max_short_term_lufs.unwrap()).abs() < 0.01,
                    "{ctx}: max S"
                );
                let got = read(&s.true_peak) as f64;
                assert!(
                    (got - want_tp).abs() < 1e-4,
                    "{ctx}: true peak {got} vs {want_tp}"
                );
                let plr = read(&s.plr) as f64;
                assert!((plr - (want_tp - i)).abs() < 0.02, "{ctx}: PLR {plr}");
                assert_eq!(
                    s.steps.load(Ordering::Relaxed),
                    (sig[0].len() / (rate as usize / 10)) as u64,
                    "{ctx}: steps"
                );
            }
        }
    }
}

#[test]
fn levels_stereo_and_spectrum_readings() {
    let rate = 48_000;
    let n = rate as usize * 2;
    // A −6 dBFS 1 kHz sine on the left, the same inverted on the right.
    let l = sine(rate, 1000.0, 0.5, n);
    let r: Vec<f32> = l.iter().map(|v| -v).collect();
    let mut e = engine(rate, 2, 1024);
    feed(&mut e, &[l.clone(), r], &[480]);
    let s = e.shared();
    assert!(
        (read(&s.correlation) + 1.0).abs() < 1e-6,
        "correlation {}",
        read(&s.correlation)
    );
    assert!((read(&s.width) - 1.0).abs() < 1e-6);
    // Sine RMS = peak − 3.01 dB.
    assert!(
        (read(&s.rms_channel[0]) + 9.03).abs() < 0.02,
        "rms {}",
        read(&s.rms_channel[0])
    );
    assert!(
        (read(&s.sample_peak) + 6.02).abs() < 0.01,
        "sample peak {}",
        read(&s.sample_peak)
    );
    assert!((read(&s.peak_now_channel[1]) + 6.02).abs() < 0.01);
    // The spectrum's loudest point is the one holding 1 kHz, at the sine's level.
    let (best, level) = s
        .spectrum
        .iter()
        .map(read)
        .enumerate()
        .fold((0, f32::MIN), |b, (i, v)| if v > b.1 { (i, v) } else { b });
    let f = spectrum_point_hz(best);
    assert!((f / 1000.0).log2().abs() < 0.05, "peak at {f} Hz");
    assert!((level + 6.02).abs() < 0.3, "1 kHz reads {level} dB");
    assert!(
        read(&s.spectrum[10]) < level - 60.0,
        "20 Hz region not quiet"
    );
    let mid = read(&s.band_share[2]);
    assert!(mid > 99.0, "mid band share {mid}%");

    // Identical channels: correlation 1, width 0.
    let mut e = engine(rate, 2, 1024);
    feed(&mut e, &[l.clone(), l.clone()], &[256]);
    assert!((read(&e.shared().correlation) - 1.0).abs() < 1e-6);
    assert!(read(&e.shared().width).abs() < 1e-6);
}

#[test]
fn reset_clears_and_silence_stays_undefined() {
    let rate = 44_100;
    let mut e = engine(rate, 2, 512);
    feed(&mut e, &programme(rate, 2, rate as usize * 5, 1), &[512]);
    assert!(read(&e.shared().integrated).is_finite());
    e.shared().request_reset();
    let silence = vec![vec![0.0f32; rate as usize * 5]; 2];
    feed(&mut e, &silence, &[512]);
    let s = e.shared();
    for (name, v) in [
        ("integrated", &s.integrated),
        ("momentary", &s.momentary),
        ("LRA", &s.loudness_range),
        ("PLR", &s.plr),
        ("correlation", &s.correlation),
    ] {
        assert!(
            read(v).is_nan(),
            "{name} after reset on silence: {}",
            read(v)
        );
    }
    assert_eq!(read(&s.true_peak), f32::NEG_INFINITY);
    assert_eq!(s.steps.load(Ordering::Relaxed), 50);
}

#[test]
fn denormal_input_is_measured_without_trouble() {
    let rate = 48_000;
    let tiny = f32::from_bits(3);
    let sig = vec![vec![tiny; rate as usize]; 2];
    let mut e = engine(rate, 2, 512);
    {
        let _g = sluice_plugin::denormal::DenormalGuard::enable();
        feed(&mut e, &sig, &[512]);
    }
    assert!(read(&e.shared().integrated).is_nan());
    assert!(read(&e.shared().momentary).is_nan());
}

/// The allocation checker is live in this build: an allocation inside `assert_no_alloc` aborts
/// (checked in a child process, since an abort ends the process).
#[test]
fn allocation_checker_is_live() {
    if std::env::var_os("SLUICE_ALLOC_CANARY").is_some() {
        let v = assert_no_alloc(|| std::hint::black_box(vec![1u8; 64]));
        println!("allocated {} bytes without an abort", v.len());
        return;
    }
    if !cfg!(debug_assertions) {
        return; // the checker is compiled out of release builds by design
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "allocation_checker_is_live", "--nocapture"])
        .env("SLUICE_ALLOC_CANARY", "1")
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "an allocation under assert_no_alloc did not abort: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// The per-second history (for spans past the 10 minutes of 100 ms steps): each second holds
/// its highest momentary loudness and the short-term loudness at its end, exactly the fine
/// history's values.
#[test]
fn the_long_history_keeps_each_seconds_highest_momentary_and_its_last_short_term() {
    let rate = 48_000;
    let mut e = engine(rate, 2, 512);
    let mut signal = Vec::new();
    for (seconds, db) in [(5.0, -20.0), (1.0, -10.0), (4.0, -30.0)] {
        let frames = (seconds * rate as f64) as usize;
        signal.extend(sine(rate, 997.0, 10f64.powf(db / 20.0), frames));
    }
    feed(&mut e, &[signal.clone(), signal], &[512, 100, 4096]);
    let s = e.shared().clone();
    assert_eq!(s.steps.load(Ordering::Relaxed), 100);
    let fine_m: Vec<f32> = (0..100).map(|k| read(&s.history_momentary[k])).collect();
    let fine_s: Vec<f32> = (0..100).map(|k| read(&s.history_short_term[k])).collect();
    for j in 0..10 {
        let want_m = fine_m[10 * j..10 * j + 10]
            .iter()
            .fold(f32::NAN, |a, &b| a.max(b));
        let got_m = read(&s.long_history_momentary[j]);
        let got_s = read(&s.long_history_short_term[j]);
        assert_eq!(
            got_m.to_bits(),
            want_m.to_bits(),
            "second {j}: M {got_m} vs {want_m}"
        );
        assert_eq!(
            got_s.to_bits(),
            fine_s[10 * j + 9].to_bits(),
            "second {j}: S"
        );
    }
    // The loud second: its highest momentary is the -10 dBFS sine's (-10 dB + 3 dB for two
    // channels of a full-scale sine's -3 dB = about -10 LUFS), well above its neighbours'.
    let loud = read(&s.long_history_momentary[5]);
    assert!((loud - -10.0).abs() < 1.0, "{loud}");
    assert!(read(&s.long_history_momentary[3]) < loud - 8.0);
    assert!(
        read(&s.long_history_momentary[10]).is_nan(),
        "no 11th second yet"
    );
}
