//! Ogg Opus: files made by ffmpeg (libopus) decode here to ffmpeg's own decode of them (length
//! after the pre-skip and the end trim, samples, channel order of 5.1), and the header's output
//! gain is applied.

mod common;
mod lossy_common;

use common::{decode_all, write_float_wav};
use lossy_common::{decode_ffmpeg, tool};
use std::path::Path;
use std::process::Command;

fn sine(freq: f64, rate: u32, frames: usize, amp: f32) -> Vec<f32> {
    (0..frames)
        .map(|i| {
            amp * (2.0 * std::f64::consts::PI * freq * i as f64 / f64::from(rate)).sin() as f32
        })
        .collect()
}

fn ffmpeg_opus(ffmpeg: &Path, wav: &Path, out: &Path, extra: &[&str]) {
    let st = Command::new(ffmpeg)
        .args(["-v", "error", "-y", "-i"])
        .arg(wav)
        .args(["-c:a", "libopus", "-b:a", "160k"])
        .args(extra)
        .arg(out)
        .status()
        .unwrap();
    assert!(st.success());
}

/// The dominant frequency of `x` at `rate`, by a plain DFT scan over `candidates`.
fn strongest(x: &[f32], rate: u32, candidates: &[f64]) -> f64 {
    let power = |f: f64| {
        let (mut re, mut im) = (0.0, 0.0);
        for (i, &v) in x.iter().enumerate() {
            let ph = 2.0 * std::f64::consts::PI * f * i as f64 / f64::from(rate);
            re += f64::from(v) * ph.cos();
            im += f64::from(v) * ph.sin();
        }
        re * re + im * im
    };
    *candidates
        .iter()
        .max_by(|a, b| power(**a).total_cmp(&power(**b)))
        .unwrap()
}

#[test]
fn ffmpeg_opus_decodes_to_ffmpegs_decode() {
    let Some(ffmpeg) = tool("ffmpeg") else { return };
    let t = tempfile::tempdir().unwrap();
    let frames = 44_100 * 3 + 123;
    let planes = vec![
        sine(440.0, 44_100, frames, 0.4),
        sine(1000.0, 44_100, frames, 0.3),
    ];
    let wav = t.path().join("in.wav");
    write_float_wav(&wav, 44_100, &planes);
    let opus = t.path().join("x.opus");
    ffmpeg_opus(&ffmpeg, &wav, &opus, &[]);
    let (ours, info) = decode_all(&opus);
    assert_eq!(info.format, "opus");
    assert_eq!(info.codec, "opus");
    assert_eq!((info.sample_rate, info.channels), (48_000, 2));
    let theirs = decode_ffmpeg(&ffmpeg, &opus, 2);
    assert_eq!(ours[0].len(), theirs[0].len(), "length after trimming");
    assert_eq!(
        info.frames,
        Some(ours[0].len() as u64),
        "the header's length"
    );
    assert_eq!(info.encoder_delay, Some(312));
    // The source's length at 48 kHz, within a sample (ffmpeg resampled it).
    let want = (frames as f64 * 48_000.0 / 44_100.0).round() as i64;
    assert!(
        (ours[0].len() as i64 - want).abs() <= 1,
        "{} vs {want}",
        ours[0].len()
    );
    for c in 0..2 {
        let worst = ours[c]
            .iter()
            .zip(&theirs[c])
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(
            worst < 1e-3,
            "channel {c}: differs from ffmpeg's decode by {worst}"
        );
    }
}

#[test]
fn surround_channels_come_out_in_wave_order() {
    let Some(ffmpeg) = tool("ffmpeg") else { return };
    let t = tempfile::tempdir().unwrap();
    let rate = 48_000;
    let frames = rate as usize;
    // FL FR FC LFE BL BR, each its own frequency.
    let freqs = [500.0, 700.0, 900.0, 60.0, 1300.0, 1700.0];
    let planes: Vec<Vec<f32>> = freqs.iter().map(|&f| sine(f, rate, frames, 0.3)).collect();
    let wav = t.path().join("in.wav");
    write_float_wav(&wav, rate, &planes);
    let opus = t.path().join("x.opus");
    ffmpeg_opus(
        &ffmpeg,
        &wav,
        &opus,
        &["-b:a", "384k", "-mapping_family", "1"],
    );
    let (ours, info) = decode_all(&opus);
    assert_eq!(info.channels, 6);
    assert_eq!(info.layout_name.as_deref(), Some("5.1"), "{info:?}");
    for (c, f) in freqs.iter().enumerate() {
        let got = strongest(&ours[c][4800..14400], rate, &freqs);
        assert_eq!(got, *f, "channel {c}");
    }
}

/// The Ogg page checksum (CRC-32, polynomial 0x04c11db7, not reflected).
fn ogg_crc(page: &[u8]) -> u32 {
    let mut crc = 0u32;
    for &b in page {
        crc ^= u32::from(b) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04c1_1db7
            } else {
                crc << 1
            };
        }
    }
    crc
}

#[test]
fn the_output_gain_is_applied() {
    let Some(ffmpeg) = tool("ffmpeg") else { return };
    let t = tempfile::tempdir().unwrap();
    let planes = vec![
        sine(440.0, 48_000, 48_000, 0.25),
        sine(660.0, 48_000, 48_000, 0.25),
    ];
    let wav = t.path().join("in.wav");
    write_float_wav(&wav, 48_000, &planes);
    let opus = t.path().join("x.opus");
    ffmpeg_opus(&ffmpeg, &wav, &opus, &[]);
    let (plain, _) = decode_all(&opus);
    // -6 dB in Q7.8 into the OpusHead of the first page, its checksum made again.
    let mut bytes = std::fs::read(&opus).unwrap();
    let segments = usize::from(bytes[26]);
    let head = 27 + segments;
    assert_eq!(&bytes[head..head + 8], b"OpusHead");
    let gain = (-6.0f64 * 256.0).round() as i16;
    bytes[head + 16..head + 18].copy_from_slice(&gain.to_le_bytes());
    let len = head
        + bytes[27..head]
            .iter()
            .map(|&s| usize::from(s))
            .sum::<usize>();
    bytes[22..26].fill(0);
    let crc = ogg_crc(&bytes[..len]);
    bytes[22..26].copy_from_slice(&crc.to_le_bytes());
    let gained = t.path().join("gained.opus");
    std::fs::write(&gained, &bytes).unwrap();
    let (quieter, _) = decode_all(&gained);
    let rms =
        |x: &[f32]| (x.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>() / x.len() as f64).sqrt();
    let db = 20.0 * (rms(&quieter[0]) / rms(&plain[0])).log10();
    assert!((db + 6.0).abs() < 0.05, "{db:.3} dB");
    // ffmpeg applies it too.
    let theirs = decode_ffmpeg(&ffmpeg, &gained, 2);
    let db = 20.0 * (rms(&theirs[0]) / rms(&plain[0])).log10();
    assert!((db + 6.0).abs() < 0.05, "ffmpeg: {db:.3} dB");
}

mod encoding {
    use super::lossy_common::*;
    use sluice_core::encode::opus::{OpusEncoder, OpusOptions};
    use sluice_core::render::SignalSpec;
    use std::path::{Path, PathBuf};

    fn encode(
        dir: &Path,
        name: &str,
        rate: u32,
        planes: &[Vec<f32>],
        kbps: Option<u32>,
    ) -> PathBuf {
        let path = dir.join(name);
        let file = std::fs::File::create(&path).unwrap();
        let spec = SignalSpec::with_channels(rate, planes.len());
        let enc = OpusEncoder::new(
            file,
            path.clone(),
            &spec,
            &OpusOptions { bitrate_kbps: kbps },
        )
        .expect("encoder");
        feed(Box::new(enc), planes);
        path
    }

    /// The last page's granule position and the pre-skip carry the length: our decoder and
    /// ffmpeg's decode exactly the input's frames (48 kHz input), aligned with it, at every
    /// channel count up to 8 and down to a single frame; ffprobe sees Opus.
    #[test]
    fn the_length_is_exact_and_aligned_in_both_decoders() {
        let dir = tempfile::tempdir().unwrap();
        let ffmpeg = tool("ffmpeg");
        let ffprobe_bin = tool("ffprobe");
        let cases: Vec<(usize, &str, usize, Option<u32>)> = vec![
            (2, "tones", 48_000 * 3 + 17, None),
            (1, "programme", 48_000 * 2 + 1, Some(48)),
            (2, "programme", 48_000 + 999, Some(256)),
            (6, "tones", 48_000 + 11, None),
            (8, "programme", 4097, None),
            (2, "tones", 1, None),
            (2, "tones", 959, None),
        ];
        for (i, (ch, kind, frames, kbps)) in cases.into_iter().enumerate() {
            let planes = match kind {
                "tones" => tone_mix(48_000, frames, ch),
                _ => programme(48_000, frames, ch),
            };
            let path = encode(dir.path(), &format!("{i}.opus"), 48_000, &planes, kbps);
            let d = decode_symphonia(&path);
            assert_eq!(d.frames(), frames, "case {i}: our decode");
            if frames > 20_000 {
                for (c, (want, got)) in planes.iter().zip(&d.planes).enumerate() {
                    let lag = best_lag(want, got, 2000);
                    assert_eq!(lag, 0, "case {i} channel {c}: aligned");
                    // (Opus codes an LFE channel low-passed: its tones above it are gone.)
                    if !(ch >= 6 && c == 3) {
                        let snr = snr_db(want, got, 0, 2000);
                        assert!(snr > 10.0, "case {i} channel {c}: SNR {snr:.1} dB");
                    }
                }
            }
            if let Some(ffmpeg) = &ffmpeg {
                let got = decode_ffmpeg(ffmpeg, &path, ch);
                assert_eq!(got[0].len(), frames, "case {i}: ffmpeg's decode");
            }
            if let Some(fp) = &ffprobe_bin {
                let f = ffprobe(fp, &path);
                assert_eq!(field(&f, "streams.stream.0.codec_name"), "opus", "case {i}");
                assert_eq!(
                    field(&f, "streams.stream.0.channels"),
                    ch.to_string(),
                    "case {i}"
                );
            }
        }
    }

    /// Lower rates are coded at their rate and decode at 48 kHz with the same duration.
    #[test]
    fn lower_rates_keep_their_duration() {
        let dir = tempfile::tempdir().unwrap();
        for rate in [8_000u32, 16_000, 24_000] {
            let frames = rate as usize * 2 + 7;
            let planes = tone_mix(rate, frames, 1);
            let path = encode(dir.path(), &format!("{rate}.opus"), rate, &planes, None);
            let d = decode_symphonia(&path);
            let want = frames * (48_000 / rate as usize);
            assert_eq!(d.frames(), want, "{rate} Hz");
        }
        let planes = tone_mix(44_100, 100, 2);
        let path = dir.path().join("cd.opus");
        let file = std::fs::File::create(&path).unwrap();
        let e = OpusEncoder::new(
            file,
            path.clone(),
            &SignalSpec::with_channels(44_100, 2),
            &OpusOptions { bitrate_kbps: None },
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("44100 Hz") && e.contains("resample"), "{e}");
        drop(planes);
    }

    /// Surround in mapping family 1: each WAVE-order channel comes back in its place through
    /// our decoder and ffmpeg's.
    #[test]
    fn surround_keeps_its_channels_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let freqs = [500.0, 700.0, 900.0, 60.0, 1300.0, 1700.0];
        let planes: Vec<Vec<f32>> = freqs
            .iter()
            .map(|&f| super::sine(f, 48_000, 48_000, 0.3))
            .collect();
        let path = encode(dir.path(), "51.opus", 48_000, &planes, Some(384));
        let d = decode_symphonia(&path);
        for (c, f) in freqs.iter().enumerate() {
            assert_eq!(
                super::strongest(&d.planes[c][4800..14400], 48_000, &freqs),
                *f,
                "ours, channel {c}"
            );
        }
        if let Some(ffmpeg) = tool("ffmpeg") {
            let got = decode_ffmpeg(&ffmpeg, &path, 6);
            for (c, f) in freqs.iter().enumerate() {
                assert_eq!(
                    super::strongest(&got[c][4800..14400], 48_000, &freqs),
                    *f,
                    "ffmpeg, channel {c}"
                );
            }
        }
    }
}

/// Damaged and forged Ogg Opus files: each is an error naming the file, or decodes what it
/// holds; nothing panics, nothing runs away.
#[test]
fn forged_and_damaged_opus_files_fail_cleanly() {
    use sluice_core::Decoder;
    let dir = tempfile::tempdir().unwrap();
    let planes = vec![
        sine(440.0, 48_000, 48_000 * 2, 0.3),
        sine(550.0, 48_000, 48_000 * 2, 0.3),
    ];
    let path = dir.path().join("good.opus");
    {
        use sluice_core::encode::opus::{OpusEncoder, OpusOptions};
        let file = std::fs::File::create(&path).unwrap();
        let spec = sluice_core::render::SignalSpec::with_channels(48_000, 2);
        let enc = OpusEncoder::new(
            file,
            path.clone(),
            &spec,
            &OpusOptions { bitrate_kbps: None },
        )
        .unwrap();
        lossy_common::feed(Box::new(enc), &planes);
    }
    let good = std::fs::read(&path).unwrap();
    let head_at = 27 + usize::from(good[26]);
    let reseal = |b: &mut Vec<u8>| {
        let len = head_at
            + b[27..head_at]
                .iter()
                .map(|&s| usize::from(s))
                .sum::<usize>();
        b[22..26].fill(0);
        let crc = ogg_crc(&b[..len]);
        b[22..26].copy_from_slice(&crc.to_le_bytes());
    };
    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
    cases.push(("cut", good[..good.len() / 2].to_vec()));
    cases.push(("headers only", good[..head_at + 19 + 60].to_vec()));
    let mut b = good.clone();
    for x in b.iter_mut().skip(good.len() / 3).step_by(97) {
        *x ^= 0x5a;
    }
    cases.push(("flipped bytes", b));
    let mut b = good.clone();
    b[head_at + 9] = 8; // eight channels on a stereo stream, family 0
    reseal(&mut b);
    cases.push(("family 0 with 8 channels", b));
    let mut b = good.clone();
    b[head_at + 10..head_at + 12].copy_from_slice(&u16::MAX.to_le_bytes());
    reseal(&mut b);
    cases.push(("pre-skip longer than the stream", b));
    let mut b = good.clone();
    b[head_at + 18] = 255; // an undefined mapping family
    reseal(&mut b);
    cases.push(("mapping family 255", b));
    for (name, bytes) in cases {
        let p = dir.path().join(format!("{name}.opus"));
        std::fs::write(&p, &bytes).unwrap();
        match Decoder::open(&p) {
            Err(e) => {
                let m = e.to_string();
                assert!(m.contains(&*p.to_string_lossy()), "{name}: {m}");
            }
            Ok(mut d) => {
                let mut frames = 0usize;
                loop {
                    match d.next_block() {
                        Ok(Some(b)) => frames += b.frames(),
                        Ok(None) => break,
                        Err(e) => {
                            assert!(e.to_string().contains(&*p.to_string_lossy()), "{name}: {e}");
                            break;
                        }
                    }
                }
                assert!(
                    frames <= 48_000 * 2,
                    "{name}: {frames} frames from a 2 s stream"
                );
            }
        }
    }
}
