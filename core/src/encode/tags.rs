//! Tags on outputs: the source's tags carried over (mapped between formats by lofty's generic
//! keys), fields set by the user, and ReplayGain 2.0 track gain and peak from the loudness
//! measured on the output. FLAC, MP3 and Ogg files are tagged by lofty in their temporary
//! file; WAV and AIFF get their tag chunks appended by us (an `id3 ` chunk, and a LIST/INFO
//! list on WAV), which never rewrites the audio of a large file.

use super::EncodeError;
use crate::block::OutputLoudness;
pub use crate::formats::TagStyle;
use lofty::config::{ParseOptions, WriteOptions};
use lofty::file::TaggedFileExt;
use lofty::id3::v2::Id3v2Tag;
use lofty::prelude::*;
use lofty::probe::Probe;
use lofty::tag::{ItemKey, Tag, TagType};
use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The user-facing tag keys of `--tag KEY=VALUE` and pipeline files, with lofty's key.
pub const KEYS: &[(&str, ItemKey)] = &[
    ("title", ItemKey::TrackTitle),
    ("artist", ItemKey::TrackArtist),
    ("album", ItemKey::AlbumTitle),
    ("album_artist", ItemKey::AlbumArtist),
    ("genre", ItemKey::Genre),
    ("date", ItemKey::RecordingDate),
    ("track", ItemKey::TrackNumber),
    ("track_total", ItemKey::TrackTotal),
    ("disc", ItemKey::DiscNumber),
    ("disc_total", ItemKey::DiscTotal),
    ("isrc", ItemKey::Isrc),
    ("bpm", ItemKey::Bpm),
    ("key", ItemKey::InitialKey),
    ("comment", ItemKey::Comment),
    ("copyright", ItemKey::CopyrightMessage),
    ("composer", ItemKey::Composer),
    ("publisher", ItemKey::Label),
    ("encoder", ItemKey::EncoderSoftware),
];

/// What to put in an output's tags.
#[derive(Debug, Clone, Default)]
pub struct TagPlan {
    /// Carry every tag (and picture) of this file over.
    pub carry_from: Option<PathBuf>,
    /// Fields to set, by [`KEYS`] name; an empty value removes the field.
    pub set: Vec<(String, String)>,
    /// Write ReplayGain 2.0 track gain and peak (needs the output's loudness).
    pub replaygain: bool,
}

/// A tag field the user set that cannot be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TagError {
    #[error("unknown tag key '{key}': known keys are {known}")]
    UnknownKey { key: String, known: String },
    #[error(
        "isrc '{value}' is not an ISRC: 12 characters, CC-XXX-YY-NNNNN (country, registrant, year, number)"
    )]
    Isrc { value: String },
    #[error("{key} '{value}' must be a whole number")]
    NotWhole { key: String, value: String },
    #[error("bpm '{value}' must be a number of beats per minute")]
    Bpm { value: String },
}

impl TagPlan {
    /// Check the keys and values of [`TagPlan::set`]: unknown keys, malformed ISRCs and
    /// numbers are errors, with the offending entry named.
    pub fn validate(&self) -> Result<(), TagError> {
        for (k, v) in &self.set {
            let Some(_) = KEYS.iter().find(|(n, _)| n == k) else {
                return Err(TagError::UnknownKey {
                    key: k.clone(),
                    known: KEYS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", "),
                });
            };
            if v.is_empty() {
                continue;
            }
            match k.as_str() {
                "isrc" => {
                    let code: String = v.chars().filter(|c| *c != '-').collect();
                    let ok = code.len() == 12
                        && code[..2].chars().all(|c| c.is_ascii_uppercase())
                        && code[2..5].chars().all(|c| c.is_ascii_alphanumeric())
                        && code[5..].chars().all(|c| c.is_ascii_digit());
                    if !ok {
                        return Err(TagError::Isrc { value: v.clone() });
                    }
                }
                "track" | "track_total" | "disc" | "disc_total" if v.parse::<u32>().is_err() => {
                    return Err(TagError::NotWhole {
                        key: k.clone(),
                        value: v.clone(),
                    });
                }
                "bpm" if !v.parse::<f64>().is_ok_and(|b| b > 0.0 && b < 1000.0) => {
                    return Err(TagError::Bpm { value: v.clone() });
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// A failure to tag `path`: an I/O error underneath (the disk filled while the tags were
/// written) stays an I/O error, with its kind and OS code; anything else is a tag error.
fn tag_error(path: &Path, e: impl std::error::Error + 'static) -> EncodeError {
    match super::io_cause(&e) {
        Some(io) => EncodeError::Io {
            path: path.to_path_buf(),
            source: super::same_io_error(io),
        },
        None => EncodeError::Tags {
            path: path.to_path_buf(),
            detail: e.to_string(),
        },
    }
}

/// Every tag of `source` merged into one generic tag (the primary block first; other blocks
/// fill what it lacks), pictures included.
pub fn read_source_tag(source: &Path) -> Result<Option<Tag>, EncodeError> {
    let file = std::fs::File::open(source).map_err(|e| tag_error(source, e))?;
    let probe = Probe::new(std::io::BufReader::new(file))
        .options(ParseOptions::new().read_properties(false))
        .guess_file_type()
        .map_err(|e| tag_error(source, e))?;
    if probe.file_type().is_none() {
        return Ok(None);
    }
    let tagged = probe.read().map_err(|e| tag_error(source, e))?;
    let mut blocks: Vec<&Tag> = tagged.primary_tag().into_iter().collect();
    for t in tagged.tags() {
        if !blocks.iter().any(|b| std::ptr::eq(*b, t)) {
            blocks.push(t);
        }
    }
    let Some(first) = blocks.first() else {
        return Ok(None);
    };
    let mut merged = Tag::new(first.tag_type());
    for b in &blocks {
        for item in b.items() {
            if merged.get(item.key()).is_none() || b.tag_type() == first.tag_type() {
                merged.push_unchecked(item.clone());
            }
        }
        if merged.pictures().is_empty() {
            for p in b.pictures() {
                merged.push_picture(p.clone());
            }
        }
    }
    Ok(Some(merged))
}

/// The tag for an output of type `tag_type`: the source's (re-mapped), the user's fields,
/// ReplayGain (for Ogg Opus, `opus`, the `R128_TRACK_GAIN` RFC 7845 defines instead).
pub fn build_tag(
    plan: &TagPlan,
    source_tag: Option<&Tag>,
    tag_type: TagType,
    opus: bool,
    loudness: Option<&OutputLoudness>,
) -> Tag {
    let mut tag = Tag::new(tag_type);
    if let Some(src) = source_tag {
        let mut t = src.clone();
        t.remove_key(ItemKey::R128TrackGain);
        t.remove_key(ItemKey::R128AlbumGain);
        // Old loudness data describes the source, not this output.
        for k in [
            ItemKey::ReplayGainTrackGain,
            ItemKey::ReplayGainTrackPeak,
            ItemKey::ReplayGainAlbumGain,
            ItemKey::ReplayGainAlbumPeak,
        ] {
            t.remove_key(k);
        }
        // BPM is an integer frame in ID3v2 and MP4 (TBPM, tmpo) but text elsewhere: carry
        // whichever the source has to the key the target stores.
        let bpm = t
            .get_string(ItemKey::Bpm)
            .or_else(|| t.get_string(ItemKey::IntegerBpm))
            .map(str::to_string);
        // The source's encoder describes how the source was made, not this output.
        for k in [
            ItemKey::Bpm,
            ItemKey::IntegerBpm,
            ItemKey::EncoderSoftware,
            ItemKey::EncoderSettings,
        ] {
            t.remove_key(k);
        }
        t.re_map(tag_type);
        for item in t.items() {
            tag.push_unchecked(item.clone());
        }
        for p in t.pictures() {
            tag.push_picture(p.clone());
        }
        if let Some(b) = bpm {
            let key = match tag_type {
                TagType::Id3v2 | TagType::Mp4Ilst => ItemKey::IntegerBpm,
                _ => ItemKey::Bpm,
            };
            let b = if key == ItemKey::IntegerBpm {
                b.trim()
                    .parse::<f64>()
                    .map_or(b.clone(), |v| format!("{}", v.round() as i64))
            } else {
                b
            };
            tag.insert_text(key, b);
        }
    }
    tag.insert_text(
        ItemKey::EncoderSoftware,
        concat!("Sluice ", env!("CARGO_PKG_VERSION")).to_string(),
    );
    for (k, v) in &plan.set {
        if let Some((_, key)) = KEYS.iter().find(|(n, _)| n == k) {
            let key = match (*key, tag_type) {
                (ItemKey::Bpm, TagType::Id3v2 | TagType::Mp4Ilst) => &ItemKey::IntegerBpm,
                _ => key,
            };
            tag.remove_key(*key);
            if !v.is_empty() {
                let v = if k == "isrc" {
                    v.chars().filter(|c| *c != '-').collect()
                } else {
                    v.clone()
                };
                tag.insert_text(*key, v);
            }
        }
    }
    if plan.replaygain
        && opus
        && let Some(l) = loudness
        && let Some(i) = l.loudness.integrated_lufs
    {
        tag.insert_text(
            ItemKey::R128TrackGain,
            crate::replaygain::r128_text(crate::replaygain::R128_REFERENCE_LUFS - i),
        );
    } else if plan.replaygain
        && let Some(l) = loudness
        && let Some(i) = l.loudness.integrated_lufs
    {
        // ReplayGain 2.0, written as `sluice tag` writes it: the reference is −18 LUFS, the
        // peak the linear true peak.
        let gain = crate::replaygain::REFERENCE_LUFS - i;
        let peak = 10f64.powf(l.true_peak_dbtp / 20.0);
        tag.insert_text(
            ItemKey::ReplayGainTrackGain,
            crate::replaygain::gain_text(gain),
        );
        tag.insert_text(
            ItemKey::ReplayGainTrackPeak,
            crate::replaygain::peak_text(peak),
        );
    }
    tag
}

/// `tag` as ID3v2 with its frames in one order (by frame ID, then content): lofty's
/// conversion collects them in a hash set, whose order changes from process to process, so
/// the same output written twice (by two runs, or by two machines of a farm) would differ in
/// its bytes.
fn id3_in_order(tag: Tag) -> Id3v2Tag {
    let mut frames: Vec<_> = Id3v2Tag::from(tag).into_iter().collect();
    frames.sort_by_cached_key(|f| (f.id_str().to_string(), format!("{f:?}")));
    let mut out = Id3v2Tag::new();
    for f in frames {
        out.insert(f);
    }
    out
}

/// `tag` as the `ilst` of the M4A `temp`, keeping the gapless information (`iTunSMPB`) the
/// encoder wrote there: the generic tag has no key for it.
fn write_ilst(temp: &Path, dest: &Path, tag: Tag) -> Result<(), EncodeError> {
    use lofty::mp4::{AtomIdent, Ilst, Mp4File};
    use std::borrow::Cow;
    let smpb = AtomIdent::Freeform {
        mean: Cow::Borrowed("com.apple.iTunes"),
        name: Cow::Borrowed("iTunSMPB"),
    };
    let mut file = std::fs::File::open(temp).map_err(|e| tag_error(dest, e))?;
    let existing = Mp4File::read_from(&mut file, ParseOptions::new().read_properties(false))
        .map_err(|e| tag_error(dest, e))?;
    drop(file);
    let kept = existing.ilst().and_then(|i| i.get(&smpb)).cloned();
    let mut ilst = Ilst::from(tag);
    if let Some(atom) = kept {
        ilst.insert(atom);
    }
    ilst.save_to_path(temp, WriteOptions::default())
        .map_err(|e| tag_error(dest, e))
}

/// Write the tags of `plan` into the finished, still temporary output `temp` (`dest` names it
/// in errors).
pub fn write_tags(
    temp: &Path,
    dest: &Path,
    style: TagStyle,
    plan: &TagPlan,
    source_tag: Option<&Tag>,
    loudness: Option<&OutputLoudness>,
) -> Result<(), EncodeError> {
    match style {
        TagStyle::Lofty {
            file_type,
            tag_type,
        } => {
            let opus = file_type == lofty::file::FileType::Opus;
            let tag = build_tag(plan, source_tag, tag_type, opus, loudness);
            if tag.item_count() == 0 && tag.picture_count() == 0 {
                return Ok(());
            }
            if tag_type == TagType::Id3v2 {
                // Written directly, its frames in a fixed order (see `id3_in_order`).
                return id3_in_order(tag)
                    .save_to_path(temp, WriteOptions::default())
                    .map_err(|e| tag_error(dest, e));
            }
            if tag_type == TagType::Mp4Ilst {
                return write_ilst(temp, dest, tag);
            }
            let file = std::fs::File::open(temp).map_err(|e| tag_error(dest, e))?;
            let mut tagged = Probe::new(std::io::BufReader::new(file))
                .set_file_type(file_type)
                .options(ParseOptions::new().read_properties(false))
                .read()
                .map_err(|e| tag_error(dest, e))?;
            tagged.insert_tag(tag);
            tagged
                .save_to_path(temp, WriteOptions::default())
                .map_err(|e| tag_error(dest, e))
        }
        TagStyle::RiffChunks | TagStyle::AiffChunks => {
            let wav = style == TagStyle::RiffChunks;
            let tag = build_tag(plan, source_tag, TagType::Id3v2, false, loudness);
            let mut chunks: Vec<([u8; 4], Vec<u8>)> = Vec::new();
            if wav {
                let info = riff_info(&tag);
                if !info.is_empty() {
                    chunks.push((*b"LIST", info));
                }
            }
            if tag.item_count() > 0 || tag.picture_count() > 0 {
                let mut id3 = Vec::new();
                id3_in_order(tag)
                    .dump_to(&mut id3, WriteOptions::default())
                    .map_err(|e| tag_error(dest, e))?;
                chunks.push((if wav { *b"id3 " } else { *b"ID3 " }, id3));
            }
            if chunks.is_empty() {
                return Ok(());
            }
            append_chunks(temp, wav, &chunks).map_err(|e| tag_error(dest, e))
        }
    }
}

/// A LIST/INFO payload (`INFO` + sub-chunks) for the fields RIFF INFO has.
fn riff_info(tag: &Tag) -> Vec<u8> {
    let fields = [
        (b"INAM", ItemKey::TrackTitle),
        (b"IART", ItemKey::TrackArtist),
        (b"IPRD", ItemKey::AlbumTitle),
        (b"IGNR", ItemKey::Genre),
        (b"ICRD", ItemKey::RecordingDate),
        (b"ITRK", ItemKey::TrackNumber),
        (b"ICMT", ItemKey::Comment),
        (b"ICOP", ItemKey::CopyrightMessage),
        (b"ISFT", ItemKey::EncoderSoftware),
    ];
    let mut out = Vec::new();
    for (id, key) in fields {
        if let Some(v) = tag.get_string(key) {
            let mut text = v.as_bytes().to_vec();
            text.push(0);
            out.extend_from_slice(id);
            out.extend_from_slice(&(text.len() as u32).to_le_bytes());
            out.extend_from_slice(&text);
            if text.len() % 2 == 1 {
                out.push(0);
            }
        }
    }
    if out.is_empty() {
        return out;
    }
    let mut list = b"INFO".to_vec();
    list.extend(out);
    list
}

/// Append chunks at the end of a finished WAV/RF64 or AIFF file and grow its container size
/// (the RIFF size, ds64's 64-bit size, or the FORM size).
fn append_chunks(path: &Path, wav: bool, chunks: &[([u8; 4], Vec<u8>)]) -> std::io::Result<()> {
    let mut f = OpenOptions::new().read(true).write(true).open(path)?;
    let mut head = [0u8; 12];
    f.read_exact(&mut head)?;
    let end = f.seek(SeekFrom::End(0))?;
    let mut added = 0u64;
    for (id, payload) in chunks {
        let len = payload.len() as u32;
        let size = if wav {
            len.to_le_bytes()
        } else {
            len.to_be_bytes()
        };
        f.write_all(id)?;
        f.write_all(&size)?;
        f.write_all(payload)?;
        added += 8 + payload.len() as u64;
        if payload.len() % 2 == 1 {
            f.write_all(&[0])?;
            added += 1;
        }
    }
    let total = end + added - 8;
    match &head[..4] {
        b"RIFF" if total <= u64::from(u32::MAX) => {
            f.seek(SeekFrom::Start(4))?;
            f.write_all(&(total as u32).to_le_bytes())?;
        }
        b"RIFF" => {
            // The chunks pushed a RIFF over 4 GiB: that cannot happen for tags on a file the
            // writer left under 4 GiB minus the tag size; refuse rather than corrupt.
            return Err(std::io::Error::other(
                "the tags would push the WAV over 4 GiB",
            ));
        }
        b"RF64" => {
            // ds64 sits right after the header: its first field is the 64-bit RIFF size.
            f.seek(SeekFrom::Start(20))?;
            f.write_all(&total.to_le_bytes())?;
        }
        b"FORM" => {
            let total =
                u32::try_from(total).map_err(|_| std::io::Error::other("AIFF over 4 GiB"))?;
            f.seek(SeekFrom::Start(4))?;
            f.write_all(&total.to_be_bytes())?;
        }
        _ => return Err(std::io::Error::other("not a WAV or AIFF file")),
    }
    f.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same tag written several times gives the same bytes (lofty alone orders the frames
    /// by a hash set's seed, new for every set).
    #[test]
    fn an_id3_tag_is_written_the_same_every_time() {
        let dump = || {
            let mut tag = Tag::new(TagType::Id3v2);
            for (k, v) in [
                (ItemKey::TrackTitle, "Title"),
                (ItemKey::TrackArtist, "Artist"),
                (ItemKey::AlbumTitle, "Album"),
                (ItemKey::Genre, "Genre"),
                (ItemKey::ReplayGainTrackGain, "-1.00 dB"),
                (ItemKey::ReplayGainTrackPeak, "0.500000"),
                (ItemKey::EncoderSoftware, "Sluice"),
                (ItemKey::Isrc, "USRC17607839"),
            ] {
                tag.insert_text(k, v.to_string());
            }
            let mut out = Vec::new();
            id3_in_order(tag)
                .dump_to(&mut out, WriteOptions::default())
                .unwrap();
            out
        };
        let first = dump();
        assert!(first.windows(4).any(|w| w == b"TSSE"));
        for _ in 0..16 {
            assert_eq!(dump(), first);
        }
    }
}
