//! Forged headers (common/forge.rs) through the decoder, `info` with a full decode and the full
//! analysis, in a process whose address space is limited to 1 GiB: a header that makes Sluice
//! size an allocation from its word aborts this test binary instead of passing. Each file ends
//! in a correct result or an error naming the file (and, for a value outside what Sluice
//! supports, the field).

mod common;
#[path = "common/forge.rs"]
mod forge;

use sluice_core::analysis::{AnalysisOptions, analyze};
use sluice_core::{InfoOptions, InputError, info};

/// What is wrong with the error `e` about the forged file `f` at `path`, if anything.
fn check(e: &InputError, f: &forge::Forged, path: &std::path::Path) -> Option<String> {
    let msg = e.to_string();
    if matches!(e, InputError::ParserFailure { .. }) {
        return Some(format!("{}: a parser panicked: {msg}", f.name));
    }
    f.judge(&path.display().to_string(), &msg)
}

#[test]
fn forged_headers_give_a_clear_error_or_a_result_in_bounded_memory() {
    forge::limit_address_space();
    let dir = tempfile::tempdir().unwrap();
    let cases = forge::all(&common::fixture(""));
    assert!(cases.len() >= 50, "{} cases", cases.len());
    let mut refused = 0;
    let mut wrong = Vec::new();
    for f in &cases {
        let path = f.write(dir.path());
        let t = std::time::Instant::now();
        let decoded = info(&path, &InfoOptions { decode: true });
        let analysed = analyze(&path, &AnalysisOptions::default(), &mut |_| {});
        match (&decoded, &analysed) {
            (Ok(i), Ok(a)) => {
                let s = &i.stream;
                if let Some(field) = f.field {
                    wrong.push(format!(
                        "{}: accepted a {field} outside the supported range: {} Hz, {} channels, \
                         {:?} bits",
                        f.name, s.sample_rate, s.channels, s.bit_depth
                    ));
                }
                if !(sluice_core::formats::limits::SAMPLE_RATES.contains(&s.sample_rate)
                    && sluice_core::formats::limits::CHANNELS.contains(&s.channels))
                {
                    wrong.push(format!(
                        "{}: read as {} Hz, {} channels",
                        f.name, s.sample_rate, s.channels
                    ));
                }
                assert_eq!(a.stream.sample_rate, s.sample_rate, "{}", f.name);
            }
            (Err(e), _) | (_, Err(e)) => {
                refused += 1;
                wrong.extend(check(e, f, &path));
                if let Err(e2) = &analysed {
                    wrong.extend(check(e2, f, &path));
                }
            }
        }
        assert!(
            t.elapsed().as_secs() < 20,
            "{}: took {:?}",
            f.name,
            t.elapsed()
        );
        eprintln!(
            "{:28} {}",
            f.name,
            match (&decoded, &analysed) {
                (Err(e), _) | (_, Err(e)) => e.to_string(),
                (Ok(i), _) => format!(
                    "ok: {} Hz, {} ch, {:?} frames",
                    i.stream.sample_rate, i.stream.channels, i.stream.frames
                ),
            }
        );
    }
    assert!(
        wrong.is_empty(),
        "{} problems:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    assert!(refused >= cases.iter().filter(|c| c.field.is_some()).count());
}
