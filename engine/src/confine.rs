//! Every path the host writes or deletes stays inside its root, after symbolic links.
//!
//! Templates and file names are sanitized (no `..`, no separators), but a folder on the way
//! may be a symbolic link that leads out of the root. So folders are made one step at a time:
//! a step that exists must be a folder or a link to a folder inside the root, a missing step
//! is created as a real folder, and the parent of the file is checked once more, canonical,
//! right before the write. A link inside the root that points inside the root is fine.

use std::path::{Component, Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ConfineError {
    #[error(
        "{path}: refused: {link} is a symbolic link to {target}, outside the root {root}; outputs never leave the root"
    )]
    Escapes {
        path: PathBuf,
        link: PathBuf,
        target: PathBuf,
        root: PathBuf,
    },
    #[error("{path}: refused: {what}")]
    Refused { path: PathBuf, what: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl ConfineError {
    /// An I/O failure (worth retrying) rather than a refusal.
    pub fn is_io(&self) -> bool {
        matches!(self, ConfineError::Io { .. })
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ConfineError + '_ {
    move |source| ConfineError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// `root/rel` with its folders made, every step checked to stay inside the root.
pub fn prepare(root: &Path, rel: &Path) -> Result<PathBuf, ConfineError> {
    walk(root, rel, true)
}

/// `root/rel` if every existing step of it stays inside the root (nothing is created): for
/// deletions.
pub fn resolve(root: &Path, rel: &Path) -> Result<PathBuf, ConfineError> {
    walk(root, rel, false)
}

fn walk(root: &Path, rel: &Path, create: bool) -> Result<PathBuf, ConfineError> {
    let target = root.join(rel);
    let rel = target.strip_prefix(root).unwrap_or(rel);
    let refuse = |what: &str| ConfineError::Refused {
        path: target.clone(),
        what: what.to_string(),
    };
    if rel.is_absolute() || rel.components().any(|c| !matches!(c, Component::Normal(_))) {
        return Err(refuse("not a plain path inside the root"));
    }
    let canon_root = root.canonicalize().map_err(io(root))?;
    let inside = |link: &Path| -> Result<(), ConfineError> {
        let t = link.canonicalize().map_err(io(link))?;
        if t.starts_with(&canon_root) {
            Ok(())
        } else {
            Err(ConfineError::Escapes {
                path: target.clone(),
                link: link.to_path_buf(),
                target: t,
                root: canon_root.clone(),
            })
        }
    };
    let mut at = root.to_path_buf();
    let parts: Vec<_> = rel.components().collect();
    for (i, c) in parts.iter().enumerate() {
        at.push(c);
        let last = i + 1 == parts.len();
        match std::fs::symlink_metadata(&at) {
            Ok(m) if m.file_type().is_symlink() => {
                inside(&at)?;
                if !last && !at.is_dir() {
                    return Err(refuse(&format!("{} is not a folder", at.display())));
                }
            }
            Ok(m) if !last && !m.is_dir() => {
                return Err(refuse(&format!("{} is not a folder", at.display())));
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if last || !create {
                    break;
                }
                match std::fs::create_dir(&at) {
                    Ok(()) => {}
                    // Made meanwhile (another worker): looked at again below.
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        if std::fs::symlink_metadata(&at).is_ok_and(|m| m.file_type().is_symlink())
                        {
                            inside(&at)?;
                        }
                    }
                    Err(e) => return Err(io(&at)(e)),
                }
            }
            Err(e) => return Err(io(&at)(e)),
        }
    }
    // Once more, the whole way, right before the caller writes.
    if let Some(parent) = target.parent()
        && parent.exists()
    {
        inside(parent)?;
    }
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_out_of_the_root_are_refused_and_links_inside_it_are_fine() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(root.join("outbox/real")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("outbox/linkout")).unwrap();
        std::os::unix::fs::symlink(root.join("outbox/real"), root.join("outbox/linkin")).unwrap();

        let e = prepare(&root, Path::new("outbox/linkout/a/b.flac")).unwrap_err();
        assert!(matches!(e, ConfineError::Escapes { .. }), "{e}");
        assert!(e.to_string().contains("outside the root"), "{e}");
        assert!(!outside.join("a").exists(), "nothing made outside");
        assert!(resolve(&root, Path::new("outbox/linkout/x.wav")).is_err());

        let p = prepare(&root, Path::new("outbox/linkin/a/b.flac")).unwrap();
        assert!(root.join("outbox/real/a").is_dir());
        assert_eq!(p, root.join("outbox/linkin/a/b.flac"));
        let p = prepare(&root, Path::new("new/deep/x.wav")).unwrap();
        assert!(p.parent().unwrap().is_dir());
        assert!(prepare(&root, Path::new("../x.wav")).is_err());
        // A file where a folder should be.
        std::fs::write(root.join("flat"), b"x").unwrap();
        assert!(prepare(&root, Path::new("flat/x.wav")).is_err());
    }
}
