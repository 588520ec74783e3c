#!/usr/bin/env python3
"""Two batches at once on a server whose root has `workers = 2`: every export runs in one
of the two slots (never more at once, and both used), each batch's progress only rises, and
a file that cannot be exported fails alone with its reason while the others complete.

    batch_pool.py BASE_URL TOKEN ROOT AUDIO... BAD

BAD is uploaded like the others, then its stored copy is spoiled on disk (as a disk error
would), so its export fails. Run by host/tests/serve.rs.
"""

import glob
import os
import sys
import time

import requests

import client
from client import expect, fields

BASE, TOKEN, ROOT = sys.argv[1:4]
FILES, BAD = sys.argv[4:-1], sys.argv[-1]
client.setup("batch_pool", ROOT)
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def upload(path):
    with open(path, "rb") as f:
        r = requests.post(f"{BASE}/api/audio/upload", headers=AUTH, timeout=60,
                          files={"file": (os.path.basename(path), f)})
    expect(r.status_code == 200, f"upload {path}: {r.status_code} {r.text}")
    return r.json()["file_id"]


ids = [upload(p) for p in FILES]
bad = upload(BAD)
# The bad file's stored copy spoiled where the server keeps it.
kept = glob.glob(os.path.join(ROOT, "uploads", "*", "*", "*", os.path.basename(BAD)))
expect(len(kept) == 1, f"the stored upload of {BAD}: {kept}")
with open(kept[0], "r+b") as f:
    f.write(b"\0" * 4096)

settings = {"format": "flac", "sample_rate": 44100, "bit_depth": 16}
half = len(ids) // 2
batches = {}
for name, files in (("a", ids[:half] + [bad]), ("b", ids[half:])):
    r = requests.post(f"{BASE}/api/audio/batch/create", headers=AUTH, timeout=10,
                      json={"input_files": files, "output_directory": f"pool/{name}",
                            "export_settings": settings})
    expect(r.status_code == 200, f"batch {name}: {r.status_code} {r.text}")
    batches[name] = r.json()["job_id"]
for name, job in batches.items():
    r = requests.post(f"{BASE}/api/audio/batch/{job}/process", headers=AUTH, timeout=10)
    expect(r.status_code == 200, f"process {name}: {r.status_code} {r.text}")

most = 0
seen = {name: [] for name in batches}
deadline = time.time() + 180
while True:
    r = requests.get(f"{BASE}/api/v1/stats", timeout=10)
    expect(r.status_code == 200, f"stats: {r.status_code} {r.text}")
    ex = r.json()["exports"]
    fields(ex, {"workers": int, "running": int, "waiting": int}, "stats exports")
    expect(ex["workers"] == 2, f"the root's workers = 2, the server says {ex}")
    expect(ex["running"] <= ex["workers"], f"more exports than slots: {ex}")
    most = max(most, ex["running"])
    ended = 0
    for name, job in batches.items():
        st = requests.get(f"{BASE}/api/audio/batch/{job}", timeout=10).json()
        seen[name].append(st["progress"])
        if st["status"] in ("completed", "failed"):
            ended += 1
    if ended == len(batches):
        break
    expect(time.time() < deadline, f"the batches did not finish: {seen}")
    time.sleep(0.02)

expect(most == 2, f"at most {most} export(s) ran at once: the two slots were not both used")
for name, progress in seen.items():
    expect(sorted(progress) == progress and progress[-1] == 1,
           f"batch {name}'s progress did not only rise to 1: {progress}")

a = requests.get(f"{BASE}/api/audio/batch/{batches['a']}", timeout=10).json()
expect(a["status"] == "completed", f"batch a: {a}")
expect(a["failed_files"] == [bad], f"batch a: only the spoiled file fails: {a}")
expect(len(a["errors"]) == 1 and a["errors"][0]["file_id"] == bad
       and os.path.basename(BAD) in a["errors"][0]["error"],
       f"batch a: the failure names the file: {a['errors']}")
expect(len(a["completed_files"]) == half, f"batch a: {a}")
b = requests.get(f"{BASE}/api/audio/batch/{batches['b']}", timeout=10).json()
expect(b["status"] == "completed" and b["failed_files"] == []
       and len(b["completed_files"]) == len(ids) - half, f"batch b: {b}")
print(f"batch_pool: {len(ids) + 1} exports in two batches, at most {most} at once; "
      f"the spoiled file: {a['errors'][0]['error']}")
