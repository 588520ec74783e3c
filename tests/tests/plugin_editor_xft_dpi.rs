//! Sluice Meter's editor on a HiDPI X11 desktop: the X resource `Xft.dpi` = 192, which a 2x
//! desktop sets and from which baseview takes a system scale of 2. The editor must tell the
//! host its size at that scale before its window exists (hosts size their window from it), so
//! it opens at 1840x1160 pixels, the same 920x580-point layout.
//!
//! A test binary of its own: the plugin reads `Xft.dpi` once per process, and the resource is
//! set on an Xvfb these tests start (never on a `$DISPLAY` of the user's). Needs Xvfb, like
//! `plugin_editor.rs`; run `cargo xtask bundle sluice-plugin` (or `./test.sh`) first.

use sluice_tests::bundles;
use sluice_tests::clap_gui::ClapGuiHost;
use sluice_tests::xdisplay::{self, ParentWindow};
use std::time::{Duration, Instant};
use x11rb::connection::Connection as _;
use x11rb::protocol::xproto::{AtomEnum, PropMode};
use x11rb::wrapper::ConnectionExt as _;

fn ok<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
    r.unwrap_or_else(|e| panic!("{e:#}"))
}

#[test]
fn on_a_2x_desktop_the_editor_opens_at_twice_the_pixels_with_the_same_layout() {
    let x = match xdisplay::server() {
        Ok(s) => s,
        Err(e) => {
            assert!(
                std::env::var("SLUICE_REQUIRE_TOOLS").as_deref() != Ok("1"),
                "an X display is required (SLUICE_REQUIRE_TOOLS=1): {e:#}"
            );
            eprintln!("SKIPPED: {e:#} (SLUICE_REQUIRE_TOOLS=1 makes this fail)");
            return;
        }
    };
    if !x.is_own() {
        eprintln!("SKIPPED: $DISPLAY is set; this test changes X resources only on its own Xvfb");
        return;
    }
    // What `xrdb -merge` with "Xft.dpi: 192" leaves on the root window.
    let parent = ok(ParentWindow::new(&x.display, 2000, 1300));
    ok(parent
        .conn
        .change_property8(
            PropMode::REPLACE,
            parent.root,
            AtomEnum::RESOURCE_MANAGER,
            AtomEnum::STRING,
            b"Xft.dpi:\t192\n",
        )
        .map_err(anyhow::Error::from)
        .and_then(|c| c.check().map_err(anyhow::Error::from)));
    ok(parent.conn.flush());

    let rate = 48_000.0;
    let mut host = ok(ClapGuiHost::load(&ok(bundles::clap()), bundles::CLAP_ID));
    ok(host.activate(rate, 1024));
    // No scale from the host: the system's is the one that counts.
    let size = ok(host.open_editor(parent.id, None));
    assert_eq!(size, (1840, 1160), "the size told before the window exists");
    let child = ok(parent.wait_for_child(Duration::from_secs(10)));
    let deadline = Instant::now() + Duration::from_secs(10);
    let editor = loop {
        let e = ok(host.meters())["editor"].clone();
        if e["frames"].as_u64().unwrap_or(0) > 0 {
            break e;
        }
        assert!(Instant::now() < deadline, "no frame drawn: {e:#}");
        host.pump_for(Duration::from_millis(20));
    };
    assert_eq!(ok(parent.size_of(child)), (1840, 1160), "the window");
    assert_eq!(editor["last"]["pixels_per_point"], 2.0);
    assert_eq!(
        editor["last"]["logical_size"],
        serde_json::json!([920.0, 580.0]),
        "the same layout"
    );
    assert_eq!(
        host.editor_size(),
        Some((1840, 1160)),
        "and still after opening"
    );
    host.close_editor();
}
