//! `sluice-core`: Sluice's DSP core.
//!
//! The input side is here: [`Decoder`] streams planar `f32` blocks from any supported file,
//! [`probe`] reads format facts from headers only, [`read_tags`] reads every tag into one model
//! (including the Broadcast Wave `bext` chunk), and [`formats`] is the format registry.
//! Everything is streaming: memory is bounded by the block size, not the file's length.

#[cfg(feature = "aac")]
pub mod aacdec;
pub mod analysis;
pub mod block;
pub mod decode;
pub mod encode;
pub mod error;
pub mod export;
pub mod formats;
mod headers;
pub mod interned;
pub mod io;
pub mod mp4;
pub mod mpa;
pub mod opus;
pub mod qc;
pub mod render;
pub mod replaygain;
pub mod riff;
pub mod signal;
pub mod tags;
pub mod time;

pub use decode::{AudioBlock, Decoder, FrameCountSource, StreamInfo, open_checked};
pub use error::InputError;
pub use riff::Bext;
pub use tags::{Tags, read_tags};

use serde::Serialize;
use std::path::{Path, PathBuf};

/// Read the format facts of `path` from its headers only (no audio is decoded).
pub fn probe(path: &Path) -> Result<StreamInfo, InputError> {
    Ok(Decoder::open(path)?.into_info())
}

/// Decode the whole file to count its frames exactly and find truncation or damage.
pub fn probe_decoded(path: &Path) -> Result<StreamInfo, InputError> {
    Decoder::open(path)?.decode_to_end()
}

/// Options of [`info`].
#[derive(Debug, Clone, Default)]
pub struct InfoOptions {
    /// Decode the whole file (exact frame count, truncation and damage found).
    pub decode: bool,
}

/// Everything `sluice info` shows about one file.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct FileInfo {
    pub path: PathBuf,
    #[serde(flatten)]
    pub stream: StreamInfo,
    pub tags: Tags,
}

/// Probe `path` and read its tags. A broken tag block does not fail the file: it becomes a
/// warning in [`StreamInfo::warnings`], because the audio is still usable.
pub fn info(path: &Path, opts: &InfoOptions) -> Result<FileInfo, InputError> {
    let decoder = Decoder::open(path)?;
    // The decoder already walked a WAV's chunks; its `bext` and INFO are tags.
    let riff = decoder.riff_scan().cloned();
    let stream = if opts.decode {
        decoder.decode_to_end()?
    } else {
        decoder.into_info()
    };
    with_tags(path, stream, riff.as_ref())
}

/// The facts of a file whose decoder is already open (its stream as read so far) and its tags,
/// without opening another decoder: a job renders with the decoder it read them from.
pub fn info_of(decoder: &Decoder) -> Result<FileInfo, InputError> {
    with_tags(decoder.path(), decoder.info().clone(), decoder.riff_scan())
}

/// `stream` with the tags of the file at `path` (`riff`: the decoder's walk of a WAV's chunks).
fn with_tags(
    path: &Path,
    mut stream: StreamInfo,
    riff: Option<&riff::RiffScan>,
) -> Result<FileInfo, InputError> {
    let (file, _) = open_checked(path)?;
    let tags = match tags::read_tags_with(path, file, riff) {
        Ok((t, kbps)) => {
            // lofty gives Ogg Vorbis's nominal rate; the file-size average (already set) is
            // the truthful figure there.
            if !stream.lossless
                && stream.format != "ogg_vorbis"
                && let Some(k) = kbps.filter(|k| *k > 0)
            {
                stream.bitrate = Some(u64::from(k) * 1000);
            }
            t
        }
        Err(e @ InputError::Tags { .. }) | Err(e @ InputError::ParserFailure { .. }) => {
            stream.warnings.push(e.to_string());
            Tags::default()
        }
        Err(e) => return Err(e),
    };
    Ok(FileInfo {
        path: path.to_path_buf(),
        stream,
        tags,
    })
}
