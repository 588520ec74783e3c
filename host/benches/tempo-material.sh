#!/usr/bin/env bash
# The tempo bench's material (host/benches/tempo.py), from freely licensed Debian packages,
# into target/tempo-material/ (nothing of it goes into the repository):
#
# - songs/: the 8 songs of Frets on Fire's song packs (fretsonfire-songs-muldjord,
#   CC BY-SA 3.0; fretsonfire-songs-sectoid, GPL), band recordings of metal and rock at
#   95-190 BPM: each song's stems (song.ogg, guitar.ogg, rhythm.ogg where present) mixed as the
#   game plays them; the truth is the tempo of the song's chart (notes.mid), which the game
#   scrolls its notes by.
# - renders/: LMMS's demo and "shorties" projects (lmms-common, each project's own licence,
#   see /usr/share/doc/lmms-common/copyright), rendered by LMMS itself: electronic, house,
#   reggae, reggaeton, chiptune, rock...; the truth is the project's tempo (its `bpm`).
# - heldout/: Hydrogen's demo songs (hydrogen-data, GPL-2+), drum grooves (rock, jazz, a
#   Bo Diddley beat, an 808 pattern) rendered by its h2cli; the truth is the song's `bpm`. The
#   tempo estimator was never tuned on these.
# - midi/: Planet Blupi's game music (planetblupi-music-midi, GPL-3+), MIDI files rendered by
#   FluidSynth with the FluidR3 GM sound font (fluid-soundfont-gm, MIT); the truth is the
#   MIDI file's tempo (the one held longest). Never tuned on either.
# - openmsx/: OpenTTD's OpenMSX music set (openttd-openmsx, GPL-2), 31 MIDI pieces (ragtime,
#   blues, boogie, swing, march, pop) rendered the same way. Added as held-out material after
#   the estimator's last change and never tuned on.
# - freedoom/: Freedoom's music (freedoom, BSD-style licence, see /usr/share/doc/freedoom/
#   copyright), the MIDI lumps of its two IWADs (66 pieces: metal, rock, electronic, ambient)
#   rendered the same way. Only pieces whose score has a steady beat and a true tempo are kept:
#   at least 30 s long, drum notes in at least half of the bars, one tempo held for at least
#   90 % of the time, and the drum notes on that tempo's sixteenth-note grid (which the pieces
#   converted from Doom's MUS format, whose tempo is a clock's, fail): 49 of 66. Added as
#   further held-out material; never used for tuning.
#
# Each file's truth goes into truth.tsv beside it: file, BPM, where it came from. librosa (the
# bench's peer) is installed into target/bench-peers.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=target/tempo-material
need=()
for p in fretsonfire-songs-muldjord fretsonfire-songs-sectoid lmms hydrogen planetblupi-music-midi openttd-openmsx \
    freedoom fluidsynth fluid-soundfont-gm ffmpeg python3; do
    dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
    apt-get update -q && apt-get install -y -q "${need[@]}"
fi
mkdir -p "$OUT/songs" "$OUT/renders" "$OUT/heldout" "$OUT/midi" "$OUT/openmsx" "$OUT/freedoom"

# The predominant tempo of a MIDI file (the one held longest) or of an LMMS project.
truth() {
    python3 - "$1" <<'EOF'
import re, struct, sys, zlib
path = sys.argv[1]
data = open(path, "rb").read()
if path.endswith(".h2song"):
    print(float(re.search(rb"<bpm>([0-9.]+)</bpm>", data).group(1)))
    sys.exit()
if path.endswith((".mmpz", ".mmp")):
    xml = zlib.decompress(data[4:]) if path.endswith(".mmpz") else data
    print(float(re.search(rb'<head[^>]*\sbpm="([0-9.]+)"', xml).group(1)))
    sys.exit()
def vlq(b, i):
    v = 0
    while True:
        c = b[i]; i += 1; v = (v << 7) | (c & 0x7F)
        if not c & 0x80:
            return v, i
fmt, tracks, division = struct.unpack(">HHH", data[8:14])
i, events, end = 14, [], 0
for _ in range(tracks):
    length = struct.unpack(">I", data[i + 4:i + 8])[0]
    j, stop, t, status = i + 8, i + 8 + length, 0, None
    while j < stop:
        d, j = vlq(data, j); t += d
        b = data[j]
        if b == 0xFF:
            kind = data[j + 1]; n, k = vlq(data, j + 2)
            if kind == 0x51:
                events.append((t, int.from_bytes(data[k:k + 3], "big")))
            j = k + n
        elif b in (0xF0, 0xF7):
            n, k = vlq(data, j + 1); j = k + n
        else:
            if b & 0x80:
                status = b; j += 1
            j += 1 if (status & 0xF0) in (0xC0, 0xD0) else 2
    end = max(end, t); i = stop
events = sorted(events) or [(0, 500000)]
held = {}
for k, (t, us) in enumerate(events):
    t2 = events[k + 1][0] if k + 1 < len(events) else end
    bpm = round(60e6 / us, 3)
    held[bpm] = held.get(bpm, 0) + (t2 - t) / division * us / 1e6
print(max(held.items(), key=lambda x: x[1])[0])
EOF
}

: >"$OUT/songs/truth.tsv"
for d in /usr/share/games/fretsonfire/data/songs/*/*/; do
    name=$(basename "$d" | tr ' ' '_')
    inputs=()
    for stem in song.ogg guitar.ogg rhythm.ogg; do
        [ -f "$d$stem" ] && inputs+=(-i "$d$stem")
    done
    n=$((${#inputs[@]} / 2))
    [ -f "$OUT/songs/$name.flac" ] ||
        ffmpeg -v error -y "${inputs[@]}" \
            -filter_complex "amix=inputs=$n:normalize=0:duration=longest" -c:a flac "$OUT/songs/$name.flac"
    printf '%s\t%s\t%s\n' "$name.flac" "$(truth "${d}notes.mid")" "$d" >>"$OUT/songs/truth.tsv"
done

: >"$OUT/renders/truth.tsv"
find /usr/share/lmms/projects/demos /usr/share/lmms/projects/shorties -name '*.mmp*' | sort |
    while read -r p; do
        name=$(basename "$p" | sed 's/\.mmpz\?$//; s/[^A-Za-z0-9_-]/_/g')
        [ -f "$OUT/renders/$name.wav" ] ||
            QT_QPA_PLATFORM=offscreen timeout 900 lmms --allowroot render "$p" \
                -o "$OUT/renders/$name.wav" -f wav >/dev/null 2>&1 </dev/null || {
                echo "$p: LMMS did not render it" >&2
                rm -f "$OUT/renders/$name.wav" # a crash leaves a partial file: the next run renders it again
                continue
            }
        printf '%s\t%s\t%s\n' "$name.wav" "$(truth "$p")" "$p" >>"$OUT/renders/truth.tsv"
    done
: >"$OUT/heldout/truth.tsv"
for p in /usr/share/hydrogen/data/demo_songs/*.h2song; do
    name=$(basename "$p" .h2song)
    [ -f "$OUT/heldout/$name.wav" ] ||
        timeout 600 h2cli -s "$p" -o "$OUT/heldout/$name.wav" >/dev/null 2>&1 </dev/null || {
            echo "$p: h2cli did not render it" >&2
            rm -f "$OUT/heldout/$name.wav" # a crash leaves a partial file: the next run renders it again
            continue
        }
    printf '%s\t%s\t%s\n' "$name.wav" "$(truth "$p")" "$p" >>"$OUT/heldout/truth.tsv"
done
# MIDI files rendered by FluidSynth: set, then the files.
render_midi() {
    local set=$1
    shift
    : >"$OUT/$set/truth.tsv"
    for m in "$@"; do
        name=$(basename "$m" .mid)
        [ -f "$OUT/$set/$name.wav" ] ||
            timeout 600 fluidsynth -ni -q -F "$OUT/$set/$name.wav" -r 44100 \
                /usr/share/sounds/sf2/FluidR3_GM.sf2 "$m" >/dev/null 2>&1 </dev/null || {
                echo "$m: FluidSynth did not render it" >&2
                rm -f "$OUT/$set/$name.wav" # a crash leaves a partial file: the next run renders it again
                continue
            }
        printf '%s\t%s\t%s\n' "$name.wav" "$(truth "$m")" "$m" >>"$OUT/$set/truth.tsv"
    done
}
render_midi midi /usr/share/planetblupi/music/*.mid
render_midi openmsx /usr/share/games/openttd/baseset/openmsx/*.mid

# Freedoom's music: the MIDI lumps (D_*) of both IWADs, each distinct piece once, kept when its
# score has a steady beat (see above).
rm -rf "$OUT/freedoom-midi" && mkdir -p "$OUT/freedoom-midi"
python3 - "$OUT/freedoom-midi" /usr/share/games/doom/freedoom1.wad /usr/share/games/doom/freedoom2.wad <<'EOF'
import hashlib, os, struct, sys
out, seen = sys.argv[1], set()
def vlq(b, i):
    v = 0
    while True:
        c = b[i]; i += 1; v = (v << 7) | (c & 0x7F)
        if not c & 0x80:
            return v, i
def steady(data):
    """At least 30 s, drum notes (channel 10) in half of the 4-beat bars, one tempo held for
    90 % of the time, and the drum notes on that tempo's grid: at least a third of them within
    1/48 beat of a sixteenth note (by chance a sixth are). Pieces converted from Doom's MUS
    format fail the last: their tempo is the MUS clock's (140 ticks a second, written as 95 BPM
    at 89 ticks a beat), not the music's, and their notes lie on no grid of it."""
    _, tracks, division = struct.unpack(">HHH", data[8:14])
    i, tempos, end, drums, ticks = 14, [], 0, set(), []
    for _ in range(tracks):
        length = struct.unpack(">I", data[i + 4:i + 8])[0]
        j, stop, t, status = i + 8, i + 8 + length, 0, 0
        while j < stop:
            d, j = vlq(data, j); t += d
            b = data[j]
            if b == 0xFF:
                n, k = vlq(data, j + 2)
                if data[j + 1] == 0x51:
                    tempos.append((t, int.from_bytes(data[k:k + 3], "big")))
                j = k + n
            elif b in (0xF0, 0xF7):
                n, k = vlq(data, j + 1); j = k + n
            else:
                if b & 0x80:
                    status = b; j += 1
                if status == 0x99 and data[j + 1] > 0:
                    drums.add(t // (4 * division))
                    ticks.append(t)
                j += 1 if (status & 0xF0) in (0xC0, 0xD0) else 2
        end = max(end, t); i = stop
    tempos = sorted(tempos) or [(0, 500000)]
    held, secs = {}, 0.0
    for k, (t, us) in enumerate(tempos):
        s = ((tempos[k + 1][0] if k + 1 < len(tempos) else end) - t) / division * us / 1e6
        held[us] = held.get(us, 0.0) + s
        secs += s
    bars = end // (4 * division) + 1
    q, tol = division / 4, max(1, division / 48)
    on_grid = sum(min(t % q, q - t % q) <= tol for t in ticks) / max(1, len(ticks))
    return (secs >= 30 and len(drums) >= bars / 2 and max(held.values()) >= 0.9 * secs
            and on_grid >= 1 / 3)
for wad in sys.argv[2:]:
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
EOF
render_midi freedoom "$OUT"/freedoom-midi/*.mid
wc -l "$OUT"/*/truth.tsv

# The peer: librosa, in the benches' virtual environment (nothing system-wide).
[ -x target/bench-peers/bin/python ] || python3 -m venv target/bench-peers
target/bench-peers/bin/pip install -q 'librosa==0.11.0'
