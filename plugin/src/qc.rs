//! Delivery QC in Sluice Meter: the session so far judged against a delivery specification
//! (the core's [`sluice_core::qc`], the same rules `sluice qc` applies to files), and the
//! session's report exported in the same three formats (JSON, a self-contained HTML page, the
//! loudness history as CSV).
//!
//! A meter sees the loudness, the peaks, the channels and the rate as they pass. What only the
//! file holds — codec, bit depth, DC offset, clipped samples, silence at head and tail, the
//! duration, speech-gated loudness — is listed as *checked from the file* (the core's
//! [`Outcome::FromFile`]) and neither passes nor fails the live verdict. Nothing here runs on
//! the audio thread: the figures are the engine's published atomics.
//!
//! The choice of specification is a persisted setting ([`crate::params::QcSettings`]), not a
//! parameter: a host cannot automate it, and it is saved with the session. The instance's
//! choice, loaded, is [`crate::qc_state::LiveQc`].

use crate::qc_state::{Exported, QcError};
use crate::shared::{HISTORY_LEN, MeterShared};
use sluice_core::qc::{self, Measured, Origin, QcReport};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

pub use sluice_core::qc::Outcome;

/// The session judged now: `None` without a specification or before the first 100 ms.
pub fn report(shared: &MeterShared) -> Option<Result<QcReport, QcError>> {
    let spec = match shared.qc.spec()? {
        Ok(s) => s,
        Err(e) => return Some(Err(e)),
    };
    let m = measured(shared, qc::silence_threshold(&spec))?;
    Some(Ok(qc::judge(&spec, m)))
}

/// Writes the session's report into `folder`: `<prefix> QC <spec> <date> <time>` as `.json`,
/// `.html` and `.csv`, each through a temporary file (never half written). The outcome is
/// also kept for the editor and the diagnostics.
pub fn export(shared: &MeterShared, folder: &Path, prefix: &str) -> Exported {
    let result = export_files(shared, folder, prefix);
    shared.qc.exported(result.clone());
    result
}

fn export_files(shared: &MeterShared, folder: &Path, prefix: &str) -> Exported {
    let report = match report(shared) {
        None if shared.qc.chosen().is_empty() => {
            return Err(QcError::NoSpec);
        }
        None => return Err(QcError::NothingMeasured),
        Some(r) => r?,
    };
    let (date, time) = crate::record::civil_now();
    let prefix = if prefix.trim().is_empty() {
        "Sluice Meter"
    } else {
        prefix.trim()
    };
    let stem = crate::record::sanitize(&format!("{prefix} QC {} {date} {time}", report.spec));
    let json = serde_json::to_string_pretty(&report).map_err(|e| QcError::Json(Arc::new(e)))?;
    let files = [
        ("json", json),
        ("html", qc::html::report_html(&report)),
        ("csv", qc::history_csv(&report)),
    ];
    let mut written = Vec::new();
    for (ext, text) in files {
        let path = folder.join(format!("{stem}.{ext}"));
        sluice_core::io::AtomicFile::write(&path, text.as_bytes())
            .map_err(|e| QcError::Write(Arc::new(e)))?;
        written.push(path);
    }
    Ok(written)
}

/// The diagnostics' view: the chosen specification and the live report (or why there is
/// none), and the last export.
pub fn to_json(shared: &MeterShared) -> serde_json::Value {
    let report = match report(shared) {
        None => serde_json::Value::Null,
        Some(Ok(r)) => serde_json::to_value(&r).unwrap_or(serde_json::Value::Null),
        Some(Err(e)) => serde_json::json!({ "error": e.to_string() }),
    };
    let export = match shared.qc.last_export() {
        None => serde_json::Value::Null,
        Some(Ok(files)) => serde_json::json!({ "files": files }),
        Some(Err(e)) => serde_json::json!({ "error": e.to_string() }),
    };
    serde_json::json!({ "spec": shared.qc.chosen(), "report": report, "export": export })
}

fn number(v: &nice_plug::prelude::AtomicF32) -> Option<f64> {
    let x = v.load(Ordering::Relaxed);
    x.is_finite().then_some(f64::from(x))
}

/// The session's figures as the core's QC reads a file's: the loudness, the peaks, the
/// channels and the rate, and the histories the meter keeps (the last [`HISTORY_LEN`] steps
/// of 100 ms). `None` before the first step.
pub fn measured(shared: &MeterShared, silence_threshold_dbfs: f64) -> Option<Measured> {
    let steps = shared.steps.load(Ordering::Acquire);
    if steps == 0 {
        return None;
    }
    let kept = (steps as usize).min(HISTORY_LEN);
    let first = steps as usize - kept;
    let ring = |r: &[nice_plug::prelude::AtomicF32]| -> Vec<Option<f64>> {
        (first..steps as usize)
            .map(|k| number(&r[k % HISTORY_LEN]))
            .collect()
    };
    let mut warnings = Vec::new();
    if first > 0 {
        warnings.push(format!(
            "the meter keeps the last {} minutes at 100 ms: the histories start {} into the \
             session (the figures cover all of it)",
            HISTORY_LEN / 600,
            sluice_core::time::clock(first as f64 / 10.0, 1, false)
        ));
    }
    Some(Measured {
        path: PathBuf::from("Sluice Meter session"),
        codec: "live".into(),
        channels: shared.channels.load(Ordering::Relaxed),
        sample_rate_hz: shared.sample_rate.load(Ordering::Relaxed).round() as u32,
        bit_depth: None,
        duration_s: steps as f64 / 10.0,
        integrated_lufs: number(&shared.integrated),
        loudness_range_lu: number(&shared.loudness_range),
        max_momentary_lufs: number(&shared.max_momentary),
        max_short_term_lufs: number(&shared.max_short_term),
        true_peak_dbtp: number(&shared.true_peak),
        sample_peak_dbfs: number(&shared.sample_peak),
        dc_offset_dbfs: None,
        clipped_samples: 0,
        silence_threshold_dbfs,
        leading_silence_s: 0.0,
        trailing_silence_s: 0.0,
        momentary_lufs: ring(&shared.history_momentary),
        short_term_lufs: ring(&shared.history_short_term),
        true_peak_history_dbtp: ring(&shared.history_true_peak),
        speech: None,
        speech_share: None,
        speech_segments: None,
        warnings,
        origin: Origin::Live,
        history_start_s: first as f64 / 10.0,
    })
}
