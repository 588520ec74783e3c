//! `sluice qc` against every built-in delivery specification, on material made here: for each,
//! a file that passes (made by `sluice export` at the specification's target) and files that
//! break each kind of rule it has (loudness off target or out of range, a true peak over the
//! ceiling, too loud in the short term, the wrong rate, depth or codec, too wide a range),
//! with the verdict of each rule and the exit code; and a custom specification's file.

mod common;

use common::{sluice, write_wav};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// `sluice qc --json` on `file` against `spec`: the exit code and the file's report.
fn qc(file: &Path, spec: &str) -> (i32, Value) {
    let o = sluice()
        .arg("qc")
        .arg(file)
        .args(["--spec", spec, "--json"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
    let code = o.status.code().unwrap_or(-1);
    assert!(
        code == 0 || code == 1,
        "{spec} {}: exit {code}: {}",
        file.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    (code, v[0].clone())
}

/// The outcome of `measure`'s rule in a report.
fn outcome(report: &Value, measure: &str) -> String {
    report["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["measure"] == measure)
        .map(|v| v["outcome"].as_str().unwrap().to_string())
        .unwrap_or_else(|| panic!("no rule on {measure}: {report:#}"))
}

struct Material {
    dir: PathBuf,
    /// 30 s of programme material, 48 kHz 24-bit stereo.
    src: PathBuf,
    /// The same with a 4 s burst 12 dB louder in the middle.
    burst: PathBuf,
    /// 15 s, then 15 s 18 dB quieter.
    wide: PathBuf,
}

impl Material {
    fn new(dir: &Path) -> Material {
        let rate = 48_000;
        let frames = 30 * rate as usize;
        let planes = sluice_core::signal::programme(rate, 2, frames, 7);
        let src = dir.join("src.wav");
        write_wav(&src, &planes, rate, 24);
        let shaped = |gain: &dyn Fn(usize) -> f32| -> Vec<Vec<f32>> {
            planes
                .iter()
                .map(|p| p.iter().enumerate().map(|(i, v)| v * gain(i)).collect())
                .collect()
        };
        let burst = dir.join("burst.wav");
        let quiet = 10f32.powf(-12.0 / 20.0);
        write_wav(
            &burst,
            &shaped(&|i| {
                if (13 * rate as usize..17 * rate as usize).contains(&i) {
                    1.0
                } else {
                    quiet
                }
            }),
            rate,
            24,
        );
        let wide = dir.join("wide.wav");
        let low = 10f32.powf(-18.0 / 20.0);
        write_wav(
            &wide,
            &shaped(&|i| if i < frames / 2 { 1.0 } else { low }),
            rate,
            24,
        );
        Material {
            dir: dir.to_path_buf(),
            src,
            burst,
            wide,
        }
    }

    /// `src` exported to `name` at `lufs` under a `tp` ceiling, with more export options.
    fn export(&self, src: &Path, name: &str, lufs: f64, tp: f64, extra: &[&str]) -> PathBuf {
        let out = self.dir.join(name);
        common::succeed(
            sluice()
                .arg("export")
                .arg(src)
                .arg("-o")
                .arg(&out)
                .args(["--normalize-lufs", &lufs.to_string()])
                .args(["--true-peak", &tp.to_string()])
                .args(extra)
                .arg("--overwrite"),
        );
        out
    }

    /// A copy of the 24-bit WAV `path` with one sample at -0.1 dBFS: a true peak over any
    /// ceiling, the loudness unchanged.
    fn spiked(&self, path: &Path) -> PathBuf {
        self.spiked_at(path, -0.1)
    }

    /// A copy of the 24-bit WAV `path` with one sample at `dbfs` (an isolated sample's true
    /// peak is its own level).
    fn spiked_at(&self, path: &Path, dbfs: f64) -> PathBuf {
        let mut r = hound::WavReader::open(path).unwrap();
        let spec = r.spec();
        let mut s: Vec<i32> = r.samples::<i32>().map(Result::unwrap).collect();
        s[spec.channels as usize * 48_000 * 10] = (8_388_607.0 * 10f64.powf(dbfs / 20.0)) as i32;
        let out = self.dir.join(format!(
            "spiked{dbfs}-{}",
            path.file_name().unwrap().to_string_lossy()
        ));
        let mut w = hound::WavWriter::create(&out, spec).unwrap();
        for v in s {
            w.write_sample(v).unwrap();
        }
        w.finalize().unwrap();
        out
    }
}

/// Asserts that `file` gets `exit` from `spec` and each listed rule the listed outcome.
fn expect(file: &Path, spec: &str, exit: i32, outcomes: &[(&str, &str)]) {
    let (code, report) = qc(file, spec);
    for (measure, want) in outcomes {
        assert_eq!(
            outcome(&report, measure),
            *want,
            "{spec} {}: {measure}: {report:#}",
            file.display()
        );
    }
    assert_eq!(code, exit, "{spec} {}: {report:#}", file.display());
    assert_eq!(report["passed"], exit == 0, "{report:#}");
}

#[test]
fn broadcast_specifications_pass_and_fail_as_their_rules_say() {
    let t = tempfile::tempdir().unwrap();
    let m = Material::new(t.path());
    // EBU R 128: -23 ± 0.5, TP -1, 48 kHz (a warning).
    let ok = m.export(&m.src, "r128.wav", -23.0, -2.0, &[]);
    let all_pass = [
        ("integrated_lufs", "pass"),
        ("true_peak_dbtp", "pass"),
        ("sample_rate_hz", "pass"),
    ];
    expect(&ok, "ebu-r128", 0, &all_pass);
    let loud = m.export(&m.src, "r128-loud.wav", -21.5, -2.0, &[]);
    expect(&loud, "ebu-r128", 1, &[("integrated_lufs", "fail")]);
    let spiked = m.spiked(&ok);
    expect(&spiked, "ebu-r128", 1, &[("true_peak_dbtp", "fail")]);
    // The spike's time and level among the true-peak events over the ceiling.
    let (_, report) = qc(&spiked, "ebu-r128");
    let events = report["true_peak_events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(
        (events[0]["start_s"].as_f64().unwrap() - 10.0).abs() < 1e-6,
        "{events:?}"
    );
    assert!(
        (events[0]["peak_dbtp"].as_f64().unwrap() + 0.1).abs() < 0.05,
        "{events:?}"
    );
    let (_, report) = qc(&ok, "ebu-r128");
    assert_eq!(report["true_peak_events"], serde_json::json!([]));
    let cd = m.export(
        &m.src,
        "r128-441.wav",
        -23.0,
        -2.0,
        &["--sample-rate", "44100"],
    );
    expect(&cd, "ebu-r128", 0, &[("sample_rate_hz", "warn")]);
    // R 128 s1: the same, and short-term loudness at most -18 LUFS.
    expect(&ok, "ebu-r128-s1", 0, &[("max_short_term_lufs", "pass")]);
    let burst = m.export(&m.burst, "s1-burst.wav", -23.0, -1.0, &[]);
    expect(
        &burst,
        "ebu-r128-s1",
        1,
        &[("integrated_lufs", "pass"), ("max_short_term_lufs", "fail")],
    );
    expect(&loud, "ebu-r128-s1", 1, &[("integrated_lufs", "fail")]);
    expect(
        &m.spiked(&ok),
        "ebu-r128-s1",
        1,
        &[("true_peak_dbtp", "fail")],
    );
    // ATSC A/85 (BS.1770-3): -24 ± 2, TP -2.
    let a85 = m.export(&m.src, "a85.wav", -24.0, -3.0, &[]);
    expect(&a85, "atsc-a85", 0, &[("integrated_lufs", "pass")]);
    let quiet = m.export(&m.src, "a85-quiet.wav", -26.5, -3.0, &[]);
    expect(&quiet, "atsc-a85", 1, &[("integrated_lufs", "fail")]);
    // A true peak of -1.5 dBTP: under R 128's ceiling, over A/85's.
    let hot = m.spiked_at(&a85, -1.5);
    expect(&hot, "atsc-a85", 1, &[("true_peak_dbtp", "fail")]);
    expect(&hot, "ebu-r128", 1, &[("true_peak_dbtp", "pass")]);
    // ARIB TR-B32: -24 ± 1, TP -1, 48 kHz.
    expect(&a85, "arib-tr-b32", 0, &[("sample_rate_hz", "pass")]);
    expect(&quiet, "arib-tr-b32", 1, &[("integrated_lufs", "fail")]);
    expect(
        &m.spiked(&a85),
        "arib-tr-b32",
        1,
        &[("true_peak_dbtp", "fail")],
    );
    let cd = m.export(
        &m.src,
        "arib-441.wav",
        -24.0,
        -3.0,
        &["--sample-rate", "44100"],
    );
    expect(&cd, "arib-tr-b32", 1, &[("sample_rate_hz", "fail")]);
    // OP-59: -24 ± 1, TP -2.
    expect(&a85, "op-59", 0, &[("integrated_lufs", "pass")]);
    let loud = m.export(&m.src, "op59-loud.wav", -22.5, -3.0, &[]);
    expect(&loud, "op-59", 1, &[("integrated_lufs", "fail")]);
    expect(&hot, "op-59", 1, &[("true_peak_dbtp", "fail")]);
}

#[test]
fn streaming_and_podcast_specifications_pass_and_fail_as_their_rules_say() {
    let t = tempfile::tempdir().unwrap();
    let m = Material::new(t.path());
    // Spotify, YouTube, Amazon Music: louder than -14 is a warning (turned down), the true
    // peak a failure.
    let ok = m.export(&m.src, "music.wav", -16.0, -3.0, &[]);
    let loud = m.export(&m.src, "music-loud.wav", -11.0, -2.5, &[]);
    for spec in ["spotify", "youtube", "amazon-music"] {
        expect(
            &ok,
            spec,
            0,
            &[("integrated_lufs", "pass"), ("true_peak_dbtp", "pass")],
        );
        expect(&loud, spec, 0, &[("integrated_lufs", "warn")]);
        expect(&m.spiked(&ok), spec, 1, &[("true_peak_dbtp", "fail")]);
    }
    // Amazon's ceiling is -2 dBTP: -1.5 fails there only.
    let edge = m.spiked_at(&ok, -1.5);
    expect(&edge, "spotify", 0, &[("true_peak_dbtp", "pass")]);
    expect(&edge, "amazon-music", 1, &[("true_peak_dbtp", "fail")]);
    // AES TD1004: -20 to -16 LUFS, TP -1.
    let mid = m.export(&m.src, "td1004.wav", -18.0, -2.0, &[]);
    expect(&mid, "aes-td1004", 0, &[("integrated_lufs", "pass")]);
    let low = m.export(&m.src, "td1004-low.wav", -21.0, -2.0, &[]);
    expect(&low, "aes-td1004", 1, &[("integrated_lufs", "fail")]);
    let high = m.export(&m.src, "td1004-high.wav", -15.0, -2.0, &[]);
    expect(&high, "aes-td1004", 1, &[("integrated_lufs", "fail")]);
    expect(
        &m.spiked(&mid),
        "aes-td1004",
        1,
        &[("true_peak_dbtp", "fail")],
    );
    // Apple Podcasts: -16 ± 1, TP -1, MP3 or AAC (a warning).
    let mp3 = m.export(&m.src, "episode.mp3", -16.0, -2.0, &[]);
    expect(
        &mp3,
        "apple-podcasts",
        0,
        &[
            ("integrated_lufs", "pass"),
            ("true_peak_dbtp", "pass"),
            ("codec", "pass"),
        ],
    );
    let wav = m.export(&m.src, "episode.wav", -16.0, -2.0, &[]);
    expect(&wav, "apple-podcasts", 0, &[("codec", "warn")]);
    let quiet = m.export(&m.src, "episode-quiet.mp3", -18.5, -2.0, &[]);
    expect(&quiet, "apple-podcasts", 1, &[("integrated_lufs", "fail")]);
    expect(
        &m.spiked(&wav),
        "apple-podcasts",
        1,
        &[("true_peak_dbtp", "fail")],
    );
}

/// A minute of dialogue: espeak-ng reading sentences (with its pauses), a 22.05 kHz WAV.
fn dialogue(espeak: &Path, dir: &Path) -> PathBuf {
    let out = dir.join("dialogue.wav");
    let text = "The birch canoe slid on the smooth planks. Glue the sheet to the dark blue \
        background. It is easy to tell the depth of a well. These days a chicken leg is a rare \
        dish. Rice is often served in round bowls. The juice of lemons makes fine punch. The box \
        was thrown beside the parked truck. Four hours of steady work faced us.";
    common::succeed(
        std::process::Command::new(espeak)
            .args(["-v", "en-us", "-s", "160", "-w"])
            .arg(&out)
            .arg(text),
    );
    out
}

/// Netflix and AES TD1008 gate loudness on speech: Sluice's detector finds the dialogue, the
/// rule judges its loudness, the report gives the share of speech; music alone has no
/// dialogue to measure, which such a specification cannot pass.
#[test]
fn speech_gated_specifications_measure_the_dialogue() {
    let Some(espeak) = common::tool("espeak-ng") else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let m = Material::new(t.path());
    let speech = dialogue(&espeak, t.path());
    let film_args = ["--sample-rate", "48000", "--bit-depth", "24"];
    let ok = m.export(&speech, "film.wav", -27.0, -3.0, &film_args);
    expect(
        &ok,
        "netflix",
        0,
        &[
            ("integrated_lufs", "pass"),
            ("true_peak_dbtp", "pass"),
            ("sample_rate_hz", "pass"),
            ("bit_depth", "pass"),
        ],
    );
    let (_, report) = qc(&ok, "netflix");
    let share = report["measured"]["speech_share"].as_f64().unwrap();
    assert!((0.6..=1.0).contains(&share), "speech share {share}");
    assert!(
        !report["measured"]["speech_segments"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let loud = m.export(&speech, "film-loud.wav", -21.0, -1.0, &film_args);
    expect(&loud, "netflix", 1, &[("integrated_lufs", "fail")]);
    let cd = m.export(
        &speech,
        "film-16.wav",
        -27.0,
        -3.0,
        &["--sample-rate", "44100", "--bit-depth", "16"],
    );
    expect(
        &cd,
        "netflix",
        1,
        &[
            ("integrated_lufs", "pass"),
            ("sample_rate_hz", "fail"),
            ("bit_depth", "fail"),
        ],
    );
    expect(&m.spiked(&ok), "netflix", 1, &[("true_peak_dbtp", "fail")]);
    let score = m.export(&m.src, "score.wav", -27.0, -3.0, &[]);
    expect(&score, "netflix", 1, &[("integrated_lufs", "not_measured")]);
    let talk = m.export(&speech, "talk.wav", -18.0, -2.0, &film_args);
    expect(
        &talk,
        "aes-td1008",
        0,
        &[("integrated_lufs", "pass"), ("loudness_range_lu", "pass")],
    );
    let wide = m.export(&m.wide, "talk-wide.wav", -18.0, -2.0, &[]);
    expect(&wide, "aes-td1008", 1, &[("loudness_range_lu", "warn")]);
}

/// A specification of one's own: every rule kind the built-ins lack (sample peak, PLR, DC,
/// clipping, silence at the ends, channels, duration, BS.1770-1), and the errors a bad file
/// or specification gets (exit 2, named).
#[test]
fn a_custom_specification_judges_every_kind_of_rule() {
    let t = tempfile::tempdir().unwrap();
    let rate = 48_000;
    // 1 s of silence, 8 s of programme, 1 s of silence; a DC offset of 0.01 on the left.
    let mut planes = sluice_core::signal::programme(rate, 2, 8 * rate as usize, 3);
    for (c, p) in planes.iter_mut().enumerate() {
        let dc = if c == 0 { 0.01 } else { 0.0 };
        let mut v = vec![0.0f32; rate as usize];
        v.extend(p.iter().map(|x| x * 0.5 + dc));
        v.extend(vec![0.0f32; rate as usize]);
        *p = v;
    }
    let file = t.path().join("custom.wav");
    write_wav(&file, &planes, rate, 24);
    let spec = t.path().join("house.toml");
    std::fs::write(
        &spec,
        r#"id = "house"
name = "House rules"
source = "Our own delivery note, 2026"
[[rule]]
measure = "sample_peak_dbfs"
max = -0.5
[[rule]]
measure = "plr_lu"
min = 25.0
[[rule]]
measure = "dc_offset_dbfs"
max = -60.0
[[rule]]
measure = "clipped_samples"
max = 0
[[rule]]
measure = "leading_silence_s"
max = 0.5
threshold_dbfs = -70.0
[[rule]]
measure = "trailing_silence_s"
max = 2.0
[[rule]]
measure = "channels"
one_of = [2]
[[rule]]
measure = "duration_s"
min = 9.5
max = 10.5
[[rule]]
measure = "integrated_lufs"
max = -5.0
revision = 1
"#,
    )
    .unwrap();
    let (code, report) = qc(&file, spec.to_str().unwrap());
    for (measure, want) in [
        ("sample_peak_dbfs", "pass"),
        ("plr_lu", "fail"),
        ("dc_offset_dbfs", "fail"),
        ("clipped_samples", "pass"),
        ("leading_silence_s", "fail"),
        ("trailing_silence_s", "pass"),
        ("channels", "pass"),
        ("duration_s", "pass"),
        ("integrated_lufs", "pass"),
    ] {
        assert_eq!(outcome(&report, measure), want, "{measure}: {report:#}");
    }
    assert_eq!(code, 1);
    // BS.1770-1 counts the silent ends that the gates of -4 drop: 10 s against 8 s.
    let gated = report["measured"]["integrated_lufs"].as_f64().unwrap();
    let ungated = report["verdicts"][8]["value"].as_f64().unwrap();
    let want = gated + 10.0 * (8.0f64 / 10.0).log10();
    assert!((ungated - want).abs() < 0.3, "{ungated} against {want}");
    // A bad specification, a missing one, a file that is not audio: exit 2, named.
    std::fs::write(
        t.path().join("bad.toml"),
        "id = \"x\"\nname = \"x\"\nsource = \"x\"\n[[rule]]\nmeasure = \"true_peak_dbtp\"\n",
    )
    .unwrap();
    let junk = t.path().join("junk.wav");
    std::fs::write(&junk, b"not audio at all").unwrap();
    for (args, says) in [
        (
            vec![
                file.to_str().unwrap(),
                "--spec",
                t.path().join("bad.toml").to_str().unwrap(),
            ],
            "bad.toml",
        ),
        (
            vec![file.to_str().unwrap(), "--spec", "no-such-spec"],
            "no-such-spec",
        ),
        (
            vec![junk.to_str().unwrap(), "--spec", "ebu-r128"],
            "junk.wav",
        ),
    ] {
        let o = sluice().arg("qc").args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
    // The history CSV: one line per 100 ms.
    let csv_dir = t.path().join("csv");
    let o = sluice()
        .arg("qc")
        .arg(&file)
        .args(["--spec", "ebu-r128", "--csv"])
        .arg(&csv_dir)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let csv = std::fs::read_to_string(csv_dir.join("custom.wav.qc.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "time_s,momentary_lufs,short_term_lufs,true_peak_dbtp,over_ceiling"
    );
    assert_eq!(lines.len(), 1 + 100, "{}", lines.len());
    assert!(lines[50].starts_with("5.0,-"), "{}", lines[50]);
    // In the silence at the start: no loudness, no peak, not over.
    assert_eq!(lines[5], "0.5,,,,0");
    assert!(lines[50].ends_with(",0"), "{}", lines[50]);
}

/// The value of `attr="..."` in `tag`.
fn attr<'a>(tag: &'a str, attr: &str) -> Option<&'a str> {
    let at = tag.find(&format!(" {attr}=\""))? + attr.len() + 3;
    tag[at..].split('"').next()
}

/// The HTML report opens in headless Chromium (as a screenshot and printed to PDF), and the
/// page Chromium parsed carries the JSON report's figures: each rule's value and verdict, the
/// file's verdict, the true-peak events.
#[test]
fn the_html_report_opens_in_chromium_with_the_json_figures() {
    let Some(chromium) = common::tool("chromium") else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let m = Material::new(t.path());
    let file = m.spiked(&m.export(&m.burst, "burst-23.wav", -23.0, -1.0, &[]));
    let reports = t.path().join("reports");
    let o = sluice()
        .arg("qc")
        .arg(&file)
        .args(["--spec", "ebu-r128", "--json", "--html"])
        .arg(&reports)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let json: Value = serde_json::from_slice(&o.stdout).unwrap();
    let report = &json[0];
    let name = file.file_name().unwrap().to_string_lossy().to_string();
    let page = reports.join(format!("{name}.qc.html"));
    let url = format!("file://{}", page.display());
    let headless = [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
    ];
    let dom = common::succeed(
        std::process::Command::new(&chromium)
            .args(headless)
            .arg("--dump-dom")
            .arg(&url),
    );
    let dom = String::from_utf8_lossy(&dom.stdout).to_string();
    assert!(dom.contains(&name), "the page names the file");
    let rows: Vec<&str> = dom
        .split("<tr ")
        .filter(|r| r.contains("data-measure=\""))
        .collect();
    let verdicts = report["verdicts"].as_array().unwrap();
    assert_eq!(rows.len(), verdicts.len(), "a row per rule");
    for (row, v) in rows.iter().zip(verdicts) {
        let measure = v["measure"].as_str().unwrap();
        assert_eq!(attr(row, "data-measure"), Some(measure));
        assert_eq!(
            attr(row, "data-outcome"),
            v["outcome"].as_str(),
            "{measure}"
        );
        let shown = attr(row, "data-value").unwrap();
        match &v["value"] {
            Value::Number(n) => assert_eq!(
                shown.parse::<f64>().ok(),
                n.as_f64(),
                "{measure}: the page says {shown}, the JSON {n}"
            ),
            Value::String(s) => assert_eq!(shown, s, "{measure}"),
            _ => assert_eq!(shown, "", "{measure}"),
        }
    }
    let passed = report["passed"].as_bool().unwrap();
    assert!(dom.contains(&format!("data-passed=\"{passed}\"")));
    let events = report["true_peak_events"].as_array().unwrap().len();
    assert!(events >= 1, "the spike is an event");
    assert!(dom.contains(&format!("id=\"events\" data-count=\"{events}\"")));
    assert!(dom.contains("id=\"history\"") && dom.contains("id=\"histogram\""));
    assert!(dom.contains(report["source"].as_str().unwrap()) || dom.contains("EBU R 128"));
    // A screenshot of the page, and the page printed to PDF.
    let png = t.path().join("report.png");
    common::succeed(
        std::process::Command::new(&chromium)
            .args(headless)
            .arg(format!("--screenshot={}", png.display()))
            .arg("--window-size=1100,1600")
            .arg(&url),
    );
    let shot = std::fs::read(&png).unwrap();
    assert!(shot.starts_with(b"\x89PNG"), "a PNG");
    let width = u32::from_be_bytes([shot[16], shot[17], shot[18], shot[19]]);
    assert_eq!(width, 1100);
    // A blank page compresses to a few kilobytes; the charts and tables do not.
    assert!(shot.len() > 40_000, "{} bytes", shot.len());
    let pdf = t.path().join("report.pdf");
    common::succeed(
        std::process::Command::new(&chromium)
            .args(headless)
            .arg(format!("--print-to-pdf={}", pdf.display()))
            .arg("--no-pdf-header-footer")
            .arg(&url),
    );
    assert!(std::fs::read(&pdf).unwrap().starts_with(b"%PDF"));
}

/// `sluice qc ARGS` with a minute's deadline and a 1 GiB address space (when `prlimit` is
/// there): the exit code and stderr.
fn qc_bounded(args: &[&str]) -> (Option<i32>, String) {
    let mut c = if common::tool("prlimit").is_some() {
        let mut c = std::process::Command::new("prlimit");
        c.arg("--as=1073741824")
            .arg("--")
            .arg(env!("CARGO_BIN_EXE_sluice"));
        c
    } else {
        sluice()
    };
    let mut child = c
        .arg("qc")
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            use std::io::Read;
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            return (status.code(), err);
        }
        if start.elapsed().as_secs() > 60 {
            let _ = child.kill();
            panic!("sluice qc {args:?} still running after a minute");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Specifications that are not files (a device that never ends, a FIFO nobody writes, a
/// folder) or hold a number that is not one, and report folders that are not folders: exit 2
/// with the path named, promptly, in bounded memory; a report's name that is a symlink is
/// replaced, never written through.
#[test]
fn hostile_specifications_and_report_folders_are_refused_clearly() {
    let t = tempfile::tempdir().unwrap();
    let m = Material::new(t.path());
    let file = m.export(&m.src, "ok.wav", -23.0, -1.0, &[]);
    let shown = file.to_str().unwrap();
    let fifo = t.path().join("spec.fifo");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    let nan = t.path().join("nan.toml");
    std::fs::write(
        &nan,
        "id = \"x\"\nname = \"x\"\nsource = \"x\"\n[[rule]]\nmeasure = \"true_peak_dbtp\"\nmax = nan\n",
    )
    .unwrap();
    let mut specs = vec![
        "/dev/zero".to_string(),
        "/dev/urandom".to_string(),
        t.path().display().to_string(),
        nan.display().to_string(),
    ];
    if made.is_ok_and(|s| s.success()) {
        specs.push(fifo.display().to_string());
    }
    for spec in &specs {
        let (code, err) = qc_bounded(&[shown, "--spec", spec]);
        assert_eq!(code, Some(2), "--spec {spec}: {err}");
        assert!(err.contains(spec.as_str()), "--spec {spec}: {err}");
    }
    // A report folder that is a file.
    let not_dir = t.path().join("not-a-folder");
    std::fs::write(&not_dir, b"keep me").unwrap();
    for flag in ["--csv", "--html"] {
        let (code, err) =
            qc_bounded(&[shown, "--spec", "ebu-r128", flag, not_dir.to_str().unwrap()]);
        assert_eq!(code, Some(2), "{flag}: {err}");
        assert!(err.contains("not-a-folder"), "{flag}: {err}");
        assert_eq!(std::fs::read(&not_dir).unwrap(), b"keep me");
    }
    // A report name planted as a symlink to a file elsewhere: replaced, the target untouched.
    let reports = t.path().join("reports");
    std::fs::create_dir(&reports).unwrap();
    let victim = t.path().join("victim.txt");
    std::fs::write(&victim, b"precious").unwrap();
    for ext in ["csv", "html"] {
        std::os::unix::fs::symlink(&victim, reports.join(format!("ok.wav.qc.{ext}"))).unwrap();
    }
    let r = reports.to_str().unwrap();
    let (code, err) = qc_bounded(&[shown, "--spec", "ebu-r128", "--csv", r, "--html", r]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    for ext in ["csv", "html"] {
        let p = reports.join(format!("ok.wav.qc.{ext}"));
        assert!(
            !p.symlink_metadata().unwrap().file_type().is_symlink(),
            "{ext}"
        );
        assert!(std::fs::read_to_string(&p).unwrap().len() > 100, "{ext}");
    }
}

/// A file name and a specification written to break out of the HTML report (the HTTP route
/// puts the client's file name there): shown as text, never as markup.
#[test]
fn the_html_report_shows_hostile_names_as_text() {
    let t = tempfile::tempdir().unwrap();
    let m = Material::new(t.path());
    let evil = "x<script>alert(1)<script>\"'&.wav";
    let file = m.export(&m.src, evil, -23.0, -1.0, &[]);
    let spec = t.path().join("evil.toml");
    std::fs::write(
        &spec,
        "id = \"e<img src=x onerror=alert(2)>\"\nname = \"</title><script>alert(3)</script>\"\nsource = \"<iframe>\"\nurl = \"javascript:alert(4)\\\"><b>\"\n[[rule]]\nmeasure = \"true_peak_dbtp\"\nmax = 0.0\nnote = \"<b>bold</b>\"\n",
    )
    .unwrap();
    let reports = t.path().join("reports");
    let o = sluice()
        .arg("qc")
        .arg(&file)
        .arg("--spec")
        .arg(&spec)
        .arg("--html")
        .arg(&reports)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let page = std::fs::read_to_string(reports.join(format!("{evil}.qc.html"))).unwrap();
    for markup in [
        "<script>alert",
        "<img src=x",
        "</title><script>",
        "<iframe>",
        "<b>bold",
        "\"><b>",
    ] {
        assert!(!page.contains(markup), "{markup} got into the page");
    }
    assert!(page.contains("x&lt;script&gt;alert(1)&lt;script&gt;&quot;&#39;&amp;.wav"));
    assert_eq!(page.matches("<script").count(), 0, "no script at all");
    assert!(!page.contains("href=\"javascript"), "no javascript: link");
}

/// `sluice qc` killed (SIGKILL) at any moment leaves no report half-written under its name;
/// a temporary a killed run left in a report folder (its process gone) is swept by the next
/// run, which writes whole reports.
#[test]
fn a_killed_qc_leaves_no_half_report_and_the_next_run_sweeps_its_temporaries() {
    let t = tempfile::tempdir().unwrap();
    let rate = 48_000;
    let file = t.path().join("long take.wav");
    let planes = sluice_core::signal::programme(rate, 2, 240 * rate as usize, 3);
    write_wav(&file, &planes, rate, 24);
    let reports = t.path().join("reports");
    let whole = |p: &Path| {
        let text = std::fs::read_to_string(p).unwrap();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".html") {
            assert!(text.ends_with("</body></html>\n"), "{name}: cut short");
        } else if name.ends_with(".csv") {
            let rows = text.lines().count();
            assert!(text.ends_with('\n') && rows == 2401, "{name}: {rows} rows");
        } else {
            panic!("{name}: not a report");
        }
    };
    let run = || {
        sluice()
            .arg("qc")
            .arg(&file)
            .args(["--spec", "ebu-r128", "--csv"])
            .arg(&reports)
            .arg("--html")
            .arg(&reports)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    for ms in [30, 150, 400, 900, 1500, 2500] {
        let mut child = run();
        std::thread::sleep(std::time::Duration::from_millis(ms));
        child.kill().unwrap();
        child.wait().unwrap();
        for e in std::fs::read_dir(&reports).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !name.starts_with('.') {
                whole(&e.path());
            }
        }
    }
    // A temporary of a process that is gone, as a kill while writing leaves it.
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    let pid = gone.id();
    gone.wait().unwrap();
    std::fs::create_dir_all(&reports).unwrap();
    let stale = reports.join(format!(".long take.wav.qc.html.sluice-{pid}-0.part"));
    std::fs::write(&stale, "<!doctype html><html><body>cut").unwrap();
    let status = run().wait().unwrap();
    assert!(
        matches!(status.code(), Some(0 | 1)),
        "the last run: {status}"
    );
    assert!(!stale.exists(), "the stale temporary was not swept");
    let left: Vec<String> = std::fs::read_dir(&reports)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left.len(), 2, "the two reports and nothing else: {left:?}");
    for name in &left {
        whole(&reports.join(name));
    }
}
