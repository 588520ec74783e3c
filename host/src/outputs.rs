//! Output formats as a user asks for them (command-line flags or a pipeline's `[[output]]`),
//! checked on their own, then resolved against the signal that reaches the output: a default
//! bit depth follows the source, and MP3's limits (8–48 kHz, two channels) are met by
//! resampling or downmixing with a note rather than failing.

use sluice_core::encode::PcmFormat;
use sluice_core::export::OutputFormat;
use sluice_core::render::stages::ChannelMapping;

/// A container and codec Sluice encodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Wav,
    Aiff,
    Flac,
    Mp3,
    Ogg,
}

impl Kind {
    /// From a format name or a file extension.
    pub fn parse(s: &str) -> Option<Kind> {
        Some(match s.to_ascii_lowercase().as_str() {
            "wav" | "wave" | "bwf" => Kind::Wav,
            "aif" | "aiff" => Kind::Aiff,
            "flac" => Kind::Flac,
            "mp3" => Kind::Mp3,
            "ogg" | "oga" | "vorbis" => Kind::Ogg,
            _ => return None,
        })
    }
    pub fn name(self) -> &'static str {
        match self {
            Kind::Wav => "WAV",
            Kind::Aiff => "AIFF",
            Kind::Flac => "FLAC",
            Kind::Mp3 => "MP3",
            Kind::Ogg => "Ogg Vorbis",
        }
    }
}

pub const KINDS: &str = "wav, aiff, flac, mp3 or ogg";

/// What the user asked for. Names in messages follow the command line (`--bit-depth`); a
/// pipeline passes its own spelling in `names`.
#[derive(Debug, Clone, PartialEq)]
pub struct FormatRequest {
    pub kind: Kind,
    /// `8`, `16`, `24`, `32` or `32f`.
    pub bit_depth: Option<String>,
    pub quality: Option<f32>,
    pub bitrate_kbps: Option<u32>,
    pub compression_level: Option<u8>,
}

/// How options are spelled where the user wrote them.
#[derive(Debug, Clone, Copy)]
pub struct Names {
    pub bit_depth: &'static str,
    pub quality: &'static str,
    pub bitrate: &'static str,
    pub compression_level: &'static str,
    pub sample_rate: &'static str,
}

pub const CLI_NAMES: Names = Names {
    bit_depth: "--bit-depth",
    quality: "--quality",
    bitrate: "--bitrate",
    compression_level: "--compression-level",
    sample_rate: "--sample-rate",
};

pub const TOML_NAMES: Names = Names {
    bit_depth: "bit_depth",
    quality: "quality",
    bitrate: "bitrate_kbps",
    compression_level: "compression_level",
    sample_rate: "sample_rate",
};

/// Sample rates an MP3 stream can hold.
pub const MP3_RATES: [u32; 9] = [
    8000, 11_025, 12_000, 16_000, 22_050, 24_000, 32_000, 44_100, 48_000,
];

/// The signal arriving at an output.
#[derive(Debug, Clone, Copy)]
pub struct Arriving {
    pub sample_rate: u32,
    pub channels: usize,
    /// Integer depth of the source, when it is integer PCM.
    pub int_bits: Option<u32>,
    pub float: bool,
}

/// The resolved output, with what has to happen to the signal first.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub format: OutputFormat,
    /// Resample to this rate for this output (MP3 limits).
    pub sample_rate: Option<u32>,
    /// Downmix for this output (MP3 limits).
    pub channels: Option<ChannelMapping>,
    pub notes: Vec<String>,
}

fn int_bits(s: &str, allowed: &[u32], kind: Kind, n: &Names) -> Result<u32, String> {
    s.parse::<u32>()
        .ok()
        .filter(|b| allowed.contains(b))
        .ok_or_else(|| {
            format!(
                "{} {s}: {} takes {}",
                n.bit_depth,
                kind.name(),
                allowed
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
}

impl FormatRequest {
    /// Check the options against the format, without a source.
    pub fn check(&self, n: &Names) -> Result<(), String> {
        let unsupported = |opt: &str| {
            Err(format!(
                "{opt} does not apply to {} (its options: {})",
                self.kind.name(),
                match self.kind {
                    Kind::Wav | Kind::Aiff => n.bit_depth.to_string(),
                    Kind::Flac => format!("{}, {}", n.bit_depth, n.compression_level),
                    Kind::Mp3 => format!("{} or {}", n.bitrate, n.quality),
                    Kind::Ogg => n.quality.to_string(),
                }
            ))
        };
        if let Some(b) = &self.bit_depth {
            match self.kind {
                Kind::Wav if matches!(b.as_str(), "32f" | "float") => {}
                Kind::Wav => {
                    int_bits(b, &[8, 16, 24, 32], self.kind, n)?;
                }
                Kind::Aiff => {
                    int_bits(b, &[8, 16, 24, 32], self.kind, n)?;
                }
                Kind::Flac => {
                    int_bits(b, &[16, 24], self.kind, n)?;
                }
                Kind::Mp3 | Kind::Ogg => return unsupported(n.bit_depth),
            }
        }
        if let Some(q) = self.quality {
            match self.kind {
                Kind::Mp3 if !(0.0..=9.0).contains(&q.round()) => {
                    return Err(format!(
                        "{} {q}: MP3 VBR quality runs from 0 (best) to 9",
                        n.quality
                    ));
                }
                Kind::Ogg if !(-1.0..=10.0).contains(&q) => {
                    return Err(format!(
                        "{} {q}: Vorbis quality runs from -1 to 10",
                        n.quality
                    ));
                }
                Kind::Mp3 | Kind::Ogg => {}
                _ => return unsupported(n.quality),
            }
        }
        if let Some(b) = self.bitrate_kbps {
            if self.kind != Kind::Mp3 {
                return unsupported(n.bitrate);
            }
            if self.quality.is_some() {
                return Err(format!(
                    "{} and {} exclude each other: constant bitrate or VBR quality",
                    n.bitrate, n.quality
                ));
            }
            const CBR: [u32; 14] = [
                32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320,
            ];
            if !CBR.contains(&b) {
                return Err(format!(
                    "{} {b}: MP3 bitrates are {}",
                    n.bitrate,
                    CBR.map(|b| b.to_string()).join(", ")
                ));
            }
        }
        if let Some(l) = self.compression_level {
            if self.kind != Kind::Flac {
                return unsupported(n.compression_level);
            }
            if l > 8 {
                return Err(format!(
                    "{} {l}: FLAC levels are 0 to 8",
                    n.compression_level
                ));
            }
        }
        Ok(())
    }

    /// The output for a signal arriving as `a`. `rate_asked` says the sample rate was chosen
    /// by the user, so an impossible one is an error instead of being adjusted.
    pub fn resolve(&self, a: &Arriving, rate_asked: bool, n: &Names) -> Result<Resolved, String> {
        self.check(n)?;
        let mut notes = Vec::new();
        let mut sample_rate = None;
        let mut channels = None;
        let same_depth = |allowed: &[u32]| a.int_bits.filter(|b| allowed.contains(b));
        let format = match self.kind {
            Kind::Wav => OutputFormat::Wav {
                sample: match self.bit_depth.as_deref() {
                    Some("32f" | "float") => PcmFormat::Float32,
                    Some(b) => PcmFormat::Int(int_bits(b, &[8, 16, 24, 32], self.kind, n)?),
                    None if a.float => PcmFormat::Float32,
                    None => PcmFormat::Int(same_depth(&[8, 16, 24, 32]).unwrap_or(24)),
                },
            },
            Kind::Aiff => OutputFormat::Aiff {
                bits: match self.bit_depth.as_deref() {
                    Some(b) => int_bits(b, &[8, 16, 24, 32], self.kind, n)?,
                    None => same_depth(&[8, 16, 24, 32]).unwrap_or(24),
                },
            },
            Kind::Flac => OutputFormat::Flac {
                bits: match self.bit_depth.as_deref() {
                    Some(b) => int_bits(b, &[16, 24], self.kind, n)?,
                    None => a.int_bits.map_or(24, |b| if b <= 16 { 16 } else { 24 }),
                },
                compression_level: self.compression_level.unwrap_or(5),
            },
            Kind::Mp3 => {
                if !MP3_RATES.contains(&a.sample_rate) {
                    if rate_asked {
                        return Err(format!(
                            "{} {}: MP3 stores 8000 to 48000 Hz (44100 or 48000 for music)",
                            n.sample_rate, a.sample_rate
                        ));
                    }
                    let to = if a.sample_rate.is_multiple_of(11_025) {
                        44_100
                    } else {
                        48_000
                    };
                    notes.push(format!(
                        "MP3 cannot store {} Hz: resampled to {to} Hz",
                        a.sample_rate
                    ));
                    sample_rate = Some(to);
                }
                if a.channels > 2 {
                    notes.push(format!(
                        "MP3 holds 2 channels: the {} channels are downmixed to stereo",
                        a.channels
                    ));
                    channels = Some(ChannelMapping::Stereo);
                }
                OutputFormat::Mp3 {
                    vbr_quality: self.quality.map(|q| q.round() as u8),
                    bitrate_kbps: self.bitrate_kbps,
                }
            }
            Kind::Ogg => OutputFormat::Ogg {
                quality: self.quality.unwrap_or(5.0),
            },
        };
        Ok(Resolved {
            format,
            sample_rate,
            channels,
            notes,
        })
    }
}

/// Parse a channel option: `mono`, `stereo`, or 1-based source channels (`2,1`).
pub fn parse_channels(s: &str) -> Result<ChannelMapping, String> {
    Ok(match s.trim() {
        "mono" | "1" => ChannelMapping::Mono,
        "stereo" | "2" => ChannelMapping::Stereo,
        list => ChannelMapping::Pick(
            list.split(',')
                .map(|c| {
                    c.trim()
                        .parse::<usize>()
                        .ok()
                        .filter(|&n| n >= 1)
                        .map(|n| n - 1)
                        .ok_or_else(|| {
                            format!(
                                "channels {list}: give mono, stereo, or channel numbers from 1 (like 2,1)"
                            )
                        })
                })
                .collect::<Result<_, _>>()?,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(kind: Kind) -> FormatRequest {
        FormatRequest {
            kind,
            bit_depth: None,
            quality: None,
            bitrate_kbps: None,
            compression_level: None,
        }
    }

    #[test]
    fn checks_name_the_option_and_the_range() {
        let mut r = req(Kind::Flac);
        r.bit_depth = Some("32".into());
        let e = r.check(&TOML_NAMES).unwrap_err();
        assert!(e.contains("bit_depth 32") && e.contains("16, 24"), "{e}");
        let mut r = req(Kind::Mp3);
        r.bitrate_kbps = Some(129);
        assert!(r.check(&CLI_NAMES).unwrap_err().contains("--bitrate 129"));
        let mut r = req(Kind::Wav);
        r.quality = Some(3.0);
        assert!(r.check(&TOML_NAMES).unwrap_err().contains("does not apply"));
    }

    #[test]
    fn mp3_adjusts_rate_and_channels_with_notes() {
        let a = Arriving {
            sample_rate: 96_000,
            channels: 6,
            int_bits: Some(24),
            float: false,
        };
        let r = req(Kind::Mp3).resolve(&a, false, &CLI_NAMES).unwrap();
        assert_eq!(r.sample_rate, Some(48_000));
        assert_eq!(r.channels, Some(ChannelMapping::Stereo));
        assert_eq!(r.notes.len(), 2);
        assert!(req(Kind::Mp3).resolve(&a, true, &CLI_NAMES).is_err());
        let r = req(Kind::Flac).resolve(&a, false, &CLI_NAMES).unwrap();
        assert_eq!(
            r.format,
            OutputFormat::Flac {
                bits: 24,
                compression_level: 5
            }
        );
    }
}
