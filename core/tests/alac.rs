//! ALAC in M4A (Sluice's own encoder and M4A writer): every sample comes back exactly, through
//! Sluice's decoder and through ffmpeg's, at 16, 20, 24 and 32 bits and from one to eight
//! channels; the file is exactly as long as the input; ffprobe sees ALAC at the depth asked.

mod common;
mod lossy_common;

use lossy_common::*;
use sluice_core::encode::alac::AlacEncoder;
use sluice_core::render::SignalSpec;
use std::path::Path;
use std::process::Command;

/// ffmpeg's decode of `path` as 32-bit integers, shifted down to `bits`, in `channels` planes.
fn ffmpeg_ints(ffmpeg: &Path, path: &Path, channels: usize, bits: u32) -> Vec<Vec<i32>> {
    let out = Command::new(ffmpeg)
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-f", "s32le", "-"])
        .output()
        .expect("run ffmpeg");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}: ffmpeg failed or complained: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let samples: Vec<i32> = out
        .stdout
        .chunks_exact(4)
        .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) >> (32 - bits))
        .collect();
    (0..channels)
        .map(|c| samples.iter().skip(c).step_by(channels).copied().collect())
        .collect()
}

/// Programme material with each channel at its own level (a swapped channel shows) and a
/// stretch of full-scale noise (which ALAC stores uncompressed).
fn material(rate: u32, frames: usize, channels: usize) -> Vec<Vec<f32>> {
    let mut planes = programme(rate, frames, channels);
    let mut seed = 0x2545_f491_u32;
    for (c, p) in planes.iter_mut().enumerate() {
        let g = 1.0 - 0.09 * c as f32;
        for (i, v) in p.iter_mut().enumerate() {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            *v = if (20_000..24_000).contains(&i) {
                (seed as f32 / u32::MAX as f32) * 2.0 - 1.0
            } else {
                *v * g
            };
        }
    }
    planes
}

#[test]
fn every_sample_comes_back_in_both_decoders() {
    let dir = tempfile::tempdir().unwrap();
    let ffmpeg = tool("ffmpeg");
    let ffprobe_bin = tool("ffprobe");
    let cases: &[(u32, usize, u32, usize)] = &[
        (16, 2, 44_100, 44_100 + 17),
        (16, 1, 48_000, 4096),
        (20, 2, 48_000, 30_001),
        (24, 6, 48_000, 3 * 4096 + 1000),
        (24, 7, 96_000, 30_000),
        (24, 8, 48_000, 30_000),
        (32, 2, 44_100, 30_000),
        (24, 2, 192_000, 5000),
        (24, 2, 48_000, 1),
    ];
    for (i, &(bits, ch, rate, frames)) in cases.iter().enumerate() {
        let planes = material(rate, frames, ch);
        let want: Vec<Vec<i32>> = planes.iter().map(|p| common::quantise(p, bits)).collect();
        let path = dir.path().join(format!("{i}.m4a"));
        let file = std::fs::File::create(&path).unwrap();
        let spec = SignalSpec::with_channels(rate, ch);
        let enc = AlacEncoder::new(file, path.clone(), &spec, bits).expect("encoder");
        feed(Box::new(enc), &planes);

        let info = sluice_core::probe(&path).unwrap();
        assert_eq!(
            (info.format, info.sample_rate, info.channels as usize),
            ("m4a_alac", rate, ch),
            "case {i}"
        );
        assert_eq!(info.frames, Some(frames as u64), "case {i}");
        let (ours, _) = common::decode_all(&path);
        assert_eq!(ours.len(), ch, "case {i}");
        for (c, (w, g)) in want.iter().zip(&ours).enumerate() {
            assert_eq!(g.len(), frames, "case {i} channel {c}: our decode's length");
            // Up to 24 bits a decoded float holds the integer exactly; at 32 it holds it to
            // the float's 24 bits.
            let scale = (1i64 << (bits - 1)) as f64;
            let tolerance = if bits == 32 { 2f64.powi(-23) } else { 0.0 };
            let bad = w
                .iter()
                .zip(g)
                .position(|(&w, &g)| (f64::from(w) / scale - f64::from(g)).abs() > tolerance);
            assert_eq!(bad, None, "case {i} channel {c}: our decode differs");
        }
        if let Some(ffmpeg) = &ffmpeg {
            let theirs = ffmpeg_ints(ffmpeg, &path, ch, bits);
            for (c, (w, g)) in want.iter().zip(&theirs).enumerate() {
                assert_eq!(g.len(), frames, "case {i} channel {c}: ffmpeg's length");
                let bad = w.iter().zip(g).position(|(a, b)| a != b);
                assert_eq!(bad, None, "case {i} channel {c}: ffmpeg's decode differs");
            }
        }
        if let Some(fp) = &ffprobe_bin {
            let f = ffprobe(fp, &path);
            assert_eq!(field(&f, "streams.stream.0.codec_name"), "alac", "case {i}");
            assert_eq!(field(&f, "streams.stream.0.sample_rate"), rate.to_string());
            assert_eq!(field(&f, "streams.stream.0.channels"), ch.to_string());
        }
    }
}

/// Settings ALAC cannot store are refused when the encoder is made, naming the file.
#[test]
fn bad_settings_are_refused_with_reasons() {
    let dir = tempfile::tempdir().unwrap();
    for (bits, ch, says) in [(18, 2, "18"), (24, 9, "9"), (8, 2, "8")] {
        let path = dir.path().join("x.m4a");
        let file = std::fs::File::create(&path).unwrap();
        let spec = SignalSpec::with_channels(48_000, ch);
        let e = AlacEncoder::new(file, path.clone(), &spec, bits).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("x.m4a") && text.contains(says),
            "{bits} bits, {ch} channels: {text}"
        );
    }
}
