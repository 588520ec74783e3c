//! The reference-matching stage (`render::matching`) on generated audio whose spectra are
//! known: noise shaped in the frequency domain (a pink-ish slope, tilts, bells, a dip),
//! stereo pairs of chosen width, targets measured from other signals (other seeds, other
//! rates), and silence.

mod common;

use common::Collect;
use rustfft::FftPlanner;
use rustfft::num_complex::Complex;
use sluice_core::analysis::loudness::LoudnessMeter;
use sluice_core::analysis::spectrum::{LtasPoint, SpectrumMeter};
use sluice_core::analysis::stereo;
use sluice_core::encode::Encoder;
use sluice_core::render::matching::{Match, MatchOptions, MatchTarget};
use sluice_core::render::{MemorySource, OutputChain, Render, Stage, StageReport};
use sluice_core::signal;
use std::sync::{Arc, Mutex};

/// `planes` at `rate` through one match stage, `block` frames at a time: the output, the
/// stage's report and the passes over the source.
fn matched(
    rate: u32,
    planes: &[Vec<f32>],
    block: usize,
    target: &MatchTarget,
    options: MatchOptions,
) -> (Vec<Vec<f32>>, StageReport, u32) {
    let mut src = MemorySource::new(rate, planes.to_vec(), block);
    let stage: Box<dyn Stage> = Box::new(Match::new(target.clone(), options));
    let mut r = Render::new(&mut src, vec![stage], vec![OutputChain::default()]);
    r.prepare(&mut |_| {}).unwrap();
    let got = Arc::new(Mutex::new(Vec::new()));
    let mut enc: Vec<Box<dyn Encoder>> = vec![Box::new(Collect(got.clone()))];
    r.run(&mut enc, &mut |_| {}).unwrap();
    let mut out = std::mem::take(&mut *got.lock().unwrap());
    if out.is_empty() {
        out = vec![Vec::new(); planes.len()];
    }
    let report = r.reports().remove(0);
    (out, report, r.passes())
}

/// White noise (seeded) shaped by `shape_db(Hz)` in the frequency domain, scaled to `rms`.
fn shaped(
    seed: u64,
    rate: u32,
    frames: usize,
    rms: f64,
    shape_db: &dyn Fn(f64) -> f64,
) -> Vec<f32> {
    let x = signal::noise(seed, 1.0, frames);
    let mut z: Vec<Complex<f64>> = x.iter().map(|&v| Complex::new(f64::from(v), 0.0)).collect();
    let mut planner = FftPlanner::new();
    planner.plan_fft_forward(frames).process(&mut z);
    for (k, v) in z.iter_mut().enumerate() {
        let f = k.min(frames - k) as f64 * f64::from(rate) / frames as f64;
        *v *= 10f64.powf(shape_db(f.max(1.0)) / 20.0);
    }
    planner.plan_fft_inverse(frames).process(&mut z);
    let y: Vec<f64> = z.iter().map(|v| v.re).collect();
    let now = (y.iter().map(|v| v * v).sum::<f64>() / frames as f64).sqrt();
    y.iter().map(|v| (v * rms / now) as f32).collect()
}

/// A stereo pair of `shape` whose width is about `width`: a shared part and a part of each
/// side's own, mixed so that side over mid plus side is `width` (at most 0.5).
fn pair(
    seed: u64,
    rate: u32,
    seconds: f64,
    rms: f64,
    width: f64,
    shape: &dyn Fn(f64) -> f64,
) -> Vec<Vec<f32>> {
    let frames = (seconds * f64::from(rate)) as usize;
    let common = shaped(seed, rate, frames, rms, shape);
    let a = shaped(seed + 1000, rate, frames, rms, shape);
    let b = shaped(seed + 2000, rate, frames, rms, shape);
    // L = c·x + u·a, R = c·x + u·b: mid energy c² + u²/2, side u²/2.
    let u2 = 2.0 * width;
    let (c, u) = ((1.0 - u2).max(0.0).sqrt() as f32, u2.sqrt() as f32);
    let l = common.iter().zip(&a).map(|(x, a)| c * x + u * a).collect();
    let r = common.iter().zip(&b).map(|(x, b)| c * x + u * b).collect();
    vec![l, r]
}

/// The base material: a pink-ish slope (−3 dB/octave) with the lows below 30 Hz and the highs
/// above 16 kHz rolled off, as programme material has them.
fn base(f: f64) -> f64 {
    -10.0 * (f / 1000.0).log10()
        - 10.0 * (1.0 + (30.0 / f).powi(4)).log10()
        - 10.0 * (1.0 + (f / 16_000.0).powi(4)).log10()
}

/// A bell of `db` at `hz`, `octaves` wide (Gaussian in log frequency, standard deviation half
/// the width).
fn bell(f: f64, hz: f64, db: f64, octaves: f64) -> f64 {
    let x = (f / hz).log2() / (octaves / 2.0);
    db * (-0.5 * x * x).exp()
}

/// A target unlike the base: tilted up 1.2 dB per octave around 1 kHz, a presence bump of
/// 4 dB at 3 kHz, a dip of 3 dB at 300 Hz. Within ±8 dB of the base from 20 Hz to 20 kHz.
fn brighter(f: f64) -> f64 {
    base(f) + 1.2 * (f / 1000.0).log2() + bell(f, 3000.0, 4.0, 1.0) + bell(f, 300.0, -3.0, 1.0)
}

fn ltas(rate: u32, planes: &[Vec<f32>]) -> Vec<LtasPoint> {
    let mut m = SpectrumMeter::new(rate, (0..planes.len()).collect());
    for at in (0..planes[0].len()).step_by(4096) {
        let end = (at + 4096).min(planes[0].len());
        let b: Vec<&[f32]> = planes.iter().map(|p| &p[at..end]).collect();
        m.feed(&b);
    }
    m.finish().ltas
}

/// The five bands' levels relative to the 20 Hz – 20 kHz total, dB (the spectrum section's
/// band shares).
fn bands(rate: u32, planes: &[Vec<f32>]) -> [f64; 5] {
    let mut m = SpectrumMeter::new(rate, (0..planes.len()).collect());
    let b: Vec<&[f32]> = planes.iter().map(Vec::as_slice).collect();
    m.feed(&b);
    let s = m.finish();
    std::array::from_fn(|i| 10.0 * (s.bands[i].share_percent.unwrap() / 100.0).log10())
}

fn loudness(rate: u32, planes: &[Vec<f32>]) -> Option<f64> {
    let layout = sluice_core::render::default_layout(planes.len());
    let mut m = LoudnessMeter::for_layout(rate, &layout);
    let b: Vec<&[f32]> = planes.iter().map(Vec::as_slice).collect();
    m.feed(&b);
    m.summary(None).integrated_lufs
}

fn width(planes: &[Vec<f32>]) -> Option<f64> {
    let (mut ll, mut rr, mut lr) = (0.0, 0.0, 0.0);
    for (&l, &r) in planes[0].iter().zip(&planes[1]) {
        let (l, r) = (f64::from(l), f64::from(r));
        ll += l * l;
        rr += r * r;
        lr += l * r;
    }
    stereo::width(ll, rr, lr)
}

fn target_of(rate: u32, planes: &[Vec<f32>]) -> MatchTarget {
    MatchTarget {
        ltas: ltas(rate, planes),
        loudness_lufs: loudness(rate, planes),
        width: (planes.len() == 2).then(|| width(planes)).flatten(),
    }
}

fn eq_only(strength: f64) -> MatchOptions {
    MatchOptions {
        strength,
        ..MatchOptions::default()
    }
}

fn fmt(b: &[f64; 5]) -> String {
    b.iter()
        .map(|v| format!("{v:+.2}"))
        .collect::<Vec<_>>()
        .join(" ")
}

const RATE: u32 = 48_000;

#[test]
fn at_full_strength_the_band_balance_is_the_targets() {
    let input = pair(1, RATE, 10.0, 0.1, 0.5, &base);
    let reference = pair(7, RATE, 10.0, 0.05, 0.5, &brighter);
    let target = target_of(RATE, &reference);
    let (out, report, _) = matched(RATE, &input, 4096, &target, eq_only(1.0));
    let (i, t, o) = (
        bands(RATE, &input),
        bands(RATE, &reference),
        bands(RATE, &out),
    );
    eprintln!("input  {}\ntarget {}\noutput {}", fmt(&i), fmt(&t), fmt(&o));
    eprintln!("{report:?}");
    // The test means something: the input's balance is far from the target's.
    assert!(i.iter().zip(&t).any(|(a, b)| (a - b).abs() > 3.0));
    for k in 0..5 {
        assert!((o[k] - t[k]).abs() < 0.5, "band {k}: {} vs {}", o[k], t[k]);
    }
    assert_eq!(out[0].len(), input[0].len());
    // The EQ alone hardly moves the loudness (its K-weighted power is kept), nor the width.
    let (li, lo) = (
        loudness(RATE, &input).unwrap(),
        loudness(RATE, &out).unwrap(),
    );
    eprintln!("loudness {li:.2} -> {lo:.2} LUFS");
    assert!((lo - li).abs() < 0.5, "{li} -> {lo}");
    let (boost, cut) = (
        report.values["eq_max_boost_db"],
        report.values["eq_max_cut_db"],
    );
    assert!(
        boost <= 12.0 && cut >= -12.0 && boost - cut > 8.0,
        "{report:?}"
    );
}

#[test]
fn at_half_strength_every_band_moves_halfway() {
    let input = pair(1, RATE, 10.0, 0.1, 0.5, &base);
    let reference = pair(7, RATE, 10.0, 0.05, 0.5, &brighter);
    let target = target_of(RATE, &reference);
    let (out, _, _) = matched(RATE, &input, 4096, &target, eq_only(0.5));
    let (i, t, o) = (
        bands(RATE, &input),
        bands(RATE, &reference),
        bands(RATE, &out),
    );
    eprintln!("input  {}\ntarget {}\noutput {}", fmt(&i), fmt(&t), fmt(&o));
    for k in 0..5 {
        let half = (t[k] - i[k]) / 2.0;
        let moved = o[k] - i[k];
        assert!(
            (moved - half).abs() < 0.5,
            "band {k}: moved {moved:.2} dB, half is {half:.2}"
        );
    }
}

#[test]
fn each_switch_acts_alone() {
    // The input: base material, width 0.5, about −23 LUFS. The reference: brighter, narrower
    // (0.2) and 8 dB louder.
    let input = pair(1, RATE, 10.0, 0.05, 0.5, &base);
    let reference = pair(7, RATE, 10.0, 0.125, 0.2, &brighter);
    let target = target_of(RATE, &reference);
    let (li, wi, bi) = (
        loudness(RATE, &input).unwrap(),
        width(&input).unwrap(),
        bands(RATE, &input),
    );
    let (lt, wt) = (target.loudness_lufs.unwrap(), target.width.unwrap());
    eprintln!("input {li:.2} LUFS width {wi:.3}; target {lt:.2} LUFS width {wt:.3}");
    assert!((lt - li).abs() > 5.0 && (wt - wi).abs() > 0.2);

    // Loudness alone: one gain, nothing else.
    let options = MatchOptions {
        eq: false,
        loudness: true,
        ..MatchOptions::default()
    };
    let (out, report, passes) = matched(RATE, &input, 4096, &target, options);
    let lo = loudness(RATE, &out).unwrap();
    eprintln!("loudness alone: {lo:.3} LUFS, {report:?}");
    assert!((lo - lt).abs() < 0.2, "{lo} vs {lt}");
    let g = 10f64.powf(report.values["loudness_gain_db"] / 20.0) as f32;
    for (o, i) in out.iter().zip(&input) {
        assert!(
            o.iter().zip(i).all(|(o, i)| *o == *i * g),
            "a gain and nothing else"
        );
    }
    let bo = bands(RATE, &out);
    for k in 0..5 {
        assert!((bo[k] - bi[k]).abs() < 0.1, "band {k}");
    }
    assert!((report.values["output_integrated_lufs"] - lo).abs() < 0.01);
    assert_eq!(passes, 2, "one measuring pass, then the render");

    // Width alone: mid and side scaled, the mid's balance and the loudness kept.
    let options = MatchOptions {
        eq: false,
        width: true,
        ..MatchOptions::default()
    };
    let (out, report, _) = matched(RATE, &input, 4096, &target, options);
    let wo = width(&out).unwrap();
    eprintln!("width alone: {wo:.4}, {report:?}");
    assert!((wo - wt).abs() < 0.02, "{wo} vs {wt}");
    assert!((report.values["output_width"] - wo).abs() < 1e-3);
    let mid = |p: &[Vec<f32>]| vec![p[0].iter().zip(&p[1]).map(|(l, r)| (l + r) / 2.0).collect()];
    let (mi, mo) = (bands(RATE, &mid(&input)), bands(RATE, &mid(&out)));
    for k in 0..5 {
        assert!(
            (mo[k] - mi[k]).abs() < 0.1,
            "mid band {k}: {} vs {}",
            mo[k],
            mi[k]
        );
    }
    let lo = loudness(RATE, &out).unwrap();
    assert!(
        (lo - li).abs() < 0.1,
        "the width moved the loudness {li} -> {lo}"
    );

    // The EQ alone keeps the width.
    let (out, _, _) = matched(RATE, &input, 4096, &target, eq_only(1.0));
    let wo = width(&out).unwrap();
    assert!((wo - wi).abs() < 0.02, "{wi} -> {wo}");

    // All three at once.
    let options = MatchOptions {
        loudness: true,
        width: true,
        ..MatchOptions::default()
    };
    let (out, report, passes) = matched(RATE, &input, 4096, &target, options);
    let (lo, wo, bo, bt) = (
        loudness(RATE, &out).unwrap(),
        width(&out).unwrap(),
        bands(RATE, &out),
        bands(RATE, &reference),
    );
    eprintln!(
        "all: {lo:.3} LUFS, width {wo:.4}, bands {}, passes {passes}; {report:?}",
        fmt(&bo)
    );
    assert!((lo - lt).abs() < 0.2, "{lo} vs {lt}");
    assert!((wo - wt).abs() < 0.02, "{wo} vs {wt}");
    for k in 0..5 {
        assert!(
            (bo[k] - bt[k]).abs() < 0.5,
            "band {k}: {} vs {}",
            bo[k],
            bt[k]
        );
    }
}

#[test]
fn a_target_measured_at_96_khz_matches_a_44_1_khz_track() {
    let rate = 44_100;
    let input = pair(1, rate, 10.0, 0.1, 0.5, &base);
    let reference = pair(7, 96_000, 10.0, 0.05, 0.5, &brighter);
    let target = target_of(96_000, &reference);
    let (out, report, _) = matched(rate, &input, 4096, &target, eq_only(1.0));
    let (i, t, o) = (
        bands(rate, &input),
        bands(96_000, &reference),
        bands(rate, &out),
    );
    eprintln!(
        "input  {}\ntarget {}\noutput {}\n{report:?}",
        fmt(&i),
        fmt(&t),
        fmt(&o)
    );
    for k in 0..5 {
        assert!((o[k] - t[k]).abs() < 0.5, "band {k}: {} vs {}", o[k], t[k]);
    }
    assert_eq!(out[0].len(), input[0].len());
    // The same spectrum without its last point, as a profile averaged over files gives it:
    // its rate is not known, its points are taken as measured like the input's.
    let mut profile = target.clone();
    profile.ltas.pop();
    let (out, _, _) = matched(rate, &input, 4096, &profile, eq_only(1.0));
    let o = bands(rate, &out);
    eprintln!("profile {}", fmt(&o));
    for k in 0..5 {
        assert!(
            (o[k] - t[k]).abs() < 0.5,
            "profile, band {k}: {} vs {}",
            o[k],
            t[k]
        );
    }
    // The other way round: a 44.1 kHz target for a 96 kHz track; nothing is corrected above
    // 0.45 of the target's rate.
    let target = target_of(rate, &input);
    let (out, report, _) = matched(96_000, &reference, 4096, &target, eq_only(1.0));
    assert!(
        (report.values["eq_high_hz"] - 0.45 * 44_100.0).abs() < 1e-6,
        "{report:?}"
    );
    let (t, o) = (bands(rate, &input), bands(96_000, &out));
    for k in 0..5 {
        assert!(
            (o[k] - t[k]).abs() < 0.5,
            "96 kHz track, band {k}: {} vs {}",
            o[k],
            t[k]
        );
    }
}

#[test]
fn the_output_keeps_the_inputs_length_and_alignment() {
    // A signal matched to its own spectrum goes through the FIR unchanged, sample for sample.
    let input = pair(3, RATE, 6.0, 0.1, 0.4, &brighter);
    let own = target_of(RATE, &input);
    let (out, report, _) = matched(RATE, &input, 1000, &own, eq_only(1.0));
    assert!(report.values["eq_taps"] > 10_000.0, "{report:?}");
    let mut err = 0.0f64;
    let mut power = 0.0f64;
    for (o, i) in out.iter().zip(&input) {
        assert_eq!(o.len(), i.len());
        for (&o, &i) in o.iter().zip(i) {
            err += f64::from(o - i).powi(2);
            power += f64::from(i).powi(2);
        }
    }
    let db = 10.0 * (err / power).log10();
    eprintln!("matched to itself: difference {db:.1} dB");
    assert!(db < -60.0, "{db} dB");

    // A real correction: the output still lines up with the input (the cross-correlation
    // peaks at lag 0), whatever the blocks, and lengths are kept, even shorter than the
    // filter's delay.
    let target = target_of(RATE, &pair(9, RATE, 6.0, 0.1, 0.4, &base));
    let (a, report, _) = matched(RATE, &input, 4096, &target, eq_only(1.0));
    let (b, _, _) = matched(RATE, &input, 777, &target, eq_only(1.0));
    // (The measured spectrum itself moves by 1e-9 dB with the blocks: the spectrum meter
    // pairs frames of the two channels in its transforms as the blocks fall.)
    let worst = a
        .iter()
        .zip(&b)
        .flat_map(|(x, y)| x.iter().zip(y).map(|(x, y)| (x - y).abs()))
        .fold(0f32, f32::max);
    assert!(worst < 1e-6, "the blocks change nothing: {worst}");
    assert!(report.values["eq_max_cut_db"] < -3.0, "{report:?}");
    let xcorr = |lag: isize| -> f64 {
        let (o, i) = (&a[0], &input[0]);
        (1000..o.len() - 1000)
            .map(|k| f64::from(o[k]) * f64::from(i[(k as isize + lag) as usize]))
            .sum()
    };
    let peak = (-5..=5)
        .max_by(|&x, &y| xcorr(x).total_cmp(&xcorr(y)))
        .unwrap();
    assert_eq!(peak, 0);
    let latency = report.values["eq_latency_frames"] as usize;
    for frames in [1, latency / 2, latency + 1, 3 * latency + 17] {
        let short: Vec<Vec<f32>> = input.iter().map(|p| p[..frames].to_vec()).collect();
        let (out, _, _) = matched(RATE, &short, 4096, &target, eq_only(1.0));
        assert_eq!(out[0].len(), frames);
        assert_eq!(out[1].len(), frames);
    }
}

#[test]
fn a_difference_beyond_the_limit_is_clamped() {
    let input = pair(1, RATE, 8.0, 0.1, 0.5, &base);
    let boosted = |f: f64| base(f) + bell(f, 2000.0, 20.0, 1.0);
    let target = target_of(RATE, &pair(5, RATE, 8.0, 0.1, 0.5, &boosted));
    // The largest change of the spectrum (output − input, dB) from 100 Hz to 15 kHz, and its
    // span (largest − smallest).
    let change = |out: &[Vec<f32>]| -> (f64, f64) {
        let (a, b) = (ltas(RATE, &input), ltas(RATE, out));
        let d: Vec<f64> = a
            .iter()
            .zip(&b)
            .filter(|(p, _)| (100.0..15_000.0).contains(&p.hz))
            .map(|(p, q)| q.db - p.db)
            .collect();
        let (hi, lo) = d
            .iter()
            .fold((f64::MIN, f64::MAX), |(h, l), &v| (h.max(v), l.min(v)));
        (hi, hi - lo)
    };
    let limited = MatchOptions {
        max_gain_db: 6.0,
        ..MatchOptions::default()
    };
    let (out, report, _) = matched(RATE, &input, 4096, &target, limited);
    let (most, span) = change(&out);
    eprintln!("limited to 6 dB: boosted {most:.2} dB at most, span {span:.2} dB; {report:?}");
    assert!(report.values["eq_max_boost_db"] <= 6.0 + 1e-9);
    assert!(report.values["eq_max_cut_db"] >= -6.0 - 1e-9);
    assert!(report.values["eq_points_clamped"] > 0.0);
    assert!((5.0..6.5).contains(&most), "{most}");
    assert!(span < 12.5, "{span}");
    let free = MatchOptions {
        max_gain_db: 24.0,
        ..MatchOptions::default()
    };
    let (out, _, _) = matched(RATE, &input, 4096, &target, free);
    let (most, span) = change(&out);
    eprintln!("limited to 24 dB: boosted {most:.2} dB at most, span {span:.2} dB");
    assert!(span > 15.0, "{span}");
}

#[test]
fn silence_in_silence_out() {
    let target = target_of(RATE, &pair(7, RATE, 4.0, 0.1, 0.3, &brighter));
    let all = MatchOptions {
        loudness: true,
        width: true,
        ..MatchOptions::default()
    };
    for channels in [1, 2] {
        let silence = vec![vec![0.0f32; 50_000]; channels];
        let (out, report, _) = matched(RATE, &silence, 4096, &target, all);
        assert_eq!(out.len(), channels);
        for p in &out {
            assert_eq!(p.len(), 50_000);
            assert!(p.iter().all(|&x| x == 0.0), "silence stays silence, no NaN");
        }
        eprintln!("{report:?}");
        assert!(
            report.warnings.iter().any(|w| w.contains("silent")),
            "{report:?}"
        );
        assert!(report.values.values().all(|v| v.is_finite()), "{report:?}");
    }
    // A mono input: the width is left alone, with a note; the rest works.
    let mono = vec![shaped(4, RATE, 4 * RATE as usize, 0.1, &base)];
    let (out, report, _) = matched(RATE, &mono, 4096, &target, all);
    assert!(
        report.warnings.iter().any(|w| w.contains("mono")),
        "{report:?}"
    );
    let lo = loudness(RATE, &out).unwrap();
    assert!((lo - target.loudness_lufs.unwrap()).abs() < 0.2);
}

#[test]
fn bad_options_and_targets_are_refused() {
    let input = pair(1, RATE, 1.0, 0.1, 0.5, &base);
    let target = target_of(RATE, &input);
    let refuse = |target: &MatchTarget, options: MatchOptions, words: &str| {
        let mut src = MemorySource::new(RATE, input.clone(), 4096);
        let stage: Box<dyn Stage> = Box::new(Match::new(target.clone(), options));
        let mut r = Render::new(&mut src, vec![stage], vec![OutputChain::default()]);
        let e = r.prepare(&mut |_| {}).expect_err("refused").to_string();
        assert!(e.contains(words), "{e}");
    };
    refuse(&target, eq_only(-0.1), "strength -0.1: from 0 to 1");
    refuse(
        &target,
        MatchOptions {
            max_gain_db: f64::NAN,
            ..MatchOptions::default()
        },
        "max_gain_db NaN",
    );
    refuse(
        &target,
        MatchOptions {
            smoothing_octaves: 5.0,
            ..MatchOptions::default()
        },
        "smoothing_octaves 5",
    );
    let mut bad = target.clone();
    bad.width = Some(1.5);
    refuse(&bad, eq_only(1.0), "width 1.5");
    let mut bad = target.clone();
    bad.ltas.swap(3, 4);
    refuse(&bad, eq_only(1.0), "rising frequency order");
    let mut bad = target.clone();
    bad.ltas.clear();
    refuse(&bad, eq_only(1.0), "no spectrum");
    // Strength 0 changes nothing and measures nothing.
    let (out, report, passes) = matched(RATE, &input, 4096, &target, eq_only(0.0));
    assert_eq!(out, input);
    assert_eq!(passes, 1);
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.contains("nothing changed"))
    );
}
