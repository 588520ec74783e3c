//! The farm (`[cluster]`, docs/CLUSTER.md) against a real `nats-server -js` on a loopback
//! port: one ingest host (`sluice watch`) and worker processes with roots of their own
//! (machines of a farm), through the faults a farm meets.

mod common;

use common::{assert_no_temporaries, files_under, programme_wav, sluice, tool};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

const PIPELINE: &str = r#"
name = "farm"
watch = "inbox"

[[step]]
analyze = { sections = ["loudness"] }

[[step]]
normalize = { loudness_lufs = -18, true_peak_dbtp = -1 }

# A delivery specification of the pipeline's own: it travels to the workers with the
# pipeline's text.
[[qc_spec]]
id = "farm-broadcast"
name = "Farm broadcast"
source = "the farm test's own, after EBU R 128"

[[qc_spec.rule]]
measure = "integrated_lufs"
target = -23.0
tolerance = 0.5

[[qc_spec.rule]]
measure = "true_peak_dbtp"
max = -1.0

[[output]]
path = "out/{stem}.flac"
bit_depth = 16
# Judged by the worker that renders it: -18 LUFS is not -23, a warning.
qc = "farm-broadcast"
qc_fail = "warn"
# Its report page, written by the worker and placed like the outputs.
qc_report = "reports/{stem}.flac.qc.html"

[[output]]
path = "out/mp3/{stem}.mp3"
bitrate_kbps = 128

[source]
action = "move"
to = "done/{name}"
"#;

/// A `nats-server` with JetStream on a loopback port, its store in a folder that outlives a
/// restart.
struct Nats {
    bin: PathBuf,
    /// More arguments (a login the server asks for).
    extra: Vec<String>,
    port: u16,
    store: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl Nats {
    fn start(bin: PathBuf, dir: &Path) -> Nats {
        Nats::start_with(bin, dir, &[])
    }

    fn start_with(bin: PathBuf, dir: &Path, extra: &[&str]) -> Nats {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut n = Nats {
            bin,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            port,
            store: dir.join("nats-store"),
            log: dir.join("nats.log"),
            child: None,
        };
        n.up();
        n
    }

    fn up(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = std::process::Command::new(&self.bin)
            .args(["-js", "-a", "127.0.0.1", "-p"])
            .arg(self.port.to_string())
            .arg("-sd")
            .arg(&self.store)
            .args(&self.extra)
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        self.child = Some(child);
        let t = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "nats-server did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Killed and started again on the same port and store.
    fn restart(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.up();
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A `sluice watch` or `sluice worker` process, its output appended to `log`.
struct Proc {
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn start(args: &[&str], root: &Path, log: &Path, env: &[(&str, &str)]) -> Proc {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let mut c = sluice();
        c.args(args).arg("--root").arg(root);
        for (k, v) in env {
            c.env(k, v);
        }
        let child = c
            .stdout(Stdio::from(out.try_clone().unwrap()))
            .stderr(Stdio::from(out))
            .spawn()
            .unwrap();
        Proc {
            child,
            log: log.to_path_buf(),
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

fn farm_toml(nats: &Nats, node: &str, extra: &str) -> String {
    format!(
        "settle_seconds = 0.3\nrescan_seconds = 1\n{extra}\n[cluster]\nservers = [\"{}\"]\nnode = \"{node}\"\nack_wait_seconds = 3\nmax_deliveries = 2\n",
        nats.url()
    )
}

fn ingest(dir: &Path, nats: &Nats) -> (PathBuf, PathBuf) {
    let root = dir.join("ingest");
    std::fs::create_dir_all(root.join("pipelines")).unwrap();
    std::fs::create_dir_all(root.join("inbox")).unwrap();
    std::fs::write(root.join("pipelines/farm.toml"), PIPELINE).unwrap();
    std::fs::write(root.join("sluice.toml"), farm_toml(nats, "ingest", "")).unwrap();
    (root.clone(), dir.join("ingest.log"))
}

fn worker_root(dir: &Path, nats: &Nats, name: &str) -> PathBuf {
    let root = dir.join(name);
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(
        root.join("sluice.toml"),
        farm_toml(nats, name, "workers = 1"),
    )
    .unwrap();
    root
}

fn start_ingest(root: &Path, log: &Path) -> Proc {
    Proc::start(
        &["watch"],
        root,
        log,
        &[
            ("SLUICE_WORKERS", "2"),
            ("SLUICE_MAX_INTERRUPTED_RUNS", "1000"),
        ],
    )
}

/// An ingest node under `dir`, started, with `seconds` of programme (from `seed`) dropped into
/// its inbox as `a.wav`: its root and its process.
fn ingest_with_a_file(dir: &Path, nats: &Nats, seconds: f64, seed: u64) -> (PathBuf, Proc) {
    let (root, ingest_log) = ingest(dir, nats);
    let host = start_ingest(&root, &ingest_log);
    let made = dir.join("a.wav");
    programme_wav(&made, seconds, seed);
    std::fs::rename(&made, root.join("inbox/a.wav")).unwrap();
    (root, host)
}

fn start_worker(root: &Path, dir: &Path, name: &str) -> Proc {
    Proc::start(&["worker"], root, &dir.join(format!("{name}.log")), &[])
}

/// Worker roots named `names` under `dir`, and a worker started on each.
fn workers_of(dir: &Path, nats: &Nats, names: &[&str]) -> (Vec<PathBuf>, Vec<Proc>) {
    let roots: Vec<PathBuf> = names.iter().map(|n| worker_root(dir, nats, n)).collect();
    let procs = names
        .iter()
        .zip(&roots)
        .map(|(n, r)| start_worker(r, dir, n))
        .collect();
    (roots, procs)
}

/// `node_root`'s configuration says the farm's shared root is mounted at `mount` there.
fn mount_shared(node_root: &Path, mount: &Path) {
    let toml = std::fs::read_to_string(node_root.join("sluice.toml")).unwrap()
        + &format!("shared_root = {:?}\n", mount.display().to_string());
    std::fs::write(node_root.join("sluice.toml"), toml).unwrap();
}

fn jobs(root: &Path) -> Vec<serde_json::Value> {
    let out = sluice()
        .args(["jobs", "--json", "--root"])
        .arg(root)
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or_default()
}

fn finished(js: &[serde_json::Value]) -> usize {
    js.iter()
        .filter(|j| j["state"] != "queued" && j["state"] != "running")
        .count()
}

/// `sluice jobs` on `root` until its `n` jobs have all finished (done, failed or quarantined),
/// for up to `secs` seconds (failing with `logs()`); the jobs then.
fn wait_finished(
    root: &Path,
    n: usize,
    secs: u64,
    logs: impl Fn() -> String,
) -> Vec<serde_json::Value> {
    let t = Instant::now();
    loop {
        let js = jobs(root);
        if js.len() == n && finished(&js) == n {
            return js;
        }
        assert!(
            t.elapsed() < Duration::from_secs(secs),
            "{js:#?}\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The job states in the farm's key-value bucket, by key.
fn kv_states(url: &str) -> BTreeMap<String, serde_json::Value> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use futures_util::StreamExt;
        let client = async_nats::connect(url).await.unwrap();
        let js = async_nats::jetstream::new(client);
        let kv = js.get_key_value("sluice-jobs").await.unwrap();
        let mut keys = kv.keys().await.unwrap();
        let mut out = BTreeMap::new();
        while let Some(k) = keys.next().await {
            let k = k.unwrap();
            let v = kv.get(&k).await.unwrap().unwrap();
            out.insert(k, serde_json::from_slice(&v).unwrap());
        }
        out
    })
}

/// 100 files through an ingest host and three workers while one worker is killed mid-job,
/// the NATS server is restarted and the ingest host is killed: every input ends with one set
/// of outputs, byte-identical to a single machine's, the bucket agrees with the ingest
/// node's store, and nothing temporary is left.
#[test]
fn a_farm_takes_every_file_once_through_kills_and_a_server_restart() {
    let Some(bin) = tool("nats-server") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut nats = Nats::start(bin, dir.path());
    let (root, ingest_log) = ingest(dir.path(), &nats);
    let names = ["w1", "w2", "w3"];
    let (roots, mut workers) = workers_of(dir.path(), &nats, &names);
    let mut host = start_ingest(&root, &ingest_log);
    // The inputs: made beside the root, then moved in whole.
    let made = dir.path().join("made");
    std::fs::create_dir_all(&made).unwrap();
    let n = 100;
    for i in 0..n {
        let p = made.join(format!("take{i:03}.wav"));
        // One in ten short enough to travel in its job message (the rest through the
        // object store).
        let seconds = if i % 10 == 0 {
            0.6
        } else {
            2.0 + (i % 5) as f64 * 0.5
        };
        programme_wav(&p, seconds, i as u64);
    }
    let copies = dir.path().join("copies");
    std::fs::create_dir_all(&copies).unwrap();
    for e in std::fs::read_dir(&made).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, copies.join(p.file_name().unwrap())).unwrap();
        std::fs::rename(&p, root.join("inbox").join(p.file_name().unwrap())).unwrap();
    }
    let t = Instant::now();
    let deadline = Duration::from_secs(180);
    let nats_log = nats.log.clone();
    let logs = |host: &Proc, workers: &[Proc]| {
        farm_logs(host, workers) + &std::fs::read_to_string(&nats_log).unwrap_or_default()
    };
    // A worker killed mid-job: w1 as soon as it says it is running one.
    while !workers[0].log().contains(": running (") {
        assert!(
            t.elapsed() < deadline,
            "w1 never ran a job:\n{}",
            logs(&host, &workers)
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    workers[0].kill();
    // The server restarted once a third is done, the ingest host killed at two thirds.
    let mut restarted = false;
    let mut ingest_killed = false;
    loop {
        let js = jobs(&root);
        let done = finished(&js);
        if js.len() == n && done == n {
            break;
        }
        assert!(
            t.elapsed() < deadline,
            "{done} of {n} jobs finished in {:?}:\n{}",
            t.elapsed(),
            logs(&host, &workers)
        );
        if !restarted && done >= n / 3 {
            restarted = true;
            eprintln!("{:?}: {done} done: the NATS server restarts", t.elapsed());
            nats.restart();
            // The killed worker's machine comes back too.
            workers[0] = start_worker(&roots[0], dir.path(), "w1");
        }
        if restarted && !ingest_killed && done >= 2 * n / 3 {
            ingest_killed = true;
            eprintln!("{:?}: {done} done: the ingest host is killed", t.elapsed());
            host.kill();
            host = start_ingest(&root, &ingest_log);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let took = t.elapsed();
    assert!(restarted && ingest_killed, "the faults did not all happen");
    let js = jobs(&root);
    let bad: Vec<_> = js.iter().filter(|j| j["state"] != "done").collect();
    assert!(
        bad.is_empty(),
        "jobs not done: {bad:#?}\n{}",
        logs(&host, &workers)
    );
    // Where each ran is recorded, and the three workers shared the work.
    let mut by_worker: BTreeMap<String, usize> = BTreeMap::new();
    for j in &js {
        *by_worker
            .entry(j["ran_on"].as_str().unwrap_or("none").to_string())
            .or_default() += 1;
    }
    assert!(
        by_worker.keys().all(|k| names.contains(&k.as_str())),
        "{by_worker:?}"
    );
    assert!(by_worker.len() >= 2, "{by_worker:?}");
    let stats = common::succeed(sluice().args(["stats", "--json", "--root"]).arg(&root));
    let stats: serde_json::Value = serde_json::from_slice(&stats.stdout).unwrap();
    for (w, k) in &by_worker {
        assert_eq!(stats["ran_on"][w], *k as u64, "{stats:#}");
    }
    // One set of outputs per input, and every source moved once.
    let outputs = files_under(&root.join("out"));
    assert_eq!(outputs.len(), 2 * n, "{outputs:#?}");
    assert_eq!(files_under(&root.join("done")).len(), n);
    assert!(files_under(&root.join("inbox")).is_empty());
    assert_no_temporaries(&root);
    same_as_one_machine(dir.path(), &copies, &root, &outputs);
    // The farm's bucket says what the ingest node's store says.
    let kv = kv_states(&nats.url());
    for j in &js {
        let key = format!("ingest.{}", j["id"]);
        let s = kv
            .get(&key)
            .unwrap_or_else(|| panic!("{key} not in the bucket"));
        assert_eq!(s["state"], "done", "{key}: {s}");
        assert_eq!(s["worker"], j["ran_on"], "{key}: {s}");
        assert_eq!(s["attempt"], j["attempts"], "{key}: {s}");
    }
    // Sources went both ways: in their job messages and through the object store.
    let all: String = workers.iter().map(|w| w.log()).collect();
    assert!(
        all.contains(", the source in the message)") && all.contains(": running (farm)"),
        "{all}"
    );
    // The worker's folders for jobs are gone (w1's with its restart).
    for w in &mut workers {
        w.kill();
    }
    for r in &roots {
        let left = files_under(&r.join(".sluice/farm"));
        assert!(left.is_empty(), "{left:?}");
    }
    eprintln!("{n} files through the farm with the faults in {took:?}; by worker: {by_worker:?}");
    if std::env::var_os("KEEPDIR").is_some() {
        eprintln!("kept {}", dir.keep().display());
    }
}

/// The ingest host's log and each worker's, for a failing assertion.
fn farm_logs(host: &Proc, workers: &[Proc]) -> String {
    workers
        .iter()
        .fold(format!("ingest log:\n{}\n", host.log()), |s, w| {
            s + &format!("{}:\n{}\n", w.log.display(), w.log())
        })
}

/// The files of `copies` run on one machine, without the farm (in `dir/single`): each of
/// `outputs` (under `root`) has the same bytes as its counterpart there.
fn same_as_one_machine(dir: &Path, copies: &Path, root: &Path, outputs: &[PathBuf]) {
    let single = dir.join("single");
    std::fs::create_dir_all(single.join("pipelines")).unwrap();
    std::fs::write(single.join("pipelines/farm.toml"), PIPELINE).unwrap();
    let mut cmd = sluice();
    cmd.args(["run", "farm", "--root"]).arg(&single);
    for e in std::fs::read_dir(copies).unwrap() {
        cmd.arg(e.unwrap().path());
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for o in outputs {
        let rel = o.strip_prefix(root).unwrap();
        assert_eq!(
            common::blake3_hex(o),
            common::blake3_hex(&single.join(rel)),
            "{} differs from the single machine's (under {})",
            rel.display(),
            dir.display()
        );
    }
}

/// A file that stops every worker that takes it (each is killed while running it) is
/// answered, once the delivery limit is reached, with a failure by the next worker to see it:
/// its source goes to quarantine with the reason, and the other files are not held up.
#[test]
fn a_job_that_stops_every_worker_is_quarantined_at_the_delivery_limit() {
    let Some(bin) = tool("nats-server") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start(bin, dir.path());
    let (root, ingest_log) = ingest(dir.path(), &nats);
    let names = ["w1", "w2"];
    let (roots, mut workers) = workers_of(dir.path(), &nats, &names);
    let host = start_ingest(&root, &ingest_log);
    // The poison file is long enough (a minute: seconds of work) that the kill lands while it
    // runs even on a loaded machine: at 3 s it ran through in 160 ms in CI, between two looks.
    for (seed, (name, seconds)) in [("poison", 60.0), ("fine", 3.0)].into_iter().enumerate() {
        let made = dir.path().join(format!("{name}.wav"));
        programme_wav(&made, seconds, 7 + seed as u64);
        std::fs::rename(&made, root.join("inbox").join(format!("{name}.wav"))).unwrap();
    }
    let t = Instant::now();
    let mut seen = [0usize; 2];
    let mut kills = 0;
    let mut looked = Instant::now();
    loop {
        // A worker running the poison file dies (as a crash in its decoder would make it).
        // The logs are read every few milliseconds; the job list (a process) four times a second.
        for (i, w) in workers.iter_mut().enumerate() {
            let now = w.log().matches("inbox/poison.wav: running").count();
            if now > seen[i] {
                seen[i] = now;
                w.kill();
                kills += 1;
                *w = start_worker(&roots[i], dir.path(), names[i]);
            }
        }
        std::thread::sleep(Duration::from_millis(5));
        if looked.elapsed() < Duration::from_millis(250) {
            continue;
        }
        looked = Instant::now();
        let js = jobs(&root);
        if js.len() == 2 && finished(&js) == 2 {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(90),
            "not finished: {js:#?}\ningest:\n{}",
            host.log()
        );
    }
    let js = jobs(&root);
    let by_input = |n: &str| {
        js.iter()
            .find(|j| j["input"] == format!("inbox/{n}.wav"))
            .unwrap()
            .clone()
    };
    let fine = by_input("fine");
    assert_eq!(fine["state"], "done", "{fine:#}");
    let poison = by_input("poison");
    assert_eq!(poison["state"], "quarantined", "{poison:#}");
    let error = poison["error"].as_str().unwrap();
    assert!(
        error.contains("2 workers took this job and none finished it"),
        "{error}"
    );
    assert_eq!(kills, 2, "the limit is 2 deliveries");
    assert!(root.join("failed/farm/poison.wav").is_file());
    assert!(root.join("failed/farm/poison.wav.error.json").is_file());
    assert!(files_under(&root.join("out")).len() == 2);
    assert_no_temporaries(&root);
}

/// A rogue worker takes a job, acknowledges it and answers with a report that does not read (a
/// garbled rendition in an otherwise well-formed answer): that attempt fails with the reason —
/// the job is not left waiting for an answer that never comes — and the retry, on an honest
/// worker, delivers the file once.
#[test]
fn a_garbled_answer_fails_the_attempt_and_the_retry_heals() {
    let Some(bin) = tool("nats-server") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start(bin, dir.path());
    let (root, host) = ingest_with_a_file(dir.path(), &nats, 3.0, 5);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let taken: serde_json::Value = rt.block_on(async {
        use async_nats::jetstream;
        use futures_util::StreamExt;
        let client = async_nats::connect(nats.url()).await.unwrap();
        let js = jetstream::new(client);
        // The job stream appears when the ingest node connects.
        let t = Instant::now();
        let stream = loop {
            match js.get_stream("SLUICE_JOBS").await {
                Ok(s) => break s,
                Err(e) => {
                    assert!(t.elapsed() < Duration::from_secs(30), "no job stream: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        // The workers' consumer, as a worker makes it.
        let consumer = stream
            .get_or_create_consumer(
                "workers",
                jetstream::consumer::pull::Config {
                    durable_name: Some("workers".into()),
                    filter_subject: "sluice.jobs".into(),
                    ack_policy: jetstream::consumer::AckPolicy::Explicit,
                    ack_wait: Duration::from_secs(3),
                    max_deliver: -1,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let job = loop {
            let mut batch = consumer
                .fetch()
                .max_messages(1)
                .expires(Duration::from_secs(1))
                .messages()
                .await
                .unwrap();
            if let Some(m) = batch.next().await {
                break m.unwrap();
            }
            assert!(t.elapsed() < Duration::from_secs(60), "no job came");
        };
        job.ack().await.unwrap();
        let msg: serde_json::Value = serde_json::from_slice(&job.payload).unwrap();
        let answer = serde_json::json!({
            "node": msg["node"], "job": msg["job"], "attempt": msg["attempt"],
            "worker": "rogue", "delivery": 1, "seconds": 0.5,
            "outcome": {"Done": {"rendition": "bm90IENCT1I=", "outputs": [], "work_root": "/elsewhere"}},
        });
        js.publish(
            format!("sluice.results.{}", msg["node"].as_str().unwrap()),
            serde_json::to_vec(&answer).unwrap().into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
        msg
    });
    // The garbled answer fails attempt 1 (the retry is scheduled) before any honest worker
    // exists.
    let t = Instant::now();
    loop {
        let log = host.log();
        if log.contains("the answer of worker rogue could not be read") {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "the garbled answer for job {} was not taken as a failed attempt:\n{log}",
            taken["job"]
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (_, workers) = workers_of(dir.path(), &nats, &["w1"]);
    let js = wait_finished(&root, 1, 90, || farm_logs(&host, &workers));
    assert_eq!(js[0]["state"], "done", "{:#}", js[0]);
    assert_eq!(js[0]["attempts"], 2, "{:#}", js[0]);
    // One set of outputs (the pipeline's FLAC and MP3).
    assert_eq!(files_under(&root.join("out")).len(), 2);
    assert_no_temporaries(&root);
}

/// A user effect in WAT (the ABI of effects/ABI.md, two channels, no parameters) whose
/// `sluice_process` multiplies every sample by `gain`.
fn gain_module(name: &str, gain: f32) -> Vec<u8> {
    let process = format!(
        r#"(block $done (loop $l
      (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
      (local.set $a (i32.add (i32.const 1024) (i32.shl (local.get $i) (i32.const 2))))
      (f32.store (local.get $a) (f32.mul (f32.load (local.get $a)) (f32.const {gain})))
      (local.set $a (i32.add (local.get $a) (i32.const 16384)))
      (f32.store (local.get $a) (f32.mul (f32.load (local.get $a)) (f32.const {gain})))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $l)))"#
    );
    common::Wat {
        process: &process,
        ..common::Wat::plain(name)
    }
    .bytes()
}

/// `n` takes of 2 s programme (seeds from `seed`) made in `dir/copies` and copied into the
/// root's inbox: the copies' folder.
fn takes_into_inbox(dir: &Path, root: &Path, n: usize, seed: u64) -> PathBuf {
    let copies = dir.join("copies");
    std::fs::create_dir_all(&copies).unwrap();
    for i in 0..n {
        let made = copies.join(format!("take{i}.wav"));
        programme_wav(&made, 2.0, seed + i as u64);
        std::fs::copy(&made, root.join("inbox").join(format!("take{i}.wav"))).unwrap();
    }
    copies
}

/// The `n` takes run by `sluice run` on a single machine's root with `pipeline` and the ingest
/// root's `files` (paths in the root): every output of the farm's root is the same bytes.
fn same_as_a_single_machine(
    dir: &Path,
    root: &Path,
    pipeline: &str,
    copies: &Path,
    n: usize,
    files: &[&str],
) {
    let single = dir.join("single");
    std::fs::create_dir_all(single.join("pipelines")).unwrap();
    std::fs::write(single.join("pipelines/farm.toml"), pipeline).unwrap();
    for f in files {
        let to = single.join(f);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(root.join(f), to).unwrap();
    }
    let mut cmd = sluice();
    cmd.args(["run", "farm", "--root"]).arg(&single);
    for i in 0..n {
        cmd.arg(copies.join(format!("take{i}.wav")));
    }
    common::succeed(&mut cmd);
    let outs = files_under(&root.join("out"));
    assert!(!outs.is_empty());
    for o in outs {
        let rel = o.strip_prefix(root).unwrap();
        assert_eq!(
            common::blake3_hex(&o),
            common::blake3_hex(&single.join(rel)),
            "{}",
            rel.display()
        );
    }
}

/// A user effect of the ingest root travels with the job by hash: a worker without it runs
/// it, and a worker with its own module of the same name runs the ingest node's, so the
/// outputs are the single machine's.
#[test]
fn user_effects_travel_with_the_job_by_hash() {
    let Some(bin) = tool("nats-server") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start(bin, dir.path());
    let (root, ingest_log) = ingest(dir.path(), &nats);
    // The effect in place of the normalization (which would undo its gain).
    let pipeline = PIPELINE.replace(
        "normalize = { loudness_lufs = -18, true_peak_dbtp = -1 }",
        "effect = \"halve\"",
    );
    assert!(pipeline.contains("halve"));
    std::fs::write(root.join("pipelines/farm.toml"), &pipeline).unwrap();
    std::fs::create_dir_all(root.join("effects")).unwrap();
    std::fs::write(root.join("effects/halve.wasm"), gain_module("halve", 0.5)).unwrap();
    // w2 has a module of the same name of its own that does something else.
    let w1 = worker_root(dir.path(), &nats, "w1");
    let w2 = worker_root(dir.path(), &nats, "w2");
    std::fs::create_dir_all(w2.join("effects")).unwrap();
    std::fs::write(w2.join("effects/halve.wasm"), gain_module("halve", 0.9)).unwrap();
    let _workers = [
        start_worker(&w1, dir.path(), "w1"),
        start_worker(&w2, dir.path(), "w2"),
    ];
    let host = start_ingest(&root, &ingest_log);
    let n = 6;
    let copies = takes_into_inbox(dir.path(), &root, n, 100);
    let js = wait_finished(&root, n, 90, || host.log());
    for j in &js {
        assert_eq!(j["state"], "done", "{j:#}\n{}", host.log());
    }
    let workers: std::collections::BTreeSet<&str> =
        js.iter().filter_map(|j| j["ran_on"].as_str()).collect();
    assert_eq!(workers.len(), 2, "both workers ran jobs: {workers:?}");
    // The single machine with the ingest root's module.
    same_as_a_single_machine(
        dir.path(),
        &root,
        &pipeline,
        &copies,
        n,
        &["effects/halve.wasm"],
    );
    assert!(
        w1.join(".sluice/farm-effects").read_dir().unwrap().count() == 1,
        "w1 keeps the module it fetched"
    );
}

/// An effect step's data file (an impulse response in the ingest root) travels with the job
/// by hash: the workers, which do not have it, render what the single machine renders.
#[test]
fn an_impulse_response_travels_with_the_job_by_hash() {
    let Some(bin) = tool("nats-server") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start(bin, dir.path());
    let (root, ingest_log) = ingest(dir.path(), &nats);
    let pipeline = PIPELINE.replace(
        "normalize = { loudness_lufs = -18, true_peak_dbtp = -1 }",
        "effect = \"convolve\"\ndata = { ir = \"irs/room.wav\" }\nparams = { mix = 0.3 }",
    );
    assert!(pipeline.contains("convolve"));
    // A stereo room: decaying noise, 0.2 s.
    std::fs::create_dir_all(root.join("irs")).unwrap();
    let room: Vec<Vec<f32>> = (0..2)
        .map(|c| {
            sluice_core::signal::noise(70 + c, 0.5, 8_820)
                .iter()
                .enumerate()
                .map(|(i, v)| v * (-(i as f32) / 2_000.0).exp())
                .collect()
        })
        .collect();
    common::write_wav(&root.join("irs/room.wav"), &room, 44_100, 24);
    std::fs::write(root.join("pipelines/farm.toml"), &pipeline).unwrap();
    let (_, _workers) = workers_of(dir.path(), &nats, &["w1"]);
    let host = start_ingest(&root, &ingest_log);
    let n = 2;
    let copies = takes_into_inbox(dir.path(), &root, n, 300);
    let js = wait_finished(&root, n, 90, || host.log());
    for j in &js {
        assert_eq!(j["state"], "done", "{j:#}\n{}", host.log());
        assert_eq!(j["ran_on"], "w1", "{j:#}");
    }
    // The single machine, the same response in its root.
    same_as_a_single_machine(dir.path(), &root, &pipeline, &copies, n, &["irs/room.wav"]);
}

/// A server that asks for a user and password: nodes with them work; a worker with a wrong
/// password stops at once with the server's refusal, naming the kind of login.
#[test]
fn a_farm_logs_in_and_a_wrong_password_is_refused_at_once() {
    let Some(bin) = tool("nats-server") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start_with(
        bin,
        dir.path(),
        &["--user", "sluice", "--pass", "s3cret-pass"],
    );
    let login = "user = \"sluice\"\npassword = \"s3cret-pass\"\n";
    let (root, ingest_log) = ingest(dir.path(), &nats);
    let toml = std::fs::read_to_string(root.join("sluice.toml")).unwrap() + login;
    std::fs::write(root.join("sluice.toml"), toml).unwrap();
    let w1 = worker_root(dir.path(), &nats, "w1");
    let toml = std::fs::read_to_string(w1.join("sluice.toml")).unwrap() + login;
    std::fs::write(w1.join("sluice.toml"), toml).unwrap();
    let _w = start_worker(&w1, dir.path(), "w1");
    let host = start_ingest(&root, &ingest_log);
    let made = dir.path().join("a.wav");
    programme_wav(&made, 2.0, 3);
    std::fs::rename(&made, root.join("inbox/a.wav")).unwrap();
    let js = wait_finished(&root, 1, 60, || host.log());
    assert_eq!(js[0]["state"], "done", "{js:#?}");
    assert_eq!(js[0]["ran_on"], "w1");
    // The wrong password.
    let w2 = worker_root(dir.path(), &nats, "w2");
    let toml = std::fs::read_to_string(w2.join("sluice.toml")).unwrap()
        + "user = \"sluice\"\npassword = \"wrong\"\n";
    std::fs::write(w2.join("sluice.toml"), toml).unwrap();
    let t = Instant::now();
    let out = sluice()
        .args(["worker", "--root"])
        .arg(&w2)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refused this node (user and password login"),
        "{err}"
    );
    assert!(!err.contains("wrong"), "the password is not printed: {err}");
}

/// A NATS server that requires TLS, its certificate signed by a private authority: nodes
/// with `tls = true` and the authority in `tls_ca` (relative to their roots) work; a worker
/// without the authority is refused at once, saying why.
#[test]
fn a_farm_over_tls_with_a_private_authority() {
    let (Some(bin), Some(openssl)) = (tool("nats-server"), tool("openssl")) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    common::test_authority(&openssl, dir.path());
    let nats = Nats::start_with(
        bin,
        dir.path(),
        &[
            "--tls",
            "--tlscert",
            dir.path().join("leaf.pem").to_str().unwrap(),
            "--tlskey",
            dir.path().join("leaf.key").to_str().unwrap(),
        ],
    );
    let tls = |root: &Path| {
        std::fs::copy(dir.path().join("ca.pem"), root.join("ca.pem")).unwrap();
        let toml = std::fs::read_to_string(root.join("sluice.toml"))
            .unwrap()
            .replace("nats://127.0.0.1", "tls://localhost")
            + "tls = true\ntls_ca = \"ca.pem\"\n";
        std::fs::write(root.join("sluice.toml"), toml).unwrap();
    };
    let (root, ingest_log) = ingest(dir.path(), &nats);
    tls(&root);
    let w1 = worker_root(dir.path(), &nats, "w1");
    tls(&w1);
    let w = start_worker(&w1, dir.path(), "w1");
    let host = start_ingest(&root, &ingest_log);
    let made = dir.path().join("a.wav");
    programme_wav(&made, 2.0, 15);
    std::fs::rename(&made, root.join("inbox/a.wav")).unwrap();
    let job = wait_finished(&root, 1, 60, || host.log() + &w.log()).remove(0);
    assert_eq!(job["state"], "done", "{job:#}");
    assert_eq!(job["ran_on"], "w1", "{job:#}");
    // Without the authority the server's certificate is not trusted.
    let w2 = worker_root(dir.path(), &nats, "w2");
    let toml = std::fs::read_to_string(w2.join("sluice.toml"))
        .unwrap()
        .replace("nats://127.0.0.1", "tls://localhost")
        + "tls = true\n";
    std::fs::write(w2.join("sluice.toml"), toml).unwrap();
    let t = Instant::now();
    let out = sluice()
        .args(["worker", "--root"])
        .arg(&w2)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    eprintln!("without the authority ({:?}): {err}", t.elapsed());
    assert!(!out.status.success());
    assert!(t.elapsed() < Duration::from_secs(30), "{:?}", t.elapsed());
    assert!(err.to_lowercase().contains("certificate"), "{err}");
}

/// A job whose user effect cannot be fetched (the module gone from the object store when the
/// worker asks for it) fails on the worker as a transient fault; the ingest node retries it,
/// putting the module in again, and it is done on the second attempt.
#[test]
fn an_effect_the_worker_cannot_fetch_fails_the_attempt_and_the_retry_heals() {
    let Some(bin) = tool("nats-server") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start(bin, dir.path());
    let (root, ingest_log) = ingest(dir.path(), &nats);
    let pipeline = PIPELINE.replace(
        "normalize = { loudness_lufs = -18, true_peak_dbtp = -1 }",
        "effect = \"halve\"",
    );
    std::fs::write(root.join("pipelines/farm.toml"), &pipeline).unwrap();
    std::fs::create_dir_all(root.join("effects")).unwrap();
    let module = gain_module("halve", 0.5);
    let hash = blake3::hash(&module).to_hex().to_string();
    std::fs::write(root.join("effects/halve.wasm"), &module).unwrap();
    // No worker yet: the job waits on the farm.
    let host = start_ingest(&root, &ingest_log);
    let made = dir.path().join("a.wav");
    programme_wav(&made, 2.0, 5);
    std::fs::rename(&made, root.join("inbox/a.wav")).unwrap();
    // The module leaves the object store (once it is there) before any worker asks for it.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = async_nats::connect(nats.url()).await.unwrap();
        let js = async_nats::jetstream::new(client);
        let t = Instant::now();
        let store = loop {
            if let Ok(s) = js.get_object_store("sluice-files").await
                && s.info(format!("fx/{hash}")).await.is_ok()
            {
                break s;
            }
            assert!(t.elapsed() < Duration::from_secs(30), "{}", host.log());
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        store.delete(format!("fx/{hash}")).await.unwrap();
    });
    let w1 = worker_root(dir.path(), &nats, "w1");
    let w = start_worker(&w1, dir.path(), "w1");
    let job = wait_finished(&root, 1, 60, || host.log() + &w.log()).remove(0);
    assert_eq!(job["state"], "done", "{job:#}");
    assert_eq!(job["attempts"], 2, "{job:#}");
    let events = common::succeed(sluice().args(["job", "1", "--root"]).arg(&root));
    let events = String::from_utf8_lossy(&events.stdout);
    assert!(
        events.contains("cannot fetch the module from the farm"),
        "{events}"
    );
    assert_eq!(files_under(&root.join("out")).len(), 2);
}

/// With `shared_root` (every node mounts the root), sources go by path and outputs are staged
/// on it: the worker reads each source where it mounts the root and renders into a staging
/// folder there, the ingest node moves the outputs into place, and the object store never
/// holds a file.
#[test]
fn with_a_shared_root_sources_go_by_path() {
    let Some(bin) = tool("nats-server") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start(bin, dir.path());
    let (root, ingest_log) = ingest(dir.path(), &nats);
    mount_shared(&root, &root);
    let w1 = worker_root(dir.path(), &nats, "w1");
    mount_shared(&w1, &root);
    let w = start_worker(&w1, dir.path(), "w1");
    let host = start_ingest(&root, &ingest_log);
    let n = 4;
    for i in 0..n {
        let made = dir.path().join(format!("take{i}.wav"));
        programme_wav(&made, 2.0, 40 + i as u64);
        std::fs::rename(&made, root.join("inbox").join(format!("take{i}.wav"))).unwrap();
    }
    let js = wait_finished(&root, n, 60, || host.log());
    assert!(
        js.iter()
            .all(|j| j["state"] == "done" && j["ran_on"] == "w1"),
        "{js:#?}"
    );
    assert_eq!(files_under(&root.join("out")).len(), 2 * n);
    // No source ever went into the object store (the outputs' objects are deleted once in
    // place; what is left is nothing).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let names = rt.block_on(async {
        use futures_util::StreamExt;
        let client = async_nats::connect(nats.url()).await.unwrap();
        let js = async_nats::jetstream::new(client);
        let store = js.get_object_store("sluice-files").await.unwrap();
        let mut list = store.list().await.unwrap();
        let mut names = Vec::new();
        while let Some(o) = list.next().await {
            names.push(o.unwrap().name);
        }
        names
    });
    assert!(names.is_empty(), "{names:?}");
    assert!(!w.log().contains("failed"), "{}", w.log());
    assert_eq!(
        w.log().matches("the source on the shared root").count(),
        n,
        "{}",
        w.log()
    );
    assert_eq!(
        w.log().matches("staged on the shared root").count(),
        n,
        "{}",
        w.log()
    );
    // Every staging folder removed once its outputs were in place.
    let staging: Vec<_> = std::fs::read_dir(root.join(".sluice/farm-staging"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(staging.is_empty(), "{staging:?}");
}

/// With `shared_root`, the report names the source and outputs where the ingest node has them,
/// not where the worker mounts the shared root (here through a link to the root).
#[test]
fn with_a_shared_root_the_report_names_the_ingest_nodes_paths() {
    let Some(bin) = tool("nats-server") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start(bin, dir.path());
    let (root, ingest_log) = ingest(dir.path(), &nats);
    mount_shared(&root, &root);
    let mount = dir.path().join("mount");
    std::os::unix::fs::symlink(&root, &mount).unwrap();
    let w1 = worker_root(dir.path(), &nats, "w1");
    mount_shared(&w1, &mount);
    let made = dir.path().join("a.wav");
    programme_wav(&made, 2.0, 14);
    let w = start_worker(&w1, dir.path(), "w1");
    let host = start_ingest(&root, &ingest_log);
    std::fs::rename(&made, root.join("inbox/a.wav")).unwrap();
    let job = wait_finished(&root, 1, 60, || host.log() + &w.log()).remove(0);
    assert_eq!(job["state"], "done", "{job:#}");
    assert!(
        w.log().contains("the source on the shared root"),
        "{}",
        w.log()
    );
    let report = std::fs::read_to_string(root.join(job["report"].as_str().unwrap())).unwrap();
    let mount = mount.display().to_string();
    assert!(!report.contains(&mount), "{report}");
    assert!(!report.contains("farm-staging"), "{report}");
    let v: serde_json::Value = serde_json::from_str(&report).unwrap();
    assert_eq!(
        v["analysis"]["path"],
        root.join("inbox/a.wav").display().to_string(),
        "{v:#}"
    );
    // The worker judged the FLAC against the pipeline's own specification: the verdicts came
    // back with the report, and the warning names the output where it lands on the ingest
    // node.
    let qc = &v["export"]["outputs"][0]["qc"];
    assert_eq!(qc["spec"], "farm-broadcast", "{v:#}");
    assert_eq!(qc["passed"], false, "{qc:#}");
    // Its page came back with the outputs, naming the output by its path in the root.
    let page = std::fs::read_to_string(root.join("reports/a.flac.qc.html")).unwrap();
    assert!(page.contains("data-passed=\"false\""), "the page's verdict");
    assert!(
        page.contains("out/a.flac") && !page.contains(&mount) && !page.contains("farm-staging"),
        "the page names the output as the root does"
    );
    let warnings = v["warnings"].to_string();
    assert!(
        warnings.contains(&format!(
            "{}: fails Farm broadcast",
            root.join("out/a.flac").display()
        )),
        "{warnings}"
    );
}

/// A farm on a shared root through a worker killed while it renders into its staging folder
/// and the ingest node killed while results come in: every file once, the same bytes as one
/// machine's, no staging folder or temporary left, and no file ever in the object store.
#[test]
fn a_shared_root_farm_through_kills_leaves_one_output_each_and_no_staging() {
    let Some(bin) = tool("nats-server") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start(bin, dir.path());
    let (root, ingest_log) = ingest(dir.path(), &nats);
    mount_shared(&root, &root);
    let names = ["w1", "w2"];
    let roots: Vec<PathBuf> = names
        .iter()
        .map(|n| {
            let r = worker_root(dir.path(), &nats, n);
            mount_shared(&r, &root);
            r
        })
        .collect();
    let mut workers: Vec<Proc> = names
        .iter()
        .zip(&roots)
        .map(|(n, r)| start_worker(r, dir.path(), n))
        .collect();
    let mut host = start_ingest(&root, &ingest_log);
    let copies = dir.path().join("copies");
    std::fs::create_dir_all(&copies).unwrap();
    let n = 12;
    for i in 0..n {
        let name = format!("take{i:02}.wav");
        programme_wav(&copies.join(&name), 3.0, 300 + i as u64);
        let made = dir.path().join(&name);
        std::fs::copy(copies.join(&name), &made).unwrap();
        std::fs::rename(&made, root.join("inbox").join(&name)).unwrap();
    }
    let logs = farm_logs;
    let t = Instant::now();
    // w1 killed while it renders a job into its staging folder.
    let staging = root.join(".sluice/farm-staging");
    loop {
        let rendering = std::fs::read_dir(&staging).is_ok_and(|d| {
            d.flatten()
                .any(|e| e.file_name().to_string_lossy().contains(".w1."))
        });
        if rendering && workers[0].log().contains(": running (") {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "{}",
            logs(&host, &workers)
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    workers[0].kill();
    let mut ingest_killed = false;
    loop {
        let js = jobs(&root);
        let done = finished(&js);
        if js.len() == n && done == n {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(150),
            "{done} of {n}:\n{}",
            logs(&host, &workers)
        );
        if !ingest_killed && done >= 2 {
            ingest_killed = true;
            eprintln!("{:?}: {done} done: the ingest host is killed", t.elapsed());
            host.kill();
            host = start_ingest(&root, &ingest_log);
            workers[0] = start_worker(&roots[0], dir.path(), "w1");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(ingest_killed);
    eprintln!("{n} files in {:?}", t.elapsed());
    let js = jobs(&root);
    assert!(
        js.iter().all(|j| j["state"] == "done"),
        "{js:#?}\n{}",
        logs(&host, &workers)
    );
    let outputs = files_under(&root.join("out"));
    assert_eq!(outputs.len(), 2 * n, "{outputs:#?}");
    assert_eq!(files_under(&root.join("done")).len(), n);
    assert_no_temporaries(&root);
    let left: Vec<_> = std::fs::read_dir(&staging)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "staging left: {left:?}");
    assert!(
        logs(&host, &workers).contains("staged on the shared root"),
        "{}",
        logs(&host, &workers)
    );
    same_as_one_machine(dir.path(), &copies, &root, &outputs);
}

/// A worker whose mount of the shared root leads out of it through a link (a mistaken or
/// hostile mount: its `inbox` a link to a folder elsewhere holding the same bytes) reads
/// nothing there: the job fails with the reason and nothing is written.
#[test]
fn a_shared_source_through_a_link_out_of_the_workers_mount_is_refused() {
    let Some(bin) = tool("nats-server") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start(bin, dir.path());
    let (root, ingest_log) = ingest(dir.path(), &nats);
    // No retries: the refusal is the job's end at once.
    std::fs::write(
        root.join("pipelines/farm.toml"),
        PIPELINE.replacen("watch = \"inbox\"\n", "watch = \"inbox\"\nretries = 0\n", 1),
    )
    .unwrap();
    mount_shared(&root, &root);
    // The worker's "mount": its inbox a link to a folder outside it.
    let mount = dir.path().join("mount");
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(&mount).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, mount.join("inbox")).unwrap();
    let w1 = worker_root(dir.path(), &nats, "w1");
    mount_shared(&w1, &mount);
    let made = dir.path().join("a.wav");
    programme_wav(&made, 2.0, 11);
    std::fs::copy(&made, outside.join("a.wav")).unwrap();
    let w = start_worker(&w1, dir.path(), "w1");
    let host = start_ingest(&root, &ingest_log);
    std::fs::rename(&made, root.join("inbox/a.wav")).unwrap();
    let job = wait_finished(&root, 1, 60, || host.log() + &w.log()).remove(0);
    assert_eq!(job["state"], "failed", "{job:#}");
    let error = job["error"].as_str().unwrap();
    assert!(
        error.contains("on the shared root") && error.contains("w1"),
        "{error}"
    );
    eprintln!("the job: {error}");
    assert!(files_under(&root.join("out")).is_empty());
    assert!(files_under(&w1.join(".sluice/farm")).is_empty());
    assert!(files_under(&mount.join(".sluice/farm-staging")).is_empty());
    // The file outside is as it was, and the source stays where it arrived.
    assert!(outside.join("a.wav").is_file());
    assert!(root.join("inbox/a.wav").is_file());
}

/// A long job's progress on the farm reaches the ingest node's record while it runs (the
/// worker reports about once a second), and ends at 1 when it is done.
#[test]
fn a_job_on_the_farm_shows_its_progress_on_the_ingest_node() {
    let Some(bin) = tool("nats-server") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start(bin, dir.path());
    let (root, ingest_log) = ingest(dir.path(), &nats);
    let w1 = worker_root(dir.path(), &nats, "w1");
    let w = start_worker(&w1, dir.path(), "w1");
    let host = start_ingest(&root, &ingest_log);
    let made = dir.path().join("long.wav");
    programme_wav(&made, 240.0, 12);
    std::fs::rename(&made, root.join("inbox/long.wav")).unwrap();
    let t = Instant::now();
    let mut seen = Vec::new();
    let job = loop {
        let js = jobs(&root);
        if let Some(j) = js.first() {
            if j["state"] == "running" {
                seen.push(j["progress"].as_f64().unwrap());
            } else if finished(&js) == 1 {
                break j.clone();
            }
        }
        assert!(
            t.elapsed() < Duration::from_secs(180),
            "{js:#?}\n{}\n{}",
            host.log(),
            w.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(job["state"], "done", "{job:#}");
    assert_eq!(job["progress"], 1.0, "{job:#}");
    assert!(
        seen.iter().any(|p| *p > 0.0 && *p < 1.0),
        "no progress while it ran on the farm: {seen:?}"
    );
    assert!(
        seen.windows(2).all(|w| w[0] <= w[1]),
        "progress went back: {seen:?}"
    );
    eprintln!("progress seen on the ingest node: {seen:?}");
}

/// Compare and match steps name the ingest node's reference library: a worker (whose own
/// library is empty) renders with the profiles sent with the job, so the output and the
/// report's comparison are the single machine's with the same library; so are its outputs in
/// every delivery codec.
#[test]
fn compare_and_match_steps_use_the_ingest_nodes_library() {
    let Some(bin) = tool("nats-server") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start(bin, dir.path());
    let (root, ingest_log) = ingest(dir.path(), &nats);
    let single = dir.path().join("single");
    std::fs::create_dir_all(single.join("pipelines")).unwrap();
    let pipeline = r#"name = "farm"
watch = "inbox"
[[step]]
match = { genre = "house", max_gain_db = 12 }
[[step]]
compare = { genre = "house", level = "gentle" }
[[output]]
path = "out/{stem}.flac"
bit_depth = 16
[[output]]
path = "out/{stem}.opus"
[[output]]
path = "out/aac/{stem}.m4a"
[[output]]
path = "out/alac/{stem}.m4a"
format = "alac"
"#;
    let mut refs = Vec::new();
    for k in 0..2 {
        let r = dir.path().join(format!("ref{k}.wav"));
        programme_wav(&r, 12.0, 200 + k);
        refs.push(r);
    }
    for r in [&root, &single] {
        std::fs::write(r.join("pipelines/farm.toml"), pipeline).unwrap();
        common::succeed(
            sluice()
                .args(["ref", "add"])
                .args(&refs)
                .args(["--genre", "house", "--root"])
                .arg(r),
        );
    }
    let w1 = worker_root(dir.path(), &nats, "w1");
    let w = start_worker(&w1, dir.path(), "w1");
    let host = start_ingest(&root, &ingest_log);
    let copy = dir.path().join("copy.wav");
    programme_wav(&copy, 6.0, 13);
    std::fs::copy(&copy, root.join("inbox/a.wav")).unwrap();
    let job = wait_finished(&root, 1, 60, || host.log() + &w.log()).remove(0);
    assert_eq!(job["state"], "done", "{job:#}");
    assert_eq!(job["ran_on"], "w1", "{job:#}");
    let a = dir.path().join("a.wav");
    std::fs::rename(&copy, &a).unwrap();
    let out = common::succeed(
        sluice()
            .args(["run", "farm", "--json", "--root"])
            .arg(&single)
            .arg(&a),
    );
    let local: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // Every codec's output (FLAC, Opus, AAC and ALAC in M4A) is the single machine's, byte
    // for byte.
    for out in [
        "out/a.flac",
        "out/a.opus",
        "out/aac/a.m4a",
        "out/alac/a.m4a",
    ] {
        assert_eq!(
            common::blake3_hex(&root.join(out)),
            common::blake3_hex(&single.join(out)),
            "the matched output {out} differs from the single machine's"
        );
    }
    let report_of = |root: &Path, rel: &serde_json::Value| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(root.join(rel.as_str().unwrap())).unwrap()).unwrap()
    };
    let farm = report_of(&root, &job["report"]);
    let one = report_of(&single, &local[0]["report"]);
    assert!(farm["comparison"].is_object(), "{farm:#}");
    assert_eq!(farm["comparison"], one["comparison"]);
}

/// A pipeline edited while its job is out on the farm (an output added): the result, made
/// with the version sent, no longer fits; the job fails with that reason rather than placing
/// outputs the edited pipeline does not plan, and `sluice retry` runs it as it is now.
#[test]
fn a_pipeline_edited_while_its_job_is_out_fails_it_with_the_reason() {
    let Some(bin) = tool("nats-server") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start(bin, dir.path());
    let (root, host) = ingest_with_a_file(dir.path(), &nats, 2.0, 9);
    let t = Instant::now();
    while jobs(&root).first().is_none_or(|j| j["ran_on"] != "?") {
        assert!(t.elapsed() < Duration::from_secs(30), "{}", host.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    let edited = PIPELINE.to_string() + "\n[[output]]\npath = \"out/wav/{stem}.wav\"\n";
    std::fs::write(root.join("pipelines/farm.toml"), edited).unwrap();
    let t = Instant::now();
    while !host.log().contains("pipelines changed: reloading") {
        assert!(t.elapsed() < Duration::from_secs(30), "{}", host.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    let w1 = worker_root(dir.path(), &nats, "w1");
    let _w = start_worker(&w1, dir.path(), "w1");
    let job = wait_finished(&root, 1, 60, || host.log()).remove(0);
    assert_eq!(job["state"], "failed", "{job:#}");
    let error = job["error"].as_str().unwrap();
    assert!(
        error.contains("changed while the job was out on the farm"),
        "{error}"
    );
    assert!(files_under(&root.join("out")).is_empty());
    assert!(
        root.join("inbox/a.wav").is_file(),
        "the source stays where it arrived"
    );
    assert_no_temporaries(&root);
}

/// An album folder on a farm: the ingest node holds the folder until it has settled as a
/// whole and measures it; the album's loudness travels in each job's message, and the worker
/// (which sees one file) gives every file the album's gain.
#[test]
fn an_album_folder_on_a_farm_gets_one_gain() {
    let Some(bin) = tool("nats-server") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start(bin, dir.path());
    let (root, ingest_log) = ingest(dir.path(), &nats);
    std::fs::write(
        root.join("pipelines/farm.toml"),
        "name = \"farm\"\nwatch = \"inbox\"\n[[step]]\nnormalize = { loudness_lufs = -20, true_peak_dbtp = -1, album = \"album\" }\n[[output]]\npath = \"out/{folder}/{stem}.flac\"\n",
    )
    .unwrap();
    let w1 = worker_root(dir.path(), &nats, "w1");
    let _w = start_worker(&w1, dir.path(), "w1");
    let host = start_ingest(&root, &ingest_log);
    let made = dir.path().join("Album");
    std::fs::create_dir_all(&made).unwrap();
    let mut before = Vec::new();
    for (i, gain) in [0.3f32, 0.1, 0.03].iter().enumerate() {
        let p = made.join(format!("t{i}.wav"));
        let planes: Vec<Vec<f32>> = sluice_core::signal::programme(48_000, 2, 48_000 * 4, i as u64)
            .into_iter()
            .map(|c| c.into_iter().map(|x| x * gain).collect())
            .collect();
        common::write_wav(&p, &planes, 48_000, 24);
        before.push(common::loudness(&p).0);
    }
    std::fs::rename(&made, root.join("inbox/Album")).unwrap();
    let js = wait_finished(&root, 3, 90, || host.log());
    for j in &js {
        assert_eq!(j["state"], "done", "{j:#?}\n{}", host.log());
        assert_eq!(j["ran_on"], "w1", "{j:#?}");
        assert_eq!(j["album"]["tracks"], 3, "{j:#?}");
    }
    let moved: Vec<f64> = (0..3)
        .map(|i| common::loudness(&root.join(format!("out/Album/t{i}.flac"))).0 - before[i])
        .collect();
    for m in &moved {
        assert!((m - moved[0]).abs() < 0.05, "gains differ: {moved:?}");
    }
}
