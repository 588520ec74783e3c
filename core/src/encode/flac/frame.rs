//! One frame: the choice of subframe for every channel (and of the stereo decorrelation),
//! then the frame header, the subframes and the CRCs.
//!
//! Candidates are compared by size computed analytically (header fields plus the Rice
//! estimate of the residual); only the chosen subframe of each channel is written.

use super::bits::{BitWriter, crc8, crc16};
use super::lpc::{self, MAX_LPC_ORDER, Quantized};
use super::rice::{self, RiceLimits, RicePlan, RiceSearch};

/// How LPC windows are chosen (libFLAC's `-A`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Apodization {
    /// `tukey(0.5)` over the block.
    Tukey,
    /// `subdivide_tukey(n)`: the block, then its halves, thirds... each alone and (from
    /// thirds on) the block without it.
    SubdivideTukey(usize),
}

/// The encoder settings of a compression level (libFLAC's presets).
#[derive(Clone, Copy, Debug)]
pub(super) struct Preset {
    pub block_size: usize,
    pub mid_side: bool,
    /// Choose between independent and mid/side from first differences instead of encoding
    /// all four channels.
    pub loose: bool,
    pub max_lpc_order: usize,
    pub max_partition_order: u32,
    pub apodization: Apodization,
    pub escapes: bool,
}

pub(super) fn preset(level: u8) -> Preset {
    let (block_size, mid_side, loose, max_lpc_order, max_partition_order, apodization) = match level
    {
        0 => (1152, false, false, 0, 3, Apodization::Tukey),
        1 => (1152, true, true, 0, 3, Apodization::Tukey),
        2 => (1152, true, false, 0, 3, Apodization::Tukey),
        3 => (4096, false, false, 6, 4, Apodization::Tukey),
        4 => (4096, true, true, 8, 4, Apodization::Tukey),
        5 => (4096, true, false, 8, 5, Apodization::Tukey),
        6 => (4096, true, false, 8, 6, Apodization::SubdivideTukey(2)),
        7 => (4096, true, false, 12, 6, Apodization::SubdivideTukey(2)),
        _ => (4096, true, false, 12, 6, Apodization::SubdivideTukey(3)),
    };
    Preset {
        block_size,
        mid_side,
        loose,
        max_lpc_order,
        max_partition_order,
        apodization,
        // libFLAC never escapes at its presets; we let the smallest level try it.
        escapes: level >= 8,
    }
}

/// The quantized coefficients' precision for a stream, libFLAC's rule for its block size.
pub(super) fn lpc_precision(bits: u32, block_size: usize) -> u32 {
    if bits < 16 {
        (2 + bits / 2).max(5)
    } else if bits == 16 {
        match block_size {
            0..=192 => 7,
            193..=384 => 8,
            385..=576 => 9,
            577..=1152 => 10,
            1153..=2304 => 11,
            2305..=4608 => 12,
            _ => 13,
        }
    } else {
        match block_size {
            0..=384 => lpc::MAX_PRECISION - 2,
            385..=1152 => lpc::MAX_PRECISION - 1,
            _ => lpc::MAX_PRECISION,
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Constant,
    Verbatim,
    Fixed(usize),
    Lpc(Quantized),
}

/// The best subframe found for one channel signal, with its residual.
struct Best {
    kind: Kind,
    wasted: u32,
    /// Bits per sample after the wasted bits are removed.
    bps: u32,
    bits: u64,
    rice: RicePlan,
    /// The residual of `kind` (fixed or LPC), samples `order..n` of the block.
    res: Vec<i32>,
    /// The signal shifted right by `wasted` (only filled when `wasted` > 0).
    shifted: Vec<i32>,
}

impl Best {
    fn new() -> Best {
        Best {
            kind: Kind::Verbatim,
            wasted: 0,
            bps: 0,
            bits: u64::MAX,
            rice: RicePlan::default(),
            res: Vec::new(),
            shifted: Vec::new(),
        }
    }

    /// The signal the subframe codes.
    fn signal<'a>(&'a self, x: &'a [i32]) -> &'a [i32] {
        if self.wasted > 0 { &self.shifted } else { x }
    }
}

/// Windows for one block length.
struct Windows {
    len: usize,
    full: Vec<f32>,
    /// (parts, index, start, window) of the partial windows.
    parts: Vec<(usize, usize, usize, Vec<f32>)>,
}

/// Encodes frames; holds every workspace, so encoding allocates nothing once warm.
pub(super) struct FrameEncoder {
    preset: Preset,
    channels: usize,
    bits: u32,
    precision: u32,
    rate_code: (u8, Option<Vec<u8>>),
    bits_code: u8,
    windows: Option<Windows>,
    windowed: Vec<f64>,
    search: RiceSearch,
    /// Candidate residual and plan, swapped with a channel's best on improvement.
    cand_res: Vec<i32>,
    cand_rice: RicePlan,
    /// Per coded channel (for stereo with mid/side: left, right, mid, side).
    best: Vec<Best>,
    mid: Vec<i32>,
    side: Vec<i32>,
    /// The frame header being built (reused).
    header: Vec<u8>,
    out: BitWriter,
}

impl FrameEncoder {
    pub(super) fn new(preset: Preset, channels: usize, bits: u32, rate: u32) -> FrameEncoder {
        let coded = if channels == 2 && preset.mid_side {
            4
        } else {
            channels
        };
        FrameEncoder {
            preset,
            channels,
            bits,
            precision: lpc_precision(bits, preset.block_size),
            rate_code: rate_code(rate),
            bits_code: match bits {
                8 => 1,
                16 => 4,
                20 => 5,
                24 => 6,
                _ => 0, // from STREAMINFO
            },
            windows: None,
            windowed: Vec::new(),
            search: RiceSearch::new(),
            cand_res: Vec::new(),
            cand_rice: RicePlan::default(),
            best: (0..coded).map(|_| Best::new()).collect(),
            mid: Vec::new(),
            side: Vec::new(),
            header: Vec::with_capacity(16),
            out: BitWriter::new(),
        }
    }

    /// The bytes of the frame last encoded.
    pub(super) fn bytes(&self) -> &[u8] {
        self.out.bytes()
    }

    /// Encode one frame of `planes` (all the same length, 1 to 65,535 samples); its bytes are
    /// then in [`FrameEncoder::bytes`].
    pub(super) fn encode(&mut self, planes: &[Vec<i32>], frame_number: u64) {
        let n = planes[0].len();
        let stereo = self.channels == 2 && self.preset.mid_side;
        // 0–7: independent channels (count − 1); 8 left/side, 9 side/right, 10 mid/side.
        let assignment;
        if stereo {
            let (l, r) = (&planes[0], &planes[1]);
            let (mut try_indep, mut try_ms) = (true, true);
            if self.preset.loose {
                let (lr, ms) = loose_estimate(l, r);
                try_indep = lr < ms;
                try_ms = !try_indep;
            }
            let mut best = std::mem::take(&mut self.best);
            if try_indep {
                self.analyze(l, self.bits, &mut best[0]);
                self.analyze(r, self.bits, &mut best[1]);
            }
            if try_ms {
                self.mid.clear();
                self.side.clear();
                self.mid
                    .extend(l.iter().zip(r).map(|(&a, &b)| (a + b) >> 1));
                self.side.extend(l.iter().zip(r).map(|(&a, &b)| a - b));
                let (mid, side) = (
                    std::mem::take(&mut self.mid),
                    std::mem::take(&mut self.side),
                );
                self.analyze(&mid, self.bits, &mut best[2]);
                self.analyze(&side, self.bits + 1, &mut best[3]);
                (self.mid, self.side) = (mid, side);
            }
            assignment = if !try_ms {
                1
            } else if !try_indep {
                10
            } else {
                let b = |i: usize| best[i].bits;
                let options = [
                    (1u8, b(0) + b(1)),
                    (8, b(0) + b(3)),
                    (9, b(3) + b(1)),
                    (10, b(2) + b(3)),
                ];
                options.iter().min_by_key(|o| o.1).map_or(1, |o| o.0)
            };
            self.best = best;
        } else {
            let mut best = std::mem::take(&mut self.best);
            for (p, b) in planes.iter().zip(best.iter_mut()) {
                self.analyze(p, self.bits, b);
            }
            self.best = best;
            assignment = (self.channels - 1) as u8;
        }

        self.out.clear();
        self.write_header(n, assignment, frame_number);
        let (mid, side) = (&self.mid, &self.side);
        // The signal and analysis of each coded channel, in the frame's order.
        for (c, plane) in planes.iter().enumerate() {
            let (x, i) = match (assignment, c) {
                (8, 0) => (plane, 0),
                (8, _) => (side, 3),
                (9, 0) => (side, 3),
                (9, _) => (plane, 1),
                (10, 0) => (mid, 2),
                (10, _) => (side, 3),
                _ => (plane, c),
            };
            write_subframe(&mut self.out, &self.best[i], x);
        }
        self.out.align();
        let crc = crc16(self.out.bytes());
        self.out.push_bytes(&crc.to_be_bytes());
    }

    fn write_header(&mut self, n: usize, assignment: u8, frame_number: u64) {
        let h = &mut self.header;
        h.clear();
        h.extend_from_slice(&[0xFF, 0xF8]); // sync, fixed block size
        let bs_code: u8 = match n {
            192 => 1,
            576 => 2,
            1152 => 3,
            2304 => 4,
            4608 => 5,
            256 => 8,
            512 => 9,
            1024 => 10,
            2048 => 11,
            4096 => 12,
            8192 => 13,
            16384 => 14,
            32768 => 15,
            _ if n <= 256 => 6,
            _ => 7,
        };
        h.push((bs_code << 4) | self.rate_code.0);
        h.push((assignment << 4) | (self.bits_code << 1));
        utf8_number(frame_number, h);
        match bs_code {
            6 => h.push((n - 1) as u8),
            7 => h.extend_from_slice(&((n - 1) as u16).to_be_bytes()),
            _ => {}
        }
        if let Some(e) = &self.rate_code.1 {
            h.extend_from_slice(e);
        }
        let crc = crc8(h);
        h.push(crc);
        self.out.push_bytes(h);
    }

    /// Find the smallest subframe for signal `x` of `bps` bits.
    fn analyze(&mut self, x: &[i32], bps: u32, best: &mut Best) {
        let n = x.len();
        // Wasted bits: trailing zeros common to every sample.
        let or = x.iter().fold(0i32, |a, &s| a | s);
        let wasted = if or == 0 {
            0
        } else {
            or.trailing_zeros().min(bps - 1)
        };
        best.wasted = wasted;
        if wasted > 0 {
            best.shifted.clear();
            best.shifted.extend(x.iter().map(|&s| s >> wasted));
        }
        let bps = bps - wasted;
        best.bps = bps;
        let header = 8 + u64::from(wasted);
        best.kind = Kind::Verbatim;
        best.bits = header + n as u64 * u64::from(bps);
        if n <= 4 {
            return;
        }
        let shifted = std::mem::take(&mut best.shifted);
        let x = if wasted > 0 { &shifted[..] } else { x };
        let limits = RiceLimits {
            max_order: self.preset.max_partition_order,
            wide: self.bits > 16,
            escapes: self.preset.escapes,
        };

        let sums = lpc::fixed_error_sums(x, bps);
        if sums[1] == 0 && x.iter().all(|&s| s == x[0]) {
            best.kind = Kind::Constant;
            best.bits = header + u64::from(bps);
            best.shifted = shifted;
            return;
        }
        // Fixed predictor of the guessed order.
        let order = lpc::best_fixed_order(&sums);
        if lpc::fixed_bits_per_sample(sums[order], n - 4) < f64::from(bps) {
            self.cand_res.resize(n, 0);
            lpc::fixed_residual(x, order, &mut self.cand_res);
            let r = rice::search(
                &mut self.search,
                &self.cand_res[..n - order],
                n,
                order,
                limits,
                &mut self.cand_rice,
            );
            let bits = header + (order as u64) * u64::from(bps) + r;
            if bits < best.bits {
                best.bits = bits;
                best.kind = Kind::Fixed(order);
                std::mem::swap(&mut best.res, &mut self.cand_res);
                std::mem::swap(&mut best.rice, &mut self.cand_rice);
            }
        }

        let max_order = self.preset.max_lpc_order.min(n - 1);
        if max_order > 0 {
            self.lpc_candidates(x, bps, header, max_order, limits, best);
        }
        best.shifted = shifted;
    }

    /// Try the LPC predictor of every window of the level.
    fn lpc_candidates(
        &mut self,
        x: &[i32],
        bps: u32,
        header: u64,
        max_order: usize,
        limits: RiceLimits,
        best: &mut Best,
    ) {
        let n = x.len();
        if self.windows.as_ref().is_none_or(|w| w.len != n) {
            self.windows = Some(make_windows(n, self.preset.apodization));
        }
        let Some(windows) = self.windows.take() else {
            return;
        };
        let mut root = [0.0f64; MAX_LPC_ORDER + 1];
        lpc::apply_window(x, &windows.full, &mut self.windowed);
        lpc::autocorrelation(&self.windowed, max_order + 1, &mut root);
        self.try_autoc(x, bps, header, max_order, limits, &root, best);
        for (parts, _, start, w) in &windows.parts {
            let seg = &x[*start..*start + w.len()];
            let mut autoc = [0.0f64; MAX_LPC_ORDER + 1];
            lpc::apply_window(seg, w, &mut self.windowed);
            lpc::autocorrelation(&self.windowed, max_order + 1, &mut autoc);
            self.try_autoc(x, bps, header, max_order, limits, &autoc, best);
            if *parts >= 3 {
                // The block without this part ("punchout"): the block's autocorrelation less
                // the part's.
                let mut rest = [0.0f64; MAX_LPC_ORDER + 1];
                for ((r, a), b) in rest.iter_mut().zip(&root).zip(&autoc) {
                    *r = a - b;
                }
                self.try_autoc(x, bps, header, max_order, limits, &rest, best);
            }
        }
        self.windows = Some(windows);
    }

    #[allow(clippy::too_many_arguments)]
    fn try_autoc(
        &mut self,
        x: &[i32],
        bps: u32,
        header: u64,
        max_order: usize,
        limits: RiceLimits,
        autoc: &[f64; MAX_LPC_ORDER + 1],
        best: &mut Best,
    ) {
        let n = x.len();
        if !autoc[0].is_finite() || autoc[0] <= 0.0 {
            return;
        }
        let mut coefs = [[0.0f64; MAX_LPC_ORDER]; MAX_LPC_ORDER];
        let mut error = [0.0f64; MAX_LPC_ORDER];
        let max_order = lpc::levinson(autoc, max_order, &mut coefs, &mut error);
        let order = lpc::best_lpc_order(&error[..max_order], n, bps + self.precision);
        if lpc::lpc_bits_per_sample(error[order - 1], n - order) >= f64::from(bps) {
            return;
        }
        let mut precision = self.precision;
        if bps <= 17 {
            // Keep 32-bit arithmetic enough for decoders of 16-bit streams.
            let ilog2 = usize::BITS - 1 - order.leading_zeros();
            precision = precision.min(32 - bps - ilog2).max(5);
        }
        let Some(q) = lpc::quantize(&coefs[order - 1][..order], precision) else {
            return;
        };
        self.cand_res.resize(n, 0);
        let wide = !lpc::fits_32_bits(&q, bps);
        if !lpc::lpc_residual(x, &q, wide, &mut self.cand_res) {
            return;
        }
        let r = rice::search(
            &mut self.search,
            &self.cand_res[..n - order],
            n,
            order,
            limits,
            &mut self.cand_rice,
        );
        let bits = header + 9 + (order as u64) * u64::from(precision + bps) + r;
        if bits < best.bits {
            best.bits = bits;
            best.kind = Kind::Lpc(q);
            std::mem::swap(&mut best.res, &mut self.cand_res);
            std::mem::swap(&mut best.rice, &mut self.cand_rice);
        }
    }
}

fn make_windows(n: usize, apodization: Apodization) -> Windows {
    match apodization {
        Apodization::Tukey => Windows {
            len: n,
            full: lpc::tukey(n, 0.5),
            parts: Vec::new(),
        },
        Apodization::SubdivideTukey(parts) => {
            let full = lpc::tukey(n, 0.5 / parts as f32);
            let mut list = Vec::new();
            for depth in 2..=parts {
                for index in 0..depth {
                    if let Some((start, w)) = lpc::partial_window(&full, depth, index) {
                        list.push((depth, index, start, w));
                    }
                }
            }
            Windows {
                len: n,
                full,
                parts: list,
            }
        }
    }
}

/// libFLAC's loose mid/side choice: sums of first differences of left+right against mid+side.
fn loose_estimate(l: &[i32], r: &[i32]) -> (u64, u64) {
    let (mut lr, mut ms) = (0u64, 0u64);
    for i in 1..l.len().min(r.len()) {
        let pl = i64::from(l[i]) - i64::from(l[i - 1]);
        let pr = i64::from(r[i]) - i64::from(r[i - 1]);
        lr += pl.unsigned_abs() + pr.unsigned_abs();
        ms += ((pl + pr) >> 1).unsigned_abs() + (pl - pr).unsigned_abs();
    }
    (lr, ms)
}

fn write_subframe(w: &mut BitWriter, best: &Best, x: &[i32]) {
    let x = best.signal(x);
    let bps = best.bps;
    let type_code = match best.kind {
        Kind::Constant => 0,
        Kind::Verbatim => 1,
        Kind::Fixed(o) => 8 | o as u32,
        Kind::Lpc(q) => 32 | (q.order as u32 - 1),
    };
    w.put(1, 0);
    w.put(6, type_code);
    if best.wasted > 0 {
        w.put(1, 1);
        w.put_zeros(best.wasted - 1);
        w.put(1, 1);
    } else {
        w.put(1, 0);
    }
    let n = x.len();
    match best.kind {
        Kind::Constant => w.put_signed(bps, x[0]),
        Kind::Verbatim => {
            for &s in x {
                w.put_signed(bps, s);
            }
        }
        Kind::Fixed(order) => {
            for &s in &x[..order] {
                w.put_signed(bps, s);
            }
            rice::write(w, &best.res[..n - order], n, order, &best.rice);
        }
        Kind::Lpc(q) => {
            for &s in &x[..q.order] {
                w.put_signed(bps, s);
            }
            w.put(4, q.precision - 1);
            w.put_signed(5, q.shift as i32);
            for &c in &q.coefs[..q.order] {
                w.put_signed(q.precision, c);
            }
            rice::write(w, &best.res[..n - q.order], n, q.order, &best.rice);
        }
    }
}

/// The frame header's sample rate code and its extra bytes.
fn rate_code(rate: u32) -> (u8, Option<Vec<u8>>) {
    let direct = match rate {
        88_200 => Some(1),
        176_400 => Some(2),
        192_000 => Some(3),
        8_000 => Some(4),
        16_000 => Some(5),
        22_050 => Some(6),
        24_000 => Some(7),
        32_000 => Some(8),
        44_100 => Some(9),
        48_000 => Some(10),
        96_000 => Some(11),
        _ => None,
    };
    if let Some(c) = direct {
        (c, None)
    } else if rate.is_multiple_of(1000) && rate / 1000 <= 255 {
        (12, Some(vec![(rate / 1000) as u8]))
    } else if rate <= 0xFFFF {
        (13, Some((rate as u16).to_be_bytes().to_vec()))
    } else if rate.is_multiple_of(10) && rate / 10 <= 0xFFFF {
        (14, Some(((rate / 10) as u16).to_be_bytes().to_vec()))
    } else {
        (0, None) // from STREAMINFO
    }
}

/// The frame number in FLAC's UTF-8-like coding (up to 36 bits, 7 bytes).
fn utf8_number(v: u64, out: &mut Vec<u8>) {
    if v < 0x80 {
        out.push(v as u8);
        return;
    }
    // Continuation bytes carry 6 bits each; the first byte holds what is left.
    let len = match v {
        0..0x800 => 2,
        0x800..0x1_0000 => 3,
        0x1_0000..0x20_0000 => 4,
        0x20_0000..0x400_0000 => 5,
        0x400_0000..0x8000_0000 => 6,
        _ => 7,
    };
    let lead_mark: u8 = !(0xFFu8 >> len);
    let first = (v >> (6 * (len - 1))) as u8;
    out.push(lead_mark | first);
    for i in (0..len - 1).rev() {
        out.push(0x80 | ((v >> (6 * i)) & 0x3F) as u8);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_numbers_code_like_utf8() {
        for v in [0u64, 0x7F, 0x80, 0x7FF, 0x800, 0xFFFF, 0x1_0000, 0x10_FFFF] {
            let mut got = Vec::new();
            utf8_number(v, &mut got);
            let c = char::from_u32(v as u32).unwrap_or('\u{FFFF}');
            if (v as u32) < 0xD800 || (v as u32) > 0xDFFF {
                let mut buf = [0u8; 4];
                assert_eq!(got, c.encode_utf8(&mut buf).as_bytes(), "{v:#x}");
            }
        }
        let mut got = Vec::new();
        utf8_number((1 << 36) - 1, &mut got);
        assert_eq!(got, [0xFE, 0xBF, 0xBF, 0xBF, 0xBF, 0xBF, 0xBF]);
        let mut got = Vec::new();
        utf8_number(0x7FFF_FFFF, &mut got);
        assert_eq!(got, [0xFD, 0xBF, 0xBF, 0xBF, 0xBF, 0xBF]);
    }

    #[test]
    fn rate_codes() {
        assert_eq!(rate_code(44_100), (9, None));
        assert_eq!(rate_code(11_000), (12, Some(vec![11])));
        assert_eq!(rate_code(22_051), (13, Some(vec![0x56, 0x23])));
        assert_eq!(
            rate_code(384_000),
            (14, Some(38_400u16.to_be_bytes().to_vec()))
        );
        assert_eq!(rate_code(655_351), (0, None));
        assert_eq!(rate_code(100_001), (0, None));
    }
}
