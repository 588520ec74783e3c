//! The QC choice of one instance: the specification chosen (shared with the persisted
//! setting), the specification as loaded (read once per choice, off the audio thread) and the
//! last export's outcome. The judging and exporting are [`crate::qc`]'s.

use crate::params::QcSettings;
use sluice_core::qc::Spec;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

/// A specification as loaded, or why it could not be.
pub type Loaded = Result<Arc<Spec>, QcError>;

/// The files an export wrote, or why it failed.
pub type Exported = Result<Vec<PathBuf>, QcError>;

/// Why the session cannot be judged or its report written. (Cloned: the editor and the
/// diagnostics both show the last one, so the causes are shared.)
#[derive(Debug, Clone, thiserror::Error)]
pub enum QcError {
    #[error("no QC specification is chosen")]
    NoSpec,
    #[error("nothing measured yet: play some audio first")]
    NothingMeasured,
    #[error(transparent)]
    Spec(Arc<sluice_core::qc::SpecError>),
    #[error(transparent)]
    Write(Arc<sluice_core::io::FileError>),
    #[error("cannot write the report as JSON: {0}")]
    Json(Arc<serde_json::Error>),
}

/// The chosen specification, loaded once per choice (a file is read off the audio thread,
/// by the first reader after the choice changes).
#[derive(Debug, Default)]
pub struct LiveQc {
    /// Shared with [`crate::params::SluiceParams::qc`], so a state the host restores is seen.
    pub settings: Arc<RwLock<QcSettings>>,
    loaded: Mutex<Option<(String, Loaded)>>,
    /// The last export's files, or why it failed.
    last_export: Mutex<Option<Exported>>,
}

impl LiveQc {
    pub fn new(settings: Arc<RwLock<QcSettings>>) -> Self {
        LiveQc {
            settings,
            ..LiveQc::default()
        }
    }

    /// The setting in force (empty: none).
    pub fn chosen(&self) -> String {
        self.settings
            .read()
            .map(|s| s.spec.trim().to_string())
            .unwrap_or_default()
    }

    /// Chooses a specification (empty: none); saved with the state.
    pub fn choose(&self, spec: &str) {
        if let Ok(mut s) = self.settings.write() {
            s.spec = spec.trim().to_string();
        }
    }

    /// The chosen specification, or why it cannot be used; `None` when none is chosen.
    pub fn spec(&self) -> Option<Loaded> {
        let chosen = self.chosen();
        if chosen.is_empty() {
            return None;
        }
        let mut loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        match &*loaded {
            Some((name, spec)) if *name == chosen => Some(spec.clone()),
            _ => {
                let spec = sluice_core::qc::spec::load(&chosen)
                    .map(Arc::new)
                    .map_err(|e| QcError::Spec(Arc::new(e)));
                *loaded = Some((chosen, spec.clone()));
                Some(spec)
            }
        }
    }

    /// The last export's files, or why it failed.
    pub fn last_export(&self) -> Option<Exported> {
        self.last_export
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Records an export's outcome.
    pub fn exported(&self, result: Exported) {
        *self.last_export.lock().unwrap_or_else(|e| e.into_inner()) = Some(result);
    }
}
