//! Flush-to-zero and denormals-are-zero for the audio thread.
//!
//! nice-plug sets neither by default (its `unsafe_flush_denormals` feature sets FTZ only), and
//! denormal input makes the K-weighting filters and the FFT crawl. [`DenormalGuard`] sets both for
//! the length of one `process` call and restores the host's mode when dropped.
//!
//! Rust's documentation warns that code compiled for the default floating-point environment may
//! constant-fold differently from what DAZ computes at run time. The plugin's pass-through is a
//! pure copy (never `x * 1.0`), so DAZ cannot change the audio it hands back; only the meters see
//! denormals as zero, which is below any level they display.

/// Sets FTZ and DAZ while alive; restores the previous mode on drop.
#[must_use = "the mode is restored when the guard is dropped"]
pub struct DenormalGuard {
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    saved: u64,
}

#[cfg(target_arch = "x86_64")]
impl DenormalGuard {
    const FTZ: u32 = 1 << 15;
    const DAZ: u32 = 1 << 6;

    #[inline]
    pub fn enable() -> Self {
        let mut saved = 0u32;
        // SAFETY: stmxcsr stores the 32-bit MXCSR register into `saved`, a valid u32.
        unsafe {
            core::arch::asm!("stmxcsr [{}]", in(reg) &mut saved, options(nostack, preserves_flags));
        }
        let want = saved | Self::FTZ | Self::DAZ;
        if want != saved {
            // SAFETY: ldmxcsr loads a value that differs from the current one only in FTZ/DAZ.
            unsafe {
                core::arch::asm!("ldmxcsr [{}]", in(reg) &want, options(nostack, preserves_flags, readonly));
            }
        }
        DenormalGuard {
            saved: u64::from(saved),
        }
    }
}

#[cfg(target_arch = "x86_64")]
impl Drop for DenormalGuard {
    #[inline]
    fn drop(&mut self) {
        let saved = self.saved as u32;
        // SAFETY: restores the exact MXCSR value read in `enable`.
        unsafe {
            core::arch::asm!("ldmxcsr [{}]", in(reg) &saved, options(nostack, preserves_flags, readonly));
        }
    }
}

#[cfg(target_arch = "aarch64")]
impl DenormalGuard {
    /// FPCR.FZ flushes denormal inputs and outputs to zero on AArch64.
    const FZ: u64 = 1 << 24;

    #[inline]
    pub fn enable() -> Self {
        let saved: u64;
        // SAFETY: reading FPCR has no side effects.
        unsafe { core::arch::asm!("mrs {}, fpcr", out(reg) saved, options(nomem, nostack)) };
        if saved & Self::FZ == 0 {
            // SAFETY: sets only the flush-to-zero bit.
            unsafe {
                core::arch::asm!("msr fpcr, {}", in(reg) saved | Self::FZ, options(nomem, nostack))
            };
        }
        DenormalGuard { saved }
    }
}

#[cfg(target_arch = "aarch64")]
impl Drop for DenormalGuard {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: restores the exact FPCR value read in `enable`.
        unsafe { core::arch::asm!("msr fpcr, {}", in(reg) self.saved, options(nomem, nostack)) };
    }
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
impl DenormalGuard {
    #[inline]
    pub fn enable() -> Self {
        DenormalGuard {}
    }
}

#[cfg(all(test, any(target_arch = "x86_64", target_arch = "aarch64")))]
mod tests {
    use super::DenormalGuard;
    use std::hint::black_box;

    #[test]
    fn flushes_inputs_and_outputs_then_restores() {
        let tiny = f32::from_bits(1); // the smallest positive subnormal
        assert!(tiny.is_subnormal());
        assert!((black_box(tiny) * black_box(1.0f32)).is_subnormal());
        {
            let _g = DenormalGuard::enable();
            // DAZ: a subnormal operand reads as zero.
            assert_eq!(black_box(tiny) * black_box(1.0f32), 0.0);
            // FTZ: a subnormal result is written as zero.
            assert_eq!(black_box(f32::MIN_POSITIVE) * black_box(0.25f32), 0.0);
            // Nested guards restore the outer mode, not the default.
            {
                let _inner = DenormalGuard::enable();
            }
            assert_eq!(black_box(tiny) * black_box(1.0f32), 0.0);
        }
        assert!((black_box(tiny) * black_box(1.0f32)).is_subnormal());
        assert!((black_box(f32::MIN_POSITIVE) * black_box(0.25f32)).is_subnormal());
    }
}
