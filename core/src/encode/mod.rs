//! Encoders: one trait, one module per format. Every encoder writes into a temporary file
//! beside the destination ([`AtomicFile`]); only a finished, tagged file is renamed into place,
//! so a failed encode never leaves a partial file under the destination's name.

use crate::block::Block;

pub use crate::formats::{EncodeError, Encoder, PcmFormat};
use crate::formats::{FORMATS, Listed, OutputCodec, OutputFormat, Settings};
pub use crate::io::{io_cause, same_io_error};
use std::fs::File;

#[cfg(feature = "aac")]
pub mod aac;
pub mod aiff;
pub mod alac;
pub mod flac;
pub mod m4a;
#[cfg(feature = "mp3")]
pub mod mp3;
#[cfg(feature = "opus")]
pub mod opus;
pub mod tags;
#[cfg(feature = "vorbis")]
pub mod vorbis;
pub mod wav;

/// The output formats Sluice writes, in the order they are listed: the one place a codec is
/// registered (see [`crate::formats::OutputCodec`]). MP3 (LAME), Vorbis (libvorbis), Opus
/// (libopus) and AAC (FDK) come with the `mp3`, `vorbis`, `opus` and `aac` features, on by
/// default; the plugin, which records WAV and FLAC,
/// builds without them.
pub static CODECS: &[&dyn crate::formats::OutputCodec] = &[
    &wav::CODEC,
    &aiff::CODEC,
    &flac::CODEC,
    #[cfg(feature = "mp3")]
    &mp3::CODEC,
    #[cfg(feature = "vorbis")]
    &vorbis::CODEC,
    #[cfg(feature = "opus")]
    &opus::CODEC,
    #[cfg(feature = "aac")]
    &aac::CODEC,
    #[cfg(feature = "aac")]
    &aac::CODEC_HE,
    #[cfg(feature = "aac")]
    &aac::CODEC_HE_V2,
    &alac::CODEC,
];

/// A sample for a lossy encoder's float input: full scale clips (the [`Encoder`] contract),
/// NaN is silence.
#[cfg(any(feature = "mp3", feature = "vorbis", feature = "opus", feature = "aac"))]
#[inline]
pub(crate) fn clip(v: f32) -> f32 {
    if v.is_nan() { 0.0 } else { v.clamp(-1.0, 1.0) }
}

/// The registered codecs, in the order they are listed.
pub fn codecs() -> impl Iterator<Item = &'static dyn OutputCodec> {
    CODECS.iter().copied()
}

/// An output format read back as serialized: `format` (a registered codec's id) beside the
/// settings. Here, beside the registry it searches, not in `formats` (a layer below).
impl<'de> serde::Deserialize<'de> for OutputFormat {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        struct Flat {
            format: String,
            #[serde(flatten)]
            settings: Settings,
        }
        let f = Flat::deserialize(d)?;
        let codec = codecs()
            .find(|c| c.id() == f.format)
            .ok_or_else(|| serde::de::Error::custom(format!("no codec {:?}", f.format)))?;
        Ok(OutputFormat::new(codec, f.settings))
    }
}

/// The codec a format name or file extension selects (case-insensitive).
pub fn codec(name: &str) -> Option<&'static dyn OutputCodec> {
    let name = name.to_ascii_lowercase();
    codecs().find(|c| c.id() == name || c.about().names.contains(&name.as_str()))
}

/// The codecs' ids for messages: "wav, aiff, flac, mp3 or ogg".
pub fn codec_names() -> String {
    let ids: Vec<&str> = codecs().map(|c| c.id()).collect();
    match ids.split_last() {
        None => String::new(),
        Some((last, [])) => last.to_string(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

/// The format `name` (an id, name or extension) selects, with `settings`; `None` where no
/// registered codec answers to it (MP3 and Vorbis in a build without them).
pub fn named(name: &str, settings: Settings) -> Option<OutputFormat> {
    codec(name).map(|c| OutputFormat::new(c, settings))
}

/// Every format Sluice knows of, with what it decodes and encodes.
pub fn formats() -> Vec<Listed> {
    let known = FORMATS.iter();
    let new = codecs()
        .filter_map(|c| c.about().info)
        .filter(|i| crate::formats::by_id(i.id).is_none());
    known
        .chain(new)
        .map(|info| Listed {
            info,
            encode: codecs().any(|c| c.about().writes.contains(&info.id)),
        })
        .collect()
}

/// Interleave `block` into `out` as little- or big-endian PCM.
pub(crate) fn interleave(
    block: &Block,
    fmt: PcmFormat,
    big_endian: bool,
    unsigned8: bool,
    out: &mut Vec<u8>,
) {
    let frames = block.frames();
    let planes = block.planes();
    out.clear();
    out.reserve(frames * planes.len() * fmt.bytes());
    // The format is decided once; the (inlined) loop only converts and stores.
    #[inline(always)]
    fn each(
        frames: usize,
        planes: &[Vec<f32>],
        out: &mut Vec<u8>,
        store: impl Fn(f32, &mut Vec<u8>),
    ) {
        for i in 0..frames {
            for p in planes {
                store(p[i], out);
            }
        }
    }
    match fmt {
        PcmFormat::Float32 => each(frames, planes, out, |x, out| {
            out.extend_from_slice(&if big_endian {
                x.to_be_bytes()
            } else {
                x.to_le_bytes()
            })
        }),
        PcmFormat::Int(bits) => {
            let n = fmt.bytes();
            // Left-justify odd depths (20 bits in 3 bytes) as WAV and AIFF require.
            let shift = n as u32 * 8 - bits;
            let offset = if bits == 8 && unsigned8 { 128 } else { 0 };
            each(frames, planes, out, |x, out| {
                let v = (to_int(x, bits) + offset) << shift;
                let le = v.to_le_bytes();
                if big_endian {
                    out.extend(le[..n].iter().rev());
                } else {
                    out.extend_from_slice(&le[..n]);
                }
            })
        }
    }
}

/// A sample as a signed integer of `bits` bits: scaled by 2^(bits-1), rounded to nearest and
/// clamped to the integer range. Every integer output (WAV, AIFF, ALAC) rounds this one way, so
/// an ALAC file decodes to exactly the samples a PCM export of the same depth holds.
#[inline(always)]
pub(crate) fn to_int(x: f32, bits: u32) -> i64 {
    let scale = (1i64 << (bits - 1)) as f64;
    (f64::from(x) * scale).round().clamp(-scale, scale - 1.0) as i64
}

/// End the sound data of a chunked file (WAV, AIFF): the pad byte an odd-sized chunk needs,
/// everything flushed; returns the file, to patch the header sizes, and its length.
pub(crate) fn end_chunk_data(
    out: &mut std::io::BufWriter<File>,
    data_bytes: u64,
) -> std::io::Result<(&mut File, u64)> {
    use std::io::{Seek, Write};
    if data_bytes % 2 == 1 {
        out.write_all(&[0])?;
    }
    out.flush()?;
    let f = out.get_mut();
    let end = f.seek(std::io::SeekFrom::End(0))?;
    Ok((f, end))
}
