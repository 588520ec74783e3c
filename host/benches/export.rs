//! Export speed and memory against ffmpeg doing the equivalent, in the same run:
//!
//! ```sh
//! cargo bench -p sluice-host --bench export            # 60-minute file (the issue's figure)
//! cargo bench -p sluice-host --bench export -- --minutes 10
//! ```
//!
//! The jobs, on a 48 kHz stereo 16-bit WAV of each material the benches use (programme, the
//! loud dense master, acoustic; see `common::MATERIALS`; and real recordings with
//! `host/benches/recordings.sh`, see `common::RECORDINGS_ENV`): resampled to 44.1 kHz,
//! loudness-normalized to −14 LUFS with a −1 dBTP ceiling, and written as FLAC (16-bit,
//! level 5) and MP3 (VBR V2) from one render, and as FLAC alone. The verdicts are issue 22's
//! targets on the worst material: ≥ 3× ffmpeg for FLAC + MP3, ≥ 5× for FLAC alone.
//!
//! - Sluice: the export `sluice export` and pipelines run (`sluice_host::encode_thread::export`:
//!   the core's render, each encoder on a thread of its own) with the two outputs, in a child
//!   process of this bench (the default FFT resampling, TPDF dither, true-peak limiter).
//! - ffmpeg: the usual two-pass loudnorm: pass 1 measures (`loudnorm=print_format=json`),
//!   pass 2 applies the measured values (`linear=true`), resamples with soxr and encodes both
//!   outputs in one process (`asplit`, FLAC level 5 s16, libmp3lame `-q:a 2`). Its time is the
//!   sum of both passes, its memory the larger peak.
//!
//! Wall and CPU time, × real time and peak RSS (from `wait4`), and the ratios by wall and by CPU
//! (the machine is shared). Then what the MP3's true-peak check costs (on the dense master)
//! and the floor LAME alone sets.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

fn main() -> ExitCode {
    exit_code(run())
}

/// The two jobs issue 22's ruling sets targets for.
#[derive(Clone, Copy, PartialEq)]
enum Job {
    /// FLAC 16-bit + MP3 V2 from one render: ≥ 3× ffmpeg (LAME's serial stream is the floor).
    FlacMp3,
    /// FLAC 16-bit alone: ≥ 5× ffmpeg.
    Flac,
}

impl Job {
    fn name(self) -> &'static str {
        match self {
            Job::FlacMp3 => "FLAC + MP3",
            Job::Flac => "FLAC alone",
        }
    }
    fn target(self) -> f64 {
        match self {
            Job::FlacMp3 => 3.0,
            Job::Flac => 5.0,
        }
    }
}

fn run() -> Res<bool> {
    if let Some(written) = material_child() {
        return written.map(|()| true);
    }
    if let Some(input) = arg_value("--export") {
        // RUST_LOG=sluice_core=debug shows each pass and the normalize stage's decisions.
        if std::env::var_os("RUST_LOG").is_some() {
            tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
                .with_writer(std::io::stderr)
                .init();
        }
        let dir = PathBuf::from(arg_value("--dir").ok_or("--dir missing")?);
        let job = if has_flag("--flac-only") {
            Job::Flac
        } else {
            Job::FlacMp3
        };
        sluice_export(
            Path::new(&input),
            &dir,
            job,
            !has_flag("--no-true-peak-check"),
        )?;
        return Ok(true);
    }
    let minutes: usize = arg_value("--minutes").map_or(Ok(60), |v| v.parse())?;
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("export-bench");
    std::fs::create_dir_all(&dir)?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "sluice export bench: {minutes}-minute 48 kHz stereo 16-bit WAV of each material -> 44.1 kHz, -14 LUFS / -1 dBTP; FLAC 16-bit + MP3 V2, and FLAC alone; {cores} cores"
    );
    let seconds = (minutes * 60) as f64;
    let me = std::env::current_exe()?;
    let dir_s = dir.to_str().ok_or("path")?.to_string();
    let sluice = |input: &Path, job: Job, check: bool| {
        let mut args = vec!["--export", "{}", "--dir", &dir_s];
        if job == Job::Flac {
            args.push("--flac-only");
        }
        if !check {
            args.push("--no-true-peak-check");
        }
        time_process(&me, &args, input)
    };
    let peer = which("ffmpeg");
    if !peer {
        println!("  ffmpeg not found: no peer figures (install ffmpeg)");
    }
    // The worst ratio of each job over the materials (by wall time), with its material.
    let mut worst: Vec<(Job, f64, &str)> = Vec::new();
    let kinds = materials();
    let mut worst_mp3_material = kinds[0];
    for kind in kinds.iter().copied() {
        let input = material_wav(&dir, kind, minutes)?;
        println!("{kind}:");
        for job in [Job::FlacMp3, Job::Flac] {
            let ours = sluice(&input, job, true)?;
            println!(
                "  {:<11} sluice {:>7.2} s wall ({:>6.1}x real time), CPU {:>6.2} s, {:>6.1} MB{}",
                job.name(),
                ours.wall,
                seconds / ours.wall,
                ours.cpu,
                ours.rss_mb,
                passes(&ours.log).map_or(String::new(), |(m, l)| format!(
                    "; passes: measuring {m:.2} s, final {l:.2} s"
                ))
            );
            if !peer {
                continue;
            }
            let ff = ffmpeg_two_pass(&input, &dir, job)?;
            let (ratio, cpu_ratio) = (ff.wall / ours.wall, ff.cpu / ours.cpu);
            println!(
                "  {:<11} ffmpeg {:>7.2} s wall ({:>6.1}x real time), CPU {:>6.2} s, {:>6.1} MB (pass 1 {:.2} s, pass 2 {:.2} s): sluice {ratio:.1}x faster by wall, {cpu_ratio:.1}x by CPU",
                "",
                ff.wall,
                seconds / ff.wall,
                ff.cpu,
                ff.rss_mb,
                ff.pass1,
                ff.pass2,
            );
            match worst.iter_mut().find(|w| w.0 == job) {
                Some(w) if ratio < w.1 => *w = (job, ratio, kind),
                Some(_) => {}
                None => worst.push((job, ratio, kind)),
            }
            if job == Job::FlacMp3 && worst.iter().any(|w| w.0 == job && w.2 == kind) {
                worst_mp3_material = kind;
            }
        }
    }
    if !peer {
        return Ok(true);
    }

    // What the MP3's true-peak check costs (decode, measure, encode again while the codec
    // passes the ceiling or moves the loudness), on the dense master, whose inter-sample peaks
    // are where the check has the most to do. On a shared machine one run of each differs by
    // more than the check costs, so each is run three times, alternately, and the best of each
    // is compared.
    let dense = material_wav(&dir, "dense", minutes)?;
    let mut checked = Vec::new();
    let mut unchecked = Vec::new();
    let mut encodes = String::from("?");
    for _ in 0..3 {
        let u = sluice(&dense, Job::FlacMp3, false)?;
        unchecked.push((u.wall, u.cpu));
        let c = sluice(&dense, Job::FlacMp3, true)?;
        checked.push((c.wall, c.cpu));
        if let Some(e) = c.log.lines().find_map(|l| l.strip_prefix("mp3 encodes: ")) {
            encodes = e.to_string();
        }
    }
    let best = |runs: &[(f64, f64)]| {
        (
            runs.iter().map(|r| r.0).fold(f64::INFINITY, f64::min),
            runs.iter().map(|r| r.1).fold(f64::INFINITY, f64::min),
        )
    };
    let (c_wall, c_cpu) = best(&checked);
    let (u_wall, u_cpu) = best(&unchecked);
    println!(
        "the MP3's true-peak check on dense, best of 3 with and 3 without: {c_wall:.2} s (CPU {c_cpu:.2} s) against {u_wall:.2} s (CPU {u_cpu:.2} s): it costs {:+.1} % wall, {:+.1} % CPU ({encodes} MP3 encode(s); target <= 15 %)",
        (c_wall / u_wall - 1.0) * 100.0,
        (c_cpu / u_cpu - 1.0) * 100.0
    );

    // The floor of the MP3 job: its MP3 stream. An MP3 with a bit reservoir is one serial
    // stream, and two-pass normalization cannot start it before the whole file has been
    // measured, so no exporter using LAME can finish sooner than LAME alone takes.
    let input = material_wav(&dir, worst_mp3_material, minutes)?;
    let mp3_alone = time_process(
        Path::new("ffmpeg"),
        &[
            "-hide_banner",
            "-nostats",
            "-y",
            "-i",
            "{}",
            "-af",
            "aresample=44100:resampler=soxr:precision=28",
            "-c:a",
            "libmp3lame",
            "-q:a",
            "2",
            dir.join("ffmpeg-alone.mp3").to_str().ok_or("path")?,
        ],
        &input,
    )?;
    let ff_mp3 = ffmpeg_two_pass(&input, &dir, Job::FlacMp3)?;
    println!(
        "MP3 V2 alone on {worst_mp3_material} (ffmpeg libmp3lame): {:.2} s, {:.1}x real time: the ratio no LAME-based export can pass there is {:.1}x",
        mp3_alone.wall,
        seconds / mp3_alone.wall,
        ff_mp3.wall / mp3_alone.wall
    );

    // Issue 22's ruling: >= 5x for a job without MP3 outputs, >= 3x for the FLAC + MP3 job,
    // on the worst material.
    let mut pass = true;
    for (job, ratio, kind) in &worst {
        let ok = *ratio >= job.target();
        pass &= ok;
        println!(
            "worst material for {}: {kind}, sluice {ratio:.1}x faster than ffmpeg by wall time (target >= {}x): {}",
            job.name(),
            job.target(),
            verdict(ok)
        );
    }
    Ok(pass)
}

/// ffmpeg's usual two-pass loudnorm for `job`: pass 1 measures, pass 2 applies the measured
/// values (`linear=true`), resamples with soxr and encodes the outputs in one process.
struct PeerRun {
    wall: f64,
    cpu: f64,
    rss_mb: f64,
    pass1: f64,
    pass2: f64,
}

fn ffmpeg_two_pass(input: &Path, dir: &Path, job: Job) -> Res<PeerRun> {
    let pass1 = time_process(
        Path::new("ffmpeg"),
        &[
            "-hide_banner",
            "-nostats",
            "-i",
            "{}",
            "-af",
            "loudnorm=I=-14:TP=-1:LRA=20:print_format=json",
            "-f",
            "null",
            "-",
        ],
        input,
    )?;
    let json_start = pass1.log.rfind('{').ok_or("no loudnorm JSON")?;
    let json_end = pass1.log.rfind('}').ok_or("no loudnorm JSON")?;
    let m: serde_json::Value = serde_json::from_str(&pass1.log[json_start..=json_end])?;
    let get = |k: &str| m[k].as_str().unwrap_or("0").to_string();
    let apply = format!(
        "[0:a]loudnorm=I=-14:TP=-1:LRA=20:measured_I={}:measured_LRA={}:measured_TP={}:measured_thresh={}:offset={}:linear=true,aresample=44100:resampler=soxr:precision=28,aformat=channel_layouts=stereo",
        get("input_i"),
        get("input_lra"),
        get("input_tp"),
        get("input_thresh"),
        get("target_offset")
    );
    let flac = dir.join("ffmpeg.flac");
    let mp3 = dir.join("ffmpeg.mp3");
    let flac_args = [
        "-c:a",
        "flac",
        "-compression_level",
        "5",
        "-sample_fmt",
        "s16",
        flac.to_str().ok_or("path")?,
    ];
    let mut args = vec![
        "-hide_banner",
        "-nostats",
        "-y",
        "-i",
        "{}",
        "-filter_complex",
    ];
    let filter;
    match job {
        Job::FlacMp3 => {
            filter = format!("{apply},asplit=2[a][b]");
            args.extend([filter.as_str(), "-map", "[a]"]);
            args.extend(flac_args);
            args.extend([
                "-map",
                "[b]",
                "-c:a",
                "libmp3lame",
                "-q:a",
                "2",
                mp3.to_str().ok_or("path")?,
            ]);
        }
        Job::Flac => {
            filter = format!("{apply}[a]");
            args.extend([filter.as_str(), "-map", "[a]"]);
            args.extend(flac_args);
        }
    }
    let pass2 = time_process(Path::new("ffmpeg"), &args, input)?;
    Ok(PeerRun {
        wall: pass1.wall + pass2.wall,
        cpu: pass1.cpu + pass2.cpu,
        rss_mb: pass1.rss_mb.max(pass2.rss_mb),
        pass1: pass1.wall,
        pass2: pass2.wall,
    })
}

/// The child's "pass split" line: seconds in the passes before the last, and in the last.
fn passes(log: &str) -> Option<(f64, f64)> {
    let line = log.lines().find_map(|l| l.strip_prefix("pass split: "))?;
    let mut it = line.split_whitespace().map(|v| v.parse::<f64>().ok());
    Some((it.next()??, it.next()??))
}

/// The Sluice side of the job, in this (child) process.
fn sluice_export(input: &Path, dir: &Path, job: Job, check: bool) -> Res<()> {
    use sluice_core::encode::tags::TagPlan;
    use sluice_core::export::OutputPlan;
    use sluice_core::render::dither::DitherMode;
    use sluice_core::render::normalize::NormalizeTarget;
    use sluice_core::render::steps::StepSpec;
    use sluice_host::encode_thread::export;
    let plan = [
        StepSpec::Resample {
            sample_rate: 44_100,
            quality: Default::default(),
        },
        StepSpec::Normalize(NormalizeTarget::Loudness {
            lufs: -14.0,
            true_peak_dbtp: -1.0,
            limiter: true,
            rule: Default::default(),
        }),
    ];
    let out = |name: &str, format| OutputPlan {
        path: dir.join(name),
        format,
        dither: DitherMode::Tpdf,
        tags: TagPlan {
            replaygain: true,
            ..TagPlan::default()
        },
        bext: false,
        overwrite: true,
        channels: None,
        sample_rate: None,
        true_peak_check: check,
        max_encodes: sluice_core::export::MAX_ENCODES,
    };
    let mut outputs = vec![out("sluice.flac", sluice_core::encode::flac::output(16, 5))];
    if job == Job::FlacMp3 {
        outputs.push(out(
            "sluice.mp3",
            sluice_core::encode::named(
                "mp3",
                sluice_core::formats::Settings {
                    quality: Some(2.0),
                    ..Default::default()
                },
            )
            .expect("a build with MP3"),
        ));
    }
    // When each pass ended, for the parent's split (the final pass is the last one).
    let start = std::time::Instant::now();
    let mut ends: Vec<f64> = Vec::new();
    let mut on_progress = |p: sluice_core::render::Progress| {
        let i = p.pass as usize - 1;
        if ends.len() <= i {
            ends.resize(i + 1, 0.0);
        }
        ends[i] = start.elapsed().as_secs_f64();
    };
    let report = export(input, &plan, &outputs, &mut on_progress)?;
    let total = start.elapsed().as_secs_f64();
    if let [.., before_last, _] = ends[..] {
        eprintln!("pass split: {before_last:.3} {:.3}", total - before_last);
    }
    for o in &report.outputs {
        eprintln!(
            "{}: {:?} LUFS, {:.2} dBTP",
            o.path.display(),
            o.loudness.as_ref().and_then(|l| l.loudness.integrated_lufs),
            o.loudness.as_ref().map_or(f64::NAN, |l| l.true_peak_dbtp)
        );
    }
    eprintln!("passes: {}", report.passes);
    if let Some(c) = report
        .outputs
        .iter()
        .find_map(|o| o.true_peak_check.as_ref())
    {
        eprintln!("mp3 encodes: {}", c.encodes);
    }
    Ok(())
}
