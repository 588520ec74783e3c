//! Wasm effects (effects/ABI.md): the descriptor, the runtime (wasmtime, sandboxed), the
//! render stage, and the catalog of effects a root can use: the built-in ones, compiled into
//! this binary, and `.wasm` files in the root's `effects/` folder.

pub mod data;
pub mod descriptor;
pub mod loader;
pub mod runtime;
pub mod stage;

pub use loader::{Loader, Update};
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

/// A module of the effects folder still being checked (compiled and probed) in the background
/// by the [`Loader`]: its descriptor, read without running it.
#[derive(Debug, Clone)]
pub struct Loading {
    pub file: PathBuf,
    pub descriptor: descriptor::Descriptor,
}

/// The effects a root can use, by name, and the modules that were refused (with why).
#[derive(Clone)]
pub struct Catalog {
    rt: Runtime,
    pub effects: BTreeMap<String, Entry>,
    pub refused: Vec<(String, String)>,
    /// Effects whose modules are still being checked, by name (only the watch host's
    /// [`Loader`] leaves any: [`Catalog::load`] checks everything before it returns).
    pub loading: BTreeMap<String, Loading>,
    /// Why the module that claimed a name was refused, when its descriptor could be read.
    refused_names: BTreeMap<String, String>,
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

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog")
            .field("effects", &self.effects.keys().collect::<Vec<_>>())
            .field("refused", &self.refused)
            .finish()
    }
}

impl Catalog {
    /// The built-in effects plus the `.wasm` files in `dir`. A module that fails its checks is
    /// listed in `refused` and left out; the others stay usable.
    pub fn load(rt: Runtime, dir: Option<&Path>) -> Catalog {
        let mut c = Catalog::empty(rt, dir);
        for (name, bytes) in BUILTIN {
            c.add(name, bytes, Origin::Builtin);
        }
        for (p, _, _) in c.stamp.clone() {
            match runtime::read_module(&p) {
                Ok(bytes) => c.add(&p.display().to_string(), &bytes, Origin::File(p.clone())),
                Err(e) => c.refused.push((p.display().to_string(), e.to_string())),
            }
        }
        c
    }

    /// No effects yet, for `dir` as it is now.
    fn empty(rt: Runtime, dir: Option<&Path>) -> Catalog {
        Catalog {
            rt,
            effects: BTreeMap::new(),
            refused: Vec::new(),
            loading: BTreeMap::new(),
            refused_names: BTreeMap::new(),
            dir: dir.map(Path::to_path_buf),
            stamp: dir.map(stamp).unwrap_or_default(),
        }
    }

    fn add(&mut self, what: &str, bytes: &[u8], origin: Origin) {
        match check(&self.rt, what, bytes) {
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

    pub fn runtime(&self) -> &Runtime {
        &self.rt
    }

    /// `entry` under its descriptor's name, in place of any effect of that name.
    pub fn insert(&mut self, entry: Entry) {
        self.effects
            .insert(entry.effect.descriptor.name.clone(), entry);
    }

    pub fn get(&self, name: &str) -> Option<&Entry> {
        self.effects.get(name)
    }

    /// A module file checked as the effects folder would check it (read, the ABI and the
    /// descriptor, compiled, probed), without adding it: the effect, or every reason it is
    /// refused.
    pub fn check_file(&self, path: &Path) -> Result<Entry, CheckError> {
        let bytes = runtime::read_module(path)?;
        let e = check(&self.rt, &path.display().to_string(), &bytes)?;
        Ok(Entry {
            effect: Arc::new(e),
            origin: Origin::File(path.to_path_buf()),
        })
    }

    /// Why there is no effect `name`, when a module that claimed it (or a file named after it)
    /// was refused.
    pub fn refusal(&self, name: &str) -> Option<&str> {
        self.refused_names
            .get(name)
            .map(String::as_str)
            .or_else(|| {
                self.refused
                    .iter()
                    .find(|(what, _)| Path::new(what).file_stem().is_some_and(|s| s == name))
                    .map(|(_, why)| why.as_str())
            })
    }
}

/// Why a module file is not an effect: it cannot be read, or the checks refuse it.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error(transparent)]
    Read(#[from] runtime::ReadModuleError),
    #[error(transparent)]
    Refused(#[from] EffectError),
}

/// Check a module against the ABI, compile it (or take it from the cache) and probe it.
fn check(rt: &Runtime, what: &str, bytes: &[u8]) -> Result<Effect, EffectError> {
    let e = rt.load(what, bytes)?;
    probe(rt, &e)?;
    Ok(e)
}

/// Run a new module once before trusting it: every parameter at its minimum, maximum and
/// default must be accepted, the index past the last must be refused (a descriptor that
/// lies about the parameter count or ranges is caught here), and a block of noise must come
/// out finite.
fn probe(rt: &Runtime, e: &Effect) -> Result<(), EffectError> {
    let d = &e.descriptor;
    let channels = d.max_channels.min(2) as usize;
    // Every data slot gets a mono unit impulse: the data path is exercised too.
    let impulse = vec![vec![1.0f32]];
    let data: Vec<&[Vec<f32>]> = d.data.iter().map(|_| impulse.as_slice()).collect();
    let mut inst = Instance::with_data(rt, e, 48_000, channels, 512, Limits::default(), &data)?;
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
    for which in 0..3 {
        for (i, p) in d.params.iter().enumerate() {
            let v = [p.min, p.max, p.default][which];
            inst.set_param(i, v)
                .map_err(|x| lie(format!("{} = {v} (within its range): {}", p.id, x.message)))?;
        }
        inst.latency()?;
        let mut planes: Vec<Vec<f32>> = (0..channels)
            .map(|ch| sluice_core::signal::noise((which * channels + ch) as u64, 0.25, 512))
            .collect();
        let mut views: Vec<&mut [f32]> = planes.iter_mut().map(|p| p.as_mut_slice()).collect();
        inst.process(&mut views)?;
    }
    Ok(())
}

/// A step's parameter value as the effect descriptors read it.
pub fn toml_value(v: &sluice_core::render::steps::ParamValue) -> toml::Value {
    use sluice_core::render::steps::ParamValue;
    match v {
        ParamValue::Bool(b) => toml::Value::Boolean(*b),
        ParamValue::Number(n) => toml::Value::Float(*n),
        ParamValue::Text(t) => toml::Value::String(t.clone()),
    }
}

/// The stage of an effect step from `catalog`: the effect found by name, its parameters checked
/// against its descriptor, its data files read (a pipeline's inside `root`; with no root, as
/// absolute paths), the step's sandbox limits. Pipelines and exports build their effect
/// stages through this.
pub fn stage_for(
    catalog: &Catalog,
    step: &sluice_core::render::steps::EffectStep,
    root: Option<&Path>,
) -> Result<Box<dyn sluice_core::render::Stage>, sluice_core::render::steps::StepError> {
    let failed = |message: String| sluice_core::render::steps::StepError::Effect {
        name: step.name.clone(),
        message,
    };
    let entry = catalog
        .get(&step.name)
        .ok_or_else(|| failed("not available (removed?)".into()))?;
    let resolved = step
        .params
        .iter()
        .map(|(k, v)| entry.effect.descriptor.resolve(k, &toml_value(v)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| failed(e.to_string()))?;
    let limits = Limits::for_step(step);
    let data = read_data(
        &entry.effect.descriptor,
        &step.data,
        root,
        limits.memory_bytes,
    )
    .map_err(failed)?;
    Ok(Box::new(
        stage::EffectStage::new(
            catalog.runtime().clone(),
            entry.effect.clone(),
            resolved,
            limits,
        )
        .with_data(data),
    ))
}

/// Whether a step's data names the effect's slots, every one of them, once: the problems, in
/// words (without the effect's name).
pub fn data_problems(d: &descriptor::Descriptor, given: &[(String, String)]) -> Vec<String> {
    let mut out = Vec::new();
    for (i, (k, _)) in given.iter().enumerate() {
        if d.data_slot(k).is_none() {
            out.push(if d.data.is_empty() {
                format!("takes no data (data {k} given)")
            } else {
                format!(
                    "no data slot {k:?} (it has: {})",
                    d.data
                        .iter()
                        .map(|s| s.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            });
        } else if given[..i].iter().any(|(j, _)| j == k) {
            out.push(format!("data {k} is given twice"));
        }
    }
    for s in &d.data {
        if !given.iter().any(|(k, _)| *k == s.id) {
            out.push(format!(
                "needs data {}: the audio file of its {} (data = {{ {} = \"irs/room.wav\" }})",
                s.id,
                s.name.to_lowercase(),
                s.id
            ));
        }
    }
    out
}

/// The data files `given` (slot, path) for an effect, read in its slot order, each with its
/// limit: the slot's seconds, and `max_bytes` (the effect's memory cap) as floats (see
/// [`data::locate`] for `root`).
pub fn read_data(
    d: &descriptor::Descriptor,
    given: &[(String, String)],
    root: Option<&Path>,
    max_bytes: usize,
) -> Result<Vec<(data::Audio, data::Limit)>, String> {
    if let Some(p) = data_problems(d, given).into_iter().next() {
        return Err(p);
    }
    d.data
        .iter()
        .map(|slot| {
            let (_, written) = given
                .iter()
                .find(|(k, _)| *k == slot.id)
                .expect("checked above");
            let path = data::locate(root, written)?;
            let limit = data::Limit {
                max_seconds: slot.max_seconds,
                max_bytes,
            };
            Ok((data::load(&path, written, slot, max_bytes)?, limit))
        })
        .collect()
}

/// The data files `given` read as [`read_data`] does, and put at `rate`: the planes an
/// instance of the effect takes, slot by slot.
pub fn data_at_rate(
    d: &descriptor::Descriptor,
    given: &[(String, String)],
    root: Option<&Path>,
    max_bytes: usize,
    rate: u32,
) -> Result<Vec<Vec<Vec<f32>>>, String> {
    data::at_rate(&read_data(d, given, root, max_bytes)?, rate)
}

/// A resolver whose effects are `catalog`'s, and nothing else (no analysis taps, no library):
/// an export's.
pub struct CatalogResolver<'a>(pub &'a Catalog);

impl sluice_core::render::steps::StageResolver for CatalogResolver<'_> {
    fn effect(
        &mut self,
        step: &sluice_core::render::steps::EffectStep,
    ) -> Result<Box<dyn sluice_core::render::Stage>, sluice_core::render::steps::StepError> {
        stage_for(self.0, step, None)
    }
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
                "bitcrush",
                "chorus",
                "clip",
                "compressor",
                "convolve",
                "deess",
                "dehum",
                "delay",
                "denoise",
                "distortion",
                "eq",
                "flanger",
                "gain",
                "gate",
                "highpass",
                "invert",
                "ladder",
                "leveler",
                "limiter",
                "phaser",
                "pitch",
                "reverb"
            ]
        );
        assert!(c.effects.values().all(|e| e.origin == Origin::Builtin));
    }

    /// The cache folder's files: name, inode and modification time.
    fn cache_files(dir: &Path) -> Vec<(String, u64, std::time::SystemTime)> {
        use std::os::unix::fs::MetadataExt;
        let mut v: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| {
                let m = e.metadata().unwrap();
                let name = e.file_name().to_string_lossy().into_owned();
                (name, m.ino(), m.modified().unwrap())
            })
            .collect();
        v.sort();
        v
    }

    /// Gain at −6 dB through a catalog's module: the output is half the input.
    fn halves(c: &Catalog) {
        let e = &c.get("gain").unwrap().effect;
        let mut fx = Instance::new(c.runtime(), e, 48_000, 1, 256, Limits::default()).unwrap();
        let (index, _) = e.descriptor.param("gain_db").unwrap();
        fx.set_param(index, -6.0206).unwrap();
        fx.set_param(e.descriptor.param("smoothing_ms").unwrap().0, 0.0)
            .unwrap();
        let mut block = vec![0.5f32; 256];
        fx.process(&mut [&mut block]).unwrap();
        assert!((block[255] - 0.25).abs() < 1e-4, "{}", block[255]);
    }

    #[test]
    fn compiled_modules_are_cached_on_disk_and_reused() {
        let root = tempfile::tempdir().unwrap();
        let cache = root.path().join("cache");
        let load = || Catalog::load(Runtime::new(Some(cache.clone())).unwrap(), None);

        // One file per module, named by its BLAKE3 and the engine's compatibility key.
        let first = load();
        assert!(first.refused.is_empty(), "{:?}", first.refused);
        let files = cache_files(&cache);
        assert_eq!(files.len(), first.effects.len(), "{files:?}");
        for e in first.effects.values() {
            let prefix = &e.effect.hash[..32];
            assert!(
                files
                    .iter()
                    .any(|(n, _, _)| n.starts_with(prefix) && n.ends_with(".cwasm")),
                "no cache file for {} in {files:?}",
                e.effect.descriptor.name
            );
        }

        // A new engine (as in the next run of `sluice`) takes every module from the cache:
        // nothing is compiled and written again, and the modules work.
        let second = load();
        assert!(second.refused.is_empty(), "{:?}", second.refused);
        assert_eq!(cache_files(&cache), files, "the cache was rewritten");
        halves(&second);

        // A damaged file is not trusted: the module is compiled again and the file replaced.
        let damaged = cache.join(&files[0].0);
        std::fs::write(&damaged, b"not a compiled module").unwrap();
        let third = load();
        assert!(third.refused.is_empty(), "{:?}", third.refused);
        assert!(std::fs::metadata(&damaged).unwrap().len() > 1000);
        assert_eq!(cache_files(&cache).len(), files.len());
        halves(&third);
    }
}

/// Hostile and broken modules, written in WAT by the tests (effects/ABI.md's rules broken one
/// at a time). Each must fail with a clear error naming the effect, within its budget.
#[cfg(test)]
mod hostile {
    use super::*;
    use std::time::{Duration, Instant};

    /// A module that follows the ABI with one parameter, and does `misbehave` in
    /// `sluice_process` once it has been given more than 20,000 frames (so it passes the load
    /// probe and goes wrong in a job). `extra` goes into the module (imports, say).
    fn module(name: &str, misbehave: &str, extra: &str, descriptor: Option<String>) -> Vec<u8> {
        let desc = descriptor.unwrap_or_else(|| {
            format!(
                r#"{{"abi":1,"name":"{name}","version":"1","params":[{{"id":"x","name":"X","min":0,"max":1,"default":0}}],"max_channels":2}}"#
            )
        });
        let text = format!(
            r#"(module
  {extra}
  (memory (export "memory") 2)
  (global $frames (mut i32) (i32.const 0))
  (func (export "sluice_init") (param i32 i32 i32) (result i32) (i32.const 0))
  (func (export "sluice_buffer") (param $ch i32) (result i32)
    (i32.add (i32.const 1024) (i32.mul (local.get $ch) (i32.const 16384))))
  (func (export "sluice_set_param") (param i32 f32) (result i32)
    (if (result i32) (i32.eqz (local.get 0)) (then (i32.const 0)) (else (i32.const 6))))
  (func (export "sluice_reset"))
  (func (export "sluice_process") (param $n i32) (result i32)
    (global.set $frames (i32.add (global.get $frames) (local.get $n)))
    (if (i32.gt_u (global.get $frames) (i32.const 20000)) (then {misbehave}))
    (i32.const 0))
  (@custom "sluice_effect" {desc:?})
)"#
        );
        wat::parse_str(text).unwrap()
    }

    fn rt() -> Runtime {
        Runtime::new(None).unwrap()
    }

    /// Load through the catalog (checks and probe), then process a few seconds of audio.
    fn run(bytes: &[u8], limits: Limits) -> Result<(), EffectError> {
        let rt = rt();
        let e = rt.load("test.wasm", bytes)?;
        probe(&rt, &e)?;
        let mut inst = Instance::new(&rt, &e, 48_000, 2, 4096, limits)?;
        let mut planes = vec![vec![0.25f32; 4096]; 2];
        for _ in 0..30 {
            let mut views: Vec<&mut [f32]> = planes.iter_mut().map(|p| p.as_mut_slice()).collect();
            inst.process(&mut views)?;
        }
        Ok(())
    }

    fn fails(bytes: &[u8], want: &[&str]) -> (EffectError, Duration) {
        let t = Instant::now();
        let e = run(bytes, Limits::default()).expect_err("must fail");
        let took = t.elapsed();
        let text = e.to_string();
        for w in want {
            assert!(text.contains(w), "{w:?} not in {text:?}");
        }
        (e, took)
    }

    #[test]
    fn a_well_behaved_module_runs() {
        run(&module("calm", "nop", "", None), Limits::default()).unwrap();
    }

    #[test]
    fn an_infinite_loop_is_stopped_by_the_time_budget() {
        let (e, took) = fails(
            &module("spin", "(loop $l (br $l))", "", None),
            &["effect spin", "time budget", "stopped"],
        );
        // A 4096-frame block at 48 kHz gets 10 x 85 ms.
        assert!(took < Duration::from_secs(3), "{took:?}: {e}");
    }

    #[test]
    fn a_memory_grow_bomb_stays_under_the_cap() {
        // Grows until the host says no, then reports it.
        let bomb = "(block $done (loop $l (br_if $done (i32.eq (memory.grow (i32.const 256)) (i32.const -1))) (br $l))) (return (i32.const 4))";
        let limits = Limits {
            memory_bytes: 16 << 20,
            ..Limits::default()
        };
        let e = run(&module("bomb", bomb, "", None), limits).unwrap_err();
        assert!(
            e.to_string().contains("effect bomb") && e.to_string().contains("ERR_MEMORY"),
            "{e}"
        );
    }

    #[test]
    fn traps_are_errors() {
        fails(
            &module("crash", "unreachable", "", None),
            &["effect crash", "trapped", "unreachable"],
        );
        fails(
            &module("wild", "(drop (i32.load (i32.const -4)))", "", None),
            &["effect wild", "trapped", "out of bounds"],
        );
    }

    #[test]
    fn non_finite_output_is_an_error() {
        fails(
            &module(
                "nan",
                "(f32.store (i32.const 1024) (f32.const nan))",
                "",
                None,
            ),
            &["effect nan", "produced NaN", "must be finite"],
        );
    }

    #[test]
    fn imports_other_than_log_are_refused() {
        let wasi = r#"(import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))"#;
        fails(
            &module("wasi", "nop", wasi, None),
            &[
                "effect wasi",
                "wasi_snapshot_preview1.fd_write",
                "does not grant",
            ],
        );
        let env = r#"(import "env" "abort" (func))"#;
        fails(&module("env", "nop", env, None), &["env.abort"]);
        // The log call is allowed.
        let log = r#"(import "sluice" "log" (func (param i32 i32)))"#;
        run(&module("logs", "nop", log, None), Limits::default()).unwrap();
    }

    #[test]
    fn lying_giant_and_invalid_descriptors_are_refused() {
        let two = r#"{"abi":1,"name":"liar","version":"1","params":[{"id":"x","name":"X","min":0,"max":1,"default":0},{"id":"y","name":"Y","min":0,"max":1,"default":0}],"max_channels":2}"#;
        fails(
            &module("liar", "nop", "", Some(two.into())),
            &["effect liar", "does not match", "y ="],
        );
        let none = r#"{"abi":1,"name":"coy","version":"1","params":[],"max_channels":2}"#;
        fails(
            &module("coy", "nop", "", Some(none.into())),
            &["effect coy", "declares 0 parameter(s) but accepts index 0"],
        );
        let giant = format!(
            r#"{{"abi":1,"name":"big","version":"1","description":"{}","max_channels":2}}"#,
            "x".repeat(70_000)
        );
        fails(&module("big", "nop", "", Some(giant)), &["at most 65536"]);
        fails(
            &module("junk", "nop", "", Some("{\"abi\": 1, ".into())),
            &["not valid"],
        );
    }

    #[test]
    fn files_that_are_not_effects_are_refused() {
        let e = rt().load("notes.wasm", b"these are notes").unwrap_err();
        assert!(
            e.to_string()
                .contains("notes.wasm: not a WebAssembly module"),
            "{e}"
        );
        let plain = wat::parse_str("(module)").unwrap();
        let e = rt().load("plain.wasm", &plain).unwrap_err();
        assert!(
            e.to_string().contains("no sluice_effect custom section"),
            "{e}"
        );
        // A folder holding all of these: the good ones stay usable.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("notes.wasm"), b"notes").unwrap();
        std::fs::write(
            dir.path().join("calm.wasm"),
            module("calm", "nop", "", None),
        )
        .unwrap();
        let c = Catalog::load(rt(), Some(dir.path()));
        assert!(c.get("calm").is_some());
        assert_eq!(c.refused.len(), 1, "{:?}", c.refused);
        assert!(!c.changed());
        std::fs::write(dir.path().join("more.wasm"), b"more").unwrap();
        assert!(c.changed());
    }

    /// A module with data slots whose `sluice_data` is `body` (params: slot, channels, frames),
    /// and whose init stores the first float of slot 0's room at address 0 (what it was given).
    fn data_module(slots: usize, data_fn: &str) -> Vec<u8> {
        let list: Vec<String> = (0..slots)
            .map(|i| format!(r#"{{"id":"s{i}","name":"S{i}","max_channels":2,"max_seconds":1}}"#))
            .collect();
        let desc = format!(
            r#"{{"abi":1,"name":"datum","version":"1","params":[],"max_channels":2,"data":[{}]}}"#,
            list.join(",")
        );
        let text = format!(
            r#"(module
  (memory (export "memory") 4)
  {data_fn}
  (func (export "sluice_init") (param i32 i32 i32) (result i32) (i32.const 0))
  (func (export "sluice_buffer") (param $ch i32) (result i32)
    (i32.add (i32.const 65536) (i32.mul (local.get $ch) (i32.const 16384))))
  (func (export "sluice_set_param") (param i32 f32) (result i32) (i32.const 6))
  (func (export "sluice_reset"))
  (func (export "sluice_process") (param $n i32) (result i32) (i32.const 0))
  (@custom "sluice_effect" {desc:?})
)"#
        );
        wat::parse_str(text).unwrap()
    }

    fn with_data(bytes: &[u8], data: &[&[Vec<f32>]]) -> Result<Instance, EffectError> {
        let rt = rt();
        let e = rt.load("datum.wasm", bytes)?;
        Instance::with_data(&rt, &e, 48_000, 2, 512, Limits::default(), data)
    }

    #[test]
    fn data_slots_are_given_within_the_rules_and_lies_are_refused() {
        let ir = vec![vec![0.5f32; 100]];
        // An honest module: room at 8192 + slot * 4096 (16-byte aligned, inside, apart).
        let honest = data_module(
            2,
            r#"(func (export "sluice_data") (param $s i32) (param i32 i32) (result i32)
                (i32.add (i32.const 8192) (i32.mul (local.get $s) (i32.const 4096))))"#,
        );
        assert!(with_data(&honest, &[&ir, &ir]).is_ok());
        // The probe gives every slot a unit impulse: the honest module loads in a catalog.
        let rt = rt();
        let e = rt.load("datum.wasm", &honest).unwrap();
        probe(&rt, &e).unwrap();
        // Every declared slot must be given; data within the slot's limits.
        let msg = |r: Result<Instance, EffectError>| r.err().expect("refused").to_string();
        assert!(msg(with_data(&honest, &[&ir])).contains("needs its data s1"));
        let three = vec![vec![0.5f32; 100]; 3];
        assert!(msg(with_data(&honest, &[&three, &ir])).contains("1 to 2 channel(s)"));
        let long = vec![vec![0.0f32; 48_001]];
        assert!(msg(with_data(&honest, &[&long, &ir])).contains("up to 1 s"));
        // Lies: no room, room outside the memory, misaligned, overlapping.
        for (body, says) in [
            ("(i32.const 0)", "sluice_data refused"),
            ("(i32.const 262000)", "not a 16-byte aligned room"),
            ("(i32.const 8193)", "not a 16-byte aligned room"),
            ("(i32.const 8192)", "overlapping another slot"),
            ("(unreachable)", "sluice_data trapped"),
        ] {
            let m = data_module(
                2,
                &format!(
                    r#"(func (export "sluice_data") (param i32 i32 i32) (result i32) {body})"#
                ),
            );
            let e = msg(with_data(&m, &[&ir, &ir]));
            assert!(e.contains(says) && e.contains("datum"), "{body}: {e}");
        }
        // A module that declares data but cannot take it is refused when loaded.
        let none = data_module(1, "");
        let e = rt.load("datum.wasm", &none).unwrap_err().to_string();
        assert!(e.contains("does not export sluice_data"), "{e}");
        // A wrong signature too.
        let wrong = data_module(
            1,
            r#"(func (export "sluice_data") (param i32) (result i32) (i32.const 0))"#,
        );
        let e = rt.load("datum.wasm", &wrong).unwrap_err().to_string();
        assert!(e.contains("sluice_data"), "{e}");
    }
}
