//! Settling: a file found in a watch folder is taken once it has kept its size and modification
//! time for the settle time, can be opened, and no program holds it open for writing (a writer
//! that pauses longer than the settle time is still a writer). [`Settler`] is that rule as a
//! state machine fed what the filesystem shows ([`Filesystem`]) and the time, so it is tested
//! with a clock and a filesystem of its own instead of sleeping; the watch host feeds it the
//! disk ([`Disk`]) and `Instant::now()`.

use crate::writers::{self, FileId};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What one look at a file shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Look {
    pub size: u64,
    pub mtime_ns: i128,
    /// Device and inode: which file it is, for the open-for-writing check.
    pub id: FileId,
}

impl Look {
    pub fn of(m: &std::fs::Metadata) -> Look {
        Look {
            size: m.len(),
            mtime_ns: mtime_ns(m),
            id: writers::id(m),
        }
    }
}

/// A file's modification time in nanoseconds since the epoch (0 when unknown).
pub fn mtime_ns(m: &std::fs::Metadata) -> i128 {
    m.modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as i128)
}

/// What the settler needs to know of the filesystem.
pub trait Filesystem {
    /// The file at `path`, when it is a regular file (not a link, not gone).
    fn look(&self, path: &Path) -> Option<Look>;
    /// Whether it can be opened for reading, and why not.
    fn open(&self, path: &Path) -> std::io::Result<()>;
    /// Which of these files some program holds open for writing.
    fn open_for_writing(&self, ids: &HashSet<FileId>) -> HashSet<FileId>;
}

/// The real filesystem.
pub struct Disk;

impl Filesystem for Disk {
    fn look(&self, path: &Path) -> Option<Look> {
        std::fs::symlink_metadata(path)
            .ok()
            .filter(std::fs::Metadata::is_file)
            .map(|m| Look::of(&m))
    }
    fn open(&self, path: &Path) -> std::io::Result<()> {
        std::fs::File::open(path).map(drop)
    }
    fn open_for_writing(&self, ids: &HashSet<FileId>) -> HashSet<FileId> {
        writers::open_for_writing(ids)
    }
}

/// A file that settled, as it was when it did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settled {
    pub path: PathBuf,
    pub size: u64,
    pub mtime_ns: i128,
}

/// Something worth telling about a settling file, said once per spell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    /// Quiet, but it cannot be opened (the reason): left where it is, looked at again.
    Unreadable(PathBuf, String),
    /// Readable again after [`Note::Unreadable`].
    Readable(PathBuf),
    /// Quiet, but another program still has it open for writing.
    Writing(PathBuf),
}

/// A file waiting to settle.
#[derive(Debug, Clone)]
struct Waiting {
    size: u64,
    mtime_ns: i128,
    /// When it last changed, or was last found held by a writer.
    since: Instant,
    unreadable: bool,
    writing: bool,
}

/// The files waiting to settle.
#[derive(Debug)]
pub struct Settler {
    settle: Duration,
    files: HashMap<PathBuf, Waiting>,
}

impl Settler {
    pub fn new(settle: Duration) -> Settler {
        Settler {
            settle,
            files: HashMap::new(),
        }
    }

    /// Whether `path` is waiting.
    pub fn contains(&self, path: &Path) -> bool {
        self.files.contains_key(path)
    }

    /// Whether a file directly in `dir` is waiting.
    pub fn waiting_in(&self, dir: &Path) -> bool {
        self.files.keys().any(|p| p.parent() == Some(dir))
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Start settling `path`, as `look` shows it at `now` (nothing when it waits already).
    pub fn watch(&mut self, path: PathBuf, look: &Look, now: Instant) {
        self.files.entry(path).or_insert(Waiting {
            size: look.size,
            mtime_ns: look.mtime_ns,
            since: now,
            unreadable: false,
            writing: false,
        });
    }

    /// Look at every waiting file at `now`: a file that changed waits the settle time again
    /// from now; one that is gone (or no longer a regular file) is forgotten; one quiet for the
    /// settle time settles if it opens and no program writes it (one held by a writer waits
    /// another settle time). Returns the settled files (forgotten here) and what to tell.
    pub fn step(&mut self, now: Instant, fs: &impl Filesystem) -> (Vec<Settled>, Vec<Note>) {
        let mut notes = Vec::new();
        let mut quiet: Vec<(PathBuf, Look)> = Vec::new();
        let settle = self.settle;
        self.files.retain(|path, w| {
            let Some(look) = fs.look(path) else {
                return false;
            };
            if look.size != w.size || look.mtime_ns != w.mtime_ns {
                w.size = look.size;
                w.mtime_ns = look.mtime_ns;
                w.since = now;
            } else if now.saturating_duration_since(w.since) >= settle {
                match fs.open(path) {
                    Ok(()) => {
                        if w.unreadable {
                            w.unreadable = false;
                            notes.push(Note::Readable(path.clone()));
                        }
                        quiet.push((path.clone(), look));
                    }
                    Err(e) => {
                        if !w.unreadable {
                            w.unreadable = true;
                            notes.push(Note::Unreadable(path.clone(), e.to_string()));
                        }
                    }
                }
            }
            true
        });
        let mut settled = Vec::new();
        if quiet.is_empty() {
            return (settled, notes);
        }
        let busy = fs.open_for_writing(&quiet.iter().map(|(_, l)| l.id).collect());
        for (path, look) in quiet {
            if busy.contains(&look.id) {
                if let Some(w) = self.files.get_mut(&path) {
                    if !w.writing {
                        w.writing = true;
                        notes.push(Note::Writing(path.clone()));
                    }
                    w.since = now;
                }
            } else {
                self.files.remove(&path);
                settled.push(Settled {
                    path,
                    size: look.size,
                    mtime_ns: look.mtime_ns,
                });
            }
        }
        settled.sort_by(|a, b| a.path.cmp(&b.path));
        (settled, notes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    /// A filesystem in memory: files by path, those that cannot be opened, and those a writer
    /// holds.
    #[derive(Default)]
    struct Fake {
        files: RefCell<HashMap<PathBuf, Look>>,
        unreadable: RefCell<HashSet<PathBuf>>,
        writing: RefCell<HashSet<FileId>>,
    }

    impl Fake {
        fn write(&self, p: &str, size: u64, mtime_ns: i128) -> Look {
            let mut files = self.files.borrow_mut();
            let ino = files
                .get(Path::new(p))
                .map_or(files.len() as u64 + 1, |l| l.id.1);
            let look = Look {
                size,
                mtime_ns,
                id: (1, ino),
            };
            files.insert(p.into(), look);
            look
        }
        fn remove(&self, p: &str) {
            self.files.borrow_mut().remove(Path::new(p));
        }
    }

    impl Filesystem for Fake {
        fn look(&self, path: &Path) -> Option<Look> {
            self.files.borrow().get(path).copied()
        }
        fn open(&self, path: &Path) -> std::io::Result<()> {
            if self.unreadable.borrow().contains(path) {
                Err(std::io::Error::from(std::io::ErrorKind::PermissionDenied))
            } else {
                Ok(())
            }
        }
        fn open_for_writing(&self, ids: &HashSet<FileId>) -> HashSet<FileId> {
            ids.intersection(&self.writing.borrow()).copied().collect()
        }
    }

    const SETTLE: Duration = Duration::from_secs(2);

    fn at(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    fn paths(s: &[Settled]) -> Vec<&str> {
        s.iter().map(|s| s.path.to_str().unwrap()).collect()
    }

    #[test]
    fn a_quiet_file_settles_after_the_settle_time_and_not_before() {
        let (fs, t0) = (Fake::default(), Instant::now());
        let mut s = Settler::new(SETTLE);
        let look = fs.write("a.wav", 100, 1);
        s.watch("a.wav".into(), &look, t0);
        assert!(s.step(at(t0, 1999), &fs).0.is_empty());
        let (settled, notes) = s.step(at(t0, 2000), &fs);
        assert_eq!(
            settled,
            [Settled {
                path: "a.wav".into(),
                size: 100,
                mtime_ns: 1
            }]
        );
        assert!(notes.is_empty());
        assert!(s.is_empty(), "a settled file is forgotten");
        // Watching it again after it settled starts afresh.
        s.watch("a.wav".into(), &look, at(t0, 2100));
        assert!(s.step(at(t0, 3000), &fs).0.is_empty());
    }

    #[test]
    fn every_change_starts_the_wait_again() {
        let (fs, t0) = (Fake::default(), Instant::now());
        let mut s = Settler::new(SETTLE);
        s.watch("grow.wav".into(), &fs.write("grow.wav", 10, 1), t0);
        // Growing every 1.5 s (slower than any poll, faster than the settle time).
        for k in 1..=5u64 {
            fs.write("grow.wav", 10 + k, 1 + k as i128);
            assert!(
                s.step(at(t0, 1500 * k), &fs).0.is_empty(),
                "taken while growing"
            );
        }
        // The same size but a new time (rewritten in place) is a change too.
        fs.write("grow.wav", 15, 99);
        assert!(s.step(at(t0, 8000), &fs).0.is_empty());
        assert!(s.step(at(t0, 9999), &fs).0.is_empty());
        let (settled, _) = s.step(at(t0, 10_000), &fs);
        assert_eq!(settled[0].size, 15);
        assert_eq!(settled[0].mtime_ns, 99);
    }

    #[test]
    fn a_file_held_open_for_writing_waits_until_it_is_closed() {
        let (fs, t0) = (Fake::default(), Instant::now());
        let mut s = Settler::new(SETTLE);
        let look = fs.write("rec.wav", 500, 7);
        fs.writing.borrow_mut().insert(look.id);
        s.watch("rec.wav".into(), &look, t0);
        // Quiet for the settle time, and longer, but a writer holds it: said once.
        let (settled, notes) = s.step(at(t0, 2000), &fs);
        assert!(settled.is_empty());
        assert_eq!(notes, [Note::Writing("rec.wav".into())]);
        for ms in [3000, 4000, 30_000] {
            let (settled, notes) = s.step(at(t0, ms), &fs);
            assert!(settled.is_empty() && notes.is_empty(), "at {ms} ms");
        }
        // Closed: taken a settle time after the last time it was found held.
        fs.writing.borrow_mut().clear();
        assert!(s.step(at(t0, 31_999), &fs).0.is_empty());
        assert_eq!(paths(&s.step(at(t0, 32_000), &fs).0), ["rec.wav"]);
    }

    #[test]
    fn an_unreadable_file_is_said_once_and_taken_when_it_can_be_read() {
        let (fs, t0) = (Fake::default(), Instant::now());
        let mut s = Settler::new(SETTLE);
        s.watch("locked.wav".into(), &fs.write("locked.wav", 1, 1), t0);
        fs.unreadable.borrow_mut().insert("locked.wav".into());
        let (settled, notes) = s.step(at(t0, 2000), &fs);
        assert!(settled.is_empty());
        assert!(matches!(&notes[..], [Note::Unreadable(p, why)]
            if p == Path::new("locked.wav") && why.contains("permission")));
        assert!(s.step(at(t0, 5000), &fs).1.is_empty(), "said once");
        fs.unreadable.borrow_mut().clear();
        let (settled, notes) = s.step(at(t0, 6000), &fs);
        assert_eq!(paths(&settled), ["locked.wav"]);
        assert_eq!(notes, [Note::Readable("locked.wav".into())]);
    }

    #[test]
    fn a_file_that_goes_is_forgotten_and_others_settle_on_their_own_clocks() {
        let (fs, t0) = (Fake::default(), Instant::now());
        let mut s = Settler::new(SETTLE);
        s.watch("gone.wav".into(), &fs.write("gone.wav", 1, 1), t0);
        s.watch("b.wav".into(), &fs.write("b.wav", 1, 1), at(t0, 500));
        s.watch("a.wav".into(), &fs.write("a.wav", 1, 1), at(t0, 1000));
        // Watching a waiting file again does not restart its wait.
        s.watch("b.wav".into(), &fs.write("b.wav", 1, 1), at(t0, 1900));
        fs.remove("gone.wav");
        assert!(s.step(at(t0, 2000), &fs).0.is_empty());
        assert!(!s.contains(Path::new("gone.wav")));
        assert_eq!(paths(&s.step(at(t0, 2500), &fs).0), ["b.wav"]);
        assert_eq!(paths(&s.step(at(t0, 3000), &fs).0), ["a.wav"]);
        assert!(s.is_empty());
    }

    #[test]
    fn the_disk_shows_regular_files_only() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("x.wav");
        std::fs::write(&f, b"1234").unwrap();
        let look = Disk.look(&f).unwrap();
        assert_eq!(look.size, 4);
        assert!(Disk.open(&f).is_ok());
        assert!(Disk.look(dir.path()).is_none(), "a folder");
        assert!(Disk.look(&dir.path().join("none")).is_none(), "nothing");
        let link = dir.path().join("link.wav");
        std::os::unix::fs::symlink(&f, &link).unwrap();
        assert!(Disk.look(&link).is_none(), "a link");
        // Held open for writing by this process.
        let held = std::fs::OpenOptions::new().append(true).open(&f).unwrap();
        let ids: HashSet<FileId> = [look.id].into();
        assert_eq!(Disk.open_for_writing(&ids), ids);
        drop(held);
        assert!(Disk.open_for_writing(&ids).is_empty());
    }
}
