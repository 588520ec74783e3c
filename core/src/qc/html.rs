//! The QC report as one self-contained HTML page (no script, no fetched resource; the charts
//! are inline SVG) that prints to PDF from a browser: the verdict first, then each rule, the
//! loudness history with the target band (and the speech the detector found), the short-term
//! histogram, the true-peak events, and the specification's citation.
//!
//! Every figure in the verdict table carries its value as the JSON report has it
//! (`data-measure`, `data-value`), so a test can hold the page to the JSON.

use super::{Outcome, QcReport, Value};
use std::fmt::Write;

/// Width and height of the history chart's plotting area, SVG units.
const W: f64 = 1000.0;
const H: f64 = 260.0;
/// Loudness range drawn, LUFS.
const FLOOR: f64 = -60.0;
const TOP: f64 = 0.0;
/// Points drawn per line at most (longer histories are reduced to each bucket's highest).
const POINTS: usize = 2000;

/// Escape text for HTML.
fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// The outcome as shown, its row's class, and as the JSON names it.
fn outcome_word(o: Outcome) -> (&'static str, &'static str, &'static str) {
    match o {
        Outcome::Pass => ("pass", "pass", "pass"),
        Outcome::Fail => ("FAIL", "fail", "fail"),
        Outcome::Warn => ("warn", "warn", "warn"),
        Outcome::NotMeasured => ("not measured", "fail", "not_measured"),
        Outcome::FromFile => ("from the file", "file", "from_file"),
    }
}

const STYLE: &str = "
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;color:#1b1f24;margin:24px auto;max-width:1060px;padding:0 16px}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:28px 0 8px;border-bottom:1px solid #d0d7de;padding-bottom:4px}
.verdict{display:inline-block;font-size:28px;font-weight:700;padding:6px 18px;border-radius:6px;color:#fff;margin:12px 0}
.verdict.pass{background:#1a7f37}.verdict.fail{background:#cf222e}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #e5e9ee}
td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.fail td.o{color:#cf222e;font-weight:700}tr.warn td.o{color:#9a6700;font-weight:700}tr.pass td.o{color:#1a7f37}tr.file td{color:#57606a}
.meta{color:#57606a}svg{width:100%;height:auto;background:#fff}
.legend span{margin-right:16px}.sw{display:inline-block;width:12px;height:12px;vertical-align:-1px;margin-right:4px}
@media print{body{margin:0;max-width:none}h2{break-after:avoid}svg,table{break-inside:avoid}}
";

/// The report page of `r`.
pub fn report_html(r: &QcReport) -> String {
    let m = &r.measured;
    let mut o = String::new();
    let file = m.path.file_name().map_or_else(
        || m.path.display().to_string(),
        |f| f.to_string_lossy().to_string(),
    );
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>QC: {} against {}</title><style>{STYLE}</style></head><body>\n",
        esc(&file),
        esc(&r.spec_name)
    );
    let (word, class) = if r.passed {
        ("PASS", "pass")
    } else {
        ("FAIL", "fail")
    };
    let _ = write!(
        o,
        "<h1>{}</h1><div class=\"meta\">{} · {} · {} ch · {} Hz · {:.1} s</div>\n\
         <div class=\"verdict {class}\" id=\"verdict\" data-passed=\"{}\">{word}</div> \
         <span class=\"meta\">against <b>{}</b> (<code>{}</code>)</span>\n",
        esc(&file),
        esc(&m.path.display().to_string()),
        esc(&m.codec),
        m.channels,
        m.sample_rate_hz,
        m.duration_s,
        r.passed,
        esc(&r.spec_name),
        esc(&r.spec),
    );
    verdict_table(&mut o, r);
    o.push_str("<h2>Loudness history</h2>\n");
    history_svg(&mut o, r);
    o.push_str("<h2>Short-term loudness distribution</h2>\n");
    histogram_svg(&mut o, &m.short_term_lufs);
    events(&mut o, r);
    if let (Some(share), Some(segs)) = (m.speech_share, &m.speech_segments) {
        let _ = writeln!(
            o,
            "<h2>Speech</h2><p><span id=\"speech-share\" data-value=\"{share}\">{:.0} %</span> of \
             the file is speech, in {} segment(s), as Sluice's own speech detector finds it (not \
             Dolby Dialogue Intelligence).</p>",
            share * 100.0,
            segs.len()
        );
    }
    if !m.warnings.is_empty() {
        o.push_str("<h2>Warnings</h2><ul>");
        for w in &m.warnings {
            let _ = write!(o, "<li>{}</li>", esc(w));
        }
        o.push_str("</ul>\n");
    }
    let _ = write!(
        o,
        "<h2>Specification</h2><p><b>{}</b> — {}{}</p>\n\
         <p class=\"meta\">Measured by Sluice {}: loudness per ITU-R BS.1770-4 and EBU Tech \
         3341/3342, true peak with 4× oversampling.</p>\n</body></html>\n",
        esc(&r.spec_name),
        esc(&r.source),
        r.url.as_ref().map_or(String::new(), |u| link(u)),
        env!("CARGO_PKG_VERSION"),
    );
    o
}

/// A specification's address: a link when it is http(s), else text (a `javascript:` address
/// in a specification file must not become something a client clicks).
fn link(url: &str) -> String {
    let lower = url.trim_start().to_ascii_lowercase();
    if lower.starts_with("https://") || lower.starts_with("http://") {
        format!(" <a href=\"{0}\">{0}</a>", esc(url))
    } else {
        format!(" ({})", esc(url))
    }
}

fn verdict_table(o: &mut String, r: &QcReport) {
    o.push_str(
        "<h2>Rules</h2><table id=\"rules\"><thead><tr><th>Measure</th><th class=\"num\">Value</th>\
         <th>Limit</th><th>Verdict</th><th>Note</th></tr></thead><tbody>\n",
    );
    for v in &r.verdicts {
        let (word, class, json) = outcome_word(v.outcome);
        let (shown, data) = match &v.value {
            Some(Value::Number(x)) => (format!("{} {}", Value::Number(*x), v.unit), format!("{x}")),
            Some(Value::Text(t)) => (esc(t), esc(t)),
            None => ("—".into(), String::new()),
        };
        let _ = writeln!(
            o,
            "<tr class=\"{class}\" data-measure=\"{}\" data-value=\"{data}\" data-outcome=\"{}\">\
             <td>{}</td><td class=\"num\">{}</td><td>{}</td><td class=\"o\">{word}</td><td>{}</td></tr>",
            v.measure.name(),
            json,
            v.measure.name(),
            shown.trim_end(),
            esc(&v.limit),
            esc(v.note.as_deref().unwrap_or("")),
        );
    }
    o.push_str("</tbody></table>\n");
}

/// At most `POINTS` (time, value) points: each bucket's highest.
fn reduced(series: &[Option<f64>]) -> Vec<(f64, Option<f64>)> {
    let per = series.len().div_ceil(POINTS).max(1);
    series
        .chunks(per)
        .enumerate()
        .map(|(i, c)| {
            let hi = c
                .iter()
                .flatten()
                .copied()
                .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))));
            ((i * per + c.len() / 2) as f64 * 0.1, hi)
        })
        .collect()
}

/// A polyline per run of measured points (silence breaks the line).
fn lines(
    o: &mut String,
    pts: &[(f64, Option<f64>)],
    x: &dyn Fn(f64) -> f64,
    colour: &str,
    width: f64,
) {
    let y = |l: f64| H - (l.clamp(FLOOR, TOP) - FLOOR) / (TOP - FLOOR) * H;
    let mut run = String::new();
    let flush = |run: &mut String, o: &mut String| {
        if !run.is_empty() {
            let _ = writeln!(
                o,
                "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"{width}\" points=\"{run}\"/>"
            );
            run.clear();
        }
    };
    for &(t, v) in pts {
        match v {
            Some(v) => {
                let _ = write!(run, "{:.1},{:.1} ", x(t), y(v));
            }
            None => flush(&mut run, o),
        }
    }
    flush(&mut run, o);
}

fn history_svg(o: &mut String, r: &QcReport) {
    let m = &r.measured;
    let len = m.momentary_lufs.len().max(1) as f64 * 0.1;
    let (left, bottom) = (48.0, 28.0);
    let x = |t: f64| left + t / len * W;
    let y = |l: f64| H - (l.clamp(FLOOR, TOP) - FLOOR) / (TOP - FLOOR) * H;
    let _ = writeln!(
        o,
        "<svg id=\"history\" viewBox=\"0 -10 {} {}\" role=\"img\" aria-label=\"loudness history\">",
        W + left + 30.0,
        H + bottom + 10.0
    );
    for db in (FLOOR as i32..=TOP as i32).step_by(10) {
        let yy = y(f64::from(db));
        let _ = writeln!(
            o,
            "<line x1=\"{left}\" x2=\"{}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\" stroke=\"#e5e9ee\"/>\
             <text x=\"{}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\" fill=\"#57606a\">{db}</text>",
            left + W,
            left - 6.0,
            yy + 4.0
        );
    }
    if let Some(segs) = &m.speech_segments {
        for s in segs {
            let _ = writeln!(
                o,
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"6\" fill=\"#8250df\" opacity=\"0.6\"/>",
                x(s[0]),
                H - 6.0,
                (x(s[1]) - x(s[0])).max(0.5)
            );
        }
    }
    if let Some([lo, hi]) = r.target_band_lufs {
        let _ = writeln!(
            o,
            "<rect id=\"target-band\" x=\"{left}\" width=\"{W}\" y=\"{:.1}\" height=\"{:.1}\" fill=\"#1a7f37\" opacity=\"0.15\"/>",
            y(hi),
            (y(lo) - y(hi)).max(1.0)
        );
    }
    for e in &r.true_peak_events {
        let _ = writeln!(
            o,
            "<rect x=\"{:.1}\" y=\"0\" width=\"{:.1}\" height=\"{H}\" fill=\"#cf222e\" opacity=\"0.25\"/>",
            x(e.start_s - m.history_start_s),
            (x(e.end_s) - x(e.start_s)).max(1.0)
        );
    }
    lines(o, &reduced(&m.momentary_lufs), &x, "#9ab6d9", 0.8);
    lines(o, &reduced(&m.short_term_lufs), &x, "#0550ae", 1.6);
    let ticks = 8;
    for i in 0..=ticks {
        let t = len * f64::from(i) / f64::from(ticks);
        let _ = writeln!(
            o,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"middle\" fill=\"#57606a\">{}</text>",
            x(t),
            H + 18.0,
            crate::time::clock(m.history_start_s + t, 0, false)
        );
    }
    o.push_str("</svg>\n<div class=\"legend meta\"><span><i class=\"sw\" style=\"background:#0550ae\"></i>short-term (3 s)</span>\
        <span><i class=\"sw\" style=\"background:#9ab6d9\"></i>momentary (400 ms)</span>\
        <span><i class=\"sw\" style=\"background:#1a7f37;opacity:.3\"></i>target</span>\
        <span><i class=\"sw\" style=\"background:#cf222e;opacity:.4\"></i>true peak over the ceiling</span>\
        <span><i class=\"sw\" style=\"background:#8250df;opacity:.6\"></i>speech</span></div>\n");
}

fn histogram_svg(o: &mut String, short_term: &[Option<f64>]) {
    let values: Vec<f64> = short_term.iter().flatten().copied().collect();
    if values.is_empty() {
        o.push_str("<p class=\"meta\">No short-term loudness (silent, or under 3 s).</p>\n");
        return;
    }
    let lo = values
        .iter()
        .copied()
        .fold(f64::MAX, f64::min)
        .floor()
        .max(FLOOR);
    let hi = values
        .iter()
        .copied()
        .fold(f64::MIN, f64::max)
        .ceil()
        .max(lo + 1.0);
    let bins = ((hi - lo) as usize).max(1);
    let mut counts = vec![0usize; bins];
    for v in &values {
        let b = (((v - lo).max(0.0)) as usize).min(bins - 1);
        counts[b] += 1;
    }
    let most = *counts.iter().max().unwrap_or(&1) as f64;
    let (h, left) = (160.0, 48.0);
    let bw = W / bins as f64;
    let _ = writeln!(
        o,
        "<svg id=\"histogram\" viewBox=\"0 0 {} {}\" role=\"img\" aria-label=\"short-term histogram\">",
        W + left + 30.0,
        h + 24.0
    );
    for (i, &c) in counts.iter().enumerate() {
        let bh = c as f64 / most * h;
        let _ = writeln!(
            o,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{bh:.1}\" fill=\"#0550ae\" data-lufs=\"{}\" data-count=\"{c}\"/>",
            left + i as f64 * bw + 0.5,
            h - bh,
            (bw - 1.0).max(0.5),
            lo + i as f64
        );
    }
    let step = (bins / 10).max(1);
    for i in (0..=bins).step_by(step) {
        let _ = writeln!(
            o,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"middle\" fill=\"#57606a\">{}</text>",
            left + i as f64 * bw,
            h + 16.0,
            lo + i as f64
        );
    }
    o.push_str("</svg>\n<div class=\"meta\">LUFS, 1 LU bins, one count per 100 ms.</div>\n");
}

fn events(o: &mut String, r: &QcReport) {
    let Some(c) = r.ceiling_dbtp else {
        return;
    };
    let _ = writeln!(o, "<h2>True peak over {c} dBTP</h2>");
    if r.true_peak_events.is_empty() {
        o.push_str("<p id=\"events\" data-count=\"0\">None.</p>\n");
        return;
    }
    let _ = writeln!(
        o,
        "<table id=\"events\" data-count=\"{}\"><thead><tr><th>From</th><th>To</th>\
         <th class=\"num\">Peak</th></tr></thead><tbody>",
        r.true_peak_events.len()
    );
    for e in &r.true_peak_events {
        let _ = writeln!(
            o,
            "<tr data-peak=\"{}\"><td>{}</td><td>{}</td><td class=\"num\">{:.2} dBTP</td></tr>",
            e.peak_dbtp,
            crate::time::clock(e.start_s, 1, false),
            crate::time::clock(e.end_s, 1, false),
            e.peak_dbtp
        );
    }
    o.push_str("</tbody></table>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }

    #[test]
    fn long_histories_are_reduced_to_their_highs() {
        let s: Vec<Option<f64>> = (0..36_000).map(|i| Some(-30.0 + (i % 7) as f64)).collect();
        let r = reduced(&s);
        assert!(r.len() <= POINTS);
        assert!(r.iter().all(|(_, v)| *v == Some(-24.0)));
        let with_gap = [Some(-20.0), None, Some(-21.0)];
        assert_eq!(reduced(&with_gap)[1].1, None);
    }
}
