//! Ogg Opus (RFC 7845) through libopus (`unsafe-libopus`, libopus 1.3.1 in Rust).
//!
//! 20 ms packets, VBR at a target bitrate (64 kbit/s per channel unless asked), the
//! `audio` application. Mono and stereo use channel mapping family 0; 3 to 8 channels family 1
//! (libopus's surround encoder, channels in Vorbis order; the signal arrives in WAVE order).
//! Opus codes 8, 12, 16, 24 or 48 kHz; the registry resamples other rates to 48 kHz first.
//! The length is exact: the header's pre-skip is the encoder's look-ahead, and the last
//! page's granule position ends the stream at the input's last frame, so decoders drop the
//! padding of the last packet. The header's output gain stays 0 dB; loudness gains go in
//! the `R128_*` tags (see [`crate::replaygain`]).

use super::{EncodeError, Encoder};
use crate::block::{Block, SignalSpec};
use crate::opus::{OpusHead, RATE, vorbis_to_wave};
use ogg::{PacketWriteEndInfo, PacketWriter};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use unsafe_libopus::opus_multistream_encoder_ctl;

/// The format's name in errors and reports.
pub const FORMAT: &str = "Ogg Opus";

/// The rates Opus codes.
pub const RATES: [u32; 5] = [8_000, 12_000, 16_000, 24_000, 48_000];

/// The Ogg stream's serial number (one logical stream per file; a fixed number keeps the
/// same render byte-identical on every machine).
const SERIAL: u32 = 0x534c_4943;

/// Packets per page: about a second of audio, for seeking.
const PACKETS_PER_PAGE: u32 = 50;

/// Options of the Opus encoder.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OpusOptions {
    /// Target bitrate for all channels, kbit/s (`None`: 64 per channel).
    pub bitrate_kbps: Option<u32>,
}

/// libopus's multistream encoder, owned.
struct Ms(*mut unsafe_libopus::OpusMSEncoder);

// SAFETY: the encoder state is heap memory owned by this value alone, with no thread-affine
// or global mutable state; it is moved between threads, never shared.
unsafe impl Send for Ms {}

impl Drop for Ms {
    fn drop(&mut self) {
        // SAFETY: created by opus_multistream_surround_encoder_create, dropped once.
        unsafe { unsafe_libopus::opus_multistream_encoder_destroy(self.0) }
    }
}

/// Writes an Ogg Opus file, packet by packet (memory is one packet's worth of input).
pub struct OpusEncoder {
    path: PathBuf,
    out: PacketWriter<'static, BufWriter<File>>,
    enc: Ms,
    channels: usize,
    /// For each Opus channel (Vorbis order), the input plane.
    order: Vec<usize>,
    /// Frames per packet at the input rate (20 ms).
    frame: usize,
    /// 48 kHz units per input frame.
    scale: u64,
    /// Interleaved input not yet coded.
    pending: Vec<f32>,
    /// Input frames taken, and frames coded (padding included).
    taken: u64,
    coded: u64,
    pre_skip: u64,
    packet: Vec<u8>,
    /// A coded packet held back until the next one is known, so the last can end the stream.
    held: Option<(Vec<u8>, u64)>,
    packets: u32,
}

impl std::fmt::Debug for OpusEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusEncoder")
            .field("path", &self.path)
            .field("channels", &self.channels)
            .finish_non_exhaustive()
    }
}

impl OpusEncoder {
    /// Start an Ogg Opus stream of `spec` into `file` (`path` names it in errors).
    pub fn new(
        file: File,
        path: PathBuf,
        spec: &SignalSpec,
        opts: &OpusOptions,
    ) -> Result<OpusEncoder, EncodeError> {
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
                "Ogg Opus holds at most 8 channels (mapping family 1), the signal has \
                 {channels}: add a channel mapping"
            )));
        }
        let rate = spec.sample_rate;
        if !RATES.contains(&rate) {
            return Err(unsupported(format!(
                "Opus codes 8000, 12000, 16000, 24000 or 48000 Hz, not {rate} Hz: resample"
            )));
        }
        let bitrate = opts.bitrate_kbps.unwrap_or(64 * channels as u32);
        let most = 256 * channels as u32;
        if !(6..=most).contains(&bitrate) {
            return Err(unsupported(format!(
                "an Opus bitrate of {bitrate} kbit/s: from 6 to {most} for {channels} channel(s)"
            )));
        }
        let codec = |detail: String| EncodeError::Codec {
            path: path.clone(),
            format: FORMAT,
            detail,
        };
        let family = if channels <= 2 { 0 } else { 1 };
        let (mut streams, mut coupled) = (0i32, 0i32);
        let mut mapping = vec![0u8; channels];
        let mut err = 0;
        // SAFETY: `mapping` has room for `channels` entries; the out-pointers are valid.
        let enc = unsafe {
            unsafe_libopus::opus_multistream_surround_encoder_create(
                rate as i32,
                channels as i32,
                family,
                &mut streams,
                &mut coupled,
                mapping.as_mut_ptr(),
                unsafe_libopus::OPUS_APPLICATION_AUDIO,
                &mut err,
            )
        };
        if enc.is_null() || err != unsafe_libopus::OPUS_OK {
            return Err(codec(format!(
                "libopus cannot encode {channels} channel(s) at {rate} Hz (error {err})"
            )));
        }
        let enc = Ms(enc);
        let mut lookahead = 0i32;
        // SAFETY: a valid encoder; each request takes its documented argument.
        let r = unsafe {
            let a = opus_multistream_encoder_ctl!(
                enc.0,
                unsafe_libopus::OPUS_SET_BITRATE_REQUEST,
                (bitrate * 1000) as i32
            );
            let b = opus_multistream_encoder_ctl!(
                enc.0,
                unsafe_libopus::OPUS_GET_LOOKAHEAD_REQUEST,
                &mut lookahead
            );
            a.min(b)
        };
        if r != unsafe_libopus::OPUS_OK {
            return Err(codec(format!("libopus refused its settings (error {r})")));
        }
        let scale = u64::from(RATE / rate);
        let pre_skip = lookahead as u64 * scale;
        let head = OpusHead {
            channels: channels as u8,
            pre_skip: pre_skip as u16,
            input_rate: rate,
            output_gain: 0,
            family: family as u8,
            streams: streams as u8,
            coupled: coupled as u8,
            mapping,
        };
        let mut out = PacketWriter::new(BufWriter::with_capacity(64 * 1024, file));
        let io = |source| EncodeError::Io {
            path: path.clone(),
            source,
        };
        out.write_packet(head.to_bytes(), SERIAL, PacketWriteEndInfo::EndPage, 0)
            .map_err(io)?;
        out.write_packet(opus_tags(), SERIAL, PacketWriteEndInfo::EndPage, 0)
            .map_err(io)?;
        let order = if family == 1 {
            vorbis_to_wave(channels)
        } else {
            (0..channels).collect()
        };
        let frame = rate as usize / 50;
        Ok(OpusEncoder {
            path,
            out,
            enc,
            channels,
            order,
            frame,
            scale,
            pending: Vec::with_capacity(frame * channels),
            taken: 0,
            coded: 0,
            pre_skip,
            packet: vec![0; 4000 * channels],
            held: None,
            packets: 0,
        })
    }

    fn io(&self, source: std::io::Error) -> EncodeError {
        EncodeError::Io {
            path: self.path.clone(),
            source,
        }
    }

    /// Code the pending frame (exactly one packet's worth).
    fn code(&mut self) -> Result<(), EncodeError> {
        // SAFETY: `pending` holds one frame of `channels` interleaved samples; `packet` is
        // writable for its length.
        let n = unsafe {
            unsafe_libopus::opus_multistream_encode_float(
                self.enc.0,
                self.pending.as_ptr(),
                self.frame as i32,
                self.packet.as_mut_ptr(),
                self.packet.len() as i32,
            )
        };
        if n < 0 {
            return Err(EncodeError::Codec {
                path: self.path.clone(),
                format: FORMAT,
                detail: format!("libopus failed to code a packet (error {n})"),
            });
        }
        self.pending.clear();
        self.coded += self.frame as u64;
        let granule = self.coded * self.scale;
        if let Some((p, g)) = self.held.take() {
            self.packets += 1;
            let end = if self.packets.is_multiple_of(PACKETS_PER_PAGE) {
                PacketWriteEndInfo::EndPage
            } else {
                PacketWriteEndInfo::NormalPacket
            };
            self.out
                .write_packet(p, SERIAL, end, g)
                .map_err(|e| self.io(e))?;
        }
        self.held = Some((self.packet[..n as usize].to_vec(), granule));
        Ok(())
    }
}

/// An `OpusTags` packet with Sluice as its vendor and no comments (the tags are written after
/// the encode, through lofty).
fn opus_tags() -> Vec<u8> {
    let vendor = b"Sluice (libopus 1.3.1)";
    let mut b = b"OpusTags".to_vec();
    b.extend_from_slice(&(vendor.len() as u32).to_le_bytes());
    b.extend_from_slice(vendor);
    b.extend_from_slice(&0u32.to_le_bytes());
    b
}

impl Encoder for OpusEncoder {
    fn write(&mut self, block: &Block) -> Result<(), EncodeError> {
        if block.channels() != self.channels {
            return Err(EncodeError::Codec {
                path: self.path.clone(),
                format: FORMAT,
                detail: format!(
                    "a block of {} channels reached a {}-channel encoder",
                    block.channels(),
                    self.channels
                ),
            });
        }
        let planes: Vec<&[f32]> = self.order.iter().map(|&i| block.plane(i)).collect();
        for i in 0..block.frames() {
            for p in &planes {
                self.pending.push(super::clip(p[i]));
            }
            if self.pending.len() == self.frame * self.channels {
                self.code()?;
            }
        }
        self.taken += block.frames() as u64;
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<(), EncodeError> {
        // Silence until the look-ahead has let every input frame out.
        let end = self.taken * self.scale + self.pre_skip;
        while self.coded * self.scale < end || !self.pending.is_empty() {
            self.pending.resize(self.frame * self.channels, 0.0);
            self.code()?;
        }
        if let Some((p, _)) = self.held.take() {
            self.out
                .write_packet(p, SERIAL, PacketWriteEndInfo::EndStream, end)
                .map_err(|e| self.io(e))?;
        }
        let path = self.path.clone();
        let OpusEncoder { out, .. } = *self;
        out.into_inner()
            .flush()
            .map_err(|source| EncodeError::Io { path, source })
    }
}

/// Ogg Opus (libopus) in the format registry.
pub struct OpusCodec;

/// The registered Ogg Opus codec.
pub static CODEC: OpusCodec = OpusCodec;

static ABOUT: crate::formats::CodecInfo = crate::formats::CodecInfo {
    id: "opus",
    name: FORMAT,
    names: &["opus"],
    extension: "opus",
    writes: &["opus"],
    info: None,
    lossy: true,
    options: &[crate::formats::OptionSpec {
        opt: crate::formats::Opt::Bitrate,
        values: crate::formats::Values::Range {
            min: 6.0,
            max: 2048.0,
            integer: true,
        },
        says: "Opus bitrates run from 6 to 256 kbit/s per channel (VBR target)",
    }],
    exclusive: None,
    constraints: crate::formats::Constraints {
        sample_rates: Some(&RATES),
        rates_say: "Opus codes 8000, 12000, 16000, 24000 or 48000 Hz",
        max_channels: Some(8),
    },
    tags: crate::formats::TagStyle::Lofty {
        file_type: lofty::file::FileType::Opus,
        tag_type: lofty::tag::TagType::VorbisComments,
    },
    settings: "VBR at a target bitrate (kbps; default 64 per channel)",
    minute_bytes: 128_000 / 8 * 60,
    bext: false,
};

impl crate::formats::OutputCodec for OpusCodec {
    fn about(&self) -> &'static crate::formats::CodecInfo {
        &ABOUT
    }
    fn settle(
        &self,
        asked: &crate::formats::Request,
        _arriving: &crate::formats::Arriving,
    ) -> crate::formats::Settings {
        crate::formats::Settings {
            bitrate_kbps: asked.bitrate_kbps,
            ..Default::default()
        }
    }
    fn describe(&self, s: &crate::formats::Settings) -> String {
        match s.bitrate_kbps {
            Some(k) => format!("Ogg Opus {k} kbit/s"),
            None => "Ogg Opus 64 kbit/s per channel".to_string(),
        }
    }
    fn create(
        &self,
        s: &crate::formats::Settings,
        file: File,
        path: &std::path::Path,
        spec: &SignalSpec,
        _bext: Option<crate::riff::Bext>,
    ) -> Result<Box<dyn Encoder>, EncodeError> {
        Ok(Box::new(OpusEncoder::new(
            file,
            path.to_path_buf(),
            spec,
            &OpusOptions {
                bitrate_kbps: s.bitrate_kbps,
            },
        )?))
    }
}
