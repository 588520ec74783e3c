#!/usr/bin/env python3
"""Halves of the kill test in host/tests/serve.rs (the server is killed between them).

    crash.py start  BASE_URL TOKEN AUDIO...   upload the files, create a batch, process it;
                                              prints the batch id
    crash.py finish BASE_URL TOKEN JOB N      process the batch again, poll to completed;
                                              N files written
"""

import sys
import time

import requests

MODE, BASE, TOKEN = sys.argv[1:4]
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def fail(msg):
    print(f"crash: {msg}", file=sys.stderr)
    sys.exit(1)


if MODE == "start":
    ids = []
    for i, path in enumerate(sys.argv[4:]):
        with open(path, "rb") as f:
            r = requests.post(f"{BASE}/api/audio/upload", files={"file": (f"f{i}.wav", f)},
                              headers=AUTH, timeout=120)
        if r.status_code != 200:
            fail(f"upload: {r.status_code} {r.text}")
        ids.append(r.json()["file_id"])
    r = requests.post(f"{BASE}/api/audio/batch/create", headers=AUTH, timeout=10,
                      json={"input_files": ids, "output_directory": "crash",
                            "export_settings": {"format": "flac", "sample_rate": 44100}})
    job = r.json()["job_id"]
    r = requests.post(f"{BASE}/api/audio/batch/{job}/process", headers=AUTH, timeout=10)
    if r.status_code != 200:
        fail(f"process: {r.status_code} {r.text}")
    print(job)
elif MODE == "finish":
    job, n = sys.argv[4], int(sys.argv[5])
    st = requests.get(f"{BASE}/api/audio/batch/{job}", timeout=10).json()
    first = st["status"]
    if st["status"] not in ("pending", "completed"):
        fail(f"after the kill the batch is {st['status']}, not pending or completed")
    r = requests.post(f"{BASE}/api/audio/batch/{job}/process", headers=AUTH, timeout=10)
    if r.status_code != 200:
        fail(f"process again: {r.status_code} {r.text}")
    deadline = time.time() + 120
    while st["status"] != "completed":
        if time.time() > deadline or st["status"] == "failed":
            fail(f"the batch did not complete: {st}")
        time.sleep(0.1)
        st = requests.get(f"{BASE}/api/audio/batch/{job}", timeout=10).json()
    if len(st["completed_files"]) != n or st["failed_files"]:
        fail(f"after the restart: {st}")
    print(f"crash: batch {job} was {first} at the restart, completed after it: {st['completed_files']}")
else:
    fail(f"unknown mode {MODE}")
