//! Helpers shared by the host's integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The `sluice` binary under test.
pub fn sluice() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
}

/// A fixture of the core's test suite.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../core/tests/fixtures")
        .join(name)
}

/// An external tool on `PATH` (or in `/usr/bin`). Missing, it is `None` and the check is
/// skipped with a notice, unless `SLUICE_REQUIRE_TOOLS=1`, when the test fails.
pub fn tool(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain([PathBuf::from("/usr/bin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file());
    if found.is_none() {
        assert!(
            std::env::var("SLUICE_REQUIRE_TOOLS").as_deref() != Ok("1"),
            "{name} is required (SLUICE_REQUIRE_TOOLS=1) but was not found"
        );
        eprintln!("SKIPPED: {name} not found (SLUICE_REQUIRE_TOOLS=1 makes this fail)");
    }
    found
}

/// A new root at `root`: its `pipelines` folder with `pipelines` (name, TOML) in it, the
/// `folders` named (relative to the root), and an empty `sluice.toml`.
pub fn new_root(root: &Path, folders: &[&str], pipelines: &[(&str, &str)]) {
    std::fs::create_dir_all(root.join("pipelines")).unwrap();
    for f in folders {
        std::fs::create_dir_all(root.join(f)).unwrap();
    }
    std::fs::write(root.join("sluice.toml"), "").unwrap();
    for (name, toml) in pipelines {
        std::fs::write(root.join(format!("pipelines/{name}.toml")), toml).unwrap();
    }
}

/// A new root under `dir` holding the repository's example pipelines.
pub fn root_with_examples(dir: &Path) -> PathBuf {
    let root = dir.join("root");
    std::fs::create_dir_all(root.join("pipelines")).unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../pipelines");
    for e in std::fs::read_dir(repo).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "toml") {
            std::fs::copy(&p, root.join("pipelines").join(p.file_name().unwrap())).unwrap();
        }
    }
    root
}

/// Planar samples written as an integer WAV of `bits` (16 or 24).
pub fn write_wav(path: &Path, planes: &[Vec<f32>], rate: u32, bits: u16) {
    let spec = hound::WavSpec {
        channels: planes.len() as u16,
        sample_rate: rate,
        bits_per_sample: bits,
        sample_format: hound::SampleFormat::Int,
    };
    let full = ((1i64 << (bits - 1)) - 1) as f32;
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for i in 0..planes[0].len() {
        for p in planes {
            w.write_sample((p[i].clamp(-1.0, 1.0) * full) as i32)
                .unwrap();
        }
    }
    w.finalize().unwrap();
}

/// `seconds` of stereo programme material (the core's generator, from `seed`) as a 44.1 kHz
/// 16-bit WAV.
pub fn programme_wav(path: &Path, seconds: f64, seed: u64) {
    let frames = (44_100.0 * seconds) as usize;
    write_wav(
        path,
        &sluice_core::signal::programme(44_100, 2, frames, seed),
        44_100,
        16,
    );
}

/// No temporary output (`*.part`) is left anywhere under `root`.
pub fn assert_no_temporaries(root: &Path) {
    let left: Vec<PathBuf> = files_under(root)
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".part"))
        .collect();
    assert!(left.is_empty(), "temporaries left: {left:#?}");
}

/// Integrated loudness (LUFS) and true peak (dBTP) of a file.
pub fn loudness(path: &Path) -> (f64, f64) {
    let opts = sluice_core::analysis::AnalysisOptions {
        sections: vec![sluice_core::analysis::Section::Loudness],
        ..Default::default()
    };
    let l = sluice_core::analysis::analyze(path, &opts, &mut |_| {})
        .unwrap()
        .loudness
        .unwrap();
    (
        l.summary.integrated_lufs.unwrap(),
        l.true_peak_dbtp.unwrap(),
    )
}

/// BLAKE3 of a file's content, hex.
pub fn blake3_hex(path: &Path) -> String {
    blake3::hash(&std::fs::read(path).unwrap())
        .to_hex()
        .to_string()
}

/// `sluice watch --root ROOT` with quick settling and rescans and two workers; tests may add
/// to it (environment, user, limits) before [`Host::start_with`].
pub fn watch_command(root: &Path) -> Command {
    let mut c = sluice();
    c.args(["watch", "--root"])
        .arg(root)
        .env("SLUICE_SETTLE_SECONDS", "1")
        .env("SLUICE_RESCAN_SECONDS", "2")
        .env("SLUICE_WORKERS", "2");
    c
}

/// A running `sluice watch`, killed when dropped. Its output goes to `ROOT.log`.
pub struct Host {
    pub child: Child,
    pub root: PathBuf,
    pub log: PathBuf,
}

impl Host {
    pub fn start(root: &Path) -> Host {
        Host::start_with(root, watch_command(root))
    }

    /// Start `cmd` (a `sluice watch` of `root`) and wait until it is watching.
    pub fn start_with(root: &Path, mut cmd: Command) -> Host {
        let log = root.with_extension("log");
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let child = cmd
            .stdout(Stdio::from(out.try_clone().unwrap()))
            .stderr(Stdio::from(out))
            .spawn()
            .unwrap();
        let h = Host {
            child,
            root: root.to_path_buf(),
            log,
        };
        h.wait_for("the host to start", || {
            std::fs::read_to_string(&h.log).is_ok_and(|l| l.contains("sluice: watching"))
        });
        h
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn wait_for(&self, what: &str, mut f: impl FnMut() -> bool) {
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(90) {
            if f() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("timed out waiting for {what}; host log:\n{}", self.log());
    }

    pub fn jobs(&self) -> Vec<serde_json::Value> {
        jobs(&self.root)
    }

    /// Wait until `n` jobs exist and none is queued or running.
    pub fn settle_jobs(&self, n: usize) -> Vec<serde_json::Value> {
        let mut last = Vec::new();
        self.wait_for(&format!("{n} finished jobs"), || {
            last = self.jobs();
            last.len() >= n
                && last
                    .iter()
                    .all(|j| j["state"] != "queued" && j["state"] != "running")
        });
        last
    }

    /// SIGTERM, then wait for the exit.
    pub fn stop(mut self) -> ExitStatus {
        // SAFETY: signalling our own child.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let t = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            assert!(
                t.elapsed() < Duration::from_secs(90),
                "the host did not stop on SIGTERM; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a finished command printed: its stdout, then its stderr.
pub fn printed(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Run `cmd`, asserting it succeeds (its stderr in the failure message); its output.
pub fn succeed(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `sluice run PIPELINE --json --root ROOT FILE`, asserting it succeeds and its one job is
/// `done` (what it printed in the failure message); that job.
pub fn run_pipeline(root: &Path, pipeline: &str, file: &Path) -> serde_json::Value {
    let out = sluice()
        .args(["run", pipeline, "--json", "--root"])
        .arg(root)
        .arg(file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", printed(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let job = v[0].clone();
    assert_eq!(job["state"], "done", "{v:#}");
    job
}

/// Every channel of an audio file Sluice reads (any format it decodes), whole.
pub fn decode_planes(path: &Path) -> Vec<Vec<f32>> {
    use sluice_core::render::Source;
    let mut file = sluice_core::render::FileSource::open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut planes = vec![Vec::new(); Source::spec(&file).channels()];
    let mut block = sluice_core::block::Block::default();
    while Source::next(&mut file, &mut block).unwrap() {
        for (c, plane) in planes.iter_mut().enumerate() {
            plane.extend_from_slice(block.plane(c));
        }
    }
    planes
}

/// The writing end of a pipe whose reading end is already closed: the first write to it
/// meets EPIPE (a reader that went away, as in `sluice jobs | head`).
pub fn closed_pipe() -> std::os::fd::OwnedFd {
    let mut fds = [0; 2];
    // SAFETY: `pipe` fills both descriptors; we close the reading one and own the other.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: both descriptors came from `pipe` above: the reading one is closed once, the
    // writing one is owned from here on.
    unsafe {
        libc::close(fds[0]);
        <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fds[1])
    }
}

/// `sluice jobs --json` of a root.
pub fn jobs(root: &Path) -> Vec<serde_json::Value> {
    let out = succeed(sluice().args(["jobs", "--json", "--root"]).arg(root));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Every file under `dir`, sorted.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Bright and transient-rich: hi-hat-like noise bursts, clicks and high partials over a quiet
/// pad, the material whose inter-sample peaks a lossy codec raises most.
pub fn bright_transients(rate: u32, seconds: f64) -> Vec<Vec<f32>> {
    let n = (f64::from(rate) * seconds) as usize;
    let sr = f64::from(rate);
    let mut rng = sluice_core::signal::Rng::new(0x2545_f491_4f6c_dd1du64);
    let mut noise = move || rng.uniform();
    let step = (sr * 0.125) as usize;
    let mut out = vec![vec![0f32; n]; 2];
    let mut prev = [0.0f64; 2];
    for i in 0..n {
        let t = i as f64 / sr;
        let since = (i % step) as f64 / sr;
        let env = (-since * 60.0).exp();
        let pad = 0.05 * (2.0 * std::f64::consts::PI * 3_520.0 * t).sin()
            + 0.04 * (2.0 * std::f64::consts::PI * 7_040.0 * t).sin();
        for (c, ch) in out.iter_mut().enumerate() {
            // First difference of white noise: a hi-hat's bright spectrum.
            let w = noise();
            let hat = (w - prev[c]) * env * 0.45;
            prev[c] = w;
            let click = if i % (step * 4) < 3 { 0.9 } else { 0.0 };
            ch[i] = (hat + click + pad) as f32;
        }
    }
    out
}

/// Three genres whose tracks differ in spectrum, dynamics and width.
pub fn genres() -> [(&'static str, sluice_core::signal::Style); 3] {
    use sluice_core::signal::Style;
    [
        (
            "Ambient",
            Style {
                tilt_db_per_octave: -4.5,
                band_gains_db: [3.0, 1.0, 0.0, -2.0, -4.0],
                correlation: 0.4,
                pulse_depth: 0.05,
                sections_db: 6.0,
                bpm: 70.0,
            },
        ),
        (
            "techno",
            Style {
                tilt_db_per_octave: -2.0,
                band_gains_db: [5.0, -2.0, -2.0, 1.0, 2.0],
                correlation: 0.8,
                pulse_depth: 0.7,
                sections_db: 1.0,
                bpm: 130.0,
            },
        ),
        (
            "podcast",
            Style {
                tilt_db_per_octave: -3.0,
                band_gains_db: [-6.0, 2.0, 4.0, 1.0, -5.0],
                correlation: 1.0,
                pulse_depth: 0.4,
                sections_db: 3.0,
                bpm: 100.0,
            },
        ),
    ]
}

/// An effect module in WAT that follows the ABI (two channels, no parameters, buffers at 1024
/// and 1024 + 16384, so blocks of up to 4096 frames) with its descriptor's `tail_seconds`, and
/// hostile parts put in: `init` runs in `sluice_init` (the rate is in `$rate`), `start` is the
/// body of a wasm start function, `latency` the body of `sluice_latency`, `process` the body of
/// `sluice_process` (frames in `$n`, locals `$i` and `$a`; pass-through when empty).
pub struct Wat<'a> {
    pub name: &'a str,
    pub tail_seconds: f64,
    pub init: &'a str,
    pub start: Option<&'a str>,
    pub latency: Option<&'a str>,
    pub process: &'a str,
}

impl Wat<'_> {
    pub fn plain(name: &str) -> Wat<'_> {
        Wat {
            name,
            tail_seconds: 0.0,
            init: "",
            start: None,
            latency: None,
            process: "",
        }
    }

    pub fn bytes(&self) -> Vec<u8> {
        let desc = format!(
            r#"{{"abi":1,"name":"{}","version":"1","tail_seconds":{},"max_channels":2}}"#,
            self.name, self.tail_seconds
        );
        let start = self
            .start
            .map(|b| format!("(func $start {b}) (start $start)"))
            .unwrap_or_default();
        let latency = self
            .latency
            .map(|b| format!(r#"(func (export "sluice_latency") (result i32) {b})"#))
            .unwrap_or_default();
        let text = format!(
            r#"(module
  (memory (export "memory") 2)
  (global $rate (mut i32) (i32.const 0))
  {start}
  (func (export "sluice_init") (param i32 i32 i32) (result i32)
    (global.set $rate (local.get 0))
    {init}
    (i32.const 0))
  (func (export "sluice_buffer") (param $ch i32) (result i32)
    (i32.add (i32.const 1024) (i32.mul (local.get $ch) (i32.const 16384))))
  (func (export "sluice_set_param") (param i32 f32) (result i32) (i32.const 6))
  (func (export "sluice_reset"))
  {latency}
  (func (export "sluice_process") (param $n i32) (result i32)
    (local $i i32) (local $a i32)
    {process}
    (i32.const 0))
  (@custom "sluice_effect" {desc:?})
)"#,
            init = self.init,
            process = self.process,
        );
        wat::parse_str(text).unwrap()
    }
}

/// A private certificate authority and a server certificate it signed, made with `openssl`
/// in `dir`: `ca.pem` (the authority), `leaf.pem` and `leaf.key` (for `localhost` and
/// 127.0.0.1).
pub fn test_authority(openssl: &Path, dir: &Path) {
    let run = |args: &[&str]| {
        let out = Command::new(openssl)
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=Sluice test authority",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "leaf.key",
        "-out",
        "leaf.csr",
        "-subj",
        "/CN=localhost",
    ]);
    std::fs::write(
        dir.join("leaf.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "leaf.pem",
        "-days",
        "2",
        "-extfile",
        "leaf.ext",
    ]);
}

/// Amplitude of the `freq` component of `x` at `rate` (a single-bin DFT over whole periods of
/// the middle half).
pub fn component(x: &[f32], rate: u32, freq: f64) -> f64 {
    let rate = f64::from(rate);
    let n = ((x.len() as f64 / 2.0 * freq / rate).floor() * rate / freq) as usize;
    let start = (x.len() - n) / 2;
    let (mut re, mut im) = (0.0f64, 0.0f64);
    for (i, v) in x[start..start + n].iter().enumerate() {
        let ph = std::f64::consts::TAU * freq * i as f64 / rate;
        re += f64::from(*v) * ph.cos();
        im += f64::from(*v) * ph.sin();
    }
    2.0 * (re * re + im * im).sqrt() / n as f64
}

/// A 32-bit float WAV of `planes`.
pub fn write_float_wav(path: &Path, planes: &[Vec<f32>], rate: u32) {
    let spec = hound::WavSpec {
        channels: planes.len() as u16,
        sample_rate: rate,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for i in 0..planes[0].len() {
        for p in planes {
            w.write_sample(p[i]).unwrap();
        }
    }
    w.finalize().unwrap();
}

/// A float WAV's channels.
pub fn read_float_wav(p: &Path) -> Vec<Vec<f32>> {
    let mut r = hound::WavReader::open(p).unwrap();
    let ch = r.spec().channels as usize;
    let all: Vec<f32> = r.samples::<f32>().map(Result::unwrap).collect();
    (0..ch)
        .map(|c| all.iter().skip(c).step_by(ch).copied().collect())
        .collect()
}
