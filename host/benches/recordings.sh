#!/usr/bin/env bash
# The benches with a fourth material: real recordings, which no generator
# of ours made. Debian's wesnoth-1.16-music (GPL-2; 41 Ogg Vorbis files, 2.5 hours of produced
# orchestral music at 44.1 kHz) is installed if missing; the benches convert the files, one
# after another, to a 48 kHz stereo 16-bit WAV of the bench's length with ffmpeg (soxr).
# Another folder of audio files can be given with SLUICE_BENCH_RECORDINGS=DIR.
#
#   host/benches/recordings.sh analyze -- --minutes 10
#   host/benches/recordings.sh export -- --minutes 60
#   host/benches/recordings.sh farm -- --material recordings --parts scaling
set -euo pipefail
cd "$(dirname "$0")/../.."
music=/usr/share/games/wesnoth/1.16/data/core/music
if [ -z "${SLUICE_BENCH_RECORDINGS:-}" ]; then
  if [ ! -d "$music" ]; then
    apt-get update -qq && apt-get install -y -qq wesnoth-1.16-music >/dev/null
  fi
  export SLUICE_BENCH_RECORDINGS="$music"
fi
bench="${1:?which bench: analyze, export, farm, qc, references or serve}"
shift
exec cargo bench -p sluice-host --bench "$bench" "$@"
