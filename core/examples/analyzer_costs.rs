//! The CPU cost of each analyzer of `sluice analyze` on a file, relative to decoding it: the
//! figures behind `Analyzer::cost`, which the host uses to spread analyzers over threads.
//!
//! ```sh
//! cargo run --release -p sluice-core --example analyzer_costs -- FILE [FILE ...]
//! ```
//!
//! The file is decoded once into memory (timed: the decode cost), then every analyzer of the
//! full analysis is fed the same 16,384-frame batches the host hands its lanes, one analyzer at
//! a time, each timed by this thread's CPU time. Best of three runs per analyzer.
//! `SLUICE_ONLY=name` times only the analyzers of that name (for profiling one with `perf`);
//! `SLUICE_SECTIONS=loudness,bands,...` times the analyzers of those sections instead of the
//! full analysis's (the sections a reference's signature needs, say).

use sluice_core::Decoder;
use sluice_core::analysis::{AnalysisOptions, Section, plan};
use std::time::Duration;

const BATCH: usize = 16_384;

fn cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid clock id and a valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files: Vec<String> = std::env::args().skip(1).collect();
    if files.is_empty() {
        return Err("usage: analyzer_costs FILE [FILE ...]".into());
    }
    for file in files {
        let mut decode = Duration::MAX;
        let mut batches: Vec<Vec<Vec<f32>>> = Vec::new();
        for _ in 0..3 {
            batches.clear();
            let t = cpu_time();
            let mut dec = Decoder::open(std::path::Path::new(&file))?;
            let channels = dec.info().channels as usize;
            let mut batch = vec![Vec::with_capacity(BATCH); channels];
            while let Some(block) = dec.next_block()? {
                for (b, p) in batch.iter_mut().zip(block.planes()) {
                    b.extend_from_slice(p);
                }
                if batch[0].len() >= BATCH {
                    batches.push(std::mem::replace(
                        &mut batch,
                        vec![Vec::with_capacity(BATCH); channels],
                    ));
                }
            }
            batches.push(batch);
            decode = decode.min(cpu_time() - t);
        }
        let info = Decoder::open(std::path::Path::new(&file))?.into_info();
        let mut opts = AnalysisOptions::default();
        if let Ok(list) = std::env::var("SLUICE_SECTIONS") {
            opts.sections = list
                .split(',')
                .map(|s| Section::parse(s.trim()).ok_or(format!("no section '{s}'")))
                .collect::<Result<_, _>>()?;
        }
        println!(
            "{file}: decode {:.3} s CPU (cost 1.0 here)",
            decode.as_secs_f64()
        );
        let count = plan(&info, &opts).len();
        let mut total = 0.0;
        let only = std::env::var("SLUICE_ONLY").ok();
        for i in 0..count {
            if only
                .as_deref()
                .is_some_and(|o| plan(&info, &opts)[i].name() != o)
            {
                continue;
            }
            let mut best = Duration::MAX;
            let mut name = "";
            let mut declared = 0.0;
            for _ in 0..3 {
                let mut a = plan(&info, &opts).swap_remove(i);
                name = a.name();
                declared = a.cost();
                let t = cpu_time();
                for b in &batches {
                    let planes: Vec<&[f32]> = b.iter().map(Vec::as_slice).collect();
                    a.feed(&planes);
                }
                best = best.min(cpu_time() - t);
            }
            let rel = best.as_secs_f64() / decode.as_secs_f64();
            total += best.as_secs_f64();
            println!(
                "  {i:2} {name:<14} {:.3} s  {rel:5.2}× decode  (declared cost {declared})",
                best.as_secs_f64()
            );
        }
        println!("  analyzers in all {total:.3} s CPU");
    }
    Ok(())
}
