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
