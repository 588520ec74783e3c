//! Opening, probing and streaming decode of audio files through symphonia.
//!
//! [`Decoder::open`] reads only the headers; [`Decoder::next_block`] yields planar `f32` blocks
//! into one reused buffer, so memory is bounded by the packet size whatever the file's length.

use crate::error::{InputError, Panicked, catch_panic, guard};
use crate::formats::{self, FormatInfo};
use crate::riff::{self, RiffScan};
use serde::Serialize;
use std::fs::File;
use std::io::{BufReader, Read, Seek};
use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use symphonia::core::audio::{Channels, Position};
use symphonia::core::codecs::audio::{AudioCodecParameters, AudioDecoder, AudioDecoderOptions};
use symphonia::core::codecs::registry::CodecRegistry;
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, FormatReader, TrackType};
use symphonia::core::io::{MediaSourceStream, MediaSourceStreamOptions};
use symphonia::core::meta::MetadataOptions;

/// Where the frame count in [`StreamInfo::frames`] comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FrameCountSource {
    /// Declared by the container or stream header (exact for a well-formed file).
    Container,
    /// Counted by decoding the whole file.
    Decoded,
}

/// Format facts of one file, from its headers (or from a full decode, see
/// [`FrameCountSource`]).
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct StreamInfo {
    /// Registry id of the format (`wav`, `rf64`, `aiff`, `flac`, `mp3`, `ogg_vorbis`, `m4a_aac`,
    /// `m4a_alac`).
    #[serde(deserialize_with = "crate::interned::name")]
    pub format: crate::interned::Name,
    /// Human-readable format name.
    #[serde(deserialize_with = "crate::interned::name")]
    pub format_name: crate::interned::Name,
    /// The container as symphonia names it (`wave`, `aiff`, `flac`, `mp3`, `ogg`, `isomp4`...).
    #[serde(deserialize_with = "crate::interned::name")]
    pub container: crate::interned::Name,
    /// The codec's short name (`pcm_s16le`, `flac`, `mp3`, `aac`, `alac`, `vorbis`...).
    pub codec: String,
    /// `true` for lossless codecs.
    pub lossless: bool,
    pub sample_rate: u32,
    pub channels: u32,
    /// Speaker positions, in channel order (`FL`, `FR`, `FC`, `LFE`, `BL`, `BR`, `SL`, `SR`...),
    /// or `CH1`... for channels without a position.
    pub channel_layout: Vec<String>,
    /// A layout name where one applies (`mono`, `stereo`, `5.1`, `7.1`...).
    pub layout_name: Option<String>,
    /// Bits per sample of the stored PCM (absent for lossy codecs, which have none).
    pub bit_depth: Option<u32>,
    /// `int` or `float` for PCM, absent for compressed codecs.
    pub sample_type: Option<SampleType>,
    /// Frames (samples per channel) after encoder delay and padding are removed.
    pub frames: Option<u64>,
    pub frames_source: Option<FrameCountSource>,
    /// `frames / sample_rate`, in seconds.
    pub duration_seconds: Option<f64>,
    /// Encoder delay (priming) in frames, when the container states it.
    pub encoder_delay: Option<u32>,
    /// Encoder padding at the end in frames, when the container states it.
    pub encoder_padding: Option<u32>,
    /// Size of the file in bytes.
    pub file_size: u64,
    /// Average bitrate in bit/s: of the audio stream for lossy codecs (from the stream header
    /// when it has one, else file size over duration); absent for PCM.
    pub bitrate: Option<u64>,
    /// The file ends before its headers say it should (a cut-off copy or download).
    pub truncated: bool,
    /// Problems a user should know about; none of them stopped the file from being read.
    pub warnings: Vec<String>,
}

/// How PCM stores its samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SampleType {
    Int,
    Float,
}

impl SampleType {
    /// The name a report gives it: `int` or `float`.
    pub fn name(self) -> &'static str {
        match self {
            SampleType::Int => "int",
            SampleType::Float => "float",
        }
    }
}

impl StreamInfo {
    /// The integer bit depth the decoded samples are exact at: integer PCM, and every
    /// lossless codec that stores integers (FLAC, ALAC...), decode to values that a PCM of
    /// this depth holds bit for bit. `None` for float PCM and lossy codecs.
    pub fn integer_bits(&self) -> Option<u32> {
        match self.sample_type {
            Some(SampleType::Int) => self.bit_depth,
            Some(_) => None,
            None if self.lossless => self.bit_depth,
            None => None,
        }
    }
}

/// A block of planar `f32` audio: one slice per channel, all `frames` long.
#[derive(Debug, Default)]
pub struct AudioBlock {
    planes: Vec<Vec<f32>>,
    frames: usize,
}

impl AudioBlock {
    pub fn frames(&self) -> usize {
        self.frames
    }
    pub fn channels(&self) -> usize {
        self.planes.len()
    }
    /// The samples of channel `ch`.
    pub fn channel(&self, ch: usize) -> &[f32] {
        &self.planes[ch][..self.frames]
    }
    /// All channels.
    pub fn planes(&self) -> impl ExactSizeIterator<Item = &[f32]> {
        self.planes.iter().map(|p| &p[..self.frames])
    }
}

/// Open `path` for reading, with specific errors for the usual ways that fails. Returns the
/// file and its length.
pub fn open_checked(path: &Path) -> Result<(File, u64), InputError> {
    let meta = std::fs::metadata(path).map_err(|e| InputError::from_io(path, e))?;
    if meta.is_dir() {
        return Err(InputError::IsDirectory {
            path: path.to_path_buf(),
        });
    }
    if !meta.is_file() {
        return Err(InputError::NotAFile {
            path: path.to_path_buf(),
        });
    }
    let file = File::open(path).map_err(|e| InputError::from_io(path, e))?;
    if meta.len() == 0 {
        return Err(InputError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok((file, meta.len()))
}

/// What the first bytes say the container is, for error messages about broken files.
fn container_from_magic(head: &[u8]) -> Option<&'static str> {
    let h = |s: &[u8]| head.starts_with(s);
    if h(b"RIFF") || h(b"RF64") || h(b"BW64") {
        Some("WAV")
    } else if h(b"FORM") {
        Some("AIFF")
    } else if h(b"fLaC") {
        Some("FLAC")
    } else if h(b"OggS") {
        Some("Ogg")
    } else if head.len() >= 8 && &head[4..8] == b"ftyp" {
        Some("MP4")
    } else if h(b"ID3") || (head.len() >= 2 && head[0] == 0xFF && head[1] & 0xE0 == 0xE0) {
        Some("MP3")
    } else {
        None
    }
}

fn read_head(file: &mut File, n: usize) -> Vec<u8> {
    let mut head = Vec::with_capacity(n);
    let _ = file.by_ref().take(n as u64).read_to_end(&mut head);
    head
}

fn position_name(bit: u32) -> &'static str {
    const NAMES: [&str; 26] = [
        "FL", "FR", "FC", "LFE", "BL", "BR", "FLC", "FRC", "BC", "SL", "SR", "TC", "TFL", "TFC",
        "TFR", "TBL", "TBC", "TBR", "LFE2", "TSL", "TSR", "BFC", "BFL", "BFR", "FLW", "FRW",
    ];
    NAMES.get(bit as usize).copied().unwrap_or("?")
}

fn layout(channels: Option<&Channels>, count: u32) -> (Vec<String>, Option<String>) {
    match channels {
        Some(Channels::Positioned(pos)) => {
            let bits = pos.bits();
            let mut labels: Vec<String> = (0..32)
                .filter(|b| bits & (1 << b) != 0)
                .map(|b| position_name(b).to_string())
                .collect();
            // Some readers (FLAC) call a mono channel "front left"; mono is front centre.
            if labels == ["FL"] {
                labels = vec!["FC".to_string()];
            }
            let name = layout_name(*pos);
            (labels, name)
        }
        _ => {
            let labels = (1..=count).map(|c| format!("CH{c}")).collect();
            let name = match count {
                1 => Some("mono".to_string()),
                _ => None,
            };
            (labels, name)
        }
    }
}

fn layout_name(p: Position) -> Option<String> {
    let fl_fr = Position::FRONT_LEFT | Position::FRONT_RIGHT;
    let fc = Position::FRONT_CENTER;
    let lfe = Position::LFE1;
    let back = Position::REAR_LEFT | Position::REAR_RIGHT;
    let side = Position::SIDE_LEFT | Position::SIDE_RIGHT;
    let name = if p == fc || p == Position::FRONT_LEFT {
        "mono"
    } else if p == fl_fr {
        "stereo"
    } else if p == fl_fr | fc {
        "3.0"
    } else if p == fl_fr | lfe {
        "2.1"
    } else if p == fl_fr | back || p == fl_fr | side {
        "quad"
    } else if p == fl_fr | fc | back || p == fl_fr | fc | side {
        "5.0"
    } else if p == fl_fr | fc | lfe | back || p == fl_fr | fc | lfe | side {
        "5.1"
    } else if p == fl_fr | fc | lfe | back | side {
        "7.1"
    } else if p == fl_fr | fc | back | side {
        "7.0"
    } else if p == fl_fr | fc | lfe | back | Position::REAR_CENTER
        || p == fl_fr | fc | lfe | side | Position::REAR_CENTER
    {
        "6.1"
    } else {
        return None;
    };
    Some(name.to_string())
}

/// Classify a container + codec into a registry entry.
fn registry_entry(container: &str, codec: &str, riff: Option<&RiffScan>) -> &'static FormatInfo {
    let id = match container {
        "wave" | "wav" | "riff" => match riff.and_then(|r| r.form) {
            Some(riff::RiffForm::Rf64 | riff::RiffForm::Bw64) => "rf64",
            _ => "wav",
        },
        "aiff" => "aiff",
        "flac" => "flac",
        "ogg" if codec == "opus" => "opus",
        "ogg" => "ogg_vorbis",
        "isomp4" | "mp4" => {
            if codec == "alac" {
                "m4a_alac"
            } else {
                "m4a_aac"
            }
        }
        _ if codec.starts_with("mp") => "mp3",
        _ => "",
    };
    formats::by_id(id).unwrap_or(&UNKNOWN_FORMAT)
}

static UNKNOWN_FORMAT: FormatInfo = FormatInfo {
    id: "other",
    name: "other",
    extensions: &[],
    lossless: false,
    max_sample_rate: 0,
    bit_depths: &[],
    float_bit_depths: &[],
    decode: true,
    note: "",
};

/// Bits per sample from a PCM codec name (`pcm_f32le` → 32).
fn pcm_bits(codec: &str) -> Option<u32> {
    let rest = codec.strip_prefix("pcm_")?;
    let digits: String = rest
        .chars()
        .skip(1)
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

/// Bit depth from an ALAC magic cookie (ALACSpecificConfig, optionally inside its atom).
fn alac_bit_depth(cookie: &[u8]) -> Option<u32> {
    alac_cookie_depth(cookie).filter(|d| matches!(d, 16 | 20 | 24 | 32))
}

/// The bit depth field of an ALAC magic cookie, whatever it says.
fn alac_cookie_depth(cookie: &[u8]) -> Option<u32> {
    let cfg = if cookie.get(4..8) == Some(b"alac") {
        cookie.get(12..)?
    } else {
        cookie
    };
    Some(u32::from(*cfg.get(5)?))
}

/// Every decoder Sluice uses: symphonia's, Opus, and (with the `aac` feature) HE-AAC at its
/// full rate through FDK AAC.
pub fn codecs() -> &'static CodecRegistry {
    static REGISTRY: LazyLock<CodecRegistry> = LazyLock::new(|| {
        let mut r = CodecRegistry::new();
        symphonia::default::register_enabled_codecs(&mut r);
        r.register_audio_decoder::<crate::opus::OpusDecoder>();
        // Replaces symphonia's AAC decoder, which it still uses for AAC-LC.
        #[cfg(feature = "aac")]
        r.register_audio_decoder::<crate::aacdec::AacDecoder>();
        r
    });
    &REGISTRY
}

/// Where a decoder gives channels in another order than the file's WAVE order: symphonia's
/// ALAC decoder returns 7 channels as L R C LFE Cs Ls Rs and 8 as L R C LFE Lc Rc Ls Rs, where
/// the files (Apple's layouts, as ffmpeg and Apple's decoder give them) hold L R C LFE Ls Rs
/// Cs and L R C LFE Ls Rs Lc Rc. For each output channel, the decoder's plane.
fn plane_order(codec: &str, channels: u32) -> Option<&'static [usize]> {
    match (codec, channels) {
        ("alac", 7) => Some(&[0, 1, 2, 3, 5, 6, 4]),
        ("alac", 8) => Some(&[0, 1, 2, 3, 6, 7, 4, 5]),
        _ => None,
    }
}

fn codec_short_name(params: &AudioCodecParameters) -> Option<&'static str> {
    codecs()
        .get_audio_decoder(params.codec)
        .map(|reg| reg.codec.info.short_name)
}

/// How a stream stores its samples: `int` or `float` for PCM (absent for compressed codecs),
/// and the bits per sample of a lossless codec (from the parameters, the PCM codec's name, or
/// an ALAC cookie).
fn sample_format(
    codec: &str,
    lossless: bool,
    params: &AudioCodecParameters,
) -> (Option<SampleType>, Option<u32>) {
    let is_pcm = codec.starts_with("pcm");
    let sample_type = if is_pcm {
        Some(if codec.starts_with("pcm_f") {
            SampleType::Float
        } else {
            SampleType::Int
        })
    } else {
        None
    };
    let bit_depth = if lossless {
        params
            .bits_per_sample
            .or_else(|| pcm_bits(codec))
            .or_else(|| {
                (codec == "alac")
                    .then(|| params.extra_data.as_deref().and_then(alac_bit_depth))
                    .flatten()
            })
    } else {
        None
    };
    (sample_type, bit_depth)
}

/// The default audio track of `format`, and its codec parameters.
fn audio_track<'a>(
    path: &Path,
    format: &'a dyn FormatReader,
) -> Result<(&'a symphonia::core::formats::Track, AudioCodecParameters), InputError> {
    let track = format
        .default_track(TrackType::Audio)
        .ok_or_else(|| InputError::NoAudioTrack {
            path: path.to_path_buf(),
        })?;
    let params = track
        .codec_params
        .as_ref()
        .and_then(|cp| cp.audio())
        .ok_or_else(|| InputError::NoAudioTrack {
            path: path.to_path_buf(),
        })?
        .clone();
    Ok((track, params))
}

/// Refuse a stream whose header declares what Sluice does not support (rate, channels, bit
/// depth, packet size: [`formats::limits`]), before the codec's decoder or any analyzer sizes a
/// buffer from it.
fn check_supported(
    path: &Path,
    head: &[u8],
    container: &str,
    codec: &str,
    params: &AudioCodecParameters,
    sample_rate: u32,
    channels: u32,
) -> Result<(), InputError> {
    use formats::limits;
    let bits = params.bits_per_sample.or_else(|| pcm_bits(codec));
    // ALAC stores 16, 20, 24 or 32 bits (its decoder's arithmetic assumes one of them): the
    // sample entry's size and the magic cookie's depth are both checked.
    let cookie_bits = (codec == "alac")
        .then(|| params.extra_data.as_deref().and_then(alac_cookie_depth))
        .flatten();
    for b in [bits.filter(|_| codec == "alac"), cookie_bits]
        .into_iter()
        .flatten()
    {
        if !matches!(b, 16 | 20 | 24 | 32) {
            return Err(InputError::OutOfRange {
                path: path.to_path_buf(),
                format: "MP4".to_string(),
                range: limits::OutOfRange {
                    field: "bit depth",
                    value: b.to_string(),
                    supported: "16, 20, 24 or 32 for ALAC".to_string(),
                },
            });
        }
    }
    let lossless_int = matches!(codec, "flac" | "alac")
        || codec.starts_with("pcm_s")
        || codec.starts_with("pcm_u");
    limits::check_rate(sample_rate)
        .and_then(|()| {
            limits::check_channels(u64::from(channels)).map_err(|mut e| {
                // Symphonia gives no channel set for a count it cannot lay out (9 and more in
                // Vorbis, 255 in an ALAC cookie): the header's own number is not known here.
                if channels == 0 {
                    e.value = "0 (none the decoder could lay out)".to_string();
                }
                e
            })
        })
        .and_then(|()| match bits {
            Some(b) if codec.starts_with("pcm_f") => limits::check_bits(b, true),
            Some(b) if lossless_int => limits::check_bits(b, false),
            _ => Ok(()),
        })
        .and_then(|()| {
            params
                .max_frames_per_packet
                .map_or(Ok(()), limits::check_packet_frames)
        })
        .map_err(|range| InputError::OutOfRange {
            path: path.to_path_buf(),
            format: container_from_magic(head)
                .map(str::to_string)
                .unwrap_or_else(|| container.to_uppercase()),
            range,
        })
}

/// A file seen with a few 4-byte fields replaced: used to present RF64/BW64 as RIFF and to
/// give a truncated AIFF chunk sizes that fit the file, so symphonia reads what exists.
struct PatchedFile {
    file: File,
    pos: u64,
    len: u64,
    patches: Vec<(u64, [u8; 4])>,
}

impl Read for PatchedFile {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let start = self.pos;
        let n = self.file.read(buf)?;
        let end = start + n as u64;
        for (at, bytes) in &self.patches {
            for (k, b) in bytes.iter().enumerate() {
                let off = at + k as u64;
                if off >= start && off < end {
                    buf[(off - start) as usize] = *b;
                }
            }
        }
        self.pos = end;
        Ok(n)
    }
}

impl std::io::Seek for PatchedFile {
    fn seek(&mut self, to: std::io::SeekFrom) -> std::io::Result<u64> {
        self.pos = self.file.seek(to)?;
        Ok(self.pos)
    }
}

impl symphonia::core::io::MediaSource for PatchedFile {
    fn is_seekable(&self) -> bool {
        true
    }
    fn byte_len(&self) -> Option<u64> {
        Some(self.len)
    }
}

/// A file presented from `offset` on: position 0 is the file's `offset`.
struct OffsetFile {
    file: File,
    offset: u64,
    len: u64,
}

impl OffsetFile {
    fn new(mut file: File, offset: u64, len: u64) -> OffsetFile {
        // Positioned at the new start; a failed seek shows in the first read.
        let _ = file.seek(std::io::SeekFrom::Start(offset));
        OffsetFile { file, offset, len }
    }
}

impl Read for OffsetFile {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.file.read(buf)
    }
}

impl std::io::Seek for OffsetFile {
    fn seek(&mut self, to: std::io::SeekFrom) -> std::io::Result<u64> {
        use std::io::SeekFrom;
        let to = match to {
            SeekFrom::Start(p) => SeekFrom::Start(self.offset.saturating_add(p)),
            other => other,
        };
        let at = self.file.seek(to)?;
        if at < self.offset {
            // Before the start: back to it, and say so.
            self.file.seek(SeekFrom::Start(self.offset))?;
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "seek before the start of the audio",
            ));
        }
        Ok(at - self.offset)
    }
}

impl symphonia::core::io::MediaSource for OffsetFile {
    fn is_seekable(&self) -> bool {
        true
    }
    fn byte_len(&self) -> Option<u64> {
        Some(self.len.saturating_sub(self.offset))
    }
}

/// A truncated AIFF/AIFF-C: where its size fields are and what the file really holds.
struct AiffCut {
    /// Offset of the SSND chunk's size field.
    ssnd_size_at: u64,
    /// Bytes of SSND payload present.
    ssnd_available: u64,
}

/// Walk the chunks of an AIFF file; `Some` when its SSND chunk runs past the end of the file.
fn aiff_cut<R: Read + std::io::Seek>(r: &mut R, len: u64) -> std::io::Result<Option<AiffCut>> {
    let cut = crate::headers::walk_aiff(r, len, |_, chunk| {
        Ok((&chunk.id == b"SSND").then(|| {
            let available = len.saturating_sub(chunk.payload);
            (available < chunk.size).then_some(AiffCut {
                ssnd_size_at: chunk.size_at,
                ssnd_available: available,
            })
        }))
    })?;
    Ok(cut.flatten())
}

/// A streaming decoder of one file's default audio track.
pub struct Decoder {
    path: PathBuf,
    info: StreamInfo,
    format: Box<dyn FormatReader>,
    decoder: Option<Box<dyn AudioDecoder>>,
    params: AudioCodecParameters,
    track_id: u32,
    block: AudioBlock,
    frames_decoded: u64,
    skipped_packets: u64,
    /// The RIFF chunk walk of a WAV file (its `bext` and INFO are tags).
    riff: Option<RiffScan>,
    /// Frames still to drop at the start (MP4 edit-list priming).
    skip_remaining: u64,
    /// Frames to yield at most (MP4 edit-list presentation length).
    limit: Option<u64>,
    done: bool,
    /// Plain integer or float PCM: packets are converted here directly (one tight loop instead
    /// of symphonia's decode and copy; the values are identical, the conversions are exact).
    pcm: Option<PcmLayout>,
    /// Samples that were not finite numbers (NaN or ±infinity), read as silence: how many, and
    /// the first (frame, channel).
    non_finite: u64,
    first_non_finite: Option<(u64, usize)>,
    /// For each output channel, the decoder's plane that holds it, where the decoder's order
    /// is not the file's (see [`plane_order`]).
    plane_order: Option<&'static [usize]>,
}

/// Sample encodings converted directly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PcmKind {
    U8,
    S16Le,
    S16Be,
    S24Le,
    S24Be,
    S32Le,
    S32Be,
    F32Le,
    F32Be,
}

#[derive(Debug, Clone, Copy)]
struct PcmLayout {
    kind: PcmKind,
    /// Bytes per sample.
    bytes: usize,
    channels: usize,
}

impl PcmLayout {
    /// The direct path applies to packed PCM whose frame size is exactly channels × bytes.
    fn detect(info: &StreamInfo, riff: Option<&RiffScan>) -> Option<PcmLayout> {
        let (kind, bytes) = match info.codec.as_str() {
            "pcm_u8" => (PcmKind::U8, 1),
            "pcm_s16le" => (PcmKind::S16Le, 2),
            "pcm_s16be" => (PcmKind::S16Be, 2),
            "pcm_s24le" => (PcmKind::S24Le, 3),
            "pcm_s24be" => (PcmKind::S24Be, 3),
            "pcm_s32le" => (PcmKind::S32Le, 4),
            "pcm_s32be" => (PcmKind::S32Be, 4),
            "pcm_f32le" => (PcmKind::F32Le, 4),
            "pcm_f32be" => (PcmKind::F32Be, 4),
            _ => return None,
        };
        let channels = info.channels as usize;
        if channels == 0 {
            return None;
        }
        // A WAV whose block align pads samples (24-bit in 4 bytes...) stays with symphonia.
        if let Some(r) = riff
            && r.block_align.map(usize::from) != Some(channels * bytes)
        {
            return None;
        }
        Some(PcmLayout {
            kind,
            bytes,
            channels,
        })
    }

    /// Convert interleaved `data` into `planes` (resized to the frame count). `false` when
    /// the packet is not a whole number of frames.
    fn convert(&self, data: &[u8], planes: &mut [Vec<f32>]) -> bool {
        let frame = self.bytes * self.channels;
        if !data.len().is_multiple_of(frame) || planes.len() != self.channels {
            return false;
        }
        let n = data.len() / frame;
        for (c, plane) in planes.iter_mut().enumerate() {
            plane.resize(n, 0.0);
            let at = c * self.bytes;
            let src = data.chunks_exact(frame).map(|f| &f[at..at + self.bytes]);
            macro_rules! fill {
                ($conv:expr) => {
                    for (o, b) in plane.iter_mut().zip(src) {
                        *o = $conv(b);
                    }
                };
            }
            const S16: f32 = 1.0 / 32_768.0;
            const S24: f32 = 1.0 / 8_388_608.0;
            const S32: f32 = 1.0 / 2_147_483_648.0;
            match self.kind {
                PcmKind::U8 => fill!(|b: &[u8]| (f32::from(b[0]) - 128.0) / 128.0),
                PcmKind::S16Le => {
                    fill!(|b: &[u8]| f32::from(i16::from_le_bytes([b[0], b[1]])) * S16)
                }
                PcmKind::S16Be => {
                    fill!(|b: &[u8]| f32::from(i16::from_be_bytes([b[0], b[1]])) * S16)
                }
                PcmKind::S24Le => {
                    fill!(|b: &[u8]| (i32::from_le_bytes([0, b[0], b[1], b[2]]) >> 8) as f32 * S24)
                }
                PcmKind::S24Be => {
                    fill!(|b: &[u8]| (i32::from_be_bytes([b[0], b[1], b[2], 0]) >> 8) as f32 * S24)
                }
                PcmKind::S32Le => {
                    fill!(|b: &[u8]| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32 * S32)
                }
                PcmKind::S32Be => {
                    fill!(|b: &[u8]| i32::from_be_bytes([b[0], b[1], b[2], b[3]]) as f32 * S32)
                }
                PcmKind::F32Le => fill!(|b: &[u8]| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
                PcmKind::F32Be => fill!(|b: &[u8]| f32::from_be_bytes([b[0], b[1], b[2], b[3]])),
            }
        }
        true
    }
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder")
            .field("path", &self.path)
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

fn map_probe_error(path: &Path, head: &[u8], e: SymError) -> InputError {
    let path = path.to_path_buf();
    let container = container_from_magic(head);
    match e {
        SymError::IoError(io) if io.kind() != std::io::ErrorKind::UnexpectedEof => {
            InputError::Io { path, source: io }
        }
        SymError::Unsupported(what) => match container {
            Some("MP4") if what.contains("moov") => InputError::Malformed {
                path,
                format: "MP4".to_string(),
                detail: "it has no 'moov' atom (the index a recorder writes last), so the file \
                         is incomplete or truncated and its audio cannot be located"
                    .to_string(),
            },
            Some(c) if what.contains("codec") => InputError::UnsupportedFormat {
                path,
                format: c.to_string(),
                reason: what.to_string(),
            },
            Some(c) => InputError::Malformed {
                path,
                format: c.to_string(),
                detail: what.to_string(),
            },
            None => InputError::Unrecognized {
                path,
                looks_like: formats::sniff_non_audio(head).map(str::to_string),
            },
        },
        other => match container {
            Some(c) => InputError::Malformed {
                path,
                format: c.to_string(),
                detail: describe_sym_error(&other),
            },
            None => InputError::Unrecognized {
                path,
                looks_like: formats::sniff_non_audio(head).map(str::to_string),
            },
        },
    }
}

fn describe_sym_error(e: &SymError) -> String {
    match e {
        SymError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            "the file ends inside its header".to_string()
        }
        SymError::DecodeError(m) => m.to_string(),
        SymError::LimitError(m) => format!("a size limit was exceeded ({m})"),
        other => other.to_string(),
    }
}

/// What our own container readers found before symphonia opens the file: the facts symphonia
/// gets wrong or does not give (RF64 sizes, truncated AIFF, MP4 edit lists, WAV truncation).
struct Prescan {
    riff: Option<RiffScan>,
    aiff_cut: Option<AiffCut>,
    mp4: Option<crate::mp4::Mp4Scan>,
    /// An MPEG audio stream that ends inside a frame.
    mpa_cut: Option<crate::mpa::Cut>,
    /// Where the MPEG audio after an ID3v2 tag starts, when a frame header is right there.
    id3_end: Option<u64>,
    /// What the container's own header declares, against what Sluice supports
    /// ([`crate::headers`]).
    header: Result<(), formats::limits::OutOfRange>,
}

/// The frame accounting of one stream once the prescan is applied to symphonia's track.
struct Accounting {
    frames: Option<u64>,
    /// Frames to drop at the start (MP4 edit-list priming).
    skip: u64,
    /// Frames to yield at most.
    limit: Option<u64>,
    delay: Option<u32>,
    padding: Option<u32>,
    truncated: bool,
    warnings: Vec<String>,
}

fn clamp_u32(v: u64) -> u32 {
    v.min(u64::from(u32::MAX)) as u32
}

impl Prescan {
    /// Read what our readers need from the start of `file`; problems here only mean the
    /// prescan found nothing (symphonia then has the last word).
    fn read(file: &mut File, head: &[u8], len: u64) -> std::io::Result<Prescan> {
        let mut r = BufReader::with_capacity(8192, file);
        let riff = riff::scan(&mut r, len)?;
        let (aiff_cut, aiff_header) = if head.starts_with(b"FORM") {
            (
                aiff_cut(&mut r, len).unwrap_or(None),
                crate::headers::check_aiff(&mut r, len).unwrap_or(Ok(())),
            )
        } else {
            (None, Ok(()))
        };
        let header = riff
            .as_ref()
            .map_or(Ok(()), crate::headers::check_wav)
            .and(aiff_header)
            .and_then(|()| crate::headers::check_flac(head));
        let mp4 = if head.get(4..8) == Some(b"ftyp") {
            crate::mp4::scan(&mut r, len).unwrap_or(None)
        } else {
            None
        };
        let mpa_cut = if head.starts_with(b"ID3")
            || (head.len() >= 2 && head[0] == 0xFF && head[1] & 0xE0 == 0xE0)
        {
            crate::mpa::cut(&mut r, len).unwrap_or(None)
        } else {
            None
        };
        let id3_end = crate::mpa::after_id3(&mut r, len).unwrap_or(None);
        Ok(Prescan {
            riff,
            aiff_cut,
            mp4,
            mpa_cut,
            id3_end,
            header,
        })
    }

    fn rf64(&self) -> bool {
        self.riff
            .as_ref()
            .is_some_and(|r| matches!(r.form, Some(riff::RiffForm::Rf64 | riff::RiffForm::Bw64)))
    }

    /// A plain RIFF WAVE of PCM or float samples whose data chunk declares more than the file
    /// holds: where its size field is, and the whole frames' bytes the file holds.
    fn wav_cut(&self) -> Option<(u64, u64)> {
        let scan = self.riff.as_ref()?;
        if self.rf64() || !scan.data_truncated() {
            return None;
        }
        let align = u64::from(scan.block_align.filter(|a| *a > 0)?);
        if !matches!(scan.format_tag, Some(1 | 3 | 0xFFFE)) {
            return None;
        }
        let d = scan.data?;
        Some((d.offset - 4, scan.data_available / align * align))
    }

    /// The byte source symphonia reads: the file, or the file with size fields mended.
    fn source(&self, file: File, len: u64) -> Box<dyn symphonia::core::io::MediaSource> {
        let patches = if self.rf64() {
            // Symphonia reads RIFF WAVE but not RF64/BW64. Both are RIFF with a `ds64` chunk
            // holding the 64-bit sizes and 0xFFFFFFFF in the 32-bit fields, which symphonia
            // reads as "until the end of the file". So present the file with a RIFF id; the
            // frame count (and where the audio ends) comes from `ds64`.
            vec![(0, *b"RIFF")]
        } else if let Some((data_size_at, available)) = self.wav_cut() {
            // A WAV whose data chunk declares more than the file holds (cut short, or a
            // header that lies, 2 GiB for a few seconds): symphonia refuses a data chunk
            // larger than its RIFF chunk, so present sizes that fit what the file holds.
            vec![
                (4, clamp_u32(len - 8).to_le_bytes()),
                (data_size_at, clamp_u32(available).to_le_bytes()),
            ]
        } else if let Some(cut) = &self.aiff_cut {
            // Sizes that fit what the file holds, so the reader gets to the audio that exists.
            vec![
                (4, clamp_u32(len - 8).to_be_bytes()),
                (
                    cut.ssnd_size_at,
                    clamp_u32(cut.ssnd_available).to_be_bytes(),
                ),
            ]
        } else if let Some(start) = self.id3_end {
            // MPEG audio after an ID3v2 tag: symphonia is given the audio alone. Its probe,
            // after reading some tags (lofty's ID3v2.3 with UTF-16 text, for one), goes on
            // searching inside them and takes a byte-order mark (FF FE) for a layer I frame.
            // The tags are read by lofty elsewhere; nothing of symphonia's reading of them is
            // used.
            return Box::new(OffsetFile::new(file, start, len));
        } else {
            return Box::new(file);
        };
        Box::new(PatchedFile {
            file,
            pos: 0,
            len,
            patches,
        })
    }

    /// Apply what the prescan knows to the track symphonia read.
    fn account(
        &self,
        container: &str,
        track: &symphonia::core::formats::Track,
        bit_depth: Option<u32>,
        channels: u32,
    ) -> Accounting {
        let mut acc = Accounting {
            frames: track.num_frames,
            skip: 0,
            limit: None,
            delay: track.delay,
            padding: track.padding,
            truncated: false,
            warnings: Vec::new(),
        };
        let mp4 = self
            .mp4
            .filter(|_| container == "isomp4" && track.delay.is_none());
        if let Some(w) = mp4.and_then(|m| m.window) {
            let total = acc.frames.unwrap_or(0);
            let length = w.length.unwrap_or(total.saturating_sub(w.skip));
            acc.skip = w.skip;
            acc.limit = Some(length);
            if w.skip > 0 {
                acc.delay = Some(clamp_u32(w.skip));
            }
            if total > w.skip + length {
                acc.padding = Some(clamp_u32(total - w.skip - length));
            }
            acc.frames = Some(length);
        }
        if let Some(cut) = &self.aiff_cut {
            acc.truncated = true;
            acc.warnings.push(format!(
                "truncated: the SSND chunk holds only {} bytes of audio, fewer than its header declares",
                cut.ssnd_available
            ));
            // SSND payload starts with 8 bytes (offset, block size) before the samples.
            if let (Some(bits), true) = (bit_depth, channels > 0) {
                let frame_bytes = u64::from(bits.div_ceil(8)) * u64::from(channels);
                let n = cut.ssnd_available.saturating_sub(8) / frame_bytes;
                acc.frames = Some(n);
                acc.limit = Some(n);
            }
        }
        // An MP3 with a Xing/Info frame count is checked against it when decoding ends (the
        // walk leaves those alone); one without has only its frames to say it was cut.
        if let Some(cut) = self
            .mpa_cut
            .filter(|_| matches!(container, "mp1" | "mp2" | "mp3"))
        {
            acc.truncated = true;
            acc.warnings.push(format!(
                "truncated: the file ends inside MPEG audio frame {}, which holds {} of its {} bytes",
                cut.whole_frames + 1,
                cut.available,
                cut.frame_bytes
            ));
        }
        if mp4.is_some_and(|m| m.truncated) {
            acc.truncated = true;
            acc.warnings.push(
                "truncated: a top-level MP4 atom extends past the end of the file".to_string(),
            );
        }
        if let Some(scan) = &self.riff {
            acc.truncated |= scan.data_truncated();
            acc.warnings.extend(scan.warnings.iter().cloned());
            if self.rf64() {
                // The data chunk's real size comes from ds64; audio ends there even if chunks
                // follow.
                if let (Some(d), Some(align)) = (scan.data, scan.block_align.filter(|a| *a > 0)) {
                    let n = d.size.min(scan.data_available) / u64::from(align);
                    acc.frames = Some(n);
                    acc.limit = Some(n);
                }
            } else if let Some((_, available)) = self.wav_cut() {
                let n = available / u64::from(scan.block_align.unwrap_or(1).max(1));
                acc.frames = Some(n);
                acc.limit = Some(n);
            } else if let (Some(n), Some(d)) = (acc.frames, scan.data)
                && scan.data_truncated()
                && d.size > 0
            {
                // A WAV whose data chunk claims more than the file holds: the reader's frame
                // count is the declared one; report what the file really holds.
                let frame_bytes = d.size / n.max(1);
                acc.frames = Some(scan.data_available / frame_bytes.max(1));
            }
        }
        acc
    }
}

impl Decoder {
    /// Open `path` and read its headers. No audio is decoded yet.
    pub fn open(path: &Path) -> Result<Decoder, InputError> {
        #[cfg(feature = "count-opens")]
        opens::count(path);
        let (mut file, file_size) = open_checked(path)?;
        let head = read_head(&mut file, 64);
        if let Some(what) = formats::sniff_non_audio(&head)
            && what != "text"
        {
            return Err(if head.starts_with(b"MThd") {
                InputError::UnsupportedFormat {
                    path: path.to_path_buf(),
                    format: "MIDI".to_string(),
                    reason:
                        "a MIDI file holds notes, not audio; render it with a synthesizer first"
                            .to_string(),
                }
            } else {
                InputError::Unrecognized {
                    path: path.to_path_buf(),
                    looks_like: Some(what.to_string()),
                }
            });
        }
        let io = |e| InputError::from_io(path, e);
        let prescan = Prescan::read(&mut file, &head, file_size).map_err(io)?;
        // (A file cut short keeps the offsets of what it lost: refused only when it says it is
        // whole, or when the offset is past anything a file can be.)
        if let Some((index, offset)) = prescan.mp4.as_ref().and_then(|m| {
            m.bad_chunk_offset
                .filter(|(_, o)| !m.truncated || *o >= 1 << 62)
        }) {
            return Err(InputError::Malformed {
                path: path.to_path_buf(),
                format: "MP4".to_string(),
                detail: format!(
                    "chunk offset {index} is {offset}, past the end of the file ({file_size} bytes)"
                ),
            });
        }
        if let Err(range) = prescan.header.clone() {
            return Err(InputError::OutOfRange {
                path: path.to_path_buf(),
                format: container_from_magic(&head).unwrap_or("audio").to_string(),
                range,
            });
        }
        file.seek(std::io::SeekFrom::Start(0)).map_err(io)?;
        guard(path, "decoder", || {
            let source = prescan.source(file, file_size);
            Self::open_inner(path, source, file_size, &head, prescan)
        })
    }

    /// Decode a stream read from start to end, never seeking: `reader` may still be growing
    /// (an encoder's output read while it writes; see `export`). `path` names it in errors and
    /// its extension hints the format. None of the file's own accounting applies (no prescan,
    /// no gapless trim from a header still to be rewritten): the frames are all the codec's.
    pub fn open_stream(
        path: &Path,
        reader: impl std::io::Read + Send + Sync + 'static,
    ) -> Result<Decoder, InputError> {
        let source = Box::new(symphonia::core::io::ReadOnlySource::new(reader));
        let prescan = Prescan {
            riff: None,
            aiff_cut: None,
            mp4: None,
            mpa_cut: None,
            id3_end: None,
            header: Ok(()),
        };
        guard(path, "decoder", || {
            Self::open_inner(path, source, 0, &[], prescan)
        })
    }

    fn open_inner(
        path: &Path,
        source: Box<dyn symphonia::core::io::MediaSource>,
        file_size: u64,
        head: &[u8],
        prescan: Prescan,
    ) -> Result<Decoder, InputError> {
        let mss = MediaSourceStream::new(source, MediaSourceStreamOptions::default());
        let mut hint = Hint::new();
        if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
            hint.with_extension(ext);
        }
        let format = symphonia::default::get_probe()
            .probe(
                &hint,
                mss,
                FormatOptions::default(),
                MetadataOptions::default(),
            )
            .map_err(|e| map_probe_error(path, head, e))?;
        let container = format.format_info().short_name;
        let (track, params) = audio_track(path, format.as_ref())?;
        let track_id = track.id;
        let codec = codec_short_name(&params).ok_or_else(|| InputError::UnsupportedCodec {
            path: path.to_path_buf(),
            codec: params.codec.to_string(),
        })?;
        let sample_rate =
            params
                .sample_rate
                .filter(|&r| r > 0)
                .ok_or_else(|| InputError::Malformed {
                    path: path.to_path_buf(),
                    format: container.to_string(),
                    detail: "the header gives no sample rate".to_string(),
                })?;
        // HE-AAC signalled explicitly decodes at its extension rate, and HE-AAC v2's one coded
        // channel in stereo (crate::aacdec).
        #[cfg(feature = "aac")]
        let params = crate::aacdec::as_decoded(params);
        #[cfg(feature = "aac")]
        let sample_rate = match codec {
            "aac" => params
                .extra_data
                .as_deref()
                .and_then(crate::aacdec::he_aac_rate)
                .unwrap_or(sample_rate),
            _ => sample_rate,
        };
        let entry = registry_entry(container, codec, prescan.riff.as_ref());
        let channels = params
            .channels
            .as_ref()
            .map(|c| c.count() as u32)
            .unwrap_or(0);
        check_supported(path, head, container, codec, &params, sample_rate, channels)?;
        let (channel_layout, layout_name) = layout(params.channels.as_ref(), channels);
        let (sample_type, bit_depth) = sample_format(codec, entry.lossless, &params);
        let Accounting {
            frames,
            skip: skip_remaining,
            limit,
            delay: encoder_delay,
            padding: encoder_padding,
            truncated,
            warnings,
        } = prescan.account(container, track, bit_depth, channels);
        // An Ogg Opus track's length is its last granule position, which counts the pre-skip
        // (the track's delay) that the decoder drops.
        let frames = match (entry.id, encoder_delay) {
            ("opus", Some(d)) => frames.map(|f| f.saturating_sub(u64::from(d))),
            _ => frames,
        };
        let duration_seconds = frames.map(|f| f as f64 / f64::from(sample_rate));
        let bitrate = if entry.lossless {
            None
        } else {
            duration_seconds
                .filter(|d| *d > 0.0)
                .map(|d| (file_size as f64 * 8.0 / d).round() as u64)
        };
        let info = StreamInfo {
            format: entry.id,
            format_name: entry.name,
            container,
            codec: codec.to_string(),
            lossless: entry.lossless,
            sample_rate,
            channels,
            channel_layout,
            layout_name,
            bit_depth,
            sample_type,
            frames,
            frames_source: frames.map(|_| FrameCountSource::Container),
            duration_seconds,
            encoder_delay,
            encoder_padding,
            file_size,
            bitrate,
            truncated,
            warnings,
        };
        let pcm = PcmLayout::detect(&info, prescan.riff.as_ref());
        let plane_order = plane_order(&info.codec, info.channels);
        Ok(Decoder {
            path: path.to_path_buf(),
            plane_order,
            riff: prescan.riff,
            pcm,
            non_finite: 0,
            first_non_finite: None,
            info,
            format,
            decoder: None,
            params,
            track_id,
            block: AudioBlock::default(),
            frames_decoded: 0,
            skipped_packets: 0,
            skip_remaining,
            limit,
            done: false,
        })
    }

    /// Decode plain PCM through symphonia's decoder too, not the direct conversion (for tests
    /// that compare the two).
    #[doc(hidden)]
    pub fn without_direct_pcm(mut self) -> Self {
        self.pcm = None;
        self
    }

    /// `true` when packets are converted directly (plain PCM).
    #[doc(hidden)]
    pub fn direct_pcm(&self) -> bool {
        self.pcm.is_some()
    }

    /// Format facts from the headers, updated with what decoding found so far.
    pub fn info(&self) -> &StreamInfo {
        &self.info
    }

    /// Format facts from the headers, without decoding.
    pub fn into_info(self) -> StreamInfo {
        self.info
    }

    /// The RIFF chunk walk of a WAV/RF64/BW64 file.
    pub(crate) fn riff_scan(&self) -> Option<&RiffScan> {
        self.riff.as_ref()
    }

    /// The file being decoded.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Frames yielded so far.
    pub fn frames_decoded(&self) -> u64 {
        self.frames_decoded
    }

    /// Decode the next block. `Ok(None)` at the end of the stream; then [`Decoder::info`] holds
    /// the decoded frame count and any truncation found. The block is valid until the next call.
    pub fn next_block(&mut self) -> Result<Option<&AudioBlock>, InputError> {
        if self.done {
            return Ok(None);
        }
        let got = catch_panic(|| self.decode_next()).unwrap_or_else(|Panicked(detail)| {
            Err(InputError::ParserFailure {
                path: self.path.clone(),
                component: "decoder",
                detail,
            })
        });
        match got {
            Ok(true) => {
                // Integer PCM cannot hold anything but numbers; float PCM and the decoders'
                // float output can (a damaged or hostile file): such samples become silence,
                // which every consumer can measure and encode, with a warning at the end.
                if self.info.sample_type != Some(SampleType::Int) {
                    self.silence_non_finite();
                }
                Ok(Some(&self.block))
            }
            Ok(false) => {
                self.finish();
                Ok(None)
            }
            Err(e) => {
                self.done = true;
                Err(e)
            }
        }
    }

    /// Decode the whole file, discarding the audio; returns the final [`StreamInfo`].
    pub fn decode_to_end(mut self) -> Result<StreamInfo, InputError> {
        while self.next_block()?.is_some() {}
        Ok(self.info)
    }

    /// Replaces the block's non-finite samples by zero and counts them.
    fn silence_non_finite(&mut self) {
        const EXP: u32 = 0x7f80_0000;
        let n = self.block.frames;
        let start = self.frames_decoded - n as u64;
        for (ch, plane) in self.block.planes.iter_mut().enumerate() {
            let len = n.min(plane.len());
            let plane = &mut plane[..len];
            // All exponent bits set: NaN or infinity. An or over the plane vectorises; the
            // rare plane that has one is then walked.
            let any = plane
                .iter()
                .fold(0u32, |a, v| a | u32::from(v.to_bits() & EXP == EXP));
            if any == 0 {
                continue;
            }
            for (i, v) in plane.iter_mut().enumerate() {
                if !v.is_finite() {
                    *v = 0.0;
                    self.non_finite += 1;
                    let at = (start + i as u64, ch);
                    if self.first_non_finite.is_none_or(|f| at < f) {
                        self.first_non_finite = Some(at);
                    }
                }
            }
        }
    }

    fn finish(&mut self) {
        self.done = true;
        if let Some((frame, ch)) = self.first_non_finite {
            self.info.warnings.push(format!(
                "{} sample(s) are NaN or infinite, the first at {:.3} s (frame \
                 {frame}, channel {}): read as silence",
                self.non_finite,
                frame as f64 / f64::from(self.info.sample_rate.max(1)),
                ch + 1
            ));
        }
        let decoded = self.frames_decoded;
        if let (Some(FrameCountSource::Container), Some(declared)) =
            (self.info.frames_source, self.info.frames)
            && decoded < declared
        {
            self.mark_truncated(&format!(
                "decoded {decoded} frames but the header declares {declared}"
            ));
        }
        if self.skipped_packets > 0 {
            self.info.warnings.push(format!(
                "{} damaged packet(s) could not be decoded and were skipped",
                self.skipped_packets
            ));
        }
        self.info.frames = Some(decoded);
        self.info.frames_source = Some(FrameCountSource::Decoded);
        self.info.duration_seconds = Some(decoded as f64 / f64::from(self.info.sample_rate));
        if !self.info.lossless
            && decoded > 0
            && self.info.bitrate.is_none()
            && let Some(d) = self.info.duration_seconds
        {
            self.info.bitrate = Some((self.info.file_size as f64 * 8.0 / d).round() as u64);
        }
    }

    fn decoder(&mut self) -> Result<&mut Box<dyn AudioDecoder>, InputError> {
        if self.decoder.is_none() {
            let opts = AudioDecoderOptions::default().gapless(true);
            let d = codecs()
                .make_audio_decoder(&self.params, &opts)
                .map_err(|e| match e {
                    SymError::Unsupported(_) => InputError::UnsupportedCodec {
                        path: self.path.clone(),
                        codec: self.info.codec.clone(),
                    },
                    other => InputError::Malformed {
                        path: self.path.clone(),
                        format: self.info.format_name.to_string(),
                        detail: describe_sym_error(&other),
                    },
                })?;
            self.decoder = Some(d);
        }
        Ok(self.decoder.as_mut().expect("decoder was just created"))
    }

    /// The container's next packet; `None` at its end, at a chained stream's change (a
    /// warning), or where the file is cut off or its container damaged after some audio
    /// (marked truncated).
    fn next_packet(&mut self) -> Result<Option<symphonia::core::packet::Packet>, InputError> {
        match self.format.next_packet() {
            Ok(p) => Ok(p),
            Err(SymError::ResetRequired) => {
                self.info.warnings.push(
                    "the stream changes its track layout part-way (chained stream); \
                     decoding stopped at the change"
                        .to_string(),
                );
                Ok(None)
            }
            Err(SymError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                self.mark_truncated("the file ends in the middle of an audio packet");
                Ok(None)
            }
            Err(SymError::IoError(e)) => Err(InputError::Io {
                path: self.path.clone(),
                source: e,
            }),
            Err(e) => {
                if self.frames_decoded > 0 {
                    // The container broke after some audio: keep what decoded.
                    self.mark_truncated(&format!(
                        "the container is damaged after {} frames ({})",
                        self.frames_decoded,
                        describe_sym_error(&e)
                    ));
                    return Ok(None);
                }
                let hint = if self.info.truncated {
                    " (the file is truncated)"
                } else {
                    ""
                };
                Err(InputError::Decode {
                    path: self.path.clone(),
                    detail: format!(
                        "no audio packet could be read{hint}: {}",
                        describe_sym_error(&e)
                    ),
                })
            }
        }
    }

    /// Returns `Ok(true)` when a block with at least one frame is ready.
    fn decode_next(&mut self) -> Result<bool, InputError> {
        self.decoder()?;
        loop {
            if self.limit.is_some_and(|l| self.frames_decoded >= l) {
                return Ok(false);
            }
            let Some(packet) = self.next_packet()? else {
                return Ok(false);
            };
            if packet.track_id != self.track_id {
                continue;
            }
            if let Some(pcm) = self.pcm
                && self.skip_remaining == 0
            {
                if self.block.planes.len() != pcm.channels {
                    self.block.planes = vec![Vec::new(); pcm.channels];
                }
                if pcm.convert(&packet.data, &mut self.block.planes) {
                    let mut n = self.block.planes[0].len();
                    if n == 0 {
                        continue;
                    }
                    if let Some(l) = self.limit {
                        n = n.min((l - self.frames_decoded) as usize);
                    }
                    self.block.frames = n;
                    self.frames_decoded += n as u64;
                    return Ok(true);
                }
                // Not whole frames: leave this stream to symphonia from here on.
                self.pcm = None;
            }
            let dec = self.decoder.as_mut().expect("decoder exists");
            match dec.decode(&packet) {
                Ok(buf) => {
                    let mut n = buf.frames();
                    if n == 0 {
                        continue;
                    }
                    if self.skip_remaining >= n as u64 {
                        self.skip_remaining -= n as u64;
                        continue;
                    }
                    let ch = buf.num_planes();
                    if self.frames_decoded == 0 && self.block.planes.is_empty() {
                        self.block.planes = vec![Vec::new(); ch];
                        if self.info.channels == 0 {
                            self.info.channels = ch as u32;
                            let (labels, name) = layout(None, ch as u32);
                            self.info.channel_layout = labels;
                            self.info.layout_name = name;
                        }
                    }
                    if ch != self.block.planes.len() {
                        return Err(InputError::Decode {
                            path: self.path.clone(),
                            detail: format!(
                                "the channel count changes from {} to {ch} part-way through",
                                self.block.planes.len()
                            ),
                        });
                    }
                    for p in &mut self.block.planes {
                        p.resize(n, 0.0);
                    }
                    buf.copy_to_slice_planar::<f32, _>(&mut self.block.planes);
                    if let Some(order) = self.plane_order {
                        let mut planes = std::mem::take(&mut self.block.planes);
                        self.block.planes = order
                            .iter()
                            .map(|&i| std::mem::take(&mut planes[i]))
                            .collect();
                    }
                    if self.skip_remaining > 0 {
                        let k = self.skip_remaining as usize;
                        for p in &mut self.block.planes {
                            p.drain(..k);
                        }
                        n -= k;
                        self.skip_remaining = 0;
                    }
                    if let Some(l) = self.limit {
                        n = n.min((l - self.frames_decoded) as usize);
                    }
                    self.block.frames = n;
                    self.frames_decoded += n as u64;
                    return Ok(true);
                }
                Err(SymError::DecodeError(_)) | Err(SymError::IoError(_)) => {
                    self.skipped_packets += 1;
                    if self.skipped_packets > 1000 && self.frames_decoded == 0 {
                        return Err(InputError::Decode {
                            path: self.path.clone(),
                            detail: "no packet of the stream could be decoded".to_string(),
                        });
                    }
                }
                Err(SymError::ResetRequired) => {
                    dec.reset();
                }
                Err(e) => {
                    return Err(InputError::Decode {
                        path: self.path.clone(),
                        detail: describe_sym_error(&e),
                    });
                }
            }
        }
    }

    /// Flag the stream truncated, with one "truncated: …" warning however often it is found.
    fn mark_truncated(&mut self, why: &str) {
        self.info.truncated = true;
        if !self
            .info
            .warnings
            .iter()
            .any(|w| w.starts_with("truncated"))
        {
            self.info.warnings.push(format!("truncated: {why}"));
        }
    }
}

/// How often a decoder was opened on each file in this process (the `count-opens` feature, for
/// tests that assert a job decodes its source once).
#[cfg(feature = "count-opens")]
pub mod opens {
    use std::collections::BTreeMap;
    use std::path::{Path, PathBuf};
    use std::sync::Mutex;

    static OPENS: Mutex<BTreeMap<PathBuf, usize>> = Mutex::new(BTreeMap::new());

    fn key(path: &Path) -> PathBuf {
        path.canonicalize().unwrap_or_else(|_| path.to_path_buf())
    }

    pub(crate) fn count(path: &Path) {
        let k = key(path);
        *OPENS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(k)
            .or_default() += 1;
    }

    /// Decoders opened on `path` so far ([`super::Decoder::open`] calls, failed ones included).
    pub fn of(path: &Path) -> usize {
        OPENS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key(path))
            .copied()
            .unwrap_or(0)
    }
}
