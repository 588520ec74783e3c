#!/usr/bin/env bash
# The benches' peer tools: ffmpeg, nginx (the serve bench's peer) and loudgain (the tag
# bench's) from Debian, and ffmpeg-normalize and r128gain (PyPI), which Debian does not
# package, and pedalboard (the effects bench's peer), in a virtual environment under
# target/bench-peers (nothing system-wide).
set -euo pipefail
cd "$(dirname "$0")/../.."
missing=()
command -v ffmpeg >/dev/null || missing+=(ffmpeg)
[ -x /usr/sbin/nginx ] || missing+=(nginx)
command -v loudgain >/dev/null || missing+=(loudgain)
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
fi
python3 -m venv target/bench-peers
target/bench-peers/bin/pip install -q 'ffmpeg-normalize==1.43.0' 'r128gain==1.0.7' 'pedalboard==0.9.26' numpy
target/bench-peers/bin/ffmpeg-normalize --version
