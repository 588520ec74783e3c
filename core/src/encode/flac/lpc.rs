//! Prediction: the fixed polynomial predictors, and linear prediction (apodization windows,
//! autocorrelation, Levinson–Durbin, coefficient quantization, residuals).
//!
//! The hot loops are written for the auto-vectorizer: several independent accumulators for the
//! floating-point sums (which the compiler may not reorder), the predictor order a const
//! generic so each residual loop has a fixed body, and 32-bit integer arithmetic wherever the
//! bounds allow it.

/// The highest LPC order any level uses.
pub(super) const MAX_LPC_ORDER: usize = 12;
/// FLAC's limit on the quantized coefficients' precision.
pub(super) const MAX_PRECISION: u32 = 15;
/// The shift is a 5-bit signed field; negative shifts are not allowed.
const MAX_SHIFT: i32 = 15;

/// Sums of |residual| of the fixed predictors of orders 0 to 4 over `x[4..]`, as libFLAC
/// estimates them to guess the best fixed order; `x` holds samples of `bps` (≤ 25) bits.
/// Exact: every term is at most 16 × 2^(bps − 1), and the 32-bit partial sums cover runs
/// short enough not to overflow (64 samples up to 22 bits, 4 above).
pub(super) fn fixed_error_sums(x: &[i32], bps: u32) -> [u64; 5] {
    if bps <= 22 {
        fixed_error_sums_runs::<64>(x)
    } else {
        fixed_error_sums_runs::<4>(x)
    }
}

fn fixed_error_sums_runs<const RUN: usize>(x: &[i32]) -> [u64; 5] {
    let mut total = [0u64; 5];
    if x.len() <= 4 {
        return total;
    }
    let body = &x[4..];
    for (c, chunk) in body.chunks(RUN).enumerate() {
        let base = 4 + c * RUN;
        let mut s = [0u32; 5];
        for (i, &x0) in chunk.iter().enumerate() {
            let n = base + i;
            let (x1, x2, x3, x4) = (x[n - 1], x[n - 2], x[n - 3], x[n - 4]);
            let e1 = x0.wrapping_sub(x1);
            let e2 = e1.wrapping_sub(x1.wrapping_sub(x2));
            let e3 = e2.wrapping_sub(x1.wrapping_sub(x2.wrapping_mul(2)).wrapping_add(x3));
            let e4 = e3.wrapping_sub(
                x1.wrapping_sub(x2.wrapping_mul(3))
                    .wrapping_add(x3.wrapping_mul(3))
                    .wrapping_sub(x4),
            );
            s[0] = s[0].wrapping_add(x0.unsigned_abs());
            s[1] = s[1].wrapping_add(e1.unsigned_abs());
            s[2] = s[2].wrapping_add(e2.unsigned_abs());
            s[3] = s[3].wrapping_add(e3.unsigned_abs());
            s[4] = s[4].wrapping_add(e4.unsigned_abs());
        }
        for (t, v) in total.iter_mut().zip(s) {
            *t += u64::from(v);
        }
    }
    total
}

/// The fixed order libFLAC would guess (the smallest sum, lower orders preferred on ties).
pub(super) fn best_fixed_order(sums: &[u64; 5]) -> usize {
    let mut best = 0;
    for o in 1..5 {
        if sums[o] < sums[best] {
            best = o;
        }
    }
    best
}

/// Expected bits per residual sample of a fixed predictor from its error sum.
pub(super) fn fixed_bits_per_sample(sum: u64, n: usize) -> f64 {
    if sum == 0 || n == 0 {
        return 0.0;
    }
    (std::f64::consts::LN_2 * sum as f64 / n as f64).log2()
}

/// Residual of a fixed predictor of `order` (0–4): `res[i] = e(x[order + i])`. Exact in 32
/// bits for inputs of up to 25 bits (at most 16 × 2^24).
pub(super) fn fixed_residual(x: &[i32], order: usize, res: &mut [i32]) {
    let n = x.len();
    let res = &mut res[..n - order];
    match order {
        0 => res.copy_from_slice(x),
        1 => {
            for (r, w) in res.iter_mut().zip(x.windows(2)) {
                *r = w[1].wrapping_sub(w[0]);
            }
        }
        2 => {
            for (r, w) in res.iter_mut().zip(x.windows(3)) {
                *r = w[2].wrapping_sub(w[1].wrapping_mul(2)).wrapping_add(w[0]);
            }
        }
        3 => {
            for (r, w) in res.iter_mut().zip(x.windows(4)) {
                *r = w[3]
                    .wrapping_sub(w[2].wrapping_mul(3))
                    .wrapping_add(w[1].wrapping_mul(3))
                    .wrapping_sub(w[0]);
            }
        }
        _ => {
            for (r, w) in res.iter_mut().zip(x.windows(5)) {
                *r = w[4]
                    .wrapping_sub(w[3].wrapping_mul(4))
                    .wrapping_add(w[2].wrapping_mul(6))
                    .wrapping_sub(w[1].wrapping_mul(4))
                    .wrapping_add(w[0]);
            }
        }
    }
}

/// A Tukey window of `len` samples with taper fraction `p` (0 < p < 1), as libFLAC builds it:
/// flat, with Hann halves of `p / 2 × len` samples at both ends.
pub(super) fn tukey(len: usize, p: f32) -> Vec<f32> {
    let mut w = vec![1.0f32; len];
    // np + 1 ≤ p / 2 × len < len, so both halves stay inside the window.
    let np = (p / 2.0 * len as f32) as i64 - 1;
    if np > 0 {
        let np = np as usize;
        for n in 0..=np {
            let a = std::f32::consts::PI * n as f32 / np as f32;
            if let Some(v) = w.get_mut(n) {
                *v = 0.5 - 0.5 * a.cos();
            }
            let b = std::f32::consts::PI * (n + np) as f32 / np as f32;
            if let Some(v) = (len + n).checked_sub(np + 1).and_then(|i| w.get_mut(i)) {
                *v = 0.5 - 0.5 * b.cos();
            }
        }
    }
    w
}

/// The window of one part of a block split in `parts` (libFLAC's `subdivide_tukey`): the
/// first and last halves of the part take the ends of the full block's window, so the part
/// is tapered like the block. Returns (start, window) or `None` when the part is too short
/// for prediction.
pub(super) fn partial_window(
    full: &[f32],
    parts: usize,
    index: usize,
) -> Option<(usize, Vec<f32>)> {
    let len = full.len();
    let half = len / parts / 2;
    let start = index * len / parts;
    if len / parts <= 32 || half + start >= len {
        return None;
    }
    let mut w = Vec::with_capacity(2 * half);
    w.extend_from_slice(&full[..half]);
    w.extend_from_slice(&full[len - half..]);
    Some((start, w))
}

/// `out[i] = x[i] × w[i]` in f64 (the autocorrelation's input).
pub(super) fn apply_window(x: &[i32], w: &[f32], out: &mut Vec<f64>) {
    out.clear();
    out.extend(x.iter().zip(w).map(|(&s, &w)| f64::from(s as f32 * w)));
}

/// Autocorrelation of `d` at lags 0..=`lags - 1` (at most `MAX_LPC_ORDER + 1`).
pub(super) fn autocorrelation(d: &[f64], lags: usize, autoc: &mut [f64; MAX_LPC_ORDER + 1]) {
    *autoc = [0.0; MAX_LPC_ORDER + 1];
    let n = d.len();
    for (lag, a) in autoc.iter_mut().enumerate().take(lags.min(n)) {
        let (x, y) = (&d[lag..], &d[..n - lag]);
        let mut acc = [0.0f64; 8];
        let mut xc = x.chunks_exact(8);
        let mut yc = y.chunks_exact(8);
        for (xa, ya) in (&mut xc).zip(&mut yc) {
            for k in 0..8 {
                acc[k] += xa[k] * ya[k];
            }
        }
        let mut tail = 0.0;
        for (a, b) in xc.remainder().iter().zip(yc.remainder()) {
            tail += a * b;
        }
        *a = ((acc[0] + acc[4]) + (acc[1] + acc[5]))
            + ((acc[2] + acc[6]) + (acc[3] + acc[7]))
            + tail;
    }
}

/// Levinson–Durbin: predictor coefficients of every order up to `max_order` (row `o - 1`
/// holds order `o`) and their prediction errors. Returns the highest order computed (fewer
/// when the error reaches zero).
pub(super) fn levinson(
    autoc: &[f64; MAX_LPC_ORDER + 1],
    max_order: usize,
    coefs: &mut [[f64; MAX_LPC_ORDER]; MAX_LPC_ORDER],
    error: &mut [f64; MAX_LPC_ORDER],
) -> usize {
    let mut lpc = [0.0f64; MAX_LPC_ORDER];
    let mut err = autoc[0];
    for i in 0..max_order {
        let mut r = -autoc[i + 1];
        for j in 0..i {
            r -= lpc[j] * autoc[i - j];
        }
        r /= err;
        lpc[i] = r;
        for j in 0..i / 2 {
            let tmp = lpc[j];
            lpc[j] += r * lpc[i - 1 - j];
            lpc[i - 1 - j] += r * tmp;
        }
        if i & 1 == 1 {
            lpc[i / 2] += lpc[i / 2] * r;
        }
        err *= 1.0 - r * r;
        for j in 0..=i {
            coefs[i][j] = -lpc[j];
        }
        error[i] = err;
        if err == 0.0 || !err.is_finite() {
            return i + 1;
        }
    }
    max_order
}

fn expected_bits(err: f64, scale: f64) -> f64 {
    if err > 0.0 {
        (0.5 * (scale * err).log2()).max(0.0)
    } else if err < 0.0 {
        1e32
    } else {
        0.0
    }
}

/// Expected bits per residual sample of an LPC predictor with prediction error `err`.
pub(super) fn lpc_bits_per_sample(err: f64, n: usize) -> f64 {
    expected_bits(err, 0.5 / n as f64)
}

/// The order with the smallest estimated size (residual plus `overhead` bits per coefficient),
/// as libFLAC guesses it.
pub(super) fn best_lpc_order(error: &[f64], n: usize, overhead: u32) -> usize {
    let scale = 0.5 / n as f64;
    let mut best = (0, f64::MAX);
    for (i, &e) in error.iter().enumerate() {
        let order = i + 1;
        let bits = expected_bits(e, scale) * n.saturating_sub(order) as f64
            + (order as u32 * overhead) as f64;
        if bits < best.1 {
            best = (i, bits);
        }
    }
    best.0 + 1
}

/// Quantized predictor: `order` coefficients of `precision` bits and a right shift.
#[derive(Clone, Copy, Debug)]
pub(super) struct Quantized {
    pub coefs: [i32; MAX_LPC_ORDER],
    pub order: usize,
    pub precision: u32,
    pub shift: u32,
}

/// Quantize coefficients to `precision` bits (libFLAC's rule: the largest fits, the rounding
/// error carried to the next coefficient). `None` when they cannot be (all zero, or too
/// large).
pub(super) fn quantize(lp: &[f64], precision: u32) -> Option<Quantized> {
    let order = lp.len();
    let p = precision - 1;
    let qmax = (1i32 << p) - 1;
    let qmin = -(1i32 << p);
    let cmax = lp.iter().fold(0.0f64, |m, c| m.max(c.abs()));
    if cmax <= 0.0 || !cmax.is_finite() {
        return None;
    }
    // log2cmax as frexp gives it, minus one: cmax in [2^l, 2^(l+1)).
    let log2cmax = cmax.log2().floor() as i32;
    let mut shift = p as i32 - log2cmax - 1;
    if shift > MAX_SHIFT {
        shift = MAX_SHIFT;
    } else if shift < -16 {
        return None;
    }
    let mut q = [0i32; MAX_LPC_ORDER];
    let mut carry = 0.0f64;
    let scale = 2f64.powi(shift);
    for (qi, &c) in q.iter_mut().zip(lp) {
        carry += c * scale;
        let v = (carry.round() as i64).clamp(i64::from(qmin), i64::from(qmax)) as i32;
        carry -= f64::from(v);
        *qi = v;
    }
    Some(Quantized {
        coefs: q,
        order,
        precision,
        shift: shift.max(0) as u32,
    })
}

/// Whether the residual of `q` on samples of `bps` bits can be computed in 32-bit arithmetic:
/// the prediction before the shift and the residual both stay inside `i32`.
pub(super) fn fits_32_bits(q: &Quantized, bps: u32) -> bool {
    let coef_sum: u64 = q.coefs[..q.order]
        .iter()
        .map(|c| u64::from(c.unsigned_abs()))
        .sum();
    let max_sample = 1u64 << (bps - 1);
    let Some(max_pred) = coef_sum.checked_mul(max_sample) else {
        return false;
    };
    max_pred < (1u64 << 31) && max_sample + (max_pred >> q.shift) + 1 < (1u64 << 31)
}

/// Residual of a quantized predictor: `res[i] = x[o + i] - (Σ c[j] x[o + i - 1 - j] >> shift)`.
/// `wide` selects 64-bit arithmetic; then `false` is returned when a residual does not fit in
/// 32 bits (the predictor cannot be used).
pub(super) fn lpc_residual(x: &[i32], q: &Quantized, wide: bool, res: &mut [i32]) -> bool {
    macro_rules! dispatch {
        ($f:ident, $($o:literal)*) => {
            match q.order {
                $($o => $f::<$o>(x, &q.coefs, q.shift, res),)*
                _ => false,
            }
        };
    }
    if wide {
        dispatch!(residual_64, 1 2 3 4 5 6 7 8 9 10 11 12)
    } else {
        dispatch!(residual_32, 1 2 3 4 5 6 7 8 9 10 11 12)
    }
}

fn residual_32<const N: usize>(
    x: &[i32],
    c: &[i32; MAX_LPC_ORDER],
    shift: u32,
    res: &mut [i32],
) -> bool {
    let n = x.len();
    if n <= N {
        return true;
    }
    // Coefficients reversed, so the window's j-th sample meets its coefficient.
    let mut rc = [0i32; N];
    for j in 0..N {
        rc[j] = c[N - 1 - j];
    }
    for (r, w) in res[..n - N].iter_mut().zip(x.windows(N + 1)) {
        let mut sum = 0i32;
        for j in 0..N {
            sum = sum.wrapping_add(rc[j].wrapping_mul(w[j]));
        }
        *r = w[N].wrapping_sub(sum >> shift);
    }
    true
}

fn residual_64<const N: usize>(
    x: &[i32],
    c: &[i32; MAX_LPC_ORDER],
    shift: u32,
    res: &mut [i32],
) -> bool {
    let n = x.len();
    if n <= N {
        return true;
    }
    let mut rc = [0i64; N];
    for j in 0..N {
        rc[j] = i64::from(c[N - 1 - j]);
    }
    let mut ok = true;
    for (r, w) in res[..n - N].iter_mut().zip(x.windows(N + 1)) {
        let mut sum = 0i64;
        for j in 0..N {
            sum += rc[j] * i64::from(w[j]);
        }
        let e = i64::from(w[N]) - (sum >> shift);
        ok &= e == i64::from(e as i32);
        *r = e as i32;
    }
    ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_sums_match_the_residuals() {
        let x: Vec<i32> = (0..300)
            .map(|i| ((i * i * 37) % 2001 - 1000) * 1000)
            .collect();
        let sums = fixed_error_sums(&x, 21);
        let mut res = vec![0; x.len()];
        for order in 0..5 {
            fixed_residual(&x, order, &mut res);
            // The sums cover x[4..], the residual x[order..].
            let skip = 4 - order;
            let want: u64 = res[skip..x.len() - order]
                .iter()
                .map(|r| u64::from(r.unsigned_abs()))
                .sum();
            assert_eq!(sums[order], want, "order {order}");
        }
    }

    #[test]
    fn fixed_sums_are_exact_at_25_bits() {
        let m = (1 << 24) - 1;
        let x: Vec<i32> = (0..1000)
            .map(|i| if i % 2 == 0 { m } else { -m - 1 })
            .collect();
        let sums = fixed_error_sums(&x, 25);
        let mut res = vec![0; x.len()];
        fixed_residual(&x, 4, &mut res);
        let want: u64 = res[..x.len() - 4]
            .iter()
            .map(|r| u64::from(r.unsigned_abs()))
            .sum();
        assert_eq!(sums[4], want);
    }

    #[test]
    fn lpc_residual_paths_agree() {
        let x: Vec<i32> = (0..500)
            .map(|i: i32| ((i * 7919) % 65_536) - 32_768)
            .collect();
        for order in 1..=MAX_LPC_ORDER {
            let lp: Vec<f64> = (0..order)
                .map(|j| 0.9 / (j + 1) as f64 * if j % 2 == 0 { 1.0 } else { -1.0 })
                .collect();
            let q = quantize(&lp, 12).unwrap();
            let (mut a, mut b) = (vec![0; 500], vec![0; 500]);
            assert!(fits_32_bits(&q, 16));
            assert!(lpc_residual(&x, &q, false, &mut a));
            assert!(lpc_residual(&x, &q, true, &mut b));
            assert_eq!(a, b, "order {order}");
            // Direct definition.
            for i in order..x.len() {
                let p: i64 = (0..order)
                    .map(|j| i64::from(q.coefs[j]) * i64::from(x[i - 1 - j]))
                    .sum();
                assert_eq!(i64::from(a[i - order]), i64::from(x[i]) - (p >> q.shift));
            }
        }
    }

    #[test]
    fn quantization_respects_the_precision() {
        for precision in 5..=15 {
            let q = quantize(&[1.9, -0.95, 0.3], precision).unwrap();
            let lim = 1i32 << (precision - 1);
            assert!(q.coefs[..3].iter().all(|&c| c >= -lim && c < lim));
            assert!(q.shift <= 15);
        }
        assert!(quantize(&[0.0, 0.0], 12).is_none());
    }
}
