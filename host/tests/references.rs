//! The reference library as a user drives it: `sluice ref import/add/list/genres/remove/
//! similar` and `sluice compare`, on generated tracks of known families, with bad input.

mod common;

use common::{genres, sluice, write_wav};
use serde_json::Value;
use sluice_core::signal::{Style, styled};
use std::path::{Path, PathBuf};
use std::process::Output;

fn run(root: &Path, args: &[&str]) -> (Output, String, String) {
    let out = sluice()
        .args(args)
        .arg("--root")
        .arg(root)
        .output()
        .expect("run sluice");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, stdout, stderr)
}

fn json(root: &Path, args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.push("--json");
    let (out, stdout, stderr) = run(root, &a);
    assert!(out.status.success(), "{args:?}: {stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn track(path: &Path, rate: u32, style: &Style, seed: u64) -> PathBuf {
    write_wav(path, &styled(rate, 6.0, style, seed), rate, 24);
    path.to_path_buf()
}

#[test]
fn a_library_is_built_searched_compared_and_pruned() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).unwrap();

    // An empty library says so.
    let probe = track(&dir.path().join("probe.wav"), 44_100, &genres()[1].1, 999);
    let (out, _, stderr) = run(&root, &["ref", "similar", probe.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(stderr.contains("the library is empty"), "{stderr}");

    // A folder per genre, imported (some at 48 or 96 kHz, one in a subfolder).
    for (g, (name, style)) in genres().iter().enumerate() {
        let folder = dir.path().join(format!("refs-{name}"));
        std::fs::create_dir_all(folder.join("more")).unwrap();
        for k in 0..3u64 {
            let rate = [44_100, 48_000, 96_000][k as usize];
            let sub = if k == 2 { "more/" } else { "" };
            track(
                &folder.join(format!("{sub}{name}-{k}.wav")),
                rate,
                style,
                10 * g as u64 + k + 1,
            );
        }
        std::fs::write(folder.join("notes.txt"), "not audio").unwrap();
        let added = json(
            &root,
            &["ref", "import", folder.to_str().unwrap(), "--genre", name],
        );
        let added = added.as_array().unwrap();
        assert_eq!(added.len(), 3, "{added:?}");
        for a in added {
            assert_eq!(a["outcome"], "added", "{a}");
            assert_eq!(a["genre"], name.to_lowercase());
        }
    }
    let listed = json(&root, &["ref", "list"]);
    assert_eq!(listed.as_array().unwrap().len(), 9);
    let techno = json(&root, &["ref", "list", "--genre", "TECHNO"]);
    assert_eq!(techno.as_array().unwrap().len(), 3);
    assert!(
        techno
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["sample_rate"] == 96_000),
        "{techno}"
    );
    let g = json(&root, &["ref", "genres"]);
    assert_eq!(
        g,
        serde_json::json!([["ambient", 3], ["podcast", 3], ["techno", 3]])
    );

    // A genre's profile exported for Sluice Meter: a file the core reads back as a profile of
    // the genre's three references; a genre with none says so and writes nothing.
    let file = dir.path().join("techno.profile.json");
    let (out, _, stderr) = run(
        &root,
        &[
            "ref",
            "profile",
            "export",
            "--genre",
            "techno",
            "--out",
            file.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{stderr}");
    let profile: sluice_core::analysis::compare::Profile =
        serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(profile.references, 3);
    assert_eq!(profile.bands.len(), 5);
    assert!(profile.name.contains("techno"), "{}", profile.name);
    let (out, stdout, _) = run(&root, &["ref", "profile", "export", "--genre", "techno"]);
    assert!(out.status.success());
    assert_eq!(
        stdout.as_bytes(),
        std::fs::read(&file).unwrap(),
        "the same on stdout"
    );
    let none = dir.path().join("none.json");
    let (out, _, stderr) = run(
        &root,
        &[
            "ref",
            "profile",
            "export",
            "--genre",
            "jazz",
            "--out",
            none.to_str().unwrap(),
        ],
    );
    assert!(!out.status.success());
    assert!(stderr.contains("jazz"), "{stderr}");
    assert!(!none.exists());

    // A genre Sluice ships a profile of, with no reference of it here: the built-in profile,
    // for export and for comparing. A built-in genre the library holds references of (ambient)
    // is the library's.
    let exported = |genre: &str| -> Value {
        let (out, stdout, stderr) = run(&root, &["ref", "profile", "export", "--genre", genre]);
        assert!(out.status.success(), "{genre}: {stderr}");
        serde_json::from_str(&stdout).unwrap()
    };
    let built_in = exported("Orchestral");
    assert!(
        built_in["name"]
            .as_str()
            .unwrap()
            .starts_with("built-in orchestral profile"),
        "{}",
        built_in["name"]
    );
    assert!(built_in["references"].as_u64().unwrap() >= 10);
    let compared = json(
        &root,
        &["compare", probe.to_str().unwrap(), "--genre", "electronic"],
    );
    assert!(
        compared.to_string().contains("built-in electronic profile"),
        "{compared:#}"
    );
    let own = exported("ambient");
    assert_eq!(own["references"], 3, "{}", own["name"]);
    assert_eq!(own["name"], "genre ambient profile");

    // The nearest references of a techno track are the techno ones.
    let near = json(
        &root,
        &["ref", "similar", probe.to_str().unwrap(), "--top", "3"],
    );
    assert_eq!(near["compared"], 9);
    let nearest = near["nearest"].as_array().unwrap();
    assert_eq!(nearest.len(), 3);
    for n in nearest {
        assert_eq!(n["genre"], "techno", "{near}");
    }
    assert!(near["search_ms"].as_f64().unwrap() >= 0.0);

    // A reference added changes the answer at once: the probe's own audio 6 dB down (other
    // content, the same loudness-normalised figures) is nearest.
    let twin = dir.path().join("twin.wav");
    let half: Vec<Vec<f32>> = styled(44_100, 6.0, &genres()[1].1, 999)
        .into_iter()
        .map(|p| p.into_iter().map(|v| v * 0.5).collect())
        .collect();
    write_wav(&twin, &half, 44_100, 24);
    let added = json(
        &root,
        &[
            "ref",
            "add",
            twin.to_str().unwrap(),
            "--genre",
            "minimal",
            "--name",
            "Twin",
            "--artist",
            "Someone",
            "--year",
            "2024",
        ],
    );
    assert_eq!(added[0]["outcome"], "added");
    let twin_id = added[0]["id"].as_u64().unwrap();
    let near = json(
        &root,
        &["ref", "similar", probe.to_str().unwrap(), "--top", "1"],
    );
    assert_eq!(near["nearest"][0]["name"], "Twin", "{near}");
    assert_eq!(near["nearest"][0]["artist"], "Someone");
    assert_eq!(near["nearest"][0]["year"], 2024);
    // Within a genre, only that genre is searched.
    let near = json(
        &root,
        &[
            "ref",
            "similar",
            probe.to_str().unwrap(),
            "--genre",
            "podcast",
        ],
    );
    assert_eq!(near["compared"], 3);

    // The same audio again is kept once.
    let again = json(
        &root,
        &["ref", "add", twin.to_str().unwrap(), "--genre", "x"],
    );
    assert_eq!(again[0]["outcome"], "already_there", "{again}");
    assert_eq!(again[0]["id"], twin_id);

    // Compared with its genre's profile: a techno track is inside; a podcast one is not, and
    // the picture is written.
    let c = json(
        &root,
        &[
            "compare",
            probe.to_str().unwrap(),
            "--genre",
            "techno",
            "--level",
            "gentle",
        ],
    );
    assert_eq!(c["references"], 3);
    assert!(
        c["bands"]
            .as_array()
            .unwrap()
            .iter()
            .all(|b| b["inside"] == true),
        "{c}"
    );
    let voice = track(&dir.path().join("voice.wav"), 48_000, &genres()[2].1, 77);
    let plots = dir.path().join("plots");
    let (out, stdout, stderr) = run(
        &root,
        &[
            "compare",
            voice.to_str().unwrap(),
            "--genre",
            "techno",
            "--plot",
            plots.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("OUTSIDE") && stdout.contains("recommendations:"),
        "{stdout}"
    );
    assert!(
        stdout.contains("low -"),
        "the voice's thin low end: {stdout}"
    );
    let png = std::fs::read(plots.join("voice.tonal.png")).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    // Against one reference, by name.
    let c = json(
        &root,
        &["compare", voice.to_str().unwrap(), "--reference", "twin"],
    );
    assert_eq!(c["target"], "reference 'Twin'");
    // Unknown genre and reference.
    let (out, _, stderr) = run(
        &root,
        &["compare", voice.to_str().unwrap(), "--genre", "jazz"],
    );
    assert!(!out.status.success());
    assert!(
        stderr.contains("genre \"jazz\" has no references") && stderr.contains("techno (3)"),
        "{stderr}"
    );
    let (out, _, stderr) = run(
        &root,
        &["compare", voice.to_str().unwrap(), "--reference", "nobody"],
    );
    assert!(
        !out.status.success() && stderr.contains("no reference \"nobody\""),
        "{stderr}"
    );

    // Remove: an unknown one removes nothing; by id and by name.
    let (out, _, stderr) = run(&root, &["ref", "remove", &twin_id.to_string(), "nope"]);
    assert!(!out.status.success() && stderr.contains("nope"), "{stderr}");
    assert_eq!(json(&root, &["ref", "list"]).as_array().unwrap().len(), 10);
    let gone = json(&root, &["ref", "remove", &format!("#{twin_id}")]);
    assert_eq!(gone[0]["name"], "Twin");
    let near = json(
        &root,
        &["ref", "similar", probe.to_str().unwrap(), "--top", "1"],
    );
    assert_eq!(near["nearest"][0]["genre"], "techno", "{near}");
    assert_eq!(json(&root, &["ref", "list"]).as_array().unwrap().len(), 9);
}

#[test]
fn bad_references_are_refused_with_their_reason_and_nothing_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    let rate = 48_000;
    let silent = dir.path().join("silent.wav");
    write_wav(
        &silent,
        &[vec![0.0; 5 * rate], vec![0.0; 5 * rate]],
        rate as u32,
        16,
    );
    let short = track(
        &dir.path().join("short.wav"),
        rate as u32,
        &Style::default(),
        1,
    );
    // Cut to 2 s.
    write_wav(
        &short,
        &styled(rate as u32, 2.0, &Style::default(), 1),
        rate as u32,
        16,
    );
    let text = dir.path().join("text.wav");
    std::fs::write(&text, "this is not audio at all, just words").unwrap();
    let good = track(
        &dir.path().join("good.wav"),
        rate as u32,
        &Style::default(),
        2,
    );
    let (out, stdout, stderr) = run(
        &root,
        &[
            "ref",
            "add",
            silent.to_str().unwrap(),
            short.to_str().unwrap(),
            text.to_str().unwrap(),
            good.to_str().unwrap(),
            "--genre",
            "test",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stderr.contains("silent.wav: not usable as a reference: it is silent"),
        "{stderr}"
    );
    assert!(
        stderr.contains("short.wav: not usable as a reference: it is 2.0 s long"),
        "{stderr}"
    );
    assert!(stderr.contains("text.wav"), "{stderr}");
    assert!(stdout.contains("added #1 good"), "{stdout}");
    let listed = json(&root, &["ref", "list"]);
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    // No genre, and --name for several files, are usage errors.
    let (out, _, stderr) = run(
        &root,
        &["ref", "add", good.to_str().unwrap(), "--genre", " "],
    );
    assert!(
        !out.status.success() && stderr.contains("needs a genre"),
        "{stderr}"
    );
    let (out, _, stderr) = run(
        &root,
        &[
            "ref",
            "add",
            good.to_str().unwrap(),
            short.to_str().unwrap(),
            "--genre",
            "g",
            "--name",
            "N",
        ],
    );
    assert!(
        !out.status.success() && stderr.contains("--name names one file"),
        "{stderr}"
    );
    // The state stays sound.
    let stats = json(&root, &["stats"]);
    assert_eq!(
        stats["state_schema"],
        sluice_host::store::SCHEMA_VERSION,
        "{stats}"
    );
}

#[test]
fn a_pipeline_matches_a_track_to_a_genre_of_the_library() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("pipelines")).unwrap();
    // A bright genre (high band up, low band down) of three references.
    let bright = Style {
        band_gains_db: [-4.0, -1.0, 0.0, 2.0, 5.0],
        ..Style::default()
    };
    let mut files = Vec::new();
    for k in 0..3 {
        files.push(track(
            &dir.path().join(format!("b{k}.wav")),
            48_000,
            &bright,
            40 + k,
        ));
    }
    let mut args = vec!["ref", "add"];
    args.extend(files.iter().map(|f| f.to_str().unwrap()));
    args.extend(["--genre", "bright"]);
    json(&root, &args);
    std::fs::write(
        root.join("pipelines/master.toml"),
        r#"name = "master"
watch = "inbox"
[[step]]
match = { genre = "bright", max_gain_db = 24 }
[[step]]
normalize = { loudness_lufs = -14.0, true_peak_dbtp = -1.0 }
[[output]]
path = "out/{stem}.wav"
format = "wav"
bit_depth = 24
"#,
    )
    .unwrap();
    let dark = track(&dir.path().join("dark.wav"), 44_100, &genres()[0].1, 5);
    common::run_pipeline(&root, "master", &dark);
    let matched = root.join("out/dark.wav");
    let before = json(
        &root,
        &["compare", dark.to_str().unwrap(), "--genre", "bright"],
    );
    let after = json(
        &root,
        &["compare", matched.to_str().unwrap(), "--genre", "bright"],
    );
    let worst = |c: &Value| {
        c["bands"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["delta_db"].as_f64().unwrap().abs())
            .fold(0f64, f64::max)
    };
    assert!(worst(&before) > 4.0, "{before:#}");
    assert!(worst(&after) < 0.7, "after matching: {after:#}");

    // A compare step puts the comparison in the job's report: before matching, the dark
    // track is outside the bright genre; after, inside.
    std::fs::write(
        root.join("pipelines/check.toml"),
        "name = \"check\"\nwatch = \"inbox-check\"\n[[step]]\ncompare = { genre = \"bright\", level = \"gentle\" }\n",
    )
    .unwrap();
    for (file, outside) in [(&dark, true), (&matched, false)] {
        let out = sluice()
            .args(["run", "check", "--json", "--root"])
            .arg(&root)
            .arg(file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        let report = v[0]["report"]
            .as_str()
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                panic!("no report path: {v:#}");
            });
        let report: Value =
            serde_json::from_slice(&std::fs::read(root.join(&report)).unwrap()).unwrap();
        let c = &report["comparison"];
        assert_eq!(c["target"], "genre bright profile", "{report:#}");
        assert_eq!(c["level"], "gentle");
        let any_outside = c["bands"]
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["inside"] == false);
        assert_eq!(any_outside, outside, "{c:#}");
        // Band recommendations exactly when a band is outside (the matched file was also
        // normalized to -14 LUFS, so its loudness may draw one of its own).
        let bands = ["low", "low_mid", "mid", "high_mid", "high"];
        let band_advice = c["recommendations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| bands.contains(&r["subject"].as_str().unwrap_or_default()));
        assert_eq!(band_advice, outside, "{c:#}");
    }
    // A genre the library does not have fails the job with that said.
    std::fs::write(
        root.join("pipelines/master.toml"),
        std::fs::read_to_string(root.join("pipelines/master.toml"))
            .unwrap()
            .replace("bright", "polka"),
    )
    .unwrap();
    let out = sluice()
        .args(["run", "master", "--json", "--root"])
        .arg(&root)
        .arg(&dark)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let error = v[0]["error"].as_str().unwrap_or_default();
    assert!(error.contains("genre \"polka\" has no references"), "{v:#}");
}
