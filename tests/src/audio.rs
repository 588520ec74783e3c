//! Test audio for the plugin hosts, and a bit-exact comparison that reports where it fails.

use sluice_core::signal;

/// Values a pass-through must keep bit for bit and that arithmetic would not: subnormals (DAZ
/// reads them as zero, FTZ writes zero instead), both zeros, full scale and a little beyond
/// (a float host has no clip point), the smallest normal, and neighbours of 1.0.
pub const SPECIAL_VALUES: [f32; 20] = [
    f32::from_bits(0x0000_0001), // smallest positive subnormal
    f32::from_bits(0x8000_0001), // smallest negative subnormal
    f32::from_bits(0x007F_FFFF), // largest subnormal
    f32::from_bits(0x807F_FFFF), // largest negative subnormal
    f32::from_bits(0x0000_1234), // a subnormal in between
    f32::from_bits(0x8040_0000), // another, negative
    0.0,
    -0.0,
    1.0,
    -1.0,
    0.999_999_94, // 1.0 - ulp
    -0.999_999_94,
    f32::MIN_POSITIVE, // smallest normal
    -f32::MIN_POSITIVE,
    1.000_000_1, // 1.0 + ulp
    -1.5,
    2.0,
    f32::EPSILON,
    1.0e-30,
    -1.0e-38, // just below the normal range boundary: subnormal
];

/// `seconds` of programme-like audio with `channels` channels (they differ, so a swap shows),
/// then a stretch of the special values in a different order on each channel, then noise,
/// then digital silence made of both zeros.
pub fn test_signal(rate: u32, channels: usize, seconds: f64, seed: u64) -> Vec<Vec<f32>> {
    let frames = (f64::from(rate) * seconds) as usize;
    let prog = frames * 6 / 10;
    let special = 2048.min(frames / 10);
    let noisy = frames / 10;
    let rest = frames - prog - special - noisy;
    let mut out = signal::programme(rate, channels, prog, seed);
    for (c, ch) in out.iter_mut().enumerate() {
        let step = 2 * c + 1; // coprime with 20: each channel walks all values in its own order
        ch.extend((0..special).map(|i| SPECIAL_VALUES[(i * step + c) % SPECIAL_VALUES.len()]));
        ch.extend(signal::noise(seed + 1 + c as u64, 1.0, noisy));
        ch.extend((0..rest).map(|i| if (i + c) % 3 == 0 { -0.0 } else { 0.0 }));
    }
    out
}

/// A signal where every sample is one of [`SPECIAL_VALUES`], in a different order per channel.
pub fn special_only(channels: usize, frames: usize) -> Vec<Vec<f32>> {
    (0..channels)
        .map(|c| {
            (0..frames)
                .map(|i| SPECIAL_VALUES[(i * (2 * c + 1) + 3 * c) % SPECIAL_VALUES.len()])
                .collect()
        })
        .collect()
}

/// Asserts `output` equals `input` bit for bit (so `-0.0 != 0.0` and subnormals count), and
/// says where it does not: channel, frame, both values and their bits, and how many differ.
#[track_caller]
pub fn assert_bit_exact(input: &[Vec<f32>], output: &[Vec<f32>], what: &str) {
    assert_eq!(
        input.len(),
        output.len(),
        "{what}: {} channels in, {} out",
        input.len(),
        output.len()
    );
    for (c, (i, o)) in input.iter().zip(output).enumerate() {
        assert_eq!(
            i.len(),
            o.len(),
            "{what}: channel {c} has {} frames in and {} out",
            i.len(),
            o.len()
        );
        let diffs: Vec<usize> = (0..i.len())
            .filter(|&n| i[n].to_bits() != o[n].to_bits())
            .collect();
        if let Some(&n) = diffs.first() {
            panic!(
                "{what}: channel {c} is not bit-exact: {} of {} frames differ; the first at frame \
                 {n}: in {:e} ({:#010x}), out {:e} ({:#010x})",
                diffs.len(),
                i.len(),
                i[n],
                i[n].to_bits(),
                o[n],
                o[n].to_bits()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_test_signal_holds_what_it_promises() {
        let s = test_signal(48_000, 2, 1.0, 7);
        assert_eq!(s.len(), 2);
        assert!(s.iter().all(|c| c.len() == 48_000));
        assert_ne!(s[0], s[1], "channels differ");
        for ch in &s {
            assert!(ch.iter().any(|x| x.is_subnormal() && x.is_sign_positive()));
            assert!(ch.iter().any(|x| x.is_subnormal() && x.is_sign_negative()));
            assert!(ch.iter().any(|x| x.to_bits() == (-0.0f32).to_bits()));
            assert!(ch.contains(&1.0) && ch.contains(&-1.0));
            assert!(ch.iter().all(|x| x.is_finite()));
        }
        assert!(SPECIAL_VALUES[19].is_subnormal());
    }

    #[test]
    #[should_panic(expected = "first at frame 2")]
    fn a_zero_of_the_wrong_sign_is_a_difference() {
        let a = vec![vec![1.0, 0.5, 0.0]];
        let b = vec![vec![1.0, 0.5, -0.0]];
        assert_bit_exact(&a, &b, "signs");
    }
}
