//! The editor's layout and drawing.
//!
//! ```text
//! ┌ Sluice Meter  Target [Spotify / YouTube (-14 LUFS) v] [custom]        [REC ARM] [Reset] ┐
//! │ INTEGRATED        │ M   S  │ loudness history (M, S; last 5 min; target band)           │
//! │  -14.2 LUFS       │ ▐▌ ▐▌  │                                                            │
//! │ -0.2 LU to target │ ▐▌ ▐▌  ├────────────────────────────────────────────────────────────┤
//! │ M S maxM maxS LRA │ scale  │ spectrum (20 Hz-20 kHz), the five bands shaded, shares %   │
//! │ PLR  TP (L R) OVER│ target │                                                            │
//! │ correlation -1 +1 │        │                                                            │
//! └ take status: recording / time / takes / last take / overruns / error ───────────────────┘
//! ```
//!
//! Everything is laid out from the window's current size (resizable down to
//! [`super::MIN_SIZE`]); egui scales it by the display's pixels per point (HiDPI), so sizes here
//! are logical points.

use super::readings::{HISTORY_SHOWN, Readings};
use crate::params::{SluiceParams, TargetPreset};
use crate::shared::{SPECTRUM_HIGH_HZ, SPECTRUM_LOW_HZ, SPECTRUM_POINTS, spectrum_point_hz};
use egui::{
    Align, Align2, Color32, FontId, Layout, Pos2, Rect, Stroke, StrokeKind, Ui, UiBuilder, pos2,
    vec2,
};
use nice_plug::prelude::*;
use nice_plug_egui::widgets::ParamSlider;
use serde_json::{Value, json};
use sluice_core::analysis::spectrum::BANDS;

pub const BACKGROUND: Color32 = Color32::from_rgb(0x16, 0x19, 0x1d);
const PANEL: Color32 = Color32::from_rgb(0x1f, 0x23, 0x29);
const GRID: Color32 = Color32::from_rgb(0x33, 0x39, 0x41);
const TEXT: Color32 = Color32::from_rgb(0xd8, 0xdc, 0xe0);
const DIM: Color32 = Color32::from_rgb(0x8a, 0x93, 0x9c);
const MOMENTARY: Color32 = Color32::from_rgb(0x5a, 0xb4, 0xf0);
const SHORT_TERM: Color32 = Color32::from_rgb(0xf0, 0xa0, 0x3c);
const GOOD: Color32 = Color32::from_rgb(0x4c, 0xc3, 0x6a);
const WARN: Color32 = Color32::from_rgb(0xe8, 0xc1, 0x3a);
const BAD: Color32 = Color32::from_rgb(0xe5, 0x48, 0x3f);
const LIGHT_OFF: Color32 = Color32::from_rgb(0x3a, 0x2a, 0x2a);
const TARGET_BAND: Color32 = Color32::from_rgba_premultiplied(0x1c, 0x36, 0x22, 0x80);
const BAND_SHADES: [Color32; 5] = [
    Color32::from_rgb(0x22, 0x2a, 0x3a),
    Color32::from_rgb(0x26, 0x33, 0x2c),
    Color32::from_rgb(0x33, 0x2e, 0x24),
    Color32::from_rgb(0x34, 0x26, 0x2e),
    Color32::from_rgb(0x2a, 0x2a, 0x36),
];
const BAND_NAMES: [&str; 5] = ["Low", "Low-mid", "Mid", "High-mid", "High"];
/// For bands narrower than their full name (small windows).
const BAND_SHORT_NAMES: [&str; 5] = ["Low", "LM", "Mid", "HM", "High"];

/// The loudness scale of the bars and the history, LUFS.
pub const SCALE_LOW: f32 = -60.0;
pub const SCALE_HIGH: f32 = 0.0;
/// The spectrum's dB range (relative to a full-scale sine).
pub const SPECTRUM_FLOOR_DB: f32 = -100.0;
/// Half-width of the target band around the target loudness, LU.
pub const TARGET_TOLERANCE_LU: f32 = 1.0;

/// State kept across frames (nothing yet beyond what egui keeps itself).
#[derive(Debug, Default)]
pub struct ViewState {
    /// Frames drawn by this editor (all openings).
    pub frames: u64,
}

/// Sets the editor's look once per window.
pub fn style(ctx: &egui::Context) {
    ctx.set_visuals(egui::Visuals::dark());
}

/// A reading with `decimals` decimals (with an explicit sign when `signed`), or "--" when
/// undefined. Never "-0.0": what rounds to zero is written as zero.
fn fmt_fixed(v: f32, decimals: usize, signed: bool) -> String {
    if !v.is_finite() {
        return "--".into();
    }
    let half_step = 0.5 / 10f32.powi(decimals as i32);
    let v = if v.abs() < half_step { 0.0 } else { v };
    if signed {
        format!("{v:+.decimals$}")
    } else {
        format!("{v:.decimals$}")
    }
}

/// A reading as the editor writes it: one decimal, or "--" when undefined.
pub fn fmt1(v: f32) -> String {
    fmt_fixed(v, 1, false)
}

/// Like [`fmt1`] with an explicit sign.
pub fn fmt1_signed(v: f32) -> String {
    fmt_fixed(v, 1, true)
}

/// Correlation as drawn: two decimals with a sign.
pub fn fmt_corr(v: f32) -> String {
    fmt_fixed(v, 2, true)
}

/// `m:ss.t` of a take's length.
pub fn fmt_time(seconds: f64) -> String {
    sluice_core::time::clock(seconds, 1, false)
}

fn num(v: f32) -> Value {
    if v.is_finite() { json!(v) } else { Value::Null }
}

const SURROUND_5_1: [&str; 6] = ["L", "R", "C", "LFE", "Ls", "Rs"];

/// Channel names for per-channel readouts.
fn channel_name(i: usize, channels: usize) -> String {
    match (channels, i) {
        (1, _) => "C".into(),
        (2, 0) => "L".into(),
        (2, 1) => "R".into(),
        // The 5.1 layout the plugin offers (VST3 `k51`, CLAP `surround`): L R C LFE Ls Rs.
        (6, i) if i < SURROUND_5_1.len() => SURROUND_5_1[i].into(),
        _ => format!("{}", i + 1),
    }
}

fn distance_colour(d: f32) -> Color32 {
    if !d.is_finite() {
        DIM
    } else if d.abs() <= TARGET_TOLERANCE_LU {
        GOOD
    } else if d.abs() <= 3.0 {
        WARN
    } else {
        BAD
    }
}

/// Draws one frame and returns what it drew (values and texts) for [`super::drawn::Drawn`].
pub fn draw(
    ui: &mut Ui,
    r: &Readings,
    params: &SluiceParams,
    shared: &crate::shared::MeterShared,
    setter: Option<&ParamSetter>,
    state: &mut ViewState,
) -> Value {
    state.frames += 1;
    let full = ui.max_rect();
    let painter = ui.painter().clone();
    painter.rect_filled(full, 0.0, BACKGROUND);

    let top = Rect::from_min_size(full.min, vec2(full.width(), 36.0));
    let bottom = Rect::from_min_max(pos2(full.min.x, full.max.y - 28.0), full.max);
    let body =
        Rect::from_min_max(pos2(full.min.x, top.max.y), pos2(full.max.x, bottom.min.y)).shrink(6.0);

    let controls = top_bar(ui, top, r, params, shared, setter);

    let left_w = (body.width() * 0.28).clamp(220.0, 300.0);
    let left = Rect::from_min_size(body.min, vec2(left_w, body.height()));
    let bars = Rect::from_min_size(
        pos2(left.max.x + 6.0, body.min.y),
        vec2(150.0, body.height()),
    );
    let right = Rect::from_min_max(pos2(bars.max.x + 6.0, body.min.y), body.max);
    let split = right.min.y + right.height() * 0.55;
    let history = Rect::from_min_max(right.min, pos2(right.max.x, split - 3.0));
    let spectrum = Rect::from_min_max(pos2(right.min.x, split + 3.0), right.max);

    let numbers = numbers_panel(&painter, left, r);
    let bar_values = loudness_bars(&painter, bars, r);
    let history_points = history_plot(&painter, history, r);
    let spectrum_points = spectrum_plot(&painter, spectrum, r);
    let record = status_bar(&painter, bottom, r);

    json!({
        "logical_size": [full.width(), full.height()],
        "pixels_per_point": ui.ctx().pixels_per_point(),
        "values": {
            "integrated_lufs": num(r.integrated),
            "momentary_lufs": num(r.momentary),
            "short_term_lufs": num(r.short_term),
            "max_momentary_lufs": num(r.max_momentary),
            "max_short_term_lufs": num(r.max_short_term),
            "loudness_range_lu": num(r.loudness_range),
            "true_peak_dbtp": num(r.true_peak),
            "true_peak_channel_dbtp": r.true_peak_channel[..r.channels].iter().map(|&v| num(v)).collect::<Vec<_>>(),
            "plr_lu": num(r.plr),
            "correlation": num(r.correlation),
            "distance_lu": num(r.distance_lu),
            "target_lufs": num(r.target_lufs),
            "target_ceiling_dbtp": num(r.target_ceiling),
            "over_ceiling_light": r.over_ceiling,
            "band_share_percent": r.band_share.iter().map(|&v| num(v)).collect::<Vec<_>>(),
            "bar_momentary_lufs": num(bar_values.0),
            "bar_short_term_lufs": num(bar_values.1),
            "history_points": history_points,
            "spectrum_points": spectrum_points,
            "steps": r.steps,
        },
        "texts": {
            "integrated": numbers.integrated,
            "distance": numbers.distance,
            "momentary": fmt1(r.momentary),
            "short_term": fmt1(r.short_term),
            "loudness_range": fmt1(r.loudness_range),
            "plr": fmt1(r.plr),
            "true_peak": fmt1(r.true_peak),
            "true_peak_channels": numbers.peaks,
            "correlation": fmt_corr(r.correlation),
            "target": controls.target,
            "record": record,
        },
        "controls": {
            "armed": controls.armed,
            "custom_target_shown": controls.custom_shown,
            "rects": controls.rects.to_json(ui.ctx().pixels_per_point()),
        },
    })
}

struct Controls {
    target: String,
    armed: bool,
    custom_shown: bool,
    rects: ControlRects,
}

/// Where the controls were drawn this frame, so a test can click them as a person would.
#[derive(Default)]
struct ControlRects {
    target: Option<Rect>,
    /// The target chooser's entries, by name, while its list is open.
    target_items: Vec<(String, Rect)>,
    custom_lufs: Option<Rect>,
    custom_ceiling: Option<Rect>,
    rec_arm: Option<Rect>,
    reset: Option<Rect>,
}

impl ControlRects {
    /// In window pixels, `[left, top, right, bottom]`: logical points times pixels per point.
    fn to_json(&self, ppp: f32) -> Value {
        let px = |r: &Option<Rect>| {
            r.map_or(Value::Null, |r| {
                json!([r.min.x * ppp, r.min.y * ppp, r.max.x * ppp, r.max.y * ppp])
            })
        };
        let items: serde_json::Map<String, Value> = self
            .target_items
            .iter()
            .map(|(name, r)| (name.clone(), px(&Some(*r))))
            .collect();
        json!({
            "target": px(&self.target),
            "target_items": items,
            "custom_lufs": px(&self.custom_lufs),
            "custom_ceiling": px(&self.custom_ceiling),
            "rec_arm": px(&self.rec_arm),
            "reset": px(&self.reset),
        })
    }
}

fn top_bar(
    ui: &mut Ui,
    rect: Rect,
    r: &Readings,
    params: &SluiceParams,
    shared: &crate::shared::MeterShared,
    setter: Option<&ParamSetter>,
) -> Controls {
    ui.painter().rect_filled(rect, 0.0, PANEL);
    let names = TargetPreset::variants();
    let current = r.target.to_index();
    let target = names.get(current).copied().unwrap_or("?").to_string();
    let custom_shown = r.target == TargetPreset::Custom;
    let mut armed = r.armed;
    let mut rects = ControlRects::default();
    let inner = rect.shrink2(vec2(8.0, 4.0));
    ui.scope_builder(
        UiBuilder::new()
            .max_rect(inner)
            .layout(Layout::left_to_right(Align::Center)),
        |ui| {
            ui.label(
                egui::RichText::new("Sluice Meter")
                    .strong()
                    .color(TEXT)
                    .size(15.0),
            );
            ui.add_space(12.0);
            ui.label(egui::RichText::new("Target").color(DIM));
            let mut chosen = None;
            let combo = egui::ComboBox::from_id_salt("sluice-target")
                .selected_text(target.as_str())
                .width(220.0)
                .show_ui(ui, |ui| {
                    for (i, name) in names.iter().enumerate() {
                        let item = ui.selectable_label(i == current, *name);
                        rects.target_items.push((name.to_string(), item.rect));
                        if item.clicked() {
                            chosen = Some(i);
                        }
                    }
                });
            rects.target = Some(combo.response.rect);
            if let (Some(i), Some(s)) = (chosen, setter)
                && i != current
            {
                s.begin_set_parameter(&params.target);
                s.set_parameter(&params.target, TargetPreset::from_index(i));
                s.end_set_parameter(&params.target);
            }
            if let (true, Some(s)) = (custom_shown, setter) {
                let lufs = ui.add(ParamSlider::for_param(&params.custom_lufs, s).with_width(90.0));
                let ceiling =
                    ui.add(ParamSlider::for_param(&params.custom_ceiling, s).with_width(90.0));
                rects.custom_lufs = Some(lufs.rect);
                rects.custom_ceiling = Some(ceiling.rect);
            }
            ui.with_layout(Layout::right_to_left(Align::Center), |ui| {
                let reset = ui.button("Reset");
                rects.reset = Some(reset.rect);
                if reset.clicked() {
                    shared.request_reset();
                }
                let label = egui::RichText::new(if armed { "REC ARMED" } else { "REC ARM" })
                    .color(if armed { BAD } else { DIM });
                let arm = ui.selectable_label(armed, label);
                rects.rec_arm = Some(arm.rect);
                if arm.clicked()
                    && let Some(s) = setter
                {
                    armed = !armed;
                    s.begin_set_parameter(&params.rec_arm);
                    s.set_parameter(&params.rec_arm, armed);
                    s.end_set_parameter(&params.rec_arm);
                }
            });
        },
    );
    Controls {
        target,
        armed,
        custom_shown,
        rects,
    }
}

struct Numbers {
    integrated: String,
    distance: String,
    peaks: Vec<String>,
}

fn numbers_panel(p: &egui::Painter, rect: Rect, r: &Readings) -> Numbers {
    p.rect_filled(rect, 4.0, PANEL);
    let x = rect.min.x + 12.0;
    let mut y = rect.min.y + 10.0;
    p.text(
        pos2(x, y),
        Align2::LEFT_TOP,
        "INTEGRATED",
        FontId::proportional(12.0),
        DIM,
    );
    y += 16.0;
    let integrated = fmt1(r.integrated);
    let big = p.text(
        pos2(x, y),
        Align2::LEFT_TOP,
        &integrated,
        FontId::proportional(46.0),
        if r.integrated.is_finite() {
            distance_colour(r.distance_lu)
        } else {
            TEXT
        },
    );
    p.text(
        pos2(big.max.x + 6.0, big.max.y - 8.0),
        Align2::LEFT_BOTTOM,
        "LUFS",
        FontId::proportional(14.0),
        DIM,
    );
    y = big.max.y + 4.0;
    let distance = if r.distance_lu.is_finite() {
        format!(
            "{} LU from {} LUFS",
            fmt1_signed(r.distance_lu),
            fmt1(r.target_lufs)
        )
    } else {
        format!("target {} LUFS", fmt1(r.target_lufs))
    };
    p.text(
        pos2(x, y),
        Align2::LEFT_TOP,
        &distance,
        FontId::proportional(14.0),
        distance_colour(r.distance_lu),
    );
    y += 26.0;

    let rows: [(&str, String, &str); 6] = [
        ("Momentary", fmt1(r.momentary), "LUFS"),
        ("Short-term", fmt1(r.short_term), "LUFS"),
        ("Max momentary", fmt1(r.max_momentary), "LUFS"),
        ("Max short-term", fmt1(r.max_short_term), "LUFS"),
        ("Loudness range", fmt1(r.loudness_range), "LU"),
        ("PLR", fmt1(r.plr), "LU"),
    ];
    let value_x = rect.max.x - 52.0;
    for (label, value, unit) in rows {
        p.text(
            pos2(x, y),
            Align2::LEFT_TOP,
            label,
            FontId::proportional(13.0),
            DIM,
        );
        p.text(
            pos2(value_x, y),
            Align2::RIGHT_TOP,
            value,
            FontId::monospace(13.0),
            TEXT,
        );
        p.text(
            pos2(value_x + 6.0, y),
            Align2::LEFT_TOP,
            unit,
            FontId::proportional(11.0),
            DIM,
        );
        y += 19.0;
    }

    // True peak with the over-ceiling light.
    y += 6.0;
    p.text(
        pos2(x, y),
        Align2::LEFT_TOP,
        "True peak max",
        FontId::proportional(13.0),
        DIM,
    );
    let over = r.over_ceiling;
    p.text(
        pos2(value_x, y),
        Align2::RIGHT_TOP,
        fmt1(r.true_peak),
        FontId::monospace(13.0),
        if over { BAD } else { TEXT },
    );
    p.text(
        pos2(value_x + 6.0, y),
        Align2::LEFT_TOP,
        "dBTP",
        FontId::proportional(11.0),
        DIM,
    );
    y += 20.0;
    let light = pos2(x + 8.0, y + 8.0);
    p.circle_filled(light, 7.0, if over { BAD } else { LIGHT_OFF });
    p.text(
        pos2(x + 22.0, y + 1.0),
        Align2::LEFT_TOP,
        format!("OVER  (ceiling {} dBTP)", fmt1(r.target_ceiling)),
        FontId::proportional(12.0),
        if over { BAD } else { DIM },
    );
    y += 22.0;
    let mut peaks = Vec::with_capacity(r.channels);
    let mut cx = x;
    for c in 0..r.channels {
        let text = fmt1(r.true_peak_channel[c]);
        let shown = format!("{} {}", channel_name(c, r.channels), text);
        let over_c = r.true_peak_channel[c] > r.target_ceiling;
        let t = p.text(
            pos2(cx, y),
            Align2::LEFT_TOP,
            &shown,
            FontId::monospace(12.0),
            if over_c { BAD } else { TEXT },
        );
        cx = t.max.x + 12.0;
        if cx > rect.max.x - 60.0 {
            cx = x;
            y += 16.0;
        }
        peaks.push(text);
    }
    y += 26.0;

    // Correlation meter: -1 .. +1.
    p.text(
        pos2(x, y),
        Align2::LEFT_TOP,
        "Correlation",
        FontId::proportional(13.0),
        DIM,
    );
    p.text(
        pos2(rect.max.x - 12.0, y),
        Align2::RIGHT_TOP,
        fmt_corr(r.correlation),
        FontId::monospace(13.0),
        TEXT,
    );
    y += 20.0;
    let meter = Rect::from_min_max(
        pos2(x, y),
        pos2(rect.max.x - 12.0, (y + 14.0).min(rect.max.y - 18.0)),
    );
    p.rect_filled(meter, 2.0, BACKGROUND);
    let mid = meter.center().x;
    p.line_segment(
        [pos2(mid, meter.min.y - 2.0), pos2(mid, meter.max.y + 2.0)],
        Stroke::new(1.0, GRID),
    );
    if r.correlation.is_finite() {
        let c = r.correlation.clamp(-1.0, 1.0);
        let cx = mid + c * meter.width() / 2.0;
        let fill = Rect::from_x_y_ranges(mid.min(cx)..=mid.max(cx), meter.y_range());
        p.rect_filled(fill, 0.0, if c < 0.0 { BAD } else { GOOD });
        p.line_segment(
            [pos2(cx, meter.min.y - 3.0), pos2(cx, meter.max.y + 3.0)],
            Stroke::new(2.0, TEXT),
        );
    }
    for (t, a) in [
        ("-1", Align2::LEFT_TOP),
        ("0", Align2::CENTER_TOP),
        ("+1", Align2::RIGHT_TOP),
    ] {
        let px = match a {
            Align2::LEFT_TOP => meter.min.x,
            Align2::RIGHT_TOP => meter.max.x,
            _ => mid,
        };
        p.text(
            pos2(px, meter.max.y + 2.0),
            a,
            t,
            FontId::proportional(10.0),
            DIM,
        );
    }

    Numbers {
        integrated,
        distance,
        peaks,
    }
}

fn level_y(rect: Rect, lufs: f32) -> f32 {
    let t = ((lufs - SCALE_LOW) / (SCALE_HIGH - SCALE_LOW)).clamp(0.0, 1.0);
    rect.max.y - t * rect.height()
}

/// The M and S bars with their scale, target band and maxima. Returns the levels drawn.
fn loudness_bars(p: &egui::Painter, rect: Rect, r: &Readings) -> (f32, f32) {
    p.rect_filled(rect, 4.0, PANEL);
    let area = Rect::from_min_max(
        pos2(rect.min.x + 8.0, rect.min.y + 24.0),
        pos2(rect.max.x - 8.0, rect.max.y - 10.0),
    );
    let bar_w = 34.0;
    let m_bar = Rect::from_min_size(area.min, vec2(bar_w, area.height()));
    let s_bar = Rect::from_min_size(
        pos2(area.min.x + bar_w + 10.0, area.min.y),
        vec2(bar_w, area.height()),
    );
    let scale_x = s_bar.max.x + 8.0;

    // Target band across both bars.
    target_band(
        p,
        area,
        egui::Rangef::new(m_bar.min.x, s_bar.max.x),
        r.target_lufs,
    );
    // Scale: every 6 LU.
    let mut l = SCALE_LOW;
    while l <= SCALE_HIGH + 0.01 {
        let y = level_y(area, l);
        p.line_segment(
            [pos2(m_bar.min.x, y), pos2(s_bar.max.x + 4.0, y)],
            Stroke::new(1.0, GRID),
        );
        p.text(
            pos2(scale_x, y),
            Align2::LEFT_CENTER,
            format!("{l:.0}"),
            FontId::monospace(10.0),
            DIM,
        );
        l += 6.0;
    }
    for (bar, value, max, colour, name) in [
        (m_bar, r.momentary, r.max_momentary, MOMENTARY, "M"),
        (s_bar, r.short_term, r.max_short_term, SHORT_TERM, "S"),
    ] {
        p.rect_stroke(bar, 2.0, Stroke::new(1.0, GRID), StrokeKind::Inside);
        if value.is_finite() {
            let top = level_y(area, value);
            let fill = Rect::from_x_y_ranges(bar.x_range(), top..=bar.max.y);
            p.rect_filled(fill, 0.0, colour.gamma_multiply(0.85));
            if r.target_lufs.is_finite() && value > r.target_lufs + TARGET_TOLERANCE_LU {
                let over = Rect::from_x_y_ranges(
                    bar.x_range(),
                    top..=level_y(area, r.target_lufs + TARGET_TOLERANCE_LU),
                );
                p.rect_filled(over, 0.0, BAD);
            }
        }
        if max.is_finite() {
            let y = level_y(area, max);
            p.line_segment(
                [pos2(bar.min.x, y), pos2(bar.max.x, y)],
                Stroke::new(2.0, TEXT),
            );
        }
        p.text(
            pos2(bar.center().x, rect.min.y + 6.0),
            Align2::CENTER_TOP,
            name,
            FontId::proportional(13.0),
            colour,
        );
    }
    if r.target_lufs.is_finite() {
        let y = level_y(area, r.target_lufs);
        p.line_segment(
            [pos2(m_bar.min.x - 4.0, y), pos2(s_bar.max.x + 4.0, y)],
            Stroke::new(1.5, GOOD),
        );
    }
    (r.momentary, r.short_term)
}

fn plot_frame(p: &egui::Painter, rect: Rect, title: &str) -> Rect {
    p.rect_filled(rect, 4.0, PANEL);
    p.text(
        rect.min + vec2(10.0, 6.0),
        Align2::LEFT_TOP,
        title,
        FontId::proportional(12.0),
        DIM,
    );
    Rect::from_min_max(rect.min + vec2(40.0, 24.0), rect.max - vec2(10.0, 18.0))
}

/// M and S over the last minutes, with the target band. Returns how many steps it drew.
fn history_plot(p: &egui::Painter, rect: Rect, r: &Readings) -> usize {
    let area = plot_frame(
        p,
        rect,
        "Loudness history (M, S) - last 5 minutes - target band",
    );
    target_band(p, area, area.x_range(), r.target_lufs);
    let mut l = SCALE_LOW;
    while l <= SCALE_HIGH + 0.01 {
        let y = level_y(area, l);
        p.line_segment(
            [pos2(area.min.x, y), pos2(area.max.x, y)],
            Stroke::new(1.0, GRID),
        );
        p.text(
            pos2(area.min.x - 4.0, y),
            Align2::RIGHT_CENTER,
            format!("{l:.0}"),
            FontId::monospace(10.0),
            DIM,
        );
        l += 12.0;
    }
    // A minute tick every 600 steps, counted back from now (the right edge).
    for minute in 0..=HISTORY_SHOWN / 600 {
        let x = area.max.x - (minute * 600) as f32 / HISTORY_SHOWN as f32 * area.width();
        p.line_segment(
            [pos2(x, area.max.y), pos2(x, area.max.y + 4.0)],
            Stroke::new(1.0, DIM),
        );
        p.text(
            pos2(x, area.max.y + 4.0),
            Align2::CENTER_TOP,
            if minute == 0 {
                "now".to_string()
            } else {
                format!("-{minute}m")
            },
            FontId::proportional(10.0),
            DIM,
        );
    }
    let n = r.history_momentary.len();
    let step_x = area.width() / HISTORY_SHOWN as f32;
    // About one point per pixel column.
    let stride = (HISTORY_SHOWN as f32 / area.width().max(1.0))
        .ceil()
        .max(1.0) as usize;
    for (values, colour, width) in [
        (&r.history_momentary, MOMENTARY, 1.0),
        (&r.history_short_term, SHORT_TERM, 2.0),
    ] {
        let mut line: Vec<Pos2> = Vec::with_capacity(n / stride + 2);
        // Sampled back from the newest point, so the newest is always drawn.
        let mut i = n.saturating_sub(1) % stride;
        while i < n {
            let v = values[i];
            let x = area.max.x - (n - 1 - i) as f32 * step_x;
            if v.is_finite() {
                line.push(pos2(x, level_y(area, v)));
            } else if line.len() > 1 {
                p.line(std::mem::take(&mut line), Stroke::new(width, colour));
            } else {
                line.clear();
            }
            i += stride;
        }
        if line.len() > 1 {
            p.line(line, Stroke::new(width, colour));
        }
    }
    n
}

/// The target band (target ± [`TARGET_TOLERANCE_LU`]) across `xs`, on `area`'s loudness scale;
/// nothing while the target is undefined.
fn target_band(p: &egui::Painter, area: Rect, xs: egui::Rangef, target_lufs: f32) {
    if target_lufs.is_finite() {
        let band = Rect::from_x_y_ranges(
            xs,
            level_y(area, target_lufs + TARGET_TOLERANCE_LU)
                ..=level_y(area, target_lufs - TARGET_TOLERANCE_LU),
        );
        p.rect_filled(band, 0.0, TARGET_BAND);
    }
}

fn freq_x(area: Rect, hz: f32) -> f32 {
    let t = (hz / SPECTRUM_LOW_HZ).ln() / (SPECTRUM_HIGH_HZ / SPECTRUM_LOW_HZ).ln();
    area.min.x + t.clamp(0.0, 1.0) * area.width()
}

/// The spectrum over the five shaded bands with their shares. Returns the points drawn.
fn spectrum_plot(p: &egui::Painter, rect: Rect, r: &Readings) -> usize {
    let area = plot_frame(p, rect, "Spectrum - band shares of the power");
    let bands: Vec<Rect> = BANDS
        .iter()
        .map(|(_, lo, hi)| {
            Rect::from_x_y_ranges(
                freq_x(area, *lo as f32)..=freq_x(area, *hi as f32),
                area.y_range(),
            )
        })
        .collect();
    for (i, band) in bands.iter().enumerate() {
        p.rect_filled(*band, 0.0, BAND_SHADES[i % BAND_SHADES.len()]);
    }
    // Labels after every shade (so no shade covers a label), the name over the share, each
    // kept inside its band: the short name when the full one is wider than the band.
    let font = FontId::proportional(11.0);
    for (i, band) in bands.iter().enumerate() {
        let fits = |t: &str| {
            p.layout_no_wrap(t.to_string(), font.clone(), TEXT).size().x <= band.width() - 4.0
        };
        let name = if fits(BAND_NAMES[i]) {
            BAND_NAMES[i]
        } else {
            BAND_SHORT_NAMES[i]
        };
        let x = band.center().x;
        p.text(
            pos2(x, area.min.y + 2.0),
            Align2::CENTER_TOP,
            name,
            font.clone(),
            TEXT,
        );
        let share = r.band_share[i];
        if share.is_finite() {
            p.text(
                pos2(x, area.min.y + 15.0),
                Align2::CENTER_TOP,
                format!("{share:.0}%"),
                font.clone(),
                DIM,
            );
        }
    }
    let db_y = |db: f32| {
        let t = ((db - SPECTRUM_FLOOR_DB) / -SPECTRUM_FLOOR_DB).clamp(0.0, 1.0);
        area.max.y - t * area.height()
    };
    for db in [-80.0f32, -60.0, -40.0, -20.0, 0.0] {
        let y = db_y(db);
        p.line_segment(
            [pos2(area.min.x, y), pos2(area.max.x, y)],
            Stroke::new(1.0, GRID),
        );
        p.text(
            pos2(area.min.x - 4.0, y),
            Align2::RIGHT_CENTER,
            format!("{db:.0}"),
            FontId::monospace(10.0),
            DIM,
        );
    }
    for (hz, label) in [
        (50.0, "50"),
        (100.0, "100"),
        (500.0, "500"),
        (1000.0, "1k"),
        (5000.0, "5k"),
        (10000.0, "10k"),
    ] {
        let x = freq_x(area, hz);
        p.text(
            pos2(x, area.max.y + 2.0),
            Align2::CENTER_TOP,
            label,
            FontId::proportional(10.0),
            DIM,
        );
    }
    let mut points = Vec::with_capacity(SPECTRUM_POINTS);
    for (i, &db) in r.spectrum.iter().enumerate() {
        if db.is_finite() {
            points.push(pos2(freq_x(area, spectrum_point_hz(i)), db_y(db)));
        }
    }
    let n = points.len();
    if n > 1 {
        p.line(points, Stroke::new(1.5, TEXT));
    }
    n
}

/// The take status line. Returns its texts.
fn status_bar(p: &egui::Painter, rect: Rect, r: &Readings) -> Value {
    p.rect_filled(rect, 0.0, PANEL);
    let state = if r.recording {
        "recording"
    } else if r.armed {
        "armed"
    } else {
        "not armed"
    };
    let time = fmt_time(r.take_seconds());
    let last = r
        .last_take
        .as_ref()
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "none".into());
    let mut text = format!(
        "Take: {state}  {time}   takes {}   last: {last}   overruns {}",
        r.takes, r.overruns
    );
    if r.dropped_frames > 0 {
        text.push_str(&format!(" ({} frames lost)", r.dropped_frames));
    }
    if r.sample_rate > 0.0 {
        text.push_str(&format!(
            "   {:.1} kHz, {} ch",
            r.sample_rate / 1000.0,
            r.channels
        ));
    }
    let light = pos2(rect.min.x + 14.0, rect.center().y);
    p.circle_filled(
        light,
        6.0,
        if r.recording {
            BAD
        } else if r.armed {
            WARN
        } else {
            LIGHT_OFF
        },
    );
    p.text(
        pos2(rect.min.x + 28.0, rect.center().y),
        Align2::LEFT_CENTER,
        &text,
        FontId::proportional(12.0),
        TEXT,
    );
    if let Some(e) = &r.last_error {
        p.text(
            pos2(rect.max.x - 10.0, rect.center().y),
            Align2::RIGHT_CENTER,
            e,
            FontId::proportional(12.0),
            BAD,
        );
    }
    json!({
        "state": state,
        "time": time,
        "takes": r.takes,
        "last_take": last,
        "overruns": r.overruns,
        "error": r.last_error,
        "line": text,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_names_follow_the_layout() {
        let names = |n: usize| (0..n).map(|i| channel_name(i, n)).collect::<Vec<_>>();
        assert_eq!(names(1), ["C"]);
        assert_eq!(names(2), ["L", "R"]);
        assert_eq!(names(6), ["L", "R", "C", "LFE", "Ls", "Rs"]);
        assert_eq!(names(4), ["1", "2", "3", "4"]);
    }

    #[test]
    fn formats() {
        assert_eq!(fmt1(-14.04), "-14.0");
        assert_eq!(fmt1(-0.04), "0.0");
        assert_eq!(fmt1(f32::NAN), "--");
        assert_eq!(fmt1(f32::NEG_INFINITY), "--");
        assert_eq!(fmt1_signed(1.26), "+1.3");
        assert_eq!(fmt1_signed(-6.0), "-6.0");
        assert_eq!(fmt_corr(0.999), "+1.00");
        assert_eq!(fmt_corr(-0.5), "-0.50");
        assert_eq!(fmt_time(0.0), "0:00.0");
        assert_eq!(fmt_time(61.26), "1:01.2");
        assert_eq!(fmt_time(-3.0), "0:00.0");
        assert_eq!(fmt_time(3599.99), "59:59.9");
    }

    #[test]
    fn scales_clamp() {
        let r = Rect::from_min_max(pos2(0.0, 0.0), pos2(100.0, 600.0));
        assert_eq!(level_y(r, SCALE_HIGH), 0.0);
        assert_eq!(level_y(r, SCALE_LOW), 600.0);
        assert_eq!(level_y(r, -200.0), 600.0);
        assert_eq!(level_y(r, 12.0), 0.0);
        assert_eq!(freq_x(r, SPECTRUM_LOW_HZ), 0.0);
        assert!((freq_x(r, SPECTRUM_HIGH_HZ) - 100.0).abs() < 1e-3);
    }
}
