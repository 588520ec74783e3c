//! ReplayGain fields written into and removed from every format that carries them (the
//! fixtures made by other tools, `fixtures/make.sh`): read back, every other tag and every
//! decoded sample unchanged; an MP3's APEv2 tag gets the fields too.

use lofty::config::{ParseOptions, WriteOptions};
use lofty::file::AudioFile;
use lofty::mpeg::MpegFile;
use lofty::tag::TagExt;
use sluice_core::replaygain::{self, AlbumGain, Gains};
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn decoded(path: &Path) -> Vec<Vec<f32>> {
    let mut d = sluice_core::Decoder::open(path).unwrap();
    let mut out: Vec<Vec<f32>> = vec![Vec::new(); d.info().channels as usize];
    while let Some(b) = d.next_block().unwrap() {
        for (o, p) in out.iter_mut().zip(b.planes()) {
            o.extend_from_slice(p);
        }
    }
    out
}

const GAINS: Gains = Gains {
    track_gain_db: -7.123,
    track_peak: 0.987_654_3,
    album: Some(AlbumGain {
        gain_db: 2.5,
        peak: 1.042,
    }),
};

fn expected() -> Vec<(String, String)> {
    let mut e = vec![
        ("REPLAYGAIN_ALBUM_GAIN".to_string(), "2.50 dB".to_string()),
        ("REPLAYGAIN_ALBUM_PEAK".to_string(), "1.042000".to_string()),
        ("REPLAYGAIN_TRACK_GAIN".to_string(), "-7.12 dB".to_string()),
        ("REPLAYGAIN_TRACK_PEAK".to_string(), "0.987654".to_string()),
    ];
    e.sort();
    e
}

#[test]
fn every_format_takes_the_fields_and_gives_them_back_keeping_the_rest() {
    for name in [
        "tagged.flac",
        "tagged.mp3",
        "tagged.ogg",
        "aac.m4a",
        "alac.m4a",
        "riff_info.wav",
        "source.aiff",
    ] {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join(name);
        std::fs::copy(fixture(name), &f).unwrap();
        let tags = sluice_core::tags::read_tags(&f).unwrap();
        let audio = decoded(&f);

        replaygain::write(&f, &f, Some(&GAINS)).unwrap();
        assert_eq!(replaygain::read(&f).unwrap(), expected(), "{name}");
        let after = sluice_core::tags::read_tags(&f).unwrap();
        assert_eq!(after.title, tags.title, "{name}");
        assert_eq!(after.artist, tags.artist, "{name}");
        assert_eq!(after.album, tags.album, "{name}");
        assert_eq!(after.pictures, tags.pictures, "{name}");
        assert_eq!(after.riff_info, tags.riff_info, "{name}");
        assert!(decoded(&f) == audio, "{name}: the audio changed");

        // Track gain only: the album fields go.
        let track = Gains {
            album: None,
            ..GAINS
        };
        replaygain::write(&f, &f, Some(&track)).unwrap();
        let fields = replaygain::read(&f).unwrap();
        assert_eq!(fields.len(), 2, "{name}: {fields:?}");

        replaygain::write(&f, &f, None).unwrap();
        assert!(replaygain::read(&f).unwrap().is_empty(), "{name}");
        assert_eq!(sluice_core::tags::read_tags(&f).unwrap().title, tags.title);
        assert!(decoded(&f) == audio, "{name}: the audio changed");
    }
}

#[test]
fn an_mp3s_ape_tag_gets_the_fields_too_and_lower_case_keys_are_replaced() {
    let t = tempfile::tempdir().unwrap();
    let f = t.path().join("a.mp3");
    std::fs::copy(fixture("tagged.mp3"), &f).unwrap();
    // An APE tag from another tagger, with a lower-case gain of its own.
    let mut ape = lofty::ape::ApeTag::new();
    ape.insert(
        lofty::ape::ApeItem::new(
            "replaygain_track_gain".into(),
            lofty::tag::ItemValue::Text("-99.00 dB".into()),
        )
        .unwrap(),
    );
    ape.save_to_path(&f, WriteOptions::default()).unwrap();

    replaygain::write(&f, &f, Some(&GAINS)).unwrap();
    let mut file = std::fs::File::open(&f).unwrap();
    let mp3 = MpegFile::read_from(&mut file, ParseOptions::new()).unwrap();
    let ape = mp3.ape().expect("the APE tag stays");
    let items: Vec<(String, String)> = ape
        .into_iter()
        .map(|i| {
            let v = match i.value() {
                lofty::tag::ItemValue::Text(t) => t.clone(),
                other => format!("{other:?}"),
            };
            (i.key().to_string(), v)
        })
        .collect();
    assert_eq!(
        items
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("replaygain_track_gain"))
            .collect::<Vec<_>>(),
        vec![&("REPLAYGAIN_TRACK_GAIN".to_string(), "-7.12 dB".to_string())]
    );
    assert_eq!(replaygain::read(&f).unwrap(), expected());
}

#[test]
fn a_file_that_is_not_audio_is_an_error_naming_it() {
    let t = tempfile::tempdir().unwrap();
    let f = t.path().join("notes.mp3");
    std::fs::write(&f, b"shopping list: eggs, milk").unwrap();
    let e = replaygain::write(&f, &f, Some(&GAINS))
        .unwrap_err()
        .to_string();
    assert!(e.contains("notes.mp3"), "{e}");
    assert_eq!(std::fs::read(&f).unwrap(), b"shopping list: eggs, milk");
}

/// An MP3 whose ID3v2.3 tag holds UTF-16 text frames as lofty writes them (another tagger's
/// work, in a user's library): symphonia's probe searched on inside such a tag and took a
/// byte-order mark for an MPEG layer I frame. It decodes, sample for sample as before.
#[test]
fn an_mp3_with_a_utf16_id3v23_tag_decodes() {
    let t = tempfile::tempdir().unwrap();
    let f = t.path().join("utf16.mp3");
    std::fs::copy(fixture("tagged.mp3"), &f).unwrap();
    let audio = decoded(&f);
    let mut file = std::fs::File::open(&f).unwrap();
    let mp3 = MpegFile::read_from(&mut file, ParseOptions::new()).unwrap();
    let mut id3 = mp3.id3v2().cloned().unwrap_or_default();
    for k in [
        "REPLAYGAIN_TRACK_GAIN",
        "REPLAYGAIN_TRACK_PEAK",
        "REPLAYGAIN_ALBUM_GAIN",
        "REPLAYGAIN_ALBUM_PEAK",
    ] {
        id3.insert_user_text(k.into(), "11.93 dB".into());
    }
    id3.save_to_path(&f, WriteOptions::default().use_id3v23(true))
        .unwrap();
    assert!(
        std::fs::read(&f)
            .unwrap()
            .windows(2)
            .any(|w| w == [0xFF, 0xFE])
    );
    let info = sluice_core::probe(&f).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(info.format, "mp3");
    assert!(decoded(&f) == audio, "the audio changed");
    assert!(sluice_core::tags::read_tags(&f).unwrap().title.is_some());
}
