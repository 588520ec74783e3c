//! The leveler's music decision on recordings, beside the core's speech detector in the same
//! run:
//!
//! ```sh
//! cargo bench -p sluice-host --bench leveler                 # Debian's game music, if there
//! cargo bench -p sluice-host --bench leveler -- --music DIR [--music DIR ...] [--seconds 30]
//! ```
//!
//! Music: every Ogg/Opus/FLAC/MP3 file under each `--music` folder (by default Debian's
//! wesnoth-1.16-music (orchestral), warzone2100-music (electronic) and
//! fretsonfire-songs-muldjord / -sectoid (rock and metal) where installed), `--seconds` from 20 s
//! in, mono 48 kHz (ffmpeg decodes). Each piece goes through `leveler` with `music = "fixed"`
//! and `music_gain_db = 0`: the share of its 10 ms steps (after the first second, above −50 dBFS)
//! whose gain is more than 1 dB from 0 is what the leveler took for speech and moved. Beside it,
//! the share of the piece's 100 ms steps the core's speech detector (`analysis::speech`) calls
//! speech.
//!
//! Speech: espeak-ng reading four sentences in each of eight voices, alone, over pink noise at
//! 30 and 20 dB SNR, and over the first piece of each music folder 15 dB under the voice: the share of steps
//! whose gain differs by more than 0.5 dB between `music = "fixed"` and `music = "level"` is the
//! speech taken for music.
//!
//! Exits 1 when more than 3 % of all music steps are moved, more than 1 % of any take of speech
//! alone or in noise is taken for music, or more than 5 % of speech over the beds on average.

mod common;

use common::*;
use sluice_effect_sdk::native::{self, Instance};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

const FS: u32 = 48_000;
const STEP: usize = FS as usize / 100;

const FOLDERS: &[&str] = &[
    "/usr/share/games/wesnoth/1.16/data/core/music",
    "/usr/share/games/warzone2100/music",
    "/usr/share/games/fretsonfire/data/songs",
];

const VOICES: &[&str] = &[
    "en-us",
    "en-gb",
    "en-gb+f3",
    "en-us+m3",
    "en-gb-scotland",
    "en-029",
    "en-gb-x-rp+f2",
    "en-us+f4",
];

const TEXT: &str = "The birch canoe slid on the smooth planks. Glue the sheet to the dark blue \
    background. It's easy to tell the depth of a well. These days a chicken leg is a rare dish. \
    Rice is often served in round bowls. The juice of lemons makes fine punch.";

fn decode(args: &[&str], stdin: Option<&[u8]>) -> Res<Vec<f32>> {
    use std::io::Write;
    let mut child = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin"])
        .args(args)
        .args(["-ac", "1", "-ar", &FS.to_string(), "-f", "f32le", "-"])
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    if let Some(bytes) = stdin {
        let mut pipe = child.stdin.take().ok_or("ffmpeg's stdin")?;
        let bytes = bytes.to_vec();
        std::thread::spawn(move || pipe.write_all(&bytes));
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        return Err(format!("ffmpeg failed on {args:?}").into());
    }
    Ok(out
        .stdout
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            files(&p, out);
        } else if p
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| ["ogg", "opus", "flac", "mp3"].contains(&e))
            && !p
                .file_stem()
                .is_some_and(|s| s == "guitar" || s == "rhythm")
        {
            out.push(p);
        }
    }
}

/// The leveler's gain (dB) per 10 ms step of `x`, with `music` set to `mode`.
fn gains(x: &[f32], mode: &str) -> Vec<f32> {
    let mut mem = native::memory();
    let mut fx = Instance::<leveler::Leveler>::new(&mut mem, FS, 1, 512).expect("leveler");
    fx.set_choice("music", mode);
    let late = fx.latency();
    let mut out = vec![
        x.iter()
            .copied()
            .chain(std::iter::repeat_n(0.0, late))
            .collect::<Vec<f32>>(),
    ];
    fx.run(&mut out);
    let y = &out[0][late..];
    x.chunks_exact(STEP)
        .zip(y.chunks_exact(STEP))
        .map(|(a, b)| {
            let e = |s: &[f32]| s.iter().map(|v| (*v as f64).powi(2)).sum::<f64>();
            (10.0 * (e(b).max(1e-30) / e(a).max(1e-30)).log10()) as f32
        })
        .collect()
}

/// Steps (10 ms) above −50 dBFS after the first second.
fn loud(x: &[f32]) -> Vec<bool> {
    x.chunks_exact(STEP)
        .enumerate()
        .map(|(i, s)| {
            let ms = s.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / STEP as f64;
            i >= 100 && ms > 1e-5
        })
        .collect()
}

fn pink(n: usize, seed: u64) -> Vec<f32> {
    // Paul Kellet's filter over a xorshift's white noise.
    let mut s = seed.max(1);
    let mut b = [0.0f64; 7];
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let w = (s >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0;
            b[0] = 0.99886 * b[0] + w * 0.0555179;
            b[1] = 0.99332 * b[1] + w * 0.0750759;
            b[2] = 0.96900 * b[2] + w * 0.1538520;
            b[3] = 0.86650 * b[3] + w * 0.3104856;
            b[4] = 0.55000 * b[4] + w * 0.5329522;
            b[5] = -0.7616 * b[5] - w * 0.0168980;
            let p = b[0] + b[1] + b[2] + b[3] + b[4] + b[5] + b[6] + w * 0.5362;
            b[6] = w * 0.115926;
            p as f32
        })
        .collect()
}

fn rms(x: &[f32]) -> f64 {
    (x.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / x.len().max(1) as f64).sqrt()
}

fn run() -> Res<bool> {
    if !which("ffmpeg") {
        return Err("ffmpeg is needed to decode the music".into());
    }
    let seconds: f64 = arg_value("--seconds").map_or(Ok(30.0), |s| s.parse())?;
    let args: Vec<String> = std::env::args().collect();
    let mut dirs: Vec<PathBuf> = args
        .windows(2)
        .filter(|w| w[0] == "--music")
        .map(|w| PathBuf::from(&w[1]))
        .collect();
    if dirs.is_empty() {
        dirs = FOLDERS
            .iter()
            .map(PathBuf::from)
            .filter(|d| d.is_dir())
            .collect();
    }
    if dirs.is_empty() {
        return Err(
            "no music: pass --music DIR (or install Debian's wesnoth-1.16-music, \
                    warzone2100-music, fretsonfire-songs-muldjord)"
                .into(),
        );
    }
    println!(
        "music: {seconds} s of each piece from 20 s in; `leveler` music = fixed at 0 dB; share of \
         steps moved > 1 dB (ours) and called speech by the core's detector (core)"
    );
    let (mut all_bad, mut all_steps) = (0usize, 0usize);
    // The first piece of each folder, a bed for the speech.
    let mut beds: Vec<(String, Vec<f32>)> = Vec::new();
    for dir in &dirs {
        let mut list = Vec::new();
        files(dir, &mut list);
        let (mut bad, mut steps, mut core_speech, mut core_steps) = (0, 0, 0, 0);
        let mut worst: Vec<(f64, String)> = Vec::new();
        let mut bed = None;
        for f in &list {
            let p = f.to_str().ok_or("a path that is not UTF-8")?;
            let x = decode(&["-ss", "20", "-t", &seconds.to_string(), "-i", p], None)?;
            if x.len() < 5 * FS as usize || rms(&x) < 1e-4 {
                continue;
            }
            let g = gains(&x, "fixed");
            let l = loud(&x);
            let n = l.iter().filter(|v| **v).count();
            let moved = g
                .iter()
                .zip(&l)
                .filter(|(g, l)| **l && g.abs() > 1.0)
                .count();
            let core = sluice_core::analysis::speech::detect(&x, FS);
            core_speech += core.iter().filter(|v| **v).count();
            core_steps += core.len();
            bad += moved;
            steps += n;
            let name = f.strip_prefix(dir).unwrap_or(f).display().to_string();
            worst.push((moved as f64 / n.max(1) as f64, name.clone()));
            if bed.is_none() {
                bed = Some((name, x));
            }
        }
        worst.sort_by(|a, b| b.0.total_cmp(&a.0));
        let pct = |a: usize, b: usize| 100.0 * a as f64 / b.max(1) as f64;
        println!(
            "  {:<52} {:>3} pieces  ours {:>5.1} %  core {:>5.1} %  worst: {}",
            dir.display(),
            worst.len(),
            pct(bad, steps),
            pct(core_speech, core_steps),
            worst
                .iter()
                .take(3)
                .map(|(s, n)| format!("{n} {:.0} %", 100.0 * s))
                .collect::<Vec<_>>()
                .join(", ")
        );
        all_bad += bad;
        all_steps += steps;
        beds.extend(bed);
    }
    let music_share = all_bad as f64 / all_steps.max(1) as f64;
    println!("  all music: {:.1} % of steps moved", 100.0 * music_share);

    let (mut speech_ok, mut bed_sum, mut bed_takes) = (true, 0.0, 0usize);
    let espeak = Command::new("espeak-ng")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if espeak {
        println!(
            "speech: espeak-ng, {} voices; share of steps whose gain differs > 0.5 dB between \
             music = fixed and music = level (speech taken for music)",
            VOICES.len()
        );
        println!(
            "  beds (15 dB under the voice): {}",
            beds.iter()
                .enumerate()
                .map(|(i, b)| format!("{} = {}", i + 1, b.0))
                .collect::<Vec<_>>()
                .join(", ")
        );
        for voice in VOICES {
            let wav = Command::new("espeak-ng")
                .args(["-v", voice, "-s", "160", "--stdout", TEXT])
                .stderr(Stdio::null())
                .output()?;
            let clean = decode(&["-f", "wav", "-i", "-"], Some(&wav.stdout))?;
            let level = rms(&clean);
            let g = (0.1 / level) as f32;
            let clean: Vec<f32> = clean.iter().map(|v| v * g).collect();
            let mut takes = vec![("alone", clean.clone())];
            for snr in [30.0, 20.0] {
                let n = pink(clean.len(), 7);
                let k = (0.1 * 10f64.powf(-snr / 20.0) / rms(&n)) as f32;
                let x = clean.iter().zip(&n).map(|(a, b)| a + k * b).collect();
                takes.push((
                    if snr > 25.0 {
                        "noise 30 dB"
                    } else {
                        "noise 20 dB"
                    },
                    x,
                ));
            }
            for (i, (_, bed)) in beds.iter().enumerate() {
                if bed.len() >= clean.len() {
                    let k = (0.1 * 10f64.powf(-15.0 / 20.0) / rms(&bed[..clean.len()])) as f32;
                    let x = clean.iter().zip(bed).map(|(a, b)| a + k * b).collect();
                    takes.push((["bed 1", "bed 2", "bed 3", "bed 4"][i.min(3)], x));
                }
            }
            let mut line = format!("  {voice:<16}");
            for (name, x) in &takes {
                let (a, b) = (gains(x, "fixed"), gains(x, "level"));
                let l = loud(&clean);
                let n = l.iter().filter(|v| **v).count();
                let differ = a
                    .iter()
                    .zip(&b)
                    .zip(&l)
                    .filter(|((a, b), l)| **l && (*a - *b).abs() > 0.5)
                    .count();
                let share = differ as f64 / n.max(1) as f64;
                if name.starts_with("bed") {
                    bed_sum += share;
                    bed_takes += 1;
                } else {
                    speech_ok &= share <= 0.01;
                }
                line += &format!("  {name} {:>4.1} %", 100.0 * share);
            }
            println!("{line}");
        }
    } else {
        println!("speech: espeak-ng not installed, not measured");
    }
    let bed_share = bed_sum / bed_takes.max(1) as f64;
    if bed_takes > 0 {
        println!(
            "  speech over the beds: {:.1} % of steps taken for music (mean of {bed_takes} takes)",
            100.0 * bed_share
        );
    }
    let pass = music_share <= 0.03 && speech_ok && bed_share <= 0.05;
    println!(
        "{}: music moved on at most 3 % of its steps; speech alone or in noise taken for music on \
         at most 1 % of any take's steps, over a bed on at most 5 % on average",
        verdict(pass)
    );
    Ok(pass)
}

fn main() -> ExitCode {
    exit_code(run())
}
