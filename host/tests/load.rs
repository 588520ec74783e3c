//! Load: 2,000 small files dropped at once into a watch folder. Every one is processed exactly
//! once and none is lost. Prints the throughput (files/s, from the first file settling to the
//! last job finishing) and the settle-to-start latency (p50, p99) from the job records.
//!
//! Figures in docs/BENCHMARKS.md come from the release build:
//! `cargo test --release -p sluice-host --test load -- --nocapture`.

mod common;

use common::{Host, files_under, watch_command, write_wav};
use std::collections::BTreeMap;
use std::time::Duration;

const FILES: usize = 2_000;

const PIPELINE: &str = r#"
name = "load"
watch = "inbox"

[[step]]
analyze = ["loudness"]

[[output]]
path = "out/{stem}.flac"
bit_depth = 16

[source]
action = "move"
to = "done/{name}"
"#;

fn percentile(sorted: &[i64], p: f64) -> i64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[test]
fn two_thousand_files_at_once_all_processed_once() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    common::new_root(&root, &["inbox"], &[("load", PIPELINE)]);

    // Made beforehand (each 0.25 s of programme, different content), then renamed in at once.
    let staging = dir.path().join("staging");
    std::fs::create_dir_all(&staging).unwrap();
    let mut hashes = BTreeMap::new();
    for i in 0..FILES {
        let p = staging.join(format!("f{i:04}.wav"));
        let planes = sluice_core::signal::programme(22_050, 1, 5_512, i as u64 + 1);
        write_wav(&p, &planes, 22_050, 16);
        hashes.insert(
            format!("f{i:04}"),
            blake3::hash(&std::fs::read(&p).unwrap()),
        );
    }
    let mut cmd = watch_command(&root);
    cmd.env("SLUICE_WORKERS", "2");
    let host = Host::start_with(&root, cmd);
    for i in 0..FILES {
        let name = format!("f{i:04}.wav");
        std::fs::rename(staging.join(&name), root.join("inbox").join(&name)).unwrap();
    }

    // Watched from outside (counting moved sources), so the test does not compete with the host
    // for the database; then the records are read once.
    let t = std::time::Instant::now();
    loop {
        let n = std::fs::read_dir(root.join("done")).map_or(0, |d| d.count());
        if n >= FILES {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(900),
            "{n} of {FILES} done; log:\n{}",
            host.log()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let js = host.settle_jobs(FILES);
    assert!(js.iter().all(|j| j["state"] == "done"));
    // A little longer: nothing more turns up.
    std::thread::sleep(Duration::from_secs(3));
    let js2 = host.jobs();
    assert_eq!(js2.len(), FILES, "one job per file");

    // Once each: every input has exactly one job, one output and its source in done/.
    let mut inputs: Vec<&str> = js2.iter().map(|j| j["input"].as_str().unwrap()).collect();
    inputs.sort();
    inputs.dedup();
    assert_eq!(inputs.len(), FILES);
    assert!(files_under(&root.join("inbox")).is_empty());
    assert_eq!(files_under(&root.join("out")).len(), FILES);
    for (stem, hash) in &hashes {
        let moved = root.join(format!("done/{stem}.wav"));
        assert_eq!(
            blake3::hash(&std::fs::read(&moved).unwrap()),
            *hash,
            "{stem}"
        );
        assert!(root.join(format!("out/{stem}.flac")).is_file());
    }

    let field = |j: &serde_json::Value, k: &str| j[k].as_i64().unwrap();
    let mut latency: Vec<i64> = js2
        .iter()
        .map(|j| field(j, "started_ms") - field(j, "settled_ms"))
        .collect();
    latency.sort();
    let mut run: Vec<i64> = js2
        .iter()
        .map(|j| field(j, "finished_ms") - field(j, "started_ms"))
        .collect();
    run.sort();
    let first = js2.iter().map(|j| field(j, "settled_ms")).min().unwrap();
    let last = js2.iter().map(|j| field(j, "finished_ms")).max().unwrap();
    let secs = (last - first).max(1) as f64 / 1000.0;
    eprintln!(
        "load: {FILES} files with 2 workers in {secs:.1} s = {:.0} files/s; \
         settle-to-start latency p50 {} ms, p99 {} ms; job run time p50 {} ms, p99 {} ms",
        FILES as f64 / secs,
        percentile(&latency, 0.5),
        percentile(&latency, 0.99),
        percentile(&run, 0.5),
        percentile(&run, 0.99),
    );
}
