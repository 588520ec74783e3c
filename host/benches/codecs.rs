//! The delivery codecs' encode and decode time against ffmpeg's for the same codec, in the
//! same run, in alternating pairs:
//!
//! ```sh
//! cargo bench -p sluice-host --bench codecs                 # 60-minute files (the issue's figure)
//! cargo bench -p sluice-host --bench codecs -- --minutes 10
//! ```
//!
//! On a 48 kHz stereo 16-bit WAV of each material (`common::MATERIALS`, and real recordings
//! with `host/benches/recordings.sh`), each in a child process timed with `wait4`:
//!
//! - encode: this bench's child decodes the WAV with Sluice's decoder and feeds the Opus
//!   encoder (`--encode`), against `ffmpeg -i SRC -c:a libopus -b:a 128k OUT.opus` (Debian's
//!   libopus 1.3.1, C with its SIMD paths); both at 128 kbit/s VBR; and the AAC-LC encoder
//!   (FDK AAC) against ffmpeg's native `aac` encoder, both at 192 kbit/s;
//! - decode: the child decodes ffmpeg's Opus (and AAC) file through Sluice's decoder to
//!   nothing (`--decode`), against `ffmpeg -i OUT -f null -`;
//! - and, for information, the whole `sluice export SRC -o OUT.opus --bitrate 128` (its
//!   loudness report and the lossy true-peak check, which decodes what it wrote, included)
//!   against the same ffmpeg encode.
//!
//! Each pair runs twice, alternating, and the faster of each is kept: wall and CPU time,
//! × real time, and the ratios by wall and by CPU (the machine is shared). The verdict (issue
//! 48): the codec within 1.2× of the peer's CPU time or faster on the worst material.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

fn main() -> ExitCode {
    exit_code(run())
}

/// The faster of two runs.
fn best(a: Run, b: Run) -> Run {
    if b.wall < a.wall { b } else { a }
}

struct Row {
    material: &'static str,
    what: &'static str,
    ours: Run,
    theirs: Run,
    /// Counted in the verdict.
    verdict: bool,
}

/// The child of an encode: Sluice's decoder into the encoder `codec` names (Opus at 128 kbit/s,
/// AAC-LC at 192 kbit/s CBR).
fn encode_child(src: &Path, out: &Path, codec: &str) -> Res<()> {
    use sluice_core::encode::Encoder;
    use sluice_core::encode::aac::{AacEncoder, AacOptions};
    use sluice_core::encode::opus::{OpusEncoder, OpusOptions};
    let mut d = sluice_core::Decoder::open(src)?;
    let spec = sluice_core::render::SignalSpec::with_channels(
        d.info().sample_rate,
        d.info().channels as usize,
    );
    let file = std::fs::File::create(out)?;
    let mut enc: Box<dyn Encoder> = match codec {
        "aac" => Box::new(AacEncoder::new(
            file,
            out.to_path_buf(),
            &spec,
            &AacOptions {
                bitrate_kbps: Some(192),
                ..AacOptions::default()
            },
        )?),
        _ => Box::new(OpusEncoder::new(
            file,
            out.to_path_buf(),
            &spec,
            &OpusOptions {
                bitrate_kbps: Some(128),
            },
        )?),
    };
    while let Some(b) = d.next_block()? {
        let block =
            sluice_core::render::Block::from_planes(b.planes().map(<[f32]>::to_vec).collect());
        enc.write(&block)?;
    }
    enc.finish()?;
    Ok(())
}

/// The child of a decode: every block of `src` through Sluice's decoder, kept from the
/// optimiser.
fn decode_child(src: &Path) -> Res<()> {
    let mut d = sluice_core::Decoder::open(src)?;
    let mut sum = 0f32;
    while let Some(b) = d.next_block()? {
        sum += b
            .planes()
            .map(|p| p.first().copied().unwrap_or(0.0))
            .sum::<f32>();
    }
    std::hint::black_box(sum);
    Ok(())
}

fn run() -> Res<bool> {
    if let Some(src) = arg_value("--encode") {
        let out = PathBuf::from(arg_value("--out").ok_or("--out missing")?);
        let codec = arg_value("--codec").unwrap_or_else(|| "opus".into());
        return encode_child(Path::new(&src), &out, &codec).map(|()| true);
    }
    if let Some(src) = arg_value("--decode") {
        return decode_child(Path::new(&src)).map(|()| true);
    }
    if let Some(m) = arg_value("--write-wav") {
        let dir = PathBuf::from(arg_value("--dir").ok_or("--dir missing")?);
        let kind = arg_value("--kind").unwrap_or_else(|| "programme".into());
        write_material_wav(&dir, &kind, m.parse()?)?;
        return Ok(true);
    }
    if !which("ffmpeg") {
        eprintln!("codecs bench: ffmpeg is needed as the peer");
        return Ok(false);
    }
    let minutes: usize = arg_value("--minutes").map_or(Ok(60), |m| m.parse())?;
    let dir = std::env::temp_dir().join("sluice-bench-codecs");
    std::fs::create_dir_all(&dir)?;
    let sluice = PathBuf::from(env!("CARGO_BIN_EXE_sluice"));
    let ffmpeg = Path::new("ffmpeg");
    let seconds = minutes as f64 * 60.0;
    let mut rows = Vec::new();
    for material in materials() {
        let src = material_wav(&dir, material, minutes)?;
        let ours_out = dir.join("ours.opus");
        let theirs_out = dir.join("theirs.opus");
        let dec = dir.join("decoded.wav");
        let me = std::env::current_exe()?;
        let ours_arg = ours_out.to_str().unwrap().to_string();
        let enc_ours = || time_process(&me, &["--encode", "{}", "--out", &ours_arg], &src);
        let enc_theirs = || {
            time_process(
                ffmpeg,
                &[
                    "-v",
                    "error",
                    "-y",
                    "-i",
                    "{}",
                    "-c:a",
                    "libopus",
                    "-b:a",
                    "128k",
                    theirs_out.to_str().unwrap(),
                ],
                &src,
            )
        };
        let (a1, b1) = (enc_ours()?, enc_theirs()?);
        let (b2, a2) = (enc_theirs()?, enc_ours()?);
        let ffmpeg_encode = best(b1, b2);
        rows.push(Row {
            material,
            what: "Opus encode 128k",
            ours: best(a1, a2),
            theirs: ffmpeg_encode.clone(),
            verdict: true,
        });
        let dec_ours = || time_process(&me, &["--decode", "{}"], &theirs_out);
        let dec_theirs = || {
            time_process(
                ffmpeg,
                &["-v", "error", "-i", "{}", "-f", "null", "-"],
                &theirs_out,
            )
        };
        let (a1, b1) = (dec_ours()?, dec_theirs()?);
        let (b2, a2) = (dec_theirs()?, dec_ours()?);
        rows.push(Row {
            material,
            what: "Opus decode",
            ours: best(a1, a2),
            theirs: best(b1, b2),
            verdict: true,
        });
        let export = time_process(
            &sluice,
            &[
                "export",
                "{}",
                "-o",
                dec.with_extension("opus").to_str().unwrap(),
                "--bitrate",
                "128",
                "--overwrite",
            ],
            &src,
        )?;
        rows.push(Row {
            material,
            what: "sluice export to Opus (information)",
            ours: export,
            theirs: ffmpeg_encode,
            verdict: false,
        });
        // AAC-LC at 192 kbit/s against ffmpeg's native AAC encoder at the same bitrate.
        let ours_m4a = dir.join("ours.m4a");
        let theirs_m4a = dir.join("theirs.m4a");
        let ours_arg = ours_m4a.to_str().unwrap().to_string();
        let enc_ours = || {
            time_process(
                &me,
                &["--encode", "{}", "--out", &ours_arg, "--codec", "aac"],
                &src,
            )
        };
        let enc_theirs = || {
            time_process(
                ffmpeg,
                &[
                    "-v",
                    "error",
                    "-y",
                    "-i",
                    "{}",
                    "-c:a",
                    "aac",
                    "-b:a",
                    "192k",
                    theirs_m4a.to_str().unwrap(),
                ],
                &src,
            )
        };
        let (a1, b1) = (enc_ours()?, enc_theirs()?);
        let (b2, a2) = (enc_theirs()?, enc_ours()?);
        rows.push(Row {
            material,
            what: "AAC-LC encode 192k",
            ours: best(a1, a2),
            theirs: best(b1, b2),
            verdict: true,
        });
        let dec_ours = || time_process(&me, &["--decode", "{}"], &theirs_m4a);
        let dec_theirs = || {
            time_process(
                ffmpeg,
                &["-v", "error", "-i", "{}", "-f", "null", "-"],
                &theirs_m4a,
            )
        };
        let (a1, b1) = (dec_ours()?, dec_theirs()?);
        let (b2, a2) = (dec_theirs()?, dec_ours()?);
        rows.push(Row {
            material,
            what: "AAC-LC decode",
            ours: best(a1, a2),
            theirs: best(b1, b2),
            verdict: true,
        });
        let _ = std::fs::remove_file(&dec);
    }
    println!("\n{minutes} minutes, 48 kHz stereo; best of two alternating runs each\n");
    println!(
        "| material | job | sluice wall / CPU | ffmpeg wall / CPU | × real time (sluice) | sluice / ffmpeg (wall, CPU) |"
    );
    println!("| --- | --- | --- | --- | --- | --- |");
    let mut worst: Vec<(&str, f64)> = Vec::new();
    for r in &rows {
        let by_wall = r.ours.wall / r.theirs.wall;
        let by_cpu = r.ours.cpu / r.theirs.cpu;
        println!(
            "| {} | {} | {:.2} / {:.2} s | {:.2} / {:.2} s | {:.0}× | {:.2} / {:.2} |",
            r.material,
            r.what,
            r.ours.wall,
            r.ours.cpu,
            r.theirs.wall,
            r.theirs.cpu,
            seconds / r.ours.wall,
            by_wall,
            by_cpu
        );
        if !r.verdict {
            continue;
        }
        match worst.iter_mut().find(|(w, _)| *w == r.what) {
            Some((_, v)) => *v = v.max(by_cpu),
            None => worst.push((r.what, by_cpu)),
        }
    }
    let mut pass = true;
    for (what, ratio) in worst {
        let ok = ratio <= 1.2;
        pass &= ok;
        println!(
            "\n{what}: worst material {ratio:.2}× ffmpeg's CPU time (target ≤ 1.2×): {}",
            verdict(ok)
        );
    }
    Ok(pass)
}
