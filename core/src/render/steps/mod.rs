//! The step language: what a pipeline, `sluice export` and the plugin's normalized take ask
//! the render to do, as data. Pipeline TOML (written.rs: [`WrittenStep`], [`lower`]) and
//! command-line flags both lower into a `Vec<StepSpec>`; [`build`] turns steps into the chain of
//! stages, in their order. Adding a step is this folder: its variant here and its arm in
//! [`build`], its key and lowering in written.rs.
//!
//! The core runs no effects and opens no files for analysis: an effect step (a wasm module in
//! the host), an analyze step (a tap that needs the source's facts) and a match step's named
//! target (a reference track or a genre in the host's library) are resolved by a
//! [`StageResolver`] the caller supplies. [`NoResolver`] refuses effects and named match
//! targets, and leaves analysis out.

mod written;

pub use written::{
    EffectCheck, NormalizeError, Problem, TempoRangeError, WrittenDefaults, WrittenStep, lower,
    tempo_range,
};

use super::Stage;
use super::matching::{Match, MatchError, MatchOptions, MatchTarget};
use super::normalize::{Normalize, NormalizeTarget};
use super::parallel::Parallel;
use super::resample::{Resample, ResamplePrecision, ResampleQuality};
use super::stages::{ChannelMapping, Channels, Fade, FadeCurve, Gain, Region, TrimSilence};
use super::stretch::TimeStretch;
use crate::analysis::Section;
use serde::{Deserialize, Serialize};

/// One step of a render, in the order given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepSpec {
    /// Measure the signal where it stands (see [`super::analyze`]).
    Analyze(AnalyzeStep),
    /// Keep `start`..`end` seconds (`end` absent: to the end).
    Region {
        start: f64,
        end: Option<f64>,
    },
    /// Drop leading and trailing frames under `threshold_dbfs`, keeping `pad_seconds`.
    TrimSilence {
        threshold_dbfs: f64,
        pad_seconds: f64,
    },
    Fade {
        fade_in: f64,
        fade_out: f64,
        curve: FadeCurve,
    },
    Gain {
        db: f64,
    },
    Channels(ChannelMapping),
    /// To `sample_rate` (nothing when the signal is at that rate already).
    Resample {
        sample_rate: u32,
        quality: ResampleQuality,
    },
    Normalize(NormalizeTarget),
    /// An effect the [`StageResolver`] knows by name.
    Effect(EffectStep),
    /// Move the tonal balance, loudness and width toward a target's (see
    /// [`super::matching`]).
    Match(MatchStep),
    /// Compare the signal where it stands with a reference or a genre's profile (see
    /// [`crate::analysis::compare`]): a tap the [`StageResolver`] builds.
    Compare(CompareStep),
    /// A sub-chain mixed with the signal it was given (see [`super::parallel`]).
    Parallel(ParallelStep),
    /// Faster or slower at the same pitch (see [`super::stretch`]): `speed` 1.25 plays in 80 %
    /// of the time.
    TimeStretch {
        speed: f64,
    },
}

/// A parallel branch: its steps (effects, gains and further branches: what keeps the rate, the
/// channels and the timing) and the share of the output that is theirs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParallelStep {
    /// 0: only the dry signal; 1: only the branch's.
    pub mix: f64,
    pub steps: Vec<StepSpec>,
}

impl ParallelStep {
    /// The most branches within branches.
    pub const MAX_DEPTH: usize = 4;
    /// The steps a branch may hold, by their written keys: those that keep the rate, the
    /// channels and the timing.
    pub const KINDS: [&'static str; 3] = ["effect", "gain_db", "parallel"];

    /// Why a step of kind `kind` cannot be in a branch, if it cannot.
    pub fn refuse_kind(kind: &str) -> Option<String> {
        (!Self::KINDS.contains(&kind)).then(|| {
            format!(
                "a branch holds effect, gain_db and parallel steps (they keep the rate, the channels and the timing), not {kind}"
            )
        })
    }

    /// Why `steps` cannot be a branch's, if they cannot.
    pub fn check(&self) -> Result<(), String> {
        fn walk(steps: &[StepSpec], depth: usize) -> Result<(), String> {
            if depth > ParallelStep::MAX_DEPTH {
                return Err(format!(
                    "branches nest at most {} deep",
                    ParallelStep::MAX_DEPTH
                ));
            }
            if steps.is_empty() {
                return Err("a branch needs at least one step".into());
            }
            for s in steps {
                if let Some(refused) = ParallelStep::refuse_kind(s.kind()) {
                    return Err(refused);
                }
                if let StepSpec::Parallel(p) = s {
                    if !(0.0..=1.0).contains(&p.mix) {
                        return Err(format!("mix {} is outside 0 to 1", p.mix));
                    }
                    walk(&p.steps, depth + 1)?
                }
            }
            Ok(())
        }
        if !(0.0..=1.0).contains(&self.mix) {
            return Err(format!("mix {} is outside 0 to 1", self.mix));
        }
        walk(&self.steps, 1)
    }
}

impl StepSpec {
    /// The step's key as a pipeline writes it.
    pub fn kind(&self) -> &'static str {
        match self {
            StepSpec::Analyze(_) => "analyze",
            StepSpec::Region { .. } => "region",
            StepSpec::TrimSilence { .. } => "trim_silence",
            StepSpec::Fade { .. } => "fade",
            StepSpec::Gain { .. } => "gain_db",
            StepSpec::Channels(_) => "channels",
            StepSpec::Resample { .. } => "resample",
            StepSpec::Normalize(_) => "normalize",
            StepSpec::Effect(_) => "effect",
            StepSpec::Match(_) => "match",
            StepSpec::Compare(_) => "compare",
            StepSpec::Parallel(_) => "parallel",
            StepSpec::TimeStretch { .. } => "time_stretch",
        }
    }
}

/// Every effect step of `steps`, those in parallel branches included, in order.
pub fn effect_steps(steps: &[StepSpec]) -> Vec<&EffectStep> {
    let mut out = Vec::new();
    for s in steps {
        match s {
            StepSpec::Effect(e) => out.push(e),
            StepSpec::Parallel(p) => out.extend(effect_steps(&p.steps)),
            _ => {}
        }
    }
    out
}

/// A compare step: what with, and at which level recommendations are made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompareStep {
    /// A reference or a genre of the resolver's library (not given figures).
    pub target: MatchSource,
    #[serde(default)]
    pub level: crate::analysis::compare::Level,
}

/// A match step: what to match, and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MatchStep {
    pub target: MatchSource,
    #[serde(default)]
    pub options: MatchOptions,
}

/// Where a match step's target comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchSource {
    /// A reference track by name, from the [`StageResolver`]'s library.
    Reference(String),
    /// A genre's profile by name, from the [`StageResolver`]'s library.
    Genre(String),
    /// The figures themselves.
    Given(MatchTarget),
}

impl std::fmt::Display for MatchSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MatchSource::Reference(n) => write!(f, "reference {n:?}"),
            MatchSource::Genre(g) => write!(f, "genre {g:?}"),
            MatchSource::Given(_) => write!(f, "the given target"),
        }
    }
}

/// What an analyze step measures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnalyzeStep {
    pub sections: Vec<Section>,
    /// The preferred tempo range (BPM), when not the default.
    pub tempo_range: Option<(f64, f64)>,
}

/// An effect by name, with its parameters and the sandbox's limits where the step sets them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EffectStep {
    pub name: String,
    /// Parameter id and value, in the order given; checked by the resolver.
    pub params: Vec<(String, ParamValue)>,
    pub time_budget_ms: Option<u64>,
    pub memory_mb: Option<u64>,
    /// Audio for the effect's data slots (an impulse response): slot id and file, in the order
    /// given. A pipeline's paths are inside its root; an export's are absolute.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data: Vec<(String, String)>,
}

/// An effect parameter's value as a user writes it: a number, a switch or a choice's name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ParamValue {
    Bool(bool),
    Number(f64),
    Text(String),
}

impl std::fmt::Display for ParamValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParamValue::Bool(b) => write!(f, "{b}"),
            ParamValue::Number(n) => write!(f, "{n}"),
            ParamValue::Text(s) => write!(f, "{s:?}"),
        }
    }
}

/// Why steps could not become stages.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StepError {
    /// An effect step the resolver could not build (unknown, or a parameter it refuses).
    #[error("effect {name}: {message}")]
    Effect { name: String, message: String },
    /// A match step whose target could not be found, or whose options or target are refused.
    #[error("match {target}: {message}")]
    Match { target: String, message: String },
    /// A compare step whose target could not be found.
    #[error("compare {target}: {message}")]
    Compare { target: String, message: String },
    /// A parallel step whose branch cannot be one.
    #[error("parallel: {0}")]
    Parallel(String),
    /// A time stretch step out of range.
    #[error("time_stretch: {0}")]
    TimeStretch(String),
}

/// Builds the steps the core cannot: effects and analysis taps.
pub trait StageResolver {
    /// The stage of an effect step.
    fn effect(&mut self, step: &EffectStep) -> Result<Box<dyn Stage>, StepError>;
    /// The stage of an analyze step, or `None` to leave the step out of this chain (an analysis
    /// is made once: a resolver gives its tap to the first chain that asks).
    fn analyze(&mut self, step: &AnalyzeStep) -> Option<Box<dyn Stage>> {
        let _ = step;
        None
    }
    /// The target a match step names (a reference track or a genre; [`MatchSource::Given`]
    /// never reaches the resolver). By default there is no library to look in.
    fn match_target(&mut self, source: &MatchSource) -> Result<MatchTarget, StepError> {
        Err(StepError::Match {
            target: source.to_string(),
            message: "no reference library here: give the target's figures instead, or run the step where a library is (sluice with its references)".into(),
        })
    }
    /// The tap of a compare step: it measures the signal at its position; the resolver makes
    /// the comparison from what it measured. Refused where there is no library.
    fn compare(&mut self, step: &CompareStep) -> Result<Box<dyn Stage>, StepError> {
        Err(StepError::Compare {
            target: step.target.to_string(),
            message:
                "no reference library here: compare where a library is (sluice with its references)"
                    .into(),
        })
    }
}

/// A resolver for renders without effects: effect steps are refused, analysis left out.
pub struct NoResolver;

impl StageResolver for NoResolver {
    fn effect(&mut self, step: &EffectStep) -> Result<Box<dyn Stage>, StepError> {
        Err(StepError::Effect {
            name: step.name.clone(),
            message: "effects are not available here".into(),
        })
    }
}

/// The stages of `steps`, for a signal arriving at `rate`; resamplers compute in `precision`.
pub fn build(
    steps: &[StepSpec],
    mut rate: u32,
    precision: ResamplePrecision,
    resolver: &mut dyn StageResolver,
) -> Result<Vec<Box<dyn Stage>>, StepError> {
    let mut stages: Vec<Box<dyn Stage>> = Vec::new();
    for s in steps {
        match s {
            StepSpec::Analyze(a) => stages.extend(resolver.analyze(a)),
            StepSpec::Region { start, end } => stages.push(Box::new(Region::new(*start, *end))),
            StepSpec::TrimSilence {
                threshold_dbfs,
                pad_seconds,
            } => stages.push(Box::new(TrimSilence::new(*threshold_dbfs, *pad_seconds))),
            StepSpec::Fade {
                fade_in,
                fade_out,
                curve,
            } => {
                if *fade_in > 0.0 || *fade_out > 0.0 {
                    stages.push(Box::new(Fade::new(*fade_in, *fade_out, *curve)));
                }
            }
            StepSpec::Gain { db } => stages.push(Box::new(Gain::new(*db))),
            StepSpec::Channels(m) => stages.push(Box::new(Channels::new(m.clone()))),
            StepSpec::Resample {
                sample_rate,
                quality,
            } => {
                if *sample_rate != rate {
                    rate = *sample_rate;
                    stages.push(Box::new(
                        Resample::new(rate, *quality).with_precision(precision),
                    ));
                }
            }
            StepSpec::Normalize(t) => stages.push(Box::new(Normalize::new(*t))),
            StepSpec::Effect(e) => stages.push(resolver.effect(e)?),
            StepSpec::Match(m) => {
                let refused = |e: MatchError| StepError::Match {
                    target: m.target.to_string(),
                    message: e.to_string(),
                };
                m.options.check().map_err(refused)?;
                let target = match &m.target {
                    MatchSource::Given(t) => t.clone(),
                    named => resolver.match_target(named)?,
                };
                target.check().map_err(refused)?;
                stages.push(Box::new(Match::new(target, m.options)));
            }
            StepSpec::Compare(c) => stages.push(resolver.compare(c)?),
            StepSpec::TimeStretch { speed } => {
                if !super::stretch::SPEEDS.contains(speed) {
                    return Err(StepError::TimeStretch(format!(
                        "speed {speed} is outside 0.25 to 4"
                    )));
                }
                stages.push(Box::new(TimeStretch::new(*speed)));
            }
            StepSpec::Parallel(p) => {
                p.check().map_err(StepError::Parallel)?;
                let branch = build(&p.steps, rate, precision, resolver)?;
                stages.push(Box::new(Parallel::new(p.mix, branch)));
            }
        }
    }
    Ok(stages)
}

/// Sample rate and channel count after `steps`, from `rate` and `channels`.
pub fn signal_after(steps: &[StepSpec], mut rate: u32, mut channels: usize) -> (u32, usize) {
    for s in steps {
        match s {
            StepSpec::Channels(m) => channels = m.channels_after(channels),
            StepSpec::Resample { sample_rate, .. } => rate = *sample_rate,
            _ => {}
        }
    }
    (rate, channels)
}

/// The normalize step's target, if the steps have one.
pub fn normalize_target(steps: &[StepSpec]) -> Option<NormalizeTarget> {
    steps.iter().find_map(|s| match s {
        StepSpec::Normalize(t) => Some(*t),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_kinds() -> Vec<StepSpec> {
        vec![
            StepSpec::Analyze(AnalyzeStep {
                sections: vec![Section::Loudness, Section::Tempo],
                tempo_range: Some((88.0, 176.0)),
            }),
            StepSpec::Region {
                start: 1.5,
                end: None,
            },
            StepSpec::TrimSilence {
                threshold_dbfs: -60.0,
                pad_seconds: 0.05,
            },
            StepSpec::Fade {
                fade_in: 0.5,
                fade_out: 2.0,
                curve: FadeCurve::Logarithmic,
            },
            StepSpec::Gain { db: -3.0 },
            StepSpec::Channels(ChannelMapping::Pick(vec![1, 0])),
            StepSpec::Resample {
                sample_rate: 44_100,
                quality: ResampleQuality::Fft,
            },
            StepSpec::Match(MatchStep {
                target: MatchSource::Given(MatchTarget {
                    ltas: vec![
                        crate::analysis::spectrum::LtasPoint {
                            hz: 20.6,
                            db: -40.5,
                        },
                        crate::analysis::spectrum::LtasPoint {
                            hz: 21.8,
                            db: -41.25,
                        },
                    ],
                    loudness_lufs: Some(-11.5),
                    width: None,
                }),
                options: MatchOptions {
                    strength: 0.75,
                    loudness: true,
                    ..MatchOptions::default()
                },
            }),
            StepSpec::Normalize(NormalizeTarget::Loudness {
                lufs: -16.0,
                true_peak_dbtp: -1.0,
                limiter: true,
                rule: Default::default(),
            }),
            StepSpec::Effect(EffectStep {
                name: "eq".into(),
                params: vec![
                    ("type".into(), ParamValue::Text("highshelf".into())),
                    ("gain_db".into(), ParamValue::Number(-3.5)),
                    ("bypass".into(), ParamValue::Bool(false)),
                ],
                time_budget_ms: Some(200),
                memory_mb: None,
                data: Vec::new(),
            }),
        ]
    }

    /// Steps are data a server or a cluster message can carry: every kind survives JSON.
    #[test]
    fn every_step_kind_round_trips_through_json() {
        let steps = all_kinds();
        let text = serde_json::to_string(&steps).unwrap();
        let back: Vec<StepSpec> = serde_json::from_str(&text).unwrap();
        assert_eq!(back, steps, "{text}");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v[4], serde_json::json!({"gain": {"db": -3.0}}));
        assert_eq!(v[5], serde_json::json!({"channels": {"pick": [1, 0]}}));
        assert_eq!(v[7]["match"]["target"]["given"]["loudness_lufs"], -11.5);
        assert_eq!(v[7]["match"]["options"]["strength"], 0.75);
        // The options may be left out (the defaults), and so may any one of them.
        let named: StepSpec = serde_json::from_str(
            r#"{"match": {"target": {"genre": "techno"}, "options": {"width": true}}}"#,
        )
        .unwrap();
        assert_eq!(
            named,
            StepSpec::Match(MatchStep {
                target: MatchSource::Genre("techno".into()),
                options: MatchOptions {
                    width: true,
                    ..MatchOptions::default()
                },
            })
        );
    }

    /// A named match target needs a resolver with a library; a given one does not; bad
    /// options are refused when the chain is built.
    #[test]
    fn match_targets_are_resolved_or_refused() {
        for source in [
            MatchSource::Reference("Night Drive".into()),
            MatchSource::Genre("techno".into()),
        ] {
            let step = StepSpec::Match(MatchStep {
                target: source.clone(),
                options: MatchOptions::default(),
            });
            let e = build(&[step], 48_000, ResamplePrecision::Double, &mut NoResolver)
                .err()
                .expect("refused without a library");
            let text = e.to_string();
            assert!(
                text.starts_with(&format!("match {source}: no reference library here")),
                "{text}"
            );
        }
        let given = |options| {
            StepSpec::Match(MatchStep {
                target: MatchSource::Given(MatchTarget {
                    ltas: Vec::new(),
                    loudness_lufs: Some(-14.0),
                    width: Some(0.3),
                }),
                options,
            })
        };
        let stages = build(
            &[given(MatchOptions::default())],
            48_000,
            ResamplePrecision::Double,
            &mut NoResolver,
        )
        .unwrap();
        assert_eq!(stages[0].name(), "match");
        let e = build(
            &[given(MatchOptions {
                strength: 1.5,
                ..MatchOptions::default()
            })],
            48_000,
            ResamplePrecision::Double,
            &mut NoResolver,
        )
        .err()
        .unwrap();
        assert_eq!(
            e.to_string(),
            "match the given target: strength 1.5: from 0 to 1 (0 % to 100 %)"
        );
    }

    /// Without a resolver, effects are refused by name and analysis is left out; a resample to
    /// the rate the signal already has is no stage; the others are one stage each, in order.
    #[test]
    fn build_without_a_resolver() {
        let steps = all_kinds();
        let e = build(&steps, 48_000, ResamplePrecision::Double, &mut NoResolver)
            .err()
            .expect("the effect is refused");
        assert_eq!(e.to_string(), "effect eq: effects are not available here");
        let no_effect = &steps[..steps.len() - 1];
        let names = |rate| -> Vec<&'static str> {
            build(no_effect, rate, ResamplePrecision::Single, &mut NoResolver)
                .unwrap()
                .iter()
                .map(|s| s.name())
                .collect()
        };
        let at_44k = names(44_100);
        let at_48k = names(48_000);
        assert_eq!(at_48k.len(), at_44k.len() + 1, "{at_48k:?} / {at_44k:?}");
        assert!(!at_44k.contains(&"resample"), "{at_44k:?}");
        assert_eq!(
            at_48k.first(),
            Some(&"region"),
            "analysis left out: {at_48k:?}"
        );
        assert_eq!(at_48k.last(), Some(&"normalize"));
        assert_eq!(signal_after(no_effect, 48_000, 2), (44_100, 2));
        assert_eq!(
            signal_after(&[StepSpec::Channels(ChannelMapping::Mono)], 48_000, 6),
            (48_000, 1)
        );
    }

    /// A compare step survives JSON, and without a library it is refused by name.
    #[test]
    fn compare_steps_round_trip_and_are_refused_without_a_library() {
        let step = StepSpec::Compare(CompareStep {
            target: MatchSource::Genre("techno".into()),
            level: crate::analysis::compare::Level::Gentle,
        });
        let text = serde_json::to_string(&step).unwrap();
        assert_eq!(
            text,
            r#"{"compare":{"target":{"genre":"techno"},"level":"gentle"}}"#
        );
        assert_eq!(serde_json::from_str::<StepSpec>(&text).unwrap(), step);
        let e = build(&[step], 48_000, ResamplePrecision::Double, &mut NoResolver)
            .err()
            .expect("refused");
        assert!(
            e.to_string()
                .starts_with("compare genre \"techno\": no reference library here"),
            "{e}"
        );
    }
}
