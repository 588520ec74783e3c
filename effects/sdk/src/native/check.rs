//! Checks a wasm module or a descriptor against `ABI.md` the way a host must before running
//! it: one `sluice_effect` section holding a valid descriptor, the required exports with their
//! exact signatures, no imports but `sluice.log`. Natively only (std).

use std::{format, string::String, string::ToString, vec::Vec};

use super::json::{self, Value};
use crate::{abi, descriptor};

/// A parsed, valid descriptor.
#[derive(Clone, Debug, PartialEq)]
pub struct Descriptor {
    /// `name`
    pub name: String,
    /// `version`
    pub version: String,
    /// `description`
    pub description: String,
    /// `params`, in index order.
    pub params: Vec<Param>,
    /// `tail_seconds`
    pub tail_seconds: f64,
    /// `max_channels`
    pub max_channels: u32,
    /// `data` (empty when absent).
    pub data: Vec<DataSlot>,
}

/// One entry of a [`Descriptor`]'s `data`.
#[derive(Clone, Debug, PartialEq)]
pub struct DataSlot {
    /// `id`
    pub id: String,
    /// `name`
    pub name: String,
    /// `max_channels`
    pub max_channels: u32,
    /// `max_seconds`
    pub max_seconds: f64,
}

/// One entry of `data` (`earlier` the ones before it).
fn data_slot(d: &Value, earlier: &[DataSlot]) -> Result<DataSlot, String> {
    if !matches!(d, Value::Object(_)) {
        return Err("not an object".into());
    }
    let id = text(d, "id", abi::MAX_ID_BYTES, true)?;
    if !descriptor::is_param_id(&id) || earlier.iter().any(|e| e.id == id) {
        return Err(format!("id {id:?} must be snake_case and unique"));
    }
    let name = text(d, "name", abi::MAX_NAME_BYTES, true)?;
    let max_channels = d
        .get("max_channels")
        .and_then(Value::as_int)
        .filter(|n| (1..=abi::MAX_CHANNELS as i64).contains(n))
        .ok_or("max_channels: missing or not an integer in 1..=32")? as u32;
    let max_seconds = number(d, "max_seconds")?;
    if !(max_seconds > 0.0 && max_seconds <= abi::MAX_DATA_SECONDS as f64) {
        return Err(format!("max_seconds {max_seconds} is outside (0, 600]"));
    }
    Ok(DataSlot {
        id,
        name,
        max_channels,
        max_seconds,
    })
}

/// One parameter of a [`Descriptor`].
#[derive(Clone, Debug, PartialEq)]
pub struct Param {
    /// `id`
    pub id: String,
    /// `name`
    pub name: String,
    /// `unit`
    pub unit: String,
    /// `min`
    pub min: f64,
    /// `max`
    pub max: f64,
    /// `default`
    pub default: f64,
    /// `choices` (empty for a continuous parameter).
    pub choices: Vec<String>,
}

fn text(v: &Value, key: &str, max: usize, nonempty: bool) -> Result<String, String> {
    let s = v
        .get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("{key}: missing or not a string"))?;
    if s.len() > max || (nonempty && s.is_empty()) || s.chars().any(char::is_control) {
        return Err(format!(
            "{key}: {s:?} must be {}at most {max} bytes without control characters",
            if nonempty { "1 to " } else { "" }
        ));
    }
    Ok(s.to_string())
}

fn number(v: &Value, key: &str) -> Result<f64, String> {
    v.get(key)
        .and_then(Value::as_f64)
        .ok_or_else(|| format!("{key}: missing or not a number"))
}

/// One entry of `params` (`earlier` the ones before it, whose ids it must not repeat).
fn param(p: &Value, earlier: &[Param]) -> Result<Param, String> {
    if !matches!(p, Value::Object(_)) {
        return Err("not an object".into());
    }
    let id = text(p, "id", abi::MAX_ID_BYTES, true)?;
    if !descriptor::is_param_id(&id) {
        return Err(format!("id {id:?} must be snake_case ([a-z][a-z0-9_]*)"));
    }
    if earlier.iter().any(|q| q.id == id) {
        return Err(format!("id {id:?} appears twice"));
    }
    let name = text(p, "name", abi::MAX_NAME_BYTES, true)?;
    let unit = text(p, "unit", abi::MAX_UNIT_BYTES, false)?;
    let (min, max, default) = (number(p, "min")?, number(p, "max")?, number(p, "default")?);
    let in_f32 = |x: f64| x.abs() <= f32::MAX as f64;
    if !(in_f32(min) && in_f32(max) && in_f32(default)) {
        return Err("min, max and default must fit in f32".into());
    }
    if !(min <= default && default <= max) {
        return Err(format!(
            "needs min <= default <= max ({min}, {default}, {max})"
        ));
    }
    let mut choices = Vec::new();
    match p.get("choices") {
        None => {
            if min >= max {
                return Err("a continuous parameter needs min < max".into());
            }
        }
        Some(c) => {
            let c = c.as_array().ok_or("choices: not an array")?;
            if c.is_empty() || c.len() > abi::MAX_CHOICES {
                return Err("choices: 1 to 64 names".into());
            }
            for name in c {
                let name = name
                    .as_str()
                    .filter(|n| descriptor::is_choice_name(n))
                    .ok_or("choices: names of [a-z0-9][a-z0-9_-]*")?;
                if choices.iter().any(|c: &String| c == name) {
                    return Err(format!("choice {name:?} appears twice"));
                }
                choices.push(name.to_string());
            }
            let integer = |k: &str| p.get(k).and_then(Value::as_int);
            if integer("min") != Some(0)
                || integer("max") != Some(choices.len() as i64 - 1)
                || integer("default").is_none()
            {
                return Err(
                    "an enumerated parameter has integer min 0, max (choices - 1) and default"
                        .into(),
                );
            }
        }
    }
    Ok(Param {
        id,
        name,
        unit,
        min,
        max,
        default,
        choices,
    })
}

/// Parses and validates descriptor JSON by the rules of `ABI.md`. Unknown fields are ignored
/// (later minor revisions of ABI 1 may add some).
pub fn descriptor(json_text: &str) -> Result<Descriptor, String> {
    if json_text.len() > abi::MAX_SECTION_BYTES {
        return Err(format!(
            "descriptor is {} bytes, more than 64 KiB",
            json_text.len()
        ));
    }
    let root = json::parse(json_text)?;
    if !matches!(root, Value::Object(_)) {
        return Err("descriptor is not a JSON object".into());
    }
    match root.get("abi").and_then(Value::as_int) {
        Some(1) => {}
        Some(n) => return Err(format!("abi {n} is not supported (this SDK knows abi 1)")),
        None => return Err("abi: missing or not an integer".into()),
    }
    let name = text(&root, "name", abi::MAX_EFFECT_NAME_BYTES, true)?;
    if !descriptor::is_effect_name(&name) {
        return Err(format!("name {name:?}: must match [a-z0-9][a-z0-9_-]*"));
    }
    let version = text(&root, "version", abi::MAX_VERSION_BYTES, true)?;
    if !version.is_ascii() {
        return Err("version: ASCII only".into());
    }
    let description = text(&root, "description", abi::MAX_DESCRIPTION_BYTES, false)?;
    let tail_seconds = number(&root, "tail_seconds")?;
    if !(0.0..=abi::MAX_TAIL_SECONDS as f64).contains(&tail_seconds) {
        return Err(format!("tail_seconds {tail_seconds} is outside 0..=3600"));
    }
    let max_channels = root
        .get("max_channels")
        .and_then(Value::as_int)
        .filter(|n| (1..=abi::MAX_CHANNELS as i64).contains(n))
        .ok_or("max_channels: missing or not an integer in 1..=32")? as u32;
    let list = root
        .get("params")
        .and_then(Value::as_array)
        .ok_or("params: missing or not an array")?;
    if list.len() > abi::MAX_PARAMS {
        return Err(format!(
            "{} params, more than {}",
            list.len(),
            abi::MAX_PARAMS
        ));
    }
    let mut params: Vec<Param> = Vec::new();
    for (i, p) in list.iter().enumerate() {
        let param = param(p, &params).map_err(|e| format!("params[{i}]: {e}"))?;
        params.push(param);
    }
    let mut data: Vec<DataSlot> = Vec::new();
    if let Some(list) = root.get("data") {
        let list = list.as_array().ok_or("data: not an array")?;
        if list.len() > abi::MAX_DATA {
            return Err(format!(
                "{} data slots, more than {}",
                list.len(),
                abi::MAX_DATA
            ));
        }
        for (i, d) in list.iter().enumerate() {
            let slot = data_slot(d, &data).map_err(|e| format!("data[{i}]: {e}"))?;
            data.push(slot);
        }
    }
    Ok(Descriptor {
        name,
        version,
        description,
        params,
        tail_seconds,
        max_channels,
        data,
    })
}

/// Parses `P::DESCRIPTOR` and checks that it says what the code uses (`P::SPECS`, `P::INFO`).
pub fn descriptor_matches<P: crate::Params>() -> Result<Descriptor, String> {
    let d = descriptor(P::DESCRIPTOR)?;
    let info = P::INFO;
    if d.name != info.name
        || d.version != info.version
        || d.description != info.description
        || d.max_channels != info.max_channels
        || d.tail_seconds as f32 != info.tail_seconds
        || d.params.len() != P::SPECS.len()
        || d.data.len() != info.data.len()
        || d.data.iter().zip(info.data).any(|(j, c)| {
            j.id != c.id
                || j.name != c.name
                || j.max_channels != c.max_channels
                || j.max_seconds as f32 != c.max_seconds
        })
    {
        return Err("descriptor JSON and effect info differ".into());
    }
    for (p, s) in d.params.iter().zip(P::SPECS) {
        if p.id != s.id
            || p.name != s.name
            || p.unit != s.unit
            || p.min as f32 != s.min
            || p.max as f32 != s.max
            || p.default as f32 != s.default
            || p.choices
                .iter()
                .map(String::as_str)
                .ne(s.choices().iter().copied())
        {
            return Err(format!("parameter {}: JSON and code differ", s.id));
        }
    }
    Ok(d)
}

/// What [`module`] found in a valid module.
#[derive(Clone, Debug, PartialEq)]
pub struct Module {
    /// The descriptor of the `sluice_effect` section.
    pub descriptor: Descriptor,
    /// Whether the optional `sluice_latency` export is present.
    pub has_latency: bool,
    /// Whether the module imports `sluice.log`.
    pub imports_log: bool,
}

const I32: u8 = 0x7f;
const F32: u8 = 0x7d;

/// The function exports of ABI 1: name, parameter types, result types, required.
pub const EXPORTS: &[(&str, &[u8], &[u8], bool)] = &[
    ("sluice_init", &[I32, I32, I32], &[I32], true),
    ("sluice_buffer", &[I32], &[I32], true),
    ("sluice_set_param", &[I32, F32], &[I32], true),
    ("sluice_process", &[I32], &[I32], true),
    ("sluice_reset", &[], &[], true),
    ("sluice_latency", &[], &[I32], false),
];

struct Reader<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Result<u8, String> {
        let v = *self.b.get(self.i).ok_or("wasm: unexpected end")?;
        self.i += 1;
        Ok(v)
    }
    fn u32(&mut self) -> Result<u32, String> {
        let mut v: u64 = 0;
        for k in 0..5 {
            let b = self.byte()?;
            v |= ((b & 0x7f) as u64) << (7 * k);
            if b < 0x80 {
                return u32::try_from(v).map_err(|_| "wasm: LEB128 out of range".into());
            }
        }
        Err("wasm: LEB128 too long".into())
    }
    fn bytes(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .i
            .checked_add(n)
            .filter(|&e| e <= self.b.len())
            .ok_or("wasm: unexpected end")?;
        let s = &self.b[self.i..end];
        self.i = end;
        Ok(s)
    }
    fn name(&mut self) -> Result<&'a str, String> {
        let n = self.u32()? as usize;
        std::str::from_utf8(self.bytes(n)?).map_err(|_| "wasm: name is not UTF-8".into())
    }
    fn valtypes(&mut self) -> Result<Vec<u8>, String> {
        let n = self.u32()? as usize;
        Ok(self.bytes(n)?.to_vec())
    }
}

/// Checks a wasm binary as a host must before instantiating it, and returns its descriptor.
pub fn module(wasm: &[u8]) -> Result<Module, String> {
    if wasm.len() < 8 || &wasm[..4] != b"\0asm" {
        return Err("not a wasm binary".into());
    }
    if wasm[4..8] != [1, 0, 0, 0] {
        return Err("not a core wasm module (version 1); components are not effects".into());
    }
    let mut r = Reader { b: wasm, i: 8 };
    let mut types: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let mut funcs: Vec<u32> = Vec::new();
    let mut exports: Vec<(String, u8, u32)> = Vec::new();
    let mut sections: Vec<&str> = Vec::new();
    let mut imports_log = false;
    while r.i < wasm.len() {
        let id = r.byte()?;
        let size = r.u32()? as usize;
        let body = r.bytes(size)?;
        let mut s = Reader { b: body, i: 0 };
        match id {
            0 => {
                let name = s.name()?;
                if name == abi::SECTION {
                    let json = std::str::from_utf8(&body[s.i..])
                        .map_err(|_| "the sluice_effect section is not UTF-8")?;
                    sections.push(json);
                }
            }
            1 => {
                for _ in 0..s.u32()? {
                    if s.byte()? != 0x60 {
                        return Err("wasm: unsupported type form".into());
                    }
                    let params = s.valtypes()?;
                    let results = s.valtypes()?;
                    types.push((params, results));
                }
            }
            2 => {
                for _ in 0..s.u32()? {
                    let (m, n) = (s.name()?, s.name()?);
                    let kind = s.byte()?;
                    let ok = m == "sluice" && n == "log" && kind == 0 && {
                        let t = s.u32()? as usize;
                        funcs.push(t as u32);
                        types
                            .get(t)
                            .is_some_and(|(p, r)| p[..] == [I32, I32] && r.is_empty())
                    };
                    if !ok {
                        return Err(format!(
                            "imports {m}.{n}: the only import allowed is the function sluice.log(i32, i32)"
                        ));
                    }
                    imports_log = true;
                }
            }
            3 => {
                for _ in 0..s.u32()? {
                    funcs.push(s.u32()?);
                }
            }
            7 => {
                for _ in 0..s.u32()? {
                    let name = s.name()?.to_string();
                    let kind = s.byte()?;
                    let index = s.u32()?;
                    exports.push((name, kind, index));
                }
            }
            _ => {}
        }
    }
    let json = match sections[..] {
        [one] => one,
        [] => return Err("no sluice_effect custom section".into()),
        _ => return Err("more than one sluice_effect custom section".into()),
    };
    let descriptor = descriptor(json)?;
    if !exports.iter().any(|(n, k, _)| n == "memory" && *k == 2) {
        return Err("does not export its memory as \"memory\"".into());
    }
    let mut has_latency = false;
    for &(name, params, results, required) in EXPORTS {
        let Some(&(_, kind, index)) = exports.iter().find(|(n, _, _)| n == name) else {
            if required {
                return Err(format!("missing export {name}"));
            }
            continue;
        };
        let sig = (kind == 0)
            .then(|| funcs.get(index as usize))
            .flatten()
            .and_then(|&t| types.get(t as usize));
        match sig {
            Some((p, r)) if p[..] == *params && r[..] == *results => {}
            _ => {
                return Err(format!(
                    "export {name} is not a function of the ABI's signature"
                ));
            }
        }
        has_latency |= name == "sluice_latency";
    }
    Ok(Module {
        descriptor,
        has_latency,
        imports_log,
    })
}
