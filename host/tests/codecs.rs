//! The delivery codecs through `sluice export`, checked by other tools: ffprobe names the codec,
//! rate and channels; ffmpeg decodes the source's duration (within one codec frame) and
//! measures the loudness target met (within 0.2 LU) under the true-peak ceiling, on three
//! materials (a loud limited master, speech, acoustic); mutagen reads the tags and the cover
//! art. Needs ffmpeg/ffprobe (and python3 with mutagen for the tags), as `.ci/run` installs.

mod common;

use common::{sluice, tool, write_wav};
use std::path::{Path, PathBuf};
use std::process::Command;

/// ffmpeg's EBU R 128 summary of `path`: (integrated LUFS, true peak dBTP).
fn ffmpeg_ebur128(ffmpeg: &Path, path: &Path) -> (f64, f64) {
    let out = Command::new(ffmpeg)
        .args(["-hide_banner", "-nostats", "-i"])
        .arg(path)
        .args(["-af", "ebur128=peak=true", "-f", "null", "-"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    let summary = &text[text.rfind("Summary:").expect("ebur128 summary")..];
    let field = |label: &str| -> f64 {
        let at = summary.find(label).unwrap();
        summary[at + label.len()..]
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    (field("I:"), field("Peak:"))
}

/// Frames ffmpeg decodes from `path` at its own rate.
fn ffmpeg_frames(ffmpeg: &Path, path: &Path, channels: usize) -> usize {
    let out = Command::new(ffmpeg)
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-f", "f32le", "-"])
        .output()
        .unwrap();
    assert!(out.status.success());
    out.stdout.len() / 4 / channels
}

/// ffprobe's first stream: codec, rate, channels.
fn ffprobe_stream(ffprobe: &Path, path: &Path) -> (String, u32, usize) {
    let out = Command::new(ffprobe)
        .args([
            "-v",
            "error",
            "-of",
            "json",
            "-select_streams",
            "a:0",
            "-show_streams",
        ])
        .arg(path)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let s = &v["streams"][0];
    (
        s["codec_name"].as_str().unwrap().to_string(),
        s["sample_rate"].as_str().unwrap().parse().unwrap(),
        s["channels"].as_u64().unwrap() as usize,
    )
}

/// mutagen's tags of `path` (keys upper case) and its picture count; `None` without mutagen.
fn mutagen(path: &Path) -> Option<(std::collections::BTreeMap<String, String>, usize)> {
    let script = r#"
import json, sys, mutagen
f = mutagen.File(sys.argv[1])
tags = {k.upper(): (v[0] if isinstance(v, list) and v and isinstance(v[0], str) else str(v)[:40]) for k, v in f.tags.items()}
pics = len(getattr(f, "pictures", []) or []) + len(tags.get("METADATA_BLOCK_PICTURE", "") and [1]) + len(f.tags.get("covr", []) if hasattr(f.tags, "get") else [])
print(json.dumps({"tags": tags, "pictures": pics}))
"#;
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(path)
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!("SKIPPED: mutagen: {}", String::from_utf8_lossy(&out.stderr));
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let tags = v["tags"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
        .collect();
    Some((tags, v["pictures"].as_u64().unwrap() as usize))
}

/// The three materials, 44.1 kHz, 20 s.
fn materials() -> Vec<(&'static str, Vec<Vec<f32>>)> {
    let rate = 44_100;
    vec![
        ("master", sluice_core::signal::hot_master(rate, 20.0)),
        ("speech", sluice_core::signal::speech(rate, 20.0, 0.1)),
        ("acoustic", sluice_core::signal::acoustic(rate, 20.0, 5)),
    ]
}

/// A source with a cover picture: a FLAC made by ffmpeg from `wav` with a PNG attached.
fn with_cover(ffmpeg: &Path, wav: &Path, out: &Path) -> bool {
    let png = out.with_extension("png");
    let ok = Command::new(ffmpeg)
        .args([
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "color=c=red:s=32x32",
        ])
        .args(["-frames:v", "1"])
        .arg(&png)
        .status()
        .unwrap()
        .success();
    ok && Command::new(ffmpeg)
        .args(["-v", "error", "-y", "-i"])
        .arg(wav)
        .arg("-i")
        .arg(&png)
        .args(["-map", "0", "-map", "1", "-c:a", "flac", "-c:v", "copy"])
        .args(["-disposition:v", "attached_pic"])
        .args(["-metadata", "artist=Cover Artist"])
        .arg(out)
        .status()
        .unwrap()
        .success()
}

/// The export settings of the lossy deliveries: -16 LUFS under -1 dBTP.
const ON_TARGET: &[&str] = &["--normalize-lufs", "-16", "--true-peak", "-1"];

/// `planes` as a 24-bit 44.1 kHz FLAC with a cover and an artist (made by ffmpeg) in `dir`,
/// exported by `sluice export` with `settings` to `NAME.EXT` with a title tag.
fn exported(
    ffmpeg: &Path,
    dir: &Path,
    name: &str,
    planes: &[Vec<f32>],
    ext: &str,
    settings: &[&str],
) -> PathBuf {
    let wav = dir.join(format!("{name}.wav"));
    write_wav(&wav, planes, 44_100, 24);
    let src = dir.join(format!("{name}.flac"));
    assert!(
        with_cover(ffmpeg, &wav, &src),
        "{name}: ffmpeg made no source"
    );
    let out = dir.join(format!("{name}.{ext}"));
    let o = sluice()
        .arg("export")
        .arg(&src)
        .arg("-o")
        .arg(&out)
        .args(settings)
        .args(["--tag", &format!("title={name}")])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{name}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

/// -16 LUFS within 0.2 LU and at most -1 dBTP, as ffmpeg decodes and measures `out`.
fn on_target(ffmpeg: &Path, out: &Path, name: &str) {
    let (i, tp) = ffmpeg_ebur128(ffmpeg, out);
    println!("{name}: {i} LUFS, {tp} dBTP (ffmpeg)");
    assert!((i + 16.0).abs() <= 0.2, "{name}: {i} LUFS");
    assert!(tp <= -1.0, "{name}: {tp} dBTP");
}

/// Ogg Opus from 44.1 kHz sources: resampled to 48 kHz, the duration kept, at -16 LUFS and
/// under -1 dBTP as ffmpeg decodes and measures it, `R128_TRACK_GAIN` towards -23 LUFS, the
/// source's tags and cover art carried.
#[test]
fn opus_exports_land_on_target_as_ffmpeg_decodes_them() {
    let (Some(ffmpeg), Some(ffprobe)) = (tool("ffmpeg"), tool("ffprobe")) else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    for (name, planes) in materials() {
        let out = exported(&ffmpeg, t.path(), name, &planes, "opus", ON_TARGET);
        let channels = planes.len();
        assert_eq!(
            ffprobe_stream(&ffprobe, &out),
            ("opus".to_string(), 48_000, channels),
            "{name}"
        );
        let want = (planes[0].len() as f64 * 48_000.0 / 44_100.0).round() as i64;
        let got = ffmpeg_frames(&ffmpeg, &out, channels) as i64;
        assert!(
            (got - want).abs() <= 960,
            "{name}: {got} frames, the source {want}"
        );
        on_target(&ffmpeg, &out, name);
        if let Some((tags, pictures)) = mutagen(&out) {
            assert_eq!(
                tags.get("TITLE").map(String::as_str),
                Some(name),
                "{tags:?}"
            );
            assert_eq!(
                tags.get("ARTIST").map(String::as_str),
                Some("Cover Artist"),
                "{tags:?}"
            );
            assert_eq!(pictures, 1, "{name}: the cover art");
            let g: f64 = tags["R128_TRACK_GAIN"].parse::<f64>().unwrap() / 256.0;
            assert!(
                (g - (-23.0 + 16.0)).abs() <= 0.2,
                "{name}: R128 gain {g} dB"
            );
            assert!(!tags.contains_key("REPLAYGAIN_TRACK_GAIN"), "{tags:?}");
        }
    }
}

/// ffprobe's format tags (keys lower case).
fn ffprobe_tags(ffprobe: &Path, path: &Path) -> std::collections::BTreeMap<String, String> {
    let out = Command::new(ffprobe)
        .args(["-v", "error", "-of", "json", "-show_entries", "format_tags"])
        .arg(path)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["format"]["tags"]
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.to_lowercase(), v.as_str().unwrap_or("").to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// AAC-LC in M4A from 44.1 kHz sources: the rate kept, the duration exact (the edit list),
/// -16 LUFS and under -1 dBTP as ffmpeg decodes and measures it; the source's tags, the
/// ReplayGain gain and the cover art in the MP4 tag.
#[test]
fn aac_exports_land_on_target_as_ffmpeg_decodes_them() {
    let (Some(ffmpeg), Some(ffprobe)) = (tool("ffmpeg"), tool("ffprobe")) else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    for (name, planes) in materials() {
        let out = exported(&ffmpeg, t.path(), name, &planes, "m4a", ON_TARGET);
        let channels = planes.len();
        assert_eq!(
            ffprobe_stream(&ffprobe, &out),
            ("aac".to_string(), 44_100, channels),
            "{name}"
        );
        // ffmpeg trims the priming (the edit list's start) but not the last frame's padding.
        let extra = ffmpeg_frames(&ffmpeg, &out, channels) as i64 - planes[0].len() as i64;
        assert!(
            (0..1024).contains(&extra),
            "{name}: ffmpeg's decode {extra} frames longer"
        );
        let ours = sluice_core::probe(&out).unwrap().frames;
        assert_eq!(
            ours,
            Some(planes[0].len() as u64),
            "{name}: the length Sluice reads"
        );
        on_target(&ffmpeg, &out, name);
        let tags = ffprobe_tags(&ffprobe, &out);
        assert_eq!(
            tags.get("title").map(String::as_str),
            Some(name),
            "{tags:?}"
        );
        assert_eq!(
            tags.get("artist").map(String::as_str),
            Some("Cover Artist"),
            "{tags:?}"
        );
        // Apple's gapless tag, which the encoder wrote, is kept beside the user's tags.
        let smpb = tags.get("itunsmpb").map(String::as_str).unwrap_or("");
        assert_eq!(
            smpb.split_whitespace()
                .nth(3)
                .map(|w| u64::from_str_radix(w, 16)),
            Some(Ok(planes[0].len() as u64)),
            "{name}: iTunSMPB {smpb:?}"
        );
        let gain = sluice_core::replaygain::read(&out).unwrap();
        assert!(
            gain.iter().any(|(k, _)| k == "REPLAYGAIN_TRACK_GAIN"),
            "{gain:?}"
        );
        if let Some((_, pictures)) = mutagen(&out) {
            assert_eq!(pictures, 1, "{name}: the cover art");
        }
    }
}

/// ffmpeg's decode of `path` as 32-bit little-endian integers.
fn ffmpeg_s32(ffmpeg: &Path, path: &Path) -> Vec<u8> {
    let out = Command::new(ffmpeg)
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-map", "0:a", "-f", "s32le", "-"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// ALAC in M4A from 24-bit FLAC sources with a cover (`--format alac`, no processing): ffmpeg
/// decodes the ALAC to exactly the source's integers, at the source's depth and rate; the
/// source's tags and cover art are in the MP4 tag.
#[test]
fn alac_exports_keep_every_sample() {
    let (Some(ffmpeg), Some(ffprobe)) = (tool("ffmpeg"), tool("ffprobe")) else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    for (name, planes) in materials() {
        let out = exported(
            &ffmpeg,
            t.path(),
            name,
            &planes,
            "m4a",
            &["--format", "alac"],
        );
        let src = t.path().join(format!("{name}.flac"));
        assert_eq!(
            ffprobe_stream(&ffprobe, &out),
            ("alac".to_string(), 44_100, planes.len()),
            "{name}"
        );
        let info = sluice_core::probe(&out).unwrap();
        assert_eq!(info.bit_depth, Some(24), "{name}: the depth kept");
        let (theirs, ours) = (ffmpeg_s32(&ffmpeg, &src), ffmpeg_s32(&ffmpeg, &out));
        assert_eq!(theirs.len(), ours.len(), "{name}: the length");
        assert!(
            theirs == ours,
            "{name}: the ALAC does not decode to the source"
        );
        let tags = ffprobe_tags(&ffprobe, &out);
        assert_eq!(
            tags.get("title").map(String::as_str),
            Some(name),
            "{tags:?}"
        );
        assert_eq!(
            tags.get("artist").map(String::as_str),
            Some("Cover Artist"),
            "{tags:?}"
        );
        if let Some((_, pictures)) = mutagen(&out) {
            assert_eq!(pictures, 1, "{name}: the cover art");
        }
    }
}
