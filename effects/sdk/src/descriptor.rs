//! The descriptor: what an effect is called and which parameters it takes. The [`effect!`]
//! macro builds a [`Params`] implementation from one declaration; the JSON of the
//! `sluice_effect` section is written from it at compile time by [`descriptor_bytes`], which also
//! refuses (as a compile error) anything a host would refuse: bad ids, out-of-order ranges, too
//! long names, more than [`abi::MAX_PARAMS`] parameters...
//!
//! [`effect!`]: crate::effect

use crate::abi;

/// The effect-level fields of the descriptor.
#[derive(Clone, Copy, Debug)]
pub struct EffectInfo {
    /// `name`: how pipelines refer to the effect, `[a-z0-9][a-z0-9_-]*`.
    pub name: &'static str,
    /// `version`: the effect's own version (semver recommended).
    pub version: &'static str,
    /// `description`: one or two sentences for listings.
    pub description: &'static str,
    /// `tail_seconds`: how long output can continue after the input stops (upper bound).
    pub tail_seconds: f32,
    /// `tail_seconds` as written in the declaration (the JSON number).
    pub tail_seconds_text: &'static str,
    /// `max_channels`: the most channels `sluice_init` accepts.
    pub max_channels: u32,
    /// `data`: the audio the effect can be given before `sluice_init` (an impulse response), in
    /// slot order. Empty for most effects (and then not written into the JSON).
    pub data: &'static [DataSpec],
}

/// One data slot of the descriptor (`effects/ABI.md`, section 2): audio a pipeline hands the
/// effect (`data = { ir = "irs/hall.wav" }`), decoded and resampled to the session's rate by
/// the host, given through `sluice_data` before `sluice_init`.
#[derive(Clone, Copy, Debug)]
pub struct DataSpec {
    /// `id`: snake_case, what pipelines use.
    pub id: &'static str,
    /// `name`: for display.
    pub name: &'static str,
    /// `max_channels`: the most channels the audio may have, `1..=32`.
    pub max_channels: u32,
    /// `max_seconds`: the longest audio the slot takes, `0 < .. <= 600`.
    pub max_seconds: f32,
    /// `max_seconds` as written in the declaration (the JSON number).
    pub max_seconds_text: &'static str,
}

/// Continuous or enumerated.
#[derive(Clone, Copy, Debug)]
pub enum ParamKind {
    /// A continuous parameter; the texts are the literals of the declaration, written into the
    /// JSON as they are.
    Continuous {
        /// `min` as declared.
        min_text: &'static str,
        /// `max` as declared.
        max_text: &'static str,
        /// `default` as declared.
        default_text: &'static str,
    },
    /// An enumerated parameter: the value is the index into these names.
    Choice(&'static [&'static str]),
}

/// One parameter of the descriptor.
#[derive(Clone, Copy, Debug)]
pub struct ParamSpec {
    /// `id`: snake_case, what pipelines use.
    pub id: &'static str,
    /// `name`: for display.
    pub name: &'static str,
    /// `unit`: for display ("dB", "Hz", "ms", "" ...).
    pub unit: &'static str,
    /// `min`.
    pub min: f32,
    /// `max`.
    pub max: f32,
    /// `default`.
    pub default: f32,
    /// Continuous or enumerated.
    pub kind: ParamKind,
}

impl ParamSpec {
    /// A continuous parameter (used by [`effect!`](crate::effect)).
    #[allow(clippy::too_many_arguments)]
    pub const fn continuous(
        id: &'static str,
        name: &'static str,
        unit: &'static str,
        min: f32,
        max: f32,
        default: f32,
        texts: [&'static str; 3],
    ) -> Self {
        ParamSpec {
            id,
            name,
            unit,
            min,
            max,
            default,
            kind: ParamKind::Continuous {
                min_text: texts[0],
                max_text: texts[1],
                default_text: texts[2],
            },
        }
    }

    /// An enumerated parameter whose default is the choice named `default` (a compile error if
    /// there is no such choice).
    pub const fn choice(
        id: &'static str,
        name: &'static str,
        unit: &'static str,
        choices: &'static [&'static str],
        default: &'static str,
    ) -> Self {
        let mut i = 0;
        while i < choices.len() {
            if str_eq(choices[i], default) {
                break;
            }
            i += 1;
        }
        if i == choices.len() {
            panic!("the default of an enumerated parameter must be one of its choices");
        }
        ParamSpec {
            id,
            name,
            unit,
            min: 0.0,
            max: if choices.is_empty() {
                0.0
            } else {
                (choices.len() - 1) as f32
            },
            default: i as f32,
            kind: ParamKind::Choice(choices),
        }
    }

    /// The names of an enumerated parameter (empty for a continuous one).
    pub const fn choices(&self) -> &'static [&'static str] {
        match self.kind {
            ParamKind::Choice(c) => c,
            ParamKind::Continuous { .. } => &[],
        }
    }

    /// The value the effect sees for `value`: clamped into `min..=max`, and for an enumerated
    /// parameter rounded to the nearest index. `None` for NaN and infinities.
    pub fn clamp(&self, value: f32) -> Option<f32> {
        if !value.is_finite() {
            return None;
        }
        let v = crate::dsp::clamp(value, self.min, self.max);
        Some(match self.kind {
            ParamKind::Choice(_) => libm::roundf(v),
            ParamKind::Continuous { .. } => v,
        })
    }
}

/// A parameter set, generated by [`effect!`](crate::effect): one field per parameter (`f32`
/// for continuous parameters, `usize` for enumerated ones), defaults from the declaration.
pub trait Params: Copy + Default + 'static {
    /// The effect-level descriptor fields.
    const INFO: EffectInfo;
    /// The parameters, in index order.
    const SPECS: &'static [ParamSpec];
    /// The descriptor JSON, exactly the bytes of the `sluice_effect` section.
    const DESCRIPTOR: &'static str;
    /// Stores an already clamped value into the field at `index`; false if there is none.
    fn set(&mut self, index: usize, value: f32) -> bool;
    /// The value of the field at `index` (an index as `f32` for enumerated parameters).
    fn get(&self, index: usize) -> Option<f32>;
    /// The index of the parameter with this id.
    fn index_of(id: &str) -> Option<usize> {
        Self::SPECS.iter().position(|s| s.id == id)
    }
}

/// Byte-wise string equality, usable in const fns.
pub const fn str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// The length of the descriptor JSON (it also validates the declaration).
pub const fn descriptor_len(info: &EffectInfo, specs: &[ParamSpec]) -> usize {
    validate(info, specs);
    let w = write_descriptor(Writer::<0>::new(), info, specs);
    if w.len > abi::MAX_SECTION_BYTES {
        panic!("the descriptor JSON is longer than 64 KiB");
    }
    w.len
}

/// The descriptor JSON as bytes; `N` must be [`descriptor_len`].
pub const fn descriptor_bytes<const N: usize>(info: &EffectInfo, specs: &[ParamSpec]) -> [u8; N] {
    let w = write_descriptor(Writer::<N>::new(), info, specs);
    if w.len != N {
        panic!("descriptor length mismatch");
    }
    w.buf
}

/// The descriptor JSON as a string (the bytes are ASCII-escaped JSON from UTF-8 literals).
pub const fn descriptor_str(bytes: &'static [u8]) -> &'static str {
    match core::str::from_utf8(bytes) {
        Ok(s) => s,
        Err(_) => panic!("descriptor is not UTF-8"),
    }
}

/// A fixed-capacity byte writer for const evaluation; it counts past its capacity, so a
/// zero-capacity writer measures.
struct Writer<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> Writer<N> {
    const fn new() -> Self {
        Writer {
            buf: [0; N],
            len: 0,
        }
    }
    const fn byte(mut self, b: u8) -> Self {
        if self.len < N {
            self.buf[self.len] = b;
        }
        self.len += 1;
        self
    }
    const fn raw(mut self, s: &str) -> Self {
        let b = s.as_bytes();
        let mut i = 0;
        while i < b.len() {
            self = self.byte(b[i]);
            i += 1;
        }
        self
    }
    /// A JSON string with quotes; `"` `\` and control characters escaped.
    const fn string(mut self, s: &str) -> Self {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        self = self.byte(b'"');
        let b = s.as_bytes();
        let mut i = 0;
        while i < b.len() {
            let c = b[i];
            if c == b'"' || c == b'\\' {
                self = self.byte(b'\\').byte(c);
            } else if c < 0x20 {
                self = self
                    .raw("\\u00")
                    .byte(HEX[(c >> 4) as usize])
                    .byte(HEX[(c & 15) as usize]);
            } else {
                self = self.byte(c);
            }
            i += 1;
        }
        self.byte(b'"')
    }
    const fn uint(mut self, v: usize) -> Self {
        let mut digits = [0u8; 20];
        let mut n = 0;
        let mut v = v;
        loop {
            digits[n] = b'0' + (v % 10) as u8;
            n += 1;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        while n > 0 {
            n -= 1;
            self = self.byte(digits[n]);
        }
        self
    }
}

const fn write_descriptor<const N: usize>(
    w: Writer<N>,
    info: &EffectInfo,
    specs: &[ParamSpec],
) -> Writer<N> {
    let mut w = w
        .raw("{\"abi\":")
        .uint(abi::ABI_VERSION as usize)
        .raw(",\"name\":")
        .string(info.name)
        .raw(",\"version\":")
        .string(info.version)
        .raw(",\"description\":")
        .string(info.description)
        .raw(",\"params\":[");
    let mut i = 0;
    while i < specs.len() {
        let s = &specs[i];
        if i > 0 {
            w = w.byte(b',');
        }
        w = w
            .raw("{\"id\":")
            .string(s.id)
            .raw(",\"name\":")
            .string(s.name)
            .raw(",\"unit\":")
            .string(s.unit);
        match s.kind {
            ParamKind::Continuous {
                min_text,
                max_text,
                default_text,
            } => {
                w = w
                    .raw(",\"min\":")
                    .raw(min_text)
                    .raw(",\"max\":")
                    .raw(max_text)
                    .raw(",\"default\":")
                    .raw(default_text);
            }
            ParamKind::Choice(choices) => {
                w = w
                    .raw(",\"min\":0,\"max\":")
                    .uint(choices.len() - 1)
                    .raw(",\"default\":")
                    .uint(s.default as usize)
                    .raw(",\"choices\":[");
                let mut k = 0;
                while k < choices.len() {
                    if k > 0 {
                        w = w.byte(b',');
                    }
                    w = w.string(choices[k]);
                    k += 1;
                }
                w = w.byte(b']');
            }
        }
        w = w.byte(b'}');
        i += 1;
    }
    w = w
        .raw("],\"tail_seconds\":")
        .raw(info.tail_seconds_text)
        .raw(",\"max_channels\":")
        .uint(info.max_channels as usize);
    if !info.data.is_empty() {
        w = w.raw(",\"data\":[");
        let mut i = 0;
        while i < info.data.len() {
            let d = &info.data[i];
            if i > 0 {
                w = w.byte(b',');
            }
            w = w
                .raw("{\"id\":")
                .string(d.id)
                .raw(",\"name\":")
                .string(d.name)
                .raw(",\"max_channels\":")
                .uint(d.max_channels as usize)
                .raw(",\"max_seconds\":")
                .raw(d.max_seconds_text)
                .byte(b'}');
            i += 1;
        }
        w = w.byte(b']');
    }
    w.byte(b'}')
}

/// Whether `s` is a JSON number (`-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`).
pub const fn is_json_number(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    if i < b.len() && b[i] == b'-' {
        i += 1;
    }
    if i >= b.len() {
        return false;
    }
    if b[i] == b'0' {
        i += 1;
    } else if b[i] >= b'1' && b[i] <= b'9' {
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
    } else {
        return false;
    }
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return false;
        }
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return false;
        }
    }
    i == b.len()
}

/// `[first][rest]*` with `first` in a-z (and 0-9 if `digit_first`), rest in a-z 0-9 `_` (and
/// `-` if `dash`), 1..=max bytes.
const fn is_token(s: &str, max: usize, digit_first: bool, dash: bool) -> bool {
    let b = s.as_bytes();
    if b.is_empty() || b.len() > max {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let ok = c.is_ascii_lowercase()
            || (c.is_ascii_digit() && (i > 0 || digit_first))
            || (i > 0 && (c == b'_' || (dash && c == b'-')));
        if !ok {
            return false;
        }
        i += 1;
    }
    true
}

/// Whether `s` has no control characters and is at most `max` bytes (and at least one if
/// `nonempty`).
const fn is_text(s: &str, max: usize, nonempty: bool) -> bool {
    let b = s.as_bytes();
    if b.len() > max || (nonempty && b.is_empty()) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if b[i] < 0x20 || b[i] == 0x7f {
            return false;
        }
        i += 1;
    }
    true
}

/// Whether an effect name is valid: `[a-z0-9][a-z0-9_-]*`, 1..=64 bytes.
pub const fn is_effect_name(s: &str) -> bool {
    is_token(s, abi::MAX_EFFECT_NAME_BYTES, true, true)
}

/// Whether a parameter id is valid: `[a-z][a-z0-9_]*`, 1..=64 bytes.
pub const fn is_param_id(s: &str) -> bool {
    is_token(s, abi::MAX_ID_BYTES, false, false)
}

/// Whether a choice name is valid: `[a-z0-9][a-z0-9_-]*`, 1..=64 bytes.
pub const fn is_choice_name(s: &str) -> bool {
    is_token(s, abi::MAX_CHOICE_BYTES, true, true)
}

/// Refuses (panics; at compile time a compile error) a declaration that breaks a rule of
/// `ABI.md`.
pub const fn validate(info: &EffectInfo, specs: &[ParamSpec]) {
    if !is_effect_name(info.name) {
        panic!("effect name: 1 to 64 bytes of [a-z0-9][a-z0-9_-]*");
    }
    if !is_text(info.version, abi::MAX_VERSION_BYTES, true) || !info.version.is_ascii() {
        panic!("version: 1 to 32 printable ASCII bytes");
    }
    if !is_text(info.description, abi::MAX_DESCRIPTION_BYTES, false) {
        panic!("description: at most 1024 bytes, no control characters");
    }
    if !(is_json_number(info.tail_seconds_text)
        && info.tail_seconds >= 0.0
        && info.tail_seconds <= abi::MAX_TAIL_SECONDS)
    {
        panic!("tail_seconds: a plain number literal in 0..=3600");
    }
    if info.max_channels < 1 || info.max_channels > abi::MAX_CHANNELS {
        panic!("max_channels: 1..=32");
    }
    if specs.len() > abi::MAX_PARAMS {
        panic!("at most 64 parameters");
    }
    if info.data.len() > abi::MAX_DATA {
        panic!("at most 4 data slots");
    }
    let mut i = 0;
    while i < info.data.len() {
        let d = &info.data[i];
        if !is_param_id(d.id) {
            panic!("data id: 1 to 64 bytes of [a-z][a-z0-9_]* (snake_case)");
        }
        let mut j = 0;
        while j < i {
            if str_eq(info.data[j].id, d.id) {
                panic!("two data slots have the same id");
            }
            j += 1;
        }
        if !is_text(d.name, abi::MAX_NAME_BYTES, true) {
            panic!("data name: 1 to 64 bytes, no control characters");
        }
        if d.max_channels < 1 || d.max_channels > abi::MAX_CHANNELS {
            panic!("data max_channels: 1..=32");
        }
        if !(is_json_number(d.max_seconds_text)
            && d.max_seconds > 0.0
            && d.max_seconds <= abi::MAX_DATA_SECONDS)
        {
            panic!("data max_seconds: a plain number literal, above 0 and at most 600");
        }
        i += 1;
    }
    let mut i = 0;
    while i < specs.len() {
        let s = &specs[i];
        if !is_param_id(s.id) {
            panic!("parameter id: 1 to 64 bytes of [a-z][a-z0-9_]* (snake_case)");
        }
        let mut j = 0;
        while j < i {
            if str_eq(specs[j].id, s.id) {
                panic!("two parameters have the same id");
            }
            j += 1;
        }
        if !is_text(s.name, abi::MAX_NAME_BYTES, true) {
            panic!("parameter name: 1 to 64 bytes, no control characters");
        }
        if !is_text(s.unit, abi::MAX_UNIT_BYTES, false) {
            panic!("parameter unit: at most 16 bytes, no control characters");
        }
        if !(s.min.is_finite() && s.max.is_finite() && s.default.is_finite()) {
            panic!("parameter min, max and default must be finite");
        }
        if !(s.min <= s.default && s.default <= s.max) {
            panic!("parameter: min <= default <= max");
        }
        match s.kind {
            ParamKind::Continuous {
                min_text,
                max_text,
                default_text,
            } => {
                if !(is_json_number(min_text)
                    && is_json_number(max_text)
                    && is_json_number(default_text))
                {
                    panic!(
                        "parameter min, max and default: plain number literals (like -1.5, 20, 1e3; no suffixes or underscores)"
                    );
                }
                if s.min >= s.max {
                    panic!("a continuous parameter needs min < max");
                }
            }
            ParamKind::Choice(choices) => {
                if choices.is_empty() || choices.len() > abi::MAX_CHOICES {
                    panic!("an enumerated parameter has 1 to 64 choices");
                }
                let mut k = 0;
                while k < choices.len() {
                    if !is_choice_name(choices[k]) {
                        panic!("choice: 1 to 64 bytes of [a-z0-9][a-z0-9_-]*");
                    }
                    let mut l = 0;
                    while l < k {
                        if str_eq(choices[l], choices[k]) {
                            panic!("two choices have the same name");
                        }
                        l += 1;
                    }
                    k += 1;
                }
            }
        }
        i += 1;
    }
}

/// The field types of a generated parameter struct.
pub trait ParamValue: Copy {
    /// The placeholder before defaults are set.
    const ZERO: Self;
    /// From the (clamped, for enumerations rounded) value of `sluice_set_param`.
    fn from_f32(v: f32) -> Self;
    /// Back to the ABI's `f32`.
    fn to_f32(self) -> f32;
}

impl ParamValue for f32 {
    const ZERO: Self = 0.0;
    fn from_f32(v: f32) -> Self {
        v
    }
    fn to_f32(self) -> f32 {
        self
    }
}

impl ParamValue for usize {
    const ZERO: Self = 0;
    fn from_f32(v: f32) -> Self {
        v.max(0.0) as usize
    }
    fn to_f32(self) -> f32 {
        self as f32
    }
}

/// `stringify!` of a raw identifier keeps its `r#`; the id is the name without it.
pub const fn strip_raw(id: &'static str) -> &'static str {
    let b = id.as_bytes();
    if b.len() > 2 && b[0] == b'r' && b[1] == b'#' {
        match core::str::from_utf8(b.split_at(2).1) {
            Ok(s) => s,
            Err(_) => panic!("not UTF-8"),
        }
    } else {
        id
    }
}
