//! `sluice serve`: the HTTP API over a root (see `sluice_host::serve` and docs/API.md).

use super::RootArg;
use anyhow::{Context, Result};
use sluice_host::serve::{self, ServeOptions};
use std::net::SocketAddr;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    root: RootArg,
    /// Address and port to listen on. Beyond loopback every route but /health needs the
    /// root's API token.
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:8750")]
    listen: SocketAddr,
    /// The largest upload accepted, in MB.
    #[arg(long, value_name = "MB", default_value_t = 2048)]
    max_upload_mb: u64,
    /// Print the OpenAPI document and exit.
    #[arg(long)]
    openapi: bool,
}

pub fn run(a: Args) -> Result<ExitCode> {
    if a.openapi {
        println!("{}", serve::openapi_json());
        return Ok(ExitCode::SUCCESS);
    }
    let root = sluice_host::config::root_from(a.root.root.as_deref())?;
    std::fs::create_dir_all(&root).with_context(|| root.display().to_string())?;
    let cfg = a.root.config()?;
    let opts = ServeOptions {
        listen: a.listen,
        max_upload_bytes: a.max_upload_mb.saturating_mul(1_000_000),
    };
    serve::run(&cfg, &opts)?;
    Ok(ExitCode::SUCCESS)
}
