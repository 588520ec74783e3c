//! `sluice run PIPELINE FILE...`: a pipeline over files now, with a progress bar.

use super::{RootArg, emit};
use anyhow::Result;
use sluice_host::commands::{self, RunOutcome};
use sluice_host::config;
use sluice_host::store::JobState;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Pipeline name (in the root's pipelines folder) or the path of a pipeline file.
    pipeline: String,
    #[arg(required = true)]
    files: Vec<PathBuf>,
    #[command(flatten)]
    root: RootArg,
    /// Print the job records as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args) -> Result<ExitCode> {
    super::survive_file_size_limit()?;
    let dir = config::root_from(a.root.root.as_deref())?;
    commands::init_root(&dir)?;
    run_on(&config::Config::load(&dir)?, &a.pipeline, &a.files, a.json)
}

/// `sluice run`: a progress bar over the files, each file's result as it finishes (text), then
/// the JSON of all.
fn run_on(cfg: &config::Config, pipeline: &str, files: &[PathBuf], json: bool) -> Result<ExitCode> {
    let total = indicatif::ProgressBar::new(files.len() as u64).with_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} files  {elapsed}  {msg}")
            .expect("valid template"),
    );
    if !std::io::stderr().is_terminal() {
        total.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let each = |f: &std::path::Path, r: &commands::RunOutcome| {
        total.inc(1);
        let state = match r {
            commands::RunOutcome::Job { job, .. } => job.state.name(),
            commands::RunOutcome::Refused { .. } => "refused",
        };
        total.set_message(format!("{}: {state}", f.display()));
        if !json {
            let mut text = Vec::new();
            if outcome(&mut text, f, r).is_ok() {
                total.suspend(|| {
                    let _ = std::io::stdout().lock().write_all(&text);
                });
            }
        }
    };
    let results = commands::run(cfg, pipeline, files, &each)?;
    total.finish_and_clear();
    print(&results, json)
}

/// One file of `sluice run` as it finishes, as text.
fn outcome(out: &mut impl Write, f: &std::path::Path, r: &RunOutcome) -> Result<()> {
    match r {
        RunOutcome::Job {
            job,
            outputs,
            warnings,
        } if job.state == JobState::Done => {
            writeln!(out, "{}: job {} done", f.display(), job.id)?;
            for o in outputs {
                let loudness = match (o.integrated_lufs, o.true_peak_dbtp) {
                    (Some(i), Some(tp)) => format!("  ({i:.1} LUFS, true peak {tp:.1} dBTP)"),
                    _ => String::new(),
                };
                writeln!(out, "  → {}{loudness}", o.path.display())?;
            }
            for w in warnings {
                writeln!(out, "  warning: {w}")?;
            }
        }
        RunOutcome::Job { job, .. } => writeln!(
            out,
            "{}: job {} {}: {}",
            f.display(),
            job.id,
            job.state.name(),
            job.error.clone().unwrap_or_default()
        )?,
        RunOutcome::Refused { error } => {
            out.flush()?;
            eprintln!("{}: {error:#}", f.display());
        }
    }
    Ok(())
}

/// `sluice run`: the text was written file by file; JSON is the job records, or the error of a
/// file that got none. Exit 1 when a file was not done.
fn print(results: &[(PathBuf, RunOutcome)], json: bool) -> Result<ExitCode> {
    if json {
        let list: Vec<serde_json::Value> = results
            .iter()
            .map(|(f, r)| match r {
                RunOutcome::Job { job, .. } => serde_json::to_value(job),
                RunOutcome::Refused { error } => {
                    Ok(serde_json::json!({"path": f, "error": format!("{error:#}")}))
                }
            })
            .collect::<Result<_, _>>()?;
        emit(true, &list, |_, _| Ok(()))?;
    }
    Ok(if results.iter().all(|(_, r)| r.done()) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
