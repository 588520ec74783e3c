//! `cargo xtask <task>`: Sluice's build tasks.
//!
//! - `bundle <package> [--release] [cargo build flags]`: builds the plugin and writes the CLAP and
//!   VST3 bundles to `target/bundled/` (nice-plug-xtask), then adds the VST3 bundle's
//!   `Contents/Resources/moduleinfo.json`, which nice-plug-xtask does not write.
//! - `install [--no-build] [--debug] [--into DIR]`: bundles in release mode (unless `--no-build`)
//!   and copies the bundles to `~/.clap/` and `~/.vst3/` (the per-user locations both formats
//!   search on Linux), or both into `DIR`.

mod moduleinfo;

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const USAGE: &str = "usage: cargo xtask <task>

tasks:
  bundle <package> [--release] [cargo build flags]
        build the plugin and write `target/bundled/<name>.clap` and `<name>.vst3`
        (for Sluice Meter: cargo xtask bundle sluice-plugin --release)
  install [--no-build] [--debug] [--into DIR]
        bundle sluice-plugin (release unless --debug) and copy the bundles into ~/.clap and
        ~/.vst3 (or both into DIR)
  moduleinfo <bundle.vst3>
        (re)write a VST3 bundle's Contents/Resources/moduleinfo.json from its factory";

fn main() -> ExitCode {
    forget_cargo_run_env();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        None | Some("help" | "-h" | "--help") => {
            println!("{USAGE}");
            Ok(())
        }
        Some("bundle") => bundle(&args),
        Some("install") => install(&args[1..]),
        Some("moduleinfo") => match args.get(1) {
            Some(path) => moduleinfo::write(Path::new(path)).map(|p| {
                println!("wrote {}", p.display());
            }),
            None => Err(anyhow::anyhow!("moduleinfo needs a bundle path\n\n{USAGE}")),
        },
        Some(other) => Err(anyhow::anyhow!("unknown task `{other}`\n\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `cargo run` (which `cargo xtask` is) gives this process the variables cargo sets for a crate it
/// runs: `CARGO_MANIFEST_DIR` (xtask's folder), `CARGO_PKG_NAME` and the like. The `cargo build`
/// that nice-plug-xtask spawns inherited them, and a build script that watches one of them
/// (ring's watches `CARGO_MANIFEST_DIR`) then saw another value than a plain `cargo build` or
/// `cargo test` does: ring, rustls, async-nats and sluice-host, and every test binary linking
/// them, were built twice in each CI run (about 3 minutes and gigabytes of disk, which filled
/// the CI machine once). Go to the workspace root, which nice-plug-xtask otherwise finds from
/// `CARGO_MANIFEST_DIR`, and drop them. Called first in `main`, before any thread exists.
fn forget_cargo_run_env() {
    if let Some(dir) = std::env::var_os("CARGO_MANIFEST_DIR")
        && let Some(root) = Path::new(&dir).parent()
    {
        let _ = std::env::set_current_dir(root);
    }
    let names: Vec<_> = std::env::vars_os()
        .filter_map(|(name, _)| {
            let n = name.to_str()?;
            let set_by_cargo_run = n.starts_with("CARGO_PKG_")
                || n.starts_with("CARGO_MANIFEST_")
                || matches!(
                    n,
                    "CARGO_CRATE_NAME" | "CARGO_BIN_NAME" | "CARGO_PRIMARY_PACKAGE"
                );
            set_by_cargo_run.then_some(name)
        })
        .collect();
    for name in names {
        // SAFETY: main's first call, while this process has one thread.
        unsafe { std::env::remove_var(name) };
    }
}

fn target_dir() -> Result<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("xtask has no parent folder")?;
    let meta = cargo_metadata::MetadataCommand::new()
        .manifest_path(root.join("Cargo.toml"))
        .no_deps()
        .exec()
        .context("cargo metadata failed")?;
    Ok(meta.target_directory.into_std_path_buf())
}

/// The bundle names nice-plug-xtask uses: `bundler.toml`'s `name`, else the package name.
fn bundle_name(package: &str) -> Result<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("xtask has no parent folder")?;
    let path = root.join("bundler.toml");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(package.to_string()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let table: toml::Table =
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    Ok(table
        .get(package)
        .and_then(|t| t.get("name"))
        .and_then(|n| n.as_str())
        .unwrap_or(package)
        .to_string())
}

fn bundle(args: &[String]) -> Result<()> {
    nice_plug_xtask::main_with_args("cargo xtask", args.iter().cloned())?;
    // nice-plug-xtask accepts several packages (`-p a -p b`) or one positional package.
    let mut packages = Vec::new();
    let mut it = args[1..].iter();
    while let Some(a) = it.next() {
        if a == "-p" || a == "--package" {
            packages.extend(it.next().cloned());
        } else if !a.starts_with('-') && packages.is_empty() {
            packages.push(a.clone());
        } else if !a.starts_with('-') {
            break;
        }
    }
    let bundled = target_dir()?.join("bundled");
    for p in packages {
        let vst3 = bundled.join(format!("{}.vst3", bundle_name(&p)?));
        if vst3.is_dir() {
            let written = moduleinfo::write(&vst3)?;
            println!("Wrote {}", written.display());
        }
    }
    Ok(())
}

fn install(args: &[String]) -> Result<()> {
    let mut debug = false;
    let mut build = true;
    let mut into: Option<PathBuf> = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--debug" => debug = true,
            "--no-build" => build = false,
            "--into" => {
                let dir = it
                    .next()
                    .with_context(|| format!("install: --into needs a folder\n\n{USAGE}"))?;
                into = Some(PathBuf::from(dir));
            }
            bad => bail!("install: unknown option `{bad}`\n\n{USAGE}"),
        }
    }
    if build {
        let mut a = vec!["bundle".to_string(), "sluice-plugin".to_string()];
        if !debug {
            a.push("--release".into());
        }
        bundle(&a)?;
    }
    let name = bundle_name("sluice-plugin")?;
    let bundled = target_dir()?.join("bundled");
    let clap_src = bundled.join(format!("{name}.clap"));
    let vst3_src = bundled.join(format!("{name}.vst3"));
    for src in [&clap_src, &vst3_src] {
        if !src.exists() {
            bail!(
                "{} does not exist: run `cargo xtask bundle sluice-plugin --release` first",
                src.display()
            );
        }
    }
    let (clap_dir, vst3_dir) = match into {
        Some(dir) => (dir.clone(), dir),
        None => {
            let home = PathBuf::from(std::env::var_os("HOME").context("HOME is not set")?);
            (home.join(".clap"), home.join(".vst3"))
        }
    };
    std::fs::create_dir_all(&clap_dir)
        .with_context(|| format!("creating {}", clap_dir.display()))?;
    std::fs::create_dir_all(&vst3_dir)
        .with_context(|| format!("creating {}", vst3_dir.display()))?;

    // Copy beside the destination, then rename over it: a host scanning meanwhile never sees a
    // half-copied plugin.
    let clap_dst = clap_dir.join(format!("{name}.clap"));
    let tmp = clap_dir.join(format!(".{name}.clap.installing"));
    std::fs::copy(&clap_src, &tmp).with_context(|| format!("copying to {}", tmp.display()))?;
    std::fs::rename(&tmp, &clap_dst)
        .with_context(|| format!("installing {}", clap_dst.display()))?;
    println!(
        "Installed {} ({:.1} MB)",
        clap_dst.display(),
        size_of(&clap_dst)? as f64 / 1e6
    );

    let vst3_dst = vst3_dir.join(format!("{name}.vst3"));
    let tmp = vst3_dir.join(format!(".{name}.vst3.installing"));
    let old = vst3_dir.join(format!(".{name}.vst3.old"));
    let _ = std::fs::remove_dir_all(&tmp);
    let _ = std::fs::remove_dir_all(&old);
    copy_dir(&vst3_src, &tmp)?;
    if vst3_dst.exists() {
        std::fs::rename(&vst3_dst, &old)
            .with_context(|| format!("moving the old {} aside", vst3_dst.display()))?;
    }
    std::fs::rename(&tmp, &vst3_dst)
        .with_context(|| format!("installing {}", vst3_dst.display()))?;
    let _ = std::fs::remove_dir_all(&old);
    println!(
        "Installed {} ({:.1} MB)",
        vst3_dst.display(),
        size_of(&vst3_dst)? as f64 / 1e6
    );
    Ok(())
}

/// Bytes in a file, or in every file under a folder.
fn size_of(path: &Path) -> Result<u64> {
    let meta = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    if !meta.is_dir() {
        return Ok(meta.len());
    }
    let mut total = 0;
    for entry in std::fs::read_dir(path).with_context(|| format!("reading {}", path.display()))? {
        total += size_of(&entry?.path())?;
    }
    Ok(total)
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        let dst = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &dst)?;
        } else {
            std::fs::copy(entry.path(), &dst)
                .with_context(|| format!("copying {}", entry.path().display()))?;
        }
    }
    Ok(())
}
