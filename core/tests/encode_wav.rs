//! The WAV and AIFF writers: bit-exact round trips through our decoder and hound, the `bext`
//! chunk, and the RF64 switch (exercised with a lowered threshold instead of 4 GiB of audio).

mod common;

use sluice_core::encode::aiff::AiffEncoder;
use sluice_core::encode::wav::{WavEncoder, WavOptions};
use sluice_core::encode::{Encoder, PcmFormat};
use sluice_core::render::{Block, SignalSpec};
use sluice_core::signal;

fn quantized(planes: &[Vec<f32>], bits: u32) -> Vec<Vec<f32>> {
    let s = f64::from(1u32 << (bits - 1));
    planes
        .iter()
        .map(|p| {
            p.iter()
                .map(|&x| ((f64::from(x) * s).round() / s) as f32)
                .collect()
        })
        .collect()
}

fn write(enc: &mut dyn Encoder, planes: &[Vec<f32>]) {
    let n = planes[0].len();
    let mut at = 0;
    for size in [1usize, 999, 4096].iter().cycle() {
        if at >= n {
            break;
        }
        let end = (at + size).min(n);
        enc.write(&Block::from_planes(
            planes.iter().map(|p| p[at..end].to_vec()).collect(),
        ))
        .unwrap();
        at = end;
    }
}

#[test]
fn wav_round_trips_at_every_depth_and_as_rf64() {
    let dir = tempfile::tempdir().unwrap();
    let rate = 48_000;
    let src = signal::programme(rate, 2, 30_000, 5);
    for (fmt, rf64) in [
        (PcmFormat::Int(8), false),
        (PcmFormat::Int(16), false),
        (PcmFormat::Int(24), false),
        (PcmFormat::Int(32), false),
        (PcmFormat::Float32, false),
        (PcmFormat::Int(24), true),
        (PcmFormat::Float32, true),
    ] {
        let path = dir.path().join(format!("{fmt:?}-{rf64}.wav"));
        let file = std::fs::File::create(&path).unwrap();
        let spec = SignalSpec::with_channels(rate, 2);
        let mut enc = WavEncoder::new(
            file,
            path.clone(),
            &spec,
            &WavOptions {
                format: fmt,
                bext: None,
            },
        )
        .unwrap();
        if rf64 {
            enc = enc.with_rf64_threshold(1000);
        }
        let want = match fmt {
            PcmFormat::Int(b) => quantized(&src, b.min(24)),
            PcmFormat::Float32 => src.clone(),
        };
        write(&mut enc, &want);
        Box::new(enc).finish().unwrap();
        let head = std::fs::read(&path).unwrap();
        assert_eq!(&head[..4], if rf64 { b"RF64" } else { b"RIFF" });
        if rf64 {
            assert_eq!(&head[12..16], b"ds64");
        } else {
            assert_eq!(&head[12..16], b"JUNK");
        }
        let (got, info) = common::decode_all(&path);
        assert_eq!(info.format, if rf64 { "rf64" } else { "wav" });
        assert_eq!(got, want, "{fmt:?} rf64={rf64}");
        if rf64 {
            // ffmpeg, an independent RF64 reader: the same samples.
            if let Some(ffmpeg) = common::tool("ffmpeg") {
                let o = std::process::Command::new(ffmpeg)
                    .args(["-v", "error", "-i"])
                    .arg(&path)
                    .args(["-f", "f32le", "-"])
                    .output()
                    .unwrap();
                assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
                let v: Vec<f32> = o
                    .stdout
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                    .collect();
                assert_eq!(v.len(), 60_000);
                assert!(
                    v.chunks(2)
                        .zip(want[0].iter().zip(&want[1]))
                        .all(|(f, (l, r))| f[0] == *l && f[1] == *r)
                );
            }
        } else {
            // hound, an independent reader.
            let r = hound::WavReader::open(&path).unwrap();
            assert_eq!(r.len() as usize, 60_000);
        }
    }
}

#[test]
fn aiff_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let src = signal::programme(44_100, 2, 20_000, 6);
    for bits in [8, 16, 24, 32] {
        let path = dir.path().join(format!("{bits}.aiff"));
        let file = std::fs::File::create(&path).unwrap();
        let mut enc = AiffEncoder::new(
            file,
            path.clone(),
            &SignalSpec::with_channels(44_100, 2),
            bits,
        )
        .unwrap();
        let want = quantized(&src, bits.min(24));
        write(&mut enc, &want);
        Box::new(enc).finish().unwrap();
        let (got, info) = common::decode_all(&path);
        assert_eq!(info.bit_depth, Some(bits));
        assert_eq!(got, want, "{bits}-bit AIFF");
    }
}
