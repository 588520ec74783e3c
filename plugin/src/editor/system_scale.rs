//! The scale baseview gives the editor's window on X11, known before the window exists.
//!
//! baseview (0.4.2) scales a new window by `Xft.dpi / 96` from the X resources when that
//! resource is set (a HiDPI desktop sets 192 for 2x), and only otherwise by the host's scale
//! (`set_scale`, `setContentScaleFactor`) or 1. nice-plug-egui (0.6) learns the scale from the
//! window's first resize event, so until then `Editor::size` converts the editor's logical size
//! with the host's scale or 1. Hosts ask for the size before and right after attaching the
//! editor and size their window to it: on a 2x desktop Ardour 7.3 (VST3; it does not pass its
//! own scale to plugins) made the editor 920×580 pixels, i.e. 460×290 points, half the size
//! and below the minimum (docs/PLUGIN.md, "Checked in real DAWs"). `Editor::size` therefore
//! converts with this scale when there is one, as baseview will.

use std::sync::OnceLock;
use x11rb::xcb_ffi::XCBConnection;

/// `Xft.dpi / 96` from the X resources of the display in `$DISPLAY`, read the way baseview
/// reads them (x11rb's resource manager, `Xft.dpi` as an integer), once per process. `None`
/// without a display or without the resource: then baseview does not use a system scale either.
pub fn xft_scale() -> Option<f64> {
    static SCALE: OnceLock<Option<f64>> = OnceLock::new();
    *SCALE.get_or_init(|| {
        if std::env::var_os("DISPLAY").is_none_or(|d| d.is_empty()) {
            return None;
        }
        let (conn, _) = XCBConnection::connect(None).ok()?;
        let resources = x11rb::resource_manager::new_from_default(&conn).ok()?;
        let dpi: u32 = resources.get_value("Xft.dpi", "").ok().flatten()?;
        scale_from_dpi(dpi)
    })
}

/// The scale for an `Xft.dpi` value (96 dots per inch = 1); none for 0.
pub fn scale_from_dpi(dpi: u32) -> Option<f64> {
    (dpi > 0).then(|| f64::from(dpi) / 96.0)
}

#[cfg(test)]
mod tests {
    use super::scale_from_dpi;

    #[test]
    fn dpi_to_scale() {
        assert_eq!(scale_from_dpi(96), Some(1.0));
        assert_eq!(scale_from_dpi(144), Some(1.5));
        assert_eq!(scale_from_dpi(192), Some(2.0));
        assert_eq!(scale_from_dpi(0), None);
    }
}
