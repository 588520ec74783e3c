//! `sluice analyze FILE...`: loudness, levels, spectrum, stereo, tempo, key, waveform and
//! targets, one decode pass per file; text or JSON, and optional pictures.

use anyhow::Result;
use sluice_core::analysis::{AnalysisOptions, Section, Target};
use sluice_host::{analyze, pipeline, render};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Files to analyse.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Print JSON (one array, one object per file) instead of the readable summary.
    #[arg(long)]
    json: bool,
    /// Only these sections, comma-separated: loudness, levels, spectrum, stereo, tempo, key,
    /// waveform, targets (the full analysis); bands (per-band metrics) and character
    /// (transients, HNR, THD), only when asked for.
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
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=sluice_core::formats::limits::MAX_WAVEFORM_BUCKETS as i64))]
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
}

pub fn run(a: Args) -> Result<ExitCode> {
    let Args {
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
    } = a;
    let tempo_range = tempo_range
        .map(|r| {
            let (lo, hi) = r
                .split_once(',')
                .and_then(|(lo, hi)| Some((lo.trim().parse().ok()?, hi.trim().parse().ok()?)))
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
                        Section::KNOWN.map(Section::name).join(", ")
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
        std::fs::create_dir_all(dir)
            .map_err(|e| anyhow::anyhow!("cannot create the plot folder {}: {e}", dir.display()))?;
        // The loudness picture needs the history.
        opts.loudness_history_seconds.get_or_insert(0.1);
    }
    let jobs = jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, std::num::NonZero::get));
    analyze_files(&files, &opts, json, plot.as_deref(), jobs)
}

fn analyze_files(
    files: &[PathBuf],
    opts: &AnalysisOptions,
    json: bool,
    plot: Option<&std::path::Path>,
    jobs: usize,
) -> Result<ExitCode> {
    let progress = std::io::stderr().is_terminal();
    let results = analyze::run(files, opts, jobs, &super::bars::Bars::new(progress));
    let mut failed = results.iter().filter(|r| r.is_err()).count();
    if let Some(dir) = plot {
        for r in results.iter().flatten() {
            if let Err(e) = render::plots(dir, r) {
                eprintln!("error: {e:#}");
                failed += 1;
            }
        }
    }
    super::print_results(&results, json, failed, render::analysis)
}
