//! The library half of `sluice-host`: the wasm effects runtime (effects/ABI.md), so that
//! benches and tests outside the `sluice` binary can drive effects exactly as pipelines do.
//! Everything else of the host lives in the binary.

pub mod effects;
