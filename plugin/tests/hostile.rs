//! Forged headers (core/tests/common/forge.rs) loaded as A/B references, in a process whose
//! address space is limited to 1 GiB: each is refused with an error naming the file and the
//! field, or loaded correctly; none sizes an allocation from its header's word (that would abort
//! this test binary).

#[path = "../../core/tests/common/forge.rs"]
mod forge;

use std::path::Path;

#[test]
fn forged_references_are_refused_clearly_in_bounded_memory() {
    forge::limit_address_space();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../core/tests/fixtures");
    let dir = tempfile::tempdir().unwrap();
    let mut wrong = Vec::new();
    for f in forge::all(&fixtures) {
        let path = f.write(dir.path());
        let shown = path.display().to_string();
        match sluice_plugin::reference::load(&path, 48_000, 2, &|| false) {
            Ok(_) if f.field.is_some() => wrong.push(format!("{}: loaded", f.name)),
            Ok(_) => {}
            Err(e) => wrong.extend(f.judge(&shown, &e.to_string())),
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
