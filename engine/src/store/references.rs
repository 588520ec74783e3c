//! The reference library's tables (schema 3): references with their signatures, their feature
//! vectors by genre in chunks (a query reads a few hundred values, not one per reference), the
//! sum of each genre's vectors (the centre of a query without a pass of its own), and the
//! content hashes (the same audio is one reference).

use super::{META, Result, Store, json};
use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use sluice_core::analysis::signature::{Nearest, Signature};
use std::path::PathBuf;

/// Reference id → [`ReferenceRecord`] (JSON).
pub(super) const REFS: TableDefinition<u64, &[u8]> = TableDefinition::new("references");
/// (genre, chunk number) → up to [`CHUNK`] vectors: `dims` (u32), then per vector its id (u64)
/// and `dims` values (f32), all little-endian.
pub(super) const REF_CHUNKS: TableDefinition<(&str, u64), &[u8]> =
    TableDefinition::new("reference_chunks");
/// Genre → `dims` (u32), the number of vectors (u64) and their sum (`dims` f64).
pub(super) const REF_SUMS: TableDefinition<&str, &[u8]> = TableDefinition::new("reference_sums");
/// Content hash → reference id.
pub(super) const REF_HASHES: TableDefinition<&str, u64> = TableDefinition::new("reference_hashes");

/// Vectors per chunk.
const CHUNK: usize = 256;

/// Schema 2 → 3: the reference library's tables, empty.
pub(super) fn reference_tables(
    tx: &redb::WriteTransaction,
) -> std::result::Result<(), redb::Error> {
    tx.open_table(REFS)?;
    tx.open_table(REF_CHUNKS)?;
    tx.open_table(REF_SUMS)?;
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

fn decode(v: &[u8]) -> Option<ReferenceRecord> {
    serde_json::from_slice(v).ok()
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// A chunk's vectors: `dims`, and `(id, values)` of each (an ill-formed chunk reads empty).
struct Chunk<'a> {
    dims: usize,
    body: &'a [u8],
}

impl<'a> Chunk<'a> {
    fn parse(b: &'a [u8]) -> Chunk<'a> {
        let dims = u32_at(b, 0).unwrap_or(0) as usize;
        let body = b.get(4..).unwrap_or(&[]);
        let size = 8 + 4 * dims;
        if dims == 0 || body.len() % size != 0 {
            return Chunk { dims, body: &[] };
        }
        Chunk { dims, body }
    }

    fn len(&self) -> usize {
        self.body.len() / (8 + 4 * self.dims).max(1)
    }

    /// Each vector's id, its values decoded into `buf`.
    fn each(&self, buf: &mut Vec<f32>, mut f: impl FnMut(u64, &[f32])) {
        for rec in self.body.chunks_exact(8 + 4 * self.dims) {
            let id = u64::from_le_bytes(rec[..8].try_into().expect("8 bytes"));
            buf.clear();
            buf.extend(
                rec[8..]
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            );
            f(id, buf);
        }
    }

    fn ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.body
            .chunks_exact(8 + 4 * self.dims)
            .map(|rec| u64::from_le_bytes(rec[..8].try_into().expect("8 bytes")))
    }
}

/// A genre's sum: `dims`, count, the sum of its vectors.
#[derive(Debug, Clone, PartialEq)]
struct Sum {
    count: u64,
    sum: Vec<f64>,
}

impl Sum {
    fn parse(b: &[u8]) -> Option<Sum> {
        let dims = u32_at(b, 0)? as usize;
        let count = u64_at(b, 4)?;
        let sum = (0..dims)
            .map(|i| {
                b.get(12 + 8 * i..20 + 8 * i)
                    .map(|x| f64::from_le_bytes(x.try_into().expect("8 bytes")))
            })
            .collect::<Option<Vec<f64>>>()?;
        Some(Sum { count, sum })
    }

    fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(12 + 8 * self.sum.len());
        out.extend((self.sum.len() as u32).to_le_bytes());
        out.extend(self.count.to_le_bytes());
        for v in &self.sum {
            out.extend(v.to_le_bytes());
        }
        out
    }
}

/// Adds `vectors` (`(id, values)`) to `genre`: its last chunk filled up, then new chunks,
/// each chunk written once; and to the genre's sum.
fn append_vectors(
    tx: &redb::WriteTransaction,
    genre: &str,
    vectors: &[(u64, Vec<f32>)],
) -> std::result::Result<(), redb::Error> {
    let Some(dims) = vectors.first().map(|(_, v)| v.len()) else {
        return Ok(());
    };
    let mut chunks = tx.open_table(REF_CHUNKS)?;
    let last = chunks
        .range((genre, 0)..=(genre, u64::MAX))?
        .next_back()
        .transpose()?
        .map(|(k, b)| (k.value().1, b.value().to_vec()));
    let header = || (dims as u32).to_le_bytes().to_vec();
    let (mut no, mut bytes, mut held) = match last {
        Some((no, b)) => {
            let c = Chunk::parse(&b);
            let n = c.len();
            if c.dims == dims && n < CHUNK && !c.body.is_empty() {
                (no, b, n)
            } else {
                (no + 1, header(), 0)
            }
        }
        None => (0, header(), 0),
    };
    let mut sums = tx.open_table(REF_SUMS)?;
    let mut sum = sums
        .get(genre)?
        .and_then(|b| Sum::parse(b.value()))
        .filter(|s| s.sum.len() == dims)
        .unwrap_or(Sum {
            count: 0,
            sum: vec![0.0; dims],
        });
    for (id, v) in vectors.iter().filter(|(_, v)| v.len() == dims) {
        if held == CHUNK {
            chunks.insert((genre, no), bytes.as_slice())?;
            (no, bytes, held) = (no + 1, header(), 0);
        }
        bytes.extend(id.to_le_bytes());
        for x in v {
            bytes.extend(x.to_le_bytes());
        }
        held += 1;
        sum.count += 1;
        for (s, &x) in sum.sum.iter_mut().zip(v) {
            *s += f64::from(x);
        }
    }
    chunks.insert((genre, no), bytes.as_slice())?;
    sums.insert(genre, sum.bytes().as_slice())?;
    Ok(())
}

/// Takes `id`'s vector out of `genre`'s chunks and sum.
fn remove_vector(
    tx: &redb::WriteTransaction,
    genre: &str,
    id: u64,
) -> std::result::Result<(), redb::Error> {
    let mut chunks = tx.open_table(REF_CHUNKS)?;
    let mut found: Option<(u64, Vec<u8>, Vec<f32>)> = None;
    for r in chunks.range((genre, 0)..=(genre, u64::MAX))? {
        let (k, b) = r?;
        let c = Chunk::parse(b.value());
        let size = 8 + 4 * c.dims;
        if let Some(at) = c.ids().position(|x| x == id) {
            let rec = &c.body[at * size..(at + 1) * size];
            let v = rec[8..]
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            let mut kept = b.value()[..4].to_vec();
            kept.extend(&c.body[..at * size]);
            kept.extend(&c.body[(at + 1) * size..]);
            found = Some((k.value().1, kept, v));
            break;
        }
    }
    let Some((no, kept, v)) = found else {
        return Ok(());
    };
    if kept.len() > 4 {
        chunks.insert((genre, no), kept.as_slice())?;
    } else {
        chunks.remove((genre, no))?;
    }
    let mut sums = tx.open_table(REF_SUMS)?;
    let sum = sums.get(genre)?.and_then(|b| Sum::parse(b.value()));
    if let Some(mut sum) = sum.filter(|s| s.sum.len() == v.len()) {
        sum.count = sum.count.saturating_sub(1);
        if sum.count == 0 {
            sums.remove(genre)?;
        } else {
            for (s, &x) in sum.sum.iter_mut().zip(&v) {
                *s -= f64::from(x);
            }
            sums.insert(genre, sum.bytes().as_slice())?;
        }
    }
    Ok(())
}

/// Adds one reference's record and hash in `tx` (see [`Store::add_reference`]); its vector is
/// the caller's to append.
fn add_record(
    tx: &redb::WriteTransaction,
    r: NewReference,
) -> std::result::Result<std::result::Result<(ReferenceRecord, Vec<f32>), Duplicate>, redb::Error> {
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
    Ok(Ok((rec, r.features)))
}

impl Store {
    /// Add a reference, unless its content is there already (then the one that holds it).
    pub fn add_reference(
        &self,
        r: NewReference,
    ) -> Result<std::result::Result<ReferenceRecord, Duplicate>> {
        Ok(self.add_references(vec![r])?.remove(0))
    }

    /// [`Store::add_reference`] for many, in one transaction (a library built at once).
    pub fn add_references(
        &self,
        refs: Vec<NewReference>,
    ) -> Result<Vec<std::result::Result<ReferenceRecord, Duplicate>>> {
        self.write(|tx| {
            let mut out = Vec::with_capacity(refs.len());
            let mut by_genre: std::collections::BTreeMap<String, Vec<(u64, Vec<f32>)>> =
                std::collections::BTreeMap::new();
            for r in refs {
                out.push(match add_record(tx, r)? {
                    Ok((rec, v)) => {
                        by_genre
                            .entry(rec.genre.clone())
                            .or_default()
                            .push((rec.id, v));
                        Ok(rec)
                    }
                    Err(d) => Err(d),
                });
            }
            for (genre, vectors) in &by_genre {
                append_vectors(tx, genre, vectors)?;
            }
            Ok(out)
        })
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
            let rec = tx
                .open_table(REFS)?
                .remove(id)?
                .and_then(|v| decode(v.value()));
            let Some(rec) = rec else {
                return Ok(None);
            };
            tx.open_table(REF_HASHES)?.remove(rec.hash.as_str())?;
            remove_vector(tx, &rec.genre, id)?;
            Ok(Some(rec))
        })
    }

    /// Calls `f` with every vector of `dims` values of one genre or of all (vectors of another
    /// length, from another feature version, are left out), in one read.
    fn each_vector(
        &self,
        genre: Option<&str>,
        dims: usize,
        mut f: impl FnMut(u64, &[f32]),
    ) -> Result<()> {
        let genre = genre.map(genre_key);
        self.read(|tx| {
            let table = tx.open_table(REF_CHUNKS)?;
            let mut buf = Vec::with_capacity(dims);
            let range = match &genre {
                Some(g) => table.range((g.as_str(), 0)..=(g.as_str(), u64::MAX))?,
                None => table.range::<(&str, u64)>(..)?,
            };
            for r in range {
                let (_, b) = r?;
                let c = Chunk::parse(b.value());
                if c.dims == dims {
                    c.each(&mut buf, &mut f);
                }
            }
            Ok(())
        })
    }

    /// The feature vectors of one genre or of all: the ids, and the vectors laid end to end
    /// (`dims` values each; others left out).
    pub fn reference_vectors(
        &self,
        genre: Option<&str>,
        dims: usize,
    ) -> Result<(Vec<u64>, Vec<f32>)> {
        let (mut ids, mut flat) = (Vec::new(), Vec::new());
        self.each_vector(genre, dims, |id, v| {
            ids.push(id);
            flat.extend_from_slice(v);
        })?;
        Ok((ids, flat))
    }

    /// The mean of the vectors of `query`'s length, of one genre or all, and how many there
    /// are (from the genres' sums: no pass over the vectors).
    pub fn reference_centre(&self, genre: Option<&str>, dims: usize) -> Result<(Vec<f32>, u64)> {
        let genre = genre.map(genre_key);
        self.read(|tx| {
            let table = tx.open_table(REF_SUMS)?;
            let (mut total, mut count) = (vec![0f64; dims], 0u64);
            let mut add = |b: &[u8]| {
                if let Some(s) = Sum::parse(b).filter(|s| s.sum.len() == dims) {
                    count += s.count;
                    for (t, v) in total.iter_mut().zip(&s.sum) {
                        *t += v;
                    }
                }
            };
            match &genre {
                Some(g) => {
                    if let Some(b) = table.get(g.as_str())? {
                        add(b.value());
                    }
                }
                None => {
                    for r in table.iter()? {
                        let (_, b) = r?;
                        add(b.value());
                    }
                }
            }
            let n = count.max(1) as f64;
            Ok((total.iter().map(|t| (t / n) as f32).collect(), count))
        })
    }

    /// The `top` references of one genre or all nearest `query` (centred cosine, see
    /// `signature::nearest`): `(id, similarity)`, nearest first, and how many were compared.
    pub fn nearest_references(
        &self,
        query: &[f32],
        genre: Option<&str>,
        top: usize,
    ) -> Result<(Vec<(u64, f64)>, u64)> {
        let (centre, count) = self.reference_centre(genre, query.len())?;
        let mut near = Nearest::new(query, &centre, top);
        self.each_vector(genre, query.len(), |id, v| near.offer(id, v))?;
        Ok((near.finish(), count))
    }

    /// Every genre with its number of references, by name.
    pub fn genres(&self) -> Result<Vec<(String, usize)>> {
        self.read(|tx| {
            let mut out = Vec::new();
            for r in tx.open_table(REF_SUMS)?.iter()? {
                let (k, b) = r?;
                if let Some(s) = Sum::parse(b.value()) {
                    out.push((k.value().to_string(), s.count as usize));
                }
            }
            Ok(out)
        })
    }
}

/// Invariant 5 (see the module documentation of `store`): REFS, REF_CHUNKS, REF_SUMS and
/// REF_HASHES agree. A file from before the library (no tables yet) is sound.
pub(super) fn check(
    tx: &redb::ReadTransaction,
    problems: &mut Vec<String>,
) -> std::result::Result<(), redb::Error> {
    let refs = match tx.open_table(REFS) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(()),
        Err(e) => return Err(e.into()),
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
    // Every vector once, under its reference's genre; the sums are of them.
    let mut seen = std::collections::BTreeSet::new();
    let mut sums: std::collections::BTreeMap<String, Sum> = std::collections::BTreeMap::new();
    let mut buf = Vec::new();
    for r in tx.open_table(REF_CHUNKS)?.iter()? {
        let (k, b) = r?;
        let (genre, no) = k.value();
        let c = Chunk::parse(b.value());
        if c.body.is_empty() {
            problems.push(format!(
                "chunk {no} of genre {genre:?} is empty or ill-formed"
            ));
        }
        c.each(&mut buf, |id, v| {
            match by_id.get(&id) {
                Some(rec) if rec.genre == genre => {}
                Some(rec) => problems.push(format!(
                    "reference {id}'s vector is under genre {genre:?}, its record says {:?}",
                    rec.genre
                )),
                None => problems.push(format!("a vector of missing reference {id}")),
            }
            if !seen.insert(id) {
                problems.push(format!("reference {id} has two vectors"));
            }
            let s = sums.entry(genre.to_string()).or_insert(Sum {
                count: 0,
                sum: vec![0.0; v.len()],
            });
            s.count += 1;
            for (t, &x) in s.sum.iter_mut().zip(v) {
                *t += f64::from(x);
            }
        });
    }
    let stored: std::collections::BTreeMap<String, Sum> = tx
        .open_table(REF_SUMS)?
        .iter()?
        .filter_map(|r| r.ok())
        .filter_map(|(k, b)| Some((k.value().to_string(), Sum::parse(b.value())?)))
        .collect();
    for g in sums.keys().chain(stored.keys()) {
        let agree = match (sums.get(g), stored.get(g)) {
            (Some(a), Some(b)) => {
                a.count == b.count
                    && a.sum.len() == b.sum.len()
                    && a.sum
                        .iter()
                        .zip(&b.sum)
                        .all(|(x, y)| (x - y).abs() <= 1e-6 * (1.0 + x.abs()) * a.count as f64)
            }
            _ => false,
        };
        if !agree {
            problems.push(format!("genre {g:?}'s sum is not the sum of its vectors"));
        }
    }
    let mut hashed = std::collections::BTreeSet::new();
    for r in tx.open_table(REF_HASHES)?.iter()? {
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
        if !seen.contains(id) {
            problems.push(format!("reference {id} has no vector"));
        }
        if !hashed.contains(id) {
            problems.push(format!("reference {id}'s hash is not indexed"));
        }
    }
    problems.dedup();
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
            s.event(
                None,
                crate::store::EventKind::Note,
                "before the library".into(),
            )
            .unwrap();
            // No library tables yet: the check still reads the file as sound.
            assert!(s.check().unwrap().is_empty());
        }
        let s = Store::open(&p, false).unwrap();
        assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
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
        s.add_reference(new("a", "house", "h1")).unwrap().unwrap();
        {
            let tx = s.db.begin_write().unwrap();
            tx.open_table(REF_CHUNKS)
                .unwrap()
                .remove(("house", 0))
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

    #[test]
    fn vectors_across_chunks_answer_as_a_flat_search_does() {
        // 600 references in two genres, in two batches and one at a time (chunks of 256 fill
        // and roll over), 50 removed from the middle: the sums, the check and a search agree
        // with a search over the vectors laid flat.
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("s.redb"), true).unwrap();
        let mut rng = sluice_core::signal::Rng::new(7);
        let mut make = |i: usize| {
            let mut r = new(&format!("r{i}"), ["a", "b"][i % 2], &format!("h{i}"));
            r.features = (0..6).map(|_| rng.uniform() as f32).collect();
            r
        };
        s.add_references((0..300).map(&mut make).collect()).unwrap();
        for i in 300..340 {
            s.add_reference(make(i)).unwrap().unwrap();
        }
        s.add_references((340..600).map(&mut make).collect())
            .unwrap();
        for id in (100..150).map(|i| i as u64 + 1) {
            assert!(s.remove_reference(id).unwrap().is_some());
        }
        assert!(s.check().unwrap().is_empty(), "{:?}", s.check().unwrap());
        assert_eq!(s.genres().unwrap(), [("a".into(), 275), ("b".into(), 275)]);
        let query = [0.3f32, -0.2, 0.1, 0.5, -0.4, 0.0];
        for genre in [None, Some("b")] {
            let (ids, flat) = s.reference_vectors(genre, 6).unwrap();
            let centre = sluice_core::analysis::signature::mean(&flat, 6);
            let (c, n) = s.reference_centre(genre, 6).unwrap();
            assert_eq!(n as usize, ids.len());
            for (x, y) in c.iter().zip(&centre) {
                assert!((x - y).abs() < 1e-5, "{c:?} / {centre:?}");
            }
            let flat_near: Vec<u64> =
                sluice_core::analysis::signature::nearest(&query, &flat, 6, &centre, 5)
                    .into_iter()
                    .map(|(i, _)| ids[i])
                    .collect();
            let (near, compared) = s.nearest_references(&query, genre, 5).unwrap();
            assert_eq!(compared as usize, ids.len());
            assert_eq!(near.iter().map(|x| x.0).collect::<Vec<_>>(), flat_near);
        }
    }
}
