#!/usr/bin/env sh
# Builds c-gain.wasm from gain.c and descriptor.json (its sluice_effect section). The result is committed next to this script so that the
# repository's tests (which check every effect module, see sdk/tests/modules.rs) need only the
# Rust toolchain; rerun this after changing gain.c. Needs clang and wasm-ld (Debian/Ubuntu:
# apt-get install clang lld).
set -eu
cd "$(dirname "$0")"
clang --target=wasm32 -O2 -nostdlib -ffreestanding \
  -Wall -Wextra -Werror \
  -Wl,--no-entry \
  -Wl,--strip-debug \
  -o c-gain.wasm gain.c
# A quick look, when the tools are there: the custom section and the (absent) imports.
if command -v wasm-objdump >/dev/null 2>&1; then
  wasm-objdump -h c-gain.wasm | grep -E 'Custom|Import|Export'
  if wasm-objdump -x -j Import c-gain.wasm 2>&1 | grep -q 'Section not found'; then
    echo "no imports"
  fi
fi
