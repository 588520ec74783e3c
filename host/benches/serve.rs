//! `sluice serve` under load on loopback, beside nginx in the same run (issue 24):
//!
//! ```sh
//! host/benches/install-peers.sh        # nginx (Debian), among the benches' peers
//! cargo bench -p sluice-host --bench serve
//! cargo bench -p sluice-host --bench serve -- --clients 200 --seconds 8 --uploads 50 --upload-mb 100 --blocks 4000
//! ```
//!
//! Three parts, each printed with the peer's figures and the ratio:
//!
//! 1. **A cached analysis, 200 clients.** Each material (a minute of `programme`, `dense`,
//!    `acoustic`, and `recordings` when `SLUICE_BENCH_RECORDINGS` names a folder) is uploaded
//!    and analysed once; then `--clients` connections (HTTP/1.1 keep-alive, one request at a
//!    time each) fetch `GET /api/audio/files/{id}/analysis` for `--seconds`. The peer is nginx
//!    serving the very same bytes as a static file (`worker_processes 2`, access log off).
//!    Printed: requests/s, p50 and p99 latency, and the server's CPU seconds per 1000 requests
//!    (user + system from /proc: the machine is shared, wall time alone says little).
//! 2. **`--uploads` uploads of `--upload-mb` MB at once** (multipart `POST /api/audio/upload`,
//!    the server started with `--max-uploads` equal to it, so none is turned away): WAVs of
//!    distinct noise, streamed by the client. The server's resident memory is sampled every
//!    10 ms; printed: its idle RSS before, the peak, the peak over idle (target ≤ 100 MB), the
//!    throughput and CPU. The peer is nginx storing the same request bodies with WebDAV `PUT`
//!    (master and workers summed).
//! 3. **Real-time stream.** One WebSocket session on `/api/v1/stream` (48 kHz stereo, the
//!    built-in EQ and compressor), `--blocks` blocks of 128 frames sent one at a time, each
//!    block's round trip timed until its processed audio is back (target p99 ≤ 5 ms). The peer
//!    is the same chain in process (the same wasm modules, runtime and limits, plus the
//!    session's loudness and true-peak meters) on the same blocks: what the network and the
//!    session's thread add is the difference.
//!
//! A missing nginx skips its columns with a message. The bench exits non-zero when a target is
//! missed.

mod common;

use common::{arg_value, exit_code, material_child, materials, verdict};
use futures_util::{SinkExt, StreamExt};
use sluice_core::analysis::loudness::LoudnessMeter;
use sluice_core::analysis::truepeak::TruePeakMeter;
use sluice_host::effects::{Catalog, Instance, Limits, Runtime};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader as TokioBufReader};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

/// Errors that may cross tasks.
type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

const RATE: u32 = 48_000;
const BLOCK: usize = 128;
const STREAM_P99_MS: f64 = 5.0;
const UPLOAD_OVER_IDLE_MB: f64 = 100.0;

fn main() -> ExitCode {
    if let Some(written) = material_child() {
        written.expect("the material written");
        return ExitCode::SUCCESS;
    }
    exit_code(run().map_err(|e| -> Box<dyn std::error::Error> { e }))
}

fn material_wav(dir: &Path, kind: &str, minutes: usize) -> Res<PathBuf> {
    common::material_wav(dir, kind, minutes).map_err(|e| e.to_string().into())
}

fn num(name: &str, default: usize) -> usize {
    arg_value(name)
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

// ---------------------------------------------------------------------------------------------
// Processes: CPU time and resident memory from /proc.

fn clock_ticks() -> f64 {
    // SAFETY: sysconf reads a constant.
    (unsafe { libc::sysconf(libc::_SC_CLK_TCK) }) as f64
}

/// User + system CPU seconds of the processes `pids`.
fn cpu_of(pids: &[u32]) -> f64 {
    pids.iter()
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/stat")).ok())
        .map(|s| {
            // After the command name in parentheses: field 3 is the state; 14 and 15 the times.
            let rest = &s[s.rfind(')').map_or(0, |i| i + 2)..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            let t = |i: usize| {
                f.get(i - 3)
                    .and_then(|v| v.parse::<f64>().ok())
                    .unwrap_or(0.0)
            };
            (t(14) + t(15)) / clock_ticks()
        })
        .sum()
}

/// Resident memory of the processes `pids`, MB.
fn rss_of(pids: &[u32]) -> f64 {
    pids.iter()
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/status")).ok())
        .filter_map(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
        })
        .sum::<f64>()
        / 1024.0
}

/// `pid` and its children.
fn family(pid: u32) -> Vec<u32> {
    let mut out = vec![pid];
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(p) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
                continue;
            };
            let rest = &stat[stat.rfind(')').map_or(0, |i| i + 2)..];
            if rest.split_whitespace().nth(1) == Some(&pid.to_string()) {
                out.push(p);
            }
        }
    }
    out
}

/// Samples the resident memory of `pids` every 10 ms until dropped; the peak, MB.
struct RssWatch {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<f64>>,
}

impl RssWatch {
    fn start(pids: Vec<u32>) -> RssWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let s = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut peak = 0.0f64;
            while !s.load(Ordering::Relaxed) {
                peak = peak.max(rss_of(&pids));
                std::thread::sleep(Duration::from_millis(10));
            }
            peak.max(rss_of(&pids))
        });
        RssWatch {
            stop,
            thread: Some(thread),
        }
    }
    fn peak(mut self) -> f64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().map_or(0.0, |t| t.join().unwrap_or(0.0))
    }
}

// ---------------------------------------------------------------------------------------------
// The servers.

/// A server under test: its address, the processes to measure, stopped when dropped.
struct Server {
    name: &'static str,
    child: Child,
    port: u16,
    _dir: Option<tempfile::TempDir>,
}

impl Server {
    fn pids(&self) -> Vec<u32> {
        family(self.child.id())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

fn sluice(root: &Path, max_uploads: usize) -> Res<Server> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["serve", "--root"])
        .arg(root)
        .args(["--listen", "127.0.0.1:0", "--max-uploads"])
        .arg(max_uploads.to_string())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(root.with_extension("log"))?)
        .spawn()?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().ok_or("no stdout")?).read_line(&mut line)?;
    let token = std::fs::read_to_string(root.join(".sluice/api-token"))?;
    let _ = TOKEN.set(token.trim().to_string());
    let port = line
        .trim()
        .strip_prefix("listening on http://")
        .and_then(|a| a.rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| format!("sluice serve said {line:?}"))?;
    Ok(Server {
        name: "sluice",
        child,
        port,
        _dir: None,
    })
}

fn free_port() -> Res<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// nginx serving `www` (static files) and taking `PUT /up/...` (WebDAV) into `www/up`.
fn nginx(www: &Path) -> Res<Option<Server>> {
    let exe = ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists());
    let Some(exe) = exe else {
        println!(
            "  (nginx not found: its columns are skipped; host/benches/install-peers.sh installs it)"
        );
        return Ok(None);
    };
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    std::fs::create_dir_all(www.join("up"))?;
    let d = dir.path().display();
    let conf = format!(
        "daemon off; master_process on; worker_processes 2; user root;
pid {d}/nginx.pid; error_log {d}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off; default_type application/json;
  keepalive_requests 100000000; keepalive_timeout 120s;
  client_body_temp_path {d}/body; client_max_body_size 0;
  server {{
    listen 127.0.0.1:{port};
    root {www};
    location /up/ {{ dav_methods PUT; create_full_put_path on; }}
  }}
}}
",
        www = www.display()
    );
    let conf_path = dir.path().join("nginx.conf");
    std::fs::write(&conf_path, conf)?;
    let child = Command::new(exe)
        .args(["-e", "stderr", "-c"])
        .arg(&conf_path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let t = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if t.elapsed() > Duration::from_secs(10) {
            return Err("nginx did not listen within 10 s".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    Ok(Some(Server {
        name: "nginx",
        child,
        port,
        _dir: Some(dir),
    }))
}

// ---------------------------------------------------------------------------------------------
// A small HTTP/1.1 client: one request at a time per connection, the body counted, not kept.

type Conn = TokioBufReader<TcpStream>;

async fn connect(port: u16) -> Res<Conn> {
    let s = TcpStream::connect(("127.0.0.1", port)).await?;
    s.set_nodelay(true)?;
    Ok(TokioBufReader::with_capacity(64 * 1024, s))
}

/// Reads a response: its status and body (kept when `keep`, else only counted).
async fn response(c: &mut Conn, keep: bool) -> Res<(u16, Vec<u8>, usize)> {
    let mut line = String::new();
    c.read_line(&mut line).await?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("not an HTTP response: {line:?}"))?;
    let mut len = None;
    loop {
        line.clear();
        if c.read_line(&mut line).await? == 0 {
            return Err("the connection closed in the headers".into());
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            len = v.trim().parse::<usize>().ok();
        }
    }
    let len = len.ok_or("a response without Content-Length")?;
    if keep {
        let mut body = vec![0; len];
        c.read_exact(&mut body).await?;
        Ok((status, body, len))
    } else {
        let n = tokio::io::copy(&mut (&mut *c).take(len as u64), &mut tokio::io::sink()).await?;
        if n as usize != len {
            return Err("the connection closed in the body".into());
        }
        Ok((status, Vec::new(), len))
    }
}

async fn get(c: &mut Conn, path: &str, keep: bool) -> Res<(u16, Vec<u8>, usize)> {
    let head = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    c.get_mut().write_all(head.as_bytes()).await?;
    response(c, keep).await
}

const BOUNDARY: &str = "sluicebenchboundary7d1f";

/// The root's API token, sent with every upload (nginx ignores it).
static TOKEN: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Sends `method path` with a multipart body carrying `file_name`, its content produced by
/// `chunk(i)` for i in 0..chunks (each call's bytes in order), and reads the answer.
async fn send_file(
    c: &mut Conn,
    method: &str,
    path: &str,
    file_name: &str,
    size: usize,
    mut chunk: impl FnMut(usize) -> Vec<u8>,
) -> Res<(u16, Vec<u8>)> {
    let pre = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{file_name}\"\r\nContent-Type: audio/wav\r\n\r\n"
    );
    let post = format!("\r\n--{BOUNDARY}--\r\n");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {}\r\n\r\n",
        TOKEN.get().map_or("", |t| t.as_str()),
        pre.len() + size + post.len()
    );
    let s = c.get_mut();
    s.write_all(head.as_bytes()).await?;
    s.write_all(pre.as_bytes()).await?;
    let mut sent = 0;
    let mut i = 0;
    while sent < size {
        let b = chunk(i);
        let n = b.len().min(size - sent);
        s.write_all(&b[..n]).await?;
        sent += n;
        i += 1;
    }
    s.write_all(post.as_bytes()).await?;
    let (status, body, _) = response(c, true).await?;
    Ok((status, body))
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

// ---------------------------------------------------------------------------------------------
// 1. A cached analysis under 200 clients.

struct Load {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    cpu_per_1000: f64,
    errors: usize,
}

async fn load(
    server: &Server,
    path: &str,
    expect_len: usize,
    clients: usize,
    secs: f64,
) -> Res<Load> {
    let port = server.port;
    let mut conns = Vec::new();
    for _ in 0..clients {
        conns.push(connect(port).await?);
    }
    let pids = server.pids();
    let cpu0 = cpu_of(&pids);
    let t0 = Instant::now();
    let end = t0 + Duration::from_secs_f64(secs);
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|mut c| {
            let path = path.to_string();
            tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut errors = 0;
                while Instant::now() < end {
                    let t = Instant::now();
                    match get(&mut c, &path, false).await {
                        Ok((200, _, n)) if n == expect_len => {
                            lat.push(t.elapsed().as_secs_f64() * 1e3)
                        }
                        Ok(_) => errors += 1,
                        Err(_) => {
                            errors += 1;
                            match connect(port).await {
                                Ok(n) => c = n,
                                Err(_) => break,
                            }
                        }
                    }
                }
                (lat, errors)
            })
        })
        .collect();
    let mut lat = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await?;
        lat.extend(l);
        errors += e;
    }
    let wall = t0.elapsed().as_secs_f64();
    let cpu = cpu_of(&pids) - cpu0;
    lat.sort_by(f64::total_cmp);
    Ok(Load {
        rps: lat.len() as f64 / wall,
        p50_ms: pct(&lat, 0.5),
        p99_ms: pct(&lat, 0.99),
        cpu_per_1000: cpu / lat.len().max(1) as f64 * 1000.0,
        errors,
    })
}

/// Uploads `wav` and fetches its analysis once (the first fetch analyses; later ones read the
/// stored report): the upload's id and the report's bytes.
async fn analysed(port: u16, wav: &Path) -> Res<(String, Vec<u8>)> {
    let bytes = std::fs::read(wav)?;
    let mut c = connect(port).await?;
    let size = bytes.len();
    let name = wav.file_name().unwrap_or_default().to_string_lossy();
    let (status, body) = send_file(&mut c, "POST", "/api/audio/upload", &name, size, |i| {
        let at = i * (1 << 20);
        bytes[at..(at + (1 << 20)).min(size)].to_vec()
    })
    .await?;
    if status != 200 {
        return Err(format!(
            "upload of {}: {status} {}",
            wav.display(),
            String::from_utf8_lossy(&body)
        )
        .into());
    }
    let v: serde_json::Value = serde_json::from_slice(&body)?;
    let id = v["file_id"].as_str().ok_or("no file_id")?.to_string();
    let path = format!("/api/audio/files/{id}/analysis");
    let (status, first, _) = get(&mut c, &path, true).await?;
    if status != 200 {
        return Err(format!("analysis: {status} {}", String::from_utf8_lossy(&first)).into());
    }
    let (_, second, _) = get(&mut c, &path, true).await?;
    if first != second {
        return Err("the analysis differs between two fetches: not the stored report".into());
    }
    Ok((id, first))
}

// ---------------------------------------------------------------------------------------------
// 2. Uploads at once.

struct Uploads {
    idle_mb: f64,
    peak_mb: f64,
    wall: f64,
    cpu: f64,
    failed: Vec<String>,
}

/// A WAV header for `data` bytes of 48 kHz stereo 16-bit PCM.
fn wav_header(data: u32) -> Vec<u8> {
    let mut h = Vec::with_capacity(44);
    h.extend_from_slice(b"RIFF");
    h.extend_from_slice(&(36 + data).to_le_bytes());
    h.extend_from_slice(b"WAVEfmt ");
    h.extend_from_slice(&16u32.to_le_bytes());
    h.extend_from_slice(&1u16.to_le_bytes());
    h.extend_from_slice(&2u16.to_le_bytes());
    h.extend_from_slice(&RATE.to_le_bytes());
    h.extend_from_slice(&(RATE * 4).to_le_bytes());
    h.extend_from_slice(&4u16.to_le_bytes());
    h.extend_from_slice(&16u16.to_le_bytes());
    h.extend_from_slice(b"data");
    h.extend_from_slice(&data.to_le_bytes());
    h
}

/// A megabyte of 16-bit noise at about −12 dBFS, different for every `seed`.
fn noise(seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..(1 << 19))
        .flat_map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (((x >> 48) as i16) / 4).to_le_bytes()
        })
        .collect()
}

async fn uploads(
    server: &Server,
    n: usize,
    mb: usize,
    path_of: impl Fn(usize) -> String,
) -> Res<Uploads> {
    let pids = server.pids();
    let idle_mb = rss_of(&pids);
    let watch = RssWatch::start(pids.clone());
    let cpu0 = cpu_of(&pids);
    let t0 = Instant::now();
    let size = mb << 20;
    let data = u32::try_from(size - 44)?;
    let tasks: Vec<_> = (0..n)
        .map(|k| {
            let (port, path) = (server.port, path_of(k));
            tokio::spawn(async move {
                let block = noise(k as u64 + 1);
                let mut c = connect(port).await?;
                let (status, body) = send_file(
                    &mut c,
                    if path.starts_with("/up/") {
                        "PUT"
                    } else {
                        "POST"
                    },
                    &path,
                    &format!("noise-{k}.wav"),
                    size,
                    |i| {
                        if i == 0 {
                            let mut b = wav_header(data);
                            b.extend_from_slice(&block[44..]);
                            b
                        } else {
                            block.clone()
                        }
                    },
                )
                .await?;
                Res::Ok((k, status, body))
            })
        })
        .collect();
    let mut failed = Vec::new();
    for t in tasks {
        match t.await? {
            Ok((_, 200 | 201 | 204, _)) => {}
            Ok((k, s, b)) => {
                failed.push(format!("upload {k}: {s} {}", String::from_utf8_lossy(&b)))
            }
            Err(e) => failed.push(e.to_string()),
        }
    }
    let wall = t0.elapsed().as_secs_f64();
    let cpu = cpu_of(&pids) - cpu0;
    Ok(Uploads {
        idle_mb,
        peak_mb: watch.peak(),
        wall,
        cpu,
        failed,
    })
}

// ---------------------------------------------------------------------------------------------
// 3. The real-time stream.

const CHAIN: &[(&str, &[(&str, f64)])] = &[
    (
        "eq",
        &[
            ("type", 4.0),
            ("freq_hz", 2000.0),
            ("q", 1.0),
            ("gain_db", 4.0),
        ],
    ),
    (
        "compressor",
        &[("threshold_db", -20.0), ("ratio", 4.0), ("makeup_db", 3.0)],
    ),
];

fn interleaved(wav: &Path, blocks: usize) -> Res<Vec<f32>> {
    let mut r = hound::WavReader::open(wav)?;
    let n = blocks * BLOCK * 2;
    let s: Vec<f32> = r
        .samples::<i16>()
        .take(n)
        .map(|s| s.map(|v| f32::from(v) / 32768.0))
        .collect::<Result<_, _>>()?;
    if s.len() < n {
        return Err(format!("{}: shorter than {blocks} blocks", wav.display()).into());
    }
    Ok(s)
}

/// Round trips of `audio` in 128-frame blocks through a session, ms, sorted.
async fn stream(port: u16, audio: &[f32]) -> Res<Vec<f64>> {
    let tcp = TcpStream::connect(("127.0.0.1", port)).await?;
    tcp.set_nodelay(true)?;
    let (mut ws, _) =
        tokio_tungstenite::client_async(format!("ws://127.0.0.1:{port}/api/v1/stream"), tcp)
            .await?;
    let chain: Vec<serde_json::Value> = CHAIN
        .iter()
        .map(|(e, p)| {
            let params: serde_json::Map<String, serde_json::Value> = p
                .iter()
                .map(|(k, v)| (k.to_string(), (*v).into()))
                .collect();
            serde_json::json!({"effect": e, "params": params})
        })
        .collect();
    let open = serde_json::json!({"sample_rate": RATE, "channels": 2, "chain": chain, "max_frames": BLOCK});
    ws.send(Message::Text(open.to_string().into())).await?;
    match ws.next().await {
        Some(Ok(Message::Text(t))) if t.contains("\"ready\"") => {}
        other => return Err(format!("the session did not open: {other:?}").into()),
    }
    let mut lat = Vec::new();
    for block in audio.chunks_exact(BLOCK * 2) {
        let bytes: Vec<u8> = block.iter().flat_map(|v| v.to_le_bytes()).collect();
        let t = Instant::now();
        ws.send(Message::Binary(bytes.into())).await?;
        loop {
            match ws.next().await {
                Some(Ok(Message::Binary(b))) if b.len() == BLOCK * 8 => break,
                Some(Ok(Message::Text(t))) if t.contains("\"meters\"") => {}
                other => return Err(format!("in the session: {other:?}").into()),
            }
        }
        lat.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let _ = ws.close(None).await;
    lat.sort_by(f64::total_cmp);
    Ok(lat)
}

/// The same chain and meters in this process, per block, ms, sorted.
fn in_process(catalog: &Catalog, audio: &[f32]) -> Res<Vec<f64>> {
    let mut chain = Vec::new();
    for (name, params) in CHAIN {
        let entry = catalog
            .get(name)
            .ok_or_else(|| format!("no effect {name}"))?;
        let mut inst = Instance::new(
            catalog.runtime(),
            &entry.effect,
            RATE,
            2,
            BLOCK,
            Limits::default(),
        )?;
        for (k, v) in *params {
            let i = entry
                .effect
                .descriptor
                .params
                .iter()
                .position(|p| p.id == *k)
                .ok_or_else(|| format!("{name}: no parameter {k}"))?;
            inst.set_param(i, *v)?;
        }
        chain.push(inst);
    }
    let mut loudness = LoudnessMeter::new(RATE, vec![1.0; 2]);
    let mut peaks = [TruePeakMeter::new(RATE), TruePeakMeter::new(RATE)];
    let mut planes = [Vec::with_capacity(BLOCK), Vec::with_capacity(BLOCK)];
    let mut lat = Vec::new();
    let mut out = Vec::with_capacity(BLOCK * 8);
    for block in audio.chunks_exact(BLOCK * 2) {
        let t = Instant::now();
        for p in &mut planes {
            p.clear();
        }
        for (i, v) in block.iter().enumerate() {
            planes[i % 2].push(*v);
        }
        for inst in &mut chain {
            let mut views: Vec<&mut [f32]> = planes.iter_mut().map(|p| p.as_mut_slice()).collect();
            inst.process(&mut views)?;
        }
        let views: Vec<&[f32]> = planes.iter().map(|p| p.as_slice()).collect();
        loudness.feed(&views);
        for (m, p) in peaks.iter_mut().zip(&planes) {
            m.feed(p);
        }
        out.clear();
        for i in 0..BLOCK {
            for p in &planes {
                out.extend_from_slice(&p[i].to_le_bytes());
            }
        }
        std::hint::black_box(&out);
        lat.push(t.elapsed().as_secs_f64() * 1e3);
    }
    lat.sort_by(f64::total_cmp);
    Ok(lat)
}

// ---------------------------------------------------------------------------------------------

fn run() -> Res<bool> {
    let clients = num("--clients", 200);
    let secs = num("--seconds", 8) as f64;
    let n_uploads = num("--uploads", 50);
    let upload_mb = num("--upload-mb", 100);
    let blocks = num("--blocks", 4000);
    // Which parts run (all by default): `--parts load,uploads,stream`.
    let parts = arg_value("--parts").unwrap_or_else(|| "load,uploads,stream".into());
    let part = |p: &str| parts.split(',').any(|x| x.trim() == p);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let work = tempfile::tempdir()?;
    let wavs = work.path().join("wavs");
    std::fs::create_dir_all(&wavs)?;
    let root = work.path().join("root");
    std::fs::create_dir_all(&root)?;
    let www = work.path().join("www");
    std::fs::create_dir_all(&www)?;
    // SAFETY: raising our own soft limit of open files to its hard limit (200 clients and two
    // servers' worth of sockets).
    unsafe {
        let mut l: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) == 0 {
            l.rlim_cur = l.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &l);
        }
    }
    let sl = sluice(&root, n_uploads)?;
    let ng = nginx(&www)?;
    let mut pass = true;

    if part("load") {
        println!(
            "\n1. A cached analysis: {clients} clients (keep-alive), {secs} s per server and material"
        );
        println!(
            "  {:<11} {:>7} | {:>9} {:>8} {:>8} {:>9} | {:>9} {:>8} {:>8} {:>9} | {:>7} {:>7}",
            "material",
            "bytes",
            "sluice/s",
            "p50 ms",
            "p99 ms",
            "cpu/1k s",
            "nginx/s",
            "p50 ms",
            "p99 ms",
            "cpu/1k s",
            "rps ×",
            "cpu ×"
        );
        let mut worst_rps_ratio = f64::INFINITY;
        for kind in materials() {
            let wav = material_wav(&wavs, kind, 1)?;
            let (id, report) = rt.block_on(analysed(sl.port, &wav))?;
            std::fs::write(www.join(format!("{kind}.json")), &report)?;
            let s = rt.block_on(load(
                &sl,
                &format!("/api/audio/files/{id}/analysis"),
                report.len(),
                clients,
                secs,
            ))?;
            let n = match &ng {
                Some(ng) => Some(rt.block_on(load(
                    ng,
                    &format!("/{kind}.json"),
                    report.len(),
                    clients,
                    secs,
                ))?),
                None => None,
            };
            let f = |v: Option<f64>, w: usize, d: usize| {
                v.map_or(format!("{:>w$}", "-"), |v| format!("{v:>w$.d$}"))
            };
            let ratio = n.as_ref().map(|n| s.rps / n.rps);
            let cpu_ratio = n.as_ref().map(|n| s.cpu_per_1000 / n.cpu_per_1000);
            if let Some(r) = ratio {
                worst_rps_ratio = worst_rps_ratio.min(r);
            }
            println!(
                "  {:<11} {:>7} | {:>9.0} {:>8.2} {:>8.2} {:>9.3} | {} {} {} {} | {} {}",
                kind,
                report.len(),
                s.rps,
                s.p50_ms,
                s.p99_ms,
                s.cpu_per_1000,
                f(n.as_ref().map(|n| n.rps), 9, 0),
                f(n.as_ref().map(|n| n.p50_ms), 8, 2),
                f(n.as_ref().map(|n| n.p99_ms), 8, 2),
                f(n.as_ref().map(|n| n.cpu_per_1000), 9, 3),
                f(ratio, 7, 2),
                f(cpu_ratio, 7, 2),
            );
            let errors = s.errors + n.as_ref().map_or(0, |n| n.errors);
            if errors > 0 {
                println!(
                    "  {kind}: {errors} requests failed (sluice {}, nginx {})",
                    s.errors,
                    errors - s.errors
                );
                pass = false;
            }
        }
        if worst_rps_ratio.is_finite() {
            println!(
                "  worst: sluice answers {worst_rps_ratio:.2}× nginx's requests per second (no target; nginx sends a file it has open)"
            );
        }
    }
    if part("uploads") {
        println!(
            "\n2. {n_uploads} uploads of {upload_mb} MB at once (distinct noise WAVs, streamed)"
        );
        println!(
            "  {:<7} {:>8} {:>9} {:>12} {:>8} {:>9} {:>8}",
            "server", "idle MB", "peak MB", "over idle MB", "wall s", "MB/s", "cpu s"
        );
        let total_mb = (n_uploads * upload_mb) as f64;
        let up = rt.block_on(uploads(&sl, n_uploads, upload_mb, |_| {
            "/api/audio/upload".into()
        }))?;
        let show = |name: &str, u: &Uploads| {
            println!(
                "  {:<7} {:>8.1} {:>9.1} {:>12.1} {:>8.1} {:>9.0} {:>8.1}",
                name,
                u.idle_mb,
                u.peak_mb,
                u.peak_mb - u.idle_mb,
                u.wall,
                total_mb / u.wall,
                u.cpu
            );
            for f in u.failed.iter().take(5) {
                println!("    failed: {f}");
            }
        };
        show(sl.name, &up);
        let over = up.peak_mb - up.idle_mb;
        let ok = up.failed.is_empty() && over <= UPLOAD_OVER_IDLE_MB;
        pass &= ok;
        // The uploads take disk: gone before the peer's arrive.
        let _ = std::fs::remove_dir_all(root.join("uploads"));
        if let Some(ng) = &ng {
            let u = rt.block_on(uploads(ng, n_uploads, upload_mb, |k| {
                format!("/up/noise-{k}.wav")
            }))?;
            show(ng.name, &u);
            println!(
                "  sluice/nginx: wall {:.2}×, cpu {:.2}× (sluice hashes each upload with BLAKE3 and probes it)",
                up.wall / u.wall,
                up.cpu / u.cpu
            );
            let _ = std::fs::remove_dir_all(www.join("up"));
        }
        println!(
            "  sluice's peak over idle: {over:.1} MB (target ≤ {UPLOAD_OVER_IDLE_MB} MB): {}",
            verdict(ok)
        );
    }
    if part("stream") {
        println!(
            "\n3. Real-time stream: {blocks} blocks of {BLOCK} frames, 48 kHz stereo, EQ + compressor, one at a time"
        );
        println!(
            "  {:<11} | {:>8} {:>8} {:>8} | {:>8} {:>8} {:>8} | {:>10}",
            "material", "ws p50", "ws p99", "ws max", "in p50", "in p99", "in max", "p99 added"
        );
        let catalog = Catalog::load(Runtime::new(None)?, None);
        let mut worst_p99 = 0.0f64;
        for kind in materials() {
            let wav = material_wav(&wavs, kind, 1)?;
            let audio = interleaved(&wav, blocks)?;
            let ws = rt.block_on(stream(sl.port, &audio))?;
            let inp = in_process(&catalog, &audio)?;
            worst_p99 = worst_p99.max(pct(&ws, 0.99));
            println!(
                "  {:<11} | {:>8.3} {:>8.3} {:>8.3} | {:>8.3} {:>8.3} {:>8.3} | {:>10.3}",
                kind,
                pct(&ws, 0.5),
                pct(&ws, 0.99),
                pct(&ws, 1.0),
                pct(&inp, 0.5),
                pct(&inp, 0.99),
                pct(&inp, 1.0),
                pct(&ws, 0.99) - pct(&inp, 0.99)
            );
        }
        let ok = worst_p99 <= STREAM_P99_MS;
        pass &= ok;
        println!(
            "  worst p99 round trip: {worst_p99:.3} ms (target ≤ {STREAM_P99_MS} ms; a block is {:.2} ms of audio): {}",
            BLOCK as f64 / f64::from(RATE) * 1e3,
            verdict(ok)
        );
    }
    drop(ng);
    drop(sl);
    Ok(pass)
}
