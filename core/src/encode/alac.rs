//! Apple Lossless (ALAC) in M4A: packets from our own encoder, which makes the choices of
//! Apple's open-source reference encoder, in Sluice's M4A writer ([`AlacEncoder`], the `alac`
//! codec of the format registry).
//!
//! A packet holds up to 4096 frames (only the last one of a stream fewer). It is a sequence
//! of elements, each one channel (SCE) or a channel pair (CPE), closed by an END tag and
//! padded to a byte. An element starts with its 3-bit tag, a 4-bit instance number, 12
//! unused bits, a flag for a short packet (then its frame count in 32 bits), the number of
//! low bytes split off each sample (0, 1 or 2) and a flag for an uncompressed element, whose
//! samples then simply follow at the full bit depth.
//!
//! A compressed element gives, for a pair, a matrix that decorrelates the two channels:
//! `u = (res·L + (4 − res)·R) >> 2`, `v = L − R` (or L and R as they are when `res` is 0).
//! Then, per channel, the order of an adaptive linear predictor and its 16-bit starting
//! coefficients (nine fraction bits). The predictor forecasts each sample from the previous
//! `order` samples, taken relative to the sample before them, and after each sample nudges
//! the coefficients by one step towards a smaller residual; the decoder does the same, so
//! only the starting coefficients are sent. For 24- and 32-bit audio the low byte (two
//! bytes) of every sample is split off first and stored raw after the headers; only the
//! upper 16 bits are predicted. Last come the residuals in the adaptive Golomb ("AG") code:
//! a Rice-like code of modulus 2^k − 1 whose k follows a running mean of the coded values
//! (growth `pb` 40 of 512 per value, start `mb` 10, k at most `kb` 14), values whose
//! quotient would reach 9 written raw after nine ones, and runs of zeros sent as a count when
//! the mean is small.
//!
//! As Apple's encoder does, this one decorrelates each pair with the cheapest of five
//! matrices, tries orders 4 and 8 with coefficients carried from the previous packet and
//! converged on the start of this one, and falls back to the uncompressed element whenever
//! that is smaller. Channels arrive in WAVE order (L R C LFE Ls Rs, or L R C LFE Ls Rs Cs and
//! L R C LFE Ls Rs Lc Rc for 7 and 8) and are stored in ALAC's (C L R Ls Rs LFE...), which
//! ffmpeg's decoder turns back into WAVE order.
//!
//! Two details keep the decoders in agreement where they read the format differently. A
//! coded value of 65535 right after a run of zeros would move Apple's decoder one way and
//! ffmpeg's and Symphonia's another, so an element where one occurs goes uncompressed. And an
//! uncompressed 32-bit pair says two low bytes, which decoders ignore there, because ffmpeg
//! refuses a pair whose coded samples would take 33 bits before it reads the flag.

use super::m4a::{M4aWriter, Track, audio_sample_entry, full};
use super::{EncodeError, Encoder};
use crate::block::{Block, SignalSpec};
use std::fs::File;
use std::path::PathBuf;

/// Frames in every packet but the last (the `frameLength` of the cookie).
pub const ALAC_FRAMES_PER_PACKET: u32 = 4096;

const FRAMES: usize = ALAC_FRAMES_PER_PACKET as usize;
/// Growth of the entropy coder's running mean, in 512ths per coded value (the cookie's `pb`).
const PB: u32 = 40;
/// Starting value of the running mean (`mb`).
const MB: u32 = 10;
/// Largest Rice parameter (`kb`).
const KB: u32 = 14;
/// The longest run the cookie announces (`maxRun`; decoders do not use it).
const MAX_RUN: u16 = 255;
/// Fraction bits of the predictor's coefficients.
const DEN_SHIFT: u32 = 9;
/// The stereo matrix weighs in quarters; `res` runs from 0 (no matrix) to 4.
const MIX_BITS: u32 = 2;
const MAX_MIX_RES: i32 = 4;
/// Passes over the first 32nd of a packet that converge the coefficients before they are sent.
const CONVERGE_PASSES: usize = 8;
/// Sent coefficients stay this far inside 16 bits: a packet moves each by at most one step
/// per frame, and decoders keep them in 16 bits.
const COEF_LIMIT: i32 = i16::MAX as i32 - FRAMES as i32;
/// The ones that open a raw value of the entropy code.
const ESCAPE_PREFIX: u32 = 9;
/// The predictor's starting coefficients (Apple's), for the most recent sample first.
const START_COEFS: [i32; 3] = [
    (38 << DEN_SHIFT) >> 4,
    (-29 << DEN_SHIFT) >> 4,
    (-2 << DEN_SHIFT) >> 4,
];

const TAG_SCE: u32 = 0;
const TAG_CPE: u32 = 1;
const TAG_END: u32 = 7;

/// The elements of a packet for each channel count, in stream order.
const ELEMENTS: [&[u32]; 8] = [
    &[TAG_SCE],
    &[TAG_CPE],
    &[TAG_SCE, TAG_CPE],
    &[TAG_SCE, TAG_CPE, TAG_SCE],
    &[TAG_SCE, TAG_CPE, TAG_CPE],
    &[TAG_SCE, TAG_CPE, TAG_CPE, TAG_SCE],
    &[TAG_SCE, TAG_CPE, TAG_CPE, TAG_SCE, TAG_SCE],
    &[TAG_SCE, TAG_CPE, TAG_CPE, TAG_CPE, TAG_SCE],
];

/// For each channel count, the input (WAVE) channel that goes in each ALAC channel: ALAC's
/// order is C L R, then Cs (4 channels), Ls Rs (5), Ls Rs LFE (6), Ls Rs Cs LFE (7) or, for 8,
/// C Lc Rc L R Ls Rs LFE. It is the table ffmpeg's decoder uses to put them back.
const WAVE_OF_ALAC: [&[usize]; 8] = [
    &[0],
    &[0, 1],
    &[2, 0, 1],
    &[2, 0, 1, 3],
    &[2, 0, 1, 3, 4],
    &[2, 0, 1, 4, 5, 3],
    &[2, 0, 1, 4, 5, 6, 3],
    &[2, 6, 7, 0, 1, 4, 5, 3],
];

/// Apple's channel layout tags for 1 to 8 channels (mono, stereo, MPEG 3.0 B, 4.0 B, 5.0 D,
/// 5.1 D, AAC 6.1, MPEG 7.1 B).
const LAYOUT_TAGS: [u32; 8] = [
    (100 << 16) | 1,
    (101 << 16) | 2,
    (113 << 16) | 3,
    (116 << 16) | 4,
    (120 << 16) | 5,
    (124 << 16) | 6,
    (142 << 16) | 7,
    (127 << 16) | 8,
];

/// An ALAC encoder: configuration, the predictor state carried from packet to packet, and
/// work buffers kept between packets.
pub struct AlacPacketEncoder {
    channels: usize,
    depth: u32,
    rate: u32,
    /// Bits split off the bottom of each sample before prediction (8 for 24-bit, 16 for 32).
    low_bits: u32,
    /// The range of a sample; input outside it is clamped.
    min: i32,
    max: i32,
    /// Predictor coefficients per ALAC channel.
    coefs: Vec<Coefs>,
    work: Work,
    /// The packet being written (`encode` returns a copy).
    packet: Vec<u8>,
    largest: u32,
    bytes: u64,
    frames: u64,
}

/// The planar signals of one element (each `FRAMES` long).
struct Work {
    /// The channels, with the low bits split off...
    left: Vec<i32>,
    right: Vec<i32>,
    /// ...and those low bits.
    low_left: Vec<u32>,
    low_right: Vec<u32>,
    /// The channels after the stereo matrix.
    u: Vec<i32>,
    v: Vec<i32>,
    /// Residuals.
    res_u: Vec<i32>,
    res_v: Vec<i32>,
}

/// One channel's coefficient sets for both orders, carried from packet to packet (Apple's
/// encoder found that this compresses better than starting afresh), most recent sample first.
#[derive(Clone, Copy)]
struct Coefs {
    four: [i32; 4],
    eight: [i32; 8],
}

impl AlacPacketEncoder {
    /// An encoder for `channels` (1 to 8) channels of `bit_depth`-bit samples (16, 20, 24 or
    /// 32) at `rate` Hz (any rate above 0).
    pub fn new(channels: usize, bit_depth: u32, rate: u32) -> Result<Self, String> {
        if !(1..=8).contains(&channels) {
            return Err(format!("ALAC takes 1 to 8 channels, not {channels}"));
        }
        let low_bits = match bit_depth {
            16 | 20 => 0,
            24 => 8,
            32 => 16,
            _ => return Err(format!("ALAC takes 16, 20, 24 or 32 bits, not {bit_depth}")),
        };
        if rate == 0 {
            return Err("ALAC needs a sample rate above 0".to_string());
        }
        let half = 1i64 << (bit_depth - 1);
        let buffer = || vec![0i32; FRAMES];
        Ok(AlacPacketEncoder {
            channels,
            depth: bit_depth,
            rate,
            low_bits,
            min: (-half) as i32,
            max: (half - 1) as i32,
            coefs: vec![Coefs::new(); channels],
            work: Work {
                left: buffer(),
                right: buffer(),
                low_left: vec![0; FRAMES],
                low_right: vec![0; FRAMES],
                u: buffer(),
                v: buffer(),
                res_u: buffer(),
                res_v: buffer(),
            },
            packet: Vec::new(),
            largest: 0,
            bytes: 0,
            frames: 0,
        })
    }

    /// The 24-byte `ALACSpecificConfig` (the "magic cookie"), big-endian, as the `alac` box
    /// of an M4A sample entry and the `kuki` chunk of a CAF file hold it. `max_frame_bytes`
    /// and `avg_bitrate` describe the stream ([`Self::largest_packet`] and
    /// [`Self::average_bitrate`] once every packet is encoded; 0 for unknown).
    pub fn cookie(&self, max_frame_bytes: u32, avg_bitrate: u32) -> Vec<u8> {
        let mut c = Vec::with_capacity(24);
        c.extend_from_slice(&ALAC_FRAMES_PER_PACKET.to_be_bytes());
        c.push(0); // compatible version
        c.push(self.depth as u8);
        c.extend_from_slice(&[PB as u8, MB as u8, KB as u8, self.channels as u8]);
        c.extend_from_slice(&MAX_RUN.to_be_bytes());
        c.extend_from_slice(&max_frame_bytes.to_be_bytes());
        c.extend_from_slice(&avg_bitrate.to_be_bytes());
        c.extend_from_slice(&self.rate.to_be_bytes());
        c
    }

    /// For 3 or more channels, the 24-byte `ALACChannelLayoutInfo` (a `chan` atom with
    /// Apple's layout tag for the channel count) that follows the cookie; `None` for mono and
    /// stereo, which need none.
    pub fn channel_layout_atom(&self) -> Option<Vec<u8>> {
        if self.channels < 3 {
            return None;
        }
        let mut c = Vec::with_capacity(24);
        c.extend_from_slice(&24u32.to_be_bytes());
        c.extend_from_slice(b"chan");
        c.extend_from_slice(&0u32.to_be_bytes()); // version and flags
        c.extend_from_slice(&LAYOUT_TAGS[self.channels - 1].to_be_bytes());
        c.extend_from_slice(&0u32.to_be_bytes()); // channel bitmap
        c.extend_from_slice(&0u32.to_be_bytes()); // channel descriptions
        Some(c)
    }

    /// The largest packet encoded so far, in bytes (the cookie's `maxFrameBytes`).
    pub fn largest_packet(&self) -> u32 {
        self.largest
    }

    /// The average bit rate of the packets encoded so far (the cookie's `avgBitRate`).
    pub fn average_bitrate(&self) -> u32 {
        if self.frames == 0 {
            return 0;
        }
        let bits = u128::from(self.bytes) * 8 * u128::from(self.rate);
        (bits / u128::from(self.frames)).min(u128::from(u32::MAX)) as u32
    }

    /// Encodes one packet of `frames` frames (4096, fewer only for the last packet) from
    /// `interleaved` samples in WAVE channel order, each in the range of the bit depth (values
    /// outside are clamped). `frames` is capped at 4096 and at the frames `interleaved` holds;
    /// with no frame at all the packet is empty.
    pub fn encode(&mut self, interleaved: &[i32], frames: usize) -> Vec<u8> {
        let mut packet = std::mem::take(&mut self.packet);
        self.encode_into(interleaved, frames, &mut packet);
        let copy = packet.clone();
        self.packet = packet;
        copy
    }

    /// [`Self::encode`] into `packet` (cleared first), which keeps its allocation.
    pub fn encode_into(&mut self, interleaved: &[i32], frames: usize, packet: &mut Vec<u8>) {
        packet.clear();
        let n = frames.min(FRAMES).min(interleaved.len() / self.channels);
        if n == 0 {
            return;
        }
        let input = &interleaved[..n * self.channels];
        let mut w = BitWriter::over(std::mem::take(packet));
        let map = WAVE_OF_ALAC[self.channels - 1];
        let (mut alac, mut singles, mut pairs) = (0, 0, 0);
        for &tag in ELEMENTS[self.channels - 1] {
            if tag == TAG_CPE {
                self.encode_pair(&mut w, input, n, (alac, map[alac], map[alac + 1]), pairs);
                alac += 2;
                pairs += 1;
            } else {
                self.encode_single(&mut w, input, n, (alac, map[alac]), singles);
                alac += 1;
                singles += 1;
            }
        }
        w.put(3, TAG_END);
        *packet = w.finish();
        self.largest = self.largest.max(packet.len() as u32);
        self.bytes += packet.len() as u64;
        self.frames += n as u64;
    }

    /// Bits of an element's common header: tag, instance, unused bits, flags and, for a short
    /// packet, its frame count.
    fn header_bits(n: usize) -> u64 {
        3 + 4 + 12 + 4 + if n < FRAMES { 32 } else { 0 }
    }

    /// Writes the common header of an element.
    fn put_header(w: &mut BitWriter, tag: u32, instance: u32, n: usize, low_bytes: u32, raw: bool) {
        w.put(3, tag);
        w.put(4, instance);
        w.put(12, 0);
        w.put(1, u32::from(n < FRAMES));
        w.put(2, low_bytes);
        w.put(1, u32::from(raw));
        if n < FRAMES {
            w.put(32, n as u32);
        }
    }

    /// Loads input channel `ch` into `x` (clamped) and splits off its low bits into `low`.
    fn load(&self, input: &[i32], ch: usize, x: &mut [i32], low: &mut [u32]) {
        let (min, max) = (self.min, self.max);
        for (s, frame) in x.iter_mut().zip(input.chunks_exact(self.channels)) {
            *s = frame[ch].clamp(min, max);
        }
        if self.low_bits > 0 {
            let mask = (1u32 << self.low_bits) - 1;
            for (s, l) in x.iter_mut().zip(low.iter_mut()) {
                *l = *s as u32 & mask;
                *s >>= self.low_bits;
            }
        }
    }

    /// Writes input channels `chans` uncompressed, interleaved, at the full bit depth.
    fn put_raw(&self, w: &mut BitWriter, input: &[i32], chans: &[usize]) {
        let mask = u32::MAX >> (32 - self.depth);
        for frame in input.chunks_exact(self.channels) {
            for &ch in chans {
                w.put(
                    self.depth,
                    frame[ch].clamp(self.min, self.max) as u32 & mask,
                );
            }
        }
    }

    /// Encodes a single channel element for ALAC channel `alac`, input channel `ch`.
    fn encode_single(
        &mut self,
        w: &mut BitWriter,
        input: &[i32],
        n: usize,
        (alac, ch): (usize, usize),
        instance: u32,
    ) {
        let mut work = std::mem::replace(&mut self.work, Work::empty());
        let x = &mut work.left[..n];
        self.load(input, ch, x, &mut work.low_left[..n]);
        let bits = self.depth - self.low_bits;
        let raw_bits = Self::header_bits(n) + (n as u64) * u64::from(self.depth);
        let start = w.mark();
        let coefs = &mut self.coefs[alac];
        let (order, estimate) = coefs.choose_order(x, bits, &mut work.res_u);
        let fixed = Self::header_bits(n) + 16 + 16 + (n as u64) * u64::from(self.low_bits);
        if fixed + estimate < raw_bits {
            Self::put_header(w, TAG_SCE, instance, n, self.low_bits / 8, false);
            w.put(16, 0); // no stereo matrix
            coefs.put_params(w, order);
            if self.low_bits > 0 {
                for &l in &work.low_left[..n] {
                    w.put(self.low_bits, l);
                }
            }
            coefs.predict(order, x, &mut work.res_u, bits);
            let clean = ag_code(&work.res_u[..n], bits, w);
            if clean && w.bits_since(&start) < raw_bits {
                self.work = work;
                return;
            }
            w.rewind(start);
        }
        self.work = work;
        Self::put_header(w, TAG_SCE, instance, n, 0, true);
        self.put_raw(w, input, &[ch]);
    }

    /// Encodes a channel pair element for ALAC channels `alac` and `alac + 1`, input channels
    /// `a` and `b`.
    fn encode_pair(
        &mut self,
        w: &mut BitWriter,
        input: &[i32],
        n: usize,
        (alac, a, b): (usize, usize, usize),
        instance: u32,
    ) {
        let mut work = std::mem::replace(&mut self.work, Work::empty());
        self.load(input, a, &mut work.left[..n], &mut work.low_left[..n]);
        self.load(input, b, &mut work.right[..n], &mut work.low_right[..n]);
        // The matrix's difference takes one more bit.
        let bits = self.depth - self.low_bits + 1;
        let raw_bits = Self::header_bits(n) + 2 * (n as u64) * u64::from(self.depth);
        let start = w.mark();
        let res = self.choose_mix(&mut work, n, alac, bits);
        let Work {
            left,
            right,
            low_left,
            low_right,
            u,
            v,
            res_u,
            res_v,
        } = &mut work;
        mix(&left[..n], &right[..n], res, &mut u[..n], &mut v[..n]);
        let (cu, cv) = pair_mut(&mut self.coefs, alac);
        let (order_u, est_u) = cu.choose_order(&u[..n], bits, res_u);
        let (order_v, est_v) = cv.choose_order(&v[..n], bits, res_v);
        let fixed = Self::header_bits(n) + 16 + 2 * 16 + 2 * (n as u64) * u64::from(self.low_bits);
        if fixed + est_u + est_v < raw_bits {
            Self::put_header(w, TAG_CPE, instance, n, self.low_bits / 8, false);
            w.put(8, MIX_BITS);
            w.put(8, res as u32);
            cu.put_params(w, order_u);
            cv.put_params(w, order_v);
            if self.low_bits > 0 {
                for (&l, &r) in low_left[..n].iter().zip(&low_right[..n]) {
                    w.put(2 * self.low_bits, (l << self.low_bits) | r);
                }
            }
            cu.predict(order_u, &u[..n], res_u, bits);
            let clean_u = ag_code(&res_u[..n], bits, w);
            cv.predict(order_v, &v[..n], res_v, bits);
            let clean_v = ag_code(&res_v[..n], bits, w);
            if clean_u && clean_v && w.bits_since(&start) < raw_bits {
                self.work = work;
                return;
            }
            w.rewind(start);
        }
        self.work = work;
        // Decoders ignore the low bytes of an uncompressed element (Apple's encoder writes 0),
        // but ffmpeg refuses a pair whose coded samples, depth − low bits + 1, would exceed
        // 32 bits before it looks at the flag: for 32-bit audio the field says 2, as it does
        // in the compressed element.
        let low_bytes = if self.depth == 32 { 2 } else { 0 };
        Self::put_header(w, TAG_CPE, instance, n, low_bytes, true);
        self.put_raw(w, input, &[a, b]);
    }

    /// The stereo matrix (`res`, 0 to 4) that codes the first eighth of the packet smallest,
    /// with the order-8 coefficients as they stand. Of the ten channels to try, six differ: `v`
    /// is R without the matrix and L − R with any, and `u` is L both without it and with `res` 4.
    fn choose_mix(&self, work: &mut Work, n: usize, alac: usize, bits: u32) -> i32 {
        let probe = n / 8;
        if probe == 0 {
            return 0;
        }
        let Work {
            left,
            right,
            u,
            v,
            res_u,
            ..
        } = work;
        let cost = |x: &[i32], coefs: [i32; 8], scratch: &mut [i32]| {
            let mut coefs = coefs;
            predict(x, scratch, &mut coefs, bits);
            let mut count = Count(0);
            ag_code(&scratch[..x.len()], bits, &mut count);
            count.0
        };
        let (cu, cv) = (self.coefs[alac].eight, self.coefs[alac + 1].eight);
        let left_cost = cost(&left[..probe], cu, res_u);
        let mut costs = [left_cost + cost(&right[..probe], cv, res_u), 0, 0, 0, 0];
        let mut difference = 0;
        for res in 1..MAX_MIX_RES {
            let (l, r) = (&left[..probe], &right[..probe]);
            mix(l, r, res, &mut u[..probe], &mut v[..probe]);
            if res == 1 {
                difference = cost(&v[..probe], cv, res_u);
            }
            costs[res as usize] = cost(&u[..probe], cu, res_u) + difference;
        }
        // With `res` 4, u is L.
        costs[MAX_MIX_RES as usize] = left_cost + difference;
        // The first of the cheapest, as Apple's encoder picks.
        let mut best = 0;
        for (res, &c) in costs.iter().enumerate() {
            if c < costs[best] {
                best = res;
            }
        }
        best as i32
    }
}

/// Both of two neighbouring entries, mutably.
fn pair_mut(coefs: &mut [Coefs], first: usize) -> (&mut Coefs, &mut Coefs) {
    let (head, tail) = coefs.split_at_mut(first + 1);
    (&mut head[first], &mut tail[0])
}

impl Work {
    /// No buffers (a stand-in while the real ones are lent out).
    fn empty() -> Work {
        Work {
            left: Vec::new(),
            right: Vec::new(),
            low_left: Vec::new(),
            low_right: Vec::new(),
            u: Vec::new(),
            v: Vec::new(),
            res_u: Vec::new(),
            res_v: Vec::new(),
        }
    }
}

impl Coefs {
    fn new() -> Coefs {
        let mut c = Coefs {
            four: [0; 4],
            eight: [0; 8],
        };
        c.four[..3].copy_from_slice(&START_COEFS);
        c.eight[..3].copy_from_slice(&START_COEFS);
        c
    }

    /// Converges both sets on the first 32nd of `x`, then estimates the bits of each order
    /// from its first eighth, scaled to the whole; returns the cheaper order and its estimate
    /// (coefficients included). `scratch` takes residuals.
    fn choose_order(&mut self, x: &[i32], bits: u32, scratch: &mut [i32]) -> (usize, u64) {
        let n = x.len();
        let head = &x[..n / 32];
        for _ in 0..CONVERGE_PASSES {
            predict(head, scratch, &mut self.four, bits);
            predict(head, scratch, &mut self.eight, bits);
        }
        for c in self.four.iter_mut().chain(self.eight.iter_mut()) {
            *c = (*c).clamp(-COEF_LIMIT, COEF_LIMIT);
        }
        let probe = &x[..n / 8];
        if probe.is_empty() {
            return (4, 16 * 4);
        }
        let scale = |count: Count| count.0 * n as u64 / probe.len() as u64;
        let mut four = self.four;
        predict(probe, scratch, &mut four, bits);
        let mut count = Count(0);
        ag_code(&scratch[..probe.len()], bits, &mut count);
        let cost4 = scale(count) + 16 * 4;
        let mut eight = self.eight;
        predict(probe, scratch, &mut eight, bits);
        let mut count = Count(0);
        ag_code(&scratch[..probe.len()], bits, &mut count);
        let cost8 = scale(count) + 16 * 8;
        if cost8 < cost4 {
            (8, cost8)
        } else {
            (4, cost4)
        }
    }

    /// Writes a channel's predictor parameters: mode 0, the coefficients' fraction bits, the
    /// mean's growth factor (4, i.e. `pb` as is), the order and the coefficients.
    fn put_params(&self, w: &mut BitWriter, order: usize) {
        w.put(4, 0);
        w.put(4, DEN_SHIFT);
        w.put(3, 4);
        w.put(5, order as u32);
        let coefs: &[i32] = if order == 8 { &self.eight } else { &self.four };
        for &c in coefs {
            w.put(16, c as u32 & 0xFFFF);
        }
    }

    /// Runs the predictor of `order` over `x` into `out`, adapting the coefficients.
    fn predict(&mut self, order: usize, x: &[i32], out: &mut [i32], bits: u32) {
        if order == 8 {
            predict(x, out, &mut self.eight, bits);
        } else {
            predict(x, out, &mut self.four, bits);
        }
    }
}

/// Apple's stereo matrix: `u = (res·l + (4 − res)·r) >> 2`, `v = l − r`; with `res` 0 the
/// channels as they are.
fn mix(l: &[i32], r: &[i32], res: i32, u: &mut [i32], v: &mut [i32]) {
    if res == 0 {
        u.copy_from_slice(l);
        v.copy_from_slice(r);
        return;
    }
    let rest = (1 << MIX_BITS) - res;
    for (((&a, &b), u), v) in l.iter().zip(r).zip(u.iter_mut()).zip(v.iter_mut()) {
        *u = (res * a + rest * b) >> MIX_BITS;
        *v = a - b;
    }
}

/// The adaptive predictor of order `P` over `x` (`bits`-bit samples): the residuals go to
/// `out` (as long as `x` at least), and `coefs` (most recent sample first) adapt after each
/// sample exactly as the decoder's will. The first sample is sent as it is, the next `P` as
/// differences.
fn predict<const P: usize>(x: &[i32], out: &mut [i32], coefs: &mut [i32; P], bits: u32) {
    let n = x.len();
    let out = &mut out[..n];
    let shift = 32 - bits;
    // Wrap to `bits` bits, as the decoder does.
    let clip = |v: i32| (v << shift) >> shift;
    let Some(&first) = x.first() else {
        return;
    };
    out[0] = first;
    for (o, pair) in out[1..n.min(P + 1)].iter_mut().zip(x.windows(2)) {
        *o = clip(pair[1].wrapping_sub(pair[0]));
    }
    if n <= P + 1 {
        return;
    }
    // Reversed, so that `c[i]` weighs the i-th oldest of the previous `P` samples.
    let mut c: [i32; P] = std::array::from_fn(|i| coefs[P - 1 - i]);
    let half = 1i32 << (DEN_SHIFT - 1);
    let windows = x[..n - 1]
        .windows(P + 1)
        .zip(&x[P + 1..])
        .zip(&mut out[P + 1..]);
    for ((window, &s), o) in windows {
        let Some((&top, past)) = window.split_first() else {
            continue;
        };
        let Some(past) = past.first_chunk::<P>() else {
            continue;
        };
        let d: [i32; P] = std::array::from_fn(|i| top - past[i]);
        let mut sum = 0i32;
        for (&ci, &di) in c.iter().zip(&d) {
            sum = sum.wrapping_add(ci.wrapping_mul(di));
        }
        let guess = half.wrapping_sub(sum) >> DEN_SHIFT;
        let mut e = clip(s.wrapping_sub(top).wrapping_sub(guess));
        *o = e;
        // Step each coefficient, oldest sample first, until the residual has been accounted for.
        if e > 0 {
            for (weight, (ci, &di)) in (1..).zip(c.iter_mut().zip(&d)) {
                *ci -= di.signum();
                e -= weight * (di.abs() >> DEN_SHIFT);
                if e <= 0 {
                    break;
                }
            }
        } else if e < 0 {
            for (weight, (ci, &di)) in (1..).zip(c.iter_mut().zip(&d)) {
                *ci += di.signum();
                e -= weight * (-di.abs() >> DEN_SHIFT);
                if e >= 0 {
                    break;
                }
            }
        }
    }
    *coefs = std::array::from_fn(|i| c[P - 1 - i]);
}

/// Where the entropy coder's bits go: the packet, or a count of them.
trait Sink {
    /// The low `n` bits of `v` (`n` ≤ 32, higher bits of `v` zero).
    fn put(&mut self, n: u32, v: u32);
}

/// Counts bits instead of writing them.
struct Count(u64);

impl Sink for Count {
    #[inline(always)]
    fn put(&mut self, n: u32, _: u32) {
        self.0 += u64::from(n);
    }
}

/// One value of the AG code: `n` in the Rice-like code of modulus 2^k − 1 (the quotient in
/// ones closed by a zero, then the remainder in k − 1 or k bits), or, where the quotient would
/// reach 9, nine ones and `n` in `raw_bits` bits.
#[inline(always)]
fn put_code<S: Sink>(sink: &mut S, n: u32, k: u32, raw_bits: u32) {
    debug_assert!((1..=KB).contains(&k));
    let m = (1u32 << k) - 1;
    let mut q = n >> k;
    if q < ESCAPE_PREFIX {
        // n = q·m + (q + n mod 2^k), and the second term is less than a few times m.
        let mut r = (n & m) + q;
        while r >= m {
            r -= m;
            q += 1;
        }
        if q < ESCAPE_PREFIX {
            let ones = (1u32 << q) - 1;
            if r == 0 {
                sink.put(q + k, ones << k);
            } else {
                sink.put(q + k + 1, (ones << (k + 1)) | (r + 1));
            }
            return;
        }
    }
    sink.put(
        ESCAPE_PREFIX + raw_bits,
        (((1 << ESCAPE_PREFIX) - 1) << raw_bits) | n,
    );
}

/// Codes the residuals `res` (of `raw_bits`-bit signals) in the AG code with the standard
/// parameters. Returns false where a value falls on the one point decoders disagree about
/// (65535 right after a run of zeros: Apple's decoder clamps the running mean on the value
/// before the run's correction is added back, ffmpeg and Symphonia on the value after);
/// such an element is sent uncompressed instead.
fn ag_code<S: Sink>(res: &[i32], raw_bits: u32, sink: &mut S) -> bool {
    let n = res.len();
    let mut mean = MB;
    // 1 right after a run of zeros (the next value cannot be 0, so it is sent less one).
    let mut after_run = 0u32;
    let mut clean = true;
    let mut i = 0;
    while i < n {
        let k = (31 - ((mean >> 9) + 3).leading_zeros()).min(KB);
        let d = res[i];
        i += 1;
        let folded = ((d << 1) ^ (d >> 31)) as u32;
        let value = folded - after_run;
        put_code(sink, value, k, raw_bits);
        clean &= !(after_run == 1 && value == 0xFFFF);
        mean = if value > 0xFFFF {
            0xFFFF
        } else {
            PB * folded + mean - ((PB * mean) >> 9)
        };
        after_run = 0;
        if mean < 128 && i < n {
            let start = i;
            let end = n.min(start + 0xFFFF);
            while i < end && res[i] == 0 {
                i += 1;
            }
            let zeros = (i - start) as u32;
            after_run = u32::from(zeros < 0xFFFF);
            let k = mean.leading_zeros() - 24 + ((mean + 16) >> 6);
            put_code(sink, zeros, k.min(KB), 16);
            mean = 0;
        }
    }
    clean
}

/// Bits appended most significant first.
struct BitWriter {
    bytes: Vec<u8>,
    /// Pending bits, right-aligned; `filled` of them (fewer than 32 between calls).
    acc: u64,
    filled: u32,
}

/// A position of a [`BitWriter`] to come back to.
struct Mark {
    len: usize,
    acc: u64,
    filled: u32,
}

impl BitWriter {
    /// A writer appending to `bytes` (emptied first).
    fn over(mut bytes: Vec<u8>) -> BitWriter {
        bytes.clear();
        BitWriter {
            bytes,
            acc: 0,
            filled: 0,
        }
    }

    fn mark(&self) -> Mark {
        Mark {
            len: self.bytes.len(),
            acc: self.acc,
            filled: self.filled,
        }
    }

    /// Forgets what was written since `mark`.
    fn rewind(&mut self, mark: Mark) {
        self.bytes.truncate(mark.len);
        self.acc = mark.acc;
        self.filled = mark.filled;
    }

    /// Bits written since `mark`.
    fn bits_since(&self, mark: &Mark) -> u64 {
        let now = self.bytes.len() as u64 * 8 + u64::from(self.filled);
        now - (mark.len as u64 * 8 + u64::from(mark.filled))
    }

    /// The bytes, the last one padded with zeros.
    fn finish(mut self) -> Vec<u8> {
        let pad = (8 - self.filled % 8) % 8;
        self.put(pad, 0);
        let whole = self.filled / 8;
        for i in (0..whole).rev() {
            self.bytes.push((self.acc >> (8 * i)) as u8);
        }
        self.bytes
    }
}

impl Sink for BitWriter {
    #[inline(always)]
    fn put(&mut self, n: u32, v: u32) {
        debug_assert!(n <= 32 && (n == 32 || v >> n == 0));
        // `filled` < 32, so `filled + n` ≤ 63 bits fit.
        self.acc = (self.acc << n) | u64::from(v);
        self.filled += n;
        if self.filled >= 32 {
            self.filled -= 32;
            let word = (self.acc >> self.filled) as u32;
            self.bytes.extend_from_slice(&word.to_be_bytes());
        }
    }
}

/// ALAC in M4A: the packet encoder's packets in Sluice's M4A writer, 4096 frames a packet (the
/// last one shorter, given by its own frame count), no priming, so the file holds exactly the
/// input's frames.
pub struct AlacEncoder {
    path: PathBuf,
    mux: M4aWriter,
    packer: AlacPacketEncoder,
    channels: usize,
    bits: u32,
    rate: u32,
    /// Interleaved samples of the packet being gathered.
    pending: Vec<i32>,
    /// The packet being written (kept between packets).
    packet: Vec<u8>,
    /// Frames taken in.
    taken: u64,
}

impl std::fmt::Debug for AlacEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlacEncoder")
            .field("path", &self.path)
            .field("channels", &self.channels)
            .field("bits", &self.bits)
            .finish_non_exhaustive()
    }
}

impl AlacEncoder {
    /// Start an M4A of `spec` in `bits`-bit ALAC into `file` (`path` names it in errors).
    pub fn new(
        file: File,
        path: PathBuf,
        spec: &SignalSpec,
        bits: u32,
    ) -> Result<AlacEncoder, EncodeError> {
        let channels = spec.channels();
        let packer =
            AlacPacketEncoder::new(channels, bits, spec.sample_rate).map_err(|detail| {
                EncodeError::Codec {
                    path: path.clone(),
                    format: "ALAC",
                    detail,
                }
            })?;
        let mux = M4aWriter::new(file, path.clone())?;
        Ok(AlacEncoder {
            path,
            mux,
            packer,
            channels,
            bits,
            rate: spec.sample_rate,
            pending: Vec::with_capacity(FRAMES * channels),
            packet: Vec::new(),
            taken: 0,
        })
    }

    fn flush_packet(&mut self) -> Result<(), EncodeError> {
        let frames = self.pending.len() / self.channels;
        if frames == 0 {
            return Ok(());
        }
        self.packer
            .encode_into(&self.pending, frames, &mut self.packet);
        self.pending.clear();
        self.mux.packet(&self.packet)?;
        if frames < FRAMES {
            self.mux.last_packet_frames(frames as u32);
        }
        Ok(())
    }
}

impl Encoder for AlacEncoder {
    fn write(&mut self, block: &Block) -> Result<(), EncodeError> {
        if block.channels() != self.channels {
            return Err(EncodeError::Codec {
                path: self.path.clone(),
                format: "ALAC",
                detail: format!(
                    "a block of {} channels reached an encoder made for {}",
                    block.channels(),
                    self.channels
                ),
            });
        }
        let planes = block.planes();
        let per_packet = FRAMES * self.channels;
        for i in 0..block.frames() {
            for p in planes {
                self.pending.push(super::to_int(p[i], self.bits) as i32);
            }
            if self.pending.len() == per_packet {
                self.flush_packet()?;
            }
        }
        self.taken += block.frames() as u64;
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<(), EncodeError> {
        self.flush_packet()?;
        let seconds = self.taken as f64 / f64::from(self.rate);
        let (max, avg) = self.mux.sizes(seconds);
        let mut extra = full(b"alac", 0, 0, &self.packer.cookie(max, avg));
        if let Some(chan) = self.packer.channel_layout_atom() {
            extra.extend_from_slice(&chan);
        }
        let track = Track {
            entry: audio_sample_entry(
                b"alac",
                self.channels as u16,
                self.bits as u16,
                self.rate,
                &extra,
            ),
            timescale: self.rate,
            frames_per_packet: ALAC_FRAMES_PER_PACKET,
            priming: 0,
            smpb: false,
        };
        self.mux.finish(&track, self.taken)
    }
}

/// ALAC in M4A in the format registry.
pub struct AlacCodec;

/// The registered ALAC codec.
pub static CODEC: AlacCodec = AlacCodec;

static ABOUT: crate::formats::CodecInfo = crate::formats::CodecInfo {
    id: "alac",
    name: "Apple Lossless (ALAC in M4A)",
    names: &["alac", "m4a-alac"],
    extension: "m4a",
    writes: &["m4a_alac"],
    info: None,
    lossy: false,
    options: &[crate::formats::OptionSpec {
        opt: crate::formats::Opt::BitDepth,
        values: crate::formats::Values::Depths {
            int: &[16, 20, 24, 32],
            float: false,
        },
        says: "ALAC takes 16, 20, 24, 32",
    }],
    exclusive: None,
    constraints: crate::formats::Constraints {
        sample_rates: None,
        rates_say: "",
        max_channels: Some(8),
    },
    tags: crate::formats::TagStyle::Lofty {
        file_type: lofty::file::FileType::Mp4,
        tag_type: lofty::tag::TagType::Mp4Ilst,
    },
    settings: "lossless, 16, 20, 24 or 32 bits",
    minute_bytes: 44_100 * 2 * 2 * 60 * 6 / 10,
    bext: false,
};

impl crate::formats::OutputCodec for AlacCodec {
    fn about(&self) -> &'static crate::formats::CodecInfo {
        &ABOUT
    }
    fn settle(
        &self,
        asked: &crate::formats::Request,
        arriving: &crate::formats::Arriving,
    ) -> crate::formats::Settings {
        use crate::formats::Depth;
        let bits = match asked.depth() {
            Some(Depth::Int(b)) => b,
            // The source's depth where ALAC has it (a float source: 24 bits).
            _ => match arriving.int_bits {
                Some(b) if b <= 16 => 16,
                Some(b) if b <= 20 => 20,
                Some(b) if b <= 24 => 24,
                Some(_) => 32,
                None => 24,
            },
        };
        crate::formats::Settings::int(bits)
    }
    fn describe(&self, s: &crate::formats::Settings) -> String {
        format!("ALAC {}-bit", s.bits.unwrap_or(24))
    }
    fn create(
        &self,
        s: &crate::formats::Settings,
        file: File,
        path: &std::path::Path,
        spec: &SignalSpec,
        _bext: Option<crate::riff::Bext>,
    ) -> Result<Box<dyn Encoder>, EncodeError> {
        Ok(Box::new(AlacEncoder::new(
            file,
            path.to_path_buf(),
            spec,
            s.bits.unwrap_or(24),
        )?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f64::consts::TAU;
    use symphonia::core::codecs::audio::well_known::CODEC_ID_ALAC;
    use symphonia::core::codecs::audio::{AudioCodecParameters, AudioDecoder, AudioDecoderOptions};
    use symphonia::core::packet::PacketRef;
    use symphonia::core::units::{Duration, Timestamp};
    use symphonia::default::codecs::AlacDecoder;

    /// Where Symphonia's decoder puts each input (WAVE) channel. Up to 6 channels it is where
    /// it was, as with ffmpeg; for 7 and 8 Symphonia orders the surround channels its own way
    /// (7: L R C LFE Cs Ls Rs, 8: L R C LFE Lc Rc Ls Rs), where ffmpeg gives WAVE order back.
    const SYMPHONIA_PLANE_OF_WAVE: [&[usize]; 8] = [
        &[0],
        &[0, 1],
        &[0, 1, 2],
        &[0, 1, 2, 3],
        &[0, 1, 2, 3, 4],
        &[0, 1, 2, 3, 4, 5],
        &[0, 1, 2, 3, 5, 6, 4],
        &[0, 1, 2, 3, 6, 7, 4, 5],
    ];

    /// Two full packets and a short last one.
    const LENGTH: usize = 2 * FRAMES + 1000;

    #[derive(Clone, Copy, Debug, PartialEq)]
    enum Kind {
        /// A different tone per channel at -2 dBFS.
        Sine,
        /// Full-scale white noise (incompressible: uncompressed elements).
        Noise,
        /// One loud, clipping mix in every channel at slightly different gains, plus a little
        /// noise of each channel's own.
        Loud,
        Silence,
        /// Full-scale square waves, from the lowest value to the highest.
        Square,
        /// A tone plus noise of 16 steps: what a recording looks like.
        Quiet,
    }

    const KINDS: [Kind; 6] = [
        Kind::Sine,
        Kind::Noise,
        Kind::Loud,
        Kind::Silence,
        Kind::Square,
        Kind::Quiet,
    ];

    /// xorshift64: deterministic noise.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        /// Uniform in `lo..=hi`.
        fn int(&mut self, lo: i64, hi: i64) -> i64 {
            lo + (self.next() % (hi - lo + 1) as u64) as i64
        }
    }

    fn signal(kind: Kind, channels: usize, depth: u32, frames: usize) -> Vec<i32> {
        let max = (1i64 << (depth - 1)) - 1;
        let min = -max - 1;
        let full = max as f64;
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ ((channels as u64) << 8) ^ u64::from(depth));
        let mut out = Vec::with_capacity(frames * channels);
        for f in 0..frames {
            let t = f as f64 / 44100.0;
            let common = 0.8 * (TAU * 220.0 * t).sin() + 0.5 * (TAU * 331.0 * t).sin();
            for c in 0..channels {
                let tone = (TAU * (300.0 + 110.0 * c as f64) * t).sin();
                let v = match kind {
                    Kind::Sine => (0.8 * full * tone).round() as i64,
                    Kind::Noise => rng.int(min, max),
                    Kind::Loud => {
                        let gain = 1.0 - 0.05 * c as f64;
                        let v = (full * gain * common).round() as i64;
                        (v + rng.int(-max / 256, max / 256)).clamp(min, max)
                    }
                    Kind::Silence => 0,
                    Kind::Square => {
                        if (f / (3 + c)) % 2 == 0 {
                            max
                        } else {
                            min
                        }
                    }
                    Kind::Quiet => (0.5 * full * tone).round() as i64 + rng.int(-16, 16),
                };
                out.push(v as i32);
            }
        }
        out
    }

    /// Encodes `input` in packets of 4096 frames (the last one shorter).
    fn encode_all(enc: &mut AlacPacketEncoder, input: &[i32], channels: usize) -> Vec<Vec<u8>> {
        input
            .chunks(FRAMES * channels)
            .map(|c| enc.encode(c, c.len() / channels))
            .collect()
    }

    /// Decodes `packets` with Symphonia, cookie and (3 channels or more) layout atom as its
    /// extra data; interleaved in Symphonia's plane order, scaled back to the bit depth.
    fn decode(enc: &AlacPacketEncoder, packets: &[Vec<u8>]) -> Vec<i32> {
        let mut extra = enc.cookie(enc.largest_packet(), enc.average_bitrate());
        if let Some(chan) = enc.channel_layout_atom() {
            extra.extend_from_slice(&chan);
        }
        let mut params = AudioCodecParameters::new();
        params
            .for_codec(CODEC_ID_ALAC)
            .with_extra_data(extra.into_boxed_slice());
        let mut dec =
            AlacDecoder::try_new(&params, &AudioDecoderOptions::default()).expect("decoder");
        let (mut all, mut buf) = (Vec::new(), Vec::new());
        for (i, p) in packets.iter().enumerate() {
            let packet = PacketRef::new(0, Timestamp::new(0), Duration::new(FRAMES as u64), p);
            let out = dec
                .decode_ref(&packet)
                .unwrap_or_else(|e| panic!("packet {i}: {e}"));
            out.copy_to_vec_interleaved::<i32>(&mut buf);
            all.extend(buf.iter().map(|&s| s >> (32 - enc.depth)));
        }
        all
    }

    /// `input` as Symphonia should give it back: the same for up to 6 channels.
    fn as_symphonia_orders(input: &[i32], channels: usize) -> Vec<i32> {
        let mut out = vec![0; input.len()];
        let planes = SYMPHONIA_PLANE_OF_WAVE[channels - 1];
        for (o, i) in out
            .chunks_exact_mut(channels)
            .zip(input.chunks_exact(channels))
        {
            for (&plane, &s) in planes.iter().zip(i) {
                o[plane] = s;
            }
        }
        out
    }

    /// Every decoded sample equals the one sent.
    fn assert_same(decoded: &[i32], sent: &[i32], channels: usize, what: &str) {
        assert_eq!(decoded.len(), sent.len(), "{what}: sample count");
        for (i, (d, s)) in decoded.iter().zip(sent).enumerate() {
            if d != s {
                panic!(
                    "{what}: frame {} channel {}: decoded {d}, sent {s}",
                    i / channels,
                    i % channels
                );
            }
        }
    }

    /// Encodes `kind`, decodes it with Symphonia and compares every sample; returns the
    /// packets.
    fn round_trip(kind: Kind, channels: usize, depth: u32) -> Vec<Vec<u8>> {
        let input = signal(kind, channels, depth, LENGTH);
        let mut enc = AlacPacketEncoder::new(channels, depth, 44100).unwrap();
        let packets = encode_all(&mut enc, &input, channels);
        assert_eq!(packets.len(), 3);
        let what = format!("{kind:?}, {channels} channels, {depth} bits");
        let expected = as_symphonia_orders(&input, channels);
        assert_same(&decode(&enc, &packets), &expected, channels, &what);
        packets
    }

    /// Whether the packet's first element is stored uncompressed (bit 22 of its header).
    fn first_element_raw(packet: &[u8]) -> bool {
        packet[2] >> 1 & 1 == 1
    }

    /// The low bytes field of the packet's first element (bits 20 and 21).
    fn first_element_low_bytes(packet: &[u8]) -> u8 {
        packet[2] >> 2 & 3
    }

    fn round_trips_at(depth: u32) {
        for channels in [1, 2, 6] {
            for kind in KINDS {
                let packets = round_trip(kind, channels, depth);
                let raw = packets.iter().filter(|p| first_element_raw(p)).count();
                match kind {
                    Kind::Noise => assert!(raw > 0, "{kind:?}, {channels} channels, {depth} bits"),
                    Kind::Sine | Kind::Silence | Kind::Quiet => assert_eq!(raw, 0),
                    _ => {}
                }
            }
        }
    }

    #[test]
    fn round_trips_16_bit() {
        round_trips_at(16);
    }

    #[test]
    fn round_trips_20_bit() {
        round_trips_at(20);
    }

    #[test]
    fn round_trips_24_bit() {
        round_trips_at(24);
    }

    #[test]
    fn round_trips_32_bit() {
        round_trips_at(32);
    }

    /// ffmpeg cannot decode an uncompressed 32-bit pair whose low bytes field is 0.
    #[test]
    fn uncompressed_32_bit_pairs_say_two_low_bytes() {
        for (channels, low_bytes) in [(1, 0), (2, 2)] {
            let input = signal(Kind::Noise, channels, 32, FRAMES);
            let mut enc = AlacPacketEncoder::new(channels, 32, 44100).unwrap();
            let packet = enc.encode(&input, FRAMES);
            assert!(first_element_raw(&packet));
            assert_eq!(first_element_low_bytes(&packet), low_bytes);
            assert_same(&decode(&enc, &[packet]), &input, channels, "32-bit noise");
        }
        let input = signal(Kind::Noise, 2, 24, FRAMES);
        let mut enc = AlacPacketEncoder::new(2, 24, 44100).unwrap();
        let packet = enc.encode(&input, FRAMES);
        assert!(first_element_raw(&packet));
        assert_eq!(first_element_low_bytes(&packet), 0);
    }

    #[test]
    fn every_channel_count_keeps_its_channels() {
        for depth in [16, 24] {
            for channels in 1..=8 {
                // A distinct offset per channel, so that any mix-up shows.
                let mut input = signal(Kind::Quiet, channels, depth, LENGTH);
                for frame in input.chunks_exact_mut(channels) {
                    for (c, s) in frame.iter_mut().enumerate() {
                        *s += 1000 * (c as i32 + 1);
                    }
                }
                let mut enc = AlacPacketEncoder::new(channels, depth, 48000).unwrap();
                let packets = encode_all(&mut enc, &input, channels);
                let what = format!("{channels} channels, {depth} bits");
                let expected = as_symphonia_orders(&input, channels);
                assert_same(&decode(&enc, &packets), &expected, channels, &what);
            }
        }
    }

    #[test]
    fn compresses_a_quiet_sine() {
        let input = signal(Kind::Quiet, 2, 16, 20 * FRAMES);
        let mut enc = AlacPacketEncoder::new(2, 16, 44100).unwrap();
        let packets = encode_all(&mut enc, &input, 2);
        let bytes: usize = packets.iter().map(Vec::len).sum();
        let ratio = bytes as f64 / (input.len() * 2) as f64;
        assert!(ratio < 0.6, "{bytes} bytes, {:.1} % of PCM", 100.0 * ratio);
        assert_same(&decode(&enc, &packets), &input, 2, "quiet sine");
        assert_eq!(
            enc.largest_packet() as usize,
            packets.iter().map(Vec::len).max().unwrap()
        );
        let rate = bytes as f64 * 8.0 * 44100.0 / (20 * FRAMES) as f64;
        assert!((f64::from(enc.average_bitrate()) - rate).abs() <= 1.0);
    }

    #[test]
    fn cookie_and_channel_layout() {
        let enc = AlacPacketEncoder::new(6, 24, 96000).unwrap();
        assert_eq!(
            enc.cookie(0x1234, 0x0102_0304),
            [
                0, 0, 0x10, 0, 0, 24, 40, 10, 14, 6, 0, 255, 0, 0, 0x12, 0x34, 1, 2, 3, 4, 0, 1,
                0x77, 0
            ]
        );
        assert_eq!(
            enc.channel_layout_atom().unwrap(),
            [
                0, 0, 0, 24, b'c', b'h', b'a', b'n', 0, 0, 0, 0, 0, 124, 0, 6, 0, 0, 0, 0, 0, 0, 0,
                0
            ]
        );
        let stereo = AlacPacketEncoder::new(2, 16, 44100).unwrap();
        assert_eq!(stereo.channel_layout_atom(), None);
        assert_eq!(stereo.cookie(0, 0)[5], 16);
    }

    #[test]
    fn rejects_bad_settings() {
        assert!(AlacPacketEncoder::new(0, 16, 44100).is_err());
        assert!(AlacPacketEncoder::new(9, 16, 44100).is_err());
        assert!(AlacPacketEncoder::new(2, 8, 44100).is_err());
        assert!(AlacPacketEncoder::new(2, 18, 44100).is_err());
        assert!(AlacPacketEncoder::new(2, 16, 0).is_err());
        assert!(AlacPacketEncoder::new(8, 32, u32::MAX).is_ok());
    }

    #[test]
    fn odd_calls_do_not_panic() {
        let mut enc = AlacPacketEncoder::new(2, 16, 44100).unwrap();
        assert!(enc.encode(&[], 4096).is_empty());
        assert!(enc.encode(&[1, 2, 3], 0).is_empty());
        // One frame only (an odd sample is left over), and fewer frames than asked for.
        let one = enc.encode(&[1, 2, 3], 5);
        assert_same(&decode(&enc, &[one]), &[1, 2], 2, "one frame");
        // More than a packet's worth: 4096 frames are taken.
        let big = signal(Kind::Sine, 2, 16, FRAMES + 10);
        let packet = enc.encode(&big, FRAMES + 10);
        assert_same(&decode(&enc, &[packet]), &big[..2 * FRAMES], 2, "capped");
        // Values out of range are clamped.
        let wild = [i32::MAX, i32::MIN, 40000, -40000, 5, -5];
        let packet = enc.encode(&wild, 3);
        let clamped = [32767, -32768, 32767, -32768, 5, -5];
        assert_same(&decode(&enc, &[packet]), &clamped, 2, "clamped");
    }

    #[test]
    fn short_packets_of_every_length_below_the_order() {
        for depth in [16, 20, 24, 32] {
            for frames in 1..=12 {
                let input = signal(Kind::Loud, 3, depth, frames);
                let mut enc = AlacPacketEncoder::new(3, depth, 44100).unwrap();
                let packets = vec![enc.encode(&input, frames)];
                let what = format!("{frames} frames, {depth} bits");
                assert_same(&decode(&enc, &packets), &input, 3, &what);
            }
        }
    }

    /// A value of 65535 right after a run of zeros is read differently by Apple's decoder
    /// and by ffmpeg's and Symphonia's; such an element goes out uncompressed.
    #[test]
    fn the_disputed_value_is_not_coded() {
        let mut res = vec![0; 100];
        res.push(32768);
        assert!(!ag_code(&res, 17, &mut Count(0)));
        res.pop();
        res.push(32767);
        assert!(ag_code(&res, 17, &mut Count(0)));

        let mut input = vec![0; 1000];
        input.push(32768);
        input.extend((0..3095).map(|i| (5000.0 * (i as f64 / 20.0).sin()) as i32));
        let mut enc = AlacPacketEncoder::new(1, 20, 44100).unwrap();
        let packet = enc.encode(&input, FRAMES);
        assert!(first_element_raw(&packet));
        assert_same(&decode(&enc, &[packet]), &input, 1, "disputed value");
    }
}
