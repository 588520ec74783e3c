#!/usr/bin/env bash
# The whole Sluice test suite: the native workspace, then the wasm effects workspace.
set -euo pipefail
cd "$(dirname "$0")"
cargo test --workspace --locked "$@"
cargo build --manifest-path effects/Cargo.toml --workspace --release
