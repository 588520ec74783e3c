//! Speech over beds, made for the speech detector's training (core/examples/speech_train.rs)
//! and its test (core/tests/speech.rs): espeak-ng reads sentences with pauses between them, the
//! stem is laid over music (Ogg files of a folder, decoded by ffmpeg) or noise at a chosen
//! speech-to-bed loudness ratio, and the truth is where the stem speaks (pauses under 0.6 s
//! inside a run of talk count as speech, as a listener and a dialogue gate take them).
//!
//! Training and test use different voices, sentences and music files.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Step of the truth, seconds (the detector's).
pub const STEP_S: f64 = 0.1;

/// Sentences of the Harvard lists (IEEE 1969), lists 1–4: training.
pub const TRAIN_SENTENCES: &[&str] = &[
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background.",
    "It's easy to tell the depth of a well.",
    "These days a chicken leg is a rare dish.",
    "Rice is often served in round bowls.",
    "The juice of lemons makes fine punch.",
    "The box was thrown beside the parked truck.",
    "The hogs were fed chopped corn and garbage.",
    "Four hours of steady work faced us.",
    "A large size in stockings is hard to sell.",
    "The boy was there when the sun rose.",
    "A rod is used to catch pink salmon.",
    "The source of the huge river is the clear spring.",
    "Kick the ball straight and follow through.",
    "Help the woman get back to her feet.",
    "A pot of tea helps to pass the evening.",
    "Smoky fires lack flame and heat.",
    "The soft cushion broke the man's fall.",
    "The salt breeze came across from the sea.",
    "The girl at the booth sold fifty bonds.",
    "The small pup gnawed a hole in the sock.",
    "The fish twisted and turned on the bent hook.",
    "Press the pants and sew a button on the vest.",
    "The swan dive was far short of perfect.",
    "The beauty of the view stunned the young boy.",
    "Two blue fish swam in the tank.",
    "Her purse was full of useless trash.",
    "The colt reared and threw the tall rider.",
    "It snowed, rained, and hailed the same morning.",
    "Read verse out loud for pleasure.",
    "Hoist the load to your left shoulder.",
    "Take the winding path to reach the lake.",
    "Note closely the size of the gas tank.",
    "Wipe the grease off his dirty face.",
    "Mend the coat before you go out.",
    "The wrist was badly strained and hung limp.",
    "The stray cat gave birth to kittens.",
    "The young girl gave no clear response.",
    "The meal was cooked before the bell rang.",
    "What joy there is in living.",
];

/// Lists 5–6: the test.
pub const TEST_SENTENCES: &[&str] = &[
    "A king ruled the state in the early days.",
    "The ship was torn apart on the sharp reef.",
    "Sickness kept him home the third week.",
    "The wide road shimmered in the hot sun.",
    "The lazy cow lay in the cool grass.",
    "Lift the square stone over the fence.",
    "The rope will bind the seven books at once.",
    "Hop over the fence and plunge in.",
    "The friendly gang left the drug store.",
    "Mesh wire keeps chicks inside.",
    "The frosty air passed through the coat.",
    "The crooked maze failed to fool the mouse.",
    "Adding fast leads to wrong sums.",
    "The show was a flop from the very start.",
    "A saw is a tool used for making boards.",
    "The wagon moved on well oiled wheels.",
    "March the soldiers past the next hill.",
    "A cup of sugar makes sweet fudge.",
    "Place a rosebush near the porch steps.",
    "Both lost their lives in the raging storm.",
];

/// espeak-ng voices (with variants) for training.
pub const TRAIN_VOICES: &[&str] = &[
    "en-us",
    "en-us+f2",
    "en+m3",
    "en-gb-scotland+f4",
    "en-029",
    "de+m1",
    "fr+f3",
    "es",
    "it+m4",
    "en-us+klatt",
    "en+f5",
    "pl+m2",
];

/// Voices for the test, none of them in training.
pub const TEST_VOICES: &[&str] = &[
    "en-gb-x-rp+f1",
    "en-gb-x-gbcwmd",
    "nl+m6",
    "pt+f4",
    "en-us+m7",
    "sv+f2",
];

/// A small deterministic generator (xorshift64*).
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform in [a, b).
    pub fn range(&mut self, a: f64, b: f64) -> f64 {
        a + (b - a) * (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[(self.next() % items.len() as u64) as usize]
    }
    /// Roughly normal, mean 0, deviation 1.
    pub fn gauss(&mut self) -> f64 {
        (0..6).map(|_| self.range(-1.0, 1.0)).sum::<f64>() / 2.0_f64.sqrt()
    }
}

/// Raw mono f32 at `rate` from ffmpeg reading `args` (input options and input).
pub fn ffmpeg_f32(
    ffmpeg: &Path,
    input: &[&str],
    stdin: Option<&[u8]>,
    rate: u32,
) -> Option<Vec<f32>> {
    let mut child = Command::new(ffmpeg)
        .args(["-v", "error", "-nostdin"])
        .args(input)
        .args(["-ac", "1", "-ar", &rate.to_string(), "-f", "f32le", "-"])
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let feeder = stdin.map(|bytes| {
        let mut pipe = child.stdin.take().unwrap();
        let bytes = bytes.to_vec();
        std::thread::spawn(move || {
            let _ = pipe.write_all(&bytes);
        })
    });
    let mut raw = Vec::new();
    child.stdout.take()?.read_to_end(&mut raw).ok()?;
    if let Some(f) = feeder {
        let _ = f.join();
    }
    child.wait().ok()?.success().then_some(())?;
    Some(
        raw.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    )
}

/// `text` read by espeak-ng in `voice` at `speed` words a minute and `pitch` (0–99), at
/// `rate`, trimmed of its leading and trailing silence.
pub fn espeak(
    espeak: &Path,
    ffmpeg: &Path,
    text: &str,
    voice: &str,
    speed: u32,
    pitch: u32,
    rate: u32,
) -> Option<Vec<f32>> {
    let out = Command::new(espeak)
        .args([
            "-v",
            voice,
            "-s",
            &speed.to_string(),
            "-p",
            &pitch.to_string(),
            "--stdout",
        ])
        .arg(text)
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() || out.stdout.len() < 100 {
        return None;
    }
    let x = ffmpeg_f32(ffmpeg, &["-f", "wav", "-i", "-"], Some(&out.stdout), rate)?;
    let peak = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let on = |v: &f32| v.abs() > peak * 0.01;
    let a = x.iter().position(on)?;
    let b = x.iter().rposition(on)?;
    Some(x[a..=b].to_vec())
}

/// `secs` of `path` from `offset`, mono at `rate`.
pub fn music(ffmpeg: &Path, path: &Path, offset: f64, secs: f64, rate: u32) -> Option<Vec<f32>> {
    let (o, t) = (format!("{offset:.3}"), format!("{secs:.3}"));
    let p = path.to_str()?;
    ffmpeg_f32(ffmpeg, &["-ss", &o, "-t", &t, "-i", p], None, rate)
}

/// Duration of `path` in seconds (ffprobe beside ffmpeg).
pub fn duration(ffmpeg: &Path, path: &Path) -> Option<f64> {
    let probe = ffmpeg.with_file_name("ffprobe");
    let out = Command::new(probe)
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// The Ogg and Opus files under `dir` (its subfolders included), sorted: training takes the
/// even ones, the test the odd ones.
pub fn music_files(dir: &Path) -> Vec<PathBuf> {
    audio_files(dir, &["ogg", "opus"], &[])
}

/// The files under `dir` (four folders deep) whose extension is one of `exts` and whose stem
/// is none of `skip` (Frets on Fire's `guitar` and `rhythm` stems beside each song), sorted.
pub fn audio_files(dir: &Path, exts: &[&str], skip: &[&str]) -> Vec<PathBuf> {
    fn walk(dir: &Path, exts: &[&str], skip: &[&str], out: &mut Vec<PathBuf>, depth: usize) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for p in entries.filter_map(|e| e.ok().map(|e| e.path())) {
            let named = |s: Option<&std::ffi::OsStr>, list: &[&str]| {
                s.and_then(|s| s.to_str())
                    .is_some_and(|s| list.contains(&s))
            };
            if p.is_dir() && depth < 4 {
                walk(&p, exts, skip, out, depth + 1);
            } else if named(p.extension(), exts) && !named(p.file_stem(), skip) {
                out.push(p);
            }
        }
    }
    let mut v = Vec::new();
    walk(dir, exts, skip, &mut v, 0);
    v.sort();
    v
}

/// The noise beds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Noise {
    White,
    Pink,
    Brown,
    /// Pink noise with 50 Hz hum and its harmonics.
    Hum,
}

/// `n` samples of `kind` noise, unscaled.
pub fn noise(kind: Noise, n: usize, rate: u32, rng: &mut Rng) -> Vec<f32> {
    let mut b = [0.0f64; 7];
    let mut brown = 0.0f64;
    (0..n)
        .map(|i| {
            let w = rng.gauss();
            match kind {
                Noise::White => w as f32,
                Noise::Brown => {
                    brown = 0.995 * brown + 0.1 * w;
                    brown as f32
                }
                Noise::Pink | Noise::Hum => {
                    // Paul Kellet's pink filter.
                    b[0] = 0.99886 * b[0] + w * 0.0555179;
                    b[1] = 0.99332 * b[1] + w * 0.0750759;
                    b[2] = 0.96900 * b[2] + w * 0.1538520;
                    b[3] = 0.86650 * b[3] + w * 0.3104856;
                    b[4] = 0.55000 * b[4] + w * 0.5329522;
                    b[5] = -0.7616 * b[5] - w * 0.0168980;
                    let p = b[..6].iter().sum::<f64>() + b[6] + w * 0.5362;
                    b[6] = w * 0.115926;
                    let hum = if kind == Noise::Hum {
                        let t = i as f64 / f64::from(rate);
                        (1..=5)
                            .map(|h| {
                                (2.0 * std::f64::consts::PI * 50.0 * h as f64 * t).sin() / h as f64
                            })
                            .sum::<f64>()
                    } else {
                        0.0
                    };
                    (p * 0.2 + hum) as f32
                }
            }
        })
        .collect()
}

/// Integrated loudness (BS.1770-4) of mono `x`.
pub fn lufs(x: &[f32], rate: u32) -> Option<f64> {
    let mut m = ebur128::EbuR128::new(1, rate, ebur128::Mode::I).ok()?;
    m.add_frames_f32(x).ok()?;
    m.loudness_global().ok().filter(|l| l.is_finite())
}

/// Talk of `secs` seconds: sentences in one voice (speed and pitch varied), pauses of
/// 0.15–0.5 s inside a run and 1.2–4 s between runs; returns the stem and the speech segments
/// (pauses under 0.6 s merged).
#[allow(clippy::too_many_arguments)]
pub fn talk(
    espeak_bin: &Path,
    ffmpeg: &Path,
    sentences: &[&str],
    voice: &str,
    secs: f64,
    rate: u32,
    rng: &mut Rng,
) -> (Vec<f32>, Vec<(f64, f64)>) {
    let n = (secs * f64::from(rate)) as usize;
    let mut stem = vec![0.0f32; n];
    let mut segs: Vec<(f64, f64)> = Vec::new();
    let mut t = rng.range(0.5, 3.0);
    let speed = rng.range(140.0, 200.0) as u32;
    let pitch = rng.range(25.0, 75.0) as u32;
    while t < secs - 1.0 {
        let text = rng.pick(sentences);
        let Some(u) = espeak(espeak_bin, ffmpeg, text, voice, speed, pitch, rate) else {
            break;
        };
        let at = (t * f64::from(rate)) as usize;
        if at + u.len() > n {
            break;
        }
        stem[at..at + u.len()].copy_from_slice(&u);
        let end = t + u.len() as f64 / f64::from(rate);
        match segs.last_mut() {
            Some(s) if t - s.1 < 0.6 => s.1 = end,
            _ => segs.push((t, end)),
        }
        t = end
            + if rng.range(0.0, 1.0) < 0.6 {
                rng.range(0.15, 0.5)
            } else {
                rng.range(1.2, 4.0)
            };
    }
    (stem, segs)
}

/// Per step, whether its centre lies in a segment.
pub fn truth(segs: &[(f64, f64)], steps: usize) -> Vec<bool> {
    (0..steps)
        .map(|i| {
            let c = (i as f64 + 0.5) * STEP_S;
            segs.iter().any(|&(a, b)| c >= a && c < b)
        })
        .collect()
}

/// `stem` scaled to `speech_lufs`, `bed` to `speech_lufs - ratio_db` (a silent bed stays
/// silent), summed; returns the mix and the scaled stem.
pub fn mix(
    stem: &[f32],
    bed: &[f32],
    rate: u32,
    speech_lufs: f64,
    ratio_db: f64,
) -> (Vec<f32>, Vec<f32>) {
    let gain = |x: &[f32], target: f64| {
        lufs(x, rate).map_or(0.0, |l| 10f64.powf((target - l) / 20.0) as f32)
    };
    let gs = gain(stem, speech_lufs);
    let gb = gain(bed, speech_lufs - ratio_db);
    let stem: Vec<f32> = stem.iter().map(|v| v * gs).collect();
    let mix = stem
        .iter()
        .zip(bed.iter().chain(std::iter::repeat(&0.0)))
        .map(|(s, b)| s + b * gb)
        .collect();
    (mix, stem)
}
