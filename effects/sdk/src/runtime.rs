//! What the exports do, shared by the wasm glue and the native harness so both behave alike:
//! argument checks, channel buffers, clamping, batching of parameter changes.

use crate::{
    abi,
    arena::{ALIGN, Arena},
    descriptor::Params,
    effect::{Config, Effect},
    error::InitError,
};

/// The most channels any effect can have (the ABI's limit).
const MAX: usize = abi::MAX_CHANNELS as usize;

/// Whether `sluice_data(slot, channels, frames)` asks for something the descriptor allows: a
/// declared slot, `1..=max_channels` channels, at least one frame.
pub(crate) fn data_fits<P: Params>(slot: i32, channels: i32, frames: i32) -> bool {
    usize::try_from(slot)
        .ok()
        .and_then(|s| P::INFO.data.get(s))
        .is_some_and(|spec| channels >= 1 && channels as u32 <= spec.max_channels && frames >= 1)
}

/// One initialised effect with its channel buffers.
pub struct Runtime<'a, E: Effect<'a>> {
    effect: E,
    params: E::Params,
    dirty: bool,
    config: Config,
    /// All channel buffers, `stride` floats apart.
    io: &'a mut [f32],
    stride: usize,
}

impl<'a, E: Effect<'a>> Runtime<'a, E> {
    /// `sluice_init`: checks the configuration, takes the channel buffers and then the effect's
    /// memory from `arena`, and creates the effect with default parameters.
    pub fn new(
        sample_rate: i32,
        channels: i32,
        max_frames: i32,
        arena: &mut Arena<'a>,
    ) -> Result<Self, InitError> {
        let info = <E::Params as Params>::INFO;
        if sample_rate < abi::MIN_SAMPLE_RATE as i32 || sample_rate > abi::MAX_SAMPLE_RATE as i32 {
            return Err(InitError::SampleRate);
        }
        if channels < 1 || channels > info.max_channels as i32 {
            return Err(InitError::Channels);
        }
        if max_frames < 1 || max_frames > abi::MAX_FRAMES as i32 {
            return Err(InitError::MaxFrames);
        }
        let config = Config {
            sample_rate: sample_rate as u32,
            channels: channels as usize,
            max_frames: max_frames as usize,
        };
        let stride = config.max_frames.next_multiple_of(ALIGN / 4);
        let io = arena.take(stride * config.channels)?;
        let params = E::Params::default();
        let effect = E::new(&config, &params, arena)?;
        Ok(Runtime {
            effect,
            params,
            dirty: false,
            config,
            io,
            stride,
        })
    }

    /// The configuration given at init.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The current (clamped) parameter values.
    pub fn params(&self) -> &E::Params {
        &self.params
    }

    /// The effect itself (as it stands after the last call; pending parameter changes are
    /// applied at the next `process`, `reset` or `latency`).
    pub fn effect(&self) -> &E {
        &self.effect
    }

    /// `sluice_buffer`: the buffer of `channel`, `max_frames` long.
    pub fn buffer(&mut self, channel: i32) -> Option<&mut [f32]> {
        if channel < 0 || channel as usize >= self.config.channels {
            return None;
        }
        let start = channel as usize * self.stride;
        Some(&mut self.io[start..start + self.config.max_frames])
    }

    /// `sluice_set_param`: clamps `value` into the parameter's range (rounds enumerated ones).
    pub fn set_param(&mut self, index: i32, value: f32) -> i32 {
        let Some(spec) = usize::try_from(index)
            .ok()
            .and_then(|i| <E::Params as Params>::SPECS.get(i))
        else {
            return abi::ERR_PARAM_INDEX;
        };
        let Some(v) = spec.clamp(value) else {
            return abi::ERR_PARAM_VALUE;
        };
        self.params.set(index as usize, v);
        self.dirty = true;
        abi::OK
    }

    fn flush_params(&mut self) {
        if self.dirty {
            self.dirty = false;
            self.effect.update(&self.params);
        }
    }

    /// `sluice_process`: runs the effect over the first `frames` samples of every buffer.
    pub fn process(&mut self, frames: i32) -> i32 {
        if frames < 0 || frames as usize > self.config.max_frames {
            return abi::ERR_FRAMES;
        }
        self.flush_params();
        let frames = frames as usize;
        let mut channels: [&mut [f32]; MAX] = Default::default();
        for (slot, buf) in channels
            .iter_mut()
            .zip(self.io.chunks_exact_mut(self.stride))
        {
            *slot = &mut buf[..frames];
        }
        self.effect.process(&mut channels[..self.config.channels]);
        abi::OK
    }

    /// `sluice_reset`.
    pub fn reset(&mut self) {
        self.dirty = false;
        self.effect.update(&self.params);
        self.effect.reset(&self.params);
    }

    /// `sluice_latency`.
    pub fn latency(&mut self) -> i32 {
        self.flush_params();
        self.effect.latency().min(i32::MAX as u32) as i32
    }
}
