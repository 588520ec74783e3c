//! Wasm effects against the same effects compiled natively, in the same run (wasm within
//! 1.25× of native, on CPU time):
//!
//! ```sh
//! cargo bench -p sluice-host --bench effects
//! cargo bench -p sluice-host --bench effects -- --seconds 20 --runs 5
//! cargo bench -p sluice-host --bench effects -- --only denoise,pitch
//! ```
//!
//! Each of the twenty-one built-ins (gain, EQ, high-pass, compressor, limiter, reverb, delay,
//! gate, dehum, de-esser, denoise, leveler, invert, clip, distortion, bitcrush, chorus, flanger,
//! phaser, ladder, pitch)
//! processes 60 s of 48 kHz stereo programme in 512-frame blocks; the thread's CPU time is
//! printed beside the wall time (the machine may be shared), and the ratio is judged on CPU. The native peer is each effect's own crate built for this machine and
//! driven by the SDK's harness, which copies every block into the effect's buffers and back as
//! the host does; the wasm side is the module built into `sluice`, run by the host's runtime
//! with the sandbox on (epoch deadline armed per call, memory cap, finiteness check of the
//! output). Each side runs `--runs` times (default 3), alternating, and the fastest run counts.
//!
//! The per-call overhead is measured on 1-frame blocks of the gain effect, where the DSP is
//! negligible: the wasm time per call minus the native time per call is what crossing into the
//! sandbox costs.
//!
//! Beside Pedalboard (`--pedalboard`; needs python3 with numpy and pedalboard, which
//! `host/benches/install-peers.sh` puts in `target/bench-peers`, or `--python PATH`): each effect
//! Pedalboard also has, at comparable settings, on the same audio — Sluice's wasm module in the
//! host's sandbox in 4096-frame blocks (a pipeline's), Pedalboard's plugin from Python on the
//! whole buffer (`host/benches/pedalboard_time.py`); CPU time of the fastest run each, the ratio
//! judged against 1.5×. Four kinds of material, each its own table: the programme above, a dense
//! loud master (a 126 BPM groove near full scale), acoustic plucked strings with a wide dynamic
//! range over faint room tone, and speech-like phrases with pauses at a low level (the gate's and
//! the compressor's paths depend on the level); the worst ratio over all is printed last.
//!
//! Languages: the same peaking biquad (RBJ, 2 kHz, +4 dB, Q 1) written in Faust
//! (`sluice effects new --lang faust`'s project with the cookbook formulas and `fi.tf2`, built
//! by its Makefile) against the built-in EQ (Rust) in wasm and natively, per second of 48 kHz
//! stereo, with the difference of their outputs to show it is the same filter. Skipped when
//! faust, clang or wasi-libc is missing.

mod common;

use common::{Res, arg_value, exit_code};
use sluice_effect_sdk::Effect;
use sluice_effect_sdk::native::{self, Instance as Native};
use sluice_host::effects::{Catalog, Instance, Limits, Runtime};
use std::process::ExitCode;
use std::time::Instant;

const RATE: u32 = 48_000;
const BLOCK: usize = 512;
const TARGET: f64 = 1.25;

struct Case {
    effect: &'static str,
    params: &'static [(&'static str, f32)],
}

const CASES: &[Case] = &[
    Case {
        effect: "eq",
        // Peaking (choice 4), +4 dB at 2 kHz.
        params: &[
            ("type", 4.0),
            ("freq_hz", 2000.0),
            ("q", 1.0),
            ("gain_db", 4.0),
        ],
    },
    Case {
        effect: "compressor",
        params: &[("threshold_db", -20.0), ("ratio", 4.0), ("makeup_db", 3.0)],
    },
    Case {
        effect: "reverb",
        params: &[("room_size", 0.7), ("damping", 0.4), ("mix", 0.3)],
    },
    Case {
        effect: "gain",
        params: &[("gain_db", -3.0), ("pan", 0.2)],
    },
    Case {
        effect: "highpass",
        params: &[("cutoff_hz", 80.0)],
    },
    Case {
        effect: "limiter",
        params: &[
            ("ceiling_dbtp", -1.0),
            ("lookahead_ms", 5.0),
            ("release_ms", 100.0),
        ],
    },
    Case {
        effect: "delay",
        params: &[("time_ms", 350.0), ("feedback", 0.4), ("mix", 0.3)],
    },
    Case {
        effect: "gate",
        params: &[
            ("threshold_db", -30.0),
            ("range_db", -40.0),
            ("attack_ms", 1.0),
            ("hold_ms", 20.0),
            ("release_ms", 100.0),
        ],
    },
    Case {
        effect: "dehum",
        params: &[("mains", 1.0), ("harmonics", 8.0)],
    },
    Case {
        effect: "deess",
        params: &[("threshold_db", -20.0), ("range_db", 6.0)],
    },
    Case {
        effect: "denoise",
        params: &[("reduction_db", 12.0)],
    },
    Case {
        effect: "leveler",
        params: &[("target_db", -20.0)],
    },
    Case {
        effect: "invert",
        params: &[],
    },
    Case {
        effect: "clip",
        params: &[("threshold_db", -6.0), ("mode", 1.0)],
    },
    Case {
        effect: "distortion",
        params: &[("drive_db", 18.0)],
    },
    Case {
        effect: "bitcrush",
        params: &[("bit_depth", 8.0)],
    },
    Case {
        effect: "chorus",
        params: &[],
    },
    Case {
        effect: "flanger",
        params: &[],
    },
    Case {
        effect: "phaser",
        params: &[],
    },
    Case {
        effect: "ladder",
        params: &[("cutoff_hz", 800.0), ("resonance", 0.5)],
    },
    Case {
        effect: "pitch",
        params: &[("semitones", 3.0)],
    },
    Case {
        effect: "convolve",
        params: &[("mix", 1.0)],
    },
];

/// Wall and CPU seconds of one run (the CPU time of the thread that ran it).
#[derive(Clone, Copy)]
struct Took {
    wall: f64,
    cpu: f64,
}

impl Took {
    const NONE: Took = Took {
        wall: f64::INFINITY,
        cpu: f64::INFINITY,
    };

    /// The fastest of two runs, each measure on its own.
    fn min(self, o: Took) -> Took {
        Took {
            wall: self.wall.min(o.wall),
            cpu: self.cpu.min(o.cpu),
        }
    }
}

/// This thread's CPU time, seconds.
fn thread_cpu() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec we own; CLOCK_THREAD_CPUTIME_ID always exists
    // on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// Times `f` (wall and this thread's CPU).
fn timed(f: impl FnOnce()) -> Took {
    let (t, c) = (Instant::now(), thread_cpu());
    f();
    Took {
        wall: t.elapsed().as_secs_f64(),
        cpu: thread_cpu() - c,
    }
}

/// The impulse response `convolve` runs with: a 2 s stereo hall at 48 kHz (noise decaying
/// 60 dB in 1.8 s, each side its own), written for Pedalboard's `Convolution` as `hall.wav`.
fn hall() -> Vec<Vec<f32>> {
    (0..2)
        .map(|c| {
            sluice_core::signal::noise(90 + c, 0.5, 2 * RATE as usize)
                .iter()
                .enumerate()
                .map(|(i, v)| v * (-(i as f32) * 6.9 / (1.8 * RATE as f32)).exp())
                .collect()
        })
        .collect()
}

/// `planes` as a 32-bit float WAV at the bench's rate.
fn write_float_wav(path: &std::path::Path, planes: &[Vec<f32>]) -> Res<()> {
    let spec = hound::WavSpec {
        channels: planes.len() as u16,
        sample_rate: RATE,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let mut w = hound::WavWriter::create(path, spec)?;
    for i in 0..planes[0].len() {
        for c in planes {
            w.write_sample(c[i])?;
        }
    }
    w.finalize()?;
    Ok(())
}

/// Time taken to process `audio` natively in blocks of `block`.
fn native<'m, E: Effect<'m>>(
    memory: &'m mut [f32],
    params: &[(&str, f32)],
    audio: &[Vec<f32>],
    block: usize,
) -> Took {
    let mut work = audio.to_vec();
    // Every data slot gets the bench's hall (only `convolve` has one).
    let ir = hall();
    let slots: Vec<Option<&[Vec<f32>]>> =
        vec![Some(ir.as_slice()); <E::Params as sluice_effect_sdk::Params>::INFO.data.len()];
    let mut fx =
        Native::<E>::with_data(memory, RATE, audio.len(), block, &slots).expect("native init");
    for &(id, v) in params {
        fx.set(id, v);
    }
    let took = timed(|| fx.run(&mut work));
    std::hint::black_box(&work);
    took
}

fn native_by_name(memory: &mut [f32], case: &Case, audio: &[Vec<f32>], block: usize) -> Res<Took> {
    memory.fill(0.0);
    Ok(match case.effect {
        "gain" => native::<gain::Gain>(memory, case.params, audio, block),
        "eq" => native::<eq::Eq>(memory, case.params, audio, block),
        "compressor" => native::<compressor::Compressor>(memory, case.params, audio, block),
        "reverb" => native::<reverb::Reverb>(memory, case.params, audio, block),
        "highpass" => native::<highpass::Highpass>(memory, case.params, audio, block),
        "limiter" => native::<limiter::Limiter>(memory, case.params, audio, block),
        "delay" => native::<delay::Delay>(memory, case.params, audio, block),
        "gate" => native::<gate::Gate>(memory, case.params, audio, block),
        "dehum" => native::<dehum::Dehum>(memory, case.params, audio, block),
        "deess" => native::<deess::Deess>(memory, case.params, audio, block),
        "denoise" => native::<denoise::Denoise>(memory, case.params, audio, block),
        "leveler" => native::<leveler::Leveler>(memory, case.params, audio, block),
        "invert" => native::<invert::Invert>(memory, case.params, audio, block),
        "clip" => native::<clip::Clip>(memory, case.params, audio, block),
        "distortion" => native::<distortion::Distortion>(memory, case.params, audio, block),
        "bitcrush" => native::<bitcrush::Bitcrush>(memory, case.params, audio, block),
        "chorus" => native::<chorus::Chorus>(memory, case.params, audio, block),
        "flanger" => native::<flanger::Flanger>(memory, case.params, audio, block),
        "phaser" => native::<phaser::Phaser>(memory, case.params, audio, block),
        "ladder" => native::<ladder::Ladder>(memory, case.params, audio, block),
        "pitch" => native::<pitch::Pitch>(memory, case.params, audio, block),
        "convolve" => native::<convolve::Convolve>(memory, case.params, audio, block),
        other => return Err(format!("no native build listed for {other}").into()),
    })
}

/// Time taken to process `audio` through the wasm module in blocks of `block`.
fn wasm(catalog: &Catalog, case: &Case, audio: &[Vec<f32>], block: usize) -> Res<Took> {
    let effect = &catalog
        .get(case.effect)
        .ok_or_else(|| format!("no built-in effect {}", case.effect))?
        .effect;
    Ok(wasm_effect(catalog, effect, case.params, audio, block)?.0)
}

/// Time taken to process `audio` through `effect` in blocks of `block`, and the output.
fn wasm_effect(
    catalog: &Catalog,
    effect: &sluice_host::effects::runtime::Effect,
    params: &[(&str, f32)],
    audio: &[Vec<f32>],
    block: usize,
) -> Res<(Took, Vec<Vec<f32>>)> {
    let ir = hall();
    let slots: Vec<&[Vec<f32>]> = effect
        .descriptor
        .data
        .iter()
        .map(|_| ir.as_slice())
        .collect();
    let mut fx = Instance::with_data(
        catalog.runtime(),
        effect,
        RATE,
        audio.len(),
        block,
        Limits::default(),
        &slots,
    )?;
    for &(id, v) in params {
        let (index, _) = effect
            .descriptor
            .param(id)
            .ok_or_else(|| format!("{}: no parameter {id}", effect.descriptor.name))?;
        fx.set_param(index, f64::from(v))?;
    }
    let mut work = audio.to_vec();
    let len = work[0].len();
    let mut failed = None;
    let took = timed(|| {
        let mut at = 0;
        while at < len {
            let n = block.min(len - at);
            let mut planes: Vec<&mut [f32]> = work.iter_mut().map(|c| &mut c[at..at + n]).collect();
            if let Err(e) = fx.process(&mut planes) {
                failed = Some(e);
                return;
            }
            at += n;
        }
    });
    if let Some(e) = failed {
        return Err(e.into());
    }
    std::hint::black_box(&work);
    Ok((took, work))
}

/// The peaking biquad of the built-in EQ's case, in Faust: RBJ cookbook coefficients from the
/// sliders, `fi.tf2` per channel.
const FAUST_PEAK: &str = r#"declare version "1.0.0";
import("stdfaust.lib");
f = hslider("freq_hz", 1000, 20, 20000, 1);
g = hslider("gain_db", 0, -24, 24, 0.1);
q = hslider("q", 0.7, 0.1, 10, 0.01);
A = 10 ^ (g / 40);
w = 2 * ma.PI * f / ma.SR;
alpha = sin(w) / (2 * q);
a0 = 1 + alpha / A;
peak = fi.tf2((1 + alpha * A) / a0, -2 * cos(w) / a0, (1 - alpha * A) / a0, -2 * cos(w) / a0, (1 - alpha / A) / a0);
process = peak, peak;
"#;

/// Builds the Faust peaking EQ with `sluice effects new`'s project; `None` when a tool is
/// missing.
fn faust_eq(catalog: &Catalog, dir: &std::path::Path) -> Res<Option<sluice_host::effects::Entry>> {
    let have = |t: &str| {
        std::process::Command::new("sh")
            .args(["-c", &format!("command -v {t}")])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !["faust", "clang", "wasm-ld", "make", "cc"]
        .iter()
        .all(|t| have(t))
        || !std::path::Path::new("/usr/lib/wasm32-wasi/libc.a").exists()
    {
        println!("\nlanguages: skipped (faust, clang, lld, wasi-libc are needed)");
        return Ok(None);
    }
    let made =
        sluice_host::scaffold::new_effect("faust_peak", sluice_host::scaffold::Lang::Faust, dir)?;
    std::fs::write(made.dir.join("faust_peak.dsp"), FAUST_PEAK)?;
    let o = std::process::Command::new("make")
        .current_dir(&made.dir)
        .output()?;
    if !o.status.success() {
        return Err(format!("make: {}", String::from_utf8_lossy(&o.stderr)).into());
    }
    Ok(Some(catalog.check_file(&made.dir.join(&made.module))?))
}

/// An effect beside Pedalboard's: Sluice's effect and parameters, Pedalboard's plugin and its
/// parameters (as JSON), at comparable settings.
struct Peer {
    effect: &'static str,
    params: &'static [(&'static str, f32)],
    plugin: &'static str,
    plugin_params: &'static str,
}

const PEERS: &[Peer] = &[
    Peer {
        effect: "gain",
        params: &[("gain_db", -6.0)],
        plugin: "Gain",
        plugin_params: r#"{"gain_db": -6}"#,
    },
    Peer {
        effect: "invert",
        params: &[],
        plugin: "Invert",
        plugin_params: "{}",
    },
    Peer {
        effect: "clip",
        params: &[("threshold_db", -6.0)],
        plugin: "Clipping",
        plugin_params: r#"{"threshold_db": -6}"#,
    },
    Peer {
        effect: "distortion",
        params: &[("drive_db", 25.0)],
        plugin: "Distortion",
        plugin_params: r#"{"drive_db": 25}"#,
    },
    Peer {
        effect: "bitcrush",
        params: &[("bit_depth", 8.0)],
        plugin: "Bitcrush",
        plugin_params: r#"{"bit_depth": 8}"#,
    },
    Peer {
        effect: "highpass",
        params: &[("cutoff_hz", 80.0)],
        plugin: "HighpassFilter",
        plugin_params: r#"{"cutoff_frequency_hz": 80}"#,
    },
    Peer {
        effect: "eq",
        params: &[("freq_hz", 1000.0), ("gain_db", 4.0), ("q", 1.0)],
        plugin: "PeakFilter",
        plugin_params: r#"{"cutoff_frequency_hz": 1000, "gain_db": 4, "q": 1}"#,
    },
    Peer {
        effect: "compressor",
        params: &[("threshold_db", -20.0), ("ratio", 4.0)],
        plugin: "Compressor",
        plugin_params: r#"{"threshold_db": -20, "ratio": 4}"#,
    },
    Peer {
        effect: "limiter",
        // Sample-peak detection, as Pedalboard's (JUCE's) limiter has (its default true-peak
        // detection interpolates 4× and costs about five times as much).
        params: &[("ceiling_dbtp", -1.0), ("detection", 1.0)],
        plugin: "Limiter",
        plugin_params: r#"{"threshold_db": -1}"#,
    },
    Peer {
        effect: "gate",
        // The expander, each channel on its own, no floor: the same algorithm as Pedalboard's
        // (JUCE's) NoiseGate, equal to it within 1e-6 (tests/pedalboard.rs).
        params: &[
            ("threshold_db", -40.0),
            ("mode", 1.0),
            ("link", 1.0),
            ("range_db", -96.0),
        ],
        plugin: "NoiseGate",
        plugin_params: r#"{"threshold_db": -40}"#,
    },
    Peer {
        effect: "delay",
        params: &[("time_ms", 250.0), ("feedback", 0.35), ("mix", 0.3)],
        plugin: "Delay",
        plugin_params: r#"{"delay_seconds": 0.25, "feedback": 0.35, "mix": 0.3}"#,
    },
    Peer {
        effect: "reverb",
        params: &[],
        plugin: "Reverb",
        plugin_params: "{}",
    },
    Peer {
        effect: "chorus",
        params: &[("voices", 1.0)],
        plugin: "Chorus",
        plugin_params: "{}",
    },
    Peer {
        effect: "phaser",
        params: &[],
        plugin: "Phaser",
        plugin_params: "{}",
    },
    Peer {
        effect: "ladder",
        params: &[("cutoff_hz", 800.0), ("resonance", 0.5)],
        plugin: "LadderFilter",
        plugin_params: r#"{"mode": "LPF24", "cutoff_hz": 800, "resonance": 0.5}"#,
    },
    Peer {
        effect: "pitch",
        params: &[("semitones", 3.0)],
        plugin: "PitchShift",
        plugin_params: r#"{"semitones": 3}"#,
    },
    Peer {
        effect: "convolve",
        params: &[("mix", 1.0)],
        plugin: "Convolution",
        // "@IR": the bench's hall (`hall`), written beside the material.
        plugin_params: r#"{"impulse_response_filename": "@IR", "mix": 1.0}"#,
    },
];

/// The materials the Pedalboard comparison runs on: name and `seconds` of 48 kHz stereo.
fn pedalboard_materials(seconds: usize) -> Vec<(&'static str, Vec<Vec<f32>>)> {
    use sluice_core::signal;
    let s = seconds as f64;
    let speech = signal::speech(RATE, s, 0.3);
    let speech = if speech.len() == 1 {
        vec![speech[0].clone(), speech[0].clone()]
    } else {
        speech
    };
    vec![
        (
            "programme",
            signal::programme(RATE, 2, seconds * RATE as usize, 60),
        ),
        ("dense master", signal::dense_master(RATE, s, 7)),
        ("acoustic", signal::acoustic(RATE, s, 5)),
        ("speech", speech),
    ]
}

/// The Pedalboard comparison (see the module documentation) over every material: whether every
/// effect stays within 1.5× of Pedalboard's CPU time on each.
fn beside_pedalboard_all(catalog: &Catalog, seconds: usize, runs: usize) -> Res<bool> {
    let mut pass = true;
    let mut worst: Option<(&str, &str, f64)> = None;
    for (material, audio) in pedalboard_materials(seconds) {
        let (ok, w) = beside_pedalboard(catalog, material, &audio, runs)?;
        pass &= ok;
        if let Some((name, r)) = w
            && worst.is_none_or(|(_, _, x)| r > x)
        {
            worst = Some((material, name, r));
        }
    }
    if let Some((material, name, r)) = worst {
        println!(
            "\nworst beside Pedalboard over every material: {name} on {material} at {r:.2}× (CPU time)"
        );
    }
    Ok(pass)
}

/// The Pedalboard comparison on one material: whether every effect stays within 1.5× of
/// Pedalboard's CPU time, and the worst ratio.
fn beside_pedalboard(
    catalog: &Catalog,
    material: &str,
    audio: &[Vec<f32>],
    runs: usize,
) -> Res<(bool, Option<(&'static str, f64)>)> {
    const PEER_TARGET: f64 = 1.5;
    const PEER_BLOCK: usize = 4096;
    let python = arg_value("--python").unwrap_or_else(|| {
        let venv = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../target/bench-peers/bin/python"
        );
        if std::path::Path::new(venv).exists() {
            venv.to_string()
        } else {
            "python3".to_string()
        }
    });
    let dir = tempfile::tempdir()?;
    let wav = dir.path().join("programme.wav");
    write_float_wav(&wav, audio)?;
    let ir = dir.path().join("hall.wav");
    write_float_wav(&ir, &hall())?;
    let ir_json = serde_json::to_string(&ir.display().to_string())?;
    let mut cases: Vec<String> = PEERS
        .iter()
        .map(|p| {
            format!(
                r#"{{"name": "{}", "plugin": "{}", "params": {}}}"#,
                p.effect,
                p.plugin,
                p.plugin_params.replace("\"@IR\"", &ir_json)
            )
        })
        .collect();
    cases.push(format!(
        r#"{{"name": "time_stretch", "function": "time_stretch", "params": {{"stretch_factor": {STRETCH_SPEED}}}}}"#
    ));
    let cases_file = dir.path().join("cases.json");
    std::fs::write(&cases_file, format!("[{}]", cases.join(", ")))?;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/pedalboard_time.py");
    let out = std::process::Command::new(&python)
        .arg(script)
        .arg(&wav)
        .arg(runs.to_string())
        .arg(&cases_file)
        .output()?;
    if !out.status.success() {
        return Err(format!(
            "{python} {script}: {} (host/benches/install-peers.sh installs pedalboard)",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    let times: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    let seconds = audio[0].len() as f64 / f64::from(RATE);
    println!(
        "
beside Pedalboard {} on {material}: {seconds:.0} s of 48 kHz stereo; Sluice's wasm module in {PEER_BLOCK}-frame blocks, Pedalboard's plugin on the whole buffer from Python; CPU s of the fastest of {runs} runs",
        times.first().and_then(|t| t["pedalboard"].as_str()).unwrap_or("?")
    );
    println!(
        "{:<11} {:<15} {:>15} {:>15} {:>10} {:>10}  ≤ {PEER_TARGET}× (CPU)",
        "effect", "Pedalboard", "sluice s (CPU)", "peer s (CPU)", "ratio CPU", "ratio wall"
    );
    let mut pass = true;
    let mut worst: Option<(&'static str, f64)> = None;
    for (p, t) in PEERS.iter().zip(&times) {
        let case = Case {
            effect: p.effect,
            params: p.params,
        };
        let mut w = Took::NONE;
        for _ in 0..runs {
            w = w.min(wasm(catalog, &case, audio, PEER_BLOCK)?);
        }
        let (pc, pw) = (
            t["cpu"].as_f64().ok_or("no cpu time")?,
            t["wall"].as_f64().ok_or("no wall time")?,
        );
        let ratio = w.cpu / pc;
        let ok = ratio <= PEER_TARGET;
        pass &= ok;
        if worst.is_none_or(|(_, r)| ratio > r) {
            worst = Some((p.effect, ratio));
        }
        println!(
            "{:<11} {:<15} {:>6.3} ({:>6.3}) {:>6.3} ({:>6.3}) {ratio:>9.2}× {:>9.2}×  {}",
            p.effect,
            p.plugin,
            w.wall,
            w.cpu,
            pw,
            pc,
            w.wall / pw,
            if ok { "PASS" } else { "FAIL" }
        );
    }
    // The time stretch step: the core's (a step, native, not a wasm effect) beside Pedalboard's
    // `time_stretch` function (Rubber Band), at the same speed.
    let t = times.get(PEERS.len()).ok_or("no time for time_stretch")?;
    let mut took = Took::NONE;
    for _ in 0..runs {
        took = took.min(stretch_time(audio, STRETCH_SPEED, PEER_BLOCK)?);
    }
    let (pc, pw) = (
        t["cpu"].as_f64().ok_or("no cpu time")?,
        t["wall"].as_f64().ok_or("no wall time")?,
    );
    let ratio = took.cpu / pc;
    let ok = ratio <= PEER_TARGET;
    pass &= ok;
    if worst.is_none_or(|(_, r)| ratio > r) {
        worst = Some(("time_stretch", ratio));
    }
    println!(
        "{:<11} {:<15} {:>6.3} ({:>6.3}) {:>6.3} ({:>6.3}) {ratio:>9.2}× {:>9.2}×  {}  (the core's step, natively)",
        "stretch",
        "time_stretch()",
        took.wall,
        took.cpu,
        pw,
        pc,
        took.wall / pw,
        if ok { "PASS" } else { "FAIL" }
    );
    if let Some((name, r)) = worst {
        println!("worst beside Pedalboard on {material}: {name} at {r:.2}× (CPU time)");
    }
    Ok((pass, worst))
}

/// The speed the time stretch runs at beside Pedalboard's.
const STRETCH_SPEED: f64 = 1.25;

/// Time taken by the core's time stretch step over `audio` in blocks of `block` (checked to
/// give the length the speed says).
fn stretch_time(audio: &[Vec<f32>], speed: f64, block: usize) -> Res<Took> {
    use sluice_core::render::{Block, SignalSpec, Stage, stretch::TimeStretch};
    let mut s = TimeStretch::new(speed);
    s.start(&SignalSpec::with_channels(RATE, audio.len()))?;
    let len = audio[0].len();
    let mut frames = 0usize;
    let took = timed(|| {
        let mut at = 0;
        while at < len {
            let n = block.min(len - at);
            let mut b = Block::from_planes(audio.iter().map(|c| c[at..at + n].to_vec()).collect());
            s.process(&mut b);
            frames += b.frames();
            at += n;
        }
        let mut b = Block::new(audio.len());
        s.finish(&mut b);
        frames += b.frames();
    });
    let want = (len as f64 / speed).round() as usize;
    if frames != want {
        return Err(format!("time stretch gave {frames} frames for {want}").into());
    }
    Ok(took)
}

fn run() -> Res<bool> {
    let seconds: usize = arg_value("--seconds")
        .map_or(Ok(60), |s| s.parse().map_err(|e| format!("--seconds: {e}")))?;
    let runs: usize =
        arg_value("--runs").map_or(Ok(5), |s| s.parse().map_err(|e| format!("--runs: {e}")))?;
    let catalog = Catalog::load(Runtime::new(None)?, None);
    if std::env::args().any(|a| a == "--pedalboard") {
        return beside_pedalboard_all(&catalog, seconds, runs);
    }
    let audio = sluice_core::signal::programme(RATE, 2, seconds * RATE as usize, 60);
    let mut memory = native::memory();
    println!(
        "{seconds} s of 48 kHz stereo in {BLOCK}-frame blocks, fastest of {runs} runs; \
         wasm: the built-in module in the host's sandbox; native: the same crate built for this machine\n"
    );
    println!(
        "{:<11} {:>15} {:>15} {:>10} {:>10} {:>10} {:>9}  ≤ {TARGET}× (CPU)",
        "effect",
        "native s (CPU)",
        "wasm s (CPU)",
        "native ×RT",
        "wasm ×RT",
        "ratio CPU",
        "ratio wall"
    );
    let mut pass = true;
    let mut worst: Option<(&str, f64)> = None;
    // `--only NAME[,NAME…]`: those effects alone (and no per-call or Faust figures).
    let only = arg_value("--only");
    let chosen = |effect: &str| {
        only.as_ref()
            .is_none_or(|o| o.split(',').any(|n| n == effect))
    };
    if let Some(o) = &only
        && let Some(bad) = o.split(',').find(|n| !CASES.iter().any(|c| c.effect == *n))
    {
        return Err(format!("--only: no effect {bad} in this bench").into());
    }
    for case in CASES.iter().filter(|c| chosen(c.effect)) {
        let (mut n, mut w) = (Took::NONE, Took::NONE);
        for _ in 0..runs {
            n = n.min(native_by_name(&mut memory, case, &audio, BLOCK)?);
            w = w.min(wasm(&catalog, case, &audio, BLOCK)?);
        }
        let ratio = w.cpu / n.cpu;
        let ok = ratio <= TARGET;
        pass &= ok;
        if worst.is_none_or(|(_, r)| ratio > r) {
            worst = Some((case.effect, ratio));
        }
        println!(
            "{:<11} {:>6.3} ({:>6.3}) {:>6.3} ({:>6.3}) {:>10.0} {:>10.0} {ratio:>9.2}× {:>9.2}×  {}",
            case.effect,
            n.wall,
            n.cpu,
            w.wall,
            w.cpu,
            seconds as f64 / n.cpu,
            seconds as f64 / w.cpu,
            w.wall / n.wall,
            if ok { "PASS" } else { "FAIL" }
        );
    }
    if let Some((name, r)) = worst {
        println!("worst: {name} at {r:.2}× native (CPU time)");
    }
    if only.is_some() {
        return Ok(pass);
    }

    // Per-call overhead: 1-frame blocks of the gain effect.
    let gain = Case {
        effect: "gain",
        params: &[("gain_db", -3.0)],
    };
    let calls = 200_000;
    let short: Vec<Vec<f32>> = audio.iter().map(|c| c[..calls].to_vec()).collect();
    let (mut n, mut w) = (Took::NONE, Took::NONE);
    for _ in 0..runs {
        n = n.min(native_by_name(&mut memory, &gain, &short, 1)?);
        w = w.min(wasm(&catalog, &gain, &short, 1)?);
    }
    let (n_ns, w_ns) = (n.cpu / calls as f64 * 1e9, w.cpu / calls as f64 * 1e9);
    let block_ms = BLOCK as f64 / f64::from(RATE) * 1e3;
    println!(
        "\nper call (gain, 1-frame blocks, {calls} calls, CPU time): wasm {w_ns:.0} ns, native {n_ns:.0} ns; \
         overhead {:.0} ns per call = {:.4} % of a {BLOCK}-frame block's real time ({block_ms:.1} ms)",
        w_ns - n_ns,
        (w_ns - n_ns) / (block_ms * 1e4)
    );

    // Languages: the same biquad from Faust and from Rust.
    let dir = tempfile::tempdir()?;
    if let Some(faust) = faust_eq(&catalog, dir.path())? {
        let eq_case = &CASES[0];
        let faust_params: &[(&str, f32)] = &[("freq_hz", 2000.0), ("gain_db", 4.0), ("q", 1.0)];
        let rust = &catalog.get("eq").ok_or("no eq")?.effect;
        let (mut f, mut r, mut n) = (Took::NONE, Took::NONE, Took::NONE);
        let (mut f_out, mut r_out) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            let (t, out) = wasm_effect(&catalog, &faust.effect, faust_params, &audio, BLOCK)?;
            f = f.min(t);
            f_out = out;
            let (t, out) = wasm_effect(&catalog, rust, eq_case.params, &audio, BLOCK)?;
            r = r.min(t);
            r_out = out;
            n = n.min(native_by_name(&mut memory, eq_case, &audio, BLOCK)?);
        }
        // Past the first 0.1 s (the built-in EQ glides to its settings).
        let skip = RATE as usize / 10;
        let (mut diff, mut sig) = (0.0f64, 0.0f64);
        for (a, b) in f_out.iter().zip(&r_out) {
            for (x, y) in a[skip..].iter().zip(&b[skip..]) {
                diff += f64::from(x - y).powi(2);
                sig += f64::from(*y).powi(2);
            }
        }
        let per_s = |t: Took| t.cpu / seconds as f64 * 1e3;
        println!(
            "\nlanguages: a peaking biquad (2 kHz, +4 dB, Q 1), ms (CPU, fastest run) per second of 48 kHz stereo"
        );
        println!(
            "  Faust (wasm) {:.3} ms   Rust (wasm, built-in eq) {:.3} ms   native Rust {:.3} ms",
            per_s(f),
            per_s(r),
            per_s(n)
        );
        println!(
            "  Faust / Rust {:.2}×, Faust / native {:.2}×; the outputs differ by {:.1} dB (re the signal)",
            f.cpu / r.cpu,
            f.cpu / n.cpu,
            10.0 * (diff / sig).log10()
        );
    }
    Ok(pass)
}

fn main() -> ExitCode {
    exit_code(run())
}
