#!/usr/bin/env python3
"""Delivery QC over HTTP, as a client walks it (`requests`): the built-in specifications
listed, an uploaded dialogue judged against Netflix's (speech-gated) and EBU R 128 in JSON, the
same report as an HTML page whose figures equal the JSON's and as CSV, a specification of the
client's own sent as the body, and the refusals (an unknown specification or format, an
unknown file, a broken or oversized specification, a POST without the token). Run by host/tests/serve.rs against a
running `sluice serve`.

    qc_flow.py BASE_URL TOKEN ROOT FILE
"""

import os
import re
import sys

import requests

import client
from client import error_of, expect, fields

BASE, TOKEN, ROOT, FILE = sys.argv[1:5]
client.setup("qc_flow", ROOT)
AUTH = {"Authorization": f"Bearer {TOKEN}"}

r = requests.get(f"{BASE}/api/v1/qc/specs", timeout=30)
expect(r.status_code == 200, f"specs: {r.status_code} {r.text}")
specs = r.json()
ids = [s["id"] for s in specs]
for s in specs:
    fields(s, {"id": str, "name": str, "source": str, "speech_gated": bool}, "a specification")
expect("netflix" in ids and "ebu-r128" in ids, f"specs: {ids}")
expect(next(s for s in specs if s["id"] == "netflix")["speech_gated"], "netflix is speech-gated")

name = os.path.basename(FILE)
with open(FILE, "rb") as f:
    r = requests.post(f"{BASE}/api/audio/upload", files={"file": (name, f)}, headers=AUTH,
                      timeout=120)
expect(r.status_code in (200, 201), f"upload: {r.status_code} {r.text}")
file_id = r.json()["file_id"]

# Netflix: dialogue at -27 LKFS ±2, speech-gated; the file was made to pass.
r = requests.get(f"{BASE}/api/v1/files/{file_id}/qc", params={"spec": "netflix"}, timeout=300)
expect(r.status_code == 200, f"qc: {r.status_code} {r.text}")
report = r.json()
fields(report, {"spec": str, "passed": bool, "verdicts": list, "measured": dict}, "the report")
expect(report["spec"] == "netflix", report["spec"])
expect(report["passed"], f"the dialogue should pass: {report['verdicts']}")
m = report["measured"]
expect(m["path"] == name, f"the file as the client named it, not a server path: {m['path']}")
expect(0.5 <= m["speech_share"] <= 1.0, f"speech share {m['speech_share']}")
loud = next(v for v in report["verdicts"] if v["measure"] == "integrated_lufs")
expect(abs(loud["value"] + 27.0) <= 2.0, f"dialogue loudness {loud}")

# EBU R 128 on the same file: -27 is 4 LU under -23, a failure.
r = requests.get(f"{BASE}/api/v1/files/{file_id}/qc", params={"spec": "EBU-R128"}, timeout=300)
expect(r.status_code == 200, f"qc ebu: {r.status_code} {r.text}")
ebu = r.json()
expect(not ebu["passed"], "-27 LUFS fails EBU R 128")
expect(next(v for v in ebu["verdicts"] if v["measure"] == "integrated_lufs")["outcome"] == "fail",
       "integrated loudness fails")

# The HTML page: its rule rows carry the JSON's values.
r = requests.get(f"{BASE}/api/v1/files/{file_id}/qc", params={"spec": "netflix", "format": "html"},
                 timeout=300)
expect(r.status_code == 200 and r.headers["content-type"].startswith("text/html"),
       f"html: {r.status_code} {r.headers.get('content-type')}")
rows = re.findall(r'data-measure="([a-z_]+)" data-value="([^"]*)" data-outcome="([a-z_]+)"', r.text)
expect(len(rows) == len(report["verdicts"]), f"{len(rows)} rows for {len(report['verdicts'])} rules")
for (measure, value, outcome), v in zip(rows, report["verdicts"]):
    expect(measure == v["measure"] and outcome == v["outcome"], f"{measure}: {outcome} vs {v}")
    if isinstance(v.get("value"), (int, float)):
        expect(float(value) == float(v["value"]), f"{measure}: page {value}, JSON {v['value']}")
expect("/tmp" not in r.text and ROOT not in r.text, "no server path in the page")

# The CSV: a header and a row per 100 ms, with the speech column.
r = requests.get(f"{BASE}/api/v1/files/{file_id}/qc", params={"spec": "netflix", "format": "csv"},
                 timeout=300)
expect(r.status_code == 200 and r.headers["content-type"].startswith("text/csv"), "csv")
lines = r.text.strip().split("\n")
expect(lines[0].endswith(",speech"), lines[0])
expect(abs((len(lines) - 1) - m["duration_s"] * 10) <= 2, f"{len(lines) - 1} rows for {m['duration_s']} s")

# A specification of the client's own, sent as the body: a podcast house rule around -27.
HOUSE = """id = "house"
name = "House dialogue"
source = "the client's own"

[[rule]]
measure = "integrated_lufs"
gating = "speech"
revision = 1
target = -27.0
tolerance = 2.0

[[rule]]
measure = "sample_rate_hz"
one_of = [44100]
"""
r = requests.post(f"{BASE}/api/v1/files/{file_id}/qc", data=HOUSE.encode(), headers=AUTH,
                  timeout=300)
expect(r.status_code == 200, f"custom qc: {r.status_code} {r.text}")
house = r.json()
expect(house["spec"] == "house" and house["spec_name"] == "House dialogue", house["spec"])
outcomes = {v["measure"]: v["outcome"] for v in house["verdicts"]}
expect(outcomes == {"integrated_lufs": "pass", "sample_rate_hz": "fail"},
       f"speech at -27 passes, 48 kHz is not 44.1: {outcomes}")
house_loud = next(v for v in house["verdicts"] if v["measure"] == "integrated_lufs")["value"]
expect(house_loud == loud["value"],
       f"Netflix's speech-gated figure (BS.1770-1): {house_loud} vs {loud['value']}")
r = requests.post(f"{BASE}/api/v1/files/{file_id}/qc", params={"format": "html"},
                  data=HOUSE.encode(), headers=AUTH, timeout=300)
expect(r.status_code == 200 and "House dialogue" in r.text, f"custom html: {r.status_code}")
# Refused: no token (it is a POST), a broken rule, not TOML, too large.
error_of(requests.post(f"{BASE}/api/v1/files/{file_id}/qc", data=HOUSE.encode(), timeout=30),
         401, "unauthorized", "a custom QC without the token")
error_of(requests.post(f"{BASE}/api/v1/files/{file_id}/qc", headers=AUTH, timeout=30,
                       data=b'id = "x"\nname = "x"\nsource = "x"\n[[rule]]\nmeasure = "true_peak_dbtp"\n'),
         400, "bad_field", "a rule without a limit")
error_of(requests.post(f"{BASE}/api/v1/files/{file_id}/qc", headers=AUTH, timeout=30,
                       data=b"\xff\xfe not toml"), 400, "bad_field", "not text")
error_of(requests.post(f"{BASE}/api/v1/files/{file_id}/qc", headers=AUTH, timeout=30,
                       data=b"#" * (1 << 20) + b"\n"), 413, "too_large", "a 1 MiB specification")
# Thousands of rules, each asking for the whole history again: refused before any is judged.
many = 'id = "many"\nname = "many"\nsource = "an attack"\n' + (
    '[[rule]]\nmeasure = "integrated_lufs"\nmax = 0\nrevision = 1\ngating = "speech"\n' * 5000)
r = requests.post(f"{BASE}/api/v1/files/{file_id}/qc", headers=AUTH, timeout=30, data=many.encode())
expect(r.status_code == 400 and "at most 100" in r.text, f"5000 rules: {r.status_code} {r.text[:200]}")

# Refusals.
error_of(requests.get(f"{BASE}/api/v1/files/{file_id}/qc", params={"spec": "no-such"}, timeout=30),
         400, "bad_field", "an unknown specification")
error_of(requests.get(f"{BASE}/api/v1/files/{file_id}/qc",
                      params={"spec": "netflix", "format": "pdf"}, timeout=30),
         400, "bad_field", "an unknown format")
error_of(requests.get(f"{BASE}/api/v1/files/{'0' * 64}/qc", params={"spec": "netflix"}, timeout=30),
         404, "not_found", "an unknown file")
print("qc_flow: all checks passed")
