//! Trains the speech detector's classifier and writes its coefficients
//! (core/src/analysis/speech_model.rs).
//!
//!     cargo run --release -p sluice-core --example speech_train -- \
//!         --music /usr/share/games/wesnoth/1.16/data/core/music \
//!         --music /usr/share/games/warzone2100/music \
//!         --music /usr/share/games/supertux2/music \
//!         --music /usr/share/games/hedgewars/Data/Music \
//!         --music /usr/share/games/xmoto/Textures/Musics \
//!         --music /usr/share/games/fretsonfire/data/songs \
//!         --mixes 320 --speechless 0.3 --iterations 2000 --pieces 120 [--write | --out FILE]
//!
//! Needs espeak-ng, ffmpeg and the music, from Debian's packages (each one's licences in its
//! /usr/share/doc/PACKAGE/copyright; none of it enters the repository): wesnoth-1.16-music
//! (orchestral), warzone2100-music (electronic and industrial), supertux-data (chiptune and
//! electronic game music), hedgewars-data (assorted styles), xmoto-data, and
//! fretsonfire-songs-muldjord and -sectoid (rock and metal, guitar stems and the rest). The material (core/tests/speech_mix): espeak-ng reading the
//! training sentences in the training voices over the even-numbered files of each `--music`
//! folder (each folder weighs the same) and over white, pink, brown and hum noise or nothing,
//! at speech-to-bed ratios of 0–30 dB; 17 % of the mixes over a bed have no speech, or the
//! share `--speechless` gives (the shipped model: 30 %; the held-out mixes keep 17 %). It prints the accuracy on held-out mixes (the test's
//! voices, sentences and the odd-numbered files) and, with `--pieces SECONDS`, the share of
//! each held-out piece's steps (that many seconds of it) taken for speech, per folder; with
//! `--write` it replaces the model file. `--built-in` measures the shipped model instead of
//! training one.

#[path = "../tests/speech_mix/mod.rs"]
mod speech_mix;

use sluice_core::analysis::speech::{self, HIDDEN, Model, NF, StepFeatures};

use speech_mix::*;
use std::path::{Path, PathBuf};

/// The share of mixes (over a bed that is not silence) without speech, unless `--speechless`
/// gives another.
const SPEECHLESS: f64 = 0.17;

struct Set {
    x: Vec<[f32; NF]>,
    y: Vec<bool>,
    /// Per mix: its name and its range of rows.
    mixes: Vec<(String, std::ops::Range<usize>, Vec<StepFeatures>)>,
}

fn tool(name: &str) -> PathBuf {
    let p = PathBuf::from("/usr/bin").join(name);
    assert!(p.is_file(), "{name} is needed");
    p
}

/// `count` mixes of the training (or held-out) material.
fn make_set(
    folders: &[Vec<PathBuf>],
    train: bool,
    (count, speechless_share): (usize, f64),
    seed: u64,
) -> Set {
    let (es, ff) = (tool("espeak-ng"), tool("ffmpeg"));
    let mut rng = Rng(seed);
    // Each folder's half, so that every kind of music weighs the same.
    let halves: Vec<Vec<&PathBuf>> = folders
        .iter()
        .map(|songs| half(songs, train))
        .filter(|h| !h.is_empty())
        .collect();
    let (sentences, voices) = if train {
        (TRAIN_SENTENCES, TRAIN_VOICES)
    } else {
        (TEST_SENTENCES, TEST_VOICES)
    };
    let mut set = Set {
        x: Vec::new(),
        y: Vec::new(),
        mixes: Vec::new(),
    };
    let secs = 40.0;
    for i in 0..count {
        let rate = *rng.pick(&[44_100u32, 48_000]);
        let n = (secs * f64::from(rate)) as usize;
        let voice = *rng.pick(voices);
        let kind = rng.range(0.0, 1.0);
        let (bed, bed_name) = if kind < 0.55 && !halves.is_empty() {
            let folder = (rng.next() % halves.len() as u64) as usize;
            let f = *rng.pick(&halves[folder]);
            let len = duration(&ff, f).unwrap_or(60.0);
            let off = rng.range(0.0, (len - secs).max(0.0));
            let mut m = music(&ff, f, off, secs, rate).unwrap_or_default();
            m.resize(n, 0.0);
            (m, f.file_stem().unwrap().to_string_lossy().to_string())
        } else if kind < 0.88 {
            let k = *rng.pick(&[Noise::White, Noise::Pink, Noise::Brown, Noise::Hum]);
            (noise(k, n, rate, &mut rng), format!("{k:?}"))
        } else {
            (vec![0.0; n], "silence".to_string())
        };
        let silent_bed = bed_name == "silence";
        let speechless = !silent_bed && rng.range(0.0, 1.0) < speechless_share;
        let (stem, segs) = if speechless {
            (vec![0.0; n], Vec::new())
        } else {
            talk(&es, &ff, sentences, voice, secs, rate, &mut rng)
        };
        let ratio = *rng.pick(&[0.0, 5.0, 10.0, 15.0, 20.0, 30.0]);
        let level = rng.range(-28.0, -16.0);
        let (mixed, _) = if speechless {
            // The bed alone, at the level speech would have.
            let gain = lufs(&bed, rate).map_or(1.0, |l| 10f64.powf((level - l) / 20.0) as f32);
            (bed.iter().map(|v| v * gain).collect(), Vec::new())
        } else {
            mix(&stem, &bed, rate, level, ratio)
        };
        let f = speech::features(&mixed, rate);
        let t = truth(&segs, f.len());
        let start = set.x.len();
        set.x.extend(f.iter().map(|s| s.x));
        set.y.extend(&t);
        let name = format!(
            "{i:3} {voice} over {bed_name} at {}",
            if speechless {
                "no speech".to_string()
            } else {
                format!("{ratio} dB")
            }
        );
        eprintln!("{name}");
        set.mixes.push((name, start..set.x.len(), f));
    }
    set
}

/// The training (even) or held-out (odd) files of one folder.
fn half(songs: &[PathBuf], train: bool) -> Vec<&PathBuf> {
    songs
        .iter()
        .enumerate()
        .filter(|(i, _)| (i % 2 == 0) == train)
        .map(|(_, p)| p)
        .collect()
}

/// Whole held-out pieces (up to `secs` of each, from 10 s in): the share of their steps taken
/// for speech, per folder (mean and worst).
fn false_alarms(model: &Model, folders: &[(String, Vec<PathBuf>)], secs: f64) {
    let ff = tool("ffmpeg");
    let mut all = (0usize, 0usize);
    for (dir, songs) in folders {
        let pieces = half(songs, false);
        let shares: Vec<(f64, String)> = std::thread::scope(|s| {
            let chunks: Vec<Vec<&PathBuf>> = pieces
                .chunks(pieces.len().div_ceil(2).max(1))
                .map(|c| c.to_vec())
                .collect();
            let handles: Vec<_> = chunks
                .into_iter()
                .map(|chunk| {
                    let ff = &ff;
                    s.spawn(move || {
                        chunk
                            .iter()
                            .filter_map(|p| {
                                let x = music(ff, p, 10.0, secs, 44_100)?;
                                let f = speech::features(&x, 44_100);
                                let pr: Vec<f32> =
                                    f.iter().map(|s| model.probability(&s.x)).collect();
                                let d = speech::decide(&pr, &f);
                                let on = d.iter().filter(|&&v| v).count();
                                Some((on, d.len(), p.display().to_string()))
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_default())
                .map(|(on, n, name)| {
                    all.0 += on;
                    all.1 += n;
                    (on as f64 / n.max(1) as f64, name)
                })
                .collect()
        });
        let mean = shares.iter().map(|s| s.0).sum::<f64>() / shares.len().max(1) as f64;
        let worst = shares
            .iter()
            .cloned()
            .fold((0.0, String::new()), |a, b| if b.0 > a.0 { b } else { a });
        println!(
            "false alarms {dir}: {:.1} % mean over {} pieces, worst {:.1} % ({})",
            100.0 * mean,
            shares.len(),
            100.0 * worst.0,
            worst.1
        );
    }
    println!(
        "false alarms overall: {:.2} % of {} steps",
        100.0 * all.0 as f64 / all.1.max(1) as f64,
        all.1
    );
}

/// Full-batch Adam on the cross-entropy, with a little weight decay.
fn train(set: &Set, iterations: usize, seed: u64) -> Model {
    let n = set.x.len();
    let mut mean = [0.0f32; NF];
    let mut scale = [0.0f32; NF];
    for j in 0..NF {
        let m = set.x.iter().map(|x| f64::from(x[j])).sum::<f64>() / n as f64;
        let v = set
            .x
            .iter()
            .map(|x| (f64::from(x[j]) - m).powi(2))
            .sum::<f64>()
            / n as f64;
        mean[j] = m as f32;
        scale[j] = (v.sqrt() as f32).max(1e-6);
    }
    let z: Vec<[f32; NF]> = set
        .x
        .iter()
        .map(|x| std::array::from_fn(|j| (x[j] - mean[j]) / scale[j]))
        .collect();
    // Parameters in one vector: w1 (HIDDEN×NF), b1, w2, b2.
    let np = HIDDEN * NF + HIDDEN + HIDDEN + 1;
    let mut rng = Rng(seed);
    let mut p: Vec<f64> = (0..np)
        .map(|i| {
            if i < HIDDEN * NF {
                rng.gauss() * (1.0 / NF as f64).sqrt()
            } else if (HIDDEN * NF + HIDDEN..HIDDEN * NF + 2 * HIDDEN).contains(&i) {
                rng.gauss() * 0.3
            } else {
                0.0
            }
        })
        .collect();
    let (mut m1, mut m2) = (vec![0.0f64; np], vec![0.0f64; np]);
    let (lr, b1, b2, decay) = (0.01, 0.9, 0.999, 1e-4);
    // Speech and non-speech weigh the same.
    let pos = set.y.iter().filter(|&&y| y).count().max(1) as f64;
    let neg = (n as f64 - pos).max(1.0);
    let (wp, wn) = (n as f64 / (2.0 * pos), n as f64 / (2.0 * neg));
    for it in 1..=iterations {
        let mut g = vec![0.0f64; np];
        let mut loss = 0.0;
        let mut h = [0.0f64; HIDDEN];
        for (x, &y) in z.iter().zip(&set.y) {
            let mut out = p[np - 1];
            for k in 0..HIDDEN {
                let mut a = p[HIDDEN * NF + k];
                for j in 0..NF {
                    a += p[k * NF + j] * f64::from(x[j]);
                }
                h[k] = a.tanh();
                out += p[HIDDEN * NF + HIDDEN + k] * h[k];
            }
            let prob = 1.0 / (1.0 + (-out).exp());
            let (t, w) = if y { (1.0, wp) } else { (0.0, wn) };
            loss -= w * if y {
                prob.max(1e-12).ln()
            } else {
                (1.0 - prob).max(1e-12).ln()
            };
            let d = w * (prob - t);
            g[np - 1] += d;
            for k in 0..HIDDEN {
                g[HIDDEN * NF + HIDDEN + k] += d * h[k];
                let dh = d * p[HIDDEN * NF + HIDDEN + k] * (1.0 - h[k] * h[k]);
                g[HIDDEN * NF + k] += dh;
                for j in 0..NF {
                    g[k * NF + j] += dh * f64::from(x[j]);
                }
            }
        }
        for i in 0..np {
            let gi = g[i] / n as f64 + if i < HIDDEN * NF { decay * p[i] } else { 0.0 };
            m1[i] = b1 * m1[i] + (1.0 - b1) * gi;
            m2[i] = b2 * m2[i] + (1.0 - b2) * gi * gi;
            let mh = m1[i] / (1.0 - b1.powi(it as i32));
            let vh = m2[i] / (1.0 - b2.powi(it as i32));
            p[i] -= lr * mh / (vh.sqrt() + 1e-8);
        }
        if it % 250 == 0 {
            eprintln!("iteration {it}: loss {:.4}", loss / n as f64);
        }
    }
    Model {
        mean,
        scale,
        w1: std::array::from_fn(|k| std::array::from_fn(|j| p[k * NF + j] as f32)),
        b1: std::array::from_fn(|k| p[HIDDEN * NF + k] as f32),
        w2: std::array::from_fn(|k| p[HIDDEN * NF + HIDDEN + k] as f32),
        b2: p[np - 1] as f32,
    }
}

/// Step accuracy of `model` (after the decision rules) on each mix of `set`, and overall.
fn evaluate(model: &Model, set: &Set, label: &str) -> f64 {
    let (mut right, mut all) = (0usize, 0usize);
    for (name, rows, f) in &set.mixes {
        let p: Vec<f32> = f.iter().map(|s| model.probability(&s.x)).collect();
        let d = speech::decide(&p, f);
        let ok = d
            .iter()
            .zip(&set.y[rows.clone()])
            .filter(|(a, b)| a == b)
            .count();
        right += ok;
        all += rows.len();
        println!(
            "{label} {name}: {:.1} %",
            100.0 * ok as f64 / rows.len().max(1) as f64
        );
    }
    let acc = right as f64 / all.max(1) as f64;
    println!("{label}: {:.2} % of {all} steps", 100.0 * acc);
    acc
}

fn write_model(model: &Model, path: &Path) {
    let list = |v: &[f32]| {
        v.iter()
            .map(|x| format!("{x:e}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut s = format!(
        "//! The speech detector's coefficients, written by `core/examples/speech_train.rs`\n\
         //! (its comment has the command and the material): the standardisation of the {NF}\n\
         //! figures and the network's weights ({HIDDEN} hidden units).\n\n",
    );
    s += &format!(
        "pub(super) const MEAN: [f32; {NF}] = [{}];\n",
        list(&model.mean)
    );
    s += &format!(
        "pub(super) const SCALE: [f32; {NF}] = [{}];\n",
        list(&model.scale)
    );
    s += &format!("pub(super) const W1: [[f32; {NF}]; {HIDDEN}] = [\n");
    for row in &model.w1 {
        s += &format!("    [{}],\n", list(row));
    }
    s += "];\n";
    s += &format!(
        "pub(super) const B1: [f32; {HIDDEN}] = [{}];\n",
        list(&model.b1)
    );
    s += &format!(
        "pub(super) const W2: [f32; {HIDDEN}] = [{}];\n",
        list(&model.w2)
    );
    s += &format!("pub(super) const B2: f32 = {:e};\n", model.b2);
    std::fs::write(path, s).expect("write the model");
    // As `cargo fmt` keeps it.
    let _ = std::process::Command::new("rustfmt")
        .args(["--edition", "2024"])
        .arg(path)
        .status();
    eprintln!("wrote {}", path.display());
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let dirs: Vec<String> = args
        .windows(2)
        .filter(|w| w[0] == "--music")
        .map(|w| w[1].clone())
        .collect();
    let dirs = if dirs.is_empty() {
        vec!["/usr/share/games/wesnoth/1.16/data/core/music".to_string()]
    } else {
        dirs
    };
    let count: usize = value("--mixes").and_then(|v| v.parse().ok()).unwrap_or(120);
    let iterations: usize = value("--iterations")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1500);
    let speechless: f64 = value("--speechless")
        .and_then(|v| v.parse().ok())
        .unwrap_or(SPEECHLESS);
    let pieces_secs: f64 = value("--pieces")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    let folders: Vec<(String, Vec<PathBuf>)> = dirs
        .iter()
        .map(|d| (d.clone(), music_files(Path::new(d))))
        .collect();
    for (d, m) in &folders {
        assert!(!m.is_empty(), "no Ogg or Opus files in {d}");
    }
    let music: Vec<Vec<PathBuf>> = folders.iter().map(|f| f.1.clone()).collect();
    if args.iter().any(|a| a == "--built-in") {
        // The shipped model on the held-out material, nothing trained.
        let held_out = make_set(&music, false, (count / 4, SPEECHLESS), 0x5eed_0002);
        evaluate(&Model::built_in(), &held_out, "built-in held-out");
        if pieces_secs > 0.0 {
            false_alarms(&Model::built_in(), &folders, pieces_secs);
        }
        return;
    }
    let train_set = make_set(&music, true, (count, speechless), 0x5eed_0001);
    let held_out = make_set(&music, false, (count / 4, SPEECHLESS), 0x5eed_0002);
    let model = train(&train_set, iterations, 7);
    evaluate(&model, &train_set, "train");
    evaluate(&model, &held_out, "held-out");
    if pieces_secs > 0.0 {
        false_alarms(&model, &folders, pieces_secs);
    }
    if args.iter().any(|a| a == "--write") {
        write_model(
            &model,
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("src/analysis/speech_model.rs"),
        );
    } else if let Some(out) = value("--out") {
        write_model(&model, Path::new(&out));
    }
}
