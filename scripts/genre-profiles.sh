#!/usr/bin/env bash
# Makes the built-in genre profiles in engine/profiles/ (see engine/src/genres.rs) from freely
# licensed recordings in Debian packages, measured exactly as `sluice ref import` measures
# references, and names every recording with its package, version, author and licence.
#
#   scripts/genre-profiles.sh [SLUICE]     (SLUICE: the binary; default target/release/sluice)
#
# Needs root for apt-get (the packages are installed when missing), python3 for the JSON, and
# unzip (Nexuiz keeps its music in a zip archive). No audio is copied into the repository.
set -euo pipefail
cd "$(dirname "$0")/.."
SLUICE=${1:-target/release/sluice}
OUT=engine/profiles
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

need=()
for p in wesnoth-1.16-music nexuiz-music singularity-music unzip; do
    dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
    apt-get update -q && apt-get install -y -q "${need[@]}"
fi

# genre | package | author (where a recording's tags name none) | licence (from /usr/share/doc/PACKAGE/copyright) | description
GENRES=(
    "orchestral|wesnoth-1.16-music|the Battle for Wesnoth project's composers|GPL-2+|The Battle for Wesnoth soundtrack: orchestral film-style music (pieces of a minute or more; the short stingers left out)."
    "electronic|nexuiz-music|Alientrap (Lee Vermeulen) and the Nexuiz contributors|GPL-2+|The Nexuiz soundtrack: electronic music (techno, industrial, breakbeat)."
    "ambient|singularity-music|Max McCracken|CC-BY-SA-3.0|Max McCracken's music for Endgame: Singularity: ambient electronic music."
)

# The recordings of one package, as "path-to-read<TAB>path-to-name" lines.
recordings() {
    case "$1" in
        wesnoth-1.16-music)
            dpkg -L "$1" | grep '\.ogg$' | while read -r f; do printf '%s\t%s\n' "$f" "$f"; done ;;
        nexuiz-music)
            local pk3=/usr/share/games/nexuiz/data/music.pk3
            mkdir -p "$WORK/nexuiz" && unzip -o -q "$pk3" -d "$WORK/nexuiz"
            find "$WORK/nexuiz" -name '*.ogg' | sort | while read -r f; do
                printf '%s\t%s\n' "$f" "$pk3!${f#"$WORK/nexuiz/"}"
            done ;;
        singularity-music)
            dpkg -L "$1" | grep '\.ogg$' | while read -r f; do printf '%s\t%s\n' "$f" "$f"; done ;;
    esac
}

ROOT="$WORK/root"
mkdir -p "$ROOT" "$OUT"
for entry in "${GENRES[@]}"; do
    IFS='|' read -r genre package author licence description <<<"$entry"
    version=$(dpkg-query -W -f='${Version}' "$package")
    dir="$WORK/$genre"
    mkdir -p "$dir"
    : >"$WORK/$genre.sources"
    n=0
    while IFS=$'\t' read -r file name; do
        # Pieces of a minute or more: the stingers (victory, defeat...) are not the genre's
        # programme material.
        seconds=$("$SLUICE" info --json "$file" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["duration_seconds"] or 0)')
        if python3 -c "import sys; sys.exit(0 if float('$seconds') >= 60 else 1)"; then
            n=$((n + 1))
            cp "$file" "$dir/$(printf '%03d' "$n")-$(basename "$file")"
            printf '%s\t%s\n' "$(printf '%03d' "$n")-$(basename "$file")" "$name" >>"$WORK/$genre.sources"
        fi
    done < <(recordings "$package")
    echo "$genre: $n recordings from $package $version"
    "$SLUICE" ref import "$dir" --genre "$genre" --root "$ROOT" --json >"$WORK/$genre.import.json"
    "$SLUICE" ref profile export --genre "$genre" --root "$ROOT" --out "$WORK/$genre.profile.json"
    GENRE="$genre" PACKAGE="$package" VERSION="$version" AUTHOR="$author" LICENCE="$licence" \
        DESCRIPTION="$description" WORKDIR="$WORK" OUT="$OUT" python3 - <<'EOF'
import json, os
e = os.environ
genre, work = e["GENRE"], e["WORKDIR"]
names = dict(l.rstrip("\n").split("\t") for l in open(f"{work}/{genre}.sources"))
imported = json.load(open(f"{work}/{genre}.import.json"))
added = [a for a in imported if a.get("outcome") == "added"]
refused = [a for a in imported if a.get("outcome") != "added"]
for a in refused:
    print(f"  not used: {a}")
sources = sorted(
    (
        {
            "package": e["PACKAGE"],
            "version": e["VERSION"],
            "file": names[os.path.basename(a["source"])],
            "title": a["name"],
            "author": a.get("artist") or e["AUTHOR"],
            "licence": e["LICENCE"],
        }
        for a in added
    ),
    key=lambda s: s["file"],
)
profile = json.load(open(f"{work}/{genre}.profile.json"))
out = {
    "genre": genre,
    "description": e["DESCRIPTION"],
    "made_by": "scripts/genre-profiles.sh",
    "sources": sources,
    "profile": profile,
}
with open(f"{e['OUT']}/{genre}.json", "w") as f:
    json.dump(out, f, indent=1)
    f.write("\n")
print(f"  {e['OUT']}/{genre}.json: {len(sources)} recordings, {profile['integrated_lufs']['mean']:.1f} LUFS")
EOF
done
