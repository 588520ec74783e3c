#!/usr/bin/env python3
"""Sluice's own routes (/api/v1/) against `sluice watch` serving its root (`[server]` in
sluice.toml), as a script on another machine would use them: the pipelines, a file submitted
to a pipeline and followed on the live feed (server-sent events) to done, its job, events,
report and outputs; a broken file that fails, retried; effects; stats; refusals.
Run by host/tests/serve.rs.

    v1_flow.py BASE_URL TOKEN ROOT AUDIO_FILE
"""

import json
import os
import sys
import threading
import time

import requests

import client
from client import error_of, expect, fail, fields

BASE, TOKEN, ROOT, AUDIO = sys.argv[1:5]
client.setup("v1_flow", ROOT)
AUTH = {"Authorization": f"Bearer {TOKEN}"}
NUM = (int, float)


JOB = {
    "id": int, "pipeline": str, "input": str, "state": str, "progress": NUM, "attempts": int,
    "error": (str, None), "created_at": (str, None), "started_at": (str, None),
    "finished_at": (str, None), "outputs": list, "report": (str, None),
    "source_now": (str, None),
}

# The live feed, read from the start in the background.
feed = []
feed_open = threading.Event()


def listen():
    with requests.get(f"{BASE}/api/v1/events", stream=True, timeout=120) as r:
        expect(r.status_code == 200, f"events: {r.status_code}")
        expect(r.headers["content-type"].startswith("text/event-stream"),
               f"events: {r.headers['content-type']}")
        feed_open.set()
        kind, data = None, []
        for line in r.iter_lines(decode_unicode=True):
            if line.startswith("event:"):
                kind = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
            elif line == "" and kind:
                feed.append((kind, json.loads("\n".join(data))))
                kind, data = None, []


threading.Thread(target=listen, daemon=True).start()
expect(feed_open.wait(10), "the event stream did not open")

# Pipelines: the root's examples, with their watch folders, relative to the root.
r = requests.get(f"{BASE}/api/v1/pipelines", timeout=30)
expect(r.status_code == 200, f"pipelines: {r.status_code} {r.text}")
fields(r.json(), {"pipelines": list, "problems": list}, "pipelines")
by_name = {p["name"]: p for p in r.json()["pipelines"]}
expect({"podcast", "analysis"} <= set(by_name), f"pipelines: {sorted(by_name)}")
for p in by_name.values():
    fields(p, {"name": str, "file": str, "description": (str, None), "steps": int,
               "outputs": int, "watch": list}, f"pipeline {p['name']}")
expect(by_name["podcast"]["watch"] == ["inbox/podcast"], f"{by_name['podcast']}")
expect(ROOT not in r.text, "pipelines show no server path")

# Submit a file to the podcast pipeline; the token is needed.
def submit(name, content, pipeline="podcast", auth=True):
    return requests.post(f"{BASE}/api/v1/jobs", files={"file": (name, content)},
                         data={"pipeline": pipeline}, headers=AUTH if auth else {}, timeout=60)


audio = open(AUDIO, "rb").read()
error_of(submit("episode.wav", audio, auth=False), 401, "unauthorized", "submit without token")
error_of(submit("episode.wav", audio, pipeline="nope"), 400, "bad_field", "unknown pipeline")
# A name the pipeline does not take would wait in its folder for ever: refused, saying why.
body = error_of(submit("episode.txt", audio), 400, "bad_field", "a file the pipeline skips")
expect("*.wav" in body["detail"] and "episode.txt" in body["detail"], body["detail"])
expect(not os.path.exists(os.path.join(ROOT, "inbox/podcast/episode.txt")), "placed anyway")
r = submit("episode.wav", audio)
expect(r.status_code == 202, f"submit: {r.status_code} {r.text}")
sub = r.json()
fields(sub, {"pipeline": str, "path": str, "host_running": bool, "message": str}, "submit")
expect(sub["path"] == "inbox/podcast/episode.wav" and sub["host_running"], f"submit: {sub}")


def wait_job(input_path, states, seconds=90):
    end = time.time() + seconds
    while time.time() < end:
        r = requests.get(f"{BASE}/api/v1/jobs", params={"pipeline": "podcast"}, timeout=10)
        for j in r.json():
            if j["input"] == input_path and j["state"] in states:
                return j
        time.sleep(0.25)
    fail(f"no job for {input_path} in {states} after {seconds} s: {r.json()}")


job = wait_job("inbox/podcast/episode.wav", ["done"])
fields(job, JOB, "job")
expect(job["progress"] == 1.0 and job["error"] is None, f"job: {job}")
expect(sorted(o["format"] for o in job["outputs"]) == ["flac", "mp3"], f"outputs: {job}")
for o in job["outputs"]:
    fields(o, {"path": str, "bytes": int, "hash": str, "format": str}, "output")
    expect(os.path.isfile(os.path.join(ROOT, o["path"])), f"{o['path']} not written")
expect(job["source_now"].startswith("done/podcast/"), f"source moved: {job['source_now']}")

# Its detail, with its events, and its report.
r = requests.get(f"{BASE}/api/v1/jobs/{job['id']}", timeout=10)
expect(r.status_code == 200, f"job detail: {r.status_code}")
detail = r.json()
fields(detail["job"], JOB, "job detail")
kinds = [e["kind"] for e in detail["events"]]
expect("done" in kinds, f"the job's events: {kinds}")
for e in detail["events"]:
    fields(e, {"id": int, "time": (str, None), "job": (int, None), "kind": str, "message": str},
           "event")
r = requests.get(f"{BASE}/api/v1/jobs/{job['id']}/report", timeout=10)
expect(r.status_code == 200, f"report: {r.status_code} {r.text}")
expect("loudness" in json.dumps(r.json()), f"the report has the loudness: {list(r.json())}")

# The live feed saw the job start and finish, with its progress.
end = time.time() + 5
while time.time() < end and not any(k == "job" and d["id"] == job["id"] and d["state"] == "done"
                                     for k, d in feed):
    time.sleep(0.1)
states = [d["state"] for k, d in feed if k == "job" and d["id"] == job["id"]]
expect("done" in states, f"the feed's states of job {job['id']}: {states} (feed: {feed})")
logs = [d["kind"] for k, d in feed if k == "log" and d["job"] == job["id"]]
expect("done" in logs, f"the feed's events of job {job['id']}: {logs}")

# A file that is not audio: the job fails and its source is quarantined; retried by the API.
r = submit("broken.wav", b"not a wave file at all " * 200)
expect(r.status_code == 202, f"submit broken: {r.status_code} {r.text}")
bad = wait_job("inbox/podcast/broken.wav", ["failed", "quarantined"])
expect(bad["error"] and "broken.wav" in bad["error"], f"the error names the file: {bad}")
error_of(requests.post(f"{BASE}/api/v1/jobs/{job['id']}/retry", headers=AUTH, timeout=10), 409,
         "busy", "retrying a done job")
error_of(requests.post(f"{BASE}/api/v1/jobs/{bad['id']}/retry", timeout=10), 401, "unauthorized",
         "retry without token")
r = requests.post(f"{BASE}/api/v1/jobs/{bad['id']}/retry", headers=AUTH, timeout=10)
expect(r.status_code == 200, f"retry: {r.status_code} {r.text}")
expect(r.json()["job"]["state"] == "queued", f"retried: {r.json()}")
error_of(requests.get(f"{BASE}/api/v1/jobs/99999", timeout=10), 404, "not_found", "no job")
error_of(requests.get(f"{BASE}/api/v1/jobs", params={"state": "bogus"}, timeout=10), 400,
         "bad_field", "an unknown state")
r = requests.get(f"{BASE}/api/v1/jobs", params={"state": "done"}, timeout=10)
expect([j["id"] for j in r.json()] == [job["id"]], f"done jobs: {r.json()}")

# Effects.
r = requests.get(f"{BASE}/api/v1/effects", timeout=60)
expect(r.status_code == 200, f"effects: {r.status_code} {r.text}")
names = [e["name"] for e in r.json()["effects"]]
expect({"eq", "compressor", "highpass"} <= set(names), f"effects: {names}")
r = requests.get(f"{BASE}/api/v1/effects/highpass", timeout=60)
expect(r.status_code == 200 and r.json()["origin"] == "built in", f"highpass: {r.text}")
expect(any(p.get("id") == "cutoff_hz" for p in r.json()["params"]), f"params: {r.json()}")
error_of(requests.get(f"{BASE}/api/v1/effects/nope", timeout=60), 404, "not_found", "no effect")

# Stats.
r = requests.get(f"{BASE}/api/v1/stats", timeout=30)
expect(r.status_code == 200 and r.json()["jobs"].get("done") == 1, f"stats: {r.text}")

doc = requests.get(f"{BASE}/openapi.json", timeout=10).json()
for method, p in [("get", "/api/v1/pipelines"), ("get", "/api/v1/jobs"), ("post", "/api/v1/jobs"),
                  ("get", "/api/v1/jobs/{id}"), ("get", "/api/v1/jobs/{id}/report"),
                  ("post", "/api/v1/jobs/{id}/retry"), ("get", "/api/v1/effects"),
                  ("get", "/api/v1/effects/{name}"), ("get", "/api/v1/stats"),
                  ("get", "/api/v1/events")]:
    expect(method in doc["paths"].get(p, {}), f"openapi.json: no {method.upper()} {p}")

print(f"v1_flow: pipelines, a job followed live to done, a failed one retried, effects, stats "
      f"({BASE}; {len(feed)} live events)")
