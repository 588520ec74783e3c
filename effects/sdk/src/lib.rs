//! The guest SDK for Sluice effects. The ABI (`effects/ABI.md`) is not written yet; this crate
//! only fixes the place and the constraint: `no_std`, built for `wasm32-unknown-unknown`.
#![no_std]
