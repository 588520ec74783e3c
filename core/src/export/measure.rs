//! Measuring what an output received: an encoder finished with its loudness, and a lossy
//! output decoded and metered (after it is written, or following its encoder as it writes).

use super::{ExportError, Offload};
use crate::encode::{EncodeError, Encoder};
use crate::render::{FileSource, OutputLoudness, OutputMeter, SignalSpec, Source};
use std::path::Path;

/// Complete an output's stream, giving its encoder the loudness measured as it went in.
pub(super) fn finish_encoder(
    mut enc: Box<dyn Encoder>,
    result: &crate::render::OutputResult,
) -> Result<(), EncodeError> {
    if let Some(l) = &result.loudness {
        enc.set_loudness(l);
    }
    enc.finish()
}

/// Decode an encoded output and measure it as a listener's player would see it.
pub(super) fn measure_encoded(
    path: &Path,
    offload: &mut dyn Offload,
) -> Result<OutputLoudness, ExportError> {
    let mut source = FileSource::open(path)?;
    let mut probe = offload.probe(Box::new(OutputMeter::new(source.spec())));
    let mut block = crate::render::Block::default();
    while source.next(&mut block)? {
        probe.feed(&block);
    }
    Ok(probe
        .into_any()
        .downcast::<OutputMeter>()
        .expect("the probe given back is ours")
        .finish())
}

pub(super) const WRITING: u8 = 0;
pub(super) const COMPLETE: u8 = 1;
pub(super) const ABANDONED: u8 = 2;

/// A reader of an encoder's output that follows it while it is written: at the end of what
/// is there it waits for more until the encoder has finished (or the export gave up). An
/// extending write is visible to another reader only once its bytes are in the file, so the
/// stream read is the stream written.
pub(super) struct Following {
    pub(super) file: std::fs::File,
    pub(super) state: std::sync::Arc<std::sync::atomic::AtomicU8>,
}

impl std::io::Read for Following {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use std::sync::atomic::Ordering;
        loop {
            // Read after looking: a write that completed before the look is in the read.
            let state = self.state.load(Ordering::Acquire);
            let n = self.file.read(buf)?;
            if n > 0 || state == COMPLETE {
                return Ok(n);
            }
            if state == ABANDONED {
                return Err(std::io::Error::other(
                    "the export stopped before the output was complete",
                ));
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
}

/// Marks every followed output abandoned when the export ends without completing it (an
/// error returned early), so that no reader waits for more.
pub(super) struct Followed(pub(super) Vec<Option<std::sync::Arc<std::sync::atomic::AtomicU8>>>);

impl Followed {
    pub(super) fn complete(&self, o: usize) {
        if let Some(s) = &self.0[o] {
            s.store(COMPLETE, std::sync::atomic::Ordering::Release);
        }
    }
}

impl Drop for Followed {
    fn drop(&mut self) {
        use std::sync::atomic::Ordering;
        for s in self.0.iter().flatten() {
            let _ = s.compare_exchange(WRITING, ABANDONED, Ordering::AcqRel, Ordering::Acquire);
        }
    }
}

/// LAME's encoder delay (576) plus the MP3 decoder's (529): what a gapless decoder drops from
/// the start of a LAME stream, after the Info frame.
const LAME_LEAD: u64 = 576 + 529;

/// Frames held back from the meter at the end of a followed stream until the finished file
/// says how many of them its decoder drops (an MP3's padding is under two frames).
const HOLD: usize = 8192;

/// Decode and measure the output at `temp` (named `path` in errors) while its encoder writes
/// it (see [`Following`]), feeding the meter exactly the samples a decoder of the finished file
/// gives. An MP3's Info frame, with the gapless trim, is written over the start only when the
/// stream ends, so the follower usually reads LAME's placeholder there (one silent frame) and
/// gets no trim: the start is then skipped by that frame plus LAME's delay, and the end held
/// back until the finished file's header gives its padding. The result stands only where the
/// finished file's frame count and trim agree with what was skipped and dropped; otherwise
/// (another encoder's delay) it is an error and the caller measures the finished file.
pub(super) fn measure_following(
    path: &Path,
    temp: &Path,
    reader: Following,
) -> Result<OutputLoudness, ExportError> {
    let mismatch = |detail: String| ExportError::Invalid {
        path: path.to_path_buf(),
        detail,
    };
    let mut decoder = crate::Decoder::open_stream(path, reader)?;
    let info = decoder.info();
    let spec = SignalSpec {
        sample_rate: info.sample_rate,
        layout: info.channel_layout.clone(),
        exact_bits: None,
    };
    let placeholder = info.codec == "mp3" && info.encoder_delay.is_none();
    let mut meter = OutputMeter::new(&spec);
    // `lead`: frames still to skip at the start, known once the first frame is decoded.
    let mut lead: Option<u64> = None;
    let mut skipped = 0u64;
    let mut decoded = 0u64;
    let mut held = crate::render::Block::new(spec.channels());
    let mut block = crate::render::Block::default();
    while let Some(b) = decoder.next_block()? {
        block.copy_from_decoded(b);
        decoded += block.frames() as u64;
        let lead = *lead.get_or_insert(if placeholder {
            block.frames() as u64 + LAME_LEAD
        } else {
            0
        });
        if skipped < lead {
            let n = ((lead - skipped) as usize).min(block.frames());
            block.drain_front(n);
            skipped += n as u64;
        }
        held.extend_from(&block);
        if held.frames() > 2 * HOLD {
            let release = held.frames() - HOLD;
            let mut out = held.clone();
            out.truncate(release);
            meter.feed(&out);
            held.drain_front(release);
        }
    }
    drop(decoder);
    // The finished file, its header only: how many frames its decoder gives.
    let finished = crate::Decoder::open(temp)?;
    let f = finished.info();
    let frames = f
        .frames
        .ok_or_else(|| mismatch("the finished output states no frame count".into()))?;
    let lead = lead.unwrap_or(0);
    let kept = decoded.saturating_sub(lead);
    let end = kept
        .checked_sub(frames)
        .filter(|&e| e as usize <= held.frames());
    let agrees = match end {
        Some(e) if placeholder => {
            f.encoder_delay == Some(LAME_LEAD as u32)
                && u64::from(f.encoder_padding.unwrap_or(0)) == e
        }
        Some(e) => e == 0,
        None => false,
    };
    if !agrees {
        return Err(mismatch(format!(
            "the output read while written ({decoded} frames, {lead} skipped) does not match the finished file ({frames} frames, delay {:?}, padding {:?})",
            f.encoder_delay, f.encoder_padding
        )));
    }
    held.truncate(held.frames() - end.unwrap_or(0) as usize);
    meter.feed(&held);
    Ok(meter.finish())
}
