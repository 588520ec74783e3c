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
        (Some(b), Some(sluice_core::decode::SampleType::Float)) => format!(", {b}-bit float"),
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
            writeln!(
                out,
                "  length      {} ({f} frames, {src})",
                sluice_core::time::clock(d, 3, false)
            )?;
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
    tags(out, &i.tags, s.sample_rate)
}

/// The tags of `info`: the fields found, then the BWF `bext` chunk's.
fn tags(out: &mut impl Write, t: &sluice_core::Tags, sample_rate: u32) -> io::Result<()> {
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
    // A heading naming where the tags came from; none (an empty line) when there are no tags
    // and no source of them, as with a file whose only metadata is its `bext` chunk.
    if !fields.is_empty() || !t.sources.is_empty() {
        writeln!(out, "  tags        {}", t.sources.join(", "))?;
        for (k, v) in fields {
            writeln!(out, "    {k:<13}{}", clean(&v))?;
        }
    }
    if let Some(b) = &t.bext {
        bext(out, b, sample_rate)?;
    }
    Ok(())
}

/// A BWF `bext` chunk, its time reference read at `sample_rate`.
fn bext(out: &mut impl Write, b: &sluice_core::riff::Bext, sample_rate: u32) -> io::Result<()> {
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
    let tr = if sample_rate > 0 {
        format!(
            "{} samples ({})",
            b.time_reference,
            sluice_core::time::clock(b.time_reference as f64 / f64::from(sample_rate), 3, false)
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
    Ok(())
}

pub fn formats_table(out: &mut impl Write) -> io::Result<()> {
    writeln!(
        out,
        "{:<11} {:<9} {:<7} {:<7} {:>9}  {:<22} extensions",
        "id", "kind", "decode", "encode", "max rate", "bit depths"
    )?;
    for listed in sluice_core::encode::formats() {
        let f = listed.info;
        let mut depths: Vec<String> = f.bit_depths.iter().map(|b| b.to_string()).collect();
        depths.extend(f.float_bit_depths.iter().map(|b| format!("{b}f")));
        let yn = |b: bool| if b { "yes" } else { "no" };
        writeln!(
            out,
            "{:<11} {:<9} {:<7} {:<7} {:>9}  {:<22} {}",
            f.id,
            if f.lossless { "lossless" } else { "lossy" },
            yn(f.decode),
            yn(listed.encode),
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

fn opt(v: Option<f64>, decimals: usize, unit: &str) -> String {
    match v {
        Some(x) => format!("{x:.decimals$} {unit}"),
        None => "—".to_string(),
    }
}

fn signed(v: Option<f64>, unit: &str) -> String {
    match v {
        Some(x) => format!("{x:+.1} {unit}"),
        None => "—".to_string(),
    }
}

/// The readable summary of one analysis.
pub fn analysis(out: &mut impl Write, r: &sluice_core::analysis::AnalysisReport) -> io::Result<()> {
    let s = &r.stream;
    writeln!(
        out,
        "{}\n  {} · {} Hz · {} · {}{}",
        clean(&r.path.display().to_string()),
        s.format_name,
        s.sample_rate,
        s.layout_name
            .clone()
            .unwrap_or_else(|| format!("{} ch", s.channels)),
        s.duration_seconds
            .map_or_else(|| "?".into(), |d| sluice_core::time::clock(d, 3, false)),
        if s.truncated { " · TRUNCATED" } else { "" }
    )?;
    for w in &s.warnings {
        writeln!(out, "  warning: {}", clean(w))?;
    }
    if let Some(l) = &r.loudness {
        let m = &l.summary;
        writeln!(
            out,
            "  Loudness   integrated {}   range {}   max momentary {}   max short-term {}",
            opt(m.integrated_lufs, 1, "LUFS"),
            opt(m.loudness_range_lu, 1, "LU"),
            opt(m.max_momentary_lufs, 1, "LUFS"),
            opt(m.max_short_term_lufs, 1, "LUFS"),
        )?;
        writeln!(
            out,
            "             true peak {}   sample peak {}   PLR {}",
            opt(l.true_peak_dbtp, 1, "dBTP"),
            opt(l.sample_peak_dbfs, 1, "dBFS"),
            opt(l.plr_lu, 1, "LU"),
        )?;
    }
    if let Some(l) = &r.levels {
        levels(out, l)?;
    }
    if let Some(sp) = &r.spectrum {
        writeln!(
            out,
            "  Spectrum   centroid {}   bandwidth {}   roll-off {}   flatness {}",
            opt(sp.centroid_hz, 0, "Hz"),
            opt(sp.bandwidth_hz, 0, "Hz"),
            opt(sp.rolloff_hz, 0, "Hz"),
            sp.flatness.map_or("—".into(), |f| format!("{f:.3}")),
        )?;
        let bands = sp
            .bands
            .iter()
            .map(|b| {
                format!(
                    "{} {}",
                    b.name.replace('_', "-"),
                    opt(b.share_percent, 1, "%")
                )
            })
            .collect::<Vec<_>>()
            .join("   ");
        writeln!(out, "             {bands}")?;
    }
    match &r.stereo {
        Some(Some(st)) => writeln!(
            out,
            "  Stereo     correlation {} (lowest {})   width {}   balance {}",
            st.correlation.map_or("—".into(), |c| format!("{c:+.2}")),
            st.correlation_min
                .map_or("—".into(), |c| format!("{c:+.2}")),
            st.width.map_or("—".into(), |w| format!("{w:.2}")),
            signed(st.balance_db, "dB (right)"),
        )?,
        Some(None) => writeln!(out, "  Stereo     — (no left/right pair)")?,
        None => {}
    }
    if let Some(t) = &r.tempo {
        match (t.bpm, t.confidence) {
            (Some(b), Some(c)) => match (t.alternative_bpm, t.alternative_confidence) {
                (Some(a), Some(ac)) => writeln!(
                    out,
                    "  Tempo      {b:.1} BPM (confidence {c:.2}; or {a:.1} BPM, {ac:.2})"
                )?,
                _ => writeln!(out, "  Tempo      {b:.1} BPM (confidence {c:.2})")?,
            },
            _ => writeln!(out, "  Tempo      — (no clear beat)")?,
        }
    }
    if let Some(k) = &r.key {
        match (&k.key, k.confidence) {
            (Some(name), Some(c)) => writeln!(out, "  Key        {name} (confidence {c:.2})")?,
            _ => writeln!(out, "  Key        — (no clear key)")?,
        }
    }
    if let Some(w) = &r.waveform {
        let each = if w.bucket_seconds < 0.1 {
            format!("{:.2} ms", w.bucket_seconds * 1000.0)
        } else {
            format!("{:.2} s", w.bucket_seconds)
        };
        writeln!(out, "  Waveform   {} buckets of {each}", w.buckets)?;
    }
    if let Some(ts) = &r.targets {
        targets(out, ts)?;
    }
    Ok(())
}

/// The levels section of an analysis.
fn levels(out: &mut impl Write, l: &sluice_core::analysis::levels::Levels) -> io::Result<()> {
    writeln!(
        out,
        "  Levels     peak {}   RMS {}   crest {}   DR {}",
        opt(l.peak_dbfs, 1, "dBFS"),
        opt(l.rms_dbfs, 1, "dBFS"),
        opt(l.crest_factor_db, 1, "dB"),
        opt(l.dynamic_range_db, 1, "dB"),
    )?;
    let dc = l
        .dc_offset_per_channel
        .iter()
        .map(|d| format!("{d:+.4}"))
        .collect::<Vec<_>>()
        .join("/");
    writeln!(
        out,
        "             DC {dc}   clipped {} samples in {} runs   zero crossings {}",
        l.clipped_samples,
        l.clip_events,
        opt(l.zero_crossing_rate_hz, 0, "/s"),
    )?;
    writeln!(
        out,
        "             silence {:.2} s at the start, {:.2} s at the end (below {} dBFS)",
        l.leading_silence_seconds, l.trailing_silence_seconds, l.silence_threshold_dbfs
    )?;
    Ok(())
}

/// The delivery targets of an analysis, one line each.
fn targets(
    out: &mut impl Write,
    ts: &[sluice_core::analysis::targets::TargetCheck],
) -> io::Result<()> {
    for (i, t) in ts.iter().enumerate() {
        let head = if i == 0 {
            "  Targets    "
        } else {
            "             "
        };
        let verdict = match (t.gain_db, t.exceeds_ceiling) {
            (Some(g), Some(true)) => format!(
                "gain {g:+.1} dB → true peak {}: over the ceiling, needs limiting",
                opt(t.true_peak_after_gain_dbtp, 1, "dBTP")
            ),
            (Some(g), _) => format!(
                "gain {g:+.1} dB → true peak {}",
                opt(t.true_peak_after_gain_dbtp, 1, "dBTP")
            ),
            (None, _) => "— (no integrated loudness)".into(),
        };
        writeln!(
            out,
            "{head}{:<22} {:>5.1} LUFS / {:>4.1} dBTP: {verdict}",
            t.target.name, t.target.integrated_lufs, t.target.true_peak_dbtp
        )?;
    }
    Ok(())
}

/// Write the PNG pictures of one analysis into `dir`: `NAME.waveform.png`,
/// `NAME.loudness.png` and `NAME.spectrum.png`, NAME being the file's name (extension kept,
/// so `a.wav` and `a.flac` do not collide). Only the pictures whose sections were analysed.
pub fn plots(
    dir: &std::path::Path,
    r: &sluice_core::analysis::AnalysisReport,
) -> anyhow::Result<Vec<std::path::PathBuf>> {
    use crate::plot;
    let name = r
        .path
        .file_name()
        .map_or_else(|| "audio".to_string(), |n| n.to_string_lossy().into_owned());
    let title = clean(&name);
    let mut written = Vec::new();
    if let Some(w) = &r.waveform {
        let labels: Vec<String> = (0..w.channels.len())
            .map(|c| {
                r.stream
                    .channel_layout
                    .get(c)
                    .cloned()
                    .unwrap_or_else(|| format!("CH{}", c + 1))
            })
            .collect();
        let path = dir.join(format!("{name}.waveform.png"));
        plot::write_waveform(
            &path,
            &plot::WaveformPlot {
                title: &title,
                duration_seconds: r.stream.duration_seconds.unwrap_or(0.0),
                channels: w
                    .channels
                    .iter()
                    .zip(&labels)
                    .map(|(c, l)| (l.as_str(), c.min.as_slice(), c.max.as_slice()))
                    .collect(),
            },
        )?;
        written.push(path);
    }
    if let Some(l) = &r.loudness
        && let Some(h) = &l.summary.history
    {
        let target = r.targets.as_ref().and_then(|t| t.first());
        let path = dir.join(format!("{name}.loudness.png"));
        plot::write_loudness(
            &path,
            &plot::LoudnessPlot {
                title: &title,
                step_seconds: h.step_seconds,
                momentary: &h.momentary_lufs,
                short_term: &h.short_term_lufs,
                integrated: l.summary.integrated_lufs,
                target: target.map(|t| (t.target.name.as_str(), t.target.integrated_lufs)),
            },
        )?;
        written.push(path);
    }
    if let Some(sp) = &r.spectrum {
        let freqs: Vec<f64> = sp.ltas.iter().map(|p| p.hz).collect();
        let db: Vec<f64> = sp.ltas.iter().map(|p| p.db).collect();
        let names: Vec<String> = sp.bands.iter().map(|b| b.name.replace('_', "-")).collect();
        let bands: Vec<(&str, f64, f64, f64)> = sp
            .bands
            .iter()
            .zip(&names)
            .map(|(b, n)| {
                (
                    n.as_str(),
                    b.low_hz,
                    b.high_hz,
                    b.share_percent.unwrap_or(0.0),
                )
            })
            .collect();
        let path = dir.join(format!("{name}.spectrum.png"));
        plot::write_spectrum(
            &path,
            &plot::SpectrumPlot {
                title: &title,
                freqs_hz: &freqs,
                db: &db,
                bands: &bands,
            },
        )?;
        written.push(path);
    }
    Ok(written)
}
