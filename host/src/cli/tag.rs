//! `sluice tag`: ReplayGain 2.0 track and album gain written into a library in place (the
//! engine's `gaintag`), with a progress bar and a summary.

use anyhow::Result;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sluice_host::gaintag::{self, Action, AlbumBy, Options, Report};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Files and folders (folders are searched recursively).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// What makes an album: the files of one folder, the same album (and album artist) tag,
    /// or none (track gain only).
    #[arg(long, value_enum, default_value = "folder")]
    album: AlbumArg,
    /// Leave files that already have the gain fields alone (an album is measured again when
    /// any of its files lacks them).
    #[arg(long)]
    skip_existing: bool,
    /// Measure and print what would be written; change nothing.
    #[arg(long, short = 'n')]
    dry_run: bool,
    /// Remove the ReplayGain (and R128) fields instead of writing them.
    #[arg(long, conflicts_with_all = ["skip_existing", "album"])]
    remove: bool,
    /// Files measured at once (default: one per core).
    #[arg(long, short = 'j', default_value_t = 0)]
    jobs: usize,
    /// One JSON document on stdout: every file's result and the summary.
    #[arg(long)]
    json: bool,
    /// No progress bar.
    #[arg(long, short = 'q')]
    quiet: bool,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum AlbumArg {
    Folder,
    Tag,
    Off,
}

/// A bar over the files, on a terminal.
struct Bar(ProgressBar);

impl gaintag::Progress for Bar {
    fn total(&self, files: usize) {
        self.0.set_length(files as u64);
    }
    fn done(&self, path: &Path) {
        self.0.inc(1);
        if let Some(n) = path.file_name() {
            self.0.set_message(n.to_string_lossy().into_owned());
        }
    }
}

pub fn run(a: Args) -> Result<ExitCode> {
    let opts = Options {
        album: match a.album {
            AlbumArg::Folder => AlbumBy::Folder,
            AlbumArg::Tag => AlbumBy::Tag,
            AlbumArg::Off => AlbumBy::Off,
        },
        skip_existing: a.skip_existing,
        dry_run: a.dry_run,
        remove: a.remove,
        threads: a.jobs,
    };
    let shown = !a.quiet && std::io::stderr().is_terminal();
    let pb = ProgressBar::with_draw_target(
        None,
        if shown {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    pb.set_style(
        ProgressStyle::with_template("{pos}/{len} [{bar:30}] {elapsed} ETA {eta} {wide_msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let report = gaintag::run(&a.paths, &opts, &Bar(pb.clone()));
    pb.finish_and_clear();
    let mut out = std::io::stdout().lock();
    if a.json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        print(&mut out, &report, &opts)?;
    }
    Ok(if report.summary.files == 0 {
        eprintln!("sluice tag: no audio files found under the paths given");
        ExitCode::from(2)
    } else if report.summary.failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn print(out: &mut impl Write, report: &Report, opts: &Options) -> Result<()> {
    for r in &report.results {
        let what = match (r.action, opts.remove) {
            (Action::Written, false) => "tagged",
            (Action::Written, true) => "removed",
            (Action::Unchanged, false) => "unchanged (already so tagged)",
            (Action::Unchanged, true) => "unchanged (no gain fields)",
            (Action::Skipped, _) => "skipped (already tagged)",
            (Action::WouldWrite, false) => "would tag",
            (Action::WouldWrite, true) => "would remove",
            (Action::Silent, _) => "silent (no loudness, no gain): left as it is",
            (Action::Failed, _) => "FAILED",
        };
        write!(out, "{}: {what}", r.path.display())?;
        if let Some(g) = &r.gains {
            write!(
                out,
                ": track {:+.2} dB, peak {:.6}",
                g.track_gain_db, g.track_peak
            )?;
            if let Some(al) = &g.album {
                write!(out, "; album {:+.2} dB, peak {:.6}", al.gain_db, al.peak)?;
            }
            if let Some(l) = r.integrated_lufs {
                write!(out, " ({l:.2} LUFS)")?;
            }
        }
        if let Some(e) = &r.error {
            write!(out, ": {e}")?;
        }
        writeln!(out)?;
    }
    let s = &report.summary;
    let mut parts = Vec::new();
    for (n, what) in [
        (s.written, if opts.remove { "untagged" } else { "tagged" }),
        (s.would_write, "would change"),
        (s.unchanged, "unchanged"),
        (s.skipped, "skipped"),
        (s.silent, "silent"),
        (s.failed, "failed"),
    ] {
        if n > 0 {
            parts.push(format!("{n} {what}"));
        }
    }
    writeln!(out, "{} file(s): {}", s.files, parts.join(", "))?;
    if s.leftovers_removed > 0 {
        writeln!(
            out,
            "removed {} copy(ies) an interrupted run had left",
            s.leftovers_removed
        )?;
    }
    Ok(())
}
