//! What the plugin tests share: the expected parameters, the rates and block patterns, and the
//! nice-plug state format.
#![allow(dead_code)]

/// The tests every build of the plugin passes whatever its format, declared once: each test
/// binary (`plugin_clap`, `plugin_vst3`) names its [`Host`] and gets these alongside the tests
/// only its format has.
#[allow(unused_macros)] // only the two format test binaries use it
macro_rules! every_format_passes {
    ($host:ty) => {
        fn load_host() -> $host {
            <$host as $crate::common::Host>::load()
        }

        #[test]
        fn mono_pass_through_is_bit_exact_at_every_rate_and_block_size() {
            $crate::common::pass_through(&mut load_host(), 1);
        }

        #[test]
        fn stereo_pass_through_is_bit_exact_at_every_rate_and_block_size() {
            $crate::common::pass_through(&mut load_host(), 2);
        }

        #[test]
        fn surround_5_1_pass_through_is_bit_exact_at_every_rate_and_block_size() {
            $crate::common::pass_through(&mut load_host(), 6);
        }

        #[test]
        fn denormals_signed_zeros_and_full_scale_pass_bit_exact() {
            $crate::common::special_values_pass(load_host);
        }

        #[test]
        fn pass_through_with_and_without_a_transport() {
            $crate::common::pass_through_with_any_transport(&mut load_host());
        }

        #[test]
        fn state_round_trips_and_saving_again_gives_the_same_bytes() {
            $crate::common::state_round_trips::<$host>();
        }

        #[test]
        fn persisted_export_settings_round_trip() {
            $crate::common::persisted_export_settings_round_trip::<$host>();
        }

        #[test]
        fn instances_are_independent() {
            $crate::common::instances_are_independent::<$host>();
        }

        #[test]
        fn a_reference_plays_level_matched_and_a_missing_one_is_reported_after_reload() {
            $crate::common::reference_ab::<$host>();
        }

        #[test]
        fn destroying_the_instance_while_references_load_leaves_no_loader_running() {
            $crate::common::destroy_while_references_load::<$host>();
        }
    };
}
#[allow(unused_imports)]
pub(crate) use every_format_passes;

/// Sample rates every pass-through test runs at.
pub const RATES: [u32; 3] = [44_100, 48_000, 96_000];

/// Block sizes of a host that changes its block size from call to call (1 frame, odd sizes,
/// the activated maximum, one less than it).
pub const VARYING: &[usize] = &[1, 17, 512, 4096, 3, 1000, 64, 4095, 2, 333, 128, 7];

/// The block patterns: fixed 1, 64, 512 and 4096 frames, and [`VARYING`].
pub const PATTERNS: [&[usize]; 5] = [&[1], &[64], &[512], &[4096], VARYING];

/// The maximum block size the hosts activate with.
pub const MAX_BLOCK: u32 = 4096;

/// Seconds of audio per run: less for 1-frame blocks, whose per-call cost dominates in the
/// debug plugin.
pub fn seconds_for(pattern: &[usize]) -> f64 {
    if pattern == [1] { 0.5 } else { 2.0 }
}

/// A parameter as the plugin must publish it.
pub struct ExpectedParam {
    /// The stable string id (`#[id = ...]`), which hosts see hashed.
    pub id: &'static str,
    /// The hashed id hosts store automation and state under. Never changes.
    pub hash: u32,
    pub name: &'static str,
    /// Number of steps (stepped parameters) or `None` (continuous).
    pub steps: Option<u32>,
    /// Default, normalized to [0, 1].
    pub default_normalized: f64,
}

/// Sluice Meter's parameters, in order.
pub const PARAMS: [ExpectedParam; 8] = [
    ExpectedParam {
        id: "recarm",
        hash: 1_212_561_356,
        name: "Record arm",
        steps: Some(1),
        default_normalized: 0.0,
    },
    ExpectedParam {
        id: "target",
        hash: 1_266_577_809,
        name: "Target",
        steps: Some(5),
        default_normalized: 0.0,
    },
    ExpectedParam {
        id: "cuslufs",
        hash: 1_127_699_927,
        name: "Custom target",
        steps: None,
        // -14 LUFS in -40..0
        default_normalized: 26.0 / 40.0,
    },
    ExpectedParam {
        id: "custp",
        hash: 95_028_349,
        name: "Custom ceiling",
        steps: None,
        // -1 dBTP in -12..0
        default_normalized: 11.0 / 12.0,
    },
    ExpectedParam {
        id: "bypass",
        hash: 773_352_680,
        name: "Bypass",
        steps: Some(1),
        default_normalized: 0.0,
    },
    ExpectedParam {
        id: "abref",
        hash: 92_613_842,
        name: "Listen to reference",
        steps: Some(1),
        default_normalized: 0.0,
    },
    ExpectedParam {
        id: "refslot",
        hash: 1_085_481_233,
        name: "Reference",
        // 1..=4
        steps: Some(3),
        default_normalized: 0.0,
    },
    ExpectedParam {
        id: "refsync",
        hash: 1_085_493_678,
        name: "Reference follows transport",
        steps: Some(1),
        default_normalized: 1.0,
    },
];

/// nice-plug's parameter id hash (`hash_param_id`: Rabin, x31, top bit cleared), so a renamed
/// id shows up here as well as in the constants above.
pub fn hash_param_id(id: &str) -> u32 {
    let h = id
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    h & !(1 << 31)
}

/// The JSON inside a nice-plug CLAP state (a little-endian u64 length, then that many bytes of
/// JSON).
pub fn clap_state_json(bytes: &[u8]) -> serde_json::Value {
    assert!(
        bytes.len() >= 8,
        "a CLAP state of {} bytes has no length prefix",
        bytes.len()
    );
    let (len, json) = bytes.split_at(8);
    let len = u64::from_le_bytes(len.try_into().expect("8 bytes"));
    assert_eq!(
        len as usize,
        json.len(),
        "the CLAP state's length prefix says {len}, {} bytes follow",
        json.len()
    );
    serde_json::from_slice(json).unwrap_or_else(|e| {
        panic!(
            "the CLAP state is not JSON ({e}): {}",
            String::from_utf8_lossy(json)
        )
    })
}

/// A CLAP state holding `json`.
pub fn clap_state_bytes(json: &serde_json::Value) -> Vec<u8> {
    let json = serde_json::to_vec(json).expect("JSON");
    let mut out = (json.len() as u64).to_le_bytes().to_vec();
    out.extend(json);
    out
}

/// The JSON of a nice-plug VST3 state (raw JSON).
pub fn vst3_state_json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).unwrap_or_else(|e| {
        panic!(
            "the VST3 state is not JSON ({e}): {}",
            String::from_utf8_lossy(bytes)
        )
    })
}

/// Export settings unlike the defaults in every field.
pub fn custom_export_settings() -> serde_json::Value {
    serde_json::json!({
        "folder": "/srv/takes/Ünïcode folder",
        "format": "flac24",
        "normalize_on_finalize": true,
        "name_prefix": "Show 12 –",
    })
}

/// Panics with the whole error chain.
#[track_caller]
pub fn ok<T>(r: anyhow::Result<T>) -> T {
    r.unwrap_or_else(|e| panic!("{e:#}"))
}

#[test]
fn the_expected_hashes_are_nice_plugs() {
    for p in &PARAMS {
        assert_eq!(hash_param_id(p.id), p.hash, "hash of {:?}", p.id);
    }
}

/// Parameter values travel as f32 inside nice-plug (normalized, then scaled by the step count
/// for CLAP), so they come back within f32 precision, not bit for bit.
#[track_caller]
pub fn assert_close(actual: f64, expected: f64, what: &str) {
    assert!(
        (actual - expected).abs() <= 1e-5,
        "{what}: {actual} is not {expected}"
    );
}

/// What both test hosts offer, so the format-independent tests are written once.
pub trait Host: Sized {
    /// `CLAP` or `VST3`, for messages.
    const FORMAT: &'static str;
    /// A new instance from the format's bundle.
    fn load() -> Self;
    /// Set a parameter by its normalized value (CLAP: the plain value nice-plug publishes).
    fn set_normalized(&mut self, hash: u32, normalized: f64) -> anyhow::Result<()>;
    /// A parameter's normalized value as the plugin reports it.
    fn normalized(&mut self, hash: u32) -> anyhow::Result<f64>;
    /// How often the plugin asked the host to rescan its parameter values, where the format
    /// has such a request (CLAP).
    fn rescans(&self) -> Option<u64> {
        None
    }
    fn layout(&mut self, channels: u32) -> anyhow::Result<()>;
    fn start(&mut self, sample_rate: f64, max_frames: u32) -> anyhow::Result<()>;
    fn stop(&mut self) -> anyhow::Result<()>;
    fn run(
        &mut self,
        input: &[Vec<f32>],
        pattern: &[usize],
        transport: Option<sluice_tests::Transport>,
    ) -> anyhow::Result<Vec<Vec<f32>>>;
    fn save(&mut self) -> anyhow::Result<Vec<u8>>;
    fn restore(&mut self, bytes: &[u8]) -> anyhow::Result<()>;
    /// Processes at most `speed` times real time from now on (`None`: as fast as it goes).
    fn set_pace(&mut self, speed: Option<f64>);
    /// Checks of the format's own after a run (CLAP: the plugin asked to keep being processed).
    fn after_run(&self, _what: &str) {}
    /// What the plugin's diagnostics export reports for every live instance in its library.
    fn diagnostics(&self) -> Option<serde_json::Value>;
    /// The JSON inside a saved state of this format.
    fn state_json(bytes: &[u8]) -> serde_json::Value;
    /// A state of this format holding `json`.
    fn state_bytes(json: &serde_json::Value) -> Vec<u8>;
}

fn param(hash: u32) -> &'static ExpectedParam {
    PARAMS
        .iter()
        .find(|p| p.hash == hash)
        .expect("one of Sluice Meter's parameters")
}

/// A CLAP value for a normalized one: nice-plug publishes stepped parameters as `0..=steps`.
pub fn clap_value(p: &ExpectedParam, normalized: f64) -> f64 {
    normalized * f64::from(p.steps.unwrap_or(1))
}

impl Host for sluice_tests::clap_host::ClapHost {
    const FORMAT: &'static str = "CLAP";
    fn load() -> Self {
        let path = ok(sluice_tests::bundles::clap());
        ok(Self::load(&path, sluice_tests::bundles::CLAP_ID))
    }
    fn set_normalized(&mut self, hash: u32, normalized: f64) -> anyhow::Result<()> {
        self.set_param(hash, clap_value(param(hash), normalized))
    }
    fn normalized(&mut self, hash: u32) -> anyhow::Result<f64> {
        Ok(self.param_value(hash)? / f64::from(param(hash).steps.unwrap_or(1)))
    }
    fn rescans(&self) -> Option<u64> {
        Some(self.callbacks().param_rescans as u64)
    }
    fn layout(&mut self, channels: u32) -> anyhow::Result<()> {
        self.select_layout(channels)
    }
    fn start(&mut self, sample_rate: f64, max_frames: u32) -> anyhow::Result<()> {
        self.activate(sample_rate, max_frames)
    }
    fn stop(&mut self) -> anyhow::Result<()> {
        self.deactivate();
        Ok(())
    }
    fn run(
        &mut self,
        input: &[Vec<f32>],
        pattern: &[usize],
        transport: Option<sluice_tests::Transport>,
    ) -> anyhow::Result<Vec<Vec<f32>>> {
        self.process(input, pattern, transport)
    }
    fn set_pace(&mut self, speed: Option<f64>) {
        sluice_tests::clap_host::ClapHost::set_pace(self, speed);
    }
    fn save(&mut self) -> anyhow::Result<Vec<u8>> {
        self.save_state()
    }
    fn restore(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        self.load_state(bytes)
    }
    fn diagnostics(&self) -> Option<serde_json::Value> {
        sluice_tests::clap_host::ClapHost::diagnostics(self)
    }
    fn state_json(bytes: &[u8]) -> serde_json::Value {
        clap_state_json(bytes)
    }
    fn state_bytes(json: &serde_json::Value) -> Vec<u8> {
        clap_state_bytes(json)
    }
    fn after_run(&self, what: &str) {
        assert_eq!(
            self.last_status(),
            Some(sluice_tests::clap_host::ProcessStatus::Continue),
            "{what}: the plugin must ask to keep being processed (KeepAlive)"
        );
    }
}

impl Host for sluice_tests::vst3_host::Vst3Host {
    const FORMAT: &'static str = "VST3";
    fn load() -> Self {
        let bundle = ok(sluice_tests::bundles::vst3());
        ok(Self::load(&bundle, sluice_tests::bundles::VST3_CLASS_ID))
    }
    fn set_normalized(&mut self, hash: u32, normalized: f64) -> anyhow::Result<()> {
        self.set_param_normalized(hash, normalized)
    }
    fn normalized(&mut self, hash: u32) -> anyhow::Result<f64> {
        Ok(self.param_normalized(hash))
    }
    fn layout(&mut self, channels: u32) -> anyhow::Result<()> {
        self.set_layout(channels)
    }
    fn start(&mut self, sample_rate: f64, max_frames: u32) -> anyhow::Result<()> {
        self.activate(sample_rate, max_frames)
    }
    fn stop(&mut self) -> anyhow::Result<()> {
        self.deactivate()
    }
    fn run(
        &mut self,
        input: &[Vec<f32>],
        pattern: &[usize],
        transport: Option<sluice_tests::Transport>,
    ) -> anyhow::Result<Vec<Vec<f32>>> {
        self.process(input, pattern, transport)
    }
    fn set_pace(&mut self, speed: Option<f64>) {
        sluice_tests::vst3_host::Vst3Host::set_pace(self, speed);
    }
    fn save(&mut self) -> anyhow::Result<Vec<u8>> {
        self.get_state()
    }
    fn restore(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        self.set_state(bytes)
    }
    fn diagnostics(&self) -> Option<serde_json::Value> {
        sluice_tests::vst3_host::Vst3Host::diagnostics(self)
    }
    fn state_json(bytes: &[u8]) -> serde_json::Value {
        vst3_state_json(bytes)
    }
    fn state_bytes(json: &serde_json::Value) -> Vec<u8> {
        serde_json::to_vec(json).expect("JSON")
    }
}

/// Every rate and block pattern on one instance: activate, run each pattern (its own
/// start/stop of processing), deactivate; the output must be the input, bit for bit. The
/// transport alternates: playing, none, stopped.
pub fn pass_through<H: Host>(host: &mut H, channels: u32) {
    use sluice_tests::Transport;
    use sluice_tests::audio::{assert_bit_exact, test_signal};
    ok(host.layout(channels));
    for (r, &rate) in RATES.iter().enumerate() {
        ok(host.start(f64::from(rate), MAX_BLOCK));
        for (k, pattern) in PATTERNS.iter().enumerate() {
            let input = test_signal(
                rate,
                channels as usize,
                seconds_for(pattern),
                (r * 10 + k) as u64,
            );
            let transport = match k % 3 {
                0 => Some(Transport {
                    playing: true,
                    position_samples: 0,
                }),
                1 => None,
                _ => Some(Transport {
                    playing: false,
                    position_samples: 12_345,
                }),
            };
            let what = format!(
                "{} {channels} ch, {rate} Hz, blocks {pattern:?}, transport {transport:?}",
                H::FORMAT
            );
            let output = ok(host.run(&input, pattern, transport));
            assert_bit_exact(&input, &output, &what);
            host.after_run(&what);
        }
        ok(host.stop());
    }
}

/// Subnormals, signed zeros and full-scale values come back bit for bit.
pub fn special_values_pass<H: Host>(mut load: impl FnMut() -> H) {
    use sluice_tests::audio::{assert_bit_exact, special_only};
    for channels in [1, 2] {
        let mut host = load();
        ok(host.layout(channels));
        ok(host.start(48_000.0, MAX_BLOCK));
        let input = special_only(channels as usize, 20_000);
        for pattern in [&[1usize][..], &[7], VARYING] {
            let output = ok(host.run(&input, pattern, None));
            assert_bit_exact(
                &input,
                &output,
                &format!("{} special values, {channels} ch, {pattern:?}", H::FORMAT),
            );
        }
    }
}

/// Pass-through with no transport, playing, stopped, ten hours in, and in a pre-roll.
pub fn pass_through_with_any_transport<H: Host>(host: &mut H) {
    use sluice_tests::Transport;
    use sluice_tests::audio::{assert_bit_exact, test_signal};
    ok(host.layout(2));
    ok(host.start(48_000.0, MAX_BLOCK));
    let input = test_signal(48_000, 2, 1.0, 99);
    let at = |playing, position_samples| {
        Some(Transport {
            playing,
            position_samples,
        })
    };
    for t in [
        None,
        at(true, 0),
        at(false, 0),
        at(true, 10 * 3600 * 48_000),
        at(true, -4_800),
        None,
    ] {
        let output = ok(host.run(&input, VARYING, t));
        assert_bit_exact(&input, &output, &format!("{} transport {t:?}", H::FORMAT));
    }
}

/// Each of `damaged` (with an empty and a truncated copy of the current state added) is
/// refused, and the state saved afterwards is the one before.
pub fn damaged_states_are_refused<H: Host>(host: &mut H, damaged: Vec<(&str, Vec<u8>)>) {
    let before = ok(host.save());
    let mut truncated = before.clone();
    truncated.truncate(before.len() / 2);
    for (what, bytes) in [("empty", Vec::new()), ("truncated", truncated)]
        .into_iter()
        .chain(damaged)
    {
        assert!(host.restore(&bytes).is_err(), "a {what} state was accepted");
        assert_eq!(
            ok(host.save()),
            before,
            "a refused {what} state changed the plugin"
        );
    }
}

/// The diagnostics export reports this instance, after 1 s of a 0.5 sine at 32 kHz with the
/// target set to EBU R 128 by `set_ebu_target` (the format's own way, while active). No other
/// test of a binary runs at 32 kHz, so the instance at that rate is this one even while other
/// tests run in parallel in the same process (and library).
pub fn diagnostics_report_this_instance<H: Host>(
    host: &mut H,
    set_ebu_target: impl FnOnce(&mut H),
) {
    use sluice_tests::audio::assert_bit_exact;
    use sluice_tests::bundles;
    ok(host.layout(1));
    ok(host.start(32_000.0, 512));
    set_ebu_target(host);
    let input = vec![sluice_core::signal::sine(32_000, 997.0, 0.5, 32_000)];
    let output = ok(host.run(&input, &[512], None));
    assert_bit_exact(&input, &output, "997 Hz at 32 kHz");
    let all = host.diagnostics().unwrap_or_else(|| {
        panic!(
            "{} does not export {}",
            bundles::NAME,
            sluice_tests::diagnostics::SYMBOL
        )
    });
    let all = all.as_array().expect("the diagnostics are a JSON array");
    let ours: Vec<&serde_json::Value> = all
        .iter()
        .filter(|i| i["meters"]["sample_rate"].as_f64() == Some(32_000.0))
        .collect();
    assert_eq!(ours.len(), 1, "one instance at 32 kHz among {}", all.len());
    let m = &ours[0]["meters"];
    assert_eq!(m["channels"], 1, "{m}");
    assert!(
        m["steps"].as_u64().unwrap_or(0) > 0,
        "meter steps after 1 s: {m}"
    );
    let peak = m["sample_peak_dbfs"].as_f64().unwrap_or(f64::NAN);
    assert!(
        (peak - 20.0 * 0.5f64.log10()).abs() < 0.1,
        "sample peak of a 0.5 sine: {peak} dBFS"
    );
    assert_eq!(
        m["target_lufs"].as_f64(),
        Some(-23.0),
        "the target set by the host"
    );
    assert_eq!(m["record"]["recording"], false, "not armed, not recording");
    assert_eq!(m["record"]["takes"], 0, "no takes");
}

/// A state saved, changed, restored and saved again gives the same bytes, in this instance and
/// in another; every parameter is in it, the enum by its variant id.
pub fn state_round_trips<H: Host>() {
    let mut host = H::load();
    let defaults = ok(host.save());
    let json = H::state_json(&defaults);
    assert_eq!(json["version"], env!("CARGO_PKG_VERSION"));
    for p in &PARAMS {
        assert!(
            json["params"].get(p.id).is_some(),
            "{} missing from the state: {json}",
            p.id
        );
    }
    assert!(
        json["fields"]["export"].is_string(),
        "persisted export settings: {json}"
    );

    // Change every parameter (while inactive).
    let changed = [(0, 1.0), (1, 0.6), (2, 0.25), (3, 0.5)];
    for (i, v) in changed {
        ok(host.set_normalized(PARAMS[i].hash, v));
    }
    for (i, v) in changed {
        assert_close(
            ok(host.normalized(PARAMS[i].hash)),
            v,
            &format!("{} {} after setting it", H::FORMAT, PARAMS[i].id),
        );
    }
    let modified = ok(host.save());
    assert_ne!(modified, defaults);
    let json = H::state_json(&modified);
    assert_eq!(json["params"]["recarm"]["bool"], true, "{json}");
    assert_eq!(
        json["params"]["target"]["string"], "ebu_r128",
        "enum stored by variant id: {json}"
    );
    assert_eq!(json["params"]["cuslufs"]["f32"], -30.0, "{json}");
    assert_eq!(json["params"]["custp"]["f32"], -6.0, "{json}");

    // Back to the defaults, and forth again; each save after a load gives the same bytes.
    let rescans = host.rescans();
    ok(host.restore(&defaults));
    if let Some(before) = rescans {
        assert!(
            host.rescans().is_some_and(|now| now > before),
            "after a state load the plugin asks the host to rescan parameter values"
        );
    }
    for p in &PARAMS {
        assert_close(
            ok(host.normalized(p.hash)),
            p.default_normalized,
            &format!("{} {} back to default", H::FORMAT, p.id),
        );
    }
    assert_eq!(
        ok(host.save()),
        defaults,
        "saved again after loading the defaults"
    );
    ok(host.restore(&modified));
    for (i, v) in changed {
        assert_close(
            ok(host.normalized(PARAMS[i].hash)),
            v,
            &format!("{} {} came back", H::FORMAT, PARAMS[i].id),
        );
    }
    assert_eq!(
        ok(host.save()),
        modified,
        "saved again after loading the modified state"
    );

    // Another instance restores the same state to the same bytes.
    let mut other = H::load();
    ok(other.restore(&modified));
    assert_eq!(ok(other.save()), modified, "another instance's save");
}

/// The export settings kept in the state come back as they were, reproducibly.
pub fn persisted_export_settings_round_trip<H: Host>() {
    let mut host = H::load();
    let mut json = H::state_json(&ok(host.save()));
    let export = custom_export_settings();
    json["fields"]["export"] = serde_json::Value::String(export.to_string());
    ok(host.restore(&H::state_bytes(&json)));
    let saved = ok(host.save());
    let back = H::state_json(&saved);
    let back_export: serde_json::Value = serde_json::from_str(
        back["fields"]["export"]
            .as_str()
            .expect("export is a JSON string"),
    )
    .expect("export holds JSON");
    assert_eq!(back_export, export, "the export settings came back");
    assert_eq!(back["params"], json["params"]);
    ok(host.restore(&saved));
    assert_eq!(ok(host.save()), saved, "reproducible");
}

/// Two instances with different layouts, rates and parameters do not touch each other.
pub fn instances_are_independent<H: Host>() {
    use sluice_tests::audio::{assert_bit_exact, test_signal};
    let mut a = H::load();
    let mut b = H::load();
    ok(a.layout(1));
    ok(b.layout(2));
    ok(a.start(44_100.0, MAX_BLOCK));
    ok(b.start(96_000.0, 256));
    ok(a.set_normalized(PARAMS[1].hash, 0.6));
    let ia = test_signal(44_100, 1, 0.5, 1);
    let ib = test_signal(96_000, 2, 0.5, 2);
    assert_bit_exact(&ia, &ok(a.run(&ia, VARYING, None)), "instance a");
    assert_bit_exact(&ib, &ok(b.run(&ib, &[256, 13], None)), "instance b");
    assert_close(ok(a.normalized(PARAMS[1].hash)), 0.6, "a's target");
    assert_close(
        ok(b.normalized(PARAMS[1].hash)),
        0.0,
        "b's target is not changed by a's",
    );
}

/// The integrated loudness of `planes` at `rate` (the core's meter).
pub fn integrated_lufs(rate: u32, planes: &[Vec<f32>]) -> f64 {
    let mut m = sluice_core::analysis::loudness::LoudnessMeter::new(rate, vec![1.0; planes.len()]);
    let refs: Vec<&[f32]> = planes.iter().map(Vec::as_slice).collect();
    m.feed(&refs);
    m.summary(None).integrated_lufs.expect("a loudness")
}

/// This instance's reference slots in the diagnostics: the one whose first slot names `path`.
fn reference_slots<H: Host>(host: &H, path: &str) -> Option<serde_json::Value> {
    let all = host.diagnostics()?;
    all.as_array()?
        .iter()
        .map(|i| i["meters"]["references"].clone())
        .find(|r| r["slots"][0]["path"] == path)
}

fn wait_for_slot<H: Host>(host: &H, path: &str, state: &str) -> serde_json::Value {
    let t = std::time::Instant::now();
    loop {
        if let Some(r) = reference_slots(host, path)
            && r["slots"][0]["state"] == state
        {
            return r;
        }
        assert!(
            t.elapsed() < std::time::Duration::from_secs(60),
            "{}: slot 1 never became {state}: {:?}",
            H::FORMAT,
            reference_slots(host, path)
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Reference A/B through the host: a state naming a reference 6 dB louder than the mix, with
/// the switch on Ref, plays it at the mix's loudness (one whole loop of it within 0.5 LU);
/// the state saved afterwards still names it; restored into a new instance after the file
/// was deleted, the slot reports the missing file by name, and the mix passes untouched.
pub fn reference_ab<H: Host>() {
    let rate = 48_000u32;
    let dir = tempfile::tempdir().expect("a temporary folder");
    let path = dir.path().join("reference.wav");
    let seconds = 6usize;
    let reference = sluice_core::signal::programme(44_100, 2, 44_100 * seconds, 21);
    write_float_wav(&path, 44_100, &reference);
    let path_s = path.display().to_string();
    let g = 10f32.powf(-6.0 / 20.0);
    let mix: Vec<Vec<f32>> =
        sluice_core::signal::programme(rate, 2, rate as usize * 2 * seconds, 4)
            .into_iter()
            .map(|p| p.into_iter().map(|v| v * g).collect())
            .collect();

    let mut host = H::load();
    let mut json = H::state_json(&ok(host.save()));
    json["fields"]["references"] = serde_json::Value::String(
        serde_json::json!({"paths": [path_s, "", "", ""], "sync_to_transport": false}).to_string(),
    );
    json["params"]["abref"] = serde_json::json!({"bool": true});
    json["params"]["refsync"] = serde_json::json!({"bool": false});
    ok(host.restore(&H::state_bytes(&json)));
    ok(host.layout(2));
    ok(host.start(f64::from(rate), MAX_BLOCK));
    let r = wait_for_slot(&host, &path_s, "ready");
    let ref_lufs = r["slots"][0]["figures"]["integrated_lufs"]
        .as_f64()
        .expect("figures");
    let out = ok(host.run(&mix, &[512], None));
    // The second loop of the reference (its first began before the mix had a loudness).
    let second: Vec<Vec<f32>> = out
        .iter()
        .map(|p| p[rate as usize * seconds..].to_vec())
        .collect();
    let played = integrated_lufs(rate, &second);
    let mix_lufs = integrated_lufs(rate, &mix);
    eprintln!(
        "{}: reference {ref_lufs:.2} LUFS, mix {mix_lufs:.2} LUFS, played {played:.2} LUFS",
        H::FORMAT
    );
    assert!(
        (ref_lufs - mix_lufs - 6.0).abs() < 1.5,
        "a reference about 6 dB louder"
    );
    assert!(
        (played - mix_lufs).abs() <= 0.5,
        "{}: played at {played:.2} LUFS, the mix is {mix_lufs:.2}",
        H::FORMAT
    );
    // Its own meters measure what was heard: the output, measured offline (its first
    // 400 ms played at the target's loudness, before the mix had one).
    let r = reference_slots(&host, &path_s).expect("the instance");
    let heard = r["playing_lufs"][2]
        .as_f64()
        .expect("an integrated loudness of what was heard");
    let output = integrated_lufs(rate, &out);
    assert!(
        (heard - output).abs() <= 0.1,
        "{}: the reference's meter says {heard:.2} LUFS, the output is {output:.2}",
        H::FORMAT
    );
    let saved = H::state_json(&ok(host.save()));
    let fields: serde_json::Value = serde_json::from_str(
        saved["fields"]["references"]
            .as_str()
            .expect("the references in the state"),
    )
    .expect("JSON");
    assert_eq!(fields["paths"][0], path_s.as_str());
    assert_eq!(saved["params"]["abref"]["bool"], true, "{saved}");
    ok(host.stop());
    drop(host);

    // Reloaded after the file was deleted: reported, not fatal; the mix passes.
    std::fs::remove_file(&path).expect("deleted");
    let mut host = H::load();
    ok(host.restore(&H::state_bytes(&saved)));
    ok(host.layout(2));
    ok(host.start(f64::from(rate), MAX_BLOCK));
    let r = wait_for_slot(&host, &path_s, "error");
    let e = r["slots"][0]["error"].as_str().unwrap_or("");
    assert!(e.contains("reference.wav"), "the error names the file: {e}");
    let head: Vec<Vec<f32>> = mix.iter().map(|p| p[..rate as usize].to_vec()).collect();
    assert_eq!(
        ok(host.run(&head, &[512], None)),
        head,
        "the mix passes untouched"
    );
}

/// Writes planar audio as a 32-bit float WAV.
pub fn write_float_wav(path: &std::path::Path, rate: u32, planes: &[Vec<f32>]) {
    let spec = hound::WavSpec {
        channels: planes.len() as u16,
        sample_rate: rate,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let mut w = hound::WavWriter::create(path, spec).expect("a WAV");
    for i in 0..planes[0].len() {
        for p in planes {
            w.write_sample(p[i]).expect("written");
        }
    }
    w.finalize().expect("finished");
}

/// Threads of this process whose name starts with `prefix` (Linux shows 15 characters).
fn threads_named(prefix: &str) -> usize {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    dir.filter_map(Result::ok)
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm"))
                .is_ok_and(|name| name.trim_end().starts_with(prefix))
        })
        .count()
}

/// A host may unload the plugin's library as soon as an instance is destroyed, so no thread
/// may still run the plugin's code then. An instance whose state names four long references
/// is activated (four loads start) and destroyed at once: destroying takes well under the time
/// the loads need, and no loader thread is left.
pub fn destroy_while_references_load<H: Host>() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let path = dir.path().join("long.wav");
    // Six minutes of mono at 44.1 kHz (64 MB): seconds to decode, measure and resample.
    let tone: Vec<f32> = (0..44_100 * 360)
        .map(|i| 0.25 * (std::f32::consts::TAU * 441.0 * i as f32 / 44_100.0).sin())
        .collect();
    write_float_wav(&path, 44_100, &[tone]);
    let path_s = path.display().to_string();
    let loader = "sluice-referenc";
    let before = threads_named(loader);
    for round in 1..=3 {
        let mut host = H::load();
        let mut json = H::state_json(&ok(host.save()));
        json["fields"]["references"] = serde_json::Value::String(
            serde_json::json!({"paths": [path_s, path_s, path_s, path_s]}).to_string(),
        );
        ok(host.restore(&H::state_bytes(&json)));
        ok(host.layout(2));
        ok(host.start(48_000.0, MAX_BLOCK));
        let t = std::time::Instant::now();
        while threads_named(loader) < before + 4 {
            assert!(
                t.elapsed() < std::time::Duration::from_secs(10),
                "{}: round {round}: the four loads never started",
                H::FORMAT
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        std::thread::sleep(std::time::Duration::from_millis(50 * round));
        let r = reference_slots(&host, &path_s).expect("the instance");
        assert_eq!(
            r["slots"][0]["state"],
            "loading",
            "{}: round {round}: the load ended before the instance was destroyed, nothing shown",
            H::FORMAT
        );
        ok(host.stop());
        let t = std::time::Instant::now();
        drop(host);
        let took = t.elapsed();
        let left = threads_named(loader) - before;
        eprintln!(
            "{}: round {round}: destroyed in {:.1} ms, {left} loader(s) left",
            H::FORMAT,
            took.as_secs_f64() * 1e3
        );
        assert_eq!(
            left,
            0,
            "{}: round {round}: loader threads still running after destroy",
            H::FORMAT
        );
        assert!(
            took < std::time::Duration::from_secs(1),
            "{}: round {round}: destroying took {took:?}: the loads were waited for, not stopped",
            H::FORMAT
        );
    }
}
