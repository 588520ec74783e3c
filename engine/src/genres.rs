//! The genre profiles Sluice ships: a fresh root compares tracks with these genres before its
//! own library holds any reference of them, and a genre the library has references for uses
//! those instead (the user's references always win).
//!
//! Each profile is measured on freely licensed recordings from Debian packages, the same way
//! `sluice ref import` measures references (`scripts/genre-profiles.sh` made them, and remakes
//! them); each names every recording it was measured on, with its package, version, author and
//! licence. No audio is kept in the repository: only the figures in `engine/profiles/`.

use serde::{Deserialize, Serialize};
use sluice_core::analysis::compare::Profile;

/// One recording a built-in profile was measured on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Source {
    /// The Debian package it comes from, and the package's version.
    pub package: String,
    pub version: String,
    /// Its path in the package (inside an archive of the package, after `!`).
    pub file: String,
    /// Its title (from its tags, else its file name).
    pub title: String,
    /// Who made it: its tags' artist, else the package's copyright file's author.
    pub author: String,
    /// Its licence, as the package's copyright file gives it.
    pub licence: String,
}

/// A genre profile Sluice ships.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BuiltIn {
    /// The genre, as a key (lower case).
    pub genre: String,
    /// What the recordings are, in a sentence.
    pub description: String,
    /// The script that made it.
    pub made_by: String,
    pub sources: Vec<Source>,
    pub profile: Profile,
}

/// The profiles' files, by genre.
const FILES: &[(&str, &str)] = &[
    ("ambient", include_str!("../profiles/ambient.json")),
    ("electronic", include_str!("../profiles/electronic.json")),
    ("orchestral", include_str!("../profiles/orchestral.json")),
];

/// The genres with a built-in profile.
pub fn names() -> Vec<&'static str> {
    FILES.iter().map(|(g, _)| *g).collect()
}

/// The built-in profile of `genre` (a key, as `store::genre_key` makes it), if there is one.
/// Its profile's name says it is built in and how many recordings it stands for. The files are
/// read once per process.
pub fn get(genre: &str) -> Option<BuiltIn> {
    static READ: std::sync::OnceLock<Vec<BuiltIn>> = std::sync::OnceLock::new();
    READ.get_or_init(|| FILES.iter().filter_map(|(g, text)| read(g, text)).collect())
        .iter()
        .find(|b| b.genre == genre)
        .cloned()
}

/// One profile's file, its profile named as built in; `None` (logged) when it does not read.
fn read(genre: &str, text: &str) -> Option<BuiltIn> {
    match serde_json::from_str::<BuiltIn>(text) {
        Ok(mut b) => {
            b.profile.name = format!(
                "built-in {} profile ({} freely licensed recordings)",
                b.genre,
                b.sources.len()
            );
            Some(b)
        }
        Err(e) => {
            // Checked by the tests: a file that does not read is a build's mistake.
            tracing::error!("the built-in {genre} profile does not read: {e}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_profile_reads_names_its_sources_and_holds_plausible_figures() {
        assert!(names().len() >= 3, "{:?}", names());
        for g in names() {
            let b = get(g).unwrap_or_else(|| panic!("{g} does not read"));
            assert_eq!(b.genre, g);
            assert_eq!(b.made_by, "scripts/genre-profiles.sh");
            let p = &b.profile;
            // Every recording named, with its package, author and licence; the profile made of
            // exactly those.
            assert!(b.sources.len() >= 10, "{g}: {} sources", b.sources.len());
            assert_eq!(p.references, b.sources.len(), "{g}");
            for s in &b.sources {
                for (what, v) in [
                    ("package", &s.package),
                    ("version", &s.version),
                    ("file", &s.file),
                    ("title", &s.title),
                    ("author", &s.author),
                    ("licence", &s.licence),
                ] {
                    assert!(!v.trim().is_empty(), "{g}: {} has no {what}", s.file);
                }
            }
            let mut files: Vec<&str> = b.sources.iter().map(|s| s.file.as_str()).collect();
            files.sort_unstable();
            files.dedup();
            assert_eq!(files.len(), b.sources.len(), "{g}: a recording twice");
            // Mastered music: loudness between -35 and -5 LUFS, bands and a tonal curve.
            let lufs = p.integrated_lufs.mean;
            assert!((-35.0..-5.0).contains(&lufs), "{g}: {lufs} LUFS");
            assert!(p.integrated_lufs.spread > 0.0, "{g}: no spread");
            assert_eq!(p.bands.len(), 5, "{g}");
            assert!(!p.tonal.is_empty() && !p.ltas.is_empty(), "{g}");
            for b in &p.bands {
                assert!(
                    b.level_db.mean.is_finite() && b.level_db.spread >= 0.0,
                    "{g}: {}",
                    b.name
                );
            }
        }
        assert!(get("no such genre").is_none());
    }

    #[test]
    fn the_genres_differ_where_their_music_does() {
        let [orch, elec, amb] = ["orchestral", "electronic", "ambient"].map(|g| get(g).unwrap());
        let band = |b: &BuiltIn, name: &str| {
            let level = |n: &str| {
                b.profile
                    .bands
                    .iter()
                    .find(|x| x.name == n)
                    .unwrap()
                    .level_db
                    .mean
            };
            level(name) - level("mid")
        };
        // Electronic music carries more bass and far more air over its mids than orchestral
        // music; orchestral music moves through a wider loudness range than either other.
        assert!(band(&elec, "low") > band(&orch, "low") + 3.0);
        assert!(band(&elec, "high") > band(&orch, "high") + 6.0);
        let lra = |b: &BuiltIn| b.profile.loudness_range_lu.mean;
        assert!(lra(&orch) > lra(&elec) + 2.0 && lra(&orch) > lra(&amb) + 2.0);
        // Ambient music is the most tonal (harmonic over noise).
        let hnr = |b: &BuiltIn| b.profile.hnr_db.mean;
        assert!(hnr(&amb) > hnr(&orch) && hnr(&amb) > hnr(&elec));
    }
}
