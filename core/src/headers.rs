//! What a container's own header declares, read by Sluice and checked against
//! [`crate::formats::limits`] before symphonia parses the file: a WAV, RF64, AIFF or FLAC
//! header that declares an absurd rate, channel count or sample size is refused with the field
//! named, before any parser multiplies or allocates with it. (Symphonia sizes its first buffers
//! from these fields while probing; a 65,535-channel WAV overflowed its arithmetic, a 1.78 GHz
//! WAV made the analysis allocate gigabytes.) Every other container's stream parameters are
//! checked after the probe, in `decode::check_supported`, before a decoder is made.

use crate::formats::limits::{self, OutOfRange};
use crate::riff::RiffScan;
use std::io::{Read, Seek, SeekFrom};

/// The first field of a WAV/RF64 `fmt ` chunk outside what Sluice supports.
pub(crate) fn check_wav(scan: &RiffScan) -> Result<(), OutOfRange> {
    if let Some(ch) = scan.channels {
        limits::check_channels(u64::from(ch))?;
    }
    if let Some(rate) = scan.sample_rate {
        limits::check_rate(rate)?;
    }
    let Some(bits) = scan.bits_per_sample.map(u32::from) else {
        return Ok(());
    };
    let tag = match scan.format_tag {
        Some(0xFFFE) => scan.sub_format,
        t => t,
    };
    match tag {
        // Integer PCM in WAV: whole bytes, 8 to 32 bits.
        Some(1) if !(bits % 8 == 0 && limits::INT_BITS.contains(&bits)) => Err(OutOfRange {
            field: "bit depth",
            value: bits.to_string(),
            supported: "8, 16, 24 or 32 for integer PCM in WAV".to_string(),
        }),
        Some(3) => limits::check_bits(bits, true),
        _ => Ok(()),
    }
}

/// A chunk of an AIFF/AIFF-C file as [`walk_aiff`] visits it.
pub(crate) struct AiffChunk {
    pub id: [u8; 4],
    /// Where its size field is, and its payload.
    pub size_at: u64,
    pub payload: u64,
    pub size: u64,
    /// The form is AIFF-C.
    pub aifc: bool,
}

/// Walks the chunks of an AIFF/AIFF-C file (at most 4096), giving each to `visit` until it
/// returns `Some`. `Ok(None)` when the file is not AIFF or no visit returned anything.
pub(crate) fn walk_aiff<R: Read + Seek, T>(
    r: &mut R,
    len: u64,
    mut visit: impl FnMut(&mut R, &AiffChunk) -> std::io::Result<Option<T>>,
) -> std::io::Result<Option<T>> {
    let mut head = [0u8; 12];
    r.seek(SeekFrom::Start(0))?;
    if r.read(&mut head)? < 12 || &head[0..4] != b"FORM" {
        return Ok(None);
    }
    let aifc = match &head[8..12] {
        b"AIFF" => false,
        b"AIFC" => true,
        _ => return Ok(None),
    };
    let mut pos = 12u64;
    for _ in 0..4096 {
        if pos + 8 > len {
            break;
        }
        r.seek(SeekFrom::Start(pos))?;
        let mut h = [0u8; 8];
        r.read_exact(&mut h)?;
        let chunk = AiffChunk {
            id: [h[0], h[1], h[2], h[3]],
            size_at: pos + 4,
            payload: pos + 8,
            size: u64::from(u32::from_be_bytes([h[4], h[5], h[6], h[7]])),
            aifc,
        };
        if let Some(found) = visit(r, &chunk)? {
            return Ok(Some(found));
        }
        pos = chunk.payload + chunk.size + (chunk.size & 1);
    }
    Ok(None)
}

/// Reads an AIFF/AIFF-C `COMM` chunk and checks its channels, sample size and rate.
pub(crate) fn check_aiff<R: Read + Seek>(
    r: &mut R,
    len: u64,
) -> std::io::Result<Result<(), OutOfRange>> {
    let checked = walk_aiff(r, len, |r, chunk| {
        if &chunk.id != b"COMM" {
            return Ok(None);
        }
        r.seek(SeekFrom::Start(chunk.payload))?;
        let mut c = [0u8; 22];
        let n = r.take(22).read(&mut c)?;
        if n < 18 {
            return Ok(Some(Ok(())));
        }
        // Signed shorts in the specification; a negative one is shown as its bits read
        // unsigned (65535), which is as absurd and clearer.
        let channels = u16::from_be_bytes([c[0], c[1]]);
        let bits = u16::from_be_bytes([c[6], c[7]]);
        let rate = extended_to_f64(c[8..18].try_into().unwrap());
        Ok(Some(check_comm(
            channels,
            bits,
            rate,
            (chunk.aifc && n >= 22).then(|| [c[18], c[19], c[20], c[21]]),
        )))
    })?;
    Ok(checked.unwrap_or(Ok(())))
}

fn check_comm(
    channels: u16,
    bits: u16,
    rate: f64,
    compression: Option<[u8; 4]>,
) -> Result<(), OutOfRange> {
    limits::check_channels(u64::from(channels))?;
    if rate.is_finite() && rate >= 0.5 && rate < f64::from(u32::MAX) {
        limits::check_rate(rate.round() as u32)?;
    } else {
        return Err(OutOfRange {
            field: "sample rate",
            value: if rate.is_finite() && rate.abs() < 1e12 {
                format!("{rate} Hz")
            } else {
                format!("{rate:e} Hz")
            },
            supported: format!(
                "{} to {} Hz",
                limits::SAMPLE_RATES.start(),
                limits::SAMPLE_RATES.end()
            ),
        });
    }
    let bits = u32::from(bits);
    match compression.as_ref().map(|c| c.to_ascii_lowercase()) {
        None => limits::check_bits(bits, false),
        Some(c) if &c == b"none" || &c == b"sowt" || &c == b"twos" => {
            limits::check_bits(bits, false)
        }
        Some(c) if &c == b"fl32" || &c == b"fl64" => limits::check_bits(bits, true),
        // Other compression types: the codec says its own sample size (or is refused later).
        Some(_) => Ok(()),
    }
}

/// An IEEE 754 80-bit extended float (big endian), as AIFF stores its sample rate.
fn extended_to_f64(b: [u8; 10]) -> f64 {
    let sign = if b[0] & 0x80 != 0 { -1.0 } else { 1.0 };
    let exp = i32::from(u16::from_be_bytes([b[0] & 0x7F, b[1]]));
    let mantissa = u64::from_be_bytes(b[2..10].try_into().unwrap());
    if exp == 0x7FFF {
        return if mantissa << 1 == 0 {
            sign * f64::INFINITY
        } else {
            f64::NAN
        };
    }
    if exp == 0 && mantissa == 0 {
        return 0.0;
    }
    // value = mantissa * 2^(exp - 16383 - 63); powi saturates to 0 or infinity.
    sign * mantissa as f64 * 2f64.powi(exp - 16383 - 63)
}

/// Checks a FLAC stream's STREAMINFO (the first metadata block, right after `fLaC`).
pub(crate) fn check_flac(head: &[u8]) -> Result<(), OutOfRange> {
    // "fLaC", block header (4), then STREAMINFO: block sizes (2+2), frame sizes (3+3), then
    // rate (20 bits), channels - 1 (3), bits - 1 (5), frames (36).
    let Some(si) = head
        .get(8..26)
        .filter(|_| head.starts_with(b"fLaC") && head[4] & 0x7F == 0)
    else {
        return Ok(());
    };
    let packed = u64::from_be_bytes(si[10..18].try_into().unwrap());
    let rate = (packed >> 44) as u32;
    let channels = ((packed >> 41) & 7) as u32 + 1;
    let bits = ((packed >> 36) & 31) as u32 + 1;
    limits::check_rate(rate)?;
    limits::check_channels(u64::from(channels))?;
    limits::check_bits(bits, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extended_floats_read_back() {
        // 44100 Hz as sox writes it.
        let b = [0x40, 0x0E, 0xAC, 0x44, 0, 0, 0, 0, 0, 0];
        assert_eq!(extended_to_f64(b), 44_100.0);
        assert!(extended_to_f64([0x7F, 0xFF, 0xC0, 0, 0, 0, 0, 0, 0, 0]).is_nan());
        assert_eq!(extended_to_f64([0; 10]), 0.0);
    }

    #[test]
    fn comm_fields_are_named() {
        assert!(check_comm(2, 16, 44_100.0, None).is_ok());
        assert_eq!(
            check_comm(30_000, 16, 44_100.0, None).unwrap_err().field,
            "channels"
        );
        assert_eq!(
            check_comm(u16::MAX, 16, 44_100.0, None).unwrap_err().value,
            "65535"
        );
        assert_eq!(
            check_comm(2, 16, 1e300, None).unwrap_err().field,
            "sample rate"
        );
        assert_eq!(
            check_comm(2, 16, f64::NAN, None).unwrap_err().field,
            "sample rate"
        );
        assert_eq!(
            check_comm(2, 16, 0.5, None).unwrap_err().field,
            "sample rate"
        );
        assert_eq!(
            check_comm(2, 200, 44_100.0, None).unwrap_err().field,
            "bit depth"
        );
        assert!(check_comm(2, 64, 44_100.0, Some(*b"fl64")).is_ok());
        assert!(check_comm(2, 64, 44_100.0, Some(*b"NONE")).is_err());
    }
}
