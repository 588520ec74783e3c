//! Sluice Meter's VST3 build (`target/bundled/Sluice Meter.vst3`, the debug bundle with
//! nice-plug's allocation checker: an allocation in `process` aborts this test binary) in the
//! host of `sluice_tests::vst3_host`.
//!
//! Run `cargo xtask bundle sluice-plugin` (or `./test.sh`) first.

mod common;

use common::*;
use sluice_tests::audio::{assert_bit_exact, test_signal};
use sluice_tests::vst3_host::{Vst3Host, Vst3Module};
use sluice_tests::{Transport, bundles};

fn load() -> Vst3Host {
    let bundle = ok(bundles::vst3());
    ok(Vst3Host::load(&bundle, bundles::VST3_CLASS_ID))
}

common::every_format_passes!(Vst3Host);

/// `kCanAutomate` in `ParameterInfo::flags`.
const CAN_AUTOMATE: i32 = 1;

#[test]
fn the_factory_lists_one_audio_module_class() {
    let module = ok(Vst3Module::load(&ok(bundles::vst3())));
    let classes = ok(module.classes());
    assert_eq!(
        classes.len(),
        1,
        "one class (a single component): {classes:?}"
    );
    let c = &classes[0].basic;
    assert_eq!(c.cid, bundles::VST3_CLASS_ID);
    assert_eq!(c.category, "Audio Module Class");
    assert_eq!(c.name, bundles::NAME);
}

#[test]
fn parameters_have_stable_ids_names_and_defaults() {
    let host = load();
    let params = ok(host.params());
    let listed: Vec<(u32, &str)> = params.iter().map(|p| (p.id, p.title.as_str())).collect();
    let expected: Vec<(u32, &str)> = PARAMS.iter().map(|p| (p.hash, p.name)).collect();
    assert_eq!(listed, expected, "parameter ids and titles, in order");
    for (p, e) in params.iter().zip(&PARAMS) {
        assert_eq!(p.short_title, e.name, "{}: short title", e.id);
        assert_eq!(
            p.step_count,
            e.steps.unwrap_or(0) as i32,
            "{}: step count",
            e.id
        );
        assert_eq!(p.unit_id, 0, "{}: in the root unit", e.id);
        assert!(p.flags & CAN_AUTOMATE != 0, "{}: automatable", e.id);
        assert_close(
            p.default_normalized,
            e.default_normalized,
            &format!("{}: default", e.id),
        );
        assert_eq!(
            p.value, p.default_normalized,
            "{}: a new instance holds its default",
            e.id
        );
    }
    assert_eq!(params[2].units, " LUFS");
    assert_eq!(params[3].units, " dBTP");
    // The target's steps are the presets, in order.
    let names: Vec<String> = (0..=5)
        .map(|i| ok(host.param_display(PARAMS[1].hash, f64::from(i) / 5.0)))
        .collect();
    assert_eq!(
        names,
        [
            "Spotify / YouTube (-14 LUFS)",
            "Apple Music (-16 LUFS)",
            "Podcast (-16 LUFS)",
            "EBU R 128 (-23 LUFS)",
            "ATSC A/85 (-24 LKFS)",
            "Custom"
        ]
    );
}

#[test]
fn state_after_a_host_header_in_the_stream() {
    // Some hosts (Bitwig) hand setState a stream positioned after their own header.
    let mut host = load();
    let defaults = ok(host.get_state());
    ok(host.set_param_normalized(PARAMS[0].hash, 1.0));
    let armed = ok(host.get_state());
    let mut with_header = b"HOST-PRESET-HEADER:".to_vec();
    let offset = with_header.len();
    with_header.extend_from_slice(&defaults);
    ok(host.set_state_at(&with_header, offset));
    assert_eq!(host.param_normalized(PARAMS[0].hash), 0.0);
    assert_eq!(ok(host.get_state()), defaults);
    assert_ne!(armed, defaults);
}

#[test]
fn a_damaged_state_is_refused_and_changes_nothing() {
    let mut host = load();
    ok(host.set_param_normalized(PARAMS[1].hash, 0.4));
    damaged_states_are_refused(
        &mut host,
        vec![
            ("not a state object", b"\"not a state\"".to_vec()),
            ("binary", vec![0xFF; 64]),
        ],
    );
}

#[test]
fn parameters_set_between_runs_while_active_and_state_while_active() {
    // (Recording stays disarmed: an armed instance would write takes to $HOME/Sluice Takes.)
    let mut host = load();
    ok(host.set_layout(2));
    ok(host.activate(96_000.0, MAX_BLOCK));
    let input = test_signal(96_000, 2, 0.5, 5);
    let playing = Some(Transport {
        playing: true,
        position_samples: 0,
    });
    assert_bit_exact(&input, &ok(host.process(&input, &[512], playing)), "run 1");
    ok(host.set_param_normalized(PARAMS[1].hash, 0.8));
    ok(host.set_param_normalized(PARAMS[2].hash, 0.25));
    assert_bit_exact(&input, &ok(host.process(&input, VARYING, playing)), "run 2");
    assert_close(host.param_normalized(PARAMS[1].hash), 0.8, "target");
    assert_close(host.param_normalized(PARAMS[2].hash), 0.25, "custom target");
    let set = ok(host.get_state());
    let json = vst3_state_json(&set);
    assert_eq!(json["params"]["target"]["string"], "atsc_a85", "{json}");
    assert_eq!(json["params"]["cuslufs"]["f32"], -30.0, "{json}");

    let defaults = ok(load().get_state());
    ok(host.set_state(&defaults));
    assert_eq!(host.param_normalized(PARAMS[1].hash), 0.0);
    assert_bit_exact(&input, &ok(host.process(&input, &[64], None)), "run 3");
    assert_eq!(ok(host.get_state()), defaults);
}

#[test]
fn the_diagnostics_hook_reports_this_instance() {
    diagnostics_report_this_instance(&mut load(), |host| {
        // EBU R 128 (-23 LUFS).
        ok(host.set_param_normalized(PARAMS[1].hash, 0.6));
    });
}
