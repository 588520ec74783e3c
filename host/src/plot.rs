//! PNG pictures for `sluice analyze --plot`: waveform, loudness history and
//! long-term spectrum.
//!
//! Everything is drawn by hand into an RGB buffer (dark theme, 1200 px wide)
//! with a built-in 5x7 bitmap font, then encoded with the pure-Rust `png`
//! crate. No system fonts or C libraries are involved. Each file is written to
//! a temporary sibling and renamed into place, so a reader never sees a
//! half-written picture.
//!
//! Every input is treated as untrusted: empty slices, NaN/inf values, zero
//! durations and odd channel counts all yield a valid (if sparse) picture.

use std::io;
use std::path::Path;

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

/// Render the waveform overview and write it as a PNG at `path`.
pub fn write_waveform(path: &Path, plot: &WaveformPlot) -> io::Result<()> {
    write_png(path, &render_waveform(plot))
}

/// Render the loudness history and write it as a PNG at `path`.
pub fn write_loudness(path: &Path, plot: &LoudnessPlot) -> io::Result<()> {
    write_png(path, &render_loudness(plot))
}

/// Render the long-term spectrum and write it as a PNG at `path`.
pub fn write_spectrum(path: &Path, plot: &SpectrumPlot) -> io::Result<()> {
    write_png(path, &render_spectrum(plot))
}

// ---------------------------------------------------------------------------
// Theme and layout
// ---------------------------------------------------------------------------

type Rgb = [u8; 3];

const WIDTH: i64 = 1200;
const MARGIN_LEFT: i64 = 76;
const MARGIN_RIGHT: i64 = 28;
const HEADER: i64 = 58;
const FOOTER: i64 = 46;

const BG: Rgb = [17, 20, 26];
const PANEL: Rgb = [24, 28, 36];
const GRID: Rgb = [40, 46, 58];
const GRID_MINOR: Rgb = [31, 36, 46];
const AXIS: Rgb = [92, 100, 116];
const TEXT: Rgb = [196, 202, 212];
const TEXT_DIM: Rgb = [128, 136, 150];
const TITLE: Rgb = [238, 241, 246];

const WAVE: Rgb = [72, 166, 226];
const WAVE_OVER: Rgb = [240, 84, 72];
const FULL_SCALE: Rgb = [128, 96, 56];

const MOMENTARY: Rgb = [84, 118, 150];
const SHORT_TERM: Rgb = [92, 204, 255];
const INTEGRATED: Rgb = [255, 196, 72];
const TARGET: Rgb = [118, 222, 128];

const SPECTRUM: Rgb = [255, 170, 96];
const BAND_COLOURS: [Rgb; 5] = [
    [150, 110, 255],
    [80, 150, 255],
    [70, 200, 170],
    [230, 200, 80],
    [255, 110, 130],
];

/// Text sizes (multiples of the 5x7 font's pixel).
const TITLE_SCALE: i64 = 3;
const LABEL_SCALE: i64 = 2;
const SMALL_SCALE: i64 = 1;

// ---------------------------------------------------------------------------
// Waveform
// ---------------------------------------------------------------------------

fn render_waveform(p: &WaveformPlot) -> Canvas {
    let n = p.channels.len();
    let lanes = n.max(1) as i64;
    let gap: i64 = if lanes > 8 { 3 } else { 8 };
    let avail = 800 - HEADER - FOOTER - gap * (lanes - 1);
    let lane_h = (avail / lanes).clamp(28, 220);
    let height = HEADER + lanes * lane_h + gap * (lanes - 1) + FOOTER;
    let mut c = Canvas::new(WIDTH, height, BG);

    let x0 = MARGIN_LEFT;
    let x1 = WIDTH - MARGIN_RIGHT;
    let plot_w = x1 - x0;

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
            let db = 20.0 * peak.log10();
            let sign = if fmt1(db).starts_with('-') || fmt1(db) == "0.0" {
                ""
            } else {
                "+"
            };
            format!("peak {sign}{} dBFS", fmt1(db))
        } else {
            "peak -inf dBFS".to_string()
        });
    }
    draw_header(&mut c, p.title, &info.join("   "));

    let time_axis = Axis::linear(x0 as f64, x1 as f64, 0.0, dur.unwrap_or(1.0));
    let ticks = match dur {
        Some(d) => time_ticks(d, plot_w),
        None => Vec::new(),
    };

    for lane in 0..lanes {
        let y0 = HEADER + lane * (lane_h + gap);
        let y1 = y0 + lane_h;
        c.fill_rect(x0, y0, x1, y1, PANEL, 1.0);
        for &(t, _) in &ticks {
            let x = time_axis.px(t).round() as i64;
            c.vline(x, y0, y1, GRID, 1.0);
        }
        let mid = (y0 + y1) as f64 / 2.0;
        let half = (lane_h as f64 / 2.0 - 4.0).max(1.0);
        let amp_y = |a: f64| mid - a / scale * half;
        let fs_top = amp_y(1.0).round() as i64;
        let fs_bot = amp_y(-1.0).round() as i64;
        c.hline(x0, x1, fs_top, FULL_SCALE, 1.0);
        c.hline(x0, x1, fs_bot, FULL_SCALE, 1.0);
        if lane_h >= 90 {
            // -6 dBFS guides
            c.dashed_hline(x0, x1, amp_y(0.5).round() as i64, 2, 4, GRID);
            c.dashed_hline(x0, x1, amp_y(-0.5).round() as i64, 2, 4, GRID);
        }

        // Centre line under the waveform, so digital silence still shows as a line.
        c.hline(x0, x1, mid.round() as i64, AXIS, 0.55);
        if let Some(&(label, mins, maxs)) = p.channels.get(lane as usize) {
            let cols = resample_columns(mins, maxs, plot_w as usize);
            for (i, col) in cols.iter().enumerate() {
                let Some((lo, hi)) = *col else { continue };
                let x = x0 + i as i64;
                let lo = (lo as f64).clamp(-scale, scale);
                let hi = (hi as f64).clamp(-scale, scale);
                let mut ya = amp_y(hi).round() as i64;
                let mut yb = amp_y(lo).round() as i64;
                if yb < ya {
                    std::mem::swap(&mut ya, &mut yb);
                }
                for y in ya..=yb {
                    let colour = if y < fs_top || y > fs_bot {
                        WAVE_OVER
                    } else {
                        WAVE
                    };
                    c.blend(x, y, colour, 1.0);
                }
            }

            // Channel label in the margin; full-scale labels when there is room.
            let label = if label.is_empty() {
                format!("{}", lane + 1)
            } else {
                label.to_string()
            };
            let big = if lane_h >= 40 {
                LABEL_SCALE
            } else {
                SMALL_SCALE
            };
            let max_label_w = MARGIN_LEFT - 16;
            let label = truncate_to_width(&label, big, max_label_w);
            c.text(12, mid.round() as i64, &label, big, TITLE, Align::Left);
            if lane_h >= 100 {
                let tx = x0 - 6;
                c.text(tx, fs_top, "+1", LABEL_SCALE, TEXT_DIM, Align::Right);
                c.text(tx, fs_bot, "-1", LABEL_SCALE, TEXT_DIM, Align::Right);
            }
        } else {
            c.text(
                (x0 + x1) / 2,
                mid.round() as i64,
                "no audio channels",
                LABEL_SCALE,
                TEXT_DIM,
                Align::Center,
            );
        }
    }

    let axis_y = HEADER + lanes * lane_h + gap * (lanes - 1);
    draw_time_axis(&mut c, &time_axis, &ticks, axis_y, dur.is_none());
    c
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

fn render_loudness(p: &LoudnessPlot) -> Canvas {
    let height: i64 = 540;
    let mut c = Canvas::new(WIDTH, height, BG);
    let (x0, x1) = (MARGIN_LEFT, WIDTH - MARGIN_RIGHT);
    let (y0, y1) = (HEADER + 26, height - FOOTER);
    let plot_w = x1 - x0;

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
    let y_axis = Axis::linear(y1 as f64, y0 as f64, bottom, top);

    let step = finite_positive(p.step_seconds).unwrap_or(1.0);
    let n = p.momentary.len().max(p.short_term.len());
    let dur = if n > 0 {
        finite_positive(n as f64 * step)
    } else {
        None
    };
    let time_axis = Axis::linear(x0 as f64, x1 as f64, 0.0, dur.unwrap_or(1.0));
    let ticks = match dur {
        Some(d) => time_ticks(d, plot_w),
        None => Vec::new(),
    };

    // Header with legend on the right.
    let mut legend: Vec<(&str, Rgb, LegendKind)> = vec![
        ("Momentary", MOMENTARY, LegendKind::Thin),
        ("Short-term", SHORT_TERM, LegendKind::Bold),
    ];
    if p.integrated.is_some_and(f64::is_finite) {
        legend.push(("Integrated", INTEGRATED, LegendKind::Dashed));
    }
    if p.target.is_some_and(|t| t.1.is_finite()) {
        legend.push(("Target", TARGET, LegendKind::Thin));
    }
    draw_header(&mut c, p.title, "");
    draw_legend(&mut c, &legend, x1, HEADER / 2 - 2);

    // Plot frame and grid.
    c.fill_rect(x0, y0, x1, y1, PANEL, 1.0);
    for &(t, _) in &ticks {
        c.vline(time_axis.px(t).round() as i64, y0, y1, GRID_MINOR, 1.0);
    }
    let mut g = bottom;
    while g <= top + 1e-9 {
        let y = y_axis.px(g).round() as i64;
        c.hline(x0, x1, y, if g == 0.0 { AXIS } else { GRID }, 1.0);
        c.text(x0 - 8, y, &fmt0(g), LABEL_SCALE, TEXT, Align::Right);
        g += grid_step;
    }
    c.text(x0 - 8, y0 - 20, "LUFS", LABEL_SCALE, TEXT_DIM, Align::Right);

    c.set_clip(x0, y0, x1, y1 + 1);
    let map = |i: usize, v: f64| -> (f64, f64) {
        let t = (i as f64 + 0.5) * step;
        let v = v.clamp(bottom - 2.0, top + 2.0);
        (time_axis.px(t), y_axis.px(v))
    };
    let mut mask = Mask::new(&c);
    draw_history(&mut mask, p.momentary, plot_w as usize, 1.3, &map);
    c.composite(&mask, MOMENTARY, 1.0);
    let mut mask = Mask::new(&c);
    draw_history(&mut mask, p.short_term, plot_w as usize, 2.8, &map);
    c.composite(&mask, SHORT_TERM, 1.0);

    // Reference lines with labelled values.
    let mut labels: Vec<(String, Rgb, i64, Align)> = Vec::new();
    if let Some((name, t)) = p.target.filter(|t| t.1.is_finite()) {
        let y = y_axis.px(t).round() as i64;
        c.fill_rect(x0, y - 1, x1, y + 1, TARGET, 1.0);
        let name = if name.is_empty() { "Target" } else { name };
        labels.push((format!("{name}  {} LUFS", fmt1(t)), TARGET, y, Align::Left));
    }
    if let Some(i) = p.integrated.filter(|v| v.is_finite()) {
        let y = y_axis.px(i).round() as i64;
        c.dashed_hline(x0, x1, y - 1, 10, 6, INTEGRATED);
        c.dashed_hline(x0, x1, y, 10, 6, INTEGRATED);
        labels.push((
            format!("Integrated  {} LUFS", fmt1(i)),
            INTEGRATED,
            y,
            Align::Right,
        ));
    }
    for (text, colour, y, align) in labels {
        let x = match align {
            Align::Left => x0 + 10,
            _ => x1 - 10,
        };
        // Put the label above the line, or below it when too close to the top.
        let ty = if y - 22 > y0 { y - 14 } else { y + 14 };
        c.label_box(x, ty, &text, LABEL_SCALE, colour, align);
    }
    c.reset_clip();

    let has_history = p
        .momentary
        .iter()
        .chain(p.short_term.iter())
        .any(|v| v.is_some_and(f64::is_finite));
    if !has_history {
        c.label_box(
            (x0 + x1) / 2,
            (y0 + y1) / 2,
            "no loudness data (silence)",
            LABEL_SCALE,
            TEXT_DIM,
            Align::Center,
        );
    }
    draw_frame(&mut c, x0, y0, x1, y1);
    draw_time_axis(&mut c, &time_axis, &ticks, y1, dur.is_none());
    c
}

/// Per-pixel-column accumulator while decimating: (column, (index, min), (index, max)).
type ColumnExtremes = (i64, (usize, f64), (usize, f64));

/// Add one history series to `mask` as polylines broken at `None`. Long
/// histories are reduced to per-pixel-column extremes first.
fn draw_history(
    mask: &mut Mask,
    values: &[Option<f64>],
    plot_w: usize,
    width: f64,
    map: &dyn Fn(usize, f64) -> (f64, f64),
) {
    let mut runs: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut run: Vec<(f64, f64)> = Vec::new();
    let decimate = values.len() > plot_w.max(1) * 2;
    let mut col: Option<ColumnExtremes> = None;
    let flush = |col: &mut Option<ColumnExtremes>, run: &mut Vec<(f64, f64)>| {
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
                let cx = map(i, v).0.floor() as i64;
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
    for run in &runs {
        if run.len() == 1 {
            mask.disc(run[0], width.max(3.0));
        } else {
            mask.polyline(run, width);
        }
    }
}

#[derive(Clone, Copy)]
enum LegendKind {
    Thin,
    Bold,
    Dashed,
}

/// Legend entries laid out right-to-left ending at `right`, centred on `cy`.
fn draw_legend(c: &mut Canvas, items: &[(&str, Rgb, LegendKind)], right: i64, cy: i64) {
    const SWATCH: i64 = 22;
    let widths: Vec<i64> = items
        .iter()
        .map(|(t, _, _)| SWATCH + 8 + text_width(t, LABEL_SCALE))
        .collect();
    let total: i64 = widths.iter().sum::<i64>() + 22 * (items.len() as i64 - 1).max(0);
    let mut x = right - total;
    for ((text, colour, kind), w) in items.iter().zip(widths) {
        match kind {
            LegendKind::Thin => c.fill_rect(x, cy, x + SWATCH, cy + 1, *colour, 1.0),
            LegendKind::Bold => c.fill_rect(x, cy - 1, x + SWATCH, cy + 2, *colour, 1.0),
            LegendKind::Dashed => {
                c.fill_rect(x, cy - 1, x + 8, cy + 1, *colour, 1.0);
                c.fill_rect(x + 13, cy - 1, x + SWATCH, cy + 1, *colour, 1.0);
            }
        }
        c.text(x + SWATCH + 8, cy, text, LABEL_SCALE, TEXT, Align::Left);
        x += w + 22;
    }
}

// ---------------------------------------------------------------------------
// Spectrum
// ---------------------------------------------------------------------------

fn render_spectrum(p: &SpectrumPlot) -> Canvas {
    let height: i64 = 560;
    let strip = 48; // band names live in this strip above the plot
    let mut c = Canvas::new(WIDTH, height, BG);
    let (x0, x1) = (MARGIN_LEFT, WIDTH - MARGIN_RIGHT);
    let (sy0, y0, y1) = (HEADER + 6, HEADER + 6 + strip, height - FOOTER);

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
    let f_axis = Axis::log(x0 as f64, x1 as f64, 20.0, f_max);

    // Level range: from the loudest bin inside the shown range down 90 dB.
    let shown_max = freqs
        .iter()
        .zip(db)
        .filter(|(f, d)| **f >= 20.0 * 0.9 && **f <= f_max * 1.1 && d.is_finite())
        .map(|(_, d)| *d)
        .fold(f64::NEG_INFINITY, f64::max);
    let any_max = db
        .iter()
        .copied()
        .filter(|d| d.is_finite())
        .fold(f64::NEG_INFINITY, f64::max);
    let peak = if shown_max.is_finite() {
        shown_max
    } else {
        any_max
    };
    let db_top = if peak.is_finite() {
        ((peak + 3.0) / 10.0).ceil() * 10.0
    } else {
        0.0
    };
    let db_bottom = db_top - 90.0;
    let y_axis = Axis::linear(y1 as f64, y0 as f64, db_bottom, db_top);

    draw_header(&mut c, p.title, "long-term average spectrum");

    c.fill_rect(x0, y0, x1, y1, PANEL, 1.0);
    // Minor log grid (30, 40, ... 90, 300, ...), then major ticks.
    let mut decade = 10.0;
    while decade < f_max {
        for m in 2..10 {
            let f = decade * m as f64;
            if f > 20.0 && f < f_max {
                c.vline(f_axis.px(f).round() as i64, y0, y1, GRID_MINOR, 1.0);
            }
        }
        decade *= 10.0;
    }
    let major: Vec<(f64, &str)> = [
        (20.0, "20"),
        (50.0, "50"),
        (100.0, "100"),
        (200.0, "200"),
        (500.0, "500"),
        (1000.0, "1k"),
        (2000.0, "2k"),
        (5000.0, "5k"),
        (10_000.0, "10k"),
        (20_000.0, "20k"),
    ]
    .into_iter()
    .filter(|(f, _)| *f <= f_max * 1.0001)
    .collect();
    for &(f, _) in &major {
        c.vline(f_axis.px(f).round() as i64, y0, y1, GRID, 1.0);
    }
    let mut g = db_bottom;
    while g <= db_top + 1e-9 {
        let y = y_axis.px(g).round() as i64;
        c.hline(x0, x1, y, GRID, 1.0);
        c.text(x0 - 8, y, &fmt0(g), LABEL_SCALE, TEXT, Align::Right);
        g += 10.0;
    }
    c.text(x0 - 8, y0 - 16, "dB", LABEL_SCALE, TEXT_DIM, Align::Right);

    // Bands: shaded columns through the strip and the plot, labelled in the strip.
    for (i, &(name, lo, hi, share)) in p.bands.iter().enumerate() {
        if !(lo.is_finite() && hi.is_finite()) {
            continue;
        }
        let (lo, hi) = (lo.max(20.0), hi.min(f_max));
        if hi <= lo {
            continue;
        }
        let colour = BAND_COLOURS[i % BAND_COLOURS.len()];
        let bx0 = f_axis.px(lo).round() as i64;
        let bx1 = f_axis.px(hi).round() as i64;
        c.fill_rect(bx0, sy0, bx1, y0, colour, 0.16);
        c.fill_rect(bx0, y0, bx1, y1, colour, 0.07);
        c.vline(bx0, sy0, y1, colour, 0.35);
        c.vline(bx1 - 1, sy0, y1, colour, 0.35);
        let cx = (bx0 + bx1) / 2;
        let room = bx1 - bx0 - 6;
        let share = if share.is_finite() {
            format!("{}%", fmt1(share))
        } else {
            "-".to_string()
        };
        let (scale, name_y, share_y) = if room >= text_width(name, LABEL_SCALE) {
            (LABEL_SCALE, sy0 + 13, sy0 + 34)
        } else {
            (SMALL_SCALE, sy0 + 14, sy0 + 32)
        };
        let name = truncate_to_width(name, scale, room);
        c.text(cx, name_y, &name, scale, TITLE, Align::Center);
        let share_scale = if room >= text_width(&share, LABEL_SCALE) {
            LABEL_SCALE
        } else {
            SMALL_SCALE
        };
        c.text(cx, share_y, &share, share_scale, colour, Align::Center);
    }

    // The curve: bins grouped per pixel column (power mean), clamped to the range.
    let mut pts: Vec<(f64, f64)> = Vec::new();
    let mut group: Option<(i64, f64, f64, usize)> = None; // (column, sum x, sum power, count)
    let push = |g: Option<(i64, f64, f64, usize)>, pts: &mut Vec<(f64, f64)>| {
        if let Some((_, sx, sp, k)) = g {
            let level = if sp > 0.0 {
                10.0 * (sp / k as f64).log10()
            } else {
                f64::NEG_INFINITY
            };
            let level = level.clamp(db_bottom, db_top);
            pts.push((sx / k as f64, y_axis.px(level)));
        }
    };
    for (&f, &d) in freqs.iter().zip(db) {
        if !(f.is_finite() && f > 0.0) || d.is_nan() {
            continue;
        }
        let x = f_axis.px(f);
        let col = x.floor() as i64;
        let power = if d == f64::INFINITY {
            10f64.powf(db_top / 10.0)
        } else {
            10f64.powf(d / 10.0)
        };
        match &mut group {
            Some((gc, sx, sp, k)) if *gc == col => {
                *sx += x;
                *sp += power;
                *k += 1;
            }
            _ => {
                push(group.take(), &mut pts);
                group = Some((col, x, power, 1));
            }
        }
    }
    push(group, &mut pts);

    c.set_clip(x0, y0, x1, y1);
    if pts.len() >= 2 {
        // Soft fill under the curve.
        let first = pts[0].0.max(x0 as f64).ceil() as i64;
        let last = pts[pts.len() - 1].0.min(x1 as f64).floor() as i64;
        let mut j = 0;
        for x in first..=last {
            let xf = x as f64 + 0.5;
            while j + 2 < pts.len() && pts[j + 1].0 < xf {
                j += 1;
            }
            let (a, b) = (pts[j], pts[j + 1]);
            let t = if b.0 > a.0 {
                ((xf - a.0) / (b.0 - a.0)).clamp(0.0, 1.0)
            } else {
                0.0
            };
            let y = (a.1 + (b.1 - a.1) * t).round() as i64;
            for yy in y..y1 {
                let fade = 0.2 - 0.17 * (yy - y) as f64 / (y1 - y).max(1) as f64;
                c.blend(x, yy, SPECTRUM, fade.max(0.03));
            }
        }
        let mut mask = Mask::new(&c);
        mask.polyline(&pts, 2.2);
        c.composite(&mask, SPECTRUM, 1.0);
    } else if pts.len() == 1 {
        let mut mask = Mask::new(&c);
        mask.disc(pts[0], 3.0);
        c.composite(&mask, SPECTRUM, 1.0);
    }
    c.reset_clip();
    if pts.is_empty() {
        c.label_box(
            (x0 + x1) / 2,
            (y0 + y1) / 2,
            "no spectrum data",
            LABEL_SCALE,
            TEXT_DIM,
            Align::Center,
        );
    }

    draw_frame(&mut c, x0, y0, x1, y1);
    for &(f, label) in &major {
        let x = f_axis.px(f).round() as i64;
        c.vline(x, y1, y1 + 5, AXIS, 1.0);
        c.text(x, y1 + 18, label, LABEL_SCALE, TEXT, Align::Center);
    }
    c.text(x0 - 24, y1 + 18, "Hz", LABEL_SCALE, TEXT_DIM, Align::Right);
    c
}

// ---------------------------------------------------------------------------
// Shared chart pieces
// ---------------------------------------------------------------------------

fn draw_header(c: &mut Canvas, title: &str, info: &str) {
    let cy = HEADER / 2 - 2;
    let info_w = if info.is_empty() {
        0
    } else {
        text_width(info, LABEL_SCALE) + 40
    };
    let room = WIDTH - MARGIN_RIGHT - 16 - info_w;
    let title = if title.is_empty() { "untitled" } else { title };
    let scale = if text_width(title, TITLE_SCALE) <= room {
        TITLE_SCALE
    } else {
        LABEL_SCALE
    };
    let title = truncate_to_width(title, scale, room);
    c.text(16, cy, &title, scale, TITLE, Align::Left);
    if !info.is_empty() {
        c.text(
            WIDTH - MARGIN_RIGHT,
            cy,
            info,
            LABEL_SCALE,
            TEXT_DIM,
            Align::Right,
        );
    }
}

fn draw_frame(c: &mut Canvas, x0: i64, y0: i64, x1: i64, y1: i64) {
    c.hline(x0, x1, y1, AXIS, 1.0);
    c.vline(x0 - 1, y0, y1 + 1, AXIS, 1.0);
}

/// Tick marks and labels under a plot whose bottom edge is `y`.
fn draw_time_axis(c: &mut Canvas, axis: &Axis, ticks: &[(f64, String)], y: i64, empty: bool) {
    let (x0, x1) = (axis.p0.round() as i64, axis.p1.round() as i64);
    c.hline(x0, x1, y, AXIS, 1.0);
    for (t, label) in ticks {
        let x = axis.px(*t).round() as i64;
        c.vline(x, y, y + 5, AXIS, 1.0);
        // Keep the first and last labels inside the image.
        let w = text_width(label, LABEL_SCALE);
        let cx = x.clamp(w / 2 + 2, WIDTH - w / 2 - 2);
        c.text(cx, y + 18, label, LABEL_SCALE, TEXT, Align::Center);
    }
    if empty {
        c.text(x0, y + 18, "0:00", LABEL_SCALE, TEXT, Align::Center);
    }
}

#[derive(Clone, Copy)]
struct Axis {
    p0: f64,
    p1: f64,
    v0: f64,
    v1: f64,
    log: bool,
}

impl Axis {
    fn linear(p0: f64, p1: f64, v0: f64, v1: f64) -> Axis {
        Axis {
            p0,
            p1,
            v0,
            v1,
            log: false,
        }
    }

    fn log(p0: f64, p1: f64, v0: f64, v1: f64) -> Axis {
        Axis {
            p0,
            p1,
            v0: v0.ln(),
            v1: v1.ln(),
            log: true,
        }
    }

    fn px(&self, v: f64) -> f64 {
        let v = if self.log { v.ln() } else { v };
        let span = self.v1 - self.v0;
        if span.abs() < 1e-300 || !span.is_finite() {
            return self.p0;
        }
        let px = self.p0 + (v - self.v0) / span * (self.p1 - self.p0);
        // Keep far-off values finite and within a sane distance of the plot.
        if px.is_nan() {
            self.p0
        } else {
            px.clamp(-1e6, 1e6)
        }
    }
}

fn finite_positive(v: f64) -> Option<f64> {
    (v.is_finite() && v > 0.0).then_some(v)
}

/// Evenly spaced "nice" time ticks for a span of `dur` seconds over `width` px.
fn time_ticks(dur: f64, width: i64) -> Vec<(f64, String)> {
    const STEPS: [f64; 25] = [
        0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0,
        60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0, 10800.0, 21600.0,
    ];
    let max_ticks = (width / 110).max(2) as f64;
    let step = STEPS
        .iter()
        .copied()
        .find(|s| dur / s <= max_ticks)
        .unwrap_or_else(|| ((dur / max_ticks) / 3600.0).ceil() * 3600.0);
    let count = (dur / step + 1e-9).floor() as usize;
    (0..=count)
        .map(|k| {
            let t = k as f64 * step;
            (t, format_time(t, step, dur))
        })
        .collect()
}

fn format_time(t: f64, step: f64, total: f64) -> String {
    if total < 60.0 {
        let decimals = if step >= 1.0 {
            0
        } else if step >= 0.1 {
            1
        } else if step >= 0.01 {
            2
        } else {
            3
        };
        format!("{t:.decimals$}s")
    } else {
        // Ticks are whole seconds here; round first so a tick a hair under one reads as it.
        sluice_core::time::clock(t.round(), 0, total >= 3600.0)
    }
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
// Canvas and drawing primitives
// ---------------------------------------------------------------------------

#[derive(Clone, Copy)]
enum Align {
    Left,
    Center,
    Right,
}

#[derive(Clone, Copy)]
struct Clip {
    x0: i64,
    y0: i64,
    x1: i64,
    y1: i64,
}

struct Canvas {
    w: i64,
    h: i64,
    px: Vec<u8>,
    clip: Clip,
}

impl Canvas {
    fn new(w: i64, h: i64, bg: Rgb) -> Canvas {
        let (w, h) = (w.max(1), h.max(1));
        let mut px = Vec::with_capacity((w * h * 3) as usize);
        for _ in 0..w * h {
            px.extend_from_slice(&bg);
        }
        Canvas {
            w,
            h,
            px,
            clip: Clip {
                x0: 0,
                y0: 0,
                x1: w,
                y1: h,
            },
        }
    }

    fn set_clip(&mut self, x0: i64, y0: i64, x1: i64, y1: i64) {
        self.clip = Clip {
            x0: x0.clamp(0, self.w),
            y0: y0.clamp(0, self.h),
            x1: x1.clamp(0, self.w),
            y1: y1.clamp(0, self.h),
        };
    }

    fn reset_clip(&mut self) {
        self.set_clip(0, 0, self.w, self.h);
    }

    fn blend(&mut self, x: i64, y: i64, c: Rgb, a: f64) {
        let k = &self.clip;
        if x < k.x0 || x >= k.x1 || y < k.y0 || y >= k.y1 || a <= 0.0 {
            return;
        }
        let i = ((y * self.w + x) * 3) as usize;
        let a = a.min(1.0);
        for (ch, &src) in self.px[i..i + 3].iter_mut().zip(&c) {
            *ch = (*ch as f64 + (src as f64 - *ch as f64) * a).round() as u8;
        }
    }

    /// Fill the half-open rectangle [x0, x1) x [y0, y1).
    fn fill_rect(&mut self, x0: i64, y0: i64, x1: i64, y1: i64, c: Rgb, a: f64) {
        let k = self.clip;
        for y in y0.max(k.y0)..y1.min(k.y1) {
            for x in x0.max(k.x0)..x1.min(k.x1) {
                self.blend(x, y, c, a);
            }
        }
    }

    fn hline(&mut self, x0: i64, x1: i64, y: i64, c: Rgb, a: f64) {
        self.fill_rect(x0, y, x1, y + 1, c, a);
    }

    fn vline(&mut self, x: i64, y0: i64, y1: i64, c: Rgb, a: f64) {
        self.fill_rect(x, y0, x + 1, y1, c, a);
    }

    fn dashed_hline(&mut self, x0: i64, x1: i64, y: i64, dash: i64, gap: i64, c: Rgb) {
        let mut x = x0;
        while x < x1 {
            self.hline(x, (x + dash).min(x1), y, c, 1.0);
            x += dash + gap;
        }
    }

    /// Blend `c` wherever `mask` has coverage.
    fn composite(&mut self, mask: &Mask, c: Rgb, a: f64) {
        let k = mask.clip;
        for y in k.y0..k.y1 {
            for x in k.x0..k.x1 {
                let cov = mask.cov[(y * mask.w + x) as usize];
                if cov > 0.0 {
                    self.blend(x, y, c, cov as f64 * a);
                }
            }
        }
    }

    /// Draw `s` with the built-in font; `(x, y)` is the anchor given by `align`
    /// horizontally and the middle of the capitals vertically.
    fn text(&mut self, x: i64, y: i64, s: &str, scale: i64, c: Rgb, align: Align) {
        let w = text_width(s, scale);
        let left = match align {
            Align::Left => x,
            Align::Center => x - w / 2,
            Align::Right => x - w,
        };
        let top = y - (7 * scale) / 2;
        let mut cx = left;
        for ch in s.chars() {
            let (drop, rows) = glyph(ch);
            for (r, bits) in rows.iter().enumerate() {
                for col in 0..5 {
                    if bits & (0b10000 >> col) != 0 {
                        let px = cx + col * scale;
                        let py = top + (r as i64 + drop as i64) * scale;
                        self.fill_rect(px, py, px + scale, py + scale, c, 1.0);
                    }
                }
            }
            cx += 6 * scale;
        }
    }

    /// Text on a translucent background box, for labels over data.
    fn label_box(&mut self, x: i64, y: i64, s: &str, scale: i64, c: Rgb, align: Align) {
        let w = text_width(s, scale);
        let left = match align {
            Align::Left => x,
            Align::Center => x - w / 2,
            Align::Right => x - w,
        };
        let (pad, half) = (5, (7 * scale) / 2);
        self.fill_rect(
            left - pad,
            y - half - pad,
            left + w + pad,
            y + half + pad + 1,
            BG,
            0.82,
        );
        self.text(left, y, s, scale, c, Align::Left);
    }
}

/// Coverage buffer for anti-aliased strokes: segments take the maximum
/// coverage, so joints of a polyline are not blended twice.
struct Mask {
    w: i64,
    cov: Vec<f32>,
    clip: Clip,
}

impl Mask {
    fn new(canvas: &Canvas) -> Mask {
        Mask {
            w: canvas.w,
            cov: vec![0.0; (canvas.w * canvas.h) as usize],
            clip: canvas.clip,
        }
    }

    fn put(&mut self, x: i64, y: i64, cov: f64) {
        let i = (y * self.w + x) as usize;
        let cov = cov as f32;
        if cov > self.cov[i] {
            self.cov[i] = cov;
        }
    }

    /// A round-capped stroke of `width` px between two points (pixel centres at +0.5).
    fn segment(&mut self, a: (f64, f64), b: (f64, f64), width: f64) {
        if !(a.0.is_finite() && a.1.is_finite() && b.0.is_finite() && b.1.is_finite()) {
            return;
        }
        let hw = width / 2.0;
        let k = self.clip;
        let bx0 = ((a.0.min(b.0) - hw - 1.0).floor() as i64).max(k.x0);
        let bx1 = ((a.0.max(b.0) + hw + 1.0).ceil() as i64).min(k.x1);
        let by0 = ((a.1.min(b.1) - hw - 1.0).floor() as i64).max(k.y0);
        let by1 = ((a.1.max(b.1) + hw + 1.0).ceil() as i64).min(k.y1);
        let (dx, dy) = (b.0 - a.0, b.1 - a.1);
        let len2 = dx * dx + dy * dy;
        for y in by0..by1 {
            let cy = y as f64 + 0.5;
            for x in bx0..bx1 {
                let cx = x as f64 + 0.5;
                let t = if len2 > 0.0 {
                    (((cx - a.0) * dx + (cy - a.1) * dy) / len2).clamp(0.0, 1.0)
                } else {
                    0.0
                };
                let (ex, ey) = (cx - (a.0 + t * dx), cy - (a.1 + t * dy));
                let d = (ex * ex + ey * ey).sqrt();
                let cov = (hw + 0.5 - d).clamp(0.0, 1.0);
                if cov > 0.0 {
                    self.put(x, y, cov);
                }
            }
        }
    }

    fn polyline(&mut self, pts: &[(f64, f64)], width: f64) {
        for w in pts.windows(2) {
            self.segment(w[0], w[1], width);
        }
    }

    fn disc(&mut self, p: (f64, f64), radius: f64) {
        self.segment(p, p, radius * 2.0);
    }
}

fn text_width(s: &str, scale: i64) -> i64 {
    let n = s.chars().count() as i64;
    if n == 0 { 0 } else { n * 6 * scale - scale }
}

/// Shorten `s` with a trailing ".." so it fits in `max_w` px at `scale`.
fn truncate_to_width(s: &str, scale: i64, max_w: i64) -> String {
    if text_width(s, scale) <= max_w {
        return s.to_string();
    }
    let max_chars = ((max_w + scale) / (6 * scale)).max(0) as usize;
    if max_chars <= 2 {
        return s.chars().take(max_chars).collect();
    }
    let mut out: String = s.chars().take(max_chars - 2).collect();
    out.push_str("..");
    out
}

/// The 5x7 font: (rows to drop the glyph by, seven rows of five bits with the
/// leftmost pixel in bit 4). Capitals sit on rows 0-6; lower-case x-height is
/// rows 2-6; descenders are drawn by dropping the glyph two rows.
fn glyph(c: char) -> (u8, [u8; 7]) {
    let rows: [u8; 7] = match c {
        ' ' => [0, 0, 0, 0, 0, 0, 0],
        '!' => [0x04, 0x04, 0x04, 0x04, 0x04, 0x00, 0x04],
        '"' => [0x0A, 0x0A, 0, 0, 0, 0, 0],
        '#' => [0x0A, 0x0A, 0x1F, 0x0A, 0x1F, 0x0A, 0x0A],
        '$' => [0x04, 0x0F, 0x14, 0x0E, 0x05, 0x1E, 0x04],
        '%' => [0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03],
        '&' => [0x0C, 0x12, 0x14, 0x08, 0x15, 0x12, 0x0D],
        '\'' => [0x04, 0x04, 0, 0, 0, 0, 0],
        '(' => [0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02],
        ')' => [0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08],
        '*' => [0x00, 0x04, 0x15, 0x0E, 0x15, 0x04, 0x00],
        '+' => [0x00, 0x04, 0x04, 0x1F, 0x04, 0x04, 0x00],
        ',' => return (2, [0, 0, 0, 0x0C, 0x0C, 0x04, 0x08]),
        '-' => [0x00, 0x00, 0x00, 0x0E, 0x00, 0x00, 0x00],
        '.' => [0, 0, 0, 0, 0, 0x0C, 0x0C],
        '/' => [0x01, 0x01, 0x02, 0x04, 0x08, 0x10, 0x10],
        '0' => [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E],
        '1' => [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E],
        '2' => [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F],
        '3' => [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E],
        '4' => [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02],
        '5' => [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E],
        '6' => [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E],
        '7' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
        '8' => [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E],
        '9' => [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C],
        ':' => [0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00],
        ';' => [0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x04, 0x08],
        '<' => [0x02, 0x04, 0x08, 0x10, 0x08, 0x04, 0x02],
        '=' => [0x00, 0x00, 0x1F, 0x00, 0x1F, 0x00, 0x00],
        '>' => [0x08, 0x04, 0x02, 0x01, 0x02, 0x04, 0x08],
        '?' => [0x0E, 0x11, 0x01, 0x02, 0x04, 0x00, 0x04],
        '@' => [0x0E, 0x11, 0x01, 0x0D, 0x15, 0x15, 0x0E],
        'A' => [0x0E, 0x11, 0x11, 0x11, 0x1F, 0x11, 0x11],
        'B' => [0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E],
        'C' => [0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E],
        'D' => [0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C],
        'E' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F],
        'F' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10],
        'G' => [0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F],
        'H' => [0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11],
        'I' => [0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E],
        'J' => [0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C],
        'K' => [0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11],
        'L' => [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F],
        'M' => [0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11],
        'N' => [0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11],
        'O' => [0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        'P' => [0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10],
        'Q' => [0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D],
        'R' => [0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11],
        'S' => [0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E],
        'T' => [0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04],
        'U' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        'V' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04],
        'W' => [0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A],
        'X' => [0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11],
        'Y' => [0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04],
        'Z' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F],
        '[' => [0x0E, 0x08, 0x08, 0x08, 0x08, 0x08, 0x0E],
        '\\' => [0x10, 0x10, 0x08, 0x04, 0x02, 0x01, 0x01],
        ']' => [0x0E, 0x02, 0x02, 0x02, 0x02, 0x02, 0x0E],
        '^' => [0x04, 0x0A, 0x11, 0, 0, 0, 0],
        '_' => return (1, [0, 0, 0, 0, 0, 0, 0x1F]),
        '`' => [0x08, 0x04, 0, 0, 0, 0, 0],
        'a' => [0, 0, 0x0E, 0x01, 0x0F, 0x11, 0x0F],
        'b' => [0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x1E],
        'c' => [0, 0, 0x0E, 0x10, 0x10, 0x11, 0x0E],
        'd' => [0x01, 0x01, 0x0D, 0x13, 0x11, 0x11, 0x0F],
        'e' => [0, 0, 0x0E, 0x11, 0x1F, 0x10, 0x0E],
        'f' => [0x06, 0x09, 0x08, 0x1C, 0x08, 0x08, 0x08],
        'g' => return (2, [0x0F, 0x11, 0x11, 0x13, 0x0D, 0x01, 0x0E]),
        'h' => [0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x11],
        'i' => [0x04, 0x00, 0x0C, 0x04, 0x04, 0x04, 0x0E],
        'j' => return (1, [0x02, 0x00, 0x06, 0x02, 0x02, 0x12, 0x0C]),
        'k' => [0x10, 0x10, 0x12, 0x14, 0x18, 0x14, 0x12],
        'l' => [0x0C, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E],
        'm' => [0, 0, 0x1A, 0x15, 0x15, 0x11, 0x11],
        'n' => [0, 0, 0x16, 0x19, 0x11, 0x11, 0x11],
        'o' => [0, 0, 0x0E, 0x11, 0x11, 0x11, 0x0E],
        'p' => return (2, [0x16, 0x19, 0x11, 0x11, 0x1E, 0x10, 0x10]),
        'q' => return (2, [0x0D, 0x13, 0x11, 0x11, 0x0F, 0x01, 0x01]),
        'r' => [0, 0, 0x16, 0x19, 0x10, 0x10, 0x10],
        's' => [0, 0, 0x0F, 0x10, 0x0E, 0x01, 0x1E],
        't' => [0x08, 0x08, 0x1C, 0x08, 0x08, 0x09, 0x06],
        'u' => [0, 0, 0x11, 0x11, 0x11, 0x13, 0x0D],
        'v' => [0, 0, 0x11, 0x11, 0x11, 0x0A, 0x04],
        'w' => [0, 0, 0x11, 0x11, 0x15, 0x15, 0x0A],
        'x' => [0, 0, 0x11, 0x0A, 0x04, 0x0A, 0x11],
        'y' => return (2, [0x11, 0x11, 0x11, 0x13, 0x0D, 0x01, 0x0E]),
        'z' => [0, 0, 0x1F, 0x02, 0x04, 0x08, 0x1F],
        '{' => [0x02, 0x04, 0x04, 0x08, 0x04, 0x04, 0x02],
        '|' => [0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04],
        '}' => [0x08, 0x04, 0x04, 0x02, 0x04, 0x04, 0x08],
        '~' => [0, 0, 0x08, 0x15, 0x02, 0, 0],
        // Anything outside printable ASCII (accents, CJK, ...) shows as '?'.
        _ => return glyph('?'),
    };
    (0, rows)
}

// ---------------------------------------------------------------------------
// PNG output
// ---------------------------------------------------------------------------

fn encode_png(c: &Canvas) -> Result<Vec<u8>, png::EncodingError> {
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, c.w as u32, c.h as u32);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    enc.set_compression(png::Compression::Balanced);
    let mut writer = enc.write_header()?;
    writer.write_image_data(&c.px)?;
    writer.finish()?;
    Ok(out)
}

/// Encode `c` and move it into place at `path` whole (through a temporary sibling file).
fn write_png(path: &Path, c: &Canvas) -> io::Result<()> {
    let bytes = encode_png(c)
        .map_err(|e| io::Error::other(format!("writing plot {}: {e}", path.display())))?;
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

#[cfg(test)]
#[path = "plot_tests.rs"]
mod tests;
