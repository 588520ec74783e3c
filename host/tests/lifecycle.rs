//! The host's life through the real binary: the default root made on first start, pipelines
//! reloaded while it runs, a prompt stop on SIGTERM (running jobs get a short grace, then go
//! back to the queue), and the storage commands (`stats`, `clean`).

mod common;
#[path = "../../core/tests/common/forge.rs"]
mod forge;

use common::{Host, files_under, jobs, programme_wav, sluice, watch_command};
use std::path::Path;
use std::time::{Duration, Instant};

/// Write `path` whole under a temporary name, then rename it in (as a careful uploader does).
fn drop_in(dir: &Path, name: &str, seconds: f64, seed: u64) {
    let staged = dir.join(format!(".{name}.staging"));
    programme_wav(&staged, seconds, seed);
    std::fs::rename(&staged, dir.join(name)).unwrap();
}

#[test]
fn first_start_makes_a_default_root_and_sigterm_stops_promptly_requeueing_running_jobs() {
    let home = tempfile::tempdir().unwrap();
    let command = || {
        let mut cmd = sluice();
        cmd.arg("watch")
            .env("HOME", home.path())
            .env_remove("SLUICE_ROOT")
            .env("SLUICE_SETTLE_SECONDS", "1")
            .env("SLUICE_WORKERS", "1");
        cmd
    };
    let root = home.path().join("Sluice");
    let host = Host::start_with(&root, command());
    let log = host.log();
    assert!(
        log.contains(&format!("made a new root at {}", root.display())),
        "{log}"
    );
    assert!(log.contains("drop files into"), "{log}");
    for d in [
        "outbox",
        "done",
        "failed",
        "pipelines",
        "inbox/podcast",
        "inbox/archive",
    ] {
        assert!(root.join(d).is_dir(), "{d}");
    }
    assert!(root.join("sluice.toml").is_file());
    let pipelines = std::fs::read_dir(root.join("pipelines")).unwrap().count();
    assert_eq!(pipelines, 5);
    // The example configuration checks clean.
    let st = sluice()
        .arg("check")
        .env("HOME", home.path())
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );

    // A short job finishes.
    drop_in(&root.join("inbox/podcast"), "short.wav", 2.0, 1);
    let js = host.settle_jobs(1);
    assert_eq!(js[0]["state"], "done", "{js:#?}");
    let short_output = root.join(js[0]["outputs"][0]["path"].as_str().unwrap());
    assert!(short_output.is_file());

    // A long job (three hours of silence in 2 MB: minutes of rendering), and SIGTERM while it
    // runs: it has its grace, then its render stops and it goes back to the queue; the host
    // exits within seconds, leaving no output of it and no temporary.
    std::fs::write(
        root.join("inbox/podcast/long.flac"),
        forge::silent_flac(3 * 3600),
    )
    .unwrap();
    let long = |root: &Path| {
        jobs(root)
            .into_iter()
            .find(|j| j["input"] == "inbox/podcast/long.flac")
    };
    let t = Instant::now();
    while !long(&root).is_some_and(|j| j["state"] == "running") {
        assert!(t.elapsed() < Duration::from_secs(60), "{}", host.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    let log_path = host.log.clone();
    let t = Instant::now();
    let status = host.stop();
    let took = t.elapsed();
    assert!(status.success(), "{status:?}");
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        took < Duration::from_secs(10),
        "the host took {took:?} to stop: {log}"
    );
    assert!(log.contains("interrupting the running job(s)"), "{log}");
    let j = long(&root).unwrap();
    assert_eq!(j["state"], "queued", "{j:#?}");
    assert_eq!(j["attempts"], 0, "{j:#?}");
    let left: Vec<_> = files_under(&root)
        .into_iter()
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            name.ends_with(".part")
                || (name.starts_with("long.") && !p.starts_with(root.join("inbox")))
        })
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert!(short_output.is_file());
    // And it logged to a file too.
    assert!(!files_under(&root.join(".sluice/logs")).is_empty());

    // Started again, the host takes the job up again.
    let host = Host::start_with(&root, command());
    host.wait_for("the interrupted job to run again", || {
        long(&root).is_some_and(|j| j["state"] == "running")
    });
}

#[test]
fn pipelines_reload_while_the_host_runs() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    common::new_root(&root, &[], &[]);
    let host = Host::start_with(&root, watch_command(&root));

    // A pipeline added while running starts watching its folder.
    let v1 =
        "name = \"extra\"\nwatch = \"inbox/extra\"\n\n[[output]]\npath = \"out/v1/{stem}.flac\"\n";
    std::fs::write(root.join("pipelines/extra.toml"), v1).unwrap();
    host.wait_for("the new pipeline", || {
        host.log().contains("pipeline extra (") && root.join("inbox/extra").is_dir()
    });
    drop_in(&root.join("inbox/extra"), "a.wav", 1.0, 1);
    host.settle_jobs(1);
    assert!(root.join("out/v1/a.flac").is_file());

    // A broken pipeline is refused with its location; the others keep running.
    std::fs::write(
        root.join("pipelines/broken.toml"),
        "name = \"broken\"\nwatch = \"inbox/broken\"\n[[output]]\npath = \"x/{nonsense}.wav\"\n",
    )
    .unwrap();
    host.wait_for("the broken pipeline to be refused", || {
        host.log().contains("pipeline refused") && host.log().contains("broken.toml:4:")
    });
    drop_in(&root.join("inbox/extra"), "b.wav", 1.0, 2);
    host.settle_jobs(2);
    assert!(root.join("out/v1/b.flac").is_file());

    // An edit applies to files that arrive after it.
    std::fs::write(
        root.join("pipelines/extra.toml"),
        v1.replace("out/v1", "out/v2"),
    )
    .unwrap();
    let before = host.log().matches("pipeline extra (").count();
    host.wait_for("the edited pipeline", || {
        host.log().matches("pipeline extra (").count() > before
    });
    drop_in(&root.join("inbox/extra"), "c.wav", 1.0, 3);
    let js = host.settle_jobs(3);
    assert!(root.join("out/v2/c.flac").is_file(), "{js:#?}");
    assert!(
        !root.join("out/v2/a.flac").exists(),
        "earlier files are not redone"
    );
    let versions: std::collections::BTreeSet<&str> = js
        .iter()
        .map(|j| j["pipeline_hash"].as_str().unwrap())
        .collect();
    assert_eq!(versions.len(), 2);
}

#[test]
fn stats_and_clean_with_a_dry_run() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    common::new_root(&root, &[], &[]);
    std::fs::write(
        root.join("pipelines/dated.toml"),
        r#"
name = "dated"
watch = "inbox"

[[output]]
path = "out/{date:%Y/%m/%d}/{stem}.flac"

[[output]]
path = "out/{date:%Y/%m/%d}/mp3/{stem}.mp3"

[source]
action = "move"
to = "done/{name}"
"#,
    )
    .unwrap();
    let host = Host::start(&root);
    drop_in(&root.join("inbox"), "one.wav", 2.0, 1);
    drop_in(&root.join("inbox"), "two.wav", 2.0, 2);
    host.settle_jobs(2);
    drop(host);

    let stats = sluice()
        .args(["stats", "--json", "--root"])
        .arg(&root)
        .output()
        .unwrap();
    assert!(stats.status.success());
    let s: serde_json::Value = serde_json::from_slice(&stats.stdout).unwrap();
    assert_eq!(s["jobs"]["done"], 2, "{s:#}");
    assert_eq!(s["by_type"]["flac"]["files"], 2, "{s:#}");
    assert_eq!(s["by_type"]["mp3"]["files"], 2, "{s:#}");
    assert_eq!(s["by_type"]["wav"]["files"], 2, "{s:#}");
    let flac_bytes: u64 = files_under(&root.join("out"))
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "flac"))
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    assert_eq!(s["by_type"]["flac"]["bytes"], flac_bytes);
    // The readable form says the same.
    let text = sluice()
        .args(["stats", "--root"])
        .arg(&root)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&text.stdout).contains("done 2"));

    // Nothing is older than a day.
    let clean = |age: &str, dry: bool| {
        let mut c = sluice();
        c.args(["clean", "--older-than", age, "--root"]).arg(&root);
        if dry {
            c.arg("--dry-run");
        }
        let out = c.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(clean("1d", false).contains("removed 0 file(s)"));
    assert_eq!(files_under(&root.join("out")).len(), 4);

    // Pictures the HTTP API drew for a content (`.sluice/plots/HASH/`): a cache.
    let pictures = root.join(".sluice/plots");
    std::fs::create_dir_all(pictures.join("old")).unwrap();
    std::fs::write(pictures.join("old/waveform.png"), b"png").unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    std::fs::create_dir_all(pictures.join("new")).unwrap();
    std::fs::write(pictures.join("new/waveform.png"), b"png").unwrap();
    let dry = clean("1s", true);
    // Four outputs, two reports and two moved sources; the dated folders they leave empty; and
    // the picture not drawn for a second (the one just drawn stays).
    assert!(dry.contains("would remove 9 file(s)"), "{dry}");
    assert!(dry.contains("dry run: nothing removed"), "{dry}");
    assert_eq!(
        files_under(&root.join("out")).len(),
        4,
        "a dry run removes nothing"
    );
    // Drawn again just now (the dry run took its time).
    std::fs::write(pictures.join("new/waveform.png"), b"png").unwrap();
    let real = clean("1s", false);
    let folders = |t: &str| {
        t.lines()
            .last()
            .unwrap()
            .split(", and ")
            .nth(1)
            .and_then(|x| x.split_whitespace().next())
            .unwrap()
            .to_string()
    };
    assert_eq!(folders(&dry), folders(&real), "{dry}\n{real}");
    assert!(real.contains("removed 9 file(s)"), "{real}");
    assert!(!pictures.join("old").exists());
    assert!(pictures.join("new/waveform.png").is_file());
    assert!(files_under(&root.join("out")).is_empty());
    assert!(!root.join("out").exists(), "empty folders go too");
    assert!(root.join("inbox").is_dir(), "watched folders stay");
    // The job records stay.
    assert_eq!(jobs(&root).len(), 2);
}
