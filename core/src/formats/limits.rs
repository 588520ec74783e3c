//! What Sluice supports, defined once: the sample rates, channel counts and sample sizes a
//! decoded stream may have. The decoder refuses a header outside these ranges before anything
//! is sized from it; pipelines, the HTTP stream and the plugin check the rates and channel counts
//! they are given against the same constants. Every buffer that grows with the rate or the
//! channel count (analysis windows, resampler state, a block) is therefore bounded by
//! `SAMPLE_RATES.end()` and `CHANNELS.end()`, never by a header's word (docs/ANALYSIS.md gives
//! the resulting memory bound).

use std::ops::RangeInclusive;

/// Sample rates in Hz: telephone speech to 8× 48 kHz.
pub const SAMPLE_RATES: RangeInclusive<u32> = 8_000..=384_000;

/// Channels per stream: mono to 7.1.
pub const CHANNELS: RangeInclusive<u32> = 1..=8;
/// The most channels, as a count to size arrays by.
pub const MAX_CHANNELS: usize = *CHANNELS.end() as usize;

/// Bits per sample of integer PCM and lossless codecs (FLAC's smallest is 4).
pub const INT_BITS: RangeInclusive<u32> = 4..=32;

/// Bits per sample of IEEE float PCM.
pub const FLOAT_BITS: [u32; 2] = [32, 64];

/// The most frames a decoder may declare for one packet. Packets are decoded into a buffer of
/// this many frames per channel: at 8 channels of `f32` that is 32 MiB. The largest legitimate
/// packets are FLAC's and ALAC's (65,535 and 4,096 frames) and PCM read in chunks of a few
/// thousand frames.
pub const MAX_PACKET_FRAMES: u64 = 1 << 20;

/// The most waveform buckets an analysis keeps per channel (a million min/max pairs: 8 MB per
/// channel; a screen needs a few thousand).
pub const MAX_WAVEFORM_BUCKETS: usize = 1_000_000;

/// A stream fact outside these ranges (defined with the errors, the layer below).
pub use crate::error::OutOfRange;

/// `rate` against [`SAMPLE_RATES`].
pub fn check_rate(rate: u32) -> Result<(), OutOfRange> {
    if SAMPLE_RATES.contains(&rate) {
        Ok(())
    } else {
        Err(OutOfRange {
            field: "sample rate",
            value: format!("{rate} Hz"),
            supported: format!("{} to {} Hz", SAMPLE_RATES.start(), SAMPLE_RATES.end()),
        })
    }
}

/// `channels` against [`CHANNELS`].
pub fn check_channels(channels: u64) -> Result<(), OutOfRange> {
    if channels >= u64::from(*CHANNELS.start()) && channels <= u64::from(*CHANNELS.end()) {
        Ok(())
    } else {
        Err(OutOfRange {
            field: "channels",
            value: channels.to_string(),
            supported: format!("{} to {}", CHANNELS.start(), CHANNELS.end()),
        })
    }
}

/// Bits per sample of a stream: integer (`float == false`) or IEEE float.
pub fn check_bits(bits: u32, float: bool) -> Result<(), OutOfRange> {
    let ok = if float {
        FLOAT_BITS.contains(&bits)
    } else {
        INT_BITS.contains(&bits)
    };
    if ok {
        Ok(())
    } else {
        Err(OutOfRange {
            field: "bit depth",
            value: format!("{bits}{}", if float { " (float)" } else { "" }),
            supported: if float {
                "32 or 64 for float".to_string()
            } else {
                format!("{} to {} for integers", INT_BITS.start(), INT_BITS.end())
            },
        })
    }
}

/// The frames a decoder declares per packet, against [`MAX_PACKET_FRAMES`].
pub fn check_packet_frames(frames: u64) -> Result<(), OutOfRange> {
    if frames <= MAX_PACKET_FRAMES {
        Ok(())
    } else {
        Err(OutOfRange {
            field: "frames per packet",
            value: frames.to_string(),
            supported: format!("at most {MAX_PACKET_FRAMES}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_edges_of_each_range() {
        assert!(check_rate(8_000).is_ok() && check_rate(384_000).is_ok());
        assert_eq!(check_rate(7_999).unwrap_err().field, "sample rate");
        assert!(check_rate(384_001).is_err() && check_rate(0).is_err());
        assert!(check_channels(1).is_ok() && check_channels(8).is_ok());
        assert!(check_channels(0).is_err() && check_channels(9).is_err());
        assert!(check_bits(4, false).is_ok() && check_bits(32, false).is_ok());
        assert!(check_bits(3, false).is_err() && check_bits(33, false).is_err());
        assert!(check_bits(64, true).is_ok() && check_bits(24, true).is_err());
        assert!(check_packet_frames(65_535).is_ok());
        assert!(check_packet_frames(MAX_PACKET_FRAMES + 1).is_err());
        assert_eq!(
            check_rate(1_778_428_996).unwrap_err().to_string(),
            "sample rate 1778428996 Hz is outside what Sluice supports (8000 to 384000 Hz)"
        );
    }
}
