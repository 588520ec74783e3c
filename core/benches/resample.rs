//! Speed of the resampling stage, with SoX (`rate -v`) and FFmpeg's soxr on the same input in
//! the same run.
//!
//! Run with `cargo bench -p sluice-core --bench resample`. The input is 60 s of stereo
//! [`sluice_core::signal::programme`]; the stage runs in memory, in blocks of 4096 frames, and
//! its figure is audio seconds per wall-clock second (× real time) for the stereo pair. The
//! tools read a 32-bit float WAV file from a temporary directory and write to their null
//! output; their figure is given as measured, and net of the same command without the
//! resampling (`sox in.wav -n`, `ffmpeg -i in.wav -f null -`), which takes the process start
//! and the file reading out. A tool that is missing is skipped with a message. Best of 5 runs.

use sluice_core::render::resample::{Resample, ResampleQuality};
use sluice_core::render::{Block, SignalSpec, Stage};
use sluice_core::signal;
use std::hint::black_box;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SECONDS: usize = 60;
const BLOCK: usize = 4096;
const RUNS: usize = 5;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn main() {
    if let Err(e) = run() {
        eprintln!("bench failed: {e}");
        std::process::exit(1);
    }
}

fn run() -> Res<()> {
    let dir = tempfile::tempdir()?;
    for (from, to) in [(44_100u32, 48_000u32), (96_000, 44_100)] {
        let planes = signal::programme(from, 2, from as usize * SECONDS, 1);
        println!("{} kHz → {} kHz, {SECONDS} s stereo:", khz(from), khz(to));
        for q in [ResampleQuality::Sinc, ResampleQuality::Fft] {
            let t = best(|| stage_once(&planes, from, to, q));
            println!(
                "  sluice {:<28} {:>7.0} × real time",
                format!("{q:?}"),
                rt(t)
            );
        }
        let input = dir.path().join(format!("in_{from}.wav"));
        write_wav(&input, &planes, from)?;
        let rate = to.to_string();
        let ff_null = ["-c:a", "pcm_f32le", "-f", "null", "-"];
        let ff_in = ["-v", "error", "-i", p(&input)];
        let ff_soxr = ["-af", "aresample=resampler=soxr:precision=28", "-ar", &rate];
        let ff_swr = ["-ar", &rate];
        let tools: [(&str, &str, Vec<&str>, Vec<&str>); 3] = [
            (
                "sox rate -v",
                "sox",
                vec![p(&input), "-n", "rate", "-v", &rate],
                vec![p(&input), "-n"],
            ),
            (
                "ffmpeg soxr precision 28",
                "ffmpeg",
                [&ff_in[..], &ff_soxr, &ff_null].concat(),
                [&ff_in[..], &ff_null].concat(),
            ),
            (
                "ffmpeg swr (default)",
                "ffmpeg",
                [&ff_in[..], &ff_swr, &ff_null].concat(),
                [&ff_in[..], &ff_null].concat(),
            ),
        ];
        for (label, tool, args, base_args) in tools {
            let (Some(t), Some(base)) = (time_tool(tool, &args), time_tool(tool, &base_args))
            else {
                println!("  {label:<28} skipped ({tool} missing or failed)");
                continue;
            };
            let net = t.saturating_sub(base);
            println!(
                "  {label:<28} {:>7.0} × real time ({:.0} × net of the {tool} start and read)",
                rt(t),
                rt(net)
            );
        }
    }
    Ok(())
}

fn khz(hz: u32) -> String {
    format!("{}", f64::from(hz) / 1000.0)
}

fn p(path: &Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}

fn rt(t: Duration) -> f64 {
    SECONDS as f64 / t.as_secs_f64().max(1e-9)
}

fn best(mut f: impl FnMut() -> Duration) -> Duration {
    (0..RUNS).map(|_| f()).min().expect("RUNS > 0")
}

fn stage_once(planes: &[Vec<f32>], from: u32, to: u32, q: ResampleQuality) -> Duration {
    let t0 = Instant::now();
    let mut st = Resample::new(to, q);
    st.start(&SignalSpec::with_channels(from, planes.len()))
        .expect("start");
    let mut block = Block::new(planes.len());
    let mut frames = 0usize;
    for start in (0..planes[0].len()).step_by(BLOCK) {
        let end = (start + BLOCK).min(planes[0].len());
        block.reset(planes.len());
        for (d, s) in block.planes_mut().iter_mut().zip(planes) {
            d.extend_from_slice(&s[start..end]);
        }
        st.process(&mut block);
        frames += black_box(&block).frames();
    }
    block.reset(planes.len());
    st.finish(&mut block);
    frames += block.frames();
    black_box(frames);
    t0.elapsed()
}

fn time_tool(tool: &str, args: &[&str]) -> Option<Duration> {
    let mut times = Vec::new();
    for _ in 0..RUNS {
        let t0 = Instant::now();
        let ok = Command::new(tool)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .ok()?
            .success();
        if !ok {
            return None;
        }
        times.push(t0.elapsed());
    }
    times.into_iter().min()
}

fn write_wav(path: &Path, planes: &[Vec<f32>], rate: u32) -> Res<()> {
    let spec = hound::WavSpec {
        channels: planes.len() as u16,
        sample_rate: rate,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let mut w = hound::WavWriter::create(path, spec)?;
    for i in 0..planes[0].len() {
        for p in planes {
            w.write_sample(p[i])?;
        }
    }
    w.finalize()?;
    Ok(())
}
