//! The bottom layer: planar audio blocks and the signal they carry. Everything that moves
//! audio (decoders, stages, analyzers, encoders) speaks these types and imports nothing above.

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
