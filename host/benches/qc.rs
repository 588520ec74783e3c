//! Delivery QC against the full analysis, in the same run:
//!
//! ```sh
//! cargo bench -p sluice-host --bench qc                  # 60-minute files
//! cargo bench -p sluice-host --bench qc -- --minutes 10
//! host/benches/recordings.sh qc                          # and real recordings
//! ```
//!
//! On each material (the analyze bench's 48 kHz stereo 16-bit WAVs: programme, dense, acoustic,
//! and Wesnoth's recordings with `recordings.sh`), whole processes in alternating pairs seconds
//! apart (this machine's speed drifts): `sluice analyze --json FILE` (the full analysis) and
//! `sluice qc FILE --spec SPEC --json --csv DIR --html DIR` with the dearest specification —
//! a speech-gated loudness rule (the speech detector runs), programme loudness, LRA, maximum
//! short-term, true peak (its per-step history) and the CSV and HTML reports written. The
//! median of the pairs' ratios by CPU time and by wall time per material; the worst against
//! the target (QC at most 1.3× the full analysis).

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const SPEC: &str = r#"id = "bench"
name = "QC bench: every costly figure"
source = "host/benches/qc.rs"

[[rule]]
measure = "integrated_lufs"
gating = "speech"
revision = 1
max = 0.0
severity = "warn"

[[rule]]
measure = "integrated_lufs"
max = 0.0

[[rule]]
measure = "loudness_range_lu"
max = 100.0

[[rule]]
measure = "max_short_term_lufs"
max = 10.0

[[rule]]
measure = "true_peak_dbtp"
max = 20.0

[[rule]]
measure = "leading_silence_s"
max = 10.0
"#;

const PAIRS: usize = 5;
const TARGET: f64 = 1.3;

fn main() -> ExitCode {
    exit_code(run())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn run() -> Res<bool> {
    if let Some(written) = material_child() {
        return written.map(|()| true);
    }
    let minutes: usize = arg_value("--minutes").map_or(Ok(60), |v| v.parse())?;
    // The analyze bench's folder: its material files are reused when present.
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("analyze-bench");
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("qc-bench");
    std::fs::create_dir_all(&dir)?;
    std::fs::create_dir_all(&out)?;
    let spec = out.join("bench.toml");
    std::fs::write(&spec, SPEC)?;
    let sluice = PathBuf::from(env!("CARGO_BIN_EXE_sluice"));
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("sluice qc bench: {minutes}-minute 48 kHz stereo 16-bit WAVs, {cores} cores");
    let spec_s = spec.display().to_string();
    let out_s = out.display().to_string();
    let qc_args = [
        "qc", "{}", "--spec", &spec_s, "--json", "--csv", &out_s, "--html", &out_s,
    ];
    let analyze_args = ["analyze", "--json", "{}"];
    println!(
        "\n{:<12} {:>16} {:>16} {:>10} {:>10}",
        "material", "analyze wall/CPU", "qc wall/CPU", "CPU ratio", "wall ratio"
    );
    let mut worst = (String::new(), 0.0f64, 0.0f64);
    for kind in materials() {
        let file = material_wav(&dir, kind, minutes)?;
        let (mut cpu, mut wall) = (Vec::new(), Vec::new());
        let (mut a_last, mut q_last) = (None, None);
        for p in 0..PAIRS {
            let a = || time_process(&sluice, &analyze_args, &file);
            let q = || time_process(&sluice, &qc_args, &file);
            let (a, q) = if p % 2 == 0 {
                let a = a()?;
                (a, q()?)
            } else {
                let q = q()?;
                (a()?, q)
            };
            cpu.push(q.cpu / a.cpu);
            wall.push(q.wall / a.wall);
            a_last = Some(a);
            q_last = Some(q);
        }
        let (a, q) = (a_last.unwrap(), q_last.unwrap());
        let (c, w) = (median(cpu), median(wall));
        println!(
            "{kind:<12} {:>7.2}/{:<7.2}s {:>7.2}/{:<7.2}s {c:>9.2}× {w:>9.2}×",
            a.wall, a.cpu, q.wall, q.cpu
        );
        if c.max(w) > worst.1.max(worst.2) {
            worst = (kind.to_string(), c, w);
        }
        check_report(&out, &file)?;
    }
    let pass = worst.1 <= TARGET && worst.2 <= TARGET;
    println!(
        "\nworst: {} at {:.2}× the full analysis by CPU, {:.2}× by wall (target ≤ {TARGET}×): {}",
        worst.0,
        worst.1,
        worst.2,
        verdict(pass)
    );
    Ok(pass)
}

/// The reports of the last QC run of `file` exist (the bench times what a user gets).
fn check_report(out: &Path, file: &Path) -> Res<()> {
    let name = file
        .file_name()
        .ok_or("no name")?
        .to_string_lossy()
        .to_string();
    for ext in ["csv", "html"] {
        let p = out.join(format!("{name}.qc.{ext}"));
        if !p.is_file() {
            return Err(format!("{} was not written", p.display()).into());
        }
    }
    Ok(())
}
