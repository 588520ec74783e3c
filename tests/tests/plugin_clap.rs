//! Sluice Meter's CLAP build (`target/bundled/Sluice Meter.clap`, the debug bundle with
//! nice-plug's allocation checker: an allocation in `process` aborts this test binary) in the
//! clack host of `sluice_tests::clap_host`.
//!
//! Run `cargo xtask bundle sluice-plugin` (or `./test.sh`) first.

mod common;

use common::*;
use sluice_tests::audio::{assert_bit_exact, test_signal};
use sluice_tests::clap_host::ClapHost;
use sluice_tests::{Transport, bundles};

fn load() -> ClapHost {
    let path = ok(bundles::clap());
    ok(ClapHost::load(&path, bundles::CLAP_ID))
}

common::every_format_passes!(ClapHost);

#[test]
fn the_factory_lists_sluice_meter() {
    let host = load();
    let all = ok(host.factory_descriptors());
    assert_eq!(all.len(), 1, "one plugin in the bundle: {all:?}");
    let d = &all[0];
    assert_eq!(d.id, bundles::CLAP_ID);
    assert_eq!(d.name, bundles::NAME);
    assert_eq!(d.vendor, "Sluice");
    assert_eq!(d.version, env!("CARGO_PKG_VERSION"), "workspace version");
    for f in [
        "audio-effect",
        "analyzer",
        "utility",
        "stereo",
        "mono",
        "surround",
    ] {
        assert!(
            d.features.iter().any(|x| x == f),
            "feature {f} missing from {:?}",
            d.features
        );
    }
    assert_eq!(
        &ok(host.descriptor()),
        d,
        "the instance's descriptor is the factory's"
    );
}

#[test]
fn parameters_have_stable_ids_names_and_defaults() {
    let mut host = load();
    let params = ok(host.params());
    let listed: Vec<(u32, &str)> = params.iter().map(|p| (p.id, p.name.as_str())).collect();
    let expected: Vec<(u32, &str)> = PARAMS.iter().map(|p| (p.hash, p.name)).collect();
    assert_eq!(listed, expected, "parameter ids and names, in order");
    for (p, e) in params.iter().zip(&PARAMS) {
        assert_eq!(p.min, 0.0, "{}: min", e.id);
        assert_eq!(p.max, f64::from(e.steps.unwrap_or(1)), "{}: max", e.id);
        assert_eq!(p.stepped, e.steps.is_some(), "{}: stepped", e.id);
        assert!(p.automatable, "{}: automatable", e.id);
        let default = clap_value(e, e.default_normalized);
        assert!(
            (p.default - default).abs() < 1e-6,
            "{}: default {} != {default}",
            e.id,
            p.default
        );
        assert_eq!(
            p.value, p.default,
            "{}: a new instance holds its default",
            e.id
        );
    }
}

#[test]
fn a_damaged_state_is_refused_and_changes_nothing() {
    let mut host = load();
    ok(host.set_param(PARAMS[1].hash, 2.0));
    let not_json = clap_state_bytes(&serde_json::json!("not a state"));
    let huge_length = u64::MAX.to_le_bytes().to_vec();
    damaged_states_are_refused(
        &mut host,
        vec![
            ("not a state object", not_json),
            ("a huge length", huge_length),
        ],
    );
}

#[test]
fn automation_while_active_and_state_while_processing() {
    // (Recording stays disarmed: an armed instance would write takes to $HOME/Sluice Takes.)
    let mut host = load();
    ok(host.select_layout(2));
    ok(host.activate(96_000.0, MAX_BLOCK));
    let input = test_signal(96_000, 2, 0.5, 5);
    // Events queued while active go with the first block of the next run.
    ok(host.set_param(PARAMS[1].hash, 4.0));
    ok(host.set_param(PARAMS[2].hash, 0.25));
    let output = ok(host.process(
        &input,
        &[512],
        Some(Transport {
            playing: true,
            position_samples: 0,
        }),
    ));
    assert_bit_exact(&input, &output, "with automation");
    assert_close(
        ok(host.param_value(PARAMS[1].hash)),
        4.0,
        "target set by a ParamValueEvent",
    );
    assert_close(
        ok(host.param_value(PARAMS[2].hash)),
        0.25,
        "custom target set by a ParamValueEvent",
    );
    let automated = ok(host.save_state());
    let json = clap_state_json(&automated);
    assert_eq!(json["params"]["target"]["string"], "atsc_a85", "{json}");
    assert_eq!(json["params"]["cuslufs"]["f32"], -30.0, "{json}");

    // Load and save on the main thread while active (CLAP allows both).
    let mut fresh = load();
    let defaults = ok(fresh.save_state());
    ok(host.load_state(&defaults));
    assert_close(
        ok(host.param_value(PARAMS[1].hash)),
        0.0,
        "target back to default",
    );
    let output = ok(host.process(&input, VARYING, None));
    assert_bit_exact(&input, &output, "after loading a state while active");
    assert_eq!(ok(host.save_state()), defaults);
}

#[test]
fn the_diagnostics_handle_is_the_library_clack_loaded() {
    // The diagnostics hook must see the statics of the instances clack created: our dlopen of
    // the same path has to be the same loaded object, not a second copy.
    let host = load();
    // SAFETY: `clap_entry` is a static; only its address is taken.
    let ours = unsafe { host.library().get::<*const u8>(b"clap_entry") }
        .map(|s| *s as usize)
        .unwrap_or_else(|e| panic!("clap_entry not found through our handle: {e}"));
    assert_eq!(
        ours,
        host.entry_address(),
        "one loaded object, one clap_entry"
    );
}

#[test]
fn the_diagnostics_hook_reports_this_instance() {
    diagnostics_report_this_instance(&mut load(), |host| {
        // EBU R 128 (-23 LUFS), by a ParamValueEvent with the first block.
        ok(host.set_param(PARAMS[1].hash, 3.0));
    });
}
