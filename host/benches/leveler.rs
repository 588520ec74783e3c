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
#[path = "../../core/tests/speech_mix/mod.rs"]
mod speech_mix;

use common::*;
use sluice_effect_sdk::native::{self, Instance};
use speech_mix::{Noise, Rng};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

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
    let ffmpeg = Path::new("ffmpeg");
    for dir in &dirs {
        let list =
            speech_mix::audio_files(dir, &["ogg", "opus", "flac", "mp3"], &["guitar", "rhythm"]);
        let (mut bad, mut steps, mut core_speech, mut core_steps) = (0, 0, 0, 0);
        let mut worst: Vec<(f64, String)> = Vec::new();
        let mut bed = None;
        for f in &list {
            let x = speech_mix::music(ffmpeg, f, 20.0, seconds, FS)
                .ok_or_else(|| format!("ffmpeg could not decode {}", f.display()))?;
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
    let espeak = Path::new("espeak-ng");
    let have_espeak = std::process::Command::new(espeak)
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if have_espeak {
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
            let clean = speech_mix::espeak(espeak, ffmpeg, TEXT, voice, 160, 50, FS)
                .ok_or_else(|| format!("espeak-ng could not read in {voice}"))?;
            let level = rms(&clean);
            let g = (0.1 / level) as f32;
            let clean: Vec<f32> = clean.iter().map(|v| v * g).collect();
            let mut takes = vec![("alone", clean.clone())];
            for snr in [30.0, 20.0] {
                let n = speech_mix::noise(Noise::Pink, clean.len(), FS, &mut Rng(7));
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
