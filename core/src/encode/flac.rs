//! FLAC output through the pure-Rust `flac-codec` crate.
//!
//! Streaming: samples are converted per block and handed to the codec, which holds the block
//! plus less than one FLAC frame (4096 samples per channel from level 3) of pending audio, and
//! 24 bytes of seek bookkeeping per frame (about 1 MB per hour at 44.1 kHz). The metadata
//! blocks (STREAMINFO with the total sample count, frame sizes and MD5; a SEEKTABLE every 10 s
//! when it fits in the 4 KiB padding, i.e. up to about 37 minutes) are rewritten in place when
//! the stream is finished.

use super::{EncodeError, Encoder};
use crate::error::catch_panic;
use crate::render::{Block, SignalSpec};
use flac_codec::encode::{FlacChannelWriter, Options};
use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// The format's name in errors and reports.
pub const FORMAT: &str = "FLAC";
/// STREAMINFO has 20 bits for the rate, but the classic format limit (frame headers code at most
/// 655,350 Hz) is what decoders enforce: symphonia refuses streams above it.
const MAX_SAMPLE_RATE: u32 = 655_350;
const MAX_CHANNELS: usize = 8;
const SUPPORTED_BITS: [u32; 4] = [8, 16, 20, 24];
const MAX_LEVEL: u8 = 8;

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

/// The codec's settings for a compression level. `flac-codec` has no presets of its own; these
/// follow the reference encoder's (block size, stereo decorrelation, LPC order, Rice partition
/// order) as far as the crate has the knobs: it has one apodization window and no `-e`/`-p`
/// searches, so level 8 is level 7. Partition orders above 6 panic inside the crate (it holds
/// at most 64 partitions), so 6 is the ceiling.
fn codec_options(level: u8) -> Options {
    // (block size, mid-side, exhaustive stereo search, max LPC order, max partition order)
    let (block, mid_side, exhaustive, lpc, partition): (u16, bool, bool, Option<u8>, u32) =
        match level {
            0 => (1152, false, false, None, 3),
            1 => (1152, true, false, None, 3),
            2 => (1152, true, true, None, 3),
            3 => (4096, false, false, Some(6), 4),
            4 => (4096, true, false, Some(8), 4),
            5 => (4096, true, true, Some(8), 5),
            6 => (4096, true, true, Some(8), 6),
            // 8 is 7: the crate has nothing more to search.
            _ => (4096, true, true, Some(12), 6),
        };
    Options::default()
        .block_size(block)
        .and_then(|o| o.max_lpc_order(lpc))
        .and_then(|o| o.max_partition_order(partition))
        .expect("the preset table holds valid codec settings")
        .mid_side(mid_side)
        .fast_channel_correlation(!exhaustive)
}

/// The file under the codec's buffer. It keeps the first I/O error, because the codec's last
/// flush happens when it drops its buffer, where an error would otherwise be lost.
struct TappedFile {
    file: File,
    error: Arc<Mutex<Option<std::io::Error>>>,
}

impl TappedFile {
    fn tap<T>(&self, r: std::io::Result<T>) -> std::io::Result<T> {
        r.inspect_err(|e| {
            let mut slot = self.error.lock().unwrap_or_else(|p| p.into_inner());
            if slot.is_none() {
                *slot = Some(std::io::Error::new(e.kind(), e.to_string()));
            }
        })
    }
}

impl Write for TappedFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let r = self.file.write(buf);
        self.tap(r)
    }
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        let r = self.file.write_all(buf);
        self.tap(r)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        let r = self.file.flush();
        self.tap(r)
    }
}

impl Seek for TappedFile {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        let r = self.file.seek(pos);
        self.tap(r)
    }
}

type Writer = FlacChannelWriter<BufWriter<TappedFile>>;

/// Writes FLAC (8, 16, 20 or 24 bits, 1 to 8 channels, 1 to 655,350 Hz).
pub struct FlacEncoder {
    /// `None` once finished, or after the codec panicked (its state is then unknown).
    writer: Option<Writer>,
    path: PathBuf,
    io_error: Arc<Mutex<Option<std::io::Error>>>,
    channels: usize,
    scale: f32,
    min: f32,
    max: f32,
    /// The block converted to integers, one plane per channel (reused).
    ints: Vec<Vec<i32>>,
    frames: u64,
}

impl FlacEncoder {
    /// Start a FLAC stream in `file` (a new, empty, seekable file); `path` names it in errors.
    pub fn new(
        file: File,
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
        let io_error = Arc::new(Mutex::new(None));
        let tapped = TappedFile {
            file,
            error: Arc::clone(&io_error),
        };
        let (rate, bits) = (spec.sample_rate, opts.bits);
        let level = opts.compression_level;
        let created = catch_panic(move || {
            FlacChannelWriter::new(
                BufWriter::with_capacity(1 << 16, tapped),
                codec_options(level),
                rate,
                bits,
                channels as u8,
                None,
            )
        });
        let scale = (1u32 << (bits - 1)) as f32;
        let mut enc = FlacEncoder {
            writer: None,
            path,
            io_error,
            channels,
            scale,
            min: -scale,
            max: scale - 1.0,
            ints: vec![Vec::new(); channels],
            frames: 0,
        };
        match created {
            Ok(Ok(w)) => enc.writer = Some(w),
            Ok(Err(e)) => return Err(enc.codec_failure(e)),
            Err(detail) => return Err(enc.panicked(detail)),
        }
        Ok(enc)
    }

    /// The I/O error the file reported, if any (taken: reported once).
    fn io_failure(&self) -> Option<EncodeError> {
        let source = self
            .io_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()?;
        Some(EncodeError::Io {
            path: self.path.clone(),
            source,
        })
    }

    /// A codec error; an I/O error the file reported first is the real cause.
    fn codec_failure(&self, e: flac_codec::Error) -> EncodeError {
        if let Some(io) = self.io_failure() {
            return io;
        }
        match e {
            flac_codec::Error::Io(source) => EncodeError::Io {
                path: self.path.clone(),
                source,
            },
            other => self.codec(other.to_string()),
        }
    }

    /// The codec panicked: drop what is left of it (guarded too) and report.
    fn panicked(&mut self, detail: String) -> EncodeError {
        if let Some(w) = self.writer.take() {
            let _ = catch_panic(move || drop(w));
        }
        self.codec(format!("internal error in flac-codec: {detail}"))
    }

    fn codec(&self, detail: String) -> EncodeError {
        EncodeError::Codec {
            path: self.path.clone(),
            format: FORMAT,
            detail,
        }
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
        if block.is_empty() {
            return Ok(());
        }
        let (scale, min, max) = (self.scale, self.min, self.max);
        for (dst, src) in self.ints.iter_mut().zip(block.planes()) {
            dst.clear();
            // Samples are on the grid already; rounding only absorbs float noise. Out-of-range
            // samples clip; NaN becomes 0 (`as` maps it there).
            dst.extend(
                src.iter()
                    .map(|&x| (x * scale).round().clamp(min, max) as i32),
            );
        }
        let Some(writer) = self.writer.as_mut() else {
            return Err(self.codec("the encoder failed earlier and cannot go on".to_string()));
        };
        let ints = &self.ints;
        match catch_panic(|| writer.write(ints)) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(self.codec_failure(e)),
            Err(detail) => return Err(self.panicked(detail)),
        }
        self.frames += block.frames() as u64;
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<(), EncodeError> {
        let Some(writer) = self.writer.take() else {
            return Err(self.codec("the encoder failed earlier and cannot finish".to_string()));
        };
        let empty = self.frames == 0;
        // Finalizing writes the last frame, rewrites the metadata blocks in place (STREAMINFO
        // with the totals and MD5) and drops the buffer, whose flush errors the file keeps.
        match catch_panic(move || writer.finalize()) {
            Ok(Ok(())) => {}
            // The codec refuses to finalize a stream without samples, but the metadata it
            // wrote at the start (STREAMINFO with 0 samples, padding) is a valid empty stream.
            Ok(Err(flac_codec::Error::NoSamples)) if empty => {}
            Ok(Err(e)) => return Err(self.codec_failure(e)),
            Err(detail) => return Err(self.panicked(detail)),
        }
        match self.io_failure() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl Drop for FlacEncoder {
    /// Abandoned unfinished (the render failed elsewhere): the codec finalizes the temporary
    /// file on drop, ignoring errors; keep a panic in there from escaping.
    fn drop(&mut self) {
        if let Some(w) = self.writer.take() {
            let _ = catch_panic(move || drop(w));
        }
    }
}
