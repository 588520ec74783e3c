//! Reference A/B: up to [`MAX_REFERENCES`] reference tracks, decoded by sluice-core on a
//! thread of their own, played instead of the mix while the Mix/Ref switch says Ref,
//! level-matched to the mix's integrated loudness.
//!
//! - **Loading** ([`References::request`]): a thread per request decodes the file, measures it
//!   (integrated loudness, loudness range, true peak, PLR and the five bands' shares, the
//!   core's analysis of the file itself), resamples it to the session's rate with the core's
//!   resampler and maps its channels onto the plugin's (mono to both sides; stereo to L R; a
//!   mono session hears the mean; 5.1 gets L R and silence elsewhere). A file that cannot be
//!   read, is silent, or is longer than [`MAX_SECONDS`] fails with the reason, shown in the
//!   editor; nothing else changes.
//! - **Handing over** without the audio thread waiting, allocating or freeing: each slot has a
//!   generation counter and a mutex the audio thread only `try_lock`s (a busy slot costs it
//!   one block of the old reference). The audio thread never drops a reference: the one it
//!   replaces goes back through a ring ([`rtrb`]) and is freed by whoever next drains it (a
//!   load, the editor, deactivation).
//! - **Playing** ([`AbPlayer::process`]): while Ref is on (and bypass off), the output is the
//!   chosen reference times the level-match gain: the mix's integrated loudness minus the
//!   reference's (before the mix has one, the target's), ramped over a block when it changes.
//!   With "sync" the reference follows the host's timeline (position modulo its length, silent
//!   while the transport stands); without it, it loops from where it was. The meters keep
//!   measuring the mix (the input), which is what the level match needs.

pub use crate::params::{MAX_REFERENCES, ReferenceSettings};
use rtrb::{Consumer, Producer, RingBuffer};
use serde::Serialize;
use sluice_core::analysis::{AnalysisOptions, Section};
use sluice_core::block::{Block, SignalSpec};
use sluice_core::formats::limits::MAX_CHANNELS;
use sluice_core::render::Stage;
use sluice_core::render::resample::{Resample, ResampleQuality};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The longest reference kept in memory (a 15-minute stereo file at 48 kHz is 346 MB).
pub const MAX_SECONDS: f64 = 15.0 * 60.0;
/// The most audio one reference may hold in memory, in samples at the session's rate (kept
/// channels × frames): 15 minutes of 96 kHz stereo, 691 MB. A 15-minute reference in a
/// 192 kHz 5.1 session would take 4 GB: it is refused, saying how long one may be there.
pub const MAX_SAMPLES: u64 = 15 * 60 * 96_000 * 2;
/// How long switching between the mix and the reference crossfades (no click).
pub const FADE_SECONDS: f32 = 0.02;
/// References that cannot be handed back at once wait here (the ring's size).
const RETURN_RING: usize = 4 * MAX_REFERENCES;

/// A reference's figures (the core's analysis of the file).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Figures {
    pub integrated_lufs: f64,
    pub loudness_range_lu: Option<f64>,
    pub true_peak_dbtp: Option<f64>,
    pub plr_lu: Option<f64>,
    pub band_share_percent: Vec<Option<f64>>,
    pub seconds: f64,
    pub sample_rate: u32,
    pub channels: usize,
}

/// A decoded reference at the session's rate and channel count.
pub struct Loaded {
    pub path: PathBuf,
    pub figures: Figures,
    /// Planar, one plane per session channel, all the same length.
    pub planes: Vec<Vec<f32>>,
    pub frames: usize,
}

/// A slot as the editor shows it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SlotStatus {
    pub path: String,
    /// "empty", "loading", "ready" or "error".
    pub state: &'static str,
    pub error: Option<String>,
    pub figures: Option<Figures>,
}

/// The smallest tolerance of a tonal-balance target, dB (a single reference has no spread).
pub const MIN_TOLERANCE_DB: f64 = 1.0;

/// What a mix's tonal balance is held against: per band of [`BANDS`](sluice_core::analysis::spectrum::BANDS),
/// the level relative to the mean of the bands (dB) and the tolerance around it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TonalTarget {
    pub name: String,
    pub mean_db: Vec<f64>,
    pub tolerance_db: Vec<f64>,
}

/// `levels` relative to their mean (`None` when one is not finite).
fn relative(levels: &[f64]) -> Option<Vec<f64>> {
    if levels.is_empty() || levels.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let mean = levels.iter().sum::<f64>() / levels.len() as f64;
    Some(levels.iter().map(|v| v - mean).collect())
}

/// Band shares (percent of the power) as levels, dB.
fn share_levels(shares: impl Iterator<Item = f64>) -> Vec<f64> {
    shares.map(|s| 10.0 * (s / 100.0).log10()).collect()
}

impl TonalTarget {
    /// From per-band levels (any common reference) and their spreads.
    pub fn from_band_levels(name: &str, levels: &[f64], spreads: &[f64]) -> Option<TonalTarget> {
        Some(TonalTarget {
            name: name.to_string(),
            mean_db: relative(levels)?,
            tolerance_db: spreads.iter().map(|s| s.max(MIN_TOLERANCE_DB)).collect(),
        })
    }

    /// From a profile: each band's power from the profile's tonal curve (its third-octave
    /// levels summed over the band, sharp-edged like the plugin's band shares; the bands' filter
    /// levels, whose 24 dB/octave skirts take in a neighbour's tone near an edge, disagreed with
    /// the shares by up to 12 dB on tonal material), the spread of the references' band levels
    /// as the tolerance. Third-octave resolution puts a tone within a sixth of an octave of a
    /// band edge on either side of it, so strongly tonal material near an edge can read a few dB
    /// off; on broadband material the two agree within 0.3 dB (`plugin/tests/reference.rs`).
    /// Without a tonal curve in the profile, the band levels themselves.
    pub fn from_profile(p: &sluice_core::analysis::compare::Profile) -> Option<TonalTarget> {
        use sluice_core::analysis::spectrum::BANDS;
        let spreads: Vec<f64> = p.bands.iter().map(|b| b.level_db.spread).collect();
        let levels: Vec<f64> = if p.tonal.is_empty() {
            p.bands.iter().map(|b| b.level_db.mean).collect()
        } else {
            BANDS
                .iter()
                .map(|&(_, lo, hi)| {
                    let power: f64 = p
                        .tonal
                        .iter()
                        .filter(|x| x.hz >= lo && x.hz < hi)
                        .map(|x| 10f64.powf(x.mean_db / 10.0))
                        .sum();
                    10.0 * power.log10()
                })
                .collect()
        };
        Self::from_band_levels(&p.name, &levels, &spreads)
    }

    /// From references' band shares: per band the mean of their relative levels, the spread
    /// between them as the tolerance.
    pub fn from_references(name: &str, figures: &[&Figures]) -> Option<TonalTarget> {
        let rel: Vec<Vec<f64>> = figures
            .iter()
            .filter_map(|f| {
                let shares: Option<Vec<f64>> = f.band_share_percent.iter().copied().collect();
                relative(&share_levels(shares?.into_iter()))
            })
            .collect();
        let bands = rel.first()?.len();
        let n = rel.len() as f64;
        let mean: Vec<f64> = (0..bands)
            .map(|b| rel.iter().map(|r| r[b]).sum::<f64>() / n)
            .collect();
        let spread: Vec<f64> = (0..bands)
            .map(|b| (rel.iter().map(|r| (r[b] - mean[b]).powi(2)).sum::<f64>() / n).sqrt())
            .collect();
        Self::from_band_levels(name, &mean, &spread)
    }

    /// The mix's difference from the target per band (dB; positive: the mix has more there),
    /// from its band shares; `None` while a share is undefined or zero.
    pub fn deltas(&self, shares: &[f32]) -> Option<Vec<f64>> {
        if shares.len() != self.mean_db.len() || shares.iter().any(|s| s.is_nan() || *s <= 0.0) {
            return None;
        }
        let mix = relative(&share_levels(shares.iter().map(|&s| s as f64)))?;
        Some(mix.iter().zip(&self.mean_db).map(|(m, t)| m - t).collect())
    }
}

/// The profile file the tonal balance is held against.
#[derive(Debug, Clone, Default)]
struct ProfileFile {
    path: String,
    target: Option<Result<TonalTarget, ProfileError>>,
}

struct Slot {
    /// Raised whenever `audio` changes.
    generation: AtomicU64,
    audio: Mutex<Option<Arc<Loaded>>>,
    status: Mutex<SlotStatus>,
    /// Requests made for this slot; a load whose number is not the latest is dropped.
    requests: AtomicU64,
}

/// The references of one plugin instance, shared by the audio thread, the editor and the
/// loader threads.
pub struct References {
    slots: [Slot; MAX_REFERENCES],
    /// The session's rate and channel count (0 before activation).
    pub rate: AtomicU32,
    pub channels: AtomicU32,
    returned: Mutex<Consumer<Arc<Loaded>>>,
    return_to: Mutex<Option<Producer<Arc<Loaded>>>>,
    /// The gain the audio thread applies to the reference now (dB, f32 bits), for the editor.
    pub gain_db_bits: AtomicU32,
    /// What is heard while the reference plays, measured (f32 bits, NaN otherwise): momentary,
    /// short-term and integrated loudness since Ref was switched on.
    pub playing_lufs_bits: [AtomicU32; 3],
    profile: Mutex<ProfileFile>,
    /// The loader threads (joined by `close`), and whether the instance is going (they stop
    /// between blocks; no new one starts).
    loaders: Mutex<Vec<std::thread::JoinHandle<()>>>,
    closing: AtomicBool,
}

impl Default for References {
    fn default() -> Self {
        let (tx, rx) = RingBuffer::new(RETURN_RING);
        References {
            slots: std::array::from_fn(|_| Slot {
                generation: AtomicU64::new(0),
                audio: Mutex::new(None),
                status: Mutex::new(SlotStatus {
                    state: "empty",
                    ..SlotStatus::default()
                }),
                requests: AtomicU64::new(0),
            }),
            rate: AtomicU32::new(0),
            channels: AtomicU32::new(0),
            returned: Mutex::new(rx),
            return_to: Mutex::new(Some(tx)),
            gain_db_bits: AtomicU32::new(f32::NAN.to_bits()),
            playing_lufs_bits: std::array::from_fn(|_| AtomicU32::new(f32::NAN.to_bits())),
            profile: Mutex::new(ProfileFile::default()),
            loaders: Mutex::new(Vec::new()),
            closing: AtomicBool::new(false),
        }
    }
}

/// Why a reference cannot be used (each names the file).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The decoder's errors name the file.
    #[error(transparent)]
    Input(#[from] Box<sluice_core::InputError>),
    #[error("{}: {source}", path.display())]
    Render {
        path: PathBuf,
        source: Box<sluice_core::render::RenderError>,
    },
    #[error("{}: cancelled", .0.display())]
    Cancelled(PathBuf),
    /// Longer than a reference may be, or more samples than one may hold at this session's
    /// rate and channels.
    #[error("{}", too_long(.path, *.seconds, *.keep, *.rate))]
    TooLong {
        path: PathBuf,
        seconds: f64,
        keep: usize,
        rate: u32,
    },
    #[error("{}: no loudness measured", .0.display())]
    NoLoudness(PathBuf),
    #[error("{}: silent (no integrated loudness), nothing to match", .0.display())]
    Silent(PathBuf),
    #[error("{}: no audio", .0.display())]
    NoAudio(PathBuf),
}

fn too_long(path: &Path, seconds: f64, keep: usize, rate: u32) -> String {
    let shown = path.display();
    if seconds > MAX_SECONDS {
        format!(
            "{shown}: {:.0} minutes long; references up to {:.0} minutes are kept in memory",
            seconds / 60.0,
            MAX_SECONDS / 60.0
        )
    } else {
        format!(
            "{shown}: {:.1} minutes of {keep} channel(s) at this session's {rate} Hz would take \
             {:.0} MB; a reference may take {:.0} MB here ({:.1} minutes)",
            seconds / 60.0,
            seconds * f64::from(rate) * keep as f64 * 4.0 / 1e6,
            MAX_SAMPLES as f64 * 4.0 / 1e6,
            MAX_SAMPLES as f64 / (f64::from(rate) * keep as f64) / 60.0
        )
    }
}

/// Decodes, measures and resamples the reference at `path` in one pass: why it cannot be used,
/// or [`LoadError::Cancelled`] when `stop` turned true between two decoded blocks (the instance
/// is going, or a later request for the slot replaced this one).
pub fn load(
    path: &Path,
    rate: u32,
    channels: usize,
    stop: &dyn Fn() -> bool,
) -> Result<Loaded, LoadError> {
    let opts = AnalysisOptions {
        sections: vec![Section::Loudness, Section::Spectrum],
        targets: Vec::new(),
        ..AnalysisOptions::default()
    };
    let mut dec = sluice_core::Decoder::open(path).map_err(Box::new)?;
    let info = dec.info().clone();
    let src_rate = f64::from(info.sample_rate.max(1));
    // Only the channels the session hears are kept (see `map_channels`): a mono session hears
    // the mean of the front pair, others the first channels.
    let src_channels = info.channels.max(1) as usize;
    let keep = if channels <= 1 {
        src_channels.min(2)
    } else {
        src_channels.min(channels.min(MAX_CHANNELS))
    };
    let samples_kept = |seconds: f64| seconds * f64::from(rate) * keep as f64;
    let too_long = |seconds: f64| LoadError::TooLong {
        path: path.to_path_buf(),
        seconds,
        keep,
        rate,
    };
    let fits = |seconds: f64| seconds <= MAX_SECONDS && samples_kept(seconds) <= MAX_SAMPLES as f64;
    if let Some(seconds) = info.duration_seconds
        && !fits(seconds)
    {
        return Err(too_long(seconds));
    }
    let mut analyzers = sluice_core::analysis::plan(&info, &opts);
    let spec = SignalSpec::with_channels(info.sample_rate, keep);
    let mut resample =
        (info.sample_rate != rate).then(|| Resample::new(rate, ResampleQuality::Fft));
    if let Some(r) = &mut resample {
        r.start(&spec).map_err(|source| LoadError::Render {
            path: path.to_path_buf(),
            source: Box::new(source),
        })?;
    }
    let mut out = Block::new(keep);
    let mut block = Block::new(keep);
    let mut frames_read = 0u64;
    while let Some(decoded) = dec.next_block().map_err(Box::new)? {
        if stop() {
            return Err(LoadError::Cancelled(path.to_path_buf()));
        }
        let planes: Vec<&[f32]> = decoded.planes().collect();
        // A file whose header gave no length is refused once it proves too long, before more
        // of it is held.
        frames_read += planes.first().map_or(0, |p| p.len()) as u64;
        let seconds = frames_read as f64 / src_rate;
        if !fits(seconds) {
            return Err(too_long(seconds));
        }
        for a in &mut analyzers {
            a.feed(&planes);
        }
        block.reset(keep);
        for (c, plane) in planes.iter().take(keep).enumerate() {
            block.plane_mut(c).extend_from_slice(plane);
        }
        if let Some(r) = &mut resample {
            r.process(&mut block);
        }
        out.extend_from(&block);
    }
    if let Some(r) = &mut resample {
        loop {
            block.reset(spec.channels());
            let more = r.finish(&mut block);
            out.extend_from(&block);
            if !more {
                break;
            }
        }
    }
    let report = sluice_core::analysis::conclude(dec, analyzers, &opts);
    let seconds = report.stream.duration_seconds.unwrap_or(0.0);
    let loudness = report
        .loudness
        .as_ref()
        .ok_or_else(|| LoadError::NoLoudness(path.to_path_buf()))?;
    let integrated = loudness
        .summary
        .integrated_lufs
        .ok_or_else(|| LoadError::Silent(path.to_path_buf()))?;
    let figures = Figures {
        integrated_lufs: integrated,
        loudness_range_lu: loudness.summary.loudness_range_lu,
        true_peak_dbtp: loudness.true_peak_dbtp,
        plr_lu: loudness.plr_lu,
        band_share_percent: report
            .spectrum
            .as_ref()
            .map(|s| s.bands.iter().map(|b| b.share_percent).collect())
            .unwrap_or_default(),
        seconds,
        sample_rate: report.stream.sample_rate,
        channels: report.stream.channels as usize,
    };
    let planes = map_channels(out.into_planes(), channels);
    let frames = planes.first().map_or(0, Vec::len);
    if frames == 0 {
        return Err(LoadError::NoAudio(path.to_path_buf()));
    }
    Ok(Loaded {
        path: path.to_path_buf(),
        figures,
        planes,
        frames,
    })
}

/// The largest profile file read: one is a few kilobytes of JSON; anything near this is the
/// wrong file, and is not read into memory on the thread that asked (the editor's).
pub const MAX_PROFILE_BYTES: u64 = 4 << 20;

/// A regular file of at most [`MAX_PROFILE_BYTES`] (a FIFO would block the reader; a large
/// file is not a profile).
fn read_small_file(path: &Path) -> Result<Vec<u8>, ProfileError> {
    use std::io::Read;
    let io = |e: std::io::Error| ProfileError::Read {
        path: path.to_path_buf(),
        source: Arc::new(e),
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if !meta.is_file() {
        return Err(ProfileError::NotAFile(path.to_path_buf()));
    }
    if meta.len() > MAX_PROFILE_BYTES {
        return Err(ProfileError::TooLarge {
            path: path.to_path_buf(),
            bytes: meta.len(),
        });
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_PROFILE_BYTES + 1).read_to_end(&mut bytes))
        .map_err(io)?;
    Ok(bytes)
}

/// Why a profile file cannot be held against (each names the file).
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProfileError {
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: Arc<std::io::Error>,
    },
    #[error("{}: not a regular file", .0.display())]
    NotAFile(PathBuf),
    #[error(
        "{}: {:.1} MB: not a Sluice profile (those are a few kilobytes of JSON)",
        path.display(),
        *bytes as f64 / 1e6
    )]
    TooLarge { path: PathBuf, bytes: u64 },
    #[error("{}: not a Sluice profile: {source}", path.display())]
    NotAProfile {
        path: PathBuf,
        source: Arc<serde_json::Error>,
    },
    #[error("{}: the profile has no band levels", .0.display())]
    NoBands(PathBuf),
}

/// Maps a reference's channels onto `channels` session channels.
fn map_channels(planes: Vec<Vec<f32>>, channels: usize) -> Vec<Vec<f32>> {
    let frames = planes.first().map_or(0, Vec::len);
    let channels = channels.clamp(1, MAX_CHANNELS);
    let mut out = vec![Vec::new(); channels];
    match (planes.len(), channels) {
        (0, _) => return vec![vec![0.0; 0]; channels],
        // A mono session hears the mean of the reference's front pair.
        (n, 1) if n >= 2 => {
            out[0] = planes[0]
                .iter()
                .zip(&planes[1])
                .map(|(l, r)| 0.5 * (l + r))
                .collect();
        }
        // A mono reference on both (or every front) channel.
        (1, c) => {
            for o in out.iter_mut().take(c.min(2)) {
                o.clone_from(&planes[0]);
            }
        }
        _ => {
            for (o, p) in out.iter_mut().zip(planes) {
                *o = p;
            }
        }
    }
    for o in &mut out {
        o.resize(frames, 0.0);
    }
    out
}

impl References {
    /// Frees the references the audio thread has handed back.
    pub fn drain_returned(&self) {
        if let Ok(mut rx) = self.returned.lock() {
            while rx.pop().is_ok() {}
        }
    }

    /// The audio thread's side; `None` after the first call (one player per instance).
    pub fn player(self: &Arc<Self>) -> Option<AbPlayer> {
        let tx = self.return_to.lock().ok()?.take()?;
        Some(AbPlayer {
            refs: self.clone(),
            cached: std::array::from_fn(|_| None),
            seen: [0; MAX_REFERENCES],
            pending: Vec::with_capacity(MAX_REFERENCES * 2),
            return_to: tx,
            free_pos: 0,
            gain: f32::NAN,
            fade: 0.0,
        })
    }

    /// Gives the player back its ring end (when the engine is rebuilt at activation).
    pub fn return_player(&self, p: AbPlayer) {
        let AbPlayer {
            mut pending,
            return_to,
            cached,
            ..
        } = p;
        pending.extend(cached.into_iter().flatten());
        drop(pending);
        if let Ok(mut slot) = self.return_to.lock() {
            *slot = Some(return_to);
        }
        self.drain_returned();
    }

    /// The slots as the editor shows them.
    pub fn statuses(&self) -> Vec<SlotStatus> {
        self.slots
            .iter()
            .map(|s| s.status.lock().unwrap_or_else(|p| p.into_inner()).clone())
            .collect()
    }

    /// Loads `path` into `slot` on a thread of its own (an empty path clears the slot). The
    /// session's rate and channels must be known (after activation); before that the request
    /// waits for [`Self::reload_all`].
    pub fn request(self: &Arc<Self>, slot: usize, path: &str) {
        if slot >= MAX_REFERENCES {
            return;
        }
        self.drain_returned();
        let s = &self.slots[slot];
        let n = s.requests.fetch_add(1, Ordering::AcqRel) + 1;
        let path = path.trim().to_string();
        {
            let mut st = s.status.lock().unwrap_or_else(|p| p.into_inner());
            *st = SlotStatus {
                path: path.clone(),
                state: if path.is_empty() { "empty" } else { "loading" },
                ..SlotStatus::default()
            };
        }
        if path.is_empty() {
            self.set_audio(slot, None);
            return;
        }
        let rate = self.rate.load(Ordering::Relaxed);
        let channels = self.channels.load(Ordering::Relaxed) as usize;
        if rate == 0 || channels == 0 {
            // Not active yet: `reload_all` at activation loads it.
            return;
        }
        // Held while the thread starts, so `close` either sees it in the list or it sees
        // `closing`.
        let mut loaders = self.loaders.lock().unwrap_or_else(|p| p.into_inner());
        if self.closing.load(Ordering::Acquire) {
            return;
        }
        // Those that ended are joined here; the list holds the running ones.
        for done in loaders.extract_if(.., |h| h.is_finished()) {
            let _ = done.join();
        }
        let me = self.clone();
        let spawned = std::thread::Builder::new()
            .name("sluice-reference-load".into())
            .spawn(move || {
                let s = &me.slots[slot];
                let stop = || {
                    me.closing.load(Ordering::Acquire) || s.requests.load(Ordering::Acquire) != n
                };
                let result = load(Path::new(&path), rate, channels, &stop);
                if !stop() {
                    let mut st = s.status.lock().unwrap_or_else(|p| p.into_inner());
                    // For the host's log (a DAW check reads it there).
                    match &result {
                        Ok(l) => nice_plug::nice_log!(
                            "reference slot {}: loaded {} ({:.1} LUFS integrated, {:.1} s)",
                            slot + 1,
                            path,
                            l.figures.integrated_lufs,
                            l.figures.seconds
                        ),
                        Err(e) => nice_plug::nice_log!("reference slot {}: {e}", slot + 1),
                    }
                    match result {
                        Ok(loaded) => {
                            st.state = "ready";
                            st.figures = Some(loaded.figures.clone());
                            drop(st);
                            me.set_audio(slot, Some(Arc::new(loaded)));
                        }
                        Err(e) => {
                            st.state = "error";
                            st.error = Some(e.to_string());
                            drop(st);
                            me.set_audio(slot, None);
                        }
                    }
                }
            });
        match spawned {
            Ok(handle) => loaders.push(handle),
            Err(e) => {
                drop(loaders);
                let mut st = s.status.lock().unwrap_or_else(|p| p.into_inner());
                st.state = "error";
                st.error = Some(format!("cannot start loading: {e}"));
            }
        }
    }

    /// Stops the loads under way (each between two decoded blocks) and waits up to `timeout`
    /// for their threads to end; no load starts after this. Called when the instance is
    /// destroyed: a host may unload the plugin's library right after, and a thread still
    /// running its code would then crash the host. Returns whether every loader ended.
    pub fn close(&self, timeout: std::time::Duration) -> bool {
        let mut loaders = self.loaders.lock().unwrap_or_else(|p| p.into_inner());
        self.closing.store(true, Ordering::Release);
        let until = std::time::Instant::now() + timeout;
        while !loaders.iter().all(|h| h.is_finished()) {
            if std::time::Instant::now() >= until {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        // Joined, not only finished: the thread has left this library's code entirely.
        for h in loaders.drain(..) {
            let _ = h.join();
        }
        true
    }

    /// Loader threads not yet joined (running, or ended since the last request).
    pub fn loads_running(&self) -> usize {
        let loaders = self.loaders.lock().unwrap_or_else(|p| p.into_inner());
        loaders.iter().filter(|h| !h.is_finished()).count()
    }

    fn set_audio(&self, slot: usize, audio: Option<Arc<Loaded>>) {
        let s = &self.slots[slot];
        let old = {
            let mut a = s.audio.lock().unwrap_or_else(|p| p.into_inner());
            std::mem::replace(&mut *a, audio)
        };
        s.generation.fetch_add(1, Ordering::Release);
        drop(old);
        self.drain_returned();
    }

    /// Loads every path of `settings` for the session now known (activation, or a state
    /// restored by the host).
    pub fn reload_all(self: &Arc<Self>, settings: &ReferenceSettings, rate: u32, channels: usize) {
        if self.profile_status().0 != settings.profile.trim() {
            // Its error, if any, is shown in the editor.
            let _ = self.load_profile(&settings.profile);
        }
        let old_rate = self.rate.swap(rate, Ordering::Relaxed);
        let old_channels = self.channels.swap(channels as u32, Ordering::Relaxed);
        let changed = old_rate != rate || old_channels != channels as u32;
        for slot in 0..MAX_REFERENCES {
            let path = settings.paths.get(slot).cloned().unwrap_or_default();
            let status = self.slots[slot]
                .status
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            // Loaded already for this session: keep it.
            if !changed && status.path == path.trim() && status.state != "loading" {
                continue;
            }
            self.request(slot, &path);
        }
    }

    /// Reads the profile file at `path` (`sluice ref profile export`; empty: none), which the
    /// tonal balance is then held against. Returns why it cannot be used.
    pub fn load_profile(&self, path: &str) -> Result<(), ProfileError> {
        let path = path.trim().to_string();
        let file = PathBuf::from(&path);
        let target = if path.is_empty() {
            None
        } else {
            Some(
                read_small_file(&file)
                    .and_then(|b| {
                        serde_json::from_slice::<sluice_core::analysis::compare::Profile>(&b)
                            .map_err(|e| ProfileError::NotAProfile {
                                path: file.clone(),
                                source: Arc::new(e),
                            })
                    })
                    .and_then(|p| {
                        TonalTarget::from_profile(&p)
                            .ok_or_else(|| ProfileError::NoBands(file.clone()))
                    }),
            )
        };
        let result = match &target {
            Some(Err(e)) => Err(e.clone()),
            _ => Ok(()),
        };
        *self.profile.lock().unwrap_or_else(|p| p.into_inner()) = ProfileFile { path, target };
        result
    }

    /// The profile file's path and, when it could not be read, why.
    pub fn profile_status(&self) -> (String, Option<String>) {
        let p = self.profile.lock().unwrap_or_else(|p| p.into_inner());
        let error = match &p.target {
            Some(Err(e)) => Some(e.to_string()),
            _ => None,
        };
        (p.path.clone(), error)
    }

    /// What the tonal balance is held against: the profile file when one is loaded, else the
    /// references that are loaded (none: `None`).
    pub fn tonal_target(&self) -> Option<TonalTarget> {
        self.tonal_target_of(&self.statuses())
    }

    /// [`Self::tonal_target`] with the slots' statuses already read.
    pub fn tonal_target_of(&self, statuses: &[SlotStatus]) -> Option<TonalTarget> {
        if let Some(Ok(t)) = &self
            .profile
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .target
        {
            return Some(t.clone());
        }
        let figures: Vec<&Figures> = statuses.iter().filter_map(|s| s.figures.as_ref()).collect();
        let name = format!("{} reference(s)", figures.len());
        TonalTarget::from_references(&name, &figures)
    }

    /// Whether a load is under way.
    pub fn loading(&self) -> bool {
        self.statuses().iter().any(|s| s.state == "loading")
    }

    /// What is heard while the reference plays: momentary, short-term and integrated LUFS
    /// (NaN while the mix is heard, or before a value).
    pub fn playing_lufs(&self) -> [f32; 3] {
        std::array::from_fn(|i| f32::from_bits(self.playing_lufs_bits[i].load(Ordering::Relaxed)))
    }

    /// The level-match gain the audio thread applies now (dB; NaN while not playing a
    /// reference).
    pub fn gain_db(&self) -> f32 {
        f32::from_bits(self.gain_db_bits.load(Ordering::Relaxed))
    }
}

/// The audio thread's reference player.
pub struct AbPlayer {
    refs: Arc<References>,
    cached: [Option<Arc<Loaded>>; MAX_REFERENCES],
    seen: [u64; MAX_REFERENCES],
    /// References replaced while the return ring was full (sent back later, never dropped).
    pending: Vec<Arc<Loaded>>,
    return_to: Producer<Arc<Loaded>>,
    /// The free-running playhead (frames).
    free_pos: u64,
    /// The linear gain applied at the end of the last block (NaN: none yet).
    gain: f32,
    /// How much of the output is the reference: 0 (the mix) to 1, moving over [`FADE_SECONDS`]
    /// when the switch changes.
    fade: f32,
}

/// How the reference plays in one block.
#[derive(Debug, Clone, Copy)]
pub struct AbControl {
    /// Ref on (and not bypassed).
    pub listen: bool,
    /// 0-based slot.
    pub slot: usize,
    pub sync: bool,
    /// The mix's integrated loudness (NaN before it has one) and the target's.
    pub mix_lufs: f32,
    pub target_lufs: f32,
    /// The host's transport: playing, and the position of the block's first frame.
    pub playing: bool,
    pub position: Option<i64>,
}

impl AbPlayer {
    /// Picks up new references (without waiting) and, while `c.listen`, writes the chosen one
    /// over `out` (the block's channels, already metered). Never allocates or frees.
    pub fn process(&mut self, out: &mut [&mut [f32]], c: AbControl) {
        for i in 0..MAX_REFERENCES {
            let s = &self.refs.slots[i];
            let g = s.generation.load(Ordering::Acquire);
            if g == self.seen[i] {
                continue;
            }
            let new = match s.audio.try_lock() {
                Ok(a) => a.clone(),
                Err(_) => continue,
            };
            self.seen[i] = g;
            if let Some(old) = std::mem::replace(&mut self.cached[i], new) {
                self.retire(old);
            }
        }
        self.send_back_pending();
        let frames = out.first().map_or(0, |o| o.len());
        if frames == 0 {
            return;
        }
        let chosen = self.cached.get(c.slot).and_then(Option::as_ref);
        let want: f32 = if c.listen && chosen.is_some() {
            1.0
        } else {
            0.0
        };
        if self.fade == 0.0 && want == 0.0 {
            // The mix, untouched (bit for bit).
            self.gain = f32::NAN;
            self.refs
                .gain_db_bits
                .store(f32::NAN.to_bits(), Ordering::Relaxed);
            return;
        }
        let rate = self.refs.rate.load(Ordering::Relaxed).max(1) as f32;
        let fade_step = (want - self.fade).signum() / (FADE_SECONDS * rate);
        let fade0 = self.fade;
        let fade_at = |n: usize| (fade0 + fade_step * (n + 1) as f32).clamp(0.0, 1.0);
        // The reference's gain and where it plays (none while the slot is being emptied: the
        // fade then goes to the mix over silence).
        let (plan, from_gain, step) = match chosen {
            Some(r) => {
                let to = if c.mix_lufs.is_finite() {
                    c.mix_lufs
                } else {
                    c.target_lufs
                };
                let gain_db = (to as f64 - r.figures.integrated_lufs) as f32;
                let target_gain = 10f32.powf(gain_db / 20.0);
                let from_gain = if self.gain.is_finite() {
                    self.gain
                } else {
                    target_gain
                };
                self.refs
                    .gain_db_bits
                    .store(gain_db.to_bits(), Ordering::Relaxed);
                let len = r.frames as u64;
                let (start, silent) = match (c.sync, c.position) {
                    (true, Some(p)) => (p.rem_euclid(len as i64) as u64, !c.playing),
                    _ => (self.free_pos % len, false),
                };
                if !c.sync || c.position.is_none() {
                    self.free_pos = (self.free_pos + frames as u64) % len;
                }
                self.gain = target_gain;
                let step = if frames > 0 {
                    (target_gain - from_gain) / frames as f32
                } else {
                    0.0
                };
                ((!silent).then_some((r, start as usize)), from_gain, step)
            }
            None => (None, 0.0, 0.0),
        };
        for (ch, o) in out.iter_mut().enumerate() {
            let plane = plan.and_then(|(r, start)| r.planes.get(ch).map(|p| (r, p, start)));
            let mut pos = plan.map_or(0, |(_, start)| start);
            for (n, v) in o.iter_mut().enumerate() {
                let reference = match plane {
                    Some((r, p, _)) => {
                        let x = p[pos] * (from_gain + step * (n + 1) as f32);
                        pos += 1;
                        if pos == r.frames {
                            pos = 0;
                        }
                        x
                    }
                    None => 0.0,
                };
                let a = fade_at(n);
                *v = if a >= 1.0 {
                    reference
                } else {
                    *v * (1.0 - a) + reference * a
                };
            }
        }
        self.fade = fade_at(frames.saturating_sub(1));
    }

    /// Whether the reference is heard (wholly or fading).
    pub fn playing(&self) -> bool {
        self.fade > 0.0
    }

    fn retire(&mut self, old: Arc<Loaded>) {
        if let Err(rtrb::PushError::Full(old)) = self.return_to.push(old) {
            // Within its capacity (reserved at creation): no allocation.
            if self.pending.len() < self.pending.capacity() {
                self.pending.push(old);
            } else {
                // More replacements than the editor can make between two drains: keep the
                // reference alive for good rather than free it here.
                std::mem::forget(old);
            }
        }
    }

    fn send_back_pending(&mut self) {
        while let Some(old) = self.pending.pop() {
            if let Err(rtrb::PushError::Full(old)) = self.return_to.push(old) {
                self.pending.push(old);
                break;
            }
        }
    }
}
