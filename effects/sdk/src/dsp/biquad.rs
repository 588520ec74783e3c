//! Biquad filters designed by the formulas of Robert Bristow-Johnson's "Audio EQ Cookbook",
//! computed and run in `f64` (low cut-offs at high sample rates need the precision).

use core::f64::consts::PI;

/// The cookbook's filter types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Low-pass, `H(s) = 1 / (s² + s/Q + 1)`.
    Lowpass,
    /// High-pass, `H(s) = s² / (s² + s/Q + 1)`.
    Highpass,
    /// Band-pass with 0 dB peak gain, `H(s) = (s/Q) / (s² + s/Q + 1)`.
    Bandpass,
    /// Notch, `H(s) = (s² + 1) / (s² + s/Q + 1)`.
    Notch,
    /// Peaking EQ, `H(s) = (s² + s·A/Q + 1) / (s² + s/(A·Q) + 1)`.
    Peaking,
    /// Low shelf, `H(s) = A·(s² + (√A/Q)·s + A) / (A·s² + (√A/Q)·s + 1)`.
    Lowshelf,
    /// High shelf, `H(s) = A·(A·s² + (√A/Q)·s + 1) / (s² + (√A/Q)·s + A)`.
    Highshelf,
    /// All-pass, `H(s) = (s² − s/Q + 1) / (s² + s/Q + 1)`.
    Allpass,
}

/// Normalised coefficients (`a0` = 1) of `y = b0 x + b1 x1 + b2 x2 − a1 y1 − a2 y2`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Coefs {
    /// Feed-forward.
    pub b0: f64,
    /// Feed-forward.
    pub b1: f64,
    /// Feed-forward.
    pub b2: f64,
    /// Feedback.
    pub a1: f64,
    /// Feedback.
    pub a2: f64,
}

impl Coefs {
    /// Passes everything unchanged.
    pub const IDENTITY: Coefs = Coefs {
        b0: 1.0,
        b1: 0.0,
        b2: 0.0,
        a1: 0.0,
        a2: 0.0,
    };

    /// The cookbook design for `kind` at `freq` Hz (kept below 0.49 × the sample rate), quality
    /// `q` and, for peaking and shelves, `gain_db`.
    pub fn design(kind: Kind, sample_rate: f64, freq: f64, q: f64, gain_db: f64) -> Coefs {
        let f0 = super::clamp64(freq, 1.0, 0.49 * sample_rate);
        let w0 = 2.0 * PI * f0 / sample_rate;
        let (sin, cos) = (libm::sin(w0), libm::cos(w0));
        let q = q.max(1e-3);
        let alpha = sin / (2.0 * q);
        let a = libm::pow(10.0, gain_db / 40.0);
        let (b0, b1, b2, a0, a1, a2) = match kind {
            Kind::Lowpass => (
                (1.0 - cos) / 2.0,
                1.0 - cos,
                (1.0 - cos) / 2.0,
                1.0 + alpha,
                -2.0 * cos,
                1.0 - alpha,
            ),
            Kind::Highpass => (
                (1.0 + cos) / 2.0,
                -(1.0 + cos),
                (1.0 + cos) / 2.0,
                1.0 + alpha,
                -2.0 * cos,
                1.0 - alpha,
            ),
            Kind::Bandpass => (alpha, 0.0, -alpha, 1.0 + alpha, -2.0 * cos, 1.0 - alpha),
            Kind::Notch => (1.0, -2.0 * cos, 1.0, 1.0 + alpha, -2.0 * cos, 1.0 - alpha),
            Kind::Allpass => (
                1.0 - alpha,
                -2.0 * cos,
                1.0 + alpha,
                1.0 + alpha,
                -2.0 * cos,
                1.0 - alpha,
            ),
            Kind::Peaking => (
                1.0 + alpha * a,
                -2.0 * cos,
                1.0 - alpha * a,
                1.0 + alpha / a,
                -2.0 * cos,
                1.0 - alpha / a,
            ),
            Kind::Lowshelf => {
                let k = 2.0 * libm::sqrt(a) * alpha;
                (
                    a * ((a + 1.0) - (a - 1.0) * cos + k),
                    2.0 * a * ((a - 1.0) - (a + 1.0) * cos),
                    a * ((a + 1.0) - (a - 1.0) * cos - k),
                    (a + 1.0) + (a - 1.0) * cos + k,
                    -2.0 * ((a - 1.0) + (a + 1.0) * cos),
                    (a + 1.0) + (a - 1.0) * cos - k,
                )
            }
            Kind::Highshelf => {
                let k = 2.0 * libm::sqrt(a) * alpha;
                (
                    a * ((a + 1.0) + (a - 1.0) * cos + k),
                    -2.0 * a * ((a - 1.0) + (a + 1.0) * cos),
                    a * ((a + 1.0) + (a - 1.0) * cos - k),
                    (a + 1.0) - (a - 1.0) * cos + k,
                    2.0 * ((a - 1.0) - (a + 1.0) * cos),
                    (a + 1.0) - (a - 1.0) * cos - k,
                )
            }
        };
        Coefs {
            b0: b0 / a0,
            b1: b1 / a0,
            b2: b2 / a0,
            a1: a1 / a0,
            a2: a2 / a0,
        }
    }

    /// `|H(e^{jω})|` at `freq` Hz: the response these coefficients give.
    pub fn magnitude(&self, sample_rate: f64, freq: f64) -> f64 {
        let w = 2.0 * PI * freq / sample_rate;
        let (c1, s1, c2, s2) = (
            libm::cos(w),
            libm::sin(w),
            libm::cos(2.0 * w),
            libm::sin(2.0 * w),
        );
        let (nr, ni) = (
            self.b0 + self.b1 * c1 + self.b2 * c2,
            -(self.b1 * s1 + self.b2 * s2),
        );
        let (dr, di) = (
            1.0 + self.a1 * c1 + self.a2 * c2,
            -(self.a1 * s1 + self.a2 * s2),
        );
        libm::sqrt((nr * nr + ni * ni) / (dr * dr + di * di))
    }
}

/// The memory of one biquad (direct form I, which takes coefficient changes without
/// transients from stale internal state).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct State {
    x1: f64,
    x2: f64,
    y1: f64,
    y2: f64,
}

impl State {
    /// Filters one sample.
    #[inline]
    pub fn run(&mut self, c: &Coefs, x: f32) -> f32 {
        let x = x as f64;
        let mut y = c.b0 * x + c.b1 * self.x1 + c.b2 * self.x2 - c.a1 * self.y1 - c.a2 * self.y2;
        if y.abs() < 1e-30 {
            y = 0.0;
        }
        self.x2 = self.x1;
        self.x1 = x;
        self.y2 = self.y1;
        self.y1 = y;
        y as f32
    }

    /// Forgets the past.
    pub fn clear(&mut self) {
        *self = State::default();
    }
}

/// A biquad design whose frequency, Q and gain glide to new values instead of jumping: they
/// ramp (frequency and Q on a log scale, gain in dB) over a fixed time, and the coefficients
/// are recomputed every [`Smoothed::UPDATE_FRAMES`] frames of a ramp. A change of type jumps.
/// The recomputation points count frames, not blocks, so the result does not depend on the
/// host's block size.
#[derive(Clone, Copy, Debug)]
pub struct Smoothed {
    kind: Kind,
    sample_rate: f64,
    log_freq: crate::dsp::Ramp,
    log_q: crate::dsp::Ramp,
    gain_db: crate::dsp::Ramp,
    coefs: Coefs,
    phase: u32,
}

impl Smoothed {
    /// Frames between coefficient updates while gliding.
    pub const UPDATE_FRAMES: u32 = 16;

    /// A design resting at the given values; later changes glide over `ramp_frames`.
    pub fn new(
        sample_rate: f32,
        ramp_frames: u32,
        kind: Kind,
        freq: f32,
        q: f32,
        gain_db: f32,
    ) -> Self {
        let ramp = |v| crate::dsp::Ramp::new(v, ramp_frames);
        let mut s = Smoothed {
            kind,
            sample_rate: sample_rate as f64,
            log_freq: ramp(libm::log2f(freq)),
            log_q: ramp(libm::log2f(q)),
            gain_db: ramp(gain_db),
            coefs: Coefs::IDENTITY,
            phase: 0,
        };
        s.redesign();
        s
    }

    fn redesign(&mut self) {
        self.coefs = Coefs::design(
            self.kind,
            self.sample_rate,
            libm::exp2(self.log_freq.value() as f64),
            libm::exp2(self.log_q.value() as f64),
            self.gain_db.value() as f64,
        );
    }

    /// Glides to new values (jumps if `kind` changes).
    pub fn set(&mut self, kind: Kind, freq: f32, q: f32, gain_db: f32) {
        if kind != self.kind {
            self.kind = kind;
            self.snap(freq, q, gain_db);
            return;
        }
        self.log_freq.set(libm::log2f(freq));
        self.log_q.set(libm::log2f(q));
        self.gain_db.set(gain_db);
    }

    /// Jumps to new values.
    pub fn snap(&mut self, freq: f32, q: f32, gain_db: f32) {
        self.log_freq.snap(libm::log2f(freq));
        self.log_q.snap(libm::log2f(q));
        self.gain_db.snap(gain_db);
        self.phase = 0;
        self.redesign();
    }

    /// Whether a glide is in progress.
    pub fn is_gliding(&self) -> bool {
        self.log_freq.is_active() || self.log_q.is_active() || self.gain_db.is_active()
    }

    /// The coefficients for the next frame (advancing any glide by one frame).
    #[inline]
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Coefs {
        if self.is_gliding() {
            self.log_freq.next();
            self.log_q.next();
            self.gain_db.next();
            self.phase += 1;
            if self.phase == Self::UPDATE_FRAMES || !self.is_gliding() {
                self.phase = 0;
                self.redesign();
            }
        }
        self.coefs
    }

    /// The current coefficients.
    pub fn coefs(&self) -> &Coefs {
        &self.coefs
    }
}

/// A whole filter effect: one [`Smoothed`] design run on up to 32 channels, each with its own
/// [`State`] (the `eq` and `highpass` effects are this with their parameters mapped).
#[derive(Clone, Copy, Debug)]
pub struct Band {
    design: Smoothed,
    states: [State; 32],
}

impl Band {
    /// A band resting at the given values; later changes glide over `ramp_frames`.
    pub fn new(
        sample_rate: f32,
        ramp_frames: u32,
        kind: Kind,
        freq: f32,
        q: f32,
        gain_db: f32,
    ) -> Self {
        Band {
            design: Smoothed::new(sample_rate, ramp_frames, kind, freq, q, gain_db),
            states: [State::default(); 32],
        }
    }

    /// Glides to new values (jumps if `kind` changes).
    pub fn set(&mut self, kind: Kind, freq: f32, q: f32, gain_db: f32) {
        self.design.set(kind, freq, q, gain_db);
    }

    /// Jumps to new values and clears every channel's state.
    pub fn reset(&mut self, kind: Kind, freq: f32, q: f32, gain_db: f32) {
        self.design.set(kind, freq, q, gain_db);
        self.design.snap(freq, q, gain_db);
        self.states.iter_mut().for_each(State::clear);
    }

    /// Filters `channels` (at most 32) in place.
    pub fn process(&mut self, channels: &mut [&mut [f32]]) {
        // Settled (the usual case): the same coefficients for the whole block, each channel
        // in one run with its state in registers. The same numbers as the path below.
        // Channels go in pairs: their two recurrences are independent, so the processor
        // overlaps them (a biquad's speed is the latency of its feedback, not its arithmetic).
        if !self.design.is_gliding() {
            let c = *self.design.coefs();
            let mut chans = channels.iter_mut().zip(self.states.iter_mut());
            while let Some((a, sa)) = chans.next() {
                let mut s0 = *sa;
                match chans.next() {
                    Some((b, sb)) => {
                        let mut s1 = *sb;
                        for (x, y) in a.iter_mut().zip(b.iter_mut()) {
                            *x = s0.run(&c, *x);
                            *y = s1.run(&c, *y);
                        }
                        *sb = s1;
                    }
                    None => {
                        for x in a.iter_mut() {
                            *x = s0.run(&c, *x);
                        }
                    }
                }
                *sa = s0;
            }
            return;
        }
        let frames = channels.first().map_or(0, |c| c.len());
        for i in 0..frames {
            let c = self.design.next();
            for (ch, st) in channels.iter_mut().zip(&mut self.states) {
                ch[i] = st.run(&c, ch[i]);
            }
        }
    }
}
