//! The podcast pipeline over a batch, beside ffmpeg-normalize doing the same normalization, in
//! the same run:
//!
//! ```sh
//! host/benches/install-peers.sh                         # ffmpeg-normalize into target/bench-peers
//! cargo bench -p sluice-host --bench pipeline           # 8 episodes of 5 minutes
//! cargo bench -p sluice-host --bench pipeline -- --files 4 --minutes 2
//! ```
//!
//! The batch: speech-like episodes (`sluice_core::signal::speech`, at levels from −35 to
//! −15 dBFS), 44.1 kHz 24-bit WAV, mono and stereo alternately.
//!
//! - Sluice: `sluice run podcast FILES...` (the example pipeline as shipped: analysis of
//!   loudness and levels, high-pass, dehum, denoise, deess, leveler, silence trim, −16 LUFS / −1 dBTP with the true-peak limiter, a
//!   128 kbit/s mono MP3 and a 24-bit FLAC archive per file, a JSON report), with its default
//!   worker count (the cores) and again with one worker.
//! - ffmpeg-normalize: EBU mode, `-t -16 -tp -1`, two passes per file (it measures, then
//!   renders with loudnorm). It writes one output per run, so it runs twice over the batch:
//!   once for the MP3 (`-c:a libmp3lame -b:a 128k`, mono) and once for the FLAC
//!   (`-c:a flac`, 24-bit). Files one after another, as it works.
//!
//! - The ffmpeg filter chain that does what the pipeline does (`CHAIN`: high-pass, afftdn,
//!   deesser, speechnorm, loudnorm), both outputs from one process per file, as many files at
//!   once as there are cores. The pipeline must run at 50x real time or faster on the
//!   machine's cores and beat this chain.
//!
//! Wall time, × real time, and the ratios; the loudness of every MP3 both made.

mod common;

use common::{Res, arg_value, exit_code};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

const RATE: u32 = 44_100;

/// ffmpeg's filters for what the podcast pipeline does (high-pass, noise reduction, de-esser,
/// speech leveler, loudness to −16 LUFS / −1 dBTP), split for the two outputs. ffmpeg has no
/// mains hum remover; its loudnorm runs in one pass (dynamic mode).
const CHAIN: &str = "[0:a]highpass=f=80,afftdn,deesser,speechnorm,loudnorm=I=-16:TP=-1,\
                     aresample=44100,asplit=2[mp3][flac]";

fn main() -> ExitCode {
    exit_code(run())
}

fn ffmpeg_normalize() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("FFMPEG_NORMALIZE") {
        return Some(PathBuf::from(p));
    }
    let venv =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-peers/bin/ffmpeg-normalize");
    if venv.is_file() {
        return Some(venv);
    }
    Command::new("ffmpeg-normalize")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
        .then(|| PathBuf::from("ffmpeg-normalize"))
}

/// CPU seconds (user and system) of every child process waited for so far.
fn children_cpu() -> f64 {
    // SAFETY: rusage is plain data the kernel fills; RUSAGE_CHILDREN always exists.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is ours and outlives the call.
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut u) };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(u.ru_utime) + secs(u.ru_stime)
}

fn timed(cmd: &mut Command) -> Res<f64> {
    let t = Instant::now();
    let out = cmd.stdin(Stdio::null()).output()?;
    let wall = t.elapsed().as_secs_f64();
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = err.lines().rev().take(8).collect();
        return Err(format!("{cmd:?} failed: {}", tail.join("\n")).into());
    }
    Ok(wall)
}

fn integrated(path: &Path) -> Res<f64> {
    let opts = sluice_core::analysis::AnalysisOptions {
        sections: vec![sluice_core::analysis::Section::Loudness],
        ..Default::default()
    };
    let r = sluice_core::analysis::analyze(path, &opts, &mut |_| {})?;
    Ok(r.loudness
        .and_then(|l| l.summary.integrated_lufs)
        .ok_or("no integrated loudness")?)
}

fn files_with(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == ext) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn run() -> Res<bool> {
    let files: usize = arg_value("--files").map_or(Ok(8), |v| v.parse())?;
    let minutes: f64 = arg_value("--minutes").map_or(Ok(5.0), |v| v.parse())?;
    let Some(peer) = ffmpeg_normalize() else {
        println!(
            "pipeline bench skipped: ffmpeg-normalize not found (run host/benches/install-peers.sh, or set FFMPEG_NORMALIZE)"
        );
        return Ok(true);
    };
    let sluice = PathBuf::from(env!("CARGO_BIN_EXE_sluice"));
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("pipeline-bench");
    let _ = std::fs::remove_dir_all(&dir);
    let src = dir.join("batch");
    std::fs::create_dir_all(&src)?;

    // The batch.
    let mut inputs = Vec::new();
    for i in 0..files {
        let level = 10f32.powf((-35.0 + 20.0 * i as f32 / (files.max(2) - 1) as f32) / 20.0);
        let voice = sluice_core::signal::speech(RATE, minutes * 60.0, level).remove(0);
        let channels = if i % 2 == 0 { 1 } else { 2 };
        let path = src.join(format!("episode{i:02}.wav"));
        let spec = hound::WavSpec {
            channels,
            sample_rate: RATE,
            bits_per_sample: 24,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&path, spec)?;
        for s in &voice {
            let v = (s.clamp(-1.0, 1.0) * 8_388_607.0) as i32;
            for _ in 0..channels {
                w.write_sample(v)?;
            }
        }
        w.finalize()?;
        inputs.push(path);
    }
    let audio_seconds = files as f64 * minutes * 60.0;
    println!(
        "podcast pipeline bench: {files} episodes x {minutes} min (44.1 kHz 24-bit, mono and stereo), {cores} cores; {}",
        String::from_utf8_lossy(&Command::new(&peer).arg("--version").output()?.stdout).trim()
    );

    // Sluice, with its default worker count and with one.
    let mut sluice_runs = Vec::new();
    for workers in [cores, 1] {
        let root = dir.join(format!("root-{workers}"));
        let cpu0 = children_cpu();
        let wall = timed(
            Command::new(&sluice)
                .args(["run", "podcast", "--root"])
                .arg(&root)
                .args(&inputs)
                .env("SLUICE_WORKERS", workers.to_string()),
        )?;
        let mp3s = files_with(&root.join("outbox"), "mp3");
        let flacs = files_with(&root.join("archive"), "flac");
        if mp3s.len() != files || flacs.len() != files {
            return Err(format!("sluice made {} MP3 and {} FLAC", mp3s.len(), flacs.len()).into());
        }
        sluice_runs.push((workers, wall, children_cpu() - cpu0, mp3s));
    }

    // ffmpeg-normalize: one run per output format.
    let peer_run = |name: &str, extra: &[&str]| -> Res<(f64, f64, Vec<PathBuf>)> {
        let out = dir.join(format!("ffmpeg-normalize-{name}"));
        let cpu0 = children_cpu();
        std::fs::create_dir_all(&out)?;
        let wall = timed(
            Command::new(&peer)
                .args(&inputs)
                .args([
                    "-nt", "ebu", "-t", "-16", "-tp", "-1", "-ar", "44100", "-f", "-q",
                ])
                .args(extra)
                .arg("-of")
                .arg(&out),
        )?;
        Ok((wall, children_cpu() - cpu0, files_with(&out, name)))
    };
    let (peer_mp3, peer_mp3_cpu, peer_mp3s) = peer_run(
        "mp3",
        &[
            "-c:a",
            "libmp3lame",
            "-b:a",
            "128k",
            "-e",
            "-ac 1",
            "-ext",
            "mp3",
        ],
    )?;
    let (peer_flac, peer_flac_cpu, _) = peer_run(
        "flac",
        &["-c:a", "flac", "-e", "-sample_fmt s32", "-ext", "flac"],
    )?;
    let peer_total = peer_mp3 + peer_flac;

    // The equivalent ffmpeg filter chain, both outputs from one process per file, as many
    // processes at once as there are cores (as sluice runs a worker per core).
    let chain_dir = dir.join("ffmpeg-chain");
    std::fs::create_dir_all(&chain_dir)?;
    let t = Instant::now();
    let cpu0 = children_cpu();
    for batch in inputs.chunks(cores) {
        let mut children = Vec::new();
        for input in batch {
            let stem = input
                .file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            children.push(
                Command::new("ffmpeg")
                    .args(["-v", "error", "-y", "-i"])
                    .arg(input)
                    .args(["-filter_complex", CHAIN, "-map", "[mp3]", "-ac", "1"])
                    .args(["-c:a", "libmp3lame", "-b:a", "128k"])
                    .arg(chain_dir.join(format!("{stem}.mp3")))
                    .args(["-map", "[flac]", "-c:a", "flac", "-sample_fmt", "s32"])
                    .arg(chain_dir.join(format!("{stem}.flac")))
                    .stdin(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()?,
            );
        }
        for c in children {
            let out = c.wait_with_output()?;
            if !out.status.success() {
                return Err(format!(
                    "the ffmpeg chain failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                )
                .into());
            }
        }
    }
    let chain = t.elapsed().as_secs_f64();
    let chain_cpu = children_cpu() - cpu0;

    // Wall time beside the CPU time of the processes (the machine may be shared: CPU time is
    // what the work cost, wall time what it took with the cores it got).
    let line = |what: &str, wall: f64, cpu: f64| {
        println!(
            "  {what:<52} {wall:>8.2} s  {:>7.1}x real time  CPU {cpu:>7.2} s",
            audio_seconds / wall
        )
    };
    for (w, wall, cpu, _) in &sluice_runs {
        line(
            &format!("sluice run podcast ({w} worker(s); MP3 + FLAC)"),
            *wall,
            *cpu,
        );
    }
    line("ffmpeg-normalize, MP3", peer_mp3, peer_mp3_cpu);
    line("ffmpeg-normalize, FLAC", peer_flac, peer_flac_cpu);
    line(
        "ffmpeg-normalize, both (MP3 run + FLAC run)",
        peer_total,
        peer_mp3_cpu + peer_flac_cpu,
    );
    line(
        &format!("ffmpeg filter chain ({cores} at once; MP3 + FLAC)"),
        chain,
        chain_cpu,
    );
    let (_, all_cores, all_cores_cpu, mp3s) = &sluice_runs[0];
    let (_, one, _, _) = &sluice_runs[1];
    println!(
        "  ratio, same outputs (ffmpeg-normalize both / sluice):  {:.2}x with {cores} workers, {:.2}x with 1",
        peer_total / all_cores,
        peer_total / one
    );
    println!(
        "  ratio, MP3 alone (ffmpeg-normalize MP3 / sluice both): {:.2}x with {cores} workers, {:.2}x with 1",
        peer_mp3 / all_cores,
        peer_mp3 / one
    );

    let speed = audio_seconds / all_cores;
    let chain_ok = speed >= 50.0 && *all_cores < chain;
    println!(
        "  the whole podcast pipeline: {speed:.0}x real time with {cores} workers (target 50x), \
         {:.2}x the ffmpeg chain's speed (target above 1): {}; by CPU time {:.2}x the chain, \
         {:.0}x real time per core",
        chain / all_cores,
        common::verdict(chain_ok),
        chain_cpu / all_cores_cpu,
        audio_seconds / all_cores_cpu
    );

    // Each MP3 measured, the two tools side by side. Sluice measures the loudness of what each
    // output receives (a mono MP3 of a stereo episode is normalized as mono), so every MP3 is
    // at -16 LUFS; ffmpeg-normalize normalizes the stereo and then downmixes, so its MP3 of a
    // stereo episode measures about 3 LU under (-19).
    let lufs = |list: &[PathBuf]| {
        list.iter()
            .map(|p| integrated(p))
            .collect::<Res<Vec<f64>>>()
    };
    let (ours, theirs) = (lufs(mp3s)?, lufs(&peer_mp3s)?);
    let show = |v: &[f64]| {
        v.iter()
            .map(|l| format!("{l:.2}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    println!("  MP3 loudness, sluice:           {}", show(&ours));
    println!("  MP3 loudness, ffmpeg-normalize: {}", show(&theirs));
    let ok = chain_ok && ours.len() == theirs.len() && ours.iter().all(|l| (l + 16.0).abs() <= 0.5);
    if std::env::var_os("SLUICE_BENCH_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(ok)
}
