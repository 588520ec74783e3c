//! The host's commands besides `watch`: `run`, `jobs`, `job`, `retry`, `check`, `clean`,
//! `stats`, and the default root.

use crate::config::{CONFIG_FILE, Config};
use crate::job::{self, Ctx};
use crate::pipeline::{self, Defaults, Diagnostic, Pipeline, SourceAction};
use crate::store::{JobRecord, JobState, Store};
use anyhow::{Context, Result, anyhow, bail};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `println!` that returns the write's error instead of panicking: a reader that goes away
/// early (`sluice jobs | head`) ends the command quietly (see `main`).
macro_rules! outln {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($t)*)?
    }};
}

/// The example pipelines, built in: a new root gets them.
pub const EXAMPLES: &[(&str, &str)] = &[
    ("podcast.toml", include_str!("../../pipelines/podcast.toml")),
    (
        "streaming-master.toml",
        include_str!("../../pipelines/streaming-master.toml"),
    ),
    (
        "broadcast.toml",
        include_str!("../../pipelines/broadcast.toml"),
    ),
    (
        "analysis.toml",
        include_str!("../../pipelines/analysis.toml"),
    ),
    ("archive.toml", include_str!("../../pipelines/archive.toml")),
];

const DEFAULT_CONFIG: &str = "# sluice configuration. Every key is optional; the environment overrides them\n\
# (SLUICE_WORKERS, SLUICE_SETTLE_SECONDS, SLUICE_RESCAN_SECONDS, SLUICE_TARGET_LUFS,\n\
# SLUICE_TARGET_TRUE_PEAK).\n\
\n\
# workers = 2                  # jobs at once (default: the number of cores)\n\
# settle_seconds = 2           # a file must keep its size and time this long before it is taken\n\
# rescan_seconds = 30          # how often the watch folders are listed in full\n\
# target_lufs = -16            # what `normalize = {}` aims at\n\
# target_true_peak_dbtp = -1\n\
# pipelines = \"pipelines\"     # the pipelines folder, inside the root\n\
# quarantine = \"failed\"       # where sources that cannot be processed go\n\
# log_files = 7                # daily log files kept in .sluice/logs\n";

/// Make `root` ready to use when it has no pipelines folder yet: configuration, the example
/// pipelines and their folders. Returns whether it did.
pub fn init_root(root: &Path) -> Result<bool> {
    if root.join("pipelines").exists() || root.join(CONFIG_FILE).exists() {
        return Ok(false);
    }
    let mk = |p: PathBuf| std::fs::create_dir_all(&p).with_context(|| format!("{}", p.display()));
    mk(root.join("pipelines"))?;
    for d in ["outbox", "done", "failed", "reports", "archive", "effects"] {
        mk(root.join(d))?;
    }
    std::fs::write(root.join(CONFIG_FILE), DEFAULT_CONFIG)
        .with_context(|| format!("{}", root.join(CONFIG_FILE).display()))?;
    for (name, text) in EXAMPLES {
        std::fs::write(root.join("pipelines").join(name), text)
            .with_context(|| format!("{}", root.join("pipelines").join(name).display()))?;
        mk(root.join("inbox").join(name.trim_end_matches(".toml")))?;
    }
    Ok(true)
}

fn defaults<'a>(cfg: &Config, effects: &'a crate::effects::Catalog) -> Defaults<'a> {
    Defaults {
        target_lufs: cfg.target_lufs,
        target_true_peak_dbtp: cfg.target_true_peak_dbtp,
        effects: Some(effects),
    }
}

/// `sluice check [PATH]`: a pipeline file, a pipelines folder, or a root.
pub fn check(root: &Path, path: Option<&Path>) -> Result<ExitCode> {
    let (ok, problems) = match path {
        Some(p) if p.is_file() => {
            let cfg = Config::load(root).unwrap_or_else(|_| Config::defaults(root));
            let fx = cfg.effects()?;
            pipeline::load_files(&[p.to_path_buf()], defaults(&cfg, &fx), &Default::default())
        }
        Some(p) if p.is_dir() => {
            let (cfg, dir) = if p.join(CONFIG_FILE).exists() || p.join("pipelines").is_dir() {
                let cfg = Config::load(p)?;
                let d = cfg.pipelines_dir.clone();
                (cfg, d)
            } else {
                (
                    Config::load(root).unwrap_or_else(|_| Config::defaults(root)),
                    p.to_path_buf(),
                )
            };
            let fx = cfg.effects()?;
            pipeline::load_dir(&dir, defaults(&cfg, &fx))
        }
        Some(p) => bail!("{}: no such file or folder", p.display()),
        None => {
            let cfg = Config::load(root)?;
            let fx = cfg.effects()?;
            pipeline::load_dir(&cfg.pipelines_dir, defaults(&cfg, &fx))
        }
    };
    for d in &problems {
        eprintln!("{d}");
    }
    for p in &ok {
        outln!(
            "ok  {} ({}{}): {} step(s), {} output(s), watching {}",
            p.name,
            p.file.display(),
            p.description
                .as_ref()
                .map(|d| format!(", \"{d}\""))
                .unwrap_or_default(),
            p.steps.len(),
            p.outputs.len(),
            p.watch
                .iter()
                .map(|w| w.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if problems.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("{} problem(s)", problems.len());
        Ok(ExitCode::from(1))
    }
}

fn fmt_time(ms: Option<i64>) -> String {
    ms.and_then(|m| jiff::Timestamp::from_millisecond(m).ok())
        .map(|t| {
            t.to_zoned(jiff::tz::TimeZone::system())
                .strftime("%Y-%m-%d %H:%M:%S")
                .to_string()
        })
        .unwrap_or_else(|| "-".into())
}

/// `sluice jobs`.
pub fn jobs(cfg: &Config, state: Option<&str>, json: bool) -> Result<ExitCode> {
    let state = state
        .map(|s| {
            JobState::parse(s)
                .ok_or_else(|| anyhow!("--state {s}: queued, running, done, failed or quarantined"))
        })
        .transpose()?;
    let store = Store::open(&cfg.db_path(), false)?;
    let list = store.jobs(state)?;
    if json {
        outln!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(ExitCode::SUCCESS);
    }
    if list.is_empty() {
        outln!("no jobs");
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        "{:>6}  {:<11} {:>5}  {:<18} {:<19}  input",
        "id",
        "state",
        "done",
        "pipeline",
        "finished"
    );
    for j in &list {
        outln!(
            "{:>6}  {:<11} {:>4.0}%  {:<18} {:<19}  {}{}",
            j.id,
            j.state.name(),
            j.progress * 100.0,
            j.pipeline,
            fmt_time(j.finished_ms),
            j.input.display(),
            j.error
                .as_ref()
                .map(|e| format!("\n        {e}"))
                .unwrap_or_default()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `sluice job ID`.
pub fn job(cfg: &Config, id: u64, json: bool) -> Result<ExitCode> {
    let store = Store::open(&cfg.db_path(), false)?;
    let j = store.job(id)?.ok_or_else(|| anyhow!("no job {id}"))?;
    let events = store.events(Some(id))?;
    if json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"job": j, "events": events}))?
        );
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        "job {}  {}  ({} attempt(s){})",
        j.id,
        j.state.name(),
        j.attempts,
        if j.interrupted > 0 {
            format!(
                ", {} cut short by the host stopping, run again",
                j.interrupted
            )
        } else {
            String::new()
        }
    );
    outln!("  pipeline  {} (version {})", j.pipeline, j.pipeline_hash);
    outln!(
        "  input     {}  [{}]",
        j.input.display(),
        &j.content_hash[..16.min(j.content_hash.len())]
    );
    outln!("  created   {}", fmt_time(Some(j.created_ms)));
    outln!("  started   {}", fmt_time(j.started_ms));
    outln!("  finished  {}", fmt_time(j.finished_ms));
    if let Some(e) = &j.error {
        outln!("  error     {e}");
    }
    for o in &j.outputs {
        outln!(
            "  output    {}  {} bytes  [{}]",
            o.path.display(),
            o.bytes,
            &o.hash[..16]
        );
    }
    if let Some(r) = &j.report {
        outln!("  report    {}", r.display());
    }
    if let Some(s) = &j.source_now {
        outln!("  source    now at {}", s.display());
    }
    outln!("  events");
    for e in events {
        outln!(
            "    {}  {:<16} {}",
            fmt_time(Some(e.time_ms)),
            e.kind,
            e.message
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `sluice retry ID... | --failed`.
pub fn retry(cfg: &Config, ids: &[u64], failed: bool) -> Result<ExitCode> {
    let store = Store::open(&cfg.db_path(), false)?;
    let mut ids = ids.to_vec();
    if failed {
        for s in [JobState::Failed, JobState::Quarantined] {
            ids.extend(store.jobs(Some(s))?.iter().map(|j| j.id));
        }
    }
    if ids.is_empty() {
        outln!("nothing to retry");
        return Ok(ExitCode::SUCCESS);
    }
    let done = store.retry(&ids)?;
    for id in &ids {
        if done.contains(id) {
            outln!("job {id}: queued again");
        } else {
            eprintln!("job {id}: not failed or quarantined (or no such job): left alone");
        }
    }
    Ok(if done.len() == ids.len() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Parse `30d`, `12h`, `90m`, `45s`, `2w`.
pub fn parse_age(s: &str) -> Result<std::time::Duration> {
    let s = s.trim();
    let (num, unit) = s.split_at(
        s.find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(s.len()),
    );
    let n: f64 = num
        .parse()
        .map_err(|_| anyhow!("{s}: write an age like 30d, 12h, 90m, 45s or 2w"))?;
    let secs = match unit {
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        "d" | "" => 86_400.0,
        "w" => 7.0 * 86_400.0,
        _ => bail!("{s}: the unit is s, m, h, d or w"),
    };
    Ok(std::time::Duration::from_secs_f64(n * secs))
}

/// `sluice clean --older-than AGE [--dry-run]`: the outputs, reports and moved sources of jobs
/// finished before then, and the folders they leave empty. Job records stay.
pub fn clean(cfg: &Config, older_than: Option<&str>, dry_run: bool) -> Result<ExitCode> {
    let age = match older_than {
        Some(a) => parse_age(a)?,
        // Only a dry run comes without an age (the command line insists): every finished job.
        None => std::time::Duration::ZERO,
    };
    let cutoff = crate::store::now_ms() - age.as_millis() as i64;
    let store = Store::open(&cfg.db_path(), false)?;
    let mut files = Vec::new();
    for j in store.jobs(Some(JobState::Done))? {
        if j.finished_ms.is_some_and(|f| f < cutoff) {
            files.extend(j.outputs.iter().map(|o| o.path.clone()));
            files.extend(j.report.clone());
            files.extend(j.source_now.clone());
        }
    }
    let (mut n, mut bytes) = (0u64, 0u64);
    let mut dirs = std::collections::BTreeSet::new();
    // What goes (or would go): a dry run counts the folders a real run would leave empty.
    let mut gone = std::collections::HashSet::new();
    for rel in files {
        // Never through a link out of the root.
        let p = match crate::confine::resolve(&cfg.root, &rel) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("skipped: {e}");
                continue;
            }
        };
        let Ok(m) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if !m.is_file() {
            continue;
        }
        outln!(
            "{} {}",
            if dry_run { "would remove" } else { "remove" },
            rel.display()
        );
        if !dry_run {
            std::fs::remove_file(&p).with_context(|| format!("{}", p.display()))?;
        }
        n += 1;
        bytes += m.len();
        gone.insert(p.clone());
        let mut d = rel.parent();
        while let Some(x) = d.filter(|x| !x.as_os_str().is_empty()) {
            dirs.insert(x.to_path_buf());
            d = x.parent();
        }
    }
    // Deepest first; folders pipelines watch stay.
    let fx = cfg.effects()?;
    let watched: Vec<PathBuf> = pipeline::load_dir(&cfg.pipelines_dir, defaults(cfg, &fx))
        .0
        .iter()
        .flat_map(|p| p.watch.clone())
        .collect();
    let mut removed_dirs = 0;
    for d in dirs.iter().rev() {
        if watched.iter().any(|w| w.starts_with(d)) {
            continue;
        }
        let p = cfg.root.join(d);
        let empty =
            std::fs::read_dir(&p).is_ok_and(|r| r.flatten().all(|e| gone.contains(&e.path())));
        if empty {
            gone.insert(p.clone());
            removed_dirs += 1;
            if !dry_run {
                let _ = std::fs::remove_dir(&p);
            }
        }
    }
    outln!(
        "{} {n} file(s), {:.1} MB, and {removed_dirs} empty folder(s){}",
        if dry_run { "would remove" } else { "removed" },
        bytes as f64 / 1e6,
        if dry_run {
            " (dry run: nothing removed)"
        } else {
            ""
        }
    );
    Ok(ExitCode::SUCCESS)
}

/// `sluice stats`: what the root holds and the jobs by state.
pub fn stats(cfg: &Config, json: bool) -> Result<ExitCode> {
    #[derive(Default, serde::Serialize)]
    struct Kind {
        files: u64,
        bytes: u64,
    }
    let mut by_type: BTreeMap<String, Kind> = BTreeMap::new();
    let (mut files, mut bytes) = (0u64, 0u64);
    type Stamp = Option<(i128, PathBuf)>;
    let (mut oldest, mut newest): (Stamp, Stamp) = (None, None);
    let mut stack = vec![cfg.root.clone()];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            let Ok(m) = e.metadata() else { continue };
            let p = e.path();
            if m.is_dir() {
                if p != cfg.state_dir() {
                    stack.push(p);
                }
                continue;
            }
            if !m.is_file() {
                continue;
            }
            files += 1;
            bytes += m.len();
            let ext = p
                .extension()
                .map(|x| x.to_string_lossy().to_ascii_lowercase())
                .unwrap_or_else(|| "(none)".into());
            let k = by_type.entry(ext).or_default();
            k.files += 1;
            k.bytes += m.len();
            let t = m
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_millis() as i128);
            let rel = p.strip_prefix(&cfg.root).unwrap_or(&p).to_path_buf();
            if oldest.as_ref().is_none_or(|(o, _)| t < *o) {
                oldest = Some((t, rel.clone()));
            }
            if newest.as_ref().is_none_or(|(o, _)| t > *o) {
                newest = Some((t, rel));
            }
        }
    }
    let mut by_state: BTreeMap<&str, u64> = JobState::ALL.iter().map(|s| (s.name(), 0)).collect();
    let db = cfg.db_path();
    let mut schema = None;
    let indexed = if db.exists() {
        let store = Store::open(&db, false)?;
        for j in store.jobs(None)? {
            *by_state.entry(j.state.name()).or_default() += 1;
        }
        schema = Some(store.schema_version()?);
        store.file_paths()?.len()
    } else {
        0
    };
    let when = |x: &Stamp| {
        x.as_ref()
            .map(|(t, p)| (fmt_time(Some(*t as i64)), p.display().to_string()))
    };
    if json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "root": cfg.root,
                "files": files,
                "bytes": bytes,
                "by_type": by_type,
                "oldest": when(&oldest),
                "newest": when(&newest),
                "indexed_files": indexed,
                "jobs": by_state,
                "state_schema": schema,
            }))?
        );
        return Ok(ExitCode::SUCCESS);
    }
    outln!("{}", cfg.root.display());
    outln!("  files     {files} ({:.1} MB)", bytes as f64 / 1e6);
    for (t, k) in &by_type {
        outln!(
            "    {t:<8} {:>6} file(s) {:>10.1} MB",
            k.files,
            k.bytes as f64 / 1e6
        );
    }
    if let (Some(o), Some(n)) = (when(&oldest), when(&newest)) {
        outln!("  oldest    {}  {}", o.0, o.1);
        outln!("  newest    {}  {}", n.0, n.1);
    }
    outln!("  indexed   {indexed} file(s) in watch folders");
    if let Some(v) = schema {
        outln!("  state     {} (schema {v})", db.display());
    }
    outln!(
        "  jobs      {}",
        by_state
            .iter()
            .map(|(s, n)| format!("{s} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(ExitCode::SUCCESS)
}

/// Find a pipeline by name in the root's pipelines, or by the path of its file.
fn find_pipeline(cfg: &Config, fx: &crate::effects::Catalog, name: &str) -> Result<Pipeline> {
    let as_path = Path::new(name);
    let (ok, problems) = if as_path.extension().is_some_and(|e| e == "toml") && as_path.is_file() {
        pipeline::load_files(
            &[as_path.to_path_buf()],
            defaults(cfg, fx),
            &Default::default(),
        )
    } else {
        pipeline::load_dir(&cfg.pipelines_dir, defaults(cfg, fx))
    };
    if let Some(p) = ok.into_iter().find(|p| p.name == name || p.file == as_path) {
        return Ok(p);
    }
    let mine: Vec<&Diagnostic> = problems
        .iter()
        .filter(|d| d.file.file_stem().is_some_and(|s| s == name) || d.file == as_path)
        .collect();
    if !mine.is_empty() {
        for d in mine {
            eprintln!("{d}");
        }
        bail!("pipeline {name} is invalid");
    }
    bail!(
        "no pipeline {name} in {} (`sluice check` lists them)",
        cfg.pipelines_dir.display()
    )
}

/// `sluice run PIPELINE FILE...`: the pipeline over these files now, with progress bars; the
/// sources are left where they are.
pub fn run(cfg: &Config, pipeline: &str, files: &[PathBuf], json: bool) -> Result<ExitCode> {
    let fx = cfg.effects()?;
    let mut p = find_pipeline(cfg, &fx, pipeline)?;
    p.source = SourceAction::Keep;
    let store = Store::open(&cfg.db_path(), true)?;
    let ctx = Ctx {
        cfg,
        store: &store,
        effects: &fx,
    };
    let multi = indicatif::MultiProgress::new();
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        multi.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let total = indicatif::ProgressBar::new(files.len() as u64).with_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} files  {elapsed}  {msg}")
            .expect("valid template"),
    );
    let total = multi.add(total);
    let results: Vec<Result<JobRecord>> = crate::parallel::map(files, cfg.workers, |f| {
        let abs = std::path::absolute(f).with_context(|| format!("{}", f.display()))?;
        let hash = job::hash_file(&abs).with_context(|| format!("{}", abs.display()))?;
        let input = abs
            .strip_prefix(&cfg.root)
            .map(Path::to_path_buf)
            .unwrap_or(abs);
        let rec = store.add_running_job(&p.name, &p.hash, input, hash)?;
        let r = job::run(&ctx, &p, rec);
        total.inc(1);
        total.set_message(format!("{}: {}", f.display(), r.state.name()));
        Ok(r)
    });
    total.finish_and_clear();
    let mut failed = 0;
    let mut out = Vec::new();
    for (f, r) in files.iter().zip(results) {
        match r {
            Ok(j) => {
                if j.state != JobState::Done {
                    failed += 1;
                }
                if !json {
                    match j.state {
                        JobState::Done => {
                            outln!("{}: job {} done", f.display(), j.id);
                            // Each output's loudness as measured while it was written, and
                            // the job's warnings, from its report.
                            let report = j
                                .report
                                .as_ref()
                                .and_then(|r| std::fs::read(cfg.root.join(r)).ok())
                                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
                            let measured = report
                                .as_ref()
                                .and_then(|r| r["export"]["outputs"].as_array().cloned())
                                .unwrap_or_default();
                            for (i, o) in j.outputs.iter().enumerate() {
                                let l = &measured.get(i).map(|m| &m["loudness"]);
                                let loudness = match l.map(|l| {
                                    (l["integrated_lufs"].as_f64(), l["true_peak_dbtp"].as_f64())
                                }) {
                                    Some((Some(i), Some(tp))) => {
                                        format!("  ({i:.1} LUFS, true peak {tp:.1} dBTP)")
                                    }
                                    _ => String::new(),
                                };
                                outln!("  → {}{loudness}", cfg.root.join(&o.path).display());
                            }
                            for w in report
                                .as_ref()
                                .and_then(|r| r["warnings"].as_array().cloned())
                                .unwrap_or_default()
                            {
                                outln!("  warning: {}", w.as_str().unwrap_or_default());
                            }
                        }
                        s => outln!(
                            "{}: job {} {}: {}",
                            f.display(),
                            j.id,
                            s.name(),
                            j.error.clone().unwrap_or_default()
                        ),
                    }
                }
                out.push(serde_json::to_value(&j)?);
            }
            Err(e) => {
                failed += 1;
                eprintln!("{}: {e:#}", f.display());
                out.push(serde_json::json!({"path": f, "error": format!("{e:#}")}));
            }
        }
    }
    if json {
        outln!("{}", serde_json::to_string_pretty(&out)?);
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `sluice effects list`: the effects a root can use (built in and in its effects folder), and
/// the modules that were refused.
pub fn effects_list(cfg: &Config, json: bool) -> Result<ExitCode> {
    let fx = cfg.effects()?;
    if json {
        let list: Vec<serde_json::Value> = fx
            .effects
            .values()
            .map(|e| {
                serde_json::json!({
                    "name": e.effect.descriptor.name,
                    "version": e.effect.descriptor.version,
                    "description": e.effect.descriptor.description,
                    "origin": e.origin.to_string(),
                    "hash": e.effect.hash,
                })
            })
            .collect();
        let refused: Vec<serde_json::Value> = fx
            .refused
            .iter()
            .map(|(w, why)| serde_json::json!({"module": w, "error": why}))
            .collect();
        outln!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"effects": list, "refused": refused})
            )?
        );
        return Ok(ExitCode::SUCCESS);
    }
    for e in fx.effects.values() {
        let d = &e.effect.descriptor;
        outln!(
            "{:<12} {:<8} {:<10} {}",
            d.name,
            d.version,
            match &e.origin {
                crate::effects::Origin::Builtin => "built in".to_string(),
                o => o.to_string(),
            },
            d.description
        );
    }
    for (w, why) in &fx.refused {
        eprintln!("refused: {w}: {why}");
    }
    Ok(ExitCode::SUCCESS)
}

/// `sluice effects info NAME`: an effect's descriptor.
pub fn effects_info(cfg: &Config, name: &str, json: bool) -> Result<ExitCode> {
    let fx = cfg.effects()?;
    let e = fx
        .get(name)
        .ok_or_else(|| anyhow!("no effect {name:?} (sluice effects list shows them)"))?;
    let d = &e.effect.descriptor;
    if json {
        outln!("{}", serde_json::to_string_pretty(d)?);
        return Ok(ExitCode::SUCCESS);
    }
    outln!("{} {} ({})", d.name, d.version, e.origin);
    if !d.description.is_empty() {
        outln!("  {}", d.description);
    }
    outln!(
        "  channels up to {}; tail up to {} s; module {}",
        d.max_channels,
        d.tail_seconds,
        &e.effect.hash[..16]
    );
    for p in &d.params {
        let range = match &p.choices {
            Some(c) => c.join(" | "),
            None => format!("{} to {} {}", p.min, p.max, p.unit),
        };
        let default = match &p.choices {
            Some(c) => c[p.default as usize].clone(),
            None => p.default.to_string(),
        };
        outln!("  {:<14} {:<22} {range}  (default {default})", p.id, p.name);
    }
    Ok(ExitCode::SUCCESS)
}

/// `sluice effects test NAME [KEY=VALUE...]`: an impulse and a sweep through the effect, and
/// its speed: latency, gain and CPU time per second of audio.
pub fn effects_test(cfg: &Config, name: &str, params: &[String], rate: u32) -> Result<ExitCode> {
    use crate::effects::{Instance, Limits};
    let fx = cfg.effects()?;
    let e = fx
        .get(name)
        .ok_or_else(|| anyhow!("no effect {name:?} (sluice effects list shows them)"))?;
    let d = &e.effect.descriptor;
    let channels = d.max_channels.min(2) as usize;
    let mut values = Vec::new();
    for kv in params {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| anyhow!("{kv}: give parameters as KEY=VALUE"))?;
        let tv = v
            .parse::<f64>()
            .map(toml::Value::Float)
            .unwrap_or_else(|_| toml::Value::String(v.to_string()));
        let (i, x) = d
            .resolve(k, &tv)
            .map_err(|m| anyhow!("effect {name}: {m}"))?;
        values.push((i, x));
    }
    let block = 512usize;
    let make = || -> Result<Instance> {
        let mut inst = Instance::new(
            fx.runtime(),
            &e.effect,
            rate,
            channels,
            block,
            Limits::default(),
        )?;
        for (i, p) in d.params.iter().enumerate() {
            let v = values
                .iter()
                .find(|(j, _)| *j == i)
                .map_or(p.default, |(_, v)| *v);
            inst.set_param(i, v)?;
        }
        Ok(inst)
    };
    let run = |inst: &mut Instance, input: &[f32]| -> Result<Vec<f32>> {
        let mut out = Vec::with_capacity(input.len());
        for chunk in input.chunks(block) {
            let mut planes: Vec<Vec<f32>> = vec![chunk.to_vec(); channels];
            let mut views: Vec<&mut [f32]> = planes.iter_mut().map(|p| p.as_mut_slice()).collect();
            inst.process(&mut views)?;
            out.extend_from_slice(&planes[0]);
        }
        Ok(out)
    };
    let mut inst = make()?;
    let latency = inst.latency()?;
    // An impulse: where its response peaks.
    let mut imp = vec![0.0f32; rate as usize + latency];
    imp[0] = 1.0;
    let resp = run(&mut inst, &imp)?;
    let (peak_at, peak) =
        resp.iter().enumerate().fold(
            (0, 0.0f32),
            |a, (i, v)| if v.abs() > a.1 { (i, v.abs()) } else { a },
        );
    // A logarithmic sweep, 20 Hz to 20 kHz over 5 s at -12 dBFS: the gain it sees.
    let mut inst = make()?;
    let f1 = (20_000.0f64).min(f64::from(rate) * 0.45);
    let sweep = sluice_core::signal::log_sweep(rate, 20.0, f1, 0.25, rate as usize * 5);
    let out = run(&mut inst, &sweep)?;
    let rms =
        |x: &[f32]| (x.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>() / x.len() as f64).sqrt();
    let gain_db = 20.0 * (rms(&out) / rms(&sweep)).log10();
    // Speed: 10 s of noise in 512-frame blocks.
    let mut inst = make()?;
    let noise = sluice_core::signal::noise(0x1234_5678, 0.25, rate as usize * 10);
    let t = std::time::Instant::now();
    run(&mut inst, &noise)?;
    let took = t.elapsed().as_secs_f64();
    outln!(
        "{} {} at {rate} Hz, {channels} channel(s), blocks of {block}",
        d.name,
        d.version
    );
    outln!(
        "  latency       {latency} frames ({:.2} ms)",
        latency as f64 * 1000.0 / f64::from(rate)
    );
    outln!("  impulse       peak {:.3} at frame {peak_at}", peak);
    outln!(
        "  sweep gain    {gain_db:+.2} dB (20 Hz to {:.0} Hz at -12 dBFS)",
        f1
    );
    outln!(
        "  CPU           {:.2} ms per second of audio ({:.0}x real time)",
        took * 100.0,
        10.0 / took
    );
    Ok(ExitCode::SUCCESS)
}
