//! The host earns trust (issue 21): each test is an attack a user's files or a careless setup
//! would make, run through the `sluice` binary.

mod common;

use common::{Host, assert_no_temporaries, files_under, sluice, watch_command};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A root with one pipeline file.
fn root_with(dir: &Path, file: &str, pipeline: &str) -> PathBuf {
    let root = dir.join("root");
    let name = file.strip_suffix(".toml").unwrap();
    common::new_root(&root, &[], &[(name, pipeline)]);
    root
}

/// `seconds` of a stereo tone with a little noise, as a complete 16-bit WAV in memory.
fn wav_bytes(seconds: f64, rate: u32, seed: u32) -> Vec<u8> {
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut buf = std::io::Cursor::new(Vec::new());
    let mut w = hound::WavWriter::new(&mut buf, spec).unwrap();
    let mut x = seed.wrapping_mul(2_654_435_761).max(1);
    for i in 0..(seconds * rate as f64) as usize {
        let t = i as f64 / rate as f64;
        for c in 0..2 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let noise = (x as f64 / u32::MAX as f64 - 0.5) * 0.05;
            let f = 220.0 * (1 + c + seed as usize % 3) as f64;
            let v = 0.3 * (std::f64::consts::TAU * f * t).sin() + noise;
            w.write_sample((v * 32767.0) as i16).unwrap();
        }
    }
    w.finalize().unwrap();
    buf.into_inner()
}

/// A child process killed when the test ends, however it ends.
struct KillOnDrop(std::process::Child);
impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn job_for<'a>(js: &'a [serde_json::Value], input: &str) -> &'a serde_json::Value {
    js.iter()
        .find(|j| j["input"] == input)
        .unwrap_or_else(|| panic!("no job for {input}: {js:#?}"))
}

/// Frames of an audio file, decoded.
fn frames(path: &Path) -> u64 {
    let info = sluice_core::info(path, &sluice_core::InfoOptions { decode: true }).unwrap();
    info.stream.frames.unwrap()
}

const COPY: &str = r#"
name = "copy"
watch = "inbox"

[[output]]
path = "out/{stem}.flac"

[source]
action = "move"
to = "done/{name}"
"#;

/// Point 1: a writer that pauses longer than the settle time (a network copy, a DAW bouncing in
/// bursts) keeps the file open; the host waits for it to close, and takes the whole file.
#[test]
fn a_file_written_in_bursts_is_taken_only_once_complete() {
    let dir = tempfile::tempdir().unwrap();
    let root = root_with(dir.path(), "copy.toml", COPY);
    let host = Host::start(&root); // settle 1 s
    let bytes = wav_bytes(20.0, 44_100, 1);
    let path = root.join("inbox/take.wav");
    let mut f = std::fs::File::create(&path).unwrap();
    let chunks = 4;
    let step = bytes.len().div_ceil(chunks);
    for (i, chunk) in bytes.chunks(step).enumerate() {
        f.write_all(chunk).unwrap();
        f.flush().unwrap();
        if i + 1 < chunks {
            // Longer than the settle time: the file is quiet, but still open.
            std::thread::sleep(Duration::from_millis(3_500));
            assert!(path.is_file(), "the source was moved while being written");
            assert!(
                host.jobs().is_empty(),
                "a job was made for a file still being written: {:#?}\n{}",
                host.jobs(),
                host.log()
            );
        }
    }
    drop(f);
    let js = host.settle_jobs(1);
    assert_eq!(js.len(), 1, "{js:#?}");
    let j = job_for(&js, "inbox/take.wav");
    assert_eq!(j["state"], "done", "{j:#?}");
    assert_eq!(frames(&root.join("out/take.flac")), 20 * 44_100);
    assert_eq!(
        blake3::hash(&std::fs::read(root.join("done/take.wav")).unwrap()),
        blake3::hash(&bytes)
    );
    assert!(
        host.log().contains("still open for writing"),
        "{}",
        host.log()
    );
}

/// Point 1, the second line of defence: content that changes while its job runs voids the job
/// (outputs removed, nothing moved) and the file is taken again as it is then.
#[test]
fn a_source_replaced_while_its_job_runs_is_taken_again() {
    let dir = tempfile::tempdir().unwrap();
    // A slow pipeline: the highest-quality resampling of a long file.
    let root = root_with(
        dir.path(),
        "slow.toml",
        r#"
name = "slow"
watch = "inbox"

[[step]]
resample = { sample_rate = 96000 }

[[output]]
path = "out/{stem}.flac"

[source]
action = "move"
to = "done/{name}"
"#,
    );
    let host = Host::start(&root);
    let first = wav_bytes(60.0, 44_100, 2);
    let path = root.join("inbox/take.wav");
    std::fs::write(&path, &first).unwrap();
    host.wait_for("the job to run", || {
        host.jobs().iter().any(|j| j["state"] == "running")
    });
    // Replaced in place (same name, same inode) while the job reads it.
    let second = wav_bytes(5.0, 44_100, 3);
    std::fs::write(&path, &second).unwrap();
    let js = host.settle_jobs(2);
    let void = js.iter().find(|j| j["id"] == 1).unwrap();
    assert_eq!(void["state"], "failed", "{js:#?}");
    assert!(
        void["error"]
            .as_str()
            .unwrap()
            .contains("changed while the job ran"),
        "{void:#?}"
    );
    let redo = js.iter().find(|j| j["id"] == 2).unwrap();
    assert_eq!(redo["state"], "done", "{js:#?}");
    assert_eq!(
        redo["content_hash"],
        blake3::hash(&second).to_hex().as_str()
    );
    assert_eq!(frames(&root.join("out/take.flac")), 5 * 96_000);
    assert_eq!(std::fs::read(root.join("done/take.wav")).unwrap(), second);
    assert_no_temporaries(&root);
}

const QUARANTINING: &str = r#"
name = "q"
watch = "inbox"

[[output]]
path = "out/{stem}.flac"

[source]
action = "move"
to = "done/{name}"
"#;

/// Point 2: content that once failed is not "already done": an empty `.wav` after an empty
/// `.flac`, and a renamed copy of a failed file, are each processed (and quarantined, as the
/// first was), never left in the inbox unprocessed.
#[test]
fn content_that_failed_is_processed_again_when_it_arrives_again() {
    let dir = tempfile::tempdir().unwrap();
    let root = root_with(dir.path(), "q.toml", QUARANTINING);
    let host = Host::start(&root);
    std::fs::write(root.join("inbox/empty.flac"), b"").unwrap();
    let js = host.settle_jobs(1);
    assert_eq!(job_for(&js, "inbox/empty.flac")["state"], "quarantined");
    std::fs::write(root.join("inbox/empty.wav"), b"").unwrap();
    let js = host.settle_jobs(2);
    assert_eq!(
        job_for(&js, "inbox/empty.wav")["state"],
        "quarantined",
        "{js:#?}\n{}",
        host.log()
    );
    // Garbage, then the same garbage under another name after the failure.
    let junk: Vec<u8> = (0..50_000u32).map(|i| (i * 7919 % 251) as u8).collect();
    std::fs::write(root.join("inbox/junk.wav"), &junk).unwrap();
    host.settle_jobs(3);
    std::fs::write(root.join("inbox/renamed.wav"), &junk).unwrap();
    let js = host.settle_jobs(4);
    assert_eq!(job_for(&js, "inbox/renamed.wav")["state"], "quarantined");
    let left: Vec<PathBuf> = files_under(&root.join("inbox"));
    assert!(left.is_empty(), "left unprocessed in the inbox: {left:?}");
    // A good file whose content was done is still done once only.
    let good = wav_bytes(2.0, 44_100, 4);
    std::fs::write(root.join("inbox/a.wav"), &good).unwrap();
    host.settle_jobs(5);
    std::fs::write(root.join("inbox/b.wav"), &good).unwrap();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        host.jobs().len(),
        5,
        "a duplicate of done content ran again"
    );
}

/// Point 3: an output folder that is a symbolic link to a folder outside the root is refused
/// at write time; nothing is written there, the source stays where it is.
#[test]
fn an_output_path_through_a_link_out_of_the_root_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = root_with(
        dir.path(),
        "linked.toml",
        r#"
name = "linked"
watch = "inbox"

[[output]]
path = "outbox/linkout/{stem}/{stem}.wav"

[source]
action = "move"
to = "done/{name}"
"#,
    );
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::create_dir_all(root.join("outbox")).unwrap();
    std::os::unix::fs::symlink(&outside, root.join("outbox/linkout")).unwrap();
    let host = Host::start(&root);
    let src = root.join("inbox/a.wav");
    std::fs::write(&src, wav_bytes(1.0, 44_100, 5)).unwrap();
    let js = host.settle_jobs(1);
    let j = job_for(&js, "inbox/a.wav");
    assert_eq!(j["state"], "failed", "{j:#?}");
    let err = j["error"].as_str().unwrap();
    assert!(err.contains("outside the root"), "{err}");
    assert!(
        files_under(&outside).is_empty() && std::fs::read_dir(&outside).unwrap().count() == 0,
        "written outside the root: {:?}",
        files_under(&outside)
    );
    assert!(src.is_file(), "the source stays where it is");
    // The same through a link that stays inside the root is fine.
    std::fs::remove_file(root.join("outbox/linkout")).unwrap();
    std::fs::create_dir_all(root.join("real")).unwrap();
    std::os::unix::fs::symlink(root.join("real"), root.join("outbox/linkout")).unwrap();
    std::fs::write(root.join("inbox/b.wav"), wav_bytes(1.0, 44_100, 6)).unwrap();
    let js = host.settle_jobs(2);
    assert_eq!(job_for(&js, "inbox/b.wav")["state"], "done");
    assert!(root.join("real/b/b.wav").is_file());
    assert_no_temporaries(&root);
}

fn named(name: &str, watch: &str, out: &str) -> String {
    format!(
        "name = \"{name}\"\nwatch = \"{watch}\"\n\n[[output]]\npath = \"{out}/{{stem}}.flac\"\n"
    )
}

/// Point 6: a stray file claiming a running pipeline's name is refused, not the pipeline in
/// use; at a restart the name stays with its first file too.
#[test]
fn a_new_pipeline_file_cannot_take_a_running_pipelines_name() {
    let dir = tempfile::tempdir().unwrap();
    let root = root_with(
        dir.path(),
        "my-podcast.toml",
        &named("podcast", "inbox/podcast", "out/podcast"),
    );
    let host = Host::start(&root);
    // Sorts before the real one.
    std::fs::write(
        root.join("pipelines/a-stray.toml"),
        named("podcast", "inbox/stray", "out/stray"),
    )
    .unwrap();
    host.wait_for("the stray file to be refused", || {
        host.log().contains("a-stray.toml") && host.log().contains("already used by")
    });
    std::fs::write(root.join("inbox/podcast/a.wav"), wav_bytes(1.0, 44_100, 7)).unwrap();
    let js = host.settle_jobs(1);
    assert_eq!(job_for(&js, "inbox/podcast/a.wav")["state"], "done");
    assert!(root.join("out/podcast/a.flac").is_file());
    host.stop();

    // Restarted with both files there: the name stays with the file that had it.
    let host = Host::start(&root);
    std::fs::write(root.join("inbox/podcast/b.wav"), wav_bytes(1.0, 44_100, 8)).unwrap();
    let js = host.settle_jobs(2);
    assert_eq!(job_for(&js, "inbox/podcast/b.wav")["state"], "done");
    let log = host.log();
    let second_start = &log[log.rfind("sluice: watching").unwrap()..];
    assert!(second_start.contains("inbox/podcast/"), "{second_start}");
    assert!(!second_start.contains("inbox/stray/"), "{second_start}");
}

/// Point 7: a second host on the same root stops at once with an error naming the first, and
/// takes nothing from it.
#[test]
fn a_second_host_on_the_same_root_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = root_with(dir.path(), "copy.toml", COPY);
    let host = Host::start(&root);
    let second = watch_command(&root)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut second = KillOnDrop(second);
    let t = std::time::Instant::now();
    let status = loop {
        if let Some(st) = second.0.try_wait().unwrap() {
            break st;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "a second host on the same root kept running"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!status.success());
    let mut err = String::new();
    std::io::Read::read_to_string(&mut second.0.stderr.take().unwrap(), &mut err).unwrap();
    assert!(
        err.contains("already running") && err.contains(&host.child.id().to_string()),
        "{err}"
    );
    std::fs::write(root.join("inbox/a.wav"), wav_bytes(1.0, 44_100, 9)).unwrap();
    let js = host.settle_jobs(1);
    assert_eq!(js[0]["state"], "done");
    let events = sluice()
        .args(["job", "1", "--json", "--root"])
        .arg(&root)
        .output()
        .unwrap();
    let events = String::from_utf8_lossy(&events.stdout);
    assert!(!events.contains("requeued"), "{events}");
}

/// Point 8: an input that the host stops under again and again (as if it crashed it) is
/// quarantined with the reason after the documented ceiling of interrupted runs, not retried
/// at every start forever; `sluice job` shows the interrupted runs.
#[test]
fn an_input_the_host_keeps_dying_on_is_quarantined() {
    let dir = tempfile::tempdir().unwrap();
    let root = root_with(
        dir.path(),
        "slow.toml",
        r#"
name = "slow"
watch = "inbox"

[[step]]
resample = { sample_rate = 96000 }

[[output]]
path = "out/{stem}.flac"
"#,
    );
    std::fs::create_dir_all(root.join("inbox")).unwrap();
    std::fs::write(root.join("inbox/killer.wav"), wav_bytes(90.0, 44_100, 10)).unwrap();
    // The default ceiling: 3 interrupted runs.
    for round in 1..=3 {
        let mut host = Host::start(&root);
        // Running in this host: it counted the earlier interrupted runs at its start.
        host.wait_for("the job to run", || {
            host.jobs()
                .iter()
                .any(|j| j["state"] == "running" && j["interrupted"] == round - 1)
        });
        host.child.kill().unwrap(); // SIGKILL, as a crash
        host.child.wait().unwrap();
        let js = common::jobs(&root);
        assert_eq!(js.len(), 1, "round {round}: {js:#?}");
    }
    let host = Host::start(&root);
    let js = host.settle_jobs(1);
    let j = &js[0];
    assert_eq!(j["state"], "quarantined", "{j:#?}\n{}", host.log());
    assert_eq!(j["interrupted"], 3);
    assert!(
        j["error"].as_str().unwrap().contains("stopped 3 times"),
        "{j:#?}"
    );
    assert!(root.join("failed/slow/killer.wav").is_file());
    let shown = sluice()
        .args(["job", "1", "--root"])
        .arg(&root)
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(shown.contains("3 cut short"), "{shown}");
    assert!(shown.contains("requeued"), "{shown}");
    assert_no_temporaries(&root);
}

/// Point 10: names that are not UTF-8, or hold a newline, are processed like any other; the
/// log shows them escaped, one event per line.
#[test]
fn odd_file_names_are_processed_and_logged_escaped() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let root = root_with(dir.path(), "copy.toml", COPY);
    let host = Host::start(&root);
    let latin1 = std::ffi::OsStr::from_bytes(b"caf\xe9.wav");
    std::fs::write(root.join("inbox").join(latin1), wav_bytes(1.0, 44_100, 11)).unwrap();
    std::fs::write(
        root.join("inbox/two\nlines.wav"),
        wav_bytes(1.0, 44_100, 12),
    )
    .unwrap();
    let js = host.settle_jobs(2);
    assert!(
        js.iter().all(|j| j["state"] == "done"),
        "{js:#?}\n{}",
        host.log()
    );
    assert_eq!(
        files_under(&root.join("done")).len(),
        2,
        "both sources moved"
    );
    assert_eq!(
        files_under(&root.join("out")).len(),
        2,
        "both outputs written"
    );
    assert!(files_under(&root.join("inbox")).is_empty());
    let log = host.log();
    assert!(log.contains("two\\nlines.wav"), "{log}");
    assert!(
        !log.lines().any(|l| l.starts_with("lines.wav")),
        "a raw newline split a log line:\n{log}"
    );
}

/// Point 13 (start-up and files no pipeline takes): the start says what each watch folder is
/// for; a file no pipeline takes gets a log line saying why.
#[test]
fn the_start_says_what_each_folder_takes_and_strays_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let root = root_with(
        dir.path(),
        "w.toml",
        "name = \"w\"\nwatch = \"inbox\"\ninclude = [\"*.wav\"]\n\n[[output]]\npath = \"out/{stem}.flac\"\n",
    );
    let host = Host::start(&root);
    let log = host.log();
    assert!(log.contains("inbox/  ->  pipeline w (*.wav)"), "{log}");
    std::fs::write(root.join("inbox/notes.txt"), "hello").unwrap();
    host.wait_for("the stray to be named", || {
        host.log()
            .contains("notes.txt: not taken: pipeline w takes only *.wav")
    });
    assert!(root.join("inbox/notes.txt").is_file(), "left alone");
}
