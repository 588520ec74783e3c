//! `sluice tag` as a user runs it on a library: ReplayGain 2.0 fields read back by mutagen and
//! ffprobe and compared with loudgain's on the same files, the audio untouched (decoded
//! sample for sample, and its bytes), other tags and cover art kept, dry runs, skipping,
//! removal, and a run killed with SIGKILL halfway through 200 files.
//!
//! ffmpeg makes the material; mutagen (python3), ffprobe and loudgain read and compare. They are
//! installed by `.ci/run` (`SLUICE_REQUIRE_TOOLS=1` makes a missing one fail the test).

mod common;

use common::{sluice, tool, write_wav};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// `seconds` of the core's programme material from `seed`, at `gain_db`, in `path` made by
/// ffmpeg from a WAV (the format from the extension), with title, artist and album tags.
fn make(ffmpeg: &Path, path: &Path, seconds: f64, seed: u64, gain_db: f32, album: &str) {
    let frames = (44_100.0 * seconds) as usize;
    let g = 10f32.powf(gain_db / 20.0);
    let planes: Vec<Vec<f32>> = sluice_core::signal::programme(44_100, 2, frames, seed)
        .into_iter()
        .map(|p| p.into_iter().map(|x| x * g).collect())
        .collect();
    let wav = path.with_extension("src.wav");
    write_wav(&wav, &planes, 44_100, 16);
    let codec: &[&str] = match path.extension().and_then(|x| x.to_str()) {
        Some("flac") => &["-c:a", "flac"],
        Some("mp3") => &["-c:a", "libmp3lame", "-b:a", "192k", "-id3v2_version", "3"],
        Some("ogg") => &["-c:a", "libvorbis", "-q:a", "5"],
        Some("m4a") => &["-c:a", "aac", "-b:a", "192k"],
        Some("opus") => &["-c:a", "libopus", "-b:a", "128k"],
        _ => &["-c:a", "pcm_s16le"],
    };
    let name = path.file_stem().unwrap().to_string_lossy().into_owned();
    let st = Command::new(ffmpeg)
        .args(["-v", "error", "-y", "-i"])
        .arg(&wav)
        .args(codec)
        .args(["-metadata", &format!("title={name}")])
        .args(["-metadata", "artist=Test Artist"])
        .args(["-metadata", &format!("album={album}")])
        .arg(path)
        .status()
        .unwrap();
    assert!(st.success(), "ffmpeg could not make {}", path.display());
    std::fs::remove_file(&wav).unwrap();
}

/// Every tag of each file as mutagen reads it, keys normalised (`TXXX:`, the iTunes freeform
/// prefix dropped, upper case); `None` without python3 and mutagen.
fn mutagen(files: &[PathBuf]) -> Option<Vec<BTreeMap<String, String>>> {
    let script = r#"
import json, sys, mutagen
out = []
for p in sys.argv[1:]:
    f = mutagen.File(p)
    tags = {}
    if f is not None and f.tags is not None:
        items = f.tags.items() if hasattr(f.tags, "items") else f.tags
        for k, v in items:
            key = k.split(":", 1)[1] if k.startswith("TXXX:") else k
            key = key.replace("----:com.apple.iTunes:", "").upper()
            if isinstance(v, list):
                v = v[0]
            if hasattr(v, "text"):
                v = v.text[0] if v.text else ""
            if isinstance(v, bytes):
                v = v.decode("utf-8", "replace")
            tags[key] = str(v)
        if hasattr(f.tags, "version"):
            tags["@ID3"] = ".".join(map(str, f.tags.version[:2]))
        if hasattr(f.tags, "getall"):
            tags["@APIC"] = str(len(f.tags.getall("APIC")))
    out.append(tags)
print(json.dumps(out))
"#;
    let python = tool("python3")?;
    let ok = Command::new(&python)
        .args(["-c", "import mutagen"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var("SLUICE_REQUIRE_TOOLS").as_deref() != Ok("1"),
            "mutagen (python3) is required but cannot be imported"
        );
        eprintln!("SKIPPED: mutagen not importable");
        return None;
    }
    let out = Command::new(python)
        .args(["-c", script])
        .args(files)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(serde_json::from_slice(&out.stdout).unwrap())
}

/// "11.85 dB" → 11.85.
fn db(v: &str) -> f64 {
    v.trim_end_matches(" dB").trim().parse().unwrap()
}

/// Every sample of a file as our decoder gives it.
fn decoded(path: &Path) -> Vec<Vec<f32>> {
    let mut d = sluice_core::Decoder::open(path).unwrap_or_else(|e| panic!("{e}"));
    let mut out: Vec<Vec<f32>> = vec![Vec::new(); d.info().channels as usize];
    while let Some(b) = d.next_block().unwrap_or_else(|e| panic!("{e}")) {
        for (o, p) in out.iter_mut().zip(b.planes()) {
            o.extend_from_slice(p);
        }
    }
    out
}

/// The bytes of a file that carry its audio, whatever its tags: FLAC's frames, MP3's frames
/// (after the ID3v2 tag), the Ogg packets after the three header packets, M4A's `mdat`, WAV's
/// `data`.
fn payload(path: &Path) -> Vec<u8> {
    let b = std::fs::read(path).unwrap();
    match path.extension().and_then(|x| x.to_str()).unwrap() {
        "flac" => {
            let mut i = 4;
            loop {
                let last = b[i] & 0x80 != 0;
                let len = u32::from_be_bytes([0, b[i + 1], b[i + 2], b[i + 3]]) as usize;
                i += 4 + len;
                if last {
                    return b[i..].to_vec();
                }
            }
        }
        "mp3" => {
            let mut i = 0;
            if &b[..3] == b"ID3" {
                let size = b[6..10]
                    .iter()
                    .fold(0usize, |s, &x| (s << 7) | usize::from(x & 0x7f));
                i = 10 + size + if b[5] & 0x10 != 0 { 10 } else { 0 };
            }
            // Padding after the tag is the tag's.
            while b[i] == 0 {
                i += 1;
            }
            b[i..].to_vec()
        }
        ext @ ("ogg" | "opus") => {
            let mut packets: Vec<Vec<u8>> = vec![Vec::new()];
            let mut i = 0;
            while i + 27 <= b.len() {
                assert_eq!(&b[i..i + 4], b"OggS");
                let n = b[i + 26] as usize;
                let lacing = &b[i + 27..i + 27 + n];
                let mut at = i + 27 + n;
                for &l in lacing {
                    packets
                        .last_mut()
                        .unwrap()
                        .extend_from_slice(&b[at..at + l as usize]);
                    at += l as usize;
                    if l < 255 {
                        packets.push(Vec::new());
                    }
                }
                i = at;
            }
            // Vorbis has three header packets, Opus two.
            let headers = if ext == "ogg" { 3 } else { 2 };
            packets.into_iter().skip(headers).flatten().collect()
        }
        "m4a" => box_payload(&b, b"mdat"),
        _ => {
            let mut i = 12;
            loop {
                let len = u32::from_le_bytes(b[i + 4..i + 8].try_into().unwrap()) as usize;
                if &b[i..i + 4] == b"data" {
                    return b[i + 8..i + 8 + len].to_vec();
                }
                i += 8 + len + len % 2;
            }
        }
    }
}

fn box_payload(b: &[u8], kind: &[u8; 4]) -> Vec<u8> {
    let mut i = 0;
    while i + 8 <= b.len() {
        let len = u32::from_be_bytes(b[i..i + 4].try_into().unwrap()) as usize;
        if &b[i + 4..i + 8] == kind {
            return b[i + 8..i + len].to_vec();
        }
        i += len.max(8);
    }
    panic!("no {} box", String::from_utf8_lossy(kind));
}

const FORMATS: [&str; 5] = ["flac", "mp3", "ogg", "m4a", "wav"];
const FIELDS: [&str; 4] = [
    "REPLAYGAIN_TRACK_GAIN",
    "REPLAYGAIN_TRACK_PEAK",
    "REPLAYGAIN_ALBUM_GAIN",
    "REPLAYGAIN_ALBUM_PEAK",
];

fn tag(args: &[&str], dir: &Path) -> (i32, String, String) {
    let out = sluice()
        .arg("tag")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// An album of five formats tagged as loudgain tags a copy of it: the same gains within
/// 0.1 dB (peaks: see below), read back by mutagen and ffprobe; nothing else in the files changed.
#[test]
fn an_album_is_tagged_as_loudgain_tags_it_and_its_audio_is_untouched() {
    let Some(ffmpeg) = tool("ffmpeg") else { return };
    let t = tempfile::tempdir().unwrap();
    let album = t.path().join("album");
    std::fs::create_dir(&album).unwrap();
    let gains = [-3.0, -9.0, -14.0, -6.0, -20.0];
    let files: Vec<PathBuf> = FORMATS
        .iter()
        .enumerate()
        .map(|(k, ext)| {
            let p = album.join(format!("{:02} track.{ext}", k + 1));
            make(&ffmpeg, &p, 8.0, k as u64 + 1, gains[k], "Album");
            p
        })
        .collect();
    let before: Vec<(Vec<u8>, Vec<Vec<f32>>)> =
        files.iter().map(|f| (payload(f), decoded(f))).collect();
    let copies = t.path().join("loudgain");
    std::fs::create_dir(&copies).unwrap();
    for f in &files {
        std::fs::copy(f, copies.join(f.file_name().unwrap())).unwrap();
    }

    let (code, out, err) = tag(&["album"], t.path());
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("5 file(s): 5 tagged"), "{out}");
    for (f, (pay, pcm)) in files.iter().zip(&before) {
        assert!(
            payload(f) == *pay,
            "{}: the audio bytes changed",
            f.display()
        );
        assert!(
            decoded(f) == *pcm,
            "{}: the decoded audio changed",
            f.display()
        );
    }
    let Some(ours) = mutagen(&files) else { return };
    for (f, tags) in files.iter().zip(&ours) {
        for k in FIELDS {
            assert!(tags.contains_key(k), "{}: no {k} in {tags:?}", f.display());
        }
        assert_eq!(
            tags["REPLAYGAIN_ALBUM_GAIN"],
            ours[0]["REPLAYGAIN_ALBUM_GAIN"]
        );
        // The other tags stay (WAV's are in its LIST/INFO chunk, which mutagen does not read).
        let kept = sluice_core::tags::read_tags(f).unwrap();
        let name = f.file_stem().unwrap().to_string_lossy().into_owned();
        assert_eq!(
            kept.title.as_deref(),
            Some(name.as_str()),
            "{}",
            f.display()
        );
        assert_eq!(kept.album.as_deref(), Some("Album"), "{}", f.display());
    }
    // The MP3 was made with ID3v2.3: it stays 2.3.
    assert_eq!(ours[1]["@ID3"], "2.3", "{:?}", ours[1]);

    // ffprobe reads the same fields (not WAV's: ffmpeg 5 does not read a WAV's ID3 chunk,
    // loudgain's no more than ours).
    if let Some(ffprobe) = tool("ffprobe") {
        for (f, tags) in files
            .iter()
            .zip(&ours)
            .filter(|(f, _)| !f.ends_with("05 track.wav"))
        {
            let out = Command::new(&ffprobe)
                .args(["-v", "error", "-of", "json"])
                .args(["-show_entries", "format_tags:stream_tags"])
                .arg(f)
                .output()
                .unwrap();
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            // Ogg's comments are the stream's, the others' the container's.
            let probed: BTreeMap<String, String> = [&v["format"]["tags"], &v["streams"][0]["tags"]]
                .into_iter()
                .filter_map(|t| t.as_object())
                .flatten()
                .map(|(k, v)| (k.to_uppercase(), v.as_str().unwrap_or("").to_string()))
                .collect();
            for k in FIELDS {
                assert_eq!(probed.get(k), tags.get(k), "{}: {k}", f.display());
            }
        }
    }

    // loudgain on the copies: gains and peaks within 0.1 dB.
    let Some(loudgain) = tool("loudgain") else {
        return;
    };
    let theirs = loudgain_tags(&loudgain, &files, &copies);
    for ((f, o), l) in files.iter().zip(&ours).zip(&theirs) {
        for k in ["REPLAYGAIN_TRACK_GAIN", "REPLAYGAIN_ALBUM_GAIN"] {
            let (a, b) = (db(&o[k]), db(&l[k]));
            assert!(
                (a - b).abs() <= 0.1,
                "{}: {k} {a} against loudgain's {b}",
                f.display()
            );
        }
        // Peaks: the two true-peak meters' interpolation filters differ (libebur128's, which
        // loudgain uses, reads bright transients' intersample peaks lower: docs/TAGGING.md):
        // within 0.5 dB.
        for k in ["REPLAYGAIN_TRACK_PEAK", "REPLAYGAIN_ALBUM_PEAK"] {
            let a: f64 = o[k].parse().unwrap();
            let b: f64 = l[k].parse().unwrap();
            let d = 20.0 * (a / b).log10();
            assert!(
                d.abs() <= 0.5,
                "{}: {k} {a} against loudgain's {b}",
                f.display()
            );
        }
    }
}

/// Ogg Opus files get Opus's own gains (RFC 7845): `R128_TRACK_GAIN` and `R128_ALBUM_GAIN` in
/// Q7.8 towards −23 LUFS, no ReplayGain fields, as loudgain writes them (within 0.1 dB); the
/// audio packets and the decoded audio are untouched; ffprobe reads the gains.
#[test]
fn opus_files_get_r128_gains_as_loudgain_writes_them() {
    let Some(ffmpeg) = tool("ffmpeg") else { return };
    let t = tempfile::tempdir().unwrap();
    let album = t.path().join("album");
    std::fs::create_dir(&album).unwrap();
    let files: Vec<PathBuf> = [-4.0, -12.0, -20.0]
        .iter()
        .enumerate()
        .map(|(k, g)| {
            let p = album.join(format!("{:02} track.opus", k + 1));
            make(&ffmpeg, &p, 8.0, k as u64 + 11, *g, "Opus Album");
            p
        })
        .collect();
    let before: Vec<(Vec<u8>, Vec<Vec<f32>>)> =
        files.iter().map(|f| (payload(f), decoded(f))).collect();
    let copies = t.path().join("loudgain");
    std::fs::create_dir(&copies).unwrap();
    for f in &files {
        std::fs::copy(f, copies.join(f.file_name().unwrap())).unwrap();
    }
    let (code, out, err) = tag(&["album"], t.path());
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("3 file(s): 3 tagged"), "{out}");
    for (f, (pay, pcm)) in files.iter().zip(&before) {
        assert!(
            payload(f) == *pay,
            "{}: the audio bytes changed",
            f.display()
        );
        assert!(
            decoded(f) == *pcm,
            "{}: the decoded audio changed",
            f.display()
        );
    }
    let Some(ours) = mutagen(&files) else { return };
    let q78 = |v: &str| v.parse::<f64>().unwrap() / 256.0;
    for (f, tags) in files.iter().zip(&ours) {
        assert!(
            tags.keys().all(|k| !k.starts_with("REPLAYGAIN")),
            "{}: {tags:?}",
            f.display()
        );
        assert_eq!(tags["R128_ALBUM_GAIN"], ours[0]["R128_ALBUM_GAIN"]);
        assert!(tags["TITLE"].ends_with("track"), "{tags:?}");
        // Towards -23 LUFS: the track gain plus the loudness as decoded is -23.
        let (i, _) = common::loudness(f);
        let g = q78(&tags["R128_TRACK_GAIN"]);
        assert!(
            (i + g + 23.0).abs() < 0.01,
            "{}: {i} LUFS, gain {g}",
            f.display()
        );
    }
    if let Some(ffprobe) = tool("ffprobe") {
        let out = Command::new(&ffprobe)
            .args(["-v", "error", "-of", "json", "-show_entries", "stream_tags"])
            .arg(&files[0])
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let probed = v["streams"][0]["tags"]
            .as_object()
            .unwrap()
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("R128_TRACK_GAIN"))
            .map(|(_, v)| v.as_str().unwrap().to_string());
        assert_eq!(probed.as_deref(), Some(ours[0]["R128_TRACK_GAIN"].as_str()));
    }
    let Some(loudgain) = tool("loudgain") else {
        return;
    };
    let theirs = loudgain_tags(&loudgain, &files, &copies);
    for ((f, o), l) in files.iter().zip(&ours).zip(&theirs) {
        for k in ["R128_TRACK_GAIN", "R128_ALBUM_GAIN"] {
            let (a, b) = (q78(&o[k]), q78(&l[k]));
            assert!(
                (a - b).abs() <= 0.1,
                "{}: {k} {a} against loudgain's {b}",
                f.display()
            );
        }
    }
}

/// A dry run changes nothing; a second run rewrites nothing; `--skip-existing` skips; a field a
/// foreign tool wrote in lower case is replaced, not doubled; `--remove` takes every field out
/// and leaves the rest.
#[test]
fn dry_runs_reruns_skipping_and_removal() {
    let Some(ffmpeg) = tool("ffmpeg") else { return };
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("lib");
    std::fs::create_dir(&dir).unwrap();
    let files: Vec<PathBuf> = ["flac", "ogg"]
        .iter()
        .enumerate()
        .map(|(k, ext)| {
            let p = dir.join(format!("t{k}.{ext}"));
            make(&ffmpeg, &p, 5.0, 10 + k as u64, -8.0, "A");
            p
        })
        .collect();
    let bytes = |f: &PathBuf| std::fs::read(f).unwrap();
    let original: Vec<Vec<u8>> = files.iter().map(bytes).collect();
    let payloads: Vec<Vec<u8>> = files.iter().map(|f| payload(f)).collect();

    let (code, out, _) = tag(&["--dry-run", "--json", "lib"], t.path());
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["summary"]["would_write"], 2, "{v}");
    assert!(v["results"][0]["gains"]["track_gain_db"].as_f64().is_some());
    assert_eq!(files.iter().map(bytes).collect::<Vec<_>>(), original);

    let (code, out, _) = tag(&["lib"], t.path());
    assert_eq!(code, 0, "{out}");
    let tagged: Vec<Vec<u8>> = files.iter().map(bytes).collect();
    assert_ne!(tagged, original);
    let inode = |f: &PathBuf| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(f).unwrap());
    let inodes: Vec<u64> = files.iter().map(inode).collect();
    let (code, out, _) = tag(&["lib"], t.path());
    assert_eq!(code, 0);
    assert!(out.contains("2 file(s): 2 unchanged"), "{out}");
    assert_eq!(files.iter().map(inode).collect::<Vec<_>>(), inodes);
    let (_, out, _) = tag(&["--skip-existing", "lib"], t.path());
    assert!(out.contains("2 file(s): 2 skipped"), "{out}");

    // A lower-case field from another tool: replaced by ours, once.
    if let Some(metaflac) = tool("metaflac") {
        let st = Command::new(metaflac)
            .args([
                "--remove-tag=REPLAYGAIN_TRACK_GAIN",
                "--set-tag=replaygain_track_gain=-99.00 dB",
            ])
            .arg(&files[0])
            .status()
            .unwrap();
        assert!(st.success());
        let (_, out, _) = tag(&["lib"], t.path());
        assert!(out.contains("1 tagged, 1 unchanged"), "{out}");
        let text = String::from_utf8_lossy(&std::fs::read(&files[0]).unwrap()).to_lowercase();
        assert_eq!(text.matches("replaygain_track_gain=").count(), 1);
        assert!(!text.contains("-99.00 db"));
    }

    let (code, out, _) = tag(&["--remove", "lib"], t.path());
    assert_eq!(code, 0);
    assert!(out.contains("2 file(s): 2 untagged"), "{out}");
    for (f, p) in files.iter().zip(&payloads) {
        assert!(sluice_core::replaygain::read(f).unwrap().is_empty());
        assert!(payload(f) == *p, "{}: the audio bytes changed", f.display());
    }
    if let Some(tags) = mutagen(&files) {
        for t in tags {
            assert!(t.keys().all(|k| !k.starts_with("REPLAYGAIN")), "{t:?}");
            assert!(t.contains_key("TITLE"), "{t:?}");
        }
    }
}

/// Files that cannot be tagged fail alone, named, with exit status 1; the rest are tagged; a
/// silent file is left as it is and said to be; a missing path is named; no copy is left.
#[test]
fn bad_files_fail_alone_with_their_names() {
    let Some(ffmpeg) = tool("ffmpeg") else { return };
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("lib");
    std::fs::create_dir(&dir).unwrap();
    let good = dir.join("good.flac");
    make(&ffmpeg, &good, 3.0, 5, -10.0, "A");
    std::fs::write(dir.join("junk.mp3"), b"not audio at all, only words").unwrap();
    let silent = dir.join("silent.wav");
    write_wav(&silent, &[vec![0.0; 44_100], vec![0.0; 44_100]], 44_100, 16);
    let (code, out, err) = tag(&["--album", "off", "lib", "missing"], t.path());
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("good.flac: tagged"), "{out}");
    assert!(out.contains("junk.mp3: FAILED"), "{out}");
    assert!(
        out.contains("silent.wav: silent (no loudness, no gain)"),
        "{out}"
    );
    assert!(
        out.contains("junk.mp3: FAILED: lib/junk.mp3: not a recognised audio file"),
        "{out}"
    );
    assert!(out.contains("missing: FAILED"), "{out}");
    let left: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(
        std::fs::read(dir.join("junk.mp3")).unwrap(),
        b"not audio at all, only words"
    );
}

/// Attacks a stranger would try: an RF64 file (which lofty would mistake for MPEG and tag in
/// front of its header), a FIFO named on the command line (a reader would block), a link in a
/// folder to a file outside it, a WAV whose RIFF size claims 4 GiB. Each is refused by name and
/// left as it was, or (the streaming WAV) tagged and still read as the same audio; nothing
/// outside the folder given changes.
#[test]
fn strangers_files_are_refused_or_tagged_without_harm() {
    let Some(ffmpeg) = tool("ffmpeg") else { return };
    let t = tempfile::tempdir().unwrap();
    let lib = t.path().join("lib");
    let outside = t.path().join("outside");
    std::fs::create_dir_all(&lib).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    let src = outside.join("src.flac");
    make(&ffmpeg, &src, 3.0, 77, -10.0, "A");
    let rf64 = lib.join("big.wav");
    let st = Command::new(&ffmpeg)
        .args(["-v", "error", "-y", "-i"])
        .arg(&src)
        .args(["-rf64", "always"])
        .arg(&rf64)
        .status()
        .unwrap();
    assert!(st.success());
    let rf64_bytes = std::fs::read(&rf64).unwrap();
    let kept = outside.join("kept.flac");
    std::fs::copy(&src, &kept).unwrap();
    let kept_bytes = std::fs::read(&kept).unwrap();
    std::os::unix::fs::symlink(&kept, lib.join("link.flac")).unwrap();
    // A WAV as a stream writer leaves it: the RIFF size says 0xFFFFFFF0.
    let stream = lib.join("stream.wav");
    let st = Command::new(&ffmpeg)
        .args(["-v", "error", "-y", "-i"])
        .arg(&src)
        .arg(&stream)
        .status()
        .unwrap();
    assert!(st.success());
    let mut b = std::fs::read(&stream).unwrap();
    b[4..8].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
    std::fs::write(&stream, &b).unwrap();
    let audio = decoded(&stream);

    let (code, out, err) = tag(&["--album", "off", "lib"], t.path());
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains("big.wav: FAILED") && out.contains("RF64"),
        "{out}"
    );
    assert_eq!(
        std::fs::read(&rf64).unwrap(),
        rf64_bytes,
        "the RF64 file changed"
    );
    assert!(!out.contains("link.flac"), "the link was followed: {out}");
    assert_eq!(
        std::fs::read(&kept).unwrap(),
        kept_bytes,
        "a file outside changed"
    );
    assert!(out.contains("stream.wav: tagged"), "{out}");
    assert!(decoded(&stream) == audio, "the stream WAV's audio changed");
    assert_eq!(
        sluice_core::replaygain::read(&stream).unwrap().len(),
        2,
        "track gain and peak"
    );

    let fifo = lib.join("pipe.flac");
    let st = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(st.success());
    let (code, out, _) = tag(&["lib/pipe.flac"], t.path());
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("pipe.flac: FAILED: lib/pipe.flac: not a regular file"),
        "{out}"
    );
}

/// SIGKILL halfway through 200 files in ten album folders: every file is either byte for byte
/// what it was or fully tagged with its audio bytes and decoded audio unchanged; the next run
/// (`--skip-existing`) removes the copy left behind and finishes, every album with one album
/// gain.
#[test]
fn a_run_killed_halfway_leaves_every_file_whole_and_the_next_finishes() {
    let Some(ffmpeg) = tool("ffmpeg") else { return };
    let t = tempfile::tempdir().unwrap();
    let lib = t.path().join("lib");
    let src = t.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    // Eight different recordings per format, copied to 40 files each.
    let mut made = Vec::new();
    for (k, ext) in FORMATS.iter().enumerate() {
        for s in 0..8u64 {
            let p = src.join(format!("{s}.{ext}"));
            make(
                &ffmpeg,
                &p,
                3.0,
                100 + s * 7 + k as u64,
                -4.0 - s as f32 * 2.0,
                "Kill",
            );
            made.push(p);
        }
    }
    let mut files = Vec::new();
    for n in 0..200usize {
        let from = &made[n % made.len()];
        let folder = lib.join(format!("album {:02}", n % 10));
        std::fs::create_dir_all(&folder).unwrap();
        let to = folder.join(format!(
            "{n:03}.{}",
            from.extension().unwrap().to_str().unwrap()
        ));
        std::fs::copy(from, &to).unwrap();
        files.push(to);
    }
    let original: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    let audio: Vec<(Vec<u8>, Vec<Vec<f32>>)> =
        made.iter().map(|f| (payload(f), decoded(f))).collect();

    let mut killed = false;
    for _attempt in 0..3 {
        let mut child = sluice()
            .args(["tag", "-q", "-j", "2"])
            .arg(&lib)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Kill it while a copy is being tagged (a file mid-change), once some files are done.
        let mut seen = std::collections::HashSet::new();
        loop {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            let copies: Vec<PathBuf> = walk(&lib)
                .into_iter()
                .filter(|p| p.to_string_lossy().contains(".sluice-tag-tmp"))
                .collect();
            let busy = !copies.is_empty();
            seen.extend(copies);
            if busy && seen.len() >= 30 {
                child.kill().unwrap();
                child.wait().unwrap();
                killed = true;
                break;
            }
        }
        if killed {
            break;
        }
        // It finished before a copy was seen: start over from the originals.
        for (f, b) in files.iter().zip(&original) {
            std::fs::write(f, b).unwrap();
        }
    }
    assert!(killed, "the run always finished before it could be killed");

    let (mut untouched, mut whole) = (0, 0);
    for (n, f) in files.iter().enumerate() {
        let now = std::fs::read(f).unwrap();
        if now == original[n] {
            untouched += 1;
            continue;
        }
        let fields = sluice_core::replaygain::read(f).unwrap();
        let has = |k: &str| fields.iter().any(|(f, _)| f == k);
        assert!(
            FIELDS.iter().all(|k| has(k)),
            "{}: half tagged: {fields:?}",
            f.display()
        );
        let (pay, pcm) = &audio[n % made.len()];
        assert!(payload(f) == *pay, "{}: audio bytes changed", f.display());
        assert!(decoded(f) == *pcm, "{}: decoded audio changed", f.display());
        whole += 1;
    }
    assert!(
        untouched > 0 && whole > 0,
        "{untouched} untouched, {whole} tagged"
    );

    let (code, out, err) = tag(&["--skip-existing", "-q", "lib"], t.path());
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("200 file(s)"), "{out}");
    assert!(
        !walk(&lib)
            .iter()
            .any(|p| p.to_string_lossy().contains(".sluice-tag-tmp")),
        "a copy was left"
    );
    let mut album_gain: BTreeMap<PathBuf, String> = BTreeMap::new();
    for (n, f) in files.iter().enumerate() {
        let fields: BTreeMap<String, String> = sluice_core::replaygain::read(f)
            .unwrap()
            .into_iter()
            .collect();
        for k in FIELDS {
            assert!(
                fields.contains_key(k),
                "{}: no {k} after the second run",
                f.display()
            );
        }
        let g = album_gain
            .entry(f.parent().unwrap().to_path_buf())
            .or_insert_with(|| fields["REPLAYGAIN_ALBUM_GAIN"].clone());
        assert_eq!(*g, fields["REPLAYGAIN_ALBUM_GAIN"], "{}", f.display());
        assert!(payload(f) == audio[n % made.len()].0);
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// loudgain (`-a -s i`: album mode, tags written) on the copies in `copies` of `files`, and the
/// tags it wrote, as mutagen reads them.
fn loudgain_tags(
    loudgain: &Path,
    files: &[PathBuf],
    copies: &Path,
) -> Vec<BTreeMap<String, String>> {
    let copied: Vec<PathBuf> = files
        .iter()
        .map(|f| copies.join(f.file_name().unwrap()))
        .collect();
    let st = Command::new(loudgain)
        .args(["-q", "-a", "-s", "i"])
        .args(&copied)
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    mutagen(&copied).unwrap()
}
