//! Wasm effects (effects/ABI.md): the descriptor, the runtime (wasmtime, sandboxed), the
//! render stage, and the catalog of effects a root can use: the built-in ones, compiled into
//! this binary, and `.wasm` files in the root's `effects/` folder.

pub mod descriptor;
pub mod runtime;
pub mod stage;

pub use runtime::{Effect, EffectError, Instance, Limits, Runtime};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

include!(concat!(env!("OUT_DIR"), "/builtin_effects.rs"));

/// Where an effect came from.
#[derive(Debug, Clone, PartialEq)]
pub enum Origin {
    Builtin,
    File(PathBuf),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Builtin => write!(f, "built in"),
            Origin::File(p) => write!(f, "{}", p.display()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Entry {
    pub effect: Arc<Effect>,
    pub origin: Origin,
}

/// The effects a root can use, by name, and the modules that were refused (with why).
#[derive(Clone)]
pub struct Catalog {
    rt: Runtime,
    pub effects: BTreeMap<String, Entry>,
    pub refused: Vec<(String, String)>,
    /// The root's effects folder and what it held when read (names, sizes, times).
    dir: Option<PathBuf>,
    stamp: Vec<(PathBuf, u64, i128)>,
}

fn stamp(dir: &Path) -> Vec<(PathBuf, u64, i128)> {
    let mut v: Vec<(PathBuf, u64, i128)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let p = e.path();
            let m = e.metadata().ok()?;
            let t = m
                .modified()
                .ok()?
                .duration_since(std::time::UNIX_EPOCH)
                .ok()?
                .as_nanos() as i128;
            (p.extension().is_some_and(|x| x == "wasm")).then_some((p, m.len(), t))
        })
        .collect();
    v.sort();
    v
}

impl Catalog {
    /// The built-in effects plus the `.wasm` files in `dir`. A module that fails its checks is
    /// listed in `refused` and left out; the others stay usable.
    pub fn load(rt: Runtime, dir: Option<&Path>) -> Catalog {
        let mut c = Catalog {
            rt,
            effects: BTreeMap::new(),
            refused: Vec::new(),
            dir: dir.map(Path::to_path_buf),
            stamp: dir.map(stamp).unwrap_or_default(),
        };
        for (name, bytes) in BUILTIN {
            c.add(name, bytes, Origin::Builtin);
        }
        for (p, _, _) in c.stamp.clone() {
            match runtime::read_module(&p) {
                Ok(bytes) => c.add(&p.display().to_string(), &bytes, Origin::File(p.clone())),
                Err(e) => c.refused.push((p.display().to_string(), e)),
            }
        }
        c
    }

    fn add(&mut self, what: &str, bytes: &[u8], origin: Origin) {
        match self.rt.load(what, bytes).and_then(|e| {
            probe(&self.rt, &e)?;
            Ok(e)
        }) {
            Ok(e) => {
                let name = e.descriptor.name.clone();
                if let Some(prev) = self.effects.get(&name) {
                    self.refused.push((
                        what.to_string(),
                        format!(
                            "effect {name}: the name is taken by the one from {}",
                            prev.origin
                        ),
                    ));
                    return;
                }
                self.effects.insert(
                    name,
                    Entry {
                        effect: Arc::new(e),
                        origin,
                    },
                );
            }
            Err(e) => self.refused.push((what.to_string(), e.to_string())),
        }
    }

    /// Whether the effects folder changed since it was read.
    pub fn changed(&self) -> bool {
        self.dir.as_deref().is_some_and(|d| stamp(d) != self.stamp)
    }

    /// Read again (after a change of the effects folder).
    pub fn reload(&self) -> Catalog {
        Catalog::load(self.rt.clone(), self.dir.as_deref())
    }

    pub fn runtime(&self) -> &Runtime {
        &self.rt
    }

    pub fn get(&self, name: &str) -> Option<&Entry> {
        self.effects.get(name)
    }
}

/// Run a new module once before trusting it: every parameter at its minimum, maximum and
/// default must be accepted, the index past the last must be refused (a descriptor that
/// lies about the parameter count or ranges is caught here), and a block of noise must come
/// out finite.
fn probe(rt: &Runtime, e: &Effect) -> Result<(), EffectError> {
    let d = &e.descriptor;
    let channels = d.max_channels.min(2) as usize;
    let mut inst = Instance::new(rt, e, 48_000, channels, 512, Limits::default())?;
    let lie = |m: String| {
        EffectError::new(
            &d.name,
            format!("its descriptor does not match the module: {m}"),
        )
    };
    if !inst.refuses_param(d.params.len())? {
        return Err(lie(format!(
            "it declares {} parameter(s) but accepts index {}",
            d.params.len(),
            d.params.len()
        )));
    }
    let mut noise = 0x2545_f491_u32;
    let mut planes: Vec<Vec<f32>> = vec![vec![0.0; 512]; channels];
    for which in 0..3 {
        for (i, p) in d.params.iter().enumerate() {
            let v = [p.min, p.max, p.default][which];
            inst.set_param(i, v)
                .map_err(|x| lie(format!("{} = {v} (within its range): {}", p.id, x.message)))?;
        }
        inst.latency()?;
        for p in &mut planes {
            for s in p.iter_mut() {
                noise ^= noise << 13;
                noise ^= noise >> 17;
                noise ^= noise << 5;
                *s = (noise as f32 / u32::MAX as f32 - 0.5) * 0.5;
            }
        }
        let mut views: Vec<&mut [f32]> = planes.iter_mut().map(|p| p.as_mut_slice()).collect();
        inst.process(&mut views)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_effects_load_and_pass_their_probe() {
        let c = Catalog::load(Runtime::new(None).unwrap(), None);
        assert!(c.refused.is_empty(), "{:?}", c.refused);
        let names: Vec<&str> = c.effects.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "compressor",
                "delay",
                "eq",
                "gain",
                "gate",
                "highpass",
                "limiter",
                "reverb"
            ]
        );
        assert!(c.effects.values().all(|e| e.origin == Origin::Builtin));
    }
}
