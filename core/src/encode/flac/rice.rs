//! Residual coding: partitioned Rice codes chosen by analytic bit cost.
//!
//! For every partition order the sum of |residual| of each partition gives its Rice parameter
//! and an estimate of its size (libFLAC's estimate); the order with the smallest total wins,
//! and only that one is ever written.

use super::bits::BitWriter;

/// The highest partition order any level searches.
pub(super) const MAX_PARTITION_ORDER: u32 = 8;
const MAX_PARTITIONS: usize = 1 << MAX_PARTITION_ORDER;
/// Parameter 15 (4-bit) / 31 (5-bit) is the escape code: raw binary samples.
const RICE1_ESCAPE: u32 = 15;
const RICE2_ESCAPE: u32 = 31;

/// The chosen coding of one residual.
#[derive(Clone, Debug)]
pub(super) struct RicePlan {
    pub order: u32,
    /// Per partition: the Rice parameter, or `ESCAPED` with the raw bit count in `raw`.
    pub params: [u8; MAX_PARTITIONS],
    pub raw: [u8; MAX_PARTITIONS],
}

const ESCAPED: u8 = u8::MAX;

impl Default for RicePlan {
    fn default() -> Self {
        RicePlan {
            order: 0,
            params: [0; MAX_PARTITIONS],
            raw: [0; MAX_PARTITIONS],
        }
    }
}

/// Reusable workspace of the partition search.
pub(super) struct RiceSearch {
    /// Sums of |residual| per partition, all orders from the highest down (the highest order's
    /// partitions first, then each lower order's, as libFLAC lays them out).
    sums: Vec<u64>,
    /// The OR of the zig-zag codes per partition (for escapes), same layout.
    ors: Vec<u32>,
    candidate: RicePlan,
}

impl RiceSearch {
    pub(super) fn new() -> RiceSearch {
        RiceSearch {
            sums: vec![0; 2 * MAX_PARTITIONS],
            ors: vec![0; 2 * MAX_PARTITIONS],
            candidate: RicePlan::default(),
        }
    }
}

/// The highest partition order usable for a block of `n` samples and a predictor of `order`:
/// partitions must divide the block evenly, and the first must hold more than the warm-up.
pub(super) fn max_partition_order(n: usize, predictor_order: usize, limit: u32) -> u32 {
    let mut p = 0;
    while p < limit && (n >> (p + 1)) << (p + 1) == n {
        p += 1;
    }
    while p > 0 && (n >> p) <= predictor_order {
        p -= 1;
    }
    p
}

/// Bits of a partition of `n` samples with |residual| summing to `sum` coded with parameter
/// `k` (libFLAC's estimate: the zig-zag code is about twice the magnitude, and the bits
/// shifted out average half a bit per sample).
#[inline]
fn rice_bits(sum: u64, n: u64, k: u32) -> u64 {
    let body = if k == 0 { sum << 1 } else { sum >> (k - 1) };
    ((1 + u64::from(k)) * n + body).saturating_sub(n >> 1)
}

/// The Rice parameter for a partition, from its mean magnitude, then refined by the estimate
/// at the neighbouring parameters.
#[inline]
fn choose_param(sum: u64, n: u64, max_param: u32) -> (u32, u64) {
    let mean = sum.checked_div(n).unwrap_or(0);
    let mut k = if mean == 0 {
        0
    } else {
        64 - mean.leading_zeros()
    };
    k = k.min(max_param);
    let mut best = (k, rice_bits(sum, n, k));
    if k > 0 {
        let b = rice_bits(sum, n, k - 1);
        if b < best.1 {
            best = (k - 1, b);
        }
    }
    if k < max_param {
        let b = rice_bits(sum, n, k + 1);
        if b < best.1 {
            best = (k + 1, b);
        }
    }
    best
}

/// What the partition search may use.
#[derive(Clone, Copy, Debug)]
pub(super) struct RiceLimits {
    /// The highest partition order (the level's).
    pub max_order: u32,
    /// 5-bit parameters allowed (streams of more than 16 bits, as libFLAC does).
    pub wide: bool,
    /// Raw (escaped) partitions are tried.
    pub escapes: bool,
}

/// Choose the partition order and parameters of `res` (the residual of a predictor of
/// `predictor_order` on a block of `n` samples). Returns the estimated size in bits of the
/// whole residual section; `plan` receives the choice.
pub(super) fn search(
    ws: &mut RiceSearch,
    res: &[i32],
    n: usize,
    predictor_order: usize,
    limits: RiceLimits,
    plan: &mut RicePlan,
) -> u64 {
    let RiceLimits {
        max_order,
        wide,
        escapes,
    } = limits;
    let max_order = max_partition_order(n, predictor_order, max_order.min(MAX_PARTITION_ORDER));
    let parts = 1usize << max_order;
    let part_len = n >> max_order;
    // Sums at the highest order.
    let mut start = 0;
    for p in 0..parts {
        let len = if p == 0 {
            part_len - predictor_order
        } else {
            part_len
        };
        let chunk = &res[start..start + len];
        ws.sums[p] = abs_sum(chunk);
        if escapes {
            ws.ors[p] = chunk.iter().fold(0u32, |a, &r| a | zigzag(r));
        }
        start += len;
    }
    // Merge pairs for the lower orders.
    let (mut from, mut to, mut count) = (0, parts, parts);
    while count > 1 {
        count /= 2;
        for i in 0..count {
            ws.sums[to + i] = ws.sums[from + 2 * i] + ws.sums[from + 2 * i + 1];
            if escapes {
                ws.ors[to + i] = ws.ors[from + 2 * i] | ws.ors[from + 2 * i + 1];
            }
        }
        from = to;
        to += count;
    }
    let max_param = if wide {
        RICE2_ESCAPE - 1
    } else {
        RICE1_ESCAPE - 1
    };
    let mut best = u64::MAX;
    let mut offset = 0;
    for order in (0..=max_order).rev() {
        let parts = 1usize << order;
        let len = (n >> order) as u64;
        let mut bits = 6u64; // method and order fields
        let mut needs_rice2 = false;
        let cand = &mut ws.candidate;
        for p in 0..parts {
            let pn = if p == 0 {
                len - predictor_order as u64
            } else {
                len
            };
            let (k, mut b) = choose_param(ws.sums[offset + p], pn, max_param);
            cand.params[p] = k as u8;
            needs_rice2 |= k >= RICE1_ESCAPE;
            if escapes {
                let raw = 32 - ws.ors[offset + p].leading_zeros();
                let raw_bits = 5 + u64::from(raw) * pn;
                // The count field has 5 bits: 32-bit raw samples cannot be escaped.
                if raw < 32 && raw_bits < b {
                    b = raw_bits;
                    cand.params[p] = ESCAPED;
                    cand.raw[p] = raw as u8;
                }
            }
            bits += b;
        }
        bits += parts as u64 * if needs_rice2 { 5 } else { 4 };
        if bits < best {
            best = bits;
            cand.order = order;
            std::mem::swap(plan, cand);
        }
        offset += parts;
    }
    best
}

#[inline(always)]
fn zigzag(r: i32) -> u32 {
    ((r << 1) ^ (r >> 31)) as u32
}

/// Σ|r| in 64 bits, with independent accumulators so the loop vectorizes.
fn abs_sum(r: &[i32]) -> u64 {
    let mut total = 0u64;
    for chunk in r.chunks(256) {
        let mut acc = [0u64; 4];
        let mut c4 = chunk.chunks_exact(4);
        for q in &mut c4 {
            for k in 0..4 {
                acc[k] += u64::from(q[k].unsigned_abs());
            }
        }
        for &x in c4.remainder() {
            acc[0] += u64::from(x.unsigned_abs());
        }
        total += acc.iter().sum::<u64>();
    }
    total
}

/// Write the residual section of a subframe as `plan` says.
pub(super) fn write(
    w: &mut BitWriter,
    res: &[i32],
    n: usize,
    predictor_order: usize,
    plan: &RicePlan,
) {
    let parts = 1usize << plan.order;
    let rice2 = plan.params[..parts]
        .iter()
        .any(|&k| k != ESCAPED && u32::from(k) >= RICE1_ESCAPE);
    let (method, pbits, escape) = if rice2 {
        (1, 5, RICE2_ESCAPE)
    } else {
        (0, 4, RICE1_ESCAPE)
    };
    w.put(2, method);
    w.put(4, plan.order);
    let len = n >> plan.order;
    let mut start = 0;
    for p in 0..parts {
        let pn = if p == 0 { len - predictor_order } else { len };
        let chunk = &res[start..start + pn];
        start += pn;
        let k = plan.params[p];
        if k == ESCAPED {
            let raw = u32::from(plan.raw[p]);
            w.put(pbits, escape);
            w.put(5, raw);
            if raw > 0 {
                for &r in chunk {
                    w.put_signed(raw, r);
                }
            }
        } else {
            let k = u32::from(k);
            w.put(pbits, k);
            for &r in chunk {
                w.put_rice(k, zigzag(r));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exact_bits(res: &[i32], k: u32) -> u64 {
        res.iter()
            .map(|&r| u64::from(zigzag(r) >> k) + 1 + u64::from(k))
            .sum()
    }

    #[test]
    fn partition_orders_fit_the_block() {
        assert_eq!(max_partition_order(4096, 8, 5), 5);
        assert_eq!(max_partition_order(4096, 8, 8), 8);
        assert_eq!(max_partition_order(1152, 2, 8), 7);
        assert_eq!(max_partition_order(1001, 2, 8), 0);
        assert_eq!(max_partition_order(4096, 12, 15), 8); // 4096 >> 9 = 8 ≤ 12
        assert_eq!(max_partition_order(40, 12, 8), 1);
    }

    #[test]
    fn estimates_are_close_and_writing_matches_the_plan() {
        let mut seed = 1u64;
        let res: Vec<i32> = (0..4096)
            .map(|i| {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let scale = if i < 2048 { 40 } else { 4000 };
                ((seed >> 33) as i32 % (2 * scale)) - scale
            })
            .collect();
        let mut ws = RiceSearch::new();
        let mut plan = RicePlan::default();
        for escapes in [false, true] {
            let limits = RiceLimits {
                max_order: 6,
                wide: false,
                escapes,
            };
            let est = search(&mut ws, &res[8..], 4096, 8, limits, &mut plan);
            let mut w = BitWriter::new();
            write(&mut w, &res[8..], 4096, 8, &plan);
            w.align();
            let actual = w.bytes().len() as u64 * 8;
            assert!(
                actual.abs_diff(est) < 64 + est / 100,
                "estimate {est}, actual {actual}"
            );
            assert!(plan.order >= 1, "two halves of different scale: {plan:?}");
            // Uniform noise costs fewer bits raw than Rice coded.
            let escaped = plan.params[..1 << plan.order].contains(&ESCAPED);
            assert_eq!(escaped, escapes, "{plan:?}");
        }
        // The chosen parameter is (near) optimal for one partition.
        let small = &res[..2048];
        let (k, _) = choose_param(abs_sum(small), 2048, 14);
        let best = (0..15).min_by_key(|&k| exact_bits(small, k)).unwrap();
        assert!(exact_bits(small, k) <= exact_bits(small, best) * 101 / 100);
    }
}
