//! `sluice check [PATH]`: pipelines checked, problems as file:line:column.

use super::{RootArg, emit};
use anyhow::Result;
use sluice_host::commands::{self, Checked};
use sluice_host::config;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    path: Option<PathBuf>,
    #[command(flatten)]
    root: RootArg,
}

pub fn run(a: Args) -> Result<ExitCode> {
    print(&commands::check(
        &config::root_from(a.root.root.as_deref())?,
        a.path.as_deref(),
    )?)
}

/// `sluice check`: pipelines that load on stdout, problems on stderr; exit 1 with problems.
fn print(c: &Checked) -> Result<ExitCode> {
    for d in &c.problems {
        eprintln!("{d}");
    }
    emit(false, c.ok.as_slice(), |out, ok| {
        for p in ok {
            writeln!(
                out,
                "ok  {} ({}{}): {} step(s), {} output(s), watching {}",
                p.name,
                p.file.display(),
                p.description
                    .as_ref()
                    .map(|d| format!(", \"{d}\""))
                    .unwrap_or_default(),
                p.steps,
                p.outputs,
                p.watch
                    .iter()
                    .map(|w| w.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )?;
        }
        Ok(())
    })?;
    if c.problems.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("{} problem(s)", c.problems.len());
        Ok(ExitCode::from(1))
    }
}
