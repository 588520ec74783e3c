//! `sluice analyze`: one decode pass per file feeding every analyzer, spread over threads.
//!
//! Files run in parallel up to `jobs` threads. When there are fewer files than threads, each
//! file's analyzers share the file's threads round by round (see [`analyze_file`]): the
//! decoding thread publishes each round's frames, shared and read-only, and every thread feeds
//! them to the analyzers it claims, so memory stays bounded by two rounds per file.

use sluice_core::analysis::{self, AnalysisOptions, AnalysisReport, Analyzer};
use sluice_core::{Decoder, InputError};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Frames per round (see [`analyze_file`]): about 0.7 s at 48 kHz, so that a round's
/// synchronisation costs little beside its work.
const ROUND: usize = 32_768;

/// Where the progress of files being analysed goes: the command line draws a bar per file
/// (`cli/analyze.rs`); the server, the library and the tests draw nothing ([`Silent`]).
pub trait Progress: Sync {
    /// A file starts: its length in frames when its header gives one. The returned meter is told
    /// the frames analysed so far, and dropped when the file ends (finished or not).
    fn file(&self, path: &Path, frames: Option<u64>) -> Box<dyn FileProgress + '_>;
}

/// One file's progress (see [`Progress`]).
pub trait FileProgress: Send + Sync {
    /// `frames` analysed so far.
    fn at(&self, frames: u64);
}

/// No progress shown.
pub struct Silent;

impl Progress for Silent {
    fn file(&self, _: &Path, _: Option<u64>) -> Box<dyn FileProgress + '_> {
        Box::new(Silent)
    }
}

impl FileProgress for Silent {
    fn at(&self, _: u64) {}
}

/// Analyse `files` with up to `jobs` threads in all; results in the order of `files`.
pub fn run(
    files: &[PathBuf],
    opts: &AnalysisOptions,
    jobs: usize,
    progress: &dyn Progress,
) -> Vec<Result<AnalysisReport, InputError>> {
    let jobs = jobs.max(1);
    let parallel_files = jobs.min(files.len()).max(1);
    let lanes_per_file = (jobs / parallel_files).max(1);
    crate::parallel::map(files, parallel_files, |f| {
        analyze_file(f, opts, lanes_per_file, progress)
    })
}

/// Analyse one file, its analyzers spread over `lanes` threads (this one included).
///
/// The file is analysed in rounds of [`ROUND`] frames. In each round every analyzer is fed the
/// round's frames once, by whichever thread claims it first (costliest first), while this
/// thread decodes the next round before it joins in; a round ends when every thread has found
/// nothing left to claim. An analyzer thus sees the blocks in order, as on one thread, and the
/// threads share the work whatever it costs on this material (the true peak's cost, for
/// example, varies fourfold between a quiet recording and a loud master).
pub fn analyze_file(
    path: &Path,
    opts: &AnalysisOptions,
    lanes: usize,
    progress: &dyn Progress,
) -> Result<AnalysisReport, InputError> {
    analyze_file_until(path, opts, lanes, progress, &|| None)
}

/// [`analyze_file`], stopped between two rounds (a fraction of a second of work) when `stop`
/// gives a reason: the result is then [`InputError::Interrupted`] with that reason.
pub fn analyze_file_until(
    path: &Path,
    opts: &AnalysisOptions,
    lanes: usize,
    progress: &dyn Progress,
    stop: &(dyn Fn() -> Option<String> + Sync),
) -> Result<AnalysisReport, InputError> {
    let mut dec = Decoder::open(path)?;
    let pb = progress.file(path, dec.info().frames);
    let mut plan: Vec<(usize, Box<dyn Analyzer>)> = analysis::plan(dec.info(), opts)
        .into_iter()
        .enumerate()
        .collect();
    plan.sort_by(|a, b| b.1.cost().total_cmp(&a.1.cost()));
    let helpers = lanes.min(plan.len()).max(1) - 1;
    tracing::debug!(
        "{}: {} threads, analyzers {:?}",
        path.display(),
        helpers + 1,
        plan.iter().map(|(_, a)| a.name()).collect::<Vec<_>>()
    );
    let shared = Rounds {
        tasks: plan.into_iter().map(Mutex::new).collect(),
        batch: Mutex::new(Arc::new(Vec::new())),
        next: AtomicUsize::new(0),
        round: AtomicUsize::new(0),
        arrived: AtomicUsize::new(0),
        stop: AtomicBool::new(false),
    };
    let channels = dec.info().channels as usize;
    let outcome = std::thread::scope(|s| {
        let handles: Vec<_> = (0..helpers)
            .map(|_| {
                s.spawn(|| {
                    let r = catch_unwind(AssertUnwindSafe(|| shared.helper()));
                    if r.is_err() {
                        shared.stop.store(true, Ordering::Release);
                    }
                    r
                })
            })
            .collect();
        let mine = catch_unwind(AssertUnwindSafe(|| {
            shared.lead(&mut dec, channels, helpers, &*pb, stop)
        }));
        shared.stop.store(true, Ordering::Release);
        let mut panic = None;
        for h in handles {
            match h.join() {
                Ok(Ok(())) => {}
                Ok(Err(p)) | Err(p) => panic = panic.or(Some(p)),
            }
        }
        match (mine, panic) {
            (Err(p), _) | (Ok(_), Some(p)) => std::panic::resume_unwind(p),
            (Ok(r), None) => r,
        }
    });
    drop(pb);
    outcome?;
    let mut all: Vec<(usize, Box<dyn Analyzer>)> = shared
        .tasks
        .into_iter()
        .map(|m| m.into_inner().unwrap_or_else(|e| e.into_inner()))
        .collect();
    all.sort_by_key(|(i, _)| *i);
    Ok(analysis::conclude(
        dec,
        all.into_iter().map(|(_, a)| a),
        opts,
    ))
}

/// What the threads analysing one file share (see [`analyze_file`]).
struct Rounds {
    /// The analyzers with their index in the plan, costliest first.
    tasks: Vec<Mutex<(usize, Box<dyn Analyzer>)>>,
    /// This round's frames, one plane per channel.
    batch: Mutex<Arc<Vec<Vec<f32>>>>,
    /// The next task to claim in this round.
    next: AtomicUsize,
    /// Rounds published so far.
    round: AtomicUsize,
    /// Rounds finished by the helpers, summed over the helpers.
    arrived: AtomicUsize,
    /// Set at the end of the file, on an error or a panic: the helpers return.
    stop: AtomicBool,
}

impl Rounds {
    /// Feeds this round's batch to every analyzer still unclaimed.
    fn work(&self) {
        let batch = Arc::clone(&self.batch.lock().unwrap_or_else(|e| e.into_inner()));
        let planes: Vec<&[f32]> = batch.iter().map(Vec::as_slice).collect();
        loop {
            let i = self.next.fetch_add(1, Ordering::AcqRel);
            let Some(task) = self.tasks.get(i) else {
                return;
            };
            // Claimed by this thread alone for this round: never contended.
            let mut task = task.lock().unwrap_or_else(|e| e.into_inner());
            task.1.feed(&planes);
        }
    }

    /// A helper thread: every round's share of the work, until `stop`.
    fn helper(&self) {
        let mut seen = 0;
        loop {
            if !wait_until(&self.stop, || self.round.load(Ordering::Acquire) > seen) {
                return;
            }
            seen += 1;
            self.work();
            self.arrived.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// The decoding thread: publishes each round, decodes the next while the helpers start on
    /// it, takes its share, and waits for the helpers to finish the round.
    fn lead(
        &self,
        dec: &mut Decoder,
        channels: usize,
        helpers: usize,
        pb: &dyn FileProgress,
        stop: &(dyn Fn() -> Option<String> + Sync),
    ) -> Result<(), InputError> {
        let mut handed = 0u64;
        let mut next = read_round(dec, channels)?;
        let mut rounds = 0;
        while let Some(batch) = next {
            if let Some(reason) = stop() {
                return Err(InputError::Interrupted {
                    path: dec.path().to_path_buf(),
                    reason,
                });
            }
            handed += batch.first().map_or(0, |p| p.len() as u64);
            *self.batch.lock().unwrap_or_else(|e| e.into_inner()) = Arc::new(batch);
            self.next.store(0, Ordering::Release);
            self.round.fetch_add(1, Ordering::AcqRel);
            rounds += 1;
            next = read_round(dec, channels)?;
            self.work();
            let all_in = || self.arrived.load(Ordering::Acquire) == helpers * rounds;
            if !wait_until(&self.stop, all_in) {
                // A helper panicked; the scope reports it.
                return Ok(());
            }
            // Per round, not per packet: a progress update costs ~2 µs.
            pb.at(handed);
        }
        Ok(())
    }
}

/// Waits (spinning briefly, then yielding the core) until `ready` holds: true, or false when
/// `stop` was set first.
fn wait_until(stop: &AtomicBool, ready: impl Fn() -> bool) -> bool {
    let mut spins = 0u32;
    loop {
        if ready() {
            return true;
        }
        if stop.load(Ordering::Acquire) {
            return ready();
        }
        if spins < 2_000 {
            spins += 1;
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
}

/// The next [`ROUND`] frames or so (whole decoded blocks), or `None` at the end of the file.
fn read_round(dec: &mut Decoder, channels: usize) -> Result<Option<Vec<Vec<f32>>>, InputError> {
    // Each plane with its own capacity (`vec![v; n]` would clone `v` without it), and room
    // for the block that takes the round past ROUND (a Vec that grows copies what it holds).
    let mut batch: Vec<Vec<f32>> = (0..channels)
        .map(|_| Vec::with_capacity(ROUND + 8192))
        .collect();
    while batch.first().is_some_and(|p| p.len() < ROUND) {
        match dec.next_block()? {
            Some(block) => {
                for (b, p) in batch.iter_mut().zip(block.planes()) {
                    b.extend_from_slice(p);
                }
            }
            None => break,
        }
    }
    Ok(batch
        .first()
        .is_some_and(|p| !p.is_empty())
        .then_some(batch))
}
