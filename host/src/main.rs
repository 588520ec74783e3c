//! `sluice`: the command-line face of Sluice.

use anyhow::Result;
use clap::{Parser, Subcommand};
use sluice_core::analysis::{AnalysisOptions, Section, Target};
use sluice_core::{FileInfo, InfoOptions, InputError};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

mod analyze;
mod config;
mod export;
mod outputs;
mod parallel;
mod pipeline;
mod plot;
mod render;
mod store;
mod template;

#[derive(Parser)]
#[command(
    name = "sluice",
    version,
    about = "Sluice: audio analysis, rendering and watch-folder pipelines"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show format facts and tags of audio files (header-only unless --decode).
    Info {
        /// Files to inspect.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Print JSON (one array, one object per file) instead of the readable summary.
        #[arg(long)]
        json: bool,
        /// Decode every file completely: exact frame count for formats whose header does not
        /// give one, and detection of truncated or corrupt audio.
        #[arg(long)]
        decode: bool,
    },
    /// Measure audio files: loudness (EBU R 128), levels, spectrum, stereo, tempo, key,
    /// waveform, and the distance to delivery targets. One decode pass per file.
    Analyze {
        /// Files to analyse.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Print JSON (one array, one object per file) instead of the readable summary.
        #[arg(long)]
        json: bool,
        /// Only these sections, comma-separated: loudness, levels, spectrum, stereo, tempo, key,
        /// waveform, targets.
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
        /// Write PNG pictures (waveform, loudness over time, spectrum) into this folder.
        #[arg(long, value_name = "DIR")]
        plot: Option<PathBuf>,
        /// Delivery targets to check: a preset (spotify, apple_music, podcast, ebu_r128,
        /// atsc_a85) or NAME=LUFS[,DBTP]; repeatable. Default: all presets.
        #[arg(long = "target", value_name = "TARGET")]
        targets: Vec<String>,
        /// Waveform buckets in the report.
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
        buckets: u32,
        /// Level below which the start and end of a file count as silence, dBFS.
        #[arg(long, default_value_t = -60.0, allow_negative_numbers = true)]
        silence_threshold: f64,
        /// Include momentary and short-term loudness history at this step in seconds (0.1 or
        /// more) in the report.
        #[arg(long, value_name = "SECONDS")]
        history: Option<f64>,
        /// Threads to use in all (default: the number of cores).
        #[arg(long, short)]
        jobs: Option<usize>,
    },
    /// Render files to WAV, AIFF, FLAC, MP3 or Ogg Vorbis: normalize (peak, or loudness with
    /// a true-peak ceiling), resample, change channels, trim, fade, dither, and tag.
    Export(Box<export::ExportArgs>),
    /// List the formats Sluice knows, and whether it decodes and encodes each.
    Formats {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SLUICE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            // A closed pipe (`sluice analyze ... | head`) is not an error of ours.
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            {
                return ExitCode::SUCCESS;
            }
            eprintln!("sluice: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Info {
            files,
            json,
            decode,
        } => info(&files, json, decode),
        Command::Analyze {
            files,
            json,
            only,
            plot,
            targets,
            buckets,
            silence_threshold,
            history,
            jobs,
        } => {
            let mut opts = AnalysisOptions {
                waveform_buckets: buckets as usize,
                silence_threshold_dbfs: silence_threshold,
                loudness_history_seconds: history,
                ..Default::default()
            };
            if !only.is_empty() {
                opts.sections = only
                    .iter()
                    .map(|s| {
                        Section::parse(s.trim()).ok_or_else(|| {
                            anyhow::anyhow!(
                                "--only: unknown section `{s}` (known: {})",
                                Section::ALL.map(Section::name).join(", ")
                            )
                        })
                    })
                    .collect::<Result<_>>()?;
            }
            if !targets.is_empty() {
                opts.targets = targets
                    .iter()
                    .map(|t| Target::parse(t).map_err(|e| anyhow::anyhow!("--target {e}")))
                    .collect::<Result<_>>()?;
            }
            if let Some(h) = history
                && !(h >= 0.1 && h.is_finite())
            {
                anyhow::bail!("--history must be at least 0.1 seconds");
            }
            if !(-200.0..=0.0).contains(&silence_threshold) {
                anyhow::bail!("--silence-threshold must be between -200 and 0 dBFS");
            }
            if let Some(dir) = &plot {
                std::fs::create_dir_all(dir).map_err(|e| {
                    anyhow::anyhow!("cannot create the plot folder {}: {e}", dir.display())
                })?;
                // The loudness picture needs the history.
                opts.loudness_history_seconds.get_or_insert(0.1);
            }
            let jobs = jobs.unwrap_or_else(|| {
                std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
            });
            analyze_cmd(&files, &opts, json, plot.as_deref(), jobs)
        }
        Command::Export(args) => export::run(&args),
        Command::Formats { json } => {
            let mut out = std::io::stdout().lock();
            if json {
                serde_json::to_writer_pretty(&mut out, sluice_core::formats::FORMATS)?;
                writeln!(out)?;
            } else {
                render::formats_table(&mut out)?;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

#[derive(serde::Serialize)]
struct JsonError {
    kind: &'static str,
    message: String,
}

#[derive(serde::Serialize)]
#[serde(untagged)]
enum JsonEntry<'a, T> {
    Ok(&'a T),
    Err {
        path: &'a std::path::Path,
        error: JsonError,
    },
}

/// Print per-file results, readable (`render` for each success, errors on stderr) or as one
/// JSON array; exit 1 when any file failed (`failed` counts the results' errors and any
/// failures found after them).
fn print_results<T: serde::Serialize>(
    results: &[Result<T, InputError>],
    json: bool,
    failed: usize,
    render: impl Fn(&mut std::io::StdoutLock<'static>, &T) -> std::io::Result<()>,
) -> Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    if json {
        let entries: Vec<JsonEntry<T>> = results
            .iter()
            .map(|r| match r {
                Ok(v) => JsonEntry::Ok(v),
                Err(e) => JsonEntry::Err {
                    path: e.path(),
                    error: JsonError {
                        kind: e.kind(),
                        message: e.to_string(),
                    },
                },
            })
            .collect();
        serde_json::to_writer_pretty(&mut out, &entries)?;
        writeln!(out)?;
    } else {
        for (i, r) in results.iter().enumerate() {
            if i > 0 {
                writeln!(out)?;
            }
            match r {
                Ok(v) => render(&mut out, v)?,
                Err(e) => {
                    out.flush()?;
                    eprintln!("error: {e}");
                }
            }
        }
    }
    if failed > 0 {
        if !json && results.len() > 1 {
            eprintln!("{failed} of {} files failed", results.len());
        }
        Ok(ExitCode::FAILURE)
    } else {
        Ok(ExitCode::SUCCESS)
    }
}

fn info(files: &[PathBuf], json: bool, decode: bool) -> Result<ExitCode> {
    let opts = InfoOptions { decode };
    let results: Vec<Result<FileInfo, InputError>> =
        files.iter().map(|f| sluice_core::info(f, &opts)).collect();
    let failed = results.iter().filter(|r| r.is_err()).count();
    print_results(&results, json, failed, render::info)
}

fn analyze_cmd(
    files: &[PathBuf],
    opts: &AnalysisOptions,
    json: bool,
    plot: Option<&std::path::Path>,
    jobs: usize,
) -> Result<ExitCode> {
    let progress = std::io::stderr().is_terminal();
    let results = analyze::run(files, opts, jobs, progress);
    let mut failed = results.iter().filter(|r| r.is_err()).count();
    if let Some(dir) = plot {
        for r in results.iter().flatten() {
            if let Err(e) = render::plots(dir, r) {
                eprintln!("error: {e:#}");
                failed += 1;
            }
        }
    }
    print_results(&results, json, failed, render::analysis)
}
