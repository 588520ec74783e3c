//! Sample levels: peak, RMS, crest factor, dynamic range, DC offset, clipping, zero crossings
//! and leading/trailing silence.
//!
//! Definitions (all over the whole file):
//! - **peak** — the largest absolute sample value, dBFS (a full-scale sine is 0 dBFS);
//! - **RMS** — the root mean square of the samples, dBFS, without the AES17 +3 dB: a full-scale
//!   sine reads −3.01 dBFS RMS. The overall RMS is the mean power over all channels;
//! - **crest factor** — peak minus RMS, dB (3.01 dB for a sine);
//! - **dynamic range** — in the manner of the "DR" meters mastering engineers know: the signal
//!   is cut in 3 s blocks; for each channel the loudest 20 % of blocks by RMS (RMS taken
//!   +3.01 dB, as those meters do) give an RMS level, and DR = second-highest block peak over
//!   that level, in dB; the file's value is the mean over channels. A heavily limited master
//!   reads 4–7 dB, an open mix 12–16 dB. Needs at least one complete block (3 s);
//! - **DC offset** — the mean sample value per channel (linear, −1..1);
//! - **clipping** — runs of at least 3 consecutive samples at or above 0.9999 (−0.0009 dBFS)
//!   in absolute value; `clipped_samples` counts the samples in those runs, `clip_events` the
//!   runs; `clipped_fraction` is the share of all samples (every channel) at full scale,
//!   |x| ≥ 32767/32768 (the largest 16-bit value), runs or not;
//! - **zero crossings** — sign changes between successive non-zero samples, summed over
//!   channels; the rate is per channel and second (Hz);
//! - **silence** — leading and trailing time in which no channel rises above the threshold
//!   (−60 dBFS by default).

use super::db;
use super::{AnalysisReport, Analyzer};
use serde::Serialize;

/// Samples at or above this are at full scale for clip detection.
pub const CLIP_LEVEL: f32 = 0.9999;
/// Minimum run of full-scale samples counted as clipping.
pub const CLIP_RUN: u32 = 3;
/// Samples at or above this (the largest 16-bit value, 32767/32768) count in
/// `clipped_fraction`.
pub const FULL_SCALE: f32 = 32_767.0 / 32_768.0;
const DR_BLOCK_SECONDS: f64 = 3.0;

#[derive(Debug, Clone, Default)]
struct Channel {
    peak: f32,
    sum_sq: f64,
    sum: f64,
    crossings: u64,
    last_sign: i8,
    run: u32,
    clipped: u64,
    clip_events: u64,
    /// Samples at or above `FULL_SCALE`.
    full_scale: u64,
    block_sq: f64,
    block_peak: f32,
    /// (mean square, peak) of each complete DR block.
    blocks: Vec<(f64, f32)>,
}

/// Streaming level meter for all channels.
#[derive(Debug, Clone)]
pub struct LevelMeter {
    rate: u32,
    threshold: f32,
    threshold_dbfs: f64,
    ch: Vec<Channel>,
    frames: u64,
    first_loud: Option<u64>,
    last_loud: Option<u64>,
    block_len: usize,
    block_fill: usize,
}

/// The levels section of the analysis report. Levels of silence are `None`.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Levels {
    pub peak_dbfs: Option<f64>,
    pub peak_dbfs_per_channel: Vec<Option<f64>>,
    pub rms_dbfs: Option<f64>,
    pub rms_dbfs_per_channel: Vec<Option<f64>>,
    pub crest_factor_db: Option<f64>,
    /// DR-style dynamic range, dB (see the module documentation); `None` under 3 s.
    pub dynamic_range_db: Option<f64>,
    /// Mean sample value per channel (linear).
    pub dc_offset_per_channel: Vec<f64>,
    pub clipped_samples: u64,
    pub clip_events: u64,
    /// Share of all samples (every channel) with |x| ≥ 32767/32768, 0–1; `None` for an empty
    /// file.
    pub clipped_fraction: Option<f64>,
    pub zero_crossings: u64,
    /// Zero crossings per channel per second, Hz.
    pub zero_crossing_rate_hz: Option<f64>,
    pub silence_threshold_dbfs: f64,
    /// Time before any channel first rises above the threshold (the whole file if never).
    pub leading_silence_seconds: f64,
    pub trailing_silence_seconds: f64,
}

impl LevelMeter {
    pub fn new(rate: u32, channels: usize, silence_threshold_dbfs: f64) -> Self {
        LevelMeter {
            rate,
            threshold: 10f64.powf(silence_threshold_dbfs / 20.0) as f32,
            threshold_dbfs: silence_threshold_dbfs,
            ch: vec![Channel::default(); channels],
            frames: 0,
            first_loud: None,
            last_loud: None,
            block_len: (DR_BLOCK_SECONDS * f64::from(rate)).round() as usize,
            block_fill: 0,
        }
    }

    pub fn feed(&mut self, planes: &[&[f32]]) {
        let frames = planes.first().map_or(0, |p| p.len());
        let mut at = 0;
        while at < frames {
            let take = (self.block_len - self.block_fill).min(frames - at);
            for (c, p) in self.ch.iter_mut().zip(planes) {
                let part = &p[at..at + take];
                c.feed(part);
            }
            // Silence bounds: the first and last frame where any channel is above threshold.
            let th = self.threshold;
            let first = (0..take).find(|&i| planes.iter().any(|p| p[at + i].abs() > th));
            if let Some(i) = first {
                let base = self.frames + (at as u64);
                if self.first_loud.is_none() {
                    self.first_loud = Some(base + i as u64);
                }
                let last = (i..take)
                    .rev()
                    .find(|&j| planes.iter().any(|p| p[at + j].abs() > th))
                    .unwrap_or(i);
                self.last_loud = Some(base + last as u64);
            }
            self.block_fill += take;
            at += take;
            if self.block_fill == self.block_len {
                for c in &mut self.ch {
                    c.blocks
                        .push((c.block_sq / self.block_len as f64, c.block_peak));
                    c.block_sq = 0.0;
                    c.block_peak = 0.0;
                }
                self.block_fill = 0;
            }
        }
        self.frames += frames as u64;
    }

    pub fn finish(self) -> Levels {
        let n = self.frames as f64;
        let rate = f64::from(self.rate);
        let ms: Vec<f64> = self
            .ch
            .iter()
            .map(|c| if n > 0.0 { c.sum_sq / n } else { 0.0 })
            .collect();
        let peak = self.ch.iter().fold(0f32, |m, c| m.max(c.peak));
        let total_ms = if ms.is_empty() {
            0.0
        } else {
            ms.iter().sum::<f64>() / ms.len() as f64
        };
        let peak_dbfs = db(f64::from(peak));
        let rms_dbfs = db(total_ms.sqrt());
        let crossings: u64 = self.ch.iter().map(|c| c.crossings).sum();
        let dr: Vec<f64> = self.ch.iter().filter_map(Channel::dynamic_range).collect();
        let (lead, trail) = match (self.first_loud, self.last_loud) {
            (Some(f), Some(l)) => (f as f64 / rate, (self.frames - 1 - l) as f64 / rate),
            _ => (n / rate, n / rate),
        };
        Levels {
            peak_dbfs,
            peak_dbfs_per_channel: self.ch.iter().map(|c| db(f64::from(c.peak))).collect(),
            rms_dbfs,
            rms_dbfs_per_channel: ms.iter().map(|m| db(m.sqrt())).collect(),
            crest_factor_db: peak_dbfs.zip(rms_dbfs).map(|(p, r)| p - r),
            dynamic_range_db: (!dr.is_empty()).then(|| dr.iter().sum::<f64>() / dr.len() as f64),
            dc_offset_per_channel: self
                .ch
                .iter()
                .map(|c| if n > 0.0 { c.sum / n } else { 0.0 })
                .collect(),
            clipped_samples: self.ch.iter().map(|c| c.clipped).sum(),
            clip_events: self.ch.iter().map(|c| c.clip_events).sum(),
            clipped_fraction: (n > 0.0 && !self.ch.is_empty()).then(|| {
                self.ch.iter().map(|c| c.full_scale).sum::<u64>() as f64
                    / (n * self.ch.len() as f64)
            }),
            zero_crossings: crossings,
            zero_crossing_rate_hz: (n > 0.0 && !self.ch.is_empty())
                .then(|| crossings as f64 / self.ch.len() as f64 / (n / rate)),
            silence_threshold_dbfs: self.threshold_dbfs,
            leading_silence_seconds: lead,
            trailing_silence_seconds: trail,
        }
    }
}

avx2_where_present! {
    fn feed_channel(channel: &mut Channel, x: &[f32]) => Channel::feed_body
}

impl Channel {
    fn feed(&mut self, x: &[f32]) {
        feed_channel(self, x);
    }

    #[inline(always)]
    fn feed_body(&mut self, x: &[f32]) {
        // Plain sums first, in 8 lanes so that they vectorise (one running sum would be a
        // chain of dependent additions), then the sequential counters.
        const L: usize = 8;
        let (mut peaks, mut sqs, mut sums) = ([0f32; L], [0f64; L], [0f64; L]);
        let lanes = x.chunks_exact(L);
        let rest = lanes.remainder();
        for c in lanes {
            for i in 0..L {
                peaks[i] = peaks[i].max(c[i].abs());
                let d = f64::from(c[i]);
                sqs[i] += d * d;
                sums[i] += d;
            }
        }
        for (i, &v) in rest.iter().enumerate() {
            peaks[i] = peaks[i].max(v.abs());
            let d = f64::from(v);
            sqs[i] += d * d;
            sums[i] += d;
        }
        let peak = peaks.iter().fold(0f32, |m, &v| m.max(v));
        let sq: f64 = sqs.iter().sum();
        let sum: f64 = sums.iter().sum();
        self.peak = self.peak.max(peak);
        self.block_peak = self.block_peak.max(peak);
        self.sum_sq += sq;
        self.block_sq += sq;
        self.sum += sum;
        self.count_crossings(x);
        // Clipping: only stretches of 64 samples that reach the clip level need the run counter
        // (FULL_SCALE is above CLIP_LEVEL, so they hold every full-scale sample too), and one
        // that follows a run still open.
        if peak >= CLIP_LEVEL || self.run > 0 {
            let mut run = self.run;
            for stretch in x.chunks(64) {
                let top = super::abs_max(stretch);
                if run == 0 && top < CLIP_LEVEL {
                    continue;
                }
                self.count_clips(stretch, &mut run);
            }
            self.run = run;
        }
    }

    /// The clip-run counter over `x`, `run` being the length of the run open before it.
    fn count_clips(&mut self, x: &[f32], run: &mut u32) {
        for &v in x {
            self.full_scale += u64::from(v.abs() >= FULL_SCALE);
            if v.abs() >= CLIP_LEVEL {
                *run += 1;
                if *run == CLIP_RUN {
                    self.clip_events += 1;
                    self.clipped += u64::from(CLIP_RUN);
                } else if *run > CLIP_RUN {
                    self.clipped += 1;
                }
            } else {
                *run = 0;
            }
        }
    }

    /// Zero crossings: sign changes between successive non-zero samples (exact zeros carry
    /// the sign before them, also across blocks). Neighbours of opposite sign are counted
    /// without branches; then each run of zeros compares the signs around it.
    #[inline(always)]
    fn count_crossings(&mut self, x: &[f32]) {
        let sign = |v: f32| i8::from(v > 0.0) - i8::from(v < 0.0);
        let n = x.len();
        // `&` and `|` rather than `&&` and `||`: no branches, so the loops vectorise.
        let mut count: u64 = x
            .iter()
            .zip(x.get(1..).unwrap_or_default())
            .map(|(&a, &b)| u64::from(((a > 0.0) & (b < 0.0)) | ((a < 0.0) & (b > 0.0))))
            .sum();
        if let Some(&first) = x.first() {
            let s = sign(first);
            count += u64::from(s != 0 && self.last_sign != 0 && s != self.last_sign);
        }
        // Runs of zeros, found a chunk of 64 at a time (a chunk is checked for zeros without
        // branches first).
        let zero = |v: &f32| sign(*v) == 0;
        let mut at = 0;
        while at < n {
            let end = (at + 64).min(n);
            if x[at..end].iter().map(|v| u32::from(zero(v))).sum::<u32>() == 0 {
                at = end;
                continue;
            }
            let a = at + x[at..end].iter().position(zero).unwrap_or(end - at);
            let b = x[a..].iter().position(|v| !zero(v)).map_or(n, |o| a + o);
            let before = if a > 0 {
                sign(x[a - 1])
            } else {
                self.last_sign
            };
            if b < n {
                let after = sign(x[b]);
                count += u64::from(before != 0 && after != before);
            }
            at = b;
        }
        self.crossings += count;
        if let Some(&v) = x.iter().rev().find(|&&v| sign(v) != 0) {
            self.last_sign = sign(v);
        }
    }

    fn dynamic_range(&self) -> Option<f64> {
        if self.blocks.is_empty() {
            return None;
        }
        let mut rms: Vec<f64> = self.blocks.iter().map(|b| (2.0 * b.0).sqrt()).collect();
        rms.sort_by(|a, b| b.total_cmp(a));
        let top = (rms.len() as f64 * 0.2).ceil().max(1.0) as usize;
        let level = (rms[..top].iter().map(|r| r * r).sum::<f64>() / top as f64).sqrt();
        let mut peaks: Vec<f32> = self.blocks.iter().map(|b| b.1).collect();
        peaks.sort_by(|a, b| b.total_cmp(a));
        let pk2 = f64::from(*peaks.get(1).unwrap_or(&peaks[0]));
        (level > 0.0 && pk2 > 0.0).then(|| 20.0 * (pk2 / level).log10())
    }
}

pub(super) struct LevelsA(pub(super) LevelMeter, pub(super) usize);

impl Analyzer for LevelsA {
    fn feed(&mut self, planes: &[&[f32]]) {
        self.0.feed(planes);
    }
    fn finish(self: Box<Self>, r: &mut AnalysisReport) {
        r.levels = Some(self.0.finish());
    }
    fn cost(&self) -> f64 {
        2.5 * self.1 as f64
    }
    fn name(&self) -> &'static str {
        "levels"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signal::Rng;

    /// The definition, one sample at a time.
    fn crossings_by_definition(x: &[f32]) -> u64 {
        let (mut last, mut count) = (0i8, 0);
        for &v in x {
            let s = i8::from(v > 0.0) - i8::from(v < 0.0);
            if s != 0 {
                count += u64::from(last != 0 && s != last);
                last = s;
            }
        }
        count
    }

    /// Clipped samples, clip events and full-scale samples by the definition.
    fn clips_by_definition(x: &[f32]) -> (u64, u64, u64) {
        let (mut run, mut clipped, mut events, mut full) = (0u32, 0, 0, 0);
        for &v in x {
            full += u64::from(v.abs() >= FULL_SCALE);
            if v.abs() >= CLIP_LEVEL {
                run += 1;
            } else {
                run = 0;
            }
            events += u64::from(run == CLIP_RUN);
            clipped += u64::from(run == CLIP_RUN) * u64::from(CLIP_RUN) + u64::from(run > CLIP_RUN);
        }
        (clipped, events, full)
    }

    #[test]
    fn clip_runs_over_any_blocks_follow_the_definition() {
        let mut rng = Rng::new(0xc11f);
        for case in 0..200 {
            // Loud noise with runs at and just under full scale, of every length around
            // CLIP_RUN, some crossing block and 64-sample edges.
            let len = 1 + (rng.next_u64() % 6000) as usize;
            let mut x = Vec::with_capacity(len);
            while x.len() < len {
                let kind = rng.next_u64() % 6;
                let run = 1 + (rng.next_u64() % 8) as usize;
                let v = match kind {
                    0 => 1.0,
                    1 => -FULL_SCALE,
                    2 => CLIP_LEVEL,
                    3 => 0.99989,
                    _ => {
                        // Noise, sometimes for longer than a 64-sample stretch.
                        let n = 1 + (rng.next_u64() % 150) as usize;
                        x.extend((0..n).map(|_| (rng.uniform() * 1.8 - 0.9) as f32));
                        continue;
                    }
                };
                x.extend(std::iter::repeat_n(v, run));
            }
            x.truncate(len);
            let mut meter = LevelMeter::new(48_000, 1, -60.0);
            let mut at = 0;
            while at < len {
                let take = (1 + (rng.next_u64() % 900) as usize).min(len - at);
                meter.feed(&[&x[at..at + take]]);
                at += take;
            }
            let l = meter.finish();
            let (clipped, events, full) = clips_by_definition(&x);
            assert_eq!(
                (l.clipped_samples, l.clip_events),
                (clipped, events),
                "case {case}"
            );
            assert_eq!(
                l.clipped_fraction,
                Some(full as f64 / len as f64),
                "case {case}"
            );
        }
    }

    #[test]
    fn zero_crossings_with_zeros_and_any_blocks_follow_the_definition() {
        let mut rng = Rng::new(0x5eed);
        for case in 0..200 {
            // Noise with runs of exact zeros (also at the ends and over block edges), runs of
            // one sign, and the odd NaN (no sign, like a zero).
            let len = 1 + (rng.next_u64() % 5000) as usize;
            let mut x = Vec::with_capacity(len);
            while x.len() < len {
                let run = 1 + (rng.next_u64() % 40) as usize;
                let kind = rng.next_u64() % 8;
                for _ in 0..run {
                    x.push(match kind {
                        0 | 1 => 0.0,
                        2 => 0.5,
                        3 if case % 10 == 0 => f32::NAN,
                        _ => (rng.uniform() * 2.0 - 1.0) as f32,
                    });
                }
            }
            x.truncate(len);
            let mut meter = LevelMeter::new(48_000, 1, -60.0);
            let mut at = 0;
            while at < len {
                let take = (1 + (rng.next_u64() % 700) as usize).min(len - at);
                meter.feed(&[&x[at..at + take]]);
                at += take;
            }
            assert_eq!(
                meter.finish().zero_crossings,
                crossings_by_definition(&x),
                "case {case}"
            );
        }
    }
}
