//! The library half of `sluice-host`: the wasm effects runtime (effects/ABI.md), and exports
//! with each encoder on a thread of its own, so that benches and tests outside the `sluice`
//! binary can drive effects and exports exactly as pipelines and `sluice export` do.
//! Everything else of the host lives in the binary.

pub mod effects;
pub mod encode_thread;
