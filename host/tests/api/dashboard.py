#!/usr/bin/env python3
"""The dashboard in a real browser: headless Chromium driven over the DevTools protocol (CDP)
against `sluice watch` serving its root. A file is dropped on the drop zone (a real drag-and-
drop of a file from disk), the job is watched to done in the live table, its row is clicked,
and the report's facts and three pictures must appear; screenshots of the dashboard and of
the API reference page are saved and checked for content. Run by host/tests/serve.rs.

    dashboard.py BASE_URL TOKEN AUDIO_FILE CHROMIUM OUT_DIR
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import base64
import urllib.parse
import urllib.request

import websocket
from PIL import Image, ImageStat

import client
from client import expect, fail

BASE, TOKEN, AUDIO, CHROMIUM, OUT = sys.argv[1:6]
client.setup("dashboard", None)


class Browser:
    """Headless Chromium with one page, spoken to over CDP."""

    def __init__(self):
        self.profile = tempfile.mkdtemp(prefix="sluice-chromium-")
        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu",
             "--disable-dev-shm-usage", "--no-first-run", "--no-default-browser-check",
             "--remote-debugging-port=0", f"--user-data-dir={self.profile}",
             "--window-size=1400,1600", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = os.path.join(self.profile, "DevToolsActivePort")
        end = time.time() + 30
        while not os.path.exists(port_file) or not open(port_file).read().strip():
            expect(time.time() < end, "chromium did not open its DevTools port in 30 s")
            expect(self.proc.poll() is None, f"chromium exited ({self.proc.returncode})")
            time.sleep(0.1)
        port = open(port_file).read().split()[0]
        targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list"))
        page = next(t for t in targets if t["type"] == "page")
        self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=60,
                                              suppress_origin=True)
        self.next_id = 0
        self.call("Page.enable")
        self.call("Runtime.enable")

    def call(self, method, **params):
        self.next_id += 1
        mine = self.next_id
        self.ws.send(json.dumps({"id": mine, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == mine:
                expect("error" not in msg, f"{method}: {msg.get('error')}")
                return msg.get("result", {})

    def eval(self, expr):
        r = self.call("Runtime.evaluate", expression=expr, returnByValue=True, awaitPromise=True)
        expect("exceptionDetails" not in r, f"{expr}: {r.get('exceptionDetails')}")
        return r["result"].get("value")

    def wait(self, expr, what, seconds=30):
        end = time.time() + seconds
        while time.time() < end:
            v = self.eval(expr)
            if v:
                return v
            time.sleep(0.2)
        fail(f"waited {seconds} s for {what}")

    def centre(self, selector):
        r = self.eval(f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
                      " e.scrollIntoView({block: 'center'}); const b = e.getBoundingClientRect();"
                      " return [b.x + b.width / 2, b.y + b.height / 2]; })()")
        return r[0], r[1]

    def screenshot(self, name):
        shot = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        path = os.path.join(OUT, name)
        with open(path, "wb") as f:
            f.write(base64.b64decode(shot["data"]))
        return path

    def close(self):
        try:
            self.ws.close()
        finally:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            shutil.rmtree(self.profile, ignore_errors=True)


def client_upload(path):
    """Uploads `path` as a client would (multipart), answering its file id."""
    boundary = "sluice-dashboard-test"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"{os.path.basename(path)}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            ).encode() + open(path, "rb").read() + f"\r\n--{boundary}--\r\n".encode()
    req = urllib.request.Request(f"{BASE}/api/audio/upload", data=body, method="POST", headers={
        "Authorization": f"Bearer {TOKEN}",
        "Content-Type": f"multipart/form-data; boundary={boundary}"})
    return json.load(urllib.request.urlopen(req))["file_id"]


os.makedirs(OUT, exist_ok=True)
b = Browser()
try:
    # Signed in by the address the server prints on first start; the token leaves the address.
    b.call("Page.navigate", url=f"{BASE}/#token={TOKEN}")
    b.wait("document.readyState === 'complete'", "the page to load")
    b.wait("document.querySelectorAll('#pipeline option').length > 0", "the pipelines")
    expect(b.eval("location.hash") == "", "the token stays in the address")
    expect(b.eval("localStorage.getItem('sluice-token')") == TOKEN, "the token is kept")
    expect(b.eval("getComputedStyle(document.getElementById('token-box')).display") == "none",
           "signed in, the page does not ask for the token")
    b.wait("document.getElementById('status').textContent === 'live'", "the live feed")
    b.eval("document.getElementById('pipeline').value = 'podcast'")
    # The effects list is fetched after the pipelines: wait for it rather than read it once.
    b.wait("document.querySelectorAll('#effects li').length > 0", "the effects list")
    effects = b.eval("document.getElementById('effects').innerText")
    expect("highpass" in effects and "compressor" in effects, f"the effects list: {effects}")

    # A real drop of a file from disk on the drop zone.
    x, y = b.centre("#drop")
    data = {"items": [], "files": [os.path.abspath(AUDIO)], "dragOperationsMask": 1}
    for kind in ["dragEnter", "dragOver", "drop"]:
        b.call("Input.dispatchDragEvent", type=kind, x=x, y=y, data=data)
    placed = b.wait("(() => { const t = document.getElementById('submitted').innerText;"
                    " return t.includes('placed in') ? t : ''; })()", "the drop to be sent")
    name = os.path.basename(AUDIO)
    expect(name in placed and "inbox/podcast" in placed, f"after the drop: {placed}")

    # The job appears in the live table and finishes there.
    row = b.wait(f"(() => {{ const r = [...document.querySelectorAll('#jobs tr')]"
                 f".find(r => r.innerText.includes({json.dumps(name)}) && r.innerText.includes('done'));"
                 " return r ? r.dataset.id : ''; })()", "the job to be done in the table", 120)
    x, y = b.centre(f"#jobs tr[data-id='{row}']")
    for kind in ["mousePressed", "mouseReleased"]:
        b.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)
    b.wait("!document.getElementById('report').hidden", "the report to open")
    facts = b.wait("(() => { const t = document.getElementById('facts').innerText;"
                   " return t.includes('LUFS') ? t : ''; })()", "the report's facts")
    expect("dBTP" in facts, f"facts: {facts}")
    outs = b.eval("document.getElementById('outputs').innerText")
    expect(".mp3" in outs and ".flac" in outs, f"outputs: {outs}")
    sizes = b.wait("(() => { const i = ['waveform', 'loudness', 'spectrum'].map(k =>"
                   " document.getElementById('plot-' + k));"
                   " if (i.some(x => x.dataset.state === 'error')) return 'error: ' + i.map(x => x.alt).join('; ');"
                   " return i.every(x => x.complete && x.naturalWidth > 0 && x.dataset.state === 'ok')"
                   " ? i.map(x => [x.naturalWidth, x.naturalHeight]) : ''; })()",
                   "the three pictures", 90)
    expect(not isinstance(sizes, str), f"the pictures: {sizes}")
    expect(all(w >= 1000 and h >= 200 for w, h in sizes), f"picture sizes: {sizes}")
    shot = b.screenshot("dashboard.png")

    # The screenshot has the pictures in it: each picture's area is not a flat colour.
    img = Image.open(shot).convert("RGB")
    expect(img.width >= 1000 and img.height >= 1000, f"screenshot size {img.size}")
    scroll = b.eval("[window.scrollX, window.scrollY]")
    for kind in ["waveform", "loudness", "spectrum"]:
        r = b.eval(f"(() => {{ const b = document.getElementById('plot-{kind}')"
                   ".getBoundingClientRect(); return [b.x, b.y, b.width, b.height]; })()")
        box = (int(r[0] + scroll[0]), int(r[1] + scroll[1]),
               int(r[0] + scroll[0] + r[2]), int(r[1] + scroll[1] + r[3]))
        crop = img.crop(box)
        spread = max(ImageStat.Stat(crop).stddev)
        colours = len(crop.getcolors(1 << 20) or [])
        expect(spread > 8 and colours > 20,
               f"the {kind} picture in the screenshot looks empty: stddev {spread:.1f}, "
               f"{colours} colours, box {box}")

    # Delivery QC: the same file dropped on the QC zone with EBU R 128 chosen; the verdicts in
    # the page equal the API's JSON for that file, and the report page and CSV links hold the
    # same judgement.
    b.wait("document.querySelectorAll('#qc-spec option').length >= 10", "the specifications")
    b.eval("(() => { const s = document.getElementById('qc-spec'); s.value = 'ebu-r128';"
           " s.dispatchEvent(new Event('change')); })()")
    source = b.eval("document.getElementById('qc-source').textContent")
    expect("EBU R 128" in source, f"the specification's source: {source!r}")
    x, y = b.centre("#qc-drop")
    for kind in ["dragEnter", "dragOver", "drop"]:
        b.call("Input.dispatchDragEvent", type=kind, x=x, y=y, data=data)
    verdict = b.wait("(() => { const v = document.getElementById('qc-verdict').textContent;"
                     " return document.getElementById('qc-html').href.startsWith('blob:') ? v : ''; })()",
                     "the QC verdict and its report links", 120)
    rows = b.eval("[...document.querySelectorAll('#qc-rules tr')].map(r =>"
                  " [r.dataset.measure, r.dataset.outcome, r.cells[1].innerText.trim()])")
    # The API's own answer for the uploaded file (its id is the content's BLAKE3 hash, as the
    # upload answers it).
    up = client_upload(AUDIO)
    api = json.load(urllib.request.urlopen(urllib.request.Request(
        f"{BASE}/api/v1/files/{urllib.parse.quote(up)}/qc?spec=ebu-r128",
        headers={"Authorization": f"Bearer {TOKEN}"})))
    expect(verdict == ("PASSES" if api["passed"] else "FAILS"), f"verdict {verdict} vs {api['passed']}")
    expect(len(rows) == len(api["verdicts"]), f"{len(rows)} rows for {len(api['verdicts'])} rules")
    for (measure, outcome, shown), v in zip(rows, api["verdicts"]):
        expect(measure == v["measure"] and outcome == v["outcome"], f"row {measure} {outcome} vs {v}")
        if isinstance(v.get("value"), (int, float)) and not isinstance(v["value"], bool):
            got = float(shown.split()[0])
            expect(abs(got - v["value"]) <= 0.005 + 1e-9, f"{measure}: shown {shown}, API {v['value']}")
    page = b.eval("qcLast.html.text()")
    expect(page.lower().startswith("<!doctype html") and api["spec_name"] in page,
           "the report page link")
    csv = b.eval("qcLast.csv.text()")
    expect(csv.startswith("time_s,momentary_lufs") and len(csv.splitlines()) > 50,
           f"the CSV link: {csv[:80]!r}")
    expect(b.eval("document.getElementById('qc-csv').download").endswith(".ebu-r128.csv"),
           "the CSV is offered under the file's name")
    b.screenshot("dashboard-qc.png")
    # The report page opens from its link (under the dashboard's content policy) with the
    # same verdicts.
    b.call("Page.navigate", url=b.eval("document.getElementById('qc-html').href"))
    b.wait("document.readyState === 'complete'", "the report page to open")
    shown_rules = b.eval("document.querySelectorAll('[data-measure][data-outcome]').length")
    expect(shown_rules >= len(api["verdicts"]),
           f"the report page shows {shown_rules} verdicts of {len(api['verdicts'])}")
    b.screenshot("dashboard-qc-report.png")

    # The API reference, rendered from /openapi.json in the page.
    b.call("Page.navigate", url=f"{BASE}/api/docs")
    n = b.wait("document.querySelectorAll('details[id]').length", "the API reference", 20)
    expect(n >= 30, f"the reference lists {n} operations")
    text = b.eval("document.body.innerText")
    for p in ["/api/audio/upload", "/api/analyze", "/api/v1/jobs", "/api/v1/events"]:
        expect(p in text, f"the reference does not show {p}")
    b.screenshot("api-docs.png")
finally:
    b.close()

print(f"dashboard: dropped {os.path.basename(AUDIO)}, saw its job done live, its report's "
      f"facts and pictures, and its delivery QC equal to the API's; screenshots in {OUT}")
