//! Loading a root's effects without holding up the host.
//!
//! Checking a module of the effects folder means compiling it and running it once (the probe):
//! a module that loops in its start function or in `sluice_init` takes its whole init budget
//! (5 s) before it is refused. The watch host must not stop watching and dispatching meanwhile,
//! so the [`Loader`] does it on threads of its own:
//!
//! - the built-in effects are ours: compiled once (in parallel, through the compile cache) when
//!   the loader starts, trusted without a probe, and kept for the host's lifetime;
//! - the folder's modules are read and their descriptors parsed at once (so their names and
//!   parameters are known), then compiled and probed in the background, several at a time;
//!   until then they are [`Catalog::loading`], and a pipeline that needs one waits for it;
//! - a module already checked (same bytes) is not checked again;
//! - the folder is looked at every two seconds; when it changes, the current catalog keeps
//!   serving until the new one is complete.
//!
//! Each step comes to the host as an [`Update`]: at start, one per module that finishes; after
//! a change, one when all of the folder's modules are checked.

use super::descriptor::{self, Descriptor};
use super::runtime::read_module;
use super::{BUILTIN, Catalog, Effect, EffectError, Entry, Loading, Origin, Runtime, stamp};
use crossbeam_channel::{Receiver, Sender};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the effects folder is looked at.
const LOOK_EVERY: Duration = Duration::from_secs(2);

/// A new catalog for the host.
pub struct Update {
    pub catalog: Catalog,
    /// What was refused since the previous update (each refusal is in one update only).
    pub refused: Vec<(String, String)>,
}

/// The effects of one root, loaded and kept up to date in the background.
pub struct Loader {
    updates: Receiver<Update>,
    /// Dropped with the loader: its thread then ends.
    _stop: Sender<()>,
}

impl Loader {
    /// Load the built-in effects now and start checking the `.wasm` files of `dir` in the
    /// background. Returns at once with the first catalog: the built-in effects, and the
    /// folder's modules as [`Catalog::loading`] (or refused, when they cannot even be read).
    pub fn start(rt: Runtime, dir: Option<PathBuf>) -> anyhow::Result<(Loader, Update)> {
        let threads = std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .clamp(2, 4);
        let (task_tx, task_rx) = crossbeam_channel::unbounded::<Task>();
        let (done_tx, done_rx) = crossbeam_channel::unbounded::<Done>();
        for i in 0..threads {
            let (rx, tx, rt) = (task_rx.clone(), done_tx.clone(), rt.clone());
            std::thread::Builder::new()
                .name(format!("sluice-effects-{i}"))
                .spawn(move || {
                    for t in rx {
                        let result = super::check(&rt, &t.file.display().to_string(), &t.bytes)
                            .map(Arc::new);
                        let done = Done {
                            generation: t.generation,
                            name: t.name,
                            file: t.file,
                            hash: t.hash,
                            result,
                        };
                        if tx.send(done).is_err() {
                            return;
                        }
                    }
                })?;
        }
        let builtins = builtins(&rt, threads);
        let (update_tx, updates) = crossbeam_channel::unbounded();
        let (stop, stopped) = crossbeam_channel::bounded::<()>(0);
        let mut c = Coordinator {
            rt,
            dir,
            builtins,
            known: HashMap::new(),
            generation: 0,
            round: None,
            complete_once: false,
            tasks: task_tx,
            updates: update_tx,
        };
        c.begin();
        let first = c.take_update().expect("a round was just begun");
        std::thread::Builder::new()
            .name("sluice-effects".into())
            .spawn(move || c.run(&done_rx, &stopped))?;
        Ok((
            Loader {
                updates,
                _stop: stop,
            },
            first,
        ))
    }

    /// The newest catalog, when there is one since the last call (with every refusal since).
    pub fn poll(&self) -> Option<Update> {
        self.updates.try_iter().reduce(|mut a, b| {
            a.refused.extend(b.refused);
            Update {
                catalog: b.catalog,
                refused: a.refused,
            }
        })
    }
}

/// The built-in effects, compiled on `threads` threads (each through the compile cache).
fn builtins(rt: &Runtime, threads: usize) -> Vec<(&'static str, Result<Arc<Effect>, EffectError>)> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut out: Vec<_> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(&(name, bytes)) = BUILTIN.get(i) else {
                            return mine;
                        };
                        mine.push((i, name, rt.load(name, bytes).map(Arc::new)));
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| {
                w.join()
                    .expect("compiling a built-in effect does not panic")
            })
            .collect()
    });
    out.sort_by_key(|(i, _, _)| *i);
    out.into_iter().map(|(_, n, r)| (n, r)).collect()
}

/// A module to check.
struct Task {
    generation: u64,
    name: String,
    file: PathBuf,
    hash: String,
    bytes: Vec<u8>,
}

/// A module checked.
struct Done {
    generation: u64,
    name: String,
    file: PathBuf,
    hash: String,
    result: Result<Arc<Effect>, EffectError>,
}

/// A reading of the effects folder, being checked.
struct Round {
    generation: u64,
    catalog: Catalog,
    /// Per effect name still loading, the other files that claim it, in the folder's order:
    /// the next is checked if the one being checked is refused (as [`Catalog::load`] does).
    claims: BTreeMap<String, VecDeque<Claim>>,
    /// Refusals not yet sent.
    refused: Vec<(String, String)>,
    /// Send every step (at start), or only the complete catalog (after a change, when a
    /// complete catalog serves meanwhile).
    stepwise: bool,
}

struct Claim {
    file: PathBuf,
    hash: String,
    bytes: Vec<u8>,
    descriptor: Descriptor,
}

struct Coordinator {
    rt: Runtime,
    dir: Option<PathBuf>,
    builtins: Vec<(&'static str, Result<Arc<Effect>, EffectError>)>,
    /// Modules checked and accepted, by the hash of their bytes.
    known: HashMap<String, Arc<Effect>>,
    generation: u64,
    round: Option<Round>,
    /// Whether a complete catalog was ever sent (from then on it serves during a reload).
    complete_once: bool,
    tasks: Sender<Task>,
    updates: Sender<Update>,
}

impl Coordinator {
    fn run(mut self, done: &Receiver<Done>, stop: &Receiver<()>) {
        let mut looked = Instant::now();
        loop {
            crossbeam_channel::select! {
                recv(stop) -> _ => return,
                recv(done) -> d => match d {
                    Ok(d) => {
                        // Whatever else finished meanwhile goes in the same update.
                        let mut changed = self.finished(d);
                        for d in done.try_iter() {
                            changed |= self.finished(d);
                        }
                        if changed {
                            self.send();
                        }
                    }
                    Err(_) => return,
                },
                default(LOOK_EVERY.saturating_sub(looked.elapsed())) => {}
            }
            if looked.elapsed() >= LOOK_EVERY {
                looked = Instant::now();
                let now = self.dir.as_deref().map(stamp).unwrap_or_default();
                if self.round.as_ref().is_some_and(|r| r.catalog.stamp != now) {
                    tracing::info!(
                        "effects changed: checking them again (the current ones serve until then)"
                    );
                    self.begin();
                    self.send();
                }
            }
        }
    }

    /// Read the folder and start checking what it holds (a new round, which supersedes the
    /// one before).
    fn begin(&mut self) {
        self.generation += 1;
        let mut catalog = Catalog::empty(self.rt.clone(), self.dir.as_deref());
        let mut refused = Vec::new();
        let mut refuse = |c: &mut Catalog, what: String, why: String| {
            refused.push((what.clone(), why.clone()));
            c.refused.push((what, why));
        };
        for (name, r) in &self.builtins {
            match r {
                Ok(e) => {
                    catalog.effects.insert(
                        e.descriptor.name.clone(),
                        Entry {
                            effect: e.clone(),
                            origin: Origin::Builtin,
                        },
                    );
                }
                // Reported once, at start.
                Err(e) if self.generation == 1 => {
                    refuse(&mut catalog, name.to_string(), e.to_string());
                }
                Err(e) => catalog.refused.push((name.to_string(), e.to_string())),
            }
        }
        // Every module's descriptor, in the folder's order; the files claiming each name.
        let mut claims: BTreeMap<String, VecDeque<Claim>> = BTreeMap::new();
        for (file, _, _) in catalog.stamp.clone() {
            let what = file.display().to_string();
            let read = read_module(&file)
                .map_err(|e| e.to_string())
                .and_then(|bytes| {
                    let d = descriptor::find_section(&bytes)
                        .and_then(Descriptor::parse)
                        .map_err(|m| EffectError::new(&what, m.to_string()).to_string())?;
                    Ok((bytes, d))
                });
            match read {
                Err(why) => refuse(&mut catalog, what, why),
                Ok((_, d)) if catalog.effects.contains_key(&d.name) => {
                    let why = format!(
                        "effect {}: the name is taken by the one from {}",
                        d.name,
                        Origin::Builtin
                    );
                    refuse(&mut catalog, what, why)
                }
                Ok((bytes, d)) => {
                    let hash = blake3::hash(&bytes).to_hex().to_string();
                    claims.entry(d.name.clone()).or_default().push_back(Claim {
                        file,
                        hash,
                        bytes,
                        descriptor: d,
                    });
                }
            }
        }
        // Forget modules that are no longer there.
        self.known
            .retain(|h, _| claims.values().flatten().any(|c| c.hash == *h));
        let mut round = Round {
            generation: self.generation,
            catalog,
            claims,
            refused,
            stepwise: !self.complete_once,
        };
        let names: Vec<String> = round.claims.keys().cloned().collect();
        for name in names {
            self.next_claim(&mut round, &name);
        }
        self.round = Some(round);
    }

    /// The current round's catalog as far as it is known, and its refusals not yet said.
    fn take_update(&mut self) -> Option<Update> {
        let round = self.round.as_mut()?;
        if round.complete() {
            self.complete_once = true;
        }
        Some(Update {
            catalog: round.catalog.clone(),
            refused: std::mem::take(&mut round.refused),
        })
    }

    /// Check the next file that claims `name`: from what is known, or in the background.
    fn next_claim(&mut self, round: &mut Round, name: &str) {
        loop {
            let Some(claim) = round.claims.get_mut(name).and_then(VecDeque::pop_front) else {
                round.claims.remove(name);
                round.catalog.loading.remove(name);
                return;
            };
            if let Some(e) = self.known.get(&claim.hash) {
                round.accept(name, claim.file, e.clone());
                return;
            }
            round.catalog.loading.insert(
                name.to_string(),
                Loading {
                    file: claim.file.clone(),
                    descriptor: claim.descriptor,
                },
            );
            let task = Task {
                generation: round.generation,
                name: name.to_string(),
                file: claim.file,
                hash: claim.hash,
                bytes: claim.bytes,
            };
            if self.tasks.send(task).is_ok() {
                return;
            }
        }
    }

    /// A module was checked. Returns whether the current round changed.
    fn finished(&mut self, d: Done) -> bool {
        if let Ok(e) = &d.result {
            self.known.insert(d.hash.clone(), e.clone());
        }
        // A module of an earlier reading: the current reading checks its own.
        let Some(mut round) = self.round.take_if(|r| r.generation == d.generation) else {
            return false;
        };
        match d.result {
            Ok(e) => round.accept(&d.name, d.file, e),
            Err(e) => {
                let why = e.to_string();
                round.refuse(d.file.display().to_string(), why.clone());
                round.catalog.refused_names.insert(d.name.clone(), why);
                self.next_claim(&mut round, &d.name);
            }
        }
        self.round = Some(round);
        true
    }

    /// Send the catalog, if the host should have it now: every step at start, only the
    /// complete catalog once one has served.
    fn send(&mut self) {
        let Some(round) = &self.round else {
            return;
        };
        if round.complete() || round.stepwise {
            let u = self.take_update().expect("there is a round");
            let _ = self.updates.send(u);
        }
    }
}

impl Round {
    fn complete(&self) -> bool {
        self.catalog.loading.is_empty()
    }

    fn refuse(&mut self, what: String, why: String) {
        self.refused.push((what.clone(), why.clone()));
        self.catalog.refused.push((what, why));
    }

    /// The module `file` is `name`'s: the other files that claim the name are refused.
    fn accept(&mut self, name: &str, file: PathBuf, e: Arc<Effect>) {
        self.catalog.loading.remove(name);
        for other in self.claims.remove(name).into_iter().flatten() {
            self.refuse(
                other.file.display().to_string(),
                format!(
                    "effect {name}: the name is taken by the one from {}",
                    file.display()
                ),
            );
        }
        self.catalog.refused_names.remove(name);
        self.catalog.effects.insert(
            name.to_string(),
            Entry {
                effect: e,
                origin: Origin::File(file),
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pass-through module named `name`; `init` goes into `sluice_init`.
    fn module(name: &str, init: &str) -> Vec<u8> {
        let desc = format!(r#"{{"abi":1,"name":"{name}","version":"1","max_channels":2}}"#);
        wat::parse_str(format!(
            r#"(module
  (memory (export "memory") 2)
  (func (export "sluice_init") (param i32 i32 i32) (result i32) {init} (i32.const 0))
  (func (export "sluice_buffer") (param $ch i32) (result i32)
    (i32.add (i32.const 1024) (i32.mul (local.get $ch) (i32.const 16384))))
  (func (export "sluice_set_param") (param i32 f32) (result i32) (i32.const 6))
  (func (export "sluice_reset"))
  (func (export "sluice_process") (param i32) (result i32) (i32.const 0))
  (@custom "sluice_effect" {desc:?})
)"#
        ))
        .unwrap()
    }

    /// Updates until one has nothing loading.
    fn until_complete(l: &Loader, mut seen: Vec<Update>) -> Vec<Update> {
        let t = Instant::now();
        while seen.last().is_none_or(|u| !u.catalog.loading.is_empty()) {
            assert!(t.elapsed() < Duration::from_secs(60), "no complete catalog");
            if let Some(u) = l.poll() {
                seen.push(u);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        seen
    }

    #[test]
    fn the_folder_is_checked_in_the_background_and_reloaded_whole() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("a.wasm"), module("calm", "")).unwrap();
        // The same name again (refused: the first file in the folder's order has it), a file
        // that is no module, a built-in's name, and a module that is slow to start.
        std::fs::write(d.join("b.wasm"), module("calm", "")).unwrap();
        std::fs::write(d.join("junk.wasm"), b"junk").unwrap();
        std::fs::write(d.join("gain.wasm"), module("gain", "")).unwrap();
        std::fs::write(d.join("slow.wasm"), module("sloth", "(loop $l (br $l))")).unwrap();
        let (l, first) = Loader::start(Runtime::new(None).unwrap(), Some(d.to_path_buf())).unwrap();
        // At once (not after the checks: the slow module is still loading in the first
        // catalog; no wall-clock bound, which a loaded machine broke): the built-in effects,
        // the modules being checked (descriptors known), what cannot even be read.
        let c = &first.catalog;
        assert!(c.get("gain").is_some_and(|e| e.origin == Origin::Builtin));
        assert_eq!(
            c.loading.keys().collect::<Vec<_>>(),
            ["calm", "sloth"],
            "{:?}",
            c.loading
        );
        assert_eq!(c.loading["calm"].file, d.join("a.wasm"));
        let said: Vec<&str> = first.refused.iter().map(|(w, _)| w.as_str()).collect();
        assert_eq!(said.len(), 2, "{:?}", first.refused);
        assert!(said.iter().any(|w| w.ends_with("junk.wasm")));
        assert!(first.refused.iter().any(|(w, why)| w.ends_with("gain.wasm")
            && why.contains("the name is taken by the one from built in")));

        let seen = until_complete(&l, vec![]);
        let last = &seen.last().unwrap().catalog;
        assert_eq!(
            last.get("calm").unwrap().origin,
            Origin::File(d.join("a.wasm"))
        );
        assert!(last.get("sloth").is_none());
        assert!(
            last.refusal("sloth")
                .is_some_and(|w| w.contains("sluice_init ran past its time budget")),
            "{:?}",
            last.refused
        );
        // Each refusal is said once, in the update that found it.
        let said: Vec<String> = seen
            .iter()
            .flat_map(|u| u.refused.iter().map(|(w, _)| w.clone()))
            .collect();
        assert_eq!(said.len(), 2, "{said:?}");
        assert!(said.iter().any(|w| w.ends_with("b.wasm")));
        assert!(said.iter().any(|w| w.ends_with("slow.wasm")));
        let calm = last.get("calm").unwrap().effect.clone();

        // A new module: the catalog comes whole, once it is checked; what did not change is
        // not checked again.
        std::fs::write(d.join("c.wasm"), module("other", "")).unwrap();
        std::fs::remove_file(d.join("slow.wasm")).unwrap();
        let t = Instant::now();
        let u = loop {
            if let Some(u) = l.poll() {
                break u;
            }
            assert!(t.elapsed() < Duration::from_secs(30), "no reload");
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(u.catalog.loading.is_empty());
        assert!(u.catalog.get("other").is_some());
        assert!(Arc::ptr_eq(&u.catalog.get("calm").unwrap().effect, &calm));
        assert!(u.catalog.refusal("sloth").is_none());
    }
}
