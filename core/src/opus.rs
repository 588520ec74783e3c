//! Opus (RFC 6716) in Ogg (RFC 7845): the identification header, and a decoder for
//! symphonia's Ogg reader through libopus (the `unsafe-libopus` translation of libopus 1.3.1,
//! which needs no C toolchain).
//!
//! The Ogg reader gives the stream's pre-skip as the track's delay and trims it (and the
//! last page's padding, from its granule position) off the packets; the decoder applies the
//! header's output gain (libopus's `OPUS_SET_GAIN`), as RFC 7845 section 5.1 requires of
//! every player. Channel mapping family 0 (mono, stereo) and 1 (Vorbis order, up to 8
//! channels) are decoded; the channels come out in WAVE order, as every other decoder here
//! gives them.

use symphonia::core::audio::{
    AsGenericAudioBufferRef, AudioBuffer, AudioMut, AudioSpec, GenericAudioBufferRef,
};
use symphonia::core::codecs::CodecInfo;
use symphonia::core::codecs::audio::well_known::CODEC_ID_OPUS;
use symphonia::core::codecs::audio::{
    AudioCodecParameters, AudioDecoder, AudioDecoderOptions, FinalizeResult,
};
use symphonia::core::codecs::registry::{RegisterableAudioDecoder, SupportedAudioCodec};
use symphonia::core::errors::{Error as SymError, Result as SymResult};
use symphonia::core::packet::PacketRef;
use unsafe_libopus::opus_multistream_decoder_ctl;

/// Opus always decodes at 48 kHz.
pub const RATE: u32 = 48_000;

/// The longest packet: 120 ms at 48 kHz.
const MAX_FRAMES: usize = 5760;

/// The identification header (`OpusHead`, RFC 7845 section 5.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpusHead {
    pub channels: u8,
    /// Samples (at 48 kHz) to drop from the start of the decoded stream.
    pub pre_skip: u16,
    /// The input's sample rate, for information only.
    pub input_rate: u32,
    /// Gain to apply on decoding, Q7.8 dB.
    pub output_gain: i16,
    /// Channel mapping family: 0 (mono or stereo) or 1 (Vorbis order, up to 8 channels).
    pub family: u8,
    pub streams: u8,
    pub coupled: u8,
    /// For each output channel, the decoded channel it takes (255: silence).
    pub mapping: Vec<u8>,
}

/// A header that is not one this decoder reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Opus header: {0}")]
pub struct HeadError(pub String);

impl OpusHead {
    pub fn parse(b: &[u8]) -> Result<OpusHead, HeadError> {
        let bad = |s: &str| Err(HeadError(s.to_string()));
        if b.len() < 19 || &b[..8] != b"OpusHead" {
            return bad("not an OpusHead packet");
        }
        if b[8] >> 4 != 0 {
            return bad("an incompatible version");
        }
        let channels = b[9];
        if channels == 0 {
            return bad("no channels");
        }
        let pre_skip = u16::from_le_bytes([b[10], b[11]]);
        let input_rate = u32::from_le_bytes([b[12], b[13], b[14], b[15]]);
        let output_gain = i16::from_le_bytes([b[16], b[17]]);
        let family = b[18];
        let (streams, coupled, mapping) = match family {
            0 => {
                if channels > 2 {
                    return bad("mapping family 0 with more than 2 channels");
                }
                (1, channels - 1, (0..channels).collect())
            }
            1 => {
                if channels > 8 {
                    return bad("mapping family 1 with more than 8 channels");
                }
                let n = usize::from(channels);
                if b.len() < 21 + n {
                    return bad("the channel mapping table is cut short");
                }
                let (streams, coupled) = (b[19], b[20]);
                if streams == 0 || coupled > streams {
                    return bad("an impossible stream count");
                }
                let mapping = b[21..21 + n].to_vec();
                let decoded = u16::from(streams) + u16::from(coupled);
                if mapping.iter().any(|&m| m != 255 && u16::from(m) >= decoded) {
                    return bad("the channel mapping names a stream that is not there");
                }
                (streams, coupled, mapping)
            }
            f => {
                return Err(HeadError(format!(
                    "channel mapping family {f} is not decoded"
                )));
            }
        };
        Ok(OpusHead {
            channels,
            pre_skip,
            input_rate,
            output_gain,
            family,
            streams,
            coupled,
            mapping,
        })
    }

    /// The header as written into the first Ogg page.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = b"OpusHead".to_vec();
        b.push(1);
        b.push(self.channels);
        b.extend_from_slice(&self.pre_skip.to_le_bytes());
        b.extend_from_slice(&self.input_rate.to_le_bytes());
        b.extend_from_slice(&self.output_gain.to_le_bytes());
        b.push(self.family);
        if self.family != 0 {
            b.push(self.streams);
            b.push(self.coupled);
            b.extend_from_slice(&self.mapping);
        }
        b
    }
}

/// For each channel in Vorbis order (mapping family 1), its plane in WAVE order (the order of
/// symphonia's speaker positions).
pub fn vorbis_to_wave(channels: usize) -> Vec<usize> {
    match channels {
        3 => vec![0, 2, 1],
        4 => vec![0, 1, 2, 3],
        5 => vec![0, 2, 1, 3, 4],
        6 => vec![0, 2, 1, 4, 5, 3],
        7 => vec![0, 2, 1, 5, 6, 4, 3],
        8 => vec![0, 2, 1, 6, 7, 4, 5, 3],
        n => (0..n).collect(),
    }
}

/// libopus's multistream decoder, owned.
struct Ms(*mut unsafe_libopus::OpusMSDecoder);

// SAFETY: the decoder state is heap memory owned by this value alone, used by one thread at a
// time (`&mut self`); libopus keeps no global mutable state.
unsafe impl Send for Ms {}
// SAFETY: as above: a shared reference never reaches libopus (every call takes `&mut self`).
unsafe impl Sync for Ms {}

impl Drop for Ms {
    fn drop(&mut self) {
        // SAFETY: created by opus_multistream_decoder_create and dropped once.
        unsafe { unsafe_libopus::opus_multistream_decoder_destroy(self.0) }
    }
}

/// The Opus decoder symphonia's registry makes for an Ogg Opus track.
pub struct OpusDecoder {
    params: AudioCodecParameters,
    opts: AudioDecoderOptions,
    head: OpusHead,
    dec: Ms,
    /// Interleaved output of libopus, Vorbis order.
    pcm: Vec<f32>,
    /// Vorbis channel → plane.
    planes: Vec<usize>,
    buf: AudioBuffer<f32>,
    /// Frames of the pre-skip still to drop (symphonia's Ogg reader gives the pre-skip as the
    /// track's delay but does not trim it from Opus packets).
    skip: usize,
}

impl OpusDecoder {
    pub fn try_new(params: &AudioCodecParameters, opts: &AudioDecoderOptions) -> SymResult<Self> {
        if params.codec != CODEC_ID_OPUS {
            return Err(SymError::Unsupported("opus: not an Opus stream"));
        }
        let Some(extra) = params.extra_data.as_deref() else {
            return Err(SymError::DecodeError("opus: no identification header"));
        };
        let head = OpusHead::parse(extra).map_err(|_| SymError::DecodeError("opus: bad header"))?;
        let Some(channels) = params.channels.clone() else {
            return Err(SymError::DecodeError("opus: no channels"));
        };
        if channels.count() != usize::from(head.channels) {
            return Err(SymError::DecodeError("opus: channel counts disagree"));
        }
        let mut err = 0;
        // SAFETY: the mapping table holds `channels` entries (checked by the parse).
        let dec = unsafe {
            unsafe_libopus::opus_multistream_decoder_create(
                RATE as i32,
                i32::from(head.channels),
                i32::from(head.streams),
                i32::from(head.coupled),
                head.mapping.as_ptr(),
                &mut err,
            )
        };
        if dec.is_null() || err != unsafe_libopus::OPUS_OK {
            return Err(SymError::DecodeError(
                "opus: libopus refused the stream layout",
            ));
        }
        let dec = Ms(dec);
        if head.output_gain != 0 {
            // SAFETY: a valid decoder and a gain request with its one integer argument.
            let r = unsafe {
                opus_multistream_decoder_ctl!(
                    dec.0,
                    unsafe_libopus::OPUS_SET_GAIN_REQUEST,
                    i32::from(head.output_gain)
                )
            };
            if r != unsafe_libopus::OPUS_OK {
                return Err(SymError::DecodeError(
                    "opus: libopus refused the output gain",
                ));
            }
        }
        let n = usize::from(head.channels);
        let planes = if head.family == 1 {
            vorbis_to_wave(n)
        } else {
            (0..n).collect()
        };
        let spec = AudioSpec::new(RATE, channels);
        Ok(OpusDecoder {
            params: params.clone(),
            opts: *opts,
            pcm: vec![0.0; MAX_FRAMES * n],
            planes,
            buf: AudioBuffer::new(spec, MAX_FRAMES),
            skip: usize::from(head.pre_skip),
            head,
            dec,
        })
    }

    fn decode_inner(&mut self, packet: &PacketRef<'_>) -> SymResult<()> {
        let n = usize::from(self.head.channels);
        let data = packet.data;
        let len = i32::try_from(data.len())
            .map_err(|_| SymError::DecodeError("opus: a packet too long"))?;
        // SAFETY: `pcm` holds MAX_FRAMES frames of `n` channels, the most one packet gives.
        let frames = unsafe {
            unsafe_libopus::opus_multistream_decode_float(
                self.dec.0,
                data.as_ptr(),
                len,
                self.pcm.as_mut_ptr(),
                MAX_FRAMES as i32,
                0,
            )
        };
        if frames < 0 {
            return Err(SymError::DecodeError("opus: a damaged packet"));
        }
        let frames = frames as usize;
        self.buf.clear();
        self.buf.render_uninit(Some(frames));
        for (ch, &plane) in self.planes.iter().enumerate() {
            let Some(out) = self.buf.plane_mut(plane) else {
                return Err(SymError::DecodeError("opus: a missing plane"));
            };
            for (o, f) in out.iter_mut().zip(self.pcm.chunks_exact(n)) {
                *o = f[ch];
            }
        }
        if self.opts.gapless {
            let start = (packet.trim_start.get() as usize).max(self.skip.min(frames));
            self.skip -= self.skip.min(frames);
            self.buf.trim(start, packet.trim_end.get() as usize);
        }
        Ok(())
    }
}

impl AudioDecoder for OpusDecoder {
    fn reset(&mut self) {
        // SAFETY: a valid decoder; the reset request takes no argument.
        unsafe {
            opus_multistream_decoder_ctl!(self.dec.0, unsafe_libopus::OPUS_RESET_STATE);
        }
    }

    fn codec_info(&self) -> &CodecInfo {
        &Self::supported_codecs()[0].info
    }

    fn codec_params(&self) -> &AudioCodecParameters {
        &self.params
    }

    fn decode_ref(&mut self, packet: &PacketRef<'_>) -> SymResult<GenericAudioBufferRef<'_>> {
        match self.decode_inner(packet) {
            Ok(()) => Ok(self.buf.as_generic_audio_buffer_ref()),
            Err(e) => {
                self.buf.clear();
                Err(e)
            }
        }
    }

    fn finalize(&mut self) -> FinalizeResult {
        FinalizeResult::default()
    }

    fn last_decoded(&self) -> GenericAudioBufferRef<'_> {
        self.buf.as_generic_audio_buffer_ref()
    }
}

impl RegisterableAudioDecoder for OpusDecoder {
    fn try_registry_new(
        params: &AudioCodecParameters,
        opts: &AudioDecoderOptions,
    ) -> SymResult<Box<dyn AudioDecoder>> {
        Ok(Box::new(OpusDecoder::try_new(params, opts)?))
    }

    fn supported_codecs() -> &'static [SupportedAudioCodec] {
        &[SupportedAudioCodec {
            id: CODEC_ID_OPUS,
            info: CodecInfo {
                short_name: "opus",
                long_name: "Opus",
                profiles: &[],
            },
        }]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_round_trip_and_bad_ones_are_refused() {
        let h = OpusHead {
            channels: 6,
            pre_skip: 312,
            input_rate: 44_100,
            output_gain: -256,
            family: 1,
            streams: 4,
            coupled: 2,
            mapping: vec![0, 4, 1, 2, 3, 5],
        };
        assert_eq!(OpusHead::parse(&h.to_bytes()).unwrap(), h);
        let stereo = OpusHead {
            channels: 2,
            pre_skip: 312,
            input_rate: 48_000,
            output_gain: 0,
            family: 0,
            streams: 1,
            coupled: 1,
            mapping: vec![0, 1],
        };
        assert_eq!(OpusHead::parse(&stereo.to_bytes()).unwrap(), stereo);
        let mut b = h.to_bytes();
        b[21] = 9; // a stream that is not there
        assert!(OpusHead::parse(&b).is_err());
        assert!(OpusHead::parse(&h.to_bytes()[..22]).is_err());
        let mut b = stereo.to_bytes();
        b[18] = 255;
        assert!(OpusHead::parse(&b).is_err());
    }
}
