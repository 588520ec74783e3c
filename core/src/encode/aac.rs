//! AAC in M4A through the Fraunhofer FDK AAC encoder (`fdk-aac-sys`, which builds it from its
//! bundled sources with the C++ compiler).
//!
//! AAC-LC, HE-AAC (SBR) or HE-AAC v2 (SBR + parametric stereo), at a constant bitrate or one of
//! FDK's five VBR modes; the afterburner on (FDK's better quantisation). The encoder's delay
//! (priming) is the edit list's start and the presentation lasts exactly the input's frames, so
//! a decoder that honours the edit list (ffmpeg, Apple's players, Sluice's own) gives back the
//! input's length. Mono or stereo (the registry downmixes more channels first); the rates AAC
//! codes from 8 to 48 kHz (others are resampled by the registry). Input is 16-bit, as FDK takes
//! it.

use super::m4a::{M4aWriter, Track, audio_sample_entry, esds};
use super::{EncodeError, Encoder};
use crate::block::{Block, SignalSpec};
use fdk_aac_sys as fdk;
use std::fs::File;
use std::path::PathBuf;

/// The format's name in errors and reports.
pub const FORMAT: &str = "AAC (M4A)";

/// The rates AAC codes here.
pub const RATES: [u32; 9] = [
    8_000, 11_025, 12_000, 16_000, 22_050, 24_000, 32_000, 44_100, 48_000,
];

/// Which AAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AacProfile {
    /// AAC-LC.
    Lc,
    /// HE-AAC: AAC-LC at half the rate with spectral band replication above it.
    He,
    /// HE-AAC v2: HE-AAC with parametric stereo (stereo only).
    HeV2,
}

impl AacProfile {
    fn aot(self) -> u32 {
        let aot = match self {
            AacProfile::Lc => fdk::AUDIO_OBJECT_TYPE_AOT_AAC_LC,
            AacProfile::He => fdk::AUDIO_OBJECT_TYPE_AOT_SBR,
            AacProfile::HeV2 => fdk::AUDIO_OBJECT_TYPE_AOT_PS,
        };
        aot as u32
    }
}

/// Options of the AAC encoder.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AacOptions {
    pub profile: AacProfile,
    /// A constant bitrate for all channels, kbit/s; `None`: VBR at `vbr`.
    pub bitrate_kbps: Option<u32>,
    /// FDK's VBR mode, 1 (smallest) to 5 (best), when no bitrate is given.
    pub vbr: u8,
}

impl Default for AacOptions {
    fn default() -> Self {
        AacOptions {
            profile: AacProfile::Lc,
            bitrate_kbps: None,
            vbr: 5,
        }
    }
}

/// FDK's encoder handle, owned.
struct Handle(fdk::HANDLE_AACENCODER);

// SAFETY: the encoder state is heap memory owned by this value alone, with no thread-affine
// or global mutable state; it is moved between threads, never shared.
unsafe impl Send for Handle {}

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: opened by aacEncOpen, closed once.
        unsafe {
            fdk::aacEncClose(&mut self.0);
        }
    }
}

/// Writes AAC into an M4A file, one access unit per packet.
pub struct AacEncoder {
    path: PathBuf,
    mux: Option<M4aWriter>,
    enc: Handle,
    channels: usize,
    rate: u32,
    /// Frames per access unit at the output rate (1024; 2048 with SBR).
    frame: u32,
    /// Frames FDK takes per call (a whole frame of its input).
    chunk: usize,
    delay: u64,
    asc: Vec<u8>,
    max_out: usize,
    /// Interleaved 16-bit input not yet given to FDK.
    pending: Vec<i16>,
    /// Silence coded after the input so that a decoder with a delay of its own (SBR's) still
    /// finds every input frame in the stream; the edit list presents the input's frames only.
    tail: usize,
    out: Vec<u8>,
    taken: u64,
}

impl std::fmt::Debug for AacEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AacEncoder")
            .field("path", &self.path)
            .field("channels", &self.channels)
            .finish_non_exhaustive()
    }
}

fn fdk_error(code: fdk::AACENC_ERROR) -> String {
    match code {
        fdk::AACENC_ERROR_AACENC_UNSUPPORTED_PARAMETER => "an unsupported parameter".into(),
        fdk::AACENC_ERROR_AACENC_INVALID_CONFIG => "an invalid configuration".into(),
        fdk::AACENC_ERROR_AACENC_INIT_ERROR
        | fdk::AACENC_ERROR_AACENC_INIT_AAC_ERROR
        | fdk::AACENC_ERROR_AACENC_INIT_SBR_ERROR => {
            "no configuration for these settings (rate, channels, bitrate, profile)".into()
        }
        c => format!("error 0x{c:x}"),
    }
}

impl AacEncoder {
    /// Start an M4A of `spec` into `file` (`path` names it in errors).
    pub fn new(
        file: File,
        path: PathBuf,
        spec: &SignalSpec,
        opts: &AacOptions,
    ) -> Result<AacEncoder, EncodeError> {
        let unsupported = |detail: String| EncodeError::Unsupported {
            path: path.clone(),
            detail,
        };
        let channels = spec.channels();
        if !(1..=2).contains(&channels) {
            return Err(unsupported(format!(
                "AAC is written here in mono or stereo, the signal has {channels} channels: add a channel mapping"
            )));
        }
        if opts.profile == AacProfile::HeV2 && channels != 2 {
            return Err(unsupported(
                "HE-AAC v2 (parametric stereo) needs a stereo signal".into(),
            ));
        }
        let rate = spec.sample_rate;
        if !RATES.contains(&rate) {
            return Err(unsupported(format!(
                "AAC is coded here at 8000 to 48000 Hz (the standard rates), not {rate} Hz: resample"
            )));
        }
        if let Some(k) = opts.bitrate_kbps
            && !(8..=320 * channels as u32).contains(&k)
        {
            return Err(unsupported(format!(
                "an AAC bitrate of {k} kbit/s: from 8 to {} for {channels} channel(s)",
                320 * channels
            )));
        }
        if !(1..=5).contains(&opts.vbr) {
            return Err(unsupported(format!(
                "AAC VBR modes are 1 to 5, not {}",
                opts.vbr
            )));
        }
        let codec = |detail: String| EncodeError::Codec {
            path: path.clone(),
            format: FORMAT,
            detail,
        };
        let mut h: fdk::HANDLE_AACENCODER = std::ptr::null_mut();
        // SAFETY: `h` is written by the call.
        let r = unsafe { fdk::aacEncOpen(&mut h, 0, channels as u32) };
        if r != fdk::AACENC_ERROR_AACENC_OK || h.is_null() {
            return Err(codec(format!("FDK AAC cannot start: {}", fdk_error(r))));
        }
        let enc = Handle(h);
        configure(&enc, channels, rate, opts, &path)?;
        // SAFETY: the documented initialisation call (all null).
        let r = unsafe {
            fdk::aacEncEncode(
                enc.0,
                std::ptr::null(),
                std::ptr::null(),
                std::ptr::null(),
                std::ptr::null_mut(),
            )
        };
        if r != fdk::AACENC_ERROR_AACENC_OK {
            return Err(unsupported(format!(
                "FDK AAC cannot encode {channels} channel(s) at {rate} Hz with these settings: {}",
                fdk_error(r)
            )));
        }
        let mut info = std::mem::MaybeUninit::<fdk::AACENC_InfoStruct>::zeroed();
        // SAFETY: `info` is written whole by the call.
        let r = unsafe { fdk::aacEncInfo(enc.0, info.as_mut_ptr()) };
        if r != fdk::AACENC_ERROR_AACENC_OK {
            return Err(codec(format!(
                "FDK AAC gave no information: {}",
                fdk_error(r)
            )));
        }
        // SAFETY: filled by aacEncInfo.
        let info = unsafe { info.assume_init() };
        let asc = info.confBuf[..info.confSize as usize].to_vec();
        let chunk = info.frameLength as usize;
        // Frames per access unit at the output rate (FDK's input frame: 1024, with SBR 2048).
        let frame = info.frameLength;
        let mux = M4aWriter::new(file, path.clone())?;
        Ok(AacEncoder {
            mux: Some(mux),
            enc,
            channels,
            rate,
            frame,
            chunk,
            // The delay without SBR's: decoders take SBR's out themselves (FDK's decoder
            // reports it as its output delay), so the edit list gives the core's.
            delay: u64::from(info.nDelayCore),
            asc,
            max_out: (info.maxOutBufBytes as usize).max(6144 * channels),
            pending: Vec::with_capacity(chunk * channels),
            tail: if opts.profile == AacProfile::Lc {
                0
            } else {
                2 * chunk
            },
            out: vec![0; (info.maxOutBufBytes as usize).max(6144 * channels)],
            taken: 0,
            path,
        })
    }

    /// Give FDK `pending` (or, with `flush`, nothing: it empties its buffers); write what it
    /// returns. Returns false at the end of the stream.
    fn call(&mut self, flush: bool) -> Result<bool, EncodeError> {
        let mut in_ptr = self.pending.as_mut_ptr() as *mut std::ffi::c_void;
        let mut in_id = fdk::AACENC_BufferIdentifier_IN_AUDIO_DATA as i32;
        let mut in_size = (self.pending.len() * 2) as i32;
        let mut in_el = 2i32;
        let in_desc = fdk::AACENC_BufDesc {
            numBufs: 1,
            bufs: &mut in_ptr,
            bufferIdentifiers: &mut in_id,
            bufSizes: &mut in_size,
            bufElSizes: &mut in_el,
        };
        let mut out_ptr = self.out.as_mut_ptr() as *mut std::ffi::c_void;
        let mut out_id = fdk::AACENC_BufferIdentifier_OUT_BITSTREAM_DATA as i32;
        let mut out_size = self.max_out as i32;
        let mut out_el = 1i32;
        let out_desc = fdk::AACENC_BufDesc {
            numBufs: 1,
            bufs: &mut out_ptr,
            bufferIdentifiers: &mut out_id,
            bufSizes: &mut out_size,
            bufElSizes: &mut out_el,
        };
        let in_args = fdk::AACENC_InArgs {
            numInSamples: if flush { -1 } else { self.pending.len() as i32 },
            numAncBytes: 0,
        };
        // SAFETY: zeroed plain data, filled by the call.
        let mut out_args: fdk::AACENC_OutArgs = unsafe { std::mem::zeroed() };
        // SAFETY: the descriptors point at live buffers of the sizes they give.
        let r =
            unsafe { fdk::aacEncEncode(self.enc.0, &in_desc, &out_desc, &in_args, &mut out_args) };
        if r == fdk::AACENC_ERROR_AACENC_ENCODE_EOF {
            return Ok(false);
        }
        if r != fdk::AACENC_ERROR_AACENC_OK {
            return Err(EncodeError::Codec {
                path: self.path.clone(),
                format: FORMAT,
                detail: format!("FDK AAC failed to encode: {}", fdk_error(r)),
            });
        }
        let used = (out_args.numInSamples.max(0) as usize).min(self.pending.len());
        self.pending.drain(..used);
        let n = out_args.numOutBytes.max(0) as usize;
        if n > 0 {
            let data = self.out[..n].to_vec();
            self.mux
                .as_mut()
                .expect("open until finished")
                .packet(&data)?;
        }
        Ok(true)
    }
}

/// FDK's parameters for `opts`, `channels` and `rate`.
fn configure(
    enc: &Handle,
    channels: usize,
    rate: u32,
    opts: &AacOptions,
    path: &std::path::Path,
) -> Result<(), EncodeError> {
    let unsupported = |detail: String| EncodeError::Unsupported {
        path: path.to_path_buf(),
        detail,
    };
    let set = |p: fdk::AACENC_PARAM, v: u32, what: &str| {
        // SAFETY: a valid handle; a parameter and its value.
        let r = unsafe { fdk::aacEncoder_SetParam(enc.0, p, v) };
        if r == fdk::AACENC_ERROR_AACENC_OK {
            Ok(())
        } else {
            Err(unsupported(format!(
                "FDK AAC refused {what} {v}: {}",
                fdk_error(r)
            )))
        }
    };
    set(
        fdk::AACENC_PARAM_AACENC_AOT,
        opts.profile.aot(),
        "the profile",
    )?;
    set(fdk::AACENC_PARAM_AACENC_SAMPLERATE, rate, "the rate")?;
    set(
        fdk::AACENC_PARAM_AACENC_CHANNELMODE,
        channels as u32,
        "the channel mode",
    )?;
    set(
        fdk::AACENC_PARAM_AACENC_CHANNELORDER,
        1,
        "the channel order",
    )?;
    match opts.bitrate_kbps {
        Some(k) => {
            set(fdk::AACENC_PARAM_AACENC_BITRATEMODE, 0, "the bitrate mode")?;
            set(fdk::AACENC_PARAM_AACENC_BITRATE, k * 1000, "the bitrate")?;
        }
        None => set(
            fdk::AACENC_PARAM_AACENC_BITRATEMODE,
            u32::from(opts.vbr),
            "the VBR mode",
        )?,
    }
    set(fdk::AACENC_PARAM_AACENC_TRANSMUX, 0, "raw access units")?;
    set(fdk::AACENC_PARAM_AACENC_AFTERBURNER, 1, "the afterburner")?;
    if opts.profile != AacProfile::Lc {
        // Explicit, hierarchical signalling: the configuration names SBR (and PS), so a
        // decoder knows the output rate before the first frame.
        set(fdk::AACENC_PARAM_AACENC_SIGNALING_MODE, 2, "the signalling")?;
    }
    Ok(())
}

/// Full scale clips (the [`Encoder`] contract), rounded to 16 bits; NaN is silence.
fn to_i16(v: f32) -> i16 {
    (super::clip(v) * 32767.0).round() as i16
}

impl Encoder for AacEncoder {
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
        let planes: Vec<&[f32]> = (0..self.channels).map(|c| block.plane(c)).collect();
        for i in 0..block.frames() {
            for p in &planes {
                self.pending.push(to_i16(p[i]));
            }
            if self.pending.len() >= self.chunk * self.channels {
                self.call(false)?;
            }
        }
        self.taken += block.frames() as u64;
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<(), EncodeError> {
        let tail = self.tail * self.channels;
        for _ in 0..tail {
            self.pending.push(0);
            if self.pending.len() >= self.chunk * self.channels {
                self.call(false)?;
            }
        }
        while !self.pending.is_empty() {
            let before = self.pending.len();
            self.call(false)?;
            if self.pending.len() == before {
                break;
            }
        }
        self.pending.clear();
        // FDK's buffers emptied: it pads the last frame and ends with EOF.
        let mut guard = 0;
        while self.call(true)? {
            guard += 1;
            if guard > 64 {
                return Err(EncodeError::Codec {
                    path: self.path.clone(),
                    format: FORMAT,
                    detail: "FDK AAC did not finish the stream".into(),
                });
            }
        }
        let mux = self.mux.take().expect("open until finished");
        let seconds = self.taken as f64 / f64::from(self.rate);
        let (max, avg) = mux.sizes(seconds);
        let coded = mux.packets() as u64 * u64::from(self.frame);
        if coded < self.delay + self.taken {
            return Err(EncodeError::Codec {
                path: self.path.clone(),
                format: FORMAT,
                detail: format!(
                    "FDK AAC gave {coded} frames for {} frames after its delay of {}",
                    self.taken, self.delay
                ),
            });
        }
        let peak_bps = (u64::from(max) * 8 * u64::from(self.rate) / u64::from(self.frame)) as u32;
        let extra = esds(&self.asc, max, peak_bps, avg);
        let track = Track {
            entry: audio_sample_entry(b"mp4a", self.channels as u16, 16, self.rate, &extra),
            timescale: self.rate,
            frames_per_packet: self.frame,
            priming: self.delay,
            smpb: true,
        };
        mux.finish(&track, self.taken)
    }
}

/// AAC in M4A (FDK AAC) in the format registry: one codec per profile (`aac`, `he-aac`,
/// `he-aac-v2`), all writing the `m4a_aac` format.
pub struct AacCodec {
    profile: AacProfile,
    about: &'static crate::formats::CodecInfo,
}

/// AAC-LC.
pub static CODEC: AacCodec = AacCodec {
    profile: AacProfile::Lc,
    about: &ABOUT_LC,
};
/// HE-AAC (v1): for low bitrates.
pub static CODEC_HE: AacCodec = AacCodec {
    profile: AacProfile::He,
    about: &ABOUT_HE,
};
/// HE-AAC v2: for the lowest bitrates, stereo only.
pub static CODEC_HE_V2: AacCodec = AacCodec {
    profile: AacProfile::HeV2,
    about: &ABOUT_HE_V2,
};

const BITRATE: crate::formats::OptionSpec = crate::formats::OptionSpec {
    opt: crate::formats::Opt::Bitrate,
    values: crate::formats::Values::Range {
        min: 8.0,
        max: 640.0,
        integer: true,
    },
    says: "AAC bitrates run from 8 to 320 kbit/s per channel (constant bitrate)",
};

const CONSTRAINTS: crate::formats::Constraints = crate::formats::Constraints {
    sample_rates: Some(&RATES),
    rates_say: "AAC is coded here at the standard rates from 8000 to 48000 Hz",
    max_channels: Some(2),
};

const TAGS: crate::formats::TagStyle = crate::formats::TagStyle::Lofty {
    file_type: lofty::file::FileType::Mp4,
    tag_type: lofty::tag::TagType::Mp4Ilst,
};

static ABOUT_LC: crate::formats::CodecInfo = crate::formats::CodecInfo {
    id: "aac",
    name: FORMAT,
    names: &["aac", "m4a", "aac-lc"],
    extension: "m4a",
    writes: &["m4a_aac"],
    info: None,
    lossy: true,
    options: &[
        BITRATE,
        crate::formats::OptionSpec {
            opt: crate::formats::Opt::Quality,
            values: crate::formats::Values::Range {
                min: 1.0,
                max: 5.0,
                integer: true,
            },
            says: "AAC VBR modes run from 1 (smallest) to 5 (best)",
        },
    ],
    exclusive: Some((
        crate::formats::Opt::Bitrate,
        crate::formats::Opt::Quality,
        "constant bitrate or VBR mode",
    )),
    constraints: CONSTRAINTS,
    tags: TAGS,
    settings: "AAC-LC VBR mode 1-5 (default 5) or a constant bitrate (kbps); he-aac, he-aac-v2 for low bitrates",
    minute_bytes: 192_000 / 8 * 60,
    bext: false,
};

static ABOUT_HE: crate::formats::CodecInfo =
    he_about("he-aac", "HE-AAC (M4A)", &["he-aac", "heaac", "aac-he"]);

static ABOUT_HE_V2: crate::formats::CodecInfo = he_about(
    "he-aac-v2",
    "HE-AAC v2 (M4A)",
    &["he-aac-v2", "heaacv2", "aac-he-v2"],
);

/// An HE profile's entry: constant bitrate only (FDK's VBR modes are AAC-LC's).
const fn he_about(
    id: &'static str,
    name: &'static str,
    names: &'static [&'static str],
) -> crate::formats::CodecInfo {
    crate::formats::CodecInfo {
        id,
        name,
        names,
        extension: "m4a",
        writes: &["m4a_aac"],
        info: None,
        lossy: true,
        options: &[BITRATE],
        exclusive: None,
        constraints: CONSTRAINTS,
        tags: TAGS,
        settings: "a constant bitrate (kbps)",
        minute_bytes: 64_000 / 8 * 60,
        bext: false,
    }
}

impl AacCodec {
    /// The default bitrate of the HE profiles, kbit/s for the channels.
    fn default_kbps(&self, channels: usize) -> Option<u32> {
        match self.profile {
            AacProfile::Lc => None,
            AacProfile::He => Some(32 * channels as u32),
            AacProfile::HeV2 => Some(32),
        }
    }

    fn name(&self) -> &'static str {
        match self.profile {
            AacProfile::Lc => "AAC-LC",
            AacProfile::He => "HE-AAC",
            AacProfile::HeV2 => "HE-AAC v2",
        }
    }
}

impl crate::formats::OutputCodec for AacCodec {
    fn about(&self) -> &'static crate::formats::CodecInfo {
        self.about
    }
    fn settle(
        &self,
        asked: &crate::formats::Request,
        arriving: &crate::formats::Arriving,
    ) -> crate::formats::Settings {
        let bitrate_kbps = asked
            .bitrate_kbps
            .or_else(|| self.default_kbps(arriving.channels));
        crate::formats::Settings {
            bitrate_kbps,
            quality: bitrate_kbps
                .is_none()
                .then(|| asked.quality.map_or(5.0, f32::round)),
            ..Default::default()
        }
    }
    fn describe(&self, s: &crate::formats::Settings) -> String {
        match s.bitrate_kbps {
            Some(k) => format!("{} {k} kbit/s", self.name()),
            None => format!("{} VBR {}", self.name(), s.quality.unwrap_or(5.0)),
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
        Ok(Box::new(AacEncoder::new(
            file,
            path.to_path_buf(),
            spec,
            &AacOptions {
                profile: self.profile,
                bitrate_kbps: s
                    .bitrate_kbps
                    .or_else(|| self.default_kbps(spec.channels())),
                vbr: s.quality.map_or(5, |q| q.round().clamp(1.0, 5.0) as u8),
            },
        )?))
    }
}
