//! Ogg Vorbis through aoTuV libvorbis (`vorbis_rs`).
//!
//! Quality-mode VBR on oggenc's `-q` scale. Channels are reordered from the signal's WAVE
//! order to the order the Vorbis I specification (section 4.3.9) fixes for 3 to 8 channels.
//! The length is exact: libvorbis sets the last page's granule position to the input's frame
//! count, so decoders drop the padding of the last block.

use super::{EncodeError, Encoder};
use crate::block::{Block, SignalSpec, default_layout};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::num::{NonZeroU8, NonZeroU32};
use std::path::PathBuf;
use vorbis_rs::{VorbisBitrateManagementStrategy, VorbisEncoderBuilder, VorbisError};

/// The format's name in errors and reports.
pub const FORMAT: &str = "Ogg Vorbis";

/// Frames handed to libvorbis per call (its analysis buffer grows to the block size).
const CHUNK: usize = 4096;

/// Options of the Vorbis encoder.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VorbisOptions {
    /// oggenc's quality scale, -1 (smallest) to 10 (best); 5 is about 160 kbps for stereo.
    /// Fractions are allowed.
    pub quality: f32,
}

impl Default for VorbisOptions {
    fn default() -> Self {
        VorbisOptions { quality: 5.0 }
    }
}

/// libvorbis's encoder state is heap memory owned by this value alone, with no thread-affine
/// or global mutable state, so moving it to another thread is sound. (`vorbis_rs` holds it
/// through raw pointers, which makes its encoder `!Send`.)
struct SendVorbis(vorbis_rs::VorbisEncoder<BufWriter<File>>);
// SAFETY: see above; it is never shared (no `Sync`), only moved.
unsafe impl Send for SendVorbis {}

/// Writes an Ogg Vorbis file. Memory is bounded: blocks go to libvorbis in chunks of at most
/// 4096 frames and pages straight to the file.
pub struct VorbisEncoder {
    path: PathBuf,
    enc: SendVorbis,
    /// For each Vorbis channel, the index of the input channel that goes there.
    order: Vec<usize>,
    /// Clipped, reordered input of one chunk.
    scratch: Vec<Vec<f32>>,
}

impl std::fmt::Debug for VorbisEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VorbisEncoder")
            .field("path", &self.path)
            .field("order", &self.order)
            .finish_non_exhaustive()
    }
}

impl VorbisEncoder {
    /// Start an Ogg Vorbis stream of `spec` into `file` (`path` names it in errors).
    pub fn new(
        file: File,
        path: PathBuf,
        spec: &SignalSpec,
        opts: &VorbisOptions,
    ) -> Result<VorbisEncoder, EncodeError> {
        let unsupported = |detail: String| EncodeError::Unsupported {
            path: path.clone(),
            detail,
        };
        let channels = spec.channels();
        if channels == 0 {
            return Err(unsupported(
                "the signal has no channels: nothing to encode".into(),
            ));
        }
        if channels > 8 {
            return Err(unsupported(format!(
                "Ogg Vorbis has speaker positions for at most 8 channels, the signal has \
                 {channels}: add a channel mapping (--channels 8 or fewer)"
            )));
        }
        let rate = spec.sample_rate;
        if !(8000..=192_000).contains(&rate) {
            let to = if rate < 8000 { 8000 } else { 192_000 };
            return Err(unsupported(format!(
                "Ogg Vorbis is encoded here at 8000 to 192000 Hz, not {rate} Hz: resample \
                 (to {to} Hz or a common rate such as 48000)"
            )));
        }
        let q = opts.quality;
        if !(-1.0..=10.0).contains(&q) {
            return Err(unsupported(format!(
                "Vorbis quality is -1 (smallest) to 10 (best), not {q}"
            )));
        }
        let order = vorbis_order(&spec.layout).map_err(|e| unsupported(e.to_string()))?;

        let codec = |e: VorbisError| match e {
            VorbisError::Io(source) => EncodeError::Io {
                path: path.clone(),
                source,
            },
            e => EncodeError::Codec {
                path: path.clone(),
                format: FORMAT,
                detail: e.to_string(),
            },
        };
        let mut b = VorbisEncoderBuilder::new(
            NonZeroU32::new(rate).expect("rate was checked"),
            NonZeroU8::new(channels as u8).expect("channels were checked"),
            BufWriter::with_capacity(64 * 1024, file),
        )
        .map_err(codec)?;
        b.bitrate_management_strategy(VorbisBitrateManagementStrategy::QualityVbr {
            target_quality: q / 10.0,
        });
        let enc = b.build().map_err(|e| match e {
            // libvorbisenc has no mode for this rate, channel count and quality.
            VorbisError::LibraryError(l) => unsupported(format!(
                "libvorbis cannot encode {channels} channel(s) at {rate} Hz at quality {q}: {l}"
            )),
            e => codec(e),
        })?;
        Ok(VorbisEncoder {
            path,
            enc: SendVorbis(enc),
            order,
            scratch: vec![Vec::with_capacity(CHUNK); channels],
        })
    }

    fn error(&self, e: VorbisError) -> EncodeError {
        match e {
            VorbisError::Io(source) => EncodeError::Io {
                path: self.path.clone(),
                source,
            },
            e => EncodeError::Codec {
                path: self.path.clone(),
                format: FORMAT,
                detail: e.to_string(),
            },
        }
    }
}

impl Encoder for VorbisEncoder {
    fn write(&mut self, block: &Block) -> Result<(), EncodeError> {
        if block.channels() != self.order.len() {
            return Err(EncodeError::Codec {
                path: self.path.clone(),
                format: FORMAT,
                detail: format!(
                    "a block of {} channels reached a {}-channel encoder",
                    block.channels(),
                    self.order.len()
                ),
            });
        }
        let frames = block.frames();
        let mut start = 0;
        // Never an empty chunk: 0 frames tells libvorbis the stream has ended.
        while start < frames {
            let n = CHUNK.min(frames - start);
            for (s, &from) in self.scratch.iter_mut().zip(&self.order) {
                s.clear();
                // The trait's contract: samples outside [-1, 1] clip.
                s.extend(
                    block.plane(from)[start..start + n]
                        .iter()
                        .map(|&v| super::clip(v)),
                );
            }
            if let Err(e) = self.enc.0.encode_audio_block(&self.scratch) {
                return Err(self.error(e));
            }
            start += n;
        }
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<(), EncodeError> {
        let VorbisEncoder { path, enc, .. } = *self;
        let io = |source| EncodeError::Io {
            path: path.clone(),
            source,
        };
        let mut out = match enc.0.finish() {
            Ok(out) => out,
            Err(VorbisError::Io(e)) => return Err(io(e)),
            Err(e) => {
                return Err(EncodeError::Codec {
                    path: path.clone(),
                    format: FORMAT,
                    detail: e.to_string(),
                });
            }
        };
        out.flush().map_err(io)
    }
}

/// The speakers of each Vorbis channel for 3..=8 channels (Vorbis I, section 4.3.9); a slot
/// accepts any of its names (5.1 "side" and "back" variants both map to Vorbis's rear pair).
fn vorbis_slots(channels: usize) -> &'static [&'static [&'static str]] {
    const FL: &[&str] = &["FL"];
    const FR: &[&str] = &["FR"];
    const FC: &[&str] = &["FC"];
    const LFE: &[&str] = &["LFE"];
    const RL: &[&str] = &["BL", "SL"];
    const RR: &[&str] = &["BR", "SR"];
    const SL: &[&str] = &["SL", "BL"];
    const SR: &[&str] = &["SR", "BR"];
    const BC: &[&str] = &["BC"];
    const BL: &[&str] = &["BL"];
    const BR: &[&str] = &["BR"];
    match channels {
        3 => &[FL, FC, FR],
        4 => &[FL, FR, RL, RR],
        5 => &[FL, FC, FR, RL, RR],
        6 => &[FL, FC, FR, RL, RR, LFE],
        7 => &[FL, FC, FR, SL, SR, BC, LFE],
        8 => &[FL, FC, FR, SL, SR, BL, BR, LFE],
        _ => &[],
    }
}

/// A channel layout Vorbis has no order for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "Ogg Vorbis has no place for the layout {layout} in {channels} channels (it expects {expected}): add a channel mapping"
)]
pub struct LayoutError {
    layout: String,
    channels: usize,
    expected: String,
}

/// For each Vorbis channel, the input channel that goes there. Mono and stereo pass through;
/// unnamed channels (`CH1`...) are taken to be in the conventional WAVE order for the count
/// (6.1 as `FL FR FC LFE BC SL SR`).
fn vorbis_order(layout: &[String]) -> Result<Vec<usize>, LayoutError> {
    let n = layout.len();
    if n <= 2 {
        return Ok((0..n).collect());
    }
    let unnamed = layout.iter().all(|l| l.starts_with("CH"));
    let names: Vec<String> = if !unnamed {
        layout.to_vec()
    } else if n == 7 {
        ["FL", "FR", "FC", "LFE", "BC", "SL", "SR"]
            .map(String::from)
            .to_vec()
    } else {
        default_layout(n)
    };
    let mut used = vec![false; n];
    let mut order = Vec::with_capacity(n);
    for slot in vorbis_slots(n) {
        // The first name of a slot wins over its alternatives (7.1: SL to side, BL to rear).
        let found = slot
            .iter()
            .find_map(|want| (0..n).find(|&i| !used[i] && names[i] == *want));
        match found {
            Some(i) => {
                used[i] = true;
                order.push(i);
            }
            None => {
                return Err(LayoutError {
                    layout: layout.join(" "),
                    channels: n,
                    expected: vorbis_slots(n)
                        .iter()
                        .map(|s| s[0])
                        .collect::<Vec<_>>()
                        .join(" "),
                });
            }
        }
    }
    Ok(order)
}

/// Ogg Vorbis (libvorbis) in the format registry.
pub struct VorbisCodec;

/// The registered Ogg Vorbis codec.
pub static CODEC: VorbisCodec = VorbisCodec;

static ABOUT: crate::formats::CodecInfo = crate::formats::CodecInfo {
    id: "ogg",
    name: FORMAT,
    names: &["ogg", "oga", "vorbis"],
    extension: "ogg",
    writes: &["ogg_vorbis"],
    info: None,
    lossy: true,
    options: &[crate::formats::OptionSpec {
        opt: crate::formats::Opt::Quality,
        values: crate::formats::Values::Range {
            min: -1.0,
            max: 10.0,
            integer: false,
        },
        says: "Vorbis quality runs from -1 to 10",
    }],
    exclusive: None,
    constraints: crate::formats::Constraints::ANY,
    tags: crate::formats::TagStyle::Lofty {
        file_type: lofty::file::FileType::Vorbis,
        tag_type: lofty::tag::TagType::VorbisComments,
    },
    settings: "quality -1 to 10",
    minute_bytes: 160_000 / 8 * 60,
    bext: false,
};

impl crate::formats::OutputCodec for VorbisCodec {
    fn about(&self) -> &'static crate::formats::CodecInfo {
        &ABOUT
    }
    fn settle(
        &self,
        asked: &crate::formats::Request,
        _arriving: &crate::formats::Arriving,
    ) -> crate::formats::Settings {
        crate::formats::Settings {
            quality: Some(asked.quality.unwrap_or(5.0)),
            ..Default::default()
        }
    }
    fn describe(&self, s: &crate::formats::Settings) -> String {
        format!("Ogg Vorbis q{}", s.quality.unwrap_or(5.0))
    }
    fn create(
        &self,
        s: &crate::formats::Settings,
        file: File,
        path: &std::path::Path,
        spec: &SignalSpec,
        _bext: Option<crate::riff::Bext>,
    ) -> Result<Box<dyn Encoder>, EncodeError> {
        Ok(Box::new(VorbisEncoder::new(
            file,
            path.to_path_buf(),
            spec,
            &VorbisOptions {
                quality: s.quality.unwrap_or(5.0),
            },
        )?))
    }
}

#[cfg(test)]
mod tests {
    use super::vorbis_order;

    fn order(names: &[&str]) -> Result<Vec<usize>, super::LayoutError> {
        vorbis_order(&names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn wave_to_vorbis_order() {
        assert_eq!(order(&["FC"]).unwrap(), [0]);
        assert_eq!(order(&["FL", "FR"]).unwrap(), [0, 1]);
        assert_eq!(order(&["FL", "FR", "FC"]).unwrap(), [0, 2, 1]);
        assert_eq!(order(&["FL", "FR", "BL", "BR"]).unwrap(), [0, 1, 2, 3]);
        assert_eq!(
            order(&["FL", "FR", "FC", "BL", "BR"]).unwrap(),
            [0, 2, 1, 3, 4]
        );
        let six = [0, 2, 1, 4, 5, 3];
        assert_eq!(order(&["FL", "FR", "FC", "LFE", "BL", "BR"]).unwrap(), six);
        assert_eq!(order(&["FL", "FR", "FC", "LFE", "SL", "SR"]).unwrap(), six);
        assert_eq!(
            order(&["FL", "FR", "FC", "LFE", "BC", "SL", "SR"]).unwrap(),
            [0, 2, 1, 5, 6, 4, 3]
        );
        let eight = [0, 2, 1, 6, 7, 4, 5, 3];
        assert_eq!(
            order(&["FL", "FR", "FC", "LFE", "BL", "BR", "SL", "SR"]).unwrap(),
            eight
        );
        // Unnamed channels: the WAVE convention for the count.
        assert_eq!(
            order(&["CH1", "CH2", "CH3", "CH4", "CH5", "CH6"]).unwrap(),
            six
        );
        assert_eq!(
            order(&["CH1", "CH2", "CH3", "CH4", "CH5", "CH6", "CH7", "CH8"]).unwrap(),
            eight
        );
        assert_eq!(
            order(&["CH1", "CH2", "CH3", "CH4", "CH5", "CH6", "CH7"]).unwrap(),
            [0, 2, 1, 5, 6, 4, 3]
        );
    }

    #[test]
    fn layouts_vorbis_cannot_place() {
        let e = order(&["FL", "FR", "LFE"]).unwrap_err().to_string();
        assert!(e.contains("FL FR LFE") && e.contains("FL FC FR"), "{e}");
        assert!(order(&["FL", "FR", "FC", "LFE"]).is_err());
    }
}
