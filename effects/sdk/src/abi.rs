//! The numbers of `effects/ABI.md`: return codes and the limits a host enforces.

/// The `abi` field of every descriptor this SDK writes.
pub const ABI_VERSION: u32 = 1;
/// The name of the custom section that carries the descriptor.
pub const SECTION: &str = "sluice_effect";

/// Success.
pub const OK: i32 = 0;
/// `sluice_init`: the sample rate is outside what the effect supports.
pub const ERR_SAMPLE_RATE: i32 = 1;
/// `sluice_init`: the channel count is 0 or more than the descriptor's `max_channels`.
pub const ERR_CHANNELS: i32 = 2;
/// `sluice_init`: `max_frames` is 0 or above [`MAX_FRAMES`]; `sluice_process`: `frames` is
/// negative or above the `max_frames` given at init.
pub const ERR_FRAMES: i32 = 3;
/// `sluice_init`: the memory the effect needs could not be obtained (`memory.grow` failed).
pub const ERR_MEMORY: i32 = 4;
/// Called in the wrong state: `sluice_init` twice, or anything else before a successful init.
pub const ERR_STATE: i32 = 5;
/// `sluice_set_param`: no parameter has that index.
pub const ERR_PARAM_INDEX: i32 = 6;
/// `sluice_set_param`: the value is NaN or infinite (finite values are clamped, not refused).
pub const ERR_PARAM_VALUE: i32 = 7;
/// `sluice_init`: another unsupported configuration, particular to the effect.
pub const ERR_UNSUPPORTED: i32 = 8;

/// The name of a return code, for messages.
pub const fn error_name(code: i32) -> &'static str {
    match code {
        OK => "ok",
        ERR_SAMPLE_RATE => "unsupported sample rate",
        ERR_CHANNELS => "unsupported channel count",
        ERR_FRAMES => "frame count out of range",
        ERR_MEMORY => "out of memory",
        ERR_STATE => "called in the wrong state",
        ERR_PARAM_INDEX => "no such parameter",
        ERR_PARAM_VALUE => "parameter value is not finite",
        ERR_UNSUPPORTED => "unsupported configuration",
        _ => "unknown error",
    }
}

/// Sample rates a host may pass to `sluice_init` (inclusive).
pub const MIN_SAMPLE_RATE: u32 = 8_000;
/// See [`MIN_SAMPLE_RATE`].
pub const MAX_SAMPLE_RATE: u32 = 768_000;
/// The largest `max_frames` a host may pass to `sluice_init`.
pub const MAX_FRAMES: u32 = 65_536;
/// The largest `max_channels` a descriptor may declare.
pub const MAX_CHANNELS: u32 = 32;

/// The most data slots a descriptor may declare.
pub const MAX_DATA: usize = 4;
/// A data slot's `max_seconds` is at most this.
pub const MAX_DATA_SECONDS: f32 = 600.0;

/// Descriptor limits (bytes are UTF-8 bytes).
pub const MAX_SECTION_BYTES: usize = 65_536;
/// At most this many parameters.
pub const MAX_PARAMS: usize = 64;
/// Effect name: `[a-z0-9][a-z0-9_-]*`.
pub const MAX_EFFECT_NAME_BYTES: usize = 64;
/// Version: printable ASCII.
pub const MAX_VERSION_BYTES: usize = 32;
/// Description.
pub const MAX_DESCRIPTION_BYTES: usize = 1_024;
/// Parameter id: `[a-z][a-z0-9_]*`.
pub const MAX_ID_BYTES: usize = 64;
/// Parameter display name.
pub const MAX_NAME_BYTES: usize = 64;
/// Parameter unit (may be empty).
pub const MAX_UNIT_BYTES: usize = 16;
/// Choices of an enumerated parameter.
pub const MAX_CHOICES: usize = 64;
/// One choice: `[a-z0-9][a-z0-9_-]*`.
pub const MAX_CHOICE_BYTES: usize = 64;
/// `tail_seconds` is in `0..=MAX_TAIL_SECONDS`.
pub const MAX_TAIL_SECONDS: f32 = 3_600.0;
