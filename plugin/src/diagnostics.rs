//! A read-only window on the meters of every live instance, for the test hosts (which load the
//! built bundle and cannot reach into it otherwise) and for troubleshooting.
//!
//! The bundle exports `sluice_meter_diagnostics_v1`, a C function that writes a UTF-8 JSON array
//! with one object per live instance of the loaded library, in creation order:
//! `{"instance": N, "meters": {...}}` ([`crate::shared::MeterShared::to_json`]). It is never
//! called by hosts and never touches the audio thread: readings are atomics.

use crate::shared::MeterShared;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

type Registry = Vec<(u64, Weak<MeterShared>)>;

static INSTANCES: Mutex<Registry> = Mutex::new(Vec::new());
static NEXT: AtomicU64 = AtomicU64::new(1);

fn instances() -> std::sync::MutexGuard<'static, Registry> {
    INSTANCES.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn register(shared: &Arc<MeterShared>) {
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    instances().push((id, Arc::downgrade(shared)));
}

pub(crate) fn unregister(shared: &Arc<MeterShared>) {
    instances()
        .retain(|(_, w)| w.strong_count() > 0 && !std::ptr::eq(w.as_ptr(), Arc::as_ptr(shared)));
}

/// The JSON the export writes.
pub fn snapshot() -> serde_json::Value {
    let live: Vec<(u64, Arc<MeterShared>)> = instances()
        .iter()
        .filter_map(|(id, w)| w.upgrade().map(|s| (*id, s)))
        .collect();
    serde_json::Value::Array(
        live.iter()
            .map(|(id, s)| {
                let mut meters = s.to_json();
                meters["qc"] = crate::qc::to_json(s);
                serde_json::json!({ "instance": id, "meters": meters })
            })
            .collect(),
    )
}

/// Writes the diagnostics JSON into `out` (at most `cap` bytes) and returns its full length; a
/// caller whose buffer was too small calls again with at least that many bytes.
///
/// # Safety
/// `out` must be valid for writes of `cap` bytes (or `cap` must be 0).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sluice_meter_diagnostics_v1(out: *mut u8, cap: usize) -> usize {
    let text = snapshot().to_string();
    let bytes = text.as_bytes();
    if !out.is_null() && cap > 0 {
        let n = bytes.len().min(cap);
        // SAFETY: the caller guarantees `out` is valid for `cap` bytes, and n <= cap.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), out, n) };
    }
    bytes.len()
}
