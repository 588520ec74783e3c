//! ReplayGain 2.0 tags on a whole library, in place (`sluice tag`).
//!
//! Files are found under the paths given (folders recursively, symbolic links to folders not
//! followed), measured in parallel (BS.1770-4 integrated loudness and the 4× oversampled true
//! peak, the same meters as `sluice analyze`), grouped into albums (by folder, by album tag, or
//! not at all), and tagged (see [`sluice_core::replaygain`] for the fields and where each
//! format keeps them).
//!
//! Only the tag changes, and atomically: a file is copied beside itself (a hidden
//! `.NAME.sluice-tag-tmp`), the copy tagged, flushed and renamed over the original, so a run
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

/// The suffix of the copy a file is tagged in before it replaces the original.
const TEMP_SUFFIX: &str = ".sluice-tag-tmp";

/// Extensions of the files a folder scan takes (a file named on the command line is tried
/// whatever its name).
const EXTENSIONS: &[&str] = &[
    "flac", "mp3", "ogg", "oga", "m4a", "mp4", "m4b", "wav", "wave", "bwf", "aiff", "aif", "aifc",
    "opus",
];

/// The files under `paths`: files as given, folders walked (sorted, hidden entries and links
/// to folders skipped); each path once. Copies a killed run left are removed on the way.
/// Paths that do not exist or cannot be read come back as failures.
pub fn collect(paths: &[PathBuf]) -> (Vec<PathBuf>, Vec<FileResult>, usize) {
    let mut files = Vec::new();
    let mut failures = Vec::new();
    let mut leftovers = 0;
    for p in paths {
        match std::fs::metadata(p) {
            Ok(m) if m.is_dir() => walk(p, &mut files, &mut failures, &mut leftovers),
            Ok(_) => files.push(p.clone()),
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
            if name.ends_with(TEMP_SUFFIX) && std::fs::remove_file(&path).is_ok() {
                tracing::info!(path = %path.display(), "removed the copy a killed run left");
                *left += 1;
            }
            continue;
        }
        let Ok(kind) = e.file_type() else { continue };
        if kind.is_dir() {
            walk(&path, files, failures, left);
        } else if (kind.is_file() || kind.is_symlink() && path.is_file())
            && path
                .extension()
                .and_then(|x| x.to_str())
                .is_some_and(|x| EXTENSIONS.contains(&x.to_ascii_lowercase().as_str()))
        {
            files.push(path);
        }
    }
}

fn failed(path: &Path, error: String) -> FileResult {
    FileResult {
        path: path.to_path_buf(),
        action: Action::Failed,
        integrated_lufs: None,
        true_peak_dbtp: None,
        album: None,
        gains: None,
        error: Some(error),
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
            Action::Failed => &mut summary.failed,
        } += 1;
    }
    Report { results, summary }
}

fn remove_one(path: &Path, dry_run: bool) -> FileResult {
    let mut r = failed(path, String::new());
    r.error = None;
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
    let mut want: Vec<(String, String)> = gains
        .fields()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    want.sort();
    fields == want.as_slice()
}

/// Whether a file with these fields counts as tagged for a run that wants album gain or not.
fn tagged(fields: &[(String, String)], album: bool) -> bool {
    let has = |k: &str| fields.iter().any(|(f, _)| f == k);
    has(replaygain::TRACK_GAIN) && (!album || has(replaygain::ALBUM_GAIN))
}

fn tag_all(files: &[PathBuf], opts: &Options, progress: &dyn Progress) -> Vec<FileResult> {
    let album_of = albums(files, opts.album);
    let existing: Vec<Result<Vec<(String, String)>, String>> =
        crate::parallel::map(files, threads(opts), |f| {
            replaygain::read(f).map_err(|e| e.to_string())
        });
    // With skip_existing, an album is skipped only when all its files are tagged.
    let mut untagged_albums = std::collections::HashSet::new();
    for (i, e) in existing.iter().enumerate() {
        let done = matches!(e, Ok(f) if tagged(f, album_of[i].is_some()));
        if !done && let Some(a) = &album_of[i] {
            untagged_albums.insert(a.clone());
        }
    }
    let skip = |i: usize| {
        opts.skip_existing
            && match (&existing[i], &album_of[i]) {
                (Ok(f), None) => tagged(f, false),
                (Ok(_), Some(a)) => !untagged_albums.contains(a),
                (Err(_), _) => false,
            }
    };
    let todo: Vec<usize> = (0..files.len())
        .filter(|&i| existing[i].is_ok() && !skip(i))
        .collect();
    let measured: Vec<Result<(Measured, Stamp), String>> =
        crate::parallel::map(&todo, threads(opts), |&i| {
            let r = Stamp::of(&files[i]).and_then(|s| Ok((measure(&files[i])?, s)));
            if r.is_err() {
                progress.done(&files[i]);
            }
            r
        });
    let mut by_index: BTreeMap<usize, Result<(Measured, Stamp), String>> =
        todo.iter().copied().zip(measured).collect();
    let album_gains = album_gains(&by_index, &album_of);

    let mut jobs = Vec::new();
    let mut results: Vec<Option<FileResult>> = vec![None; files.len()];
    for (i, f) in files.iter().enumerate() {
        let mut r = failed(f, String::new());
        r.error = None;
        r.album = album_of[i].clone();
        match (&existing[i], by_index.remove(&i)) {
            (Err(e), _) => {
                r.action = Action::Failed;
                r.error = Some(e.clone());
                progress.done(f);
            }
            (Ok(_), None) => {
                r.action = Action::Skipped;
                progress.done(f);
            }
            (Ok(_), Some(Err(e))) => {
                r.action = Action::Failed;
                r.error = Some(e);
            }
            (Ok(fields), Some(Ok((m, stamp)))) => {
                r.integrated_lufs = m.integrated_lufs;
                r.true_peak_dbtp = (m.true_peak > 0.0).then(|| 20.0 * m.true_peak.log10());
                let Some(lufs) = m.integrated_lufs else {
                    r.action = Action::Failed;
                    r.error = Some(format!(
                        "{}: silent (below the −70 LUFS gate): no gain to write",
                        f.display()
                    ));
                    progress.done(f);
                    results[i] = Some(r);
                    continue;
                };
                let gains = Gains {
                    track_gain_db: REFERENCE_LUFS - lufs,
                    track_peak: m.true_peak,
                    album: album_of[i]
                        .as_ref()
                        .and_then(|a| album_gains.get(a).copied().flatten()),
                };
                r.gains = Some(gains);
                if same_fields(fields, &gains) {
                    r.action = Action::Unchanged;
                    progress.done(f);
                } else if opts.dry_run {
                    r.action = Action::WouldWrite;
                    progress.done(f);
                } else {
                    jobs.push((i, stamp, gains));
                }
            }
        }
        results[i] = Some(r);
    }
    let written = crate::parallel::map(&jobs, threads(opts), |(i, stamp, gains)| {
        let f = &files[*i];
        let r = stamp.check(f).and_then(|()| replace(f, Some(gains)));
        progress.done(f);
        r
    });
    for ((i, _, _), w) in jobs.iter().zip(written) {
        if let Some(r) = results[*i].as_mut() {
            match w {
                Ok(()) => r.action = Action::Written,
                Err(e) => {
                    r.action = Action::Failed;
                    r.error = Some(e);
                }
            }
        }
    }
    results.into_iter().flatten().collect()
}

/// Each album's gain and peak from the measured files in it (`None` when the album is silent
/// or one of its files could not be measured: the album's figure would be wrong).
fn album_gains(
    measured: &BTreeMap<usize, Result<(Measured, Stamp), String>>,
    album_of: &[Option<String>],
) -> BTreeMap<String, Option<AlbumGain>> {
    let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (&i, _) in measured.iter() {
        if let Some(a) = &album_of[i] {
            groups.entry(a.clone()).or_default().push(i);
        }
    }
    groups
        .into_iter()
        .map(|(album, members)| {
            let mut blocks = Vec::new();
            let mut peak = 0f64;
            for i in &members {
                match &measured[i] {
                    Ok((m, _)) => {
                        blocks.extend_from_slice(&m.blocks);
                        peak = peak.max(m.true_peak);
                    }
                    Err(_) => return (album, None),
                }
            }
            let gain = gated_loudness(&blocks).map(|l| AlbumGain {
                gain_db: REFERENCE_LUFS - l,
                peak,
            });
            (album, gain)
        })
        .collect()
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

/// The copy `path` is tagged in, beside it.
fn temp_of(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    path.with_file_name(format!(".{name}{TEMP_SUFFIX}"))
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
