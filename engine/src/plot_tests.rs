//! Renders each plot for synthetic data, decodes the PNG back and checks what
//! was drawn. The colours below mirror the theme constants in `src/plot.rs`.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use crate::plot::{
    LoudnessPlot, SpectrumPlot, WaveformPlot, write_loudness, write_spectrum, write_waveform,
};

const WAVE: [u8; 3] = [72, 166, 226];
const WAVE_OVER: [u8; 3] = [240, 84, 72];
const SHORT_TERM: [u8; 3] = [92, 204, 255];
const INTEGRATED: [u8; 3] = [255, 196, 72];
const TARGET: [u8; 3] = [118, 222, 128];
const SPECTRUM: [u8; 3] = [255, 170, 96];

struct Image {
    w: usize,
    h: usize,
    rgb: Vec<u8>,
}

impl Image {
    fn at(&self, x: usize, y: usize) -> [u8; 3] {
        let i = (y * self.w + x) * 3;
        [self.rgb[i], self.rgb[i + 1], self.rgb[i + 2]]
    }

    fn count(&self, c: [u8; 3]) -> usize {
        self.rgb.chunks_exact(3).filter(|p| *p == c).count()
    }

    fn distinct_colours(&self) -> usize {
        let mut v: Vec<[u8; 3]> = self
            .rgb
            .chunks_exact(3)
            .map(|p| [p[0], p[1], p[2]])
            .collect();
        v.sort_unstable();
        v.dedup();
        v.len()
    }

    /// Rows on which `c` forms a horizontal run covering at least `frac` of the width.
    fn long_runs(&self, c: [u8; 3], frac: f64) -> Vec<usize> {
        (0..self.h)
            .filter(|&y| {
                let n = (0..self.w).filter(|&x| self.at(x, y) == c).count();
                n as f64 >= frac * self.w as f64
            })
            .collect()
    }

    /// Topmost row of column `x` showing colour `c`.
    fn top_of(&self, x: usize, c: [u8; 3]) -> Option<usize> {
        (0..self.h).find(|&y| self.at(x, y) == c)
    }
}

fn decode(path: &Path) -> Image {
    let file = BufReader::new(File::open(path).expect("png exists"));
    let mut reader = png::Decoder::new(file)
        .read_info()
        .expect("valid png header");
    let mut buf = vec![0; reader.output_buffer_size().expect("size")];
    let info = reader.next_frame(&mut buf).expect("valid png data");
    assert_eq!(info.color_type, png::ColorType::Rgb);
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    buf.truncate(info.buffer_size());
    Image {
        w: info.width as usize,
        h: info.height as usize,
        rgb: buf,
    }
}

/// Valid, 1200 px wide, of a sane height, and not a blank single colour.
fn assert_sane(img: &Image) {
    assert_eq!(img.w, 1200);
    assert!((250..=900).contains(&img.h), "height {}", img.h);
    assert!(img.distinct_colours() > 8, "image looks blank");
}

fn no_temp_files_left(dir: &Path) {
    let names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names
            .iter()
            .all(|n| !n.ends_with(".tmp") && !n.ends_with(".part")),
        "temp files left: {names:?}"
    );
}

fn sine_buckets(n: usize, amp: f32) -> (Vec<f32>, Vec<f32>) {
    let maxs: Vec<f32> = (0..n)
        .map(|i| amp * (0.6 + 0.4 * (i as f32 * 0.05).sin().abs()))
        .collect();
    let mins = maxs.iter().map(|v| -v).collect();
    (mins, maxs)
}

fn waveform(dir: &Path, name: &str, plot: &WaveformPlot) -> Image {
    let path = dir.join(name);
    write_waveform(&path, plot).unwrap();
    decode(&path)
}

fn loudness(dir: &Path, name: &str, plot: &LoudnessPlot) -> Image {
    let path = dir.join(name);
    write_loudness(&path, plot).unwrap();
    decode(&path)
}

fn spectrum(dir: &Path, name: &str, plot: &SpectrumPlot) -> Image {
    let path = dir.join(name);
    write_spectrum(&path, plot).unwrap();
    decode(&path)
}

#[test]
fn waveform_draws_each_channel_lane() {
    let dir = tempfile::tempdir().unwrap();
    let (l_min, l_max) = sine_buckets(5000, 0.8);
    // Right channel: loud first half, silent second half.
    let (mut r_min, mut r_max) = sine_buckets(5000, 0.8);
    for v in r_min[2500..].iter_mut().chain(r_max[2500..].iter_mut()) {
        *v = 0.0;
    }
    let img = waveform(
        dir.path(),
        "wave.png",
        &WaveformPlot {
            title: "sine.wav",
            duration_seconds: 180.0,
            channels: vec![("L", &l_min, &l_max), ("R", &r_min, &r_max)],
        },
    );
    assert_sane(&img);
    assert!(img.count(WAVE) > 50_000, "waveform fill missing");
    assert_eq!(img.count(WAVE_OVER), 0, "no overs in a -2 dBFS signal");

    // The fill in a loud column spans a tall range in both lanes; in the silent
    // half of the right lane it is at most a line.
    let column_rows =
        |x: usize, y0: usize, y1: usize| (y0..y1).filter(|&y| img.at(x, y) == WAVE).count();
    let half = img.h / 2;
    assert!(column_rows(300, 0, half) > 60);
    assert!(column_rows(300, half, img.h) > 60);
    assert!(column_rows(1000, 0, half) > 60);
    let silent = column_rows(1000, half, img.h);
    assert!(
        (1..=2).contains(&silent),
        "silent column drew {silent} rows"
    );
    no_temp_files_left(dir.path());
}

#[test]
fn waveform_marks_overs_and_handles_few_buckets() {
    let dir = tempfile::tempdir().unwrap();
    // Only 40 buckets for 1100+ pixel columns, peaking above full scale.
    let maxs: Vec<f32> = (0..40).map(|i| if i == 20 { 1.6 } else { 0.5 }).collect();
    let mins: Vec<f32> = maxs.iter().map(|v| -v).collect();
    let img = waveform(
        dir.path(),
        "overs.png",
        &WaveformPlot {
            title: "hot float.wav",
            duration_seconds: 4.0,
            channels: vec![("M", &mins, &maxs)],
        },
    );
    assert_sane(&img);
    assert!(img.count(WAVE_OVER) > 20, "overs not highlighted");
    // Interpolated envelope: every plot column has fill.
    let filled = (76..1172)
        .filter(|&x| (0..img.h).any(|y| img.at(x, y) == WAVE))
        .count();
    assert!(filled > 1080, "only {filled} columns filled");
}

#[test]
fn waveform_eight_channels_fit() {
    let dir = tempfile::tempdir().unwrap();
    let data: Vec<(Vec<f32>, Vec<f32>)> = (0..8).map(|_| sine_buckets(800, 0.7)).collect();
    let labels = ["L", "R", "C", "LFE", "Ls", "Rs", "Lb", "Rb"];
    let img = waveform(
        dir.path(),
        "8ch.png",
        &WaveformPlot {
            title: "surround.wav",
            duration_seconds: 12.0,
            channels: labels
                .iter()
                .zip(&data)
                .map(|(l, (mn, mx))| (*l, mn.as_slice(), mx.as_slice()))
                .collect(),
        },
    );
    assert_sane(&img);
    assert!(img.h <= 800);
    // Each eighth of the lanes area has waveform in it.
    let x = 600;
    let rows: Vec<usize> = (0..img.h).filter(|&y| img.at(x, y) == WAVE).collect();
    let mut bands = rows.iter().map(|y| y * 8 / img.h).collect::<Vec<_>>();
    bands.dedup();
    assert!(bands.len() >= 7, "lanes hit: {bands:?}");
}

#[test]
fn loudness_draws_history_integrated_and_target() {
    let dir = tempfile::tempdir().unwrap();
    // 60 s ramp from -40 to -10 LUFS with a 3 s gap of silence in the middle.
    let n = 600;
    let hist: Vec<Option<f64>> = (0..n)
        .map(|i| {
            let t = i as f64 * 0.1;
            (!(30.0..33.0).contains(&t)).then_some(-40.0 + 30.0 * t / 60.0)
        })
        .collect();
    let img = loudness(
        dir.path(),
        "loud.png",
        &LoudnessPlot {
            title: "ramp.wav",
            step_seconds: 0.1,
            momentary: &hist,
            short_term: &hist,
            integrated: Some(-20.0),
            target: Some(("Spotify", -14.0)),
        },
    );
    assert_sane(&img);
    assert!(img.count(SHORT_TERM) > 1000, "short-term curve missing");

    let target_rows = img.long_runs(TARGET, 0.8);
    assert!(!target_rows.is_empty(), "target line missing");
    let integrated_rows = img.long_runs(INTEGRATED, 0.45); // dashed
    assert!(!integrated_rows.is_empty(), "integrated line missing");
    // -14 LUFS sits above -20 LUFS: 6 LU apart on a 60 LU axis.
    let (t, i) = (target_rows[0] as f64, integrated_rows[0] as f64);
    assert!(i > t + 20.0 && i < t + 70.0, "target {t}, integrated {i}");

    // The curve rises: it is higher (smaller y) at the right than at the left.
    let left = img.top_of(120, SHORT_TERM).expect("curve at left");
    let right = img.top_of(1100, SHORT_TERM).expect("curve at right");
    assert!(right + 100 < left, "left {left}, right {right}");
    // The silent gap leaves a column with no curve at all (30..33 s of 60 s).
    let gap_x = 76 + ((31.5 / 60.0) * (1172.0 - 76.0)) as usize;
    assert_eq!(img.top_of(gap_x, SHORT_TERM), None, "gap was bridged");
}

#[test]
fn loudness_target_row_scales_linearly() {
    let dir = tempfile::tempdir().unwrap();
    let hist = [Some(-30.0); 10];
    let row_for = |lufs: f64| {
        let img = loudness(
            dir.path(),
            "target.png",
            &LoudnessPlot {
                title: "t",
                step_seconds: 0.1,
                momentary: &hist,
                short_term: &hist,
                integrated: None,
                target: Some(("EBU R128", lufs)),
            },
        );
        let rows = img.long_runs(TARGET, 0.8);
        assert!(!rows.is_empty(), "no target line for {lufs}");
        rows.iter().sum::<usize>() as f64 / rows.len() as f64
    };
    let (r6, r30, r54) = (row_for(-6.0), row_for(-30.0), row_for(-54.0));
    assert!(r6 < r30 && r30 < r54);
    assert!(
        (r30 - (r6 + r54) / 2.0).abs() <= 1.5,
        "{r6} {r30} {r54} not linear"
    );
}

#[test]
fn spectrum_draws_curve_and_bands() {
    let dir = tempfile::tempdir().unwrap();
    let freqs: Vec<f64> = (0..=4096).map(|k| k as f64 * 48_000.0 / 8192.0).collect();
    let db: Vec<f64> = freqs
        .iter()
        .map(|&f| {
            if f == 0.0 {
                f64::NEG_INFINITY
            } else {
                -10.0 * (f / 1000.0).log10()
            }
        })
        .collect();
    let bands = [
        ("Sub", 20.0, 60.0, 10.0),
        ("Low", 60.0, 250.0, 30.0),
        ("Low-mid", 250.0, 2000.0, 35.0),
        ("High-mid", 2000.0, 6000.0, 15.0),
        ("High", 6000.0, 20000.0, 10.0),
    ];
    let img = spectrum(
        dir.path(),
        "spec.png",
        &SpectrumPlot {
            title: "pink.wav",
            freqs_hz: &freqs,
            db: &db,
            bands: &bands,
        },
    );
    assert_sane(&img);
    assert!(img.count(SPECTRUM) > 1000, "spectrum curve missing");
    // Pink noise falls with frequency: the curve is lower at 10 kHz than at 100 Hz.
    let x_of = |f: f64| 76.0 + (f / 20.0).ln() / (1000.0f64).ln() * (1172.0 - 76.0);
    let low = img.top_of(x_of(100.0) as usize, SPECTRUM).unwrap();
    let high = img.top_of(x_of(10_000.0) as usize, SPECTRUM).unwrap();
    // 20 dB over 2 decades on a 90 dB axis spanning ~400 px.
    assert!(high > low + 60, "low {low}, high {high}");
    // Band shading makes the five regions differ from each other in the plot.
    let y = img.h - 80;
    let shades: Vec<[u8; 3]> = [30.0, 120.0, 700.0, 3500.0, 12000.0]
        .iter()
        .map(|&f| img.at(x_of(f) as usize, y))
        .collect();
    let mut distinct = shades.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), 5, "band shades {shades:?}");
}

#[test]
fn spectrum_clips_to_nyquist() {
    let dir = tempfile::tempdir().unwrap();
    // 16 kHz material: Nyquist 8 kHz, so the curve reaches the right edge.
    let freqs: Vec<f64> = (1..=512).map(|k| k as f64 * 8000.0 / 512.0).collect();
    let db = vec![-20.0; freqs.len()];
    let img = spectrum(
        dir.path(),
        "nyq.png",
        &SpectrumPlot {
            title: "phone.wav",
            freqs_hz: &freqs,
            db: &db,
            bands: &[],
        },
    );
    assert_sane(&img);
    assert!(img.top_of(1165, SPECTRUM).is_some(), "curve stops short");
}

/// A title no picture has room for.
const LONG_TITLE: &str =
    "ünïcödé — a very long title that keeps going and going and going and going.wav";

#[test]
fn waveform_edge_cases_still_produce_valid_pngs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let nan = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 0.5];
    let one = [0.3f32];
    let empty: [f32; 0] = [];
    let long_min = vec![-0.5f32; 2_000_000];
    let long_max = vec![0.5f32; 2_000_000];
    let short_max = [0.5f32; 10];
    let title = LONG_TITLE;
    let waves = [
        WaveformPlot {
            title: "",
            duration_seconds: 0.0,
            channels: vec![],
        },
        WaveformPlot {
            title,
            duration_seconds: f64::NAN,
            channels: vec![("", &empty, &empty)],
        },
        WaveformPlot {
            title: "nan",
            duration_seconds: -3.0,
            channels: vec![("L", &nan, &nan), ("R", &one, &one)],
        },
        WaveformPlot {
            title: "10 hours",
            duration_seconds: 36_000.0,
            channels: vec![("L", &long_min, &long_max), ("R", &long_min, &short_max)],
        },
        WaveformPlot {
            title: "inf",
            duration_seconds: f64::INFINITY,
            channels: vec![("L", &nan, &one)],
        },
    ];
    for (i, w) in waves.iter().enumerate() {
        let img = waveform(d, &format!("w{i}.png"), w);
        assert_eq!(img.w, 1200);
    }
    let many: Vec<(&str, &[f32], &[f32])> = (0..32).map(|_| ("ch", &one[..], &one[..])).collect();
    let img = waveform(
        d,
        "w32.png",
        &WaveformPlot {
            title: "32 channels",
            duration_seconds: 1.0,
            channels: many,
        },
    );
    assert_eq!(img.w, 1200);
    no_temp_files_left(d);
}

#[test]
fn loudness_edge_cases_still_produce_valid_pngs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let none = [None; 100];
    let single = [Some(-18.0)];
    let weird = [
        Some(f64::NAN),
        Some(f64::INFINITY),
        Some(-200.0),
        Some(12.0),
    ];
    let long: Vec<Option<f64>> = (0..400_000)
        .map(|i| (i % 1000 != 0).then_some(-20.0 + (i as f64 * 0.01).sin() * 5.0))
        .collect();
    let louds = [
        LoudnessPlot {
            title: "empty",
            step_seconds: 0.1,
            momentary: &[],
            short_term: &[],
            integrated: None,
            target: None,
        },
        LoudnessPlot {
            title: "all none",
            step_seconds: 0.1,
            momentary: &none,
            short_term: &none,
            integrated: None,
            target: Some(("", -23.0)),
        },
        LoudnessPlot {
            title: "single",
            step_seconds: 0.0,
            momentary: &single,
            short_term: &[],
            integrated: Some(-18.0),
            target: Some(("Apple", -16.0)),
        },
        LoudnessPlot {
            title: "weird",
            step_seconds: f64::NAN,
            momentary: &weird,
            short_term: &weird,
            integrated: Some(f64::NAN),
            target: Some(("x", f64::NEG_INFINITY)),
        },
        LoudnessPlot {
            title: "11 hours",
            step_seconds: 0.1,
            momentary: &long,
            short_term: &long,
            integrated: Some(-20.0),
            target: Some(("YouTube", -14.0)),
        },
    ];
    for (i, l) in louds.iter().enumerate() {
        let img = loudness(d, &format!("l{i}.png"), l);
        assert_sane(&img);
    }
    no_temp_files_left(d);
}

#[test]
fn spectrum_edge_cases_still_produce_valid_pngs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let f1 = [1000.0];
    let d1 = [-12.0];
    let fbad = [f64::NAN, 0.0, -5.0, 10.0, 100.0, f64::INFINITY];
    let dbad = [f64::NAN, f64::INFINITY, -1e300, f64::NEG_INFINITY, 0.0, 5.0];
    let ninf = [f64::NEG_INFINITY; 3];
    let f3 = [100.0, 200.0, 300.0];
    let bad_bands = [
        ("inverted", 500.0, 100.0, 10.0),
        ("nan", f64::NAN, 100.0, f64::NAN),
        ("a band with a very long name", 20.0, 22.0, 99.0),
        ("", 0.0, 1e9, -5.0),
        ("sixth", 100.0, 200.0, 1.0),
        ("seventh", 300.0, 400.0, 1.0),
    ];
    let specs = [
        SpectrumPlot {
            title: "empty",
            freqs_hz: &[],
            db: &[],
            bands: &[],
        },
        SpectrumPlot {
            title: "single",
            freqs_hz: &f1,
            db: &d1,
            bands: &bad_bands,
        },
        SpectrumPlot {
            title: "bad",
            freqs_hz: &fbad,
            db: &dbad,
            bands: &bad_bands,
        },
        SpectrumPlot {
            title: "silent",
            freqs_hz: &f3,
            db: &ninf,
            bands: &[],
        },
        SpectrumPlot {
            title: "mismatched",
            freqs_hz: &f3,
            db: &d1,
            bands: &[],
        },
    ];
    for (i, s) in specs.iter().enumerate() {
        let img = spectrum(d, &format!("s{i}.png"), s);
        assert_sane(&img);
    }
    no_temp_files_left(d);
}

#[test]
fn overwrites_in_place_and_names_the_path_on_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plot.png");
    std::fs::write(&path, b"old junk").unwrap();
    let (mn, mx) = sine_buckets(100, 0.5);
    let plot = WaveformPlot {
        title: "x",
        duration_seconds: 1.0,
        channels: vec![("L", &mn, &mx)],
    };
    write_waveform(&path, &plot).unwrap();
    assert_eq!(decode(&path).w, 1200);
    no_temp_files_left(dir.path());

    let missing: PathBuf = dir.path().join("no such dir").join("plot.png");
    let err = write_waveform(&missing, &plot).unwrap_err();
    assert!(
        err.to_string().contains(&missing.display().to_string()),
        "{err}"
    );
    let err = write_spectrum(
        Path::new("/"),
        &SpectrumPlot {
            title: "",
            freqs_hz: &[],
            db: &[],
            bands: &[],
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains('/'), "{err}");
}
