//! The file index: what the host knows of each file in a watch folder (FILES, by relative path),
//! and, per pipeline, the content it has taken from each path (SEEN: a file seen again with
//! the same content is not taken again; a failed job's content is forgotten, see `jobs.rs`).
//! An arrival is recorded in the transaction that queues its jobs ([`Store::intake`]).

use super::*;

/// Relative path → [`FileRecord`].
pub(super) const FILES: TableDefinition<&str, &[u8]> = TableDefinition::new("files");

/// `pipeline \0 relative path` → content hash the pipeline has taken (or skipped) there.
pub(super) const SEEN: TableDefinition<&str, &str> = TableDefinition::new("seen");

impl Store {
    pub fn file(&self, rel: &str) -> Result<Option<FileRecord>> {
        self.read(|tx| {
            let t = tx.open_table(FILES)?;
            Ok(t.get(rel)?
                .and_then(|v| serde_json::from_slice(v.value()).ok()))
        })
    }

    /// Whether `pipeline` already took the file at `rel` with this content.
    pub fn seen(&self, pipeline: &str, rel: &str) -> Result<Option<String>> {
        self.read(|tx| {
            let t = tx.open_table(SEEN)?;
            Ok(t.get(format!("{pipeline}\0{rel}").as_str())?
                .map(|v| v.value().to_string()))
        })
    }

    /// Index settled files and create the jobs they call for, all in one transaction.
    pub fn intake(&self, arrivals: &[Arrival]) -> Result<Vec<Vec<(String, Intake)>>> {
        self.write(|tx| {
            let mut files = tx.open_table(FILES)?;
            let mut seen = tx.open_table(SEEN)?;
            let mut jobs = tx.open_table(JOBS)?;
            let mut keys = tx.open_table(JOB_KEYS)?;
            let mut queue = tx.open_table(QUEUE)?;
            let mut meta = tx.open_table(META)?;
            let mut events = tx.open_table(EVENTS)?;
            let mut out = Vec::new();
            for a in arrivals {
                files.insert(a.rel, json(&a.record).as_slice())?;
                let mut decided = Vec::new();
                for (name, hash) in &a.pipelines {
                    let seen_key = format!("{name}\0{}", a.rel);
                    let already = seen
                        .get(seen_key.as_str())?
                        .map(|v| v.value() == a.record.hash);
                    if already == Some(true) {
                        decided.push((name.to_string(), Intake::AlreadySeen));
                        continue;
                    }
                    seen.insert(seen_key.as_str(), a.record.hash.as_str())?;
                    let album = a.albums.iter().find(|(n, _)| n == name).map(|(_, r)| r);
                    // The same content in another album (another loudness) is another job.
                    let key = match album {
                        None => format!("{name}\0{hash}\0{}", a.record.hash),
                        Some(r) => {
                            format!("{name}\0{hash}\0{}\0album {:.2}", a.record.hash, r.lufs)
                        }
                    };
                    let earlier = match keys.get(key.as_str())?.map(|v| v.value()) {
                        Some(id) => jobs
                            .get(id)?
                            .and_then(|v| serde_json::from_slice::<JobRecord>(v.value()).ok())
                            .map(|j| (id, j.state)),
                        None => None,
                    };
                    if let Some((id, JobState::Queued | JobState::Running)) = earlier {
                        log_event(
                            &mut events,
                            &mut meta,
                            Some(id),
                            EventKind::Duplicate,
                            format!(
                                "{} has the content of job {id}'s input: taken if that job fails",
                                a.rel
                            ),
                        )?;
                        decided.push((name.to_string(), Intake::Waiting(id)));
                        continue;
                    }
                    // Only content that gave its outputs is not done again: after a failure
                    // (or a quarantine) the same content arriving is a new job.
                    if let Some((id, JobState::Done)) = earlier {
                        log_event(
                            &mut events,
                            &mut meta,
                            Some(id),
                            EventKind::Duplicate,
                            format!(
                                "{} has the content of job {id}'s input: not done again",
                                a.rel
                            ),
                        )?;
                        decided.push((name.to_string(), Intake::Duplicate(id)));
                        continue;
                    }
                    let id = meta.get("next_job")?.map_or(1, |v| v.value());
                    meta.insert("next_job", id + 1)?;
                    let job = JobRecord {
                        settled_ms: Some(a.settled_ms),
                        album: album.cloned(),
                        ..JobRecord::new(
                            id,
                            name,
                            hash,
                            path_codec::decode(a.rel),
                            a.record.hash.clone(),
                            JobState::Queued,
                        )
                    };
                    jobs.insert(id, json(&job).as_slice())?;
                    keys.insert(key.as_str(), id)?;
                    queue.insert((0, id), ())?;
                    log_event(
                        &mut events,
                        &mut meta,
                        Some(id),
                        EventKind::Queued,
                        format!("{} for pipeline {name}", a.rel),
                    )?;
                    decided.push((name.to_string(), Intake::Queued(id)));
                }
                out.push(decided);
            }
            Ok(out)
        })
    }

    /// Forget index entries of files that are gone.
    pub fn forget_files(&self, rels: &[String]) -> Result<()> {
        if rels.is_empty() {
            return Ok(());
        }
        self.write(|tx| {
            let mut files = tx.open_table(FILES)?;
            for r in rels {
                files.remove(r.as_str())?;
            }
            Ok(())
        })
    }

    /// Relative paths of every indexed file.
    pub fn file_paths(&self) -> Result<Vec<String>> {
        self.read(|tx| {
            let t = tx.open_table(FILES)?;
            t.iter()?
                .map(|r| r.map(|(k, _)| k.value().to_string()).map_err(Into::into))
                .collect()
        })
    }

    /// Record the analysis summary of an indexed file.
    pub fn set_analysis(&self, rel: &str, analysis: serde_json::Value) -> Result<()> {
        self.write(|tx| {
            let mut t = tx.open_table(FILES)?;
            let rec = t
                .get(rel)?
                .and_then(|v| serde_json::from_slice::<FileRecord>(v.value()).ok());
            if let Some(mut rec) = rec {
                rec.analysis = Some(analysis);
                t.insert(rel, json(&rec).as_slice())?;
            }
            Ok(())
        })
    }
}
