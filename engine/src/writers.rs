//! Whether a file is still being written: on Linux every process's open files are listed in
//! `/proc`, each with the mode it was opened in. A file that some process holds open for
//! writing is not complete, however long it has been quiet (a network copy that stalls, a DAW
//! that bounces in bursts). Only the processes the host may look at are seen: all of them as
//! root, otherwise those of its own user, which is who drops files into its folders.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// A file's identity: device and inode.
pub type FileId = (u64, u64);

pub fn id(m: &std::fs::Metadata) -> FileId {
    (m.dev(), m.ino())
}

/// Of `candidates`, those that some process has open for writing (write-only or read-write).
pub fn open_for_writing(candidates: &HashSet<FileId>) -> HashSet<FileId> {
    let mut found = HashSet::new();
    if candidates.is_empty() {
        return found;
    }
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return found;
    };
    for p in procs.flatten() {
        let name = p.file_name();
        if !name.as_encoded_bytes().iter().all(u8::is_ascii_digit) {
            continue;
        }
        let dir = p.path();
        let Ok(fds) = std::fs::read_dir(dir.join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            // The link's target: stat follows it to the open file.
            let Ok(m) = std::fs::metadata(fd.path()) else {
                continue;
            };
            let fid = id(&m);
            if !m.is_file() || !candidates.contains(&fid) || found.contains(&fid) {
                continue;
            }
            if writable(&dir.join("fdinfo").join(fd.file_name())) {
                found.insert(fid);
            }
        }
    }
    found
}

/// `flags:` in an fdinfo file is octal; its low two bits are the access mode.
fn writable(fdinfo: &Path) -> bool {
    std::fs::read_to_string(fdinfo)
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("flags:"))
                .and_then(|f| u32::from_str_radix(f.trim(), 8).ok())
        })
        .is_some_and(|flags| matches!(flags & 3, 1 | 2))
}

/// Whether `path` is open for writing by any process the host can see.
pub fn is_being_written(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| {
        let fid = id(&m);
        open_for_writing(&HashSet::from([fid])).contains(&fid)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_file_open_for_writing_is_seen_and_closed_it_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.wav");
        let mut f = std::fs::File::create(&p).unwrap();
        f.write_all(b"RIFF").unwrap();
        assert!(is_being_written(&p));
        // Open for reading alongside: still being written.
        let r = std::fs::File::open(&p).unwrap();
        assert!(is_being_written(&p));
        drop(f);
        assert!(!is_being_written(&p), "only a reader holds it now");
        drop(r);
        let rw = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&p)
            .unwrap();
        assert!(is_being_written(&p), "read-write counts as writing");
        drop(rw);
        assert!(!is_being_written(&p));
    }
}
