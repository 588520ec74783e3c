//! The engine of the sluice host: the watch host and its scheduler, the job store and pipelines,
//! the wasm effects runtime (effects/ABI.md), exports with each encoder on a thread of its own,
//! analysis, the reference library and pictures.
//!
//! It knows no command line, progress bar, HTTP or NATS: its faces (the `sluice` command line,
//! `sluice serve`, the farm; crate `sluice-host`) call it with typed requests and get typed
//! results, notices and progress through the callbacks and traits it defines (`host::Notice`,
//! `analyze::Progress`, `host::Farm`). docs/ARCHITECTURE.md lists its layers.

pub mod analyze;
pub mod commands;
pub mod config;
pub mod confine;
pub mod digest;
pub mod effects;
pub mod encode_thread;
pub mod export;
pub mod gaintag;
pub mod genres;
pub mod host;
pub mod job;
pub mod library;
pub mod parallel;
pub mod pipeline;
pub mod plot;
pub mod render;
pub mod scaffold;
pub mod settle;
pub mod store;
pub mod template;
pub mod tls;
pub mod writers;
