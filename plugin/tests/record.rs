//! Takes recorded through the recorder's two halves (audio-thread side under `assert_no_alloc`,
//! the real writer thread) with a simulated transport: the samples equal the input, the BWF
//! time reference equals the transport position, takes start and end with the transport, a
//! jump starts a new take, and no half-written file is ever visible under a take's name.

use nice_assert_no_alloc::assert_no_alloc;
use sluice_core::signal::programme;
use sluice_plugin::params::{ExportSettings, TakeFormat};
use sluice_plugin::record::{self, TakeConfig, TransportInfo};
use sluice_plugin::shared::MeterShared;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("sluice-record-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn takes_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

fn read_float_wav(path: &Path) -> (Vec<Vec<f32>>, u32) {
    let mut r = hound::WavReader::open(path).unwrap();
    let spec = r.spec();
    let ch = spec.channels as usize;
    let mut planes = vec![Vec::new(); ch];
    for (i, s) in r.samples::<f32>().enumerate() {
        planes[i % ch].push(s.unwrap());
    }
    (planes, spec.sample_rate)
}

/// Whether `got` is `want`'s first samples, bit for bit.
fn same_bits(got: &[f32], want: &[f32]) -> bool {
    got.iter()
        .zip(want)
        .all(|(a, b)| a.to_bits() == b.to_bits())
}

/// A take that holds the whole input, bit for bit.
fn assert_whole_input(planes: &[Vec<f32>], sig: &[Vec<f32>]) {
    assert_eq!(planes.len(), sig.len());
    for (c, (p, s)) in planes.iter().zip(sig).enumerate() {
        assert_eq!(p.len(), s.len(), "channel {c}");
        assert!(same_bits(p, s), "channel {c} differs from the input");
    }
}

struct Rig {
    rt: record::RecorderRt,
    writer: record::Writer,
    shared: Arc<MeterShared>,
}

fn rig(dir: &Path, rate: u32, channels: usize, format: TakeFormat) -> Rig {
    rig_in_mode(dir, rate, channels, format, false)
}

fn rig_in_mode(dir: &Path, rate: u32, channels: usize, format: TakeFormat, offline: bool) -> Rig {
    let shared = Arc::new(MeterShared::default());
    let settings = ExportSettings {
        folder: dir.to_string_lossy().into_owned(),
        format,
        ..ExportSettings::default()
    };
    let (rt, writer) = record::start(TakeConfig {
        sample_rate: rate,
        channels,
        settings: Arc::new(RwLock::new(settings)),
        target: Arc::new(|| (-14.0, -1.0)),
        shared: shared.clone(),
        offline,
    })
    .unwrap();
    Rig { rt, writer, shared }
}

/// Feed `planes` in blocks of `block` frames; `transport(frame)` gives each block's transport.
/// Paced at about 20× real time (a host is never faster than its offline render), so the
/// writer keeps up.
fn feed(
    rig: &mut Rig,
    planes: &[Vec<f32>],
    block: usize,
    armed: bool,
    transport: impl Fn(usize) -> TransportInfo,
) {
    feed_paced(rig, planes, block, armed, transport, true)
}

fn feed_paced(
    rig: &mut Rig,
    planes: &[Vec<f32>],
    block: usize,
    armed: bool,
    transport: impl Fn(usize) -> TransportInfo,
    paced: bool,
) {
    let len = planes[0].len();
    let mut at = 0;
    let mut since_pause = 0;
    while at < len {
        let n = block.min(len - at);
        let refs: Vec<&[f32]> = planes.iter().map(|p| &p[at..at + n]).collect();
        let t = transport(at);
        assert_no_alloc(|| rig.rt.process(&refs, armed, t));
        at += n;
        since_pause += n;
        if paced && since_pause >= 4_410 {
            since_pause = 0;
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
}

fn playing_at(pos: i64) -> impl Fn(usize) -> TransportInfo {
    move |frame| TransportInfo {
        has_transport: true,
        playing: true,
        position: Some(pos + frame as i64),
    }
}

#[test]
fn a_take_holds_the_input_and_its_timeline_position() {
    let dir = temp_dir("basic");
    let rate = 48_000;
    // 20 s: more than the 8 s ring, so the take crosses its wrap several times.
    let sig = programme(rate, 2, rate as usize * 20, 11);
    let mut r = rig(&dir, rate, 2, TakeFormat::Wav32Float);
    let start = 10 * 60 * i64::from(rate) + 12_345; // 10 min into the session
    // Stopped transport: nothing is recorded.
    feed(&mut r, &sig, 512, true, |_| TransportInfo {
        has_transport: true,
        playing: false,
        position: Some(0),
    });
    // Playing but not armed: nothing either.
    feed(&mut r, &sig, 512, false, playing_at(0));
    // Armed and playing: one take.
    feed(&mut r, &sig, 333, true, playing_at(start));
    assert!(r.shared.record.recording.load(Ordering::Relaxed));
    // The take must never be visible under its final name while recording.
    std::thread::sleep(std::time::Duration::from_millis(50));
    for p in takes_in(&dir) {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.starts_with('.'),
            "{name} visible while the take is recorded"
        );
    }
    // The transport stops: the take closes.
    feed(&mut r, &sig[..], 512, true, |_| TransportInfo {
        has_transport: true,
        playing: false,
        position: Some(start),
    });
    r.writer.finish();
    let takes = takes_in(&dir);
    assert_eq!(takes.len(), 1, "{takes:?}");
    let (planes, got_rate) = read_float_wav(&takes[0]);
    assert_eq!(got_rate, rate);
    assert_eq!(planes.len(), 2);
    assert_whole_input(&planes, &sig);
    let tags = sluice_core::read_tags(&takes[0]).unwrap();
    let bext = tags.bext.expect("bext chunk");
    assert_eq!(bext.time_reference, start as u64);
    assert_eq!(bext.version, 2);
    // The coding history as the exports write it (EBU R 98, the float take as FLOAT).
    assert!(
        bext.coding_history
            .starts_with(&format!("A=FLOAT,F={rate},W=32,M=stereo,T=Sluice Meter ")),
        "{}",
        bext.coding_history
    );
    // Loudness measured on the take, as the core's offline analysis gives it.
    let mut m = sluice_core::analysis::loudness::LoudnessMeter::new(rate, vec![1.0, 1.0]);
    let refs: Vec<&[f32]> = sig.iter().map(Vec::as_slice).collect();
    m.feed(&refs);
    let want = m.summary(None).integrated_lufs.unwrap();
    let got = f64::from(bext.loudness_value.expect("loudness in bext"));
    assert!((got - want).abs() < 0.02, "bext loudness {got} vs {want}");
    assert_eq!(r.shared.record.takes.load(Ordering::Relaxed), 1);
    assert_eq!(r.shared.record.overruns.load(Ordering::Relaxed), 0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_jump_starts_a_new_take_and_no_transport_records_at_once() {
    let dir = temp_dir("jump");
    let rate = 44_100;
    let sig = programme(rate, 1, rate as usize * 2, 5);
    let mut r = rig(&dir, rate, 1, TakeFormat::Wav24);
    feed(&mut r, &sig, 1000, true, playing_at(1_000));
    // Looped back to 500: a new take at 500.
    feed(&mut r, &sig, 1000, true, playing_at(500));
    r.rt.stop();
    // No transport at all: records at once, placed at 0.
    feed(&mut r, &sig, 4096, true, |_| TransportInfo::default());
    r.rt.stop();
    r.writer.finish();
    let takes = takes_in(&dir);
    assert_eq!(takes.len(), 3, "{takes:?}");
    let mut refs: Vec<u64> = takes
        .iter()
        .map(|t| {
            sluice_core::read_tags(t)
                .unwrap()
                .bext
                .unwrap()
                .time_reference
        })
        .collect();
    refs.sort();
    assert_eq!(refs, vec![0, 500, 1_000]);
    for t in &takes {
        let mut rd = hound::WavReader::open(t).unwrap();
        assert_eq!(rd.spec().bits_per_sample, 24);
        let got: Vec<i32> = rd.samples::<i32>().map(Result::unwrap).collect();
        assert_eq!(got.len(), sig[0].len());
        // 24-bit: each sample is the input rounded to the 24-bit grid.
        for (g, x) in got.iter().zip(&sig[0]) {
            let want = (f64::from(*x) * 8_388_608.0)
                .round()
                .clamp(-8_388_608.0, 8_388_607.0);
            assert!((f64::from(*g) - want).abs() <= 1.0, "{g} vs {want}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_pre_roll_is_left_out_and_the_take_starts_at_zero() {
    // Ardour's export plays from 768 frames before the session start; blocks of 1024 straddle 0.
    let dir = temp_dir("preroll");
    let rate = 48_000;
    let sig = programme(rate, 2, rate as usize * 2, 9);
    let mut r = rig(&dir, rate, 2, TakeFormat::Wav32Float);
    feed(&mut r, &sig, 1024, true, playing_at(-768));
    r.rt.stop();
    // A pre-roll longer than a block: whole blocks before 0 record nothing.
    feed(&mut r, &sig, 256, true, playing_at(-1000));
    r.rt.stop();
    r.writer.finish();
    let takes = takes_in(&dir);
    assert_eq!(takes.len(), 2, "{takes:?}");
    let mut got: Vec<(Vec<Vec<f32>>, u64)> = takes
        .iter()
        .map(|t| {
            let tr = sluice_core::read_tags(t)
                .unwrap()
                .bext
                .unwrap()
                .time_reference;
            (read_float_wav(t).0, tr)
        })
        .collect();
    got.sort_by_key(|(p, _)| std::cmp::Reverse(p[0].len()));
    for ((planes, tr), skip) in got.iter().zip([768usize, 1000]) {
        assert_eq!(*tr, 0, "a take after a pre-roll of {skip} starts at 0");
        for c in 0..2 {
            assert_eq!(planes[c].len(), sig[c].len() - skip, "pre-roll {skip}");
            assert!(
                same_bits(&planes[c], &sig[c][skip..]),
                "pre-roll {skip}: channel {c} is not the input from timeline 0"
            );
        }
    }
    assert_eq!(r.shared.record.overruns.load(Ordering::Relaxed), 0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn normalize_on_finalize_writes_a_copy_at_the_target() {
    let dir = temp_dir("normalize");
    let rate = 48_000;
    let sig = programme(rate, 2, rate as usize * 6, 9);
    let shared = Arc::new(MeterShared::default());
    let settings = ExportSettings {
        folder: dir.to_string_lossy().into_owned(),
        format: TakeFormat::Wav24,
        normalize_on_finalize: true,
        ..ExportSettings::default()
    };
    let (rt, writer) = record::start(TakeConfig {
        sample_rate: rate,
        channels: 2,
        settings: Arc::new(RwLock::new(settings)),
        target: Arc::new(|| (-16.0, -1.0)),
        shared: shared.clone(),
        offline: false,
    })
    .unwrap();
    let mut r = Rig { rt, writer, shared };
    feed(&mut r, &sig, 512, true, playing_at(0));
    r.rt.stop();
    r.writer.finish();
    // The normalized copy is rendered on its own thread after the take closes.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let normalized = loop {
        if let Some(p) = takes_in(&dir)
            .into_iter()
            .find(|p| p.to_string_lossy().ends_with("(normalized).wav"))
        {
            break p;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no normalized copy: {:?}, error {:?}",
            takes_in(&dir),
            r.shared.record.last_error()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let tags = sluice_core::read_tags(&normalized).unwrap();
    let bext = tags.bext.expect("bext on the normalized copy");
    let i = f64::from(bext.loudness_value.unwrap());
    assert!((i + 16.0).abs() <= 0.1, "normalized copy at {i} LUFS");
    assert!(f64::from(bext.max_true_peak_level.unwrap()) <= -1.0 + 1e-3);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_overrun_is_counted_and_every_take_still_lines_up() {
    let dir = temp_dir("overrun");
    let rate = 48_000;
    // A minute pushed as fast as memory allows: far faster than any disk, so the 8 s ring
    // fills. The audio side must never wait; it drops, counts, and starts a new take later.
    let sig = programme(rate, 2, rate as usize * 60, 21);
    let mut r = rig(&dir, rate, 2, TakeFormat::Wav32Float);
    let origin = 96_000i64;
    feed_paced(&mut r, &sig, 512, true, playing_at(origin), false);
    r.rt.stop();
    r.writer.finish();
    let overruns = r.shared.record.overruns.load(Ordering::Relaxed);
    let dropped = r.shared.record.dropped_frames.load(Ordering::Relaxed);
    assert!(
        overruns > 0 && dropped > 0,
        "no overrun: {overruns} / {dropped}"
    );
    let takes = takes_in(&dir);
    assert!(!takes.is_empty());
    let mut recorded = 0u64;
    for t in &takes {
        let (planes, _) = read_float_wav(t);
        let at = sluice_core::read_tags(t)
            .unwrap()
            .bext
            .unwrap()
            .time_reference as i64
            - origin;
        let at = at as usize;
        recorded += planes[0].len() as u64;
        for c in 0..2 {
            assert!(
                same_bits(&planes[c], &sig[c][at..]),
                "{} does not match the input at its time reference",
                t.display()
            );
        }
    }
    // Everything was either recorded or counted as dropped.
    assert_eq!(recorded + dropped, sig[0].len() as u64);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_offline_render_waits_for_the_writer_and_loses_nothing() {
    let dir = temp_dir("offline");
    let rate = 48_000;
    // The minute that overruns the ring in real time (above), in an offline render: the audio
    // thread waits for the writer, so it is one take, whole and bit-exact.
    let sig = programme(rate, 2, rate as usize * 60, 21);
    let mut r = rig_in_mode(&dir, rate, 2, TakeFormat::Wav32Float, true);
    let origin = 96_000i64;
    feed_paced(&mut r, &sig, 512, true, playing_at(origin), false);
    r.rt.stop();
    r.writer.finish();
    let rec = &r.shared.record;
    assert_eq!(rec.overruns.load(Ordering::Relaxed), 0);
    assert_eq!(rec.dropped_frames.load(Ordering::Relaxed), 0);
    assert!(
        rec.offline_waits.load(Ordering::Relaxed) > 0,
        "the ring never filled: nothing was shown"
    );
    let takes = takes_in(&dir);
    assert_eq!(takes.len(), 1, "{takes:?}");
    let (planes, _) = read_float_wav(&takes[0]);
    let at = sluice_core::read_tags(&takes[0])
        .unwrap()
        .bext
        .unwrap()
        .time_reference as i64;
    assert_eq!(at, origin);
    assert_whole_input(&planes, &sig);
}
