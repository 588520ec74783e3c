//! Input-side benchmarks of `sluice-core`: header-only probe latency, full-decode throughput
//! and streaming memory, each with its peer tool (ffprobe, ffmpeg) measured in the same run.
//!
//! Run with `cargo bench -p sluice-core --bench input`. The bench writes its test files to a
//! temporary directory (removed at the end): 60 s WAV/FLAC/MP3 made from
//! [`sluice_core::signal::programme`], and 10 and 60 min WAV/FLAC for the memory test. It
//! builds the `sluice` binary (`cargo build --release -p sluice-host`) to time `sluice info`
//! end to end.
//! Parts that need `ffmpeg`, `ffprobe`, `flac` or `lame` are skipped with a message when the
//! tool is missing. Set `SLUICE_BENCH_KEEP=1` to keep the test files.
//!
//! Peak memory is measured in a child process: the bench re-executes itself with
//! `--rss-child FILE`; the child decodes the file with [`Decoder`] (streaming, the audio is
//! never held) and prints its `VmHWM` from `/proc/self/status`.

use sluice_core::{Decoder, InfoOptions, signal};
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

const SAMPLE_RATE: u32 = 44_100;
const CHANNELS: u16 = 2;
/// Length of the probe/decode test files.
const SHORT_SECONDS: usize = 60;
/// Lengths of the longer files of the memory test, in multiples of the short one.
const MID_REPEATS: usize = 10;
const LONG_REPEATS: usize = 60;
const PROBE_RUNS: usize = 200;
const SPAWN_RUNS: usize = 30;
const DECODE_RUNS: usize = 3;
const PROBE_TARGET: Duration = Duration::from_millis(5);

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--rss-child") {
        let Some(path) = args.get(i + 1) else {
            eprintln!("--rss-child needs a file");
            return ExitCode::from(2);
        };
        return rss_child(Path::new(path));
    }
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench failed: {e}");
            ExitCode::FAILURE
        }
    }
}

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// One test file.
struct Fixture {
    label: &'static str,
    path: PathBuf,
}

fn run() -> Res<()> {
    let started = Instant::now();
    println!("sluice-core input bench");
    println!(
        "cpus: {}, load average at start: {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        loadavg()
    );
    let tools = Tools::detect();
    tools.report();

    let dir = tempfile::Builder::new().prefix("sluice-bench-").tempdir()?;
    println!("temp dir: {}", dir.path().display());

    // ---- test files ----
    let t = Instant::now();
    let frames = SAMPLE_RATE as usize * SHORT_SECONDS;
    let pcm = interleave_i16(&signal::programme(SAMPLE_RATE, CHANNELS.into(), frames, 1));
    let wav = dir.path().join("programme-60s.wav");
    write_wav(&wav, &pcm, 1)?;
    let mut short = vec![Fixture {
        label: "WAV",
        path: wav.clone(),
    }];
    if tools.flac {
        let flac = dir.path().join("programme-60s.flac");
        flac_encode(&wav, &flac)?;
        short.push(Fixture {
            label: "FLAC",
            path: flac,
        });
    }
    if tools.lame {
        let mp3 = dir.path().join("programme-60s.mp3");
        run_tool(
            Command::new("lame")
                .args(["--quiet", "-b", "192"])
                .arg(&wav)
                .arg(&mp3),
        )?;
        short.push(Fixture {
            label: "MP3",
            path: mp3,
        });
    }
    println!(
        "made the 60 s files in {:.1} s: {}",
        t.elapsed().as_secs_f64(),
        short
            .iter()
            .map(|f| format!("{} {}", f.label, mb(file_len(&f.path))))
            .collect::<Vec<_>>()
            .join(", ")
    );

    let sluice = sluice_binary();

    probe_section(&short, sluice.as_deref(), &tools)?;
    decode_section(&short, &tools)?;
    memory_section(dir.path(), &wav, &pcm, &short, &tools)?;

    println!();
    println!(
        "total bench time {:.0} s, load average at end: {}",
        started.elapsed().as_secs_f64(),
        loadavg()
    );
    if std::env::var_os("SLUICE_BENCH_KEEP").is_some() {
        println!(
            "SLUICE_BENCH_KEEP set: test files kept in {}",
            dir.keep().display()
        );
    }
    Ok(())
}

// ---------------------------------------------------------------- 1. probe latency

fn probe_section(files: &[Fixture], sluice: Option<&Path>, tools: &Tools) -> Res<()> {
    println!();
    println!(
        "== 1. Header-only probe latency (60 s files, page cache warm, {PROBE_RUNS} runs each) =="
    );
    println!(
        "{:<6} {:>11} {:>11} {:>8} {:>13} {:>11}",
        "format", "probe med", "probe p99", "< 5 ms", "info() med", "info() p99"
    );
    let mut all_under = true;
    for f in files {
        // Warm up the page cache and the code paths.
        sluice_core::probe(&f.path)?;
        let probe = stats(time_runs(PROBE_RUNS, || {
            black_box(sluice_core::probe(black_box(&f.path)).expect("probe"));
        }));
        let opts = InfoOptions::default();
        let info = stats(time_runs(PROBE_RUNS, || {
            black_box(sluice_core::info(black_box(&f.path), &opts).expect("info"));
        }));
        let under = probe.p99 < PROBE_TARGET;
        all_under &= under;
        println!(
            "{:<6} {:>8.3} ms {:>8.3} ms {:>8} {:>10.3} ms {:>8.3} ms",
            f.label,
            ms(probe.median),
            ms(probe.p99),
            if under { "yes" } else { "NO" },
            ms(info.median),
            ms(info.p99),
        );
    }
    println!(
        "probe target (p99 under {} ms on every format): {}",
        PROBE_TARGET.as_millis(),
        if all_under { "MET" } else { "MISSED" }
    );

    println!();
    println!(
        "-- end to end, process spawn included (median of {SPAWN_RUNS} runs, stdout to /dev/null) --"
    );
    let spawn_floor = stats(time_runs(SPAWN_RUNS, || {
        spawn_ok(&mut Command::new("true"));
    }));
    println!(
        "spawn floor (`true`): median {:.2} ms",
        ms(spawn_floor.median)
    );
    if tools.ffprobe {
        let floor = startup_floor("ffprobe");
        println!("ffprobe startup floor (`ffprobe -version`): median {floor:.2} ms");
    }
    let Some(sluice) = sluice else {
        println!("SKIPPED: no sluice binary (see the build message above)");
        return Ok(());
    };
    if !tools.ffprobe {
        println!("(ffprobe missing: sluice info timed alone)");
    }
    println!(
        "{:<6} {:>13} {:>11} {:>15}",
        "format", "sluice info", "ffprobe", "sluice/ffprobe"
    );
    for f in files {
        let mut sl = Command::new(sluice);
        sl.arg("info").arg(&f.path);
        spawn_ok(&mut sl); // warm-up, and fail early if it errors
        let s = stats(time_runs(SPAWN_RUNS, || spawn_ok(&mut sl)));
        if tools.ffprobe {
            let mut fp = Command::new("ffprobe");
            fp.args(["-v", "error", "-show_format", "-show_streams"])
                .arg(&f.path);
            spawn_ok(&mut fp);
            let p = stats(time_runs(SPAWN_RUNS, || spawn_ok(&mut fp)));
            println!(
                "{:<6} {:>10.2} ms {:>8.2} ms {:>14.2}x",
                f.label,
                ms(s.median),
                ms(p.median),
                s.median.as_secs_f64() / p.median.as_secs_f64()
            );
        } else {
            println!(
                "{:<6} {:>10.2} ms {:>11} {:>15}",
                f.label,
                ms(s.median),
                "-",
                "-"
            );
        }
    }
    println!("(ratio below 1 means sluice is faster)");
    Ok(())
}

// ---------------------------------------------------------------- 2. decode throughput

fn decode_section(files: &[Fixture], tools: &Tools) -> Res<()> {
    println!();
    println!("== 2. Full-decode throughput, x real time (60 s files, best of {DECODE_RUNS}) ==");
    if !tools.ffmpeg {
        println!("(ffmpeg missing: sluice timed alone)");
    }
    println!(
        "{:<6} {:>12} {:>12} {:>14}",
        "format", "sluice xRT", "ffmpeg xRT", "sluice/ffmpeg"
    );
    let ffmpeg_floor = tools.ffmpeg.then(|| startup_floor("ffmpeg"));
    for f in files {
        let seconds = sluice_core::probe(&f.path)?
            .duration_seconds
            .unwrap_or(SHORT_SECONDS as f64);
        let mut best = Duration::MAX;
        for _ in 0..DECODE_RUNS {
            let t = Instant::now();
            let frames = decode_all(&f.path)?;
            best = best.min(t.elapsed());
            black_box(frames);
        }
        let ours = seconds / best.as_secs_f64();
        if tools.ffmpeg {
            let mut ff = Command::new("ffmpeg");
            ff.args(["-v", "error", "-i"])
                .arg(&f.path)
                .args(["-f", "null", "-"]);
            let mut best_ff = Duration::MAX;
            for _ in 0..DECODE_RUNS {
                let t = Instant::now();
                spawn_ok(&mut ff);
                best_ff = best_ff.min(t.elapsed());
            }
            let theirs = seconds / best_ff.as_secs_f64();
            println!(
                "{:<6} {:>11.0}x {:>11.0}x {:>13.2}x",
                f.label,
                ours,
                theirs,
                ours / theirs
            );
        } else {
            println!("{:<6} {:>11.0}x {:>12} {:>14}", f.label, ours, "-", "-");
        }
    }
    println!(
        "(sluice: Decoder::open + next_block loop to the end, every sample summed, in process; \
         ffmpeg: `ffmpeg -v error -i FILE -f null -`, process start included; \
         ratio above 1 means sluice is faster)"
    );
    if let Some(floor) = ffmpeg_floor {
        println!(
            "ffmpeg startup floor (`ffmpeg -version`): median {floor:.1} ms, included in (not \
             subtracted from) the ffmpeg figures"
        );
    }
    Ok(())
}

/// Decode `path` completely, summing every sample so no work can be skipped. Returns frames.
fn decode_all(path: &Path) -> Res<u64> {
    let mut dec = Decoder::open(path)?;
    let mut acc = 0f32;
    while let Some(block) = dec.next_block()? {
        for plane in block.planes() {
            acc += plane.iter().sum::<f32>();
        }
    }
    black_box(acc);
    Ok(dec.frames_decoded())
}

// ---------------------------------------------------------------- 3. streaming memory

fn memory_section(
    dir: &Path,
    short_wav: &Path,
    pcm: &[i16],
    short: &[Fixture],
    tools: &Tools,
) -> Res<()> {
    println!();
    println!("== 3. Streaming memory: peak RSS (VmHWM) of a child decoding the whole file ==");
    let t = Instant::now();
    // 1, 10 and 60 minutes: the middle point tells a one-off rise from growth with length.
    let mut rows: Vec<(&str, Vec<PathBuf>)> = vec![("WAV", vec![short_wav.to_path_buf()])];
    if tools.flac {
        let short_flac = short
            .iter()
            .find(|f| f.label == "FLAC")
            .map(|f| f.path.clone())
            .ok_or("no 60 s FLAC")?;
        rows.push(("FLAC", vec![short_flac]));
    } else {
        println!("(flac missing: FLAC memory test skipped)");
    }
    for minutes in [MID_REPEATS, LONG_REPEATS] {
        let wav = dir.join(format!("programme-{minutes}min.wav"));
        write_wav(&wav, pcm, minutes)?;
        if tools.flac {
            let flac = wav.with_extension("flac");
            flac_encode(&wav, &flac)?;
            rows[1].1.push(flac);
        }
        rows[0].1.push(wav);
    }
    println!(
        "made the 10 and 60 min files in {:.1} s: {}",
        t.elapsed().as_secs_f64(),
        rows.iter()
            .map(|(l, p)| format!("{l} {} / {}", mb(file_len(&p[1])), mb(file_len(&p[2]))))
            .collect::<Vec<_>>()
            .join(", ")
    );

    let exe = std::env::current_exe()?;
    println!(
        "{:<6} {:>10} {:>10} {:>10} {:>10} {:>12} {:>13} {:>9} {:>10}",
        "format",
        "baseline",
        "1 min",
        "10 min",
        "60 min",
        "60/1 ratio",
        "10->60 min",
        "verdict",
        "60 min xRT"
    );
    let mut verdicts = Vec::new();
    for (label, paths) in &rows {
        let r: Vec<RssReport> = paths
            .iter()
            .zip([1, MID_REPEATS, LONG_REPEATS])
            .map(|(p, minutes)| rss_measure(&exe, p, (minutes * SHORT_SECONDS) as f64))
            .collect::<Res<_>>()?;
        let kb = |i: usize| r[i].hwm_kb as i64;
        // Allocator noise is a few hundred kB: growth counts past 512 kB.
        let noise = 512;
        let verdict = if kb(2) - kb(0) <= noise {
            "flat"
        } else if kb(2) - kb(1) <= noise {
            "bounded"
        } else {
            "GROWS"
        };
        verdicts.push(format!(
            "{label}: {verdict} ({:+.1} MB from 1 to 60 min, {:+.1} MB from 10 to 60 min; \
             heap+stacks resident after decoding 1/10/60 min: {:.1}/{:.1}/{:.1} MB)",
            (kb(2) - kb(0)) as f64 / 1024.0,
            (kb(2) - kb(1)) as f64 / 1024.0,
            r[0].anon_kb as f64 / 1024.0,
            r[1].anon_kb as f64 / 1024.0,
            r[2].anon_kb as f64 / 1024.0,
        ));
        println!(
            "{:<6} {:>7.1} MB {:>7.1} MB {:>7.1} MB {:>7.1} MB {:>12.3} {:>+10.1} MB {:>9} {:>9.0}x",
            label,
            r[2].base_kb as f64 / 1024.0,
            kb(0) as f64 / 1024.0,
            kb(1) as f64 / 1024.0,
            kb(2) as f64 / 1024.0,
            kb(2) as f64 / kb(0) as f64,
            (kb(2) - kb(1)) as f64 / 1024.0,
            verdict,
            r[2].seconds / r[2].wall
        );
    }
    println!(
        "(baseline: the child's VmHWM before opening the file; flat: within 0.5 MB from 1 to \
         60 min; bounded: rises, but within 0.5 MB from 10 to 60 min; GROWS: still rising)"
    );
    for v in &verdicts {
        println!("peak memory {v}");
    }

    // Header-only probe should not depend on the file's length either.
    for (label, paths) in &rows {
        let long_path = &paths[2];
        sluice_core::probe(long_path)?;
        let p = stats(time_runs(PROBE_RUNS, || {
            black_box(sluice_core::probe(black_box(long_path)).expect("probe"));
        }));
        println!(
            "probe of the 60 min {label}: median {:.3} ms, p99 {:.3} ms",
            ms(p.median),
            ms(p.p99)
        );
    }
    Ok(())
}

struct RssReport {
    hwm_kb: u64,
    /// Resident anonymous memory (heap, stacks) at the end of the decode.
    anon_kb: u64,
    base_kb: u64,
    seconds: f64,
    wall: f64,
}

fn rss_measure(exe: &Path, file: &Path, expect_seconds: f64) -> Res<RssReport> {
    let out = Command::new(exe)
        .arg("--rss-child")
        .arg(file)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()?;
    if !out.status.success() {
        return Err(format!("rss child failed on {}: {}", file.display(), out.status).into());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |key: &str| -> Res<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.trim().parse::<f64>().ok())
            .ok_or_else(|| format!("rss child printed no {key}: {text}").into())
    };
    let seconds = field("seconds")?;
    if seconds != expect_seconds {
        return Err(format!(
            "rss child decoded {seconds} s of {}, expected {expect_seconds} s",
            file.display()
        )
        .into());
    }
    Ok(RssReport {
        hwm_kb: field("hwm_kb")? as u64,
        anon_kb: field("anon_kb")? as u64,
        base_kb: field("base_kb")? as u64,
        seconds,
        wall: field("wall")?,
    })
}

/// The child side: decode `path` streaming, print peak RSS.
fn rss_child(path: &Path) -> ExitCode {
    let base = vm_hwm_kb().unwrap_or(0);
    let t = Instant::now();
    let frames = match decode_all(path) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("decode failed: {e}");
            return ExitCode::FAILURE;
        }
    };
    let wall = t.elapsed().as_secs_f64();
    let Some(hwm) = vm_hwm_kb() else {
        eprintln!("no VmHWM in /proc/self/status");
        return ExitCode::FAILURE;
    };
    // Current (not peak) resident memory, split: heap and stacks vs mapped files (code).
    let anon = status_kb("RssAnon:").unwrap_or(0);
    let file = status_kb("RssFile:").unwrap_or(0);
    println!("anon_kb {anon}");
    println!("file_kb {file}");
    println!("base_kb {base}");
    println!("hwm_kb {hwm}");
    println!("frames {frames}");
    println!("seconds {}", frames as f64 / f64::from(SAMPLE_RATE));
    println!("wall {wall}");
    ExitCode::SUCCESS
}

fn vm_hwm_kb() -> Option<u64> {
    status_kb("VmHWM:")
}

/// A `kB` field of `/proc/self/status`.
fn status_kb(key: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

// ---------------------------------------------------------------- helpers

struct Tools {
    ffmpeg: bool,
    ffprobe: bool,
    flac: bool,
    lame: bool,
}

impl Tools {
    fn detect() -> Self {
        let have = |tool: &str, arg: &str| {
            Command::new(tool)
                .arg(arg)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok()
        };
        Tools {
            ffmpeg: have("ffmpeg", "-version"),
            ffprobe: have("ffprobe", "-version"),
            flac: have("flac", "--version"),
            lame: have("lame", "--version"),
        }
    }

    fn report(&self) {
        for (name, ok, what) in [
            ("ffmpeg", self.ffmpeg, "decode comparison skipped"),
            ("ffprobe", self.ffprobe, "probe comparison skipped"),
            ("flac", self.flac, "FLAC files skipped"),
            ("lame", self.lame, "MP3 file skipped"),
        ] {
            if !ok {
                println!("NOTE: `{name}` not found on PATH: {what}");
            }
        }
    }
}

/// Build `sluice` (release) and return its path; `None` (with a message) if that fails and
/// there is no earlier build.
fn sluice_binary() -> Option<PathBuf> {
    // This bench runs as target/<profile>/deps/input-<hash>; sluice lands in target/release.
    let exe = std::env::current_exe().ok()?;
    let target = exe.parent()?.parent()?.parent()?.to_path_buf();
    let bin = target.join("release").join("sluice");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent()?;
    println!("building sluice: cargo build --release -p sluice-host ...");
    let built = Command::new(cargo)
        .args(["build", "--release", "--quiet", "-p", "sluice-host"])
        .current_dir(workspace)
        .env("CARGO_TARGET_DIR", &target)
        .stdin(Stdio::null())
        .output();
    match built {
        Ok(o) if o.status.success() && bin.is_file() => Some(bin),
        other => {
            if let Ok(o) = &other {
                eprintln!("{}", String::from_utf8_lossy(&o.stderr));
            }
            if bin.is_file() {
                println!(
                    "WARNING: building sluice failed; timing the earlier build at {} (may be stale)",
                    bin.display()
                );
                Some(bin)
            } else {
                println!(
                    "WARNING: could not build sluice and {} does not exist: \
                     end-to-end `sluice info` timing skipped",
                    bin.display()
                );
                None
            }
        }
    }
}

fn interleave_i16(planes: &[Vec<f32>]) -> Vec<i16> {
    let frames = planes.first().map_or(0, Vec::len);
    let mut out = Vec::with_capacity(frames * planes.len());
    for n in 0..frames {
        for p in planes {
            out.push((p[n] * 32767.0).round().clamp(-32768.0, 32767.0) as i16);
        }
    }
    out
}

/// Write 16-bit stereo `pcm` (interleaved) `repeats` times: a long file without holding it.
fn write_wav(path: &Path, pcm: &[i16], repeats: usize) -> Res<()> {
    let spec = hound::WavSpec {
        channels: CHANNELS,
        sample_rate: SAMPLE_RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec)?;
    for _ in 0..repeats {
        let mut chunk = w.get_i16_writer(pcm.len() as u32);
        for &s in pcm {
            chunk.write_sample(s);
        }
        chunk.flush()?;
    }
    w.finalize()?;
    Ok(())
}

/// `flac -8` from `wav` into `flac`.
fn flac_encode(wav: &Path, flac: &Path) -> Res<()> {
    run_tool(
        Command::new("flac")
            .args(["-8", "--silent", "-f", "-o"])
            .arg(flac)
            .arg(wav),
    )
}

fn run_tool(cmd: &mut Command) -> Res<()> {
    let out = cmd.stdin(Stdio::null()).output()?;
    if !out.status.success() {
        return Err(format!(
            "{:?} failed ({}): {}",
            cmd,
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(())
}

/// Run `cmd` to completion with its output discarded; panics if it fails.
fn spawn_ok(cmd: &mut Command) {
    let status = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(status.success(), "{cmd:?} failed: {status}");
}

/// Median wall time in ms of `tool -version`: the cost of starting the tool at all.
fn startup_floor(tool: &str) -> f64 {
    let mut cmd = Command::new(tool);
    cmd.arg("-version");
    spawn_ok(&mut cmd);
    ms(stats(time_runs(SPAWN_RUNS, || spawn_ok(&mut cmd))).median)
}

fn time_runs(n: usize, mut f: impl FnMut()) -> Vec<Duration> {
    (0..n)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect()
}

struct Stats {
    median: Duration,
    p99: Duration,
}

fn stats(mut v: Vec<Duration>) -> Stats {
    v.sort_unstable();
    let p99 = ((v.len() * 99).div_ceil(100)).clamp(1, v.len()) - 1;
    Stats {
        median: v[v.len() / 2],
        p99: v[p99],
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn file_len(p: &Path) -> u64 {
    std::fs::metadata(p).map_or(0, |m| m.len())
}

fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".to_string())
}
