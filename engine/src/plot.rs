//! PNG pictures for `sluice analyze --plot`: waveform, loudness history and
//! long-term spectrum.
//!
//! Drawn with `plotters` on its bitmap backend into an RGB buffer (dark theme,
//! 1200 px wide): charts, grids and tick labels come from plotters' chart
//! builder and mesh, text is DejaVu Sans embedded in the binary (plotters'
//! `ab_glyph` font support, so no system fonts are looked up), lines are
//! anti-aliased. The buffer is encoded with the pure-Rust `png` crate and
//! written through [`sluice_core::io::AtomicFile`], so a reader never sees a
//! half-written picture.
//!
//! Every input is treated as untrusted: empty slices, NaN/inf values, zero
//! durations and odd channel counts all yield a valid (if sparse) picture.

use std::io;
use std::path::Path;
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::coord::combinators::LogCoord;
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::HPos;

use ab_glyph::{Font, FontRef, PxScale, PxScaleFont, ScaleFont};

// ---------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------

/// Min/max overview of a file, one lane per channel.
pub struct WaveformPlot<'a> {
    /// e.g. the file name
    pub title: &'a str,
    pub duration_seconds: f64,
    /// one entry per channel: (label like "L", "R", "C"; per-bucket min; per-bucket max),
    /// samples in -1..1 full scale (may exceed 1 for float files)
    pub channels: Vec<(&'a str, &'a [f32], &'a [f32])>,
}

/// Loudness history. Value `i` of each history is drawn at time
/// `(i + 0.5) * step_seconds`, the middle of its step; the time axis spans
/// `len * step_seconds`.
pub struct LoudnessPlot<'a> {
    pub title: &'a str,
    /// spacing of the history values (e.g. 0.1)
    pub step_seconds: f64,
    /// LUFS; None = undefined (silence, below -70)
    pub momentary: &'a [Option<f64>],
    /// LUFS
    pub short_term: &'a [Option<f64>],
    /// LUFS
    pub integrated: Option<f64>,
    /// (preset name, target LUFS), drawn as a labelled line
    pub target: Option<(&'a str, f64)>,
}

/// Long-term average spectrum with the five analysis bands.
pub struct SpectrumPlot<'a> {
    pub title: &'a str,
    /// long-term average spectrum: bin centre frequencies (Hz, ascending) and level in dB
    /// (relative; may include -inf/very low values to clamp)
    pub freqs_hz: &'a [f64],
    pub db: &'a [f64],
    /// the five bands: (name, low Hz, high Hz, share of energy in percent)
    pub bands: &'a [(&'a str, f64, f64, f64)],
}

/// A track's tonal balance over a target's tolerance (`sluice compare --plot`).
pub struct TonalPlot<'a> {
    pub title: &'a str,
    /// What the track is held against, e.g. "genre house profile (12 references)".
    pub target: &'a str,
    /// Per third-octave point: Hz, the track's level, the target's mean, the tolerance
    /// (dB re loudness; the track level-matched).
    pub points: &'a [(f64, f64, f64, f64)],
    /// The five bands: name, low Hz, high Hz, the track's difference (dB), inside or not.
    pub bands: &'a [(&'a str, f64, f64, f64, bool)],
}

/// Render the tonal balance and write it as a PNG at `path`.
pub fn write_tonal(path: &Path, plot: &TonalPlot) -> io::Result<()> {
    write_png(path, 560, |root| draw_tonal(root, plot))
}

/// Render the waveform overview and write it as a PNG at `path`.
pub fn write_waveform(path: &Path, plot: &WaveformPlot) -> io::Result<()> {
    let height = waveform_layout(plot.channels.len()).height;
    write_png(path, height, |root| draw_waveform(root, plot))
}

/// Render the loudness history and write it as a PNG at `path`.
pub fn write_loudness(path: &Path, plot: &LoudnessPlot) -> io::Result<()> {
    write_png(path, 540, |root| draw_loudness(root, plot))
}

/// Render the long-term spectrum and write it as a PNG at `path`.
pub fn write_spectrum(path: &Path, plot: &SpectrumPlot) -> io::Result<()> {
    write_png(path, 560, |root| {
        draw_spectrum(root, plot, "long-term average spectrum")
    })
}

/// An effect's magnitude response (dB over frequency, `sluice effects test --plots`), drawn
/// as the spectrum is, without bands.
pub fn write_response(path: &Path, title: &str, freqs_hz: &[f64], db: &[f64]) -> io::Result<()> {
    let plot = SpectrumPlot {
        title,
        freqs_hz,
        db,
        bands: &[],
    };
    write_png(path, 560, |root| {
        draw_spectrum(root, &plot, "magnitude, from the impulse response")
    })
}

// ---------------------------------------------------------------------------
// Theme and layout
// ---------------------------------------------------------------------------

const WIDTH: u32 = 1200;
const MARGIN_LEFT: i32 = 76;
const MARGIN_RIGHT: i32 = 28;
const HEADER: i32 = 58;
const FOOTER: i32 = 46;

const BG: RGBColor = RGBColor(17, 20, 26);
const PANEL: RGBColor = RGBColor(24, 28, 36);
const GRID: RGBColor = RGBColor(40, 46, 58);
const GRID_MINOR: RGBColor = RGBColor(31, 36, 46);
const AXIS: RGBColor = RGBColor(92, 100, 116);
const TEXT: RGBColor = RGBColor(196, 202, 212);
const TEXT_DIM: RGBColor = RGBColor(128, 136, 150);
const TITLE: RGBColor = RGBColor(238, 241, 246);

const WAVE: RGBColor = RGBColor(72, 166, 226);
const WAVE_OVER: RGBColor = RGBColor(240, 84, 72);
const FULL_SCALE: RGBColor = RGBColor(128, 96, 56);

const MOMENTARY: RGBColor = RGBColor(84, 118, 150);
const SHORT_TERM: RGBColor = RGBColor(92, 204, 255);
const INTEGRATED: RGBColor = RGBColor(255, 196, 72);
const TARGET: RGBColor = RGBColor(118, 222, 128);

const SPECTRUM: RGBColor = RGBColor(255, 170, 96);
const BAND_COLOURS: [RGBColor; 5] = [
    RGBColor(150, 110, 255),
    RGBColor(80, 150, 255),
    RGBColor(70, 200, 170),
    RGBColor(230, 200, 80),
    RGBColor(255, 110, 130),
];

/// Text sizes in pixels.
const TITLE_SIZE: f64 = 24.0;
const LABEL_SIZE: f64 = 15.0;
const SMALL_SIZE: f64 = 12.0;

/// The font family name the embedded DejaVu Sans is registered under.
const FONT: &str = "sluice-sans";

type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;
type Drawn<T = ()> = Result<T, Box<dyn std::error::Error>>;

// ---------------------------------------------------------------------------
// Waveform
// ---------------------------------------------------------------------------

struct WaveformLayout {
    lanes: i32,
    lane_h: i32,
    gap: i32,
    height: u32,
}

fn waveform_layout(channels: usize) -> WaveformLayout {
    let lanes = channels.clamp(1, 4096) as i32;
    let gap = if lanes > 8 { 3 } else { 8 };
    let avail = 800 - HEADER - FOOTER - gap * (lanes - 1);
    let lane_h = (avail / lanes).clamp(28, 220);
    let height = HEADER + lanes * lane_h + gap * (lanes - 1) + FOOTER;
    WaveformLayout {
        lanes,
        lane_h,
        gap,
        height: height as u32,
    }
}

/// The waveform's header line: its length, its channels and its peak.
fn waveform_info(dur: Option<f64>, n: usize, peak: f64) -> Vec<String> {
    let mut info = Vec::new();
    if let Some(d) = dur {
        info.push(format_duration(d));
    }
    info.push(match n {
        1 => "1 channel".to_string(),
        n => format!("{n} channels"),
    });
    if n > 0 {
        info.push(if peak > 0.0 {
            let db = fmt1(20.0 * peak.log10());
            let sign = if db.starts_with('-') || db == "0.0" {
                ""
            } else {
                "+"
            };
            format!("peak {sign}{db} dBFS")
        } else {
            "peak -inf dBFS".to_string()
        });
    }
    info
}

/// One lane's columns (`cols`, from `x0`), `y` placing a sample value: in the waveform's
/// colour within full scale, in the overs' colour beyond it (clipped at `scale`).
fn draw_columns(
    root: &Area,
    cols: &[Option<(f32, f32)>],
    x0: i32,
    y: &dyn Fn(f64) -> i32,
    scale: f64,
) -> Drawn {
    let (fs_top, fs_bot) = (y(1.0), y(-1.0));
    for (i, col) in cols.iter().enumerate() {
        let Some((lo, hi)) = *col else { continue };
        let x = x0 + i as i32;
        let ya = y((hi as f64).clamp(-scale, scale));
        let yb = y((lo as f64).clamp(-scale, scale));
        let (ya, yb) = (ya.min(yb), ya.max(yb));
        // Above full scale, within it, below it.
        for (a, b, colour) in [
            (ya, yb.min(fs_top - 1), WAVE_OVER),
            (ya.max(fs_top), yb.min(fs_bot), WAVE),
            (ya.max(fs_bot + 1), yb, WAVE_OVER),
        ] {
            if a <= b {
                fill(root, (x, a), (x + 1, b + 1), colour, 1.0)?;
            }
        }
    }
    Ok(())
}

fn draw_waveform(root: &Area, p: &WaveformPlot) -> Drawn {
    let n = p.channels.len();
    let WaveformLayout {
        lanes,
        lane_h,
        gap,
        height,
    } = waveform_layout(n);

    // Peak over all channels, to label it and to make room for overs in float files.
    let peak = p
        .channels
        .iter()
        .flat_map(|(_, mn, mx)| mn.iter().chain(mx.iter()))
        .map(|v| v.abs())
        .filter(|v| v.is_finite())
        .fold(0.0f32, f32::max) as f64;
    let scale = if peak > 1.0 { peak.min(16.0) } else { 1.0 };

    let dur = finite_positive(p.duration_seconds);
    let info = waveform_info(dur, n, peak);
    draw_header(root, p.title, &info.join("   "))?;

    let ticks = time_ticks(dur, WIDTH as i32 - MARGIN_LEFT - MARGIN_RIGHT);
    for lane in 0..lanes {
        let last = lane == lanes - 1;
        let top = HEADER + lane * (lane_h + gap);
        let area = root.clone().shrink(
            (0, top),
            (WIDTH, (lane_h + if last { FOOTER } else { 0 }) as u32),
        );
        // Full scale at +-1, with room above and below for overs.
        let half = (lane_h as f64 / 2.0 - 4.0).max(1.0);
        let reach = scale * (lane_h as f64 / 2.0) / half;
        let channel = p.channels.get(lane as usize);
        let y_keys = if channel.is_some() && lane_h >= 100 {
            vec![-1.0, 1.0]
        } else {
            Vec::new()
        };
        let mut chart = ChartBuilder::on(&area)
            .margin_right(MARGIN_RIGHT)
            .y_label_area_size(MARGIN_LEFT)
            .x_label_area_size(if last { FOOTER } else { 0 })
            .build_cartesian_2d(
                Ticked::new(time_range(dur), ticks.ticks.clone()),
                Ticked::new(-reach..reach, y_keys),
            )?;
        chart.plotting_area().fill(&PANEL)?;
        let time = |t: f64| ticks.label(t);
        let full_scale = |v: f64| if v > 0.0 { "+1" } else { "-1" }.to_string();
        draw_mesh(
            root,
            &mut chart,
            Mesh {
                x_label: last.then_some(&time),
                y_label: &full_scale,
                y_colour: TEXT_DIM,
                y_lines: false,
                light: None,
            },
        )?;
        let (x0, x1, _, _) = frame_of(&chart);
        let y = |a: f64| chart.backend_coord(&(0.0, a)).1;
        let (fs_top, fs_bot, mid) = (y(1.0), y(-1.0), y(0.0));
        hline(root, x0, x1, fs_top, FULL_SCALE, 1.0)?;
        hline(root, x0, x1, fs_bot, FULL_SCALE, 1.0)?;
        if lane_h >= 90 {
            // -6 dBFS guides
            dashed_hline(root, x0, x1, y(0.5), 2, 4, GRID)?;
            dashed_hline(root, x0, x1, y(-0.5), 2, 4, GRID)?;
        }
        // Centre line under the waveform, so digital silence still shows as a line.
        hline(root, x0, x1, mid, AXIS, 0.55)?;

        let Some(&(label, mins, maxs)) = channel else {
            let centre = (x0 + x1) / 2;
            let style = Text::new(LABEL_SIZE, TEXT_DIM, HPos::Center);
            style.draw(root, "no audio channels", (centre, mid))?;
            continue;
        };
        let cols = resample_columns(mins, maxs, (x1 - x0).max(0) as usize);
        draw_columns(root, &cols, x0, &y, scale)?;

        // Channel label in the margin.
        let label = if label.is_empty() {
            format!("{}", lane + 1)
        } else {
            label.to_string()
        };
        let size = if lane_h >= 40 { LABEL_SIZE } else { SMALL_SIZE };
        let style = Text::bold(size, TITLE, HPos::Left);
        let label = fit(&label, &style, MARGIN_LEFT - 16);
        style.draw(root, &label, (12, mid))?;
    }
    if dur.is_none() {
        let style = Text::new(LABEL_SIZE, TEXT, HPos::Center);
        style.draw(root, "0:00", (MARGIN_LEFT, height as i32 - FOOTER + 18))?;
    }
    Ok(())
}

/// Map per-bucket min/max onto `width` pixel columns. With more buckets than
/// columns each column takes the extremes of its buckets; with fewer, the
/// envelope is interpolated between bucket centres. NaN buckets are skipped.
fn resample_columns(mins: &[f32], maxs: &[f32], width: usize) -> Vec<Option<(f32, f32)>> {
    let n = mins.len().min(maxs.len());
    let mut out = vec![None; width];
    if n == 0 || width == 0 {
        return out;
    }
    let bucket = |i: usize| -> Option<(f32, f32)> {
        let (a, b) = (mins[i], maxs[i]);
        match (a.is_nan(), b.is_nan()) {
            (true, true) => None,
            (true, false) => Some((b, b)),
            (false, true) => Some((a, a)),
            (false, false) => Some((a.min(b), a.max(b))),
        }
    };
    if n >= width {
        for (x, slot) in out.iter_mut().enumerate() {
            let b0 = (x as u128 * n as u128 / width as u128) as usize;
            let b1 = (((x + 1) as u128 * n as u128 / width as u128) as usize)
                .max(b0 + 1)
                .min(n);
            let mut acc: Option<(f32, f32)> = None;
            for i in b0..b1 {
                if let Some((lo, hi)) = bucket(i) {
                    acc = Some(match acc {
                        Some((a, b)) => (a.min(lo), b.max(hi)),
                        None => (lo, hi),
                    });
                }
            }
            *slot = acc;
        }
    } else {
        for (x, slot) in out.iter_mut().enumerate() {
            let pos = ((x as f64 + 0.5) * n as f64 / width as f64 - 0.5).clamp(0.0, (n - 1) as f64);
            let i0 = pos.floor() as usize;
            let i1 = (i0 + 1).min(n - 1);
            let f = (pos - i0 as f64) as f32;
            *slot = match (bucket(i0), bucket(i1)) {
                (Some((a0, b0)), Some((a1, b1))) => Some((a0 + (a1 - a0) * f, b0 + (b1 - b0) * f)),
                (Some(v), None) | (None, Some(v)) => Some(v),
                (None, None) => None,
            };
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Loudness
// ---------------------------------------------------------------------------

/// The loudness axis: from -60 LUFS (lower for quieter material) to 0 LUFS (higher for
/// louder), with its grid every 6 LU (every 12 over a range of more than 72).
fn loudness_scale(p: &LoudnessPlot) -> (f64, f64, Vec<f64>) {
    let finite = |v: &Option<f64>| v.filter(|x| x.is_finite());
    let values: Vec<f64> = p
        .momentary
        .iter()
        .chain(p.short_term.iter())
        .filter_map(finite)
        .chain(p.integrated.filter(|v| v.is_finite()))
        .chain(p.target.map(|t| t.1).filter(|v| v.is_finite()))
        .collect();
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut top: f64 = 0.0;
    if hi > 0.0 {
        top = ((hi / 6.0).ceil() * 6.0).min(36.0);
    }
    let mut bottom: f64 = -60.0;
    if lo < bottom {
        bottom = ((lo - 1.0) / 6.0).floor() * 6.0;
        bottom = bottom.max(-150.0);
    }
    if top - bottom > 72.0 {
        // keep grid labels on multiples of 12
        bottom = (bottom / 12.0).floor() * 12.0;
    }
    let grid_step = if top - bottom > 72.0 { 12.0 } else { 6.0 };
    let grid: Vec<f64> = (0..)
        .map(|k| bottom + k as f64 * grid_step)
        .take_while(|g| *g <= top + 1e-9)
        .collect();
    (bottom, top, grid)
}

fn draw_loudness(root: &Area, p: &LoudnessPlot) -> Drawn {
    let (bottom, top, grid) = loudness_scale(p);

    let step = finite_positive(p.step_seconds).unwrap_or(1.0);
    let n = p.momentary.len().max(p.short_term.len());
    let dur = if n > 0 {
        finite_positive(n as f64 * step)
    } else {
        None
    };
    let ticks = time_ticks(dur, WIDTH as i32 - MARGIN_LEFT - MARGIN_RIGHT);

    // Header with legend on the right.
    let mut legend = vec![
        ("Momentary", MOMENTARY, LegendKind::Thin),
        ("Short-term", SHORT_TERM, LegendKind::Bold),
    ];
    if p.integrated.is_some_and(f64::is_finite) {
        legend.push(("Integrated", INTEGRATED, LegendKind::Dashed));
    }
    if p.target.is_some_and(|t| t.1.is_finite()) {
        legend.push(("Target", TARGET, LegendKind::Thin));
    }
    draw_header(root, p.title, "")?;
    draw_legend(root, &legend, WIDTH as i32 - MARGIN_RIGHT, HEADER / 2 - 2)?;

    let mut chart = ChartBuilder::on(root)
        .margin_top(HEADER + 26)
        .margin_right(MARGIN_RIGHT)
        .x_label_area_size(FOOTER)
        .y_label_area_size(MARGIN_LEFT)
        .build_cartesian_2d(
            Ticked::new(time_range(dur), ticks.ticks.clone()),
            Ticked::new(bottom..top, grid),
        )?;
    let (x0, x1, y0, y1) = frame_of(&chart);
    chart.plotting_area().fill(&PANEL)?;
    let time = |t: f64| ticks.label(t);
    draw_mesh(
        root,
        &mut chart,
        Mesh {
            x_label: Some(&time),
            y_label: &fmt0,
            y_colour: TEXT,
            y_lines: true,
            light: None,
        },
    )?;
    if bottom < 0.0 && top >= 0.0 {
        hline(root, x0, x1, chart.backend_coord(&(0.0, 0.0)).1, AXIS, 1.0)?;
    }
    let unit = Text::new(LABEL_SIZE, TEXT_DIM, HPos::Right);
    unit.draw(root, "LUFS", (x0 - 8, y0 - 16))?;

    let map = |i: usize, v: f64| -> (i32, i32) {
        let t = (i as f64 + 0.5) * step;
        chart.backend_coord(&(t, v.clamp(bottom - 2.0, top + 2.0)))
    };
    let plot_w = (x1 - x0).max(1) as usize;
    draw_history(root, p.momentary, plot_w, MOMENTARY.stroke_width(1), &map)?;
    draw_history(root, p.short_term, plot_w, SHORT_TERM.stroke_width(3), &map)?;

    // Reference lines with labelled values.
    let mut labels = Vec::new();
    if let Some((name, t)) = p.target.filter(|t| t.1.is_finite()) {
        let y = chart.backend_coord(&(0.0, t)).1;
        fill(root, (x0, y - 1), (x1, y + 2), TARGET, 1.0)?;
        let name = if name.is_empty() { "Target" } else { name };
        labels.push((format!("{name}  {} LUFS", fmt1(t)), TARGET, y, HPos::Left));
    }
    if let Some(i) = p.integrated.filter(|v| v.is_finite()) {
        let y = chart.backend_coord(&(0.0, i)).1;
        dashed_hline(root, x0, x1, y - 1, 10, 6, INTEGRATED)?;
        dashed_hline(root, x0, x1, y, 10, 6, INTEGRATED)?;
        let text = format!("Integrated  {} LUFS", fmt1(i));
        labels.push((text, INTEGRATED, y, HPos::Right));
    }
    for (text, colour, y, align) in labels {
        let x = match align {
            HPos::Left => x0 + 10,
            _ => x1 - 10,
        };
        // Put the label above the line, or below it when too close to the top.
        let ty = if y - 22 > y0 { y - 14 } else { y + 14 };
        label_box(root, (x, ty), &text, colour, align)?;
    }

    let has_history = p
        .momentary
        .iter()
        .chain(p.short_term.iter())
        .any(|v| v.is_some_and(f64::is_finite));
    if !has_history {
        let centre = ((x0 + x1) / 2, (y0 + y1) / 2);
        label_box(
            root,
            centre,
            "no loudness data (silence)",
            TEXT_DIM,
            HPos::Center,
        )?;
    }
    if dur.is_none() {
        let style = Text::new(LABEL_SIZE, TEXT, HPos::Center);
        style.draw(root, "0:00", (x0, y1 + 18))?;
    }
    Ok(())
}

/// Per-pixel-column accumulator while decimating: (column, (index, min), (index, max)).
type ColumnExtremes = (i32, (usize, f64), (usize, f64));

/// Draw one history series as polylines broken at `None`. Long histories are reduced to
/// per-pixel-column extremes first.
fn draw_history(
    root: &Area,
    values: &[Option<f64>],
    plot_w: usize,
    style: ShapeStyle,
    map: &dyn Fn(usize, f64) -> (i32, i32),
) -> Drawn {
    let mut runs: Vec<Vec<(i32, i32)>> = Vec::new();
    let mut run: Vec<(i32, i32)> = Vec::new();
    let decimate = values.len() > plot_w * 2;
    let mut col: Option<ColumnExtremes> = None;
    let flush = |col: &mut Option<ColumnExtremes>, run: &mut Vec<(i32, i32)>| {
        if let Some((_, a, b)) = col.take() {
            let (first, second) = if a.0 <= b.0 { (a, b) } else { (b, a) };
            run.push(map(first.0, first.1));
            if second.0 != first.0 {
                run.push(map(second.0, second.1));
            }
        }
    };
    for (i, v) in values.iter().enumerate() {
        match v.filter(|x| x.is_finite()) {
            None => {
                flush(&mut col, &mut run);
                if !run.is_empty() {
                    runs.push(std::mem::take(&mut run));
                }
            }
            Some(v) if decimate => {
                let cx = map(i, v).0;
                match &mut col {
                    Some((c, lo, hi)) if *c == cx => {
                        if v < lo.1 {
                            *lo = (i, v);
                        }
                        if v > hi.1 {
                            *hi = (i, v);
                        }
                    }
                    _ => {
                        flush(&mut col, &mut run);
                        col = Some((cx, (i, v), (i, v)));
                    }
                }
            }
            Some(v) => run.push(map(i, v)),
        }
    }
    flush(&mut col, &mut run);
    if !run.is_empty() {
        runs.push(run);
    }
    for run in runs {
        if run.len() == 1 || run.iter().all(|p| *p == run[0]) {
            let r = style.stroke_width.max(3) as i32 / 2 + 1;
            root.draw(&Circle::new(run[0], r, style.color.filled()))?;
        } else {
            root.draw(&PathElement::new(run, style))?;
        }
    }
    Ok(())
}

#[derive(Clone, Copy)]
enum LegendKind {
    Thin,
    Bold,
    Dashed,
}

/// Legend entries laid out right-to-left ending at `right`, centred on `cy`.
fn draw_legend(root: &Area, items: &[(&str, RGBColor, LegendKind)], right: i32, cy: i32) -> Drawn {
    const SWATCH: i32 = 22;
    let style = Text::new(LABEL_SIZE, TEXT, HPos::Left);
    let mut widths = Vec::new();
    for (t, _, _) in items {
        widths.push(SWATCH + 8 + style.width(t));
    }
    let total: i32 = widths.iter().sum::<i32>() + 22 * (items.len() as i32 - 1).max(0);
    let mut x = right - total;
    for ((text, colour, kind), w) in items.iter().zip(widths) {
        match kind {
            LegendKind::Thin => fill(root, (x, cy), (x + SWATCH, cy + 1), *colour, 1.0)?,
            LegendKind::Bold => fill(root, (x, cy - 1), (x + SWATCH, cy + 2), *colour, 1.0)?,
            LegendKind::Dashed => {
                fill(root, (x, cy - 1), (x + 8, cy + 1), *colour, 1.0)?;
                fill(root, (x + 13, cy - 1), (x + SWATCH, cy + 1), *colour, 1.0)?;
            }
        }
        style.draw(root, text, (x + SWATCH + 8, cy))?;
        x += w + 22;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Spectrum
// ---------------------------------------------------------------------------

/// The bands as shaded columns from the strip's top `sy0` through the plot (`y0` to `y1`),
/// each named with its share in the strip; `px` places a frequency.
fn draw_bands(
    root: &Area,
    bands: &[(&str, f64, f64, f64)],
    px: &dyn Fn(f64) -> i32,
    f_max: f64,
    (sy0, y0, y1): (i32, i32, i32),
) -> Drawn {
    for (i, &(name, lo, hi, share)) in bands.iter().enumerate() {
        if !(lo.is_finite() && hi.is_finite()) {
            continue;
        }
        let (lo, hi) = (lo.max(20.0), hi.min(f_max));
        if hi <= lo {
            continue;
        }
        let colour = BAND_COLOURS[i % BAND_COLOURS.len()];
        let (bx0, bx1) = (px(lo), px(hi));
        fill(root, (bx0, sy0), (bx1, y0), colour, 0.16)?;
        fill(root, (bx0, y0), (bx1, y1), colour, 0.07)?;
        fill(root, (bx0, sy0), (bx0 + 1, y1), colour, 0.35)?;
        fill(root, (bx1 - 1, sy0), (bx1, y1), colour, 0.35)?;
        let cx = (bx0 + bx1) / 2;
        let room = bx1 - bx0 - 6;
        let share = if share.is_finite() {
            format!("{}%", fmt1(share))
        } else {
            "-".to_string()
        };
        let big = Text::bold(LABEL_SIZE, TITLE, HPos::Center);
        let (name_style, name_y, share_y) = if big.width(name) <= room {
            (big, sy0 + 13, sy0 + 34)
        } else {
            (
                Text::bold(SMALL_SIZE, TITLE, HPos::Center),
                sy0 + 14,
                sy0 + 32,
            )
        };
        let name = fit(name, &name_style, room);
        name_style.draw(root, &name, (cx, name_y))?;
        let mut share_style = Text::new(LABEL_SIZE, colour, HPos::Center);
        if share_style.width(&share) > room {
            share_style = Text::new(SMALL_SIZE, colour, HPos::Center);
        }
        share_style.draw(root, &share, (cx, share_y))?;
    }
    Ok(())
}

fn draw_spectrum(root: &Area, p: &SpectrumPlot, info: &str) -> Drawn {
    let strip = 48; // band names live in this strip above the plot
    let n = p.freqs_hz.len().min(p.db.len());
    let (freqs, db) = (&p.freqs_hz[..n], &p.db[..n]);

    // Frequency range: 20 Hz up to 20 kHz or Nyquist (the highest bin), whichever is lower.
    let f_top = freqs
        .iter()
        .copied()
        .filter(|f| f.is_finite())
        .fold(0.0f64, f64::max);
    let f_max = if f_top > 40.0 {
        f_top.min(20_000.0)
    } else {
        20_000.0
    };

    // Level range: from the loudest bin inside the shown range down 90 dB.
    let loudest = |shown: bool| {
        freqs
            .iter()
            .zip(db)
            .filter(|(f, d)| d.is_finite() && (!shown || (**f >= 18.0 && **f <= f_max * 1.1)))
            .map(|(_, d)| *d)
            .fold(f64::NEG_INFINITY, f64::max)
    };
    let peak = Some(loudest(true))
        .filter(|d| d.is_finite())
        .unwrap_or(loudest(false));
    let db_top = if peak.is_finite() {
        ((peak + 3.0) / 10.0).ceil() * 10.0
    } else {
        0.0
    };
    let db_bottom = db_top - 90.0;

    draw_header(root, p.title, info)?;

    // Major ticks with labels, and a minor log grid (30, 40, ... 90, 300, ...).
    let major: Vec<f64> = [
        20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0, 10_000.0, 20_000.0,
    ]
    .into_iter()
    .filter(|f| *f <= f_max * 1.0001)
    .collect();
    let minor: Vec<f64> = [10.0, 100.0, 1000.0, 10_000.0]
        .into_iter()
        .flat_map(|decade| (2..10).map(move |m| decade * m as f64))
        .filter(|f| *f > 20.0 && *f < f_max)
        .collect();
    let levels: Vec<f64> = (0..=9).map(|k| db_bottom + 10.0 * k as f64).collect();
    let (chart, (x0, x1, y0, y1)) = frequency_chart(
        root,
        strip,
        Ticked {
            inner: LogCoord::from((20.0..f_max).log_scale()),
            bold: major,
            light: minor,
        },
        Ticked::new(db_bottom..db_top, levels),
        "dB",
    )?;
    let px = |f: f64| chart.backend_coord(&(f, db_bottom)).0;

    // Bands: shaded columns through the strip and the plot, labelled in the strip.
    draw_bands(root, p.bands, &px, f_max, (y0 - strip, y0, y1))?;

    // The curve: bins grouped per pixel column (power mean), clamped to the range.
    let mut pts: Vec<(i32, i32)> = Vec::new();
    let mut group: Option<(i32, f64, usize)> = None; // (column, sum of power, count)
    let push = |g: Option<(i32, f64, usize)>, pts: &mut Vec<(i32, i32)>| {
        if let Some((x, sp, k)) = g {
            let level = if sp > 0.0 {
                10.0 * (sp / k as f64).log10()
            } else {
                f64::NEG_INFINITY
            };
            let y = chart
                .backend_coord(&(20.0, level.clamp(db_bottom, db_top)))
                .1;
            pts.push((x, y));
        }
    };
    for (&f, &d) in freqs.iter().zip(db) {
        // Only what the axis shows (bins above it would bend the curve down at its end).
        if !(f.is_finite() && (20.0..=f_max).contains(&f)) || d.is_nan() {
            continue;
        }
        let col = px(f);
        let power = if d == f64::INFINITY {
            10f64.powf(db_top / 10.0)
        } else {
            10f64.powf(d / 10.0)
        };
        match &mut group {
            Some((gc, sp, k)) if *gc == col => {
                *sp += power;
                *k += 1;
            }
            _ => {
                push(group.take(), &mut pts);
                group = Some((col, power, 1));
            }
        }
    }
    push(group, &mut pts);

    if pts.len() >= 2 {
        // Soft fill under the curve, then the curve.
        let mut area = pts.clone();
        area.push((pts[pts.len() - 1].0, y1));
        area.push((pts[0].0, y1));
        root.draw(&Polygon::new(area, SPECTRUM.mix(0.12).filled()))?;
        root.draw(&PathElement::new(pts.clone(), SPECTRUM.stroke_width(2)))?;
    } else if let Some(&p) = pts.first() {
        root.draw(&Circle::new(p, 3, SPECTRUM.filled()))?;
    }
    if pts.is_empty() {
        let centre = ((x0 + x1) / 2, (y0 + y1) / 2);
        label_box(root, centre, "no spectrum data", TEXT_DIM, HPos::Center)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Tonal balance
// ---------------------------------------------------------------------------

const TOLERANCE: RGBColor = RGBColor(118, 222, 128);
const OUTSIDE: RGBColor = RGBColor(240, 84, 72);

fn draw_tonal(root: &Area, p: &TonalPlot) -> Drawn {
    let strip = 48;
    let pts: Vec<(f64, f64, f64, f64)> = p
        .points
        .iter()
        .copied()
        .filter(|(f, a, b, t)| {
            f.is_finite() && *f >= 20.0 && a.is_finite() && b.is_finite() && t.is_finite()
        })
        .collect();
    // Level range: 10 dB steps around the curves' loudest points, 60 dB tall.
    let top = pts
        .iter()
        .map(|&(_, a, b, t)| a.max(b + t))
        .fold(f64::NEG_INFINITY, f64::max);
    let db_top = if top.is_finite() {
        ((top + 3.0) / 10.0).ceil() * 10.0
    } else {
        0.0
    };
    let db_bottom = db_top - 60.0;
    draw_header(root, p.title, p.target)?;
    let f_max = 20_000.0;
    let major: Vec<f64> = vec![
        20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0, 10_000.0, 20_000.0,
    ];
    let levels: Vec<f64> = (0..=6).map(|k| db_bottom + 10.0 * k as f64).collect();
    let (chart, (x0, x1, y0, y1)) = frequency_chart(
        root,
        strip,
        Ticked {
            inner: LogCoord::from((20.0..f_max).log_scale()),
            bold: major,
            light: Vec::new(),
        },
        Ticked::new(db_bottom..db_top, levels),
        "dB LU",
    )?;
    let at = |f: f64, d: f64| chart.backend_coord(&(f, d.clamp(db_bottom, db_top)));

    // The bands in the strip: name and the track's difference, red when outside.
    let sy0 = y0 - strip;
    for (i, &(name, lo, hi, delta, inside)) in p.bands.iter().enumerate() {
        if !(lo.is_finite() && hi.is_finite() && hi > lo) {
            continue;
        }
        let (bx0, bx1) = (
            at(lo.max(20.0), db_bottom).0,
            at(hi.min(f_max), db_bottom).0,
        );
        let colour = BAND_COLOURS[i % BAND_COLOURS.len()];
        fill(root, (bx0, sy0), (bx1, y0), colour, 0.12)?;
        fill(root, (bx0, sy0), (bx0 + 1, y1), colour, 0.30)?;
        let cx = (bx0 + bx1) / 2;
        let room = bx1 - bx0 - 6;
        let style = Text::bold(SMALL_SIZE, TITLE, HPos::Center);
        style.draw(root, &fit(name, &style, room), (cx, sy0 + 13))?;
        let text = if delta.is_finite() {
            format!("{delta:+.1} dB")
        } else {
            "-".into()
        };
        let c = if inside { TOLERANCE } else { OUTSIDE };
        Text::new(LABEL_SIZE, c, HPos::Center).draw(root, &text, (cx, sy0 + 33))?;
    }

    if pts.len() >= 2 {
        // The tolerance band around the target's mean, then the mean, then the track.
        let mut band: Vec<(i32, i32)> = pts.iter().map(|&(f, _, b, t)| at(f, b + t)).collect();
        band.extend(pts.iter().rev().map(|&(f, _, b, t)| at(f, b - t)));
        root.draw(&Polygon::new(band, TOLERANCE.mix(0.18).filled()))?;
        let mean: Vec<(i32, i32)> = pts.iter().map(|&(f, _, b, _)| at(f, b)).collect();
        root.draw(&PathElement::new(mean, TOLERANCE.stroke_width(1)))?;
        let track: Vec<(i32, i32)> = pts.iter().map(|&(f, a, _, _)| at(f, a)).collect();
        root.draw(&PathElement::new(track.clone(), SPECTRUM.stroke_width(2)))?;
        for (&(_, a, b, t), &xy) in pts.iter().zip(&track) {
            let c = if (a - b).abs() <= t {
                SPECTRUM
            } else {
                OUTSIDE
            };
            root.draw(&Circle::new(xy, 3, c.filled()))?;
        }
        draw_legend(
            root,
            &[
                ("track", SPECTRUM, LegendKind::Bold),
                ("target ± tolerance", TOLERANCE, LegendKind::Thin),
            ],
            x1 - 10,
            y0 + 16,
        )?;
    } else {
        let centre = ((x0 + x1) / 2, (y0 + y1) / 2);
        label_box(root, centre, "no tonal data", TEXT_DIM, HPos::Center)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Shared chart pieces
// ---------------------------------------------------------------------------

/// A chart of level over frequency (the spectrum's and the tonal balance's) under the header
/// and a strip `strip` pixels tall: panel, grid (the light one where `x` has light ticks),
/// labels in Hz ("2k") and dB, and the units; with its edges in pixels (see [`frame_of`]).
type FrequencyChart<'a, 'b> =
    ChartContext<'a, BitMapBackend<'b>, Cartesian2d<Ticked<LogCoord<f64>>, Ticked<RangedCoordf64>>>;

fn frequency_chart<'a, 'b>(
    root: &'a Area<'b>,
    strip: i32,
    x: Ticked<LogCoord<f64>>,
    y: Ticked<RangedCoordf64>,
    y_unit: &str,
) -> Drawn<(FrequencyChart<'a, 'b>, (i32, i32, i32, i32))> {
    let light = (!x.light.is_empty()).then_some(GRID_MINOR);
    let mut chart = ChartBuilder::on(root)
        .margin_top(HEADER + 6 + strip)
        .margin_right(MARGIN_RIGHT)
        .x_label_area_size(FOOTER)
        .y_label_area_size(MARGIN_LEFT)
        .build_cartesian_2d(x, y)?;
    let (x0, x1, y0, y1) = frame_of(&chart);
    chart.plotting_area().fill(&PANEL)?;
    let hz = |f: f64| match f {
        f if f >= 1000.0 => format!("{}k", f / 1000.0),
        f => format!("{f}"),
    };
    draw_mesh(
        root,
        &mut chart,
        Mesh {
            x_label: Some(&hz),
            y_label: &fmt0,
            y_colour: TEXT,
            y_lines: true,
            light,
        },
    )?;
    let unit = Text::new(LABEL_SIZE, TEXT_DIM, HPos::Right);
    unit.draw(root, y_unit, (x0 - 8, y0 - 16))?;
    unit.draw(root, "Hz", (x0 - 24, y1 + 18))?;
    Ok((chart, (x0, x1, y0, y1)))
}

/// The plotting area's edges in pixels: left, right (exclusive), top, bottom.
fn frame_of<X: Ranged, Y: Ranged>(
    chart: &ChartContext<'_, BitMapBackend<'_>, Cartesian2d<X, Y>>,
) -> (i32, i32, i32, i32) {
    let (xs, ys) = chart.plotting_area().get_pixel_range();
    (xs.start, xs.end, ys.start, ys.end)
}

/// An axis whose grid lines and labels fall on the values given: `bold` get a line and a
/// label, `light` a fainter line. (plotters' own `WithKeyPoints` cannot be labelled by a
/// chart's mesh: it has no value formatting.)
struct Ticked<R> {
    inner: R,
    bold: Vec<f64>,
    light: Vec<f64>,
}

impl Ticked<RangedCoordf64> {
    fn new(range: std::ops::Range<f64>, bold: Vec<f64>) -> Self {
        Ticked {
            inner: range.into(),
            bold,
            light: Vec::new(),
        }
    }
}

impl<R: Ranged<ValueType = f64>> Ranged for Ticked<R> {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        self.inner.map(value, limit)
    }

    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            self.light.clone()
        } else {
            self.bold.clone()
        }
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.inner.range()
    }

    fn axis_pixel_range(&self, limit: (i32, i32)) -> std::ops::Range<i32> {
        self.inner.axis_pixel_range(limit)
    }
}

/// How a chart's grid and tick labels are drawn.
struct Mesh<'f> {
    /// Labels under the time or frequency axis (none: no labels).
    x_label: Option<&'f dyn Fn(f64) -> String>,
    y_label: &'f dyn Fn(f64) -> String,
    y_colour: RGBColor,
    /// Horizontal grid lines at the level ticks.
    y_lines: bool,
    /// The colour of the light (minor) grid lines, if there are any.
    light: Option<RGBColor>,
}

/// Grid, axes and tick marks by plotters' mesh, in the house style; the tick labels are
/// drawn with [`Text`] (the mesh is given empty ones).
fn draw_mesh<X, Y>(
    root: &Area,
    chart: &mut ChartContext<'_, BitMapBackend<'_>, Cartesian2d<Ticked<X>, Ticked<Y>>>,
    m: Mesh,
) -> Drawn
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    let mut mesh = chart.configure_mesh();
    match m.light {
        Some(c) => mesh.light_line_style(c),
        None => mesh.light_line_style(TRANSPARENT),
    };
    mesh.bold_line_style(GRID)
        .axis_style(AXIS)
        .set_all_tick_mark_size(5)
        .label_style((FONT, LABEL_SIZE))
        .x_label_formatter(&|_| String::new())
        .y_label_formatter(&|_| String::new());
    if !m.y_lines {
        mesh.disable_y_mesh();
    }
    mesh.draw()?;

    let (x0, _, _, y1) = frame_of(chart);
    let spec = chart.as_coord_spec();
    if let Some(label) = m.x_label {
        let style = Text::new(LABEL_SIZE, TEXT, HPos::Center);
        for &t in &spec.x_spec().bold {
            let text = label(t);
            // Keep the first and last labels inside the picture.
            let half = style.width(&text) / 2;
            let x = chart.backend_coord(&(t, 0.0)).0;
            let x = x.clamp(half + 2, (WIDTH as i32 - half - 2).max(half + 2));
            style.draw(root, &text, (x, y1 + 18))?;
        }
    }
    let style = Text::new(LABEL_SIZE, m.y_colour, HPos::Right);
    for &v in &spec.y_spec().bold {
        let y = chart.backend_coord(&(0.0, v)).1;
        style.draw(root, &(m.y_label)(v), (x0 - 8, y))?;
    }
    Ok(())
}

fn draw_header(root: &Area, title: &str, info: &str) -> Drawn {
    let cy = HEADER / 2 - 2;
    let right = WIDTH as i32 - MARGIN_RIGHT;
    let info_style = Text::new(LABEL_SIZE, TEXT_DIM, HPos::Right);
    let info_w = if info.is_empty() {
        0
    } else {
        info_style.width(info) + 40
    };
    let room = right - 16 - info_w;
    let title = if title.is_empty() { "untitled" } else { title };
    let mut style = Text::bold(TITLE_SIZE, TITLE, HPos::Left);
    if style.width(title) > room {
        style = Text::bold(LABEL_SIZE, TITLE, HPos::Left);
    }
    let title = fit(title, &style, room);
    style.draw(root, &title, (16, cy))?;
    if !info.is_empty() {
        info_style.draw(root, info, (right, cy))?;
    }
    Ok(())
}

/// Text on a dark box, so it reads over curves and grid lines.
fn label_box(root: &Area, (x, y): (i32, i32), s: &str, colour: RGBColor, align: HPos) -> Drawn {
    let style = Text::new(LABEL_SIZE, colour, align);
    let w = style.width(s);
    let left = match align {
        HPos::Left => x,
        HPos::Center => x - w / 2,
        HPos::Right => x - w,
    };
    let (pad, half) = (5, LABEL_SIZE as i32 / 2);
    fill(
        root,
        (left - pad, y - half - pad),
        (left + w + pad, y + half + pad + 1),
        BG,
        0.82,
    )?;
    style.draw(root, s, (x, y))?;
    Ok(())
}

// ---------------------------------------------------------------------------
// Text and drawing primitives
// ---------------------------------------------------------------------------

/// DejaVu Sans registered with plotters once per process: its mesh lays out (empty) tick
/// labels with it; all visible text is drawn by [`Text`].
fn register_font() -> io::Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let registered = REGISTERED.get_or_init(|| {
        plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular()).is_ok()
    });
    if *registered {
        Ok(())
    } else {
        Err(io::Error::other("the embedded font could not be read"))
    }
}

/// The embedded fonts, for [`Text`].
struct Fonts {
    regular: FontRef<'static>,
    bold: FontRef<'static>,
}

fn fonts() -> &'static Fonts {
    static FONTS: OnceLock<Fonts> = OnceLock::new();
    FONTS.get_or_init(|| Fonts {
        regular: FontRef::try_from_slice(dejavu::sans::regular()).expect("DejaVu Sans is a font"),
        bold: FontRef::try_from_slice(dejavu::sans::bold()).expect("DejaVu Sans Bold is a font"),
    })
}

/// A line of text: size in pixels, colour, weight and which of its ends (or its middle) sits
/// at the point it is drawn at; it is centred vertically on that point.
///
/// Glyphs are laid out and rasterised with `ab_glyph` directly: plotters' own ab_glyph text
/// places each glyph without its left side bearing, which reads as "You Tube" and "-14. 0".
#[derive(Clone, Copy)]
struct Text {
    size: f32,
    colour: RGBColor,
    bold: bool,
    align: HPos,
}

impl Text {
    fn new(size: f64, colour: RGBColor, align: HPos) -> Text {
        Text {
            size: size as f32,
            colour,
            bold: false,
            align,
        }
    }

    fn bold(size: f64, colour: RGBColor, align: HPos) -> Text {
        Text {
            bold: true,
            ..Text::new(size, colour, align)
        }
    }

    fn font(&self) -> PxScaleFont<&'static FontRef<'static>> {
        let f = fonts();
        let font = if self.bold { &f.bold } else { &f.regular };
        font.as_scaled(PxScale::from(self.size))
    }

    /// Each glyph of `s` with its pen position from the start of the line; and the width.
    fn layout(&self, s: &str) -> (Vec<ab_glyph::Glyph>, f32) {
        let font = self.font();
        let mut pen = 0.0;
        let mut prev = None;
        let mut glyphs = Vec::new();
        for c in s.chars() {
            let id = font.glyph_id(c);
            if let Some(p) = prev {
                pen += font.kern(p, id);
            }
            glyphs.push(id.with_scale_and_position(font.scale(), ab_glyph::point(pen, 0.0)));
            pen += font.h_advance(id);
            prev = Some(id);
        }
        (glyphs, pen)
    }

    fn width(&self, s: &str) -> i32 {
        self.layout(s).1.ceil() as i32
    }

    fn draw(&self, root: &Area, s: &str, (x, y): (i32, i32)) -> Drawn {
        let font = self.font();
        let (glyphs, width) = self.layout(s);
        let left = x as f32
            - match self.align {
                HPos::Left => 0.0,
                HPos::Center => width / 2.0,
                HPos::Right => width,
            };
        // Baseline so the middle of the font's ascent..descent sits on `y`.
        let baseline = y as f32 + (font.ascent() + font.descent()) / 2.0;
        for mut g in glyphs {
            g.position = ab_glyph::point(left.round() + g.position.x, baseline.round());
            let Some(outline) = font.outline_glyph(g) else {
                continue;
            };
            let b = outline.px_bounds();
            let mut pixels = Vec::new();
            outline.draw(|gx, gy, cover| {
                if cover > 0.0 {
                    pixels.push((
                        b.min.x as i32 + gx as i32,
                        b.min.y as i32 + gy as i32,
                        cover,
                    ));
                }
            });
            for (px, py, cover) in pixels {
                root.draw_pixel((px, py), &self.colour.mix(cover.min(1.0) as f64))?;
            }
        }
        Ok(())
    }
}

/// `s`, or as much of it as fits in `max_w` pixels followed by an ellipsis.
fn fit(s: &str, style: &Text, max_w: i32) -> String {
    if style.width(s) <= max_w {
        return s.to_string();
    }
    let chars: Vec<char> = s.chars().collect();
    (0..chars.len())
        .rev()
        .map(|keep| chars[..keep].iter().chain(['…'].iter()).collect::<String>())
        .find(|t| style.width(t) <= max_w)
        .unwrap_or_default()
}

/// Fill the pixels from `(x0, y0)` up to, not including, `(x1, y1)`.
fn fill(root: &Area, (x0, y0): (i32, i32), (x1, y1): (i32, i32), c: RGBColor, alpha: f64) -> Drawn {
    if x1 > x0 && y1 > y0 {
        // The bitmap backend fills a rectangle up to, not including, its second corner.
        root.draw(&Rectangle::new([(x0, y0), (x1, y1)], c.mix(alpha).filled()))?;
    }
    Ok(())
}

fn hline(root: &Area, x0: i32, x1: i32, y: i32, c: RGBColor, alpha: f64) -> Drawn {
    fill(root, (x0, y), (x1, y + 1), c, alpha)
}

fn dashed_hline(root: &Area, x0: i32, x1: i32, y: i32, on: i32, off: i32, c: RGBColor) -> Drawn {
    let mut x = x0;
    while x < x1 {
        hline(root, x, (x + on).min(x1), y, c, 1.0)?;
        x += on + off;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Time and numbers
// ---------------------------------------------------------------------------

/// A time axis from 0: its range, and its ticks at a "nice" spacing with their labels.
struct TimeTicks {
    ticks: Vec<f64>,
    step: f64,
    total: f64,
}

fn time_range(dur: Option<f64>) -> std::ops::Range<f64> {
    0.0..dur.unwrap_or(1.0)
}

/// Evenly spaced "nice" time ticks for a span of `dur` seconds over `width` px (none when
/// the span is unknown).
fn time_ticks(dur: Option<f64>, width: i32) -> TimeTicks {
    const STEPS: [f64; 25] = [
        0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0,
        60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0, 10800.0, 21600.0,
    ];
    let Some(dur) = dur else {
        return TimeTicks {
            ticks: Vec::new(),
            step: 1.0,
            total: 0.0,
        };
    };
    let max_ticks = (width / 110).max(2) as f64;
    let step = STEPS
        .iter()
        .copied()
        .find(|s| dur / s <= max_ticks)
        .unwrap_or_else(|| ((dur / max_ticks) / 3600.0).ceil() * 3600.0);
    let count = (dur / step + 1e-9).floor() as usize;
    TimeTicks {
        ticks: (0..=count).map(|k| k as f64 * step).collect(),
        step,
        total: dur,
    }
}

impl TimeTicks {
    fn label(&self, t: f64) -> String {
        if self.total < 60.0 {
            let decimals = if self.step >= 1.0 {
                0
            } else if self.step >= 0.1 {
                1
            } else if self.step >= 0.01 {
                2
            } else {
                3
            };
            format!("{t:.decimals$}s")
        } else {
            // Ticks are whole seconds here; round first so a tick a hair under one reads as it.
            sluice_core::time::clock(t.round(), 0, self.total >= 3600.0)
        }
    }
}

fn finite_positive(v: f64) -> Option<f64> {
    (v.is_finite() && v > 0.0).then_some(v)
}

fn format_duration(d: f64) -> String {
    if d < 60.0 {
        format!("{d:.2} s")
    } else {
        sluice_core::time::clock(d, if d >= 3600.0 { 0 } else { 1 }, false)
    }
}

/// One decimal, without "-0.0".
fn fmt1(v: f64) -> String {
    let s = format!("{v:.1}");
    if s == "-0.0" { "0.0".to_string() } else { s }
}

/// No decimals, without "-0".
fn fmt0(v: f64) -> String {
    let s = format!("{v:.0}");
    if s == "-0" { "0".to_string() } else { s }
}

// ---------------------------------------------------------------------------
// PNG output
// ---------------------------------------------------------------------------

/// Draw a `WIDTH` x `height` picture and move it into place at `path` whole (through a
/// temporary sibling file).
fn write_png(path: &Path, height: u32, draw: impl FnOnce(&Area) -> Drawn) -> io::Result<()> {
    let failed = |e: &dyn std::fmt::Display| {
        io::Error::other(format!("writing plot {}: {e}", path.display()))
    };
    register_font().map_err(|e| failed(&e))?;
    let mut rgb = vec![0u8; WIDTH as usize * height as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (WIDTH, height)).into_drawing_area();
        root.fill(&BG).map_err(|e| failed(&e))?;
        draw(&root).map_err(|e| failed(&e))?;
        root.present().map_err(|e| failed(&e))?;
    }
    let bytes = encode_png(&rgb, height).map_err(|e| failed(&e))?;
    // The folder must exist (the caller placed the picture); nothing is created for it.
    let named = |e: sluice_core::io::FileError| {
        io::Error::new(e.source.kind(), format!("writing plot {e}"))
    };
    let (atomic, mut f) = sluice_core::io::AtomicFile::create(path, true).map_err(named)?;
    io::Write::write_all(&mut f, &bytes)
        .map_err(|e| io::Error::new(e.kind(), format!("writing plot {}: {e}", path.display())))?;
    drop(f);
    atomic.commit().map(|_| ()).map_err(named)
}

fn encode_png(rgb: &[u8], height: u32) -> Result<Vec<u8>, png::EncodingError> {
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, WIDTH, height);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    enc.set_compression(png::Compression::Balanced);
    let mut writer = enc.write_header()?;
    writer.write_image_data(rgb)?;
    writer.finish()?;
    Ok(out)
}

#[cfg(test)]
#[path = "plot_tests.rs"]
mod tests;
