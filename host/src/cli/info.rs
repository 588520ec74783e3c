//! `sluice info FILE...`: format facts and tags.

use anyhow::Result;
use sluice_core::{FileInfo, InfoOptions, InputError};
use sluice_host::render;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
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
}

pub fn run(a: Args) -> Result<ExitCode> {
    info_files(&a.files, a.json, a.decode)
}

fn info_files(files: &[PathBuf], json: bool, decode: bool) -> Result<ExitCode> {
    let opts = InfoOptions { decode };
    let results: Vec<Result<FileInfo, InputError>> =
        files.iter().map(|f| sluice_core::info(f, &opts)).collect();
    let failed = results.iter().filter(|r| r.is_err()).count();
    super::print_results(&results, json, failed, render::info)
}
