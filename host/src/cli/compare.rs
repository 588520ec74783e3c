//! `sluice compare FILE (--genre G | --reference REF)`: a track against a genre's profile or
//! one reference: per-band differences with their tolerance, other figures, recommendations.

use super::emit;
use anyhow::{Result, bail};
use sluice_core::analysis::compare::{Comparison, Level};
use sluice_host::library;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    file: PathBuf,
    #[command(flatten)]
    target: super::TargetArgs,
    /// How readily a difference becomes a recommendation: gentle, suggestive, assertive.
    #[arg(long, default_value = "suggestive")]
    level: String,
    /// Write the tonal-balance picture (the track over the target's tolerance) into DIR.
    #[arg(long, value_name = "DIR")]
    plot: Option<PathBuf>,
    #[arg(long, short)]
    jobs: Option<usize>,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    root: super::RootArg,
}

pub fn run(a: Args) -> Result<ExitCode> {
    let Some(level) = Level::parse(&a.level) else {
        bail!(
            "--level {:?}: one of gentle, suggestive, assertive",
            a.level
        );
    };
    let target = a.target.target()?;
    let jobs = a
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let c = library::compare(&a.root.config()?, &a.file, &target, level, jobs)?;
    if let Some(dir) = &a.plot {
        let written = picture(&c, &a.file, dir)?;
        if !a.json {
            eprintln!("wrote {}", written.display());
        }
    }
    print(&c, &a.file, a.json)
}

fn print(c: &Comparison, file: &std::path::Path, json: bool) -> Result<ExitCode> {
    emit(json, c, |out, c| {
        writeln!(
            out,
            "{} against the {} ({} reference(s)), {}",
            file.display(),
            c.target,
            c.references,
            c.level.name()
        )?;
        writeln!(
            out,
            "  bands, level-matched ({:+.1} dB):",
            -c.level_offset_db
        )?;
        for b in &c.bands {
            writeln!(
                out,
                "    {:<9} {:>6.1} dB  target {:>6.1} ±{:.1}  {:>+5.1} dB  {}",
                b.name,
                b.track_db,
                b.target_db,
                b.tolerance_db,
                b.delta_db,
                if b.inside { "inside" } else { "OUTSIDE" }
            )?;
        }
        for m in &c.metrics {
            writeln!(
                out,
                "    {:<16} {:>7.2} {:<4} target {:>7.2} ±{:.2}  {}",
                m.name,
                m.track,
                m.unit,
                m.target,
                m.tolerance,
                if m.inside { "inside" } else { "OUTSIDE" }
            )?;
        }
        if c.recommendations.is_empty() {
            writeln!(out, "  nothing to recommend: inside the target everywhere")?;
        } else {
            writeln!(out, "  recommendations:")?;
            for r in &c.recommendations {
                writeln!(out, "    - {}", r.text)?;
            }
        }
        Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// `DIR/STEM.tonal.png`: the track's tonal curve over the target's tolerance band.
fn picture(c: &Comparison, file: &std::path::Path, dir: &std::path::Path) -> Result<PathBuf> {
    use sluice_host::plot::{TonalPlot, write_tonal};
    std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
    let stem = file
        .file_stem()
        .map_or_else(|| "track".into(), |s| s.to_string_lossy().into_owned());
    let path = dir.join(format!("{stem}.tonal.png"));
    let points: Vec<(f64, f64, f64, f64)> = c
        .tonal
        .iter()
        .map(|t| (t.hz, t.track_db, t.target_db, t.tolerance_db))
        .collect();
    let bands: Vec<(&str, f64, f64, f64, bool)> = c
        .bands
        .iter()
        .map(|b| (b.name.as_str(), b.low_hz, b.high_hz, b.delta_db, b.inside))
        .collect();
    let target = format!(
        "against the {} ({} reference(s)), {}",
        c.target,
        c.references,
        c.level.name()
    );
    write_tonal(
        &path,
        &TonalPlot {
            title: &stem,
            target: &target,
            points: &points,
            bands: &bands,
        },
    )
    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(path)
}
