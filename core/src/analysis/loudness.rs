//! Loudness per ITU-R BS.1770-4 and EBU R 128 (Tech 3341 "EBU mode", Tech 3342 loudness range).
//!
//! The signal of each channel goes through the K-weighting filter (a high shelf, then the RLB
//! high-pass; both are biquads in `f64`, with coefficients derived from their analogue
//! prototypes for any sample rate, which reproduces the 48 kHz coefficients printed in
//! BS.1770). The mean square of each channel is summed over 100 ms steps, weighted (1.0 for
//! left, right and centre, 1.41 for surrounds, 0 for LFE) and added across channels. Every
//! other figure comes from that one series of 100 ms energies, which is all the meter keeps
//! (80 bytes per second of audio whatever the channel count):
//!
//! - momentary loudness: the last 400 ms (4 steps), every 100 ms;
//! - short-term loudness: the last 3 s (30 steps), every 100 ms;
//! - integrated loudness: 400 ms blocks overlapping by 75 %, gated at −70 LUFS, then 10 LU below
//!   the loudness of the blocks that passed (BS.1770-4), computed exactly (no histogram);
//! - loudness range: short-term values every 100 ms, gated at −70 LUFS and then 20 LU below
//!   their mean, LRA = 95th − 10th percentile (Tech 3342).
//!
//! Before the first 400 ms (or 3 s) the windows hold silence, as a meter started with the file
//! would show; the integrated loudness only uses complete blocks, and a partial last 100 ms is
//! ignored, as BS.1770 does.
//!
//! This is our own implementation rather than the `ebur128` crate: the crate measures ~775×
//! real time for a stereo 48 kHz stream without true peak and ~410× with it on this project's
//! reference machine, and Sluice's analysis has to run several times faster than that
//! (docs/BENCHMARKS.md). The tests check this meter against the crate on programme material at
//! several sample rates and channel layouts, and against the EBU test cases.

use super::{AnalysisReport, Analyzer, Loudness};

pub use crate::block::{LoudnessHistory, LoudnessSummary, OutputLoudness};

/// Channel weight of BS.1770-4 (table 3), by speaker position name as [`crate::StreamInfo`]
/// gives them.
pub fn channel_weight(position: &str) -> f64 {
    match position {
        "LFE" | "LFE2" => 0.0,
        // Surrounds: the positions at ±60°..±120° and behind (BS.1770-4, table 3).
        "BL" | "BR" | "SL" | "SR" | "BC" | "RL" | "RR" => 1.41,
        _ => 1.0,
    }
}

/// The two K-weighting biquads' coefficients for `rate`: `(b, a)` for the shelf, then the
/// high-pass; `a[0] = 1` is implied.
fn k_weighting(rate: f64) -> [([f64; 3], [f64; 2]); 2] {
    use std::f64::consts::PI;
    // Analogue prototype of the pre-filter (high shelf).
    let f0 = 1_681.974_450_955_533;
    let g = 3.999_843_853_973_347;
    let q = 0.707_175_236_955_419_6;
    let k = (PI * f0 / rate).tan();
    let vh = 10f64.powf(g / 20.0);
    let vb = vh.powf(0.499_666_774_154_541_6);
    let a0 = 1.0 + k / q + k * k;
    let shelf = (
        [
            (vh + vb * k / q + k * k) / a0,
            2.0 * (k * k - vh) / a0,
            (vh - vb * k / q + k * k) / a0,
        ],
        [2.0 * (k * k - 1.0) / a0, (1.0 - k / q + k * k) / a0],
    );
    // RLB high-pass; its numerator is (1, -2, 1) exactly, as in BS.1770.
    let f0 = 38.135_470_876_024_44;
    let q = 0.500_327_037_323_877_3;
    let k = (PI * f0 / rate).tan();
    let a0 = 1.0 + k / q + k * k;
    let highpass = (
        [1.0, -2.0, 1.0],
        [2.0 * (k * k - 1.0) / a0, (1.0 - k / q + k * k) / a0],
    );
    [shelf, highpass]
}

/// K-weighting of one channel: two direct-form-I biquads in `f64`.
#[derive(Debug, Clone)]
struct KFilter {
    c: [([f64; 3], [f64; 2]); 2],
    s: KState,
}

/// Filter state in plain fields, so it stays in scalar registers inside the loops (an array
/// of state gets packed into vectors and shuffled on the dependency chain).
#[derive(Debug, Clone, Copy, Default)]
struct KState {
    // Stage 1: x[n-1], x[n-2], y[n-1], y[n-2]; stage 2 likewise.
    x1: f64,
    x2: f64,
    y1: f64,
    y2: f64,
    u1: f64,
    u2: f64,
    z1: f64,
    z2: f64,
}

impl KState {
    /// Flush denormals so a fade to silence does not slow the filter down.
    fn flush_denormals(&mut self) {
        for v in [
            &mut self.x1,
            &mut self.x2,
            &mut self.y1,
            &mut self.y2,
            &mut self.u1,
            &mut self.u2,
            &mut self.z1,
            &mut self.z2,
        ] {
            if v.abs() < 1e-30 {
                *v = 0.0;
            }
        }
    }
}

/// `a * b + c`, fused where the target has FMA (without it `mul_add` is a slow library call).
#[inline(always)]
fn madd<const FMA: bool>(a: f64, b: f64, c: f64) -> f64 {
    if FMA { a.mul_add(b, c) } else { a * b + c }
}

/// One sample through both stages; returns the K-weighted output.
#[inline(always)]
fn tick<const FMA: bool>(c: &[([f64; 3], [f64; 2]); 2], s: &mut KState, v: f32) -> f64 {
    let [(b0, a0), (b1, a1)] = c;
    let v = f64::from(v);
    // Feed-forward and the older feedback term first, the newest feedback term last: only
    // that last step is on the sample-to-sample dependency chain.
    let f0 = b0[0] * v + b0[1] * s.x1 + b0[2] * s.x2 - a0[1] * s.y2;
    let y = madd::<FMA>(-a0[0], s.y1, f0);
    s.x2 = s.x1;
    s.x1 = v;
    s.y2 = s.y1;
    s.y1 = y;
    let f1 = b1[0] * y + b1[1] * s.u1 + b1[2] * s.u2 - a1[1] * s.z2;
    let z = madd::<FMA>(-a1[0], s.z1, f1);
    s.u2 = s.u1;
    s.u1 = y;
    s.z2 = s.z1;
    s.z1 = z;
    z
}

impl KFilter {
    fn new(rate: u32) -> Self {
        KFilter {
            c: k_weighting(f64::from(rate)),
            s: KState::default(),
        }
    }

    /// Filter `x` and return the sum of squares of the output.
    fn sum_squares(&mut self, x: &[f32]) -> f64 {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("fma") {
                // SAFETY: the CPU has the feature the function is compiled for.
                return unsafe { self.sum_squares_fma(x) };
            }
        }
        self.run::<false>(x)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "fma")]
    fn sum_squares_fma(&mut self, x: &[f32]) -> f64 {
        self.run::<true>(x)
    }

    /// The filter loop; with FMA the recursive part of each biquad is one fused operation,
    /// which halves the dependency chain that bounds its speed.
    #[inline(always)]
    fn run<const FMA: bool>(&mut self, x: &[f32]) -> f64 {
        let mut s = self.s;
        let mut acc = 0.0;
        for &v in x {
            let z = tick::<FMA>(&self.c, &mut s, v);
            acc = madd::<FMA>(z, z, acc);
        }
        s.flush_denormals();
        self.s = s;
        acc
    }

    /// Two channels in one loop: their dependency chains are independent, so the CPU overlaps
    /// them and a pair costs little more than one channel.
    fn sum_squares_pair(a: &mut KFilter, b: &mut KFilter, x: &[f32], y: &[f32]) -> (f64, f64) {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("fma") {
                // SAFETY: the CPU has the feature the function is compiled for.
                return unsafe { Self::pair_fma(a, b, x, y) };
            }
        }
        Self::pair::<false>(a, b, x, y)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "fma")]
    fn pair_fma(a: &mut KFilter, b: &mut KFilter, x: &[f32], y: &[f32]) -> (f64, f64) {
        Self::pair::<true>(a, b, x, y)
    }

    #[inline(always)]
    fn pair<const FMA: bool>(a: &mut KFilter, b: &mut KFilter, x: &[f32], y: &[f32]) -> (f64, f64) {
        // The coefficients are the same for both (same rate).
        let c = a.c;
        let (mut sa, mut sb) = (a.s, b.s);
        let (mut acc_a, mut acc_b) = (0.0, 0.0);
        for (&va, &vb) in x.iter().zip(y) {
            let za = tick::<FMA>(&c, &mut sa, va);
            let zb = tick::<FMA>(&c, &mut sb, vb);
            acc_a = madd::<FMA>(za, za, acc_a);
            acc_b = madd::<FMA>(zb, zb, acc_b);
        }
        sa.flush_denormals();
        sb.flush_denormals();
        a.s = sa;
        b.s = sb;
        (acc_a, acc_b)
    }
}

/// K-weighted mean square of one channel in every complete 100 ms step. Channels are
/// independent until their energies are weighted and summed ([`combine`]), so they can be
/// measured on different threads.
#[derive(Debug, Clone)]
pub struct ChannelEnergy {
    filter: KFilter,
    step: usize,
    filled: usize,
    acc: f64,
    /// Mean square of each complete step not yet taken by [`ChannelEnergy::take_steps`].
    steps: Vec<f64>,
}

impl ChannelEnergy {
    pub fn new(rate: u32) -> Self {
        ChannelEnergy {
            filter: KFilter::new(rate),
            step: frames_per_step(rate),
            filled: 0,
            acc: 0.0,
            steps: Vec::new(),
        }
    }

    pub fn feed(&mut self, x: &[f32]) {
        let mut at = 0;
        while at < x.len() {
            let take = (self.step - self.filled).min(x.len() - at);
            self.acc += self.filter.sum_squares(&x[at..at + take]);
            self.filled += take;
            at += take;
            if self.filled == self.step {
                self.steps.push(self.acc / self.step as f64);
                self.acc = 0.0;
                self.filled = 0;
            }
        }
    }

    /// Feed two channels of the same rate at once (faster than one after the other: the two
    /// filters' dependency chains overlap). Both must have been fed the same so far.
    pub fn feed_pair(a: &mut ChannelEnergy, b: &mut ChannelEnergy, x: &[f32], y: &[f32]) {
        debug_assert_eq!((a.step, a.filled), (b.step, b.filled));
        let mut at = 0;
        while at < x.len() {
            let take = (a.step - a.filled).min(x.len() - at);
            let (sa, sb) = KFilter::sum_squares_pair(
                &mut a.filter,
                &mut b.filter,
                &x[at..at + take],
                &y[at..at + take],
            );
            for (e, s) in [(&mut *a, sa), (&mut *b, sb)] {
                e.acc += s;
                e.filled += take;
                if e.filled == e.step {
                    e.steps.push(e.acc / e.step as f64);
                    e.acc = 0.0;
                    e.filled = 0;
                }
            }
            at += take;
        }
    }

    /// Complete steps so far (not yet taken).
    pub fn steps(&self) -> &[f64] {
        &self.steps
    }

    /// Move out the complete steps.
    pub fn take_steps(&mut self) -> Vec<f64> {
        std::mem::take(&mut self.steps)
    }

    /// Forget the complete steps (keeping the memory), for callers that read [`Self::steps`]
    /// after each feed. With [`Self::reserve_for_block`] this makes the meter allocation-free.
    pub fn clear_steps(&mut self) {
        self.steps.clear();
    }

    /// Make room for the steps a feed of up to `frames` frames can complete, so that feeding
    /// blocks no longer than that (with [`Self::clear_steps`] after each) never allocates.
    pub fn reserve_for_block(&mut self, frames: usize) {
        let most = frames / self.step + 1;
        self.steps.reserve(most.saturating_sub(self.steps.len()));
    }

    /// Back to the state of a new meter (filter history and the partial step cleared).
    pub fn reset(&mut self) {
        self.filter.s = KState::default();
        self.filled = 0;
        self.acc = 0.0;
        self.steps.clear();
    }

    /// Frames in a 100 ms step.
    pub fn step_frames(&self) -> usize {
        self.step
    }

    /// Frames fed into the step in progress.
    pub fn partial_frames(&self) -> usize {
        self.filled
    }
}

/// Weighted sum over channels of per-channel step energies (the shortest channel decides the
/// length).
pub fn combine(weights: &[f64], channels: &[Vec<f64>]) -> Vec<f64> {
    let n = channels.iter().map(Vec::len).min().unwrap_or(0);
    (0..n)
        .map(|i| channels.iter().zip(weights).map(|(c, w)| c[i] * w).sum())
        .collect()
}

/// Streaming BS.1770 loudness meter (everything except true peak, see
/// [`super::truepeak::TruePeakMeter`]).
#[derive(Debug, Clone)]
pub struct LoudnessMeter {
    rate: u32,
    weights: Vec<f64>,
    channels: Vec<ChannelEnergy>,
    /// Weighted channel-summed mean square of every complete 100 ms step.
    steps: Vec<f64>,
}

/// Frames per 100 ms at `rate` (rounded as libebur128 does, so results agree at odd rates).
pub fn frames_per_step(rate: u32) -> usize {
    ((rate as usize + 5) / 10).max(1)
}

impl LoudnessMeter {
    /// A meter for `rate` Hz with one weight per channel (see [`channel_weight`]).
    pub fn new(rate: u32, weights: Vec<f64>) -> Self {
        LoudnessMeter {
            rate,
            channels: weights.iter().map(|_| ChannelEnergy::new(rate)).collect(),
            weights,
            steps: Vec::new(),
        }
    }

    /// A meter with the BS.1770 weights for these speaker positions.
    pub fn for_layout(rate: u32, positions: &[String]) -> Self {
        Self::new(rate, positions.iter().map(|p| channel_weight(p)).collect())
    }

    /// Feed planar audio, one slice per channel, all the same length.
    pub fn feed(&mut self, planes: &[&[f32]]) {
        for ((c, p), w) in self.channels.iter_mut().zip(planes).zip(&self.weights) {
            if *w != 0.0 {
                c.feed(p);
            }
        }
        let done = self
            .channels
            .iter()
            .zip(&self.weights)
            .filter(|(_, w)| **w != 0.0)
            .map(|(c, _)| c.steps().len())
            .min()
            .unwrap_or(0);
        for i in 0..done {
            let e = self
                .channels
                .iter()
                .zip(&self.weights)
                .filter(|(_, w)| **w != 0.0)
                .map(|(c, w)| c.steps()[i] * w)
                .sum();
            self.steps.push(e);
        }
        for (c, w) in self.channels.iter_mut().zip(&self.weights) {
            if *w != 0.0 {
                c.steps.drain(..done);
            }
        }
    }

    /// Complete 100 ms steps so far.
    pub fn steps(&self) -> &[f64] {
        &self.steps
    }

    pub fn sample_rate(&self) -> u32 {
        self.rate
    }

    /// Momentary loudness now (the last 400 ms), LUFS; `None` below −70 LUFS or before 100 ms.
    pub fn momentary(&self) -> Option<f64> {
        window_lufs(&self.steps, self.steps.len(), 4)
    }

    /// Short-term loudness now (the last 3 s), LUFS.
    pub fn short_term(&self) -> Option<f64> {
        window_lufs(&self.steps, self.steps.len(), 30)
    }

    /// The loudness figures of everything fed so far.
    pub fn summary(&self, history_step_seconds: Option<f64>) -> LoudnessSummary {
        summarize(&self.steps, history_step_seconds)
    }
}

/// LUFS of a mean square.
pub fn lufs(energy: f64) -> f64 {
    -0.691 + 10.0 * energy.log10()
}

const ABSOLUTE_GATE: f64 = -70.0;

/// Loudness of the `len` steps ending before `end` (silence before the start), `None` when
/// below the absolute gate (−70 LUFS) or when nothing was measured.
fn window_lufs(steps: &[f64], end: usize, len: usize) -> Option<f64> {
    if end == 0 {
        return None;
    }
    let e = steps[end.saturating_sub(len)..end].iter().sum::<f64>() / len as f64;
    let l = lufs(e);
    (l >= ABSOLUTE_GATE).then_some(l)
}

/// Integrated loudness of 400 ms block energies (BS.1770-4 gating).
pub fn gated_loudness(blocks: &[f64]) -> Option<f64> {
    let abs = 10f64.powf((ABSOLUTE_GATE + 0.691) / 10.0);
    let (n, sum) = blocks
        .iter()
        .filter(|&&e| e >= abs)
        .fold((0usize, 0.0), |(n, s), &e| (n + 1, s + e));
    if n == 0 {
        return None;
    }
    let rel = sum / n as f64 * 10f64.powf(-10.0 / 10.0);
    let gate = rel.max(abs);
    let (n, sum) = blocks
        .iter()
        .filter(|&&e| e >= gate)
        .fold((0usize, 0.0), |(n, s), &e| (n + 1, s + e));
    (n > 0).then(|| lufs(sum / n as f64))
}

/// Loudness range (Tech 3342) of short-term energies.
pub fn loudness_range(short_term: &[f64]) -> Option<f64> {
    let abs = 10f64.powf((ABSOLUTE_GATE + 0.691) / 10.0);
    let gated: Vec<f64> = short_term.iter().copied().filter(|&e| e >= abs).collect();
    if gated.is_empty() {
        return None;
    }
    let mean = gated.iter().sum::<f64>() / gated.len() as f64;
    let rel = mean * 10f64.powf(-20.0 / 10.0);
    let mut l: Vec<f64> = gated
        .iter()
        .filter(|&&e| e >= rel)
        .map(|&e| lufs(e))
        .collect();
    if l.is_empty() {
        return None;
    }
    l.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        // Linear interpolation between closest ranks.
        let x = p * (l.len() - 1) as f64;
        let i = x.floor() as usize;
        let f = x - i as f64;
        if i + 1 < l.len() {
            l[i] * (1.0 - f) + l[i + 1] * f
        } else {
            l[i]
        }
    };
    Some(pct(0.95) - pct(0.10))
}

/// Integrated loudness and loudness range in bounded memory, for a meter that runs for hours
/// (the plugin): the 400 ms block energies and the short-term energies go into histograms of
/// 0.01 LU bins from −70 to +30 LUFS, each bin keeping the exact sum of its energies and its
/// count. [`gated_loudness`] and [`loudness_range`] are then reproduced with one difference:
/// blocks in the single bin that holds the relative gate are all counted in or all out (by the
/// bin's lower edge), which moves the result by far less than 0.01 LU on real signals; the
/// LRA percentiles are read at the bin's centre (±0.005 LU). Memory: 2 × 10,000 bins × 12
/// bytes, allocated once; adding a value or reading a figure never allocates.
#[derive(Debug, Clone)]
pub struct LiveGating {
    integrated: GateHistogram,
    range: GateHistogram,
}

#[derive(Debug, Clone)]
struct GateHistogram {
    count: Vec<u32>,
    sum: Vec<f64>,
}

const HIST_MIN: f64 = ABSOLUTE_GATE;
const HIST_BINS_PER_LU: f64 = 100.0;
const HIST_BINS: usize = 10_000;

impl GateHistogram {
    fn new() -> Self {
        GateHistogram {
            count: vec![0; HIST_BINS],
            sum: vec![0.0; HIST_BINS],
        }
    }

    fn clear(&mut self) {
        self.count.fill(0);
        self.sum.fill(0.0);
    }

    /// Bin of a loudness value at or above the absolute gate.
    fn bin(l: f64) -> usize {
        (((l - HIST_MIN) * HIST_BINS_PER_LU) as usize).min(HIST_BINS - 1)
    }

    fn lower_edge(bin: usize) -> f64 {
        HIST_MIN + bin as f64 / HIST_BINS_PER_LU
    }

    /// Adds an energy; values under the absolute gate (−70 LUFS) are not kept (no figure
    /// uses them).
    fn add(&mut self, energy: f64) {
        let l = lufs(energy);
        if l >= ABSOLUTE_GATE && energy.is_finite() {
            let b = Self::bin(l);
            self.count[b] += 1;
            self.sum[b] += energy;
        }
    }

    /// (count, sum of energies) of the bins from `first` up.
    fn totals_from(&self, first: usize) -> (u64, f64) {
        self.count[first..]
            .iter()
            .zip(&self.sum[first..])
            .fold((0u64, 0.0), |(n, s), (&c, &e)| (n + u64::from(c), s + e))
    }

    /// First bin whose lower edge is at or above the relative gate `offset_lu` below the mean
    /// energy of everything kept; `None` when nothing is kept.
    fn relative_gate_bin(&self, offset_lu: f64) -> Option<usize> {
        let (n, sum) = self.totals_from(0);
        if n == 0 {
            return None;
        }
        let gate = lufs(sum / n as f64) + offset_lu;
        if gate < HIST_MIN {
            return Some(0);
        }
        let b = Self::bin(gate);
        Some(if Self::lower_edge(b) < gate - 1e-9 {
            b + 1
        } else {
            b
        })
    }
}

impl Default for LiveGating {
    fn default() -> Self {
        Self::new()
    }
}

impl LiveGating {
    pub fn new() -> Self {
        LiveGating {
            integrated: GateHistogram::new(),
            range: GateHistogram::new(),
        }
    }

    /// Forget everything (keeps the memory).
    pub fn clear(&mut self) {
        self.integrated.clear();
        self.range.clear();
    }

    /// A complete 400 ms block's energy (mean square, weighted and summed over channels).
    pub fn add_block(&mut self, energy: f64) {
        self.integrated.add(energy);
    }

    /// A short-term (3 s) energy, one every 100 ms once 3 s have been measured.
    pub fn add_short_term(&mut self, energy: f64) {
        self.range.add(energy);
    }

    /// Integrated loudness so far (BS.1770-4 gating), LUFS; `None` when no block passes.
    pub fn integrated(&self) -> Option<f64> {
        let first = self.integrated.relative_gate_bin(-10.0)?;
        let (n, sum) = self.integrated.totals_from(first.min(HIST_BINS));
        (n > 0).then(|| lufs(sum / n as f64))
    }

    /// Loudness range so far (Tech 3342), LU; `None` when no short-term value passes the gates.
    pub fn range(&self) -> Option<f64> {
        let h = &self.range;
        let first = h.relative_gate_bin(-20.0)?.min(HIST_BINS);
        let n: u64 = h.count[first..].iter().map(|&c| u64::from(c)).sum();
        if n == 0 {
            return None;
        }
        // The value of rank `r` (0-based) among the kept values, at its bin's centre.
        let value_at_rank = |r: u64| -> f64 {
            let mut seen = 0u64;
            for (i, &c) in h.count[first..].iter().enumerate() {
                seen += u64::from(c);
                if seen > r {
                    return GateHistogram::lower_edge(first + i) + 0.5 / HIST_BINS_PER_LU;
                }
            }
            GateHistogram::lower_edge(HIST_BINS - 1)
        };
        // Linear interpolation between the closest ranks, as `loudness_range` does.
        let pct = |p: f64| {
            let x = p * (n - 1) as f64;
            let i = x.floor() as u64;
            let f = x - i as f64;
            if i + 1 < n {
                value_at_rank(i) * (1.0 - f) + value_at_rank(i + 1) * f
            } else {
                value_at_rank(i)
            }
        };
        Some(pct(0.95) - pct(0.10))
    }
}

/// Every loudness figure from a series of 100 ms energies.
pub fn summarize(steps: &[f64], history_step_seconds: Option<f64>) -> LoudnessSummary {
    let n = steps.len();
    // 400 ms blocks every 100 ms (only complete ones) for the integrated loudness.
    let blocks: Vec<f64> = steps
        .windows(4)
        .map(|w| w.iter().sum::<f64>() / 4.0)
        .collect();
    // Short-term energies every 100 ms with complete 3 s windows for the range.
    let short: Vec<f64> = steps
        .windows(30)
        .map(|w| w.iter().sum::<f64>() / 30.0)
        .collect();
    let max_over = |len: usize| {
        (1..=n)
            .filter_map(|end| window_lufs(steps, end, len))
            .max_by(f64::total_cmp)
    };
    let history = history_step_seconds.map(|s| {
        let every = ((s * 10.0).round() as usize).max(1);
        let ends = (1..=n / every).map(|k| k * every);
        LoudnessHistory {
            step_seconds: every as f64 / 10.0,
            momentary_lufs: ends.clone().map(|e| window_lufs(steps, e, 4)).collect(),
            short_term_lufs: ends.map(|e| window_lufs(steps, e, 30)).collect(),
        }
    });
    LoudnessSummary {
        integrated_lufs: gated_loudness(&blocks),
        loudness_range_lu: loudness_range(&short),
        max_momentary_lufs: max_over(4),
        max_short_term_lufs: max_over(30),
        history,
    }
}

/// K-weighting of one channel or a pair (filtered together, which costs little more than one);
/// the energies go to [`LoudnessA`] through the report's scratch.
pub(super) struct ChannelEnergyA {
    pub(super) channels: Vec<(usize, ChannelEnergy)>,
}

impl Analyzer for ChannelEnergyA {
    fn feed(&mut self, planes: &[&[f32]]) {
        match self.channels.as_mut_slice() {
            [(ca, a), (cb, b)] => {
                ChannelEnergy::feed_pair(a, b, planes[*ca], planes[*cb]);
            }
            list => {
                for (c, e) in list {
                    e.feed(planes[*c]);
                }
            }
        }
    }
    fn finish(self: Box<Self>, r: &mut AnalysisReport) {
        for (c, mut e) in self.channels {
            r.scratch.channel_energy.push((c, e.take_steps()));
        }
    }
    fn cost(&self) -> f64 {
        // A pair is filtered together, for little more than one channel.
        if self.channels.len() == 2 { 10.0 } else { 8.0 }
    }
    fn name(&self) -> &'static str {
        "k_weighting"
    }
}

/// Combines the channels' energies into the loudness figures (after every [`ChannelEnergyA`]).
pub(super) struct LoudnessA {
    pub(super) weights: Vec<f64>,
    pub(super) history: Option<f64>,
    pub(super) channels: usize,
}

impl Analyzer for LoudnessA {
    fn feed(&mut self, _: &[&[f32]]) {}
    fn finish(self: Box<Self>, r: &mut AnalysisReport) {
        let mut parts = std::mem::take(&mut r.scratch.channel_energy);
        parts.sort_by_key(|p| p.0);
        let weights: Vec<f64> = parts.iter().map(|p| self.weights[p.0]).collect();
        let energies: Vec<Vec<f64>> = parts.into_iter().map(|p| p.1).collect();
        let steps = combine(&weights, &energies);
        let summary = summarize(&steps, self.history);
        r.loudness = Some(Loudness {
            summary,
            sample_peak_dbfs: None,
            true_peak_dbtp: None,
            true_peak_dbtp_per_channel: vec![None; self.channels],
            plr_lu: None,
            true_peak_history_dbtp: None,
        });
    }
    fn cost(&self) -> f64 {
        0.0
    }
    fn name(&self) -> &'static str {
        "loudness"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signal::{Rng, programme, speech};

    /// The live (histogram) figures against the exact ones on the same 100 ms steps.
    fn compare(steps: &[f64]) {
        let mut live = LiveGating::new();
        for end in 1..=steps.len() {
            if end >= 4 {
                live.add_block(steps[end - 4..end].iter().sum::<f64>() / 4.0);
            }
            if end >= 30 {
                live.add_short_term(steps[end - 30..end].iter().sum::<f64>() / 30.0);
            }
        }
        let exact = summarize(steps, None);
        match (exact.integrated_lufs, live.integrated()) {
            (Some(a), Some(b)) => assert!((a - b).abs() < 0.005, "integrated {a} vs live {b}"),
            (a, b) => assert_eq!(a, b),
        }
        match (exact.loudness_range_lu, live.range()) {
            (Some(a), Some(b)) => assert!((a - b).abs() < 0.011, "LRA {a} vs live {b}"),
            (a, b) => assert_eq!(a, b),
        }
    }

    fn steps_of(planes: &[Vec<f32>], rate: u32) -> Vec<f64> {
        let mut m = LoudnessMeter::new(rate, vec![1.0; planes.len()]);
        let refs: Vec<&[f32]> = planes.iter().map(Vec::as_slice).collect();
        m.feed(&refs);
        m.steps().to_vec()
    }

    #[test]
    fn live_gating_matches_the_exact_figures() {
        compare(&steps_of(&programme(48_000, 2, 48_000 * 40, 7), 48_000));
        compare(&steps_of(&speech(44_100, 40.0, 0.3), 44_100));
        // Random step energies over 80 dB, and a quiet passage the relative gate removes.
        let mut rng = Rng::new(3);
        let steps: Vec<f64> = (0..3000)
            .map(|i| {
                let db = -75.0 + 75.0 * rng.uniform() - if i % 700 < 200 { 30.0 } else { 0.0 };
                10f64.powf(db / 10.0)
            })
            .collect();
        compare(&steps);
        // Nothing above the gate: undefined, not a number.
        compare(&vec![1e-12; 100]);
        compare(&[]);
    }

    #[test]
    fn live_gating_clears() {
        let mut live = LiveGating::new();
        live.add_block(0.01);
        live.add_short_term(0.01);
        assert!(live.integrated().is_some() && live.range().is_some());
        live.clear();
        assert_eq!((live.integrated(), live.range()), (None, None));
    }

    #[test]
    fn channel_energy_reserved_feeds_do_not_grow() {
        let mut c = ChannelEnergy::new(48_000);
        c.reserve_for_block(4096);
        let cap = c.steps.capacity();
        let x = crate::signal::noise(1, 0.5, 4096);
        for _ in 0..100 {
            c.feed(&x);
            c.clear_steps();
        }
        assert_eq!(c.steps.capacity(), cap);
    }
}
