//! The example pipelines in `pipelines/`, each run with `sluice run` on generated programme
//! material, and their outputs measured.

mod common;

use common::{loudness, root_with_examples, sluice, write_wav};
use std::path::Path;

/// A loud, dense master (well above every target) as a 24-bit 44.1 kHz WAV.
fn master_wav(path: &Path, seconds: f64) {
    write_wav(
        path,
        &sluice_core::signal::hot_master(44_100, seconds),
        44_100,
        24,
    );
}

fn run(root: &Path, pipeline: &str, file: &Path) -> serde_json::Value {
    let out = sluice()
        .args(["run", pipeline, "--json", "--root"])
        .arg(root)
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let job = v[0].clone();
    assert_eq!(job["state"], "done", "{job:#?}");
    job
}

#[test]
fn streaming_master_broadcast_and_analysis_examples() {
    let dir = tempfile::tempdir().unwrap();
    let root = root_with_examples(dir.path());
    let src = dir.path().join("master.wav");
    master_wav(&src, 12.0);
    let before = std::fs::read(&src).unwrap();

    // Streaming: -14 LUFS / -1 dBTP, 24-bit WAV and 320 kbit/s MP3.
    let job = run(&root, "streaming-master", &src);
    let wav = root.join("outbox/streaming-master/master.wav");
    let (i, tp) = loudness(&wav);
    assert!(
        (i + 14.0).abs() <= 0.1 && tp <= -1.0 + 0.05,
        "{i} LUFS {tp} dBTP"
    );
    assert_eq!(sluice_core::probe(&wav).unwrap().bit_depth, Some(24));
    let mp3 = root.join("outbox/streaming-master/mp3/master.mp3");
    assert!((loudness(&mp3).0 + 14.0).abs() <= 0.5);
    assert_eq!(job["outputs"].as_array().unwrap().len(), 2);

    // Broadcast: 48 kHz 24-bit BWF at -23 LUFS with the loudness in bext.
    run(&root, "broadcast", &src);
    let day = jiff::Zoned::now().strftime("%Y-%m-%d").to_string();
    let bwf = root.join(format!("outbox/broadcast/{day}/master.wav"));
    let info = sluice_core::info(&bwf, &sluice_core::InfoOptions { decode: false }).unwrap();
    assert_eq!(
        (info.stream.sample_rate, info.stream.bit_depth),
        (48_000, Some(24))
    );
    let (i, tp) = loudness(&bwf);
    assert!(
        (i + 23.0).abs() <= 0.1 && tp <= -1.0 + 0.05,
        "{i} LUFS {tp} dBTP"
    );
    let bext = info.tags.bext.expect("a bext chunk");
    assert_eq!(bext.version, 2);
    assert!((f64::from(bext.loudness_value.unwrap()) - i).abs() <= 0.05);

    // Analysis only: a report, no outputs.
    let job = run(&root, "analysis", &src);
    assert!(job["outputs"].as_array().unwrap().is_empty());
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("reports/analysis/master.json")).unwrap())
            .unwrap();
    let measured = report["analysis"]["loudness"]["integrated_lufs"]
        .as_f64()
        .unwrap();
    assert!((measured - loudness(&src).0).abs() < 0.01);
    assert!(report["analysis"]["spectrum"].is_object());

    // `run` never moves or changes the sources.
    assert_eq!(std::fs::read(&src).unwrap(), before);
}
