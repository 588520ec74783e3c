//! Jobs, their dedup keys, the queue and the reserved output paths.
//!
//! Job state lives in these tables and nowhere else: workers claim from the store (a channel
//! only wakes them, carrying nothing), and the paths a job will write are reserved in a table,
//! not in a process's memory. Every write transaction keeps these invariants; `Store::check`
//! verifies them over a whole file, and the tests run it after every kind of change:
//!
//! 1. **QUEUE mirrors the queued jobs**: `(not_before_ms, id)` is in QUEUE exactly when job `id`
//!    is queued with that `not_before_ms` (no running, finished or missing job is in it).
//! 2. **JOB_KEYS names live or successful work**: a key `pipeline \0 version \0 content` maps
//!    to a job with that pipeline, version and content that is not failed or quarantined;
//!    so the same content through the same pipeline version is queued, run or done once, and
//!    content whose job failed is taken again when it arrives.
//! 3. **RESERVED holds the planned paths of queued and running jobs**: each of their `planned`
//!    paths maps to the job, and nothing else is in it; a path is reserved by one job. A job
//!    that ends (done, failed, quarantined) gives its paths up in the same transaction; a
//!    failed job queued again is planned afresh at its next start (another job may have taken
//!    its names meanwhile).
//! 4. **A claim is one transaction**: a job goes from queued to running, off QUEUE, in the
//!    transaction that finds it first in QUEUE; two claimers (threads or processes) never get
//!    the same job.

use super::*;

/// Job id → [`JobRecord`].
pub(super) const JOBS: TableDefinition<u64, &[u8]> = TableDefinition::new("jobs");

/// `pipeline \0 pipeline hash \0 content hash` → job id: the same content through the same
/// pipeline version is done once.
pub(super) const JOB_KEYS: TableDefinition<&str, u64> = TableDefinition::new("job_keys");

/// (not before, ms since the epoch; job id) for queued jobs.
pub(super) const QUEUE: TableDefinition<(i64, u64), ()> = TableDefinition::new("queue");

/// Relative output path ([`path_codec`]) → the queued or running job it is planned for.
pub(super) const RESERVED: TableDefinition<&str, u64> = TableDefinition::new("reserved");

/// Pipeline name → the file (relative to the pipelines folder) that defines it: when two
/// files claim one name, the one that had it first keeps it, across restarts too.
pub(super) const PIPELINE_FILES: TableDefinition<&str, &str> =
    TableDefinition::new("pipeline_files");

impl Store {
    /// A job started by hand (`sluice run`): recorded as running at once, outside the queue,
    /// so a host watching the same root does not take it too.
    pub fn add_running_job(
        &self,
        pipeline: &str,
        pipeline_hash: &str,
        input: PathBuf,
        content_hash: String,
    ) -> Result<JobRecord> {
        self.write(|tx| {
            let mut jobs = tx.open_table(JOBS)?;
            let mut meta = tx.open_table(META)?;
            let mut events = tx.open_table(EVENTS)?;
            let id = meta.get("next_job")?.map_or(1, |v| v.value());
            meta.insert("next_job", id + 1)?;
            let job = JobRecord::new(
                id,
                pipeline,
                pipeline_hash,
                input.clone(),
                content_hash,
                JobState::Running,
            );
            jobs.insert(id, json(&job).as_slice())?;
            log_event(
                &mut events,
                &mut meta,
                Some(id),
                EventKind::Started,
                format!("{} by hand (sluice run)", input.display()),
            )?;
            Ok(job)
        })
    }

    /// Jobs of `pipeline` (at any version: run again, a job takes the pipeline as it is then)
    /// that a `sluice run` left running when it died (`kill -9`, a crash, a power cut): run by
    /// hand by a process that is gone, and not out on a farm. [`Store::take_over`] runs one
    /// again under the same id.
    pub fn abandoned_by_hand(&self, pipeline: &str) -> Result<Vec<JobRecord>> {
        Ok(self
            .jobs(Some(JobState::Running))?
            .into_iter()
            .filter(|j| j.pipeline == pipeline)
            .filter(|j| abandoned(j).is_some())
            .collect())
    }

    /// Job `id`, left running by a `sluice run` that died ([`Store::abandoned_by_hand`]), run by
    /// this process from now on: its id, planned paths (which it still holds) and history kept,
    /// one interrupted run and one attempt more. `None` when it is no longer abandoned (another
    /// run took it first, or a host started and queued it again).
    pub fn take_over(&self, id: u64) -> Result<Option<JobRecord>> {
        self.write(|tx| {
            let mut jobs = tx.open_table(JOBS)?;
            let Some(mut job) = jobs
                .get(id)?
                .and_then(|v| serde_json::from_slice::<JobRecord>(v.value()).ok())
            else {
                return Ok(None);
            };
            let Some(gone) = abandoned(&job) else {
                return Ok(None);
            };
            job.interrupted += 1;
            job.attempts += 1;
            job.progress = 0.0;
            job.started_ms = Some(now_ms());
            job.error = None;
            job.runner = Some(Runner {
                pid: std::process::id(),
                by_hand: true,
            });
            // Running before and after: its paths stay reserved, it is in no queue.
            jobs.insert(id, json(&job).as_slice())?;
            log_in(
                tx,
                Some(id),
                EventKind::Interrupted,
                format!(
                    "the sluice run that ran this job (pid {gone}) stopped ({} time(s) so far)",
                    job.interrupted
                ),
            )?;
            log_in(
                tx,
                Some(id),
                EventKind::Started,
                format!(
                    "{} by hand (sluice run), taking over the stopped run",
                    job.input.display()
                ),
            )?;
            Ok(Some(job))
        })
    }

    pub fn job(&self, id: u64) -> Result<Option<JobRecord>> {
        self.read(|tx| {
            let t = tx.open_table(JOBS)?;
            Ok(t.get(id)?
                .and_then(|v| serde_json::from_slice(v.value()).ok()))
        })
    }

    /// Jobs, oldest first, optionally only in one state.
    pub fn jobs(&self, state: Option<JobState>) -> Result<Vec<JobRecord>> {
        self.read(|tx| {
            let t = tx.open_table(JOBS)?;
            let mut v = Vec::new();
            for r in t.iter()? {
                let (_, val) = r?;
                if let Ok(j) = serde_json::from_slice::<JobRecord>(val.value())
                    && state.is_none_or(|s| s == j.state)
                {
                    v.push(j);
                }
            }
            Ok(v)
        })
    }

    /// Change a job in one transaction (with an event), keeping the queue and the dedup keys
    /// in step with its state. Returns the job as written.
    ///
    /// A job that ends failed or quarantined gives up its content: the key that made the same
    /// content a duplicate is removed, and other files with that content (renames, copies,
    /// which waited on this job) are forgotten by the index so the next look at the watch
    /// folders takes them as new jobs. A failed job queued again takes its key back.
    pub fn update_job(
        &self,
        id: u64,
        event: Option<(EventKind, String)>,
        f: impl FnOnce(&mut JobRecord),
    ) -> Result<JobRecord> {
        self.write(|tx| {
            let mut jobs = tx.open_table(JOBS)?;
            let mut queue = tx.open_table(QUEUE)?;
            let mut job: JobRecord = jobs
                .get(id)?
                .and_then(|v| serde_json::from_slice(v.value()).ok())
                .ok_or_else(|| redb::Error::Io(std::io::Error::other(format!("no job {id}"))))?;
            let was = (job.state, job.not_before_ms);
            let before = job.clone();
            f(&mut job);
            let failed = |s: JobState| matches!(s, JobState::Failed | JobState::Quarantined);
            if failed(was.0) && holds_paths(job.state) {
                // Its names were given up: planned afresh at its next start.
                job.unplan();
            }
            reserve(tx, &before, &job)?;
            if was.0 == JobState::Queued {
                queue.remove((was.1, id))?;
            }
            if job.state == JobState::Queued {
                queue.insert((job.not_before_ms, id), ())?;
            }
            if failed(job.state) && !failed(was.0) {
                release(tx, &job, false)?;
            } else if !failed(job.state) && failed(was.0) {
                let mut keys = tx.open_table(JOB_KEYS)?;
                let key = job_key(&job);
                if keys.get(key.as_str())?.is_none() {
                    keys.insert(key.as_str(), id)?;
                }
            }
            jobs.insert(id, json(&job).as_slice())?;
            if let Some((kind, message)) = event {
                log_in(tx, Some(id), kind, message)?;
            }
            Ok(job.clone())
        })
    }

    /// End a job whose source changed under it (it was still being written, or was replaced):
    /// failed with `message`, its content key given up, and its own file forgotten too, so it
    /// is taken again once it settles, whatever its content is then.
    pub fn invalidate(&self, id: u64, message: String) -> Result<JobRecord> {
        self.write(|tx| {
            let mut jobs = tx.open_table(JOBS)?;
            let mut queue = tx.open_table(QUEUE)?;
            let mut job: JobRecord = jobs
                .get(id)?
                .and_then(|v| serde_json::from_slice(v.value()).ok())
                .ok_or_else(|| redb::Error::Io(std::io::Error::other(format!("no job {id}"))))?;
            if job.state == JobState::Queued {
                queue.remove((job.not_before_ms, id))?;
            }
            let before = job.clone();
            job.state = JobState::Failed;
            job.error = Some(message.clone());
            job.finished_ms = Some(now_ms());
            job.runner = None;
            reserve(tx, &before, &job)?;
            release(tx, &job, true)?;
            jobs.insert(id, json(&job).as_slice())?;
            log_in(tx, Some(id), EventKind::Invalidated, message)?;
            Ok(job)
        })
    }

    /// The file that defines each pipeline name, as first recorded.
    pub fn pipeline_files(&self) -> Result<std::collections::BTreeMap<String, String>> {
        self.read(|tx| {
            let t = tx.open_table(PIPELINE_FILES)?;
            t.iter()?
                .map(|r| {
                    r.map(|(k, v)| (k.value().to_string(), v.value().to_string()))
                        .map_err(Into::into)
                })
                .collect()
        })
    }

    /// Record which file defines each loaded pipeline name.
    pub fn set_pipeline_files(&self, owners: &[(String, String)]) -> Result<()> {
        self.write(|tx| {
            let mut t = tx.open_table(PIPELINE_FILES)?;
            for (name, file) in owners {
                if t.get(name.as_str())?
                    .map(|v| v.value().to_string())
                    .as_deref()
                    != Some(file.as_str())
                {
                    t.insert(name.as_str(), file.as_str())?;
                }
            }
            Ok(())
        })
    }

    /// Whether a queued job may start now.
    pub fn has_ready(&self) -> Result<bool> {
        let now = now_ms();
        self.read(|tx| {
            let q = tx.open_table(QUEUE)?;
            Ok(q.first()?.is_some_and(|(k, _)| k.value().0 <= now))
        })
    }

    /// Take the next queued job that may start now: it becomes running, one more attempt,
    /// run by this process. One write transaction finds it and marks it (invariant 4), so
    /// concurrent claimers never share a job.
    pub fn claim_next(&self) -> Result<Option<JobRecord>> {
        // A read first: an idle worker's look costs no write.
        if !self.has_ready()? {
            return Ok(None);
        }
        let now = now_ms();
        self.write(|tx| {
            let mut queue = tx.open_table(QUEUE)?;
            let mut jobs = tx.open_table(JOBS)?;
            let Some((nb, id)) = queue
                .first()?
                .map(|(k, _)| k.value())
                .filter(|(nb, _)| *nb <= now)
            else {
                return Ok(None);
            };
            queue.remove((nb, id))?;
            let Some(mut job) = jobs
                .get(id)?
                .and_then(|v| serde_json::from_slice::<JobRecord>(v.value()).ok())
                .filter(|j| j.state == JobState::Queued)
            else {
                return Ok(None);
            };
            job.state = JobState::Running;
            job.attempts += 1;
            job.progress = 0.0;
            job.started_ms = Some(now);
            job.error = None;
            job.runner = Some(Runner::watch());
            job.ran_on = None;
            // Queued and running jobs both hold their paths: RESERVED is unchanged.
            jobs.insert(id, json(&job).as_slice())?;
            Ok(Some(job))
        })
    }

    /// Fix where running job `id` writes, once: each of `wanted` (relative to the root) as it
    /// is, or numbered by `numbered(path, n)` from 2 until it is neither reserved by another
    /// job, nor among the paths before it, nor `exists`. The paths are reserved in the same
    /// transaction (invariant 3). A job already planned keeps its paths. `layout` says what
    /// they are for.
    pub fn plan(
        &self,
        id: u64,
        wanted: &[PathBuf],
        layout: Layout<'_>,
        numbered: impl Fn(&Path, u32) -> PathBuf,
        exists: impl Fn(&Path) -> bool,
    ) -> Result<JobRecord> {
        self.write(|tx| {
            let mut jobs = tx.open_table(JOBS)?;
            let mut job: JobRecord = jobs
                .get(id)?
                .and_then(|v| serde_json::from_slice(v.value()).ok())
                .ok_or_else(|| redb::Error::Io(std::io::Error::other(format!("no job {id}"))))?;
            if !job.planned.is_empty() || !holds_paths(job.state) {
                return Ok(job);
            }
            let mut planned = Vec::with_capacity(wanted.len());
            {
                let reserved = tx.open_table(RESERVED)?;
                for w in wanted {
                    let mut candidate = w.clone();
                    let mut n = 2;
                    while reserved
                        .get(path_codec::encode(&candidate).as_str())?
                        .is_some_and(|v| v.value() != id)
                        || planned.contains(&candidate)
                        || exists(&candidate)
                    {
                        candidate = numbered(w, n);
                        n += 1;
                    }
                    planned.push(candidate);
                }
            }
            let before = job.clone();
            job.planned = planned;
            job.planned_for = Some(layout.version.to_string());
            job.planned_move = layout.moves_source;
            reserve(tx, &before, &job)?;
            jobs.insert(id, json(&job).as_slice())?;
            Ok(job)
        })
    }

    /// The job each reserved path is planned for (see invariant 3).
    #[cfg(test)]
    pub fn reserved(&self) -> Result<Vec<(PathBuf, u64)>> {
        self.read(|tx| {
            let t = tx.open_table(RESERVED)?;
            t.iter()?
                .map(|r| {
                    r.map(|(k, v)| (path_codec::decode(k.value()), v.value()))
                        .map_err(Into::into)
                })
                .collect()
        })
    }

    /// At start, with the root's lock held (so no other host runs): jobs a dead host left
    /// running count one interrupted run and go back to the queue, except those interrupted
    /// `ceiling` times or more, which stay running here and are returned apart for the caller
    /// to quarantine. Jobs run by hand by a `sluice run` that is still alive are left alone.
    /// With `farmed` (a host on a farm), jobs out on the farm stay running: their results
    /// come back to the host's next run.
    pub fn requeue_running(
        &self,
        ceiling: u32,
        farmed: bool,
    ) -> Result<(Vec<JobRecord>, Vec<JobRecord>)> {
        let mut requeued = Vec::new();
        let mut over = Vec::new();
        for j in self.jobs(Some(JobState::Running))? {
            if j.runner.is_some_and(|r| r.by_hand && alive(r.pid)) {
                continue;
            }
            if farmed && j.ran_on.is_some() {
                continue;
            }
            let n = j.interrupted + 1;
            if n >= ceiling {
                over.push(self.update_job(
                    j.id,
                    Some((
                        EventKind::Interrupted,
                        format!("the host stopped while this job ran ({n} times)"),
                    )),
                    |j| {
                        j.interrupted = n;
                        j.runner = Some(Runner::watch());
                    },
                )?);
            } else {
                requeued.push(self.update_job(
                    j.id,
                    Some((
                        EventKind::Requeued,
                        format!(
                            "was running when the host stopped ({n} time(s) so far): queued again"
                        ),
                    )),
                    |j| {
                        j.state = JobState::Queued;
                        j.not_before_ms = 0;
                        j.interrupted = n;
                        j.runner = None;
                    },
                )?);
            }
        }
        Ok((requeued, over))
    }

    pub fn progress(&self, id: u64, p: f64) -> Result<()> {
        self.update_job(id, None, |j| {
            if j.state == JobState::Running {
                j.progress = p.clamp(0.0, 1.0);
            }
        })
        .map(|_| ())
    }

    /// Queue jobs again (retry). Returns those that were in a state that allows it.
    pub fn retry(&self, ids: &[u64]) -> Result<Vec<u64>> {
        let mut done = Vec::new();
        for &id in ids {
            let Some(j) = self.job(id)? else { continue };
            if matches!(j.state, JobState::Failed | JobState::Quarantined) {
                self.update_job(
                    id,
                    Some((EventKind::Retry, "queued again by hand".into())),
                    |j| {
                        j.state = JobState::Queued;
                        j.not_before_ms = 0;
                        j.attempts = 0;
                    },
                )?;
                done.push(id);
            }
        }
        Ok(done)
    }
}

/// The pid of the `sluice run` that left job `j` running when it died; `None` when `j` is not
/// such a job (not running, run by a host or one that is alive, out on a farm).
fn abandoned(j: &JobRecord) -> Option<u32> {
    j.cut_short().filter(|r| r.by_hand).map(|r| r.pid)
}

/// The dedup key of a job: its pipeline, the pipeline's version and the content.
pub(super) fn job_key(j: &JobRecord) -> String {
    format!("{}\0{}\0{}", j.pipeline, j.pipeline_hash, j.content_hash)
}

/// Whether a job in `state` holds its planned paths (invariant 3).
pub(super) fn holds_paths(state: JobState) -> bool {
    matches!(state, JobState::Queued | JobState::Running)
}

/// Move a job's path reservations from what `before` held to what `after` holds.
pub(super) fn reserve(
    tx: &redb::WriteTransaction,
    before: &JobRecord,
    after: &JobRecord,
) -> std::result::Result<(), redb::Error> {
    let held = |j: &JobRecord| -> Vec<String> {
        if holds_paths(j.state) {
            j.planned.iter().map(|p| path_codec::encode(p)).collect()
        } else {
            Vec::new()
        }
    };
    let (was, now) = (held(before), held(after));
    if was == now {
        return Ok(());
    }
    let mut t = tx.open_table(RESERVED)?;
    for p in was.iter().filter(|p| !now.contains(p)) {
        if t.get(p.as_str())?.is_some_and(|v| v.value() == after.id) {
            t.remove(p.as_str())?;
        }
    }
    for p in &now {
        t.insert(p.as_str(), after.id)?;
    }
    Ok(())
}

/// A failed job gives up its content (see [`Store::update_job`]); `own` forgets its own file
/// too.
pub(super) fn release(
    tx: &redb::WriteTransaction,
    job: &JobRecord,
    own: bool,
) -> std::result::Result<(), redb::Error> {
    let mut keys = tx.open_table(JOB_KEYS)?;
    let key = job_key(job);
    if keys.get(key.as_str())?.map(|v| v.value()) == Some(job.id) {
        keys.remove(key.as_str())?;
    }
    let mut seen = tx.open_table(SEEN)?;
    let prefix = format!("{}\0", job.pipeline);
    let mine = format!("{prefix}{}", path_codec::encode(&job.input));
    let stale: Vec<String> = seen
        .range(prefix.as_str()..)?
        .map_while(|r| r.ok())
        .take_while(|(k, _)| k.value().starts_with(&prefix))
        .filter(|(k, v)| v.value() == job.content_hash && (own || k.value() != mine))
        .map(|(k, _)| k.value().to_string())
        .collect();
    for k in stale {
        seen.remove(k.as_str())?;
    }
    Ok(())
}

/// Schema 1 → 2: the RESERVED table, filled from the queued and running jobs (before, the
/// host kept their paths in memory).
pub(super) fn reserve_planned_paths(
    tx: &redb::WriteTransaction,
) -> std::result::Result<(), redb::Error> {
    let jobs = tx.open_table(JOBS)?;
    let mut reserved = tx.open_table(RESERVED)?;
    for r in jobs.iter()? {
        let (_, v) = r?;
        if let Ok(j) = serde_json::from_slice::<JobRecord>(v.value())
            && holds_paths(j.state)
        {
            for p in &j.planned {
                reserved.insert(path_codec::encode(p).as_str(), j.id)?;
            }
        }
    }
    Ok(())
}
