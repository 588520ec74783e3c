#!/usr/bin/env python3
"""Reference values for core/tests/spectral_librosa.rs, computed with librosa.

Usage:
    SLUICE_SPECTRAL_WAVS=/tmp/wavs cargo test -p sluice-core --test spectral_librosa
    python3 core/tests/reference/librosa_spectral.py /tmp/wavs

The test writes its generated signals as 16-bit WAV files into that folder (it fails there
while its table does not match: that is expected when regenerating). This script reads each
file as librosa users do (`librosa.load(path, sr=None, mono=True)`: the file's own rate, the
mean of the channels), computes librosa's spectral centroid, bandwidth, roll-off and flatness
with librosa's defaults (n_fft=2048, hop_length=512, window='hann', center=True,
pad_mode='constant'), takes the mean over the frames, and prints the rows of the test's
`LIBROSA` table in the test's signal order.

The values in the test were made with librosa 0.11.0 (numpy 2, soundfile); see the test.
"""

import sys
from pathlib import Path

import librosa
import numpy as np

ORDER = [
    "ensemble",
    "pink_drums",
    "bright_limited",
    "dark_pad",
    "sparse_piano",
    "organ_96k",
    "short_chord",
]


def features(path):
    y, sr = librosa.load(path, sr=None, mono=True)
    centroid = librosa.feature.spectral_centroid(y=y, sr=sr)
    bandwidth = librosa.feature.spectral_bandwidth(y=y, sr=sr)
    rolloff = librosa.feature.spectral_rolloff(y=y, sr=sr, roll_percent=0.85)
    flatness = librosa.feature.spectral_flatness(y=y)
    return [float(np.mean(v)) for v in (centroid, bandwidth, rolloff, flatness)]


def main():
    folder = Path(sys.argv[1])
    print(f"// librosa {librosa.__version__}, numpy {np.__version__}")
    for name in ORDER:
        c, b, r, f = features(folder / f"{name}.wav")
        print(f'    ("{name}", {c!r}, {b!r}, {r!r}, {f!r}),')


if __name__ == "__main__":
    main()
