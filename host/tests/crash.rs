//! Crash safety: the host is SIGKILLed at pseudo-random moments during a batch, 24 times,
//! restarted each time, then left to finish. Every input must have produced exactly one
//! complete set of outputs, every source must be in `done/` once, and no temporary may remain.

mod common;

use common::{assert_no_temporaries, files_under, programme_wav, sluice};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PIPELINE: &str = r#"
name = "crash"
watch = "inbox"

[[step]]
normalize = { loudness_lufs = -18, true_peak_dbtp = -1 }

[[output]]
path = "out/{stem}.flac"
bit_depth = 16

[[output]]
path = "out/mp3/{stem}.mp3"
bitrate_kbps = 128

[source]
action = "move"
to = "done/{name}"
"#;

fn start(root: &Path, log: &Path) -> std::process::Child {
    sluice()
        .args(["watch", "--root"])
        .arg(root)
        .env("SLUICE_SETTLE_SECONDS", "0.3")
        .env("SLUICE_RESCAN_SECONDS", "1")
        .env("SLUICE_WORKERS", "2")
        // 24 kills may cut one job short more often than the quarantine ceiling allows: the
        // kills are the test's, not the input's fault.
        .env("SLUICE_MAX_INTERRUPTED_RUNS", "1000")
        .stdout(Stdio::from(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .unwrap(),
        ))
        .stderr(Stdio::from(
            std::fs::OpenOptions::new().append(true).open(log).unwrap(),
        ))
        .spawn()
        .unwrap()
}

/// Waits (a minute at most) for a job of `root` running with its paths planned and reserved,
/// while `child` (the process that runs it) lives; then half a second more, into the render.
fn running_with_paths(root: &Path, child: &mut Child) -> serde_json::Value {
    let t = Instant::now();
    let job = loop {
        assert!(t.elapsed() < Duration::from_secs(60), "no job started");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the process ended before it could be killed"
        );
        if let Some(j) = jobs(root).into_iter().find(|j| {
            j["state"] == "running" && j["planned"].as_array().is_some_and(|p| !p.is_empty())
        }) {
            break j;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    std::thread::sleep(Duration::from_millis(500));
    job
}

/// Pipeline `slow` (watching `inbox`): a slow chain (reverb, a pitch shift), seconds to
/// render over a minute of programme, with `head` before its steps and `tail` after them.
fn slow(head: &str, tail: &str) -> String {
    format!(
        "name = \"slow\"\nwatch = \"inbox\"\n{head}\n[[step]]\neffect = \"reverb\"\n\n\
         [[step]]\neffect = \"pitch\"\nparams = {{ semitones = 3.0 }}\n\n{tail}"
    )
}

/// A root in `dir` (watching `inbox`) with pipeline `slow` written as `slow("", tail)`:
/// the root and the pipeline's file.
fn slow_root(dir: &Path, tail: &str) -> (PathBuf, PathBuf) {
    let root = dir.join("root");
    common::new_root(&root, &["inbox"], &[]);
    let pipeline = root.join("pipelines/slow.toml");
    std::fs::write(&pipeline, slow("", tail)).unwrap();
    (root, pipeline)
}

/// A host on `root` cut short (`kill -9`) while it renders `staged`, renamed into its `inbox`:
/// the job as it was, its paths planned.
fn cut_short(root: &Path, log: &Path, staged: &Path) -> serde_json::Value {
    let mut host = start(root, log);
    std::fs::rename(staged, root.join("inbox").join(staged.file_name().unwrap())).unwrap();
    let job = running_with_paths(root, &mut host);
    host.kill().unwrap();
    host.wait().unwrap();
    job
}

/// A host started on `root` and left until its (one) job is done or failed (two minutes at
/// most), then killed: the job.
fn run_to_end(root: &Path, log: &Path) -> serde_json::Value {
    let mut host = start(root, log);
    let t = Instant::now();
    let job = loop {
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "the job did not finish"
        );
        if let Some(j) = jobs(root)
            .into_iter()
            .find(|j| j["state"] == "done" || j["state"] == "failed")
        {
            break j;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    host.kill().unwrap();
    host.wait().unwrap();
    job
}

fn jobs(root: &Path) -> Vec<serde_json::Value> {
    let out = sluice()
        .args(["jobs", "--json", "--root"])
        .arg(root)
        .output()
        .unwrap();
    if !out.status.success() {
        return Vec::new();
    }
    serde_json::from_slice(&out.stdout).unwrap_or_default()
}

#[test]
fn kill_9_at_random_moments_loses_and_repeats_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    common::new_root(&root, &["inbox"], &[("crash", PIPELINE)]);
    let log = dir.path().join("host.log");

    // A batch that keeps arriving: some files at the start, one more before every restart, so
    // the kills land while files settle, jobs run, outputs are renamed and sources move.
    let rounds = 24;
    let first = 6;
    let n = first + rounds;
    let mut sources = Vec::new();
    let mut drop_file = |i: usize| {
        let staged = dir.path().join(format!("take{i:02}.wav"));
        programme_wav(&staged, 8.0 + (i % 5) as f64, i as u64 + 1);
        sources.push((
            format!("take{i:02}"),
            blake3::hash(&std::fs::read(&staged).unwrap()),
        ));
        std::fs::rename(
            &staged,
            root.join("inbox").join(staged.file_name().unwrap()),
        )
        .unwrap();
    };
    for i in 0..first {
        drop_file(i);
    }

    // Kill at pseudo-random moments (fixed seed: the same run every time).
    let mut seed: u64 = 0x5eed_cafe;
    let mut rnd = move || {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        seed >> 33
    };
    for r in 0..rounds {
        drop_file(first + r);
        let mut child = start(&root, &log);
        std::thread::sleep(Duration::from_millis(300 + rnd() % 1200));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }

    // Let it finish.
    let mut child = start(&root, &log);
    let t = Instant::now();
    loop {
        let js = jobs(&root);
        let finished = js.len() >= n
            && js
                .iter()
                .all(|j| j["state"] != "queued" && j["state"] != "running")
            && files_under(&root.join("inbox")).is_empty();
        if finished {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(240),
            "not finished: {js:#?}\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // SAFETY: signalling our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    child.wait().unwrap();

    let js = jobs(&root);
    assert_eq!(js.len(), n, "one job per input: {js:#?}");
    for j in &js {
        assert_eq!(j["state"], "done", "{j:#?}");
    }
    let out = files_under(&root.join("out"));
    assert_eq!(out.len(), 2 * n, "exactly one set per input: {out:#?}");
    for (stem, hash) in &sources {
        let flac = root.join(format!("out/{stem}.flac"));
        let mp3 = root.join(format!("out/mp3/{stem}.mp3"));
        for p in [&flac, &mp3] {
            // Complete: it decodes to the end, without damage.
            let info = sluice_core::probe_decoded(p).unwrap();
            assert!(!info.truncated, "{}", p.display());
            assert!(
                info.warnings.is_empty(),
                "{}: {:?}",
                p.display(),
                info.warnings
            );
        }
        let moved = root.join(format!("done/{stem}.wav"));
        assert_eq!(blake3::hash(&std::fs::read(&moved).unwrap()), *hash);
        let job = js
            .iter()
            .find(|j| j["input"] == format!("inbox/{stem}.wav"))
            .unwrap();
        for o in job["outputs"].as_array().unwrap() {
            let p = root.join(o["path"].as_str().unwrap());
            assert_eq!(
                o["hash"],
                blake3::hash(&std::fs::read(&p).unwrap())
                    .to_hex()
                    .to_string()
            );
        }
    }
    assert_eq!(files_under(&root.join("done")).len(), n);
    assert_no_temporaries(&root);
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    eprintln!(
        "{rounds} kills; jobs queued again after a kill: {}",
        text.matches("was running when the host stopped").count()
    );
}

/// `sluice run` killed (SIGKILL) while it renders, then run again on the same file (after an
/// edit of the pipeline): the second run takes over the dead run's job — the same id, one
/// interrupted run counted, the names the pipeline gives now — instead of making a second job
/// beside it, which wrote `long (2).flac` and left
/// the dead job running for the next host to render the file once more. Nothing of the killed
/// run is left behind.
#[test]
fn a_killed_sluice_run_is_taken_over_by_the_next_run_of_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    common::new_root(&root, &[], &[]);
    // A slow chain (reverb, a pitch shift) over a minute of programme: seconds to render.
    std::fs::write(
        root.join("pipelines/slow.toml"),
        slow("", "[[output]]\npath = \"out/{stem}.flac\"\n"),
    )
    .unwrap();
    let src = dir.path().join("long.wav");
    programme_wav(&src, 60.0, 7);
    let run = || {
        let mut cmd = sluice();
        cmd.args(["run", "slow", "--json", "--root"])
            .arg(&root)
            .arg(&src);
        cmd
    };
    let mut child = run()
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Killed once its job is running with its names reserved.
    let killed = running_with_paths(&root, &mut child);
    let pid = child.id();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !root.join("out/long.flac").exists(),
        "the killed run finished"
    );
    // Listed as cut short, not as running on.
    let listed = sluice()
        .args(["jobs", "--root"])
        .arg(&root)
        .output()
        .unwrap();
    let listed = common::printed(&listed);
    assert!(
        listed.contains(&format!(
            "cut short: its `sluice run` (pid {pid}) has ended"
        )),
        "{listed}"
    );

    // The pipeline edited meanwhile (MP3 instead of FLAC): still that job, under the names
    // the pipeline gives now.
    let toml = root.join("pipelines/slow.toml");
    let edited = std::fs::read_to_string(&toml)
        .unwrap()
        .replace("out/{stem}.flac", "out/{stem}.mp3");
    std::fs::write(&toml, edited).unwrap();
    let job = common::run_pipeline(&root, "slow", &src);
    assert_eq!(job["id"], killed["id"], "{job:#}");
    assert_eq!(job["interrupted"], 1, "{job:#}");
    assert_eq!(job["outputs"][0]["path"], "out/long.mp3", "{job:#}");
    let all = jobs(&root);
    assert_eq!(all.len(), 1, "one job for the file: {all:#?}");
    assert_eq!(
        files_under(&root.join("out")),
        vec![root.join("out/long.mp3")]
    );
    assert_no_temporaries(&root);
    let events = sluice()
        .args(["job", "--root"])
        .arg(&root)
        .arg(job["id"].to_string())
        .output()
        .unwrap();
    let events = common::printed(&events);
    assert!(events.contains("taking over the stopped run"), "{events}");
}

/// The host killed while it renders a file, the pipeline edited (another output format, the
/// source now moved, a report), the host started again: the job runs with the pipeline as it is
/// now, under the paths that pipeline gives — not the paths planned for the old one, which put
/// MP3 data under a `.flac` name and moved the source where the old version had it (to
/// `done/slow/`, the default move), with no report. What a stranger left at the old output's name
/// meanwhile (a FIFO, whose read would block) is not read, removed or written.
#[test]
fn a_job_cut_short_runs_again_under_the_pipeline_as_edited() {
    let dir = tempfile::tempdir().unwrap();
    let (root, pipeline) = slow_root(dir.path(), "[[output]]\npath = \"out/{stem}.flac\"\n");
    let staged = dir.path().join("long.wav");
    programme_wav(&staged, 60.0, 11);
    let hash = blake3::hash(&std::fs::read(&staged).unwrap());
    let log = dir.path().join("host.log");
    let cut = cut_short(&root, &log, &staged);
    assert!(
        !root.join("out/long.flac").exists(),
        "the killed run finished"
    );
    // A FIFO at the name the old version planned: reading it would block the host for good.
    let fifo = root.join("out/long.flac");
    std::fs::create_dir_all(root.join("out")).unwrap();
    common::succeed(Command::new("mkfifo").arg(&fifo));
    // And someone's file where the old version was to move the source (it never did): not
    // the job's to remove.
    let old_move = root.join(
        cut["planned"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()
            .as_str()
            .unwrap(),
    );
    assert!(old_move.starts_with(root.join("done/slow")), "{cut:#}");
    std::fs::create_dir_all(old_move.parent().unwrap()).unwrap();
    std::fs::write(&old_move, b"not the job's").unwrap();

    std::fs::write(
        &pipeline,
        slow(
            "report = \"reports/{stem}.json\"\n",
            "[[output]]\npath = \"out/{stem}.mp3\"\nbitrate_kbps = 128\n\n\
             [source]\naction = \"move\"\nto = \"done/{name}\"\n",
        ),
    )
    .unwrap();
    let job = run_to_end(&root, &log);
    assert_eq!(job["state"], "done", "{job:#}");
    assert!(
        std::fs::symlink_metadata(&fifo).is_ok_and(|m| m.file_type().is_fifo()),
        "the FIFO at the old name was replaced or removed"
    );
    std::fs::remove_file(&fifo).unwrap();
    assert_eq!(std::fs::read(&old_move).unwrap(), b"not the job's");
    let mp3 = root.join("out/long.mp3");
    assert_eq!(
        files_under(&root.join("out")),
        vec![mp3.clone()],
        "{job:#}\n{:?}",
        files_under(&root)
    );
    let info = sluice_core::probe_decoded(&mp3).unwrap();
    assert!(!info.truncated, "{}", mp3.display());
    assert_eq!(
        blake3::hash(&std::fs::read(root.join("done/long.wav")).unwrap()),
        hash,
        "the source, moved"
    );
    assert!(root.join("reports/long.json").is_file(), "{job:#}");
    assert_eq!(job["outputs"][0]["path"], "out/long.mp3", "{job:#}");
    assert_no_temporaries(&root);
}

/// The host killed after it moved a finished job's source but before it marked the job done
/// (its outputs committed, the source in the pipeline's `done/` folder), the pipeline then
/// edited (two outputs now, the source kept where it is): the restarted host must not take the
/// moved source for one of the old version's files. It removed it as such (the paths planned
/// for the old version read with the new one's layout), losing the only copy. Now the job runs
/// again from where the source is, under the new version's paths, and the source stays.
///
/// The state a kill leaves in that window (a rename wide) is made by hand from a kill during
/// the render: the output the old version would have committed written, the source moved
/// where the old version planned it.
#[test]
fn a_source_moved_before_a_kill_survives_an_edit_of_its_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    let (root, pipeline) = slow_root(
        dir.path(),
        "[[output]]\npath = \"out/{stem}.flac\"\n\n\
         [source]\naction = \"move\"\nto = \"done/{name}\"\n",
    );
    let staged = dir.path().join("long.wav");
    programme_wav(&staged, 30.0, 13);
    let hash = blake3::hash(&std::fs::read(&staged).unwrap());
    let log = dir.path().join("host.log");
    let job = cut_short(&root, &log, &staged);
    // The output, the report (by default), the moved source.
    let planned: Vec<&str> = job["planned"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert_eq!(planned.len(), 3, "{job:#}");
    assert_eq!(planned[0], "out/long.flac", "{job:#}");
    assert_eq!(planned[2], "done/long.wav", "{job:#}");
    // What the old version's finish had done when the kill came: its output and report
    // committed, the source moved; the job not yet done.
    std::fs::write(root.join("out/long.flac"), b"the old version's output").unwrap();
    let old_report = root.join(planned[1]);
    std::fs::create_dir_all(old_report.parent().unwrap()).unwrap();
    std::fs::write(&old_report, b"{}").unwrap();
    std::fs::create_dir_all(root.join("done")).unwrap();
    std::fs::rename(root.join("inbox/long.wav"), root.join("done/long.wav")).unwrap();

    std::fs::write(
        &pipeline,
        slow(
            "",
            "[[output]]\npath = \"out/{stem}.flac\"\n\n[[output]]\npath = \"out/{stem}.mp3\"\n\
             bitrate_kbps = 128\n\n[source]\naction = \"keep\"\n",
        ),
    )
    .unwrap();
    let job = run_to_end(&root, &log);
    let moved = root.join("done/long.wav");
    assert!(
        moved.is_file(),
        "the source is lost: {job:#}\n{:?}",
        files_under(&root)
    );
    assert_eq!(blake3::hash(&std::fs::read(&moved).unwrap()), hash);
    assert_eq!(job["state"], "done", "{job:#}");
    assert_eq!(job["source_now"], "done/long.wav", "{job:#}");
    let flac = root.join("out/long.flac");
    let mp3 = root.join("out/long.mp3");
    assert_eq!(
        files_under(&root.join("out")),
        vec![flac.clone(), mp3.clone()]
    );
    for out in [&flac, &mp3] {
        let info = sluice_core::probe_decoded(out).unwrap();
        assert!(!info.truncated, "{}", out.display());
    }
    assert_no_temporaries(&root);
}
