//! `_XEMBED_INFO` on the editor's X11 window.
//!
//! baseview (0.4.2) creates the editor's window without the XEmbed properties. Hosts that embed
//! through XEmbed read `_XEMBED_INFO` from the new child of their parent window; the VST3 SDK's
//! own editor host (`editorhost`, `platform/linux/window.cpp`) exits when the property is
//! missing, or when its flags already say `XEMBED_MAPPED`. So the editor sets it as soon as its
//! window exists, in the app's `build` (on baseview's window thread, before `spawn` returns to
//! the host), on baseview's own XCB connection so it is ordered with the window's creation:
//! version 0, flags 0 (the embedder maps the window).

use raw_window_handle::{HasDisplayHandle, HasWindowHandle, RawDisplayHandle, RawWindowHandle};
use std::sync::Once;
use x11rb::connection::Connection;
use x11rb::protocol::xproto::{ConnectionExt as _, PropMode};
use x11rb::wrapper::ConnectionExt as _;
use x11rb::xcb_ffi::XCBConnection;

/// XEmbed protocol version the window announces.
pub const XEMBED_VERSION: u32 = 0;
/// `XEMBED_MAPPED`: must not be set (the embedder maps the window).
pub const XEMBED_MAPPED: u32 = 1;

/// Makes sure the atoms `_XEMBED_INFO` and `_XEMBED` exist on the display in `$DISPLAY`, once
/// per process. The SDK's editorhost looks `_XEMBED_INFO` up with `only_if_exists` when it
/// creates its window, which is before it attaches ours: on a fresh X server (Xvfb) nobody has
/// interned it yet and the host gives up. It asks for the editor's size just before, so the
/// editor calls this from `Editor::size`. Failures (no display) are ignored: then there is no
/// X11 host to embed in either.
pub fn intern_atoms_once() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("DISPLAY").is_none_or(|d| d.is_empty()) {
            return;
        }
        if let Ok((conn, _)) = XCBConnection::connect(None) {
            for name in [&b"_XEMBED_INFO"[..], b"_XEMBED"] {
                if let Ok(c) = conn.intern_atom(false, name) {
                    let _ = c.reply();
                }
            }
        }
    });
}

/// Why `_XEMBED_INFO` could not be set.
#[derive(Debug, thiserror::Error)]
pub enum XembedError {
    #[error("no window handle: {0}")]
    Handle(String),
    #[error("Xlib window id {0:#x} out of range")]
    WindowId(std::ffi::c_ulong),
    #[error("not an X11 window: {0}")]
    NotX11(String),
    #[error("cannot reach the X server: {0}")]
    Connect(String),
    #[error("window {window:#x}: {message}")]
    Property { window: u32, message: String },
}

/// Sets `_XEMBED_INFO` = `[XEMBED_VERSION, 0]` on the window `w` (of display `d`), and makes
/// sure the `_XEMBED` atom exists.
pub fn set_xembed_info(
    w: &impl HasWindowHandle,
    d: &impl HasDisplayHandle,
) -> Result<(), XembedError> {
    let handle = |e: raw_window_handle::HandleError| XembedError::Handle(e.to_string());
    let window = window_id(w)?;
    let raw = match d.display_handle().map_err(handle)?.as_raw() {
        RawDisplayHandle::Xcb(h) => h.connection,
        _ => None,
    };
    let conn = match raw {
        // SAFETY: the pointer is baseview's live xcb_connection_t for this window, used here on
        // baseview's window thread (the one that owns it) during `build`; `false`: not ours to
        // disconnect.
        Some(ptr) => unsafe { XCBConnection::from_raw_xcb_connection(ptr.as_ptr(), false) }
            .map_err(|e| XembedError::Connect(e.to_string()))?,
        None => {
            XCBConnection::connect(None)
                .map_err(|e| XembedError::Connect(e.to_string()))?
                .0
        }
    };
    set_on(&conn, window).map_err(|e| XembedError::Property {
        window,
        message: e.to_string(),
    })
}

/// The X11 id of window `w`.
pub fn window_id(w: &impl HasWindowHandle) -> Result<u32, XembedError> {
    let handle = |e: raw_window_handle::HandleError| XembedError::Handle(e.to_string());
    Ok(match w.window_handle().map_err(handle)?.as_raw() {
        RawWindowHandle::Xcb(h) => h.window.get(),
        RawWindowHandle::Xlib(h) => {
            u32::try_from(h.window).map_err(|_| XembedError::WindowId(h.window))?
        }
        other => return Err(XembedError::NotX11(format!("{other:?}"))),
    })
}

fn set_on(conn: &XCBConnection, window: u32) -> Result<(), Box<dyn std::error::Error>> {
    let info = conn.intern_atom(false, b"_XEMBED_INFO")?.reply()?.atom;
    conn.intern_atom(false, b"_XEMBED")?.reply()?;
    conn.change_property32(PropMode::REPLACE, window, info, info, &[XEMBED_VERSION, 0])?
        .check()?;
    conn.flush()?;
    Ok(())
}
