//! Helpers shared by the lossy encoder tests: test signals, feeding an encoder in irregular
//! blocks, decoding with symphonia and ffmpeg, and comparing signals.
#![allow(dead_code)]

use sluice_core::encode::Encoder;
use sluice_core::render::Block;
use std::f64::consts::PI;
use std::path::Path;
use std::process::Command;
use symphonia::core::codecs::audio::AudioDecoderOptions;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, TrackType};
use symphonia::core::io::{MediaSourceStream, MediaSourceStreamOptions};
use symphonia::core::meta::MetadataOptions;

/// Block sizes the tests feed, in turn: single frames, odd sizes, large blocks.
pub const BLOCKS: [usize; 9] = [1, 1000, 7, 4096, 1, 333, 10_000, 2, 1152];

/// `amp * sin(2π f t)`.
pub fn sine(rate: u32, frames: usize, freq: f64, amp: f64) -> Vec<f32> {
    (0..frames)
        .map(|i| (amp * (2.0 * PI * freq * i as f64 / f64::from(rate)).sin()) as f32)
        .collect()
}

/// A mix of steady tones (one set per channel, -12 dBFS peak or so).
pub fn tone_mix(rate: u32, frames: usize, channels: usize) -> Vec<Vec<f32>> {
    (0..channels)
        .map(|c| {
            let tones = [
                220.0 + 55.0 * c as f64,
                660.0,
                1500.0 + 100.0 * c as f64,
                4100.0,
            ];
            let mut p = vec![0.0f32; frames];
            for (k, f) in tones.iter().enumerate() {
                for (i, s) in sine(rate, frames, *f, 0.12 / (k as f64 + 1.0))
                    .iter()
                    .enumerate()
                {
                    p[i] += s;
                }
            }
            p
        })
        .collect()
}

/// Logarithmic sweep from 40 Hz to 16 kHz (or 0.45 × rate) at -6 dBFS, the same in every
/// channel.
pub fn sweep(rate: u32, frames: usize, channels: usize) -> Vec<Vec<f32>> {
    let (f0, f1) = (40.0f64, (0.45 * f64::from(rate)).min(16_000.0));
    let t_len = frames as f64 / f64::from(rate);
    let k = (f1 / f0).ln() / t_len;
    let p: Vec<f32> = (0..frames)
        .map(|i| {
            let t = i as f64 / f64::from(rate);
            (0.5 * (2.0 * PI * f0 * ((k * t).exp() - 1.0) / k).sin()) as f32
        })
        .collect();
    vec![p; channels]
}

/// Deterministic noise in [-1, 1).
pub struct Noise(u64);

impl Noise {
    pub fn new(seed: u64) -> Self {
        Noise(seed | 1)
    }
    pub fn next(&mut self) -> f64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let v = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11;
        v as f64 / (1u64 << 52) as f64 - 1.0
    }
}

/// Programme-like audio: changing chords of harmonic notes with envelopes, a bass line,
/// percussive noise bursts and a noise bed, panned differently per channel; about -16 dBFS
/// RMS with peaks below -1 dBFS. Generated block by block from frame `start`, so long signals
/// need not be held in memory.
pub struct Programme {
    rate: f64,
    channels: usize,
    noise: Noise,
    lp: Vec<f64>,
    hit: f64,
    frame: u64,
}

impl Programme {
    pub fn new(rate: u32, channels: usize) -> Self {
        Programme {
            rate: f64::from(rate),
            channels,
            noise: Noise::new(0x5EED),
            lp: vec![0.0; channels],
            hit: 0.0,
            frame: 0,
        }
    }

    /// The next `frames` frames.
    pub fn next_block(&mut self, frames: usize) -> Vec<Vec<f32>> {
        const CHORDS: [[f64; 3]; 4] = [
            [261.63, 329.63, 392.00],
            [220.00, 261.63, 329.63],
            [174.61, 220.00, 261.63],
            [196.00, 246.94, 293.66],
        ];
        let mut out = vec![Vec::with_capacity(frames); self.channels];
        for _ in 0..frames {
            let t = self.frame as f64 / self.rate;
            let beat = t * 2.0; // 120 bpm
            let chord = &CHORDS[(t / 2.0) as usize % 4];
            let in_beat = beat.fract();
            let env = (-in_beat * 3.0).exp() * 0.6 + 0.4;
            if self.frame.is_multiple_of(self.rate as u64 / 2) {
                self.hit = 1.0;
            }
            self.hit *= (-1.0 / (0.03 * self.rate)).exp();
            let n = self.noise.next();
            let bass_f = chord[0] / 2.0;
            let bass = 0.15 * (2.0 * PI * bass_f * t).sin() * env;
            for (c, plane) in out.iter_mut().enumerate() {
                let pan = (c as f64 + 1.0) / (self.channels as f64 + 1.0);
                let mut v = bass;
                for (k, f) in chord.iter().enumerate() {
                    let w = if k % 2 == 0 { pan } else { 1.0 - pan };
                    for h in 1..=4 {
                        let hf = f * h as f64 * (1.0 + 0.001 * c as f64);
                        v += 0.05 * w * env / h as f64 * (2.0 * PI * hf * t).sin();
                    }
                }
                // A noise bed, low-passed per channel, plus a percussive burst on the beat.
                self.lp[c] += 0.2 * (n - self.lp[c]);
                v += 0.02 * self.lp[c] + 0.25 * self.hit * n * (0.5 + 0.5 * pan);
                plane.push(v.clamp(-0.89, 0.89) as f32);
            }
            self.frame += 1;
        }
        out
    }
}

/// Programme-like audio of `frames` frames.
pub fn programme(rate: u32, frames: usize, channels: usize) -> Vec<Vec<f32>> {
    Programme::new(rate, channels).next_block(frames)
}

/// Feed `planes` to `enc` in blocks of the sizes of [`BLOCKS`], in turn, then finish.
pub fn feed(mut enc: Box<dyn Encoder>, planes: &[Vec<f32>]) {
    let frames = planes[0].len();
    let mut start = 0;
    let mut k = 0;
    let mut block = Block::new(planes.len());
    while start < frames {
        let n = BLOCKS[k % BLOCKS.len()].min(frames - start);
        block.reset(planes.len());
        for (d, s) in block.planes_mut().iter_mut().zip(planes) {
            d.extend_from_slice(&s[start..start + n]);
        }
        enc.write(&block).expect("write");
        // An empty block now and then must change nothing.
        if k % 4 == 3 {
            block.clear();
            enc.write(&block).expect("write of an empty block");
        }
        start += n;
        k += 1;
    }
    enc.finish().expect("finish");
}

/// What symphonia decoded.
pub struct Decoded {
    pub rate: u32,
    pub planes: Vec<Vec<f32>>,
    /// What the container told symphonia about encoder delay and padding, and the length.
    pub delay: Option<u32>,
    pub padding: Option<u32>,
    pub num_frames: Option<u64>,
}

impl Decoded {
    pub fn frames(&self) -> usize {
        self.planes.first().map_or(0, Vec::len)
    }
}

/// Decode `path` with symphonia, gapless (its default), as the real decoder does.
pub fn decode_symphonia(path: &Path) -> Decoded {
    let file = std::fs::File::open(path).expect("open");
    let mss = MediaSourceStream::new(Box::new(file), MediaSourceStreamOptions::default());
    let mut hint = Hint::new();
    if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
        hint.with_extension(ext);
    }
    let mut format = symphonia::default::get_probe()
        .probe(
            &hint,
            mss,
            FormatOptions::default(),
            MetadataOptions::default(),
        )
        .expect("probe");
    let track = format.default_track(TrackType::Audio).expect("audio track");
    let track_id = track.id;
    let (delay, padding, num_frames) = (track.delay, track.padding, track.num_frames);
    let params = track
        .codec_params
        .as_ref()
        .and_then(|c| c.audio())
        .expect("audio params")
        .clone();
    let rate = params.sample_rate.expect("rate");
    let mut dec = sluice_core::decode::codecs()
        .make_audio_decoder(&params, &AudioDecoderOptions::default().gapless(true))
        .expect("decoder");
    let mut planes: Vec<Vec<f32>> = Vec::new();
    let mut tmp: Vec<Vec<f32>> = Vec::new();
    while let Some(packet) = format.next_packet().expect("packet") {
        if packet.track_id != track_id {
            continue;
        }
        let buf = dec.decode(&packet).expect("decode");
        let n = buf.frames();
        if n == 0 {
            continue;
        }
        if planes.is_empty() {
            planes = vec![Vec::new(); buf.num_planes()];
        }
        tmp.resize(buf.num_planes(), Vec::new());
        for p in &mut tmp {
            p.resize(n, 0.0);
        }
        buf.copy_to_slice_planar::<f32, _>(&mut tmp);
        for (d, s) in planes.iter_mut().zip(&tmp) {
            d.extend_from_slice(s);
        }
    }
    Decoded {
        rate,
        planes,
        delay,
        padding,
        num_frames,
    }
}

pub use crate::common::tool;

/// Decode `path` with `ffmpeg -v error -i PATH -f f32le -` into `channels` planes.
pub fn decode_ffmpeg(ffmpeg: &Path, path: &Path, channels: usize) -> Vec<Vec<f32>> {
    let out = Command::new(ffmpeg)
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-f", "f32le", "-"])
        .output()
        .expect("run ffmpeg");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "ffmpeg failed or complained: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let samples: Vec<f32> = out
        .stdout
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    assert_eq!(samples.len() % channels, 0);
    (0..channels)
        .map(|c| samples.iter().skip(c).step_by(channels).copied().collect())
        .collect()
}

/// `ffprobe`'s stream and format fields (`codec_name`, `sample_rate`, `channels`, `bit_rate`,
/// `format_name`, `format.bit_rate`...) as `key=value` pairs.
pub fn ffprobe(ffprobe: &Path, path: &Path) -> Vec<(String, String)> {
    let out = Command::new(ffprobe)
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name,sample_rate,channels,channel_layout,bit_rate,duration_ts:\
             format=format_name,bit_rate:format_tags=iTunSMPB",
            "-of",
            "flat",
        ])
        .arg(path)
        .output()
        .expect("run ffprobe");
    assert!(out.status.success(), "ffprobe failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once('=')?;
            Some((k.to_string(), v.trim_matches('"').to_string()))
        })
        .collect()
}

pub fn field<'a>(fields: &'a [(String, String)], key: &str) -> &'a str {
    fields
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("ffprobe gave no {key}: {fields:?}"))
}

/// The lag (decoded frames behind the input, in `-max..=max`) that best aligns `got` with
/// `want`, by cross-correlation over the first seconds.
pub fn best_lag(want: &[f32], got: &[f32], max: isize) -> isize {
    let n = want.len().min(got.len()).min(96_000);
    let mut best = (0isize, f64::MIN);
    for lag in -max..=max {
        let mut acc = 0.0f64;
        for (i, w) in want[..n].iter().enumerate() {
            let j = i as isize + lag;
            if j >= 0 && (j as usize) < got.len() {
                acc += f64::from(*w) * f64::from(got[j as usize]);
            }
        }
        if acc > best.1 {
            best = (lag, acc);
        }
    }
    best.0
}

/// Signal-to-noise ratio in dB of `got` against `want` with `got` shifted by `lag`, over the
/// frames both have, less `edge` frames at each end.
pub fn snr_db(want: &[f32], got: &[f32], lag: isize, edge: usize) -> f64 {
    let (mut sig, mut err) = (0.0f64, 0.0f64);
    let n = want.len().min(got.len());
    for (i, w) in want
        .iter()
        .enumerate()
        .take(n.saturating_sub(edge))
        .skip(edge)
    {
        let j = i as isize + lag;
        if j < 0 || j as usize >= got.len() {
            continue;
        }
        let (w, g) = (f64::from(*w), f64::from(got[j as usize]));
        sig += w * w;
        err += (w - g) * (w - g);
    }
    10.0 * (sig / err.max(1e-30)).log10()
}

/// RMS level in dBFS.
pub fn rms_db(x: &[f32]) -> f64 {
    let s: f64 = x.iter().map(|v| f64::from(*v) * f64::from(*v)).sum();
    10.0 * (s / x.len().max(1) as f64).max(1e-30).log10()
}

/// Frequency of a pure tone from its interpolated upward zero crossings.
pub fn tone_freq(x: &[f32], rate: u32) -> f64 {
    let mut crossings = Vec::new();
    for i in 1..x.len() {
        let (a, b) = (f64::from(x[i - 1]), f64::from(x[i]));
        if a < 0.0 && b >= 0.0 {
            crossings.push(i as f64 - 1.0 + a / (a - b));
        }
    }
    assert!(crossings.len() > 2, "no tone found");
    let span = crossings[crossings.len() - 1] - crossings[0];
    (crossings.len() - 1) as f64 * f64::from(rate) / span
}

/// Level in dB of the component at `freq` (Goertzel over a whole number of periods
/// approximately; relative use only).
pub fn tone_level_db(x: &[f32], rate: u32, freq: f64) -> f64 {
    let w = 2.0 * PI * freq / f64::from(rate);
    let (mut re, mut im) = (0.0f64, 0.0f64);
    for (i, v) in x.iter().enumerate() {
        re += f64::from(*v) * (w * i as f64).cos();
        im += f64::from(*v) * (w * i as f64).sin();
    }
    let amp = 2.0 * (re * re + im * im).sqrt() / x.len() as f64;
    20.0 * amp.max(1e-30).log10()
}

/// The middle `frames` of `x`.
pub fn middle(x: &[f32], frames: usize) -> &[f32] {
    let start = (x.len().saturating_sub(frames)) / 2;
    &x[start..(start + frames).min(x.len())]
}

/// Like [`snr_db`] at lag 0, after scaling `got` by the least-squares gain (LAME scales its
/// input by 0.95..1 at CBR/ABR bitrates up to 224 kbps); returns (gain, SNR dB).
pub fn snr_gain_fit_db(want: &[f32], got: &[f32], edge: usize) -> (f64, f64) {
    let n = want.len().min(got.len());
    let range = edge..n.saturating_sub(edge);
    let (mut wg, mut gg) = (0.0f64, 0.0f64);
    for i in range.clone() {
        wg += f64::from(want[i]) * f64::from(got[i]);
        gg += f64::from(got[i]) * f64::from(got[i]);
    }
    let gain = if gg > 0.0 { wg / gg } else { 1.0 };
    let (mut sig, mut err) = (0.0f64, 0.0f64);
    for i in range {
        let (w, g) = (f64::from(want[i]), gain * f64::from(got[i]));
        sig += w * w;
        err += (w - g) * (w - g);
    }
    (1.0 / gain, 10.0 * (sig / err.max(1e-30)).log10())
}
