//! Long-term spectrum and spectral features.
//!
//! STFT: Hann window of `N = next_power_of_two(rate / 12)` samples (4096 at 44.1/48 kHz, about
//! 11 Hz per bin; 8192 at 96 kHz), hop `N/2`. Every channel but the LFE is analysed and their
//! power spectra are averaged into the long-term average spectrum (LTAS); two real frames share
//! one complex FFT. A last partial frame is zero-padded. Features come from the LTAS over
//! 20 Hz .. the Nyquist frequency, so each is energy-weighted over the whole file:
//!
//! - **centroid** — power-weighted mean frequency, Hz;
//! - **bandwidth** — power-weighted standard deviation around the centroid, Hz;
//! - **roll-off** — the frequency below which 85 % of the power lies, Hz;
//! - **flatness** — geometric over arithmetic mean of the power (1 for white noise, near 0
//!   for a few tones);
//! - **bands** — share of the 20 Hz–20 kHz power in low 20–200 Hz, low-mid 200–500, mid
//!   500–2k, high-mid 2k–6k and high 6k–20k, percent (a bin straddling an edge is split in
//!   proportion);
//! - **LTAS** — the spectrum in 1/12-octave bands from 20 Hz, in dB relative to a full-scale
//!   sine (a sine of peak `A` reads `20·log10(A)` in its band), for plots. Bands narrower than
//!   the window's main lobe (4 bins, below ~700 Hz at 48 kHz) integrate the 4 bins around
//!   their centre, so a low tone is not under-read; noise there reads as its power in 4 bins.

use rustfft::num_complex::Complex;
use rustfft::{Fft, FftPlanner};
use serde::Serialize;
use std::sync::Arc;

pub const BANDS: [(&str, f64, f64); 5] = [
    ("low", 20.0, 200.0),
    ("low_mid", 200.0, 500.0),
    ("mid", 500.0, 2_000.0),
    ("high_mid", 2_000.0, 6_000.0),
    ("high", 6_000.0, 20_000.0),
];

pub struct SpectrumMeter {
    rate: u32,
    n: usize,
    fft: Arc<dyn Fft<f32>>,
    window: Vec<f32>,
    channels: Vec<usize>,
    /// Per analysed channel: samples waiting for the next frame.
    pending: Vec<Vec<f32>>,
    /// `buf` holds one windowed frame in its real part, waiting for a partner frame to go in
    /// the imaginary part so the two share an FFT.
    half: bool,
    buf: Vec<Complex<f32>>,
    scratch: Vec<Complex<f32>>,
    power: Vec<f64>,
    /// Windowed frames analysed, over all channels.
    count: u64,
}

impl std::fmt::Debug for SpectrumMeter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpectrumMeter")
            .field("rate", &self.rate)
            .field("n", &self.n)
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Spectrum {
    pub fft_size: usize,
    pub centroid_hz: Option<f64>,
    pub bandwidth_hz: Option<f64>,
    pub rolloff_hz: Option<f64>,
    pub flatness: Option<f64>,
    pub bands: Vec<Band>,
    /// Long-term average spectrum in 1/12-octave bands.
    pub ltas: Vec<LtasPoint>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Band {
    pub name: &'static str,
    pub low_hz: f64,
    pub high_hz: f64,
    /// Share of the 20 Hz–20 kHz power, percent; `None` for silence.
    pub share_percent: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LtasPoint {
    pub hz: f64,
    pub db: f64,
}

/// FFT size for `rate`.
pub fn fft_size(rate: u32) -> usize {
    ((rate / 12) as usize).next_power_of_two().max(256)
}

impl SpectrumMeter {
    /// `channels`: indices of the channels to analyse (the LFE left out by the caller).
    pub fn new(rate: u32, channels: Vec<usize>) -> Self {
        let n = fft_size(rate);
        let fft = FftPlanner::new().plan_fft_forward(n);
        let window = super::hann(n);
        let scratch = vec![Complex::default(); fft.get_inplace_scratch_len()];
        SpectrumMeter {
            rate,
            n,
            fft,
            window,
            pending: vec![Vec::with_capacity(n); channels.len()],
            channels,
            half: false,
            buf: vec![Complex::default(); n],
            scratch,
            power: vec![0.0; n / 2 + 1],
            count: 0,
        }
    }

    pub fn feed(&mut self, planes: &[&[f32]]) {
        let hop = self.n / 2;
        for k in 0..self.channels.len() {
            let src = planes[self.channels[k]];
            let mut at = 0;
            while at < src.len() {
                let take = (self.n - self.pending[k].len()).min(src.len() - at);
                self.pending[k].extend_from_slice(&src[at..at + take]);
                at += take;
                if self.pending[k].len() == self.n {
                    self.push_frame(k);
                    self.pending[k].drain(..hop);
                }
            }
        }
    }

    /// Window channel `k`'s pending samples (zero-padded to the frame size) into `buf`, and
    /// transform once two frames are there.
    fn push_frame(&mut self, k: usize) {
        self.count += 1;
        let x = &self.pending[k];
        let imag = self.half;
        for (i, (c, w)) in self.buf.iter_mut().zip(&self.window).enumerate() {
            let v = x.get(i).map_or(0.0, |s| s * w);
            if imag {
                c.im = v;
            } else {
                *c = Complex::new(v, 0.0);
            }
        }
        self.half = !imag;
        if imag {
            self.transform(true);
        }
    }

    /// FFT of `buf` holding one real frame, or two packed as real and imaginary parts.
    fn transform(&mut self, two: bool) {
        self.fft
            .process_with_scratch(&mut self.buf, &mut self.scratch);
        let n = self.n;
        for k in 0..=n / 2 {
            let x = self.buf[k];
            let y = self.buf[(n - k) % n].conj();
            // A = (X + Y*)/2, B = (X - Y*)/(2i)
            let fa = (x + y) * 0.5;
            let fb = (x - y) * Complex::new(0.0, -0.5);
            let mut p = f64::from(fa.norm_sqr());
            if two {
                p += f64::from(fb.norm_sqr());
            }
            self.power[k] += p;
        }
    }

    pub fn finish(mut self) -> Spectrum {
        // Partial frames (the tail of each channel): zero-padded, if they hold more than a hop
        // of new samples or nothing else was analysed.
        let hop = self.n / 2;
        let analysed_any = self.count > 0;
        for k in 0..self.pending.len() {
            let len = self.pending[k].len();
            if len > hop || (!analysed_any && len > 0) {
                self.push_frame(k);
            }
        }
        if self.half {
            self.transform(false);
        }
        self.features()
    }

    fn features(&self) -> Spectrum {
        let n = self.n;
        let df = f64::from(self.rate) / n as f64;
        let nyq = f64::from(self.rate) / 2.0;
        let bins = || (0..=n / 2).map(|k| (k as f64 * df, self.power[k]));
        let audible = || bins().filter(|&(f, _)| f >= 20.0);
        let total: f64 = audible().map(|(_, p)| p).sum();
        let silent = total <= 0.0;
        let centroid = (!silent).then(|| audible().map(|(f, p)| f * p).sum::<f64>() / total);
        let bandwidth = centroid
            .map(|c| (audible().map(|(f, p)| (f - c).powi(2) * p).sum::<f64>() / total).sqrt());
        let rolloff = (!silent).then(|| {
            let mut acc = 0.0;
            let mut at = nyq;
            for (f, p) in audible() {
                acc += p;
                if acc >= 0.85 * total {
                    at = f;
                    break;
                }
            }
            at
        });
        let flatness = (!silent).then(|| {
            let m = audible().count() as f64;
            let floor = total / m * 1e-12;
            let geo = (audible().map(|(_, p)| (p + floor).ln()).sum::<f64>() / m).exp();
            geo / (total / m)
        });
        // Band shares: bins cover [f - df/2, f + df/2); split across band edges.
        let in_band = |lo: f64, hi: f64| -> f64 {
            bins()
                .map(|(f, p)| {
                    let (a, b) = ((f - df / 2.0).max(lo), (f + df / 2.0).min(hi));
                    if b > a { p * (b - a) / df } else { 0.0 }
                })
                .sum()
        };
        let audible_total = in_band(20.0, 20_000.0);
        let bands = BANDS
            .iter()
            .map(|&(name, lo, hi)| Band {
                name,
                low_hz: lo,
                high_hz: hi,
                share_percent: (audible_total > 0.0)
                    .then(|| 100.0 * in_band(lo, hi) / audible_total),
            })
            .collect();
        // LTAS in dB re a full-scale sine: a sine of peak A spreads (A/2)²·N·Σw² of power over
        // its main lobe (Parseval), so a band's power P per frame reads as 2·sqrt(P/(N·Σw²)).
        let sum_w2: f64 = self
            .window
            .iter()
            .map(|&w| f64::from(w) * f64::from(w))
            .sum();
        let count = self.count.max(1) as f64;
        let mut ltas = Vec::new();
        let mut lo = 20.0f64;
        while lo < nyq {
            let hi = (lo * 2f64.powf(1.0 / 12.0)).min(nyq);
            let centre = (lo * hi).sqrt();
            // A band narrower than the window's main lobe (4 bins) integrates over the lobe
            // around its centre instead, so a low tone reads its level and no band is empty.
            let (a, b) = if hi - lo < 4.0 * df {
                (centre - 2.0 * df, centre + 2.0 * df)
            } else {
                (lo, hi)
            };
            let p: f64 = bins()
                .filter(|&(f, _)| f >= a && f < b)
                .map(|(_, p)| p)
                .sum();
            let amp = 2.0 * (p / count / (n as f64 * sum_w2)).sqrt();
            ltas.push(LtasPoint {
                hz: centre,
                db: if amp > 0.0 {
                    (20.0 * amp.log10()).max(-200.0)
                } else {
                    -200.0
                },
            });
            lo = hi;
        }
        Spectrum {
            fft_size: n,
            centroid_hz: centroid,
            bandwidth_hz: bandwidth,
            rolloff_hz: rolloff,
            flatness,
            bands,
            ltas,
        }
    }
}
