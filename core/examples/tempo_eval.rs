//! The tempo estimator's tuning loop on the tempo bench's material (host/benches/tempo.py):
//! each file of `target/tempo-material/SET/truth.tsv` is decoded once (by ffmpeg, to 44.1 kHz
//! mono float) and its two onset envelopes kept in `target/tempo-env/SET/`; every later run
//! re-estimates from those in well under a second, so a change to the estimate's decisions is
//! measured on every set at once.
//!
//! ```text
//! host/benches/tempo-material.sh                       # the material
//! cargo run -p sluice-core --example tempo_eval        # envelopes (first run), readings
//! cargo run -p sluice-core --example tempo_eval -- -v  # every file, not only the misses
//! cargo run -p sluice-core --example tempo_eval -- --judge  # the held-out set too
//! ```
//!
//! The held-out set ([`JUDGED`]) is left out unless `--judge` is given: tuning must not look at
//! it. The cache holds envelopes, not readings: delete `target/tempo-env` after changing how
//! the envelopes are made (`TempoAnalyzer::feed`), not after changing the estimate.
//!
//! It prints, per set, the hits within 4 % of the truth and each miss with its ratio to the
//! truth and the runner-up. The bench itself (`tempo.py`) runs the real `sluice analyze` beside
//! librosa and is what the figures in docs/BENCHMARKS.md come from.

use std::fs;
use std::path::{Path, PathBuf};

#[path = "../tests/speech_mix/mod.rs"]
mod speech_mix;

use sluice_core::analysis::tempo::{DEFAULT_RANGE, TempoAnalyzer, estimate_envelopes};

const RATE: u32 = 44_100;
/// Held-out sets seen only with `--judge`, never used for tuning.
const JUDGED: &[&str] = &["freedoom", "simutrans", "opengameart"];

fn main() {
    let verbose = std::env::args().any(|a| a == "-v");
    let judge = std::env::args().any(|a| a == "--judge");

    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let material = root.join("target/tempo-material");
    let cache = root.join("target/tempo-env");
    let mut sets: Vec<PathBuf> = fs::read_dir(&material)
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e} (run host/benches/tempo-material.sh)",
                material.display()
            )
        })
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("truth.tsv").exists())
        .collect();
    sets.sort();
    let (mut all_hits, mut all_n) = (0, 0);
    for set in sets {
        let name = set.file_name().unwrap().to_string_lossy().to_string();
        if JUDGED.contains(&name.as_str()) && !judge {
            continue;
        }
        let tsv = fs::read_to_string(set.join("truth.tsv")).unwrap();
        let (mut hits, mut n) = (0, 0);
        for line in tsv.lines().filter(|l| !l.trim().is_empty()) {
            let mut f = line.split('\t');
            let (file, truth) = (f.next().unwrap(), f.next().unwrap().parse::<f64>().unwrap());
            let Some((env, low, fr)) = envelopes(&set.join(file), &cache.join(&name).join(file))
            else {
                continue;
            };
            let t = estimate_envelopes(&env, &low, fr, DEFAULT_RANGE);
            let bpm = t.as_ref().map_or(0.0, |t| t.bpm);
            let ok = (bpm / truth - 1.0).abs() <= 0.04;
            n += 1;
            hits += usize::from(ok);
            if verbose || !ok {
                println!(
                    "  {:3} {:44} {truth:7.2} {bpm:7.2} x{:5.3} conf {:.2} alt {:?}",
                    if ok { "ok" } else { "--" },
                    &file[..file.len().min(44)],
                    bpm / truth,
                    t.as_ref().map_or(0.0, |t| t.confidence),
                    t.as_ref()
                        .and_then(|t| t.alternative_bpm)
                        .map(|b| (b * 10.0).round() / 10.0),
                );
            }
        }
        println!("{name}: {hits}/{n}");
        all_hits += hits;
        all_n += n;
    }
    println!("all: {all_hits}/{all_n}");
}

/// The file's envelopes, from the cache or decoded and kept there (written whole and renamed
/// into place: a killed run leaves no short file; one that does not read is decoded again).
fn envelopes(path: &Path, cache: &Path) -> Option<(Vec<f32>, Vec<f32>, f64)> {
    if let Some(kept) = fs::read(cache).ok().and_then(|b| cached(&b)) {
        return Some(kept);
    }
    let Some(x) = speech_mix::ffmpeg_f32(
        Path::new("ffmpeg"),
        &["-i", &path.to_string_lossy()],
        None,
        RATE,
    ) else {
        eprintln!("{}: ffmpeg failed", path.display());
        return None;
    };
    let mut a = TempoAnalyzer::new(RATE);
    a.feed(&x);
    let (env, low, fr) = a.finish_envelopes();
    assert_eq!(env.len(), low.len());
    fs::create_dir_all(cache.parent().unwrap()).unwrap();
    let mut out = Vec::with_capacity(16 + 8 * env.len());
    out.extend_from_slice(&fr.to_le_bytes());
    out.extend_from_slice(&(env.len() as u64).to_le_bytes());
    for v in env.iter().chain(&low) {
        out.extend_from_slice(&v.to_le_bytes());
    }
    let part = cache.with_extension("part");
    fs::write(&part, &out).unwrap();
    fs::rename(&part, cache).unwrap();
    Some((env, low, fr))
}

/// A cache file's envelopes: the frame rate, the length, both envelopes; `None` if it is not
/// whole.
fn cached(b: &[u8]) -> Option<(Vec<f32>, Vec<f32>, f64)> {
    let fr = f64::from_le_bytes(b.get(0..8)?.try_into().ok()?);
    let n = u64::from_le_bytes(b.get(8..16)?.try_into().ok()?) as usize;
    if b.len() != 16 + 8 * n {
        return None;
    }
    let f = |i: usize| f32::from_le_bytes(b[16 + 4 * i..20 + 4 * i].try_into().unwrap());
    Some(((0..n).map(f).collect(), (n..2 * n).map(f).collect(), fr))
}
