//! Sluice Meter's parameters and persisted settings.
//!
//! Parameter ids are stable: hosts store automation and state under them, so they are never
//! renamed. Meter readings are **not** parameters (they reach the editor and the tests through
//! [`crate::shared`]); the only parameters are what a user sets.

use nice_plug::prelude::*;
use serde::{Deserialize, Serialize};
use std::sync::{Arc, RwLock};

/// Reference slots.
pub const MAX_REFERENCES: usize = 4;

/// What the state saves: the references' files and how they play.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ReferenceSettings {
    /// One path per slot (empty: no reference there).
    pub paths: Vec<String>,
    /// Follow the host's timeline (true) or loop freely.
    pub sync_to_transport: bool,
    /// A profile file (`sluice ref profile export`) to hold the mix's tonal balance against
    /// (empty: the loaded references are the target).
    pub profile: String,
}

impl Default for ReferenceSettings {
    fn default() -> Self {
        ReferenceSettings {
            paths: vec![String::new(); MAX_REFERENCES],
            sync_to_transport: true,
            profile: String::new(),
        }
    }
}

/// The delivery target the meters compare against. The variants mirror
/// [`sluice_core::analysis::targets::PRESETS`] (a test keeps them in step), plus a custom target
/// set by two parameters.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetPreset {
    #[id = "spotify"]
    #[name = "Spotify / YouTube (-14 LUFS)"]
    Spotify,
    #[id = "apple_music"]
    #[name = "Apple Music (-16 LUFS)"]
    AppleMusic,
    #[id = "podcast"]
    #[name = "Podcast (-16 LUFS)"]
    Podcast,
    #[id = "ebu_r128"]
    #[name = "EBU R 128 (-23 LUFS)"]
    EbuR128,
    #[id = "atsc_a85"]
    #[name = "ATSC A/85 (-24 LKFS)"]
    AtscA85,
    #[id = "custom"]
    #[name = "Custom"]
    Custom,
}

impl TargetPreset {
    /// The core preset id, `None` for the custom target.
    pub fn core_id(self) -> Option<&'static str> {
        match self {
            TargetPreset::Spotify => Some("spotify"),
            TargetPreset::AppleMusic => Some("apple_music"),
            TargetPreset::Podcast => Some("podcast"),
            TargetPreset::EbuR128 => Some("ebu_r128"),
            TargetPreset::AtscA85 => Some("atsc_a85"),
            TargetPreset::Custom => None,
        }
    }

    /// (integrated LUFS, true-peak ceiling dBTP) from the core's preset table, or the custom
    /// values given.
    pub fn levels(self, custom_lufs: f32, custom_ceiling: f32) -> (f32, f32) {
        match self.core_id() {
            Some(id) => sluice_core::analysis::targets::PRESETS
                .iter()
                .find(|p| p.0 == id)
                .map(|p| (p.2 as f32, p.3 as f32))
                .unwrap_or((custom_lufs, custom_ceiling)),
            None => (custom_lufs, custom_ceiling),
        }
    }
}

/// What the state saves of delivery QC: the specification the session is judged against
/// (see [`crate::qc`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct QcSettings {
    /// A built-in specification's id (`ebu-r128`) or a specification file's path; empty: no
    /// QC.
    pub spec: String,
}

/// What a take is written as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TakeFormat {
    /// WAV, 24-bit integer (BWF with `bext`).
    #[default]
    Wav24,
    /// WAV, 32-bit float (BWF with `bext`).
    Wav32Float,
    /// FLAC, 24-bit.
    Flac24,
}

/// Persisted recording options. Every field has a default, so state saved by an older version
/// (with fewer fields) still loads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ExportSettings {
    /// Folder the takes are written to; empty means the default (see [`crate::record`]).
    pub folder: String,
    pub format: TakeFormat,
    /// After a take ends, write a copy normalized to the target preset beside it (offline).
    pub normalize_on_finalize: bool,
    /// Prefix of take file names.
    pub name_prefix: String,
}

impl Default for ExportSettings {
    fn default() -> Self {
        ExportSettings {
            folder: String::new(),
            format: TakeFormat::Wav24,
            normalize_on_finalize: false,
            name_prefix: "Sluice take".into(),
        }
    }
}

#[derive(Params)]
pub struct SluiceParams {
    /// Arms recording: while on and the transport plays (or always, without a transport), what
    /// passes through is written to a take.
    #[id = "recarm"]
    pub rec_arm: BoolParam,
    #[id = "target"]
    pub target: EnumParam<TargetPreset>,
    #[id = "cuslufs"]
    pub custom_lufs: FloatParam,
    #[id = "custp"]
    pub custom_ceiling: FloatParam,
    #[persist = "export"]
    pub export: Arc<RwLock<ExportSettings>>,
    /// The host's bypass: the output is the input (no reference played).
    #[id = "bypass"]
    pub bypass: BoolParam,
    /// The Mix / Ref switch: on, the output is the chosen reference, level-matched.
    #[id = "abref"]
    pub listen_reference: BoolParam,
    /// Which reference slot plays (1-based).
    #[id = "refslot"]
    pub reference_slot: IntParam,
    /// The reference follows the host's timeline (on) or loops freely.
    #[id = "refsync"]
    pub reference_sync: BoolParam,
    /// The references' files (see [`ReferenceSettings`]).
    #[persist = "references"]
    pub references: Arc<RwLock<ReferenceSettings>>,
    /// How the editor shows things (history span, tonal balance, peak hold).
    #[persist = "editor"]
    pub editor: Arc<RwLock<EditorSettings>>,
    /// The delivery specification the session is judged against (see [`crate::qc`]).
    #[persist = "qc"]
    pub qc: Arc<RwLock<QcSettings>>,
}

/// The editor's choices, saved with the state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EditorSettings {
    /// The history's span, by its label ("10 s", "1 min", "5 min", "30 min", "Session").
    pub span: String,
    pub tonal: bool,
    pub peak_hold: bool,
}

impl Default for EditorSettings {
    fn default() -> Self {
        EditorSettings {
            span: "Session".into(),
            tonal: false,
            peak_hold: true,
        }
    }
}

impl Default for SluiceParams {
    fn default() -> Self {
        SluiceParams {
            rec_arm: BoolParam::new("Record arm", false),
            target: EnumParam::new("Target", TargetPreset::Spotify),
            custom_lufs: FloatParam::new(
                "Custom target",
                -14.0,
                FloatRange::Linear {
                    min: -40.0,
                    max: 0.0,
                },
            )
            .with_unit(" LUFS")
            .with_step_size(0.1),
            custom_ceiling: FloatParam::new(
                "Custom ceiling",
                -1.0,
                FloatRange::Linear {
                    min: -12.0,
                    max: 0.0,
                },
            )
            .with_unit(" dBTP")
            .with_step_size(0.1),
            export: Arc::new(RwLock::new(ExportSettings::default())),
            bypass: BoolParam::new("Bypass", false).make_bypass(),
            listen_reference: BoolParam::new("Listen to reference", false)
                .with_value_to_string(Arc::new(|v| if v { "Ref" } else { "Mix" }.into()))
                .with_string_to_value(Arc::new(|s| match s.trim().to_ascii_lowercase().as_str() {
                    "ref" | "reference" | "on" | "true" | "1" => Some(true),
                    "mix" | "off" | "false" | "0" => Some(false),
                    _ => None,
                })),
            reference_slot: IntParam::new(
                "Reference",
                1,
                IntRange::Linear {
                    min: 1,
                    max: MAX_REFERENCES as i32,
                },
            ),
            reference_sync: BoolParam::new("Reference follows transport", true),
            references: Arc::new(RwLock::new(ReferenceSettings::default())),
            editor: Arc::new(RwLock::new(EditorSettings::default())),
            qc: Arc::new(RwLock::new(QcSettings::default())),
        }
    }
}

impl SluiceParams {
    /// The target in force: (integrated LUFS, true-peak ceiling dBTP).
    pub fn target_levels(&self) -> (f32, f32) {
        self.target
            .value()
            .levels(self.custom_lufs.value(), self.custom_ceiling.value())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_core::analysis::targets::PRESETS;

    /// Every parameter's text converts back to the value it was made from (clap-validator's
    /// `param-conversions`: value → text → value → text must agree).
    #[test]
    fn every_parameter_reads_back_its_own_text() {
        let params = SluiceParams::default();
        for (id, ptr, _) in params.param_map() {
            for i in 0..=20 {
                let v = i as f32 / 20.0;
                // SAFETY: the pointer is to a parameter of `params`, alive for the loop.
                unsafe {
                    let text = ptr.normalized_value_to_string(v, true);
                    let back = ptr
                        .string_to_normalized_value(&text)
                        .unwrap_or_else(|| panic!("{id}: '{text}' does not parse"));
                    let again = ptr.normalized_value_to_string(back, true);
                    assert_eq!(text, again, "{id}: {v} -> '{text}' -> {back} -> '{again}'");
                }
            }
        }
    }

    #[test]
    fn presets_mirror_the_core_table() {
        let ids = TargetPreset::ids().unwrap();
        let core: Vec<&str> = PRESETS.iter().map(|p| p.0).collect();
        assert_eq!(
            &ids[..ids.len() - 1],
            &core[..],
            "preset ids drifted from core"
        );
        for (i, p) in PRESETS.iter().enumerate() {
            let v = TargetPreset::from_index(i);
            assert_eq!(v.core_id(), Some(p.0));
            assert_eq!(v.levels(0.0, 0.0), (p.2 as f32, p.3 as f32));
        }
        assert_eq!(TargetPreset::Custom.levels(-9.0, -0.3), (-9.0, -0.3));
    }

    #[test]
    fn old_state_without_new_fields_still_loads() {
        let s: ExportSettings = serde_json::from_str(r#"{"folder":"/takes"}"#).unwrap();
        assert_eq!(s.folder, "/takes");
        assert_eq!(s.format, TakeFormat::Wav24);
        let s: ExportSettings = serde_json::from_str("{}").unwrap();
        assert_eq!(s, ExportSettings::default());
    }
}
