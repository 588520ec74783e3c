//! The wasm32 side of the exports: one [`Runtime`] per module, placed in grown memory at
//! `sluice_init`. The [`effect!`](crate::effect) macro generates `extern "C"` functions that
//! call these.
#![allow(clippy::missing_safety_doc)]

use core::sync::atomic::{AtomicUsize, Ordering};

use crate::{
    abi,
    arena::{Arena, Data},
    descriptor::Params,
    effect::Effect,
    runtime::Runtime,
};

/// The address of the module's `Runtime` (0 before a successful `sluice_init`). A wasm module
/// is single-threaded and the host never re-enters it, so there is never more than one
/// reference to it at a time.
static RUNTIME: AtomicUsize = AtomicUsize::new(0);

/// Stored in RUNTIME after a failed init: the instance is dead (memory may have been handed
/// out), so every later call fails with `ERR_STATE`.
const FAILED: usize = usize::MAX;

fn live<E: Effect<'static> + 'static>() -> Option<&'static mut Runtime<'static, E>> {
    let p = RUNTIME.load(Ordering::Relaxed);
    if p == FAILED {
        return None;
    }
    // SAFETY: only `init::<E>` stores an address, of a Runtime of the same `E` (one effect per
    // module; the macro instantiates every export with it), and calls never overlap (see
    // RUNTIME), so this is the only reference while the call runs.
    unsafe { (p as *mut Runtime<'static, E>).as_mut() }
}

/// The data slots the host filled through `sluice_data`: address, channels, frames (address 0:
/// not given).
static DATA: [[AtomicUsize; 3]; abi::MAX_DATA] =
    [const { [const { AtomicUsize::new(0) }; 3] }; abi::MAX_DATA];

/// `sluice_data`: room for `channels` planes of `frames` samples for data slot `slot`, from
/// grown memory; 0 when the slot is unknown or already given, the sizes are outside the
/// descriptor's, init already ran, or the memory cannot grow.
pub fn data<P: Params>(slot: i32, channels: i32, frames: i32) -> i32 {
    if RUNTIME.load(Ordering::Relaxed) != 0 {
        return 0;
    }
    let Some(cell) = usize::try_from(slot).ok().and_then(|s| DATA.get(s)) else {
        return 0;
    };
    if cell[0].load(Ordering::Relaxed) != 0
        || !crate::runtime::data_fits::<P>(slot, channels, frames)
    {
        return 0;
    }
    let Some(len) = (channels as usize).checked_mul(frames as usize) else {
        return 0;
    };
    // SAFETY: no other arena is in use (calls never overlap and init has not run); this one
    // hands out bytes past the memory's current end, which nothing else uses.
    let mut arena = unsafe { Arena::wasm() };
    match arena.take(len) {
        Ok(buf) => {
            let addr = buf.as_mut_ptr() as usize;
            cell[0].store(addr, Ordering::Relaxed);
            cell[1].store(channels as usize, Ordering::Relaxed);
            cell[2].store(frames as usize, Ordering::Relaxed);
            addr as i32
        }
        Err(_) => 0,
    }
}

/// `sluice_init`.
pub fn init<E: Effect<'static, Params = P> + 'static, P>(
    sample_rate: i32,
    channels: i32,
    max_frames: i32,
) -> i32 {
    if RUNTIME.load(Ordering::Relaxed) != 0 {
        return abi::ERR_STATE;
    }
    // SAFETY: the only arena of the module: RUNTIME is still 0, and it is set below before
    // anything else can run; a failed init leaves the grown memory unused for good.
    let mut arena = unsafe { Arena::wasm() };
    for (slot, cell) in DATA.iter().enumerate() {
        let addr = cell[0].load(Ordering::Relaxed);
        if addr == 0 {
            continue;
        }
        let (channels, frames) = (
            cell[1].load(Ordering::Relaxed),
            cell[2].load(Ordering::Relaxed),
        );
        // SAFETY: `data` took these bytes from grown memory for this slot, once, and nothing
        // else writes them from here on; the host wrote the audio there before this call.
        let samples: &'static [f32] =
            unsafe { core::slice::from_raw_parts(addr as *const f32, channels * frames) };
        if let Some(d) = Data::new(samples, channels, frames) {
            let _ = arena.set_data(slot, d);
        }
    }
    let result = Runtime::<E>::new(sample_rate, channels, max_frames, &mut arena).and_then(|rt| {
        let size = core::mem::size_of::<Runtime<'static, E>>();
        let align = core::mem::align_of::<Runtime<'static, E>>();
        let p = arena.grow(size.max(1), align)? as *mut Runtime<'static, E>;
        // SAFETY: fresh, aligned, large enough, never handed out elsewhere.
        unsafe { p.write(rt) };
        Ok(p)
    });
    match result {
        Ok(p) => {
            RUNTIME.store(p as usize, Ordering::Relaxed);
            abi::OK
        }
        Err(e) => {
            RUNTIME.store(FAILED, Ordering::Relaxed);
            e.code()
        }
    }
}

/// `sluice_buffer`.
pub fn buffer<E: Effect<'static> + 'static>(channel: i32) -> i32 {
    live::<E>()
        .and_then(|rt| rt.buffer(channel))
        .map_or(0, |b| b.as_mut_ptr() as usize as i32)
}

/// `sluice_set_param`.
pub fn set_param<E: Effect<'static> + 'static>(index: i32, value: f32) -> i32 {
    live::<E>().map_or(abi::ERR_STATE, |rt| rt.set_param(index, value))
}

/// `sluice_process`.
pub fn process<E: Effect<'static> + 'static>(frames: i32) -> i32 {
    live::<E>().map_or(abi::ERR_STATE, |rt| rt.process(frames))
}

/// `sluice_reset`.
pub fn reset<E: Effect<'static> + 'static>() {
    if let Some(rt) = live::<E>() {
        rt.reset();
    }
}

/// `sluice_latency`.
pub fn latency<E: Effect<'static> + 'static>() -> i32 {
    live::<E>().map_or(0, |rt| rt.latency())
}

#[link(wasm_import_module = "sluice")]
unsafe extern "C" {
    #[link_name = "log"]
    fn sluice_log(ptr: i32, len: i32);
}

pub(crate) fn log(message: &str) {
    // SAFETY: the host reads `len` bytes at `ptr` of this module's memory.
    unsafe { sluice_log(message.as_ptr() as usize as i32, message.len() as i32) }
}

#[cfg(feature = "panic-handler")]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    core::arch::wasm32::unreachable()
}
