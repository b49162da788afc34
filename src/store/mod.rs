//! The durable store: a locked data directory holding snapshots and journals of records.
//!
//! The control plane keeps its state in memory and makes every change durable before it
//! acknowledges it: it encodes a change record (opaque bytes here) and calls
//! [`DataDir::append`], which returns only after an fsync. When [`DataDir::compaction_due`]
//! says so it calls [`DataDir::start_compaction`]: the journal is rotated on the spot (a new
//! file, two fsyncs, no state encoded) and a background thread folds the closed journals into
//! a new snapshot ([`compaction`]). At start, [`DataDir::open`] hands back the newest snapshot
//! and every record after it, for replay.
//!
//! Every journal frame and snapshot is authenticated with a key the caller gives at open
//! ([`StoreAuth`], see [`auth`]); the caller typically derives it from a key file, so opening
//! is two steps: [`DataDir::lock`] (create and lock the directory; key files can now be read
//! and created through the [`LockedDir`]), then [`LockedDir::recover`] with the key.
//!
//! # Directory layout
//!
//! ```text
//! <dir>/LOCK                   exclusive lock, held while a DataDir is open
//! <dir>/snapshot-<s>.bin       the state after every journal before journal <s> (none at first)
//! <dir>/journal-<g>.log        records in append order; the newest one is appended to
//! <dir>/journal-<g>.log.cut-<o>  the bytes a torn-tail repair cut off journal `g` at offset
//!                              `o`, kept as evidence (never read, never removed)
//! <dir>/keys/<name>.key        wrapping keys (see [`keyfile`])
//! ```
//!
//! Journals and snapshots share one sequence of generations: journal `g` is opened when
//! journal `g-1` is closed, and `snapshot-<g>` is the state as of that moment. The state on
//! disk is therefore `snapshot-<s>` (the newest; the empty state if there is none, `s = 0`)
//! followed by journals `s, s+1, …, n`, contiguous, in order. Between compactions that is one
//! snapshot and one journal (`s = n`), exactly the layout of the synchronous compaction this
//! replaces, so a directory written before reads unchanged and
//! [`journal::FORMAT_VERSION`] stays: the files are the same, only more than one journal may
//! follow the snapshot (an older build refuses such a directory, reporting the second journal
//! as having no snapshot, rather than misread it).
//!
//! # Crash safety of compaction
//!
//! With `snapshot-<s>` the newest snapshot and journal `n` the one appended to, a compaction
//! does, each step durable before the next:
//!
//! 1. Rotate (commit path, under the caller's lock; [`DataDir::start_compaction`]): write
//!    `journal-<n+1>.tmp` (header only), fsync, rename it to `journal-<n+1>.log`, fsync the
//!    directory. Appends go to journal `n+1` from now on; journals `s..=n` are closed and
//!    never written again.
//! 2. Build (background thread; the caller's lock is not held): map `snapshot-<s>`, read
//!    journals `s..=n`, and let the caller's [`BuildSnapshot`] turn them into the new payload.
//! 3. Write `snapshot-<n+1>.tmp`, fsync.
//! 4. Rename it to `snapshot-<n+1>.bin` and fsync the directory — the commit point.
//! 5. Remove every snapshot and journal older than `n+1`, fsync the directory.
//!
//! `open` takes the newest `.bin` snapshot `s` (a damaged one is an error, never a reason to
//! fall back to an older one), replays journals `s, s+1, …` (a gap is an error: it refuses
//! to guess; so is a snapshot without `journal-<s>`, which no crash leaves since step 1 comes
//! first: the records after the snapshot would be lost), then removes `.tmp` files and every
//! snapshot or journal older than `s`. So a crash
//!
//! - in step 1 before the rename leaves a `.tmp`, removed: the state is `s` + journals `s..=n`;
//! - after step 1 (in 2, 3, or 4 before the rename is durable) leaves `snapshot-<s>` and
//!   journals `s..=n+1`: every durable record, those appended since the rotation included
//!   (a partial `snapshot-<n+1>.tmp` is removed);
//! - after step 4 (in 5, or later) leaves `snapshot-<n+1>`, which is journals `s..=n` applied
//!   to `snapshot-<s>`, and journals `n+1..`: the same state; open finishes step 5.
//!
//! Only the newest journal can end in a torn record (a rotation follows a completed, fsynced
//! append, and a failed append stops all writes): a closed journal that does is damage.
//!
//! At most one compaction is in flight. A trigger while one runs is deferred, never waited
//! for: the current journal keeps growing, and the first commit after the job has ended that
//! finds it over the threshold rotates again, folding everything since the base snapshot.
//! Compaction is due when the current journal outgrows both the caller's floor and a
//! [`SNAPSHOT_FRACTION`]th of the newest snapshot ([`DataDir::compaction_due`]). A
//! compaction's work is proportional to the snapshot plus the journals it folds, so each one
//! is paid for by appends of at least a fixed share of that work: constant amortized work per
//! byte written, at any state size (the commit path's old fixed 8 MiB threshold cost a
//! whole-state encoding per 8 MiB, growing with the state). The share bounds the other cost:
//! what `open` replays beyond the snapshot is at most about a quarter of it.
//!
//! [`DataDir::compact`] runs the same steps synchronously with a payload the caller encoded
//! (the service uses it once, when a directory is created, to record what it belongs to).
//!
//! # Trust
//!
//! Nothing in the directory is trusted unless this process's effective uid owns it. The data
//! directory and `keys/` must be real directories (not symlinks) owned by that uid and not
//! writable by group or others ([`check_owned_dir`]); key files must be owned by it and private.
//! Nor is the path to it: every directory above the data directory must be owned by root or
//! that uid and not writable by group or others without the sticky bit, or someone else could
//! swap the data directory for theirs between two operations ([`trust`]).
//! Every file is opened with `O_NOFOLLOW`, and temporary files are created with `O_EXCL` after
//! any leftover at their name (a crash's) is unlinked — never followed or truncated. Their names
//! are fixed (`journal-<n>.tmp`, `snapshot-<n>.tmp`) rather than random: in a directory only
//! we may write, nobody else can plant a file there, and `O_EXCL` refuses one that appeared.
//!
//! # Failures
//!
//! A failed write or fsync of an append, or a failed directory fsync after a rotation's
//! rename, leaves the on-disk state uncertain: the `DataDir` then refuses every later write
//! with a `StorageException` and must be reopened (which recovers what was durable). A
//! rotation that fails before its rename changes nothing: appends stay on journal `n`. A
//! background job that fails before its commit point removes its `.tmp` and leaves the base
//! snapshot and every journal in place; it is logged and counted ([`CompactionStats`]),
//! writes go on, and the next trigger retries, folding the same journals and those since.
//! Once its rename is done the job has succeeded: a failed directory fsync after it, or a
//! failed removal in step 5, only leaves covered files behind (the next job removes them once
//! its own snapshot is durable, `open` once it has picked the newest). Dropping the
//! `DataDir` asks an in-flight job to stop (it stops before its commit point, or finishes)
//! and joins it before the lock is released.

pub mod auth;
pub mod compaction;
pub mod journal;
pub mod keyfile;
mod lock;
mod mmap;
pub mod snapshot;
mod trust;

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

pub use auth::StoreAuth;
pub use compaction::{BuildSnapshot, CompactionHook, CompactionStats};
pub use snapshot::SnapshotBytes;

use crate::error::KmsError;
use crate::{err, Result};
use compaction::{Done, InFlight, Job, Source};
use journal::{JOURNAL_HEADER_LEN, MAX_RECORD_LEN};
pub(crate) use trust::{check_owned_dir, create_private_dir};

/// Compaction waits until the current journal is larger than the newest snapshot divided by
/// this (see the module doc): 1 would do the least compaction work, at the price of replaying
/// up to a snapshot's worth of records at open; 4 keeps that replay to about a quarter of the
/// snapshot's size, for at most about 9 bytes encoded or decoded in the background per byte
/// appended (decode the snapshot, replay, encode: 2¼ snapshots per quarter snapshot appended).
pub const SNAPSHOT_FRACTION: u64 = 4;

/// A data directory created and exclusively locked, its store files not read yet: key files
/// ([`keyfile`]) can be read and created through it, then [`LockedDir::recover`] reads the
/// rest. Dropping it releases the lock.
pub struct LockedDir {
    path: PathBuf,
    /// Held (open and locked) for as long as this value, or the `DataDir` it becomes, lives.
    _lock: File,
}

impl fmt::Debug for LockedDir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockedDir").field("path", &self.path).finish()
    }
}

impl LockedDir {
    /// The data directory's path, as given to [`DataDir::lock`] (less a trailing `/` or `/.`).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The newest snapshot in the directory, or else its newest journal (`None`: neither, a
    /// directory never recovered). Why: a directory holding either was written under a master
    /// key already, so the keyring must report that key missing rather than create a new one
    /// that could authenticate none of it.
    pub fn store_file_written(&self) -> Result<Option<PathBuf>> {
        let listing = Listing::read(&self.path)?;
        Ok(match (listing.snapshots.last(), listing.journals.last()) {
            (Some(&g), _) => Some(self.path.join(snapshot_name(g))),
            (None, Some(&g)) => Some(self.path.join(journal_name(g))),
            (None, None) => None,
        })
    }
}

impl AsRef<LockedDir> for LockedDir {
    fn as_ref(&self) -> &LockedDir {
        self
    }
}

impl AsRef<LockedDir> for DataDir {
    fn as_ref(&self) -> &LockedDir {
        &self.dir
    }
}

/// An open, exclusively locked data directory.
pub struct DataDir {
    /// The path and the lock. Dropping it releases the lock — after `Drop` has joined any
    /// compaction thread, since fields drop after `drop` runs.
    dir: LockedDir,
    /// Authenticates every frame written and read, and every snapshot.
    auth: Arc<StoreAuth>,
    /// The newest complete snapshot's generation (`None`: no snapshot yet).
    snapshot: Option<u64>,
    /// Payload length of that snapshot (0 without one): it scales the compaction threshold.
    snapshot_len: u64,
    /// The first journal the snapshot does not cover (its generation, or 0).
    first_journal: u64,
    /// The journal appended to, and its generation.
    journal: File,
    journal_gen: u64,
    journal_path: PathBuf,
    /// Current length of the journal file (header included).
    journal_len: u64,
    /// Reused buffer for encoding frames.
    scratch: Vec<u8>,
    /// Set once the on-disk state is uncertain; every later write fails with this message.
    poisoned: Option<String>,
    /// The compaction job running on its thread, if any (at most one).
    in_flight: Option<InFlight>,
    stats: CompactionStats,
    hook: Option<CompactionHook>,
}

/// What [`DataDir::open`] found on disk.
#[derive(Debug)]
pub struct Recovered {
    /// The newest valid snapshot's payload (memory-mapped), if a compaction ever happened.
    pub snapshot: Option<SnapshotBytes>,
    /// The records of every journal after that snapshot, in append order.
    pub records: Vec<Vec<u8>>,
    /// A torn final record that was discarded: the journal file and the offset it was cut at.
    #[cfg(any(test, feature = "internals"))]
    pub dropped_torn_tail: Option<(PathBuf, u64)>,
    /// The newest snapshot's generation (0: no snapshot).
    #[cfg(any(test, feature = "internals"))]
    pub generation: u64,
    /// The generations of the journals replayed, oldest first.
    #[cfg(any(test, feature = "internals"))]
    pub journals: Vec<u64>,
}

impl fmt::Debug for DataDir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataDir")
            .field("path", &self.dir.path)
            .field("snapshot", &self.snapshot)
            .field("journals", &(self.first_journal..=self.journal_gen))
            .field("journal_bytes", &self.journal_bytes())
            .field("compacting", &self.in_flight.is_some())
            .field("compactions", &self.stats)
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
    #[cfg(test)]
    synced::note(dir);
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error("fsync directory", dir, e))
}

/// The directories and files this thread fsynced, in order: what the tests of durability
/// read back (an fsync leaves no other trace a test could see short of a power cut).
#[cfg(test)]
pub(crate) mod synced {
    use std::cell::RefCell;
    use std::path::{Path, PathBuf};

    thread_local! {
        static SYNCED: RefCell<Vec<PathBuf>> = const { RefCell::new(Vec::new()) };
    }

    /// Records an fsync of `path`.
    pub(crate) fn note(path: &Path) {
        SYNCED.with(|s| s.borrow_mut().push(path.to_path_buf()));
    }

    /// What this thread fsynced since the last call.
    pub(crate) fn take() -> Vec<PathBuf> {
        SYNCED.with(|s| std::mem::take(&mut *s.borrow_mut()))
    }
}

/// Open flags of every file the store opens: never through a symbolic link.
pub(crate) const NOFOLLOW: i32 = libc::O_NOFOLLOW;

/// Writes `parts` to a new file `path` (mode 0600) and fsyncs it. The file must not exist
/// (`O_EXCL`: a file planted there, or left by a crash, is removed by the caller first) and is
/// never reached through a symbolic link.
pub(crate) fn write_file_synced(path: &Path, parts: &[&[u8]]) -> Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(NOFOLLOW)
        .mode(0o600)
        .open(path)
        .map_err(|e| io_error("create", path, e))?;
    for p in parts {
        f.write_all(p).map_err(|e| io_error("write", path, e))?;
    }
    f.sync_all().map_err(|e| io_error("fsync", path, e))
}

/// Removes a leftover temporary file at `path` (a crash's; the directory is ours alone), so
/// that [`write_file_synced`] can create it anew.
pub(crate) fn remove_stale(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_error("remove", path, e)),
        _ => Ok(()),
    }
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
        l.snapshots.sort_unstable();
        l.journals.sort_unstable();
        Ok(l)
    }
}

/// Copies bytes `from..to` of `path` (open as `file`; a journal, or an event log file, as
/// `what` names it), which a repair is about to cut away, to a new file `<name>.cut-<from>`
/// beside it, durably: mode 0600, created with `O_EXCL` and `O_NOFOLLOW` like the store's
/// other files, the file and then the directory fsynced. Returns its path.
///
/// Why: a final frame that fails its checks is most likely a write a crash cut short, never
/// acknowledged; but an acknowledged last record (a revocation, say) damaged since looks the
/// same, and refusing to open would punish every crash. So the frame is not replayed, but its
/// bytes survive as evidence instead of being erased. An event log's cut lines (events of
/// records the journal lost, and failed calls logged after them) are kept the same way. The
/// name is no journal's, snapshot's or event log file's (`Listing` and the event log pass it
/// over), so no later open, compaction or expiry reads or removes it. If the name is taken by
/// the same bytes (an open killed between this copy and the cut), that file is made durable
/// and reused; by other bytes (another tail cut at the same offset since), the next free
/// `<name>.cut-<from>.<n>` is used.
pub(crate) fn keep_cut_bytes(
    file: &File,
    path: &Path,
    (from, to): (u64, u64),
    what: &str,
) -> Result<PathBuf> {
    // Invariant: `to` is the length of a file just read whole into memory (`read_journal`,
    // the event log's open), so the tail fits in memory too.
    let len = usize::try_from(to - from).expect("a file read into memory fits in usize");
    let mut cut = vec![0u8; len];
    file.read_exact_at(&mut cut, from)
        .map_err(|e| io_error(&format!("read the cut tail of {what}"), path, e))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let base = format!(
        "{}.cut-{from}",
        path.file_name().unwrap_or_default().to_string_lossy()
    );
    for n in 0..u32::MAX {
        let kept = match n {
            0 => dir.join(&base),
            n => dir.join(format!("{base}.{n}")),
        };
        let created = OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(NOFOLLOW)
            .mode(0o600)
            .open(&kept);
        match created {
            Ok(mut f) => {
                if let Err(e) = f.write_all(&cut).and_then(|()| f.sync_all()) {
                    let _ = fs::remove_file(&kept);
                    return Err(io_error(
                        &format!("write the cut tail of {what} {} to", path.display()),
                        &kept,
                        e,
                    ));
                }
                sync_dir(dir)?;
                return Ok(kept);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                if holds_durably(&kept, &cut) {
                    sync_dir(dir)?;
                    return Ok(kept);
                }
            }
            Err(e) => return Err(io_error("create", &kept, e)),
        }
    }
    Err(err!(
        StorageException,
        "cannot keep the cut tail of {what} {}: every name for it is taken",
        path.display()
    ))
}

/// Whether the file at `path` (not followed if a link) holds exactly `bytes`, fsynced if it
/// does (an earlier open may have been killed after writing it, before its fsync). A file
/// that cannot be read counts as holding other bytes: the caller then picks another name.
fn holds_durably(path: &Path, bytes: &[u8]) -> bool {
    let Ok(f) = OpenOptions::new()
        .read(true)
        .custom_flags(NOFOLLOW)
        .open(path)
    else {
        return false;
    };
    let mut held = Vec::with_capacity(bytes.len());
    let read = (&f).take(bytes.len() as u64 + 1).read_to_end(&mut held);
    read.is_ok() && held == bytes && f.sync_all().is_ok()
}

/// Reads a journal, checking its header and every frame's tag; `Scan::torn_at` is left for the
/// caller to judge.
fn read_journal(
    file: &mut File,
    path: &Path,
    generation: u64,
    auth: &StoreAuth,
) -> Result<journal::Scan> {
    let mut data = Vec::new();
    file.read_to_end(&mut data)
        .map_err(|e| io_error("read journal", path, e))?;
    journal::check_file_header(path, &data, generation)?;
    journal::scan(path, &data, journal::Check { auth, generation })
}

/// The records of a closed journal (one that is not the newest): it is never appended to
/// again, so a torn final record is damage, not a crash to repair.
fn read_closed_journal(path: &Path, generation: u64, auth: &StoreAuth) -> Result<Vec<Vec<u8>>> {
    let mut file = OpenOptions::new()
        .read(true)
        .custom_flags(NOFOLLOW)
        .open(path)
        .map_err(|e| io_error("open journal", path, e))?;
    trust::check_owned_file(&file, path, "journal")?;
    let scan = read_journal(&mut file, path, generation, auth)?;
    match scan.torn_at {
        None => Ok(scan.records),
        Some(at) => Err(journal::damaged(
            path,
            at,
            "incomplete or damaged final record in a closed journal (only the newest journal \
             can end in a torn record)",
        )),
    }
}

impl DataDir {
    /// Opens (creating it with mode 0700 if missing) and locks the data directory `path`, and
    /// recovers its contents, authenticated with `auth`: [`DataDir::lock`] then
    /// [`LockedDir::recover`] (the store's own tests; kmscks opens through the keyring,
    /// which reads the key the store is authenticated with in between).
    #[cfg(any(test, feature = "internals"))]
    pub fn open(path: &Path, auth: StoreAuth) -> Result<(DataDir, Recovered)> {
        DataDir::lock(path)?.recover(auth)
    }

    /// Creates (mode 0700) the data directory `path` if it is missing and locks it, reading
    /// nothing else. A directory already open elsewhere fails with `StoreInUseException`; one
    /// another user could swap for theirs (a directory above it they may write) with a
    /// `StorageException`, before anything is created, and again once the missing levels are
    /// made, in case one was made by someone else in between ([`trust`]).
    pub fn lock(path: &Path) -> Result<LockedDir> {
        // As its components give it: a trailing `/` or `/.` would have every check below look
        // through a symbolic link the data directory's own name may be (`lstat` of `link/`
        // follows the link, and the name's parent would skip it).
        let path: PathBuf = path.components().collect();
        trust::create_trusted_dir(&path)?;
        let lock = lock::acquire(&path)?;
        Ok(LockedDir { path, _lock: lock })
    }
}

impl LockedDir {
    /// Recovers the directory's contents, checking every journal frame and snapshot against
    /// `auth`. A torn final record of the newest journal is copied aside
    /// (`journal-<g>.log.cut-<offset>`), truncated away and reported; any other damage — a
    /// frame or snapshot whose tag does not verify included — fails with a `StorageException`
    /// naming the file and byte offset, as does a snapshot without its journal or a gap
    /// between journals; a refused open changes nothing in the directory.
    pub fn recover(self, auth: StoreAuth) -> Result<(DataDir, Recovered)> {
        let auth = Arc::new(auth);
        let path = self.path.as_path();
        let listing = Listing::read(path)?;
        let newest = listing.snapshots.last().copied();
        let first = newest.unwrap_or(0);
        let live: Vec<u64> = listing
            .journals
            .iter()
            .copied()
            .filter(|&g| g >= first)
            .collect();
        for (expected, &g) in (first..).zip(&live) {
            if g != expected {
                return Err(err!(
                    StorageException,
                    "journal {} is not preceded by {}, which is missing: the data directory is \
                     inconsistent (refusing to guess which state is current)",
                    path.join(journal_name(g)).display(),
                    journal_name(expected)
                ));
            }
        }
        let snapshot = match newest {
            Some(g) => Some(snapshot::load(&path.join(snapshot_name(g)), g, &auth)?),
            None => None,
        };
        // A snapshot is only ever written after its journal was made durable (the rotation,
        // step 1 of the module doc, comes first; `open` never removes a journal the newest
        // snapshot needs): no crash leaves `snapshot-<s>` without `journal-<s>`. So this is
        // damage (a restore that left out the journals, a file deleted by hand), and starting
        // a fresh journal would silently lose every record written after the snapshot — a
        // DisableKey or a revocation among them — and cut the event log back to match.
        if let (Some(s), true) = (newest, live.is_empty()) {
            return Err(err!(
                StorageException,
                "{} has no {}: refusing to start from the snapshot alone (records written \
                 after it would be lost); no crash leaves a snapshot without its journal, so \
                 the data directory is damaged or incompletely restored (restore {} with it)",
                path.join(snapshot_name(s)).display(),
                journal_name(s),
                journal_name(s)
            ));
        }

        let mut records = Vec::new();
        let (closed, current) = match live.split_last() {
            Some((&last, closed)) => (closed, last),
            None => (&[][..], first),
        };
        for &g in closed {
            records.extend(read_closed_journal(&path.join(journal_name(g)), g, &auth)?);
        }
        let journal_path = path.join(journal_name(current));
        // The torn tail is repaired either way; only the white-box tests read what was cut.
        #[cfg_attr(not(any(test, feature = "internals")), allow(unused_variables))]
        let (journal, journal_len, dropped_torn_tail) = if live.is_empty() {
            // No snapshot and no journal (refused above otherwise): a new directory.
            let f = DataDir::create_journal(path, current)?;
            (f, JOURNAL_HEADER_LEN as u64, None)
        } else {
            let (f, len, tail, torn) = DataDir::recover_journal(&journal_path, current, &auth)?;
            records.extend(tail);
            (f, len, torn)
        };

        // Only now that the current state is known good, clear out what a crash left: once
        // the newest snapshot's name is durable (a killed compaction may have renamed it into
        // place without the directory's fsync), or a power cut could keep the removals and
        // lose the rename.
        sync_dir(path)?;
        let stale = listing
            .snapshots
            .iter()
            .filter(|&&g| g < first)
            .map(|&g| path.join(snapshot_name(g)))
            .chain(
                listing
                    .journals
                    .iter()
                    .filter(|&&g| g < first)
                    .map(|&g| path.join(journal_name(g))),
            )
            .chain(listing.temps.iter().cloned());
        for p in stale {
            match fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_error("remove stale file", &p, e)),
            }
        }
        // Whether or not anything was removed: the newest journal's name may be a rename a
        // killed process never made durable, and appends are about to be acknowledged in it.
        sync_dir(path)?;

        let snapshot_len = snapshot.as_ref().map_or(0, |s| s.len() as u64);
        let dir = DataDir {
            dir: self,
            auth,
            snapshot: newest,
            snapshot_len,
            first_journal: first,
            journal,
            journal_gen: current,
            journal_path,
            journal_len,
            scratch: Vec::new(),
            poisoned: None,
            in_flight: None,
            stats: CompactionStats::default(),
            hook: None,
        };
        let recovered = Recovered {
            snapshot,
            records,
            #[cfg(any(test, feature = "internals"))]
            dropped_torn_tail,
            #[cfg(any(test, feature = "internals"))]
            generation: first,
            #[cfg(any(test, feature = "internals"))]
            journals: if live.is_empty() { vec![current] } else { live },
        };
        Ok((dir, recovered))
    }
}

impl DataDir {
    /// Reads, checks and (if its tail is torn) repairs the newest journal.
    #[allow(clippy::type_complexity)]
    fn recover_journal(
        path: &Path,
        generation: u64,
        auth: &StoreAuth,
    ) -> Result<(File, u64, Vec<Vec<u8>>, Option<(PathBuf, u64)>)> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(NOFOLLOW)
            .open(path)
            .map_err(|e| io_error("open journal", path, e))?;
        trust::check_owned_file(&file, path, "journal")?;
        let scan = read_journal(&mut file, path, generation, auth)?;
        let torn = match scan.torn_at {
            Some(at) => {
                let file_len = file
                    .metadata()
                    .map_err(|e| io_error("inspect journal", path, e))?
                    .len();
                // Durable before anything is cut: what is cut cannot be told apart from an
                // acknowledged record damaged since, so its bytes are kept, not erased.
                let kept = keep_cut_bytes(&file, path, (scan.valid_len, file_len), "journal")?;
                file.set_len(scan.valid_len)
                    .map_err(|e| io_error("truncate torn tail of journal", path, e))?;
                tracing::warn!(
                    journal = %path.display(),
                    offset = at,
                    bytes_cut = file_len.saturating_sub(scan.valid_len),
                    kept_in = %kept.display(),
                    "the journal's final record was incomplete or damaged (most likely a \
                     write a crash cut short, which was never acknowledged): it was cut away; \
                     its bytes are kept in {} (if that record was acknowledged, it was \
                     damaged, not torn: keep the file for inspection)",
                    kept.display()
                );
                Some((path.to_path_buf(), at))
            }
            None => None,
        };
        // What is replayed is served from now on: durable before it is, whether or not the
        // process that wrote it lived to fsync it.
        #[cfg(test)]
        synced::note(path);
        file.sync_all()
            .map_err(|e| io_error("fsync journal", path, e))?;
        Ok((file, scan.valid_len, scan.records, torn))
    }

    /// Creates `journal-<generation>.log` holding only its header, atomically and durably.
    /// Fails with `Ok(Err(_))` when the rename happened but its directory fsync failed (the
    /// new file may or may not survive a crash), with `Err(_)` (nothing changed) before.
    fn create_journal_step(dir: &Path, generation: u64) -> Result<Result<File>> {
        let tmp = dir.join(format!("journal-{generation}.tmp"));
        let path = dir.join(journal_name(generation));
        remove_stale(&tmp)?;
        if let Err(e) = write_file_synced(&tmp, &[&journal::encode_file_header(generation)])
            .and_then(|()| rename(&tmp, &path))
        {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        Ok(sync_dir(dir).and_then(|()| {
            OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(NOFOLLOW)
                .open(&path)
                .map_err(|e| io_error("open journal", &path, e))
        }))
    }

    fn create_journal(dir: &Path, generation: u64) -> Result<File> {
        Self::create_journal_step(dir, generation)?
    }

    /// The data directory's path, as given to `open` (less a trailing `/` or `/.`).
    pub fn path(&self) -> &Path {
        &self.dir.path
    }

    /// Where the next frame goes: the current journal's generation and length.
    fn next_frame(&self) -> journal::At<'_> {
        journal::At {
            auth: &self.auth,
            generation: self.journal_gen,
            offset: self.journal_len,
        }
    }

    /// The newest complete snapshot's generation (0: none yet).
    #[cfg(any(test, feature = "internals"))]
    pub fn generation(&self) -> u64 {
        self.snapshot.unwrap_or(0)
    }

    /// The generation of the journal appended to.
    #[cfg(any(test, feature = "internals"))]
    pub fn journal_generation(&self) -> u64 {
        self.journal_gen
    }

    /// Appends one record; it is durable (fsynced) when this returns `Ok`.
    pub fn append(&mut self, record: &[u8]) -> Result<()> {
        self.check_usable()?;
        self.check_len(record.len())?;
        let mut buf = std::mem::take(&mut self.scratch);
        buf.clear();
        journal::encode_record(&mut buf, self.next_frame(), record);
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
                journal::encode_batch(&mut buf, self.next_frame(), records);
                let r = self.write_frame(&buf);
                self.scratch = buf;
                r
            }
        }
    }

    /// Bytes of records in the current journal (since the last rotation), frame headers
    /// included.
    pub fn journal_bytes(&self) -> u64 {
        self.journal_len - JOURNAL_HEADER_LEN as u64
    }

    /// Whether a compaction should start now: none is in flight, writes are allowed, and the
    /// current journal holds more than `floor` bytes and more than the newest snapshot's size
    /// divided by [`SNAPSHOT_FRACTION`] (the amortization argued in the module doc). Collects a finished job first. Cheap: no I/O.
    pub fn compaction_due(&mut self, floor: u64) -> bool {
        self.collect_finished();
        self.in_flight.is_none()
            && self.poisoned.is_none()
            && self.journal_bytes() > floor.max(self.snapshot_len / SNAPSHOT_FRACTION)
    }

    /// Starts a compaction: rotates the journal (step 1 of the module doc, on this thread: a
    /// file created and two fsyncs) and hands steps 2–5 to a background thread, where `build`
    /// makes the new snapshot's payload. Fails, changing nothing, if a compaction is in flight
    /// or the rotation fails; a failure of the job itself is reported later, through
    /// [`DataDir::compaction_stats`] and the log.
    pub fn start_compaction(&mut self, build: Box<BuildSnapshot>) -> Result<()> {
        self.check_usable()?;
        self.collect_finished();
        if self.in_flight.is_some() {
            return Err(err!(
                StorageException,
                "a compaction of {} is already in flight",
                self.path().display()
            ));
        }
        let job = self.rotate()?;
        self.stats.started += 1;
        match InFlight::spawn(job, build) {
            Ok(f) => {
                self.in_flight = Some(f);
                Ok(())
            }
            Err(e) => {
                self.record_failure(&e);
                Err(e)
            }
        }
    }

    /// Waits for the compaction in flight, if any, and returns its outcome (also counted in
    /// [`DataDir::compaction_stats`]).
    pub fn wait_for_compaction(&mut self) -> Result<()> {
        match self.in_flight.take() {
            Some(f) => self.collect(f.join()),
            None => Ok(()),
        }
    }

    /// What compactions have done since the directory was opened.
    #[cfg(any(test, feature = "internals"))]
    pub fn compaction_stats(&self) -> &CompactionStats {
        &self.stats
    }

    /// Sets the hook every later compaction job calls at each [`Step`] (white-box tests).
    #[cfg(any(test, feature = "internals"))]
    pub fn set_compaction_hook(&mut self, hook: Option<CompactionHook>) {
        self.hook = hook;
    }

    /// Makes `snapshot` (the caller's whole state, encoded) the newest snapshot, synchronously:
    /// waits for a compaction in flight, rotates the journal, then writes the snapshot as a
    /// background job would. A crash at any instant leaves the same state on disk; a failure
    /// leaves the journals in place.
    pub fn compact(&mut self, snapshot: &[u8]) -> Result<()> {
        self.check_usable()?;
        // The job in flight may fail: this compaction covers its journals too.
        let _ = self.wait_for_compaction();
        let job = self.rotate()?;
        self.stats.started += 1;
        let done = job.run(Source::Bytes(snapshot));
        self.collect(done)
    }

    /// Step 1: closes the current journal and opens the next; returns the job for steps 2–5.
    fn rotate(&mut self) -> Result<Job> {
        let next = self.journal_gen + 1;
        let journal = match Self::create_journal_step(self.path(), next)? {
            Ok(f) => f,
            Err(e) => {
                // Renamed but perhaps not durable: which journal a crash would leave newest is
                // unknown, so appending to either could lose records.
                self.poison(format!(
                    "rotation to {} failed: {}",
                    journal_name(next),
                    e.message()
                ));
                return Err(e);
            }
        };
        self.journal = journal;
        self.journal_path = self.path().join(journal_name(next));
        self.journal_len = JOURNAL_HEADER_LEN as u64;
        let closed = self.first_journal..=self.journal_gen;
        self.journal_gen = next;
        Ok(Job {
            dir: self.path().to_path_buf(),
            auth: self.auth.clone(),
            base: self.snapshot,
            journals: closed,
            target: next,
            cancel: Arc::new(AtomicBool::new(false)),
            hook: self.hook.clone(),
        })
    }

    /// Collects the job in flight if it has finished.
    fn collect_finished(&mut self) {
        if self.in_flight.as_ref().is_some_and(InFlight::is_finished) {
            let _ = self.wait_for_compaction();
        }
    }

    fn collect(&mut self, outcome: Result<Done>) -> Result<()> {
        match outcome {
            Ok(done) => {
                self.snapshot = Some(done.generation);
                self.snapshot_len = done.snapshot_len;
                self.first_journal = done.generation;
                self.stats.completed += 1;
                Ok(())
            }
            Err(e) => {
                self.record_failure(&e);
                Err(e)
            }
        }
    }

    fn record_failure(&mut self, e: &KmsError) {
        self.stats.failed += 1;
        self.stats.last_error = Some(e.message().to_string());
    }

    fn check_usable(&self) -> Result<()> {
        match &self.poisoned {
            None => Ok(()),
            Some(why) => Err(err!(
                StorageException,
                "data directory {} refuses writes after an earlier failure ({why}); reopen it",
                self.path().display()
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
            // Cut back to the last acknowledged frame before refusing further writes. Left in
            // place, a partial frame (a full disk) is a torn tail the next open must copy aside
            // first, which a disk still full refuses; a whole frame whose fsync failed sits in
            // the page cache marked clean, and the next open would read it as acknowledged and
            // append after it, until its pages are evicted and the directory no longer opens
            // (a damaged frame with valid ones after it). Truncating drops those pages too.
            let cut = self
                .journal
                .set_len(at)
                .and_then(|()| self.journal.sync_all());
            let why = match cut {
                Ok(()) => e.message().to_string(),
                Err(c) => format!(
                    "{}; cutting the journal back to byte {at} failed too ({c}): the next open \
                     may find the failed record",
                    e.message()
                ),
            };
            self.poison(why);
            return Err(e);
        }
        self.journal_len += frame.len() as u64;
        Ok(())
    }
}

impl Drop for DataDir {
    /// Stops and joins the compaction in flight before the lock (a field) is released: no
    /// thread writes in the directory once another process may open it. (In a forked child
    /// the compaction is the parent's, on a thread the child does not have: nothing to wait
    /// for, and the parent's goes on.)
    fn drop(&mut self) {
        if let Some(f) = self.in_flight.take() {
            f.cancel();
            let _ = f.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::auth::tests::test_auth;
    use crate::error::ErrorKind;

    #[test]
    fn parse_gen_is_strict() {
        assert_eq!(parse_gen("journal-12.log", "journal-", ".log"), Some(12));
        assert_eq!(parse_gen("journal-012.log", "journal-", ".log"), None);
        assert_eq!(parse_gen("journal-+1.log", "journal-", ".log"), None);
        assert_eq!(parse_gen("journal-.log", "journal-", ".log"), None);
        assert_eq!(parse_gen("snapshot-3.tmp", "snapshot-", ".tmp"), Some(3));
    }

    /// A tmpfs of `size` mounted at a fresh directory, unmounted on drop; None (with the
    /// reason printed) where this process may not mount one.
    struct SmallDisk {
        _dir: tempfile::TempDir,
        at: PathBuf,
    }

    impl SmallDisk {
        fn mount(size: &str) -> Option<SmallDisk> {
            if crate::peer::effective_uid() != 0 {
                eprintln!("skipped: mounting a small tmpfs needs root");
                return None;
            }
            let dir = tempfile::tempdir().unwrap();
            let at = dir.path().join("disk");
            fs::create_dir(&at).unwrap();
            let mounted = std::process::Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
                .arg(&at)
                .status();
            match mounted {
                Ok(s) if s.success() => Some(SmallDisk { _dir: dir, at }),
                other => {
                    eprintln!("skipped: cannot mount a tmpfs here ({other:?})");
                    None
                }
            }
        }
    }

    impl Drop for SmallDisk {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.at).status();
        }
    }

    #[test]
    fn an_append_the_full_disk_refuses_leaves_no_partial_frame_and_the_directory_reopens() {
        let Some(disk) = SmallDisk::mount("256k") else {
            return;
        };
        let p = disk.at.join("data");
        let (mut d, _) = DataDir::open(&p, test_auth()).unwrap();
        let record = vec![0x5a; 10_000];
        let journal = p.join("journal-0.log");
        let mut appended = 0;
        let e = loop {
            let before = fs::metadata(&journal).unwrap().len();
            match d.append(&record) {
                Ok(()) => appended += 1,
                Err(e) => {
                    let after = fs::metadata(&journal).unwrap().len();
                    assert_eq!(after, before, "the failed frame's bytes were left in the journal");
                    break e;
                }
            }
            assert!(appended < 100, "a 256 KiB disk took {appended} records of 10 KB");
        };
        assert_eq!(e.kind(), ErrorKind::StorageException, "{e}");
        assert!(appended > 0, "{e}");
        // Writes are refused from then on.
        assert!(d.append(b"more").is_err());
        drop(d);
        // With the disk still full, the directory reopens with every acknowledged record.
        let (_d, r) = DataDir::open(&p, test_auth()).unwrap();
        assert_eq!(r.records.len(), appended);
        assert!(r.dropped_torn_tail.is_none());
    }

    #[test]
    fn fresh_directory_round_trip() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("data");
        let (mut d, r) = DataDir::open(&p, test_auth()).unwrap();
        assert!(r.snapshot.is_none() && r.records.is_empty() && r.dropped_torn_tail.is_none());
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o700
        );
        d.append(b"r1").unwrap();
        d.append_batch(&[b"r2", b"r3"]).unwrap();
        d.append_batch(&[]).unwrap();
        // Each frame: a 16-byte header, the payload, a 32-byte tag.
        assert_eq!(d.journal_bytes(), (16 + 2 + 32) + (16 + 4 + 2 + 4 + 2 + 32));
        let j = p.join("journal-0.log");
        assert_eq!(
            fs::metadata(&j).unwrap().permissions().mode() & 0o777,
            0o600
        );
        drop(d);
        let (_d, r) = DataDir::open(&p, test_auth()).unwrap();
        assert_eq!(
            r.records,
            vec![b"r1".to_vec(), b"r2".to_vec(), b"r3".to_vec()]
        );
    }

    #[test]
    fn a_reopen_makes_the_journal_it_replays_and_its_directory_durable_before_serving_them() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("data");
        let (mut d, _) = DataDir::open(&p, test_auth()).unwrap();
        d.append(b"r1").unwrap();
        drop(d);
        synced::take();
        let (_d, r) = DataDir::open(&p, test_auth()).unwrap();
        assert_eq!(r.records, vec![b"r1".to_vec()]);
        let got = synced::take();
        let journal = got.iter().position(|s| *s == p.join("journal-0.log"));
        let dir = got.iter().position(|s| *s == p);
        assert!(journal.is_some() && dir.is_some(), "fsynced: {got:?}");
    }

    #[test]
    fn compaction_switches_generation_and_cleans_up() {
        let t = tempfile::tempdir().unwrap();
        let (mut d, _) = DataDir::open(t.path(), test_auth()).unwrap();
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
        let (_d, r) = DataDir::open(t.path(), test_auth()).unwrap();
        assert_eq!(r.snapshot.as_deref().unwrap(), b"state-2");
        assert_eq!(r.records, vec![b"c".to_vec()]);
        assert_eq!(r.generation, 2);
    }

    #[test]
    fn oversized_record_is_refused_before_writing() {
        let t = tempfile::tempdir().unwrap();
        let (mut d, _) = DataDir::open(t.path(), test_auth()).unwrap();
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
        drop(DataDir::open(t.path(), test_auth()).unwrap());
        write_file_synced(
            &t.path().join("journal-4.log"),
            &[&journal::encode_file_header(4)],
        )
        .unwrap();
        let e = DataDir::open(t.path(), test_auth()).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::StorageException);
        assert!(
            e.message()
                .contains("journal-4.log is not preceded by journal-1.log, which is missing"),
            "{e}"
        );
    }

    #[test]
    fn failed_compaction_before_commit_leaves_old_generation_usable() {
        let t = tempfile::tempdir().unwrap();
        let (mut d, _) = DataDir::open(t.path(), test_auth()).unwrap();
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
        let (_d, r) = DataDir::open(t.path(), test_auth()).unwrap();
        assert_eq!(r.records, [b"a", b"b"]);
    }

    #[test]
    fn failed_rotation_before_its_rename_keeps_appending_to_the_current_journal() {
        let t = tempfile::tempdir().unwrap();
        let (mut d, _) = DataDir::open(t.path(), test_auth()).unwrap();
        d.append(b"a").unwrap();
        // A directory squatting on the temporary name makes creating the next journal fail.
        fs::create_dir(t.path().join("journal-1.tmp")).unwrap();
        let e = d.compact(b"state").unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::StorageException);
        assert!(e.message().contains("journal-1.tmp"), "{e}");
        assert_eq!((d.generation(), d.journal_generation()), (0, 0));
        d.append(b"b").unwrap();
        drop(d);
        fs::remove_dir(t.path().join("journal-1.tmp")).unwrap();
        let (mut d, r) = DataDir::open(t.path(), test_auth()).unwrap();
        assert_eq!(r.records, [b"a", b"b"]);
        d.compact(b"state").unwrap();
        assert_eq!((d.generation(), d.journal_generation()), (1, 1));
    }

    #[test]
    fn failed_append_poisons_until_reopen() {
        let t = tempfile::tempdir().unwrap();
        let (mut d, _) = DataDir::open(t.path(), test_auth()).unwrap();
        d.append(b"a").unwrap();
        // Swap the journal for a read-only descriptor: the next write fails.
        d.journal = File::open(&d.journal_path).unwrap();
        assert!(d.append(b"lost").is_err());
        let e = d.append(b"b").unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::StorageException);
        assert!(
            e.message()
                .contains("refuses writes after an earlier failure"),
            "{e}"
        );
        assert!(d.compact(b"again").is_err());
        assert!(!d.compaction_due(0), "a poisoned directory starts no compaction");
        drop(d);
        let (mut d, r) = DataDir::open(t.path(), test_auth()).unwrap();
        assert_eq!(r.records, [b"a"]);
        d.append(b"c").unwrap();
    }

    #[test]
    fn path_that_is_a_file_is_refused() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("file");
        fs::write(&f, b"x").unwrap();
        let e = DataDir::open(&f, test_auth()).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::StorageException);
    }
}
