//! The written form of steps: a pipeline's `[[step]]` tables as TOML gives them, every value
//! with its place in the file, and their lowering into [`StepSpec`] with messages that point at
//! the value they are about.
//!
//! Adding a step is this folder: its [`StepSpec`] variant and its arm in [`super::build`]
//! (mod.rs), and here its key in [`WrittenStep`] and its arm in [`lower`]. The host's pipeline
//! parser holds `Vec<Spanned<WrittenStep>>` and reports the [`Problem`]s; the one thing it
//! checks itself is an effect step against the effects there are ([`EffectCheck`]).

use super::{
    AnalyzeStep, CompareStep, EffectStep, MatchSource, MatchStep, ParallelStep, ParamValue,
    StepSpec,
};
use crate::analysis::Section;
use crate::analysis::targets::Target;
use crate::render::matching::{MAX_GAIN_DB, MAX_SMOOTHING_OCTAVES, MatchOptions};
use crate::render::normalize::{AlbumMode, GainRule, NormalizeTarget, gain_limit};
use crate::render::resample::ResampleQuality;
use crate::render::stages::{ChannelMapping, FadeCurve};
use serde::Deserialize;
use std::ops::Range;
use toml::Spanned;

/// A problem with a written step, at the byte range (in the file's text) of what it is about.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub span: Range<usize>,
    pub message: String,
}

/// What a written step may leave to the configuration.
#[derive(Debug, Clone, Copy)]
pub struct WrittenDefaults {
    /// `normalize = {}`'s loudness, LUFS.
    pub target_lufs: f64,
    /// A loudness normalize step's true-peak ceiling when it gives none, dBTP.
    pub target_true_peak_dbtp: f64,
}

fn problem(problems: &mut Vec<Problem>, span: Range<usize>, message: impl Into<String>) {
    problems.push(Problem {
        span,
        message: message.into(),
    });
}

/// An effect step: its parameters as values (a number, a switch or a choice's name), its
/// limits in range, then checked by `effects` against the effect's own description.
fn effect_step(
    problems: &mut Vec<Problem>,
    st: &WrittenStep,
    name: &Spanned<String>,
    effects: &mut dyn EffectCheck,
) -> Option<StepSpec> {
    let before = problems.len();
    let mut params = Vec::new();
    if let Some(t) = &st.params {
        for (k, v) in t.get_ref() {
            let value = match v {
                toml::Value::Boolean(b) => ParamValue::Bool(*b),
                toml::Value::String(s) => ParamValue::Text(s.clone()),
                toml::Value::Integer(i) => ParamValue::Number(*i as f64),
                toml::Value::Float(f) => ParamValue::Number(*f),
                other => {
                    problem(
                        problems,
                        t.span(),
                        format!(
                            "effect {}: {k} = {other}: give a number, true or false, or a choice's name",
                            name.get_ref()
                        ),
                    );
                    continue;
                }
            };
            params.push((k.clone(), value));
        }
    }
    if let Some(b) = &st.time_budget_ms
        && !(1..=60_000).contains(b.get_ref())
    {
        problem(problems, b.span(), "time_budget_ms: from 1 to 60000");
    }
    if let Some(m) = &st.memory_mb
        && !(1..=4096).contains(m.get_ref())
    {
        problem(problems, m.span(), "memory_mb: from 1 to 4096");
    }
    let mut data = Vec::new();
    if let Some(t) = &st.data {
        for (k, v) in t.get_ref() {
            match v.as_str() {
                Some(path) => data.push((k.clone(), path.to_string())),
                None => problem(
                    problems,
                    t.span(),
                    format!(
                        "effect {}: data {k}: give the audio file's path in the root, as text",
                        name.get_ref()
                    ),
                ),
            }
        }
    }
    let step = EffectStep {
        name: name.get_ref().clone(),
        params,
        time_budget_ms: st.time_budget_ms.as_ref().map(|b| *b.get_ref()),
        memory_mb: st.memory_mb.as_ref().map(|m| *m.get_ref()),
        data,
    };
    let params_span = st.params.as_ref().map_or(name.span(), |t| t.span());
    problems.extend(effects.check(&step, name.span(), params_span));
    (problems.len() == before).then_some(StepSpec::Effect(step))
}

/// The check the core cannot make: an effect step against the effects there are.
pub trait EffectCheck {
    /// The problems of `step`; `name` is the span of the effect's name, `params` of its
    /// parameters table (the name's when it has none).
    fn check(
        &mut self,
        step: &EffectStep,
        name: Range<usize>,
        params: Range<usize>,
    ) -> Vec<Problem>;
}

#[derive(Deserialize)]
#[serde(
    untagged,
    expecting = "true, false, or the step's options (see pipelines/README.md)"
)]
enum Flag<T> {
    On(bool),
    With(T),
}

/// `analyze = ["loudness", ...]` or `analyze = { sections = [...] }`.
#[derive(Deserialize)]
#[serde(untagged)]
enum WrittenAnalyze {
    List(Vec<String>),
    Table(WrittenAnalyzeTable),
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct WrittenAnalyzeTable {
    sections: Option<Vec<String>>,
    tempo_range: Option<[f64; 2]>,
}

/// A preferred tempo range as a user gives it: 30-300 BPM, at least an octave wide (so every
/// tempo has an octave inside it).
pub fn tempo_range(lo: f64, hi: f64) -> Result<(f64, f64), TempoRangeError> {
    if !(lo.is_finite()
        && hi.is_finite()
        && (30.0..=300.0).contains(&lo)
        && (30.0..=300.0).contains(&hi))
    {
        return Err(TempoRangeError::Bounds { lo, hi });
    }
    if hi < 2.0 * lo {
        return Err(TempoRangeError::Narrow { lo, hi });
    }
    Ok((lo, hi))
}

/// Why a tempo range is refused.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum TempoRangeError {
    #[error("tempo range {lo}-{hi} BPM: give two tempos from 30 to 300")]
    Bounds { lo: f64, hi: f64 },
    #[error(
        "tempo range {lo}-{hi} BPM: make it at least an octave wide (the higher at least twice the lower, e.g. {lo}-{}) so every tempo has an octave inside it",
        2.0 * lo
    )]
    Narrow { lo: f64, hi: f64 },
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct WrittenTrim {
    threshold_dbfs: Option<f64>,
    pad_seconds: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WrittenRegion {
    start: Option<f64>,
    end: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WrittenFade {
    #[serde(rename = "in")]
    fade_in: Option<f64>,
    out: Option<f64>,
    curve: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum WrittenResample {
    Rate(u32),
    With {
        sample_rate: u32,
        quality: Option<String>,
    },
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct WrittenNormalize {
    loudness_lufs: Option<f64>,
    true_peak_dbtp: Option<f64>,
    preset: Option<String>,
    peak_dbfs: Option<f64>,
    limiter: Option<bool>,
    /// Never raise the level (the gain at most 0 dB).
    lower_only: Option<bool>,
    /// The largest gain, dB.
    max_gain_db: Option<f64>,
    /// One gain for an album (the folder a file arrived in): "album" or "album-loudest".
    album: Option<String>,
}

/// `match = { reference = "NAME" | genre = "G", strength = 0.5 | "50%", eq = true, ... }`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WrittenMatch {
    reference: Option<Spanned<String>>,
    genre: Option<Spanned<String>>,
    strength: Option<Spanned<WrittenStrength>>,
    eq: Option<bool>,
    loudness: Option<bool>,
    width: Option<bool>,
    max_gain_db: Option<Spanned<f64>>,
    smoothing_octaves: Option<Spanned<f64>>,
}

/// A strength as a fraction (0.5) or a percentage ("50%").
#[derive(Deserialize)]
#[serde(untagged)]
enum WrittenStrength {
    Fraction(f64),
    Percent(String),
}

/// `time_stretch = { speed = 1.25 }`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WrittenStretch {
    speed: f64,
}

/// `parallel = { mix = 0.3, steps = [{ effect = "reverb" }, ...] }`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WrittenParallel {
    mix: Option<Spanned<f64>>,
    steps: Option<Spanned<Vec<Spanned<WrittenStep>>>>,
}

/// A `parallel` step: its branch lowered as a chain of its own (problems said as the branch's),
/// holding only what keeps the rate, the channels and the timing.
fn parallel_step(
    problems: &mut Vec<Problem>,
    p: &Spanned<WrittenParallel>,
    defaults: WrittenDefaults,
    effects: &mut dyn EffectCheck,
    depth: usize,
) -> Option<StepSpec> {
    let before = problems.len();
    let w = p.get_ref();
    let mix = w.mix.as_ref().map_or(0.5, |m| *m.get_ref());
    if !(0.0..=1.0).contains(&mix) {
        let span = w.mix.as_ref().map_or(p.span(), |m| m.span());
        problem(
            problems,
            span,
            "parallel: mix from 0 (only the dry signal) to 1 (only the branch)",
        );
    }
    let Some(written) = w.steps.as_ref().filter(|s| !s.get_ref().is_empty()) else {
        problem(
            problems,
            p.span(),
            "parallel: give the branch's steps, steps = [{ effect = \"...\" }, ...]",
        );
        return None;
    };
    if depth >= ParallelStep::MAX_DEPTH {
        problem(
            problems,
            p.span(),
            format!(
                "parallel: branches nest at most {} deep",
                ParallelStep::MAX_DEPTH
            ),
        );
        return None;
    }
    for s in written.get_ref() {
        if let Some(refused) = kinds_of(s.get_ref())
            .into_iter()
            .find_map(ParallelStep::refuse_kind)
        {
            problem(problems, s.span(), format!("parallel: {refused}"));
        }
    }
    if problems.len() != before {
        return None;
    }
    let (steps, inner) = lower_at(written.get_ref(), defaults, effects, depth + 1);
    problems.extend(inner.into_iter().map(|mut pr| {
        pr.message = format!("parallel branch: {}", pr.message);
        pr
    }));
    (problems.len() == before).then_some(StepSpec::Parallel(ParallelStep { mix, steps }))
}

/// `compare = { reference = "NAME" | genre = "G", level = "suggestive" }`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WrittenCompare {
    reference: Option<Spanned<String>>,
    genre: Option<Spanned<String>>,
    level: Option<Spanned<String>>,
}

/// The reference or genre a match or compare step names (exactly one, not blank).
fn library_target(
    problems: &mut Vec<Problem>,
    span: std::ops::Range<usize>,
    reference: &Option<Spanned<String>>,
    genre: &Option<Spanned<String>>,
    step: &str,
) -> Option<MatchSource> {
    let name = |n: &Spanned<String>, problems: &mut Vec<Problem>, what: &str| {
        let v = n.get_ref().trim().to_string();
        if v.is_empty() {
            problem(problems, n.span(), format!("{step}: {what} needs a name"));
        }
        v
    };
    match (reference, genre) {
        (Some(r), None) => Some(MatchSource::Reference(name(r, problems, "reference"))),
        (None, Some(g)) => Some(MatchSource::Genre(name(g, problems, "genre"))),
        (Some(_), Some(g)) => {
            problem(
                problems,
                g.span(),
                format!("{step}: give reference or genre, not both"),
            );
            None
        }
        (None, None) => {
            problem(
                problems,
                span,
                format!(
                    "{step}: give what to {}: reference = \"NAME\" (a track in the library) or genre = \"GENRE\"",
                    if step == "match" {
                        "match"
                    } else {
                        "compare with"
                    }
                ),
            );
            None
        }
    }
}

/// A compare step's values checked.
fn compare_step(problems: &mut Vec<Problem>, c: &Spanned<WrittenCompare>) -> Option<StepSpec> {
    let before = problems.len();
    let w = c.get_ref();
    let target = library_target(problems, c.span(), &w.reference, &w.genre, "compare");
    let level = match &w.level {
        None => crate::analysis::compare::Level::default(),
        Some(l) => match crate::analysis::compare::Level::parse(l.get_ref().trim()) {
            Some(l) => l,
            None => {
                problem(
                    problems,
                    l.span(),
                    format!(
                        "compare: level {:?}: gentle, suggestive or assertive",
                        l.get_ref()
                    ),
                );
                crate::analysis::compare::Level::default()
            }
        },
    };
    let target = target?;
    (problems.len() == before).then_some(StepSpec::Compare(CompareStep { target, level }))
}

/// A match step's values checked; its problems pushed, pointing at the value they are about.
fn match_step(
    problems: &mut Vec<Problem>,
    m: &Spanned<WrittenMatch>,
    normalized: bool,
) -> Option<StepSpec> {
    let before = problems.len();
    let w = m.get_ref();
    if normalized {
        problem(
            problems,
            m.span(),
            "match after normalize: it changes the loudness and the peaks the normalize step settled; move the match step before the normalize step",
        );
    }
    let target = library_target(problems, m.span(), &w.reference, &w.genre, "match");
    let defaults = MatchOptions::default();
    let strength = match &w.strength {
        None => defaults.strength,
        Some(s) => {
            let value = match s.get_ref() {
                WrittenStrength::Fraction(f) => Some(*f),
                WrittenStrength::Percent(p) => p
                    .trim()
                    .strip_suffix('%')
                    .and_then(|n| n.trim().parse::<f64>().ok())
                    .map(|n| n / 100.0),
            };
            match value.filter(|v| (0.0..=1.0).contains(v)) {
                Some(v) => v,
                None => {
                    problem(
                        problems,
                        s.span(),
                        "match: strength from 0 to 1, or a percentage from \"0%\" to \"100%\"",
                    );
                    defaults.strength
                }
            }
        }
    };
    let max_gain_db = match &w.max_gain_db {
        None => defaults.max_gain_db,
        Some(g) => {
            let v = *g.get_ref();
            if !(v > 0.0 && v <= MAX_GAIN_DB) {
                problem(
                    problems,
                    g.span(),
                    format!("match: max_gain_db more than 0, at most {MAX_GAIN_DB} dB"),
                );
            }
            v
        }
    };
    let smoothing_octaves = match &w.smoothing_octaves {
        None => defaults.smoothing_octaves,
        Some(o) => {
            let v = *o.get_ref();
            if !(0.0..=MAX_SMOOTHING_OCTAVES).contains(&v) {
                problem(
                    problems,
                    o.span(),
                    format!("match: smoothing_octaves from 0 to {MAX_SMOOTHING_OCTAVES}"),
                );
            }
            v
        }
    };
    let options = MatchOptions {
        strength,
        eq: w.eq.unwrap_or(defaults.eq),
        loudness: w.loudness.unwrap_or(defaults.loudness),
        width: w.width.unwrap_or(defaults.width),
        max_gain_db,
        smoothing_octaves,
    };
    if !(options.eq || options.loudness || options.width) {
        problem(
            problems,
            m.span(),
            "match: eq, loudness and width are all off: turn at least one on",
        );
    }
    let target = target?;
    (problems.len() == before).then_some(StepSpec::Match(MatchStep { target, options }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WrittenStep {
    analyze: Option<Spanned<Flag<WrittenAnalyze>>>,
    region: Option<Spanned<WrittenRegion>>,
    trim_silence: Option<Spanned<Flag<WrittenTrim>>>,
    fade: Option<Spanned<WrittenFade>>,
    gain_db: Option<Spanned<f64>>,
    channels: Option<Spanned<String>>,
    resample: Option<Spanned<WrittenResample>>,
    normalize: Option<Spanned<WrittenNormalize>>,
    /// Match a reference's or a genre's tonal balance, loudness and width.
    #[serde(rename = "match")]
    matching: Option<Spanned<WrittenMatch>>,
    /// Compare the signal here with a reference or a genre (the comparison goes in the report).
    compare: Option<Spanned<WrittenCompare>>,
    /// A wasm effect by name (built in, or a .wasm file in the root's effects folder).
    effect: Option<Spanned<String>>,
    params: Option<Spanned<toml::Table>>,
    /// The least time one call into the effect gets, in milliseconds (default 50; a block
    /// also gets 10 times its own duration).
    time_budget_ms: Option<Spanned<u64>>,
    /// The effect's memory cap in MiB (default 256).
    memory_mb: Option<Spanned<u64>>,
    /// Audio files for the effect's data slots (`{ ir = "irs/hall.wav" }`), inside the root.
    data: Option<Spanned<toml::Table>>,
    /// A branch of steps mixed with the signal it was given.
    parallel: Option<Spanned<WrittenParallel>>,
    /// Faster or slower at the same pitch.
    time_stretch: Option<Spanned<WrittenStretch>>,
}

/// The steps written, in order, and every problem found in them (the steps are only used when
/// there is none). Besides each step's own values, the chain is checked: one analyze step,
/// one normalize step, no channels or match step after the normalize step.
pub fn lower(
    written: &[Spanned<WrittenStep>],
    defaults: WrittenDefaults,
    effects: &mut dyn EffectCheck,
) -> (Vec<StepSpec>, Vec<Problem>) {
    lower_at(written, defaults, effects, 0)
}

/// [`lower`] for a chain `depth` branches deep.
fn lower_at(
    written: &[Spanned<WrittenStep>],
    defaults: WrittenDefaults,
    effects: &mut dyn EffectCheck,
    depth: usize,
) -> (Vec<StepSpec>, Vec<Problem>) {
    let mut problems = Vec::new();
    let mut steps = Vec::new();
    for (i, s) in written.iter().enumerate() {
        let span = s.span();
        let st = s.get_ref();
        let kinds = kinds_of(st);
        if kinds.len() != 1 {
            problem(
                &mut problems,
                span,
                format!(
                    "step {}: each [[step]] does one thing (analyze, region, trim_silence, fade, gain_db, channels, resample, normalize, match, compare, effect, parallel or time_stretch); this one has {}",
                    i + 1,
                    if kinds.is_empty() {
                        "none".to_string()
                    } else {
                        kinds.join(", ")
                    }
                ),
            );
            continue;
        }
        effect_keys_elsewhere(&mut problems, st);
        if let Some(a) = &st.analyze {
            steps.extend(analyze_step(&mut problems, a, &steps));
        } else if let Some(r) = &st.region {
            let (start, end) = (r.get_ref().start.unwrap_or(0.0), r.get_ref().end);
            if !(start.is_finite() && start >= 0.0) || end.is_some_and(|e| e.is_nan() || e <= start)
            {
                problem(
                    &mut problems,
                    r.span(),
                    "region: start must be 0 or more seconds, and end after start",
                );
            }
            steps.push(StepSpec::Region { start, end });
        } else if let Some(t) = &st.trim_silence {
            steps.extend(trim_step(&mut problems, t));
        } else if let Some(f) = &st.fade {
            steps.push(fade_step(&mut problems, f));
        } else if let Some(g) = &st.gain_db {
            if !(-96.0..=48.0).contains(g.get_ref()) {
                problem(&mut problems, g.span(), "gain_db: from -96 to 48 dB");
            }
            steps.push(StepSpec::Gain { db: *g.get_ref() });
        } else if let Some(ch) = &st.channels {
            if steps.iter().any(|s| matches!(s, StepSpec::Normalize(_))) {
                // The loudness was measured on the channels before this mapping: a downmix
                // (or an upmix) after it would miss the target.
                problem(
                    &mut problems,
                    ch.span(),
                    "channels after normalize: the loudness is measured before this step, so a changed channel layout would miss the target; move this channels step before the normalize step (or map the channels in the [[output]], which is measured on its own)",
                );
            }
            match ChannelMapping::parse(ch.get_ref()) {
                Some(m) => steps.push(StepSpec::Channels(m)),
                None => problem(
                    &mut problems,
                    ch.span(),
                    format!("channels {}: {}", ch.get_ref(), ChannelMapping::SPELLING),
                ),
            }
        } else if let Some(r) = &st.resample {
            steps.push(resample_step(&mut problems, r));
        } else if let Some(n) = &st.normalize {
            match normalize(n.get_ref(), defaults) {
                Ok(t) => steps.push(StepSpec::Normalize(t)),
                Err(e) => problem(&mut problems, n.span(), format!("normalize: {e}")),
            }
        } else if let Some(c) = &st.compare {
            if steps.iter().any(|s| matches!(s, StepSpec::Compare(_))) {
                problem(&mut problems, c.span(), "one compare step per pipeline");
            } else {
                steps.extend(compare_step(&mut problems, c));
            }
        } else if let Some(m) = &st.matching {
            let normalized = steps.iter().any(|s| matches!(s, StepSpec::Normalize(_)));
            steps.extend(match_step(&mut problems, m, normalized));
        } else if let Some(e) = &st.effect
            && let Some(step) = effect_step(&mut problems, st, e, effects)
        {
            steps.push(step);
        } else if let Some(p) = &st.parallel {
            steps.extend(parallel_step(&mut problems, p, defaults, effects, depth));
        } else if let Some(t) = &st.time_stretch {
            let speed = t.get_ref().speed;
            if !crate::render::stretch::SPEEDS.contains(&speed) {
                problem(
                    &mut problems,
                    t.span(),
                    "time_stretch: speed from 0.25 (four times as long) to 4 (a quarter of the time); 1.25 plays in 80 % of the time",
                );
            } else if steps.iter().any(|s| matches!(s, StepSpec::Normalize(_))) {
                problem(
                    &mut problems,
                    t.span(),
                    "time_stretch after normalize: the loudness is measured before this step; move it before the normalize step",
                );
            } else {
                steps.push(StepSpec::TimeStretch { speed });
            }
        }
    }
    if steps
        .iter()
        .filter(|s| matches!(s, StepSpec::Normalize(_)))
        .count()
        > 1
    {
        problem(&mut problems, 0..0, "only one normalize step per pipeline");
    }

    (steps, problems)
}

/// What a written step does, by the names of the keys that say it (one, when it is valid).
fn kinds_of(st: &WrittenStep) -> Vec<&'static str> {
    let mut kinds = Vec::new();
    macro_rules! kind {
        ($f:ident) => {
            if st.$f.is_some() {
                kinds.push(stringify!($f));
            }
        };
    }
    kind!(analyze);
    kind!(region);
    kind!(trim_silence);
    kind!(fade);
    kind!(gain_db);
    kind!(channels);
    kind!(resample);
    kind!(normalize);
    if st.matching.is_some() {
        kinds.push("match");
    }
    kind!(compare);
    kind!(effect);
    kind!(parallel);
    kind!(time_stretch);
    kinds
}

/// The keys only an effect step takes, on a step that is not one: problems.
fn effect_keys_elsewhere(problems: &mut Vec<Problem>, st: &WrittenStep) {
    if st.effect.is_none() {
        if let Some(params) = &st.params {
            problem(problems, params.span(), "params belong to an effect step");
        }
        if let Some(b) = &st.time_budget_ms {
            problem(
                problems,
                b.span(),
                "time_budget_ms belongs to an effect step",
            );
        }
        if let Some(m) = &st.memory_mb {
            problem(problems, m.span(), "memory_mb belongs to an effect step");
        }
        if let Some(d) = &st.data {
            problem(problems, d.span(), "data belongs to an effect step");
        }
    }
}

/// An `analyze` step (`None` when written `analyze = false`); a second one is a problem.
fn analyze_step(
    problems: &mut Vec<Problem>,
    a: &Spanned<Flag<WrittenAnalyze>>,
    steps: &[StepSpec],
) -> Option<StepSpec> {
    if steps.iter().any(|s| matches!(s, StepSpec::Analyze(_))) {
        problem(
            problems,
            a.span(),
            "one analyze step per pipeline: it measures the signal where it stands (first: the source as it arrives; after normalize: what the outputs receive)",
        );
    }
    let sections = match a.get_ref() {
        Flag::On(false) => return None,
        Flag::On(true) => Section::ALL.to_vec(),
        Flag::With(r) => match match r {
            WrittenAnalyze::List(l) => Some(l),
            WrittenAnalyze::Table(t) => t.sections.as_ref(),
        } {
            None => Section::ALL.to_vec(),
            Some(list) => {
                let mut v = Vec::new();
                for s in list {
                    match Section::parse(s) {
                        Some(sec) => v.push(sec),
                        None => problem(
                            problems,
                            a.span(),
                            format!(
                                "analyze: unknown section {s:?} (loudness, levels, spectrum, stereo, tempo, key, waveform, targets)"
                            ),
                        ),
                    }
                }
                v
            }
        },
    };
    let tempo_range = match a.get_ref() {
        Flag::With(WrittenAnalyze::Table(WrittenAnalyzeTable {
            tempo_range: Some([lo, hi]),
            ..
        })) => match tempo_range(*lo, *hi) {
            Ok(r) => Some(r),
            Err(e) => {
                problem(problems, a.span(), format!("analyze: {e}"));
                None
            }
        },
        _ => None,
    };
    Some(StepSpec::Analyze(AnalyzeStep {
        sections,
        tempo_range,
    }))
}

/// A `trim_silence` step (`None` when written `trim_silence = false`).
fn trim_step(problems: &mut Vec<Problem>, t: &Spanned<Flag<WrittenTrim>>) -> Option<StepSpec> {
    let r = match t.get_ref() {
        Flag::On(false) => return None,
        Flag::On(true) => &WrittenTrim::default(),
        Flag::With(r) => r,
    };
    let threshold_dbfs = r.threshold_dbfs.unwrap_or(-60.0);
    let pad_seconds = r.pad_seconds.unwrap_or(0.05);
    if !(-120.0..=0.0).contains(&threshold_dbfs) || !(0.0..=60.0).contains(&pad_seconds) {
        problem(
            problems,
            t.span(),
            "trim_silence: threshold_dbfs from -120 to 0, pad_seconds from 0 to 60",
        );
    }
    Some(StepSpec::TrimSilence {
        threshold_dbfs,
        pad_seconds,
    })
}

/// A `fade` step.
fn fade_step(problems: &mut Vec<Problem>, f: &Spanned<WrittenFade>) -> StepSpec {
    let r = f.get_ref();
    let curve = match r.curve.as_deref() {
        None => Some(FadeCurve::EqualPower),
        Some(s) => FadeCurve::parse(s),
    };
    let (fi, fo) = (r.fade_in.unwrap_or(0.0), r.out.unwrap_or(0.0));
    if curve.is_none() {
        problem(
            problems,
            f.span(),
            "fade: curve is linear, equal-power or logarithmic",
        );
    } else if !(0.0..=3600.0).contains(&fi) || !(0.0..=3600.0).contains(&fo) || fi + fo == 0.0 {
        problem(
            problems,
            f.span(),
            "fade: give in and/or out in seconds (0 to 3600)",
        );
    }
    StepSpec::Fade {
        fade_in: fi,
        fade_out: fo,
        curve: curve.unwrap_or(FadeCurve::EqualPower),
    }
}

/// A `resample` step.
fn resample_step(problems: &mut Vec<Problem>, r: &Spanned<WrittenResample>) -> StepSpec {
    let (rate, q) = match r.get_ref() {
        WrittenResample::Rate(n) => (*n, None),
        WrittenResample::With {
            sample_rate,
            quality,
        } => (*sample_rate, quality.as_deref()),
    };
    if let Err(e) = crate::formats::limits::check_rate(rate) {
        problem(
            problems,
            r.span(),
            format!(
                "resample: {}",
                e.to_string().replace("sample rate", "sample_rate")
            ),
        );
    }
    // "fast" and "high" are the names the two filters had before the FFT one became
    // the default; files that say them keep their filter.
    let quality = match q {
        None | Some("fft") | Some("fast") => ResampleQuality::Fft,
        Some("sinc") | Some("high") => ResampleQuality::Sinc,
        Some(o) => {
            problem(
                problems,
                r.span(),
                format!("resample: quality {o:?} is fft (the default) or sinc"),
            );
            ResampleQuality::Fft
        }
    };
    StepSpec::Resample {
        sample_rate: rate,
        quality,
    }
}

/// Why a `normalize` step is refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NormalizeError {
    #[error("give one of loudness_lufs, preset or peak_dbfs")]
    Several,
    #[error("peak_dbfs takes no true_peak_dbtp or limiter")]
    PeakExtras,
    #[error("peak_dbfs {0}: from -60 to 0 dBFS")]
    Peak(f64),
    #[error("loudness_lufs {0}: from -70 to 0 LUFS")]
    Loudness(f64),
    #[error("true_peak_dbtp {0}: from -20 to 0 dBTP")]
    Ceiling(f64),
    #[error("max_gain_db {0}: from 0 to 60 dB")]
    MaxGain(f64),
    #[error("peak_dbfs takes no lower_only, max_gain_db or album")]
    PeakRule,
    #[error(
        "album {0:?}: \"album\" (one gain for the album measured as one programme) or \"album-loudest\" (the gain that brings its loudest file to the target)"
    )]
    Album(String),
    #[error(transparent)]
    Preset(#[from] crate::analysis::targets::TargetError),
}

fn normalize(r: &WrittenNormalize, d: WrittenDefaults) -> Result<NormalizeTarget, NormalizeError> {
    let limiter = r.limiter.unwrap_or(true);
    if let Some(m) = r.max_gain_db
        && !(0.0..=60.0).contains(&m)
    {
        return Err(NormalizeError::MaxGain(m));
    }
    let album = match r.album.as_deref() {
        None => None,
        Some(a) => Some(AlbumMode::parse(a).ok_or_else(|| NormalizeError::Album(a.into()))?),
    };
    let rule = GainRule {
        max_gain_db: gain_limit(r.lower_only.unwrap_or(false), r.max_gain_db),
        from_lufs: None,
        album,
    };
    let ceiling = |tp: f64| {
        if (-20.0..=0.0).contains(&tp) {
            Ok(tp)
        } else {
            Err(NormalizeError::Ceiling(tp))
        }
    };
    match (r.loudness_lufs, &r.preset, r.peak_dbfs) {
        (Some(_), Some(_), _) | (_, Some(_), Some(_)) | (Some(_), _, Some(_)) => {
            Err(NormalizeError::Several)
        }
        (None, None, Some(p)) => {
            if r.true_peak_dbtp.is_some() || r.limiter.is_some() {
                return Err(NormalizeError::PeakExtras);
            }
            if r.lower_only.is_some() || r.max_gain_db.is_some() || r.album.is_some() {
                return Err(NormalizeError::PeakRule);
            }
            if !(-60.0..=0.0).contains(&p) {
                return Err(NormalizeError::Peak(p));
            }
            Ok(NormalizeTarget::Peak { dbfs: p })
        }
        (None, Some(p), None) => {
            let t = Target::parse(p)?;
            Ok(NormalizeTarget::Loudness {
                lufs: t.integrated_lufs,
                true_peak_dbtp: ceiling(r.true_peak_dbtp.unwrap_or(t.true_peak_dbtp))?,
                limiter,
                rule,
            })
        }
        (l, None, None) => {
            let lufs = l.unwrap_or(d.target_lufs);
            if !(-70.0..=0.0).contains(&lufs) {
                return Err(NormalizeError::Loudness(lufs));
            }
            Ok(NormalizeTarget::Loudness {
                lufs,
                true_peak_dbtp: ceiling(r.true_peak_dbtp.unwrap_or(d.target_true_peak_dbtp))?,
                limiter,
                rule,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct File {
        step: Vec<Spanned<WrittenStep>>,
    }

    /// Records what it is asked and refuses parameters named `bad`.
    #[derive(Default)]
    struct Recorder {
        asked: Vec<(String, Range<usize>, Range<usize>)>,
    }

    impl EffectCheck for Recorder {
        fn check(
            &mut self,
            step: &EffectStep,
            name: Range<usize>,
            params: Range<usize>,
        ) -> Vec<Problem> {
            self.asked
                .push((step.name.clone(), name.clone(), params.clone()));
            step.params
                .iter()
                .filter(|(k, _)| k == "bad")
                .map(|_| Problem {
                    span: params.clone(),
                    message: "bad is not a parameter".into(),
                })
                .collect()
        }
    }

    const DEFAULTS: WrittenDefaults = WrittenDefaults {
        target_lufs: -16.0,
        target_true_peak_dbtp: -1.5,
    };

    fn lowered(text: &str) -> (Vec<StepSpec>, Vec<Problem>, Recorder) {
        let file: File = toml::from_str(text).unwrap();
        let mut effects = Recorder::default();
        let (steps, problems) = lower(&file.step, DEFAULTS, &mut effects);
        (steps, problems, effects)
    }

    /// Every kind of written step lowers to its StepSpec, in order, with the defaults filled in.
    #[test]
    fn every_written_step_lowers() {
        let text = r#"
[[step]]
analyze = { sections = ["loudness", "tempo"], tempo_range = [80, 160] }
[[step]]
region = { start = 1.5 }
[[step]]
trim_silence = true
[[step]]
fade = { in = 0.5, out = 2, curve = "logarithmic" }
[[step]]
gain_db = -3
[[step]]
channels = "mono"
[[step]]
resample = { sample_rate = 44100, quality = "fast" }
[[step]]
normalize = {}
[[step]]
effect = "eq"
params = { type = "highshelf", gain_db = -3.5, bypass = false, order = 2 }
time_budget_ms = 200
"#;
        let (steps, problems, effects) = lowered(text);
        assert_eq!(problems, vec![]);
        assert_eq!(
            steps,
            vec![
                StepSpec::Analyze(AnalyzeStep {
                    sections: vec![Section::Loudness, Section::Tempo],
                    tempo_range: Some((80.0, 160.0)),
                }),
                StepSpec::Region {
                    start: 1.5,
                    end: None
                },
                StepSpec::TrimSilence {
                    threshold_dbfs: -60.0,
                    pad_seconds: 0.05
                },
                StepSpec::Fade {
                    fade_in: 0.5,
                    fade_out: 2.0,
                    curve: FadeCurve::Logarithmic
                },
                StepSpec::Gain { db: -3.0 },
                StepSpec::Channels(ChannelMapping::Mono),
                StepSpec::Resample {
                    sample_rate: 44_100,
                    quality: ResampleQuality::Fft
                },
                StepSpec::Normalize(NormalizeTarget::Loudness {
                    lufs: -16.0,
                    true_peak_dbtp: -1.5,
                    limiter: true,
                    rule: Default::default(),
                }),
                StepSpec::Effect(EffectStep {
                    name: "eq".into(),
                    params: vec![
                        ("bypass".into(), ParamValue::Bool(false)),
                        ("gain_db".into(), ParamValue::Number(-3.5)),
                        ("order".into(), ParamValue::Number(2.0)),
                        ("type".into(), ParamValue::Text("highshelf".into())),
                    ],
                    time_budget_ms: Some(200),
                    memory_mb: None,
                    data: Vec::new(),
                }),
            ]
        );
        // The effect was checked with the spans of its name and of its table.
        let (name, at_name, at_params) = &effects.asked[0];
        assert_eq!(name, "eq");
        assert_eq!(&text[at_name.clone()], "\"eq\"");
        assert!(text[at_params.clone()].starts_with("{ type"));
    }

    /// Problems point at the value they are about; the chain rules hold across steps.
    #[test]
    fn resample_quality_names() {
        for (q, want) in [
            ("", ResampleQuality::Fft),
            (", quality = \"fft\"", ResampleQuality::Fft),
            (", quality = \"fast\"", ResampleQuality::Fft),
            (", quality = \"sinc\"", ResampleQuality::Sinc),
            (", quality = \"high\"", ResampleQuality::Sinc),
        ] {
            let text = format!("[[step]]\nresample = {{ sample_rate = 44100{q} }}\n");
            let (steps, problems, _) = lowered(&text);
            assert_eq!(problems, vec![], "{text}");
            assert_eq!(
                steps,
                vec![StepSpec::Resample {
                    sample_rate: 44_100,
                    quality: want
                }],
                "{text}"
            );
        }
    }

    /// `lower_only` and `max_gain_db` become the normalize step's largest gain (the smaller of
    /// the two); out of range, or on a peak target, they are problems.
    #[test]
    fn normalize_gain_limits() {
        for (extra, want) in [
            ("", None),
            (", lower_only = true", Some(0.0)),
            (", max_gain_db = 6", Some(6.0)),
            (", lower_only = true, max_gain_db = 6", Some(0.0)),
        ] {
            let text = format!("[[step]]\nnormalize = {{ loudness_lufs = -16{extra} }}\n");
            let (steps, problems, _) = lowered(&text);
            assert_eq!(problems, vec![], "{text}");
            let [StepSpec::Normalize(NormalizeTarget::Loudness { rule, .. })] = steps.as_slice()
            else {
                panic!("{steps:?}");
            };
            assert_eq!(rule.max_gain_db, want, "{text}");
            assert_eq!(rule.from_lufs, None);
        }
        for (extra, want) in [
            ("", None),
            (", album = \"album\"", Some(AlbumMode::Album)),
            (", album = \"album-loudest\"", Some(AlbumMode::AlbumLoudest)),
        ] {
            let text = format!("[[step]]\nnormalize = {{ preset = \"spotify\"{extra} }}\n");
            let (steps, problems, _) = lowered(&text);
            assert_eq!(problems, vec![], "{text}");
            let [StepSpec::Normalize(NormalizeTarget::Loudness { rule, .. })] = steps.as_slice()
            else {
                panic!("{steps:?}");
            };
            assert_eq!(rule.album, want, "{text}");
        }
        for bad in [
            "loudness_lufs = -16, max_gain_db = 99",
            "peak_dbfs = -1, lower_only = true",
            "peak_dbfs = -1, album = \"album\"",
            "loudness_lufs = -16, album = \"albums\"",
        ] {
            let text = format!("[[step]]\nnormalize = {{ {bad} }}\n");
            let (_, problems, _) = lowered(&text);
            assert_eq!(problems.len(), 1, "{text}: {problems:?}");
        }
    }

    /// The match step: a reference or a genre, the options with their defaults, a strength as
    /// a fraction or a percentage; bad values are located.
    /// The compare step: a reference or a genre, a level (default suggestive); one per
    /// pipeline; problems located.
    #[test]
    fn compare_steps_lower_and_their_problems_are_located() {
        use crate::analysis::compare::Level;
        let (steps, problems, _) =
            lowered("[[step]]\ncompare = { genre = \"techno\", level = \"assertive\" }\n");
        assert_eq!(problems, vec![]);
        assert_eq!(
            steps,
            [StepSpec::Compare(CompareStep {
                target: MatchSource::Genre("techno".into()),
                level: Level::Assertive,
            })]
        );
        let (steps, _, _) = lowered("[[step]]\ncompare = { reference = \"Night Drive\" }\n");
        assert_eq!(
            steps,
            [StepSpec::Compare(CompareStep {
                target: MatchSource::Reference("Night Drive".into()),
                level: Level::Suggestive,
            })]
        );
        let text = r#"
[[step]]
compare = { genre = "a", level = "loud" }
[[step]]
compare = { level = "gentle" }
[[step]]
compare = { genre = "b" }
[[step]]
compare = { genre = "c" }
"#;
        let (steps, problems, _) = lowered(text);
        let found: Vec<(String, String)> = problems
            .iter()
            .map(|p| (text[p.span.clone()].to_string(), p.message.clone()))
            .collect();
        assert_eq!(
            found,
            [
                (
                    "\"loud\"".to_string(),
                    "compare: level \"loud\": gentle, suggestive or assertive".to_string()
                ),
                (
                    "{ level = \"gentle\" }".to_string(),
                    "compare: give what to compare with: reference = \"NAME\" (a track in the library) or genre = \"GENRE\"".to_string()
                ),
                (
                    "{ genre = \"c\" }".to_string(),
                    "one compare step per pipeline".to_string()
                ),
            ]
        );
        assert_eq!(steps.len(), 1);
    }

    #[test]
    fn match_steps_lower_and_their_problems_are_located() {
        let text = r#"
[[step]]
match = { reference = "Night Drive" }
[[step]]
match = { genre = "techno", strength = "50%", loudness = true, width = true, eq = false, max_gain_db = 6, smoothing_octaves = 0.5 }
[[step]]
match = { genre = "jazz", strength = 0.25 }
"#;
        let (steps, problems, _) = lowered(text);
        assert_eq!(problems, vec![]);
        assert_eq!(
            steps,
            vec![
                StepSpec::Match(MatchStep {
                    target: MatchSource::Reference("Night Drive".into()),
                    options: MatchOptions::default(),
                }),
                StepSpec::Match(MatchStep {
                    target: MatchSource::Genre("techno".into()),
                    options: MatchOptions {
                        strength: 0.5,
                        eq: false,
                        loudness: true,
                        width: true,
                        max_gain_db: 6.0,
                        smoothing_octaves: 0.5,
                    },
                }),
                StepSpec::Match(MatchStep {
                    target: MatchSource::Genre("jazz".into()),
                    options: MatchOptions {
                        strength: 0.25,
                        ..MatchOptions::default()
                    },
                }),
            ]
        );

        let text = r#"
[[step]]
match = { reference = "a", genre = "b" }
[[step]]
match = { strength = 0.5 }
[[step]]
match = { genre = "pop", strength = 1.5 }
[[step]]
match = { genre = "pop", strength = "150%" }
[[step]]
match = { genre = "pop", max_gain_db = 0 }
[[step]]
match = { genre = "pop", smoothing_octaves = 3 }
[[step]]
match = { genre = "pop", eq = false }
[[step]]
match = { reference = " " }
[[step]]
normalize = {}
[[step]]
match = { genre = "pop" }
"#;
        let (steps, problems, _) = lowered(text);
        let at = |p: &Problem| text[p.span.clone()].to_string();
        let found: Vec<(String, String)> = problems
            .iter()
            .map(|p| (at(p), p.message.clone()))
            .collect();
        let has = |value: &str, words: &str| {
            assert!(
                found.iter().any(|(v, m)| v == value && m.contains(words)),
                "{value} / {words}: {found:#?}"
            )
        };
        has("\"b\"", "give reference or genre, not both");
        has("{ strength = 0.5 }", "give what to match");
        has("1.5", "strength from 0 to 1");
        has("\"150%\"", "strength from 0 to 1");
        has("0", "max_gain_db more than 0, at most 24 dB");
        has("3", "smoothing_octaves from 0 to 2");
        has("{ genre = \"pop\", eq = false }", "all off");
        has("\" \"", "reference needs a name");
        has("{ genre = \"pop\" }", "match after normalize");
        assert_eq!(found.len(), 9, "{found:#?}");
        // Only the normalize step is kept.
        assert_eq!(steps.len(), 1, "{steps:?}");

        // An unknown key is TOML's error, at the key.
        let e = toml::from_str::<File>("[[step]]\nmatch = { genre = \"pop\", tilt = 3 }\n")
            .err()
            .expect("unknown key");
        assert!(e.to_string().contains("unknown field `tilt`"), "{e}");
    }

    #[test]
    fn problems_are_located_and_the_chain_is_checked() {
        let text = r#"
[[step]]
gain_db = 99
[[step]]
normalize = { peak_dbfs = -1 }
[[step]]
channels = "mono"
[[step]]
effect = "eq"
params = { bad = 1, list = [1, 2] }
memory_mb = 0
[[step]]
fade = { in = 1 }
gain_db = 1
[[step]]
normalize = { preset = "podcast" }
[[step]]
resample = { sample_rate = 44100, quality = "best" }
"#;
        let (_, problems, effects) = lowered(text);
        let at = |p: &Problem| text[p.span.clone()].to_string();
        let found: Vec<(String, String)> = problems
            .iter()
            .map(|p| (at(p), p.message.clone()))
            .collect();
        let has = |value: &str, words: &str| {
            assert!(
                found
                    .iter()
                    .any(|(v, m)| v.starts_with(value) && m.contains(words)),
                "{value} / {words}: {found:#?}"
            )
        };
        has("99", "gain_db: from -96 to 48 dB");
        has("\"mono\"", "channels after normalize");
        has("{ bad", "list = [1, 2]: give a number");
        has("{ bad", "bad is not a parameter");
        has("0", "memory_mb: from 1 to 4096");
        // A table's span is its header.
        has("[[step]]", "step 5: each [[step]] does one thing");
        has(
            "{ sample_rate",
            "resample: quality \"best\" is fft (the default) or sinc",
        );
        assert!(
            found
                .iter()
                .any(|(_, m)| m == "only one normalize step per pipeline"),
            "{found:#?}"
        );
        // The effect step's own problems do not stop the effect check.
        assert_eq!(effects.asked.len(), 1);
    }

    #[test]
    fn a_parallel_step_lowers_with_its_branch() {
        let (steps, problems, _) = lowered(
            r#"
[[step]]
parallel = { mix = 0.3, steps = [
    { effect = "reverb", params = { mix = 1.0 } },
    { gain_db = -2 },
    { parallel = { steps = [{ effect = "delay" }] } },
] }
"#,
        );
        assert!(problems.is_empty(), "{problems:?}");
        let [StepSpec::Parallel(p)] = &steps[..] else {
            panic!("{steps:?}")
        };
        assert_eq!(p.mix, 0.3);
        assert!(matches!(&p.steps[0], StepSpec::Effect(e) if e.name == "reverb"));
        assert_eq!(p.steps[1], StepSpec::Gain { db: -2.0 });
        let StepSpec::Parallel(inner) = &p.steps[2] else {
            panic!("{:?}", p.steps[2])
        };
        assert_eq!(inner.mix, 0.5, "the default mix");
        assert!(p.check().is_ok());
        let names: Vec<&str> = super::super::effect_steps(&steps)
            .iter()
            .map(|e| e.name.as_str())
            .collect();
        assert_eq!(names, ["reverb", "delay"]);
        // Through JSON (a farm message, an HTTP body) and back.
        let text = serde_json::to_string(&steps).unwrap();
        let back: Vec<StepSpec> = serde_json::from_str(&text).unwrap();
        assert_eq!(back, steps);
    }

    #[test]
    fn a_bad_branch_is_refused_where_it_is_written() {
        for (text, want) in [
            (
                r#"parallel = { mix = 1.5, steps = [{ effect = "reverb" }] }"#,
                "parallel: mix from 0",
            ),
            (r#"parallel = { mix = 0.5 }"#, "give the branch's steps"),
            (r#"parallel = { steps = [] }"#, "give the branch's steps"),
            (
                r#"parallel = { steps = [{ resample = 44100 }] }"#,
                "not resample",
            ),
            (
                r#"parallel = { steps = [{ normalize = {} }] }"#,
                "not normalize",
            ),
            (
                r#"parallel = { steps = [{ effect = "eq", params = { bad = 1 } }] }"#,
                "parallel branch: bad is not a parameter",
            ),
            (
                r#"parallel = { steps = [{ parallel = { steps = [{ parallel = { steps = [{ parallel = { steps = [{ parallel = { steps = [{ gain_db = 1 }] } }] } }] } }] } }] }"#,
                "nest at most 4 deep",
            ),
        ] {
            let (steps, problems, _) = lowered(&format!("[[step]]\n{text}\n"));
            assert!(steps.is_empty(), "{text}: {steps:?}");
            assert!(
                problems.iter().any(|p| p.message.contains(want)),
                "{text}: {problems:?}"
            );
        }
        // Unknown keys are refused by the TOML reader itself.
        assert!(toml::from_str::<File>("[[step]]\nparallel = { steps = [], wet = 1 }\n").is_err());
    }

    /// A branch that came as data (JSON) is checked when it is built, not trusted.
    #[test]
    fn a_branch_given_as_data_is_checked_when_built() {
        use crate::render::resample::{ResamplePrecision, ResampleQuality};
        use crate::render::steps::{NoResolver, build};
        let p = StepSpec::Parallel(ParallelStep {
            mix: 0.5,
            steps: vec![StepSpec::Resample {
                sample_rate: 44_100,
                quality: ResampleQuality::default(),
            }],
        });
        let e = build(&[p], 48_000, ResamplePrecision::Double, &mut NoResolver)
            .err()
            .expect("refused");
        assert!(e.to_string().contains("not resample"), "{e}");
        let ok = StepSpec::Parallel(ParallelStep {
            mix: 0.5,
            steps: vec![StepSpec::Gain { db: -3.0 }],
        });
        let stages = build(&[ok], 48_000, ResamplePrecision::Double, &mut NoResolver).unwrap();
        assert_eq!(stages[0].name(), "parallel");
    }

    #[test]
    fn a_time_stretch_step_lowers_and_is_checked() {
        let (steps, problems, _) = lowered("[[step]]\ntime_stretch = { speed = 1.25 }\n");
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(steps, [StepSpec::TimeStretch { speed: 1.25 }]);
        for (text, want) in [
            ("time_stretch = { speed = 5 }", "speed from 0.25"),
            ("time_stretch = { speed = 0 }", "speed from 0.25"),
            (
                "normalize = {}\n[[step]]\ntime_stretch = { speed = 0.8 }",
                "time_stretch after normalize",
            ),
            (
                "parallel = { steps = [{ time_stretch = { speed = 2 } }] }",
                "not time_stretch",
            ),
        ] {
            let (_, problems, _) = lowered(&format!("[[step]]\n{text}\n"));
            assert!(
                problems.iter().any(|p| p.message.contains(want)),
                "{text}: {problems:?}"
            );
        }
        assert!(
            toml::from_str::<File>("[[step]]\ntime_stretch = { speed = 1, pitch = 2 }\n").is_err()
        );
        // Given as data out of range: refused when built.
        use crate::render::resample::ResamplePrecision;
        use crate::render::steps::{NoResolver, build};
        let e = build(
            &[StepSpec::TimeStretch { speed: 9.0 }],
            48_000,
            ResamplePrecision::Double,
            &mut NoResolver,
        )
        .err()
        .expect("refused");
        assert!(e.to_string().contains("outside 0.25 to 4"), "{e}");
    }
}
