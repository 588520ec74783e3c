//! `dehum`: removes mains hum — 50 or 60 Hz and its harmonics — with a notch on each, after
//! finding which mains the recording carries and following its exact frequency.
//!
//! **Finding and following.** The mono mix is demodulated at every harmonic `k·f` of each
//! candidate mains frequency `f` (a phasor per family, its powers for the harmonics) and summed
//! over hops of 250 ms. Hum is a steady tone: a harmonic's sum keeps its size from hop to hop and
//! turns by `2π·k·(f_hum − f)·hop`, while speech and music in the same bins come and go with
//! random phases. So each hop gives, per harmonic, `c_k = Z_k·conj(Z_k previous)`: its averaged
//! size is the hum's (coherent) power, its angle the frequency error. With `mains = auto` the
//! family whose harmonics hold clearly more coherent power (4×, and above −100 dBFS) is chosen
//! once, when hum is first heard; until then nothing is filtered. The frequency then follows
//! the hum (half the measured error per hop, within ±0.5 Hz of 50 or 60 Hz), weighting each
//! harmonic by its coherent power and its number (a higher harmonic measures the same error
//! `k` times larger), from harmonics whose phase is steady only.
//!
//! **Removing.** One cookbook notch per harmonic on every channel, at `k·f`, all with the same Q
//! (`f / width_hz`): the fundamental's notch is `width_hz` wide at −3 dB and a harmonic's `k`
//! times wider, so a frequency error, which grows with `k`, costs every harmonic the same depth.
//! A narrower width takes less of what lies near the hum and needs a truer frequency (a notch
//! `B` wide reduces a tone `δ` off its centre by `20·log10(δ / √(δ² + B²/4))`); the default 0.5 Hz
//! takes 0.3 dB from the third-octave band around 50 Hz of pink noise and more than 30 dB of the
//! hum once the tracker has settled (a second or two). Frequency moves glide over 50 ms.
#![no_std]

use sluice_effect_sdk::{
    Arena, Config, Effect, InitError,
    dsp::biquad::{Band, Kind},
    effect,
};

effect! {
    /// Parameters of `dehum`.
    pub struct DehumParams for Dehum {
        name: "dehum",
        version: "1.0.0",
        description: "Mains hum removal: notches at 50 or 60 Hz and its harmonics, the mains found (auto) and its exact frequency followed; each notch the same Q, the fundamental's width_hz wide.",
        tail_seconds: 0.0,
        max_channels: 32,
    }
    params {
        mains: { name: "Mains", choices: ["auto", "50", "60"], default: "auto" },
        harmonics: { name: "Harmonics", unit: "", min: 1.0, max: 20.0, default: 8.0 },
        width_hz: { name: "Width", unit: "Hz", min: 0.1, max: 5.0, default: 0.5 },
        track: { name: "Follow drift", choices: ["on", "off"], default: "on" },
    }
}

/// Most harmonics (the parameter's maximum).
pub const MAX_HARMONICS: usize = 20;
/// The mains frequencies there are.
pub const FAMILIES: [f64; 2] = [50.0, 60.0];
/// How far the followed frequency may move from 50 or 60 Hz.
pub const MAX_DRIFT_HZ: f64 = 0.5;
const HOP_MS: f32 = 250.0;
const GLIDE_MS: f32 = 50.0;
/// Hops a family needs before `auto` may choose it.
const HOPS_TO_CHOOSE: u32 = 4;
/// Coherent hum below this amplitude (−100 dBFS) is not hum.
const MIN_AMPLITUDE: f64 = 1e-5;

/// A complex number, for the demodulators.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct C {
    re: f64,
    im: f64,
}

impl C {
    fn mul(self, o: C) -> C {
        C {
            re: self.re * o.re - self.im * o.im,
            im: self.re * o.im + self.im * o.re,
        }
    }
    fn conj(self) -> C {
        C {
            re: self.re,
            im: -self.im,
        }
    }
    fn abs(self) -> f64 {
        libm::hypot(self.re, self.im)
    }
    fn polar(angle: f64) -> C {
        C {
            re: libm::cos(angle),
            im: libm::sin(angle),
        }
    }
}

/// The demodulators of one mains family: its harmonics' sums over the current hop, and what the
/// hops so far say about them.
#[derive(Clone, Copy, Debug)]
struct Family {
    nominal: f64,
    /// The frequency followed now.
    freq: f64,
    /// `e^{jθ}` at the fundamental, and its step per frame.
    phasor: C,
    step: C,
    sums: [C; MAX_HARMONICS],
    previous: [C; MAX_HARMONICS],
    /// Per harmonic: the average of `c_k` (coherent power with the turn per hop) and of its
    /// size (all power that stayed in the bin).
    coherent: [C; MAX_HARMONICS],
    power: [f64; MAX_HARMONICS],
    hops: u32,
}

impl Family {
    fn new(nominal: f64, fs: f64) -> Family {
        let mut f = Family {
            nominal,
            freq: nominal,
            phasor: C { re: 1.0, im: 0.0 },
            step: C::default(),
            sums: [C::default(); MAX_HARMONICS],
            previous: [C::default(); MAX_HARMONICS],
            coherent: [C::default(); MAX_HARMONICS],
            power: [0.0; MAX_HARMONICS],
            hops: 0,
        };
        f.tune(nominal, fs);
        f
    }

    fn tune(&mut self, freq: f64, fs: f64) {
        self.freq = freq;
        self.step = C::polar(2.0 * core::f64::consts::PI * freq / fs);
    }

    /// One frame of the mono mix into the current hop's sums.
    #[inline]
    fn take(&mut self, x: f64, harmonics: usize) {
        let mut q = self.phasor.conj();
        let p = q;
        for s in &mut self.sums[..harmonics] {
            s.re += x * q.re;
            s.im += x * q.im;
            q = q.mul(p);
        }
        self.phasor = self.phasor.mul(self.step);
    }

    /// Ends a hop of `frames`: updates the averages; returns, when the hum's phase is steady in
    /// some harmonic, the fundamental's frequency error (Hz) those harmonics measure.
    fn end_hop(&mut self, harmonics: usize, frames: f64, fs: f64) -> Option<f64> {
        // Keep the phasor on the unit circle.
        let n = self.phasor.abs();
        self.phasor = C {
            re: self.phasor.re / n,
            im: self.phasor.im / n,
        };
        let (mut num, mut den) = (0.0, 0.0);
        for k in 0..harmonics {
            let z = self.sums[k];
            let c = z.mul(self.previous[k].conj());
            self.previous[k] = z;
            self.sums[k] = C::default();
            if self.hops == 0 {
                continue;
            }
            let a = if self.hops == 1 { 1.0 } else { 0.3 };
            self.coherent[k].re += a * (c.re - self.coherent[k].re);
            self.coherent[k].im += a * (c.im - self.coherent[k].im);
            self.power[k] += a * (c.abs() - self.power[k]);
            // A steady phase: most of the power that stays in the bin keeps its turn.
            if self.coherent[k].abs() >= 0.5 * self.power[k] && c.abs() > 0.0 {
                let order = (k + 1) as f64;
                let error =
                    libm::atan2(c.im, c.re) * fs / (2.0 * core::f64::consts::PI * order * frames);
                let w = c.abs() * order * order;
                num += w * error;
                den += w;
            }
        }
        self.hops += 1;
        (den > 0.0).then(|| num / den)
    }

    /// The coherent power of all harmonics, as the amplitude of one tone holding it.
    fn hum_amplitude(&self, harmonics: usize, frames: f64) -> f64 {
        let p: f64 = self.coherent[..harmonics].iter().map(|c| c.abs()).sum();
        2.0 * libm::sqrt(p) / frames
    }
}

/// The hum remover.
pub struct Dehum {
    fs: f64,
    hop: u32,
    into_hop: u32,
    harmonics: usize,
    width_hz: f64,
    track: bool,
    /// The candidates (one when the mains is given) and the one chosen.
    families: [Family; 2],
    candidates: usize,
    chosen: Option<usize>,
    notches: [Band; MAX_HARMONICS],
}

impl Dehum {
    fn configure(config: &Config, p: &DehumParams) -> Dehum {
        let fs = config.sample_rate as f64;
        let glide = config.ms_to_frames(GLIDE_MS) as u32;
        let given = match p.mains {
            1 => Some(0),
            2 => Some(1),
            _ => None,
        };
        let (families, candidates) = match given {
            Some(i) => ([Family::new(FAMILIES[i], fs); 2], 1),
            None => ([Family::new(50.0, fs), Family::new(60.0, fs)], 2),
        };
        let mut d = Dehum {
            fs,
            hop: config.ms_to_frames(HOP_MS).max(1) as u32,
            into_hop: 0,
            harmonics: harmonics(p),
            width_hz: p.width_hz as f64,
            track: p.track == 0,
            families,
            candidates,
            chosen: given.map(|_| 0),
            notches: [Band::new(config.fs(), glide, Kind::Notch, 50.0, 100.0, 0.0); MAX_HARMONICS],
        };
        d.place_notches(true);
        d
    }

    /// Puts each notch on its harmonic of the chosen family's frequency (gliding, or at once).
    fn place_notches(&mut self, at_once: bool) {
        let Some(i) = self.chosen else { return };
        let f = self.families[i].freq;
        let q = (f / self.width_hz) as f32;
        let top = 0.45 * self.fs;
        for (k, n) in self.notches[..self.harmonics].iter_mut().enumerate() {
            let centre = ((k + 1) as f64 * f).min(top) as f32;
            if at_once {
                n.reset(Kind::Notch, centre, q, 0.0);
            } else {
                n.set(Kind::Notch, centre, q, 0.0);
            }
        }
    }

    fn end_hop(&mut self) {
        let frames = self.hop as f64;
        let (fs, h) = (self.fs, self.harmonics);
        let mut errors = [None; 2];
        for (e, f) in errors.iter_mut().zip(&mut self.families[..self.candidates]) {
            *e = f.end_hop(h, frames, fs);
        }
        if self.chosen.is_none() {
            self.choose(frames);
        }
        if let Some(i) = self.chosen
            && self.track
            && let Some(error) = errors[i]
        {
            let f = &mut self.families[i];
            let next =
                (f.freq + 0.5 * error).clamp(f.nominal - MAX_DRIFT_HZ, f.nominal + MAX_DRIFT_HZ);
            f.tune(next, fs);
            self.place_notches(false);
        }
    }

    /// `auto`: chooses the family that holds clearly more coherent hum, once there is some.
    fn choose(&mut self, frames: f64) {
        if self.families[0].hops < HOPS_TO_CHOOSE {
            return;
        }
        let a: [f64; 2] =
            core::array::from_fn(|i| self.families[i].hum_amplitude(self.harmonics, frames));
        let best = if a[0] >= a[1] { 0 } else { 1 };
        if a[best] >= MIN_AMPLITUDE && a[best] * a[best] >= 4.0 * a[1 - best] * a[1 - best] {
            self.chosen = Some(best);
            self.place_notches(true);
        }
    }

    /// The mains chosen (50 or 60) and the frequency followed now; `None` before `auto` has
    /// heard hum.
    pub fn mains(&self) -> Option<(f64, f64)> {
        self.chosen
            .map(|i| (self.families[i].nominal, self.families[i].freq))
    }
}

fn harmonics(p: &DehumParams) -> usize {
    (libm::roundf(p.harmonics) as usize).clamp(1, MAX_HARMONICS)
}

impl<'a> Effect<'a> for Dehum {
    type Params = DehumParams;

    fn new(config: &Config, p: &DehumParams, _: &mut Arena<'a>) -> Result<Self, InitError> {
        Ok(Dehum::configure(config, p))
    }

    fn update(&mut self, p: &DehumParams) {
        let mains_changed = match (p.mains, self.candidates) {
            (0, 2) => false,
            (0, _) | (_, 2) => true,
            (i, _) => self.families[0].nominal != FAMILIES[i - 1],
        };
        if mains_changed {
            // Start again: the followed frequency belongs to the mains it was found for.
            let config = Config {
                sample_rate: self.fs as u32,
                channels: 1,
                max_frames: 1,
            };
            let notches = self.notches;
            *self = Dehum::configure(&config, p);
            // Keep the channels' filter memories where nothing moved yet.
            if self.chosen.is_none() {
                self.notches = notches;
            }
            return;
        }
        self.harmonics = harmonics(p);
        self.width_hz = p.width_hz as f64;
        self.track = p.track == 0;
        self.place_notches(false);
    }

    fn process(&mut self, channels: &mut [&mut [f32]]) {
        let frames = channels.first().map_or(0, |c| c.len());
        let scale = 1.0 / channels.len().max(1) as f64;
        let mut start = 0;
        while start < frames {
            let end = frames.min(start + (self.hop - self.into_hop) as usize);
            for i in start..end {
                let x = channels.iter().map(|c| c[i] as f64).sum::<f64>() * scale;
                for f in &mut self.families[..self.candidates] {
                    f.take(x, self.harmonics);
                }
            }
            if self.chosen.is_some() {
                let mut part: [&mut [f32]; 32] = Default::default();
                let n = channels.len().min(32);
                for (p, c) in part.iter_mut().zip(channels.iter_mut()) {
                    *p = &mut c[start..end];
                }
                for notch in &mut self.notches[..self.harmonics] {
                    notch.process(&mut part[..n]);
                }
            }
            self.into_hop += (end - start) as u32;
            if self.into_hop == self.hop {
                self.into_hop = 0;
                self.end_hop();
            }
            start = end;
        }
    }

    fn reset(&mut self, p: &DehumParams) {
        let config = Config {
            sample_rate: self.fs as u32,
            channels: 1,
            max_frames: 1,
        };
        *self = Dehum::configure(&config, p);
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use sluice_effect_sdk::native::{Instance, memory, signal};
    use std::{vec, vec::Vec};

    const FS: f64 = 48_000.0;

    /// Hum at `f` with `harmonics` (fundamental included), each at `amplitude`, over `bed`.
    fn hummed(bed: &[f32], f: f64, harmonics: usize, amplitude: f64) -> Vec<f32> {
        let mut x = bed.to_vec();
        for k in 1..=harmonics {
            let tone = signal::sine(k as f64 * f, FS, bed.len(), amplitude, 0.3 * k as f64);
            x.iter_mut().zip(tone).for_each(|(a, b)| *a += b);
        }
        x
    }

    fn run(params: DehumParams, x: &[f32], block: usize) -> (Vec<f32>, Option<(f64, f64)>) {
        let mut mem = memory();
        let mut fx = Instance::<Dehum>::new(&mut mem, FS as u32, 1, block).unwrap();
        let names = ["auto", "50", "60"];
        fx.set_choice("mains", names[params.mains])
            .set("harmonics", params.harmonics)
            .set("width_hz", params.width_hz);
        let mut out = vec![x.to_vec()];
        fx.run(&mut out);
        let mains = fx.effect().mains();
        (out.remove(0), mains)
    }

    /// dB of each harmonic's tone left after the first `settle` seconds, against `amplitude`.
    fn left_db(y: &[f32], f: f64, harmonics: usize, amplitude: f64, settle: f64) -> Vec<f64> {
        let tail = &y[(settle * FS) as usize..];
        (1..=harmonics)
            .map(|k| signal::db(signal::tone_amplitude(tail, k as f64 * f, FS) / amplitude))
            .collect()
    }

    #[test]
    fn hum_of_either_mains_with_five_harmonics_loses_30_db() {
        let n = (8.0 * FS) as usize;
        let bed = signal::noise(7, n, 0.03);
        for (mains, f) in [(1, 50.0), (2, 60.0), (0, 50.0), (0, 60.0)] {
            let x = hummed(&bed, f, 6, 0.0316);
            let p = DehumParams {
                mains,
                ..Default::default()
            };
            let (y, found) = run(p, &x, 512);
            assert_eq!(found.map(|m| m.0), Some(f), "mains {mains}");
            let left = left_db(&y, f, 6, 0.0316, 3.0);
            assert!(
                left.iter().all(|&d| d < -30.0),
                "mains {mains} at {f}: {left:?}"
            );
        }
    }

    #[test]
    fn drifted_mains_is_followed() {
        let n = (10.0 * FS) as usize;
        let bed = signal::noise(3, n, 0.03);
        for f in [49.8, 50.17, 59.85, 60.3] {
            let x = hummed(&bed, f, 6, 0.0316);
            let (y, found) = run(DehumParams::default(), &x, 480);
            let (_, followed) = found.unwrap();
            assert!((followed - f).abs() < 0.005, "{f}: followed {followed}");
            let left = left_db(&y, f, 6, 0.0316, 5.0);
            assert!(left.iter().all(|&d| d < -30.0), "{f}: {left:?}");
        }
    }

    #[test]
    fn tones_between_the_harmonics_pass() {
        let n = (6.0 * FS) as usize;
        let mut bed = vec![0.0f32; n];
        let others = [75.0, 125.0, 440.0, 1000.0, 5000.0];
        for (i, f) in others.iter().enumerate() {
            let t = signal::sine(*f, FS, n, 0.05, i as f64);
            bed.iter_mut().zip(t).for_each(|(a, b)| *a += b);
        }
        let x = hummed(&bed, 50.0, 6, 0.0316);
        let (y, found) = run(DehumParams::default(), &x, 1024);
        assert!(found.is_some());
        let tail = &y[(3.0 * FS) as usize..];
        for f in others {
            let d = signal::db(signal::tone_amplitude(tail, f, FS) / 0.05);
            assert!(d.abs() < 0.05, "{f} Hz moved {d} dB");
        }
    }

    #[test]
    fn without_hum_auto_changes_nothing() {
        let x = signal::noise(11, (5.0 * FS) as usize, 0.2);
        let (y, found) = run(DehumParams::default(), &x, 256);
        assert_eq!(found, None);
        assert!(y == x);
    }

    #[test]
    fn block_size_does_not_matter() {
        let bed = signal::noise(5, (4.0 * FS) as usize, 0.03);
        let x = hummed(&bed, 60.1, 4, 0.05);
        let (a, _) = run(DehumParams::default(), &x, 64);
        let (b, _) = run(DehumParams::default(), &x, 4096);
        assert!(a == b);
    }
}
