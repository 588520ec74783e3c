//! `sluice analyze`: one decode pass per file feeding every analyzer, spread over threads.
//!
//! Files run in parallel up to `jobs` threads. When there are fewer files than threads, each
//! file's analyzers are split into lanes (by their estimated cost) that run on their own
//! threads: the decoding thread hands each block, shared and read-only, to every lane through
//! a bounded channel, so memory stays bounded by a few blocks per file.

use crossbeam_channel::bounded;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use sluice_core::analysis::{self, AnalysisOptions, AnalysisReport, Analyzer};
use sluice_core::{Decoder, InputError};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Analyzers with their index in the plan.
type Lane = Vec<(usize, Box<dyn Analyzer>)>;

/// Batches in flight per lane.
const QUEUE: usize = 4;
/// Frames per batch handed to the lanes.
const BATCH: usize = 16_384;
/// Cost of decoding a 16-bit stereo WAV and batching its blocks, in the analyzers' units (see
/// [`Analyzer::cost`]).
const DECODE_COST: f64 = 12.0;

/// Analyse `files` with up to `jobs` threads in all; results in the order of `files`.
pub fn run(
    files: &[PathBuf],
    opts: &AnalysisOptions,
    jobs: usize,
    progress: bool,
) -> Vec<Result<AnalysisReport, InputError>> {
    let jobs = jobs.max(1);
    let parallel_files = jobs.min(files.len()).max(1);
    let lanes_per_file = (jobs / parallel_files).max(1);
    let multi = MultiProgress::with_draw_target(if progress {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    });
    crate::parallel::map(files, parallel_files, |f| {
        analyze_file(f, opts, lanes_per_file, &multi)
    })
}

fn bar(multi: &MultiProgress, path: &Path, frames: Option<u64>) -> ProgressBar {
    let name = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let pb = multi.add(match frames {
        Some(f) => ProgressBar::new(f),
        None => ProgressBar::no_length(),
    });
    pb.set_style(
        ProgressStyle::with_template("{prefix:.bold} [{bar:30}] {percent:>3}% {elapsed} ETA {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    pb.set_prefix(name);
    pb
}

/// Analyse one file, its analyzers spread over `lanes` threads (this one included).
pub fn analyze_file(
    path: &Path,
    opts: &AnalysisOptions,
    lanes: usize,
    multi: &MultiProgress,
) -> Result<AnalysisReport, InputError> {
    let mut dec = Decoder::open(path)?;
    let pb = bar(multi, path, dec.info().frames);
    let plan = analysis::plan(dec.info(), opts);
    let lanes = lanes.min(plan.len()).max(1);
    let mut groups = split(plan, lanes);
    for (i, g) in groups.iter().enumerate() {
        let names: Vec<&str> = g.iter().map(|(_, a)| a.name()).collect();
        tracing::debug!(
            "{}: lane {i}{}: {names:?}",
            path.display(),
            if i == 0 { " (decodes)" } else { "" }
        );
    }
    let mut mine = groups.remove(0);
    let result = std::thread::scope(|s| -> Result<Lane, InputError> {
        let mut senders = Vec::new();
        let mut handles = Vec::new();
        for mut group in groups {
            let (tx, rx) = bounded::<Arc<Vec<Vec<f32>>>>(QUEUE);
            senders.push(tx);
            handles.push(s.spawn(move || {
                for block in rx {
                    let planes: Vec<&[f32]> = block.iter().map(Vec::as_slice).collect();
                    for (_, a) in &mut group {
                        a.feed(&planes);
                    }
                }
                group
            }));
        }
        let mut failed = None;
        // Decoded packets are small (often ~1k frames); lanes get batches of BATCH frames so
        // the hand-over costs little per frame.
        let channels = dec.info().channels as usize;
        // Each plane with its own capacity (`vec![v; n]` would clone `v` without it).
        let mut batch: Vec<Vec<f32>> = (0..channels).map(|_| Vec::with_capacity(BATCH)).collect();
        let flush = |batch: &mut Vec<Vec<f32>>, mine: &mut Lane| {
            if batch.first().is_none_or(Vec::is_empty) {
                return;
            }
            let full = std::mem::replace(
                batch,
                (0..channels).map(|_| Vec::with_capacity(BATCH)).collect(),
            );
            let shared = Arc::new(full);
            for tx in &senders {
                // A lane only stops early by panicking, which join reports.
                let _ = tx.send(Arc::clone(&shared));
            }
            let planes: Vec<&[f32]> = shared.iter().map(Vec::as_slice).collect();
            for (_, a) in mine.iter_mut() {
                a.feed(&planes);
            }
        };
        let mut handed = 0u64;
        loop {
            match dec.next_block() {
                Ok(Some(block)) => {
                    // A batch is handed on before a block would take it past its capacity (a
                    // Vec that grows copies what it holds).
                    let frames = block.planes().next().map_or(0, <[f32]>::len);
                    if batch[0].len() + frames > BATCH && !batch[0].is_empty() {
                        flush(&mut batch, &mut mine);
                        // Per batch, not per packet: a progress update costs ~2 µs.
                        pb.set_position(handed);
                    }
                    handed += frames as u64;
                    for (b, p) in batch.iter_mut().zip(block.planes()) {
                        b.extend_from_slice(p);
                    }
                }
                Ok(None) => {
                    flush(&mut batch, &mut mine);
                    break;
                }
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        drop(senders);
        let mut all = mine;
        for h in handles {
            match h.join() {
                Ok(g) => all.extend(g),
                Err(p) => std::panic::resume_unwind(p),
            }
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(all),
        }
    });
    pb.finish_and_clear();
    let mut all = result?;
    all.sort_by_key(|(i, _)| *i);
    Ok(analysis::conclude(
        dec,
        all.into_iter().map(|(_, a)| a),
        opts,
    ))
}

/// Split analyzers into `lanes` groups of similar cost (greedy, costliest first); lane 0 also
/// decodes. Each analyzer keeps its plan index so they can be finished in plan order.
fn split(plan: Vec<Box<dyn Analyzer>>, lanes: usize) -> Vec<Lane> {
    let mut items: Vec<(usize, Box<dyn Analyzer>)> = plan.into_iter().enumerate().collect();
    items.sort_by(|a, b| b.1.cost().total_cmp(&a.1.cost()));
    let mut groups: Vec<Lane> = (0..lanes).map(|_| Vec::new()).collect();
    let mut load = vec![0.0; lanes];
    load[0] = DECODE_COST;
    for item in items {
        let (k, _) = load
            .iter()
            .enumerate()
            .min_by(|a, b| a.1.total_cmp(b.1))
            .expect("at least one lane");
        load[k] += item.1.cost();
        groups[k].push(item);
    }
    groups
}
