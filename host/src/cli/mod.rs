//! The commands of the `sluice` binary: one file each, holding its arguments (clap), the call
//! into the engine (`sluice_host`), and its text form; `--json` prints the engine's own types.
//! Adding a command is a file here, its `pub mod` line below, and its variant in `main.rs`'s
//! `Command` with its arm in `run`.
//!
//! Writes return their error instead of panicking: a reader that goes away early
//! (`sluice jobs | head`) ends the command quietly (see `main`).

use anyhow::Result;
use sluice_core::InputError;
use sluice_host::config;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

pub mod analyze;
pub mod bars;
pub mod check;
pub mod clean;
pub mod compare;
pub mod effects;
pub mod export;
pub mod formats;
pub mod info;
pub mod job;
pub mod jobs;
pub mod qc;
pub mod reference;
pub mod retry;
pub mod run;
#[cfg(feature = "server")]
pub mod serve;
pub mod stats;
pub mod tag;
pub mod watch;
#[cfg(feature = "farm")]
pub mod worker;

#[derive(clap::Args)]
pub struct RootArg {
    /// The root folder (default: $SLUICE_ROOT, else ~/Sluice).
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
}

impl RootArg {
    pub fn config(&self) -> Result<config::Config> {
        config::Config::load(&config::root_from(self.root.as_deref())?)
    }
}

/// What a track is held against (`sluice compare`, `sluice ref profile export`).
#[derive(clap::Args)]
pub struct TargetArgs {
    /// The profile of this genre's references.
    #[arg(
        long,
        conflicts_with = "reference",
        required_unless_present = "reference"
    )]
    genre: Option<String>,
    /// One reference, by id (3 or #3) or name.
    #[arg(long)]
    reference: Option<String>,
}

impl TargetArgs {
    pub fn target(self) -> Result<sluice_host::library::Target> {
        use sluice_host::library::Target;
        match (self.genre, self.reference) {
            (Some(g), _) => Ok(Target::Genre(g)),
            (None, Some(r)) => Ok(Target::Reference(r)),
            (None, None) => anyhow::bail!("give --genre G or --reference REF"),
        }
    }
}

type Out = std::io::StdoutLock<'static>;

/// `text` for a terminal: control characters (a name's escape sequences, its newlines) shown
/// as escapes, so a file name cannot drive the terminal or break a table's rows.
pub fn printable(text: impl std::fmt::Display) -> String {
    text.to_string()
        .chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// `value` as pretty JSON when `json`, else as `text` writes it.
pub fn emit<T: serde::Serialize + ?Sized>(
    json: bool,
    value: &T,
    text: impl FnOnce(&mut Out, &T) -> std::io::Result<()>,
) -> Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, value)?;
        writeln!(out)?;
    } else {
        text(&mut out, value)?;
    }
    out.flush()?;
    Ok(())
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
pub fn print_results<T: serde::Serialize>(
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

/// Under a file size limit (`ulimit -f`), a write past it raises SIGXFSZ, which kills the
/// process by default. Handled, the write fails with EFBIG instead, and that job fails (and
/// is retried) like any other write error while the host carries on.
pub fn survive_file_size_limit() -> std::io::Result<()> {
    signal_hook::flag::register(
        signal_hook::consts::SIGXFSZ,
        std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false)),
    )
    .map(|_| ())
}

/// The CLI's one printer: a line for whoever watches standard output. A reader that went away
/// (`sluice watch | head -3`) must not stop the host: the line is dropped, the log keeps it.
pub fn say(line: impl std::fmt::Display) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}
