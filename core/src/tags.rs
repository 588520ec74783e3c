//! Tags in one model across formats: ID3v1/v2, Vorbis comments (FLAC, Ogg), MP4 `ilst` atoms,
//! RIFF LIST/INFO, AIFF text chunks and APE, read through lofty; plus the Broadcast Wave `bext`
//! chunk and the raw RIFF INFO list, read by our own code ([`crate::riff`]).

use crate::error::{InputError, guard};
use crate::riff::{Bext, RiffScan};
use lofty::config::ParseOptions;
use lofty::file::{FileType, TaggedFile};
use lofty::mp4::{AtomData, AtomIdent, Mp4File};
use lofty::prelude::*;
use lofty::probe::Probe;
use lofty::tag::{ItemKey, Tag, TagType};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

/// Every tag Sluice understands, merged across the tag blocks of one file. When several blocks
/// carry the same field (an MP3 with ID3v2 and ID3v1), the format's primary block wins.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct Tags {
    pub title: Option<String>,
    pub artist: Option<String>,
    pub album: Option<String>,
    pub album_artist: Option<String>,
    pub genre: Option<String>,
    /// The date as stored (`2024`, `2024-05-17`, ...).
    pub date: Option<String>,
    /// The year taken from `date` (or from a separate year field).
    pub year: Option<i32>,
    pub track: Option<u32>,
    pub track_total: Option<u32>,
    pub disc: Option<u32>,
    pub disc_total: Option<u32>,
    /// International Standard Recording Code, as stored (normally 12 characters, `CCXXXYYNNNNN`).
    pub isrc: Option<String>,
    /// Tempo in beats per minute.
    pub bpm: Option<f64>,
    /// Musical key as stored (`Am`, `F#`, `8A`...).
    pub initial_key: Option<String>,
    pub comment: Option<String>,
    pub copyright: Option<String>,
    pub encoder: Option<String>,
    /// Number of embedded pictures (cover art).
    pub pictures: u32,
    /// The tag blocks found, primary first (`id3v2`, `vorbis_comments`, `mp4_ilst`,
    /// `riff_info`, `aiff_text`, `id3v1`, `ape`).
    pub sources: Vec<String>,
    /// The raw RIFF LIST/INFO items of a WAV file, by four-character id (`INAM`, `IART`...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub riff_info: BTreeMap<String, String>,
    /// The Broadcast Wave `bext` chunk.
    pub bext: Option<Bext>,
}

impl Tags {
    /// `true` when no field at all was found.
    pub fn is_empty(&self) -> bool {
        self == &Tags::default()
    }
}

fn tag_type_name(t: TagType) -> &'static str {
    match t {
        TagType::Ape => "ape",
        TagType::Id3v1 => "id3v1",
        TagType::Id3v2 => "id3v2",
        TagType::Mp4Ilst => "mp4_ilst",
        TagType::VorbisComments => "vorbis_comments",
        TagType::RiffInfo => "riff_info",
        TagType::AiffText => "aiff_text",
        _ => "other",
    }
}

/// A lofty probe that decides the file type from the content, not the extension.
fn content_probe<R: Read + Seek>(
    path: &Path,
    reader: R,
    options: ParseOptions,
) -> Result<Probe<R>, InputError> {
    Probe::new(reader)
        .options(options)
        .guess_file_type()
        .map_err(|e| InputError::from_io(path, e))
}

/// Read every tag block of the file at `path` with lofty (the content decides the format,
/// not the extension). The `bext` chunk and raw INFO list are filled in by [`read_tags`].
/// Also returns the audio bitrate in kbit/s where lofty's stream reader knows it.
fn read_lofty(path: &Path, file: &mut std::fs::File) -> Result<(Tags, Option<u32>), InputError> {
    file.seek(SeekFrom::Start(0))
        .map_err(|e| InputError::from_io(path, e))?;
    let options = ParseOptions::new().read_properties(true);
    let probe = content_probe(path, BufReader::new(&mut *file), options)?;
    let tag_error = |e: lofty::error::FileParseError| {
        let mut detail = e.to_string();
        if let Some(src) = std::error::Error::source(&e) {
            detail = format!("{detail}: {src}");
        }
        InputError::Tags {
            path: path.to_path_buf(),
            detail,
        }
    };
    let (tagged, mp4_tempo) = match probe.file_type() {
        // Nothing lofty knows: no tags to read (the decoder decides whether it is audio).
        None => return Ok((Tags::default(), None)),
        // lofty's generic view drops integer atoms such as `tmpo` (BPM): read the ilst itself.
        Some(FileType::Mp4) => {
            let mut r = probe.into_inner();
            r.seek(SeekFrom::Start(0))
                .map_err(|e| InputError::from_io(path, e))?;
            let f = Mp4File::read_from(&mut r, options).map_err(tag_error)?;
            let tempo = f
                .ilst()
                .and_then(|i| i.get(&AtomIdent::Fourcc(*b"tmpo")))
                .and_then(|a| {
                    a.data().find_map(|d| match *d {
                        AtomData::SignedInteger(i) => Some(f64::from(i)),
                        AtomData::UnsignedInteger(u) => Some(f64::from(u)),
                        _ => None,
                    })
                })
                .filter(|b| *b > 0.0);
            (TaggedFile::from(f), tempo)
        }
        Some(_) => match probe.read() {
            Ok(t) => (t, None),
            // A truncated WAV (or one with a streaming-size data chunk) fails lofty's stream
            // properties; its tags are still readable without them.
            Err(e) => {
                let mut again = BufReader::new(&mut *file);
                again
                    .seek(SeekFrom::Start(0))
                    .map_err(|e| InputError::from_io(path, e))?;
                let retry =
                    content_probe(path, again, ParseOptions::new().read_properties(false))?.read();
                match retry {
                    Ok(t) => (t, None),
                    Err(_) => return Err(tag_error(e)),
                }
            }
        },
    };

    let mut blocks: Vec<&Tag> = Vec::new();
    if let Some(p) = tagged.primary_tag() {
        blocks.push(p);
    }
    for t in tagged.tags().iter() {
        if !blocks.iter().any(|b| std::ptr::eq(*b, t)) {
            blocks.push(t);
        }
    }
    let mut tags = merge(&blocks);
    if tags.bpm.is_none() {
        tags.bpm = mp4_tempo;
    }
    Ok((tags, tagged.properties().audio_bitrate()))
}

fn first_string(blocks: &[&Tag], keys: &[ItemKey]) -> Option<String> {
    for b in blocks {
        for k in keys {
            if let Some(s) = b.get_string(*k) {
                let s = s.trim_matches(char::from(0)).trim();
                if !s.is_empty() {
                    return Some(s.to_string());
                }
            }
        }
    }
    None
}

/// Parse "3", "03", "3/12" → (Some(3), Some(12)).
fn number_pair(s: &str) -> (Option<u32>, Option<u32>) {
    let mut it = s.splitn(2, '/');
    let n = it.next().and_then(|x| x.trim().parse().ok());
    let t = it.next().and_then(|x| x.trim().parse().ok());
    (n, t)
}

fn merge(blocks: &[&Tag]) -> Tags {
    let (track, track_total_inline) = first_string(blocks, &[ItemKey::TrackNumber])
        .map(|s| number_pair(&s))
        .unwrap_or((None, None));
    let (disc, disc_total_inline) = first_string(blocks, &[ItemKey::DiscNumber])
        .map(|s| number_pair(&s))
        .unwrap_or((None, None));
    let total = |key: ItemKey| first_string(blocks, &[key]).and_then(|s| number_pair(&s).0);
    let date = first_string(
        blocks,
        &[ItemKey::RecordingDate, ItemKey::Year, ItemKey::ReleaseDate],
    );
    let year = date.as_deref().and_then(parse_year);
    let bpm = first_string(blocks, &[ItemKey::Bpm, ItemKey::IntegerBpm])
        .and_then(|s| s.trim().replace(',', ".").parse::<f64>().ok())
        .filter(|b| b.is_finite() && *b > 0.0);
    Tags {
        title: first_string(blocks, &[ItemKey::TrackTitle]),
        artist: first_string(blocks, &[ItemKey::TrackArtist]),
        album: first_string(blocks, &[ItemKey::AlbumTitle]),
        album_artist: first_string(blocks, &[ItemKey::AlbumArtist]),
        genre: first_string(blocks, &[ItemKey::Genre]),
        date,
        year,
        track,
        track_total: total(ItemKey::TrackTotal).or(track_total_inline),
        disc,
        disc_total: total(ItemKey::DiscTotal).or(disc_total_inline),
        isrc: first_string(blocks, &[ItemKey::Isrc]),
        bpm,
        initial_key: first_string(blocks, &[ItemKey::InitialKey]),
        comment: first_string(blocks, &[ItemKey::Comment]),
        copyright: first_string(blocks, &[ItemKey::CopyrightMessage]),
        encoder: first_string(
            blocks,
            &[ItemKey::EncoderSoftware, ItemKey::EncoderSettings],
        ),
        pictures: blocks.iter().map(|b| b.picture_count()).sum(),
        sources: blocks
            .iter()
            .map(|b| tag_type_name(b.tag_type()).to_string())
            .collect(),
        riff_info: BTreeMap::new(),
        bext: None,
    }
}

fn parse_year(date: &str) -> Option<i32> {
    let digits: String = date
        .trim()
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    if digits.len() == 4 {
        digits.parse().ok()
    } else {
        None
    }
}

/// Read the raw items of every RIFF `LIST`/`INFO` chunk of a WAVE file.
fn riff_info<R: Read + Seek>(r: &mut R, scan: &RiffScan) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for c in scan.chunks.iter().filter(|c| &c.id == b"LIST") {
        let Ok(size) = usize::try_from(c.size.min(1 << 20)) else {
            continue;
        };
        let mut b = vec![0u8; size];
        if r.seek(SeekFrom::Start(c.offset)).is_err() || r.read_exact(&mut b).is_err() {
            continue;
        }
        if b.len() < 4 || &b[..4] != b"INFO" {
            continue;
        }
        let mut p = 4;
        while p + 8 <= b.len() {
            let id = String::from_utf8_lossy(&b[p..p + 4]).to_string();
            let n = u32::from_le_bytes(b[p + 4..p + 8].try_into().unwrap()) as usize;
            let start = p + 8;
            let end = start.saturating_add(n).min(b.len());
            let raw = &b[start..end];
            let raw = &raw[..raw.iter().position(|&x| x == 0).unwrap_or(raw.len())];
            let val = match std::str::from_utf8(raw) {
                Ok(s) => s.to_string(),
                Err(_) => raw.iter().map(|&x| x as char).collect(),
            };
            if id.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == ' ') {
                out.insert(id, val.trim_end().to_string());
            }
            p = start.saturating_add(n).saturating_add(n & 1);
        }
    }
    out
}

/// Read all tags of the file at `path`: lofty's unified model, the `bext` chunk and the raw RIFF
/// INFO list.
pub fn read_tags(path: &Path) -> Result<Tags, InputError> {
    let (mut file, len) = crate::open_checked(path)?;
    let scan = crate::riff::scan(&mut BufReader::new(&mut file), len)
        .map_err(|e| InputError::from_io(path, e))?;
    read_tags_with(path, file, scan.as_ref()).map(|(t, _)| t)
}

/// [`read_tags`] on an open file whose RIFF chunk walk (for a WAV) is already done, plus the
/// audio bitrate in kbit/s from the stream header where one states it.
pub(crate) fn read_tags_with(
    path: &Path,
    mut file: std::fs::File,
    riff: Option<&RiffScan>,
) -> Result<(Tags, Option<u32>), InputError> {
    let (mut tags, bitrate) = guard(path, "tag", || read_lofty(path, &mut file))?;
    if let Some(scan) = riff {
        tags.riff_info = riff_info(&mut BufReader::new(&mut file), scan);
        tags.bext = scan.bext.clone();
    }
    Ok((tags, bitrate))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn number_pairs() {
        assert_eq!(number_pair("3"), (Some(3), None));
        assert_eq!(number_pair("03/12"), (Some(3), Some(12)));
        assert_eq!(number_pair("x/12"), (None, Some(12)));
        assert_eq!(number_pair(""), (None, None));
    }

    #[test]
    fn years() {
        assert_eq!(parse_year("2024-05-17"), Some(2024));
        assert_eq!(parse_year("1999"), Some(1999));
        assert_eq!(parse_year("May 1999"), None);
        assert_eq!(parse_year("19999"), None);
    }
}
