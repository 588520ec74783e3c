//! Our own reader of RIFF/RF64/BW64 WAVE chunk structure: the Broadcast Wave `bext` chunk
//! (EBU Tech 3285 v0, v1 and v2, including the loudness fields lofty does not read) and a
//! header-only check that the `data` chunk holds what it declares.
//!
//! It reads chunk headers and seeks over the audio, so it costs a few reads however large the
//! file is.

use serde::Serialize;
use std::io::{self, Read, Seek, SeekFrom};

/// Which RIFF flavour the file uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RiffForm {
    Riff,
    Rf64,
    Bw64,
}

/// A chunk's position in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk {
    pub id: [u8; 4],
    /// Offset of the chunk's payload (after the 8-byte header).
    pub offset: u64,
    /// Declared payload size (for RF64/BW64 `data`, the 64-bit size from `ds64`).
    pub size: u64,
}

/// What a chunk walk found.
#[derive(Debug, Clone, Default)]
pub struct RiffScan {
    pub form: Option<RiffForm>,
    pub chunks: Vec<Chunk>,
    /// The `fmt ` format tag (1 = PCM, 3 = IEEE float, 0xFFFE = extensible, ...).
    pub format_tag: Option<u16>,
    /// Bytes per frame (all channels), from `fmt `.
    pub block_align: Option<u16>,
    /// Channels, sample rate and bits per sample as `fmt ` declares them (checked against
    /// [`crate::formats::limits`] before any parser sizes anything from them).
    pub channels: Option<u16>,
    pub sample_rate: Option<u32>,
    pub bits_per_sample: Option<u16>,
    /// WAVE_FORMAT_EXTENSIBLE: the first two bytes of the sub-format GUID (1 = PCM, 3 = float).
    pub sub_format: Option<u16>,
    /// The `data` chunk as declared.
    pub data: Option<Chunk>,
    /// How many bytes of `data` the file actually holds.
    pub data_available: u64,
    pub bext: Option<Bext>,
    /// Problems a user should know about (truncation, a broken chunk after the audio...).
    pub warnings: Vec<String>,
}

impl RiffScan {
    /// `true` when the `data` chunk declares more bytes than the file holds.
    pub fn data_truncated(&self) -> bool {
        self.data.is_some_and(|d| self.data_available < d.size)
    }
}

/// The Broadcast Wave Format extension chunk (EBU Tech 3285).
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct Bext {
    pub description: String,
    pub originator: String,
    pub originator_reference: String,
    /// `yyyy-mm-dd` as stored (some writers use other separators; kept verbatim).
    pub origination_date: String,
    /// `hh:mm:ss` as stored.
    pub origination_time: String,
    /// Position of the first sample since midnight, in samples at the file's sample rate.
    pub time_reference: u64,
    /// bext version: 0, 1 (adds UMID) or 2 (adds loudness).
    pub version: u16,
    /// SMPTE 330M UMID as lower-case hex (32 bytes basic or 64 extended), absent when all zero
    /// or in version 0.
    pub umid: Option<String>,
    /// Integrated loudness in LUFS (v2; absent when unset).
    pub loudness_value: Option<f32>,
    /// Loudness range in LU (v2).
    pub loudness_range: Option<f32>,
    /// Maximum true peak level in dBTP (v2).
    pub max_true_peak_level: Option<f32>,
    /// Highest momentary loudness in LUFS (v2).
    pub max_momentary_loudness: Option<f32>,
    /// Highest short-term loudness in LUFS (v2).
    pub max_short_term_loudness: Option<f32>,
    /// The coding history, one process per line.
    pub coding_history: String,
}

impl Bext {
    /// Adds one process to the coding history, after what is there, as EBU R 98 writes it:
    /// `A=PCM,F=48000,W=24,M=stereo,T=Sluice 0.1.0` (`A=FLOAT` for float samples; `M` is
    /// `mono`, `stereo`, or `multitrack` past two channels). `by` names the program.
    pub fn add_coding(
        &mut self,
        float: bool,
        sample_rate: u32,
        bits: u32,
        channels: usize,
        by: &str,
    ) {
        if !self.coding_history.is_empty() && !self.coding_history.ends_with('\n') {
            self.coding_history.push('\n');
        }
        let mode = match channels {
            1 => "mono",
            2 => "stereo",
            _ => "multitrack",
        };
        self.coding_history.push_str(&format!(
            "A={},F={sample_rate},W={bits},M={mode},T={by}",
            if float { "FLOAT" } else { "PCM" }
        ));
    }
}

/// Fixed part of the `bext` chunk, before the coding history.
const BEXT_FIXED: usize = 602;
/// Read at most this much of a `bext` chunk (coding history beyond it is cut).
const BEXT_MAX: u64 = 1 << 20;
/// Give up walking after this many chunks (a hostile file cannot make us loop for long).
const MAX_CHUNKS: usize = 4096;

/// A `bext` chunk too short for its fixed fields.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bext chunk is {len} bytes, shorter than the 348 the fixed fields need")]
pub struct ShortBext {
    pub len: usize,
}

impl Bext {
    /// Parse the payload of a `bext` chunk.
    pub fn parse(b: &[u8]) -> Result<Bext, ShortBext> {
        if b.len() < 348 {
            return Err(ShortBext { len: b.len() });
        }
        let s = |r: std::ops::Range<usize>| text(&b[r]);
        let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
        let i16_at = |o: usize| i16::from_le_bytes(b[o..o + 2].try_into().unwrap());
        let version = u16::from_le_bytes([b[346], b[347]]);
        let time_reference = u64::from(u32_at(338)) | (u64::from(u32_at(342)) << 32);
        let mut bext = Bext {
            description: s(0..256),
            originator: s(256..288),
            originator_reference: s(288..320),
            origination_date: s(320..330),
            origination_time: s(330..338),
            time_reference,
            version,
            ..Bext::default()
        };
        if version >= 1 && b.len() >= 412 {
            let umid = &b[348..412];
            if umid.iter().any(|&x| x != 0) {
                let len = if umid[32..].iter().all(|&x| x == 0) {
                    32
                } else {
                    64
                };
                bext.umid = Some(umid[..len].iter().map(|x| format!("{x:02x}")).collect());
            }
        }
        if version >= 2 && b.len() >= 422 {
            // Stored as value × 100; 0x7FFF means "not set" (EBU Tech 3285 v2).
            let lv = |o: usize| {
                let v = i16_at(o);
                (v != 0x7FFF).then_some(f32::from(v) / 100.0)
            };
            bext.loudness_value = lv(412);
            bext.loudness_range = lv(414);
            bext.max_true_peak_level = lv(416);
            bext.max_momentary_loudness = lv(418);
            bext.max_short_term_loudness = lv(420);
        }
        if b.len() > BEXT_FIXED {
            bext.coding_history = text(&b[BEXT_FIXED..]).replace("\r\n", "\n");
        }
        Ok(bext)
    }
}

impl Bext {
    /// The chunk payload (EBU Tech 3285): version 2 when any loudness field is set, else the
    /// version given (at least 1 when a UMID is set). Text fields are cut to their sizes;
    /// the coding history is CR/LF-terminated lines; the payload is padded to an even size.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(BEXT_FIXED + self.coding_history.len() + 2);
        let field = |b: &mut Vec<u8>, s: &str, n: usize| {
            let bytes = s.as_bytes();
            let take = bytes.len().min(n);
            b.extend_from_slice(&bytes[..take]);
            b.resize(b.len() + n - take, 0);
        };
        field(&mut b, &self.description, 256);
        field(&mut b, &self.originator, 32);
        field(&mut b, &self.originator_reference, 32);
        field(&mut b, &self.origination_date, 10);
        field(&mut b, &self.origination_time, 8);
        b.extend_from_slice(&(self.time_reference as u32).to_le_bytes());
        b.extend_from_slice(&((self.time_reference >> 32) as u32).to_le_bytes());
        let loudness = [
            self.loudness_value,
            self.loudness_range,
            self.max_true_peak_level,
            self.max_momentary_loudness,
            self.max_short_term_loudness,
        ];
        let has_loudness = loudness.iter().any(Option::is_some);
        let version = if has_loudness {
            2
        } else if self.umid.is_some() {
            self.version.max(1)
        } else {
            self.version
        };
        b.extend_from_slice(&version.to_le_bytes());
        let mut umid = [0u8; 64];
        if let Some(hex) = &self.umid {
            for (i, pair) in hex.as_bytes().chunks(2).take(64).enumerate() {
                umid[i] = std::str::from_utf8(pair)
                    .ok()
                    .and_then(|p| u8::from_str_radix(p, 16).ok())
                    .unwrap_or(0);
            }
        }
        b.extend_from_slice(&umid);
        for v in loudness {
            let x = v.map_or(0x7FFF, |v| {
                (f64::from(v) * 100.0).round().clamp(-32768.0, 32766.0) as i16
            });
            b.extend_from_slice(&x.to_le_bytes());
        }
        b.resize(BEXT_FIXED, 0);
        for line in self.coding_history.lines().filter(|l| !l.is_empty()) {
            b.extend_from_slice(line.as_bytes());
            b.extend_from_slice(b"\r\n");
        }
        if b.len() % 2 == 1 {
            b.push(0);
        }
        b
    }
}

/// ASCII/Latin-1 text field: cut at the first NUL, trailing spaces and line breaks removed.
fn text(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    let s: String = match std::str::from_utf8(&b[..end]) {
        Ok(s) => s.to_string(),
        Err(_) => b[..end].iter().map(|&c| c as char).collect(),
    };
    s.trim_end_matches([' ', '\r', '\n']).to_string()
}

/// Walk the chunks of a RIFF/RF64/BW64 WAVE stream. Returns `Ok(None)` when the stream is not
/// a WAVE file at all. `file_len` is the stream's total length.
pub fn scan<R: Read + Seek>(r: &mut R, file_len: u64) -> io::Result<Option<RiffScan>> {
    r.seek(SeekFrom::Start(0))?;
    let mut head = [0u8; 12];
    if read_full(r, &mut head)? < 12 {
        return Ok(None);
    }
    let form = match &head[0..4] {
        b"RIFF" => RiffForm::Riff,
        b"RF64" => RiffForm::Rf64,
        b"BW64" => RiffForm::Bw64,
        _ => return Ok(None),
    };
    if &head[8..12] != b"WAVE" {
        return Ok(None);
    }
    let mut out = RiffScan {
        form: Some(form),
        ..RiffScan::default()
    };
    let mut ds64_data_size: Option<u64> = None;
    let mut pos = 12u64;
    while pos + 8 <= file_len {
        if out.chunks.len() >= MAX_CHUNKS {
            out.warnings.push(format!(
                "more than {MAX_CHUNKS} chunks; the rest were not read"
            ));
            break;
        }
        r.seek(SeekFrom::Start(pos))?;
        let mut h = [0u8; 8];
        if read_full(r, &mut h)? < 8 {
            break;
        }
        let id: [u8; 4] = h[0..4].try_into().unwrap();
        let size32 = u32::from_le_bytes(h[4..8].try_into().unwrap());
        let offset = pos + 8;
        let size = if form != RiffForm::Riff && &id == b"data" && size32 == u32::MAX {
            ds64_data_size.unwrap_or(u64::from(size32))
        } else {
            u64::from(size32)
        };
        let chunk = Chunk { id, offset, size };
        out.chunks.push(chunk);
        let available = file_len.saturating_sub(offset).min(size);
        match &id {
            b"ds64" if available >= 16 => {
                let mut b = [0u8; 16];
                read_full(r, &mut b)?;
                ds64_data_size = Some(u64::from_le_bytes(b[8..16].try_into().unwrap()));
            }
            b"fmt " if available >= 14 => {
                let mut b = [0u8; 26];
                let n = read_full(r, &mut b[..available.min(26) as usize])?;
                out.format_tag = Some(u16::from_le_bytes([b[0], b[1]]));
                out.channels = Some(u16::from_le_bytes([b[2], b[3]]));
                out.sample_rate = Some(u32::from_le_bytes([b[4], b[5], b[6], b[7]]));
                out.block_align = Some(u16::from_le_bytes([b[12], b[13]]));
                out.bits_per_sample = (n >= 16).then(|| u16::from_le_bytes([b[14], b[15]]));
                out.sub_format = (n >= 26).then(|| u16::from_le_bytes([b[24], b[25]]));
            }
            b"data" => {
                out.data = Some(chunk);
                out.data_available = available;
            }
            b"bext" => {
                let mut b = vec![0u8; available.min(BEXT_MAX) as usize];
                let n = read_full(r, &mut b)?;
                b.truncate(n);
                match Bext::parse(&b) {
                    Ok(bext) => out.bext = Some(bext),
                    Err(e) => out.warnings.push(e.to_string()),
                }
            }
            _ => {}
        }
        if available < size {
            if &id != b"data" {
                out.warnings.push(format!(
                    "the '{}' chunk declares {size} bytes but the file ends after {available}",
                    String::from_utf8_lossy(&id)
                ));
            }
            break;
        }
        // Chunks are padded to an even size.
        pos = offset + size + (size & 1);
    }
    if let Some(d) = out.data
        && out.data_available < d.size
    {
        out.warnings.push(format!(
            "truncated: the data chunk declares {} bytes of audio but the file holds only {}",
            d.size, out.data_available
        ));
    }
    Ok(Some(out))
}

fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {

    #[test]
    fn coding_history_lines_follow_r98_after_what_is_there() {
        let mut b = Bext {
            coding_history: "A=PCM,F=44100,W=16,M=stereo,T=sox synth".into(),
            ..Bext::default()
        };
        b.add_coding(false, 48_000, 24, 2, "Sluice 1");
        b.add_coding(true, 96_000, 32, 1, "Sluice Meter 1");
        b.add_coding(false, 48_000, 16, 6, "x");
        assert_eq!(
            b.coding_history,
            "A=PCM,F=44100,W=16,M=stereo,T=sox synth\nA=PCM,F=48000,W=24,M=stereo,T=Sluice 1\n\
             A=FLOAT,F=96000,W=32,M=mono,T=Sluice Meter 1\nA=PCM,F=48000,W=16,M=multitrack,T=x"
        );
        // Written with CR LF after every line, read back as it was.
        let mut empty = Bext::default();
        empty.add_coding(false, 8_000, 8, 1, "y");
        assert_eq!(empty.coding_history, "A=PCM,F=8000,W=8,M=mono,T=y");
    }

    use super::*;
    use std::io::Cursor;

    fn fixed_field(s: &str, n: usize) -> Vec<u8> {
        let mut v = s.as_bytes().to_vec();
        v.resize(n, 0);
        v
    }

    fn bext_payload(version: u16, loudness: [i16; 5], history: &str) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend(fixed_field("A description", 256));
        b.extend(fixed_field("Sluice", 32));
        b.extend(fixed_field("REF-123", 32));
        b.extend(fixed_field("2026-11-21", 10));
        b.extend(fixed_field("12:34:56", 8));
        let tr: u64 = 0x1_0000_0002;
        b.extend((tr as u32).to_le_bytes());
        b.extend(((tr >> 32) as u32).to_le_bytes());
        b.extend(version.to_le_bytes());
        let mut umid = [0u8; 64];
        umid[0] = 0x06;
        umid[31] = 0xab;
        b.extend(umid);
        for l in loudness {
            b.extend(l.to_le_bytes());
        }
        b.extend([0u8; 180]);
        assert_eq!(b.len(), BEXT_FIXED);
        b.extend(history.as_bytes());
        b
    }

    fn wav_with(chunks: &[(&[u8; 4], Vec<u8>)], data_declared: Option<u32>) -> Vec<u8> {
        let mut body = b"WAVE".to_vec();
        for (id, payload) in chunks {
            body.extend(*id);
            let declared = if **id == *b"data" {
                data_declared.unwrap_or(payload.len() as u32)
            } else {
                payload.len() as u32
            };
            body.extend(declared.to_le_bytes());
            body.extend(payload);
            if payload.len() % 2 == 1 {
                body.push(0);
            }
        }
        let mut f = b"RIFF".to_vec();
        f.extend((body.len() as u32).to_le_bytes());
        f.extend(body);
        f
    }

    fn fmt_pcm16() -> Vec<u8> {
        let mut f = Vec::new();
        f.extend(1u16.to_le_bytes());
        f.extend(1u16.to_le_bytes());
        f.extend(48_000u32.to_le_bytes());
        f.extend(96_000u32.to_le_bytes());
        f.extend(2u16.to_le_bytes());
        f.extend(16u16.to_le_bytes());
        f
    }

    #[test]
    fn parses_bext_v2_with_loudness() {
        let p = bext_payload(2, [-2300, 540, -100, 0x7FFF, -1850], "A=PCM,F=48000\r\n");
        let b = Bext::parse(&p).unwrap();
        assert_eq!(b.description, "A description");
        assert_eq!(b.originator, "Sluice");
        assert_eq!(b.originator_reference, "REF-123");
        assert_eq!(b.origination_date, "2026-11-21");
        assert_eq!(b.origination_time, "12:34:56");
        assert_eq!(b.time_reference, 0x1_0000_0002);
        assert_eq!(b.version, 2);
        let umid = b.umid.unwrap();
        assert_eq!(umid.len(), 64, "basic 32-byte UMID as hex");
        assert!(umid.starts_with("06") && umid.ends_with("ab"));
        assert_eq!(b.loudness_value, Some(-23.0));
        assert_eq!(b.loudness_range, Some(5.4));
        assert_eq!(b.max_true_peak_level, Some(-1.0));
        assert_eq!(b.max_momentary_loudness, None);
        assert_eq!(b.max_short_term_loudness, Some(-18.5));
        assert_eq!(b.coding_history, "A=PCM,F=48000");
    }

    #[test]
    fn v0_ignores_umid_and_loudness() {
        let p = bext_payload(0, [-2300; 5], "");
        let b = Bext::parse(&p).unwrap();
        assert_eq!(b.version, 0);
        assert_eq!(b.umid, None);
        assert_eq!(b.loudness_value, None);
    }

    #[test]
    fn short_bext_is_an_error_not_a_panic() {
        assert!(Bext::parse(&[0u8; 100]).is_err());
        // Exactly the v0 minimum parses.
        let b = Bext::parse(&bext_payload(1, [0; 5], "")[..348]).unwrap();
        assert_eq!(b.umid, None);
    }

    #[test]
    fn scan_finds_bext_and_data() {
        let bext = bext_payload(1, [0; 5], "odd");
        let f = wav_with(
            &[
                (b"fmt ", fmt_pcm16()),
                (b"bext", bext),
                (b"data", vec![0u8; 400]),
            ],
            None,
        );
        let len = f.len() as u64;
        let s = scan(&mut Cursor::new(f), len).unwrap().unwrap();
        assert_eq!(s.form, Some(RiffForm::Riff));
        assert_eq!(s.format_tag, Some(1));
        assert_eq!(s.bext.as_ref().unwrap().coding_history, "odd");
        assert_eq!(s.data.unwrap().size, 400);
        assert!(!s.data_truncated());
        assert!(s.warnings.is_empty(), "{:?}", s.warnings);
    }

    #[test]
    fn scan_reports_data_claiming_more_than_the_file_holds() {
        let f = wav_with(
            &[(b"fmt ", fmt_pcm16()), (b"data", vec![0u8; 400])],
            Some(1_000_000),
        );
        let len = f.len() as u64;
        let s = scan(&mut Cursor::new(f), len).unwrap().unwrap();
        assert!(s.data_truncated());
        assert_eq!(s.data_available, 400);
        assert!(s.warnings[0].contains("truncated"), "{:?}", s.warnings);
    }

    #[test]
    fn scan_of_non_wave_is_none_and_garbage_never_panics() {
        assert!(scan(&mut Cursor::new(b"fLaC...."), 8).unwrap().is_none());
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for len in 0..600 {
            let mut f = b"RIFF\0\0\0\0WAVE".to_vec();
            for _ in 0..len {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                f.push(x as u8);
            }
            let n = f.len() as u64;
            let _ = scan(&mut Cursor::new(f), n).unwrap();
        }
    }
}
