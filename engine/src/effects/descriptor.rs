//! The effect descriptor: the `sluice_effect` custom section of a module (effects/ABI.md),
//! read without running the module and held to limits, so that a giant or lying descriptor is
//! refused with a clear message before anything else happens.

use serde::{Deserialize, Serialize};

/// The custom section that carries the descriptor.
pub const SECTION: &str = "sluice_effect";
/// The ABI version this host speaks.
pub const ABI: u32 = 1;

/// Limits on what a descriptor may hold (effects/ABI.md, section 2).
pub const MAX_SECTION_BYTES: usize = 64 * 1024;
pub const MAX_PARAMS: usize = 64;
pub const MAX_ID: usize = 64;
pub const MAX_NAME: usize = 64;
pub const MAX_UNIT: usize = 16;
pub const MAX_DESCRIPTION: usize = 1024;
pub const MAX_CHOICES: usize = 64;
pub const MAX_CHANNELS: u32 = 32;
pub const MAX_TAIL_SECONDS: f64 = 3600.0;
pub const MAX_DATA: usize = 4;
pub const MAX_DATA_SECONDS: f64 = 600.0;

/// Unknown fields are ignored: later revisions of ABI 1 may add optional ones.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Descriptor {
    pub abi: u32,
    pub name: String,
    pub version: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub params: Vec<Param>,
    #[serde(default)]
    pub tail_seconds: f64,
    pub max_channels: u32,
    /// Audio the effect takes from the pipeline (an impulse response), in slot order; every
    /// slot must be given (`data = { ir = "irs/hall.wav" }`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data: Vec<DataSlot>,
}

/// A data slot (effects/ABI.md, section 2).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DataSlot {
    pub id: String,
    pub name: String,
    /// The most channels the audio may have.
    pub max_channels: u32,
    /// The longest audio the slot takes, in seconds.
    pub max_seconds: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Param {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub unit: String,
    pub min: f64,
    pub max: f64,
    pub default: f64,
    /// An enumerated parameter: its value is the index of one of these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub choices: Option<Vec<String>>,
}

/// Why a module's descriptor is refused (effects/ABI.md).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DescriptorError {
    #[error("not a WebAssembly module")]
    NotWasm,
    #[error("not a valid WebAssembly module: {0}")]
    InvalidWasm(String),
    #[error("a WebAssembly component; effects are core modules (effects/ABI.md)")]
    Component,
    #[error("no {SECTION} custom section: not a Sluice effect (see effects/ABI.md)")]
    NoSection,
    #[error("two {SECTION} sections")]
    TwoSections,
    #[error("the descriptor is {0} bytes (at most {MAX_SECTION_BYTES})")]
    TooLarge(usize),
    #[error("the descriptor is not UTF-8")]
    NotUtf8,
    #[error("the descriptor is not valid: {0}")]
    Json(String),
    #[error("written for effect ABI {0} (this sluice speaks ABI {ABI})")]
    Abi(u32),
    /// A field of the effect breaks a rule of the ABI, in words.
    #[error("{0}")]
    Field(String),
    /// A parameter's declaration breaks a rule of the ABI.
    #[error("parameter {id}: {problem}")]
    Param { id: String, problem: String },
}

/// Why a value cannot be given to a parameter.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ValueError {
    #[error("{given:?} is not one of {choices}")]
    NotAChoice { given: String, choices: String },
    #[error("expects one of {0}")]
    ExpectsChoice(String),
    #[error("expects a number from {min} to {max}")]
    ExpectsNumber { min: f64, max: f64 },
    #[error("{value} is out of range ({min} to {max}{unit})")]
    OutOfRange {
        value: f64,
        min: f64,
        max: f64,
        unit: String,
    },
}

/// Why a parameter setting is refused (the message leaves out the effect's name).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParamError {
    #[error("no parameter {id:?} (it has: {known})")]
    Unknown { id: String, known: String },
    #[error("{id}: {error}")]
    Value { id: String, error: ValueError },
}

impl Param {
    /// The value a pipeline's TOML gives, as the number the effect takes: a number in range,
    /// or for an enumerated parameter the name of a choice (or its index).
    pub fn value_of(&self, v: &toml::Value) -> Result<f64, ValueError> {
        // A number written for a choice named by that number (`mains = 60`) is that choice.
        if let Some(choices) = &self.choices {
            let named = match v {
                toml::Value::Integer(i) => Some(i.to_string()),
                toml::Value::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => {
                    Some((*f as i64).to_string())
                }
                _ => None,
            };
            if let Some(i) = named.and_then(|n| choices.iter().position(|c| *c == n)) {
                return Ok(i as f64);
            }
        }
        let n = match (v, &self.choices) {
            (toml::Value::String(s), Some(choices)) => {
                return choices
                    .iter()
                    .position(|c| c == s)
                    .map(|i| i as f64)
                    .ok_or_else(|| ValueError::NotAChoice {
                        given: s.clone(),
                        choices: choices.join(", "),
                    });
            }
            (toml::Value::Float(f), _) => *f,
            (toml::Value::Integer(i), _) => *i as f64,
            (toml::Value::Boolean(b), _) if self.min == 0.0 && self.max == 1.0 => {
                f64::from(u8::from(*b))
            }
            _ => {
                return Err(match &self.choices {
                    Some(c) => ValueError::ExpectsChoice(c.join(", ")),
                    None => ValueError::ExpectsNumber {
                        min: self.min,
                        max: self.max,
                    },
                });
            }
        };
        if let Some(choices) = &self.choices
            && (!n.is_finite() || n < self.min || n > self.max || n.fract() != 0.0)
        {
            // Neither a choice's name nor its index.
            return Err(ValueError::NotAChoice {
                given: format!("{n}"),
                choices: format!("{} (or its index, 0 to {})", choices.join(", "), self.max),
            });
        }
        if !n.is_finite() || n < self.min || n > self.max {
            return Err(ValueError::OutOfRange {
                value: n,
                min: self.min,
                max: self.max,
                unit: if self.unit.is_empty() {
                    String::new()
                } else {
                    format!(" {}", self.unit)
                },
            });
        }
        Ok(n)
    }
}

/// A name (`[a-z0-9][a-z0-9_-]*`) or, with `snake`, a parameter id (`[a-z][a-z0-9_]*`).
fn identifier(what: &str, s: &str, snake: bool) -> Result<(), DescriptorError> {
    let first = |c: char| c.is_ascii_lowercase() || (!snake && c.is_ascii_digit());
    let rest =
        |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || (!snake && c == '-');
    if !s.is_empty() && s.len() <= MAX_ID && s.starts_with(first) && s.chars().all(rest) {
        return Ok(());
    }
    Err(DescriptorError::Field(format!(
        "{what} {:?} must be 1 to {MAX_ID} bytes of {}",
        truncate(s),
        if snake {
            "[a-z][a-z0-9_]*"
        } else {
            "[a-z0-9][a-z0-9_-]*"
        }
    )))
}

fn text(what: &str, s: &str, max: usize) -> Result<(), DescriptorError> {
    if s.len() > max {
        return Err(DescriptorError::Field(format!(
            "{what} is {} bytes long (at most {max})",
            s.len()
        )));
    }
    if s.chars().any(char::is_control) {
        return Err(DescriptorError::Field(format!(
            "{what} {:?} holds control characters",
            truncate(s)
        )));
    }
    Ok(())
}

fn truncate(s: &str) -> String {
    s.chars().take(40).collect()
}

impl Descriptor {
    /// Parse and check the JSON of a descriptor section.
    pub fn parse(bytes: &[u8]) -> Result<Descriptor, DescriptorError> {
        if bytes.len() > MAX_SECTION_BYTES {
            return Err(DescriptorError::TooLarge(bytes.len()));
        }
        let text_ = std::str::from_utf8(bytes).map_err(|_| DescriptorError::NotUtf8)?;
        let d: Descriptor =
            serde_json::from_str(text_).map_err(|e| DescriptorError::Json(e.to_string()))?;
        d.check()?;
        Ok(d)
    }

    fn check(&self) -> Result<(), DescriptorError> {
        if self.abi != ABI {
            return Err(DescriptorError::Abi(self.abi));
        }
        identifier("the effect name", &self.name, false)?;
        if self.version.is_empty()
            || self.version.len() > 32
            || !self
                .version
                .chars()
                .all(|c| c.is_ascii_graphic() || c == ' ')
        {
            return Err(DescriptorError::Field(format!(
                "the version {:?} must be 1 to 32 bytes of printable ASCII",
                truncate(&self.version)
            )));
        }
        text("the description", &self.description, MAX_DESCRIPTION)?;
        if !(1..=MAX_CHANNELS).contains(&self.max_channels) {
            return Err(DescriptorError::Field(format!(
                "max_channels {} is not between 1 and {MAX_CHANNELS}",
                self.max_channels
            )));
        }
        if !(0.0..=MAX_TAIL_SECONDS).contains(&self.tail_seconds) {
            return Err(DescriptorError::Field(format!(
                "tail_seconds {} is not between 0 and {MAX_TAIL_SECONDS}",
                self.tail_seconds
            )));
        }
        if self.params.len() > MAX_PARAMS {
            return Err(DescriptorError::Field(format!(
                "{} parameters (at most {MAX_PARAMS})",
                self.params.len()
            )));
        }
        self.check_data()?;
        let mut ids = std::collections::HashSet::new();
        for p in &self.params {
            identifier("parameter id", &p.id, true)?;
            if !ids.insert(p.id.as_str()) {
                return Err(DescriptorError::Field(format!(
                    "parameter {:?} is declared twice",
                    p.id
                )));
            }
            let label = |s: &str| format!("parameter {}: {s}", p.id);
            let what = |s: &str| DescriptorError::Param {
                id: p.id.clone(),
                problem: s.to_string(),
            };
            text(&label("name"), &p.name, MAX_NAME)?;
            if p.name.is_empty() {
                return Err(what("the name is empty"));
            }
            text(&label("unit"), &p.unit, MAX_UNIT)?;
            if ![p.min, p.max, p.default]
                .iter()
                .all(|v| v.is_finite() && (*v as f32).is_finite())
            {
                return Err(what("min, max and default must be finite f32 numbers"));
            }
            if p.choices.is_none() && p.min >= p.max {
                return Err(what(&format!("min {} is not below max {}", p.min, p.max)));
            }
            if !(p.min <= p.default && p.default <= p.max) {
                return Err(what(&format!(
                    "the default {} is not within {} to {}",
                    p.default, p.min, p.max
                )));
            }
            if let Some(c) = &p.choices {
                if c.is_empty() || c.len() > MAX_CHOICES {
                    return Err(what(&format!("1 to {MAX_CHOICES} choices")));
                }
                for (i, x) in c.iter().enumerate() {
                    identifier(&label("choice"), x, false)?;
                    if c[..i].contains(x) {
                        return Err(what(&format!("choice {x:?} appears twice")));
                    }
                }
                if p.min != 0.0 || p.max != (c.len() - 1) as f64 || p.default.fract() != 0.0 {
                    return Err(what(
                        "an enumerated parameter runs from 0 to the number of choices less one, with a whole default",
                    ));
                }
            }
        }
        Ok(())
    }

    /// The data slots' rules (effects/ABI.md, section 2).
    fn check_data(&self) -> Result<(), DescriptorError> {
        if self.data.len() > MAX_DATA {
            return Err(DescriptorError::Field(format!(
                "{} data slots (at most {MAX_DATA})",
                self.data.len()
            )));
        }
        for (i, d) in self.data.iter().enumerate() {
            identifier("data id", &d.id, true)?;
            if self.data[..i].iter().any(|e| e.id == d.id) {
                return Err(DescriptorError::Field(format!(
                    "data slot {:?} is declared twice",
                    d.id
                )));
            }
            text(&format!("data {}: name", d.id), &d.name, MAX_NAME)?;
            if d.name.is_empty() {
                return Err(DescriptorError::Field(format!(
                    "data {}: the name is empty",
                    d.id
                )));
            }
            if !(1..=MAX_CHANNELS).contains(&d.max_channels) {
                return Err(DescriptorError::Field(format!(
                    "data {}: max_channels {} is not between 1 and {MAX_CHANNELS}",
                    d.id, d.max_channels
                )));
            }
            if !(d.max_seconds > 0.0 && d.max_seconds <= MAX_DATA_SECONDS) {
                return Err(DescriptorError::Field(format!(
                    "data {}: max_seconds {} is not above 0 and at most {MAX_DATA_SECONDS}",
                    d.id, d.max_seconds
                )));
            }
        }
        Ok(())
    }

    /// The parameters' ids, comma-separated (for a message naming the ones there are).
    pub fn param_ids(&self) -> String {
        self.params
            .iter()
            .map(|p| p.id.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The data slot `id`, with its index.
    pub fn data_slot(&self, id: &str) -> Option<(usize, &DataSlot)> {
        self.data.iter().enumerate().find(|(_, d)| d.id == id)
    }

    pub fn param(&self, id: &str) -> Option<(usize, &Param)> {
        self.params.iter().enumerate().find(|(_, p)| p.id == id)
    }

    /// A parameter a pipeline or the command line sets, as (index, value) for
    /// `sluice_set_param`; the error says what is wrong (without the effect's name).
    pub fn resolve(&self, id: &str, value: &toml::Value) -> Result<(usize, f64), ParamError> {
        let (i, p) = self.param(id).ok_or_else(|| ParamError::Unknown {
            id: id.to_string(),
            known: self.param_ids(),
        })?;
        let v = p.value_of(value).map_err(|error| ParamError::Value {
            id: id.to_string(),
            error,
        })?;
        Ok((i, v))
    }
}

/// The descriptor section of a module's bytes, without compiling it.
pub fn find_section(bytes: &[u8]) -> Result<&[u8], DescriptorError> {
    if !bytes.starts_with(b"\0asm") {
        return Err(DescriptorError::NotWasm);
    }
    let mut found = None;
    for payload in wasmtime::wasmparser::Parser::new(0).parse_all(bytes) {
        let payload = payload.map_err(|e| DescriptorError::InvalidWasm(e.to_string()))?;
        match payload {
            wasmtime::wasmparser::Payload::Version {
                encoding: wasmtime::wasmparser::Encoding::Component,
                ..
            } => {
                return Err(DescriptorError::Component);
            }
            wasmtime::wasmparser::Payload::CustomSection(c) if c.name() == SECTION => {
                if found.is_some() {
                    return Err(DescriptorError::TwoSections);
                }
                found = Some(c.data());
            }
            _ => {}
        }
    }
    found.ok_or(DescriptorError::NoSection)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> serde_json::Value {
        serde_json::json!({
            "abi": 1, "name": "highpass", "version": "1.0.0", "description": "A high-pass filter",
            "params": [
                {"id": "cutoff_hz", "name": "Cutoff", "unit": "Hz", "min": 20.0, "max": 20000.0, "default": 80.0},
                {"id": "type", "name": "Type", "min": 0, "max": 2, "default": 0, "choices": ["a", "b", "c"]}
            ],
            "tail_seconds": 0.0, "max_channels": 8
        })
    }

    fn parse(v: &serde_json::Value) -> Result<Descriptor, String> {
        Descriptor::parse(v.to_string().as_bytes()).map_err(|e| e.to_string())
    }

    #[test]
    fn a_good_descriptor_and_its_values() {
        let mut v = good();
        v["surprise"] = true.into(); // a later revision's optional field
        let d = parse(&v).unwrap();
        let (i, p) = d.param("cutoff_hz").unwrap();
        assert_eq!(i, 0);
        assert_eq!(p.value_of(&toml::Value::Integer(100)).unwrap(), 100.0);
        let e = p.value_of(&toml::Value::Float(10.0)).unwrap_err();
        assert!(matches!(e, ValueError::OutOfRange { value, .. } if value == 10.0));
        assert!(e.to_string().contains("out of range (20 to 20000 Hz)"));
        let (_, t) = d.param("type").unwrap();
        assert_eq!(t.value_of(&toml::Value::String("c".into())).unwrap(), 2.0);
        let e = t.value_of(&toml::Value::String("d".into())).unwrap_err();
        assert!(matches!(e, ValueError::NotAChoice { .. }));
        assert!(e.to_string().contains("not one of a, b, c"));
        // A number is a choice's index, unless a choice is named by it; anything else is
        // refused naming the choices.
        assert_eq!(t.value_of(&toml::Value::Integer(1)).unwrap(), 1.0);
        for n in [1.5, 3.0, -1.0, f64::NAN] {
            let e = t.value_of(&toml::Value::Float(n)).unwrap_err();
            assert!(
                e.to_string()
                    .contains("is not one of a, b, c (or its index, 0 to 2)"),
                "{n}: {e}"
            );
        }
        let mut mains = good();
        mains["params"][1]["choices"] = serde_json::json!(["auto", "50", "60"]);
        let d = parse(&mains).unwrap();
        let (_, m) = d.param("type").unwrap();
        assert_eq!(m.value_of(&toml::Value::Integer(60)).unwrap(), 2.0);
        assert_eq!(m.value_of(&toml::Value::Float(50.0)).unwrap(), 1.0);
        assert_eq!(m.value_of(&toml::Value::Integer(1)).unwrap(), 1.0);
        let e = m.value_of(&toml::Value::Integer(70)).unwrap_err();
        assert!(
            e.to_string() == "\"70\" is not one of auto, 50, 60 (or its index, 0 to 2)",
            "{e}"
        );
        // Through the descriptor, the parameter is named.
        assert_eq!(
            d.resolve("nope", &toml::Value::Integer(1))
                .unwrap_err()
                .to_string(),
            "no parameter \"nope\" (it has: cutoff_hz, type)"
        );
        assert!(matches!(
            d.resolve("cutoff_hz", &toml::Value::Float(10.0)),
            Err(ParamError::Value { id, error: ValueError::OutOfRange { .. } }) if id == "cutoff_hz"
        ));
    }

    #[test]
    fn lying_giant_and_invalid_descriptors_are_refused() {
        let mut cases: Vec<(serde_json::Value, &str)> = Vec::new();
        let mut v = good();
        v["abi"] = 2.into();
        cases.push((v, "ABI 2"));
        let mut v = good();
        v["params"][0]["default"] = 5.0.into();
        cases.push((v, "default 5 is not within"));
        let mut v = good();
        v["params"][0]["min"] = 30000.0.into();
        cases.push((v, "min 30000 is not below max"));
        let mut v = good();
        v["params"][1]["max"] = 5.into();
        cases.push((v, "enumerated"));
        let mut v = good();
        v["params"][1]["id"] = "cutoff_hz".into();
        cases.push((v, "declared twice"));
        let mut v = good();
        v["name"] = "../../etc".into();
        cases.push((v, "the effect name"));
        let mut v = good();
        v["description"] = "x".repeat(5000).into();
        cases.push((v, "bytes long"));
        let mut v = good();
        v["max_channels"] = 0.into();
        cases.push((v, "max_channels 0"));
        let mut v = good();
        v["tail_seconds"] = 3601.0.into();
        cases.push((v, "tail_seconds"));
        let mut v = good();
        v["params"] = (0..65)
            .map(|i| serde_json::json!({"id": format!("p{i}"), "name": "P", "min": 0, "max": 1, "default": 0}))
            .collect::<Vec<_>>()
            .into();
        cases.push((v, "65 parameters"));
        let mut v = good();
        v["params"][0]["max"] = 20.0.into();
        v["params"][0]["default"] = 20.0.into();
        cases.push((v, "not below max"));
        let mut v = good();
        v["params"][0]["max"] = 1e39.into();
        cases.push((v, "finite f32"));
        // Data slots.
        let slot = |id: &str, ch: u32, s: f64| serde_json::json!({"id": id, "name": "Response", "max_channels": ch, "max_seconds": s});
        for (data, want) in [
            (vec![slot("ir", 2, 1.0); 5], "5 data slots"),
            (
                vec![slot("ir", 2, 1.0), slot("ir", 2, 1.0)],
                "declared twice",
            ),
            (vec![slot("IR", 2, 1.0)], "data id"),
            (vec![slot("ir", 0, 1.0)], "max_channels 0"),
            (vec![slot("ir", 33, 1.0)], "max_channels 33"),
            (vec![slot("ir", 2, 0.0)], "max_seconds 0"),
            (vec![slot("ir", 2, 601.0)], "max_seconds 601"),
        ] {
            let mut v = good();
            v["data"] = data.into();
            cases.push((v, want));
        }
        let mut v = good();
        v["data"] = vec![slot("ir", 2, 30.0)].into();
        let d = parse(&v).unwrap();
        assert_eq!(d.data_slot("ir").unwrap().1.max_channels, 2);
        for (v, want) in cases {
            let e = parse(&v).unwrap_err();
            assert!(e.contains(want), "{want}: {e}");
        }
        let big = Descriptor::parse(&vec![b' '; MAX_SECTION_BYTES + 1]).unwrap_err();
        assert_eq!(big, DescriptorError::TooLarge(MAX_SECTION_BYTES + 1));
        assert!(big.to_string().contains("at most"));
        let e = Descriptor::parse(b"\xff\xfe").unwrap_err();
        assert_eq!(e, DescriptorError::NotUtf8);
        assert!(e.to_string().contains("UTF-8"));
        let e = Descriptor::parse(b"{\"abi\": 1").unwrap_err();
        assert!(matches!(e, DescriptorError::Json(_)));
        assert!(e.to_string().contains("not valid"));
    }

    #[test]
    fn sections_are_found_in_modules_only() {
        let e = find_section(b"RIFF....WAVE").unwrap_err();
        assert_eq!(e, DescriptorError::NotWasm);
        assert!(e.to_string().contains("not a WebAssembly module"));
        // A minimal module: header, then a custom section named sluice_effect.
        let mut m = b"\0asm\x01\0\0\0".to_vec();
        let body = [&[SECTION.len() as u8][..], SECTION.as_bytes(), b"{}"].concat();
        m.push(0);
        m.push(body.len() as u8);
        m.extend(&body);
        assert_eq!(find_section(&m).unwrap(), b"{}");
        let mut twice = m.clone();
        twice.extend_from_slice(&m[8..]);
        assert_eq!(find_section(&twice), Err(DescriptorError::TwoSections));
        let e = find_section(b"\0asm\x01\0\0\0").unwrap_err();
        assert_eq!(e, DescriptorError::NoSection);
        assert!(e.to_string().contains("no sluice_effect"));
    }
}
