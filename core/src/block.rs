//! The bottom layer: planar audio blocks and the signal they carry, how channels are mapped,
//! and loudness figures as measured. Everything that moves audio (decoders, stages, analyzers,
//! encoders, the format registry) speaks these types and imports nothing above.

use serde::Serialize;

/// Planar `f32` audio: one `Vec` per channel, all the same length.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Block {
    planes: Vec<Vec<f32>>,
}

impl Block {
    /// An empty block of `channels` channels.
    pub fn new(channels: usize) -> Self {
        Block {
            planes: vec![Vec::new(); channels],
        }
    }
    /// A block made of `planes`. Panics if the planes differ in length (a programming error).
    pub fn from_planes(planes: Vec<Vec<f32>>) -> Self {
        let b = Block { planes };
        assert!(
            b.planes.windows(2).all(|w| w[0].len() == w[1].len()),
            "planes of one block must have one length"
        );
        b
    }
    pub fn into_planes(self) -> Vec<Vec<f32>> {
        self.planes
    }
    pub fn channels(&self) -> usize {
        self.planes.len()
    }
    /// Frames (samples per channel).
    pub fn frames(&self) -> usize {
        self.planes.first().map_or(0, Vec::len)
    }
    pub fn is_empty(&self) -> bool {
        self.frames() == 0
    }
    pub fn plane(&self, ch: usize) -> &[f32] {
        &self.planes[ch]
    }
    pub fn plane_mut(&mut self, ch: usize) -> &mut Vec<f32> {
        &mut self.planes[ch]
    }
    pub fn planes(&self) -> &[Vec<f32>] {
        &self.planes
    }
    /// The planes, to be changed in place. Callers keep them one length.
    pub fn planes_mut(&mut self) -> &mut [Vec<f32>] {
        &mut self.planes
    }
    /// Slices of every plane, for APIs that take `&[&[f32]]`.
    pub fn slices(&self) -> Vec<&[f32]> {
        self.planes.iter().map(Vec::as_slice).collect()
    }
    /// Remove all frames, keeping the channel count and the allocations.
    pub fn clear(&mut self) {
        self.planes.iter_mut().for_each(Vec::clear);
    }
    /// Make the block `channels` wide and empty.
    pub fn reset(&mut self, channels: usize) {
        self.planes.resize_with(channels, Vec::new);
        self.clear();
    }
    /// Append every frame of `other` (same channel count).
    pub fn extend_from(&mut self, other: &Block) {
        debug_assert_eq!(self.channels(), other.channels());
        for (d, s) in self.planes.iter_mut().zip(&other.planes) {
            d.extend_from_slice(s);
        }
    }
    /// Replace the content with the decoder's block.
    pub fn copy_from_decoded(&mut self, src: &crate::AudioBlock) {
        self.reset(src.channels());
        for (d, s) in self.planes.iter_mut().zip(src.planes()) {
            d.extend_from_slice(s);
        }
    }
    /// Drop the first `n` frames.
    pub fn drain_front(&mut self, n: usize) {
        for p in &mut self.planes {
            let n = n.min(p.len());
            p.drain(..n);
        }
    }
    /// Keep only the first `n` frames.
    pub fn truncate(&mut self, n: usize) {
        self.planes.iter_mut().for_each(|p| p.truncate(n));
    }
}

/// What flows between stages: the sample rate and the channels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignalSpec {
    pub sample_rate: u32,
    /// Speaker positions in channel order (`FL`, `FR`, `FC`, `LFE`...; `CH1`... when unknown);
    /// its length is the channel count.
    pub layout: Vec<String>,
    /// Bits per sample of integer PCM the signal is known to fit exactly (the source's depth
    /// while no stage has changed sample values); `None` once values are arbitrary floats.
    pub exact_bits: Option<u32>,
}

impl SignalSpec {
    pub fn channels(&self) -> usize {
        self.layout.len()
    }
    /// A spec with the conventional layout for `channels` (mono `FC`, stereo `FL FR`, 5.1...).
    pub fn with_channels(sample_rate: u32, channels: usize) -> Self {
        SignalSpec {
            sample_rate,
            layout: default_layout(channels),
            exact_bits: None,
        }
    }
}

/// The conventional speaker layout for a channel count (WAVE_FORMAT_EXTENSIBLE order).
pub fn default_layout(channels: usize) -> Vec<String> {
    let names: &[&str] = match channels {
        1 => &["FC"],
        2 => &["FL", "FR"],
        3 => &["FL", "FR", "FC"],
        4 => &["FL", "FR", "BL", "BR"],
        5 => &["FL", "FR", "FC", "BL", "BR"],
        6 => &["FL", "FR", "FC", "LFE", "BL", "BR"],
        8 => &["FL", "FR", "FC", "LFE", "BL", "BR", "SL", "SR"],
        _ => &[],
    };
    if names.len() == channels {
        names.iter().map(|s| s.to_string()).collect()
    } else {
        (1..=channels).map(|i| format!("CH{i}")).collect()
    }
}

/// What a channel mapping produces.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelMapping {
    /// Mix everything to one channel (see `render::stages::mix_matrix` for the law).
    Mono,
    /// Two channels: mono is copied to both, stereo passes, more channels are downmixed.
    Stereo,
    /// Take these source channels (0-based), in this order.
    Pick(Vec<usize>),
}

impl ChannelMapping {
    /// How a mapping is written, for messages about one that does not parse.
    pub const SPELLING: &str = "give mono, stereo, or channel numbers from 1 (like 2,1)";

    /// A mapping as users write it: `mono`, `stereo`, or 1-based source channels (`2,1`).
    pub fn parse(s: &str) -> Option<ChannelMapping> {
        Some(match s.trim() {
            "mono" | "1" => ChannelMapping::Mono,
            "stereo" | "2" => ChannelMapping::Stereo,
            list => ChannelMapping::Pick(
                list.split(',')
                    .map(|c| {
                        c.trim()
                            .parse::<usize>()
                            .ok()
                            .filter(|&n| n >= 1)
                            .map(|n| n - 1)
                    })
                    .collect::<Option<_>>()?,
            ),
        })
    }

    /// Channels after the mapping is applied to `n` channels.
    pub fn channels_after(&self, n: usize) -> usize {
        match self {
            ChannelMapping::Mono => 1,
            ChannelMapping::Stereo => 2,
            ChannelMapping::Pick(v) => v.len(),
        }
        .max(if n == 0 { 0 } else { 1 })
    }

    /// Whether the mapping leaves a signal of `channels` channels as it is.
    pub fn is_identity(&self, channels: usize) -> bool {
        match self {
            ChannelMapping::Mono => channels == 1,
            ChannelMapping::Stereo => channels == 2,
            ChannelMapping::Pick(v) => v.iter().copied().eq(0..channels),
        }
    }
}

/// What `analysis::loudness::LoudnessMeter::summary` gives (true peak is measured separately).
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct LoudnessSummary {
    /// Integrated (programme) loudness, LUFS; `None` when nothing passes the gates (silence or
    /// under 400 ms).
    pub integrated_lufs: Option<f64>,
    /// Loudness range, LU; `None` when no short-term value passes the gates.
    pub loudness_range_lu: Option<f64>,
    /// Highest momentary loudness, LUFS.
    pub max_momentary_lufs: Option<f64>,
    /// Highest short-term loudness, LUFS.
    pub max_short_term_lufs: Option<f64>,
    /// Momentary and short-term loudness over time, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<LoudnessHistory>,
}

/// Momentary and short-term loudness at regular times; `None` entries are below −70 LUFS.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct LoudnessHistory {
    /// Seconds between entries (a multiple of 0.1 s).
    pub step_seconds: f64,
    /// Value `i` is measured over the window ending at `(i + 1) * step_seconds`.
    pub momentary_lufs: Vec<Option<f64>>,
    pub short_term_lufs: Vec<Option<f64>>,
}

/// The loudness of what an output received, measured in the final pass (for the `bext` chunk,
/// ReplayGain and reports).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OutputLoudness {
    #[serde(flatten)]
    pub loudness: LoudnessSummary,
    /// dBTP (−inf for digital silence).
    pub true_peak_dbtp: f64,
    /// dBFS.
    pub sample_peak_dbfs: f64,
}
