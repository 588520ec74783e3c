//! Per-band metrics: the five bands of [`BANDS`] (low 20–200 Hz, low-mid 200–500, mid
//! 500–2k, high-mid 2k–6k, high 6k–20k) split out of the front pair in the time domain, and for
//! each its level, peak, crest, short-term spread and stereo image.
//!
//! **Filters.** Each band is a 4th-order Butterworth high-pass at its lower edge followed by a
//! 4th-order Butterworth low-pass at its upper edge (two 2nd-order sections each, Q 0.541 and
//! 1.307): 24 dB per octave outside the band, −3 dB at each edge, and power-complementary
//! (`|LP|² + |HP|² = 1` at every frequency), so noise's energy is shared between neighbours as
//! the long-term spectrum's bins are, and the bands' energies add up to the signal's. Inside a
//! band the response is flat to −0.03 dB an octave from both edges (the mid band at 1 kHz) and
//! −0.2 dB in the middle of the narrowest band (low-mid, 316 Hz). (A Linkwitz-Riley split,
//! −6 dB at the edges, would read a band's middle 1–1.3 dB low.) The high band's 20 kHz
//! low-pass is left out where 20 kHz is above 0.45 of the sample rate, and a band whose lower
//! edge is above 0.45 of the rate (the high band at 8 to 12 kHz) reads nothing (its share
//! too: the others' add up to 100 %). All ten filters (five
//! bands, two channels) run side by side in two 8-lane `f32` vectors, transposed direct form II
//! with fused multiply-adds (see `Filters` for the layout), their
//! coefficients from the bilinear transform prewarped to the edges; their sums are kept per
//! 100 ms block and added up in `f64`.
//!
//! **Signal.** The front pair (left, right) when the file has one; otherwise the mean of all
//! channels, fed as both sides (a mono file then reads width 0 and correlation 1 in every
//! band, which is what it is).
//!
//! The `bands` section: asked for by name (`sluice analyze --only ...,bands`), not yet part of
//! the full analysis ([`super::Section::ALL`]). With the stereo section it measures that too,
//! in the same pass (in place of [`super::stereo::StereoMeter`]: the same figures to 1e-5).
//! Its cost: 0.100 s of CPU per 10 minutes, on every material alike (`cargo run --release -p
//! sluice-core --example bands_cost`; 0.124 s before the low vector's sections were skewed
//! over frames and the sums split in two sets, on the same machine the same hour; the first
//! version took 0.32–0.35 s), and +9.4 to +9.8 % to the full analysis of the 60-minute file
//! in `cargo bench -p sluice-host --bench analyze` (paired medians, both threads busy), where
//! issue 23 allows 15 % (before: +15.2 % on programme). Without FMA instructions (x86-64
//! before 2013) `mul_add` is a library call, several times slower, but gives the same results.

use super::spectrum::BANDS;
use super::stereo::{Stereo, correlation, width};
use super::{AnalysisReport, Analyzer, db};
use serde::Serialize;

/// Biquad sections per lane: high-pass twice, low-pass twice.
const SECTIONS: usize = 4;
/// Seconds of a block of sums (the short-term windows are made of them).
const BLOCK_SECONDS: f64 = 0.1;
/// Blocks per short-term window and per hop between windows.
const WINDOW_BLOCKS: usize = 30;
const HOP_BLOCKS: usize = 10;
/// Absolute and relative gates of the spread (dB).
const ABSOLUTE_GATE_DB: f64 = -70.0;
const RELATIVE_GATE_DB: f64 = -20.0;
/// The spread's percentiles.
const SPREAD_LOW: f64 = 0.10;
const SPREAD_HIGH: f64 = 0.95;

/// One transposed-direct-form-II biquad's coefficients, `a0` = 1.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Biquad {
    b0: f64,
    b1: f64,
    b2: f64,
    a1: f64,
    a2: f64,
}

impl Biquad {
    const IDENTITY: Biquad = Biquad {
        b0: 1.0,
        b1: 0.0,
        b2: 0.0,
        a1: 0.0,
        a2: 0.0,
    };

    /// A 2nd-order low-pass (`high` false) or high-pass section at `hz` with quality `q`
    /// (bilinear transform, prewarped to `hz`).
    fn section(hz: f64, rate: f64, q: f64, high: bool) -> Biquad {
        let k = (std::f64::consts::PI * hz / rate).tan();
        let norm = 1.0 / (1.0 + k / q + k * k);
        let a1 = 2.0 * (k * k - 1.0) * norm;
        let a2 = (1.0 - k / q + k * k) * norm;
        if high {
            Biquad {
                b0: norm,
                b1: -2.0 * norm,
                b2: norm,
                a1,
                a2,
            }
        } else {
            let b0 = k * k * norm;
            Biquad {
                b0,
                b1: 2.0 * b0,
                b2: b0,
                a1,
                a2,
            }
        }
    }
}

/// The qualities of a 4th-order Butterworth filter's two sections: `1 / (2 cos(π/8))` and
/// `1 / (2 cos(3π/8))`.
const BUTTERWORTH4_Q: [f64; 2] = [0.541_196_100_146_197, 1.306_562_964_876_376_6];

/// Whether band `b` is measured at `rate`: its lower edge under 0.45 of the rate (at 8 to
/// 12 kHz the high band, from 6 kHz, is not: it reads nothing).
fn held(b: usize, rate: f64) -> bool {
    BANDS[b].1 < 0.45 * rate
}

/// The four sections of band `b` at `rate`: the high-pass pair, then the low-pass pair
/// (identities for a band not [`held`], whose gain is then 0).
fn band_sections(b: usize, rate: f64) -> [Biquad; SECTIONS] {
    if !held(b, rate) {
        return [Biquad::IDENTITY; SECTIONS];
    }
    let (_, lo, hi) = BANDS[b];
    let [q1, q2] = BUTTERWORTH4_Q;
    let hp = |q| Biquad::section(lo, rate, q, true);
    let lp = |q| {
        if hi < 0.45 * rate {
            Biquad::section(hi, rate, q, false)
        } else {
            Biquad::IDENTITY
        }
    };
    [hp(q1), hp(q2), lp(q1), lp(q2)]
}

/// Lanes of one vector of filters.
const W: usize = 8;

/// Coefficients of one section for the [`W`] lanes of a vector (`f32`, as the lanes compute;
/// the feedback ones negated), its numerator divided by `b0`: a Butterworth section's is
/// then `1, ±2, 1`, so `b0` and `b2` take no multiply (each band's product of the `b0`s is
/// applied to its sums instead, in `f64`), and `c1` is −2 in a high-pass section, 2 in a
/// low-pass one. An identity section is `c1 = ±2` (as its slot's kind), `na1 = −c1`,
/// `na2 = −1`: from a zero state it passes `x` exactly and its state stays zero.
#[derive(Clone, Copy, Default)]
struct Coefs {
    /// `b1 / b0`.
    c1: [f32; W],
    na1: [f32; W],
    na2: [f32; W],
}

impl Coefs {
    /// Sets `lane` to section `q`, in a high-pass slot or a low-pass one, and returns the gain
    /// taken out of it (`b0`).
    fn set(&mut self, lane: usize, q: &Biquad, high_pass: bool) -> f64 {
        if *q == Biquad::IDENTITY {
            let c1 = if high_pass { -2.0 } else { 2.0 };
            self.c1[lane] = c1;
            self.na1[lane] = -c1;
            self.na2[lane] = -1.0;
            return 1.0;
        }
        debug_assert!((q.b2 / q.b0 - 1.0).abs() < 1e-12, "a Butterworth section");
        self.c1[lane] = (q.b1 / q.b0) as f32;
        self.na1[lane] = -q.a1 as f32;
        self.na2[lane] = -q.a2 as f32;
        q.b0
    }
}

/// Transposed direct form II state of one section's lanes: `s1`, `s2`.
type State = [[f32; W]; 2];

/// One sample through one section, every lane, without its gain (see [`Coefs`]; fused
/// multiply-adds: the same results with or without the instructions for them).
#[inline(always)]
fn step(x: &[f32; W], c: &Coefs, s: &mut State) -> [f32; W] {
    let mut out = [0f32; W];
    for i in 0..W {
        let y = x[i] + s[0][i];
        s[0][i] = c.na1[i].mul_add(y, c.c1[i].mul_add(x[i], s[1][i]));
        s[1][i] = c.na2[i].mul_add(y, x[i]);
        out[i] = y;
    }
    out
}

/// The filters in two vectors of [`W`] lanes:
/// - `low`: bands 0–3 (low to high-mid), lane `2·band + channel`, each sample through the four
///   sections in turn, skewed: every frame section `k` takes what section `k − 1` gave the
///   frame before (`low_carry`), so the four sections of a frame do not wait for each other
///   (in a chain of four, the frames in flight overran the processor's out-of-order window);
///   the bands come out three samples late;
/// - `high`: the high band as a pipeline, lane `2·section + channel`: every sample each
///   section takes what the one before it gave the sample before, so the four sections run
///   side by side and the band comes out of lanes 6 and 7 three samples late.
///
/// The sums do not see the delay; [`BandMeter::finish`] flushes it.
#[derive(Clone, Copy)]
struct Filters {
    low: [Coefs; SECTIONS],
    low_state: [State; SECTIONS],
    /// What the first three `low` sections gave the last frame.
    low_carry: [[f32; W]; SECTIONS - 1],
    high: Coefs,
    high_state: State,
    /// The high pipeline's last output.
    high_out: [f32; W],
}

/// Sums of one block, per lane of the two vectors (`low` lanes 0–7, `high` lanes 8–15; of
/// `high`, lanes 8 and 9 are the unfiltered signal and 14 and 15 the band).
#[derive(Clone, Copy)]
struct LaneSums {
    /// Σ y².
    sq: [f32; 2 * W],
    /// Σ y·(the other channel's y of the same band).
    cross: [f32; 2 * W],
    /// max |y|.
    peak: [f32; 2 * W],
}

impl LaneSums {
    const ZERO: LaneSums = LaneSums {
        sq: [0.0; 2 * W],
        cross: [0.0; 2 * W],
        peak: [0.0; 2 * W],
    };

    /// The lanes of band `b`'s left and right channels.
    fn lanes(b: usize) -> (usize, usize) {
        if b < 4 { (2 * b, 2 * b + 1) } else { (14, 15) }
    }
}

/// Adds one output vector to the sums at `at`.
#[inline(always)]
fn add_sums(y: &[f32; W], sums: &mut LaneSums, at: usize) {
    for i in 0..W {
        sums.sq[at + i] = y[i].mul_add(y[i], sums.sq[at + i]);
        sums.cross[at + i] = y[i].mul_add(y[i ^ 1], sums.cross[at + i]);
        let a = y[i].abs();
        // Not f32::max: its NaN rule keeps it from being one instruction (the filters' output
        // is finite for finite input).
        if a > sums.peak[at + i] {
            sums.peak[at + i] = a;
        }
    }
}

/// The band filters and their running sums (see the module documentation).
pub struct BandMeter {
    filters: Filters,
    block_len: usize,
    in_block: usize,
    block: LaneSums,
    /// Per band: energy of each 100 ms block (left plus right).
    block_energy: Vec<[f64; 5]>,
    /// Per band: Σ left², Σ right², Σ left·right over the file.
    totals: [[f64; 3]; 5],
    /// The same of the unfiltered signal, over the file and over the current 400 ms window
    /// (four blocks), and the lowest correlation of a window above −60 dBFS.
    wide: [f64; 3],
    window: [f64; 3],
    window_blocks: usize,
    correlation_min: Option<f64>,
    /// Per band: the product of its sections' `b0`, which the lanes leave out (see [`Coefs`]).
    gains: [f64; 5],
    peaks: [f64; 5],
    frames: u64,
}

impl std::fmt::Debug for BandMeter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BandMeter")
            .field("frames", &self.frames)
            .finish()
    }
}

/// Runs the frames of `l` and `r` through every band's filters, adding to `sums`: one call per
/// stretch of a block. With AVX2 and FMA where the CPU has them, and AVX-512's 32 registers
/// (on 8-lane vectors) where it has those too: the skewed sections' states, inputs and
/// coefficients are 30 vectors, which in 16 registers spill.
fn filter_frames(l: &[f32], r: &[f32], f: &mut Filters, sums: &mut LaneSums) {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx2,fma")]
        fn fast(l: &[f32], r: &[f32], f: &mut Filters, sums: &mut LaneSums) {
            // (The closure has the features of the function it is in.)
            filter_frames_body(l, r, f, sums, |l, r, f, o| avx2::filter_stretch(l, r, f, o))
        }
        #[target_feature(enable = "avx2,fma,avx512f,avx512vl")]
        fn fast_512(l: &[f32], r: &[f32], f: &mut Filters, sums: &mut LaneSums) {
            filter_frames_body(l, r, f, sums, |l, r, f, o| {
                avx2::filter_stretch_512(l, r, f, o)
            })
        }
        use std::arch::is_x86_feature_detected as has;
        if has!("avx2") && has!("fma") {
            if has!("avx512f") && has!("avx512vl") {
                // SAFETY: the CPU has the features `fast_512` is compiled for.
                return unsafe { fast_512(l, r, f, sums) };
            }
            // SAFETY: the CPU has the features `fast` is compiled for.
            return unsafe { fast(l, r, f, sums) };
        }
    }
    filter_frames_body(l, r, f, sums, filter_stretch)
}

/// Frames filtered before their sums are taken: the filters' states stay in registers while
/// they run, and the sums' while they add up (one loop doing both spills them).
const STRETCH: usize = 64;

#[inline(always)]
fn filter_frames_body(
    l: &[f32],
    r: &[f32],
    f: &mut Filters,
    sums: &mut LaneSums,
    stretch: impl Fn(&[f32], &[f32], &mut Filters, &mut [[[f32; W]; 2]]),
) {
    let mut out = [[[0f32; W]; 2]; STRETCH];
    for (l, r) in l.chunks(STRETCH).zip(r.chunks(STRETCH)) {
        let out = &mut out[..l.len()];
        stretch(l, r, f, out);
        // Two sets of sums, of the even frames and of the odd ones, so that each sum's chain
        // of multiply-adds is half as long (one set waited on its last multiply-add every
        // frame); added together at the stretch's end.
        // Lanes 0 and 1 of the high pipeline's output are an intermediate section's: the sums
        // take the unfiltered signal there instead (see `filter_stretch`).
        let mut acc = *sums;
        let mut odd = LaneSums::ZERO;
        let mut two = out.chunks_exact(2);
        for t in &mut two {
            add_sums(&t[0][0], &mut acc, 0);
            add_sums(&t[0][1], &mut acc, W);
            add_sums(&t[1][0], &mut odd, 0);
            add_sums(&t[1][1], &mut odd, W);
        }
        for o in two.remainder() {
            add_sums(&o[0], &mut acc, 0);
            add_sums(&o[1], &mut acc, W);
        }
        for i in 0..2 * W {
            acc.sq[i] += odd.sq[i];
            acc.cross[i] += odd.cross[i];
            acc.peak[i] = acc.peak[i].max(odd.peak[i]);
        }
        *sums = acc;
    }
}

/// The frames of `l` and `r` through the filters: per frame the `low` vector's output and
/// the `high` pipeline's, lanes 0 and 1 of the latter replaced by the unfiltered frame (the
/// stereo section's wideband sums).
#[inline(always)]
fn filter_stretch(l: &[f32], r: &[f32], f: &mut Filters, out: &mut [[[f32; W]; 2]]) {
    let mut st = *f;
    for ((&a, &b), o) in l.iter().zip(r).zip(out.iter_mut()) {
        let c = st.low_carry;
        let inputs = [[a, b, a, b, a, b, a, b], c[0], c[1], c[2]];
        let mut y = [[0f32; W]; SECTIONS];
        for k in 0..SECTIONS {
            y[k] = step(&inputs[k], &st.low[k], &mut st.low_state[k]);
        }
        st.low_carry = [y[0], y[1], y[2]];
        let y = y[3];
        let h = &st.high_out;
        let x = [a, b, h[0], h[1], h[2], h[3], h[4], h[5]];
        st.high_out = step(&x, &st.high, &mut st.high_state);
        let mut h = st.high_out;
        h[0] = a;
        h[1] = b;
        *o = [y, h];
    }
    *f = st;
}

/// [`filter_stretch`] in AVX2 and FMA instructions: the same operations in the same order
/// (the same results to the bit), with the high pipeline's shift one permute and the input
/// pair one broadcast, which the compiler does not find from the portable code.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{Coefs, Filters, SECTIONS, State, W};
    use std::arch::x86_64::*;

    type V = __m256;

    #[inline(always)]
    fn load(a: &[f32; W]) -> V {
        // SAFETY: `a` holds the eight floats read.
        unsafe { _mm256_loadu_ps(a.as_ptr()) }
    }

    #[inline(always)]
    fn store(a: &mut [f32; W], v: V) {
        // SAFETY: `a` holds the eight floats written.
        unsafe { _mm256_storeu_ps(a.as_mut_ptr(), v) }
    }

    /// `[c1, -a1, -a2]` of a section.
    #[inline(always)]
    fn coefs(c: &Coefs) -> [V; 3] {
        [load(&c.c1), load(&c.na1), load(&c.na2)]
    }

    #[inline(always)]
    fn state(s: &State) -> [V; 2] {
        [load(&s[0]), load(&s[1])]
    }

    /// [`super::step`] on vectors of one kind of section (`c1` = 2, or −2 when `high_pass`):
    /// `s1 ± 2x` as additions (the same rounding as the multiply-add by ±2), so that only
    /// two of the five operations need the multiply-add units.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn step_of_kind(x: V, c: &[V; 3], s: &mut [V; 2], high_pass: bool) -> V {
        let y = _mm256_add_ps(x, s[0]);
        let x2 = _mm256_add_ps(x, x);
        let t = if high_pass {
            _mm256_sub_ps(s[1], x2)
        } else {
            _mm256_add_ps(s[1], x2)
        };
        s[0] = _mm256_fmadd_ps(c[1], y, t);
        s[1] = _mm256_fmadd_ps(c[2], y, x);
        y
    }

    /// [`super::step`] on vectors.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn step(x: V, c: &[V; 3], s: &mut [V; 2]) -> V {
        let y = _mm256_add_ps(x, s[0]);
        s[0] = _mm256_fmadd_ps(c[1], y, _mm256_fmadd_ps(c[0], x, s[1]));
        s[1] = _mm256_fmadd_ps(c[2], y, x);
        y
    }

    /// [`super::filter_stretch`] on vectors, as a function with the target features given
    /// (the same instructions, in more registers with AVX-512's).
    macro_rules! filter_stretch {
        ($name:ident, $features:literal) => {
            #[target_feature(enable = $features)]
            pub(super) fn $name(l: &[f32], r: &[f32], f: &mut Filters, out: &mut [[[f32; W]; 2]]) {
                let low: [[V; 3]; SECTIONS] = std::array::from_fn(|k| coefs(&f.low[k]));
                let mut low_state: [[V; 2]; SECTIONS] =
                    std::array::from_fn(|k| state(&f.low_state[k]));
                let mut carry: [V; SECTIONS - 1] = std::array::from_fn(|k| load(&f.low_carry[k]));
                let high = coefs(&f.high);
                let mut high_state = state(&f.high_state);
                let mut high_out = load(&f.high_out);
                // Lanes 2..8 take lanes 0..6 of the pipeline's last output.
                let shift = _mm256_setr_epi32(0, 0, 0, 1, 2, 3, 4, 5);
                for ((&a, &b), o) in l.iter().zip(r).zip(out.iter_mut()) {
                    let pair =
                        f64::from_bits(u64::from(a.to_bits()) | (u64::from(b.to_bits()) << 32));
                    let ab = _mm256_castpd_ps(_mm256_set1_pd(pair));
                    // The low vector's sections, skewed: two high-passes, then two low-passes.
                    let inputs = [ab, carry[0], carry[1], carry[2]];
                    let mut y = [ab; SECTIONS];
                    for k in 0..SECTIONS {
                        y[k] = step_of_kind(inputs[k], &low[k], &mut low_state[k], k < 2);
                    }
                    carry = [y[0], y[1], y[2]];
                    let x = _mm256_blend_ps::<0b0000_0011>(
                        _mm256_permutevar8x32_ps(high_out, shift),
                        ab,
                    );
                    high_out = step(x, &high, &mut high_state);
                    store(&mut o[0], y[3]);
                    store(&mut o[1], _mm256_blend_ps::<0b0000_0011>(high_out, ab));
                }
                for (s, v) in f.low_state.iter_mut().zip(&low_state) {
                    store(&mut s[0], v[0]);
                    store(&mut s[1], v[1]);
                }
                for (c, v) in f.low_carry.iter_mut().zip(carry) {
                    store(c, v);
                }
                store(&mut f.high_state[0], high_state[0]);
                store(&mut f.high_state[1], high_state[1]);
                store(&mut f.high_out, high_out);
            }
        };
    }
    filter_stretch!(filter_stretch, "avx2,fma");
    filter_stretch!(filter_stretch_512, "avx2,fma,avx512f,avx512vl");
}

impl BandMeter {
    pub fn new(rate: u32) -> Self {
        let rate = f64::from(rate);
        let mut filters = Filters {
            low: [Coefs::default(); SECTIONS],
            low_state: [[[0.0; W]; 2]; SECTIONS],
            low_carry: [[0.0; W]; SECTIONS - 1],
            high: Coefs::default(),
            high_state: [[0.0; W]; 2],
            high_out: [0.0; W],
        };
        let mut gains = [1.0; 5];
        for (b, gain) in gains.iter_mut().enumerate() {
            for (k, q) in band_sections(b, rate).iter().enumerate() {
                for c in 0..2 {
                    let g = if b < 4 {
                        filters.low[k].set(2 * b + c, q, k < 2)
                    } else {
                        filters.high.set(2 * k + c, q, k < 2)
                    };
                    if c == 0 {
                        *gain *= g;
                    }
                }
            }
            if !held(b, rate) {
                *gain = 0.0;
            }
        }
        // The AVX2 path takes the low vector's sections as two high-passes then two low-passes.
        for (k, c) in filters.low.iter().enumerate() {
            let c1 = if k < 2 { -2.0 } else { 2.0 };
            debug_assert!(c.c1.iter().all(|&v| v == c1), "section {k}: {:?}", c.c1);
        }
        BandMeter {
            filters,
            block_len: ((rate * BLOCK_SECONDS).round() as usize).max(1),
            in_block: 0,
            block: LaneSums::ZERO,
            block_energy: Vec::new(),
            totals: [[0.0; 3]; 5],
            wide: [0.0; 3],
            window: [0.0; 3],
            window_blocks: 0,
            correlation_min: None,
            gains,
            peaks: [0.0; 5],
            frames: 0,
        }
    }

    /// Feeds the left and right channels (the same slice twice for a mono signal).
    pub fn feed(&mut self, l: &[f32], r: &[f32]) {
        let n = l.len().min(r.len());
        self.frames += n as u64;
        let mut at = 0;
        while at < n {
            let take = (self.block_len - self.in_block).min(n - at);
            filter_frames(
                &l[at..at + take],
                &r[at..at + take],
                &mut self.filters,
                &mut self.block,
            );
            self.in_block += take;
            at += take;
            if self.in_block == self.block_len {
                self.close_block();
            }
        }
    }

    /// Adds the current block's sums to the file's and keeps its energy per band.
    fn close_block(&mut self) {
        let s = &self.block;
        let mut energy = [0f64; 5];
        for (b, e) in energy.iter_mut().enumerate() {
            let (l, r) = LaneSums::lanes(b);
            let g = self.gains[b];
            let (ll, rr) = (g * g * f64::from(s.sq[l]), g * g * f64::from(s.sq[r]));
            let t = &mut self.totals[b];
            t[0] += ll;
            t[1] += rr;
            t[2] += g * g * f64::from(s.cross[l]);
            *e = ll + rr;
            self.peaks[b] = self.peaks[b].max(g * f64::from(s.peak[l].max(s.peak[r])));
        }
        let wide = [s.sq[W], s.sq[W + 1], s.cross[W]].map(f64::from);
        for ((t, w), v) in self.wide.iter_mut().zip(&mut self.window).zip(wide) {
            *t += v;
            *w += v;
        }
        if self.in_block == self.block_len {
            self.block_energy.push(energy);
            self.window_blocks += 1;
            if self.window_blocks == 4 {
                let [wl, wr, wlr] = self.window;
                let floor = (4 * self.block_len) as f64 * 1e-6; // −60 dBFS mean square
                if wl > floor && wr > floor {
                    let c = wlr / (wl * wr).sqrt();
                    self.correlation_min = Some(self.correlation_min.map_or(c, |m| m.min(c)));
                }
                self.window = [0.0; 3];
                self.window_blocks = 0;
            }
        }
        self.block = LaneSums::ZERO;
        self.in_block = 0;
    }

    /// The stereo section of the pair fed (as [`super::stereo::StereoMeter`] measures it, the
    /// sums kept per 100 ms block in `f32` and the 400 ms windows made of four blocks), and the
    /// bands.
    pub fn finish_with_stereo(mut self) -> (Stereo, Vec<BandMetrics>) {
        self.flush();
        let [ll, rr, lr] = self.wide;
        let stereo = Stereo::from_sums(ll, rr, lr, self.correlation_min);
        (stereo, self.metrics())
    }

    /// Brings the high band's last samples out of its pipeline and closes the last block.
    fn flush(&mut self) {
        // The high band's last three samples are still in its pipeline: three silent frames
        // bring them out (they add the band's decay to the sums, nothing else).
        if self.frames > 0 {
            let z = [0f32; 3];
            filter_frames(&z, &z, &mut self.filters, &mut self.block);
        }
        if self.in_block > 0 {
            self.close_block();
        }
    }

    pub fn finish(mut self) -> Vec<BandMetrics> {
        self.flush();
        self.metrics()
    }

    /// The bands' figures, once flushed.
    fn metrics(&self) -> Vec<BandMetrics> {
        let all: f64 = self.totals.iter().map(|t| t[0] + t[1]).sum();
        let samples = 2.0 * self.frames as f64;
        (0..BANDS.len())
            .map(|b| {
                let (name, low_hz, high_hz) = BANDS[b];
                let [ll, rr, lr] = self.totals[b];
                let energy = ll + rr;
                let sounds = energy > 0.0 && samples > 0.0;
                let rms = sounds.then(|| (energy / samples).sqrt());
                let rms_dbfs = rms.and_then(db);
                let peak_dbfs = if sounds { db(self.peaks[b]) } else { None };
                BandMetrics {
                    name,
                    low_hz,
                    high_hz,
                    share_percent: (all > 0.0 && self.gains[b] > 0.0).then(|| 100.0 * energy / all),
                    rms_dbfs,
                    peak_dbfs,
                    crest_db: rms_dbfs.zip(peak_dbfs).map(|(r, p)| p - r),
                    spread_db: spread(self.block_energy.iter().map(|e| e[b]), self.block_len),
                    width: if sounds { width(ll, rr, lr) } else { None },
                    correlation: correlation(ll, rr, lr),
                }
            })
            .collect()
    }
}

/// The spread (dB) between the 10th and 95th percentiles of a band's level over 3 s windows
/// (hop 1 s) of its 100 ms block energies, gated as the module documentation says; `None`
/// when fewer than two windows pass the gates.
fn spread(blocks: impl Iterator<Item = f64>, block_len: usize) -> Option<f64> {
    let blocks: Vec<f64> = blocks.collect();
    if blocks.len() < WINDOW_BLOCKS {
        return None;
    }
    // Mean square over a window of both channels' samples (a full-scale sine: 0.5, −3.01 dB).
    let per_window = (2 * block_len * WINDOW_BLOCKS) as f64;
    let levels: Vec<f64> = blocks
        .windows(WINDOW_BLOCKS)
        .step_by(HOP_BLOCKS)
        .map(|w| w.iter().sum::<f64>() / per_window)
        .filter(|&p| p > 0.0 && 10.0 * p.log10() > ABSOLUTE_GATE_DB)
        .collect();
    if levels.len() < 2 {
        return None;
    }
    let mean = levels.iter().sum::<f64>() / levels.len() as f64;
    let gate = 10.0 * mean.log10() + RELATIVE_GATE_DB;
    let mut gated: Vec<f64> = levels
        .iter()
        .map(|p| 10.0 * p.log10())
        .filter(|&d| d > gate)
        .collect();
    if gated.len() < 2 {
        return None;
    }
    gated.sort_by(f64::total_cmp);
    let at = |q: f64| gated[((gated.len() - 1) as f64 * q).round() as usize];
    Some(at(SPREAD_HIGH) - at(SPREAD_LOW))
}

/// The metrics of one band (see the module documentation).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct BandMetrics {
    #[serde(deserialize_with = "crate::interned::name")]
    pub name: crate::interned::Name,
    pub low_hz: f64,
    pub high_hz: f64,
    /// Share of the five bands' energy, percent.
    pub share_percent: Option<f64>,
    pub rms_dbfs: Option<f64>,
    pub peak_dbfs: Option<f64>,
    pub crest_db: Option<f64>,
    /// 10th to 95th percentile of the band's level over 3 s windows, dB.
    pub spread_db: Option<f64>,
    /// 0 (mono) .. 0.5 (unrelated) .. 1 (inverted).
    pub width: Option<f64>,
    pub correlation: Option<f64>,
}

/// The analyzer: the front pair (or the mono mix as both sides); with `stereo`, it also writes
/// the stereo section from the same pass, in place of [`super::stereo::StereoMeter`].
pub(super) struct BandsA {
    pub(super) meter: BandMeter,
    pub(super) pair: Option<(usize, usize)>,
    pub(super) stereo: bool,
    pub(super) mono: Vec<f32>,
}

impl Analyzer for BandsA {
    fn feed(&mut self, planes: &[&[f32]]) {
        match self.pair {
            Some((l, r)) => self.meter.feed(planes[l], planes[r]),
            None => {
                super::mono_into(planes, &mut self.mono);
                self.meter.feed(&self.mono, &self.mono);
            }
        }
    }
    fn finish(self: Box<Self>, r: &mut AnalysisReport) {
        if self.stereo {
            let (stereo, bands) = self.meter.finish_with_stereo();
            r.stereo = Some(Some(stereo));
            r.bands = Some(bands);
        } else {
            r.bands = Some(self.meter.finish());
        }
    }
    fn cost(&self) -> f64 {
        20.0
    }
    fn name(&self) -> &'static str {
        "bands"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_of_the_filters_gives_the_same_sums_to_the_bit() {
        // The portable loop, the AVX2 one and the AVX2 one in AVX-512's registers (where this
        // CPU has them), on two seconds of a dense master cut into uneven stretches.
        let planes = crate::signal::dense_master(48_000, 2.0, 7);
        let start = BandMeter::new(48_000).filters;
        type Stretch<'a> = &'a dyn Fn(&[f32], &[f32], &mut Filters, &mut [[[f32; W]; 2]]);
        let run = |stretch: Stretch| {
            let mut f = start;
            let mut sums = LaneSums::ZERO;
            for (l, r) in planes[0].chunks(1000).zip(planes[1].chunks(1000)) {
                filter_frames_body(l, r, &mut f, &mut sums, stretch);
            }
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            (bits(&sums.sq), bits(&sums.cross), bits(&sums.peak))
        };
        let portable = run(&filter_stretch);
        assert!(portable.0.iter().all(|&b| f32::from_bits(b) > 0.0));
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            if has!("avx2") && has!("fma") {
                // SAFETY: the CPU has AVX2 and FMA.
                let avx2 = run(&|l, r, f, o| unsafe { avx2::filter_stretch(l, r, f, o) });
                assert_eq!(avx2, portable, "AVX2");
            }
            if has!("avx2") && has!("fma") && has!("avx512f") && has!("avx512vl") {
                // SAFETY: the CPU has the features.
                let avx512 = run(&|l, r, f, o| unsafe { avx2::filter_stretch_512(l, r, f, o) });
                assert_eq!(avx512, portable, "AVX-512");
            }
        }
    }

    #[test]
    fn every_band_edge_is_minus_3_db_and_the_bands_are_power_complementary() {
        // Each edge of each band: the Butterworth pair there (the high-pass sections at the
        // lower edge, the low-pass ones at the upper) is −3.01 dB, computed from the
        // coefficients, at 44.1 and 48 kHz; and a crossover's low-pass and high-pass powers add
        // up to 1 at every frequency.
        for rate in [44_100.0, 48_000.0] {
            let gain = |sections: &[Biquad], hz: f64| {
                let w = std::f64::consts::TAU * hz / rate;
                let z1 = rustfft::num_complex::Complex::from_polar(1.0, -w);
                let z2 = z1 * z1;
                let g: f64 = sections
                    .iter()
                    .map(|q| {
                        ((q.b0 + q.b1 * z1 + q.b2 * z2) / (1.0 + q.a1 * z1 + q.a2 * z2)).norm()
                    })
                    .product();
                20.0 * g.log10()
            };
            for (b, &(_, lo, hi)) in BANDS.iter().enumerate() {
                let s = band_sections(b, rate);
                for (edge, pair) in [(lo, &s[..2]), (hi, &s[2..])] {
                    if edge >= 0.45 * rate {
                        assert_eq!(pair, [Biquad::IDENTITY; 2]);
                        continue;
                    }
                    let g = gain(pair, edge);
                    assert!(
                        (g + 3.01).abs() < 0.01,
                        "band {b} at {edge} Hz, {rate}: {g:.3} dB"
                    );
                }
            }
            for &(_, edge, _) in &BANDS[1..] {
                let [q1, q2] = BUTTERWORTH4_Q;
                let lp = [q1, q2].map(|q| Biquad::section(edge, rate, q, false));
                let hp = [q1, q2].map(|q| Biquad::section(edge, rate, q, true));
                for f in [30.0, 150.0, edge * 0.8, edge, edge * 1.25, 3000.0, 15000.0] {
                    let p = 10f64.powf(gain(&lp, f) / 10.0) + 10f64.powf(gain(&hp, f) / 10.0);
                    assert!((p - 1.0).abs() < 1e-9, "{edge} Hz crossover at {f} Hz: {p}");
                }
            }
        }
    }
}
