//! The simple stages: gain, region, fades, trimming silence and channel mapping.

use super::{Block, Prepass, Probe, RenderError, SignalSpec, Stage, StageReport};
use std::collections::BTreeMap;

pub use crate::block::ChannelMapping;

/// dB to a linear factor.
pub fn db_to_gain(db: f64) -> f64 {
    10f64.powf(db / 20.0)
}

/// A fixed gain in dB.
#[derive(Debug, Clone)]
pub struct Gain {
    db: f64,
    factor: f32,
}

impl Gain {
    pub fn new(db: f64) -> Self {
        Gain {
            db,
            factor: db_to_gain(db) as f32,
        }
    }
}

impl Stage for Gain {
    fn name(&self) -> &'static str {
        "gain"
    }
    fn start(&mut self, input: &SignalSpec) -> Result<SignalSpec, RenderError> {
        if !self.db.is_finite() {
            return Err(RenderError::Invalid(format!(
                "gain {} dB is not a number",
                self.db
            )));
        }
        let mut out = input.clone();
        if self.db != 0.0 {
            out.exact_bits = None;
        }
        Ok(out)
    }
    fn process(&mut self, block: &mut Block) {
        if self.factor != 1.0 {
            let g = self.factor;
            block
                .planes_mut()
                .iter_mut()
                .for_each(|p| p.iter_mut().for_each(|x| *x *= g));
        }
    }
}

/// Keep the frames from `start` to `end` (seconds; `end` `None` = to the end of the stream).
#[derive(Debug, Clone)]
pub struct Region {
    start_s: f64,
    end_s: Option<f64>,
    start: u64,
    end: u64,
    pos: u64,
    kept: u64,
}

impl Region {
    pub fn new(start_s: f64, end_s: Option<f64>) -> Self {
        Region {
            start_s,
            end_s,
            start: 0,
            end: u64::MAX,
            pos: 0,
            kept: 0,
        }
    }
    /// A region given in frames (used by trimming).
    fn frames(start: u64, end: u64) -> Self {
        Region {
            start_s: f64::NAN,
            end_s: None,
            start,
            end,
            pos: 0,
            kept: 0,
        }
    }
    fn cut(&mut self, block: &mut Block) {
        let n = block.frames() as u64;
        let (b0, b1) = (self.pos, self.pos + n);
        self.pos = b1;
        let lo = self.start.clamp(b0, b1) - b0;
        let hi = self.end.clamp(b0, b1) - b0;
        if lo == 0 && hi == n {
            self.kept += n;
            return;
        }
        if hi <= lo {
            block.clear();
            return;
        }
        block.truncate(hi as usize);
        block.drain_front(lo as usize);
        self.kept += hi - lo;
    }
}

impl Stage for Region {
    fn name(&self) -> &'static str {
        "region"
    }
    fn start(&mut self, input: &SignalSpec) -> Result<SignalSpec, RenderError> {
        if !self.start_s.is_nan() {
            let rate = f64::from(input.sample_rate);
            if !(self.start_s >= 0.0 && self.start_s.is_finite()) {
                return Err(RenderError::Invalid(format!(
                    "start {} s must be a time of 0 s or later",
                    self.start_s
                )));
            }
            if let Some(e) = self.end_s
                && !(e > self.start_s && e.is_finite())
            {
                return Err(RenderError::Invalid(format!(
                    "end {e} s must come after start {} s",
                    self.start_s
                )));
            }
            self.start = (self.start_s * rate).round() as u64;
            self.end = self.end_s.map_or(u64::MAX, |e| (e * rate).round() as u64);
        }
        self.pos = 0;
        self.kept = 0;
        Ok(input.clone())
    }
    fn process(&mut self, block: &mut Block) {
        self.cut(block);
    }
    fn report(&self) -> Option<StageReport> {
        let mut r = StageReport {
            stage: "region".into(),
            values: BTreeMap::from([("frames_kept".into(), self.kept as f64)]),
            warnings: Vec::new(),
        };
        if self.kept == 0 && self.pos > 0 {
            r.warnings.push(format!(
                "the region starts at frame {}, past the end of the audio ({} frames): nothing is left",
                self.start, self.pos
            ));
        }
        Some(r)
    }
}

/// The shape of a fade.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FadeCurve {
    /// Gain rises in a straight line: `g = t`.
    Linear,
    /// Constant power through a crossfade: `g = sin(t·π/2)`.
    #[default]
    EqualPower,
    /// Linear in decibels over 60 dB (`g = (1000^t − 1) / 999`): the level changes evenly to
    /// the ear, exactly 0 at the start and 1 at the end.
    Logarithmic,
}

impl FadeCurve {
    /// Gain at `t` in [0, 1] of a fade in.
    pub fn gain(self, t: f64) -> f64 {
        let t = t.clamp(0.0, 1.0);
        match self {
            FadeCurve::Linear => t,
            FadeCurve::EqualPower => (t * std::f64::consts::FRAC_PI_2).sin(),
            FadeCurve::Logarithmic => (1000f64.powf(t) - 1.0) / 999.0,
        }
    }
    pub fn parse(s: &str) -> Option<FadeCurve> {
        match s {
            "linear" | "lin" => Some(FadeCurve::Linear),
            "equal-power" | "equal_power" | "sine" => Some(FadeCurve::EqualPower),
            "logarithmic" | "log" => Some(FadeCurve::Logarithmic),
            _ => None,
        }
    }
}

/// Fade in over the first `in_s` seconds and out over the last `out_s` seconds.
///
/// Where the fade out begins is only known at the end of the stream. A short fade out (up to
/// [`Fade::HOLD_SAMPLES`] samples over all channels, 32 MiB) holds its length of audio back
/// until the stream ends; a longer one counts the stream's frames in a prepass instead and
/// fades the frames as they pass, holding nothing (a ten-minute fade would otherwise hold
/// ten minutes of audio in memory).
#[derive(Debug, Clone)]
pub struct Fade {
    in_s: f64,
    out_s: f64,
    curve: FadeCurve,
    in_len: u64,
    out_len: usize,
    pos: u64,
    held: Block,
    /// The most samples the fade out may hold back.
    hold_samples: usize,
    /// The stream's length in frames, when a prepass counted it.
    total: Option<u64>,
}

impl Fade {
    /// The most samples (frames × channels) a fade out holds back in memory by default.
    pub const HOLD_SAMPLES: usize = 8 << 20;

    pub fn new(in_s: f64, out_s: f64, curve: FadeCurve) -> Self {
        Fade {
            in_s,
            out_s,
            curve,
            in_len: 0,
            out_len: 0,
            pos: 0,
            held: Block::default(),
            hold_samples: Self::HOLD_SAMPLES,
            total: None,
        }
    }

    /// The fade out's length in frames at `rate`.
    fn out_frames(&self, rate: u32) -> usize {
        (self.out_s * f64::from(rate)).round() as usize
    }

    /// Hold at most `samples` samples of a fade out back; a longer fade out is counted in a
    /// prepass (see [`Fade`]).
    pub fn holding_at_most(mut self, samples: usize) -> Self {
        self.hold_samples = samples;
        self
    }
}

/// Counts the frames of a stream.
struct FrameCount(u64);

impl Probe for FrameCount {
    fn feed(&mut self, block: &Block) {
        self.0 += block.frames() as u64;
    }
    fn into_any(self: Box<Self>) -> Box<dyn std::any::Any> {
        self
    }
}

impl Stage for Fade {
    fn name(&self) -> &'static str {
        "fade"
    }
    fn start(&mut self, input: &SignalSpec) -> Result<SignalSpec, RenderError> {
        for (what, s) in [("fade-in", self.in_s), ("fade-out", self.out_s)] {
            if !(0.0..24.0 * 3600.0).contains(&s) {
                return Err(RenderError::Invalid(format!(
                    "{what} of {s} s: give a length in seconds, 0 or more"
                )));
            }
        }
        let rate = f64::from(input.sample_rate);
        self.in_len = (self.in_s * rate).round() as u64;
        self.out_len = self.out_frames(input.sample_rate);
        self.pos = 0;
        self.held.reset(input.channels());
        let mut out = input.clone();
        if self.in_len > 0 || self.out_len > 0 {
            out.exact_bits = None;
        }
        Ok(out)
    }
    fn process(&mut self, block: &mut Block) {
        let n = block.frames();
        if self.in_len > 0 && self.pos < self.in_len {
            let len = self.in_len as f64;
            for p in block.planes_mut() {
                for (i, x) in p.iter_mut().enumerate() {
                    let k = self.pos + i as u64;
                    if k >= self.in_len {
                        break;
                    }
                    *x *= self.curve.gain(k as f64 / len) as f32;
                }
            }
        }
        let first = self.pos;
        self.pos += n as u64;
        if self.out_len == 0 {
            return;
        }
        if let Some(total) = self.total {
            // The end is known: fade the frames within `out_len` of it as they pass.
            let fade_from = total.saturating_sub(self.out_len as u64);
            if self.pos > fade_from {
                let skip = fade_from.saturating_sub(first) as usize;
                for p in block.planes_mut() {
                    for (i, x) in p.iter_mut().enumerate().skip(skip) {
                        let left = total.saturating_sub(first + i as u64 + 1) as f64;
                        *x *= self.curve.gain(left / self.out_len as f64) as f32;
                    }
                }
            }
            return;
        }
        // Keep the last `out_len` frames back; release what is older.
        self.held.extend_from(block);
        let release = self.held.frames().saturating_sub(self.out_len);
        block.clear();
        if release > 0 {
            for (d, s) in block.planes_mut().iter_mut().zip(self.held.planes()) {
                d.extend_from_slice(&s[..release]);
            }
            self.held.drain_front(release);
        }
    }
    fn prepass(&mut self, input: &SignalSpec) -> Option<Prepass> {
        let samples = self
            .out_frames(input.sample_rate)
            .saturating_mul(input.channels());
        (self.total.is_none() && samples > self.hold_samples)
            .then(|| Prepass::Input(Box::new(FrameCount(0))))
    }
    fn prepass_done(&mut self, probe: Box<dyn Probe>) -> Result<(), RenderError> {
        let count = probe
            .into_any()
            .downcast::<FrameCount>()
            .expect("our own probe");
        self.total = Some(count.0);
        Ok(())
    }
    fn finish(&mut self, block: &mut Block) -> bool {
        if self.out_len == 0 || self.total.is_some() {
            return false;
        }
        // The held frames are the end of the stream (or all of it, if it is shorter).
        let n = self.held.frames();
        let (curve, len) = (self.curve, self.out_len as f64);
        for p in self.held.planes_mut() {
            for (i, x) in p.iter_mut().enumerate() {
                let left = (n - i - 1) as f64;
                *x *= curve.gain(left / len) as f32;
            }
        }
        std::mem::swap(block, &mut self.held);
        self.held.reset(block.channels());
        false
    }
}

/// Trim leading and trailing silence: frames whose every channel stays under `threshold_dbfs`,
/// keeping `pad_s` seconds of it on each side. A prepass finds the first and last loud frame.
#[derive(Debug, Clone)]
pub struct TrimSilence {
    threshold_dbfs: f64,
    pad_s: f64,
    found: Option<(u64, u64, u64)>,
    region: Region,
    trimmed_head: u64,
    trimmed_tail: u64,
}

impl TrimSilence {
    pub fn new(threshold_dbfs: f64, pad_s: f64) -> Self {
        TrimSilence {
            threshold_dbfs,
            pad_s,
            found: None,
            region: Region::frames(0, u64::MAX),
            trimmed_head: 0,
            trimmed_tail: 0,
        }
    }
}

/// Finds the first and last frame at or above a level.
struct LoudFrames {
    threshold: f32,
    pos: u64,
    first: Option<u64>,
    last: Option<u64>,
}

impl Probe for LoudFrames {
    fn feed(&mut self, block: &Block) {
        let n = block.frames();
        let mut first = None;
        let mut last = None;
        for p in block.planes() {
            if let Some(i) = p.iter().position(|x| x.abs() >= self.threshold) {
                first = Some(first.map_or(i, |f: usize| f.min(i)));
            }
            if let Some(i) = p.iter().rposition(|x| x.abs() >= self.threshold) {
                last = Some(last.map_or(i, |l: usize| l.max(i)));
            }
        }
        if self.first.is_none() {
            self.first = first.map(|i| self.pos + i as u64);
        }
        if let Some(l) = last {
            self.last = Some(self.pos + l as u64);
        }
        self.pos += n as u64;
    }
    fn into_any(self: Box<Self>) -> Box<dyn std::any::Any> {
        self
    }
}

impl Stage for TrimSilence {
    fn name(&self) -> &'static str {
        "trim_silence"
    }
    fn start(&mut self, input: &SignalSpec) -> Result<SignalSpec, RenderError> {
        if !(self.threshold_dbfs.is_finite() && self.threshold_dbfs <= 0.0) {
            return Err(RenderError::Invalid(format!(
                "silence threshold {} dBFS must be 0 dBFS or lower",
                self.threshold_dbfs
            )));
        }
        if !(self.pad_s >= 0.0 && self.pad_s.is_finite()) {
            return Err(RenderError::Invalid(format!(
                "silence pad {} s must be 0 s or more",
                self.pad_s
            )));
        }
        if let Some((first, last, total)) = self.found {
            let pad = (self.pad_s * f64::from(input.sample_rate)).round() as u64;
            let start = first.saturating_sub(pad);
            let end = last.saturating_add(1).saturating_add(pad).min(total);
            self.trimmed_head = start;
            self.trimmed_tail = total - end;
            self.region = Region::frames(start, end);
        }
        self.region.start(input)
    }
    fn prepass(&mut self, _input: &SignalSpec) -> Option<Prepass> {
        if self.found.is_some() {
            return None;
        }
        Some(Prepass::Input(Box::new(LoudFrames {
            threshold: super::stages::db_to_gain(self.threshold_dbfs) as f32,
            pos: 0,
            first: None,
            last: None,
        })))
    }
    fn prepass_done(&mut self, probe: Box<dyn Probe>) -> Result<(), RenderError> {
        let p = probe
            .into_any()
            .downcast::<LoudFrames>()
            .expect("our own probe");
        // All silent: keep nothing (the report says so).
        self.found = Some(match (p.first, p.last) {
            (Some(f), Some(l)) => (f, l, p.pos),
            _ => (p.pos, p.pos.saturating_sub(1), p.pos),
        });
        Ok(())
    }
    fn process(&mut self, block: &mut Block) {
        self.region.cut(block);
    }
    fn report(&self) -> Option<StageReport> {
        let mut r = StageReport {
            stage: "trim_silence".into(),
            values: BTreeMap::from([
                ("trimmed_head_frames".into(), self.trimmed_head as f64),
                ("trimmed_tail_frames".into(), self.trimmed_tail as f64),
            ]),
            warnings: Vec::new(),
        };
        if matches!(self.found, Some((f, _, t)) if f >= t) {
            r.warnings.push(format!(
                "the audio never reaches {} dBFS: trimming silence leaves nothing",
                self.threshold_dbfs
            ));
        }
        Some(r)
    }
}

/// Why a channel mapping cannot apply to a signal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MixError {
    #[error("the source has no channels")]
    NoChannels,
    #[error("pick at least one channel")]
    NothingPicked,
    #[error("channel {channel} does not exist: the source has {channels} channel{}", if *channels == 1 { "" } else { "s" })]
    NoSuchChannel { channel: usize, channels: usize },
}

/// Downmix coefficient of centre and surround channels into left/right: −3 dB, as in
/// ITU-R BS.775.
const MINUS_3DB: f64 = std::f64::consts::FRAC_1_SQRT_2;

/// The mixing matrix (`out[o] = Σ m[o][i] · in[i]`) from `layout` to `mapping`.
///
/// The law, documented in `docs/RENDERING.md`:
/// - stereo → mono: `(L + R) / 2`, which never clips;
/// - surround → stereo: ITU-R BS.775: `L' = L + 0.707 C + 0.707 Ls`, likewise for R; the LFE
///   is dropped; each output is then scaled so its coefficients sum to 1 (never clips);
/// - surround → mono: the stereo downmix, then `(L' + R') / 2`;
/// - mono → stereo: the channel on both sides, unchanged in level.
pub fn mix_matrix(layout: &[String], mapping: &ChannelMapping) -> Result<Vec<Vec<f64>>, MixError> {
    let n = layout.len();
    if n == 0 {
        return Err(MixError::NoChannels);
    }
    let stereo = |layout: &[String]| -> Vec<Vec<f64>> {
        if n == 1 {
            return vec![vec![1.0], vec![1.0]];
        }
        let mut l = vec![0.0; n];
        let mut r = vec![0.0; n];
        for (i, pos) in layout.iter().enumerate() {
            match pos.as_str() {
                "FL" | "CH1" => l[i] = 1.0,
                "FR" | "CH2" => r[i] = 1.0,
                "FC" => {
                    l[i] = MINUS_3DB;
                    r[i] = MINUS_3DB;
                }
                "LFE" => {}
                p if p.ends_with('L') || p == "BL" || p == "SL" => l[i] = MINUS_3DB,
                p if p.ends_with('R') => r[i] = MINUS_3DB,
                // Unpositioned or centre-back channels go to both sides.
                _ => {
                    l[i] = MINUS_3DB;
                    r[i] = MINUS_3DB;
                }
            }
        }
        if n > 2 {
            for row in [&mut l, &mut r] {
                let s: f64 = row.iter().sum();
                if s > 0.0 {
                    row.iter_mut().for_each(|c| *c /= s);
                }
            }
        }
        vec![l, r]
    };
    Ok(match mapping {
        ChannelMapping::Mono => {
            if n == 1 {
                vec![vec![1.0]]
            } else {
                let s = stereo(layout);
                vec![(0..n).map(|i| (s[0][i] + s[1][i]) / 2.0).collect()]
            }
        }
        ChannelMapping::Stereo => stereo(layout),
        ChannelMapping::Pick(which) => {
            if which.is_empty() {
                return Err(MixError::NothingPicked);
            }
            which
                .iter()
                .map(|&c| {
                    if c >= n {
                        Err(MixError::NoSuchChannel {
                            channel: c + 1,
                            channels: n,
                        })
                    } else {
                        let mut row = vec![0.0; n];
                        row[c] = 1.0;
                        Ok(row)
                    }
                })
                .collect::<Result<_, _>>()?
        }
    })
}

/// Channel mapping: downmix, upmix mono to stereo, or pick and reorder channels.
#[derive(Debug, Clone)]
pub struct Channels {
    mapping: ChannelMapping,
    matrix: Vec<Vec<f32>>,
    passthrough: bool,
    out: Vec<Vec<f32>>,
}

impl Channels {
    pub fn new(mapping: ChannelMapping) -> Self {
        Channels {
            mapping,
            matrix: Vec::new(),
            passthrough: false,
            out: Vec::new(),
        }
    }
}

impl Stage for Channels {
    fn name(&self) -> &'static str {
        "channels"
    }
    fn start(&mut self, input: &SignalSpec) -> Result<SignalSpec, RenderError> {
        let m = mix_matrix(&input.layout, &self.mapping)
            .map_err(|e| RenderError::Invalid(e.to_string()))?;
        let n = input.channels();
        self.passthrough = m.len() == n
            && m.iter().enumerate().all(|(o, row)| {
                row.iter()
                    .enumerate()
                    .all(|(i, &c)| c == f64::from(u8::from(i == o)))
            });
        let picks_only = m
            .iter()
            .all(|row| row.iter().all(|&c| c == 0.0 || c == 1.0) && row.iter().sum::<f64>() == 1.0);
        self.matrix = m
            .iter()
            .map(|r| r.iter().map(|&c| c as f32).collect())
            .collect();
        let layout = match &self.mapping {
            ChannelMapping::Mono => vec!["FC".to_string()],
            ChannelMapping::Stereo => vec!["FL".to_string(), "FR".to_string()],
            ChannelMapping::Pick(which) => which.iter().map(|&c| input.layout[c].clone()).collect(),
        };
        self.out = vec![Vec::new(); layout.len()];
        Ok(SignalSpec {
            sample_rate: input.sample_rate,
            layout,
            exact_bits: if picks_only { input.exact_bits } else { None },
        })
    }
    fn process(&mut self, block: &mut Block) {
        if self.passthrough {
            return;
        }
        let frames = block.frames();
        for (o, row) in self.out.iter_mut().zip(&self.matrix) {
            o.clear();
            o.resize(frames, 0.0);
            for (p, &c) in block.planes().iter().zip(row) {
                if c == 1.0 {
                    o.iter_mut().zip(p).for_each(|(d, s)| *d += s);
                } else if c != 0.0 {
                    o.iter_mut().zip(p).for_each(|(d, s)| *d += c * s);
                }
            }
        }
        let mut planes = std::mem::take(&mut self.out);
        let old = std::mem::replace(block, Block::from_planes(std::mem::take(&mut planes)));
        // Reuse the old planes' allocations next time.
        self.out = old.into_planes();
        self.out.resize_with(self.matrix.len(), Vec::new);
    }
}
