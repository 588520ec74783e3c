//! The plugin's diagnostics hook and the process-wide registry of loaded plugin libraries.
//!
//! Sluice Meter exports an extra C symbol beside its CLAP and VST3 entry points
//! (`plugin/src/diagnostics.rs`):
//!
//! ```c
//! size_t sluice_meter_diagnostics_v1(uint8_t *out, size_t cap);
//! ```
//!
//! It writes a UTF-8 JSON array describing every live instance in that library
//! (`{"instance": N, "meters": {...}}`, the meter readings) into `out`, at most `cap` bytes, and
//! returns the full length it needs. The hosts look it up in the library they loaded: [`read`]
//! calls it, grows the buffer and retries when the answer did not fit, and parses the JSON; a
//! library without the symbol gives `None`.
//!
//! Libraries are opened once per path and never closed ([`library`]): a Rust plugin leaves
//! thread-locals and (nice-plug's) background threads behind, so `dlclose` is unsafe, and a
//! second `dlopen` of the same path returns the same handle, so the statics (the live instances
//! the hook reports) are the ones the host's instances use.

use anyhow::{Context, Result, bail};
use libloading::Library;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

/// The exported symbol's name.
pub const SYMBOL: &str = "sluice_meter_diagnostics_v1";

/// Its C signature.
pub type DiagnosticsFn = unsafe extern "C" fn(out: *mut u8, cap: usize) -> usize;

/// The library at `path`, opened on first use and never closed.
pub fn library(path: &Path) -> Result<&'static Library> {
    static LOADED: OnceLock<Mutex<HashMap<PathBuf, &'static Library>>> = OnceLock::new();
    let mut loaded = LOADED
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(lib) = loaded.get(path) {
        return Ok(lib);
    }
    // SAFETY: loading a plugin runs its initialisers, as in any host; the library is leaked, so
    // every symbol taken from it stays valid for the life of the process.
    let lib: &'static Library = Box::leak(Box::new(
        unsafe { Library::new(path) }.with_context(|| format!("loading {}", path.display()))?,
    ));
    loaded.insert(path.to_path_buf(), lib);
    Ok(lib)
}

/// The hook, if the library exports it.
pub fn lookup(lib: &'static Library) -> Option<DiagnosticsFn> {
    // SAFETY: the symbol, where it exists, has the documented signature.
    unsafe { lib.get::<DiagnosticsFn>(SYMBOL.as_bytes()) }
        .ok()
        .map(|sym| *sym)
}

/// Calls the hook with a buffer, growing it and calling again while the answer does not fit
/// (instances may appear between two calls), and parses the JSON.
pub fn read(hook: DiagnosticsFn) -> Result<serde_json::Value> {
    let mut buf = vec![0u8; 16 * 1024];
    for _ in 0..8 {
        // SAFETY: `buf` is valid for writes of `buf.len()` bytes.
        let needed = unsafe { hook(buf.as_mut_ptr(), buf.len()) };
        if needed <= buf.len() {
            let text = std::str::from_utf8(&buf[..needed])
                .with_context(|| format!("{SYMBOL} wrote {needed} bytes that are not UTF-8"))?;
            return serde_json::from_str(text).with_context(|| {
                format!("{SYMBOL} wrote {needed} bytes that are not JSON: {text:?}")
            });
        }
        // Some headroom, so one more instance appearing meanwhile does not cost another round.
        buf.resize(needed + needed / 4 + 256, 0);
    }
    bail!(
        "{SYMBOL} still needed more than {} bytes after 8 calls",
        buf.len()
    )
}

/// What the library reports: `None` when it does not export the hook, an error when what it
/// writes is not JSON.
pub fn from_library(lib: &'static Library) -> Result<Option<serde_json::Value>> {
    lookup(lib).map(read).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    static CALLS: AtomicUsize = AtomicUsize::new(0);

    /// A stand-in for the plugin: 40 000 bytes of JSON, more than the first buffer holds.
    unsafe extern "C" fn big(out: *mut u8, cap: usize) -> usize {
        CALLS.fetch_add(1, Ordering::SeqCst);
        let items: Vec<String> = (0..4000).map(|i| format!("{i:>8}")).collect();
        let text = format!("[{}]", items.join(","));
        let n = text.len().min(cap);
        // SAFETY: the caller passes a buffer of `cap` bytes.
        unsafe { std::ptr::copy_nonoverlapping(text.as_ptr(), out, n) };
        text.len()
    }

    unsafe extern "C" fn not_json(out: *mut u8, cap: usize) -> usize {
        let text = b"[1, 2";
        let n = text.len().min(cap);
        // SAFETY: the caller passes a buffer of `cap` bytes.
        unsafe { std::ptr::copy_nonoverlapping(text.as_ptr(), out, n) };
        text.len()
    }

    #[test]
    fn grows_the_buffer_and_parses() {
        let v = read(big).expect("the stand-in's JSON");
        let items = v.as_array().expect("an array");
        assert_eq!(items.len(), 4000);
        assert_eq!(items[3999], serde_json::json!(3999));
        assert_eq!(
            CALLS.load(Ordering::SeqCst),
            2,
            "one short call, one that fits"
        );
    }

    #[test]
    fn bad_json_is_an_error_that_shows_it() {
        let err = format!("{:#}", read(not_json).unwrap_err());
        assert!(err.contains("not JSON") && err.contains("[1, 2"), "{err}");
    }
}
