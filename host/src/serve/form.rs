//! Multipart forms: at most one audio file, streamed to a temporary file in
//! `uploads/.incoming/` while it is hashed (never whole in memory), and short text fields.

use super::ErrorKind;
use super::blocking;
use super::{ApiError, AppState};
use crate::confine;
use axum::extract::Multipart;
use axum::extract::multipart::{MultipartError, MultipartRejection};
use axum::http::StatusCode;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::io::AsyncWriteExt;

/// The longest text field a form may carry, bytes.
pub(super) const MAX_TEXT: usize = 4096;

/// Temporary files of uploads in progress, numbered in this process.
static INCOMING: AtomicU64 = AtomicU64::new(0);

/// A temporary file removed when dropped unless kept.
pub(super) struct Incoming {
    pub path: PathBuf,
}

impl Drop for Incoming {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Link `tmp` into `dir` (relative to `root`) as `name`, or `stem-2.ext`, `stem-3.ext`... when
/// the name is taken: a hard link never replaces what is there, so the name is ours once it
/// succeeds. Returns the path relative to the root and the full path.
pub(super) fn link_unique(
    root: &Path,
    dir: &Path,
    name: &str,
    tmp: &Path,
) -> Result<(PathBuf, PathBuf), ApiError> {
    let (stem, ext) = match name.rsplit_once('.') {
        Some((s, e)) if !s.is_empty() => (s, format!(".{e}")),
        _ => (name, String::new()),
    };
    for k in 1..10_000 {
        let rel = if k == 1 {
            dir.join(name)
        } else {
            dir.join(format!("{stem}-{k}{ext}"))
        };
        // A folder of the root's that leads out of it is the root's fault, not the request's.
        let dest = confine::prepare(root, &rel).map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorKind::PathEscape,
                format!("{}: {e}", rel.display()).replace(&root.display().to_string(), "(root)"),
            )
        })?;
        match std::fs::hard_link(tmp, &dest) {
            Ok(()) => return Ok((rel, dest)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(ApiError::internal(format!("{}: {e}", rel.display()))),
        }
    }
    Err(ApiError::internal(format!(
        "no free name for {name} in {}",
        dir.display()
    )))
}

/// The file a form carried.
pub(super) struct Received {
    pub tmp: Incoming,
    /// The upload's slot, given back when the upload is kept or refused.
    pub _slot: tokio::sync::OwnedSemaphorePermit,
    /// The client's file name, made safe ([`safe_name`]).
    pub name: String,
    /// BLAKE3 of the content, hex.
    pub hash: String,
    pub size: u64,
}

/// A form as received.
pub(super) struct Form {
    pub file: Option<Received>,
    /// The text fields, by name (the last of a repeated name wins).
    pub text: HashMap<String, String>,
}

impl Form {
    /// A text field, trimmed; `None` when absent or blank.
    pub fn get(&self, k: &str) -> Option<String> {
        self.text
            .get(k)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    }

    /// The file, or a 400 naming the field it is expected in; an empty file is refused.
    pub fn take_file(&mut self, field: &str) -> Result<Received, ApiError> {
        let f = self.file.take().ok_or_else(|| {
            ApiError::bad_request(
                ErrorKind::NoFile,
                format!(
                    "no `{field}` field in the form: send the audio as multipart field `{field}`"
                ),
            )
        })?;
        if f.size == 0 {
            return Err(ApiError::bad_request(
                ErrorKind::UnsupportedAudio,
                format!("{}: the file is empty", f.name),
            ));
        }
        Ok(f)
    }

    /// A boolean field (`true/false`, `1/0`, `yes/no`, `on/off`), `default` when absent.
    pub fn flag(&self, k: &str, default: bool) -> Result<bool, ApiError> {
        match self.get(k).map(|v| v.to_ascii_lowercase()).as_deref() {
            None => Ok(default),
            Some("true" | "1" | "yes" | "on") => Ok(true),
            Some("false" | "0" | "no" | "off") => Ok(false),
            Some(other) => Err(ApiError::bad_request(
                ErrorKind::BadField,
                format!("{k}: `{other}` is not true or false"),
            )),
        }
    }

    /// A finite number field, `None` when absent.
    pub fn number(&self, k: &str) -> Result<Option<f64>, ApiError> {
        self.get(k)
            .map(|v| {
                v.parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite())
                    .ok_or_else(|| {
                        ApiError::bad_request(
                            ErrorKind::BadField,
                            format!("{k}: `{v}` is not a number"),
                        )
                    })
            })
            .transpose()
    }
}

/// The last component of a client's file name, without control characters and never hidden.
pub(super) fn safe_name(given: Option<&str>) -> String {
    let last = given.unwrap_or("").rsplit(['/', '\\']).next().unwrap_or("");
    let clean: String = last.chars().filter(|c| !c.is_control()).collect();
    let clean = clean.trim().trim_start_matches('.').to_string();
    let clean: String = clean.chars().take(200).collect();
    if clean.is_empty() {
        "upload".to_string()
    } else {
        clean
    }
}

pub(super) fn too_large(max: u64) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        ErrorKind::TooLarge,
        format!(
            "the upload is larger than this server accepts ({} MB; `sluice serve --max-upload-mb`)",
            max / 1_000_000
        ),
    )
}

/// Reads a form whose file (if `file_field` is given) arrives in that field; a file in any
/// other field is refused, as is a second file.
pub(super) async fn receive(
    st: &AppState,
    form: Result<Multipart, MultipartRejection>,
    file_field: Option<&str>,
) -> Result<Form, ApiError> {
    let mut form = form?;
    let max = st.max_upload_bytes;
    let multipart = |e: MultipartError| {
        let status = e.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            too_large(max)
        } else {
            ApiError::new(status, ErrorKind::BadMultipart, e.body_text())
        }
    };
    let mut out = Form {
        file: None,
        text: HashMap::new(),
    };
    // A client that sends nothing for `request_timeout` in the middle of its form (holding an
    // upload slot, say) is cut off.
    let idle = st.request_timeout;
    let timeout = || {
        ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            ErrorKind::Timeout,
            format!(
                "nothing arrived for {} s in the middle of the form",
                idle.as_secs()
            ),
        )
    };
    while let Some(mut field) = tokio::time::timeout(idle, form.next_field())
        .await
        .map_err(|_| timeout())?
        .map_err(multipart)?
    {
        let name = field.name().unwrap_or("").to_string();
        if Some(name.as_str()) == file_field {
            if out.file.is_some() {
                return Err(ApiError::bad_request(
                    ErrorKind::BadMultipart,
                    format!("more than one `{name}` field: send one file per request"),
                ));
            }
            let slot = Arc::clone(&st.uploads).try_acquire_owned().map_err(|_| {
                ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    ErrorKind::Busy,
                    format!(
                        "{} uploads are being received: try again when one has finished (`sluice serve --max-uploads`)",
                        st.max_uploads
                    ),
                )
            })?;
            let file_name = safe_name(field.file_name());
            let n = INCOMING.fetch_add(1, Ordering::Relaxed);
            let rel = Path::new("uploads")
                .join(".incoming")
                .join(format!("{}-{n}-{file_name}", std::process::id()));
            let root = st.root.clone();
            let path = blocking(move || {
                confine::prepare(&root, &rel).map_err(|e| ApiError::internal(e.to_string()))
            })
            .await?;
            let tmp = Incoming { path };
            let mut file = tokio::fs::File::create(&tmp.path)
                .await
                .map_err(ApiError::internal)?;
            // Written in pieces of at most 64 KB (tokio copies each write into a buffer of its
            // own: up to 2 MB per upload otherwise).
            file.set_max_buf_size(64 << 10);
            let mut hasher = blake3::Hasher::new();
            let mut size = 0u64;
            while let Some(chunk) = tokio::time::timeout(idle, field.chunk())
                .await
                .map_err(|_| timeout())?
                .map_err(multipart)?
            {
                size += chunk.len() as u64;
                if size > max {
                    return Err(too_large(max));
                }
                hasher.update(&chunk);
                file.write_all(&chunk).await.map_err(ApiError::internal)?;
            }
            file.sync_all().await.map_err(ApiError::internal)?;
            drop(file);
            out.file = Some(Received {
                tmp,
                _slot: slot,
                name: file_name,
                hash: hasher.finalize().to_hex().to_string(),
                size,
            });
        } else if field.file_name().is_some() {
            let hint = match file_field {
                Some(f) => format!("the file goes in field `{f}`"),
                None => "this form takes text fields only (upload the file first)".to_string(),
            };
            return Err(ApiError::bad_request(
                ErrorKind::BadMultipart,
                format!("{name}: a file where a text field was expected; {hint}"),
            ));
        } else {
            // Read in chunks so a huge "text" field is refused without being held.
            let mut bytes = Vec::new();
            while let Some(chunk) = tokio::time::timeout(idle, field.chunk())
                .await
                .map_err(|_| timeout())?
                .map_err(multipart)?
            {
                if bytes.len() + chunk.len() > MAX_TEXT {
                    return Err(ApiError::bad_request(
                        ErrorKind::BadField,
                        format!("{name}: longer than {MAX_TEXT} bytes"),
                    ));
                }
                bytes.extend_from_slice(&chunk);
            }
            let text = String::from_utf8(bytes).map_err(|_| {
                ApiError::bad_request(ErrorKind::BadField, format!("{name}: not UTF-8 text"))
            })?;
            out.text.insert(name, text);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::safe_name;

    #[test]
    fn client_file_names_lose_their_folders_and_never_hide() {
        assert_eq!(safe_name(Some("../../etc/passwd")), "passwd");
        assert_eq!(safe_name(Some("C:\\Users\\x\\take 1.wav")), "take 1.wav");
        assert_eq!(safe_name(Some(".hidden.wav")), "hidden.wav");
        assert_eq!(safe_name(Some("a\u{0}b\n.wav")), "ab.wav");
        assert_eq!(safe_name(Some("..")), "upload");
        assert_eq!(safe_name(None), "upload");
    }
}
