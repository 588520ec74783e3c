//! Sluice Meter's editor in a CLAP host (`sluice_tests::clap_gui`) on X11: embedded in a parent
//! window of ours, fed a known signal, captured to a PNG under `target/editor-screenshots/`, and
//! checked against what it says it drew (the diagnostics export carries the editor's last
//! frame) and against the meters themselves.
//!
//! Needs an X display: `$DISPLAY`, or Xvfb (started here when `$DISPLAY` is unset). Without
//! either the tests are skipped with a notice, unless `SLUICE_REQUIRE_TOOLS=1` (as `.ci/run`
//! sets, after installing Xvfb), when they fail. Run `cargo xtask bundle sluice-plugin` (or
//! `./test.sh`) first.

use serde_json::Value;
use sluice_tests::bundles;
use sluice_tests::clap_gui::ClapGuiHost;
use sluice_tests::xdisplay::{self, Image, ParentWindow, XServer};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The editor tests share one display and measure the process: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn ok<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
    r.unwrap_or_else(|e| panic!("{e:#}"))
}

/// The display, or `None` (test skipped) when there is none and tools are not required.
fn display() -> Option<&'static XServer> {
    match xdisplay::server() {
        Ok(s) => Some(s),
        Err(e) => {
            assert!(
                std::env::var("SLUICE_REQUIRE_TOOLS").as_deref() != Ok("1"),
                "an X display is required (SLUICE_REQUIRE_TOOLS=1): {e:#}"
            );
            eprintln!("SKIPPED: {e:#} (SLUICE_REQUIRE_TOOLS=1 makes this fail)");
            None
        }
    }
}

fn load(rate: f64) -> ClapGuiHost {
    let path = ok(bundles::clap());
    let mut host = ok(ClapGuiHost::load(&path, bundles::CLAP_ID));
    ok(host.activate(rate, 1024));
    host
}

/// A stereo 997 Hz sine: left at `left_db`, right at `right_db` dBFS (peak), in phase.
fn sine(rate: f64, seconds: f64, left_db: f64, right_db: f64) -> Vec<Vec<f32>> {
    let n = (rate * seconds).round() as usize;
    [left_db, right_db]
        .iter()
        .map(|db| {
            let a = 10f64.powf(db / 20.0);
            (0..n)
                .map(|i| (a * (std::f64::consts::TAU * 997.0 * i as f64 / rate).sin()) as f32)
                .collect()
        })
        .collect()
}

fn f(v: &Value) -> f64 {
    v.as_f64()
        .unwrap_or_else(|| panic!("expected a number, found {v}"))
}

/// Polls the editor's diagnostics until `cond` holds for them (with the meters), or panics
/// after `timeout`, running main-thread callbacks meanwhile.
fn wait_for(
    host: &mut ClapGuiHost,
    timeout: Duration,
    what: &str,
    cond: impl Fn(&Value, &Value) -> bool,
) -> (Value, Value) {
    let deadline = Instant::now() + timeout;
    loop {
        let meters = ok(host.meters());
        let editor = meters["editor"].clone();
        if cond(&meters, &editor) {
            return (meters, editor);
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}; editor: {editor:#}"
        );
        host.pump_for(Duration::from_millis(20));
    }
}

/// Waits until the editor drew a frame showing the meters' current step, drawn after `after`
/// frames.
fn wait_for_frame_of_now(host: &mut ClapGuiHost, after: u64) -> (Value, Value) {
    wait_for(
        host,
        Duration::from_secs(10),
        "a frame showing the current meters",
        |m, e| {
            e["frames"].as_u64().unwrap_or(0) > after + 1
                && e["last"]["values"]["steps"] == m["steps"]
        },
    )
}

/// Captures the editor once the frame the diagnostics describe is on screen: what a frame
/// draws reaches the window when that frame is painted and swapped, after it was published, so
/// wait for two more frames first.
fn capture(host: &mut ClapGuiHost, parent: &ParentWindow, child: u32, name: &str) -> Image {
    let now = ok(host.meters())["editor"]["frames"].as_u64().unwrap_or(0);
    wait_for(host, Duration::from_secs(10), "two more frames", |_, e| {
        e["frames"].as_u64().unwrap_or(0) >= now + 2
    });
    let img = ok(parent.capture(child));
    let path = xdisplay::screenshot_path(name);
    ok(img.write_png(&path));
    eprintln!("screenshot: {}", path.display());
    img
}

fn changed_pixels(a: &Image, b: &Image) -> usize {
    assert_eq!((a.width, a.height), (b.width, b.height));
    a.rgb
        .chunks_exact(3)
        .zip(b.rgb.chunks_exact(3))
        .filter(|(x, y)| x != y)
        .count()
}

/// Pixels of the over-ceiling light's red (view.rs `BAD`).
const RED: [u8; 3] = [0xe5, 0x48, 0x3f];

#[test]
fn the_editor_opens_embedded_and_draws_the_meters_of_a_known_signal() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let Some(x) = display() else { return };
    let rate = 48_000.0;
    let parent = ok(ParentWindow::new(&x.display, 1100, 760));
    let mut host = load(rate);
    assert!(host.supports_x11(), "embedded X11 editor offered");

    let size = ok(host.open_editor(parent.id, None));
    assert_eq!(size, (920, 580), "default size at scale 1");
    let child = ok(parent.wait_for_child(Duration::from_secs(10)));
    // The XEmbed fix: version 0, flags without XEMBED_MAPPED, set before the host gets the
    // window back (so already there now).
    assert_eq!(
        ok(parent.xembed_info(child)),
        Some(vec![0, 0]),
        "_XEMBED_INFO on the editor's window"
    );
    let (_, e) = wait_for(
        &mut host,
        Duration::from_secs(10),
        "the first frame",
        |_, e| e["frames"].as_u64().unwrap_or(0) > 0,
    );
    assert_eq!(e["open"], true);
    assert_eq!(e["opens"], 1);
    assert!(ok(parent.is_viewable(child)), "the editor is mapped");
    assert_eq!(ok(parent.size_of(child)), (920, 580));
    let last = &e["last"];
    assert_eq!(last["texts"]["integrated"], "--", "nothing measured yet");
    assert_eq!(last["texts"]["target"], "Spotify / YouTube (-14 LUFS)");
    let empty = capture(
        &mut host,
        &parent,
        child,
        "sluice-meter-editor-clap-empty.png",
    );
    assert!(
        empty.distinct_colours() >= 16 && empty.non_background_share() > 0.05,
        "the empty editor is drawn (layout, scales, labels): {} colours, {:.1} % non-background",
        empty.distinct_colours(),
        100.0 * empty.non_background_share()
    );

    // 12 s of a stereo sine, left -18 dBFS, right -24 dBFS, in phase.
    let (l_db, r_db) = (-18.0, -24.0);
    let cost = ok(host.process(&sine(rate, 12.0, l_db, r_db), 512, false));
    assert_eq!(
        cost.mismatched_samples, 0,
        "pass-through with the editor open"
    );
    let frames_before = e["frames"].as_u64().unwrap_or(0);
    let (m, e) = wait_for_frame_of_now(&mut host, frames_before);
    let d = &e["last"]["values"];
    let t = &e["last"]["texts"];

    // What the editor drew is what the meters say ...
    for key in [
        "integrated_lufs",
        "momentary_lufs",
        "short_term_lufs",
        "max_momentary_lufs",
        "max_short_term_lufs",
        "loudness_range_lu",
        "true_peak_dbtp",
        "true_peak_channel_dbtp",
        "plr_lu",
        "correlation",
        "distance_lu",
        "target_lufs",
        "band_share_percent",
    ] {
        assert_eq!(d[key], m[key], "{key}: drawn vs meters");
    }
    assert_eq!(d["over_ceiling_light"], m["over_ceiling"]);
    // ... and what the meters say is right for this signal.
    let a = |db: f64| 10f64.powf(db / 10.0);
    let expected_i = 10.0 * ((a(l_db) + a(r_db)) / 2.0).log10();
    let i = f(&d["integrated_lufs"]);
    assert!(
        (i - expected_i).abs() < 0.1,
        "integrated {i} vs {expected_i}"
    );
    assert_eq!(t["integrated"], format!("{i:.1}"), "the big number");
    let tp = d["true_peak_channel_dbtp"].as_array().expect("per channel");
    assert_eq!(tp.len(), 2);
    assert!((f(&tp[0]) - l_db).abs() < 0.2, "left true peak {}", tp[0]);
    assert!((f(&tp[1]) - r_db).abs() < 0.2, "right true peak {}", tp[1]);
    assert_eq!(
        t["true_peak_channels"],
        serde_json::json!(["-18.0", "-24.0"])
    );
    assert!(
        (f(&d["plr_lu"]) - (l_db - expected_i)).abs() < 0.2,
        "PLR {}",
        d["plr_lu"]
    );
    assert!(
        f(&d["loudness_range_lu"]) < 0.5,
        "steady sine: LRA {}",
        d["loudness_range_lu"]
    );
    assert_eq!(t["correlation"], "+1.00", "in phase");
    assert_eq!(f(&d["target_lufs"]), -14.0);
    assert!((f(&d["distance_lu"]) - (expected_i + 14.0)).abs() < 0.1);
    assert_eq!(
        t["distance"],
        format!("{:+.1} LU from -14.0 LUFS", f(&d["distance_lu"]))
    );
    assert_eq!(d["over_ceiling_light"], false);
    let shares: Vec<f64> = d["band_share_percent"]
        .as_array()
        .expect("shares")
        .iter()
        .map(f)
        .collect();
    assert_eq!(shares.len(), 5);
    assert!(shares[2] > 95.0, "997 Hz is in the mid band: {shares:?}");
    assert_eq!(d["history_points"], 120, "12 s of history at 10 steps/s");
    assert!(
        d["spectrum_points"].as_u64().unwrap_or(0) >= 200,
        "spectrum drawn: {}",
        d["spectrum_points"]
    );
    assert_eq!(t["record"]["state"], "not armed");
    assert_eq!(t["record"]["time"], "0:00.0");
    assert_eq!(t["record"]["overruns"], 0);
    assert_eq!(e["last"]["logical_size"], serde_json::json!([920.0, 580.0]));

    let shot = capture(&mut host, &parent, child, "sluice-meter-editor-clap.png");
    assert_eq!((shot.width, shot.height), (920, 580));
    assert!(
        shot.distinct_colours() >= 64 && shot.non_background_share() > 0.15,
        "the picture is not blank: {} colours, {:.1} % non-background",
        shot.distinct_colours(),
        100.0 * shot.non_background_share()
    );
    let moved = changed_pixels(&empty, &shot);
    assert!(
        moved > 920 * 580 / 50,
        "the meters moved on screen: {moved} pixels changed"
    );
    let red_before = shot.count_near(RED, 8, (0, 0, 320, 580));

    // A peak above the -1 dBTP ceiling on the left: the over light goes on.
    let cost = ok(host.process(&sine(rate, 0.5, -0.3, -24.0), 512, false));
    assert_eq!(cost.mismatched_samples, 0);
    let frames_before = e["frames"].as_u64().unwrap_or(0);
    let (m, e) = wait_for_frame_of_now(&mut host, frames_before);
    let d = &e["last"]["values"];
    assert_eq!(m["over_ceiling"], true);
    assert_eq!(d["over_ceiling_light"], true, "the over-ceiling light");
    assert!(f(&d["true_peak_dbtp"]) > -1.0);
    let over = capture(
        &mut host,
        &parent,
        child,
        "sluice-meter-editor-clap-over.png",
    );
    let red_after = over.count_near(RED, 8, (0, 0, 320, 580));
    assert!(
        red_after > red_before + 100,
        "the light and the over-ceiling peak are red on screen: {red_before} -> {red_after} pixels"
    );

    // Resizable, with a minimum size.
    let (can, adjusted) = host.editor_adjust((300, 200));
    assert!(can, "the editor is resizable");
    assert_eq!(
        adjusted,
        Some((720, 460)),
        "adjusted up to the minimum size"
    );
    ok(host.set_editor_size((1000, 640)));
    let (_, e) = wait_for(
        &mut host,
        Duration::from_secs(10),
        "a frame at the new size",
        |_, e| e["last"]["logical_size"] == serde_json::json!([1000.0, 640.0]),
    );
    assert_eq!(e["open"], true);
    assert_eq!(host.editor_size(), Some((1000, 640)));
    let big = capture(
        &mut host,
        &parent,
        child,
        "sluice-meter-editor-clap-resized.png",
    );
    assert_eq!((big.width, big.height), (1000, 640));
    assert!(big.non_background_share() > 0.15);

    host.close_editor();
    let (_, e) = wait_for(
        &mut host,
        Duration::from_secs(10),
        "the editor to close",
        |_, e| e["open"] == false,
    );
    assert_eq!(e["closes"], 1);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ok(parent.children()).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the editor window is gone after destroy"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(0, |d| d.count())
}

fn fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

/// Bytes in use on the C heap (glibc `mallinfo2`: small chunks plus mmapped ones), which both
/// this process and the plugin (and its GL driver) allocate from. Unlike RSS it does not grow
/// when freed memory stays in per-thread arenas (each editor window has its own thread).
fn heap_in_use() -> usize {
    // SAFETY: mallinfo2 only reads the allocator's statistics.
    let m = unsafe { libc::mallinfo2() };
    m.uordblks + m.hblkhd
}

fn rss_kib() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    pages * 4
}

#[test]
fn opening_and_closing_the_editor_many_times_leaks_nothing_and_never_disturbs_audio() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let Some(x) = display() else { return };
    let rate = 44_100.0;
    let parent = ok(ParentWindow::new(&x.display, 1000, 700));
    let mut host = load(rate);
    let audio = sine(rate, 0.25, -12.0, -12.0);
    let cycle = |host: &mut ClapGuiHost, n: u64| {
        ok(host.open_editor(parent.id, None));
        // Audio while it opens and draws: untouched, bit for bit.
        let cost = ok(host.process(&audio, 256, false));
        assert_eq!(
            cost.mismatched_samples, 0,
            "cycle {n}: pass-through while open"
        );
        wait_for(
            host,
            Duration::from_secs(10),
            "a frame of this opening",
            |_, e| e["opens"] == n && e["frames"].as_u64().unwrap_or(0) >= n,
        );
        host.close_editor();
        let cost = ok(host.process(&audio, 256, false));
        assert_eq!(
            cost.mismatched_samples, 0,
            "cycle {n}: pass-through after closing"
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while !ok(parent.children()).is_empty() {
            assert!(
                Instant::now() < deadline,
                "cycle {n}: window gone after destroy"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    // Warm up: the GL driver and X connections settle on the first openings.
    const WARM: u64 = 5;
    const CYCLES: u64 = 40;
    for n in 1..=WARM {
        cycle(&mut host, n);
    }
    let (threads0, fds0, heap0, rss0) = (threads(), fds(), heap_in_use(), rss_kib());
    for n in WARM + 1..=WARM + CYCLES {
        cycle(&mut host, n);
    }
    // Threads end asynchronously after the window closes: give them a moment.
    let deadline = Instant::now() + Duration::from_secs(5);
    while threads() > threads0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let (threads1, fds1, heap1, rss1) = (threads(), fds(), heap_in_use(), rss_kib());
    let e = ok(host.meters())["editor"].clone();
    eprintln!(
        "{CYCLES} open/close cycles: threads {threads0} -> {threads1}, file descriptors \
         {fds0} -> {fds1}, heap in use {} -> {} KiB ({:+.1} KiB per cycle), RSS {rss0} -> \
         {rss1} KiB",
        heap0 / 1024,
        heap1 / 1024,
        (heap1 as f64 - heap0 as f64) / 1024.0 / CYCLES as f64
    );
    assert_eq!(e["opens"], WARM + CYCLES);
    assert_eq!(e["closes"], WARM + CYCLES);
    assert_eq!(e["open"], false);
    assert!(threads1 <= threads0, "threads {threads0} -> {threads1}");
    assert!(
        fds1 <= fds0,
        "file descriptors (X connections) {fds0} -> {fds1}"
    );
    // baseview 0.4.2 never frees each window's XKB keymap (XkbcommonState unrefs the state but
    // not the keymap it created: ~60 KiB per window on Xvfb's default keymap, heaptrack shows it
    // under libxkbcommon-x11). That is all that grows here; anything of ours (an egui context,
    // its font atlas, a GL context: megabytes per window) would exceed this bound many times.
    const KNOWN_PER_WINDOW: usize = 160 * 1024;
    assert!(
        heap1 < heap0 + CYCLES as usize * KNOWN_PER_WINDOW,
        "the heap grew by {} KiB over {CYCLES} cycles",
        heap1.saturating_sub(heap0) / 1024
    );
    let instances = ok(host.diagnostics());
    assert_eq!(
        instances.as_array().map_or(0, |a| a
            .iter()
            .filter(|i| i["meters"]["sample_rate"] == rate)
            .count()),
        1
    );
}

#[test]
fn the_editor_follows_the_hosts_scale_factor() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let Some(x) = display() else { return };
    let parent = ok(ParentWindow::new(&x.display, 2000, 1300));
    let mut host = load(32_000.0);
    // A host on a 2x display says so with set_scale; sizes are then physical pixels.
    let size = ok(host.open_editor(parent.id, Some(2.0)));
    let child = ok(parent.wait_for_child(Duration::from_secs(10)));
    let (_, e) = wait_for(
        &mut host,
        Duration::from_secs(10),
        "a frame at scale 2",
        |_, e| e["last"]["pixels_per_point"].as_f64() == Some(2.0),
    );
    assert_eq!(size, (1840, 1160), "920x580 logical at 2x");
    assert_eq!(ok(parent.size_of(child)), (1840, 1160));
    assert_eq!(
        e["last"]["logical_size"],
        serde_json::json!([920.0, 580.0]),
        "the same layout, twice the pixels"
    );
    let shot = capture(
        &mut host,
        &parent,
        child,
        "sluice-meter-editor-clap-scale2.png",
    );
    assert_eq!((shot.width, shot.height), (1840, 1160));
    assert!(shot.non_background_share() > 0.15);
    host.close_editor();
}
