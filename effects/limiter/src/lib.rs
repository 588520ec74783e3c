//! `limiter`: a look-ahead true-peak limiter (or, with `detection = sample-peak`, a sample-peak
//! one: the interpolated points are not looked at, the ceiling is in dBFS, and it costs a fifth
//! as much; the latency stays the same).
//!
//! Detection: every channel is interpolated 4× (a polyphase Kaiser-windowed-sinc interpolator,
//! 48 taps per phase), and for each interval between two samples the largest magnitude of its
//! ends and its three interpolated points, over all channels, is its peak (stereo-linked).
//! Gain: the gain that interval needs (target / peak, at most 1) is smoothed by an instant
//! attack / exponential release, then a running minimum over `L + 1` intervals (L = look-ahead
//! in frames) and a running mean over `L` frames turn it into a smooth ramp that has reached
//! each interval's gain by the time that interval's samples leave the delay line. The audio is
//! delayed by `L + 23` frames (the look-ahead plus the interpolator's half-length), which
//! `sluice_latency` reports.
//!
//! The target is the ceiling minus a 0.1 dB margin for the difference between this detector
//! and other true-peak meters. Measured by 4× oversampling (how BS.1770 defines true peak),
//! hot programme stays under the ceiling (tested). The ideal reconstruction can be a little
//! higher: for programme band-limited to 20 kHz at 48 kHz and driven 12 dB over, a 16×
//! FFT reconstruction read up to 0.02 dB above the ceiling; content reaching the Nyquist
//! frequency (white noise, single-sample clicks) reads differently on every meter. Changing `lookahead_ms` changes the latency and clears the
//! limiter's state (a short gap): set it before processing.
#![no_std]

use sluice_effect_sdk::{
    Arena, Config, Effect, InitError,
    dsp::{bessel_i0, db_to_gain, max, min, one_pole_coef},
    effect, libm,
};

effect! {
    /// Parameters of `limiter`.
    pub struct LimiterParams for Limiter {
        name: "limiter",
        version: "1.0.0",
        description: "Look-ahead true-peak limiter: 4x oversampled stereo-linked detection (or the samples alone: detection = sample-peak, the ceiling then in dBFS), instant attack over the look-ahead, exponential release. Latency = look-ahead + 23 frames (sluice_latency).",
        tail_seconds: 0.0,
        max_channels: 8,
    }
    params {
        ceiling_dbtp: { name: "Ceiling", unit: "dBTP", min: -24.0, max: 0.0, default: -1.0 },
        release_ms: { name: "Release", unit: "ms", min: 1.0, max: 1000.0, default: 100.0 },
        lookahead_ms: { name: "Look-ahead", unit: "ms", min: 0.5, max: 10.0, default: 2.0 },
        detection: { name: "Detection", choices: ["true-peak", "sample-peak"], default: "true-peak" },
    }
}

/// Oversampling factor of the detector.
pub const OVERSAMPLING: usize = 4;
/// Half the interpolator's taps per phase.
pub const HALF: usize = 24;
const TAPS: usize = 2 * HALF;
/// How far under the ceiling the limiter aims, in dB.
pub const MARGIN_DB: f32 = 0.1;
const MAX_LOOKAHEAD_MS: f32 = 10.0;
const KAISER_BETA: f64 = 8.0;

/// The limiter.
pub struct Limiter<'a> {
    config: Config,
    /// Interpolator taps for the phases 1/4, 2/4, 3/4.
    /// The interpolation taps by tap: the three phases' coefficients and a zero.
    taps4: [[f32; 4]; TAPS],
    /// Per channel: the last TAPS inputs, written twice (at i and i + TAPS) so they can be read
    /// as one contiguous window.
    history: [[f32; 2 * TAPS]; 8],
    hist_pos: usize,
    /// Per channel audio delay lines of `delay_len` frames.
    delays: [&'a mut [f32]; 8],
    delay_len: usize,
    delay_pos: usize,
    /// Running minimum (monotonic deque) over the last L + 1 gains: values and frame numbers.
    min_values: &'a mut [f32],
    min_frames: &'a mut [u32],
    min_head: usize,
    min_len: usize,
    /// Running mean over the last L minima.
    mean_ring: &'a mut [f32],
    mean_pos: usize,
    mean_sum: f64,
    frame: u32,
    lookahead: usize,
    target: f32,
    release: f32,
    /// Whether the interpolated points count (true peak) or the samples alone.
    true_peak: bool,
    envelope: f32,
}

/// The interpolator: for the phase `p / 4`, the weight of window sample `w` (oldest first) of
/// the 48 samples around the interval, normalised to unit DC gain.
fn design_taps() -> [[f32; TAPS]; OVERSAMPLING - 1] {
    let mut taps = [[0.0; TAPS]; OVERSAMPLING - 1];
    for (k, row) in taps.iter_mut().enumerate() {
        let d = (k + 1) as f64 / OVERSAMPLING as f64;
        let mut raw = [0.0f64; TAPS];
        for (w, c) in raw.iter_mut().enumerate() {
            let t = d + HALF as f64 - 1.0 - w as f64;
            let x = core::f64::consts::PI * t;
            let sinc = if t == 0.0 { 1.0 } else { libm::sin(x) / x };
            let r = t / HALF as f64;
            *c = sinc * bessel_i0(KAISER_BETA * libm::sqrt((1.0 - r * r).max(0.0)))
                / bessel_i0(KAISER_BETA);
        }
        let sum: f64 = raw.iter().sum();
        for (c, r) in row.iter_mut().zip(raw) {
            *c = (r / sum) as f32;
        }
    }
    taps
}

/// `taps` by tap: per tap the three phases' coefficients and a zero lane.
fn by_tap(taps: &[[f32; TAPS]; OVERSAMPLING - 1]) -> [[f32; 4]; TAPS] {
    let mut out = [[0.0; 4]; TAPS];
    for (k, lanes) in out.iter_mut().enumerate() {
        for (l, row) in taps.iter().enumerate() {
            lanes[l] = row[k];
        }
    }
    out
}

impl Limiter<'_> {
    fn apply(&mut self, p: &LimiterParams) {
        self.target = db_to_gain(p.ceiling_dbtp - MARGIN_DB);
        self.true_peak = p.detection == 0;
        self.release = one_pole_coef(p.release_ms, self.config.fs());
        let lookahead = self
            .config
            .ms_to_frames(p.lookahead_ms)
            .clamp(1, self.mean_ring.len());
        if lookahead != self.lookahead {
            self.lookahead = lookahead;
            self.clear();
        }
    }

    fn clear(&mut self) {
        self.history = [[0.0; 2 * TAPS]; 8];
        self.hist_pos = 0;
        for d in self.delays.iter_mut() {
            d.fill(0.0);
        }
        self.delay_pos = 0;
        self.min_head = 0;
        self.min_len = 0;
        self.mean_ring[..self.lookahead].fill(1.0);
        self.mean_pos = 0;
        self.mean_sum = self.lookahead as f64;
        self.frame = 0;
        self.envelope = 1.0;
    }

    /// Frames of delay between input and output.
    fn delay(&self) -> usize {
        self.lookahead + HALF - 1
    }

    /// The peak of the interval just completed (at frame n: between inputs n - 24 and n - 23),
    /// after pushing `x` of channel `c`.
    #[inline]
    fn push_and_detect(&mut self, c: usize, x: f32) -> f32 {
        let h = &mut self.history[c];
        h[self.hist_pos] = x;
        h[self.hist_pos + TAPS] = x;
        let window = &h[self.hist_pos + 1..self.hist_pos + 1 + TAPS];
        let mut peak = max(window[HALF - 1].abs(), window[HALF].abs());
        if !self.true_peak {
            return peak;
        }
        // The three interpolated phases in one pass over the window, as the lanes of one
        // 4-wide accumulator (the fourth lane's taps are zero): each lane still adds its terms in
        // tap order, so the sums are those of three separate passes, and the compiler makes one
        // vector multiply and add per tap (SSE natively, wasm SIMD in the sandbox).
        let mut acc = [0.0f32; 4];
        for (t, &s) in self.taps4.iter().zip(window) {
            for l in 0..4 {
                acc[l] += t[l] * s;
            }
        }
        let [a0, a1, a2, _] = acc;
        for acc in [a0, a1, a2] {
            peak = max(acc.abs(), peak);
        }
        peak
    }

    /// Pushes the smoothed gain of this frame into the running minimum over L + 1 frames.
    #[inline]
    fn running_min(&mut self, v: f32) -> f32 {
        let cap = self.min_values.len();
        while self.min_len > 0 {
            let back = (self.min_head + self.min_len - 1) % cap;
            if self.min_values[back] >= v {
                self.min_len -= 1;
            } else {
                break;
            }
        }
        let at = (self.min_head + self.min_len) % cap;
        self.min_values[at] = v;
        self.min_frames[at] = self.frame;
        self.min_len += 1;
        let window = self.lookahead as u32 + 1;
        while self.frame.wrapping_sub(self.min_frames[self.min_head]) >= window {
            self.min_head = (self.min_head + 1) % cap;
            self.min_len -= 1;
        }
        self.min_values[self.min_head]
    }
}

impl<'a> Effect<'a> for Limiter<'a> {
    type Params = LimiterParams;

    fn new(config: &Config, p: &LimiterParams, arena: &mut Arena<'a>) -> Result<Self, InitError> {
        let max_lookahead = config.ms_to_frames(MAX_LOOKAHEAD_MS).max(1);
        let delay_len = max_lookahead + HALF;
        let mut delays: [&'a mut [f32]; 8] = Default::default();
        for d in delays.iter_mut().take(config.channels) {
            *d = arena.take(delay_len)?;
        }
        let mut l = Limiter {
            config: *config,
            taps4: by_tap(&design_taps()),
            history: [[0.0; 2 * TAPS]; 8],
            hist_pos: 0,
            delays,
            delay_len,
            delay_pos: 0,
            min_values: arena.take(max_lookahead + 2)?,
            min_frames: arena.take_zeroed(max_lookahead + 2)?,
            min_head: 0,
            min_len: 0,
            mean_ring: arena.take(max_lookahead)?,
            mean_pos: 0,
            mean_sum: 0.0,
            frame: 0,
            lookahead: 0,
            target: 1.0,
            true_peak: true,
            release: 0.0,
            envelope: 1.0,
        };
        l.apply(p);
        l.clear();
        Ok(l)
    }

    fn update(&mut self, p: &LimiterParams) {
        self.apply(p);
    }

    fn process(&mut self, channels: &mut [&mut [f32]]) {
        let frames = channels.first().map_or(0, |c| c.len());
        let delay = self.delay();
        for i in 0..frames {
            self.hist_pos = (self.hist_pos + 1) % TAPS;
            let mut peak = 0.0f32;
            for (c, ch) in channels.iter().enumerate() {
                peak = max(self.push_and_detect(c, ch[i]), peak);
            }
            let need = if peak > self.target {
                self.target / peak
            } else {
                1.0
            };
            let released = self.release * self.envelope + (1.0 - self.release) * need;
            self.envelope = min(need, released);
            let held = self.running_min(self.envelope);
            let l = self.lookahead;
            self.mean_sum += held as f64 - self.mean_ring[self.mean_pos] as f64;
            self.mean_ring[self.mean_pos] = held;
            self.mean_pos = if self.mean_pos + 1 == l {
                0
            } else {
                self.mean_pos + 1
            };
            let gain = min((self.mean_sum / l as f64) as f32, 1.0);
            let read = (self.delay_pos + self.delay_len - delay) % self.delay_len;
            for (c, ch) in channels.iter_mut().enumerate() {
                let line = &mut self.delays[c];
                line[self.delay_pos] = ch[i];
                ch[i] = line[read] * gain;
            }
            self.delay_pos = (self.delay_pos + 1) % self.delay_len;
            self.frame = self.frame.wrapping_add(1);
        }
    }

    fn reset(&mut self, p: &LimiterParams) {
        self.apply(p);
        self.clear();
    }

    fn latency(&self) -> u32 {
        self.delay() as u32
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use sluice_effect_sdk::{
        dsp::biquad::{Coefs, Kind, State},
        native::{Instance, memory, signal},
    };
    use std::{vec, vec::Vec};

    /// In sample-peak mode no sample leaves over the ceiling (less the margin), and quiet
    /// audio passes unchanged, delayed by the same latency.
    #[test]
    fn sample_peak_mode_holds_the_samples_under_the_ceiling() {
        let mut mem = memory();
        let mut fx = Instance::<Limiter>::new(&mut mem, 48_000, 2, 512).unwrap();
        fx.set_choice("detection", "sample-peak")
            .set("ceiling_dbtp", -6.0);
        fx.reset();
        let latency = fx.latency();
        let hot: Vec<f32> = signal::noise(3, 48_000, 1.0)
            .iter()
            .map(|x| x * 2.0)
            .collect();
        let mut audio = vec![hot.clone(), signal::sine(997.0, 48_000.0, 48_000, 1.5, 0.0)];
        flush(&mut fx, &mut audio);
        let ceiling = db_to_gain(-6.0);
        let top = audio.iter().flatten().fold(0.0f32, |m, x| m.max(x.abs()));
        assert!(top <= ceiling * 1.0001, "{top} over {ceiling}");
        assert!(top > 0.9 * ceiling, "{top}: limited far under the ceiling");
        let mut fx = Instance::<Limiter>::new(&mut mem, 48_000, 1, 512).unwrap();
        fx.set_choice("detection", "sample-peak");
        fx.reset();
        assert_eq!(fx.latency(), latency);
        let quiet = signal::sine(440.0, 48_000.0, 10_000, 0.1, 0.0);
        let mut audio = vec![quiet.clone()];
        flush(&mut fx, &mut audio);
        for (i, &x) in quiet.iter().enumerate() {
            assert_eq!(audio[0][i + latency], x);
        }
    }

    /// Runs `audio` followed by the latency's worth of silence, as the host does, so the end
    /// of the input leaves the delay line too (an abrupt end has intersample peaks of its own
    /// that the limiter must see coming).
    fn flush<'m>(fx: &mut Instance<'m, Limiter<'m>>, audio: &mut [Vec<f32>]) {
        let pad = fx.latency();
        for ch in audio.iter_mut() {
            ch.extend(std::iter::repeat_n(0.0, pad));
        }
        fx.run(audio);
    }

    /// Loud programme as it comes from real sources, band-limited to 20 kHz (4th-order
    /// Butterworth): noise, a bass line, a bright tone, clicks, driven `drive_db`.
    fn programme(fs: f64, frames: usize, seed: u64, drive_db: f64) -> Vec<f32> {
        let raw = full_band(fs, frames, seed, drive_db);
        let lp = Coefs::design(
            Kind::Lowpass,
            fs,
            20_000.0,
            core::f64::consts::FRAC_1_SQRT_2,
            0.0,
        );
        let (mut a, mut b) = (State::default(), State::default());
        raw.iter().map(|&x| b.run(&lp, a.run(&lp, x))).collect()
    }

    /// The same without the band limit: white noise and single-sample clicks reach up to
    /// the Nyquist frequency, where interpolating meters disagree with each other.
    fn full_band(fs: f64, frames: usize, seed: u64, drive_db: f64) -> Vec<f32> {
        let noise = signal::noise(seed, frames, 0.4);
        let bass = signal::sine(55.0, fs, frames, 0.5, 0.0);
        let bright = signal::sine(fs / 4.0 - 3.0, fs, frames, 0.3, 0.7);
        let g = 10f64.powf(drive_db / 20.0) as f32;
        (0..frames)
            .map(|n| {
                let click = if n % 9_973 == 500 { 0.8 } else { 0.0 };
                g * (noise[n] + bass[n] + bright[n] + click)
            })
            .collect()
    }

    #[test]
    fn full_band_noise_stays_under_the_ceiling_by_the_detectors_meter() {
        let mut mem = memory();
        let mut fx = Instance::<Limiter>::new(&mut mem, 48_000, 2, 1024).unwrap();
        let mut out = vec![
            full_band(48_000.0, 96_000, 1, 12.0),
            full_band(48_000.0, 96_000, 2, 12.0),
        ];
        flush(&mut fx, &mut out);
        for ch in &out {
            let tp = signal::db(signal::true_peak(ch));
            assert!(tp <= -1.0 && tp > -2.0, "{tp}");
        }
    }

    #[test]
    fn true_peak_stays_under_the_ceiling() {
        let mut mem = memory();
        for (fs, ceiling, lookahead, release) in [
            (48_000u32, -1.0f32, 2.0f32, 100.0f32),
            (44_100, -0.1, 1.0, 20.0),
            (96_000, -6.0, 5.0, 300.0),
        ] {
            let mut fx = Instance::<Limiter>::new(&mut mem, fs, 2, 1024).unwrap();
            fx.set("ceiling_dbtp", ceiling)
                .set("lookahead_ms", lookahead)
                .set("release_ms", release);
            let frames = fs as usize * 2;
            let mut out = vec![
                programme(fs as f64, frames, 1, 12.0),
                programme(fs as f64, frames, 2, 6.0),
            ];
            let input_tp = signal::db(signal::true_peak(&out[0]));
            flush(&mut fx, &mut out);
            let mut loudest = f64::MIN;
            for (c, ch) in out.iter().enumerate() {
                let tp = signal::db(signal::true_peak(ch));
                assert!(
                    tp <= ceiling as f64,
                    "fs {fs} ch {c}: {tp} dBTP over the ceiling {ceiling}"
                );
                loudest = loudest.max(tp);
            }
            // Linked: the hotter channel sets the gain and ends up near the ceiling.
            assert!(
                loudest > ceiling as f64 - 1.0,
                "fs {fs}: {loudest} dBTP, limited far too hard"
            );
            assert!(input_tp > ceiling as f64 + 10.0);
        }
    }

    #[test]
    fn quarter_rate_sine_at_45_degrees() {
        // Samples at 0.707 of the true amplitude: a sample-peak limiter would let it through
        // 3 dB too loud.
        let mut mem = memory();
        let mut fx = Instance::<Limiter>::new(&mut mem, 48_000, 1, 512).unwrap();
        fx.set("ceiling_dbtp", -1.0);
        let mut out = vec![signal::sine(
            12_000.0,
            48_000.0,
            48_000,
            1.0,
            core::f64::consts::FRAC_PI_4,
        )];
        flush(&mut fx, &mut out);
        let tp = signal::db(signal::true_peak(&out[0]));
        assert!(tp <= -1.0 && tp > -1.3, "{tp}");
    }

    #[test]
    fn quiet_audio_passes_unchanged_after_the_reported_latency() {
        let mut mem = memory();
        for (fs, lookahead) in [(48_000u32, 2.0f32), (44_100, 0.5), (192_000, 10.0)] {
            let mut fx = Instance::<Limiter>::new(&mut mem, fs, 2, 256).unwrap();
            fx.set("lookahead_ms", lookahead);
            let latency = fx.latency();
            assert_eq!(
                latency,
                (lookahead * fs as f32 / 1000.0).round() as usize + HALF - 1
            );
            // White noise has intersample peaks well above its sample peak: keep it low.
            let input = signal::noise(3, 20_000, 0.25);
            let mut out = vec![input.clone(), signal::impulse(20_000, 100, 0.8)];
            fx.run(&mut out);
            assert!(out[0][..latency].iter().all(|&x| x == 0.0));
            assert!(
                out[0][latency..] == input[..20_000 - latency],
                "not transparent"
            );
            assert_eq!(out[1][100 + latency], 0.8);
        }
    }

    #[test]
    fn release_recovers_after_a_peak() {
        let mut mem = memory();
        let mut fx = Instance::<Limiter>::new(&mut mem, 48_000, 1, 512).unwrap();
        fx.set("ceiling_dbtp", -6.0).set("release_ms", 50.0);
        // A 0 dBFS click in a quiet tone: the gain dips ~6 dB, then recovers with 50 ms.
        let mut x = signal::sine(1_000.0, 48_000.0, 48_000, 0.1, 0.0);
        x[10_000] = 1.0;
        let input = x.clone();
        let mut out = vec![x];
        fx.run(&mut out);
        let lat = fx.latency();
        let gain = |n: usize| {
            let window = &out[0][n + lat - 24..n + lat + 24];
            signal::peak(window) / signal::peak(&input[n - 24..n + 24])
        };
        assert!(signal::db(gain(10_000 + 1_000)) > -6.0 && signal::db(gain(10_000 + 1_000)) < -0.1);
        assert!(
            signal::db(gain(30_000)) > -0.01,
            "recovered after 20 release times"
        );
    }

    #[test]
    fn block_size_does_not_change_the_result() {
        let mut mem = memory();
        let input = vec![
            programme(48_000.0, 30_000, 5, 10.0),
            programme(48_000.0, 30_000, 6, 3.0),
        ];
        let mut results = vec![];
        for blocks in [&[1024usize][..], &[1, 1023, 77]] {
            let mut fx = Instance::<Limiter>::new(&mut mem, 48_000, 2, 1024).unwrap();
            let mut out = input.clone();
            fx.run_blocks(&mut out, blocks);
            results.push(out);
        }
        assert!(
            results[0] == results[1],
            "the result depends on the block size"
        );
    }
}
