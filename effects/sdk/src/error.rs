//! Why an effect cannot run: the ABI's return codes as a type.

use crate::abi;

/// Why an effect cannot run in a configuration; each is one of `ABI.md`'s return codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InitError {
    /// [`abi::ERR_SAMPLE_RATE`]
    SampleRate,
    /// [`abi::ERR_CHANNELS`]
    Channels,
    /// [`abi::ERR_FRAMES`]
    MaxFrames,
    /// [`abi::ERR_MEMORY`]
    Memory,
    /// [`abi::ERR_STATE`]
    State,
    /// [`abi::ERR_UNSUPPORTED`]
    Unsupported,
}

impl InitError {
    /// The ABI return code.
    pub const fn code(self) -> i32 {
        match self {
            InitError::SampleRate => abi::ERR_SAMPLE_RATE,
            InitError::Channels => abi::ERR_CHANNELS,
            InitError::MaxFrames => abi::ERR_FRAMES,
            InitError::Memory => abi::ERR_MEMORY,
            InitError::State => abi::ERR_STATE,
            InitError::Unsupported => abi::ERR_UNSUPPORTED,
        }
    }
}

impl core::fmt::Display for InitError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{} (code {})", abi::error_name(self.code()), self.code())
    }
}
