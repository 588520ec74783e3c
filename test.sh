#!/usr/bin/env bash
# The whole Sluice test suite: the native workspace, then the wasm effects workspace.
set -euo pipefail
cd "$(dirname "$0")"
# The effects are built for wasm32: fetch the target once if this toolchain lacks it.
.ci/toolchain
cargo test --workspace --locked "$@"
cargo build --manifest-path effects/Cargo.toml --workspace --release --locked --target wasm32-unknown-unknown
