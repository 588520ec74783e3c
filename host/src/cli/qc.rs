//! `sluice qc FILE... --spec NAME|FILE`: each file measured once and judged against a delivery
//! specification, rule by rule (docs/QC.md). Exit 0 when every file passes, 1 when any fails,
//! 2 on an error (a file that cannot be read, a specification that cannot be used).

use super::emit;
use anyhow::{Context, Result};
use sluice_core::qc::{self, Outcome, QcReport};
use sluice_host::analyze;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// The files to check.
    #[arg(required_unless_present = "list")]
    files: Vec<PathBuf>,
    /// A built-in specification (`--list` shows them) or a specification's TOML file.
    #[arg(long, short = 's', required_unless_present = "list")]
    spec: Option<String>,
    /// List the built-in specifications and their sources.
    #[arg(long, conflicts_with_all = ["files", "spec"])]
    list: bool,
    /// One JSON document on stdout: every file's report.
    #[arg(long)]
    json: bool,
    /// Write each file's loudness history (momentary and short-term every 100 ms) as
    /// `NAME.qc.csv` into this folder.
    #[arg(long, value_name = "DIR")]
    csv: Option<PathBuf>,
    /// Write each file's report as one self-contained HTML page, `NAME.qc.html`, into this
    /// folder (it prints to PDF from a browser).
    #[arg(long, value_name = "DIR")]
    html: Option<PathBuf>,
}

pub fn run(a: Args) -> Result<ExitCode> {
    if a.list {
        return list(a.json);
    }
    let spec = qc::spec::load(a.spec.as_deref().unwrap_or_default())?;
    let opts = qc::options(&spec);
    // One decode per file, its analyzers on every core (the same runner as `sluice analyze`),
    // with a progress bar per file on a terminal.
    let jobs = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let shown = std::io::stderr().is_terminal() && !a.json;
    // What a run killed while it wrote its reports left there goes first.
    for dir in a.csv.iter().chain(&a.html) {
        sluice_core::io::sweep_stale(dir);
    }
    let results = analyze::run(&a.files, &opts, jobs, &super::bars::Bars::new(shown));
    let mut reports = Vec::new();
    let mut errors = 0;
    for (f, result) in a.files.iter().zip(results) {
        match result {
            Ok(analysis) => {
                let report = qc::judge(&spec, qc::measured(analysis, &opts));
                if let Some(dir) = &a.csv {
                    write_beside(dir, f, "csv", &qc::history_csv(&report))?;
                }
                if let Some(dir) = &a.html {
                    write_beside(dir, f, "html", &qc::html::report_html(&report))?;
                }
                reports.push(report);
            }
            Err(e) => {
                eprintln!("sluice: {e}");
                errors += 1;
            }
        }
    }
    emit(a.json, &reports, |out, reports| {
        for r in reports {
            print_report(out, r)?;
        }
        Ok(())
    })?;
    Ok(if errors > 0 {
        ExitCode::from(2)
    } else if reports.iter().all(|r| r.passed) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `NAME.qc.EXT` of `file` into `dir` (written whole or not at all).
fn write_beside(dir: &Path, file: &Path, ext: &str, text: &str) -> Result<()> {
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "audio".into());
    let dest = dir.join(format!("{name}.qc.{ext}"));
    sluice_core::io::AtomicFile::write(&dest, text.as_bytes())
        .with_context(|| format!("writing {}", dest.display()))?;
    Ok(())
}

/// One file's verdict, then a line per rule.
fn print_report(out: &mut impl Write, r: &QcReport) -> std::io::Result<()> {
    writeln!(
        out,
        "{}: {} against {} ({})",
        r.measured.path.display(),
        if r.passed { "PASS" } else { "FAIL" },
        r.spec_name,
        r.spec
    )?;
    for v in &r.verdicts {
        let value = v
            .value
            .as_ref()
            .map(|x| format!("{x} {}", v.unit).trim_end().to_string())
            .unwrap_or_else(|| "—".into());
        let outcome = match v.outcome {
            Outcome::Pass => "pass",
            Outcome::Fail => "FAIL",
            Outcome::Warn => "warn",
            Outcome::NotMeasured => "not measured",
            Outcome::FromFile => "from the file",
        };
        writeln!(
            out,
            "  {:<22} {:>14}   {:<18} {outcome}",
            v.measure.name(),
            value,
            v.limit
        )?;
        if v.outcome == Outcome::NotMeasured
            && let Some(n) = &v.note
        {
            writeln!(out, "      {n}")?;
        }
    }
    if let Some(c) = r.ceiling_dbtp {
        let n = r.true_peak_events.len();
        if n > 0 {
            let times: Vec<String> = r
                .true_peak_events
                .iter()
                .take(5)
                .map(|e| {
                    format!(
                        "{} ({:.2} dBTP)",
                        sluice_core::time::clock(e.start_s, 1, false),
                        e.peak_dbtp
                    )
                })
                .collect();
            writeln!(
                out,
                "  true peak over {c} dBTP {n} time(s): {}{}",
                times.join(", "),
                if n > 5 { ", ..." } else { "" }
            )?;
        }
    }
    if let Some(share) = r.measured.speech_share {
        let segments = r.measured.speech_segments.as_ref().map_or(0, Vec::len);
        writeln!(
            out,
            "  speech: {:.0} % of the file in {segments} segment(s) (Sluice's speech detector)",
            share * 100.0
        )?;
    }
    for w in &r.measured.warnings {
        writeln!(out, "  warning: {w}")?;
    }
    writeln!(out, "  source: {}", r.source)
}

/// The built-in specifications.
fn list(json: bool) -> Result<ExitCode> {
    let specs = qc::spec::builtins();
    emit(json, &specs, |out, specs| {
        for s in specs {
            writeln!(
                out,
                "{:<16} {}: {}",
                s.id,
                s.name,
                s.summary.as_deref().unwrap_or("")
            )?;
            writeln!(out, "{:<16} source: {}", "", s.source)?;
        }
        Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}
