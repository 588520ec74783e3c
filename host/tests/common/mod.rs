//! Helpers shared by the host's integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The `sluice` binary under test.
pub fn sluice() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
}

/// A fixture of the core's test suite.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../core/tests/fixtures")
        .join(name)
}

/// An external tool on `PATH` (or in `/usr/bin`). Missing, it is `None` and the check is
/// skipped with a notice, unless `SLUICE_REQUIRE_TOOLS=1`, when the test fails.
pub fn tool(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain([PathBuf::from("/usr/bin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file());
    if found.is_none() {
        assert!(
            std::env::var("SLUICE_REQUIRE_TOOLS").as_deref() != Ok("1"),
            "{name} is required (SLUICE_REQUIRE_TOOLS=1) but was not found"
        );
        eprintln!("SKIPPED: {name} not found (SLUICE_REQUIRE_TOOLS=1 makes this fail)");
    }
    found
}

/// A new root under `dir` holding the repository's example pipelines.
pub fn root_with_examples(dir: &Path) -> PathBuf {
    let root = dir.join("root");
    std::fs::create_dir_all(root.join("pipelines")).unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../pipelines");
    for e in std::fs::read_dir(repo).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "toml") {
            std::fs::copy(&p, root.join("pipelines").join(p.file_name().unwrap())).unwrap();
        }
    }
    root
}

/// Planar samples written as an integer WAV of `bits` (16 or 24).
pub fn write_wav(path: &Path, planes: &[Vec<f32>], rate: u32, bits: u16) {
    let spec = hound::WavSpec {
        channels: planes.len() as u16,
        sample_rate: rate,
        bits_per_sample: bits,
        sample_format: hound::SampleFormat::Int,
    };
    let full = ((1i64 << (bits - 1)) - 1) as f32;
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for i in 0..planes[0].len() {
        for p in planes {
            w.write_sample((p[i].clamp(-1.0, 1.0) * full) as i32)
                .unwrap();
        }
    }
    w.finalize().unwrap();
}

/// Integrated loudness (LUFS) and true peak (dBTP) of a file.
pub fn loudness(path: &Path) -> (f64, f64) {
    let opts = sluice_core::analysis::AnalysisOptions {
        sections: vec![sluice_core::analysis::Section::Loudness],
        ..Default::default()
    };
    let l = sluice_core::analysis::analyze(path, &opts, &mut |_| {})
        .unwrap()
        .loudness
        .unwrap();
    (
        l.summary.integrated_lufs.unwrap(),
        l.true_peak_dbtp.unwrap(),
    )
}

/// BLAKE3 of a file's content, hex.
pub fn blake3_hex(path: &Path) -> String {
    blake3::hash(&std::fs::read(path).unwrap())
        .to_hex()
        .to_string()
}
