//! A watchdog for an editor window that stops drawing.
//!
//! baseview 0.4.2 paces its frames with the X Present extension: it asks the server for a
//! `PresentCompleteNotify` (`PresentNotifyMSC`, serial 0, 1, 2, … per window), draws when the
//! notification with the serial it waits for arrives, and only then may ask for the next. Every
//! redraw request (egui's repaint timer, Expose, a resize) goes through that gate, and there is
//! no timer that falls back to drawing without it. Two ways to stop drawing for good follow:
//!
//! - the notification never arrives (the request or its event lost, e.g. while a host
//!   reparents or remaps the window): baseview sends nothing more while it waits;
//! - it arrives with a media-stream counter not above the last one's (the window's counter
//!   restarted, e.g. moved to another CRTC or to the server's fake one): baseview takes it as
//!   answered but does not draw, and nobody asks again, because egui only asks for the next
//!   repaint at the end of a frame.
//!
//! Both fit the editor seen in Ardour that opened at its size and never drew (docs/PLUGIN.md).
//! The watchdog, one thread per open window polling every [`POLL`], looks for a window that
//! is open and viewable but has drawn nothing for [`STALL`], and then does both things that
//! reopen the gate from outside baseview:
//!
//! 1. asks egui for a repaint (which reaches baseview's waker: a new `PresentNotifyMSC` is sent
//!    when the last one was answered);
//! 2. asks the X server, on a connection of its own, for `PresentCompleteNotify` events on the
//!    window with the serials baseview can be waiting for (the frames it has drawn in this
//!    window, and the next [`SERIALS`]): the server sends completion events to every client that
//!    selected them on the window, so baseview receives the one it waits for and draws;
//!    the others it ignores (a serial it has not sent, or one already answered).
//!
//! It repeats that every [`STALL`] while the window stays stalled and counts stalls and the
//! ones that ended with a frame ([`super::drawn::Drawn::stalls`]), which the diagnostics show.
//! It ends within [`POLL`] of the window closing, and registers itself with the window threads
//! the instance waits for before it is destroyed.

use crate::shared::MeterShared;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use x11rb::connection::Connection;
use x11rb::protocol::present::ConnectionExt as _;
use x11rb::protocol::xproto::{ConnectionExt as _, MapState};
use x11rb::xcb_ffi::XCBConnection;

/// How often the watchdog looks.
pub const POLL: Duration = Duration::from_millis(100);
/// How long an open, viewable window may go without a frame before the watchdog acts (the
/// editor asks for a frame every 33 ms; a software renderer on a loaded machine takes ≤ 0.2 s).
pub const STALL: Duration = Duration::from_millis(1000);
/// Serials past the frames drawn that the watchdog completes (baseview's serial runs ahead of
/// the frames by one per notification that did not lead to a frame).
pub const SERIALS: u32 = 64;
/// Serials below the frames drawn that it completes too.
const BELOW: u32 = 8;

/// Starts the watchdog of the window `window` (an X11 window id), whose egui context is
/// `ctx`, for the opening that ends when [`super::drawn::Drawn::closes`] passes `closes_now`.
///
/// `SLUICE_EDITOR_WATCHDOG=0` in the environment leaves it out (to see what happens without it).
pub fn start(ctx: egui::Context, shared: Arc<MeterShared>, window: u32, closes_now: u64) {
    if std::env::var_os("SLUICE_EDITOR_WATCHDOG").is_some_and(|v| v == "0") {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("sluice-editor-watchdog".into())
        .spawn(move || {
            shared.editor.window_thread_started();
            run(&ctx, &shared, window, closes_now);
        });
    if let Err(e) = spawned {
        nice_plug::nice_warn!("no editor watchdog: {e}");
    }
}

fn run(ctx: &egui::Context, shared: &MeterShared, window: u32, closes_now: u64) {
    let drawn = &shared.editor;
    let mut conn: Option<XCBConnection> = None;
    let mut last_frames = drawn.frames.load(Ordering::Relaxed);
    let mut last_change = Instant::now();
    let mut last_action: Option<Instant> = None;
    let mut stalled = false;
    loop {
        std::thread::sleep(POLL);
        if drawn.closes.load(Ordering::Relaxed) > closes_now {
            return;
        }
        let frames = drawn.frames.load(Ordering::Relaxed);
        if frames != last_frames {
            last_frames = frames;
            last_change = Instant::now();
            if stalled {
                stalled = false;
                drawn.stalls_mended.fetch_add(1, Ordering::Relaxed);
            }
            continue;
        }
        if last_change.elapsed() < STALL || last_action.is_some_and(|t| t.elapsed() < STALL) {
            continue;
        }
        if conn.is_none() {
            match XCBConnection::connect(None) {
                Ok((c, _)) => conn = Some(c),
                Err(e) => {
                    nice_plug::nice_warn!("editor watchdog: cannot reach the X server: {e}");
                    return;
                }
            }
        }
        let Some(c) = conn.as_ref() else { return };
        match viewable(c, window) {
            Ok(true) => {}
            // Hidden by the host: not drawing is right.
            Ok(false) => continue,
            // The window is gone: so is this opening.
            Err(_) => return,
        }
        if !stalled {
            stalled = true;
            drawn.stalls.fetch_add(1, Ordering::Relaxed);
            nice_plug::nice_warn!(
                "editor window {window:#x} drew nothing for {:.1} s: asking it to draw",
                last_change.elapsed().as_secs_f64()
            );
        }
        last_action = Some(Instant::now());
        ctx.request_repaint();
        // A few below the frames drawn too, in case a frame was drawn without a notification.
        let first = (ctx.cumulative_frame_nr() as u32).saturating_sub(BELOW);
        if let Err(e) = complete_notifies(c, window, first) {
            nice_plug::nice_warn!("editor watchdog: {e}");
        }
    }
}

fn viewable(c: &XCBConnection, window: u32) -> Result<bool, Box<dyn std::error::Error>> {
    let a = c.get_window_attributes(window)?.reply()?;
    Ok(a.map_state == MapState::VIEWABLE)
}

/// Asks for a `PresentCompleteNotify` on `window` for each serial from `first` on, at the next
/// media-stream count.
fn complete_notifies(
    c: &XCBConnection,
    window: u32,
    first: u32,
) -> Result<(), Box<dyn std::error::Error>> {
    for serial in 0..SERIALS {
        c.present_notify_msc(window, first.wrapping_add(serial), 0, 0, 0)?;
    }
    c.flush()?;
    Ok(())
}
