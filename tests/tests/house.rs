//! The house holds no import circle: within each crate, no file reaches back to itself through
//! the `crate::` and `super::` paths it names (in `use` lines and in code). A parent module
//! naming its own children by their bare names (`audio::routes()` in `serve/mod.rs`) is how
//! Rust declares modules and is not counted; test modules (`#[cfg(test)] mod ...`) are not
//! part of the house. docs/ARCHITECTURE.md has the layers this keeps.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The crates' source folders, from the repository's root.
const CRATES: &[&str] = &[
    "core/src",
    "engine/src",
    "host/src",
    "plugin/src",
    "tests/src",
    "xtask/src",
    "effects/sdk/src",
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// A file's module path: `lib.rs` and `main.rs` are the root, `a/mod.rs` and `a.rs` are `a`.
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap();
    let mut parts: Vec<String> = rel
        .iter()
        .map(|s| s.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().unwrap();
    let stem = last.trim_end_matches(".rs");
    if !(stem == "mod" || (parts.is_empty() && (stem == "lib" || stem == "main"))) {
        parts.push(stem.to_string());
    }
    parts
}

/// The text without comments, string literals and test modules (`#[cfg(test)] mod x { .. }`).
fn code_of(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i] == b'"' && (i == 0 || b[i - 1] != b'\'') {
            // A string (raw strings of this tree hold no unbalanced quote).
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else {
            out.push(b[i] as char);
            i += 1;
        }
    }
    // Test modules, by their braces (comments and strings are gone).
    while let Some(at) = out.find("#[cfg(test)]\nmod ") {
        let Some(open) = out[at..].find(['{', ';']).map(|k| at + k) else {
            break;
        };
        let mut end = open + 1;
        if out.as_bytes()[open] == b'{' {
            let mut depth = 0;
            for (k, c) in out[open..].char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            end = open + k + 1;
                            break;
                        }
                    }
                    _ => {}
                }
            }
        }
        out.replace_range(at..end, "");
    }
    out
}

/// The paths a use tree or a path expression names, from just after `prefix::`.
fn paths_from(s: &str, prefix: &[String], out: &mut Vec<Vec<String>>) {
    let mut path = prefix.to_vec();
    let mut rest = s;
    loop {
        let ident: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if ident.is_empty() {
            if let Some(group) = rest.strip_prefix('{') {
                // Split the group at its top-level commas.
                let mut depth = 0;
                let mut start = 0;
                for (k, c) in group.char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' if depth == 0 => {
                            paths_from(group[start..k].trim(), &path, out);
                            return;
                        }
                        '}' => depth -= 1,
                        ',' if depth == 0 => {
                            paths_from(group[start..k].trim(), &path, out);
                            start = k + 1;
                        }
                        _ => {}
                    }
                }
            }
            out.push(path);
            return;
        }
        rest = &rest[ident.len()..];
        if ident != "self" {
            path.push(ident);
        }
        match rest.strip_prefix("::") {
            Some(r) => rest = r,
            None => {
                out.push(path);
                return;
            }
        }
    }
}

/// The module paths (from the crate's root) that `code`, in module `here`, names through
/// `crate::` and `super::`.
fn named(code: &str, here: &[String]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let bytes = code.as_bytes();
    for (i, _) in code.match_indices("crate::") {
        if i > 0 && (bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_') {
            continue; // `sluice_crate::`, `$crate::`
        }
        if i > 0 && bytes[i - 1] == b'$' {
            continue;
        }
        paths_from(&code[i + "crate::".len()..], &[], &mut out);
    }
    for (i, _) in code.match_indices("super::") {
        if i > 0 && (bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_') {
            continue;
        }
        if i >= 2 && &code[i - 2..i] == "::" {
            continue; // counted with the first `super::` of a chain
        }
        // `super::super::x`: one level per `super`.
        let mut rest = &code[i..];
        let mut base: Vec<String> = here.to_vec();
        while let Some(r) = rest.strip_prefix("super::") {
            base.pop();
            rest = r;
        }
        paths_from(rest, &base, &mut out);
    }
    out
}

#[test]
fn no_file_of_any_crate_reaches_back_to_itself_through_its_imports() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut circles = Vec::new();
    let mut edges_seen = 0;
    for krate in CRATES {
        let src = root.join(krate);
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        let modules: BTreeMap<Vec<String>, PathBuf> = files
            .iter()
            .map(|f| (module_of(&src, f), f.clone()))
            .collect();
        // File -> the files it names.
        let mut graph: BTreeMap<PathBuf, BTreeSet<PathBuf>> = BTreeMap::new();
        for f in &files {
            let here = module_of(&src, f);
            let code = code_of(&std::fs::read_to_string(f).unwrap());
            let mut to = BTreeSet::new();
            for path in named(&code, &here) {
                // The longest prefix of the path that is a module file.
                let target = (0..=path.len())
                    .rev()
                    .find_map(|n| modules.get(&path[..n]))
                    .unwrap();
                if target != f && !path.is_empty() {
                    to.insert(target.clone());
                }
            }
            edges_seen += to.len();
            graph.insert(f.clone(), to);
        }
        // Every file that reaches itself: a circle.
        for start in graph.keys() {
            let mut stack: Vec<(PathBuf, Vec<PathBuf>)> = vec![(start.clone(), vec![])];
            let mut seen = BTreeSet::new();
            while let Some((at, trail)) = stack.pop() {
                for next in &graph[&at] {
                    let mut trail = trail.clone();
                    trail.push(next.clone());
                    if next == start {
                        let names: Vec<String> = std::iter::once(start)
                            .chain(&trail)
                            .map(|p| p.strip_prefix(&root).unwrap().display().to_string())
                            .collect();
                        circles.push(names.join(" -> "));
                    } else if seen.insert(next.clone()) {
                        stack.push((next.clone(), trail));
                    }
                }
            }
        }
    }
    // The reader reads: the host alone names its modules hundreds of times.
    assert!(edges_seen > 200, "only {edges_seen} imports read");
    assert!(
        circles.is_empty(),
        "import circles:\n{}",
        circles.join("\n")
    );
}

/// The crates a build of `package` (with `args`) links, by name, from `cargo tree`.
fn linked(package: &str, args: &[&str]) -> BTreeSet<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .current_dir(&root)
        .args([
            "tree",
            "--locked",
            "--offline",
            "-e",
            "normal",
            "--prefix",
            "none",
        ])
        .args(["-p", package])
        .args(args)
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "cargo tree -p {package}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

/// The engine knows no face: no command line, progress bars, HTTP or NATS in what it links;
/// and the `sluice` binary built without its `server` and `farm` features links neither
/// the HTTP stack nor NATS (docs/ARCHITECTURE.md, "The host's crates").
#[test]
fn the_engine_links_no_face_and_the_faces_are_features() {
    let faces = [
        "clap",
        "indicatif",
        "axum",
        "hyper",
        "tokio",
        "utoipa",
        "async-nats",
    ];
    let engine = linked("sluice-engine", &[]);
    assert!(
        engine.contains("wasmtime") && engine.contains("redb"),
        "{engine:?}"
    );
    let found: Vec<_> = faces.iter().filter(|f| engine.contains(**f)).collect();
    assert!(found.is_empty(), "sluice-engine links {found:?}");

    let bare = linked("sluice-host", &["--no-default-features"]);
    assert!(
        bare.contains("clap") && bare.contains("sluice-engine"),
        "{bare:?}"
    );
    let found: Vec<_> = ["axum", "hyper", "tokio", "utoipa", "async-nats"]
        .iter()
        .filter(|f| bare.contains(**f))
        .collect();
    assert!(
        found.is_empty(),
        "sluice-host without its features links {found:?}"
    );

    let full = linked("sluice-host", &[]);
    assert!(
        full.contains("axum") && full.contains("async-nats"),
        "the default build has the server and the farm: {full:?}"
    );
}

/// The direct dependencies of a workspace's members on this machine's platform: name →
/// licence as declared. (Offline, the other platforms' crates are not in a new machine's
/// cache: a build downloads only this platform's.)
fn direct_libraries(manifest: &Path, out: &mut BTreeMap<String, BTreeSet<String>>) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let rustc = std::process::Command::new("rustc")
        .arg("-vV")
        .output()
        .expect("rustc runs");
    let host = String::from_utf8_lossy(&rustc.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_string))
        .expect("rustc -vV names the host");
    let meta = std::process::Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--locked", "--offline"])
        .args(["--filter-platform", &host])
        .arg("--manifest-path")
        .arg(manifest)
        .output()
        .expect("cargo runs");
    assert!(
        meta.status.success(),
        "{}",
        String::from_utf8_lossy(&meta.stderr)
    );
    let m: serde_json::Value = serde_json::from_slice(&meta.stdout).unwrap();
    let packages = m["packages"].as_array().unwrap();
    let members: BTreeSet<&str> = m["workspace_members"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    for p in packages
        .iter()
        .filter(|p| members.contains(p["id"].as_str().unwrap()))
    {
        for d in p["dependencies"].as_array().unwrap() {
            if d.get("path").is_some_and(|v| !v.is_null()) {
                continue;
            }
            let name = d["name"].as_str().unwrap();
            for q in packages.iter().filter(|q| q["name"] == name) {
                out.entry(name.to_string())
                    .or_default()
                    .insert(q["license"].as_str().unwrap_or("?").to_string());
            }
        }
    }
}

/// README names every library our crates depend on, with the licence its crate declares.
#[test]
fn readme_names_every_library_with_its_licence() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut libs = BTreeMap::new();
    direct_libraries(&root.join("Cargo.toml"), &mut libs);
    direct_libraries(&root.join("effects/Cargo.toml"), &mut libs);
    assert!(libs.contains_key("wasmtime") && libs.contains_key("libm"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let mut wrong = Vec::new();
    for (name, licences) in &libs {
        let row = readme
            .lines()
            .find(|l| l.starts_with(&format!("| `{name}` |")));
        let want: Vec<_> = licences.iter().cloned().collect();
        match row {
            None => wrong.push(format!("{name}: not in README ({})", want.join(" / "))),
            Some(r) => {
                let cell = r.split('|').nth(2).unwrap_or("").trim();
                if cell != want.join(" / ") {
                    wrong.push(format!("{name}: README says {cell:?}, its crate {want:?}"));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "README's libraries:\n{}",
        wrong.join("\n")
    );
}

/// The most lines of code (not blank, not only a comment) a function's body has without a
/// reason written above it.
const LONGEST: usize = 120;

/// Each function's name, first line and lines of code, read by indentation: the body ends at
/// the first line that is its closing brace at the `fn` line's indent (as rustfmt writes it).
fn functions(text: &str) -> Vec<(String, usize, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim_start();
        let indent = line.len() - t.len();
        let mut rest = t;
        for prefix in [
            "pub(crate) ",
            "pub(super) ",
            "pub ",
            "const ",
            "async ",
            "unsafe ",
        ] {
            rest = rest.strip_prefix(prefix).unwrap_or(rest);
        }
        let Some(after) = rest.strip_prefix("fn ") else {
            continue;
        };
        let name: String = after
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        // The line that opens the body (a declaration ending in `;` has none).
        let Some(open) = (i..lines.len()).find(|&j| {
            let l = lines[j].trim_end();
            l.ends_with('{') || l.ends_with(';')
        }) else {
            continue;
        };
        if lines[open].trim_end().ends_with(';') {
            continue;
        }
        let close = format!("{}}}", " ".repeat(indent));
        let Some(end) = (open + 1..lines.len()).find(|&j| lines[j].trim_end() == close) else {
            continue;
        };
        let code = lines[open + 1..end]
            .iter()
            .filter(|l| {
                let t = l.trim();
                !t.is_empty() && !t.starts_with("//")
            })
            .count();
        out.push((name, i, code));
    }
    out
}

#[test]
fn no_function_is_longer_than_120_lines_without_a_reason_above_it() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut long = Vec::new();
    let mut counted = 0;
    for krate in CRATES {
        let mut files = Vec::new();
        rust_files(&root.join(krate), &mut files);
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            let lines: Vec<&str> = text.lines().collect();
            for (name, at, code) in functions(&text) {
                counted += 1;
                if code <= LONGEST {
                    continue;
                }
                // A reason: a comment line above the function (or its attributes) saying
                // `Long: why`.
                let reason = lines[..at]
                    .iter()
                    .rev()
                    .take_while(|l| {
                        let t = l.trim_start();
                        t.starts_with("//") || t.starts_with("#[")
                    })
                    .any(|l| l.contains("Long:"));
                if !reason {
                    let rel = f.strip_prefix(&root).unwrap().display().to_string();
                    long.push(format!("{rel}:{} fn {name}: {code} lines", at + 1));
                }
            }
        }
    }
    assert!(counted > 2000, "only {counted} functions read");
    assert!(
        long.is_empty(),
        "functions over {LONGEST} lines of code with no `Long:` reason above them (split them into named phases):\n{}",
        long.join("\n")
    );
}
