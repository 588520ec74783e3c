//! AIFF writer: big-endian PCM, 8/16/24/32-bit integer. AIFF's sizes are 32-bit: a file that
//! would pass 4 GiB is refused as it is written (choose WAV, which becomes RF64, or FLAC).

use super::{EncodeError, Encoder, PcmFormat, interleave};
use crate::block::{Block, SignalSpec};
use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::PathBuf;

/// The sample rate as the 80-bit IEEE extended float AIFF's `COMM` chunk stores.
pub fn extended80(rate: u32) -> [u8; 10] {
    let mut out = [0u8; 10];
    if rate == 0 {
        return out;
    }
    let e = 31 - rate.leading_zeros();
    let exponent = (16383 + e) as u16;
    let mantissa = u64::from(rate) << (63 - e);
    out[..2].copy_from_slice(&exponent.to_be_bytes());
    out[2..].copy_from_slice(&mantissa.to_be_bytes());
    out
}

pub struct AiffEncoder {
    out: BufWriter<File>,
    path: PathBuf,
    format: PcmFormat,
    channels: usize,
    frames_offset: u64,
    ssnd_offset: u64,
    data_bytes: u64,
    frames: u64,
    buf: Vec<u8>,
}

impl AiffEncoder {
    pub fn new(
        file: File,
        path: PathBuf,
        spec: &SignalSpec,
        bits: u32,
    ) -> Result<AiffEncoder, EncodeError> {
        let channels = spec.channels();
        if !matches!(bits, 8 | 16 | 24 | 32) {
            return Err(EncodeError::Unsupported {
                path,
                detail: format!("AIFF bit depth {bits} is not offered: choose 8, 16, 24 or 32"),
            });
        }
        if channels == 0 || channels > 32_767 {
            return Err(EncodeError::Unsupported {
                path,
                detail: format!("AIFF cannot hold {channels} channels"),
            });
        }
        let mut enc = AiffEncoder {
            out: BufWriter::with_capacity(1 << 16, file),
            path,
            format: PcmFormat::Int(bits),
            channels,
            frames_offset: 0,
            ssnd_offset: 0,
            data_bytes: 0,
            frames: 0,
            buf: Vec::new(),
        };
        let w = &mut enc.out;
        let r = (|| -> std::io::Result<()> {
            w.write_all(b"FORM\0\0\0\0AIFF")?;
            w.write_all(b"COMM")?;
            w.write_all(&18u32.to_be_bytes())?;
            w.write_all(&(channels as u16).to_be_bytes())?;
            w.write_all(&0u32.to_be_bytes())?; // frames, patched
            w.write_all(&(bits as u16).to_be_bytes())?;
            w.write_all(&extended80(spec.sample_rate))?;
            w.write_all(b"SSND\0\0\0\0")?;
            w.write_all(&0u32.to_be_bytes())?; // offset
            w.write_all(&0u32.to_be_bytes())?; // block size
            Ok(())
        })();
        enc.frames_offset = 12 + 8 + 2;
        enc.ssnd_offset = 12 + 8 + 18;
        r.map_err(|e| enc.io(e))?;
        Ok(enc)
    }

    fn io(&self, source: std::io::Error) -> EncodeError {
        EncodeError::Io {
            path: self.path.clone(),
            source,
        }
    }

    fn close(&mut self) -> std::io::Result<()> {
        let (f, end) = super::end_chunk_data(&mut self.out, self.data_bytes)?;
        f.seek(SeekFrom::Start(4))?;
        f.write_all(&((end - 8) as u32).to_be_bytes())?;
        f.seek(SeekFrom::Start(self.frames_offset))?;
        f.write_all(&(self.frames as u32).to_be_bytes())?;
        f.seek(SeekFrom::Start(self.ssnd_offset + 4))?;
        f.write_all(&((self.data_bytes + 8) as u32).to_be_bytes())?;
        f.flush()
    }
}

impl Encoder for AiffEncoder {
    fn write(&mut self, block: &Block) -> Result<(), EncodeError> {
        debug_assert_eq!(block.channels(), self.channels);
        interleave(block, self.format, true, false, &mut self.buf);
        // FORM size (32-bit) must hold everything; leave room for tags.
        if self.data_bytes + self.buf.len() as u64 > u64::from(u32::MAX) - (1 << 20) {
            return Err(EncodeError::Unsupported {
                path: self.path.clone(),
                detail: "AIFF cannot hold more than 4 GiB of audio: choose WAV (written as RF64) or FLAC".into(),
            });
        }
        self.out.write_all(&self.buf).map_err(|e| self.io(e))?;
        self.data_bytes += self.buf.len() as u64;
        self.frames += block.frames() as u64;
        Ok(())
    }
    fn finish(mut self: Box<Self>) -> Result<(), EncodeError> {
        self.close().map_err(|e| self.io(e))
    }
}

/// AIFF in the format registry.
pub struct AiffCodec;

/// The registered AIFF codec.
pub static CODEC: AiffCodec = AiffCodec;

static ABOUT: crate::formats::CodecInfo = crate::formats::CodecInfo {
    id: "aiff",
    name: "AIFF",
    names: &["aiff", "aif"],
    extension: "aiff",
    writes: &["aiff"],
    info: None,
    lossy: false,
    options: &[crate::formats::OptionSpec {
        opt: crate::formats::Opt::BitDepth,
        values: crate::formats::Values::Depths {
            int: &[8, 16, 24, 32],
            float: false,
        },
        says: "AIFF takes 8, 16, 24, 32",
    }],
    exclusive: None,
    constraints: crate::formats::Constraints::ANY,
    tags: crate::formats::TagStyle::AiffChunks,
    settings: "lossless PCM",
    minute_bytes: 44_100 * 2 * 2 * 60,
    bext: false,
};

impl crate::formats::OutputCodec for AiffCodec {
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
        format!("AIFF {}-bit", s.bits.unwrap_or(24))
    }
    fn create(
        &self,
        s: &crate::formats::Settings,
        file: File,
        path: &std::path::Path,
        spec: &SignalSpec,
        _bext: Option<crate::riff::Bext>,
    ) -> Result<Box<dyn Encoder>, EncodeError> {
        Ok(Box::new(AiffEncoder::new(
            file,
            path.to_path_buf(),
            spec,
            s.bits.unwrap_or(24),
        )?))
    }
}
