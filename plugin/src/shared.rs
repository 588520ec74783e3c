//! Meter readings shared between the audio thread (the only writer) and the editor, the
//! diagnostics export and the tests (readers), without locks.
//!
//! Every scalar is an atomic `f32`, written with relaxed stores after each 100 ms step; a value
//! that is undefined (no signal yet, or below the gate) is NaN. Arrays (per channel, spectrum,
//! history) are arrays of atomics: a reader may see one step's value beside the previous step's
//! in another slot, never a torn number. `steps` is bumped last with release ordering, so a
//! reader that loads it with acquire sees at least that step's values.

use nice_plug::prelude::AtomicF32;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

/// Most channels a layout has (5.1 is 6).
pub use sluice_core::formats::limits::MAX_CHANNELS;
/// Loudness history: 10 minutes at 10 values per second.
pub const HISTORY_LEN: usize = 6_000;
/// Steps (of 100 ms) per second.
pub const STEPS_PER_SECOND: u64 = 10;
/// Long loudness history: 6 hours at one value per second.
pub const LONG_HISTORY_LEN: usize = 6 * 3_600;
/// Points of the displayed spectrum (log-spaced from 20 Hz to 20 kHz).
pub const SPECTRUM_POINTS: usize = 240;
pub const SPECTRUM_LOW_HZ: f32 = 20.0;
pub const SPECTRUM_HIGH_HZ: f32 = 20_000.0;

fn atomics(n: usize, v: f32) -> Box<[AtomicF32]> {
    (0..n).map(|_| AtomicF32::new(v)).collect()
}

/// Centre frequency of displayed spectrum point `i`.
pub fn spectrum_point_hz(i: usize) -> f32 {
    let r = (SPECTRUM_HIGH_HZ / SPECTRUM_LOW_HZ).ln();
    SPECTRUM_LOW_HZ * ((i as f32 + 0.5) / SPECTRUM_POINTS as f32 * r).exp()
}

pub struct MeterShared {
    pub sample_rate: AtomicF32,
    pub channels: AtomicU32,
    /// Complete 100 ms steps measured since the last reset.
    pub steps: AtomicU64,

    /// LUFS.
    pub momentary: AtomicF32,
    pub short_term: AtomicF32,
    pub integrated: AtomicF32,
    pub max_momentary: AtomicF32,
    pub max_short_term: AtomicF32,
    /// LU.
    pub loudness_range: AtomicF32,
    /// dBTP, overall and per channel, since the last reset.
    pub true_peak: AtomicF32,
    pub true_peak_channel: Box<[AtomicF32]>,
    /// dBFS since the last reset, overall and per channel.
    pub sample_peak: AtomicF32,
    pub sample_peak_channel: Box<[AtomicF32]>,
    /// dBFS: the loudest sample of the last 100 ms step, per channel (for peak bars).
    pub peak_now_channel: Box<[AtomicF32]>,
    /// dBFS: RMS over the last 400 ms, per channel, and over everything since the reset.
    pub rms_channel: Box<[AtomicF32]>,
    pub rms_integrated: AtomicF32,
    /// Peak-to-loudness ratio: true peak − integrated loudness, LU.
    pub plr: AtomicF32,
    /// Stereo (first two channels): correlation −1..1 over the last 400 ms and since the reset;
    /// width 0 (mono) .. 0.5 (unrelated) .. 1 (inverted) over the last 400 ms.
    pub correlation: AtomicF32,
    pub correlation_integrated: AtomicF32,
    pub width: AtomicF32,
    /// The target in force and the distance from it (integrated − target, LU), and whether the
    /// true peak so far is above the target's ceiling.
    pub target_lufs: AtomicF32,
    pub target_ceiling: AtomicF32,
    pub distance_lu: AtomicF32,
    pub over_ceiling: AtomicBool,

    /// dB relative to a full-scale sine, smoothed (≈ 300 ms), at [`spectrum_point_hz`].
    pub spectrum: Box<[AtomicF32]>,
    /// Share of the 20 Hz–20 kHz power in the core's five bands, percent: of the smoothed
    /// spectrum (now), and of all the power since the reset (the long-term balance).
    pub band_share: Box<[AtomicF32]>,
    pub band_share_long: Box<[AtomicF32]>,

    /// Momentary and short-term loudness of each step, a ring of [`HISTORY_LEN`]; the value of
    /// step `k` (1-based, up to `steps`) is at `(k - 1) % HISTORY_LEN`.
    pub history_momentary: Box<[AtomicF32]>,
    pub history_short_term: Box<[AtomicF32]>,
    /// The true peak (all channels, dBTP) within each step, the same ring (for QC's
    /// true-peak events).
    pub history_true_peak: Box<[AtomicF32]>,
    /// Per second: the highest momentary loudness in it and the short-term loudness at its
    /// end, a ring of [`LONG_HISTORY_LEN`]; second `j` (1-based, up to `steps / 10`) is at
    /// `(j - 1) % LONG_HISTORY_LEN`.
    pub long_history_momentary: Box<[AtomicF32]>,
    pub long_history_short_term: Box<[AtomicF32]>,

    /// Set by a reader to clear the meters; the audio thread clears it.
    pub reset_request: AtomicBool,

    /// Recording: take status and overruns.
    pub record: RecordStatus,

    /// What the editor drew last (written by the editor, never by the audio thread).
    pub editor: crate::editor::drawn::Drawn,

    /// The reference tracks for A/B (loaded off the audio thread).
    pub references: Arc<crate::reference::References>,

    /// Delivery QC: the chosen specification (never read by the audio thread).
    pub qc: crate::qc_state::LiveQc,
}

impl Default for MeterShared {
    fn default() -> Self {
        let nan = f32::NAN;
        MeterShared {
            sample_rate: AtomicF32::new(0.0),
            channels: AtomicU32::new(0),
            steps: AtomicU64::new(0),
            momentary: AtomicF32::new(nan),
            short_term: AtomicF32::new(nan),
            integrated: AtomicF32::new(nan),
            max_momentary: AtomicF32::new(nan),
            max_short_term: AtomicF32::new(nan),
            loudness_range: AtomicF32::new(nan),
            true_peak: AtomicF32::new(nan),
            true_peak_channel: atomics(MAX_CHANNELS, nan),
            sample_peak: AtomicF32::new(nan),
            sample_peak_channel: atomics(MAX_CHANNELS, nan),
            peak_now_channel: atomics(MAX_CHANNELS, nan),
            rms_channel: atomics(MAX_CHANNELS, nan),
            rms_integrated: AtomicF32::new(nan),
            plr: AtomicF32::new(nan),
            correlation: AtomicF32::new(nan),
            correlation_integrated: AtomicF32::new(nan),
            width: AtomicF32::new(nan),
            target_lufs: AtomicF32::new(nan),
            target_ceiling: AtomicF32::new(nan),
            distance_lu: AtomicF32::new(nan),
            over_ceiling: AtomicBool::new(false),
            spectrum: atomics(SPECTRUM_POINTS, nan),
            band_share: atomics(sluice_core::analysis::spectrum::BANDS.len(), nan),
            band_share_long: atomics(sluice_core::analysis::spectrum::BANDS.len(), nan),
            history_momentary: atomics(HISTORY_LEN, nan),
            history_short_term: atomics(HISTORY_LEN, nan),
            history_true_peak: atomics(HISTORY_LEN, nan),
            long_history_momentary: atomics(LONG_HISTORY_LEN, nan),
            long_history_short_term: atomics(LONG_HISTORY_LEN, nan),
            reset_request: AtomicBool::new(false),
            record: Default::default(),
            editor: Default::default(),
            references: Default::default(),
            qc: Default::default(),
        }
    }
}

fn num(v: &AtomicF32) -> serde_json::Value {
    let x = v.load(Ordering::Relaxed);
    if x.is_finite() {
        serde_json::json!(x)
    } else {
        serde_json::Value::Null
    }
}

fn nums(v: &[AtomicF32], n: usize) -> serde_json::Value {
    serde_json::Value::Array(v[..n.min(v.len())].iter().map(num).collect())
}

impl MeterShared {
    /// Asks the audio thread to clear every meter at its next block.
    pub fn request_reset(&self) {
        self.reset_request.store(true, Ordering::Release);
    }

    /// The readings as JSON (undefined values are `null`), for the diagnostics export. Not for
    /// the audio thread: it allocates.
    pub fn to_json(&self) -> serde_json::Value {
        let steps = self.steps.load(Ordering::Acquire);
        let ch = self.channels.load(Ordering::Relaxed) as usize;
        let kept = (steps as usize).min(HISTORY_LEN);
        let first = steps as usize - kept;
        let hist = |ring: &[AtomicF32]| {
            serde_json::Value::Array(
                (first..steps as usize)
                    .map(|k| num(&ring[k % HISTORY_LEN]))
                    .collect(),
            )
        };
        serde_json::json!({
            "sample_rate": num(&self.sample_rate),
            "channels": ch,
            "steps": steps,
            "momentary_lufs": num(&self.momentary),
            "short_term_lufs": num(&self.short_term),
            "integrated_lufs": num(&self.integrated),
            "max_momentary_lufs": num(&self.max_momentary),
            "max_short_term_lufs": num(&self.max_short_term),
            "loudness_range_lu": num(&self.loudness_range),
            "true_peak_dbtp": num(&self.true_peak),
            "true_peak_channel_dbtp": nums(&self.true_peak_channel, ch),
            "sample_peak_dbfs": num(&self.sample_peak),
            "sample_peak_channel_dbfs": nums(&self.sample_peak_channel, ch),
            "peak_now_channel_dbfs": nums(&self.peak_now_channel, ch),
            "rms_channel_dbfs": nums(&self.rms_channel, ch),
            "rms_integrated_dbfs": num(&self.rms_integrated),
            "plr_lu": num(&self.plr),
            "correlation": num(&self.correlation),
            "correlation_integrated": num(&self.correlation_integrated),
            "width": num(&self.width),
            "target_lufs": num(&self.target_lufs),
            "target_ceiling_dbtp": num(&self.target_ceiling),
            "distance_lu": num(&self.distance_lu),
            "over_ceiling": self.over_ceiling.load(Ordering::Relaxed),
            "spectrum_db": nums(&self.spectrum, SPECTRUM_POINTS),
            "spectrum_hz": (0..SPECTRUM_POINTS).map(spectrum_point_hz).collect::<Vec<_>>(),
            "band_share_percent": nums(&self.band_share, self.band_share.len()),
            "band_share_long_percent": nums(&self.band_share_long, self.band_share_long.len()),
            "history_momentary_lufs": hist(&self.history_momentary),
            "history_short_term_lufs": hist(&self.history_short_term),
            "record": {
                "recording": self.record.recording.load(Ordering::Relaxed),
                "take_frames": self.record.take_frames.load(Ordering::Relaxed),
                "takes": self.record.takes.load(Ordering::Relaxed),
                "overruns": self.record.overruns.load(Ordering::Relaxed),
                "dropped_frames": self.record.dropped_frames.load(Ordering::Relaxed),
                "offline": self.record.offline.load(Ordering::Relaxed),
                "offline_waits": self.record.offline_waits.load(Ordering::Relaxed),
                "last_take": self.record.last_take().map(|p| p.to_string_lossy().into_owned()),
                "last_error": self.record.last_error(),
            },
            "editor": self.editor.to_json(),
            "references": {
                "slots": self.references.statuses(),
                "gain_db": num(&nice_plug::prelude::AtomicF32::new(self.references.gain_db())),
                "playing_lufs": self.references.playing_lufs().iter()
                    .map(|v| num(&nice_plug::prelude::AtomicF32::new(*v)))
                    .collect::<Vec<_>>(),
            },
        })
    }
}

/// Take status, written by the audio and writer threads, read by the editor and the tests.
#[derive(Debug, Default)]
pub struct RecordStatus {
    /// A take is being recorded (audio thread).
    pub recording: AtomicBool,
    /// Frames in the take in progress (writer).
    pub take_frames: AtomicU64,
    /// Takes completed since activation (writer).
    pub takes: AtomicU64,
    /// Times the ring was full and audio was dropped (audio thread).
    pub overruns: AtomicU64,
    /// The session renders offline: the audio thread waits for the writer (set at activation).
    pub offline: AtomicBool,
    /// Times an offline render waited for the writer (audio thread).
    pub offline_waits: AtomicU64,
    /// Frames dropped by those overruns.
    pub dropped_frames: AtomicU64,
    /// The last take's file and the last error (writer; never touched by the audio thread).
    pub last_take: Mutex<Option<PathBuf>>,
    pub last_error: Mutex<Option<String>>,
}

impl RecordStatus {
    pub fn set_error(&self, e: String) {
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
    }

    pub fn last_take(&self) -> Option<PathBuf> {
        self.last_take
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}
