#!/usr/bin/env python3
"""The tempo bench's truths, for host/benches/tempo-material.sh (standard library only).

    tempo_truth.py truth FILE               # BPM of a MIDI file, Hydrogen song or LMMS project
    tempo_truth.py freedoom OUT WAD...      # Freedoom's MIDI pieces with a steady beat, into OUT
    tempo_truth.py steady OUT MIDI...       # the MIDI files with a steady beat, copied into OUT

A MIDI file's truth is the tempo held longest, counted in the beat of the metre held longest:
the quarter note, or the dotted note of a compound metre (6/8, 9/8, 12/8: the dotted quarter).
Freedoom's pieces (and those of the later held-out sets) are kept when the score has a steady
beat and a true tempo: at least 30 s, drum notes (channel 10) in half of
the 4-beat bars, one tempo held for 90 % of the time, and the drum notes on that tempo's grid:
at least a third of them within 1/48 beat of a sixteenth note (by chance a sixth are). Pieces
converted from Doom's MUS format fail the last: their tempo is the MUS clock's (140 ticks a
second, written as 95 BPM at 89 ticks a beat), not the music's, and their notes lie on no grid
of it.
"""
import hashlib
import os
import re
import struct
import sys
import zlib


def vlq(b, i):
    v = 0
    while True:
        c = b[i]
        i += 1
        v = (v << 7) | (c & 0x7F)
        if not c & 0x80:
            return v, i


def read_midi(data, metres=None):
    """Ticks per beat, the tempo events (tick, µs a beat) in order, the last tick, and the ticks
    of the drum notes; the time signatures (tick, numerator, denominator) go into METRES."""
    _, tracks, division = struct.unpack(">HHH", data[8:14])
    i, tempos, end, drums = 14, [], 0, []
    for _ in range(tracks):
        length = struct.unpack(">I", data[i + 4:i + 8])[0]
        j, stop, t, status = i + 8, i + 8 + length, 0, 0
        while j < stop:
            d, j = vlq(data, j)
            t += d
            b = data[j]
            if b == 0xFF:
                n, k = vlq(data, j + 2)
                if data[j + 1] == 0x51:
                    tempos.append((t, int.from_bytes(data[k:k + 3], "big")))
                elif data[j + 1] == 0x58 and metres is not None and n >= 2:
                    metres.append((t, data[k], 2 ** data[k + 1]))
                j = k + n
            elif b in (0xF0, 0xF7):
                n, k = vlq(data, j + 1)
                j = k + n
            else:
                if b & 0x80:
                    status = b
                    j += 1
                if status == 0x99 and data[j + 1] > 0:
                    drums.append(t)
                j += 1 if (status & 0xF0) in (0xC0, 0xD0) else 2
        end = max(end, t)
        i = stop
    return division, sorted(tempos) or [(0, 500000)], end, drums


def held(division, tempos, end):
    """Seconds each tempo (BPM, to 0.001) is held."""
    out = {}
    for k, (t, us) in enumerate(tempos):
        t2 = tempos[k + 1][0] if k + 1 < len(tempos) else end
        bpm = round(60e6 / us, 3)
        out[bpm] = out.get(bpm, 0.0) + (t2 - t) / division * us / 1e6
    return out


def truth(path):
    data = open(path, "rb").read()
    if path.endswith(".h2song"):
        return float(re.search(rb"<bpm>([0-9.]+)</bpm>", data).group(1))
    if path.endswith((".mmpz", ".mmp")):
        xml = zlib.decompress(data[4:]) if path.endswith(".mmpz") else data
        return float(re.search(rb'<head[^>]*\sbpm="([0-9.]+)"', xml).group(1))
    metres = []
    division, tempos, end, _ = read_midi(data, metres)
    bpm = max(held(division, tempos, end).items(), key=lambda x: x[1])[0]
    return round(bpm * beat(metres, end), 3)


def beat(metres, end):
    """The beat in quarter notes of the metre held longest: the dotted note in a compound metre
    (6, 9 or 12 eighths or sixteenths to the bar: the dotted quarter or the dotted eighth), else
    the quarter note (a MIDI file's tempo is always given in quarters)."""
    ticks = {}
    metres = sorted(metres)
    for k, (t, num, den) in enumerate(metres):
        t2 = metres[k + 1][0] if k + 1 < len(metres) else end
        ticks[(num, den)] = ticks.get((num, den), 0) + max(0, t2 - t)
    if not ticks:
        return 1.0
    num, den = max(ticks.items(), key=lambda x: x[1])[0]
    return {8: 2 / 3, 16: 4 / 3}.get(den, 1.0) if num in (6, 9, 12) else 1.0


def steady(data):
    division, tempos, end, drums = read_midi(data)
    secs = held(division, tempos, end)
    total = sum(secs.values())
    bars = end // (4 * division) + 1
    q, tol = division / 4, max(1, division / 48)
    on_grid = sum(min(t % q, q - t % q) <= tol for t in drums) / max(1, len(drums))
    return (total >= 30 and len({t // (4 * division) for t in drums}) >= bars / 2
            and max(secs.values()) >= 0.9 * total and on_grid >= 1 / 3)


def freedoom(out, wads):
    """The MIDI lumps (D_*) of the IWADs, each distinct piece once, kept when steady."""
    seen = set()
    for wad in wads:
        d = open(wad, "rb").read()
        _, n, off = struct.unpack("<4sii", d[:12])
        for e in range(n):
            pos, size, name = struct.unpack("<ii8s", d[off + 16 * e:off + 16 * e + 16])
            name = name.rstrip(b"\0").decode()
            lump = d[pos:pos + size]
            h = hashlib.sha1(lump).digest()
            if not name.startswith("D_") or lump[:4] != b"MThd" or h in seen:
                continue
            seen.add(h)
            if steady(lump):
                open(os.path.join(out, name.lower() + ".mid"), "wb").write(lump)


def steady_files(out, paths):
    """The MIDI files whose score has a steady beat (as Freedoom's are chosen), copied to OUT."""
    for path in paths:
        data = open(path, "rb").read()
        if data[:4] == b"MThd" and steady(data):
            open(os.path.join(out, os.path.basename(path)), "wb").write(data)


if __name__ == "__main__":
    if sys.argv[1] == "truth":
        print(truth(sys.argv[2]))
    elif sys.argv[1] == "freedoom":
        freedoom(sys.argv[2], sys.argv[3:])
    elif sys.argv[1] == "steady":
        steady_files(sys.argv[2], sys.argv[3:])
    else:
        sys.exit(f"{sys.argv[1]}: unknown command (truth, freedoom, steady)")
