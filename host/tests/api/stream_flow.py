#!/usr/bin/env python3
"""Real-time processing over the WebSocket (`/api/v1/stream`), as a live client uses it
(websocket-client): a session through the built-in gain (its effect measured on a sine), a
session through EQ + compressor in 128-frame blocks with each block's round trip timed, the
meters; and the attacks: bad openings, a malformed block, a flood, an effect that traps —
each ending its own session with a reason while the server serves others.
Run by host/tests/serve.rs.

    stream_flow.py BASE_URL ROOT
"""

import json
import math
import os
import struct
import sys
import threading
import time
import wave

import requests
import websocket

import client
from client import expect, fail

BASE, ROOT = sys.argv[1:3]
client.setup("stream_flow", ROOT)
WS = BASE.replace("http://", "ws://") + "/api/v1/stream"
RATE = 48000


def connect(open_msg):
    ws = websocket.create_connection(WS, timeout=30)
    ws.send(json.dumps(open_msg))
    return ws, json.loads(ws.recv())


def sine(freq, amp, frames, start, channels=2):
    out = []
    for i in range(frames):
        v = amp * math.sin(2 * math.pi * freq * (start + i) / RATE)
        out.extend([v] * channels)
    return struct.pack(f"<{len(out)}f", *out)


def floats(b):
    return struct.unpack(f"<{len(b) // 4}f", b)


def recv_audio(ws, meters):
    """The next binary message; text messages (meters) on the way are kept."""
    while True:
        op, data = ws.recv_data()
        if op == websocket.ABNF.OPCODE_BINARY:
            return data
        msg = json.loads(data)
        expect(msg["type"] == "meters", f"unexpected message: {msg}")
        meters.append(msg)


def ended_with_error(ws, words, where):
    """The server says why in a text message, then closes."""
    seen = []
    try:
        while True:
            op, data = ws.recv_data()
            if op == websocket.ABNF.OPCODE_TEXT:
                msg = json.loads(data)
                if msg["type"] == "error":
                    expect(all(w in msg["message"] for w in words),
                           f"{where}: the reason {msg['message']!r} lacks {words}")
                    seen.append(msg)
            elif op == websocket.ABNF.OPCODE_CLOSE:
                break
    except (websocket.WebSocketConnectionClosedException, ConnectionError):
        pass
    expect(seen, f"{where}: closed without a reason")
    ws.close()


def health(where):
    r = requests.get(f"{BASE}/health", timeout=5)
    expect(r.status_code == 200, f"after {where} the server does not answer: {r.status_code}")


# 1. +6 dB of gain on a -20 dBFS sine: the output is twice the input (once the gain's 20 ms
#    smoothing has passed), block for block, with meters.
ws, ready = connect({"sample_rate": RATE, "channels": 2,
                     "chain": [{"effect": "gain", "params": {"gain_db": 6.0}}]})
expect(ready["type"] == "ready" and ready["effects"] == ["gain"], f"ready: {ready}")
meters = []
sent = got = 0
ratios = []
for k in range(150):  # 150 blocks of 480 frames: 1.5 s
    block = sine(1000, 0.1, 480, sent)
    ws.send_binary(block)
    out = recv_audio(ws, meters)
    expect(len(out) == len(block), f"block {k}: {len(out)} bytes back for {len(block)}")
    if k >= 10:
        a, b = floats(block), floats(out)
        ratios.append(math.sqrt(sum(x * x for x in b) / sum(x * x for x in a)))
    sent += 480

# The monitoring routes see the open session: its buffer, its counts, the server's load.
r = requests.get(f"{BASE}/api/audio/buffers", timeout=5)
expect(r.status_code == 200, f"buffers: {r.status_code} {r.text}")
buf = r.json()
expect(buf["queue_capacity"] == ready["queue"], f"buffers: {buf}")
expect(len(buf["sessions"]) == 1, f"one session open: {buf}")
one = buf["sessions"][0]
for k, t in {"session_id": int, "opened_at": str, "sample_rate": int, "channels": int,
             "max_frames": int, "latency_frames": int, "effects": list, "queued_blocks": int,
             "queue_capacity": int, "fill": (int, float), "blocks_processed": int,
             "frames_processed": int}.items():
    expect(isinstance(one.get(k), t), f"buffers: {k} in {one}")
expect(one["sample_rate"] == RATE and one["channels"] == 2 and one["effects"] == ["gain"],
       f"the session as opened: {one}")
expect(one["blocks_processed"] == 150 and one["frames_processed"] == 150 * 480,
       f"every block answered is counted: {one}")
expect(one["queued_blocks"] == 0 and one["fill"] == 0, f"nothing waits: {one}")
r = requests.get(f"{BASE}/api/audio/statistics", timeout=5)
expect(r.status_code == 200, f"statistics: {r.status_code}")
stats = r.json()
expect(stats["active_sessions"] == 1 and stats["total_sessions"] == 1, f"statistics: {stats}")
expect(stats["frames_processed"] == 150 * 480 and abs(stats["audio_seconds_processed"] - 1.5) < 1e-6,
       f"statistics: {stats}")
expect(stats["realtime_factor"] is not None and stats["realtime_factor"] > 1, f"statistics: {stats}")
r = requests.get(f"{BASE}/api/audio/health", timeout=5)
expect(r.status_code == 200, f"detailed health: {r.status_code}")
h = r.json()
expect(h["status"] == "healthy" and h["database"] == "ok", f"detailed health: {h}")
expect(h["sessions"] == {"active": 1, "max": stats["max_sessions"]}, f"detailed health: {h}")
for k in ["uploads", "exports", "analyses"]:
    expect(set(h[k]) == {"active", "max"} and h[k]["active"] <= h[k]["max"], f"{k}: {h}")
expect(isinstance(h["uptime_seconds"], (int, float)) and isinstance(h["version"], str), f"{h}")
ws.close()
# Closed: gone from the buffers.
for _ in range(50):
    if not requests.get(f"{BASE}/api/audio/buffers", timeout=5).json()["sessions"]:
        break
    time.sleep(0.1)
else:
    fail("a closed session still listed in /api/audio/buffers")
gain = 20 * math.log10(sum(ratios) / len(ratios))
expect(abs(gain - 6.0) < 0.05, f"the gain measured {gain:.3f} dB, not 6")
expect(len(meters) >= 12, f"{len(meters)} meter messages in 1.5 s")
last = meters[-1]
# A -20 dBFS sine at 1 kHz, both channels, +6 dB: about -14 - 3 + 3 = -14.3 LUFS momentary.
expect(last["momentary_lufs"] is not None and abs(last["momentary_lufs"] + 14.3) < 1.0,
       f"meters: {last}")
expect(abs(last["true_peak_dbtp"] - (-14.0)) < 0.5, f"true peak: {last}")
expect(any("integrated_lufs" in m for m in meters), "the integrated loudness once a second")

# 2. EQ + compressor in 128-frame blocks: each block's round trip.
ws, ready = connect({"sample_rate": RATE, "channels": 2, "max_frames": 128, "chain": [
    {"effect": "eq", "params": {"gain_db": 3.0, "freq_hz": 2000.0}},
    {"effect": "compressor", "params": {"threshold_db": -24.0, "ratio": 4.0}}]})
expect(ready["type"] == "ready", f"ready: {ready}")
trips = []
pos = 0
for k in range(2000):  # 5.3 s of audio
    block = sine(440, 0.5, 128, pos)
    t = time.perf_counter()
    ws.send_binary(block)
    out = recv_audio(ws, [])
    trips.append(time.perf_counter() - t)
    pos += 128
    expect(len(out) == len(block), "a block back of another length")
    expect(all(math.isfinite(x) for x in floats(out)), "non-finite samples back")
ws.close()
trips.sort()
p50, p99 = trips[len(trips) // 2] * 1e3, trips[int(len(trips) * 0.99)] * 1e3
print(f"stream_flow: 128-frame round trips through eq + compressor: p50 {p50:.2f} ms, "
      f"p99 {p99:.2f} ms ({len(trips)} blocks; a figure, not a check: see the load bench)")

# 3. Openings refused with their reason.
for bad, words in [
    ({"sample_rate": RATE, "channels": 2, "chain": [{"effect": "nope"}]}, ["nope"]),
    ({"sample_rate": RATE, "channels": 2,
      "chain": [{"effect": "gain", "params": {"volume": 1}}]}, ["volume", "gain_db"]),
    ({"sample_rate": RATE, "channels": 2,
      "chain": [{"effect": "gain", "params": {"gain_db": 1000}}]}, ["gain_db", "outside"]),
    ({"sample_rate": 5, "channels": 2, "chain": []}, ["sample_rate"]),
    ({"sample_rate": RATE, "channels": 0, "chain": []}, ["channels"]),
    ({"sample_rate": RATE}, ["opening message"]),
]:
    ws = websocket.create_connection(WS, timeout=30)
    ws.send(json.dumps(bad))
    ended_with_error(ws, words, f"opening {bad}")
health("bad openings")

# 4. A malformed block (not a whole number of frames) ends the session.
ws, ready = connect({"sample_rate": RATE, "channels": 2, "chain": []})
ws.send_binary(b"\x00" * 10)
ended_with_error(ws, ["10 bytes"], "a malformed block")

# 5. A flood: a client that reads its answers but sends far faster than the chain runs.
ws, ready = connect({"sample_rate": RATE, "channels": 2, "chain": [
    {"effect": "reverb"}, {"effect": "eq"}, {"effect": "compressor"}]})
big = sine(440, 0.3, 8192, 0)
heard = []


def read_all():
    try:
        while True:
            op, data = ws.recv_data()
            if op == websocket.ABNF.OPCODE_TEXT:
                heard.append(json.loads(data))
            elif op == websocket.ABNF.OPCODE_CLOSE:
                return
    except Exception:
        return


reader = threading.Thread(target=read_all)
reader.start()
sends = 0
try:
    while sends < 5000 and not any(m["type"] == "error" for m in heard):
        ws.send_binary(big)
        sends += 1
except (websocket.WebSocketConnectionClosedException, ConnectionError, BrokenPipeError):
    pass
reader.join(10)
ws.close()
errors = [m["message"] for m in heard if m["type"] == "error"]
expect(sends < 5000, "5000 blocks of 8192 frames were taken without a word")
expect(errors and "flooding" in errors[0], f"a flood (cut off after {sends} blocks): {errors}")
health("a flood")
# The server still runs sessions.
ws, ready = connect({"sample_rate": RATE, "channels": 1, "chain": [{"effect": "gain"}]})
ws.send_binary(sine(440, 0.1, 64, 0, channels=1))
expect(len(recv_audio(ws, [])) == 64 * 4, "a session after the flood")
ws.close()

# 6. An effect that traps on loud blocks (the root's `trap` module): the session ends with the
#    trap named.
ws, ready = connect({"sample_rate": RATE, "channels": 2, "chain": [{"effect": "trap"}]})
expect(ready["type"] == "ready", f"the trapping effect opens: {ready}")
ws.send_binary(sine(440, 0.1, 256, 0))
expect(len(recv_audio(ws, [])) == 256 * 8, "the trapping effect passes quiet audio")
ws.send_binary(struct.pack("<512f", *([0.95] * 512)))
ended_with_error(ws, ["trap", "unreachable"], "a trapping effect")
health("a trap")

# 6b. A convolution with an impulse response file of the root: one tap of 0.5 at frame 100.
#     The session reports the effect's latency (its 128-frame partition); the output is the
#     input halved, 100 + 128 frames late. A path out of the root or no response: refused.
os.makedirs(os.path.join(ROOT, "irs"), exist_ok=True)
with wave.open(os.path.join(ROOT, "irs", "late.wav"), "wb") as w:
    w.setnchannels(1)
    w.setsampwidth(2)
    w.setframerate(RATE)
    w.writeframes(b"\0\0" * 100 + struct.pack("<h", 16384))
ws, ready = connect({"sample_rate": RATE, "channels": 2, "chain": [
    {"effect": "convolve", "data": {"ir": "irs/late.wav"}}]})
expect(ready["type"] == "ready" and ready["latency_frames"] == 128, f"convolve ready: {ready}")
sent_in, got_out = [], []
for k in range(20):
    block = sine(440, 0.5, 256, 256 * k)
    ws.send_binary(block)
    sent_in.extend(floats(block)[0::2])
    got_out.extend(floats(recv_audio(ws, []))[0::2])
ws.close()
worst = max(abs(got_out[i] - 0.5 * sent_in[i - 228]) for i in range(228, len(got_out)))
expect(worst < 1e-4 and max(abs(v) for v in got_out[:228]) < 1e-6,
       f"convolve in the stream: {worst} off the input halved 228 frames late")
for data, words in [({"ir": "../late.wav"}, ["convolve", "../late.wav"]),
                    ({}, ["convolve", "needs data ir"])]:
    ws = websocket.create_connection(WS, timeout=30)
    ws.send(json.dumps({"sample_rate": RATE, "channels": 2,
                        "chain": [{"effect": "convolve", "data": data}]}))
    ended_with_error(ws, words, f"convolve with {data}")
health("convolve")

# 7. Not a WebSocket: a JSON error.
r = requests.get(f"{BASE}/api/v1/stream", timeout=5)
expect(r.status_code == 400 and r.json()["error"]["kind"] == "bad_request", f"plain GET: {r.text}")

# The sessions that ended on an error are counted (the malformed block, the flood, the trap).
stats = requests.get(f"{BASE}/api/audio/statistics", timeout=5).json()
expect(stats["failed_sessions"] >= 3 and stats["active_sessions"] == 0, f"statistics: {stats}")

print("stream_flow: gain measured, meters, round trips, bad openings, malformed block, flood, "
      "trap: each refused with the server serving on")
