#!/usr/bin/env bash
# Sluice Meter as a user installs it (issue 26): `cargo xtask install --into DIR` (a new
# temporary folder unless DIR is given), then
#   - each bundle at most 25 MB and without debug sections (readelf);
#   - the tests that load bundles (CLAP and VST3 test hosts: parameters, state, pass-through,
#     reference A/B, 100 editor openings each) run against the installed bundles;
#   - the validators, when their paths are given: CLAP_VALIDATOR=.../clap-validator,
#     VST3_VALIDATOR=.../validator (run with -e too), VST3_MODULEINFOTOOL=.../moduleinfotool.
#     They record takes while they set parameters at random: HOME is a scratch folder for them.
# Needs an X display or Xvfb for the editor test (as the test suite). Exits non-zero on any
# failure.
#
# usage: scripts/plugin-release-check.sh [DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${1:-$(mktemp -d -t sluice-install.XXXXXX)}"
limit=$((25 * 1000 * 1000))
cargo xtask install --into "$dir"
clap="$dir/Sluice Meter.clap"
vst3="$dir/Sluice Meter.vst3"
so="$vst3/Contents/$(uname -m)-linux/Sluice Meter.so"
fail=0
for f in "$clap" "$vst3"; do
    bytes=$(du -sb "$f" | cut -f1)
    echo "$(basename "$f"): $bytes bytes"
    if [ "$bytes" -gt "$limit" ]; then
        echo "FAIL: $f is over 25 MB"
        fail=1
    fi
done
for f in "$clap" "$so"; do
    if readelf -S "$f" | grep -q '\.debug_'; then
        echo "FAIL: $f has debug sections"
        fail=1
    else
        echo "$(basename "$f"): no debug sections"
    fi
done
SLUICE_PLUGIN_BUNDLES="$dir" cargo test -q -p sluice-tests --test plugin_clap --test plugin_vst3 \
    --test plugin_moduleinfo --test plugin_editor_openings || fail=1
scratch=$(mktemp -d -t sluice-validate.XXXXXX)
if [ -n "${CLAP_VALIDATOR:-}" ]; then
    HOME="$scratch" "$CLAP_VALIDATOR" validate "$clap" || fail=1
fi
if [ -n "${VST3_VALIDATOR:-}" ]; then
    HOME="$scratch" "$VST3_VALIDATOR" "$vst3" || fail=1
    HOME="$scratch" "$VST3_VALIDATOR" -e "$vst3" || fail=1
fi
if [ -n "${VST3_MODULEINFOTOOL:-}" ]; then
    "$VST3_MODULEINFOTOOL" -validate -path "$vst3" || fail=1
fi
rm -rf "$scratch"
if [ "$fail" -ne 0 ]; then
    echo "FAILED (bundles in $dir)"
    exit 1
fi
echo "ok: bundles in $dir"
