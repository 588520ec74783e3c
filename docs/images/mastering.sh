#!/bin/sh
# Makes the pictures of docs/MASTERING.md: a "demo" genre of six references made with sox
# (pink noise under a plucked chord, each with its own small tilt), then a thin, bright
# version of the same material compared with the genre. Needs sox and a built `sluice`:
#
#   cargo build --release -p sluice-host && sh docs/images/mastering.sh
set -eu
here=$(cd "$(dirname "$0")" && pwd)
sluice=${SLUICE:-$here/../../target/release/sluice}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root="$work/root"
mkdir -p "$root"

# One track: pink noise and a plucked A minor chord every two seconds, with a tilt.
track() { # out bass_db treble_db
  sox -n -r 48000 -c 2 -b 16 "$work/noise.wav" synth 30 pinknoise vol 0.25
  sox -n -r 48000 -c 2 -b 16 "$work/chord.wav" synth 2 pluck A2 pluck C4 pluck E4 pluck A4 \
    repeat 14 vol 0.5
  sox -m "$work/noise.wav" "$work/chord.wav" "$1" bass "$2" treble "$3" norm -3
}

i=0
for tilt in "0 0" "1 -1" "-1 1" "2 0" "0 -2" "-1 -1"; do
  i=$((i + 1))
  # shellcheck disable=SC2086
  track "$work/ref$i.wav" $tilt
done
"$sluice" ref add --root "$root" --genre demo "$work"/ref*.wav >/dev/null
track "$work/thin-and-bright.wav" -6 4
"$sluice" compare --root "$root" --genre demo --level suggestive --plot "$here" \
  "$work/thin-and-bright.wav"
