//! The faces of the sluice host over its engine (crate `sluice-engine`): the HTTP server
//! (`serve`, cargo feature `server`) and the farm over NATS JetStream (`cluster`, feature
//! `farm`). The `sluice` binary (main.rs, `cli/`) is the command line over both and the engine.
//!
//! The engine's modules are re-exported here under their own names, so a face, a test or a
//! bench names `sluice_host::store` as it names `sluice_host::serve`.

pub use sluice_engine::{
    analyze, commands, config, confine, digest, effects, encode_thread, export, gaintag, genres,
    host, job, library, parallel, pipeline, plot, render, scaffold, settle, store, template, tls,
    writers,
};

#[cfg(feature = "farm")]
pub mod cluster;
#[cfg(feature = "server")]
pub mod serve;
