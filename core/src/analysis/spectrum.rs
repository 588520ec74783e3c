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

use super::{AnalysisReport, Analyzer, mono_into};
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
    let power: Vec<f64> = mag.iter().map(|m| m * m).collect();
    let n = 2 * mag.len().saturating_sub(1);
    let df = f64::from(rate) / n.max(1) as f64;
    features_of(mag, &power, df)
}

/// The features of one frame from its magnitudes and their squares (the power), bins `df` Hz
/// apart.
#[inline(always)]
fn features_of(mag: &[f64], power: &[f64], df: f64) -> FrameFeatures {
    let mut sums = Sums::new();
    let chunks = mag.chunks_exact(LANES).zip(power.chunks_exact(LANES));
    for (c, (m, p)) in chunks.enumerate() {
        let lanes = |x: &[f64]| -> [f64; LANES] { x.try_into().expect("LANES bins") };
        sums.add(c, &lanes(m), &lanes(p));
    }
    let done = mag.len() / LANES * LANES;
    for (k, (&m, &p)) in mag.iter().zip(power).enumerate().skip(done) {
        sums.add_one(k, m, p);
    }
    sums.features(mag, df)
}

/// The lowest bin at which the cumulative magnitude reaches `threshold` (the last bin if it
/// never does): sums of 16 bins first, then the bins of the block where it is reached.
#[inline(always)]
fn rolloff_bin(mag: &[f64], threshold: f64) -> usize {
    const B: usize = 16;
    let mut acc = 0.0;
    let blocks = mag.chunks_exact(B);
    let rest = blocks.remainder();
    for (c, block) in blocks.enumerate() {
        let mut lanes = [0.0f64; LANES];
        for part in block.chunks_exact(LANES) {
            for i in 0..LANES {
                lanes[i] += part[i];
            }
        }
        let total = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
        if acc + total >= threshold {
            for (i, &m) in block.iter().enumerate() {
                acc += m;
                if acc >= threshold {
                    return c * B + i;
                }
            }
            // Rounding put the block's sum over and its bins one by one not quite: the
            // threshold is reached at the block's end.
            return c * B + B - 1;
        }
        acc += total;
    }
    let start = mag.len() - rest.len();
    for (i, &m) in rest.iter().enumerate() {
        acc += m;
        if acc >= threshold {
            return start + i;
        }
    }
    mag.len().saturating_sub(1)
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
    /// Samples not yet consumed by a frame (in f64, converted once rather than in each of the
    /// four frames that overlap them); begins with the centre padding.
    pending: Vec<f64>,
    buf: Vec<Complex<f64>>,
    scratch: Vec<Complex<f64>>,
    mag: Vec<f64>,
    /// The squares of `mag`.
    power: Vec<f64>,
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
            power: vec![0.0; n / 2 + 1],
            fed: 0,
            frames: 0,
            sounding: 0,
            sums: [0.0; 4],
        }
    }

    /// Feeds mono samples, any block size.
    pub fn feed(&mut self, mono: &[f32]) {
        self.fed += mono.len() as u64;
        self.pending.extend(mono.iter().map(|&v| f64::from(v)));
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
        // Even samples in the real part, odd in the imaginary part: the complex buffer seen as
        // its interleaved parts is the windowed frame in order.
        // SAFETY: `Complex<f64>` is `#[repr(C)]` { re, im }, so `m` of them are `2m` f64s with
        // the same alignment; the slice borrows `buf` mutably for its lifetime.
        let flat = unsafe {
            std::slice::from_raw_parts_mut(self.buf.as_mut_ptr().cast::<f64>(), 2 * self.buf.len())
        };
        for ((z, &x), &w) in flat.iter_mut().zip(x).zip(&self.window) {
            *z = x * w;
        }
        self.fft
            .process_with_scratch(&mut self.buf, &mut self.scratch);
        let df = f64::from(self.rate) / FEATURE_FFT as f64;
        let f = transformed_frame(&self.buf, &self.twiddle, &mut self.mag, &mut self.power, df);
        self.frames += 1;
        // Magnitudes are never negative: the frame sounds if their sum is positive.
        self.sounding += u64::from(f.centroid_hz > 0.0 || self.mag[0] > 0.0);
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

avx2_where_present! {
    /// The features of a real frame of `2m` samples from `z`, the `m`-point complex FFT of its
    /// even samples (real parts) and odd samples (imaginary parts), leaving its magnitudes in `mag`
    /// (bins 0 ..= m, `df` Hz apart) and their squares in `power`. Bin k is `E + e^(−iπk/m)·O` with
    /// `E = (Z[k] + conj Z[m−k]) / 2` and `O = (Z[k] − conj Z[m−k]) / 2i`, `Z[m]` being `Z[0]`.
    /// On AVX2 where the CPU has it.
    fn transformed_frame(
        z: &[Complex<f64>],
        twiddle: &[Complex<f64>],
        mag: &mut [f64],
        power: &mut [f64],
        df: f64,
    ) -> FrameFeatures => transformed_frame_body
}

#[inline(always)]
fn transformed_frame_body(
    z: &[Complex<f64>],
    twiddle: &[Complex<f64>],
    mag: &mut [f64],
    power: &mut [f64],
    df: f64,
) -> FrameFeatures {
    let m = z.len();
    assert!(twiddle.len() == m + 1 && mag.len() == m + 1 && power.len() == m + 1 && m > 0);
    // |bin|² with re and im written out (|z| then as sqrt(re² + im²): `norm()` is libm's
    // overflow-safe hypot, several times slower, and these magnitudes are nowhere near
    // overflow).
    // 2·X[k] = (a + conj b) − i·W·(a − conj b) with a = Z[k], b = Z[m − k], W = e^(−iπk/m):
    // the halves folded into one quarter of the power at the end.
    let bin = |a: Complex<f64>, b: Complex<f64>, tw: Complex<f64>| {
        let (ur, ui) = (a.re + b.re, a.im - b.im);
        let (vr, vi) = (a.re - b.re, a.im + b.im);
        let xr = ur + (tw.re * vi + tw.im * vr);
        let xi = ui + (tw.im * vi - tw.re * vr);
        0.25 * (xr * xr + xi * xi)
    };
    power[0] = bin(z[0], z[0], twiddle[0]);
    power[m] = bin(z[0], z[0], twiddle[m]);
    // Bins 1 .. m pair Z[k] with Z[m − k]: two plain loops (power, then the roots) vectorise,
    // one loop doing everything did not.
    let mirrored = z[1..].iter().rev();
    for (((p, &a), &b), &tw) in power[1..m]
        .iter_mut()
        .zip(&z[1..])
        .zip(mirrored)
        .zip(&twiddle[1..m])
    {
        *p = bin(a, b, tw);
    }
    // The square roots in single precision (8 at a time instead of 4): 6e-8 relative per
    // magnitude, far below what the features can show.
    for (g, &p) in mag.iter_mut().zip(power.iter()) {
        *g = f64::from((p as f32).sqrt());
    }
    features_of(mag, power, df)
}

/// Lanes of the per-frame sums: independent running sums the compiler turns into vector
/// registers (one running sum would be a chain of dependent additions).
const LANES: usize = 4;
const _: () = assert!(LANES == 4, "rolloff_bin adds four lanes");

/// Running per-frame sums over the bins, in [`LANES`] lanes.
struct Sums {
    s0: [f64; LANES],
    s1: [f64; LANES],
    s2: [f64; LANES],
    powers: [f64; LANES],
    /// Σ ln p as the logarithm of running products whose binary exponents are moved into
    /// `exponent` every 16 chunks: each power lies in [1e-10, ~1e6] (the floor, and full scale
    /// over a 2048-point window), so a mantissa in [1, 2) times 16 of them stays within f64's
    /// range. One logarithm per lane per frame instead of one per bin.
    product: [f64; LANES],
    exponent: [i64; LANES],
}

impl Sums {
    #[inline(always)]
    fn new() -> Self {
        Sums {
            s0: [0.0; LANES],
            s1: [0.0; LANES],
            s2: [0.0; LANES],
            powers: [0.0; LANES],
            product: [1.0; LANES],
            exponent: [0; LANES],
        }
    }

    /// Bins `c·L .. c·L + L`: magnitudes `m`, powers `p`.
    #[inline(always)]
    fn add(&mut self, c: usize, m: &[f64; LANES], p: &[f64; LANES]) {
        const MANTISSA: u64 = (1 << 52) - 1;
        const ONE: u64 = 1023 << 52;
        let product = &mut self.product;
        let base = (c * LANES) as f64;
        for i in 0..LANES {
            let k = base + i as f64;
            self.s0[i] += m[i];
            self.s1[i] += m[i] * k;
            self.s2[i] += m[i] * k * k;
            let p = p[i].max(FLATNESS_AMIN);
            self.powers[i] += p;
            product[i] *= p;
        }
        if c % 16 == 15 {
            for (p, e) in product.iter_mut().zip(&mut self.exponent) {
                let bits = p.to_bits();
                *e += ((bits >> 52) & 0x7ff) as i64 - 1023;
                *p = f64::from_bits((bits & MANTISSA) | ONE);
            }
        }
    }

    /// One bin `k` outside the chunks (added to lane `k % L`).
    #[inline(always)]
    fn add_one(&mut self, k: usize, m: f64, p: f64) {
        let i = k % LANES;
        let kf = k as f64;
        self.s0[i] += m;
        self.s1[i] += m * kf;
        self.s2[i] += m * kf * kf;
        let p = p.max(FLATNESS_AMIN);
        self.powers[i] += p;
        self.product[i] *= p;
    }

    /// The features of the frame whose every bin was added, `mag` being its magnitudes.
    #[inline(always)]
    fn features(&self, mag: &[f64], df: f64) -> FrameFeatures {
        let sum = |a: &[f64; LANES]| a.iter().sum::<f64>();
        let logs = self.product.iter().map(|p| p.ln()).sum::<f64>()
            + self.exponent.iter().sum::<i64>() as f64 * std::f64::consts::LN_2;
        let bins = mag.len().max(1) as f64;
        let flatness = (logs / bins).exp() / (sum(&self.powers) / bins);
        let s0 = sum(&self.s0);
        if s0 <= 0.0 {
            return FrameFeatures {
                centroid_hz: 0.0,
                bandwidth_hz: 0.0,
                rolloff_hz: 0.0,
                flatness,
            };
        }
        let centroid = sum(&self.s1) / s0;
        // Σ S (k − c)² / Σ S = Σ S k² / Σ S − c² (f64 moments: no cancellation at 1025 bins).
        let bandwidth = (sum(&self.s2) / s0 - centroid * centroid).max(0.0).sqrt() * df;
        FrameFeatures {
            centroid_hz: centroid * df,
            bandwidth_hz: bandwidth,
            rolloff_hz: rolloff_bin(mag, ROLL_PERCENT * s0) as f64 * df,
            flatness,
        }
    }
}

avx2_where_present! {
    /// Adds to `power` (bins 0 ..= n/2) the power of the two real frames packed in `x` (or of
    /// the one in its real part, when not `two`), from its FFT: with `Y[k] = conj X[n − k]`,
    /// `A = (X + Y)/2` and `B = (X − Y)/2i`, and `|A|² + |B|² = (|X|² + |Y|²)/2`. On AVX2 where
    /// the CPU has it.
    fn accumulate_power(x: &[Complex<f32>], power: &mut [f64], two: bool) => accumulate_power_body
}

#[inline(always)]
fn accumulate_power_body(x: &[Complex<f32>], power: &mut [f64], two: bool) {
    let n = x.len();
    assert!(n >= 2 && power.len() == n / 2 + 1);
    let (first, rest) = power.split_first_mut().expect("bins");
    // Bin 0 pairs X[0] with itself; bins 1 ..= n/2 pair X[k] with X[n − k].
    let mirrored = x[n / 2..].iter().rev();
    if two {
        *first += f64::from(x[0].norm_sqr());
        for ((p, a), b) in rest.iter_mut().zip(&x[1..]).zip(mirrored) {
            *p += 0.5 * f64::from(a.norm_sqr() + b.norm_sqr());
        }
    } else {
        *first += f64::from((x[0] + x[0].conj()).norm_sqr() * 0.25);
        for ((p, &a), &b) in rest.iter_mut().zip(&x[1..]).zip(mirrored) {
            *p += f64::from((a + b.conj()).norm_sqr() * 0.25);
        }
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
    /// A frame put together from pending samples and new ones.
    assembly: Vec<f32>,
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

#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
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
    /// The same in the third-octave bands of [`THIRD_OCTAVES`] that lie under the Nyquist
    /// frequency: each band's power from the bins it covers (a bin across an edge split in
    /// proportion), so that noise reads the same at every FFT size and sample rate.
    pub third_octave: Vec<LtasPoint>,
}

/// The centres of the third-octave bands (base-10 nominal series, 25 Hz to 16 kHz, Hz); a
/// band spans a sixth of an octave either side of its exact centre `1000 · 2^(k/3)`.
pub const THIRD_OCTAVES: [f64; 29] = [
    25.0, 31.5, 40.0, 50.0, 63.0, 80.0, 100.0, 125.0, 160.0, 200.0, 250.0, 315.0, 400.0, 500.0,
    630.0, 800.0, 1000.0, 1250.0, 1600.0, 2000.0, 2500.0, 3150.0, 4000.0, 5000.0, 6300.0, 8000.0,
    10000.0, 12500.0, 16000.0,
];

/// The edges of third-octave band `k` of [`THIRD_OCTAVES`], Hz.
pub fn third_octave_edges(k: usize) -> (f64, f64) {
    let exact = 1000.0 * 2f64.powf((k as f64 - 16.0) / 3.0);
    (exact * 2f64.powf(-1.0 / 6.0), exact * 2f64.powf(1.0 / 6.0))
}

impl Spectrum {
    /// Sets the spectral features (a [`FeatureMeter`]'s, measured beside the
    /// [`SpectrumMeter`] that made this spectrum; `None` for silence).
    pub fn set_features(&mut self, f: Option<FrameFeatures>) {
        self.centroid_hz = f.map(|f| f.centroid_hz);
        self.bandwidth_hz = f.map(|f| f.bandwidth_hz);
        self.rolloff_hz = f.map(|f| f.rolloff_hz);
        self.flatness = f.map(|f| f.flatness);
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Band {
    #[serde(deserialize_with = "crate::interned::name")]
    pub name: crate::interned::Name,
    pub low_hz: f64,
    pub high_hz: f64,
    /// Share of the 20 Hz–20 kHz power, percent; `None` for silence.
    pub share_percent: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct LtasPoint {
    pub hz: f64,
    pub db: f64,
}

/// FFT size for `rate`.
/// One band of the long-term spectrum's 1/12-octave grid: its edges, its centre, and the
/// frequencies whose FFT bins its level sums, `[from, to)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct LtasBand {
    pub lo: f64,
    pub hi: f64,
    pub centre: f64,
    pub from: f64,
    pub to: f64,
}

/// The long-term spectrum's grid at `rate` for bins `df` Hz apart: 1/12-octave bands from
/// 20 Hz, the last cut at the Nyquist frequency. A band narrower than the window's main lobe
/// (4 bins) integrates over the lobe around its centre instead, so a low tone reads its level
/// and no band is empty. The meter and the matching EQ both read it from here.
pub(crate) fn ltas_bands(rate: u32, df: f64) -> Vec<LtasBand> {
    let nyq = f64::from(rate) / 2.0;
    let mut out = Vec::new();
    let mut lo = 20.0f64;
    while lo < nyq {
        let hi = (lo * 2f64.powf(1.0 / 12.0)).min(nyq);
        let centre = (lo * hi).sqrt();
        let (from, to) = if hi - lo < 4.0 * df {
            (centre - 2.0 * df, centre + 2.0 * df)
        } else {
            (lo, hi)
        };
        out.push(LtasBand {
            lo,
            hi,
            centre,
            from,
            to,
        });
        lo = hi;
    }
    out
}

pub fn fft_size(rate: u32) -> usize {
    ((rate / 12) as usize).next_power_of_two().max(256)
}

impl SpectrumMeter {
    /// `channels`: indices of the channels of the long-term spectrum (the LFE left out by the
    /// caller). It measures no spectral features: a [`FeatureMeter`] does, on the mono mix
    /// (see [`Spectrum::set_features`]).
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
            assembly: Vec::with_capacity(n),
            channels,
            half: false,
            buf: vec![Complex::default(); n],
            scratch,
            power: vec![0.0; n / 2 + 1],
            count: 0,
        }
    }

    pub fn feed(&mut self, planes: &[&[f32]]) {
        let (n, hop) = (self.n, self.n / 2);
        for k in 0..self.channels.len() {
            let src = planes[self.channels[k]];
            // The next frame begins `pending.len()` samples before `src`.
            let mut start = -(self.pending[k].len() as isize);
            let end = src.len() as isize;
            // Frames that begin in the pending samples, completed from `src`.
            while start < 0 && start + n as isize <= end {
                let mut frame = std::mem::take(&mut self.assembly);
                frame.clear();
                let held = &self.pending[k];
                frame.extend_from_slice(&held[(held.len() as isize + start) as usize..]);
                frame.extend_from_slice(&src[..(start + n as isize) as usize]);
                self.push_frame(&frame);
                self.assembly = frame;
                start += hop as isize;
            }
            // Frames that lie wholly in `src`: windowed from it directly.
            while start >= 0 && start + n as isize <= end {
                let at = start as usize;
                self.push_frame(&src[at..at + n]);
                start += hop as isize;
            }
            // What the next frame needs waits in `pending`.
            let held = &mut self.pending[k];
            if start < 0 {
                held.drain(..(held.len() as isize + start) as usize);
                held.extend_from_slice(src);
            } else {
                held.clear();
                held.extend_from_slice(&src[start as usize..]);
            }
        }
    }

    /// Window one frame of samples (zero-padded to the frame size) into `buf`, and transform
    /// once two frames are there.
    fn push_frame(&mut self, x: &[f32]) {
        self.count += 1;
        let imag = self.half;
        let (head, tail) = self.buf.split_at_mut(x.len().min(self.n));
        if imag {
            for ((c, &v), &w) in head.iter_mut().zip(x).zip(&self.window) {
                c.im = v * w;
            }
            tail.iter_mut().for_each(|c| c.im = 0.0);
        } else {
            for ((c, &v), &w) in head.iter_mut().zip(x).zip(&self.window) {
                *c = Complex::new(v * w, 0.0);
            }
            tail.fill(Complex::default());
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
        accumulate_power(&self.buf, &mut self.power, two);
    }

    pub fn finish(mut self) -> Spectrum {
        // Partial frames (the tail of each channel): zero-padded, if they hold more than a hop
        // of new samples or nothing else was analysed.
        let hop = self.n / 2;
        let analysed_any = self.count > 0;
        for k in 0..self.pending.len() {
            let len = self.pending[k].len();
            if len > hop || (!analysed_any && len > 0) {
                let frame = std::mem::take(&mut self.pending[k]);
                self.push_frame(&frame);
            }
        }
        if self.half {
            self.transform(false);
        }
        self.long_term()
    }

    fn long_term(&self) -> Spectrum {
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
        let level = |p: f64| {
            let amp = 2.0 * (p / count / (n as f64 * sum_w2)).sqrt();
            if amp > 0.0 {
                (20.0 * amp.log10()).max(-200.0)
            } else {
                -200.0
            }
        };
        let third_octave = (0..THIRD_OCTAVES.len())
            .map(|k| (THIRD_OCTAVES[k], third_octave_edges(k)))
            .filter(|&(_, (_, hi))| hi <= nyq)
            .map(|(hz, (lo, hi))| LtasPoint {
                hz,
                db: level(in_band(lo, hi)),
            })
            .collect();
        let ltas = ltas_bands(self.rate, df)
            .into_iter()
            .map(|band| {
                let p: f64 = bins()
                    .filter(|&(f, _)| f >= band.from && f < band.to)
                    .map(|(_, p)| p)
                    .sum();
                LtasPoint {
                    hz: band.centre,
                    db: level(p),
                }
            })
            .collect();
        Spectrum {
            fft_size: n,
            centroid_hz: None,
            bandwidth_hz: None,
            rolloff_hz: None,
            flatness: None,
            bands,
            ltas,
            third_octave,
        }
    }
}

pub(super) struct SpectrumA(pub(super) SpectrumMeter, pub(super) usize);

impl Analyzer for SpectrumA {
    fn feed(&mut self, planes: &[&[f32]]) {
        self.0.feed(planes);
    }
    fn finish(self: Box<Self>, r: &mut AnalysisReport) {
        r.spectrum = Some(self.0.finish());
    }
    fn cost(&self) -> f64 {
        // The long-term spectrum per channel.
        11.5 * self.1 as f64
    }
    fn name(&self) -> &'static str {
        "spectrum"
    }
}

/// The spectral features of the mono mix (see [`FeatureMeter`]), added to the
/// spectrum section, which [`SpectrumA`] wrote before. Apart from tempo and key (which mix
/// their own): each is a large share of the analysis, and two parts balance the threads better
/// than one.
pub(super) struct FeaturesA(pub(super) FeatureMeter, pub(super) Vec<f32>);

impl Analyzer for FeaturesA {
    fn feed(&mut self, planes: &[&[f32]]) {
        mono_into(planes, &mut self.1);
        self.0.feed(&self.1);
    }
    fn finish(self: Box<Self>, r: &mut AnalysisReport) {
        if let Some(s) = r.spectrum.as_mut() {
            s.set_features(self.0.finish());
        }
    }
    fn cost(&self) -> f64 {
        // A 2048-point transform every 512 frames.
        36.0
    }
    fn name(&self) -> &'static str {
        "spectral_features"
    }
}
