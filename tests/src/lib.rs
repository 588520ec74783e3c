//! Cross-component tests of Sluice live in `tests/tests/`. This library holds what they share:
//!
//! - [`bundles`]: where the built plugin bundles are (`cargo xtask bundle sluice-plugin` writes
//!   them; `./test.sh` does that before `cargo test`);
//! - [`clap_host`] and [`vst3_host`]: two small but real hosts that load the *built* Sluice Meter
//!   (never the crate), list and set its parameters, activate it, process audio on an audio
//!   thread of their own, with or without a transport, and save and restore its state;
//! - [`diagnostics`]: the plugin's exported `sluice_meter_diagnostics_v1` hook, read from either
//!   host;
//! - [`audio`]: generated test audio and a bit-exact comparison that says where it differs;
//! - [`clap_gui`] and [`xdisplay`]: the editor tests' CLAP host with a GUI, an X display
//!   (Xvfb when none is given), a parent window and its capture as PNG.

pub mod audio;
pub mod bundles;
pub mod clap_gui;
pub mod clap_host;
pub mod diagnostics;
pub mod vst3_host;
pub mod xdisplay;

/// The position of a host's transport for one `process` run: `playing` and the song position of
/// the first sample, in samples. While playing, the position advances by each block's length;
/// stopped, it stays where it is (as in a DAW).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transport {
    pub playing: bool,
    pub position_samples: i64,
}

/// Splits `frames` into blocks of the sizes in `pattern`, repeated, the last block cut to what
/// is left. `pattern` must not be empty or contain 0.
/// Holds a host's audio loop to at most `speed` times real time (`None`: as fast as it goes),
/// as a DAW playing or bouncing does; a test host otherwise runs far faster than any.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    start: std::time::Instant,
    frames_per_second: Option<f64>,
}

impl Pace {
    pub fn new(sample_rate: f64, speed: Option<f64>) -> Self {
        Pace {
            start: std::time::Instant::now(),
            frames_per_second: speed.map(|s| s * sample_rate),
        }
    }

    /// After `frames` frames since `new`: waits until their time has come.
    pub fn after(&self, frames: usize) {
        if let Some(fps) = self.frames_per_second {
            let due = std::time::Duration::from_secs_f64(frames as f64 / fps);
            if let Some(wait) = due.checked_sub(self.start.elapsed()) {
                std::thread::sleep(wait);
            }
        }
    }
}

pub fn block_lengths(frames: usize, pattern: &[usize]) -> anyhow::Result<Vec<usize>> {
    anyhow::ensure!(!pattern.is_empty(), "the block pattern is empty");
    anyhow::ensure!(
        !pattern.contains(&0),
        "the block pattern {pattern:?} contains a 0-frame block"
    );
    let mut out = Vec::new();
    let mut done = 0;
    for &len in pattern.iter().cycle() {
        if done == frames {
            break;
        }
        let len = len.min(frames - done);
        out.push(len);
        done += len;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::block_lengths;

    #[test]
    fn blocks_cycle_and_the_last_is_cut() {
        assert_eq!(block_lengths(10, &[3]).unwrap(), vec![3, 3, 3, 1]);
        assert_eq!(block_lengths(10, &[1, 4]).unwrap(), vec![1, 4, 1, 4]);
        assert_eq!(block_lengths(0, &[7]).unwrap(), Vec::<usize>::new());
        assert!(block_lengths(5, &[]).is_err());
        assert!(block_lengths(5, &[2, 0]).is_err());
    }
}
