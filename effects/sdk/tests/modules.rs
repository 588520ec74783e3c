//! Every effect module built so far passes the checks a host makes (`native::check::module`):
//! a `sluice_effect` section with a valid descriptor, the ABI's exports and signatures, no
//! imports but `sluice.log`. The release build (`cargo build --release`, which the repository's
//! `test.sh` runs before the native tests) puts the Rust effects in
//! `target/wasm32-unknown-unknown/release/`; the C effect is committed in `c-gain/`. Modules
//! that were not built are reported and skipped; with `SLUICE_REQUIRE_WASM=1` they fail.

use std::path::{Path, PathBuf};

use sluice_effect_sdk::native::check;

/// The Rust effects of the workspace (lib names, which are the module file names).
const RUST_EFFECTS: &[&str] = &[
    "template",
    "gain",
    "eq",
    "highpass",
    "compressor",
    "limiter",
    "reverb",
    "delay",
    "gate",
    "dehum",
    "deess",
    "denoise",
    "leveler",
    "invert",
    "clip",
    "distortion",
    "bitcrush",
    "chorus",
    "flanger",
    "phaser",
    "ladder",
    "pitch",
    "convolve",
];

fn effects_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn release_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|t| {
            if t.is_relative() {
                effects_dir().join(t)
            } else {
                t
            }
        })
        .unwrap_or_else(|| effects_dir().join("target"));
    target.join("wasm32-unknown-unknown/release")
}

#[test]
fn built_modules_pass_the_host_checks() {
    let require = std::env::var_os("SLUICE_REQUIRE_WASM").is_some_and(|v| v == "1");
    let mut files: Vec<(String, PathBuf)> = RUST_EFFECTS
        .iter()
        .map(|n| (n.to_string(), release_dir().join(format!("{n}.wasm"))))
        .collect();
    files.push(("c-gain".into(), effects_dir().join("c-gain/c-gain.wasm")));
    let mut checked = 0;
    for (name, path) in &files {
        let Ok(bytes) = std::fs::read(path) else {
            assert!(!require, "{} is missing", path.display());
            eprintln!("skipped {name}: {} not built", path.display());
            continue;
        };
        let m = check::module(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let expected = if name == "c-gain" {
            "c-gain"
        } else {
            name.as_str()
        };
        assert_eq!(m.descriptor.name, expected, "{}", path.display());
        assert!(
            m.has_latency,
            "{name}: the SDK always exports sluice_latency"
        );
        assert!(!m.imports_log, "{name}: no effect here logs");
        eprintln!(
            "{name}: {} bytes, {} params, ok",
            bytes.len(),
            m.descriptor.params.len()
        );
        checked += 1;
    }
    // The C module is committed, so at least it is always checked.
    assert!(checked >= 1);
}

fn leb(mut v: usize, out: &mut Vec<u8>) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn section(id: u8, body: &[u8], out: &mut Vec<u8>) {
    out.push(id);
    leb(body.len(), out);
    out.extend_from_slice(body);
}

fn name(s: &str) -> Vec<u8> {
    let mut v = vec![];
    leb(s.len(), &mut v);
    v.extend_from_slice(s.as_bytes());
    v
}

/// A module with one import (module.field of type (i32, i32) -> ()), a descriptor section and
/// no exports.
fn module_with_import(module: &str, field: &str) -> Vec<u8> {
    let mut m = b"\0asm\x01\0\0\0".to_vec();
    section(1, &[1, 0x60, 2, 0x7f, 0x7f, 0], &mut m);
    let mut imports = vec![1];
    imports.extend(name(module));
    imports.extend(name(field));
    imports.extend([0, 0]);
    section(2, &imports, &mut m);
    let mut custom = name("sluice_effect");
    custom.extend_from_slice(br#"{"abi":1,"name":"x","version":"1","description":"","params":[],"tail_seconds":0,"max_channels":1}"#);
    section(0, &custom, &mut m);
    m
}

#[test]
fn hostile_modules_are_refused() {
    let wasi = module_with_import("wasi_snapshot_preview1", "fd_write");
    assert!(
        check::module(&wasi)
            .unwrap_err()
            .contains("only import allowed")
    );
    // sluice.log is allowed; this one then fails for lack of exports.
    let log = module_with_import("sluice", "log");
    assert!(check::module(&log).unwrap_err().contains("memory"));
    let mut component = log.clone();
    component[4..8].copy_from_slice(&[0x0d, 0, 1, 0]);
    assert!(check::module(&component).unwrap_err().contains("component"));
    let truncated = &log[..log.len() - 3];
    assert!(check::module(truncated).is_err());
    let mut two = log.clone();
    let mut custom = name("sluice_effect");
    custom.extend_from_slice(b"{}");
    section(0, &custom, &mut two);
    assert!(check::module(&two).unwrap_err().contains("more than one"));
}
