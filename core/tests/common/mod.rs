//! Helpers shared by the core's integration tests.
#![allow(dead_code)]

use sluice_core::encode::{EncodeError, Encoder};
use sluice_core::render::Block;
use sluice_core::{Decoder, StreamInfo};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Decode a whole file into planar channels.
pub fn decode_all(path: &Path) -> (Vec<Vec<f32>>, StreamInfo) {
    let mut d = Decoder::open(path).unwrap_or_else(|e| panic!("{e}"));
    let mut out: Vec<Vec<f32>> = Vec::new();
    while let Some(b) = d.next_block().unwrap_or_else(|e| panic!("{e}")) {
        if out.is_empty() {
            out = vec![Vec::new(); b.channels()];
        }
        for (o, p) in out.iter_mut().zip(b.planes()) {
            o.extend_from_slice(p);
        }
    }
    let info = d.decode_to_end().unwrap();
    (out, info)
}

/// Pearson correlation of two equally long signals.
pub fn correlation(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let n = a.len() as f64;
    let ma = a.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
    let mb = b.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (f64::from(x) - ma, f64::from(y) - mb);
        sab += x * y;
        saa += x * x;
        sbb += y * y;
    }
    sab / (saa * sbb).sqrt()
}

/// Quantise to signed integers of `bits`, as an encoder without dither would.
pub fn quantise(x: &[f32], bits: u32) -> Vec<i32> {
    let scale = (1i64 << (bits - 1)) as f64;
    let max = scale - 1.0;
    x.iter()
        .map(|&v| (f64::from(v) * scale).round().clamp(-scale, max) as i32)
        .collect()
}

/// Write big-endian AIFF (not AIFF-C) with integer PCM.
pub fn write_aiff(path: &Path, sample_rate: u32, bits: u16, channels: &[Vec<i32>]) {
    let frames = channels[0].len();
    let bytes_per = usize::from(bits / 8);
    let mut ssnd = vec![0u8; 8];
    for n in 0..frames {
        for ch in channels {
            let v = ch[n].to_be_bytes();
            ssnd.extend_from_slice(&v[4 - bytes_per..]);
        }
    }
    let mut comm = Vec::new();
    comm.extend((channels.len() as i16).to_be_bytes());
    comm.extend((frames as u32).to_be_bytes());
    comm.extend((bits as i16).to_be_bytes());
    comm.extend(f80(f64::from(sample_rate)));
    let mut body = b"AIFF".to_vec();
    for (id, payload) in [(b"COMM", comm), (b"SSND", ssnd)] {
        body.extend(id);
        body.extend((payload.len() as u32).to_be_bytes());
        body.extend(&payload);
        if payload.len() % 2 == 1 {
            body.push(0);
        }
    }
    let mut f = b"FORM".to_vec();
    f.extend((body.len() as u32).to_be_bytes());
    f.extend(body);
    std::fs::write(path, f).unwrap();
}

/// IEEE 754 80-bit extended, as AIFF stores the sample rate (positive integers only).
fn f80(v: f64) -> [u8; 10] {
    let mut out = [0u8; 10];
    let n = v as u64;
    assert!(n > 0);
    let shift = n.leading_zeros();
    let mantissa = n << shift;
    let exponent = 16383 + 63 - shift as u16;
    out[0..2].copy_from_slice(&exponent.to_be_bytes());
    out[2..10].copy_from_slice(&mantissa.to_be_bytes());
    out
}

/// Write FLAC with the flacenc crate (an independent encoder).
pub fn write_flac(path: &Path, sample_rate: u32, bits: u32, channels: &[Vec<i32>]) {
    use flacenc::component::BitRepr;
    use flacenc::error::Verify;
    let frames = channels[0].len();
    let mut interleaved = Vec::with_capacity(frames * channels.len());
    for n in 0..frames {
        for ch in channels {
            interleaved.push(ch[n]);
        }
    }
    let config = flacenc::config::Encoder::default()
        .into_verified()
        .expect("default config is valid");
    let source = flacenc::source::MemSource::from_samples(
        &interleaved,
        channels.len(),
        bits as usize,
        sample_rate as usize,
    );
    let stream = flacenc::encode_with_fixed_block_size(&config, source, config.block_size)
        .expect("flac encode");
    let mut sink = flacenc::bitsink::ByteSink::new();
    stream.write(&mut sink).expect("flac write");
    std::fs::write(path, sink.as_slice()).unwrap();
}

/// An external tool at `/usr/bin/NAME` or on `PATH`. When it is missing the test is skipped
/// with a notice, unless `SLUICE_REQUIRE_TOOLS=1`, when it fails.
pub fn tool(name: &str) -> Option<PathBuf> {
    let found = std::iter::once(PathBuf::from("/usr/bin"))
        .chain(
            std::env::var_os("PATH")
                .map_or_else(Vec::new, |p| std::env::split_paths(&p).collect::<Vec<_>>()),
        )
        .map(|d| d.join(name))
        .find(|p| p.is_file());
    if found.is_none() {
        if std::env::var("SLUICE_REQUIRE_TOOLS").is_ok_and(|v| v == "1") {
            panic!("{name} is required (SLUICE_REQUIRE_TOOLS=1) but was not found");
        }
        eprintln!("SKIPPED: {name} not found (set SLUICE_REQUIRE_TOOLS=1 to make this fail)");
    }
    found
}

/// An encoder that keeps what it receives (planar).
pub struct Collect(pub Arc<Mutex<Vec<Vec<f32>>>>);

impl Encoder for Collect {
    fn write(&mut self, block: &Block) -> Result<(), EncodeError> {
        let mut v = self.0.lock().unwrap();
        if v.is_empty() {
            *v = vec![Vec::new(); block.channels()];
        }
        for (d, s) in v.iter_mut().zip(block.planes()) {
            d.extend_from_slice(s);
        }
        Ok(())
    }
    fn finish(self: Box<Self>) -> Result<(), EncodeError> {
        Ok(())
    }
}

/// `planes` as a 32-bit float WAV at `rate`.
pub fn write_float_wav(path: &Path, rate: u32, planes: &[Vec<f32>]) {
    let spec = hound::WavSpec {
        channels: planes.len() as u16,
        sample_rate: rate,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for i in 0..planes[0].len() {
        for p in planes {
            w.write_sample(p[i]).unwrap();
        }
    }
    w.finalize().unwrap();
}
