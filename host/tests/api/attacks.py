#!/usr/bin/env python3
"""Attacks on a running `sluice serve`, each of which must be refused cleanly with the server
still serving.

    attacks.py loopback BASE_URL TOKEN ROOT AUDIO   (a server started with --max-upload-mb 1)
    attacks.py open     BASE_URL TOKEN ROOT AUDIO   (a server listening beyond loopback)

Run by host/tests/serve.rs, which then checks the root for leftovers.
"""

import os
import socket
import sys
import threading
from urllib.parse import urlparse

import requests

import client
from client import expect, fail

MODE, BASE, TOKEN, ROOT, AUDIO = sys.argv[1:6]
client.setup("attacks", ROOT)
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def refused(r, status, kind, where):
    expect(r.status_code == status, f"{where}: status {r.status_code}, not {status}: {r.text[:300]}")
    body = r.json()
    expect(body.get("error", {}).get("kind") == kind, f"{where}: {body}")
    expect(ROOT not in r.text, f"{where}: the answer shows a server path: {r.text}")
    expect("panicked" not in r.text and "backtrace" not in r.text, f"{where}: {r.text}")


def healthy(where):
    r = requests.get(f"{BASE}/health", timeout=10)
    expect(r.status_code == 200, f"after {where}: the server no longer answers ({r.status_code})")


def upload(data, name="x.wav", headers=AUTH):
    return requests.post(
        f"{BASE}/api/audio/upload", files={"file": (name, data)}, headers=headers, timeout=60
    )


if MODE == "loopback":
    # Over the limit (1 MB): 413, and nothing kept.
    big = os.urandom(3_000_000)
    refused(upload(big, "big.wav"), 413, "too_large", "a 3 MB upload over a 1 MB limit")
    healthy("an oversized upload")

    # A body that claims to be small and is not; a multipart cut off in the middle.
    host = urlparse(BASE)
    s = socket.create_connection((host.hostname, host.port), timeout=10)
    s.sendall(
        b"POST /api/audio/upload HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
        + TOKEN.encode()
        + b"\r\nContent-Type: multipart/form-data; boundary=XX\r\nContent-Length: 100000\r\n\r\n"
        + b"--XX\r\nContent-Disposition: form-data; name=\"file\"; filename=\"cut.wav\"\r\n\r\n"
        + b"RIFF" + b"\0" * 1000
    )
    s.close()
    healthy("an upload cut off mid-body")

    # Not audio; empty; a name that tries to leave the folder.
    refused(upload(b"MThd" + b"\0" * 5000, "song.mid"), 400, "unsupported_audio", "a MIDI file")
    refused(upload(b"", "empty.wav"), 400, "unsupported_audio", "an empty file")
    with open(AUDIO, "rb") as f:
        r = upload(f.read(), "../../../../escape.wav")
    expect(r.status_code == 200, f"a traversing name: {r.status_code} {r.text}")
    expect(r.json()["file_name"] == "escape.wav", f"a traversing name: {r.json()['file_name']}")
    expect(not os.path.exists(os.path.join(ROOT, "..", "escape.wav")), "the name left the root")

    # Exports that try to leave the export area.
    fid = r.json()["file_id"]
    for where in ["../escape.wav", "../../escape.wav", "/etc/escape.wav", "a/../../b.wav", "",
                  "link/escape.wav", "inner/escape.wav", "inner/made/deep/escape.wav",
                  "link/made/escape.wav"]:
        r2 = requests.post(f"{BASE}/api/audio/export", headers=AUTH, timeout=30,
                           json={"file_id": fid, "output_path": where})
        refused(r2, 400, "path_escape", f"an export to {where!r}")
    # Refused before any folder is made behind a link (they were made, then refused).
    expect(not os.path.exists(os.path.join(ROOT, "uploads", "made")),
           "a folder was made behind the link to uploads/")
    r2 = requests.post(f"{BASE}/api/audio/export", headers=AUTH, timeout=60,
                       json={"file_id": fid, "output_path": os.path.join(ROOT, "exports", "ok.wav")})
    expect(r2.status_code == 200 and r2.json()["output_path"] == "ok.wav",
           f"an absolute path inside the export area: {r2.status_code} {r2.text}")
    healthy("the export attacks")

    # Many at once: every one answered, one record for the one content.
    with open(AUDIO, "rb") as f:
        audio = f.read()
    answers = []

    def one(i):
        answers.append(upload(audio, f"same-{i}.wav"))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    ids = {a.json()["file_id"] for a in answers if a.status_code == 200}
    expect(len(answers) == 8 and all(a.status_code == 200 for a in answers),
           f"concurrent uploads: {[a.status_code for a in answers]}")
    expect(len(ids) == 1, f"concurrent uploads of one content: {ids}")

    # Reads need no token on loopback; writes do.
    r = requests.get(f"{BASE}/api/audio/formats", timeout=10)
    expect(r.status_code == 200, f"a read on loopback: {r.status_code}")
    refused(upload(audio, headers={}), 401, "unauthorized", "an upload without a token")
    healthy("the attacks")
    print("attacks (loopback): every one refused cleanly")

elif MODE == "open":
    healthy("start")
    r = requests.get(f"{BASE}/api/audio/formats", timeout=10)
    refused(r, 401, "unauthorized", "a read beyond loopback without a token")
    r = requests.get(f"{BASE}/api/audio/formats", headers={"Authorization": "Bearer x"}, timeout=10)
    refused(r, 401, "unauthorized", "a read beyond loopback with a wrong token")
    r = requests.get(f"{BASE}/api/audio/formats", headers=AUTH, timeout=10)
    expect(r.status_code == 200, f"a read beyond loopback with the token: {r.status_code}")
    print("attacks (beyond loopback): every route but /health needs the token")
else:
    fail(f"unknown mode {MODE}")
