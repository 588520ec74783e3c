//! What Sluice Meter's audio thread costs: the meter engine (every meter on: loudness, LRA, true
//! peak, levels, stereo, spectrum) plus the recorder's audio-thread side while recording, per
//! second of 48 kHz stereo, at 64-, 128- and 512-frame blocks, as a percentage of one core.
//! Beside it, in the same run, the `ebur128` crate (libebur128's algorithm) doing loudness
//! (M, S, I, LRA) and true peak on the same blocks, which is what a plain loudness plugin does.
//!
//! A third column runs the same with reference A/B active: a 44.1 kHz reference (decoded and
//! resampled beforehand, as the plugin's loader thread does) played over the output,
//! level-matched, and its loudness measured (the reference's M, S and I) with the engine's
//! `LiveLoudness`, as `process` does. Every figure is the fastest of 3 runs, wall time with the
//! thread's CPU time beside it.
//!
//! `cargo bench -p sluice-plugin --bench process_cost [-- --seconds N]`. Exits non-zero when
//! the engine costs more than 0.5 % of a core at any block size, or with A/B active more than
//! 1 % at 128 frames.

use ebur128::{EbuR128, Mode};
use sluice_plugin::engine::{Engine, LiveLoudness};
use sluice_plugin::params::ExportSettings;
use sluice_plugin::record::{self, TakeConfig, TransportInfo};
use sluice_plugin::reference::{AbControl, ReferenceSettings};
use sluice_plugin::shared::MeterShared;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

const RATE: u32 = 48_000;
const TARGET_PERCENT: f64 = 0.5;
/// With reference A/B active, at 128 frames (issue 26).
const AB_TARGET_PERCENT: f64 = 1.0;

/// This thread's CPU time.
fn thread_cpu() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec to write to.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// A 44.1 kHz stereo reference file of `seconds` in `dir`.
fn reference_file(dir: &std::path::Path, seconds: usize) -> String {
    std::fs::create_dir_all(dir).expect("bench folder");
    let path = dir.join("reference.wav");
    let sig = sluice_core::signal::programme(44_100, 2, 44_100 * seconds, 9);
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: 44_100,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let mut w = hound::WavWriter::create(&path, spec).expect("WAV");
    for i in 0..sig[0].len() {
        for p in &sig {
            w.write_sample(p[i]).expect("written");
        }
    }
    w.finalize().expect("finished");
    path.display().to_string()
}

/// One run of the engine and the recorder over `sig` in `block`s, with the reference in
/// `ab` playing over the output when given. Returns (wall, CPU) seconds.
fn run(sig: &[Vec<f32>], block: usize, dir: &std::path::Path, ab: Option<&str>) -> (f64, f64) {
    let shared = Arc::new(MeterShared::default());
    let mut e = Engine::new(RATE, &[1.0, 1.0], block, shared.clone());
    let mut player = ab.map(|path| {
        let mut settings = ReferenceSettings::default();
        settings.paths[0] = path.to_string();
        shared.references.reload_all(&settings, RATE, 2);
        let t = Instant::now();
        while shared.references.loading() {
            assert!(
                t.elapsed() < Duration::from_secs(120),
                "reference not loaded"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(shared.references.statuses()[0].state, "ready");
        shared.references.player().expect("player")
    });
    let (mut rec, writer) = record::start(TakeConfig {
        sample_rate: RATE,
        channels: 2,
        settings: Arc::new(RwLock::new(ExportSettings {
            folder: dir.to_string_lossy().into_owned(),
            format: sluice_plugin::params::TakeFormat::Wav32Float,
            ..ExportSettings::default()
        })),
        target: Arc::new(|| (-14.0, -1.0)),
        shared: shared.clone(),
        offline: false,
    })
    .expect("writer thread");
    let mut out = vec![vec![0f32; block]; 2];
    // As the plugin does while Ref is on: what is heard is measured.
    let mut heard = ab.map(|_| LiveLoudness::new(RATE, &[1.0, 1.0], block));
    let t0 = Instant::now();
    let c0 = thread_cpu();
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
        if let Some(p) = &mut player {
            let (l, r) = out.split_at_mut(1);
            l[0][..n].copy_from_slice(planes[0]);
            r[0][..n].copy_from_slice(planes[1]);
            let mut o: [&mut [f32]; 2] = [&mut l[0][..n], &mut r[0][..n]];
            p.process(
                &mut o,
                AbControl {
                    listen: true,
                    slot: 0,
                    sync: true,
                    mix_lufs: shared.integrated.load(Ordering::Relaxed),
                    target_lufs: -14.0,
                    playing: true,
                    position: Some(at as i64),
                },
            );
            if let Some(h) = &mut heard {
                h.process(&[&o[0][..], &o[1][..]]);
                std::hint::black_box(h.readings());
            }
            std::hint::black_box(&o);
        }
        at += n;
    }
    let wall = t0.elapsed().as_secs_f64();
    let cpu = thread_cpu() - c0;
    rec.stop();
    writer.finish();
    (wall, cpu)
}

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
        "{:>6} | {:>24} | {:>24} | {:>22} | {:>6}",
        "block", "Sluice Meter (all on)", "with A/B playing", "ebur128 M/S/I/LRA/TP", "ratio"
    );
    println!(
        "{:>6} | {:>24} | {:>24} | {:>22} |",
        "", "wall / CPU", "wall / CPU", "wall"
    );
    let reference = reference_file(&dir, 30);
    let mut worst: f64 = 0.0;
    let mut worst_ab_128: f64 = 0.0;
    for block in [64usize, 128, 512] {
        let best = |ab: Option<&str>| {
            (0..3)
                .map(|_| run(&sig, block, &dir, ab))
                .fold((f64::INFINITY, f64::INFINITY), |a, b| {
                    (a.0.min(b.0), a.1.min(b.1))
                })
        };
        let ours = best(None);
        let with_ab = best(Some(&reference));
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
        worst = worst.max(pct(ours.0));
        if block == 128 {
            worst_ab_128 = pct(with_ab.0);
        }
        println!(
            "{block:>6} | {:>9.3} % / {:>8.3} % | {:>9.3} % / {:>8.3} % | {:>20.3} % | {:>5.2}×",
            pct(ours.0),
            pct(ours.1),
            pct(with_ab.0),
            pct(with_ab.1),
            pct(peer),
            ours.0 / peer
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    let mut failed = false;
    if worst > TARGET_PERCENT {
        println!("FAIL: {worst:.3} % of a core is over the {TARGET_PERCENT} % target");
        failed = true;
    }
    if worst_ab_128 > AB_TARGET_PERCENT {
        println!(
            "FAIL: with A/B playing, {worst_ab_128:.3} % of a core at 128 frames is over the \
             {AB_TARGET_PERCENT} % target"
        );
        failed = true;
    }
    if failed {
        std::process::exit(1);
    }
    println!(
        "ok: at most {worst:.3} % of one core (target {TARGET_PERCENT} %); with A/B playing \
         {worst_ab_128:.3} % at 128 frames (target {AB_TARGET_PERCENT} %)"
    );
}
