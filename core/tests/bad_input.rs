//! Bad input: each case gets a typed error naming the file, or, for a truncated but decodable
//! file, the audio that exists plus a truncation report. Never a panic.

mod common;
use common::fixture;
use sluice_core::{InfoOptions, InputError, info, probe, probe_decoded};
use std::path::{Path, PathBuf};

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut r = sluice_core::signal::Rng::new(seed);
    (0..n).map(|_| r.next_u64() as u8).collect()
}

fn prefix(name: &str, len: usize) -> Vec<u8> {
    std::fs::read(fixture(name)).unwrap()[..len].to_vec()
}

/// The error names the file, both in `path()` and in its message.
fn assert_names(e: &InputError, p: &Path) {
    assert_eq!(e.path(), p);
    assert!(
        e.to_string().contains(&p.display().to_string()),
        "message does not name the file: {e}"
    );
}

#[test]
fn zero_byte_file() {
    let d = tempfile::tempdir().unwrap();
    let p = write(d.path(), "empty.wav", b"");
    let e = probe(&p).unwrap_err();
    assert!(matches!(e, InputError::Empty { .. }), "{e:?}");
    assert_names(&e, &p);
    assert!(e.to_string().contains("empty"));
}

#[test]
fn text_file_named_wav() {
    let d = tempfile::tempdir().unwrap();
    let p = write(
        d.path(),
        "notes.wav",
        b"Session notes: take 3 was the keeper.\n",
    );
    let e = info(&p, &InfoOptions::default()).unwrap_err();
    match &e {
        InputError::Unrecognized { looks_like, .. } => {
            assert_eq!(looks_like.as_deref(), Some("text"))
        }
        other => panic!("{other:?}"),
    }
    assert_names(&e, &p);
    assert!(e.to_string().contains("looks like text"), "{e}");
}

#[test]
fn wav_header_claims_more_data_than_the_file_holds() {
    let d = tempfile::tempdir().unwrap();
    // 20 000 bytes of a WAV whose data chunk declares 352 800.
    let p = write(d.path(), "short.wav", &prefix("source.wav", 20_000));
    let s = probe(&p).unwrap();
    assert!(s.truncated);
    assert!(s.warnings[0].contains("352800"), "{:?}", s.warnings);
    // What is there: (20000 − 44 header bytes) / 4 bytes per frame.
    assert_eq!(s.frames, Some(4989));
    let s = probe_decoded(&p).unwrap();
    assert!(s.truncated);
    assert_eq!(s.frames, Some(4989));
    // Tags are still read from a truncated WAV.
    let p2 = write(d.path(), "short_info.wav", &prefix("riff_info.wav", 30_000));
    let i = info(&p2, &InfoOptions::default()).unwrap();
    assert_eq!(i.tags.title.as_deref(), Some("Sluice Fixture Tone"));
    assert!(i.stream.truncated);
}

#[test]
fn files_truncated_mid_frame_decode_what_exists() {
    let d = tempfile::tempdir().unwrap();
    for (name, cut, min_frames) in [
        ("tagged.flac", 30_001, 20_000),
        ("tagged.mp3", 30_001, 40_000),
        ("tagged.ogg", 12_001, 20_000),
        ("source.aiff", 100_001, 24_000),
    ] {
        let ext = Path::new(name).extension().unwrap().to_str().unwrap();
        let p = write(d.path(), &format!("cut.{ext}"), &prefix(name, cut));
        let s = probe_decoded(&p).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(s.truncated, "{name} not reported truncated");
        assert!(
            s.warnings.iter().any(|w| w.starts_with("truncated")),
            "{name}: {:?}",
            s.warnings
        );
        let n = s.frames.unwrap();
        assert!(n >= min_frames && n < 88_200, "{name}: {n} frames");
    }
}

#[test]
fn truncated_mp4_is_a_clear_error() {
    let d = tempfile::tempdir().unwrap();
    // alac.m4a keeps its index (moov) at the end: cut it off and nothing can be located.
    let p = write(d.path(), "cut.m4a", &prefix("alac.m4a", 60_000));
    let e = probe(&p).unwrap_err();
    assert!(matches!(e, InputError::Malformed { .. }), "{e:?}");
    assert!(e.to_string().contains("moov"), "{e}");
    assert_names(&e, &p);
    // aac.m4a has moov first: the header reads, the truncation is reported.
    let p = write(d.path(), "cut2.m4a", &prefix("aac.m4a", 25_000));
    let s = probe(&p).unwrap();
    assert!(s.truncated);
    let e = probe_decoded(&p).unwrap_err();
    assert!(e.to_string().contains("truncated"), "{e}");
}

#[test]
fn random_bytes_named_flac_and_mp3() {
    let d = tempfile::tempdir().unwrap();
    for (i, name) in ["noise.flac", "noise.mp3", "noise.wav", "noise.m4a"]
        .iter()
        .enumerate()
    {
        let p = write(d.path(), name, &random_bytes(64 * 1024, 1 + i as u64));
        let e = info(&p, &InfoOptions::default()).unwrap_err();
        assert!(
            matches!(e, InputError::Unrecognized { .. }),
            "{name}: {e:?}"
        );
        assert_names(&e, &p);
    }
}

#[test]
fn unsupported_format_mid() {
    let p = fixture("unsupported.mid");
    let e = info(&p, &InfoOptions::default()).unwrap_err();
    match &e {
        InputError::UnsupportedFormat { format, .. } => assert_eq!(format, "MIDI"),
        other => panic!("{other:?}"),
    }
    assert_names(&e, &p);
    assert!(e.to_string().contains("notes, not audio"), "{e}");
}

#[test]
fn ten_millisecond_file_is_fine() {
    // Not an error: 10 ms of audio is audio. (Analysis decides what it cannot measure.)
    let i = info(&fixture("ten_ms.wav"), &InfoOptions { decode: true }).unwrap();
    assert_eq!(i.stream.frames, Some(480));
    assert!((i.stream.duration_seconds.unwrap() - 0.01).abs() < 1e-12);
}

#[test]
fn directory_given_as_a_file() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("album.wav");
    std::fs::create_dir(&p).unwrap();
    let e = probe(&p).unwrap_err();
    assert!(matches!(e, InputError::IsDirectory { .. }), "{e:?}");
    assert_names(&e, &p);
    let e = sluice_core::read_tags(&p).unwrap_err();
    assert!(matches!(e, InputError::IsDirectory { .. }), "{e:?}");
}

#[test]
fn missing_file() {
    let p = PathBuf::from("/nonexistent/sluice/take.wav");
    let e = probe(&p).unwrap_err();
    assert!(matches!(e, InputError::NotFound { .. }), "{e:?}");
    assert_names(&e, &p);
}

#[test]
fn file_without_read_permission() {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::tempdir().unwrap();
    let p = write(
        d.path(),
        "locked.wav",
        &std::fs::read(fixture("ten_ms.wav")).unwrap(),
    );
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o000)).unwrap();
    if std::fs::File::open(&p).is_ok() {
        // Running as root: permission bits do not stop us. The CLI test runs `sluice info` as
        // an unprivileged user for this case; here, check the mapping of the OS error.
        let e = InputError::from_io(
            &p,
            std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        );
        assert!(matches!(e, InputError::PermissionDenied { .. }));
        assert_names(&e, &p);
        return;
    }
    let e = probe(&p).unwrap_err();
    assert!(matches!(e, InputError::PermissionDenied { .. }), "{e:?}");
    assert_names(&e, &p);
}
