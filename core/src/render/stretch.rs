//! Time stretch: the signal made faster or slower (`speed` 0.25 … 4: 1.25 plays in 80 % of the
//! time) with its pitch kept.
//!
//! A phase vocoder: frames of about 85 ms (the power of two at or above 0.085 × the sample rate:
//! 4096 at 44.1 and 48 kHz) are read from the input every `speed · n/8` frames (rounded; the
//! exact product decides each position, so nothing drifts) and written out every `n/8`, under
//! Hann windows in and out (their squares overlap-add to a constant). Each bin's phase is moved
//! on by its measured frequency times the output hop, locked around the spectral peaks
//! (Laroche and Dolson's identity phase locking: every bin takes the rotation of the peak whose
//! region — up to the lowest bin between it and the next peak — it lies in), so a steady
//! partial stays one clean partial. The output is exactly `round(input / speed)` frames long and
//! starts with the input (the first frame is centred on the input's first sample). The same
//! vocoder, read back at another rate, is the `pitch` effect's.

use super::{Block, RenderError, SignalSpec, Stage, StageReport};
use realfft::{ComplexToReal, RealFftPlanner, RealToComplex};
use rustfft::num_complex::Complex32;
use std::f64::consts::PI;
use std::sync::Arc;

/// The slowest and fastest speeds.
pub const SPEEDS: std::ops::RangeInclusive<f64> = 0.25..=4.0;
/// Frame length in seconds (rounded up to a power of two in frames).
const FRAME_S: f64 = 0.085;
/// Frames overlapping at the output hop.
const OVERLAP: usize = 8;

/// One channel's running state.
struct Channel {
    /// Input from `TimeStretch::base` on.
    input: Vec<f32>,
    /// The overlap-add of the frames written so far, from the next output hop on (`n`).
    acc: Vec<f32>,
    /// Output frames complete and not yet given.
    ready: Vec<f32>,
    prev_x: Vec<Complex32>,
    prev_y: Vec<Complex32>,
}

pub struct TimeStretch {
    speed: f64,
    n: usize,
    hop: usize,
    fwd: Option<Arc<dyn RealToComplex<f32>>>,
    inv: Option<Arc<dyn ComplexToReal<f32>>>,
    window: Vec<f32>,
    channels: Vec<Channel>,
    frame: Vec<f32>,
    spec: Vec<Complex32>,
    scratch: Vec<Complex32>,
    power: Vec<f32>,
    peaks: Vec<usize>,
    rotations: Vec<Complex32>,
    /// The input's position (with its `n/2` frames of silence in front) of `input[0]`, and of
    /// its end.
    base: u64,
    taken: u64,
    /// Frames analysed; the last one's start.
    frames: u64,
    prev_read: u64,
    /// Output frames still to drop (the silence in front's) and given so far; input frames seen.
    skip: usize,
    given: u64,
    seen: u64,
}

impl TimeStretch {
    /// `speed` is clamped into [`SPEEDS`].
    pub fn new(speed: f64) -> Self {
        TimeStretch {
            speed: speed.clamp(*SPEEDS.start(), *SPEEDS.end()),
            n: 0,
            hop: 0,
            fwd: None,
            inv: None,
            window: Vec::new(),
            channels: Vec::new(),
            frame: Vec::new(),
            spec: Vec::new(),
            scratch: Vec::new(),
            power: Vec::new(),
            peaks: Vec::new(),
            rotations: Vec::new(),
            base: 0,
            taken: 0,
            frames: 0,
            prev_read: 0,
            skip: 0,
            given: 0,
            seen: 0,
        }
    }

    /// Frame `m`'s start in the input (silence in front included).
    fn start_of(&self, m: u64) -> u64 {
        (m as f64 * self.hop as f64 * self.speed).round() as u64
    }

    /// The rotation that carries peak `kp` of channel `c` (its spectrum in `self.spec`) on from
    /// the previous frame, `ha` input frames earlier.
    fn rotation(&self, c: usize, kp: usize, ha: f64) -> Complex32 {
        let ch = &self.channels[c];
        let x = self.spec[kp];
        let (px, py) = (ch.prev_x[kp], ch.prev_y[kp]);
        let (x_pow, y_pow) = (f64::from(x.norm_sqr()), f64::from(py.norm_sqr()));
        if x_pow == 0.0 || y_pow == 0.0 || ha <= 0.0 || px.norm_sqr() == 0.0 {
            return Complex32::new(1.0, 0.0);
        }
        let bin = 2.0 * PI * kp as f64 / self.n as f64;
        let moved = f64::from((x * px.conj()).arg());
        let wrapped = moved - bin * ha;
        let wrapped = wrapped - 2.0 * PI * (wrapped / (2.0 * PI)).round();
        let omega = bin + wrapped / ha;
        let (s, c) = (omega * self.hop as f64).sin_cos();
        let (yr, yi) = (f64::from(py.re), f64::from(py.im));
        let (tr, ti) = (yr * c - yi * s, yr * s + yi * c);
        let (xr, xi) = (f64::from(x.re), f64::from(x.im));
        let scale = 1.0 / (x_pow * y_pow).sqrt();
        Complex32::new(
            ((tr * xr + ti * xi) * scale) as f32,
            ((ti * xr - tr * xi) * scale) as f32,
        )
    }

    /// Channel `c`'s spectrum (in `self.spec`) with its phases moved on and locked to its
    /// peaks; its previous-frame spectra move on.
    fn lock(&mut self, c: usize, ha: f64) {
        let bins = self.spec.len();
        for (p, x) in self.power.iter_mut().zip(&self.spec) {
            *p = x.norm_sqr();
        }
        self.peaks.clear();
        for k in 0..bins {
            let p = self.power[k];
            if p > 0.0
                && (k < 1 || p > self.power[k - 1])
                && (k < 2 || p > self.power[k - 2])
                && (k + 1 >= bins || p >= self.power[k + 1])
                && (k + 2 >= bins || p >= self.power[k + 2])
            {
                self.peaks.push(k);
            }
        }
        self.rotations.clear();
        for i in 0..self.peaks.len() {
            let r = self.rotation(c, self.peaks[i], ha);
            self.rotations.push(r);
        }
        self.channels[c].prev_x.copy_from_slice(&self.spec);
        let mut lo = 0;
        for (i, (&kp, &r)) in self.peaks.iter().zip(&self.rotations).enumerate() {
            let hi = match self.peaks.get(i + 1) {
                Some(&kq) => {
                    let mut low = kp + 1;
                    for k in kp + 1..kq {
                        if self.power[k] < self.power[low] {
                            low = k;
                        }
                    }
                    low + 1
                }
                None => bins,
            };
            for x in &mut self.spec[lo..hi] {
                *x *= r;
            }
            lo = hi;
        }
        self.channels[c].prev_y.copy_from_slice(&self.spec);
    }

    /// One frame from every channel's input into its output.
    fn run_frame(&mut self) {
        let (n, hop) = (self.n, self.hop);
        let start = self.start_of(self.frames);
        let ha = if self.frames == 0 {
            0.0
        } else {
            (start - self.prev_read) as f64
        };
        let at = (start - self.base) as usize;
        let norm = 1.0 / (n as f32 * OVERLAP as f32 * 0.375);
        let (fwd, inv) = (self.fwd.clone().unwrap(), self.inv.clone().unwrap());
        for c in 0..self.channels.len() {
            for ((f, x), w) in self
                .frame
                .iter_mut()
                .zip(&self.channels[c].input[at..at + n])
                .zip(&self.window)
            {
                *f = x * w;
            }
            fwd.process_with_scratch(&mut self.frame, &mut self.spec, &mut self.scratch)
                .expect("the FFT's buffers are its own sizes");
            self.lock(c, ha);
            // The inverse takes real DC and Nyquist bins.
            self.spec[0].im = 0.0;
            self.spec[n / 2].im = 0.0;
            inv.process_with_scratch(&mut self.spec, &mut self.frame, &mut self.scratch)
                .expect("the FFT's buffers are its own sizes");
            let ch = &mut self.channels[c];
            for ((a, y), w) in ch.acc.iter_mut().zip(&self.frame).zip(&self.window) {
                *a += y * w * norm;
            }
            ch.ready.extend_from_slice(&ch.acc[..hop]);
            ch.acc.copy_within(hop.., 0);
            ch.acc[n - hop..].fill(0.0);
        }
        self.prev_read = start;
        self.frames += 1;
        // The input before the next frame's start is no longer needed.
        let next = self.start_of(self.frames);
        if next > self.base {
            let drop = ((next - self.base) as usize).min(self.channels[0].input.len());
            for ch in &mut self.channels {
                ch.input.drain(..drop);
            }
            self.base += drop as u64;
        }
    }

    /// Every frame the input there is allows.
    fn run_frames(&mut self) {
        while self.start_of(self.frames) + self.n as u64 <= self.taken {
            self.run_frame();
        }
    }

    /// `block` becomes the ready output (after the silence in front's), at most `limit` frames
    /// given in all.
    fn give(&mut self, block: &mut Block, limit: u64) {
        let channels = self.channels.len();
        block.reset(channels);
        let ready = self.channels.first().map_or(0, |c| c.ready.len());
        let skip = self.skip.min(ready);
        let count = ((ready - skip) as u64).min(limit.saturating_sub(self.given)) as usize;
        for (c, ch) in self.channels.iter_mut().enumerate() {
            block
                .plane_mut(c)
                .extend_from_slice(&ch.ready[skip..skip + count]);
            ch.ready.clear();
        }
        self.skip -= skip;
        self.given += count as u64;
    }
}

impl Stage for TimeStretch {
    fn name(&self) -> &'static str {
        "time_stretch"
    }

    fn start(&mut self, input: &SignalSpec) -> Result<SignalSpec, RenderError> {
        let n = ((f64::from(input.sample_rate) * FRAME_S) as usize)
            .next_power_of_two()
            .clamp(256, 65_536);
        if n != self.n || self.fwd.is_none() {
            let mut planner = RealFftPlanner::<f32>::new();
            self.fwd = Some(planner.plan_fft_forward(n));
            self.inv = Some(planner.plan_fft_inverse(n));
            self.window = (0..n)
                .map(|t| (0.5 - 0.5 * (2.0 * PI * t as f64 / n as f64).cos()) as f32)
                .collect();
        }
        self.n = n;
        self.hop = n / OVERLAP;
        let bins = n / 2 + 1;
        let (fwd, inv) = (self.fwd.as_ref().unwrap(), self.inv.as_ref().unwrap());
        self.scratch = vec![Complex32::default(); fwd.get_scratch_len().max(inv.get_scratch_len())];
        self.frame = vec![0.0; n];
        self.spec = vec![Complex32::default(); bins];
        self.power = vec![0.0; bins];
        self.channels = (0..input.channels())
            .map(|_| Channel {
                // The silence in front: the first frame is centred on the first sample.
                input: vec![0.0; n / 2],
                acc: vec![0.0; n],
                ready: Vec::new(),
                prev_x: vec![Complex32::default(); bins],
                prev_y: vec![Complex32::default(); bins],
            })
            .collect();
        self.base = 0;
        self.taken = (n / 2) as u64;
        self.frames = 0;
        self.prev_read = 0;
        self.skip = n / 2;
        self.given = 0;
        self.seen = 0;
        let mut out = input.clone();
        out.exact_bits = None;
        Ok(out)
    }

    fn process(&mut self, block: &mut Block) {
        let frames = block.frames();
        for (ch, plane) in self.channels.iter_mut().zip(block.planes()) {
            ch.input.extend_from_slice(plane);
        }
        self.taken += frames as u64;
        self.seen += frames as u64;
        self.run_frames();
        self.give(block, u64::MAX);
    }

    fn finish(&mut self, block: &mut Block) -> bool {
        let total = (self.seen as f64 / self.speed).round() as u64;
        let mut out = Block::new(self.channels.len());
        let mut piece = Block::new(self.channels.len());
        while self.given < total {
            // Silence after the end until the last frames are written out.
            for ch in &mut self.channels {
                ch.input.extend(std::iter::repeat_n(0.0, self.hop));
            }
            self.taken += self.hop as u64;
            self.run_frames();
            self.give(&mut piece, total);
            out.extend_from(&piece);
        }
        *block = out;
        false
    }

    fn report(&self) -> Option<StageReport> {
        let mut r = StageReport {
            stage: "time_stretch".into(),
            ..StageReport::default()
        };
        r.values.insert("speed".into(), self.speed);
        Some(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: u32 = 48_000;

    fn run(speed: f64, input: &[Vec<f32>], block: usize) -> Vec<Vec<f32>> {
        let mut s = TimeStretch::new(speed);
        s.start(&SignalSpec::with_channels(RATE, input.len()))
            .unwrap();
        let mut out = vec![Vec::new(); input.len()];
        let mut at = 0;
        while at < input[0].len() {
            let end = (at + block).min(input[0].len());
            let mut b = Block::from_planes(input.iter().map(|p| p[at..end].to_vec()).collect());
            s.process(&mut b);
            for (o, p) in out.iter_mut().zip(b.planes()) {
                o.extend_from_slice(p);
            }
            at = end;
        }
        let mut b = Block::new(input.len());
        assert!(!s.finish(&mut b));
        for (o, p) in out.iter_mut().zip(b.planes()) {
            o.extend_from_slice(p);
        }
        out
    }

    fn sine(freq: f64, frames: usize) -> Vec<f32> {
        (0..frames)
            .map(|i| (0.5 * (2.0 * PI * freq * i as f64 / f64::from(RATE)).sin()) as f32)
            .collect()
    }

    /// The frequency of a steady tone from its rising zero crossings (linearly interpolated).
    fn frequency(x: &[f32]) -> f64 {
        let crossings: Vec<f64> = (1..x.len())
            .filter(|&i| x[i - 1] < 0.0 && x[i] >= 0.0)
            .map(|i| {
                let (a, b) = (f64::from(x[i - 1]), f64::from(x[i]));
                (i - 1) as f64 + a / (a - b)
            })
            .collect();
        let span = crossings.last().unwrap() - crossings[0];
        (crossings.len() - 1) as f64 / span * f64::from(RATE)
    }

    /// The strongest level (dB) outside ±8 bins of `freq`, relative to `freq`'s, over 65,536
    /// frames under a 4-term Blackman-Harris window.
    fn others_db(x: &[f32], freq: f64) -> f64 {
        const N: usize = 65_536;
        let mut buf: Vec<Complex32> = x[..N]
            .iter()
            .enumerate()
            .map(|(t, &v)| {
                let u = 2.0 * PI * t as f64 / N as f64;
                let w = 0.35875 - 0.48829 * u.cos() + 0.14128 * (2.0 * u).cos()
                    - 0.01168 * (3.0 * u).cos();
                Complex32::new((f64::from(v) * w) as f32, 0.0)
            })
            .collect();
        rustfft::FftPlanner::new()
            .plan_fft_forward(N)
            .process(&mut buf);
        let db: Vec<f64> = buf[..N / 2]
            .iter()
            .map(|c| 10.0 * (f64::from(c.norm_sqr()) + 1e-30).log10())
            .collect();
        let k = (freq * N as f64 / f64::from(RATE)).round() as usize;
        let top = db[k - 2..=k + 2].iter().cloned().fold(f64::MIN, f64::max);
        db.iter()
            .enumerate()
            .filter(|(j, _)| j.abs_diff(k) > 8)
            .map(|(_, &v)| v)
            .fold(f64::MIN, f64::max)
            - top
    }

    #[test]
    fn the_length_is_the_input_over_the_speed_whatever_the_blocks() {
        let x = vec![sine(440.0, 100_003), sine(660.0, 100_003)];
        for speed in [0.25, 0.5, 0.8, 1.0, 1.25, 2.0, 4.0] {
            let mut lengths = Vec::new();
            for block in [1_000, 4_096, 77] {
                let y = run(speed, &x, block);
                assert_eq!(y[0].len(), y[1].len());
                lengths.push(y[0].len());
            }
            let want = (100_003.0 / speed).round() as usize;
            assert!(
                lengths.iter().all(|&l| l == want),
                "{speed}: {lengths:?} for {want}"
            );
        }
        assert!(run(1.5, &[Vec::new()], 512)[0].is_empty());
    }

    #[test]
    fn a_sine_keeps_its_pitch_and_gains_nothing_above_minus_60_db() {
        let x = vec![sine(440.0, 4 * RATE as usize)];
        for speed in [0.5, 0.8, 1.25, 2.0] {
            let y = run(speed, &x, 4_096);
            let seg = &y[0][RATE as usize / 4..RATE as usize / 4 + 65_536];
            let f = frequency(seg);
            let cents = 1200.0 * (f / 440.0).log2();
            let rms = |v: &[f32]| {
                (v.iter().map(|s| f64::from(*s).powi(2)).sum::<f64>() / v.len() as f64).sqrt()
            };
            let level = 20.0 * (rms(seg) / rms(&x[0][..65_536])).log10();
            let others = others_db(seg, 440.0);
            println!(
                "speed {speed}: {f:.4} Hz ({cents:+.4} cents), level {level:+.3} dB, others {others:.1} dB"
            );
            assert!(cents.abs() < 1.0, "{speed}: {cents} cents");
            assert!(level.abs() < 0.5, "{speed}: level {level} dB");
            assert!(others < -60.0, "{speed}: {others} dB");
        }
    }

    #[test]
    fn a_click_track_plays_at_the_new_tempo() {
        // 120 BPM: a 5 ms burst of 2 kHz every 0.5 s, for 8 s.
        let rate = RATE as usize;
        let x: Vec<f32> = (0..8 * rate)
            .map(|i| {
                let t = i % (rate / 2);
                if t < rate / 200 {
                    (0.8 * (2.0 * PI * 2_000.0 * t as f64 / rate as f64).sin()) as f32
                } else {
                    0.0
                }
            })
            .collect();
        for speed in [1.25, 0.75] {
            let y = run(speed, std::slice::from_ref(&x), 4_096);
            // Onsets: where the level first passes half the clicks' peak after a quiet stretch.
            let peak = y[0].iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let mut onsets = Vec::new();
            let mut quiet = usize::MAX;
            for (i, v) in y[0].iter().enumerate() {
                if v.abs() > 0.5 * peak {
                    if quiet > rate / 10 {
                        onsets.push(i);
                    }
                    quiet = 0;
                } else {
                    quiet = quiet.saturating_add(1);
                }
            }
            let want = 0.5 / speed * rate as f64;
            let intervals: Vec<f64> = onsets.windows(2).map(|w| (w[1] - w[0]) as f64).collect();
            assert_eq!(onsets.len(), 16, "{speed}: {onsets:?}");
            let bpm = 60.0 * rate as f64 / (intervals.iter().sum::<f64>() / intervals.len() as f64);
            println!("speed {speed}: {bpm:.3} BPM from 120");
            assert!((bpm - 120.0 * speed).abs() < 0.1, "{speed}: {bpm} BPM");
            for d in &intervals {
                assert!(
                    (d - want).abs() < 0.002 * rate as f64,
                    "{speed}: {intervals:?}"
                );
            }
        }
    }
}
