#!/usr/bin/env bash
# Ardour 7 render check for Sluice Meter (VST3): renders a short session headless through the
# plugin in Ardour and compares the output with the input, sample by sample. Not part of CI
# (.ci/run, test.sh): it needs Ardour 7, which the CI machines do not have.
#
#   scripts/ardour-render.sh [--bundle PATH] [--install-ardour] [--seconds N] [--strict] [--take] [--keep]
#
#   --bundle PATH      use this "Sluice Meter.vst3" instead of building it
#                      (default: cargo run -p xtask -- bundle sluice-plugin --release)
#   --install-ardour   apt-get install ardour (and python3) when Ardour 7 is missing; root only
#   --seconds N        length of the generated programme (default 15)
#   --strict           also fail when the render is not bit-identical to the input file itself
#                      (Ardour's own signal path writes -0.0 as +0.0; see docs/PLUGIN.md)
#   --take             also render a third session with Sluice Meter's Record arm on (in this
#                      script's private HOME) and check the take it records: one take, the
#                      programme within 0.5 LSB, placed where its bext time reference says
#   --keep             keep the work directory (sessions, logs, renders) and print its path
#
# Ardour 7 on Debian 12: `apt-get install ardour` (1:7.3.0). The script uses ardour7-lua
# (headless Lua sessions), ardour7-export and Ardour's ardour-vst3-scanner; set ARDOUR_VST3_SCANNER
# if the scanner is somewhere other than /usr/lib/ardour7/.
#
# What it does (everything under a temporary directory, Ardour run with HOME pointing there, so
# the user's Ardour configuration, plugin cache and ~/.vst3 are untouched):
#  1. builds the release bundle (or takes --bundle), copies it to $HOME/.vst3, runs Ardour's VST3
#     scanner on it, and checks that the scanner found Sluice Meter;
#  2. generates a stereo 48 kHz 32-bit float programme (silence, tones, noise, a mixed section,
#     exact +/-1.0 and near-full-scale parts, subnormals and negative zeros);
#  3. for two sessions, "plugin" (Sluice Meter VST3 inserted pre-fader on the track) and "control"
#     (the same without it): creates the session headless with one stereo track, saves, closes;
#     adds the programme as two mono sources + a whole-file region (what Ardour's import makes);
#     re-opens the session (Ardour restores the plugin from its saved state), puts the region on
#     the track at 0 with fades off, saves, closes; then ardour7-export re-opens it once more and
#     renders the session range from the master bus to a 32-bit float WAV (no dither, no
#     normalization); a last re-open (Lua) checks that the track carries a live Sluice Meter VST3
#     plugin insert (or none, for the control) with record arm off;
#  4. checks the plugin's own state survived the save/re-open/save cycle byte for byte, that the
#     export process loaded the bundle's .so, and that no take was written to ~/Sluice Takes;
#  5. renders both sessions twice: with Ardour's default configuration, and with Ardour's
#     denormal model set to "None" (Ardour then never flushes subnormals: a plugin that left
#     FTZ/DAZ set on Ardour's thread would show up as a difference from the control);
#  6. compares each render with the input and with the control render (scripts/ardour-render.py
#     compare). Pass: the plugin render is bit-identical to the control render, and bit-exact to
#     the input except where the control differs too in Ardour's own handling of negative zeros
#     and (default denormal model) subnormals. Exit status 0 on a pass, 1 on a failed comparison,
#     2 on a setup or Ardour error.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/.." && pwd)"
bundle=""
install=0
seconds=15
strict=""
keep=0
take=0
rate=48000
uid="536C756963654D65746572506C756731" # Sluice Meter's VST3 class id

die() { echo "ardour-render: error: $*" >&2; keep=1; exit 2; }
step() { echo; echo "== $*"; }

while [ $# -gt 0 ]; do
  case "$1" in
    --bundle) bundle="${2:?--bundle needs a path}"; shift 2 ;;
    --install-ardour) install=1; shift ;;
    --seconds) seconds="${2:?--seconds needs a number}"; shift 2 ;;
    --strict) strict="--strict"; shift ;;
    --keep) keep=1; shift ;;
    --take) take=1; shift ;;
    -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done

# ---------------------------------------------------------------- tools
find_scanner() {
  if [ -n "${ARDOUR_VST3_SCANNER:-}" ]; then echo "$ARDOUR_VST3_SCANNER"; return; fi
  for f in /usr/lib/ardour7/ardour-vst3-scanner /usr/lib/*/ardour7/ardour-vst3-scanner /usr/local/lib/ardour7/ardour-vst3-scanner; do
    [ -x "$f" ] && { echo "$f"; return; }
  done
  if command -v dpkg >/dev/null; then
    dpkg -L ardour 2>/dev/null | grep -m1 '/ardour-vst3-scanner$' || true
  fi
}
have_ardour() { command -v ardour7-lua >/dev/null && command -v ardour7-export >/dev/null && [ -n "$(find_scanner)" ]; }

if ! have_ardour; then
  if [ "$install" = 1 ]; then
    [ "$(id -u)" = 0 ] || die "--install-ardour needs root (apt-get install ardour)"
    step "installing Ardour 7 (apt-get install ardour)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ardour python3 >/dev/null
  fi
  have_ardour || die "Ardour 7 not found (need ardour7-lua, ardour7-export and ardour-vst3-scanner): on Debian 12 run 'apt-get install ardour', or rerun this script as root with --install-ardour"
fi
command -v python3 >/dev/null || die "python3 not found (apt-get install python3)"
scanner="$(find_scanner)"
ardour_libdir="$(dirname "$scanner")"
ardour_version="$(ardour7-export --version 2>/dev/null | head -1)"
if command -v dpkg-query >/dev/null; then
  ardour_version="$ardour_version (Debian package $(dpkg-query -W -f '${Package} ${Version}' ardour 2>/dev/null || echo '?'))"
fi

# ---------------------------------------------------------------- bundle
if [ -z "$bundle" ]; then
  step "building the release bundle (cargo xtask bundle sluice-plugin --release)"
  (cd "$repo" && cargo run --locked -q -p xtask -- bundle sluice-plugin --release --locked) ||
    die "building the release bundle failed"
  bundle="$repo/target/bundled/Sluice Meter.vst3"
fi
[ -d "$bundle" ] || die "no VST3 bundle at $bundle"
bundle="$(cd "$bundle" && pwd)"
[ -n "$(find "$bundle/Contents/x86_64-linux" -maxdepth 1 -name '*.so')" ] || die "$bundle has no Contents/x86_64-linux/*.so"

# ---------------------------------------------------------------- work directory, private HOME
work="$(mktemp -d "${TMPDIR:-/tmp}/sluice-ardour.XXXXXX")"
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() { if [ "$keep" = 1 ]; then echo "work directory kept: $work"; else rm -rf "$work"; fi; }
trap cleanup EXIT
export HOME="$work/home" XDG_CONFIG_HOME="$work/home/.config" XDG_CACHE_HOME="$work/home/.cache" XDG_DATA_HOME="$work/home/.local/share"
export LC_ALL=C # Lua's "insert region" operation name must be Ardour's untranslated one
unset VST3_PATH
mkdir -p "$HOME/.vst3" "$work/logs"
cp -r "$bundle" "$HOME/.vst3/Sluice Meter.vst3"
# Ardour 7.3 takes a scanner cache file as valid only if the plugin's mtime is strictly older (in
# whole seconds) than the cache's; a copy made in the same second as the scan would be ignored
# ("scan-result 2", plugin missing). Date the copy a minute back.
find "$HOME/.vst3/Sluice Meter.vst3" -exec touch -h -d "@$(($(date +%s) - 60))" {} +
vst3="$HOME/.vst3/Sluice Meter.vst3"
so="$(find "$vst3/Contents/x86_64-linux" -maxdepth 1 -name '*.so' | head -1)"
lua="$here/ardour-render.lua"
py="$here/ardour-render.py"
echo "Ardour:   $ardour_version"
echo "bundle:   $bundle ($(du -sh "$so" | cut -f1) .so, sha256 $(sha256sum "$so" | cut -c1-16)…)"
echo "work dir: $work"

# run LOG CMD...: run an Ardour tool with a time limit, its output to LOG; on failure show the log
run() {
  local log="$work/logs/$1"; shift
  if ! timeout 600 "$@" >"$log" 2>&1; then
    echo "---- $log (last 30 lines)" >&2; tail -n 30 "$log" >&2
    die "failed: $*"
  fi
}
# export_render NAME SESSION_DIR SESSION OUT: ardour7-export to OUT (32-bit float, no dither, no
# normalization), with LD_DEBUG=files so the log shows which shared objects the process loaded.
# ardour7-export 7.3 sometimes crashes: in glibc's heap checks ("double free or corruption",
# "free(): invalid next size") while tearing down after the export has finished (seen in
# ~PortExportChannel), and also at the start of the export ("munmap_chunk(): invalid pointer",
# SIGSEGV), in sessions with and without the plugin alike. Such an attempt (SIGABRT or SIGSEGV) is
# logged, counted per session, reported in the summary and retried, up to 4 attempts; the summary
# shows whether the control session (no plugin) crashed too. Any other failure stops the script.
declare -A export_crashes=()
export_render() {
  local name="$1" dir="$2" sess="$3" out="$4" attempt rc log
  local buf=(); command -v stdbuf >/dev/null && buf=(stdbuf -oL -eL)
  export_crashes[$name]=0
  for attempt in 1 2 3 4; do
    log="$work/logs/export-$name.log"
    rm -f "$out"
    rc=0
    timeout 600 env LD_DEBUG=files "${buf[@]}" ardour7-export -b float -s "$rate" -o "$out" "$dir" "$sess" >"$log" 2>&1 || rc=$?
    [ "$rc" = 0 ] && return 0
    if [ "$rc" = 134 ] || [ "$rc" = 139 ]; then
      local when="at the start"
      grep -q '^\* Done\.' "$log" && when="after '* Done.'"
      export_crashes[$name]=$((export_crashes[$name] + 1))
      mv "$log" "$work/logs/export-$name.crash-$attempt.log"
      echo "   ($name: ardour7-export crashed (exit $rc) $when, attempt $attempt:" \
        "$(grep -m1 -E 'free|corrupt|malloc|munmap|Segmentation' "$work/logs/export-$name.crash-$attempt.log" || echo '?'); retrying)"
      continue
    fi
    echo "---- $log (last 30 lines)" >&2; tail -n 30 "$log" >&2
    die "ardour7-export failed (exit $rc) for session '$sess'"
  done
  die "ardour7-export crashed in all 4 attempts for session '$sess'"
}

lua_step() { # lua_step LOG STEP ARGS...: also requires the step's success line
  local log="$1"; shift
  run "$log" ardour7-lua "$lua" "$@"
  grep -v '^$' "$work/logs/$log" | grep -E '^  |LUA-STEP-OK' | sed 's/^/   /'
  grep -q "^LUA-STEP-OK $1\$" "$work/logs/$log" || die "Lua step $1 did not complete (see $work/logs/$log)"
}

# ---------------------------------------------------------------- 1. scan
step "scanning the bundle with Ardour's VST3 scanner"
run scan.log env LD_LIBRARY_PATH="$ardour_libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$scanner" -f -v "$vst3"
grep -q 'Found Plugin: Sluice Meter' "$work/logs/scan.log" || die "the scanner did not find Sluice Meter (see $work/logs/scan.log)"
ls "$HOME"/.cache/ardour7/vst/*.v3i >/dev/null 2>&1 || die "the scanner wrote no cache file in $HOME/.cache/ardour7/vst"
grep -E 'Found Plugin|VST3Info ' "$work/logs/scan.log" | sed 's/^[[:space:]]*/   /' | cut -c1-200

# ---------------------------------------------------------------- 2. input
step "generating the input programme"
python3 "$py" gen "$work/input.wav" "$seconds" "$rate" | sed 's/^/   /'

# ---------------------------------------------------------------- 3. sessions
for s in plugin control; do
  with=1; [ "$s" = control ] && with=0
  dir="$work/sessions/$s"
  mkdir -p "$work/sessions"
  step "session '$s': create (Lua), import, re-open and place the region (Lua)"
  lua_step "$s-create.log" create "$dir" "$s" "$rate" "$with"
  cp "$dir/$s.ardour" "$work/$s-created.ardour"
  af="$dir/interchange/$s/audiofiles"
  [ -d "$af" ] || die "Ardour did not create $af"
  python3 "$py" split "$work/input.wav" "$af/programme-L.wav" "$af/programme-R.wav"
  python3 "$py" inject "$dir/$s.ardour" "$af/programme-L.wav" "$af/programme-R.wav" | sed 's/^/   /'
  lua_step "$s-place.log" place "$dir" "$s" "$with"
  cp "$dir/$s.ardour" "$work/$s-placed.ardour"
done

step "the plugin's state after save -> re-open -> save (session XML)"
python3 "$py" chunk "$work/plugin-placed.ardour" | sed 's/^/   /'
if ! cmp -s <(python3 "$py" chunk "$work/plugin-created.ardour" | grep 'sha256') \
            <(python3 "$py" chunk "$work/plugin-placed.ardour" | grep 'sha256'); then
  die "Sluice Meter's state chunk differs after Ardour re-opened and re-saved the session"
fi
echo "   state chunk identical before and after the re-open: yes"
if python3 "$py" chunk "$work/control-placed.ardour" >/dev/null 2>&1; then
  die "the control session contains Sluice Meter"
fi

# ---------------------------------------------------------------- 4./5. renders
status=0
cfgdir="$XDG_CONFIG_HOME/ardour7"
mkdir -p "$cfgdir"
for cfg in default denormal-none; do
  step "rendering both sessions with ardour7-export, Ardour configuration: $cfg"
  rm -f "$cfgdir/config"
  if [ "$cfg" = denormal-none ]; then
    cat >"$cfgdir/config" <<'EOF'
<?xml version="1.0" encoding="UTF-8"?>
<Ardour>
  <Config>
    <Option name="denormal-model" value="DenormalNone"/>
  </Config>
</Ardour>
EOF
  fi
  for s in plugin control; do
    out="$work/render-$cfg-$s.wav"
    log="export-$cfg-$s.log"
    export_render "$cfg-$s" "$work/sessions/$s" "$s" "$out"
    [ -s "$out" ] || die "ardour7-export wrote no $out (see $work/logs/$log)"
    if grep -Ev '^[[:space:]]*[0-9]+:|file=|calling (init|fini)' "$work/logs/$log" | grep -Ei 'error|fail|missing|cannot|unknown' >"$work/logs/$log.errors"; then
      cat "$work/logs/$log.errors" >&2
      die "ardour7-export reported errors for session '$s' (see $work/logs/$log)"
    fi
    loaded=0
    grep -qF "calling init: $so" "$work/logs/$log" && loaded=1
    if [ "$s" = plugin ] && [ "$loaded" = 0 ]; then die "ardour7-export did not load $so"; fi
    if [ "$s" = control ] && [ "$loaded" = 1 ]; then die "the control export loaded $so"; fi
    echo "   $s: $(basename "$out") written; Sluice Meter .so loaded by the export process: $([ $loaded = 1 ] && echo yes || echo no)"
  done
  step "comparison, Ardour configuration: $cfg"
  if ! python3 "$py" compare "$work/input.wav" "$work/render-$cfg-plugin.wav" "$work/render-$cfg-control.wav" $strict |
      tee "$work/logs/compare-$cfg.log" | sed 's/^/   /'; then
    :
  fi
  grep -q '^RESULT: PASS' "$work/logs/compare-$cfg.log" || status=1
done
rm -f "$cfgdir/config"

step "re-open both sessions and check the processors (Lua)"
lua_step plugin-inspect.log inspect "$work/sessions/plugin" plugin 1
lua_step control-inspect.log inspect "$work/sessions/control" control 0
grep -q "unique-id=\"$uid\"" "$work/sessions/plugin/plugin.ardour" || die "the plugin session's XML has no processor with unique-id $uid"

if [ -d "$HOME/Sluice Takes" ] && [ -n "$(ls -A "$HOME/Sluice Takes")" ]; then
  die "takes were written to $HOME/Sluice Takes although record arm is off: $(ls "$HOME/Sluice Takes")"
fi
echo "   no take written to \$HOME/Sluice Takes: yes"

# ---------------------------------------------------------------- optional: a recorded take
if [ "$take" = 1 ]; then
  s=armed
  dir="$work/sessions/$s"
  step "session '$s' (--take): Sluice Meter with Record arm on; render; check the take"
  lua_step "$s-create.log" create "$dir" "$s" "$rate" 1
  af="$dir/interchange/$s/audiofiles"
  python3 "$py" split "$work/input.wav" "$af/programme-L.wav" "$af/programme-R.wav"
  python3 "$py" inject "$dir/$s.ardour" "$af/programme-L.wav" "$af/programme-R.wav" | sed 's/^/   /'
  lua_step "$s-place.log" place "$dir" "$s" armed
  lua_step "$s-inspect.log" inspect "$dir" "$s" armed
  export_render "$s" "$dir" "$s" "$work/render-$s.wav"
  sleep 1 # the recorder's writer thread renames the finished take into place
  python3 "$py" take "$work/input.wav" "$HOME/Sluice Takes" | tee "$work/logs/take.log" | sed 's/^/   /' || true
  grep -q '^TAKE: PASS' "$work/logs/take.log" || status=1
fi

step "summary"
echo "   Ardour: $ardour_version"
for cfg in default denormal-none; do
  echo "   $cfg configuration: $(grep '^RESULT' "$work/logs/compare-$cfg.log")"
done
if [ "$take" = 1 ]; then echo "   recorded take: $(grep '^TAKE' "$work/logs/take.log")"; fi
crashes=""
for k in "${!export_crashes[@]}"; do
  [ "${export_crashes[$k]}" = 0 ] || crashes="$crashes $k:${export_crashes[$k]}"
done
echo "   ardour7-export crashes (Ardour 7.3 bug, retried):${crashes:- none}"
if [ "$status" = 0 ]; then
  echo "ARDOUR RENDER CHECK: PASS"
else
  echo "ARDOUR RENDER CHECK: FAIL (see the comparisons above; work directory kept)"
  keep=1
fi
exit "$status"
