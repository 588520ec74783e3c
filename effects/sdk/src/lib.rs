//! The guest SDK for Sluice effects: WebAssembly modules that follow `effects/ABI.md`.
//!
//! An effect is a struct that implements [`Effect`], plus one [`effect!`] invocation that
//! declares its parameters. From that one declaration the macro generates
//!
//! - the parameter struct the effect reads (one field per parameter, clamped values),
//! - the descriptor JSON (a `sluice_effect` custom section in the wasm module),
//! - on `wasm32` only, the `sluice_*` exports the host calls.
//!
//! Everything is `no_std` and allocator-free: an effect takes the memory it needs (delay lines,
//! tables) from an [`Arena`] when it is created, and never allocates afterwards. On wasm32 the
//! arena grows the module's memory; natively it carves a caller-supplied slice.
//!
//! Natively (tests, benches) [`native::Instance`] drives an effect exactly as the host drives
//! the wasm module: init, channel buffers, `set_param`, `process` in blocks, `reset`. Both go
//! through the same [`Runtime`], so a native run and a wasm run of the same effect agree.
//!
//! Maths: use [`libm`] (re-exported) and [`dsp`]; both give identical results on wasm32 and
//! x86_64, which `std`'s float functions do not promise.
#![no_std]

// Natively the SDK links std: the native harness uses it, and an effect crate built natively
// as a cdylib gets its panic handler from it. The wasm32 build stays `no_std`.
#[cfg(not(target_arch = "wasm32"))]
extern crate std;

pub use libm;

pub mod abi;
mod arena;
pub mod descriptor;
pub mod dsp;
mod effect;
mod error;
mod macros;
mod runtime;

#[cfg(not(target_arch = "wasm32"))]
pub mod native;
#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub mod wasm;

pub use arena::{Arena, Data, Zeroable};
pub use descriptor::{DataSpec, EffectInfo, ParamKind, ParamSpec, Params};
pub use effect::{Config, Effect};
pub use error::InitError;
pub use runtime::Runtime;

/// Sends a message to the host's log (the optional `sluice.log` import). The import is only
/// emitted into a module that calls this. Natively the message goes to stderr.
pub fn log(message: &str) {
    #[cfg(target_arch = "wasm32")]
    wasm::log(message);
    #[cfg(not(target_arch = "wasm32"))]
    std::eprintln!("[effect] {message}");
}
