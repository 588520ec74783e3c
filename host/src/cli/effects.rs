//! `sluice effects list | info NAME | test NAME`: the wasm effects a root can use.

use super::{RootArg, emit};
use anyhow::Result;
use clap::Subcommand;
use sluice_host::commands::{self, EffectInfo, EffectList, EffectTest};
use sluice_host::config;
use std::io::Write;
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum Action {
    /// The effects available, and modules that were refused (with why).
    List {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        root: RootArg,
    },
    /// An effect's descriptor: parameters with ranges, units and defaults.
    Info {
        name: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        root: RootArg,
    },
    /// Run an impulse, a sweep and 10 s of noise through an effect: latency, gain, CPU time.
    Test {
        name: String,
        /// Parameters as KEY=VALUE.
        params: Vec<String>,
        #[arg(long, default_value_t = 48_000)]
        sample_rate: u32,
        /// Print JSON instead of the readable summary.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        root: RootArg,
    },
}

pub fn run(action: Action) -> Result<ExitCode> {
    // A root without configuration still has the built-in effects.
    let cfg = |root: &RootArg| -> Result<config::Config> {
        let dir = config::root_from(root.root.as_deref())?;
        Ok(config::Config::load(&dir).unwrap_or_else(|_| config::Config::defaults(&dir)))
    };
    match action {
        Action::List { json, root } => list(&commands::effects_list(&cfg(&root)?)?, json),
        Action::Info { name, json, root } => {
            info(&commands::effects_info(&cfg(&root)?, &name)?, json)
        }
        Action::Test {
            name,
            params,
            sample_rate,
            json,
            root,
        } => test(
            &commands::effects_test(&cfg(&root)?, &name, &params, sample_rate)?,
            json,
        ),
    }
}

/// `sluice effects list`: refused modules on stderr in text.
fn list(l: &EffectList, json: bool) -> Result<ExitCode> {
    emit(json, l, |out, l| {
        for e in &l.effects {
            writeln!(
                out,
                "{:<12} {:<8} {:<10} {}",
                e.name, e.version, e.origin, e.description
            )?;
        }
        Ok(())
    })?;
    if !json {
        for r in &l.refused {
            eprintln!("refused: {}: {}", r.module, r.error);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `sluice effects info NAME`: JSON is the descriptor.
fn info(e: &EffectInfo, json: bool) -> Result<ExitCode> {
    if json {
        emit(true, &e.descriptor, |_, _| Ok(()))?;
        return Ok(ExitCode::SUCCESS);
    }
    let d = &e.descriptor;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{} {} ({})", d.name, d.version, e.origin)?;
    if !d.description.is_empty() {
        writeln!(out, "  {}", d.description)?;
    }
    writeln!(
        out,
        "  channels up to {}; tail up to {} s; module {}",
        d.max_channels,
        d.tail_seconds,
        &e.hash[..16.min(e.hash.len())]
    )?;
    for p in &d.params {
        let range = match &p.choices {
            Some(c) => c.join(" | "),
            None => format!("{} to {} {}", p.min, p.max, p.unit),
        };
        let default = match &p.choices {
            Some(c) => c[p.default as usize].clone(),
            None => p.default.to_string(),
        };
        writeln!(
            out,
            "  {:<14} {:<22} {range}  (default {default})",
            p.id, p.name
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `sluice effects test`.
fn test(t: &EffectTest, json: bool) -> Result<ExitCode> {
    emit(json, t, |out, t| {
        writeln!(
            out,
            "{} {} at {} Hz, {} channel(s), blocks of {}",
            t.name, t.version, t.sample_rate, t.channels, t.block
        )?;
        writeln!(
            out,
            "  latency       {} frames ({:.2} ms)",
            t.latency_frames,
            t.latency_frames as f64 * 1000.0 / f64::from(t.sample_rate)
        )?;
        writeln!(
            out,
            "  impulse       peak {:.3} at frame {}",
            t.impulse_peak, t.impulse_peak_frame
        )?;
        writeln!(
            out,
            "  sweep gain    {:+.2} dB (20 Hz to {:.0} Hz at -12 dBFS)",
            t.sweep_gain_db, t.sweep_top_hz
        )?;
        writeln!(
            out,
            "  CPU           {:.2} ms per second of audio ({:.0}x real time)",
            t.seconds_per_second * 1000.0,
            1.0 / t.seconds_per_second
        )
    })?;
    Ok(ExitCode::SUCCESS)
}
