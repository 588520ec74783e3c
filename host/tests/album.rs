//! `sluice export`'s album normalization and gain limits: one gain for a set of files
//! (`--album album`: the files measured together reach the target; `--album album-loudest`:
//! the loudest does), `--lower-only`, `--max-gain-db`, `--dry-run`, and every report saying
//! whether the gain was linear or limited.

mod common;

use common::{loudness, sluice, write_wav};
use std::path::{Path, PathBuf};

/// Three files of the core's programme material, 8 s, at `gains` dB.
fn material(dir: &Path, gains: &[f32]) -> Vec<PathBuf> {
    gains
        .iter()
        .enumerate()
        .map(|(k, g)| {
            let f = 10f32.powf(g / 20.0);
            let planes: Vec<Vec<f32>> =
                sluice_core::signal::programme(48_000, 2, 48_000 * 8, 40 + k as u64)
                    .into_iter()
                    .map(|p| p.into_iter().map(|x| x * f).collect())
                    .collect();
            let p = dir.join(format!("track{k}.wav"));
            write_wav(&p, &planes, 48_000, 24);
            p
        })
        .collect()
}

fn run(args: &[&str], files: &[PathBuf]) -> (bool, String, String) {
    let out = sluice()
        .arg("export")
        .args(args)
        .args(files)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn outputs(dir: &Path, files: &[PathBuf]) -> Vec<PathBuf> {
    files
        .iter()
        .map(|f| dir.join(f.file_name().unwrap()).with_extension("flac"))
        .collect()
}

/// The loudness of several files as one programme (ReplayGain's album loudness).
fn together(files: &[PathBuf]) -> f64 {
    let m: Vec<_> = files
        .iter()
        .map(|f| sluice_host::gaintag::measure(f).unwrap())
        .collect();
    sluice_host::gaintag::together(&m.iter().collect::<Vec<_>>()).unwrap()
}

#[test]
fn an_album_gets_one_gain_and_keeps_its_levels() {
    let t = tempfile::tempdir().unwrap();
    let files = material(t.path(), &[-6.0, -14.0, -22.0]);
    let before: Vec<f64> = files.iter().map(|f| loudness(f).0).collect();
    let out = t.path().join("album");
    let o = out.to_str().unwrap();
    let (ok, stdout, stderr) = run(
        &[
            "--out-dir",
            o,
            "--format",
            "flac",
            "--normalize-lufs",
            "-20",
            "--album",
            "album",
        ],
        &files,
    );
    assert!(ok, "{stdout}{stderr}");
    let outs = outputs(&out, &files);
    let after: Vec<f64> = outs.iter().map(|f| loudness(f).0).collect();
    let moved: Vec<f64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
    for m in &moved {
        assert!((m - moved[0]).abs() < 0.05, "gains differ: {moved:?}");
    }
    let album = together(&outs);
    assert!(
        (album + 20.0).abs() < 0.1,
        "the album measures {album:.2} LUFS"
    );
    assert_eq!(stdout.matches(", linear").count(), 3, "{stdout}");
    assert!(stdout.contains("the album's"), "{stdout}");
    assert!(!stdout.contains("warning"), "{stdout}");

    // album-loudest: the loudest file reaches the target, the others keep their distance.
    let out = t.path().join("loudest");
    let o = out.to_str().unwrap();
    let (ok, stdout, stderr) = run(
        &[
            "--out-dir",
            o,
            "--format",
            "flac",
            "--normalize-lufs",
            "-20",
            "--album",
            "album-loudest",
        ],
        &files,
    );
    assert!(ok, "{stdout}{stderr}");
    let after: Vec<f64> = outputs(&out, &files)
        .iter()
        .map(|f| loudness(f).0)
        .collect();
    assert!((after[0] + 20.0).abs() < 0.05, "{after:?}");
    for k in 1..3 {
        let kept = (after[k] - after[0]) - (before[k] - before[0]);
        assert!(kept.abs() < 0.05, "{after:?} from {before:?}");
    }
}

#[test]
fn lower_only_and_the_largest_gain_hold_quiet_files_back() {
    let t = tempfile::tempdir().unwrap();
    let files = material(t.path(), &[-2.0, -24.0, -6.0]);
    let before: Vec<f64> = files.iter().map(|f| loudness(f).0).collect();
    assert!(before[0] > -16.0 && before[1] < -16.0, "{before:?}");

    let out = t.path().join("lower");
    let o = out.to_str().unwrap();
    let (ok, stdout, stderr) = run(
        &[
            "--out-dir",
            o,
            "--format",
            "flac",
            "--normalize-lufs",
            "-16",
            "--lower-only",
        ],
        &files,
    );
    assert!(ok, "{stdout}{stderr}");
    let after: Vec<f64> = outputs(&out, &files)
        .iter()
        .map(|f| loudness(f).0)
        .collect();
    assert!(
        (after[0] + 16.0).abs() < 0.1,
        "the loud file came down: {after:?}"
    );
    assert!(
        (after[1] - before[1]).abs() < 0.05,
        "the quiet file stays: {after:?}"
    );
    assert!(stdout.contains("held"), "{stdout}");
    assert!(!stdout.contains("warning"), "{stdout}");

    let out = t.path().join("max");
    let o = out.to_str().unwrap();
    let (ok, stdout, stderr) = run(
        &[
            "--out-dir",
            o,
            "--format",
            "flac",
            "--normalize-lufs",
            "-16",
            "--max-gain-db",
            "3",
        ],
        &files,
    );
    assert!(ok, "{stdout}{stderr}");
    let after: Vec<f64> = outputs(&out, &files)
        .iter()
        .map(|f| loudness(f).0)
        .collect();
    assert!(
        (after[1] - before[1] - 3.0).abs() < 0.05,
        "{after:?} from {before:?}"
    );
    assert!((after[2] + 16.0).abs() < 0.1, "{after:?}");
}

#[test]
fn a_dry_run_reports_the_gains_and_writes_nothing_and_the_limiter_is_named() {
    let t = tempfile::tempdir().unwrap();
    // The first file is bright transients with peaks near full scale: the album's gain pushes
    // it into the limiter, the programme material stays linear.
    let mut files = material(t.path(), &[-16.0, -18.0]);
    let peaky = t.path().join("peaky.wav");
    write_wav(&peaky, &common::bright_transients(48_000, 8.0), 48_000, 24);
    files.insert(0, peaky);
    let out = t.path().join("out");
    let o = out.to_str().unwrap();
    let args = [
        "--out-dir",
        o,
        "--format",
        "flac",
        "--normalize-lufs",
        "-14",
        "--album",
        "album",
    ];
    let mut dry = args.to_vec();
    dry.extend(["--dry-run", "--json"]);
    let (ok, stdout, stderr) = run(&dry, &files);
    assert!(ok, "{stdout}{stderr}");
    assert!(!out.exists(), "a dry run wrote {}", out.display());
    let plan: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(plan["album"], "album");
    let gains: Vec<f64> = plan["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["gain_db"].as_f64().unwrap())
        .collect();
    assert!(
        gains.iter().all(|g| (g - gains[0]).abs() < 1e-9),
        "{gains:?}"
    );
    assert_eq!(plan["files"][0]["needs_limiter"], true, "{plan}");
    assert_eq!(plan["files"][1]["needs_limiter"], false, "{plan}");

    let (ok, stdout, stderr) = run(&args, &files);
    assert!(ok, "{stdout}{stderr}");
    let lines: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains("normalize gain"))
        .collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert!(lines[0].ends_with("limited"), "{stdout}");
    assert!(
        lines[1].ends_with("linear") && lines[2].ends_with("linear"),
        "{stdout}"
    );
    // The limited file holds the ceiling.
    let (_, tp) = loudness(&outputs(&out, &files)[0]);
    assert!(tp <= -1.0 + 1e-6, "{tp}");
}

#[test]
fn album_options_without_a_loudness_target_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let files = material(t.path(), &[-10.0]);
    let o = t.path().join("o");
    let (ok, _, stderr) = run(
        &[
            "--out-dir",
            o.to_str().unwrap(),
            "--format",
            "flac",
            "--album",
            "album",
        ],
        &files,
    );
    assert!(!ok);
    assert!(stderr.contains("--normalize-lufs"), "{stderr}");
    let (ok, _, stderr) = run(
        &[
            "--out-dir",
            o.to_str().unwrap(),
            "--format",
            "flac",
            "--normalize-lufs",
            "-16",
            "--max-gain-db",
            "99",
        ],
        &files,
    );
    assert!(!ok);
    assert!(stderr.contains("--max-gain-db 99"), "{stderr}");
}

/// A pipeline whose normalize step has `album = "album"` in a new root: an album is the
/// folder a file arrives in below the watch folder.
fn album_root(dir: &Path, mode: &str) -> PathBuf {
    let root = dir.join("root");
    std::fs::create_dir_all(root.join("pipelines")).unwrap();
    std::fs::create_dir_all(root.join("inbox/albums")).unwrap();
    std::fs::write(
        root.join("pipelines/albums.toml"),
        format!(
            "watch = \"inbox/albums\"\n\
             [[step]]\n\
             normalize = {{ loudness_lufs = -20, true_peak_dbtp = -1, album = \"{mode}\" }}\n\
             [[output]]\n\
             path = \"out/{{folder|singles}}/{{stem}}.flac\"\n\
             [source]\n\
             action = \"keep\"\n"
        ),
    )
    .unwrap();
    root
}

fn ms_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// The watch host takes a folder dropped into an album pipeline as one unit: its files wait
/// until the last of them has settled (one is still being written slowly when the others
/// have settled), the folder is measured once, and every file gets the album's gain, so the
/// tracks keep their levels and the album as a whole reaches the target. A file directly in
/// the watch folder is a track of its own. Each job record names its album.
#[test]
fn the_watch_host_takes_a_folder_as_one_album() {
    use std::io::Write;
    let t = tempfile::tempdir().unwrap();
    let root = album_root(t.path(), "album");
    let staged = t.path().join("staged");
    std::fs::create_dir_all(&staged).unwrap();
    let files = material(&staged, &[-6.0, -14.0, -22.0]);
    let single = staged.join("single");
    std::fs::create_dir_all(&single).unwrap();
    let single = material(&single, &[-16.0]).remove(0);
    let host = common::Host::start(&root);

    let album = root.join("inbox/albums/First Album");
    std::fs::create_dir_all(&album).unwrap();
    std::fs::copy(&files[0], album.join("track0.wav")).unwrap();
    std::fs::copy(&files[1], album.join("track1.wav")).unwrap();
    // The third arrives slowly: the first two settle (1 s) long before it is whole.
    let bytes = std::fs::read(&files[2]).unwrap();
    let mut f = std::fs::File::create(album.join("track2.wav")).unwrap();
    for chunk in bytes.chunks(bytes.len() / 8 + 1) {
        f.write_all(chunk).unwrap();
        f.flush().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    drop(f);
    let written = ms_now();
    std::fs::copy(&single, root.join("inbox/albums/single.wav")).unwrap();

    let jobs = host.settle_jobs(4);
    assert_eq!(jobs.len(), 4, "{jobs:#?}\n{}", host.log());
    let mut lufs = Vec::new();
    for j in &jobs {
        assert_eq!(j["state"], "done", "{j:#?}\n{}", host.log());
        let input = j["input"].as_str().unwrap();
        if input.ends_with("single.wav") {
            assert!(j["album"].is_null(), "{j:#?}");
            continue;
        }
        assert!(
            j["started_ms"].as_i64().unwrap() >= written,
            "{input} started before its album had settled: {j:#?}"
        );
        assert_eq!(j["album"]["folder"], "inbox/albums/First Album", "{j:#?}");
        assert_eq!(j["album"]["tracks"], 3, "{j:#?}");
        assert_eq!(j["album"]["mode"], "album", "{j:#?}");
        lufs.push(j["album"]["lufs"].as_f64().unwrap());
    }
    assert_eq!(lufs.len(), 3);
    assert!(lufs.iter().all(|l| *l == lufs[0]), "{lufs:?}");
    assert!((lufs[0] - together(&files)).abs() < 0.01, "{lufs:?}");

    let outs: Vec<PathBuf> = (0..3)
        .map(|k| root.join(format!("out/First Album/track{k}.flac")))
        .collect();
    let moved: Vec<f64> = outs
        .iter()
        .zip(&files)
        .map(|(o, s)| loudness(o).0 - loudness(s).0)
        .collect();
    for m in &moved {
        assert!((m - moved[0]).abs() < 0.05, "gains differ: {moved:?}");
    }
    let album_out = together(&outs);
    assert!(
        (album_out + 20.0).abs() < 0.1,
        "the album at {album_out:.2} LUFS"
    );
    // The single track: its own gain, to the target.
    let (i, _) = loudness(&root.join("out/singles/single.flac"));
    assert!((i + 20.0).abs() < 0.1, "the single at {i:.2} LUFS");
    host.stop();
}

/// `album-loudest` in a pipeline: the loudest file of the folder reaches the target, the
/// others keep their distance from it; a folder where only some files are new is measured
/// with all it holds.
#[test]
fn album_loudest_in_a_pipeline_brings_the_loudest_file_to_the_target() {
    let t = tempfile::tempdir().unwrap();
    let root = album_root(t.path(), "album-loudest");
    let staged = t.path().join("staged");
    std::fs::create_dir_all(&staged).unwrap();
    let files = material(&staged, &[-10.0, -4.0, -18.0]);
    let host = common::Host::start(&root);
    let album = root.join("inbox/albums/Second");
    std::fs::create_dir_all(&album).unwrap();
    for f in &files {
        std::fs::copy(f, album.join(f.file_name().unwrap())).unwrap();
    }
    let jobs = host.settle_jobs(3);
    assert!(jobs.iter().all(|j| j["state"] == "done"), "{jobs:#?}");
    let after: Vec<f64> = (0..3)
        .map(|k| loudness(&root.join(format!("out/Second/track{k}.flac"))).0)
        .collect();
    let before: Vec<f64> = files.iter().map(|f| loudness(f).0).collect();
    assert!((after[1] + 20.0).abs() < 0.05, "{after:?}");
    for k in [0, 2] {
        let kept = (after[k] - after[1]) - (before[k] - before[1]);
        assert!(kept.abs() < 0.05, "{after:?} from {before:?}");
    }
    // A new, louder file joins the folder later: the album is measured again with it, and
    // the new file's gain is the new album's (the earlier files are not redone).
    let louder = staged.join("track3.wav");
    let planes = sluice_core::signal::programme(48_000, 2, 48_000 * 8, 99);
    write_wav(&louder, &planes, 48_000, 24);
    std::fs::copy(&louder, album.join("track3.wav")).unwrap();
    let jobs = host.settle_jobs(4);
    let j = jobs
        .iter()
        .find(|j| j["input"] == "inbox/albums/Second/track3.wav")
        .unwrap();
    assert_eq!(j["state"], "done", "{j:#?}");
    assert_eq!(j["album"]["tracks"], 4, "{j:#?}");
    let (i, _) = loudness(&root.join("out/Second/track3.flac"));
    assert!((i + 20.0).abs() < 0.05, "the new loudest at {i:.2}");
    host.stop();
}
