//! `pitch`: shifts the pitch by a number of semitones (−24 … +24, fractions allowed) without
//! changing the length, for music as well as speech.
//!
//! **How.** The pitch ratio is `r = 2^(semitones/12)`. A phase vocoder stretches time by `r`:
//! frames of about 85 ms (`n` = the power of two at or above 0.085 × the sample rate: 4096 at
//! 44.1 and 48 kHz) are read from the input every `n/8/r` frames and written out every `n/8`,
//! each bin's phase moved on by its measured frequency times the output hop. Phases are locked
//! around spectral peaks (Laroche and Dolson's identity locking: every bin takes the rotation of
//! the peak whose region — up to the lowest bin between it and the next peak — it lies in), which keeps each partial's shape — the window's main lobe —
//! intact, so a steady tone comes out as one clean tone rather than a smear of beating bins. The
//! stretched signal (analysis and synthesis Hann windows; their squares overlap-add to a
//! constant) is then read back `r` times faster by a windowed-sinc interpolator (32 taps, Kaiser
//! window, 512 sub-sample phases), which brings it to the input's length with every frequency
//! multiplied by `r`. Above unity ratio, what would fold over the output's Nyquist frequency is
//! taken out of the spectrum first.
//!
//! The read-back position of every output frame is interpolated between the analysis frames'
//! exact (fractional) input positions, so the ratio is exact however the analysis hop rounds,
//! and a change of `semitones` takes effect at the next frame without a jump in time.
//!
//! **Latency** is fixed for every shift: `n/2 + 4·(n/2 + 16) + n/8` frames (10,816 at 48 kHz,
//! 225 ms), enough for the slowest read-back (two octaves down). The tail is what the last
//! frames smear out: under 0.25 s.
#![no_std]

use core::f64::consts::PI;

use sluice_effect_sdk::{
    Arena, Config, Effect, InitError,
    dsp::{bessel_i0, fast_sqrt, fft::RealFft},
    effect, libm,
};

effect! {
    /// Parameters of `pitch`.
    pub struct PitchParams for Pitch {
        name: "pitch",
        version: "1.0.0",
        description: "Pitch shift without changing length: a phase vocoder (85 ms frames, 1/8 hop, identity phase locking) stretches time by the pitch ratio and a windowed-sinc resampler reads it back at the input's length; fixed latency.",
        tail_seconds: 0.25,
        max_channels: 8,
    }
    params {
        semitones: { name: "Shift", unit: "st", min: -24.0, max: 24.0, default: 0.0 },
    }
}

const MAX_CHANNELS: usize = 8;
/// Frame length in seconds (rounded up to a power of two in frames).
pub const FRAME_S: f32 = 0.085;
/// Frames overlapping at the synthesis hop.
const OVERLAP: usize = 8;
/// The interpolator: taps on each side, sub-sample phases, cutoff (of Nyquist), Kaiser β.
const TAPS: usize = 16;
const PHASES: usize = 512;
const CUTOFF: f64 = 0.9;
const KAISER_BETA: f64 = 9.0;
/// The lowest ratio (two octaves down): the latency is set for it.
const MIN_RATIO: f64 = 0.25;
/// Analysis positions remembered for the read-back (a power of two).
const STARTS: usize = 256;
/// Above unity ratio, the part of the band below the output's Nyquist frequency kept whole.
const BAND_KEEP: f64 = 0.9;

/// The frame length at `sample_rate`.
pub fn frame_len(sample_rate: u32) -> usize {
    ((sample_rate as f32 * FRAME_S) as usize)
        .next_power_of_two()
        .clamp(256, 65_536)
}

/// The latency in frames for frame length `n`.
pub fn latency_for(n: usize) -> usize {
    let slowest = ((n / 2 + TAPS) as f64 / MIN_RATIO) as usize;
    n / 2 + slowest + n / OVERLAP
}

/// Wraps a phase into `(−π, π]`.
fn princarg(x: f64) -> f64 {
    let turns = x / (2.0 * PI);
    // Rounded to the nearest whole turn (`as` truncates towards zero, one wasm instruction).
    let whole = (turns + if turns >= 0.0 { 0.5 } else { -0.5 }) as i64 as f64;
    x - 2.0 * PI * whole
}

/// The pitch shifter.
pub struct Pitch<'a> {
    n: usize,
    hop: usize,
    channels: usize,
    fft: RealFft<'a>,
    /// Hann window (periodic), `n`.
    window: &'a mut [f32],
    /// `PHASES + 1` rows of `2·TAPS` interpolation taps.
    kernel: &'a mut [f32],
    /// Per channel: the input ring (`2n`) and the stretched ring (`16n`).
    input: &'a mut [f32],
    stretched: &'a mut [f32],
    /// Per channel: the previous frame's analysis and synthesis spectra (`n + 2`).
    prev_x: &'a mut [f32],
    prev_y: &'a mut [f32],
    /// Scratch: one frame, one spectrum, bin powers, peak bins, per-peak rotations.
    frame: &'a mut [f32],
    spec: &'a mut [f32],
    power: &'a mut [f32],
    peaks: &'a mut [u32],
    rotations: &'a mut [f32],
    /// Exact analysis start of frame `m` at `m % STARTS`.
    starts: &'a mut [f64],
    ratio: f64,
    /// Input frames received, counted from `-n` (the ring starts as `n` frames of silence).
    received: u64,
    /// Analysis frames done; the next one's exact start; the previous one's rounded start.
    frames: u64,
    next_start: f64,
    prev_read: i64,
    /// The analysis frame the read-back is in.
    cursor: u64,
    latency: usize,
    /// Output frames that found the stretched signal not yet complete (never, by the latency's
    /// construction: the tests hold it at zero).
    late: u64,
}

impl Pitch<'_> {
    /// Output frames produced before their stretched signal was complete (zero).
    pub fn late(&self) -> u64 {
        self.late
    }

    /// The frame length.
    pub fn frame_len(&self) -> usize {
        self.n
    }

    fn in_len(&self) -> usize {
        2 * self.n
    }

    fn st_len(&self) -> usize {
        16 * self.n
    }

    fn clear(&mut self) {
        for s in [
            &mut *self.input,
            &mut *self.stretched,
            &mut *self.prev_x,
            &mut *self.prev_y,
        ] {
            s.fill(0.0);
        }
        self.starts.fill(0.0);
        self.received = self.n as u64;
        self.frames = 0;
        self.next_start = 0.0;
        self.prev_read = 0;
        self.cursor = 0;
        self.late = 0;
    }

    /// The rotation that carries peak `kp` of channel `c`'s spectrum (in `spec`) on from the
    /// previous frame, `ha` input frames later.
    fn rotation(&self, c: usize, kp: usize, ha: f64) -> (f32, f32) {
        let at = c * (self.n + 2) + 2 * kp;
        let (xr, xi) = (
            f64::from(self.spec[2 * kp]),
            f64::from(self.spec[2 * kp + 1]),
        );
        let (pr, pi) = (f64::from(self.prev_x[at]), f64::from(self.prev_x[at + 1]));
        let (yr, yi) = (f64::from(self.prev_y[at]), f64::from(self.prev_y[at + 1]));
        let (x_pow, y_pow) = (xr * xr + xi * xi, yr * yr + yi * yi);
        if x_pow == 0.0 || y_pow == 0.0 || ha <= 0.0 || pr == 0.0 && pi == 0.0 {
            // Nothing to carry on from: the analysis phase stands.
            return (1.0, 0.0);
        }
        let bin = 2.0 * PI * kp as f64 / self.n as f64;
        // The phase moved by this bin since the previous frame, less what the bin's own
        // frequency explains: the rest is the partial's offset from the bin.
        let moved = libm::atan2(xi * pr - xr * pi, xr * pr + xi * pi);
        let omega = bin + princarg(moved - bin * ha) / ha;
        let advance = omega * self.hop as f64;
        let (s, co) = (libm::sin(advance), libm::cos(advance));
        // Target phase: the previous synthesis phase moved on; the rotation takes the bin's
        // phase there: y·e^{j·advance}·conj(x) / (|y|·|x|).
        let (tr, ti) = (yr * co - yi * s, yr * s + yi * co);
        let (rr, ri) = (tr * xr + ti * xi, ti * xr - tr * xi);
        let q = x_pow * y_pow;
        // (f32's range covers every product a frame can give but the faintest; libm's f64
        // square root is a software loop in wasm.)
        let scale = if (1e-30..1e30).contains(&q) {
            1.0 / f64::from(fast_sqrt(q as f32))
        } else {
            1.0 / libm::sqrt(q)
        };
        ((rr * scale) as f32, (ri * scale) as f32)
    }

    /// Channel `c`'s spectrum (in `spec`) with its phases carried on and locked to its peaks;
    /// the previous-frame spectra move on.
    fn lock(&mut self, c: usize, ha: f64) {
        let bins = self.n / 2 + 1;
        for (p, s) in self.power.iter_mut().zip(self.spec.chunks_exact(2)) {
            *p = s[0] * s[0] + s[1] * s[1];
        }
        let mut count = 0;
        for k in 0..bins {
            let p = self.power[k];
            let peak = p > 0.0
                && (k < 1 || p > self.power[k - 1])
                && (k < 2 || p > self.power[k - 2])
                && (k + 1 >= bins || p >= self.power[k + 1])
                && (k + 2 >= bins || p >= self.power[k + 2]);
            if peak {
                self.peaks[count] = k as u32;
                count += 1;
            }
        }
        for i in 0..count {
            let (r, j) = self.rotation(c, self.peaks[i] as usize, ha);
            self.rotations[2 * i] = r;
            self.rotations[2 * i + 1] = j;
        }
        let at = c * (self.n + 2);
        self.prev_x[at..at + self.n + 2].copy_from_slice(self.spec);
        // Every bin takes the rotation of the peak whose region (halfway to the neighbours)
        // it lies in.
        let mut lo = 0;
        for i in 0..count {
            let kp = self.peaks[i] as usize;
            let hi = if i + 1 < count {
                let kq = self.peaks[i + 1] as usize;
                let mut low = kp + 1;
                for k in kp + 1..kq {
                    if self.power[k] < self.power[low] {
                        low = k;
                    }
                }
                low + 1
            } else {
                bins
            };
            let (r, j) = (self.rotations[2 * i], self.rotations[2 * i + 1]);
            for s in self.spec[2 * lo..2 * hi].chunks_exact_mut(2) {
                let (a, b) = (s[0], s[1]);
                s[0] = a * r - b * j;
                s[1] = a * j + b * r;
            }
            lo = hi;
        }
        self.prev_y[at..at + self.n + 2].copy_from_slice(self.spec);
    }

    /// Above unity ratio: what would fold over the output's Nyquist frequency, out.
    fn band_limit(&mut self) {
        if self.ratio <= 1.0 {
            return;
        }
        let top = (self.n / 2) as f64 / self.ratio;
        let keep = top * BAND_KEEP;
        for (k, s) in self.spec.chunks_exact_mut(2).enumerate() {
            let k = k as f64;
            if k > keep {
                let g = if k >= top {
                    0.0
                } else {
                    ((top - k) / (top - keep)) as f32
                };
                s[0] *= g;
                s[1] *= g;
            }
        }
    }

    /// One analysis frame from every channel's input into its stretched signal.
    fn run_frame(&mut self) {
        let (n, hop) = (self.n, self.hop);
        let (in_len, st_len) = (self.in_len(), self.st_len());
        let m = self.frames;
        // (Positions are never negative: `as` rounds them down, a single instruction in wasm,
        // where `libm`'s rounding functions are software.)
        let start = (self.next_start + 0.5) as i64;
        let ha = if m == 0 {
            0.0
        } else {
            (start - self.prev_read) as f64
        };
        self.starts[m as usize % STARTS] = self.next_start;
        let norm = 1.0 / (OVERLAP as f32 * 0.375);
        let out_at = m as usize * hop;
        for c in 0..self.channels {
            let input = &self.input[c * in_len..(c + 1) * in_len];
            for (t, (f, w)) in self.frame.iter_mut().zip(&*self.window).enumerate() {
                *f = input[(start as usize + t) & (in_len - 1)] * w;
            }
            self.fft.forward(self.frame, self.spec);
            self.lock(c, ha);
            self.band_limit();
            self.fft.inverse(self.spec, self.frame);
            let ring = &mut self.stretched[c * st_len..(c + 1) * st_len];
            // The frame's last hop lands where nothing has been added since the ring came
            // round: clear it first.
            for t in n - hop..n {
                ring[(out_at + t) & (st_len - 1)] = 0.0;
            }
            for (t, (y, w)) in self.frame.iter().zip(&*self.window).enumerate() {
                ring[(out_at + t) & (st_len - 1)] += y * w * norm;
            }
        }
        self.prev_read = start;
        self.frames += 1;
        self.next_start += hop as f64 / self.ratio;
        self.starts[self.frames as usize % STARTS] = self.next_start;
    }

    /// Where in the stretched signal the input instant `tau` (in the ring's count) lies, or
    /// `None` before the first frame.
    fn position(&mut self, tau: f64) -> Option<f64> {
        let x = tau - (self.n / 2) as f64;
        if x < 0.0 {
            return None;
        }
        let start = |m: u64| self.starts[m as usize % STARTS];
        while self.cursor < self.frames && start(self.cursor + 1) <= x {
            self.cursor += 1;
        }
        if self.cursor >= self.frames {
            self.late += 1;
            return None;
        }
        let (a, b) = (start(self.cursor), start(self.cursor + 1));
        let within = (x - a) / (b - a);
        Some((self.cursor as f64 + within) * self.hop as f64 + (self.n / 2) as f64)
    }

    /// Channel `c`'s stretched signal at position `p`.
    fn read(&self, c: usize, p: f64) -> f32 {
        let st_len = self.st_len();
        let ring = &self.stretched[c * st_len..(c + 1) * st_len];
        let base = (p as u64) as f64;
        let frac = p - base;
        let first = base as i64 - TAPS as i64 + 1;
        let phase = frac * PHASES as f64;
        let row = (phase as usize).min(PHASES - 1);
        let w = (phase - row as f64) as f32;
        let a = &self.kernel[row * 2 * TAPS..(row + 1) * 2 * TAPS];
        let b = &self.kernel[(row + 1) * 2 * TAPS..(row + 2) * 2 * TAPS];
        let (mut sa, mut sb) = (0.0f32, 0.0f32);
        let origin = first.rem_euclid(st_len as i64) as usize;
        if origin + 2 * TAPS <= st_len {
            for ((x, ka), kb) in ring[origin..origin + 2 * TAPS].iter().zip(a).zip(b) {
                sa += x * ka;
                sb += x * kb;
            }
        } else {
            for (j, (ka, kb)) in a.iter().zip(b).enumerate() {
                let x = ring[(origin + j) & (st_len - 1)];
                sa += x * ka;
                sb += x * kb;
            }
        }
        sa + w * (sb - sa)
    }
}

impl<'a> Effect<'a> for Pitch<'a> {
    type Params = PitchParams;

    fn new(
        config: &Config,
        params: &PitchParams,
        arena: &mut Arena<'a>,
    ) -> Result<Self, InitError> {
        if config.channels > MAX_CHANNELS {
            return Err(InitError::Channels);
        }
        let n = frame_len(config.sample_rate);
        let channels = config.channels;
        let window = arena.take(n)?;
        for (t, w) in window.iter_mut().enumerate() {
            *w = (0.5 - 0.5 * libm::cos(2.0 * PI * t as f64 / n as f64)) as f32;
        }
        let kernel = arena.take((PHASES + 1) * 2 * TAPS)?;
        let norm = bessel_i0(KAISER_BETA);
        for (row, taps) in kernel.chunks_exact_mut(2 * TAPS).enumerate() {
            let frac = row as f64 / PHASES as f64;
            let mut sum = 0.0;
            let mut h = [0.0f64; 2 * TAPS];
            for (j, v) in h.iter_mut().enumerate() {
                let d = j as f64 - TAPS as f64 + 1.0 - frac;
                let u = d / TAPS as f64;
                if u.abs() < 1.0 {
                    let x = PI * CUTOFF * d;
                    let sinc = if x == 0.0 { 1.0 } else { libm::sin(x) / x };
                    *v = CUTOFF * sinc * bessel_i0(KAISER_BETA * libm::sqrt(1.0 - u * u)) / norm;
                }
                sum += *v;
            }
            for (t, v) in taps.iter_mut().zip(h) {
                *t = (v / sum) as f32;
            }
        }
        let bins = n / 2 + 1;
        let mut p = Pitch {
            n,
            hop: n / OVERLAP,
            channels,
            fft: RealFft::new(n, arena)?,
            window,
            kernel,
            input: arena.take(channels * 2 * n)?,
            stretched: arena.take(channels * 16 * n)?,
            prev_x: arena.take(channels * (n + 2))?,
            prev_y: arena.take(channels * (n + 2))?,
            frame: arena.take(n)?,
            spec: arena.take(n + 2)?,
            power: arena.take(bins)?,
            peaks: arena.take_zeroed::<u32>(bins)?,
            rotations: arena.take(2 * bins)?,
            starts: arena.take_zeroed::<f64>(STARTS)?,
            ratio: 1.0,
            received: 0,
            frames: 0,
            next_start: 0.0,
            prev_read: 0,
            cursor: 0,
            latency: latency_for(n),
            late: 0,
        };
        p.reset(params);
        Ok(p)
    }

    fn update(&mut self, params: &PitchParams) {
        self.ratio = libm::pow(2.0, f64::from(params.semitones) / 12.0);
    }

    fn process(&mut self, channels: &mut [&mut [f32]]) {
        let frames = channels.first().map_or(0, |c| c.len());
        let count = channels.len().min(self.channels);
        let in_len = self.in_len();
        let delay = (self.latency + 1) as f64;
        for i in 0..frames {
            let slot = self.received as usize & (in_len - 1);
            for (c, chan) in channels[..count].iter().enumerate() {
                self.input[c * in_len + slot] = chan[i];
            }
            self.received += 1;
            while (self.next_start + 0.5) as u64 + self.n as u64 <= self.received {
                self.run_frame();
            }
            let tau = self.received as f64 - delay;
            let position = self.position(tau);
            match position {
                Some(p) => {
                    if p as u64 + TAPS as u64 >= self.frames * self.hop as u64 {
                        self.late += 1;
                    }
                    for (c, chan) in channels[..count].iter_mut().enumerate() {
                        chan[i] = self.read(c, p);
                    }
                }
                None => {
                    for chan in channels[..count].iter_mut() {
                        chan[i] = 0.0;
                    }
                }
            }
        }
    }

    fn reset(&mut self, params: &PitchParams) {
        self.update(params);
        self.clear();
    }

    fn latency(&self) -> u32 {
        self.latency as u32
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use sluice_effect_sdk::native::{Instance, memory, signal};
    use std::{vec, vec::Vec};

    const FS: usize = 48_000;

    /// The power spectrum (dB, 4-term Blackman-Harris window) of `x`'s first 65,536 samples.
    fn spectrum_db(x: &[f32]) -> Vec<f64> {
        const N: usize = 65_536;
        let mut mem = vec![0.0f32; 4 * N + 64];
        let mut arena = Arena::new(&mut mem);
        let mut fft = RealFft::new(N, &mut arena).unwrap();
        let (a0, a1, a2, a3) = (0.35875, 0.48829, 0.14128, 0.01168);
        let windowed: Vec<f32> = x[..N]
            .iter()
            .enumerate()
            .map(|(t, &v)| {
                let u = 2.0 * std::f64::consts::PI * t as f64 / N as f64;
                (f64::from(v) * (a0 - a1 * u.cos() + a2 * (2.0 * u).cos() - a3 * (3.0 * u).cos()))
                    as f32
            })
            .collect();
        let mut spec = vec![0.0f32; N + 2];
        fft.forward(&windowed, &mut spec);
        spec.chunks_exact(2)
            .map(|s| 10.0 * (f64::from(s[0]).powi(2) + f64::from(s[1]).powi(2) + 1e-30).log10())
            .collect()
    }

    /// The frequency of the strongest tone in `x` (Hann-windowed DTFT, its peak found to a
    /// thousandth of a hertz by golden-section search around the strongest bin).
    fn tone_frequency(x: &[f32]) -> f64 {
        let spec = spectrum_db(x);
        let (k, _) = spec
            .iter()
            .enumerate()
            .fold((0, f64::MIN), |b, (k, &v)| if v > b.1 { (k, v) } else { b });
        let bin = FS as f64 / 65_536.0;
        let x = &x[..65_536];
        let level = |f: f64| {
            let w = 2.0 * std::f64::consts::PI * f / FS as f64;
            let (mut re, mut im) = (0.0, 0.0);
            for (t, &v) in x.iter().enumerate() {
                let h = 0.5 - 0.5 * (2.0 * std::f64::consts::PI * t as f64 / 65_536.0).cos();
                let a = w * t as f64;
                re += f64::from(v) * h * a.cos();
                im -= f64::from(v) * h * a.sin();
            }
            re * re + im * im
        };
        let (mut lo, mut hi) = ((k as f64 - 1.0) * bin, (k as f64 + 1.0) * bin);
        let g = (5f64.sqrt() - 1.0) / 2.0;
        while hi - lo > 1e-3 {
            let (a, b) = (hi - g * (hi - lo), lo + g * (hi - lo));
            if level(a) > level(b) {
                hi = b;
            } else {
                lo = a;
            }
        }
        (lo + hi) / 2.0
    }

    /// `x` through the shifter at `semitones`, the latency dropped.
    fn shift(x: &[f32], semitones: f32) -> (Vec<f32>, u64) {
        let mut mem = memory();
        let mut fx = Instance::<Pitch>::new(&mut mem, FS as u32, 1, 512).unwrap();
        fx.set("semitones", semitones).reset();
        let latency = fx.latency();
        let mut audio = vec![
            x.iter()
                .copied()
                .chain(std::iter::repeat_n(0.0, latency))
                .collect(),
        ];
        fx.run(&mut audio);
        let late = fx.effect().late();
        (audio.remove(0).split_off(latency), late)
    }

    #[test]
    fn latency_is_fixed_and_covers_two_octaves_down() {
        assert_eq!(frame_len(48_000), 4096);
        assert_eq!(frame_len(44_100), 4096);
        assert_eq!(frame_len(96_000), 8192);
        assert_eq!(latency_for(4096), 10_816);
        let mut mem = memory();
        for st in [-24.0, 0.0, 24.0] {
            let mut fx = Instance::<Pitch>::new(&mut mem, FS as u32, 2, 512).unwrap();
            fx.set("semitones", st);
            assert_eq!(fx.latency(), 10_816);
        }
        // The largest rate's latency is under the ABI's one second.
        assert!(latency_for(frame_len(768_000)) < 768_000);
        assert!(latency_for(frame_len(8_000)) < 8_000);
    }

    #[test]
    fn a_sine_moves_by_the_interval_within_a_cent_and_adds_nothing_above_minus_60_db() {
        let x = signal::sine(440.0, FS as f64, 3 * FS + 65_536, 0.5, 0.0);
        for st in [-24.0f32, -12.0, -5.0, -0.5, 3.0, 7.0, 12.0, 19.0] {
            let (y, late) = shift(&x, st);
            assert_eq!(late, 0, "{st}: late");
            let seg = &y[FS..FS + 65_536];
            let want = 440.0 * 2f64.powf(f64::from(st) / 12.0);
            let got = tone_frequency(seg);
            let cents = 1200.0 * (got / want).log2();
            // Level kept (within 0.5 dB).
            let gain = signal::db(signal::rms(seg) / signal::rms(&x[FS..FS + 65_536]));
            // Everything outside the tone's main lobe (±8 bins of the window's ±4) at least
            // 60 dB under it.
            let spec = spectrum_db(seg);
            let k = (want / (FS as f64 / 65_536.0)).round() as usize;
            let top = spec[k - 2..k + 3].iter().cloned().fold(f64::MIN, f64::max);
            let (worst_k, worst) = spec
                .iter()
                .enumerate()
                .filter(|(j, _)| j.abs_diff(k) > 8)
                .fold((0, f64::MIN), |b, (j, &v)| if v > b.1 { (j, v) } else { b });
            std::println!(
                "{st:+} st: {got:.3} Hz for {want:.3} ({cents:+.3} cents), level {gain:+.3} dB, strongest other {:.1} dB at {:.0} Hz",
                worst - top,
                worst_k as f64 * FS as f64 / 65_536.0
            );
            assert!(cents.abs() < 1.0, "{st}: {cents} cents");
            assert!(gain.abs() < 0.5, "{st}: level {gain} dB");
            assert!(worst - top < -60.0, "{st}: a partial at {} dB", worst - top);
        }
    }

    #[test]
    fn a_chord_moves_whole() {
        // A major triad with a second harmonic on each note: every partial moves by a fourth.
        let len = 3 * FS + 65_536;
        let mut x = vec![0.0f32; len];
        let notes = [220.0, 277.18, 329.63, 440.0, 554.37, 659.26];
        for (i, f) in notes.iter().enumerate() {
            for (v, s) in x
                .iter_mut()
                .zip(signal::sine(*f, FS as f64, len, 0.1, i as f64))
            {
                *v += s;
            }
        }
        let (y, late) = shift(&x, 5.0);
        assert_eq!(late, 0);
        let ratio = 2f64.powf(5.0 / 12.0);
        let bin = FS as f64 / 65_536.0;
        let level = |spec: &[f64], f: f64| {
            let k = (f / bin).round() as usize;
            spec[k - 2..k + 3].iter().cloned().fold(f64::MIN, f64::max)
        };
        let before = spectrum_db(&x[FS..]);
        let after = spectrum_db(&y[FS..]);
        let wanted: Vec<f64> = notes.iter().map(|f| f * ratio).collect();
        let mut worst_left = f64::MIN;
        for (f, want) in notes.iter().zip(&wanted) {
            let moved = level(&after, *want) - level(&before, *f);
            assert!(moved.abs() < 1.0, "{f} Hz -> {want} Hz: {moved} dB");
            // The old partial is gone (unless another note moved onto it: E4 up a fourth is A4).
            if wanted.iter().all(|w| (w - f).abs() > 5.0) {
                let left = level(&after, *f) - level(&before, *f);
                worst_left = worst_left.max(left);
            }
        }
        // And nothing else: every bin away from the six new partials far under them.
        let top = level(&after, wanted[0]);
        let other = after
            .iter()
            .enumerate()
            .filter(|(k, _)| wanted.iter().all(|w| (*k as f64 - w / bin).abs() > 8.0))
            .fold((0, f64::MIN), |b, (k, &v)| if v > b.1 { (k, v) } else { b });
        let (other_hz, other) = (other.0 as f64 * bin, other.1);
        std::println!(
            "chord up a fourth: old partials {worst_left:.1} dB, anything else {:.1} dB (at {other_hz:.0} Hz)",
            other - top
        );
        assert!(worst_left < -60.0, "an old partial left at {worst_left} dB");
        // Close partials (57 Hz apart here, five bins) share bins at the regions' edges: what
        // that leaves is 45 dB down (measured); a sine alone is clean to -94 dB (above).
        assert!(other - top < -40.0, "something else at {} dB", other - top);
    }

    #[test]
    fn unison_passes_a_sine_through_cleanly() {
        let x = signal::sine(1_000.0, FS as f64, 2 * FS, 0.5, 0.3);
        let (y, late) = shift(&x, 0.0);
        assert_eq!(late, 0);
        let err: Vec<f32> = y[FS / 2..3 * FS / 2]
            .iter()
            .zip(&x[FS / 2..3 * FS / 2])
            .map(|(a, b)| a - b)
            .collect();
        let snr = signal::db(signal::rms(&x[FS / 2..3 * FS / 2]) / signal::rms(&err));
        assert!(snr > 60.0, "unison: {snr} dB from the input");
    }

    #[test]
    fn changes_never_starve_it_and_blocks_and_reset_do_not_matter() {
        let mut mem = memory();
        let x = signal::noise(3, 4 * FS, 0.3);
        let run = |mem: &mut Vec<f32>, blocks: &[usize]| {
            let mut fx = Instance::<Pitch>::new(mem, FS as u32, 2, 512).unwrap();
            let mut out = vec![x.clone(), x.iter().map(|v| -v).collect()];
            // Jumps across the whole range every 0.1 s.
            let steps = [-24.0, 24.0, 0.0, 11.3, -24.0, -7.0, 24.0, -24.0];
            let mut done = 0;
            let mut step = 0;
            while done < out[0].len() {
                fx.set("semitones", steps[step % steps.len()]);
                step += 1;
                let len = (FS / 10).min(out[0].len() - done);
                let mut part: Vec<Vec<f32>> =
                    out.iter().map(|c| c[done..done + len].to_vec()).collect();
                fx.run_blocks(&mut part, blocks);
                for (c, p) in out.iter_mut().zip(part) {
                    c[done..done + len].copy_from_slice(&p);
                }
                done += len;
            }
            assert_eq!(fx.effect().late(), 0, "late frames");
            assert!(out.iter().flatten().all(|v| v.is_finite()));
            out
        };
        let a = run(&mut mem, &[512]);
        let b = run(&mut mem, &[1, 77, 512, 3]);
        assert!(a == b, "the result depends on the block size");
        // Reset: the same input again gives the same output.
        let mut fx = Instance::<Pitch>::new(&mut mem, FS as u32, 1, 512).unwrap();
        fx.set("semitones", 4.0).reset();
        let mut first = vec![x[..FS].to_vec()];
        fx.run(&mut first);
        fx.reset();
        let mut again = vec![x[..FS].to_vec()];
        fx.run(&mut again);
        assert!(first == again, "reset left state behind");
    }
}
