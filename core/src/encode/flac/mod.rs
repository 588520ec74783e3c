//! FLAC output, with our own encoder (RFC 9639).
//!
//! Each level follows the reference encoder's preset (`flac -0` … `-8`: block size, stereo
//! decorrelation, LPC order, apodization windows, Rice partition order). Per channel the
//! encoder estimates the size of a constant, verbatim, fixed-predictor and LPC subframe
//! analytically (from sums of residual magnitudes per Rice partition) and writes only the
//! smallest; for stereo it compares left/right, left/side, right/side and mid/side the same
//! way. See docs/RENDERING.md for what was checked.
//!
//! Streaming: samples are converted per block into less than one FLAC frame (1152 or 4096
//! samples per channel) of pending audio, which is encoded as soon as it is complete; seek
//! bookkeeping is one entry per 10 s, at most as many as fit. The file starts with STREAMINFO
//! and 4 KiB of PADDING (so taggers can add tags in place); at the end STREAMINFO (total
//! samples, minimum and maximum frame size, MD5 of the samples) is rewritten in place, and a
//! SEEKTABLE with a point every 10 s is carved out of the padding when it fits (up to about 37
//! minutes). STREAMINFO's minimum and maximum block size are the level's block size: the
//! last, shorter block does not count (as the format says).

mod bits;
mod frame;
mod lpc;
mod rice;

use super::{EncodeError, Encoder};
use crate::block::{Block, SignalSpec};
use crate::error::catch_panic;
use md5::{Digest, Md5};
use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::PathBuf;

/// The format's name in errors and reports.
pub const FORMAT: &str = "FLAC";
/// STREAMINFO has 20 bits for the rate, but the classic format limit (frame headers code at most
/// 655,350 Hz) is what decoders enforce: symphonia refuses streams above it.
const MAX_SAMPLE_RATE: u32 = 655_350;
const MAX_CHANNELS: usize = 8;
const SUPPORTED_BITS: [u32; 4] = [8, 16, 20, 24];
const MAX_LEVEL: u8 = 8;
/// STREAMINFO counts samples in 36 bits.
const MAX_TOTAL_SAMPLES: u64 = (1 << 36) - 1;
/// Room left after STREAMINFO for tags (and the seek table).
const PADDING: usize = 4096;
const SEEK_INTERVAL_SECONDS: u64 = 10;
/// Seek points that fit in the padding with its block header: (4096 + 4 - 4 - 4) / 18.
const MAX_SEEK_POINTS: usize = (PADDING - 4) / 18;

/// Options of FLAC output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlacOptions {
    /// Bits per sample: 8, 16, 20 or 24.
    pub bits: u32,
    /// 0 (fastest) to 8 (smallest), as `flac -0` ... `flac -8`; 5 is the usual default.
    pub compression_level: u8,
}

impl Default for FlacOptions {
    fn default() -> Self {
        FlacOptions {
            bits: 16,
            compression_level: 5,
        }
    }
}

/// A seek point: first sample of a frame, its byte offset from the first frame, its length.
#[derive(Clone, Copy, Debug)]
struct SeekPoint {
    sample: u64,
    offset: u64,
    frames: u16,
}

/// Writes FLAC (8, 16, 20 or 24 bits, 1 to 8 channels, 1 to 655,350 Hz).
pub struct FlacEncoder {
    out: BufWriter<File>,
    path: PathBuf,
    /// Set once a write failed: the stream cannot go on, and every later call says why.
    failed: Option<EncodeError>,
    channels: usize,
    bits: u32,
    rate: u32,
    block_size: usize,
    scale: f32,
    min: f32,
    max: f32,
    /// Samples of the frame being filled, one plane per channel (capacity: one frame).
    pending: Vec<Vec<i32>>,
    frames: FrameEncoderBox,
    md5: Md5,
    md5_buf: Vec<u8>,
    /// Samples per channel encoded (in frames) so far.
    encoded: u64,
    frame_number: u64,
    /// Position of the stream's first byte ("fLaC") in the file.
    start: u64,
    /// Bytes of frames written.
    audio_bytes: u64,
    min_frame: u32,
    max_frame: u32,
    seek_points: Vec<SeekPoint>,
    next_seek_sample: u64,
    /// More seek points than fit: no table is written.
    seek_overflow: bool,
}

/// The frame encoder is large; boxed so the encoder moves cheaply.
type FrameEncoderBox = Box<frame::FrameEncoder>;

impl FlacEncoder {
    /// Start a FLAC stream in `file` (a new, empty, seekable file); `path` names it in errors.
    pub fn new(
        mut file: File,
        path: PathBuf,
        spec: &SignalSpec,
        opts: &FlacOptions,
    ) -> Result<FlacEncoder, EncodeError> {
        let unsupported = |detail: String| EncodeError::Unsupported {
            path: path.clone(),
            detail,
        };
        if !SUPPORTED_BITS.contains(&opts.bits) {
            return Err(unsupported(format!(
                "FLAC bit depth {} is not supported (use 8, 16, 20 or 24)",
                opts.bits
            )));
        }
        let channels = spec.channels();
        if channels == 0 || channels > MAX_CHANNELS {
            return Err(unsupported(format!(
                "FLAC holds 1 to {MAX_CHANNELS} channels, not {channels}"
            )));
        }
        if spec.sample_rate == 0 || spec.sample_rate > MAX_SAMPLE_RATE {
            return Err(unsupported(format!(
                "FLAC sample rates go from 1 to {MAX_SAMPLE_RATE} Hz, not {} Hz",
                spec.sample_rate
            )));
        }
        if opts.compression_level > MAX_LEVEL {
            return Err(unsupported(format!(
                "FLAC compression level {} is out of range (0 to {MAX_LEVEL})",
                opts.compression_level
            )));
        }
        let start = file.stream_position().map_err(|source| EncodeError::Io {
            path: path.clone(),
            source,
        })?;
        let preset = frame::preset(opts.compression_level);
        let bits = opts.bits;
        let scale = (1u32 << (bits - 1)) as f32;
        let mut enc = FlacEncoder {
            out: BufWriter::with_capacity(1 << 16, file),
            path,
            failed: None,
            channels,
            bits,
            rate: spec.sample_rate,
            block_size: preset.block_size,
            scale,
            min: -scale,
            max: scale - 1.0,
            pending: vec![Vec::with_capacity(preset.block_size); channels],
            frames: Box::new(frame::FrameEncoder::new(
                preset,
                channels,
                bits,
                spec.sample_rate,
            )),
            md5: Md5::new(),
            md5_buf: Vec::new(),
            encoded: 0,
            frame_number: 0,
            start,
            audio_bytes: 0,
            min_frame: 0,
            max_frame: 0,
            seek_points: Vec::new(),
            next_seek_sample: 0,
            seek_overflow: false,
        };
        let header = enc.metadata(false);
        if let Err(e) = enc.out.write_all(&header) {
            return Err(enc.io(e));
        }
        Ok(enc)
    }

    fn io(&self, source: std::io::Error) -> EncodeError {
        EncodeError::Io {
            path: self.path.clone(),
            source,
        }
    }

    fn codec(&self, detail: String) -> EncodeError {
        EncodeError::Codec {
            path: self.path.clone(),
            format: FORMAT,
            detail,
        }
    }

    /// The metadata blocks: STREAMINFO, then (when `finished` and the points fit) a
    /// SEEKTABLE, then PADDING; always `4 + 38 + 4 + PADDING` bytes.
    fn metadata(&self, finished: bool) -> Vec<u8> {
        let mut m = Vec::with_capacity(8 + 34 + 4 + PADDING);
        m.extend_from_slice(b"fLaC");
        m.extend_from_slice(&[0, 0, 0, 34]); // STREAMINFO, not last
        let block = self.block_size as u16;
        m.extend_from_slice(&block.to_be_bytes());
        m.extend_from_slice(&block.to_be_bytes());
        m.extend_from_slice(&self.min_frame.to_be_bytes()[1..]);
        m.extend_from_slice(&self.max_frame.to_be_bytes()[1..]);
        let total = if self.encoded <= MAX_TOTAL_SAMPLES {
            self.encoded
        } else {
            0
        };
        let packed = (u64::from(self.rate) << 44)
            | ((self.channels as u64 - 1) << 41)
            | (u64::from(self.bits - 1) << 36)
            | total;
        m.extend_from_slice(&packed.to_be_bytes());
        let md5: [u8; 16] = if finished {
            self.md5.clone().finalize().into()
        } else {
            [0; 16]
        };
        m.extend_from_slice(&md5);
        let mut padding = PADDING;
        if finished && !self.seek_overflow && !self.seek_points.is_empty() {
            let len = 18 * self.seek_points.len();
            m.push(3); // SEEKTABLE, not last
            m.extend_from_slice(&(len as u32).to_be_bytes()[1..]);
            for p in &self.seek_points {
                m.extend_from_slice(&p.sample.to_be_bytes());
                m.extend_from_slice(&p.offset.to_be_bytes());
                m.extend_from_slice(&p.frames.to_be_bytes());
            }
            padding -= 4 + len;
        }
        m.push(0x80 | 1); // PADDING, last
        m.extend_from_slice(&(padding as u32).to_be_bytes()[1..]);
        m.resize(m.len() + padding, 0);
        m
    }

    /// Encode the pending samples as one frame and write it.
    fn flush_frame(&mut self) -> Result<(), EncodeError> {
        let n = self.pending[0].len();
        if n == 0 {
            return Ok(());
        }
        self.hash_pending();
        let frame_number = self.frame_number;
        let frames = &mut self.frames;
        let pending = &self.pending;
        if let Err(detail) = catch_panic(|| frames.encode(pending, frame_number)) {
            let e = self.codec(format!("internal error: {detail}"));
            self.failed = Some(e.again());
            return Err(e);
        }
        let bytes = self.frames.bytes();
        if let Err(e) = self.out.write_all(bytes) {
            let e = self.io(e);
            self.failed = Some(e.again());
            return Err(e);
        }
        let len = bytes.len() as u64;
        let len32 = u32::try_from(len).unwrap_or(u32::MAX);
        if self.frame_number == 0 {
            (self.min_frame, self.max_frame) = (len32, len32);
        } else {
            self.min_frame = self.min_frame.min(len32);
            self.max_frame = self.max_frame.max(len32);
        }
        // A seek point for the frame holding the next 10-second mark.
        let end = self.encoded + n as u64;
        if self.next_seek_sample < end && !self.seek_overflow {
            if self.seek_points.len() < MAX_SEEK_POINTS {
                self.seek_points.push(SeekPoint {
                    sample: self.encoded,
                    offset: self.audio_bytes,
                    frames: n as u16,
                });
            } else {
                self.seek_overflow = true;
                self.seek_points = Vec::new();
            }
            let step = SEEK_INTERVAL_SECONDS * u64::from(self.rate);
            while self.next_seek_sample < end {
                self.next_seek_sample += step;
            }
        }
        self.audio_bytes += len;
        self.encoded = end;
        self.frame_number += 1;
        for p in &mut self.pending {
            p.clear();
        }
        Ok(())
    }

    /// Add the pending samples to the MD5: interleaved, little-endian, in whole bytes.
    fn hash_pending(&mut self) {
        let n = self.pending[0].len();
        let ch = self.channels;
        let width = self.bits.div_ceil(8) as usize;
        let stride = ch * width;
        self.md5_buf.clear();
        self.md5_buf.resize(n * stride, 0);
        for (c, plane) in self.pending.iter().enumerate() {
            let dst = self.md5_buf[c * width..].chunks_mut(stride);
            match width {
                1 => {
                    for (d, &s) in dst.zip(plane) {
                        d[0] = s as u8;
                    }
                }
                2 => {
                    for (d, &s) in dst.zip(plane) {
                        d[..2].copy_from_slice(&(s as i16).to_le_bytes());
                    }
                }
                _ => {
                    for (d, &s) in dst.zip(plane) {
                        d[..3].copy_from_slice(&s.to_le_bytes()[..3]);
                    }
                }
            }
        }
        self.md5.update(&self.md5_buf);
    }
}

impl Encoder for FlacEncoder {
    fn write(&mut self, block: &Block) -> Result<(), EncodeError> {
        if block.channels() != self.channels {
            return Err(self.codec(format!(
                "a block of {} channels reached an encoder made for {}",
                block.channels(),
                self.channels
            )));
        }
        if let Some(e) = &self.failed {
            return Err(e.again());
        }
        if block.is_empty() {
            return Ok(());
        }
        let total = self.encoded + self.pending[0].len() as u64 + block.frames() as u64;
        if total > MAX_TOTAL_SAMPLES {
            return Err(self.codec(format!(
                "a FLAC stream holds at most {MAX_TOTAL_SAMPLES} samples per channel"
            )));
        }
        let (scale, min, max) = (self.scale, self.min, self.max);
        let frames = block.frames();
        let mut pos = 0;
        while pos < frames {
            let room = self.block_size - self.pending[0].len();
            let take = room.min(frames - pos);
            for (dst, src) in self.pending.iter_mut().zip(block.planes()) {
                // Samples are on the grid already; rounding only absorbs float noise.
                // Out-of-range samples clip; NaN becomes 0.
                dst.extend(
                    src[pos..pos + take]
                        .iter()
                        .map(|&x| to_int(x * scale, min, max)),
                );
            }
            pos += take;
            if self.pending[0].len() == self.block_size {
                self.flush_frame()?;
            }
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<(), EncodeError> {
        if let Some(e) = &self.failed {
            return Err(e.again());
        }
        // The last, short frame.
        self.flush_frame()?;
        let meta = self.metadata(true);
        let start = self.start;
        let result = self
            .out
            .flush()
            .and_then(|()| self.out.get_mut().seek(SeekFrom::Start(start)))
            .and_then(|_| self.out.get_mut().write_all(&meta))
            .and_then(|()| self.out.get_mut().flush());
        result.map_err(|e| self.io(e))
    }
}

/// `v.round().clamp(min, max) as i32` (rounding half away from zero, NaN to 0) for integer
/// bounds of magnitude up to 2^23, without a call to `roundf` (baseline x86-64 has no rounding
/// instruction), so the conversion loop vectorizes. Clamping first is the same because the
/// bounds are integers; after it, `v - trunc(v)` is exact.
#[inline(always)]
fn to_int(v: f32, min: f32, max: f32) -> i32 {
    let c = v.clamp(min, max);
    let t = c as i32; // truncates; NaN → 0
    let frac = c - t as f32;
    t + i32::from(frac >= 0.5) - i32::from(frac <= -0.5)
}

/// FLAC in the format registry.
pub struct FlacCodec;

/// The registered FLAC codec.
pub static CODEC: FlacCodec = FlacCodec;

/// FLAC of `bits` at `compression_level`, as an output format.
pub fn output(bits: u32, compression_level: u8) -> crate::formats::OutputFormat {
    crate::formats::OutputFormat::new(
        &CODEC,
        crate::formats::Settings {
            compression_level: Some(compression_level),
            ..crate::formats::Settings::int(bits)
        },
    )
}

static ABOUT: crate::formats::CodecInfo = crate::formats::CodecInfo {
    id: "flac",
    name: FORMAT,
    names: &["flac"],
    extension: "flac",
    writes: &["flac"],
    info: None,
    lossy: false,
    options: &[
        crate::formats::OptionSpec {
            opt: crate::formats::Opt::BitDepth,
            values: crate::formats::Values::Depths {
                int: &[16, 24],
                float: false,
            },
            says: "FLAC takes 16, 24",
        },
        crate::formats::OptionSpec {
            opt: crate::formats::Opt::CompressionLevel,
            values: crate::formats::Values::Range {
                min: 0.0,
                max: 8.0,
                integer: true,
            },
            says: "FLAC levels are 0 to 8",
        },
    ],
    exclusive: None,
    constraints: crate::formats::Constraints::ANY,
    tags: crate::formats::TagStyle::Lofty {
        file_type: lofty::file::FileType::Flac,
        tag_type: lofty::tag::TagType::VorbisComments,
    },
    settings: "lossless (compression level 0-8, default 5)",
    minute_bytes: 44_100 * 2 * 2 * 60 * 6 / 10,
    bext: false,
};

impl crate::formats::OutputCodec for FlacCodec {
    fn about(&self) -> &'static crate::formats::CodecInfo {
        &ABOUT
    }
    fn settle(
        &self,
        asked: &crate::formats::Request,
        arriving: &crate::formats::Arriving,
    ) -> crate::formats::Settings {
        use crate::formats::Depth;
        let bits = match asked.depth() {
            Some(Depth::Int(b)) => b,
            // 16 bits keep a source of 16 or fewer exactly; 24 anything deeper.
            _ => arriving
                .int_bits
                .map_or(24, |b| if b <= 16 { 16 } else { 24 }),
        };
        crate::formats::Settings {
            compression_level: Some(asked.compression_level.unwrap_or(5)),
            ..crate::formats::Settings::int(bits)
        }
    }
    fn describe(&self, s: &crate::formats::Settings) -> String {
        format!(
            "FLAC {}-bit (level {})",
            s.bits.unwrap_or(24),
            s.compression_level.unwrap_or(5)
        )
    }
    fn create(
        &self,
        s: &crate::formats::Settings,
        file: File,
        path: &std::path::Path,
        spec: &SignalSpec,
        _bext: Option<crate::riff::Bext>,
    ) -> Result<Box<dyn Encoder>, EncodeError> {
        Ok(Box::new(FlacEncoder::new(
            file,
            path.to_path_buf(),
            spec,
            &FlacOptions {
                bits: s.bits.unwrap_or(24),
                compression_level: s.compression_level.unwrap_or(5),
            },
        )?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversion_rounds_and_clips_like_round_clamp() {
        let mut values = vec![
            0.0f32,
            -0.0,
            0.5,
            -0.5,
            1.5,
            -1.5,
            2.5,
            -2.5,
            0.499_999_97,
            -0.499_999_97,
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::MIN_POSITIVE,
            -f32::MIN_POSITIVE,
            1e-45,
            f32::MAX,
            f32::MIN,
        ];
        for bits in [8u32, 16, 20, 24] {
            let s = (1u32 << (bits - 1)) as f32;
            for k in -3i32..=3 {
                for edge in [s, -s, s - 1.0, -s - 1.0] {
                    values.push(edge + k as f32 * 0.5);
                    values.push(edge + k as f32 * 0.25);
                }
            }
        }
        let mut seed = 7u64;
        for _ in 0..200_000 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let x = ((seed >> 40) as f32 / (1u64 << 24) as f32) * 2.4 - 1.2;
            values.push(x);
        }
        for bits in [8u32, 16, 20, 24] {
            let scale = (1u32 << (bits - 1)) as f32;
            let (min, max) = (-scale, scale - 1.0);
            for &x in &values {
                for v in [x, x * scale] {
                    let want = v.round().clamp(min, max) as i32;
                    assert_eq!(to_int(v, min, max), want, "{v} at {bits} bits");
                }
            }
        }
    }

    #[test]
    fn metadata_keeps_its_size_with_or_without_a_seek_table() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.flac");
        let file = File::create(&path).unwrap();
        let mut enc = FlacEncoder::new(
            file,
            path,
            &SignalSpec::with_channels(44_100, 2),
            &FlacOptions::default(),
        )
        .unwrap();
        let plain = enc.metadata(false).len();
        for k in 0..MAX_SEEK_POINTS {
            enc.seek_points.push(SeekPoint {
                sample: k as u64 * 441_000,
                offset: k as u64,
                frames: 4096,
            });
        }
        assert_eq!(enc.metadata(true).len(), plain);
        assert_eq!(plain, 4 + 38 + 4 + PADDING);
    }
}
