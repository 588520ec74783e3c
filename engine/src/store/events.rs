//! The event log: one record per thing that happened to a job or the host (arrivals,
//! starts, retries, failures...), numbered in order from META's `next_event`. Events are only
//! appended, in the transaction of the change they record, so the log never tells of a change
//! that was not made; `sluice events` and the server's live stream read it by range.

use super::*;

/// Event id → [`Event`].
pub(super) const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");

impl Store {
    pub fn event(&self, job: Option<u64>, kind: EventKind, message: String) -> Result<()> {
        self.write(|tx| log_in(tx, job, kind, message))
    }

    /// Events, oldest first, of one job or all.
    pub fn events(&self, job: Option<u64>) -> Result<Vec<Event>> {
        self.read(|tx| {
            let t = tx.open_table(EVENTS)?;
            let mut v = Vec::new();
            for r in t.iter()? {
                let (_, val) = r?;
                if let Ok(e) = serde_json::from_slice::<Event>(val.value())
                    && (job.is_none() || e.job == job)
                {
                    v.push(e);
                }
            }
            Ok(v)
        })
    }

    /// Up to `limit` events after event `after`, oldest first (a range read: what a live
    /// view polls).
    pub fn events_after(&self, after: u64, limit: usize) -> Result<Vec<Event>> {
        self.read(|tx| {
            let t = tx.open_table(EVENTS)?;
            let mut v = Vec::new();
            for r in t.range(after.saturating_add(1)..)?.take(limit) {
                let (_, val) = r?;
                if let Ok(e) = serde_json::from_slice::<Event>(val.value()) {
                    v.push(e);
                }
            }
            Ok(v)
        })
    }

    /// The id of the newest event (0 when there is none).
    pub fn last_event_id(&self) -> Result<u64> {
        self.read(|tx| {
            let t = tx.open_table(EVENTS)?;
            Ok(t.last()?.map_or(0, |(k, _)| k.value()))
        })
    }
}

/// Append an event (the caller's transaction has the tables open).
/// [`log_event`] in `tx`, with the event and meta tables opened here (neither may be open in
/// `tx` already).
pub(super) fn log_in(
    tx: &redb::WriteTransaction,
    job: Option<u64>,
    kind: EventKind,
    message: String,
) -> std::result::Result<(), redb::Error> {
    let mut events = tx.open_table(EVENTS)?;
    let mut meta = tx.open_table(META)?;
    log_event(&mut events, &mut meta, job, kind, message)
}

pub(super) fn log_event(
    events: &mut redb::Table<u64, &[u8]>,
    meta: &mut redb::Table<&str, u64>,
    job: Option<u64>,
    kind: EventKind,
    message: String,
) -> std::result::Result<(), redb::Error> {
    let id = meta.get("next_event")?.map_or(1, |v| v.value());
    meta.insert("next_event", id + 1)?;
    let e = Event {
        id,
        time_ms: now_ms(),
        job,
        kind,
        message,
    };
    events.insert(id, json(&e).as_slice())?;
    Ok(())
}
