//! `sluice formats`: the formats Sluice knows, and whether it decodes and encodes each.

use anyhow::Result;
use sluice_host::render;
use std::io::Write;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args) -> Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    if a.json {
        serde_json::to_writer_pretty(&mut out, &sluice_core::encode::formats())?;
        writeln!(out)?;
    } else {
        render::formats_table(&mut out)?;
    }
    Ok(ExitCode::SUCCESS)
}
