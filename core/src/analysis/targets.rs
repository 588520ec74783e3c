//! Loudness delivery targets: presets as data, and how far a measured file is from each.

use super::{AnalysisReport, Analyzer};
use serde::{Deserialize, Serialize};

/// A delivery target: integrated loudness and a true-peak ceiling.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Target {
    /// Stable identifier (`spotify`, `ebu_r128`...), or the name given to a custom target.
    pub id: String,
    pub name: String,
    pub integrated_lufs: f64,
    pub true_peak_dbtp: f64,
}

/// The built-in presets: (id, name, integrated LUFS, true-peak ceiling dBTP).
pub const PRESETS: &[(&str, &str, f64, f64)] = &[
    ("spotify", "Spotify / YouTube", -14.0, -1.0),
    ("apple_music", "Apple Music", -16.0, -1.0),
    ("podcast", "Podcast", -16.0, -1.0),
    ("ebu_r128", "EBU R 128 broadcast", -23.0, -1.0),
    ("atsc_a85", "ATSC A/85 broadcast", -24.0, -2.0),
];

/// Why a target (`NAME=LUFS[,DBTP]` or a preset id) was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TargetError {
    #[error("`{spec}` is neither a preset ({presets}) nor NAME=LUFS[,DBTP]")]
    NotATarget { spec: String, presets: String },
    #[error("`{spec}`: the target needs a name before `=`")]
    NoName { spec: String },
    #[error("`{spec}`: {what} `{value}` is not a number")]
    NotANumber {
        spec: String,
        what: &'static str,
        value: String,
    },
    #[error("`{spec}`: give the loudness in LUFS after `=`")]
    NoLoudness { spec: String },
    #[error("`{spec}`: expected NAME=LUFS[,DBTP]")]
    Shape { spec: String },
    #[error("`{spec}`: loudness {lufs} LUFS is outside −70..0")]
    Loudness { spec: String, lufs: f64 },
    #[error("`{spec}`: true-peak ceiling {dbtp} dBTP is outside −20..+3")]
    Ceiling { spec: String, dbtp: f64 },
}

impl Target {
    /// All built-in presets.
    pub fn presets() -> Vec<Target> {
        PRESETS
            .iter()
            .map(|&(id, name, i, tp)| Target {
                id: id.into(),
                name: name.into(),
                integrated_lufs: i,
                true_peak_dbtp: tp,
            })
            .collect()
    }

    /// A preset by id.
    /// Also accepts dashes for underscores and the short names `apple`, `atsc`, `youtube`
    /// and `ebu`.
    pub fn preset(id: &str) -> Option<Target> {
        let id = id.trim().to_ascii_lowercase().replace('-', "_");
        let id = match id.as_str() {
            "apple" => "apple_music",
            "atsc" | "a85" => "atsc_a85",
            "youtube" => "spotify",
            "ebu" | "r128" => "ebu_r128",
            other => other,
        };
        Self::presets().into_iter().find(|t| t.id == id)
    }

    /// Parse `NAME=LUFS[,DBTP]` (for example `club=-9,-0.3`; the ceiling defaults to −1 dBTP)
    /// or a preset id.
    pub fn parse(spec: &str) -> Result<Target, TargetError> {
        if let Some(t) = Self::preset(spec) {
            return Ok(t);
        }
        let spec_ = || spec.to_string();
        let (name, values) = spec
            .split_once('=')
            .ok_or_else(|| TargetError::NotATarget {
                spec: spec_(),
                presets: PRESETS.iter().map(|p| p.0).collect::<Vec<_>>().join(", "),
            })?;
        let name = name.trim();
        if name.is_empty() {
            return Err(TargetError::NoName { spec: spec_() });
        }
        let mut parts = values.split(',').map(str::trim);
        let num = |s: Option<&str>, what: &'static str| -> Result<Option<f64>, TargetError> {
            match s {
                None | Some("") => Ok(None),
                Some(v) => v
                    .parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite())
                    .map(Some)
                    .ok_or_else(|| TargetError::NotANumber {
                        spec: spec_(),
                        what,
                        value: v.to_string(),
                    }),
            }
        };
        let i = num(parts.next(), "loudness")?
            .ok_or_else(|| TargetError::NoLoudness { spec: spec_() })?;
        let tp = num(parts.next(), "true-peak ceiling")?.unwrap_or(-1.0);
        if parts.next().is_some() {
            return Err(TargetError::Shape { spec: spec_() });
        }
        if !(-70.0..=0.0).contains(&i) {
            return Err(TargetError::Loudness {
                spec: spec_(),
                lufs: i,
            });
        }
        if !(-20.0..=3.0).contains(&tp) {
            return Err(TargetError::Ceiling {
                spec: spec_(),
                dbtp: tp,
            });
        }
        Ok(Target {
            id: name.into(),
            name: name.into(),
            integrated_lufs: i,
            true_peak_dbtp: tp,
        })
    }

    /// How far a file measured at `integrated` LUFS with `true_peak` dBTP is from this target.
    pub fn assess(&self, integrated: Option<f64>, true_peak: Option<f64>) -> TargetCheck {
        let gain = integrated.map(|i| self.integrated_lufs - i);
        let after = gain.zip(true_peak).map(|(g, tp)| tp + g);
        TargetCheck {
            target: self.clone(),
            gain_db: gain,
            true_peak_after_gain_dbtp: after,
            exceeds_ceiling: after.map(|a| a > self.true_peak_dbtp),
            max_gain_within_ceiling_db: true_peak.map(|tp| self.true_peak_dbtp - tp),
        }
    }
}

/// One target against a measured file. Undefined when the file has no integrated loudness.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct TargetCheck {
    #[serde(flatten)]
    pub target: Target,
    /// Gain that brings the file to the target loudness, dB (negative: turn down).
    pub gain_db: Option<f64>,
    /// The true peak after that gain, dBTP.
    pub true_peak_after_gain_dbtp: Option<f64>,
    /// Whether that true peak would exceed the ceiling (a limiter would be needed).
    pub exceeds_ceiling: Option<bool>,
    /// The most gain the file takes before its true peak reaches the ceiling, dB.
    pub max_gain_within_ceiling_db: Option<f64>,
}

/// Targets need the loudness and true peak: finished after them.
pub(super) struct TargetsA(pub(super) Vec<Target>);

impl Analyzer for TargetsA {
    fn feed(&mut self, _: &[&[f32]]) {}
    fn finish(self: Box<Self>, r: &mut AnalysisReport) {
        let (i, tp) = r.loudness.as_ref().map_or((None, None), |l| {
            (l.summary.integrated_lufs, l.true_peak_dbtp)
        });
        r.targets = Some(self.0.iter().map(|t| t.assess(i, tp)).collect());
    }
    fn cost(&self) -> f64 {
        0.0
    }
    fn name(&self) -> &'static str {
        "targets"
    }
}
