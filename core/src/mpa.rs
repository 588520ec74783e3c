//! MPEG audio (MP1/MP2/MP3) frame walk: whether the file ends inside a frame.
//!
//! An MP3 without a Xing/Info/VBRI header declares no length, so a file cut short (a copy that
//! stopped, a download that broke) decodes to its last whole frame and looks complete. The
//! frames themselves say how long they are: walking them from the first one to the end of the
//! audio (before any ID3v1 or APEv2 tag) shows whether the last frame is whole.

use std::io::{Read, Seek, SeekFrom};

/// The result of a walk that reached the end of the file inside a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cut {
    /// Whole frames before the cut one.
    pub whole_frames: u64,
    /// Bytes the last frame declares.
    pub frame_bytes: u64,
    /// Bytes of it the file holds.
    pub available: u64,
}

/// A frame header's length in bytes, or `None` when the four bytes are not a usable MPEG
/// audio frame header (no sync, reserved fields, free-format bit rate).
pub fn frame_len(h: [u8; 4]) -> Option<u64> {
    if h[0] != 0xFF || h[1] & 0xE0 != 0xE0 {
        return None;
    }
    let version = (h[1] >> 3) & 3; // 0: MPEG 2.5, 2: MPEG 2, 3: MPEG 1
    let layer = (h[1] >> 1) & 3; // 1: III, 2: II, 3: I
    let bitrate_index = usize::from(h[2] >> 4);
    let rate_index = usize::from((h[2] >> 2) & 3);
    let padding = u64::from((h[2] >> 1) & 1);
    if version == 1 || layer == 0 || bitrate_index == 0 || bitrate_index == 15 || rate_index == 3 {
        return None;
    }
    const V1: [[u64; 15]; 3] = [
        // Layer I, II, III
        [
            0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448,
        ],
        [
            0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384,
        ],
        [
            0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320,
        ],
    ];
    const V2: [[u64; 15]; 2] = [
        // Layer I; Layers II and III
        [
            0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256,
        ],
        [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160],
    ];
    let layer_i = layer == 3;
    let kbps = match (version == 3, layer) {
        (true, 3) => V1[0][bitrate_index],
        (true, 2) => V1[1][bitrate_index],
        (true, _) => V1[2][bitrate_index],
        (false, 3) => V2[0][bitrate_index],
        (false, _) => V2[1][bitrate_index],
    };
    let rate = [44_100u64, 48_000, 32_000][rate_index]
        >> match version {
            3 => 0,
            2 => 1,
            _ => 2,
        };
    let bps = kbps * 1000;
    Some(if layer_i {
        (12 * bps / rate + padding) * 4
    } else if layer == 1 && version != 3 {
        // Layer III of MPEG 2 and 2.5: 576 samples per frame.
        72 * bps / rate + padding
    } else {
        144 * bps / rate + padding
    })
}

/// Where the audio ends: the file's length less a trailing ID3v1 tag and an APEv2 tag.
fn audio_end<R: Read + Seek>(r: &mut R, len: u64) -> std::io::Result<u64> {
    let mut end = len;
    if end >= 128 {
        let mut tag = [0u8; 3];
        r.seek(SeekFrom::Start(end - 128))?;
        r.read_exact(&mut tag)?;
        if &tag == b"TAG" {
            end -= 128;
        }
    }
    if end >= 32 {
        let mut footer = [0u8; 32];
        r.seek(SeekFrom::Start(end - 32))?;
        r.read_exact(&mut footer)?;
        if &footer[..8] == b"APETAGEX" {
            let size = u64::from(u32::from_le_bytes(footer[12..16].try_into().expect("4")));
            let flags = u32::from_le_bytes(footer[20..24].try_into().expect("4"));
            // The size counts the items and the footer; a header (flag bit 31) adds 32.
            let whole = size + if flags & (1 << 31) != 0 { 32 } else { 0 };
            end = end.saturating_sub(whole);
        }
    }
    Ok(end)
}

/// Where the audio after a leading ID3v2 tag (and its footer) starts, when an MPEG audio frame
/// header is right there; `None` without a tag, or when something else follows it (a FLAC
/// stream, junk, padding past the declared size: then the reader searches as it would).
pub fn after_id3<R: Read + Seek>(r: &mut R, len: u64) -> std::io::Result<Option<u64>> {
    let mut id3 = [0u8; 10];
    r.seek(SeekFrom::Start(0))?;
    if len < 14 || r.read_exact(&mut id3).is_err() || &id3[..3] != b"ID3" {
        return Ok(None);
    }
    let size = id3[6..10]
        .iter()
        .fold(0u64, |a, b| (a << 7) | u64::from(b & 0x7F));
    let end = 10 + size + if id3[5] & 0x10 != 0 { 10 } else { 0 };
    if end + 4 > len {
        return Ok(None);
    }
    let mut h = [0u8; 4];
    r.seek(SeekFrom::Start(end))?;
    r.read_exact(&mut h)?;
    // Two headers in step: this frame's, and the next one where it says it ends.
    let Some(n) = frame_len(h) else {
        return Ok(None);
    };
    if end + n + 4 <= len {
        let mut next = [0u8; 4];
        r.seek(SeekFrom::Start(end + n))?;
        r.read_exact(&mut next)?;
        if frame_len(next).is_none() {
            return Ok(None);
        }
    }
    Ok(Some(end))
}

/// Walk the frames of an MPEG audio file of `len` bytes. `Some(cut)` when a frame reached by
/// stepping from whole frames before it runs past the end of the audio; `None` when the audio
/// ends on a frame boundary, or the walk cannot tell (no frames, junk where a frame should be
/// at the end).
pub fn cut<R: Read + Seek>(r: &mut R, len: u64) -> std::io::Result<Option<Cut>> {
    let end = audio_end(r, len)?;
    let mut pos = 0u64;
    // An ID3v2 tag (and its footer) before the audio.
    let mut id3 = [0u8; 10];
    r.seek(SeekFrom::Start(0))?;
    if len >= 10 && r.read_exact(&mut id3).is_ok() && &id3[..3] == b"ID3" {
        let size = id3[6..10]
            .iter()
            .fold(0u64, |a, b| (a << 7) | u64::from(b & 0x7F));
        pos = 10 + size + if id3[5] & 0x10 != 0 { 10 } else { 0 };
    }
    // Frames are found by sync where the walk loses step (junk, a second tag), and then
    // trusted only once the next frame's header follows where the first one says it ends.
    let mut window = Window::new(r, end);
    let mut frames = 0u64;
    let mut in_step = false;
    while pos + 4 <= end {
        let Some(n) = frame_len(window.header(pos)?) else {
            in_step = false;
            pos += 1;
            continue;
        };
        if pos + n > end {
            if in_step {
                return Ok(Some(Cut {
                    whole_frames: frames,
                    frame_bytes: n,
                    available: end - pos,
                }));
            }
            // A sync pattern in junk near the end, not a frame we stepped onto.
            pos += 1;
            continue;
        }
        if !in_step {
            // Confirm a frame found by sync: the next header, or the end of the audio, must
            // follow.
            let next = pos + n;
            let confirmed =
                next == end || (next + 4 <= end && frame_len(window.header(next)?).is_some());
            if !confirmed {
                pos += 1;
                continue;
            }
            in_step = true;
            if frames == 0 && window.counted(pos, n)? {
                // A Xing/Info/VBRI frame states the stream's frame count: the decoder checks
                // what it decodes against that.
                return Ok(None);
            }
        }
        frames += 1;
        pos += n;
    }
    Ok(None)
}

/// Reads the file forward in 64 KiB pieces: a header is four bytes at a position, and the
/// walk moves forward by whole frames, so one read serves about a hundred frames.
struct Window<'a, R> {
    r: &'a mut R,
    end: u64,
    base: u64,
    buf: Vec<u8>,
}

impl<'a, R: Read + Seek> Window<'a, R> {
    fn new(r: &'a mut R, end: u64) -> Self {
        Window {
            r,
            end,
            base: 0,
            buf: Vec::new(),
        }
    }

    /// The four bytes at `pos` (which is at least four bytes before the end).
    fn header(&mut self, pos: u64) -> std::io::Result<[u8; 4]> {
        if pos < self.base || pos + 4 > self.base + self.buf.len() as u64 {
            let n = (self.end - pos).min(1 << 16) as usize;
            self.buf.resize(n, 0);
            self.r.seek(SeekFrom::Start(pos))?;
            self.r.read_exact(&mut self.buf)?;
            self.base = pos;
        }
        let i = (pos - self.base) as usize;
        Ok(self.buf[i..i + 4].try_into().expect("four bytes"))
    }

    /// Whether the frame of `n` bytes at `pos` is a Xing, Info or VBRI header frame (its tag
    /// lies within the first 40 bytes, after the side information).
    fn counted(&mut self, pos: u64, n: u64) -> std::io::Result<bool> {
        let len = n.min(48).min(self.end - pos) as usize;
        let mut b = vec![0u8; len];
        self.r.seek(SeekFrom::Start(pos))?;
        self.r.read_exact(&mut b)?;
        // The window's buffer is unchanged; the next read refills it where needed.
        Ok(b.windows(4)
            .any(|w| w == b"Xing" || w == b"Info" || w == b"VBRI"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    /// An MPEG-1 Layer III frame header: 44.1 kHz, `kbps` from the table, no padding.
    fn mp3_header(bitrate_index: u8, padding: bool) -> [u8; 4] {
        [
            0xFF,
            0xFB,
            (bitrate_index << 4) | (u8::from(padding) << 1),
            0x44,
        ]
    }

    fn frame(bitrate_index: u8, padding: bool) -> Vec<u8> {
        let h = mp3_header(bitrate_index, padding);
        let n = frame_len(h).unwrap() as usize;
        let mut f = vec![0x55u8; n];
        f[..4].copy_from_slice(&h);
        f
    }

    #[test]
    fn frame_lengths_follow_the_standard() {
        // 128 kb/s, 44.1 kHz, MPEG-1 Layer III: 417 bytes, 418 padded.
        assert_eq!(frame_len(mp3_header(9, false)), Some(417));
        assert_eq!(frame_len(mp3_header(9, true)), Some(418));
        // 192 kb/s: 626.
        assert_eq!(frame_len(mp3_header(11, false)), Some(626));
        // MPEG-2 Layer III, 64 kb/s, 22.05 kHz: 72 * 64000 / 22050 = 208.
        assert_eq!(frame_len([0xFF, 0xF3, 0x80, 0x44]), Some(208));
        // MPEG-1 Layer II, 192 kb/s, 48 kHz: 576.
        assert_eq!(frame_len([0xFF, 0xFD, 0xA4, 0x04]), Some(576));
        // MPEG-1 Layer I, 384 kb/s, 44.1 kHz: (12 * 384000 / 44100) * 4 = 416.
        assert_eq!(frame_len([0xFF, 0xFF, 0xC0, 0x04]), Some(416));
        // Free format, reserved rate, reserved version, no sync.
        assert_eq!(frame_len([0xFF, 0xFB, 0x04, 0x44]), None);
        assert_eq!(frame_len([0xFF, 0xFB, 0x9C, 0x44]), None);
        assert_eq!(frame_len([0xFF, 0xEB, 0x90, 0x44]), None);
        assert_eq!(frame_len([0xFE, 0xFB, 0x90, 0x44]), None);
    }

    fn stream(frames: usize) -> Vec<u8> {
        let mut v = Vec::new();
        // An ID3v2 tag of 20 bytes of content, holding a false sync.
        v.extend_from_slice(b"ID3\x03\x00\x00\x00\x00\x00\x14");
        v.extend_from_slice(&[0xFF, 0xFB, 0x90, 0x44]);
        v.extend_from_slice(&[0u8; 16]);
        for i in 0..frames {
            v.extend(frame(if i % 2 == 0 { 9 } else { 11 }, i % 3 == 0));
        }
        v
    }

    #[test]
    fn whole_streams_are_not_cut() {
        let s = stream(10);
        assert_eq!(cut(&mut Cursor::new(&s), s.len() as u64).unwrap(), None);
        // With an ID3v1 tag, and with an APEv2 tag before it.
        let mut t = s.clone();
        let mut ape = b"APETAGEX".to_vec();
        ape.extend_from_slice(&2000u32.to_le_bytes());
        ape.extend_from_slice(&32u32.to_le_bytes()); // size: footer only
        ape.extend_from_slice(&0u32.to_le_bytes());
        ape.extend_from_slice(&0u32.to_le_bytes());
        ape.extend_from_slice(&[0u8; 8]);
        t.extend_from_slice(&ape);
        let mut id3v1 = b"TAG".to_vec();
        id3v1.resize(128, 0xFF);
        t.extend_from_slice(&id3v1);
        assert_eq!(cut(&mut Cursor::new(&t), t.len() as u64).unwrap(), None);
        // No frames at all.
        let z = vec![0u8; 5000];
        assert_eq!(cut(&mut Cursor::new(&z), 5000).unwrap(), None);
    }

    #[test]
    fn a_stream_cut_inside_a_frame_is_found() {
        let s = stream(10);
        for keep in [1usize, 4, 100, 400] {
            let t = &s[..s.len() - keep];
            let c = cut(&mut Cursor::new(t), t.len() as u64).unwrap().unwrap();
            assert_eq!(c.whole_frames, 9, "{keep}");
            assert_eq!(c.available, c.frame_bytes - keep as u64, "{keep}");
        }
        // Cut, then an ID3v1 tag appended (a tagger run on a broken copy).
        let mut t = s[..s.len() - 50].to_vec();
        let mut id3v1 = b"TAG".to_vec();
        id3v1.resize(128, 0);
        t.extend_from_slice(&id3v1);
        assert!(cut(&mut Cursor::new(&t), t.len() as u64).unwrap().is_some());
    }

    #[test]
    fn a_stream_with_a_frame_count_is_left_to_the_count() {
        let mut s = stream(10);
        // The first audio frame becomes an Info frame (after 32 bytes of side information).
        let first = 10 + 20;
        s[first + 36..first + 40].copy_from_slice(b"Info");
        let t = &s[..s.len() - 100];
        assert_eq!(cut(&mut Cursor::new(t), t.len() as u64).unwrap(), None);
    }

    #[test]
    fn junk_with_a_sync_pattern_at_the_end_is_not_a_cut() {
        let mut s = stream(6);
        // Trailing junk whose bytes look like a frame header declaring more than is there.
        s.extend_from_slice(&[0x00, 0x11, 0xFF, 0xFB, 0x90, 0x44, 0x00, 0x00]);
        assert_eq!(cut(&mut Cursor::new(&s), s.len() as u64).unwrap(), None);
    }
}
