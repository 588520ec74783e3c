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
      f"facts and pictures; screenshots in {OUT}")
