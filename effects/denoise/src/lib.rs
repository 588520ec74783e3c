//! `denoise`: reduces stationary noise (hiss, hum's broadband bed, room tone, fans) under speech
//! and music by up to a set amount, learning the noise from the pauses.
//!
//! **Frames.** A short-time Fourier transform: frames of about 40 ms (`n` = the power of two
//! nearest above 0.04 × the sample rate: 2048 at 44.1 and 48 kHz, 1024 at 22.05 kHz), half overlapping, under a
//! square-root Hann window on the way in and out (their product sums to one, so a gain of one
//! everywhere gives back the input exactly, `n` frames late: the effect's latency).
//!
//! **The noise.** Per frequency bin, over the channels' mean power `P`: its smoothed value `S`
//! (one-pole, 0.7 per frame) and the minimum of `S` over the last 1.5 s (eight sub-windows). A
//! bin whose `S` is more than five times that minimum holds signal; elsewhere it holds only
//! noise — a pause, or a gap between a voice's harmonics — and the noise estimate `N` moves
//! towards `P` (0.95 per frame), so the estimate is learnt from the pauses, follows slow
//! changes of the noise and is never pulled up by speech. The first 0.25 s, before a minimum
//! means anything, set `N` to their mean power.
//!
//! **The gain.** Per bin, Ephraim and Malah's decision-directed a-priori SNR
//! `ξ = α·G²γ(previous frame) + (1 − α)·max(γ − 1, 0)` with `γ = P / (N·sensitivity)` and
//! `α = smoothing`, then the Wiener gain `ξ / (1 + ξ)`, never below `−reduction_db`. The slow
//! `ξ` is what keeps the residual noise free of "musical" tones (isolated bins that flicker
//! open); the floor is what leaves a natural, quieter bed instead of a gated silence. The same
//! gain goes to every channel (the stereo image stays).
#![no_std]

use sluice_effect_sdk::{
    Arena, Config, Effect, InitError,
    dsp::{db_to_gain, fft::RealFft},
    effect,
};

effect! {
    /// Parameters of `denoise`.
    pub struct DenoiseParams for Denoise {
        name: "denoise",
        version: "1.0.0",
        description: "Noise reduction: STFT (40 ms frames, half overlap), the noise learnt in pauses (power near its 1.5 s minimum), a two-step decision-directed Wiener gain floored at -reduction_db; latency one frame.",
        tail_seconds: 0.0,
        max_channels: 8,
    }
    params {
        reduction_db: { name: "Reduction", unit: "dB", min: 0.0, max: 40.0, default: 12.0 },
        sensitivity_db: { name: "Sensitivity", unit: "dB", min: -10.0, max: 10.0, default: 0.0 },
        smoothing: { name: "Smoothing", unit: "", min: 0.9, max: 0.998, default: 0.98 },
    }
}

/// Frame length in seconds (rounded up to a power of two in frames).
pub const FRAME_S: f32 = 0.04;
/// The minimum's window (s) and its sub-windows.
const MIN_WINDOW_S: f32 = 1.5;
const SUB_WINDOWS: usize = 8;
/// A bin holds signal when its smoothed power passes this multiple of the minimum.
const PRESENCE: f32 = 5.0;
/// Smoothing of the power (per frame) and of the noise estimate where it learns.
const SMOOTH_POWER: f32 = 0.7;
const SMOOTH_NOISE: f32 = 0.95;
/// The opening stretch whose mean power starts the noise estimate (s).
const START_S: f32 = 0.25;

/// The frame length at `sample_rate`.
pub fn frame_len(sample_rate: u32) -> usize {
    ((sample_rate as f32 * FRAME_S) as usize)
        .next_power_of_two()
        .max(64)
}

/// Per-bin state.
struct Bins<'a> {
    /// Noise power estimate, smoothed power, running minimum of the current sub-window,
    /// minimum over the window, `G²γ` of the previous frame, this frame's mean power and gain.
    noise: &'a mut [f32],
    smooth: &'a mut [f32],
    current_min: &'a mut [f32],
    minimum: &'a mut [f32],
    previous: &'a mut [f32],
    power: &'a mut [f32],
    gain: &'a mut [f32],
    /// The sub-windows' minima, `SUB_WINDOWS` rows of `bins`.
    sub_min: &'a mut [f32],
}

/// The noise reducer.
pub struct Denoise<'a> {
    n: usize,
    hop: usize,
    channels: usize,
    fft: RealFft<'a>,
    window: &'a mut [f32],
    /// Per channel: the last `n` input samples, the overlap-add accumulator (`n`), the hop
    /// ready to go out (`hop`), and the spectrum (`n + 2`).
    input: &'a mut [f32],
    overlap: &'a mut [f32],
    ready: &'a mut [f32],
    spectra: &'a mut [f32],
    frame: &'a mut [f32],
    bins: Bins<'a>,
    /// Samples into the current hop; frames analysed; frames per minimum sub-window and where
    /// in it; frames that start the noise estimate.
    fill: usize,
    frames: u32,
    sub_len: u32,
    sub_at: u32,
    sub_index: usize,
    start_frames: u32,
    floor: f32,
    sensitivity: f32,
    alpha: f32,
}

impl Denoise<'_> {
    fn apply(&mut self, p: &DenoiseParams) {
        self.floor = db_to_gain(-p.reduction_db);
        self.sensitivity = libm::powf(10.0, p.sensitivity_db / 10.0);
        self.alpha = p.smoothing;
    }

    fn clear(&mut self) {
        for s in [
            &mut *self.input,
            &mut *self.overlap,
            &mut *self.ready,
            &mut *self.spectra,
            &mut *self.bins.noise,
            &mut *self.bins.smooth,
            &mut *self.bins.previous,
            &mut *self.bins.power,
            &mut *self.bins.gain,
        ] {
            s.fill(0.0);
        }
        self.bins.current_min.fill(f32::MAX);
        self.bins.minimum.fill(f32::MAX);
        self.bins.sub_min.fill(f32::MAX);
        self.fill = 0;
        self.frames = 0;
        self.sub_at = 0;
        self.sub_index = 0;
    }

    /// The noise estimate per bin (for tests): `None` until the first frame.
    pub fn noise(&self) -> Option<&[f32]> {
        (self.frames > 0).then_some(&*self.bins.noise)
    }

    /// The frame length.
    pub fn frame_len(&self) -> usize {
        self.n
    }

    /// One frame: the last `n` inputs of every channel to spectra, gains, and back into the
    /// overlap-add; the oldest hop, now complete, becomes the one ready to go out.
    fn frame(&mut self) {
        let (n, hop) = (self.n, self.hop);
        self.bins.power.fill(0.0);
        let per = 1.0 / self.channels as f32;
        for c in 0..self.channels {
            for (f, (x, w)) in self
                .frame
                .iter_mut()
                .zip(self.input[c * n..(c + 1) * n].iter().zip(&*self.window))
            {
                *f = x * w;
            }
            let spec = &mut self.spectra[c * (n + 2)..(c + 1) * (n + 2)];
            self.fft.forward(self.frame, spec);
            for (p, s) in self.bins.power.iter_mut().zip(spec.chunks_exact(2)) {
                *p += (s[0] * s[0] + s[1] * s[1]) * per;
            }
        }
        self.learn();
        self.gains();
        for c in 0..self.channels {
            let spec = &mut self.spectra[c * (n + 2)..(c + 1) * (n + 2)];
            for (s, g) in spec.chunks_exact_mut(2).zip(&*self.bins.gain) {
                s[0] *= g;
                s[1] *= g;
            }
            self.fft.inverse(spec, self.frame);
            let acc = &mut self.overlap[c * n..(c + 1) * n];
            for (a, (y, w)) in acc.iter_mut().zip(self.frame.iter().zip(&*self.window)) {
                *a += y * w;
            }
            self.ready[c * hop..(c + 1) * hop].copy_from_slice(&acc[..hop]);
            acc.copy_within(hop.., 0);
            acc[n - hop..].fill(0.0);
        }
        self.frames = self.frames.saturating_add(1);
    }

    /// Updates the smoothed power, the minimum and the noise estimate from this frame's power.
    fn learn(&mut self) {
        let b = &mut self.bins;
        let first = self.frames == 0;
        for k in 0..b.power.len() {
            let p = b.power[k];
            b.smooth[k] = if first {
                p
            } else {
                SMOOTH_POWER * b.smooth[k] + (1.0 - SMOOTH_POWER) * p
            };
            b.current_min[k] = b.current_min[k].min(b.smooth[k]);
            b.minimum[k] = b.minimum[k].min(b.smooth[k]);
        }
        self.sub_at += 1;
        if self.sub_at == self.sub_len {
            // A sub-window ends: it replaces the oldest, and the window's minimum is taken anew.
            self.sub_at = 0;
            let bins = b.power.len();
            let row = &mut b.sub_min[self.sub_index * bins..(self.sub_index + 1) * bins];
            row.copy_from_slice(b.current_min);
            self.sub_index = (self.sub_index + 1) % SUB_WINDOWS;
            b.current_min.fill(f32::MAX);
            b.minimum.copy_from_slice(row);
            for r in b.sub_min.chunks_exact(bins) {
                for (m, v) in b.minimum.iter_mut().zip(r) {
                    *m = m.min(*v);
                }
            }
        }
        if self.frames < self.start_frames {
            // The opening: the least smoothed power so far (a voice from the first frame does
            // not become the noise; the estimate grows to the noise's mean from there).
            for (nz, s) in b.noise.iter_mut().zip(&*b.smooth) {
                *nz = if first { *s } else { nz.min(*s) };
            }
            return;
        }
        // A frame of noise alone: on average over the bins, its smoothed power stays within
        // PRESENCE of the least of the last 1.5 s (a pause); there every bin learns whose own
        // power stays within it too (not a tone sounding through the pause). Elsewhere a bin
        // only comes down to what it holds now (an estimate started high).
        let bins = b.power.len();
        let ratio: f32 = b
            .smooth
            .iter()
            .zip(&*b.minimum)
            .map(|(s, m)| (s / m.max(1e-30)).min(100.0))
            .sum::<f32>()
            / bins as f32;
        let pause = ratio <= PRESENCE;
        for k in 0..bins {
            if (pause && b.smooth[k] <= PRESENCE * b.minimum[k]) || b.smooth[k] < b.noise[k] {
                b.noise[k] = SMOOTH_NOISE * b.noise[k] + (1.0 - SMOOTH_NOISE) * b.power[k];
            }
        }
    }

    /// The gains of this frame (decision-directed a-priori SNR, Wiener, floored).
    fn gains(&mut self) {
        let b = &mut self.bins;
        let (alpha, floor, sens) = (self.alpha, self.floor, self.sensitivity);
        for k in 0..b.power.len() {
            let noise = b.noise[k] * sens;
            let g = if noise > 1e-30 {
                let gamma = b.power[k] / noise;
                let xi = alpha * b.previous[k] + (1.0 - alpha) * (gamma - 1.0).max(0.0);
                let g = xi / (1.0 + xi);
                // Two steps: the first gain's estimate of this frame's SNR, without the
                // decision-directed estimate's lag of a frame.
                let xi = g * g * gamma;
                let g = (xi / (1.0 + xi)).max(floor);
                b.previous[k] = g * g * gamma;
                g
            } else {
                1.0
            };
            b.gain[k] = g;
        }
    }
}

impl<'a> Effect<'a> for Denoise<'a> {
    type Params = DenoiseParams;

    fn new(config: &Config, p: &DenoiseParams, arena: &mut Arena<'a>) -> Result<Self, InitError> {
        let n = frame_len(config.sample_rate);
        let hop = n / 2;
        let ch = config.channels;
        let bins = n / 2 + 1;
        let fft = RealFft::new(n, arena)?;
        let window = arena.take(n)?;
        for (i, w) in window.iter_mut().enumerate() {
            let a = 2.0 * core::f64::consts::PI * i as f64 / n as f64;
            *w = libm::sqrt(0.5 - 0.5 * libm::cos(a)) as f32;
        }
        let frame_s = hop as f32 / config.fs();
        let [noise, smooth, current_min, minimum, previous, power, gain] = arena.take_many(bins)?;
        let mut d = Denoise {
            n,
            hop,
            channels: ch,
            fft,
            window,
            input: arena.take(n * ch)?,
            overlap: arena.take(n * ch)?,
            ready: arena.take(hop * ch)?,
            spectra: arena.take((n + 2) * ch)?,
            frame: arena.take(n)?,
            bins: Bins {
                noise,
                smooth,
                current_min,
                minimum,
                previous,
                power,
                gain,
                sub_min: arena.take(bins * SUB_WINDOWS)?,
            },
            fill: 0,
            frames: 0,
            sub_len: ((MIN_WINDOW_S / SUB_WINDOWS as f32 / frame_s) as u32).max(1),
            sub_at: 0,
            sub_index: 0,
            start_frames: ((START_S / frame_s) as u32).max(1),
            floor: 0.0,
            sensitivity: 1.0,
            alpha: 0.98,
        };
        d.apply(p);
        d.clear();
        Ok(d)
    }

    fn update(&mut self, p: &DenoiseParams) {
        self.apply(p);
    }

    fn process(&mut self, channels: &mut [&mut [f32]]) {
        let frames = channels.first().map_or(0, |c| c.len());
        let (n, hop) = (self.n, self.hop);
        let mut at = 0;
        while at < frames {
            let take = (hop - self.fill).min(frames - at);
            for (c, ch) in channels.iter_mut().enumerate().take(self.channels) {
                let input = &mut self.input[c * n..(c + 1) * n];
                let ready = &self.ready[c * hop..(c + 1) * hop];
                let part = &mut ch[at..at + take];
                // The newest hop fills the input's last `hop` places.
                input[n - hop + self.fill..n - hop + self.fill + take].copy_from_slice(part);
                part.copy_from_slice(&ready[self.fill..self.fill + take]);
            }
            self.fill += take;
            at += take;
            if self.fill == hop {
                self.fill = 0;
                self.frame();
                for c in 0..self.channels {
                    self.input[c * n..(c + 1) * n].copy_within(hop.., 0);
                }
            }
        }
    }

    fn reset(&mut self, p: &DenoiseParams) {
        self.apply(p);
        self.clear();
    }

    fn latency(&self) -> u32 {
        self.n as u32
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use sluice_effect_sdk::native::{Instance, memory, signal};
    use std::{vec, vec::Vec};

    const FS: u32 = 48_000;

    fn run(x: &[Vec<f32>], block: usize, set: &[(&str, f32)]) -> Vec<Vec<f32>> {
        let mut mem = memory();
        let mut fx = Instance::<Denoise>::new(&mut mem, FS, x.len(), block).unwrap();
        for &(id, v) in set {
            fx.set(id, v);
        }
        assert_eq!(fx.latency(), frame_len(FS));
        let mut out = x.to_vec();
        fx.run(&mut out);
        out
    }

    #[test]
    fn with_no_reduction_the_input_comes_back_one_frame_late() {
        let x = vec![
            signal::noise(1, 20_000, 0.3),
            signal::sine(440.0, 48e3, 20_000, 0.5, 0.0),
        ];
        let y = run(&x, 333, &[("reduction_db", 0.0)]);
        for (a, b) in x.iter().zip(&y) {
            let late = frame_len(FS);
            for i in 0..20_000 - late {
                assert!((a[i] - b[i + late]).abs() < 1e-5, "frame {i}");
            }
            assert!(b[..late].iter().all(|&v| v.abs() < 1e-6));
        }
    }

    #[test]
    fn steady_noise_alone_loses_the_set_reduction() {
        for reduction in [6.0f32, 12.0, 20.0] {
            let x = vec![signal::noise(4, 5 * FS as usize, 0.1)];
            let y = run(&x, 512, &[("reduction_db", reduction)]);
            let tail = 2 * FS as usize..;
            let d = signal::db(signal::rms(&y[0][tail.clone()]) / signal::rms(&x[0][tail]));
            assert!(
                (d + reduction as f64).abs() < 1.0,
                "reduction {reduction}: {d} dB"
            );
        }
    }

    /// A tone that comes and goes (400 ms on, 400 ms off, like syllables and pauses) over
    /// noise keeps its level while it sounds; the noise in the pauses loses the reduction.
    #[test]
    fn a_tone_over_noise_keeps_its_level() {
        let n = 6 * FS as usize;
        let on = |i: usize| (i / 19_200) % 2 == 1;
        let noise = signal::noise(9, n, 0.05);
        let tone = signal::sine(1000.0, 48e3, n, 0.3, 0.0);
        let x: Vec<f32> = (0..n)
            .map(|i| noise[i] + if on(i) { tone[i] } else { 0.0 })
            .collect();
        let y = run(&[x], 1024, &[]);
        // Whole "on" stretches after 2 s, taken where the output has them (one frame late),
        // less 50 ms at each edge.
        let (mut sounding, mut pauses) = (Vec::new(), (0.0, 0.0));
        for start in (2 * FS as usize..n - 19_200).step_by(19_200) {
            let part = start + 2400..start + 19_200 - 2400;
            let late = frame_len(FS);
            let out = &y[0][part.start + late..part.end + late];
            if on(start) {
                sounding.extend_from_slice(out);
            } else {
                pauses.0 += noise[part].iter().map(|v| (v * v) as f64).sum::<f64>();
                pauses.1 += out.iter().map(|v| (v * v) as f64).sum::<f64>();
            }
        }
        let d = signal::db(signal::tone_amplitude(&sounding, 1000.0, 48e3) / 0.3);
        assert!(d.abs() < 0.2, "the tone moved {d} dB");
        let p = 10.0 * (pauses.1 / pauses.0).log10();
        assert!((p + 12.0).abs() < 1.0, "the pauses' noise moved {p} dB");
    }

    #[test]
    fn block_size_does_not_matter() {
        let x = vec![signal::noise(2, 60_000, 0.2), signal::noise(3, 60_000, 0.1)];
        assert!(run(&x, 64, &[]) == run(&x, 4096, &[]));
    }
}
