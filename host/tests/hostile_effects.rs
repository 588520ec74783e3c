//! Hostile effects through the binary (issue 21, points 4 and 5): a `sluice watch` of a temporary
//! root whose `effects/` folder holds modules written in WAT to attack the host itself, not only
//! their own jobs.
//!
//! - a **tail bomb** claims a one-hour tail and never goes silent: its output stops at the host's
//!   tail cap, and the host's peak memory stays under [`PEAK_MB`] (at 48 and 96 kHz);
//! - a **latency bomb** claims 10 s of latency: refused, with the reason, and so is its pipeline;
//! - **slow modules** loop in `sluice_init` or in their wasm start function: they are refused
//!   after their budget while the host already watches, and a file dropped into another
//!   pipeline's inbox meanwhile is done at once; a pipeline that needs a user effect still
//!   loading waits quietly and starts when the effect is ready.

mod common;

use common::{Host, Wat, write_wav};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The most resident memory (VmHWM) the host may reach in these tests, in MiB: the documented
/// bound of docs/HOST.md for a host running wasm effects with two workers.
const PEAK_MB: u64 = 100;
/// The host's cap on an effect's tail (effects/ABI.md), in seconds.
const TAIL_CAP_S: u64 = 30;

/// Every sample of both channels becomes `x / 2 + 0.1`: never silent, even on silence.
const NEVER_SILENT: &str = r#"
    (block $done (loop $l
      (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
      (local.set $a (i32.add (i32.const 1024) (i32.shl (local.get $i) (i32.const 2))))
      (f32.store (local.get $a)
        (f32.add (f32.mul (f32.load (local.get $a)) (f32.const 0.5)) (f32.const 0.1)))
      (local.set $a (i32.add (local.get $a) (i32.const 16384)))
      (f32.store (local.get $a)
        (f32.add (f32.mul (f32.load (local.get $a)) (f32.const 0.5)) (f32.const 0.1)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $l)))"#;

const SPIN: &str = "(loop $l (br $l))";

/// A root with `modules` in its effects folder and one pipeline per (name, effect) pair, each
/// watching `inbox/NAME` and writing `out/NAME/{stem}.wav`.
fn root_with(dir: &Path, modules: &[(&str, Vec<u8>)], pipelines: &[(&str, &str)]) -> PathBuf {
    let root = dir.join("root");
    common::new_root(&root, &["effects"], &[]);
    for (file, bytes) in modules {
        std::fs::write(root.join("effects").join(file), bytes).unwrap();
    }
    for (name, effect) in pipelines {
        std::fs::write(
            root.join(format!("pipelines/{name}.toml")),
            format!(
                "name = \"{name}\"\nwatch = \"inbox/{name}\"\n[[step]]\neffect = \"{effect}\"\n\
                 [[output]]\npath = \"out/{name}/{{stem}}.wav\"\n"
            ),
        )
        .unwrap();
    }
    root
}

/// A kernel's account of a process's memory, in KiB (`VmHWM`: the peak resident set).
fn status_kb(pid: u32, key: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The host's peak resident memory so far, in MiB.
fn peak_mb(host: &Host) -> u64 {
    status_kb(host.child.id(), "VmHWM") / 1024
}

/// Wait (at most `limit`) for `f`, failing at once when the host's peak memory passes
/// [`PEAK_MB`] (so an attack that succeeds stops here instead of taking the machine's memory).
fn wait(host: &Host, what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    loop {
        let peak = peak_mb(host);
        assert!(
            peak <= PEAK_MB,
            "waiting for {what}: the host's peak memory is {peak} MiB (bound {PEAK_MB} MiB)"
        );
        if f() {
            return;
        }
        assert!(
            t.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}; host log:\n{}",
            host.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The job of `input` (relative to the root), once it is done or has failed.
fn finished_job(host: &Host, input: &str, limit: Duration) -> serde_json::Value {
    let mut job = serde_json::Value::Null;
    wait(host, &format!("the job of {input}"), limit, || {
        job = host
            .jobs()
            .into_iter()
            .find(|j| j["input"] == input)
            .unwrap_or_default();
        !job.is_null() && job["state"] != "queued" && job["state"] != "running"
    });
    job
}

/// Write a WAV beside `to` and rename it in, as a copy tool finishing would.
fn drop_wav(to: &Path, planes: &[Vec<f32>], rate: u32) {
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    let tmp = to.with_extension("part");
    write_wav(&tmp, planes, rate, 16);
    std::fs::rename(&tmp, to).unwrap();
}

#[test]
fn a_tail_bomb_is_cut_at_the_cap_in_bounded_memory_at_48_and_96_khz() {
    let dir = tempfile::tempdir().unwrap();
    let bomb = Wat {
        tail_seconds: 3600.0,
        process: NEVER_SILENT,
        ..Wat::plain("tailbomb")
    };
    let root = root_with(
        dir.path(),
        &[("tailbomb.wasm", bomb.bytes())],
        &[("tail", "tailbomb")],
    );
    let host = Host::start(&root);
    for rate in [48_000u32, 96_000] {
        let input = 10 * u64::from(rate);
        let planes = sluice_core::signal::programme(rate, 2, input as usize, 3);
        let rel = format!("inbox/tail/ten-{rate}.wav");
        drop_wav(&root.join(&rel), &planes, rate);
        let job = finished_job(&host, &rel, Duration::from_secs(240));
        assert_eq!(job["state"], "done", "{job:#?}\n{}", host.log());
        // The signal, then the tail up to the cap: never more.
        let out = root.join(format!("out/tail/ten-{rate}.wav"));
        let frames = u64::from(hound::WavReader::open(&out).unwrap().duration());
        let bound = input + TAIL_CAP_S * u64::from(rate);
        assert!(
            frames <= bound,
            "{rate} Hz: {frames} frames out of {input}, more than input + {TAIL_CAP_S} s ({bound})"
        );
        // It never went silent, so it was cut exactly at the cap, and the report says so.
        assert_eq!(frames, bound, "{rate} Hz");
        let report: serde_json::Value = serde_json::from_slice(
            &std::fs::read(root.join(job["report"].as_str().unwrap())).unwrap(),
        )
        .unwrap();
        let warned = report["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|w| w.as_str())
            .any(|w| w.contains("effect tailbomb") && w.contains("cut at 30 s"));
        assert!(warned, "no warning of the cut tail: {report:#}");
    }
    let peak = peak_mb(&host);
    eprintln!("tail bomb: host peak memory {peak} MiB (bound {PEAK_MB} MiB)");
    assert!(peak <= PEAK_MB, "{peak} MiB");
}

#[test]
fn a_latency_bomb_is_refused_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    // Claims 10 s of latency (and has none): its output would be the input shifted 10 s early,
    // a 10 s file turned into 10 s of silence.
    let bomb = Wat {
        latency: Some("(i32.mul (global.get $rate) (i32.const 10))"),
        ..Wat::plain("latencybomb")
    };
    let root = root_with(
        dir.path(),
        &[("latencybomb.wasm", bomb.bytes())],
        &[("late", "latencybomb"), ("plain", "gain")],
    );
    let host = Host::start(&root);
    wait(
        &host,
        "the latency bomb refused",
        Duration::from_secs(30),
        || {
            let log = host.log();
            log.contains("effect refused") && log.contains("pipeline refused")
        },
    );
    let log = host.log();
    let refusal = log
        .lines()
        .find(|l| l.contains("effect refused"))
        .unwrap()
        .to_string();
    assert!(
        refusal.contains("effect latencybomb")
            && refusal.contains("latency of 480000 frames")
            && refusal.contains("at most 1 s"),
        "{refusal}"
    );
    let pipeline = log
        .lines()
        .find(|l| l.contains("pipeline refused"))
        .unwrap();
    assert!(
        pipeline.contains("late.toml") && pipeline.contains("latency"),
        "{pipeline}"
    );
    // The other pipeline runs.
    let planes = sluice_core::signal::programme(48_000, 2, 48_000, 4);
    drop_wav(&root.join("inbox/plain/a.wav"), &planes, 48_000);
    let job = finished_job(&host, "inbox/plain/a.wav", Duration::from_secs(60));
    assert_eq!(job["state"], "done", "{job:#?}");
}

#[test]
fn slow_modules_load_in_the_background_while_the_host_serves() {
    let dir = tempfile::tempdir().unwrap();
    let slow_init = |name| Wat {
        init: SPIN,
        ..Wat::plain(name)
    };
    let slow_start = |name| Wat {
        start: Some(SPIN),
        ..Wat::plain(name)
    };
    // The good module comes last, behind the slow ones (the files are named unlike their
    // effects, so a refusal must name the effect's own reason to be found).
    let modules = [
        ("a-init.wasm", slow_init("slowinit").bytes()),
        ("b-init.wasm", slow_init("slowinit2").bytes()),
        ("c-start.wasm", slow_start("slowstart").bytes()),
        ("d-start.wasm", slow_start("slowstart2").bytes()),
        ("z-calm.wasm", Wat::plain("zcalm").bytes()),
    ];
    let root = root_with(
        dir.path(),
        &modules,
        &[
            ("plain", "gain"),
            ("user", "zcalm"),
            ("stuck", "slowinit"),
            ("stuck2", "slowstart"),
        ],
    );
    let t = Instant::now();
    let host = Host::start(&root);
    let started = t.elapsed();
    let refused_slow = |log: &str| log.contains("effect refused");
    assert!(
        started < Duration::from_secs(4) && !refused_slow(&host.log()),
        "the host took {started:?} to start watching; log:\n{}",
        host.log()
    );

    // A file for a pipeline of built-in effects only, while the slow modules load: done at
    // once (one second of settling, then the job), long before they are refused.
    let planes = sluice_core::signal::programme(48_000, 2, 48_000, 5);
    let dropped = Instant::now();
    drop_wav(&root.join("inbox/plain/now.wav"), &planes, 48_000);
    let job = finished_job(&host, "inbox/plain/now.wav", Duration::from_secs(60));
    let took = dropped.elapsed();
    assert_eq!(job["state"], "done", "{job:#?}");
    assert!(
        took < Duration::from_secs(4) && !refused_slow(&host.log()),
        "the job took {took:?} (the slow modules are refused after 5 s); log:\n{}",
        host.log()
    );

    // A file for the pipeline that needs the good user effect: taken when the effect is ready.
    drop_wav(&root.join("inbox/user/later.wav"), &planes, 48_000);
    let job = finished_job(&host, "inbox/user/later.wav", Duration::from_secs(60));
    assert_eq!(job["state"], "done", "{job:#?}\n{}", host.log());

    // The slow modules are refused with the real reason, and so are the pipelines that need
    // them; the one that waited was never refused.
    let refused = |log: &str, pipeline: &str| {
        log.lines()
            .any(|l| l.contains("pipeline refused") && l.contains(pipeline))
    };
    wait(
        &host,
        "the slow pipelines refused",
        Duration::from_secs(60),
        || {
            let log = host.log();
            refused(&log, "stuck.toml") && refused(&log, "stuck2.toml")
        },
    );
    let log = host.log();
    for (pipeline, effect, call) in [
        ("stuck.toml", "slowinit", "sluice_init"),
        ("stuck2.toml", "slowstart", "instantiation"),
    ] {
        let line = log
            .lines()
            .find(|l| l.contains("pipeline refused") && l.contains(pipeline))
            .unwrap_or_else(|| panic!("{pipeline} not refused:\n{log}"));
        assert!(
            line.contains(effect) && line.contains(call) && line.contains("time budget"),
            "{line}"
        );
    }
    assert!(!refused(&log, "user.toml"), "{log}");
    assert_eq!(log.matches("effect refused").count(), 4, "{log}");
    let peak = peak_mb(&host);
    eprintln!("slow modules: host peak memory {peak} MiB (bound {PEAK_MB} MiB)");
    assert!(peak <= PEAK_MB, "{peak} MiB");
}
