//! The live spectrum: a Hann-windowed FFT of the core's frame size for the rate (4096 at
//! 44.1/48 kHz, 8192 at 96 kHz) every half frame, the power of the first two channels averaged
//! (packed as real and imaginary parts of one complex FFT), smoothed with a 300 ms time
//! constant. Everything is allocated in [`LiveSpectrum::new`]; feeding never allocates.

use crate::shared::{MeterShared, SPECTRUM_POINTS, spectrum_point_hz};
use rustfft::num_complex::Complex;
use rustfft::{Fft, FftPlanner};
use sluice_core::analysis::spectrum::{BANDS, fft_size};
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// Smoothing time constant of the displayed spectrum, seconds.
const SMOOTHING_S: f64 = 0.3;

pub struct LiveSpectrum {
    n: usize,
    rate: f64,
    channels: usize,
    fft: Arc<dyn Fft<f32>>,
    window: Vec<f32>,
    /// The last `n` input frames, channel 0 in `re`, channel 1 in `im`, as a ring.
    ring: Vec<Complex<f32>>,
    pos: usize,
    since_frame: usize,
    buf: Vec<Complex<f32>>,
    scratch: Vec<Complex<f32>>,
    /// Smoothed power per FFT bin (`0..=n/2`), normalised so a full-scale sine's bins sum to 1.
    power: Vec<f64>,
    /// Each bin's power summed over every frame since the reset (the long-term balance).
    long_power: Vec<f64>,
    alpha: f64,
    norm: f64,
    /// FFT bin ranges of the display points.
    points: Vec<(usize, usize)>,
    frames: u64,
}

impl LiveSpectrum {
    pub fn new(rate: u32, channels: usize) -> Self {
        let n = fft_size(rate);
        let fft = FftPlanner::new().plan_fft_forward(n);
        let window = sluice_core::analysis::hann(n);
        let scratch = vec![Complex::default(); fft.get_inplace_scratch_len()];
        let sum_w2: f64 = window.iter().map(|&w| f64::from(w * w)).sum();
        // One-sided power of a sine of amplitude A sums to n·A²·Σw²/4 (Parseval).
        let norm = 4.0 / (n as f64 * sum_w2);
        let df = f64::from(rate) / n as f64;
        let points = (0..SPECTRUM_POINTS)
            .map(|i| {
                let r = (f64::from(crate::shared::SPECTRUM_HIGH_HZ)
                    / f64::from(crate::shared::SPECTRUM_LOW_HZ))
                .powf(0.5 / SPECTRUM_POINTS as f64);
                let c = f64::from(spectrum_point_hz(i));
                let (lo, hi) = ((c / r / df).round() as usize, (c * r / df).round() as usize);
                // At least the window's main lobe (4 bins) around the centre, so a low tone is
                // not under-read where points are narrower than a bin.
                let (lo, hi) = if hi < lo + 4 {
                    let mid = (c / df).round() as usize;
                    (mid.saturating_sub(2), mid + 2)
                } else {
                    (lo, hi)
                };
                (lo.min(n / 2), hi.min(n / 2 + 1))
            })
            .collect();
        let hop = n / 2;
        LiveSpectrum {
            n,
            rate: f64::from(rate),
            channels: channels.clamp(1, 2),
            fft,
            window,
            ring: vec![Complex::default(); n],
            pos: 0,
            since_frame: 0,
            buf: vec![Complex::default(); n],
            scratch,
            power: vec![0.0; n / 2 + 1],
            long_power: vec![0.0; n / 2 + 1],
            alpha: (-(hop as f64) / (f64::from(rate) * SMOOTHING_S)).exp(),
            norm,
            points,
            frames: 0,
        }
    }

    pub fn reset(&mut self) {
        self.ring.fill(Complex::default());
        self.power.fill(0.0);
        self.long_power.fill(0.0);
        self.pos = 0;
        self.since_frame = 0;
        self.frames = 0;
    }

    /// Feed planar audio (only the first two channels are used).
    pub fn feed(&mut self, planes: &[&[f32]]) {
        let len = planes.first().map_or(0, |p| p.len());
        let (a, b) = (planes[0], planes.get(1).filter(|_| self.channels == 2));
        let hop = self.n / 2;
        let mut at = 0;
        while at < len {
            let take = (hop - self.since_frame).min(len - at);
            match b {
                Some(b) => {
                    for (&x, &y) in a[at..at + take].iter().zip(&b[at..at + take]) {
                        self.ring[self.pos] = Complex::new(x, y);
                        self.pos += 1;
                        if self.pos == self.n {
                            self.pos = 0;
                        }
                    }
                }
                None => {
                    for &x in &a[at..at + take] {
                        self.ring[self.pos] = Complex::new(x, 0.0);
                        self.pos += 1;
                        if self.pos == self.n {
                            self.pos = 0;
                        }
                    }
                }
            }
            self.since_frame += take;
            at += take;
            if self.since_frame == hop {
                self.since_frame = 0;
                self.frame();
            }
        }
    }

    fn frame(&mut self) {
        let n = self.n;
        // The ring from its oldest sample (at `pos`) on, windowed.
        let (newer, older) = self.ring.split_at(self.pos);
        for ((o, &x), &w) in self
            .buf
            .iter_mut()
            .zip(older.iter().chain(newer))
            .zip(&self.window)
        {
            *o = x * w;
        }
        self.fft
            .process_with_scratch(&mut self.buf, &mut self.scratch);
        // |A|² + |B|² = (|X_k|² + |X_{n-k}|²) / 2 for two real signals packed as re + i·im.
        let per_channel = self.norm / self.channels as f64;
        let first = self.frames == 0;
        for k in 0..=n / 2 {
            let p = (f64::from(self.buf[k].norm_sqr())
                + f64::from(self.buf[(n - k) % n].norm_sqr()))
                * 0.5
                * per_channel;
            let p = if k == 0 || k == n / 2 { p * 0.5 } else { p };
            self.long_power[k] += p;
            self.power[k] = if first {
                p
            } else {
                self.alpha * self.power[k] + (1.0 - self.alpha) * p
            };
        }
        self.frames += 1;
    }

    /// Writes the display points and band shares (nothing until the first frame).
    pub fn publish(&self, shared: &MeterShared) {
        if self.frames == 0 {
            return;
        }
        for (slot, &(lo, hi)) in shared.spectrum.iter().zip(&self.points) {
            let p: f64 = self.power[lo..hi].iter().sum();
            let db = if p > 0.0 { 10.0 * p.log10() } else { -200.0 };
            slot.store(db.max(-200.0) as f32, Ordering::Relaxed);
        }
        let shares = |power: &[f64], out: &[nice_plug::prelude::AtomicF32]| {
            let df = self.rate / self.n as f64;
            let band_power = |f0: f64, f1: f64| -> f64 {
                // Bins straddling an edge count in proportion, as in the core.
                (0..=self.n / 2)
                    .map(|k| {
                        let (lo, hi) = ((k as f64 - 0.5) * df, (k as f64 + 0.5) * df);
                        let overlap = (hi.min(f1) - lo.max(f0)).max(0.0) / df;
                        power[k] * overlap
                    })
                    .sum()
            };
            let total = band_power(20.0, 20_000.0);
            for (slot, (_, f0, f1)) in out.iter().zip(BANDS) {
                let share = if total > 0.0 {
                    100.0 * band_power(f0, f1) / total
                } else {
                    f64::NAN
                };
                slot.store(share as f32, Ordering::Relaxed);
            }
        };
        shares(&self.power, &shared.band_share);
        shares(&self.long_power, &shared.band_share_long);
    }
}
