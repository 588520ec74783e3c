//! `sluice worker`: one machine of a farm (docs/CLUSTER.md).

use super::RootArg;
use anyhow::Result;
use sluice_host::{cluster, config};
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// The worker's own folder (its state, compiled effects and the folders jobs run in),
    /// with the farm's `[cluster]` table in its sluice.toml.
    #[command(flatten)]
    pub root: RootArg,
}

pub fn run(a: Args) -> Result<ExitCode> {
    let dir = config::root_from(a.root.root.as_deref())?;
    std::fs::create_dir_all(&dir)?;
    let cfg = config::Config::load(&dir)?;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    super::survive_file_size_limit()?;
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // The second signal stops at once (the jobs running go to other workers).
        signal_hook::flag::register_conditional_shutdown(sig, 130, stop.clone())?;
        signal_hook::flag::register(sig, stop.clone())?;
    }
    cluster::worker::run(cfg, stop, &|n| super::say(n))?;
    Ok(ExitCode::SUCCESS)
}
