"""Times Spotify's Pedalboard plugins on a WAV file: the peer of `cargo bench -p sluice-host
--bench effects -- --pedalboard`.

usage: pedalboard_time.py INPUT.wav RUNS CASES.json
CASES.json: [{"name": "...", "plugin": "Distortion", "params": {...}}, ...]; a case with
"function" instead of "plugin" times that function of the module (time_stretch(audio, rate, **params)).
Prints one JSON object per case: the fastest run's CPU seconds (this process's) and wall seconds.
"""
import json
import sys
import time

import numpy as np
import pedalboard
from pedalboard.io import AudioFile


def main():
    with AudioFile(sys.argv[1]) as f:
        audio, rate = f.read(f.frames).astype(np.float32), f.samplerate
    runs = int(sys.argv[2])
    with open(sys.argv[3]) as f:
        cases = json.load(f)
    for case in cases:
        best_cpu, best_wall = float("inf"), float("inf")
        for _ in range(runs):
            params = dict(case["params"])
            if "function" in case:  # a function of the module (time_stretch), not a plugin
                function = getattr(pedalboard, case["function"])
                c0, w0 = time.process_time(), time.perf_counter()
                out = function(audio, rate, **params)
                c1, w1 = time.process_time(), time.perf_counter()
                best_cpu, best_wall = min(best_cpu, c1 - c0), min(best_wall, w1 - w0)
                continue
            kind = getattr(pedalboard, case["plugin"])
            if isinstance(params.get("mode"), str):  # an enum's member by name
                params["mode"] = getattr(kind.Mode, params["mode"])
            plugin = kind(**params)
            c0, w0 = time.process_time(), time.perf_counter()
            out = plugin(audio, rate)
            c1, w1 = time.process_time(), time.perf_counter()
            assert out.shape[1] >= audio.shape[1] - 1
            best_cpu, best_wall = min(best_cpu, c1 - c0), min(best_wall, w1 - w0)
        print(json.dumps({"name": case["name"], "cpu": best_cpu, "wall": best_wall,
                          "pedalboard": pedalboard.__version__}), flush=True)


main()
