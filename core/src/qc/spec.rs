//! Delivery specifications as data: a TOML file names the specification, cites its source and
//! lists rules, each over one measured figure with its limits. The built-in ones live in
//! `core/specs/` (compiled in); a user's file has the same form (docs/QC.md).
//!
//! ```toml
//! id = "ebu-r128"
//! name = "EBU R 128"
//! source = "EBU R 128 v5.0 (2023), §2.1-2.5"
//! url = "https://tech.ebu.ch/publications/r128"
//!
//! [[rule]]
//! measure = "integrated_lufs"
//! target = -23.0
//! tolerance = 0.5
//!
//! [[rule]]
//! measure = "true_peak_dbtp"
//! max = -1.0
//! ```

use serde::{Deserialize, Serialize};
use std::path::Path;

/// A figure a rule can judge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Measure {
    /// Integrated loudness, LUFS, with the rule's gating and BS.1770 revision.
    IntegratedLufs,
    /// Loudness range (EBU Tech 3342), LU.
    LoudnessRangeLu,
    /// Highest momentary (400 ms) loudness, LUFS.
    MaxMomentaryLufs,
    /// Highest short-term (3 s) loudness, LUFS.
    MaxShortTermLufs,
    /// True peak over all channels, dBTP.
    TruePeakDbtp,
    /// Sample peak over all channels, dBFS.
    SamplePeakDbfs,
    /// Peak to loudness ratio: true peak minus integrated loudness, LU.
    PlrLu,
    /// The largest DC offset of any channel, dBFS (silence: −inf).
    DcOffsetDbfs,
    /// Samples at or over full scale (runs of clipping), counted over all channels.
    ClippedSamples,
    /// Seconds of silence at the start (under the rule's `threshold_dbfs`, default −60).
    LeadingSilenceS,
    /// Seconds of silence at the end.
    TrailingSilenceS,
    /// Number of channels.
    Channels,
    /// Sample rate, Hz.
    SampleRateHz,
    /// Bits per sample of integer audio (float and lossy audio have none).
    BitDepth,
    /// The codec's short name (`pcm_s24le`, `flac`, `mp3`, `aac`, `opus`...).
    Codec,
    /// Duration, seconds.
    DurationS,
}

impl Measure {
    /// The name used in specifications and reports.
    pub fn name(self) -> &'static str {
        match self {
            Measure::IntegratedLufs => "integrated_lufs",
            Measure::LoudnessRangeLu => "loudness_range_lu",
            Measure::MaxMomentaryLufs => "max_momentary_lufs",
            Measure::MaxShortTermLufs => "max_short_term_lufs",
            Measure::TruePeakDbtp => "true_peak_dbtp",
            Measure::SamplePeakDbfs => "sample_peak_dbfs",
            Measure::PlrLu => "plr_lu",
            Measure::DcOffsetDbfs => "dc_offset_dbfs",
            Measure::ClippedSamples => "clipped_samples",
            Measure::LeadingSilenceS => "leading_silence_s",
            Measure::TrailingSilenceS => "trailing_silence_s",
            Measure::Channels => "channels",
            Measure::SampleRateHz => "sample_rate_hz",
            Measure::BitDepth => "bit_depth",
            Measure::Codec => "codec",
            Measure::DurationS => "duration_s",
        }
    }

    /// The unit shown beside values.
    pub fn unit(self) -> &'static str {
        match self {
            Measure::IntegratedLufs | Measure::MaxMomentaryLufs | Measure::MaxShortTermLufs => {
                "LUFS"
            }
            Measure::LoudnessRangeLu | Measure::PlrLu => "LU",
            Measure::TruePeakDbtp => "dBTP",
            Measure::SamplePeakDbfs | Measure::DcOffsetDbfs => "dBFS",
            Measure::LeadingSilenceS | Measure::TrailingSilenceS | Measure::DurationS => "s",
            Measure::SampleRateHz => "Hz",
            Measure::BitDepth => "bits",
            Measure::ClippedSamples | Measure::Channels | Measure::Codec => "",
        }
    }

    /// Whether the figure is text (judged by `one_of` only).
    pub fn is_text(self) -> bool {
        self == Measure::Codec
    }
}

/// How integrated loudness is gated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Gating {
    /// Over the whole programme (BS.1770's gates).
    #[default]
    Programme,
    /// Over the blocks the speech detector marks as speech only (dialogue gating).
    Speech,
}

/// What a failed rule means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// The delivery is refused.
    #[default]
    Fail,
    /// Reported, but the file still passes.
    Warn,
}

/// A value a `one_of` rule accepts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Accepted {
    Number(f64),
    Text(String),
}

impl std::fmt::Display for Accepted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Accepted::Number(n) => write!(f, "{n}"),
            Accepted::Text(t) => f.write_str(t),
        }
    }
}

/// One rule: a measure and its limits (`min`, `max`, `target` ± `tolerance`, `one_of`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub measure: Measure,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<f64>,
    /// With `target`: how far from it a value may lie (either way).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerance: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub one_of: Option<Vec<Accepted>>,
    #[serde(default)]
    pub severity: Severity,
    /// For `integrated_lufs`: programme or speech gating.
    #[serde(default)]
    pub gating: Gating,
    /// For `integrated_lufs`: the BS.1770 revision (1: no gating; 2, 3, 4: the absolute and
    /// relative gates). Default 4.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<u8>,
    /// For silence: the level under which audio counts as silent, dBFS (default −60).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold_dbfs: Option<f64>,
    /// Why the rule is there, or the clause of the specification it comes from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Rule {
    /// Whether a live meter (Sluice Meter) judges this rule: loudness with programme gating,
    /// range, maxima, peaks, PLR, channels and rate. The rest (codec, bit depth, DC,
    /// clipping, silence at head and tail, duration, speech gating) only the file shows.
    pub fn judged_live(&self) -> bool {
        match self.measure {
            Measure::IntegratedLufs => self.gating == Gating::Programme,
            Measure::LoudnessRangeLu
            | Measure::MaxMomentaryLufs
            | Measure::MaxShortTermLufs
            | Measure::TruePeakDbtp
            | Measure::SamplePeakDbfs
            | Measure::PlrLu
            | Measure::Channels
            | Measure::SampleRateHz => true,
            Measure::DcOffsetDbfs
            | Measure::ClippedSamples
            | Measure::LeadingSilenceS
            | Measure::TrailingSilenceS
            | Measure::BitDepth
            | Measure::Codec
            | Measure::DurationS => false,
        }
    }
}

/// A delivery specification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// Short name (`ebu-r128`), how `--spec` names it.
    pub id: String,
    pub name: String,
    /// The document (title, version, clause) the limits come from.
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// One sentence on what it is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    #[serde(rename = "rule")]
    pub rules: Vec<Rule>,
}

/// A specification that cannot be used, and why.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("{path}: cannot read the specification: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a specification: {detail}")]
    Parse { path: String, detail: String },
    #[error("{path}: rule {index} ({measure}): {detail}")]
    Rule {
        path: String,
        index: usize,
        measure: &'static str,
        detail: String,
    },
    #[error(
        "no specification `{0}`: give a built-in name ({names}) or a TOML file",
        names = builtin_ids().join(", ")
    )]
    Unknown(String),
}

/// The built-in specifications' TOML, by file name.
const BUILTIN: &[(&str, &str)] = &[
    ("ebu-r128", include_str!("../../specs/ebu-r128.toml")),
    ("ebu-r128-s1", include_str!("../../specs/ebu-r128-s1.toml")),
    ("atsc-a85", include_str!("../../specs/atsc-a85.toml")),
    ("netflix", include_str!("../../specs/netflix.toml")),
    (
        "apple-podcasts",
        include_str!("../../specs/apple-podcasts.toml"),
    ),
    ("spotify", include_str!("../../specs/spotify.toml")),
    ("youtube", include_str!("../../specs/youtube.toml")),
    (
        "amazon-music",
        include_str!("../../specs/amazon-music.toml"),
    ),
    ("aes-td1004", include_str!("../../specs/aes-td1004.toml")),
    ("aes-td1008", include_str!("../../specs/aes-td1008.toml")),
    ("arib-tr-b32", include_str!("../../specs/arib-tr-b32.toml")),
    ("op-59", include_str!("../../specs/op-59.toml")),
];

/// The built-in specifications' ids.
pub fn builtin_ids() -> Vec<&'static str> {
    BUILTIN.iter().map(|(id, _)| *id).collect()
}

/// Every built-in specification (each parsed and checked by the tests).
pub fn builtins() -> Vec<Spec> {
    BUILTIN
        .iter()
        .filter_map(|(id, text)| parse(text, &format!("built-in {id}")).ok())
        .collect()
}

/// The built-in specification `id` (any case), parsed.
pub fn builtin(id: &str) -> Option<Spec> {
    BUILTIN
        .iter()
        .find(|(b, _)| b.eq_ignore_ascii_case(id))
        .and_then(|(b, text)| parse(text, &format!("built-in {b}")).ok())
}

/// A built-in specification by id, or a TOML file by path.
pub fn load(name_or_path: &str) -> Result<Spec, SpecError> {
    if let Some((id, text)) = BUILTIN
        .iter()
        .find(|(id, _)| id.eq_ignore_ascii_case(name_or_path))
    {
        return parse(text, &format!("built-in {id}"));
    }
    let path = Path::new(name_or_path);
    if !path.exists() {
        return Err(SpecError::Unknown(name_or_path.to_string()));
    }
    let shown = path.display().to_string();
    // A specification is a few kilobytes of a regular file: a device, FIFO or folder is
    // refused before it is opened (reading /dev/zero would never end, a FIFO would wait for
    // a writer), and no more than the limit is read even if the file grows meanwhile.
    const LIMIT: u64 = 1 << 20;
    let meta = std::fs::metadata(path).map_err(|source| SpecError::Read {
        path: shown.clone(),
        source,
    })?;
    if !meta.is_file() {
        return Err(SpecError::Parse {
            path: shown,
            detail: "not a regular file".into(),
        });
    }
    if meta.len() > LIMIT {
        return Err(SpecError::Parse {
            path: shown,
            detail: format!("{} bytes is not a specification", meta.len()),
        });
    }
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| {
            std::io::Read::read_to_string(&mut std::io::Read::take(f, LIMIT + 1), &mut text)
        })
        .map_err(|source| SpecError::Read {
            path: shown.clone(),
            source,
        })?;
    if text.len() as u64 > LIMIT {
        return Err(SpecError::Parse {
            path: shown,
            detail: "over a megabyte: not a specification".into(),
        });
    }
    parse(&text, &shown)
}

/// Parse and check a specification (`shown` names it in errors).
pub fn parse(text: &str, shown: &str) -> Result<Spec, SpecError> {
    let spec: Spec = toml::from_str(text).map_err(|e| SpecError::Parse {
        path: shown.to_string(),
        detail: e.to_string(),
    })?;
    validated(spec, shown)
}

/// `spec` (read from elsewhere, a pipeline's `[[qc_spec]]`) if its id and rules make sense;
/// `shown` names it in the error.
pub fn validated(spec: Spec, shown: &str) -> Result<Spec, SpecError> {
    if spec.id.trim().is_empty() || spec.rules.is_empty() {
        return Err(SpecError::Parse {
            path: shown.to_string(),
            detail: "it needs an id and at least one [[rule]]".to_string(),
        });
    }
    if spec.rules.len() > MAX_RULES {
        return Err(SpecError::Parse {
            path: shown.to_string(),
            detail: format!(
                "{} rules: a specification holds at most {MAX_RULES}",
                spec.rules.len()
            ),
        });
    }
    for (i, rule) in spec.rules.iter().enumerate() {
        check_rule(rule).map_err(|detail| SpecError::Rule {
            path: shown.to_string(),
            index: i + 1,
            measure: rule.measure.name(),
            detail,
        })?;
    }
    Ok(spec)
}

/// The most rules a specification may hold (the built-in ones have at most a dozen; a file
/// or an HTTP body of thousands would be work for nothing).
pub const MAX_RULES: usize = 100;

/// What makes a rule unusable.
fn check_rule(r: &Rule) -> Result<(), String> {
    let numbers = [r.min, r.max, r.target, r.tolerance, r.threshold_dbfs];
    if numbers.iter().flatten().any(|v| !v.is_finite()) {
        return Err("limits must be finite numbers".into());
    }
    let bounded = r.min.is_some() || r.max.is_some() || r.target.is_some();
    if !bounded && r.one_of.is_none() {
        return Err("give min, max, target (with tolerance) or one_of".into());
    }
    if r.measure.is_text() && bounded {
        return Err("a text measure takes one_of only".into());
    }
    if r.target.is_some() != r.tolerance.is_some() {
        return Err("target and tolerance go together".into());
    }
    if r.tolerance.is_some_and(|t| t < 0.0) {
        return Err("the tolerance cannot be negative".into());
    }
    if let (Some(lo), Some(hi)) = (r.min, r.max)
        && lo > hi
    {
        return Err(format!("min {lo} is above max {hi}"));
    }
    if r.one_of.as_ref().is_some_and(Vec::is_empty) {
        return Err("one_of lists nothing".into());
    }
    if r.measure != Measure::IntegratedLufs
        && (r.revision.is_some() || r.gating != Gating::Programme)
    {
        return Err("gating and revision belong to integrated_lufs".into());
    }
    if r.revision.is_some_and(|v| !(1..=4).contains(&v)) {
        return Err("BS.1770 revisions are 1 to 4".into());
    }
    let silence = matches!(
        r.measure,
        Measure::LeadingSilenceS | Measure::TrailingSilenceS
    );
    if r.threshold_dbfs.is_some() && !silence {
        return Err("threshold_dbfs belongs to the silence measures".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A specification of thousands of rules (a file, or an HTTP body under its 1 MiB) is
    /// refused before anything is measured; at the limit, rules that ask for the same
    /// integration get the same value (worked out once per judgement).
    #[test]
    fn a_specification_of_too_many_rules_is_refused() {
        let rule = "[[rule]]\nmeasure = \"integrated_lufs\"\nmax = 0\nrevision = 1\n";
        let head = "id = \"many\"\nname = \"many\"\nsource = \"an attack\"\n";
        let e = parse(
            &format!("{head}{}", rule.repeat(MAX_RULES + 1)),
            "many.toml",
        )
        .unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("many.toml") && text.contains("at most 100"),
            "{text}"
        );
        let spec = parse(&format!("{head}{}", rule.repeat(MAX_RULES)), "many.toml").unwrap();
        let mut m = vec![Some(-20.0); 300];
        m.extend(vec![Some(-40.0); 300]);
        let measured = crate::qc::Measured {
            momentary_lufs: m,
            ..test_measured()
        };
        let r = crate::qc::judge(&spec, measured);
        let first = r.verdicts[0].value.clone();
        assert!(first.is_some());
        assert!(r.verdicts.iter().all(|v| v.value == first));
    }

    /// An empty measurement of a 60 s file.
    fn test_measured() -> crate::qc::Measured {
        crate::qc::Measured {
            path: "x.wav".into(),
            codec: "pcm_s16le".into(),
            channels: 2,
            sample_rate_hz: 48_000,
            bit_depth: Some(16),
            duration_s: 60.0,
            integrated_lufs: None,
            loudness_range_lu: None,
            max_momentary_lufs: None,
            max_short_term_lufs: None,
            true_peak_dbtp: None,
            sample_peak_dbfs: None,
            dc_offset_dbfs: None,
            clipped_samples: 0,
            silence_threshold_dbfs: -60.0,
            leading_silence_s: 0.0,
            trailing_silence_s: 0.0,
            momentary_lufs: Vec::new(),
            short_term_lufs: Vec::new(),
            true_peak_history_dbtp: Vec::new(),
            speech: None,
            speech_share: None,
            speech_segments: None,
            warnings: Vec::new(),
            origin: crate::qc::Origin::File,
            history_start_s: 0.0,
        }
    }

    #[test]
    fn every_builtin_parses_and_cites_its_source() {
        assert_eq!(builtins().len(), BUILTIN.len());
        for (id, text) in BUILTIN {
            let s = parse(text, id).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(&s.id, id);
            assert!(s.source.len() > 20, "{id}: cite the source");
            assert!(s.url.is_some(), "{id}: the source's address");
        }
    }

    #[test]
    fn bad_rules_are_refused_with_the_rule_named() {
        let head = "id = \"x\"\nname = \"X\"\nsource = \"s\"\n[[rule]]\n";
        for (body, says) in [
            ("measure = \"true_peak_dbtp\"\n", "give min"),
            ("measure = \"codec\"\nmax = 3\n", "one_of only"),
            ("measure = \"true_peak_dbtp\"\ntarget = -1\n", "go together"),
            ("measure = \"plr_lu\"\nmin = 9\nmax = 3\n", "above max"),
            (
                "measure = \"true_peak_dbtp\"\nmax = -1\nrevision = 2\n",
                "integrated_lufs",
            ),
            (
                "measure = \"integrated_lufs\"\nmax = -1\nrevision = 7\n",
                "1 to 4",
            ),
        ] {
            let e = parse(&format!("{head}{body}"), "my.toml")
                .unwrap_err()
                .to_string();
            assert!(e.contains("my.toml") && e.contains(says), "{e}");
        }
        let e = parse("id = 3", "bad.toml").unwrap_err().to_string();
        assert!(e.contains("bad.toml"), "{e}");
        let e = parse(
            &format!("{head}measure = \"loudness\"\nmax = 1\n"),
            "m.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("m.toml"), "{e}");
        assert!(matches!(load("no-such-spec"), Err(SpecError::Unknown(_))));
    }
}
