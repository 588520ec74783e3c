//! Output path templates.
//!
//! A pipeline's output path is a template such as
//! `outbox/podcast/{date:%Y/%m/%d}/{stem}.mp3` or
//! `music/{artist|Unknown Artist}/{album}/{track} {title}.flac`. Rendering a
//! template gives a path *relative* to the pipeline's root folder, and the
//! rendered path can never leave that folder.
//!
//! # Syntax
//!
//! | Form              | Meaning                                                      |
//! |-------------------|--------------------------------------------------------------|
//! | `text`            | Literal text, kept as written; `/` separates folders.        |
//! | `{var}`           | The value of `var`, sanitized (see [`sanitize`]).            |
//! | `{var\|default}`  | `default` when `var` is missing or sanitizes to empty.       |
//! | `{date}`          | The current date as `%Y-%m-%d`.                              |
//! | `{date:FORMAT}`   | The current time in strftime `FORMAT`; `/` makes folders.    |
//! | `{{`, `}}`        | A literal `{` or `}`.                                        |
//!
//! Variables: `stem`, `name`, `ext`, `folder` (the name of the folder the source arrived in
//! inside the watch folder, an album's folder; missing for a file directly in the watch
//! folder), `pipeline`, `job`, `date`, and the tag
//! fields `title`, `artist`, `album`, `album_artist`, `genre`, `year`,
//! `track`, `disc`, `isrc`, `bpm`, `initial_key`, `comment`, `composer`.
//!
//! A value that is missing (or empty after sanitizing) renders as its default
//! when one is given (the default is sanitized too, and may be empty:
//! `{disc|}`), and as `unknown` otherwise. `{date}` takes no default.
//!
//! # Checks
//!
//! [`Template::parse`] rejects unknown variables, unbalanced braces, empty
//! `{}`, invalid strftime formats, and templates that are not plain relative
//! paths: empty, absolute (`/…`, `C:…`), containing `\` or control
//! characters in literal text, with an empty component (`a//b`, trailing
//! `/`), or with a component made only of dots (`.`, `..`). Errors inside a
//! `{…}` point at its `{`.
//!
//! [`Template::render`] never fails: after substitution, a component that is
//! empty or only dots becomes `_`, and a component longer than 255 bytes is
//! shortened on a character boundary, keeping its extension.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

/// Longest sanitized value, in bytes.
const MAX_VALUE_BYTES: usize = 120;
/// Longest rendered path component, in bytes.
const MAX_COMPONENT_BYTES: usize = 255;
/// Longest extension kept when a component is shortened, in bytes (no dot).
const MAX_EXT_BYTES: usize = 16;
/// What a missing value without a default renders as.
const UNKNOWN: &str = "unknown";
/// The format of a bare `{date}`.
const DEFAULT_DATE_FORMAT: &str = "%Y-%m-%d";

/// Variables taken from the source file and the job.
const BUILTIN_VARS: &[&str] = &["stem", "name", "ext", "folder", "pipeline", "job", "date"];
/// Variables taken from the source file's tags (keys of [`Vars::tags`]).
const TAG_VARS: &[&str] = &[
    "title",
    "artist",
    "album",
    "album_artist",
    "genre",
    "year",
    "track",
    "disc",
    "isrc",
    "bpm",
    "initial_key",
    "comment",
    "composer",
];

/// A parsed path template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

/// One piece of a parsed template.
#[derive(Debug, Clone, PartialEq)]
enum Part {
    /// Literal text, braces unescaped; may contain `/` separators.
    Literal(String),
    /// `{name}` or `{name|default}`; the default is stored sanitized.
    Var {
        name: &'static str,
        default: Option<String>,
    },
    /// `{date}` or `{date:FORMAT}`.
    Date { format: String },
}

/// Why a template could not be parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct TemplateError {
    /// Byte offset into the template string where the problem is.
    pub offset: usize,
    /// What is wrong, for people.
    pub message: String,
}

impl TemplateError {
    fn new(offset: usize, message: impl Into<String>) -> Self {
        TemplateError {
            offset,
            message: message.into(),
        }
    }
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for TemplateError {}

/// Values a template is rendered with.
pub struct Vars<'a> {
    /// Source file name without extension.
    pub stem: &'a str,
    /// Source file name with extension.
    pub name: &'a str,
    /// Source extension without dot (`""` if none).
    pub ext: &'a str,
    /// The name of the folder the source arrived in, inside the watch folder (`None`
    /// directly in it).
    pub folder: Option<&'a str>,
    /// Name of the pipeline.
    pub pipeline: &'a str,
    /// The time used for `{date}` and `{date:FMT}`.
    pub now: &'a jiff::Zoned,
    /// The job number, for `{job}`.
    pub job: u64,
    /// Tags of the source file, with lower-case keys (`title`, `artist`, ...).
    pub tags: &'a BTreeMap<String, String>,
}

impl Vars<'_> {
    /// The raw value of a non-date variable, `None` when missing.
    fn get(&self, name: &str) -> Option<String> {
        match name {
            "stem" => Some(self.stem.to_owned()),
            "name" => Some(self.name.to_owned()),
            "ext" => Some(self.ext.to_owned()),
            "folder" => self.folder.map(str::to_owned),
            "pipeline" => Some(self.pipeline.to_owned()),
            "job" => Some(self.job.to_string()),
            _ => self.tags.get(name).cloned(),
        }
    }
}

/// How one character of the template shapes the output path; used only by
/// the parse-time path checks.
enum Shape {
    /// A folder separator, from literal text or a date format.
    Sep(usize),
    /// A character known at parse time (literal text, or date output for a
    /// fixed date). `literal` tells the two apart.
    Char {
        offset: usize,
        ch: char,
        literal: bool,
    },
    /// A substituted value, unknown until rendering.
    Value(usize),
}

impl Shape {
    fn offset(&self) -> usize {
        match *self {
            Shape::Sep(offset) | Shape::Char { offset, .. } | Shape::Value(offset) => offset,
        }
    }
}

impl Template {
    /// Parse a template, checking its syntax, its variables, its date
    /// formats and that it describes a plain relative path.
    pub fn parse(s: &str) -> Result<Template, TemplateError> {
        if s.is_empty() {
            return Err(TemplateError::new(0, "template is empty"));
        }
        let bytes = s.as_bytes();
        if bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':' {
            return Err(TemplateError::new(
                0,
                "template must be a relative path, not start with a drive letter",
            ));
        }

        let mut parts = Vec::new();
        let mut shapes = Vec::new();
        let mut literal = String::new();
        let mut chars = s.char_indices().peekable();
        while let Some((offset, ch)) = chars.next() {
            match ch {
                '{' if chars.peek().map(|&(_, c)| c) == Some('{') => {
                    chars.next();
                    literal.push('{');
                    shapes.push(Shape::Char {
                        offset,
                        ch,
                        literal: true,
                    });
                }
                '}' if chars.peek().map(|&(_, c)| c) == Some('}') => {
                    chars.next();
                    literal.push('}');
                    shapes.push(Shape::Char {
                        offset,
                        ch,
                        literal: true,
                    });
                }
                '}' => {
                    return Err(TemplateError::new(
                        offset,
                        "unmatched `}` (write `}}` for a literal brace)",
                    ));
                }
                '{' => {
                    let body_start = offset + 1;
                    let body_len = s[body_start..]
                        .find(['{', '}'])
                        .filter(|&i| s.as_bytes()[body_start + i] == b'}')
                        .ok_or_else(|| {
                            TemplateError::new(
                                offset,
                                "unclosed `{` (write `{{` for a literal brace)",
                            )
                        })?;
                    let body = &s[body_start..body_start + body_len];
                    // Skip the body and its closing brace.
                    while chars
                        .next_if(|&(i, _)| i <= body_start + body_len)
                        .is_some()
                    {}

                    let part = parse_var(body, offset)?;
                    if let Part::Date { format } = &part {
                        for ch in format_date(format, &validation_time())
                            .map_err(|e| {
                                TemplateError::new(
                                    offset,
                                    format!("invalid date format `{format}`: {e}"),
                                )
                            })?
                            .chars()
                        {
                            shapes.push(if ch == '/' {
                                Shape::Sep(offset)
                            } else {
                                Shape::Char {
                                    offset,
                                    ch,
                                    literal: false,
                                }
                            });
                        }
                    } else {
                        shapes.push(Shape::Value(offset));
                    }
                    if !literal.is_empty() {
                        parts.push(Part::Literal(std::mem::take(&mut literal)));
                    }
                    parts.push(part);
                }
                '\\' => {
                    return Err(TemplateError::new(
                        offset,
                        "`\\` is not allowed in a template (use `/` to separate folders)",
                    ));
                }
                c if c.is_control() => {
                    return Err(TemplateError::new(
                        offset,
                        "control characters are not allowed in a template",
                    ));
                }
                '/' => {
                    literal.push('/');
                    shapes.push(Shape::Sep(offset));
                }
                c => {
                    literal.push(c);
                    shapes.push(Shape::Char {
                        offset,
                        ch: c,
                        literal: true,
                    });
                }
            }
        }
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        check_shapes(&shapes)?;
        Ok(Template {
            source: s.to_owned(),
            parts,
        })
    }

    /// Render to a relative path. Every substituted value is sanitized;
    /// literal text is kept, and `/` in literal text (or in a date format)
    /// separates folders. The result only has normal components, each at
    /// most 255 bytes.
    pub fn render(&self, vars: &Vars) -> PathBuf {
        let mut components = vec![String::new()];
        for part in &self.parts {
            match part {
                Part::Literal(text) => push_text(text, &mut components),
                Part::Var { name, default } => {
                    let value = vars
                        .get(name)
                        .map(|v| sanitize(&v))
                        .filter(|v| !v.is_empty())
                        .or_else(|| default.clone())
                        .unwrap_or_else(|| UNKNOWN.to_owned());
                    push_text(&value, &mut components);
                }
                Part::Date { format } => {
                    // The format was checked at parse time; should it still
                    // fail for this particular time, treat it as missing.
                    let text = format_date(format, vars.now)
                        .map(|out| out.split('/').map(sanitize).collect::<Vec<_>>().join("/"))
                        .unwrap_or_else(|_| UNKNOWN.to_owned());
                    push_text(&text, &mut components);
                }
            }
        }
        components.into_iter().map(finish_component).collect()
    }

    /// The literal folders before the first variable, e.g. `outbox/podcast`
    /// for `outbox/podcast/{date:%Y}/{stem}.mp3`; empty if the template
    /// starts with a variable. For a template without variables it is the
    /// folder of the file.
    pub fn static_dir(&self) -> PathBuf {
        let prefix = match self.parts.first() {
            Some(Part::Literal(text)) => text.as_str(),
            _ => "",
        };
        match prefix.rfind('/') {
            Some(i) => PathBuf::from(&prefix[..i]),
            None => PathBuf::new(),
        }
    }

    /// The variable names used, in order of first use, without repeats.
    pub fn variables(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        for part in &self.parts {
            let name = match part {
                Part::Literal(_) => continue,
                Part::Var { name, .. } => *name,
                Part::Date { .. } => "date",
            };
            if !names.contains(&name) {
                names.push(name);
            }
        }
        names
    }

    /// The source text of the template.
    pub fn as_str(&self) -> &str {
        &self.source
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// Append `text` to the last of `components`; each `/` in it starts a new
/// component.
fn push_text(text: &str, components: &mut Vec<String>) {
    let mut pieces = text.split('/');
    if let (Some(first), Some(last)) = (pieces.next(), components.last_mut()) {
        last.push_str(first);
    }
    components.extend(pieces.map(str::to_owned));
}

/// Parse the body of a `{…}` that starts at `offset`.
fn parse_var(body: &str, offset: usize) -> Result<Part, TemplateError> {
    if body.is_empty() {
        return Err(TemplateError::new(offset, "empty variable `{}`"));
    }
    let (name, rest) = match body.find([':', '|']) {
        Some(i) => (&body[..i], Some((body.as_bytes()[i], &body[i + 1..]))),
        None => (body, None),
    };
    let known = BUILTIN_VARS
        .iter()
        .chain(TAG_VARS)
        .find(|&&known| known == name)
        .copied()
        .ok_or_else(|| {
            TemplateError::new(
                offset,
                format!(
                    "unknown variable `{name}` (known: {}, {})",
                    BUILTIN_VARS.join(", "),
                    TAG_VARS.join(", ")
                ),
            )
        })?;
    match (known, rest) {
        ("date", None) => Ok(Part::Date {
            format: DEFAULT_DATE_FORMAT.to_owned(),
        }),
        ("date", Some((b':', ""))) => {
            Err(TemplateError::new(offset, "empty date format in `{date:}`"))
        }
        ("date", Some((b':', format))) => Ok(Part::Date {
            format: format.to_owned(),
        }),
        ("date", Some(_)) => Err(TemplateError::new(
            offset,
            "`date` takes a format (`{date:%Y}`), not a default",
        )),
        (name, None) => Ok(Part::Var {
            name,
            default: None,
        }),
        (name, Some((b'|', default))) => Ok(Part::Var {
            name,
            default: Some(sanitize(default)),
        }),
        (name, Some(_)) => Err(TemplateError::new(
            offset,
            format!("`{name}` takes no format; only `date` does"),
        )),
    }
}

/// Check that the template's shape is a plain relative path.
fn check_shapes(shapes: &[Shape]) -> Result<(), TemplateError> {
    if let Some(Shape::Sep(offset)) = shapes.first() {
        return Err(TemplateError::new(
            *offset,
            "template must be a relative path, not start with `/`",
        ));
    }
    if let Some(Shape::Sep(offset)) = shapes.last() {
        return Err(TemplateError::new(
            *offset,
            "template must not end with `/`; it names a file",
        ));
    }
    for component in shapes.split(|shape| matches!(shape, Shape::Sep(_))) {
        let Some(first) = component.first() else {
            // Between two separators; the first and last shapes are not
            // separators, so a following separator exists.
            let next = shapes
                .windows(2)
                .find(|w| matches!(w, [Shape::Sep(_), Shape::Sep(_)]))
                .map_or(0, |w| w[1].offset());
            return Err(TemplateError::new(next, "empty folder name (`//`)"));
        };
        let all_dots = component
            .iter()
            .all(|shape| matches!(shape, Shape::Char { ch: '.', .. }));
        if all_dots {
            return Err(TemplateError::new(
                first.offset(),
                "`.`, `..` and other dots-only folder or file names are not allowed",
            ));
        }
        // A component shaped only by literal text is kept as written; make
        // sure it will fit.
        let literal_len: usize = component
            .iter()
            .map(|shape| match shape {
                Shape::Char {
                    ch, literal: true, ..
                } => ch.len_utf8(),
                _ => 0,
            })
            .sum();
        if literal_len > MAX_COMPONENT_BYTES {
            return Err(TemplateError::new(
                first.offset(),
                format!("a folder or file name is longer than {MAX_COMPONENT_BYTES} bytes"),
            ));
        }
    }
    Ok(())
}

/// Format `now` with a strftime `format`.
fn format_date(format: &str, now: &jiff::Zoned) -> Result<String, jiff::Error> {
    jiff::fmt::strtime::format(format, now)
}

/// A fixed time used to validate date formats at parse time.
fn validation_time() -> jiff::Zoned {
    jiff::civil::date(2024, 7, 14)
        .at(17, 31, 59, 123_456_789)
        .to_zoned(jiff::tz::TimeZone::UTC)
        .expect("a fixed UTC time is valid")
}

/// Make `value` safe as (part of) one path component.
///
/// - `/` and `\` become `_`, and so do the characters Windows forbids
///   (`<>:"|?*`);
/// - whitespace control characters (tab, newline, ...) count as spaces;
///   other control characters (ASCII, DEL, Unicode `Cc`) and bidirectional
///   text controls (U+200E, U+200F, U+202A–U+202E, U+2066–U+2069) are
///   removed;
/// - runs of whitespace become one space, and the ends are trimmed;
/// - leading dots are removed, so the result is never `.`, `..` or hidden;
/// - the result is cut to at most 120 bytes on a character boundary.
///
/// The result may be empty.
pub fn sanitize(value: &str) -> String {
    let mut out = String::with_capacity(value.len().min(MAX_VALUE_BYTES * 4));
    let mut pending_space = false;
    for ch in value.chars() {
        let ch = match ch {
            '/' | '\\' | '<' | '>' | ':' | '"' | '|' | '?' | '*' => '_',
            c if c.is_whitespace() => {
                pending_space = true;
                continue;
            }
            c if c.is_control() || is_bidi_control(c) => continue,
            c => c,
        };
        // Leading dots (and spaces before or between them) are dropped.
        if out.is_empty() && ch == '.' {
            pending_space = false;
            continue;
        }
        let space = pending_space && !out.is_empty();
        pending_space = false;
        if out.len() + usize::from(space) + ch.len_utf8() > MAX_VALUE_BYTES {
            break;
        }
        if space {
            out.push(' ');
        }
        out.push(ch);
    }
    // Whitespace is only written before a following character, so `out`
    // has no trailing whitespace.
    out
}

/// Bidirectional formatting characters, which can disguise a file name.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Cut `s` to at most `max` bytes, on a character boundary.
fn truncate_at_boundary(s: &mut String, max: usize) {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
}

/// Make one rendered component safe: at most 255 bytes (keeping a short
/// extension), and `_` if it is empty or only dots.
fn finish_component(mut component: String) -> String {
    if component.len() > MAX_COMPONENT_BYTES {
        let ext = component
            .rfind('.')
            .filter(|&dot| dot > 0 && component.len() - dot - 1 <= MAX_EXT_BYTES)
            .map(|dot| component[dot..].to_owned());
        match ext {
            Some(ext) => {
                component.truncate(component.len() - ext.len());
                truncate_at_boundary(&mut component, MAX_COMPONENT_BYTES - ext.len());
                component.push_str(&ext);
            }
            None => truncate_at_boundary(&mut component, MAX_COMPONENT_BYTES),
        }
    }
    if component.chars().all(|c| c == '.') {
        component = "_".to_owned();
    }
    component
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Component, Path};

    fn now() -> jiff::Zoned {
        jiff::civil::date(2025, 3, 7)
            .at(9, 5, 1, 0)
            .to_zoned(jiff::tz::TimeZone::UTC)
            .unwrap()
    }

    fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Render `template` for `episode 12.wav` in pipeline `podcast`, job 42.
    fn render_with(template: &str, stem: &str, tags: &BTreeMap<String, String>) -> PathBuf {
        let now = now();
        let name = format!("{stem}.wav");
        let vars = Vars {
            stem,
            name: &name,
            ext: "wav",
            folder: None,
            pipeline: "podcast",
            now: &now,
            job: 42,
            tags,
        };
        let path = Template::parse(template).unwrap().render(&vars);
        assert_safe(&path);
        path
    }

    fn render(template: &str, tags: &BTreeMap<String, String>) -> PathBuf {
        render_with(template, "episode 12", tags)
    }

    /// Every component is normal, non-empty and at most 255 bytes.
    fn assert_safe(path: &Path) {
        assert!(path.is_relative(), "{path:?} is not relative");
        assert!(path.components().next().is_some(), "{path:?} is empty");
        for component in path.components() {
            let Component::Normal(c) = component else {
                panic!("{path:?} has a non-normal component {component:?}");
            };
            let c = c.to_str().unwrap();
            assert!(!c.is_empty() && c.len() <= 255, "{path:?}: bad length");
            assert!(!c.contains(['/', '\\', '\0']), "{path:?}: bad char");
        }
    }

    fn err(template: &str) -> TemplateError {
        Template::parse(template).expect_err(template)
    }

    #[test]
    fn podcast_example() {
        let t = "outbox/podcast/{date:%Y/%m/%d}/{stem}.mp3";
        assert_eq!(
            render(t, &tags(&[])),
            Path::new("outbox/podcast/2025/03/07/episode 12.mp3")
        );
        let parsed = Template::parse(t).unwrap();
        assert_eq!(parsed.static_dir(), Path::new("outbox/podcast"));
        assert_eq!(parsed.variables(), ["date", "stem"]);
        assert_eq!(parsed.as_str(), t);
        assert_eq!(parsed.to_string(), t);
    }

    #[test]
    fn music_example() {
        let t = "music/{artist|Unknown Artist}/{album}/{track} {title}.flac";
        let full = tags(&[
            ("artist", "Nina Simone"),
            ("album", "Pastel Blues"),
            ("track", "05"),
            ("title", "Sinnerman"),
        ]);
        assert_eq!(
            render(t, &full),
            Path::new("music/Nina Simone/Pastel Blues/05 Sinnerman.flac")
        );
        assert_eq!(
            render(t, &tags(&[("track", "1"), ("title", "Intro")])),
            Path::new("music/Unknown Artist/unknown/1 Intro.flac")
        );
        let parsed = Template::parse(t).unwrap();
        assert_eq!(parsed.variables(), ["artist", "album", "track", "title"]);
        assert_eq!(parsed.static_dir(), Path::new("music"));
    }

    #[test]
    fn builtin_variables() {
        assert_eq!(
            render("{pipeline}/{job}-{name}.{ext}", &tags(&[])),
            Path::new("podcast/42-episode 12.wav.wav")
        );
    }

    #[test]
    fn dates() {
        let none = tags(&[]);
        assert_eq!(render("{date}/x", &none), Path::new("2025-03-07/x"));
        assert_eq!(
            render("a/{date:%Y}/{date:%m-%d %H%M%S}.log", &none),
            Path::new("a/2025/03-07 090501.log")
        );
        // `%D` is `%m/%d/%y`: its slashes are folders too.
        assert_eq!(render("{date:%D}.txt", &none), Path::new("03/07/25.txt"));
        // `%e` pads with a space, which sanitizing trims; `:` is replaced.
        assert_eq!(
            render("{date:%e}/{date:%H:%M}", &none),
            Path::new("7/09_05")
        );
        let t = Template::parse("{date:%Y}/{stem}").unwrap();
        assert_eq!(t.static_dir(), PathBuf::new());
        assert_eq!(t.variables(), ["date", "stem"]);
    }

    #[test]
    fn defaults() {
        let t = "{album_artist|Various Artists}/{disc|}{track|00}-{title|Untitled}";
        assert_eq!(
            render(t, &tags(&[])),
            Path::new("Various Artists/00-Untitled")
        );
        assert_eq!(
            render(
                t,
                &tags(&[("disc", "2"), ("track", "07"), ("title", "Song")])
            ),
            Path::new("Various Artists/207-Song")
        );
        // An empty or dots-only value counts as missing.
        assert_eq!(
            render(t, &tags(&[("album_artist", " .. "), ("title", "")])),
            Path::new("Various Artists/00-Untitled")
        );
        // Defaults are sanitized like values.
        assert_eq!(
            render("{genre|Rock/Pop}/x", &tags(&[])),
            Path::new("Rock_Pop/x")
        );
        // A component that ends up empty becomes `_`.
        assert_eq!(render("{disc|}/x", &tags(&[])), Path::new("_/x"));
    }

    #[test]
    fn missing_tag_is_unknown() {
        assert_eq!(
            render("{composer}/{bpm} {initial_key}/{isrc}", &tags(&[])),
            Path::new("unknown/unknown unknown/unknown")
        );
    }

    #[test]
    fn escaped_braces() {
        assert_eq!(
            render("a/{{{stem}}}/}}{{.txt", &tags(&[])),
            Path::new("a/{episode 12}/}{.txt")
        );
        let t = Template::parse("{{x}}/{stem}").unwrap();
        assert_eq!(t.variables(), ["stem"]);
        assert_eq!(t.static_dir(), Path::new("{x}"));
    }

    #[test]
    fn static_dir() {
        let dir = |t: &str| Template::parse(t).unwrap().static_dir();
        assert_eq!(dir("out/{stem}.mp3"), Path::new("out"));
        assert_eq!(dir("out/a/b-{stem}/c.mp3"), Path::new("out/a"));
        assert_eq!(dir("{stem}.mp3"), PathBuf::new());
        assert_eq!(dir("x{stem}.mp3"), PathBuf::new());
        assert_eq!(dir("out/fixed.mp3"), Path::new("out"));
        assert_eq!(dir("fixed.mp3"), PathBuf::new());
    }

    #[test]
    fn hostile_values() {
        let long = "x".repeat(10_000);
        let emoji = "🎵".repeat(100); // 400 bytes
        let accents = "é".repeat(200); // 400 bytes
        let hostile = [
            ("../../etc/passwd", "_.._etc_passwd"),
            ("/abs/path", "_abs_path"),
            ("a\\b", "a_b"),
            ("\x00\x1b[31m\n", "[31m"),
            ("..", "unknown"),
            (".", "unknown"),
            (".hidden", "hidden"),
            ("  a \t\n b  ", "a b"),
            ("<>:\"|?*", "_______"),
            ("C:\\Windows", "C__Windows"),
            ("\u{202E}evil\u{7f}\u{85}", "evil"),
        ];
        for (value, expected) in hostile {
            let t = tags(&[("title", value)]);
            let path = render("out/{title}/{title}.mp3", &t);
            assert_eq!(
                path,
                Path::new("out")
                    .join(expected)
                    .join(format!("{expected}.mp3")),
                "{value:?}"
            );
        }
        for value in [&long, &emoji, &accents] {
            let t = tags(&[("title", value.as_str()), ("artist", value.as_str())]);
            let path = render("out/{artist} - {title} - {artist}.mp3", &t);
            let file = path.file_name().unwrap().to_str().unwrap();
            assert!(file.len() <= 255);
            assert!(file.ends_with(".mp3"), "{file}");
            let dir = render("{title}/x", &t);
            let first = dir.iter().next().unwrap().to_str().unwrap();
            assert!(first.len() <= 120 && first.len() > 100, "{}", first.len());
        }
    }

    #[test]
    fn every_hostile_combination_is_safe() {
        let values = [
            "..",
            ".",
            "",
            " ",
            "/",
            "\\",
            "../..",
            "/abs/path",
            "a\\b",
            "C:",
            "\x00\x1b[31m\n",
            "...",
            ". .",
            "\u{202E}",
            "🎵",
        ];
        let long = "🎵é/".repeat(3_000);
        let templates = [
            "{stem}",
            "{title}{artist}",
            "..{title}/.{artist}",
            "{title|}/{artist|..}/{album|}.{ext|}",
            "{date:%Y}{title}/{stem}{stem}{stem}.{ext}",
        ];
        for value in values.iter().copied().chain([long.as_str()]) {
            let t = tags(&[("title", value), ("artist", value), ("album", value)]);
            for template in templates {
                render_with(template, value, &t); // asserts safety
            }
        }
    }

    #[test]
    fn long_stem() {
        let stem = "s".repeat(300);
        let path = render_with("out/{date:%Y}/{stem}.mp3", &stem, &tags(&[]));
        assert_eq!(
            path,
            Path::new("out/2025").join(format!("{}.mp3", "s".repeat(120)))
        );
        // Literal text plus several values: the component is cut, keeping
        // its extension.
        let path = render_with("out/{stem}-{stem}-{stem}.mp3", &"é".repeat(150), &tags(&[]));
        let file = path.file_name().unwrap().to_str().unwrap();
        assert_eq!(file.len(), 254); // 251 bytes cut back to a boundary, `.mp3`
        assert!(file.ends_with("é.mp3"));
        // No short extension: cut on a character boundary.
        let path = render_with("{stem}{stem}{stem}", &"🎵".repeat(40), &tags(&[]));
        let file = path.to_str().unwrap();
        assert_eq!(file.len(), 252);
    }

    #[test]
    fn sanitize_rules() {
        assert_eq!(sanitize(""), "");
        assert_eq!(sanitize("..."), "");
        assert_eq!(sanitize(" . . x"), "x");
        assert_eq!(sanitize("R.E.M."), "R.E.M.");
        assert_eq!(sanitize("a\u{a0}\u{3000}b"), "a b");
        assert_eq!(sanitize(&"ab ".repeat(100)).len(), 119); // no trailing space
        let cut = sanitize(&"ü".repeat(100));
        assert_eq!(cut.len(), 120);
        let cut = sanitize(&"€".repeat(100)); // 3 bytes each
        assert_eq!(cut.len(), 120);
        let cut = sanitize(&format!("a{}", "€".repeat(100)));
        assert_eq!(cut.len(), 118);
    }

    #[test]
    fn parse_errors() {
        let cases: &[(&str, usize, &str)] = &[
            ("", 0, "empty"),
            ("out/{nope}.mp3", 4, "unknown variable `nope`"),
            ("out/{Title}.mp3", 4, "unknown variable"),
            ("out/{stem.mp3", 4, "unclosed"),
            ("out/{stem{x}}.mp3", 4, "unclosed"),
            ("out/stem}.mp3", 8, "unmatched `}`"),
            ("out/{}.mp3", 4, "empty variable"),
            ("/abs/{stem}", 0, "relative"),
            ("C:/x/{stem}", 0, "drive"),
            ("out\\{stem}", 3, "`\\`"),
            ("a/../{stem}", 2, "dots"),
            ("../{stem}", 0, "dots"),
            ("a/./{stem}", 2, "dots"),
            ("{stem}/..", 7, "dots"),
            ("a//{stem}", 2, "empty folder"),
            ("out/{stem}/", 10, "end with"),
            ("out/{date:%Y/}", 4, "end with"),
            ("{date:/%Y}/x", 0, "relative"),
            ("a/{date:%Y/../%m}/x", 2, "dots"),
            ("out/{date:%Y-%!}/x", 4, "invalid date format"),
            ("out/{date:%}/x", 4, "invalid date format"),
            ("out/{date:}/x", 4, "empty date format"),
            ("out/{date|today}/x", 4, "not a default"),
            ("out/{stem:%Y}/x", 4, "takes no format"),
            ("out/a\u{1}b/{stem}", 5, "control"),
        ];
        for &(template, offset, message) in cases {
            let e = err(template);
            assert_eq!(e.offset, offset, "{template:?}: {e}");
            assert!(e.message.contains(message), "{template:?}: {e}");
            assert_eq!(e.to_string(), e.message);
        }
        let e = err(&format!("out/{}/{{stem}}", "n".repeat(256)));
        assert_eq!(e.offset, 4);
    }

    #[test]
    fn unusual_but_valid_templates() {
        // Dots inside names, and a leading dot written by the user, are kept.
        assert_eq!(
            render("a.b/...x/.{stem}", &tags(&[])),
            Path::new("a.b/...x/.episode 12")
        );
        // A value after dots cannot make a `..` component.
        assert_eq!(
            render("..{disc|}/x", &tags(&[("disc", "..")])),
            Path::new("_/x")
        );
        // No variables at all.
        assert_eq!(
            render("out/fixed.mp3", &tags(&[])),
            Path::new("out/fixed.mp3")
        );
    }
}
