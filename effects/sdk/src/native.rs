//! The native harness: runs an effect the way the host runs its wasm module, so that effects
//! can be tested (and compared with their wasm build) on the build machine. Only built for
//! targets other than wasm32; it uses std.
//!
//! ```ignore
//! let mut memory = native::memory();
//! let mut fx = native::Instance::<Gain>::new(&mut memory, 48_000, 2, 512)?;
//! fx.set("gain_db", -6.0);
//! fx.buffer(0).unwrap()[..512].copy_from_slice(&left);   // what the host writes
//! fx.process(512)?;                                         // sluice_process(512)
//! // or whole signals, in blocks of max_frames:
//! fx.run(&mut [left, right]);
//! ```

pub mod check;
pub mod json;
pub mod signal;

use std::{fmt, vec::Vec};

use crate::{
    abi,
    arena::Arena,
    descriptor::Params,
    effect::{Config, Effect},
    error::InitError,
    runtime::Runtime,
};

/// The default size of [`memory`], in floats (256 MiB; the pages are only committed as the
/// arena hands them out).
pub const DEFAULT_MEMORY_FLOATS: usize = 1 << 26;

/// Memory for an [`Instance`]: zeroed floats from the allocator, committed lazily by the OS.
pub fn memory() -> Vec<f32> {
    std::vec![0.0; DEFAULT_MEMORY_FLOATS]
}

/// A return code other than `OK`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Error(pub i32);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (code {})", abi::error_name(self.0), self.0)
    }
}

impl std::error::Error for Error {}

fn code(c: i32) -> Result<(), Error> {
    if c == abi::OK { Ok(()) } else { Err(Error(c)) }
}

/// One effect instance, driven like the host drives a module. Its memory (channel buffers and
/// everything the effect takes from the arena) is borrowed from the caller, see [`memory`].
pub struct Instance<'m, E: Effect<'m>> {
    rt: Runtime<'m, E>,
}

impl<'m, E: Effect<'m>> Instance<'m, E> {
    /// `sluice_init(sample_rate, channels, max_frames)`. It also checks the effect's descriptor
    /// with [`check::descriptor`] (as a host would) and panics if it is refused.
    pub fn new(
        memory: &'m mut [f32],
        sample_rate: u32,
        channels: usize,
        max_frames: usize,
    ) -> Result<Self, InitError> {
        Self::with_data(memory, sample_rate, channels, max_frames, &[])
    }

    /// Like [`new`](Self::new), with audio for the effect's data slots first (what the host
    /// does through `sluice_data`): `data[slot]` is one signal per channel, all of one length,
    /// or `None` for a slot left empty. The audio is copied into `memory` before init.
    /// `Err(InitError::Unsupported)` for audio the descriptor does not allow (an undeclared
    /// slot, too many channels, no frames, channels of unequal length), as `sluice_data`
    /// refuses it.
    pub fn with_data(
        memory: &'m mut [f32],
        sample_rate: u32,
        channels: usize,
        max_frames: usize,
        data: &[Option<&[Vec<f32>]>],
    ) -> Result<Self, InitError> {
        if let Err(e) = check::descriptor_matches::<E::Params>() {
            panic!("the descriptor of this effect would be refused: {e}");
        }
        let as_i32 = |v: usize| i32::try_from(v).unwrap_or(i32::MAX);
        let mut arena = Arena::new(memory);
        for (slot, planes) in data.iter().enumerate() {
            let Some(planes) = planes else { continue };
            let frames = planes.first().map_or(0, Vec::len);
            if !crate::runtime::data_fits::<E::Params>(
                as_i32(slot),
                as_i32(planes.len()),
                as_i32(frames),
            ) || planes.iter().any(|p| p.len() != frames)
            {
                return Err(InitError::Unsupported);
            }
            let buf = arena.take(planes.len() * frames)?;
            for (dst, src) in buf.chunks_exact_mut(frames).zip(planes.iter()) {
                dst.copy_from_slice(src);
            }
            let d =
                crate::arena::Data::new(buf, planes.len(), frames).ok_or(InitError::Unsupported)?;
            arena.set_data(slot, d)?;
        }
        let rt = Runtime::new(
            i32::try_from(sample_rate).unwrap_or(i32::MAX),
            as_i32(channels),
            as_i32(max_frames),
            &mut arena,
        )?;
        Ok(Instance { rt })
    }

    /// The descriptor JSON (the bytes of the wasm module's `sluice_effect` section).
    pub fn descriptor() -> &'static str {
        <E::Params as Params>::DESCRIPTOR
    }

    /// The configuration given at init.
    pub fn config(&self) -> &Config {
        self.rt.config()
    }

    /// The current (clamped) parameter values.
    pub fn params(&self) -> &E::Params {
        self.rt.params()
    }

    /// The effect itself, for tests that look at its state.
    pub fn effect(&self) -> &E {
        self.rt.effect()
    }

    /// `sluice_buffer(channel)`: the channel's buffer, `max_frames` long.
    pub fn buffer(&mut self, channel: usize) -> Option<&mut [f32]> {
        self.rt.buffer(i32::try_from(channel).ok()?)
    }

    /// `sluice_set_param(index, value)`.
    pub fn set_param(&mut self, index: usize, value: f32) -> Result<(), Error> {
        code(
            self.rt
                .set_param(i32::try_from(index).unwrap_or(i32::MAX), value),
        )
    }

    /// Sets the parameter `id` (as a pipeline names it); panics on an unknown id or a value
    /// that is not finite — a test helper.
    pub fn set(&mut self, id: &str, value: f32) -> &mut Self {
        let index =
            <E::Params as Params>::index_of(id).unwrap_or_else(|| panic!("no parameter {id:?}"));
        if let Err(e) = self.set_param(index, value) {
            panic!("set {id} = {value}: {e}");
        }
        self
    }

    /// Sets the enumerated parameter `id` to the choice `name`; panics if either is unknown.
    pub fn set_choice(&mut self, id: &str, name: &str) -> &mut Self {
        let index =
            <E::Params as Params>::index_of(id).unwrap_or_else(|| panic!("no parameter {id:?}"));
        let choice = <E::Params as Params>::SPECS[index]
            .choices()
            .iter()
            .position(|c| *c == name)
            .unwrap_or_else(|| panic!("parameter {id:?} has no choice {name:?}"));
        self.set(id, choice as f32)
    }

    /// `sluice_process(frames)` on what is in the buffers.
    pub fn process(&mut self, frames: usize) -> Result<(), Error> {
        code(self.rt.process(i32::try_from(frames).unwrap_or(i32::MAX)))
    }

    /// `sluice_reset()`.
    pub fn reset(&mut self) {
        self.rt.reset()
    }

    /// `sluice_latency()`.
    pub fn latency(&mut self) -> usize {
        self.rt.latency() as usize
    }

    /// Processes whole planar signals in place, in blocks of `max_frames`: per block the
    /// samples are copied into the buffers, processed and copied back, as the host does.
    /// `audio` has one equally long signal per channel.
    pub fn run(&mut self, audio: &mut [Vec<f32>]) {
        let max = self.config().max_frames;
        self.run_blocks(audio, &[max]);
    }

    /// Like [`run`](Self::run) with block lengths taken in turn from `blocks` (each
    /// `1..=max_frames`), to check that results do not depend on the host's block size.
    pub fn run_blocks(&mut self, audio: &mut [Vec<f32>], blocks: &[usize]) {
        let channels = self.config().channels;
        assert_eq!(audio.len(), channels, "one signal per channel");
        let len = audio[0].len();
        assert!(
            audio.iter().all(|a| a.len() == len),
            "signals of equal length"
        );
        let max = self.config().max_frames;
        assert!(
            !blocks.is_empty() && blocks.iter().all(|&b| (1..=max).contains(&b)),
            "block lengths must be in 1..=max_frames ({max})"
        );
        let (mut at, mut k) = (0, 0);
        while at < len {
            let n = blocks[k % blocks.len()].min(len - at);
            k += 1;
            for (c, signal) in audio.iter_mut().enumerate() {
                self.buffer(c).unwrap()[..n].copy_from_slice(&signal[at..at + n]);
            }
            self.process(n).expect("process");
            for (c, signal) in audio.iter_mut().enumerate() {
                signal[at..at + n].copy_from_slice(&self.buffer(c).unwrap()[..n]);
            }
            at += n;
        }
    }
}
