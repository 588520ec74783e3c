//! The command line's printer: every command's result as text, or as JSON with `--json`. The
//! commands themselves (`sluice_host::commands`) return data and print nothing.
//!
//! Writes return their error instead of panicking: a reader that goes away early
//! (`sluice jobs | head`) ends the command quietly (see `main`).

use anyhow::Result;
use sluice_host::commands::{
    Checked, Cleaned, EffectInfo, EffectList, EffectTest, JobDetail, Retried, RunOutcome, Stats,
    local_time,
};
use sluice_host::store::{JobRecord, JobState};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

type Out = std::io::StdoutLock<'static>;

/// `value` as pretty JSON when `json`, else as `text` writes it.
fn emit<T: serde::Serialize + ?Sized>(
    json: bool,
    value: &T,
    text: impl FnOnce(&mut Out, &T) -> std::io::Result<()>,
) -> Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, value)?;
        writeln!(out)?;
    } else {
        text(&mut out, value)?;
    }
    out.flush()?;
    Ok(())
}

/// `sluice check`: pipelines that load on stdout, problems on stderr; exit 1 with problems.
pub fn check(c: &Checked) -> Result<ExitCode> {
    for d in &c.problems {
        eprintln!("{d}");
    }
    emit(false, c.ok.as_slice(), |out, ok| {
        for p in ok {
            writeln!(
                out,
                "ok  {} ({}{}): {} step(s), {} output(s), watching {}",
                p.name,
                p.file.display(),
                p.description
                    .as_ref()
                    .map(|d| format!(", \"{d}\""))
                    .unwrap_or_default(),
                p.steps,
                p.outputs,
                p.watch
                    .iter()
                    .map(|w| w.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )?;
        }
        Ok(())
    })?;
    if c.problems.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("{} problem(s)", c.problems.len());
        Ok(ExitCode::from(1))
    }
}

/// `sluice jobs`.
pub fn jobs(list: &[JobRecord], json: bool) -> Result<ExitCode> {
    emit(json, list, |out, list| {
        if list.is_empty() {
            return writeln!(out, "no jobs");
        }
        writeln!(
            out,
            "{:>6}  {:<11} {:>5}  {:<18} {:<19}  input",
            "id", "state", "done", "pipeline", "finished"
        )?;
        for j in list {
            writeln!(
                out,
                "{:>6}  {:<11} {:>4.0}%  {:<18} {:<19}  {}{}",
                j.id,
                j.state.name(),
                j.progress * 100.0,
                j.pipeline,
                local_time(j.finished_ms),
                j.input.display(),
                j.error
                    .as_ref()
                    .map(|e| format!("\n        {e}"))
                    .unwrap_or_default()
            )?;
        }
        Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// `sluice job ID`.
pub fn job(d: &JobDetail, json: bool) -> Result<ExitCode> {
    emit(json, d, |out, d| {
        let j = &d.job;
        writeln!(
            out,
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
        )?;
        writeln!(
            out,
            "  pipeline  {} (version {})",
            j.pipeline, j.pipeline_hash
        )?;
        writeln!(
            out,
            "  input     {}  [{}]",
            j.input.display(),
            &j.content_hash[..16.min(j.content_hash.len())]
        )?;
        writeln!(out, "  created   {}", local_time(Some(j.created_ms)))?;
        writeln!(out, "  started   {}", local_time(j.started_ms))?;
        writeln!(out, "  finished  {}", local_time(j.finished_ms))?;
        if let Some(e) = &j.error {
            writeln!(out, "  error     {e}")?;
        }
        for o in &j.outputs {
            writeln!(
                out,
                "  output    {}  {} bytes  [{}]",
                o.path.display(),
                o.bytes,
                &o.hash[..16.min(o.hash.len())]
            )?;
        }
        if let Some(r) = &j.report {
            writeln!(out, "  report    {}", r.display())?;
        }
        if let Some(s) = &j.source_now {
            writeln!(out, "  source    now at {}", s.display())?;
        }
        writeln!(out, "  events")?;
        for e in &d.events {
            writeln!(
                out,
                "    {}  {:<16} {}",
                local_time(Some(e.time_ms)),
                e.kind,
                e.message
            )?;
        }
        Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// `sluice retry`: exit 1 when a job was left alone.
pub fn retry(r: &Retried) -> Result<ExitCode> {
    emit(false, r, |out, r| {
        if r.queued.is_empty() && r.left_alone.is_empty() {
            return writeln!(out, "nothing to retry");
        }
        for id in &r.queued {
            writeln!(out, "job {id}: queued again")?;
        }
        Ok(())
    })?;
    for id in &r.left_alone {
        eprintln!("job {id}: not failed or quarantined (or no such job): left alone");
    }
    Ok(if r.left_alone.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `sluice clean`.
pub fn clean(c: &Cleaned) -> Result<ExitCode> {
    for s in &c.skipped {
        eprintln!("skipped: {s}");
    }
    emit(false, c, |out, c| {
        let verb = if c.dry_run { "would remove" } else { "remove" };
        for f in &c.files {
            writeln!(out, "{verb} {}", f.display())?;
        }
        writeln!(
            out,
            "{} {} file(s), {:.1} MB, and {} empty folder(s){}",
            if c.dry_run { "would remove" } else { "removed" },
            c.files.len(),
            c.bytes as f64 / 1e6,
            c.folders,
            if c.dry_run {
                " (dry run: nothing removed)"
            } else {
                ""
            }
        )
    })?;
    Ok(ExitCode::SUCCESS)
}

/// `sluice stats`.
pub fn stats(s: &Stats, json: bool) -> Result<ExitCode> {
    emit(json, s, |out, s| {
        writeln!(out, "{}", s.root.display())?;
        writeln!(
            out,
            "  files     {} ({:.1} MB)",
            s.files,
            s.bytes as f64 / 1e6
        )?;
        for (t, k) in &s.by_type {
            writeln!(
                out,
                "    {t:<8} {:>6} file(s) {:>10.1} MB",
                k.files,
                k.bytes as f64 / 1e6
            )?;
        }
        if let (Some(o), Some(n)) = (&s.oldest, &s.newest) {
            writeln!(out, "  oldest    {}  {}", o.time, o.path.display())?;
            writeln!(out, "  newest    {}  {}", n.time, n.path.display())?;
        }
        writeln!(
            out,
            "  indexed   {} file(s) in watch folders",
            s.indexed_files
        )?;
        if let Some(v) = s.state_schema {
            writeln!(out, "  state     {} (schema {v})", s.state_file.display())?;
        }
        writeln!(
            out,
            "  jobs      {}",
            s.jobs
                .iter()
                .map(|(s, n)| format!("{s} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    })?;
    Ok(ExitCode::SUCCESS)
}

/// One file of `sluice run` as it finishes, as text.
pub fn run_outcome(out: &mut impl Write, f: &std::path::Path, r: &RunOutcome) -> Result<()> {
    match r {
        RunOutcome::Job {
            job,
            outputs,
            warnings,
        } if job.state == JobState::Done => {
            writeln!(out, "{}: job {} done", f.display(), job.id)?;
            for o in outputs {
                let loudness = match (o.integrated_lufs, o.true_peak_dbtp) {
                    (Some(i), Some(tp)) => format!("  ({i:.1} LUFS, true peak {tp:.1} dBTP)"),
                    _ => String::new(),
                };
                writeln!(out, "  → {}{loudness}", o.path.display())?;
            }
            for w in warnings {
                writeln!(out, "  warning: {w}")?;
            }
        }
        RunOutcome::Job { job, .. } => writeln!(
            out,
            "{}: job {} {}: {}",
            f.display(),
            job.id,
            job.state.name(),
            job.error.clone().unwrap_or_default()
        )?,
        RunOutcome::Refused { error } => {
            out.flush()?;
            eprintln!("{}: {error:#}", f.display());
        }
    }
    Ok(())
}

/// `sluice run`: the text was written file by file; JSON is the job records, or the error of a
/// file that got none. Exit 1 when a file was not done.
pub fn run(results: &[(PathBuf, RunOutcome)], json: bool) -> Result<ExitCode> {
    if json {
        let list: Vec<serde_json::Value> = results
            .iter()
            .map(|(f, r)| match r {
                RunOutcome::Job { job, .. } => serde_json::to_value(job),
                RunOutcome::Refused { error } => {
                    Ok(serde_json::json!({"path": f, "error": format!("{error:#}")}))
                }
            })
            .collect::<Result<_, _>>()?;
        emit(true, &list, |_, _| Ok(()))?;
    }
    Ok(if results.iter().all(|(_, r)| r.done()) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `sluice effects list`: refused modules on stderr in text.
pub fn effects_list(l: &EffectList, json: bool) -> Result<ExitCode> {
    emit(json, l, |out, l| {
        for e in &l.effects {
            writeln!(
                out,
                "{:<12} {:<8} {:<10} {}",
                e.name, e.version, e.origin, e.description
            )?;
        }
        Ok(())
    })?;
    if !json {
        for r in &l.refused {
            eprintln!("refused: {}: {}", r.module, r.error);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `sluice effects info NAME`: JSON is the descriptor.
pub fn effects_info(e: &EffectInfo, json: bool) -> Result<ExitCode> {
    if json {
        emit(true, &e.descriptor, |_, _| Ok(()))?;
        return Ok(ExitCode::SUCCESS);
    }
    let d = &e.descriptor;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{} {} ({})", d.name, d.version, e.origin)?;
    if !d.description.is_empty() {
        writeln!(out, "  {}", d.description)?;
    }
    writeln!(
        out,
        "  channels up to {}; tail up to {} s; module {}",
        d.max_channels,
        d.tail_seconds,
        &e.hash[..16.min(e.hash.len())]
    )?;
    for p in &d.params {
        let range = match &p.choices {
            Some(c) => c.join(" | "),
            None => format!("{} to {} {}", p.min, p.max, p.unit),
        };
        let default = match &p.choices {
            Some(c) => c[p.default as usize].clone(),
            None => p.default.to_string(),
        };
        writeln!(
            out,
            "  {:<14} {:<22} {range}  (default {default})",
            p.id, p.name
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `sluice effects test`.
pub fn effects_test(t: &EffectTest, json: bool) -> Result<ExitCode> {
    emit(json, t, |out, t| {
        writeln!(
            out,
            "{} {} at {} Hz, {} channel(s), blocks of {}",
            t.name, t.version, t.sample_rate, t.channels, t.block
        )?;
        writeln!(
            out,
            "  latency       {} frames ({:.2} ms)",
            t.latency_frames,
            t.latency_frames as f64 * 1000.0 / f64::from(t.sample_rate)
        )?;
        writeln!(
            out,
            "  impulse       peak {:.3} at frame {}",
            t.impulse_peak, t.impulse_peak_frame
        )?;
        writeln!(
            out,
            "  sweep gain    {:+.2} dB (20 Hz to {:.0} Hz at -12 dBFS)",
            t.sweep_gain_db, t.sweep_top_hz
        )?;
        writeln!(
            out,
            "  CPU           {:.2} ms per second of audio ({:.0}x real time)",
            t.seconds_per_second * 1000.0,
            1.0 / t.seconds_per_second
        )
    })?;
    Ok(ExitCode::SUCCESS)
}
