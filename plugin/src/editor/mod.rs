//! Sluice Meter's editor: egui through nice-plug-egui (OpenGL on baseview).
//!
//! The editor only reads: every frame it takes a [`readings::Readings`] snapshot of the
//! [`MeterShared`] atomics (no locks; the audio thread never waits for it and never knows it is
//! open), draws it ([`view`]), and publishes what it drew ([`drawn::Drawn`], read by the
//! diagnostics export so tests can check the picture's numbers). It asks egui for a repaint at
//! [`FRAME_INTERVAL`], so it refreshes at display rate while open and costs nothing closed.
//!
//! User actions go through the host like any parameter change (target preset, custom target,
//! record arm), except reset, which is a request flag in [`MeterShared`].
//!
//! [`SluiceEditor`] wraps nice-plug-egui's editor to count opens and closes (nice-plug-egui
//! never calls `NiceEguiApp::editor_closed`), and the app's `build` sets `_XEMBED_INFO` on the
//! new window ([`xembed`]), which VST3 hosts embedding through XEmbed require.

pub mod chooser;
pub mod drawn;
pub mod kit;
pub mod qc_row;
pub mod readings;
#[cfg(target_os = "linux")]
pub mod system_scale;
pub mod view;
#[cfg(target_os = "linux")]
pub mod watchdog;
#[cfg(target_os = "linux")]
pub mod xembed;

use crate::params::SluiceParams;
use crate::shared::MeterShared;
use nice_plug::context::gui::GuiContext;
use nice_plug::editor::dpi::{LogicalSize, NativeSize};
use nice_plug::editor::{
    Editor, EditorHandle, HostMethods, Modifiers, ParentWindowHandle, ResizeHint, SpawnedEditor,
    VirtualKeyCode,
};
use nice_plug::plugin::TrackInfo;
use nice_plug_egui::{
    EguiEditor, EguiEditorHandle, EguiEditorState, EguiNiceSettings, NiceEguiApp, RepaintNotifier,
};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Size the editor opens at, in logical points.
pub const DEFAULT_SIZE: (f32, f32) = (920.0, 580.0);
/// The smallest size every meter still fits in.
pub const MIN_SIZE: (f32, f32) = (720.0, 490.0);
/// The display refresh the editor asks for while open (30 Hz: the meters update every 100 ms).
pub const FRAME_INTERVAL: Duration = Duration::from_millis(33);

/// The egui app: what one open editor draws from.
pub struct MeterApp {
    params: Arc<SluiceParams>,
    shared: Arc<MeterShared>,
    gui: Option<GuiContext>,
    readings: readings::Readings,
    view: view::ViewState,
}

impl NiceEguiApp for MeterApp {
    fn build(
        &mut self,
        egui_ctx: egui::Context,
        gui: GuiContext,
        frame: &mut nice_plug_egui::Frame,
    ) -> Result<(), nice_plug_egui::baseview::HandlerError> {
        // `build` runs on the new window's own thread.
        self.shared.editor.window_thread_started();
        #[cfg(target_os = "linux")]
        {
            // Before the host gets the window back: a VST3 host on XEmbed reads the property
            // when it sees the window created under its parent.
            let w = frame.baseview_window();
            if let Err(e) = xembed::set_xembed_info(w, w) {
                nice_plug::nice_warn!("could not set _XEMBED_INFO on the editor window: {e}");
            }
            match xembed::window_id(w) {
                Ok(id) => watchdog::start(
                    egui_ctx.clone(),
                    self.shared.clone(),
                    id,
                    self.shared.editor.closes.load(Ordering::Relaxed),
                ),
                Err(e) => nice_plug::nice_warn!("no editor watchdog: {e}"),
            }
        }
        frame.set_clear_color(view::BACKGROUND.into());
        if let Ok(saved) = self.params.editor.read() {
            self.view.load(&saved);
        }
        view::style(&egui_ctx);
        self.gui = Some(gui);
        Ok(())
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut nice_plug_egui::Frame) {
        self.readings
            .read(&self.shared, &self.params, self.view.span);
        let setter = self.gui.as_ref().map(|g| g.param_setter());
        let drawn = view::draw(
            ui,
            &self.readings,
            &self.params,
            &self.shared,
            setter.as_ref(),
            &mut self.view,
        );
        self.shared.editor.publish(drawn);
        // A choice made in this frame goes into the state (read without waiting; written only
        // when it changed).
        let now = self.view.settings();
        if self.params.editor.try_read().is_ok_and(|s| *s != now)
            && let Ok(mut s) = self.params.editor.try_write()
        {
            *s = now;
        }
        ui.ctx().request_repaint_after(FRAME_INTERVAL);
    }

    fn editor_closed(&mut self) {
        self.gui = None;
    }
}

/// The plugin's editor type: nice-plug-egui's, plus open/close bookkeeping.
pub struct SluiceEditor {
    inner: EguiEditor<MeterApp>,
    /// The inner editor's state (its logical size), for [`Editor::size`] (X11 system scale).
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    state: Arc<EguiEditorState>,
    shared: Arc<MeterShared>,
}

/// Creates the editor (not its window: that is `spawn`, when the host opens it).
pub fn create(params: Arc<SluiceParams>, shared: Arc<MeterShared>) -> Option<SluiceEditor> {
    let state = EguiEditorState::from_size(
        LogicalSize::new(DEFAULT_SIZE.0 as f64, DEFAULT_SIZE.1 as f64),
        1.0,
    );
    let settings = EguiNiceSettings::new()
        .with_tile(crate::PLUGIN_NAME)
        .with_resize_hint(
            ResizeHint::resizable().with_min_logical_size(LogicalSize::new(MIN_SIZE.0, MIN_SIZE.1)),
        );
    let app = MeterApp {
        params,
        shared: shared.clone(),
        gui: None,
        readings: readings::Readings::default(),
        view: view::ViewState::default(),
    };
    let inner =
        nice_plug_egui::create_egui_editor(state.clone(), RepaintNotifier::new(), settings, app)?;
    Some(SluiceEditor {
        inner,
        state,
        shared,
    })
}

impl Editor for SluiceEditor {
    type Handle = SluiceEditorHandle;

    fn spawn(
        &self,
        parent: Option<ParentWindowHandle>,
        wait_for_parent: bool,
        fallback_scale_factor: Option<f64>,
        gui_context: GuiContext,
        host: Option<HostMethods>,
    ) -> Result<SpawnedEditor<Self::Handle>, Box<dyn std::error::Error>> {
        self.shared.editor.opening();
        let spawned = self.inner.spawn(
            parent,
            wait_for_parent,
            fallback_scale_factor,
            gui_context,
            host,
        )?;
        self.shared.editor.opened();
        Ok(SpawnedEditor {
            handle: SluiceEditorHandle {
                inner: spawned.handle,
                shared: self.shared.clone(),
            },
            window: spawned.window,
        })
    }

    fn size(&self) -> NativeSize<u32> {
        #[cfg(target_os = "linux")]
        {
            xembed::intern_atoms_once();
            // With a system scale (Xft.dpi), the one baseview gives the window, also before the
            // window has told nice-plug-egui about it ([`system_scale`]).
            if let Some(scale) = system_scale::xft_scale() {
                return NativeSize::from_size(self.state.logical_size().into(), scale);
            }
        }
        self.inner.size()
    }

    fn resize_hint(&self) -> ResizeHint {
        self.inner.resize_hint()
    }

    fn track_info_updated(&self, info: TrackInfo) {
        self.inner.track_info_updated(info)
    }

    unsafe fn assume_standalone_in_process(&self) {
        // SAFETY: the caller upholds the same contract for the inner editor.
        unsafe { self.inner.assume_standalone_in_process() }
    }
}

/// An open editor. Dropping it (the host closing the editor) counts the close.
pub struct SluiceEditorHandle {
    inner: EguiEditorHandle,
    shared: Arc<MeterShared>,
}

impl Drop for SluiceEditorHandle {
    fn drop(&mut self) {
        self.shared.editor.closed();
    }
}

type Window = <EguiEditorHandle as EditorHandle>::Window;
type WindowError = <EguiEditorHandle as EditorHandle>::Error;

impl EditorHandle for SluiceEditorHandle {
    type Window = Window;
    type Error = WindowError;

    fn run_until_closed(window: Window) -> Result<(), WindowError> {
        EguiEditorHandle::run_until_closed(window)
    }

    fn set_parent(&self, parent: ParentWindowHandle, window: &Window) -> Result<(), WindowError> {
        self.inner.set_parent(parent, window)
    }

    fn show(&self, window: &Window) -> Result<(), WindowError> {
        self.inner.show(window)
    }

    fn hide(&self, window: &Window) -> Result<(), WindowError> {
        self.inner.hide(window)
    }

    fn set_size(&self, new_size: NativeSize<u32>, window: &Window) -> Result<(), WindowError> {
        self.inner.set_size(new_size, window)
    }

    fn host_main_thread_callback(&self, window: &Window) {
        self.inner.host_main_thread_callback(window)
    }

    fn adjust_size(&self, new_size: NativeSize<u32>, window: &Window) -> Option<NativeSize<u32>> {
        self.inner.adjust_size(new_size, window)
    }

    fn set_fallback_scale_factor(&self, scale: f64, window: &Window) -> Result<(), WindowError> {
        self.inner.set_fallback_scale_factor(scale, window)
    }

    fn on_virtual_key_from_host(
        &self,
        key_code: VirtualKeyCode,
        is_down: bool,
        modifiers: Modifiers,
    ) -> bool {
        self.inner
            .on_virtual_key_from_host(key_code, is_down, modifiers)
    }

    fn state_changed(&self) {
        self.inner.state_changed()
    }

    fn param_value_changed(&self, id: &str, normalized_value: f32) {
        self.inner.param_value_changed(id, normalized_value)
    }

    fn param_modulation_changed(&self, id: &str, modulation_offset: f32) {
        self.inner.param_modulation_changed(id, modulation_offset)
    }
}

/// Whether an editor window is open now (for the diagnostics).
pub fn is_open(shared: &MeterShared) -> bool {
    shared.editor.open_count.load(Ordering::Relaxed) > 0
}
