//! Encoders: one trait, one module per format. Every encoder writes into a temporary file
//! beside the destination ([`AtomicFile`]); only a finished, tagged file is renamed into place,
//! so a failed encode never leaves a partial file under the destination's name.

use crate::block::Block;
use std::fs::File;
use std::path::PathBuf;

/// Why an output could not be written.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("{}: cannot write: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The encoder library refused or failed.
    #[error("{}: {format} encoder failed: {detail}", path.display())]
    Codec {
        path: PathBuf,
        format: &'static str,
        detail: String,
    },
    /// The options cannot be encoded in this format (24-bit MP3, 400 kHz FLAC...).
    #[error("{}: {detail}", path.display())]
    Unsupported { path: PathBuf, detail: String },
    /// The tags could not be written.
    #[error("{}: cannot write the tags: {detail}", path.display())]
    Tags { path: PathBuf, detail: String },
}

impl From<crate::io::FileError> for EncodeError {
    fn from(e: crate::io::FileError) -> Self {
        EncodeError::Io {
            path: e.path,
            source: e.source,
        }
    }
}

impl EncodeError {
    /// The same error again, for a caller that asks after the first report (an encoder that
    /// failed cannot go on, and says why each time it is asked): an I/O error keeps its kind
    /// and the operating system's code, so the root cause (a full disk, a missing permission)
    /// stays typed however late it is reported.
    pub fn again(&self) -> EncodeError {
        match self {
            EncodeError::Io { path, source } => EncodeError::Io {
                path: path.clone(),
                source: same_io_error(source),
            },
            EncodeError::Codec {
                path,
                format,
                detail,
            } => EncodeError::Codec {
                path: path.clone(),
                format,
                detail: detail.clone(),
            },
            EncodeError::Unsupported { path, detail } => EncodeError::Unsupported {
                path: path.clone(),
                detail: detail.clone(),
            },
            EncodeError::Tags { path, detail } => EncodeError::Tags {
                path: path.clone(),
                detail: detail.clone(),
            },
        }
    }
}

/// A copy of `e`: the same OS error code where it has one, else the same kind and message.
pub fn same_io_error(e: &std::io::Error) -> std::io::Error {
    match e.raw_os_error() {
        Some(code) => std::io::Error::from_raw_os_error(code),
        None => std::io::Error::new(e.kind(), e.to_string()),
    }
}

/// The first I/O error in `e`'s chain of causes (itself included), if any: what tells a
/// failure of the machine (a full disk, a permission) from a failure of the data.
pub fn io_cause<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a std::io::Error> {
    let mut cur = Some(e);
    while let Some(c) = cur {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            return Some(io);
        }
        cur = c.source();
    }
    None
}

/// An encoder of one output stream. Blocks arrive with the channel count and rate the encoder
/// was created for; integer formats get samples already on their grid (the dither stage
/// quantizes), so their conversion is exact rounding; samples outside [-1, 1) clip.
pub trait Encoder: Send {
    fn write(&mut self, block: &Block) -> Result<(), EncodeError>;
    /// The loudness measured on everything written, before [`Encoder::finish`] (formats that
    /// store it, like the Broadcast Wave `bext` chunk, use it).
    fn set_loudness(&mut self, loudness: &crate::analysis::loudness::OutputLoudness) {
        let _ = loudness;
    }
    /// Complete the stream (headers, sizes, trailing frames). The file stays temporary until
    /// the caller commits it.
    fn finish(self: Box<Self>) -> Result<(), EncodeError>;
}

pub mod aiff;
pub mod flac;
#[cfg(feature = "mp3")]
pub mod mp3;
pub mod tags;
#[cfg(feature = "vorbis")]
pub mod vorbis;
pub mod wav;

/// The output formats Sluice writes, in the order they are listed: the one place a codec is
/// registered (see [`crate::formats::OutputCodec`]). MP3 (LAME) and Vorbis (libvorbis) come
/// with the `mp3` and `vorbis` features, on by default; the plugin, which records WAV and FLAC,
/// builds without them.
pub static CODECS: &[&dyn crate::formats::OutputCodec] = &[
    &wav::CODEC,
    &aiff::CODEC,
    &flac::CODEC,
    #[cfg(feature = "mp3")]
    &mp3::CODEC,
    #[cfg(feature = "vorbis")]
    &vorbis::CODEC,
];

/// How integer or float PCM is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PcmFormat {
    /// Signed integers of this many bits (8-bit WAV is unsigned, as WAV requires).
    Int(u32),
    /// 32-bit IEEE float.
    Float32,
}

impl PcmFormat {
    pub fn bytes(self) -> usize {
        match self {
            PcmFormat::Int(b) => b.div_ceil(8) as usize,
            PcmFormat::Float32 => 4,
        }
    }
    pub fn bits(self) -> u32 {
        match self {
            PcmFormat::Int(b) => b,
            PcmFormat::Float32 => 32,
        }
    }
}

/// Interleave `block` into `out` as little- or big-endian PCM.
pub(crate) fn interleave(
    block: &Block,
    fmt: PcmFormat,
    big_endian: bool,
    unsigned8: bool,
    out: &mut Vec<u8>,
) {
    let frames = block.frames();
    let planes = block.planes();
    out.clear();
    out.reserve(frames * planes.len() * fmt.bytes());
    // The format is decided once; the (inlined) loop only converts and stores.
    #[inline(always)]
    fn each(
        frames: usize,
        planes: &[Vec<f32>],
        out: &mut Vec<u8>,
        store: impl Fn(f32, &mut Vec<u8>),
    ) {
        for i in 0..frames {
            for p in planes {
                store(p[i], out);
            }
        }
    }
    match fmt {
        PcmFormat::Float32 => each(frames, planes, out, |x, out| {
            out.extend_from_slice(&if big_endian {
                x.to_be_bytes()
            } else {
                x.to_le_bytes()
            })
        }),
        PcmFormat::Int(bits) => {
            let scale = (1i64 << (bits - 1)) as f64;
            let n = fmt.bytes();
            // Left-justify odd depths (20 bits in 3 bytes) as WAV and AIFF require.
            let shift = n as u32 * 8 - bits;
            let offset = if bits == 8 && unsigned8 { 128 } else { 0 };
            each(frames, planes, out, |x, out| {
                let v = (f64::from(x) * scale).round().clamp(-scale, scale - 1.0) as i64;
                let v = (v + offset) << shift;
                let le = v.to_le_bytes();
                if big_endian {
                    out.extend(le[..n].iter().rev());
                } else {
                    out.extend_from_slice(&le[..n]);
                }
            })
        }
    }
}

/// End the sound data of a chunked file (WAV, AIFF): the pad byte an odd-sized chunk needs,
/// everything flushed; returns the file, to patch the header sizes, and its length.
pub(crate) fn end_chunk_data(
    out: &mut std::io::BufWriter<File>,
    data_bytes: u64,
) -> std::io::Result<(&mut File, u64)> {
    use std::io::{Seek, Write};
    if data_bytes % 2 == 1 {
        out.write_all(&[0])?;
    }
    out.flush()?;
    let f = out.get_mut();
    let end = f.seek(std::io::SeekFrom::End(0))?;
    Ok((f, end))
}
