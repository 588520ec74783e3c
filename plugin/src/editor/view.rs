//! The editor's layout and drawing.
//!
//! ```text
//! ┌ Sluice Meter  Target [Spotify / YouTube (-14 LUFS) v] [custom]        [REC ARM] [Reset] ┐
//! │ MIX REF  slots 1-4  path [Browse] [Load] [Clear] [Tonal] [Sync]  the reference's figures │
//! │ QC [EBU R 128 v] PASS [Export report]  what fails · rules checked from the file          │
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

use super::kit::{BAD, BUTTON, DIM, GOOD, PANEL, Row, TEXT, Texts, chip, fitted_line, px_rect};
use super::readings::{Readings, Span};
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
const GRID: Color32 = Color32::from_rgb(0x33, 0x39, 0x41);
const MOMENTARY: Color32 = Color32::from_rgb(0x5a, 0xb4, 0xf0);
const SHORT_TERM: Color32 = Color32::from_rgb(0xf0, 0xa0, 0x3c);
const WARN: Color32 = Color32::from_rgb(0xe8, 0xc1, 0x3a);
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

/// State kept across frames.
#[derive(Debug)]
pub struct ViewState {
    /// Frames drawn by this editor (all openings).
    pub frames: u64,
    /// The history's time span.
    pub span: Span,
    /// The history's loudness range (LUFS, bottom and top), which follows the programme.
    pub range: (f32, f32),
    /// The spectrum's peak hold: on or off, the held level per point (dB) and when it was
    /// last raised (seconds of egui's clock).
    pub peak_hold: bool,
    pub peaks: Vec<f32>,
    pub peak_times: Vec<f64>,
    /// The A/B row's path field.
    pub reference_path: String,
    /// The file chooser while it is open, and why the last one could not be opened.
    pub chooser: Option<super::chooser::Chooser>,
    pub chooser_error: Option<String>,
    /// The spectrum's band strip shows the mix's tonal balance against the target (the
    /// profile file, or the references) instead of the shares.
    pub tonal: bool,
    /// The QC row's.
    pub qc: super::qc_row::QcRowState,
}

impl ViewState {
    /// Takes the choices saved with the state.
    pub fn load(&mut self, saved: &crate::params::EditorSettings) {
        self.span = Span::ALL
            .into_iter()
            .find(|s| s.label() == saved.span)
            .unwrap_or_default();
        self.tonal = saved.tonal;
        self.peak_hold = saved.peak_hold;
    }

    /// The choices to save with the state.
    pub fn settings(&self) -> crate::params::EditorSettings {
        crate::params::EditorSettings {
            span: self.span.label().into(),
            tonal: self.tonal,
            peak_hold: self.peak_hold,
        }
    }
}

impl Default for ViewState {
    fn default() -> Self {
        ViewState {
            frames: 0,
            span: Span::default(),
            range: DEFAULT_RANGE,
            peak_hold: true,
            peaks: Vec::new(),
            peak_times: Vec::new(),
            reference_path: String::new(),
            chooser: None,
            chooser_error: None,
            tonal: false,
            qc: Default::default(),
        }
    }
}

/// The history's range before there is anything to follow.
const DEFAULT_RANGE: (f32, f32) = (-42.0, -6.0);
/// The history's range: never narrower than this (LU), in steps of [`RANGE_STEP`].
const RANGE_MIN_LU: f32 = 18.0;
const RANGE_STEP: f32 = 6.0;
/// How long a spectrum peak is held before it falls (s), and how fast it falls (dB/s).
const PEAK_HOLD_S: f64 = 2.0;
const PEAK_FALL_DB_PER_S: f32 = 20.0;

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
    let k = (full.width() / super::DEFAULT_SIZE.0)
        .min(full.height() / super::DEFAULT_SIZE.1)
        .clamp(1.0, 2.0);
    let mut texts = Texts::new(k);
    let ppp = ui.ctx().pixels_per_point();

    let top = Rect::from_min_size(full.min, vec2(full.width(), 36.0 * k));
    let bottom = Rect::from_min_max(pos2(full.min.x, full.max.y - 28.0 * k), full.max);
    let ab = Rect::from_min_max(
        pos2(full.min.x + 6.0, top.max.y + 4.0),
        pos2(full.max.x - 6.0, top.max.y + 4.0 + 28.0 * k),
    );
    let qc = Rect::from_min_max(
        pos2(full.min.x + 6.0, ab.max.y + 4.0),
        pos2(full.max.x - 6.0, ab.max.y + 4.0 + 26.0 * k),
    );
    let body =
        Rect::from_min_max(pos2(full.min.x, qc.max.y), pos2(full.max.x, bottom.min.y)).shrink(6.0);

    let controls = top_bar(ui, top, r, params, shared, setter, &mut texts);
    // The slots once per frame (each is a clone under the slot's lock).
    let slots = shared.references.statuses();
    let ab_json = ab_row(
        ui, &painter, &mut texts, ab, params, shared, &slots, setter, state,
    );

    let qc_json =
        super::qc_row::qc_row(ui, &painter, &mut texts, qc, params, shared, &mut state.qc);

    let left_w = (body.width() * 0.28).clamp(220.0, 300.0 * k);
    let left = Rect::from_min_size(body.min, vec2(left_w, body.height()));
    let bars = Rect::from_min_size(
        pos2(left.max.x + 6.0, body.min.y),
        vec2(150.0 * k, body.height()),
    );
    let right = Rect::from_min_max(pos2(bars.max.x + 6.0, body.min.y), body.max);
    let split = right.min.y + right.height() * 0.55;
    let history = Rect::from_min_max(right.min, pos2(right.max.x, split - 3.0));
    let spectrum = Rect::from_min_max(pos2(right.min.x, split + 3.0), right.max);

    let numbers = numbers_panel(&painter, &mut texts, left, r);
    let bar_values = loudness_bars(&painter, &mut texts, bars, r);
    let hist = history_plot(ui, &painter, &mut texts, history, r, state);
    let tonal = if state.tonal {
        shared.references.tonal_target_of(&slots)
    } else {
        None
    };
    let spec = spectrum_plot(ui, &painter, &mut texts, spectrum, r, state, tonal.as_ref());
    let record = status_bar(&painter, &mut texts, bottom, r);
    let history_points = hist.points;
    let spectrum_points = spec.points;

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
            "rects": controls.rects.to_json(ppp),
        },
        "ab": ab_json,
        "qc": qc_json,
        "history": hist.json,
        "spectrum": spec.json,
        "layout": {
            "scale": k,
            "panels": {
                "top": px_rect(top, ppp),
                "ab": px_rect(ab, ppp),
                "qc": px_rect(qc, ppp),
                "numbers": px_rect(left, ppp),
                "bars": px_rect(bars, ppp),
                "history": px_rect(history, ppp),
                "spectrum": px_rect(spectrum, ppp),
                "status": px_rect(bottom, ppp),
            },
            "history_plot": px_rect(hist.area, ppp),
            "spectrum_plot": px_rect(spec.area, ppp),
            "texts": texts.to_json(ppp),
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
    texts: &mut Texts,
) -> Controls {
    ui.painter().rect_filled(rect, 0.0, PANEL);
    let k = texts.k;
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
            // The chooser's text (and its list) grows with the window like the rest.
            ui.style_mut().override_font_id = Some(FontId::proportional(13.0 * k));
            let title = ui.label(
                egui::RichText::new("Sluice Meter")
                    .strong()
                    .color(TEXT)
                    .size(15.0 * k),
            );
            texts.widget("top", "Sluice Meter", title.rect);
            ui.add_space(12.0);
            let label = ui.label(egui::RichText::new("Target").color(DIM).size(13.0 * k));
            texts.widget("top", "Target", label.rect);
            let mut chosen = None;
            let combo = egui::ComboBox::from_id_salt("sluice-target")
                .selected_text(target.as_str())
                .width(220.0 * k)
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
            texts.widget("top", &target, combo.response.rect);
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
                let reset = ui.add(
                    egui::Button::new(egui::RichText::new("Reset").size(13.0 * k))
                        .min_size(vec2(56.0 * k, 24.0 * k)),
                );
                texts.widget("top", "Reset", reset.rect);
                rects.reset = Some(reset.rect);
                if reset.clicked() {
                    shared.request_reset();
                }
                // A button that looks like one: framed, a record dot, filled red while armed.
                let text = if armed { "REC ARMED" } else { "REC ARM" };
                let arm = ui.add(
                    egui::Button::new(
                        egui::RichText::new(text)
                            .size(13.0 * k)
                            .strong()
                            .color(if armed { Color32::WHITE } else { TEXT }),
                    )
                    .fill(if armed { BAD } else { BUTTON })
                    .stroke(Stroke::new(1.0, if armed { BAD } else { DIM }))
                    .corner_radius(4.0)
                    .min_size(vec2(112.0 * k, 24.0 * k)),
                );
                // The dot, in the button's left padding (the text is centred).
                let text_w = ui
                    .painter()
                    .layout_no_wrap(text.into(), FontId::proportional(13.0 * k), TEXT)
                    .size()
                    .x;
                let dot = pos2(
                    arm.rect.center().x - text_w / 2.0 - 10.0 * k,
                    arm.rect.center().y,
                );
                ui.painter()
                    .circle_filled(dot, 4.5 * k, if armed { Color32::WHITE } else { BAD });
                texts.widget("top", text, arm.rect);
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

fn numbers_panel(p: &egui::Painter, t: &mut Texts, rect: Rect, r: &Readings) -> Numbers {
    t.group = "numbers";
    let k = t.k;
    p.rect_filled(rect, 4.0, PANEL);
    let x = rect.min.x + 12.0;
    let y = rect.min.y + 10.0;
    let (integrated, distance, y) = integrated_reading(p, t, x, y, r);
    let value_x = rect.max.x - 52.0 * k;
    let y = reading_rows(p, t, x, value_x, y, r);
    // True peak with the over-ceiling light.
    let y = true_peak_reading(p, t, x, value_x, y, r);
    let (peaks, y) = channel_peaks(p, t, rect, x, y, r);
    // Correlation meter: -1 .. +1.
    correlation_meter(p, t, rect, x, y, r);

    Numbers {
        integrated,
        distance,
        peaks,
    }
}

/// Draws the integrated loudness, big, and its distance from the target; returns both and the y.
fn integrated_reading(
    p: &egui::Painter,
    t: &mut Texts,
    x: f32,
    mut y: f32,
    r: &Readings,
) -> (String, String, f32) {
    let k = t.k;
    t.text(
        p,
        pos2(x, y),
        Align2::LEFT_TOP,
        "INTEGRATED",
        t.prop(12.0),
        DIM,
    );
    y += 16.0 * k;
    let integrated = fmt1(r.integrated);
    let big = t.text(
        p,
        pos2(x, y),
        Align2::LEFT_TOP,
        &integrated,
        t.prop(46.0),
        if r.integrated.is_finite() {
            distance_colour(r.distance_lu)
        } else {
            TEXT
        },
    );
    t.text(
        p,
        pos2(big.max.x + 6.0, big.max.y - 8.0 * k),
        Align2::LEFT_BOTTOM,
        "LUFS",
        t.prop(14.0),
        DIM,
    );
    y = big.max.y + 4.0 * k;
    let distance = if r.distance_lu.is_finite() {
        format!(
            "{} LU from {} LUFS",
            fmt1_signed(r.distance_lu),
            fmt1(r.target_lufs)
        )
    } else {
        format!("target {} LUFS", fmt1(r.target_lufs))
    };
    t.text(
        p,
        pos2(x, y),
        Align2::LEFT_TOP,
        &distance,
        t.prop(14.0),
        distance_colour(r.distance_lu),
    );
    y += 26.0 * k;
    (integrated, distance, y)
}

/// Draws the six readings (M, S, their maxima, loudness range, PLR) with units; returns the next y.
fn reading_rows(
    p: &egui::Painter,
    t: &mut Texts,
    x: f32,
    value_x: f32,
    mut y: f32,
    r: &Readings,
) -> f32 {
    let k = t.k;
    let rows: [(&str, String, &str); 6] = [
        ("Momentary", fmt1(r.momentary), "LUFS"),
        ("Short-term", fmt1(r.short_term), "LUFS"),
        ("Max momentary", fmt1(r.max_momentary), "LUFS"),
        ("Max short-term", fmt1(r.max_short_term), "LUFS"),
        ("Loudness range", fmt1(r.loudness_range), "LU"),
        ("PLR", fmt1(r.plr), "LU"),
    ];
    for (label, value, unit) in rows {
        t.text(p, pos2(x, y), Align2::LEFT_TOP, label, t.prop(13.0), DIM);
        t.text(
            p,
            pos2(value_x, y),
            Align2::RIGHT_TOP,
            value,
            t.mono(13.0),
            TEXT,
        );
        t.text(
            p,
            pos2(value_x + 6.0, y),
            Align2::LEFT_TOP,
            unit,
            t.prop(11.0),
            DIM,
        );
        y += 19.0 * k;
    }
    y
}

/// Draws the true peak maximum and the over-ceiling light with the ceiling; returns the next y.
fn true_peak_reading(
    p: &egui::Painter,
    t: &mut Texts,
    x: f32,
    value_x: f32,
    mut y: f32,
    r: &Readings,
) -> f32 {
    let k = t.k;
    y += 6.0 * k;
    t.text(
        p,
        pos2(x, y),
        Align2::LEFT_TOP,
        "True peak max",
        t.prop(13.0),
        DIM,
    );
    let over = r.over_ceiling;
    t.text(
        p,
        pos2(value_x, y),
        Align2::RIGHT_TOP,
        fmt1(r.true_peak),
        t.mono(13.0),
        if over { BAD } else { TEXT },
    );
    t.text(
        p,
        pos2(value_x + 6.0, y),
        Align2::LEFT_TOP,
        "dBTP",
        t.prop(11.0),
        DIM,
    );
    y += 20.0 * k;
    let light = pos2(x + 8.0 * k, y + 8.0 * k);
    p.circle_filled(light, 7.0 * k, if over { BAD } else { LIGHT_OFF });
    t.text(
        p,
        pos2(x + 22.0 * k, y + 1.0),
        Align2::LEFT_TOP,
        format!("OVER  (ceiling {} dBTP)", fmt1(r.target_ceiling)),
        t.prop(12.0),
        if over { BAD } else { DIM },
    );
    y += 22.0 * k;
    y
}

/// Draws each channel's true peak, wrapping when the panel is full; returns them and the y.
fn channel_peaks(
    p: &egui::Painter,
    t: &mut Texts,
    rect: Rect,
    x: f32,
    mut y: f32,
    r: &Readings,
) -> (Vec<String>, f32) {
    let k = t.k;
    let mut peaks = Vec::with_capacity(r.channels);
    let mut cx = x;
    for c in 0..r.channels {
        let text = fmt1(r.true_peak_channel[c]);
        let shown = format!("{} {}", channel_name(c, r.channels), text);
        let over_c = r.true_peak_channel[c] > r.target_ceiling;
        let drawn = t.text(
            p,
            pos2(cx, y),
            Align2::LEFT_TOP,
            &shown,
            t.mono(12.0),
            if over_c { BAD } else { TEXT },
        );
        cx = drawn.max.x + 12.0;
        if cx > rect.max.x - 60.0 {
            cx = x;
            y += 16.0 * k;
        }
        peaks.push(text);
    }
    y += 26.0 * k;
    (peaks, y)
}

/// Draws the correlation reading and its meter from -1 to +1 with the scale's labels.
fn correlation_meter(
    p: &egui::Painter,
    t: &mut Texts,
    rect: Rect,
    x: f32,
    mut y: f32,
    r: &Readings,
) {
    let k = t.k;
    t.text(
        p,
        pos2(x, y),
        Align2::LEFT_TOP,
        "Correlation",
        t.prop(13.0),
        DIM,
    );
    t.text(
        p,
        pos2(rect.max.x - 12.0, y),
        Align2::RIGHT_TOP,
        fmt_corr(r.correlation),
        t.mono(13.0),
        TEXT,
    );
    y += 20.0 * k;
    let meter = Rect::from_min_max(
        pos2(x, y),
        pos2(rect.max.x - 12.0, (y + 14.0 * k).min(rect.max.y - 18.0 * k)),
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
    for (label, a) in [
        ("-1", Align2::LEFT_TOP),
        ("0", Align2::CENTER_TOP),
        ("+1", Align2::RIGHT_TOP),
    ] {
        let px = match a {
            Align2::LEFT_TOP => meter.min.x,
            Align2::RIGHT_TOP => meter.max.x,
            _ => mid,
        };
        t.text(p, pos2(px, meter.max.y + 2.0), a, label, t.prop(10.0), DIM);
    }
}

fn level_y(rect: Rect, lufs: f32) -> f32 {
    let t = ((lufs - SCALE_LOW) / (SCALE_HIGH - SCALE_LOW)).clamp(0.0, 1.0);
    rect.max.y - t * rect.height()
}

/// The M and S bars with their scale, target band and maxima. Returns the levels drawn.
fn loudness_bars(p: &egui::Painter, t: &mut Texts, rect: Rect, r: &Readings) -> (f32, f32) {
    t.group = "bars";
    let k = t.k;
    p.rect_filled(rect, 4.0, PANEL);
    let area = Rect::from_min_max(
        pos2(rect.min.x + 8.0, rect.min.y + 24.0 * k),
        pos2(rect.max.x - 8.0, rect.max.y - 10.0 * k),
    );
    let bar_w = 34.0 * k;
    let m_bar = Rect::from_min_size(area.min, vec2(bar_w, area.height()));
    let s_bar = Rect::from_min_size(
        pos2(area.min.x + bar_w + 10.0 * k, area.min.y),
        vec2(bar_w, area.height()),
    );
    let scale_x = s_bar.max.x + 8.0;

    // Target band across both bars.
    target_band(
        p,
        area,
        egui::Rangef::new(m_bar.min.x, s_bar.max.x),
        (SCALE_LOW, SCALE_HIGH),
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
        t.text(
            p,
            pos2(scale_x, y),
            Align2::LEFT_CENTER,
            format!("{l:.0}"),
            t.mono(10.0),
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
        t.text(
            p,
            pos2(bar.center().x, rect.min.y + 6.0),
            Align2::CENTER_TOP,
            name,
            t.prop(13.0),
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

/// What a plot drew: its points, its plotting area, and its part of the published frame.
struct Plot {
    points: usize,
    area: Rect,
    json: Value,
}

/// A `-m:ss` / `-h:mm:ss` label for `seconds` before now ("now" at 0).
pub fn fmt_ago(seconds: f64) -> String {
    let s = seconds.round() as u64;
    if s == 0 {
        "now".into()
    } else if s < 60 {
        format!("-{s}s")
    } else if s < 3_600 {
        format!("-{}:{:02}", s / 60, s % 60)
    } else {
        format!("-{}:{:02}:{:02}", s / 3_600, s / 60 % 60, s % 60)
    }
}

/// The interval between time ticks for a plot `width` points wide showing `span` seconds:
/// the shortest of a 1-2-5-like series whose ticks are at least `min_px` apart.
pub fn time_tick(span: f64, width: f32, min_px: f32) -> f64 {
    const STEPS: [f64; 16] = [
        1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1_800.0, 3_600.0,
        7_200.0, 10_800.0, 21_600.0,
    ];
    STEPS
        .into_iter()
        .find(|s| s / span * width as f64 >= min_px as f64)
        .unwrap_or(21_600.0)
}

/// The history's loudness range for the values shown and the target: whole multiples of
/// [`RANGE_STEP`] around everything with a margin, the target band always inside, at least
/// [`RANGE_MIN_LU`] tall; [`DEFAULT_RANGE`] (or around the target) before any value.
pub fn history_range(momentary: &[f32], short_term: &[f32], target: f32) -> (f32, f32) {
    let finite = |v: &&f32| v.is_finite();
    let lo = short_term
        .iter()
        .filter(finite)
        .fold(f32::INFINITY, |a, &b| a.min(b));
    let hi = momentary
        .iter()
        .chain(short_term)
        .filter(finite)
        .fold(f32::NEG_INFINITY, |a, &b| a.max(b));
    let (mut lo, mut hi) = if lo.is_finite() && hi.is_finite() {
        (lo, hi)
    } else if target.is_finite() {
        (target, target)
    } else {
        return DEFAULT_RANGE;
    };
    if target.is_finite() {
        lo = lo.min(target - TARGET_TOLERANCE_LU);
        hi = hi.max(target + TARGET_TOLERANCE_LU);
    }
    let mut bottom = ((lo - 2.0) / RANGE_STEP).floor() * RANGE_STEP;
    let top = (((hi + 2.0) / RANGE_STEP).ceil() * RANGE_STEP).min(12.0);
    if top - bottom < RANGE_MIN_LU {
        bottom = top - RANGE_MIN_LU;
    }
    (bottom.max(-84.0), top)
}

fn range_y(area: Rect, range: (f32, f32), lufs: f32) -> f32 {
    let t = ((lufs - range.0) / (range.1 - range.0)).clamp(0.0, 1.0);
    area.max.y - t * area.height()
}

/// A panel's title: the first of `choices` that ends before `right` (the last one otherwise).
fn title(p: &egui::Painter, t: &mut Texts, at: Pos2, right: f32, choices: &[&str]) {
    let font = t.prop(12.0);
    let text = choices
        .iter()
        .find(|c| at.x + p.layout_no_wrap(c.to_string(), font.clone(), DIM).size().x <= right)
        .or(choices.last())
        .copied()
        .unwrap_or("");
    t.text(p, at, Align2::LEFT_TOP, text, font, DIM);
}

/// Loudness history: M and S over the chosen span with the target band, a range that follows
/// the programme, a time and value readout under the pointer, and a histogram of the
/// short-term loudness shown beside it.
fn history_plot(
    ui: &mut Ui,
    p: &egui::Painter,
    t: &mut Texts,
    rect: Rect,
    r: &Readings,
    state: &mut ViewState,
) -> Plot {
    t.group = "history";
    let k = t.k;
    p.rect_filled(rect, 4.0, PANEL);
    // The span chooser, right to left at the title's height.
    let (chips, right) = span_chips(ui, p, t, rect, state);
    title(
        p,
        t,
        rect.min + vec2(10.0, 6.0),
        right - 6.0,
        &[
            "Loudness history (LUFS: M, S) and target band",
            "Loudness history (LUFS)",
            "LUFS",
        ],
    );
    let hist_w = 64.0 * k;
    let area = Rect::from_min_max(
        rect.min + vec2(40.0 * k, 32.0 * k),
        pos2(rect.max.x - hist_w - 14.0 * k, rect.max.y - 18.0 * k),
    );
    let hist_area = Rect::from_min_max(
        pos2(area.max.x + 6.0 * k, area.min.y),
        pos2(rect.max.x - 8.0, area.max.y),
    );
    let span = r.history_span_seconds;
    let n = r.history_short_term.len();
    state.range = history_range(&r.history_momentary, &r.history_short_term, r.target_lufs);
    let range = state.range;
    target_band(p, area, area.x_range(), range, r.target_lufs);
    target_band(p, hist_area, hist_area.x_range(), range, r.target_lufs);
    // Loudness grid: every 3, 6 or 12 LU, whichever keeps the labels apart.
    history_grid(p, t, area, range);
    // Time ticks back from now (the right edge), as far apart as their labels need.
    let tick = history_time_ticks(p, t, area, span);
    // The traces: about one point per pixel column, sampled back from the newest.
    let per = r.history_point_seconds;
    let step_x = (per / span) as f32 * area.width();
    history_traces(p, area, range, r, step_x);
    // The histogram of the short-term loudness shown: 1 LU bins over the range.
    let counts = history_histogram(p, t, area, hist_area, range, r);
    // Readout under the pointer.
    let readout = history_readout(ui, p, t, area, r, step_x);
    let fill = if n > 1 {
        ((n - 1) as f64 * per / span).min(1.0)
    } else {
        0.0
    };
    Plot {
        points: n,
        area,
        json: json!({
            "span": r.history_span.label(),
            "span_seconds": span,
            "point_seconds": per,
            "points": n,
            "fill": fill,
            "range_lufs": [range.0, range.1],
            "tick_seconds": tick,
            "histogram_bins": counts.iter().filter(|&&c| c > 0).count(),
            "readout": readout,
            "chips": chips,
            "histogram": px_rect(hist_area, ui.ctx().pixels_per_point()),
        }),
    }
}

/// Draws the history's span chips right to left; returns their rectangles and the x left of them.
fn span_chips(
    ui: &mut Ui,
    p: &egui::Painter,
    t: &mut Texts,
    rect: Rect,
    state: &mut ViewState,
) -> (serde_json::Map<String, Value>, f32) {
    let mut chips = serde_json::Map::new();
    let mut right = rect.max.x - 8.0;
    for span in Span::ALL.iter().rev() {
        let (c, clicked) = chip(
            ui,
            p,
            t,
            right,
            rect.min.y + 4.0,
            span.label(),
            state.span == *span,
        );
        if clicked {
            state.span = *span;
            ui.ctx().request_repaint();
        }
        chips.insert(span.label().into(), px_rect(c, ui.ctx().pixels_per_point()));
        right = c.min.x - 4.0;
    }
    (chips, right)
}

/// Draws the history's loudness grid lines and their labels, as far apart as the labels need.
fn history_grid(p: &egui::Painter, t: &mut Texts, area: Rect, range: (f32, f32)) {
    let k = t.k;
    let per_lu = area.height() / (range.1 - range.0);
    let step = [3.0f32, 6.0, 12.0]
        .into_iter()
        .find(|s| s * per_lu >= 18.0 * k)
        .unwrap_or(24.0);
    let mut l = (range.0 / step).ceil() * step;
    while l <= range.1 + 0.01 {
        let y = range_y(area, range, l);
        p.line_segment(
            [pos2(area.min.x, y), pos2(area.max.x, y)],
            Stroke::new(1.0, GRID),
        );
        t.text(
            p,
            pos2(area.min.x - 4.0, y),
            Align2::RIGHT_CENTER,
            format!("{l:.0}"),
            t.mono(10.0),
            DIM,
        );
        l += step;
    }
}

/// Draws the time ticks and their labels back from now; returns the seconds between ticks.
fn history_time_ticks(p: &egui::Painter, t: &mut Texts, area: Rect, span: f64) -> f64 {
    let k = t.k;
    let tick = time_tick(span, area.width(), 56.0 * k);
    let mut i = 0;
    loop {
        let ago = i as f64 * tick;
        if ago > span + 1e-9 {
            break;
        }
        let x = area.max.x - (ago / span) as f32 * area.width();
        p.line_segment(
            [pos2(x, area.max.y), pos2(x, area.max.y + 4.0)],
            Stroke::new(1.0, DIM),
        );
        let label = fmt_ago(ago);
        let w = p.layout_no_wrap(label.clone(), t.prop(10.0), DIM).size().x;
        // Centred on its tick, or kept over the plot at either end.
        let align = if x + w / 2.0 > area.max.x {
            Align2::RIGHT_TOP
        } else if x - w / 2.0 < area.min.x {
            Align2::LEFT_TOP
        } else {
            Align2::CENTER_TOP
        };
        t.text(
            p,
            pos2(x, area.max.y + 4.0),
            align,
            label,
            t.prop(10.0),
            DIM,
        );
        i += 1;
    }
    tick
}

/// Draws the M and S traces, about one point per pixel column, clipped to the plot.
fn history_traces(p: &egui::Painter, area: Rect, range: (f32, f32), r: &Readings, step_x: f32) {
    let n = r.history_short_term.len();
    let stride = ((1.0 / step_x.max(1e-6)).ceil() as usize).max(1);
    let plot = p.with_clip_rect(area.expand(1.0));
    for (values, colour, width) in [
        (&r.history_momentary, MOMENTARY, 1.0),
        (&r.history_short_term, SHORT_TERM, 2.0),
    ] {
        let mut line: Vec<Pos2> = Vec::with_capacity(n / stride + 2);
        let mut i = n.saturating_sub(1) % stride;
        while i < n {
            let v = values[i];
            let x = area.max.x - (n - 1 - i) as f32 * step_x;
            if v.is_finite() {
                line.push(pos2(x, range_y(area, range, v)));
            } else if line.len() > 1 {
                plot.line(std::mem::take(&mut line), Stroke::new(width, colour));
            } else {
                line.clear();
            }
            i += stride;
        }
        if line.len() > 1 {
            plot.line(line, Stroke::new(width, colour));
        }
    }
}

/// Draws the short-term loudness histogram beside the plot and its label; returns the bin counts.
fn history_histogram(
    p: &egui::Painter,
    t: &mut Texts,
    area: Rect,
    hist_area: Rect,
    range: (f32, f32),
    r: &Readings,
) -> Vec<u32> {
    let bins = (range.1 - range.0).round().max(1.0) as usize;
    let mut counts = vec![0u32; bins];
    for v in r.history_short_term.iter().filter(|v| v.is_finite()) {
        let b = ((v - range.0).floor() as isize).clamp(0, bins as isize - 1) as usize;
        counts[b] += 1;
    }
    let most = counts.iter().copied().max().unwrap_or(0);
    p.rect_stroke(hist_area, 2.0, Stroke::new(1.0, GRID), StrokeKind::Inside);
    if most > 0 {
        for (b, &c) in counts.iter().enumerate() {
            if c == 0 {
                continue;
            }
            let y0 = range_y(area, range, range.0 + b as f32);
            let y1 = range_y(area, range, range.0 + b as f32 + 1.0);
            let len = c as f32 / most as f32 * (hist_area.width() - 2.0);
            p.rect_filled(
                Rect::from_min_max(
                    pos2(hist_area.min.x + 1.0, y1 + 0.5),
                    pos2(hist_area.min.x + 1.0 + len, y0 - 0.5),
                ),
                0.0,
                SHORT_TERM.gamma_multiply(0.7),
            );
        }
    }
    t.text(
        p,
        pos2(hist_area.center().x, hist_area.max.y + 4.0),
        Align2::CENTER_TOP,
        "S spread",
        t.prop(10.0),
        DIM,
    );
    counts
}

/// Draws the time and M/S readout under the pointer; returns its text (null when none is shown).
fn history_readout(
    ui: &mut Ui,
    p: &egui::Painter,
    t: &mut Texts,
    area: Rect,
    r: &Readings,
    step_x: f32,
) -> Value {
    let span = r.history_span_seconds;
    let per = r.history_point_seconds;
    let n = r.history_short_term.len();
    let hover = ui.interact(
        area,
        ui.scope_id().with("sluice-history-plot"),
        egui::Sense::hover(),
    );
    let mut readout = Value::Null;
    if let Some(pos) = hover.hover_pos()
        && n > 0
    {
        let ago = ((area.max.x - pos.x) / area.width()) as f64 * span;
        let back = (ago / per).round() as usize;
        if back < n {
            let i = n - 1 - back;
            let x = area.max.x - back as f32 * step_x;
            p.line_segment(
                [pos2(x, area.min.y), pos2(x, area.max.y)],
                Stroke::new(1.0, TEXT),
            );
            let text = format!(
                "{}  M {}  S {} LUFS",
                fmt_ago(back as f64 * per),
                fmt1(r.history_momentary[i]),
                fmt1(r.history_short_term[i])
            );
            let g = t.group;
            t.group = "history-readout";
            let at = pos2(area.min.x + 6.0, area.min.y + 4.0);
            let galley = p.layout_no_wrap(text.clone(), t.mono(11.0), TEXT);
            p.rect_filled(
                Rect::from_min_size(at, galley.size()).expand(3.0),
                3.0,
                BACKGROUND.gamma_multiply(0.9),
            );
            t.text(p, at, Align2::LEFT_TOP, &text, t.mono(11.0), TEXT);
            t.group = g;
            readout = json!(text);
        }
    }
    readout
}

/// The target band (target ± [`TARGET_TOLERANCE_LU`]) across `xs`, on `area`'s loudness scale
/// `range`; nothing while the target is undefined.
fn target_band(p: &egui::Painter, area: Rect, xs: egui::Rangef, range: (f32, f32), target: f32) {
    if target.is_finite() {
        let band = Rect::from_x_y_ranges(
            xs,
            range_y(area, range, target + TARGET_TOLERANCE_LU)
                ..=range_y(area, range, target - TARGET_TOLERANCE_LU),
        );
        p.rect_filled(band, 0.0, TARGET_BAND);
    }
}

fn freq_x(area: Rect, hz: f32) -> f32 {
    let t = (hz / SPECTRUM_LOW_HZ).ln() / (SPECTRUM_HIGH_HZ / SPECTRUM_LOW_HZ).ln();
    area.min.x + t.clamp(0.0, 1.0) * area.width()
}

/// The spectrum over the five shaded bands, their names and shares in a strip of their own
/// above the plot (the trace is clipped to the plot, so it never crosses a label), a dB axis,
/// and an optional peak hold.
#[allow(clippy::too_many_arguments)]
fn spectrum_plot(
    ui: &mut Ui,
    p: &egui::Painter,
    t: &mut Texts,
    rect: Rect,
    r: &Readings,
    state: &mut ViewState,
    tonal: Option<&crate::reference::TonalTarget>,
) -> Plot {
    t.group = "spectrum";
    let k = t.k;
    p.rect_filled(rect, 4.0, PANEL);
    let (hold_chip, clicked) = chip(
        ui,
        p,
        t,
        rect.max.x - 8.0,
        rect.min.y + 4.0,
        "Peak hold",
        state.peak_hold,
    );
    title(
        p,
        t,
        rect.min + vec2(10.0, 6.0),
        hold_chip.min.x - 6.0,
        &[
            "Spectrum (dB re full-scale sine, Hz) and band shares",
            "Spectrum (dB, Hz) and band shares",
            "Spectrum (dB, Hz)",
        ],
    );
    if clicked {
        state.peak_hold = !state.peak_hold;
    }
    let strip_h = 30.0 * k;
    let area = Rect::from_min_max(
        rect.min + vec2(40.0 * k, 28.0 * k + strip_h),
        rect.max - vec2(10.0, 18.0 * k),
    );
    let strip = Rect::from_min_max(
        pos2(area.min.x, area.min.y - strip_h),
        pos2(area.max.x, area.min.y - 2.0),
    );
    let bands = shade_bands(p, area, strip);
    let deltas = band_labels(p, t, strip, &bands, r, tonal);
    // dB grid: every 20 dB, or 40 when the plot is too short for their labels.
    let step = spectrum_db_grid(p, t, area, strip);
    spectrum_freq_labels(p, t, area);
    // Peak hold: each point held for PEAK_HOLD_S, then falling.
    update_peaks(ui, state, r);
    let n = spectrum_traces(p, area, state, r);
    let ppp = ui.ctx().pixels_per_point();
    Plot {
        points: n,
        area,
        json: json!({
            "peak_hold": state.peak_hold,
            "tonal": tonal.map(|t| json!({
                "target": t.name,
                "deltas_db": deltas,
                "tolerance_db": t.tolerance_db,
            })),
            "peak_hold_chip": px_rect(hold_chip, ppp),
            "label_strip": px_rect(strip, ppp),
            "db_step": step,
        }),
    }
}

/// The height of `db` on the spectrum's plotting `area`.
fn spectrum_db_y(area: Rect, db: f32) -> f32 {
    let v = ((db - SPECTRUM_FLOOR_DB) / -SPECTRUM_FLOOR_DB).clamp(0.0, 1.0);
    area.max.y - v * area.height()
}

/// Shades the five bands across the plot and the label strip; returns their x ranges.
fn shade_bands(p: &egui::Painter, area: Rect, strip: Rect) -> Vec<egui::Rangef> {
    let bands: Vec<egui::Rangef> = BANDS
        .iter()
        .map(|(_, lo, hi)| egui::Rangef::new(freq_x(area, *lo as f32), freq_x(area, *hi as f32)))
        .collect();
    for (i, xs) in bands.iter().enumerate() {
        let shade = BAND_SHADES[i % BAND_SHADES.len()];
        p.rect_filled(Rect::from_x_y_ranges(*xs, area.y_range()), 0.0, shade);
        p.rect_filled(Rect::from_x_y_ranges(*xs, strip.y_range()), 0.0, shade);
    }
    bands
}

/// Writes each band's name and share (or its tonal target difference); returns the differences.
fn band_labels(
    p: &egui::Painter,
    t: &mut Texts,
    strip: Rect,
    bands: &[egui::Rangef],
    r: &Readings,
    tonal: Option<&crate::reference::TonalTarget>,
) -> Option<Vec<f64>> {
    let font = t.prop(11.0);
    let deltas = tonal.and_then(|t| t.deltas(&r.band_share_long));
    t.group = "spectrum-bands";
    for (i, xs) in bands.iter().enumerate() {
        let fits = |s: &str| {
            p.layout_no_wrap(s.to_string(), font.clone(), TEXT).size().x <= xs.span() - 4.0
        };
        let name = if fits(BAND_NAMES[i]) {
            BAND_NAMES[i]
        } else {
            BAND_SHORT_NAMES[i]
        };
        let x = xs.center();
        t.text(
            p,
            pos2(x, strip.min.y + 1.0),
            Align2::CENTER_TOP,
            name,
            font.clone(),
            TEXT,
        );
        let share = r.band_share[i];
        // With a tonal target: the mix's difference from it, coloured by its tolerance.
        if let Some(d) = deltas.as_ref().and_then(|d| d.get(i)) {
            let tol = tonal.map_or(1.0, |t| t.tolerance_db[i]);
            let colour = if d.abs() <= tol {
                GOOD
            } else if d.abs() <= 2.0 * tol {
                WARN
            } else {
                BAD
            };
            t.text(
                p,
                pos2(x, strip.max.y - 1.0),
                Align2::CENTER_BOTTOM,
                format!("{} dB", fmt1_signed(*d as f32)),
                font.clone(),
                colour,
            );
        } else if share.is_finite() {
            t.text(
                p,
                pos2(x, strip.max.y - 1.0),
                Align2::CENTER_BOTTOM,
                format!("{share:.0}%"),
                font.clone(),
                DIM,
            );
        }
    }
    t.group = "spectrum";
    deltas
}

/// Draws the spectrum's dB grid lines, their labels and the axis name; returns the dB step.
fn spectrum_db_grid(p: &egui::Painter, t: &mut Texts, area: Rect, strip: Rect) -> f32 {
    let k = t.k;
    let step = if 20.0 / -SPECTRUM_FLOOR_DB * area.height() >= 16.0 * k {
        20.0
    } else {
        40.0
    };
    let mut db = 0.0f32;
    while db > SPECTRUM_FLOOR_DB + 0.01 {
        let y = spectrum_db_y(area, db);
        p.line_segment(
            [pos2(area.min.x, y), pos2(area.max.x, y)],
            Stroke::new(1.0, GRID),
        );
        t.text(
            p,
            pos2(area.min.x - 4.0, y),
            Align2::RIGHT_CENTER,
            format!("{db:.0}"),
            t.mono(10.0),
            DIM,
        );
        db -= step;
    }
    t.text(
        p,
        pos2(area.min.x - 4.0, strip.min.y + 1.0),
        Align2::RIGHT_TOP,
        "dB",
        t.prop(10.0),
        DIM,
    );
    step
}

/// Draws the frequency labels under the plot, skipping any that would touch the one before.
fn spectrum_freq_labels(p: &egui::Painter, t: &mut Texts, area: Rect) {
    let k = t.k;
    let mut last_right = f32::NEG_INFINITY;
    for (hz, label) in [
        (50.0, "50"),
        (100.0, "100"),
        (200.0, "200"),
        (500.0, "500"),
        (1000.0, "1k"),
        (2000.0, "2k"),
        (5000.0, "5k"),
        (10000.0, "10k"),
    ] {
        let x = freq_x(area, hz);
        let w = p
            .layout_no_wrap(label.to_string(), t.prop(10.0), DIM)
            .size()
            .x;
        // Skip a label that would touch the one before it (narrow windows).
        if x - w / 2.0 < last_right + 4.0 * k {
            continue;
        }
        let drawn = t.text(
            p,
            pos2(x, area.max.y + 2.0),
            Align2::CENTER_TOP,
            label,
            t.prop(10.0),
            DIM,
        );
        last_right = drawn.max.x;
    }
}

/// Updates the held spectrum peaks: raised by the current level, falling after the hold time.
fn update_peaks(ui: &Ui, state: &mut ViewState, r: &Readings) {
    let now = ui.input(|i| i.time);
    if state.peaks.len() != r.spectrum.len() {
        state.peaks = vec![f32::NAN; r.spectrum.len()];
        state.peak_times = vec![now; r.spectrum.len()];
    }
    let dt = ui.input(|i| i.stable_dt).clamp(0.0, 0.5);
    for (i, &db) in r.spectrum.iter().enumerate() {
        let held = &mut state.peaks[i];
        if db.is_finite() && (!held.is_finite() || db >= *held) {
            *held = db;
            state.peak_times[i] = now;
        } else if held.is_finite() && now - state.peak_times[i] > PEAK_HOLD_S {
            *held -= PEAK_FALL_DB_PER_S * dt;
            if db.is_finite() && *held < db {
                *held = db;
            }
            if *held < SPECTRUM_FLOOR_DB {
                *held = f32::NAN;
            }
        }
    }
}

/// Draws the held peaks (when on) and the spectrum, clipped to the plot; returns the points drawn.
fn spectrum_traces(p: &egui::Painter, area: Rect, state: &ViewState, r: &Readings) -> usize {
    let plot = p.with_clip_rect(area);
    if state.peak_hold {
        let peak: Vec<Pos2> = state
            .peaks
            .iter()
            .enumerate()
            .filter(|(_, v)| v.is_finite())
            .map(|(i, &v)| pos2(freq_x(area, spectrum_point_hz(i)), spectrum_db_y(area, v)))
            .collect();
        if peak.len() > 1 {
            plot.line(peak, Stroke::new(1.0, DIM));
        }
    }
    let mut points = Vec::with_capacity(SPECTRUM_POINTS);
    for (i, &db) in r.spectrum.iter().enumerate() {
        if db.is_finite() {
            points.push(pos2(
                freq_x(area, spectrum_point_hz(i)),
                spectrum_db_y(area, db),
            ));
        }
    }
    let n = points.len();
    if n > 1 {
        plot.line(points, Stroke::new(1.5, TEXT));
    }
    n
}

/// The A/B row: Mix / Ref, the four reference slots, a path to load into the chosen slot,
/// timeline sync, and the chosen reference's figures and level match.
#[allow(clippy::too_many_arguments)]
fn ab_row(
    ui: &mut Ui,
    p: &egui::Painter,
    t: &mut Texts,
    rect: Rect,
    params: &SluiceParams,
    shared: &crate::shared::MeterShared,
    slots: &[crate::reference::SlotStatus],
    setter: Option<&ParamSetter>,
    state: &mut ViewState,
) -> Value {
    t.group = "ab";
    let k = t.k;
    p.rect_filled(rect, 4.0, PANEL);
    let ppp = ui.ctx().pixels_per_point();
    let refs = &shared.references;
    let listen = params.listen_reference.value();
    let chosen = (params.reference_slot.value().max(1) - 1) as usize;
    let sync = params.reference_sync.value();
    let y = rect.min.y + (rect.height() - 18.0 * k) / 2.0;
    let mut row = Row {
        x: rect.min.x + 8.0,
        y,
        ppp,
        rects: serde_json::Map::new(),
    };
    let set_bool = |param: &BoolParam, v: bool| {
        if let Some(s) = setter {
            s.begin_set_parameter(param);
            s.set_parameter(param, v);
            s.end_set_parameter(param);
        }
    };
    if row.place(ui, p, t, "MIX", !listen, "mix") && listen {
        set_bool(&params.listen_reference, false);
    }
    if row.place(ui, p, t, "REF", listen, "ref") && !listen {
        set_bool(&params.listen_reference, true);
    }
    row.x += 6.0 * k;
    slot_chips(ui, p, t, &mut row, params, slots, chosen, setter);
    row.x += 6.0 * k;
    // The path of a file to load into the chosen slot.
    let entered = reference_path_field(ui, t, &mut row, rect, y, state);
    // Browse: a chooser of its own (a process; polled here once a frame). What it returns is
    // loaded as if typed and loaded.
    let picked = browse_chip(ui, p, t, &mut row, state);
    let load = row.place(ui, p, t, "Load", false, "load") || entered || picked;
    let clear = row.place(ui, p, t, "Clear", false, "clear");
    if load || clear {
        state.chooser_error = None;
    }
    load_or_clear(params, refs, slots, chosen, state, load, clear);
    if row.place(ui, p, t, "Tonal", state.tonal, "tonal") {
        state.tonal = !state.tonal;
    }
    if row.place(ui, p, t, "Sync", sync, "sync") {
        set_bool(&params.reference_sync, !sync);
    }
    // The chosen reference: its figures and the gain it plays at, or why it is missing.
    let s = &slots[chosen.min(slots.len() - 1)];
    let (profile_path, profile_error) = refs.profile_status();
    let (text, colour) = reference_line(s, refs, state, &profile_error);
    // Shortened to the room left (the whole message is in the diagnostics).
    fitted_line(p, t, rect, row.x, &text, colour);
    json!({
        "listen": listen,
        "slot": chosen + 1,
        "sync": sync,
        "slots": slots,
        "line": text,
        "profile": profile_path,
        "profile_error": profile_error,
        "tonal": state.tonal,
        "gain_db": num(refs.gain_db()),
        "browsing": state.chooser.is_some(),
        "chooser_error": state.chooser_error,
        "rects": row.rects,
    })
}

/// Places one chip per reference slot (its number, file name and state); a click chooses it.
// Eight: the drawing context, the row and the slot parameter with what it chooses between.
#[allow(clippy::too_many_arguments)]
fn slot_chips(
    ui: &mut Ui,
    p: &egui::Painter,
    t: &mut Texts,
    row: &mut Row,
    params: &SluiceParams,
    slots: &[crate::reference::SlotStatus],
    chosen: usize,
    setter: Option<&ParamSetter>,
) {
    for (i, s) in slots.iter().enumerate() {
        let name = std::path::Path::new(&s.path)
            .file_stem()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let short: String = name.chars().take(10).collect();
        let mark = match s.state {
            "loading" => " …",
            "error" => " !",
            _ => "",
        };
        let text = if short.is_empty() {
            format!("{}", i + 1)
        } else {
            format!("{} {short}{mark}", i + 1)
        };
        if row.place(ui, p, t, &text, i == chosen, &format!("slot{}", i + 1))
            && i != chosen
            && let Some(set) = setter
        {
            set.begin_set_parameter(&params.reference_slot);
            set.set_parameter(&params.reference_slot, i as i32 + 1);
            set.end_set_parameter(&params.reference_slot);
        }
    }
}

/// Draws the reference file path field after the chips; returns whether Enter was pressed in it.
fn reference_path_field(
    ui: &mut Ui,
    t: &mut Texts,
    row: &mut Row,
    rect: Rect,
    y: f32,
    state: &mut ViewState,
) -> bool {
    let k = t.k;
    let field_w = (rect.max.x - row.x - 330.0 * k).clamp(60.0 * k, 260.0 * k);
    let field = Rect::from_min_size(pos2(row.x, y - 2.0), vec2(field_w, 20.0 * k));
    let edit = ui.put(
        field,
        egui::TextEdit::singleline(&mut state.reference_path)
            .hint_text("reference file path")
            .font(t.prop(11.0)),
    );
    t.widget("ab", "reference file path", edit.rect);
    row.rects.insert("path".into(), px_rect(edit.rect, row.ppp));
    row.x = edit.rect.max.x + 4.0;
    edit.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter))
}

/// Places the Browse chip, opens the file chooser and polls it; returns whether it picked a file.
fn browse_chip(
    ui: &mut Ui,
    p: &egui::Painter,
    t: &mut Texts,
    row: &mut Row,
    state: &mut ViewState,
) -> bool {
    let browsing = state.chooser.is_some();
    if row.place(ui, p, t, "Browse", browsing, "browse") && !browsing {
        match super::chooser::Chooser::open() {
            Ok(c) => {
                state.chooser = Some(c);
                state.chooser_error = None;
            }
            Err(e) => state.chooser_error = Some(e.to_string()),
        }
    }
    let mut picked = false;
    if let Some(c) = &mut state.chooser {
        match c.poll() {
            Ok(super::chooser::Chosen::Open) => ui.ctx().request_repaint(),
            Ok(super::chooser::Chosen::File(path)) => {
                state.reference_path = path;
                state.chooser = None;
                picked = true;
            }
            Ok(super::chooser::Chosen::Nothing) => state.chooser = None,
            Err(e) => {
                state.chooser_error = Some(e.to_string());
                state.chooser = None;
            }
        }
    }
    picked
}

/// Loads the typed path into the chosen slot (or as the tonal profile), or clears it, as asked.
fn load_or_clear(
    params: &SluiceParams,
    refs: &std::sync::Arc<crate::reference::References>,
    slots: &[crate::reference::SlotStatus],
    chosen: usize,
    state: &mut ViewState,
    load: bool,
    clear: bool,
) {
    let typed = state.reference_path.trim().to_string();
    let slot_empty = slots.get(chosen).is_none_or(|s| s.path.is_empty());
    // A profile file (`sluice ref profile export`) is loaded as the tonal target; Clear on an
    // empty slot clears it.
    let profile = if load && typed.to_ascii_lowercase().ends_with(".json") {
        Some(typed.clone())
    } else if clear && slot_empty {
        Some(String::new())
    } else {
        None
    };
    if let Some(path) = profile {
        if let Ok(mut settings) = params.references.write() {
            settings.profile.clone_from(&path);
        }
        if refs.load_profile(&path).is_ok() && !path.is_empty() {
            state.tonal = true;
        }
    } else if load || clear {
        let path = if clear { String::new() } else { typed };
        if let Ok(mut settings) = params.references.write() {
            settings
                .paths
                .resize(crate::reference::MAX_REFERENCES, String::new());
            settings.paths[chosen].clone_from(&path);
        }
        refs.request(chosen, &path);
    }
}

/// The chosen reference's line: its figures and the gain it plays at, or why it is missing.
fn reference_line(
    s: &crate::reference::SlotStatus,
    refs: &crate::reference::References,
    state: &ViewState,
    profile_error: &Option<String>,
) -> (String, Color32) {
    match (s.state, &s.figures, &s.error) {
        _ if state.chooser_error.is_some() => {
            (state.chooser_error.clone().unwrap_or_default(), BAD)
        }
        _ if profile_error.is_some() => (profile_error.clone().unwrap_or_default(), BAD),
        ("ready", Some(f), _) => {
            let gain = refs.gain_db();
            let mut line = format!(
                "{} LUFS  LRA {}  TP {}",
                fmt1(f.integrated_lufs as f32),
                f.loudness_range_lu.map_or("--".into(), |v| fmt1(v as f32)),
                f.true_peak_dbtp.map_or("--".into(), |v| fmt1(v as f32)),
            );
            if gain.is_finite() {
                line.push_str(&format!("  at {} dB", fmt1_signed(gain)));
            }
            // What is heard while Ref is on, measured like the mix.
            let [m, st, i] = refs.playing_lufs();
            if m.is_finite() || i.is_finite() {
                line.push_str(&format!(
                    "  heard M {} S {} I {}",
                    fmt1(m),
                    fmt1(st),
                    fmt1(i)
                ));
            }
            (line, TEXT)
        }
        ("loading", _, _) => ("loading…".to_string(), DIM),
        ("error", _, Some(e)) => (e.clone(), BAD),
        _ => ("no reference in this slot".to_string(), DIM),
    }
}

/// The take status line. Returns its texts.
fn status_bar(p: &egui::Painter, t: &mut Texts, rect: Rect, r: &Readings) -> Value {
    t.group = "status";
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
    t.text(
        p,
        pos2(rect.min.x + 28.0, rect.center().y),
        Align2::LEFT_CENTER,
        &text,
        t.prop(12.0),
        TEXT,
    );
    if let Some(e) = &r.last_error {
        t.text(
            p,
            pos2(rect.max.x - 10.0, rect.center().y),
            Align2::RIGHT_CENTER,
            e,
            t.prop(12.0),
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
    fn history_range_follows_the_programme_with_the_target_inside() {
        // Nothing yet: the default, or around the target.
        assert_eq!(history_range(&[], &[], f32::NAN), DEFAULT_RANGE);
        assert_eq!(history_range(&[], &[], -14.0), (-24.0, -6.0));
        // A programme at -31..-13 with a -14 target: -36..-6 (6 LU steps, 2 LU margins).
        let s = [-31.0, -20.0, -13.0];
        assert_eq!(history_range(&s, &s, -14.0), (-36.0, -6.0));
        // A quiet programme far below the target still shows the target band.
        let q = [-45.0, -44.0];
        assert_eq!(history_range(&q, &q, -23.0), (-48.0, -18.0));
        // Never narrower than 18 LU; momentary dips (NaN) ignored; the top capped.
        let flat = [-20.0, f32::NAN];
        assert_eq!(history_range(&flat, &flat, f32::NAN), (-36.0, -18.0));
        assert_eq!(history_range(&[30.0], &[-3.0], f32::NAN).1, 12.0);
    }

    #[test]
    fn time_ticks_and_labels() {
        // 20 s over 600 points: 2 s would be 60 points apart.
        assert_eq!(time_tick(20.0, 600.0, 56.0), 2.0);
        assert_eq!(time_tick(600.0, 232.0, 56.0), 300.0);
        assert_eq!(time_tick(1_800.0, 900.0, 56.0), 120.0);
        assert_eq!(time_tick(6.0 * 3_600.0, 100.0, 56.0), 21_600.0);
        assert_eq!(fmt_ago(0.0), "now");
        assert_eq!(fmt_ago(10.0), "-10s");
        assert_eq!(fmt_ago(90.0), "-1:30");
        assert_eq!(fmt_ago(3_725.0), "-1:02:05");
    }

    #[test]
    fn spans() {
        assert_eq!(Span::default(), Span::Session);
        assert_eq!(Span::Session.seconds(3.0), 10.0);
        assert_eq!(Span::Session.seconds(612.5), 612.5);
        assert_eq!(Span::Session.seconds(1e9), 6.0 * 3_600.0);
        assert_eq!(Span::Minute.seconds(1e9), 60.0);
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
