//! Compaction off the commit path: the job that folds the closed journals into a new snapshot,
//! run on a background thread from what is on disk, never from the caller's live state.
//!
//! Why from disk: the state is the caller's (the control plane's) and is mutated by every
//! commit; an immutable view of it would need persistent data structures throughout, or a copy
//! (as costly as the encoding this replaces). The files are immutable already: a closed journal
//! and the base snapshot are never written again, so a thread can read them while the commit
//! path appends to the next journal. The price is decoding the base snapshot and replaying the
//! closed records once per compaction — on the background thread, at a rate amortized by the
//! trigger (see [`super::DataDir::compaction_due`]).
//!
//! The store does not know what a record means: the caller hands over a [`BuildSnapshot`]
//! that turns (base snapshot payload, closed records) into the new payload. The job around it —
//! which files to read, where to write, the commit point, what to remove — is here; the
//! step-by-step protocol and its crash analysis are in the [`store`](super) module doc.
//!
//! Each job runs on a thread of its own, started at the rotation and joined when its outcome
//! is collected (or when the `DataDir` drops), so there is never more than one. A long-lived
//! thread would idle between compactions that are megabytes of appends apart and need a stop
//! protocol of its own; starting one costs microseconds beside the rotation's fsyncs.

use std::borrow::Cow;
use std::fs;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::auth::StoreAuth;
use super::{journal_name, read_closed_journal, snapshot, snapshot_name, sync_dir};
use super::{remove_stale, rename, write_file_synced, Listing};
use crate::crypto::fork::{self, Joinable};
use crate::err;
use crate::Result;

/// Turns the base snapshot's payload (`None` before the first snapshot) and the records of the
/// closed journals after it, in append order, into the payload of the new snapshot. Supplied
/// by the layer that knows what records mean; runs on the compaction thread.
pub type BuildSnapshot = dyn FnOnce(Option<&[u8]>, &[Vec<u8>]) -> Result<Vec<u8>> + Send;

/// A point in a compaction job, as the test hook ([`CompactionHook`]) sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// About to read the base snapshot and the closed journals and build the new payload.
    Build,
    /// `snapshot-<gen>.tmp` is written and fsynced, not yet renamed.
    WroteTemp,
    /// `snapshot-<gen>.tmp` is renamed to `.bin` (the commit point), directory not yet fsynced.
    Renamed,
    /// One file the new snapshot covers has been removed (called once per file).
    Removed,
}

/// Called by a compaction job at each [`Step`], on the job's thread; returning `false` stops
/// the job right there, leaving the files as a crash at that point would (white-box tests:
/// crash points, and holding a job in flight while the test writes).
pub type CompactionHook = Arc<dyn Fn(Step) -> bool + Send + Sync>;

/// What compactions have done since the data directory was opened.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CompactionStats {
    /// Compactions started (journal rotated, job handed over).
    pub started: u64,
    /// Compactions whose snapshot was committed.
    pub completed: u64,
    /// Compactions that failed (their journals stay; the next trigger retries).
    pub failed: u64,
    /// The message of the last failure.
    pub last_error: Option<String>,
}

/// The new snapshot's payload: given (synchronous compaction) or built from disk.
pub(super) enum Source<'a> {
    Bytes(&'a [u8]),
    Build(Box<BuildSnapshot>),
}

/// One compaction: snapshot `target` from snapshot `base` plus journals `journals`.
pub(super) struct Job {
    pub(super) dir: PathBuf,
    /// Checks what the job reads and tags the snapshot it writes.
    pub(super) auth: Arc<StoreAuth>,
    /// The newest complete snapshot (`None`: there is none yet).
    pub(super) base: Option<u64>,
    /// The closed journals after it, none of which is appended to any more.
    pub(super) journals: RangeInclusive<u64>,
    /// The new snapshot's generation: one past the last closed journal.
    pub(super) target: u64,
    pub(super) cancel: Arc<AtomicBool>,
    pub(super) hook: Option<CompactionHook>,
}

/// A committed snapshot.
#[derive(Debug)]
pub(super) struct Done {
    pub(super) generation: u64,
    pub(super) snapshot_len: u64,
}

impl Job {
    fn step(&self, s: Step) -> Result<()> {
        match &self.hook {
            Some(h) if !h(s) => Err(err!(
                StorageException,
                "compaction to {} stopped by the test hook at {s:?}",
                snapshot_name(self.target)
            )),
            _ => Ok(()),
        }
    }

    fn check_cancel(&self) -> Result<()> {
        if self.cancel.load(Ordering::Acquire) {
            return Err(err!(
                StorageException,
                "compaction to {} cancelled: the data directory is closing",
                snapshot_name(self.target)
            ));
        }
        Ok(())
    }

    /// Runs the job: build, write `.tmp`, rename (commit point), fsync the directory, remove
    /// what the new snapshot covers. A failure before the rename removes the `.tmp`, changes
    /// nothing else and is returned; after the rename the job has succeeded.
    pub(super) fn run(self, source: Source<'_>) -> Result<Done> {
        let payload: Cow<'_, [u8]> = match source {
            Source::Bytes(b) => Cow::Borrowed(b),
            Source::Build(build) => {
                self.step(Step::Build)?;
                self.check_cancel()?;
                let base = match self.base {
                    Some(g) => Some(snapshot::load(
                        &self.dir.join(snapshot_name(g)),
                        g,
                        &self.auth,
                    )?),
                    None => None,
                };
                let mut records = Vec::new();
                for g in self.journals.clone() {
                    let path = self.dir.join(journal_name(g));
                    records.extend(read_closed_journal(&path, g, &self.auth)?);
                }
                Cow::Owned(build(base.as_deref(), &records)?)
            }
        };
        self.check_cancel()?;
        let tmp = self.dir.join(format!("snapshot-{}.tmp", self.target));
        let bin = self.dir.join(snapshot_name(self.target));
        let header = snapshot::encode_header(self.target, &payload, &self.auth);
        if let Err(e) =
            remove_stale(&tmp).and_then(|()| write_file_synced(&tmp, &[&header, &payload]))
        {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        // A stop here leaves the `.tmp`, as a crash would.
        self.step(Step::WroteTemp)?;
        if let Err(e) = self.check_cancel().and_then(|()| rename(&tmp, &bin)) {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        let done = Done {
            generation: self.target,
            snapshot_len: payload.len() as u64,
        };
        // Committed: from here the job succeeds whatever happens, since the new snapshot and
        // the files it covers describe the same state. What it covers is removed only once
        // the rename is durable; a failure leaves them to the next job, or to `open`.
        if self.step(Step::Renamed).is_err() {
            return Ok(done);
        }
        if let Err(e) = sync_dir(&self.dir).and_then(|()| self.remove_covered()) {
            tracing::warn!(
                error = %e,
                "compaction to {} committed; the files it covers stay until the next one",
                snapshot_name(self.target)
            );
        }
        Ok(done)
    }

    /// Removes every snapshot and journal older than the new snapshot.
    fn remove_covered(&self) -> Result<()> {
        let listing = Listing::read(&self.dir)?;
        let covered = listing
            .snapshots
            .iter()
            .filter(|&&g| g < self.target)
            .map(|&g| self.dir.join(snapshot_name(g)))
            .chain(
                listing
                    .journals
                    .iter()
                    .filter(|&&g| g < self.target)
                    .map(|&g| self.dir.join(journal_name(g))),
            );
        let mut removed = false;
        for p in covered {
            if fs::remove_file(&p).is_ok() {
                removed = true;
                self.step(Step::Removed)?;
            }
        }
        if removed {
            sync_dir(&self.dir)?;
        }
        Ok(())
    }
}

/// The one compaction in flight: its thread, and the flag that asks it to stop.
pub(super) struct InFlight {
    handle: Joinable<Result<Done>>,
    cancel: Arc<AtomicBool>,
}

impl InFlight {
    /// Starts `job` on a new thread named `kmscks-compact`.
    pub(super) fn spawn(job: Job, build: Box<BuildSnapshot>) -> Result<InFlight> {
        let cancel = job.cancel.clone();
        let target = job.target;
        let dir = job.dir.clone();
        let handle = std::thread::Builder::new()
            .name("kmscks-compact".into())
            .spawn(move || {
                let cancel = job.cancel.clone();
                let r = job.run(Source::Build(build));
                if let Err(e) = &r {
                    if !cancel.load(Ordering::Acquire) {
                        tracing::warn!(
                            data_dir = %dir.display(),
                            snapshot = target,
                            error = %e,
                            "background compaction failed; its journals stay and the next \
                             trigger retries"
                        );
                    }
                }
                r
            })
            .map_err(|e| {
                err!(
                    StorageException,
                    "cannot start the compaction thread for {}: {e}",
                    snapshot_name(target)
                )
            })?;
        Ok(InFlight {
            handle: Joinable::new(handle),
            cancel,
        })
    }

    pub(super) fn is_finished(&self) -> bool {
        self.handle.is_finished()
    }

    /// Asks the job to stop at its next check (it never stops after the commit point).
    pub(super) fn cancel(&self) {
        self.cancel.store(true, Ordering::Release);
    }

    /// Waits for the job and returns its outcome. In a forked child, which has a copy of the
    /// job's handle but not its thread, there is no outcome to wait for: [`fork::forked`].
    pub(super) fn join(self) -> Result<Done> {
        match self.handle.join() {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(err!(
                StorageException,
                "the compaction thread panicked; its journals stay and the next trigger retries"
            )),
            None => Err(fork::forked()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::auth::tests::test_auth;
    use crate::store::{DataDir, Recovered};
    use std::path::Path;
    use std::sync::mpsc;
    use std::sync::Mutex;

    /// A stand-in for the caller's state: the base payload with each record appended after a
    /// `+`, so that replaying is concatenating and any lost or doubled record shows.
    fn fold(base: Option<&[u8]>, records: &[Vec<u8>]) -> Vec<u8> {
        let mut v = base.unwrap_or(b"").to_vec();
        for r in records {
            v.push(b'+');
            v.extend_from_slice(r);
        }
        v
    }

    fn build() -> Box<BuildSnapshot> {
        Box::new(|base: Option<&[u8]>, records: &[Vec<u8>]| Ok(fold(base, records)))
    }

    /// The state a recovery gives back, folded the same way.
    fn state(r: &Recovered) -> Vec<u8> {
        fold(r.snapshot.as_deref(), &r.records)
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    }

    /// A directory with `snapshot-1` ("S") and records b, c in journal 1.
    fn dir_at_generation_one(dir: &Path) -> DataDir {
        let (mut d, _) = DataDir::open(dir, test_auth()).unwrap();
        d.append(b"a").unwrap();
        d.compact(b"S").unwrap();
        d.append(b"b").unwrap();
        d.append(b"c").unwrap();
        d
    }

    /// A hook that, at `Step::Build`, says so on `started` and waits for `release`.
    fn holding_hook() -> (CompactionHook, mpsc::Receiver<()>, mpsc::Sender<()>) {
        let (started_tx, started_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let release_rx = Mutex::new(release_rx);
        let hook: CompactionHook = Arc::new(move |s| {
            if s == Step::Build {
                let _ = started_tx.send(());
                let _ = release_rx.lock().unwrap().recv();
            }
            true
        });
        (hook, started_rx, release_tx)
    }

    #[test]
    fn appends_go_on_while_a_compaction_is_in_flight_and_land_after_its_snapshot() {
        let t = tempfile::tempdir().unwrap();
        let mut d = dir_at_generation_one(t.path());
        let (hook, started, release) = holding_hook();
        d.set_compaction_hook(Some(hook));
        d.start_compaction(build()).unwrap();
        started.recv().unwrap();
        // The job is held before it reads anything: appends (to the new journal) proceed.
        assert_eq!(d.journal_generation(), 2);
        d.append(b"d").unwrap();
        d.append_batch(&[b"e", b"f"]).unwrap();
        // A trigger while one runs is deferred, not waited for.
        assert!(!d.compaction_due(0));
        assert!(d.start_compaction(build()).is_err());
        // (The first compaction is the synchronous one that made snapshot 1.)
        assert_eq!(d.compaction_stats().started, 2);
        release.send(()).unwrap();
        d.wait_for_compaction().unwrap();
        assert_eq!(d.generation(), 2);
        assert_eq!(d.compaction_stats().completed, 2);
        assert_eq!(names(t.path()), ["LOCK", "journal-2.log", "snapshot-2.bin"]);
        drop(d);
        let (_d, r) = DataDir::open(t.path(), test_auth()).unwrap();
        assert_eq!(r.snapshot.as_deref(), Some(&b"S+b+c"[..]));
        assert_eq!(r.records, [b"d", b"e", b"f"]);
    }

    #[test]
    fn a_crash_at_every_step_of_a_compaction_recovers_every_durable_record() {
        for stop_at in [Step::Build, Step::WroteTemp, Step::Renamed, Step::Removed] {
            let t = tempfile::tempdir().unwrap();
            let mut d = dir_at_generation_one(t.path());
            d.set_compaction_hook(Some(Arc::new(move |s| s != stop_at)));
            d.start_compaction(build()).unwrap();
            d.append(b"d").unwrap();
            let _ = d.wait_for_compaction();
            // The job stopped where a crash would have left it; the process "dies" now.
            drop(d);
            let after_stop = names(t.path());
            let left: &[&str] = match stop_at {
                Step::Build => &["journal-1.log", "journal-2.log", "snapshot-1.bin"],
                Step::WroteTemp => &[
                    "journal-1.log",
                    "journal-2.log",
                    "snapshot-1.bin",
                    "snapshot-2.tmp",
                ],
                Step::Renamed => &[
                    "journal-1.log",
                    "journal-2.log",
                    "snapshot-1.bin",
                    "snapshot-2.bin",
                ],
                Step::Removed => &["journal-1.log", "journal-2.log", "snapshot-2.bin"],
            };
            assert_eq!(after_stop[1..], *left, "what a crash at {stop_at:?} leaves");
            let (mut d, r) = DataDir::open(t.path(), test_auth()).unwrap();
            assert_eq!(state(&r), b"S+b+c+d", "stopped at {stop_at:?}: {after_stop:?}");
            let committed = matches!(stop_at, Step::Renamed | Step::Removed);
            assert_eq!(r.generation, if committed { 2 } else { 1 }, "{stop_at:?}");
            assert_eq!(r.journals, if committed { vec![2] } else { vec![1, 2] });
            // Open finished the job's clean-up (or undid its start), and a compaction after
            // the crash folds everything.
            let expected: &[&str] = if committed {
                &["LOCK", "journal-2.log", "snapshot-2.bin"]
            } else {
                &["LOCK", "journal-1.log", "journal-2.log", "snapshot-1.bin"]
            };
            assert_eq!(names(t.path()), expected, "{stop_at:?}: {after_stop:?}");
            d.append(b"e").unwrap();
            d.start_compaction(build()).unwrap();
            d.wait_for_compaction().unwrap();
            drop(d);
            let (_d, r) = DataDir::open(t.path(), test_auth()).unwrap();
            assert_eq!(r.snapshot.as_deref(), Some(&b"S+b+c+d+e"[..]), "{stop_at:?}");
            assert!(r.records.is_empty());
            assert_eq!(names(t.path()), ["LOCK", "journal-3.log", "snapshot-3.bin"]);
        }
    }

    #[test]
    fn a_crash_during_a_rotation_recovers_every_durable_record() {
        let t = tempfile::tempdir().unwrap();
        drop(dir_at_generation_one(t.path()));
        // Before the rename: a partial temporary journal, removed at open.
        fs::write(t.path().join("journal-2.tmp"), b"KCKJ").unwrap();
        let (d, r) = DataDir::open(t.path(), test_auth()).unwrap();
        assert_eq!(state(&r), b"S+b+c");
        assert_eq!(d.journal_generation(), 1);
        assert_eq!(names(t.path()), ["LOCK", "journal-1.log", "snapshot-1.bin"]);
        drop(d);
        // After the rename, before any job ran (replay after rotation without a snapshot):
        // both journals are replayed, and appends go to the newer one.
        write_file_synced(
            &t.path().join("journal-2.log"),
            &[&super::super::journal::encode_file_header(2)],
        )
        .unwrap();
        let (mut d, r) = DataDir::open(t.path(), test_auth()).unwrap();
        assert_eq!(state(&r), b"S+b+c");
        assert_eq!(r.journals, [1, 2]);
        assert_eq!(d.journal_generation(), 2);
        d.append(b"d").unwrap();
        drop(d);
        let (_d, r) = DataDir::open(t.path(), test_auth()).unwrap();
        assert_eq!(state(&r), b"S+b+c+d");
    }

    #[test]
    fn a_failed_compaction_keeps_the_journals_and_the_next_trigger_retries() {
        let t = tempfile::tempdir().unwrap();
        let mut d = dir_at_generation_one(t.path());
        // A directory squatting on the temporary name makes writing the snapshot fail.
        fs::create_dir(t.path().join("snapshot-2.tmp")).unwrap();
        d.start_compaction(build()).unwrap();
        let e = d.wait_for_compaction().unwrap_err();
        assert!(e.message().contains("snapshot-2.tmp"), "{e}");
        // A build that fails is handled alike.
        d.append(b"d").unwrap();
        d.start_compaction(Box::new(|_: Option<&[u8]>, _: &[Vec<u8>]| {
            Err(err!(KMSInternalException, "cannot encode"))
        }))
        .unwrap();
        assert!(d.wait_for_compaction().is_err());
        let stats = d.compaction_stats().clone();
        // (The first compaction is the synchronous one that made snapshot 1.)
        assert_eq!((stats.started, stats.completed, stats.failed), (3, 1, 2));
        assert_eq!(stats.last_error.as_deref(), Some("cannot encode"));
        // Nothing was lost, writes go on, and the next trigger folds every journal since.
        assert_eq!(d.generation(), 1);
        d.append(b"e").unwrap();
        assert!(d.compaction_due(0));
        d.start_compaction(build()).unwrap();
        d.wait_for_compaction().unwrap();
        assert_eq!(d.generation(), 4);
        d.append(b"f").unwrap();
        drop(d);
        // Only the squatter is left of the failures.
        assert_eq!(
            names(t.path()),
            ["LOCK", "journal-4.log", "snapshot-2.tmp", "snapshot-4.bin"]
        );
        fs::remove_dir(t.path().join("snapshot-2.tmp")).unwrap();
        let (_d, r) = DataDir::open(t.path(), test_auth()).unwrap();
        assert_eq!(r.snapshot.as_deref(), Some(&b"S+b+c+d+e"[..]));
        assert_eq!(r.records, [b"f"]);
    }

    #[test]
    fn compaction_is_due_past_both_the_floor_and_a_share_of_the_last_snapshot() {
        use crate::store::SNAPSHOT_FRACTION;
        let t = tempfile::tempdir().unwrap();
        let (mut d, _) = DataDir::open(t.path(), test_auth()).unwrap();
        d.compact(&vec![7u8; 100 * SNAPSHOT_FRACTION as usize]).unwrap();
        assert!(!d.compaction_due(0));
        d.append(&[1u8; 52]).unwrap(); // 100 bytes with its frame header and tag
        assert!(!d.compaction_due(0), "not larger than the share of the snapshot");
        d.append(&[]).unwrap(); // 148 bytes
        assert!(d.compaction_due(0));
        assert!(d.compaction_due(147));
        assert!(!d.compaction_due(148), "not past the floor");
    }

    #[test]
    fn a_torn_tail_in_a_closed_journal_is_damage() {
        let t = tempfile::tempdir().unwrap();
        let mut d = dir_at_generation_one(t.path());
        // The job stops before building: journal 1 is closed, journal 2 current.
        d.set_compaction_hook(Some(Arc::new(|s| s != Step::Build)));
        d.start_compaction(build()).unwrap();
        d.append(b"d").unwrap();
        drop(d);
        let j1 = t.path().join("journal-1.log");
        let len = fs::metadata(&j1).unwrap().len();
        let f = fs::OpenOptions::new().write(true).open(&j1).unwrap();
        f.set_len(len - 1).unwrap();
        let e = DataDir::open(t.path(), test_auth()).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::StorageException);
        assert!(
            e.message().contains("journal-1.log damaged at offset")
                && e.message().contains("closed journal"),
            "{e}"
        );
        // Reported, not repaired.
        assert_eq!(fs::metadata(&j1).unwrap().len(), len - 1);
    }

    #[test]
    fn dropping_the_data_dir_stops_and_joins_the_compaction_before_unlocking() {
        let t = tempfile::tempdir().unwrap();
        let mut d = dir_at_generation_one(t.path());
        let (hook, started, release) = holding_hook();
        d.set_compaction_hook(Some(hook));
        d.start_compaction(build()).unwrap();
        started.recv().unwrap();
        let cancel = d.in_flight.as_ref().unwrap().cancel.clone();
        let dropper = std::thread::spawn(move || drop(d));
        // The drop asks the job to stop, then waits for it (held in the hook).
        while !cancel.load(Ordering::Acquire) {
            std::thread::yield_now();
        }
        let e = DataDir::open(t.path(), test_auth()).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::StoreInUseException);
        assert!(!dropper.is_finished());
        release.send(()).unwrap();
        dropper.join().unwrap();
        // The job was asked to stop before its commit point, and did.
        let (_d, r) = DataDir::open(t.path(), test_auth()).unwrap();
        assert_eq!(r.generation, 1);
        assert_eq!(state(&r), b"S+b+c");
        assert_eq!(names(t.path()), ["LOCK", "journal-1.log", "journal-2.log", "snapshot-1.bin"]);
    }
}
