//! `sluice export`: render files to other formats with normalization, resampling, dither,
//! fades, trimming and tags; several files in parallel with a progress bar over the batch. The
//! options become the engine's [`ExportOrder`]; the work is `sluice_host::export`'s.

use anyhow::{Context, Result, anyhow, bail};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use sluice_core::analysis::Target;
use sluice_core::export::{ExportError, ExportReport};
use sluice_core::formats::{Opt, OptionNames, Request};
use sluice_core::render::dither::DitherMode;
use sluice_core::render::normalize::{GainRule, NormalizeTarget, gain_limit};
use sluice_core::render::resample::ResampleQuality;
use sluice_core::render::stages::{ChannelMapping, FadeCurve};
use sluice_host::export::{
    AlbumMode, Destination, ExportOrder, GainPlan, Job, Trim, codec_for, plan, plan_gains,
};
use std::path::PathBuf;

/// `--format`'s help: the formats this build writes, from the registry.
fn format_help() -> String {
    format!(
        "{} (`sluice formats` lists every format Sluice knows and which ones this build writes)",
        sluice_core::encode::codec_names()
    )
}

/// An option's help: `what`, then the values each registered codec takes for `opt` (said once
/// where codecs share them, as the three AAC profiles do).
fn option_help(what: &str, opt: Opt) -> String {
    let mut says: Vec<&str> = Vec::new();
    for o in sluice_core::encode::codecs()
        .flat_map(|c| c.about().options.iter())
        .filter(|o| o.opt == opt)
    {
        if !says.contains(&o.says) {
            says.push(o.says);
        }
    }
    if says.is_empty() {
        format!("{what} (no format this build writes takes it)")
    } else {
        format!("{what}. {}", says.join("; "))
    }
}

/// The command line's export options, as given.
#[derive(clap::Args, Debug, Clone)]
pub struct ExportArgs {
    /// Files to export.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// The output file (one input only). Its extension gives the format unless --format.
    #[arg(short, long, conflicts_with = "out_dir")]
    pub output: Option<PathBuf>,
    /// Write outputs into this folder, named after the inputs.
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
    // The output format; its help lists the registry's codecs (`format_help`).
    #[arg(long, help = format_help())]
    pub format: Option<String>,
    /// Resample to this rate (Hz).
    #[arg(long, value_name = "HZ")]
    pub sample_rate: Option<u32>,
    /// The resampler's filter: fft (the default: flat to 21.7 kHz at 44.1 kHz) or sinc (flat
    /// to 20.5 kHz, rings for half as long, 9-12x the cost). docs/RENDERING.md has both.
    #[arg(long, value_name = "FILTER", value_parser = ["fft", "sinc"], default_value = "fft")]
    pub resampler: String,
    /// The name the FFT filter had when the sinc one was the default (now a no-op).
    #[arg(long, hide = true)]
    pub fast_resampling: bool,
    /// 8, 16, 24 or 32 (integer), or 32f (float, WAV only). Default: the source's depth where
    /// the format has it, else 24.
    #[arg(long, value_name = "BITS")]
    pub bit_depth: Option<String>,
    /// mono, stereo, or the source channels to keep, 1-based and comma-separated (`2,1`).
    #[arg(long)]
    pub channels: Option<String>,
    // A codec's quality scale; its help gives each codec's range from the registry.
    #[arg(
        long,
        allow_negative_numbers = true,
        help = option_help("A codec's quality scale", Opt::Quality)
    )]
    pub quality: Option<f32>,
    // A constant bitrate; its help gives each codec's bitrates from the registry.
    #[arg(
        long,
        value_name = "KBPS",
        conflicts_with = "quality",
        help = option_help("Constant bitrate in kbit/s", Opt::Bitrate)
    )]
    pub bitrate: Option<u32>,
    /// FLAC compression level 0-8 (default 5).
    #[arg(long)]
    pub compression_level: Option<u8>,
    /// Dither when the bit depth drops or processed audio is quantized: none, tpdf, shaped.
    #[arg(long, default_value = "tpdf")]
    pub dither: String,
    /// Normalize the loudest sample to this level (dBFS).
    #[arg(long, allow_negative_numbers = true, conflicts_with_all = ["normalize_lufs", "preset"])]
    pub normalize_peak: Option<f64>,
    /// Normalize the integrated loudness to this level (LUFS).
    #[arg(long, allow_negative_numbers = true, conflicts_with = "preset")]
    pub normalize_lufs: Option<f64>,
    /// True-peak ceiling for loudness normalization (dBTP).
    #[arg(long, allow_negative_numbers = true, default_value_t = -1.0)]
    pub true_peak: f64,
    /// Lower the gain instead of limiting when the loudness target would pass the ceiling.
    #[arg(long)]
    pub no_limiter: bool,
    /// One gain for all the inputs, so that their levels stay as they were: `album` brings
    /// them, measured together, to the loudness target; `album-loudest` brings the loudest.
    #[arg(long, value_enum)]
    pub album: Option<AlbumArg>,
    /// Never raise the level (loudness normalization only lowers).
    #[arg(long)]
    pub lower_only: bool,
    /// The largest gain loudness normalization may apply (dB).
    #[arg(long)]
    pub max_gain_db: Option<f64>,
    /// Measure the inputs and print the gain each would get (and whether the limiter would
    /// work on it); write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Loudness preset: spotify, apple, podcast, ebu-r128, atsc (or NAME=LUFS[,DBTP]).
    #[arg(long)]
    pub preset: Option<String>,
    /// Trim leading and trailing silence.
    #[arg(long)]
    pub trim_silence: bool,
    /// Level under which audio counts as silence for --trim-silence (dBFS).
    #[arg(long, allow_negative_numbers = true, default_value_t = -60.0)]
    pub silence_threshold: f64,
    /// Silence kept at each trimmed end (seconds).
    #[arg(long, default_value_t = 0.05)]
    pub silence_pad: f64,
    /// Fade in over this many seconds.
    #[arg(long, default_value_t = 0.0)]
    pub fade_in: f64,
    /// Fade out over this many seconds.
    #[arg(long, default_value_t = 0.0)]
    pub fade_out: f64,
    /// Fade shape: linear, equal-power, logarithmic.
    #[arg(long, default_value = "equal-power")]
    pub fade_curve: String,
    /// Time stretch: play this many times as fast at the same pitch, 0.25 to 4 (1.25: in 80 %
    /// of the time; 0.5: twice as long). After the effects, before fades and normalization.
    #[arg(long)]
    pub speed: Option<f64>,
    /// Run a built-in effect (after resampling, before fades and normalization); repeatable,
    /// in order. Parameters as in a pipeline: `--effect denoise:reduction_db=15`,
    /// `--effect dehum:mains=50,harmonics=10` (`sluice effects list`, `sluice effects info`).
    #[arg(long = "effect", value_name = "NAME[:KEY=VALUE,...]")]
    pub effects: Vec<String>,
    /// Start at this time (seconds).
    #[arg(long)]
    pub start: Option<f64>,
    /// End at this time (seconds).
    #[arg(long)]
    pub end: Option<f64>,
    /// Set a tag (title, artist, album, album_artist, genre, date, track, track_total, disc,
    /// disc_total, isrc, bpm, key, comment, copyright, composer, publisher, encoder);
    /// repeatable. An empty value removes the field.
    #[arg(long = "tag", value_name = "KEY=VALUE")]
    pub tags: Vec<String>,
    /// Do not carry the source's tags over.
    #[arg(long)]
    pub no_source_tags: bool,
    /// Do not write ReplayGain tags.
    #[arg(long)]
    pub no_replaygain: bool,
    /// Do not decode lossy outputs to measure them and encode them again under a lower
    /// limiter ceiling while the codec takes their true peak over the ceiling.
    #[arg(long)]
    pub no_true_peak_check: bool,
    /// Do not write a Broadcast Wave `bext` chunk in WAV outputs.
    #[arg(long)]
    pub no_bext: bool,
    /// Replace existing output files.
    #[arg(long)]
    pub overwrite: bool,
    /// Print JSON reports instead of the summary.
    #[arg(long)]
    pub json: bool,
    /// Files exported at once (default: the number of cores).
    #[arg(long, short)]
    pub jobs: Option<usize>,
}

impl ExportArgs {
    /// The export these options ask for, every option read (the inputs are checked when it
    /// runs).
    pub fn order(&self) -> Result<ExportOrder> {
        let a = self;
        if a.output.is_some() && a.inputs.len() > 1 {
            bail!("-o names one output file: with several inputs use --out-dir");
        }
        let destination = match (&a.output, &a.out_dir) {
            (Some(o), _) => Destination::File(o.clone()),
            (None, Some(d)) => Destination::Dir(d.clone()),
            (None, None) => bail!("say where the output goes: -o FILE or --out-dir DIR"),
        };
        let codec = match (&a.format, &a.output) {
            (None, None) => bail!(
                "--out-dir needs --format ({})",
                sluice_core::encode::codec_names()
            ),
            (f, o) => codec_for(f.as_deref(), o.as_deref(), "--format").map_err(|e| anyhow!(e))?,
        };
        let request = Request {
            codec,
            bit_depth: a.bit_depth.clone(),
            quality: a.quality,
            bitrate_kbps: a.bitrate,
            compression_level: a.compression_level,
        };
        let dither = DitherMode::parse(&a.dither)
            .ok_or_else(|| anyhow!("--dither {}: choose none, tpdf or shaped", a.dither))?;
        let fade_curve = FadeCurve::parse(&a.fade_curve).ok_or_else(|| {
            anyhow!(
                "--fade-curve {}: choose linear, equal-power or logarithmic",
                a.fade_curve
            )
        })?;
        if let Some(s) = a.speed
            && !sluice_core::render::stretch::SPEEDS.contains(&s)
        {
            bail!("--speed {s}: from 0.25 (four times as long) to 4 (a quarter of the time)");
        }
        let channels = a
            .channels
            .as_deref()
            .map(|c| {
                ChannelMapping::parse(c)
                    .ok_or_else(|| anyhow!("--channels {c}: {}", ChannelMapping::SPELLING))
            })
            .transpose()?;
        let rule = GainRule {
            max_gain_db: gain_limit(a.lower_only, a.max_gain_db),
            ..GainRule::default()
        };
        if let Some(m) = a.max_gain_db
            && !(0.0..=60.0).contains(&m)
        {
            bail!("--max-gain-db {m}: from 0 to 60 dB");
        }
        let loudness = a.normalize_lufs.is_some() || a.preset.is_some();
        if !loudness && (a.album.is_some() || a.lower_only || a.max_gain_db.is_some() || a.dry_run)
        {
            bail!(
                "--album, --lower-only, --max-gain-db and --dry-run go with loudness normalization: add --normalize-lufs or --preset"
            );
        }
        let normalize = if let Some(p) = a.normalize_peak {
            Some(NormalizeTarget::Peak { dbfs: p })
        } else if let Some(l) = a.normalize_lufs {
            Some(NormalizeTarget::Loudness {
                lufs: l,
                true_peak_dbtp: a.true_peak,
                limiter: !a.no_limiter,
                rule,
            })
        } else if let Some(p) = &a.preset {
            let t = Target::parse(p).map_err(|e| anyhow!("--preset {e}"))?;
            Some(NormalizeTarget::Loudness {
                lufs: t.integrated_lufs,
                true_peak_dbtp: t.true_peak_dbtp,
                limiter: !a.no_limiter,
                rule,
            })
        } else {
            None
        };
        let effects = a
            .effects
            .iter()
            .map(|e| effect_step(e))
            .collect::<Result<Vec<_>>>()?;
        let mut tags = Vec::new();
        for t in &a.tags {
            let (k, v) = t
                .split_once('=')
                .ok_or_else(|| anyhow!("--tag {t}: write KEY=VALUE"))?;
            tags.push((k.trim().to_ascii_lowercase(), v.to_string()));
        }
        Ok(ExportOrder {
            sample_rate: a.sample_rate,
            resampler: if a.resampler == "sinc" && !a.fast_resampling {
                ResampleQuality::Sinc
            } else {
                ResampleQuality::Fft
            },
            channels,
            dither,
            normalize,
            region: (a.start.is_some() || a.end.is_some()).then(|| (a.start.unwrap_or(0.0), a.end)),
            trim: a.trim_silence.then_some(Trim {
                threshold_dbfs: a.silence_threshold,
                pad_seconds: a.silence_pad,
            }),
            fade_in: a.fade_in,
            fade_out: a.fade_out,
            fade_curve,
            speed: a.speed,
            tags,
            source_tags: !a.no_source_tags,
            replaygain: !a.no_replaygain,
            true_peak_check: !a.no_true_peak_check,
            bext: !a.no_bext,
            overwrite: a.overwrite,
            effects,
            ..ExportOrder::new(a.inputs.clone(), destination, request, OptionNames::CLI)
        })
    }
}

/// `--effect NAME[:KEY=VALUE,...]` as an effect step (values: numbers, true/false, or a
/// choice's name; `KEY=@FILE` gives the effect's data slot KEY the audio file FILE, an impulse
/// response for `convolve`).
fn effect_step(arg: &str) -> Result<sluice_core::render::steps::EffectStep> {
    use sluice_core::render::steps::{EffectStep, ParamValue};
    let (name, params) = arg.split_once(':').unwrap_or((arg, ""));
    let name = name.trim();
    if name.is_empty() {
        bail!("--effect {arg}: name the effect (NAME or NAME:KEY=VALUE,...)");
    }
    let mut out = Vec::new();
    let mut data = Vec::new();
    for kv in params.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| anyhow!("--effect {arg}: write each parameter as KEY=VALUE"))?;
        let (k, v) = (k.trim(), v.trim());
        if out.iter().any(|(o, _): &(String, _)| o == k) || data.iter().any(|(o, _)| o == k) {
            bail!("--effect {arg}: {k} is given twice");
        }
        if let Some(file) = v.strip_prefix('@') {
            let path = std::path::Path::new(file);
            if !path.is_file() {
                bail!("--effect {arg}: {k}: {file} is not a file");
            }
            let abs = std::path::absolute(path)
                .with_context(|| format!("--effect {arg}: {k}: {file}"))?;
            data.push((k.to_string(), abs.to_string_lossy().into_owned()));
            continue;
        }
        let value = match v {
            "true" => ParamValue::Bool(true),
            "false" => ParamValue::Bool(false),
            _ => v
                .parse::<f64>()
                .ok()
                .filter(|n| n.is_finite())
                .map_or_else(|| ParamValue::Text(v.to_string()), ParamValue::Number),
        };
        out.push((k.to_string(), value));
    }
    Ok(EffectStep {
        name: name.to_string(),
        params: out,
        time_budget_ms: None,
        memory_mb: None,
        data,
    })
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum AlbumArg {
    Album,
    AlbumLoudest,
}

/// `--dry-run`: each input's loudness and gain.
fn print_gains(g: &GainPlan, json: bool) -> Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, g)?;
        writeln!(out)?;
        return Ok(());
    }
    if let Some(l) = g.album_lufs {
        writeln!(
            out,
            "album loudness {l:.2} LUFS ({}), target {:.1} LUFS",
            if g.album == Some(AlbumMode::AlbumLoudest) {
                "the loudest file"
            } else {
                "all files together"
            },
            g.target_lufs
        )?;
    }
    for f in &g.files {
        let lufs = f
            .integrated_lufs
            .map_or("silent".to_string(), |l| format!("{l:.2} LUFS"));
        match f.gain_db {
            None => writeln!(out, "{}: {lufs}: left as it is", f.path.display())?,
            Some(gain) => writeln!(
                out,
                "{}: {lufs}, gain {gain:+.2} dB{}{}",
                f.path.display(),
                if f.capped {
                    " (held at the largest gain)"
                } else {
                    ""
                },
                if f.needs_limiter {
                    ", limited (the gain passes the true-peak ceiling)"
                } else {
                    ", linear"
                }
            )?,
        }
    }
    Ok(())
}

/// Run the export; returns the process exit code (0 all done, 1 some failed).
pub fn run(a: &ExportArgs) -> Result<std::process::ExitCode> {
    let mut order = a.order()?;
    let threads = a
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, std::num::NonZero::get));
    if a.album.is_some() || a.dry_run {
        let album = a.album.map(|m| match m {
            AlbumArg::Album => AlbumMode::Album,
            AlbumArg::AlbumLoudest => AlbumMode::AlbumLoudest,
        });
        let gains = plan_gains(&mut order, album, threads).map_err(|e| anyhow!(e))?;
        if a.dry_run {
            print_gains(&gains, a.json)?;
            return Ok(std::process::ExitCode::SUCCESS);
        }
    }
    let jobs = plan(&order).map_err(|e| anyhow!(e))?;
    if let Destination::Dir(dir) = &order.destination {
        std::fs::create_dir_all(dir)
            .map_err(|e| anyhow!("cannot create {}: {e}", dir.display()))?;
    }
    // What an export killed while it wrote here left behind (its hidden temporaries, whose
    // process is gone) goes first.
    let folder = match &order.destination {
        Destination::Dir(dir) => dir.as_path(),
        Destination::File(f) => f
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new(".")),
    };
    sluice_core::io::sweep_stale(folder);
    let show = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let multi = MultiProgress::with_draw_target(if show {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    });
    let batch = multi.add(ProgressBar::new(jobs.len() as u64));
    batch.set_style(
        ProgressStyle::with_template("{prefix:>8} [{bar:30}] {pos}/{len} files, {elapsed}")
            .expect("template")
            .progress_chars("=> "),
    );
    batch.set_prefix("export");
    let results = sluice_host::parallel::map(&jobs, threads, |job| {
        let r = export_one(job, &multi);
        batch.inc(1);
        r
    });
    batch.finish_and_clear();
    let failed = results.iter().filter(|r| r.is_err()).count();
    // An output over its true-peak ceiling as decoded is written (and said in its warnings),
    // but the export does not count as done.
    let missed = results
        .iter()
        .flatten()
        .flat_map(|r| &r.outputs)
        .filter(|o| o.true_peak_check.as_ref().is_some_and(|c| !c.met))
        .count();
    let mut out = std::io::stdout().lock();
    use std::io::Write;
    if a.json {
        let v: Vec<serde_json::Value> = results
            .iter()
            .zip(&jobs)
            .map(|(r, j)| match r {
                Ok(rep) => {
                    let mut v = serde_json::to_value(rep).unwrap_or_default();
                    if let Some(w) = v.get_mut("warnings").and_then(|w| w.as_array_mut()) {
                        w.splice(
                            0..0,
                            j.notes().iter().map(|n| serde_json::Value::from(n.clone())),
                        );
                    }
                    v
                }
                Err(e) => serde_json::json!({"input": j.input(), "error": e.to_string()}),
            })
            .collect();
        serde_json::to_writer_pretty(&mut out, &v)?;
        writeln!(out)?;
    } else {
        for (r, j) in results.iter().zip(&jobs) {
            match r {
                Ok(rep) => summary(&mut out, rep, j.notes())?,
                Err(e) => {
                    out.flush()?;
                    eprintln!("error: {e}");
                }
            }
        }
        if failed > 0 && results.len() > 1 {
            eprintln!("{failed} of {} files failed", results.len());
        }
    }
    if missed > 0 {
        eprintln!("{missed} output(s) over the true-peak ceiling as decoded (see the warnings)");
    }
    Ok(if failed > 0 || missed > 0 {
        std::process::ExitCode::FAILURE
    } else {
        std::process::ExitCode::SUCCESS
    })
}

fn export_one(job: &Job, multi: &MultiProgress) -> Result<ExportReport, ExportError> {
    let bar = multi.add(ProgressBar::new(1000));
    bar.set_style(
        ProgressStyle::with_template("{prefix:>8} [{bar:30}] {percent:>3}% {msg}")
            .expect("template")
            .progress_chars("=> "),
    );
    bar.set_prefix("file");
    let name = job
        .input()
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut last = 0u64;
    let r = job.run(
        &mut |p| {
            let Some(total) = p.total.filter(|t| *t > 0) else {
                return;
            };
            let permille = (p.frames.min(total) * 1000 / total).min(1000);
            if permille != last || p.frames == 0 {
                last = permille;
                bar.set_position(permille);
                bar.set_message(format!(
                    "{name} ({})",
                    if p.final_pass {
                        "render".to_string()
                    } else {
                        format!("measure, pass {}", p.pass)
                    }
                ));
            }
        },
        None,
    );
    bar.finish_and_clear();
    multi.remove(&bar);
    r
}

fn summary(
    out: &mut impl std::io::Write,
    r: &ExportReport,
    notes: &[String],
) -> std::io::Result<()> {
    for o in &r.outputs {
        writeln!(out, "{} -> {}", r.input.display(), o.path.display())?;
        writeln!(
            out,
            "  {} {} Hz, {} ch, {:.2} s, {} bytes",
            o.format.describe(),
            o.sample_rate,
            o.channels,
            o.duration_seconds,
            o.bytes
        )?;
        if let Some(l) = &o.loudness {
            let i = l
                .loudness
                .integrated_lufs
                .map_or("-".to_string(), |v| format!("{v:.1} LUFS"));
            writeln!(
                out,
                "  loudness {i}, true peak {:.1} dBTP{}",
                l.true_peak_dbtp,
                if o.true_peak_check.is_some() {
                    " (the file, decoded)"
                } else {
                    ""
                }
            )?;
        }
        if let Some(c) = o.true_peak_check.as_ref().filter(|c| c.encodes > 1) {
            writeln!(
                out,
                "  encoded {} times to hold the ceiling and the target as decoded (limiter {:.2} dB lower, aimed {:+.2} LU for the codec)",
                c.encodes, c.lowered_db, c.loudness_offset_lu
            )?;
        }
    }
    for s in &r.stages {
        if s.stage == "normalize"
            && let Some(g) = s.values.get("gain_db")
        {
            let how = if s.values.get("limited").is_some_and(|l| *l > 0.0) {
                "limited"
            } else {
                "linear"
            };
            let held = s.values.get("gain_capped_db").map_or(String::new(), |c| {
                format!(", held {c:.2} dB under the target's")
            });
            let album = s
                .values
                .get("album_integrated_lufs")
                .map_or(String::new(), |l| format!(", the album's ({l:.2} LUFS)"));
            writeln!(out, "  normalize gain {g:+.2} dB{album}{held}, {how}")?;
        }
    }
    for w in notes.iter().chain(&r.warnings) {
        writeln!(out, "  warning: {w}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Codecs that take the same values (the three AAC profiles) are said once.
    #[test]
    fn an_effect_parameter_given_twice_is_refused() {
        let e = effect_step("leveler:target_db=-20,target_db=-30").unwrap_err();
        assert_eq!(
            e.to_string(),
            "--effect leveler:target_db=-20,target_db=-30: target_db is given twice"
        );
        let s = effect_step("leveler:target_db=-20, music=hold").unwrap();
        assert_eq!(s.params.len(), 2);
    }

    #[test]
    fn an_options_help_says_each_codecs_values_once() {
        let help = option_help("Constant bitrate in kbit/s", Opt::Bitrate);
        let parts: Vec<&str> = help.split("; ").collect();
        for p in &parts {
            assert_eq!(parts.iter().filter(|q| *q == p).count(), 1, "{help}");
        }
        assert!(
            help.contains("AAC bitrates") && help.contains("MP3"),
            "{help}"
        );
    }
}
