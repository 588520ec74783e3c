//! Forged headers (core/tests/common/forge.rs: absurd rates, channel counts, sample sizes,
//! declared lengths and block sizes in WAV, RF64, AIFF and FLAC) through every way into the
//! host, each process under an address-space limit of 1 GiB (`prlimit --as`): `sluice info
//! --decode`, `sluice analyze`, `sluice export`, `sluice tag`, a pipeline job of the watch host, and an HTTP
//! upload followed by its analysis. Each file gets a clear error naming it and the field, or a
//! correct result; no process is killed, and the watch host and the server carry on.

mod common;
#[path = "../../core/tests/common/forge.rs"]
mod forge;

use common::{Host, fixture, watch_command};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The address-space limit of every process here.
const LIMIT: &str = "--as=1073741824";

/// `sluice ARGS` under the limit.
fn limited(args: &[&str]) -> Command {
    let mut c = Command::new("prlimit");
    c.arg(LIMIT)
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_sluice"))
        .args(args);
    c
}

fn prlimit() -> bool {
    common::tool("prlimit").is_some()
}

#[test]
fn the_commands_refuse_forged_headers_clearly_in_bounded_memory() {
    if !prlimit() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cases = forge::all(&fixture(""));
    let mut wrong = Vec::new();
    for f in &cases {
        let path = f.write(dir.path());
        let shown = path.display().to_string();
        let out = dir.path().join(format!("{}.out.flac", f.name));
        let before = std::fs::read(&path).unwrap();
        let runs: [(&str, Vec<&str>); 5] = [
            ("info", vec!["info", "--decode", &shown]),
            ("analyze", vec!["analyze", "--json", &shown]),
            (
                "export",
                vec!["export", &shown, "-o", out.to_str().unwrap()],
            ),
            ("tag", vec!["tag", &shown]),
            // A speech-gated specification: the speech detector runs too.
            ("qc", vec!["qc", &shown, "--spec", "netflix"]),
        ];
        for (what, args) in runs {
            let o = limited(&args).output().unwrap();
            let stderr = String::from_utf8_lossy(&o.stderr);
            let stdout = String::from_utf8_lossy(&o.stdout);
            if let Some(sig) = o.status.signal() {
                wrong.push(format!(
                    "{} via {what}: killed by signal {sig}: {stderr}",
                    f.name
                ));
                continue;
            }
            // `qc` exits 1 for a file it measured that fails the specification.
            if o.status.success() || (what == "qc" && o.status.code() == Some(1)) {
                if f.field.is_some() {
                    wrong.push(format!("{} via {what}: accepted: {stdout}", f.name));
                }
                continue;
            }
            // `analyze --json` and `tag` report the error on stdout, the others on stderr.
            let msg = format!("{stdout}{stderr}");
            eprintln!(
                "{:26} {what:8} {}",
                f.name,
                stderr.lines().last().unwrap_or("")
            );
            wrong.extend(f.judge(&shown, &msg).map(|w| format!("{w} (via {what})")));
            assert!(
                what != "export" || !out.exists(),
                "{}: a refused export left {}",
                f.name,
                out.display()
            );
        }
        if f.field.is_some() {
            assert!(
                std::fs::read(&path).unwrap() == before,
                "{}: refused, but changed by `tag`",
                f.name
            );
        }
    }
    assert!(
        wrong.is_empty(),
        "{} problems:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

const PIPELINE: &str = r#"
name = "p"
watch = "inbox"
include = ["*.wav", "*.aiff", "*.flac", "*.ogg", "*.m4a", "*.mp3"]

[[output]]
path = "out/{stem}.flac"
bit_depth = 16
"#;

#[test]
fn a_watch_host_fails_forged_files_clearly_and_carries_on() {
    if !prlimit() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    common::new_root(&root, &["inbox"], &[("p", PIPELINE)]);
    let watch = watch_command(&root);
    let mut cmd = Command::new("prlimit");
    cmd.arg(LIMIT).arg("--").arg(watch.get_program());
    cmd.args(watch.get_args());
    for (k, v) in watch.get_envs() {
        if let Some(v) = v {
            cmd.env(k, v);
        }
    }
    let host = Host::start_with(&root, cmd);
    // The forged values that must be refused, one per container and field, and a good file.
    let cases: Vec<forge::Forged> = forge::all(&fixture(""))
        .into_iter()
        .filter(|f| {
            [
                "wav_rate_1778428996",
                "wav_channels_65535",
                "rf64_rate_1778428996",
                "aiff_rate_1e300",
                "aiff_channels_30000",
                "flac_rate_1048575",
                "flac_bits_3",
                "wav_data_len_4g",
                "ogg_rate_1778428996",
                "alac_channels_255",
                "mp3_frames_4g",
            ]
            .contains(&f.name.as_str())
        })
        .collect();
    assert_eq!(cases.len(), 11);
    for f in &cases {
        f.write(&root.join("inbox"));
    }
    std::fs::copy(fixture("source.wav"), root.join("inbox/good.wav")).unwrap();
    let jobs = host.settle_jobs(cases.len() + 1);
    let mut wrong = Vec::new();
    for f in &cases {
        let input = format!("inbox/{}.{}", f.name, f.ext);
        let Some(j) = jobs.iter().find(|j| j["input"] == input) else {
            wrong.push(format!("{}: no job: {jobs:#?}", f.name));
            continue;
        };
        match f.field {
            Some(field) => {
                let err = j["error"].as_str().unwrap_or_default();
                if j["state"] == "done" || !err.contains(field) || !err.contains(&f.name) {
                    wrong.push(format!("{}: {j}", f.name));
                }
            }
            None => {
                if j["state"] != "done" {
                    wrong.push(format!("{}: {j}", f.name));
                }
            }
        }
    }
    let good = jobs
        .iter()
        .find(|j| j["input"] == "inbox/good.wav")
        .unwrap();
    assert_eq!(good["state"], "done", "{good}");
    assert!(root.join("out/good.flac").is_file());
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    let st = host.stop();
    assert!(st.signal().is_none(), "the host died: {st:?}");
}

/// `sluice serve` under the limit, on a free loopback port.
struct Server {
    child: std::process::Child,
    addr: String,
    token: String,
    /// Its standard error.
    log: PathBuf,
}

impl Server {
    fn start(root: &Path) -> Server {
        Server::start_with(root, &[])
    }

    fn start_with(root: &Path, extra: &[&str]) -> Server {
        Server::launch(
            limited(&["serve", "--root", root.to_str().unwrap(), "--listen"]),
            root,
            extra,
        )
    }

    /// Without the address-space limit: for the tests that measure resident memory (glibc
    /// reserves 64 MB of address space per malloc arena, up to 8 per core, for the blocking
    /// threads of many requests at once; reserved, not resident).
    fn start_unlimited(root: &Path, extra: &[&str]) -> Server {
        let mut c = Command::new(env!("CARGO_BIN_EXE_sluice"));
        c.args(["serve", "--root", root.to_str().unwrap(), "--listen"]);
        Server::launch(c, root, extra)
    }

    fn launch(mut cmd: Command, root: &Path, extra: &[&str]) -> Server {
        let mut child = cmd
            .arg("127.0.0.1:0")
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(root.with_extension("log")).unwrap())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| panic!("first line: {line:?}"))
            .to_string();
        let token = std::fs::read_to_string(root.join(".sluice/api-token")).unwrap();
        Server {
            child,
            addr,
            token: token.trim().to_string(),
            log: root.with_extension("log"),
        }
    }

    /// One request with `Connection: close` and `body` (a file as multipart `file`, or JSON):
    /// the raw bytes sent.
    fn raw(&self, method: &str, path: &str, body: Body) -> Vec<u8> {
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nhost: {}\r\nauthorization: Bearer {}\r\nconnection: close\r\n",
            self.addr, self.token
        )
        .into_bytes();
        let (kind, content) = match body {
            Body::File(name, bytes) => {
                let mut form = format!(
                    "--XyZ\r\ncontent-disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\
                     content-type: application/octet-stream\r\n\r\n"
                )
                .into_bytes();
                form.extend_from_slice(bytes);
                form.extend_from_slice(b"\r\n--XyZ--\r\n");
                ("multipart/form-data; boundary=XyZ", form)
            }
            Body::Json(v) => ("application/json", v.to_string().into_bytes()),
            Body::None => {
                req.extend_from_slice(b"\r\n");
                return req;
            }
        };
        req.extend_from_slice(
            format!(
                "content-type: {kind}\r\ncontent-length: {}\r\n\r\n",
                content.len()
            )
            .as_bytes(),
        );
        req.extend_from_slice(&content);
        req
    }

    fn connect(&self) -> std::net::TcpStream {
        std::net::TcpStream::connect(&self.addr).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; the server's log:\n{}",
                self.addr,
                std::fs::read_to_string(&self.log).unwrap_or_default()
            )
        })
    }

    /// One request with a file as multipart `file` (or none): the status and the body.
    fn request(&self, method: &str, path: &str, body: Option<(&str, &[u8])>) -> (u16, String) {
        self.send(
            method,
            path,
            match body {
                Some((name, bytes)) => Body::File(name, bytes),
                None => Body::None,
            },
        )
    }

    /// One request: the status and the body.
    fn send(&self, method: &str, path: &str, body: Body) -> (u16, String) {
        let mut c = self.connect();
        c.set_read_timeout(Some(std::time::Duration::from_secs(60)))
            .unwrap();
        let req = self.raw(method, path, body);
        // A server that answers before the body is in (429 `busy`, a refusal) may close the
        // connection while it is sent: its answer is still read.
        let _ = c.write_all(&req);
        let mut out = Vec::new();
        let _ = c.read_to_end(&mut out);
        let text = String::from_utf8_lossy(&out).into_owned();
        // 0: no answer at all (the connection was reset).
        let status = text
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body = text
            .split_once("\r\n\r\n")
            .map_or("", |(_, b)| b)
            .to_string();
        (status, body)
    }

    fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Uploads `bytes` as `name` (waiting while the server answers 429 `busy`): its id.
    fn upload(&self, name: &str, bytes: &[u8]) -> Result<String, (u16, String)> {
        loop {
            let (st, body) = self.request("POST", "/api/audio/upload", Some((name, bytes)));
            match (st, file_id(&body)) {
                (200 | 201, Some(id)) => return Ok(id),
                (429 | 0, _) => std::thread::sleep(std::time::Duration::from_millis(100)),
                _ => return Err((st, body)),
            }
        }
    }

    /// CPU seconds the server has used so far (user + system, from /proc).
    fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap();
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        let f: Vec<&str> = after.split(' ').collect();
        // utime and stime are fields 14 and 15 of the whole line (11 and 12 after the name).
        let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
        // SAFETY: sysconf only reads a configuration value.
        ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
    }

    /// The server's peak resident memory so far, MB (VmHWM).
    fn peak_mb(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let kb: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap();
        kb / 1024.0
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

enum Body<'a> {
    None,
    File(&'a str, &'a [u8]),
    Json(serde_json::Value),
}

fn file_id(body: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    v["file_id"].as_str().map(str::to_string)
}

#[test]
fn the_server_refuses_forged_uploads_clearly_and_serves_on() {
    if !prlimit() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root: PathBuf = dir.path().join("root");
    let mut server = Server::start(&root);
    let mut wrong = Vec::new();
    for f in forge::all(&fixture("")) {
        let name = format!("{}.{}", f.name, f.ext);
        let (status, body) = server.request("POST", "/api/audio/upload", Some((&name, &f.bytes)));
        if !server.alive() {
            panic!("the server died on the upload of {name}");
        }
        match (status, file_id(&body)) {
            (200 | 201, Some(id)) => {
                if f.field.is_some() {
                    wrong.push(format!("{name}: upload accepted: {body}"));
                }
                // What was accepted is analysed, in bounded memory.
                let (st, body) =
                    server.request("GET", &format!("/api/audio/files/{id}/analysis"), None);
                if !server.alive() {
                    panic!("the server died analysing {name}");
                }
                if st != 200 && !body.contains(&name) {
                    wrong.push(format!("{name}: analysis {st}: {body}"));
                }
            }
            (400..=499, _) => {
                wrong.extend(
                    f.judge(&name, &body)
                        .map(|w| format!("{w} (upload {status})")),
                );
            }
            _ => wrong.push(format!("{name}: upload answered {status}: {body}")),
        }
    }
    // Ordinary requests are still answered.
    let good = std::fs::read(fixture("source.wav")).unwrap();
    let (st, body) = server.request("POST", "/api/audio/upload", Some(("good.wav", &good)));
    assert!(st == 200 || st == 201, "{st} {body}");
    let id = file_id(&body).unwrap();
    let (st, body) = server.request("GET", &format!("/api/audio/files/{id}/analysis"), None);
    assert_eq!(st, 200, "{body}");
    assert!(
        wrong.is_empty(),
        "{} problems:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    // Nothing refused was kept.
    let incoming = root.join("uploads/.incoming");
    assert!(
        std::fs::read_dir(&incoming).map_or(true, |mut d| d.next().is_none()),
        "left in {}",
        incoming.display()
    );
}

/// An RF64 file of 32-bit float noise at `rate` Hz and `channels` channels, `seconds` long,
/// whose `ds64` chunk declares `declared_seconds` (hours, for a hostile or cut-off file).
fn rf64_noise(path: &Path, rate: u32, channels: u16, seconds: u32, declared_seconds: u64) {
    let frames = u64::from(rate) * u64::from(seconds);
    let align = u32::from(channels) * 4;
    let declared = declared_seconds * u64::from(rate);
    let mut out = Vec::with_capacity((frames * u64::from(align)) as usize + 100);
    out.extend_from_slice(b"RF64\xFF\xFF\xFF\xFFWAVEds64");
    out.extend_from_slice(&28u32.to_le_bytes());
    out.extend_from_slice(&u64::MAX.to_le_bytes());
    out.extend_from_slice(&(declared * u64::from(align)).to_le_bytes());
    out.extend_from_slice(&declared.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(b"fmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&3u16.to_le_bytes());
    out.extend_from_slice(&channels.to_le_bytes());
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * align).to_le_bytes());
    out.extend_from_slice(&(align as u16).to_le_bytes());
    out.extend_from_slice(&32u16.to_le_bytes());
    out.extend_from_slice(b"data\xFF\xFF\xFF\xFF");
    let mut rng = sluice_core::signal::Rng::new(7);
    for _ in 0..frames * u64::from(channels) {
        let v = (rng.uniform() - 0.5) as f32 * 0.8;
        out.extend_from_slice(&v.to_le_bytes());
    }
    std::fs::write(path, out).unwrap();
}

/// Runs `cmd` to its end; its exit status and peak resident memory in MB: the largest
/// `VmHWM` read from /proc while it runs, every 2 ms. (`wait4`'s `ru_maxrss` would not do: a
/// child spawned with vfork inherits the test process's own high-water mark through exec.)
fn peak_mb(mut cmd: Command) -> (std::process::ExitStatus, f64) {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let status = format!("/proc/{}/status", child.id());
    let mut peak = 0f64;
    loop {
        if let Some(kb) = std::fs::read_to_string(&status).ok().and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        }) {
            peak = peak.max(kb / 1024.0);
        }
        if let Some(st) = child.try_wait().unwrap() {
            return (st, peak);
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

/// docs/ANALYSIS.md ("Memory"): the analysis of any file takes at most this much resident
/// memory, whatever its header says, plus what it keeps per hour of audio it holds.
const ANALYSIS_BOUND_MB: f64 = 96.0;

#[test]
fn the_worst_legal_header_analyses_within_the_documented_bound() {
    let dir = tempfile::tempdir().unwrap();
    // 384 kHz, 8 channels of float: the largest stream Sluice takes, 3 s of it; once with an
    // honest header and once declaring 3 hours.
    let honest = dir.path().join("honest.wav");
    let hours = dir.path().join("hours.wav");
    rf64_noise(&honest, 384_000, 8, 3, 3);
    rf64_noise(&hours, 384_000, 8, 3, 3 * 3600);
    let mut peaks = Vec::new();
    for p in [&honest, &hours] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
        cmd.args(["analyze", "--json"]).arg(p);
        let (st, mb) = peak_mb(cmd);
        assert!(st.success(), "{}: {st:?}", p.display());
        eprintln!("{}: {mb:.1} MB", p.display());
        assert!(
            mb < ANALYSIS_BOUND_MB,
            "{}: {mb:.1} MB, over the documented {ANALYSIS_BOUND_MB} MB",
            p.display()
        );
        peaks.push(mb);
    }
    // The declared length changes nothing that is held.
    assert!(
        (peaks[1] - peaks[0]).abs() < 8.0,
        "honest {:.1} MB, hours declared {:.1} MB",
        peaks[0],
        peaks[1]
    );
    // Nor in an export (decode, normalize with its measuring pass, resample, encode).
    let mut peaks = Vec::new();
    for p in [&honest, &hours] {
        let out = p.with_extension("out.flac");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
        cmd.arg("export")
            .arg(p)
            .args(["--normalize-lufs", "-16", "--sample-rate", "48000", "-o"])
            .arg(&out);
        let (st, mb) = peak_mb(cmd);
        assert!(st.success(), "{}: {st:?}", p.display());
        assert!(out.is_file());
        eprintln!("export {}: {mb:.1} MB", p.display());
        assert!(
            mb < EXPORT_BOUND_MB,
            "{}: {mb:.1} MB, over the documented {EXPORT_BOUND_MB} MB",
            p.display()
        );
        peaks.push(mb);
    }
    assert!(
        (peaks[1] - peaks[0]).abs() < 8.0,
        "export: honest {:.1} MB, hours declared {:.1} MB",
        peaks[0],
        peaks[1]
    );
}

/// docs/RENDERING.md ("Memory"): an export of the largest stream Sluice takes holds at most this
/// much resident memory, whatever its header says.
const EXPORT_BOUND_MB: f64 = 256.0;

/// An analysis runs at most the server's work limit (answered 503 `time_limit`), stops when its
/// client goes away (a delivery QC too), and SIGTERM stops the server within a few seconds
/// while one runs.
#[test]
fn analyses_stop_at_the_work_limit_when_their_client_goes_and_on_sigterm() {
    if !prlimit() {
        return;
    }
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    // Three hours of silence in 2 MB: tens of seconds of analysis in a debug build.
    let bomb = forge::silent_flac(3 * 3600);

    // The work limit.
    let root = dir.path().join("limited");
    let mut server = Server::start_with(&root, &["--work-limit", "1"]);
    let id = server.upload("bomb.flac", &bomb).unwrap();
    let t = Instant::now();
    let (st, body) = server.request("GET", &format!("/api/audio/files/{id}/analysis"), None);
    assert_eq!(st, 503, "{body}");
    assert!(body.contains("time_limit"), "{body}");
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    assert!(server.alive());
    drop(server);

    // A client that goes away: the server stops working for it.
    let root = dir.path().join("gone");
    let server = Server::start(&root);
    let id = server.upload("bomb.flac", &bomb).unwrap();
    let ask = server.raw(
        "GET",
        &format!("/api/audio/files/{id}/analysis"),
        Body::None,
    );
    stops_when_its_client_goes(&server, &ask, "an analysis");
    // And a delivery QC of it (speech-gated: the detector runs too).
    let ask = server.raw(
        "GET",
        &format!("/api/v1/files/{id}/qc?spec=netflix&format=html"),
        Body::None,
    );
    stops_when_its_client_goes(&server, &ask, "a delivery QC");
    drop(server);

    // SIGTERM while an analysis runs: the server is gone within a few seconds.
    let root = dir.path().join("term");
    let mut server = Server::start(&root);
    let id = server.upload("bomb.flac", &bomb).unwrap();
    let addr = server.addr.clone();
    let token = server.token.clone();
    let asking = std::thread::spawn(move || {
        let mut c = std::net::TcpStream::connect(&addr).unwrap();
        write!(
            c,
            "GET /api/audio/files/{id}/analysis HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\nconnection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        let _ = c.read_to_string(&mut out);
        out
    });
    std::thread::sleep(Duration::from_millis(1500));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(server.child.id() as i32, libc::SIGTERM) };
    let t = Instant::now();
    while server.alive() {
        assert!(
            t.elapsed() < Duration::from_secs(8),
            "the server still runs 8 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let answer = asking.join().unwrap();
    assert!(
        answer.is_empty() || answer.contains("503"),
        "the request was answered: {answer}"
    );
    assert!(
        files_named_part(&root).is_empty(),
        "temporaries left: {:?}",
        files_named_part(&root)
    );
}

/// Sends `request`, checks the server works on it, goes away: the server stops working within
/// a second and answers on.
fn stops_when_its_client_goes(server: &Server, request: &[u8], what: &str) {
    use std::time::Duration;
    {
        let mut c = server.connect();
        c.write_all(request).unwrap();
        std::thread::sleep(Duration::from_millis(1500));
        let busy = server.cpu_seconds();
        std::thread::sleep(Duration::from_millis(1500));
        assert!(server.cpu_seconds() - busy > 0.2, "{what} was not running");
    }
    std::thread::sleep(Duration::from_millis(1000));
    let before = server.cpu_seconds();
    std::thread::sleep(Duration::from_millis(2000));
    let spent = server.cpu_seconds() - before;
    assert!(
        spent < 0.4,
        "the server spent {spent:.2} s of CPU in 2 s after the client of {what} went away"
    );
    let (st, _) = server.request("GET", "/health", None);
    assert_eq!(st, 200);
}

/// Exports, batch files and mastering signatures run at most the server's work limit (the
/// request answered 503 `time_limit`, the batch's file failed with the reason), stop when
/// their client goes away, and leave no output or temporary behind.
#[test]
fn exports_batches_and_signatures_stop_at_the_work_limit_and_when_their_client_goes() {
    if !prlimit() {
        return;
    }
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    let bomb = forge::silent_flac(3 * 3600);
    let exports = |root: &Path| common::files_under(&root.join("exports"));

    let root = dir.path().join("limited");
    let mut server = Server::start_with(&root, &["--work-limit", "1"]);
    let id = server.upload("bomb.flac", &bomb).unwrap();
    // A single export: three hours to WAV.
    let t = Instant::now();
    let (st, body) = server.send(
        "POST",
        "/api/audio/export",
        Body::Json(serde_json::json!({"file_id": id, "output_path": "bomb.wav"})),
    );
    assert_eq!(st, 503, "{body}");
    assert!(
        body.contains("time_limit") && body.contains("work limit"),
        "{body}"
    );
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    assert!(exports(&root).is_empty(), "{:?}", exports(&root));
    // The mastering analysis (the signature measured from the upload).
    let t = Instant::now();
    let (st, body) = server.request("POST", "/api/analyze", Some(("bomb.flac", &bomb)));
    assert_eq!(st, 503, "{body}");
    assert!(body.contains("time_limit"), "{body}");
    assert!(t.elapsed() < Duration::from_secs(15), "{:?}", t.elapsed());
    // A batch: the file fails with the reason; the batch ends.
    let (st, body) = server.send(
        "POST",
        "/api/audio/batch/create",
        Body::Json(serde_json::json!({
            "input_files": [id],
            "output_directory": "b",
            "export_settings": {"format": "flac"},
        })),
    );
    assert_eq!(st, 200, "{body}");
    let job: serde_json::Value = serde_json::from_str(&body).unwrap();
    let job = job["job_id"].as_str().unwrap().to_string();
    let (st, body) = server.request("POST", &format!("/api/audio/batch/{job}/process"), None);
    assert_eq!(st, 200, "{body}");
    let t = Instant::now();
    let status = loop {
        let (_, body) = server.request("GET", &format!("/api/audio/batch/{job}"), None);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        if v["status"] == "completed" || v["status"] == "failed" {
            break v;
        }
        assert!(t.elapsed() < Duration::from_secs(15), "{v}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status["status"], "failed", "{status}");
    assert_eq!(status["failed_files"], serde_json::json!([id]), "{status}");
    assert!(
        status["errors"].to_string().contains("work limit"),
        "{status}"
    );
    assert!(exports(&root).is_empty(), "{:?}", exports(&root));
    assert!(server.alive());
    drop(server);

    // Clients that go away.
    let root = dir.path().join("gone");
    let server = Server::start(&root);
    let id = server.upload("bomb.flac", &bomb).unwrap();
    let ask = server.raw(
        "POST",
        "/api/audio/export",
        Body::Json(serde_json::json!({"file_id": id, "output_path": "bomb.wav"})),
    );
    stops_when_its_client_goes(&server, &ask, "an export");
    assert!(exports(&root).is_empty(), "{:?}", exports(&root));
    let ask = server.raw("POST", "/api/analyze", Body::File("bomb.flac", &bomb));
    stops_when_its_client_goes(&server, &ask, "a mastering analysis");
}

fn files_named_part(root: &Path) -> Vec<PathBuf> {
    common::files_under(root)
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".part"))
        .collect()
}

/// Twenty hostile uploads analysed at once: forged headers, the largest legal stream with hours
/// declared, and an hour of silence in a few hundred KB. The server stays under 512 MB resident
/// and answers ordinary requests throughout.
#[test]
fn twenty_hostile_uploads_analysed_at_once_keep_the_server_small_and_answering() {
    if !prlimit() {
        return;
    }
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let server = std::sync::Arc::new(Server::start_unlimited(&root, &["--work-limit", "5"]));
    let mut files: Vec<(String, Vec<u8>)> = forge::all(&fixture(""))
        .into_iter()
        .filter(|f| f.field.is_some())
        .step_by(3)
        .take(12)
        .map(|f| (format!("{}.{}", f.name, f.ext), f.bytes))
        .collect();
    let worst = dir.path().join("worst.wav");
    rf64_noise(&worst, 384_000, 8, 1, 3 * 3600);
    let worst = std::fs::read(&worst).unwrap();
    for k in 0..4 {
        // Each its own content (a file's id is its hash).
        let mut w = worst.clone();
        let n = w.len();
        w[n - 4..].copy_from_slice(&(k as f32 * 1e-3).to_le_bytes());
        files.push((format!("worst{k}.wav"), w));
    }
    for k in 0..4 {
        let mut b = forge::silent_flac(3600 + k);
        b.truncate(b.len() - 15 * k as usize);
        files.push((format!("bomb{k}.flac"), b));
    }
    assert_eq!(files.len(), 20);
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clients: Vec<_> = files
        .into_iter()
        .map(|(name, bytes)| {
            let server = std::sync::Arc::clone(&server);
            std::thread::spawn(move || match server.upload(&name, &bytes) {
                Ok(id) => {
                    let (st, body) =
                        server.request("GET", &format!("/api/audio/files/{id}/analysis"), None);
                    (name, st, body)
                }
                Err((st, body)) => (name, st, body),
            })
        })
        .collect();
    // Ordinary requests meanwhile.
    let health = {
        let server = std::sync::Arc::clone(&server);
        let done = std::sync::Arc::clone(&done);
        std::thread::spawn(move || {
            let mut slowest = Duration::ZERO;
            let mut n = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let t = Instant::now();
                let (st, _) = server.request("GET", "/health", None);
                assert_eq!(st, 200);
                slowest = slowest.max(t.elapsed());
                n += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
            (n, slowest)
        })
    };
    let mut answers = Vec::new();
    for c in clients {
        answers.push(c.join().unwrap());
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let (n, slowest) = health.join().unwrap();
    let peak = server.peak_mb();
    for (name, st, body) in &answers {
        eprintln!(
            "{name:28} {st} {}",
            body.chars().take(100).collect::<String>()
        );
        assert!(
            matches!(st, 200 | 400 | 415 | 422 | 503),
            "{name}: {st} {body}"
        );
    }
    eprintln!("health: {n} answers, slowest {slowest:?}; server peak {peak:.0} MB");
    assert!(
        n >= 5 && slowest < Duration::from_secs(2),
        "{n} {slowest:?}"
    );
    assert!(peak < 512.0, "the server reached {peak:.0} MB");
}
