//! Waveform overview: the minimum and maximum sample of each channel in each of a requested
//! number of equal time buckets, in the same pass as everything else.
//!
//! When the frame count is known from the header, buckets have exact boundaries. When it is
//! not, the meter keeps between `n` and `2n` buckets and merges neighbours whenever it runs
//! out, then resamples to `n` at the end, so memory stays bounded either way.

use super::{AnalysisReport, Analyzer};
use crate::formats::limits::MAX_WAVEFORM_BUCKETS;
use serde::Serialize;

#[derive(Debug, Clone)]
pub struct WaveformMeter {
    buckets: usize,
    /// Frames per bucket (exact mode) or per working bucket (unknown length).
    per: f64,
    known: bool,
    frames: u64,
    min: Vec<Vec<f32>>,
    max: Vec<Vec<f32>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Waveform {
    pub buckets: usize,
    /// Seconds covered by one bucket.
    pub bucket_seconds: f64,
    /// Per channel: minimum and maximum sample of each bucket.
    pub channels: Vec<WaveformChannel>,
}

#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct WaveformChannel {
    pub min: Vec<f32>,
    pub max: Vec<f32>,
}

impl WaveformMeter {
    /// `frames`: the length if known (a header's word: it only sets the bucket width).
    /// `buckets` is taken between 1 and [`MAX_WAVEFORM_BUCKETS`], so the meter keeps at most
    /// twice that many min/max pairs per channel whatever it is asked or the file says.
    pub fn new(channels: usize, buckets: usize, frames: Option<u64>) -> Self {
        let buckets = buckets.clamp(1, MAX_WAVEFORM_BUCKETS);
        let (per, known) = match frames {
            Some(f) if f > 0 => (f as f64 / buckets as f64, true),
            _ => (1.0, false),
        };
        WaveformMeter {
            buckets,
            per,
            known,
            frames: 0,
            min: vec![Vec::new(); channels],
            max: vec![Vec::new(); channels],
        }
    }

    fn bucket_of(&self, frame: u64) -> usize {
        if self.known {
            ((frame as f64 / self.per) as usize).min(self.buckets - 1)
        } else {
            (frame as f64 / self.per) as usize
        }
    }

    pub fn feed(&mut self, planes: &[&[f32]]) {
        let frames = planes.first().map_or(0, |p| p.len());
        let mut at = 0usize;
        while at < frames {
            let b = self.bucket_of(self.frames + at as u64);
            if !self.known && b >= 2 * self.buckets {
                self.halve();
                continue;
            }
            // Frames until the next bucket starts.
            let next = ((b + 1) as f64 * self.per).ceil() as u64;
            let end = if self.known && b == self.buckets - 1 {
                frames
            } else {
                (next.saturating_sub(self.frames) as usize).clamp(at + 1, frames)
            };
            for (c, p) in planes.iter().enumerate() {
                let (lo, hi) = p[at..end]
                    .iter()
                    .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
                        (lo.min(v), hi.max(v))
                    });
                let (mn, mx) = (&mut self.min[c], &mut self.max[c]);
                while mn.len() <= b {
                    mn.push(f32::INFINITY);
                    mx.push(f32::NEG_INFINITY);
                }
                mn[b] = mn[b].min(lo);
                mx[b] = mx[b].max(hi);
            }
            at = end;
        }
        self.frames += frames as u64;
    }

    fn halve(&mut self) {
        for (mn, mx) in self.min.iter_mut().zip(&mut self.max) {
            *mn = mn
                .chunks(2)
                .map(|c| c.iter().fold(f32::INFINITY, |a, &b| a.min(b)))
                .collect();
            *mx = mx
                .chunks(2)
                .map(|c| c.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)))
                .collect();
        }
        self.per *= 2.0;
    }

    pub fn finish(self, sample_rate: u32) -> Waveform {
        let n = self.buckets;
        let frames = self.frames;
        let channels = self
            .min
            .into_iter()
            .zip(self.max)
            .map(|(mn, mx)| {
                if self.known || mn.is_empty() {
                    let fix = |v: Vec<f32>, fill: f32| {
                        let mut v: Vec<f32> = v
                            .into_iter()
                            .map(|x| if x.is_finite() { x } else { 0.0 })
                            .collect();
                        v.resize(n, fill);
                        v
                    };
                    WaveformChannel {
                        min: fix(mn, 0.0),
                        max: fix(mx, 0.0),
                    }
                } else {
                    // Resample the working buckets to `n`.
                    let m = mn.len();
                    let (mut a, mut b) = (Vec::with_capacity(n), Vec::with_capacity(n));
                    for i in 0..n {
                        let s = i * m / n;
                        let e = ((i + 1) * m / n).max(s + 1).min(m);
                        if s >= m {
                            a.push(0.0);
                            b.push(0.0);
                            continue;
                        }
                        a.push(mn[s..e].iter().fold(f32::INFINITY, |x, &y| x.min(y)));
                        b.push(mx[s..e].iter().fold(f32::NEG_INFINITY, |x, &y| x.max(y)));
                    }
                    WaveformChannel { min: a, max: b }
                }
            })
            .collect();
        Waveform {
            buckets: n,
            bucket_seconds: frames as f64 / n as f64 / f64::from(sample_rate),
            channels,
        }
    }
}

pub(super) struct WaveformA(pub(super) WaveformMeter, pub(super) u32, pub(super) usize);

impl Analyzer for WaveformA {
    fn feed(&mut self, planes: &[&[f32]]) {
        self.0.feed(planes);
    }
    fn finish(self: Box<Self>, r: &mut AnalysisReport) {
        r.waveform = Some(self.0.finish(self.1));
    }
    fn cost(&self) -> f64 {
        1.5 * self.2 as f64
    }
    fn name(&self) -> &'static str {
        "waveform"
    }
}
