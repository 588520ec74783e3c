//! ReplayGain 2.0 tags read from and written into existing files, touching nothing but the tag
//! that holds them: Vorbis comments in FLAC and Ogg Vorbis, ID3v2 `TXXX` frames in MP3 (and
//! the APEv2 tag too where an MP3 has one), MP4 freeform atoms (`----:com.apple.iTunes:...`) in
//! M4A, and the ID3v2 chunk of WAV and AIFF. Keys are written in upper case, as the
//! ReplayGain 2.0 specification, foobar2000, loudgain and rsgain write them; they are found in
//! any case. The gain is "±N.NN dB" against the −18 LUFS reference, the peak a linear ratio
//! with six decimals.
//!
//! Writing goes through lofty's concrete tag of each format (never a conversion to its
//! generic tag, which could drop frames it has no name for), into the file given: callers
//! that need the change to be atomic give a copy and rename it over the original
//! (`sluice_engine::gaintag` does).

use lofty::TextEncoding;
use lofty::ape::{ApeItem, ApeTag};
use lofty::config::{ParseOptions, WriteOptions};
use lofty::file::{AudioFile, FileType};
use lofty::flac::FlacFile;
use lofty::id3::v2::{ExtendedTextFrame, Frame, Id3v2Tag, Id3v2Version};
use lofty::iff::aiff::AiffFile;
use lofty::iff::wav::WavFile;
use lofty::mp4::{Atom, AtomData, AtomIdent, Ilst, Mp4File};
use lofty::mpeg::MpegFile;
use lofty::ogg::tag::VorbisComments;
use lofty::ogg::{OggPictureStorage, OpusFile, VorbisFile};
use lofty::tag::{ItemValue, TagExt};
use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// The reference loudness of ReplayGain 2.0, LUFS.
pub const REFERENCE_LUFS: f64 = -18.0;

/// The four fields this module writes.
pub const TRACK_GAIN: &str = "REPLAYGAIN_TRACK_GAIN";
pub const TRACK_PEAK: &str = "REPLAYGAIN_TRACK_PEAK";
pub const ALBUM_GAIN: &str = "REPLAYGAIN_ALBUM_GAIN";
pub const ALBUM_PEAK: &str = "REPLAYGAIN_ALBUM_PEAK";

/// Every loudness field a new measurement makes stale, removed before writing (and by a
/// removal): the four above, the extra fields other taggers write, Opus's R128 gains.
pub const STALE: &[&str] = &[
    TRACK_GAIN,
    TRACK_PEAK,
    ALBUM_GAIN,
    ALBUM_PEAK,
    "REPLAYGAIN_REFERENCE_LOUDNESS",
    "REPLAYGAIN_TRACK_RANGE",
    "REPLAYGAIN_ALBUM_RANGE",
    "R128_TRACK_GAIN",
    "R128_ALBUM_GAIN",
];

const ITUNES: &str = "com.apple.iTunes";

/// Ogg Opus's gains (RFC 7845, section 5.2.1): Q7.8 fixed point (a signed integer, 1/256 dB),
/// relative to the header's output gain, towards −23 LUFS (EBU R 128). Opus files get these
/// in place of the ReplayGain fields, which the RFC asks Opus files not to carry.
pub const R128_TRACK_GAIN: &str = "R128_TRACK_GAIN";
pub const R128_ALBUM_GAIN: &str = "R128_ALBUM_GAIN";

/// The reference loudness of Opus's R128 gains, LUFS.
pub const R128_REFERENCE_LUFS: f64 = -23.0;

/// A gain in dB as an R128 field's text: Q7.8, rounded, held to what 16 bits store.
pub fn r128_text(db: f64) -> String {
    let q = (db * 256.0)
        .round()
        .clamp(f64::from(i16::MIN), f64::from(i16::MAX));
    format!("{}", q as i32)
}

/// The gains to write: track gain and peak, and an album's when the file belongs to one.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Gains {
    pub track_gain_db: f64,
    /// Linear true peak.
    pub track_peak: f64,
    pub album: Option<AlbumGain>,
}

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AlbumGain {
    pub gain_db: f64,
    /// Linear true peak of the whole album (its loudest track's).
    pub peak: f64,
}

impl Gains {
    /// The fields as written, in key order.
    pub fn fields(&self) -> Vec<(&'static str, String)> {
        let mut out = vec![
            (TRACK_GAIN, gain_text(self.track_gain_db)),
            (TRACK_PEAK, peak_text(self.track_peak)),
        ];
        if let Some(a) = self.album {
            out.push((ALBUM_GAIN, gain_text(a.gain_db)));
            out.push((ALBUM_PEAK, peak_text(a.peak)));
        }
        out
    }

    /// The fields as written into an Ogg Opus file: its R128 gains (towards −23 LUFS, so
    /// 5 dB under the ReplayGain gains); Opus has no peak fields.
    pub fn r128_fields(&self) -> Vec<(&'static str, String)> {
        let shift = R128_REFERENCE_LUFS - REFERENCE_LUFS;
        let mut out = vec![(R128_TRACK_GAIN, r128_text(self.track_gain_db + shift))];
        if let Some(a) = self.album {
            out.push((R128_ALBUM_GAIN, r128_text(a.gain_db + shift)));
        }
        out
    }
}

/// "+1.23 dB" is written "1.23 dB", as every other tagger does.
pub fn gain_text(db: f64) -> String {
    // −0.00 would read oddly.
    let db = if db.abs() < 0.005 { 0.0 } else { db };
    format!("{db:.2} dB")
}

pub fn peak_text(peak: f64) -> String {
    format!("{peak:.6}")
}

/// A file whose gain tags cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum GainTagError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file cannot be read as audio (the error names it).
    #[error(transparent)]
    Input(#[from] crate::InputError),
    #[error("{path}: its tags cannot be read or written: {detail}")]
    Tags { path: PathBuf, detail: String },
    #[error(
        "{path}: {format} files are not tagged here (FLAC, MP3, Ogg Vorbis, Ogg Opus, M4A, WAV and AIFF are)"
    )]
    Unsupported { path: PathBuf, format: String },
}

fn tags_error(path: &Path, e: impl std::fmt::Display) -> GainTagError {
    GainTagError::Tags {
        path: path.to_path_buf(),
        detail: e.to_string(),
    }
}

fn io_error(path: &Path, source: std::io::Error) -> GainTagError {
    GainTagError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The format's tag, as read from the file: the one that gets the gain fields.
enum GainTag {
    Vorbis(VorbisComments),
    /// The ID3v2 tag (a new one when the file has none) and, on MP3, an APEv2 tag present.
    Id3(Id3v2Tag, Option<ApeTag>),
    Mp4(Ilst),
}

fn parse_options() -> ParseOptions {
    ParseOptions::new().read_properties(false)
}

/// The file's format by Sluice's own probe (its header, not its name), as the lofty type
/// that carries its tag. lofty's own guess is not used: it takes an RF64 file whose header it
/// does not know for an MPEG stream (a frame sync found in the audio) and would write an ID3v2
/// tag in front of its RIFF header. `real` is the file read (a copy, when writing), `path` the
/// name errors give.
fn file_type(real: &Path, path: &Path, file: &mut File) -> Result<FileType, GainTagError> {
    let info = crate::probe(real).map_err(|e| {
        if real == path {
            GainTagError::Input(e)
        } else {
            tags_error(path, e)
        }
    })?;
    let kind = match info.format {
        "wav" => FileType::Wav,
        "aiff" => FileType::Aiff,
        "flac" => FileType::Flac,
        "mp3" => FileType::Mpeg,
        "ogg_vorbis" => FileType::Vorbis,
        "m4a_aac" | "m4a_alac" => FileType::Mp4,
        "opus" => FileType::Opus,
        _ => {
            return Err(GainTagError::Unsupported {
                path: path.to_path_buf(),
                format: info.format_name.to_string(),
            });
        }
    };
    file.seek(SeekFrom::Start(0))
        .map_err(|e| io_error(path, e))?;
    Ok(kind)
}

/// `kind` is the file's type by [`file_type`].
fn read_gain_tag(path: &Path, file: &mut File, kind: FileType) -> Result<GainTag, GainTagError> {
    let e = |e| tags_error(path, e);
    let tag = match kind {
        FileType::Flac => {
            let flac = FlacFile::read_from(file, parse_options()).map_err(e)?;
            let mut vc = flac.vorbis_comments().cloned().unwrap_or_default();
            // FLAC keeps its pictures in blocks of their own, which lofty reads beside the
            // comments and writes back from the comments' pictures: carried over, or a save
            // of the comments alone would drop the cover art.
            for (picture, info) in OggPictureStorage::pictures(&flac) {
                vc.insert_picture(picture.clone(), Some(*info))
                    .map_err(|x| tags_error(path, x))?;
            }
            GainTag::Vorbis(vc)
        }
        FileType::Vorbis => GainTag::Vorbis(
            VorbisFile::read_from(file, parse_options())
                .map_err(e)?
                .vorbis_comments()
                .clone(),
        ),
        FileType::Opus => GainTag::Vorbis(
            OpusFile::read_from(file, parse_options())
                .map_err(e)?
                .vorbis_comments()
                .clone(),
        ),
        FileType::Mpeg => {
            let f = MpegFile::read_from(file, parse_options()).map_err(e)?;
            GainTag::Id3(f.id3v2().cloned().unwrap_or_default(), f.ape().cloned())
        }
        FileType::Wav => GainTag::Id3(
            WavFile::read_from(file, parse_options())
                .map_err(e)?
                .id3v2()
                .cloned()
                .unwrap_or_default(),
            None,
        ),
        FileType::Aiff => GainTag::Id3(
            AiffFile::read_from(file, parse_options())
                .map_err(e)?
                .id3v2()
                .cloned()
                .unwrap_or_default(),
            None,
        ),
        FileType::Mp4 => GainTag::Mp4(
            Mp4File::read_from(file, parse_options())
                .map_err(e)?
                .ilst()
                .cloned()
                .unwrap_or_default(),
        ),
        other => {
            return Err(GainTagError::Unsupported {
                path: path.to_path_buf(),
                format: format!("{other:?}"),
            });
        }
    };
    Ok(tag)
}

/// The gain fields a file holds now, by key (upper case), in its main tag.
pub fn read(path: &Path) -> Result<Vec<(String, String)>, GainTagError> {
    let mut file = File::open(path).map_err(|e| io_error(path, e))?;
    let kind = file_type(path, path, &mut file)?;
    let tag = read_gain_tag(path, &mut file, kind)?;
    let wanted = |k: &str| STALE.iter().any(|s| s.eq_ignore_ascii_case(k));
    let mut out = Vec::new();
    match &tag {
        GainTag::Vorbis(vc) => {
            for (k, v) in vc.items() {
                if wanted(k) {
                    out.push((k.to_ascii_uppercase(), v.to_string()));
                }
            }
        }
        GainTag::Id3(id3, _) => {
            for f in id3.iter() {
                if let Frame::UserText(t) = f
                    && wanted(&t.description)
                {
                    out.push((t.description.to_ascii_uppercase(), t.content.to_string()));
                }
            }
        }
        GainTag::Mp4(ilst) => {
            for a in ilst {
                if let AtomIdent::Freeform { name, .. } = a.ident()
                    && wanted(name.as_ref())
                    && let Some(AtomData::UTF8(v)) = a.data().next()
                {
                    out.push((name.to_ascii_uppercase(), v.clone()));
                }
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Replace the gain fields of `path` (every [`STALE`] field removed) by `gains`, or only
/// remove them when `gains` is `None`. The file is changed in place: give a copy for an atomic
/// change. `shown` names the file in errors.
pub fn write(path: &Path, shown: &Path, gains: Option<&Gains>) -> Result<(), GainTagError> {
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| io_error(shown, e))?;
    let kind = file_type(path, shown, &mut file)?;
    if kind == FileType::Wav {
        let len = file.metadata().map_err(|e| io_error(shown, e))?.len();
        let scan = crate::riff::scan(&mut file, len).map_err(|e| io_error(shown, e))?;
        if let Some(d) = scan
            .as_ref()
            .and_then(|s| s.data.filter(|_| s.data_truncated()))
        {
            return Err(tags_error(
                shown,
                format!(
                    "its data chunk claims {} bytes and the file holds {}: a tag after it would be read as audio (the file is cut short or still being written)",
                    d.size,
                    len.saturating_sub(d.offset)
                ),
            ));
        }
        riff_size_to_length(path, &mut file).map_err(|e| io_error(shown, e))?;
    }
    let tag = read_gain_tag(shown, &mut file, kind)?;
    let fields = match gains {
        None => Vec::new(),
        Some(g) if kind == FileType::Opus => g.r128_fields(),
        Some(g) => g.fields(),
    };
    let stale = |k: &str| STALE.iter().any(|s| s.eq_ignore_ascii_case(k));
    let e = |x: lofty::error::FileEncodingError| tags_error(shown, x);
    let mut options = WriteOptions::default();
    match tag {
        GainTag::Vorbis(mut vc) => {
            let keys: Vec<String> = vc
                .items()
                .filter(|(k, _)| stale(k))
                .map(|(k, _)| k.to_string())
                .collect();
            for k in keys {
                vc.remove(&k).for_each(drop);
            }
            for (k, v) in fields {
                vc.insert(k.to_string(), v);
            }
            rewind(shown, &mut file)?;
            vc.save_to(&mut file, options).map_err(e)?;
        }
        GainTag::Id3(mut id3, ape) => {
            id3.retain(|f| !matches!(f, Frame::UserText(t) if stale(&t.description)));
            // Latin-1 (the values are ASCII): lofty's default, UTF-8, becomes UTF-16 with a
            // byte-order mark in an ID3v2.3 tag, and the mark (FF FE) reads as an MPEG frame
            // sync to a decoder that searches for one (symphonia took such a file for MPEG
            // layer I).
            for (k, v) in &fields {
                id3.insert(Frame::UserText(ExtendedTextFrame::new(
                    TextEncoding::Latin1,
                    k.to_string(),
                    v.clone(),
                )));
            }
            if id3.original_version() == Id3v2Version::V3 {
                options = options.use_id3v23(true);
            }
            rewind(shown, &mut file)?;
            id3.save_to(&mut file, options).map_err(e)?;
            if kind == FileType::Mpeg
                && let Some(mut ape) = ape
            {
                for k in STALE {
                    ape.remove(k);
                }
                for (k, v) in &fields {
                    let item = ApeItem::new(k.to_string(), ItemValue::Text(v.clone()))
                        .map_err(|x| tags_error(shown, x))?;
                    ape.insert(item);
                }
                rewind(shown, &mut file)?;
                ape.save_to(&mut file, options).map_err(e)?;
            }
        }
        GainTag::Mp4(mut ilst) => {
            ilst.retain(|a| !matches!(a.ident(), AtomIdent::Freeform { name, .. } if stale(name)));
            for (k, v) in fields {
                ilst.insert(Atom::new(
                    AtomIdent::Freeform {
                        mean: ITUNES.into(),
                        name: k.into(),
                    },
                    AtomData::UTF8(v),
                ));
            }
            rewind(shown, &mut file)?;
            ilst.save_to(&mut file, options).map_err(e)?;
        }
    }
    file.sync_all().map_err(|e| io_error(shown, e))
}

/// A WAV whose RIFF size claims more than the file holds (what a writer that never finished,
/// or a stream, leaves: 0xFFFFFFF0 and the like) gets the size of what it holds, which lofty
/// needs to write its tag. Decoders read such files by their chunks either way.
fn riff_size_to_length(path: &Path, file: &mut File) -> std::io::Result<()> {
    use std::io::{Read, Write};
    let len = file.metadata()?.len();
    let mut head = [0u8; 8];
    file.seek(SeekFrom::Start(0))?;
    file.read_exact(&mut head)?;
    let declared = u64::from(u32::from_le_bytes([head[4], head[5], head[6], head[7]]));
    if &head[..4] == b"RIFF" && declared + 8 > len && len - 8 <= u64::from(u32::MAX) {
        tracing::info!(path = %path.display(), declared, len, "RIFF size set to the file's length");
        file.seek(SeekFrom::Start(4))?;
        file.write_all(&((len - 8) as u32).to_le_bytes())?;
    }
    file.seek(SeekFrom::Start(0)).map(drop)
}

fn rewind(path: &Path, file: &mut File) -> Result<(), GainTagError> {
    file.seek(SeekFrom::Start(0))
        .map(drop)
        .map_err(|e| io_error(path, e))
}
