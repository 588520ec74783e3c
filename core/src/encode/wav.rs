//! WAV writer: PCM 8/16/24/32-bit integer or 32-bit float; `WAVE_FORMAT_EXTENSIBLE` above two
//! channels; an optional Broadcast Wave `bext` chunk whose loudness fields are filled with what
//! was measured on the output; and RF64 (EBU Tech 3306) when the data passes 4 GiB: a `JUNK`
//! chunk reserved after the header becomes the `ds64` chunk, so no audio is ever moved.
//!
//! hound cannot write `bext`, reserve room for `ds64`, or switch to RF64, so this writer is our
//! own; hound reads our files back in the tests, as do symphonia, ffmpeg and sox.

use super::{EncodeError, Encoder, PcmFormat, interleave};
use crate::block::OutputLoudness;
use crate::block::{Block, SignalSpec};
use crate::riff::Bext;
use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::PathBuf;

/// WAV options.
#[derive(Debug, Clone)]
pub struct WavOptions {
    pub format: PcmFormat,
    /// Write a `bext` chunk (its loudness fields are set from the measured output).
    pub bext: Option<Bext>,
}

/// Size of the `JUNK` payload reserved for `ds64` (riff, data and sample counts, table length).
const DS64_SIZE: u32 = 28;

/// Speaker position bits of `WAVEFORMATEXTENSIBLE.dwChannelMask`.
pub fn channel_mask(layout: &[String]) -> u32 {
    const ORDER: [&str; 18] = [
        "FL", "FR", "FC", "LFE", "BL", "BR", "FLC", "FRC", "BC", "SL", "SR", "TC", "TFL", "TFC",
        "TFR", "TBL", "TBC", "TBR",
    ];
    let mut mask = 0u32;
    let mut last = -1i32;
    for p in layout {
        match ORDER.iter().position(|o| o == p) {
            // The mask lists channels in bit order; out-of-order or unknown positions make it
            // meaningless, so the whole mask is dropped (0 = no positions).
            Some(i) if i as i32 > last && mask & (1 << i) == 0 => {
                mask |= 1 << i;
                last = i as i32;
            }
            _ => return 0,
        }
    }
    mask
}

pub struct WavEncoder {
    out: BufWriter<File>,
    path: PathBuf,
    format: PcmFormat,
    channels: usize,
    bext: Option<Bext>,
    bext_offset: u64,
    fact_offset: u64,
    data_offset: u64,
    data_bytes: u64,
    frames: u64,
    buf: Vec<u8>,
    /// Sizes above this make the file RF64 (4 GiB − 1, lowered only by tests).
    rf64_above: u64,
}

impl WavEncoder {
    /// Switch to RF64 above `bytes` instead of 4 GiB, so tests can exercise RF64 without
    /// writing 4 GiB.
    #[doc(hidden)]
    pub fn with_rf64_threshold(mut self, bytes: u64) -> Self {
        self.rf64_above = bytes;
        self
    }

    pub fn new(
        file: File,
        path: PathBuf,
        spec: &SignalSpec,
        opts: &WavOptions,
    ) -> Result<WavEncoder, EncodeError> {
        let unsupported = |detail: String| EncodeError::Unsupported {
            path: path.clone(),
            detail,
        };
        let channels = spec.channels();
        if channels == 0 || channels > 65_535 {
            return Err(unsupported(format!("WAV cannot hold {channels} channels")));
        }
        if let PcmFormat::Int(b) = opts.format
            && !matches!(b, 8 | 16 | 24 | 32)
        {
            return Err(unsupported(format!(
                "WAV bit depth {b} is not offered: choose 8, 16, 24 or 32 (or 32-bit float)"
            )));
        }
        let mut enc = WavEncoder {
            out: BufWriter::with_capacity(1 << 16, file),
            path,
            format: opts.format,
            channels,
            bext: opts.bext.clone(),
            bext_offset: 0,
            fact_offset: 0,
            data_offset: 0,
            data_bytes: 0,
            frames: 0,
            buf: Vec::new(),
            rf64_above: u64::from(u32::MAX),
        };
        enc.header(spec).map_err(|e| enc.io(e))?;
        Ok(enc)
    }

    fn io(&self, source: std::io::Error) -> EncodeError {
        EncodeError::Io {
            path: self.path.clone(),
            source,
        }
    }

    fn header(&mut self, spec: &SignalSpec) -> std::io::Result<()> {
        let w = &mut self.out;
        w.write_all(b"RIFF\0\0\0\0WAVE")?;
        w.write_all(b"JUNK")?;
        w.write_all(&DS64_SIZE.to_le_bytes())?;
        w.write_all(&[0u8; DS64_SIZE as usize])?;
        let ch = self.channels as u16;
        let bits = self.format.bits() as u16;
        let block_align = ch * self.format.bytes() as u16;
        let rate = spec.sample_rate;
        let extensible = self.channels > 2;
        let tag: u16 = match (extensible, self.format) {
            (true, _) => 0xFFFE,
            (false, PcmFormat::Float32) => 3,
            (false, PcmFormat::Int(_)) => 1,
        };
        let mut fmt = Vec::with_capacity(40);
        fmt.extend_from_slice(&tag.to_le_bytes());
        fmt.extend_from_slice(&ch.to_le_bytes());
        fmt.extend_from_slice(&rate.to_le_bytes());
        fmt.extend_from_slice(&(rate * u32::from(block_align)).to_le_bytes());
        fmt.extend_from_slice(&block_align.to_le_bytes());
        fmt.extend_from_slice(&(self.format.bytes() as u16 * 8).to_le_bytes());
        if extensible {
            fmt.extend_from_slice(&22u16.to_le_bytes());
            fmt.extend_from_slice(&bits.to_le_bytes()); // valid bits
            fmt.extend_from_slice(&channel_mask(&spec.layout).to_le_bytes());
            let sub: u16 = if self.format == PcmFormat::Float32 {
                3
            } else {
                1
            };
            // KSDATAFORMAT_SUBTYPE_PCM / _IEEE_FLOAT: the format tag in the GUID's first bytes.
            fmt.extend_from_slice(&sub.to_le_bytes());
            fmt.extend_from_slice(&[
                0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71,
            ]);
        } else if self.format == PcmFormat::Float32 {
            fmt.extend_from_slice(&0u16.to_le_bytes());
        }
        w.write_all(b"fmt ")?;
        w.write_all(&(fmt.len() as u32).to_le_bytes())?;
        w.write_all(&fmt)?;
        let mut pos = 12 + 8 + u64::from(DS64_SIZE) + 8 + fmt.len() as u64;
        if let Some(b) = &self.bext {
            let payload = b.to_bytes();
            w.write_all(b"bext")?;
            w.write_all(&(payload.len() as u32).to_le_bytes())?;
            self.bext_offset = pos + 8;
            w.write_all(&payload)?;
            pos += 8 + payload.len() as u64;
        }
        // Non-PCM (float) WAV carries a `fact` chunk with the frame count, patched at the end.
        if self.format == PcmFormat::Float32 {
            w.write_all(b"fact")?;
            w.write_all(&4u32.to_le_bytes())?;
            self.fact_offset = pos + 8;
            w.write_all(&0u32.to_le_bytes())?;
            pos += 12;
        }
        w.write_all(b"data\0\0\0\0")?;
        self.data_offset = pos + 8;
        Ok(())
    }

    fn close(&mut self) -> std::io::Result<()> {
        let (f, end) = super::end_chunk_data(&mut self.out, self.data_bytes)?;
        let riff_size = end - 8;
        if riff_size > self.rf64_above || self.data_bytes > self.rf64_above {
            // RF64: the sizes move to ds64, the 32-bit fields say "see ds64".
            f.seek(SeekFrom::Start(0))?;
            f.write_all(b"RF64")?;
            f.write_all(&u32::MAX.to_le_bytes())?;
            f.seek(SeekFrom::Start(12))?;
            f.write_all(b"ds64")?;
            f.write_all(&DS64_SIZE.to_le_bytes())?;
            f.write_all(&riff_size.to_le_bytes())?;
            f.write_all(&self.data_bytes.to_le_bytes())?;
            f.write_all(&self.frames.to_le_bytes())?;
            f.write_all(&0u32.to_le_bytes())?;
            f.seek(SeekFrom::Start(self.data_offset - 4))?;
            f.write_all(&u32::MAX.to_le_bytes())?;
        } else {
            f.seek(SeekFrom::Start(4))?;
            f.write_all(&(riff_size as u32).to_le_bytes())?;
            f.seek(SeekFrom::Start(self.data_offset - 4))?;
            f.write_all(&(self.data_bytes as u32).to_le_bytes())?;
        }
        if self.fact_offset > 0 {
            f.seek(SeekFrom::Start(self.fact_offset))?;
            f.write_all(&(self.frames.min(u64::from(u32::MAX)) as u32).to_le_bytes())?;
        }
        if let Some(b) = &self.bext {
            f.seek(SeekFrom::Start(self.bext_offset))?;
            f.write_all(&b.to_bytes())?;
        }
        f.flush()
    }
}

impl Encoder for WavEncoder {
    fn write(&mut self, block: &Block) -> Result<(), EncodeError> {
        debug_assert_eq!(block.channels(), self.channels);
        interleave(block, self.format, false, true, &mut self.buf);
        self.out.write_all(&self.buf).map_err(|e| self.io(e))?;
        self.data_bytes += self.buf.len() as u64;
        self.frames += block.frames() as u64;
        Ok(())
    }
    fn set_loudness(&mut self, l: &OutputLoudness) {
        if let Some(b) = &mut self.bext {
            let f = |v: Option<f64>| v.map(|v| v as f32);
            b.loudness_value = f(l.loudness.integrated_lufs);
            b.loudness_range = f(l.loudness.loudness_range_lu);
            b.max_true_peak_level = l
                .true_peak_dbtp
                .is_finite()
                .then_some(l.true_peak_dbtp as f32);
            b.max_momentary_loudness = f(l.loudness.max_momentary_lufs);
            b.max_short_term_loudness = f(l.loudness.max_short_term_lufs);
            b.version = 2;
        }
    }
    fn finish(mut self: Box<Self>) -> Result<(), EncodeError> {
        self.close().map_err(|e| self.io(e))
    }
}

/// WAV (Broadcast Wave with `bext` when asked; RF64 past 4 GiB) in the format registry.
pub struct WavCodec;

/// The registered WAV codec.
pub static CODEC: WavCodec = WavCodec;

/// WAV of `sample`, as an output format.
pub fn output(sample: PcmFormat) -> crate::formats::OutputFormat {
    crate::formats::OutputFormat::new(
        &CODEC,
        match sample {
            PcmFormat::Int(b) => crate::formats::Settings::int(b),
            PcmFormat::Float32 => crate::formats::Settings::float32(),
        },
    )
}

static ABOUT: crate::formats::CodecInfo = crate::formats::CodecInfo {
    id: "wav",
    name: "WAV",
    names: &["wav", "wave", "bwf"],
    extension: "wav",
    writes: &["wav", "rf64"],
    info: None,
    lossy: false,
    options: &[crate::formats::OptionSpec {
        opt: crate::formats::Opt::BitDepth,
        values: crate::formats::Values::Depths {
            int: &[8, 16, 24, 32],
            float: true,
        },
        says: "WAV takes 8, 16, 24, 32 or 32f (float)",
    }],
    exclusive: None,
    constraints: crate::formats::Constraints::ANY,
    tags: crate::formats::TagStyle::RiffChunks,
    settings: "lossless PCM (integer 8-32 bits or 32-bit float)",
    minute_bytes: 44_100 * 2 * 2 * 60,
    bext: true,
};

impl crate::formats::OutputCodec for WavCodec {
    fn about(&self) -> &'static crate::formats::CodecInfo {
        &ABOUT
    }
    fn settle(
        &self,
        asked: &crate::formats::Request,
        arriving: &crate::formats::Arriving,
    ) -> crate::formats::Settings {
        crate::formats::pcm_settings(asked, arriving, &ABOUT)
    }
    fn describe(&self, s: &crate::formats::Settings) -> String {
        match s.sample() {
            Some(PcmFormat::Float32) => "WAV 32-bit float".into(),
            Some(PcmFormat::Int(b)) => format!("WAV {b}-bit"),
            None => "WAV".into(),
        }
    }
    fn create(
        &self,
        s: &crate::formats::Settings,
        file: File,
        path: &std::path::Path,
        spec: &SignalSpec,
        bext: Option<Bext>,
    ) -> Result<Box<dyn Encoder>, EncodeError> {
        Ok(Box::new(WavEncoder::new(
            file,
            path.to_path_buf(),
            spec,
            &WavOptions {
                format: s.sample().unwrap_or(PcmFormat::Int(24)),
                bext,
            },
        )?))
    }
}
