//! What the editor drew last, for the diagnostics export (and so for tests that check the
//! picture's numbers against the meters).
//!
//! Written by the editor's window thread once per frame, read by whoever asks for diagnostics;
//! the audio thread never touches it. The frame writes with `try_lock`, so a reader holding the
//! lock costs the editor one skipped update, never a wait.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug, Default)]
pub struct Drawn {
    /// Frames drawn since the plugin instance was created (all openings together).
    pub frames: AtomicU64,
    /// Editor windows opened and closed (by the host) since the instance was created.
    pub opens: AtomicU64,
    pub closes: AtomicU64,
    /// Open editors now (0 or 1; hosts open one at a time).
    pub open_count: AtomicU64,
    /// The current (or last) opening: when it began and [`Self::frames`] then.
    opening: Mutex<Opening>,
    /// Openings closed without one frame drawn.
    pub undrawn_opens: AtomicU64,
    /// The longest time from an opening to its first frame (µs), over all openings.
    pub first_frame_us_max: AtomicU64,
    /// Times the watchdog found an open, viewable window that had not drawn for
    /// [`super::watchdog::STALL`] and asked it to draw, and how many of those openings then drew.
    pub stalls: AtomicU64,
    pub stalls_mended: AtomicU64,
    /// The last frame's values and texts (see `view::draw`); `None` before the first frame.
    last: Mutex<Option<serde_json::Value>>,
    /// `/proc/self/task/<tid>` of editor window threads that may still be running.
    window_threads: Mutex<Vec<std::path::PathBuf>>,
}

/// One opening of the editor, for the per-opening figures.
#[derive(Debug, Default, Clone, Copy)]
struct Opening {
    /// When the host asked for the window (before it exists).
    began: Option<Instant>,
    /// [`Drawn::frames`] when it began.
    frames_before: u64,
    /// Time to its first frame, once drawn.
    first_frame: Option<Duration>,
}

impl Drawn {
    /// Called before the window is made, so a first frame drawn before `spawn` returns belongs
    /// to this opening.
    pub(crate) fn opening(&self) {
        let mut o = self.opening.lock().unwrap_or_else(|p| p.into_inner());
        *o = Opening {
            began: Some(Instant::now()),
            frames_before: self.frames.load(Ordering::Relaxed),
            first_frame: None,
        };
    }

    pub(crate) fn opened(&self) {
        self.opens.fetch_add(1, Ordering::Relaxed);
        self.open_count.fetch_add(1, Ordering::Relaxed);
    }

    /// Frames drawn in the current opening.
    pub fn frames_this_opening(&self) -> u64 {
        let before = self
            .opening
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .frames_before;
        self.frames.load(Ordering::Relaxed).saturating_sub(before)
    }

    pub(crate) fn closed(&self) {
        if self.frames_this_opening() == 0 {
            self.undrawn_opens.fetch_add(1, Ordering::Relaxed);
        }
        self.closes.fetch_add(1, Ordering::Relaxed);
        // Never below zero, whatever order a host drops things in.
        let _ = self
            .open_count
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }

    /// Called on a new editor window's thread: remembers it, so the instance can wait for it to
    /// end before it goes (see [`Self::wait_for_window_threads`]).
    pub(crate) fn window_thread_started(&self) {
        // "/proc/thread-self" links to "<pid>/task/<tid>": this thread's entry, gone when the
        // thread has ended.
        if let Ok(link) = std::fs::read_link("/proc/thread-self") {
            let task = std::path::Path::new("/proc").join(link);
            let mut threads = self
                .window_threads
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            threads.retain(|t| t.exists());
            threads.push(task);
        }
    }

    /// Waits up to `timeout` for every editor window thread to have ended; returns whether
    /// they all did.
    ///
    /// baseview (0.4.2) does not always join its window thread when a window is closed: its
    /// handle's `Drop` asks the thread to show the window before joining it, and gives up
    /// without joining when the thread has already left its event loop. The thread then tears
    /// down its GL display (Mesa unloads its driver with `dlclose`) while the host goes on. If
    /// the host unloads the plugin, or the process exits, meanwhile, that thread runs into
    /// freed code and crashes the host. So the instance waits for its window threads when it
    /// is destroyed, which hosts do after closing the editor and before unloading the plugin.
    pub fn wait_for_window_threads(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut threads = self
            .window_threads
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        loop {
            threads.retain(|t| t.exists());
            if threads.is_empty() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Records one drawn frame.
    pub(crate) fn publish(&self, frame: serde_json::Value) {
        let n = {
            // Uncontended: the window thread, and readers of the figures, hold it briefly. The
            // count moves under it too, so a reader never sees this opening's frame counted
            // without its first-frame time.
            let mut o = self.opening.lock().unwrap_or_else(|p| p.into_inner());
            let n = self.frames.fetch_add(1, Ordering::Relaxed) + 1;
            if o.first_frame.is_none()
                && let Some(began) = o.began
            {
                let first = began.elapsed();
                o.first_frame = Some(first);
                self.first_frame_us_max
                    .fetch_max(first.as_micros() as u64, Ordering::Relaxed);
            }
            n
        };
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
        // One snapshot: the frame count and the opening read under the lock the frame holds.
        let (opening, frames) = {
            let o = self.opening.lock().unwrap_or_else(|p| p.into_inner());
            (*o, self.frames.load(Ordering::Relaxed))
        };
        let ms = |us: u64| us as f64 / 1000.0;
        serde_json::json!({
            "frames": frames,
            "opens": self.opens.load(Ordering::Relaxed),
            "closes": self.closes.load(Ordering::Relaxed),
            "open": self.open_count.load(Ordering::Relaxed) > 0,
            "frames_this_opening": frames.saturating_sub(opening.frames_before),
            "first_frame_ms": opening.first_frame.map(|d| ms(d.as_micros() as u64)),
            "first_frame_ms_max": ms(self.first_frame_us_max.load(Ordering::Relaxed)),
            "undrawn_opens": self.undrawn_opens.load(Ordering::Relaxed),
            "stalls": self.stalls.load(Ordering::Relaxed),
            "stalls_mended": self.stalls_mended.load(Ordering::Relaxed),
            "last": last,
        })
    }
}
