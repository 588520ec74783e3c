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
    // Every heading has something after it: the BWF file, with no tags but its `bext`, prints
    // no empty `tags` line.
    assert!(
        stdout.lines().all(|l| !l.trim_end().ends_with("tags")),
        "an empty heading in\n{stdout}"
    );
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

#[test]
fn analyze_a_file_of_many_rounds_gives_the_same_report_on_any_number_of_threads() {
    // 20 s at 48 kHz: about 30 rounds shared between the threads, the last one short.
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("long.wav");
    let planes = sluice_core::signal::dense_master(48_000, 20.03, 7);
    common::write_wav(&wav, &planes, 48_000, 24);
    let one = run(sluice().args(["analyze", "--json", "-j", "1"]).arg(&wav)).1;
    for j in ["2", "3"] {
        let many = run(sluice().args(["analyze", "--json", "-j", j]).arg(&wav)).1;
        assert_eq!(one, many, "-j {j} differs from -j 1");
    }
    // And the same figures as the library's one-thread analysis, fed block by block as
    // decoded (other block boundaries: equal to rounding).
    let lib = sluice_core::analysis::analyze(
        &wav,
        &sluice_core::analysis::AnalysisOptions::default(),
        &mut |_| {},
    )
    .unwrap();
    let lib = serde_json::to_value(&lib).unwrap();
    let cli: serde_json::Value = serde_json::from_str(&one).unwrap();
    let cli = if cli.is_array() { cli[0].clone() } else { cli };
    for path in [
        "/loudness/integrated_lufs",
        "/loudness/true_peak_dbtp",
        "/levels/rms_dbfs",
        "/levels/zero_crossings",
        "/spectrum/centroid_hz",
        "/spectrum/flatness",
        "/stereo/correlation",
        "/tempo/bpm",
        "/key/confidence",
    ] {
        let (a, b) = (&cli.pointer(path), &lib.pointer(path));
        let (a, b) = (a.and_then(|v| v.as_f64()), b.and_then(|v| v.as_f64()));
        let (Some(a), Some(b)) = (a, b) else {
            panic!("{path}: {a:?} from the CLI, {b:?} from the library");
        };
        assert!(
            (a - b).abs() <= 1e-6 * a.abs().max(1.0),
            "{path}: {a} from the CLI, {b} from the library"
        );
    }
}

#[test]
fn analyze_a_float_file_with_non_finite_samples_on_many_threads_ends_and_agrees() {
    // A hostile 32-bit float WAV: NaN, ±infinity, huge values and subnormals scattered through
    // five seconds (several rounds). Every thread count finishes, without a panic or a hang,
    // with the same report.
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("hostile.wav");
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: 48_000,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let mut w = hound::WavWriter::create(&wav, spec).unwrap();
    let mut rng = sluice_core::signal::Rng::new(11);
    for i in 0..5 * 48_000 {
        for c in 0..2 {
            let v = match rng.next_u64() % 1000 {
                0 => f32::NAN,
                1 => f32::INFINITY,
                2 => f32::NEG_INFINITY,
                3 => 1e-42,
                4 => 1e30,
                _ => 0.5 * (i as f32 * 0.05 * (c + 1) as f32).sin(),
            };
            w.write_sample(v).unwrap();
        }
    }
    w.finalize().unwrap();
    let one = run(sluice().args(["analyze", "--json", "-j", "1"]).arg(&wav));
    assert!(one.0.status.success(), "{}", one.2);
    // The NaN and infinities are read as silence with a warning, so the rest is measured.
    let report: serde_json::Value = serde_json::from_str(&one.1).unwrap();
    let report = report.as_array().map_or(&report, |a| &a[0]);
    let warnings = report["stream"]["warnings"].to_string();
    assert!(warnings.contains("NaN or infinite"), "{warnings}");
    assert!(
        report["loudness"]["integrated_lufs"].is_f64(),
        "{}",
        report["loudness"]
    );
    for j in ["2", "3"] {
        let many = run(sluice().args(["analyze", "--json", "-j", j]).arg(&wav));
        assert!(many.0.status.success(), "-j {j}: {}", many.2);
        assert_eq!(one.1, many.1, "-j {j} differs from -j 1");
    }
}

/// A root with one analysis-only pipeline and a finished job for each of `x.wav` and
/// `x.flac` (the same name, two extensions).
fn root_with_two_jobs(dir: &std::path::Path) -> std::path::PathBuf {
    let root = dir.join("root");
    std::fs::create_dir_all(root.join("pipelines")).unwrap();
    std::fs::write(
        root.join("pipelines/levels.toml"),
        "name = \"levels\"\nwatch = \"inbox\"\n\n[[step]]\nanalyze = [\"levels\"]\n\n[[output]]\npath = \"out/{name}.flac\"\n",
    )
    .unwrap();
    let planes = sluice_core::signal::programme(44_100, 2, 44_100, 2);
    let wav = dir.join("x.wav");
    common::write_wav(&wav, &planes, 44_100, 16);
    let flac = dir.join("x.flac");
    common::succeed(
        sluice()
            .args(["export", "--bit-depth", "16", "-o"])
            .arg(&flac)
            .arg(&wav),
    );
    common::succeed(
        sluice()
            .args(["run", "levels", "--root"])
            .arg(&root)
            .arg(&wav)
            .arg(&flac),
    );
    root
}

/// Every command's output may go to a reader that stops early (`sluice jobs | head`): the
/// command ends quietly, without a panic or an error.
#[test]
fn a_reader_that_goes_away_ends_a_command_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let root = root_with_two_jobs(dir.path());
    let r = root.to_str().unwrap();
    for args in [
        vec!["jobs", "--root", r],
        vec!["jobs", "--json", "--root", r],
        vec!["job", "1", "--root", r],
        vec!["stats", "--root", r],
        vec!["check", "--root", r],
        vec!["formats"],
        vec!["effects", "list", "--root", r],
    ] {
        let out = sluice()
            .args(&args)
            .stdout(std::process::Stdio::from(common::closed_pipe()))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stderr.is_empty(),
            "sluice {args:?}: {:?}\n{stderr}",
            out.status
        );
    }
}

/// Other libraries' chatter stays out of the way: decoding a tagged MP3 prints nothing on
/// stderr by default (symphonia warns about the ID3 tag's bytes it skips), and SLUICE_LOG
/// still lets it through for whoever asks.
#[test]
fn library_warnings_are_quiet_by_default_and_sluice_log_overrides() {
    // Junk between the ID3v2 tag and the audio, which symphonia warns about as it skips it.
    let dir = tempfile::tempdir().unwrap();
    let b = std::fs::read(fixture("tagged.mp3")).unwrap();
    let size = b[6..10]
        .iter()
        .fold(0usize, |a, x| (a << 7) | usize::from(x & 0x7F));
    let end = 10 + size + if b[5] & 0x10 != 0 { 10 } else { 0 };
    let junk = dir.path().join("junk.mp3");
    std::fs::write(&junk, [&b[..end], &[0x55; 100], &b[end..]].concat()).unwrap();
    let args = ["analyze", "--only", "loudness"];
    let out = sluice().args(args).arg(&junk).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.is_empty(), "{stderr}");
    let out = sluice()
        .args(args)
        .arg(&junk)
        .env("SLUICE_LOG", "warn")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("symphonia"),
        "SLUICE_LOG=warn shows it: {stderr}"
    );
}

/// A file that is not audio is refused once, in Sluice's words: the decoder library's own
/// "probe reached EOF" error line is not shown beside it.
#[test]
fn a_file_that_is_not_audio_is_refused_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.wav");
    std::fs::write(&text, "root:x:0:0:root:/root:/bin/bash\n".repeat(40)).unwrap();
    let (out, _, stderr) = run(sluice().arg("analyze").arg(&text));
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("notes.wav") && stderr.contains("not a recognised audio file"),
        "{stderr}"
    );
    assert!(!stderr.contains("symphonia"), "{stderr}");
}

/// `sluice clean --dry-run`, as the README shows it, lists what every finished job left and
/// removes nothing; removing needs an age.
#[test]
fn clean_dry_run_works_as_the_readme_shows() {
    let dir = tempfile::tempdir().unwrap();
    let root = root_with_two_jobs(dir.path());
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    assert!(
        readme.contains("sluice clean --dry-run "),
        "the README shows it"
    );
    let before = common::files_under(&root.join("out"));
    assert_eq!(before.len(), 2, "{before:#?}");
    let out = common::succeed(sluice().args(["clean", "--dry-run", "--root"]).arg(&root));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("would remove out/x.wav.flac")
            && stdout.contains("would remove out/x.flac.flac"),
        "{stdout}"
    );
    assert_eq!(common::files_under(&root.join("out")), before);
    let out = sluice()
        .args(["clean", "--root"])
        .arg(&root)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--older-than"));
    assert_eq!(common::files_under(&root.join("out")), before);
}

/// The default report name keeps the source's extension: `x.wav` and `x.flac` in one
/// pipeline get `x.wav.json` and `x.flac.json`, not `x.json` and `x (2).json`; the pipelines
/// README documents that default.
#[test]
fn reports_of_the_same_stem_do_not_collide() {
    let dir = tempfile::tempdir().unwrap();
    let root = root_with_two_jobs(dir.path());
    let day = jiff::Zoned::now().strftime("%Y/%m/%d").to_string();
    let reports = root.join(format!("reports/levels/{day}"));
    let names: Vec<String> = common::files_under(&reports)
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["x.flac.json", "x.wav.json"], "{names:?}");
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../pipelines/README.md"
    ))
    .unwrap();
    assert!(doc.contains("report = \"reports/{pipeline}/{date:%Y/%m/%d}/{name}.json\""));
}

/// `sluice analyze --json` on a file: (exit success, its `stream` object).
fn analyze_stream(path: &std::path::Path) -> (bool, String, serde_json::Value) {
    let out = sluice()
        .args(["analyze", "--json", "--only", "loudness"])
        .arg(path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    (out.status.success(), stderr, v[0]["stream"].clone())
}

/// An MP3 cut short says so, with a frame count in a Xing/Info frame (checked against what
/// decodes) and without one (the frames show the last one is not whole); whole files do not.
#[test]
fn a_truncated_mp3_reports_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let tagged = std::fs::read(fixture("tagged.mp3")).unwrap();
    // tagged.mp3: an ID3v2 tag, then the Info frame, then the audio frames. Without the
    // Info frame it is a plain CBR stream that declares no length (as `lame -t` writes).
    let id3 = 10
        + tagged[6..10]
            .iter()
            .fold(0usize, |a, b| (a << 7) | usize::from(b & 0x7F));
    let h: [u8; 4] = tagged[id3..id3 + 4].try_into().unwrap();
    let info_len = sluice_core::mpa::frame_len(h).unwrap() as usize;
    assert_eq!(
        &tagged[id3 + 36..id3 + 40],
        b"Info",
        "the Info frame is where expected"
    );
    let mut plain = tagged[..id3].to_vec();
    plain.extend_from_slice(&tagged[id3 + info_len..]);
    let cases = [
        ("whole_info.mp3", tagged.clone(), false),
        ("whole_plain.mp3", plain.clone(), false),
        ("cut_info.mp3", tagged[..tagged.len() - 300].to_vec(), true),
        ("cut_plain.mp3", plain[..plain.len() - 300].to_vec(), true),
        (
            "cut_plain_early.mp3",
            plain[..plain.len() / 2 + 7].to_vec(),
            true,
        ),
    ];
    for (name, bytes, cut) in cases {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        let (ok, stderr, stream) = analyze_stream(&p);
        assert!(ok, "{name}: {stderr}");
        assert_eq!(stream["truncated"], cut, "{name}: {stream}");
        let warned = stream["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().starts_with("truncated"));
        assert_eq!(warned, cut, "{name}: {stream}");
    }
}

/// A WAV header that lies about its size (2 GiB of audio declared, one second held, or a
/// copy cut short) decodes what the file holds and says it is truncated, instead of a
/// reader's internal message.
#[test]
fn a_wav_header_that_lies_about_its_size_gets_a_clear_answer() {
    let dir = tempfile::tempdir().unwrap();
    let planes = sluice_core::signal::programme(48_000, 2, 48_000, 3);
    let good = dir.path().join("good.wav");
    common::write_wav(&good, &planes, 48_000, 16);
    let bytes = std::fs::read(&good).unwrap();
    let data_at = bytes.windows(4).position(|w| w == b"data").unwrap();
    let held = (bytes.len() - data_at - 8) as u64;
    let frames = held / 4;
    let lie = |riff: Option<u32>, data: u32, keep: usize| {
        let mut b = bytes[..keep].to_vec();
        if let Some(r) = riff {
            b[4..8].copy_from_slice(&r.to_le_bytes());
        }
        b[data_at + 4..data_at + 8].copy_from_slice(&data.to_le_bytes());
        b
    };
    let n = bytes.len();
    let cases = [
        // 2 GiB declared by the data chunk only, by both, and the largest sizes there are.
        ("data_2g.wav", lie(None, 0x8000_0000, n), frames),
        (
            "both_2g.wav",
            lie(Some(0x8000_0024), 0x8000_0000, n),
            frames,
        ),
        (
            "both_max.wav",
            lie(Some(0xFFFF_FFFF), 0xFFFF_FFDB, n),
            frames,
        ),
        // A copy cut short in the middle of a frame.
        ("cut.wav", bytes[..n - 4001].to_vec(), (held - 4001) / 4),
    ];
    for (name, b, expect) in cases {
        let p = dir.path().join(name);
        std::fs::write(&p, b).unwrap();
        let (ok, stderr, stream) = analyze_stream(&p);
        assert!(ok, "{name}: {stderr}");
        assert_eq!(stream["truncated"], true, "{name}: {stream}");
        assert_eq!(stream["frames"], expect, "{name}: {stream}");
        let w = stream["warnings"][0].as_str().unwrap();
        assert!(
            w.starts_with("truncated: the data chunk declares") && w.contains("holds only"),
            "{name}: {w}"
        );
    }
}

/// The watching host writes its start-up lines to standard output; a reader that went away
/// (`sluice watch | head -3`) must not stop it: a file dropped afterwards is still processed.
#[test]
fn the_host_keeps_watching_when_its_output_reader_goes_away() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let mut child = sluice()
        .args(["watch", "--root"])
        .arg(&root)
        .env("SLUICE_SETTLE_SECONDS", "0.3")
        .stdout(std::process::Stdio::from(common::closed_pipe()))
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let planes = sluice_core::signal::programme(44_100, 2, 44_100, 3);
    let src = dir.path().join("take.wav");
    common::write_wav(&src, &planes, 44_100, 16);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let inbox = root.join("inbox/analysis");
    while !inbox.is_dir() {
        assert!(std::time::Instant::now() < deadline, "no inbox");
        assert!(child.try_wait().unwrap().is_none(), "the host stopped");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // Past the start-up lines, which met the closed pipe.
    std::thread::sleep(std::time::Duration::from_secs(1));
    assert!(child.try_wait().unwrap().is_none(), "the host stopped");
    std::fs::rename(&src, inbox.join("take.wav")).unwrap();
    let report = root.join("reports/analysis/take.wav.json");
    while !report.is_file() {
        if std::time::Instant::now() > deadline || child.try_wait().unwrap().is_some() {
            let _ = child.kill();
            panic!("the host stopped or never processed the file");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

/// A drum groove at `bpm`: kick on beats 1 and 3, snare on 2 and 4, hats on every eighth.
fn groove(bpm: f64, rate: u32, seconds: f64) -> Vec<Vec<f32>> {
    let n = (f64::from(rate) * seconds) as usize;
    let sr = f64::from(rate);
    let eighth = 60.0 / bpm / 2.0;
    let mut out = vec![0f32; n];
    let mut seed = sluice_core::signal::Rng::new(0x1234_5678_9abc_def1u64);
    let mut noise = move || seed.uniform();
    let mut k = 0usize;
    loop {
        let start = (k as f64 * eighth * sr) as usize;
        if start >= n {
            break;
        }
        let slot = k % 8;
        let len = (0.25 * sr) as usize;
        let mut prev = 0.0;
        for i in 0..len.min(n - start) {
            let t = i as f64 / sr;
            let w = noise();
            let mut x = 0.25 * (w - prev) * (-t * 80.0).exp(); // hat
            prev = w;
            if slot == 0 || slot == 4 {
                x += 0.8 * (2.0 * std::f64::consts::PI * 55.0 * t).sin() * (-t * 12.0).exp();
            }
            if slot == 2 || slot == 6 {
                x += 0.5 * w * (-t * 25.0).exp();
            }
            out[start + i] += x as f32;
        }
        k += 1;
    }
    vec![out.clone(), out]
}

/// `--tempo-range` reports the groove's tempo in the range asked for (an octave of the
/// default reading), and refuses a range narrower than an octave.
#[test]
fn tempo_range_moves_the_reading_into_it() {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("groove.wav");
    common::write_wav(&wav, &groove(93.0, 44_100, 24.0), 44_100, 16);
    let bpm = |extra: &[&str]| -> f64 {
        let out = sluice()
            .args(["analyze", "--json", "--only", "tempo"])
            .args(extra)
            .arg(&wav)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v[0]["tempo"]["bpm"].as_f64().unwrap()
    };
    let default = bpm(&[]);
    assert!(
        (default / 93.0 - 1.0).abs() < 0.04,
        "default range: {default}"
    );
    let fast = bpm(&["--tempo-range", "130,260"]);
    assert!((fast / 186.0 - 1.0).abs() < 0.04, "130-260: {fast}");
    let slow = bpm(&["--tempo-range", "40,80"]);
    assert!((slow / 46.5 - 1.0).abs() < 0.04, "40-80: {slow}");
    let out = sluice()
        .args(["analyze", "--only", "tempo", "--tempo-range", "100,150"])
        .arg(&wav)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("octave"),
        "{stderr}"
    );
}

/// The pipeline examples of the docs (the schema in pipelines/README.md, the mastering steps
/// in docs/MASTERING.md) pass `sluice check` as written: a reader who copies one gets a
/// pipeline that loads. (The schema's example once put `time_stretch` after its normalize step
/// and MP3-less keys on its MP3 output.)
#[test]
fn the_documented_pipeline_examples_pass_check() {
    let repo = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    common::new_root(&root, &[], &[]);
    // The impulse response the schema's convolve step names.
    std::fs::create_dir_all(root.join("irs")).unwrap();
    let ir: Vec<f32> = (0..4_800).map(|i| (-(i as f32) / 800.0).exp()).collect();
    common::write_wav(&root.join("irs/hall.wav"), &[ir], 48_000, 24);
    let mut n = 0;
    for doc in ["pipelines/README.md", "docs/MASTERING.md"] {
        let text = std::fs::read_to_string(format!("{repo}/{doc}")).unwrap();
        for block in text.split("```toml\n").skip(1) {
            let block = block.split("```").next().unwrap();
            if !block.contains("[[step]]") {
                continue;
            }
            let toml = if block.contains("\nwatch =") {
                block.to_string()
            } else {
                format!("watch = \"in\"\n{block}")
            };
            n += 1;
            std::fs::write(root.join(format!("pipelines/example{n}.toml")), &toml).unwrap();
        }
    }
    assert_eq!(n, 2, "the examples were not found");
    let (out, stdout, stderr) = run(sluice().args(["check", "--root"]).arg(&root));
    assert!(out.status.success(), "{stdout}\n{stderr}");
}

/// `sluice jobs` and `sluice job` show a hostile file name's control characters as escapes:
/// a name with an escape sequence set the terminal's title and cleared the screen, and one
/// with a newline split the table's row.
#[test]
fn job_listings_escape_control_characters_in_names() {
    let dir = tempfile::tempdir().unwrap();
    let root = common::root_with_examples(dir.path());
    let name = "esc\u{1b}]0;PWNED\u{7}\u{1b}[2J\nrow.wav";
    let src = dir.path().join(name);
    let planes = sluice_core::signal::programme(44_100, 2, 44_100, 3);
    common::write_wav(&src, &planes, 44_100, 16);
    let (out, _, stderr) = run(sluice()
        .args(["run", "analysis", "--root"])
        .arg(&root)
        .arg(&src));
    assert!(out.status.success(), "{stderr}");
    for args in [&["jobs"][..], &["job", "1"]] {
        let (out, stdout, stderr) = run(sluice().args(args).arg("--root").arg(&root));
        assert!(out.status.success(), "{stderr}");
        assert!(
            !stdout.contains('\u{1b}') && !stdout.contains('\u{7}'),
            "{args:?}: {stdout:?}"
        );
        assert!(
            stdout.contains("\\u{1b}[2J\\nrow.wav"),
            "{args:?}: {stdout}"
        );
    }
}
