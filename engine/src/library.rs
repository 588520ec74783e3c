//! The reference library: tracks measured once (their [`Signature`] and feature vector, kept
//! in the root's state database), genre profiles built from them, "which references is this
//! closest to", and a track compared with a genre or a reference (docs/MASTERING.md).
//!
//! Every function here returns data; `sluice ref ...` and `sluice compare` print it, and the
//! HTTP API will serve the same.

use crate::config::Config;
use crate::store::{self, NewReference, ReferenceRecord, Store};
use serde::Serialize;
use sluice_core::InputError;
use sluice_core::analysis::compare::{self, Comparison, Level, Profile};
use sluice_core::analysis::signature::{
    self, DIMENSIONS, FEATURE_VERSION, Signature, SignatureError,
};
use sluice_core::analysis::{AnalysisOptions, AnalysisReport};
use sluice_core::render::matching::MatchTarget;
use sluice_core::render::steps::MatchSource;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum LibraryError {
    #[error(transparent)]
    Input(#[from] InputError),
    #[error("{path}: not usable as a reference: {reason}")]
    Refused {
        path: PathBuf,
        reason: SignatureError,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error("{0}")]
    Usage(String),
    #[error("{}", no_references(.genre, .genres))]
    NoReferences {
        genre: Option<String>,
        genres: Vec<(String, usize)>,
    },
    #[error("no reference {0:?} in the library (`sluice ref list` shows them)")]
    UnknownReference(String),
    #[error("{name:?} names {} references ({}): give the id", ids.len(), ids.iter().map(|i| format!("#{i}")).collect::<Vec<_>>().join(", "))]
    Ambiguous { name: String, ids: Vec<u64> },
}

fn no_references(genre: &Option<String>, genres: &[(String, usize)]) -> String {
    let held = if genres.is_empty() {
        "the library is empty: add references with `sluice ref add FILE... --genre G` or \
         `sluice ref import DIR --genre G`"
            .to_string()
    } else {
        format!(
            "the library holds {}",
            genres
                .iter()
                .map(|(g, n)| format!("{g} ({n})"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let built_in = format!(
        "built-in profiles (for comparing, without references): {}",
        crate::genres::names().join(", ")
    );
    match genre {
        Some(g) => format!("genre {g:?} has no references; {held}; {built_in}"),
        None => format!("no references; {held}"),
    }
}

/// What the user says of the references being added (anything left out comes from the tags,
/// else the file name).
#[derive(Debug, Clone, Default)]
pub struct Meta {
    pub genre: String,
    pub name: Option<String>,
    pub artist: Option<String>,
    pub year: Option<i32>,
}

/// A reference as listed: its facts without the figures.
#[derive(Debug, Clone, Serialize)]
pub struct ReferenceSummary {
    pub id: u64,
    pub name: String,
    pub artist: Option<String>,
    pub genre: String,
    pub year: Option<i32>,
    pub source: PathBuf,
    pub sample_rate: u32,
    pub duration_seconds: f64,
    pub integrated_lufs: f64,
    pub added_ms: i64,
}

impl From<&ReferenceRecord> for ReferenceSummary {
    fn from(r: &ReferenceRecord) -> Self {
        ReferenceSummary {
            id: r.id,
            name: r.name.clone(),
            artist: r.artist.clone(),
            genre: r.genre.clone(),
            year: r.year,
            source: r.source.clone(),
            sample_rate: r.signature.sample_rate,
            duration_seconds: r.signature.duration_seconds,
            integrated_lufs: r.signature.integrated_lufs,
            added_ms: r.added_ms,
        }
    }
}

/// What became of one file given to [`add`].
#[derive(Debug, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Added {
    Added {
        #[serde(flatten)]
        reference: ReferenceSummary,
    },
    /// The same content is a reference already (nothing stored).
    AlreadyThere {
        path: PathBuf,
        id: u64,
        name: String,
    },
    Failed {
        path: PathBuf,
        error: String,
    },
}

/// The analysis a signature needs.
pub fn signature_options() -> AnalysisOptions {
    AnalysisOptions {
        sections: signature::SECTIONS.to_vec(),
        targets: Vec::new(),
        ..AnalysisOptions::default()
    }
}

/// The signature of an analysed file, or why it cannot be one.
pub fn signature_of(report: &AnalysisReport) -> Result<Signature, LibraryError> {
    Signature::from_report(report).map_err(|reason| LibraryError::Refused {
        path: report.path.clone(),
        reason,
    })
}

/// Measure `path` (its analyzers over up to `jobs` threads), stopped between two rounds when
/// `stop` gives a reason ([`InputError::Interrupted`]).
pub fn measure_until(
    path: &Path,
    jobs: usize,
    stop: &(dyn Fn() -> Option<String> + Sync),
) -> Result<Signature, LibraryError> {
    let report = crate::analyze::analyze_file_until(
        path,
        &signature_options(),
        jobs.max(1),
        &crate::analyze::Silent,
        stop,
    )?;
    signature_of(&report)
}

fn open(cfg: &Config) -> Result<Store, LibraryError> {
    Ok(Store::open(&cfg.db_path(), true)?)
}

/// Measure `files` (in parallel, up to `jobs` threads, their progress to `progress`) and
/// add each as a reference of `meta.genre`. A file that cannot be a reference (silent, under
/// 3 s, not decodable) is refused and nothing of it is stored; the others go on.
pub fn add(
    cfg: &Config,
    files: &[PathBuf],
    meta: &Meta,
    jobs: usize,
    progress: &dyn crate::analyze::Progress,
) -> Result<Vec<Added>, LibraryError> {
    let genre = store::genre_key(&meta.genre);
    if genre.is_empty() {
        return Err(LibraryError::Usage(
            "a reference needs a genre (--genre G)".into(),
        ));
    }
    if meta.name.is_some() && files.len() > 1 {
        return Err(LibraryError::Usage(
            "--name names one file; several were given (their titles or file names name them)"
                .into(),
        ));
    }
    let store = open(cfg)?;
    let reports = crate::analyze::run(files, &signature_options(), jobs, progress);
    // Every file's outcome in order; those to store are added in one transaction (one commit
    // for the folder, not one per file: a duplicate within the batch is still found).
    let mut out: Vec<Option<Added>> = Vec::with_capacity(files.len());
    let mut pending: Vec<(usize, NewReference)> = Vec::new();
    for (path, report) in files.iter().zip(reports) {
        let made = report
            .map_err(LibraryError::from)
            .and_then(|r| new_reference(path, &r, meta, &genre));
        match made {
            Ok(n) => {
                pending.push((out.len(), n));
                out.push(None);
            }
            Err(e) => out.push(Some(Added::Failed {
                path: path.clone(),
                error: e.to_string(),
            })),
        }
    }
    let (slots, news): (Vec<usize>, Vec<NewReference>) = pending.into_iter().unzip();
    for (slot, added) in slots.into_iter().zip(store.add_references(news)?) {
        out[slot] = Some(match added {
            Ok(rec) => {
                tracing::info!(id = rec.id, name = %rec.name, genre = %rec.genre, "reference added");
                Added::Added {
                    reference: (&rec).into(),
                }
            }
            Err(d) => Added::AlreadyThere {
                path: files[slot].clone(),
                id: d.id,
                name: d.name,
            },
        });
    }
    Ok(out.into_iter().flatten().collect())
}

fn new_reference(
    path: &Path,
    report: &AnalysisReport,
    meta: &Meta,
    genre: &str,
) -> Result<NewReference, LibraryError> {
    let signature = signature_of(report)?;
    let hash = crate::digest::hash_file(path).map_err(|source| LibraryError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let source = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let shown = path.file_name().map(Path::new).unwrap_or(path);
    Ok(describe(source, shown, meta, genre, hash, signature))
}

/// A reference to add, its name, artist and year from `meta`, else from the file's tags, and
/// its name else from the stem of `shown` (the name the user knows the file by).
pub fn describe(
    source: PathBuf,
    shown: &Path,
    meta: &Meta,
    genre: &str,
    hash: String,
    signature: Signature,
) -> NewReference {
    let tags = sluice_core::read_tags(&source).unwrap_or_default();
    let stem = shown
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| shown.display().to_string());
    let clean = |s: &Option<String>| {
        s.as_ref()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    };
    NewReference {
        name: clean(&meta.name).or(clean(&tags.title)).unwrap_or(stem),
        artist: clean(&meta.artist).or(clean(&tags.artist)),
        genre: genre.to_string(),
        year: meta.year.or(tags.year),
        source,
        hash,
        features: signature.features(),
        feature_version: FEATURE_VERSION,
        signature,
    }
}

/// The audio files under `dir` (any depth; hidden files and folders left out), by path.
pub fn audio_files(dir: &Path) -> Result<Vec<PathBuf>, LibraryError> {
    let exts = crate::pipeline::decodable_extensions();
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).map_err(|source| LibraryError::Io {
            path: d.clone(),
            source,
        })?;
        for e in entries.flatten() {
            let p = e.path();
            if e.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            // Links are not followed: a folder of references is what is in it.
            let Ok(t) = e.file_type() else { continue };
            if t.is_dir() {
                stack.push(p);
            } else if t.is_file()
                && p.extension()
                    .and_then(|x| x.to_str())
                    .is_some_and(|x| exts.contains(&x.to_ascii_lowercase().as_str()))
            {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The references of one genre or all.
pub fn list(cfg: &Config, genre: Option<&str>) -> Result<Vec<ReferenceSummary>, LibraryError> {
    let store = Store::open(&cfg.db_path(), true)?;
    Ok(store.references(genre)?.iter().map(Into::into).collect())
}

/// The genres and how many references each has.
pub fn genres(cfg: &Config) -> Result<Vec<(String, usize)>, LibraryError> {
    Ok(open(cfg)?.genres()?)
}

/// The reference an id (`3`, `#3`) or a name (exactly, ignoring case) names.
fn find(store: &Store, key: &str) -> Result<ReferenceRecord, LibraryError> {
    let id = key.trim_start_matches('#').parse::<u64>().ok();
    if let Some(id) = id
        && let Some(r) = store.reference(id)?
    {
        return Ok(r);
    }
    let named: Vec<ReferenceRecord> = store
        .references(None)?
        .into_iter()
        .filter(|r| r.name.eq_ignore_ascii_case(key.trim()))
        .collect();
    match named.len() {
        0 => Err(LibraryError::UnknownReference(key.to_string())),
        1 => Ok(named.into_iter().next().expect("one")),
        _ => Err(LibraryError::Ambiguous {
            name: key.to_string(),
            ids: named.iter().map(|r| r.id).collect(),
        }),
    }
}

/// Remove references by id or name; all or none (an unknown one removes nothing).
pub fn remove(cfg: &Config, keys: &[String]) -> Result<Vec<ReferenceSummary>, LibraryError> {
    let store = open(cfg)?;
    let found: Vec<ReferenceRecord> = keys
        .iter()
        .map(|k| find(&store, k))
        .collect::<Result<_, _>>()?;
    let mut out = Vec::new();
    for r in found {
        if let Some(r) = store.remove_reference(r.id)? {
            out.push((&r).into());
        }
    }
    Ok(out)
}

/// One reference found near a track.
#[derive(Debug, Serialize)]
pub struct Near {
    /// Centred cosine similarity, −1..1 (see docs/MASTERING.md).
    pub similarity: f64,
    #[serde(flatten)]
    pub reference: ReferenceSummary,
}

/// The answer of [`similar`].
#[derive(Debug, Serialize)]
pub struct Similar {
    pub path: PathBuf,
    pub genre: Option<String>,
    /// References compared.
    pub compared: usize,
    pub nearest: Vec<Near>,
    /// Time to read the library's vectors and rank them, ms (the measuring not included).
    pub search_ms: f64,
}

/// The `top` stored references nearest a feature vector: `(id, similarity)`, nearest first,
/// and how many were compared.
pub fn nearest_to(
    store: &Store,
    vector: &[f32],
    genre: Option<&str>,
    top: usize,
) -> Result<(Vec<(u64, f64)>, usize), LibraryError> {
    let (near, compared) = store.nearest_references(vector, genre, top)?;
    if compared == 0 {
        return Err(LibraryError::NoReferences {
            genre: genre.map(store::genre_key),
            genres: store.genres()?,
        });
    }
    Ok((near, compared as usize))
}

/// The references nearest the track at `path`.
pub fn similar(
    cfg: &Config,
    path: &Path,
    genre: Option<&str>,
    top: usize,
    jobs: usize,
) -> Result<Similar, LibraryError> {
    let store = open(cfg)?;
    // An empty library or genre says so before the track is measured.
    if store.reference_centre(genre, DIMENSIONS)?.1 == 0 {
        return Err(LibraryError::NoReferences {
            genre: genre.map(store::genre_key),
            genres: store.genres()?,
        });
    }
    let sig = measure_until(path, jobs, &|| None)?;
    let t = std::time::Instant::now();
    let (near, compared) = nearest_to(&store, &sig.features(), genre, top)?;
    let search_ms = t.elapsed().as_secs_f64() * 1000.0;
    let mut nearest = Vec::with_capacity(near.len());
    for (id, similarity) in near {
        if let Some(r) = store.reference(id)? {
            nearest.push(Near {
                similarity,
                reference: (&r).into(),
            });
        }
    }
    Ok(Similar {
        path: path.to_path_buf(),
        genre: genre.map(store::genre_key),
        compared,
        nearest,
        search_ms,
    })
}

/// What a track is compared with.
#[derive(Debug, Clone)]
pub enum Target {
    /// The profile of a genre's references.
    Genre(String),
    /// One reference, by id or name.
    Reference(String),
}

/// The profile a target stands for, from the library as it is now.
pub fn profile(store: &Store, target: &Target) -> Result<Profile, LibraryError> {
    match target {
        Target::Genre(g) => {
            let refs = store.references(Some(g))?;
            let key = store::genre_key(g);
            // The library's references of the genre; without any, the genre's built-in
            // profile where Sluice ships one.
            Profile::from_signatures(
                format!("genre {key} profile"),
                refs.iter().map(|r| &r.signature),
            )
            .or_else(|| crate::genres::get(&key).map(|b| b.profile))
            .ok_or_else(|| LibraryError::NoReferences {
                genre: Some(key),
                genres: store.genres().unwrap_or_default(),
            })
        }
        Target::Reference(key) => {
            let r = find(store, key)?;
            Ok(
                Profile::from_signatures(format!("reference '{}'", r.name), [&r.signature])
                    .expect("one signature"),
            )
        }
    }
}

/// The profile of a target, as data (`sluice ref profile`).
pub fn target_profile(cfg: &Config, target: &Target) -> Result<Profile, LibraryError> {
    profile(&open(cfg)?, target)
}

/// The track at `path` against `target` at `level`.
pub fn compare(
    cfg: &Config,
    path: &Path,
    target: &Target,
    level: Level,
    jobs: usize,
) -> Result<Comparison, LibraryError> {
    let store = open(cfg)?;
    let profile = profile(&store, target)?;
    let sig = measure_until(path, jobs, &|| None)?;
    Ok(compare::compare(&sig, &profile, level))
}

/// What a pipeline's `match` step aims at: a reference's or a genre profile's spectrum,
/// loudness and width, from the library as it is when the job runs.
pub fn match_target(store: &Store, source: &MatchSource) -> Result<MatchTarget, LibraryError> {
    let target = match source {
        MatchSource::Given(t) => return Ok(t.clone()),
        MatchSource::Reference(r) => Target::Reference(r.clone()),
        MatchSource::Genre(g) => Target::Genre(g.clone()),
    };
    Ok(match_target_of(&profile(store, &target)?))
}

/// What a match step moves toward, from a profile.
pub fn match_target_of(p: &Profile) -> MatchTarget {
    MatchTarget {
        ltas: p.ltas.clone(),
        loudness_lufs: Some(p.integrated_lufs.mean),
        width: Some(p.width.mean),
    }
}
