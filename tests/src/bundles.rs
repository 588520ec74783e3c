//! Where the built Sluice Meter bundles are.
//!
//! The tests exercise the binary users install, so they load the bundles that
//! `cargo xtask bundle sluice-plugin` writes (`./test.sh` runs it before `cargo test`; cargo
//! cannot hand a test another member's cdylib, rust-lang/cargo#8311). The folder is, in order:
//! `$SLUICE_PLUGIN_BUNDLES`; `$CARGO_TARGET_DIR/bundled`; `<workspace>/target/bundled`.

use std::path::{Path, PathBuf};

/// The bundle name (`bundler.toml`).
pub const NAME: &str = "Sluice Meter";
/// The CLAP plugin id.
pub const CLAP_ID: &str = "org.sluice.meter";
/// The VST3 class id: these 16 bytes, as they are (Linux).
pub const VST3_CLASS_ID: [u8; 16] = *b"SluiceMeterPlug1";

/// The environment variable that overrides the bundle folder.
pub const ENV: &str = "SLUICE_PLUGIN_BUNDLES";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// The folder the bundles are looked for in (it may not exist).
pub fn folder() -> PathBuf {
    if let Some(dir) = std::env::var_os(ENV).filter(|v| !v.is_empty()) {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR").filter(|v| !v.is_empty()) {
        let dir = PathBuf::from(dir);
        let dir = if dir.is_absolute() {
            dir
        } else {
            workspace().join(dir)
        };
        return dir.join("bundled");
    }
    workspace().join("target").join("bundled")
}

fn missing(what: &Path) -> String {
    format!(
        "the Sluice Meter bundle {} does not exist.\n\
         Build the bundles first: `cargo xtask bundle sluice-plugin` (or run ./test.sh, which \
         bundles before testing), or point ${ENV} at a folder holding `{NAME}.clap` and \
         `{NAME}.vst3`.",
        what.display()
    )
}

/// `<folder>/Sluice Meter.clap`, or an error saying how to build it.
pub fn clap() -> anyhow::Result<PathBuf> {
    let path = folder().join(format!("{NAME}.clap"));
    anyhow::ensure!(path.is_file(), missing(&path));
    Ok(path)
}

/// `<folder>/Sluice Meter.vst3` (the bundle folder), or an error saying how to build it.
pub fn vst3() -> anyhow::Result<PathBuf> {
    let path = folder().join(format!("{NAME}.vst3"));
    anyhow::ensure!(vst3_binary(&path).is_file(), missing(&vst3_binary(&path)));
    Ok(path)
}

/// The shared library inside a Linux VST3 bundle: `Contents/<arch>-linux/<bundle stem>.so`.
pub fn vst3_binary(bundle: &Path) -> PathBuf {
    let stem = bundle
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    bundle
        .join("Contents")
        .join(format!("{}-linux", std::env::consts::ARCH))
        .join(format!("{stem}.so"))
}

/// The bundle's `Contents/Resources/moduleinfo.json`.
pub fn vst3_moduleinfo(bundle: &Path) -> PathBuf {
    bundle
        .join("Contents")
        .join("Resources")
        .join("moduleinfo.json")
}
