//! Render stages and the renderer: exactness, normalization accuracy, the true-peak limiter,
//! dither, fades, regions, trimming and channel mapping, on generated audio.

mod common;

use common::Collect;
use rustfft::FftPlanner;
use rustfft::num_complex::Complex;
use sluice_core::encode::Encoder;
use sluice_core::render::dither::{DitherMode, Quantize};
use sluice_core::render::normalize::{Normalize, NormalizeTarget, TruePeakLimiter};
use sluice_core::render::stages::{
    ChannelMapping, Channels, Fade, FadeCurve, Gain, Region, TrimSilence,
};
use sluice_core::render::{
    Block, MemorySource, OutputChain, OutputLoudness, OutputMeter, Render, SignalSpec, Stage,
    StageReport,
};
use sluice_core::signal::{self, Rng};
use std::sync::{Arc, Mutex};

struct Rendered {
    planes: Vec<Vec<f32>>,
    reports: Vec<StageReport>,
    spec: SignalSpec,
    passes: u32,
}

fn render_with(
    rate: u32,
    planes: Vec<Vec<f32>>,
    block: usize,
    stages: Vec<Box<dyn Stage>>,
    tail: Vec<Box<dyn Stage>>,
) -> Rendered {
    let mut src = MemorySource::new(rate, planes, block);
    let mut r = Render::new(
        &mut src,
        stages,
        vec![OutputChain {
            stages: tail,
            measure: false,
        }],
    );
    let specs = r.prepare(&mut |_| {}).unwrap();
    let got = Arc::new(Mutex::new(Vec::new()));
    let mut enc: Vec<Box<dyn Encoder>> = vec![Box::new(Collect(got.clone()))];
    let res = r.run(&mut enc, &mut |_| {}).unwrap();
    let planes = std::mem::take(&mut *got.lock().unwrap());
    assert_eq!(res[0].frames as usize, planes.first().map_or(0, Vec::len));
    Rendered {
        planes,
        reports: r.reports(),
        spec: specs[0].clone(),
        passes: r.passes(),
    }
}

/// A loudness normalization stage.
fn to_loudness(lufs: f64, true_peak_dbtp: f64, limiter: bool) -> Box<Normalize> {
    Box::new(Normalize::new(NormalizeTarget::Loudness {
        lufs,
        true_peak_dbtp,
        limiter,
        rule: Default::default(),
    }))
}

fn measure(rate: u32, planes: &[Vec<f32>]) -> OutputLoudness {
    let mut m = OutputMeter::new(&SignalSpec::with_channels(rate, planes.len()));
    for chunk in 0..planes[0].len().div_ceil(65_536) {
        let a = chunk * 65_536;
        let b = (a + 65_536).min(planes[0].len());
        m.feed(&Block::from_planes(
            planes.iter().map(|p| p[a..b].to_vec()).collect(),
        ));
    }
    m.finish()
}

fn value(reports: &[StageReport], stage: &str, key: &str) -> f64 {
    reports
        .iter()
        .find(|r| r.stage == stage)
        .and_then(|r| r.values.get(key).copied())
        .unwrap_or_else(|| panic!("no {stage}.{key} in {reports:?}"))
}

#[test]
fn normalize_loudness_hits_target_with_limiter_on_a_hot_master() {
    for rate in [44_100, 48_000, 96_000] {
        let src = signal::hot_master(rate, 20.0);
        let before = measure(rate, &src);
        let target = -9.0;
        let out = render_with(
            rate,
            src,
            4096,
            vec![to_loudness(target, -1.0, true)],
            vec![],
        );
        let after = measure(rate, &out.planes);
        let i = after.loudness.integrated_lufs.unwrap();
        println!(
            "{rate} Hz: in {:.2} LUFS / {:.2} dBTP -> out {i:.3} LUFS / {:.3} dBTP, gain {:.2} dB, {} passes, limiter max {:.2} dB",
            before.loudness.integrated_lufs.unwrap(),
            before.true_peak_dbtp,
            after.true_peak_dbtp,
            value(&out.reports, "normalize", "gain_db"),
            out.passes,
            value(&out.reports, "normalize", "limiter_max_reduction_db"),
        );
        assert!(
            before.true_peak_dbtp + (target - before.loudness.integrated_lufs.unwrap()) > 3.0,
            "the case must need limiting"
        );
        assert!((i - target).abs() <= 0.1, "{rate}: {i} LUFS");
        assert!(
            after.true_peak_dbtp <= -1.0,
            "{rate}: {} dBTP",
            after.true_peak_dbtp
        );
        assert!(value(&out.reports, "normalize", "limited_frames") > 0.0);
    }
}

/// A loudness target its ceiling cannot allow (−5 LUFS under −20 dBTP) ends with the limited
/// output closest to it and a warning, never a silent one: the gain ran away (+1007 dB), the
/// `f32` factor overflowed and the output was digital silence, reported without a warning.
#[test]
fn an_unreachable_loudness_target_gives_the_limited_output_and_a_warning() {
    let rate = 44_100;
    for (lufs, ceiling) in [(-5.0, -20.0), (0.0, -40.0)] {
        let src = signal::programme(rate, 2, 4 * rate as usize, 5);
        let out = render_with(
            rate,
            src,
            4096,
            vec![to_loudness(lufs, ceiling, true)],
            vec![],
        );
        let after = measure(rate, &out.planes);
        let i = after
            .loudness
            .integrated_lufs
            .unwrap_or_else(|| panic!("{lufs}/{ceiling}: a silent output"));
        assert!(
            i > ceiling - 10.0 && after.true_peak_dbtp <= ceiling + 0.05,
            "{lufs}/{ceiling}: {i} LUFS, {} dBTP",
            after.true_peak_dbtp
        );
        let gain = value(&out.reports, "normalize", "gain_db");
        assert!(gain <= 100.0, "{lufs}/{ceiling}: gain {gain} dB");
        let warned = out.reports.iter().any(|r| {
            r.stage == "normalize" && r.warnings.iter().any(|w| w.contains("from the target"))
        });
        assert!(warned, "{lufs}/{ceiling}: {:?}", out.reports);
    }
}

#[test]
fn normalize_quiet_speech_without_limiting() {
    let rate = 48_000;
    let src = signal::speech(rate, 30.0, 0.02);
    let before = measure(rate, &src);
    let out = render_with(
        rate,
        src,
        1000,
        vec![to_loudness(-16.0, -1.0, true)],
        vec![],
    );
    let after = measure(rate, &out.planes);
    let i = after.loudness.integrated_lufs.unwrap();
    println!(
        "speech: {:.2} LUFS / {:.2} dBTP -> {i:.3} LUFS / {:.2} dBTP",
        before.loudness.integrated_lufs.unwrap(),
        before.true_peak_dbtp,
        after.true_peak_dbtp
    );
    assert!(before.loudness.integrated_lufs.unwrap() < -35.0);
    assert!((i + 16.0).abs() <= 0.1, "{i}");
    assert!(after.true_peak_dbtp <= -1.0);
}

#[test]
fn normalize_with_headroom_measures_once_and_applies_one_gain() {
    let rate = 44_100;
    let src = signal::programme(rate, 2, rate as usize * 10, 4);
    let before = measure(rate, &src);
    let out = render_with(
        rate,
        src.clone(),
        4096,
        vec![to_loudness(-23.0, -1.0, true)],
        vec![],
    );
    // One measuring pass, then the render; the output is the input times one gain.
    assert_eq!(out.passes, 2);
    let g = 10f64.powf((-23.0 - before.loudness.integrated_lufs.unwrap()) / 20.0) as f32;
    for (o, i) in out.planes.iter().flatten().zip(src.iter().flatten()) {
        assert!((o - i * g).abs() <= 1e-6, "{o} {i}");
    }
    let i = measure(rate, &out.planes).loudness.integrated_lufs.unwrap();
    assert!((i + 23.0).abs() < 0.01, "{i}");
}

#[test]
fn limiter_off_lowers_the_gain_and_reports_the_shortfall() {
    let rate = 48_000;
    let src = signal::hot_master(rate, 10.0);
    let out = render_with(
        rate,
        src,
        4096,
        vec![to_loudness(-9.0, -1.0, false)],
        vec![],
    );
    let after = measure(rate, &out.planes);
    assert!(after.true_peak_dbtp <= -0.99, "{}", after.true_peak_dbtp);
    let r = out.reports.iter().find(|r| r.stage == "normalize").unwrap();
    assert!(
        r.warnings.iter().any(|w| w.contains("short of the target")),
        "{r:?}"
    );
}

#[test]
fn silent_input_is_not_normalized() {
    let rate = 44_100;
    let src = vec![signal::noise(1, 1e-5, rate as usize * 3)];
    let out = render_with(
        rate,
        src.clone(),
        4096,
        vec![to_loudness(-16.0, -1.0, true)],
        vec![],
    );
    assert_eq!(out.planes, src);
    let r = out.reports.iter().find(|r| r.stage == "normalize").unwrap();
    assert!(r.warnings.iter().any(|w| w.contains("silent")), "{r:?}");
}

/// A sound shorter than one 400 ms block has no integrated loudness: it is left as it is, and
/// the warning says so rather than calling it silent.
#[test]
fn a_sound_too_short_to_measure_is_not_called_silent() {
    let rate = 44_100;
    let src = vec![signal::sine(rate, 1000.0, 0.5, rate as usize / 100)];
    let out = render_with(
        rate,
        src.clone(),
        4096,
        vec![to_loudness(-16.0, -1.0, true)],
        vec![],
    );
    assert_eq!(out.planes, src);
    let r = out.reports.iter().find(|r| r.stage == "normalize").unwrap();
    assert!(
        r.warnings.iter().any(|w| w.contains("shorter than 0.4 s")),
        "{r:?}"
    );
    assert!(!r.warnings.iter().any(|w| w.contains("is silent")), "{r:?}");
}

#[test]
fn peak_normalization() {
    let rate = 44_100;
    let src = signal::programme(rate, 2, rate as usize * 5, 2);
    let out = render_with(
        rate,
        src,
        777,
        vec![Box::new(Normalize::new(NormalizeTarget::Peak {
            dbfs: -3.0,
        }))],
        vec![],
    );
    let peak = out
        .planes
        .iter()
        .flatten()
        .fold(0f32, |m, x| m.max(x.abs()));
    assert!(
        (20.0 * f64::from(peak).log10() + 3.0).abs() < 0.001,
        "{peak}"
    );
}

#[test]
fn limiter_is_transparent_below_the_ceiling_and_keeps_alignment() {
    let rate = 48_000;
    let src = signal::programme(rate, 2, rate as usize * 3, 5);
    let peak = src.iter().flatten().fold(0f32, |m, x| m.max(x.abs()));
    assert!(peak < 0.9);
    for block in [1, 100, 4096] {
        let out = render_with(
            rate,
            src.clone(),
            block,
            vec![Box::new(TruePeakLimiter::new(0.0))],
            vec![],
        );
        assert_eq!(out.planes, src, "block {block}");
    }
}

#[test]
fn limiter_holds_the_true_peak_ceiling_on_any_block_size() {
    let rate = 44_100;
    let mut src = signal::hot_master(rate, 6.0);
    src.iter_mut().flatten().for_each(|x| *x *= 1.8); // +5 dB over full scale
    let mut first: Option<Vec<Vec<f32>>> = None;
    for block in [1, 333, 8192] {
        let out = render_with(
            rate,
            src.clone(),
            block,
            vec![Box::new(TruePeakLimiter::new(-1.0))],
            vec![],
        );
        assert_eq!(out.planes[0].len(), src[0].len());
        let m = measure(rate, &out.planes);
        assert!(
            m.true_peak_dbtp <= -0.95,
            "block {block}: {}",
            m.true_peak_dbtp
        );
        match &first {
            None => first = Some(out.planes),
            Some(f) => assert_eq!(f, &out.planes, "block {block} changed the result"),
        }
    }
}

/// Power spectrum (Blackman–Harris window), one-sided, linear power per bin.
fn spectrum(x: &[f32]) -> Vec<f64> {
    let n = x.len();
    let w = |i: usize| {
        let t = std::f64::consts::TAU * i as f64 / n as f64;
        0.35875 - 0.48829 * t.cos() + 0.14128 * (2.0 * t).cos() - 0.01168 * (3.0 * t).cos()
    };
    let mut buf: Vec<Complex<f64>> = x
        .iter()
        .enumerate()
        .map(|(i, &v)| Complex::new(f64::from(v) * w(i), 0.0))
        .collect();
    FftPlanner::new().plan_fft_forward(n).process(&mut buf);
    buf[..n / 2].iter().map(|c| c.norm_sqr()).collect()
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[s.len() / 2]
}

fn db10(x: f64) -> f64 {
    10.0 * x.log10()
}

/// The level of the sine's bin over the median noise floor around it, and the worst harmonic
/// (2nd..7th) over its local floor, in dB.
fn sine_and_harmonics(spec: &[f64], bin: usize) -> (f64, f64) {
    let local = |b: usize| median(&spec[b.saturating_sub(200)..(b + 200).min(spec.len())]);
    let peak = |b: usize| spec[b - 3..=b + 3].iter().copied().fold(0.0, f64::max);
    let sine = db10(peak(bin) / local(bin));
    let worst = (2..=7)
        .map(|h| h * bin)
        .filter(|&b| b + 200 < spec.len())
        .map(|b| db10(peak(b) / local(b)))
        .fold(f64::NEG_INFINITY, f64::max);
    (sine, worst)
}

#[test]
fn tpdf_dither_keeps_a_minus_100_dbfs_sine_over_a_flat_floor() {
    let rate = 44_100;
    let n = 1 << 18;
    // A sine on an exact bin so the window's leakage is the only spreading.
    let bin = 5939; // ≈ 999 Hz
    let freq = bin as f64 * f64::from(rate) / n as f64;
    let amp = 10f64.powf(-100.0 / 20.0);
    let src = vec![signal::sine(rate, freq, amp, n)];
    let run = |mode| {
        render_with(
            rate,
            src.clone(),
            4096,
            vec![],
            vec![Box::new(Quantize::new(16, mode))],
        )
        .planes
    };
    let tpdf = run(DitherMode::Tpdf);
    // Every sample is on the 16-bit grid.
    assert!(
        tpdf[0]
            .iter()
            .all(|&x| (f64::from(x) * 32768.0).fract() == 0.0)
    );
    let spec = spectrum(&tpdf[0]);
    let (sine, harm) = sine_and_harmonics(&spec, bin);
    // Flatness: the median floor in eight bands from 100 Hz to 20 kHz agrees within 1.5 dB.
    let hz = |f: f64| (f * n as f64 / f64::from(rate)) as usize;
    let bands: Vec<f64> = (0..8)
        .map(|k| {
            let lo = hz(100.0 + k as f64 * 2487.0);
            db10(median(&spec[lo..lo + hz(2000.0)]))
        })
        .collect();
    let spread = bands.iter().copied().fold(f64::MIN, f64::max)
        - bands.iter().copied().fold(f64::MAX, f64::min);
    println!(
        "TPDF: sine {sine:.1} dB over the floor, worst harmonic {harm:.1} dB, floor spread {spread:.2} dB"
    );
    assert!(
        sine > 20.0,
        "the sine must stand out of the noise: {sine:.1} dB"
    );
    assert!(harm < 6.0, "a harmonic stands out: {harm:.1} dB");
    assert!(spread < 1.5, "{bands:?}");

    // Without dither the same sine (0.33 LSB) rounds away entirely...
    let plain = run(DitherMode::None);
    assert!(plain[0].iter().all(|&x| x == 0.0));
    // ...and a 1.5 LSB one becomes a set of harmonics the detector sees.
    let amp = 1.5 / 32768.0;
    let loud = vec![signal::sine(rate, freq, amp, n)];
    let plain = render_with(
        rate,
        loud,
        4096,
        vec![],
        vec![Box::new(Quantize::new(16, DitherMode::None))],
    )
    .planes;
    let (_, harm) = sine_and_harmonics(&spectrum(&plain[0]), bin);
    assert!(
        harm > 20.0,
        "truncation harmonics should be visible without dither: {harm:.1} dB"
    );
}

#[test]
fn shaped_dither_moves_noise_out_of_the_sensitive_band() {
    let rate = 44_100;
    let n = 1 << 17;
    let src = vec![signal::noise(4, 1e-3, n)];
    let noise_of = |mode| {
        let out = render_with(
            rate,
            src.clone(),
            4096,
            vec![],
            vec![Box::new(Quantize::new(16, mode))],
        )
        .planes;
        let err: Vec<f32> = out[0].iter().zip(&src[0]).map(|(y, x)| y - x).collect();
        spectrum(&err)
    };
    let (t, s) = (noise_of(DitherMode::Tpdf), noise_of(DitherMode::Shaped));
    let band = |sp: &[f64], lo: f64, hi: f64| {
        let b = |f: f64| (f * n as f64 / f64::from(rate)) as usize;
        db10(sp[b(lo)..b(hi)].iter().sum::<f64>() / (b(hi) - b(lo)) as f64)
    };
    let mid = band(&s, 2500.0, 4500.0) - band(&t, 2500.0, 4500.0);
    let top = band(&s, 18_000.0, 21_000.0) - band(&t, 18_000.0, 21_000.0);
    println!("shaped vs TPDF: {mid:.1} dB at 2.5-4.5 kHz, {top:+.1} dB at 18-21 kHz");
    assert!(mid < -15.0, "{mid}");
    assert!(top > 15.0, "{top}");
}

#[test]
fn quantize_passes_exact_signals_untouched() {
    let rate = 48_000;
    // 16-bit values, marked as such: requantizing to 16 or 24 bits changes nothing.
    let mut rng = Rng::new(1);
    let src: Vec<Vec<f32>> = (0..2)
        .map(|_| {
            (0..10_000)
                .map(|_| ((rng.uniform() * 32767.0).round() / 32768.0) as f32)
                .collect()
        })
        .collect();
    let spec = SignalSpec {
        exact_bits: Some(16),
        ..SignalSpec::with_channels(rate, 2)
    };
    for bits in [16, 24] {
        let mut s = MemorySource::new(rate, src.clone(), 999).with_spec(spec.clone());
        let mut r = Render::new(
            &mut s,
            vec![],
            vec![OutputChain {
                stages: vec![Box::new(Quantize::new(bits, DitherMode::Tpdf))],
                measure: false,
            }],
        );
        r.prepare(&mut |_| {}).unwrap();
        let got = Arc::new(Mutex::new(Vec::new()));
        r.run(
            &mut [Box::new(Collect(got.clone())) as Box<dyn Encoder>],
            &mut |_| {},
        )
        .unwrap();
        assert_eq!(*got.lock().unwrap(), src);
    }
}

#[test]
fn region_fades_and_trim() {
    let rate = 1000;
    let ramp: Vec<f32> = (0..5000).map(|i| 0.5 + (i % 7) as f32 * 0.01).collect();
    // Region 1.0 s .. 3.5 s at 1 kHz: frames 1000..3500, across any block size.
    for block in [1, 64, 5000] {
        let out = render_with(
            rate,
            vec![ramp.clone()],
            block,
            vec![Box::new(Region::new(1.0, Some(3.5)))],
            vec![],
        );
        assert_eq!(out.planes[0], ramp[1000..3500]);
    }
    // A region past the end leaves nothing, and says so.
    let out = render_with(
        rate,
        vec![ramp.clone()],
        100,
        vec![Box::new(Region::new(9.0, None))],
        vec![],
    );
    assert!(out.planes.is_empty() || out.planes[0].is_empty());
    assert!(
        out.reports
            .iter()
            .any(|r| r.warnings.iter().any(|w| w.contains("past the end")))
    );

    // Fades: 1 s in, 2 s out, on a constant signal.
    let ones = vec![vec![1.0f32; 5000]];
    for curve in [
        FadeCurve::Linear,
        FadeCurve::EqualPower,
        FadeCurve::Logarithmic,
    ] {
        for block in [1, 333, 5000] {
            let out = render_with(
                rate,
                ones.clone(),
                block,
                vec![Box::new(Fade::new(1.0, 2.0, curve))],
                vec![],
            );
            let y = &out.planes[0];
            assert_eq!(y.len(), 5000);
            assert_eq!(y[0], 0.0);
            assert_eq!(y[4999], 0.0);
            assert!(
                (f64::from(y[500]) - curve.gain(0.5)).abs() < 1e-6,
                "{curve:?} {}",
                y[500]
            );
            assert!(y[1000..3000].iter().all(|&v| v == 1.0));
            assert!((f64::from(y[4000]) - curve.gain(999.0 / 2000.0)).abs() < 1e-6);
            assert!(y[..1000].windows(2).all(|w| w[1] >= w[0]));
            assert!(y[3000..].windows(2).all(|w| w[1] <= w[0]));
        }
    }
    // A fade-out longer than the stage may hold in memory is not held: the stream's length is
    // counted in a prepass, and the fade applied as the frames pass, to the same samples.
    let noise = vec![signal::noise(7, 0.5, 5000), signal::noise(8, 0.5, 5000)];
    for curve in [FadeCurve::Linear, FadeCurve::Logarithmic] {
        for block in [1, 333, 5000] {
            let held = render_with(
                rate,
                noise.clone(),
                block,
                vec![Box::new(Fade::new(1.0, 2.0, curve))],
                vec![],
            );
            let counted = render_with(
                rate,
                noise.clone(),
                block,
                vec![Box::new(Fade::new(1.0, 2.0, curve).holding_at_most(100))],
                vec![],
            );
            assert_eq!(held.passes, 1, "a short fade-out is held, not counted");
            assert_eq!(counted.passes, 2, "a long fade-out is counted in a prepass");
            assert_eq!(counted.planes, held.planes, "{curve:?}, blocks of {block}");
        }
    }
    assert!((FadeCurve::EqualPower.gain(0.5) - std::f64::consts::FRAC_1_SQRT_2).abs() < 1e-12);
    assert!((20.0 * FadeCurve::Logarithmic.gain(0.5).log10() + 30.0).abs() < 0.5);

    // Trim: silence (−80 dBFS noise) around 1 s of tone, with 0.1 s pad.
    let mut x = signal::noise(2, 1e-4, 4000);
    let tone = signal::sine(rate, 50.0, 0.5, 1000);
    x[1500..2500].copy_from_slice(&tone);
    let out = render_with(
        rate,
        vec![x.clone()],
        77,
        vec![Box::new(TrimSilence::new(-60.0, 0.1))],
        vec![],
    );
    let first = (1500..2500)
        .find(|&i| tone[i - 1500].abs() >= 1e-3)
        .unwrap();
    let last = (1500..2500)
        .rev()
        .find(|&i| tone[i - 1500].abs() >= 1e-3)
        .unwrap();
    assert_eq!(out.planes[0], x[first - 100..=last + 100]);
    assert_eq!(out.passes, 2);
    // A pad longer than any file keeps it whole (1e15 s at 44.1 kHz and more overflowed the
    // frame count: a panic).
    let out = render_with(
        rate,
        vec![x.clone()],
        77,
        vec![Box::new(TrimSilence::new(-60.0, 1e300))],
        vec![],
    );
    assert_eq!(out.planes[0], x);
}

#[test]
fn channel_mapping_laws() {
    let rate = 48_000;
    let l = signal::sine(rate, 440.0, 0.5, 4800);
    let r = signal::sine(rate, 660.0, 0.5, 4800);
    let out = render_with(
        rate,
        vec![l.clone(), r.clone()],
        100,
        vec![Box::new(Channels::new(ChannelMapping::Mono))],
        vec![],
    );
    assert_eq!(out.spec.layout, ["FC"]);
    for i in 0..4800 {
        assert!((out.planes[0][i] - (l[i] + r[i]) / 2.0).abs() < 1e-7);
    }
    let out = render_with(
        rate,
        vec![l.clone()],
        100,
        vec![Box::new(Channels::new(ChannelMapping::Stereo))],
        vec![],
    );
    assert_eq!(out.planes, vec![l.clone(), l.clone()]);
    let out = render_with(
        rate,
        vec![l.clone(), r.clone()],
        100,
        vec![Box::new(Channels::new(ChannelMapping::Pick(vec![1, 0])))],
        vec![],
    );
    assert_eq!(out.planes, vec![r.clone(), l.clone()]);
    // 5.1 → stereo: BS.775 with the LFE dropped, never over full scale.
    let full = vec![vec![1.0f32; 100]; 6];
    let out = render_with(
        rate,
        full,
        100,
        vec![Box::new(Channels::new(ChannelMapping::Stereo))],
        vec![],
    );
    assert!(out.planes.iter().flatten().all(|&v| (v - 1.0).abs() < 1e-6));
    let mut lfe_only = vec![vec![0.0f32; 100]; 6];
    lfe_only[3] = vec![1.0; 100];
    let out = render_with(
        rate,
        lfe_only,
        100,
        vec![Box::new(Channels::new(ChannelMapping::Mono))],
        vec![],
    );
    assert!(out.planes[0].iter().all(|&v| v == 0.0));
    // A missing channel is a clear error.
    let mut src = MemorySource::new(rate, vec![l.clone()], 100);
    let mut rr = Render::new(
        &mut src,
        vec![Box::new(Channels::new(ChannelMapping::Pick(vec![2])))],
        vec![OutputChain::default()],
    );
    let e = rr.prepare(&mut |_| {}).unwrap_err().to_string();
    assert!(e.contains("channel 3 does not exist"), "{e}");
}

#[test]
fn chain_output_does_not_depend_on_block_size() {
    let rate = 44_100;
    let src = signal::hot_master(rate, 4.0);
    let chain = || -> Vec<Box<dyn Stage>> {
        vec![
            Box::new(Gain::new(-2.0)),
            Box::new(Region::new(0.25, Some(3.7))),
            Box::new(Fade::new(0.5, 0.5, FadeCurve::EqualPower)),
            to_loudness(-10.0, -1.0, true),
        ]
    };
    let tail = || -> Vec<Box<dyn Stage>> { vec![Box::new(Quantize::new(16, DitherMode::Shaped))] };
    let a = render_with(rate, src.clone(), 4096, chain(), tail());
    let b = render_with(rate, src.clone(), 1, chain(), tail());
    let c = render_with(rate, src, 1237, chain(), tail());
    assert_eq!(
        a.planes[0].len(),
        (3.7f64 * 44_100.0).round() as usize - (0.25f64 * 44_100.0).round() as usize
    );
    assert_eq!(a.planes, b.planes);
    assert_eq!(a.planes, c.planes);
}

#[test]
fn spilled_and_rerun_renders_are_identical() {
    let rate = 44_100;
    let src = signal::hot_master(rate, 5.0);
    let render = |spill: bool| {
        let mut s = MemorySource::new(rate, src.clone(), 1000);
        let stages: Vec<Box<dyn Stage>> = vec![
            Box::new(TrimSilence::new(-50.0, 0.01)),
            Box::new(Gain::new(-3.0)),
            to_loudness(-9.0, -1.0, true),
        ];
        let mut r = Render::new(&mut s, stages, vec![OutputChain::default()]);
        r.set_spill(spill);
        r.prepare(&mut |_| {}).unwrap();
        let got = Arc::new(Mutex::new(Vec::new()));
        r.run(
            &mut [Box::new(Collect(got.clone())) as Box<dyn Encoder>],
            &mut |_| {},
        )
        .unwrap();
        let planes = std::mem::take(&mut *got.lock().unwrap());
        (planes, r.passes())
    };
    let (a, pa) = render(true);
    let (b, pb) = render(false);
    assert_eq!(pa, pb);
    assert!(
        pa >= 4,
        "trim, normalize and limiter refinement passes: {pa}"
    );
    assert_eq!(a, b);
}

/// A stage that appends a tail of `pieces` blocks of `each` frames after the stream, one piece
/// per `finish` call, and counts the calls and the largest piece it gave.
struct PiecewiseTail {
    pieces: usize,
    each: usize,
    given: usize,
    channels: usize,
    calls: Arc<Mutex<(usize, usize)>>,
}

impl Stage for PiecewiseTail {
    fn name(&self) -> &'static str {
        "piecewise"
    }
    fn start(
        &mut self,
        input: &SignalSpec,
    ) -> Result<SignalSpec, sluice_core::render::RenderError> {
        self.given = 0;
        self.channels = input.channels();
        Ok(input.clone())
    }
    fn process(&mut self, _block: &mut Block) {}
    fn finish(&mut self, block: &mut Block) -> bool {
        assert!(block.is_empty(), "finish gets an empty block each call");
        assert_eq!(block.channels(), self.channels);
        let mut c = self.calls.lock().unwrap();
        c.0 += 1;
        if self.given == self.pieces {
            return false;
        }
        // Piece k holds the value k + 1 (so order and completeness show in the output).
        self.given += 1;
        let v = self.given as f32 / 100.0;
        for p in block.planes_mut() {
            p.resize(self.each, v);
        }
        c.1 = c.1.max(block.frames());
        self.given < self.pieces
    }
}

#[test]
fn a_tail_given_in_pieces_goes_through_the_later_stages_in_order() {
    let rate = 48_000;
    let src = vec![vec![0.5f32; 10_000]; 2];
    for shared in [true, false] {
        let calls = Arc::new(Mutex::new((0, 0)));
        let tail = || -> Box<dyn Stage> {
            Box::new(PiecewiseTail {
                pieces: 7,
                each: 1000,
                given: 0,
                channels: 0,
                calls: calls.clone(),
            })
        };
        // In the shared chain before a gain and a fade-out (which holds frames back), or in the
        // output's own chain before a gain.
        type Stages = Vec<Box<dyn Stage>>;
        let (stages, own): (Stages, Stages) = if shared {
            (
                vec![
                    tail(),
                    Box::new(Gain::new(-6.0206)),
                    Box::new(Fade::new(0.0, 0.01, FadeCurve::Linear)),
                ],
                vec![],
            )
        } else {
            (vec![], vec![tail(), Box::new(Gain::new(-6.0206))])
        };
        let out = render_with(rate, src.clone(), 4096, stages, own);
        assert_eq!(out.planes[0].len(), 10_000 + 7 * 1000, "shared {shared}");
        let fade = if shared { 480 } else { 0 };
        let end = out.planes[0].len() - fade;
        for (i, v) in out.planes[1][..end].iter().enumerate() {
            let want = if i < 10_000 {
                0.25
            } else {
                ((i - 10_000) / 1000 + 1) as f32 / 200.0
            };
            assert!(
                (v - want).abs() < 1e-6,
                "shared {shared}: frame {i} = {v}, want {want}"
            );
        }
        // Called until it said no more, never given more than a piece at a time.
        let (n, largest) = *calls.lock().unwrap();
        assert_eq!(n, 7, "shared {shared}");
        assert_eq!(largest, 1000);
    }
}

/// The analysis tap measures the signal where it stands in the chain, from the render's one
/// decode: at the head it reports exactly what `analyze` reports for the file; after a
/// normalize it reports the normalized loudness. With the spill on, the head tap runs only in
/// the normalize prepass (the final pass starts from the spill behind it) and must keep that
/// report through the stages' later starts; with the spill off it runs in every pass. A render
/// without outputs still runs the chain.
#[test]
fn the_analysis_tap_measures_the_signal_at_its_position() {
    use sluice_core::analysis::{AnalysisOptions, analyze};
    use sluice_core::render::FileSource;
    use sluice_core::render::analyze::Analyze;

    let rate = 48_000;
    let planes = signal::hot_master(rate, 8.0);
    let dir = std::env::temp_dir().join(format!("sluice-tap-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("hot.wav");
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: rate,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let mut w = hound::WavWriter::create(&path, spec).unwrap();
    for i in 0..planes[0].len() {
        for p in &planes {
            w.write_sample(p[i]).unwrap();
        }
    }
    w.finalize().unwrap();

    let opts = AnalysisOptions::default();
    let whole = serde_json::to_value(analyze(&path, &opts, &mut |_| {}).unwrap()).unwrap();
    let source_loudness = whole["loudness"]["integrated_lufs"].as_f64().unwrap();
    assert!(source_loudness > -15.0, "a hot master: {source_loudness}");

    for (spill, outputs) in [(true, 1), (false, 1), (true, 0), (false, 0)] {
        let mut source = FileSource::open(&path).unwrap();
        let info = source.info().unwrap().clone();
        let (head, head_tap) = Analyze::new(opts.clone(), path.clone(), info.clone(), info.frames);
        let (tail, tail_tap) = Analyze::new(opts.clone(), path.clone(), info, None);
        let stages: Vec<Box<dyn Stage>> = vec![
            Box::new(head),
            to_loudness(-20.0, -1.0, true),
            Box::new(tail),
        ];
        let chains = (0..outputs).map(|_| OutputChain::default()).collect();
        let mut r = Render::new(&mut source, stages, chains);
        r.set_spill(spill);
        assert_eq!(r.prepare(&mut |_| {}).unwrap().len(), outputs);
        let got = Arc::new(Mutex::new(Vec::new()));
        let mut encoders: Vec<Box<dyn Encoder>> = (0..outputs)
            .map(|_| Box::new(Collect(got.clone())) as Box<dyn Encoder>)
            .collect();
        let results = r.run(&mut encoders, &mut |_| {}).unwrap();
        assert_eq!(results.len(), outputs);
        assert!(
            r.passes() >= 2,
            "a prepass and the final pass: {}",
            r.passes()
        );
        drop(r);

        let at_head = serde_json::to_value(head_tap.take().expect("the head tap ran")).unwrap();
        for section in [
            "loudness", "levels", "spectrum", "stereo", "tempo", "key", "waveform", "targets",
        ] {
            assert_eq!(
                at_head[section], whole[section],
                "spill {spill}: {section} at the head differs from the file's analysis"
            );
        }
        assert_eq!(at_head["stream"]["frames"], whole["stream"]["frames"]);

        let at_tail = tail_tap.take().expect("the tail tap ran");
        let l = at_tail.loudness.as_ref().unwrap();
        let i = l.summary.integrated_lufs.unwrap();
        assert!(
            (i + 20.0).abs() < 0.1,
            "spill {spill}: normalized to {i} LUFS"
        );
        assert!(l.true_peak_dbtp.unwrap() <= -0.9, "{:?}", l.true_peak_dbtp);
        assert_eq!(at_tail.stream.frames, whole["stream"]["frames"].as_u64());
        // Taken once: the report belongs to whoever takes it.
        assert!(tail_tap.take().is_none());
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// A source that counts how often a pass starts reading it.
struct CountingSource {
    inner: MemorySource,
    reads: Arc<Mutex<usize>>,
}

impl sluice_core::render::Source for CountingSource {
    fn spec(&self) -> &SignalSpec {
        self.inner.spec()
    }
    fn frames(&self) -> Option<u64> {
        self.inner.frames()
    }
    fn rewind(&mut self) -> Result<(), sluice_core::render::RenderError> {
        *self.reads.lock().unwrap() += 1;
        self.inner.rewind()
    }
    fn next(&mut self, block: &mut Block) -> Result<bool, sluice_core::render::RenderError> {
        self.inner.next(block)
    }
}

/// A lossy output's correction (a lower ceiling, a loudness offset) runs the normalize stage's
/// refinement again and renders the output again, all from the spill the first prepass left:
/// the source is read once, however many stages stand in front of the normalize step. (The
/// spill at the normalize step was dropped when the stages in front of it were started again,
/// so every later pass decoded and resampled the source again.)
#[test]
fn a_codec_correction_renders_again_from_the_spill() {
    let rate = 44_100;
    let src = signal::hot_master(rate, 4.0);
    let (first, again, reads) = corrected_render(rate, &src, true);
    assert_eq!(
        reads, 1,
        "after the correction every pass starts from the spill"
    );
    let (a, b) = (measure(rate, &first), measure(rate, &again));
    assert!(
        (b.true_peak_dbtp - (a.true_peak_dbtp - 0.5)).abs() < 0.05,
        "{a:?} {b:?}"
    );
    assert!((b.loudness.integrated_lufs.unwrap() + 9.0).abs() < 0.05);
    // What the spill gave is what the stages give: the same render without a spill (every
    // pass from the source) is the same to the bit.
    let (first_unspilled, again_unspilled, reads) = corrected_render(rate, &src, false);
    assert!(reads > 1);
    assert_eq!(first, first_unspilled);
    assert_eq!(again, again_unspilled);
}

/// A render through a gain and a limited normalize, then the same after a codec correction
/// (0.5 dB lower): both outputs and how often the source was read.
fn corrected_render(
    rate: u32,
    src: &[Vec<f32>],
    spill: bool,
) -> (Vec<Vec<f32>>, Vec<Vec<f32>>, usize) {
    let reads = Arc::new(Mutex::new(0));
    let mut s = CountingSource {
        inner: MemorySource::new(rate, src.to_vec(), 1000),
        reads: reads.clone(),
    };
    let stages: Vec<Box<dyn Stage>> =
        vec![Box::new(Gain::new(-2.0)), to_loudness(-9.0, -1.0, true)];
    let mut r = Render::new(&mut s, stages, vec![OutputChain::default()]);
    r.set_spill(spill);
    r.prepare(&mut |_| {}).unwrap();
    let run = run_once;
    let first = run(&mut r);
    if spill {
        assert_eq!(
            *reads.lock().unwrap(),
            1,
            "the first prepass reads the source"
        );
    }
    let passes = r.passes();
    assert!(r.correct_for_codec(0, 0.5, 0.0));
    r.prepare(&mut |_| {}).unwrap();
    let again = run(&mut r);
    assert!(r.passes() > passes + 1, "the refinement ran again");

    drop(r);
    let reads = *reads.lock().unwrap();
    (first, again, reads)
}

/// A codec correction on a heavily limited signal (quiet plucked strings brought up 12 dB into
/// the limiter, which takes back a third of each added dB) starts from where the refinement
/// settled: the limiter is homogeneous, so the settled gain moved down with the ceiling is a
/// measurement under the new ceiling, and the slope found there steers the first step. It
/// reaches the target within the usual tolerance in fewer passes than the first refinement.
#[test]
fn a_codec_correction_starts_from_the_settled_gain() {
    let rate = 44_100;
    let src = signal::acoustic(rate, 20.0, 7);
    let mut s = MemorySource::new(rate, src, 4096);
    let mut r = Render::new(
        &mut s,
        vec![to_loudness(-14.0, -1.0, true)],
        vec![OutputChain::default()],
    );
    r.prepare(&mut |_| {}).unwrap();
    let first = r.passes();
    let run = run_once;
    let a = measure(rate, &run(&mut r));
    let before = r.passes();
    assert!(r.correct_for_codec(0, 1.6, 0.3));
    r.prepare(&mut |_| {}).unwrap();
    let refined = r.passes() - before;
    let b = measure(rate, &run(&mut r));
    assert!(
        (b.loudness.integrated_lufs.unwrap() - (-14.0 + 0.3)).abs() < 0.03,
        "{b:?}"
    );
    assert!(
        b.true_peak_dbtp <= a.true_peak_dbtp - 1.6 + 0.01,
        "{a:?} {b:?}"
    );
    assert!(
        refined < first - 1,
        "{refined} refinement passes after the correction, {first} before"
    );
}

/// The final pass of a prepared render into one collecting encoder.
fn run_once(r: &mut Render) -> Vec<Vec<f32>> {
    let got = Arc::new(Mutex::new(Vec::new()));
    r.run(
        &mut [Box::new(Collect(got.clone())) as Box<dyn Encoder>],
        &mut |_| {},
    )
    .unwrap();
    std::mem::take(&mut *got.lock().unwrap())
}
