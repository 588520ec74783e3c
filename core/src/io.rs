//! Files written whole or not at all: every writer in the workspace (encoders' outputs, the
//! pictures, reports, the effect cache, moved sources) goes through [`AtomicFile`], so a reader
//! never sees a half-written file under its final name.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

/// An I/O error on a named file.
#[derive(Debug, thiserror::Error)]
#[error("{}: cannot write: {source}", path.display())]
pub struct FileError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// Whether `name` is a temporary of [`AtomicFile`] (`.NAME.sluice-PID-N.part`) whose process is
/// gone: not this one, and not running. Only where `/proc` tells (Linux); elsewhere nothing is
/// taken for stale.
pub fn stale_temporary(name: &str) -> bool {
    let pid = name
        .strip_prefix('.')
        .and_then(|n| n.strip_suffix(".part"))
        .and_then(|n| n.rsplit_once(".sluice-"))
        .and_then(|(_, tail)| tail.split_once('-'))
        .and_then(|(pid, _)| pid.parse::<u32>().ok());
    pid.is_some_and(|pid| {
        pid != std::process::id()
            && Path::new("/proc/self").exists()
            && !Path::new(&format!("/proc/{pid}")).exists()
    })
}

/// Removes the stale temporaries ([`stale_temporary`]) directly in `dir` (not in its
/// subfolders), left by a process killed while it wrote there: how many.
pub fn sweep_stale(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter(|e| stale_temporary(&e.file_name().to_string_lossy()))
        .filter(|e| std::fs::remove_file(e.path()).is_ok())
        .count()
}

/// A temporary file beside `dest`, renamed onto it by [`AtomicFile::commit`]. Dropped without
/// a commit (an error, a panic, a cancelled job), it removes itself: no partial file is ever
/// left under the destination's name, and an existing file there is untouched until the
/// rename.
#[derive(Debug)]
pub struct AtomicFile {
    dest: PathBuf,
    temp: PathBuf,
    overwrite: bool,
    committed: bool,
}

impl AtomicFile {
    /// Create the temporary file. With `overwrite` false an existing `dest` is an error (now,
    /// and again at commit time).
    pub fn create(dest: &Path, overwrite: bool) -> Result<(AtomicFile, File), FileError> {
        let io = |source| FileError {
            path: dest.to_path_buf(),
            source,
        };
        if !overwrite && dest.exists() {
            return Err(io(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "the file exists (choose another name, or allow overwriting)",
            )));
        }
        let dir = match dest.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "output".into());
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        for _ in 0..100 {
            let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let temp = dir.join(format!(".{name}.sluice-{}-{n}.part", std::process::id()));
            match OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&temp)
            {
                Ok(f) => {
                    return Ok((
                        AtomicFile {
                            dest: dest.to_path_buf(),
                            temp,
                            overwrite,
                            committed: false,
                        },
                        f,
                    ));
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io(e)),
            }
        }
        Err(io(std::io::Error::other("cannot create a temporary file")))
    }

    /// Write `bytes` to `dest` (its folder made if need be) through a temporary file, replacing
    /// what was there only once everything is on disk.
    pub fn write(dest: &Path, bytes: &[u8]) -> Result<u64, FileError> {
        use std::io::Write;
        if let Some(dir) = dest.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| FileError {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let (atomic, mut f) = AtomicFile::create(dest, true)?;
        f.write_all(bytes).map_err(|source| FileError {
            path: dest.to_path_buf(),
            source,
        })?;
        drop(f);
        atomic.commit()
    }

    /// The temporary file's path (tags are written there before the commit).
    pub fn temp_path(&self) -> &Path {
        &self.temp
    }

    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// Flush to disk and rename onto the destination.
    pub fn commit(mut self) -> Result<u64, FileError> {
        let io = |source| FileError {
            path: self.dest.clone(),
            source,
        };
        let f = File::open(&self.temp).map_err(io)?;
        f.sync_all().map_err(io)?;
        let size = f.metadata().map_err(io)?.len();
        drop(f);
        if self.overwrite {
            std::fs::rename(&self.temp, &self.dest).map_err(io)?;
        } else {
            // A hard link fails if the destination appeared meanwhile: never clobber it.
            std::fs::hard_link(&self.temp, &self.dest).map_err(|e| {
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    io(std::io::Error::new(
                        std::io::ErrorKind::AlreadyExists,
                        "the file appeared while rendering; it was left alone",
                    ))
                } else {
                    io(e)
                }
            })?;
            let _ = std::fs::remove_file(&self.temp);
        }
        self.committed = true;
        // The rename itself reaches the disk with the folder.
        if let Some(dir) = self.dest.parent().filter(|d| !d.as_os_str().is_empty())
            && let Ok(d) = File::open(dir)
        {
            let _ = d.sync_all();
        }
        Ok(size)
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

/// A copy of `e`: the same OS error code where it has one, else the same kind and message.
pub fn same_io_error(e: &std::io::Error) -> std::io::Error {
    match e.raw_os_error() {
        Some(code) => std::io::Error::from_raw_os_error(code),
        None => std::io::Error::new(e.kind(), e.to_string()),
    }
}

/// The first I/O error in `e`'s chain of causes (itself included), if any: what tells a
/// failure of the machine (a full disk, a permission) from a failure of the data.
pub fn io_cause<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a std::io::Error> {
    let mut cur = Some(e);
    while let Some(c) = cur {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            return Some(io);
        }
        cur = c.source();
    }
    None
}
