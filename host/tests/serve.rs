//! `sluice serve` from outside: a Python client of the specifications' routes (`requests`,
//! as their users write them) walks every route and field against the real binary on a
//! loopback port, and attacks: a missing or wrong token, uploads over the limit or not audio,
//! a listen beyond loopback. Each refusal leaves nothing in the root and the server serving.

mod common;

use common::{files_under, sluice, tool, write_wav};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A running `sluice serve`, stopped (SIGTERM) when dropped.
struct Server {
    child: Child,
    url: String,
    token: String,
}

impl Server {
    fn start(root: &Path, listen: &str, extra: &[&str]) -> Server {
        let mut child = sluice()
            .args(["serve", "--root"])
            .arg(root)
            .args(["--listen", listen])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("sluice serve starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| panic!("first line: {line:?}"));
        // Reached on loopback whatever address it listens on.
        let port = addr.rsplit(':').next().unwrap();
        let token = std::fs::read_to_string(root.join(".sluice/api-token")).unwrap();
        Server {
            child,
            url: format!("http://127.0.0.1:{port}"),
            token: token.trim().to_string(),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

/// `python3` with `requests`, or `None` (skipped unless SLUICE_REQUIRE_TOOLS=1).
fn python() -> Option<PathBuf> {
    python_with("requests", "requests")
}

/// `python3` that can import `modules` (a Python import list) as well as `requests`, or
/// `None` (skipped unless SLUICE_REQUIRE_TOOLS=1); `pip` names the packages.
fn python_with(modules: &str, pip: &str) -> Option<PathBuf> {
    let py = tool("python3")?;
    let ok = Command::new(&py)
        .args(["-c", &format!("import requests, {modules}")])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var("SLUICE_REQUIRE_TOOLS").as_deref() != Ok("1"),
            "python3 with {modules} is required (SLUICE_REQUIRE_TOOLS=1): pip install requests {pip}"
        );
        eprintln!("SKIPPED: python3 lacks {modules} (pip install requests {pip})");
        return None;
    }
    Some(py)
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/api")
        .join(name)
}

fn run_script(py: &Path, name: &str, args: &[&str]) {
    let out = Command::new(py)
        .arg(script(name))
        .args(args)
        .output()
        .unwrap();
    let text = common::printed(&out);
    assert!(out.status.success(), "{name} failed:\n{text}");
    eprint!("{text}");
}

/// Nothing is left in the uploads' temporary folder.
fn no_incoming(root: &Path) {
    let left = files_under(&root.join("uploads/.incoming"));
    assert!(left.is_empty(), "temporaries left: {left:?}");
}

#[test]
fn a_client_of_the_specification_walks_every_route() {
    let Some(py) = python() else { return };
    let Some(flac) = tool("flac") else { return };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    // A 6 s programme, 48 kHz 24-bit, and a tagged FLAC made by the reference encoder.
    let audio = dir.path().join("take.wav");
    let planes = sluice_core::signal::programme(48_000, 2, 6 * 48_000, 7);
    write_wav(&audio, &planes, 48_000, 24);
    let short = dir.path().join("short.wav");
    write_wav(
        &short,
        &planes
            .iter()
            .map(|p| p[..2 * 48_000].to_vec())
            .collect::<Vec<_>>(),
        48_000,
        16,
    );
    let tagged = dir.path().join("tagged.flac");
    let made = Command::new(flac)
        .args(["-s", "-f"])
        .args(["-T", "TITLE=Night Drive", "-T", "ARTIST=The Testers"])
        .args([
            "-T",
            "ALBUM=Fixtures",
            "-T",
            "GENRE=Ambient",
            "-T",
            "DATE=2024",
        ])
        .args(["-T", "BPM=120", "-T", "INITIALKEY=Am", "-o"])
        .arg(&tagged)
        .arg(&short)
        .status()
        .unwrap();
    assert!(made.success());

    let server = Server::start(&root, "127.0.0.1:0", &[]);
    run_script(
        &py,
        "spec_flows.py",
        &[
            &server.url,
            &server.token,
            &root.display().to_string(),
            &audio.display().to_string(),
            &tagged.display().to_string(),
        ],
    );
    // Two contents kept, each once, in the dated layout; nothing else.
    let kept: Vec<PathBuf> = files_under(&root.join("uploads"));
    let day = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .strftime("%Y/%m/%d")
        .to_string();
    let names: Vec<String> = kept
        .iter()
        .map(|p| {
            p.strip_prefix(root.join("uploads"))
                .unwrap()
                .display()
                .to_string()
        })
        .collect();
    assert_eq!(
        names.len(),
        2,
        "one file per content, nothing else: {names:?}"
    );
    for n in ["take.wav", "tagged.flac"] {
        assert!(names.contains(&format!("{day}/{n}")), "{n} in {names:?}");
    }
    assert_eq!(
        common::blake3_hex(&root.join("uploads").join(&day).join("take.wav")),
        common::blake3_hex(&audio)
    );
    no_incoming(&root);
    // The export as another program reads it: 48 kHz 24-bit, 5 s, at -16 LUFS.
    let out = root.join("exports/mixes/take-48k.wav");
    let info = sluice_core::probe(&out).unwrap();
    assert_eq!(
        (info.sample_rate, info.bit_depth, info.channels),
        (48_000, Some(24), 2)
    );
    assert!((info.duration_seconds.unwrap() - 5.0).abs() < 0.01);
    let (lufs, _) = common::loudness(&out);
    assert!((lufs + 16.0).abs() < 0.5, "{lufs}");
    assert!(root.join("exports/mixes/take.flac").is_file());
    // The batch's outputs: 44.1 kHz 16-bit FLAC.
    for name in ["take.flac", "tagged.flac"] {
        let info = sluice_core::probe(&root.join("exports/batch1").join(name)).unwrap();
        assert_eq!(
            (info.format, info.sample_rate, info.bit_depth),
            ("flac", 44_100, Some(16)),
            "{name}"
        );
    }
}

#[test]
fn refusals_leave_nothing_behind_and_the_server_serves_on() {
    let Some(py) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let audio = dir.path().join("take.wav");
    let planes = sluice_core::signal::programme(48_000, 2, 3 * 48_000, 3);
    write_wav(&audio, &planes, 48_000, 16);
    // Links in the export area: out of the root, and to elsewhere in it.
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::create_dir_all(root.join("exports")).unwrap();
    std::fs::create_dir_all(root.join("uploads")).unwrap();
    std::os::unix::fs::symlink(&outside, root.join("exports/link")).unwrap();
    std::os::unix::fs::symlink(root.join("uploads"), root.join("exports/inner")).unwrap();
    // A limit of 1 MB; the take is 576 kB.
    let server = Server::start(&root, "127.0.0.1:0", &["--max-upload-mb", "1"]);
    run_script(
        &py,
        "attacks.py",
        &[
            "loopback",
            &server.url,
            &server.token,
            &root.display().to_string(),
            &audio.display().to_string(),
        ],
    );
    no_incoming(&root);
    let escaped: Vec<PathBuf> = files_under(&outside)
        .into_iter()
        .chain(files_under(dir.path()).into_iter().filter(|p| {
            // The upload named escape.wav is in uploads/ (reached through the link, too).
            p.file_name().is_some_and(|n| n == "escape.wav")
                && !p
                    .canonicalize()
                    .unwrap()
                    .starts_with(root.join("uploads").canonicalize().unwrap())
        }))
        .collect();
    assert!(
        escaped.is_empty(),
        "written outside the export area: {escaped:?}"
    );
    drop(server);

    // Beyond loopback every route but /health needs the token.
    let server = Server::start(&root, "0.0.0.0:0", &[]);
    run_script(
        &py,
        "attacks.py",
        &[
            "open",
            &server.url,
            &server.token,
            &root.display().to_string(),
            &audio.display().to_string(),
        ],
    );
}

/// The root's `n` exports, each a 44.1 kHz FLAC that probes: with its length in seconds.
fn exported_flacs(root: &Path, n: usize) -> Vec<(PathBuf, f64)> {
    let written: Vec<PathBuf> = files_under(&root.join("exports"));
    assert_eq!(written.len(), n, "{written:?}");
    written
        .into_iter()
        .map(|w| {
            let info = sluice_core::probe(&w).unwrap();
            assert_eq!((info.format, info.sample_rate), ("flac", 44_100), "{w:?}");
            let seconds = info.duration_seconds.unwrap();
            (w, seconds)
        })
        .collect()
}

#[test]
fn a_batch_cut_off_by_a_kill_finishes_after_a_restart_with_each_output_once() {
    let Some(py) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let files: Vec<PathBuf> = (0..3)
        .map(|i| {
            let p = dir.path().join(format!("in{i}.wav"));
            let planes = sluice_core::signal::programme(48_000, 2, 40 * 48_000, 20 + i);
            write_wav(&p, &planes, 48_000, 24);
            p
        })
        .collect();
    let mut server = Server::start(&root, "127.0.0.1:0", &[]);
    let mut args: Vec<String> = vec![
        script("crash.py").display().to_string(),
        "start".into(),
        server.url.clone(),
        server.token.clone(),
    ];
    args.extend(files.iter().map(|f| f.display().to_string()));
    let out = Command::new(&py).args(&args).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let job = String::from_utf8_lossy(&out.stdout).trim().to_string();
    // Killed while the batch runs (its first file takes a good part of a second).
    std::thread::sleep(std::time::Duration::from_millis(300));
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    std::mem::forget(server);

    let server = Server::start(&root, "127.0.0.1:0", &[]);
    run_script(
        &py,
        "crash.py",
        &["finish", &server.url, &server.token, &job, "3"],
    );
    drop(server);
    // Each output once, whole; no temporary left anywhere.
    for (w, seconds) in exported_flacs(&root, 3) {
        assert!((seconds - 40.0).abs() < 0.01, "{w:?}");
    }
    common::assert_no_temporaries(&root);
    no_incoming(&root);
}

/// Two batches at once share the root's `workers` export slots (never more running, both
/// used), progress only rises, and a file whose stored upload is spoiled fails alone with
/// its reason.
#[test]
fn batches_share_the_export_workers_and_a_bad_file_fails_alone() {
    let Some(py) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("sluice.toml"), "workers = 2\n").unwrap();
    let mut files: Vec<String> = (0..6)
        .map(|i| {
            let p = dir.path().join(format!("in{i}.wav"));
            let planes = sluice_core::signal::programme(48_000, 2, 20 * 48_000, 60 + i);
            write_wav(&p, &planes, 48_000, 24);
            p.display().to_string()
        })
        .collect();
    let bad = dir.path().join("spoiled.wav");
    write_wav(
        &bad,
        &sluice_core::signal::programme(48_000, 2, 48_000, 99),
        48_000,
        24,
    );
    files.push(bad.display().to_string());
    let server = Server::start(&root, "127.0.0.1:0", &[]);
    let mut args = vec![
        server.url.clone(),
        server.token.clone(),
        root.display().to_string(),
    ];
    args.extend(files);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run_script(&py, "batch_pool.py", &args);
    drop(server);
    // Six outputs, each whole; nothing for the spoiled file; no temporary.
    for (w, seconds) in exported_flacs(&root, 6) {
        assert!((seconds - 20.0).abs() < 0.01, "{w:?}");
    }
    common::assert_no_temporaries(&root);
}

/// The mastering routes walked by a Python client: references of two families of generated
/// tracks, a track with a low-mid boost analysed against its family at the three levels, the
/// closest references, refusals. Then the library as `sluice ref list` sees it.
#[test]
fn a_client_walks_the_mastering_flow() {
    use sluice_core::signal::{Style, styled};
    let Some(py) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let tracks = dir.path().join("tracks");
    std::fs::create_dir_all(&tracks).unwrap();
    // Two of the reference tests' families (Ambient, techno), and techno with +6 dB in the
    // low-mid band.
    let [(_, ambient), (_, techno), _] = common::genres();
    let muddy = Style {
        band_gains_db: [5.0, 4.0, -2.0, 1.0, 2.0],
        ..techno
    };
    let rate = 44_100;
    for (name, style, seed) in [
        ("techno1", &techno, 1),
        ("techno2", &techno, 2),
        ("techno3", &techno, 3),
        ("ambient1", &ambient, 4),
        ("ambient2", &ambient, 5),
        ("muddy", &muddy, 6),
    ] {
        let planes = styled(rate, 6.0, style, seed);
        write_wav(&tracks.join(format!("{name}.wav")), &planes, rate, 24);
    }
    write_wav(
        &tracks.join("silent.wav"),
        &[vec![0.0; 5 * rate as usize], vec![0.0; 5 * rate as usize]],
        rate,
        16,
    );
    let server = Server::start(&root, "127.0.0.1:0", &[]);
    run_script(
        &py,
        "mastering_flow.py",
        &[
            &server.url,
            &server.token,
            &root.display().to_string(),
            &tracks.display().to_string(),
        ],
    );
    drop(server);
    no_incoming(&root);
    // The library the API built is the one `sluice ref` keeps.
    let out = common::succeed(
        sluice()
            .args(["ref", "list", "--json", "--root"])
            .arg(&root),
    );
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let genres: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["genre"].as_str().unwrap())
        .collect();
    assert_eq!(genres, ["techno", "techno", "ambient", "ambient"], "{list}");
}

/// A new root with the example pipelines and `[server]` on a loopback port the system
/// chooses, and `sluice watch` running on it (its first stdout line says where it listens).
fn watch_with_server(root: &Path, server_toml: &str) -> Server {
    sluice_host::commands::init_root(root).unwrap();
    let toml = std::fs::read_to_string(root.join("sluice.toml")).unwrap();
    let toml = format!(
        "settle_seconds = 0.3\nrescan_seconds = 1\nworkers = 1\n{toml}\n[server]\nlisten = \"127.0.0.1:0\"\n{server_toml}"
    );
    std::fs::write(root.join("sluice.toml"), toml).unwrap();
    let mut child = sluice()
        .args(["watch", "--root"])
        .arg(root)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(root.with_extension("log")).unwrap())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = loop {
        let line = lines
            .next()
            .expect("the watch host says where it listens")
            .unwrap();
        if let Some(a) = line.trim().strip_prefix("listening on ") {
            break a.to_string();
        }
        assert!(
            !line.contains("HTTP server stopped"),
            "the server did not start: {line}"
        );
    };
    let token = std::fs::read_to_string(root.join(".sluice/api-token")).unwrap();
    Server {
        child,
        url,
        token: token.trim().to_string(),
    }
}

/// `sluice watch` with `[server]` in sluice.toml: the host and the API in one process. A
/// Python client submits files to a pipeline over `/api/v1/`, follows them on the live feed,
/// reads the job, its report and events, retries the one that failed.
#[test]
fn the_watch_host_serves_its_jobs_over_api_v1() {
    let Some(py) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let audio = dir.path().join("episode.wav");
    let planes = sluice_core::signal::programme(44_100, 2, 5 * 44_100, 3);
    write_wav(&audio, &planes, 44_100, 16);
    let server = watch_with_server(&root, "");
    run_script(
        &py,
        "v1_flow.py",
        &[
            &server.url,
            &server.token,
            &root.display().to_string(),
            &audio.display().to_string(),
        ],
    );
    // SIGTERM stops the host and its server together, and a client left on the live feed (a
    // dashboard left open) does not hold the stop.
    let addr = server.url.trim_start_matches("http://").to_string();
    let mut feed = std::net::TcpStream::connect(&addr).unwrap();
    std::io::Write::write_all(
        &mut feed,
        format!("GET /api/v1/events HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes(),
    )
    .unwrap();
    let mut head = [0u8; 64];
    let n = std::io::Read::read(&mut feed, &mut head).unwrap();
    assert!(
        String::from_utf8_lossy(&head[..n]).starts_with("HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&head[..n])
    );
    let mut server = server;
    // SAFETY: signalling our own child.
    unsafe { libc::kill(server.child.id() as i32, libc::SIGTERM) };
    let t = std::time::Instant::now();
    loop {
        if server.child.try_wait().unwrap().is_some() {
            break;
        }
        assert!(
            t.elapsed() < std::time::Duration::from_secs(8),
            "sluice watch still running 8 s after SIGTERM with a client on the live feed"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    drop(feed);
    drop(server);
    no_incoming(&root);
}

/// The dashboard in headless Chromium (the Debian package), driven over the DevTools protocol
/// by a Python script: a file dropped on the drop zone, its job followed to done in the live
/// table, its report's facts and pictures shown; screenshots of the dashboard and the API
/// reference kept in `target/tmp/dashboard/` and checked for content.
#[test]
fn the_dashboard_works_in_a_real_browser() {
    let Some(py) = python_with("websocket, PIL", "websocket-client pillow") else {
        return;
    };
    let Some(chromium) = tool("chromium") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let audio = dir.path().join("interview take 2.wav");
    let planes = sluice_core::signal::programme(44_100, 2, 8 * 44_100, 11);
    write_wav(&audio, &planes, 44_100, 24);
    let server = watch_with_server(&root, "");
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard");
    run_script(
        &py,
        "dashboard.py",
        &[
            &server.url,
            &server.token,
            &audio.display().to_string(),
            &chromium.display().to_string(),
            &out.display().to_string(),
        ],
    );
    drop(server);
    // The pictures were drawn once, kept by content.
    let plots = files_under(&root.join(".sluice/plots"));
    assert_eq!(plots.len(), 3, "{plots:?}");
    no_incoming(&root);
}

/// A module of the effect ABI that passes audio through, and traps (`unreachable`) when a
/// block starts above 0.9 (the host's load probe feeds quieter noise, so it loads).
fn trapping_effect() -> Vec<u8> {
    let desc = r#"{"abi":1,"name":"trap","version":"1","tail_seconds":0,"max_channels":2}"#;
    wat::parse_str(format!(
        r#"(module
  (memory (export "memory") 2)
  (func (export "sluice_init") (param i32 i32 i32) (result i32) (i32.const 0))
  (func (export "sluice_buffer") (param $ch i32) (result i32)
    (i32.add (i32.const 1024) (i32.mul (local.get $ch) (i32.const 32768))))
  (func (export "sluice_set_param") (param i32 f32) (result i32) (i32.const 6))
  (func (export "sluice_reset"))
  (func (export "sluice_process") (param $n i32) (result i32)
    (if (f32.gt (f32.abs (f32.load (i32.const 1024))) (f32.const 0.9)) (then unreachable))
    (i32.const 0))
  (@custom "sluice_effect" {desc:?})
)"#
    ))
    .unwrap()
}

/// Real-time processing over the WebSocket, from a Python client (websocket-client): the
/// built-in gain measured, EQ + compressor in 128-frame blocks, meters; bad openings, a
/// malformed block, a flood and a trapping effect each end their own session with a reason,
/// and the server serves on.
#[test]
fn live_audio_is_processed_over_the_websocket_and_attacks_end_only_their_session() {
    let Some(py) = python_with("websocket", "websocket-client") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("effects")).unwrap();
    std::fs::write(root.join("effects/trap.wasm"), trapping_effect()).unwrap();
    let server = Server::start(&root, "127.0.0.1:0", &[]);
    run_script(
        &py,
        "stream_flow.py",
        &[&server.url, &root.display().to_string()],
    );
}

/// A WebSocket handshake to `/api/v1/stream` on `addr` with `origin` (if any), and the first
/// answer's head: the stream stays open after a `101`.
fn ws_handshake(addr: &str, origin: Option<&str>) -> (std::net::TcpStream, String) {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(std::time::Duration::from_secs(15)))
        .unwrap();
    let origin = origin
        .map(|o| format!("origin: {o}\r\n"))
        .unwrap_or_default();
    write!(
        c,
        "GET /api/v1/stream HTTP/1.1\r\nhost: {addr}\r\nupgrade: websocket\r\n\
         connection: Upgrade\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         sec-websocket-version: 13\r\n{origin}\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && c.read(&mut byte).unwrap_or(0) == 1 {
        head.push(byte[0]);
    }
    (c, String::from_utf8_lossy(&head).into_owned())
}

/// A page of another origin cannot open a real-time session (browsers apply no CORS to
/// WebSockets; through `convolve`'s data a session could read any audio file of the root back):
/// 403 `forbidden_origin`, while the server's own pages, an allowed origin and clients that
/// are not browsers (no `Origin`) are let in. An opened session that sends nothing for the
/// request timeout is closed, its slot given back (16 idle sessions held every slot for ever).
#[test]
fn stream_sessions_refuse_foreign_pages_and_end_when_idle() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let server = Server::start(
        &root,
        "127.0.0.1:0",
        &[
            "--request-timeout",
            "2",
            "--cors-origin",
            "https://app.example",
        ],
    );
    let addr = server.url.trim_start_matches("http://").to_string();

    let (mut c, head) = ws_handshake(&addr, Some("https://evil.example"));
    assert!(head.starts_with("HTTP/1.1 403"), "{head}");
    let mut body = String::new();
    let _ = c.read_to_string(&mut body);
    assert!(body.contains("\"kind\":\"forbidden_origin\""), "{body}");

    for origin in [
        None,
        Some(format!("http://{addr}")),
        Some("https://app.example".to_string()),
    ] {
        let (_c, head) = ws_handshake(&addr, origin.as_deref());
        assert!(head.starts_with("HTTP/1.1 101"), "{origin:?}: {head}");
    }

    // An opened session left idle.
    let (mut c, head) = ws_handshake(&addr, None);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let open = br#"{"sample_rate": 48000, "channels": 2, "max_frames": 128, "chain": []}"#;
    let mask = [7u8, 1, 3, 9];
    let mut frame = vec![0x81, 0x80 | open.len() as u8];
    frame.extend_from_slice(&mask);
    frame.extend(open.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    c.write_all(&frame).unwrap();
    let t = std::time::Instant::now();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n @ 1..) = c.read(&mut buf) {
        seen.extend_from_slice(&buf[..n]);
    }
    let seen = String::from_utf8_lossy(&seen);
    assert!(seen.contains("\"ready\""), "{seen}");
    assert!(seen.contains("nothing received for 2 s"), "{seen}");
    assert!(
        t.elapsed() < std::time::Duration::from_secs(10),
        "closed after {:?}",
        t.elapsed()
    );
}

/// One request a webhook receiver got: its headers (names in lower case) and body, and the
/// status it was answered with.
struct Hook {
    headers: std::collections::HashMap<String, String>,
    body: Vec<u8>,
    status: u16,
}

/// A webhook receiver on a loopback port: answers 500 to the first request (to be retried),
/// 200 to the others, and keeps them all.
fn webhook_receiver() -> (String, std::sync::Arc<std::sync::Mutex<Vec<Hook>>>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hooks/sluice", listener.local_addr().unwrap());
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Hook>::new()));
    let kept = got.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let head_end = loop {
                let n = conn.read(&mut chunk).unwrap_or(0);
                if n == 0 {
                    break None;
                }
                buf.extend_from_slice(&chunk[..n]);
                if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break Some(i + 4);
                }
            };
            let Some(head_end) = head_end else { continue };
            let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
            let headers: std::collections::HashMap<String, String> = head
                .lines()
                .skip(1)
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                .collect();
            let len: usize = headers
                .get("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            while buf.len() < head_end + len {
                let n = conn.read(&mut chunk).unwrap_or(0);
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            let mut all = kept.lock().unwrap();
            let status = if all.is_empty() { 500 } else { 200 };
            all.push(Hook {
                headers,
                body: buf[head_end..].to_vec(),
                status,
            });
            drop(all);
            let _ = write!(
                conn,
                "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
        }
    });
    (url, got)
}

/// `[[server.webhook]]`: a finished job and a quarantined one are posted to the receiver,
/// signed (HMAC-SHA256 of the body with the secret), the first delivery retried after the
/// receiver's 500; events the webhook did not ask for are not posted.
#[test]
fn webhooks_post_job_events_signed_and_retry_a_failing_receiver() {
    use hmac::Mac;
    let (url, got) = webhook_receiver();
    let secret = "a-long-enough-test-secret";
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let server = watch_with_server(
        &root,
        &format!(
            "[[server.webhook]]\nurl = \"{url}\"\nevents = [\"done\", \"quarantined\"]\nsecret = \"{secret}\"\n"
        ),
    );
    let staged = dir.path().join("show.wav");
    let planes = sluice_core::signal::programme(44_100, 2, 4 * 44_100, 5);
    write_wav(&staged, &planes, 44_100, 16);
    std::fs::rename(&staged, root.join("inbox/podcast/show.wav")).unwrap();
    std::fs::write(
        dir.path().join("bad.wav"),
        b"not audio at all, only text".repeat(50),
    )
    .unwrap();
    std::fs::rename(
        dir.path().join("bad.wav"),
        root.join("inbox/podcast/bad.wav"),
    )
    .unwrap();
    let t = std::time::Instant::now();
    let events = loop {
        let done: Vec<(String, u16)> = got
            .lock()
            .unwrap()
            .iter()
            .map(|h| (h.headers["x-sluice-event"].clone(), h.status))
            .collect();
        let ok = |k: &str| done.iter().any(|(e, s)| e == k && *s == 200);
        if ok("done") && ok("quarantined") {
            break done;
        }
        assert!(
            t.elapsed() < std::time::Duration::from_secs(90),
            "deliveries so far: {done:?}; the host said:\n{}",
            std::fs::read_to_string(root.with_extension("log")).unwrap_or_default()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    drop(server);
    let hooks = got.lock().unwrap();
    // The first was refused and sent again, with the same delivery id.
    assert_eq!(hooks[0].status, 500);
    assert_eq!(
        hooks[0].headers["x-sluice-delivery"],
        hooks[1].headers["x-sluice-delivery"]
    );
    assert_eq!(hooks[0].body, hooks[1].body);
    assert!(
        events
            .iter()
            .all(|(e, _)| e == "done" || e == "quarantined"),
        "only the events asked for: {events:?}"
    );
    for h in hooks.iter() {
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(&h.body);
        let want: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(h.headers["x-sluice-signature"], format!("sha256={want}"));
        assert_eq!(h.headers["content-type"], "application/json");
        let body: serde_json::Value = serde_json::from_slice(&h.body).unwrap();
        assert_eq!(body["event"], h.headers["x-sluice-event"].as_str());
        assert_eq!(body["job"]["state"], body["event"], "{body}");
        let input = body["job"]["input"].as_str().unwrap();
        match body["event"].as_str().unwrap() {
            "done" => {
                assert_eq!(input, "inbox/podcast/show.wav");
                assert_eq!(body["job"]["outputs"].as_array().unwrap().len(), 2);
            }
            _ => assert_eq!(input, "inbox/podcast/bad.wav"),
        }
    }
}

/// `[[server.webhook]]` over https: a receiver whose certificate the webhook's `ca_file` (a
/// private authority, made here with openssl) signed gets the job's event, signed; the same
/// receiver named by a webhook without that authority gets nothing (the system's roots do not
/// know it), and the host says why.
#[test]
fn webhooks_reach_https_receivers_and_check_their_certificate() {
    use hmac::Mac;
    let (Some(py), Some(openssl)) = (tool("python3"), tool("openssl")) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    common::test_authority(&openssl, d);
    let got = d.join("received.jsonl");
    let mut receiver = Command::new(&py)
        .arg(script("https_receiver.py"))
        .args([d.join("leaf.pem"), d.join("leaf.key"), got.clone()])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(receiver.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line
        .trim()
        .strip_prefix("port ")
        .expect("the receiver's port");
    let secret = "a-long-enough-test-secret";
    let root = d.join("root");
    let server = watch_with_server(
        &root,
        &format!(
            "[[server.webhook]]\nurl = \"https://localhost:{port}/trusted\"\nevents = [\"done\"]\nsecret = \"{secret}\"\nca_file = \"{}\"\n\
             [[server.webhook]]\nurl = \"https://localhost:{port}/untrusted\"\nevents = [\"done\"]\nsecret = \"{secret}\"\n",
            d.join("ca.pem").display()
        ),
    );
    let staged = d.join("show.wav");
    let planes = sluice_core::signal::programme(44_100, 2, 3 * 44_100, 8);
    write_wav(&staged, &planes, 44_100, 16);
    std::fs::rename(&staged, root.join("inbox/podcast/show.wav")).unwrap();
    let log = root.with_extension("log");
    let t = std::time::Instant::now();
    let hooks: Vec<serde_json::Value> = loop {
        let hooks: Vec<serde_json::Value> = std::fs::read_to_string(&got)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let said = std::fs::read_to_string(&log).unwrap_or_default();
        let refused = said
            .lines()
            .any(|l| l.contains("/untrusted") && l.contains("certificate"));
        if !hooks.is_empty() && refused {
            break hooks;
        }
        assert!(
            t.elapsed() < std::time::Duration::from_secs(90),
            "deliveries so far: {hooks:?}; the host said:\n{said}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    drop(server);
    let _ = receiver.kill();
    let _ = receiver.wait();
    assert!(
        hooks.iter().all(|h| h["path"] == "/trusted"),
        "only the webhook that trusts the authority was delivered: {hooks:?}"
    );
    let h = &hooks[0];
    assert_eq!(h["headers"]["x-sluice-event"], "done");
    let body = h["body"].as_str().unwrap();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    let want: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(h["headers"]["x-sluice-signature"], format!("sha256={want}"));
    let body: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(body["job"]["input"], "inbox/podcast/show.wav");
}

/// Sends a raw HTTP/1.1 request (with `Connection: close`) and returns the whole answer.
fn raw_http(addr: &str, request: &[u8]) -> String {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    c.write_all(request).unwrap();
    let mut out = Vec::new();
    let _ = c.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// A multipart upload of `body` as `name`, with the token.
fn upload_request(addr: &str, token: &str, name: &str, body: &[u8]) -> Vec<u8> {
    let mut form = format!(
        "--XyZ\r\ncontent-disposition: form-data; name=\"file\"; filename=\"{name}\"\r\ncontent-type: audio/wav\r\n\r\n"
    )
    .into_bytes();
    form.extend_from_slice(body);
    form.extend_from_slice(b"\r\n--XyZ--\r\n");
    let mut req = format!(
        "POST /api/audio/upload HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {token}\r\ncontent-type: multipart/form-data; boundary=XyZ\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        form.len()
    )
    .into_bytes();
    req.extend_from_slice(&form);
    req
}

/// `sluice serve` with no flags takes its listening address and upload limits from the
/// root's `[server]` table, as `sluice watch` does (before, the flags' defaults always won: it
/// listened on 127.0.0.1:8750 and took 2 GB uploads whatever the table said); a flag still
/// wins over the table.
#[test]
fn serve_takes_its_address_and_limits_from_the_roots_server_table() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    common::new_root(&root, &[], &[]);
    std::fs::write(
        root.join("sluice.toml"),
        "[server]\nlisten = \"127.0.0.1:0\"\nmax_upload_mb = 1\n",
    )
    .unwrap();
    let wav = dir.path().join("big.wav");
    // 8 s of 16-bit stereo at 44.1 kHz: 1.4 MB, over the table's 1 MB.
    let planes = sluice_core::signal::programme(44_100, 2, 8 * 44_100, 3);
    write_wav(&wav, &planes, 44_100, 16);
    let audio = std::fs::read(&wav).unwrap();
    assert!(audio.len() > 1_000_000);
    let start = |extra: &[&str]| {
        let mut child = sluice()
            .args(["serve", "--root"])
            .arg(&root)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let token = std::fs::read_to_string(root.join(".sluice/api-token")).unwrap();
        (child, line.trim().to_string(), token.trim().to_string())
    };
    let stop = |mut child: Child| {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let _ = child.wait();
    };

    let (child, line, token) = start(&[]);
    let addr = line
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("first line: {line:?}"))
        .to_string();
    assert!(
        addr.starts_with("127.0.0.1:") && !addr.ends_with(":8750"),
        "the table's address (port 0: any) not taken: {addr}"
    );
    let answer = raw_http(&addr, &upload_request(&addr, &token, "big.wav", &audio));
    stop(child);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("\"kind\":\"too_large\""), "{answer}");

    // The flag wins over the table.
    let (child, line, token) = start(&["--max-upload-mb", "4"]);
    let addr = line.trim_start_matches("listening on http://").to_string();
    let answer = raw_http(&addr, &upload_request(&addr, &token, "big.wav", &audio));
    stop(child);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

/// A request body over a route's limit is answered 413 `too_large` in the JSON error shape,
/// whatever its size and route: a QC specification over 1 MiB (it was `bad_field` up to 2 MB
/// and axum's plain-text answer beyond), a batch order over 2 MB (it was 400 `bad_json`).
#[test]
fn oversized_bodies_are_answered_too_large_in_json() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let server = Server::start(&root, "127.0.0.1:0", &[]);
    let addr = server.url.trim_start_matches("http://").to_string();
    let post = |path: &str, kind: &str, body: &[u8]| {
        let mut req = format!(
            "POST {path} HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {}\r\n\
             content-type: {kind}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            server.token,
            body.len()
        )
        .into_bytes();
        req.extend_from_slice(body);
        raw_http(&addr, &req)
    };
    let toml = |n: usize| {
        let mut t = b"id = \"big\"\nname = \"big\"\n".to_vec();
        t.resize(n, b'#');
        t
    };
    let json = |n: usize| {
        let mut j = b"{\"file_ids\": [], \"pad\": \"".to_vec();
        j.resize(n, b'x');
        j.extend_from_slice(b"\"}");
        j
    };
    for (what, path, kind, body) in [
        (
            "a 1.5 MB specification",
            "/api/v1/files/nothing/qc",
            "application/toml",
            toml(1_500_000),
        ),
        (
            "a 3 MB specification",
            "/api/v1/files/nothing/qc",
            "application/toml",
            toml(3_000_000),
        ),
        (
            "a 3 MB batch order",
            "/api/audio/batch/create",
            "application/json",
            json(3_000_000),
        ),
    ] {
        let answer = post(path, kind, &body);
        assert!(answer.starts_with("HTTP/1.1 413"), "{what}: {answer}");
        let json = answer.split("\r\n\r\n").nth(1).unwrap_or("");
        let v: serde_json::Value = serde_json::from_str(json)
            .unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {answer}"));
        assert_eq!(v["error"]["kind"], "too_large", "{what}: {answer}");
    }
}

/// Uploads beyond `--max-uploads` at once are told to wait (429 `busy`) and the slot comes
/// back when an upload ends, even one cut off; CORS answers only the configured origin.
#[test]
fn uploads_past_the_limit_wait_and_cors_answers_only_its_origin() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let wav = dir.path().join("a.wav");
    let planes = sluice_core::signal::programme(44_100, 1, 44_100, 2);
    write_wav(&wav, &planes, 44_100, 16);
    let audio = std::fs::read(&wav).unwrap();
    let server = Server::start(
        &root,
        "127.0.0.1:0",
        &["--max-uploads", "1", "--cors-origin", "https://app.example"],
    );
    let addr = server.url.trim_start_matches("http://").to_string();
    // An upload that takes its time: headers and half the file sent, the rest held back.
    let slow = upload_request(&addr, &server.token, "slow.wav", &audio);
    let mut held = std::net::TcpStream::connect(&addr).unwrap();
    held.write_all(&slow[..slow.len() / 2]).unwrap();
    // Only once its temporary exists does the slow upload hold the slot (before that a
    // second upload could take the slot first and the slow one be the one refused).
    let t = std::time::Instant::now();
    while files_under(&root.join("uploads/.incoming")).is_empty() {
        assert!(
            t.elapsed() < std::time::Duration::from_secs(10),
            "the slow upload never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let t = std::time::Instant::now();
    let busy = loop {
        let answer = raw_http(
            &addr,
            &upload_request(&addr, &server.token, "a.wav", &audio),
        );
        if answer.starts_with("HTTP/1.1 429") {
            break answer;
        }
        assert!(
            t.elapsed() < std::time::Duration::from_secs(10),
            "a second upload at once was not refused: {answer}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert!(busy.contains("\"kind\":\"busy\""), "{busy}");
    // The slow client gives up: its slot comes back, its temporary goes.
    drop(held);
    let t = std::time::Instant::now();
    loop {
        let answer = raw_http(
            &addr,
            &upload_request(&addr, &server.token, "a.wav", &audio),
        );
        if answer.starts_with("HTTP/1.1 200") {
            assert!(answer.contains("\"file_name\":\"a.wav\""), "{answer}");
            break;
        }
        assert!(
            t.elapsed() < std::time::Duration::from_secs(10),
            "the slot did not come back: {answer}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    no_incoming(&root);
    // CORS: the configured origin is answered, another is not.
    let preflight = |origin: &str| {
        raw_http(
            &addr,
            format!(
                "OPTIONS /api/audio/upload HTTP/1.1\r\nhost: {addr}\r\norigin: {origin}\r\naccess-control-request-method: POST\r\naccess-control-request-headers: authorization\r\nconnection: close\r\n\r\n"
            )
            .as_bytes(),
        )
        .to_ascii_lowercase()
    };
    let ok = preflight("https://app.example");
    assert!(
        ok.contains("access-control-allow-origin: https://app.example"),
        "{ok}"
    );
    assert!(ok.contains("authorization"), "{ok}");
    let other = preflight("https://evil.example");
    assert!(!other.contains("access-control-allow-origin"), "{other}");
    drop(server);
    // Without origins configured no page of another origin is answered.
    let plain = Server::start(&root, "127.0.0.1:0", &[]);
    let addr = plain.url.trim_start_matches("http://").to_string();
    let answer = raw_http(
        &addr,
        format!(
            "GET /health HTTP/1.1\r\nhost: {addr}\r\norigin: https://app.example\r\nconnection: close\r\n\r\n"
        )
        .as_bytes(),
    )
    .to_ascii_lowercase();
    assert!(answer.starts_with("http/1.1 200"), "{answer}");
    assert!(!answer.contains("access-control-allow-origin"), "{answer}");
}

#[test]
fn the_openapi_document_names_every_route() {
    let out = common::succeed(sluice().args(["serve", "--openapi"]));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/health",
        "/api/audio/upload",
        "/api/audio/files/{file_id}/metadata",
        "/api/audio/files/{file_id}/analysis",
        "/api/audio/files/{file_id}/waveform",
        "/api/audio/formats",
        "/api/audio/formats/{name}",
        "/api/audio/export",
        "/api/audio/batch/create",
        "/api/audio/batch/{job_id}/process",
        "/api/audio/batch/{job_id}",
        "/api/analyze",
        "/api/analysis/{analysis_id}",
        "/api/references",
        "/api/references/{reference_id}",
        "/api/similarity/{analysis_id}",
        "/api/v1/jobs",
        "/api/v1/jobs/{id}/plots/{kind}",
        "/api/v1/events",
        "/api/v1/stream",
        "/",
        "/api/docs",
        "/docs",
        "/redoc",
        "/api/audio/health",
        "/api/audio/statistics",
        "/api/audio/buffers",
    ] {
        assert!(paths.contains_key(p), "{p} not in {:?}", paths.keys());
    }
    let upload = &doc["paths"]["/api/audio/upload"]["post"];
    assert!(
        upload["requestBody"]["content"]
            .get("multipart/form-data")
            .is_some(),
        "{upload}"
    );
    for s in [
        "AudioMetadata",
        "AudioAnalysis",
        "WaveformPeaks",
        "ErrorBody",
    ] {
        assert!(
            doc["components"]["schemas"].get(s).is_some(),
            "schema {s} missing"
        );
    }
}

/// Reads until the server closes the connection (or 20 s pass): what it sent, and when.
fn read_until_closed(c: &mut std::net::TcpStream) -> (String, std::time::Duration) {
    use std::io::Read;
    let t = std::time::Instant::now();
    c.set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    let mut out = Vec::new();
    let _ = c.read_to_end(&mut out);
    (String::from_utf8_lossy(&out).into_owned(), t.elapsed())
}

/// Slow clients: one that never finishes its request head (slowloris), an idle one, one that
/// stops in the middle of an upload holding the only upload slot, and more connections than
/// the server takes. Each is cut off after `--request-timeout` (or at once past
/// `--max-connections`), while the server answers everyone else throughout. Then: answers
/// are gzip-compressed when the client asks.
#[test]
fn slow_and_idle_clients_are_cut_off_and_the_connection_limit_holds() {
    use std::io::Write;
    use std::net::TcpStream;
    use std::time::Duration;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let wav = dir.path().join("a.wav");
    write_wav(
        &wav,
        &sluice_core::signal::programme(44_100, 1, 44_100, 5),
        44_100,
        16,
    );
    let audio = std::fs::read(&wav).unwrap();
    let server = Server::start(
        &root,
        "127.0.0.1:0",
        &[
            "--request-timeout",
            "2",
            "--max-connections",
            "16",
            "--max-uploads",
            "1",
        ],
    );
    let addr = server.url.trim_start_matches("http://").to_string();
    let health = || {
        let t = std::time::Instant::now();
        let answer = raw_http(
            &addr,
            format!("GET /health HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n").as_bytes(),
        );
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    };
    // Half a request head, then nothing; an upload stopped halfway (it holds the one slot);
    // a connection that sends nothing at all.
    let mut slowloris = TcpStream::connect(&addr).unwrap();
    slowloris
        .write_all(format!("GET /health HTTP/1.1\r\nhost: {addr}\r\nx-a: ").as_bytes())
        .unwrap();
    let req = upload_request(&addr, &server.token, "slow.wav", &audio);
    let mut stalled = TcpStream::connect(&addr).unwrap();
    stalled.write_all(&req[..req.len() / 2]).unwrap();
    let mut idle = TcpStream::connect(&addr).unwrap();
    health();
    let (said, after) = read_until_closed(&mut slowloris);
    assert!(
        said.is_empty() || said.starts_with("HTTP/1.1 408"),
        "{said}"
    );
    assert!(
        after >= Duration::from_millis(1000) && after < Duration::from_secs(6),
        "the slow request head was cut off after {after:?} (timeout 2 s)"
    );
    let (said, after) = read_until_closed(&mut stalled);
    assert!(said.starts_with("HTTP/1.1 408"), "{said}");
    assert!(said.contains("\"kind\":\"timeout\""), "{said}");
    assert!(after < Duration::from_secs(6), "{after:?}");
    let (_, after) = read_until_closed(&mut idle);
    assert!(after < Duration::from_secs(6), "{after:?}");
    // The upload slot is free again, the stalled upload's temporary gone.
    let answer = raw_http(
        &addr,
        &upload_request(&addr, &server.token, "a.wav", &audio),
    );
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    no_incoming(&root);
    // 16 connections held open: the 17th is closed at once, unanswered; once they go, the
    // server answers again.
    let held: Vec<TcpStream> = (0..16)
        .map(|_| {
            let c = TcpStream::connect(&addr).unwrap();
            // Each is accepted before the next (the limit counts accepted connections).
            std::thread::sleep(Duration::from_millis(20));
            c
        })
        .collect();
    let mut extra = TcpStream::connect(&addr).unwrap();
    let _ = extra.write_all(format!("GET /health HTTP/1.1\r\nhost: {addr}\r\n\r\n").as_bytes());
    let (said, after) = read_until_closed(&mut extra);
    assert!(said.is_empty(), "past the limit: {said}");
    assert!(after < Duration::from_secs(1), "{after:?}");
    drop(held);
    std::thread::sleep(Duration::from_millis(300));
    health();
    // Answers are compressed for a client that asks, and only then.
    let doc = |extra: &str| {
        raw_http(
            &addr,
            format!(
                "GET /openapi.json HTTP/1.1\r\nhost: {addr}\r\n{extra}connection: close\r\n\r\n"
            )
            .as_bytes(),
        )
        .to_ascii_lowercase()
    };
    let gz = doc("accept-encoding: gzip\r\n");
    assert!(gz.starts_with("http/1.1 200"), "{gz}");
    assert!(
        gz.contains("content-encoding: gzip"),
        "{}",
        &gz[..300.min(gz.len())]
    );
    let plain = doc("");
    assert!(
        !plain.contains("content-encoding"),
        "{}",
        &plain[..300.min(plain.len())]
    );
    assert!(plain.contains("\"openapi\""));
}

/// `POST /api/v1/jobs` into a pipeline whose watch folder became a symbolic link out of the
/// root: refused, and nothing lands outside the root.
#[test]
fn a_job_is_never_placed_through_a_watch_folder_that_leads_out_of_the_root() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    sluice_host::commands::init_root(&root).unwrap();
    let wav = dir.path().join("a.wav");
    write_wav(
        &wav,
        &sluice_core::signal::programme(44_100, 2, 44_100, 6),
        44_100,
        16,
    );
    let server = Server::start(&root, "127.0.0.1:0", &[]);
    let addr = server.url.trim_start_matches("http://").to_string();
    let list = raw_http(
        &addr,
        format!("GET /api/v1/pipelines HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n")
            .as_bytes(),
    );
    let body = &list[list.find("\r\n\r\n").unwrap() + 4..];
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    let p = &v["pipelines"][0];
    let (name, watch) = (
        p["name"].as_str().unwrap().to_string(),
        p["watch"][0].as_str().unwrap().to_string(),
    );
    let folder = root.join(&watch);
    std::fs::remove_dir_all(&folder).unwrap();
    std::os::unix::fs::symlink(&outside, &folder).unwrap();
    let mut form = format!(
        "--XyZ\r\ncontent-disposition: form-data; name=\"pipeline\"\r\n\r\n{name}\r\n--XyZ\r\ncontent-disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\ncontent-type: audio/wav\r\n\r\n"
    )
    .into_bytes();
    form.extend_from_slice(&std::fs::read(&wav).unwrap());
    form.extend_from_slice(b"\r\n--XyZ--\r\n");
    let mut req = format!(
        "POST /api/v1/jobs HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {}\r\ncontent-type: multipart/form-data; boundary=XyZ\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        server.token,
        form.len()
    )
    .into_bytes();
    req.extend_from_slice(&form);
    let answer = raw_http(&addr, &req);
    assert!(!answer.starts_with("HTTP/1.1 202"), "{answer}");
    // The pipeline is refused as soon as its watch folder leads out (the pipelines are loaded
    // again for the request); the route's own check (500 `path_escape`) stays behind it.
    assert!(
        (answer.starts_with("HTTP/1.1 400") && answer.contains(&format!("no pipeline `{name}`")))
            || (answer.starts_with("HTTP/1.1 500") && answer.contains("\"kind\":\"path_escape\"")),
        "{answer}"
    );
    assert!(
        !answer.contains(&root.display().to_string()),
        "the answer shows the server's paths: {answer}"
    );
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
    no_incoming(&root);
}

/// Every request is logged in a span carrying its id (the client's `x-request-id` when it sends
/// a plain one, answered back; the server's count otherwise), and every job's work in a span
/// carrying the job's id and pipeline: a log line says which request or job it belongs to.
#[test]
fn requests_and_jobs_are_logged_in_spans_carrying_their_ids() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    sluice_host::commands::init_root(&root).unwrap();
    let toml = std::fs::read_to_string(root.join("sluice.toml")).unwrap();
    std::fs::write(
        root.join("sluice.toml"),
        format!(
            "settle_seconds = 0.3\nrescan_seconds = 1\nworkers = 1\n{toml}\n[server]\nlisten = \"127.0.0.1:0\"\n"
        ),
    )
    .unwrap();
    let log = dir.path().join("stderr.log");
    let mut child = sluice()
        .args(["watch", "--root"])
        .arg(&root)
        .env(
            "SLUICE_LOG",
            "error,sluice_engine=info,sluice_host=info,tower_http=debug",
        )
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = loop {
        let line = lines.next().expect("where it listens").unwrap();
        if let Some(a) = line.trim().strip_prefix("listening on ") {
            break a.to_string();
        }
    };
    let server = Server {
        child,
        url,
        token: String::new(),
    };
    let addr = server.url.trim_start_matches("http://").to_string();
    let given = raw_http(
        &addr,
        format!("GET /health HTTP/1.1\r\nHost: {addr}\r\nx-request-id: probe-7\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    );
    assert!(
        given
            .to_ascii_lowercase()
            .contains("x-request-id: probe-7\r\n"),
        "{given}"
    );
    // An id that could forge a log line is not taken: the server's own is answered.
    let forged = raw_http(
        &addr,
        format!("GET /health HTTP/1.1\r\nHost: {addr}\r\nx-request-id: a b}}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    );
    let own = forged
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("x-request-id: ")
                .map(str::to_string)
        })
        .expect("an id answered");
    assert!(own.chars().all(|c| c.is_ascii_digit()), "{own:?}");

    let planes = sluice_core::signal::programme(44_100, 2, 3 * 44_100, 5);
    let staged = dir.path().join("talk.wav");
    write_wav(&staged, &planes, 44_100, 16);
    std::fs::rename(&staged, root.join("inbox/podcast/talk.wav")).unwrap();
    let t = std::time::Instant::now();
    let text = loop {
        let text = std::fs::read_to_string(&log).unwrap();
        if text.contains("done (") {
            break text;
        }
        assert!(
            t.elapsed() < std::time::Duration::from_secs(60),
            "no job done in 60 s:\n{text}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let done = text.lines().find(|l| l.contains("done (")).unwrap();
    assert!(
        done.contains("job{id=1 pipeline=podcast}"),
        "the job's line names its job: {done}"
    );
    assert!(
        text.lines().any(
            |l| l.contains("request{id=probe-7 method=GET path=/health}")
                && l.contains("finished processing request")
        ),
        "no line of the request's work in its span:\n{text}"
    );
    assert!(
        text.contains(&format!("request{{id={own} method=GET path=/health}}")),
        "{text}"
    );
    drop(server);
}

/// Delivery QC over HTTP (host/tests/api/qc_flow.py): a dialogue (espeak-ng, exported at
/// -27 LUFS, 48 kHz 24-bit) uploaded and judged against Netflix's speech-gated specification
/// and EBU R 128, as JSON, as the HTML page (its figures equal the JSON's) and as CSV.
#[test]
fn a_client_checks_a_delivery_over_http() {
    let Some(py) = python() else { return };
    let Some(espeak) = tool("espeak-ng") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let spoken = dir.path().join("spoken.wav");
    common::succeed(
        std::process::Command::new(espeak)
            .args(["-v", "en-us", "-s", "160", "-w"])
            .arg(&spoken)
            .arg(
                "The birch canoe slid on the smooth planks. Glue the sheet to the dark blue \
                 background. It is easy to tell the depth of a well. These days a chicken leg \
                 is a rare dish. Rice is often served in round bowls.",
            ),
    );
    let film = dir.path().join("film mix.wav");
    common::succeed(
        sluice()
            .arg("export")
            .arg(&spoken)
            .arg("-o")
            .arg(&film)
            .args(["--sample-rate", "48000", "--bit-depth", "24"])
            .args(["--normalize-lufs", "-27", "--true-peak", "-3"]),
    );
    let server = Server::start(&root, "127.0.0.1:0", &[]);
    run_script(
        &py,
        "qc_flow.py",
        &[
            &server.url,
            &server.token,
            &root.display().to_string(),
            &film.display().to_string(),
        ],
    );
    drop(server);
    no_incoming(&root);
}
