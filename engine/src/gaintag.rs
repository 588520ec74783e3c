//! ReplayGain 2.0 tags on a whole library, in place (`sluice tag`).
//!
//! Files are found under the paths given (folders recursively; symbolic links inside them are
//! not followed, so nothing outside the folders given is changed), measured in parallel (BS.1770-4 integrated loudness and the 4× oversampled true
//! peak, the same meters as `sluice analyze`), grouped into albums (by folder, by album tag, or
//! not at all), and tagged (see [`sluice_core::replaygain`] for the fields and where each
//! format keeps them).
//!
//! Only the tag changes, and atomically: a file is copied beside itself (a hidden
//! `.NAME.sluice-tag-tmp.EXT`), the copy tagged, checked to read as the original does, flushed and renamed over the original, so a run
//! killed at any moment leaves every file either untouched or fully tagged; the next run
//! removes the copy a killed run left and, with `skip_existing`, measures only what is not
//! tagged yet (a whole album when one of its files is not). A file that would get the fields
//! it already has is not rewritten. The album gain comes from the loudness of all the album's
//! 400 ms blocks together (gated as one programme, as BS.1770 and ReplayGain 2.0 define it,
//! not an average of the tracks' loudness); the album peak is the album's largest true peak.

use sluice_core::analysis::loudness::{LoudnessMeter, gated_loudness};
use sluice_core::analysis::truepeak::TruePeakMeter;
use sluice_core::decode::Decoder;
use sluice_core::replaygain::{self, AlbumGain, Gains, REFERENCE_LUFS};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// How files are grouped into albums.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlbumBy {
    /// The files of one folder are one album.
    #[default]
    Folder,
    /// Files with the same album artist (or artist) and album tag are one album, wherever
    /// they are; files without an album tag get track gain only.
    Tag,
    /// No album gain: track gain only (album fields a file had are removed as stale).
    Off,
}

#[derive(Debug, Clone, Default)]
pub struct Options {
    pub album: AlbumBy,
    /// Leave files that already have the fields alone (an album is measured again when any
    /// of its files lacks them).
    pub skip_existing: bool,
    /// Measure and report, write nothing.
    pub dry_run: bool,
    /// Remove the loudness fields instead of writing them (nothing is measured).
    pub remove: bool,
    /// Files measured at once (0: one per core).
    pub threads: usize,
}

/// What happened to one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Tagged (or, when removing, its fields removed).
    Written,
    /// It already had exactly these fields (or, when removing, none): not rewritten.
    Unchanged,
    /// Already tagged, left alone (`skip_existing`).
    Skipped,
    /// A dry run: these fields would be written (or removed).
    WouldWrite,
    /// Silent (below the −70 LUFS gate): no loudness, no gain; left as it is.
    Silent,
    Failed,
}

/// One file's result.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FileResult {
    pub path: PathBuf,
    pub action: Action,
    /// The file's integrated loudness, LUFS (`None`: not measured, or silent).
    pub integrated_lufs: Option<f64>,
    /// The file's true peak, dBTP.
    pub true_peak_dbtp: Option<f64>,
    /// The album it was measured with (the folder, or "ARTIST — ALBUM").
    pub album: Option<String>,
    /// The fields written (or that would be).
    pub gains: Option<Gains>,
    /// Why it failed.
    pub error: Option<String>,
}

/// Counts of a run.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Summary {
    pub files: usize,
    pub written: usize,
    pub unchanged: usize,
    pub skipped: usize,
    pub would_write: usize,
    pub silent: usize,
    pub failed: usize,
    /// Copies left by a killed run, removed.
    pub leftovers_removed: usize,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    pub results: Vec<FileResult>,
    pub summary: Summary,
}

/// Progress of a run, for a face to draw: `total` files to go through, then each as it ends.
pub trait Progress: Sync {
    fn total(&self, files: usize);
    fn done(&self, path: &Path);
}

/// No progress shown.
pub struct Quiet;

impl Progress for Quiet {
    fn total(&self, _: usize) {}
    fn done(&self, _: &Path) {}
}

/// What marks the copy a file is tagged in before it replaces the original
/// (`.NAME.sluice-tag-tmp.EXT`).
const TEMP_MARK: &str = ".sluice-tag-tmp";

/// Extensions of the files a folder scan takes (a file named on the command line is tried
/// whatever its name).
const EXTENSIONS: &[&str] = &[
    "flac", "mp3", "ogg", "oga", "m4a", "mp4", "m4b", "wav", "wave", "bwf", "aiff", "aif", "aifc",
    "opus",
];

/// The files under `paths`: files as given (a link named is followed), folders walked (sorted;
/// hidden entries and symbolic links skipped, so a walk never leaves the folders given); each
/// file once. Copies a killed run left are removed on the way.
/// Paths that do not exist or cannot be read come back as failures.
pub fn collect(paths: &[PathBuf]) -> (Vec<PathBuf>, Vec<FileResult>, usize) {
    let mut files = Vec::new();
    let mut failures = Vec::new();
    let mut leftovers = 0;
    for p in paths {
        match std::fs::metadata(p) {
            Ok(m) if m.is_dir() => walk(p, &mut files, &mut failures, &mut leftovers),
            Ok(m) if m.is_file() => files.push(p.clone()),
            // A FIFO or a device would block the reader or is no file to tag.
            Ok(_) => failures.push(failed(p, format!("{}: not a regular file", p.display()))),
            Err(e) => failures.push(failed(p, format!("{}: {e}", p.display()))),
        }
    }
    let mut seen = std::collections::HashSet::new();
    files.retain(|f| seen.insert(std::fs::canonicalize(f).unwrap_or_else(|_| f.clone())));
    (files, failures, leftovers)
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>, failures: &mut Vec<FileResult>, left: &mut usize) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            failures.push(failed(dir, format!("{}: {e}", dir.display())));
            return;
        }
    };
    let mut entries: Vec<_> = entries.filter_map(Result::ok).collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name();
        let name = name.to_string_lossy();
        let path = e.path();
        if name.starts_with('.') {
            if name.contains(TEMP_MARK) && std::fs::remove_file(&path).is_ok() {
                tracing::info!(path = %path.display(), "removed the copy a killed run left");
                *left += 1;
            }
            continue;
        }
        let Ok(kind) = e.file_type() else { continue };
        if kind.is_dir() {
            walk(&path, files, failures, left);
        } else if kind.is_file()
            && path
                .extension()
                .and_then(|x| x.to_str())
                .is_some_and(|x| EXTENSIONS.contains(&x.to_ascii_lowercase().as_str()))
        {
            files.push(path);
        }
    }
}

impl FileResult {
    /// `path`'s result with `action` and nothing measured yet.
    fn new(path: &Path, action: Action) -> FileResult {
        FileResult {
            path: path.to_path_buf(),
            action,
            integrated_lufs: None,
            true_peak_dbtp: None,
            album: None,
            gains: None,
            error: None,
        }
    }
}

fn failed(path: &Path, error: String) -> FileResult {
    FileResult {
        error: Some(error),
        ..FileResult::new(path, Action::Failed)
    }
}

/// A file's loudness: its 400 ms block energies (for an album's loudness), its integrated
/// loudness and linear true peak.
#[derive(Debug, Clone)]
pub struct Measured {
    blocks: Vec<f64>,
    pub integrated_lufs: Option<f64>,
    pub true_peak: f64,
}

/// Measure one file: decode it whole through the loudness and true-peak meters.
pub fn measure(path: &Path) -> Result<Measured, String> {
    let mut dec = Decoder::open(path).map_err(|e| e.to_string())?;
    let info = dec.info().clone();
    let mut loud = LoudnessMeter::for_layout(info.sample_rate, &info.channel_layout);
    let mut peaks: Vec<TruePeakMeter> = (0..info.channels)
        .map(|_| TruePeakMeter::new(info.sample_rate))
        .collect();
    while let Some(block) = dec.next_block().map_err(|e| e.to_string())? {
        let planes: Vec<&[f32]> = block.planes().collect();
        loud.feed(&planes);
        for (m, p) in peaks.iter_mut().zip(&planes) {
            m.feed(p);
        }
    }
    let blocks: Vec<f64> = loud
        .steps()
        .windows(4)
        .map(|w| w.iter().sum::<f64>() / 4.0)
        .collect();
    Ok(Measured {
        integrated_lufs: gated_loudness(&blocks),
        true_peak: peaks.into_iter().map(|m| m.finish()).fold(0.0, f64::max),
        blocks,
    })
}

/// The loudness of several measured files as one programme (all their 400 ms blocks gated
/// together), LUFS; `None` when silent.
pub fn together(files: &[&Measured]) -> Option<f64> {
    let blocks: Vec<f64> = files
        .iter()
        .flat_map(|m| m.blocks.iter().copied())
        .collect();
    gated_loudness(&blocks)
}

/// The album each file belongs to (`None`: none).
fn albums(files: &[PathBuf], by: AlbumBy) -> Vec<Option<String>> {
    files
        .iter()
        .map(|f| match by {
            AlbumBy::Off => None,
            AlbumBy::Folder => Some(
                f.parent()
                    .map_or_else(|| ".".to_string(), |d| d.display().to_string()),
            ),
            AlbumBy::Tag => {
                let t = sluice_core::tags::read_tags(f).ok()?;
                let album = t.album.filter(|a| !a.trim().is_empty())?;
                let artist = t.album_artist.or(t.artist).unwrap_or_default();
                Some(format!("{artist} — {album}"))
            }
        })
        .collect()
}

fn threads(opts: &Options) -> usize {
    if opts.threads > 0 {
        opts.threads
    } else {
        std::thread::available_parallelism().map_or(2, |n| n.get())
    }
}

/// Tag (or with [`Options::remove`], untag) every file under `paths`.
pub fn run(paths: &[PathBuf], opts: &Options, progress: &dyn Progress) -> Report {
    let (files, mut results, leftovers) = collect(paths);
    progress.total(files.len());
    if opts.remove {
        results.extend(crate::parallel::map(&files, threads(opts), |f| {
            let r = remove_one(f, opts.dry_run);
            progress.done(f);
            r
        }));
    } else {
        results.extend(tag_all(&files, opts, progress));
    }
    let mut summary = Summary {
        files: results.len(),
        leftovers_removed: leftovers,
        ..Summary::default()
    };
    for r in &results {
        *match r.action {
            Action::Written => &mut summary.written,
            Action::Unchanged => &mut summary.unchanged,
            Action::Skipped => &mut summary.skipped,
            Action::WouldWrite => &mut summary.would_write,
            Action::Silent => &mut summary.silent,
            Action::Failed => &mut summary.failed,
        } += 1;
    }
    Report { results, summary }
}

fn remove_one(path: &Path, dry_run: bool) -> FileResult {
    let mut r = FileResult::new(path, Action::Failed);
    r.action = match replaygain::read(path) {
        Err(e) => {
            r.error = Some(e.to_string());
            Action::Failed
        }
        Ok(fields) if fields.is_empty() => Action::Unchanged,
        Ok(_) if dry_run => Action::WouldWrite,
        Ok(_) => match replace(path, None) {
            Ok(()) => Action::Written,
            Err(e) => {
                r.error = Some(e);
                Action::Failed
            }
        },
    };
    r
}

/// Whether `fields` (a file's gain fields now) already say what `gains` would write.
fn same_fields(fields: &[(String, String)], gains: &Gains) -> bool {
    // ReplayGain's fields, or an Opus file's R128 gains.
    [gains.fields(), gains.r128_fields()].into_iter().any(|f| {
        let mut want: Vec<(String, String)> =
            f.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        want.sort();
        fields == want.as_slice()
    })
}

/// Whether a file with these fields counts as tagged for a run that wants album gain or not.
fn tagged(fields: &[(String, String)], album: bool) -> bool {
    let has = |k: &str| fields.iter().any(|(f, _)| f == k);
    (has(replaygain::TRACK_GAIN) && (!album || has(replaygain::ALBUM_GAIN)))
        || (has(replaygain::R128_TRACK_GAIN) && (!album || has(replaygain::R128_ALBUM_GAIN)))
}

/// A file to tag, as measured.
type Measurement = Result<(Measured, Stamp), String>;

/// The files measured together: an album, or one file.
struct Unit {
    album: Option<String>,
    members: Vec<usize>,
    remaining: usize,
    measured: Vec<(usize, Measurement)>,
}

fn tag_all(files: &[PathBuf], opts: &Options, progress: &dyn Progress) -> Vec<FileResult> {
    let album_of = albums(files, opts.album);
    let existing: Vec<Result<Vec<(String, String)>, String>> =
        crate::parallel::map(files, threads(opts), |f| {
            replaygain::read(f).map_err(|e| e.to_string())
        });
    let mut results: Vec<Option<FileResult>> = vec![None; files.len()];
    let mut units: Vec<Unit> = Vec::new();
    let mut unit_of_album: BTreeMap<String, usize> = BTreeMap::new();
    for (i, f) in files.iter().enumerate() {
        match &existing[i] {
            Err(e) => {
                let mut r = failed(f, e.clone());
                r.album = album_of[i].clone();
                results[i] = Some(r);
                progress.done(f);
            }
            Ok(_) => {
                let u = match &album_of[i] {
                    Some(a) => *unit_of_album.entry(a.clone()).or_insert_with(|| {
                        units.push(Unit::new(Some(a.clone())));
                        units.len() - 1
                    }),
                    None => {
                        units.push(Unit::new(None));
                        units.len() - 1
                    }
                };
                units[u].members.push(i);
                units[u].remaining += 1;
            }
        }
    }
    // With skip_existing, a unit is left alone only when all its files are tagged.
    units.retain(|u| {
        let done = opts.skip_existing
            && u.members
                .iter()
                .all(|&i| matches!(&existing[i], Ok(f) if tagged(f, u.album.is_some())));
        if done {
            for &i in &u.members {
                let mut r = FileResult::new(&files[i], Action::Skipped);
                r.album = u.album.clone();
                results[i] = Some(r);
                progress.done(&files[i]);
            }
        }
        !done
    });
    // Measured in parallel, album after album; the file that completes its unit writes it,
    // so a long run tags as it goes.
    let order: Vec<(usize, usize)> = units
        .iter()
        .enumerate()
        .flat_map(|(u, unit)| unit.members.iter().map(move |&i| (u, i)))
        .collect();
    let units = std::sync::Mutex::new(units);
    let results = std::sync::Mutex::new(results);
    crate::parallel::map(&order, threads(opts), |&(u, i)| {
        let m = Stamp::of(&files[i]).and_then(|s| Ok((measure(&files[i])?, s)));
        let complete = {
            let mut units = lock(&units);
            let unit = &mut units[u];
            unit.measured.push((i, m));
            unit.remaining -= 1;
            (unit.remaining == 0).then(|| (unit.album.clone(), std::mem::take(&mut unit.measured)))
        };
        if let Some((album, measured)) = complete {
            for (i, r) in finish_unit(files, &existing, album, measured, opts, progress) {
                lock(&results)[i] = Some(r);
            }
        }
    });
    results
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .into_iter()
        .flatten()
        .collect()
}

impl Unit {
    fn new(album: Option<String>) -> Unit {
        Unit {
            album,
            members: Vec::new(),
            remaining: 0,
            measured: Vec::new(),
        }
    }
}

/// Tag the files of one measured unit (an album's gain from all of them).
fn finish_unit(
    files: &[PathBuf],
    existing: &[Result<Vec<(String, String)>, String>],
    album: Option<String>,
    mut measured: Vec<(usize, Measurement)>,
    opts: &Options,
    progress: &dyn Progress,
) -> Vec<(usize, FileResult)> {
    measured.sort_by_key(|(i, _)| *i);
    let album_gain = album.as_ref().and_then(|_| album_gain(&measured));
    measured
        .into_iter()
        .map(|(i, m)| {
            let f = &files[i];
            let mut r = FileResult::new(f, Action::Failed);
            r.album = album.clone();
            r.action = match (m.as_ref(), &existing[i]) {
                (Err(e), _) | (_, Err(e)) => {
                    r.error = Some(e.clone());
                    Action::Failed
                }
                (Ok((m, stamp)), Ok(fields)) => {
                    r.integrated_lufs = m.integrated_lufs;
                    r.true_peak_dbtp = (m.true_peak > 0.0).then(|| 20.0 * m.true_peak.log10());
                    match m.integrated_lufs {
                        // Silence has no loudness and so no gain: left as it is, said,
                        // not an error (an album's silent interlude is no fault).
                        None => Action::Silent,
                        Some(lufs) => {
                            let gains = Gains {
                                track_gain_db: REFERENCE_LUFS - lufs,
                                track_peak: m.true_peak,
                                album: album_gain,
                            };
                            r.gains = Some(gains);
                            if same_fields(fields, &gains) {
                                Action::Unchanged
                            } else if opts.dry_run {
                                Action::WouldWrite
                            } else {
                                match stamp.check(f).and_then(|()| replace(f, Some(&gains))) {
                                    Ok(()) => Action::Written,
                                    Err(e) => {
                                        r.error = Some(e);
                                        Action::Failed
                                    }
                                }
                            }
                        }
                    }
                }
            };
            progress.done(f);
            (i, r)
        })
        .collect()
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// An album's gain and peak from its measured files (`None` when the album is silent or one
/// of its files could not be measured: the figure would be wrong).
fn album_gain(measured: &[(usize, Measurement)]) -> Option<AlbumGain> {
    let mut blocks = Vec::new();
    let mut peak = 0f64;
    for (_, m) in measured {
        let (m, _) = m.as_ref().ok()?;
        blocks.extend_from_slice(&m.blocks);
        peak = peak.max(m.true_peak);
    }
    gated_loudness(&blocks).map(|l| AlbumGain {
        gain_db: REFERENCE_LUFS - l,
        peak,
    })
}

/// A file's size and modification time when it was measured: it is not tagged if either
/// changed since (the gains would describe other audio).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Stamp {
    len: u64,
    modified: Option<std::time::SystemTime>,
}

impl Stamp {
    fn of(path: &Path) -> Result<Stamp, String> {
        let m = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Stamp {
            len: m.len(),
            modified: m.modified().ok(),
        })
    }

    fn check(&self, path: &Path) -> Result<(), String> {
        if Stamp::of(path)? == *self {
            Ok(())
        } else {
            Err(format!(
                "{}: changed while it was measured: not tagged (run again)",
                path.display()
            ))
        }
    }
}

/// Whether the tagged copy reads as the original does (format, rate, channels, length, by
/// Sluice's header probe): a last check that only the tag changed, before the copy replaces
/// the original. `Err` says what differs.
fn same_audio(original: &Path, copy: &Path) -> Result<(), String> {
    let a = sluice_core::probe(original).map_err(|e| format!("how it reads ({e})"))?;
    let b = sluice_core::probe(copy).map_err(|e| format!("how it reads ({e})"))?;
    let facts = |i: &sluice_core::StreamInfo| {
        (
            i.format,
            i.sample_rate,
            i.channels,
            i.frames,
            i.codec.clone(),
        )
    };
    if facts(&a) == facts(&b) {
        Ok(())
    } else {
        Err(format!(
            "how it reads ({} {} Hz {} ch {:?} frames, after: {} {} Hz {} ch {:?} frames)",
            a.format,
            a.sample_rate,
            a.channels,
            a.frames,
            b.format,
            b.sample_rate,
            b.channels,
            b.frames
        ))
    }
}

/// The copy `path` is tagged in, beside it: hidden, marked, and with the file's own extension
/// last (the probe that checks it reads the extension as a hint).
fn temp_of(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let ext = path
        .extension()
        .map_or_else(String::new, |x| format!(".{}", x.to_string_lossy()));
    path.with_file_name(format!(".{name}{TEMP_MARK}{ext}"))
}

/// Replace `path` by a copy with `gains` written (or the fields removed): the copy is made
/// beside the file, tagged, flushed and renamed over it, keeping its permissions and owner.
fn replace(path: &Path, gains: Option<&Gains>) -> Result<(), String> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let shown = path.display();
    // A link is followed: its target is the file that changes.
    let real = std::fs::canonicalize(path).map_err(|e| format!("{shown}: {e}"))?;
    let meta = std::fs::metadata(&real).map_err(|e| format!("{shown}: {e}"))?;
    if meta.nlink() > 1 {
        return Err(format!(
            "{shown}: has {} hard links: replacing it would part them, so it is not tagged",
            meta.nlink()
        ));
    }
    let temp = temp_of(&real);
    let result = (|| {
        std::fs::copy(&real, &temp)
            .map_err(|e| format!("{shown}: cannot copy it beside itself to tag it: {e}"))?;
        let mode = meta.permissions().mode();
        // Writable while tagged (a read-only file is tagged too), its own mode after.
        std::fs::set_permissions(&temp, std::fs::Permissions::from_mode(mode | 0o600))
            .map_err(|e| format!("{shown}: {e}"))?;
        replaygain::write(&temp, path, gains).map_err(|e| e.to_string())?;
        same_audio(&real, &temp)
            .map_err(|what| format!("{shown}: tagging it would change {what}: not tagged"))?;
        std::fs::set_permissions(&temp, std::fs::Permissions::from_mode(mode))
            .map_err(|e| format!("{shown}: {e}"))?;
        // Best effort: only root may give a file to another owner.
        let _ = std::os::unix::fs::chown(&temp, Some(meta.uid()), Some(meta.gid()));
        std::fs::rename(&temp, &real).map_err(|e| format!("{shown}: {e}"))?;
        if let Some(dir) = real.parent()
            && let Ok(d) = std::fs::File::open(dir)
        {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}
