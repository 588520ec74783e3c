//! The MP3 encoder: exact length through the LAME tag (symphonia and ffmpeg), fidelity,
//! bitrates and sizes, and clear refusals of what MP3 cannot carry.

mod common;
mod lossy_common;

use lossy_common::*;
use sluice_core::encode::mp3::{Mp3Encoder, Mp3Mode, Mp3Options};
use sluice_core::encode::{EncodeError, Encoder};
use sluice_core::render::{Block, SignalSpec};
use std::path::{Path, PathBuf};

fn opts(mode: Mp3Mode) -> Mp3Options {
    Mp3Options {
        mode,
        ..Mp3Options::default()
    }
}

const CBR128: Mp3Mode = Mp3Mode::Cbr { kbps: 128 };

fn encode(dir: &Path, name: &str, rate: u32, planes: &[Vec<f32>], opts: Mp3Options) -> PathBuf {
    let path = dir.join(name);
    let file = std::fs::File::create(&path).unwrap();
    let spec = SignalSpec::with_channels(rate, planes.len());
    let enc = Mp3Encoder::new(file, path.clone(), &spec, &opts).expect("encoder");
    feed(Box::new(enc), planes);
    path
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

#[test]
fn encoder_is_send_and_defaults_match_lame() {
    fn send<T: Send>() {}
    send::<Mp3Encoder>();
    let d = Mp3Options::default();
    assert_eq!(d.quality, 3, "LAME's own default algorithm quality");
    assert_eq!(d.mode, Mp3Mode::Vbr { quality: 2 });
}

/// symphonia reads the LAME tag's delay and padding and trims them: the decoded length is the
/// input's, to the frame, for every rate, mode and length (including lengths shorter than one
/// MP3 frame).
#[test]
fn symphonia_decodes_exactly_the_input_length() {
    let dir = tmp();
    let cases: Vec<(u32, usize, Mp3Mode, &str, usize)> = vec![
        (44100, 2, CBR128, "tones", 44100 * 3 + 17),
        (
            48000,
            1,
            Mp3Mode::Vbr { quality: 2 },
            "sweep",
            48000 * 2 + 1,
        ),
        (
            32000,
            2,
            Mp3Mode::Vbr { quality: 5 },
            "programme",
            32000 * 2 + 999,
        ),
        (22050, 1, Mp3Mode::Cbr { kbps: 64 }, "programme", 22050 + 5),
        (8000, 1, Mp3Mode::Cbr { kbps: 24 }, "tones", 8000 + 3),
        (
            48000,
            2,
            Mp3Mode::Cbr { kbps: 320 },
            "programme",
            48000 + 1152,
        ),
        (44100, 2, CBR128, "tones", 1),
        (44100, 2, CBR128, "tones", 575),
        (44100, 2, CBR128, "tones", 1152),
        (44100, 1, Mp3Mode::Vbr { quality: 0 }, "sweep", 1153),
    ];
    for (i, (rate, ch, mode, kind, frames)) in cases.into_iter().enumerate() {
        let planes = match kind {
            "tones" => tone_mix(rate, frames, ch),
            "sweep" => sweep(rate, frames, ch),
            _ => programme(rate, frames, ch),
        };
        let path = encode(dir.path(), &format!("{i}.mp3"), rate, &planes, opts(mode));
        let d = decode_symphonia(&path);
        eprintln!(
            "{rate} Hz {ch} ch {mode:?} {kind} {frames} frames: decoded {} (delay {:?}, padding \
             {:?}, header frames {:?})",
            d.frames(),
            d.delay,
            d.padding,
            d.num_frames
        );
        assert_eq!(d.rate, rate);
        assert_eq!(d.planes.len(), ch);
        assert_eq!(d.frames(), frames, "{rate} Hz {mode:?} {frames} frames");
        assert_eq!(
            d.num_frames,
            Some(frames as u64),
            "the Info tag's frame count"
        );
        // LAME 3.100's delay is 576 + 529 decoder frames; symphonia reports the total.
        assert_eq!(d.delay, Some(576 + 529));
    }
}

/// Every rate and CBR bitrate: exact length when LAME had room for its tag (what
/// `is_gapless` predicts), else the raw MPEG frames (delay and padding included).
#[test]
fn gapless_exactly_when_the_tag_fits() {
    let dir = tmp();
    let rates = [8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000];
    let mpeg1 = [
        32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320,
    ];
    let mpeg2 = [8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160];
    let mut not_gapless = Vec::new();
    for rate in rates {
        for kbps in if rate >= 32000 { mpeg1 } else { mpeg2 } {
            for ch in [1, 2] {
                let frames = 3000;
                let planes = tone_mix(rate, frames, ch);
                let path = dir.path().join(format!("{rate}-{kbps}-{ch}.mp3"));
                let file = std::fs::File::create(&path).unwrap();
                let spec = SignalSpec::with_channels(rate, ch);
                let o = opts(Mp3Mode::Cbr { kbps });
                let enc = Mp3Encoder::new(file, path.clone(), &spec, &o).unwrap();
                let gapless = enc.is_gapless();
                feed(Box::new(enc), &planes);
                let d = decode_symphonia(&path);
                if gapless {
                    assert_eq!(d.frames(), frames, "{rate} Hz {kbps} kbps {ch} ch");
                } else {
                    // MPEG-2/2.5 frames hold 576 frames, MPEG-1 frames 1152.
                    let per = if rate >= 32000 { 1152 } else { 576 };
                    assert_eq!(d.frames() % per, 0);
                    assert!(d.frames() >= frames + 576 + 529, "{rate} {kbps} {ch}");
                    not_gapless.push(format!("{rate}/{kbps}/{ch}"));
                }
            }
        }
    }
    eprintln!(
        "no LAME tag (rate/kbps/channels): {}",
        not_gapless.join(" ")
    );
    assert!(not_gapless.contains(&"44100/56/2".to_string()));
    assert!(!not_gapless.contains(&"44100/64/2".to_string()));
}

/// After gapless trimming the decoded signal lines up with the input at lag 0.
///
/// Measured (LAME 3.100, q3): a tone mix at 128 kbps gives about 60 dB SNR once the encoder
/// undoes LAME's CBR input scale (0.95 up to 160 kbps, 0.97 at 192, 0.98 at 224; with it the
/// SNR was 26 dB, all of it the 0.45 dB level drop). Programme-like audio: 17.7-18.8 dB at V2 and 18.4-19.7 dB at 192 kbps (LAME shapes
/// its noise for the ear, and the noise parts of the mix are not kept sample by sample).
/// Bounds: 25, 50 and 15 dB.
#[test]
fn decoded_signal_matches_the_input() {
    let dir = tmp();
    let rate = 44100;
    let planes = tone_mix(rate, rate as usize * 4, 2);
    let path = encode(dir.path(), "tones.mp3", rate, &planes, opts(CBR128));
    let d = decode_symphonia(&path);
    assert_eq!(d.frames(), planes[0].len());
    for (c, (want, got)) in planes.iter().zip(&d.planes).enumerate() {
        let lag = best_lag(want, got, 2000);
        let snr = snr_db(want, got, 0, 2048);
        let (gain, fitted) = snr_gain_fit_db(want, got, 2048);
        eprintln!(
            "tone mix 128 kbps ch{c}: lag {lag}, SNR {snr:.1} dB; gain {gain:.4}, SNR after \
             gain {fitted:.1} dB"
        );
        assert_eq!(lag, 0, "gapless decode is aligned with the input");
        assert!(snr > 50.0, "ch{c}: SNR {snr:.1} dB");
        assert!(fitted > 50.0, "ch{c}: SNR after gain {fitted:.1} dB");
        // LAME's CBR presets would scale the input by 0.95; the encoder keeps the level.
        assert!(
            (gain - 1.0).abs() < 0.005,
            "the level must be kept at 128 kbps: {gain}"
        );
    }
    let planes = programme(rate, rate as usize * 4, 2);
    for (name, mode) in [
        ("v2", Mp3Mode::Vbr { quality: 2 }),
        ("c192", Mp3Mode::Cbr { kbps: 192 }),
    ] {
        let path = encode(
            dir.path(),
            &format!("{name}.mp3"),
            rate,
            &planes,
            opts(mode),
        );
        let d = decode_symphonia(&path);
        assert_eq!(d.frames(), planes[0].len());
        for (c, (want, got)) in planes.iter().zip(&d.planes).enumerate() {
            let snr = snr_db(want, got, 0, 2048);
            let (gain, fitted) = snr_gain_fit_db(want, got, 2048);
            eprintln!("programme {name} ch{c}: SNR {snr:.1} dB (gain {gain:.4}: {fitted:.1} dB)");
            assert!(snr > 15.0, "{name} ch{c}: SNR {snr:.1} dB");
        }
    }
}

/// A 1 kHz sine keeps its frequency and its level within 0.5 dB (measured within 0.03 dB in
/// CBR, with LAME's input scale undone, and in VBR).
#[test]
fn sine_keeps_frequency_and_level() {
    let dir = tmp();
    for (rate, ch, mode) in [
        (44100, 2, CBR128),
        (48000, 1, Mp3Mode::Vbr { quality: 2 }),
        (32000, 2, Mp3Mode::Cbr { kbps: 96 }),
    ] {
        let s = sine(rate, rate as usize * 3, 1000.0, 0.5);
        let planes = vec![s; ch];
        let path = encode(
            dir.path(),
            &format!("sine{rate}.mp3"),
            rate,
            &planes,
            opts(mode),
        );
        let d = decode_symphonia(&path);
        assert_eq!(d.frames(), planes[0].len());
        for got in &d.planes {
            let mid = middle(got, rate as usize);
            let f = tone_freq(mid, rate);
            let level = rms_db(mid) - rms_db(middle(&planes[0], rate as usize));
            eprintln!("{rate} Hz {mode:?}: {f:.3} Hz, level {level:+.3} dB");
            assert!((f - 1000.0).abs() < 0.1, "frequency {f}");
            assert!(level.abs() < 0.5, "level {level:+.3} dB");
        }
    }
}

/// ffmpeg decodes the same length (it reads the LAME tag too) and ffprobe sees what was asked.
#[test]
fn ffmpeg_decodes_the_same_length_and_ffprobe_agrees() {
    let (Some(ffmpeg), Some(ffprobe_bin)) = (tool("ffmpeg"), tool("ffprobe")) else {
        return;
    };
    let dir = tmp();
    for (rate, ch, mode) in [
        (44100, 2, CBR128),
        (48000, 1, Mp3Mode::Vbr { quality: 2 }),
        (32000, 2, Mp3Mode::Cbr { kbps: 96 }),
        (44100, 2, Mp3Mode::Vbr { quality: 6 }),
    ] {
        let frames = rate as usize * 3 + 123;
        let planes = programme(rate, frames, ch);
        let path = encode(
            dir.path(),
            &format!("{rate}{ch}.mp3"),
            rate,
            &planes,
            opts(mode),
        );
        let got = decode_ffmpeg(&ffmpeg, &path, ch);
        assert_eq!(got[0].len(), frames, "ffmpeg length, {rate} Hz {mode:?}");
        for (want, got) in planes.iter().zip(&got) {
            assert_eq!(best_lag(want, got, 2000), 0, "ffmpeg aligns too");
            assert!(snr_db(want, got, 0, 2048) > 14.0);
        }
        let f = ffprobe(&ffprobe_bin, &path);
        eprintln!("{rate} Hz {ch} ch {mode:?}: {f:?}");
        assert_eq!(field(&f, "streams.stream.0.codec_name"), "mp3");
        assert_eq!(field(&f, "streams.stream.0.sample_rate"), rate.to_string());
        assert_eq!(field(&f, "streams.stream.0.channels"), ch.to_string());
        let bit_rate: u64 = field(&f, "streams.stream.0.bit_rate").parse().unwrap();
        // The tag frame says which mode: "Info" for CBR, "Xing" for VBR.
        let head = std::fs::read(&path).unwrap();
        let tag_id = &head[..200]
            .windows(4)
            .find(|w| *w == b"Info" || *w == b"Xing");
        match mode {
            Mp3Mode::Cbr { kbps } => {
                assert_eq!(bit_rate, u64::from(kbps) * 1000);
                assert_eq!(*tag_id, Some(&b"Info"[..]));
            }
            Mp3Mode::Vbr { .. } => {
                // ffprobe gives the average from the Xing frame count and the file size.
                assert!((32_000..320_000).contains(&bit_rate), "{bit_rate}");
                assert_eq!(*tag_id, Some(&b"Xing"[..]));
            }
        }
        assert!(head[..1200].windows(4).any(|w| w == b"LAME"), "LAME tag");
    }
}

/// CBR files are bitrate × duration (plus one tag frame); V0 is bigger than V5, V5 than V9.
#[test]
fn sizes_follow_the_bitrate() {
    let dir = tmp();
    let secs = 20;
    for (rate, kbps) in [(44100, 128), (48000, 320), (32000, 32), (22050, 64)] {
        let planes = programme(rate, rate as usize * secs, 2);
        let mode = Mp3Mode::Cbr { kbps };
        let path = encode(
            dir.path(),
            &format!("c{kbps}.mp3"),
            rate,
            &planes,
            opts(mode),
        );
        let size = std::fs::metadata(&path).unwrap().len() as f64;
        let expected = f64::from(kbps) * 1000.0 / 8.0 * secs as f64;
        let err = size / expected - 1.0;
        eprintln!("{rate} Hz CBR {kbps}: {size} bytes, expected {expected} ({err:+.4})");
        assert!(err.abs() < 0.01, "{kbps} kbps: {size} vs {expected}");
    }
    let rate = 44100;
    let planes = programme(rate, rate as usize * secs, 2);
    let size = |v: u8| {
        let path = encode(
            dir.path(),
            &format!("v{v}.mp3"),
            rate,
            &planes,
            opts(Mp3Mode::Vbr { quality: v }),
        );
        let s = std::fs::metadata(&path).unwrap().len();
        eprintln!(
            "V{v}: {s} bytes, {:.0} kbps",
            s as f64 * 8.0 / secs as f64 / 1000.0
        );
        s
    };
    let (v0, v5, v9) = (size(0), size(5), size(9));
    assert!(v0 > v5 && v5 > v9, "V0 {v0} > V5 {v5} > V9 {v9}");
}

/// What MP3 cannot carry is refused up front with advice, never a panic.
#[test]
fn refuses_what_mp3_cannot_carry() {
    let dir = tmp();
    let path = dir.path().join("x.mp3");
    let try_new = |rate: u32, channels: usize, o: Mp3Options| {
        let file = std::fs::File::create(&path).unwrap();
        let spec = SignalSpec::with_channels(rate, channels);
        Mp3Encoder::new(file, path.clone(), &spec, &o)
    };
    let cases: Vec<(u32, usize, Mp3Options, &[&str])> = vec![
        (
            44100,
            6,
            Mp3Options::default(),
            &["at most 2 channels", "--channels 2"],
        ),
        (
            96000,
            2,
            Mp3Options::default(),
            &["cannot store 96000 Hz", "resample to 48000 or 44100"],
        ),
        (192000, 1, Mp3Options::default(), &["192000 Hz", "48000"]),
        (
            44000,
            2,
            Mp3Options::default(),
            &["cannot store 44000 Hz", "resample to 44100"],
        ),
        (0, 2, Mp3Options::default(), &["cannot store 0 Hz"]),
        (44100, 0, Mp3Options::default(), &["no channels"]),
        (
            44100,
            2,
            opts(Mp3Mode::Cbr { kbps: 150 }),
            &["no 150 kbps", "128, 160"],
        ),
        (44100, 2, opts(Mp3Mode::Cbr { kbps: 8 }), &["no 8 kbps"]),
        (
            22050,
            2,
            opts(Mp3Mode::Cbr { kbps: 320 }),
            &["22050 Hz has no 320 kbps", "144, 160"],
        ),
        (
            44100,
            2,
            opts(Mp3Mode::Vbr { quality: 10 }),
            &["V0", "V9", "not V10"],
        ),
        (
            44100,
            2,
            Mp3Options {
                quality: 10,
                ..Mp3Options::default()
            },
            &["0 (best", "not 10"],
        ),
    ];
    for (rate, ch, o, words) in cases {
        match try_new(rate, ch, o) {
            Err(e @ EncodeError::Unsupported { .. }) => {
                let msg = e.to_string();
                assert!(msg.starts_with(&path.display().to_string()), "{msg}");
                for w in words {
                    assert!(msg.contains(w), "{rate} Hz {ch} ch: {msg:?} lacks {w:?}");
                }
            }
            other => panic!("{rate} Hz {ch} ch {o:?}: {other:?}"),
        }
    }
}

/// Samples beyond full scale clip (NaN is silence) instead of wrapping or failing; a block
/// of the wrong width is an error, not a panic.
#[test]
fn out_of_range_samples_clip_and_bad_blocks_fail() {
    let dir = tmp();
    let rate = 44100;
    let mut s = sine(rate, rate as usize, 440.0, 4.0);
    s[100] = f32::NAN;
    s[200] = f32::INFINITY;
    s[300] = f32::NEG_INFINITY;
    let path = encode(dir.path(), "clip.mp3", rate, &[s.clone(), s], opts(CBR128));
    let d = decode_symphonia(&path);
    assert_eq!(d.frames(), rate as usize);
    let peak = d.planes[0].iter().fold(0.0f32, |m, v| m.max(v.abs()));
    assert!(peak < 1.3, "clipped before encoding: peak {peak}");

    let path = dir.path().join("bad.mp3");
    let spec = SignalSpec::with_channels(rate, 2);
    let file = std::fs::File::create(&path).unwrap();
    let mut enc = Mp3Encoder::new(file, path.clone(), &spec, &opts(CBR128)).unwrap();
    let e = enc
        .write(&Block::from_planes(vec![vec![0.0; 10]]))
        .unwrap_err();
    assert!(matches!(e, EncodeError::Codec { .. }), "{e}");
}

/// An encoder finished without audio still leaves a well-formed file of no frames.
#[test]
fn empty_stream() {
    let dir = tmp();
    let path = encode(
        dir.path(),
        "empty.mp3",
        44100,
        &[Vec::new(), Vec::new()],
        opts(CBR128),
    );
    let size = std::fs::metadata(&path).unwrap().len();
    eprintln!("empty stream: {size} bytes");
    if size > 0 {
        assert_eq!(decode_symphonia(&path).frames(), 0);
    }
}

/// Tags are added after encoding (lofty puts an ID3v2 tag in front): the length stays exact.
#[test]
fn id3v2_tag_added_afterwards_keeps_the_exact_length() {
    use lofty::config::WriteOptions;
    use lofty::prelude::*;
    use lofty::tag::{Tag, TagType};
    let dir = tmp();
    let rate = 44100;
    let frames = rate as usize * 2 + 77;
    let planes = programme(rate, frames, 2);
    let path = encode(
        dir.path(),
        "tagged.mp3",
        rate,
        &planes,
        opts(Mp3Mode::Vbr { quality: 2 }),
    );
    let mut tag = Tag::new(TagType::Id3v2);
    tag.set_title("Sluice".to_string());
    tag.save_to_path(&path, WriteOptions::default()).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(&bytes[..3], b"ID3");
    assert_eq!(decode_symphonia(&path).frames(), frames);
    if let Some(ffmpeg) = tool("ffmpeg") {
        assert_eq!(decode_ffmpeg(&ffmpeg, &path, 2)[0].len(), frames);
    }
}
