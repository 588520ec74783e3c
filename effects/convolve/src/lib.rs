//! `convolve`: convolution with an impulse response the pipeline gives as audio (a room, a
//! hall, a plate, a cabinet), `data = { ir = "irs/hall.wav" }`.
//!
//! Uniformly partitioned overlap-save convolution in the frequency domain: the response is cut
//! into partitions of `B` frames, each transformed once at init (FFT of `2B` points); every `B`
//! input frames the last `2B` input frames are transformed, the spectrum goes into a ring of
//! the last `P` spectra (`P` partitions), the ring is multiplied with the partitions' spectra and
//! summed, and the inverse transform's second half is the next `B` output frames. The output is
//! the exact convolution delayed by `B` frames, which the effect reports as its latency (so the
//! host lines it up again); the dry signal in the mix is delayed by the same `B`.
//!
//! `B` follows the response's length `L` (at the session's rate): the power of two nearest
//! above `L/16`, from 128 to 4096 frames. Longer partitions cost less per sample (fewer spectra
//! to multiply) but add latency; 4096 frames is 85 ms at 48 kHz.
//!
//! Channels: signal channel `c` is convolved with response channel `c mod n` (`n` the
//! response's channels), so a mono response serves every channel and a stereo response on a
//! stereo signal keeps left and right apart.
#![no_std]

use sluice_effect_sdk::{
    Arena, Config, Data, Effect, InitError,
    dsp::{Ramp, db_to_gain, fft::RealFft},
    effect,
};

effect! {
    /// Parameters of `convolve`.
    pub struct ConvolveParams for Convolve {
        name: "convolve",
        version: "1.0.0",
        description: "Convolution reverb: the signal convolved with an impulse response given as audio (data ir), mixed with the dry signal. Partitioned FFT convolution; its latency (128 to 4096 frames, growing with the response) is reported.",
        tail_seconds: 30,
        max_channels: 32,
    }
    params {
        mix: { name: "Mix", unit: "", min: 0.0, max: 1.0, default: 1.0 },
        gain_db: { name: "Wet gain", unit: "dB", min: -60.0, max: 24.0, default: 0.0 },
    }
    data {
        ir: { name: "Impulse response", max_channels: 32, max_seconds: 30 },
    }
}

/// The partition length for a response of `len` frames.
pub fn partition(len: usize) -> usize {
    len.div_ceil(16).next_power_of_two().clamp(128, 4096)
}

/// One signal channel's state.
struct Channel<'a> {
    /// The last `2B` input frames: the previous block, then the one being filled.
    window: &'a mut [f32],
    /// The wet output of the last full block (`B` frames).
    wet: &'a mut [f32],
    /// The ring of input spectra, `P` of them, `B + 1` bins each, real and imaginary apart.
    ring_re: &'a mut [f32],
    ring_im: &'a mut [f32],
    /// Which response channel's spectra this channel uses.
    response: usize,
}

/// The effect.
pub struct Convolve<'a> {
    /// Partition length `B` and count `P`.
    b: usize,
    parts: usize,
    /// Per response channel: `P` partition spectra of `B + 1` bins, real and imaginary apart.
    h_re: [&'a [f32]; 32],
    h_im: [&'a [f32]; 32],
    channels: [Option<Channel<'a>>; 32],
    fft: RealFft<'a>,
    /// Scratch: an interleaved spectrum (`2B + 2`), the sums (`B + 1` each), a time frame (`2B`).
    spectrum: &'a mut [f32],
    acc_re: &'a mut [f32],
    acc_im: &'a mut [f32],
    frame: &'a mut [f32],
    /// Where in the current block the next frame goes (`0..B`).
    pos: usize,
    /// The newest spectrum's place in the rings.
    head: usize,
    mix: Ramp,
    gain: Ramp,
}

fn targets(p: &ConvolveParams) -> (f32, f32) {
    (p.mix, db_to_gain(p.gain_db))
}

impl<'a> Convolve<'a> {
    /// The spectra of one response channel's partitions, real and imaginary parts apart.
    fn transform_response(
        ir: &[f32],
        b: usize,
        parts: usize,
        fft: &mut RealFft<'a>,
        arena: &mut Arena<'a>,
        spectrum: &mut [f32],
        frame: &mut [f32],
    ) -> Result<(&'a [f32], &'a [f32]), InitError> {
        let bins = b + 1;
        let re = arena.take(parts * bins)?;
        let im = arena.take(parts * bins)?;
        for p in 0..parts {
            frame.fill(0.0);
            let start = p * b;
            let end = (start + b).min(ir.len());
            frame[..end - start].copy_from_slice(&ir[start..end]);
            fft.forward(frame, spectrum);
            for k in 0..bins {
                re[p * bins + k] = spectrum[2 * k];
                im[p * bins + k] = spectrum[2 * k + 1];
            }
        }
        Ok((re, im))
    }

    /// One full block: transform the window, multiply the ring with the response, transform back
    /// into `wet`, and slide the window.
    fn block(&mut self) {
        let (b, parts) = (self.b, self.parts);
        let bins = b + 1;
        self.head = (self.head + 1) % parts;
        for ch in self.channels.iter_mut().flatten() {
            self.fft.forward(ch.window, self.spectrum);
            let at = self.head * bins;
            for k in 0..bins {
                ch.ring_re[at + k] = self.spectrum[2 * k];
                ch.ring_im[at + k] = self.spectrum[2 * k + 1];
            }
            self.acc_re.fill(0.0);
            self.acc_im.fill(0.0);
            let (h_re, h_im) = (self.h_re[ch.response], self.h_im[ch.response]);
            for p in 0..parts {
                // Partition p meets the spectrum of p blocks ago.
                let x = (self.head + parts - p) % parts * bins;
                let (xr, xi) = (&ch.ring_re[x..x + bins], &ch.ring_im[x..x + bins]);
                let (hr, hi) = (&h_re[p * bins..][..bins], &h_im[p * bins..][..bins]);
                for ((((ar, ai), (&xr, &xi)), &hr), &hi) in self
                    .acc_re
                    .iter_mut()
                    .zip(self.acc_im.iter_mut())
                    .zip(xr.iter().zip(xi))
                    .zip(hr)
                    .zip(hi)
                {
                    *ar += xr * hr - xi * hi;
                    *ai += xr * hi + xi * hr;
                }
            }
            for k in 0..bins {
                self.spectrum[2 * k] = self.acc_re[k];
                self.spectrum[2 * k + 1] = self.acc_im[k];
            }
            self.fft.inverse(self.spectrum, self.frame);
            ch.wet.copy_from_slice(&self.frame[b..]);
            ch.window.copy_within(b.., 0);
        }
    }
}

impl<'a> Effect<'a> for Convolve<'a> {
    type Params = ConvolveParams;

    fn new(
        config: &Config,
        params: &ConvolveParams,
        arena: &mut Arena<'a>,
    ) -> Result<Self, InitError> {
        let ir: Data<'a> = arena.data(0).ok_or(InitError::Unsupported)?;
        let b = partition(ir.frames());
        let parts = ir.frames().div_ceil(b);
        let bins = b + 1;
        let mut fft = RealFft::new(2 * b, arena)?;
        let spectrum = arena.take(2 * bins)?;
        let frame = arena.take(2 * b)?;
        let responses = ir.channels().min(config.channels);
        let mut h_re: [&'a [f32]; 32] = [&[]; 32];
        let mut h_im: [&'a [f32]; 32] = [&[]; 32];
        for r in 0..responses {
            let (re, im) = Self::transform_response(
                ir.channel(r),
                b,
                parts,
                &mut fft,
                arena,
                spectrum,
                frame,
            )?;
            h_re[r] = re;
            h_im[r] = im;
        }
        let mut channels: [Option<Channel<'a>>; 32] = Default::default();
        for (c, slot) in channels.iter_mut().enumerate().take(config.channels) {
            *slot = Some(Channel {
                window: arena.take(2 * b)?,
                wet: arena.take(b)?,
                ring_re: arena.take(parts * bins)?,
                ring_im: arena.take(parts * bins)?,
                response: c % ir.channels(),
            });
        }
        let (mix, gain) = targets(params);
        let ramp = config.ms_to_frames(20.0) as u32;
        Ok(Convolve {
            b,
            parts,
            h_re,
            h_im,
            channels,
            fft,
            spectrum,
            acc_re: arena.take(bins)?,
            acc_im: arena.take(bins)?,
            frame,
            pos: 0,
            head: 0,
            mix: Ramp::new(mix, ramp),
            gain: Ramp::new(gain, ramp),
        })
    }

    fn update(&mut self, params: &ConvolveParams) {
        let (mix, gain) = targets(params);
        self.mix.set(mix);
        self.gain.set(gain);
    }

    fn process(&mut self, channels: &mut [&mut [f32]]) {
        let frames = channels.first().map_or(0, |c| c.len());
        let b = self.b;
        let mut at = 0;
        while at < frames {
            let n = (b - self.pos).min(frames - at);
            let (pos, mix0, gain0) = (self.pos, self.mix, self.gain);
            for (io, ch) in channels.iter_mut().zip(self.channels.iter_mut().flatten()) {
                let (mut mix, mut gain) = (mix0, gain0);
                let io = &mut io[at..at + n];
                let (dry, fill) = ch.window.split_at_mut(b);
                fill[pos..pos + n].copy_from_slice(io);
                for ((y, &d), &w) in io
                    .iter_mut()
                    .zip(&dry[pos..pos + n])
                    .zip(&ch.wet[pos..pos + n])
                {
                    let m = mix.next();
                    let g = gain.next();
                    *y = d + m * (w * g - d);
                }
                self.mix = mix;
                self.gain = gain;
            }
            if channels.is_empty() {
                for _ in 0..n {
                    self.mix.next();
                    self.gain.next();
                }
            }
            self.pos += n;
            at += n;
            if self.pos == b {
                self.pos = 0;
                self.block();
            }
        }
    }

    fn reset(&mut self, params: &ConvolveParams) {
        for ch in self.channels.iter_mut().flatten() {
            ch.window.fill(0.0);
            ch.wet.fill(0.0);
            ch.ring_re.fill(0.0);
            ch.ring_im.fill(0.0);
        }
        self.pos = 0;
        self.head = 0;
        let (mix, gain) = targets(params);
        self.mix.snap(mix);
        self.gain.snap(gain);
    }

    fn latency(&self) -> u32 {
        self.b as u32
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use sluice_effect_sdk::native::{Instance, memory, signal};
    use std::{vec, vec::Vec};

    /// The full linear convolution of `x` and `h`, in f64, straight from the definition (the
    /// reference: no FFT involved).
    fn direct(x: &[f32], h: &[f32]) -> Vec<f64> {
        let mut y = vec![0.0f64; x.len() + h.len() - 1];
        for (i, &a) in x.iter().enumerate() {
            if a == 0.0 {
                continue;
            }
            for (j, &c) in h.iter().enumerate() {
                y[i + j] += f64::from(a) * f64::from(c);
            }
        }
        y
    }

    /// A decaying noise response, like a small room's.
    fn room(seed: u64, frames: usize, fs: f32) -> Vec<f32> {
        let n = signal::noise(seed, frames, 0.5);
        n.iter()
            .enumerate()
            .map(|(i, v)| v * sluice_effect_sdk::libm::expf(-(i as f32) / (0.08 * fs)))
            .collect()
    }

    fn run(
        input: &[Vec<f32>],
        ir: &[Vec<f32>],
        fs: u32,
        blocks: &[usize],
        mix: f32,
    ) -> (Vec<Vec<f32>>, usize) {
        let mut mem = memory();
        let mut fx =
            Instance::<Convolve>::with_data(&mut mem, fs, input.len(), 4096, &[Some(ir)]).unwrap();
        fx.set("mix", mix);
        // As the host starts a job: parameters set, then a reset (no ramp from the defaults).
        fx.reset();
        let latency = fx.latency();
        let tail = ir[0].len() + latency;
        let mut audio: Vec<Vec<f32>> = input
            .iter()
            .map(|c| {
                let mut c = c.clone();
                c.resize(c.len() + tail, 0.0);
                c
            })
            .collect();
        fx.run_blocks(&mut audio, blocks);
        (audio, latency)
    }

    #[test]
    fn the_output_is_the_convolution_delayed_by_the_reported_latency() {
        let fs = 48_000;
        for (ir_frames, blocks) in [
            (1, &[4096][..]),
            (300, &[1, 7, 128]),
            (4_800, &[512]),
            (48_000, &[4096, 333]),
        ] {
            let ir = vec![room(9, ir_frames, fs as f32)];
            let x = vec![signal::noise(1, 20_000, 0.5)];
            let (y, latency) = run(&x, &ir, fs, blocks, 1.0);
            assert_eq!(latency, partition(ir_frames));
            let want = direct(&x[0], &ir[0]);
            let got = &y[0][latency..];
            let worst = want
                .iter()
                .zip(got)
                .map(|(w, g)| (w - f64::from(*g)).abs())
                .fold(0.0, f64::max);
            assert!(worst < 1e-5, "{ir_frames}-frame response: off by {worst:e}");
            // Nothing before the latency.
            assert!(y[0][..latency].iter().all(|v| *v == 0.0));
        }
    }

    #[test]
    fn channels_take_their_own_response_or_share_a_mono_one() {
        let fs = 44_100;
        let x = vec![signal::noise(1, 6_000, 0.5), signal::noise(2, 6_000, 0.5)];
        let stereo = vec![room(3, 2_000, fs as f32), room(4, 2_000, fs as f32)];
        let (y, l) = run(&x, &stereo, fs, &[1000], 1.0);
        for c in 0..2 {
            let want = direct(&x[c], &stereo[c]);
            let worst = want
                .iter()
                .zip(&y[c][l..])
                .map(|(w, g)| (w - f64::from(*g)).abs())
                .fold(0.0, f64::max);
            assert!(worst < 1e-5, "channel {c}: {worst:e}");
        }
        let mono = vec![stereo[0].clone()];
        let (y, l) = run(&x, &mono, fs, &[1000], 1.0);
        let want = direct(&x[1], &mono[0]);
        let worst = want
            .iter()
            .zip(&y[1][l..])
            .map(|(w, g)| (w - f64::from(*g)).abs())
            .fold(0.0, f64::max);
        assert!(worst < 1e-5, "mono response on channel 1: {worst:e}");
    }

    #[test]
    fn mix_blends_the_delayed_dry_signal_with_the_wet() {
        let fs = 48_000;
        let x = vec![signal::noise(5, 10_000, 0.5)];
        let ir = vec![room(6, 1_000, fs as f32)];
        let (dry, l) = run(&x, &ir, fs, &[4096], 0.0);
        for (i, v) in x[0].iter().enumerate() {
            assert_eq!(dry[0][i + l], *v, "mix 0 is the input, delayed");
        }
        let (half, _) = run(&x, &ir, fs, &[4096], 0.5);
        let (wet, _) = run(&x, &ir, fs, &[4096], 1.0);
        for i in 0..x[0].len() {
            let want = 0.5 * dry[0][i] + 0.5 * wet[0][i];
            assert!((half[0][i] - want).abs() < 1e-6);
        }
    }

    #[test]
    fn reset_starts_over_and_no_response_is_refused() {
        let fs = 48_000;
        let mut mem = memory();
        let ir = vec![room(7, 3_000, fs as f32)];
        let mut fx = Instance::<Convolve>::with_data(&mut mem, fs, 1, 512, &[Some(&ir)]).unwrap();
        let x = vec![signal::noise(8, 5_000, 0.5)];
        let mut a = x.clone();
        fx.run(&mut a);
        fx.reset();
        let mut b = x.clone();
        fx.run(&mut b);
        assert_eq!(a, b);
        let mut mem = memory();
        assert!(Instance::<Convolve>::new(&mut mem, fs, 1, 512).is_err());
        // A response with more channels than the slot allows, or none, is refused.
        let mut mem = memory();
        let many = vec![vec![1.0]; 33];
        assert!(Instance::<Convolve>::with_data(&mut mem, fs, 1, 512, &[Some(&many)]).is_err());
    }

    #[test]
    fn partitions_grow_with_the_response_within_bounds() {
        assert_eq!(partition(1), 128);
        assert_eq!(partition(48_000), 4096);
        assert_eq!(partition(16 * 300), 512);
        assert_eq!(partition(30 * 768_000), 4096);
    }
}
