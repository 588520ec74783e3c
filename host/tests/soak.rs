//! The soak (issue 21): files written in bursts with pauses longer than the settle time,
//! renames into the inbox, copies of content that failed, and `kill -9`s of the host at
//! pseudo-random moments while all that goes on. At the end every complete input has exactly
//! one set of outputs, each equal to a clean single run of its input, no source was moved
//! before it was complete, nothing was written outside the root, and no temporary remains.

mod common;

use common::{assert_no_temporaries, files_under, jobs, sluice};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const PIPELINE: &str = r#"
name = "soak"
watch = "inbox"

[[step]]
normalize = { loudness_lufs = -18, true_peak_dbtp = -1 }

[[output]]
path = "out/{stem}.flac"
bit_depth = 16

[source]
action = "move"
to = "done/{name}"
"#;

/// A complete stereo 16-bit WAV of `seconds`, different for every `seed`.
fn wav_bytes(seconds: f64, seed: u64) -> Vec<u8> {
    let rate = 44_100;
    let planes = sluice_core::signal::programme(rate, 2, (seconds * rate as f64) as usize, seed);
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut buf = std::io::Cursor::new(Vec::new());
    let mut w = hound::WavWriter::new(&mut buf, spec).unwrap();
    for i in 0..planes[0].len() {
        for p in &planes {
            w.write_sample((p[i].clamp(-1.0, 1.0) * 32767.0) as i16)
                .unwrap();
        }
    }
    w.finalize().unwrap();
    buf.into_inner()
}

fn start(root: &Path, log: &Path) -> Child {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    sluice()
        .args(["watch", "--root"])
        .arg(root)
        .env("SLUICE_SETTLE_SECONDS", "0.5")
        .env("SLUICE_RESCAN_SECONDS", "1")
        .env("SLUICE_WORKERS", "2")
        // The kills here are the test's, not the inputs' fault: no quarantine for them.
        .env("SLUICE_MAX_INTERRUPTED_RUNS", "1000")
        .stdout(Stdio::from(out.try_clone().unwrap()))
        .stderr(Stdio::from(out))
        .spawn()
        .unwrap()
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
}

#[test]
fn soak_bursts_renames_failed_copies_and_kills() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let staging = dir.path().join("staging");
    common::new_root(&root, &["inbox"], &[("soak", PIPELINE)]);
    std::fs::create_dir_all(&staging).unwrap();
    let log = dir.path().join("host.log");

    // The inputs: (name, content).
    let good: Vec<(String, Vec<u8>)> = (0..10)
        .map(|i| {
            (
                format!("take{i:02}.wav"),
                wav_bytes(4.0 + (i % 4) as f64, i + 1),
            )
        })
        .collect();
    let junk: Vec<u8> = (0..40_000u32).map(|i| (i * 7919 % 251) as u8).collect();

    let done_writing = Arc::new(AtomicBool::new(false));
    let early_moves = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    // Writers: even takes in bursts, each burst followed by a pause longer than the settle
    // time with the file held open; odd takes written beside the root and renamed in; junk
    // (fails as input) twice under two names, the second after the first was quarantined.
    let writer = {
        let (root, staging, good, junk) = (root.clone(), staging.clone(), good.clone(), junk);
        let (done_writing, early_moves) = (done_writing.clone(), early_moves.clone());
        std::thread::spawn(move || {
            let mut rng = Rng(0xb0057);
            std::fs::write(root.join("inbox/junk.wav"), &junk).unwrap();
            for (i, (name, bytes)) in good.iter().enumerate() {
                let dest = root.join("inbox").join(name);
                if i % 2 == 0 {
                    let mut f = std::fs::File::create(&dest).unwrap();
                    let bursts = 3;
                    for (b, chunk) in bytes.chunks(bytes.len().div_ceil(bursts)).enumerate() {
                        f.write_all(chunk).unwrap();
                        if b + 1 < bursts {
                            std::thread::sleep(Duration::from_millis(900 + rng.next() % 600));
                            if !dest.is_file() {
                                early_moves.lock().unwrap().push(name.clone());
                            }
                        }
                    }
                } else {
                    let staged = staging.join(name);
                    std::fs::write(&staged, bytes).unwrap();
                    std::fs::rename(&staged, &dest).unwrap();
                    std::thread::sleep(Duration::from_millis(rng.next() % 700));
                }
                if i == 5 {
                    // The junk's content again, under another name, once the first has
                    // failed (it is quarantined: moved out of the inbox).
                    let t = Instant::now();
                    while root.join("inbox/junk.wav").exists()
                        && t.elapsed() < Duration::from_secs(60)
                    {
                        std::thread::sleep(Duration::from_millis(100));
                    }
                    std::fs::write(root.join("inbox/junk-again.wav"), &junk).unwrap();
                }
            }
            done_writing.store(true, Ordering::SeqCst);
        })
    };

    // The host, killed at pseudo-random moments while the writer works (at least 5 times).
    let mut rng = Rng(0x5eed);
    let mut kills = 0;
    while !done_writing.load(Ordering::SeqCst) || kills < 5 {
        let mut child = start(&root, &log);
        std::thread::sleep(Duration::from_millis(700 + rng.next() % 1_600));
        child.kill().unwrap();
        child.wait().unwrap();
        kills += 1;
    }
    writer.join().unwrap();

    // Then left to finish.
    let mut child = start(&root, &log);
    let expected = good.len() + 2;
    let t = Instant::now();
    let js = loop {
        let js = jobs(&root);
        let busy = js
            .iter()
            .any(|j| j["state"] == "queued" || j["state"] == "running");
        let done = js.iter().filter(|j| j["state"] == "done").count();
        if done >= good.len() && !busy && files_under(&root.join("inbox")).is_empty() {
            break js;
        }
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "did not finish: {js:#?}\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    child.kill().unwrap();
    child.wait().unwrap();
    eprintln!("{kills} kills, {} jobs", js.len());

    let moved_early = early_moves.lock().unwrap().clone();
    assert!(
        moved_early.is_empty(),
        "moved before complete: {moved_early:?}"
    );
    // Every good input: exactly one job done with its full content, its source in done/
    // complete, its output there once.
    for (name, bytes) in &good {
        let hash = blake3::hash(bytes).to_hex().to_string();
        let done: Vec<&serde_json::Value> = js
            .iter()
            .filter(|j| j["state"] == "done" && j["input"] == format!("inbox/{name}"))
            .collect();
        assert_eq!(done.len(), 1, "{name}: {js:#?}");
        assert_eq!(
            done[0]["content_hash"],
            hash.as_str(),
            "{name}: a part was taken"
        );
        assert_eq!(
            blake3::hash(&std::fs::read(root.join("done").join(name)).unwrap())
                .to_hex()
                .as_str(),
            hash
        );
    }
    // Both junk arrivals were processed (quarantined), none was skipped as a duplicate.
    for n in ["junk.wav", "junk-again.wav"] {
        let j = js
            .iter()
            .find(|j| j["input"] == format!("inbox/{n}"))
            .unwrap_or_else(|| panic!("{n} never processed: {js:#?}"));
        assert_eq!(j["state"], "quarantined", "{j:#?}");
    }
    assert!(js.len() >= expected);
    // Exactly one set of outputs: one FLAC per good input, nothing else.
    let outs = files_under(&root.join("out"));
    assert_eq!(outs.len(), good.len(), "{outs:#?}");

    // Each output equals a clean single run of its input.
    let clean = dir.path().join("clean");
    common::new_root(&clean, &[], &[("soak", PIPELINE)]);
    let mut inputs = Vec::new();
    for (name, bytes) in &good {
        let p = staging.join(name);
        std::fs::write(&p, bytes).unwrap();
        inputs.push(p);
    }
    let st = sluice()
        .args(["run", "soak", "--root"])
        .arg(&clean)
        .args(&inputs)
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    for (name, _) in &good {
        let stem = name.trim_end_matches(".wav");
        let a = std::fs::read(root.join(format!("out/{stem}.flac"))).unwrap();
        let b = std::fs::read(clean.join(format!("out/{stem}.flac"))).unwrap();
        assert!(a == b, "{stem}.flac differs from a clean run of its input");
    }

    // Nothing outside the root (but the staging folder, the clean root and the log).
    let stray: Vec<PathBuf> = files_under(dir.path())
        .into_iter()
        .filter(|p| {
            !p.starts_with(&root) && !p.starts_with(&staging) && !p.starts_with(&clean) && *p != log
        })
        .collect();
    assert!(stray.is_empty(), "written outside the root: {stray:?}");
    assert_no_temporaries(&root);
}
