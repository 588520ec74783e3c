//! Progress bars on the terminal: the command line's [`Progress`] for the engine's analyses
//! (a bar per file, under one `MultiProgress`), drawn only when stderr is a terminal.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use sluice_host::analyze::{FileProgress, Progress};
use std::path::Path;

/// A bar per file being analysed, when `shown`.
pub struct Bars {
    multi: MultiProgress,
}

impl Bars {
    pub fn new(shown: bool) -> Bars {
        Bars {
            multi: MultiProgress::with_draw_target(if shown {
                ProgressDrawTarget::stderr()
            } else {
                ProgressDrawTarget::hidden()
            }),
        }
    }
}

/// One file's bar, cleared when the file ends.
struct Bar(ProgressBar);

impl Progress for Bars {
    fn file(&self, path: &Path, frames: Option<u64>) -> Box<dyn FileProgress + '_> {
        let name = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        let pb = self.multi.add(match frames {
            Some(f) => ProgressBar::new(f),
            None => ProgressBar::no_length(),
        });
        pb.set_style(
            ProgressStyle::with_template(
                "{prefix:.bold} [{bar:30}] {percent:>3}% {elapsed} ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        pb.set_prefix(name);
        Box::new(Bar(pb))
    }
}

impl FileProgress for Bar {
    fn at(&self, frames: u64) {
        self.0.set_position(frames);
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}
