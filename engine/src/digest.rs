//! What a file's content is known by: its BLAKE3 digest (the store's key for jobs, uploads and
//! references, so the same content is never done twice).

use std::path::Path;

/// Hash a file's content (BLAKE3, hex).
pub fn hash_file(path: &Path) -> std::io::Result<String> {
    let mut h = blake3::Hasher::new();
    h.update_reader(std::fs::File::open(path)?)?;
    Ok(h.finalize().to_hex().to_string())
}
