//! `sluice`: the command-line face of Sluice.

use anyhow::Result;
use clap::{Parser, Subcommand};
use sluice_core::{FileInfo, InfoOptions, InputError};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

mod render;

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
enum JsonEntry<'a> {
    Ok(&'a FileInfo),
    Err {
        path: &'a std::path::Path,
        error: JsonError,
    },
}

fn info(files: &[PathBuf], json: bool, decode: bool) -> Result<ExitCode> {
    let opts = InfoOptions { decode };
    let results: Vec<Result<FileInfo, InputError>> =
        files.iter().map(|f| sluice_core::info(f, &opts)).collect();
    let failed = results.iter().filter(|r| r.is_err()).count();
    let mut out = std::io::stdout().lock();
    if json {
        let entries: Vec<JsonEntry> = results
            .iter()
            .map(|r| match r {
                Ok(i) => JsonEntry::Ok(i),
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
                Ok(info) => render::info(&mut out, info)?,
                Err(e) => {
                    out.flush()?;
                    eprintln!("error: {e}");
                }
            }
        }
    }
    if failed > 0 {
        if !json && files.len() > 1 {
            eprintln!("{failed} of {} files failed", files.len());
        }
        Ok(ExitCode::FAILURE)
    } else {
        Ok(ExitCode::SUCCESS)
    }
}
