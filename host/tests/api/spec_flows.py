#!/usr/bin/env python3
"""A client of the specifications' routes, written as their users write them (Python,
`requests`), walked against a running `sluice serve`.

    spec_flows.py BASE_URL TOKEN ROOT AUDIO_FILE TAGGED_FILE

Checks every field of every answer with its type, and the refusals: no token, a wrong token,
an upload that is not audio, an unknown id, a bad `target_length`. Exits non-zero with a
message on the first thing that is not as the contract says. Run by host/tests/serve.rs.
"""

import os
import struct
import sys
import time
import wave

import requests

import client
from client import error_of, expect, fail, fields

BASE, TOKEN, ROOT, AUDIO, TAGGED = sys.argv[1:6]
client.setup("spec_flows", ROOT)
AUTH = {"Authorization": f"Bearer {TOKEN}"}
NUM = (int, float)


METADATA = {
    "file_id": str,
    "file_name": str,
    "duration": (float, int, None),
    "sample_rate": int,
    "channels": int,
    "format": str,
    "file_size": int,
    "bit_depth": (int, None),
    "title": (str, None),
    "artist": (str, None),
    "album": (str, None),
    "genre": (str, None),
    "year": (int, None),
    "bpm": (float, int, None),
    "key_signature": (str, None),
}

# Health.
r = requests.get(f"{BASE}/health", timeout=10)
expect(r.status_code == 200, f"health: {r.status_code}")
fields(r.json(), {"status": str, "version": str}, "health")

# The interactive API reference where the specifications send their users.
for page in ["/docs", "/redoc", "/api/docs"]:
    r = requests.get(f"{BASE}{page}", timeout=10)
    expect(r.status_code == 200, f"{page}: {r.status_code}")
    expect(r.headers["content-type"].startswith("text/html"), f"{page}: {r.headers['content-type']}")
    expect("/openapi.json" in r.text, f"{page}: not the API reference page")

# A new root is ready as `sluice watch` makes it: its example pipelines are there.
r = requests.get(f"{BASE}/api/v1/pipelines", timeout=10)
expect(r.status_code == 200, f"pipelines: {r.status_code}")
names = {p["name"] for p in r.json()["pipelines"]}
expect({"podcast", "streaming-master", "broadcast", "analysis", "archive"} <= names,
       f"a new root's pipelines: {sorted(names)}")

# An upload needs the token; a wrong one is refused too.
with open(AUDIO, "rb") as f:
    r = requests.post(f"{BASE}/api/audio/upload", files={"file": ("take.wav", f)}, timeout=60)
error_of(r, 401, "unauthorized", "upload without a token")
with open(AUDIO, "rb") as f:
    r = requests.post(
        f"{BASE}/api/audio/upload",
        files={"file": ("take.wav", f)},
        headers={"Authorization": "Bearer nope"},
        timeout=60,
    )
error_of(r, 401, "unauthorized", "upload with a wrong token")

# Upload, metadata.
with open(AUDIO, "rb") as f:
    r = requests.post(
        f"{BASE}/api/audio/upload",
        files={"file": ("take.wav", f, "audio/wav")},
        data={"extract_metadata": "true"},
        headers=AUTH,
        timeout=60,
    )
expect(r.status_code == 200, f"upload: {r.status_code} {r.text}")
meta = r.json()
fields(meta, METADATA, "upload")
expect(meta["file_name"] == "take.wav", f"upload: file_name {meta['file_name']}")
expect(meta["sample_rate"] == 48000 and meta["channels"] == 2, f"upload: {meta}")
expect(meta["format"] == "wav" and meta["bit_depth"] == 24, f"upload: {meta}")
expect(meta["file_size"] == os.path.getsize(AUDIO), "upload: file_size")
expect(abs(meta["duration"] - 6.0) < 0.01, f"upload: duration {meta['duration']}")
fid = meta["file_id"]

expect(r.status_code == 200, f"metadata: {r.status_code}")
fields(r.json(), METADATA, "metadata")
expect(r.json() == meta, "metadata differs from the upload's answer")

# The same content again: the same id, the name it first had.
with open(AUDIO, "rb") as f:
    r = requests.post(
        f"{BASE}/api/audio/upload", files={"file": ("again.wav", f)}, headers=AUTH, timeout=60
    )
expect(r.status_code == 200 and r.json()["file_id"] == fid, f"re-upload: {r.text}")
expect(r.json()["file_name"] == "take.wav", "re-upload: the first name is kept")

# Tags come through (and stay null when extract_metadata is false).
with open(TAGGED, "rb") as f:
    r = requests.post(
        f"{BASE}/api/audio/upload",
        files={"file": ("../../tagged.flac", f)},
        headers=AUTH,
        timeout=60,
    )
expect(r.status_code == 200, f"tagged upload: {r.status_code} {r.text}")
tagged = r.json()
fields(tagged, METADATA, "tagged upload")
expect(tagged["file_name"] == "tagged.flac", f"tagged: file_name {tagged['file_name']}")
expect(tagged["format"] == "flac", f"tagged: {tagged['format']}")
want = {"title": "Night Drive", "artist": "The Testers", "album": "Fixtures", "genre": "Ambient",
        "year": 2024, "bpm": 120, "key_signature": "Am"}
for k, v in want.items():
    expect(tagged[k] == v, f"tagged: {k} = {tagged[k]!r}, not {v!r}")
with open(TAGGED, "rb") as f:
    r = requests.post(
        f"{BASE}/api/audio/upload",
        files={"file": ("tagged.flac", f)},
        data={"extract_metadata": "false"},
        headers=AUTH,
        timeout=60,
    )
expect(r.status_code == 200 and r.json()["title"] is None, f"extract_metadata=false: {r.text}")

# Analysis.
r = requests.get(f"{BASE}/api/audio/files/{fid}/analysis", timeout=120)
expect(r.status_code == 200, f"analysis: {r.status_code} {r.text}")
a = r.json()
fields(
    a,
    {
        "duration": NUM,
        "sample_rate": int,
        "channels": int,
        "loudness_lufs": NUM,
        "loudness_peak": NUM,
        "rms_level": NUM,
        "dynamic_range": NUM,
        "zero_crossings": int,
        "spectral_centroid": NUM,
        "spectral_bandwidth": NUM,
        "spectral_rolloff": NUM,
        "tempo": (float, int, None),
        "key": (str, None),
        "sluice": dict,
    },
    "analysis",
)
expect(-40 < a["loudness_lufs"] < 0, f"analysis: loudness {a['loudness_lufs']}")
expect(a["loudness_peak"] >= a["rms_level"], "analysis: peak under RMS")
expect("loudness" in a["sluice"] and "levels" in a["sluice"], "analysis: no full report")
r2 = requests.get(f"{BASE}/api/audio/files/{fid}/analysis", timeout=30)
expect(r2.json() == a, "analysis: the cached answer differs")

# Waveform.
r = requests.get(f"{BASE}/api/audio/files/{fid}/waveform", params={"target_length": 500}, timeout=60)
expect(r.status_code == 200, f"waveform: {r.status_code} {r.text}")
w = r.json()
fields(w, {"peaks": list, "length": int, "sample_rate": int}, "waveform")
expect(w["length"] == 500 and len(w["peaks"]) == 500, f"waveform: length {w['length']}")
expect(all(isinstance(p, NUM) and 0 <= p <= 1 for p in w["peaks"]), "waveform: peaks not 0..1")
expect(max(w["peaks"]) > 0.05, "waveform: silent peaks for a programme")
r = requests.get(f"{BASE}/api/audio/files/{fid}/waveform", timeout=60)
expect(r.status_code == 200 and r.json()["length"] == 1000, "waveform: default length 1000")
error_of(
    requests.get(f"{BASE}/api/audio/files/{fid}/waveform", params={"target_length": 0}, timeout=10),
    400, "bad_field", "waveform target_length=0")

# Export: 48 kHz 24-bit WAV, normalized, triangular dither, fades, a region.
body = {
    "file_id": fid,
    "output_path": "mixes/take-48k.wav",
    "settings": {
        "format": "wav",
        "sample_rate": 48000,
        "bit_depth": 24,
        "channels": 2,
        "dither": "triangular",
        "normalize": True,
        "normalize_target": -16.0,
        "trim_silence": False,
        "fade_in": 0.5,
        "fade_out": 1.0,
    },
    "start_time": 0.5,
    "end_time": 5.5,
}
r = requests.post(f"{BASE}/api/audio/export", json=body, timeout=120)
error_of(r, 401, "unauthorized", "export without a token")
r = requests.post(f"{BASE}/api/audio/export", json=body, headers=AUTH, timeout=120)
expect(r.status_code == 200, f"export: {r.status_code} {r.text}")
fields(r.json(), {"output_path": str, "warnings": list, "sluice": dict}, "export")
out0 = r.json()["sluice"]["outputs"][0]
expect(out0["sample_rate"] == 48000 and out0["bits"] == 24, f"export: {out0}")
expect(abs(out0["loudness"]["integrated_lufs"] + 16.0) < 0.5, f"export loudness: {out0}")
expect(abs(out0["duration_seconds"] - 5.0) < 0.01, f"export region: {out0['duration_seconds']}")
expect(r.json()["output_path"] == "mixes/take-48k.wav", f"export: {r.json()['output_path']}")
expect(ROOT not in r.text, "export: the answer shows a server path")
r = requests.post(f"{BASE}/api/audio/export", json=body, headers=AUTH, timeout=120)
error_of(r, 409, "exists", "export over an existing file")
bad = dict(body, output_path="mixes/x.wav", settings={"dither": "purple"})
error_of(requests.post(f"{BASE}/api/audio/export", json=bad, headers=AUTH, timeout=30),
         400, "bad_field", "export with a dither that does not exist")
bad = dict(body, output_path="mixes/x.flac", settings={"channels": 6})
error_of(requests.post(f"{BASE}/api/audio/export", json=bad, headers=AUTH, timeout=30),
         400, "bad_field", "export to 6 channels")
bad = dict(body, output_path="mixes/y.wav", colour="blue")
error_of(requests.post(f"{BASE}/api/audio/export", json=bad, headers=AUTH, timeout=30),
         400, "bad_json", "export with an unknown field")
bad = dict(body, file_id="0" * 64, output_path="mixes/z.wav")
error_of(requests.post(f"{BASE}/api/audio/export", json=bad, headers=AUTH, timeout=30),
         404, "not_found", "export of an unknown file")
r = requests.post(f"{BASE}/api/audio/export", headers=AUTH, timeout=30,
                  json={"file_id": fid, "output_path": "mixes/take.flac"})
expect(r.status_code == 200, f"export with no settings (format from the name): {r.text}")
out0 = r.json()["sluice"]["outputs"][0]
expect(out0["format"] == "flac" and out0["path"] == "mixes/take.flac", f"export to .flac: {out0}")
# The delivery codecs through the same route: Opus and AAC by the name, ALAC by the format.
for path, settings, codec in [("mixes/take.opus", {}, "opus"),
                              ("mixes/take-aac.m4a", {}, "aac"),
                              ("mixes/take-alac.m4a", {"format": "alac", "bit_depth": 24}, "alac")]:
    r = requests.post(f"{BASE}/api/audio/export", headers=AUTH, timeout=60,
                      json={"file_id": fid, "output_path": path, "settings": settings})
    expect(r.status_code == 200, f"export to {path}: {r.status_code} {r.text}")
    out0 = r.json()["sluice"]["outputs"][0]
    expect(out0["format"] == codec and out0["path"] == path, f"export to {path}: {out0}")

# Sluice's addition to the export settings: effects, as the live stream names them. Two gains
# of -3.01 dB (half the amplitude) lowers the integrated loudness by 6.02 LU against the same
# export without it; a refused effect or parameter is a 400 naming it, before anything runs.
plain = requests.post(f"{BASE}/api/audio/export", headers=AUTH, timeout=60,
                      json={"file_id": fid, "output_path": "mixes/plain.flac"})
expect(plain.status_code == 200, f"export without effects: {plain.text}")
halved = requests.post(f"{BASE}/api/audio/export", headers=AUTH, timeout=60, json={
    "file_id": fid, "output_path": "mixes/halved.flac",
    "settings": {"effects": [{"effect": "gain", "params": {"gain_db": -3.0103, "smoothing_ms": 0}},
                             {"effect": "gain", "params": {"gain_db": -3.0103, "smoothing_ms": 0}}]}})
expect(halved.status_code == 200, f"export with effects: {halved.status_code} {halved.text}")
loud = [r.json()["sluice"]["outputs"][0]["loudness"]["integrated_lufs"] for r in (plain, halved)]
expect(abs(loud[0] - loud[1] - 6.02) < 0.1, f"export with a -6.02 dB gain: {loud}")
# A convolution with an impulse response file in the root: a single tap of 0.5 halves the
# signal (-6.02 LU, as the gains above); a response path out of the root, a missing file, a
# response that is no audio and a convolution without one are 400s naming the field.
os.makedirs(os.path.join(ROOT, "irs"), exist_ok=True)
with wave.open(os.path.join(ROOT, "irs", "half.wav"), "wb") as w:
    w.setnchannels(1)
    w.setsampwidth(2)
    w.setframerate(48000)
    w.writeframes(struct.pack("<h", 16384) + b"\0\0" * 99)
with open(os.path.join(ROOT, "irs", "junk.wav"), "wb") as f:
    f.write(b"RIFF\0\0\0\0WAVEjunk")
conv = requests.post(f"{BASE}/api/audio/export", headers=AUTH, timeout=60, json={
    "file_id": fid, "output_path": "mixes/convolved.flac",
    "settings": {"effects": [{"effect": "convolve", "data": {"ir": "irs/half.wav"}}]}})
expect(conv.status_code == 200, f"export with convolve: {conv.status_code} {conv.text}")
loud = [r.json()["sluice"]["outputs"][0]["loudness"]["integrated_lufs"] for r in (plain, conv)]
expect(abs(loud[0] - loud[1] - 6.02) < 0.1, f"export convolved with a 0.5 tap: {loud}")
for data, needle in [
    ({"ir": "../half.wav"}, "settings.effects[0].data.ir"),
    ({"ir": "irs/none.wav"}, "settings.effects[0].data.ir"),
    ({"ir": "irs/junk.wav"}, "settings.effects[0].data.ir"),
    ({}, "needs data ir"),
    ({"ir": "irs/half.wav", "room": "irs/half.wav"}, "no data slot"),
]:
    r = requests.post(f"{BASE}/api/audio/export", headers=AUTH, timeout=30, json={
        "file_id": fid, "output_path": "mixes/refused.flac",
        "settings": {"effects": [{"effect": "convolve", "data": data}]}})
    error_of(r, 400, "bad_field", f"convolve with {data}")
    expect(needle in r.json()["error"]["message"], f"convolve with {data}: {r.text}")
    expect(ROOT not in r.text, f"convolve with {data}: the answer shows a server path")
# And a time stretch: twice as fast, half the frames (rounded), at the same loudness.
fast = requests.post(f"{BASE}/api/audio/export", headers=AUTH, timeout=60, json={
    "file_id": fid, "output_path": "mixes/fast.flac", "settings": {"speed": 2}})
expect(fast.status_code == 200, f"export with speed 2: {fast.status_code} {fast.text}")
frames = [r.json()["sluice"]["outputs"][0]["frames"] for r in (plain, fast)]
expect(frames[1] == (frames[0] + 1) // 2, f"export with speed 2: {frames} frames")  # half, rounded up
r = requests.post(f"{BASE}/api/audio/export", headers=AUTH, timeout=30, json={
    "file_id": fid, "output_path": "mixes/refused.flac", "settings": {"speed": 9}})
error_of(r, 400, "bad_field", "export with speed 9")
expect("settings.speed" in r.json()["error"]["message"], f"export with speed 9: {r.text}")
for effects, needle in [
    ([{"effect": "wobble"}], "effect wobble: no such effect"),
    ([{"effect": "gain", "params": {"gain_db": 400}}], "gain"),
    ([{"effect": "gain", "params": {"gain_db": [1]}}], "settings.effects[0].params.gain_db"),
    ([{"effect": "gain", "colour": "red"}], None),
    ([{"effect": "gain"}] * 17, "at most 16"),
]:
    r = requests.post(f"{BASE}/api/audio/export", headers=AUTH, timeout=30, json={
        "file_id": fid, "output_path": "mixes/refused.flac", "settings": {"effects": effects}})
    if needle is None:
        error_of(r, 400, "bad_json", f"export with {effects}")
    else:
        error_of(r, 400, "bad_field", f"export with {effects}")
        expect(needle in r.json()["error"]["message"], f"export with {effects}: {r.text}")
    expect(ROOT not in r.text, f"export with {effects}: the answer shows a server path")
expect(not os.path.exists(os.path.join(ROOT, "exports/mixes/refused.flac")), "a refused export wrote")

# Batch: create, process, poll to completed.
BATCH = {
    "job_id": str,
    "status": str,
    "progress": NUM,
    "completed_files": list,
    "failed_files": list,
    "start_time": (str, None),
    "end_time": (str, None),
}
tid = tagged["file_id"]
body = {"input_files": [fid, tid], "output_directory": "batch1",
        "export_settings": {"format": "flac", "sample_rate": 44100, "bit_depth": 16}}
error_of(requests.post(f"{BASE}/api/audio/batch/create", json=body, timeout=10),
         401, "unauthorized", "batch without a token")
r = requests.post(f"{BASE}/api/audio/batch/create", json=body, headers=AUTH, timeout=10)
expect(r.status_code == 200, f"batch create: {r.status_code} {r.text}")
fields(r.json(), {"job_id": str}, "batch create")
job = r.json()["job_id"]
r = requests.get(f"{BASE}/api/audio/batch/{job}", timeout=10)
fields(r.json(), BATCH, "batch status")
expect(r.json()["status"] == "pending" and r.json()["progress"] == 0, f"new batch: {r.json()}")
r = requests.post(f"{BASE}/api/audio/batch/{job}/process", headers=AUTH, timeout=10)
expect(r.status_code == 200, f"batch process: {r.status_code} {r.text}")
fields(r.json(), {"message": str}, "batch process")
seen = []
deadline = time.time() + 120
while True:
    st = requests.get(f"{BASE}/api/audio/batch/{job}", timeout=10).json()
    fields(st, BATCH, "batch poll")
    seen.append(st["progress"])
    if st["status"] in ("completed", "failed"):
        break
    expect(st["status"] == "processing", f"batch poll: {st}")
    expect(time.time() < deadline, f"batch did not finish: {st}")
    time.sleep(0.05)
expect(st["status"] == "completed", f"batch: {st}")
expect(st["progress"] == 1 and sorted(seen) == seen, f"batch progress not rising to 1: {seen}")
expect(set(st["completed_files"]) == {"batch1/take.flac", "batch1/tagged.flac"},
       f"batch outputs: {st['completed_files']}")
expect(st["failed_files"] == [] and st["start_time"] and st["end_time"], f"batch: {st}")
r = requests.post(f"{BASE}/api/audio/batch/{job}/process", headers=AUTH, timeout=10)
expect(r.status_code == 200 and "already" in r.json()["message"], f"batch again: {r.text}")
bad = dict(body, output_directory="../outside")
error_of(requests.post(f"{BASE}/api/audio/batch/create", json=bad, headers=AUTH, timeout=10),
         400, "path_escape", "a batch writing out of the export area")
bad = dict(body, input_files=["1" * 64])
error_of(requests.post(f"{BASE}/api/audio/batch/create", json=bad, headers=AUTH, timeout=10),
         404, "not_found", "a batch of a file never uploaded")
error_of(requests.get(f"{BASE}/api/audio/batch/999", timeout=10), 404, "not_found",
         "an unknown batch")
# A batch in each delivery codec the registry added: Opus, AAC and ALAC (M4A).
for fmt, ext in [("opus", "opus"), ("aac", "m4a"), ("alac", "m4a")]:
    body = {"input_files": [fid], "output_directory": f"batch-{fmt}",
            "export_settings": {"format": fmt}}
    r = requests.post(f"{BASE}/api/audio/batch/create", json=body, headers=AUTH, timeout=10)
    expect(r.status_code == 200, f"batch create ({fmt}): {r.status_code} {r.text}")
    job = r.json()["job_id"]
    r = requests.post(f"{BASE}/api/audio/batch/{job}/process", headers=AUTH, timeout=10)
    expect(r.status_code == 200, f"batch process ({fmt}): {r.status_code} {r.text}")
    deadline = time.time() + 120
    while True:
        st = requests.get(f"{BASE}/api/audio/batch/{job}", timeout=10).json()
        if st["status"] in ("completed", "failed"):
            break
        expect(time.time() < deadline, f"batch ({fmt}) did not finish: {st}")
        time.sleep(0.05)
    expect(st["status"] == "completed" and st["completed_files"] == [f"batch-{fmt}/take.{ext}"],
           f"batch ({fmt}): {st}")

# Regions.
REGION = {"region_id": str, "track_id": str, "file_id": str, "start_time": NUM,
          "duration": (float, int, None), "name": (str, None), "gain": NUM, "created_at": str}
form = {"track_id": (None, "t1"), "file_id": (None, fid), "start_time": (None, "1.5"),
        "duration": (None, "2"), "name": (None, "verse")}
error_of(requests.post(f"{BASE}/api/audio/regions", files=form, timeout=10),
         401, "unauthorized", "region without a token")
r = requests.post(f"{BASE}/api/audio/regions", files=form, headers=AUTH, timeout=10)
expect(r.status_code == 200, f"region: {r.status_code} {r.text}")
fields(r.json(), REGION, "region")
expect(r.json()["gain"] == 1.0 and r.json()["name"] == "verse", f"region: {r.json()}")
first = r.json()["region_id"]
r = requests.post(f"{BASE}/api/audio/regions", headers=AUTH, timeout=10,
                  files={"track_id": (None, "t1"), "file_id": (None, tid),
                         "start_time": (None, "0"), "gain": (None, "0.5")})
expect(r.status_code == 200 and r.json()["duration"] is None, f"region 2: {r.text}")
second = r.json()["region_id"]
r = requests.get(f"{BASE}/api/audio/regions/track/t1", timeout=10)
expect(r.status_code == 200 and isinstance(r.json(), list), f"regions of t1: {r.text}")
for reg in r.json():
    fields(reg, REGION, "regions of t1")
expect([x["region_id"] for x in r.json()] == [first, second], f"regions of t1: {r.json()}")
expect(requests.get(f"{BASE}/api/audio/regions/track/none", timeout=10).json() == [],
       "an empty track")
for bad, why in [({"start_time": (None, "99")}, "a start past the end"),
                 ({"duration": (None, "5")}, "a duration past the end"),
                 ({"start_time": (None, "abc")}, "a start that is not a number"),
                 ({"gain": (None, "-1")}, "a negative gain"),
                 ({"track_id": (None, "")}, "no track")]:
    error_of(requests.post(f"{BASE}/api/audio/regions", files=dict(form, **bad), headers=AUTH,
                           timeout=10), 400, "bad_field", why)
error_of(requests.post(f"{BASE}/api/audio/regions", headers=AUTH, timeout=10,
                       files=dict(form, file_id=(None, "2" * 64))), 404, "not_found",
         "a region of a file never uploaded")
error_of(requests.delete(f"{BASE}/api/audio/regions/{first}", timeout=10), 401, "unauthorized",
         "a delete without a token")
r = requests.delete(f"{BASE}/api/audio/regions/{first}", headers=AUTH, timeout=10)
expect(r.status_code == 200, f"delete: {r.status_code} {r.text}")
error_of(requests.delete(f"{BASE}/api/audio/regions/{first}", headers=AUTH, timeout=10),
         404, "not_found", "a region deleted twice")
r = requests.get(f"{BASE}/api/audio/regions/track/t1", timeout=10)
expect([x["region_id"] for x in r.json()] == [second], f"after the delete: {r.json()}")

# Formats.
r = requests.get(f"{BASE}/api/audio/formats", timeout=10)
expect(r.status_code == 200, f"formats: {r.status_code}")
# "An array of supported file extensions": strings, each one a format route answers.
exts = r.json()
expect(isinstance(exts, list) and all(isinstance(e, str) for e in exts), f"formats: {exts}")
expect({"wav", "flac", "mp3", "aiff"} <= set(exts), f"formats: {exts}")
for e in exts:
    r = requests.get(f"{BASE}/api/audio/formats/{e}", timeout=10)
    expect(r.status_code == 200, f"format {e} (listed): {r.status_code}")
# What export writes, not what the container could carry.
flac = requests.get(f"{BASE}/api/audio/formats/flac", timeout=10).json()
expect(flac["supported_bit_depths"] == [16, 24] and flac["max_bit_depth"] == 24, f"flac: {flac}")
expect(flac["max_sample_rate"] == 384000, f"flac: {flac}")
mp3 = requests.get(f"{BASE}/api/audio/formats/mp3", timeout=10).json()
expect(mp3["supported_bit_depths"] == [] and mp3["max_bit_depth"] is None, f"mp3: {mp3}")
expect(mp3["max_sample_rate"] == 48000 and mp3["compression"] == "lossy", f"mp3: {mp3}")
for name in ["wav", "flac", "FLAC"]:
    r = requests.get(f"{BASE}/api/audio/formats/{name}", timeout=10)
    expect(r.status_code == 200, f"format {name}: {r.status_code}")
    fields(
        r.json(),
        {
            "name": str,
            "extension": str,
            "compression": str,
            "quality": str,
            "max_sample_rate": int,
            "max_bit_depth": (int, None),
            "supported_bit_depths": list,
            "file_size_estimate": int,
        },
        f"format {name}",
    )
expect(r.json()["compression"] == "lossless", "flac is lossless")
error_of(requests.get(f"{BASE}/api/audio/formats/xyz", timeout=10), 404, "not_found", "format xyz")

# Refusals: not audio, no file, unknown ids.
r = requests.post(
    f"{BASE}/api/audio/upload",
    files={"file": ("notes.wav", b"this is text, not a wave file" * 100)},
    headers=AUTH,
    timeout=10,
)
body = error_of(r, 400, "unsupported_audio", "a text file as .wav")
expect("notes.wav" in body["detail"], f"the refusal names the file: {body['detail']}")
error_of(
    requests.post(f"{BASE}/api/audio/upload", files={"extract_metadata": (None, "true")},
                  headers=AUTH, timeout=10),
    400, "no_file", "a form without a file field")
error_of(
    requests.post(f"{BASE}/api/audio/upload", data={"extract_metadata": "true"}, headers=AUTH,
                  timeout=10),
    400, "bad_multipart", "a urlencoded form")
for bad in ["0" * 64, "../../etc/passwd", "zz"]:
    r = requests.get(f"{BASE}/api/audio/files/{bad}/metadata", timeout=10)
    expect(r.status_code == 404, f"unknown id {bad}: {r.status_code}")
error_of(requests.get(f"{BASE}/api/nothing", timeout=10), 404, "not_found", "unknown route")

# The OpenAPI document: valid, and naming every route walked above.
doc = requests.get(f"{BASE}/openapi.json", timeout=10).json()
try:
    from openapi_spec_validator import validate
except ImportError:
    if os.environ.get("SLUICE_REQUIRE_TOOLS") == "1":
        fail("openapi-spec-validator is required (SLUICE_REQUIRE_TOOLS=1)")
    print("spec_flows: SKIPPED the OpenAPI validation: pip install openapi-spec-validator")
else:
    validate(doc)
walked = {
    ("get", "/health"), ("post", "/api/audio/upload"),
    ("get", "/api/audio/files/{file_id}/metadata"), ("get", "/api/audio/files/{file_id}/analysis"),
    ("get", "/api/audio/files/{file_id}/waveform"), ("post", "/api/audio/export"),
    ("post", "/api/audio/batch/create"), ("post", "/api/audio/batch/{job_id}/process"),
    ("get", "/api/audio/batch/{job_id}"), ("post", "/api/audio/regions"),
    ("get", "/api/audio/regions/track/{track_id}"), ("delete", "/api/audio/regions/{region_id}"),
    ("get", "/api/audio/formats"), ("get", "/api/audio/formats/{name}"),
}
for method, path in walked:
    expect(method in doc["paths"].get(path, {}), f"openapi.json: no {method.upper()} {path}")

print(f"spec_flows: every route and field as the contract says ({BASE})")
