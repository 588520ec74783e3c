//! Our own reader of the MP4 edit list (`moov/trak/edts/elst`), which says how many priming
//! frames an AAC encoder put in front of the audio and how long the presentation is. Symphonia
//! decodes every frame of every packet; Sluice trims to what the edit list presents, so an M4A
//! decodes to the length of its source.
//!
//! It reads atom headers and seeks over `mdat`, so it costs a few small reads.

use std::io::{self, Read, Seek, SeekFrom};

/// The presentation window of the first audio track, in frames at the track's sample rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EditWindow {
    /// Frames to drop at the start (encoder priming).
    pub skip: u64,
    /// Frames to present after `skip`, when the edit list bounds it.
    pub length: Option<u64>,
}

/// What one walk over an MP4 file found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mp4Scan {
    /// The first audio track's edit window, when it has an edit list Sluice understands.
    pub window: Option<EditWindow>,
    /// A top-level atom declares more bytes than the file holds.
    pub truncated: bool,
    /// A chunk offset (`stco`/`co64`) of a track past the end of the file: its index and value.
    /// Such a file is refused before symphonia seeks there (it asserted on 2^64 - 2).
    pub bad_chunk_offset: Option<(u64, u64)>,
}

const MAX_ATOMS: usize = 10_000;

struct Atom {
    kind: [u8; 4],
    payload: u64,
    end: u64,
}

enum Next {
    Atom(Atom),
    /// The atom at this position declares more bytes than its parent (or the file) holds.
    Overrun,
    /// No further atom: the parent is used up, or what follows is not an atom.
    End,
}

fn read_atom<R: Read + Seek>(r: &mut R, pos: u64, limit: u64) -> io::Result<Next> {
    if pos + 8 > limit {
        return Ok(Next::End);
    }
    r.seek(SeekFrom::Start(pos))?;
    let mut h = [0u8; 8];
    r.read_exact(&mut h)?;
    let size32 = u32::from_be_bytes(h[0..4].try_into().unwrap());
    let kind: [u8; 4] = h[4..8].try_into().unwrap();
    let (size, header) = match size32 {
        0 => (limit - pos, 8),
        1 if pos + 16 > limit => return Ok(Next::Overrun),
        1 => {
            let mut b = [0u8; 8];
            r.read_exact(&mut b)?;
            (u64::from_be_bytes(b), 16)
        }
        n => (u64::from(n), 8),
    };
    if size < header {
        return Ok(Next::End);
    }
    if pos.saturating_add(size) > limit {
        return Ok(Next::Overrun);
    }
    Ok(Next::Atom(Atom {
        kind,
        payload: pos + header,
        end: pos + size,
    }))
}

/// Children of the container atom spanning `start..end`, and whether the walk stopped at an
/// atom overrunning it.
fn children<R: Read + Seek>(
    r: &mut R,
    start: u64,
    end: u64,
    budget: &mut usize,
) -> io::Result<(Vec<Atom>, bool)> {
    let mut out = Vec::new();
    let mut pos = start;
    while *budget > 0 {
        match read_atom(r, pos, end)? {
            Next::Atom(a) => {
                *budget -= 1;
                pos = a.end;
                out.push(a);
            }
            Next::Overrun => return Ok((out, true)),
            Next::End => break,
        }
    }
    Ok((out, false))
}

fn find<'a>(atoms: &'a [Atom], kind: &[u8; 4]) -> Option<&'a Atom> {
    atoms.iter().find(|a| &a.kind == kind)
}

fn read_payload<R: Read + Seek>(r: &mut R, a: &Atom, max: u64) -> io::Result<Vec<u8>> {
    let n = (a.end - a.payload).min(max);
    r.seek(SeekFrom::Start(a.payload))?;
    let mut b = vec![0u8; n as usize];
    r.read_exact(&mut b)?;
    Ok(b)
}

/// `mvhd`/`mdhd` timescale (both have it at the same place).
fn timescale(b: &[u8]) -> Option<u32> {
    let off = if *b.first()? == 1 { 20 } else { 12 };
    let ts = u32::from_be_bytes(b.get(off..off + 4)?.try_into().ok()?);
    (ts > 0).then_some(ts)
}

/// Walk an MP4 file once: truncation of its top-level atoms and the edit window of its first
/// `soun` track. `Ok(None)` when the stream is not MP4 (its first atom is not `ftyp`).
pub fn scan<R: Read + Seek>(r: &mut R, len: u64) -> io::Result<Option<Mp4Scan>> {
    let mut budget = MAX_ATOMS;
    let (top, truncated) = children(r, 0, len, &mut budget)?;
    if top.first().map(|a| &a.kind) != Some(b"ftyp") {
        return Ok(None);
    }
    // An edit list that cannot be read leaves the audio untrimmed; it does not fail the file.
    let window = edit_window(r, &top, &mut budget).ok().flatten();
    let bad_chunk_offset = chunk_offsets_past(r, &top, len, &mut budget).ok().flatten();
    Ok(Some(Mp4Scan {
        window,
        truncated,
        bad_chunk_offset,
    }))
}

/// The first chunk offset of any track (`moov/trak/mdia/minf/stbl/stco` or `co64`) at or past
/// `len`, the file's length: its index and value. Read in pieces of 4 KB, never whole.
fn chunk_offsets_past<R: Read + Seek>(
    r: &mut R,
    top: &[Atom],
    len: u64,
    budget: &mut usize,
) -> io::Result<Option<(u64, u64)>> {
    let Some(moov) = find(top, b"moov") else {
        return Ok(None);
    };
    let (moov_kids, _) = children(r, moov.payload, moov.end, budget)?;
    for trak in moov_kids.iter().filter(|a| &a.kind == b"trak") {
        let mut level = children(r, trak.payload, trak.end, budget)?.0;
        for kind in [b"mdia", b"minf", b"stbl"] {
            let Some(a) = find(&level, kind) else {
                level = Vec::new();
                break;
            };
            level = children(r, a.payload, a.end, budget)?.0;
        }
        for table in level
            .iter()
            .filter(|a| &a.kind == b"stco" || &a.kind == b"co64")
        {
            let width: u64 = if &table.kind == b"co64" { 8 } else { 4 };
            // Version and flags, then the entry count; entries only as far as the box holds.
            let head = read_payload(r, table, 8)?;
            let Some(count) = head
                .get(4..8)
                .map(|c| u32::from_be_bytes(c.try_into().unwrap()))
            else {
                continue;
            };
            let held = (table.end - table.payload).saturating_sub(8) / width;
            let n = u64::from(count).min(held);
            r.seek(SeekFrom::Start(table.payload + 8))?;
            let mut buf = vec![0u8; 4096];
            let mut index = 0u64;
            while index < n {
                let take = ((n - index) * width).min(4096) as usize;
                r.read_exact(&mut buf[..take])?;
                for e in buf[..take].chunks_exact(width as usize) {
                    let off = if width == 8 {
                        u64::from_be_bytes(e.try_into().unwrap())
                    } else {
                        u64::from(u32::from_be_bytes(e.try_into().unwrap()))
                    };
                    if off >= len {
                        return Ok(Some((index, off)));
                    }
                    index += 1;
                }
            }
        }
    }
    Ok(None)
}

/// The edit window of the first `soun` track. `Ok(None)` when the track has no edit list, or
/// the list is not one Sluice understands (then nothing is trimmed).
fn edit_window<R: Read + Seek>(
    r: &mut R,
    top: &[Atom],
    budget: &mut usize,
) -> io::Result<Option<EditWindow>> {
    let Some(moov) = find(top, b"moov") else {
        return Ok(None);
    };
    let (moov_kids, _) = children(r, moov.payload, moov.end, budget)?;
    let Some(mvhd) = find(&moov_kids, b"mvhd") else {
        return Ok(None);
    };
    let Some(movie_ts) = timescale(&read_payload(r, mvhd, 64)?) else {
        return Ok(None);
    };
    for trak in moov_kids.iter().filter(|a| &a.kind == b"trak") {
        let (kids, _) = children(r, trak.payload, trak.end, budget)?;
        let Some(mdia) = find(&kids, b"mdia") else {
            continue;
        };
        let (mdia_kids, _) = children(r, mdia.payload, mdia.end, budget)?;
        let Some(hdlr) = find(&mdia_kids, b"hdlr") else {
            continue;
        };
        if read_payload(r, hdlr, 16)?.get(8..12) != Some(b"soun") {
            continue;
        }
        let Some(mdhd) = find(&mdia_kids, b"mdhd") else {
            return Ok(None);
        };
        let Some(media_ts) = timescale(&read_payload(r, mdhd, 64)?) else {
            return Ok(None);
        };
        let Some(edts) = find(&kids, b"edts") else {
            return Ok(None);
        };
        let (edts_kids, _) = children(r, edts.payload, edts.end, budget)?;
        let Some(elst) = find(&edts_kids, b"elst") else {
            return Ok(None);
        };
        let b = read_payload(r, elst, 4096)?;
        return Ok(parse_elst(&b, movie_ts, media_ts));
    }
    Ok(None)
}

fn parse_elst(b: &[u8], movie_ts: u32, media_ts: u32) -> Option<EditWindow> {
    let version = *b.first()?;
    let count = u32::from_be_bytes(b.get(4..8)?.try_into().ok()?) as usize;
    let entry_len = if version == 1 { 20 } else { 12 };
    let mut edits = Vec::new();
    for i in 0..count.min(64) {
        let e = b.get(8 + i * entry_len..8 + (i + 1) * entry_len)?;
        let (dur, media_time) = if version == 1 {
            (
                u64::from_be_bytes(e[0..8].try_into().ok()?),
                i64::from_be_bytes(e[8..16].try_into().ok()?),
            )
        } else {
            (
                u64::from(u32::from_be_bytes(e[0..4].try_into().ok()?)),
                i64::from(i32::from_be_bytes(e[4..8].try_into().ok()?)),
            )
        };
        // media_time -1 is an empty edit (a pause before the media); skip it.
        if media_time >= 0 {
            edits.push((dur, media_time as u64));
        }
    }
    // One media edit is what encoders write for gapless; anything else is left alone.
    let [(dur, start)] = edits[..] else {
        return None;
    };
    let length = (dur > 0).then(|| {
        (u128::from(dur) * u128::from(media_ts) / u128::from(movie_ts)).min(u128::from(u64::MAX))
            as u64
    });
    Some(EditWindow {
        skip: start,
        length,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elst_version_0_and_1() {
        // v0: one entry, 2 s at movie timescale 1000, media starts at 1024.
        let mut b = vec![0, 0, 0, 0, 0, 0, 0, 1];
        b.extend(2000u32.to_be_bytes());
        b.extend(1024i32.to_be_bytes());
        b.extend([0, 1, 0, 0]);
        assert_eq!(
            parse_elst(&b, 1000, 44_100),
            Some(EditWindow {
                skip: 1024,
                length: Some(88_200)
            })
        );
        let mut b = vec![1, 0, 0, 0, 0, 0, 0, 2];
        b.extend(500u64.to_be_bytes());
        b.extend((-1i64).to_be_bytes());
        b.extend([0, 1, 0, 0]);
        b.extend(0u64.to_be_bytes());
        b.extend(2112i64.to_be_bytes());
        b.extend([0, 1, 0, 0]);
        assert_eq!(
            parse_elst(&b, 48_000, 48_000),
            Some(EditWindow {
                skip: 2112,
                length: None
            })
        );
    }

    #[test]
    fn broken_elst_is_none() {
        assert_eq!(
            parse_elst(&[0, 0, 0, 0, 0, 0, 0, 5, 1, 2], 1000, 1000),
            None
        );
        assert_eq!(parse_elst(&[], 1000, 1000), None);
    }
}
