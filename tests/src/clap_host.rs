//! A small CLAP host on clack-host 0.2 that drives a built plugin the way a DAW does.
//!
//! Threads, as CLAP specifies them: the instance is created, configured, activated, saved and
//! restored on the thread that owns the [`ClapHost`] (the host's main thread; clack makes
//! `PluginInstance` `!Send` to enforce it). Each [`ClapHost::process`] call moves the activated
//! processor to an audio thread of its own (`std::thread::scope`), starts processing there,
//! runs the blocks, stops processing and hands the processor back, as a host's audio engine
//! does. nice-plug tells the main thread by the id of the thread that created the instance
//! (this host offers no `thread-check` extension), so that thread must stay the owner.
//!
//! The host offers the `params` and `state` host extensions (counting rescans, flush requests
//! and dirty marks so tests can see them) and answers main-thread callback requests after each
//! `process` call.

use crate::{Transport, block_lengths, diagnostics};
use anyhow::{Context, Result, anyhow, bail, ensure};
use clack_extensions::audio_ports::{AudioPortInfoBuffer, PluginAudioPorts};
use clack_extensions::audio_ports_config::{AudioPortsConfigBuffer, PluginAudioPortsConfig};
use clack_extensions::params::{
    HostParams, HostParamsImplMainThread, HostParamsImplShared, ParamClearFlags, ParamInfoBuffer,
    ParamRescanFlags, PluginParams,
};
use clack_extensions::render::{PluginRender, RenderMode};
use clack_extensions::state::{HostState, HostStateImpl, PluginState};
use clack_host::events::EventFlags;
use clack_host::events::event_types::{ParamValueEvent, TransportEvent, TransportFlags};
use clack_host::prelude::*;
use clack_host::utils::FixedPoint;
use libloading::Library;
use std::cell::Cell;
use std::ffi::CString;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

pub use clack_host::process::ProcessStatus;

/// Written into the output buffers before every block, so a plugin that leaves an output
/// untouched cannot pass for a pass-through. A quiet NaN with a recognisable payload.
pub const OUTPUT_SENTINEL: f32 = f32::from_bits(0x7FC0_5EED);

/// The host's callbacks that may come from any thread.
#[derive(Default)]
pub struct Shared {
    callback_requested: AtomicBool,
    restart_requests: AtomicU32,
    process_requests: AtomicU32,
    flush_requests: AtomicU32,
}

impl SharedHandler<'_> for Shared {
    fn request_restart(&self) {
        self.restart_requests.fetch_add(1, Ordering::SeqCst);
    }
    fn request_process(&self) {
        self.process_requests.fetch_add(1, Ordering::SeqCst);
    }
    fn request_callback(&self) {
        self.callback_requested.store(true, Ordering::SeqCst);
    }
}

impl HostParamsImplShared for Shared {
    fn request_flush(&self) {
        self.flush_requests.fetch_add(1, Ordering::SeqCst);
    }
}

/// The host's main-thread callbacks.
#[derive(Default)]
pub struct MainThread {
    rescans: Cell<u32>,
    dirty_marks: Cell<u32>,
}

impl MainThreadHandler<'_> for MainThread {}

impl HostParamsImplMainThread for MainThread {
    fn rescan(&self, _flags: ParamRescanFlags) {
        self.rescans.set(self.rescans.get() + 1);
    }
    fn clear(&self, _param_id: ClapId, _flags: ParamClearFlags) {}
}

impl HostStateImpl for MainThread {
    fn mark_dirty(&self) {
        self.dirty_marks.set(self.dirty_marks.get() + 1);
    }
}

pub struct TestHost;

impl HostHandlers for TestHost {
    type Shared<'a> = Shared;
    type MainThread<'a> = MainThread;
    type AudioProcessor<'a> = ();

    fn declare_extensions(builder: &mut HostExtensions<Self>, _shared: &Self::Shared<'_>) {
        builder.register::<HostParams>().register::<HostState>();
    }
}

/// A parameter as the plugin describes it, with its current value. CLAP values are "plain":
/// nice-plug reports `[0, 1]` for continuous parameters and `[0, steps]` for stepped ones.
#[derive(Debug, Clone, PartialEq)]
pub struct ClapParam {
    pub id: u32,
    pub name: String,
    pub module: String,
    pub min: f64,
    pub max: f64,
    pub default: f64,
    pub value: f64,
    pub stepped: bool,
    pub automatable: bool,
}

/// What the plugin factory says about the plugin.
#[derive(Debug, Clone, PartialEq)]
pub struct ClapDescriptor {
    pub id: String,
    pub name: String,
    pub vendor: String,
    pub version: String,
    pub features: Vec<String>,
}

/// What the host's callbacks have seen so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Callbacks {
    pub param_rescans: u32,
    pub state_dirty_marks: u32,
    pub restart_requests: u32,
    pub process_requests: u32,
    pub flush_requests: u32,
}

#[derive(Debug, Clone, Copy)]
struct Active {
    sample_rate: f64,
    max_frames: u32,
}

/// One plugin instance in the CLAP host. Drop deactivates it (if active) and destroys it; the
/// library stays loaded for the life of the process.
pub struct ClapHost {
    // Field order is drop order: the processor goes back to the instance in `Drop`, then the
    // instance is destroyed, then the entry is released.
    processor: Option<StoppedPluginAudioProcessor<TestHost>>,
    instance: PluginInstance<TestHost>,
    entry: PluginEntry,
    library: &'static Library,
    path: PathBuf,
    params: Option<PluginParams>,
    state: Option<PluginState>,
    audio_ports: Option<PluginAudioPorts>,
    ports_config: Option<PluginAudioPortsConfig>,
    pending: Vec<ParamValueEvent>,
    active: Option<Active>,
    last_status: Option<ProcessStatus>,
    /// At most this many times real time (`None`: as fast as it goes).
    pace: Option<f64>,
    /// Frames processed so far: the `steady_time` of the next block (it never goes back).
    steady_time: u64,
}

/// Loads the `.clap` at `path` and creates an instance of `plugin_id` with the host handlers `H`
/// (`host_name` is what the plugin is told the host is called): our own handle on the library,
/// the CLAP entry, the instance.
///
/// Our handle comes first: it keeps the library mapped for good (clack closes its handle when the
/// last entry goes), and it is the same handle clack gets, so the diagnostics symbol sees the
/// statics of the instance created here.
pub fn instantiate<H, FS, FH>(
    path: &Path,
    plugin_id: &str,
    host_name: &str,
    shared: FS,
    main_thread: FH,
) -> Result<(&'static Library, PluginEntry, PluginInstance<H>)>
where
    H: HostHandlers,
    FS: for<'b> FnOnce(&'b ()) -> <H as HostHandlers>::Shared<'b>,
    FH: for<'b> FnOnce(&'b <H as HostHandlers>::Shared<'b>) -> <H as HostHandlers>::MainThread<'b>,
{
    let library = diagnostics::library(path)?;
    // SAFETY: loading a CLAP entry runs plugin code; that is what a host does.
    let entry = unsafe { PluginEntry::load(path) }
        .map_err(|e| anyhow!("loading the CLAP entry of {}: {e}", path.display()))?;
    let host_info = HostInfo::new(
        host_name,
        "Sluice",
        "https://github.com/sluice-audio/sluice",
        env!("CARGO_PKG_VERSION"),
    )
    .map_err(|e| anyhow!("host info: {e}"))?;
    let id = CString::new(plugin_id).context("the plugin id contains a NUL")?;
    let instance = PluginInstance::<H>::new(shared, main_thread, &entry, &id, &host_info)
        .map_err(|e| anyhow!("creating {plugin_id} from {}: {e}", path.display()))?;
    Ok((library, entry, instance))
}

/// `activate` for blocks of 1 to `max_frames` frames at `sample_rate` (both test hosts).
pub fn activate<H>(
    instance: &mut PluginInstance<H>,
    sample_rate: f64,
    max_frames: u32,
) -> Result<StoppedPluginAudioProcessor<H>>
where
    H: for<'a> HostHandlers<AudioProcessor<'a> = ()>,
{
    instance
        .activate(
            |_, _| (),
            PluginAudioConfiguration {
                sample_rate,
                min_frames_count: 1,
                max_frames_count: max_frames,
            },
        )
        .map_err(|e| anyhow!("activate({sample_rate} Hz, max {max_frames}): {e}"))
}

/// `params.get_info(index)` and the value: `None` when the plugin says there is no such
/// parameter (as it must for an index past the end).
pub fn param_info(
    ext: PluginParams,
    handle: &PluginMainThreadHandle,
    index: u32,
) -> Result<Option<ClapParam>> {
    let mut buf = ParamInfoBuffer::new();
    let Some(info) = ext.get_info(handle, index, &mut buf) else {
        return Ok(None);
    };
    let value = ext
        .get_value(handle, info.id)
        .with_context(|| format!("params.get_value({}) failed", info.id))?;
    Ok(Some(ClapParam {
        id: info.id.get(),
        name: String::from_utf8_lossy(info.name).into_owned(),
        module: String::from_utf8_lossy(info.module).into_owned(),
        min: info.min_value,
        max: info.max_value,
        default: info.default_value,
        value,
        stepped: info
            .flags
            .contains(clack_extensions::params::ParamInfoFlags::IS_STEPPED),
        automatable: info
            .flags
            .contains(clack_extensions::params::ParamInfoFlags::IS_AUTOMATABLE),
    }))
}

/// A parameter's current value (`params.get_value`).
pub fn param_value(ext: PluginParams, handle: &PluginMainThreadHandle, id: u32) -> Result<f64> {
    let id = ClapId::from_raw(id).context("invalid CLAP id")?;
    ext.get_value(handle, id)
        .with_context(|| format!("params.get_value({id}) failed"))
}

impl ClapHost {
    /// Loads the `.clap` at `path` and creates an instance of `plugin_id`.
    pub fn load(path: &Path, plugin_id: &str) -> Result<Self> {
        let (library, entry, mut instance) = instantiate::<TestHost, _, _>(
            path,
            plugin_id,
            "sluice-tests",
            |_| Shared::default(),
            |_| MainThread::default(),
        )?;
        let handle = instance.plugin_handle();
        let params = handle.get_extension::<PluginParams>();
        let state = handle.get_extension::<PluginState>();
        let audio_ports = handle.get_extension::<PluginAudioPorts>();
        let ports_config = handle.get_extension::<PluginAudioPortsConfig>();
        Ok(ClapHost {
            processor: None,
            instance,
            entry,
            library,
            path: path.to_path_buf(),
            params,
            state,
            audio_ports,
            ports_config,
            pending: Vec::new(),
            active: None,
            last_status: None,
            pace: None,
            steady_time: 0,
        })
    }

    /// Processes at most `speed` times real time from now on (`None`: as fast as it goes).
    pub fn set_pace(&mut self, speed: Option<f64>) {
        self.pace = speed;
    }

    /// The render extension (before `start`): offline, faster than real time as a bounce, or
    /// real time.
    pub fn set_render_offline(&mut self, offline: bool) -> Result<()> {
        let handle = self.instance.plugin_handle();
        let ext = handle
            .get_extension::<PluginRender>()
            .context("the plugin has no render extension")?;
        let mode = if offline {
            RenderMode::Offline
        } else {
            RenderMode::Realtime
        };
        ext.set(&handle, mode)
            .map_err(|_| anyhow!("render.set({mode:?}) was refused"))
    }

    /// The descriptors of every plugin the entry's factory lists.
    pub fn factory_descriptors(&self) -> Result<Vec<ClapDescriptor>> {
        let factory = self
            .entry
            .get_plugin_factory()
            .context("the entry has no plugin factory")?;
        Ok(factory.plugin_descriptors().map(describe).collect())
    }

    /// This instance's descriptor.
    pub fn descriptor(&self) -> Result<ClapDescriptor> {
        self.instance
            .plugin_shared_handle()
            .descriptor()
            .map(describe)
            .context("the instance has no descriptor")
    }

    fn params_ext(&self) -> Result<PluginParams> {
        self.params
            .context("the plugin does not implement the CLAP params extension")
    }

    /// Every parameter, in the plugin's order, with its current value.
    pub fn params(&mut self) -> Result<Vec<ClapParam>> {
        let ext = self.params_ext()?;
        let count = ext.count(&self.instance.plugin_handle());
        (0..count)
            .map(|i| {
                self.param_at(i)?
                    .with_context(|| format!("params.get_info({i}) failed"))
            })
            .collect()
    }

    /// `params.count`.
    pub fn param_count(&mut self) -> Result<u32> {
        let ext = self.params_ext()?;
        Ok(ext.count(&self.instance.plugin_handle()))
    }

    /// `params.get_info(index)` and the value: `None` when the plugin says there is no such
    /// parameter (as it must for an index past the end).
    pub fn param_at(&mut self, index: u32) -> Result<Option<ClapParam>> {
        let ext = self.params_ext()?;
        param_info(ext, &self.instance.plugin_handle(), index)
    }

    /// The parameter's current value (`params.get_value`).
    pub fn param_value(&mut self, id: u32) -> Result<f64> {
        let ext = self.params_ext()?;
        param_value(ext, &self.instance.plugin_handle(), id)
    }

    /// Sets a parameter with a `ParamValueEvent`. While the plugin is inactive the event goes
    /// through `params.flush` on this (main) thread at once; while active, it is delivered at
    /// the start of the next [`process`](Self::process) call, as automation is.
    pub fn set_param(&mut self, id: u32, value: f64) -> Result<()> {
        let clap_id = ClapId::from_raw(id).context("invalid CLAP id")?;
        let event = ParamValueEvent::new(0, clap_id, Pckn::match_all(), value);
        if self.processor.is_some() {
            self.pending.push(event);
            return Ok(());
        }
        let ext = self.params_ext()?;
        let mut handle = self
            .instance
            .inactive_plugin_handle()
            .context("the plugin is active without a processor")?;
        let events = [event];
        ext.flush(
            &mut handle,
            &InputEvents::from_buffer(&events),
            &mut OutputEvents::void(),
        );
        Ok(())
    }

    /// Selects the audio-ports configuration with `channels` in and out on the main ports
    /// (nice-plug offers one per `AUDIO_IO_LAYOUTS` entry; the first is the default), then checks
    /// the audio-ports extension reports it. Only while inactive.
    pub fn select_layout(&mut self, channels: u32) -> Result<()> {
        ensure!(
            self.processor.is_none(),
            "the audio-ports configuration can only change while inactive"
        );
        let ext = self
            .ports_config
            .context("the plugin does not implement audio-ports-config")?;
        let handle = self.instance.plugin_handle();
        let mut found = None;
        let mut offered = Vec::new();
        for i in 0..ext.count(&handle) {
            let mut buf = AudioPortsConfigBuffer::new();
            let Some(c) = ext.get(&handle, i, &mut buf) else {
                bail!("audio_ports_config.get({i}) failed");
            };
            let ins = c.main_input.as_ref().map_or(0, |p| p.channel_count);
            let outs = c.main_output.as_ref().map_or(0, |p| p.channel_count);
            offered.push(format!(
                "{} ({ins} in, {outs} out)",
                String::from_utf8_lossy(c.name)
            ));
            if found.is_none()
                && ins == channels
                && outs == channels
                && c.input_port_count == 1
                && c.output_port_count == 1
            {
                found = Some(c.id);
            }
        }
        let id = found.with_context(|| {
            format!("no audio-ports configuration with {channels} channels; offered: {offered:?}")
        })?;
        ext.select(&handle, id)
            .map_err(|e| anyhow!("audio_ports_config.select({id}): {e:?}"))?;
        let (ins, outs) = self.port_channels()?;
        ensure!(
            ins == [channels] && outs == [channels],
            "after selecting {channels} channels the audio ports report {ins:?} in, {outs:?} out"
        );
        Ok(())
    }

    /// The channel count of each input and output port (audio-ports extension).
    pub fn port_channels(&mut self) -> Result<(Vec<u32>, Vec<u32>)> {
        let ext = self
            .audio_ports
            .context("the plugin does not implement audio-ports")?;
        let handle = self.instance.plugin_handle();
        let mut sides = [Vec::new(), Vec::new()];
        for (side, is_input) in sides.iter_mut().zip([true, false]) {
            for i in 0..ext.count(&handle, is_input) {
                let mut buf = AudioPortInfoBuffer::new();
                let info = ext
                    .get(&handle, i, is_input, &mut buf)
                    .with_context(|| format!("audio_ports.get({i}, input: {is_input}) failed"))?;
                side.push(info.channel_count);
            }
        }
        let [ins, outs] = sides;
        Ok((ins, outs))
    }

    /// Activates the plugin for `sample_rate` and blocks of 1 to `max_frames` frames.
    pub fn activate(&mut self, sample_rate: f64, max_frames: u32) -> Result<()> {
        ensure!(self.processor.is_none(), "already active");
        self.processor = Some(activate(&mut self.instance, sample_rate, max_frames)?);
        self.active = Some(Active {
            sample_rate,
            max_frames,
        });
        Ok(())
    }

    /// Deactivates the plugin (a no-op when inactive).
    pub fn deactivate(&mut self) {
        if let Some(p) = self.processor.take() {
            self.instance.deactivate(p);
        }
        self.active = None;
        self.pending.clear();
    }

    pub fn is_active(&self) -> bool {
        self.processor.is_some()
    }

    /// Processes `input` (planar, one `Vec` per input channel, all the same length) in blocks
    /// of the sizes in `pattern` (repeated; the last block is cut to what is left), on an audio
    /// thread, and returns the output. The buffers are the host's own, sized for the activated
    /// maximum; outputs are filled with [`OUTPUT_SENTINEL`] before each block. With a transport,
    /// every block gets one (seconds timeline, playing or not); with `None` the plugin gets no
    /// transport at all. Parameter events set while active go with the first block.
    pub fn process(
        &mut self,
        input: &[Vec<f32>],
        pattern: &[usize],
        transport: Option<Transport>,
    ) -> Result<Vec<Vec<f32>>> {
        let active = self.active.context("process called while inactive")?;
        let (ins, outs) = self.port_channels()?;
        let in_channels = ins.first().copied().unwrap_or(0) as usize;
        let out_channels = outs.first().copied().unwrap_or(0) as usize;
        ensure!(
            input.len() == in_channels,
            "{} input channels given, the main input port has {in_channels}",
            input.len()
        );
        let frames = input.first().map_or(0, Vec::len);
        ensure!(
            input.iter().all(|c| c.len() == frames),
            "input channels differ in length"
        );
        let blocks = block_lengths(frames, pattern)?;
        ensure!(
            blocks.iter().all(|&n| n <= active.max_frames as usize),
            "a block of {pattern:?} is longer than the activated maximum {}",
            active.max_frames
        );
        let processor = self
            .processor
            .take()
            .context("process called while inactive")?;
        let events = std::mem::take(&mut self.pending);
        let job = AudioJob {
            input,
            blocks: &blocks,
            events: &events,
            transport,
            sample_rate: active.sample_rate,
            max_frames: active.max_frames as usize,
            out_channels,
            steady_start: self.steady_time,
            pace: self.pace,
        };
        let joined = std::thread::scope(|s| {
            std::thread::Builder::new()
                .name("clap-audio".into())
                .spawn_scoped(s, move || job.run(processor))
                .map(|t| t.join())
        });
        let (processor, result) = match joined {
            Ok(Ok(done)) => done,
            Ok(Err(panic)) => std::panic::resume_unwind(panic),
            Err(e) => bail!("could not start the audio thread: {e}"),
        };
        self.processor = Some(processor);
        self.steady_time += frames as u64;
        self.pump_main_thread();
        let (output, status) = result?;
        self.last_status = status;
        Ok(output)
    }

    /// The status the plugin returned for the last block processed.
    pub fn last_status(&self) -> Option<ProcessStatus> {
        self.last_status
    }

    /// Runs the plugin's main-thread callback if it asked for one (a host's event loop).
    pub fn pump_main_thread(&mut self) {
        let requested = self
            .instance
            .access_shared_handler(|s| s.callback_requested.swap(false, Ordering::SeqCst));
        if requested {
            self.instance.call_on_main_thread_callback();
        }
    }

    /// What the host's callbacks have seen.
    pub fn callbacks(&self) -> Callbacks {
        let (param_rescans, state_dirty_marks) = self
            .instance
            .access_handler(|m| (m.rescans.get(), m.dirty_marks.get()));
        self.instance.access_shared_handler(|s| Callbacks {
            param_rescans,
            state_dirty_marks,
            restart_requests: s.restart_requests.load(Ordering::SeqCst),
            process_requests: s.process_requests.load(Ordering::SeqCst),
            flush_requests: s.flush_requests.load(Ordering::SeqCst),
        })
    }

    /// The plugin's state (`state.save`).
    pub fn save_state(&mut self) -> Result<Vec<u8>> {
        let ext = self
            .state
            .context("the plugin does not implement the CLAP state extension")?;
        let mut bytes = Vec::new();
        ext.save(&self.instance.plugin_handle(), &mut bytes)
            .map_err(|e| anyhow!("state.save: {e}"))?;
        Ok(bytes)
    }

    /// Restores a state (`state.load`), then runs any main-thread callback it asked for.
    pub fn load_state(&mut self, bytes: &[u8]) -> Result<()> {
        let ext = self
            .state
            .context("the plugin does not implement the CLAP state extension")?;
        ext.load(&self.instance.plugin_handle(), &mut Cursor::new(bytes))
            .map_err(|e| anyhow!("state.load of {} bytes: {e}", bytes.len()))?;
        self.pump_main_thread();
        Ok(())
    }

    /// The plugin library's diagnostics (see [`crate::diagnostics`]): `None` while the library
    /// does not export `sluice_meter_diagnostics_v1`. Panics, saying why, if what it writes is
    /// not JSON.
    pub fn diagnostics(&self) -> Option<serde_json::Value> {
        diagnostics::from_library(self.library).unwrap_or_else(|e| {
            panic!("diagnostics of {}: {e:#}", self.path.display());
        })
    }

    /// The loaded library, to look up other exported symbols.
    pub fn library(&self) -> &'static Library {
        self.library
    }

    /// The address of the `clap_entry` clack is using (to check it is the one in
    /// [`library`](Self::library), i.e. both handles are the same loaded object).
    pub fn entry_address(&self) -> usize {
        std::ptr::from_ref(self.entry.raw_entry()) as usize
    }
}

impl Drop for ClapHost {
    fn drop(&mut self) {
        self.deactivate();
    }
}

fn describe(d: &clack_host::plugin::PluginDescriptor) -> ClapDescriptor {
    let text = |s: Option<&std::ffi::CStr>| s.map(|s| s.to_string_lossy().into_owned());
    ClapDescriptor {
        id: text(d.id()).unwrap_or_default(),
        name: text(d.name()).unwrap_or_default(),
        vendor: text(d.vendor()).unwrap_or_default(),
        version: text(d.version()).unwrap_or_default(),
        features: d
            .features()
            .map(|f| f.to_string_lossy().into_owned())
            .collect(),
    }
}

/// A song position in samples as CLAP's seconds fixed point (2^31 per second), rounded to the
/// nearest; exact integer arithmetic for integral sample rates.
pub fn seconds_fixed(position_samples: i64, sample_rate: f64) -> FixedPoint {
    if sample_rate.fract() == 0.0 && (1.0..1e9).contains(&sample_rate) {
        let num = i128::from(position_samples) * i128::from(FixedPoint::FACTOR);
        let den = sample_rate as i128;
        let half = if num >= 0 { den / 2 } else { -(den / 2) };
        FixedPoint::from_bits(((num + half) / den) as i64)
    } else {
        FixedPoint::from_float(position_samples as f64 / sample_rate)
    }
}

/// The transport event a block gets: seconds timeline, playing or stopped.
pub fn transport_event(playing: bool, position_samples: i64, sample_rate: f64) -> TransportEvent {
    let mut flags = TransportFlags::HAS_SECONDS_TIMELINE;
    if playing {
        flags |= TransportFlags::IS_PLAYING;
    }
    let zero = FixedPoint::from_bits(0);
    TransportEvent {
        header: EventHeader::new_core(0, EventFlags::empty()),
        flags,
        song_pos_beats: zero,
        song_pos_seconds: seconds_fixed(position_samples, sample_rate),
        tempo: 0.0,
        tempo_inc: 0.0,
        loop_start_beats: zero,
        loop_end_beats: zero,
        loop_start_seconds: zero,
        loop_end_seconds: zero,
        bar_start: zero,
        bar_number: 0,
        time_signature_numerator: 0,
        time_signature_denominator: 0,
    }
}

type AudioResult = Result<(Vec<Vec<f32>>, Option<ProcessStatus>)>;

/// Everything the audio thread needs for one `process` run.
struct AudioJob<'a> {
    input: &'a [Vec<f32>],
    blocks: &'a [usize],
    events: &'a [ParamValueEvent],
    transport: Option<Transport>,
    sample_rate: f64,
    max_frames: usize,
    out_channels: usize,
    steady_start: u64,
    pace: Option<f64>,
}

impl AudioJob<'_> {
    /// Runs on the audio thread: start processing, every block, stop processing. The processor
    /// always comes back, so the main thread can deactivate it even after an error.
    fn run(
        self,
        processor: StoppedPluginAudioProcessor<TestHost>,
    ) -> (StoppedPluginAudioProcessor<TestHost>, AudioResult) {
        let mut started = match processor.start_processing() {
            Ok(p) => p,
            Err(e) => {
                return (
                    e.into_stopped_processor(),
                    Err(anyhow!("start_processing failed")),
                );
            }
        };
        let result = self.blocks(&mut started);
        (started.stop_processing(), result)
    }

    fn blocks(&self, started: &mut StartedPluginAudioProcessor<TestHost>) -> AudioResult {
        let frames: usize = self.blocks.iter().sum();
        let mut ports = PortBuffers::new(self.input.len(), self.out_channels, self.max_frames);
        let mut output = vec![Vec::with_capacity(frames); self.out_channels];
        let mut position = self.transport.map_or(0, |t| t.position_samples);
        let mut done = 0usize;
        let mut status = None;
        let pace = crate::Pace::new(self.sample_rate, self.pace);
        for (k, &n) in self.blocks.iter().enumerate() {
            ports.load(self.input, done, n);
            let transport = self
                .transport
                .map(|t| transport_event(t.playing, position, self.sample_rate));
            let events: &[ParamValueEvent] = if k == 0 { self.events } else { &[] };
            let s = ports
                .process(
                    started,
                    n,
                    &InputEvents::from_buffer(&events),
                    &mut OutputEvents::void(),
                    Some(self.steady_start + done as u64),
                    transport.as_ref(),
                )
                .map_err(|e| {
                    anyhow!("process failed on block {k} ({n} frames from frame {done}): {e}")
                })?;
            status = Some(s);
            for (out, buf) in output.iter_mut().zip(ports.outputs(n)) {
                out.extend_from_slice(buf);
            }
            done += n;
            if self.transport.is_some_and(|t| t.playing) {
                position += n as i64;
            }
            pace.after(done);
        }
        Ok((output, status))
    }
}

/// A host's own port buffers (one input port, one output port), allocated once for the
/// activated maximum and handed to the plugin a block at a time.
pub(crate) struct PortBuffers {
    ins: Vec<Vec<f32>>,
    outs: Vec<Vec<f32>>,
    in_ports: AudioPorts,
    out_ports: AudioPorts,
}

impl PortBuffers {
    pub(crate) fn new(in_channels: usize, out_channels: usize, max_frames: usize) -> Self {
        PortBuffers {
            ins: vec![vec![0f32; max_frames]; in_channels],
            outs: vec![vec![0f32; max_frames]; out_channels],
            in_ports: AudioPorts::with_capacity(in_channels, 1),
            out_ports: AudioPorts::with_capacity(out_channels, 1),
        }
    }

    /// Frames `at..at + n` of `input` into the inputs, and [`OUTPUT_SENTINEL`] into the first
    /// `n` frames of every output (so a plugin that leaves an output unwritten is seen).
    pub(crate) fn load(&mut self, input: &[Vec<f32>], at: usize, n: usize) {
        for (buf, ch) in self.ins.iter_mut().zip(input) {
            buf[..n].copy_from_slice(&ch[at..at + n]);
        }
        for buf in &mut self.outs {
            buf[..n].fill(OUTPUT_SENTINEL);
        }
    }

    /// One process call over the first `n` frames.
    pub(crate) fn process<H: HostHandlers>(
        &mut self,
        started: &mut StartedPluginAudioProcessor<H>,
        n: usize,
        events: &InputEvents,
        out_events: &mut OutputEvents,
        steady_time: Option<u64>,
        transport: Option<&TransportEvent>,
    ) -> Result<ProcessStatus, PluginInstanceError> {
        let ins = self.in_ports.with_input_buffers([AudioPortBuffer {
            latency: 0,
            channels: AudioPortBufferType::f32_input_only(
                self.ins
                    .iter_mut()
                    .map(|b| InputChannel::variable(&mut b[..n])),
            ),
        }]);
        let mut outs = self.out_ports.with_output_buffers([AudioPortBuffer {
            latency: 0,
            channels: AudioPortBufferType::f32_output_only(
                self.outs.iter_mut().map(|b| &mut b[..n]),
            ),
        }]);
        started.process(&ins, &mut outs, events, out_events, steady_time, transport)
    }

    /// The first `n` frames of each output, as the last call left them.
    pub(crate) fn outputs(&self, n: usize) -> impl Iterator<Item = &[f32]> {
        self.outs.iter().map(move |b| &b[..n])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_in_seconds_fixed_point() {
        let one_second = FixedPoint::FACTOR;
        assert_eq!(seconds_fixed(48_000, 48_000.0).to_bits(), one_second);
        assert_eq!(seconds_fixed(-96_000, 96_000.0).to_bits(), -one_second);
        assert_eq!(seconds_fixed(0, 44_100.0).to_bits(), 0);
        // 1 sample at 44.1 kHz: 2^31 / 44100 = 48695.77..., rounded to nearest.
        assert_eq!(seconds_fixed(1, 44_100.0).to_bits(), 48_696);
        assert_eq!(seconds_fixed(-1, 44_100.0).to_bits(), -48_696);
        // An hour at 96 kHz stays exact.
        assert_eq!(
            seconds_fixed(3600 * 96_000, 96_000.0).to_bits(),
            3600 * one_second
        );
        let t = transport_event(true, 48_000, 48_000.0);
        assert!(t.flags.contains(TransportFlags::IS_PLAYING));
        assert!(t.flags.contains(TransportFlags::HAS_SECONDS_TIMELINE));
        assert!(
            !transport_event(false, 0, 48_000.0)
                .flags
                .contains(TransportFlags::IS_PLAYING)
        );
    }
}
