#!/usr/bin/env bash
# The whole Sluice test suite: the native workspace, then the wasm effects workspace.
set -euo pipefail
cd "$(dirname "$0")"
# The effects are built for wasm32: fetch the target once if this toolchain lacks it.
.ci/toolchain
# The plugin tests (tests/tests/plugin_*.rs) load the built bundles, not the crate: bundle the
# debug build (nice-plug's allocation checker on) into target/bundled first. The build is the
# test build itself (`--workspace --lib --bins --tests --examples`): cargo resolves features
# per command, and with the plugin alone (or without the test targets, whose dev-dependencies
# add features such as sluice-core's `count-opens`) ~40 crates, sluice-core, egui and the host
# among them, were built twice with other features, minutes of CI. `cargo test` then only runs.
cargo run --locked -q -p xtask -- bundle sluice-plugin --locked --workspace --lib --bins --tests --examples
cargo test --workspace --locked "$@"
cargo build --manifest-path effects/Cargo.toml --workspace --release --locked --target wasm32-unknown-unknown
# The effects' native tests (DSP on generated audio, the SDK, and a check of every module built
# above), for the machine's own target since the effects workspace defaults to wasm32.
cargo test --manifest-path effects/Cargo.toml --workspace --locked --target "$(rustc -vV | sed -n 's/^host: //p')"
