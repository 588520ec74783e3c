//! Encoders: one trait, one module per format. Every encoder writes into a temporary file
//! beside the destination ([`AtomicFile`]); only a finished, tagged file is renamed into place,
//! so a failed encode never leaves a partial file under the destination's name.

use crate::render::Block;
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
    fn set_loudness(&mut self, loudness: &crate::render::OutputLoudness) {
        let _ = loudness;
    }
    /// Complete the stream (headers, sizes, trailing frames). The file stays temporary until
    /// the caller commits it.
    fn finish(self: Box<Self>) -> Result<(), EncodeError>;
}

pub mod aiff;
pub mod flac;
pub mod mp3;
pub mod tags;
pub mod vorbis;
pub mod wav;

use std::fs::{File, OpenOptions};
use std::path::Path;

/// A temporary file beside `dest`, renamed onto it by [`AtomicFile::commit`]. Dropped without
/// a commit (an error, a panic, a cancelled job), it removes itself: no partial file is ever
/// left under the destination's name, and an existing file there is untouched until the
/// rename.
#[derive(Debug)]
pub struct AtomicFile {
    dest: PathBuf,
    temp: PathBuf,
    overwrite: bool,
    committed: bool,
}

impl AtomicFile {
    /// Create the temporary file. With `overwrite` false an existing `dest` is an error (now,
    /// and again at commit time).
    pub fn create(dest: &Path, overwrite: bool) -> Result<(AtomicFile, File), EncodeError> {
        let io = |source| EncodeError::Io {
            path: dest.to_path_buf(),
            source,
        };
        if !overwrite && dest.exists() {
            return Err(io(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "the file exists (choose another name, or allow overwriting)",
            )));
        }
        let dir = match dest.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "output".into());
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        for _ in 0..100 {
            let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let temp = dir.join(format!(".{name}.sluice-{}-{n}.part", std::process::id()));
            match OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&temp)
            {
                Ok(f) => {
                    return Ok((
                        AtomicFile {
                            dest: dest.to_path_buf(),
                            temp,
                            overwrite,
                            committed: false,
                        },
                        f,
                    ));
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io(e)),
            }
        }
        Err(io(std::io::Error::other("cannot create a temporary file")))
    }

    /// Write `bytes` to `dest` (its folder made if need be) through a temporary file, replacing
    /// what was there only once everything is on disk.
    pub fn write(dest: &Path, bytes: &[u8]) -> Result<u64, EncodeError> {
        use std::io::Write;
        if let Some(dir) = dest.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| EncodeError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let (atomic, mut f) = AtomicFile::create(dest, true)?;
        f.write_all(bytes).map_err(|source| EncodeError::Io {
            path: dest.to_path_buf(),
            source,
        })?;
        drop(f);
        atomic.commit()
    }

    /// The temporary file's path (tags are written there before the commit).
    pub fn temp_path(&self) -> &Path {
        &self.temp
    }

    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// Flush to disk and rename onto the destination.
    pub fn commit(mut self) -> Result<u64, EncodeError> {
        let io = |source| EncodeError::Io {
            path: self.dest.clone(),
            source,
        };
        let f = File::open(&self.temp).map_err(io)?;
        f.sync_all().map_err(io)?;
        let size = f.metadata().map_err(io)?.len();
        drop(f);
        if self.overwrite {
            std::fs::rename(&self.temp, &self.dest).map_err(io)?;
        } else {
            // A hard link fails if the destination appeared meanwhile: never clobber it.
            std::fs::hard_link(&self.temp, &self.dest).map_err(|e| {
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    io(std::io::Error::new(
                        std::io::ErrorKind::AlreadyExists,
                        "the file appeared while rendering; it was left alone",
                    ))
                } else {
                    io(e)
                }
            })?;
            let _ = std::fs::remove_file(&self.temp);
        }
        self.committed = true;
        // The rename itself reaches the disk with the folder.
        if let Some(dir) = self.dest.parent().filter(|d| !d.as_os_str().is_empty())
            && let Ok(d) = File::open(dir)
        {
            let _ = d.sync_all();
        }
        Ok(size)
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
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
