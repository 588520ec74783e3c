//! BS.1770 loudness of a live signal, allocation-free once made: K-weighted energy per 100 ms
//! step (the core's [`ChannelEnergy`]), momentary (400 ms) and short-term (3 s) windows over
//! the last steps (silence before the start, as the core's meter), and the gated integrated
//! loudness and loudness range through the core's [`LiveGating`] histograms. The meter engine
//! builds on it; the reference A/B measures what is heard with it alone.

use crate::shared::MAX_CHANNELS;
use sluice_core::analysis::loudness::{ChannelEnergy, LiveGating, lufs};

/// Steps in a momentary and a short-term window.
pub const M_STEPS: usize = 4;
pub const S_STEPS: usize = 30;

pub struct LiveLoudness {
    channels: usize,
    weights: [f64; MAX_CHANNELS],
    step_frames: usize,
    filled: usize,
    energy: Vec<ChannelEnergy>,
    /// Weighted step energies, a ring of the last 30.
    steps: [f64; S_STEPS],
    step_count: u64,
    gating: LiveGating,
    /// Momentary and short-term loudness at the last step end (LUFS, ungated: −∞ in silence).
    last: (f64, f64),
    /// The integrated loudness at the last step end (the gating's histogram is walked once a
    /// step, not per read).
    integrated: Option<f64>,
}

impl LiveLoudness {
    /// A meter for `rate` Hz and these BS.1770 channel weights (1 for front channels, 1.41 for
    /// surrounds, 0 for the LFE), fed blocks of at most `max_block` frames.
    pub fn new(rate: u32, weights: &[f64], max_block: usize) -> Self {
        let channels = weights.len().clamp(1, MAX_CHANNELS);
        let mut w = [0.0; MAX_CHANNELS];
        w[..channels].copy_from_slice(&weights[..channels]);
        let energy = (0..channels)
            .map(|_| {
                let mut e = ChannelEnergy::new(rate);
                e.reserve_for_block(max_block.max(1));
                e
            })
            .collect::<Vec<_>>();
        let step_frames = energy[0].step_frames();
        LiveLoudness {
            channels,
            weights: w,
            step_frames,
            filled: 0,
            energy,
            steps: [0.0; S_STEPS],
            step_count: 0,
            gating: LiveGating::new(),
            last: (f64::NEG_INFINITY, f64::NEG_INFINITY),
            integrated: None,
        }
    }

    pub fn channels(&self) -> usize {
        self.channels
    }

    pub fn step_frames(&self) -> usize {
        self.step_frames
    }

    /// Frames until the step in progress ends.
    pub fn room(&self) -> usize {
        self.step_frames - self.filled
    }

    /// Steps ended since the start.
    pub fn step_count(&self) -> u64 {
        self.step_count
    }

    pub fn reset(&mut self) {
        for e in &mut self.energy {
            e.reset();
        }
        self.filled = 0;
        self.steps = [0.0; S_STEPS];
        self.step_count = 0;
        self.gating.clear();
        self.last = (f64::NEG_INFINITY, f64::NEG_INFINITY);
        self.integrated = None;
    }

    /// Feeds one slice per channel, at most [`Self::room`] frames; returns the momentary and
    /// short-term loudness (LUFS, ungated) when the step ends with it.
    pub fn feed_step(&mut self, planes: &[&[f32]]) -> Option<(f64, f64)> {
        let ch = self.channels.min(planes.len());
        let take = planes.first().map_or(0, |p| p.len());
        debug_assert!(take <= self.room());
        // Pairs share a loop: their filters overlap in the CPU.
        let mut c = 0;
        while c < ch {
            if c + 1 < ch && self.weights[c] != 0.0 && self.weights[c + 1] != 0.0 {
                let (a, b) = self.energy.split_at_mut(c + 1);
                ChannelEnergy::feed_pair(&mut a[c], &mut b[0], planes[c], planes[c + 1]);
                c += 2;
            } else {
                if self.weights[c] != 0.0 {
                    self.energy[c].feed(planes[c]);
                }
                c += 1;
            }
        }
        self.filled += take;
        if self.filled < self.step_frames {
            return None;
        }
        self.filled = 0;
        Some(self.finish_step())
    }

    /// Feeds any number of frames (one slice per channel, at most `max_block`).
    pub fn process(&mut self, planes: &[&[f32]]) {
        let ch = self.channels.min(planes.len()).min(MAX_CHANNELS);
        let len = planes.first().map_or(0, |p| p.len());
        let mut at = 0;
        while at < len {
            let take = self.room().min(len - at);
            let seg: [&[f32]; MAX_CHANNELS] = std::array::from_fn(|c| {
                if c < ch {
                    &planes[c][at..at + take]
                } else {
                    &[]
                }
            });
            self.feed_step(&seg[..ch]);
            at += take;
        }
    }

    fn finish_step(&mut self) -> (f64, f64) {
        let mut e = 0.0;
        for c in 0..self.channels {
            if self.weights[c] != 0.0 {
                e += self.weights[c] * self.energy[c].steps().first().copied().unwrap_or(0.0);
                self.energy[c].clear_steps();
            }
        }
        self.steps[self.step_count as usize % S_STEPS] = e;
        self.step_count += 1;
        let n = self.step_count as usize;
        // Windows hold silence before the start, as the core's meter does.
        let window = |len: usize| -> f64 {
            (0..len.min(n))
                .map(|i| self.steps[(n - 1 - i) % S_STEPS])
                .sum::<f64>()
                / len as f64
        };
        let m = window(M_STEPS);
        let s = window(S_STEPS);
        if n >= M_STEPS {
            self.gating.add_block(m);
        }
        if n >= S_STEPS {
            self.gating.add_short_term(s);
        }
        self.last = (lufs(m), lufs(s));
        self.integrated = self.gating.integrated();
        self.last
    }

    /// Momentary, short-term (at the last step end; NaN below the −70 LUFS gate or before the
    /// first step) and integrated loudness (NaN before there is one), as the meters show them.
    pub fn readings(&self) -> [f32; 3] {
        let gated = |l: f64| if l >= -70.0 { l as f32 } else { f32::NAN };
        [
            gated(self.last.0),
            gated(self.last.1),
            self.integrated().map_or(f32::NAN, |v| v as f32),
        ]
    }

    /// At the last step end.
    pub fn integrated(&self) -> Option<f64> {
        self.integrated
    }

    /// Computed from the gating's histogram at each call.
    pub fn range(&self) -> Option<f64> {
        self.gating.range()
    }
}
