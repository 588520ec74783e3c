//! Files uploaded through `sluice serve` (schema 4): one record per content, by its BLAKE3
//! hash (the `file_id` of the HTTP API), with the facts read at upload and the analysis,
//! cached for the content; and the API's batches of exports.

use super::{Result, Store, json};
use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

/// File id (content hash, hex) → [`UploadRecord`] (JSON).
pub(super) const UPLOADS: TableDefinition<&str, &[u8]> = TableDefinition::new("uploads");

/// Batch id → [`BatchRecord`] (JSON).
pub(super) const BATCHES: TableDefinition<u64, &[u8]> = TableDefinition::new("batches");

/// Region id → [`RegionRecord`] (JSON).
pub(super) const REGIONS: TableDefinition<u64, &[u8]> = TableDefinition::new("regions");

/// Analysis id → [`AnalysisRecord`] (JSON): the mastering analyses asked of the API.
pub(super) const ANALYSES: TableDefinition<u64, &[u8]> = TableDefinition::new("analyses");

/// Schema 4 → 5: the mastering analyses' table, empty.
pub(super) fn analysis_table(tx: &redb::WriteTransaction) -> std::result::Result<(), redb::Error> {
    tx.open_table(ANALYSES)?;
    Ok(())
}

/// A mastering analysis asked of the API (`POST /api/analyze`): an uploaded file measured
/// (its signature is kept with the upload) and, when a genre was given, compared with that
/// genre's profile as the library held it then.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AnalysisRecord {
    pub id: u64,
    /// The upload measured.
    pub file_id: String,
    pub file_name: String,
    /// The genre compared with (its key), if one was given.
    pub genre: Option<String>,
    /// `gentle`, `suggestive` or `assertive`.
    pub recommendation_level: String,
    pub created_ms: i64,
    /// The comparison with the genre's profile ([`sluice_core::analysis::compare::Comparison`]
    /// as JSON).
    pub comparison: Option<serde_json::Value>,
}

/// Schema 3 → 4: the uploads, batches and regions tables, empty.
pub(super) fn upload_table(tx: &redb::WriteTransaction) -> std::result::Result<(), redb::Error> {
    tx.open_table(UPLOADS)?;
    tx.open_table(BATCHES)?;
    tx.open_table(REGIONS)?;
    Ok(())
}

/// A region of an uploaded file placed on a track (the specification's regions).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct RegionRecord {
    pub region_id: String,
    pub track_id: String,
    pub file_id: String,
    /// Seconds into the file.
    pub start_time: f64,
    /// Seconds; null for the rest of the file.
    pub duration: Option<f64>,
    pub name: Option<String>,
    /// Linear gain.
    pub gain: f64,
    /// RFC 3339, UTC.
    pub created_at: String,
}

/// Where a batch stands (stored as its lower-case name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BatchStatus {
    Pending,
    Processing,
    /// Every file done, some possibly failed.
    Completed,
    /// Every file failed.
    Failed,
}

/// Where one file of a batch stands (stored as its lower-case name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileStatus {
    Pending,
    Completed,
    Failed,
}

impl BatchStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            BatchStatus::Pending => "pending",
            BatchStatus::Processing => "processing",
            BatchStatus::Completed => "completed",
            BatchStatus::Failed => "failed",
        }
    }
}

/// A batch of exports made through the API.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BatchRecord {
    pub id: u64,
    pub status: BatchStatus,
    /// The export settings, as the request gave them.
    pub settings: serde_json::Value,
    /// Inside the root's export area.
    pub output_directory: String,
    pub files: Vec<BatchFile>,
    pub created_ms: i64,
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
}

/// One file of a batch.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BatchFile {
    pub file_id: String,
    pub status: FileStatus,
    /// Relative to the export area, once written.
    pub output_path: Option<String>,
    pub error: Option<String>,
}

/// An uploaded file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct UploadRecord {
    /// BLAKE3 of the content, hex.
    pub id: String,
    /// The name the client gave (its last path component).
    pub file_name: String,
    /// Where it is kept, relative to the root (`uploads/YYYY/MM/DD/NAME`).
    pub rel: String,
    pub size: u64,
    pub uploaded_ms: i64,
    /// The format facts and tags read at upload ([`sluice_core::FileInfo`] as JSON).
    pub info: serde_json::Value,
    /// The full analysis of this content, once asked for.
    #[serde(default)]
    pub analysis: Option<serde_json::Value>,
    /// The mastering signature of this content (features for references and comparisons),
    /// once measured.
    #[serde(default)]
    pub signature: Option<sluice_core::analysis::signature::Signature>,
}

impl Store {
    /// The upload with this id.
    pub fn upload(&self, id: &str) -> Result<Option<UploadRecord>> {
        self.read(|tx| {
            let t = tx.open_table(UPLOADS)?;
            Ok(t.get(id)?
                .and_then(|v| serde_json::from_slice(v.value()).ok()))
        })
    }

    /// Records `rec` unless its content is already there; returns the record kept (the first
    /// upload of the content wins, and the caller removes its copy when it is not `rec`).
    pub fn add_upload(&self, rec: &UploadRecord) -> Result<UploadRecord> {
        self.write(|tx| {
            let mut t = tx.open_table(UPLOADS)?;
            let old = t
                .get(rec.id.as_str())?
                .and_then(|v| serde_json::from_slice::<UploadRecord>(v.value()).ok());
            if let Some(old) = old {
                return Ok(old);
            }
            t.insert(rec.id.as_str(), json(rec).as_slice())?;
            Ok(rec.clone())
        })
    }

    /// Changes an upload's record in one transaction (nothing when there is none).
    fn update_upload(&self, id: &str, f: impl FnOnce(&mut UploadRecord)) -> Result<()> {
        self.write(|tx| {
            let mut t = tx.open_table(UPLOADS)?;
            let rec = t
                .get(id)?
                .and_then(|v| serde_json::from_slice::<UploadRecord>(v.value()).ok());
            if let Some(mut rec) = rec {
                f(&mut rec);
                t.insert(id, json(&rec).as_slice())?;
            }
            Ok(())
        })
    }

    /// Keeps the analysis of an upload's content.
    pub fn set_upload_analysis(&self, id: &str, analysis: serde_json::Value) -> Result<()> {
        self.update_upload(id, |r| r.analysis = Some(analysis))
    }

    /// Keeps the mastering signature of an upload's content.
    pub fn set_upload_signature(
        &self,
        id: &str,
        signature: &sluice_core::analysis::signature::Signature,
    ) -> Result<()> {
        self.update_upload(id, |r| r.signature = Some(signature.clone()))
    }

    /// Records a new mastering analysis; its id is given here.
    pub fn add_analysis(&self, mut rec: AnalysisRecord) -> Result<AnalysisRecord> {
        self.write(|tx| {
            let mut meta = tx.open_table(super::META)?;
            let id = meta.get("next_analysis")?.map_or(1, |v| v.value());
            meta.insert("next_analysis", id + 1)?;
            rec.id = id;
            tx.open_table(ANALYSES)?.insert(id, json(&rec).as_slice())?;
            Ok(rec)
        })
    }

    pub fn analysis(&self, id: u64) -> Result<Option<AnalysisRecord>> {
        self.read(|tx| {
            let t = tx.open_table(ANALYSES)?;
            Ok(t.get(id)?
                .and_then(|v| serde_json::from_slice(v.value()).ok()))
        })
    }

    /// Records a new batch; its id is given here.
    pub fn add_batch(&self, mut rec: BatchRecord) -> Result<BatchRecord> {
        self.write(|tx| {
            let mut meta = tx.open_table(super::META)?;
            let id = meta.get("next_batch")?.map_or(1, |v| v.value());
            meta.insert("next_batch", id + 1)?;
            rec.id = id;
            tx.open_table(BATCHES)?.insert(id, json(&rec).as_slice())?;
            Ok(rec)
        })
    }

    pub fn batch(&self, id: u64) -> Result<Option<BatchRecord>> {
        self.read(|tx| {
            let t = tx.open_table(BATCHES)?;
            Ok(t.get(id)?
                .and_then(|v| serde_json::from_slice(v.value()).ok()))
        })
    }

    /// Changes a batch in one transaction: `f` gets the stored record (or `None`) and says
    /// what to store; the stored record is returned.
    pub fn update_batch(
        &self,
        id: u64,
        f: impl FnOnce(&mut BatchRecord) -> bool,
    ) -> Result<Option<(BatchRecord, bool)>> {
        self.write(|tx| {
            let mut t = tx.open_table(BATCHES)?;
            let rec = t
                .get(id)?
                .and_then(|v| serde_json::from_slice::<BatchRecord>(v.value()).ok());
            let Some(mut rec) = rec else {
                return Ok(None);
            };
            let changed = f(&mut rec);
            if changed {
                t.insert(id, json(&rec).as_slice())?;
            }
            Ok(Some((rec, changed)))
        })
    }

    /// Batches left `processing` by a server that stopped go back to `pending` (their
    /// finished files stay finished); returns their ids.
    pub fn interrupted_batches(&self) -> Result<Vec<u64>> {
        self.write(|tx| {
            let mut t = tx.open_table(BATCHES)?;
            let stuck: Vec<BatchRecord> = t
                .iter()?
                .filter_map(|r| r.ok())
                .filter_map(|(_, v)| serde_json::from_slice::<BatchRecord>(v.value()).ok())
                .filter(|b| b.status == BatchStatus::Processing)
                .collect();
            let mut ids = Vec::new();
            for mut b in stuck {
                b.status = BatchStatus::Pending;
                t.insert(b.id, json(&b).as_slice())?;
                ids.push(b.id);
            }
            Ok(ids)
        })
    }

    /// Records a new region; its id is given here.
    pub fn add_region(&self, mut rec: RegionRecord) -> Result<RegionRecord> {
        self.write(|tx| {
            let mut meta = tx.open_table(super::META)?;
            let id = meta.get("next_region")?.map_or(1, |v| v.value());
            meta.insert("next_region", id + 1)?;
            rec.region_id = id.to_string();
            tx.open_table(REGIONS)?.insert(id, json(&rec).as_slice())?;
            Ok(rec)
        })
    }

    /// The regions of a track, in the order they were made.
    pub fn regions(&self, track_id: &str) -> Result<Vec<RegionRecord>> {
        self.read(|tx| {
            let t = tx.open_table(REGIONS)?;
            Ok(t.iter()?
                .filter_map(|r| r.ok())
                .filter_map(|(_, v)| serde_json::from_slice::<RegionRecord>(v.value()).ok())
                .filter(|r| r.track_id == track_id)
                .collect())
        })
    }

    /// Removes a region; returns it, or `None` when there was none.
    pub fn remove_region(&self, id: u64) -> Result<Option<RegionRecord>> {
        self.write(|tx| {
            let mut t = tx.open_table(REGIONS)?;
            let old = t
                .remove(id)?
                .and_then(|v| serde_json::from_slice(v.value()).ok());
            Ok(old)
        })
    }

    /// Every upload, oldest first.
    pub fn uploads(&self) -> Result<Vec<UploadRecord>> {
        self.read(|tx| {
            let t = tx.open_table(UPLOADS)?;
            let mut all: Vec<UploadRecord> = t
                .iter()?
                .filter_map(|r| r.ok())
                .filter_map(|(_, v)| serde_json::from_slice(v.value()).ok())
                .collect();
            all.sort_by_key(|r: &UploadRecord| r.uploaded_ms);
            Ok(all)
        })
    }
}

#[cfg(test)]
mod tests {

    /// Batches stored before the states were enums (their names as strings) read back.
    #[test]
    fn batch_states_are_stored_as_their_names() {
        let old = r#"{"id":3,"status":"processing","settings":{},"output_directory":"b","files":[{"file_id":"f","status":"completed","output_path":"b/f.flac","error":null}],"created_ms":1,"start_ms":2,"end_ms":null}"#;
        let b: BatchRecord = serde_json::from_str(old).unwrap();
        assert_eq!(b.status, BatchStatus::Processing);
        assert_eq!(b.files[0].status, FileStatus::Completed);
        assert_eq!(serde_json::to_string(&b).unwrap(), old);
    }

    use super::super::{MIGRATIONS, SCHEMA_VERSION};
    use super::*;

    fn rec(id: &str, rel: &str, ms: i64) -> UploadRecord {
        UploadRecord {
            id: id.into(),
            file_name: rel.rsplit('/').next().unwrap().into(),
            rel: rel.into(),
            size: 10,
            uploaded_ms: ms,
            info: serde_json::json!({"format": "wav"}),
            analysis: None,
            signature: None,
        }
    }

    #[test]
    fn a_schema_3_file_gains_the_uploads_and_the_first_upload_of_a_content_wins() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.redb");
        {
            let s = Store::open_migrating(&p, true, &MIGRATIONS[..2]).unwrap();
            assert_eq!(s.schema_version().unwrap(), 3);
            s.event(
                None,
                crate::store::EventKind::Note,
                "before the uploads".into(),
            )
            .unwrap();
        }
        let s = Store::open(&p, false).unwrap();
        assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
        assert_eq!(s.events(None).unwrap().len(), 1);
        assert!(s.uploads().unwrap().is_empty());
        let a = rec("aa", "uploads/2026/11/25/a.wav", 2);
        assert_eq!(s.add_upload(&a).unwrap(), a);
        // The same content under another name: the first record is what stays.
        let again = rec("aa", "uploads/2026/11/25/b.wav", 3);
        assert_eq!(s.add_upload(&again).unwrap(), a);
        let b = rec("bb", "uploads/2026/11/24/c.wav", 1);
        s.add_upload(&b).unwrap();
        let ids: Vec<String> = s.uploads().unwrap().into_iter().map(|r| r.id).collect();
        assert_eq!(ids, ["bb", "aa"], "oldest first");
        s.set_upload_analysis("aa", serde_json::json!({"loudness": -14.0}))
            .unwrap();
        assert_eq!(
            s.upload("aa").unwrap().unwrap().analysis,
            Some(serde_json::json!({"loudness": -14.0}))
        );
        assert!(s.upload("cc").unwrap().is_none());
        assert!(s.check().unwrap().is_empty());
    }

    #[test]
    fn a_schema_4_file_gains_the_analyses_and_its_uploads_read_without_a_signature() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.redb");
        {
            let s = Store::open_migrating(&p, true, &MIGRATIONS[..3]).unwrap();
            assert_eq!(s.schema_version().unwrap(), 4);
            // An upload as schema 4 wrote it: no `signature` field.
            let mut v = serde_json::to_value(rec("aa", "uploads/2026/11/25/a.wav", 1)).unwrap();
            v.as_object_mut().unwrap().remove("signature");
            s.write(|tx| {
                tx.open_table(UPLOADS)?
                    .insert("aa", serde_json::to_vec(&v).unwrap().as_slice())?;
                Ok(())
            })
            .unwrap();
        }
        let s = Store::open(&p, false).unwrap();
        assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
        let up = s.upload("aa").unwrap().expect("read without a signature");
        assert_eq!(up.signature, None);
        let a = AnalysisRecord {
            id: 0,
            file_id: "aa".into(),
            file_name: "a.wav".into(),
            genre: Some("techno".into()),
            recommendation_level: "gentle".into(),
            created_ms: 5,
            comparison: Some(serde_json::json!({"bands": []})),
        };
        let first = s.add_analysis(a.clone()).unwrap();
        let second = s.add_analysis(a.clone()).unwrap();
        assert_eq!((first.id, second.id), (1, 2));
        assert_eq!(
            s.analysis(1).unwrap().unwrap(),
            AnalysisRecord { id: 1, ..a }
        );
        assert!(s.analysis(3).unwrap().is_none());
        assert!(s.check().unwrap().is_empty());
    }
}
