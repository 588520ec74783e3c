//! The editor's drawing kit: its colours, the record of every text drawn (for the layout
//! tests), chips and rows of chips, and a line fitted to the room left. Shared by the view
//! and the rows drawn in files of their own (the QC row).

use egui::{Align2, Color32, FontId, Pos2, Rect, Stroke, StrokeKind, Ui, pos2};
use serde_json::{Value, json};

pub const PANEL: Color32 = Color32::from_rgb(0x1f, 0x23, 0x29);
pub const TEXT: Color32 = Color32::from_rgb(0xd8, 0xdc, 0xe0);
pub const DIM: Color32 = Color32::from_rgb(0x8a, 0x93, 0x9c);
pub const GOOD: Color32 = Color32::from_rgb(0x4c, 0xc3, 0x6a);
pub const BAD: Color32 = Color32::from_rgb(0xe5, 0x48, 0x3f);
pub const BUTTON: Color32 = Color32::from_rgb(0x2c, 0x31, 0x38);

/// Every text the frame draws, with where (logical points) and in which part of the editor,
/// so a test can check that none is cut off by the window or overlaps another; and the scale
/// the text is drawn at.
pub struct Texts {
    /// Font and spacing scale: 1 up to the default size, then growing with the window.
    pub k: f32,
    pub group: &'static str,
    items: Vec<(&'static str, String, Rect)>,
}

impl Texts {
    pub fn new(k: f32) -> Self {
        Texts {
            k,
            group: "",
            items: Vec::with_capacity(128),
        }
    }

    pub fn prop(&self, size: f32) -> FontId {
        FontId::proportional(size * self.k)
    }

    pub fn mono(&self, size: f32) -> FontId {
        FontId::monospace(size * self.k)
    }

    /// Draws `text` as `Painter::text` does and records it.
    pub fn text(
        &mut self,
        p: &egui::Painter,
        pos: Pos2,
        align: Align2,
        text: impl ToString,
        font: FontId,
        colour: Color32,
    ) -> Rect {
        let text = text.to_string();
        let rect = p.text(pos, align, &text, font, colour);
        self.items.push((self.group, text, rect));
        rect
    }

    /// Records a widget's text drawn by egui (a button).
    pub fn widget(&mut self, group: &'static str, text: &str, rect: Rect) {
        self.items.push((group, text.to_string(), rect));
    }

    pub fn to_json(&self, ppp: f32) -> Value {
        Value::Array(
            self.items
                .iter()
                .map(|(g, t, r)| {
                    json!({
                        "group": g,
                        "text": t,
                        "rect": [r.min.x * ppp, r.min.y * ppp, r.max.x * ppp, r.max.y * ppp],
                    })
                })
                .collect(),
        )
    }
}

/// A rectangle in window pixels, `[left, top, right, bottom]`.
pub fn px_rect(r: Rect, ppp: f32) -> Value {
    json!([r.min.x * ppp, r.min.y * ppp, r.max.x * ppp, r.max.y * ppp])
}

/// A clickable chip drawn by hand (so its text is measured and recorded like every other).
pub fn chip(
    ui: &mut Ui,
    p: &egui::Painter,
    t: &mut Texts,
    right: f32,
    y: f32,
    text: &str,
    on: bool,
) -> (Rect, bool) {
    let font = t.prop(11.0);
    let size = p
        .layout_no_wrap(text.to_string(), font.clone(), TEXT)
        .size();
    let rect = Rect::from_min_max(
        pos2(right - size.x - 12.0 * t.k, y),
        pos2(right, y + size.y + 4.0 * t.k),
    );
    let resp = ui.interact(
        rect,
        ui.scope_id().with(("sluice-chip", text)),
        egui::Sense::click(),
    );
    p.rect_filled(
        rect,
        3.0,
        if on {
            Color32::from_rgb(0x2f, 0x4a, 0x63)
        } else {
            BUTTON
        },
    );
    if resp.hovered() {
        p.rect_stroke(rect, 3.0, Stroke::new(1.0, DIM), StrokeKind::Inside);
    }
    t.text(
        p,
        rect.center(),
        Align2::CENTER_CENTER,
        text,
        font,
        if on { TEXT } else { DIM },
    );
    (rect, resp.clicked())
}

/// Chips placed left to right in a row.
pub struct Row {
    pub x: f32,
    pub y: f32,
    pub ppp: f32,
    pub rects: serde_json::Map<String, Value>,
}

impl Row {
    /// A chip after the last one; returns whether it was clicked. Its rectangle goes into the
    /// published frame under `key`.
    #[allow(clippy::too_many_arguments)]
    pub fn place(
        &mut self,
        ui: &mut Ui,
        p: &egui::Painter,
        t: &mut Texts,
        text: &str,
        on: bool,
        key: &str,
    ) -> bool {
        let w = p
            .layout_no_wrap(text.to_string(), t.prop(11.0), TEXT)
            .size()
            .x
            + 12.0 * t.k;
        let (r, clicked) = chip(ui, p, t, self.x + w, self.y, text, on);
        self.rects.insert(key.to_string(), px_rect(r, self.ppp));
        self.x = r.max.x + 4.0;
        clicked
    }
}

/// Draws `text` from `x` to the row's end, shortened with an ellipsis to the room left.
pub fn fitted_line(
    p: &egui::Painter,
    t: &mut Texts,
    rect: Rect,
    x: f32,
    text: &str,
    colour: Color32,
) {
    let room = rect.max.x - 8.0 - x;
    let font = t.prop(11.0);
    let fits = |s: &str| {
        p.layout_no_wrap(s.to_string(), font.clone(), colour)
            .size()
            .x
            <= room
    };
    let shown = if fits(text) {
        text.to_string()
    } else {
        // The longest prefix that fits with an ellipsis: a binary search over the characters,
        // a dozen layouts rather than one per character of a long error.
        let ends: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
        let (mut lo, mut hi) = (0usize, ends.len());
        while lo < hi {
            let mid = (lo + hi).div_ceil(2);
            if fits(&format!("{}…", &text[..ends[mid - 1]])) {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        if lo == 0 {
            String::new()
        } else {
            format!("{}…", &text[..ends[lo - 1]])
        }
    };
    if !shown.is_empty() {
        t.text(
            p,
            pos2(x + 4.0, rect.center().y),
            Align2::LEFT_CENTER,
            &shown,
            font,
            colour,
        );
    }
}
