#!/usr/bin/env bash
# The whole Sluice test suite: the native workspace, then the wasm effects workspace.
set -euo pipefail
cd "$(dirname "$0")"
# The effects are built for wasm32; rustup fetches the target once if this toolchain lacks it.
if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  rustup target add wasm32-unknown-unknown
fi
cargo test --workspace --locked "$@"
cargo build --manifest-path effects/Cargo.toml --workspace --release --locked --target wasm32-unknown-unknown
