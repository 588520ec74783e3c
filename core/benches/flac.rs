//! Speed and size of the FLAC encoder, beside flac-codec (the crate it replaced) and the
//! reference `flac` CLI on the same input in the same run.
//!
//! Run with `cargo bench -p sluice-core --bench flac [-- --seconds N]`. The input is 5 minutes
//! (by default) of stereo 44.1 kHz 16-bit programme-like material: [`signal::programme`]
//! (tones, noise drums, a level envelope) with short clicks and a ±1 LSB TPDF noise floor, as
//! a dithered 16-bit master has. Each encoder writes a file in a temporary directory, fed in
//! blocks of 4096 frames; the figure is audio seconds per wall-clock second (× real time) on
//! one thread, best of 3 runs. The CLI reads a WAV file and its time includes starting the
//! process and reading the file. A second part compares sizes on 60 s of 24-bit material.

use sluice_core::encode::Encoder;
use sluice_core::encode::flac::{FlacEncoder, FlacOptions};
use sluice_core::render::{Block, SignalSpec};
use sluice_core::signal::{self, Rng};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const RATE: u32 = 44_100;
const BLOCK: usize = 4096;
const RUNS: usize = 3;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn main() {
    if let Err(e) = run() {
        eprintln!("bench failed: {e}");
        std::process::exit(1);
    }
}

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

/// Programme material on the grid of `bits`: tones and noise drums, clicks every 0.37 s,
/// and a TPDF noise floor of ±1 LSB.
fn material(seconds: usize, bits: u32, seed: u64) -> Vec<Vec<i32>> {
    let frames = RATE as usize * seconds;
    let mut planes = signal::programme(RATE, 2, frames, seed);
    let mut rng = Rng::new(seed ^ 0x5EED);
    let step = (f64::from(RATE) * 0.37) as usize;
    for start in (step..frames).step_by(step) {
        for k in 0..(RATE as usize / 500).min(frames - start) {
            let v = (rng.uniform() * 0.5 * (-(k as f64) / 40.0).exp()) as f32;
            for p in planes.iter_mut() {
                p[start + k] += v;
            }
        }
    }
    let scale = f64::from(1u32 << (bits - 1));
    planes
        .iter()
        .map(|p| {
            p.iter()
                .map(|&x| {
                    let d = rng.uniform() * 0.5 + rng.uniform() * 0.5; // TPDF, ±1 LSB
                    (f64::from(x) * 0.9 * scale + d)
                        .round()
                        .clamp(-scale, scale - 1.0) as i32
                })
                .collect()
        })
        .collect()
}

fn as_f32(ints: &[Vec<i32>], bits: u32) -> Vec<Vec<f32>> {
    let s = (1u32 << (bits - 1)) as f32;
    ints.iter()
        .map(|p| p.iter().map(|&v| v as f32 / s).collect())
        .collect()
}

fn best(mut f: impl FnMut() -> Res<()>) -> Res<Duration> {
    let mut best = Duration::MAX;
    for _ in 0..RUNS {
        let t = Instant::now();
        f()?;
        best = best.min(t.elapsed());
    }
    Ok(best)
}

fn ours(planes: &[Vec<f32>], bits: u32, level: u8, out: &Path) -> Res<()> {
    let file = File::create(out)?;
    let opts = FlacOptions {
        bits,
        compression_level: level,
    };
    let mut enc: Box<dyn Encoder> = Box::new(FlacEncoder::new(
        file,
        out.to_path_buf(),
        &SignalSpec::with_channels(RATE, planes.len()),
        &opts,
    )?);
    let frames = planes[0].len();
    for start in (0..frames).step_by(BLOCK) {
        let end = (start + BLOCK).min(frames);
        let block = Block::from_planes(planes.iter().map(|p| p[start..end].to_vec()).collect());
        enc.write(&block)?;
    }
    enc.finish()?;
    Ok(())
}

/// flac-codec with the settings the old encoder used at level 5.
fn flac_codec(ints: &[Vec<i32>], bits: u32, out: &Path) -> Res<()> {
    use flac_codec::encode::{FlacChannelWriter, Options};
    let options = Options::default()
        .block_size(4096)?
        .max_lpc_order(Some(8))?
        .max_partition_order(5)?
        .mid_side(true)
        .fast_channel_correlation(false);
    let mut w = FlacChannelWriter::new(
        BufWriter::with_capacity(1 << 16, File::create(out)?),
        options,
        RATE,
        bits,
        ints.len() as u8,
        None,
    )?;
    let frames = ints[0].len();
    for start in (0..frames).step_by(BLOCK) {
        let end = (start + BLOCK).min(frames);
        let chunk: Vec<Vec<i32>> = ints.iter().map(|p| p[start..end].to_vec()).collect();
        w.write(&chunk)?;
    }
    w.finalize()?;
    Ok(())
}

fn write_wav(path: &Path, ints: &[Vec<i32>], bits: u32) -> Res<()> {
    let spec = hound::WavSpec {
        channels: ints.len() as u16,
        sample_rate: RATE,
        bits_per_sample: bits as u16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::new(BufWriter::new(File::create(path)?), spec)?;
    for i in 0..ints[0].len() {
        for p in ints {
            w.write_sample(p[i])?;
        }
    }
    w.finalize()?;
    Ok(())
}

fn cli(level: u8, wav: &Path, out: &Path) -> Option<Res<()>> {
    let run = || -> Res<()> {
        let status = Command::new("flac")
            .arg(format!("-{level}"))
            .args(["-f", "-s", "-o"])
            .arg(out)
            .arg(wav)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?;
        if !status.success() {
            return Err(format!("flac -{level} failed: {status}").into());
        }
        Ok(())
    };
    let present = Command::new("flac")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    present.then(run)
}

fn size(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

fn run() -> Res<()> {
    let seconds: usize = arg("--seconds").and_then(|s| s.parse().ok()).unwrap_or(300);
    let dir = tempfile::tempdir()?;
    let ints = material(seconds, 16, 2026);
    let planes = as_f32(&ints, 16);
    let audio = seconds as f64;
    let pcm = (ints[0].len() * 4) as u64;
    println!("{seconds} s of stereo 44.1 kHz 16-bit programme material ({pcm} bytes as PCM):");
    let line = |label: &str, t: Duration, bytes: u64, reference: Option<u64>| {
        let ratio = reference.map_or(String::new(), |r| {
            format!(
                ", {:+.2} % against flac -5",
                (bytes as f64 / r as f64 - 1.0) * 100.0
            )
        });
        println!(
            "  {label:<24} {:>7.0} × real time  {bytes:>10} bytes ({:.1} % of PCM{ratio})",
            audio / t.as_secs_f64(),
            bytes as f64 / pcm as f64 * 100.0,
        );
    };
    let wav = dir.path().join("in.wav");
    write_wav(&wav, &ints, 16)?;
    let reference_out = dir.path().join("cli.flac");
    let cli_time = match cli(5, &wav, &reference_out) {
        Some(Ok(())) => Some(best(|| cli(5, &wav, &reference_out).unwrap_or(Ok(())))?),
        Some(Err(e)) => {
            println!("  flac -5 failed: {e}");
            None
        }
        None => None,
    };
    let reference = cli_time.map(|_| size(&reference_out));
    let mut speeds = Vec::new();
    for level in [0u8, 5, 8] {
        let out = dir.path().join(format!("ours{level}.flac"));
        let t = best(|| ours(&planes, 16, level, &out))?;
        line(&format!("sluice level {level}"), t, size(&out), reference);
        speeds.push((level, t));
    }
    let out = dir.path().join("flac-codec.flac");
    let t_codec = best(|| flac_codec(&ints, 16, &out))?;
    line("flac-codec level 5", t_codec, size(&out), reference);
    match (cli_time, reference) {
        (Some(t), Some(bytes)) => line("flac -5 (CLI)", t, bytes, None),
        _ => println!("  flac -5 (CLI)            skipped (flac not installed)"),
    }
    // Level 8 against the CLI's -8, for size.
    let cli8 = dir.path().join("cli8.flac");
    if let Some(Ok(())) = cli(8, &wav, &cli8) {
        let ours8 = dir.path().join("ours8.flac");
        println!(
            "  level 8 size: {} bytes, flac -8 {} bytes ({:+.2} %)",
            size(&ours8),
            size(&cli8),
            (size(&ours8) as f64 / size(&cli8) as f64 - 1.0) * 100.0
        );
    }
    let t5 = speeds
        .iter()
        .find(|s| s.0 == 5)
        .map_or(Duration::MAX, |s| s.1);
    println!(
        "  level 5 speed: {:.2}× flac-codec's{}",
        t_codec.as_secs_f64() / t5.as_secs_f64(),
        cli_time.map_or(String::new(), |c| format!(
            ", {:.2}× the CLI's",
            c.as_secs_f64() / t5.as_secs_f64()
        ))
    );

    // 24-bit: sizes at level 5 against the CLI.
    let ints24 = material(60, 24, 7);
    let planes24 = as_f32(&ints24, 24);
    let wav24 = dir.path().join("in24.wav");
    write_wav(&wav24, &ints24, 24)?;
    let ours24 = dir.path().join("ours24.flac");
    let t = best(|| ours(&planes24, 24, 5, &ours24))?;
    println!("60 s of stereo 44.1 kHz 24-bit programme material:");
    let cli24 = dir.path().join("cli24.flac");
    let reference24 = match cli(5, &wav24, &cli24) {
        Some(Ok(())) => Some(size(&cli24)),
        _ => None,
    };
    let pcm24 = (ints24[0].len() * 6) as u64;
    let bytes = size(&ours24);
    println!(
        "  sluice level 5           {:>7.0} × real time  {bytes:>10} bytes ({:.1} % of PCM{})",
        60.0 / t.as_secs_f64(),
        bytes as f64 / pcm24 as f64 * 100.0,
        reference24.map_or(String::new(), |r| format!(
            ", {:+.2} % against flac -5",
            (bytes as f64 / r as f64 - 1.0) * 100.0
        ))
    );
    if let Some(r) = reference24 {
        println!("  flac -5 (CLI)                               {r:>10} bytes");
    }
    std::io::stdout().flush()?;
    Ok(())
}
