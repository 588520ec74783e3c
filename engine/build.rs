//! Builds the built-in wasm effects (the `effects/` workspace, for wasm32-unknown-unknown) and
//! embeds them in the `sluice` binary, so the host carries its effect library with it.
//! Their own target folder lives in OUT_DIR; cargo's jobserver is shared with the outer build.

use std::path::PathBuf;
use std::process::Command;

/// Members that are not built-in effects.
const NOT_BUILTIN: [&str; 2] = ["sdk", "template"];

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let effects = manifest.join("../effects");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets it"));
    for f in ["Cargo.toml", "Cargo.lock", ".cargo/config.toml"] {
        println!("cargo:rerun-if-changed={}", effects.join(f).display());
    }
    for e in std::fs::read_dir(&effects)
        .expect("the effects folder")
        .flatten()
    {
        let p = e.path();
        if p.join("Cargo.toml").is_file() {
            println!("cargo:rerun-if-changed={}", p.join("Cargo.toml").display());
            println!("cargo:rerun-if-changed={}", p.join("src").display());
        }
    }

    ensure_wasm32_target();

    let target_dir = out.join("effects-target");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&effects)
        .args(["build", "--release", "--locked", "--workspace"])
        .args(["--target", "wasm32-unknown-unknown", "--target-dir"])
        .arg(&target_dir);
    // The outer build's flags are for the host, not for wasm32.
    for v in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_RUSTFLAGS",
    ] {
        cmd.env_remove(v);
    }
    let status = cmd.status().expect("cargo runs");
    if !status.success() {
        panic!(
            "building the built-in effects (effects/, for wasm32-unknown-unknown) failed; \
             if the target is missing: rustup target add wasm32-unknown-unknown"
        );
    }

    let release = target_dir.join("wasm32-unknown-unknown/release");
    let mut list = String::from(
        "/// The built-in effects: (name, module bytes), built from `effects/` by build.rs.\n\
         pub const BUILTIN: &[(&str, &[u8])] = &[\n",
    );
    // Every module the build made (cdylib members), but the template.
    let mut names: Vec<String> = std::fs::read_dir(&release)
        .expect("the release folder")
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.strip_suffix(".wasm").map(str::to_string)
        })
        .filter(|n| !NOT_BUILTIN.contains(&n.as_str()))
        .collect();
    names.sort();
    for n in names {
        let wasm = release.join(format!("{n}.wasm"));
        assert!(wasm.is_file(), "{} was not built", wasm.display());
        list.push_str(&format!(
            "    ({n:?}, include_bytes!({:?})),\n",
            wasm.display().to_string()
        ));
    }
    list.push_str("];\n");
    std::fs::write(out.join("builtin_effects.rs"), list).expect("OUT_DIR is writable");
}

/// rustup installs rust-toolchain.toml's `targets` only with a toolchain it installs itself: an
/// already installed 1.95 without wasm32 would stop the build with "can't find crate for `core`".
/// So look for the target's standard library in the sysroot and, when it is missing, ask rustup
/// for it (the toolchain the outer build uses, via RUSTUP_TOOLCHAIN), with a clear error if that
/// cannot be done.
fn ensure_wasm32_target() {
    const TARGET: &str = "wasm32-unknown-unknown";
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    if let Some(root) = &sysroot
        && root.join("lib/rustlib").join(TARGET).join("lib").is_dir()
    {
        return;
    }
    println!(
        "cargo:warning=the {TARGET} target is missing from this toolchain; adding it with rustup"
    );
    let mut add = Command::new("rustup");
    add.args(["target", "add", TARGET]);
    if let Ok(tc) = std::env::var("RUSTUP_TOOLCHAIN") {
        add.args(["--toolchain", &tc]);
    }
    match add.status() {
        Ok(s) if s.success() => {}
        Ok(s) => panic!(
            "`rustup target add {TARGET}` failed ({s}); the built-in effects need it: \
             run it by hand, then build again"
        ),
        Err(e) => panic!(
            "the {TARGET} target is missing and rustup could not be run ({e}); \
             install the target for this toolchain, then build again"
        ),
    }
}
