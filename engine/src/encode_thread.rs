//! Encoders, and the meters of measuring passes, on threads of their own.
//!
//! The core renders and encodes on the calling thread (it never spawns one). The host wraps
//! each encoder of an export in a [`ThreadedEncoder`]: the render thread copies every block
//! into a bounded channel and goes on with the next block, while a thread per output runs the
//! real encoder. An export with a FLAC and an MP3 output thus renders, encodes FLAC and
//! encodes MP3 at the same time. Memory stays bounded: at most [`QUEUE`] blocks wait per
//! output (the render waits when an encoder falls behind), and used blocks go back to the
//! render thread to be filled again.
//!
//! The wrapper keeps the [`Encoder`] contract: blocks reach the inner encoder in order, then
//! the loudness, then `finish`, whose result (or the first error) is the inner encoder's. An
//! error in the encoder thread stops that thread; the next `write`, `set_loudness` or
//! `finish` learns it, and `finish` (or any later call) reports that same error, its type and
//! its OS error kept: a disk that fills while the thread writes the last blocks is reported
//! as the full disk it is, however late.
//! A panic in an encoder is reported as a codec error of that output. Dropped unfinished
//! (the render failed), the wrapper lets the thread drop the inner encoder, as the core would
//! have, and waits for it.
//!
//! Measuring passes (normalization's prepass) work the same way: the [`ThreadedProbe`] meters
//! (loudness and true peak) on a thread of its own while the pass's thread decodes, resamples
//! and spills. [`Threads`] is the host's [`Offload`] that does both.

use crossbeam_channel::{Receiver, Sender, bounded, unbounded};
use sluice_core::encode::{EncodeError, Encoder};
use sluice_core::export::{Check, ExportError, ExportReport, Offload, OutputPlan, Pending};
use sluice_core::render::steps::{NoResolver, StageResolver, StepSpec};
use sluice_core::render::{Block, OutputLoudness, Probe, Progress};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

/// Blocks that may wait for an encoder.
pub const QUEUE: usize = 16;

enum Msg {
    Block(Block),
    Loudness(Box<OutputLoudness>),
    Finish,
}

/// An [`Encoder`] that runs another on a thread of its own.
pub struct ThreadedEncoder {
    tx: Option<Sender<Msg>>,
    spare: Receiver<Block>,
    thread: Option<JoinHandle<Result<(), EncodeError>>>,
    path: PathBuf,
    format: &'static str,
    /// The error the thread stopped with, once learned: every later call reports it again.
    failed: Option<EncodeError>,
}

impl ThreadedEncoder {
    /// Move `inner` onto a new thread; `path` and `format` name the output in the wrapper's
    /// own errors (a panic in the encoder).
    pub fn new(
        inner: Box<dyn Encoder>,
        path: PathBuf,
        format: &'static str,
    ) -> Result<Self, EncodeError> {
        let (tx, rx) = bounded::<Msg>(QUEUE);
        let (spare_tx, spare) = unbounded::<Block>();
        let thread = std::thread::Builder::new()
            .name("sluice-encoder".into())
            .spawn(move || run(inner, rx, spare_tx))
            .map_err(|source| EncodeError::Io {
                path: path.clone(),
                source,
            })?;
        Ok(ThreadedEncoder {
            tx: Some(tx),
            spare,
            thread: Some(thread),
            path,
            format,
            failed: None,
        })
    }

    /// The thread's outcome, once it has stopped (its sender gone or an error it returned).
    /// An error is kept, so that a later call reports the same one.
    fn join(&mut self) -> Result<(), EncodeError> {
        self.tx = None;
        let Some(t) = self.thread.take() else {
            return match &self.failed {
                Some(e) => Err(e.again()),
                None => Err(self.codec("the encoder thread ended early".into())),
            };
        };
        let r = match t.join() {
            Ok(r) => r,
            Err(p) => {
                let detail = p
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| p.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".into());
                Err(self.codec(format!("the encoder thread panicked: {detail}")))
            }
        };
        if let Err(e) = &r {
            self.failed = Some(e.again());
        }
        r
    }

    fn codec(&self, detail: String) -> EncodeError {
        EncodeError::Codec {
            path: self.path.clone(),
            format: self.format,
            detail,
        }
    }

    /// Send `msg`; if the thread has stopped (it returned an error), that error.
    fn send(&mut self, msg: Msg) -> Result<(), EncodeError> {
        let sent = match &self.tx {
            Some(tx) => tx.send(msg).is_ok(),
            None => false,
        };
        if sent {
            return Ok(());
        }
        match self.join() {
            // The thread ended without an error but before the end: never expected.
            Ok(()) => Err(self.codec("the encoder thread stopped early".into())),
            Err(e) => Err(e),
        }
    }
}

/// The encoder thread: every message in order until `Finish` (then the inner `finish`), an
/// error (returned at once, which closes the channel), or the sender's drop (an abandoned
/// export: the inner encoder is dropped unfinished).
fn run(
    mut inner: Box<dyn Encoder>,
    rx: Receiver<Msg>,
    spare: Sender<Block>,
) -> Result<(), EncodeError> {
    while let Ok(msg) = rx.recv() {
        match msg {
            Msg::Block(b) => {
                inner.write(&b)?;
                // The render thread may be gone (an abandoned export): then the block is dropped.
                let _ = spare.send(b);
            }
            Msg::Loudness(l) => inner.set_loudness(&l),
            Msg::Finish => return inner.finish(),
        }
    }
    Ok(())
}

impl Encoder for ThreadedEncoder {
    fn write(&mut self, block: &Block) -> Result<(), EncodeError> {
        let b = recycled(&self.spare, block);
        self.send(Msg::Block(b))
    }

    fn set_loudness(&mut self, loudness: &OutputLoudness) {
        // An error the thread hit is kept (in `join`) and reported by `finish`.
        let _ = self.send(Msg::Loudness(Box::new(loudness.clone())));
    }

    fn finish(mut self: Box<Self>) -> Result<(), EncodeError> {
        if let Some(e) = &self.failed {
            return Err(e.again());
        }
        self.send(Msg::Finish)?;
        self.join()
    }
}

impl Drop for ThreadedEncoder {
    fn drop(&mut self) {
        if self.thread.is_some() {
            let _ = self.join();
        }
    }
}

/// A copy of `block` for a worker thread, in a block the thread gave back when there is one.
fn recycled(spare: &Receiver<Block>, block: &Block) -> Block {
    let mut b = spare.try_recv().unwrap_or_default();
    b.clone_from(block);
    b
}

/// Wrap `inner`, the encoder of output `plan`, in a [`ThreadedEncoder`]. Should no thread
/// start (the system out of threads), the export fails on that output's first block.
pub fn threaded(plan: &OutputPlan, inner: Box<dyn Encoder>) -> Box<dyn Encoder> {
    let format = plan.format.name();
    match ThreadedEncoder::new(inner, plan.path.clone(), format) {
        Ok(t) => Box::new(t),
        Err(e) => Box::new(Failed(Some(e))),
    }
}

/// An encoder whose thread could not start: fails its first call.
struct Failed(Option<EncodeError>);

impl Encoder for Failed {
    fn write(&mut self, _: &Block) -> Result<(), EncodeError> {
        Err(self.0.take().unwrap_or_else(|| EncodeError::Io {
            path: PathBuf::new(),
            source: std::io::Error::other("the encoder thread could not start"),
        }))
    }
    fn finish(mut self: Box<Self>) -> Result<(), EncodeError> {
        self.write(&Block::default())
    }
}

/// A measuring probe on a thread of its own: the pass's thread copies each block into a
/// bounded channel and goes on decoding and resampling while this thread meters. `into_any`
/// waits for the last block to be measured and gives back the inner probe's, so the stage
/// that asked takes its own probe type back. A panic in the probe resumes on the caller's
/// thread there, as it would have without the thread.
pub struct ThreadedProbe {
    tx: Option<Sender<Block>>,
    spare: Receiver<Block>,
    thread: Option<JoinHandle<Box<dyn Probe>>>,
}

impl ThreadedProbe {
    /// Move `inner` onto a new thread; if no thread can start, `inner` comes back unwrapped.
    pub fn wrap(inner: Box<dyn Probe>) -> Box<dyn Probe> {
        let (tx, rx) = bounded::<Block>(QUEUE);
        let (spare_tx, spare) = unbounded::<Block>();
        // The probe travels after the spawn, so a failed spawn does not lose it.
        let (probe_tx, probe_rx) = bounded::<Box<dyn Probe>>(1);
        let spawned = std::thread::Builder::new()
            .name("sluice-meter".into())
            .spawn(move || {
                let mut probe = probe_rx
                    .recv()
                    .expect("the probe is sent right after the spawn");
                while let Ok(b) = rx.recv() {
                    probe.feed(&b);
                    let _ = spare_tx.send(b);
                }
                probe
            });
        match spawned {
            Ok(thread) => {
                probe_tx
                    .send(inner)
                    .expect("the thread holds the receiver until it has the probe");
                Box::new(ThreadedProbe {
                    tx: Some(tx),
                    spare,
                    thread: Some(thread),
                })
            }
            Err(_) => inner,
        }
    }
}

impl Probe for ThreadedProbe {
    fn feed(&mut self, block: &Block) {
        let b = recycled(&self.spare, block);
        if let Some(tx) = &self.tx {
            // The thread only stops early by panicking; `into_any` reports that.
            let _ = tx.send(b);
        }
    }

    fn into_any(mut self: Box<Self>) -> Box<dyn std::any::Any> {
        self.tx = None;
        let thread = self.thread.take().expect("joined only here or at drop");
        match thread.join() {
            Ok(inner) => inner.into_any(),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

impl Drop for ThreadedProbe {
    /// Abandoned (the pass failed): end the thread and wait for it.
    fn drop(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The host's [`Offload`]: every encoder and every measuring probe on a thread of its own.
pub struct Threads;

impl Offload for Threads {
    fn encoder(&mut self, plan: &OutputPlan, encoder: Box<dyn Encoder>) -> Box<dyn Encoder> {
        threaded(plan, encoder)
    }
    fn probe(&mut self, probe: Box<dyn Probe>) -> Box<dyn Probe> {
        ThreadedProbe::wrap(probe)
    }
    fn background(&mut self, work: Check) -> Pending {
        // The work is shared with the thread so that, should no thread start, it runs here
        // when waited for.
        let work = std::sync::Arc::new(std::sync::Mutex::new(Some(work)));
        let theirs = work.clone();
        let spawned = std::thread::Builder::new()
            .name("sluice-check".into())
            .spawn(move || {
                let w = theirs.lock().ok().and_then(|mut w| w.take());
                w.map(|w| w())
            });
        match spawned {
            Ok(thread) => Box::new(move || match thread.join() {
                Ok(Some(r)) => r,
                Ok(None) => unreachable!("the thread took the work"),
                Err(panic) => std::panic::resume_unwind(panic),
            }),
            Err(_) => Box::new(move || {
                let w = work.lock().ok().and_then(|mut w| w.take());
                w.expect("no thread took the work")()
            }),
        }
    }
}

/// [`sluice_core::export::export`] with every encoder and measuring probe on its own thread
/// (no effects, no analysis).
pub fn export(
    input: &Path,
    steps: &[StepSpec],
    outputs: &[OutputPlan],
    progress: &mut dyn FnMut(Progress),
) -> Result<ExportReport, ExportError> {
    sluice_core::export::export_with(
        input,
        steps,
        &mut NoResolver,
        outputs,
        progress,
        &mut Threads,
    )
}

/// [`sluice_core::export::export_from`] with every encoder and measuring probe on its own
/// thread: a source already open, effects and analysis built by `resolver`.
pub fn export_from(
    source: sluice_core::render::FileSource,
    steps: &[StepSpec],
    resolver: &mut dyn StageResolver,
    outputs: &[OutputPlan],
    progress: &mut dyn FnMut(Progress),
) -> Result<ExportReport, ExportError> {
    sluice_core::export::export_from(source, steps, resolver, outputs, progress, &mut Threads)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Records what reaches it; fails (or panics) on the block numbered `fail_at`.
    struct Probe {
        seen: Arc<Mutex<Vec<f32>>>,
        loudness: Arc<Mutex<Option<f64>>>,
        fail_at: Option<(usize, bool)>,
    }

    impl Encoder for Probe {
        fn write(&mut self, block: &Block) -> Result<(), EncodeError> {
            let mut seen = self.seen.lock().unwrap();
            if let Some((n, panic)) = self.fail_at
                && seen.len() == n
            {
                assert!(!panic, "probe panics");
                return Err(EncodeError::Io {
                    path: PathBuf::from("probe"),
                    source: std::io::Error::other("disk full"),
                });
            }
            seen.push(block.plane(0)[0]);
            Ok(())
        }
        fn set_loudness(&mut self, l: &OutputLoudness) {
            *self.loudness.lock().unwrap() = Some(l.true_peak_dbtp);
        }
        fn finish(self: Box<Self>) -> Result<(), EncodeError> {
            self.seen.lock().unwrap().push(-1.0);
            Ok(())
        }
    }

    fn probe(fail_at: Option<(usize, bool)>) -> (ThreadedEncoder, Arc<Mutex<Vec<f32>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let p = Probe {
            seen: Arc::clone(&seen),
            loudness: Arc::new(Mutex::new(None)),
            fail_at,
        };
        let t = ThreadedEncoder::new(Box::new(p), PathBuf::from("x.flac"), "FLAC").unwrap();
        (t, seen)
    }

    fn block(v: f32) -> Block {
        Block::from_planes(vec![vec![v; 64], vec![v; 64]])
    }

    #[test]
    fn blocks_then_loudness_then_finish_in_order() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let loudness = Arc::new(Mutex::new(None));
        let p = Probe {
            seen: Arc::clone(&seen),
            loudness: Arc::clone(&loudness),
            fail_at: None,
        };
        let mut t: Box<dyn Encoder> =
            Box::new(ThreadedEncoder::new(Box::new(p), PathBuf::from("x.flac"), "FLAC").unwrap());
        for i in 0..1000 {
            t.write(&block(i as f32)).unwrap();
        }
        t.set_loudness(&OutputLoudness {
            true_peak_dbtp: -1.5,
            ..OutputLoudness::default()
        });
        t.finish().unwrap();
        let mut want: Vec<f32> = (0..1000).map(|i| i as f32).collect();
        want.push(-1.0);
        assert_eq!(*seen.lock().unwrap(), want);
        assert_eq!(*loudness.lock().unwrap(), Some(-1.5));
    }

    #[test]
    fn an_error_in_the_thread_reaches_the_caller() {
        let (t, seen) = probe(Some((10, false)));
        let mut t: Box<dyn Encoder> = Box::new(t);
        // The error shows at a later write (once the channel closes) or at the latest at
        // finish; nothing after the failed block reaches the encoder.
        let mut err = None;
        for i in 0..10_000 {
            if let Err(e) = t.write(&block(i as f32)) {
                err = Some(e);
                break;
            }
        }
        let e = match err {
            Some(e) => e,
            None => t.finish().unwrap_err(),
        };
        assert!(e.to_string().contains("disk full"), "{e}");
        assert_eq!(seen.lock().unwrap().len(), 10);
    }

    /// The thread fails on the last block, after the render has handed over everything: the
    /// loudness and `finish` still report that I/O error itself (not a vaguer one), as often
    /// as asked.
    #[test]
    fn an_error_on_the_last_block_reaches_finish_as_the_same_io_error() {
        let (mut t, seen) = probe(Some((4, false)));
        for i in 0..5 {
            t.write(&block(i as f32))
                .expect("sent before the thread fails");
        }
        // Let the thread meet the failure and stop before the loudness is sent.
        let t0 = std::time::Instant::now();
        while t.tx.as_ref().is_some_and(|tx| !tx.is_empty())
            && t0.elapsed() < std::time::Duration::from_secs(10)
        {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        t.set_loudness(&OutputLoudness::default());
        assert!(t.write(&block(9.0)).is_err());
        let e = Box::new(t).finish().unwrap_err();
        match &e {
            EncodeError::Io { source, .. } => assert!(source.to_string().contains("disk full")),
            other => panic!("not the I/O error: {other}"),
        }
        assert_eq!(seen.lock().unwrap().len(), 4);
    }

    #[test]
    fn a_panic_in_the_encoder_is_a_codec_error_naming_the_file() {
        let (mut t, _) = probe(Some((3, true)));
        let mut result = Ok(());
        for i in 0..10_000 {
            result = t.write(&block(i as f32));
            if result.is_err() {
                break;
            }
        }
        let e = match result {
            Err(e) => e,
            Ok(()) => Box::new(t).finish().unwrap_err(),
        };
        let msg = e.to_string();
        assert!(
            msg.contains("x.flac") && msg.contains("FLAC") && msg.contains("panicked"),
            "{msg}"
        );
    }

    #[test]
    fn dropped_unfinished_the_thread_ends_without_finishing() {
        let (mut t, seen) = probe(None);
        for i in 0..100 {
            t.write(&block(i as f32)).unwrap();
        }
        drop(t);
        // Every block sent reached the encoder; `finish` (which pushes -1) never ran.
        assert_eq!(seen.lock().unwrap().len(), 100);
    }
}

#[cfg(test)]
mod probe_tests {
    use super::*;
    use sluice_core::export::{NoOffload, OutputPlan};
    use sluice_core::render::normalize::NormalizeTarget;
    use sluice_core::render::steps::StepSpec;

    /// Keeps the first sample of every block; panics on block `panic_at`.
    struct Recorder {
        seen: Vec<f32>,
        panic_at: Option<usize>,
    }

    impl Probe for Recorder {
        fn feed(&mut self, block: &Block) {
            assert!(self.panic_at != Some(self.seen.len()), "recorder panics");
            self.seen.push(block.plane(0)[0]);
        }
        fn into_any(self: Box<Self>) -> Box<dyn std::any::Any> {
            self
        }
    }

    fn fed(panic_at: Option<usize>, blocks: usize) -> Box<dyn Probe> {
        let mut p = ThreadedProbe::wrap(Box::new(Recorder {
            seen: Vec::new(),
            panic_at,
        }));
        for i in 0..blocks {
            p.feed(&Block::from_planes(vec![vec![i as f32; 32]; 2]));
        }
        p
    }

    #[test]
    fn every_block_reaches_the_probe_in_order_and_the_inner_probe_comes_back() {
        // Many more blocks than the queue holds, so the feeding side waits for the meter.
        let n = QUEUE * 20;
        let any = fed(None, n).into_any();
        let r = any
            .downcast::<Recorder>()
            .expect("the inner probe's own type");
        assert_eq!(r.seen, (0..n).map(|i| i as f32).collect::<Vec<_>>());
    }

    #[test]
    fn a_panic_in_the_probe_resumes_on_the_callers_thread() {
        let p = fed(Some(5), 40);
        let panic = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| p.into_any()))
            .expect_err("the probe's panic must reach the caller");
        let msg = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        assert!(msg.contains("recorder panics"), "{msg}");
    }

    #[test]
    fn an_abandoned_probe_ends_its_thread() {
        // Dropped mid-pass (the pass failed elsewhere): returns instead of hanging.
        drop(fed(None, QUEUE * 3));
    }

    /// The same export with the host's threads and with everything on one thread: the same
    /// bytes, gain and loudness (the measuring pass's meter on its own thread changes nothing).
    #[test]
    fn threaded_and_single_threaded_exports_are_identical() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.wav");
        let planes = sluice_core::signal::programme(48_000, 2, 48_000 * 8, 7);
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 48_000,
            bits_per_sample: 32,
            sample_format: hound::SampleFormat::Float,
        };
        let mut w = hound::WavWriter::create(&input, spec).unwrap();
        for i in 0..planes[0].len() {
            for p in &planes {
                w.write_sample(p[i] * 0.3).unwrap();
            }
        }
        w.finalize().unwrap();
        let plan = [
            StepSpec::Resample {
                sample_rate: 44_100,
                quality: Default::default(),
            },
            StepSpec::Normalize(NormalizeTarget::Loudness {
                lufs: -16.0,
                true_peak_dbtp: -1.0,
                limiter: true,
                rule: Default::default(),
            }),
        ];
        let out = |name: &str| {
            vec![OutputPlan::new(
                dir.path().join(name),
                sluice_core::encode::flac::output(16, 5),
            )]
        };
        let a = export(&input, &plan, &out("threads.flac"), &mut |_| {}).unwrap();
        let b = sluice_core::export::export_with(
            &input,
            &plan,
            &mut sluice_core::render::steps::NoResolver,
            &out("one.flac"),
            &mut |_| {},
            &mut NoOffload,
        )
        .unwrap();
        assert_eq!(a.passes, b.passes);
        assert!(a.passes >= 2, "a measuring pass ran: {}", a.passes);
        assert_eq!(
            serde_json::to_value(&a.stages).unwrap(),
            serde_json::to_value(&b.stages).unwrap()
        );
        let read = |n: &str| std::fs::read(dir.path().join(n)).unwrap();
        assert!(read("threads.flac") == read("one.flac"), "outputs differ");
    }
}
