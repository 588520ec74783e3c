//! `sluice watch`: the watch-folder host, the main job.

use super::RootArg;
use anyhow::Result;
use sluice_host::{commands, config, host};
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub root: RootArg,
}

pub fn run(a: Args) -> Result<ExitCode> {
    let dir = config::root_from(a.root.root.as_deref())?;
    if commands::init_root(&dir)? {
        super::say(format!(
            "sluice: made a new root at {} with example pipelines (podcast, streaming-master, broadcast, analysis, archive)",
            dir.display()
        ));
    }
    let cfg = config::Config::load(&dir)?;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let abort = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    super::survive_file_size_limit()?;
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // The second signal stops at once (running jobs run again at the next start).
        signal_hook::flag::register_conditional_shutdown(sig, 130, stop.clone())?;
        signal_hook::flag::register(sig, stop.clone())?;
    }
    // A root asking for a face this build lacks is refused, not run without it.
    cfg.needs_only(config::Faces {
        server: cfg!(feature = "server"),
        farm: cfg!(feature = "farm"),
    })?;
    // `[server]`: the HTTP API beside the host, stopping with it.
    let server = serve_beside(&cfg, &stop)?;
    let hosted = host::watch(cfg, stop.clone(), abort, &|n| super::say(n), farm());
    // The server stops with the host (or alone, on an error it has reported).
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    if let Some(Ok(t)) = server {
        let _ = t.join();
    }
    hosted?;
    Ok(ExitCode::SUCCESS)
}

/// The server's thread when the root's `[server]` asks for one.
#[cfg(feature = "server")]
fn serve_beside(
    cfg: &config::Config,
    stop: &std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Result<Option<std::io::Result<std::thread::JoinHandle<Result<()>>>>> {
    Ok(cfg.server.clone().map(|sv| {
        let (cfg, stop) = (cfg.clone(), stop.clone());
        std::thread::Builder::new()
            .name("sluice-server".into())
            .spawn(move || {
                let opts = sluice_host::serve::ServeOptions::from_config(&sv);
                let r =
                    sluice_host::serve::run_until(&cfg, &opts, stop.clone(), &super::serve::notice);
                if let Err(e) = &r {
                    super::say(format!("sluice: the HTTP server stopped: {e:#}"));
                }
                r
            })
    }))
}

/// A build without the server: none (a root that asks for one is refused first, see
/// [`config::Config::needs_only`]).
#[cfg(not(feature = "server"))]
fn serve_beside(
    _: &config::Config,
    _: &std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Result<Option<std::io::Result<std::thread::JoinHandle<Result<()>>>>> {
    Ok(None)
}

/// How the watch host reaches a farm (`[cluster]`): none in a build without the farm.
#[cfg(feature = "farm")]
fn farm() -> Option<&'static host::ConnectFarm> {
    Some(&sluice_host::cluster::ingest::connect)
}

#[cfg(not(feature = "farm"))]
fn farm() -> Option<&'static host::ConnectFarm> {
    None
}
