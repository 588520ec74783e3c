//! Wasm effects through the real binary: the example podcast pipeline's built-in high-pass
//! really filters, and a hostile effect dropped into the root's effects folder fails its own
//! jobs with a clear error while the host and other pipelines carry on, and the effects folder
//! reloads while the host runs.

mod common;

use common::{Host, root_with_examples, write_wav};
use std::f32::consts::TAU;
use std::path::Path;

/// `sluice ARGS --root ROOT`: whether it succeeded, its stdout and its stderr.
fn sluice_in(root: &Path, args: &[&str]) -> (bool, String, String) {
    let out = common::sluice()
        .args(args)
        .arg("--root")
        .arg(root)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `sluice run PIPELINE SOURCE --root ROOT`.
fn sluice_run(pipeline: &Path, source: &Path, root: &Path) -> std::process::Output {
    common::sluice()
        .arg("run")
        .arg(pipeline)
        .arg(source)
        .arg("--root")
        .arg(root)
        .output()
        .unwrap()
}

/// Amplitude of the `freq` component of the first channel of the file at `path`.
fn component(path: &Path, freq: f64) -> f64 {
    let mut d = sluice_core::Decoder::open(path).unwrap();
    let rate = d.info().sample_rate;
    let mut x = Vec::new();
    while let Some(b) = d.next_block().unwrap() {
        x.extend_from_slice(b.planes().next().unwrap());
    }
    common::component(&x, rate, freq)
}

#[test]
fn the_podcast_example_high_passes_with_the_builtin_wasm_effect() {
    let dir = tempfile::tempdir().unwrap();
    let root = root_with_examples(dir.path());
    let host = Host::start(&root);
    // Rumble at 40 Hz and a 1 kHz tone, equally loud, in a 24-bit mono WAV.
    let rate = 44_100u32;
    let tone: Vec<f32> = (0..rate as usize * 4)
        .map(|i| {
            let t = i as f32 / rate as f32;
            0.2 * (TAU * 40.0 * t).sin() + 0.2 * (TAU * 1000.0 * t).sin()
        })
        .collect();
    let src = dir.path().join("rumble.wav");
    write_wav(&src, &[tone], rate, 24);
    std::fs::copy(&src, root.join("inbox/podcast/rumble.wav")).unwrap();
    let js = host.settle_jobs(1);
    assert_eq!(js[0]["state"], "done", "{:#?}\n{}", js[0], host.log());
    let flac = root.join("archive/podcast/rumble.flac");
    let before = 20.0 * (component(&src, 40.0) / component(&src, 1000.0)).log10();
    let after = 20.0 * (component(&flac, 40.0) / component(&flac, 1000.0)).log10();
    // A second-order Butterworth high-pass at 80 Hz takes 12.3 dB off 40 Hz.
    let drop = before - after;
    assert!(
        (drop - 12.3).abs() < 1.0,
        "40 Hz fell {drop:.2} dB against 1 kHz"
    );
    let report: serde_json::Value = serde_json::from_slice(
        &std::fs::read(root.join(js[0]["report"].as_str().unwrap())).unwrap(),
    )
    .unwrap();
    let stages = report["export"]["stages"].as_array().unwrap();
    let hp = stages
        .iter()
        .find(|s| s["stage"] == "effect highpass")
        .unwrap_or_else(|| panic!("{stages:#?}"));
    assert_eq!(hp["values"]["cutoff_hz"], 80.0);
}

#[test]
fn the_podcast_example_removes_mains_hum_with_the_builtin_dehum() {
    let dir = tempfile::tempdir().unwrap();
    let root = root_with_examples(dir.path());
    let host = Host::start(&root);
    // A 1 kHz tone under 60 Hz hum with five harmonics, each at −30 dBFS, 8 s.
    let rate = 48_000u32;
    let signal: Vec<f32> = (0..rate as usize * 8)
        .map(|i| {
            let t = i as f32 / rate as f32;
            let hum: f32 = (1..=6)
                .map(|k| 0.0316 * (TAU * 60.0 * k as f32 * t + k as f32).sin())
                .sum();
            0.2 * (TAU * 1000.0 * t).sin() + hum
        })
        .collect();
    let src = dir.path().join("hum.wav");
    write_wav(&src, &[signal], rate, 24);
    std::fs::copy(&src, root.join("inbox/podcast/hum.wav")).unwrap();
    let js = host.settle_jobs(1);
    assert_eq!(js[0]["state"], "done", "{:#?}\n{}", js[0], host.log());
    let flac = root.join("archive/podcast/hum.flac");
    // Against the 1 kHz tone (normalising moves both); measured over the middle half, after
    // the first second in which the mains is found. 60 Hz also meets the 80 Hz high-pass.
    for k in 2..=6 {
        let f = 60.0 * k as f64;
        let before = 20.0 * (component(&src, f) / component(&src, 1000.0)).log10();
        let after = 20.0 * (component(&flac, f) / component(&flac, 1000.0)).log10();
        assert!(
            before - after >= 30.0,
            "{f} Hz fell only {:.1} dB against 1 kHz",
            before - after
        );
    }
    let report: serde_json::Value = serde_json::from_slice(
        &std::fs::read(root.join(js[0]["report"].as_str().unwrap())).unwrap(),
    )
    .unwrap();
    let stages = report["export"]["stages"].as_array().unwrap();
    for name in ["effect dehum", "effect deess"] {
        assert!(
            stages.iter().any(|s| s["stage"] == name),
            "{name}: {stages:#?}"
        );
    }
}

/// An effect that passes the checks at load, then spins forever once it has had more than
/// 20,000 frames.
fn spinner() -> Vec<u8> {
    wat::parse_str(
        r#"(module
  (memory (export "memory") 2)
  (global $frames (mut i32) (i32.const 0))
  (func (export "sluice_init") (param i32 i32 i32) (result i32) (i32.const 0))
  (func (export "sluice_buffer") (param $ch i32) (result i32)
    (i32.add (i32.const 1024) (i32.mul (local.get $ch) (i32.const 16384))))
  (func (export "sluice_set_param") (param i32 f32) (result i32) (i32.const 6))
  (func (export "sluice_reset"))
  (func (export "sluice_process") (param $n i32) (result i32)
    (global.set $frames (i32.add (global.get $frames) (local.get $n)))
    (if (i32.gt_u (global.get $frames) (i32.const 20000)) (then (loop $l (br $l))))
    (i32.const 0))
  (@custom "sluice_effect" "{\"abi\":1,\"name\":\"spin\",\"version\":\"1\",\"max_channels\":2}")
)"#,
    )
    .unwrap()
}

#[test]
fn a_hostile_effect_fails_its_jobs_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    common::new_root(&root, &["effects"], &[]);
    std::fs::write(root.join("effects/spin.wasm"), spinner()).unwrap();
    std::fs::write(root.join("effects/notes.wasm"), "not a module").unwrap();
    for (name, step) in [
        ("hostile", "[[step]]\neffect = \"spin\"\n"),
        (
            "plain",
            "[[step]]\neffect = \"gain\"\nparams = { gain_db = -6 }\n",
        ),
    ] {
        std::fs::write(
            root.join(format!("pipelines/{name}.toml")),
            format!("name = \"{name}\"\nwatch = \"inbox/{name}\"\n{step}\n[[output]]\npath = \"out/{name}/{{stem}}.wav\"\n"),
        )
        .unwrap();
    }
    let host = Host::start(&root);
    assert!(
        host.log().contains("effect refused") && host.log().contains("notes.wasm"),
        "{}",
        host.log()
    );
    let planes = sluice_core::signal::programme(48_000, 2, 48_000 * 3, 1);
    write_wav(&root.join("inbox/hostile/a.wav"), &planes, 48_000, 16);
    write_wav(&root.join("inbox/plain/b.wav"), &planes, 48_000, 16);
    let js = host.settle_jobs(2);
    let by = |p: &str| js.iter().find(|j| j["pipeline"] == p).unwrap();
    let bad = by("hostile");
    assert_eq!(bad["state"], "failed", "{bad:#?}");
    assert_eq!(bad["attempts"], 1, "not retried: {bad:#?}");
    let err = bad["error"].as_str().unwrap();
    assert!(
        err.contains("effect spin") && err.contains("time budget"),
        "{err}"
    );
    assert!(!root.join("out/hostile/a.wav").exists());
    assert!(
        root.join("inbox/hostile/a.wav").is_file(),
        "the source stays"
    );
    assert_eq!(by("plain")["state"], "done");
    assert!(root.join("out/plain/b.wav").is_file());
    // Still running: another file through the good pipeline.
    let other = sluice_core::signal::programme(48_000, 2, 48_000 * 2, 2);
    write_wav(&root.join("inbox/plain/c.wav"), &other, 48_000, 16);
    let js = host.settle_jobs(3);
    assert!(
        js.iter()
            .all(|j| j["pipeline"] == "hostile" || j["state"] == "done")
    );
}

#[test]
fn effects_list_info_and_test() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("effects")).unwrap();
    std::fs::write(root.join("effects/spin.wasm"), spinner()).unwrap();
    std::fs::write(root.join("effects/junk.wasm"), "junk").unwrap();
    let run = |args: &[&str]| sluice_in(&root, args);
    let (ok, out, _) = run(&["effects", "list", "--json"]);
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let names: Vec<&str> = v["effects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    for n in ["eq", "highpass", "limiter", "reverb", "spin"] {
        assert!(names.contains(&n), "{names:?}");
    }
    assert!(
        v["refused"][0]["error"]
            .as_str()
            .unwrap()
            .contains("not a WebAssembly module")
    );

    let (ok, out, _) = run(&["effects", "info", "eq"]);
    assert!(
        ok && out.contains("freq_hz") && out.contains("lowpass | highpass"),
        "{out}"
    );

    // The limiter's latency is its look-ahead plus its filter delay, where its impulse peaks.
    let (ok, out, err) = run(&["effects", "test", "limiter", "lookahead_ms=5"]);
    assert!(ok, "{err}");
    assert!(out.contains("latency       263 frames"), "{out}");
    assert!(out.contains("at frame 263"), "{out}");
    assert!(out.contains("x real time"), "{out}");
    let (ok, out, _) = run(&["effects", "test", "gain", "gain_db=-6"]);
    assert!(ok, "{out}");
    let gain: f64 = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("sweep gain"))
        .and_then(|r| r.split_whitespace().next())
        .unwrap()
        .parse()
        .unwrap();
    // -6 dB, less the first 20 ms the gain glides from 0 dB.
    assert!((gain + 6.0).abs() < 0.05, "{out}");
    let (ok, _, err) = run(&["effects", "test", "eq", "freq_hz=5"]);
    assert!(!ok && err.contains("out of range"), "{err}");
    let (ok, _, err) = run(&["effects", "test", "gain", "gain_db=-6", "gain_db=6"]);
    assert!(!ok && err.contains("gain_db is given twice"), "{err}");
    // A choice named by a number is that choice; a number that is neither name nor index is
    // refused naming the choices.
    let (ok, _, err) = run(&["effects", "test", "dehum", "mains=60"]);
    assert!(ok, "{err}");
    let (ok, _, err) = run(&["effects", "test", "dehum", "mains=70"]);
    assert!(!ok && err.contains("is not one of auto, 50, 60"), "{err}");
    // Looking made nothing in the root.
    assert!(!root.join(".sluice").exists());
}

#[test]
fn the_effects_folder_reloads_while_the_host_runs() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    common::new_root(&root, &["effects"], &[]);
    std::fs::write(
        root.join("pipelines/quieter.toml"),
        "name = \"quieter\"\nwatch = \"inbox\"\n[[step]]\neffect = \"c-gain\"\n\
         params = { gain_db = -6.0206 }\n[[output]]\npath = \"out/{stem}.wav\"\nbit_depth = 24\n",
    )
    .unwrap();
    let host = Host::start(&root);
    // No such effect yet: the pipeline is refused, naming it.
    host.wait_for("the pipeline refused", || {
        host.log().contains("pipeline refused") && host.log().contains("c-gain")
    });

    // The C effect arrives (written beside, then renamed in, as a copy tool would finish).
    let module = Path::new(env!("CARGO_MANIFEST_DIR")).join("../effects/c-gain/c-gain.wasm");
    std::fs::copy(&module, root.join("effects/.c-gain.partial")).unwrap();
    std::fs::rename(
        root.join("effects/.c-gain.partial"),
        root.join("effects/c-gain.wasm"),
    )
    .unwrap();
    host.wait_for("the effects reloaded", || {
        host.log().contains("effects changed")
    });
    std::fs::create_dir_all(root.join("inbox")).unwrap();
    let rate = 48_000u32;
    let tone: Vec<f32> = (0..rate as usize * 2)
        .map(|i| 0.5 * (TAU * 1000.0 * i as f32 / rate as f32).sin())
        .collect();
    let src = dir.path().join("tone.wav");
    write_wav(&src, &[tone], rate, 24);
    std::fs::copy(&src, root.join("inbox/tone.wav")).unwrap();
    let js = host.settle_jobs(1);
    assert_eq!(js[0]["state"], "done", "{:#?}\n{}", js[0], host.log());
    let ratio = component(&root.join("out/tone.wav"), 1000.0) / component(&src, 1000.0);
    assert!((ratio - 0.5).abs() < 0.005, "gain {ratio}");

    // The module is removed: the pipeline that needs it is refused again.
    let refusals = |log: &str| log.matches("pipeline refused").count();
    let before = refusals(&host.log());
    std::fs::remove_file(root.join("effects/c-gain.wasm")).unwrap();
    host.wait_for("the pipeline refused again", || {
        refusals(&host.log()) > before
    });
}

/// A module in the effect ABI that scales by a `gain` parameter (linear, 0 to 2), declaring
/// `name`, `abi` and `version` as given.
fn scaler(name: &str, abi: u32, version: &str) -> Vec<u8> {
    let desc = format!(
        r#"{{"abi":{abi},"name":"{name}","version":"{version}","max_channels":2,"params":[{{"id":"gain","name":"Gain","min":0,"max":2,"default":1}}]}}"#
    );
    wat::parse_str(format!(
        r#"(module
  (memory (export "memory") 2)
  (global $g (mut f32) (f32.const 1))
  (func (export "sluice_init") (param i32 i32 i32) (result i32) (i32.const 0))
  (func (export "sluice_buffer") (param $ch i32) (result i32)
    (i32.add (i32.const 1024) (i32.mul (local.get $ch) (i32.const 32768))))
  (func (export "sluice_set_param") (param $i i32) (param $v f32) (result i32)
    (if (result i32) (i32.eqz (local.get $i))
      (then (global.set $g (local.get $v)) (i32.const 0))
      (else (i32.const 6))))
  (func (export "sluice_reset"))
  (func (export "sluice_process") (param $n i32) (result i32)
    (local $k i32) (local $a i32)
    (local.set $k (i32.const 0))
    (block $done (loop $l
      (br_if $done (i32.ge_u (local.get $k) (i32.mul (local.get $n) (i32.const 1))))
      (local.set $a (i32.add (i32.const 1024) (i32.shl (local.get $k) (i32.const 2))))
      (f32.store (local.get $a) (f32.mul (f32.load (local.get $a)) (global.get $g)))
      (local.set $a (i32.add (local.get $a) (i32.const 32768)))
      (f32.store (local.get $a) (f32.mul (f32.load (local.get $a)) (global.get $g)))
      (local.set $k (i32.add (local.get $k) (i32.const 1)))
      (br $l)))
    (i32.const 0))
  (@custom "sluice_effect" {desc:?})
)"#
    ))
    .unwrap()
}

/// A module written outside the root: `effects check` says whether the host would load it
/// (and why not: not wasm, another ABI version, a built-in's name), `effects test FILE.wasm`
/// measures it, `effects install` puts it in the root's effects folder (never over a built-in,
/// over another module only with --force, the same module twice is a no-op), and the root
/// then lists it.
#[test]
fn a_module_file_is_checked_tested_and_installed() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    sluice_host::commands::init_root(&root).unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let put = |name: &str, bytes: &[u8]| {
        let p = work.join(name);
        std::fs::write(&p, bytes).unwrap();
        p.display().to_string()
    };
    let good = put("scale.wasm", &scaler("scale", 1, "1.0.0"));
    let newer = put("scale2.wasm", &scaler("scale", 1, "1.1.0"));
    let future = put("future.wasm", &scaler("future", 2, "1"));
    let clash = put("eq.wasm", &scaler("eq", 1, "1"));
    let junk = put("junk.wasm", b"not a module");
    let run = |args: &[&str]| sluice_in(&root, args);
    let (ok, out, err) = run(&["effects", "check", &good]);
    assert!(ok, "{err}");
    assert!(
        out.contains("loads (effect ABI 1)") && out.contains("scale 1.0.0"),
        "{out}"
    );
    assert!(out.contains("gain") && out.contains("0 to 2"), "{out}");
    let (ok, _, err) = run(&["effects", "check", &junk]);
    assert!(
        !ok && err.contains("refused") && err.contains("junk.wasm"),
        "{err}"
    );
    let (ok, _, err) = run(&["effects", "check", &future]);
    assert!(!ok, "{err}");
    assert!(
        err.contains("ABI 2") && err.contains("ABI 1"),
        "both versions named: {err}"
    );
    let (ok, out, _) = run(&["effects", "check", &clash, "--json"]);
    assert!(ok, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["same_name"], "built in");

    // Measured from the file: -6 dB at gain 0.5; its pictures drawn.
    let pictures = dir.path().join("pictures");
    let (ok, out, err) = run(&[
        "effects",
        "test",
        &good,
        "gain=0.5",
        "--plots",
        &pictures.display().to_string(),
    ]);
    assert!(ok, "{err}");
    for p in ["scale-frequency.png", "scale-impulse.png"] {
        let bytes = std::fs::read(pictures.join(p)).unwrap();
        assert!(bytes.starts_with(b"\x89PNG") && bytes.len() > 5000, "{p}");
        assert!(out.contains(p), "{out}");
    }
    let gain: f64 = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("sweep gain"))
        .and_then(|r| r.split_whitespace().next())
        .unwrap()
        .parse()
        .unwrap();
    assert!((gain + 6.02).abs() < 0.05, "{out}");

    let (ok, _, err) = run(&["effects", "install", &clash]);
    assert!(!ok && err.contains("built-in effect"), "{err}");
    let (ok, _, err) = run(&["effects", "install", &junk]);
    assert!(!ok && err.contains("not installed"), "{err}");
    let (ok, out, err) = run(&["effects", "install", &good]);
    assert!(ok && out.contains("scale 1.0.0 installed"), "{out}{err}");
    let installed = root.join("effects/scale.wasm");
    assert_eq!(
        std::fs::read(&installed).unwrap(),
        std::fs::read(&good).unwrap()
    );
    let (ok, out, _) = run(&["effects", "install", &good]);
    assert!(ok && out.contains("unchanged"), "{out}");
    let (ok, _, err) = run(&["effects", "install", &newer]);
    assert!(!ok && err.contains("--force"), "{err}");
    let (ok, out, err) = run(&["effects", "install", &newer, "--force"]);
    assert!(ok && out.contains("scale 1.1.0 replaced"), "{out}{err}");
    let (ok, out, _) = run(&["effects", "list", "--json"]);
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let scale = v["effects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "scale")
        .expect("the installed effect is listed");
    assert_eq!(scale["version"], "1.1.0");
    // Nothing half-written is left in the effects folder.
    let names: Vec<String> = std::fs::read_dir(root.join("effects"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["scale.wasm"]);
}

/// `sluice effects new NAME --lang LANG` into a folder outside the repository, the project
/// built there with `build` (its own tools), checked by the binary, installed into a new root
/// and run in a pipeline through `sluice run`: a 1 kHz tone comes out `expect_db` louder.
fn new_project_builds_and_runs(
    lang: &str,
    build: &[&[&str]],
    param: &str,
    amplitudes: &[f32],
) -> Vec<f64> {
    let dir = tempfile::tempdir().unwrap();
    let out = common::sluice()
        .args(["effects", "new", "my_fx", "--lang", lang, "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let project = dir.path().join("my_fx");
    // Nothing in the project points into this repository.
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    for e in std::fs::read_dir(&project).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            let text = std::fs::read_to_string(&p).unwrap();
            assert!(
                !text.contains(&repo.display().to_string()),
                "{} names the repository",
                p.display()
            );
        }
    }
    for cmd in build {
        let mut c = std::process::Command::new(cmd[0]);
        c.args(&cmd[1..]).current_dir(&project);
        // The project is built as a stranger would: none of this test's cargo settings.
        for (k, _) in std::env::vars() {
            if k.starts_with("CARGO_") || k == "RUSTFLAGS" || k == "RUSTC_WRAPPER" {
                c.env_remove(k);
            }
        }
        let o = c.output().unwrap();
        assert!(
            o.status.success(),
            "{cmd:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let module = if lang == "rust" {
        project.join("target/wasm32-unknown-unknown/release/my_fx.wasm")
    } else {
        project.join("my_fx.wasm")
    };
    let root = dir.path().join("root");
    sluice_host::commands::init_root(&root).unwrap();
    let sluice = |args: &[&str]| {
        let (ok, out, err) = sluice_in(&root, args);
        assert!(ok, "sluice {args:?}: {out}{err}");
        out
    };
    let m = module.display().to_string();
    let checked = sluice(&["effects", "check", &m]);
    assert!(
        checked.contains("my_fx") && checked.contains("loads"),
        "{checked}"
    );
    sluice(&["effects", "install", &m]);
    let pipeline = dir.path().join("fx.toml");
    std::fs::write(
        &pipeline,
        format!(
            "name = \"fx\"\nwatch = \"inbox/fx\"\n[[step]]\neffect = \"my_fx\"\nparams = {{ {param} }}\n[[output]]\npath = \"out/{{stem}}.wav\"\n"
        ),
    )
    .unwrap();
    let rate = 48_000u32;
    amplitudes
        .iter()
        .enumerate()
        .map(|(k, &a)| {
            let tone: Vec<f32> = (0..rate as usize)
                .map(|i| a * (TAU * 1000.0 * i as f32 / rate as f32).sin())
                .collect();
            let src = dir.path().join(format!("tone{k}.wav"));
            write_wav(&src, &[tone.clone(), tone], rate, 24);
            sluice(&[
                "run",
                &pipeline.display().to_string(),
                &src.display().to_string(),
            ]);
            let made = root.join(format!("out/tone{k}.wav"));
            20.0 * (component(&made, 1000.0) / component(&src, 1000.0)).log10()
        })
        .collect()
}

#[test]
fn a_rust_effect_project_builds_outside_the_repository_and_runs_in_a_pipeline() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let host = std::process::Command::new("rustc")
        .arg("-vV")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .find_map(|l| l.strip_prefix("host: ").map(str::to_string))
        })
        .expect("rustc -vV names the host");
    let db = new_project_builds_and_runs(
        "rust",
        &[
            &[&cargo, "build", "--release"],
            // The native test the template carries, through the SDK's harness.
            &[&cargo, "test", "--target", &host],
        ],
        "trim_db = -6.0",
        &[0.25],
    );
    assert!(
        (db[0] + 6.0).abs() < 0.05,
        "a tone came out {:.2} dB at trim -6",
        db[0]
    );
}

#[test]
fn a_c_effect_project_builds_with_clang_and_runs_in_a_pipeline() {
    if common::tool("clang").is_none() || common::tool("wasm-ld").is_none() {
        return;
    }
    let db = new_project_builds_and_runs("c", &[&["make"]], "gain_db = -6.0", &[0.25]);
    assert!(
        (db[0] + 6.0).abs() < 0.05,
        "a tone came out {:.2} dB at gain -6",
        db[0]
    );
}

#[test]
fn an_assemblyscript_effect_project_builds_with_npm_and_runs_in_a_pipeline() {
    if common::tool("npm").is_none() || common::tool("node").is_none() {
        return;
    }
    let db = new_project_builds_and_runs(
        "assemblyscript",
        &[
            &["npm", "install", "--no-audit", "--no-fund"],
            &["npm", "run", "build"],
        ],
        "gain_db = -6.0",
        &[0.25],
    );
    assert!(
        (db[0] + 6.0).abs() < 0.05,
        "a tone came out {:.2} dB at gain -6",
        db[0]
    );
}

/// faust, clang, wasm-ld and wasi-libc (for the maths the generated code calls), or `false`
/// (skipped unless SLUICE_REQUIRE_TOOLS=1).
fn faust_tools() -> bool {
    let tools = ["faust", "clang", "wasm-ld", "make", "cc"]
        .iter()
        .all(|t| common::tool(t).is_some());
    let wasi = Path::new("/usr/lib/wasm32-wasi/libc.a").exists()
        || Path::new("/usr/share/wasi-sysroot").exists();
    if tools && !wasi {
        assert!(
            std::env::var("SLUICE_REQUIRE_TOOLS").as_deref() != Ok("1"),
            "wasi-libc is required (SLUICE_REQUIRE_TOOLS=1)"
        );
        eprintln!("SKIPPED: no wasi-libc (apt-get install wasi-libc libclang-rt-14-dev-wasm32)");
    }
    tools && wasi
}

/// The Faust project as written: the library's compressor, its sliders as parameters
/// (threshold -20 dB, ratio 4). A tone far below the threshold passes unchanged; above it,
/// 6 dB more input is 1.5 dB more output (the ratio), 4.5 dB more gain reduction.
#[test]
fn a_faust_effect_project_compresses_in_a_pipeline() {
    if !faust_tools() {
        return;
    }
    // -6, -12 and -34 dBFS.
    let db = new_project_builds_and_runs(
        "faust",
        &[&["make"]],
        "threshold = -20.0, ratio = 4.0",
        &[0.5, 0.25, 0.02],
    );
    assert!(db[2].abs() < 0.1, "below the threshold: {:.2} dB", db[2]);
    assert!(db[1] < -3.0, "above it: {:.2} dB", db[1]);
    let more = db[1] - db[0];
    assert!(
        (more - 4.5).abs() < 0.3,
        "6 dB more input took {more:.2} dB more off (ratio 4: 4.5)"
    );
}

/// A Faust library reverb (`re.zita_rev1_stereo`) made a Sluice effect: a burst of noise
/// followed by silence comes out with a tail that rings on into the silence.
#[test]
fn a_faust_library_reverb_rings_on_after_its_input() {
    if !faust_tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = common::sluice()
        .args(["effects", "new", "hall", "--lang", "faust", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let project = dir.path().join("hall");
    std::fs::write(
        project.join("hall.dsp"),
        "declare version \"1.0.0\";\ndeclare tail_seconds \"6\";\nimport(\"stdfaust.lib\");\n\
         mix = hslider(\"mix [unit:%]\", 100, 0, 100, 1) / 100;\n\
         process = _,_ <: (re.zita_rev1_stereo(0, 200, 6000, 3, 3, 48000) : *(mix), *(mix)), (*(1 - mix), *(1 - mix)) :> _,_;\n",
    )
    .unwrap();
    let o = std::process::Command::new("make")
        .current_dir(&project)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let root = dir.path().join("root");
    sluice_host::commands::init_root(&root).unwrap();
    let module = project.join("hall.wasm").display().to_string();
    let o = common::sluice()
        .args(["effects", "install", &module, "--root"])
        .arg(&root)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // 0.5 s of noise, then 2.5 s of digital silence, mono: the stereo reverb is fed it twice.
    let rate = 48_000usize;
    let mut x = 0x2545F4914F6CDD1Du64;
    let audio: Vec<f32> = (0..rate * 3)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if i < rate / 2 {
                ((x >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.5
            } else {
                0.0
            }
        })
        .collect();
    let src = dir.path().join("burst.wav");
    write_wav(&src, &[audio], rate as u32, 24);
    let pipeline = dir.path().join("verb.toml");
    std::fs::write(
        &pipeline,
        "name = \"verb\"\nwatch = \"inbox/verb\"\n[[step]]\neffect = \"hall\"\n[[output]]\npath = \"out/{stem}.wav\"\nbit_depth = 32\n",
    )
    .unwrap();
    let o = sluice_run(&pipeline, &src, &root);
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let mut r = hound::WavReader::open(root.join("out/burst.wav")).unwrap();
    let spec = r.spec();
    let y: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Float => r.samples::<f32>().map(Result::unwrap).collect(),
        hound::SampleFormat::Int => r
            .samples::<i32>()
            .map(|v| v.unwrap() as f32 / (1u64 << (spec.bits_per_sample - 1)) as f32)
            .collect(),
    };
    let rms = |a: usize, b: usize| -> f64 {
        let s: f64 = y[a..b].iter().map(|v| f64::from(*v).powi(2)).sum();
        10.0 * (s / (b - a) as f64).log10()
    };
    // Interleaved samples: seconds 1.0-1.5 and 2.5-3.0 of the silence that followed the burst.
    let ch = spec.channels as usize;
    let early = rms(rate * ch, rate * 3 / 2 * ch);
    let late = rms(rate * 5 / 2 * ch, rate * 3 * ch);
    assert!(
        early > -70.0,
        "0.5-1.0 s after the burst the tail is at {early:.1} dB"
    );
    assert!(
        late > -90.0 && late < early - 6.0,
        "the tail decays: {early:.1} then {late:.1} dB"
    );
}

/// Every effect of the Pedalboard-breadth set, through `sluice export`: no latency (the output
/// lines up with the input: its correlation with the input peaks at lag 0), and its tail as
/// declared — none for the shapers and the bitcrusher (the output as long as the input); the
/// chorus's and the flanger's echoes kept after the input ends, decaying, and ended within the
/// declared tail; the phaser's short ring kept.
#[test]
fn the_new_effects_line_up_and_keep_their_tails() {
    let dir = tempfile::tempdir().unwrap();
    let rate = 48_000u32;
    let n = rate as usize / 2;
    let burst: Vec<Vec<f32>> = (0..2)
        .map(|ch| {
            let mut s = 0x9e37_79b9_7f4a_7c15_u64 + ch;
            (0..n)
                .map(|_| {
                    s ^= s << 13;
                    s ^= s >> 7;
                    s ^= s << 17;
                    ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * 0.5
                })
                .collect()
        })
        .collect();
    let src = dir.path().join("burst.wav");
    write_wav(&src, &burst, rate, 24);
    let read = common::read_float_wav;
    // (effect, the declared tail in seconds, whether something rings after the input)
    for (effect, tail, rings) in [
        ("invert", 0.0, false),
        ("clip:mode=soft", 0.0, false),
        ("distortion:curve=fold,drive_db=12", 0.0, false),
        ("bitcrush:bit_depth=4", 0.0, false),
        ("bitcrush:bit_depth=12,downsample=3", 0.0, false),
        ("chorus:feedback=0.9,mix=0.5", 8.1, true),
        ("chorus", 8.1, true),
        ("flanger:feedback=-0.9", 2.7, true),
        ("phaser:feedback=0.8", 0.5, true),
        ("ladder:mode=hpf24,cutoff_hz=200,resonance=0.9", 0.5, true),
        ("pitch:semitones=0", 0.25, true),
    ] {
        let out = dir.path().join("out.wav");
        let _ = std::fs::remove_file(&out);
        let o = common::sluice()
            .arg("export")
            .arg(&src)
            .arg("-o")
            .arg(&out)
            .args(["--bit-depth", "32f", "--effect", effect])
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{effect}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let y = read(&out);
        let len = y[0].len();
        if rings {
            assert!(len > n, "{effect}: no tail kept ({len} frames for {n})");
            let after: f32 = y[0][n..(n + 480).min(len)].iter().map(|x| x * x).sum();
            assert!(after > 1e-6, "{effect}: silence after the input");
            let most = n + (tail * f64::from(rate)).ceil() as usize + 1;
            assert!(
                len <= most,
                "{effect}: {len} frames, more than the declared tail"
            );
            // Decaying: the last 10 ms kept are far quieter than the first after the input.
            let last: f32 = y[0][len - 480..].iter().map(|x| x * x).sum();
            assert!(
                last < after * 1e-3,
                "{effect}: the tail does not decay ({last} after {after})"
            );
        } else {
            assert_eq!(
                len, n,
                "{effect}: an effect without a tail keeps the length"
            );
        }
        // No latency: the output correlates with the input best at lag 0.
        let corr = |lag: usize| -> f64 {
            (0..n - 400)
                .map(|i| f64::from(burst[0][i]) * f64::from(y[0][i + lag]))
                .sum::<f64>()
        };
        // (A sample-and-hold delays by (N − 1)/2 frames on average: that is what it does.)
        if effect.contains("downsample") {
            continue;
        }
        let at0 = corr(0).abs();
        for lag in 1..200 {
            assert!(
                corr(lag).abs() < at0,
                "{effect}: lines up better {lag} frames late"
            );
        }
    }
}

/// A `parallel` step through `sluice run`: the branch mixed with the signal it was given. An
/// all-wet delay at half level beside the dry signal at half level gives the input and its echo
/// 100 ms later, each at half level; a branch with latency (the limiter's look-ahead, the
/// signal under its ceiling) lines up with the dry path to the sample, so the mix gives the
/// input back.
#[test]
fn a_parallel_branch_mixes_its_effects_with_the_dry_signal() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    sluice_host::commands::init_root(&root).unwrap();
    let rate = 48_000usize;
    // Mono, 2 s: an impulse of 0.8 at 0.25 s, quiet noise (peak 0.03) from 0.5 to 1.5 s.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let x: Vec<f32> = (0..2 * rate)
        .map(|i| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            if i == rate / 4 {
                0.8
            } else if (rate / 2..3 * rate / 2).contains(&i) {
                ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.06
            } else {
                0.0
            }
        })
        .collect();
    let src = dir.path().join("in.wav");
    write_wav(&src, std::slice::from_ref(&x), rate as u32, 24);
    let read = |p: &Path| -> Vec<f32> {
        let mut r = hound::WavReader::open(p).unwrap();
        match r.spec().sample_format {
            hound::SampleFormat::Float => r.samples::<f32>().map(Result::unwrap).collect(),
            hound::SampleFormat::Int => r
                .samples::<i32>()
                .map(|v| v.unwrap() as f32 / (1 << 23) as f32)
                .collect(),
        }
    };
    let x = read(&src);
    let run = |name: &str, step: &str| -> Vec<f32> {
        let pipeline = dir.path().join(format!("{name}.toml"));
        std::fs::write(
            &pipeline,
            format!(
                "name = \"{name}\"\nwatch = \"inbox/{name}\"\n[[step]]\n{step}\n[[output]]\npath = \"out/{name}/{{stem}}.wav\"\nbit_depth = \"32f\"\n"
            ),
        )
        .unwrap();
        let o = sluice_run(&pipeline, &src, &root);
        assert!(
            o.status.success(),
            "{name}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        read(&root.join(format!("out/{name}/in.wav")))
    };
    let echo = run(
        "echo",
        r#"parallel = { mix = 0.5, steps = [{ effect = "delay", params = { time_ms = 100, feedback = 0, mix = 1 } }] }"#,
    );
    assert!(
        echo.len() >= x.len(),
        "{} frames for {}",
        echo.len(),
        x.len()
    );
    let d = rate / 10;
    let worst = (0..x.len())
        .map(|i| {
            let want = 0.5 * x[i] + if i >= d { 0.5 * x[i - d] } else { 0.0 };
            (echo[i] - want).abs()
        })
        .fold(0.0f32, f32::max);
    assert!(worst < 1e-5, "echo: {worst} from dry/2 + echo/2");
    assert!((echo[rate / 4 + d] - 0.4).abs() < 1e-5);
    let aligned = run(
        "aligned",
        r#"parallel = { mix = 0.5, steps = [{ effect = "limiter" }, { gain_db = 0 }] }"#,
    );
    assert_eq!(aligned.len(), x.len(), "the limiter has no tail");
    let worst = aligned
        .iter()
        .zip(&x)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(worst < 1e-6, "a late branch is {worst} off the dry path");
    // A branch that would change the rate is refused before anything runs.
    let pipeline = dir.path().join("bad.toml");
    std::fs::write(
        &pipeline,
        "name = \"bad\"\nwatch = \"inbox/bad\"\n[[step]]\nparallel = { steps = [{ resample = 44100 }] }\n[[output]]\npath = \"out/bad/{stem}.wav\"\n",
    )
    .unwrap();
    let o = sluice_run(&pipeline, &src, &root);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("not resample"), "{err}");
    assert!(!root.join("out/bad").exists());
}

/// xorshift noise, `frames` long, peak `amp`, times `decay` per frame.
fn decaying_noise(seed: u64, frames: usize, amp: f32, decay: f32) -> Vec<f32> {
    let mut s = seed;
    let mut g = amp;
    (0..frames)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let v = ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * g;
            g *= decay;
            v
        })
        .collect()
}

#[test]
fn convolve_with_an_impulse_response_file_is_the_convolution() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    sluice_host::commands::init_root(&root).unwrap();
    let rate = 48_000u32;
    // A stereo room: 0.25 s of noise decaying 60 dB in 0.2 s, a different one per side.
    let ir: Vec<Vec<f32>> = (0..2)
        .map(|c| decaying_noise(11 + c, 12_000, 0.5, 0.999_28))
        .collect();
    std::fs::create_dir_all(root.join("irs")).unwrap();
    common::write_float_wav(&root.join("irs/room.wav"), &ir, rate);
    let x: Vec<Vec<f32>> = (0..2)
        .map(|c| decaying_noise(21 + c, 24_000, 0.5, 1.0))
        .collect();
    let src = dir.path().join("dry.wav");
    common::write_float_wav(&src, &x, rate);
    // The definition, in f64.
    let want: Vec<Vec<f64>> = (0..2)
        .map(|c| {
            let mut y = vec![0.0f64; x[c].len() + ir[c].len() - 1];
            for (i, &a) in x[c].iter().enumerate() {
                for (j, &h) in ir[c].iter().enumerate() {
                    y[i + j] += f64::from(a) * f64::from(h);
                }
            }
            y
        })
        .collect();
    let check = |what: &str, y: &[Vec<f32>]| {
        assert_eq!(y.len(), 2, "{what}");
        for c in 0..2 {
            // The whole tail is kept (to where it falls under -120 dB), and what follows the
            // convolution's end (at most the host's last block of ring-out) is silent.
            let audible = want[c].iter().rposition(|v| v.abs() > 1e-6).unwrap() + 1;
            assert!(
                y[c].len() >= audible && y[c].len() <= want[c].len() + 4096,
                "{what}: {} frames, the convolution is {} ({audible} audible)",
                y[c].len(),
                want[c].len()
            );
            assert!(y[c].iter().skip(want[c].len()).all(|v| v.abs() < 1e-6));
            let worst = want[c]
                .iter()
                .zip(&y[c])
                .map(|(w, g)| (w - f64::from(*g)).abs())
                .fold(0.0, f64::max);
            assert!(
                worst < 1e-5,
                "{what}, channel {c}: {worst:e} off the convolution"
            );
        }
    };

    // In a pipeline: the response's path is in the root.
    let pipeline = dir.path().join("room.toml");
    let write = |step: &str| {
        std::fs::write(
            &pipeline,
            format!(
                "name = \"room\"\nwatch = \"inbox/room\"\n[[step]]\n{step}\n[[output]]\npath = \"out/room/{{stem}}.wav\"\nbit_depth = \"32f\"\n"
            ),
        )
        .unwrap()
    };
    write("effect = \"convolve\"\ndata = { ir = \"irs/room.wav\" }");
    let o = sluice_run(&pipeline, &src, &root);
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    check(
        "pipeline",
        &common::read_float_wav(&root.join("out/room/dry.wav")),
    );

    // `sluice export`: KEY=@FILE.
    let out = dir.path().join("wet.wav");
    let o = common::sluice()
        .arg("export")
        .arg(&src)
        .arg("-o")
        .arg(&out)
        .args(["--bit-depth", "32f", "--effect"])
        .arg(format!(
            "convolve:ir=@{},mix=1",
            root.join("irs/room.wav").display()
        ))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    check("export", &common::read_float_wav(&out));

    // Refused before anything runs, each naming the problem: no response, an unknown slot, a
    // path out of the root, a file that is not there, a response longer than the slot takes.
    std::fs::write(root.join("irs/long.wav"), b"").unwrap();
    common::write_float_wav(
        &root.join("irs/long.wav"),
        &[vec![0.001; 31 * rate as usize]],
        rate,
    );
    for (step, says) in [
        ("effect = \"convolve\"", "needs data ir"),
        (
            "effect = \"convolve\"\ndata = { ir = \"irs/room.wav\", room = \"x.wav\" }",
            "no data slot \"room\"",
        ),
        (
            "effect = \"convolve\"\ndata = { ir = \"../dry.wav\" }",
            "not a plain path inside the root",
        ),
        (
            "effect = \"convolve\"\ndata = { ir = \"irs/none.wav\" }",
            "none.wav",
        ),
        (
            "effect = \"convolve\"\ndata = { ir = \"irs/long.wav\" }",
            "longer than the 30 s",
        ),
        (
            "effect = \"gain\"\ndata = { ir = \"irs/room.wav\" }",
            "takes no data",
        ),
        (
            "gain_db = 1\ndata = { ir = \"irs/room.wav\" }",
            "belongs to an effect step",
        ),
    ] {
        write(step);
        let o = sluice_run(&pipeline, &src, &root);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{step}: accepted");
        assert!(err.contains(says), "{step}: {err}");
    }
}

/// `sluice ARGS --root ROOT`, killed after `limit`: (finished in time, success, stderr).
fn sluice_within(root: &Path, args: &[&str], limit: std::time::Duration) -> (bool, bool, String) {
    let mut child = common::sluice()
        .args(args)
        .arg("--root")
        .arg(root)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t.elapsed() > limit {
            child.kill().unwrap();
            let _ = child.wait();
            return (false, false, String::new());
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    (
        true,
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A FIFO or a device given as a module, or lying in the effects folder, is refused as not a
/// regular file: `effects check` on a FIFO blocked for ever, `effects list` and `effects test`
/// hung on one in the folder, and `/dev/zero` was read until memory ran out.
#[test]
fn modules_that_are_not_files_are_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    sluice_host::commands::init_root(&root).unwrap();
    let fifo = dir.path().join("pipe.wasm");
    let mkfifo = |p: &Path| {
        assert!(
            std::process::Command::new("mkfifo")
                .arg(p)
                .status()
                .unwrap()
                .success()
        )
    };
    mkfifo(&fifo);
    let limit = std::time::Duration::from_secs(30);
    for module in [fifo.to_str().unwrap(), "/dev/zero"] {
        let (done, ok, err) = sluice_within(&root, &["effects", "check", module], limit);
        assert!(done, "effects check {module} hung");
        assert!(!ok && err.contains("not a regular file"), "{module}: {err}");
        let (done, ok, err) = sluice_within(&root, &["effects", "install", module], limit);
        assert!(done, "effects install {module} hung");
        assert!(!ok && err.contains("not a regular file"), "{module}: {err}");
    }
    std::fs::create_dir_all(root.join("effects")).unwrap();
    mkfifo(&root.join("effects/ff.wasm"));
    for args in [&["effects", "list"][..], &["effects", "test", "gain"]] {
        let (done, ok, err) = sluice_within(&root, args, limit);
        assert!(done, "{args:?} hung with a FIFO in the effects folder");
        assert!(ok, "{args:?}: {err}");
    }
}
