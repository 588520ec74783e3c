//! `sluice info` and `sluice formats` as a user runs them.

mod common;

use common::{fixture, sluice};
use std::process::{Command, Output};

fn run(cmd: &mut Command) -> (Output, String, String) {
    let out = cmd.output().expect("run sluice");
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    let stderr = String::from_utf8(out.stderr.clone()).unwrap();
    (out, stdout, stderr)
}

#[test]
fn info_readable_summary() {
    let (out, stdout, stderr) = run(sluice()
        .arg("info")
        .arg(fixture("tagged.mp3"))
        .arg(fixture("bwf_v2.wav")));
    assert!(out.status.success(), "{stderr}");
    for needle in [
        "MP3 (MPEG-1/2 Layer III) [mp3]",
        "44100 Hz, 2 ch (stereo: FL FR)",
        "0:02.000 (88200 frames, from header)",
        "isrc         USSLC2400003",
        "album artist Sluicé Collective",
        "bext        version 2",
        "loudness     -23.00 LUFS",
        "time ref     158760000 samples (1:00:00.000)",
    ] {
        assert!(stdout.contains(needle), "missing {needle:?} in\n{stdout}");
    }
}

#[test]
fn info_json_for_scripts() {
    let (out, stdout, _) = run(sluice()
        .args(["info", "--json"])
        .arg(fixture("tagged.flac"))
        .arg(fixture("surround51.wav")));
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let a = v.as_array().unwrap();
    assert_eq!(a.len(), 2);
    assert_eq!(a[0]["format"], "flac");
    assert_eq!(a[0]["frames"], 88_200);
    assert_eq!(a[0]["bit_depth"], 16);
    assert_eq!(a[0]["tags"]["isrc"], "USSLC2400003");
    assert_eq!(a[0]["tags"]["pictures"], 1);
    assert_eq!(a[1]["channels"], 6);
    assert_eq!(a[1]["layout_name"], "5.1");
    assert_eq!(a[1]["channel_layout"][3], "LFE");
}

#[test]
fn failures_give_nonzero_exit_and_the_rest_is_still_reported() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.flac");
    std::fs::write(&empty, b"").unwrap();
    let (out, stdout, stderr) = run(sluice()
        .arg("info")
        .arg(fixture("ten_ms.wav"))
        .arg(&empty)
        .arg(fixture("unsupported.mid"))
        .arg(fixture("tagged.ogg")));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout.contains("ten_ms.wav") && stdout.contains("tagged.ogg"),
        "{stdout}"
    );
    assert!(
        stderr.contains(&format!("{}: the file is empty", empty.display())),
        "{stderr}"
    );
    assert!(
        stderr.contains("unsupported.mid: MIDI is not supported"),
        "{stderr}"
    );
    assert!(stderr.contains("2 of 4 files failed"), "{stderr}");

    let (out, stdout, _) = run(sluice()
        .args(["info", "--json"])
        .arg(fixture("ten_ms.wav"))
        .arg(&empty));
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v[0]["frames"], 480);
    assert_eq!(v[1]["error"]["kind"], "empty");
    assert_eq!(v[1]["path"], empty.display().to_string());
}

#[test]
fn decode_flag_counts_and_finds_truncation() {
    let dir = tempfile::tempdir().unwrap();
    let cut = dir.path().join("cut.mp3");
    std::fs::write(
        &cut,
        &std::fs::read(fixture("tagged.mp3")).unwrap()[..30_000],
    )
    .unwrap();
    let (out, stdout, _) = run(sluice().args(["info", "--decode", "--json"]).arg(&cut));
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v[0]["frames_source"], "decoded");
    assert_eq!(v[0]["truncated"], true);
    let (_, stdout, _) = run(sluice().args(["info", "--decode"]).arg(&cut));
    assert!(stdout.contains("warning     truncated"), "{stdout}");
}

#[test]
fn unreadable_file_is_reported_as_such() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let dir = tempfile::Builder::new()
        .prefix("sluice-perm")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let p = dir.path().join("locked.wav");
    std::fs::copy(fixture("ten_ms.wav"), &p).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o000)).unwrap();
    let mut cmd = if std::fs::File::open(&p).is_ok() {
        // Root reads anything: run the CLI as the unprivileged `nobody` (uid 65534) instead,
        // from a copy it can reach whatever the permissions of the checkout.
        let exe = dir.path().join("sluice");
        std::fs::copy(env!("CARGO_BIN_EXE_sluice"), &exe).unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut c = Command::new(exe);
        c.uid(65534).gid(65534);
        c
    } else {
        sluice()
    };
    cmd.arg("info").arg(&p);
    let (out, _, stderr) = run(&mut cmd);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("{}: permission denied", p.display())),
        "{stderr}"
    );
}

#[test]
fn formats_listing() {
    let (out, stdout, _) = run(sluice().arg("formats"));
    assert!(out.status.success());
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("flac") && l.contains("lossless")),
        "{stdout}"
    );
    let (_, stdout, _) = run(sluice().args(["formats", "--json"]));
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let mp3 = v
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "mp3")
        .unwrap();
    assert_eq!(mp3["decode"], true);
    assert_eq!(mp3["lossless"], false);
    assert_eq!(mp3["max_sample_rate"], 48_000);
}

#[test]
fn analyze_readable_and_json() {
    let (out, stdout, _) = run(sluice().arg("analyze").arg(fixture("source.wav")));
    assert!(out.status.success());
    for needle in [
        "Loudness",
        "integrated -13.0 LUFS",
        "true peak",
        "Spectrum",
        "Stereo",
        "Targets",
    ] {
        assert!(stdout.contains(needle), "missing {needle}:\n{stdout}");
    }
    let (out, stdout, _) = run(sluice()
        .args([
            "analyze",
            "--json",
            "--only",
            "loudness,levels",
            "--target",
            "club=-9,-0.5",
        ])
        .arg(fixture("source.wav"))
        .arg(fixture("ten_ms.wav")));
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let a = v.as_array().unwrap();
    assert_eq!(a.len(), 2);
    assert!(a[0]["loudness"]["integrated_lufs"].as_f64().unwrap() < -12.0);
    assert!(
        a[0].get("spectrum").is_none(),
        "--only leaves other sections out"
    );
    // Targets were not asked for; loudness of a 10 ms file is undefined, i.e. null.
    assert!(a[0].get("targets").is_none());
    assert!(a[1]["loudness"]["integrated_lufs"].is_null());
    let (_, stdout, _) = run(sluice()
        .args([
            "analyze",
            "--json",
            "--only",
            "targets",
            "--target",
            "club=-9,-0.5",
        ])
        .arg(fixture("source.wav")));
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let t = &v[0]["targets"][0];
    assert_eq!(t["id"], "club");
    assert!((t["gain_db"].as_f64().unwrap() - 4.0).abs() < 0.1, "{t}");
}

#[test]
fn analyze_bad_arguments_and_bad_files() {
    let (out, _, stderr) = run(sluice()
        .args(["analyze", "--only", "loudnes"])
        .arg(fixture("source.wav")));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr.contains("unknown section `loudnes`"), "{stderr}");
    let (out, _, stderr) = run(sluice()
        .args(["analyze", "--target", "loud"])
        .arg(fixture("source.wav")));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr.contains("neither a preset"), "{stderr}");
    let (out, stdout, stderr) = run(sluice()
        .args(["analyze", "--json"])
        .arg(fixture("unsupported.mid"))
        .arg(fixture("source.wav")));
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert!(
        v[0]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unsupported.mid")
    );
    assert!(
        v[1]["loudness"].is_object(),
        "the good file is still analysed: {stderr}"
    );
}

#[test]
fn analyze_plots_pngs() {
    let dir = tempfile::tempdir().unwrap();
    let plots = dir.path().join("plots");
    let (out, _, stderr) = run(sluice()
        .args(["analyze", "--plot"])
        .arg(&plots)
        .arg(fixture("source.wav")));
    assert!(out.status.success(), "{stderr}");
    for kind in ["waveform", "loudness", "spectrum"] {
        let p = plots.join(format!("source.wav.{kind}.png"));
        let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        assert_eq!(
            &bytes[..8],
            b"\x89PNG\r\n\x1a\n",
            "{} is a PNG",
            p.display()
        );
        assert!(bytes.len() > 2000, "{} is not blank", p.display());
    }
    // Nothing half-written left behind.
    let names: Vec<String> = std::fs::read_dir(&plots)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
}

#[test]
fn analyze_runs_files_in_parallel_with_the_same_results() {
    let files = [
        fixture("source.wav"),
        fixture("tagged.flac"),
        fixture("tagged.mp3"),
        fixture("s24.wav"),
    ];
    let one = run(sluice().args(["analyze", "--json", "-j", "1"]).args(&files)).1;
    let four = run(sluice().args(["analyze", "--json", "-j", "4"]).args(&files)).1;
    assert_eq!(one, four, "results do not depend on the number of threads");
}

#[test]
fn analyze_one_file_split_over_threads_gives_the_same_report() {
    // One file: with more threads its analyzers run in lanes on separate threads.
    let f = fixture("tagged.flac");
    let one = run(sluice().args(["analyze", "--json", "-j", "1"]).arg(&f)).1;
    for j in ["2", "3", "8"] {
        let many = run(sluice().args(["analyze", "--json", "-j", j]).arg(&f)).1;
        assert_eq!(one, many, "-j {j} differs from -j 1");
    }
}
