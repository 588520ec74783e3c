//! Forged headers (core/tests/common/forge.rs: absurd rates, channel counts, sample sizes,
//! declared lengths and block sizes in WAV, RF64, AIFF and FLAC) through every way into the
//! host, each process under an address-space limit of 1 GiB (`prlimit --as`): `sluice info
//! --decode`, `sluice analyze`, `sluice export`, a pipeline job of the watch host, and an HTTP
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

/// What is wrong with the message `msg` about the forged file `f` at `path`, if anything.
fn judge(f: &forge::Forged, shown: &str, msg: &str) -> Option<String> {
    if !msg.contains(shown) {
        return Some(format!(
            "{}: the error does not name the file: {msg}",
            f.name
        ));
    }
    match f.field {
        Some(field) if !msg.contains(field) => Some(format!(
            "{}: the error does not name the field {field:?}: {msg}",
            f.name
        )),
        _ => None,
    }
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
        let runs: [(&str, Vec<&str>); 3] = [
            ("info", vec!["info", "--decode", &shown]),
            ("analyze", vec!["analyze", "--json", &shown]),
            (
                "export",
                vec!["export", &shown, "-o", out.to_str().unwrap()],
            ),
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
            if o.status.success() {
                if f.field.is_some() {
                    wrong.push(format!("{} via {what}: accepted: {stdout}", f.name));
                }
                continue;
            }
            // `analyze --json` reports the error in its JSON, the others on stderr.
            let msg = format!("{stdout}{stderr}");
            eprintln!(
                "{:26} {what:8} {}",
                f.name,
                stderr.lines().last().unwrap_or("")
            );
            wrong.extend(judge(f, &shown, &msg).map(|w| format!("{w} (via {what})")));
            assert!(
                !out.exists(),
                "{}: a refused export left {}",
                f.name,
                out.display()
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
include = ["*.wav", "*.aiff", "*.flac"]

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
    std::fs::create_dir_all(root.join("pipelines")).unwrap();
    std::fs::create_dir_all(root.join("inbox")).unwrap();
    std::fs::write(root.join("sluice.toml"), "").unwrap();
    std::fs::write(root.join("pipelines/p.toml"), PIPELINE).unwrap();
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
            ]
            .contains(&f.name.as_str())
        })
        .collect();
    assert_eq!(cases.len(), 8);
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
}

impl Server {
    fn start(root: &Path) -> Server {
        let mut child = limited(&["serve", "--root", root.to_str().unwrap(), "--listen"])
            .arg("127.0.0.1:0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
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
        }
    }

    /// One request with `Connection: close`: the status and the body.
    fn request(&self, method: &str, path: &str, body: Option<(&str, &[u8])>) -> (u16, String) {
        let mut c = std::net::TcpStream::connect(&self.addr).unwrap();
        c.set_read_timeout(Some(std::time::Duration::from_secs(60)))
            .unwrap();
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nhost: {}\r\nauthorization: Bearer {}\r\nconnection: close\r\n",
            self.addr, self.token
        )
        .into_bytes();
        match body {
            Some((name, bytes)) => {
                let mut form = format!(
                    "--XyZ\r\ncontent-disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\
                     content-type: application/octet-stream\r\n\r\n"
                )
                .into_bytes();
                form.extend_from_slice(bytes);
                form.extend_from_slice(b"\r\n--XyZ--\r\n");
                req.extend_from_slice(
                    format!(
                        "content-type: multipart/form-data; boundary=XyZ\r\ncontent-length: {}\r\n\r\n",
                        form.len()
                    )
                    .as_bytes(),
                );
                req.extend_from_slice(&form);
            }
            None => req.extend_from_slice(b"\r\n"),
        }
        c.write_all(&req).unwrap();
        let mut out = Vec::new();
        let _ = c.read_to_end(&mut out);
        let text = String::from_utf8_lossy(&out).into_owned();
        let status = text
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status in {text:?}"));
        let body = text
            .split_once("\r\n\r\n")
            .map_or("", |(_, b)| b)
            .to_string();
        (status, body)
    }

    fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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
                wrong.extend(judge(&f, &name, &body).map(|w| format!("{w} (upload {status})")));
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

/// Runs `cmd` to its end; its exit status and peak resident memory in MB (wait4's rusage of
/// that one child).
#[allow(clippy::zombie_processes)] // reaped by wait4 below, which std's `Child` cannot do
fn peak_mb(mut cmd: Command) -> (std::process::ExitStatus, f64) {
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child, filling the two values we pass; the `Child` is not
    // waited for again.
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(rc, pid);
    (
        std::process::ExitStatus::from_raw(status),
        usage.ru_maxrss as f64 / 1024.0,
    )
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
}
