#!/usr/bin/env bash
# The whole Sluice test suite: the native workspace, then the wasm effects workspace.
set -euo pipefail
cd "$(dirname "$0")"
# The effects are built for wasm32: fetch the target once if this toolchain lacks it.
.ci/toolchain
# The plugin tests (tests/tests/plugin_*.rs) load the built bundles, not the crate: bundle the
# debug build (nice-plug's allocation checker on) into target/bundled first. `--workspace`:
# the build resolves features for the whole workspace as `cargo test --workspace` does, so the
# test build reuses every crate built here (with the plugin alone, ~40 crates shared with the
# host, egui and sluice-core among them, were built twice with other features: ~2 minutes of CI).
cargo run --locked -q -p xtask -- bundle sluice-plugin --locked --workspace
cargo test --workspace --locked "$@"
cargo build --manifest-path effects/Cargo.toml --workspace --release --locked --target wasm32-unknown-unknown
# The effects' native tests (DSP on generated audio, the SDK, and a check of every module built
# above), for the machine's own target since the effects workspace defaults to wasm32.
cargo test --manifest-path effects/Cargo.toml --workspace --locked --target "$(rustc -vV | sed -n 's/^host: //p')"
