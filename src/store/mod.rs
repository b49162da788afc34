//! The durable store: a locked data directory holding a snapshot and a journal of records.
//!
//! The control plane keeps its state in memory and makes every change durable before it
//! acknowledges it: it encodes a change record (opaque bytes here) and calls
//! [`DataDir::append`], which returns only after an fsync. From time to time it encodes its
//! whole state and calls [`DataDir::compact`]. At start, [`DataDir::open`] hands back the latest
//! snapshot and every record after it, for replay.
//!
//! # Directory layout
//!
//! ```text
//! <dir>/LOCK                   exclusive lock, held while a DataDir is open
//! <dir>/snapshot-<gen>.bin     the state as of compaction <gen> (absent for generation 0)
//! <dir>/journal-<gen>.log      records appended after that snapshot
//! <dir>/keys/<name>.key        wrapping keys (see [`keyfile`])
//! ```
//!
//! # Crash safety of compaction
//!
//! `compact` moves from generation `g` to `g+1` in this order, each step durable before the
//! next: (1) write `snapshot-<g+1>.tmp`, fsync; (2) rename it to `snapshot-<g+1>.bin`, fsync
//! the directory — the commit point; (3) write `journal-<g+1>.tmp` (header only), fsync, rename
//! to `journal-<g+1>.log`, fsync the directory; (4) remove `journal-<g>.log` and
//! `snapshot-<g>.bin`, fsync the directory. `open` picks the highest generation with a
//! `.bin` snapshot (or 0), so a crash before (2) keeps generation `g` (its `.tmp` is removed)
//! and a crash after (2) gives `g+1`: its journal is created if missing and older files are
//! removed. Every record of `journal-<g>` is in `snapshot-<g+1>`, since appends and compaction
//! both need `&mut DataDir`.
//!
//! # Failures
//!
//! A failed write or fsync of an append, or a failure after the commit point of a compaction,
//! leaves the on-disk state uncertain: the `DataDir` then refuses every later write with a
//! `StorageException` and must be reopened (which recovers what was durable).

pub mod journal;
pub mod keyfile;
mod lock;
mod mmap;
pub mod snapshot;

use std::fmt;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

pub use snapshot::SnapshotBytes;

use crate::error::KmsError;
use crate::{err, Result};
use journal::{JOURNAL_HEADER_LEN, MAX_RECORD_LEN};

/// An open, exclusively locked data directory.
pub struct DataDir {
    path: PathBuf,
    generation: u64,
    journal: File,
    journal_path: PathBuf,
    /// Current length of the journal file (header included).
    journal_len: u64,
    /// Reused buffer for encoding frames.
    scratch: Vec<u8>,
    /// Set once the on-disk state is uncertain; every later write fails with this message.
    poisoned: Option<String>,
    /// Held (open and locked) for the life of the DataDir; dropping it releases the lock.
    _lock: File,
}

/// What [`DataDir::open`] found on disk.
#[derive(Debug)]
pub struct Recovered {
    /// The latest valid snapshot's payload (memory-mapped), if a compaction ever happened.
    pub snapshot: Option<SnapshotBytes>,
    /// Journal records written after that snapshot, in append order.
    pub records: Vec<Vec<u8>>,
    /// A torn final record that was discarded: the journal file and the offset it was cut at.
    #[cfg(any(test, feature = "internals"))]
    pub dropped_torn_tail: Option<(PathBuf, u64)>,
    /// The generation opened (number of compactions so far).
    #[cfg(any(test, feature = "internals"))]
    pub generation: u64,
}

impl fmt::Debug for DataDir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataDir")
            .field("path", &self.path)
            .field("generation", &self.generation)
            .field("journal_bytes", &self.journal_bytes())
            .field("poisoned", &self.poisoned)
            .finish()
    }
}

/// A `StorageException` for an I/O failure of `what` on `path`.
pub(crate) fn io_error(what: &str, path: &Path, e: io::Error) -> KmsError {
    err!(StorageException, "cannot {what} {}: {e}", path.display())
}

/// Fsyncs directory `dir`, making creations, renames and removals in it durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error("fsync directory", dir, e))
}

/// Creates `dir` (and missing parents) with mode 0700 if it does not exist.
pub(crate) fn create_private_dir(dir: &Path) -> Result<()> {
    match DirBuilder::new().recursive(true).mode(0o700).create(dir) {
        Ok(()) if dir.is_dir() => Ok(()),
        Ok(()) => Err(err!(
            StorageException,
            "data directory {} is not a directory",
            dir.display()
        )),
        Err(e) => Err(io_error("create directory", dir, e)),
    }
}

/// Writes `parts` to a new file `path` (mode 0600, replacing any old one) and fsyncs it.
pub(crate) fn write_file_synced(path: &Path, parts: &[&[u8]]) -> Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| io_error("create", path, e))?;
    for p in parts {
        f.write_all(p).map_err(|e| io_error("write", path, e))?;
    }
    f.sync_all().map_err(|e| io_error("fsync", path, e))
}

fn rename(from: &Path, to: &Path) -> Result<()> {
    fs::rename(from, to).map_err(|e| {
        err!(
            StorageException,
            "cannot rename {} to {}: {e}",
            from.display(),
            to.display()
        )
    })
}

fn snapshot_name(generation: u64) -> String {
    format!("snapshot-{generation}.bin")
}

fn journal_name(generation: u64) -> String {
    format!("journal-{generation}.log")
}

/// The files of a data directory that belong to the store, by kind and generation.
#[derive(Default)]
struct Listing {
    snapshots: Vec<u64>,
    journals: Vec<u64>,
    /// Leftover `.tmp` files of interrupted writes.
    temps: Vec<PathBuf>,
}

/// Parses `<prefix><decimal gen><suffix>` strictly (no sign, no leading zeros).
fn parse_gen(name: &str, prefix: &str, suffix: &str) -> Option<u64> {
    let digits = name.strip_prefix(prefix)?.strip_suffix(suffix)?;
    let generation: u64 = digits.parse().ok()?;
    (generation.to_string() == digits).then_some(generation)
}

impl Listing {
    fn read(dir: &Path) -> Result<Listing> {
        let mut l = Listing::default();
        let entries = fs::read_dir(dir).map_err(|e| io_error("list", dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| io_error("list", dir, e))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(g) = parse_gen(name, "snapshot-", ".bin") {
                l.snapshots.push(g);
            } else if let Some(g) = parse_gen(name, "journal-", ".log") {
                l.journals.push(g);
            } else if parse_gen(name, "snapshot-", ".tmp").is_some()
                || parse_gen(name, "journal-", ".tmp").is_some()
            {
                l.temps.push(dir.join(name));
            }
        }
        Ok(l)
    }
}

impl DataDir {
    /// Opens (creating it with mode 0700 if missing) and locks the data directory `path`, and
    /// recovers its contents. A torn final journal record is truncated away and reported; any
    /// other damage fails with a `StorageException` naming the file and byte offset. A
    /// directory already open elsewhere fails with `StoreInUseException`.
    pub fn open(path: &Path) -> Result<(DataDir, Recovered)> {
        let existed = path.exists();
        create_private_dir(path)?;
        if !existed {
            // Make the new directory's own entry durable in its parent.
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                sync_dir(parent)?;
            }
        }
        let lock = lock::acquire(path)?;
        let listing = Listing::read(path)?;
        let generation = listing.snapshots.iter().copied().max().unwrap_or(0);
        if let Some(&orphan) = listing.journals.iter().find(|&&g| g > generation) {
            return Err(err!(
                StorageException,
                "journal {} has no {}: the data directory is inconsistent (refusing to guess \
                 which state is current)",
                path.join(journal_name(orphan)).display(),
                snapshot_name(orphan)
            ));
        }
        let snapshot = if listing.snapshots.contains(&generation) {
            Some(snapshot::load(
                &path.join(snapshot_name(generation)),
                generation,
            )?)
        } else {
            None
        };

        let journal_path = path.join(journal_name(generation));
        // The torn tail is repaired either way; only the white-box tests read what was cut.
        #[cfg_attr(not(any(test, feature = "internals")), allow(unused_variables))]
        let (journal, journal_len, records, dropped_torn_tail) =
            if listing.journals.contains(&generation) {
                Self::recover_journal(&journal_path, generation)?
            } else {
                let f = Self::create_journal(path, generation)?;
                (f, JOURNAL_HEADER_LEN as u64, Vec::new(), None)
            };

        // Only now that the current generation is known good, clear out what a crash left.
        let mut removed = false;
        let stale = listing
            .snapshots
            .iter()
            .filter(|&&g| g < generation)
            .map(|&g| path.join(snapshot_name(g)))
            .chain(
                listing
                    .journals
                    .iter()
                    .filter(|&&g| g < generation)
                    .map(|&g| path.join(journal_name(g))),
            )
            .chain(listing.temps.iter().cloned());
        for p in stale {
            match fs::remove_file(&p) {
                Ok(()) => removed = true,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_error("remove stale file", &p, e)),
            }
        }
        if removed {
            sync_dir(path)?;
        }

        let dir = DataDir {
            path: path.to_path_buf(),
            generation,
            journal,
            journal_path,
            journal_len,
            scratch: Vec::new(),
            poisoned: None,
            _lock: lock,
        };
        let recovered = Recovered {
            snapshot,
            records,
            #[cfg(any(test, feature = "internals"))]
            dropped_torn_tail,
            #[cfg(any(test, feature = "internals"))]
            generation,
        };
        Ok((dir, recovered))
    }

    /// Reads, checks and (if its tail is torn) repairs an existing journal.
    #[allow(clippy::type_complexity)]
    fn recover_journal(
        path: &Path,
        generation: u64,
    ) -> Result<(File, u64, Vec<Vec<u8>>, Option<(PathBuf, u64)>)> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| io_error("open journal", path, e))?;
        let mut data = Vec::new();
        file.read_to_end(&mut data)
            .map_err(|e| io_error("read journal", path, e))?;
        journal::check_file_header(path, &data, generation)?;
        let scan = journal::scan(path, &data)?;
        let torn = match scan.torn_at {
            Some(at) => {
                file.set_len(scan.valid_len)
                    .and_then(|()| file.sync_all())
                    .map_err(|e| io_error("truncate torn tail of journal", path, e))?;
                Some((path.to_path_buf(), at))
            }
            None => None,
        };
        Ok((file, scan.valid_len, scan.records, torn))
    }

    /// Creates `journal-<generation>.log` holding only its header, atomically and durably.
    fn create_journal(dir: &Path, generation: u64) -> Result<File> {
        let tmp = dir.join(format!("journal-{generation}.tmp"));
        let path = dir.join(journal_name(generation));
        write_file_synced(&tmp, &[&journal::encode_file_header(generation)])?;
        rename(&tmp, &path)?;
        sync_dir(dir)?;
        OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| io_error("open journal", &path, e))
    }

    /// The data directory's path, as given to `open`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The current generation (number of compactions so far).
    #[cfg(any(test, feature = "internals"))]
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Appends one record; it is durable (fsynced) when this returns `Ok`.
    pub fn append(&mut self, record: &[u8]) -> Result<()> {
        self.check_usable()?;
        self.check_len(record.len())?;
        let mut buf = std::mem::take(&mut self.scratch);
        buf.clear();
        journal::encode_record(&mut buf, record);
        let r = self.write_frame(&buf);
        self.scratch = buf;
        r
    }

    /// Appends several records with one write and one fsync. They are recovered all or none:
    /// a crash during the call never leaves only some of them.
    #[cfg(any(test, feature = "internals"))]
    pub fn append_batch(&mut self, records: &[&[u8]]) -> Result<()> {
        self.check_usable()?;
        match records {
            [] => Ok(()),
            [one] => self.append(one),
            _ => {
                self.check_len(journal::batch_payload_len(records))?;
                let mut buf = std::mem::take(&mut self.scratch);
                buf.clear();
                journal::encode_batch(&mut buf, records);
                let r = self.write_frame(&buf);
                self.scratch = buf;
                r
            }
        }
    }

    /// Bytes of records in the current journal (since the last compaction), frame headers
    /// included. The caller decides when to compact.
    pub fn journal_bytes(&self) -> u64 {
        self.journal_len - JOURNAL_HEADER_LEN as u64
    }

    /// Replaces snapshot and journal atomically: `snapshot` becomes the state, and the journal
    /// starts empty. A crash at any instant leaves either the old or the new generation.
    pub fn compact(&mut self, snapshot: &[u8]) -> Result<()> {
        self.check_usable()?;
        let old = self.generation;
        let new = old + 1;
        let tmp = self.path.join(format!("snapshot-{new}.tmp"));
        let bin = self.path.join(snapshot_name(new));
        let header = snapshot::encode_header(new, snapshot);
        // Before the rename, a failure leaves generation `old` intact: clean up and report.
        if let Err(e) =
            write_file_synced(&tmp, &[&header, snapshot]).and_then(|()| rename(&tmp, &bin))
        {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        // The rename happened: from here the new snapshot may be the current state on disk, so
        // appending to the old journal would lose records. Any failure poisons the DataDir.
        let switched = sync_dir(&self.path).and_then(|()| Self::create_journal(&self.path, new));
        let journal = match switched {
            Ok(f) => f,
            Err(e) => {
                self.poison(format!(
                    "compaction to generation {new} failed: {}",
                    e.message()
                ));
                return Err(e);
            }
        };
        let old_journal =
            std::mem::replace(&mut self.journal_path, self.path.join(journal_name(new)));
        self.journal = journal;
        self.journal_len = JOURNAL_HEADER_LEN as u64;
        self.generation = new;
        // Removing the old generation is housekeeping: `open` removes leftovers too, so a
        // failure here loses nothing and is not reported.
        let _ = fs::remove_file(&old_journal);
        let _ = fs::remove_file(self.path.join(snapshot_name(old)));
        let _ = sync_dir(&self.path);
        Ok(())
    }

    fn check_usable(&self) -> Result<()> {
        match &self.poisoned {
            None => Ok(()),
            Some(why) => Err(err!(
                StorageException,
                "data directory {} refuses writes after an earlier failure ({why}); reopen it",
                self.path.display()
            )),
        }
    }

    fn check_len(&self, len: usize) -> Result<()> {
        if len > MAX_RECORD_LEN {
            return Err(err!(
                StorageException,
                "record of {len} bytes exceeds the journal limit of {MAX_RECORD_LEN} bytes"
            ));
        }
        Ok(())
    }

    fn poison(&mut self, why: String) {
        self.poisoned = Some(why);
    }

    fn write_frame(&mut self, frame: &[u8]) -> Result<()> {
        let at = self.journal_len;
        let r = self
            .journal
            .write_all_at(frame, at)
            .and_then(|()| self.journal.sync_data());
        if let Err(e) = r {
            let e = io_error("append to journal", &self.journal_path, e);
            self.poison(e.message().to_string());
            return Err(e);
        }
        self.journal_len += frame.len() as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_gen_is_strict() {
        assert_eq!(parse_gen("journal-12.log", "journal-", ".log"), Some(12));
        assert_eq!(parse_gen("journal-012.log", "journal-", ".log"), None);
        assert_eq!(parse_gen("journal-+1.log", "journal-", ".log"), None);
        assert_eq!(parse_gen("journal-.log", "journal-", ".log"), None);
        assert_eq!(parse_gen("snapshot-3.tmp", "snapshot-", ".tmp"), Some(3));
    }

    #[test]
    fn fresh_directory_round_trip() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("data");
        let (mut d, r) = DataDir::open(&p).unwrap();
        assert!(r.snapshot.is_none() && r.records.is_empty() && r.dropped_torn_tail.is_none());
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o700
        );
        d.append(b"r1").unwrap();
        d.append_batch(&[b"r2", b"r3"]).unwrap();
        d.append_batch(&[]).unwrap();
        assert_eq!(d.journal_bytes(), (16 + 2) + (16 + 4 + 2 + 4 + 2));
        let j = p.join("journal-0.log");
        assert_eq!(
            fs::metadata(&j).unwrap().permissions().mode() & 0o777,
            0o600
        );
        drop(d);
        let (_d, r) = DataDir::open(&p).unwrap();
        assert_eq!(
            r.records,
            vec![b"r1".to_vec(), b"r2".to_vec(), b"r3".to_vec()]
        );
    }

    #[test]
    fn compaction_switches_generation_and_cleans_up() {
        let t = tempfile::tempdir().unwrap();
        let (mut d, _) = DataDir::open(t.path()).unwrap();
        d.append(b"a").unwrap();
        d.compact(b"state-1").unwrap();
        assert_eq!(d.generation(), 1);
        assert_eq!(d.journal_bytes(), 0);
        d.append(b"b").unwrap();
        d.compact(b"state-2").unwrap();
        d.append(b"c").unwrap();
        drop(d);
        let mut names: Vec<String> = fs::read_dir(t.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["LOCK", "journal-2.log", "snapshot-2.bin"]);
        let (_d, r) = DataDir::open(t.path()).unwrap();
        assert_eq!(r.snapshot.as_deref().unwrap(), b"state-2");
        assert_eq!(r.records, vec![b"c".to_vec()]);
        assert_eq!(r.generation, 2);
    }

    #[test]
    fn oversized_record_is_refused_before_writing() {
        let t = tempfile::tempdir().unwrap();
        let (mut d, _) = DataDir::open(t.path()).unwrap();
        let big = vec![0u8; MAX_RECORD_LEN + 1];
        let e = d.append(&big).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::StorageException);
        assert!(e.message().contains("exceeds the journal limit"), "{e}");
        assert_eq!(d.journal_bytes(), 0);
        d.append(b"still fine").unwrap();
    }

    #[test]
    fn orphan_journal_is_an_error_not_a_guess() {
        let t = tempfile::tempdir().unwrap();
        drop(DataDir::open(t.path()).unwrap());
        write_file_synced(
            &t.path().join("journal-4.log"),
            &[&journal::encode_file_header(4)],
        )
        .unwrap();
        let e = DataDir::open(t.path()).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::StorageException);
        assert!(
            e.message().contains("journal-4.log has no snapshot-4.bin"),
            "{e}"
        );
    }

    #[test]
    fn failed_compaction_before_commit_leaves_old_generation_usable() {
        let t = tempfile::tempdir().unwrap();
        let (mut d, _) = DataDir::open(t.path()).unwrap();
        d.append(b"a").unwrap();
        // A directory squatting on the temporary name makes writing the snapshot fail.
        fs::create_dir(t.path().join("snapshot-1.tmp")).unwrap();
        let e = d.compact(b"state").unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::StorageException);
        assert!(e.message().contains("snapshot-1.tmp"), "{e}");
        assert_eq!(d.generation(), 0);
        d.append(b"b").unwrap();
        drop(d);
        fs::remove_dir(t.path().join("snapshot-1.tmp")).unwrap();
        let (_d, r) = DataDir::open(t.path()).unwrap();
        assert_eq!(r.records, [b"a", b"b"]);
    }

    #[test]
    fn failed_compaction_after_commit_poisons_until_reopen() {
        let t = tempfile::tempdir().unwrap();
        let (mut d, _) = DataDir::open(t.path()).unwrap();
        d.append(b"a").unwrap();
        // The snapshot rename succeeds, then creating the new journal fails.
        fs::create_dir(t.path().join("journal-1.tmp")).unwrap();
        assert!(d.compact(b"state").is_err());
        let e = d.append(b"lost?").unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::StorageException);
        assert!(
            e.message()
                .contains("refuses writes after an earlier failure"),
            "{e}"
        );
        assert!(d.compact(b"again").is_err());
        drop(d);
        fs::remove_dir(t.path().join("journal-1.tmp")).unwrap();
        let (mut d, r) = DataDir::open(t.path()).unwrap();
        assert_eq!(r.generation, 1);
        assert_eq!(r.snapshot.as_deref(), Some(&b"state"[..]));
        assert!(r.records.is_empty());
        d.append(b"c").unwrap();
    }

    #[test]
    fn path_that_is_a_file_is_refused() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("file");
        fs::write(&f, b"x").unwrap();
        let e = DataDir::open(&f).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::StorageException);
    }
}
