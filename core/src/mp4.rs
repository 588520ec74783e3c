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
    Ok(Some(Mp4Scan { window, truncated }))
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
