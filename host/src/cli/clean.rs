//! `sluice clean --older-than AGE [--dry-run]`.

use super::{RootArg, emit};
use anyhow::Result;
use sluice_host::commands::{self, Cleaned};
use std::io::Write;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Age like 30d, 12h, 2w (needed to remove; a dry run without it counts every job).
    #[arg(long, value_name = "AGE", required_unless_present = "dry_run")]
    older_than: Option<String>,
    /// Say what would go without removing anything.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    root: RootArg,
}

pub fn run(a: Args) -> Result<ExitCode> {
    // Only a dry run comes without an age (the command line insists): every finished job.
    let age = a
        .older_than
        .as_deref()
        .map(commands::parse_age)
        .transpose()?
        .unwrap_or_default();
    print(&commands::clean(&a.root.config()?, age, a.dry_run)?)
}

/// `sluice clean`.
fn print(c: &Cleaned) -> Result<ExitCode> {
    for s in &c.skipped {
        eprintln!("skipped: {s}");
    }
    emit(false, c, |out, c| {
        let verb = if c.dry_run { "would remove" } else { "remove" };
        for f in &c.files {
            writeln!(out, "{verb} {}", f.display())?;
        }
        writeln!(
            out,
            "{} {} file(s), {:.1} MB, and {} empty folder(s){}",
            if c.dry_run { "would remove" } else { "removed" },
            c.files.len(),
            c.bytes as f64 / 1e6,
            c.folders,
            if c.dry_run {
                " (dry run: nothing removed)"
            } else {
                ""
            }
        )
    })?;
    Ok(ExitCode::SUCCESS)
}
