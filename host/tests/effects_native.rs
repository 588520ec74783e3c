//! Each built-in effect gives the same output natively and in wasm (issue 6: within 1e-6).
//!
//! The native side is the effect's own crate compiled for this machine and driven by the SDK's
//! harness; the wasm side is the module built into `sluice`, run by the host's runtime
//! (wasmtime, with the sandbox's limits) exactly as a pipeline runs it. Both get the same
//! programme-like stereo signal, in the same uneven blocks, with parameters changed halfway
//! (so smoothing and glides are compared too), and must agree sample for sample.

use sluice_effect_sdk::Effect;
use sluice_effect_sdk::native::{self, Instance as Native};
use sluice_host::effects::{Catalog, Instance, Limits, Runtime};

const RATE: u32 = 48_000;
const MAX_FRAMES: usize = 1024;
/// Block lengths taken in turn: a power of two, a single frame, odd sizes, the largest.
const BLOCKS: &[usize] = &[512, 1, 300, 1024, 17, 777];
const TOLERANCE: f32 = 1e-6;

struct Case {
    effect: &'static str,
    /// Parameters set before the first half, then before the second.
    first: &'static [(&'static str, f32)],
    then: &'static [(&'static str, f32)],
}

const CASES: &[Case] = &[
    Case {
        effect: "gain",
        first: &[("gain_db", -6.0), ("pan", 0.4)],
        then: &[("gain_db", 9.0), ("pan", -0.7), ("smoothing_ms", 5.0)],
    },
    Case {
        effect: "eq",
        // Choice indices: 4 peaking, 6 highshelf, 0 lowpass.
        first: &[("type", 6.0), ("freq_hz", 3000.0), ("gain_db", 6.0)],
        then: &[("type", 0.0), ("freq_hz", 900.0), ("q", 2.5)],
    },
    Case {
        effect: "highpass",
        first: &[("cutoff_hz", 150.0)],
        then: &[("cutoff_hz", 700.0)],
    },
    Case {
        effect: "compressor",
        first: &[("threshold_db", -24.0), ("ratio", 6.0), ("attack_ms", 2.0)],
        then: &[("knee_db", 0.0), ("makeup_db", 6.0), ("release_ms", 40.0)],
    },
    Case {
        effect: "limiter",
        first: &[("ceiling_dbtp", -3.0)],
        then: &[
            ("ceiling_dbtp", -6.0),
            ("lookahead_ms", 5.0),
            ("release_ms", 30.0),
            ("detection", 1.0),
        ],
    },
    Case {
        effect: "reverb",
        first: &[("room_size", 0.8), ("mix", 0.5)],
        then: &[("damping", 0.1), ("width", 0.4), ("room_size", 0.3)],
    },
    Case {
        effect: "delay",
        first: &[("time_ms", 120.0), ("feedback", 0.6)],
        then: &[("time_ms", 333.0), ("mix", 0.8)],
    },
    Case {
        effect: "gate",
        first: &[("threshold_db", -30.0), ("hold_ms", 10.0)],
        then: &[
            ("range_db", -20.0),
            ("attack_ms", 5.0),
            ("release_ms", 20.0),
        ],
    },
    Case {
        effect: "gate",
        // The expander, linked; then each channel on its own with another ratio and times.
        first: &[("mode", 1.0), ("threshold_db", -30.0), ("ratio", 4.0)],
        then: &[
            ("link", 1.0),
            ("ratio", 20.0),
            ("attack_ms", 0.0),
            ("release_ms", 30.0),
        ],
    },
    Case {
        effect: "dehum",
        // Choice 1: 50 Hz (notches from the first frame); then 60 Hz (found again).
        first: &[("mains", 1.0), ("harmonics", 6.0), ("width_hz", 2.0)],
        then: &[("mains", 2.0), ("width_hz", 1.0), ("harmonics", 12.0)],
    },
    Case {
        effect: "deess",
        first: &[("threshold_db", -30.0), ("range_db", 9.0)],
        then: &[
            ("frequency_hz", 3000.0),
            ("release_ms", 10.0),
            ("range_db", 4.0),
        ],
    },
    Case {
        effect: "denoise",
        first: &[("reduction_db", 15.0)],
        then: &[
            ("reduction_db", 25.0),
            ("smoothing", 0.9),
            ("sensitivity_db", 3.0),
        ],
    },
    Case {
        effect: "leveler",
        first: &[("target_db", -14.0), ("lookahead_ms", 300.0)],
        // Then music held (choice 1) rather than set to its gain.
        then: &[
            ("target_db", -26.0),
            ("drift_db_s", 5.0),
            ("window_s", 1.0),
            ("music", 1.0),
            ("music_gain_db", -3.0),
        ],
    },
    Case {
        effect: "invert",
        // Choice 0: all channels; then 2: the right one only.
        first: &[("channels", 0.0)],
        then: &[("channels", 2.0)],
    },
    Case {
        effect: "clip",
        // Choice 0: hard, then 1: soft.
        first: &[("threshold_db", -6.0)],
        then: &[("threshold_db", -12.0), ("mode", 1.0)],
    },
    Case {
        effect: "distortion",
        // Curves 0 (tanh), then 4 (fold), with the drive, output and mix gliding.
        first: &[("drive_db", 18.0), ("mix", 0.7)],
        then: &[
            ("curve", 4.0),
            ("drive_db", 6.0),
            ("output_db", -6.0),
            ("mix", 1.0),
        ],
    },
    Case {
        effect: "bitcrush",
        first: &[("bit_depth", 6.5)],
        then: &[("bit_depth", 10.0), ("downsample", 5.0)],
    },
    Case {
        effect: "chorus",
        first: &[("rate_hz", 1.5), ("depth_ms", 3.0), ("voices", 3.0)],
        then: &[("centre_ms", 12.0), ("feedback", 0.4), ("mix", 0.8)],
    },
    Case {
        effect: "flanger",
        first: &[("rate_hz", 0.5), ("feedback", 0.7)],
        then: &[("centre_ms", 4.0), ("feedback", -0.6), ("depth_ms", 3.0)],
    },
    Case {
        effect: "ladder",
        // Mode 0 (lpf24), then 5 (bpf12) with drive, the cutoff gliding.
        first: &[("cutoff_hz", 800.0), ("resonance", 0.7)],
        then: &[("mode", 5.0), ("cutoff_hz", 3000.0), ("drive_db", 12.0)],
    },
    Case {
        effect: "pitch",
        // A fifth up, then a fourth down mid-stream.
        first: &[("semitones", 7.0)],
        then: &[("semitones", -5.0)],
    },
    Case {
        effect: "convolve",
        // A stereo room (data_for), all wet, then half dry with the wet 6 dB down.
        first: &[("mix", 1.0)],
        then: &[("mix", 0.5), ("gain_db", -6.0)],
    },
    Case {
        effect: "phaser",
        first: &[("rate_hz", 0.8), ("depth_oct", 2.0)],
        then: &[("stages", 10.0), ("feedback", 0.6), ("centre_hz", 600.0)],
    },
];

/// Six seconds of stereo programme: two seconds as generated, two at −50 dB (for the gate),
/// two driven 6 dB hot (for the compressor and limiter).
fn signal() -> Vec<Vec<f32>> {
    let n = 6 * RATE as usize;
    let mut audio = sluice_core::signal::programme(RATE, 2, n, 6);
    for ch in &mut audio {
        for (i, s) in ch.iter_mut().enumerate() {
            *s *= match i * 3 / n {
                0 => 1.0,
                1 => 0.003,
                _ => 2.0,
            };
        }
    }
    audio
}

fn halves(audio: &[Vec<f32>]) -> [Vec<Vec<f32>>; 2] {
    let mid = audio[0].len() / 2 + 123;
    [
        audio.iter().map(|c| c[..mid].to_vec()).collect(),
        audio.iter().map(|c| c[mid..].to_vec()).collect(),
    ]
}

fn join([a, b]: [Vec<Vec<f32>>; 2]) -> Vec<Vec<f32>> {
    a.into_iter().zip(b).map(|(x, y)| [x, y].concat()).collect()
}

/// What an effect takes for its data slots: `convolve` a 0.3 s stereo room (decaying noise).
fn data_for(effect: &str) -> Vec<Vec<Vec<f32>>> {
    match effect {
        "convolve" => vec![
            (0..2)
                .map(|c| {
                    let n = sluice_core::signal::noise(40 + c, 0.5, RATE as usize * 3 / 10);
                    n.iter()
                        .enumerate()
                        .map(|(i, v)| v * (-(i as f32) / (0.05 * RATE as f32)).exp())
                        .collect()
                })
                .collect(),
        ],
        _ => Vec::new(),
    }
}

/// The effect's crate compiled natively, through the SDK's harness. Returns the output and the
/// reported latency.
fn run_native<'m, E: Effect<'m>>(
    memory: &'m mut [f32],
    case: &Case,
    audio: &[Vec<f32>],
) -> (Vec<Vec<f32>>, usize) {
    let data = data_for(case.effect);
    let slots: Vec<Option<&[Vec<f32>]>> = data.iter().map(|d| Some(d.as_slice())).collect();
    let mut fx = Native::<E>::with_data(memory, RATE, audio.len(), MAX_FRAMES, &slots)
        .unwrap_or_else(|e| panic!("{}: native init: {e:?}", case.effect));
    let mut parts = halves(audio);
    for (part, params) in parts.iter_mut().zip([case.first, case.then]) {
        for &(id, v) in params {
            fx.set(id, v);
        }
        fx.run_blocks(part, BLOCKS);
    }
    let latency = fx.latency();
    (join(parts), latency)
}

/// The built-in wasm module through the host's runtime.
fn run_wasm(catalog: &Catalog, case: &Case, audio: &[Vec<f32>]) -> (Vec<Vec<f32>>, usize) {
    let effect = &catalog
        .get(case.effect)
        .unwrap_or_else(|| panic!("no built-in effect {}", case.effect))
        .effect;
    let data = data_for(case.effect);
    let slots: Vec<&[Vec<f32>]> = data.iter().map(Vec::as_slice).collect();
    let mut fx = Instance::with_data(
        catalog.runtime(),
        effect,
        RATE,
        audio.len(),
        MAX_FRAMES,
        Limits::default(),
        &slots,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mut parts = halves(audio);
    for (part, params) in parts.iter_mut().zip([case.first, case.then]) {
        for &(id, v) in params {
            let (index, _) = effect
                .descriptor
                .param(id)
                .unwrap_or_else(|| panic!("{}: no parameter {id}", case.effect));
            fx.set_param(index, f64::from(v))
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let len = part[0].len();
        let (mut at, mut k) = (0, 0);
        while at < len {
            let n = BLOCKS[k % BLOCKS.len()].min(len - at);
            k += 1;
            let mut planes: Vec<&mut [f32]> = part.iter_mut().map(|c| &mut c[at..at + n]).collect();
            fx.process(&mut planes).unwrap_or_else(|e| panic!("{e}"));
            at += n;
        }
    }
    let latency = fx.latency().unwrap_or_else(|e| panic!("{e}"));
    (join(parts), latency)
}

fn max_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> (f32, usize, usize) {
    let mut worst = (0f32, 0, 0);
    for (ch, (x, y)) in a.iter().zip(b).enumerate() {
        assert_eq!(x.len(), y.len());
        for (i, (p, q)) in x.iter().zip(y).enumerate() {
            let d = (p - q).abs();
            if d > worst.0 || d.is_nan() {
                worst = (d, ch, i);
            }
        }
    }
    worst
}

#[test]
fn every_builtin_effect_matches_its_native_build() {
    let catalog = Catalog::load(Runtime::new(None).expect("the engine"), None);
    assert!(catalog.refused.is_empty(), "{:?}", catalog.refused);
    let audio = signal();
    let mut memory = native::memory();
    let mut checked = Vec::new();
    for case in CASES {
        memory.fill(0.0);
        let (native, native_latency) = match case.effect {
            "gain" => run_native::<gain::Gain>(&mut memory, case, &audio),
            "eq" => run_native::<eq::Eq>(&mut memory, case, &audio),
            "highpass" => run_native::<highpass::Highpass>(&mut memory, case, &audio),
            "compressor" => run_native::<compressor::Compressor>(&mut memory, case, &audio),
            "limiter" => run_native::<limiter::Limiter>(&mut memory, case, &audio),
            "reverb" => run_native::<reverb::Reverb>(&mut memory, case, &audio),
            "delay" => run_native::<delay::Delay>(&mut memory, case, &audio),
            "gate" => run_native::<gate::Gate>(&mut memory, case, &audio),
            "dehum" => run_native::<dehum::Dehum>(&mut memory, case, &audio),
            "deess" => run_native::<deess::Deess>(&mut memory, case, &audio),
            "denoise" => run_native::<denoise::Denoise>(&mut memory, case, &audio),
            "leveler" => run_native::<leveler::Leveler>(&mut memory, case, &audio),
            "invert" => run_native::<invert::Invert>(&mut memory, case, &audio),
            "clip" => run_native::<clip::Clip>(&mut memory, case, &audio),
            "distortion" => run_native::<distortion::Distortion>(&mut memory, case, &audio),
            "bitcrush" => run_native::<bitcrush::Bitcrush>(&mut memory, case, &audio),
            "chorus" => run_native::<chorus::Chorus>(&mut memory, case, &audio),
            "flanger" => run_native::<flanger::Flanger>(&mut memory, case, &audio),
            "phaser" => run_native::<phaser::Phaser>(&mut memory, case, &audio),
            "ladder" => run_native::<ladder::Ladder>(&mut memory, case, &audio),
            "pitch" => run_native::<pitch::Pitch>(&mut memory, case, &audio),
            "convolve" => run_native::<convolve::Convolve>(&mut memory, case, &audio),
            other => panic!("no native build listed for {other}"),
        };
        let (wasm, wasm_latency) = run_wasm(&catalog, case, &audio);
        // The comparison means something only if the effect changed the signal.
        let (changed, _, _) = max_diff(&native, &audio);
        assert!(changed > 1e-3, "{}: output equals input", case.effect);
        let (d, ch, i) = max_diff(&native, &wasm);
        println!(
            "{:<10} max |native − wasm| = {d:.3e} (channel {ch}, frame {i}); latency {native_latency}",
            case.effect
        );
        assert!(
            d <= TOLERANCE,
            "{}: native and wasm differ by {d:e} at channel {ch}, frame {i} ({} vs {})",
            case.effect,
            native[ch][i],
            wasm[ch][i]
        );
        assert_eq!(native_latency, wasm_latency, "{}: latency", case.effect);
        checked.push(case.effect);
    }
    // Every built-in effect is covered (a new one must be added here).
    let builtin: Vec<&str> = catalog.effects.keys().map(String::as_str).collect();
    checked.sort_unstable();
    checked.dedup();
    assert_eq!(checked, builtin);
}
