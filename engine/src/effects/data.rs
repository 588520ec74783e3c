//! Audio an effect takes from the pipeline for its data slots (effects/ABI.md, sections 2 and
//! 3): an impulse response for a convolution, read from a file, held to the slot's limits
//! (channels, seconds) while it is decoded — so a header that lies about its length cannot make
//! the host read more — and resampled to the session's rate when the effect is started.

use super::descriptor::DataSlot;
use sluice_core::render::{Block, SignalSpec, Stage};
use std::path::{Path, PathBuf};

/// How much a slot's audio may be: its seconds (the slot's) and its bytes as 32-bit floats
/// (the effect's memory cap: the audio has to fit in the sandbox, and the host holds no more
/// than that for it either, whatever the file's header claims).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limit {
    pub max_seconds: f64,
    pub max_bytes: usize,
}

impl Limit {
    fn check(&self, channels: usize, frames: usize) -> Result<(), String> {
        let bytes = channels.saturating_mul(frames).saturating_mul(4);
        if bytes > self.max_bytes {
            return Err(format!(
                "{channels} channel(s) of {frames} frames would take {} MB, more than the effect's memory cap of {} MB",
                bytes >> 20,
                self.max_bytes >> 20
            ));
        }
        Ok(())
    }
}

/// Decoded audio at its own rate.
#[derive(Debug, Clone, PartialEq)]
pub struct Audio {
    pub rate: u32,
    /// One plane per channel, all of one length.
    pub planes: Vec<Vec<f32>>,
}

/// Where a step's data file is: a path as a pipeline writes it, inside `root` (each step of it
/// checked to stay there, links included); or, with no root (an export's), an absolute path.
/// The error names the path as written (a root's own location is not shown: the server's
/// answers carry these messages).
pub fn locate(root: Option<&Path>, written: &str) -> Result<PathBuf, String> {
    match root {
        Some(root) => crate::confine::resolve(root, Path::new(written)).map_err(|e| {
            let why = match e {
                crate::confine::ConfineError::Escapes { .. } => {
                    "a symbolic link on the way leads out of the root".to_string()
                }
                crate::confine::ConfineError::Refused { what, .. } => what,
                crate::confine::ConfineError::Io { source, .. } => source.to_string(),
            };
            format!("{written}: {why}")
        }),
        None if Path::new(written).is_absolute() => Ok(PathBuf::from(written)),
        None => Err(format!("{written}: expected an absolute path here")),
    }
}

/// Reads `path` for `slot`: its channels at most the slot's, its length at most the slot's
/// `max_seconds` (decoding stops as soon as it is longer, whatever the header says). Errors
/// name the file as `shown`.
pub fn load(path: &Path, shown: &str, slot: &DataSlot, max_bytes: usize) -> Result<Audio, String> {
    let limit = Limit {
        max_seconds: slot.max_seconds,
        max_bytes,
    };
    let what = |m: String| {
        let m = m.replace(&path.display().to_string(), shown);
        format!("{shown} (data {}): {m}", slot.id)
    };
    let mut dec = sluice_core::Decoder::open(path).map_err(|e| what(e.to_string()))?;
    let (rate, channels) = (dec.info().sample_rate, dec.info().channels as usize);
    if channels == 0 || channels > slot.max_channels as usize {
        return Err(what(format!(
            "{channels} channel(s); this slot takes 1 to {}",
            slot.max_channels
        )));
    }
    if rate == 0 {
        return Err(what("no sample rate".into()));
    }
    let most = (slot.max_seconds * f64::from(rate)).ceil() as usize;
    let mut planes = vec![Vec::new(); channels];
    while let Some(b) = dec.next_block().map_err(|e| what(e.to_string()))? {
        if planes[0].len() + b.frames() > most {
            return Err(what(format!(
                "longer than the {} s this slot takes",
                slot.max_seconds
            )));
        }
        limit
            .check(channels, planes[0].len() + b.frames())
            .map_err(what)?;
        for (p, src) in planes.iter_mut().zip(b.planes()) {
            p.extend_from_slice(src);
        }
    }
    if planes[0].is_empty() {
        return Err(what("holds no audio".into()));
    }
    Ok(Audio { rate, planes })
}

impl Audio {
    /// The audio at `rate` (the FFT resampler, its delay compensated), at most `max_seconds`
    /// long there, and refused if it would not fit in `max_bytes` there.
    pub fn at_rate(&self, rate: u32, limit: Limit) -> Result<Vec<Vec<f32>>, String> {
        let max_seconds = limit.max_seconds;
        let frames = self.planes.first().map_or(0, Vec::len);
        let there = (frames as u128 * u128::from(rate)).div_ceil(u128::from(self.rate.max(1)));
        limit.check(
            self.planes.len(),
            usize::try_from(there).unwrap_or(usize::MAX),
        )?;
        if rate == self.rate {
            return Ok(self.planes.clone());
        }
        let mut stage = sluice_core::render::resample::Resample::new(
            rate,
            sluice_core::render::resample::ResampleQuality::Fft,
        );
        let spec = SignalSpec::with_channels(self.rate, self.planes.len());
        stage
            .start(&spec)
            .map_err(|e| format!("cannot resample {} Hz to {rate} Hz: {e}", self.rate))?;
        let mut out = Block::new(self.planes.len());
        let mut block = Block::from_planes(self.planes.clone());
        stage.process(&mut block);
        out.extend_from(&block);
        loop {
            let mut b = Block::new(self.planes.len());
            let more = stage.finish(&mut b);
            out.extend_from(&b);
            if !more {
                break;
            }
        }
        if let Some(e) = stage.failure() {
            return Err(e.to_string());
        }
        let most = (max_seconds * f64::from(rate)).ceil() as usize;
        let mut planes = out.into_planes();
        for p in &mut planes {
            p.truncate(most);
        }
        Ok(planes)
    }
}

/// Every slot's audio put at `rate` (each within its limit): the planes an instance takes.
pub fn at_rate(data: &[(Audio, Limit)], rate: u32) -> Result<Vec<Vec<Vec<f32>>>, String> {
    data.iter()
        .map(|(a, limit)| a.at_rate(rate, *limit))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(max_channels: u32, max_seconds: f64) -> DataSlot {
        DataSlot {
            id: "ir".into(),
            name: "Impulse response".into(),
            max_channels,
            max_seconds,
        }
    }

    fn wav(path: &Path, rate: u32, planes: &[Vec<f32>]) {
        let spec = hound::WavSpec {
            channels: planes.len() as u16,
            sample_rate: rate,
            bits_per_sample: 32,
            sample_format: hound::SampleFormat::Float,
        };
        let mut w = hound::WavWriter::create(path, spec).unwrap();
        for i in 0..planes[0].len() {
            for p in planes {
                w.write_sample(p[i]).unwrap();
            }
        }
        w.finalize().unwrap();
    }

    #[test]
    fn a_response_is_read_held_to_its_slot_and_resampled() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("ir.wav");
        let ir: Vec<f32> = (0..4_410).map(|i| (-(i as f32) / 400.0).exp()).collect();
        wav(&f, 44_100, &[ir.clone(), ir.clone()]);
        let a = load(&f, "ir.wav", &slot(2, 1.0), 1 << 28).unwrap();
        assert_eq!(
            (a.rate, a.planes.len(), a.planes[0].len()),
            (44_100, 2, 4_410)
        );
        assert_eq!(a.planes[0], ir);
        // To 48 kHz: the length scales, the energy stays (within the resampler's band).
        let limit = Limit {
            max_seconds: 1.0,
            max_bytes: 1 << 28,
        };
        let r = a.at_rate(48_000, limit).unwrap();
        // Over the memory cap, on reading or at a higher rate: refused with the sizes.
        let e = load(&f, "ir.wav", &slot(2, 1.0), 30_000).unwrap_err();
        assert!(e.contains("memory cap of 0 MB"), "{e}");
        let e = a
            .at_rate(
                768_000,
                Limit {
                    max_seconds: 1.0,
                    max_bytes: 40_000 * 8,
                },
            )
            .unwrap_err();
        assert!(e.contains("76800 frames"), "{e}");
        assert!((r[0].len() as i64 - 4_800).abs() <= 2, "{}", r[0].len());
        let energy = |v: &[f32]| v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>();
        let ratio = energy(&r[0]) / energy(&ir) / (48_000.0 / 44_100.0);
        assert!((ratio - 1.0).abs() < 0.01, "{ratio}");
        // Too many channels, too long: refused, naming the file and the slot.
        let e = load(&f, "ir.wav", &slot(1, 1.0), 1 << 28).unwrap_err();
        assert!(
            e.contains("ir.wav") && e.contains("data ir") && e.contains("2 channel"),
            "{e}"
        );
        let e = load(&f, "ir.wav", &slot(2, 0.05), 1 << 28).unwrap_err();
        assert!(e.contains("longer than the 0.05 s"), "{e}");
        // Not audio at all.
        std::fs::write(dir.path().join("x.wav"), b"RIFF\0\0\0\0WAVEjunk").unwrap();
        assert!(load(&dir.path().join("x.wav"), "x.wav", &slot(2, 1.0), 1 << 28).is_err());
    }

    /// A WAV whose header claims `rate` Hz, 2 channels and 4 GB of 16-bit data, holding 4 KB.
    fn forged(path: &Path, rate: u32) {
        let mut b = Vec::new();
        b.extend(b"RIFF");
        b.extend(u32::MAX.to_le_bytes());
        b.extend(b"WAVEfmt ");
        b.extend(16u32.to_le_bytes());
        b.extend(1u16.to_le_bytes());
        b.extend(2u16.to_le_bytes());
        b.extend(rate.to_le_bytes());
        b.extend(rate.wrapping_mul(4).to_le_bytes());
        b.extend(4u16.to_le_bytes());
        b.extend(16u16.to_le_bytes());
        b.extend(b"data");
        b.extend(u32::MAX.to_le_bytes());
        b.extend((0..4096).map(|i| (i * 7 % 251) as u8));
        std::fs::write(path, b).unwrap();
    }

    #[test]
    fn a_forged_header_cannot_make_the_host_hold_more() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("forged.wav");
        // 1.78 GHz (the rate that once made `analyze` take 8 GB): refused, naming the file, or
        // read as the 1024 frames there are; never resampled into gigabytes.
        forged(&f, 1_780_000_000);
        match load(&f, "forged.wav", &slot(2, 30.0), 256 << 20) {
            Err(e) => assert!(e.contains("forged.wav"), "{e}"),
            Ok(a) => {
                assert!(a.planes[0].len() <= 1024);
                let limit = Limit {
                    max_seconds: 30.0,
                    max_bytes: 256 << 20,
                };
                assert!(
                    a.at_rate(48_000, limit)
                        .map_or(true, |p| p[0].len() <= 1024)
                );
            }
        }
        // A plausible rate with the 4 GB claim: what is there, not what the header says.
        forged(&f, 48_000);
        let a = load(&f, "forged.wav", &slot(2, 30.0), 256 << 20).unwrap();
        assert_eq!((a.planes.len(), a.planes[0].len()), (2, 1024));
    }

    #[test]
    fn a_pipeline_path_stays_in_its_root() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("irs")).unwrap();
        std::fs::write(dir.path().join("irs/a.wav"), b"").unwrap();
        assert!(locate(Some(dir.path()), "irs/a.wav").is_ok());
        for bad in ["../a.wav", "/etc/passwd", "irs/../../a.wav"] {
            assert!(locate(Some(dir.path()), bad).is_err(), "{bad}");
        }
        // Out through a link.
        std::os::unix::fs::symlink("/etc", dir.path().join("out")).unwrap();
        assert!(locate(Some(dir.path()), "out/passwd").is_err());
        assert!(locate(None, "rel.wav").is_err());
        assert!(locate(None, "/abs.wav").is_ok());
    }
}
