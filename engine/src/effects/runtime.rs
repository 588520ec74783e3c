//! Running effects in wasmtime: one engine, modules checked against the ABI before use,
//! compiled modules cached on disk, and instances that run each call under a time budget
//! (epoch interruption) with their memory capped (store limits).

use super::descriptor::{self, Descriptor};
use std::path::{Path, PathBuf};
use std::time::Duration;
use wasmtime::{
    Config, Engine, Instance as WasmInstance, Linker, Memory, Module, Store, StoreLimits,
    StoreLimitsBuilder, Trap, TypedFunc, ValType,
};

/// Epoch ticks per second: a time budget is honoured to within one tick.
const TICK: Duration = Duration::from_millis(5);

/// A budget as epoch ticks (rounded up, at least one).
fn ticks(b: Duration) -> u64 {
    (b.as_nanos() / TICK.as_nanos()) as u64 + 1
}

/// Limits for one instance (effects/ABI.md, section 4).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// The least time a call gets. `sluice_process` gets [`REALTIME_FACTOR`] times the
    /// block's duration when that is more.
    pub time_budget: Duration,
    /// What `sluice_init` (and instantiation) gets.
    pub init_budget: Duration,
    /// The most linear memory the instance may have.
    pub memory_bytes: usize,
}

impl Limits {
    /// The limits an effect step asks for: the defaults, with what the step sets.
    pub fn for_step(step: &sluice_core::render::steps::EffectStep) -> Limits {
        let mut limits = Limits::default();
        if let Some(ms) = step.time_budget_ms {
            limits.time_budget = Duration::from_millis(ms);
        }
        if let Some(mb) = step.memory_mb {
            limits.memory_bytes = usize::try_from(mb).map_or(usize::MAX, |mb| mb << 20);
        }
        limits
    }
}

/// A block may take this many times its own duration.
pub const REALTIME_FACTOR: f64 = 10.0;

/// The most latency an effect may report, in seconds (effects/ABI.md, section 3): more is
/// refused, since it cannot be clamped without misaligning the output (a look-ahead limiter
/// needs milliseconds, a linear-phase filter a fraction of a second).
pub const MAX_LATENCY_SECONDS: u32 = 1;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            time_budget: Duration::from_millis(50),
            init_budget: Duration::from_secs(5),
            memory_bytes: 256 << 20,
        }
    }
}

/// Why an effect could not be loaded or run. The message names the effect.
#[derive(Debug, Clone, thiserror::Error)]
#[error("effect {effect}: {message}")]
pub struct EffectError {
    pub effect: String,
    pub message: String,
}

impl EffectError {
    pub fn new(effect: &str, message: impl Into<String>) -> Self {
        EffectError {
            effect: effect.to_string(),
            message: message.into(),
        }
    }
}

/// The engine every effect runs on, its epoch ticker, and the compiled-module cache.
#[derive(Clone)]
pub struct Runtime {
    engine: Engine,
    cache: Option<PathBuf>,
}

impl Runtime {
    /// A runtime whose compiled modules are cached in `cache` (none: compile every time).
    pub fn new(cache: Option<PathBuf>) -> anyhow::Result<Runtime> {
        let mut config = Config::new();
        config.epoch_interruption(true);
        config.cranelift_opt_level(wasmtime::OptLevel::Speed);
        if address_space_limited() {
            // By default each linear memory reserves 4 GiB of address space plus guards, so
            // that compiled code needs no bounds checks. Under an address-space limit
            // (`ulimit -v`, as containers and shared hosts set it) one such reservation
            // already fails: reserve only what a memory holds plus room to grow, and let
            // the compiled code check its bounds instead (slower, but it runs).
            config
                .memory_reservation(0)
                .memory_reservation_for_growth(16 << 20)
                .memory_guard_size(64 << 10)
                .guard_before_linear_memory(false);
        }
        let engine = Engine::new(&config)?;
        let weak = engine.weak();
        std::thread::Builder::new()
            .name("sluice-epoch".into())
            .spawn(move || {
                while let Some(e) = weak.upgrade() {
                    e.increment_epoch();
                    drop(e);
                    std::thread::sleep(TICK);
                }
            })?;
        Ok(Runtime { engine, cache })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Check `bytes` against the ABI and compile it (or take it from the cache).
    pub fn load(&self, origin: &str, bytes: &[u8]) -> Result<Effect, EffectError> {
        let section =
            descriptor::find_section(bytes).map_err(|m| EffectError::new(origin, m.to_string()))?;
        let desc =
            Descriptor::parse(section).map_err(|m| EffectError::new(origin, m.to_string()))?;
        let name = desc.name.clone();
        let err = |e: ModuleError| EffectError::new(&name, e.to_string());
        let hash = blake3::hash(bytes).to_hex().to_string();
        let module = self.compile(bytes, &hash).map_err(err)?;
        check_imports(&module).map_err(err)?;
        let (has_latency, has_data) = check_exports(&module).map_err(err)?;
        if !desc.data.is_empty() && !has_data {
            return Err(err(ModuleError::Missing("sluice_data")));
        }
        Ok(Effect {
            descriptor: desc,
            module,
            hash,
            has_latency,
        })
    }

    fn compile(&self, bytes: &[u8], hash: &str) -> Result<Module, ModuleError> {
        let compile =
            || Module::new(&self.engine, bytes).map_err(|e| ModuleError::Compile(format!("{e:#}")));
        let Some(dir) = &self.cache else {
            return compile();
        };
        // Keyed by the module's content and by what the engine can load (its version and
        // configuration).
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.engine.precompile_compatibility_hash().hash(&mut h);
        let path = dir.join(format!("{}-{:016x}.cwasm", &hash[..32], h.finish()));
        // Read into memory rather than mapped (`deserialize_file`): a mapped file that someone
        // truncates while the module runs would crash the host with SIGBUS.
        if let Ok(bytes) = std::fs::read(&path) {
            // SAFETY: the file was written by `Module::serialize` of this engine configuration
            // into the root's private state folder; a file that does not match is refused
            // by wasmtime's own header checks and compiled again below.
            if let Ok(m) = unsafe { Module::deserialize(&self.engine, &bytes) } {
                return Ok(m);
            }
        }
        let m = compile()?;
        if let Ok(bytes) = m.serialize()
            && std::fs::create_dir_all(dir).is_ok()
            && let Err(e) = sluice_core::io::AtomicFile::write(&path, &bytes)
        {
            tracing::warn!("cannot cache the compiled effect: {e}");
        }
        Ok(m)
    }
}

/// Whether this process's address space is limited (`RLIMIT_AS` is not infinite).
fn address_space_limited() -> bool {
    #[cfg(unix)]
    {
        let mut l = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit only writes the struct we pass, which lives across the call.
        let rc = unsafe { libc::getrlimit(libc::RLIMIT_AS, &mut l) };
        rc == 0 && l.rlim_cur != libc::RLIM_INFINITY
    }
    #[cfg(not(unix))]
    {
        false
    }
}

/// A module that passed the checks, compiled.
#[derive(Clone)]
pub struct Effect {
    pub descriptor: Descriptor,
    module: Module,
    /// BLAKE3 of the module's bytes.
    pub hash: String,
    has_latency: bool,
}

impl std::fmt::Debug for Effect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Effect")
            .field("name", &self.descriptor.name)
            .field("hash", &self.hash)
            .finish()
    }
}

fn sig(t: &wasmtime::FuncType) -> String {
    let list = |v: &mut dyn Iterator<Item = ValType>| {
        v.map(|t| match t {
            ValType::I32 => "i32",
            ValType::I64 => "i64",
            ValType::F32 => "f32",
            ValType::F64 => "f64",
            _ => "?",
        })
        .collect::<Vec<_>>()
        .join(", ")
    };
    format!(
        "({}) -> ({})",
        list(&mut t.params()),
        list(&mut t.results())
    )
}

/// Why a module's code is refused (effects/ABI.md): it does not compile, or its imports and
/// exports are not the ABI's.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ModuleError {
    #[error("not a valid WebAssembly module: {0}")]
    Compile(String),
    #[error(
        "imports {module}.{name}, which the sandbox does not grant (only sluice.log(i32, i32) is allowed)"
    )]
    Import { module: String, name: String },
    #[error("does not export its memory as \"memory\"")]
    NoMemory,
    #[error("does not export {0}")]
    Missing(&'static str),
    #[error("exports {0}, but not as a function")]
    NotAFunction(&'static str),
    #[error("exports {name} as {got}; the ABI says {want}")]
    Signature {
        name: &'static str,
        got: String,
        want: String,
    },
}

/// The only import an effect may have is `sluice.log(i32, i32)`.
fn check_imports(m: &Module) -> Result<(), ModuleError> {
    for i in m.imports() {
        let ok = i.module() == "sluice"
            && i.name() == "log"
            && i.ty().func().is_some_and(|f| sig(f) == "(i32, i32) -> ()");
        if !ok {
            return Err(ModuleError::Import {
                module: i.module().to_string(),
                name: i.name().to_string(),
            });
        }
    }
    Ok(())
}

/// The exports the ABI requires, with their signatures. Returns whether the optional
/// `sluice_latency` and `sluice_data` are there.
fn check_exports(m: &Module) -> Result<(bool, bool), ModuleError> {
    const REQUIRED: [(&str, &str); 5] = [
        ("sluice_init", "(i32, i32, i32) -> (i32)"),
        ("sluice_buffer", "(i32) -> (i32)"),
        ("sluice_set_param", "(i32, f32) -> (i32)"),
        ("sluice_process", "(i32) -> (i32)"),
        ("sluice_reset", "() -> ()"),
    ];
    if !m
        .exports()
        .any(|e| e.name() == "memory" && e.ty().memory().is_some())
    {
        return Err(ModuleError::NoMemory);
    }
    let func = |name: &str| {
        m.exports()
            .find(|e| e.name() == name)
            .map(|e| e.ty().func().map(sig))
    };
    for (name, want) in REQUIRED {
        match func(name) {
            None => return Err(ModuleError::Missing(name)),
            Some(None) => return Err(ModuleError::NotAFunction(name)),
            Some(Some(got)) if got != want => {
                return Err(ModuleError::Signature {
                    name,
                    got,
                    want: want.to_string(),
                });
            }
            _ => {}
        }
    }
    let optional = |name: &'static str, want: &str| match func(name) {
        None => Ok(false),
        Some(Some(s)) if s == want => Ok(true),
        Some(s) => Err(ModuleError::Signature {
            name,
            got: s.unwrap_or_else(|| "something else".into()),
            want: want.into(),
        }),
    };
    Ok((
        optional("sluice_latency", "() -> (i32)")?,
        optional("sluice_data", "(i32, i32, i32) -> (i32)")?,
    ))
}

struct Data {
    limits: StoreLimits,
    name: String,
    logged: usize,
}

/// One running instance of an effect: initialised for a sample rate, a channel count and a
/// largest block.
pub struct Instance {
    store: Store<Data>,
    memory: Memory,
    set_param_fn: TypedFunc<(i32, f32), i32>,
    process_fn: TypedFunc<i32, i32>,
    reset_fn: TypedFunc<(), ()>,
    buffers: Vec<usize>,
    max_frames: usize,
    latency_fn: Option<TypedFunc<(), i32>>,
    limits: Limits,
    sample_rate: u32,
    name: String,
}

/// A return code by its name (effects/ABI.md, section 3).
fn code_name(code: i32) -> String {
    let name = match code {
        1 => "ERR_SAMPLE_RATE",
        2 => "ERR_CHANNELS",
        3 => "ERR_FRAMES",
        4 => "ERR_MEMORY (it could not get the memory it needs within the cap)",
        5 => "ERR_STATE",
        6 => "ERR_PARAM_INDEX",
        7 => "ERR_PARAM_VALUE",
        8 => "ERR_UNSUPPORTED",
        _ => return format!("unknown error code {code}"),
    };
    format!("{name} ({code})")
}

/// What went wrong in a call, in words.
fn describe(e: &wasmtime::Error, limits: &Limits, budget: Duration, call: &str) -> String {
    let text = format!("{e:#}");
    match e.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => format!(
            "{call} ran past its time budget of {} ms and was stopped",
            budget.as_millis()
        ),
        _ if text.contains("memory growth failure") || text.contains("exceeds memory limits") => {
            format!(
                "{call}: the effect wants more memory than its cap of {} MB",
                limits.memory_bytes >> 20
            )
        }
        Some(t) => format!("{call} trapped: {t}"),
        None => format!("{call} failed: {text}"),
    }
}

/// A store for one instance: its memory and tables capped, time measured in epochs.
fn sandbox(rt: &Runtime, name: &str, limits: &Limits) -> Store<Data> {
    let data = Data {
        limits: StoreLimitsBuilder::new()
            .memory_size(limits.memory_bytes)
            .memories(1)
            .tables(4)
            .table_elements(100_000)
            .instances(1)
            .trap_on_grow_failure(false)
            .build(),
        name: name.to_string(),
        logged: 0,
    };
    let mut store = Store::new(rt.engine(), data);
    store.limiter(|d| &mut d.limits);
    store.epoch_deadline_trap();
    store
}

/// What an effect may import: `sluice.log` (its first 100 lines, each up to 1 kB with control
/// characters removed, logged under the effect's name).
fn host_functions(rt: &Runtime) -> wasmtime::Result<Linker<Data>> {
    let mut linker = Linker::new(rt.engine());
    linker.func_wrap(
        "sluice",
        "log",
        |mut caller: wasmtime::Caller<'_, Data>, ptr: i32, len: i32| {
            if caller.data().logged >= 100 {
                return;
            }
            caller.data_mut().logged += 1;
            let Some(mem) = caller
                .get_export("memory")
                .and_then(wasmtime::Extern::into_memory)
            else {
                return;
            };
            let data = mem.data(&caller);
            let (p, n) = (ptr as u32 as usize, (len as u32 as usize).min(1024));
            if let Some(bytes) = data.get(p..p.saturating_add(n)) {
                let text: String = String::from_utf8_lossy(bytes)
                    .chars()
                    .filter(|c| !c.is_control())
                    .collect();
                tracing::info!(effect = %caller.data().name, "{text}");
            }
        },
    )?;
    Ok(linker)
}

/// Hands the effect its data through `sluice_data` (before `sluice_init`): each slot's audio
/// checked against the descriptor, room asked for, the address checked (aligned, inside the
/// memory, apart from the other slots'), the samples written there.
fn give_data(
    store: &mut Store<Data>,
    instance: &WasmInstance,
    memory: &Memory,
    d: &Descriptor,
    sample_rate: u32,
    data: &[&[Vec<f32>]],
    limits: &Limits,
) -> Result<(), String> {
    if data.len() != d.data.len() {
        let missing: Vec<&str> = d.data[data.len().min(d.data.len())..]
            .iter()
            .map(|s| s.id.as_str())
            .collect();
        return Err(if data.len() < d.data.len() {
            format!(
                "needs its data {} (data = {{ {} = \"file\" }} in the step)",
                missing.join(", "),
                missing[0]
            )
        } else {
            format!(
                "given {} data slots; it declares {}",
                data.len(),
                d.data.len()
            )
        });
    }
    if data.is_empty() {
        return Ok(());
    }
    let f = instance
        .get_func(&mut *store, "sluice_data")
        .ok_or("does not export sluice_data")?
        .typed::<(i32, i32, i32), i32>(&*store)
        .map_err(|e| e.to_string())?;
    let mut taken: Vec<(usize, usize)> = Vec::new();
    for (slot, (spec, planes)) in d.data.iter().zip(data).enumerate() {
        let frames = planes.first().map_or(0, Vec::len);
        let most = (spec.max_seconds * f64::from(sample_rate)).ceil() as usize;
        if planes.is_empty()
            || planes.len() > spec.max_channels as usize
            || frames == 0
            || frames > most
            || planes.iter().any(|p| p.len() != frames)
        {
            return Err(format!(
                "data {}: takes 1 to {} channel(s) of up to {} s; given {} channel(s) of {frames} frames at {sample_rate} Hz",
                spec.id,
                spec.max_channels,
                spec.max_seconds,
                planes.len()
            ));
        }
        let bytes = planes.len() * frames * 4;
        store.set_epoch_deadline(ticks(limits.init_budget));
        let addr = f
            .call(
                &mut *store,
                (slot as i32, planes.len() as i32, frames as i32),
            )
            .map_err(|e| describe(&e, limits, limits.init_budget, "sluice_data"))?
            as u32 as usize;
        if addr == 0 {
            return Err(format!(
                "data {}: sluice_data refused {} channel(s) of {frames} frames ({} MB; its memory cap is {} MB)",
                spec.id,
                planes.len(),
                bytes >> 20,
                limits.memory_bytes >> 20
            ));
        }
        let end = addr.saturating_add(bytes);
        if !addr.is_multiple_of(16) || end > memory.data_size(&*store) {
            return Err(format!(
                "data {}: sluice_data gave address {addr}, which is not a 16-byte aligned room of {bytes} bytes inside its memory",
                spec.id
            ));
        }
        if taken.iter().any(|&(a, e)| addr < e && a < end) {
            return Err(format!(
                "data {}: sluice_data gave room overlapping another slot's",
                spec.id
            ));
        }
        taken.push((addr, end));
        let mem = memory.data_mut(&mut *store);
        for (c, p) in planes.iter().enumerate() {
            let at = addr + c * frames * 4;
            write_floats(&mut mem[at..at + frames * 4], p);
        }
    }
    Ok(())
}

/// Each channel's buffer as the effect gives it (`sluice_buffer`): refused unless each is a
/// 16-byte aligned buffer of `max_frames` samples inside its memory, none overlapping another.
fn channel_buffers(
    store: &mut Store<Data>,
    buffer: &TypedFunc<i32, i32>,
    memory: &Memory,
    channels: usize,
    max_frames: usize,
    limits: &Limits,
) -> Result<Vec<usize>, String> {
    let mut buffers = Vec::with_capacity(channels);
    for ch in 0..channels {
        store.set_epoch_deadline(ticks(limits.time_budget));
        let addr = buffer
            .call(&mut *store, ch as i32)
            .map_err(|e| describe(&e, limits, limits.time_budget, "sluice_buffer"))?
            as u32 as usize;
        let end = addr + max_frames * 4;
        if addr == 0 || !addr.is_multiple_of(16) || end > memory.data_size(&*store) {
            return Err(format!(
                "gave buffer address {addr} for channel {ch}, which is not a 16-byte aligned {max_frames}-sample f32 buffer inside its memory"
            ));
        }
        if let Some(prev) = buffers
            .iter()
            .find(|&&b: &&usize| addr < b + max_frames * 4 && b < end)
        {
            return Err(format!(
                "gave overlapping buffers ({prev} and {addr}) for different channels"
            ));
        }
        buffers.push(addr);
    }
    Ok(buffers)
}

impl Instance {
    /// An instance of an effect that takes no data (or is given none: one that declares data
    /// slots then refuses to start, see [`Instance::with_data`]).
    pub fn new(
        rt: &Runtime,
        effect: &Effect,
        sample_rate: u32,
        channels: usize,
        max_frames: usize,
        limits: Limits,
    ) -> Result<Instance, EffectError> {
        Self::with_data(rt, effect, sample_rate, channels, max_frames, limits, &[])
    }

    /// An instance given audio for its data slots before `sluice_init` (effects/ABI.md,
    /// section 3): `data[slot]` holds one plane per channel, all of one length, already at
    /// `sample_rate`. Every slot the descriptor declares must be given.
    pub fn with_data(
        rt: &Runtime,
        effect: &Effect,
        sample_rate: u32,
        channels: usize,
        max_frames: usize,
        limits: Limits,
        data: &[&[Vec<f32>]],
    ) -> Result<Instance, EffectError> {
        let d = &effect.descriptor;
        let name = d.name.clone();
        let err = |m: String| EffectError::new(&name, m);
        if channels == 0 || channels > d.max_channels as usize {
            return Err(err(format!(
                "takes 1 to {} channels; this signal has {channels}",
                d.max_channels
            )));
        }
        let mut store = sandbox(rt, &name, &limits);
        let linker = host_functions(rt).map_err(|e| err(format!("{e:#}")))?;
        // Instantiation runs the module's start function, if any: under the budget too.
        store.set_epoch_deadline(ticks(limits.init_budget));
        let instance: WasmInstance = linker
            .instantiate(&mut store, &effect.module)
            .map_err(|e| err(describe(&e, &limits, limits.init_budget, "instantiation")))?;
        let memory = instance
            .get_memory(&mut store, "memory")
            .ok_or_else(|| err("has no memory".into()))?;
        let typed = |store: &mut Store<Data>, n: &str| {
            instance
                .get_func(&mut *store, n)
                .ok_or_else(|| err(format!("does not export {n}")))
        };
        let init = typed(&mut store, "sluice_init")?
            .typed::<(i32, i32, i32), i32>(&store)
            .map_err(|e| err(e.to_string()))?;
        let buffer = typed(&mut store, "sluice_buffer")?
            .typed::<i32, i32>(&store)
            .map_err(|e| err(e.to_string()))?;
        let set_param_fn = typed(&mut store, "sluice_set_param")?
            .typed::<(i32, f32), i32>(&store)
            .map_err(|e| err(e.to_string()))?;
        let process_fn = typed(&mut store, "sluice_process")?
            .typed::<i32, i32>(&store)
            .map_err(|e| err(e.to_string()))?;
        let reset_fn = typed(&mut store, "sluice_reset")?
            .typed::<(), ()>(&store)
            .map_err(|e| err(e.to_string()))?;

        give_data(
            &mut store,
            &instance,
            &memory,
            d,
            sample_rate,
            data,
            &limits,
        )
        .map_err(err)?;

        // Initialisation allocates and prepares: it gets a budget of its own.
        store.set_epoch_deadline(ticks(limits.init_budget));
        let code = init
            .call(
                &mut store,
                (sample_rate as i32, channels as i32, max_frames as i32),
            )
            .map_err(|e| err(describe(&e, &limits, limits.init_budget, "sluice_init")))?;
        if code != 0 {
            return Err(err(format!(
                "cannot run at {sample_rate} Hz with {channels} channel(s) and blocks of {max_frames}: sluice_init returned {}",
                code_name(code)
            )));
        }
        let buffers = channel_buffers(&mut store, &buffer, &memory, channels, max_frames, &limits)
            .map_err(err)?;
        let latency_fn = match effect.has_latency {
            true => Some(
                typed(&mut store, "sluice_latency")?
                    .typed::<(), i32>(&store)
                    .map_err(|e| err(e.to_string()))?,
            ),
            false => None,
        };
        Ok(Instance {
            store,
            memory,
            set_param_fn,
            process_fn,
            reset_fn,
            buffers,
            max_frames,
            latency_fn,
            limits,
            sample_rate,
            name,
        })
    }

    fn err(&self, m: String) -> EffectError {
        EffectError::new(&self.name, m)
    }

    fn arm(&mut self) {
        self.arm_for(self.limits.time_budget);
    }

    fn arm_for(&mut self, budget: Duration) {
        let t = ticks(budget);
        self.store.set_epoch_deadline(t);
    }

    /// Latency in frames at the initialised rate, with the parameters as now set.
    pub fn latency(&mut self) -> Result<usize, EffectError> {
        let Some(f) = self.latency_fn.clone() else {
            return Ok(0);
        };
        self.arm();
        let l = f
            .call(&mut self.store, ())
            .map_err(|e| self.failed(&e, "sluice_latency"))?;
        let max = self.sample_rate as i32 * MAX_LATENCY_SECONDS as i32;
        if !(0..=max).contains(&l) {
            return Err(self.err(format!(
                "reports a latency of {l} frames ({:.2} s at {} Hz); the host accepts 0 to at most {MAX_LATENCY_SECONDS} s",
                f64::from(l) / f64::from(self.sample_rate),
                self.sample_rate
            )));
        }
        Ok(l as usize)
    }

    pub fn max_frames(&self) -> usize {
        self.max_frames
    }

    /// A call that failed under the per-call budget, in words.
    fn failed(&self, e: &wasmtime::Error, call: &str) -> EffectError {
        self.err(describe(e, &self.limits, self.limits.time_budget, call))
    }

    /// `sluice_set_param`'s return code.
    fn set_param_code(&mut self, index: usize, value: f32) -> Result<i32, EffectError> {
        self.arm();
        self.set_param_fn
            .call(&mut self.store, (index as i32, value))
            .map_err(|e| self.failed(&e, "sluice_set_param"))
    }

    pub fn set_param(&mut self, index: usize, value: f64) -> Result<(), EffectError> {
        let code = self.set_param_code(index, value as f32)?;
        if code != 0 {
            return Err(self.err(format!(
                "refused parameter {index} = {value}: sluice_set_param returned {}",
                code_name(code)
            )));
        }
        Ok(())
    }

    /// Whether the effect refuses a parameter index (the check for a lying descriptor).
    pub fn refuses_param(&mut self, index: usize) -> Result<bool, EffectError> {
        Ok(self.set_param_code(index, 0.0)? != 0)
    }

    pub fn reset(&mut self) -> Result<(), EffectError> {
        self.arm();
        self.reset_fn
            .call(&mut self.store, ())
            .map_err(|e| self.failed(&e, "sluice_reset"))
    }

    /// Process `planes` (one per channel, equal lengths up to `max_frames`) in place: written
    /// straight into the effect's buffers, processed there, read back. Non-finite output is
    /// an error.
    pub fn process(&mut self, planes: &mut [&mut [f32]]) -> Result<(), EffectError> {
        let frames = planes.first().map_or(0, |p| p.len());
        if frames == 0 {
            return Ok(());
        }
        assert!(frames <= self.max_frames && planes.len() == self.buffers.len());
        {
            let mem = self.memory.data_mut(&mut self.store);
            for (p, &addr) in planes.iter().zip(&self.buffers) {
                write_floats(&mut mem[addr..addr + frames * 4], p);
            }
        }
        let budget = self.limits.time_budget.max(Duration::from_secs_f64(
            frames as f64 / f64::from(self.sample_rate) * REALTIME_FACTOR,
        ));
        self.arm_for(budget);
        let code = self
            .process_fn
            .call(&mut self.store, frames as i32)
            .map_err(|e| self.err(describe(&e, &self.limits, budget, "sluice_process")))?;
        if code != 0 {
            return Err(self.err(format!("sluice_process returned {}", code_name(code))));
        }
        let mem = self.memory.data(&self.store);
        for (ch, (p, &addr)) in planes.iter_mut().zip(&self.buffers).enumerate() {
            let src = mem
                .get(addr..addr + frames * 4)
                .ok_or_else(|| self.err("its memory shrank".into()))?;
            // The position of a non-finite value is looked for only on failure.
            if !read_floats(src, p) {
                let (i, v) = p
                    .iter()
                    .enumerate()
                    .find(|(_, v)| !v.is_finite())
                    .expect("a non-finite value");
                return Err(self.err(format!(
                    "produced {v} (channel {ch}, frame {i} of the block): output must be finite"
                )));
            }
        }
        Ok(())
    }
}

/// Guest memory (little-endian `f32`s at a 4-byte aligned address) from `src`. On a
/// little-endian host a plain copy.
fn write_floats(dst: &mut [u8], src: &[f32]) {
    #[cfg(target_endian = "little")]
    {
        // SAFETY: every bit pattern is a valid f32; `align_to_mut` puts only the aligned
        // middle in `floats`, and its layout equals the guest's little-endian floats.
        let (head, floats, _) = unsafe { dst.align_to_mut::<f32>() };
        if head.is_empty() && floats.len() >= src.len() {
            floats[..src.len()].copy_from_slice(src);
            return;
        }
    }
    for (d, s) in dst.chunks_exact_mut(4).zip(src) {
        d.copy_from_slice(&s.to_le_bytes());
    }
}

/// `dst` from guest memory (see [`write_floats`]).
/// Returns whether every value read is finite (checked in the same pass as the copy: for the
/// cheapest effects the copies and the check cost as much as the effect).
fn read_floats(src: &[u8], dst: &mut [f32]) -> bool {
    #[cfg(target_endian = "little")]
    {
        // SAFETY: as in `write_floats`.
        let (head, floats, _) = unsafe { src.align_to::<f32>() };
        if head.is_empty() && floats.len() >= dst.len() {
            let (mut finite, n) = (true, dst.len());
            for (d, &s) in dst.iter_mut().zip(&floats[..n]) {
                *d = s;
                finite &= s.is_finite();
            }
            return finite;
        }
    }
    let mut finite = true;
    for (d, s) in dst.iter_mut().zip(src.chunks_exact(4)) {
        *d = f32::from_le_bytes([s[0], s[1], s[2], s[3]]);
        finite &= d.is_finite();
    }
    finite
}

/// The largest effect module file read, bytes.
const MAX_MODULE_BYTES: u64 = 64 << 20;

/// Why a module file could not be read ([`read_module`]).
#[derive(Debug, thiserror::Error)]
pub enum ReadModuleError {
    /// The file could not be examined or read.
    #[error("{}: {error}", .path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    /// The file is larger than an effect module may be.
    #[error(
        "{}: {} MB is too large for an effect module (at most {} MB)",
        .path.display(),
        .bytes >> 20,
        MAX_MODULE_BYTES >> 20
    )]
    TooLarge { path: PathBuf, bytes: u64 },
    /// A FIFO (whose read would block), a device (whose read may not end), a folder.
    #[error("{}: not a regular file", .path.display())]
    NotAFile { path: PathBuf },
}

/// Read a module from a file, refusing giant files (and what is not a file) before reading
/// them.
pub fn read_module(path: &Path) -> Result<Vec<u8>, ReadModuleError> {
    let io = |error| ReadModuleError::Io {
        path: path.to_path_buf(),
        error,
    };
    let m = std::fs::metadata(path).map_err(io)?;
    if !m.is_file() {
        return Err(ReadModuleError::NotAFile {
            path: path.to_path_buf(),
        });
    }
    if m.len() > MAX_MODULE_BYTES {
        return Err(ReadModuleError::TooLarge {
            path: path.to_path_buf(),
            bytes: m.len(),
        });
    }
    std::fs::read(path).map_err(io)
}
