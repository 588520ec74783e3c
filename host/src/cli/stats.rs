//! `sluice stats`: what the root holds and the jobs by state.

use super::{RootArg, emit};
use anyhow::Result;
use sluice_host::commands::{self, Stats};
use std::io::Write;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    root: RootArg,
}

pub fn run(a: Args) -> Result<ExitCode> {
    print(&commands::stats(&a.root.config()?)?, a.json)
}

/// `sluice stats`.
fn print(s: &Stats, json: bool) -> Result<ExitCode> {
    emit(json, s, |out, s| {
        writeln!(out, "{}", s.root.display())?;
        writeln!(
            out,
            "  files     {} ({:.1} MB)",
            s.files,
            s.bytes as f64 / 1e6
        )?;
        for (t, k) in &s.by_type {
            writeln!(
                out,
                "    {t:<8} {:>6} file(s) {:>10.1} MB",
                k.files,
                k.bytes as f64 / 1e6
            )?;
        }
        if let (Some(o), Some(n)) = (&s.oldest, &s.newest) {
            writeln!(out, "  oldest    {}  {}", o.time, o.path.display())?;
            writeln!(out, "  newest    {}  {}", n.time, n.path.display())?;
        }
        writeln!(
            out,
            "  indexed   {} file(s) in watch folders",
            s.indexed_files
        )?;
        if let Some(v) = s.state_schema {
            writeln!(out, "  state     {} (schema {v})", s.state_file.display())?;
        }
        writeln!(
            out,
            "  jobs      {}",
            s.jobs
                .iter()
                .map(|(s, n)| format!("{s} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        )?;
        if !s.ran_on.is_empty() {
            writeln!(
                out,
                "  farm      {}",
                s.ran_on
                    .iter()
                    .map(|(w, n)| match w.as_str() {
                        "?" => format!("{n} out, not answered yet"),
                        _ => format!("{n} on {w}"),
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            )?;
        }
        Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}
