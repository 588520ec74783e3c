//! `sluice`: the command-line face of Sluice.

use anyhow::Result;
use clap::{Parser, Subcommand};
use sluice_core::analysis::{AnalysisOptions, Section, Target};
use sluice_core::{FileInfo, InfoOptions, InputError};
use sluice_host::store::JobState;
use sluice_host::{analyze, commands, config, export, host, pipeline, render};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

mod print;
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

#[derive(clap::Args)]
struct RootArg {
    /// The root folder (default: $SLUICE_ROOT, else ~/Sluice).
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
}

impl RootArg {
    fn config(&self) -> Result<config::Config> {
        config::Config::load(&config::root_from(self.root.as_deref())?)
    }
}

#[derive(Subcommand)]
enum EffectsAction {
    /// The effects available, and modules that were refused (with why).
    List {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        root: RootArg,
    },
    /// An effect's descriptor: parameters with ranges, units and defaults.
    Info {
        name: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        root: RootArg,
    },
    /// Run an impulse, a sweep and 10 s of noise through an effect: latency, gain, CPU time.
    Test {
        name: String,
        /// Parameters as KEY=VALUE.
        params: Vec<String>,
        #[arg(long, default_value_t = 48_000)]
        sample_rate: u32,
        /// Print JSON instead of the readable summary.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        root: RootArg,
    },
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
        /// The tempo range to report in, BPM (default 78,200): of the octaves a groove could
        /// be counted in, the one inside it wins when the evidence is comparable; at least an
        /// octave wide. DJ software's conventions: 88,176 or 70,140.
        #[arg(long, value_name = "LO,HI")]
        tempo_range: Option<String>,
    },
    /// Render files to WAV, AIFF, FLAC, MP3 or Ogg Vorbis: normalize (peak, or loudness with
    /// a true-peak ceiling), resample, change channels, trim, fade, dither, and tag.
    Export(Box<export::ExportArgs>),
    /// Watch folders and run every file that settles there through its pipelines: the main
    /// job. With no root given and none at ~/Sluice, makes a ready-to-use one.
    Watch {
        #[command(flatten)]
        root: RootArg,
    },
    /// Run a pipeline over files now, with progress bars (the sources stay where they are).
    Run {
        /// Pipeline name (in the root's pipelines folder) or the path of a pipeline file.
        pipeline: String,
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[command(flatten)]
        root: RootArg,
        /// Print the job records as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List jobs.
    Jobs {
        /// Only jobs in this state: queued, running, done, failed, quarantined.
        #[arg(long)]
        state: Option<String>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        root: RootArg,
    },
    /// Show one job: its record, outputs and events.
    Job {
        id: u64,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        root: RootArg,
    },
    /// Queue failed or quarantined jobs again.
    Retry {
        /// Job ids.
        #[arg(required_unless_present = "failed")]
        ids: Vec<u64>,
        /// Every failed and quarantined job.
        #[arg(long)]
        failed: bool,
        #[command(flatten)]
        root: RootArg,
    },
    /// Check pipelines (a file, a pipelines folder, or a root; default: the root's): problems
    /// as file:line:column, exit 1 when there are any.
    Check {
        path: Option<PathBuf>,
        #[command(flatten)]
        root: RootArg,
    },
    /// Remove the outputs, reports and moved sources of jobs finished before an age (and the
    /// folders left empty). `--dry-run` alone lists what every finished job left.
    Clean {
        /// Age like 30d, 12h, 2w (needed to remove; a dry run without it counts every job).
        #[arg(long, value_name = "AGE", required_unless_present = "dry_run")]
        older_than: Option<String>,
        /// Say what would go without removing anything.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        root: RootArg,
    },
    /// What the root holds (files, bytes, by type, oldest and newest) and the jobs by state.
    Stats {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        root: RootArg,
    },
    /// The wasm effects: built in, and `.wasm` files in the root's effects folder.
    Effects {
        #[command(subcommand)]
        action: EffectsAction,
    },
    /// List the formats Sluice knows, and whether it decodes and encodes each.
    Formats {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
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
            tempo_range,
        } => {
            let tempo_range = tempo_range
                .map(|r| {
                    let (lo, hi) = r
                        .split_once(',')
                        .and_then(|(lo, hi)| {
                            Some((lo.trim().parse().ok()?, hi.trim().parse().ok()?))
                        })
                        .ok_or_else(|| {
                            anyhow::anyhow!("--tempo-range {r}: write LO,HI in BPM, e.g. 88,176")
                        })?;
                    pipeline::tempo_range(lo, hi).map_err(|e| anyhow::anyhow!("--tempo-range: {e}"))
                })
                .transpose()?;
            let mut opts = AnalysisOptions {
                waveform_buckets: buckets as usize,
                silence_threshold_dbfs: silence_threshold,
                loudness_history_seconds: history,
                tempo_range,
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
        Command::Watch { root } => {
            let dir = config::root_from(root.root.as_deref())?;
            if commands::init_root(&dir)? {
                host::say(format!(
                    "sluice: made a new root at {} with example pipelines (podcast, streaming-master, broadcast, analysis, archive)",
                    dir.display()
                ));
            }
            let cfg = config::Config::load(&dir)?;
            let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let abort = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            survive_file_size_limit()?;
            for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
                // The second signal stops at once (running jobs run again at the next start).
                signal_hook::flag::register_conditional_shutdown(sig, 130, stop.clone())?;
                signal_hook::flag::register(sig, stop.clone())?;
            }
            host::watch(cfg, stop, abort)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Run {
            pipeline,
            files,
            root,
            json,
        } => {
            survive_file_size_limit()?;
            let dir = config::root_from(root.root.as_deref())?;
            commands::init_root(&dir)?;
            run_cmd(&config::Config::load(&dir)?, &pipeline, &files, json)
        }
        Command::Jobs { state, json, root } => {
            let state = state
                .map(|s| {
                    JobState::parse(&s).ok_or_else(|| {
                        anyhow::anyhow!("--state {s}: queued, running, done, failed or quarantined")
                    })
                })
                .transpose()?;
            print::jobs(&commands::jobs(&root.config()?, state)?, json)
        }
        Command::Job { id, json, root } => print::job(&commands::job(&root.config()?, id)?, json),
        Command::Retry { ids, failed, root } => {
            print::retry(&commands::retry(&root.config()?, &ids, failed)?)
        }
        Command::Check { path, root } => print::check(&commands::check(
            &config::root_from(root.root.as_deref())?,
            path.as_deref(),
        )?),
        Command::Clean {
            older_than,
            dry_run,
            root,
        } => {
            // Only a dry run comes without an age (the command line insists): every finished
            // job.
            let age = older_than
                .as_deref()
                .map(commands::parse_age)
                .transpose()?
                .unwrap_or_default();
            print::clean(&commands::clean(&root.config()?, age, dry_run)?)
        }
        Command::Stats { json, root } => print::stats(&commands::stats(&root.config()?)?, json),
        Command::Effects { action } => {
            let cfg = |root: &RootArg| -> Result<config::Config> {
                let dir = config::root_from(root.root.as_deref())?;
                Ok(config::Config::load(&dir).unwrap_or_else(|_| config::Config::defaults(&dir)))
            };
            match action {
                EffectsAction::List { json, root } => {
                    print::effects_list(&commands::effects_list(&cfg(&root)?)?, json)
                }
                EffectsAction::Info { name, json, root } => {
                    print::effects_info(&commands::effects_info(&cfg(&root)?, &name)?, json)
                }
                EffectsAction::Test {
                    name,
                    params,
                    sample_rate,
                    json,
                    root,
                } => print::effects_test(
                    &commands::effects_test(&cfg(&root)?, &name, &params, sample_rate)?,
                    json,
                ),
            }
        }
        Command::Formats { json } => {
            let mut out = std::io::stdout().lock();
            if json {
                serde_json::to_writer_pretty(&mut out, &sluice_core::formats::formats())?;
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

/// `sluice run`: a progress bar over the files, each file's result as it finishes (text), then
/// the JSON of all.
fn run_cmd(
    cfg: &config::Config,
    pipeline: &str,
    files: &[PathBuf],
    json: bool,
) -> Result<ExitCode> {
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
            if print::run_outcome(&mut text, f, r).is_ok() {
                total.suspend(|| {
                    let _ = std::io::stdout().lock().write_all(&text);
                });
            }
        }
    };
    let results = commands::run(cfg, pipeline, files, &each)?;
    total.finish_and_clear();
    print::run(&results, json)
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

/// Logs to stderr (SLUICE_LOG; by default Sluice's own at `warn`, `info` for `watch`, other
/// crates at `error`), and for `watch` also to a
/// daily file under the root's `.sluice/logs`, keeping the configured number of files.
fn logging(cli: &Cli) -> Option<()> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let watch_root = match &cli.command {
        Command::Watch { root } => Some(root.root.clone()),
        _ => None,
    };
    // Other crates (the decoders, the HTTP stack; their `log` records come through too)
    // speak only of errors by default: their warnings ("skipping junk" on tagged MP3s) are
    // ours to report or not. SLUICE_LOG overrides it all (SLUICE_LOG=warn shows them).
    let filter = |own: &str| {
        tracing_subscriber::EnvFilter::try_from_env("SLUICE_LOG").unwrap_or_else(|_| {
            tracing_subscriber::EnvFilter::new(format!(
                "error,sluice={own},sluice_host={own},sluice_core={own}"
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

/// Under a file size limit (`ulimit -f`), a write past it raises SIGXFSZ, which kills the
/// process by default. Handled, the write fails with EFBIG instead, and that job fails (and
/// is retried) like any other write error while the host carries on.
fn survive_file_size_limit() -> std::io::Result<()> {
    signal_hook::flag::register(
        signal_hook::consts::SIGXFSZ,
        std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false)),
    )
    .map(|_| ())
}
