//! What Sluice Meter's audio thread costs: the meter engine (every meter on: loudness, LRA, true
//! peak, levels, stereo, spectrum) plus the recorder's audio-thread side while recording, per
//! second of 48 kHz stereo, at 64-, 128- and 512-frame blocks, as a percentage of one core.
//! Beside it, in the same run, the `ebur128` crate (libebur128's algorithm) doing loudness
//! (M, S, I, LRA) and true peak on the same blocks, which is what a plain loudness plugin does.
//!
//! `cargo bench -p sluice-plugin --bench process_cost [-- --seconds N]`. Exits non-zero when
//! the engine costs more than 0.5 % of a core at any block size.

use ebur128::{EbuR128, Mode};
use sluice_plugin::engine::Engine;
use sluice_plugin::params::ExportSettings;
use sluice_plugin::record::{self, TakeConfig, TransportInfo};
use sluice_plugin::shared::MeterShared;
use std::sync::{Arc, RwLock};
use std::time::Instant;

const RATE: u32 = 48_000;
const TARGET_PERCENT: f64 = 0.5;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let seconds: usize = args
        .iter()
        .position(|a| a == "--seconds")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(120);
    let sig = sluice_core::signal::programme(RATE, 2, RATE as usize * seconds, 42);
    let dir = std::env::temp_dir().join(format!("sluice-bench-takes-{}", std::process::id()));
    println!(
        "{seconds} s of 48 kHz stereo programme; fastest of 3 runs; % of one core = time / audio time"
    );
    println!(
        "{:>6} | {:>22} | {:>22} | {:>6}",
        "block", "Sluice Meter (all on)", "ebur128 M/S/I/LRA/TP", "ratio"
    );
    let mut worst: f64 = 0.0;
    for block in [64usize, 128, 512] {
        let ours = (0..3)
            .map(|_| {
                let shared = Arc::new(MeterShared::default());
                let mut e = Engine::new(RATE, &[1.0, 1.0], block, shared.clone());
                let (mut rec, writer) = record::start(TakeConfig {
                    sample_rate: RATE,
                    channels: 2,
                    settings: Arc::new(RwLock::new(ExportSettings {
                        folder: dir.to_string_lossy().into_owned(),
                        format: sluice_plugin::params::TakeFormat::Wav32Float,
                        ..ExportSettings::default()
                    })),
                    target: Arc::new(|| (-14.0, -1.0)),
                    shared,
                })
                .expect("writer thread");
                let t0 = Instant::now();
                let mut at = 0;
                while at < sig[0].len() {
                    let n = block.min(sig[0].len() - at);
                    let planes = [&sig[0][at..at + n], &sig[1][at..at + n]];
                    e.process(&planes);
                    rec.process(
                        &planes,
                        true,
                        TransportInfo {
                            has_transport: true,
                            playing: true,
                            position: Some(at as i64),
                        },
                    );
                    at += n;
                }
                let t = t0.elapsed().as_secs_f64();
                rec.stop();
                writer.finish();
                t
            })
            .fold(f64::INFINITY, f64::min);
        let peer = (0..3)
            .map(|_| {
                let mut m = EbuR128::new(
                    2,
                    RATE,
                    Mode::M | Mode::S | Mode::I | Mode::LRA | Mode::TRUE_PEAK,
                )
                .unwrap();
                let t0 = Instant::now();
                let mut at = 0;
                while at < sig[0].len() {
                    let n = block.min(sig[0].len() - at);
                    m.add_frames_planar_f32(&[&sig[0][at..at + n], &sig[1][at..at + n]])
                        .unwrap();
                    at += n;
                    // Read the figures every 100 ms, as Sluice Meter publishes them.
                    if at / 4_800 != (at - n) / 4_800 {
                        let _ =
                            std::hint::black_box((m.loudness_momentary(), m.loudness_shortterm()));
                    }
                }
                t0.elapsed().as_secs_f64()
            })
            .fold(f64::INFINITY, f64::min);
        let pct = |t: f64| 100.0 * t / seconds as f64;
        worst = worst.max(pct(ours));
        println!(
            "{block:>6} | {:>20.3} % | {:>20.3} % | {:>5.2}×",
            pct(ours),
            pct(peer),
            ours / peer
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    if worst > TARGET_PERCENT {
        println!("FAIL: {worst:.3} % of a core is over the {TARGET_PERCENT} % target");
        std::process::exit(1);
    }
    println!("ok: at most {worst:.3} % of one core (target {TARGET_PERCENT} %)");
}
