//! FLAC encoder: bit-exact round trips through symphonia, `flac -t` and ffmpeg, STREAMINFO,
//! compression levels and option errors.
//!
//! The external tools are optional: a test that needs one prints a notice and passes when the
//! tool is missing, unless `SLUICE_REQUIRE_TOOLS=1`, when it fails.

mod common;

use sluice_core::encode::flac::{FlacEncoder, FlacOptions};
use sluice_core::encode::{EncodeError, Encoder};
use sluice_core::render::{Block, SignalSpec};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;

// ---------------------------------------------------------------------------------------------
// Signals: integers on the grid of `bits`, generated here (deterministic).

/// SplitMix64: small, deterministic, good enough for test noise.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [-1, 1).
    fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }
}

fn full_scale(bits: u32) -> f64 {
    (1u64 << (bits - 1)) as f64
}

/// Quantize a signal in [-1, 1] to integers of `bits` (rounded, clamped).
fn quantize(x: f64, bits: u32) -> i32 {
    let s = full_scale(bits);
    (x * s).round().clamp(-s, s - 1.0) as i32
}

fn sine(frames: usize, rate: u32, freq: f64, amp: f64, phase: f64) -> Vec<f64> {
    let w = 2.0 * std::f64::consts::PI * freq / f64::from(rate);
    (0..frames)
        .map(|n| amp * (w * n as f64 + phase).sin())
        .collect()
}

fn noise(frames: usize, amp: f64, seed: u64) -> Vec<f64> {
    let mut r = Rng(seed);
    (0..frames).map(|_| amp * r.uniform()).collect()
}

/// Exponential sweep from `f0` to `f1` Hz.
fn sweep(frames: usize, rate: u32, f0: f64, f1: f64, amp: f64) -> Vec<f64> {
    let t = frames as f64 / f64::from(rate);
    let k = (f1 / f0).ln();
    (0..frames)
        .map(|n| {
            let x = n as f64 / f64::from(rate);
            let phase = 2.0 * std::f64::consts::PI * f0 * t / k * ((x / t * k).exp() - 1.0);
            amp * phase.sin()
        })
        .collect()
}

/// Programme-like audio: notes with decaying harmonics over low-passed noise, two channels
/// that are related but not identical.
fn programme(frames: usize, rate: u32, channels: usize, seed: u64) -> Vec<Vec<f64>> {
    let mut r = Rng(seed);
    let sr = f64::from(rate);
    let note_len = (sr * 0.25) as usize;
    let mut out = vec![vec![0.0; frames]; channels];
    let mut lp = vec![0.0; channels];
    let mut start = 0;
    while start < frames {
        let f = 110.0 * 2f64.powf((r.uniform() + 1.0) * 2.5);
        let end = (start + note_len).min(frames);
        let pans: Vec<f64> = (0..channels).map(|_| 0.6 + 0.4 * r.uniform()).collect();
        for n in start..end {
            let t = (n - start) as f64 / sr;
            let env = (-t * 6.0).exp();
            let mut v = 0.0;
            for h in 1..=6 {
                let hf = f * f64::from(h);
                if hf < sr / 2.0 {
                    v += (2.0 * std::f64::consts::PI * hf * t).sin() / f64::from(h);
                }
            }
            for (c, ch) in out.iter_mut().enumerate() {
                lp[c] += 0.05 * (r.uniform() - lp[c]);
                ch[n] = 0.25 * env * v * pans[c] + 0.02 * lp[c];
            }
        }
        start = end;
    }
    out
}

fn to_ints(planes: &[Vec<f64>], bits: u32) -> Vec<Vec<i32>> {
    planes
        .iter()
        .map(|p| p.iter().map(|&x| quantize(x, bits)).collect())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Encoding and decoding.

/// Irregular block sizes, including single frames and blocks larger than a FLAC frame.
const BLOCKS: [usize; 12] = [
    1, 4095, 4096, 4097, 7, 10_000, 333, 2, 8191, 1024, 1, 65_536,
];

struct Out {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

fn spec(rate: u32, channels: usize) -> SignalSpec {
    SignalSpec::with_channels(rate, channels)
}

/// Encode integer planes (as `f32` on the grid) in irregular blocks.
fn encode_ints(ints: &[Vec<i32>], rate: u32, opts: &FlacOptions) -> Out {
    let s = full_scale(opts.bits) as f32;
    let planes: Vec<Vec<f32>> = ints
        .iter()
        .map(|p| p.iter().map(|&v| v as f32 / s).collect())
        .collect();
    encode_f32(&planes, rate, opts)
}

fn encode_f32(planes: &[Vec<f32>], rate: u32, opts: &FlacOptions) -> Out {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.flac");
    let file = File::create(&path).unwrap();
    let mut enc: Box<dyn Encoder> = Box::new(
        FlacEncoder::new(file, path.clone(), &spec(rate, planes.len()), opts)
            .unwrap_or_else(|e| panic!("{e}")),
    );
    let frames = planes[0].len();
    let mut pos = 0;
    let mut i = 0;
    while pos < frames {
        let n = BLOCKS[i % BLOCKS.len()].min(frames - pos);
        let block = Block::from_planes(planes.iter().map(|p| p[pos..pos + n].to_vec()).collect());
        enc.write(&block).unwrap_or_else(|e| panic!("{e}"));
        pos += n;
        i += 1;
    }
    enc.write(&Block::new(planes.len())).unwrap(); // an empty block is fine
    enc.finish().unwrap_or_else(|e| panic!("{e}"));
    Out { _dir: dir, path }
}

struct Decoded {
    planes: Vec<Vec<i32>>,
    rate: u32,
    bits: u32,
    md5_ok: Option<bool>,
}

/// Decode with symphonia, samples back to integers of the stream's depth.
fn decode_symphonia(path: &Path) -> Decoded {
    use symphonia::core::codecs::audio::AudioDecoderOptions;
    use symphonia::core::formats::probe::Hint;
    use symphonia::core::formats::{FormatOptions, TrackType};
    use symphonia::core::io::MediaSourceStream;
    use symphonia::core::meta::MetadataOptions;

    let mss = MediaSourceStream::new(Box::new(File::open(path).unwrap()), Default::default());
    let mut hint = Hint::new();
    hint.with_extension("flac");
    let mut format = symphonia::default::get_probe()
        .probe(
            &hint,
            mss,
            FormatOptions::default(),
            MetadataOptions::default(),
        )
        .unwrap_or_else(|e| panic!("symphonia cannot open {}: {e}", path.display()));
    let track = format.default_track(TrackType::Audio).unwrap();
    let track_id = track.id;
    let params = track
        .codec_params
        .as_ref()
        .and_then(|c| c.audio())
        .unwrap()
        .clone();
    let bits = params.bits_per_sample.unwrap();
    let rate = params.sample_rate.unwrap();
    let channels = params.channels.as_ref().unwrap().count();
    let mut dec = symphonia::default::get_codecs()
        .make_audio_decoder(&params, &AudioDecoderOptions::default().verify(true))
        .unwrap();
    let mut planes = vec![Vec::new(); channels];
    let mut buf: Vec<Vec<i32>> = vec![Vec::new(); channels];
    while let Some(packet) = format.next_packet().unwrap() {
        if packet.track_id != track_id {
            continue;
        }
        let decoded = dec.decode(&packet).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(decoded.num_planes(), channels);
        for b in &mut buf {
            b.resize(decoded.frames(), 0);
        }
        decoded.copy_to_slice_planar::<i32, _>(&mut buf);
        for (p, b) in planes.iter_mut().zip(&buf) {
            // symphonia left-aligns FLAC samples in 32 bits.
            p.extend(b.iter().map(|&s| s >> (32 - bits)));
        }
    }
    let md5_ok = dec.finalize().verify_ok;
    Decoded {
        planes,
        rate,
        bits,
        md5_ok,
    }
}

/// STREAMINFO, read straight from the file.
#[derive(Debug)]
struct StreamInfo {
    min_block: u16,
    max_block: u16,
    rate: u32,
    channels: u32,
    bits: u32,
    total: u64,
    md5: [u8; 16],
}

fn streaminfo(path: &Path) -> StreamInfo {
    let b = std::fs::read(path).unwrap();
    assert_eq!(&b[..4], b"fLaC");
    assert_eq!(b[4] & 0x7f, 0, "the first metadata block is STREAMINFO");
    let s = &b[8..42];
    let packed = u64::from_be_bytes(s[10..18].try_into().unwrap());
    StreamInfo {
        min_block: u16::from_be_bytes([s[0], s[1]]),
        max_block: u16::from_be_bytes([s[2], s[3]]),
        rate: (packed >> 44) as u32,
        channels: ((packed >> 41) & 0x7) as u32 + 1,
        bits: ((packed >> 36) & 0x1f) as u32 + 1,
        total: packed & ((1 << 36) - 1),
        md5: s[18..34].try_into().unwrap(),
    }
}

fn assert_same(got: &[Vec<i32>], want: &[Vec<i32>], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: channel count");
    for (c, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g.len(), w.len(), "{what}: frame count of channel {c}");
        if let Some(i) = g.iter().zip(w).position(|(a, b)| a != b) {
            panic!(
                "{what}: channel {c} differs first at frame {i}: got {}, want {}",
                g[i], w[i]
            );
        }
    }
}

/// Every check that needs no external tool.
fn check_roundtrip(out: &Out, want: &[Vec<i32>], rate: u32, bits: u32, what: &str) {
    let d = decode_symphonia(&out.path);
    assert_eq!(d.rate, rate, "{what}: sample rate");
    assert_eq!(d.bits, bits, "{what}: bits per sample");
    assert_same(&d.planes, want, what);
    let frames = want[0].len() as u64;
    let si = streaminfo(&out.path);
    assert_eq!(si.total, frames, "{what}: STREAMINFO total samples");
    assert_eq!(si.rate, rate, "{what}: STREAMINFO rate");
    assert_eq!(
        si.channels as usize,
        want.len(),
        "{what}: STREAMINFO channels"
    );
    assert_eq!(si.bits, bits, "{what}: STREAMINFO bits");
    assert!(
        si.min_block >= 16 && si.min_block <= si.max_block,
        "{what}: {si:?}"
    );
    if frames > 0 {
        assert_ne!(si.md5, [0; 16], "{what}: MD5 is written");
        assert_eq!(
            d.md5_ok,
            Some(true),
            "{what}: MD5 matches the decoded audio"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// External tools.

/// `flac -t`: decodes every frame and checks CRCs and the MD5 signature.
fn flac_test(path: &Path) {
    if common::tool("flac").is_none() {
        return;
    }
    let o = Command::new("flac")
        .args(["-t", "-s", "--"])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "flac -t failed on {}: {}",
        path.display(),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// ffmpeg decodes the file to the same integers.
fn ffmpeg_check(path: &Path, want: &[Vec<i32>], bits: u32) {
    if common::tool("ffmpeg").is_none() {
        return;
    }
    let o = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args(["-f", "s32le", "-c:a", "pcm_s32le", "-"])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "ffmpeg failed on {}: {}",
        path.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    let ch = want.len();
    let samples: Vec<i32> = o
        .stdout
        .chunks_exact(4)
        .map(|b| i32::from_le_bytes(b.try_into().unwrap()) >> (32 - bits))
        .collect();
    let mut planes = vec![Vec::new(); ch];
    for frame in samples.chunks_exact(ch) {
        for (p, &s) in planes.iter_mut().zip(frame) {
            p.push(s);
        }
    }
    assert_same(&planes, want, "ffmpeg");
}

fn check_all(out: &Out, want: &[Vec<i32>], rate: u32, bits: u32, what: &str) {
    check_roundtrip(out, want, rate, bits, what);
    flac_test(&out.path);
    ffmpeg_check(&out.path, want, bits);
}

// ---------------------------------------------------------------------------------------------
// Round trips.

#[test]
fn stereo_16_bit_44k_sines_and_noise() {
    let rate = 44_100;
    let frames = rate as usize * 3 + 17; // not a multiple of any block size
    let l: Vec<f64> = sine(frames, rate, 440.0, 0.5, 0.0)
        .iter()
        .zip(noise(frames, 0.05, 1))
        .map(|(a, b)| a + b)
        .collect();
    let r = sine(frames, rate, 660.0, 0.7, 1.0);
    let ints = to_ints(&[l, r], 16);
    let opts = FlacOptions::default();
    let out = encode_ints(&ints, rate, &opts);
    check_all(&out, &ints, rate, 16, "stereo 16-bit");
    let si = streaminfo(&out.path);
    assert_eq!((si.min_block, si.max_block), (4096, 4096));
}

#[test]
fn stereo_24_bit_96k_sweep_noise_and_extremes() {
    let rate = 96_000;
    let frames = rate as usize * 2 + 4095;
    let mut l = sweep(frames, rate, 20.0, 40_000.0, 0.9);
    let mut r = noise(frames, 1.0, 2); // full-scale noise
    // Full-scale square at Nyquist and rails: the hardest case for predictors.
    for n in 0..4096 {
        l[n] = if n % 2 == 0 { 1.0 } else { -1.0 };
        r[frames - 1 - n] = if n % 3 == 0 { -1.0 } else { 1.0 };
    }
    let ints = to_ints(&[l, r], 24);
    for level in [0, 5, 8] {
        let opts = FlacOptions {
            bits: 24,
            compression_level: level,
        };
        let out = encode_ints(&ints, rate, &opts);
        check_all(
            &out,
            &ints,
            rate,
            24,
            &format!("stereo 24-bit level {level}"),
        );
    }
}

#[test]
fn mono_16_bit_48k() {
    let rate = 48_000;
    let frames = 100_003;
    let x: Vec<f64> = sweep(frames, rate, 30.0, 20_000.0, 0.8)
        .iter()
        .zip(noise(frames, 0.01, 3))
        .map(|(a, b)| a + b)
        .collect();
    let ints = to_ints(&[x], 16);
    let out = encode_ints(&ints, rate, &FlacOptions::default());
    check_all(&out, &ints, rate, 16, "mono 16-bit");
}

#[test]
fn six_channels_24_bit_48k() {
    let rate = 48_000;
    let frames = 48_000 + 1234;
    let planes: Vec<Vec<f64>> = (0..6)
        .map(|c| match c {
            3 => sine(frames, rate, 60.0, 0.5, 0.0), // LFE
            5 => vec![0.0; frames],                  // a silent channel
            _ => sine(frames, rate, 200.0 * (c + 1) as f64, 0.3, c as f64)
                .iter()
                .zip(noise(frames, 0.1, 10 + c as u64))
                .map(|(a, b)| a + b)
                .collect(),
        })
        .collect();
    let ints = to_ints(&planes, 24);
    let opts = FlacOptions {
        bits: 24,
        compression_level: 5,
    };
    let out = encode_ints(&ints, rate, &opts);
    check_all(&out, &ints, rate, 24, "6 channels 24-bit");
}

#[test]
fn eight_and_twenty_bit() {
    let rate = 44_100;
    let frames = 30_000;
    for bits in [8, 20] {
        let planes = vec![
            sine(frames, rate, 1000.0, 0.9, 0.0),
            noise(frames, 0.9, u64::from(bits)),
        ];
        let ints = to_ints(&planes, bits);
        let opts = FlacOptions {
            bits,
            compression_level: 5,
        };
        let out = encode_ints(&ints, rate, &opts);
        check_all(&out, &ints, rate, bits, &format!("{bits}-bit"));
    }
}

#[test]
fn out_of_range_samples_clip_and_off_grid_samples_round() {
    let rate = 44_100;
    let s = 32_768.0f32;
    let x = vec![
        1.0,
        1.5,
        -1.0,
        -1.5,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        0.0,
        -0.0,
        (1000.0 + 0.4) / s,
        (-1000.0 - 0.6) / s,
        32_767.0 / s,
    ];
    let want = [
        32_767, 32_767, -32_768, -32_768, 32_767, -32_768, 0, 0, 0, 1000, -1001, 32_767,
    ];
    let frames = x.len();
    // Repeated, for a stream of more than one FLAC frame.
    let planes = vec![x.repeat(1000)];
    let want = vec![want.repeat(1000)];
    assert_eq!(planes[0].len(), frames * 1000);
    let out = encode_f32(&planes, rate, &FlacOptions::default());
    check_all(&out, &want, rate, 16, "clipping");
}

#[test]
fn rates_44k_48k_96k_and_unusual_rates() {
    // The frame header codes some rates directly, others through extra bytes or STREAMINFO.
    for rate in [
        44_100, 48_000, 96_000, 192_000, 22_050, 11_025, 37_800, 384_000, 655_350,
    ] {
        let frames = 5000;
        let ints = to_ints(
            &[
                sine(frames, rate, 997.0, 0.5, 0.0),
                noise(frames, 0.3, u64::from(rate)),
            ],
            16,
        );
        let out = encode_ints(&ints, rate, &FlacOptions::default());
        check_all(&out, &ints, rate, 16, &format!("{rate} Hz"));
    }
}

#[test]
fn short_streams() {
    let rate = 48_000;
    for frames in [1, 15, 16, 17, 4095, 4096, 4097, 8193] {
        let ints = to_ints(
            &[
                noise(frames, 0.5, frames as u64),
                noise(frames, 0.5, 7 + frames as u64),
            ],
            16,
        );
        let out = encode_ints(&ints, rate, &FlacOptions::default());
        check_all(&out, &ints, rate, 16, &format!("{frames} frames"));
    }
}

#[test]
fn empty_stream_is_a_valid_file() {
    let out = encode_f32(&[Vec::new(), Vec::new()], 44_100, &FlacOptions::default());
    let si = streaminfo(&out.path);
    assert_eq!(si.total, 0);
    flac_test(&out.path);
    ffmpeg_check(&out.path, &[Vec::new(), Vec::new()], 16);
    // symphonia 0.6.1 cannot open a FLAC stream without frames (libFLAC's own included).
}

// ---------------------------------------------------------------------------------------------
// Compression.

#[test]
fn levels_differ_in_size_and_all_decode() {
    let rate = 44_100;
    let planes = programme(rate as usize * 8 + 999, rate, 2, 42);
    let ints = to_ints(&planes, 16);
    let mut sizes = Vec::new();
    for level in 0..=8 {
        let opts = FlacOptions {
            bits: 16,
            compression_level: level,
        };
        let out = encode_ints(&ints, rate, &opts);
        check_roundtrip(&out, &ints, rate, 16, &format!("level {level}"));
        if level % 4 == 0 {
            flac_test(&out.path);
        }
        sizes.push(std::fs::metadata(&out.path).unwrap().len());
    }
    eprintln!("sizes by level: {sizes:?}");
    let pcm = (ints[0].len() * 4) as u64;
    assert!(sizes[0] < pcm, "level 0 compresses: {sizes:?}");
    assert!(sizes[0] > sizes[5] && sizes[5] > sizes[8], "{sizes:?}");
    assert!(
        sizes.windows(2).all(|w| w[1] <= w[0]),
        "higher levels are never larger: {sizes:?}"
    );
    let mut distinct = sizes.clone();
    distinct.dedup();
    // Neighbouring presets can tie on some material (0 and 1 differ only in stereo coding).
    assert!(distinct.len() >= 6, "levels make a difference: {sizes:?}");
}

#[test]
fn level_8_escapes_noise_partitions_and_decodes() {
    // Uniform noise whose scale steps every 512 samples: each partition is cheaper raw (at
    // its own width) than Rice coded, and cheaper than a verbatim subframe.
    let rate = 44_100;
    let frames = 20_000;
    let stepped: Vec<f64> = noise(frames, 1.0, 21)
        .iter()
        .enumerate()
        .map(|(n, &x)| x / f64::from(1 << ((n / 512) % 6)))
        .collect();
    for bits in [16, 24] {
        let ints = to_ints(
            &[stepped.clone(), sweep(frames, rate, 50.0, 5000.0, 0.5)],
            bits,
        );
        let opts = FlacOptions {
            bits,
            compression_level: 8,
        };
        let out = encode_ints(&ints, rate, &opts);
        check_all(
            &out,
            &ints,
            rate,
            bits,
            &format!("{bits}-bit noise, level 8"),
        );
    }
}

#[test]
fn noise_compresses_poorly_and_silence_well() {
    let rate = 44_100;
    let frames = rate as usize * 5;
    let pcm = (frames * 2 * 2) as u64;
    let noisy = to_ints(&[noise(frames, 1.0, 5), noise(frames, 1.0, 6)], 16);
    let out = encode_ints(&noisy, rate, &FlacOptions::default());
    check_roundtrip(&out, &noisy, rate, 16, "noise");
    let size = std::fs::metadata(&out.path).unwrap().len();
    assert!(size * 100 > pcm * 95, "noise: {size} of {pcm} bytes");

    let silent = vec![vec![0; frames]; 2];
    let out = encode_ints(&silent, rate, &FlacOptions::default());
    check_all(&out, &silent, rate, 16, "silence");
    let size = std::fs::metadata(&out.path).unwrap().len();
    assert!(size * 100 < pcm, "silence: {size} of {pcm} bytes");
}

// ---------------------------------------------------------------------------------------------
// Frame layout: headers, stereo modes, wasted bits, seek table.

/// Offset of the first frame: after "fLaC" and the metadata blocks.
fn audio_start(b: &[u8]) -> usize {
    let mut pos = 4;
    loop {
        let last = b[pos] & 0x80 != 0;
        let len = u32::from_be_bytes([0, b[pos + 1], b[pos + 2], b[pos + 3]]) as usize;
        pos += 4 + len;
        if last {
            return pos;
        }
    }
}

/// The metadata blocks: (type, body).
fn metadata_blocks(b: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut pos = 4;
    let mut out = Vec::new();
    loop {
        let last = b[pos] & 0x80 != 0;
        let len = u32::from_be_bytes([0, b[pos + 1], b[pos + 2], b[pos + 3]]) as usize;
        out.push((b[pos] & 0x7f, b[pos + 4..pos + 4 + len].to_vec()));
        pos += 4 + len;
        if last {
            return out;
        }
    }
}

/// The first frame's header bytes.
fn first_frame(path: &Path) -> Vec<u8> {
    let b = std::fs::read(path).unwrap();
    let start = audio_start(&b);
    assert_eq!(&b[start..start + 2], [0xFF, 0xF8], "frame sync");
    b[start..].to_vec()
}

#[test]
fn streaminfo_block_size_is_the_levels_not_the_short_last_blocks() {
    let rate = 44_100;
    for (level, block) in [(0u8, 1152u16), (2, 1152), (3, 4096), (5, 4096), (8, 4096)] {
        for frames in [
            usize::from(block) * 3 + 100,
            usize::from(block) + 1,
            usize::from(block) - 1,
        ] {
            let ints = to_ints(
                &[
                    sine(frames, rate, 440.0, 0.5, 0.0),
                    noise(frames, 0.1, frames as u64),
                ],
                16,
            );
            let opts = FlacOptions {
                bits: 16,
                compression_level: level,
            };
            let out = encode_ints(&ints, rate, &opts);
            let what = format!("level {level}, {frames} frames");
            check_roundtrip(&out, &ints, rate, 16, &what);
            let si = streaminfo(&out.path);
            assert_eq!((si.min_block, si.max_block), (block, block), "{what}");
        }
    }
}

#[test]
fn last_blocks_of_every_size_class_decode() {
    // The last block's size goes in the header's table (192, 576, 1152, 2048...), in 8 bits
    // (up to 256) or in 16 bits.
    let rate = 48_000;
    for (level, block) in [(5u8, 4096usize), (0, 1152)] {
        for tail in [
            1, 16, 17, 192, 255, 256, 257, 576, 1000, 1024, 1151, 2048, 4095,
        ] {
            if tail >= block {
                continue;
            }
            let frames = block + tail;
            let ints = to_ints(
                &[
                    sweep(frames, rate, 100.0, 10_000.0, 0.7),
                    noise(frames, 0.4, tail as u64),
                ],
                16,
            );
            let opts = FlacOptions {
                bits: 16,
                compression_level: level,
            };
            let out = encode_ints(&ints, rate, &opts);
            check_all(
                &out,
                &ints,
                rate,
                16,
                &format!("level {level}, last block {tail}"),
            );
        }
    }
}

#[test]
fn all_four_stereo_modes_occur_and_decode_exactly() {
    let rate = 44_100;
    let frames = 3 * 4096;
    let loud = |seed| -> Vec<i32> {
        to_ints(&[noise(frames, 0.9, seed)], 16)
            .remove(0)
            .into_iter()
            .map(|v| (v / 4) * 4) // two wasted bits
            .collect()
    };
    let small = |seed| to_ints(&[noise(frames, 0.0001, seed)], 16).remove(0);
    let tone = to_ints(&[programme(frames, rate, 1, 3).remove(0)], 16).remove(0);
    let base = loud(1);
    let near: Vec<i32> = base
        .iter()
        .zip(small(2))
        .map(|(&a, b)| (a + b + 1).clamp(-32_768, 32_767) | 1)
        .collect();
    let cases: [(&str, Vec<Vec<i32>>, u8); 5] = [
        // Side is constant (0); left/side is the first of the equal options.
        ("identical", vec![tone.clone(), tone.clone()], 8),
        // Mid is constant (0).
        (
            "inverted",
            vec![
                tone.clone(),
                tone.iter().map(|&v| -v.max(-32_767)).collect(),
            ],
            10,
        ),
        ("independent", vec![loud(5), loud(6)], 1),
        // The channel with wasted bits is the cheap one; side is small.
        ("left/side", vec![base.clone(), near.clone()], 8),
        ("right/side", vec![near, base], 9),
    ];
    for (what, ints, want) in cases {
        let out = encode_ints(&ints, rate, &FlacOptions::default());
        check_all(&out, &ints, rate, 16, what);
        let assignment = first_frame(&out.path)[3] >> 4;
        assert_eq!(assignment, want, "{what}: channel assignment");
    }
}

#[test]
fn wasted_bits_are_found_and_coded() {
    let rate = 44_100;
    let frames = 20_000;
    // 16-bit samples that are all multiples of 256: 8-bit content.
    let ints: Vec<Vec<i32>> = to_ints(&[noise(frames, 0.8, 11)], 8)
        .into_iter()
        .map(|p| p.into_iter().map(|v| v * 256).collect())
        .collect();
    let out = encode_ints(&ints, rate, &FlacOptions::default());
    check_all(&out, &ints, rate, 16, "multiples of 256");
    // Header of frame 0 at 44.1 kHz with a 4096 block is 6 bytes; the subframe header's last
    // bit is the wasted-bits flag, then unary 7 (k - 1 = 7 zeros and a one).
    let f = first_frame(&out.path);
    assert_eq!(f[6] & 1, 1, "wasted-bits flag");
    assert_eq!(f[7], 0b0000_0001, "8 wasted bits in unary");
    let size = std::fs::metadata(&out.path).unwrap().len();
    // Noise costs its 8 real bits per sample, not 16.
    assert!(size < (frames as u64) * 9 / 8 + 5000, "{size} bytes");
}

#[test]
fn extreme_24_bit_signals_at_every_level() {
    let rate = 48_000;
    let frames = 4096 * 2 + 333;
    let max = (1 << 23) - 1;
    let min = -(1 << 23);
    let alternate: Vec<i32> = (0..frames)
        .map(|n| if n % 2 == 0 { max } else { min })
        .collect();
    let square: Vec<i32> = (0..frames)
        .map(|n| if (n / 37) % 2 == 0 { max } else { min })
        .collect();
    let rails: Vec<i32> = (0..frames)
        .map(|n| match n % 5 {
            0 | 1 => min,
            2 => max,
            3 => 0,
            _ => max - 1,
        })
        .collect();
    let cases = [
        ("±2^23 alternation", vec![alternate.clone(), square.clone()]),
        ("square and rails", vec![square, rails.clone()]),
        (
            "inverted rails",
            vec![rails.clone(), rails.iter().map(|&v| -v.max(-max)).collect()],
        ),
    ];
    for level in 0..=8 {
        for (what, ints) in &cases {
            let opts = FlacOptions {
                bits: 24,
                compression_level: level,
            };
            let out = encode_ints(ints, rate, &opts);
            check_all(&out, ints, rate, 24, &format!("{what}, level {level}"));
        }
    }
}

#[test]
fn sample_rates_in_every_header_form() {
    // (rate, the header's rate code): a table entry, kHz in 8 bits, Hz in 16 bits, tens of Hz
    // in 16 bits, and none (decoders take STREAMINFO's).
    for (rate, code) in [
        (44_100, 9u8),
        (11_000, 12),
        (22_051, 13),
        (176_410, 14),
        (100_001, 0),
        (1, 13),
    ] {
        let frames = 6000;
        let ints = to_ints(
            &[
                sine(frames, rate, f64::from(rate) / 50.0, 0.5, 0.0),
                noise(frames, 0.2, u64::from(rate)),
            ],
            16,
        );
        let out = encode_ints(&ints, rate, &FlacOptions::default());
        check_all(&out, &ints, rate, 16, &format!("{rate} Hz"));
        assert_eq!(first_frame(&out.path)[2] & 0x0F, code, "{rate} Hz");
    }
}

#[test]
fn seek_table_has_a_point_every_ten_seconds_while_it_fits() {
    // At 100 Hz a 4096-sample frame lasts 41 s, so every frame holds a 10-second mark.
    let rate = 100;
    for (frames_count, table) in [(4usize, true), (227, true), (228, false)] {
        let frames = frames_count * 4096 - 10;
        let ints = vec![
            (0..frames)
                .map(|n| ((n / 300) % 7) as i32 * 100)
                .collect::<Vec<i32>>(),
        ];
        let out = encode_ints(&ints, rate, &FlacOptions::default());
        flac_test(&out.path);
        let b = std::fs::read(&out.path).unwrap();
        let blocks = metadata_blocks(&b);
        let start = audio_start(&b);
        assert_eq!(start, 4 + 38 + 4 + 4096, "the metadata keeps its size");
        let seek: Vec<_> = blocks.iter().filter(|(t, _)| *t == 3).collect();
        let padding = blocks.iter().find(|(t, _)| *t == 1).expect("padding");
        if !table {
            assert!(seek.is_empty(), "{frames_count} frames: no seek table");
            assert_eq!(padding.1.len(), 4096);
            continue;
        }
        assert_eq!(seek.len(), 1);
        let points: Vec<(u64, u64, u16)> = seek[0]
            .1
            .chunks_exact(18)
            .map(|p| {
                (
                    u64::from_be_bytes(p[..8].try_into().unwrap()),
                    u64::from_be_bytes(p[8..16].try_into().unwrap()),
                    u16::from_be_bytes([p[16], p[17]]),
                )
            })
            .collect();
        assert_eq!(points.len(), frames_count);
        assert_eq!(padding.1.len(), 4096 - 4 - 18 * frames_count);
        for (i, &(sample, offset, n)) in points.iter().enumerate() {
            assert_eq!(sample, i as u64 * 4096);
            let expect_n = if i + 1 == frames_count {
                4096 - 10
            } else {
                4096
            };
            assert_eq!(n, expect_n);
            let at = start + offset as usize;
            assert_eq!(&b[at..at + 2], [0xFF, 0xF8], "point {i} is at a frame");
        }
    }
    // At 44.1 kHz: points at 0, 10, 20 and 30 s, each in the frame holding the mark.
    let rate = 44_100;
    let frames = rate as usize * 35;
    let ints = to_ints(&[sine(frames, rate, 220.0, 0.3, 0.0)], 16);
    let out = encode_ints(&ints, rate, &FlacOptions::default());
    let b = std::fs::read(&out.path).unwrap();
    let blocks = metadata_blocks(&b);
    let (_, table) = blocks.iter().find(|(t, _)| *t == 3).expect("seek table");
    let samples: Vec<u64> = table
        .chunks_exact(18)
        .map(|p| u64::from_be_bytes(p[..8].try_into().unwrap()))
        .collect();
    let want: Vec<u64> = [0u64, 441_000, 882_000, 1_323_000]
        .iter()
        .map(|s| s / 4096 * 4096)
        .collect();
    assert_eq!(samples, want);
}

#[test]
fn random_signals_settings_and_block_sizes_round_trip() {
    // Segments of silence, constants, rails, squares, tones and noise of random scale, at
    // random depths, channel counts, levels and lengths: every file decodes to its input.
    let mut r = Rng(0xF1AC);
    let mut pick = |n: u64| (r.next_u64() % n) as usize;
    for case in 0..40 {
        let bits = [8, 16, 20, 24][pick(4)];
        let channels = [1, 2, 2, 2, 3, 6, 8][pick(7)];
        let level = pick(9) as u8;
        let rate = [8_000, 44_100, 48_000, 96_000, 22_051][pick(5)];
        let frames = [1, 3, 5, 31, 100, 1153, 4097, 9000][pick(8)];
        let max = (1i64 << (bits - 1)) - 1;
        let mut planes = vec![Vec::with_capacity(frames); channels];
        for plane in planes.iter_mut() {
            while plane.len() < frames {
                let len = (1 + pick(3000)).min(frames - plane.len());
                let kind = pick(7);
                let scale = max >> pick(u64::from(bits));
                let mut noise_rng = Rng(pick(1 << 30) as u64);
                for n in 0..len {
                    let v: i64 = match kind {
                        0 => 0,
                        1 => scale,
                        2 => {
                            if n % 2 == 0 {
                                max
                            } else {
                                -max - 1
                            }
                        }
                        3 => {
                            if (n / 7) % 2 == 0 {
                                scale
                            } else {
                                -scale
                            }
                        }
                        4 => (scale as f64 * (n as f64 * 0.05).sin()) as i64,
                        5 => (scale as f64 * noise_rng.uniform()).round() as i64,
                        _ => -max - 1,
                    };
                    plane.push(v.clamp(-max - 1, max) as i32);
                }
            }
        }
        // Sometimes a channel pair is identical or inverted.
        if channels >= 2 && pick(3) == 0 {
            planes[1] = planes[0].iter().map(|&v| -(v.max(-max as i32))).collect();
        }
        let opts = FlacOptions {
            bits,
            compression_level: level,
        };
        let out = encode_ints(&planes, rate, &opts);
        let what = format!(
            "case {case}: {bits} bits, {channels} ch, level {level}, {rate} Hz, {frames} frames"
        );
        check_roundtrip(&out, &planes, rate, bits, &what);
        flac_test(&out.path);
    }
}

// ---------------------------------------------------------------------------------------------
// Errors.

fn new_err(spec: &SignalSpec, opts: &FlacOptions) -> EncodeError {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.flac");
    let file = File::create(&path).unwrap();
    match FlacEncoder::new(file, path, spec, opts) {
        Ok(_) => panic!("{spec:?} {opts:?} was accepted"),
        Err(e) => e,
    }
}

fn assert_unsupported(e: EncodeError, words: &[&str]) {
    let msg = e.to_string();
    assert!(
        matches!(e, EncodeError::Unsupported { .. }),
        "not Unsupported: {e:?}"
    );
    assert!(msg.contains("x.flac"), "names the file: {msg}");
    for w in words {
        assert!(msg.contains(w), "{msg:?} should mention {w:?}");
    }
}

#[test]
fn unsupported_options_are_refused_with_a_reason() {
    let stereo = spec(44_100, 2);
    for bits in [0, 1, 4, 12, 17, 32, 64] {
        let opts = FlacOptions {
            bits,
            compression_level: 5,
        };
        assert_unsupported(new_err(&stereo, &opts), &["bit depth", &bits.to_string()]);
    }
    let opts = FlacOptions::default();
    for ch in [0, 9, 64] {
        assert_unsupported(
            new_err(&spec(44_100, ch), &opts),
            &["channels", &ch.to_string()],
        );
    }
    for rate in [0, 1_048_576, 4_000_000] {
        assert_unsupported(
            new_err(&spec(rate, 2), &opts),
            &["sample rate", &rate.to_string()],
        );
    }
    let opts = FlacOptions {
        bits: 16,
        compression_level: 9,
    };
    assert_unsupported(new_err(&stereo, &opts), &["compression level", "9"]);
}

#[test]
fn a_block_of_the_wrong_width_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.flac");
    let file = File::create(&path).unwrap();
    let mut enc = FlacEncoder::new(file, path, &spec(44_100, 2), &FlacOptions::default()).unwrap();
    let e = enc
        .write(&Block::from_planes(vec![vec![0.0; 10]]))
        .unwrap_err();
    assert!(matches!(e, EncodeError::Codec { .. }), "{e:?}");
}

#[test]
fn write_failures_are_io_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.flac");
    std::fs::write(&path, b"").unwrap();
    // Read-only handle: every write fails, whenever the buffer reaches the file.
    let file = File::open(&path).unwrap();
    let result = FlacEncoder::new(
        file,
        path.clone(),
        &spec(44_100, 2),
        &FlacOptions::default(),
    )
    .and_then(|enc| {
        let mut enc: Box<dyn Encoder> = Box::new(enc);
        let block = Block::from_planes(vec![
            noise(100_000, 0.5, 1)
                .iter()
                .map(|&x| x as f32)
                .collect();
            2
        ]);
        enc.write(&block)?;
        enc.finish()
    });
    match result {
        Err(EncodeError::Io { path: p, .. }) => assert_eq!(p, path),
        other => panic!("expected an I/O error, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Tagging afterwards (as the export does, with lofty, in the temporary file).

#[test]
fn lofty_tags_the_output_and_the_audio_stays_intact() {
    use lofty::config::{ParseOptions, WriteOptions};
    use lofty::file::{FileType, TaggedFileExt};
    use lofty::prelude::*;
    use lofty::probe::Probe;
    use lofty::tag::{Tag, TagType};

    let rate = 44_100;
    let ints = to_ints(&programme(rate as usize * 2 + 5, rate, 2, 9), 16);
    let out = encode_ints(&ints, rate, &FlacOptions::default());
    let mut tag = Tag::new(TagType::VorbisComments);
    tag.set_title("Sluice".to_string());
    tag.set_artist("x".repeat(10_000)); // more than the padding holds
    let file = File::open(&out.path).unwrap();
    let mut tagged = Probe::new(std::io::BufReader::new(file))
        .set_file_type(FileType::Flac)
        .options(ParseOptions::new().read_properties(false))
        .read()
        .unwrap();
    tagged.insert_tag(tag);
    tagged
        .save_to_path(&out.path, WriteOptions::default())
        .unwrap();
    check_all(&out, &ints, rate, 16, "tagged");
    let again = lofty::read_from_path(&out.path).unwrap();
    let t = again.tag(TagType::VorbisComments).unwrap();
    assert_eq!(t.title().as_deref(), Some("Sluice"));
}
