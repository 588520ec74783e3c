//! Typed errors for the input side. Every error names the file and says in plain words what is
//! wrong; none of them is ever a panic.

use std::io;
use std::path::{Path, PathBuf};

/// Why a file could not be opened, probed, decoded or have its tags read.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// The path does not exist.
    #[error("{}: no such file", path.display())]
    NotFound { path: PathBuf },

    /// The process may not read the file.
    #[error("{}: permission denied (the file is not readable by this user)", path.display())]
    PermissionDenied { path: PathBuf },

    /// A directory (or another non-regular file) was given where a file was expected.
    #[error("{}: is a directory, not an audio file", path.display())]
    IsDirectory { path: PathBuf },

    /// Not a regular file (a FIFO, a socket, a device).
    #[error("{}: not a regular file", path.display())]
    NotAFile { path: PathBuf },

    /// The file holds no bytes at all.
    #[error("{}: the file is empty (0 bytes)", path.display())]
    Empty { path: PathBuf },

    /// The content is not any audio format Sluice reads. `looks_like` names what the bytes
    /// appear to be when that can be told (text, MIDI, an image...).
    #[error("{}: not a recognised audio file{}", path.display(), looks_like.as_ref().map(|s| format!(" (the content looks like {s})")).unwrap_or_default())]
    Unrecognized {
        path: PathBuf,
        looks_like: Option<String>,
    },

    /// A known format that Sluice does not decode (MIDI, a video-only file, DSD...).
    #[error("{}: {format} is not supported: {reason}", path.display())]
    UnsupportedFormat {
        path: PathBuf,
        format: String,
        reason: String,
    },

    /// The container is readable but the codec inside is not one Sluice decodes.
    #[error("{}: the codec {codec} is not supported", path.display())]
    UnsupportedCodec { path: PathBuf, codec: String },

    /// The container has no audio track.
    #[error("{}: the file has no audio track", path.display())]
    NoAudioTrack { path: PathBuf },

    /// The header or structure is broken: the format was recognised but cannot be read.
    #[error("{}: malformed {format} file: {detail}", path.display())]
    Malformed {
        path: PathBuf,
        format: String,
        detail: String,
    },

    /// The header declares a stream outside what Sluice supports (a sample rate, channel count,
    /// bit depth or packet size outside [`crate::formats::limits`]). Refused before anything
    /// is sized from it.
    #[error("{}: {format} header: {range}", path.display())]
    OutOfRange {
        path: PathBuf,
        format: String,
        range: OutOfRange,
    },

    /// Audio data could not be decoded (and could not be skipped).
    #[error("{}: cannot decode the audio: {detail}", path.display())]
    Decode { path: PathBuf, detail: String },

    /// A tag block is broken.
    #[error("{}: cannot read the tags: {detail}", path.display())]
    Tags { path: PathBuf, detail: String },

    /// The caller stopped the work before the end of the file (a client that went away, a
    /// time limit, a server or host that is stopping). Not a fault of the file.
    #[error("{}: stopped before the end ({reason})", path.display())]
    Interrupted { path: PathBuf, reason: String },

    /// Any other I/O failure while reading.
    #[error("{}: read error: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// A third-party parser failed in a way it should not have (it panicked). The file is
    /// almost certainly malformed; the process is unaffected.
    #[error("{}: the {component} parser failed on this file (it is probably malformed): {detail}", path.display())]
    ParserFailure {
        path: PathBuf,
        component: &'static str,
        detail: String,
    },
}

impl InputError {
    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            InputError::NotFound { path }
            | InputError::PermissionDenied { path }
            | InputError::IsDirectory { path }
            | InputError::NotAFile { path }
            | InputError::Empty { path }
            | InputError::Unrecognized { path, .. }
            | InputError::UnsupportedFormat { path, .. }
            | InputError::UnsupportedCodec { path, .. }
            | InputError::NoAudioTrack { path }
            | InputError::Malformed { path, .. }
            | InputError::OutOfRange { path, .. }
            | InputError::Decode { path, .. }
            | InputError::Tags { path, .. }
            | InputError::Io { path, .. }
            | InputError::Interrupted { path, .. }
            | InputError::ParserFailure { path, .. } => path,
        }
    }

    /// A short stable machine-readable name of the error kind (for `--json` output).
    pub fn kind(&self) -> &'static str {
        match self {
            InputError::NotFound { .. } => "not_found",
            InputError::PermissionDenied { .. } => "permission_denied",
            InputError::IsDirectory { .. } => "is_directory",
            InputError::NotAFile { .. } => "not_a_file",
            InputError::Empty { .. } => "empty",
            InputError::Unrecognized { .. } => "unrecognized",
            InputError::UnsupportedFormat { .. } => "unsupported_format",
            InputError::UnsupportedCodec { .. } => "unsupported_codec",
            InputError::NoAudioTrack { .. } => "no_audio_track",
            InputError::Malformed { .. } => "malformed",
            InputError::OutOfRange { .. } => "out_of_range",
            InputError::Decode { .. } => "decode",
            InputError::Tags { .. } => "tags",
            InputError::Io { .. } => "io",
            InputError::Interrupted { .. } => "interrupted",
            InputError::ParserFailure { .. } => "parser_failure",
        }
    }

    /// Map an I/O error from opening or reading `path` to the most specific variant.
    pub fn from_io(path: &Path, err: io::Error) -> Self {
        let path = path.to_path_buf();
        match err.kind() {
            io::ErrorKind::NotFound => InputError::NotFound { path },
            io::ErrorKind::PermissionDenied => InputError::PermissionDenied { path },
            io::ErrorKind::IsADirectory => InputError::IsDirectory { path },
            _ => InputError::Io { path, source: err },
        }
    }
}

/// A panic caught inside third-party code, with its message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Panicked(pub String);

/// Run `f`, returning the message of a panic inside it instead of unwinding further.
pub(crate) fn catch_panic<T>(f: impl FnOnce() -> T) -> Result<T, Panicked> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|payload| {
        Panicked(if let Some(s) = payload.downcast_ref::<&str>() {
            (*s).to_string()
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.clone()
        } else {
            "internal error".to_string()
        })
    })
}

/// Run a third-party parser, turning a panic inside it into [`InputError::ParserFailure`].
///
/// Symphonia and lofty are written to return errors on malformed input, but a decoder that
/// panics on one hostile file must not take the host down with it.
pub(crate) fn guard<T>(
    path: &Path,
    component: &'static str,
    f: impl FnOnce() -> Result<T, InputError>,
) -> Result<T, InputError> {
    catch_panic(f).unwrap_or_else(|Panicked(detail)| {
        Err(InputError::ParserFailure {
            path: path.to_path_buf(),
            component,
            detail,
        })
    })
}

/// A stream fact outside what Sluice supports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutOfRange {
    /// The fact, in words an error can show (`sample rate`, `channels`, `bit depth`...).
    pub field: &'static str,
    /// Its value as given.
    pub value: String,
    /// What is supported, in words (`8000 to 384000 Hz`).
    pub supported: String,
}

impl std::fmt::Display for OutOfRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} is outside what Sluice supports ({})",
            self.field, self.value, self.supported
        )
    }
}

impl std::error::Error for OutOfRange {}
