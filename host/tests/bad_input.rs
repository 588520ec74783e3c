//! Bad input and a hostile environment, through the real binary: unreadable sources, a source
//! that vanishes mid-job, a full disk, an output folder without permission, two pipelines
//! writing the same path. None may crash the host or lose a source file.
//!
//! Permissions mean nothing to root, so when the tests run as root the host runs as `nobody`
//! (the root folder is handed to that user); otherwise it runs as the tester.

mod common;
#[path = "../../core/tests/common/forge.rs"]
mod forge;

use common::{
    Host, assert_no_temporaries, blake3_hex, files_under, jobs, programme_wav, sluice,
    watch_command,
};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const NOBODY: u32 = 65534;

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A root with one pipeline, in a temporary folder the host's user can reach.
fn root_with(dir: &Path, name: &str, pipeline: &str) -> PathBuf {
    chmod(dir, 0o755);
    let root = dir.join("root");
    common::new_root(&root, &["inbox"], &[(name, pipeline)]);
    root
}

/// The watch command, as `nobody` when we are root, with the root handed over to that user.
fn unprivileged(root: &Path) -> Command {
    let mut cmd = watch_command(root);
    if is_root() {
        for p in std::iter::once(root.to_path_buf()).chain(walk(root)) {
            std::os::unix::fs::lchown(&p, Some(NOBODY), Some(NOBODY)).unwrap();
        }
        cmd.uid(NOBODY).gid(NOBODY);
    }
    cmd
}

/// Files and folders under `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.symlink_metadata().unwrap().is_dir() {
                stack.push(p.clone());
            }
            out.push(p);
        }
    }
    out
}

fn job_for<'a>(jobs: &'a [serde_json::Value], input: &str) -> &'a serde_json::Value {
    jobs.iter()
        .find(|j| j["input"] == input)
        .unwrap_or_else(|| panic!("no job for {input}: {jobs:#?}"))
}

const FLAC_OUT: &str = r#"
name = "p"
watch = "inbox"
retries = 1

[[output]]
path = "out/{stem}.flac"
bit_depth = 16

[source]
action = "move"
to = "done/{name}"
"#;

#[test]
fn an_unreadable_source_waits_where_it_is_until_it_can_be_read() {
    let dir = tempfile::tempdir().unwrap();
    let root = root_with(dir.path(), "p", FLAC_OUT);
    let host = Host::start_with(&root, unprivileged(&root));
    let locked = root.join("inbox/locked.wav");
    let staged = dir.path().join("locked.wav");
    programme_wav(&staged, 2.0, 1);
    chmod(&staged, 0o000);
    std::fs::rename(&staged, &locked).unwrap();
    programme_wav(&root.join("inbox/open.wav"), 2.0, 2);

    let js = host.settle_jobs(1);
    assert_eq!(job_for(&js, "inbox/open.wav")["state"], "done");
    host.wait_for("a warning about the locked file", || {
        host.log()
            .contains("locked.wav: cannot open (Permission denied")
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        host.jobs().len(),
        1,
        "no job for a file that cannot be read"
    );
    assert!(locked.is_file(), "the unreadable source stays where it is");

    // Readable now: it is taken like any other file.
    chmod(&locked, 0o644);
    let js = host.settle_jobs(2);
    let j = job_for(&js, "inbox/locked.wav");
    assert_eq!(j["state"], "done", "{j:#?}");
    assert!(root.join("out/locked.flac").is_file());
    assert!(root.join("done/locked.wav").is_file());
    assert!(host.log().contains("locked.wav: readable now"));
}

#[test]
fn an_output_folder_without_permission_fails_the_job_clearly_and_retry_finishes_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = root_with(dir.path(), "p", FLAC_OUT);
    let out = root.join("out");
    std::fs::create_dir_all(&out).unwrap();
    let host = Host::start_with(&root, unprivileged(&root));
    chmod(&out, 0o555);
    let src = root.join("inbox/take.wav");
    programme_wav(&src, 2.0, 3);
    let hash = blake3_hex(&src);

    // One retry with backoff, then failed, naming the folder and the problem.
    let js = host.settle_jobs(1);
    let j = job_for(&js, "inbox/take.wav");
    assert_eq!(j["state"], "failed", "{j:#?}");
    assert_eq!(j["attempts"], 2, "{j:#?}");
    let err = j["error"].as_str().unwrap();
    assert!(
        err.contains(&out.display().to_string()) && err.contains("Permission denied"),
        "{err}"
    );
    // The source is untouched and nothing was half-written.
    assert_eq!(blake3_hex(&src), hash);
    assert!(files_under(&out).is_empty());
    assert_no_temporaries(&root);

    // Fixed by the operator, retried by hand: done.
    chmod(&out, 0o755);
    let st = sluice()
        .args(["retry", "--failed", "--root"])
        .arg(&root)
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    host.wait_for("the retried job to finish", || {
        host.jobs()[0]["state"] == "done"
    });
    assert!(out.join("take.flac").is_file());
    assert_eq!(blake3_hex(&root.join("done/take.wav")), hash);
    // The job's history: a retry scheduled, failed, queued again by hand, done.
    let id = host.jobs()[0]["id"].as_u64().unwrap().to_string();
    let rec = sluice()
        .args(["job", &id, "--json", "--root"])
        .arg(&root)
        .output()
        .unwrap();
    let rec: serde_json::Value = serde_json::from_slice(&rec.stdout).unwrap();
    let kinds: Vec<&str> = rec["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    let at = |k: &str| {
        kinds
            .iter()
            .position(|x| *x == k)
            .unwrap_or_else(|| panic!("no {k} in {kinds:?}"))
    };
    assert!(
        at("retry_scheduled") < at("failed") && at("failed") < at("done"),
        "{kinds:?}"
    );
    let text = sluice()
        .args(["job", &id, "--root"])
        .arg(&root)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("done") && text.contains("output    out/take.flac"),
        "{text}"
    );
    assert!(!host.log().contains("panicked"), "{}", host.log());
}

#[test]
fn a_full_disk_fails_the_job_leaves_no_partial_file_and_the_host_carries_on() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = r#"
name = "wide"
watch = "inbox"
retries = 0

[[output]]
path = "out/{stem}.wav"
bit_depth = 24
"#;
    let root = root_with(dir.path(), "wide", pipeline);
    // A file size limit stands in for a full disk: a write past 4 MB fails (EFBIG), as a
    // write to a full disk fails with ENOSPC. The host must not die of SIGXFSZ.
    let mut cmd = watch_command(&root);
    // SAFETY: between fork and exec the closure only calls setrlimit (async-signal-safe),
    // on the child's own limits.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 4 << 20,
                rlim_max: 4 << 20,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let host = Host::start_with(&root, cmd);
    let big = root.join("inbox/long.wav");
    programme_wav(&big, 30.0, 4); // 5.3 MB in, 7.9 MB out as 24-bit
    let hash = blake3_hex(&big);
    let js = host.settle_jobs(1);
    let j = job_for(&js, "inbox/long.wav");
    assert_eq!(j["state"], "failed", "{j:#?}");
    let err = j["error"].as_str().unwrap();
    assert!(
        err.contains("long.wav") && err.contains("File too large"),
        "{err}"
    );
    assert!(!root.join("out/long.wav").exists());
    assert_no_temporaries(&root);
    assert_eq!(blake3_hex(&big), hash, "the source is untouched");

    // Still running, and a file that fits goes through.
    programme_wav(&root.join("inbox/short.wav"), 3.0, 5);
    let js = host.settle_jobs(2);
    assert_eq!(job_for(&js, "inbox/short.wav")["state"], "done");
    assert!(root.join("out/short.wav").is_file());
}

#[test]
fn a_source_vanishing_mid_job_leaves_no_partial_output() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = r#"
name = "norm"
watch = "inbox"

[[step]]
normalize = { loudness_lufs = -16, true_peak_dbtp = -1 }

[[output]]
path = "out/{stem}.flac"
bit_depth = 24
"#;
    let root = root_with(dir.path(), "norm", pipeline);
    let host = Host::start(&root);
    let staged = dir.path().join("gone.wav");
    programme_wav(&staged, 180.0, 6);
    let src = root.join("inbox/gone.wav");
    std::fs::rename(&staged, &src).unwrap();
    // Delete it as soon as its job runs.
    let t = Instant::now();
    loop {
        let js = jobs(&root);
        if js.first().is_some_and(|j| j["state"] == "running") {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(60), "{js:#?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::fs::remove_file(&src).unwrap();

    let js = host.settle_jobs(1);
    let j = job_for(&js, "inbox/gone.wav");
    let out = root.join("out/gone.flac");
    // The decoder may already hold the file open and finish reading it; a later pass that
    // opens it again finds it gone. Either way: a clear record, and never a partial output.
    match j["state"].as_str().unwrap() {
        "failed" => {
            let err = j["error"].as_str().unwrap();
            assert!(err.contains("gone.wav"), "{err}");
            assert!(!out.exists(), "{j:#?}\n{}", host.log());
        }
        "done" => {
            let info = sluice_core::probe_decoded(&out).unwrap();
            assert!(!info.truncated && info.warnings.is_empty());
            assert_eq!(j["outputs"][0]["hash"], blake3_hex(&out));
        }
        s => panic!("{s}: {j:#?}"),
    }
    eprintln!("vanished mid-job: {}\n{}", j["state"], host.log());
    assert_no_temporaries(&root);

    programme_wav(&root.join("inbox/next.wav"), 2.0, 7);
    let js = host.settle_jobs(2);
    assert_eq!(job_for(&js, "inbox/next.wav")["state"], "done");
}

#[test]
fn two_pipelines_writing_the_same_path_are_refused_by_check_and_by_the_host() {
    let dir = tempfile::tempdir().unwrap();
    let a = "name = \"a\"\nwatch = \"inbox/a\"\n\n[[output]]\npath = \"out/{stem}.flac\"\n";
    let b = "name = \"b\"\nwatch = \"inbox/b\"\n\n[[output]]\npath = \"out/{stem}.flac\"\n";
    let root = root_with(dir.path(), "a", a);
    std::fs::write(root.join("pipelines/b.toml"), b).unwrap();

    let out = sluice()
        .args(["check", "--root"])
        .arg(&root)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let b_file = root.join("pipelines/b.toml");
    assert!(
        err.contains(&format!("{}:5:8:", b_file.display())) && err.contains("a.toml"),
        "{err}"
    );

    // The host runs the first and refuses the second.
    let host = Host::start(&root);
    assert!(host.log().contains("pipeline refused"), "{}", host.log());
    std::fs::create_dir_all(root.join("inbox/b")).unwrap();
    programme_wav(&root.join("inbox/b/x.wav"), 1.0, 8);
    programme_wav(&root.join("inbox/a/x.wav"), 1.0, 9);
    let js = host.settle_jobs(1);
    std::thread::sleep(Duration::from_secs(3));
    let js2 = host.jobs();
    assert_eq!(js2.len(), 1, "{js2:#?}");
    assert_eq!(js[0]["pipeline"], "a");
    assert_eq!(js[0]["state"], "done");
    assert!(
        root.join("inbox/b/x.wav").is_file(),
        "b's file is left alone"
    );
}

#[test]
fn a_job_that_fails_after_writing_its_outputs_keeps_none_of_them() {
    let dir = tempfile::tempdir().unwrap();
    let root = root_with(
        dir.path(),
        "p",
        &FLAC_OUT.replace("retries = 1", "retries = 0"),
    );
    // The outputs can be written, the report cannot.
    let reports = root.join("reports");
    std::fs::create_dir_all(&reports).unwrap();
    let host = Host::start_with(&root, unprivileged(&root));
    chmod(&reports, 0o555);
    let src = root.join("inbox/take.wav");
    programme_wav(&src, 2.0, 10);
    let hash = blake3_hex(&src);
    let js = host.settle_jobs(1);
    let j = job_for(&js, "inbox/take.wav");
    assert_eq!(j["state"], "failed", "{j:#?}");
    assert!(
        j["error"].as_str().unwrap().contains("Permission denied"),
        "{j:#?}"
    );
    assert!(
        host.log()
            .contains("out/take.flac: removed, as the job did not finish")
    );
    assert!(files_under(&root.join("out")).is_empty());
    assert_no_temporaries(&root);
    assert_eq!(blake3_hex(&src), hash, "the source stays, untouched");
}

/// A 16-bit stereo 44.1 kHz FLAC of `planes` in frames of `block` samples, stored verbatim (no
/// prediction): the decoder hands out one block per frame, however large.
fn verbatim_flac(path: &Path, planes: &[Vec<f32>], block: usize) {
    assert_eq!(planes.len(), 2);
    assert!((1..=65535).contains(&block));
    let frames = planes[0].len();
    let mut out = b"fLaC".to_vec();
    // The last metadata block: STREAMINFO (34 bytes).
    out.extend([0x80, 0, 0, 34]);
    out.extend((block as u16).to_be_bytes());
    out.extend((block as u16).to_be_bytes());
    out.extend([0u8; 6]); // frame sizes unknown
    let packed: u64 = (44_100u64 << 44) | (1 << 41) | (15 << 36) | frames as u64;
    out.extend(packed.to_be_bytes());
    out.extend([0u8; 16]); // no MD5
    for (n, start) in (0..frames).step_by(block).enumerate() {
        let len = block.min(frames - start);
        assert!(n < 128, "one-byte frame numbers");
        let mut f = vec![0xFF, 0xF8, 0x79, 0x18, n as u8];
        f.extend(((len - 1) as u16).to_be_bytes());
        f.push(forge::crc8_flac(&f));
        for p in planes {
            f.push(0x02); // verbatim subframe
            for &x in &p[start..start + len] {
                let v = (f64::from(x) * 32768.0).round().clamp(-32768.0, 32767.0) as i16;
                f.extend(v.to_be_bytes());
            }
        }
        let crc = f.iter().fold(0, |c, &b| forge::crc16_flac(c, b));
        f.extend(crc.to_be_bytes());
        out.extend(f);
    }
    std::fs::write(path, out).unwrap();
}

/// A small tmpfs mounted at a folder (root may mount); unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, bytes: u64) -> Option<Tmpfs> {
        std::fs::create_dir_all(at).unwrap();
        let ok = is_root()
            && Command::new("mount")
                .args([
                    "-t",
                    "tmpfs",
                    "-o",
                    &format!("size={bytes},mode=0777"),
                    "tmpfs",
                ])
                .arg(at)
                .status()
                .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(at.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// A disk that fills while the last block of an output is written (when the render has
/// already handed over every block, so the encoder's thread reports the failure only at the
/// end): the job fails as an I/O problem with the operating system's own error, is not
/// taken for bad input, and the source stays where it is, not quarantined.
#[test]
fn a_disk_full_at_the_end_of_an_output_is_an_io_failure_not_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    // The MP3 first: its slow encoder keeps the export busy finishing it while the WAV's
    // encoder thread writes its last block into the full disk and stops.
    let pipeline = r#"
name = "full"
watch = "inbox"
retries = 0

[[output]]
path = "mp3/{stem}.mp3"
bitrate_kbps = 128

[[output]]
path = "full/{stem}.wav"
bit_depth = 16

[source]
action = "keep"
"#;
    let root = root_with(dir.path(), "full", pipeline);
    // 24 blocks of 65,535 frames, each written by the WAV encoder in one go (262,140 bytes).
    const BLOCK: u64 = 65_535;
    const BLOCKS: u64 = 24;
    let planes = sluice_core::signal::programme(44_100, 2, (BLOCK * BLOCKS) as usize, 8);
    let staged = dir.path().join("take.flac");
    verbatim_flac(&staged, &planes, BLOCK as usize);
    // Room for everything but the second half of the last block.
    let bytes = BLOCK * 4;
    let room = ((BLOCKS - 1) * bytes + bytes / 2) / 4096 * 4096;
    let tmpfs = Tmpfs::mount(&root.join("full"), room);
    let mut cmd = watch_command(&root);
    if tmpfs.is_none() {
        eprintln!(
            "no tmpfs (not root, or no mount): a file size limit stands in for the full disk"
        );
        // SAFETY: between fork and exec the closure only calls setrlimit (async-signal-safe),
        // on the child's own limits.
        unsafe {
            cmd.pre_exec(move || {
                let lim = libc::rlimit {
                    rlim_cur: room,
                    rlim_max: room,
                };
                if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let host = Host::start_with(&root, cmd);
    let src = root.join("inbox/take.flac");
    std::fs::rename(&staged, &src).unwrap();
    let hash = blake3_hex(&src);
    let js = host.settle_jobs(1);
    let j = job_for(&js, "inbox/take.flac");
    let err = j["error"].as_str().unwrap_or_default();
    let os_error = if tmpfs.is_some() {
        "No space left on device"
    } else {
        "File too large"
    };
    assert_eq!(j["state"], "failed", "{j:#?}\n{}", host.log());
    assert!(
        err.contains("take.wav") && err.contains(os_error),
        "the operating system's error, naming the output: {err}"
    );
    assert!(!err.contains("failed earlier"), "{err}");
    assert!(src.is_file(), "the source stays where it arrived");
    assert_eq!(blake3_hex(&src), hash);
    let quarantined = files_under(&root.join("failed"));
    assert!(quarantined.is_empty(), "{quarantined:#?}");
    assert!(!root.join("full/take.wav").exists());
    assert!(
        !root.join("mp3/take.mp3").exists(),
        "no output of a failed job stays"
    );
    assert_no_temporaries(&root);
    drop(host);
    drop(tmpfs);
}
