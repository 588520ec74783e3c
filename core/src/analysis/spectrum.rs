//! Spectral features and the long-term spectrum.
//!
//! **Features** (`centroid_hz`, `bandwidth_hz`, `rolloff_hz`, `flatness`) are computed as
//! librosa 0.11 computes them with its defaults, so they agree with
//! `librosa.feature.spectral_*` on the same samples: per STFT frame of the mono mix (the
//! mean of all channels), then averaged over the frames. The STFT is librosa's: `n_fft` =
//! 2048 at the file's own rate, hop 512, a periodic Hann window of 2048, `center=True` with
//! zero padding (`pad_mode='constant'`) of 1024 samples at each end, so a file of `L` samples
//! has `1 + ⌊L / 512⌋` frames. On each frame's magnitude spectrum `S[k]` (bins `k·rate/2048`,
//! 0 Hz .. Nyquist):
//!
//! - **centroid** — `Σ f·S / Σ S`, Hz;
//! - **bandwidth** — `(Σ S·(f − centroid)² / Σ S)^½`, Hz (librosa's `p = 2`);
//! - **roll-off** — the lowest bin frequency at which the cumulative `S` reaches 85 % of
//!   its sum, Hz;
//! - **flatness** — geometric over arithmetic mean of the power `max(S², 1e-10)` (librosa's
//!   `power = 2`, `amin = 1e-10`): about 0.56 for white noise (e^−γ, the power of each bin
//!   being exponentially distributed), near 0 for tones.
//!
//! A frame of digital silence counts as librosa counts it (centroid, bandwidth and roll-off
//! 0, flatness 1); a file with no non-silent frame gets `None` for all four. Only running sums
//! over the frames are kept.
//!
//! **Long-term spectrum** (bands and LTAS, for plots): STFT with a Hann window of
//! `N = next_power_of_two(rate / 12)` samples (4096 at 44.1/48 kHz, about 11 Hz per bin; 8192
//! at 96 kHz), hop `N/2`. Every channel but the LFE is analysed and their power spectra are
//! averaged into the long-term average spectrum (LTAS); two real frames share one complex FFT.
//! A last partial frame is zero-padded.
//!
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

/// STFT length of the spectral features (librosa's `n_fft`).
pub const FEATURE_FFT: usize = 2048;
/// Hop of the spectral features (librosa's `hop_length`).
pub const FEATURE_HOP: usize = 512;
/// Share of the magnitude below the roll-off frequency (librosa's `roll_percent`).
pub const ROLL_PERCENT: f64 = 0.85;
/// Floor of the power in the flatness (librosa's `amin`).
pub const FLATNESS_AMIN: f64 = 1e-10;

/// The spectral features of one frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FrameFeatures {
    pub centroid_hz: f64,
    pub bandwidth_hz: f64,
    pub rolloff_hz: f64,
    pub flatness: f64,
}

/// librosa's features of one frame from its magnitude spectrum `mag` (bins 0 ..= n/2 of an
/// `n`-point FFT, `n = 2·(mag.len() − 1)`, unnormalised as `np.abs(stft)` gives it) at `rate`
/// Hz. An all-zero frame gives 0, 0, 0 and 1, as librosa does.
pub fn frame_features(mag: &[f64], rate: u32) -> FrameFeatures {
    let n = 2 * mag.len().saturating_sub(1);
    let df = f64::from(rate) / n.max(1) as f64;
    let (mut s0, mut s1, mut s2) = (0.0f64, 0.0f64, 0.0f64);
    let (mut logs, mut powers) = (0.0f64, 0.0f64);
    // Σ ln p as the ln of products of 16 powers: each power lies in [1e-10, ~1e6] (the floor,
    // and full scale over a 2048-point window), so a product of 16 stays within f64's
    // range; one logarithm per 16 bins instead of one per bin.
    let mut product = 1.0f64;
    for (k, &m) in mag.iter().enumerate() {
        let f = k as f64 * df;
        s0 += m;
        s1 += m * f;
        s2 += m * f * f;
        let p = (m * m).max(FLATNESS_AMIN);
        product *= p;
        if k % 16 == 15 {
            logs += product.ln();
            product = 1.0;
        }
        powers += p;
    }
    logs += product.ln();
    let bins = mag.len().max(1) as f64;
    let flatness = (logs / bins).exp() / (powers / bins);
    if s0 <= 0.0 {
        return FrameFeatures {
            centroid_hz: 0.0,
            bandwidth_hz: 0.0,
            rolloff_hz: 0.0,
            flatness,
        };
    }
    let centroid = s1 / s0;
    // Σ S (f − c)² / Σ S = Σ S f² / Σ S − c² (f64 moments: no cancellation at audio rates).
    let bandwidth = (s2 / s0 - centroid * centroid).max(0.0).sqrt();
    let threshold = ROLL_PERCENT * s0;
    let mut acc = 0.0;
    let mut rolloff = (mag.len() - 1) as f64 * df;
    for (k, &m) in mag.iter().enumerate() {
        acc += m;
        if acc >= threshold {
            rolloff = k as f64 * df;
            break;
        }
    }
    FrameFeatures {
        centroid_hz: centroid,
        bandwidth_hz: bandwidth,
        rolloff_hz: rolloff,
        flatness,
    }
}

/// Streaming librosa-compatible spectral features of a mono signal (see the module docs):
/// running sums over the frames, nothing per frame is kept. Each real frame is transformed on
/// its own (as a half-length complex FFT), in f64: an f32 FFT's rounding floor (~140 dB down)
/// already moves a pure tone's bandwidth by 15 %, where librosa's agrees with an exact
/// transform.
pub struct FeatureMeter {
    rate: u32,
    fft: Arc<dyn Fft<f64>>,
    window: Vec<f64>,
    /// `e^(−2πik/n)` for the bins 0 ..= n/2.
    twiddle: Vec<Complex<f64>>,
    /// Samples not yet consumed by a frame; begins with the centre padding.
    pending: Vec<f32>,
    buf: Vec<Complex<f64>>,
    scratch: Vec<Complex<f64>>,
    mag: Vec<f64>,
    fed: u64,
    frames: u64,
    sounding: u64,
    sums: [f64; 4],
}

impl std::fmt::Debug for FeatureMeter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeatureMeter")
            .field("rate", &self.rate)
            .field("frames", &self.frames)
            .finish()
    }
}

impl FeatureMeter {
    pub fn new(rate: u32) -> Self {
        let n = FEATURE_FFT;
        let fft = FftPlanner::new().plan_fft_forward(n / 2);
        let scratch = vec![Complex::default(); fft.get_inplace_scratch_len()];
        let mut pending = Vec::with_capacity(2 * n);
        pending.resize(n / 2, 0.0);
        let twiddle = (0..=n / 2)
            .map(|k| {
                let a = -std::f64::consts::TAU * k as f64 / n as f64;
                Complex::new(a.cos(), a.sin())
            })
            .collect();
        FeatureMeter {
            rate,
            fft,
            window: (0..n)
                .map(|i| 0.5 - 0.5 * (std::f64::consts::TAU * i as f64 / n as f64).cos())
                .collect(),
            twiddle,
            pending,
            buf: vec![Complex::default(); n / 2],
            scratch,
            mag: vec![0.0; n / 2 + 1],
            fed: 0,
            frames: 0,
            sounding: 0,
            sums: [0.0; 4],
        }
    }

    /// Feeds mono samples, any block size.
    pub fn feed(&mut self, mono: &[f32]) {
        self.fed += mono.len() as u64;
        self.pending.extend_from_slice(mono);
        self.frames_ready();
    }

    /// Analyses every complete frame in `pending` and drops the samples no frame needs.
    fn frames_ready(&mut self) {
        let mut start = 0;
        while self.pending.len() - start >= FEATURE_FFT {
            self.frame(start);
            start += FEATURE_HOP;
        }
        self.pending.drain(..start);
    }

    /// The features of the frame at `pending[start..]`, added to the sums.
    fn frame(&mut self, start: usize) {
        let x = &self.pending[start..start + FEATURE_FFT];
        // Even samples in the real part, odd in the imaginary part.
        for ((z, x), w) in self
            .buf
            .iter_mut()
            .zip(x.chunks_exact(2))
            .zip(self.window.chunks_exact(2))
        {
            *z = Complex::new(f64::from(x[0]) * w[0], f64::from(x[1]) * w[1]);
        }
        self.fft
            .process_with_scratch(&mut self.buf, &mut self.scratch);
        let m = FEATURE_FFT / 2;
        let mut sounding = false;
        for (k, (out, tw)) in self.mag.iter_mut().zip(&self.twiddle).enumerate() {
            let a = self.buf[k % m];
            let b = self.buf[(m - k) % m].conj();
            let even = (a + b) * 0.5;
            let odd = (a - b) * Complex::new(0.0, -0.5);
            // |z| as sqrt(re² + im²): `norm()` is libm's overflow-safe hypot, several times
            // slower, and these magnitudes are nowhere near overflow.
            *out = (even + tw * odd).norm_sqr().sqrt();
            sounding |= *out > 0.0;
        }
        let f = frame_features(&self.mag, self.rate);
        self.frames += 1;
        self.sounding += u64::from(sounding);
        for (s, v) in
            self.sums
                .iter_mut()
                .zip([f.centroid_hz, f.bandwidth_hz, f.rolloff_hz, f.flatness])
        {
            *s += v;
        }
    }

    /// The mean features over the frames (centroid, bandwidth, roll-off in Hz, flatness), or
    /// `None` when nothing but digital silence was fed.
    pub fn finish(mut self) -> Option<FrameFeatures> {
        if self.fed == 0 {
            return None;
        }
        self.pending
            .resize(self.pending.len() + FEATURE_FFT / 2, 0.0);
        self.frames_ready();
        if self.sounding == 0 {
            return None;
        }
        let m = |i: usize| self.sums[i] / self.frames as f64;
        Some(FrameFeatures {
            centroid_hz: m(0),
            bandwidth_hz: m(1),
            rolloff_hz: m(2),
            flatness: m(3),
        })
    }
}

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
    /// The spectral features, on the mean of all channels fed (taken at `finish`).
    features: Option<FeatureMeter>,
    mono: Vec<f32>,
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
    /// FFT size of the long-term spectrum (bands, LTAS); the features use [`FEATURE_FFT`].
    pub fft_size: usize,
    /// Mean over the frames of the mono mix of librosa's spectral centroid, Hz.
    pub centroid_hz: Option<f64>,
    /// ... of librosa's spectral bandwidth (`p = 2`), Hz.
    pub bandwidth_hz: Option<f64>,
    /// ... of librosa's 85 % spectral roll-off, Hz.
    pub rolloff_hz: Option<f64>,
    /// ... of librosa's spectral flatness (power, `amin = 1e-10`), 0–1.
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
    /// `channels`: indices of the channels of the long-term spectrum (the LFE left out by the
    /// caller). The features are measured on the mean of every channel fed, as librosa's mono
    /// mix.
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
            features: Some(FeatureMeter::new(rate)),
            mono: Vec::new(),
        }
    }

    pub fn feed(&mut self, planes: &[&[f32]]) {
        if let Some(f) = &mut self.features {
            super::mono_into(planes, &mut self.mono);
            f.feed(&self.mono);
        }
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
        let features = self.features.take().and_then(FeatureMeter::finish);
        self.long_term(features)
    }

    fn long_term(&self, features: Option<FrameFeatures>) -> Spectrum {
        let n = self.n;
        let df = f64::from(self.rate) / n as f64;
        let nyq = f64::from(self.rate) / 2.0;
        let bins = || (0..=n / 2).map(|k| (k as f64 * df, self.power[k]));
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
            centroid_hz: features.map(|f| f.centroid_hz),
            bandwidth_hz: features.map(|f| f.bandwidth_hz),
            rolloff_hz: features.map(|f| f.rolloff_hz),
            flatness: features.map(|f| f.flatness),
            bands,
            ltas,
        }
    }
}
