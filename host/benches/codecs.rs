//! The delivery codecs' encode and decode time against ffmpeg's for the same codec, in the
//! same run, in alternating pairs:
//!
//! ```sh
//! cargo bench -p sluice-host --bench codecs                 # 60-minute files (the issue's figure)
//! cargo bench -p sluice-host --bench codecs -- --minutes 10
//! cargo bench -p sluice-host --bench codecs -- --only alac   # one codec: opus, aac, alac
//! ```
//!
//! On a 48 kHz stereo 16-bit WAV of each material (`common::MATERIALS`, and real recordings
//! with `host/benches/recordings.sh`), each in a child process timed with `wait4`:
//!
//! - encode: this bench's child decodes the WAV with Sluice's decoder and feeds the Opus
//!   encoder (`--encode`), against `ffmpeg -i SRC -c:a libopus -b:a 128k OUT.opus` (Debian's
//!   libopus 1.3.1, C with its SIMD paths); both at 128 kbit/s VBR; the AAC-LC encoder
//!   (FDK AAC) against ffmpeg's native `aac` encoder, both at 192 kbit/s; Sluice's ALAC
//!   encoder against ffmpeg's `alac` (its default compression), both 16-bit;
//! - decode: the child decodes ffmpeg's Opus, AAC and ALAC files through Sluice's decoder to
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

/// Ours and theirs twice, alternating (ours, theirs, theirs, ours); the faster of each.
fn pair(ours: impl Fn() -> Res<Run>, theirs: impl Fn() -> Res<Run>) -> Res<(Run, Run)> {
    let (a1, b1) = (ours()?, theirs()?);
    let (b2, a2) = (theirs()?, ours()?);
    Ok((best(a1, a2), best(b1, b2)))
}

/// A codec against ffmpeg's encoder of the same codec.
struct Peer {
    /// `--codec` of this bench's encode child.
    codec: &'static str,
    ext: &'static str,
    /// ffmpeg's output options (between the input and the output file).
    ffmpeg: &'static [&'static str],
    encode: &'static str,
    decode: &'static str,
}

const PEERS: &[Peer] = &[
    Peer {
        codec: "opus",
        ext: "opus",
        ffmpeg: &["-c:a", "libopus", "-b:a", "128k"],
        encode: "Opus encode 128k",
        decode: "Opus decode",
    },
    Peer {
        codec: "aac",
        ext: "m4a",
        ffmpeg: &["-c:a", "aac", "-b:a", "192k"],
        encode: "AAC-LC encode 192k",
        decode: "AAC-LC decode",
    },
    Peer {
        codec: "alac",
        ext: "m4a",
        ffmpeg: &["-c:a", "alac"],
        encode: "ALAC encode 16-bit",
        decode: "ALAC decode",
    },
];

struct Row {
    material: &'static str,
    what: &'static str,
    ours: Run,
    theirs: Run,
    /// Counted in the verdict.
    verdict: bool,
}

/// The child of an encode: Sluice's decoder into the encoder `codec` names (Opus at 128 kbit/s,
/// AAC-LC at 192 kbit/s CBR, ALAC at the source's 16 bits).
fn encode_child(src: &Path, out: &Path, codec: &str) -> Res<()> {
    use sluice_core::encode::Encoder;
    use sluice_core::encode::aac::{AacEncoder, AacOptions};
    use sluice_core::encode::alac::AlacEncoder;
    use sluice_core::encode::opus::{OpusEncoder, OpusOptions};
    let mut d = sluice_core::Decoder::open(src)?;
    let spec = sluice_core::render::SignalSpec::with_channels(
        d.info().sample_rate,
        d.info().channels as usize,
    );
    let file = std::fs::File::create(out)?;
    let mut enc: Box<dyn Encoder> = match codec {
        "alac" => Box::new(AlacEncoder::new(file, out.to_path_buf(), &spec, 16)?),
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
    if let Some(written) = material_child() {
        return written.map(|()| true);
    }
    if !which("ffmpeg") {
        eprintln!("codecs bench: ffmpeg is needed as the peer");
        return Ok(false);
    }
    let minutes: usize = arg_value("--minutes").map_or(Ok(60), |m| m.parse())?;
    // One codec's rows only (`--only alac`).
    let only = arg_value("--only");
    let dir = std::env::temp_dir().join("sluice-bench-codecs");
    std::fs::create_dir_all(&dir)?;
    let sluice = PathBuf::from(env!("CARGO_BIN_EXE_sluice"));
    let ffmpeg = Path::new("ffmpeg");
    let me = std::env::current_exe()?;
    let seconds = minutes as f64 * 60.0;
    let mut rows = Vec::new();
    for material in materials() {
        let src = material_wav(&dir, material, minutes)?;
        for peer in PEERS
            .iter()
            .filter(|p| only.as_deref().is_none_or(|o| o == p.codec))
        {
            let ours_out = dir.join(format!("ours.{}", peer.ext));
            let theirs_out = dir.join(format!("theirs.{}", peer.ext));
            let ours_arg = ours_out.to_str().ok_or("temporary path")?;
            let theirs_arg = theirs_out.to_str().ok_or("temporary path")?;
            let mut ffmpeg_args = vec!["-v", "error", "-y", "-i", "{}"];
            ffmpeg_args.extend_from_slice(peer.ffmpeg);
            ffmpeg_args.push(theirs_arg);
            let (ours, theirs) = pair(
                || {
                    time_process(
                        &me,
                        &["--encode", "{}", "--out", ours_arg, "--codec", peer.codec],
                        &src,
                    )
                },
                || time_process(ffmpeg, &ffmpeg_args, &src),
            )?;
            let ffmpeg_encode = theirs.clone();
            rows.push(Row {
                material,
                what: peer.encode,
                ours,
                theirs,
                verdict: true,
            });
            // Both decoders read ffmpeg's file.
            let (ours, theirs) = pair(
                || time_process(&me, &["--decode", "{}"], &theirs_out),
                || {
                    time_process(
                        ffmpeg,
                        &["-v", "error", "-i", "{}", "-f", "null", "-"],
                        &theirs_out,
                    )
                },
            )?;
            rows.push(Row {
                material,
                what: peer.decode,
                ours,
                theirs,
                verdict: true,
            });
            if peer.codec == "opus" {
                let export_out = dir.join("export.opus");
                let export = time_process(
                    &sluice,
                    &[
                        "export",
                        "{}",
                        "-o",
                        export_out.to_str().ok_or("temporary path")?,
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
                let _ = std::fs::remove_file(&export_out);
            }
        }
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
