#!/usr/bin/env bash
# The benches' peer tools that Debian does not package: ffmpeg-normalize (PyPI), installed in a
# virtual environment under target/bench-peers (nothing system-wide). ffmpeg itself comes
# from Debian.
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! command -v ffmpeg >/dev/null; then
  apt-get update -qq && apt-get install -y -qq ffmpeg >/dev/null
fi
python3 -m venv target/bench-peers
target/bench-peers/bin/pip install -q 'ffmpeg-normalize==1.43.0'
target/bench-peers/bin/ffmpeg-normalize --version
