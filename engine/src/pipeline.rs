//! Pipelines: TOML files that say which files to take from which folders, what to do to them,
//! and where the results go. Parsed into [`Pipeline`] with every problem reported as
//! `file:line:column: message`. The schema is in `pipelines/README.md`.

use crate::store::AlbumRecord;
use crate::template::Template;
use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use serde::Deserialize;
use sluice_core::analysis::Section;
use sluice_core::render::dither::DitherMode;
use sluice_core::render::normalize::{AlbumMode, NormalizeTarget};
use sluice_core::render::stages::ChannelMapping;
use sluice_core::render::steps::{
    EffectCheck, EffectStep, Problem, StepSpec, WrittenDefaults, WrittenStep,
};
pub use sluice_core::render::steps::{TempoRangeError, tempo_range};
use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::{Component, Path, PathBuf};
use toml::Spanned;

/// One problem in a pipeline (or the configuration), located.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.line,
            self.col,
            self.message
        )
    }
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..text.floor_char_boundary(offset)];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (line, col)
}

/// One file a pipeline writes per input.
#[derive(Debug, Clone)]
pub struct Output {
    pub path: Template,
    pub format: sluice_core::formats::Request,
    pub sample_rate: Option<u32>,
    pub channels: Option<ChannelMapping>,
    pub dither: DitherMode,
    pub bext: bool,
    pub replaygain: bool,
    pub keep_tags: bool,
    pub tags: Vec<(String, String)>,
    /// Lossy formats: measure the encoded file and encode again under a lower ceiling while
    /// the codec's overshoot passes the true-peak ceiling (default on).
    pub true_peak_check: bool,
    /// When the check cannot bring the decoded true peak under the ceiling: fail the job
    /// (`true_peak_miss = "fail"`) rather than deliver the output with a warning (`"warn"`,
    /// the default).
    pub fail_on_true_peak_miss: bool,
    /// Encodes the check may make (`true_peak_encodes`, 1 to 4; 1 measures and reports only).
    pub true_peak_encodes: u32,
    /// Delivery QC of the output as written (`qc = "SPEC"`, a built-in specification).
    pub qc: Option<OutputQc>,
}

/// An output judged against a delivery specification once written (docs/QC.md).
#[derive(Debug, Clone)]
pub struct OutputQc {
    pub spec: std::sync::Arc<sluice_core::qc::Spec>,
    pub on_fail: QcFail,
    /// Where the output's QC report page goes (`qc_report = "TEMPLATE"`, an `.html` path):
    /// the page `sluice qc --html` writes, beside the job's other files.
    pub page: Option<Template>,
}

impl Output {
    /// The template of the output's QC report page, when it has one.
    pub fn qc_page(&self) -> Option<&Template> {
        self.qc.as_ref().and_then(|q| q.page.as_ref())
    }
}

/// What an output that fails its QC does to its job (`qc_fail`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QcFail {
    /// The job fails; its outputs and report are removed, the source stays where it arrived.
    Fail,
    /// The output is delivered with a warning naming the rules it breaks.
    Warn,
    /// The job's outputs are removed and the source goes to the quarantine folder with the
    /// verdicts in `NAME.error.json`, set aside for someone to look at.
    Quarantine,
}

/// What becomes of the source after a job succeeds.
#[derive(Debug, Clone)]
pub enum SourceAction {
    Keep,
    Move(Template),
    Delete,
}

#[derive(Debug, Clone)]
pub struct Pipeline {
    pub name: String,
    pub file: PathBuf,
    /// Hash of the definition (comments and layout aside): a new hash is a new version.
    pub hash: String,
    pub description: Option<String>,
    /// Folders relative to the root.
    pub watch: Vec<PathBuf>,
    include: GlobSet,
    exclude: GlobSet,
    /// The `include` patterns as written (the default: every decodable extension), to say
    /// what the pipeline takes.
    pub include_patterns: Vec<String>,
    /// What the pipeline does to each file, in order.
    pub steps: Vec<StepSpec>,
    pub outputs: Vec<Output>,
    pub source: SourceAction,
    pub report: Option<Template>,
    /// Attempts after the first for transient (I/O) errors.
    pub retries: u32,
    /// Effects it names that are still being checked in the background (the watch host's
    /// effects loader): the pipeline is valid, and runs once they are ready.
    pub waiting_for: Vec<String>,
    /// The definition as written (a cluster worker parses the same text).
    pub text: std::sync::Arc<str>,
}

/// Extensions the decoder reads: the default `include`.
pub fn decodable_extensions() -> Vec<&'static str> {
    let mut v: Vec<&str> = sluice_core::formats::FORMATS
        .iter()
        .filter(|f| f.decode)
        .flat_map(|f| f.extensions.iter().copied())
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

impl Pipeline {
    /// How many QC report pages a job writes (outputs with `qc_report`); their planned paths
    /// follow the outputs'.
    pub fn qc_pages(&self) -> usize {
        self.outputs
            .iter()
            .filter(|o| o.qc_page().is_some())
            .count()
    }

    /// How many paths a job of this pipeline plans: its outputs', their QC pages', the
    /// report's, the moved source's.
    pub fn planned_len(&self) -> usize {
        self.outputs.len()
            + self.qc_pages()
            + usize::from(self.report.is_some())
            + usize::from(matches!(self.source, SourceAction::Move(_)))
    }

    /// Whether `rel` (a path relative to one of the watch folders) is for this pipeline.
    pub fn matches(&self, rel: &Path) -> bool {
        self.include.is_match(rel) && !self.exclude.is_match(rel)
    }

    /// The watch folder `path` (relative to the root) is in, and the path inside it.
    pub fn watched<'a>(&self, path: &'a Path) -> Option<&'a Path> {
        self.watch
            .iter()
            .find_map(|w| path.strip_prefix(w).ok())
            .filter(|r| !r.as_os_str().is_empty())
    }

    /// The album mode of the pipeline's loudness normalization, when it has one.
    pub fn album(&self) -> Option<AlbumMode> {
        self.steps.iter().find_map(|s| match s {
            StepSpec::Normalize(NormalizeTarget::Loudness { rule, .. }) => rule.album,
            _ => None,
        })
    }

    /// The steps a job runs: with its album measured, the normalization steers from the
    /// album's loudness (one gain for every file of the album).
    pub fn steps_for(&self, album: Option<&AlbumRecord>) -> std::borrow::Cow<'_, [StepSpec]> {
        let Some(a) = album.filter(|a| self.album() == Some(a.mode)) else {
            return std::borrow::Cow::Borrowed(&self.steps);
        };
        let mut steps = self.steps.clone();
        for s in &mut steps {
            if let StepSpec::Normalize(NormalizeTarget::Loudness { rule, .. }) = s {
                rule.from_lufs = Some(a.lufs);
            }
        }
        std::borrow::Cow::Owned(steps)
    }

    pub fn analyze(&self) -> Option<&[Section]> {
        self.steps.iter().find_map(|s| match s {
            StepSpec::Analyze(a) => Some(a.sections.as_slice()),
            _ => None,
        })
    }

    /// The analyze step's preferred tempo range, when it sets one.
    #[cfg(test)]
    pub fn tempo_range(&self) -> Option<(f64, f64)> {
        self.steps.iter().find_map(|s| match s {
            StepSpec::Analyze(a) => a.tempo_range,
            _ => None,
        })
    }
}

// ---- the raw TOML schema -------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPipeline {
    name: Option<Spanned<String>>,
    description: Option<String>,
    watch: Spanned<OneOrMany>,
    include: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    exclude: Vec<Spanned<String>>,
    #[serde(default)]
    step: Vec<Spanned<WrittenStep>>,
    #[serde(default)]
    output: Vec<Spanned<RawOutput>>,
    source: Option<Spanned<RawSource>>,
    report: Option<Spanned<RawReport>>,
    retries: Option<Spanned<u32>>,
    /// Delivery specifications of the pipeline's own (docs/QC.md's format), for its outputs'
    /// `qc`: they travel with the pipeline's text, to a farm's workers too.
    #[serde(default)]
    qc_spec: Vec<Spanned<toml::Value>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawReport {
    Off(bool),
    Path(String),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum BitDepth {
    Int(u32),
    Text(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOutput {
    path: Spanned<String>,
    format: Option<Spanned<String>>,
    bit_depth: Option<Spanned<BitDepth>>,
    quality: Option<f32>,
    bitrate_kbps: Option<u32>,
    compression_level: Option<u8>,
    sample_rate: Option<Spanned<u32>>,
    channels: Option<Spanned<String>>,
    dither: Option<Spanned<String>>,
    bext: Option<bool>,
    replaygain: Option<bool>,
    keep_tags: Option<bool>,
    true_peak_check: Option<bool>,
    true_peak_miss: Option<Spanned<String>>,
    true_peak_encodes: Option<Spanned<u32>>,
    qc: Option<Spanned<String>>,
    qc_fail: Option<Spanned<String>>,
    qc_report: Option<Spanned<String>>,
    #[serde(default)]
    tags: BTreeMap<String, Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    action: Spanned<String>,
    to: Option<Spanned<String>>,
}

// ---- parsing and checking ----------------------------------------------------------------

/// Collects the problems of one file.
struct Checker<'a> {
    file: &'a Path,
    text: &'a str,
    problems: Vec<Diagnostic>,
    /// Effects named that are still being checked.
    waiting: Vec<String>,
    /// The pipeline's own delivery specifications (`[[qc_spec]]`).
    qc_specs: Vec<std::sync::Arc<sluice_core::qc::Spec>>,
}

impl Checker<'_> {
    fn err(&mut self, span: Range<usize>, message: impl Into<String>) {
        let (line, col) = line_col(self.text, span.start);
        self.problems.push(Diagnostic {
            file: self.file.to_path_buf(),
            line,
            col,
            message: message.into(),
        });
    }

    fn template(&mut self, s: &Spanned<String>, what: &str) -> Option<Template> {
        match Template::parse(s.get_ref()) {
            Ok(t) => Some(t),
            Err(e) => {
                // Inside the quoted string: one past the opening quote.
                let start = s.span().start + 1 + e.offset;
                self.err(start..start, format!("{what}: {}", e.message));
                None
            }
        }
    }
}

/// Defaults a pipeline can refer to (from the configuration), and the effects it may use.
#[derive(Clone, Copy)]
pub struct Defaults<'a> {
    pub target_lufs: f64,
    pub target_true_peak_dbtp: f64,
    /// The effects catalog effect steps are checked against (none: effect steps are refused).
    pub effects: Option<&'a crate::effects::Catalog>,
    /// The root effect steps' data files are in (none: not looked for until a job runs).
    pub root: Option<&'a Path>,
}

/// Effect steps checked against the catalog: the effect exists, every parameter is one it
/// declares and in range.
struct Effects<'a> {
    catalog: Option<&'a crate::effects::Catalog>,
    root: Option<&'a Path>,
    /// Effects named that are still being checked.
    waiting: Vec<String>,
}

impl EffectCheck for Effects<'_> {
    fn check(
        &mut self,
        step: &EffectStep,
        name: Range<usize>,
        params: Range<usize>,
    ) -> Vec<Problem> {
        let id = &step.name;
        let at = |span: &Range<usize>, message: String| Problem {
            span: span.clone(),
            message,
        };
        let Some(catalog) = self.catalog else {
            return vec![at(
                &name,
                format!("effect {id:?}: no effects are available here"),
            )];
        };
        let d = match (catalog.get(id), catalog.loading.get(id.as_str())) {
            (Some(entry), _) => &entry.effect.descriptor,
            // Still being checked in the background: its descriptor is known, so the step is
            // checked against it now, and the pipeline waits for the effect.
            (None, Some(l)) => {
                if !self.waiting.contains(id) {
                    self.waiting.push(id.clone());
                }
                &l.descriptor
            }
            (None, None) => {
                let known: Vec<&str> = catalog.effects.keys().map(String::as_str).collect();
                let refused = catalog
                    .refusal(id)
                    .map(|why| format!(" ({why})"))
                    .unwrap_or_default();
                return vec![at(
                    &name,
                    format!(
                        "effect {id:?} is not known{refused}; the effects are: {} (and .wasm files in the root's effects folder)",
                        known.join(", ")
                    ),
                )];
            }
        };
        let mut out: Vec<Problem> = step
            .params
            .iter()
            .filter_map(|(k, v)| d.resolve(k, &crate::effects::toml_value(v)).err())
            .map(|m| at(&params, format!("effect {id}: {m}")))
            .collect();
        let data = crate::effects::data_problems(d, &step.data);
        let read = data.is_empty();
        out.extend(
            data.into_iter()
                .map(|m| at(&name, format!("effect {id}: {m}"))),
        );
        // The files themselves, where the root is known: inside it, and readable audio within
        // the slot's limits.
        if let Some(root) = self.root.filter(|_| read) {
            for (k, written) in &step.data {
                let slot = d.data_slot(k).expect("checked above").1;
                let got = crate::effects::data::locate(Some(root), written).and_then(|p| {
                    let cap = crate::effects::Limits::for_step(step).memory_bytes;
                    crate::effects::data::load(&p, written, slot, cap)
                });
                if let Err(m) = got {
                    out.push(at(&name, format!("effect {id}: data {k}: {m}")));
                }
            }
        }
        out
    }
}

/// Parse and check one pipeline file's text. `file` names it in messages; its stem is the
/// default name.
pub fn parse(file: &Path, text: &str, defaults: Defaults) -> Result<Pipeline, Vec<Diagnostic>> {
    let mut c = Checker {
        file,
        text,
        problems: Vec::new(),
        waiting: Vec::new(),
        qc_specs: Vec::new(),
    };
    let raw: RawPipeline = match toml::from_str(text) {
        Ok(r) => r,
        Err(e) => {
            c.err(e.span().unwrap_or(0..0), e.message().trim_end().to_string());
            return Err(c.problems);
        }
    };
    let hash = {
        let value: toml::Value = toml::from_str(text).expect("parsed above");
        blake3::hash(value.to_string().as_bytes()).to_hex()[..16].to_string()
    };
    let name = c.name(raw.name.as_ref(), file);
    let watch = c.watch_folders(raw.watch, defaults.root);
    let (include, include_patterns) = c.include(raw.include.as_ref());
    let exclude = c.globs(&raw.exclude);
    let steps = c.steps(&raw.step, &defaults);
    c.qc_specs(&raw.qc_spec);
    let outputs: Vec<Output> = raw.output.iter().filter_map(|o| c.output(o)).collect();
    let analyzes = steps
        .iter()
        .any(|s| matches!(s, StepSpec::Analyze(_) | StepSpec::Compare(_)));
    if raw.output.is_empty() && !analyzes {
        c.err(
            0..0,
            "the pipeline neither writes an [[output]] nor has an analyze or compare step: it would do nothing",
        );
    }

    let source = c.source(raw.source.as_ref());
    let report = c.report(raw.report.as_ref());
    let retries = raw.retries.as_ref().map_or(3, |r| *r.get_ref());
    if retries > 20 {
        c.err(raw.retries.as_ref().unwrap().span(), "retries: 0 to 20");
    }

    if !c.problems.is_empty() {
        return Err(c.problems);
    }
    Ok(Pipeline {
        name,
        file: file.to_path_buf(),
        hash,
        description: raw.description,
        watch,
        include,
        exclude,
        include_patterns,
        steps,
        outputs,
        source,
        report,
        retries,
        waiting_for: c.waiting,
        text: text.into(),
    })
}

/// The phases of [`parse`]: each reads one part of the pipeline's TOML and records its problems.
impl Checker<'_> {
    /// `name`, else the file's stem.
    fn name(&mut self, raw_name: Option<&Spanned<String>>, file: &Path) -> String {
        match raw_name {
            Some(n) => {
                let v = n.get_ref().trim();
                if v.is_empty()
                    || !v
                        .chars()
                        .all(|ch| ch.is_alphanumeric() || "-_. ".contains(ch))
                    || v.starts_with('.')
                {
                    self.err(
                        n.span(),
                        "name: use letters, digits, spaces, '-', '_' and '.' (not first)",
                    );
                }
                v.to_string()
            }
            None => file
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
        }
    }

    /// Watch folders: relative, inside the root, not hidden; with the root known, no symbolic
    /// link on the way to one leads out of it (the host would take, move and delete files
    /// outside the root).
    fn watch_folders(&mut self, watched: Spanned<OneOrMany>, root: Option<&Path>) -> Vec<PathBuf> {
        let watch_span = watched.span();
        let watch_list = match watched.into_inner() {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        };
        let mut watch = Vec::new();
        if watch_list.is_empty() {
            self.err(watch_span.clone(), "watch: name at least one folder");
        }
        for w in watch_list {
            let p = PathBuf::from(w.trim_end_matches('/'));
            if p.as_os_str().is_empty()
                || p.components().any(|c| !matches!(c, Component::Normal(_)))
            {
                self.err(
                watch_span.clone(),
                format!(
                    "watch: {w:?} must be a folder inside the root, relative to it (no '..', not absolute)"
                ),
            );
            } else if p
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            {
                self.err(
                    watch_span.clone(),
                    format!("watch: {w:?} is hidden; hidden folders are never watched"),
                );
            } else if let Some(e) = root
                .and_then(|r| crate::confine::resolve(r, &p).err())
                .filter(|e| !e.is_io())
            {
                self.err(watch_span.clone(), format!("watch: {w:?}: {e}"));
            } else {
                watch.push(p);
            }
        }

        watch
    }

    /// A glob set of `list` (a pattern without a folder matches the file name at any depth).
    fn globs(&mut self, list: &[Spanned<String>]) -> GlobSet {
        let mut b = GlobSetBuilder::new();
        for g in list {
            let pat = g.get_ref();
            // A pattern without a folder matches the file name at any depth.
            let full = if pat.contains('/') {
                pat.clone()
            } else {
                format!("**/{pat}")
            };
            match GlobBuilder::new(&full)
                .case_insensitive(true)
                .literal_separator(true)
                .build()
            {
                Ok(gl) => {
                    b.add(gl);
                }
                Err(e) => self.err(g.span(), format!("bad pattern {pat:?}: {}", e.kind())),
            }
        }
        b.build().unwrap_or_else(|_| GlobSet::empty())
    }

    /// `include`, else every extension Sluice decodes; with the patterns as written.
    fn include(
        &mut self,
        include: Option<&Spanned<Vec<Spanned<String>>>>,
    ) -> (GlobSet, Vec<String>) {
        match include {
            Some(list) => {
                if list.get_ref().is_empty() {
                    self.err(list.span(), "include: an empty list matches nothing");
                }
                (
                    self.globs(list.get_ref()),
                    list.get_ref().iter().map(|g| g.get_ref().clone()).collect(),
                )
            }
            None => {
                let all: Vec<Spanned<String>> = decodable_extensions()
                    .iter()
                    .map(|e| Spanned::new(0..0, format!("*.{e}")))
                    .collect();
                (
                    self.globs(&all),
                    all.into_iter().map(Spanned::into_inner).collect(),
                )
            }
        }
    }

    /// The `[[step]]` tables lowered by core, effects checked against the catalog.
    fn steps(&mut self, raw: &[Spanned<WrittenStep>], defaults: &Defaults) -> Vec<StepSpec> {
        let mut effects = Effects {
            catalog: defaults.effects,
            root: defaults.root,
            waiting: Vec::new(),
        };
        let written = WrittenDefaults {
            target_lufs: defaults.target_lufs,
            target_true_peak_dbtp: defaults.target_true_peak_dbtp,
        };
        let (steps, problems) = sluice_core::render::steps::lower(raw, written, &mut effects);
        for p in problems {
            self.err(p.span, p.message);
        }
        self.waiting = effects.waiting;
        steps
    }

    /// One `[[output]]`: its path template, format request, signal, dither, true-peak check and
    /// tags; `None` when it cannot be one (its problems recorded).
    fn output(&mut self, o: &Spanned<RawOutput>) -> Option<Output> {
        let r = o.get_ref();
        let path = self.template(&r.path, "path")?;
        let format = self.output_format(o)?;
        let channels = match &r.channels {
            None => None,
            Some(ch) => ChannelMapping::parse(ch.get_ref()).or_else(|| {
                self.err(
                    ch.span(),
                    format!("channels {}: {}", ch.get_ref(), ChannelMapping::SPELLING),
                );
                None
            }),
        };
        let dither = match &r.dither {
            None => DitherMode::Tpdf,
            Some(d) => DitherMode::parse(d.get_ref()).unwrap_or_else(|| {
                self.err(d.span(), "dither: none, tpdf or shaped");
                DitherMode::Tpdf
            }),
        };
        let (fail_on_true_peak_miss, true_peak_encodes) = self.true_peak_policy(r);
        let mut tags = Vec::new();
        let plan = sluice_core::encode::tags::TagPlan {
            carry_from: None,
            set: r
                .tags
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.get_ref().clone()))
                .collect(),
            replaygain: false,
        };
        if let Err(e) = plan.validate() {
            self.err(o.span(), format!("tags: {e}"));
        } else {
            tags = plan.set;
        }
        Some(Output {
            path,
            format,
            sample_rate: r.sample_rate.as_ref().map(|s| *s.get_ref()),
            channels,
            dither,
            bext: r.bext.unwrap_or(true),
            replaygain: r.replaygain.unwrap_or(true),
            keep_tags: r.keep_tags.unwrap_or(true),
            tags,
            true_peak_check: r.true_peak_check.unwrap_or(true),
            fail_on_true_peak_miss,
            true_peak_encodes,
            qc: self.output_qc(r),
        })
    }

    /// The pipeline's own delivery specifications, each checked as `sluice qc --spec FILE`
    /// checks a file; an id must be new (not a built-in's, not another's of the pipeline).
    fn qc_specs(&mut self, raw: &[Spanned<toml::Value>]) {
        for t in raw {
            use serde::Deserialize;
            let parsed = sluice_core::qc::Spec::deserialize(t.get_ref().clone())
                .map_err(|e| format!("[[qc_spec]]: {}", e.message().trim_end()))
                .and_then(|spec| {
                    sluice_core::qc::spec::validated(spec, "[[qc_spec]]").map_err(|e| e.to_string())
                });
            match parsed {
                Ok(spec) => {
                    let id = spec.id.clone();
                    let taken = sluice_core::qc::spec::builtin_ids()
                        .iter()
                        .any(|b| b.eq_ignore_ascii_case(&id))
                        || self.qc_specs.iter().any(|s| s.id.eq_ignore_ascii_case(&id));
                    if taken {
                        self.err(
                            t.span(),
                            format!("[[qc_spec]] id {id:?} is taken (a built-in's, or another [[qc_spec]]'s): give it its own"),
                        );
                    } else {
                        self.qc_specs.push(std::sync::Arc::new(spec));
                    }
                }
                Err(e) => self.err(t.span(), e),
            }
        }
    }

    /// An output's delivery QC: one of the pipeline's `[[qc_spec]]` or a built-in
    /// specification (a file would not travel to a farm's workers), and what a failure does.
    fn output_qc(&mut self, r: &RawOutput) -> Option<OutputQc> {
        let on_fail = match r.qc_fail.as_ref() {
            None => QcFail::Fail,
            Some(f) if r.qc.is_none() => {
                self.err(f.span(), "qc_fail belongs with qc = \"SPEC\"");
                QcFail::Fail
            }
            Some(f) => match f.get_ref().as_str() {
                "fail" => QcFail::Fail,
                "warn" => QcFail::Warn,
                "quarantine" => QcFail::Quarantine,
                _ => {
                    self.err(f.span(), "qc_fail: fail, warn or quarantine");
                    QcFail::Fail
                }
            },
        };
        let page = match &r.qc_report {
            Some(t) if r.qc.is_none() => {
                self.err(t.span(), "qc_report belongs with qc = \"SPEC\"");
                None
            }
            Some(t) if !t.get_ref().to_ascii_lowercase().ends_with(".html") => {
                self.err(
                    t.span(),
                    "qc_report: a path ending in .html (the report page)",
                );
                None
            }
            Some(t) => self.template(t, "qc_report"),
            None => None,
        };
        let name = r.qc.as_ref()?;
        let own = self
            .qc_specs
            .iter()
            .find(|s| s.id.eq_ignore_ascii_case(name.get_ref()))
            .cloned();
        let spec =
            own.or_else(|| sluice_core::qc::spec::builtin(name.get_ref()).map(std::sync::Arc::new));
        match spec {
            Some(spec) => Some(OutputQc {
                spec,
                on_fail,
                page,
            }),
            None => {
                let mut ids: Vec<String> = self.qc_specs.iter().map(|s| s.id.clone()).collect();
                ids.extend(
                    sluice_core::qc::spec::builtin_ids()
                        .iter()
                        .map(|s| s.to_string()),
                );
                self.err(
                    name.span(),
                    format!(
                        "qc {:?}: a [[qc_spec]] of the pipeline or a built-in specification, one of {}",
                        name.get_ref(),
                        ids.join(", ")
                    ),
                );
                None
            }
        }
    }

    /// An output's format request: its codec (named, or from the path's extension) and
    /// options, checked, and its sample rate checked against what the codec stores.
    fn output_format(&mut self, o: &Spanned<RawOutput>) -> Option<sluice_core::formats::Request> {
        let r = o.get_ref();
        let kinds = sluice_core::encode::codec_names();
        let codec = match &r.format {
            Some(f) => sluice_core::encode::codec(f.get_ref()).or_else(|| {
                self.err(f.span(), format!("format {:?}: choose {kinds}", f.get_ref()));
                None
            }),
            None => Path::new(r.path.get_ref())
                .extension()
                .and_then(|e| sluice_core::encode::codec(&e.to_string_lossy()))
                .or_else(|| {
                    self.err(
                        r.path.span(),
                        format!(
                            "cannot tell the format from the path's extension: add format = ({kinds})"
                        ),
                    );
                    None
                }),
        };
        let codec = codec?;
        let format = sluice_core::formats::Request {
            codec,
            bit_depth: r.bit_depth.as_ref().map(|b| match b.get_ref() {
                BitDepth::Int(n) => n.to_string(),
                BitDepth::Text(s) => s.clone(),
            }),
            quality: r.quality,
            bitrate_kbps: r.bitrate_kbps,
            compression_level: r.compression_level,
        };
        if let Err(e) = format.check() {
            self.err(
                o.span(),
                e.message(&sluice_core::formats::OptionNames::TOML),
            );
        }
        if let Some(sr) = &r.sample_rate {
            let rate = *sr.get_ref();
            if !sluice_core::formats::limits::SAMPLE_RATES.contains(&rate)
                || codec
                    .about()
                    .constraints
                    .sample_rates
                    .is_some_and(|rates| !rates.contains(&rate))
            {
                self.err(
                    sr.span(),
                    format!("sample_rate {rate}: not a rate {} can store", codec.name()),
                );
            }
        }
        Some(format)
    }

    /// Whether an output fails its job when it misses its true-peak ceiling after its encodes,
    /// and how many encodes it may take.
    fn true_peak_policy(&mut self, r: &RawOutput) -> (bool, u32) {
        let fail_on_true_peak_miss = match r.true_peak_miss.as_ref() {
            None => false,
            Some(m) => match m.get_ref().as_str() {
                "warn" => false,
                "fail" if r.true_peak_check == Some(false) => {
                    self.err(
                        m.span(),
                        "true_peak_miss = \"fail\" needs the check this output turns off (true_peak_check = false)",
                    );
                    false
                }
                "fail" => true,
                _ => {
                    self.err(m.span(), "true_peak_miss: warn or fail");
                    false
                }
            },
        };
        let true_peak_encodes = match r.true_peak_encodes.as_ref() {
            None => sluice_core::export::MAX_ENCODES,
            Some(n) if (1..=sluice_core::export::MAX_ENCODES).contains(n.get_ref()) => *n.get_ref(),
            Some(n) => {
                self.err(
                    n.span(),
                    format!(
                        "true_peak_encodes: 1 (measure and report only) to {}",
                        sluice_core::export::MAX_ENCODES
                    ),
                );
                sluice_core::export::MAX_ENCODES
            }
        };
        (fail_on_true_peak_miss, true_peak_encodes)
    }

    /// What becomes of the source: moved (by default to `done/{pipeline}/{name}`), kept or deleted.
    fn source(&mut self, source: Option<&Spanned<RawSource>>) -> SourceAction {
        match source {
            None => SourceAction::Move(Template::parse("done/{pipeline}/{name}").expect("valid")),
            Some(s) => {
                let r = s.get_ref();
                match (r.action.get_ref().as_str(), &r.to) {
                    ("keep", None) => SourceAction::Keep,
                    ("delete", None) => SourceAction::Delete,
                    ("move", Some(to)) => match self.template(to, "source.to") {
                        Some(t) => SourceAction::Move(t),
                        None => SourceAction::Keep,
                    },
                    ("move", None) => SourceAction::Move(
                        Template::parse("done/{pipeline}/{name}").expect("valid"),
                    ),
                    ("keep" | "delete", Some(to)) => {
                        self.err(to.span(), "source.to applies to action = \"move\"");
                        SourceAction::Keep
                    }
                    (other, _) => {
                        self.err(
                            r.action.span(),
                            format!("source.action {other:?}: keep, move or delete"),
                        );
                        SourceAction::Keep
                    }
                }
            }
        }
    }

    /// Where the report goes (by default under `reports/`), or none.
    fn report(&mut self, report: Option<&Spanned<RawReport>>) -> Option<Template> {
        match report {
            None => Some(
                Template::parse("reports/{pipeline}/{date:%Y/%m/%d}/{name}.json").expect("valid"),
            ),
            Some(r) => match r.get_ref() {
                RawReport::Off(false) => None,
                RawReport::Off(true) => Some(
                    Template::parse("reports/{pipeline}/{date:%Y/%m/%d}/{name}.json")
                        .expect("valid"),
                ),
                RawReport::Path(p) => self.template(&Spanned::new(r.span(), p.clone()), "report"),
            },
        }
    }
}

/// Every pipeline of a folder (`*.toml`, sorted), with the problems of those that failed and
/// the problems between pipelines (same name, same output path, outputs written into a watched
/// folder). A pipeline with a cross-pipeline problem is refused too.
pub fn load_dir(dir: &Path, defaults: Defaults) -> (Vec<Pipeline>, Vec<Diagnostic>) {
    load_dir_keeping(dir, defaults, &BTreeMap::new())
}

/// [`load_dir`], keeping each name with the file `owners` gives for it (see [`load_files`]).
pub fn load_dir_keeping(
    dir: &Path,
    defaults: Defaults,
    owners: &BTreeMap<String, PathBuf>,
) -> (Vec<Pipeline>, Vec<Diagnostic>) {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension().is_some_and(|e| e == "toml")
                    && !p
                        .file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            })
            .collect(),
        Err(e) => {
            return (
                Vec::new(),
                vec![Diagnostic {
                    file: dir.to_path_buf(),
                    line: 1,
                    col: 1,
                    message: format!("cannot read the pipelines folder: {e}"),
                }],
            );
        }
    };
    files.sort();
    load_files(&files, defaults, owners)
}

/// Like [`load_dir`] for a list of files. When two files claim one pipeline name (or write
/// the same paths), the one `owners` names for it keeps it (the host passes the file each
/// name was first loaded from); without one, the file named after the pipeline, then the first
/// in order. The other is refused.
pub fn load_files(
    files: &[PathBuf],
    defaults: Defaults,
    owners: &BTreeMap<String, PathBuf>,
) -> (Vec<Pipeline>, Vec<Diagnostic>) {
    let mut ok = Vec::new();
    let mut problems = Vec::new();
    let mut texts = BTreeMap::new();
    for f in files {
        match std::fs::read_to_string(f) {
            Ok(text) => match parse(f, &text, defaults) {
                Ok(p) => {
                    texts.insert(f.clone(), text);
                    ok.push(p);
                }
                Err(d) => problems.extend(d),
            },
            Err(e) => problems.push(Diagnostic {
                file: f.clone(),
                line: 1,
                col: 1,
                message: format!("cannot read: {e}"),
            }),
        }
    }
    ok.sort_by_key(|p| {
        let owner = owners.get(&p.name).is_some_and(|f| *f == p.file);
        let named = p.file.file_stem().is_some_and(|s| *s == *p.name);
        (!owner, !named, p.file.clone())
    });
    let refused = cross_check(&ok, &texts, &mut problems);
    ok.retain(|p| !refused.contains(&p.file));
    (ok, problems)
}

/// Where the text of `needle` (a template's source) sits in `text`, for messages.
fn locate(text: &str, needle: &str) -> (usize, usize) {
    text.find(&format!("\"{needle}\""))
        .or_else(|| text.find(&format!("'{needle}'")))
        .or_else(|| text.find(needle))
        .map_or((1, 1), |o| line_col(text, o))
}

/// Problems between pipelines; returns the files refused.
fn cross_check(
    ps: &[Pipeline],
    texts: &BTreeMap<PathBuf, String>,
    problems: &mut Vec<Diagnostic>,
) -> Vec<PathBuf> {
    let mut refused = Vec::new();
    let mut report = |p: &Pipeline, needle: &str, message: String| {
        let (line, col) = texts.get(&p.file).map_or((1, 1), |t| locate(t, needle));
        problems.push(Diagnostic {
            file: p.file.clone(),
            line,
            col,
            message,
        });
        refused.push(p.file.clone());
    };
    // A sample rendering: the same for every pipeline except {pipeline}, so two templates
    // that render alike here write the same file for the same input.
    let now = jiff::Timestamp::UNIX_EPOCH.to_zoned(jiff::tz::TimeZone::UTC);
    let tags = BTreeMap::new();
    let mut seen_names: BTreeMap<&str, &Pipeline> = BTreeMap::new();
    let mut seen_paths: BTreeMap<PathBuf, (&Pipeline, String)> = BTreeMap::new();
    for p in ps {
        if let Some(first) = seen_names.insert(&p.name, p) {
            report(
                p,
                "name",
                format!(
                    "pipeline name {:?} is already used by {}",
                    p.name,
                    first.file.display()
                ),
            );
        }
        let vars = crate::template::Vars {
            stem: "\u{1}stem",
            name: "\u{1}name",
            ext: "\u{1}ext",
            folder: Some("\u{1}folder"),
            pipeline: &p.name,
            now: &now,
            job: 1,
            tags: &tags,
        };
        let mut written: Vec<(&Template, &str)> =
            p.outputs.iter().map(|o| (&o.path, "output path")).collect();
        if let Some(r) = &p.report {
            written.push((r, "report"));
        }
        if let SourceAction::Move(t) = &p.source {
            written.push((t, "source.to"));
        }
        for (t, what) in written {
            let rendered = t.render(&vars);
            if let Some((other, other_tpl)) = seen_paths.get(&rendered) {
                report(
                    p,
                    t.as_str(),
                    format!(
                        "{what} {:?} writes the same files as {:?} in {} (pipeline {:?}): make them differ, for example with {{pipeline}}",
                        t.as_str(),
                        other_tpl,
                        other.file.display(),
                        other.name
                    ),
                );
            } else {
                seen_paths.insert(rendered, (p, t.as_str().to_string()));
            }
            let dir = t.static_dir();
            for q in ps {
                for w in &q.watch {
                    if dir.starts_with(w) || (w.starts_with(&dir) && t.variables().is_empty()) {
                        report(
                            p,
                            t.as_str(),
                            format!(
                                "{what} {:?} is inside {}, which pipeline {:?} watches: its files would be taken as new input",
                                t.as_str(),
                                w.display(),
                                q.name
                            ),
                        );
                    }
                }
            }
        }
    }
    refused.sort();
    refused.dedup();
    refused
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: Defaults = Defaults {
        target_lufs: -16.0,
        target_true_peak_dbtp: -1.0,
        effects: None,
        root: None,
    };

    fn check(text: &str) -> Result<Pipeline, Vec<Diagnostic>> {
        parse(Path::new("p.toml"), text, D)
    }

    #[test]
    fn analyze_takes_a_flag_a_list_or_a_table() {
        let base = "watch = \"in\"\n[[step]]\n";
        let sections = |v: &str| {
            check(&format!("{base}analyze = {v}\n")).map(|p| p.analyze().map(<[Section]>::to_vec))
        };
        assert_eq!(sections("true").unwrap(), Some(Section::ALL.to_vec()));
        let two = Some(vec![Section::Loudness, Section::Levels]);
        assert_eq!(sections("[\"loudness\", \"levels\"]").unwrap(), two);
        assert_eq!(
            sections("{ sections = [\"loudness\", \"levels\"] }").unwrap(),
            two
        );
        let e = sections("\"loud\"").unwrap_err();
        assert!(
            e[0].to_string()
                .contains("p.toml:3:11: true, false, or the step's options"),
            "{}",
            e[0]
        );
    }

    #[test]
    fn analyze_takes_a_tempo_range_an_octave_wide() {
        let base = "watch = \"in\"\n[[step]]\n";
        let p = check(&format!("{base}analyze = {{ tempo_range = [88, 176] }}\n")).unwrap();
        assert_eq!(p.tempo_range(), Some((88.0, 176.0)));
        assert_eq!(
            p.analyze().map(<[Section]>::to_vec),
            Some(Section::ALL.to_vec())
        );
        assert_eq!(
            check(&format!("{base}analyze = true\n"))
                .unwrap()
                .tempo_range(),
            None
        );
        for (bad, says) in [("[100, 150]", "an octave"), ("[10, 400]", "30 to 300")] {
            let e = check(&format!("{base}analyze = {{ tempo_range = {bad} }}\n")).unwrap_err();
            assert!(e[0].to_string().contains(says), "{bad}: {}", e[0]);
        }
    }

    #[test]
    fn effect_steps_are_checked_against_the_effects_descriptors() {
        let catalog =
            crate::effects::Catalog::load(crate::effects::Runtime::new(None).unwrap(), None);
        let d = Defaults {
            effects: Some(&catalog),
            ..D
        };
        let step = |body: &str| {
            parse(
                Path::new("p.toml"),
                &format!(
                    "watch = \"in\"\n[[step]]\n{body}\n[[output]]\npath = \"o/{{stem}}.wav\"\n"
                ),
                d,
            )
        };
        let p = step("effect = \"eq\"\nparams = { type = \"highshelf\", freq_hz = 8000, gain_db = -3.5 }\ntime_budget_ms = 200").unwrap();
        match &p.steps[0] {
            StepSpec::Effect(e) => {
                assert_eq!(e.name, "eq");
                assert_eq!(e.params.len(), 3);
                assert_eq!(e.time_budget_ms, Some(200));
                let limits = crate::effects::Limits::for_step(e);
                assert_eq!(limits.time_budget, std::time::Duration::from_millis(200));
                assert_eq!(
                    limits.memory_bytes,
                    crate::effects::Limits::default().memory_bytes
                );
            }
            s => panic!("{s:?}"),
        }
        for (body, want) in [
            ("effect = \"wobble\"", "effect \"wobble\" is not known"),
            (
                "effect = \"eq\"\nparams = { cutoff = 3 }",
                "no parameter \"cutoff\"",
            ),
            (
                "effect = \"eq\"\nparams = { freq_hz = 5 }",
                "out of range (20 to 20000 Hz)",
            ),
            (
                "effect = \"eq\"\nparams = { type = \"wah\" }",
                "not one of lowpass",
            ),
            ("effect = \"gain\"\nmemory_mb = 0", "memory_mb: from 1"),
            ("gain_db = 3\nmemory_mb = 5", "belongs to an effect step"),
        ] {
            let e = step(body).unwrap_err();
            assert!(e[0].to_string().contains(want), "{body}: {}", e[0]);
            assert!(e[0].line >= 3, "{}", e[0]);
        }

        // An effect still being checked in the background: the step is checked against its
        // descriptor, and the pipeline says it waits for it (or is refused for a real problem).
        let mut loading = catalog.clone();
        loading.loading.insert(
            "echo".into(),
            crate::effects::Loading {
                file: "effects/echo.wasm".into(),
                descriptor: crate::effects::descriptor::Descriptor::parse(
                    br#"{"abi":1,"name":"echo","version":"1","max_channels":2,
                        "params":[{"id":"mix","name":"Mix","min":0,"max":1,"default":0.5}]}"#,
                )
                .unwrap(),
            },
        );
        let d = Defaults {
            effects: Some(&loading),
            ..D
        };
        let step = |body: &str| {
            parse(
                Path::new("p.toml"),
                &format!(
                    "watch = \"in\"\n[[step]]\n{body}\n[[step]]\neffect = \"gain\"\n[[output]]\npath = \"o/{{stem}}.wav\"\n"
                ),
                d,
            )
        };
        let p = step("effect = \"echo\"\nparams = { mix = 0.3 }").unwrap();
        assert_eq!(p.waiting_for, ["echo"]);
        let e = step("effect = \"echo\"\nparams = { mix = 3 }").unwrap_err();
        assert!(e[0].message.contains("out of range"), "{e:?}");
        assert!(step("effect = \"eq\"").unwrap().waiting_for.is_empty());
    }

    #[test]
    fn a_full_pipeline_parses() {
        let p = check(
            r#"
name = "podcast"
watch = "inbox/podcast"
include = ["*.wav", "*.flac"]
exclude = ["draft*"]

[[step]]
analyze = true
[[step]]
trim_silence = { threshold_dbfs = -55 }
[[step]]
normalize = { preset = "podcast" }

[[output]]
path = "outbox/podcast/{date:%Y/%m/%d}/{stem}.mp3"
bitrate_kbps = 128
[[output]]
path = "archive/{stem}.flac"
bit_depth = 24
tags = { artist = "My Show" }

[source]
action = "move"
to = "done/{name}"
"#,
        )
        .unwrap();
        assert_eq!(p.name, "podcast");
        assert_eq!(p.steps.len(), 3);
        assert_eq!(p.outputs.len(), 2);
        assert_eq!(p.outputs[0].format.codec.id(), "mp3");
        assert!(p.matches(Path::new("show.WAV")));
        assert!(p.matches(Path::new("sub/show.flac")));
        assert!(!p.matches(Path::new("draft1.wav")));
        assert!(!p.matches(Path::new("show.mp3")));
        assert!(p.analyze().is_some());
    }

    #[test]
    fn errors_are_located() {
        let text = "watch = \"in\"\n[[output]]\npath = \"out/{stem}.mp3\"\nbitrate_kbps = 129\n";
        let e = check(text).unwrap_err();
        assert_eq!(e.len(), 1);
        assert_eq!((e[0].line, e[0].col), (2, 1), "{e:?}");
        assert!(e[0].message.contains("bitrate_kbps 129"), "{e:?}");

        let e = check("watch = \"in\"\n[[output]]\npath = \"out/{stme}.wav\"\n").unwrap_err();
        assert_eq!((e[0].line, e[0].col), (3, 13), "{e:?}");
        assert!(e[0].message.contains("stme"), "{e:?}");

        let e = check("watch = \"in\"\nwatchh = 1\n").unwrap_err();
        assert_eq!(e[0].line, 2, "{e:?}");
        assert!(e[0].message.contains("unknown field"), "{e:?}");

        let e = check("watch = \"../etc\"\n[[step]]\nanalyze = true\n").unwrap_err();
        assert!(e[0].message.contains("inside the root"), "{e:?}");

        let e = check(
            "watch = \"in\"\n[[step]]\nnormalize = { loudness_lufs = -16, peak_dbfs = -1 }\n",
        )
        .unwrap_err();
        assert_eq!(e[0].line, 3);
        let e = check("watch = \"in\"\n[[step]]\neffect = \"reverb\"\n").unwrap_err();
        assert!(e[0].message.contains("no effects are available"), "{e:?}");
        let e = check("watch = \"in\"\n").unwrap_err();
        assert!(e[0].message.contains("do nothing"), "{e:?}");
    }

    #[test]
    fn the_hash_ignores_comments_and_layout() {
        let a = check("watch = \"in\"\n[[step]]\nanalyze = true\n").unwrap();
        let b = check("# a comment\nwatch    = 'in'\n\n[[step]]\nanalyze = true # why\n").unwrap();
        let c = check("watch = \"in2\"\n[[step]]\nanalyze = true\n").unwrap();
        assert_eq!(a.hash, b.hash);
        assert_ne!(a.hash, c.hash);
    }

    #[test]
    fn pipelines_that_collide_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let w = |n: &str, t: &str| std::fs::write(dir.path().join(n), t).unwrap();
        w(
            "a.toml",
            "watch = \"in/a\"\n[[output]]\npath = \"out/{stem}.flac\"\n",
        );
        w(
            "b.toml",
            "watch = \"in/b\"\n[[output]]\npath = \"out/{stem}.flac\"\n",
        );
        w(
            "c.toml",
            "watch = \"in/c\"\n[[output]]\npath = \"in/a/{stem}.flac\"\n",
        );
        w(
            "d.toml",
            "watch = \"in/d\"\n[[output]]\npath = \"out/{pipeline}/{stem}.flac\"\n",
        );
        let (ok, problems) = load_dir(dir.path(), D);
        let names: Vec<&str> = ok.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["a", "d"], "{problems:#?}");
        assert_eq!(problems.len(), 2, "{problems:#?}");
        assert!(problems[0].message.contains("writes the same files"));
        assert_eq!(problems[0].line, 3);
        assert!(problems[1].message.contains("which pipeline \"a\" watches"));
    }
}
