#!/usr/bin/env python3
"""The mastering flow of the specification, as its users' clients walk it (`requests`):
references added and listed by genre, a track analysed against a genre with recommendations
at the three levels, the analysis read back, the closest references ranked, and the
refusals. Run by host/tests/serve.rs against a running `sluice serve`.

    mastering_flow.py BASE_URL TOKEN ROOT DIR

DIR holds techno1..3.wav and ambient1..2.wav (generated tracks of two families), muddy.wav
(a techno track with +6 dB in the low-mid band) and silent.wav.
"""

import math
import os
import sys

import requests

import client
from client import error_of, expect, fields

BASE, TOKEN, ROOT, DIR = sys.argv[1:5]
client.setup("mastering_flow", ROOT)
AUTH = {"Authorization": f"Bearer {TOKEN}"}
NUM = (int, float)
BANDS = ["low", "low_mid", "mid", "high_mid", "high"]


def path(name):
    return os.path.join(DIR, name)


def post_file(route, name, data, auth=True):
    with open(path(name), "rb") as f:
        return requests.post(f"{BASE}{route}", files={"file": (name, f)}, data=data,
                             headers=AUTH if auth else {}, timeout=300)


REFERENCE = {
    "reference_id": str, "name": str, "artist": (str, None), "genre": str, "year": (int, None),
    "file_name": str, "duration": NUM, "sample_rate": int, "integrated_lufs": NUM,
    "added_at": (str, None),
}
OVERALL = {k: NUM for k in [
    "duration", "integrated_lufs", "loudness_range_lu", "plr_lu", "crest_db",
    "max_short_term_lu", "width", "correlation", "balance_db", "onset_density", "attack_ms",
    "transient_db", "hnr_db", "thd_percent"]}
OVERALL["sample_rate"] = int
BAND = {"band": str, "low_hz": NUM, "high_hz": NUM, "power_share": NUM, "level_db": NUM,
        "crest_db": NUM, "spread_db": NUM, "width": NUM, "correlation": NUM}
ANALYSIS = {
    "analysis_id": str, "status": str, "file_id": str, "file_name": str, "genre": (str, None),
    "recommendation_level": str, "created_at": (str, None), "overall_metrics": dict,
    "band_metrics": list, "feature_vector": dict, "comparison": (dict, None),
    "recommendations": list, "notes": list,
}


def check_analysis(a, where):
    fields(a, ANALYSIS, where)
    expect(a["status"] == "completed", f"{where}: status {a['status']}")
    fields(a["overall_metrics"], OVERALL, f"{where} overall_metrics")
    expect([b["band"] for b in a["band_metrics"]] == BANDS, f"{where}: bands {a['band_metrics']}")
    for b in a["band_metrics"]:
        fields(b, BAND, f"{where} band {b.get('band')}")
    share = sum(b["power_share"] for b in a["band_metrics"])
    expect(abs(share - 1.0) < 1e-6, f"{where}: the bands' power shares sum to {share}")
    fields(a["feature_vector"], {"version": int, "values": list}, f"{where} feature_vector")
    expect(len(a["feature_vector"]["values"]) > 30, f"{where}: a short feature vector")
    for r in a["recommendations"]:
        fields(r, {"subject": str, "delta": NUM, "text": str}, f"{where} recommendation")


# An empty library (a fresh root): the list is empty; an analysis against a genre with no
# references (and no built-in profile) still gets its analysis and band metrics, with a note
# that no targets exist for the genre; it reads back,
# and the closest references are an empty list with the reason.
r = requests.get(f"{BASE}/api/references", timeout=10)
expect(r.status_code == 200 and r.json() == [], f"empty library: {r.status_code} {r.text}")
r = post_file("/api/analyze", "muddy.wav", {"genre": "techno"})
expect(r.status_code == 200, f"analysis against an empty genre: {r.status_code} {r.text}")
first = r.json()
check_analysis(first, "analysis against an empty genre")
expect(first["genre"] == "techno" and first["comparison"] is None and first["recommendations"] == [],
       f"no targets, no comparison: {first['comparison']} {first['recommendations']}")
expect(len(first["notes"]) == 1 and "techno" in first["notes"][0] and "no targets" in first["notes"][0],
       f"the note names the genre: {first['notes']}")
r = requests.get(f"{BASE}/api/analysis/{first['analysis_id']}", timeout=60)
expect(r.status_code == 200 and r.json()["notes"] == first["notes"], f"read back: {r.text[:300]}")
check_analysis(r.json(), "the empty-genre analysis read back")
r = requests.post(f"{BASE}/api/similarity/{first['analysis_id']}", headers=AUTH, timeout=60)
expect(r.status_code == 200, f"similarity on an empty library: {r.status_code} {r.text}")
sim = r.json()
expect(sim["similar_references"] == [] and sim["compared"] == 0 and len(sim["notes"]) == 1,
       f"similarity on an empty library: {sim}")

# A genre Sluice ships a profile of (orchestral, electronic, ambient) is compared with it on a
# fresh root: a comparison against the built-in profile, its recommendations, and a note saying
# so; its profile is served under v1 too.
r = post_file("/api/analyze", "muddy.wav", {"genre": "Orchestral"})
expect(r.status_code == 200, f"analysis against a built-in genre: {r.status_code} {r.text}")
built = r.json()
check_analysis(built, "analysis against a built-in genre")
comp = built["comparison"]
expect(built["genre"] == "orchestral" and comp is not None
       and comp["target"].startswith("built-in orchestral profile") and comp["references"] >= 10,
       f"compared with the built-in profile: {str(comp)[:300]}")
expect(len(comp["bands"]) == 5 and all(isinstance(b["delta_db"], (int, float)) for b in comp["bands"]),
       f"the built-in comparison's bands: {comp['bands']}")
expect(len(built["notes"]) == 1 and "built-in" in built["notes"][0] and "orchestral" in built["notes"][0],
       f"the note says the profile is built in: {built['notes']}")
r = requests.get(f"{BASE}/api/v1/genres/orchestral/profile", timeout=10)
expect(r.status_code == 200 and r.json()["name"].startswith("built-in orchestral"),
       f"the built-in profile under v1: {r.status_code} {r.text[:300]}")

# References: two families, with the user's facts; a mutating route needs the token.
error_of(post_file("/api/references", "techno1.wav", {"genre": "techno"}, auth=False), 401,
         "unauthorized", "adding a reference without the token")
ids = {}
for name, genre in [("techno1.wav", "Techno"), ("techno2.wav", "techno"),
                    ("techno3.wav", "techno"), ("ambient1.wav", "ambient"),
                    ("ambient2.wav", "ambient")]:
    data = {"genre": genre, "artist": "The Testers", "year": "2024"}
    if name == "techno1.wav":
        data["name"] = "Warehouse One"
    r = post_file("/api/references", name, data)
    expect(r.status_code == 201, f"add {name}: {r.status_code} {r.text}")
    ref = r.json()
    fields(ref, REFERENCE, f"reference {name}")
    expect(ref["genre"] == genre.lower(), f"{name}: genre kept as {ref['genre']}")
    expect(ref["artist"] == "The Testers" and ref["year"] == 2024, f"{name}: {ref}")
    expect(ref["file_name"] == name, f"{name}: file_name {ref['file_name']}")
    ids[name] = ref["reference_id"]
expect(requests.get(f"{BASE}/api/references", timeout=10).json()[0]["name"] == "Warehouse One",
       "the name given is the reference's name")
# The same content again is refused, naming the reference it is.
body = error_of(post_file("/api/references", "techno2.wav", {"genre": "ambient"}), 409,
                "exists", "the same content again")
expect(ids["techno2.wav"] in body["detail"], f"names the reference: {body['detail']}")
error_of(post_file("/api/references", "techno2.wav", {}), 400, "bad_field", "no genre")
error_of(post_file("/api/references", "techno2.wav", {"genre": "x", "year": "soon"}), 400,
         "bad_field", "a year that is not one")
error_of(post_file("/api/references", "silent.wav", {"genre": "techno"}), 422, "not_measurable",
         "a silent reference")
r = requests.get(f"{BASE}/api/references", params={"genre": "TECHNO"}, timeout=10)
expect(sorted(x["reference_id"] for x in r.json())
       == sorted(ids[n] for n in ["techno1.wav", "techno2.wav", "techno3.wav"]),
       f"techno's references: {r.json()}")

# A muddy techno track against techno, at the three levels.
by_level = {}
for level in ["gentle", "suggestive", "assertive"]:
    r = post_file("/api/analyze", "muddy.wav", {"genre": "techno", "recommendation_level": level})
    expect(r.status_code == 200, f"analyze at {level}: {r.status_code} {r.text}")
    a = r.json()
    check_analysis(a, f"analysis ({level})")
    expect(a["genre"] == "techno" and a["recommendation_level"] == level, f"{level}: {a['genre']}")
    by_level[level] = a
a = by_level["suggestive"]
low_mid = next(d for d in a["comparison"]["bands"] if d["name"] == "low_mid")
expect(low_mid["delta_db"] > 3.0 and not low_mid["inside"],
       f"the low-mid boost is measured outside the genre's tolerance: {low_mid}")
subjects = [r["subject"] for r in a["recommendations"]]
expect("low_mid" in subjects, f"a recommendation on the low-mid band: {a['recommendations']}")
text = next(r["text"] for r in a["recommendations"] if r["subject"] == "low_mid")
expect("cut" in text.lower(), f"the low-mid recommendation is a cut: {text}")
# The levels differ in tolerance and wording, never in the facts.
for level, other in by_level.items():
    expect(other["band_metrics"] == a["band_metrics"], f"{level}: other band metrics")
    expect([d["delta_db"] for d in other["comparison"]["bands"]]
           == [d["delta_db"] for d in a["comparison"]["bands"]], f"{level}: other deltas")
counts = [len(by_level[lv]["recommendations"]) for lv in ["gentle", "suggestive", "assertive"]]
expect(counts[0] <= counts[1] <= counts[2], f"recommendations per level: {counts}")
expect(len({a["analysis_id"] for a in by_level.values()}) == 3, "one id per analysis")

# Read back: the same analysis.
r = requests.get(f"{BASE}/api/analysis/{a['analysis_id']}", timeout=60)
expect(r.status_code == 200, f"analysis read back: {r.status_code} {r.text}")
expect(r.json() == a, "the analysis read back is the one answered")
# The same upload seen by the audio routes.
r = requests.get(f"{BASE}/api/audio/files/{a['file_id']}/metadata", timeout=10)
expect(r.status_code == 200 and r.json()["file_name"] == "muddy.wav", f"as an upload: {r.text}")

# Without a genre: the figures, no comparison.
r = post_file("/api/analyze", "ambient1.wav", {})
expect(r.status_code == 200, f"analyze without genre: {r.status_code} {r.text}")
plain = r.json()
check_analysis(plain, "analysis without genre")
expect(plain["comparison"] is None and plain["recommendations"] == [], f"{plain['comparison']}")

# Similarity: ambient1 is a reference itself, so it comes first at ~1; within techno the
# muddy track's nearest are techno tracks.
r = requests.post(f"{BASE}/api/similarity/{plain['analysis_id']}", params={"top_k": 3},
                  headers=AUTH, timeout=60)
expect(r.status_code == 200, f"similarity: {r.status_code} {r.text}")
s = r.json()
fields(s, {"analysis_id": str, "genre": (str, None), "compared": int,
           "similar_references": list, "notes": list}, "similarity")
expect(s["notes"] == [], f"similarity with references: no notes: {s['notes']}")
expect(s["compared"] == 5 and len(s["similar_references"]) == 3, f"similarity: {s}")
for x in s["similar_references"]:
    fields(x, dict(REFERENCE, score=NUM), "similar reference")
first = s["similar_references"][0]
expect(first["reference_id"] == ids["ambient1.wav"] and math.isclose(first["score"], 1.0,
       abs_tol=1e-3), f"the track itself first: {first}")
expect(s["similar_references"][1]["reference_id"] == ids["ambient2.wav"],
       f"then the other ambient track: {s['similar_references']}")
scores = [x["score"] for x in s["similar_references"]]
expect(scores == sorted(scores, reverse=True), f"nearest first: {scores}")
r = requests.post(f"{BASE}/api/similarity/{a['analysis_id']}",
                  params={"genre": "techno", "top_k": 10}, headers=AUTH, timeout=60)
expect(r.status_code == 200, f"similarity in techno: {r.status_code} {r.text}")
expect(r.json()["compared"] == 3 and len(r.json()["similar_references"]) == 3, f"{r.json()}")
error_of(requests.post(f"{BASE}/api/similarity/{a['analysis_id']}", params={"top_k": 0},
                       headers=AUTH, timeout=10), 400, "bad_field", "top_k 0")
r = requests.post(f"{BASE}/api/similarity/{a['analysis_id']}", params={"genre": "jazz"},
                  headers=AUTH, timeout=10)
expect(r.status_code == 200 and r.json()["similar_references"] == []
       and "jazz" in r.json()["notes"][0], f"an empty genre: {r.status_code} {r.text}")
error_of(requests.post(f"{BASE}/api/similarity/9999", headers=AUTH, timeout=10), 404,
         "not_found", "an unknown analysis")

# Refusals.
error_of(post_file("/api/analyze", "muddy.wav", {"recommendation_level": "extreme"}), 400,
         "bad_field", "an unknown level")
error_of(post_file("/api/analyze", "silent.wav", {}), 422, "not_measurable", "a silent track")
error_of(requests.get(f"{BASE}/api/analysis/9999", timeout=10), 404, "not_found", "no analysis")
error_of(requests.get(f"{BASE}/api/analysis/..%2F..", timeout=10), 404, "not_found", "a bad id")

# Removing a reference.
rid = ids["techno3.wav"]
error_of(requests.delete(f"{BASE}/api/references/{rid}", timeout=10), 401, "unauthorized",
         "a delete without the token")
r = requests.delete(f"{BASE}/api/references/{rid}", headers=AUTH, timeout=10)
expect(r.status_code == 200, f"remove: {r.status_code} {r.text}")
error_of(requests.delete(f"{BASE}/api/references/{rid}", headers=AUTH, timeout=10), 404,
         "not_found", "removed twice")
r = requests.get(f"{BASE}/api/references", params={"genre": "techno"}, timeout=10)
expect(len(r.json()) == 2, f"two techno references left: {r.json()}")

# The same library under /api/v1, with every measured figure.
r = requests.get(f"{BASE}/api/v1/references", params={"genre": "techno"}, timeout=10)
expect(r.status_code == 200 and len(r.json()) == 2, f"v1 references: {r.status_code} {r.text[:300]}")
for ref in r.json():
    fields(ref, {"id": int, "name": str, "genre": str, "source": str, "hash": str,
                 "added_at": str, "feature_version": int, "signature": dict}, "v1 reference")
    sig = ref["signature"]
    fields(sig, {"integrated_lufs": NUM, "plr_lu": NUM, "width": NUM, "bands": list},
           "v1 reference signature")
    expect(len(sig["bands"]) == 5, f"five bands: {sig['bands']}")
    expect("/" not in ref["source"], f"a server path in the reference: {ref['source']}")
one = r.json()[0]
r = requests.get(f"{BASE}/api/v1/references/{one['id']}", timeout=10)
expect(r.status_code == 200 and r.json() == one, f"v1 reference {one['id']}: {r.text[:300]}")
error_of(requests.get(f"{BASE}/api/v1/references/{rid}", timeout=10), 404, "not_found",
         "a removed reference under v1")
error_of(requests.get(f"{BASE}/api/v1/references/nope", timeout=10), 404, "not_found",
         "a reference id that is not one")
r = requests.get(f"{BASE}/api/v1/genres", timeout=10)
expect(r.status_code == 200 and {g["genre"]: g["references"] for g in r.json()}.get("techno") == 2,
       f"v1 genres: {r.text}")
r = requests.get(f"{BASE}/api/v1/genres/Techno/profile", timeout=10)
expect(r.status_code == 200, f"v1 profile: {r.status_code} {r.text[:300]}")
prof = r.json()
fields(prof, {"name": str, "references": int, "integrated_lufs": dict, "bands": list}, "v1 profile")
fields(prof["integrated_lufs"], {"mean": NUM, "spread": NUM}, "v1 profile loudness")
expect(prof["references"] == 2 and len(prof["bands"]) == 5, f"v1 profile: {prof['references']}")
error_of(requests.get(f"{BASE}/api/v1/genres/jazz/profile", timeout=10), 404, "no_references",
         "the profile of a genre with no references")

doc = requests.get(f"{BASE}/openapi.json", timeout=10).json()
for method, p in [("post", "/api/analyze"), ("get", "/api/analysis/{analysis_id}"),
                  ("get", "/api/references"), ("post", "/api/references"),
                  ("delete", "/api/references/{reference_id}"),
                  ("post", "/api/similarity/{analysis_id}"), ("get", "/api/v1/references"),
                  ("get", "/api/v1/references/{reference_id}"), ("get", "/api/v1/genres"),
                  ("get", "/api/v1/genres/{genre}/profile")]:
    expect(method in doc["paths"].get(p, {}), f"openapi.json: no {method.upper()} {p}")

print(f"mastering_flow: references, analyses at three levels, similarity and refusals ({BASE})")
