//! What every encoder is to the rest of Sluice: the [`Encoder`] trait, its [`EncodeError`], how
//! PCM is stored ([`PcmFormat`]) and how a format is tagged ([`TagStyle`]). The codecs
//! (`crate::encode`) implement these; nothing here knows a codec.

use crate::block::Block;
use lofty::file::FileType;
use lofty::tag::TagType;
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
                source: crate::io::same_io_error(source),
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

/// An encoder of one output stream. Blocks arrive with the channel count and rate the encoder
/// was created for; integer formats get samples already on their grid (the dither stage
/// quantizes), so their conversion is exact rounding; samples outside [-1, 1) clip.
pub trait Encoder: Send {
    fn write(&mut self, block: &Block) -> Result<(), EncodeError>;
    /// The loudness measured on everything written, before [`Encoder::finish`] (formats that
    /// store it, like the Broadcast Wave `bext` chunk, use it).
    fn set_loudness(&mut self, loudness: &crate::block::OutputLoudness) {
        let _ = loudness;
    }
    /// Complete the stream (headers, sizes, trailing frames). The file stays temporary until
    /// the caller commits it.
    fn finish(self: Box<Self>) -> Result<(), EncodeError>;
}

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

/// How a format's files are tagged (each codec says which, see
/// [`OutputCodec`]'s `about().tags`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagStyle {
    /// By lofty, in the finished temporary file: any format lofty reads and writes.
    Lofty {
        file_type: FileType,
        tag_type: TagType,
    },
    /// RIFF chunks appended (a LIST/INFO list and an `id3 ` chunk): WAV.
    RiffChunks,
    /// AIFF chunks appended (an `ID3 ` chunk).
    AiffChunks,
}
