#!/usr/bin/env python3
"""`sluice tag` beside loudgain and r128gain in the same run, on the same library.

    host/benches/tempo-material.sh          # real recordings and renders (the sources)
    host/benches/install-peers.sh           # loudgain (Debian), r128gain (PyPI)
    target/bench-peers/bin/python host/benches/tag.py [SLUICE] [--files N] [--seconds S] [--rounds R]

The library: N files (default 200) of S seconds (default 60) cut from the tempo bench's real
material (band recordings, LMMS, Hydrogen and MIDI renders), in five formats in turn (FLAC,
MP3, Ogg Vorbis, M4A/AAC, WAV; made by ffmpeg), in folders of 20 (an album each), into
target/tag-bench/lib. Each round copies it afresh for each tool and tags it with album gain
by folder:

- sluice: `sluice tag -q LIB` (one file per core at once);
- loudgain: `loudgain -q -a -s i` on each folder in turn (it is single-threaded, as its users
  run it: one album per invocation);
- r128gain: `r128gain -r -a LIB` (its threads: one per core; ffmpeg decodes).

It prints wall and CPU time (the children's user + system) and files per second of each, the
ratios to Sluice, and the gains' agreement with loudgain's (largest track and album gain
difference). The exit status is 0 when Sluice's files per second are at least 3x loudgain's
in every round, else 1.
"""
import os
import resource
import shutil
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "target", "tag-bench")
MATERIAL = os.path.join(ROOT, "target", "tempo-material")
FORMATS = [
    ("flac", ["-c:a", "flac"]),
    ("mp3", ["-c:a", "libmp3lame", "-b:a", "192k"]),
    ("ogg", ["-c:a", "libvorbis", "-q:a", "5"]),
    ("m4a", ["-c:a", "aac", "-b:a", "192k"]),
    ("wav", ["-c:a", "pcm_s16le"]),
]


def args():
    a = sys.argv[1:]
    opts = {"--files": 200, "--seconds": 60, "--rounds": 2}
    sluice = os.path.join(ROOT, "target", "release", "sluice")
    i = 0
    while i < len(a):
        if a[i] in opts:
            opts[a[i]] = int(a[i + 1])
            i += 2
        else:
            sluice = a[i]
            i += 1
    return sluice, opts["--files"], opts["--seconds"], opts["--rounds"]


def sources():
    found = []
    for d in ("songs", "renders", "heldout", "midi", "openmsx"):
        p = os.path.join(MATERIAL, d)
        if os.path.isdir(p):
            found += sorted(os.path.join(p, f) for f in os.listdir(p)
                            if f.endswith((".flac", ".wav")))
    if not found:
        sys.exit(f"{MATERIAL}: no material (run host/benches/tempo-material.sh)")
    return found


def library(files, seconds):
    lib = os.path.join(OUT, "lib")
    stamp = os.path.join(OUT, f"made-{files}-{seconds}")
    if os.path.exists(stamp):
        return lib
    shutil.rmtree(OUT, ignore_errors=True)
    src = sources()
    for n in range(files):
        ext, codec = FORMATS[n % len(FORMATS)]
        folder = os.path.join(lib, f"album {n // 20:02}")
        os.makedirs(folder, exist_ok=True)
        s = src[n % len(src)]
        # Later copies of a source start later in it (looped), so no two files are the same.
        start = (n // len(src)) * seconds
        cut = os.path.join(OUT, "cut.wav")
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-stream_loop", "-1", "-i", s,
                        "-ss", str(start), "-t", str(seconds), "-ar", "44100", "-ac", "2",
                        "-c:a", "pcm_s16le", cut], check=True)
        name = f"{n:03} {os.path.basename(s).rsplit('.', 1)[0]}.{ext}"
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", cut, *codec,
                        os.path.join(folder, name)], check=True)
    os.remove(os.path.join(OUT, "cut.wav"))
    open(stamp, "w").close()
    return lib


def cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def timed(cmds):
    t0, c0 = time.monotonic(), cpu()
    for c in cmds:
        subprocess.run(c, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.monotonic() - t0, cpu() - c0


def gains(lib):
    import mutagen
    out = {}
    for d, _, fs in os.walk(lib):
        for f in fs:
            p = os.path.join(d, f)
            m = mutagen.File(p)
            if m is None or m.tags is None:
                continue
            tags = {}
            items = m.tags.items() if hasattr(m.tags, "items") else m.tags
            for k, v in items:
                k = k.replace("TXXX:", "").replace("----:com.apple.iTunes:", "").upper()
                v = v[0] if isinstance(v, list) else v
                v = v.text[0] if hasattr(v, "text") else v
                v = v.decode() if isinstance(v, bytes) else str(v)
                tags[k] = v
            out[os.path.relpath(p, lib)] = tags
    return out


def main():
    sluice, files, seconds, rounds = args()
    lib = library(files, seconds)
    n = sum(len(fs) for _, _, fs in os.walk(lib))
    folders = sorted(os.path.join(lib, d) for d in os.listdir(lib))
    print(f"library: {n} files of {seconds} s in {len(folders)} folders "
          f"(flac, mp3, ogg, m4a, wav), {os.cpu_count()} cores")
    tools = {
        "sluice": lambda l: [[sluice, "tag", "-q", l]],
        "loudgain": lambda l: [["loudgain", "-q", "-a", "-s", "i",
                                *sorted(os.path.join(l, d, f) for f in os.listdir(os.path.join(l, d)))]
                               for d in sorted(os.listdir(l))],
        "r128gain": lambda l: [[os.path.join(ROOT, "target", "bench-peers", "bin", "r128gain"),
                                "-r", "-a", "-v", "warning", l]],
    }
    ok = True
    worst = None
    for r in range(rounds):
        times = {}
        for name, cmd in tools.items():
            copy = os.path.join(OUT, f"lib-{name}")
            shutil.rmtree(copy, ignore_errors=True)
            shutil.copytree(lib, copy)
            times[name] = timed(cmd(copy))
        print(f"\nround {r + 1}")
        for name, (wall, c) in times.items():
            ratio = times[name][0] / times["sluice"][0]
            print(f"  {name:9} {wall:7.1f} s wall {c:7.1f} s CPU  {n / wall:6.1f} files/s"
                  f"  ({ratio:.2f}x Sluice's wall time)")
        speed = times["loudgain"][0] / times["sluice"][0]
        worst = speed if worst is None else min(worst, speed)
        ok &= speed >= 3.0
    ours = gains(os.path.join(OUT, "lib-sluice"))
    theirs = gains(os.path.join(OUT, "lib-loudgain"))
    diffs = {"REPLAYGAIN_TRACK_GAIN": 0.0, "REPLAYGAIN_ALBUM_GAIN": 0.0}
    compared = 0
    for f, t in theirs.items():
        o = ours.get(f, {})
        for k in diffs:
            if k in t and k in o:
                d = abs(float(o[k].split()[0]) - float(t[k].split()[0]))
                diffs[k] = max(diffs[k], d)
        compared += 1
    print(f"\ngains against loudgain's on {compared} files: largest track difference "
          f"{diffs['REPLAYGAIN_TRACK_GAIN']:.2f} dB, album {diffs['REPLAYGAIN_ALBUM_GAIN']:.2f} dB")
    print(f"Sluice's files per second, worst round: {worst:.2f}x loudgain's (target 3x): "
          f"{'met' if ok else 'NOT met'}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
