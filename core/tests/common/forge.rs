//! Forged headers: real fixture files (made by sox, ffmpeg and flac, see fixtures/make.sh) with
//! one header field set to what a hostile or broken writer might put there: absurd sample
//! rates, channel counts, bit depths, declared lengths, block and chunk sizes. Shared by the
//! tests that feed them to every way in (core's decoder, `sluice info/analyze/export`, a
//! pipeline job, an HTTP upload, the plugin's reference loader): include it with
//! `#[path = ".../core/tests/common/forge.rs"] mod forge;`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// One forged file.
pub struct Forged {
    /// A short name (`wav_rate_1778428996`), also the file's stem.
    pub name: String,
    /// The file name extension of the container.
    pub ext: &'static str,
    /// The header field forged, as errors should name it (`sample rate`, `channels`, ...).
    /// `None` where the forged value is legal or only inconsistent (a declared length past the
    /// end of the file, a block size): a correct result or a clear error are both right.
    pub field: Option<&'static str>,
    pub bytes: Vec<u8>,
}

/// Limits this process's address space to 1 GiB (once): a header that makes Sluice size an
/// allocation from its word then aborts the test instead of passing.
pub fn limit_address_space() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let lim = libc::rlimit {
            rlim_cur: 1 << 30,
            rlim_max: 1 << 30,
        };
        // SAFETY: setrlimit only reads the struct we pass, which lives across the call;
        // lowering this process's own limit is always allowed and affects nothing else.
        let rc = unsafe { libc::setrlimit(libc::RLIMIT_AS, &lim) };
        assert_eq!(rc, 0, "setrlimit(RLIMIT_AS) failed");
    });
}

impl Forged {
    /// What is wrong with the error message `msg` about this file (shown as `shown`), if
    /// anything: it must name the file, and the forged field where the value is out of range.
    pub fn judge(&self, shown: &str, msg: &str) -> Option<String> {
        if !msg.contains(shown) {
            return Some(format!(
                "{}: the error does not name the file: {msg}",
                self.name
            ));
        }
        match self.field {
            Some(field) if !msg.contains(field) => Some(format!(
                "{}: the error does not name the field {field:?}: {msg}",
                self.name
            )),
            _ => None,
        }
    }

    /// Write it into `dir` as `name.ext`.
    pub fn write(&self, dir: &Path) -> PathBuf {
        let p = dir.join(format!("{}.{}", self.name, self.ext));
        std::fs::write(&p, &self.bytes).unwrap();
        p
    }
}

fn find(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len())
        .position(|w| w == needle)
        .unwrap_or_else(|| panic!("{:?} not in the fixture", String::from_utf8_lossy(needle)))
}

fn patched(base: &[u8], at: usize, bytes: &[u8]) -> Vec<u8> {
    let mut b = base.to_vec();
    b[at..at + bytes.len()].copy_from_slice(bytes);
    b
}

/// An IEEE 754 80-bit extended float (AIFF's sample rate field) from an `f64`.
pub fn extended(v: f64) -> [u8; 10] {
    let mut out = [0u8; 10];
    if v == 0.0 {
        return out;
    }
    if v.is_nan() || v.is_infinite() {
        out[0] = 0x7F;
        out[1] = 0xFF;
        out[2] = if v.is_nan() { 0xC0 } else { 0x80 };
        return out;
    }
    let bits = v.to_bits();
    let sign = (bits >> 63) as u16;
    let exp = ((bits >> 52) & 0x7FF) as i32 - 1023;
    let mantissa = (bits & ((1 << 52) - 1)) | (1 << 52);
    let e = (exp + 16383) as u16 | (sign << 15);
    out[0..2].copy_from_slice(&e.to_be_bytes());
    out[2..10].copy_from_slice(&(mantissa << 11).to_be_bytes());
    out
}

/// Every forged file, made from the fixtures in `fixtures` (core/tests/fixtures).
pub fn all(fixtures: &Path) -> Vec<Forged> {
    let mut out = Vec::new();
    let read = |n: &str| std::fs::read(fixtures.join(n)).unwrap();
    let mut add = |name: String, ext, field, bytes| {
        out.push(Forged {
            name,
            ext,
            field,
            bytes,
        })
    };

    // WAV (source.wav: 16-bit stereo 44.1 kHz, 2 s, PCM): the `fmt ` chunk's fields.
    let wav = read("source.wav");
    let fmt = find(&wav, b"fmt ") + 8;
    let data = find(&wav, b"data");
    for rate in [
        1_778_428_996u32,
        4_000_000_000,
        0,
        1,
        7_999,
        384_001,
        u32::MAX,
    ] {
        add(
            format!("wav_rate_{rate}"),
            "wav",
            Some("sample rate"),
            patched(&wav, fmt + 4, &rate.to_le_bytes()),
        );
    }
    for ch in [0u16, 9, 30_000, u16::MAX] {
        add(
            format!("wav_channels_{ch}"),
            "wav",
            Some("channels"),
            patched(&wav, fmt + 2, &ch.to_le_bytes()),
        );
    }
    for bits in [0u16, 1, 200, u16::MAX] {
        add(
            format!("wav_bits_{bits}"),
            "wav",
            Some("bit depth"),
            patched(&wav, fmt + 14, &bits.to_le_bytes()),
        );
    }
    for align in [0u16, 1, u16::MAX] {
        add(
            format!("wav_block_align_{align}"),
            "wav",
            None,
            patched(&wav, fmt + 12, &align.to_le_bytes()),
        );
    }
    // A declared length of hours (4 GiB of data) in a 350 KB file; and a RIFF size to match.
    add(
        "wav_data_len_4g".into(),
        "wav",
        None,
        patched(&wav, data + 4, &0xFFFF_FFF0u32.to_le_bytes()),
    );
    add(
        "wav_riff_len_4g".into(),
        "wav",
        None,
        patched(&wav, 4, &0xFFFF_FFF0u32.to_le_bytes()),
    );

    // RF64 (rf64.wav: its ds64 chunk gives the RIFF size, the data size and the sample count as
    // 64-bit numbers).
    let rf = read("rf64.wav");
    let ds64 = find(&rf, b"ds64") + 8;
    let rfmt = find(&rf, b"fmt ") + 8;
    add(
        "rf64_data_len_2e62".into(),
        "wav",
        None,
        patched(&rf, ds64 + 8, &(1u64 << 62).to_le_bytes()),
    );
    add(
        "rf64_sample_count_2e62".into(),
        "wav",
        None,
        patched(&rf, ds64 + 16, &(1u64 << 62).to_le_bytes()),
    );
    add(
        "rf64_rate_1778428996".into(),
        "wav",
        Some("sample rate"),
        patched(&rf, rfmt + 4, &1_778_428_996u32.to_le_bytes()),
    );
    add(
        "rf64_channels_30000".into(),
        "wav",
        Some("channels"),
        patched(&rf, rfmt + 2, &30_000u16.to_le_bytes()),
    );

    // AIFF (source.aiff): COMM is channels (2), frames (4), sample size (2), rate (10).
    let aiff = read("source.aiff");
    let comm = find(&aiff, b"COMM") + 8;
    let ssnd = find(&aiff, b"SSND");
    for (name, rate) in [
        ("1e12", 1e12),
        ("1e300", 1e300),
        ("4e9", 4e9),
        ("1778428996", 1_778_428_996.0),
        ("0", 0.0),
        ("0_5", 0.5),
        ("inf", f64::INFINITY),
        ("nan", f64::NAN),
        ("neg", -48_000.0),
        ("384001", 384_001.0),
    ] {
        add(
            format!("aiff_rate_{name}"),
            "aiff",
            Some("sample rate"),
            patched(&aiff, comm + 8, &extended(rate)),
        );
    }
    for ch in [0u16, 9, 30_000, u16::MAX] {
        add(
            format!("aiff_channels_{ch}"),
            "aiff",
            Some("channels"),
            patched(&aiff, comm, &ch.to_be_bytes()),
        );
    }
    for bits in [0u16, 200, u16::MAX] {
        add(
            format!("aiff_bits_{bits}"),
            "aiff",
            Some("bit depth"),
            patched(&aiff, comm + 6, &bits.to_be_bytes()),
        );
    }
    add(
        "aiff_frames_4g".into(),
        "aiff",
        None,
        patched(&aiff, comm + 2, &u32::MAX.to_be_bytes()),
    );
    add(
        "aiff_ssnd_len_4g".into(),
        "aiff",
        None,
        patched(&aiff, ssnd + 4, &0xFFFF_FFF0u32.to_be_bytes()),
    );

    // FLAC (s24.flac): STREAMINFO at byte 8: min/max block size (2+2), min/max frame size
    // (3+3), then rate (20 bits), channels - 1 (3), bits - 1 (5), total frames (36), MD5.
    let flac = read("s24.flac");
    let si = 8;
    let packed = u64::from_be_bytes(flac[si + 10..si + 18].try_into().unwrap());
    let with = |rate: u64, ch: u64, bits: u64, total: u64| -> Vec<u8> {
        let p = (rate << 44) | ((ch - 1) << 41) | ((bits - 1) << 36) | total;
        patched(&flac, si + 10, &p.to_be_bytes())
    };
    let (rate0, ch0, bits0, total0) = (
        packed >> 44,
        ((packed >> 41) & 7) + 1,
        ((packed >> 36) & 31) + 1,
        packed & ((1 << 36) - 1),
    );
    for rate in [(1u64 << 20) - 1, 655_350, 384_001, 1] {
        add(
            format!("flac_rate_{rate}"),
            "flac",
            Some("sample rate"),
            with(rate, ch0, bits0, total0),
        );
    }
    add(
        "flac_rate_0".into(),
        "flac",
        None,
        with(0, ch0, bits0, total0),
    );
    add(
        "flac_channels_8".into(),
        "flac",
        None,
        with(rate0, 8, bits0, total0),
    );
    for bits in [1u64, 3, 32] {
        add(
            format!("flac_bits_{bits}"),
            "flac",
            if bits < 4 { Some("bit depth") } else { None },
            with(rate0, ch0, bits, total0),
        );
    }
    add(
        "flac_frames_2e36".into(),
        "flac",
        None,
        with(rate0, ch0, bits0, (1 << 36) - 1),
    );
    add(
        "flac_max_block_65535".into(),
        "flac",
        None,
        patched(&flac, si + 2, &u16::MAX.to_be_bytes()),
    );
    add(
        "flac_min_block_0".into(),
        "flac",
        None,
        patched(&flac, si, &0u16.to_be_bytes()),
    );
    add(
        "flac_max_frame_16m".into(),
        "flac",
        None,
        patched(&flac, si + 7, &[0xFF, 0xFF, 0xFF]),
    );

    // Ogg Vorbis (tagged.ogg): the identification header in the first page (channels, rate);
    // the page's CRC is computed again so the forged value reaches the parser.
    let ogg = read("tagged.ogg");
    let id = find(&ogg, b"\x01vorbis");
    let page_len = 27
        + usize::from(ogg[26])
        + ogg[27..27 + usize::from(ogg[26])]
            .iter()
            .map(|&l| usize::from(l))
            .sum::<usize>();
    let ogg_with = |at: usize, bytes: &[u8]| {
        let mut b = patched(&ogg, at, bytes);
        b[22..26].fill(0);
        let crc = crc32_ogg(0, &b[..page_len]);
        b[22..26].copy_from_slice(&crc.to_le_bytes());
        b
    };
    for (rate, field) in [
        (1_778_428_996u32, Some("sample rate")),
        (384_001, Some("sample rate")),
        (0, None),
    ] {
        add(
            format!("ogg_rate_{rate}"),
            "ogg",
            field,
            ogg_with(id + 12, &rate.to_le_bytes()),
        );
    }
    for (ch, field) in [(255u8, Some("channels")), (9, Some("channels")), (0, None)] {
        add(
            format!("ogg_channels_{ch}"),
            "ogg",
            field,
            ogg_with(id + 11, &[ch]),
        );
    }

    // MP4 with ALAC (alac.m4a): the magic cookie (ALACSpecificConfig, after the inner `alac`
    // atom's type and its version and flags) gives the channels (byte 9) and the rate (20..24);
    // the sample entry (the outer `alac`) its channels at +20.
    let m4a = read("alac.m4a");
    let entry = find(&m4a, b"alac");
    let cookie = entry + 4 + find(&m4a[entry + 4..], b"alac") + 8;
    for rate in [1_778_428_996u32, 384_001] {
        add(
            format!("alac_rate_{rate}"),
            "m4a",
            Some("sample rate"),
            patched(&m4a, cookie + 20, &rate.to_be_bytes()),
        );
    }
    let mut both = patched(&m4a, cookie + 9, &[255]);
    both[entry + 20..entry + 22].copy_from_slice(&255u16.to_be_bytes());
    add("alac_channels_255".into(), "m4a", Some("channels"), both);

    // MP3 (tagged.mp3): the Info tag's frame count (hours declared for 2 s of audio).
    let mp3 = read("tagged.mp3");
    let info = find(&mp3, b"Info");
    add(
        "mp3_frames_4g".into(),
        "mp3",
        None,
        patched(&mp3, info + 8, &u32::MAX.to_be_bytes()),
    );
    out
}

/// CRC-32 of an Ogg page (computed with its CRC field zeroed): polynomial 0x04C11DB7, initial
/// value `crc` (0 for a page), no reflection.
pub fn crc32_ogg(crc: u32, bytes: &[u8]) -> u32 {
    bytes.iter().fold(crc, |mut c, &b| {
        c ^= u32::from(b) << 24;
        for _ in 0..8 {
            c = if c & 0x8000_0000 != 0 {
                (c << 1) ^ 0x04C1_1DB7
            } else {
                c << 1
            };
        }
        c
    })
}

/// A FLAC file of digital silence, `seconds` long at 48 kHz stereo 16-bit, in frames of 4096
/// samples with CONSTANT subframes: 15 bytes a frame, about 650 KB for an hour. Small to send,
/// long to decode: the shape of a decompression bomb, for tests of time limits and of work
/// stopped when its client goes away.
pub fn silent_flac(seconds: u64) -> Vec<u8> {
    const RATE: u64 = 48_000;
    const BLOCK: u64 = 4096;
    let frames = (seconds * RATE).div_ceil(BLOCK);
    let total = frames * BLOCK;
    let mut out = b"fLaC".to_vec();
    // STREAMINFO, the last metadata block: block sizes, frame sizes unknown, 48 kHz, 2
    // channels, 16 bits, the total, no MD5.
    out.extend_from_slice(&[0x80, 0, 0, 34]);
    out.extend_from_slice(&(BLOCK as u16).to_be_bytes());
    out.extend_from_slice(&(BLOCK as u16).to_be_bytes());
    out.extend_from_slice(&[0; 6]);
    let packed = (RATE << 44) | (1 << 41) | (15 << 36) | total;
    out.extend_from_slice(&packed.to_be_bytes());
    out.extend_from_slice(&[0; 16]);
    for n in 0..frames {
        let start = out.len();
        // Sync and fixed block size; 4096 samples (code 12), 48 kHz (code 10); two
        // independent channels, 16 bits.
        out.extend_from_slice(&[0xFF, 0xF8, 0xCA, 0x18]);
        // The frame number, UTF-8 coded.
        match n {
            0..0x80 => out.push(n as u8),
            0x80..0x800 => out.extend_from_slice(&[0xC0 | (n >> 6) as u8, 0x80 | (n & 0x3F) as u8]),
            0x800..0x10000 => out.extend_from_slice(&[
                0xE0 | (n >> 12) as u8,
                0x80 | ((n >> 6) & 0x3F) as u8,
                0x80 | (n & 0x3F) as u8,
            ]),
            _ => out.extend_from_slice(&[
                0xF0 | (n >> 18) as u8,
                0x80 | ((n >> 12) & 0x3F) as u8,
                0x80 | ((n >> 6) & 0x3F) as u8,
                0x80 | (n & 0x3F) as u8,
            ]),
        }
        let crc8 = crc8_flac(&out[start..]);
        out.push(crc8);
        // Two CONSTANT subframes of value 0.
        out.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        let crc16 = out[start..].iter().fold(0, |c, &b| crc16_flac(c, b));
        out.extend_from_slice(&crc16.to_be_bytes());
    }
    out
}

/// CRC-8 of a FLAC frame header: polynomial 0x07, initial value 0.
pub fn crc8_flac(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |mut c, &b| {
        c ^= b;
        for _ in 0..8 {
            c = if c & 0x80 != 0 {
                (c << 1) ^ 0x07
            } else {
                c << 1
            };
        }
        c
    })
}

/// One byte more of a FLAC frame's CRC-16: polynomial 0x8005, initial value 0, no reflection.
pub fn crc16_flac(crc: u16, b: u8) -> u16 {
    let mut c = crc ^ (u16::from(b) << 8);
    for _ in 0..8 {
        c = if c & 0x8000 != 0 {
            (c << 1) ^ 0x8005
        } else {
            c << 1
        };
    }
    c
}
