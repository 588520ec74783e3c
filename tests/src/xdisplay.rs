//! An X11 display for the editor tests: the one in `$DISPLAY`, or an Xvfb of our own when
//! `$DISPLAY` is unset and `Xvfb` is installed; a parent window to embed an editor in, as a
//! host's plugin window is; and a capture of a window into a PNG.

use anyhow::{Context, Result, anyhow, bail, ensure};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use x11rb::connection::Connection;
use x11rb::protocol::xproto::{
    AtomEnum, ConfigureWindowAux, ConnectionExt as _, CreateWindowAux, EventMask, ImageFormat,
    WindowClass,
};
use x11rb::xcb_ffi::XCBConnection;

/// The display the tests use; started once per test process.
pub struct XServer {
    /// `:N`.
    pub display: String,
    /// Our own Xvfb, killed when the process ends (never for a `$DISPLAY` we were given).
    xvfb: Option<Child>,
}

impl XServer {
    /// Whether this is an Xvfb these tests started (so its settings may be changed), not the
    /// user's `$DISPLAY`.
    pub fn is_own(&self) -> bool {
        self.xvfb.is_some()
    }
}

impl Drop for XServer {
    fn drop(&mut self) {
        if let Some(c) = &mut self.xvfb {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

static SERVER: OnceLock<std::result::Result<XServer, String>> = OnceLock::new();

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
}

/// Connects to `display` (e.g. `:93`).
pub fn connect(display: &str) -> Result<(XCBConnection, usize)> {
    let name = std::ffi::CString::new(display)?;
    XCBConnection::connect(Some(&name)).map_err(|e| anyhow!("cannot open X display {display}: {e}"))
}

fn start_xvfb() -> Result<XServer> {
    ensure!(
        on_path("Xvfb"),
        "no X display: $DISPLAY is unset and Xvfb is not installed (apt-get install xvfb)"
    );
    // A display number nobody uses: no socket, no lock file.
    let n = (90..190)
        .find(|n| {
            !Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()
                && !Path::new(&format!("/tmp/.X{n}-lock")).exists()
        })
        .context("no free X display number in :90..:189")?;
    let display = format!(":{n}");
    // Xvfb must not outlive the test process, whatever way it ends (a panic that aborts, a
    // killed `cargo test`): it gets SIGTERM when the thread that started it ends, and that
    // thread never ends before the process does.
    let (tx, rx) = std::sync::mpsc::channel();
    let args = [
        display.clone(),
        "-screen".into(),
        "0".into(),
        "2560x1600x24".into(),
        "-nolisten".into(),
        "tcp".into(),
        // No server reset when the last client leaves (connections would fail meanwhile).
        "-noreset".into(),
        "+extension".into(),
        "GLX".into(),
    ];
    std::thread::Builder::new()
        .name("xvfb-owner".into())
        .spawn(move || {
            let mut cmd = Command::new("Xvfb");
            cmd.args(&args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
            unsafe {
                cmd.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                    Ok(())
                });
            }
            let _ = tx.send(cmd.spawn());
            loop {
                std::thread::park();
            }
        })
        .context("starting the Xvfb owner thread")?;
    let child = rx
        .recv()
        .context("the Xvfb owner thread ended")?
        .context("starting Xvfb")?;
    let mut server = XServer {
        display: display.clone(),
        xvfb: Some(child),
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if connect(&display).is_ok() {
            return Ok(server);
        }
        if let Some(c) = &mut server.xvfb
            && let Ok(Some(status)) = c.try_wait()
        {
            bail!("Xvfb {display} exited at start: {status}");
        }
        ensure!(
            Instant::now() < deadline,
            "Xvfb {display} did not accept connections within 15 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The display for this process: `$DISPLAY` if set (and reachable), else an Xvfb started here
/// (and `$DISPLAY` set to it, since the plugin's windowing reads it). The error says why there
/// is none.
pub fn server() -> Result<&'static XServer> {
    SERVER
        .get_or_init(|| {
            if let Some(d) = std::env::var("DISPLAY").ok().filter(|d| !d.is_empty()) {
                return connect(&d)
                    .map(|_| XServer {
                        display: d.clone(),
                        xvfb: None,
                    })
                    .map_err(|e| format!("{e:#}"));
            }
            let s = start_xvfb().map_err(|e| format!("{e:#}"))?;
            // SAFETY: set once, inside this OnceLock's initialisation, before any plugin (whose
            // windowing reads DISPLAY) is loaded by these tests; the tests that need a display
            // all wait here first.
            unsafe { std::env::set_var("DISPLAY", &s.display) };
            Ok(s)
        })
        .as_ref()
        .map_err(|e| anyhow!("{e}"))
}

/// The display for a test, or `None` (the test is skipped, with a notice) when there is none
/// and tools are not required; with `SLUICE_REQUIRE_TOOLS=1` a missing display fails the test.
pub fn display_or_skip() -> Option<&'static XServer> {
    match server() {
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

/// A top-level window standing in for a host's plugin window.
pub struct ParentWindow {
    pub conn: XCBConnection,
    pub id: u32,
    pub root: u32,
}

impl ParentWindow {
    pub fn new(display: &str, width: u16, height: u16) -> Result<Self> {
        let (conn, screen) = connect(display)?;
        let s = &conn.setup().roots[screen];
        let root = s.root;
        let id = conn.generate_id()?;
        conn.create_window(
            x11rb::COPY_DEPTH_FROM_PARENT,
            id,
            root,
            0,
            0,
            width,
            height,
            0,
            WindowClass::INPUT_OUTPUT,
            s.root_visual,
            &CreateWindowAux::new()
                .background_pixel(s.white_pixel)
                .event_mask(EventMask::STRUCTURE_NOTIFY | EventMask::SUBSTRUCTURE_NOTIFY),
        )?
        .check()?;
        conn.map_window(id)?.check()?;
        conn.flush()?;
        Ok(ParentWindow { conn, id, root })
    }

    /// Maps or unmaps the parent (a host hiding and showing its plugin window).
    pub fn set_mapped(&self, mapped: bool) -> Result<()> {
        if mapped {
            self.conn.map_window(self.id)?.check()?;
        } else {
            self.conn.unmap_window(self.id)?.check()?;
        }
        self.conn.flush()?;
        Ok(())
    }

    /// Moves the parent to `(x, y)` on the root window (off the screen, too).
    pub fn move_to(&self, x: i32, y: i32) -> Result<()> {
        self.conn
            .configure_window(self.id, &ConfigureWindowAux::new().x(x).y(y))?
            .check()?;
        self.conn.flush()?;
        Ok(())
    }

    /// The parent's child windows (the embedded editor, once it is there).
    pub fn children(&self) -> Result<Vec<u32>> {
        Ok(self.conn.query_tree(self.id)?.reply()?.children)
    }

    /// Waits up to `timeout` for the parent to have exactly one child and returns it.
    pub fn wait_for_child(&self, timeout: Duration) -> Result<u32> {
        let deadline = Instant::now() + timeout;
        loop {
            let c = self.children()?;
            if let [one] = c.as_slice() {
                return Ok(*one);
            }
            ensure!(
                Instant::now() < deadline,
                "the parent window has {} children after {timeout:?} (want the editor's one)",
                c.len()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `_XEMBED_INFO` of `window`: `None` when the property is missing.
    pub fn xembed_info(&self, window: u32) -> Result<Option<Vec<u32>>> {
        let atom = self.conn.intern_atom(false, b"_XEMBED_INFO")?.reply()?.atom;
        let r = self
            .conn
            .get_property(false, window, atom, AtomEnum::ANY, 0, 8)?
            .reply()?;
        if r.type_ == 0 {
            return Ok(None);
        }
        Ok(Some(
            r.value32()
                .context("_XEMBED_INFO is not 32-bit data")?
                .collect(),
        ))
    }

    /// Whether `window` is mapped (viewable).
    pub fn is_viewable(&self, window: u32) -> Result<bool> {
        let a = self.conn.get_window_attributes(window)?.reply()?;
        Ok(a.map_state == x11rb::protocol::xproto::MapState::VIEWABLE)
    }

    /// The window's size.
    pub fn size_of(&self, window: u32) -> Result<(u16, u16)> {
        let g = self.conn.get_geometry(window)?.reply()?;
        Ok((g.width, g.height))
    }

    /// Moves the pointer to `(x, y)` in `window`'s coordinates, as a person's mouse would
    /// (XTest: the server sends the window the motion events of a real device).
    pub fn pointer_to(&self, window: u32, x: i16, y: i16) -> Result<()> {
        use x11rb::protocol::xtest::ConnectionExt as _;
        let at = self
            .conn
            .translate_coordinates(window, self.root, x, y)?
            .reply()?;
        self.conn
            .xtest_fake_input(
                x11rb::protocol::xproto::MOTION_NOTIFY_EVENT,
                0, // absolute
                x11rb::CURRENT_TIME,
                self.root,
                at.dst_x,
                at.dst_y,
                0,
            )?
            .check()
            .context("XTest motion (is the XTEST extension missing?)")?;
        self.conn.flush()?;
        Ok(())
    }

    /// Presses (`true`) or releases the left mouse button where the pointer is.
    pub fn left_button(&self, down: bool) -> Result<()> {
        use x11rb::protocol::xtest::ConnectionExt as _;
        let kind = if down {
            x11rb::protocol::xproto::BUTTON_PRESS_EVENT
        } else {
            x11rb::protocol::xproto::BUTTON_RELEASE_EVENT
        };
        self.conn
            .xtest_fake_input(kind, 1, x11rb::CURRENT_TIME, self.root, 0, 0, 0)?
            .check()
            .context("XTest button")?;
        self.conn.flush()?;
        Ok(())
    }

    /// Captures `window` (its contents, as the server has them) as RGB8.
    pub fn capture(&self, window: u32) -> Result<Image> {
        let g = self.conn.get_geometry(window)?.reply()?;
        let img = self
            .conn
            .get_image(ImageFormat::Z_PIXMAP, window, 0, 0, g.width, g.height, !0)?
            .reply()
            .with_context(|| format!("GetImage of window {window:#x}"))?;
        let bpp = self
            .conn
            .setup()
            .pixmap_formats
            .iter()
            .find(|f| f.depth == img.depth)
            .map(|f| f.bits_per_pixel)
            .context("no pixmap format for the window's depth")?;
        ensure!(
            bpp == 32 && (img.depth == 24 || img.depth == 32),
            "unsupported capture format: depth {} at {bpp} bits per pixel",
            img.depth
        );
        let (w, h) = (g.width as usize, g.height as usize);
        ensure!(
            img.data.len() >= w * h * 4,
            "GetImage returned {} bytes for {w}x{h}",
            img.data.len()
        );
        let little =
            self.conn.setup().image_byte_order == x11rb::protocol::xproto::ImageOrder::LSB_FIRST;
        let mut rgb = Vec::with_capacity(w * h * 3);
        for px in img.data[..w * h * 4].chunks_exact(4) {
            let (r, g, b) = if little {
                (px[2], px[1], px[0])
            } else {
                (px[1], px[2], px[3])
            };
            rgb.extend_from_slice(&[r, g, b]);
        }
        Ok(Image {
            width: w,
            height: h,
            rgb,
        })
    }
}

impl Drop for ParentWindow {
    fn drop(&mut self) {
        let _ = self.conn.destroy_window(self.id);
        let _ = self.conn.flush();
    }
}

/// An RGB8 picture.
#[derive(Debug, Clone)]
pub struct Image {
    pub width: usize,
    pub height: usize,
    pub rgb: Vec<u8>,
}

impl Image {
    pub fn pixel(&self, x: usize, y: usize) -> [u8; 3] {
        let i = (y * self.width + x) * 3;
        [self.rgb[i], self.rgb[i + 1], self.rgb[i + 2]]
    }

    /// Distinct colours in the picture.
    pub fn distinct_colours(&self) -> usize {
        let mut seen: Vec<u32> = self
            .rgb
            .chunks_exact(3)
            .map(|p| u32::from_be_bytes([0, p[0], p[1], p[2]]))
            .collect();
        seen.sort_unstable();
        seen.dedup();
        seen.len()
    }

    /// The share of pixels (0..1) whose colour differs from the most common colour.
    pub fn non_background_share(&self) -> f64 {
        let mut counts = std::collections::HashMap::new();
        for p in self.rgb.chunks_exact(3) {
            *counts.entry([p[0], p[1], p[2]]).or_insert(0usize) += 1;
        }
        let most = counts.values().copied().max().unwrap_or(0);
        let total = self.width * self.height;
        if total == 0 {
            0.0
        } else {
            1.0 - most as f64 / total as f64
        }
    }

    /// Pixels (in the rectangle) whose colour is within `tol` of `rgb` on every channel.
    pub fn count_near(&self, rgb: [u8; 3], tol: u8, rect: (usize, usize, usize, usize)) -> usize {
        let (x0, y0, x1, y1) = rect;
        let mut n = 0;
        for y in y0..y1.min(self.height) {
            for x in x0..x1.min(self.width) {
                let p = self.pixel(x, y);
                if p.iter().zip(rgb).all(|(a, b)| a.abs_diff(b) <= tol) {
                    n += 1;
                }
            }
        }
        n
    }

    /// Writes the picture as an 8-bit RGB PNG.
    pub fn write_png(&self, path: &Path) -> Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file =
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
        let mut enc = png::Encoder::new(
            std::io::BufWriter::new(file),
            self.width as u32,
            self.height as u32,
        );
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc.write_header()?;
        w.write_image_data(&self.rgb)?;
        w.finish()?;
        Ok(())
    }
}

/// Where screenshots go: `<target dir>/editor-screenshots/<name>`.
pub fn screenshot_path(name: &str) -> PathBuf {
    crate::bundles::folder()
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("target"))
        .join("editor-screenshots")
        .join(name)
}
