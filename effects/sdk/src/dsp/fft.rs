//! A real FFT of any power-of-two size from 4 to 65,536, on memory from the effect's arena.
//!
//! The `N`-point transform of a real signal runs as an `N/2`-point complex radix-2 transform of
//! the signal's even and odd samples packed as one complex sequence, then splits the result
//! (the usual "two for one" real FFT); the inverse undoes the split and runs the same complex
//! transform on the conjugate. Twiddles are computed once, in `f64`, with [`libm`], so native
//! and wasm32 builds give the same numbers. (microfft, the `no_std` FFT crate, works on
//! fixed-size arrays of its own complex type and has no inverse real transform: effects size
//! their frames by sample rate and keep everything in the arena's `f32`s.)
//!
//! Spectra are interleaved `[re0, im0, re1, im1, ...]` with `N/2 + 1` bins (DC to Nyquist).

use crate::{Arena, InitError};

/// A planned real FFT of size `n`.
pub struct RealFft<'a> {
    n: usize,
    /// `cos`, `sin` of `2πk/n` for `k < n/2`, interleaved.
    twiddles: &'a mut [f32],
    /// The complex stages' twiddles, stage by stage (a stage of butterflies `h` apart starts at
    /// `h - 1`): `cos` and `sin` of `2πk/(2h)` for `k < h`, the same numbers as `twiddles`.
    stage_cos: &'a mut [f32],
    stage_sin: &'a mut [f32],
    /// The bit-reversed index of each of the `n/2` complex points.
    reversed: &'a mut [u32],
    /// The complex work buffer, `n/2` values, real and imaginary parts apart (so the
    /// butterflies of a stage run as plain loops over slices, which the compiler vectorises).
    re: &'a mut [f32],
    im: &'a mut [f32],
}

impl<'a> RealFft<'a> {
    /// Plans a transform of `n` points (a power of two, 4 ..= 65,536).
    pub fn new(n: usize, arena: &mut Arena<'a>) -> Result<Self, InitError> {
        if !(4..=65_536).contains(&n) || !n.is_power_of_two() {
            return Err(InitError::Unsupported);
        }
        let m = n / 2;
        let twiddles = arena.take(n)?;
        for k in 0..m {
            let a = 2.0 * core::f64::consts::PI * k as f64 / n as f64;
            twiddles[2 * k] = libm::cos(a) as f32;
            twiddles[2 * k + 1] = libm::sin(a) as f32;
        }
        let stage_cos = arena.take(m)?;
        let stage_sin = arena.take(m)?;
        let mut h = 1;
        while h < m {
            // 2πk/(2h) = 2π·(k·n/(2h))/n: entries of the n-point table.
            let step = n / (2 * h);
            for k in 0..h {
                stage_cos[h - 1 + k] = twiddles[2 * k * step];
                stage_sin[h - 1 + k] = twiddles[2 * k * step + 1];
            }
            h <<= 1;
        }
        let reversed = arena.take_zeroed::<u32>(m)?;
        let bits = m.trailing_zeros();
        for (i, r) in reversed.iter_mut().enumerate() {
            *r = if bits == 0 {
                0
            } else {
                (i as u32).reverse_bits() >> (32 - bits)
            };
        }
        let re = arena.take(m)?;
        let im = arena.take(m)?;
        Ok(RealFft {
            n,
            twiddles,
            stage_cos,
            stage_sin,
            reversed,
            re,
            im,
        })
    }

    /// The size.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Never: the smallest size is 4.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// `cos` and `sin` of `2πk/n`, for `k ≤ n/2`.
    #[inline]
    fn w(&self, k: usize) -> (f32, f32) {
        if k < self.n / 2 {
            (self.twiddles[2 * k], self.twiddles[2 * k + 1])
        } else {
            (-1.0, 0.0)
        }
    }

    /// The forward transform of `input` (`n` samples) into `spectrum` (`n + 2` floats:
    /// `n/2 + 1` bins), unnormalised: `X[k] = Σ x[t]·e^{−2πjkt/n}`.
    pub fn forward(&mut self, input: &[f32], spectrum: &mut [f32]) {
        let m = self.n / 2;
        // The even samples as real parts, the odd as imaginary, in bit-reversed order.
        for (i, &r) in self.reversed.iter().enumerate() {
            let r = r as usize;
            self.re[i] = input[2 * r];
            self.im[i] = input[2 * r + 1];
        }
        self.complex();
        // Z[k] = E[k] + j·O[k]; X[k] = E[k] + W^k·O[k], W = e^{−2πj/n}.
        for k in 0..=m {
            let (zr, zi) = self.z(k);
            let (cr, ci) = self.z(m - k);
            let (cr, ci) = (cr, -ci);
            let (er, ei) = ((zr + cr) * 0.5, (zi + ci) * 0.5);
            // O = (Z − conj Z[m−k]) / 2j.
            let (dr, di) = ((zr - cr) * 0.5, (zi - ci) * 0.5);
            let (or, oi) = (di, -dr);
            let (c, s) = self.w(k);
            // W^k = c − j·s.
            let (wr, wi) = (or * c + oi * s, oi * c - or * s);
            spectrum[2 * k] = er + wr;
            spectrum[2 * k + 1] = ei + wi;
        }
    }

    /// The inverse of [`Self::forward`] (scaled by `1/n`, so `inverse(forward(x)) = x`): from
    /// `spectrum` (`n/2 + 1` bins; the imaginary parts of DC and Nyquist are ignored) into
    /// `output` (`n` samples).
    pub fn inverse(&mut self, spectrum: &[f32], output: &mut [f32]) {
        let m = self.n / 2;
        for k in 0..m {
            let (xr, xi) = (spectrum[2 * k], spectrum[2 * k + 1]);
            let (cr, ci) = (spectrum[2 * (m - k)], -spectrum[2 * (m - k) + 1]);
            let (er, ei) = ((xr + cr) * 0.5, (xi + ci) * 0.5);
            let (dr, di) = ((xr - cr) * 0.5, (xi - ci) * 0.5);
            let (c, s) = self.w(k);
            // O = D·W^{−k}, W^{−k} = c + j·s.
            let (or, oi) = (dr * c - di * s, dr * s + di * c);
            // Z = E + j·O, conjugated for the inverse through the forward transform; put at its
            // bit-reversed place (the permutation is its own inverse).
            let r = self.reversed[k] as usize;
            self.re[r] = er - oi;
            self.im[r] = -(ei + or);
        }
        self.complex();
        let scale = 1.0 / m as f32;
        for k in 0..m {
            output[2 * k] = self.re[k] * scale;
            output[2 * k + 1] = -self.im[k] * scale;
        }
    }

    /// `Z[k]` of the work buffer (index `m` wraps to 0).
    #[inline]
    fn z(&self, k: usize) -> (f32, f32) {
        let k = if k == self.n / 2 { 0 } else { k };
        (self.re[k], self.im[k])
    }

    /// The forward complex transform of the work buffer (`n/2` points, already in bit-reversed
    /// order), in place.
    fn complex(&mut self) {
        let m = self.n / 2;
        let mut h = 1;
        while h < m {
            let (cos, sin) = (
                &self.stage_cos[h - 1..2 * h - 1],
                &self.stage_sin[h - 1..2 * h - 1],
            );
            for (re, im) in self
                .re
                .chunks_exact_mut(2 * h)
                .zip(self.im.chunks_exact_mut(2 * h))
            {
                let (ar, br) = re.split_at_mut(h);
                let (ai, bi) = im.split_at_mut(h);
                for (((((ar, ai), br), bi), &c), &s) in ar
                    .iter_mut()
                    .zip(ai.iter_mut())
                    .zip(br.iter_mut())
                    .zip(bi.iter_mut())
                    .zip(cos)
                    .zip(sin)
                {
                    // b · e^{−jθ} = b · (c − j s).
                    let (tr, ti) = (*br * c + *bi * s, *bi * c - *br * s);
                    let (xr, xi) = (*ar, *ai);
                    *ar = xr + tr;
                    *ai = xi + ti;
                    *br = xr - tr;
                    *bi = xi - ti;
                }
            }
            h <<= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec;

    fn dft(x: &[f32]) -> std::vec::Vec<(f64, f64)> {
        let n = x.len();
        (0..=n / 2)
            .map(|k| {
                x.iter().enumerate().fold((0.0, 0.0), |(r, i), (t, &v)| {
                    let a = -2.0 * core::f64::consts::PI * (k * t) as f64 / n as f64;
                    (r + v as f64 * a.cos(), i + v as f64 * a.sin())
                })
            })
            .collect()
    }

    #[test]
    fn matches_the_dft_and_inverts() {
        let mut mem = vec![0.0f32; 1 << 16];
        for n in [4usize, 8, 16, 64, 512, 2048] {
            mem.fill(0.0);
            let mut arena = Arena::new(&mut mem);
            let mut fft = RealFft::new(n, &mut arena).unwrap();
            let x: std::vec::Vec<f32> = (0..n)
                .map(|i| ((i * 7919 % 101) as f32 / 50.0 - 1.0) + (i as f32 * 0.3).sin())
                .collect();
            let mut spec = vec![0.0f32; n + 2];
            fft.forward(&x, &mut spec);
            let want = dft(&x);
            let scale = n as f64;
            for (k, (r, i)) in want.iter().enumerate() {
                let (gr, gi) = (spec[2 * k] as f64, spec[2 * k + 1] as f64);
                assert!(
                    (gr - r).abs() < 1e-4 * scale && (gi - i).abs() < 1e-4 * scale,
                    "n {n} bin {k}: {gr},{gi} vs {r},{i}"
                );
            }
            let mut back = vec![0.0f32; n];
            fft.inverse(&spec, &mut back);
            for (a, b) in x.iter().zip(&back) {
                assert!((a - b).abs() < 1e-5, "n {n}: {a} vs {b}");
            }
        }
        assert!(RealFft::new(1000, &mut Arena::new(&mut mem)).is_err());
    }
}
