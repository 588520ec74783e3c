//! Delivery QC: a file measured once ([`measure`]) and judged against a delivery
//! specification ([`spec::Spec`]) rule by rule ([`judge`]): each rule's measured value, its
//! limit and the verdict, and the file's verdict (it fails when any rule of severity `fail`
//! fails or cannot be measured).
//!
//! Integrated loudness is recomputed from the momentary (400 ms block) loudness every 100 ms,
//! with the gating the rule names: BS.1770-1's ungated mean, or the absolute (−70 LUFS) and
//! relative (−10 LU) gates of revisions 2 to 4 (which agree on this); speech gating keeps
//! only the blocks Sluice's speech detector ([`analysis::speech`]) marks: a 400 ms block is
//! speech when at least two of its four 100 ms steps are.

pub mod html;
pub mod spec;

pub use spec::{Gating, Measure, Rule, Severity, Spec, SpecError};

use crate::analysis::{self, AnalysisOptions, Section, loudness};
use crate::error::InputError;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Every figure a specification can ask about, from one decode of the file.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Measured {
    pub path: PathBuf,
    pub codec: String,
    pub channels: u32,
    pub sample_rate_hz: u32,
    pub bit_depth: Option<u32>,
    pub duration_s: f64,
    /// Integrated loudness with BS.1770-4 gating, LUFS.
    pub integrated_lufs: Option<f64>,
    pub loudness_range_lu: Option<f64>,
    pub max_momentary_lufs: Option<f64>,
    pub max_short_term_lufs: Option<f64>,
    pub true_peak_dbtp: Option<f64>,
    pub sample_peak_dbfs: Option<f64>,
    pub dc_offset_dbfs: Option<f64>,
    pub clipped_samples: u64,
    pub silence_threshold_dbfs: f64,
    pub leading_silence_s: f64,
    pub trailing_silence_s: f64,
    /// Momentary loudness of the 400 ms block ending at each 100 ms step (`None` under −70
    /// LUFS).
    pub momentary_lufs: Vec<Option<f64>>,
    /// Short-term (3 s) loudness at each 100 ms step.
    pub short_term_lufs: Vec<Option<f64>>,
    /// The true peak (all channels) within each 100 ms step, dBTP (`None`: silence).
    pub true_peak_history_dbtp: Vec<Option<f64>>,
    /// For each 100 ms step, whether it is speech (`None`: no detector ran).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub speech: Option<Vec<bool>>,
    /// The share of the file's 100 ms steps that are speech, 0–1 (when the detector ran).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub speech_share: Option<f64>,
    /// Speech segments, `[start, end]` in seconds (when the detector ran).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub speech_segments: Option<Vec<[f64; 2]>>,
    /// What the decoder reported about the file (damage, truncation).
    pub warnings: Vec<String>,
    /// Where the figures come from: a file, or a live meter (which cannot see what only the
    /// file holds: [`Rule::judged_live`]).
    #[serde(default, skip_serializing_if = "Origin::is_file")]
    pub origin: Origin,
    /// Seconds before the first step of the histories (a live meter keeps only the last
    /// minutes of a long session at 100 ms; a file's histories start at 0).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub history_start_s: f64,
}

fn is_zero(x: &f64) -> bool {
    *x == 0.0
}

/// Where a [`Measured`]'s figures come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// A whole file, decoded.
    #[default]
    File,
    /// A live meter (Sluice Meter's session): loudness, peaks, channels and rate only.
    Live,
}

impl Origin {
    pub fn is_file(&self) -> bool {
        *self == Origin::File
    }
}

/// The silence threshold the rules of `spec` ask for (the first one given; −60 dBFS).
pub fn silence_threshold(spec: &Spec) -> f64 {
    spec.rules
        .iter()
        .find_map(|r| r.threshold_dbfs)
        .unwrap_or(-60.0)
}

/// What to analyse for `spec`: loudness with its 100 ms history, levels, and speech when a
/// rule is speech-gated.
pub fn options(spec: &Spec) -> AnalysisOptions {
    let mut sections = vec![Section::Loudness, Section::Levels];
    if spec.rules.iter().any(|r| r.gating == Gating::Speech) {
        sections.push(Section::Speech);
    }
    AnalysisOptions {
        sections,
        loudness_history_seconds: Some(0.1),
        silence_threshold_dbfs: silence_threshold(spec),
        ..AnalysisOptions::default()
    }
}

/// Measure `path` for `spec` in one decode pass on this thread; `progress` gets the frames
/// decoded so far. (The command line analyses on several threads, then calls [`measured`].)
pub fn measure(
    path: &Path,
    spec: &Spec,
    progress: &mut dyn FnMut(u64),
) -> Result<Measured, InputError> {
    let opts = options(spec);
    let report = analysis::analyze(path, &opts, progress)?;
    Ok(measured(report, &opts))
}

/// The figures of an analysis made with [`options`].
pub fn measured(report: analysis::AnalysisReport, opts: &AnalysisOptions) -> Measured {
    let s = &report.stream;
    let loud = report.loudness.as_ref();
    let levels = report.levels.as_ref();
    let history = loud.and_then(|l| l.summary.history.clone());
    let dc = levels
        .map(|l| {
            l.dc_offset_per_channel
                .iter()
                .fold(0.0f64, |m, d| m.max(d.abs()))
        })
        .map(|d| 20.0 * d.log10());
    Measured {
        path: report.path.clone(),
        codec: s.codec.clone(),
        channels: s.channels,
        sample_rate_hz: s.sample_rate,
        // Integer PCM or a lossless codec's integers; float and lossy audio have no depth.
        bit_depth: s
            .bit_depth
            .filter(|_| s.sample_type == Some(crate::decode::SampleType::Int) && s.lossless),
        duration_s: s.duration_seconds.unwrap_or(0.0),
        integrated_lufs: loud.and_then(|l| l.summary.integrated_lufs),
        loudness_range_lu: loud.and_then(|l| l.summary.loudness_range_lu),
        max_momentary_lufs: loud.and_then(|l| l.summary.max_momentary_lufs),
        max_short_term_lufs: loud.and_then(|l| l.summary.max_short_term_lufs),
        true_peak_dbtp: loud.and_then(|l| l.true_peak_dbtp),
        sample_peak_dbfs: loud.and_then(|l| l.sample_peak_dbfs),
        dc_offset_dbfs: dc,
        clipped_samples: levels.map_or(0, |l| l.clipped_samples),
        silence_threshold_dbfs: opts.silence_threshold_dbfs,
        leading_silence_s: levels.map_or(0.0, |l| l.leading_silence_seconds),
        trailing_silence_s: levels.map_or(0.0, |l| l.trailing_silence_seconds),
        momentary_lufs: history
            .as_ref()
            .map(|h| h.momentary_lufs.clone())
            .unwrap_or_default(),
        short_term_lufs: history.map(|h| h.short_term_lufs).unwrap_or_default(),
        true_peak_history_dbtp: loud
            .and_then(|l| l.true_peak_history_dbtp.clone())
            .unwrap_or_default(),
        speech_share: report.speech.as_ref().map(|sp| sp.share),
        speech_segments: report.speech.as_ref().map(|sp| sp.segments.clone()),
        speech: report.speech.map(|sp| sp.steps),
        warnings: s.warnings.clone(),
        origin: Origin::File,
        history_start_s: 0.0,
    }
}

/// A rule's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Pass,
    Fail,
    /// Failed a rule of severity `warn`.
    Warn,
    /// The figure could not be measured (silence has no loudness; speech gating without
    /// speech): a failure for a `fail` rule.
    NotMeasured,
    /// Not judged live: a live meter cannot see it (codec, bit depth, DC, clipping, silence at
    /// head and tail, duration, speech gating); it is checked from the file. Neither passes nor
    /// fails the live verdict.
    FromFile,
}

/// A measured value: a number, a text, or nothing.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum Value {
    Number(f64),
    Text(String),
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Number(n) if n.fract() == 0.0 && n.abs() < 1e9 => write!(f, "{n:.0}"),
            Value::Number(n) => write!(f, "{n:.2}"),
            Value::Text(t) => f.write_str(t),
        }
    }
}

/// One rule judged.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Verdict {
    pub measure: Measure,
    #[serde(deserialize_with = "crate::interned::name")]
    pub unit: crate::interned::Name,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    /// The limit in words (`≤ -1.0`, `-23.0 ± 0.5`, `one of 48000`).
    pub limit: String,
    pub outcome: Outcome,
    pub severity: Severity,
    /// Why it could not be measured, or the rule's note.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A stretch of steps whose true peak is over the ceiling.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct PeakEvent {
    /// Start and end of the stretch, seconds from the start of the file.
    pub start_s: f64,
    pub end_s: f64,
    /// The highest true peak in it, dBTP.
    pub peak_dbtp: f64,
}

/// A file judged against a specification.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct QcReport {
    pub spec: String,
    pub spec_name: String,
    pub source: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    pub passed: bool,
    pub verdicts: Vec<Verdict>,
    /// The true-peak ceiling of the specification (its first `true_peak_dbtp` rule's `max`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ceiling_dbtp: Option<f64>,
    /// Where the true peak goes over that ceiling.
    pub true_peak_events: Vec<PeakEvent>,
    /// The loudness the specification aims at, `[low, high]` LUFS (its first integrated
    /// loudness rule's target ± tolerance, or its limits).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_band_lufs: Option<[f64; 2]>,
    pub measured: Measured,
}

/// The band of the first `integrated_lufs` rule: target ± tolerance, or min..max (a missing
/// side 1 LU from the other).
fn target_band(spec: &Spec) -> Option<[f64; 2]> {
    let r = spec
        .rules
        .iter()
        .find(|r| r.measure == Measure::IntegratedLufs)?;
    if let (Some(t), Some(tol)) = (r.target, r.tolerance) {
        return Some([t - tol, t + tol]);
    }
    match (r.min, r.max) {
        (Some(lo), Some(hi)) => Some([lo, hi]),
        (Some(lo), None) => Some([lo, lo + 1.0]),
        (None, Some(hi)) => Some([hi - 1.0, hi]),
        (None, None) => None,
    }
}

/// The specification's true-peak ceiling.
pub fn ceiling(spec: &Spec) -> Option<f64> {
    spec.rules
        .iter()
        .find(|r| r.measure == Measure::TruePeakDbtp)
        .and_then(|r| r.max)
}

/// The stretches of 100 ms steps whose true peak is over `ceiling` (rounded to the hundredth,
/// as the verdicts are).
pub fn peak_events(history: &[Option<f64>], ceiling: f64) -> Vec<PeakEvent> {
    let mut events: Vec<PeakEvent> = Vec::new();
    let mut open = false;
    for (i, p) in history.iter().enumerate() {
        match p.filter(|&p| shown(p) > ceiling) {
            Some(p) => {
                let (start, end) = (i as f64 * 0.1, (i + 1) as f64 * 0.1);
                match events.last_mut() {
                    Some(e) if open => {
                        e.end_s = end;
                        e.peak_dbtp = e.peak_dbtp.max(p);
                    }
                    _ => events.push(PeakEvent {
                        start_s: start,
                        end_s: end,
                        peak_dbtp: p,
                    }),
                }
                open = true;
            }
            None => open = false,
        }
    }
    events
}

/// For each 400 ms block (ending at step i), whether it is speech: at least two of its four
/// steps are.
pub fn speech_blocks(steps: &[bool]) -> Vec<bool> {
    (0..steps.len())
        .map(|i| {
            steps[i.saturating_sub(3)..=i]
                .iter()
                .filter(|&&s| s)
                .count()
                >= 2
        })
        .collect()
}

/// Integrated loudness of the momentary series with BS.1770 `revision`'s gating over the
/// steps `keep` allows (every step when `None`).
pub fn integrated(momentary: &[Option<f64>], revision: u8, keep: Option<&[bool]>) -> Option<f64> {
    // Block `i` (the 400 ms ending at step i) is whole from the fourth step on.
    let energies: Vec<f64> = momentary
        .iter()
        .enumerate()
        .skip(3)
        .filter(|(i, _)| keep.is_none_or(|k| k.get(*i).copied().unwrap_or(false)))
        .map(|(_, l)| l.map_or(0.0, |l| 10f64.powf((l + 0.691) / 10.0)))
        .collect();
    if energies.is_empty() {
        return None;
    }
    if revision <= 1 {
        let mean = energies.iter().sum::<f64>() / energies.len() as f64;
        return (mean > 0.0).then(|| loudness::lufs(mean));
    }
    loudness::gated_loudness(&energies)
}

/// The note of a rule a live meter does not judge.
pub const FROM_FILE: &str = "checked from the file (a live meter cannot see it)";

/// Why a rule has no value.
#[derive(Clone)]
enum Missing {
    /// A live meter cannot see it ([`FROM_FILE`]).
    FromFile,
    /// It could not be measured, and why.
    Why(String),
}

impl From<&str> for Missing {
    fn from(why: &str) -> Self {
        Missing::Why(why.to_string())
    }
}

impl From<String> for Missing {
    fn from(why: String) -> Self {
        Missing::Why(why)
    }
}

/// Integrated loudness already computed in this judgement, by (revision, gating): each is
/// worked out from the whole history once, however many rules ask for it.
type Integrations = Vec<((u8, Gating), Result<Value, Missing>)>;

/// The value of `rule`'s measure, or why there is none.
fn value_of(rule: &Rule, m: &Measured, done: &mut Integrations) -> Result<Value, Missing> {
    if rule.measure == Measure::IntegratedLufs {
        let key = (rule.revision.unwrap_or(4), rule.gating);
        if let Some((_, v)) = done.iter().find(|(k, _)| *k == key) {
            return v.clone();
        }
        let v = measured_value(rule, m);
        done.push((key, v.clone()));
        return v;
    }
    measured_value(rule, m)
}

/// The value of `rule`'s measure, or why there is none (worked out).
fn measured_value(rule: &Rule, m: &Measured) -> Result<Value, Missing> {
    if m.origin == Origin::Live && !rule.judged_live() {
        return Err(Missing::FromFile);
    }
    let num = |v: Option<f64>, why: &str| v.map(Value::Number).ok_or_else(|| Missing::from(why));
    match rule.measure {
        Measure::IntegratedLufs => {
            let revision = rule.revision.unwrap_or(4);
            let keep = match rule.gating {
                Gating::Programme => None,
                Gating::Speech => Some(speech_blocks(m.speech.as_deref().ok_or(
                    "speech-gated loudness needs the speech detector's steps (measure the file \
                     for this specification)",
                )?)),
            };
            if keep.as_ref().is_some_and(|k| !k.contains(&true)) {
                return Err("no speech found: speech-gated loudness has nothing to measure".into());
            }
            if revision != 4 && m.history_start_s > 0.0 {
                // Another revision's gating is recomputed from the history, which a live
                // meter holds only in part.
                return Err(Missing::FromFile);
            }
            let v = if revision == 4 && keep.is_none() {
                m.integrated_lufs
            } else {
                integrated(&m.momentary_lufs, revision, keep.as_deref())
            };
            num(v, "nothing passes the gates (silence, or under 400 ms)")
        }
        Measure::LoudnessRangeLu => num(m.loudness_range_lu, "too short or silent for a range"),
        Measure::MaxMomentaryLufs => num(m.max_momentary_lufs, "silent"),
        Measure::MaxShortTermLufs => num(m.max_short_term_lufs, "silent or under 3 s"),
        Measure::TruePeakDbtp => num(m.true_peak_dbtp, "no audio"),
        Measure::SamplePeakDbfs => num(m.sample_peak_dbfs, "no audio"),
        Measure::PlrLu => num(
            m.true_peak_dbtp.zip(m.integrated_lufs).map(|(p, i)| p - i),
            "no integrated loudness",
        ),
        Measure::DcOffsetDbfs => num(m.dc_offset_dbfs, "no audio"),
        Measure::ClippedSamples => Ok(Value::Number(m.clipped_samples as f64)),
        Measure::LeadingSilenceS => Ok(Value::Number(m.leading_silence_s)),
        Measure::TrailingSilenceS => Ok(Value::Number(m.trailing_silence_s)),
        Measure::Channels => Ok(Value::Number(f64::from(m.channels))),
        Measure::SampleRateHz => Ok(Value::Number(f64::from(m.sample_rate_hz))),
        Measure::BitDepth => num(
            m.bit_depth.map(f64::from),
            "not integer PCM or a lossless codec",
        ),
        Measure::Codec => Ok(Value::Text(m.codec.clone())),
        Measure::DurationS => Ok(Value::Number(m.duration_s)),
    }
}

/// The limit of `rule` in words.
pub fn limit_text(rule: &Rule) -> String {
    let mut parts = Vec::new();
    if let (Some(t), Some(tol)) = (rule.target, rule.tolerance) {
        parts.push(format!("{t:.1} ± {tol:.1}"));
    }
    if let Some(lo) = rule.min {
        parts.push(format!("≥ {lo}"));
    }
    if let Some(hi) = rule.max {
        parts.push(format!("≤ {hi}"));
    }
    if let Some(list) = &rule.one_of {
        let items: Vec<String> = list.iter().map(ToString::to_string).collect();
        parts.push(format!("one of {}", items.join(", ")));
    }
    parts.join(", ")
}

/// A figure as it is shown and judged: to the hundredth (a meter reading -23.004 is -23.00).
/// Verdicts, peak events and the CSV's over-ceiling flags all compare this.
fn shown(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Whether `v` keeps `rule`'s limits.
fn within(rule: &Rule, v: &Value) -> bool {
    match v {
        Value::Number(x) => {
            let x = shown(*x);
            rule.min.is_none_or(|lo| x >= lo)
                && rule.max.is_none_or(|hi| x <= hi)
                && rule
                    .target
                    .zip(rule.tolerance)
                    .is_none_or(|(t, tol)| (x - t).abs() <= tol + 1e-9)
                && rule.one_of.as_ref().is_none_or(|list| {
                    list.iter()
                        .any(|a| matches!(a, spec::Accepted::Number(n) if (n - x).abs() < 1e-9))
                })
        }
        Value::Text(t) => rule.one_of.as_ref().is_none_or(|list| {
            list.iter()
                .any(|a| matches!(a, spec::Accepted::Text(s) if s.eq_ignore_ascii_case(t)))
        }),
    }
}

/// Judge `measured` against every rule of `spec`.
pub fn judge(spec: &Spec, measured: Measured) -> QcReport {
    let mut done = Integrations::new();
    let verdicts: Vec<Verdict> = spec
        .rules
        .iter()
        .map(|rule| {
            let (value, outcome, why) = match value_of(rule, &measured, &mut done) {
                Ok(v) => {
                    let ok = within(rule, &v);
                    let outcome = match (ok, rule.severity) {
                        (true, _) => Outcome::Pass,
                        (false, Severity::Fail) => Outcome::Fail,
                        (false, Severity::Warn) => Outcome::Warn,
                    };
                    (Some(v), outcome, None)
                }
                Err(Missing::FromFile) => (None, Outcome::FromFile, Some(FROM_FILE.to_string())),
                Err(Missing::Why(why)) => (None, Outcome::NotMeasured, Some(why)),
            };
            Verdict {
                measure: rule.measure,
                unit: rule.measure.unit(),
                value,
                limit: limit_text(rule),
                outcome,
                severity: rule.severity,
                note: why.or_else(|| rule.note.clone()),
            }
        })
        .collect();
    let passed = verdicts.iter().all(|v| {
        v.outcome == Outcome::Pass
            || v.outcome == Outcome::Warn
            || v.outcome == Outcome::FromFile
            || (v.outcome == Outcome::NotMeasured && v.severity == Severity::Warn)
    });
    let ceiling_dbtp = ceiling(spec);
    QcReport {
        spec: spec.id.clone(),
        spec_name: spec.name.clone(),
        source: spec.source.clone(),
        url: spec.url.clone(),
        passed,
        verdicts,
        ceiling_dbtp,
        target_band_lufs: target_band(spec),
        true_peak_events: ceiling_dbtp
            .map(|c| {
                let mut e = peak_events(&measured.true_peak_history_dbtp, c);
                for e in &mut e {
                    e.start_s += measured.history_start_s;
                    e.end_s += measured.history_start_s;
                }
                e
            })
            .unwrap_or_default(),
        measured,
    }
}

/// A file's judgement as a job's report shows it beside the output it judged: the verdicts,
/// without the histories (those are in the QC page and CSV).
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct OutputQc {
    pub spec: String,
    pub spec_name: String,
    pub source: String,
    pub passed: bool,
    pub verdicts: Vec<Verdict>,
    pub true_peak_events: Vec<PeakEvent>,
    pub speech_share: Option<f64>,
}

impl QcReport {
    /// The verdicts without the histories, for a job's report.
    pub fn summary(&self) -> OutputQc {
        OutputQc {
            spec: self.spec.clone(),
            spec_name: self.spec_name.clone(),
            source: self.source.clone(),
            passed: self.passed,
            verdicts: self.verdicts.clone(),
            true_peak_events: self.true_peak_events.clone(),
            speech_share: self.measured.speech_share,
        }
    }

    /// The rules that fail the verdict (severity `fail`, failed or not measured), each as
    /// `measure value unit (limit …)`.
    pub fn broken(&self) -> Vec<String> {
        self.verdicts
            .iter()
            .filter(|v| {
                v.severity == Severity::Fail
                    && matches!(v.outcome, Outcome::Fail | Outcome::NotMeasured)
            })
            .map(|v| {
                let value = v
                    .value
                    .as_ref()
                    .map_or("not measured".into(), |x| format!("{x} {}", v.unit));
                format!("{} {} (limit {})", v.measure.name(), value.trim(), v.limit)
            })
            .collect()
    }
}

/// The loudness history as CSV, one row per 100 ms: time (the step's end, s), momentary and
/// short-term loudness (LUFS; empty under −70), the step's true peak (dBTP; empty for
/// silence), whether it is over the ceiling (when the specification has one) and whether it
/// is speech (when a detector ran).
pub fn history_csv(r: &QcReport) -> String {
    let m = &r.measured;
    let mut out = String::from("time_s,momentary_lufs,short_term_lufs,true_peak_dbtp");
    if r.ceiling_dbtp.is_some() {
        out.push_str(",over_ceiling");
    }
    if m.speech.is_some() {
        out.push_str(",speech");
    }
    out.push('\n');
    let cell = |v: Option<f64>| v.map(|v| format!("{v:.2}")).unwrap_or_default();
    let flag = |b: bool| if b { ",1" } else { ",0" };
    for (i, mo) in m.momentary_lufs.iter().enumerate() {
        let st = m.short_term_lufs.get(i).copied().flatten();
        let tp = m.true_peak_history_dbtp.get(i).copied().flatten();
        out.push_str(&format!(
            "{:.1},{},{},{}",
            m.history_start_s + (i + 1) as f64 * 0.1,
            cell(*mo),
            cell(st),
            cell(tp)
        ));
        if let Some(c) = r.ceiling_dbtp {
            out.push_str(flag(tp.is_some_and(|p| shown(p) > c)));
        }
        if let Some(s) = &m.speech {
            out.push_str(flag(s.get(i).copied().unwrap_or(false)));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ungated_and_gated_integration_differ_as_bs1770_says() {
        // 10 s at -20 LUFS, then 10 s at -40 LUFS: the relative gate (-30) drops the quiet
        // half; the ungated mean does not.
        let mut m = vec![Some(-20.0); 100];
        m.extend(vec![Some(-40.0); 100]);
        let gated = integrated(&m, 4, None).unwrap();
        let ungated = integrated(&m, 1, None).unwrap();
        assert!((gated + 20.0).abs() < 0.05, "{gated}");
        let want = loudness::lufs(
            (97.0 * 10f64.powf(-19.309 / 10.0) + 100.0 * 10f64.powf(-39.309 / 10.0)) / 197.0,
        );
        assert!((ungated - want).abs() < 1e-9, "{ungated} {want}");
        // Keeping only the quiet half.
        let keep: Vec<bool> = (0..200).map(|i| i >= 100).collect();
        let quiet = integrated(&m, 4, Some(&keep)).unwrap();
        assert!((quiet + 40.0).abs() < 0.05, "{quiet}");
    }

    /// A live meter's figures: programme at -23 LUFS, peaks at -2 dBTP, 30 s kept of a 40 s
    /// session.
    fn live(true_peak: f64) -> Measured {
        let steps = 300;
        let mut tp = vec![Some(-6.0); steps];
        tp[100] = Some(true_peak);
        Measured {
            path: "live".into(),
            codec: "live".into(),
            channels: 2,
            sample_rate_hz: 48_000,
            bit_depth: None,
            duration_s: 40.0,
            integrated_lufs: Some(-23.1),
            loudness_range_lu: Some(4.0),
            max_momentary_lufs: Some(-18.0),
            max_short_term_lufs: Some(-20.0),
            true_peak_dbtp: Some(true_peak),
            sample_peak_dbfs: Some(true_peak - 0.3),
            dc_offset_dbfs: None,
            clipped_samples: 0,
            silence_threshold_dbfs: -60.0,
            leading_silence_s: 0.0,
            trailing_silence_s: 0.0,
            momentary_lufs: vec![Some(-23.0); steps],
            short_term_lufs: vec![Some(-23.0); steps],
            true_peak_history_dbtp: tp,
            speech: None,
            speech_share: None,
            speech_segments: None,
            warnings: Vec::new(),
            origin: Origin::Live,
            history_start_s: 10.0,
        }
    }

    #[test]
    fn a_live_meter_judges_what_it_sees_and_leaves_the_rest_to_the_file() {
        let mut spec = spec::builtin("ebu-r128").unwrap();
        let rule = |m: Measure| Rule {
            measure: m,
            min: None,
            max: Some(100.0),
            target: None,
            tolerance: None,
            one_of: None,
            severity: Severity::Fail,
            gating: Gating::Programme,
            revision: None,
            threshold_dbfs: None,
            note: None,
        };
        spec.rules.push(rule(Measure::LeadingSilenceS));
        spec.rules.push(rule(Measure::DurationS));
        let speech = Rule {
            gating: Gating::Speech,
            ..rule(Measure::IntegratedLufs)
        };
        spec.rules.push(speech);
        let ungated = Rule {
            revision: Some(1),
            ..rule(Measure::IntegratedLufs)
        };
        spec.rules.push(ungated);
        let r = judge(&spec, live(-2.0));
        let outcomes: Vec<Outcome> = r.verdicts.iter().map(|v| v.outcome).collect();
        assert_eq!(
            outcomes,
            [
                Outcome::Pass,
                Outcome::Pass,
                Outcome::Pass,
                Outcome::FromFile,
                Outcome::FromFile,
                Outcome::FromFile,
                // BS.1770-1 is recomputed from the history, which holds only part of it.
                Outcome::FromFile,
            ],
            "{:?}",
            r.verdicts
        );
        assert!(r.passed, "rules checked from the file do not fail it");
        assert_eq!(r.verdicts[3].note.as_deref(), Some(FROM_FILE));
        // Over the ceiling: fails, and the event sits at its time in the session.
        let r = judge(&spec, live(-0.5));
        assert!(!r.passed);
        assert_eq!(r.verdicts[1].outcome, Outcome::Fail);
        assert_eq!(r.true_peak_events.len(), 1, "{:?}", r.true_peak_events);
        assert!((r.true_peak_events[0].start_s - 20.0).abs() < 1e-9);
        let csv = history_csv(&r);
        assert!(csv.lines().nth(1).unwrap().starts_with("10.1,"), "{csv}");
        // The same figures from a file are all judged.
        let mut file = live(-2.0);
        file.origin = Origin::File;
        file.history_start_s = 0.0;
        let r = judge(&spec, file);
        assert!(r.verdicts.iter().all(|v| v.outcome != Outcome::FromFile));
    }

    #[test]
    fn peak_events_join_neighbouring_steps_over_the_ceiling() {
        let h = [
            Some(-3.0),
            Some(-0.5),
            Some(-0.2),
            None,
            Some(-1.0),
            Some(-0.999),
            Some(0.4),
        ];
        let e = peak_events(&h, -1.0);
        assert_eq!(e.len(), 2, "{e:?}");
        assert_eq!((e[0].start_s, e[0].peak_dbtp), (0.1, -0.2));
        assert!((e[0].end_s - 0.3).abs() < 1e-9);
        // -0.999 reads -1.00: at the ceiling, not over it.
        assert_eq!((e[1].start_s, e[1].peak_dbtp), (0.6000000000000001, 0.4));
    }
}
