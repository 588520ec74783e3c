//! `sluice`: the command-line face of Sluice.

use anyhow::Result;
use clap::{Parser, Subcommand};
use sluice_host::config;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;

mod cli;
use tracing_subscriber::Layer;

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
    Info(cli::info::Args),
    /// Measure audio files: loudness (EBU R 128), levels, spectrum, stereo, tempo, key,
    /// waveform, and the distance to delivery targets. One decode pass per file.
    Analyze(cli::analyze::Args),
    /// Render files to the formats this build writes (`sluice formats`): normalize (peak, or
    /// loudness with a true-peak ceiling), resample, change channels, trim, fade, dither, and
    /// tag.
    Export(Box<cli::export::ExportArgs>),
    /// Watch folders and run every file that settles there through its pipelines: the main
    /// job. With no root given and none at ~/Sluice, makes a ready-to-use one.
    Watch(cli::watch::Args),
    /// Take jobs from a farm's NATS JetStream queue and run them (`[cluster]` in the
    /// worker's sluice.toml; the ingest node is `sluice watch` with the same table).
    #[cfg(feature = "farm")]
    Worker(cli::worker::Args),
    /// Run a pipeline over files now, with progress bars (the sources stay where they are).
    Run(cli::run::Args),
    /// List jobs.
    Jobs(cli::jobs::Args),
    /// Show one job: its record, outputs and events.
    Job(cli::job::Args),
    /// Queue failed or quarantined jobs again.
    Retry(cli::retry::Args),
    /// Check pipelines (a file, a pipelines folder, or a root; default: the root's): problems
    /// as file:line:column, exit 1 when there are any.
    Check(cli::check::Args),
    /// Remove the outputs, reports and moved sources of jobs finished before an age (and the
    /// folders left empty). `--dry-run` alone lists what every finished job left.
    Clean(cli::clean::Args),
    /// What the root holds (files, bytes, by type, oldest and newest) and the jobs by state.
    Stats(cli::stats::Args),
    /// Write ReplayGain 2.0 track and album gain and peak into files in place (folders
    /// recursively): only the tags change, each file atomically (docs/TAGGING.md).
    Tag(cli::tag::Args),
    /// Check files against a delivery specification (EBU R 128, ATSC A/85, Netflix, Apple
    /// Podcasts... or a TOML file): each rule's value, limit and verdict; exit 0 when all
    /// pass, 1 when any fails, 2 on an error (docs/QC.md).
    Qc(cli::qc::Args),
    /// The wasm effects: built in, and `.wasm` files in the root's effects folder.
    Effects {
        #[command(subcommand)]
        action: cli::effects::Action,
    },
    /// List the formats Sluice knows, and whether it decodes and encodes each.
    Formats(cli::formats::Args),
    /// The reference library: add, import, list, remove references; find the nearest.
    #[command(name = "ref")]
    Ref {
        #[command(subcommand)]
        action: cli::reference::Action,
    },
    /// Compare a track with a genre's profile or a reference: bands, dynamics, stereo, and
    /// recommendations (gentle, suggestive or assertive).
    Compare(cli::compare::Args),
    /// Serve the HTTP API over a root: uploads, metadata, analysis, waveforms and formats,
    /// with its OpenAPI document at /openapi.json (docs/API.md).
    #[cfg(feature = "server")]
    Serve(cli::serve::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let _log = logging(&cli);
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            // A closed pipe (`sluice jobs | head`) is not an error of ours: stop quietly,
            // wherever the write that met it was (directly, or inside serde_json).
            let broken_pipe = e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
                    || c.downcast_ref::<serde_json::Error>()
                        .and_then(serde_json::Error::io_error_kind)
                        == Some(std::io::ErrorKind::BrokenPipe)
            });
            if broken_pipe {
                return ExitCode::SUCCESS;
            }
            eprintln!("sluice: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Info(a) => cli::info::run(a),
        Command::Analyze(a) => cli::analyze::run(a),
        Command::Export(a) => cli::export::run(&a),
        Command::Watch(a) => cli::watch::run(a),
        #[cfg(feature = "farm")]
        Command::Worker(a) => cli::worker::run(a),
        Command::Run(a) => cli::run::run(a),
        Command::Jobs(a) => cli::jobs::run(a),
        Command::Job(a) => cli::job::run(a),
        Command::Retry(a) => cli::retry::run(a),
        Command::Check(a) => cli::check::run(a),
        Command::Clean(a) => cli::clean::run(a),
        Command::Stats(a) => cli::stats::run(a),
        Command::Tag(a) => cli::tag::run(a),
        Command::Qc(a) => cli::qc::run(a),
        Command::Effects { action } => cli::effects::run(action),
        Command::Formats(a) => cli::formats::run(a),
        Command::Ref { action } => cli::reference::run(action),
        Command::Compare(a) => cli::compare::run(a),
        #[cfg(feature = "server")]
        Command::Serve(a) => cli::serve::run(a),
    }
}

/// Logs to stderr (SLUICE_LOG; by default Sluice's own at `warn`, `info` for `watch`, other
/// crates at `error`), and for `watch` also to a
/// daily file under the root's `.sluice/logs`, keeping the configured number of files.
fn logging(cli: &Cli) -> Option<()> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let watch_root = match &cli.command {
        Command::Watch(a) => Some(a.root.root.clone()),
        #[cfg(feature = "farm")]
        Command::Worker(a) => Some(a.root.root.clone()),
        _ => None,
    };
    // Other crates (the decoders, the HTTP stack; their `log` records come through too)
    // speak only of errors by default: their warnings ("skipping junk" on tagged MP3s) are
    // ours to report or not. Symphonia's prober says "probe reached EOF" as an error for every
    // file that is not audio, which Sluice then refuses naming the file and what it looks like:
    // said once. SLUICE_LOG overrides it all (SLUICE_LOG=warn shows them).
    let filter = |own: &str| {
        tracing_subscriber::EnvFilter::try_from_env("SLUICE_LOG").unwrap_or_else(|_| {
            tracing_subscriber::EnvFilter::new(format!(
                "error,symphonia_core::formats::probe=off,\
                 sluice={own},sluice_host={own},sluice_engine={own},sluice_core={own}"
            ))
        })
    };
    let ansi = std::io::stderr().is_terminal();
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(Escaping::new(std::io::stderr, ansi))
        .with_ansi(ansi)
        .with_filter(filter(if watch_root.is_some() { "info" } else { "warn" }));
    let file = watch_root.and_then(|r| {
        let root = config::root_from(r.as_deref()).ok()?;
        let cfg = config::Config::load(&root).ok()?;
        let (keep, dir) = (cfg.log_files, cfg.log_dir());
        std::fs::create_dir_all(&dir).ok()?;
        let appender = tracing_appender::rolling::Builder::new()
            .rotation(tracing_appender::rolling::Rotation::DAILY)
            .filename_prefix("sluice")
            .filename_suffix("log")
            .max_log_files(keep)
            .build(&dir)
            .ok()?;
        Some(
            tracing_subscriber::fmt::layer()
                .with_writer(Escaping::new(appender, false))
                .with_ansi(false)
                .with_filter(filter("info")),
        )
    });
    tracing_subscriber::registry()
        .with(stderr)
        .with(file)
        .init();
    Some(())
}

/// Log lines carry file names, and a name may hold a newline or a terminal escape. Every control
/// character inside a line is written escaped (`\n`, `\x1b`), so one event is one line and a
/// name cannot forge another line or drive the terminal; escapes are kept only where the log's
/// own colours are on. (The formatter hands over each event in one write.)
struct Escaping<M> {
    make: M,
    ansi: bool,
}

impl<M> Escaping<M> {
    fn new(make: M, ansi: bool) -> Self {
        Escaping { make, ansi }
    }
}

struct EscapingWriter<W> {
    inner: W,
    ansi: bool,
}

impl<'a, M: tracing_subscriber::fmt::MakeWriter<'a>> tracing_subscriber::fmt::MakeWriter<'a>
    for Escaping<M>
{
    type Writer = EscapingWriter<M::Writer>;
    fn make_writer(&'a self) -> Self::Writer {
        EscapingWriter {
            inner: self.make.make_writer(),
            ansi: self.ansi,
        }
    }
}

/// `line` with its control characters escaped but a final newline (and, when `ansi`, escape
/// characters).
fn escape_controls(line: &[u8], ansi: bool) -> Vec<u8> {
    let (body, end) = match line.strip_suffix(b"\n") {
        Some(b) => (b, &b"\n"[..]),
        None => (line, &b""[..]),
    };
    let mut out = Vec::with_capacity(line.len() + 8);
    for &b in body {
        match b {
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.push(b),
            0x1b if ansi => out.push(b),
            0..=0x1f | 0x7f => out.extend_from_slice(format!("\\x{b:02x}").as_bytes()),
            _ => out.push(b),
        }
    }
    out.extend_from_slice(end);
    out
}

impl<W: Write> Write for EscapingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.inner.write_all(&escape_controls(buf, self.ansi))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
