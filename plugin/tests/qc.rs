//! Delivery QC in Sluice Meter, in-process: the session judged live against a specification
//! agrees rule by rule with `sluice qc`'s judgement of the same audio as a file (the core's
//! `qc::measure` + `qc::judge`), what only the file shows is listed as checked from the file,
//! true-peak events sit at their time in the session, and the exported report (JSON, HTML,
//! CSV) holds the same figures; a broken specification file and an export folder that cannot
//! be written give errors that name them.

mod common;

use common::write_wav;
use sluice_core::analysis::loudness::LoudnessMeter;
use sluice_core::qc::{self, Outcome, Value};
use sluice_core::signal::programme;
use sluice_plugin::engine::Engine;
use sluice_plugin::qc as qc_live;
use sluice_plugin::qc_state::QcError;
use sluice_plugin::shared::MeterShared;
use std::sync::Arc;

const RATE: u32 = 48_000;

/// The integrated loudness of stereo `planes`, LUFS.
fn integrated(planes: &[Vec<f32>]) -> f64 {
    let layout = sluice_core::render::default_layout(2);
    let mut meter = LoudnessMeter::for_layout(RATE, &layout);
    let refs: Vec<&[f32]> = planes.iter().map(Vec::as_slice).collect();
    meter.feed(&refs);
    meter
        .summary(None)
        .integrated_lufs
        .expect("a loud programme")
}

fn scale(planes: &mut [Vec<f32>], db: f64) {
    let gain = 10f32.powf(db as f32 / 20.0);
    for x in planes.iter_mut().flatten() {
        *x *= gain;
    }
}

/// 20 s of a stereo programme at -23 LUFS with one 20 ms burst, a tenth of a step into second
/// 5, reaching about -0.6 dBFS.
fn programme_at_23() -> Vec<Vec<f32>> {
    let mut planes = programme(RATE, 2, RATE as usize * 20, 11);
    let now = integrated(&planes);
    scale(&mut planes, -23.0 - now);
    let at = RATE as usize * 5 + 480;
    for (i, x) in planes[0][at..at + 960].iter_mut().enumerate() {
        *x = 0.966 * (std::f32::consts::TAU * 1000.0 * i as f32 / RATE as f32).sin();
    }
    // The burst raised the loudness a little: back to -23.
    let now = integrated(&planes);
    scale(&mut planes, -23.0 - now);
    planes
}

fn run(planes: &[Vec<f32>], spec: &str) -> Arc<MeterShared> {
    let shared = Arc::new(MeterShared::default());
    shared.qc.choose(spec);
    let mut e = Engine::new(RATE, &[1.0, 1.0], 1024, shared.clone());
    let len = planes[0].len();
    let mut at = 0;
    while at < len {
        let n = 1000.min(len - at);
        let refs: Vec<&[f32]> = planes.iter().map(|p| &p[at..at + n]).collect();
        e.process(&refs);
        at += n;
    }
    shared
}

fn number(v: &Option<Value>) -> f64 {
    match v {
        Some(Value::Number(x)) => *x,
        other => panic!("not a number: {other:?}"),
    }
}

#[test]
fn the_live_verdict_agrees_with_the_files_rule_by_rule() {
    let dir = tempfile::tempdir().unwrap();
    let planes = programme_at_23();
    let wav = dir.path().join("programme.wav");
    write_wav(&wav, RATE, &planes);
    for id in qc::spec::builtin_ids() {
        let spec = qc::spec::builtin(id).unwrap();
        let shared = run(&planes, id);
        let live = qc_live::report(&shared).expect("a spec and audio").unwrap();
        let file = qc::judge(&spec, qc::measure(&wav, &spec, &mut |_| {}).unwrap());
        assert_eq!(live.verdicts.len(), file.verdicts.len(), "{id}");
        let mut judged = 0;
        for (l, f) in live.verdicts.iter().zip(&file.verdicts) {
            let what = format!("{id} {}", l.measure.name());
            if l.outcome == Outcome::FromFile {
                assert_ne!(f.outcome, Outcome::FromFile, "{what}: the file judges it");
                continue;
            }
            judged += 1;
            assert_eq!(l.outcome, f.outcome, "{what}: live {l:?}, file {f:?}");
            match (&l.value, &f.value) {
                (Some(Value::Number(a)), Some(Value::Number(b))) => {
                    assert!((a - b).abs() <= 0.05, "{what}: live {a}, file {b}");
                }
                (a, b) => assert_eq!(a, b, "{what}"),
            }
        }
        assert!(judged >= 2, "{id}: {judged} rules judged live");
        // A rule checked from the file does not decide the live verdict.
        let live_fails = live
            .verdicts
            .iter()
            .any(|v| v.outcome == Outcome::Fail || v.outcome == Outcome::NotMeasured);
        assert_eq!(live.passed, !live_fails, "{id}");
        // The burst is over every ceiling of -1 dBTP or lower, at 5.0 s in both.
        if let Some(c) = live.ceiling_dbtp.filter(|&c| c <= -1.0) {
            assert_eq!(live.true_peak_events.len(), 1, "{id} over {c}");
            assert_eq!(file.true_peak_events.len(), 1, "{id} over {c}");
            let (l, f) = (&live.true_peak_events[0], &file.true_peak_events[0]);
            assert!((l.start_s - 5.0).abs() < 1e-9, "{id}: {l:?}");
            assert_eq!((l.start_s, l.end_s), (f.start_s, f.end_s), "{id}");
            assert!(
                (l.peak_dbtp - f.peak_dbtp).abs() < 0.05,
                "{id}: {l:?} {f:?}"
            );
        }
    }
}

#[test]
fn integrated_loudness_and_true_peak_read_as_the_file_does() {
    let planes = programme_at_23();
    let shared = run(&planes, "ebu-r128");
    let r = qc_live::report(&shared).unwrap().unwrap();
    let integrated = number(&r.verdicts[0].value);
    assert!((integrated + 23.0).abs() < 0.05, "{integrated}");
    assert_eq!(r.verdicts[0].outcome, Outcome::Pass);
    let tp = number(&r.verdicts[1].value);
    assert!(tp > -1.0 && tp < 0.0, "{tp}");
    assert_eq!(r.verdicts[1].outcome, Outcome::Fail);
    assert!(!r.passed);
    assert_eq!(r.measured.momentary_lufs.len(), 200);
    assert_eq!(r.measured.true_peak_history_dbtp.len(), 200);
}

#[test]
fn the_exported_report_holds_the_live_figures() {
    let dir = tempfile::tempdir().unwrap();
    let planes = programme_at_23();
    let shared = run(&planes, "netflix");
    let live = qc_live::report(&shared).unwrap().unwrap();
    let files = qc_live::export(&shared, &dir.path().join("reports"), "Mix 3").unwrap();
    assert_eq!(files.len(), 3);
    let names: Vec<String> = files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for (name, ext) in names.iter().zip(["json", "html", "csv"]) {
        assert!(
            name.starts_with("Mix 3 QC netflix ") && name.ends_with(ext),
            "{name}"
        );
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&files[0]).unwrap()).unwrap();
    assert_eq!(json["passed"], live.passed);
    assert_eq!(json["measured"]["origin"], "live");
    for (j, v) in json["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .zip(&live.verdicts)
    {
        assert_eq!(j["measure"], v.measure.name());
        if let Some(Value::Number(x)) = &v.value {
            assert_eq!(j["value"].as_f64(), Some(*x));
        }
    }
    // Netflix's loudness is speech-gated: the meter leaves it to the file.
    assert_eq!(json["verdicts"][0]["outcome"], "from_file");
    let html = std::fs::read_to_string(&files[1]).unwrap();
    assert!(html.contains("id=\"verdict\""));
    assert!(html.contains("data-outcome=\"from_file\""));
    assert!(html.contains("Sluice Meter session"));
    let csv = std::fs::read_to_string(&files[2]).unwrap();
    assert_eq!(csv.lines().count(), 201, "a header and 200 steps");
    // The diagnostics name the files written.
    let d = qc_live::to_json(&shared);
    assert_eq!(d["spec"], "netflix");
    assert_eq!(d["export"]["files"].as_array().unwrap().len(), 3);
    assert_eq!(d["report"]["passed"], live.passed);
}

#[test]
fn bad_specifications_and_folders_are_named_in_the_errors() {
    let dir = tempfile::tempdir().unwrap();
    let planes = programme_at_23();
    let shared = run(&planes, "");
    assert!(qc_live::report(&shared).is_none(), "no spec chosen");
    let e = qc_live::export(&shared, dir.path(), "").unwrap_err();
    assert!(matches!(e, QcError::NoSpec), "{e}");
    // A broken file.
    let bad = dir.path().join("house spec.toml");
    std::fs::write(&bad, "id = \"x\"\n[[rule]]\nmeasure = \"loudness\"\n").unwrap();
    shared.qc.choose(&bad.to_string_lossy());
    let e = qc_live::report(&shared).unwrap().unwrap_err();
    assert!(
        matches!(e, QcError::Spec(_)) && e.to_string().contains("house spec.toml"),
        "{e}"
    );
    // A good one, then changed on disk: the choice is read again only when it changes.
    let good = dir.path().join("ours.toml");
    std::fs::write(
        &good,
        "id = \"ours\"\nname = \"Ours\"\nsource = \"house rules\"\n\
         [[rule]]\nmeasure = \"integrated_lufs\"\ntarget = -23.0\ntolerance = 1.0\n",
    )
    .unwrap();
    shared.qc.choose(&good.to_string_lossy());
    let r = qc_live::report(&shared).unwrap().unwrap();
    assert_eq!((r.spec.as_str(), r.passed), ("ours", true));
    // An export folder that is a file: an error naming it, nothing written.
    let blocker = dir.path().join("not a folder");
    std::fs::write(&blocker, "x").unwrap();
    let e = qc_live::export(&shared, &blocker, "").unwrap_err();
    assert!(
        matches!(e, QcError::Write(_)) && e.to_string().contains("not a folder"),
        "{e}"
    );
    assert_eq!(std::fs::read_to_string(&blocker).unwrap(), "x");
    let d = qc_live::to_json(&shared);
    assert!(
        d["export"]["error"]
            .as_str()
            .unwrap()
            .contains("not a folder")
    );
}
