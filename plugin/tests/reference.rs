//! Reference A/B (`plugin/src/reference.rs`) with the meter engine, as `process` drives them:
//! references decoded off the audio thread, the chosen one played level-matched to the mix's
//! integrated loudness, the audio thread neither allocating nor freeing (every engine and
//! player call runs under `assert_no_alloc`), the timeline followed, bad files refused with
//! their reason.

mod common;

use common::write_wav;
use nice_assert_no_alloc::assert_no_alloc;
use sluice_core::analysis::loudness::LoudnessMeter;
use sluice_core::signal::programme;
use sluice_plugin::engine::Engine;
use sluice_plugin::reference::{AbControl, AbPlayer, FADE_SECONDS, ReferenceSettings, References};
use sluice_plugin::shared::MeterShared;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const RATE: u32 = 48_000;
const BLOCK: usize = 512;

fn scaled(planes: Vec<Vec<f32>>, db: f32) -> Vec<Vec<f32>> {
    let g = 10f32.powf(db / 20.0);
    planes
        .into_iter()
        .map(|p| p.into_iter().map(|v| v * g).collect())
        .collect()
}

fn integrated(rate: u32, planes: &[Vec<f32>]) -> f64 {
    let mut m = LoudnessMeter::new(rate, vec![1.0; planes.len()]);
    let refs: Vec<&[f32]> = planes.iter().map(Vec::as_slice).collect();
    m.feed(&refs);
    m.summary(None).integrated_lufs.expect("a loudness")
}

/// Waits until every slot has left "loading".
fn wait_loaded(refs: &References) {
    let t = Instant::now();
    while refs.loading() {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "{:?}",
            refs.statuses()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

struct Session {
    engine: Engine,
    player: AbPlayer,
    shared: Arc<MeterShared>,
}

impl Session {
    fn new(refs_settings: &ReferenceSettings) -> Session {
        let shared = Arc::new(MeterShared::default());
        let engine = Engine::new(RATE, &[1.0, 1.0], BLOCK, shared.clone());
        shared.references.reload_all(refs_settings, RATE, 2);
        wait_loaded(&shared.references);
        let player = shared.references.player().expect("the first player");
        Session {
            engine,
            player,
            shared,
        }
    }

    /// Runs `input` through in blocks as `process` does (meter, then A/B); returns the output.
    fn run(
        &mut self,
        input: &[Vec<f32>],
        listen: bool,
        sync: bool,
        start: Option<i64>,
        playing: bool,
    ) -> Vec<Vec<f32>> {
        let mut out = input.to_vec();
        let frames = input[0].len();
        let mut at = 0;
        while at < frames {
            let n = BLOCK.min(frames - at);
            let (l, r) = out.split_at_mut(1);
            let mut planes: [&mut [f32]; 2] = [&mut l[0][at..at + n], &mut r[0][at..at + n]];
            let c = AbControl {
                listen,
                slot: 0,
                sync,
                mix_lufs: self.shared.integrated.load(Ordering::Relaxed),
                target_lufs: -14.0,
                playing,
                position: start.map(|s| s + at as i64),
            };
            let engine = &mut self.engine;
            let player = &mut self.player;
            assert_no_alloc(|| {
                let ins: [&[f32]; 2] = [&planes[0][..], &planes[1][..]];
                engine.process(&ins);
                player.process(&mut planes, c);
            });
            at += n;
        }
        out
    }
}

#[test]
fn a_reference_6_db_louder_plays_at_the_mixs_loudness() {
    let dir = tempfile::tempdir().unwrap();
    // The reference: another programme, 6 dB louder, at 44.1 kHz (resampled to the session's
    // 48 kHz), 12 s long.
    let reference = scaled(programme(44_100, 2, 44_100 * 12, 7), 0.0);
    let path = dir.path().join("reference.wav");
    write_wav(&path, 44_100, &reference);
    // 10 s of mix, then 24 s (two whole loops of the reference) listening to Ref.
    let mix = scaled(programme(RATE, 2, RATE as usize * 34, 3), -6.0);
    let ref_lufs = integrated(44_100, &reference);
    let mix_lufs = integrated(RATE, &mix);
    assert!(
        (ref_lufs - mix_lufs - 6.0).abs() < 1.0,
        "ref {ref_lufs}, mix {mix_lufs}"
    );

    let mut settings = ReferenceSettings::default();
    settings.paths[0] = path.display().to_string();
    let mut s = Session::new(&settings);
    let st = &s.shared.references.statuses()[0];
    assert_eq!(st.state, "ready", "{st:?}");
    let fig = st.figures.as_ref().unwrap();
    assert!(
        (fig.integrated_lufs - ref_lufs).abs() < 0.05,
        "{fig:?} vs {ref_lufs}"
    );
    assert_eq!(fig.sample_rate, 44_100);

    // Mix: the output is the input, bit for bit.
    let first = 10 * RATE as usize;
    let head: Vec<Vec<f32>> = mix.iter().map(|p| p[..first].to_vec()).collect();
    let out = s.run(&head, false, false, None, false);
    assert_eq!(out, head, "Mix passes the input through");
    // Ref: the reference at the mix's integrated loudness.
    let tail: Vec<Vec<f32>> = mix.iter().map(|p| p[first..].to_vec()).collect();
    let out = s.run(&tail, true, false, None, false);
    let played = integrated(RATE, &out);
    let mix_now = s.shared.integrated.load(Ordering::Relaxed) as f64;
    eprintln!(
        "mix {mix_now:.2} LUFS (offline {mix_lufs:.2}), reference {ref_lufs:.2} LUFS, played at {played:.2} LUFS, gain {:.2} dB",
        s.shared.references.gain_db()
    );
    assert!(
        (played - mix_now).abs() <= 0.5,
        "played {played} vs mix {mix_now}"
    );
    assert!((s.shared.references.gain_db() as f64 - (mix_now - ref_lufs)).abs() < 0.05);
    // The meters kept measuring the mix, not what was played.
    assert!((mix_now - mix_lufs).abs() < 0.1, "{mix_now} vs {mix_lufs}");
    // Back to Mix: a crossfade of FADE_SECONDS (no click), then the input again, bit for bit.
    let again: Vec<Vec<f32>> = mix.iter().map(|p| p[..RATE as usize].to_vec()).collect();
    let back = s.run(&again, false, false, None, false);
    let fade = (FADE_SECONDS * RATE as f32) as usize;
    for (b, a) in back.iter().zip(&again) {
        assert_eq!(b[fade..], a[fade..], "the mix after the crossfade");
        let jump = b
            .windows(2)
            .map(|w| (w[1] - w[0]).abs())
            .fold(0f32, f32::max);
        let own = a
            .windows(2)
            .map(|w| (w[1] - w[0]).abs())
            .fold(0f32, f32::max);
        assert!(
            jump <= own + 0.05,
            "no click: steps up to {jump} against the mix's {own}"
        );
    }
}

#[test]
fn with_sync_the_reference_follows_the_timeline() {
    let dir = tempfile::tempdir().unwrap();
    let reference = programme(RATE, 2, RATE as usize * 4, 11);
    let path = dir.path().join("ref48.wav");
    write_wav(&path, RATE, &reference);
    let mut settings = ReferenceSettings::default();
    settings.paths[0] = path.display().to_string();
    let mut s = Session::new(&settings);
    let gain_of = |s: &Session| 10f32.powf(s.shared.references.gain_db() / 20.0);
    // Mix silence for a start, so the level match uses the target until the mix has a
    // loudness: the gain is then constant.
    let silence = vec![vec![0.0f32; RATE as usize]; 2];
    // Playing from timeline position 5 s (past the 4 s reference: it wraps).
    let start = 5 * RATE as i64;
    let out = s.run(&silence, true, true, Some(start), true);
    let g = gain_of(&s);
    let len = reference[0].len() as i64;
    for i in [BLOCK as i64 * 3, 10_000, 40_000] {
        let want = reference[0][((start + i) % len) as usize] * g;
        let got = out[0][i as usize];
        assert!(
            (got - want).abs() <= 1e-6 * want.abs().max(1.0),
            "frame {i}: {got} vs {want}"
        );
    }
    // The transport stopped: silence.
    let stopped = s.run(&silence, true, true, Some(start), false);
    assert!(stopped.iter().flatten().all(|v| *v == 0.0));
    // Not synced: it loops on from where it was, whatever the timeline says.
    let free = s.run(&silence, true, false, Some(0), true);
    assert!(free[0].iter().any(|v| *v != 0.0));
}

#[test]
fn bad_references_are_refused_with_their_reason_and_nothing_else_changes() {
    let dir = tempfile::tempdir().unwrap();
    let silent = dir.path().join("silent.wav");
    write_wav(&silent, RATE, &vec![vec![0.0; RATE as usize * 4]; 2]);
    let junk = dir.path().join("junk.wav");
    std::fs::write(&junk, b"RIFF....WAVEfmt nonsense").unwrap();
    let good = dir.path().join("good.wav");
    write_wav(&good, RATE, &programme(RATE, 2, RATE as usize * 3, 5));
    let settings = ReferenceSettings {
        paths: vec![
            dir.path().join("missing.wav").display().to_string(),
            silent.display().to_string(),
            junk.display().to_string(),
            good.display().to_string(),
        ],
        ..ReferenceSettings::default()
    };
    let s = Session::new(&settings);
    let st = s.shared.references.statuses();
    for (i, name) in ["missing.wav", "silent.wav", "junk.wav"].iter().enumerate() {
        assert_eq!(st[i].state, "error", "{:?}", st[i]);
        let e = st[i].error.as_deref().unwrap();
        assert!(e.contains(name), "the error names the file: {e}");
    }
    assert!(
        st[1].error.as_deref().unwrap().contains("silent"),
        "{:?}",
        st[1]
    );
    assert_eq!(st[3].state, "ready", "{:?}", st[3]);
}

#[test]
fn tonal_balance_against_a_target_band_by_band() {
    use sluice_plugin::reference::{Figures, TonalTarget};
    // Levels falling 2 dB a band, spreads from none to 3 dB: relative to their mean, the
    // tolerance never under 1 dB.
    let t = TonalTarget::from_band_levels(
        "test",
        &[0.0, -2.0, -4.0, -6.0, -8.0],
        &[0.0, 0.5, 1.5, 3.0, 1.0],
    )
    .unwrap();
    assert_eq!(t.mean_db, [4.0, 2.0, 0.0, -2.0, -4.0]);
    assert_eq!(t.tolerance_db, [1.0, 1.0, 1.5, 3.0, 1.0]);
    // A mix with the target's balance reads 0 everywhere; with 4 dB more in the low band,
    // +3.2 there and -0.8 elsewhere (the balance is relative to the bands' mean).
    let shares = |levels: [f64; 5]| -> Vec<f32> {
        let p: Vec<f64> = levels.iter().map(|l| 10f64.powf(l / 10.0)).collect();
        let sum: f64 = p.iter().sum();
        p.iter().map(|v| (100.0 * v / sum) as f32).collect()
    };
    let even = t.deltas(&shares([0.0, -2.0, -4.0, -6.0, -8.0])).unwrap();
    assert!(even.iter().all(|d| d.abs() < 1e-4), "{even:?}");
    let low = t.deltas(&shares([4.0, -2.0, -4.0, -6.0, -8.0])).unwrap();
    let want = [3.2, -0.8, -0.8, -0.8, -0.8];
    for (d, w) in low.iter().zip(want) {
        assert!((d - w).abs() < 1e-4, "{low:?}");
    }
    // Undefined shares (silence): no deltas.
    assert!(t.deltas(&[f32::NAN; 5]).is_none());
    assert!(t.deltas(&[0.0, 25.0, 25.0, 25.0, 25.0]).is_none());
    // From references: the mean of their balances, their spread as the tolerance.
    let fig = |levels: [f64; 5]| Figures {
        band_share_percent: shares(levels).iter().map(|&s| Some(s as f64)).collect(),
        ..Figures::default()
    };
    let (a, b) = (fig([0.0; 5]), fig([2.0, 0.0, 0.0, 0.0, -2.0]));
    let r = TonalTarget::from_references("two", &[&a, &b]).unwrap();
    assert!(
        (r.mean_db[0] - 1.0).abs() < 1e-4 && (r.mean_db[4] + 1.0).abs() < 1e-4,
        "{r:?}"
    );
    assert!((r.tolerance_db[0] - 1.0).abs() < 1e-4, "{r:?}");
    assert!(TonalTarget::from_references("none", &[]).is_none());
}

#[test]
fn a_profile_file_that_cannot_be_used_says_why() {
    let refs = References::default();
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("gone.json");
    let e = refs
        .load_profile(missing.to_str().unwrap())
        .unwrap_err()
        .to_string();
    assert!(e.contains("gone.json"), "{e}");
    let junk = dir.path().join("junk.json");
    std::fs::write(&junk, b"{\"name\": 3}").unwrap();
    let e = refs
        .load_profile(junk.to_str().unwrap())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("junk.json") && e.contains("not a Sluice profile"),
        "{e}"
    );
    assert_eq!(refs.profile_status().1.as_deref(), Some(e.as_str()));
    // The wrong file chosen: a 200 MB one (sparse) is refused from its size, unread; a folder
    // and a FIFO (which would block a reader) are not files.
    let big = dir.path().join("a-recording.wav");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(200_000_000)
        .unwrap();
    let t = Instant::now();
    let e = refs
        .load_profile(big.to_str().unwrap())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("a-recording.wav") && e.contains("200.0 MB"),
        "{e}"
    );
    assert!(t.elapsed() < Duration::from_millis(200), "it was read");
    let e = refs
        .load_profile(dir.path().to_str().unwrap())
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a regular file"), "{e}");
    let fifo = dir.path().join("fifo");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    if made.is_ok_and(|s| s.success()) {
        let e = refs
            .load_profile(fifo.to_str().unwrap())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("fifo") && e.contains("not a regular file"),
            "{e}"
        );
    }
    // No profile and no references: no target; cleared, no error.
    assert!(refs.tonal_target().is_none());
    refs.load_profile("").unwrap();
    assert_eq!(refs.profile_status(), (String::new(), None));
}

/// A profile made by the core from a track (as `sluice ref profile export` writes it), loaded
/// from its file: the same track played as the mix is within its tolerance in every band
/// (the plugin's live band shares against the profile's band-filter levels).
#[test]
fn a_profile_file_of_the_same_track_finds_the_mix_in_balance() {
    use sluice_core::analysis::AnalysisOptions;
    use sluice_core::analysis::compare::Profile;
    use sluice_core::analysis::signature::Signature;
    let dir = tempfile::tempdir().unwrap();
    // Broadband material (shaped noise with a beat), as music is: band edges fall inside
    // its spectrum's slopes, not on a tone (see `TonalTarget::from_profile` on tones near an
    // edge).
    let style = sluice_core::signal::Style {
        tilt_db_per_octave: -3.0,
        band_gains_db: [2.0, 0.0, -1.0, -3.0, -2.0],
        correlation: 0.6,
        pulse_depth: 0.3,
        sections_db: 3.0,
        bpm: 120.0,
    };
    let track = sluice_core::signal::styled(RATE, 20.0, &style, 8);
    let wav = dir.path().join("track.wav");
    write_wav(&wav, RATE, &track);
    let opts = AnalysisOptions {
        // What a profile is made of (the signature's sections).
        sections: sluice_core::analysis::signature::SECTIONS.to_vec(),
        targets: Vec::new(),
        ..AnalysisOptions::default()
    };
    let report = sluice_core::analysis::analyze(&wav, &opts, &mut |_| {}).unwrap();
    let sig = Signature::from_report(&report).unwrap();
    let profile = Profile::from_signatures("genre test profile", [&sig]).unwrap();
    let file = dir.path().join("test.profile.json");
    std::fs::write(&file, serde_json::to_vec_pretty(&profile).unwrap()).unwrap();

    let mut s = Session::new(&ReferenceSettings {
        profile: file.display().to_string(),
        ..ReferenceSettings::default()
    });
    assert_eq!(s.shared.references.profile_status().1, None);
    let target = s.shared.references.tonal_target().unwrap();
    assert_eq!(target.name, "genre test profile");
    s.run(&track, false, false, None, false);
    let shares: Vec<f32> = s
        .shared
        .band_share_long
        .iter()
        .map(|v| v.load(Ordering::Relaxed))
        .collect();
    let d = target.deltas(&shares).unwrap();
    eprintln!(
        "shares {shares:?}, deltas {d:?}, tolerance {:?}",
        target.tolerance_db
    );
    for (b, (d, tol)) in d.iter().zip(&target.tolerance_db).enumerate() {
        assert!(d.abs() <= *tol, "band {b}: {d:+.2} dB outside ±{tol}");
    }
}

/// A long mono WAV at 44.1 kHz: seconds to decode, measure and resample to 48 kHz.
fn long_reference(dir: &Path, minutes: usize) -> String {
    let path = dir.join("long.wav");
    let n = 44_100 * 60 * minutes;
    let tone: Vec<f32> = (0..n)
        .map(|i| 0.25 * (std::f32::consts::TAU * 441.0 * i as f32 / 44_100.0).sin())
        .collect();
    write_wav(&path, 44_100, &[tone]);
    path.display().to_string()
}

#[test]
fn closing_stops_the_loads_under_way_and_waits_for_their_threads() {
    let dir = tempfile::tempdir().unwrap();
    let long = long_reference(dir.path(), 6);
    let refs = Arc::new(References::default());
    refs.rate.store(RATE, Ordering::Relaxed);
    refs.channels.store(2, Ordering::Relaxed);
    for slot in 0..4 {
        refs.request(slot, &long);
    }
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(refs.loads_running(), 4);
    let t = Instant::now();
    assert!(refs.close(Duration::from_secs(30)), "every loader ended");
    let took = t.elapsed();
    eprintln!("closed in {:.1} ms", took.as_secs_f64() * 1e3);
    assert_eq!(refs.loads_running(), 0);
    assert!(
        took < Duration::from_secs(1),
        "closing took {took:?}: the loads ran to their end instead of stopping"
    );
    for s in refs.statuses() {
        assert_eq!(s.state, "loading", "a stopped load sets nothing: {s:?}");
    }
    // Nothing starts once closed.
    refs.request(0, &long);
    assert_eq!(refs.loads_running(), 0);
}

#[test]
fn a_later_request_for_a_slot_stops_the_load_it_replaces() {
    let dir = tempfile::tempdir().unwrap();
    let long = long_reference(dir.path(), 6);
    let short = dir.path().join("short.wav");
    write_wav(&short, RATE, &programme(RATE, 2, RATE as usize * 3, 7));
    let short = short.display().to_string();
    let refs = Arc::new(References::default());
    refs.rate.store(RATE, Ordering::Relaxed);
    refs.channels.store(2, Ordering::Relaxed);
    refs.request(0, &long);
    std::thread::sleep(Duration::from_millis(50));
    refs.request(0, &short);
    wait_loaded(&refs);
    let st = &refs.statuses()[0];
    assert_eq!((st.state, st.path.as_str()), ("ready", short.as_str()));
    // The long load stopped at its next block rather than running its seconds out.
    let t = Instant::now();
    while refs.loads_running() > 0 {
        assert!(
            t.elapsed() < Duration::from_millis(500),
            "the replaced load is still running"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(refs.close(Duration::from_secs(1)));
}

/// A WAV header for `frames` of 16-bit PCM, the file extended to its full length without
/// writing it (sparse: its samples read as zeros, and it takes no room on disk).
fn sparse_wav(path: &Path, rate: u32, channels: u16, frames: u32) {
    let block = u32::from(channels) * 2;
    let data = frames * block;
    let mut h = Vec::new();
    h.extend_from_slice(b"RIFF");
    h.extend_from_slice(&(36 + data).to_le_bytes());
    h.extend_from_slice(b"WAVEfmt ");
    h.extend_from_slice(&16u32.to_le_bytes());
    h.extend_from_slice(&1u16.to_le_bytes()); // PCM
    h.extend_from_slice(&channels.to_le_bytes());
    h.extend_from_slice(&rate.to_le_bytes());
    h.extend_from_slice(&(rate * block).to_le_bytes());
    h.extend_from_slice(&(block as u16).to_le_bytes());
    h.extend_from_slice(&16u16.to_le_bytes());
    h.extend_from_slice(b"data");
    h.extend_from_slice(&data.to_le_bytes());
    std::fs::write(path, &h).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(h.len() as u64 + u64::from(data))
        .unwrap();
}

#[test]
fn a_reference_too_big_for_memory_is_refused_from_its_header() {
    // Ten minutes of 8 channels at 192 kHz in a 192 kHz 5.1 session: 2.8 GB kept. Refused at
    // once, saying how long a reference may be there; the 15-minute limit alone let it in.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ten-minutes-7.1-192k.wav");
    sparse_wav(&path, 192_000, 8, 192_000 * 600);
    let t = Instant::now();
    let e = sluice_plugin::reference::load(&path, 192_000, 6, &|| false)
        .err()
        .expect("refused")
        .to_string();
    assert!(
        e.contains("ten-minutes-7.1-192k.wav") && e.contains("2765 MB") && e.contains("691 MB"),
        "{e}"
    );
    assert!(t.elapsed() < Duration::from_secs(1), "it was decoded first");
}

#[test]
fn a_reference_over_15_minutes_is_refused_before_it_is_decoded() {
    // A 16-minute 48 kHz stereo 16-bit WAV, sparse on disk (its samples read as zeros): its
    // header says how long it is, and that is enough to refuse it.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sixteen-minutes.wav");
    sparse_wav(&path, 48_000, 2, 48_000 * 60 * 16);
    let shown = path.display().to_string();
    let t = Instant::now();
    let e = sluice_plugin::reference::load(&path, RATE, 2, &|| false)
        .err()
        .expect("refused")
        .to_string();
    assert!(
        e.contains("sixteen-minutes.wav") && e.contains("16 minutes long"),
        "{e}"
    );
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "refused after {:?}: it was decoded first",
        t.elapsed()
    );
    // Through a slot: the reason is shown, nothing is loaded.
    let refs = Arc::new(References::default());
    refs.rate.store(RATE, Ordering::Relaxed);
    refs.channels.store(2, Ordering::Relaxed);
    refs.request(0, &shown);
    wait_loaded(&refs);
    let st = &refs.statuses()[0];
    assert_eq!(st.state, "error", "{st:?}");
    assert!(refs.close(Duration::from_secs(1)));
}
