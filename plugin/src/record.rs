//! Recording takes of what passes through the plugin.
//!
//! The audio thread ([`RecorderRt`]) only copies interleaved samples into a preallocated
//! single-producer ring and posts start/stop events into a second small ring; it never blocks,
//! allocates or makes a system call. A dedicated writer thread ([`Writer`], started in
//! `activate`, joined in `deactivate`) polls both rings every few milliseconds and writes each
//! take with the core's encoders:
//!
//! - into a temporary file beside its final name, renamed into place only when the take is
//!   complete, so a watch folder (or a person) never sees a half-written take, and names never
//!   collide (`<prefix> <date> <time>.wav`, then ` 2`, ` 3`... if taken);
//! - as Broadcast Wave with a `bext` v2 chunk: the time reference is the host's timeline
//!   position of the take's first sample, and the loudness fields are measured on the take;
//! - optionally followed by a copy normalized to the target preset (`… (normalized).wav`),
//!   rendered offline by the core's export on its own thread once the take is closed.
//!
//! A take starts when recording is armed and the transport plays (or at once, when the host
//! has no transport), and ends when either stops, when the transport position jumps (a loop or
//! a relocation: each take stays aligned to the timeline), or when the ring overruns. An overrun
//! (the writer fell behind the audio) is counted, never waited for in real time: the take in
//! progress ends where the ring filled, and a new one starts once half the ring is free again.
//! In an offline render (the host said so at activation: CLAP's render extension; see
//! [`TakeConfig::offline`]) nothing is waiting for the audio, and a bounce faster than the disk
//! must not lose any of it: there the audio thread waits for room in the ring instead, up to
//! [`OFFLINE_WAIT`] (a writer stuck that long is not coming back).

use crate::params::{ExportSettings, TakeFormat};
pub use crate::shared::RecordStatus;
use crate::shared::{MAX_CHANNELS, MeterShared};
use rtrb::{Consumer, Producer, RingBuffer};
use sluice_core::encode::{Encoder, PcmFormat};
use sluice_core::export::OutputFormat;
use sluice_core::io::AtomicFile;
use sluice_core::render::{Block, OutputMeter, SignalSpec};
use sluice_core::riff::Bext;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

/// Seconds of audio the ring holds.
const RING_SECONDS: usize = 8;
/// How often the writer looks at the rings.
const POLL: Duration = Duration::from_millis(5);
/// The longest an offline render waits for the writer before dropping audio as in real time.
pub const OFFLINE_WAIT: Duration = Duration::from_secs(30);

/// Why a take, or its normalized copy, could not be written. Shown in the editor.
#[derive(Debug, thiserror::Error)]
pub enum TakeError {
    #[error("cannot create the take folder {}: {source}", path.display())]
    Folder {
        path: PathBuf,
        source: Box<std::io::Error>,
    },
    #[error("no free take name in {} (10,000 takes with the same second?)", .0.display())]
    NoFreeName(PathBuf),
    #[error(transparent)]
    File(#[from] sluice_core::io::FileError),
    #[error(transparent)]
    Encode(#[from] sluice_core::encode::EncodeError),
    #[error(transparent)]
    Export(#[from] sluice_core::export::ExportError),
}

/// What the audio thread knows about the host's transport for one block.
#[derive(Debug, Clone, Copy, Default)]
pub struct TransportInfo {
    /// The host reports a transport at all (CLAP: a transport event; VST3: a process context).
    pub has_transport: bool,
    pub playing: bool,
    /// Timeline position of the block's first sample, in samples.
    pub position: Option<i64>,
}

#[derive(Debug, Clone, Copy)]
enum Event {
    /// A take begins with the frame `at` of the ring's stream, at this timeline position.
    Start { at: u64, position: i64 },
    /// The take ends before frame `at`.
    Stop { at: u64 },
}

/// The audio-thread side.
pub struct RecorderRt {
    samples: Producer<f32>,
    events: Producer<Event>,
    channels: usize,
    recording: bool,
    /// Frames pushed into the ring since activation.
    pushed: u64,
    /// Where the next block must start for the take to continue seamlessly.
    expected: Option<i64>,
    /// After an overrun: wait for this many free slots before starting again.
    wait_for_room: usize,
    /// An offline render: wait for room rather than drop.
    offline: bool,
    shared: Arc<MeterShared>,
}

impl RecorderRt {
    /// Record one block (planar, `channels` slices of the same length).
    pub fn process(&mut self, planes: &[&[f32]], armed: bool, t: TransportInfo) {
        // A pre-roll: the host plays from before the timeline's 0 (Ardour's export starts a
        // cycle early). BWF has no negative positions, so the frames before 0 are left out and
        // the take starts exactly at 0, where its time reference says.
        if let Some(p) = t.position.filter(|&p| p < 0 && t.playing) {
            let len = planes.first().map_or(0, |x| x.len());
            let skip = usize::try_from(p.unsigned_abs()).map_or(len, |s| s.min(len));
            let n = planes.len().min(MAX_CHANNELS);
            let mut from_zero: [&[f32]; MAX_CHANNELS] = [&[]; MAX_CHANNELS];
            for (dst, src) in from_zero.iter_mut().zip(&planes[..n]) {
                *dst = &src[skip..];
            }
            let t = TransportInfo {
                position: Some(0),
                ..t
            };
            return self.process(&from_zero[..n], armed, t);
        }
        let len = planes.first().map_or(0, |p| p.len());
        let want = armed && (!t.has_transport || t.playing);
        let jumped = self.recording && t.position.is_some() && t.position != self.expected;
        if self.recording && (!want || jumped) {
            self.stop();
        }
        if !want || len == 0 {
            return;
        }
        let need = len * self.channels;
        if self.offline {
            self.wait_for_writer(need);
        }
        if !self.recording {
            if self.samples.slots() < need.max(self.wait_for_room) || self.events.is_full() {
                return self.overrun(len);
            }
            self.wait_for_room = 0;
            let position = t.position.unwrap_or(0);
            if self
                .events
                .push(Event::Start {
                    at: self.pushed,
                    position,
                })
                .is_err()
            {
                return self.overrun(len);
            }
            self.recording = true;
            self.shared.record.recording.store(true, Ordering::Relaxed);
        }
        match self.samples.write_chunk_uninit(need) {
            Ok(mut chunk) => {
                let ch = self.channels;
                let (a, b) = chunk.as_mut_slices();
                // Interleave frame by frame into the two parts of the ring (whole frames only
                // cross the wrap, since the capacity is a multiple of the channel count).
                let first = a.len() / ch;
                for (f, slot) in a.chunks_exact_mut(ch).enumerate() {
                    for (c, s) in slot.iter_mut().enumerate() {
                        s.write(planes[c][f]);
                    }
                }
                for (f, slot) in b.chunks_exact_mut(ch).enumerate() {
                    for (c, s) in slot.iter_mut().enumerate() {
                        s.write(planes[c][first + f]);
                    }
                }
                // SAFETY: every slot of both slices was written above.
                unsafe { chunk.commit_all() };
                self.pushed += len as u64;
                self.expected = t.position.map(|p| p + len as i64);
            }
            Err(_) => {
                // The writer fell behind: end the take where the ring filled.
                self.stop();
                self.wait_for_room = self.samples.buffer().capacity() / 2;
                self.overrun(len);
            }
        }
    }

    /// Offline only: sleeps until the ring has `need` free slots and the event ring room for a
    /// start and a stop, or [`OFFLINE_WAIT`] has passed.
    fn wait_for_writer(&mut self, need: usize) {
        let room = |me: &Self| me.samples.slots() >= need && me.events.slots() >= 2;
        if room(self) {
            return;
        }
        self.shared
            .record
            .offline_waits
            .fetch_add(1, Ordering::Relaxed);
        let since = std::time::Instant::now();
        while !room(self) && since.elapsed() < OFFLINE_WAIT {
            std::thread::sleep(Duration::from_micros(500));
        }
    }

    fn overrun(&mut self, frames: usize) {
        self.shared.record.overruns.fetch_add(1, Ordering::Relaxed);
        self.shared
            .record
            .dropped_frames
            .fetch_add(frames as u64, Ordering::Relaxed);
    }

    /// Ends the take in progress (if the event ring is full the writer ends it at deactivation).
    pub fn stop(&mut self) {
        if self.recording {
            let _ = self.events.push(Event::Stop { at: self.pushed });
            self.recording = false;
            self.expected = None;
            self.shared.record.recording.store(false, Ordering::Relaxed);
        }
    }
}

/// The writer thread's handle, owned by the plugin between `activate` and `deactivate`.
pub struct Writer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    /// Ends the thread after it has written everything already in the rings and closed the take
    /// in progress.
    pub fn finish(mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What the writer needs to know besides the audio.
pub struct TakeConfig {
    pub sample_rate: u32,
    pub channels: usize,
    pub settings: Arc<RwLock<ExportSettings>>,
    /// The target preset in force (integrated LUFS, ceiling dBTP), read when a take closes.
    pub target: Arc<dyn Fn() -> (f32, f32) + Send + Sync>,
    pub shared: Arc<MeterShared>,
    /// The host renders offline (faster than real time, nothing waiting for the audio): the
    /// audio thread waits for the writer instead of dropping audio.
    pub offline: bool,
}

/// Creates the rings and starts the writer thread.
pub fn start(cfg: TakeConfig) -> std::io::Result<(RecorderRt, Writer)> {
    let channels = cfg.channels.clamp(1, MAX_CHANNELS);
    let (sp, sc) = RingBuffer::new(cfg.sample_rate as usize * channels * RING_SECONDS);
    let (ep, ec) = RingBuffer::new(256);
    let stop = Arc::new(AtomicBool::new(false));
    let shared = cfg.shared.clone();
    let offline = cfg.offline;
    shared.record.offline.store(offline, Ordering::Relaxed);
    let mut w = WriterState {
        samples: sc,
        events: ec,
        consumed: 0,
        take: None,
        cfg,
        channels,
        stop: stop.clone(),
        scratch: Vec::new(),
    };
    let thread = std::thread::Builder::new()
        .name("sluice-take-writer".into())
        .spawn(move || w.run())?;
    Ok((
        RecorderRt {
            samples: sp,
            events: ep,
            channels,
            recording: false,
            pushed: 0,
            expected: None,
            wait_for_room: 0,
            offline,
            shared,
        },
        Writer {
            stop,
            thread: Some(thread),
        },
    ))
}

struct Take {
    file: AtomicFile,
    encoder: Box<dyn Encoder>,
    meter: OutputMeter,
    frames: u64,
    failed: bool,
}

struct WriterState {
    samples: Consumer<f32>,
    events: Consumer<Event>,
    consumed: u64,
    take: Option<Take>,
    cfg: TakeConfig,
    channels: usize,
    stop: Arc<AtomicBool>,
    scratch: Vec<Vec<f32>>,
}

/// The folder takes go to when none is set: `$HOME/Sluice Takes` (the current folder without a
/// home).
pub fn default_folder() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
        .join("Sluice Takes")
}

impl WriterState {
    fn run(&mut self) {
        loop {
            // Whether to stop is read before draining, so everything pushed before the stop
            // request is written.
            let stopping = self.stop.load(Ordering::Acquire);
            let did = self.drain();
            if stopping && !did {
                break;
            }
            if !did {
                std::thread::sleep(POLL);
            }
        }
        // Deactivation ends the take in progress.
        self.close_take();
    }

    /// Handles what is in the rings; false when there was nothing.
    fn drain(&mut self) -> bool {
        let mut did = false;
        loop {
            // Samples first: the audio thread posts a take's start before its samples, so any
            // samples seen here come with their events visible.
            let available = (self.samples.slots() / self.channels) as u64;
            if let Ok(&ev) = self.events.peek() {
                let at = match ev {
                    Event::Start { at, .. } | Event::Stop { at } => at,
                };
                if at <= self.consumed {
                    let _ = self.events.pop();
                    match ev {
                        Event::Start { position, .. } => {
                            self.close_take();
                            self.open_take(position);
                        }
                        Event::Stop { .. } => self.close_take(),
                    }
                    did = true;
                    continue;
                }
                let n = available.min(at - self.consumed);
                if n == 0 {
                    return did;
                }
                self.consume(n as usize);
                did = true;
            } else {
                if available == 0 {
                    return did;
                }
                self.consume(available as usize);
                did = true;
            }
        }
    }

    fn consume(&mut self, frames: usize) {
        let ch = self.channels;
        let Ok(chunk) = self.samples.read_chunk(frames * ch) else {
            return;
        };
        let (a, b) = chunk.as_slices();
        self.scratch.resize_with(ch, Vec::new);
        for p in &mut self.scratch {
            p.clear();
        }
        for (i, &v) in a.iter().chain(b).enumerate() {
            self.scratch[i % ch].push(v);
        }
        chunk.commit_all();
        self.consumed += frames as u64;
        let Some(take) = &mut self.take else {
            return;
        };
        if take.failed {
            return;
        }
        let block = Block::from_planes(std::mem::take(&mut self.scratch));
        take.meter.feed(&block);
        if let Err(e) = take.encoder.write(&block) {
            take.failed = true;
            self.cfg.shared.record.set_error(e.to_string());
        }
        take.frames += frames as u64;
        self.cfg
            .shared
            .record
            .take_frames
            .store(take.frames, Ordering::Relaxed);
        self.scratch = block.into_planes();
    }

    fn open_take(&mut self, position: i64) {
        let settings = self
            .cfg
            .settings
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let folder = if settings.folder.trim().is_empty() {
            default_folder()
        } else {
            PathBuf::from(settings.folder.trim())
        };
        match self.create_take(&folder, &settings, position) {
            Ok(t) => {
                self.cfg
                    .shared
                    .record
                    .take_frames
                    .store(0, Ordering::Relaxed);
                self.take = Some(t);
            }
            Err(e) => {
                self.cfg.shared.record.set_error(e.to_string());
                self.take = None;
            }
        }
    }

    fn create_take(
        &self,
        folder: &Path,
        settings: &ExportSettings,
        position: i64,
    ) -> Result<Take, TakeError> {
        std::fs::create_dir_all(folder).map_err(|source| TakeError::Folder {
            path: folder.to_path_buf(),
            source: source.into(),
        })?;
        let (format, ext) = take_output_format(settings.format);
        let spec = SignalSpec::with_channels(self.cfg.sample_rate, self.channels);
        let now = civil_now();
        let bext = (ext == "wav").then(|| {
            let mut b = Bext {
                description: format!("{} take", crate::PLUGIN_NAME),
                originator: crate::PLUGIN_NAME.into(),
                originator_reference: String::new(),
                origination_date: now.0.clone(),
                origination_time: now.1.replace('-', ":"),
                // Never negative: the audio thread leaves out a pre-roll's frames before 0.
                time_reference: position.max(0) as u64,
                version: 2,
                ..Bext::default()
            };
            let float = settings.format == TakeFormat::Wav32Float;
            b.add_coding(
                float,
                self.cfg.sample_rate,
                if float { 32 } else { 24 },
                self.channels,
                &format!("{} {}", crate::PLUGIN_NAME, env!("CARGO_PKG_VERSION")),
            );
            b
        });
        let prefix = if settings.name_prefix.trim().is_empty() {
            "Sluice take".to_string()
        } else {
            sanitize(settings.name_prefix.trim())
        };
        let base = format!("{prefix} {} {}", now.0, now.1);
        for n in 1..10_000 {
            let name = if n == 1 {
                format!("{base}.{ext}")
            } else {
                format!("{base} {n}.{ext}")
            };
            let dest = folder.join(name);
            if dest.exists() {
                continue;
            }
            let (file, handle) = match AtomicFile::create(&dest, false) {
                Ok(x) => x,
                Err(e) if dest.exists() => {
                    let _ = e;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            let encoder = format.create(handle, &dest, &spec, bext)?;
            return Ok(Take {
                file,
                encoder,
                meter: OutputMeter::new(&spec),
                frames: 0,
                failed: false,
            });
        }
        Err(TakeError::NoFreeName(folder.to_path_buf()))
    }

    fn close_take(&mut self) {
        let Some(mut take) = self.take.take() else {
            return;
        };
        if take.failed {
            return; // the AtomicFile removes its temporary file
        }
        let loudness = take.meter.finish();
        take.encoder.set_loudness(&loudness);
        let dest = take.file.dest().to_path_buf();
        let result = take
            .encoder
            .finish()
            .map_err(|e| e.to_string())
            .and_then(|()| take.file.commit().map_err(|e| e.to_string()));
        match result {
            Ok(_) => {
                self.cfg.shared.record.takes.fetch_add(1, Ordering::Relaxed);
                *self
                    .cfg
                    .shared
                    .record
                    .last_take
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = Some(dest.clone());
                let normalize = self
                    .cfg
                    .settings
                    .read()
                    .map(|s| s.normalize_on_finalize)
                    .unwrap_or(false);
                if normalize && take.frames > 0 {
                    let (lufs, ceiling) = (self.cfg.target)();
                    let shared = self.cfg.shared.clone();
                    let format = self
                        .cfg
                        .settings
                        .read()
                        .map(|s| s.format)
                        .unwrap_or_default();
                    // Offline and possibly long: its own thread, so the next take is not held up.
                    let _ = std::thread::Builder::new()
                        .name("sluice-take-normalize".into())
                        .spawn(move || {
                            if let Err(e) = normalize_take(&dest, format, lufs, ceiling) {
                                shared.record.set_error(e.to_string());
                            }
                        });
                }
            }
            Err(e) => self.cfg.shared.record.set_error(e.to_string()),
        }
    }
}

/// The normalized copy of a take: `<take> (normalized).<ext>` beside it, same format, the
/// integrated loudness at `lufs` with the true peak under `ceiling` (the core's limiter).
pub fn normalize_take(
    take: &Path,
    take_format: TakeFormat,
    lufs: f32,
    ceiling: f32,
) -> Result<PathBuf, TakeError> {
    use sluice_core::export::{OutputPlan, export};
    use sluice_core::render::normalize::NormalizeTarget;
    use sluice_core::render::steps::StepSpec;
    let stem = take
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ext = take
        .extension()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let dest = take.with_file_name(format!("{stem} (normalized).{ext}"));
    let format = take_output_format(take_format).0;
    let plan = [StepSpec::Normalize(NormalizeTarget::Loudness {
        lufs: f64::from(lufs),
        true_peak_dbtp: f64::from(ceiling),
        limiter: true,
        rule: Default::default(),
    })];
    let out = OutputPlan {
        path: dest.clone(),
        format,
        dither: Default::default(),
        tags: Default::default(),
        bext: true,
        overwrite: false,
        channels: None,
        sample_rate: None,
        true_peak_check: true,
        max_encodes: sluice_core::export::MAX_ENCODES,
    };
    export(take, &plan, &[out], &mut |_| {})?;
    Ok(dest)
}

/// The core output format of a take format, and its file extension.
fn take_output_format(f: TakeFormat) -> (OutputFormat, &'static str) {
    let format = match f {
        TakeFormat::Wav24 => sluice_core::encode::wav::output(PcmFormat::Int(24)),
        TakeFormat::Wav32Float => sluice_core::encode::wav::output(PcmFormat::Float32),
        TakeFormat::Flac24 => sluice_core::encode::flac::output(24, 5),
    };
    (format, format.extension())
}

/// A file name without path separators, NUL or colons.
pub(crate) fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if matches!(c, '/' | '\\' | '\0' | ':') {
                '_'
            } else {
                c
            }
        })
        .collect()
}

/// The date and time in UTC as (`yyyy-mm-dd`, `hh-mm-ss`) (the plugin does not read time
/// zones). A clock jiff cannot represent reads as the Unix epoch.
pub(crate) fn civil_now() -> (String, String) {
    let now = jiff::Timestamp::try_from(std::time::SystemTime::now())
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    let t = jiff::tz::Offset::UTC.to_datetime(now);
    (
        t.strftime("%Y-%m-%d").to_string(),
        t.strftime("%H-%M-%S").to_string(),
    )
}
