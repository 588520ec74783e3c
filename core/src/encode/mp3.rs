//! MP3 through LAME 3.100 (`mp3lame-encoder`, LAME built from source by `mp3lame-sys`).
//!
//! The stream starts with a LAME/Xing "Info" frame: LAME writes a placeholder when the first
//! audio goes in, and [`Mp3Encoder`] overwrites it with the final tag at the end. The tag holds
//! the frame count and the encoder delay and padding, so gapless decoders (symphonia, ffmpeg,
//! foobar2000, iTunes...) give back exactly the input's frames. No ID3 tag is written: tags are
//! added afterwards (lofty puts an ID3v2 tag in front of the Info frame).
//!
//! At low CBR bitrates (under 64 kbps at 44.1/48 kHz stereo, see [`Mp3Encoder::is_gapless`])
//! a frame is too small for that tag and LAME writes none: the file then decodes with LAME's
//! 1105 frames of delay and up to a frame of padding around the audio, like any MP3 without
//! gapless information.
//!
//! LAME never resamples here: the output rate is pinned to the input rate, and rates or
//! bitrates MPEG audio cannot carry are refused with [`EncodeError::Unsupported`].

use super::{EncodeError, Encoder};
use crate::block::{Block, SignalSpec};
use mp3lame_encoder::{Builder, FlushGap, MonoPcm, VbrMode, ffi};
use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The format's name in errors and reports.
pub const FORMAT: &str = "MP3";

/// Frames handed to LAME per call, so the output buffer stays small whatever the block size.
const CHUNK: usize = 8192;

/// The sample rates MPEG-1/2/2.5 Layer III can carry.
pub const RATES: [u32; 9] = [8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000];
/// CBR bitrates (kbps) of MPEG-1 Layer III (32, 44.1 and 48 kHz).
const MPEG1_KBPS: [u32; 14] = [
    32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320,
];
/// CBR bitrates (kbps) of MPEG-2 and MPEG-2.5 Layer III (8 to 24 kHz).
const MPEG2_KBPS: [u32; 14] = [8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160];

/// How LAME spends bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mp3Mode {
    /// Constant bitrate in kbps (32..320 at 32/44.1/48 kHz, 8..160 below).
    Cbr { kbps: u32 },
    /// LAME's VBR (`-V`): 0 is the best and biggest, 9 the smallest.
    Vbr { quality: u8 },
}

impl Default for Mp3Mode {
    /// `-V 2`, LAME's recommended transparent VBR setting.
    fn default() -> Self {
        Mp3Mode::Vbr { quality: 2 }
    }
}

/// Options of the MP3 encoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mp3Options {
    pub mode: Mp3Mode,
    /// LAME's algorithm quality (`-q`): 0 is the best and slowest, 9 the fastest. LAME's own
    /// default is 3; in VBR, LAME only distinguishes 0-4 (all 0), 5, 6 and 7-9 (all 7).
    pub quality: u8,
}

impl Default for Mp3Options {
    fn default() -> Self {
        Mp3Options {
            mode: Mp3Mode::default(),
            quality: 3,
        }
    }
}

/// Writes an MP3 file through LAME. Memory is bounded: blocks go to LAME in chunks of at most
/// 8192 frames and the encoded bytes straight to the file.
pub struct Mp3Encoder {
    /// Undoes LAME's CBR input scale (see `new`).
    compensate: f32,
    path: PathBuf,
    out: BufWriter<File>,
    lame: mp3lame_encoder::Encoder,
    channels: usize,
    /// Encoded bytes of one LAME call.
    buf: Vec<u8>,
    /// Clipped input of one chunk, one per channel.
    scratch: [Vec<f32>; 2],
    /// Bytes written, to check the Info frame fits where LAME left its placeholder.
    written: u64,
    gapless: bool,
}

impl std::fmt::Debug for Mp3Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mp3Encoder")
            .field("path", &self.path)
            .field("channels", &self.channels)
            .field("written", &self.written)
            .field("gapless", &self.gapless)
            .finish_non_exhaustive()
    }
}

/// LAME set up for `spec` and `opts` (not yet initialised: `build` does that), or why it cannot
/// be (`path` names the output in errors).
fn configure(path: &Path, spec: &SignalSpec, opts: &Mp3Options) -> Result<Builder, EncodeError> {
    let unsupported = |detail: String| EncodeError::Unsupported {
        path: path.to_path_buf(),
        detail,
    };
    let channels = spec.channels();
    match channels {
        0 => {
            return Err(unsupported(
                "the signal has no channels: nothing to encode".into(),
            ));
        }
        1 | 2 => {}
        n => {
            return Err(unsupported(format!(
                "MP3 carries at most 2 channels, the signal has {n}: add a channel \
                     mapping (--channels 2)"
            )));
        }
    }
    let rate = spec.sample_rate;
    if !RATES.contains(&rate) {
        let advice = if rate > 48000 {
            "resample to 48000 or 44100".to_string()
        } else {
            let nearest = RATES
                .iter()
                .min_by_key(|r| r.abs_diff(rate))
                .expect("RATES is not empty");
            format!("resample to {nearest} (MP3 rates: {})", list(&RATES))
        };
        return Err(unsupported(format!("MP3 cannot store {rate} Hz: {advice}")));
    }
    if opts.quality > 9 {
        return Err(unsupported(format!(
            "LAME's algorithm quality is 0 (best, slowest) to 9 (fastest), not {}",
            opts.quality
        )));
    }
    let table = if rate >= 32000 {
        &MPEG1_KBPS
    } else {
        &MPEG2_KBPS
    };
    match opts.mode {
        Mp3Mode::Cbr { kbps } if !table.contains(&kbps) => {
            return Err(unsupported(format!(
                "MP3 at {rate} Hz has no {kbps} kbps bitrate: use one of {} kbps",
                list(table)
            )));
        }
        Mp3Mode::Vbr { quality } if quality > 9 => {
            return Err(unsupported(format!(
                "MP3 VBR quality is V0 (best, biggest) to V9 (smallest), not V{quality}"
            )));
        }
        _ => {}
    }

    let codec = |what: &str, e: &dyn std::fmt::Display| EncodeError::Codec {
        path: path.to_path_buf(),
        format: FORMAT,
        detail: format!("{what}: {e}"),
    };
    let mut b = Builder::new().ok_or_else(|| codec("lame_init", &"out of memory"))?;
    // Setters through the raw pointer: the wrapper's `Bitrate` lacks 56 and 144 kbps, and it
    // has no setter for the output rate or the automatic ID3 tags.
    // SAFETY: `b` owns a live `lame_global_flags`; these setters only store parameters.
    let set = unsafe {
        let p = b.as_ptr();
        ffi::lame_set_write_id3tag_automatic(p, 0);
        let mpeg_mode = if channels == 1 {
            ffi::MPEG_mode::MONO
        } else {
            ffi::MPEG_mode::JOINT_STEREO
        };
        [
            ("channels", ffi::lame_set_num_channels(p, channels as i32)),
            ("mode", ffi::lame_set_mode(p, mpeg_mode)),
            ("input rate", ffi::lame_set_in_samplerate(p, rate as i32)),
            // Pinned, or LAME picks a lower rate for low bitrates and resamples.
            ("output rate", ffi::lame_set_out_samplerate(p, rate as i32)),
            ("quality", ffi::lame_set_quality(p, i32::from(opts.quality))),
            ("Info tag", ffi::lame_set_bWriteVbrTag(p, 1)),
        ]
    };
    for (what, rc) in set {
        if rc < 0 {
            return Err(codec(&format!("setting the {what}"), &rc));
        }
    }
    match opts.mode {
        Mp3Mode::Cbr { kbps } => {
            b.set_vbr_mode(VbrMode::Off)
                .map_err(|e| codec("setting CBR", &e))?;
            // SAFETY: as above.
            let rc = unsafe { ffi::lame_set_brate(b.as_ptr(), kbps as i32) };
            if rc < 0 {
                return Err(codec("setting the bitrate", &rc));
            }
        }
        Mp3Mode::Vbr { quality } => {
            // LAME's default VBR algorithm (what `lame -V` uses).
            b.set_vbr_mode(VbrMode::Mtrh)
                .map_err(|e| codec("setting VBR", &e))?;
            // SAFETY: as above.
            let rc = unsafe { ffi::lame_set_VBR_q(b.as_ptr(), i32::from(quality)) };
            if rc < 0 {
                return Err(codec("setting the VBR quality", &rc));
            }
        }
    }
    Ok(b)
}

/// The frequency LAME low-passes at (Hz) for `spec` and `opts`, where it does: what it says
/// once its parameters are initialised (18.5 kHz for V2, 17 kHz for 128 kbit/s at 44.1 kHz;
/// none for V0 at 44.1 kHz).
pub fn lowpass_hz(spec: &SignalSpec, opts: &Mp3Options) -> Option<f64> {
    let mut b = configure(Path::new(""), spec, opts).ok()?;
    // SAFETY: as in `Mp3Encoder::new`: the state moves into the encoder built from it, which
    // lives until the end of this function; it is only read.
    let raw = unsafe { b.as_ptr() };
    let _lame = b.build().ok()?;
    // SAFETY: see `raw`.
    let hz = unsafe { ffi::lame_get_lowpassfreq(raw) };
    (hz > 0 && f64::from(hz) < f64::from(spec.sample_rate) / 2.0).then_some(f64::from(hz))
}

impl Mp3Encoder {
    /// Start an MP3 stream of `spec` into `file` (`path` names it in errors). `file` must be
    /// seekable: the Info frame is written over the start at [`Encoder::finish`].
    pub fn new(
        file: File,
        path: PathBuf,
        spec: &SignalSpec,
        opts: &Mp3Options,
    ) -> Result<Mp3Encoder, EncodeError> {
        let mut b = configure(&path, spec, opts)?;
        let (rate, channels) = (spec.sample_rate, spec.channels());
        let codec = |what: &str, e: &dyn std::fmt::Display| EncodeError::Codec {
            path: path.clone(),
            format: FORMAT,
            detail: format!("{what}: {e}"),
        };
        let unsupported = |detail: String| EncodeError::Unsupported {
            path: path.clone(),
            detail,
        };
        // SAFETY: the pointer stays valid: `build` moves the same LAME state into the encoder,
        // which lives as long as `self`; it is only read, right after the build.
        let raw = unsafe { b.as_ptr() };
        let lame = b.build().map_err(|e| match e {
            mp3lame_encoder::BuildError::BadBRate | mp3lame_encoder::BuildError::BadSampleFreq => {
                unsupported(format!("LAME refused {rate} Hz with {:?}: {e}", opts.mode))
            }
            e => codec("lame_init_params", &e),
        })?;
        // LAME's CBR presets scale the input by 0.95-0.98 (headroom against decoder clipping,
        // `abr_switch_map` in presets.c), multiplying any scale set before. Sluice has already
        // set the level (normalization, true-peak ceiling), so the input is pre-scaled by the
        // inverse and the output keeps the level it was given.
        // SAFETY: see `raw` above; the encoder owns the state.
        let lame_scale = unsafe { ffi::lame_get_scale(raw) };
        let compensate = if lame_scale > 0.0 && lame_scale.is_finite() {
            1.0 / lame_scale
        } else {
            1.0
        };
        Ok(Mp3Encoder {
            compensate,
            path,
            out: BufWriter::with_capacity(64 * 1024, file),
            lame,
            channels,
            buf: Vec::new(),
            scratch: [Vec::with_capacity(CHUNK), Vec::with_capacity(CHUNK)],
            written: 0,
            gapless: tag_fits(rate, channels, opts.mode),
        })
    }

    /// Whether the file gets LAME's Info frame, which lets decoders trim the encoder delay and
    /// padding to give back exactly the input's frames. Always for VBR; for CBR only when a
    /// frame has room for the tag: at least 64 kbps at 48 kHz and at 44.1 kHz stereo (56 at
    /// 44.1 kHz mono), 48 at 32 kHz (40 mono), 56 at 22.05 kHz, 64 at 24 kHz, 40 at 16 kHz,
    /// 32 at 11.025/12 kHz and 24 at 8 kHz.
    pub fn is_gapless(&self) -> bool {
        self.gapless
    }

    fn io(&self, source: std::io::Error) -> EncodeError {
        EncodeError::Io {
            path: self.path.clone(),
            source,
        }
    }

    fn codec(&self, what: &str, e: mp3lame_encoder::EncodeError) -> EncodeError {
        EncodeError::Codec {
            path: self.path.clone(),
            format: FORMAT,
            detail: format!("{what}: {e}"),
        }
    }

    /// Write what LAME put in `buf`.
    fn drain_buf(&mut self) -> Result<(), EncodeError> {
        if !self.buf.is_empty() {
            self.out.write_all(&self.buf).map_err(|e| self.io(e))?;
            self.written += self.buf.len() as u64;
            self.buf.clear();
        }
        Ok(())
    }

    /// Encode one chunk (at most [`CHUNK`] frames) starting at `start`.
    fn encode_chunk(&mut self, block: &Block, start: usize, n: usize) -> Result<(), EncodeError> {
        for (s, plane) in self.scratch.iter_mut().zip(block.planes()) {
            s.clear();
            // The trait's contract: samples outside [-1, 1] clip (LAME would keep them).
            s.extend(
                plane[start..start + n]
                    .iter()
                    .map(|&v| super::clip(v) * self.compensate),
            );
        }
        self.buf.clear();
        // mp3lame-encoder passes the spare capacity as LAME's buffer size, and LAME reads a
        // size of 0 as "unlimited": without this reserve it writes past the allocation.
        self.buf
            .reserve(mp3lame_encoder::max_required_buffer_size(n));
        let got = if self.channels == 1 {
            self.lame
                .encode_to_vec(MonoPcm(&self.scratch[0][..]), &mut self.buf)
        } else {
            self.lame.encode_to_vec(
                mp3lame_encoder::DualPcm {
                    left: &self.scratch[0][..],
                    right: &self.scratch[1][..],
                },
                &mut self.buf,
            )
        };
        got.map_err(|e| self.codec("encoding", e))?;
        self.drain_buf()
    }

    fn finish_inner(mut self) -> Result<(), EncodeError> {
        self.buf.clear();
        // At least 7200 bytes for the last frames (see `encode_chunk` for why it matters).
        self.buf
            .reserve(mp3lame_encoder::max_required_buffer_size(CHUNK));
        // `lame_encode_flush`: encodes what LAME still holds, padded with silence (counted in
        // the tag's padding). Not `FlushNoGap` (`lame_encode_flush_nogap`), which keeps the
        // last ~2000 frames back for a following track and so loses them at the end.
        self.lame
            .flush_to_vec::<FlushGap>(&mut self.buf)
            .map_err(|e| self.codec("flushing", e))?;
        self.drain_buf()?;
        // 0 when the bitrate leaves no room for the tag (see `is_gapless`).
        let size = self.lame.lame_tag_size();
        debug_assert_eq!(size > 0, self.gapless, "the Info frame fits as predicted");
        if size > 0 {
            let mut tag = Vec::with_capacity(size);
            let wrote = self
                .lame
                .lame_tag_encode_to_vec(&mut tag)
                .map(|n| n.get())
                .unwrap_or(0);
            if wrote == 0 || wrote as u64 > self.written {
                return Err(EncodeError::Codec {
                    path: self.path.clone(),
                    format: FORMAT,
                    detail: format!(
                        "LAME gave no Info frame to write ({wrote} of {size} bytes, {} written)",
                        self.written
                    ),
                });
            }
            // LAME's first output was a placeholder frame of exactly this size.
            self.out.flush().map_err(|e| self.io(e))?;
            let file = self.out.get_mut();
            let r = file
                .seek(SeekFrom::Start(0))
                .and_then(|_| file.write_all(&tag[..wrote]))
                .and_then(|_| file.seek(SeekFrom::End(0)).map(|_| ()));
            r.map_err(|e| self.io(e))?;
        }
        self.out.flush().map_err(|e| self.io(e))
    }
}

impl Encoder for Mp3Encoder {
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
        let frames = block.frames();
        let mut start = 0;
        while start < frames {
            let n = CHUNK.min(frames - start);
            self.encode_chunk(block, start, n)?;
            start += n;
        }
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<(), EncodeError> {
        (*self).finish_inner()
    }
}

/// Whether LAME's Info frame fits in one frame (LAME's `InitVbrTag`): VBR tags use a frame of
/// 128 (MPEG-1), 64 (MPEG-2) or 32 (MPEG-2.5) kbps; a CBR tag a frame of the stream's bitrate,
/// which must hold the side info and the 156-byte tag.
fn tag_fits(rate: u32, channels: usize, mode: Mp3Mode) -> bool {
    let Mp3Mode::Cbr { kbps } = mode else {
        return true;
    };
    let mpeg1 = rate >= 32000;
    let frame = if mpeg1 { 144_000 } else { 72_000 } * kbps / rate;
    let side_info = match (mpeg1, channels) {
        (true, 1) | (false, 2) => 17,
        (true, _) => 32,
        (false, _) => 9,
    };
    frame >= 4 + side_info + 156 && frame <= 2880
}

fn list(values: &[u32]) -> String {
    values
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// MP3 (LAME) in the format registry.
pub struct Mp3Codec;

/// The registered MP3 codec.
pub static CODEC: Mp3Codec = Mp3Codec;

static ABOUT: crate::formats::CodecInfo = crate::formats::CodecInfo {
    id: "mp3",
    name: FORMAT,
    names: &["mp3"],
    extension: "mp3",
    writes: &["mp3"],
    info: None,
    lossy: true,
    options: &[
        crate::formats::OptionSpec {
            opt: crate::formats::Opt::Bitrate,
            values: crate::formats::Values::List(&MPEG1_KBPS),
            says: "MP3 bitrates are 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320",
        },
        crate::formats::OptionSpec {
            opt: crate::formats::Opt::Quality,
            values: crate::formats::Values::Range {
                min: 0.0,
                max: 9.0,
                integer: true,
            },
            says: "MP3 VBR quality runs from 0 (best) to 9",
        },
    ],
    exclusive: Some((
        crate::formats::Opt::Bitrate,
        crate::formats::Opt::Quality,
        "constant bitrate or VBR quality",
    )),
    constraints: crate::formats::Constraints {
        sample_rates: Some(&RATES),
        rates_say: "MP3 stores 8000 to 48000 Hz (44100 or 48000 for music)",
        max_channels: Some(2),
    },
    tags: crate::formats::TagStyle::Lofty {
        file_type: lofty::file::FileType::Mpeg,
        tag_type: lofty::tag::TagType::Id3v2,
    },
    settings: "VBR quality 0-9 or a constant bitrate (kbps)",
    minute_bytes: 192_000 / 8 * 60,
    bext: false,
};

impl crate::formats::OutputCodec for Mp3Codec {
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
            quality: asked
                .bitrate_kbps
                .is_none()
                .then(|| asked.quality.map_or(2.0, f32::round)),
            ..Default::default()
        }
    }
    fn describe(&self, s: &crate::formats::Settings) -> String {
        match s.bitrate_kbps {
            Some(k) => format!("MP3 {k} kbit/s"),
            None => format!("MP3 VBR V{}", s.quality.unwrap_or(2.0)),
        }
    }
    fn lowpass_hz(&self, s: &crate::formats::Settings, spec: &SignalSpec) -> Option<f64> {
        lowpass_hz(spec, &options(s))
    }
    fn create(
        &self,
        s: &crate::formats::Settings,
        file: File,
        path: &std::path::Path,
        spec: &SignalSpec,
        _bext: Option<crate::riff::Bext>,
    ) -> Result<Box<dyn Encoder>, EncodeError> {
        Ok(Box::new(Mp3Encoder::new(
            file,
            path.to_path_buf(),
            spec,
            &options(s),
        )?))
    }
}

/// LAME's options for the registry's settings.
fn options(s: &crate::formats::Settings) -> Mp3Options {
    let mode = match (s.bitrate_kbps, s.quality) {
        (Some(kbps), _) => Mp3Mode::Cbr { kbps },
        (None, Some(q)) => Mp3Mode::Vbr {
            quality: q.round().clamp(0.0, 9.0) as u8,
        },
        (None, None) => Mp3Mode::default(),
    };
    Mp3Options {
        mode,
        ..Mp3Options::default()
    }
}
