"""Runs Spotify's Pedalboard on the same input as Sluice and prints how far apart they are.

usage: pedalboard_diff.py INPUT.wav CASES.json
CASES.json: [{"output": "sluice-output.wav", "plugin": "Distortion", "params": {...}}, ...]
Prints one JSON object per case: the largest |sluice - pedalboard| over all samples, and the
largest |pedalboard - input| (that the plugin changed the signal at all).
"""
import json
import sys

import numpy as np
import pedalboard
from pedalboard.io import AudioFile


def read(path):
    with AudioFile(path) as f:
        return f.read(f.frames), f.samplerate


def main():
    x, rate = read(sys.argv[1])
    with open(sys.argv[2]) as f:
        cases = json.load(f)
    for case in cases:
        plugin = getattr(pedalboard, case["plugin"])(**case["params"])
        want = plugin(x.astype(np.float32), rate)
        got, got_rate = read(case["output"])
        if got.shape != want.shape or got_rate != rate:
            print(json.dumps({"output": case["output"], "error": f"shape {got.shape} at {got_rate} Hz, Pedalboard {want.shape} at {rate} Hz"}))
            continue
        print(json.dumps({
            "output": case["output"],
            "max_diff": float(np.max(np.abs(got.astype(np.float64) - want.astype(np.float64)))),
            "changed": float(np.max(np.abs(want.astype(np.float64) - x.astype(np.float64)))),
            "pedalboard": pedalboard.__version__,
        }))


main()
