//! What the plugin tests share: the expected parameters, the rates and block patterns, and the
//! nice-plug state format.
#![allow(dead_code)]

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
pub const PARAMS: [ExpectedParam; 4] = [
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
