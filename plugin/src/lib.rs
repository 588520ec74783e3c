//! Sluice Meter: the CLAP + VST3 loudness meter and recorder, on nice-plug.
//!
//! The audio thread only reads its input (the audio passes through untouched, bit for bit),
//! updates the meters and pushes samples into a preallocated ring; everything else happens on
//! other threads. `lib.rs` holds only the plugin type and the format exports; the nice-plug
//! export macros create modules named `clap` and `vst3` here, so those crate names are not used
//! at this level.

pub mod denormal;
pub mod diagnostics;
pub mod editor;
pub mod engine;
pub mod params;
pub mod qc;
pub mod qc_state;
pub mod record;
pub mod reference;
pub mod shared;

use engine::Engine;
use nice_plug::prelude::*;
use params::SluiceParams;
use shared::{MAX_CHANNELS, MeterShared};
use std::sync::Arc;

/// The plugin's name, in take files' metadata too.
pub const PLUGIN_NAME: &str = "Sluice Meter";

pub struct SluiceMeter {
    params: Arc<SluiceParams>,
    shared: Arc<MeterShared>,
    engine: Option<Engine>,
    recorder: Option<(record::RecorderRt, record::Writer)>,
    /// Plays the A/B references (the audio thread's side of `shared.references`).
    player: Option<reference::AbPlayer>,
    /// Measures what is heard while the reference plays (its own meters, beside the mix's).
    ref_loudness: Option<engine::LiveLoudness>,
    ref_was_playing: bool,
}

impl Default for SluiceMeter {
    // Cheap on purpose: hosts create instances to scan them. Nothing is allocated for audio, and
    // no thread is started, before `activate`.
    fn default() -> Self {
        let params = Arc::new(SluiceParams::default());
        let shared = Arc::new(MeterShared {
            qc: qc_state::LiveQc::new(params.qc.clone()),
            ..MeterShared::default()
        });
        diagnostics::register(&shared);
        SluiceMeter {
            params,
            shared,
            engine: None,
            recorder: None,
            player: None,
            ref_loudness: None,
            ref_was_playing: false,
        }
    }
}

impl Drop for SluiceMeter {
    fn drop(&mut self) {
        diagnostics::unregister(&self.shared);
        // The editor is closed by now (hosts close it before destroying the instance), but
        // its window thread may still be ending: see `Drawn::wait_for_window_threads`.
        if !self
            .shared
            .editor
            .wait_for_window_threads(std::time::Duration::from_secs(3))
        {
            nice_plug::nice_warn!("an editor window thread is still running at destroy");
        }
        // A reference still loading stops between two blocks; its thread must be gone before
        // the host may unload this library.
        if !self
            .shared
            .references
            .close(std::time::Duration::from_secs(3))
        {
            nice_plug::nice_warn!("a reference loader thread is still running at destroy");
        }
    }
}

impl SluiceMeter {
    fn stop_recorder(&mut self) {
        if let Some((mut rec, writer)) = self.recorder.take() {
            rec.stop();
            writer.finish();
        }
    }
}

/// BS.1770 weights of a layout's channels, in the order both formats use (WAVE_FORMAT_EXTENSIBLE,
/// VST3's `k51`, CLAP's SMPTE order): 5.1 is L R C LFE Ls Rs, the LFE left out and the surrounds
/// weighted 1.41; mono and stereo are all front channels.
pub fn weights(channels: usize) -> Vec<f64> {
    sluice_core::render::default_layout(channels.clamp(1, MAX_CHANNELS))
        .iter()
        .map(|p| sluice_core::analysis::loudness::channel_weight(p))
        .collect()
}

impl Plugin for SluiceMeter {
    const NAME: &'static str = "Sluice Meter";
    const VENDOR: &'static str = "Sluice";
    const URL: &'static str = "https://github.com/sluice-audio/sluice";
    const EMAIL: &'static str = "dev@sluice.invalid";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    const AUDIO_IO_LAYOUTS: &'static [AudioIOLayout] = &[
        AudioIOLayout {
            main_input_channels: NonZeroU32::new(2),
            main_output_channels: NonZeroU32::new(2),
            names: PortNames::const_default(),
            ..AudioIOLayout::const_default()
        },
        AudioIOLayout {
            main_input_channels: NonZeroU32::new(1),
            main_output_channels: NonZeroU32::new(1),
            names: PortNames::const_default(),
            ..AudioIOLayout::const_default()
        },
        // 5.1 (L R C LFE Ls Rs): VST3 hosts see `k51`; CLAP hosts a 6-channel port in SMPTE order.
        AudioIOLayout {
            main_input_channels: NonZeroU32::new(6),
            main_output_channels: NonZeroU32::new(6),
            names: PortNames {
                layout: Some("5.1"),
                main_input: Some("5.1 In"),
                main_output: Some("5.1 Out"),
                ..PortNames::const_default()
            },
            ..AudioIOLayout::const_default()
        },
    ];

    // Parameters are read once per block: nothing here needs sample-accurate automation, and
    // splitting blocks would split the transport position too.
    const SAMPLE_ACCURATE_AUTOMATION: bool = false;

    type Editor = editor::SluiceEditor;
    type SysExMessage = ();
    type BackgroundTask = ();

    fn params(&self) -> Arc<dyn Params> {
        self.params.clone()
    }

    fn editor(&mut self, _async_executor: AsyncExecutor<Self>) -> Option<Self::Editor> {
        editor::create(self.params.clone(), self.shared.clone())
    }

    fn activate(
        &mut self,
        layout: &AudioIOLayout,
        config: &BufferConfig,
        context: &mut impl ActivateContext<Self>,
    ) -> bool {
        let channels = layout.main_input_channels.map_or(0, |c| c.get() as usize);
        // The engine's meters are sized from the rate and the channels: only what Sluice
        // supports (formats::limits) is taken.
        // (`as` saturates: NaN is 0, a huge rate u32::MAX, both refused.)
        let rate = config.sample_rate.round() as u32;
        if channels == 0
            || channels > MAX_CHANNELS
            || sluice_core::formats::limits::check_rate(rate).is_err()
        {
            return false;
        }
        let mut engine = Engine::new(
            config.sample_rate.round() as u32,
            &weights(channels),
            config.max_buffer_size as usize,
            self.shared.clone(),
        );
        let (t, c) = self.params.target_levels();
        engine.set_target(t, c);
        self.engine = Some(engine);
        // The references, at this session's rate and channels (also those of a state the host
        // just restored); loaded on threads of their own.
        let refs = &self.shared.references;
        let settings = self
            .params
            .references
            .read()
            .map(|s| s.clone())
            .unwrap_or_default();
        refs.reload_all(&settings, config.sample_rate.round() as u32, channels);
        if self.player.is_none() {
            self.player = refs.player();
        }
        self.ref_loudness = Some(engine::LiveLoudness::new(
            config.sample_rate.round() as u32,
            &weights(channels),
            config.max_buffer_size as usize,
        ));
        self.ref_was_playing = false;
        // A new activation ends the previous writer (and its take) first.
        self.stop_recorder();
        let params = self.params.clone();
        match record::start(record::TakeConfig {
            sample_rate: config.sample_rate.round() as u32,
            channels,
            settings: self.params.export.clone(),
            target: Arc::new(move || params.target_levels()),
            shared: self.shared.clone(),
            // Only CLAP's: nice-plug's VST3 wrapper hands `activate` the process mode of the
            // `setupProcessing` before the last (docs/PLUGIN.md, "nice-plug defects"), so a
            // real-time session after a bounce would be told "offline" and could wait.
            offline: config.process_mode == ProcessMode::Offline
                && context.plugin_api() == PluginApi::Clap,
        }) {
            Ok(r) => self.recorder = Some(r),
            Err(e) => {
                // Metering still works; recording reports why it cannot.
                self.shared
                    .record
                    .set_error(format!("cannot start the take writer: {e}"));
            }
        }
        true
    }

    fn reset(&mut self) {
        if let Some(e) = &mut self.engine {
            e.reset();
        }
    }

    fn deactivate(&mut self) {
        self.stop_recorder();
    }

    fn process(
        &mut self,
        buffer: &mut Buffer,
        _aux: &mut AuxiliaryBuffers,
        context: &mut impl ProcessContext<Self>,
    ) -> ProcessStatus {
        let _fp = denormal::DenormalGuard::enable();
        let t = context.transport();
        let transport = record::TransportInfo {
            // CLAP without a transport leaves `preroll_active` unset; VST3 without a process
            // context leaves `pos_samples` unset.
            has_transport: t.preroll_active.is_some() || t.pos_samples.is_some(),
            playing: t.playing,
            position: t.pos_samples(),
        };
        let armed = self.params.rec_arm.value();
        // The buffer is only read: the output is the input, bit for bit.
        if let Some(engine) = &mut self.engine {
            let (t, c) = self.params.target_levels();
            engine.set_target(t, c);
            let slices = buffer.as_slice_immutable();
            let mut planes: [&[f32]; MAX_CHANNELS] = [&[]; MAX_CHANNELS];
            let n = slices.len().min(MAX_CHANNELS);
            for (p, s) in planes.iter_mut().zip(slices.iter()) {
                *p = s;
            }
            if n > 0 {
                engine.process(&planes[..n]);
                if let Some((rec, _)) = &mut self.recorder {
                    rec.process(&planes[..n], armed, transport);
                }
            }
        }
        // A/B: after metering and recording the mix, the reference may replace it.
        if let Some(player) = &mut self.player {
            let (target, _) = self.params.target_levels();
            let control = reference::AbControl {
                listen: self.params.listen_reference.value() && !self.params.bypass.value(),
                slot: (self.params.reference_slot.value().max(1) - 1) as usize,
                sync: self.params.reference_sync.value(),
                mix_lufs: self
                    .shared
                    .integrated
                    .load(std::sync::atomic::Ordering::Relaxed),
                target_lufs: target,
                playing: transport.playing,
                position: transport.position,
            };
            let out = buffer.as_slice();
            let mut planes: [&mut [f32]; MAX_CHANNELS] = Default::default();
            let mut n = 0;
            for (p, s) in planes.iter_mut().zip(out.iter_mut()) {
                *p = s;
                n += 1;
            }
            player.process(&mut planes[..n], control);
            // The reference's own meters, on what is heard, from the moment it is switched on.
            let playing = player.playing();
            if let Some(loud) = &mut self.ref_loudness {
                let refs = &self.shared.references;
                if playing {
                    if !self.ref_was_playing {
                        loud.reset();
                    }
                    let heard: [&[f32]; MAX_CHANNELS] =
                        std::array::from_fn(|i| if i < n { &*planes[i] } else { &[][..] });
                    loud.process(&heard[..n]);
                    let ord = std::sync::atomic::Ordering::Relaxed;
                    for (slot, v) in refs.playing_lufs_bits.iter().zip(loud.readings()) {
                        slot.store(v.to_bits(), ord);
                    }
                } else if self.ref_was_playing {
                    for slot in &refs.playing_lufs_bits {
                        slot.store(f32::NAN.to_bits(), std::sync::atomic::Ordering::Relaxed);
                    }
                }
            }
            self.ref_was_playing = playing;
        }
        // KeepAlive, not Normal: meters must keep decaying and takes must have no gaps when the
        // input is silent, so the host must not stop calling us on silence.
        ProcessStatus::KeepAlive
    }
}

impl ClapPlugin for SluiceMeter {
    const CLAP_ID: &'static str = "org.sluice.meter";
    const CLAP_DESCRIPTION: Option<&'static str> =
        Some("Loudness, level, spectrum and stereo meters against delivery targets; records takes");
    const CLAP_MANUAL_URL: Option<&'static str> = None;
    const CLAP_SUPPORT_URL: Option<&'static str> = None;
    const CLAP_FEATURES: &'static [ClapFeature] = &[
        ClapFeature::AudioEffect,
        ClapFeature::Analyzer,
        ClapFeature::Utility,
        ClapFeature::Stereo,
        ClapFeature::Mono,
        ClapFeature::Surround,
    ];
}

impl Vst3Plugin for SluiceMeter {
    // Never change: hosts identify the plugin (and its saved state) by these bytes.
    const VST3_CLASS_ID: [u8; 16] = *b"SluiceMeterPlug1";
    const VST3_SUBCATEGORIES: &'static [Vst3SubCategory] = &[
        Vst3SubCategory::Fx,
        Vst3SubCategory::Analyzer,
        Vst3SubCategory::Tools,
    ];
}

nice_export_clap!(SluiceMeter);
nice_export_vst3!(SluiceMeter);
