//! The engine of `sluice-host`: the watch-folder host, job store and pipelines, the wasm effects
//! runtime (effects/ABI.md), exports with each encoder on a thread of its own, analysis and
//! pictures. The `sluice` binary (main.rs) is the command line over it; benches, tests, and the
//! HTTP and cluster faces call the same functions.

pub mod analyze;
pub mod cluster;
pub mod commands;
pub mod config;
pub mod confine;
pub mod digest;
pub mod effects;
pub mod encode_thread;
pub mod export;
pub mod host;
pub mod job;
pub mod library;
pub mod parallel;
pub mod pipeline;
pub mod plot;
pub mod render;
pub mod scaffold;
pub mod serve;
pub mod settle;
pub mod store;
pub mod template;
pub mod tls;
pub mod writers;
