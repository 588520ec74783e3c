//! Helpers shared by the host's integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The `sluice` binary under test.
pub fn sluice() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
}

/// A fixture of the core's test suite.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../core/tests/fixtures")
        .join(name)
}

/// An external tool on `PATH` (or in `/usr/bin`). Missing, it is `None` and the check is
/// skipped with a notice, unless `SLUICE_REQUIRE_TOOLS=1`, when the test fails.
pub fn tool(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain([PathBuf::from("/usr/bin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file());
    if found.is_none() {
        assert!(
            std::env::var("SLUICE_REQUIRE_TOOLS").as_deref() != Ok("1"),
            "{name} is required (SLUICE_REQUIRE_TOOLS=1) but was not found"
        );
        eprintln!("SKIPPED: {name} not found (SLUICE_REQUIRE_TOOLS=1 makes this fail)");
    }
    found
}
