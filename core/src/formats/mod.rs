//! The format registry: every audio format Sluice knows of ([`FORMATS`]: what it can carry and
//! whether Sluice decodes it), and the output codecs that write them ([`OutputCodec`], registered
//! in [`crate::encode::CODECS`]). Everything that lists or parses output formats (the CLI's
//! `--format`, a pipeline's `format =`, `sluice formats`, the plugin's take formats) is derived
//! from these two lists: adding an output format is a codec module and its registration.

mod encoder;
pub mod limits;
mod output;

pub use encoder::{EncodeError, Encoder, PcmFormat, TagStyle};

pub use output::{
    Arriving, CodecInfo, Constraints, Depth, FormatError, Opt, OptionNames, OptionSpec,
    OutputCodec, OutputFormat, Request, Resolved, Settings, Values, pcm_settings, resolve,
};

use serde::Serialize;

/// One entry of the registry.
#[derive(Debug, Clone, Serialize)]
pub struct FormatInfo {
    /// Stable identifier (`"wav"`, `"flac"`, ...), used in reports and pipeline files.
    pub id: &'static str,
    /// Human-readable name.
    pub name: &'static str,
    /// File name extensions, lower case, without the dot.
    pub extensions: &'static [&'static str],
    /// `true` for lossless formats.
    pub lossless: bool,
    /// The highest sample rate in Hz the format can carry (its own limit, or for formats without
    /// a practical one, the highest rate Sluice is tested with).
    pub max_sample_rate: u32,
    /// Integer PCM bit depths the format stores (empty for lossy codecs, which have none).
    pub bit_depths: &'static [u32],
    /// IEEE float bit depths the format stores.
    pub float_bit_depths: &'static [u32],
    /// Sluice decodes this format.
    pub decode: bool,
    /// Anything a user should know.
    pub note: &'static str,
}

/// Every format Sluice knows of, decodable or not (whether it encodes: [`formats`]).
pub const FORMATS: &[FormatInfo] = &[
    FormatInfo {
        id: "wav",
        name: "WAV (RIFF WAVE, incl. BWF and WAVE_FORMAT_EXTENSIBLE)",
        extensions: &["wav", "wave", "bwf"],
        lossless: true,
        max_sample_rate: 384_000,
        bit_depths: &[8, 16, 24, 32],
        float_bit_depths: &[32, 64],
        decode: true,
        note: "files over 4 GiB need RF64/BW64",
    },
    FormatInfo {
        id: "rf64",
        name: "RF64 / BW64 (64-bit WAV)",
        extensions: &["wav", "rf64", "bw64"],
        lossless: true,
        max_sample_rate: 384_000,
        bit_depths: &[8, 16, 24, 32],
        float_bit_depths: &[32, 64],
        decode: true,
        note: "",
    },
    FormatInfo {
        id: "aiff",
        name: "AIFF / AIFF-C",
        extensions: &["aiff", "aif", "aifc"],
        lossless: true,
        max_sample_rate: 384_000,
        bit_depths: &[8, 16, 24, 32],
        float_bit_depths: &[32, 64],
        decode: true,
        note: "AIFF-C: uncompressed (NONE, sowt, fl32, fl64) only",
    },
    FormatInfo {
        id: "flac",
        name: "FLAC",
        extensions: &["flac"],
        lossless: true,
        max_sample_rate: 655_350,
        bit_depths: &[8, 12, 16, 20, 24, 32],
        float_bit_depths: &[],
        decode: true,
        note: "",
    },
    FormatInfo {
        id: "mp3",
        name: "MP3 (MPEG-1/2 Layer III)",
        extensions: &["mp3"],
        lossless: false,
        max_sample_rate: 48_000,
        bit_depths: &[],
        float_bit_depths: &[],
        decode: true,
        note: "encoder delay and padding are trimmed when a LAME/Xing header gives them",
    },
    FormatInfo {
        id: "ogg_vorbis",
        name: "Ogg Vorbis",
        extensions: &["ogg", "oga"],
        lossless: false,
        max_sample_rate: 192_000,
        bit_depths: &[],
        float_bit_depths: &[],
        decode: true,
        note: "",
    },
    FormatInfo {
        id: "m4a_aac",
        name: "MPEG-4 audio, AAC-LC (M4A/MP4)",
        extensions: &["m4a", "mp4", "aac", "m4b"],
        lossless: false,
        max_sample_rate: 96_000,
        bit_depths: &[],
        float_bit_depths: &[],
        decode: true,
        note: "HE-AAC (SBR/PS) decodes at its full rate when its configuration says so (FDK AAC); signalled only inside the stream, at the core rate",
    },
    FormatInfo {
        id: "m4a_alac",
        name: "MPEG-4 audio, Apple Lossless (ALAC)",
        extensions: &["m4a", "mp4"],
        lossless: true,
        max_sample_rate: 384_000,
        bit_depths: &[16, 20, 24, 32],
        float_bit_depths: &[],
        decode: true,
        note: "",
    },
    FormatInfo {
        id: "opus",
        name: "Ogg Opus",
        extensions: &["opus"],
        lossless: false,
        max_sample_rate: 48_000,
        bit_depths: &[],
        float_bit_depths: &[],
        decode: true,
        note: "decoded at 48 kHz (Opus's rate), its pre-skip trimmed and its output gain applied",
    },
    FormatInfo {
        id: "midi",
        name: "Standard MIDI File",
        extensions: &["mid", "midi", "smf"],
        lossless: false,
        max_sample_rate: 0,
        bit_depths: &[],
        float_bit_depths: &[],
        decode: false,
        note: "MIDI holds notes, not audio: render it to audio with a synthesizer first",
    },
];

/// A [`FORMATS`] entry as `sluice formats` lists it: with whether a registered codec writes it.
#[derive(Debug, Clone, Serialize)]
pub struct Listed {
    #[serde(flatten)]
    pub info: &'static FormatInfo,
    /// Sluice encodes this format (a codec in [`crate::encode::CODECS`] writes it; MP3 and
    /// Vorbis only in builds with the `mp3` and `vorbis` features).
    pub encode: bool,
}

/// Look up a registry entry by its id.
pub fn by_id(id: &str) -> Option<&'static FormatInfo> {
    FORMATS.iter().find(|f| f.id == id)
}

/// Registry entries whose extensions include `ext` (case-insensitive, without the dot).
pub fn by_extension(ext: &str) -> impl Iterator<Item = &'static FormatInfo> {
    let ext = ext.to_ascii_lowercase();
    FORMATS
        .iter()
        .filter(move |f| f.extensions.iter().any(|e| *e == ext))
}

/// What the first bytes of a file look like, for formats Sluice recognises but does not decode
/// and for common non-audio content, so an error can say more than "unrecognised".
pub fn sniff_non_audio(head: &[u8]) -> Option<&'static str> {
    const SIGNATURES: &[(&[u8], &str)] = &[
        (b"MThd", "a Standard MIDI File (notes, not audio)"),
        (b"\x89PNG", "a PNG image"),
        (b"\xFF\xD8\xFF", "a JPEG image"),
        (b"GIF8", "a GIF image"),
        (b"%PDF", "a PDF document"),
        (b"PK\x03\x04", "a ZIP archive"),
        (b"\x1F\x8B", "a gzip archive"),
        (b"\x7FELF", "an executable program"),
        (
            b"DSD ",
            "a DSD audio file (DSF), which Sluice does not decode",
        ),
        (b"FRM8", "a DSDIFF audio file, which Sluice does not decode"),
        (b"wvpk", "a WavPack file, which Sluice does not decode"),
        (
            b"MAC ",
            "a Monkey's Audio file, which Sluice does not decode",
        ),
    ];
    for (sig, what) in SIGNATURES {
        if head.starts_with(sig) {
            return Some(what);
        }
    }
    if looks_like_text(head) {
        return Some("text");
    }
    None
}

fn looks_like_text(head: &[u8]) -> bool {
    if head.is_empty() {
        return false;
    }
    match std::str::from_utf8(head) {
        Ok(s) => s
            .chars()
            .all(|c| !c.is_control() || matches!(c, '\n' | '\r' | '\t')),
        // A multi-byte character may be cut at the end of the sniffed window.
        Err(e) => e.error_len().is_none() && looks_like_text(&head[..e.valid_up_to()]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_extensions_lowercase() {
        for (i, a) in FORMATS.iter().enumerate() {
            for b in &FORMATS[i + 1..] {
                assert_ne!(a.id, b.id);
            }
            for e in a.extensions {
                assert_eq!(*e, e.to_ascii_lowercase());
                assert!(!e.starts_with('.'));
            }
            if a.decode {
                assert!(a.max_sample_rate >= 48_000, "{}", a.id);
            }
        }
    }

    #[test]
    fn extension_lookup() {
        let ids: Vec<_> = by_extension("M4A").map(|f| f.id).collect();
        assert_eq!(ids, ["m4a_aac", "m4a_alac"]);
        assert_eq!(by_extension("mid").next().unwrap().id, "midi");
        assert!(!by_extension("mid").next().unwrap().decode);
        assert!(by_extension("xyz").next().is_none());
    }

    #[test]
    fn sniffing() {
        assert_eq!(
            sniff_non_audio(b"MThd\0\0\0\x06"),
            Some("a Standard MIDI File (notes, not audio)")
        );
        assert_eq!(sniff_non_audio(b"hello, world\n"), Some("text"));
        assert_eq!(sniff_non_audio("caf\u{e9}".as_bytes()), Some("text"));
        assert_eq!(sniff_non_audio(b"RIFF\x24\0\0\0WAVE"), None);
        assert_eq!(sniff_non_audio(&[0xde, 0xad, 0xbe, 0xef, 0x00]), None);
    }
}
