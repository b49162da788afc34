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

use std::borrow::Cow;
use std::fs;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use super::{journal_name, read_closed_journal, snapshot, snapshot_name, sync_dir};
use super::{rename, write_file_synced, Listing};
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
                    Some(g) => Some(snapshot::load(&self.dir.join(snapshot_name(g)), g)?),
                    None => None,
                };
                let mut records = Vec::new();
                for g in self.journals.clone() {
                    let path = self.dir.join(journal_name(g));
                    records.extend(read_closed_journal(&path, g)?);
                }
                Cow::Owned(build(base.as_deref(), &records)?)
            }
        };
        self.check_cancel()?;
        let tmp = self.dir.join(format!("snapshot-{}.tmp", self.target));
        let bin = self.dir.join(snapshot_name(self.target));
        let header = snapshot::encode_header(self.target, &payload);
        let written = write_file_synced(&tmp, &[&header, &payload])
            .and_then(|()| self.step(Step::WroteTemp))
            .and_then(|()| self.check_cancel())
            .and_then(|()| rename(&tmp, &bin));
        if let Err(e) = written {
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
    handle: JoinHandle<Result<Done>>,
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
        Ok(InFlight { handle, cancel })
    }

    pub(super) fn is_finished(&self) -> bool {
        self.handle.is_finished()
    }

    /// Asks the job to stop at its next check (it never stops after the commit point).
    pub(super) fn cancel(&self) {
        self.cancel.store(true, Ordering::Release);
    }

    /// Waits for the job and returns its outcome.
    pub(super) fn join(self) -> Result<Done> {
        self.handle.join().unwrap_or_else(|_| {
            Err(err!(
                StorageException,
                "the compaction thread panicked; its journals stay and the next trigger retries"
            ))
        })
    }
}
