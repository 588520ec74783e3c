//! True peak per ITU-R BS.1770-4 annex 2: the peak of the signal reconstructed between samples,
//! found by oversampling with a polyphase interpolating FIR: 4× below 192 kHz, 2× below
//! 384 kHz, none from 384 kHz up. That is at least the 192 kHz BS.1770 asks for; 88.2/96 kHz
//! files get 4× rather than 2× because their ultrasonic content would otherwise under-read by
//! over 0.5 dB, and 192 kHz files get 2× where libebur128 stops oversampling (and under-reads
//! by up to 0.5 dB at 20 kHz).
//!
//! The filter is our own windowed sinc (Kaiser, β = 6), 24 taps per phase, odd length, so phase
//! 0 is the input sample itself (the sample peak is part of the true peak) and the other phases
//! lie exactly 1/4, 2/4 and 3/4 of a sample later. Each phase is normalised to unity gain at
//! DC. Its gain error against the ideal fractional delay is under 0.02 dB up to 0.42 × the
//! sample rate (20.2 kHz at 48 kHz), tested in this module. The example filter printed in
//! BS.1770 has 12 taps per phase and under-reads by tenths of a dB above 0.38 × the rate;
//! twice the taps cost little once vectorised. The EBU Tech 3341 cases 15–23 are in
//! `core/tests/loudness_ebu.rs`.
//!
//! The phases are symmetric (the odd-length prototype is), which halves the multiply-adds:
//! phases 1 and 3 of 4× are each other's reverse and run as their sum and difference, phase 2
//! is its own reverse (see `Folded`). The filter runs in `f32` on blocks of outputs, each
//! input vector feeding all phases: on x86-64 with AVX2 and FMA (detected at run time) in
//! intrinsics, elsewhere in portable code that the compiler vectorises. A chunk of 256
//! samples whose loudest sample (with the filter's history), times the filter's largest
//! possible gain, cannot beat the peak found so far is skipped: an exact bound, so the result
//! is the same, and most of a typical programme is skipped once its loudest passage has been
//! seen.

use super::{AnalysisReport, Analyzer, db};
const TAPS: usize = 24;

/// One interpolating phase: output at `m - 6 + frac` from inputs `m - 11 ..= m`.
type Phase = [f32; TAPS];

/// `value` weighted by the Kaiser window of shape `beta` at `r` (−1 to 1 across the window,
/// 0 at its centre): a windowed-sinc filter's tap.
pub(crate) fn kaiser_windowed(value: f64, r: f64, beta: f64) -> f64 {
    value * bessel_i0(beta * (1.0 - r * r).max(0.0).sqrt()) / bessel_i0(beta)
}

fn bessel_i0(x: f64) -> f64 {
    let mut sum = 1.0;
    let mut term = 1.0;
    let q = x * x / 4.0;
    for k in 1..50 {
        term *= q / (k * k) as f64;
        sum += term;
        if term < 1e-17 * sum {
            break;
        }
    }
    sum
}

/// The non-zero phases of an `l`× interpolator.
fn design(l: usize) -> Vec<Phase> {
    let n = l * TAPS + 1;
    let centre = (n - 1) as f64 / 2.0;
    let beta = 6.0;
    let h: Vec<f64> = (0..n)
        .map(|i| {
            let t = (i as f64 - centre) / l as f64;
            let sinc = if t == 0.0 {
                1.0
            } else {
                (std::f64::consts::PI * t).sin() / (std::f64::consts::PI * t)
            };
            let r = (i as f64 - centre) / centre;
            kaiser_windowed(sinc, r, beta)
        })
        .collect();
    let phases: Vec<[f64; TAPS]> = (1..l)
        .map(|r| {
            let mut p = [0f64; TAPS];
            for (j, v) in p.iter_mut().enumerate() {
                *v = h[r + j * l];
            }
            let sum: f64 = p.iter().sum();
            p.map(|v| v / sum)
        })
        .collect();
    // The prototype is symmetric, so phase l − r is phase r reversed and phase l/2 is its own
    // reverse; made exact here (rounding could break it by an ulp), which the kernels rely on
    // (see [`Folded`]).
    (1..l)
        .map(|r| {
            let p = &phases[r - 1];
            let q = &phases[l - r - 1];
            std::array::from_fn(|j| {
                let v = if 2 * r == l {
                    0.5 * (p[j] + p[TAPS - 1 - j])
                } else if 2 * r < l {
                    p[j]
                } else {
                    q[TAPS - 1 - j]
                };
                v as f32
            })
        })
        .collect()
}

/// Oversampling factor for `rate`.
pub fn oversampling(rate: u32) -> usize {
    if rate < 192_000 {
        4
    } else if rate < 384_000 {
        2
    } else {
        1
    }
}

/// The true peak (dBTP) over all channels of a planar signal, as a live meter reads it after
/// the last sample ([`TruePeakMeter::true_peak`]: no reconstruction past the end); −∞ for
/// silence. One meter per channel, in turn.
pub fn live_true_peak_dbtp(rate: u32, planes: &[Vec<f32>]) -> f64 {
    planes
        .iter()
        .map(|c| {
            let mut t = TruePeakMeter::new(rate);
            t.feed(c);
            20.0 * t.true_peak().log10()
        })
        .fold(f64::NEG_INFINITY, f64::max)
}

/// True-peak meter of one channel. Channels are independent, so callers may run them on
/// different threads.
#[derive(Debug, Clone)]
pub struct TruePeakMeter {
    phases: Vec<Phase>,
    folded: Folded,
    /// The largest sum of absolute coefficients of any phase: no interpolated value can
    /// exceed the largest input in its window times this.
    gain_bound: f32,
    /// The last `TAPS - 1` inputs, then room for a block.
    buf: Vec<f32>,
    peak: f32,
    sample_peak: f32,
}

/// Inputs processed per inner call; keeps `buf` small and in cache.
const CHUNK: usize = 256;

impl TruePeakMeter {
    pub fn new(rate: u32) -> Self {
        let l = oversampling(rate);
        let phases = if l > 1 { design(l) } else { Vec::new() };
        let gain_bound = phases
            .iter()
            .map(|p| p.iter().map(|c| c.abs()).sum::<f32>())
            .fold(1.0f32, f32::max)
            * 1.001;
        // Room for the history and one chunk, so that feeding never allocates.
        let mut buf = Vec::with_capacity(TAPS - 1 + CHUNK);
        buf.resize(TAPS - 1, 0.0);
        TruePeakMeter {
            folded: Folded::new(&phases),
            phases,
            gain_bound,
            buf,
            peak: 0.0,
            sample_peak: 0.0,
        }
    }

    /// The true peak (linear) of everything fed so far, without the reconstruction after the
    /// last sample that [`Self::finish`] adds: what a live meter shows. Never allocates.
    pub fn true_peak(&self) -> f64 {
        f64::from(self.peak.max(self.sample_peak))
    }

    /// Back to the state of a new meter (history and peaks cleared; keeps the memory).
    pub fn reset(&mut self) {
        self.buf.clear();
        self.buf.resize(TAPS - 1, 0.0);
        self.peak = 0.0;
        self.sample_peak = 0.0;
    }

    pub fn feed(&mut self, x: &[f32]) {
        for chunk in x.chunks(CHUNK) {
            let chunk_max = super::abs_max(chunk);
            self.sample_peak = self.sample_peak.max(chunk_max);
            if self.phases.is_empty() {
                continue;
            }
            let history_max = super::abs_max(&self.buf[..TAPS - 1]);
            self.buf.truncate(TAPS - 1);
            self.buf.extend_from_slice(chunk);
            // Exact shortcut: when even the loudest input of this window, times the largest
            // possible filter gain, cannot beat the peak so far, the chunk cannot raise it.
            if chunk_max.max(history_max) * self.gain_bound > self.peak {
                let p = peak_of(&self.folded, &self.buf);
                self.peak = self.peak.max(p);
            }
            let keep = self.buf.len() - (TAPS - 1);
            self.buf.copy_within(keep.., 0);
        }
    }

    /// The true and sample peaks (linear) since the last call (or the start), both then
    /// cleared; the filter's history stays, so the next stretch continues the signal.
    pub fn take_peaks(&mut self) -> (f64, f64) {
        let taken = (self.true_peak(), f64::from(self.sample_peak));
        self.peak = 0.0;
        self.sample_peak = 0.0;
        taken
    }

    /// Largest absolute sample value so far (linear).
    pub fn sample_peak(&self) -> f64 {
        f64::from(self.sample_peak)
    }

    /// The true peak (linear), including the reconstruction after the last sample (the signal
    /// is taken to be silent after the end).
    pub fn finish(mut self) -> f64 {
        if !self.phases.is_empty() {
            let tail = [0f32; TAPS];
            self.feed(&tail[..TAPS / 2]);
        }
        f64::from(self.peak.max(self.sample_peak))
    }
}

/// Receives the interpolated magnitudes of a kernel run, folded in by maximum: `value(i, v)`
/// says the output at position `i` is at least `v` (several calls may come for one position).
trait Sink {
    /// Only the largest value counts (not where it is): the kernels may fold blocks together
    /// before handing them over.
    const MAX_ONLY: bool = false;
    fn block<const N: usize>(&mut self, at: usize, v: &[f32; N]);
    fn value(&mut self, at: usize, v: f32);
}

/// Outputs computed together by the kernel.
const W: usize = 16;

/// The largest magnitude of all outputs.
struct MaxSink(f32);

impl Sink for MaxSink {
    const MAX_ONLY: bool = true;
    #[inline(always)]
    fn block<const N: usize>(&mut self, _: usize, v: &[f32; N]) {
        self.0 = v.iter().fold(self.0, |a, &b| a.max(b));
    }
    #[inline(always)]
    fn value(&mut self, _: usize, v: f32) {
        self.0 = self.0.max(v);
    }
}

/// Each position's largest magnitude, in a zeroed slice.
struct EnvelopeSink<'a>(&'a mut [f32]);

impl Sink for EnvelopeSink<'_> {
    #[inline(always)]
    fn block<const N: usize>(&mut self, at: usize, v: &[f32; N]) {
        for (o, &x) in self.0[at..at + N].iter_mut().zip(v) {
            *o = o.max(x);
        }
    }
    #[inline(always)]
    fn value(&mut self, at: usize, v: f32) {
        self.0[at] = self.0[at].max(v);
    }
}

/// Peak of all interpolated phases over `buf` (outputs for inputs `TAPS - 1 ..`).
fn peak_of(folded: &Folded, buf: &[f32]) -> f32 {
    let mut sink = MaxSink(0.0);
    interpolate(folded, buf, &mut sink);
    sink.0
}

/// For every output position, the largest magnitude over all phases.
fn envelope_of(folded: &Folded, buf: &[f32], out: &mut [f32]) {
    out.iter_mut().for_each(|o| *o = 0.0);
    interpolate(folded, buf, &mut EnvelopeSink(out));
}

/// Half the taps of a phase.
const HALF: usize = TAPS / 2;

/// The phases folded along their symmetry. The prototype filter is symmetric, so phase `l − r`
/// is phase `r` reversed, and phase `l/2` is its own reverse. Over one window of inputs
/// `x[0..TAPS]`, with `s_k = x[k] + x[TAPS−1−k]` and `d_k = x[TAPS−1−k] − x[k]` (k < HALF):
/// `y_r + y_(l−r) = Σ (c_r[k] + c_r[TAPS−1−k])·s_k`, `y_r − y_(l−r) = Σ (c_r[k] −
/// c_r[TAPS−1−k])·d_k`, `y_(l/2) = Σ c_(l/2)[k]·s_k`, and the larger magnitude of the pair is
/// `(|y_r + y_(l−r)| + |y_r − y_(l−r)|) / 2`. Half the multiply-adds of the plain phases.
#[derive(Debug, Clone, Copy)]
struct Folded {
    /// Phases 1 and 3 of 4×: sum and difference coefficients (absent at 2×).
    pair: Option<([f32; HALF], [f32; HALF])>,
    /// Phase `l/2`: its first half.
    mid: [f32; HALF],
}

impl Folded {
    /// Whether there is a pair, and its sum and difference coefficients (zeros without one).
    #[inline(always)]
    fn pair_parts(&self) -> (bool, [f32; HALF], [f32; HALF]) {
        match self.pair {
            Some((sum, diff)) => (true, sum, diff),
            None => (false, [0.0; HALF], [0.0; HALF]),
        }
    }

    /// `phases` from [`design`] at 2× or 4× (symmetric as it makes them).
    fn new(phases: &[Phase]) -> Folded {
        let half = |p: &Phase| -> [f32; HALF] { std::array::from_fn(|k| p[k]) };
        match phases {
            [mid] => Folded {
                pair: None,
                mid: half(mid),
            },
            [first, mid, _] => Folded {
                pair: Some((
                    std::array::from_fn(|k| first[k] + first[TAPS - 1 - k]),
                    std::array::from_fn(|k| first[k] - first[TAPS - 1 - k]),
                )),
                mid: half(mid),
            },
            // No oversampling (from 384 kHz up): nothing to run.
            [] => Folded {
                pair: None,
                mid: [0.0; HALF],
            },
            _ => unreachable!("oversampling is 1x, 2x or 4x"),
        }
    }
}

/// Run every phase over `buf` into `sink`, on AVX2/FMA where the CPU has them.
fn interpolate<S: Sink>(folded: &Folded, buf: &[f32], sink: &mut S) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU has the features the function is compiled for.
            return unsafe { interpolate_avx2(folded, buf, sink) };
        }
    }
    let at = kernel::<false, S>(folded, buf, sink);
    tail::<false, S>(folded, buf, at, sink);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn interpolate_avx2<S: Sink>(folded: &Folded, buf: &[f32], sink: &mut S) {
    // Blocks of 16 outputs at 4× (six accumulators; 24 outputs ran out of registers and
    // spilled them, a quarter slower), 48 at 2×; the rest in blocks of 8, then one at a time.
    let at = match folded.pair {
        Some(_) => {
            let at = kernel_avx2::<true, 2, S>(folded, buf, 0, sink);
            kernel_avx2::<true, 1, S>(folded, buf, at, sink)
        }
        None => {
            let at = kernel_avx2::<false, 6, S>(folded, buf, 0, sink);
            kernel_avx2::<false, 1, S>(folded, buf, at, sink)
        }
    };
    tail::<true, S>(folded, buf, at, sink);
}

/// [`kernel`] written with AVX2/FMA intrinsics, `8·V` outputs at a time from output `from` on,
/// as far as whole blocks go; returns where it stopped. `PAIR`: whether `folded` has the pair
/// (4×). The compiler left the portable kernel scalar (every accumulator spilled to the stack),
/// 8–10× slower on material whose chunks cannot be skipped. The same operations in the same
/// order as the portable kernel, so the same results.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn kernel_avx2<const PAIR: bool, const V: usize, S: Sink>(
    folded: &Folded,
    buf: &[f32],
    from: usize,
    sink: &mut S,
) -> usize {
    use std::arch::x86_64::{
        _mm256_add_ps, _mm256_andnot_ps, _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_max_ps,
        _mm256_mul_ps, _mm256_set1_ps, _mm256_setzero_ps, _mm256_storeu_ps, _mm256_sub_ps,
    };
    let (_, sum, diff) = folded.pair_parts();
    let outputs = buf.len() + 1 - TAPS;
    let sign = _mm256_set1_ps(-0.0);
    let half = _mm256_set1_ps(0.5);
    let mut at = from;
    // The running largest value, when the sink only wants that.
    let mut run = _mm256_setzero_ps();
    while at + 8 * V <= outputs {
        let mut u = [_mm256_setzero_ps(); V];
        let mut v = [_mm256_setzero_ps(); V];
        let mut w = [_mm256_setzero_ps(); V];
        for k in 0..HALF {
            let cm = _mm256_set1_ps(folded.mid[k]);
            let (cs, cd) = (_mm256_set1_ps(sum[k]), _mm256_set1_ps(diff[k]));
            let lo = &buf[at + k..at + k + 8 * V];
            let hi = &buf[at + TAPS - 1 - k..at + TAPS - 1 - k + 8 * V];
            for b in 0..V {
                // SAFETY: `lo` and `hi` hold 8·V floats: V loads of 8 each.
                let (xl, xh) = unsafe {
                    (
                        _mm256_loadu_ps(lo.as_ptr().add(8 * b)),
                        _mm256_loadu_ps(hi.as_ptr().add(8 * b)),
                    )
                };
                let s = _mm256_add_ps(xl, xh);
                w[b] = _mm256_fmadd_ps(cm, s, w[b]);
                if PAIR {
                    u[b] = _mm256_fmadd_ps(cs, s, u[b]);
                    v[b] = _mm256_fmadd_ps(cd, _mm256_sub_ps(xh, xl), v[b]);
                }
            }
        }
        for b in 0..V {
            let mut m = _mm256_andnot_ps(sign, w[b]);
            if PAIR {
                let pair = _mm256_mul_ps(
                    _mm256_add_ps(_mm256_andnot_ps(sign, u[b]), _mm256_andnot_ps(sign, v[b])),
                    half,
                );
                m = _mm256_max_ps(m, pair);
            }
            if S::MAX_ONLY {
                // NaN stays out of `run` (`max` returns its second operand when either is NaN),
                // as the sink's own fold would keep it out.
                run = _mm256_max_ps(m, run);
            } else {
                let mut out = [0f32; 8];
                // SAFETY: `out` holds 8 floats.
                unsafe { _mm256_storeu_ps(out.as_mut_ptr(), m) };
                sink.block(at + 8 * b, &out);
            }
        }
        at += 8 * V;
    }
    if S::MAX_ONLY && at > from {
        let mut out = [0f32; 8];
        // SAFETY: `out` holds 8 floats.
        unsafe { _mm256_storeu_ps(out.as_mut_ptr(), run) };
        sink.block(from, &out);
    }
    at
}

/// `c * x + acc`, fused where the target has FMA (without it `mul_add` is a slow library call).
#[inline(always)]
fn madd<const FMA: bool>(c: f32, x: f32, acc: f32) -> f32 {
    if FMA { c.mul_add(x, acc) } else { c * x + acc }
}

/// The largest interpolated magnitude at one output from its three sums (see [`Folded`]).
#[inline(always)]
fn largest(pair: bool, u: f32, v: f32, w: f32) -> f32 {
    if pair {
        w.abs().max((u.abs() + v.abs()) * 0.5)
    } else {
        w.abs()
    }
}

/// The portable kernel: `W` outputs at a time, as far as whole blocks go; returns where it
/// stopped. Each output position's largest magnitude over the phases goes to `sink`.
#[inline(always)]
#[allow(clippy::needless_range_loop)] // i indexes the outputs of a block in three arrays
fn kernel<const FMA: bool, S: Sink>(folded: &Folded, buf: &[f32], sink: &mut S) -> usize {
    let (pair, sum, diff) = folded.pair_parts();
    let outputs = buf.len() + 1 - TAPS;
    let mut at = 0;
    while at + W <= outputs {
        let (mut u, mut v, mut w) = ([0f32; W], [0f32; W], [0f32; W]);
        for k in 0..HALF {
            let lo: &[f32; W] = buf[at + k..at + k + W].try_into().expect("W inputs");
            let hi: &[f32; W] = buf[at + TAPS - 1 - k..at + TAPS - 1 - k + W]
                .try_into()
                .expect("W inputs");
            for i in 0..W {
                let s = lo[i] + hi[i];
                w[i] = madd::<FMA>(folded.mid[k], s, w[i]);
                u[i] = madd::<FMA>(sum[k], s, u[i]);
                v[i] = madd::<FMA>(diff[k], hi[i] - lo[i], v[i]);
            }
        }
        let m: [f32; W] = std::array::from_fn(|i| largest(pair, u[i], v[i], w[i]));
        sink.block(at, &m);
        at += W;
    }
    at
}

/// The outputs from `from` on, one at a time (fewer than a kernel's block).
#[inline(always)]
fn tail<const FMA: bool, S: Sink>(folded: &Folded, buf: &[f32], from: usize, sink: &mut S) {
    let (pair, sum, diff) = folded.pair_parts();
    let outputs = buf.len() + 1 - TAPS;
    for i in from..outputs {
        let (mut u, mut v, mut w) = (0f32, 0f32, 0f32);
        for k in 0..HALF {
            let (lo, hi) = (buf[i + k], buf[i + TAPS - 1 - k]);
            let s = lo + hi;
            w = madd::<FMA>(folded.mid[k], s, w);
            u = madd::<FMA>(sum[k], s, u);
            v = madd::<FMA>(diff[k], hi - lo, v);
        }
        sink.value(i, largest(pair, u, v, w));
    }
}

/// The true-peak envelope of one channel, sample by sample, for a true-peak limiter: for each
/// input sample, the largest of its own magnitude and the interpolated values (at the meter's
/// oversampling) on either side of it. It runs [`DELAY`](PeakEnvelope::DELAY) samples behind
/// its input.
#[derive(Debug, Clone)]
pub struct PeakEnvelope {
    phases: Vec<Phase>,
    folded: Folded,
    gain_bound: f32,
    buf: Vec<f32>,
    gaps: Vec<f32>,
    /// The interpolated peak between the last emitted sample and the one before it.
    prev_gap: f32,
}

impl PeakEnvelope {
    /// Samples between an input and its envelope value.
    pub const DELAY: usize = TAPS / 2;

    pub fn new(rate: u32) -> Self {
        let m = TruePeakMeter::new(rate);
        PeakEnvelope {
            folded: m.folded,
            phases: m.phases,
            gain_bound: m.gain_bound,
            buf: vec![0.0; TAPS - 1],
            gaps: Vec::new(),
            prev_gap: 0.0,
        }
    }

    /// Feed `x`; appends one envelope value per input to `out`, each for the input
    /// [`Self::DELAY`] samples earlier (zeros before the start). Values under `floor` may be
    /// reported as any value under `floor` (the exact peak is skipped where a bound proves it
    /// cannot reach `floor`).
    pub fn feed(&mut self, x: &[f32], floor: f32, out: &mut Vec<f32>) {
        for chunk in x.chunks(CHUNK) {
            self.buf.truncate(TAPS - 1);
            self.buf.extend_from_slice(chunk);
            let n = chunk.len();
            self.gaps.clear();
            let max = super::abs_max(&self.buf);
            if self.phases.is_empty() || max * self.gain_bound < floor {
                // Output i lies between buf[i + 11] and buf[i + 12].
                self.gaps.extend((0..n).map(|i| {
                    self.buf[i + TAPS / 2 - 1]
                        .abs()
                        .max(self.buf[i + TAPS / 2].abs())
                }));
            } else {
                self.gaps.resize(n, 0.0);
                envelope_of(&self.folded, &self.buf, &mut self.gaps);
            }
            // The sample at buf[i + 11] lies between gap i - 1 and gap i.
            for i in 0..n {
                let s = self.buf[i + TAPS / 2 - 1].abs();
                out.push(s.max(self.prev_gap).max(self.gaps[i]));
                self.prev_gap = self.gaps[i];
            }
            let keep = self.buf.len() - (TAPS - 1);
            self.buf.copy_within(keep.., 0);
        }
    }
}

pub(super) struct TruePeakA {
    pub(super) channel: usize,
    pub(super) meter: TruePeakMeter,
    /// With a loudness history: the true peak of each stretch of this many frames.
    pub(super) step: Option<usize>,
    /// Frames of the current stretch so far.
    pub(super) filled: usize,
    /// Each whole stretch's true peak (linear).
    pub(super) steps: Vec<f64>,
    /// The true and sample peaks of the stretches taken so far.
    pub(super) taken: (f64, f64),
}

impl TruePeakA {
    pub(super) fn new(channel: usize, rate: u32, step: Option<usize>) -> TruePeakA {
        TruePeakA {
            channel,
            meter: TruePeakMeter::new(rate),
            step: step.filter(|&s| s > 0),
            filled: 0,
            steps: Vec::new(),
            taken: (0.0, 0.0),
        }
    }
}

impl Analyzer for TruePeakA {
    fn feed(&mut self, planes: &[&[f32]]) {
        let x = planes[self.channel];
        let Some(step) = self.step else {
            self.meter.feed(x);
            return;
        };
        let mut at = 0;
        while at < x.len() {
            let n = (step - self.filled).min(x.len() - at);
            self.meter.feed(&x[at..at + n]);
            at += n;
            self.filled += n;
            if self.filled == step {
                let (tp, sp) = self.meter.take_peaks();
                self.steps.push(tp);
                self.taken = (self.taken.0.max(tp), self.taken.1.max(sp));
                self.filled = 0;
            }
        }
    }
    fn finish(self: Box<Self>, r: &mut AnalysisReport) {
        let sp = self.meter.sample_peak().max(self.taken.1);
        let tp = self.meter.finish().max(self.taken.0);
        if let Some(l) = r.loudness.as_mut() {
            if self.step.is_some() {
                let h = l
                    .true_peak_history_dbtp
                    .get_or_insert_with(|| vec![None; self.steps.len()]);
                for (slot, &p) in h.iter_mut().zip(&self.steps) {
                    *slot = match (*slot, db(p)) {
                        (Some(a), Some(b)) => Some(a.max(b)),
                        (a, b) => a.or(b),
                    };
                }
            }
            l.true_peak_dbtp_per_channel[self.channel] = db(tp);
            let best = |a: Option<f64>, b: Option<f64>| match (a, b) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
            l.true_peak_dbtp = best(l.true_peak_dbtp, db(tp));
            l.sample_peak_dbfs = best(l.sample_peak_dbfs, db(sp));
            l.plr_lu = l
                .true_peak_dbtp
                .zip(l.summary.integrated_lufs)
                .map(|(t, i)| t - i);
        }
    }
    fn cost(&self) -> f64 {
        // 3 on programme material, where most chunks are skipped by the bound, 13 on a loud
        // master, where none are.
        8.0
    }
    fn name(&self) -> &'static str {
        "true_peak"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Peaks taken stretch by stretch (the QC history) add up to the whole file's: the filter
    /// keeps its history across a take, so no peak between stretches is lost or made up.
    #[test]
    fn peaks_taken_in_stretches_are_the_whole_files() {
        let rate = 48_000;
        let x = crate::signal::programme(rate, 1, rate as usize * 3, 5).remove(0);
        let mut whole = TruePeakMeter::new(rate);
        whole.feed(&x);
        let mut parts = TruePeakMeter::new(rate);
        let mut best = (0.0f64, 0.0f64);
        for piece in x.chunks(4800) {
            parts.feed(piece);
            let (tp, sp) = parts.take_peaks();
            best = (best.0.max(tp), best.1.max(sp));
        }
        assert_eq!(best.0, whole.true_peak());
        assert_eq!(best.1, whole.sample_peak());
        // A stretch reports its own peak, not an earlier one's (the stretch just after a loud
        // one holds the interpolation across their boundary, as the whole file's meter does).
        let mut m = TruePeakMeter::new(rate);
        m.feed(&[0.9; 100]);
        assert!(m.take_peaks().0 >= 0.9);
        m.feed(&[0.0; 4800]);
        let _ = m.take_peaks();
        m.feed(&[0.0; 4800]);
        assert_eq!(m.take_peaks(), (0.0, 0.0));
    }

    /// The AVX2 kernel computes what the portable kernel does with fused multiply-adds, bit for
    /// bit, at every position (blocks and the tail).
    #[test]
    fn the_avx2_kernel_gives_the_portable_kernels_values() {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            let mut rng = crate::signal::Rng::new(3);
            // Lengths that end in each of the kernel's block sizes and in the one-at-a-time
            // tail.
            for (l, n) in [
                (2, 1003),
                (2, 1024),
                (4, 1003),
                (4, 1000),
                (4, 995),
                (4, 1008),
            ] {
                let phases = design(l);
                let buf: Vec<f32> = (0..TAPS - 1 + n).map(|_| rng.uniform() as f32).collect();
                let mut fast = vec![0f32; n];
                let mut portable = vec![0f32; n];
                let folded = Folded::new(&phases);
                interpolate(&folded, &buf, &mut EnvelopeSink(&mut fast));
                let at = kernel::<true, _>(&folded, &buf, &mut EnvelopeSink(&mut portable));
                tail::<true, _>(&folded, &buf, at, &mut EnvelopeSink(&mut portable));
                assert_eq!(fast, portable, "{l}x, {n} outputs");
                assert!(fast.iter().all(|v| *v > 0.0));
            }
        }
    }

    /// Gain of each phase at `f` (fraction of the sample rate) against the ideal fractional
    /// delay, in dB.
    fn phase_error_db(l: usize, f: f64) -> f64 {
        let mut worst: f64 = 0.0;
        for p in design(l) {
            let (mut re, mut im) = (0.0, 0.0);
            for (j, &c) in p.iter().enumerate() {
                let w = -std::f64::consts::TAU * f * j as f64;
                re += f64::from(c) * w.cos();
                im += f64::from(c) * w.sin();
            }
            let g = (re * re + im * im).sqrt();
            worst = worst.max((20.0 * g.log10()).abs());
        }
        worst
    }

    #[test]
    fn interpolator_is_flat_to_0_42_fs() {
        for l in [2, 4] {
            for i in 0..=42 {
                let f = i as f64 / 100.0;
                let e = phase_error_db(l, f);
                assert!(e < 0.02, "{l}x at {f} fs: {e} dB");
            }
        }
    }

    /// The meter (folded phases, chunks, skipping) against the plain phases evaluated in f64
    /// over the whole signal, at 4× and at 2×.
    #[test]
    fn fast_path_matches_scalar_reference() {
        for rate in [48_000, 192_000] {
            let mut r = crate::signal::Rng::new(7);
            let x: Vec<f32> = (0..5000).map(|_| r.uniform() as f32).collect();
            let mut m = TruePeakMeter::new(rate);
            for c in x.chunks(333) {
                m.feed(c);
            }
            let fast = m.finish();
            // Plain scalar evaluation over the whole signal with zero history and tail.
            let phases = design(oversampling(rate));
            let mut padded = vec![0f32; TAPS - 1];
            padded.extend_from_slice(&x);
            padded.extend_from_slice(&[0.0; TAPS / 2]);
            let mut slow = 0f64;
            for i in 0..padded.len() + 1 - TAPS {
                slow = slow.max(f64::from(padded[i + TAPS - 1].abs()));
                for ph in &phases {
                    let acc: f64 = ph
                        .iter()
                        .enumerate()
                        .map(|(j, &c)| f64::from(c) * f64::from(padded[i + TAPS - 1 - j]))
                        .sum();
                    slow = slow.max(acc.abs());
                }
            }
            assert!((fast - slow).abs() < 1e-5, "{rate} Hz: {fast} vs {slow}");
        }
    }

    /// Every phase's envelope through the folded kernels against the plain phases in f64, at
    /// every position: the folding identities hold for each output, not only at the peak.
    #[test]
    fn folded_phases_give_each_positions_largest_phase() {
        let mut rng = crate::signal::Rng::new(5);
        for l in [2, 4] {
            let phases = design(l);
            let n = 999;
            let buf: Vec<f32> = (0..TAPS - 1 + n).map(|_| rng.uniform() as f32).collect();
            let mut got = vec![0f32; n];
            envelope_of(&Folded::new(&phases), &buf, &mut got);
            for (i, g) in got.iter().enumerate() {
                let want = phases
                    .iter()
                    .map(|ph| {
                        ph.iter()
                            .enumerate()
                            .map(|(j, &c)| f64::from(c) * f64::from(buf[i + TAPS - 1 - j]))
                            .sum::<f64>()
                            .abs()
                    })
                    .fold(0.0, f64::max);
                assert!(
                    (f64::from(*g) - want).abs() < 1e-5,
                    "{l}x at {i}: {g} vs {want}"
                );
            }
        }
    }
}
