//! A lossy output beside a lossless one, from one export: the MP3's low-pass is expected (its
//! ringing over the limited peaks and the loudness it takes away are measured before the
//! first encode), and the lossless output keeps the full ceiling.
#![cfg(feature = "mp3")]

use sluice_core::export::{OutputPlan, export};
use sluice_core::render::normalize::NormalizeTarget;
use sluice_core::render::steps::StepSpec;

fn write_wav(path: &std::path::Path, rate: u32, planes: &[Vec<f32>]) {
    let spec = hound::WavSpec {
        channels: planes.len() as u16,
        sample_rate: rate,
        bits_per_sample: 24,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for i in 0..planes[0].len() {
        for p in planes {
            w.write_sample((f64::from(p[i]) * 8_388_607.0).round() as i32)
                .unwrap();
        }
    }
    w.finalize().unwrap();
}

fn plan(path: std::path::PathBuf, format: sluice_core::formats::OutputFormat) -> OutputPlan {
    OutputPlan {
        overwrite: true,
        ..OutputPlan::new(path, format)
    }
}

/// Quiet plucked strings brought up 12 dB into the limiter, to FLAC and MP3 V2: limited this
/// hard, the MP3's 18.5 kHz low-pass rings 1.3 dB over the limiter's peaks, which used to take
/// a second encode. Now the MP3's own normalize step holds the low-passed peak (and aims the
/// low-passed loudness): one encode, on target as decoded, under the ceiling; the FLAC keeps
/// the limiter's full ceiling instead of the MP3's lower one.
#[test]
fn an_mp3_beside_a_flac_holds_in_one_encode_and_the_flac_keeps_its_ceiling() {
    let dir = tempfile::tempdir().unwrap();
    let rate = 44_100;
    let src = dir.path().join("strings.wav");
    write_wav(&src, rate, &sluice_core::signal::acoustic(rate, 30.0, 11));
    let mp3 = sluice_core::encode::named(
        "mp3",
        sluice_core::formats::Settings {
            quality: Some(2.0),
            ..Default::default()
        },
    )
    .unwrap();
    let outputs = [
        plan(
            dir.path().join("out.flac"),
            sluice_core::encode::flac::output(16, 5),
        ),
        plan(dir.path().join("out.mp3"), mp3),
    ];
    let steps = [StepSpec::Normalize(NormalizeTarget::Loudness {
        lufs: -14.0,
        true_peak_dbtp: -1.0,
        limiter: true,
        rule: Default::default(),
    })];
    let report = export(&src, &steps, &outputs, &mut |_| {}).unwrap();
    let (flac, mp3) = (&report.outputs[0], &report.outputs[1]);
    let check = mp3.true_peak_check.as_ref().unwrap();
    let loud = |o: &sluice_core::export::OutputReport| o.loudness.clone().unwrap();
    let (f, m) = (loud(flac), loud(mp3));
    assert_eq!(check.encodes, 1, "{check:?}");
    assert!(check.met);
    assert!(m.true_peak_dbtp <= -1.1, "the MP3 as decoded: {m:?}");
    let mi = m.loudness.integrated_lufs.unwrap();
    assert!((mi + 14.0).abs() <= 0.1, "the MP3 as decoded: {mi} LUFS");
    // The FLAC: the limiter's full ceiling (0.2 dB under -1 dBTP), at the target.
    assert!(
        (-1.25..=-1.15).contains(&f.true_peak_dbtp),
        "the FLAC: {f:?}"
    );
    assert!((f.loudness.integrated_lufs.unwrap() + 14.0).abs() <= 0.03);
    // Each output ran a normalize step of its own; the MP3's knew its codec's low-pass.
    let normalize = |o: &sluice_core::export::OutputReport| {
        o.stages
            .iter()
            .find(|s| s.stage == "normalize")
            .map(|s| s.values.clone())
            .unwrap_or_else(|| panic!("{}: no normalize step of its own", o.path.display()))
    };
    assert!(!normalize(flac).contains_key("codec_lowpass_hz"));
    assert_eq!(normalize(mp3)["codec_lowpass_hz"], 18_500.0);
}
