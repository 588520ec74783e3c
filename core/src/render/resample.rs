//! Sample-rate conversion with `rubato`.
//!
//! [`Resample`] converts any rate to any rate (as an exact rational ratio: 44.1 kHz to 48 kHz
//! is 160/147; ratios up to 64 either way), streaming: it holds at most one internal chunk of
//! input whatever the block sizes. Its output is time-aligned with its input (the filter's
//! delay is removed: output frame `m` is the signal at input time `m · in_rate / out_rate`)
//! and is exactly `round(input_frames · out_rate / in_rate)` frames long, the tail coming out
//! of [`Stage::finish`]. An internal FIFO cuts the input into the resampler's fixed chunks, so
//! the output is bit for bit the same however the input is split into blocks, and after
//! [`Stage::start`] a rerun gives the same samples. It computes in `f64` (filter tables
//! included) unless asked for `f32` ([`ResamplePrecision`]); blocks stay `f32`.
//!
//! Same rate in and out is a passthrough: blocks are not touched and `exact_bits` is kept.
//!
//! # Filters
//!
//! [`ResampleQuality::Fft`] (the default) is rubato's synchronous FFT resampler (`Fft`):
//! blocks of 1024 or more frames at the lower rate (an even multiple of the minimal block
//! `in/gcd` → `out/gcd`) are convolved by FFT with a Blackman-Harris² windowed sinc as long as
//! the block, and their spectrum cut or padded to the new rate. The cutoff is rubato's
//! automatic one for that length, which puts the stopband at Nyquist: −0.001 dB at 21.60 kHz,
//! −0.1 dB at 21.67 kHz (0.983 of the lower Nyquist frequency), −3 dB at 21.76 kHz, −100 dB at
//! 22.02 kHz, −140 dB from 22.045 kHz (figures for a lower rate of 44.1 kHz). A click rings
//! 9.2 ms either side of its peak above −120 dB. Its latency (half a block) is compensated.
//!
//! [`ResampleQuality::Sinc`] is rubato's sinc resampler (`Async::new_sinc`) at a fixed ratio:
//! - a windowed sinc (Blackman-Harris², i.e. squared) of 512 taps counted at the lower of the
//!   two rates: 512 when upsampling, `512 · in/out` rounded up to a multiple of 8 when
//!   downsampling (1120 taps at 96 kHz for 96 → 44.1 kHz), so the transition band is the same
//!   for every ratio;
//! - its cutoff (−6 dB) at 0.95 of the lower rate's Nyquist frequency;
//! - `L` sinc phases, `L` = out_rate / gcd(in, out) (160 for 44.1 → 48 kHz, 147 for 48 → 44.1
//!   kHz): every output instant then falls on a phase of the table, which is used as is
//!   (rubato's `Nearest`: a polyphase filter, exact, where cubic interpolation between phases
//!   would give the same value at 3–4× the cost). When `L` is over 1024, or the table would
//!   exceed 2²⁰ coefficients (odd ratios such as 44.1 → 47.999 kHz), the table has the largest
//!   divisor of `L` within that limit as its phase count (or the limit itself, at least 32),
//!   and rubato interpolates between phases with a cubic.
//!
//! Its measured response, the same at every ratio: −0.001 dB at 20.50 kHz (0.930), −0.1 dB at
//! 20.66 kHz (0.937), −3 dB at 20.88 kHz (0.947), −100 dB at 21.46 kHz (0.973), −140 dB from
//! 21.52 kHz (0.976); a click rings 4.3 ms either side.
//!
//! Both: nothing above the lower Nyquist frequency folds back (a 23 kHz tone at 48 kHz comes
//! out of either at −157 dB); THD+N of a 1 kHz tone at −1 dBFS is −152 dB one way and −151 dB
//! for 44.1 → 48 → 44.1 kHz (the floor of `f32` output). The FFT filter is the default because
//! it is at least as good on every one of those figures, flatter to a higher frequency, and
//! 9–12× cheaper (`cargo bench -p sluice-core --bench resample`: 1,369× against 152× real time
//! for 44.1 → 48 kHz stereo in `f64`); the sinc filter rings for a shorter time, for whoever
//! prefers that.
//!
//! # Alignment
//!
//! Raw output `j` of the sinc resampler lies at input time `(j + 1)/r − N/2 + 1/F` (`r` =
//! out/in = `L/M` in lowest terms, `N` taps, `F` phases). The stage feeds `P` zero frames
//! before the signal and drops the first `K` outputs, choosing them so that
//! `(K + 1)/r = N/2 − 1/F + P`. That has an exact solution with `P < M` whenever `F` divides
//! `L`, which the phase counts above ensure except for the odd ratios, where the stage takes
//! the `P < min(M, 65536)` that comes nearest: within `1/(2·min(M, 65536))` of a frame. The FFT
//! resampler delays by exactly half a block (the block is an even multiple, so a whole number
//! of frames).

use super::{Block, RenderError, SignalSpec, Stage, StageReport};
use rubato::audioadapter_buffers::direct::SequentialSliceOfVecs;
use rubato::{
    Async, Fft, FixedAsync, FixedSync, Indexing, Resampler, SincInterpolationParameters,
    SincInterpolationType, WindowFunction,
};

/// The sample types the resampler computes in (see [`ResamplePrecision`]).
trait Num: rubato::Sample {
    fn widen(x: f32) -> Self;
    fn narrow(self) -> f32;
}

impl Num for f64 {
    fn widen(x: f32) -> Self {
        f64::from(x)
    }
    fn narrow(self) -> f32 {
        self as f32
    }
}

impl Num for f32 {
    fn widen(x: f32) -> Self {
        x
    }
    fn narrow(self) -> f32 {
        self
    }
}

/// The arithmetic the resampler computes in (filter table, history and dot products).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ResamplePrecision {
    /// `f64`: THD+N at the floor of the `f32` samples the stage hands on (about −151 dB).
    #[default]
    Double,
    /// `f32`: about 2× cheaper for the sinc filter, THD+N about −128 dB (measured in
    /// `core/tests/resample.rs`): far under the noise of a 16-bit or lossy output (16-bit
    /// TPDF dither alone is about −92 dB under a −1 dBFS tone), not under a 24-bit one's.
    Single,
}

/// Sinc taps at the lower of the two rates ([`ResampleQuality::Sinc`]).
const SINC_LEN: usize = 512;
/// Cutoff of the sinc, relative to the lower rate's Nyquist frequency.
const SINC_CUTOFF: f32 = 0.95;
/// Most sinc phases in the table.
const MAX_PHASES: usize = 1024;
/// Fewest phases worth using when the exact count is out of reach.
const MIN_PHASES: usize = 32;
/// Most coefficients in the sinc table (taps × phases).
const TABLE_BUDGET: usize = 1 << 20;
/// Most zero frames fed in front of the signal to align it.
const MAX_LEAD: u64 = 1 << 16;
/// FFT block of [`ResampleQuality::Fft`], in frames at the lower rate.
const FFT_BLOCK: u64 = 1024;
/// Input frames per call of the sinc resampler (at least twice the sinc length).
const SINC_CHUNK: usize = 4096;
/// The largest ratio accepted either way.
const MAX_RATIO: u32 = 64;

/// Which filter [`Resample`] converts with. Both are linear-phase, alias-free to −140 dB and
/// at the `f32` floor in THD+N; see the module documentation for the measured responses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResampleQuality {
    /// FFT convolution in blocks of about 1024 frames at the lower rate (rubato's `Fft`): flat
    /// to 0.98 Nyquist, −140 dB from Nyquist, 9–12× cheaper than [`Sinc`](Self::Sinc); a
    /// longer impulse response (and latency, which the stage compensates). The default.
    #[default]
    Fft,
    /// Polyphase windowed sinc, 512 taps at the lower rate, cutoff 0.95 of its Nyquist
    /// frequency: flat to 0.93 Nyquist, −140 dB from 0.976; a third of the FFT filter's
    /// impulse response length, at 9–12× its cost.
    Sinc,
}

/// The sample-rate conversion stage.
pub struct Resample {
    target_rate: u32,
    quality: ResampleQuality,
    precision: ResamplePrecision,
    /// `None` while passing through (same rate), or before [`Stage::start`].
    engine: Option<Engine>,
    from_rate: u32,
}

impl Resample {
    /// Convert to `target_rate` Hz.
    pub fn new(target_rate: u32, quality: ResampleQuality) -> Self {
        Resample {
            target_rate,
            quality,
            precision: ResamplePrecision::Double,
            engine: None,
            from_rate: 0,
        }
    }

    /// Compute in `precision` (`Double` unless changed).
    pub fn with_precision(mut self, precision: ResamplePrecision) -> Self {
        self.precision = precision;
        self
    }

    pub fn precision(&self) -> ResamplePrecision {
        self.precision
    }

    pub fn target_rate(&self) -> u32 {
        self.target_rate
    }

    pub fn quality(&self) -> ResampleQuality {
        self.quality
    }
}

impl Stage for Resample {
    fn name(&self) -> &'static str {
        "resample"
    }

    fn start(&mut self, input: &SignalSpec) -> Result<SignalSpec, RenderError> {
        let (from, to) = (input.sample_rate, self.target_rate);
        self.from_rate = from;
        if from == to && from > 0 {
            self.engine = None;
            return Ok(input.clone());
        }
        let channels = input.channels();
        let problem = if from == 0 || to == 0 {
            Some(format!("cannot convert {from} Hz to {to} Hz"))
        } else if from.max(to) / from.min(to) >= MAX_RATIO {
            Some(format!(
                "{from} Hz to {to} Hz is a ratio of {MAX_RATIO} or more"
            ))
        } else if channels == 0 {
            Some("the signal has no channels".into())
        } else {
            None
        };
        if let Some(p) = problem {
            self.engine = None;
            return Err(RenderError::Invalid(format!("resample: {p}")));
        }
        let key = (from, channels, self.quality, self.precision);
        match &mut self.engine {
            // Building the filter is the costly part: keep it across passes.
            Some(e) if e.key() == key => e.restart(),
            slot => *slot = Some(Engine::new(key, to)),
        }
        Ok(SignalSpec {
            sample_rate: to,
            layout: input.layout.clone(),
            exact_bits: None,
        })
    }

    fn process(&mut self, block: &mut Block) {
        if let Some(e) = &mut self.engine {
            e.process(block);
        }
    }

    fn finish(&mut self, block: &mut Block) -> bool {
        if let Some(e) = &mut self.engine {
            e.finish(block);
        }
        false
    }

    fn report(&self) -> Option<StageReport> {
        self.engine.as_ref()?;
        let mut r = StageReport {
            stage: self.name().into(),
            ..StageReport::default()
        };
        r.values.insert("from_hz".into(), f64::from(self.from_rate));
        r.values.insert("to_hz".into(), f64::from(self.target_rate));
        Some(r)
    }
}

/// How the stream is fed to rubato and trimmed.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Plan {
    /// Output and input rates divided by their gcd.
    l: u64,
    m: u64,
    /// Zero frames fed in front of the signal.
    lead: usize,
    /// Resampler outputs dropped at the start.
    skip: u64,
    /// Remaining misalignment, in output frames (positive: the output is late).
    residual: f64,
}

/// The sinc filter of [`ResampleQuality::Sinc`] for `l`/`m`: (taps, phases, plan).
fn sinc_plan(l: u64, m: u64) -> (usize, usize, Plan) {
    let taps = if m > l {
        (SINC_LEN as u64 * m).div_ceil(l) as usize
    } else {
        SINC_LEN
    }
    .next_multiple_of(8);
    let cap = (TABLE_BUDGET / taps).clamp(MIN_PHASES, MAX_PHASES) as u64;
    let phases = if l <= cap {
        l
    } else {
        (MIN_PHASES as u64..=cap)
            .rev()
            .find(|d| l.is_multiple_of(*d))
            .unwrap_or(cap)
    };
    // Raw output j lies at input time (j + 1)/r − taps/2 + 1/phases − lead. Find the lead
    // that puts an output exactly (or most nearly) on input time 0:
    // (skip + 1) = l·(phases·(taps/2 + lead) − 1) / (phases·m).
    let (f, half) = (phases as i128, (taps / 2) as i128);
    let den = f * m as i128;
    let mut best = (i128::MAX, 0i128, 0i128);
    for lead in 0..(m.min(MAX_LEAD) as i128) {
        let num = (f * (half + lead) - 1) * l as i128;
        let rem = num.rem_euclid(den);
        let dist = rem.min(den - rem);
        if dist < best.0 {
            best = (dist, lead, num);
            if dist == 0 {
                break;
            }
        }
    }
    let (_, lead, num) = best;
    let k1 = (2 * num + den).div_euclid(2 * den);
    let plan = Plan {
        l,
        m,
        lead: lead as usize,
        skip: (k1 - 1) as u64,
        residual: (num - k1 * den) as f64 / den as f64,
    };
    (taps, phases as usize, plan)
}

/// The FFT block of [`ResampleQuality::Fft`] for `l`/`m`: (multiple of the minimal block,
/// plan). The multiple is even so that the filter's delay is a whole number of frames.
fn fft_plan(l: u64, m: u64) -> (u64, Plan) {
    let c = FFT_BLOCK.div_ceil(l.min(m)).next_multiple_of(2);
    let plan = Plan {
        l,
        m,
        lead: 0,
        skip: c * l / 2,
        residual: 0.0,
    };
    (c, plan)
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

type Key = (u32, usize, ResampleQuality, ResamplePrecision);

/// A running conversion in either precision.
enum Engine {
    Double(Conversion<f64>),
    Single(Conversion<f32>),
}

impl Engine {
    fn new(key: Key, to: u32) -> Engine {
        match key.3 {
            ResamplePrecision::Double => Engine::Double(Conversion::new(key, to)),
            ResamplePrecision::Single => Engine::Single(Conversion::new(key, to)),
        }
    }
    fn key(&self) -> Key {
        match self {
            Engine::Double(c) => c.key,
            Engine::Single(c) => c.key,
        }
    }
    fn restart(&mut self) {
        match self {
            Engine::Double(c) => c.restart(),
            Engine::Single(c) => c.restart(),
        }
    }
    fn process(&mut self, block: &mut Block) {
        match self {
            Engine::Double(c) => c.process(block),
            Engine::Single(c) => c.process(block),
        }
    }
    fn finish(&mut self, block: &mut Block) {
        match self {
            Engine::Double(c) => c.finish(block),
            Engine::Single(c) => c.finish(block),
        }
    }
}

/// A running conversion computing in `T`.
struct Conversion<T> {
    key: Key,
    resampler: Box<dyn Resampler<T>>,
    plan: Plan,
    /// Input frames per resampler call.
    chunk: usize,
    /// Input not yet resampled, per channel.
    fifo: Vec<Vec<T>>,
    /// Output of one resampler call.
    out: Vec<Vec<T>>,
    /// Real input frames received.
    frames_in: u64,
    /// Frames the resampler produced, and those handed on.
    produced: u64,
    emitted: u64,
}

impl<T: Num> Conversion<T> {
    fn new(key: Key, to: u32) -> Conversion<T> {
        let (from, channels, quality, _) = key;
        let g = gcd(u64::from(from), u64::from(to));
        let (l, m) = (u64::from(to) / g, u64::from(from) / g);
        let (resampler, plan, chunk): (Box<dyn Resampler<T>>, Plan, usize) = match quality {
            ResampleQuality::Sinc => {
                let (taps, phases, plan) = sinc_plan(l, m);
                // When the table has a phase for every output instant, use it as is: same
                // result as interpolating (the cubic would weigh that phase by 1), a third
                // of the cost, and it allows tables of one or two phases.
                let interpolation = if phases as u64 == l {
                    SincInterpolationType::Nearest
                } else {
                    SincInterpolationType::Cubic
                };
                let params = SincInterpolationParameters {
                    sinc_len: taps,
                    f_cutoff: Some(SINC_CUTOFF),
                    oversampling_factor: phases,
                    interpolation,
                    window: WindowFunction::BlackmanHarris2,
                };
                let chunk = SINC_CHUNK.max(2 * taps);
                let r = Async::<T>::new_sinc(
                    l as f64 / m as f64,
                    1.0,
                    &params,
                    chunk,
                    channels,
                    FixedAsync::Input,
                )
                .expect("valid sinc resampler parameters");
                (Box::new(r), plan, chunk)
            }
            ResampleQuality::Fft => {
                let (c, plan) = fft_plan(l, m);
                let chunk = (c * m) as usize;
                let r = Fft::<T>::new_custom(
                    from as usize,
                    to as usize,
                    chunk,
                    1,
                    channels,
                    WindowFunction::BlackmanHarris2,
                    FixedSync::Both,
                )
                .expect("valid FFT resampler parameters");
                debug_assert_eq!(r.input_frames_next(), chunk);
                (Box::new(r), plan, chunk)
            }
        };
        let out = vec![Vec::new(); channels];
        let mut e = Conversion {
            key,
            plan,
            chunk,
            fifo: vec![Vec::with_capacity(chunk + plan.lead); channels],
            out,
            resampler,
            frames_in: 0,
            produced: 0,
            emitted: 0,
        };
        let max_out = e.resampler.output_frames_max();
        e.out
            .iter_mut()
            .for_each(|p| p.resize(max_out, T::widen(0.0)));
        e.restart();
        e
    }

    fn restart(&mut self) {
        self.resampler.reset();
        for p in &mut self.fifo {
            p.clear();
            p.resize(self.plan.lead, T::widen(0.0));
        }
        self.frames_in = 0;
        self.produced = 0;
        self.emitted = 0;
    }

    fn process(&mut self, block: &mut Block) {
        assert_eq!(
            block.channels(),
            self.fifo.len(),
            "resample: block width differs from the started signal"
        );
        self.frames_in += block.frames() as u64;
        for (f, p) in self.fifo.iter_mut().zip(block.planes()) {
            f.extend(p.iter().map(|&x| T::widen(x)));
        }
        block.clear();
        let mut pos = 0;
        while self.fifo[0].len() - pos >= self.chunk {
            self.run(pos, None, block, u64::MAX);
            pos += self.chunk;
        }
        if pos > 0 {
            self.fifo.iter_mut().for_each(|p| {
                p.drain(..pos);
            });
        }
    }

    fn finish(&mut self, block: &mut Block) {
        block.reset(self.fifo.len());
        let (l, m) = (u128::from(self.plan.l), u128::from(self.plan.m));
        let total = ((2 * u128::from(self.frames_in) * l + m) / (2 * m)) as u64;
        let mut pos = 0;
        while self.emitted < total {
            let avail = self.fifo[0].len() - pos;
            let partial = (avail < self.chunk).then_some(avail);
            self.run(pos, partial, block, total);
            pos += avail.min(self.chunk);
        }
        self.fifo.iter_mut().for_each(Vec::clear);
    }

    /// One resampler call on the chunk at `pos` of the FIFO (zero-padded after `partial`
    /// frames); appends the outputs past the start trim to `block`, up to `limit` in all.
    fn run(&mut self, pos: usize, partial: Option<usize>, block: &mut Block, limit: u64) {
        let channels = self.fifo.len();
        let frames = self.fifo[0].len();
        let input = SequentialSliceOfVecs::new(&self.fifo, channels, frames)
            .expect("FIFO planes share one length");
        let out_frames = self.out[0].len();
        let mut output = SequentialSliceOfVecs::new_mut(&mut self.out, channels, out_frames)
            .expect("output planes share one length");
        let mut indexing = Indexing::new().input_offset(pos);
        indexing.partial_len = partial;
        let (_, n) = self
            .resampler
            .process_into_buffer(&input, &mut output, Some(&indexing))
            .expect("resampler buffers are sized for it");
        let first = self.plan.skip.saturating_sub(self.produced).min(n as u64) as usize;
        let room = limit.saturating_sub(self.emitted);
        let last = first + ((n - first) as u64).min(room) as usize;
        self.produced += n as u64;
        if last > first {
            for (d, s) in block.planes_mut().iter_mut().zip(&self.out) {
                d.extend(s[first..last].iter().map(|&x| x.narrow()));
            }
            self.emitted += (last - first) as u64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_align_exactly_for_common_rates() {
        for (from, to) in [
            (44_100u64, 48_000u64),
            (48_000, 44_100),
            (96_000, 44_100),
            (44_100, 96_000),
            (192_000, 48_000),
            (8_000, 384_000),
            (384_000, 8_000),
            (48_000, 96_000),
        ] {
            let g = gcd(from, to);
            let (taps, phases, plan) = sinc_plan(to / g, from / g);
            assert_eq!(plan.residual, 0.0, "{from}->{to}: {plan:?}");
            assert_eq!(taps % 8, 0);
            assert!(taps * phases <= TABLE_BUDGET);
        }
        // An odd pair: not exact, but far below a frame.
        let (_, _, plan) = sinc_plan(47_999, 44_100);
        assert!(plan.residual.abs() < 1e-4, "{plan:?}");
    }
}
