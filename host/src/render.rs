//! The readable (non-JSON) output of the CLI.

use sluice_core::FileInfo;
use std::io::{self, Write};

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn clock(seconds: f64) -> String {
    let ms_total = (seconds * 1000.0).round() as u64;
    let (h, rem) = (ms_total / 3_600_000, ms_total % 3_600_000);
    let (m, rem) = (rem / 60_000, rem % 60_000);
    let (s, ms) = (rem / 1000, rem % 1000);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}.{ms:03}")
    } else {
        format!("{m}:{s:02}.{ms:03}")
    }
}

/// Replace control characters so a hostile tag cannot drive the terminal.
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
        .collect()
}

pub fn info(out: &mut impl Write, i: &FileInfo) -> io::Result<()> {
    let s = &i.stream;
    writeln!(out, "{}", i.path.display())?;
    writeln!(out, "  format      {} [{}]", s.format_name, s.format)?;
    let depth = match (s.bit_depth, s.sample_type) {
        (Some(b), Some("float")) => format!(", {b}-bit float"),
        (Some(b), _) => format!(", {b}-bit"),
        _ => String::new(),
    };
    writeln!(
        out,
        "  codec       {} ({})",
        s.codec,
        if s.lossless { "lossless" } else { "lossy" }
    )?;
    let layout = match &s.layout_name {
        Some(n) => format!("{n}: {}", s.channel_layout.join(" ")),
        None => s.channel_layout.join(" "),
    };
    writeln!(
        out,
        "  audio       {} Hz, {} ch ({layout}){depth}",
        s.sample_rate, s.channels
    )?;
    match (s.frames, s.duration_seconds) {
        (Some(f), Some(d)) => {
            let src = match s.frames_source {
                Some(sluice_core::FrameCountSource::Decoded) => "decoded",
                _ => "from header",
            };
            writeln!(out, "  length      {} ({f} frames, {src})", clock(d))?;
        }
        _ => writeln!(
            out,
            "  length      unknown from the header (use --decode to count)"
        )?,
    }
    if s.encoder_delay.is_some() || s.encoder_padding.is_some() {
        writeln!(
            out,
            "  gapless     delay {} / padding {} frames (trimmed)",
            s.encoder_delay.unwrap_or(0),
            s.encoder_padding.unwrap_or(0)
        )?;
    }
    let rate = s
        .bitrate
        .map(|b| format!(", {} kbit/s", (b as f64 / 1000.0).round()))
        .unwrap_or_default();
    writeln!(out, "  size        {}{rate}", human_bytes(s.file_size))?;
    for w in &s.warnings {
        writeln!(out, "  warning     {}", clean(w))?;
    }
    let t = &i.tags;
    let mut fields: Vec<(&str, String)> = Vec::new();
    let mut add = |k: &'static str, v: Option<String>| {
        if let Some(v) = v {
            fields.push((k, v));
        }
    };
    add("title", t.title.clone());
    add("artist", t.artist.clone());
    add("album", t.album.clone());
    add("album artist", t.album_artist.clone());
    add("genre", t.genre.clone());
    add("date", t.date.clone());
    add(
        "track",
        t.track.map(|n| match t.track_total {
            Some(tt) => format!("{n}/{tt}"),
            None => n.to_string(),
        }),
    );
    add(
        "disc",
        t.disc.map(|n| match t.disc_total {
            Some(tt) => format!("{n}/{tt}"),
            None => n.to_string(),
        }),
    );
    add("isrc", t.isrc.clone());
    add("bpm", t.bpm.map(|b| format!("{b}")));
    add("key", t.initial_key.clone());
    add("comment", t.comment.clone());
    add("copyright", t.copyright.clone());
    add("encoder", t.encoder.clone());
    add("pictures", (t.pictures > 0).then(|| t.pictures.to_string()));
    if !fields.is_empty() || t.bext.is_some() {
        writeln!(out, "  tags        {}", t.sources.join(", "))?;
        for (k, v) in fields {
            writeln!(out, "    {k:<13}{}", clean(&v))?;
        }
    }
    if let Some(b) = &t.bext {
        writeln!(out, "  bext        version {}", b.version)?;
        let mut line = |k: &str, v: &str| -> io::Result<()> {
            if !v.is_empty() {
                writeln!(out, "    {k:<13}{}", clean(v))?;
            }
            Ok(())
        };
        line("description", &b.description)?;
        line("originator", &b.originator)?;
        line("reference", &b.originator_reference)?;
        line(
            "originated",
            format!("{} {}", b.origination_date, b.origination_time).trim(),
        )?;
        let tr = if s.sample_rate > 0 {
            format!(
                "{} samples ({})",
                b.time_reference,
                clock(b.time_reference as f64 / f64::from(s.sample_rate))
            )
        } else {
            b.time_reference.to_string()
        };
        line("time ref", &tr)?;
        if let Some(u) = &b.umid {
            line("umid", u)?;
        }
        let lu = |v: Option<f32>, unit: &str| v.map(|x| format!("{x:.2} {unit}"));
        for (k, v) in [
            ("loudness", lu(b.loudness_value, "LUFS")),
            ("lra", lu(b.loudness_range, "LU")),
            ("true peak", lu(b.max_true_peak_level, "dBTP")),
            ("max moment.", lu(b.max_momentary_loudness, "LUFS")),
            ("max short-t.", lu(b.max_short_term_loudness, "LUFS")),
        ] {
            if let Some(v) = v {
                line(k, &v)?;
            }
        }
        for (n, h) in b.coding_history.lines().enumerate() {
            line(if n == 0 { "history" } else { "" }, h)?;
        }
    }
    Ok(())
}

pub fn formats_table(out: &mut impl Write) -> io::Result<()> {
    writeln!(
        out,
        "{:<11} {:<9} {:<7} {:<7} {:>9}  {:<22} extensions",
        "id", "kind", "decode", "encode", "max rate", "bit depths"
    )?;
    for f in sluice_core::formats::FORMATS {
        let mut depths: Vec<String> = f.bit_depths.iter().map(|b| b.to_string()).collect();
        depths.extend(f.float_bit_depths.iter().map(|b| format!("{b}f")));
        let yn = |b: bool| if b { "yes" } else { "no" };
        writeln!(
            out,
            "{:<11} {:<9} {:<7} {:<7} {:>9}  {:<22} {}",
            f.id,
            if f.lossless { "lossless" } else { "lossy" },
            yn(f.decode),
            yn(f.encode),
            if f.max_sample_rate > 0 {
                f.max_sample_rate.to_string()
            } else {
                "-".to_string()
            },
            if depths.is_empty() {
                "-".to_string()
            } else {
                depths.join(" ")
            },
            f.extensions.join(" ")
        )?;
        if !f.note.is_empty() {
            writeln!(out, "{:<11} note: {}", "", f.note)?;
        }
    }
    Ok(())
}
