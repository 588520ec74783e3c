//! `sluice job ID`: one job, its record, outputs and events.

use super::{RootArg, emit};
use anyhow::Result;
use sluice_host::commands::{self, JobDetail, local_time};
use std::io::Write;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    id: u64,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    root: RootArg,
}

pub fn run(a: Args) -> Result<ExitCode> {
    print(&commands::job(&a.root.config()?, a.id)?, a.json)
}

/// `sluice job ID`.
fn print(d: &JobDetail, json: bool) -> Result<ExitCode> {
    emit(json, d, |out, d| {
        let j = &d.job;
        writeln!(
            out,
            "job {}  {}  ({} attempt(s){})",
            j.id,
            j.state.name(),
            j.attempts,
            if j.interrupted > 0 {
                format!(
                    ", {} cut short by the host stopping, run again",
                    j.interrupted
                )
            } else {
                String::new()
            }
        )?;
        writeln!(
            out,
            "  pipeline  {} (version {})",
            j.pipeline, j.pipeline_hash
        )?;
        writeln!(
            out,
            "  input     {}  [{}]",
            super::printable(j.input.display()),
            &j.content_hash[..16.min(j.content_hash.len())]
        )?;
        writeln!(out, "  created   {}", local_time(Some(j.created_ms)))?;
        writeln!(out, "  started   {}", local_time(j.started_ms))?;
        writeln!(out, "  finished  {}", local_time(j.finished_ms))?;
        match j.ran_on.as_deref() {
            Some("?") => writeln!(out, "  ran on    the farm (no worker has answered yet)")?,
            Some(w) => writeln!(out, "  ran on    farm worker {w}")?,
            None => {}
        }
        if let Some(n) = commands::cut_short_note(j) {
            writeln!(out, "  run       {n}")?;
        }
        if let Some(e) = &j.error {
            writeln!(out, "  error     {}", super::printable(e))?;
        }
        for o in &j.outputs {
            writeln!(
                out,
                "  output    {}  {} bytes  [{}]",
                super::printable(o.path.display()),
                o.bytes,
                &o.hash[..16.min(o.hash.len())]
            )?;
        }
        if let Some(r) = &j.report {
            writeln!(out, "  report    {}", super::printable(r.display()))?;
        }
        if let Some(s) = &j.source_now {
            writeln!(out, "  source    now at {}", super::printable(s.display()))?;
        }
        writeln!(out, "  events")?;
        for e in &d.events {
            writeln!(
                out,
                "    {}  {:<16} {}",
                local_time(Some(e.time_ms)),
                e.kind,
                super::printable(&e.message)
            )?;
        }
        Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}
