//! The built-in effects that have one definition give Pedalboard's output (Spotify's
//! `pedalboard`, from PyPI; `.ci/run` installs it): invert, gain, hard clipping, tanh
//! distortion, bitcrush and the gate as an expander (JUCE's NoiseGate) at several settings, each within 1e-4 of Pedalboard on noise and
//! sines. Sluice's side is `sluice export --effect` to 32-bit float WAV (the wasm module, as a
//! user runs it); Pedalboard's is the same input through the plugin
//! (`tests/peers/pedalboard_diff.py`).

mod common;

use common::{sluice, tool};
use std::path::{Path, PathBuf};

/// `python3` that imports numpy and pedalboard, or `None` (skipped unless
/// SLUICE_REQUIRE_TOOLS=1).
fn python() -> Option<PathBuf> {
    let py = tool("python3")?;
    let ok = std::process::Command::new(&py)
        .args(["-c", "import numpy, pedalboard"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var("SLUICE_REQUIRE_TOOLS").as_deref() != Ok("1"),
            "python3 with numpy and pedalboard is required (SLUICE_REQUIRE_TOOLS=1): pip install numpy pedalboard"
        );
        eprintln!("SKIPPED: python3 lacks numpy or pedalboard (pip install numpy pedalboard)");
        return None;
    }
    Some(py)
}

/// Two seconds of 48 kHz stereo as 32-bit float: uniform noise at 0.9 on the left; on the right
/// a sum of sines (110 Hz at 0.5, 1 kHz at 0.3, 7.5 kHz at 0.15), so both kinds of material
/// pass every setting.
fn material(path: &Path) {
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: 48_000,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    for i in 0..96_000 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let noise = ((state >> 40) as f64 / (1u64 << 24) as f64 * 2.0 - 1.0) * 0.9;
        let t = f64::from(i) / 48_000.0;
        let tau = std::f64::consts::TAU;
        let sines = 0.5 * (tau * 110.0 * t).sin()
            + 0.3 * (tau * 1_000.0 * t).sin()
            + 0.15 * (tau * 7_500.0 * t).sin();
        w.write_sample(noise as f32).unwrap();
        w.write_sample(sines as f32).unwrap();
    }
    w.finalize().unwrap();
}

#[test]
fn effects_with_one_definition_equal_pedalboards() {
    let Some(py) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.wav");
    material(&input);
    // (sluice --effect, Pedalboard plugin, its parameters)
    let cases: &[(&str, &str, serde_json::Value)] = &[
        ("invert", "Invert", serde_json::json!({})),
        (
            "gain:gain_db=-6,smoothing_ms=0",
            "Gain",
            serde_json::json!({"gain_db": -6.0}),
        ),
        (
            "gain:gain_db=9.5,smoothing_ms=0",
            "Gain",
            serde_json::json!({"gain_db": 9.5}),
        ),
        (
            "clip:threshold_db=-6",
            "Clipping",
            serde_json::json!({"threshold_db": -6.0}),
        ),
        (
            "clip:threshold_db=-20",
            "Clipping",
            serde_json::json!({"threshold_db": -20.0}),
        ),
        (
            "distortion:drive_db=25",
            "Distortion",
            serde_json::json!({"drive_db": 25.0}),
        ),
        (
            "distortion:drive_db=6",
            "Distortion",
            serde_json::json!({"drive_db": 6.0}),
        ),
        (
            "bitcrush:bit_depth=8",
            "Bitcrush",
            serde_json::json!({"bit_depth": 8.0}),
        ),
        (
            "bitcrush:bit_depth=3.5",
            "Bitcrush",
            serde_json::json!({"bit_depth": 3.5}),
        ),
        (
            "bitcrush:bit_depth=16",
            "Bitcrush",
            serde_json::json!({"bit_depth": 16.0}),
        ),
        // The gate as an expander, each channel on its own, no floor: JUCE's NoiseGate.
        (
            "gate:mode=expander,link=independent,range_db=-96,threshold_db=-3,ratio=4,attack_ms=1,release_ms=100",
            "NoiseGate",
            serde_json::json!({"threshold_db": -3.0, "ratio": 4.0, "attack_ms": 1.0, "release_ms": 100.0}),
        ),
        (
            "gate:mode=expander,link=independent,range_db=-96,threshold_db=-12,ratio=10,attack_ms=5,release_ms=40",
            "NoiseGate",
            serde_json::json!({"threshold_db": -12.0, "ratio": 10.0, "attack_ms": 5.0, "release_ms": 40.0}),
        ),
    ];
    let mut list = Vec::new();
    for (i, (effect, plugin, params)) in cases.iter().enumerate() {
        let out = dir.path().join(format!("out-{i}.wav"));
        common::succeed(
            sluice()
                .arg("export")
                .arg(&input)
                .arg("-o")
                .arg(&out)
                .args(["--bit-depth", "32f", "--effect", effect]),
        );
        list.push(serde_json::json!({"output": out, "plugin": plugin, "params": params}));
    }
    let cases_file = dir.path().join("cases.json");
    std::fs::write(&cases_file, serde_json::to_vec(&list).unwrap()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/pedalboard_diff.py");
    let done = common::succeed(
        std::process::Command::new(py)
            .arg(script)
            .arg(&input)
            .arg(&cases_file),
    );
    let text = String::from_utf8(done.stdout).unwrap();
    let answers: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(answers.len(), cases.len(), "{text}");
    for ((effect, plugin, params), a) in cases.iter().zip(&answers) {
        assert!(a.get("error").is_none(), "{effect}: {a}");
        let (diff, changed) = (
            a["max_diff"].as_f64().unwrap(),
            a["changed"].as_f64().unwrap(),
        );
        println!(
            "{effect:<34} vs {plugin}({params}): max |sluice - pedalboard| {diff:.2e} (the plugin moved samples by up to {changed:.3})"
        );
        assert!(
            changed > 0.0,
            "{effect}: Pedalboard's {plugin} changed nothing"
        );
        assert!(
            diff <= 1e-4,
            "{effect}: {diff:e} from Pedalboard's {plugin}"
        );
    }
}
