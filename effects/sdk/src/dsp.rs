//! Small DSP helpers for effects: level conversions, smoothing, biquads, a real FFT. Everything uses
//! [`libm`], so native and wasm32 builds compute the same numbers.

pub mod biquad;
pub mod fft;

/// `x` limited to `lo..=hi` (`lo` if `x` is NaN). Prefer it to `f32::clamp` in effects: that
/// one asserts `lo <= hi` with a formatted message, which drags core's float formatting
/// (~20 KB) into the wasm module.
#[inline]
pub fn clamp(x: f32, lo: f32, hi: f32) -> f32 {
    min(max(x, lo), hi)
}

/// [`clamp`] for `f64`.
#[inline]
pub fn clamp64(x: f64, lo: f64, hi: f64) -> f64 {
    let x = if x > lo { x } else { lo };
    if x < hi { x } else { hi }
}

/// The larger of `a` and `b`: `a` if it is larger, else `b` (so a NaN `a` gives `b`).
///
/// Use it instead of `f32::max` in per-sample code. On wasm32 `f32::max` is a call into
/// compiler-builtins' `fmaxf` (Rust's NaN rule differs from wasm's `f32.max` instruction),
/// which costs more than a compressor's whole detector; this is one compare and select on
/// every target.
#[inline(always)]
pub fn max(a: f32, b: f32) -> f32 {
    if a > b { a } else { b }
}

/// The smaller of `a` and `b`: `a` if it is smaller, else `b` (so a NaN `a` gives `b`). See
/// [`max`].
#[inline(always)]
pub fn min(a: f32, b: f32) -> f32 {
    if a < b { a } else { b }
}

/// Decibels to a linear gain.
#[inline]
pub fn db_to_gain(db: f32) -> f32 {
    // 10^(db/20) = e^(db·ln10/20); expf is several times cheaper than a general powf.
    libm::expf(db * (core::f32::consts::LN_10 / 20.0))
}

/// A linear gain (or level) in decibels; levels below 1e-12 (−240 dB) count as 1e-12.
#[inline]
pub fn gain_to_db(gain: f32) -> f32 {
    20.0 * libm::log10f(max(gain.abs(), 1e-12))
}

/// `log2(x)` for positive normal `x`, within 2e-7 plus the rounding of the `f32` result (in
/// log2 units: at most 1.2e-5 dB from 1e-12 to 1e6): the exponent
/// from the bits, the mantissa's logarithm from `ln m = 2·atanh((m−1)/(m+1))` to the 7th power
/// (the mantissa taken to [√½, √2)). No call and no branch, so that loops of it vectorise.
#[inline(always)]
pub fn fast_log2(x: f32) -> f32 {
    let bits = x.to_bits();
    let e = ((bits >> 23) & 0xff) as i32 - 127;
    let m = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000);
    let big = m > core::f32::consts::SQRT_2;
    let m = if big { m * 0.5 } else { m };
    let e = if big { e + 1 } else { e };
    let t = (m - 1.0) / (m + 1.0);
    let t2 = t * t;
    let ln = t * (2.0 + t2 * (2.0 / 3.0 + t2 * (2.0 / 5.0 + t2 * (2.0 / 7.0))));
    e as f32 + ln * core::f32::consts::LOG2_E
}

/// `2^y` for `y` in −126 … 126 (clamped there), within 3e-7 relative: the whole part into the
/// exponent bits, the rest (±½) from `e^(f·ln 2)`'s series to the 6th power. No call and no
/// branch, so that loops of it vectorise.
#[inline(always)]
pub fn fast_exp2(y: f32) -> f32 {
    let y = clamp(y, -126.0, 126.0);
    // Rounded to the nearest whole number (|y| < 2^22: adding 1.5·2^23 leaves no fraction).
    let n = (y + 12_582_912.0) - 12_582_912.0;
    let u = (y - n) * core::f32::consts::LN_2;
    let p = 1.0
        + u * (1.0
            + u * (1.0 / 2.0
                + u * (1.0 / 6.0 + u * (1.0 / 24.0 + u * (1.0 / 120.0 + u * (1.0 / 720.0))))));
    f32::from_bits((((n as i32) + 127) as u32) << 23) * p
}

/// `√x` for `x` zero or positive normal, within 3e-7 relative (a few units in the last
/// place): a reciprocal square root from the bits, three Newton steps, times `x`. On wasm32
/// `libm::sqrtf` is a bit-by-bit software loop (the `f32.sqrt` instruction is out of reach of
/// stable `no_std` Rust), many times slower than this; natively both are fast.
#[inline(always)]
pub fn fast_sqrt(x: f32) -> f32 {
    let mut r = f32::from_bits(0x5f37_5a86 - (x.to_bits() >> 1));
    let half = 0.5 * x;
    r *= 1.5 - half * r * r;
    r *= 1.5 - half * r * r;
    r *= 1.5 - half * r * r;
    x * r
}

/// `I0`, the modified Bessel function of the first kind, order zero (for Kaiser windows), by its
/// power series to a relative 1e-15.
pub fn bessel_i0(x: f64) -> f64 {
    let (mut sum, mut term, mut k) = (1.0, 1.0, 1.0);
    while term > 1e-15 * sum {
        term *= (x / (2.0 * k)) * (x / (2.0 * k));
        sum += term;
        k += 1.0;
    }
    sum
}

/// Zero for magnitudes below 1e-20: keeps feedback loops out of subnormal numbers, which are
/// slow on most CPUs (wasm has no flush-to-zero mode).
#[inline]
pub fn flush(x: f32) -> f32 {
    if x.abs() < 1e-20 { 0.0 } else { x }
}

/// The coefficient `a` of a one-pole smoother `y += (1 - a) (x - y)` whose step response
/// reaches 1 − 1/e (63 %) after `ms` milliseconds; 0 (no smoothing) for `ms <= 0`.
#[inline]
pub fn one_pole_coef(ms: f32, sample_rate: f32) -> f32 {
    let frames = ms * 0.001 * sample_rate;
    if frames <= 0.0 {
        0.0
    } else {
        libm::expf(-1.0 / frames)
    }
}

/// A linear ramp towards a target over a fixed number of frames: the smoothing for values
/// whose jumps would click (gains, mixes). It reaches the target exactly, and its path does not
/// depend on how the frames are split into blocks.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Ramp {
    value: f32,
    target: f32,
    step: f32,
    left: u32,
    frames: u32,
}

impl Ramp {
    /// A ramp resting at `value`, which will take `frames` frames for each change.
    pub const fn new(value: f32, frames: u32) -> Self {
        Ramp {
            value,
            target: value,
            step: 0.0,
            left: 0,
            frames,
        }
    }

    /// Changes the length of later ramps.
    pub fn set_frames(&mut self, frames: u32) {
        self.frames = frames;
    }

    /// Starts a ramp from the current value to `target` (nothing if it is already the target).
    pub fn set(&mut self, target: f32) {
        if target == self.target {
            return;
        }
        self.target = target;
        if self.frames == 0 {
            self.value = target;
            self.left = 0;
        } else {
            self.step = (target - self.value) / self.frames as f32;
            self.left = self.frames;
        }
    }

    /// Jumps to `target`.
    pub fn snap(&mut self, target: f32) {
        self.value = target;
        self.target = target;
        self.left = 0;
    }

    /// Advances one frame and returns the value for it.
    #[inline]
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> f32 {
        if self.left > 0 {
            self.left -= 1;
            self.value = if self.left == 0 {
                self.target
            } else {
                self.value + self.step
            };
        }
        self.value
    }

    /// The current value.
    pub fn value(&self) -> f32 {
        self.value
    }

    /// Where the ramp is going.
    pub fn target(&self) -> f32 {
        self.target
    }

    /// Whether the ramp is still moving.
    pub fn is_active(&self) -> bool {
        self.left > 0
    }
}

/// A sine LFO as a turning unit vector (sine and cosine by one complex multiplication a frame,
/// kept on the circle every 1024 frames): the sine at any fixed phase offset is one
/// multiply-add away (`sin(θ+α) = sin θ·cos α + cos θ·sin α`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Lfo {
    sin: f64,
    cos: f64,
    turn_sin: f64,
    turn_cos: f64,
    since: u32,
}

impl Lfo {
    /// An LFO at `rate_hz` starting at `phase` cycles (0..1).
    pub fn new(rate_hz: f32, sample_rate: f32, phase: f64) -> Self {
        let mut l = Lfo {
            sin: 0.0,
            cos: 1.0,
            turn_sin: 0.0,
            turn_cos: 1.0,
            since: 0,
        };
        l.set_rate(rate_hz, sample_rate);
        l.set_phase(phase);
        l
    }

    /// Changes the rate (the phase goes on from where it is).
    pub fn set_rate(&mut self, rate_hz: f32, sample_rate: f32) {
        let w = core::f64::consts::TAU * f64::from(rate_hz) / f64::from(sample_rate);
        self.turn_sin = libm::sin(w);
        self.turn_cos = libm::cos(w);
    }

    /// Moves the phase to `phase` cycles.
    pub fn set_phase(&mut self, phase: f64) {
        let a = core::f64::consts::TAU * phase;
        self.sin = libm::sin(a);
        self.cos = libm::cos(a);
    }

    /// The phase in cycles (0..1).
    pub fn phase(&self) -> f64 {
        let p = libm::atan2(self.sin, self.cos) / core::f64::consts::TAU;
        if p < 0.0 { p + 1.0 } else { p }
    }

    /// `(sin, cos)` of the phase for this frame, then one frame on.
    #[inline]
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> (f32, f32) {
        let out = (self.sin as f32, self.cos as f32);
        let s = self.sin * self.turn_cos + self.cos * self.turn_sin;
        let c = self.cos * self.turn_cos - self.sin * self.turn_sin;
        self.sin = s;
        self.cos = c;
        self.since += 1;
        if self.since == 1024 {
            self.since = 0;
            let r = 1.0 / libm::sqrt(s * s + c * c);
            self.sin *= r;
            self.cos *= r;
        }
        out
    }
}

/// `(cos α, sin α)` of a phase offset of `cycles`, for [`Lfo`]'s sine at that offset.
pub fn phase_offset(cycles: f64) -> (f32, f32) {
    let a = core::f64::consts::TAU * cycles;
    (libm::cos(a) as f32, libm::sin(a) as f32)
}

/// A delay line read at a fractional delay that may move every frame (cubic Hermite
/// interpolation between the four nearest samples): the line of a chorus or a flanger. Delays
/// are in frames from the newest sample, between 1 and `len − 3`.
pub struct ModDelay<'a> {
    buf: &'a mut [f32],
    write: usize,
}

impl<'a> ModDelay<'a> {
    /// A line over `buf` (its length the longest delay plus 3), cleared.
    pub fn new(buf: &'a mut [f32]) -> Self {
        buf.fill(0.0);
        ModDelay { buf, write: 0 }
    }

    /// Zeros the line.
    pub fn clear(&mut self) {
        self.buf.fill(0.0);
        self.write = 0;
    }

    /// The longest delay it can read, in frames.
    pub fn max_delay(&self) -> f32 {
        self.buf.len().saturating_sub(3) as f32
    }

    /// Appends the next sample.
    #[inline]
    pub fn push(&mut self, x: f32) {
        self.buf[self.write] = x;
        self.write += 1;
        if self.write == self.buf.len() {
            self.write = 0;
        }
    }

    /// The sample `m` frames before the newest (0: the newest).
    #[inline]
    fn at(&self, m: usize) -> f32 {
        let len = self.buf.len();
        self.buf[(self.write + 2 * len - 1 - m) % len]
    }

    /// The signal `delay` frames before the newest sample (clamped to 1 ..= `max_delay`).
    #[inline]
    pub fn read(&self, delay: f32) -> f32 {
        let d = clamp(delay, 1.0, self.max_delay());
        let k = d as usize;
        let t = d - k as f32;
        let (y0, y1, y2, y3) = (self.at(k - 1), self.at(k), self.at(k + 1), self.at(k + 2));
        let c1 = 0.5 * (y2 - y0);
        let c2 = y0 - 2.5 * y1 + 2.0 * y2 - 0.5 * y3;
        let c3 = 0.5 * (y3 - y0) + 1.5 * (y1 - y2);
        ((c3 * t + c2) * t + c1) * t + y1
    }
}

#[cfg(test)]
mod mod_delay_tests {
    use super::*;

    #[test]
    fn fast_log2_and_exp2_hold_their_error_bounds() {
        let mut worst_log = 0.0f64;
        let mut x = 1e-12f32;
        while x < 1e6 {
            let want = f64::from(x).log2();
            // Beside the series' 2e-7, the f32 result's own rounding.
            let err = (f64::from(fast_log2(x)) - want).abs() / (2e-7 + 1.2e-7 * want.abs());
            worst_log = worst_log.max(err);
            x *= 1.0007;
        }
        assert!(worst_log <= 1.0, "log2 off by {worst_log} of its bound");
        let mut worst_exp = 0.0f64;
        let mut y = -126.0f32;
        while y < 126.0 {
            let want = 2f64.powf(f64::from(y));
            let err = ((f64::from(fast_exp2(y)) - want) / want).abs();
            worst_exp = worst_exp.max(err);
            y += 0.0013;
        }
        assert!(worst_exp < 3e-7, "exp2 off by {worst_exp}");
    }

    #[test]
    fn fast_sqrt_holds_its_error_bound() {
        assert_eq!(fast_sqrt(0.0), 0.0);
        let mut worst = 0.0f64;
        let mut x = 1.2e-38f32;
        while x < 3e38 {
            let want = f64::from(x).sqrt();
            worst = worst.max(((f64::from(fast_sqrt(x)) - want) / want).abs());
            x *= 1.0013;
        }
        assert!(worst < 3e-7, "sqrt off by {worst}");
    }

    #[test]
    fn whole_delays_read_the_samples_and_fractions_follow_a_cubic() {
        let mut buf = [0.0f32; 16];
        let mut d = ModDelay::new(&mut buf);
        for i in 0..20 {
            d.push(i as f32);
        }
        // Newest is 19: a delay of k frames reads 19 − k; a ramp is read exactly between.
        for k in 1..12 {
            assert_eq!(d.read(k as f32), (19 - k) as f32);
            assert!((d.read(k as f32 + 0.25) - (19.0 - k as f32 - 0.25)).abs() < 1e-5);
        }
        assert_eq!(d.read(0.2), 18.0, "clamped to one frame");
    }

    #[test]
    fn an_lfo_turns_at_its_rate_and_stays_on_the_circle() {
        let mut l = Lfo::new(1_000.0, 48_000.0, 0.25);
        assert!((l.next().0 - 1.0).abs() < 1e-6);
        for _ in 0..47 {
            l.next();
        }
        assert!((l.phase() - 0.25).abs() < 1e-9, "{}", l.phase());
        // An hour at 0.3 Hz: still a unit sine, within 1e-4 of a cycle of where it should be.
        let mut l = Lfo::new(0.3, 48_000.0, 0.0);
        let frames = 3_600u64 * 48_000;
        for _ in 0..frames {
            l.next();
        }
        let want = (0.3 * frames as f64 / 48_000.0).fract();
        let off = (l.phase() - want).abs();
        assert!(off.min(1.0 - off) < 1e-4, "{} against {want}", l.phase());
        let (s, c) = l.next();
        assert!((s * s + c * c - 1.0).abs() < 1e-5);
    }
}

/// The most channels a [`Modulated`] delay serves.
pub const MODULATED_CHANNELS: usize = 8;
/// The most voices a [`Modulated`] delay reads.
pub const MODULATED_VOICES: usize = 4;

/// What a [`Modulated`] delay does (a chorus's or a flanger's parameters).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Modulation {
    pub rate_hz: f32,
    /// The swing of the delay either side of the centre, ms.
    pub depth_ms: f32,
    pub centre_ms: f32,
    /// The voices' mean returned to the line (−0.95..0.95).
    pub feedback: f32,
    /// The wet share of the output (0..1).
    pub mix: f32,
    /// 1..=[`MODULATED_VOICES`].
    pub voices: usize,
}

/// A modulated delay — the engine of a chorus and a flanger. Each channel has a line; each of
/// its voices reads it at `centre + depth·sin(2π(φ + v/voices + channel/4))`, the sine one LFO
/// at `rate_hz` (voices spread evenly in phase, each further channel a quarter turn later);
/// their mean is the wet signal, `feedback` times it goes back into the line, and the output is
/// `(1 − mix)·dry + mix·wet`. Depth, centre, feedback and mix glide over 20 ms.
pub struct Modulated<'a> {
    fs: f32,
    lines: [ModDelay<'a>; MODULATED_CHANNELS],
    channels: usize,
    lfo: Lfo,
    offsets: [[(f32, f32); MODULATED_VOICES]; MODULATED_CHANNELS],
    voices: usize,
    depth: Ramp,
    centre: Ramp,
    feedback: Ramp,
    mix: Ramp,
}

impl<'a> Modulated<'a> {
    /// Lines for `channels` (at most [`MODULATED_CHANNELS`]) of up to `max_delay_ms` each,
    /// from `arena`.
    pub fn new(
        arena: &mut crate::Arena<'a>,
        sample_rate: u32,
        channels: usize,
        max_delay_ms: f32,
        m: &Modulation,
    ) -> Result<Self, crate::InitError> {
        let fs = sample_rate as f32;
        let len = (max_delay_ms * 0.001 * fs) as usize + 4;
        let channels = channels.min(MODULATED_CHANNELS);
        let mut lines: [ModDelay<'a>; MODULATED_CHANNELS] =
            core::array::from_fn(|_| ModDelay::new(&mut []));
        for line in lines.iter_mut().take(channels) {
            *line = ModDelay::new(arena.take(len)?);
        }
        let glide = (0.02 * fs) as u32;
        let mut fx = Modulated {
            fs,
            lines,
            channels,
            lfo: Lfo::new(m.rate_hz, fs, 0.0),
            offsets: [[(1.0, 0.0); MODULATED_VOICES]; MODULATED_CHANNELS],
            voices: 1,
            depth: Ramp::new(0.0, glide),
            centre: Ramp::new(0.0, glide),
            feedback: Ramp::new(0.0, glide),
            mix: Ramp::new(0.0, glide),
        };
        fx.reset(m);
        Ok(fx)
    }

    fn frames(&self, ms: f32) -> f32 {
        ms * 0.001 * self.fs
    }

    fn set_voices(&mut self, voices: usize) {
        self.voices = voices.clamp(1, MODULATED_VOICES);
        for (ch, row) in self.offsets.iter_mut().enumerate() {
            for (v, o) in row.iter_mut().enumerate() {
                *o = phase_offset(v as f64 / self.voices as f64 + ch as f64 * 0.25);
            }
        }
    }

    /// New parameters: depth, centre, feedback and mix glide there; rate and voices change at
    /// once (the LFO's phase goes on).
    pub fn update(&mut self, m: &Modulation) {
        self.lfo.set_rate(m.rate_hz, self.fs);
        self.set_voices(m.voices);
        self.depth.set(self.frames(m.depth_ms));
        self.centre.set(self.frames(m.centre_ms));
        self.feedback.set(m.feedback);
        self.mix.set(m.mix);
    }

    /// Lines cleared, the LFO at phase 0, every value at its target.
    pub fn reset(&mut self, m: &Modulation) {
        for l in self.lines.iter_mut() {
            l.clear();
        }
        self.lfo = Lfo::new(m.rate_hz, self.fs, 0.0);
        self.set_voices(m.voices);
        self.depth.snap(self.frames(m.depth_ms));
        self.centre.snap(self.frames(m.centre_ms));
        self.feedback.snap(m.feedback);
        self.mix.snap(m.mix);
    }

    /// One block in place.
    pub fn process(&mut self, channels: &mut [&mut [f32]]) {
        let frames = channels.first().map_or(0, |c| c.len());
        let scale = 1.0 / self.voices as f32;
        for i in 0..frames {
            let (s, c) = self.lfo.next();
            let (depth, centre) = (self.depth.next(), self.centre.next());
            let (fb, mix) = (self.feedback.next(), self.mix.next());
            for (ch, chan) in channels.iter_mut().enumerate().take(self.channels) {
                let line = &mut self.lines[ch];
                let mut wet = 0.0;
                for &(ca, sa) in &self.offsets[ch][..self.voices] {
                    // The line's newest sample is the previous frame's: one frame less.
                    wet += line.read(centre + depth * (s * ca + c * sa) - 1.0);
                }
                wet *= scale;
                let x = chan[i];
                line.push(flush(x + fb * wet));
                chan[i] = (1.0 - mix) * x + mix * wet;
            }
        }
    }
}

/// Parameters that describe a [`Modulated`] delay: a chorus's, a flanger's.
pub trait Modulates: crate::Params {
    /// The longest delay a voice reads (the largest centre plus the largest depth), ms.
    const MAX_DELAY_MS: f32;
    /// The delay's settings now.
    fn modulation(&self) -> Modulation;
}

/// An effect that is a [`Modulated`] delay driven by the parameters `P` (the `chorus` and
/// `flanger` effects are this with their own descriptors).
pub struct ModulatedEffect<'a, P> {
    engine: Modulated<'a>,
    params: core::marker::PhantomData<P>,
}

impl<'a, P: Modulates> crate::Effect<'a> for ModulatedEffect<'a, P> {
    type Params = P;

    fn new(
        config: &crate::Config,
        params: &P,
        arena: &mut crate::Arena<'a>,
    ) -> Result<Self, crate::InitError> {
        let engine = Modulated::new(
            arena,
            config.sample_rate,
            config.channels,
            P::MAX_DELAY_MS,
            &params.modulation(),
        )?;
        Ok(ModulatedEffect {
            engine,
            params: core::marker::PhantomData,
        })
    }

    fn update(&mut self, params: &P) {
        self.engine.update(&params.modulation());
    }

    fn process(&mut self, channels: &mut [&mut [f32]]) {
        self.engine.process(channels);
    }

    fn reset(&mut self, params: &P) {
        self.engine.reset(&params.modulation());
    }
}
