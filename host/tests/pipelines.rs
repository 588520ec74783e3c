//! The example pipelines in `pipelines/`, each run with `sluice run` on generated programme
//! material, and their outputs measured.

mod common;

use common::{
    bright_transients, loudness, root_with_examples, run_pipeline as run, sluice, write_wav,
};
use sluice_core::render::Source;
use std::path::Path;

/// A loud, dense master (well above every target) as a 24-bit 44.1 kHz WAV.
fn master_wav(path: &Path, seconds: f64) {
    write_wav(
        path,
        &sluice_core::signal::hot_master(44_100, seconds),
        44_100,
        24,
    );
}

#[test]
fn streaming_master_broadcast_and_analysis_examples() {
    let dir = tempfile::tempdir().unwrap();
    let root = root_with_examples(dir.path());
    let src = dir.path().join("master.wav");
    master_wav(&src, 12.0);
    let before = std::fs::read(&src).unwrap();

    // Streaming: -14 LUFS / -1 dBTP, 24-bit WAV and 320 kbit/s MP3.
    let job = run(&root, "streaming-master", &src);
    let wav = root.join("outbox/streaming-master/master.wav");
    let (i, tp) = loudness(&wav);
    assert!(
        (i + 14.0).abs() <= 0.1 && tp <= -1.0 + 0.05,
        "{i} LUFS {tp} dBTP"
    );
    assert_eq!(sluice_core::probe(&wav).unwrap().bit_depth, Some(24));
    let mp3 = root.join("outbox/streaming-master/mp3/master.mp3");
    assert!((loudness(&mp3).0 + 14.0).abs() <= 0.5);
    assert_eq!(job["outputs"].as_array().unwrap().len(), 2);

    // Broadcast: 48 kHz 24-bit BWF at -23 LUFS with the loudness in bext.
    run(&root, "broadcast", &src);
    let day = jiff::Zoned::now().strftime("%Y-%m-%d").to_string();
    let bwf = root.join(format!("outbox/broadcast/{day}/master.wav"));
    let info = sluice_core::info(&bwf, &sluice_core::InfoOptions { decode: false }).unwrap();
    assert_eq!(
        (info.stream.sample_rate, info.stream.bit_depth),
        (48_000, Some(24))
    );
    let (i, tp) = loudness(&bwf);
    assert!(
        (i + 23.0).abs() <= 0.1 && tp <= -1.0 + 0.05,
        "{i} LUFS {tp} dBTP"
    );
    let bext = info.tags.bext.expect("a bext chunk");
    assert_eq!(bext.version, 2);
    assert!((f64::from(bext.loudness_value.unwrap()) - i).abs() <= 0.05);

    // Analysis only: a report, no outputs.
    let job = run(&root, "analysis", &src);
    assert!(job["outputs"].as_array().unwrap().is_empty());
    let report: serde_json::Value = serde_json::from_slice(
        &std::fs::read(root.join("reports/analysis/master.wav.json")).unwrap(),
    )
    .unwrap();
    let measured = report["analysis"]["loudness"]["integrated_lufs"]
        .as_f64()
        .unwrap();
    assert!((measured - loudness(&src).0).abs() < 0.01);
    assert!(report["analysis"]["spectrum"].is_object());

    // `run` never moves or changes the sources.
    assert_eq!(std::fs::read(&src).unwrap(), before);
}

/// `sluice check` on `root`, which must refuse it (exit 1): what it printed.
fn refused_by_check(root: &Path) -> String {
    let out = sluice()
        .args(["check", "--root"])
        .arg(root)
        .output()
        .unwrap();
    let text = common::printed(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    text
}

/// A pipeline file in a new root (no examples).
fn root_with(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let root = dir.join("root");
    std::fs::create_dir_all(root.join("pipelines")).unwrap();
    std::fs::write(root.join(format!("pipelines/{name}.toml")), text).unwrap();
    root
}

/// The podcast example writes a mono MP3 and a stereo FLAC from a stereo source: each output
/// lands on -16 LUFS / -1 dBTP, measured on the file itself, whether the source's channels
/// are unrelated or identical (a downmix changes the loudness differently in each case). The
/// report and the summary state each output's loudness as it was written.
#[test]
fn the_podcast_example_lands_every_output_on_target_from_a_stereo_source() {
    let dir = tempfile::tempdir().unwrap();
    let root = root_with_examples(dir.path());
    let frames = 44_100 * 12;
    let tune = sluice_core::signal::programme(44_100, 1, frames, 11).remove(0);
    let hiss: Vec<f32> = sluice_core::signal::noise(5, 0.2, frames);
    let day = jiff::Zoned::now().strftime("%Y/%m/%d").to_string();
    for (name, planes) in [
        ("unrelated", vec![tune.clone(), hiss]),
        ("identical", vec![tune.clone(), tune.clone()]),
    ] {
        let src = dir.path().join(format!("{name}.wav"));
        // Quiet, so normalization has work to do: about -28 LUFS.
        let quiet: Vec<Vec<f32>> = planes
            .iter()
            .map(|p| p.iter().map(|x| x * 0.15).collect())
            .collect();
        write_wav(&src, &quiet, 44_100, 16);
        let job = run(&root, "podcast", &src);
        let mp3 = root.join(format!("outbox/podcast/{day}/{name}.mp3"));
        let flac = root.join(format!("archive/podcast/{name}.flac"));
        let mp3_info = sluice_core::probe(&mp3).unwrap();
        assert_eq!(mp3_info.channels, 1, "{name}: the MP3 is mono");
        assert_eq!(sluice_core::probe(&flac).unwrap().channels, 2);
        for (path, tolerance) in [(&flac, 0.1), (&mp3, 0.3)] {
            let (i, tp) = loudness(path);
            assert!(
                (i + 16.0).abs() <= tolerance,
                "{name}: {} measures {i:.2} LUFS (target -16)",
                path.display()
            );
            if path == &flac {
                assert!(tp <= -1.0 + 0.05, "{name}: {tp} dBTP");
            }
        }
        // The report: every output's loudness as written, on target, under the ceiling.
        let report: serde_json::Value = serde_json::from_slice(
            &std::fs::read(root.join(job["report"].as_str().unwrap())).unwrap(),
        )
        .unwrap();
        let outs = report["export"]["outputs"].as_array().unwrap();
        assert_eq!(outs.len(), 2);
        for o in outs {
            let i = o["loudness"]["integrated_lufs"].as_f64().unwrap();
            let tp = o["loudness"]["true_peak_dbtp"].as_f64().unwrap();
            assert!((i + 16.0).abs() <= 0.05 && tp <= -1.0, "{name}: {o:#}");
        }
        assert!(
            report["warnings"].as_array().unwrap().is_empty(),
            "{name}: {:#}",
            report["warnings"]
        );
    }
    // The summary names each output with its loudness as written.
    let src = dir.path().join("unrelated.wav");
    std::fs::remove_dir_all(root.join("archive")).unwrap();
    std::fs::remove_dir_all(root.join("outbox")).unwrap();
    let out = sluice()
        .args(["run", "podcast", "--root"])
        .arg(&root)
        .arg(&src)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let lines: Vec<&str> = text.lines().filter(|l| l.contains('→')).collect();
    assert_eq!(lines.len(), 2, "{text}");
    for l in lines {
        assert!(l.contains("-16.0 LUFS") && l.contains("dBTP"), "{text}");
    }
}

/// An output that misses its normalize target (a gain after the normalize step) gets a
/// warning naming the file and how far it is, in the job's record and report.
#[test]
fn an_output_that_misses_its_normalize_target_is_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let root = root_with(
        dir.path(),
        "quiet",
        r#"
name = "quiet"
watch = "inbox"

[[step]]
normalize = { loudness_lufs = -16, true_peak_dbtp = -1 }

[[step]]
gain_db = -3

[[output]]
path = "out/{stem}.flac"
"#,
    );
    let src = dir.path().join("song.wav");
    master_wav(&src, 6.0);
    let job = run(&root, "quiet", &src);
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join(job["report"].as_str().unwrap())).unwrap())
            .unwrap();
    let warnings = report["warnings"].to_string();
    assert!(
        warnings.contains("song.flac")
            && warnings.contains("-19.0 LUFS")
            && warnings.contains("-3.0 LU from the normalize target -16.0 LUFS"),
        "{warnings}"
    );
}

/// A lossy output the check leaves over its ceiling: delivered with a warning by default, and
/// the job failed, with no output left, where the pipeline says `true_peak_miss = "fail"`.
/// `true_peak_encodes = 1` measures without encoding again, so bright transients at -9 LUFS
/// in an Ogg Vorbis q3 stay over -1 dBTP once decoded. (Vorbis does not say its low-pass, so
/// the normalize step leaves no room for it: an MP3, whose low-pass is expected, now holds
/// here in one encode.)
#[test]
fn a_lossy_output_over_its_ceiling_warns_or_fails_the_job_as_the_pipeline_says() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("hats.wav");
    write_wav(&src, &bright_transients(44_100, 8.0), 44_100, 24);
    let pipeline = |miss: &str| {
        format!(
            r#"
name = "loud"
watch = "inbox"
report = "reports/{{stem}}.json"

[[step]]
normalize = {{ loudness_lufs = -9, true_peak_dbtp = -1 }}

[[output]]
path = "out/{{stem}}.ogg"
quality = 3
true_peak_encodes = 1
true_peak_miss = "{miss}"
"#
        )
    };
    // Warned about: the output is delivered, the report says the check was not met.
    let root = root_with(&dir.path().join("warn"), "loud", &pipeline("warn"));
    let job = run(&root, "loud", &src);
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join(job["report"].as_str().unwrap())).unwrap())
            .unwrap();
    let out = &report["export"]["outputs"][0];
    let check = &out["true_peak_check"];
    assert_eq!(check["met"], false, "{check:#}");
    assert_eq!(check["encodes"], 1, "{check:#}");
    let tp = out["loudness"]["true_peak_dbtp"].as_f64().unwrap();
    assert!(tp > -1.0, "decoded true peak {tp}");
    // The figures reported were read while LAME wrote the file: they are the finished file's.
    let mut file = sluice_core::render::FileSource::open(&root.join("out/hats.ogg")).unwrap();
    let mut meter = sluice_core::render::OutputMeter::new(Source::spec(&file));
    let mut block = sluice_core::render::Block::default();
    while Source::next(&mut file, &mut block).unwrap() {
        meter.feed(&block);
    }
    let m = meter.finish();
    let i = out["loudness"]["integrated_lufs"].as_f64().unwrap();
    assert!(
        (m.true_peak_dbtp - tp).abs() < 1e-9
            && (m.loudness.integrated_lufs.unwrap() - i).abs() < 1e-9,
        "reported {i} LUFS {tp} dBTP, the file {:?} / {}",
        m.loudness.integrated_lufs,
        m.true_peak_dbtp
    );
    assert!(
        report["warnings"]
            .to_string()
            .contains("over the -1.0 dBTP ceiling after 1 encode(s)"),
        "{:#}",
        report["warnings"]
    );
    assert!(root.join("out/hats.ogg").is_file());

    // Failed: the job says why, and nothing of it is left in the root.
    let root = root_with(&dir.path().join("fail"), "loud", &pipeline("fail"));
    let out = sluice()
        .args(["run", "loud", "--json", "--root"])
        .arg(&root)
        .arg(&src)
        .output()
        .unwrap();
    assert!(!out.status.success(), "a missed ceiling fails the run");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let job = &v[0];
    assert_eq!(job["state"], "failed", "{job:#}");
    let error = job["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("hats.ogg")
            && error.contains("over the -1.0 dBTP ceiling after 1 encode(s)")
            && error.contains("true_peak_miss"),
        "{error}"
    );
    assert!(
        !root.join("out/hats.ogg").exists(),
        "the failed job's output is removed"
    );
    assert!(!root.join("reports/hats.json").exists(), "and its report");
    assert!(src.is_file(), "the source stays where it was");
}

/// The check's options are checked: a miss cannot fail a check that is off, and the encodes
/// are 1 to 4.
#[test]
fn true_peak_options_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    for (extra, says) in [
        (
            "true_peak_check = false\ntrue_peak_miss = \"fail\"",
            "needs the check",
        ),
        ("true_peak_miss = \"stop\"", "true_peak_miss: warn or fail"),
        (
            "true_peak_encodes = 0",
            "true_peak_encodes: 1 (measure and report only) to 4",
        ),
        (
            "true_peak_encodes = 9",
            "true_peak_encodes: 1 (measure and report only) to 4",
        ),
    ] {
        let root = root_with(
            &dir.path().join(says.replace(' ', "_")),
            "p",
            &format!(
                "name = \"p\"\nwatch = \"inbox\"\n[[step]]\nnormalize = {{ loudness_lufs = -14 }}\n[[output]]\npath = \"out/{{stem}}.mp3\"\n{extra}\n"
            ),
        );
        let text = refused_by_check(&root);
        assert!(
            text.contains(says) && text.contains("p.toml"),
            "{extra}: {text}"
        );
    }
}

/// A channels step after normalize would change the layout the loudness was measured on:
/// `check` refuses it, naming the file, the line and the fix.
#[test]
fn check_refuses_a_channels_step_after_normalize() {
    let dir = tempfile::tempdir().unwrap();
    let root = root_with(
        dir.path(),
        "late",
        "name = \"late\"\nwatch = \"inbox\"\n\n[[step]]\nnormalize = { preset = \"podcast\" }\n\n[[step]]\nchannels = \"mono\"\n\n[[output]]\npath = \"out/{stem}.mp3\"\n",
    );
    let err = refused_by_check(&root);
    assert!(
        err.contains("late.toml:8:")
            && err.contains("channels after normalize")
            && err.contains("move this channels step before the normalize step"),
        "{err}"
    );
}

/// Decoded samples of a file, per channel.
fn samples(path: &Path) -> Vec<Vec<f32>> {
    let mut d = sluice_core::Decoder::open(path).unwrap();
    let mut out: Vec<Vec<f32>> = vec![Vec::new(); d.info().channels as usize];
    while let Some(b) = d.next_block().unwrap() {
        for (o, p) in out.iter_mut().zip(b.planes()) {
            o.extend_from_slice(p);
        }
    }
    out
}

/// The archive example keeps a 16-bit FLAC lossless: 16-bit, the same samples bit for bit, no
/// dither; a pipeline that asks for `bit_depth = 24` gets 24 bits, still exact and undithered.
#[test]
fn the_archive_example_keeps_a_16_bit_flac_bit_exact() {
    let dir = tempfile::tempdir().unwrap();
    let root = root_with_examples(dir.path());
    std::fs::write(
        root.join("pipelines/archive24.toml"),
        "name = \"archive24\"\nwatch = \"inbox/archive24\"\n\n[[output]]\npath = \"archive24/{stem}.flac\"\nbit_depth = 24\n",
    )
    .unwrap();
    // A 16-bit FLAC, made by the core from a 16-bit WAV.
    let wav = dir.path().join("take.wav");
    write_wav(
        &wav,
        &sluice_core::signal::programme(44_100, 2, 44_100 * 4, 3),
        44_100,
        16,
    );
    let src = dir.path().join("take.flac");
    sluice_core::export::export(
        &wav,
        &[],
        &[sluice_core::export::OutputPlan::new(
            src.clone(),
            sluice_core::encode::flac::output(16, 5),
        )],
        &mut |_| {},
    )
    .unwrap();
    let want = samples(&src);
    assert_eq!(want, samples(&wav));
    for (pipeline, out, bits) in [
        (
            "archive",
            "archive/Unknown Artist/Unknown Album/take.flac",
            16,
        ),
        ("archive24", "archive24/take.flac", 24),
    ] {
        let job = run(&root, pipeline, &src);
        let out = root.join(out);
        assert_eq!(sluice_core::probe(&out).unwrap().bit_depth, Some(bits));
        assert!(samples(&out) == want, "{pipeline}: the samples changed");
        let report = std::fs::read_to_string(root.join(job["report"].as_str().unwrap())).unwrap();
        assert!(!report.contains("dither"), "{pipeline}: {report}");
    }
}

/// A pipeline `[[output]]` in Ogg Opus: the registry's codec with its bitrate, resampled to
/// 48 kHz from a 44.1 kHz source, at the normalize target as decoded, `R128_TRACK_GAIN` in its
/// tags (read back through Sluice's own decoder and tag reader).
#[test]
fn a_pipeline_writes_ogg_opus() {
    let dir = tempfile::tempdir().unwrap();
    let root = root_with(
        dir.path(),
        "web",
        "watch = \"in\"\n[[step]]\nnormalize = { loudness_lufs = -18, true_peak_dbtp = -1 }\n\
         [[output]]\npath = \"out/{stem}.opus\"\nbitrate_kbps = 96\n",
    );
    let src = dir.path().join("song.wav");
    master_wav(&src, 10.0);
    let job = run(&root, "web", &src);
    let out = root.join("out/song.opus");
    assert_eq!(job["outputs"][0]["path"], "out/song.opus", "{job:#?}");
    let info = sluice_core::probe(&out).unwrap();
    assert_eq!((info.format, info.sample_rate), ("opus", 48_000));
    let (i, tp) = loudness(&out);
    assert!((i + 18.0).abs() <= 0.2, "{i} LUFS");
    assert!(tp <= -1.0 + 0.05, "{tp} dBTP");
    let gains = sluice_core::replaygain::read(&out).unwrap();
    assert!(
        gains.iter().any(|(k, _)| k == "R128_TRACK_GAIN"),
        "{gains:?}"
    );
}

/// Outputs judged against a delivery specification as written (`qc = "SPEC"`): the verdicts
/// in the job's report beside each output's loudness; an output that fails is delivered with
/// a warning naming the rules it breaks (`qc_fail = "warn"`) or fails the job, which then
/// leaves nothing behind (the default); an unknown specification is refused by `check`.
#[test]
fn outputs_are_judged_against_their_delivery_specification() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("mix.wav");
    master_wav(&src, 10.0);
    let pipeline = |second: &str| {
        format!(
            r#"
name = "deliver"
watch = "inbox"
report = "reports/{{stem}}.json"

[[step]]
normalize = {{ loudness_lufs = -23, true_peak_dbtp = -1 }}

# EBU R 128: -23 LUFS, under -1 dBTP, 48 kHz: passes.
[[output]]
path = "out/{{stem}}.wav"
sample_rate = 48000
bit_depth = 24
qc = "ebu-r128"
qc_report = "reports/{{stem}}.wav.qc.html"

# Apple Podcasts asks for -16 LUFS: -23 fails.
[[output]]
path = "out/{{stem}}.mp3"
qc = "apple-podcasts"
qc_report = "reports/{{stem}}.mp3.qc.html"
{second}
"#
        )
    };
    let root = root_with(
        &dir.path().join("warn"),
        "deliver",
        &pipeline("qc_fail = \"warn\""),
    );
    let job = run(&root, "deliver", &src);
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join(job["report"].as_str().unwrap())).unwrap())
            .unwrap();
    let outputs = report["export"]["outputs"].as_array().unwrap();
    let (wav, mp3) = (&outputs[0]["qc"], &outputs[1]["qc"]);
    assert_eq!(wav["spec"], "ebu-r128", "{wav:#}");
    assert_eq!(wav["passed"], true, "{wav:#}");
    let loud = wav["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["measure"] == "integrated_lufs")
        .unwrap();
    assert!(
        (loud["value"].as_f64().unwrap() + 23.0).abs() <= 0.5,
        "{loud:#}"
    );
    assert_eq!(mp3["passed"], false, "{mp3:#}");
    let warnings = report["warnings"].to_string();
    assert!(
        warnings.contains("mix.mp3: fails Apple Podcasts") && warnings.contains("integrated_lufs"),
        "{warnings}"
    );
    assert!(root.join("out/mix.wav").is_file() && root.join("out/mix.mp3").is_file());
    // Each output's report page beside the job's report, its rows the report's verdicts.
    for (name, qc, passed) in [("wav", wav, true), ("mp3", mp3, false)] {
        let page = std::fs::read_to_string(root.join(format!("reports/mix.{name}.qc.html")))
            .unwrap_or_else(|e| panic!("the {name} page: {e}"));
        assert!(
            page.contains(&format!("data-passed=\"{passed}\"")),
            "{name}: the page's verdict"
        );
        for v in qc["verdicts"].as_array().unwrap() {
            let row = format!(
                "data-measure=\"{}\" data-value=\"{}\" data-outcome=\"{}\"",
                v["measure"].as_str().unwrap(),
                v["value"].as_f64().map_or_else(
                    || v["value"].as_str().unwrap_or("").to_string(),
                    |x| x.to_string()
                ),
                v["outcome"].as_str().unwrap()
            );
            assert!(page.contains(&row), "{name}: {row}");
        }
    }

    // The default: the job fails, naming the output and the rule, and leaves nothing.
    let root = root_with(&dir.path().join("fail"), "deliver", &pipeline(""));
    let out = sluice()
        .args(["run", "deliver", "--json", "--root"])
        .arg(&root)
        .arg(&src)
        .output()
        .unwrap();
    assert!(!out.status.success(), "a failed QC fails the run");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["state"], "failed", "{v:#}");
    let error = v[0]["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("mix.mp3") && error.contains("integrated_lufs") && error.contains("qc_fail"),
        "{error}"
    );
    assert!(!root.join("out/mix.wav").exists() && !root.join("out/mix.mp3").exists());
    assert!(!root.join("reports/mix.json").exists());
    assert!(
        !root.join("reports/mix.wav.qc.html").exists()
            && !root.join("reports/mix.mp3.qc.html").exists(),
        "a failed job keeps no page (its error names the rules)"
    );
    assert!(src.is_file(), "the source stays where it was");

    // Set aside: the outputs removed, the source in quarantine with the verdicts beside it.
    let root = root_with(
        &dir.path().join("aside"),
        "deliver",
        &pipeline("qc_fail = \"quarantine\""),
    );
    std::fs::create_dir_all(root.join("inbox")).unwrap();
    let dropped = root.join("inbox/mix.wav");
    std::fs::copy(&src, &dropped).unwrap();
    let out = sluice()
        .args(["run", "deliver", "--json", "--root"])
        .arg(&root)
        .arg(&dropped)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["state"], "quarantined", "{v:#}");
    assert!(!root.join("out/mix.wav").exists() && !root.join("out/mix.mp3").exists());
    // In the quarantine's qc/ folder, apart from sources that could not be read.
    let error = std::fs::read_to_string(root.join("failed/deliver/qc/mix.wav.error.json")).unwrap();
    assert!(
        error.contains("fails Apple Podcasts") && error.contains("quarantine"),
        "{error}"
    );
    assert!(root.join("failed/deliver/qc/mix.wav").is_file() && !dropped.exists());
    assert!(!root.join("failed/deliver/mix.wav").exists());

    // An unknown specification, and qc_fail without qc: refused with the line.
    let bad = root_with(
        &dir.path().join("bad"),
        "deliver",
        "name = \"deliver\"\nwatch = \"inbox\"\n[[output]]\npath = \"out/{stem}.wav\"\nqc = \"no-such\"\n[[output]]\npath = \"out/{stem}.flac\"\nqc_fail = \"warn\"\n[[output]]\npath = \"out/{stem}.ogg\"\nqc = \"ebu-r128\"\nqc_report = \"reports/{stem}.pdf\"\n",
    );
    let text = refused_by_check(&bad);
    assert!(
        text.contains("deliver.toml:5") && text.contains("no-such"),
        "{text}"
    );
    assert!(
        text.contains("deliver.toml:8") && text.contains("qc_fail belongs"),
        "{text}"
    );
    assert!(
        text.contains("deliver.toml:12") && text.contains("qc_report: a path ending in .html"),
        "{text}"
    );
}

/// A pipeline's own delivery specification (`[[qc_spec]]`, the format of docs/QC.md): an
/// output judged against it by id, its verdicts in the report under its id; a broken one, one
/// that takes a built-in's id and a `qc` naming neither are refused by `check` with the line.
#[test]
fn a_pipeline_judges_outputs_against_a_specification_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("mix.wav");
    master_wav(&src, 10.0);
    let root = root_with(
        &dir.path().join("own"),
        "house",
        r#"
name = "house"
watch = "inbox"
report = "reports/{stem}.json"

[[step]]
normalize = { loudness_lufs = -20, true_peak_dbtp = -2 }

[[qc_spec]]
id = "house-radio"
name = "Our station's delivery"
source = "House rules, 2026 edition"

[[qc_spec.rule]]
measure = "integrated_lufs"
target = -20.0
tolerance = 0.5

[[qc_spec.rule]]
measure = "true_peak_dbtp"
max = -1.5

[[qc_spec.rule]]
measure = "sample_rate_hz"
one_of = [44100]
severity = "warn"

[[output]]
path = "out/{stem}.flac"
sample_rate = 48000
qc = "house-radio"
"#,
    );
    let job = run(&root, "house", &src);
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join(job["report"].as_str().unwrap())).unwrap())
            .unwrap();
    let qc = &report["export"]["outputs"][0]["qc"];
    assert_eq!(qc["spec"], "house-radio", "{qc:#}");
    assert_eq!(qc["spec_name"], "Our station's delivery", "{qc:#}");
    assert_eq!(qc["passed"], true, "a warning does not fail it: {qc:#}");
    let outcome = |m: &str| {
        qc["verdicts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["measure"] == m)
            .unwrap_or_else(|| panic!("no {m} verdict: {qc:#}"))["outcome"]
            .clone()
    };
    assert_eq!(outcome("integrated_lufs"), "pass");
    assert_eq!(outcome("true_peak_dbtp"), "pass");
    assert_eq!(outcome("sample_rate_hz"), "warn", "48 kHz against 44.1");

    let bad = root_with(
        &dir.path().join("bad"),
        "house",
        r#"name = "house"
watch = "inbox"
[[qc_spec]]
id = "broken"
name = "n"
source = "s"
[[qc_spec.rule]]
measure = "true_peak_dbtp"
[[qc_spec]]
id = "Netflix"
name = "n"
source = "s"
[[qc_spec.rule]]
measure = "true_peak_dbtp"
max = -2.0
[[output]]
path = "out/{stem}.wav"
qc = "nobody"
"#,
    );
    let text = refused_by_check(&bad);
    assert!(
        text.contains("house.toml:3") && text.contains("rule 1 (true_peak_dbtp)"),
        "{text}"
    );
    assert!(
        text.contains("house.toml:9") && text.contains("is taken"),
        "{text}"
    );
    assert!(
        text.contains("house.toml:18") && text.contains("nobody") && text.contains("ebu-r128"),
        "{text}"
    );
}

/// `sluice run` leaves the files it is given where they are (as its help says): one that
/// cannot be read fails its job but is not moved into the root's quarantine (a text file, noise
/// named `.wav`, an empty file were moved from wherever they were, `/etc/passwd` included); a
/// FIFO or a device is refused at once, naming it (the run blocked on the FIFO for ever and
/// read `/dev/zero` without end).
#[test]
fn sluice_run_never_moves_or_hangs_on_what_it_is_given() {
    let dir = tempfile::tempdir().unwrap();
    let root = root_with_examples(dir.path());
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let files = [
        ("notes.txt", b"some notes\n".to_vec()),
        (
            "noise.wav",
            (0..3000u32).map(|i| (i * 7919 % 251) as u8).collect(),
        ),
        ("empty.flac", Vec::new()),
    ];
    for (name, bytes) in &files {
        std::fs::write(elsewhere.join(name), bytes).unwrap();
    }
    let fifo = elsewhere.join("pipe.wav");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let mut cmd = sluice();
    cmd.args(["run", "archive", "--json", "--root"]).arg(&root);
    for (name, _) in &files {
        cmd.arg(elsewhere.join(name));
    }
    cmd.arg(&fifo).arg("/dev/zero");
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t.elapsed() > std::time::Duration::from_secs(60) {
            child.kill().unwrap();
            panic!("sluice run hung");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{text}");
    for (name, bytes) in &files {
        assert_eq!(
            std::fs::read(elsewhere.join(name)).ok().as_ref(),
            Some(bytes),
            "{name} was moved or changed: {text}"
        );
    }
    assert!(
        common::files_under(&root.join("failed")).is_empty(),
        "{:?}",
        common::files_under(&root.join("failed"))
    );
    assert!(
        text.contains("pipe.wav: not a regular file")
            && text.contains("/dev/zero: not a regular file"),
        "{text}"
    );
}
