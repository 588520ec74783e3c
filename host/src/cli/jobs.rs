//! `sluice jobs`: the jobs, all or in one state.

use super::{RootArg, emit};
use anyhow::Result;
use sluice_host::commands::{self, local_time};
use sluice_host::store::{JobRecord, JobState};
use std::io::Write;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Only jobs in this state: queued, running, done, failed, quarantined.
    #[arg(long)]
    state: Option<String>,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    root: RootArg,
}

pub fn run(a: Args) -> Result<ExitCode> {
    let state = a
        .state
        .map(|s| {
            JobState::parse(&s).ok_or_else(|| {
                anyhow::anyhow!("--state {s}: queued, running, done, failed or quarantined")
            })
        })
        .transpose()?;
    print(&commands::jobs(&a.root.config()?, state)?, a.json)
}

/// `sluice jobs`.
fn print(list: &[JobRecord], json: bool) -> Result<ExitCode> {
    emit(json, list, |out, list| {
        if list.is_empty() {
            return writeln!(out, "no jobs");
        }
        writeln!(
            out,
            "{:>6}  {:<11} {:>5}  {:<18} {:<19}  input",
            "id", "state", "done", "pipeline", "finished"
        )?;
        for j in list {
            writeln!(
                out,
                "{:>6}  {:<11} {:>4.0}%  {:<18} {:<19}  {}{}{}{}",
                j.id,
                j.state.name(),
                j.progress * 100.0,
                j.pipeline,
                local_time(j.finished_ms),
                super::printable(j.input.display()),
                match j.ran_on.as_deref() {
                    Some("?") => "  (on the farm)".to_string(),
                    Some(w) => format!("  (on {w})"),
                    None => String::new(),
                },
                commands::cut_short_note(j)
                    .map(|n| format!("\n        {n}"))
                    .unwrap_or_default(),
                j.error
                    .as_ref()
                    .map(|e| format!("\n        {e}"))
                    .unwrap_or_default()
            )?;
        }
        Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}
