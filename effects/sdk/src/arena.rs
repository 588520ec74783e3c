//! The arena: where an effect's memory comes from. It hands out zeroed `f32` slices aligned to
//! 16 bytes, and only while the effect is being created ([`Effect::new`](crate::Effect::new)):
//! nothing is allocated afterwards, and nothing is ever freed before the instance goes away.
//!
//! On wasm32 the arena grows the module's linear memory (`memory.grow`) past its initial size,
//! which no other code of a module without an allocator touches. Natively it carves a
//! caller-supplied slice ([`Arena::new`]), so the slices it hands out borrow that memory and
//! the borrow checker ties them to it.

use crate::error::InitError;

/// Alignment of every slice the arena hands out, in bytes (room for SIMD loads).
pub const ALIGN: usize = 16;

/// Types for which all-zero bytes are a valid value, so the arena can hand out slices of them.
///
/// # Safety
/// Implement it only for types whose every field is a number or an array of numbers.
pub unsafe trait Zeroable: Copy {}

macro_rules! zeroable {
    ($($t:ty),*) => { $(
        // SAFETY: all-zero bytes are 0 for integers and +0.0 for floats.
        unsafe impl Zeroable for $t {}
    )* };
}
zeroable!(f32, f64, u8, u16, u32, u64, usize, i8, i16, i32, i64, isize);

/// Audio the host gave the effect for one of its data slots (an impulse response): planar,
/// at the session's sample rate, in memory that lives as long as the effect.
#[derive(Clone, Copy, Debug)]
pub struct Data<'a> {
    samples: &'a [f32],
    channels: usize,
    frames: usize,
}

impl<'a> Data<'a> {
    /// Audio of `channels` planes of `frames` samples each, one after the other in `samples`.
    /// `None` unless `samples` holds exactly that many.
    pub fn new(samples: &'a [f32], channels: usize, frames: usize) -> Option<Self> {
        (channels > 0 && channels.checked_mul(frames) == Some(samples.len())).then_some(Data {
            samples,
            channels,
            frames,
        })
    }
    /// How many channels the audio has (`1..=` the slot's `max_channels`).
    pub fn channels(&self) -> usize {
        self.channels
    }
    /// Frames per channel.
    pub fn frames(&self) -> usize {
        self.frames
    }
    /// One channel's samples (`channel` taken modulo the channel count, so a mono response
    /// serves every channel of the signal).
    pub fn channel(&self, channel: usize) -> &'a [f32] {
        let c = channel % self.channels;
        &self.samples[c * self.frames..(c + 1) * self.frames]
    }
}

/// Hands out zeroed, 16-byte aligned `f32` slices that live as long as `'a`, and holds the
/// audio the host gave for the effect's data slots.
pub struct Arena<'a> {
    source: Source<'a>,
    used_bytes: usize,
    data: [Option<Data<'a>>; crate::abi::MAX_DATA],
}

enum Source<'a> {
    Slice(&'a mut [f32]),
    #[cfg(target_arch = "wasm32")]
    Grow {
        next: usize,
        end: usize,
    },
}

impl<'a> Arena<'a> {
    /// An arena that carves `memory` (natively; also usable on wasm32 with a static buffer).
    /// Slices are zeroed as they are handed out, so `memory` may hold anything.
    pub fn new(memory: &'a mut [f32]) -> Self {
        Arena {
            source: Source::Slice(memory),
            used_bytes: 0,
            data: [None; crate::abi::MAX_DATA],
        }
    }

    /// The audio given for data slot `slot` (its position in the descriptor's `data`), if the
    /// pipeline gave any.
    pub fn data(&self, slot: usize) -> Option<Data<'a>> {
        self.data.get(slot).copied().flatten()
    }

    /// Hands `data` to the effect as slot `slot` (the runtime does this before `Effect::new`).
    pub fn set_data(&mut self, slot: usize, data: Data<'a>) -> Result<(), InitError> {
        *self.data.get_mut(slot).ok_or(InitError::Unsupported)? = Some(data);
        Ok(())
    }

    /// Bytes handed out so far, alignment padding included.
    pub fn used_bytes(&self) -> usize {
        self.used_bytes
    }

    /// A zeroed slice of `len` floats, 16-byte aligned.
    pub fn take(&mut self, len: usize) -> Result<&'a mut [f32], InitError> {
        self.take_zeroed::<f32>(len)
    }

    /// A zeroed slice of `len` values of a plain type (integers, floats), 16-byte aligned: for
    /// index rings and other non-`f32` state.
    pub fn take_zeroed<T: Zeroable>(&mut self, len: usize) -> Result<&'a mut [T], InitError> {
        const { assert!(core::mem::align_of::<T>() <= ALIGN && core::mem::size_of::<T>() > 0) };
        if len == 0 {
            return Ok(&mut []);
        }
        let bytes = len
            .checked_mul(core::mem::size_of::<T>())
            .ok_or(InitError::Memory)?;
        let ptr: *mut u8 = match &mut self.source {
            Source::Slice(rest) => {
                let addr = rest.as_ptr() as usize;
                let pad = (ALIGN - addr % ALIGN) % ALIGN / 4;
                let need = pad
                    .checked_add(bytes.div_ceil(4))
                    .ok_or(InitError::Memory)?;
                if rest.len() < need {
                    return Err(InitError::Memory);
                }
                let all = core::mem::take(rest);
                let (head, tail) = all.split_at_mut(need);
                *rest = tail;
                self.used_bytes += need * 4;
                let out = &mut head[pad..];
                out.fill(0.0);
                out.as_mut_ptr() as *mut u8
            }
            #[cfg(target_arch = "wasm32")]
            Source::Grow { .. } => self.grow(bytes, ALIGN)?,
        };
        // SAFETY: `ptr` starts `bytes` bytes of zeroed memory, aligned to 16 (>= the alignment
        // of T), handed out once and for `'a`: natively carved off the exclusively borrowed
        // slice, on wasm32 past the module's initial memory, fresh from `memory.grow`, which
        // nothing else uses and which is never shrunk. All-zero bytes are a valid T
        // (`Zeroable`).
        Ok(unsafe { core::slice::from_raw_parts_mut(ptr as *mut T, len) })
    }

    /// `N` zeroed slices of `len` floats each (for example one delay line per channel).
    pub fn take_many<const N: usize>(
        &mut self,
        len: usize,
    ) -> Result<[&'a mut [f32]; N], InitError> {
        let mut out: [&'a mut [f32]; N] = core::array::from_fn(|_| <&mut [f32]>::default());
        for slot in out.iter_mut() {
            *slot = self.take(len)?;
        }
        Ok(out)
    }

    /// The arena of a wasm module: everything past the memory's current size.
    ///
    /// # Safety
    /// No other code may grow the memory while it is used, and no two may be used at once
    /// (the SDK makes one per `sluice_data` call and one in `sluice_init`; each starts past
    /// what the memory held, so they never hand out the same bytes).
    #[cfg(target_arch = "wasm32")]
    pub(crate) unsafe fn wasm() -> Arena<'static> {
        let end = core::arch::wasm32::memory_size(0) * 65_536;
        Arena {
            source: Source::Grow { next: end, end },
            used_bytes: 0,
            data: [None; crate::abi::MAX_DATA],
        }
    }

    /// `bytes` bytes aligned to `align`, from grown memory.
    #[cfg(target_arch = "wasm32")]
    pub(crate) fn grow(&mut self, bytes: usize, align: usize) -> Result<*mut u8, InitError> {
        let Source::Grow { next, end } = &mut self.source else {
            return Err(InitError::Memory);
        };
        let start = next
            .checked_next_multiple_of(align)
            .ok_or(InitError::Memory)?;
        let stop = start.checked_add(bytes).ok_or(InitError::Memory)?;
        if stop > *end {
            let pages = (stop - *end).div_ceil(65_536);
            if core::arch::wasm32::memory_grow(0, pages) == usize::MAX {
                return Err(InitError::Memory);
            }
            *end += pages * 65_536;
        }
        self.used_bytes += stop - *next;
        *next = stop;
        Ok(start as *mut u8)
    }
}
