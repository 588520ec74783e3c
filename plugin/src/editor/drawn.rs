//! What the editor drew last, for the diagnostics export (and so for tests that check the
//! picture's numbers against the meters).
//!
//! Written by the editor's window thread once per frame, read by whoever asks for diagnostics;
//! the audio thread never touches it. The frame writes with `try_lock`, so a reader holding the
//! lock costs the editor one skipped update, never a wait.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct Drawn {
    /// Frames drawn since the plugin instance was created (all openings together).
    pub frames: AtomicU64,
    /// Editor windows opened and closed (by the host) since the instance was created.
    pub opens: AtomicU64,
    pub closes: AtomicU64,
    /// Open editors now (0 or 1; hosts open one at a time).
    pub open_count: AtomicU64,
    /// The last frame's values and texts (see `view::draw`); `None` before the first frame.
    last: Mutex<Option<serde_json::Value>>,
}

impl Drawn {
    pub(crate) fn opened(&self) {
        self.opens.fetch_add(1, Ordering::Relaxed);
        self.open_count.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn closed(&self) {
        self.closes.fetch_add(1, Ordering::Relaxed);
        // Never below zero, whatever order a host drops things in.
        let _ = self
            .open_count
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }

    /// Records one drawn frame.
    pub(crate) fn publish(&self, frame: serde_json::Value) {
        let n = self.frames.fetch_add(1, Ordering::Relaxed) + 1;
        if let Ok(mut last) = self.last.try_lock() {
            let mut frame = frame;
            if let Some(o) = frame.as_object_mut() {
                o.insert("frame".into(), n.into());
            }
            *last = Some(frame);
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        let last = self
            .last
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .unwrap_or(serde_json::Value::Null);
        serde_json::json!({
            "frames": self.frames.load(Ordering::Relaxed),
            "opens": self.opens.load(Ordering::Relaxed),
            "closes": self.closes.load(Ordering::Relaxed),
            "open": self.open_count.load(Ordering::Relaxed) > 0,
            "last": last,
        })
    }
}
