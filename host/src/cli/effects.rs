//! `sluice effects list | info NAME | test NAME|FILE.wasm | check FILE.wasm | install
//! FILE.wasm`: the wasm effects a root can use, and modules written outside it.

use super::{RootArg, emit};
use anyhow::Result;
use clap::Subcommand;
use sluice_host::commands::{
    self, EffectCheck, EffectInfo, EffectInstalled, EffectList, EffectTest,
};
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
        /// An effect of the root, or a module file (`FILE.wasm`).
        name: String,
        /// Parameters as KEY=VALUE.
        params: Vec<String>,
        #[arg(long, default_value_t = 48_000)]
        sample_rate: u32,
        /// Write the frequency response and the impulse response as PNGs into this folder.
        #[arg(long, value_name = "DIR")]
        plots: Option<std::path::PathBuf>,
        /// Print JSON instead of the readable summary.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        root: RootArg,
    },
    /// Write a new effect project, NAME/, built with its language's own tools: Rust (cargo,
    /// with the guest SDK written out beside it), C (a Makefile for clang's wasm32 target),
    /// Faust (a .dsp file and the glue that makes `faust -lang c` output a module) or
    /// AssemblyScript (an npm package).
    New {
        name: String,
        /// rust, c, faust or assemblyscript.
        #[arg(long, default_value = "rust")]
        lang: sluice_host::scaffold::Lang,
        /// The folder the project's folder is made in.
        #[arg(long, default_value = ".")]
        dir: std::path::PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Check a module file as the host would before loading it (the ABI, the descriptor,
    /// compiling, a probe run): its descriptor, or every reason it is refused (exit 1).
    Check {
        file: std::path::PathBuf,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        root: RootArg,
    },
    /// Check a module file, then copy it into the root's effects folder as NAME.wasm (the
    /// watch host picks it up while it runs).
    Install {
        file: std::path::PathBuf,
        /// Replace a module of the same name the root has.
        #[arg(long)]
        force: bool,
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
            plots,
            json,
            root,
        } => test(
            &commands::effects_test(&cfg(&root)?, &name, &params, sample_rate, plots.as_deref())?,
            json,
        ),
        Action::New {
            name,
            lang,
            dir,
            json,
        } => {
            let made = sluice_host::scaffold::new_effect(&name, lang, &dir)?;
            emit(json, &made, |out, m| {
                writeln!(out, "wrote {} ({} files)", m.dir.display(), m.files.len())?;
                writeln!(out, "next:")?;
                writeln!(out, "  cd {}", m.dir.display())?;
                writeln!(out, "  {}", m.build)?;
                writeln!(out, "  sluice effects check {}", m.module.display())?;
                writeln!(out, "  sluice effects install {}", m.module.display())
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Action::Check { file, json, root } => {
            check(&commands::effects_check(&cfg(&root)?, &file)?, json)
        }
        Action::Install {
            file,
            force,
            json,
            root,
        } => {
            // Installing makes the root's effects folder: the root must be one.
            let dir = config::root_from(root.root.as_deref())?;
            let cfg = config::Config::load(&dir)?;
            installed(&commands::effects_install(&cfg, &file, force)?, json)
        }
    }
}

/// `sluice effects check FILE.wasm`: exit 1 when the host would refuse the module.
fn check(c: &EffectCheck, json: bool) -> Result<ExitCode> {
    if json {
        emit(true, c, |_, _| Ok(()))?;
    } else if let (Some(d), Some(hash)) = (&c.descriptor, &c.hash) {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}: loads (effect ABI {})", c.file.display(), d.abi)?;
        describe(&mut out, d, &c.file.display().to_string(), hash)?;
        if let Some(other) = &c.same_name {
            writeln!(
                out,
                "note: the root has an effect `{}` already ({other}); installing this one {}",
                d.name,
                if other == "built in" {
                    "is refused: rename it"
                } else {
                    "needs --force"
                }
            )?;
        }
    } else {
        eprintln!(
            "{}: refused: {}",
            c.file.display(),
            c.error.as_deref().unwrap_or("")
        );
    }
    Ok(if c.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn installed(i: &EffectInstalled, json: bool) -> Result<ExitCode> {
    emit(json, i, |out, i| {
        writeln!(
            out,
            "{} {} {}: {}",
            i.name,
            i.version,
            i.action,
            i.path.display()
        )
    })?;
    Ok(ExitCode::SUCCESS)
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
    let mut out = std::io::stdout().lock();
    describe(&mut out, &e.descriptor, &e.origin, &e.hash)?;
    Ok(ExitCode::SUCCESS)
}

/// An effect's descriptor, for a person.
fn describe(
    out: &mut impl Write,
    d: &sluice_host::effects::descriptor::Descriptor,
    origin: &str,
    hash: &str,
) -> Result<()> {
    writeln!(out, "{} {} ({})", d.name, d.version, origin)?;
    if !d.description.is_empty() {
        writeln!(out, "  {}", d.description)?;
    }
    writeln!(
        out,
        "  channels up to {}; tail up to {} s; module {}",
        d.max_channels,
        d.tail_seconds,
        &hash[..16.min(hash.len())]
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
    for s in &d.data {
        writeln!(
            out,
            "  data {:<9} {:<22} an audio file, up to {} channel(s) and {} s  (required: data = {{ {} = \"FILE\" }}, --effect {}:{}=@FILE)",
            s.id, s.name, s.max_channels, s.max_seconds, s.id, d.name, s.id
        )?;
    }
    Ok(())
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
        )?;
        for p in &t.plots {
            writeln!(out, "  picture       {}", p.display())?;
        }
        Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}
