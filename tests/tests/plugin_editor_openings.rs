//! Every opening of Sluice Meter's editor draws: 100 openings in the CLAP test host and 100 in
//! the VST3 test host, each closed again, and each must have drawn within [`BOUND`] of the host
//! asking for it (the editor's own count of the frames of each opening and the time to its
//! first frame, from the diagnostics export). In Ardour an editor once opened at its size and
//! never drew (docs/PLUGIN.md, "An editor that never draws"); the editor's watchdog
//! (`plugin/src/editor/watchdog.rs`) mends a window that stops drawing, and counts it: the
//! counts are printed, and an opening that needed it still has to draw within the bound.
//!
//! Needs an X display (see `plugin_editor.rs`) and the debug bundles (`./test.sh` makes them).

use serde_json::Value;
use sluice_tests::bundles;
use sluice_tests::clap_gui::ClapGuiHost;
use sluice_tests::vst3_host::Vst3Host;
use sluice_tests::xdisplay::{self, ParentWindow, XServer};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Openings per host.
const OPENINGS: u64 = 100;
/// How soon after the host asks for it an opening must have drawn its first frame.
const BOUND: Duration = Duration::from_secs(5);

/// One display, and the timings: one test at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn ok<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
    r.unwrap_or_else(|e| panic!("{e:#}"))
}

fn display() -> Option<&'static XServer> {
    xdisplay::display_or_skip()
}

/// What a host has to offer this test.
trait Host {
    fn open(&mut self, parent: u32);
    fn close(&mut self);
    /// The editor's part of this instance's diagnostics.
    fn editor(&mut self) -> Value;
    /// Lets the host run its main-thread work for a moment.
    fn idle(&mut self);
}

impl Host for ClapGuiHost {
    fn open(&mut self, parent: u32) {
        ok(self.open_editor(parent, None));
    }
    fn close(&mut self) {
        self.close_editor();
    }
    fn editor(&mut self) -> Value {
        ok(self.meters())["editor"].clone()
    }
    fn idle(&mut self) {
        self.pump_for(Duration::from_millis(10));
    }
}

struct Vst3 {
    host: Vst3Host,
    rate: f64,
}

impl Host for Vst3 {
    fn open(&mut self, parent: u32) {
        ok(self.host.open_editor(parent));
    }
    fn close(&mut self) {
        self.host.close_editor();
    }
    fn editor(&mut self) -> Value {
        let all = self
            .host
            .diagnostics()
            .expect("the bundle exports diagnostics");
        let mine: Vec<&Value> = all
            .as_array()
            .expect("an array of instances")
            .iter()
            .filter(|i| i["meters"]["sample_rate"].as_f64() == Some(self.rate))
            .collect();
        assert_eq!(mine.len(), 1, "one instance at {} Hz: {all:#}", self.rate);
        mine[0]["meters"]["editor"].clone()
    }
    fn idle(&mut self) {
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn ms(v: &Value) -> f64 {
    v.as_f64()
        .unwrap_or_else(|| panic!("expected a number, found {v}"))
}

/// Opens and closes the editor [`OPENINGS`] times; every opening must draw within [`BOUND`].
fn every_opening_draws(name: &str, host: &mut dyn Host, x: &XServer) {
    let parent = ok(ParentWindow::new(&x.display, 1000, 700));
    let base = host.editor();
    let opens0 = base["opens"].as_u64().unwrap_or(0);
    let mut first_frames = Vec::new();
    let started = Instant::now();
    for n in 1..=OPENINGS {
        let asked = Instant::now();
        host.open(parent.id);
        let e = loop {
            let e = host.editor();
            if e["opens"].as_u64() == Some(opens0 + n)
                && e["frames_this_opening"].as_u64().unwrap_or(0) >= 1
            {
                break e;
            }
            assert!(
                asked.elapsed() < BOUND,
                "{name}: opening {n} drew nothing in {BOUND:?}; editor: {e:#}"
            );
            host.idle();
        };
        let first = ms(&e["first_frame_ms"]);
        assert!(
            first <= BOUND.as_secs_f64() * 1000.0,
            "{name}: opening {n}'s first frame came {first} ms after it began"
        );
        first_frames.push(first);
        host.close();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !ok(parent.children()).is_empty() {
            assert!(
                Instant::now() < deadline,
                "{name}: opening {n}'s window still there 10 s after closing"
            );
            host.idle();
        }
    }
    let e = host.editor();
    first_frames.sort_by(f64::total_cmp);
    eprintln!(
        "{name}: {OPENINGS} openings in {:.1} s, first frame after {:.0} ms (median), {:.0} ms \
         (90th percentile), {:.0} ms (slowest); stalls mended by the watchdog {} of {}, \
         openings closed without a frame {}",
        started.elapsed().as_secs_f64(),
        first_frames[first_frames.len() / 2],
        first_frames[first_frames.len() * 9 / 10],
        first_frames[first_frames.len() - 1],
        e["stalls_mended"],
        e["stalls"],
        e["undrawn_opens"],
    );
    assert_eq!(e["opens"].as_u64(), Some(opens0 + OPENINGS));
    assert_eq!(e["closes"].as_u64(), Some(opens0 + OPENINGS));
    assert_eq!(e["undrawn_opens"], base["undrawn_opens"], "{name}: {e:#}");
    assert_eq!(
        e["stalls"], e["stalls_mended"],
        "{name}: every stall mended"
    );
}

#[test]
fn every_opening_draws_in_the_clap_host() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let Some(x) = display() else { return };
    let path = ok(bundles::clap());
    let mut host = ok(ClapGuiHost::load(&path, bundles::CLAP_ID));
    ok(host.activate(37_800.0, 1024));
    every_opening_draws("CLAP", &mut host, x);
}

#[test]
fn every_opening_draws_in_the_vst3_host() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let Some(x) = display() else { return };
    let rate = 37_800.0;
    let mut host = ok(Vst3Host::load(&ok(bundles::vst3()), bundles::VST3_CLASS_ID));
    ok(host.activate(rate, 1024));
    let mut vst3 = Vst3 { host, rate };
    every_opening_draws("VST3", &mut vst3, x);
}

/// Waits for the editor to draw a few frames after now; returns whether it did within
/// [`BOUND`].
fn draws_again(host: &mut dyn Host) -> bool {
    let f0 = host.editor()["frames"].as_u64().unwrap_or(0);
    let t = Instant::now();
    while t.elapsed() < BOUND {
        if host.editor()["frames"].as_u64().unwrap_or(0) > f0 + 2 {
            return true;
        }
        host.idle();
    }
    false
}

/// What a host does to its plugin window: hides and shows it, moves it off the screen and back
/// (a window's Present counter comes from its CRTC, or a fake one off the screen). After each,
/// the editor must draw again.
#[test]
fn a_window_hidden_shown_and_moved_keeps_drawing() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let Some(x) = display() else { return };
    let path = ok(bundles::clap());
    let mut host = ok(ClapGuiHost::load(&path, bundles::CLAP_ID));
    ok(host.activate(36_100.0, 1024));
    let parent = ok(ParentWindow::new(&x.display, 1000, 700));
    host.open(parent.id);
    let mut stuck = Vec::new();
    for round in 0..40u32 {
        match round % 4 {
            0 => {
                ok(parent.set_mapped(false));
                std::thread::sleep(Duration::from_millis(30 + (round as u64 * 7) % 50));
                ok(parent.set_mapped(true));
            }
            1 => ok(parent.move_to(5000, 5000)),
            2 => ok(parent.move_to(0, 0)),
            _ => {
                ok(parent.move_to(-900, 0));
                std::thread::sleep(Duration::from_millis(20));
                ok(parent.move_to(0, 0));
            }
        }
        if !draws_again(&mut host) {
            stuck.push(round);
        }
    }
    let e = host.editor();
    host.close();
    assert!(
        stuck.is_empty(),
        "no frame within {BOUND:?} after rounds {stuck:?}: {e:#}"
    );
    assert_eq!(e["stalls"], e["stalls_mended"], "every stall mended: {e:#}");
}

/// A host that opens the editor into a parent that is not shown yet (or off the screen) and
/// shows it later: the editor draws once it is shown.
#[test]
fn an_editor_opened_in_a_hidden_parent_draws_once_shown() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let Some(x) = display() else { return };
    let path = ok(bundles::clap());
    let mut host = ok(ClapGuiHost::load(&path, bundles::CLAP_ID));
    ok(host.activate(35_100.0, 1024));
    let parent = ok(ParentWindow::new(&x.display, 1000, 700));
    let mut stuck = Vec::new();
    for round in 0..20u64 {
        ok(parent.set_mapped(false));
        if round % 2 == 1 {
            ok(parent.move_to(4000, 0));
        }
        host.open(parent.id);
        std::thread::sleep(Duration::from_millis(50 + round * 20));
        ok(parent.set_mapped(true));
        ok(parent.move_to(0, 0));
        if !draws_again(&mut host) {
            stuck.push(round);
        }
        host.close();
    }
    let e = host.editor();
    assert!(
        stuck.is_empty(),
        "no frame within {BOUND:?} after rounds {stuck:?}: {e:#}"
    );
    assert_eq!(e["undrawn_opens"], 0, "{e:#}");
    assert_eq!(e["stalls"], e["stalls_mended"], "every stall mended: {e:#}");
}
