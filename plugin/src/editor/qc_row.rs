//! The QC row, under the A/B row: the delivery specification the session is judged against
//! (a built-in one, or a file through the chooser), the live verdict, what fails, what is left
//! to the file, and Export, which writes the session's report (JSON, HTML, CSV) into the takes
//! folder. The judging is [`crate::qc`]'s; this draws it.

use super::kit::{BAD, BUTTON, DIM, GOOD, PANEL, Row, TEXT, Texts, fitted_line, px_rect};
use crate::params::SluiceParams;
use crate::qc::Outcome;
use crate::shared::MeterShared;
use egui::{Align, Align2, FontId, Layout, Rect, Ui, UiBuilder, pos2, vec2};
use serde_json::{Value, json};
use std::sync::atomic::Ordering;

/// The row's state across frames.
#[derive(Debug, Default)]
pub struct QcRowState {
    /// The specification chooser while it is open, and why the last one failed.
    pub chooser: Option<super::chooser::Chooser>,
    pub chooser_error: Option<String>,
    /// What the row shows, judged again when a step or the choice changes.
    pub shown: Option<Shown>,
}

/// What the row shows of the last judgement (judged again only when a step or the choice
/// changes, not at every frame).
#[derive(Debug, Clone, PartialEq)]
pub struct Shown {
    steps: u64,
    chosen: String,
    /// `PASS`, `FAIL` or `—`.
    pub verdict: &'static str,
    /// What fails, or that all pass, and how many rules are left to the file.
    pub line: String,
    pub error: bool,
}

/// The judgement in words.
fn judge(shared: &MeterShared, steps: u64, chosen: String) -> Shown {
    let (verdict, line, error) = match crate::qc::report(shared) {
        None if chosen.is_empty() => (
            "—",
            "no delivery specification chosen: choose one to judge the session".to_string(),
            false,
        ),
        None => ("—", "waiting for audio".to_string(), false),
        Some(Err(e)) => ("—", e.to_string(), true),
        Some(Ok(r)) => {
            let from_file = r
                .verdicts
                .iter()
                .filter(|v| v.outcome == Outcome::FromFile)
                .count();
            let failing = r.broken();
            let judged = r.verdicts.len() - from_file;
            let mut line = if failing.is_empty() {
                format!("{} of {judged} rules pass so far", judged)
            } else {
                format!("fails: {}", failing.join("; "))
            };
            if from_file > 0 {
                line.push_str(&format!(" · {from_file} checked from the file"));
            }
            (if r.passed { "PASS" } else { "FAIL" }, line, false)
        }
    };
    Shown {
        steps,
        chosen,
        verdict,
        line,
        error,
    }
}

/// The built-in specifications' ids and names, read once.
fn builtins() -> &'static [(String, String)] {
    static NAMES: std::sync::OnceLock<Vec<(String, String)>> = std::sync::OnceLock::new();
    NAMES.get_or_init(|| {
        sluice_core::qc::spec::builtins()
            .into_iter()
            .map(|s| (s.id, s.name))
            .collect()
    })
}

/// The choice as shown: a built-in's name, a file's name, or Off.
fn chosen_name(chosen: &str) -> String {
    if chosen.is_empty() {
        return "Off".into();
    }
    builtins()
        .iter()
        .find(|(id, _)| id.eq_ignore_ascii_case(chosen))
        .map(|(_, name)| name.clone())
        .unwrap_or_else(|| {
            std::path::Path::new(chosen)
                .file_name()
                .map_or(chosen.to_string(), |n| n.to_string_lossy().into_owned())
        })
}

/// What the chooser returned, if it closed with a file; its errors go to the row.
fn poll_chooser(ui: &Ui, state: &mut QcRowState) -> Option<String> {
    let c = state.chooser.as_mut()?;
    match c.poll() {
        Ok(super::chooser::Chosen::Open) => {
            ui.ctx().request_repaint();
            None
        }
        Ok(super::chooser::Chosen::File(path)) => {
            state.chooser = None;
            Some(path)
        }
        Ok(super::chooser::Chosen::Nothing) => {
            state.chooser = None;
            None
        }
        Err(e) => {
            state.chooser_error = Some(e.to_string());
            state.chooser = None;
            None
        }
    }
}

/// The specification chooser; returns what was chosen (`Some("")` for Off) and the combo's
/// rectangle, with its entries' while the list is open.
fn spec_combo(
    ui: &mut Ui,
    t: &mut Texts,
    rect: Rect,
    x: f32,
    chosen: &str,
    state: &mut QcRowState,
) -> (Option<String>, Rect, serde_json::Map<String, Value>) {
    let k = t.k;
    let mut pick = None;
    let mut items = serde_json::Map::new();
    let ppp = ui.ctx().pixels_per_point();
    let shown = chosen_name(chosen);
    let mut combo_rect = Rect::NOTHING;
    let area = Rect::from_min_max(
        pos2(x, rect.min.y + 2.0),
        pos2(rect.max.x, rect.max.y - 2.0),
    );
    ui.scope_builder(
        UiBuilder::new()
            .max_rect(area)
            .layout(Layout::left_to_right(Align::Center)),
        |ui| {
            ui.style_mut().override_font_id = Some(FontId::proportional(12.0 * k));
            let combo = egui::ComboBox::from_id_salt("sluice-qc-spec")
                .selected_text(shown.as_str())
                .width(170.0 * k)
                // Every entry in view (the list does not scroll).
                .height(600.0 * k)
                .show_ui(ui, |ui| {
                    let mut entry = |ui: &mut Ui, label: &str, key: &str, on: bool| {
                        let item = ui.selectable_label(on, label);
                        items.insert(key.to_string(), px_rect(item.rect, ppp));
                        item.clicked()
                    };
                    if entry(ui, "Off", "", chosen.is_empty()) {
                        pick = Some(String::new());
                    }
                    if entry(ui, "File…", "file", false) {
                        match super::chooser::Chooser::open_spec() {
                            Ok(c) => {
                                state.chooser = Some(c);
                                state.chooser_error = None;
                            }
                            Err(e) => state.chooser_error = Some(e.to_string()),
                        }
                    }
                    for (id, name) in builtins() {
                        if entry(ui, name, id, id.eq_ignore_ascii_case(chosen)) {
                            pick = Some(id.clone());
                        }
                    }
                });
            combo_rect = combo.response.rect;
        },
    );
    t.widget("qc", &shown, combo_rect);
    (pick, combo_rect, items)
}

/// The QC row. Returns what it shows, for the published frame.
pub fn qc_row(
    ui: &mut Ui,
    p: &egui::Painter,
    t: &mut Texts,
    rect: Rect,
    params: &SluiceParams,
    shared: &MeterShared,
    state: &mut QcRowState,
) -> Value {
    t.group = "qc";
    let k = t.k;
    p.rect_filled(rect, 4.0, PANEL);
    let ppp = ui.ctx().pixels_per_point();
    let label = t.text(
        p,
        pos2(rect.min.x + 10.0, rect.center().y),
        Align2::LEFT_CENTER,
        "QC",
        t.prop(12.0),
        DIM,
    );
    let chosen = shared.qc.chosen();
    let (pick, combo, items) = spec_combo(ui, t, rect, label.max.x + 8.0, &chosen, state);
    if let Some(path) = poll_chooser(ui, state).or(pick) {
        shared.qc.choose(&path);
        state.chooser_error = None;
    }
    let chosen = shared.qc.chosen();
    let steps = shared.steps.load(Ordering::Acquire);
    if state
        .shown
        .as_ref()
        .is_none_or(|s| s.steps != steps || s.chosen != chosen)
    {
        state.shown = Some(judge(shared, steps, chosen.clone()));
    }
    let shown = state
        .shown
        .clone()
        .unwrap_or_else(|| judge(shared, steps, chosen));
    // The verdict, a coloured badge.
    let font = t.prop(12.0);
    let size = p
        .layout_no_wrap(shown.verdict.to_string(), font.clone(), TEXT)
        .size();
    let badge = Rect::from_min_size(
        pos2(
            combo.max.x + 8.0,
            rect.center().y - (size.y + 4.0 * k) / 2.0,
        ),
        vec2(size.x + 16.0 * k, size.y + 4.0 * k),
    );
    let colour = match shown.verdict {
        "PASS" => GOOD,
        "FAIL" => BAD,
        _ => BUTTON,
    };
    p.rect_filled(badge, 3.0, colour);
    t.text(
        p,
        badge.center(),
        Align2::CENTER_CENTER,
        shown.verdict,
        font,
        if colour == BUTTON { DIM } else { TEXT },
    );
    let mut row = Row {
        x: badge.max.x + 8.0,
        y: rect.min.y + (rect.height() - 18.0 * k) / 2.0,
        ppp,
        rects: serde_json::Map::new(),
    };
    let export = row.place(ui, p, t, "Export report", false, "export");
    if export {
        let settings = params.export.read().map(|s| s.clone()).unwrap_or_default();
        let folder = if settings.folder.trim().is_empty() {
            crate::record::default_folder()
        } else {
            std::path::PathBuf::from(settings.folder.trim())
        };
        let _ = crate::qc::export(shared, &folder, &settings.name_prefix);
    }
    let export_result = shared.qc.last_export();
    let (mut line, mut colour) = (shown.line.clone(), if shown.error { BAD } else { TEXT });
    if let Some(e) = &state.chooser_error {
        (line, colour) = (e.clone(), BAD);
    }
    match &export_result {
        Some(Ok(files)) => {
            if let Some(html) = files
                .iter()
                .find(|f| f.extension().is_some_and(|e| e == "html"))
            {
                line.push_str(&format!("   report: {}", html.display()));
            }
        }
        Some(Err(e)) => (line, colour) = (format!("export: {e}"), BAD),
        None => {}
    }
    fitted_line(p, t, rect, row.x, &line, colour);
    row.rects.insert("spec".into(), px_rect(combo, ppp));
    json!({
        "spec": chosen_name(&shared.qc.chosen()),
        "verdict": shown.verdict,
        "line": line,
        "choosing": state.chooser.is_some(),
        "chooser_error": state.chooser_error,
        "rects": row.rects,
        "spec_items": items,
    })
}
