//! The reference library's tables (schema 3): references with their signatures, their feature
//! vectors by genre (read in one range scan by `sluice ref similar`), and their content hashes
//! (the same audio is one reference).

use super::{META, Result, Store, json};
use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use sluice_core::analysis::signature::Signature;
use std::path::PathBuf;

/// Reference id → [`ReferenceRecord`] (JSON).
pub(super) const REFS: TableDefinition<u64, &[u8]> = TableDefinition::new("references");
/// (genre, reference id) → the feature vector, `f32` little-endian.
pub(super) const REF_VECTORS: TableDefinition<(&str, u64), &[u8]> =
    TableDefinition::new("reference_vectors");
/// Content hash → reference id.
pub(super) const REF_HASHES: TableDefinition<&str, u64> = TableDefinition::new("reference_hashes");

/// Schema 2 → 3: the reference library's tables, empty.
pub(super) fn reference_tables(
    tx: &redb::WriteTransaction,
) -> std::result::Result<(), redb::Error> {
    tx.open_table(REFS)?;
    tx.open_table(REF_VECTORS)?;
    tx.open_table(REF_HASHES)?;
    let mut meta = tx.open_table(META)?;
    if meta.get("next_reference")?.is_none() {
        meta.insert("next_reference", 1)?;
    }
    Ok(())
}

/// A reference to store (the id is given by the store).
#[derive(Debug, Clone)]
pub struct NewReference {
    pub name: String,
    pub artist: Option<String>,
    /// Lower case, trimmed (see [`genre_key`]).
    pub genre: String,
    pub year: Option<i32>,
    pub source: PathBuf,
    /// BLAKE3 of the file's content, hex.
    pub hash: String,
    pub signature: Signature,
    pub features: Vec<f32>,
    pub feature_version: u32,
}

/// A reference in the library.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ReferenceRecord {
    pub id: u64,
    pub name: String,
    pub artist: Option<String>,
    pub genre: String,
    pub year: Option<i32>,
    /// The file it was measured from (it may have moved since: the library keeps the figures).
    #[serde(with = "super::path_codec")]
    pub source: PathBuf,
    pub hash: String,
    pub added_ms: i64,
    pub feature_version: u32,
    pub signature: Signature,
}

/// The same content is in the library already.
#[derive(Debug, Clone, PartialEq)]
pub struct Duplicate {
    pub id: u64,
    pub name: String,
}

/// How genres are kept and looked up: trimmed, lower case.
pub fn genre_key(genre: &str) -> String {
    genre.trim().to_lowercase()
}

fn vector_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn decode(v: &[u8]) -> Option<ReferenceRecord> {
    serde_json::from_slice(v).ok()
}

/// Adds one reference in `tx` (see [`Store::add_reference`]).
fn add_one(
    tx: &redb::WriteTransaction,
    r: NewReference,
) -> std::result::Result<std::result::Result<ReferenceRecord, Duplicate>, redb::Error> {
    let mut hashes = tx.open_table(REF_HASHES)?;
    let mut refs = tx.open_table(REFS)?;
    if let Some(id) = hashes.get(r.hash.as_str())?.map(|v| v.value()) {
        let name = refs
            .get(id)?
            .and_then(|v| decode(v.value()))
            .map(|x| x.name)
            .unwrap_or_default();
        return Ok(Err(Duplicate { id, name }));
    }
    let mut meta = tx.open_table(META)?;
    let id = meta.get("next_reference")?.map_or(1, |v| v.value());
    meta.insert("next_reference", id + 1)?;
    let rec = ReferenceRecord {
        id,
        name: r.name,
        artist: r.artist,
        genre: genre_key(&r.genre),
        year: r.year,
        source: r.source,
        hash: r.hash,
        added_ms: super::now_ms(),
        feature_version: r.feature_version,
        signature: r.signature,
    };
    refs.insert(id, json(&rec).as_slice())?;
    hashes.insert(rec.hash.as_str(), id)?;
    tx.open_table(REF_VECTORS)?.insert(
        (rec.genre.as_str(), id),
        vector_bytes(&r.features).as_slice(),
    )?;
    Ok(Ok(rec))
}

impl Store {
    /// Add a reference, unless its content is there already (then the one that holds it).
    pub fn add_reference(
        &self,
        r: NewReference,
    ) -> Result<std::result::Result<ReferenceRecord, Duplicate>> {
        self.write(|tx| add_one(tx, r))
    }

    /// [`Store::add_reference`] for many, in one transaction (a library built at once).
    pub fn add_references(
        &self,
        refs: Vec<NewReference>,
    ) -> Result<Vec<std::result::Result<ReferenceRecord, Duplicate>>> {
        self.write(|tx| refs.into_iter().map(|r| add_one(tx, r)).collect())
    }

    /// The references, of one genre or all, by id.
    pub fn references(&self, genre: Option<&str>) -> Result<Vec<ReferenceRecord>> {
        let genre = genre.map(genre_key);
        self.read(|tx| {
            let mut out = Vec::new();
            for r in tx.open_table(REFS)?.iter()? {
                let (_, v) = r?;
                if let Some(rec) = decode(v.value())
                    && genre.as_ref().is_none_or(|g| *g == rec.genre)
                {
                    out.push(rec);
                }
            }
            Ok(out)
        })
    }

    pub fn reference(&self, id: u64) -> Result<Option<ReferenceRecord>> {
        self.read(|tx| {
            Ok(tx
                .open_table(REFS)?
                .get(id)?
                .and_then(|v| decode(v.value())))
        })
    }

    /// Remove a reference from every table; `None` when there is no such reference.
    pub fn remove_reference(&self, id: u64) -> Result<Option<ReferenceRecord>> {
        self.write(|tx| {
            let mut refs = tx.open_table(REFS)?;
            let Some(rec) = refs.remove(id)?.and_then(|v| decode(v.value())) else {
                return Ok(None);
            };
            tx.open_table(REF_HASHES)?.remove(rec.hash.as_str())?;
            tx.open_table(REF_VECTORS)?
                .remove((rec.genre.as_str(), id))?;
            Ok(Some(rec))
        })
    }

    /// The feature vectors of one genre or of all: the ids, and the vectors laid end to end
    /// (`dims` values each; a vector of another length, from another feature version, is
    /// left out).
    pub fn reference_vectors(
        &self,
        genre: Option<&str>,
        dims: usize,
    ) -> Result<(Vec<u64>, Vec<f32>)> {
        let genre = genre.map(genre_key);
        self.read(|tx| {
            let table = tx.open_table(REF_VECTORS)?;
            let (mut ids, mut flat) = (Vec::new(), Vec::new());
            let mut take = |k: (&str, u64), v: &[u8]| {
                if v.len() == dims * 4 {
                    ids.push(k.1);
                    flat.extend(
                        v.chunks_exact(4)
                            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
                    );
                }
            };
            match &genre {
                Some(g) => {
                    for r in table.range((g.as_str(), 0)..=(g.as_str(), u64::MAX))? {
                        let (k, v) = r?;
                        take(k.value(), v.value());
                    }
                }
                None => {
                    for r in table.iter()? {
                        let (k, v) = r?;
                        take(k.value(), v.value());
                    }
                }
            }
            Ok((ids, flat))
        })
    }

    /// Every genre with its number of references, by name.
    pub fn genres(&self) -> Result<Vec<(String, usize)>> {
        self.read(|tx| {
            let mut out: Vec<(String, usize)> = Vec::new();
            for r in tx.open_table(REF_VECTORS)?.iter()? {
                let (k, _) = r?;
                let g = k.value().0;
                match out.last_mut() {
                    Some((last, n)) if last == g => *n += 1,
                    _ => out.push((g.to_string(), 1)),
                }
            }
            Ok(out)
        })
    }
}

/// Invariant 5 (see the module documentation of `store`): REFS, REF_VECTORS and REF_HASHES
/// name the same references. A file from before the library (no tables yet) is sound.
pub(super) fn check(
    tx: &redb::ReadTransaction,
    problems: &mut Vec<String>,
) -> std::result::Result<(), redb::Error> {
    let open = |e: redb::TableError| match e {
        redb::TableError::TableDoesNotExist(_) => None,
        e => Some(e),
    };
    let (refs, vectors, hashes) = match (
        tx.open_table(REFS),
        tx.open_table(REF_VECTORS),
        tx.open_table(REF_HASHES),
    ) {
        (Ok(a), Ok(b), Ok(c)) => (a, b, c),
        (a, b, c) => {
            for e in [a.err(), b.err(), c.err()].into_iter().flatten() {
                if let Some(e) = open(e) {
                    return Err(e.into());
                }
            }
            return Ok(());
        }
    };
    let mut by_id = std::collections::BTreeMap::new();
    for r in refs.iter()? {
        let (k, v) = r?;
        match decode(v.value()) {
            Some(rec) => {
                by_id.insert(k.value(), rec);
            }
            None => problems.push(format!("reference {} cannot be read", k.value())),
        }
    }
    let mut vectored = std::collections::BTreeSet::new();
    for r in vectors.iter()? {
        let (k, _) = r?;
        let (genre, id) = k.value();
        match by_id.get(&id) {
            Some(rec) if rec.genre == genre => {}
            Some(rec) => problems.push(format!(
                "reference {id}'s vector is under genre {genre:?}, its record says {:?}",
                rec.genre
            )),
            None => problems.push(format!("a vector of missing reference {id}")),
        }
        vectored.insert(id);
    }
    let mut hashed = std::collections::BTreeSet::new();
    for r in hashes.iter()? {
        let (k, v) = r?;
        let id = v.value();
        match by_id.get(&id) {
            Some(rec) if rec.hash == k.value() => {}
            _ => problems.push(format!(
                "hash {} names reference {id}, which does not hold it",
                k.value()
            )),
        }
        hashed.insert(id);
    }
    for id in by_id.keys() {
        if !vectored.contains(id) {
            problems.push(format!("reference {id} has no vector"));
        }
        if !hashed.contains(id) {
            problems.push(format!("reference {id}'s hash is not indexed"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::{MIGRATIONS, SCHEMA_VERSION, Store};
    use super::*;
    use sluice_core::analysis::signature::BandSignature;

    fn signature(lufs: f64) -> Signature {
        Signature {
            version: 1,
            sample_rate: 48_000,
            duration_seconds: 10.0,
            integrated_lufs: lufs,
            loudness_range_lu: 5.0,
            plr_lu: 9.0,
            crest_db: 12.0,
            max_short_term_lu: 3.0,
            width: 0.2,
            correlation: 0.6,
            balance_db: 0.0,
            bands: vec![
                BandSignature {
                    level_db: -3.0,
                    crest_db: 10.0,
                    spread_db: 4.0,
                    width: 0.1,
                    correlation: 0.8,
                };
                5
            ],
            tonal_db: vec![-10.0; 29],
            ltas: Vec::new(),
            onset_density: 2.0,
            attack_ms: 10.0,
            transient_db: 12.0,
            hnr_db: 5.0,
            thd_percent: 3.0,
        }
    }

    fn new(name: &str, genre: &str, hash: &str) -> NewReference {
        NewReference {
            name: name.into(),
            artist: None,
            genre: genre.into(),
            year: Some(2020),
            source: PathBuf::from(format!("/refs/{name}.wav")),
            hash: hash.into(),
            signature: signature(-14.0),
            features: vec![1.0, 2.0, 3.0],
            feature_version: 1,
        }
    }

    #[test]
    fn a_schema_2_file_gains_an_empty_library_and_keeps_its_jobs() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.redb");
        {
            let s = Store::open_migrating(&p, true, &MIGRATIONS[..1]).unwrap();
            assert_eq!(s.schema_version().unwrap(), 2);
            s.event(None, "test", "before the library".into()).unwrap();
            // No library tables yet: the check still reads the file as sound.
            assert!(s.check().unwrap().is_empty());
        }
        let s = Store::open(&p, false).unwrap();
        assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
        assert_eq!(SCHEMA_VERSION, 3);
        assert_eq!(s.events(None).unwrap().len(), 1);
        assert!(s.references(None).unwrap().is_empty());
        let r = s.add_reference(new("a", " House ", "h1")).unwrap().unwrap();
        assert_eq!((r.id, r.genre.as_str()), (1, "house"));
        assert!(s.check().unwrap().is_empty());
        // Opened again, nothing is migrated twice.
        drop(s);
        let s = Store::open(&p, false).unwrap();
        assert_eq!(s.references(Some("HOUSE")).unwrap().len(), 1);
    }

    #[test]
    fn references_by_genre_dedup_by_content_and_removal_clears_every_table() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("s.redb"), true).unwrap();
        let a = s.add_reference(new("a", "house", "h1")).unwrap().unwrap();
        let b = s.add_reference(new("b", "techno", "h2")).unwrap().unwrap();
        let c = s.add_reference(new("c", "house", "h3")).unwrap().unwrap();
        let dup = s.add_reference(new("a again", "jazz", "h1")).unwrap();
        assert_eq!(
            dup,
            Err(Duplicate {
                id: a.id,
                name: "a".into()
            })
        );
        assert_eq!(
            s.genres().unwrap(),
            [("house".to_string(), 2), ("techno".to_string(), 1)]
        );
        let (ids, flat) = s.reference_vectors(Some("house"), 3).unwrap();
        assert_eq!(ids, [a.id, c.id]);
        assert_eq!(flat, [1.0, 2.0, 3.0, 1.0, 2.0, 3.0]);
        // A vector of another length (another feature version) is left out.
        assert!(s.reference_vectors(None, 4).unwrap().0.is_empty());
        assert_eq!(s.remove_reference(b.id).unwrap().unwrap().name, "b");
        assert!(s.remove_reference(b.id).unwrap().is_none());
        assert_eq!(s.reference_vectors(None, 3).unwrap().0, [a.id, c.id]);
        // Its content may come back.
        assert!(s.add_reference(new("b", "techno", "h2")).unwrap().is_ok());
        assert!(s.check().unwrap().is_empty());
    }

    #[test]
    fn the_check_finds_reference_tables_that_disagree() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("s.redb"), true).unwrap();
        let a = s.add_reference(new("a", "house", "h1")).unwrap().unwrap();
        {
            let tx = s.db.begin_write().unwrap();
            tx.open_table(REF_VECTORS)
                .unwrap()
                .remove(("house", a.id))
                .unwrap();
            tx.open_table(REF_HASHES).unwrap().insert("h9", 77).unwrap();
            tx.commit().unwrap();
        }
        let problems = s.check().unwrap();
        assert!(
            problems.iter().any(|p| p == "reference 1 has no vector"),
            "{problems:?}"
        );
        assert!(
            problems
                .iter()
                .any(|p| p.contains("hash h9 names reference 77")),
            "{problems:?}"
        );
    }
}
