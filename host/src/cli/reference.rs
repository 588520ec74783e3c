//! `sluice ref add | import | list | genres | remove | similar | profile export`: the root's
//! reference library.

use super::{RootArg, emit};
use anyhow::{Result, bail};
use clap::Subcommand;
use sluice_host::library::{self, Added, Meta, ReferenceSummary, Similar};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct MetaArgs {
    /// The genre the references belong to (kept in lower case).
    #[arg(long)]
    genre: String,
    /// A name (one file only; default: its title tag, else its file name).
    #[arg(long)]
    name: Option<String>,
    /// The artist (default: the artist tag).
    #[arg(long)]
    artist: Option<String>,
    /// The year (default: from the tags).
    #[arg(long)]
    year: Option<i32>,
}

#[derive(Subcommand)]
pub enum Action {
    /// Measure files and add them to the library (silent, shorter than 3 s or undecodable
    /// files are refused; the same audio twice is kept once).
    Add {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[command(flatten)]
        meta: MetaArgs,
        /// Threads in all (default: the cores).
        #[arg(long, short)]
        jobs: Option<usize>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        root: RootArg,
    },
    /// Add every audio file under a folder (any depth), with a progress bar.
    Import {
        dir: PathBuf,
        #[command(flatten)]
        meta: MetaArgs,
        #[arg(long, short)]
        jobs: Option<usize>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        root: RootArg,
    },
    /// The references, of one genre or all.
    List {
        #[arg(long)]
        genre: Option<String>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        root: RootArg,
    },
    /// The genres and their number of references.
    Genres {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        root: RootArg,
    },
    /// Remove references by id (3 or #3) or name; none is removed if one is unknown.
    Remove {
        #[arg(required = true)]
        references: Vec<String>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        root: RootArg,
    },
    /// A genre's (or one reference's) profile: the mean and spread of every figure.
    Profile {
        #[command(subcommand)]
        action: ProfileAction,
    },
    /// The references most like a track (centred cosine similarity of the feature vectors).
    Similar {
        file: PathBuf,
        #[arg(long)]
        genre: Option<String>,
        /// How many to show.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
        top: u32,
        #[arg(long, short)]
        jobs: Option<usize>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        root: RootArg,
    },
}

#[derive(Subcommand)]
pub enum ProfileAction {
    /// Write the profile as JSON (to `--out FILE`, or standard output): what Sluice Meter loads
    /// to show a mix's tonal balance against it.
    Export {
        #[command(flatten)]
        target: super::TargetArgs,
        /// The file to write (written beside it first, then renamed into place).
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        root: RootArg,
    },
}

fn threads(jobs: Option<usize>) -> usize {
    jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

fn meta(m: MetaArgs) -> Meta {
    Meta {
        genre: m.genre,
        name: m.name,
        artist: m.artist,
        year: m.year,
    }
}

pub fn run(action: Action) -> Result<ExitCode> {
    match action {
        Action::Add {
            files,
            meta: m,
            jobs,
            json,
            root,
        } => add_files(&root, &files, m, jobs, json),
        Action::Import {
            dir,
            meta: m,
            jobs,
            json,
            root,
        } => {
            if !dir.is_dir() {
                bail!("{}: not a folder", dir.display());
            }
            let files = library::audio_files(&dir)?;
            if files.is_empty() {
                bail!("{}: no audio files in it", dir.display());
            }
            if !json {
                eprintln!("{}: {} audio file(s)", dir.display(), files.len());
            }
            add_files(&root, &files, m, jobs, json)
        }
        Action::List { genre, json, root } => {
            list(&library::list(&root.config()?, genre.as_deref())?, json)
        }
        Action::Genres { json, root } => {
            let g = library::genres(&root.config()?)?;
            emit(json, &g, |out, g| {
                for (name, n) in g {
                    writeln!(out, "{name:<24} {n:>6} reference(s)")?;
                }
                Ok(())
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Action::Remove {
            references,
            json,
            root,
        } => {
            let gone = library::remove(&root.config()?, &references)?;
            emit(json, &gone, |out, gone| {
                for r in gone {
                    writeln!(out, "removed #{} {} ({})", r.id, r.name, r.genre)?;
                }
                Ok(())
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Action::Profile {
            action: ProfileAction::Export { target, out, root },
        } => {
            let target = target.target()?;
            let profile = library::target_profile(&root.config()?, &target)?;
            let text = serde_json::to_string_pretty(&profile)? + "\n";
            match out {
                Some(path) => {
                    sluice_core::io::AtomicFile::write(&path, text.as_bytes())?;
                    eprintln!(
                        "{}: {} ({} reference(s))",
                        path.display(),
                        profile.name,
                        profile.references
                    );
                }
                None => print!("{text}"),
            }
            Ok(ExitCode::SUCCESS)
        }
        Action::Similar {
            file,
            genre,
            top,
            jobs,
            json,
            root,
        } => similar(
            &library::similar(
                &root.config()?,
                &file,
                genre.as_deref(),
                top as usize,
                threads(jobs),
            )?,
            json,
        ),
    }
}

/// `sluice ref add` / `import`: one line per file; exit 1 when any was refused.
/// Measures `files` into the library (bars on a terminal unless `--json`) and reports them.
fn add_files(
    root: &RootArg,
    files: &[PathBuf],
    m: MetaArgs,
    jobs: Option<usize>,
    json: bool,
) -> Result<ExitCode> {
    let progress = !json && std::io::stderr().is_terminal();
    let bars = super::bars::Bars::new(progress);
    added(
        &library::add(&root.config()?, files, &meta(m), threads(jobs), &bars)?,
        json,
    )
}

fn added(results: &[Added], json: bool) -> Result<ExitCode> {
    emit(json, results, |out, results| {
        for r in results {
            match r {
                Added::Added { reference: s } => writeln!(
                    out,
                    "added #{} {} ({}, {:.1} LUFS, {})",
                    s.id,
                    s.name,
                    s.genre,
                    s.integrated_lufs,
                    sluice_core::time::clock(s.duration_seconds, 0, false)
                )?,
                Added::AlreadyThere { path, id, name } => writeln!(
                    out,
                    "{}: the same audio is reference #{id} {name}; kept once",
                    path.display()
                )?,
                Added::Failed { .. } => {}
            }
        }
        Ok(())
    })?;
    let mut failed = 0;
    for r in results {
        if let Added::Failed { error, .. } = r {
            failed += 1;
            if !json {
                eprintln!("error: {error}");
            }
        }
    }
    Ok(if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn list(refs: &[ReferenceSummary], json: bool) -> Result<ExitCode> {
    emit(json, refs, |out, refs| {
        for r in refs {
            writeln!(
                out,
                "#{:<5} {:<16} {:<32} {:<24} {:>5} {:>6.1} LUFS {:>6} Hz {}",
                r.id,
                r.genre,
                r.name,
                r.artist.as_deref().unwrap_or("—"),
                r.year.map_or("—".to_string(), |y| y.to_string()),
                r.integrated_lufs,
                r.sample_rate,
                sluice_core::time::clock(r.duration_seconds, 0, false)
            )?;
        }
        Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

fn similar(s: &Similar, json: bool) -> Result<ExitCode> {
    emit(json, s, |out, s| {
        writeln!(
            out,
            "{}: nearest of {} reference(s){}",
            s.path.display(),
            s.compared,
            s.genre
                .as_ref()
                .map_or(String::new(), |g| format!(" in {g}"))
        )?;
        for n in &s.nearest {
            let r = &n.reference;
            writeln!(
                out,
                "  {:>6.3}  #{:<5} {:<32} {:<24} {}",
                n.similarity,
                r.id,
                r.name,
                r.artist.as_deref().unwrap_or("—"),
                r.genre
            )?;
        }
        Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}
