//! Does an open editor cost the audio thread anything?
//!
//! Sluice Meter's CLAP bundle in the GUI test host (`sluice_tests::clap_gui`), 48 kHz stereo
//! pink-ish noise in 512-frame blocks fed in real time (as a sound card asks for them), rounds
//! with the editor closed and open in turn. For each round: the CPU time the audio thread spent
//! inside `process` per second of audio. Prints the medians and their ratio, and fails when the
//! open editor's median is more than 15 % (plus 0.2 ms/s of timer noise) above the closed one.
//!
//! `cargo bench -p sluice-tests --bench editor_cost` after `cargo xtask bundle sluice-plugin`
//! (add `--release` to both for release numbers). Needs an X display (`$DISPLAY`, or Xvfb,
//! started here when `$DISPLAY` is unset). Options: `--seconds N` per round (default 4),
//! `--rounds N` per state (default 3).

use sluice_tests::bundles;
use sluice_tests::clap_gui::ClapGuiHost;
use sluice_tests::xdisplay::{self, ParentWindow};
use std::process::ExitCode;
use std::time::Duration;

fn arg(name: &str, default: f64) -> f64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Deterministic noise (LCG), -20 dBFS-ish, both channels different.
fn noise(rate: f64, seconds: f64) -> Vec<Vec<f32>> {
    let n = (rate * seconds) as usize;
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    (0..2)
        .map(|_| {
            let mut y = 0f32;
            (0..n)
                .map(|_| {
                    state = state
                        .wrapping_mul(6_364_136_223_846_793_005)
                        .wrapping_add(1_442_695_040_888_963_407);
                    let w = ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0;
                    y = 0.9 * y + 0.1 * w;
                    y * 0.5
                })
                .collect()
        })
        .collect()
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> ExitCode {
    if std::env::args().any(|a| a == "--list") {
        // `cargo bench -- --list` / `cargo test --benches` probing: nothing to list.
        return ExitCode::SUCCESS;
    }
    let seconds = arg("--seconds", 4.0).max(1.0);
    let rounds = arg("--rounds", 3.0).max(1.0) as usize;
    let x = match xdisplay::server() {
        Ok(x) => x,
        Err(e) => {
            eprintln!("editor_cost: no X display: {e:#}");
            return if std::env::var("SLUICE_REQUIRE_TOOLS").as_deref() == Ok("1") {
                ExitCode::FAILURE
            } else {
                eprintln!("SKIPPED (SLUICE_REQUIRE_TOOLS=1 makes this fail)");
                ExitCode::SUCCESS
            };
        }
    };
    let run = || -> anyhow::Result<(Vec<f64>, Vec<f64>)> {
        let rate = 48_000.0;
        let parent = ParentWindow::new(&x.display, 1000, 700)?;
        let mut host = ClapGuiHost::load(&bundles::clap()?, bundles::CLAP_ID)?;
        host.activate(rate, 512)?;
        let audio = noise(rate, seconds);
        // Warm up the engine (and the first window) before measuring.
        host.process(&audio, 512, false)?;
        host.open_editor(parent.id, None)?;
        host.pump_for(Duration::from_millis(500));
        host.close_editor();
        let (mut closed, mut open) = (Vec::new(), Vec::new());
        for round in 0..rounds {
            for editor in [false, true] {
                if editor {
                    host.open_editor(parent.id, None)?;
                    host.pump_for(Duration::from_millis(300));
                }
                let cost = host.process(&audio, 512, true)?;
                anyhow::ensure!(cost.mismatched_samples == 0, "pass-through broken");
                let frames_drawn = host.meters()?["editor"]["frames"].as_u64().unwrap_or(0);
                if editor {
                    host.close_editor();
                }
                let ms_per_s = 1000.0 * cost.process_cpu_seconds / cost.audio_seconds;
                println!(
                    "round {round} editor {:6}: {ms_per_s:7.3} ms CPU per s of audio \
                     ({:.3} % of a core), worst block {:.3} ms, {} blocks, frames drawn so far {frames_drawn}",
                    if editor { "open" } else { "closed" },
                    ms_per_s / 10.0,
                    cost.worst_block_seconds * 1000.0,
                    cost.blocks,
                );
                if editor { &mut open } else { &mut closed }.push(ms_per_s);
            }
        }
        Ok((closed, open))
    };
    let (mut closed, mut open) = match run() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("editor_cost: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let (c, o) = (median(&mut closed), median(&mut open));
    let ratio = o / c;
    println!(
        "editor_cost: audio thread {c:.3} ms/s with the editor closed, {o:.3} ms/s open \
         (medians of {rounds} rounds of {seconds} s): ratio open/closed {ratio:.3}"
    );
    if o > c * 1.15 + 0.2 {
        eprintln!("editor_cost: FAILED: the open editor costs the audio thread more");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
