//! `sluice ref similar` at library scale: a store with N references (default 100,000, in 10
//! genres) and the time to answer one query — read the vectors from redb, centre, rank — over
//! the whole library and over one genre, best and worst of the runs, CPU time beside wall
//! time. The peer, in the same run: the same answer computed the way a library without its
//! vector table would, by reading every reference record (JSON) and building its vector from
//! the signature. Issue 23 asks for ≤ 20 ms over 100,000 references.
//!
//! Then `ref import` against the analysis: the materials (2 minutes each of programme, dense
//! and acoustic, and the recordings with `SLUICE_BENCH_RECORDINGS`) imported as references
//! (measure, hash, tags, store) beside `sluice analyze` of the same files with the sections a
//! signature needs, and with the full analysis; issue 23 asks the import to run at the
//! analysis speed.
//!
//! cargo bench -p sluice-host --bench references [-- --refs 100000 --runs 20 --import-minutes 2]

mod common;

use common::{arg_value, material_child, material_wav, materials, verdict};
use sluice_core::analysis::signature::{BandSignature, DIMENSIONS, Signature, mean, nearest};
use sluice_core::signal::Rng;
use sluice_host::library;
use sluice_host::store::{NewReference, Store};
use std::process::ExitCode;
use std::time::Instant;

fn cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is ours and outlives the call.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}

/// A signature with random figures (a real one's spectrum left out: it is not read here).
fn signature(rng: &mut Rng) -> Signature {
    let mut x = |centre: f64, spread: f64| centre + spread * rng.uniform();
    Signature {
        version: 1,
        sample_rate: 44_100,
        duration_seconds: x(200.0, 60.0),
        integrated_lufs: x(-11.0, 4.0),
        loudness_range_lu: x(6.0, 4.0),
        plr_lu: x(9.0, 3.0),
        crest_db: x(14.0, 4.0),
        max_short_term_lu: x(3.0, 2.0),
        width: x(0.25, 0.15),
        correlation: x(0.5, 0.3),
        balance_db: x(0.0, 0.5),
        bands: (0..5)
            .map(|_| BandSignature {
                level_db: x(-6.0, 6.0),
                crest_db: x(12.0, 4.0),
                spread_db: x(6.0, 3.0),
                width: x(0.2, 0.15),
                correlation: x(0.6, 0.3),
            })
            .collect(),
        tonal_db: (0..29).map(|_| x(-15.0, 10.0)).collect(),
        ltas: Vec::new(),
        onset_density: x(3.0, 2.0),
        attack_ms: x(10.0, 8.0),
        transient_db: x(10.0, 6.0),
        hnr_db: x(3.0, 8.0),
        thd_percent: x(5.0, 4.9),
    }
}

fn time<T>(runs: usize, mut f: impl FnMut() -> T) -> (f64, f64, f64, T) {
    let (mut best, mut worst, mut cpu) = (f64::INFINITY, 0f64, 0f64);
    let mut last = None;
    for _ in 0..runs {
        let (c0, t0) = (cpu_seconds(), Instant::now());
        last = Some(f());
        let ms = t0.elapsed().as_secs_f64() * 1000.0;
        cpu += (cpu_seconds() - c0) * 1000.0;
        best = best.min(ms);
        worst = worst.max(ms);
    }
    (best, worst, cpu / runs as f64, last.expect("a run"))
}

fn main() -> ExitCode {
    if let Some(written) = material_child() {
        written.expect("the material written");
        return ExitCode::SUCCESS;
    }
    let n: usize = arg_value("--refs")
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let runs: usize = arg_value("--runs")
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let dir = tempfile::tempdir().expect("a temporary folder");
    let store = Store::open(&dir.path().join("state.redb"), true).expect("a store");
    let mut rng = Rng::new(23);
    let t = Instant::now();
    for chunk in 0..n.div_ceil(10_000) {
        let batch: Vec<NewReference> = (chunk * 10_000..((chunk + 1) * 10_000).min(n))
            .map(|i| {
                let signature = signature(&mut rng);
                NewReference {
                    name: format!("track {i}"),
                    artist: Some(format!("artist {}", i % 977)),
                    genre: format!("genre{}", i % 10),
                    year: Some(1990 + (i % 35) as i32),
                    source: format!("/music/{i}.flac").into(),
                    hash: format!("{i:064x}"),
                    features: signature.features(),
                    feature_version: sluice_core::analysis::signature::FEATURE_VERSION,
                    signature,
                }
            })
            .collect();
        store.add_references(batch).expect("stored");
    }
    let size = std::fs::metadata(dir.path().join("state.redb")).map_or(0, |m| m.len());
    println!(
        "{n} references stored in {:.1} s ({:.0} MB state file)",
        t.elapsed().as_secs_f64(),
        size as f64 / 1e6
    );
    let query = signature(&mut rng).features();

    let (best, worst, cpu, all) = time(runs, || {
        library::nearest_to(&store, &query, None, 10).expect("an answer")
    });
    println!(
        "similar, all {n}:          best {best:6.2} ms  worst {worst:6.2} ms  CPU {cpu:6.2} ms/query"
    );
    let (gbest, gworst, gcpu, _) = time(runs, || {
        library::nearest_to(&store, &query, Some("genre3"), 10).expect("an answer")
    });
    println!(
        "similar, one genre ({}): best {gbest:6.2} ms  worst {gworst:6.2} ms  CPU {gcpu:6.2} ms/query",
        n / 10
    );
    // The peer: every record read and its vector built from the signature.
    let peer_runs = runs.clamp(1, 3);
    let (pbest, _, pcpu, peer) = time(peer_runs, || {
        let refs = store.references(None).expect("records");
        let flat: Vec<f32> = refs.iter().flat_map(|r| r.signature.features()).collect();
        let centre = mean(&flat, DIMENSIONS);
        nearest(&query, &flat, DIMENSIONS, &centre, 10)
            .into_iter()
            .map(|(i, s)| (refs[i].id, s))
            .collect::<Vec<_>>()
    });
    println!(
        "peer (records read, vectors rebuilt): best {pbest:6.2} ms  CPU {pcpu:6.2} ms/query: the vector table is {:.1}x faster",
        pbest / best
    );
    assert_eq!(
        all.0.iter().map(|x| x.0).collect::<Vec<_>>(),
        peer.iter().map(|x| x.0).collect::<Vec<_>>(),
        "the same answer"
    );
    let pass = worst <= 20.0;
    println!(
        "issue 23: ref similar over {n} references <= 20 ms (worst of {runs}): {worst:.2} ms: {}",
        verdict(pass)
    );
    drop(store);
    import(dir.path());
    ExitCode::SUCCESS
}

/// `ref import` of the materials beside the analysis of the same files.
fn import(dir: &std::path::Path) {
    let minutes: usize = arg_value("--import-minutes")
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let jobs = std::thread::available_parallelism().map_or(2, |n| n.get());
    let files: Vec<std::path::PathBuf> = materials()
        .into_iter()
        .map(|k| material_wav(dir, k, minutes).expect("a material"))
        .collect();
    let audio_s = (files.len() * minutes * 60) as f64;
    let time = |f: &mut dyn FnMut()| {
        let (c0, t0) = (cpu_seconds(), Instant::now());
        f();
        (t0.elapsed().as_secs_f64(), cpu_seconds() - c0)
    };
    let mut best = [(f64::INFINITY, 0.0); 3];
    for round in 0..3 {
        let root = dir.join(format!("root{round}"));
        std::fs::create_dir_all(&root).expect("a root");
        let cfg = sluice_host::config::Config::defaults(&root);
        let meta = library::Meta {
            genre: "bench".into(),
            ..Default::default()
        };
        let runs: [&mut dyn FnMut(); 3] = [
            &mut || {
                let added = library::add(&cfg, &files, &meta, jobs, &sluice_host::analyze::Silent)
                    .expect("added");
                assert!(
                    added
                        .iter()
                        .all(|a| matches!(a, library::Added::Added { .. })),
                    "{added:?}"
                );
            },
            &mut || {
                let r = sluice_host::analyze::run(
                    &files,
                    &library::signature_options(),
                    jobs,
                    &sluice_host::analyze::Silent,
                );
                assert!(r.iter().all(|r| r.is_ok()));
            },
            &mut || {
                let r = sluice_host::analyze::run(
                    &files,
                    &sluice_core::analysis::AnalysisOptions::default(),
                    jobs,
                    &sluice_host::analyze::Silent,
                );
                assert!(r.iter().all(|r| r.is_ok()));
            },
        ];
        for (b, run) in best.iter_mut().zip(runs) {
            let t = time(run);
            if t.0 < b.0 {
                *b = t;
            }
        }
    }
    let [imp, sig, full] = best;
    println!(
        "ref import of {} files ({:.0} s of audio, {jobs} threads), best of 3:",
        files.len(),
        audio_s
    );
    for (what, (wall, cpu)) in [
        ("ref import", imp),
        ("analyze, the signature's sections", sig),
        ("analyze, the full analysis", full),
    ] {
        println!(
            "  {what:<36} {wall:6.2} s wall ({:6.0}x real time)  {cpu:6.2} s CPU",
            audio_s / wall
        );
    }
    let ratio = imp.0 / sig.0;
    println!(
        "issue 23: ref import at the analysis speed: {ratio:.2}x the analysis of the same sections ({:.2}x the full analysis): {}",
        imp.0 / full.0,
        verdict(ratio <= 1.1)
    );
}
