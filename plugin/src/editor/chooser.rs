//! The A/B row's file chooser: a program of its own (zenity, else kdialog), so no toolkit is
//! loaded into the host's process (a DAW built on GTK 2, as Ardour is, cannot take GTK 3 in).
//! The editor polls it once a frame; no thread of the plugin waits on it. Dropping the chooser
//! (the instance going) closes its window.
//!
//! `SLUICE_FILE_CHOOSER` names another program to run instead (no arguments; it prints the
//! chosen path and exits 0, or exits non-zero when nothing was chosen).

use std::io::Read;
use std::process::{Child, Command, Stdio};

/// The files the chooser offers first: audio the core decodes, and profile files.
const PATTERNS: &str = "*.wav *.WAV *.flac *.FLAC *.mp3 *.MP3 *.ogg *.opus *.aif *.aiff *.AIF \
                        *.AIFF *.m4a *.caf *.w64 *.json";

#[derive(Debug)]
pub struct Chooser {
    child: Child,
}

/// What a chooser came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Chosen {
    /// Still open.
    Open,
    /// A file.
    File(String),
    /// Closed without a choice.
    Nothing,
}

/// Why there is no chooser, or it failed.
#[derive(Debug, thiserror::Error)]
pub enum ChooserError {
    #[error("cannot open the file chooser {name}: {source}")]
    Start {
        name: String,
        source: std::io::Error,
    },
    #[error("no file chooser ({} not found): install zenity or kdialog, or type the path", .tried.join(", "))]
    None { tried: Vec<String> },
    #[error("the file chooser: {0}")]
    Wait(std::io::Error),
}

impl Chooser {
    /// Opens the chooser for a reference or a profile, or says why there is none.
    pub fn open() -> Result<Chooser, ChooserError> {
        Chooser::open_with(
            "Sluice Meter: a reference (audio) or a profile (.json)",
            "Audio and profiles",
            PATTERNS,
        )
    }

    /// Opens the chooser for a delivery specification (TOML).
    pub fn open_spec() -> Result<Chooser, ChooserError> {
        Chooser::open_with(
            "Sluice Meter: a delivery specification (.toml)",
            "Delivery specifications",
            "*.toml *.TOML",
        )
    }

    fn open_with(title: &str, kind: &str, patterns: &str) -> Result<Chooser, ChooserError> {
        let mut tried = Vec::new();
        let commands: Vec<Command> = match std::env::var_os("SLUICE_FILE_CHOOSER") {
            Some(p) if !p.is_empty() => vec![Command::new(p)],
            _ => {
                let mut zenity = Command::new("zenity");
                zenity.args([
                    "--file-selection",
                    &format!("--title={title}"),
                    &format!("--file-filter={kind} | {patterns}"),
                    "--file-filter=All files | *",
                ]);
                let mut kdialog = Command::new("kdialog");
                kdialog.args([
                    "--title",
                    title,
                    "--getopenfilename",
                    ".",
                    &format!("{patterns}|{kind}"),
                ]);
                vec![zenity, kdialog]
            }
        };
        for mut c in commands {
            let name = c.get_program().to_string_lossy().into_owned();
            match c
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
            {
                Ok(child) => return Ok(Chooser { child }),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => tried.push(name),
                Err(source) => return Err(ChooserError::Start { name, source }),
            }
        }
        Err(ChooserError::None { tried })
    }

    /// Whether it has closed, and with what.
    pub fn poll(&mut self) -> Result<Chosen, ChooserError> {
        match self.child.try_wait() {
            Ok(None) => Ok(Chosen::Open),
            Ok(Some(status)) => {
                let mut out = String::new();
                if let Some(mut pipe) = self.child.stdout.take() {
                    let _ = pipe.read_to_string(&mut out);
                }
                let path = out.lines().next().unwrap_or("").trim().to_string();
                if status.success() && !path.is_empty() {
                    Ok(Chosen::File(path))
                } else {
                    Ok(Chosen::Nothing)
                }
            }
            Err(e) => Err(ChooserError::Wait(e)),
        }
    }
}

impl Drop for Chooser {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}
