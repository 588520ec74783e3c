//! A CLAP host with a GUI, for the editor tests and the editor bench: the `gui` host extension,
//! the plugin's editor embedded in an X11 parent window of ours (see [`crate::xdisplay`]), audio
//! on an audio thread of its own while the main thread runs the plugin's main-thread callbacks,
//! as a DAW's event loop does.
//!
//! Separate from [`crate::clap_host`] (which has no GUI) so each stays small. Like it, the
//! instance lives on the thread that created it (the host's main thread).

use crate::{clap_host, diagnostics};
use anyhow::{Context, Result, anyhow, bail, ensure};
use clack_extensions::gui::{
    GuiApiType, GuiConfiguration, GuiSize, HostGui, HostGuiImpl, PluginGui, Window,
};
use clack_extensions::params::{
    HostParams, HostParamsImplMainThread, HostParamsImplShared, ParamClearFlags, ParamRescanFlags,
    PluginParams,
};
use clack_host::events::io::EventBuffer;
use clack_host::events::spaces::CoreEventSpace;
use clack_host::prelude::*;
use libloading::Library;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The host's callbacks that may come from any thread.
#[derive(Default)]
pub struct GuiShared {
    callback_requested: AtomicBool,
    /// Sizes the plugin asked for (`gui.request_resize`), in order.
    resize_requests: Mutex<Vec<(u32, u32)>>,
    closed: AtomicU32,
    /// The plugin asked for `params.flush` (it has changes from its editor to send).
    flush_requested: AtomicBool,
}

impl HostParamsImplShared for GuiShared {
    fn request_flush(&self) {
        self.flush_requested.store(true, Ordering::SeqCst);
    }
}

impl SharedHandler<'_> for GuiShared {
    fn request_restart(&self) {}
    fn request_process(&self) {}
    fn request_callback(&self) {
        self.callback_requested.store(true, Ordering::SeqCst);
    }
}

impl HostGuiImpl for GuiShared {
    fn resize_hints_changed(&self) {}
    fn request_resize(&self, new_size: GuiSize) -> Result<(), HostError> {
        self.resize_requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((new_size.width, new_size.height));
        Ok(())
    }
    fn request_show(&self) -> Result<(), HostError> {
        Ok(())
    }
    fn request_hide(&self) -> Result<(), HostError> {
        Ok(())
    }
    fn closed(&self, _was_destroyed: bool) {
        self.closed.fetch_add(1, Ordering::SeqCst);
    }
}

#[derive(Default)]
pub struct GuiMain;

impl MainThreadHandler<'_> for GuiMain {}

impl HostParamsImplMainThread for GuiMain {
    fn rescan(&self, _flags: ParamRescanFlags) {}
    fn clear(&self, _param_id: ClapId, _flags: ParamClearFlags) {}
}

/// A parameter event the plugin sent the host (from its editor), as a DAW records automation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ParamEvent {
    GestureBegin(u32),
    Value(u32, f64),
    GestureEnd(u32),
}

/// The parameter events in `buffer`, in order.
fn param_events(buffer: &EventBuffer) -> Vec<ParamEvent> {
    buffer
        .iter()
        .filter_map(|e| match e.as_core_event()? {
            CoreEventSpace::ParamGestureBegin(g) => {
                Some(ParamEvent::GestureBegin(g.param_id()?.get()))
            }
            CoreEventSpace::ParamValue(v) => {
                Some(ParamEvent::Value(v.param_id()?.get(), v.value()))
            }
            CoreEventSpace::ParamGestureEnd(g) => Some(ParamEvent::GestureEnd(g.param_id()?.get())),
            _ => None,
        })
        .collect()
}

pub struct GuiTestHost;

impl HostHandlers for GuiTestHost {
    type Shared<'a> = GuiShared;
    type MainThread<'a> = GuiMain;
    type AudioProcessor<'a> = ();

    fn declare_extensions(builder: &mut HostExtensions<Self>, _shared: &Self::Shared<'_>) {
        builder.register::<HostGui>().register::<HostParams>();
    }
}

/// What one audio run cost the audio thread.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AudioCost {
    /// Seconds of audio processed.
    pub audio_seconds: f64,
    /// CPU time the audio thread spent inside `process`, seconds.
    pub process_cpu_seconds: f64,
    /// Wall time inside `process`, seconds.
    pub process_wall_seconds: f64,
    /// The longest single `process` call, wall seconds.
    pub worst_block_seconds: f64,
    pub blocks: usize,
    /// Output samples that are not bit for bit the input (the plugin passes audio through).
    pub mismatched_samples: usize,
}

/// CPU time of the calling thread.
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write to.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// One Sluice Meter instance with its editor, in this host.
pub struct ClapGuiHost {
    processor: Option<StoppedPluginAudioProcessor<GuiTestHost>>,
    instance: PluginInstance<GuiTestHost>,
    _entry: PluginEntry,
    library: &'static Library,
    gui: PluginGui,
    params: Option<PluginParams>,
    /// Parameter events the plugin sent (from `process` and `params.flush`), in order.
    param_events: Vec<ParamEvent>,
    editor_open: bool,
    sample_rate: f64,
    max_frames: usize,
}

impl ClapGuiHost {
    /// Loads the `.clap` at `path` and creates an instance of `plugin_id`.
    pub fn load(path: &Path, plugin_id: &str) -> Result<Self> {
        let (library, entry, mut instance) = clap_host::instantiate::<GuiTestHost, _, _>(
            path,
            plugin_id,
            "sluice-tests-gui",
            |_| GuiShared::default(),
            |_| GuiMain,
        )?;
        let gui = instance
            .plugin_handle()
            .get_extension::<PluginGui>()
            .context("the plugin does not implement the CLAP gui extension")?;
        let params = instance.plugin_handle().get_extension::<PluginParams>();
        Ok(ClapGuiHost {
            processor: None,
            instance,
            _entry: entry,
            library,
            gui,
            params,
            param_events: Vec::new(),
            editor_open: false,
            sample_rate: 0.0,
            max_frames: 0,
        })
    }

    /// Activates the plugin for `sample_rate` and blocks of up to `max_frames`.
    pub fn activate(&mut self, sample_rate: f64, max_frames: u32) -> Result<()> {
        ensure!(self.processor.is_none(), "already active");
        self.processor = Some(clap_host::activate(
            &mut self.instance,
            sample_rate,
            max_frames,
        )?);
        self.sample_rate = sample_rate;
        self.max_frames = max_frames as usize;
        Ok(())
    }

    /// Whether the plugin offers an embedded X11 editor.
    pub fn supports_x11(&mut self) -> bool {
        let cfg = GuiConfiguration {
            api_type: GuiApiType::X11,
            is_floating: false,
        };
        self.gui
            .is_api_supported(&self.instance.plugin_handle(), cfg)
    }

    /// Opens the editor embedded in the X11 window `parent`, as a CLAP host does: create,
    /// set_scale (when given), get_size, set_parent, show. Returns the size the plugin reported.
    pub fn open_editor(&mut self, parent: u32, scale: Option<f64>) -> Result<(u32, u32)> {
        ensure!(!self.editor_open, "the editor is already open");
        let cfg = GuiConfiguration {
            api_type: GuiApiType::X11,
            is_floating: false,
        };
        let handle = self.instance.plugin_handle();
        ensure!(
            self.gui.is_api_supported(&handle, cfg),
            "the plugin does not support embedded X11 editors"
        );
        self.gui
            .create(&handle, cfg)
            .map_err(|e| anyhow!("gui.create: {e:?}"))?;
        self.editor_open = true;
        if let Some(s) = scale {
            // Hosts may call this; a plugin that takes its scale from the system may refuse.
            let _ = self.gui.set_scale(&handle, s);
        }
        let size = self.gui.get_size(&handle).context("gui.get_size failed")?;
        // SAFETY: the parent window lives until `close_editor` (the test owns it).
        unsafe {
            self.gui.set_parent(
                &handle,
                Window::from_x11_handle(parent as std::ffi::c_ulong),
            )
        }
        .map_err(|e| anyhow!("gui.set_parent: {e:?}"))?;
        self.gui
            .show(&handle)
            .map_err(|e| anyhow!("gui.show: {e:?}"))?;
        Ok((size.width, size.height))
    }

    /// The editor's current size (`gui.get_size`).
    pub fn editor_size(&mut self) -> Option<(u32, u32)> {
        self.gui
            .get_size(&self.instance.plugin_handle())
            .map(|s| (s.width, s.height))
    }

    /// Whether the editor says it can be resized, and the size it would take for `want`.
    pub fn editor_adjust(&mut self, want: (u32, u32)) -> (bool, Option<(u32, u32)>) {
        let h = self.instance.plugin_handle();
        let can = self.gui.can_resize(&h);
        let adj = self
            .gui
            .adjust_size(
                &h,
                GuiSize {
                    width: want.0,
                    height: want.1,
                },
            )
            .map(|s| (s.width, s.height));
        (can, adj)
    }

    /// `gui.set_size`.
    pub fn set_editor_size(&mut self, size: (u32, u32)) -> Result<()> {
        self.gui
            .set_size(
                &self.instance.plugin_handle(),
                GuiSize {
                    width: size.0,
                    height: size.1,
                },
            )
            .map_err(|e| anyhow!("gui.set_size{size:?}: {e:?}"))
    }

    /// Hides and destroys the editor (a no-op when closed).
    pub fn close_editor(&mut self) {
        if self.editor_open {
            let h = self.instance.plugin_handle();
            let _ = self.gui.hide(&h);
            self.gui.destroy(&h);
            self.editor_open = false;
        }
    }

    /// Runs the plugin's main-thread callback if it asked for one, and `params.flush` when it
    /// asked for that and is not processing (while processing, `process` carries the changes).
    pub fn pump(&mut self) {
        let requested = self
            .instance
            .access_shared_handler(|s| s.callback_requested.swap(false, Ordering::SeqCst));
        if requested {
            self.instance.call_on_main_thread_callback();
        }
        if let (Some(params), Some(processor)) = (self.params, self.processor.as_mut())
            && self
                .instance
                .access_shared_handler(|s| s.flush_requested.swap(false, Ordering::SeqCst))
        {
            let mut out = EventBuffer::with_capacity(64);
            params.flush_active(
                &mut processor.plugin_handle(),
                &InputEvents::empty(),
                &mut out.as_output(),
            );
            self.param_events.extend(param_events(&out));
        }
    }

    /// The parameter events the plugin sent since the last call (see [`ParamEvent`]).
    pub fn take_param_events(&mut self) -> Vec<ParamEvent> {
        std::mem::take(&mut self.param_events)
    }

    /// The id of the parameter named `name` (`params.get_info`).
    pub fn param_id(&mut self, name: &str) -> Result<u32> {
        let params = self.params.context("no CLAP params extension")?;
        let handle = self.instance.plugin_handle();
        for i in 0..params.count(&handle) {
            if let Some(p) = clap_host::param_info(params, &handle, i)?
                && p.name == name
            {
                return Ok(p.id);
            }
        }
        bail!("no parameter named {name:?}")
    }

    /// A parameter's current value (`params.get_value`).
    pub fn param_value(&mut self, id: u32) -> Result<f64> {
        let params = self.params.context("no CLAP params extension")?;
        clap_host::param_value(params, &self.instance.plugin_handle(), id)
    }

    /// Pumps main-thread callbacks for `d`.
    pub fn pump_for(&mut self, d: Duration) {
        let end = Instant::now() + d;
        while Instant::now() < end {
            self.pump();
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Sizes the plugin asked the host for.
    pub fn resize_requests(&self) -> Vec<(u32, u32)> {
        self.instance.access_shared_handler(|s| {
            s.resize_requests
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone()
        })
    }

    /// Processes `input` (planar) in blocks of `block` frames on an audio thread, without a
    /// transport, while this (main) thread keeps running main-thread callbacks. With `paced`,
    /// blocks are fed in real time (as a sound card would ask for them); otherwise as fast as
    /// the plugin goes. Returns what `process` cost the audio thread.
    pub fn process(&mut self, input: &[Vec<f32>], block: usize, paced: bool) -> Result<AudioCost> {
        self.process_while(input, block, paced, |_, _| {})
    }

    /// [`process`](Self::process), calling `meanwhile` on this (main) thread between pumps with
    /// the seconds since the audio started, as a person works the editor while audio plays.
    pub fn process_while(
        &mut self,
        input: &[Vec<f32>],
        block: usize,
        paced: bool,
        mut meanwhile: impl FnMut(&mut Self, f64),
    ) -> Result<AudioCost> {
        ensure!(
            block > 0 && block <= self.max_frames,
            "block {block} not in 1..={}",
            self.max_frames
        );
        let channels = input.len();
        let frames = input.first().map_or(0, Vec::len);
        ensure!(
            input.iter().all(|c| c.len() == frames),
            "input channels differ in length"
        );
        let processor = self.processor.take().context("process while inactive")?;
        let sample_rate = self.sample_rate;
        let max = self.max_frames;
        let done = AtomicBool::new(false);
        let result = std::thread::scope(|s| {
            let audio = std::thread::Builder::new()
                .name("clap-audio".into())
                .spawn_scoped(s, || {
                    let r = run_audio(processor, input, channels, max, block, sample_rate, paced);
                    done.store(true, Ordering::SeqCst);
                    r
                })
                .map_err(|e| anyhow!("could not start the audio thread: {e}"));
            let started = Instant::now();
            while !done.load(Ordering::SeqCst) {
                self.pump();
                meanwhile(self, started.elapsed().as_secs_f64());
                std::thread::sleep(Duration::from_millis(2));
            }
            audio.map(|t| t.join())
        });
        match result {
            Ok(Ok((processor, cost, events))) => {
                self.processor = Some(processor);
                self.param_events.extend(events);
                cost
            }
            Ok(Err(panic)) => std::panic::resume_unwind(panic),
            Err(e) => Err(e),
        }
    }

    /// The library's diagnostics JSON (see [`crate::diagnostics`]).
    pub fn diagnostics(&self) -> Result<serde_json::Value> {
        diagnostics::from_library(self.library)?
            .context("the plugin does not export its diagnostics")
    }

    /// The diagnostics of the only instance at `sample_rate` (the tests pick a rate no other
    /// instance in the process uses).
    pub fn meters(&self) -> Result<serde_json::Value> {
        let all = self.diagnostics()?;
        let mine: Vec<&serde_json::Value> = all
            .as_array()
            .context("diagnostics are not an array")?
            .iter()
            .filter(|i| i["meters"]["sample_rate"].as_f64() == Some(self.sample_rate))
            .collect();
        match mine.as_slice() {
            [one] => Ok(one["meters"].clone()),
            _ => bail!(
                "{} instances at {} Hz in the diagnostics",
                mine.len(),
                self.sample_rate
            ),
        }
    }
}

impl Drop for ClapGuiHost {
    fn drop(&mut self) {
        self.close_editor();
        if let Some(p) = self.processor.take() {
            self.instance.deactivate(p);
        }
    }
}

type Processed = (
    StoppedPluginAudioProcessor<GuiTestHost>,
    Result<AudioCost>,
    Vec<ParamEvent>,
);

fn run_audio(
    processor: StoppedPluginAudioProcessor<GuiTestHost>,
    input: &[Vec<f32>],
    channels: usize,
    max: usize,
    block: usize,
    sample_rate: f64,
    paced: bool,
) -> Processed {
    let mut started = match processor.start_processing() {
        Ok(p) => p,
        Err(e) => {
            return (
                e.into_stopped_processor(),
                Err(anyhow!("start_processing failed")),
                Vec::new(),
            );
        }
    };
    let frames = input.first().map_or(0, Vec::len);
    let mut ports = clap_host::PortBuffers::new(channels, channels, max);
    let mut out_events = EventBuffer::with_capacity(64);
    let mut events = Vec::new();
    let mut cost = AudioCost {
        audio_seconds: frames as f64 / sample_rate,
        process_cpu_seconds: 0.0,
        process_wall_seconds: 0.0,
        worst_block_seconds: 0.0,
        blocks: 0,
        mismatched_samples: 0,
    };
    let start = Instant::now();
    let mut at = 0usize;
    let mut error = None;
    while at < frames {
        let n = block.min(frames - at);
        if paced {
            let due = start + Duration::from_secs_f64(at as f64 / sample_rate);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
        ports.load(input, at, n);
        let cpu0 = thread_cpu_time();
        let wall0 = Instant::now();
        let r = ports.process(
            &mut started,
            n,
            &InputEvents::empty(),
            &mut out_events.as_output(),
            Some(at as u64),
            None,
        );
        let wall = wall0.elapsed().as_secs_f64();
        if !out_events.is_empty() {
            events.extend(param_events(&out_events));
            out_events.clear();
        }
        cost.process_cpu_seconds += (thread_cpu_time() - cpu0).as_secs_f64();
        cost.process_wall_seconds += wall;
        cost.worst_block_seconds = cost.worst_block_seconds.max(wall);
        cost.blocks += 1;
        if let Err(e) = r {
            error = Some(anyhow!("process failed at frame {at}: {e}"));
            break;
        }
        for (o, i) in ports.outputs(n).zip(input) {
            cost.mismatched_samples += o
                .iter()
                .zip(&i[at..at + n])
                .filter(|(a, b)| a.to_bits() != b.to_bits())
                .count();
        }
        at += n;
    }
    let stopped = started.stop_processing();
    (stopped, error.map_or(Ok(cost), Err), events)
}
