//! Helpers shared by the host's benches: argument lookup, timing whole processes with their
//! peak RSS, and the programme-material WAV they run on (written by a child process).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

pub const RATE: u32 = 48_000;

pub type Res<T> = Result<T, Box<dyn std::error::Error>>;

#[derive(Clone)]
pub struct Run {
    pub wall: f64,
    /// User + system CPU time of the process, seconds (the machine may be shared: wall time
    /// alone says little).
    pub cpu: f64,
    pub rss_mb: f64,
    /// What the process wrote to stderr.
    pub log: String,
}

pub fn has_flag(name: &str) -> bool {
    std::env::args().any(|a| a == name)
}

pub fn arg_value(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

pub fn verdict(pass: bool) -> &'static str {
    if pass { "PASS" } else { "FAIL" }
}

pub fn which(tool: &str) -> bool {
    Command::new(tool)
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Run `exe args` (with `{}` replaced by `file`), output discarded; wall time and peak RSS.
pub fn time_process(exe: &Path, args: &[&str], file: &Path) -> Res<Run> {
    let args: Vec<String> = args
        .iter()
        .map(|a| {
            if *a == "{}" {
                file.display().to_string()
            } else {
                a.to_string()
            }
        })
        .collect();
    // stderr goes to a file: ffmpeg's ebur128 logs every 100 ms, which would fill a pipe.
    let log_path = std::env::temp_dir().join(format!("sluice-bench-{}.log", std::process::id()));
    let log = std::fs::File::create(&log_path)?;
    let t = Instant::now();
    let child = Command::new(exe)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|e| format!("{}: {e}", exe.display()))?;
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: rusage is plain data, filled by the kernel; pid is our child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `status` and `usage` are ours and outlive the call; `pid` is our child.
    let got = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = t.elapsed().as_secs_f64();
    if got != pid || !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        let err = std::fs::read_to_string(&log_path).unwrap_or_default();
        let err: String = err.lines().rev().take(5).collect::<Vec<_>>().join("\n");
        return Err(format!(
            "{} {:?} failed (status {status}): {err}",
            exe.display(),
            args
        )
        .into());
    }
    drop(child);
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    let _ = std::fs::remove_file(&log_path);
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Ok(Run {
        wall,
        cpu: secs(usage.ru_utime) + secs(usage.ru_stime),
        rss_mb: usage.ru_maxrss as f64 / 1024.0,
        log,
    })
}

/// The kinds of material the benches run on: our programme mix (regular, moderate level),
/// a loud dense master (near full scale, inter-sample peaks) and acoustic material with a
/// wide dynamic range in a room. Benches report the worst of them.
pub const MATERIALS: [&str; 3] = ["programme", "dense", "acoustic"];

/// The environment variable naming a folder of recordings (any audio ffmpeg decodes) that the
/// benches add as a fourth material, `recordings`: real music no generator of ours made.
/// `host/benches/recordings.sh` installs one (Debian's Wesnoth soundtrack, 2.5 hours of
/// orchestral music) and runs the benches with it.
pub const RECORDINGS_ENV: &str = "SLUICE_BENCH_RECORDINGS";

/// The materials of this run: [`MATERIALS`], and `recordings` when [`RECORDINGS_ENV`] names a
/// folder.
pub fn materials() -> Vec<&'static str> {
    let mut m = MATERIALS.to_vec();
    if std::env::var_os(RECORDINGS_ENV).is_some() {
        m.push("recordings");
    }
    m
}

/// A WAV of `minutes` minutes of programme material (written by a child process).
pub fn programme_wav(dir: &Path, minutes: usize) -> Res<PathBuf> {
    material_wav(dir, "programme", minutes)
}

/// A WAV of `minutes` minutes of `kind` (one of [`MATERIALS`]), written by a child process of
/// this bench (`--write-wav MINUTES --kind KIND --dir DIR`, see [`write_material_wav`]).
pub fn material_wav(dir: &Path, kind: &str, minutes: usize) -> Res<PathBuf> {
    let path = dir.join(format!("{kind}-{minutes}min.wav"));
    let expected = 44 + (minutes * RATE as usize * 60 * 4) as u64;
    if std::fs::metadata(&path).is_ok_and(|m| m.len() == expected) {
        return Ok(path);
    }
    let status = Command::new(std::env::current_exe()?)
        .args(["--write-wav", &minutes.to_string(), "--kind", kind, "--dir"])
        .arg(dir)
        .status()?;
    if !status.success() || !std::fs::metadata(&path).is_ok_and(|m| m.len() == expected) {
        return Err(format!("could not write {}", path.display()).into());
    }
    Ok(path)
}

/// The child mode of every bench (`--write-wav MINUTES --kind KIND --dir DIR`, run by
/// [`material_wav`]): the file written, when the bench was started so.
pub fn material_child() -> Option<Res<()>> {
    let minutes = arg_value("--write-wav")?;
    Some((|| {
        let dir = PathBuf::from(arg_value("--dir").ok_or("--dir missing")?);
        let kind = arg_value("--kind").unwrap_or_else(|| "programme".into());
        write_material_wav(&dir, &kind, minutes.parse()?)
    })())
}

/// The child's side of [`material_wav`]: one minute of `kind`, repeated `minutes` times.
pub fn write_material_wav(dir: &Path, kind: &str, minutes: usize) -> Res<()> {
    let path = dir.join(format!("{kind}-{minutes}min.wav"));
    if kind == "recordings" {
        return write_recordings_wav(&path, minutes);
    }
    let frames = RATE as usize * 60;
    let planes = match kind {
        "programme" => sluice_core::signal::programme(RATE, 2, frames, 2026),
        "dense" => sluice_core::signal::dense_master(RATE, 60.0, 2026),
        "acoustic" => sluice_core::signal::acoustic(RATE, 60.0, 2026),
        other => return Err(format!("unknown material {other}").into()),
    };
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let tmp = path.with_extension("wav.part");
    let mut w = hound::WavWriter::create(&tmp, spec)?;
    for _ in 0..minutes {
        let mut i16w = w.get_i16_writer((frames * 2) as u32);
        for i in 0..frames {
            for p in &planes {
                i16w.write_sample((p[i] * 32767.0).round().clamp(-32768.0, 32767.0) as i16);
            }
        }
        i16w.flush()?;
    }
    w.finalize()?;
    std::fs::rename(&tmp, &path)?;
    Ok(())
}

/// `minutes` of the recordings in the folder [`RECORDINGS_ENV`] names, one after another in
/// the order of their names (from the first again when they run out), converted by ffmpeg to
/// 48 kHz stereo 16-bit: the same format as the generated materials.
fn write_recordings_wav(path: &Path, minutes: usize) -> Res<()> {
    let folder = std::env::var_os(RECORDINGS_ENV).ok_or("no recordings folder")?;
    let folder = Path::new(&folder);
    let mut files: Vec<PathBuf> = std::fs::read_dir(folder)
        .map_err(|e| format!("{}: {e}", folder.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                ["ogg", "flac", "mp3", "wav", "opus", "m4a"]
                    .contains(&e.to_ascii_lowercase().as_str())
            })
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(format!("{}: no audio files", folder.display()).into());
    }
    // Each file decoded on its own by ffmpeg to 48 kHz stereo 16-bit and appended, the list
    // looped until the length is reached. (ffmpeg's concat demuxer took the files as one
    // stream decoded with the first file's Vorbis setup: pieces with other codebooks came out
    // as full-scale noise — the 60-minute file measured -1.2 LUFS and +7 dBTP.)
    let frames = minutes * RATE as usize * 60;
    let tmp = path.with_extension("part.wav");
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&tmp, spec)?;
    let mut written = 0usize;
    'fill: loop {
        for f in &files {
            let mut child = Command::new("ffmpeg")
                .args(["-v", "error", "-nostdin", "-i"])
                .arg(f)
                .args(["-af"])
                .arg(format!("aresample={RATE}:resampler=soxr:precision=28"))
                .args(["-ac", "2", "-f", "s16le", "-"])
                .stdout(Stdio::piped())
                .spawn()
                .map_err(|e| format!("ffmpeg: {e}"))?;
            let mut out = child.stdout.take().ok_or("no ffmpeg output")?;
            let mut buf = vec![0u8; 1 << 16];
            let mut pending: Vec<u8> = Vec::new();
            loop {
                let n = std::io::Read::read(&mut out, &mut buf)?;
                if n == 0 {
                    break;
                }
                pending.extend_from_slice(&buf[..n]);
                let whole = pending.len() / 4 * 4;
                for fr in pending[..whole].chunks_exact(4) {
                    if written == frames {
                        break;
                    }
                    w.write_sample(i16::from_le_bytes([fr[0], fr[1]]))?;
                    w.write_sample(i16::from_le_bytes([fr[2], fr[3]]))?;
                    written += 1;
                }
                pending.drain(..whole);
                if written == frames {
                    let _ = child.kill();
                    let _ = child.wait();
                    break 'fill;
                }
            }
            if !child.wait()?.success() {
                return Err(format!("ffmpeg could not decode {}", f.display()).into());
            }
        }
    }
    w.finalize()?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// A bench's exit: success when it ran and met its targets; an error is printed.
pub fn exit_code(result: Res<bool>) -> ExitCode {
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("bench failed: {e}");
            ExitCode::FAILURE
        }
    }
}
