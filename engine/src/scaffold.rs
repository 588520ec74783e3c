//! `sluice effects new NAME --lang rust|c|faust|assemblyscript`: a standalone effect project anywhere, built
//! with its language's own tools and nothing from this repository. The Rust project carries
//! the guest SDK beside it (written out from this binary, so it is the SDK of the ABI this
//! `sluice` speaks, and works offline); the C project is one file against `effects/ABI.md` and
//! a Makefile for clang's wasm32 target; the Faust project is a `.dsp` file and the glue that
//! turns `faust -lang c` output into a module of the ABI (its controls as parameters); the
//! AssemblyScript project an npm package whose build appends the descriptor section.

use anyhow::{Context, Result, bail};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// The languages `effects new` writes projects in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    Rust,
    C,
    Faust,
    #[serde(rename = "assemblyscript")]
    AssemblyScript,
}

/// A language `sluice effects new` does not write.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--lang {0}: give rust, c, faust or assemblyscript")]
pub struct UnknownLang(pub String);

impl std::str::FromStr for Lang {
    type Err = UnknownLang;
    fn from_str(s: &str) -> Result<Lang, UnknownLang> {
        match s {
            "rust" => Ok(Lang::Rust),
            "c" => Ok(Lang::C),
            "faust" => Ok(Lang::Faust),
            "assemblyscript" | "as" => Ok(Lang::AssemblyScript),
            other => Err(UnknownLang(other.to_string())),
        }
    }
}

/// The guest SDK's sources, as this binary was built with them.
const SDK_FILES: &[(&str, &str)] = &[
    ("src/abi.rs", include_str!("../../effects/sdk/src/abi.rs")),
    (
        "src/arena.rs",
        include_str!("../../effects/sdk/src/arena.rs"),
    ),
    (
        "src/descriptor.rs",
        include_str!("../../effects/sdk/src/descriptor.rs"),
    ),
    ("src/dsp.rs", include_str!("../../effects/sdk/src/dsp.rs")),
    (
        "src/dsp/biquad.rs",
        include_str!("../../effects/sdk/src/dsp/biquad.rs"),
    ),
    (
        "src/dsp/fft.rs",
        include_str!("../../effects/sdk/src/dsp/fft.rs"),
    ),
    (
        "src/effect.rs",
        include_str!("../../effects/sdk/src/effect.rs"),
    ),
    (
        "src/error.rs",
        include_str!("../../effects/sdk/src/error.rs"),
    ),
    ("src/lib.rs", include_str!("../../effects/sdk/src/lib.rs")),
    (
        "src/macros.rs",
        include_str!("../../effects/sdk/src/macros.rs"),
    ),
    (
        "src/native.rs",
        include_str!("../../effects/sdk/src/native.rs"),
    ),
    (
        "src/native/check.rs",
        include_str!("../../effects/sdk/src/native/check.rs"),
    ),
    (
        "src/native/json.rs",
        include_str!("../../effects/sdk/src/native/json.rs"),
    ),
    (
        "src/native/signal.rs",
        include_str!("../../effects/sdk/src/native/signal.rs"),
    ),
    (
        "src/runtime.rs",
        include_str!("../../effects/sdk/src/runtime.rs"),
    ),
    ("src/wasm.rs", include_str!("../../effects/sdk/src/wasm.rs")),
];

/// The SDK's manifest, standalone (the repository's inherits from its workspace).
const SDK_MANIFEST: &str = r#"[package]
name = "sluice-effect-sdk"
description = "The guest SDK for Sluice wasm effects (no_std, no allocator), as written out by `sluice effects new`."
version = "0.1.0"
edition = "2024"
license = "MIT OR Apache-2.0"
publish = false

[features]
default = ["panic-handler"]
panic-handler = []

[dependencies]
libm = "0.2.16"
"#;

const ABI_DOC: &str = include_str!("../../effects/ABI.md");
const RUST_TEMPLATE: &str = include_str!("../../effects/template/src/lib.rs");
const C_TEMPLATE: &str = include_str!("../../effects/c-gain/gain.c");
const FAUST_HEADER: &str = include_str!("scaffold_faust/sluice_faust.h");
const FAUST_GLUE: &str = include_str!("scaffold_faust/sluice_glue.c");
const FAUST_DESCRIBE: &str = include_str!("scaffold_faust/describe.c");
const FAUST_STARTER: &str = include_str!("scaffold_faust/starter.dsp");
const AS_SOURCE: &str = include_str!("scaffold_as/index.ts");
const AS_BUILD: &str = include_str!("scaffold_as/build.js");

/// What `effects new` wrote.
#[derive(Debug, Clone, Serialize)]
pub struct Created {
    pub name: String,
    pub lang: Lang,
    pub dir: PathBuf,
    pub files: Vec<PathBuf>,
    /// The command that builds the module, run in `dir`.
    pub build: String,
    /// Where the module is once built, relative to `dir`.
    pub module: PathBuf,
}

/// `snake_case` to `CamelCase`.
fn camel(name: &str) -> String {
    name.split('_')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut c = p.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// Writes a new effect project `NAME` in `parent/NAME` (which must not exist, or be empty).
pub fn new_effect(name: &str, lang: Lang, parent: &Path) -> Result<Created> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !ok {
        bail!(
            "{name:?}: an effect's name is 1 to 64 characters of [a-z][a-z0-9_]* (it is what pipelines write in `effect = \"...\"`)"
        );
    }
    if crate::effects::BUILTIN.iter().any(|(n, _)| {
        Path::new(n)
            .file_stem()
            .is_some_and(|s| s.to_string_lossy() == name)
    }) {
        bail!("{name}: a built-in effect has that name; choose another");
    }
    let dir = parent.join(name);
    if dir.exists()
        && std::fs::read_dir(&dir)
            .with_context(|| dir.display().to_string())?
            .next()
            .is_some()
    {
        bail!("{}: exists and is not empty", dir.display());
    }
    let files: Vec<(PathBuf, String)> = match lang {
        Lang::Rust => rust_files(name),
        Lang::C => c_files(name),
        Lang::Faust => faust_files(name),
        Lang::AssemblyScript => as_files(name),
    };
    let mut written = Vec::new();
    for (rel, text) in &files {
        let path = dir.join(rel);
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d).with_context(|| d.display().to_string())?;
        }
        std::fs::write(&path, text).with_context(|| path.display().to_string())?;
        written.push(path);
    }
    let (build, module) = match lang {
        Lang::Rust => (
            "cargo build --release".to_string(),
            PathBuf::from(format!("target/wasm32-unknown-unknown/release/{name}.wasm")),
        ),
        Lang::C | Lang::Faust => ("make".to_string(), PathBuf::from(format!("{name}.wasm"))),
        Lang::AssemblyScript => (
            "npm install && npm run build".to_string(),
            PathBuf::from(format!("{name}.wasm")),
        ),
    };
    Ok(Created {
        name: name.to_string(),
        lang,
        dir,
        files: written,
        build,
        module,
    })
}

fn rust_files(name: &str) -> Vec<(PathBuf, String)> {
    let camel = camel(name);
    let body = RUST_TEMPLATE
        .split_once("\n\n// No std on wasm32")
        .map_or(RUST_TEMPLATE, |(_, rest)| rest);
    let lib = format!(
        "//! The {name} effect, started from Sluice's template (trim and polarity): change what is\n\
         //! marked. Build: `cargo build --release` gives\n\
         //! `target/wasm32-unknown-unknown/release/{name}.wasm`. Test natively:\n\
         //! `cargo test --target x86_64-unknown-linux-gnu` (or your machine's target).\n\
         \n// No std on wasm32{body}"
    )
    .replace(
        "Template effect: trim (smoothed gain) and polarity. A starting point for new effects.",
        &format!("{name}: trim (smoothed gain) and polarity, from Sluice's template (change it)."),
    )
    .replace("TemplateParams", &format!("{camel}Params"))
    .replace("Template", &camel)
    .replace("name: \"template\"", &format!("name: \"{name}\""))
    .replace("the template effect", &format!("the {name} effect"));
    let manifest = format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
# The module's file name: {name}.wasm.
name = "{name}"
# cdylib: the .wasm module; rlib: so the native tests link the effect.
crate-type = ["cdylib", "rlib"]

[dependencies]
# The guest SDK, written out beside this project by `sluice effects new` (the SDK of the
# ABI the sluice that wrote it speaks).
sluice-effect-sdk = {{ path = "sluice-effect-sdk" }}

[profile.release]
opt-level = 3
lto = true
codegen-units = 1
panic = "abort"

[profile.dev]
opt-level = 1

# A project of its own, even inside another cargo workspace.
[workspace]
"#
    );
    let config = r#"[build]
target = "wasm32-unknown-unknown"

# wasm SIMD (128-bit): loops the compiler vectorises natively are vectorised in wasm too.
[target.wasm32-unknown-unknown]
rustflags = ["-C", "target-feature=+simd128"]
"#;
    let readme = format!(
        r#"# {name}: a Sluice effect in Rust

Written by `sluice effects new {name} --lang rust`. It starts as Sluice's template (a smoothed
trim and polarity); `src/lib.rs` marks each part to change. The guest SDK is in
`sluice-effect-sdk/` (and the ABI it implements in `sluice-effect-sdk/ABI.md`).

```sh
rustup target add wasm32-unknown-unknown       # once
cargo build --release                          # -> target/wasm32-unknown-unknown/release/{name}.wasm
cargo test --target x86_64-unknown-linux-gnu   # the native tests (your machine's target)
sluice effects check target/wasm32-unknown-unknown/release/{name}.wasm
sluice effects test target/wasm32-unknown-unknown/release/{name}.wasm trim_db=-6
sluice effects install target/wasm32-unknown-unknown/release/{name}.wasm --root ~/Sluice
```

Then a pipeline uses it as `{{ effect = "{name}", params = {{ trim_db = -3.0 }} }}`.
"#
    );
    let mut files = vec![
        (PathBuf::from("Cargo.toml"), manifest),
        (PathBuf::from(".cargo/config.toml"), config.to_string()),
        (PathBuf::from("src/lib.rs"), lib),
        (PathBuf::from("README.md"), readme),
        (PathBuf::from(".gitignore"), "/target\n".to_string()),
        (
            PathBuf::from("sluice-effect-sdk/Cargo.toml"),
            SDK_MANIFEST.to_string(),
        ),
        (
            PathBuf::from("sluice-effect-sdk/ABI.md"),
            ABI_DOC.to_string(),
        ),
    ];
    for (rel, text) in SDK_FILES {
        files.push((
            Path::new("sluice-effect-sdk").join(rel),
            (*text).to_string(),
        ));
    }
    files
}

fn c_files(name: &str) -> Vec<(PathBuf, String)> {
    let source = C_TEMPLATE
        .replace(
            "c-gain: a gain effect written in C straight against effects/ABI.md, without the Rust SDK.",
            &format!("{name}: a Sluice effect in C, written against ABI.md (started as a gain)."),
        )
        .replace(
            " * Build: ./build.sh (clang --target=wasm32 -nostdlib, see there).",
            " * Build: make (clang --target=wasm32 -nostdlib, see the Makefile).",
        )
        .replace("(build.sh: here)", "(the Makefile's: here)");
    let descriptor = format!(
        r#"{{"abi":1,"name":"{name}","version":"0.1.0","description":"{name}: a gain, ramped over 20 ms (change it).","params":[{{"id":"gain_db","name":"Gain","unit":"dB","min":-96.0,"max":24.0,"default":0.0}}],"tail_seconds":0.0,"max_channels":8}}"#
    );
    let makefile = format!(
        "# Builds {name}.wasm from {name}.c with clang's wasm32 target and wasm-ld (Debian/Ubuntu:\n\
         # apt-get install clang lld). descriptor.json becomes the module's sluice_effect section.\n\
         CLANG ?= clang\n\
         CFLAGS = --target=wasm32 -O2 -nostdlib -ffreestanding -Wall -Wextra -Werror\n\
         LDFLAGS = -Wl,--no-entry -Wl,--strip-debug\n\
         \n\
         {name}.wasm: {name}.c descriptor.json\n\
         \t$(CLANG) $(CFLAGS) $(LDFLAGS) -o $@ {name}.c\n\
         \n\
         clean:\n\
         \trm -f {name}.wasm\n\
         \n\
         .PHONY: clean\n"
    );
    let readme = format!(
        r#"# {name}: a Sluice effect in C

Written by `sluice effects new {name} --lang c`: `{name}.c` implements the effect ABI
(`ABI.md` here) directly — the `sluice_*` exports, memory taken with `memory.grow`, no
imports — and `descriptor.json` is its descriptor (name, parameters), embedded as the
module's `sluice_effect` section. It starts as a gain with a 20 ms ramp.

```sh
make                                   # needs clang and lld
sluice effects check {name}.wasm
sluice effects test {name}.wasm gain_db=-6
sluice effects install {name}.wasm --root ~/Sluice
```
"#
    );
    vec![
        (PathBuf::from(format!("{name}.c")), source),
        (PathBuf::from("descriptor.json"), descriptor),
        (PathBuf::from("Makefile"), makefile),
        (PathBuf::from("README.md"), readme),
        (PathBuf::from("ABI.md"), ABI_DOC.to_string()),
    ]
}

fn faust_files(name: &str) -> Vec<(PathBuf, String)> {
    let makefile = format!(
        "# Builds {name}.wasm from {name}.dsp: faust writes the DSP as C (dsp.c), describe (built\n\
         # for this machine) prints its descriptor (descriptor.json), and clang builds the module\n\
         # for wasm32 with the glue (sluice_glue.c) and wasi-libc's maths. Debian/Ubuntu:\n\
         # apt-get install faust clang lld wasi-libc libclang-rt-14-dev-wasm32 (clang's version).\n\
         FAUST ?= faust\n\
         CLANG ?= clang\n\
         HOSTCC ?= cc\n\
         \n\
         {name}.wasm: sluice_glue.c sluice_faust.h dsp.c descriptor.json\n\
         \t$(CLANG) --target=wasm32-wasi -O2 -nostartfiles -Wl,--no-entry -Wl,--strip-debug -o $@ sluice_glue.c\n\
         \n\
         dsp.c: {name}.dsp\n\
         \t$(FAUST) -lang c -cn fx -o $@ {name}.dsp\n\
         \n\
         describe: describe.c sluice_faust.h dsp.c\n\
         \t$(HOSTCC) -O1 -o $@ describe.c -lm\n\
         \n\
         descriptor.json: describe\n\
         \t./describe {name} > $@\n\
         \n\
         clean:\n\
         \trm -f {name}.wasm dsp.c describe descriptor.json\n\
         \n\
         .PHONY: clean\n"
    );
    let readme = format!(
        r#"# {name}: a Sluice effect in Faust

Written by `sluice effects new {name} --lang faust`. `{name}.dsp` is the DSP (it starts as
the compressor of Faust's library); any Faust program works, library effects included
(`re.zita_rev1_stereo`, `co.compressor_mono`, `fi.lowpass`...):

- its sliders, buttons and number entries are the effect's parameters, in order: the id is
  the label in snake_case (`"threshold [unit:dB]"` is `threshold`, unit dB), the range and
  default the control's;
- `declare version`, `declare description` and `declare tail_seconds` (how long the output may
  ring after the input stops: set it for reverbs and delays) are the descriptor's;
- a DSP with one input and one output runs once per channel; another runs once per file, its
  inputs fed from the channels in turn and its outputs mixed back onto them (a stereo reverb
  on a mono file is fed the mono twice and gives the mean of its two outputs).

```sh
make                          # faust, clang + lld, wasi-libc (see the Makefile)
sluice effects check {name}.wasm
sluice effects test {name}.wasm threshold=-30
sluice effects install {name}.wasm --root ~/Sluice
```

`sluice_glue.c` implements the effect ABI (`ABI.md` here) around the generated code,
`describe.c` prints the descriptor, `sluice_faust.h` is what the generated code expects of its
host (the control and metadata callbacks).
"#
    );
    vec![
        (
            PathBuf::from(format!("{name}.dsp")),
            FAUST_STARTER.replace("NAME", name),
        ),
        (PathBuf::from("sluice_glue.c"), FAUST_GLUE.to_string()),
        (PathBuf::from("describe.c"), FAUST_DESCRIBE.to_string()),
        (PathBuf::from("sluice_faust.h"), FAUST_HEADER.to_string()),
        (PathBuf::from("Makefile"), makefile),
        (PathBuf::from("README.md"), readme),
        (PathBuf::from("ABI.md"), ABI_DOC.to_string()),
        (
            PathBuf::from(".gitignore"),
            "/dsp.c\n/describe\n/descriptor.json\n/*.wasm\n".to_string(),
        ),
    ]
}

fn as_files(name: &str) -> Vec<(PathBuf, String)> {
    let package = format!(
        r#"{{
  "name": "{pkg}",
  "version": "0.1.0",
  "private": true,
  "description": "The Sluice effect {name}, in AssemblyScript.",
  "scripts": {{
    "build": "asc assembly/index.ts -o build/raw.wasm --runtime stub --use abort= -O3 --noAssert && node build.js"
  }},
  "devDependencies": {{
    "assemblyscript": "^0.28.20"
  }}
}}
"#,
        pkg = name.replace('_', "-")
    );
    let descriptor = format!(
        r#"{{"abi":1,"name":"{name}","version":"0.1.0","description":"{name}: a gain, ramped over 20 ms (change it).","params":[{{"id":"gain_db","name":"Gain","unit":"dB","min":-96.0,"max":24.0,"default":0.0}}],"tail_seconds":0.0,"max_channels":8}}
"#
    );
    let readme = format!(
        r#"# {name}: a Sluice effect in AssemblyScript

Written by `sluice effects new {name} --lang assemblyscript`. `assembly/index.ts` implements
the effect ABI (`ABI.md` here) directly: the `sluice_*` exports, the channel buffers taken once
in `sluice_init`, no imports (`--runtime stub`, `--use abort=`: an abort traps). It starts as a
gain with a 20 ms ramp. `descriptor.json` is the descriptor; `build.js` appends it to the
module as its `sluice_effect` section (AssemblyScript cannot declare custom sections).

```sh
npm install && npm run build          # -> {name}.wasm
sluice effects check {name}.wasm
sluice effects test {name}.wasm gain_db=-6
sluice effects install {name}.wasm --root ~/Sluice
```
"#
    );
    vec![
        (PathBuf::from("package.json"), package),
        (
            PathBuf::from("assembly/index.ts"),
            AS_SOURCE.replace("NAME", name),
        ),
        (PathBuf::from("build.js"), AS_BUILD.replace("NAME", name)),
        (PathBuf::from("descriptor.json"), descriptor),
        (PathBuf::from("README.md"), readme),
        (PathBuf::from("ABI.md"), ABI_DOC.to_string()),
        (
            PathBuf::from(".gitignore"),
            "/node_modules\n/build\n/*.wasm\n".to_string(),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every source file of the repository's SDK is written out, and its manifest needs
    /// nothing the standalone one lacks.
    #[test]
    fn the_sdk_written_out_is_the_whole_sdk() {
        let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../effects/sdk");
        let mut found = Vec::new();
        let mut stack = vec![sdk.join("src")];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    found.push(p.strip_prefix(&sdk).unwrap().to_string_lossy().into_owned());
                }
            }
        }
        found.sort();
        let mut listed: Vec<String> = SDK_FILES.iter().map(|(p, _)| p.to_string()).collect();
        listed.sort();
        assert_eq!(found, listed);
        let repo: toml::Value =
            toml::from_str(&std::fs::read_to_string(sdk.join("Cargo.toml")).unwrap()).unwrap();
        let ours: toml::Value = toml::from_str(SDK_MANIFEST).unwrap();
        let keys = |v: &toml::Value, t: &str| -> Vec<String> {
            v.get(t)
                .and_then(|d| d.as_table())
                .map(|d| d.keys().cloned().collect())
                .unwrap_or_default()
        };
        assert_eq!(keys(&repo, "dependencies"), keys(&ours, "dependencies"));
        assert_eq!(keys(&repo, "features"), keys(&ours, "features"));
        assert_eq!(
            ours["dependencies"]["libm"].as_str(),
            Some("0.2.16"),
            "the workspace's libm"
        );
    }

    #[test]
    fn names_are_checked_and_projects_never_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        for bad in ["", "Bad", "1x", "with-dash", "a b", "eq"] {
            assert!(new_effect(bad, Lang::Rust, dir.path()).is_err(), "{bad}");
        }
        let made = new_effect("de_ess", Lang::Rust, dir.path()).unwrap();
        let lib = std::fs::read_to_string(made.dir.join("src/lib.rs")).unwrap();
        assert!(lib.contains("pub struct DeEssParams for DeEss"), "{lib}");
        assert!(lib.contains("name: \"de_ess\""));
        assert!(lib.contains("description: \"de_ess: trim"), "{lib}");
        assert!(!lib.contains("Template") && !lib.contains("template\""));
        let err = new_effect("de_ess", Lang::C, dir.path()).unwrap_err();
        assert!(err.to_string().contains("not empty"), "{err}");
        let c = new_effect("hum", Lang::C, dir.path()).unwrap();
        let src = std::fs::read_to_string(c.dir.join("hum.c")).unwrap();
        assert!(src.starts_with("/*\n * hum: a Sluice effect in C"), "{src}");
        assert!(!src.contains("build.sh"));
    }
}
