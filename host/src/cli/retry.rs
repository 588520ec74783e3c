//! `sluice retry ID... | --failed`: queue failed or quarantined jobs again.

use super::{RootArg, emit};
use anyhow::Result;
use sluice_host::commands::{self, Retried};
use std::io::Write;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Job ids.
    #[arg(required_unless_present = "failed")]
    ids: Vec<u64>,
    /// Every failed and quarantined job.
    #[arg(long)]
    failed: bool,
    #[command(flatten)]
    root: RootArg,
}

pub fn run(a: Args) -> Result<ExitCode> {
    print(&commands::retry(&a.root.config()?, &a.ids, a.failed)?)
}

/// `sluice retry`: exit 1 when a job was left alone.
fn print(r: &Retried) -> Result<ExitCode> {
    emit(false, r, |out, r| {
        if r.queued.is_empty() && r.left_alone.is_empty() {
            return writeln!(out, "nothing to retry");
        }
        for id in &r.queued {
            writeln!(out, "job {id}: queued again")?;
        }
        Ok(())
    })?;
    for id in &r.left_alone {
        eprintln!("job {id}: not failed or quarantined (or no such job): left alone");
    }
    Ok(if r.left_alone.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
