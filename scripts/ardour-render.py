#!/usr/bin/env python3
"""Helpers for scripts/ardour-render.sh (Python 3 standard library only).

  gen OUT.wav SECONDS RATE           programme-like stereo 32-bit float input
  split IN.wav LEFT.wav RIGHT.wav    one mono float file per channel (what Ardour's import makes)
  inject SESSION.ardour LEFT RIGHT   add the two files as sources + one stereo whole-file region
  compare INPUT.wav RENDER.wav CONTROL.wav [--strict]
                                     sample-by-sample verdict (see compare()); exit 0 on a pass
  chunk SESSION.ardour               print the Sluice Meter VST3 state chunk (decoded), or fail
  take INPUT.wav TAKES_DIR           check the one take Sluice Meter recorded during an export
"""

import array
import base64
import hashlib
import math
import random
import struct
import sys
import xml.etree.ElementTree as ET

WAVE_FORMAT_IEEE_FLOAT = 3
WAVE_FORMAT_EXTENSIBLE = 0xFFFE
# Sluice Meter's VST3 class id, as Ardour writes it in the session (unique-id).
SLUICE_VST3_UID = "536C756963654D65746572506C756731"


def die(msg):
    print(f"ardour-render.py: {msg}", file=sys.stderr)
    sys.exit(2)


# ---------------------------------------------------------------- WAV (float) I/O


def write_float_wav(path, rate, channels):
    """channels: list of array('f') of equal length; writes 32-bit IEEE float WAV."""
    n = len(channels[0])
    nch = len(channels)
    inter = array.array("f", bytes(4 * n * nch))
    for c, data in enumerate(channels):
        inter[c::nch] = data
    if sys.byteorder != "little":
        inter.byteswap()
    body = inter.tobytes()
    fmt = struct.pack("<HHIIHH", WAVE_FORMAT_IEEE_FLOAT, nch, rate, rate * nch * 4, nch * 4, 32)
    fmt += struct.pack("<H", 0)  # cbSize: non-PCM formats carry one
    fact = struct.pack("<I", n)
    with open(path, "wb") as f:
        f.write(b"RIFF" + struct.pack("<I", 4 + (8 + len(fmt)) + (8 + 4) + (8 + len(body))) + b"WAVE")
        f.write(b"fmt " + struct.pack("<I", len(fmt)) + fmt)
        f.write(b"fact" + struct.pack("<I", 4) + fact)
        f.write(b"data" + struct.pack("<I", len(body)) + body)


def read_float_wav(path):
    """Returns (rate, [array('f') per channel]); only 32-bit IEEE float (plain or extensible)."""
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:4] != b"RIFF" or raw[8:12] != b"WAVE":
        die(f"{path}: not a RIFF/WAVE file")
    pos, fmt, data = 12, None, None
    while pos + 8 <= len(raw):
        cid, size = raw[pos : pos + 4], struct.unpack("<I", raw[pos + 4 : pos + 8])[0]
        body = raw[pos + 8 : pos + 8 + size]
        if cid == b"fmt ":
            fmt = body
        elif cid == b"data":
            data = body
        pos += 8 + size + (size & 1)
    if fmt is None or data is None:
        die(f"{path}: no fmt or data chunk")
    tag, nch, rate, _, _, bits = struct.unpack("<HHIIHH", fmt[:16])
    if tag == WAVE_FORMAT_EXTENSIBLE and len(fmt) >= 26:
        tag = struct.unpack("<H", fmt[24:26])[0]  # first two bytes of the sub-format GUID
    if tag != WAVE_FORMAT_IEEE_FLOAT or bits != 32:
        die(f"{path}: format tag {tag}, {bits} bits; expected 32-bit IEEE float")
    inter = array.array("f")
    inter.frombytes(data[: len(data) - len(data) % (4 * nch)])
    if sys.byteorder != "little":
        inter.byteswap()
    return rate, [inter[c::nch] for c in range(nch)]


# ---------------------------------------------------------------- input programme


def gen(out, seconds, rate):
    """A deterministic stereo programme: silence, tones, noise, a mixed section with an
    envelope, near-full-scale parts (incl. exactly +/-1.0 and the largest float below 1.0),
    subnormals and negative zeros, each in its own section."""
    rng = random.Random(20261122)
    n = int(seconds * rate)
    left = array.array("f", bytes(4 * n))
    right = array.array("f", bytes(4 * n))
    below_one = struct.unpack("<f", struct.pack("<I", 0x3F7FFFFF))[0]  # 0.99999994
    subnormal = struct.unpack("<f", struct.pack("<I", 0x00000400))[0]  # ~1.4e-42
    sections = [
        ("silence", 0.5),
        ("tones", 2.0),
        ("noise", 2.0),
        ("silence", 1.0),
        ("programme", 4.0),
        ("fullscale", 1.5),
        ("tiny", 1.0),
        ("programme", 3.0),
    ]
    scale = seconds / sum(d for _, d in sections)
    t0 = 0
    for kind, dur in sections:
        t1 = min(n, t0 + int(dur * scale * rate))
        for i in range(t0, t1):
            t = i / rate
            if kind == "silence":
                lv = rv = 0.0
            elif kind == "tones":
                lv = 0.25 * math.sin(2 * math.pi * 440.0 * t)
                rv = 0.25 * math.sin(2 * math.pi * 1000.0 * t) + 0.1 * math.sin(2 * math.pi * 63.0 * t)
            elif kind == "noise":
                lv = rng.uniform(-0.1, 0.1)
                rv = rng.gauss(0.0, 0.05)
            elif kind == "programme":
                env = 0.5 + 0.45 * math.sin(2 * math.pi * 0.7 * t)
                common = 0.3 * math.sin(2 * math.pi * 220.0 * t) + 0.1 * math.sin(2 * math.pi * 3520.0 * t)
                lv = env * (common + 0.2 * rng.uniform(-1, 1))
                rv = env * (0.8 * common + 0.15 * math.sin(2 * math.pi * 331.0 * t) + 0.2 * rng.uniform(-1, 1))
            elif kind == "fullscale":
                k = i - t0
                if k % 4800 < 2400:  # square-ish at exactly +/-1.0 and just below
                    lv = 1.0 if (k // 24) % 2 == 0 else -1.0
                    rv = below_one if (k // 24) % 2 else -below_one
                else:  # a 997 Hz sine peaking at 0.9999
                    lv = 0.9999 * math.sin(2 * math.pi * 997.0 * t)
                    rv = -lv
            else:  # tiny: subnormals, negative zeros, the smallest normals
                k = i - t0
                lv = (subnormal * ((k % 7) - 3)) if k % 5 else -0.0
                rv = 1.1754944e-38 * (1 if k % 2 else -1) * ((k % 3) + 1)
            left[i] = lv
            right[i] = rv
        t0 = t1
    write_float_wav(out, rate, [left, right])
    print(f"input: {out}: {n} frames, {rate} Hz, 2 ch, 32-bit float, {n / rate:.1f} s")


def split(inp, lpath, rpath):
    rate, chans = read_float_wav(inp)
    if len(chans) != 2:
        die(f"{inp}: {len(chans)} channels, expected 2")
    write_float_wav(lpath, rate, [chans[0]])
    write_float_wav(rpath, rate, [chans[1]])


# ---------------------------------------------------------------- session XML


def inject(session_file, lpath, rpath):
    """Adds two mono file sources and a stereo whole-file region named 'programme' to a
    saved session; the files must already be in interchange/<session>/audiofiles. The Lua
    step then puts a copy of the region on the track's playlist (Ardour's own code)."""
    rate_l, (left,) = read_float_wav(lpath)
    rate_r, (right,) = read_float_wav(rpath)
    if rate_l != rate_r or len(left) != len(right):
        die("left/right sources differ in rate or length")
    frames = len(left)
    tree = ET.parse(session_file)
    root = tree.getroot()
    rate = int(root.get("sample-rate"))
    if rate != rate_l:
        die(f"session runs at {rate} Hz, sources are {rate_l} Hz")
    tm = root.find("TempoMap")
    scps = int(tm.get("superclocks-per-second")) if tm is not None and tm.get("superclocks-per-second") else 282240000
    if scps % rate:
        die(f"superclocks-per-second {scps} is not a multiple of {rate}")
    length = frames * (scps // rate)
    counter = int(root.get("id-counter"))
    sid_l, sid_r, rid = counter + 1, counter + 2, counter + 3
    root.set("id-counter", str(counter + 10))
    sources = root.find("Sources")
    regions = root.find("Regions")
    if sources is None or regions is None:
        die(f"{session_file}: no <Sources>/<Regions>")
    for sid, path, ch in ((sid_l, lpath, 0), (sid_r, rpath, 1)):
        name = path.rsplit("/", 1)[-1]
        ET.SubElement(
            sources,
            "Source",
            {"name": name, "take-id": "", "type": "audio", "flags": "", "id": str(sid), "captured-for": "", "channel": "0", "origin": "", "gain": "1"},
        )
    ET.SubElement(
        regions,
        "Region",
        {
            "name": "programme",
            "id": str(rid),
            "type": "audio",
            "channels": "2",
            "whole-file": "1",
            "import": "1",
            "start": "a0",
            "length": f"a{length}@a0",  # a timecnt_t: distance@position
            "position": "a0",
            "scale-amplitude": "1",
            "envelope-active": "0",
            "default-fade-in": "0",
            "default-fade-out": "0",
            "fade-in-active": "0",
            "fade-out-active": "0",
            "first-edit": "nothing",
            "source-0": str(sid_l),
            "source-1": str(sid_r),
            "master-source-0": str(sid_l),
            "master-source-1": str(sid_r),
        },
    )
    tree.write(session_file, encoding="UTF-8", xml_declaration=True)
    print(f"injected: sources {sid_l}/{sid_r}, whole-file region {rid} 'programme', {frames} frames (a{length}@a0)")


def plugin_chunks(session_file):
    """Every Sluice Meter VST3 processor in the session: (route, processor attrs, decoded chunk)."""
    root = ET.parse(session_file).getroot()
    found = []
    for route in root.iter("Route"):
        for proc in route.findall("Processor"):
            if proc.get("type") == "vst3" and proc.get("unique-id") == SLUICE_VST3_UID:
                chunk = proc.find("vst3/chunk")
                data = base64.b64decode(chunk.text) if chunk is not None and chunk.text else b""
                ports = {p.get("id"): p.get("value") for p in proc.findall("vst3/Port")}
                found.append((route.get("name"), dict(proc.attrib), data, ports))
    return found


def chunk(session_file):
    found = plugin_chunks(session_file)
    if not found:
        die(f"{session_file}: no Sluice Meter VST3 processor (unique-id {SLUICE_VST3_UID})")
    for route, attrs, data, ports in found:
        start, end = data.find(b"{"), data.rfind(b"}")
        state = data[start : end + 1].decode("utf-8", "replace") if start >= 0 else "(no JSON state)"
        print(f"route {route!r}: processor {attrs.get('name')!r} type={attrs.get('type')} active={attrs.get('active')}")
        print(f"  parameter ports: {ports}")
        print(f"  plugin state ({len(data)} bytes chunk, sha256 {hashlib.sha256(data).hexdigest()}): {state}")


# ---------------------------------------------------------------- comparison


def bits(x):
    return struct.unpack("<I", struct.pack("<f", x))[0]


def is_subnormal(x):
    return x != 0.0 and abs(x) < 1.1754943508222875e-38


def diff_report(a, b):
    """Per channel: (identical, n_bit_diffs, n_value_diffs, max_abs_diff, frame_of_max, first_diff,
    classes) where classes counts differing samples of `a` (the reference) by kind."""
    out = []
    for c in range(len(a)):
        x, y = a[c], b[c]
        if x.tobytes() == y.tobytes():
            out.append((True, 0, 0, 0.0, -1, -1, {}))
            continue
        nbits = nval = 0
        maxd, at, first = 0.0, -1, -1
        classes = {"negative zero -> +0.0": 0, "subnormal -> 0": 0, "other": 0}
        for i in range(min(len(x), len(y))):
            if bits(x[i]) == bits(y[i]):
                continue
            nbits += 1
            if first < 0:
                first = i
            if x[i] == 0.0 and y[i] == 0.0:
                classes["negative zero -> +0.0"] += 1
            elif is_subnormal(x[i]) and y[i] == 0.0:
                classes["subnormal -> 0"] += 1
            else:
                classes["other"] += 1
            if x[i] != y[i]:
                nval += 1
                d = abs(x[i] - y[i]) if not (math.isnan(x[i]) or math.isnan(y[i])) else math.inf
                if d > maxd:
                    maxd, at = d, i
        out.append((False, nbits, nval, maxd, at, first, classes))
    return out


def print_report(title, ref, other, rep):
    print(title)
    for c, (same, nbits, nval, maxd, at, first, classes) in enumerate(rep):
        if same:
            print(f"  ch{c}: {len(ref[c])} frames bit-identical, max |diff| 0")
        else:
            kinds = ", ".join(f"{k}: {v}" for k, v in classes.items() if v)
            print(
                f"  ch{c}: {nbits} samples differ in their bits ({kinds}); {nval} differ in value, "
                f"max |diff| {maxd:.9g}" + (f" at frame {at}" if at >= 0 else "") + f"; first difference at frame {first} "
                f"({ref[c][first]!r} -> {other[c][first]!r})"
            )


def compare(inp, render, control, strict=False):
    """The verdict of one configuration. Passes when the render with Sluice Meter is bit-identical
    to the control render (the same session without the plugin) and, against the input, is
    bit-exact or differs only where the control differs too, in the two ways Ardour's own signal
    path alters float samples (negative zero written as +0.0, subnormals flushed to 0 under
    Ardour's default FTZ/DAZ denormal model). With strict=True it must equal the input bit for bit."""
    files = {"input": inp, "render": render, "control": control}
    data = {}
    for k, path in files.items():
        rate, chans = read_float_wav(path)
        data[k] = chans
        print(f"{k:8}: {path}: {len(chans[0])} frames x {len(chans)} ch, {rate} Hz, 32-bit float")
        data[k + "-rate"] = rate
    x, y, z = data["input"], data["render"], data["control"]
    problems = []
    for k in ("render", "control"):
        if data[k + "-rate"] != data["input-rate"]:
            problems.append(f"{k} rate {data[k + '-rate']} != input rate {data['input-rate']}")
        if len(data[k]) != len(x):
            problems.append(f"{k} has {len(data[k])} channels, the input {len(x)}")
        elif any(len(data[k][c]) != len(x[c]) for c in range(len(x))):
            problems.append(f"{k} has {len(data[k][0])} frames, the input {len(x[0])} (offset, tail or missing audio)")
    if problems:
        for p in problems:
            print("  " + p)
        print("RESULT: FAIL (shape)")
        return 1
    rc = diff_report(z, y)
    print_report("render (with Sluice Meter) vs control (same session, no plugin):", z, y, rc)
    ri = diff_report(x, y)
    print_report("render (with Sluice Meter) vs input:", x, y, ri)
    ci = diff_report(x, z)
    print_report("control (no plugin) vs input:", x, z, ci)
    plugin_exact = all(r[0] for r in rc)
    input_exact = all(r[0] for r in ri)
    ardour_only = all(r[6].get("other", 0) == 0 for r in ri)
    if not plugin_exact:
        print("RESULT: FAIL: the render with Sluice Meter differs from the control render (the plugin altered the audio)")
        return 1
    if input_exact:
        print("RESULT: PASS: bit-exact: render == input == control, bit for bit")
        return 0
    if strict:
        print("RESULT: FAIL (--strict): the render differs from the input (identically in the control render)")
        return 1
    if not ardour_only:
        print("RESULT: FAIL: render and control both differ from the input beyond Ardour's zero/subnormal handling")
        return 1
    n = sum(r[1] for r in ri)
    print(
        f"RESULT: PASS: render == control bit for bit; vs the input, {n} samples differ only in Ardour's own "
        "handling of negative zeros / subnormals (max |diff| "
        f"{max(r[3] for r in ri):.3g}), identically in the control render without the plugin"
    )
    return 0


# ---------------------------------------------------------------- recorded take (--take)


def read_take(path):
    """A Sluice take: (rate, channels as lists of floats, bext time reference or None, sample format)."""
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:4] not in (b"RIFF", b"RF64") or raw[8:12] != b"WAVE":
        die(f"{path}: not a WAV file")
    pos, chunks = 12, {}
    while pos + 8 <= len(raw):
        cid, size = raw[pos : pos + 4], struct.unpack("<I", raw[pos + 4 : pos + 8])[0]
        if cid == b"data" and size == 0xFFFFFFFF:
            size = len(raw) - pos - 8
        chunks[cid] = raw[pos + 8 : pos + 8 + size]
        pos += 8 + size + (size & 1)
    tag, nch, rate, _, _, bits_ = struct.unpack("<HHIIHH", chunks[b"fmt "][:16])
    if tag == WAVE_FORMAT_EXTENSIBLE:
        tag = struct.unpack("<H", chunks[b"fmt "][24:26])[0]
    data = chunks[b"data"]
    if tag == WAVE_FORMAT_IEEE_FLOAT and bits_ == 32:
        inter = array.array("f")
        inter.frombytes(data[: len(data) - len(data) % 4])
        samples = list(inter)
        fmt = "32-bit float"
    elif tag == 1 and bits_ == 24:
        samples = [int.from_bytes(data[i : i + 3], "little", signed=True) / 8388608.0 for i in range(0, len(data) - 2, 3)]
        fmt = "24-bit PCM"
    else:
        die(f"{path}: format tag {tag} with {bits_} bits is not a Sluice take format")
    tref = None
    if b"bext" in chunks and len(chunks[b"bext"]) >= 346:
        tref = struct.unpack("<Q", chunks[b"bext"][338:346])[0]
    return rate, [samples[c::nch] for c in range(nch)], tref, fmt


def take(inp, takes_dir):
    """Checks the take Sluice Meter recorded during the export: exactly one take, holding the
    input programme (within half an LSB of its format), placed on the timeline where its bext
    time reference says. Exit 0 only if all of that holds."""
    import glob
    import os

    files = sorted(glob.glob(os.path.join(takes_dir, "*.wav")))
    print(f"takes in {takes_dir}: {[os.path.basename(f) for f in files]}")
    if len(files) != 1:
        print(f"TAKE: FAIL: {len(files)} takes, expected 1")
        return 1
    _, x = read_float_wav(inp)
    rate, t, tref, fmt = read_take(files[0])
    print(f"take: {len(t[0])} frames x {len(t)} ch, {rate} Hz, {fmt}, bext time reference {tref}")
    if len(t) != len(x):
        print("TAKE: FAIL: channel count differs from the input")
        return 1
    lsb = 1.0 / 8388608.0 if fmt == "24-bit PCM" else 0.0
    # the first input sample that is not zero in the take's format, and the take's first non-zero
    first_in = next(i for i, v in enumerate(x[0]) if (round(v / lsb) if lsb else v) != 0)
    first_take = next((i for i, v in enumerate(t[0]) if v != 0.0), None)
    if first_take is None:
        print("TAKE: FAIL: the take is silent")
        return 1
    lag = first_take - first_in  # take frame k + lag holds input frame k
    top = 8388607.0 / 8388608.0 if fmt == "24-bit PCM" else math.inf
    worst, missing = 0.0, 0
    for c in range(len(x)):
        for k, v in enumerate(x[c]):
            j = k + lag
            if j < 0 or j >= len(t[c]):
                missing += 1
                continue
            want = min(max(v, -1.0), top)
            worst = max(worst, abs(t[c][j] - want))
    pre, post = lag, len(t[0]) - lag - len(x[0])
    print(
        f"  the input's frame k is the take's frame k{lag:+d}: the take has {max(pre, 0)} frames before the input's "
        f"first frame and {post} after its last; input frames missing from the take: {missing}"
    )
    print(f"  max |take - input| after that alignment: {worst / lsb if lsb else worst:.3g} {'LSB (24-bit)' if lsb else ''}")
    ok_content = missing == 0 and worst <= (0.5 * lsb if lsb else 0.0) + 1e-12
    # the take's frame 0 is at timeline -lag (the input's frame 0 is at timeline 0)
    aligned = tref is not None and tref == -lag
    print(
        f"  timeline position of the take's frame 0: {-lag}; bext time reference: {tref} -> "
        + ("aligned" if aligned else f"MISALIGNED by {(tref or 0) + lag} frames")
    )
    if ok_content and aligned:
        print("TAKE: PASS: the take holds the programme and lines up with the timeline")
        return 0
    print(
        "TAKE: FAIL: "
        + ("content differs from the input; " if not ok_content else "content matches the input; ")
        + ("not aligned with the timeline" if not aligned else "aligned")
    )
    return 1


def main(argv):
    if len(argv) < 2:
        die(__doc__)
    cmd, args = argv[1], argv[2:]
    if cmd == "gen" and len(args) == 3:
        gen(args[0], float(args[1]), int(args[2]))
    elif cmd == "split" and len(args) == 3:
        split(*args)
    elif cmd == "inject" and len(args) == 3:
        inject(*args)
    elif cmd == "take" and len(args) == 2:
        return take(*args)
    elif cmd == "chunk" and len(args) == 1:
        chunk(args[0])
    elif cmd == "compare" and len(args) in (3, 4) and args[3:] in ([], ["--strict"]):
        return compare(args[0], args[1], args[2], strict=args[3:] == ["--strict"])
    else:
        die(__doc__)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
