//! Output codecs: one [`OutputCodec`] per format Sluice writes, giving its names, the options it
//! takes and their values, what signal it can hold, how it is tagged, and its encoder. The
//! checks, defaults and adjustments every caller needs (the CLI's flags, a pipeline's
//! `[[output]]`, the plugin's takes) are written once here over that description.
//!
//! Adding a format is two files: the codec module (an encoder and its `OutputCodec`) and its
//! line in [`crate::encode::CODECS`]; see docs/ARCHITECTURE.md for the walk-through.

use super::{EncodeError, Encoder, PcmFormat};
use crate::block::ChannelMapping;
use crate::block::SignalSpec;
use crate::riff::Bext;
use serde::Serialize;
use std::fmt;
use std::path::Path;

use super::TagStyle;

/// An option an output format may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opt {
    /// `8`, `16`, `24`, `32`, or `32f` (float).
    BitDepth,
    /// A codec's quality scale (MP3 VBR, Vorbis).
    Quality,
    /// A constant bitrate, kbit/s.
    Bitrate,
    /// A lossless codec's effort.
    CompressionLevel,
}

/// How options are spelled where the user wrote them, so that a message names the option as
/// it was given.
#[derive(Debug, Clone, Copy)]
pub struct OptionNames {
    pub bit_depth: &'static str,
    pub quality: &'static str,
    pub bitrate: &'static str,
    pub compression_level: &'static str,
    pub sample_rate: &'static str,
}

impl OptionNames {
    /// The command line's spelling (`sluice export`).
    pub const CLI: OptionNames = OptionNames {
        bit_depth: "--bit-depth",
        quality: "--quality",
        bitrate: "--bitrate",
        compression_level: "--compression-level",
        sample_rate: "--sample-rate",
    };
    /// The pipeline file's (and JSON's) spelling.
    pub const TOML: OptionNames = OptionNames {
        bit_depth: "bit_depth",
        quality: "quality",
        bitrate: "bitrate_kbps",
        compression_level: "compression_level",
        sample_rate: "sample_rate",
    };

    pub fn of(&self, o: Opt) -> &'static str {
        match o {
            Opt::BitDepth => self.bit_depth,
            Opt::Quality => self.quality,
            Opt::Bitrate => self.bitrate,
            Opt::CompressionLevel => self.compression_level,
        }
    }
}

/// The values an option takes.
#[derive(Debug, Clone, Copy)]
pub enum Values {
    /// Integer bit depths; with `float`, `32f` (or `float`) for 32-bit float too.
    Depths { int: &'static [u32], float: bool },
    /// A number from `min` to `max`, rounded to an integer first when `integer`.
    Range { min: f32, max: f32, integer: bool },
    /// One of these integers.
    List(&'static [u32]),
}

/// One option of a codec.
#[derive(Debug, Clone, Copy)]
pub struct OptionSpec {
    pub opt: Opt,
    pub values: Values,
    /// The values in words, for messages ("FLAC levels are 0 to 8").
    pub says: &'static str,
}

/// What signal a format can hold. A signal outside is adjusted with a note, or refused where the
/// user chose the sample rate.
#[derive(Debug, Clone, Copy, Default)]
pub struct Constraints {
    /// The sample rates it stores (`None`: any Sluice renders).
    pub sample_rates: Option<&'static [u32]>,
    /// The rate limit in words, for the error when the user asked for another rate.
    pub rates_say: &'static str,
    /// The most channels it holds (`None`: no limit of its own).
    pub max_channels: Option<usize>,
}

impl Constraints {
    /// No limit of the format's own.
    pub const ANY: Constraints = Constraints {
        sample_rates: None,
        rates_say: "",
        max_channels: None,
    };
}

/// A format's settings once resolved: the options as the encoder takes them. Fields a format
/// does not use stay `None`.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, serde::Deserialize)]
pub struct Settings {
    /// Bits per sample for PCM formats (WAV, AIFF, FLAC).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bits: Option<u32>,
    /// IEEE float samples (32-bit WAV float).
    #[serde(default, skip_serializing_if = "is_false")]
    pub float: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compression_level: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quality: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bitrate_kbps: Option<u32>,
}

fn is_false(b: &bool) -> bool {
    !b
}

impl Settings {
    /// Integer PCM of `bits`.
    pub fn int(bits: u32) -> Settings {
        Settings {
            bits: Some(bits),
            ..Settings::default()
        }
    }
    /// 32-bit float PCM.
    pub fn float32() -> Settings {
        Settings {
            bits: Some(32),
            float: true,
            ..Settings::default()
        }
    }
    /// How PCM samples are stored, for PCM formats.
    pub fn sample(&self) -> Option<PcmFormat> {
        match (self.bits, self.float) {
            (_, true) => Some(PcmFormat::Float32),
            (Some(b), false) => Some(PcmFormat::Int(b)),
            (None, false) => None,
        }
    }
}

/// The signal arriving at an output.
#[derive(Debug, Clone, Copy)]
pub struct Arriving {
    pub sample_rate: u32,
    pub channels: usize,
    /// Integer depth of the source, when it is integer PCM.
    pub int_bits: Option<u32>,
    /// The source is float PCM.
    pub float: bool,
}

/// What a codec is, as data: its names, the options it takes, the signal it holds and how its
/// files are tagged. One `static` per codec module, returned by [`OutputCodec::about`].
#[derive(Debug)]
pub struct CodecInfo {
    /// Stable identifier, used in reports (`"format": "flac"`).
    pub id: &'static str,
    /// The name in messages ("Ogg Vorbis").
    pub name: &'static str,
    /// Names and file extensions that select it (case-insensitive), the id among them.
    pub names: &'static [&'static str],
    /// The extension its files get.
    pub extension: &'static str,
    /// The [`super::FORMATS`] entries it writes.
    pub writes: &'static [&'static str],
    /// The entry of a format [`super::FORMATS`] does not know (listed by `sluice formats`).
    pub info: Option<&'static super::FormatInfo>,
    /// Whether the codec changes the signal (its output is measured decoded).
    pub lossy: bool,
    /// The options it takes.
    pub options: &'static [OptionSpec],
    /// Two of its options that cannot be given together, and why.
    pub exclusive: Option<(Opt, Opt, &'static str)>,
    /// What signal it holds.
    pub constraints: Constraints,
    /// How its files are tagged.
    pub tags: TagStyle,
    /// Its settings in a phrase, for listings (`GET /api/audio/formats/{name}`).
    pub settings: &'static str,
    /// About how many bytes a minute of 44.1 kHz stereo takes at its default settings.
    pub minute_bytes: u64,
    /// Whether it carries a Broadcast Wave `bext` chunk.
    pub bext: bool,
}

impl CodecInfo {
    /// The bit depths its `BitDepth` option takes: integer depths and whether float is one.
    pub fn depths(&self) -> (&'static [u32], bool) {
        self.options
            .iter()
            .find_map(|o| match o.values {
                Values::Depths { int, float } if o.opt == Opt::BitDepth => Some((int, float)),
                _ => None,
            })
            .unwrap_or((&[], false))
    }
}

/// A format Sluice writes: its description ([`CodecInfo`]) and the behaviour that is code.
/// Implemented once per codec module and registered in [`crate::encode::CODECS`].
pub trait OutputCodec: Send + Sync + 'static {
    /// What the codec is, as data.
    fn about(&self) -> &'static CodecInfo;
    /// Stable identifier, used in reports (`"format": "flac"`).
    fn id(&self) -> &'static str {
        self.about().id
    }
    /// The name in messages ("Ogg Vorbis").
    fn name(&self) -> &'static str {
        self.about().name
    }
    /// The settings for `asked` (already checked against [`OutputCodec::options`]) and the
    /// signal arriving (already within [`OutputCodec::constraints`]): defaults follow the source.
    fn settle(&self, asked: &Request, arriving: &Arriving) -> Settings;
    /// The format and settings in words ("FLAC 24-bit (level 5)").
    fn describe(&self, settings: &Settings) -> String;
    /// The frequency above which the codec removes the signal (a lossy codec's low-pass), Hz,
    /// for these settings and `spec`; `None` when it keeps the whole band. A band-limited
    /// signal rings over sharp peaks, so a true-peak ceiling held before the encoder is held
    /// on the low-passed signal too (see `Stage::expect_codec_lowpass`).
    fn lowpass_hz(&self, settings: &Settings, spec: &SignalSpec) -> Option<f64> {
        let _ = (settings, spec);
        None
    }
    /// Its encoder, writing `spec` into `file` (`path` names it in errors).
    fn create(
        &self,
        settings: &Settings,
        file: std::fs::File,
        path: &Path,
        spec: &SignalSpec,
        bext: Option<Bext>,
    ) -> Result<Box<dyn Encoder>, EncodeError>;
}

/// An output's format: its codec and settings.
#[derive(Clone, Copy)]
pub struct OutputFormat {
    pub codec: &'static dyn OutputCodec,
    pub settings: Settings,
}

impl OutputFormat {
    pub fn new(codec: &'static dyn OutputCodec, settings: Settings) -> OutputFormat {
        OutputFormat { codec, settings }
    }
    pub fn id(&self) -> &'static str {
        self.codec.id()
    }
    /// The format's name, as the encoders' errors give it.
    pub fn name(&self) -> &'static str {
        self.codec.name()
    }
    /// The usual file extension.
    pub fn extension(&self) -> &'static str {
        self.codec.about().extension
    }
    /// Whether the format's codec changes the signal (MP3, Vorbis): its output is measured as
    /// decoded.
    pub fn lossy(&self) -> bool {
        self.codec.about().lossy
    }
    /// The codec's low-pass for `spec`, Hz (see [`OutputCodec::lowpass_hz`]).
    pub fn lowpass_hz(&self, spec: &SignalSpec) -> Option<f64> {
        self.codec.lowpass_hz(&self.settings, spec)
    }
    /// Integer bit depth the format stores, where it has one (quantization target).
    pub fn integer_bits(&self) -> Option<u32> {
        match self.settings.sample() {
            Some(PcmFormat::Int(b)) => Some(b),
            _ => None,
        }
    }
    /// The format and settings in words ("MP3 VBR V2").
    pub fn describe(&self) -> String {
        self.codec.describe(&self.settings)
    }
    /// The encoder for this format writing `spec` into `file`.
    pub fn create(
        &self,
        file: std::fs::File,
        path: &Path,
        spec: &SignalSpec,
        bext: Option<Bext>,
    ) -> Result<Box<dyn Encoder>, EncodeError> {
        self.codec.create(&self.settings, file, path, spec, bext)
    }
}

impl fmt::Debug for OutputFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutputFormat")
            .field("codec", &self.codec.id())
            .field("settings", &self.settings)
            .finish()
    }
}

impl PartialEq for OutputFormat {
    fn eq(&self, other: &Self) -> bool {
        self.codec.id() == other.codec.id() && self.settings == other.settings
    }
}

impl Serialize for OutputFormat {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Flat<'a> {
            format: &'static str,
            #[serde(flatten)]
            settings: &'a Settings,
        }
        Flat {
            format: self.codec.id(),
            settings: &self.settings,
        }
        .serialize(s)
    }
}

/// What the user asked of an output's format, unchecked.
#[derive(Clone)]
pub struct Request {
    pub codec: &'static dyn OutputCodec,
    /// `8`, `16`, `24`, `32`, or `32f` / `float`.
    pub bit_depth: Option<String>,
    pub quality: Option<f32>,
    pub bitrate_kbps: Option<u32>,
    pub compression_level: Option<u8>,
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("codec", &self.codec.id())
            .field("bit_depth", &self.bit_depth)
            .field("quality", &self.quality)
            .field("bitrate_kbps", &self.bitrate_kbps)
            .field("compression_level", &self.compression_level)
            .finish()
    }
}

/// A bit depth as asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    Int(u32),
    Float,
}

impl Depth {
    pub fn parse(s: &str) -> Option<Depth> {
        match s.trim().to_ascii_lowercase().as_str() {
            "32f" | "float" => Some(Depth::Float),
            n => n.parse().ok().map(Depth::Int),
        }
    }
}

impl Request {
    /// The codec with no options given.
    pub fn new(codec: &'static dyn OutputCodec) -> Request {
        Request {
            codec,
            bit_depth: None,
            quality: None,
            bitrate_kbps: None,
            compression_level: None,
        }
    }

    /// The bit depth asked, once checked.
    pub fn depth(&self) -> Option<Depth> {
        self.bit_depth.as_deref().and_then(Depth::parse)
    }

    /// Check the options against the codec, without a source.
    pub fn check(&self) -> Result<(), FormatError> {
        let c = self.codec;
        let given: [(Opt, Option<String>); 4] = [
            (Opt::BitDepth, self.bit_depth.clone()),
            (Opt::Quality, self.quality.map(|q| q.to_string())),
            (Opt::Bitrate, self.bitrate_kbps.map(|b| b.to_string())),
            (
                Opt::CompressionLevel,
                self.compression_level.map(|l| l.to_string()),
            ),
        ];
        for (opt, value) in given {
            let Some(value) = value else { continue };
            let Some(spec) = c.about().options.iter().find(|s| s.opt == opt) else {
                return Err(FormatError::NotApplicable {
                    option: opt,
                    format: c.name(),
                    takes: c.about().options.iter().map(|s| s.opt).collect(),
                });
            };
            let ok = match spec.values {
                Values::Depths { int, float } => match Depth::parse(&value) {
                    Some(Depth::Float) => float,
                    Some(Depth::Int(b)) => int.contains(&b),
                    None => false,
                },
                Values::Range { min, max, integer } => {
                    let v: f32 = value.parse().unwrap_or(f32::NAN);
                    let v = if integer { v.round() } else { v };
                    (min..=max).contains(&v)
                }
                Values::List(list) => value.parse().is_ok_and(|v| list.contains(&v)),
            };
            if !ok {
                return Err(FormatError::Value {
                    option: opt,
                    value,
                    says: spec.says,
                });
            }
        }
        if let Some((a, b, says)) = c.about().exclusive {
            let has = |o: Opt| match o {
                Opt::BitDepth => self.bit_depth.is_some(),
                Opt::Quality => self.quality.is_some(),
                Opt::Bitrate => self.bitrate_kbps.is_some(),
                Opt::CompressionLevel => self.compression_level.is_some(),
            };
            if has(a) && has(b) {
                return Err(FormatError::Exclusive { a, b, says });
            }
        }
        Ok(())
    }
}

/// The resolved output, with what has to happen to the signal first.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub format: OutputFormat,
    /// Resample to this rate for this output (the format's rates).
    pub sample_rate: Option<u32>,
    /// Map the channels for this output (the format's channel limit).
    pub channels: Option<ChannelMapping>,
    /// What was adjusted, in words.
    pub notes: Vec<String>,
}

/// The output for `asked` and a signal arriving as `a`. `rate_asked` says the user chose the
/// sample rate, so a rate the format cannot store is an error instead of being adjusted.
pub fn resolve(asked: &Request, a: &Arriving, rate_asked: bool) -> Result<Resolved, FormatError> {
    asked.check()?;
    let c = asked.codec;
    let k = c.about().constraints;
    let mut notes = Vec::new();
    let mut arriving = *a;
    let mut sample_rate = None;
    let mut channels = None;
    if let Some(rates) = k.sample_rates
        && !rates.contains(&a.sample_rate)
    {
        if rate_asked {
            return Err(FormatError::Rate {
                rate: a.sample_rate,
                says: k.rates_say,
            });
        }
        // The highest rate of the same family (44.1 kHz or 48 kHz), else the highest.
        let family = |r: u32| r.is_multiple_of(11_025);
        let to = rates
            .iter()
            .copied()
            .filter(|&r| family(r) == family(a.sample_rate))
            .max()
            .or_else(|| rates.iter().copied().max())
            .unwrap_or(a.sample_rate);
        notes.push(format!(
            "{} cannot store {} Hz: resampled to {to} Hz",
            c.name(),
            a.sample_rate
        ));
        sample_rate = Some(to);
        arriving.sample_rate = to;
    }
    if let Some(max) = k.max_channels
        && a.channels > max
    {
        let (mapping, to) = match max {
            1 => (ChannelMapping::Mono, "mono".to_string()),
            2 => (ChannelMapping::Stereo, "stereo".to_string()),
            n => (
                ChannelMapping::Pick((0..n).collect()),
                format!("the first {n}"),
            ),
        };
        notes.push(format!(
            "{} holds {max} channels: the {} channels are downmixed to {to}",
            c.name(),
            a.channels
        ));
        channels = Some(mapping);
        arriving.channels = max;
    }
    Ok(Resolved {
        format: OutputFormat::new(c, c.settle(asked, &arriving)),
        sample_rate,
        channels,
        notes,
    })
}

/// A PCM codec's bit depth: as asked, else the source's where the codec stores it, else 24;
/// a float source stays float where the codec stores float.
pub fn pcm_settings(asked: &Request, a: &Arriving, codec: &CodecInfo) -> Settings {
    let (int, float) = codec.depths();
    match asked.depth() {
        Some(Depth::Float) if float => Settings::float32(),
        Some(Depth::Int(b)) if int.contains(&b) => Settings::int(b),
        _ if float && a.float && asked.bit_depth.is_none() => Settings::float32(),
        _ => Settings::int(a.int_bits.filter(|b| int.contains(b)).unwrap_or(24)),
    }
}

/// Why a format request cannot be met.
#[derive(Debug, Clone, PartialEq)]
pub enum FormatError {
    /// An option the format does not take.
    NotApplicable {
        option: Opt,
        format: &'static str,
        takes: Vec<Opt>,
    },
    /// A value outside what the option takes.
    Value {
        option: Opt,
        value: String,
        says: &'static str,
    },
    /// Two options that exclude each other.
    Exclusive { a: Opt, b: Opt, says: &'static str },
    /// A chosen sample rate the format cannot store.
    Rate { rate: u32, says: &'static str },
}

impl FormatError {
    /// The message with the options spelled as the user wrote them.
    pub fn message(&self, n: &OptionNames) -> String {
        match self {
            FormatError::NotApplicable {
                option,
                format,
                takes,
            } => {
                let takes: Vec<&str> = takes.iter().map(|o| n.of(*o)).collect();
                format!(
                    "{} does not apply to {format} ({})",
                    n.of(*option),
                    if takes.is_empty() {
                        "it takes no options".to_string()
                    } else {
                        format!("its options: {}", takes.join(", "))
                    }
                )
            }
            FormatError::Value {
                option,
                value,
                says,
            } => format!("{} {value}: {says}", n.of(*option)),
            FormatError::Exclusive { a, b, says } => {
                format!("{} and {} exclude each other: {says}", n.of(*a), n.of(*b))
            }
            FormatError::Rate { rate, says } => format!("{} {rate}: {says}", n.sample_rate),
        }
    }
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message(&OptionNames::TOML))
    }
}

impl std::error::Error for FormatError {}

#[cfg(test)]
mod tests {
    use super::*;
    // The registry's codecs (tests sit above every layer).
    use crate::encode::{codec, codec_names, codecs};

    fn codec_(name: &str) -> &'static dyn OutputCodec {
        codec(name).unwrap()
    }

    #[test]
    fn names_and_extensions_select_codecs() {
        assert_eq!(codec("WAV").unwrap().id(), "wav");
        assert_eq!(codec("bwf").unwrap().id(), "wav");
        assert_eq!(codec("aif").unwrap().id(), "aiff");
        assert_eq!(codec("flac").unwrap().id(), "flac");
        assert!(codec("nosuchcodec").is_none());
        assert!(codec_names().starts_with("wav, aiff, flac"));
        // Every codec's own names select it, and no name selects two.
        for c in codecs() {
            for n in c.about().names {
                assert_eq!(codec(n).unwrap().id(), c.id(), "{n}");
            }
            for id in c.about().writes {
                assert!(
                    super::super::by_id(id).is_some()
                        || c.about().info.is_some_and(|i| i.id == *id),
                    "{}: writes {id}, which has no entry",
                    c.id()
                );
            }
        }
    }

    #[test]
    fn checks_name_the_option_and_the_range() {
        let mut r = Request::new(codec_("flac"));
        r.bit_depth = Some("32".into());
        let e = r.check().unwrap_err().message(&OptionNames::TOML);
        assert!(e.contains("bit_depth 32") && e.contains("16, 24"), "{e}");
        let mut r = Request::new(codec_("flac"));
        r.compression_level = Some(9);
        let e = r.check().unwrap_err().message(&OptionNames::CLI);
        assert_eq!(e, "--compression-level 9: FLAC levels are 0 to 8");
        let mut r = Request::new(codec_("wav"));
        r.quality = Some(3.0);
        let e = r.check().unwrap_err().message(&OptionNames::TOML);
        assert!(
            e.contains("does not apply") && e.contains("bit_depth"),
            "{e}"
        );
        let mut r = Request::new(codec_("wav"));
        r.bit_depth = Some("32f".into());
        r.check().unwrap();
        let mut r = Request::new(codec_("aiff"));
        r.bit_depth = Some("32f".into());
        assert!(r.check().is_err());
    }

    #[cfg(feature = "mp3")]
    #[test]
    fn mp3_checks_and_adjusts_rate_and_channels_with_notes() {
        let mut r = Request::new(codec_("mp3"));
        r.bitrate_kbps = Some(129);
        let e = r.check().unwrap_err().message(&OptionNames::CLI);
        assert!(e.contains("--bitrate 129") && e.contains("320"), "{e}");
        r.bitrate_kbps = Some(128);
        r.quality = Some(2.0);
        let e = r.check().unwrap_err().message(&OptionNames::CLI);
        assert!(e.contains("exclude each other"), "{e}");
        let a = Arriving {
            sample_rate: 96_000,
            channels: 6,
            int_bits: Some(24),
            float: false,
        };
        let r = resolve(&Request::new(codec_("mp3")), &a, false).unwrap();
        assert_eq!(r.sample_rate, Some(48_000));
        assert_eq!(r.channels, Some(ChannelMapping::Stereo));
        assert_eq!(r.notes.len(), 2);
        let a88 = Arriving {
            sample_rate: 88_200,
            channels: 2,
            ..a
        };
        let r = resolve(&Request::new(codec_("mp3")), &a88, false).unwrap();
        assert_eq!(r.sample_rate, Some(44_100));
        assert!(r.channels.is_none());
        let e = resolve(&Request::new(codec_("mp3")), &a, true).unwrap_err();
        assert!(
            e.message(&OptionNames::CLI)
                .starts_with("--sample-rate 96000: MP3 stores")
        );
    }

    #[test]
    fn defaults_follow_the_source() {
        let a = Arriving {
            sample_rate: 96_000,
            channels: 6,
            int_bits: Some(16),
            float: false,
        };
        let flac = resolve(&Request::new(codec_("flac")), &a, false).unwrap();
        assert!(flac.sample_rate.is_none() && flac.channels.is_none());
        assert_eq!(
            flac.format.settings,
            Settings {
                compression_level: Some(5),
                ..Settings::int(16)
            }
        );
        let wav = resolve(&Request::new(codec_("wav")), &a, false).unwrap();
        assert_eq!(wav.format.integer_bits(), Some(16));
        let float = Arriving {
            int_bits: None,
            float: true,
            ..a
        };
        let wav = resolve(&Request::new(codec_("wav")), &float, false).unwrap();
        assert_eq!(wav.format.settings, Settings::float32());
        assert_eq!(wav.format.describe(), "WAV 32-bit float");
        let aiff = resolve(&Request::new(codec_("aiff")), &float, false).unwrap();
        assert_eq!(aiff.format.integer_bits(), Some(24));
        let json = serde_json::to_value(flac.format).unwrap();
        assert_eq!(json["format"], "flac");
        assert_eq!(json["bits"], 16);
        assert_eq!(json["compression_level"], 5);
    }
}
