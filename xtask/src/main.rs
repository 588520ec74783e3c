//! `cargo xtask <task>`: Sluice's build tasks.
//!
//! The only planned task so far is `bundle` (CLAP + VST3 bundles of Sluice Meter through
//! nice-plug-xtask), which arrives with the plugin. Until then every task is refused honestly.

use std::process::ExitCode;

fn main() -> ExitCode {
    let task = std::env::args().nth(1);
    match task.as_deref() {
        None | Some("help" | "-h" | "--help") => {
            println!(
                "usage: cargo xtask <task>\n\ntasks:\n  (none yet: `bundle` arrives with the Sluice Meter plugin)"
            );
            ExitCode::SUCCESS
        }
        Some(other) => {
            eprintln!(
                "xtask: unknown task `{other}` (no tasks exist yet; `bundle` arrives with the plugin)"
            );
            ExitCode::from(2)
        }
    }
}
