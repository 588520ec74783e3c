//! The watch-folder host end to end: the real binary watching a temporary root, files dropped
//! into its watch folders (one copied in slowly, in chunks), outputs checked for loudness,
//! format and tags, reports and job records compared; bad and hostile input.

mod common;

use common::{
    Host, assert_no_temporaries, blake3_hex, loudness, root_with_examples, sluice, write_wav,
};
use std::io::Write;
use std::path::Path;
use std::time::Duration;

/// Speech-like programme at a known level, as a 24-bit WAV.
fn speech_wav(path: &Path, seconds: f64, level: f32) {
    write_wav(
        path,
        &sluice_core::signal::speech(44_100, seconds, level),
        44_100,
        24,
    );
}

fn today() -> String {
    jiff::Zoned::now().strftime("%Y/%m/%d").to_string()
}

#[test]
fn podcast_files_dropped_come_out_once_at_the_target() {
    let dir = tempfile::tempdir().unwrap();
    let root = root_with_examples(dir.path());
    let host = Host::start(&root);
    let inbox = root.join("inbox/podcast");

    // One file copied in slowly, in chunks, with pauses shorter than the settle time...
    let slow_src = dir.path().join("episode one.wav");
    speech_wav(&slow_src, 8.0, 0.05);
    let bytes = std::fs::read(&slow_src).unwrap();
    let mut f = std::fs::File::create(inbox.join("episode one.wav")).unwrap();
    for chunk in bytes.chunks(bytes.len() / 6 + 1) {
        f.write_all(chunk).unwrap();
        f.flush().unwrap();
        std::thread::sleep(Duration::from_millis(500));
    }
    drop(f);
    // ...and one at once.
    let quick_src = dir.path().join("episode2.wav");
    speech_wav(&quick_src, 5.0, 0.3);
    std::fs::copy(&quick_src, inbox.join("episode2.wav")).unwrap();

    let jobs = host.settle_jobs(2);
    assert_eq!(jobs.len(), 2, "each file once: {jobs:#?}");
    let day = today();
    for (name, src) in [("episode one", &slow_src), ("episode2", &quick_src)] {
        let job = jobs
            .iter()
            .find(|j| j["input"] == format!("inbox/podcast/{name}.wav"))
            .unwrap_or_else(|| panic!("a job for {name}: {jobs:#?}"));
        assert_eq!(job["state"], "done", "{job:#?}\n{}", host.log());
        // The whole file was taken, not a part of it.
        assert_eq!(job["content_hash"], blake3_hex(src));
        let mp3 = root.join(format!("outbox/podcast/{day}/{name}.mp3"));
        let flac = root.join(format!("archive/podcast/{name}.flac"));
        let (i, tp) = loudness(&flac);
        assert!((i + 16.0).abs() <= 0.1, "{name}: FLAC at {i} LUFS");
        assert!(tp <= -1.0 + 0.05, "{name}: FLAC true peak {tp}");
        let (i, _) = loudness(&mp3);
        assert!((i + 16.0).abs() <= 0.5, "{name}: MP3 at {i} LUFS");
        let info = sluice_core::probe(&mp3).unwrap();
        assert_eq!((info.format, info.channels), ("mp3", 1));
        let info = sluice_core::probe(&flac).unwrap();
        assert_eq!((info.format, info.bit_depth), ("flac", Some(24)));
        // The job record names the outputs with their sizes and hashes.
        let outs = job["outputs"].as_array().unwrap();
        assert_eq!(outs.len(), 2);
        for (o, p) in outs.iter().zip([&mp3, &flac]) {
            assert_eq!(root.join(o["path"].as_str().unwrap()), *p);
            assert_eq!(o["bytes"], std::fs::metadata(p).unwrap().len());
            assert_eq!(o["hash"], blake3_hex(p));
        }
        // The source moved to done; the report matches the record.
        let moved = root.join(format!("done/podcast/{day}/{name}.wav"));
        assert_eq!(blake3_hex(&moved), blake3_hex(src));
        assert!(!inbox.join(format!("{name}.wav")).exists());
        let report: serde_json::Value = serde_json::from_slice(
            &std::fs::read(root.join(job["report"].as_str().unwrap())).unwrap(),
        )
        .unwrap();
        assert_eq!(report["job"], job["id"]);
        assert_eq!(report["outputs"], job["outputs"]);
        assert!(report["analysis"]["loudness"]["integrated_lufs"].is_number());
    }
    // Dropping the same content again (a copy, another name) does nothing new.
    std::fs::copy(&quick_src, inbox.join("episode2 copy.wav")).unwrap();
    host.wait_for("the duplicate to be noticed", || {
        host.log().contains("same content as job")
    });
    assert_eq!(host.jobs().len(), 2);
    assert_no_temporaries(&root);
}

#[test]
fn tags_are_kept_and_hostile_ones_stay_inside_the_root() {
    let dir = tempfile::tempdir().unwrap();
    let root = root_with_examples(dir.path());
    // A FLAC with ordinary tags, and one whose tags try to climb out of the root.
    let src = dir.path().join("src.wav");
    speech_wav(&src, 2.0, 0.2);
    let make = |name: &str, artist: &str, album: &str| {
        let out = dir.path().join(name);
        let st = sluice()
            .args(["export"])
            .arg(&src)
            .arg("-o")
            .arg(&out)
            .args(["--tag", &format!("artist={artist}")])
            .args(["--tag", &format!("album={album}")])
            .args(["--tag", "title=A Title"])
            .output()
            .unwrap();
        assert!(
            st.status.success(),
            "{}",
            String::from_utf8_lossy(&st.stderr)
        );
        out
    };
    let good = make("good.flac", "The Band", "First Album");
    let long = "x".repeat(10_000);
    let evil = make(
        "evil.flac",
        "../../../../tmp/escape",
        &format!("a/\u{1b}[31m{long}"),
    );

    let host = Host::start(&root);
    std::fs::copy(&good, root.join("inbox/archive/good.flac")).unwrap();
    std::fs::copy(&evil, root.join("inbox/archive/evil.flac")).unwrap();
    let jobs = host.settle_jobs(2);
    for j in &jobs {
        assert_eq!(j["state"], "done", "{j:#?}");
    }
    let kept = root.join("archive/The Band/First Album/good.flac");
    let info = sluice_core::info(&kept, &sluice_core::InfoOptions { decode: false }).unwrap();
    assert_eq!(info.tags.artist.as_deref(), Some("The Band"));
    assert_eq!(info.tags.title.as_deref(), Some("A Title"));
    let evil_out = jobs
        .iter()
        .find(|j| j["input"] == "inbox/archive/evil.flac")
        .unwrap()["outputs"][0]["path"]
        .as_str()
        .unwrap()
        .to_string();
    let p = Path::new(&evil_out);
    assert!(
        p.components()
            .all(|c| matches!(c, std::path::Component::Normal(_))),
        "{evil_out}"
    );
    assert!(p.components().all(|c| c.as_os_str().len() <= 255));
    assert!(!evil_out.contains('\u{1b}'));
    assert!(root.join(p).starts_with(root.join("archive")));
    assert!(root.join(p).is_file());
}

#[test]
fn bad_files_links_and_temporaries() {
    let dir = tempfile::tempdir().unwrap();
    let root = root_with_examples(dir.path());
    let host = Host::start(&root);
    let inbox = root.join("inbox/podcast");
    // Not audio at all.
    std::fs::write(
        inbox.join("notes.wav"),
        "these are show notes, not audio\n".repeat(50),
    )
    .unwrap();
    // A link pointing outside the watch folder: never followed.
    let outside = dir.path().join("outside.wav");
    speech_wav(&outside, 1.0, 0.2);
    let before = blake3_hex(&outside);
    std::os::unix::fs::symlink(&outside, inbox.join("link.wav")).unwrap();
    // Hidden and temporary names are ignored.
    std::fs::copy(&outside, inbox.join(".hidden.wav")).unwrap();
    std::fs::copy(&outside, inbox.join("upload.wav.part")).unwrap();
    // And a good file after all that: the host is still working.
    speech_wav(&inbox.join("good.wav"), 1.5, 0.2);

    let jobs = host.settle_jobs(2);
    assert_eq!(jobs.len(), 2, "only notes.wav and good.wav: {jobs:#?}");
    let bad = jobs
        .iter()
        .find(|j| j["input"] == "inbox/podcast/notes.wav")
        .unwrap();
    assert_eq!(bad["state"], "quarantined", "{bad:#?}");
    assert!(bad["error"].as_str().unwrap().contains("notes.wav"));
    let q = root.join("failed/podcast/notes.wav");
    assert!(q.is_file(), "the source is in quarantine");
    let err: serde_json::Value = serde_json::from_slice(
        &std::fs::read(root.join("failed/podcast/notes.wav.error.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(err["job"], bad["id"]);
    let good = jobs
        .iter()
        .find(|j| j["input"] == "inbox/podcast/good.wav")
        .unwrap();
    assert_eq!(good["state"], "done");
    // Untouched: the link, its target, the hidden and partial files.
    assert!(inbox.join("link.wav").symlink_metadata().is_ok());
    assert_eq!(blake3_hex(&outside), before);
    assert!(inbox.join(".hidden.wav").is_file() && inbox.join("upload.wav.part").is_file());
    assert!(
        host.log()
            .contains("links in watch folders are not followed")
    );
}

#[test]
fn a_damaged_state_file_is_an_error_not_a_fresh_start() {
    let dir = tempfile::tempdir().unwrap();
    let root = root_with_examples(dir.path());
    std::fs::create_dir_all(root.join(".sluice")).unwrap();
    let db = root.join(".sluice/state.redb");
    let junk: Vec<u8> = (0..100_000u32).map(|i| (i * 31 % 251) as u8).collect();
    std::fs::write(&db, &junk).unwrap();
    let out = sluice()
        .args(["watch", "--root"])
        .arg(&root)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("state.redb") && err.contains("damaged"),
        "{err}"
    );
    assert_eq!(std::fs::read(&db).unwrap(), junk, "left as it was");
}

#[test]
fn check_locates_problems_and_passes_the_examples() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../pipelines");
    let out = sluice().arg("check").arg(&repo).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        text.lines().filter(|l| l.starts_with("ok ")).count(),
        5,
        "{text}"
    );

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "watch = \"in\"\n\n[[output]]\npath = \"out/{stem}.flac\"\nbit_depth = 20\n",
    )
    .unwrap();
    let out = sluice().arg("check").arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{}:3:1: bit_depth 20", bad.display())),
        "{err}"
    );
}

/// A watch folder that is a symbolic link out of the root is refused, by `sluice check` and by
/// the host, which never takes, moves or deletes what lies behind it (a pipeline with
/// `action = "delete"` on such a folder deleted the files outside the root).
#[test]
fn a_watch_folder_linked_out_of_the_root_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = root_with_examples(dir.path());
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(outside.join("sub")).unwrap();
    speech_wav(&outside.join("o1.wav"), 1.0, 0.2);
    speech_wav(&outside.join("sub/o2.wav"), 1.0, 0.2);
    let before = (
        blake3_hex(&outside.join("o1.wav")),
        blake3_hex(&outside.join("sub/o2.wav")),
    );
    std::fs::create_dir_all(root.join("inbox")).unwrap();
    std::os::unix::fs::symlink(&outside, root.join("inbox/linked")).unwrap();
    std::fs::write(
        root.join("pipelines/del.toml"),
        "watch = \"inbox/linked\"\n[[output]]\npath = \"outbox/del/{stem}.flac\"\n\
         [source]\naction = \"delete\"\n",
    )
    .unwrap();
    let out = sluice()
        .arg("check")
        .arg("--root")
        .arg(&root)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("del.toml") && err.contains("inbox/linked"),
        "{err}"
    );

    let host = Host::start(&root);
    host.wait_for("the pipeline refused", || host.log().contains("del.toml"));
    // A settle and a rescan's worth of time for a host that would take them.
    std::thread::sleep(Duration::from_secs(4));
    drop(host);
    assert_eq!(
        (
            blake3_hex(&outside.join("o1.wav")),
            blake3_hex(&outside.join("sub/o2.wav"))
        ),
        before,
        "files outside the root were taken"
    );
    assert!(!root.join("outbox/del").exists());
}

/// A root given as a relative path is watched as well as an absolute one: a file dropped is
/// taken within seconds, not at the next rescan (with `--root r` the file events never matched
/// and files waited up to `rescan_seconds`).
#[test]
fn a_relative_root_is_watched_by_its_events() {
    let dir = tempfile::tempdir().unwrap();
    let root = root_with_examples(dir.path());
    let mut cmd = common::watch_command(Path::new("root"));
    cmd.current_dir(dir.path())
        .env("SLUICE_RESCAN_SECONDS", "600");
    let host = Host::start_with(&root, cmd);
    // After the start's full scan.
    std::thread::sleep(Duration::from_secs(2));
    let t = std::time::Instant::now();
    speech_wav(&root.join("inbox/analysis/late.wav"), 1.0, 0.2);
    host.wait_for("the dropped file's job", || {
        host.jobs()
            .iter()
            .any(|j| j["input"] == "inbox/analysis/late.wav")
    });
    assert!(
        t.elapsed() < Duration::from_secs(20),
        "taken after {:?}",
        t.elapsed()
    );
}
