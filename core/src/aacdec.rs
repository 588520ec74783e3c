//! HE-AAC (SBR, and parametric stereo) decoded at its full rate through the Fraunhofer FDK AAC
//! decoder; AAC-LC stays with symphonia's decoder.
//!
//! The decision is the stream's AudioSpecificConfig: an explicitly signalled HE-AAC stream
//! (object type 5 or 29 with its extension rate, as Sluice's encoder, Apple's and ffmpeg's
//! `libfdk_aac` write in M4A) goes to FDK, which outputs the extension rate; anything else to
//! symphonia (an HE-AAC stream signalled only implicitly, by SBR data inside a plain AAC-LC
//! configuration, therefore still decodes at the core rate).

use symphonia::core::audio::{
    AsGenericAudioBufferRef, AudioBuffer, AudioMut, AudioSpec, Channels, GenericAudioBufferRef,
    Position,
};
use symphonia::core::codecs::CodecInfo;
use symphonia::core::codecs::audio::well_known::CODEC_ID_AAC;
use symphonia::core::codecs::audio::{
    AudioCodecParameters, AudioDecoder, AudioDecoderOptions, FinalizeResult,
};
use symphonia::core::codecs::registry::{RegisterableAudioDecoder, SupportedAudioCodec};
use symphonia::core::errors::{Error as SymError, Result as SymResult};
use symphonia::core::packet::PacketRef;

/// The sampling frequencies an AudioSpecificConfig indexes.
const RATES: [u32; 13] = [
    96_000, 88_200, 64_000, 48_000, 44_100, 32_000, 24_000, 22_050, 16_000, 12_000, 11_025, 8_000,
    7_350,
];

/// Reads bits from the front of a byte slice, most significant first.
struct Bits<'a> {
    b: &'a [u8],
    at: usize,
}

impl Bits<'_> {
    fn take(&mut self, n: usize) -> Option<u32> {
        let mut v = 0u32;
        for _ in 0..n {
            let byte = *self.b.get(self.at / 8)?;
            v = (v << 1) | u32::from((byte >> (7 - self.at % 8)) & 1);
            self.at += 1;
        }
        Some(v)
    }

    fn object_type(&mut self) -> Option<u32> {
        match self.take(5)? {
            31 => Some(32 + self.take(6)?),
            t => Some(t),
        }
    }

    fn rate(&mut self) -> Option<u32> {
        match self.take(4)? {
            15 => self.take(24),
            i => RATES.get(i as usize).copied(),
        }
    }
}

/// The output rate of an explicitly signalled HE-AAC configuration (object type 5 or 29 and
/// the SBR extension's rate); `None` for anything else.
pub fn he_aac_rate(asc: &[u8]) -> Option<u32> {
    let mut b = Bits { b: asc, at: 0 };
    let aot = b.object_type()?;
    let _core = b.rate()?;
    let _channels = b.take(4)?;
    if aot == 5 || aot == 29 {
        b.rate()
    } else {
        None
    }
}

/// Whether the configuration is HE-AAC v2 (parametric stereo): one channel coded, two decoded.
pub fn parametric_stereo(asc: &[u8]) -> bool {
    let mut b = Bits { b: asc, at: 0 };
    b.object_type() == Some(29)
}

/// `params` as this decoder gives the stream: HE-AAC v2's one coded channel in stereo.
pub fn as_decoded(mut params: AudioCodecParameters) -> AudioCodecParameters {
    if params.codec == CODEC_ID_AAC && params.extra_data.as_deref().is_some_and(parametric_stereo) {
        params.channels = Some(Channels::Positioned(
            Position::FRONT_LEFT | Position::FRONT_RIGHT,
        ));
    }
    params
}

/// FDK's decoder handle, owned.
struct Handle(fdk_aac_sys::HANDLE_AACDECODER);

// SAFETY: the decoder state is heap memory owned by this value alone, used through `&mut self`
// only; FDK keeps no global mutable state.
unsafe impl Send for Handle {}
// SAFETY: as above: a shared reference never reaches FDK.
unsafe impl Sync for Handle {}

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: opened by aacDecoder_Open, closed once.
        unsafe { fdk_aac_sys::aacDecoder_Close(self.0) }
    }
}

struct Fdk {
    h: Handle,
    channels: usize,
    pcm: Vec<i16>,
    buf: AudioBuffer<f32>,
    /// The decoder's own output delay (SBR's filter banks), dropped from the start: read from
    /// FDK once the first frame is decoded (`None` until then).
    skip: Option<usize>,
}

enum Inner {
    Symphonia(Box<dyn AudioDecoder>),
    Fdk(Box<Fdk>),
}

/// The AAC decoder of Sluice's codec registry.
pub struct AacDecoder {
    params: AudioCodecParameters,
    opts: AudioDecoderOptions,
    inner: Inner,
}

impl AacDecoder {
    pub fn try_new(params: &AudioCodecParameters, opts: &AudioDecoderOptions) -> SymResult<Self> {
        let he = params.extra_data.as_deref().and_then(he_aac_rate);
        let inner = match he {
            None => Inner::Symphonia(Box::new(symphonia::default::codecs::AacDecoder::try_new(
                params, opts,
            )?)),
            Some(rate) => Inner::Fdk(Box::new(Fdk::new(params, rate)?)),
        };
        Ok(AacDecoder {
            params: params.clone(),
            opts: *opts,
            inner,
        })
    }
}

impl Fdk {
    fn new(params: &AudioCodecParameters, rate: u32) -> SymResult<Fdk> {
        let asc = params.extra_data.as_deref().unwrap_or_default();
        let channels = params
            .channels
            .clone()
            .ok_or(SymError::DecodeError("aac: no channels"))?;
        let n = channels.count();
        if n == 0 || n > 8 {
            return Err(SymError::Unsupported("aac: channel count"));
        }
        // SAFETY: plain constructor.
        let h = unsafe { fdk_aac_sys::aacDecoder_Open(fdk_aac_sys::TRANSPORT_TYPE_TT_MP4_RAW, 1) };
        if h.is_null() {
            return Err(SymError::DecodeError("aac: FDK cannot start"));
        }
        let h = Handle(h);
        let mut conf = asc.to_vec();
        let mut ptr = conf.as_mut_ptr();
        let len = conf.len() as u32;
        // SAFETY: one configuration buffer of `len` bytes.
        let r = unsafe { fdk_aac_sys::aacDecoder_ConfigRaw(h.0, &mut ptr, &len) };
        if r != fdk_aac_sys::AAC_DECODER_ERROR_AAC_DEC_OK {
            return Err(SymError::DecodeError("aac: FDK refused the configuration"));
        }
        // As many channels out as the container announces (parametric stereo makes two of
        // one; a decoder must not change the count mid-stream).
        for p in [
            fdk_aac_sys::AACDEC_PARAM_AAC_PCM_MIN_OUTPUT_CHANNELS,
            fdk_aac_sys::AACDEC_PARAM_AAC_PCM_MAX_OUTPUT_CHANNELS,
        ] {
            // SAFETY: a valid handle and parameter.
            unsafe { fdk_aac_sys::aacDecoder_SetParam(h.0, p, n as i32) };
        }
        Ok(Fdk {
            h,
            channels: n,
            pcm: vec![0; 4096 * 8],
            buf: AudioBuffer::new(AudioSpec::new(rate, channels), 4096),
            skip: None,
        })
    }

    fn decode(&mut self, packet: &PacketRef<'_>, gapless: bool) -> SymResult<()> {
        let mut data = packet.data.to_vec();
        let mut ptr = data.as_mut_ptr();
        let size = data.len() as u32;
        let mut valid = size;
        // SAFETY: one input buffer of `size` bytes; FDK copies what it takes.
        let r = unsafe { fdk_aac_sys::aacDecoder_Fill(self.h.0, &mut ptr, &size, &mut valid) };
        if r != fdk_aac_sys::AAC_DECODER_ERROR_AAC_DEC_OK {
            return Err(SymError::DecodeError("aac: FDK refused a packet"));
        }
        // SAFETY: `pcm` is writable for its length.
        let r = unsafe {
            fdk_aac_sys::aacDecoder_DecodeFrame(
                self.h.0,
                self.pcm.as_mut_ptr(),
                self.pcm.len() as i32,
                0,
            )
        };
        self.buf.clear();
        if r == fdk_aac_sys::AAC_DECODER_ERROR_AAC_DEC_NOT_ENOUGH_BITS {
            return Ok(());
        }
        if r != fdk_aac_sys::AAC_DECODER_ERROR_AAC_DEC_OK {
            return Err(SymError::DecodeError("aac: a damaged frame"));
        }
        // SAFETY: valid after a decoded frame.
        let info = unsafe { &*fdk_aac_sys::aacDecoder_GetStreamInfo(self.h.0) };
        let frames = info.frameSize.max(0) as usize;
        let got = info.numChannels.max(0) as usize;
        if got != self.channels || frames * got > self.pcm.len() {
            return Err(SymError::DecodeError("aac: the channel count changed"));
        }
        self.buf.render_uninit(Some(frames));
        for c in 0..got {
            let Some(out) = self.buf.plane_mut(c) else {
                return Err(SymError::DecodeError("aac: a missing plane"));
            };
            for (o, f) in out.iter_mut().zip(self.pcm.chunks_exact(got)) {
                *o = f32::from(f[c]) / 32_768.0;
            }
        }
        let skip = self.skip.get_or_insert(info.outputDelay as usize);
        let drop = (*skip).min(frames);
        *skip -= drop;
        if gapless {
            self.buf.trim(
                (packet.trim_start.get() as usize).max(drop),
                packet.trim_end.get() as usize,
            );
        } else if drop > 0 {
            self.buf.trim(drop, 0);
        }
        Ok(())
    }
}

impl AudioDecoder for AacDecoder {
    fn reset(&mut self) {
        match &mut self.inner {
            Inner::Symphonia(d) => d.reset(),
            Inner::Fdk(f) => {
                // SAFETY: a valid handle; the flush flag drops what FDK holds.
                unsafe {
                    fdk_aac_sys::aacDecoder_DecodeFrame(
                        f.h.0,
                        f.pcm.as_mut_ptr(),
                        f.pcm.len() as i32,
                        fdk_aac_sys::AACDEC_FLUSH,
                    );
                }
            }
        }
    }

    fn codec_info(&self) -> &CodecInfo {
        &Self::supported_codecs()[0].info
    }

    fn codec_params(&self) -> &AudioCodecParameters {
        match &self.inner {
            Inner::Symphonia(d) => d.codec_params(),
            Inner::Fdk(_) => &self.params,
        }
    }

    fn decode_ref(&mut self, packet: &PacketRef<'_>) -> SymResult<GenericAudioBufferRef<'_>> {
        let gapless = self.opts.gapless;
        match &mut self.inner {
            Inner::Symphonia(d) => d.decode_ref(packet),
            Inner::Fdk(f) => match f.decode(packet, gapless) {
                Ok(()) => Ok(f.buf.as_generic_audio_buffer_ref()),
                Err(e) => {
                    f.buf.clear();
                    Err(e)
                }
            },
        }
    }

    fn finalize(&mut self) -> FinalizeResult {
        match &mut self.inner {
            Inner::Symphonia(d) => d.finalize(),
            Inner::Fdk(_) => FinalizeResult::default(),
        }
    }

    fn last_decoded(&self) -> GenericAudioBufferRef<'_> {
        match &self.inner {
            Inner::Symphonia(d) => d.last_decoded(),
            Inner::Fdk(f) => f.buf.as_generic_audio_buffer_ref(),
        }
    }
}

impl RegisterableAudioDecoder for AacDecoder {
    fn try_registry_new(
        params: &AudioCodecParameters,
        opts: &AudioDecoderOptions,
    ) -> SymResult<Box<dyn AudioDecoder>> {
        Ok(Box::new(AacDecoder::try_new(params, opts)?))
    }

    fn supported_codecs() -> &'static [SupportedAudioCodec] {
        &[SupportedAudioCodec {
            id: CODEC_ID_AAC,
            info: CodecInfo {
                short_name: "aac",
                long_name: "Advanced Audio Coding",
                profiles: &[],
            },
        }]
    }
}

#[cfg(test)]
mod tests {
    use super::he_aac_rate;

    #[test]
    fn explicit_he_aac_configurations_give_their_output_rate() {
        // AAC-LC, 44.1 kHz stereo: 00010 0100 0010 ...
        assert_eq!(he_aac_rate(&[0x12, 0x10]), None);
        // HE-AAC (5), core 22.05 kHz (7), stereo, extension 44.1 kHz (4), then AAC-LC (2):
        // 00101 0111 0010 0100 00010 ...
        assert_eq!(he_aac_rate(&[0x2B, 0x92, 0x08, 0x00]), Some(44_100));
        // HE-AAC v2 (29), core 24 kHz (6), mono, extension 48 kHz (3).
        assert_eq!(he_aac_rate(&[0xEB, 0x09, 0x88, 0x00]), Some(48_000));
        assert_eq!(he_aac_rate(&[]), None);
    }
}
