//! What the service gives the store's compaction: how a snapshot and journal records become a
//! [`State`] (decode, reindex, replay — the same code at open and in a background compaction,
//! so the two can never disagree), and the trigger the commit path checks after each write.
//!
//! The commit path never encodes the state: when [`DataDir::compaction_due`] says so it only
//! rotates the journal, and a background thread rebuilds the state from the files and encodes
//! that (see the [`store`](crate::store) module doc for the protocol and its crash safety).

use std::path::Path;

use super::{decode, Shared, BINCODE};
#[cfg(feature = "internals")]
use super::{lock, Kms};
use crate::control::event_log::events_of;
use crate::control::{Record, State};
use crate::err;
use crate::error::Result;
use crate::kms::intern;
use crate::kms::model::TrailEvent;
use crate::store::{BuildSnapshot, DataDir};
use crate::types::Scope;

/// Decodes a snapshot payload of the data directory `dir` and rebuilds its indexes.
pub(super) fn decode_snapshot(bytes: &[u8], dir: &Path) -> Result<State> {
    let what = format!("snapshot of {}", dir.display());
    let mut state = intern::sharing(|| decode::<State>(bytes, &what))?;
    state.reindex();
    Ok(state)
}

/// Applies the journal records of `dir`, in order. With `events`, also collects the KMS events
/// the records hold, numbered as the state numbers them (the open hands them to the event log,
/// which may have lost the last ones: they are written after the journal's fsync).
pub(super) fn replay(
    state: &mut State,
    records: &[Vec<u8>],
    dir: &Path,
    mut events: Option<&mut Vec<(u64, TrailEvent)>>,
) -> Result<()> {
    intern::sharing(|| {
        for (i, bytes) in records.iter().enumerate() {
            let what = format!("journal record {i} of {}", dir.display());
            let record = decode::<Record>(bytes, &what)?;
            if let Some(events) = events.as_deref_mut() {
                let first = state.kms.next_event_seq;
                for (seq, event) in (first..).zip(events_of(&record.changes)) {
                    events.push((seq, event.clone()));
                }
            }
            state.apply_record(record);
        }
        Ok(())
    })
}

/// Encodes the whole state as a snapshot payload.
pub(super) fn encode_snapshot(state: &State) -> Result<Vec<u8>> {
    bincode::serde::encode_to_vec(state, BINCODE)
        .map_err(|e| err!(KMSInternalException, "cannot encode the snapshot: {e}"))
}

/// The background job's builder: the base snapshot (or the empty state of `scope`) with the
/// closed journals replayed over it, encoded.
fn builder(scope: Scope, dir: &Path) -> Box<BuildSnapshot> {
    let dir = dir.to_path_buf();
    Box::new(move |base: Option<&[u8]>, records: &[Vec<u8>]| {
        let mut state = match base {
            Some(bytes) => decode_snapshot(bytes, &dir)?,
            None => State::new(scope),
        };
        replay(&mut state, records, &dir, None)?;
        encode_snapshot(&state)
    })
}

impl Shared {
    /// After a commit: starts a background compaction if one is due. Costs a rotation of the
    /// journal at most (a file created, two fsyncs); a failure is not the caller's — its
    /// record is durable, and the next commit tries again.
    pub(super) fn compact_if_due(&self, disk: &mut DataDir) {
        if disk.compaction_due(self.config.compact_after_bytes) {
            let build = builder(self.config.scope.clone(), disk.path());
            let _ = disk.start_compaction(build);
        }
    }
}

#[cfg(feature = "internals")]
impl Kms {
    /// Sets the hook every later compaction job calls at each step (white-box tests: hold a
    /// job in flight, or stop it where a crash would).
    #[doc(hidden)]
    pub fn set_compaction_hook(&self, hook: Option<crate::store::CompactionHook>) {
        if let Some(disk) = lock(&self.shared.core).disk.as_mut() {
            disk.set_compaction_hook(hook);
        }
    }

    /// What compactions have done since the instance opened (`None` in memory).
    #[doc(hidden)]
    pub fn compaction_stats(&self) -> Option<crate::store::CompactionStats> {
        lock(&self.shared.core)
            .disk
            .as_ref()
            .map(|d| d.compaction_stats().clone())
    }

    /// Waits for the compaction in flight, if any, and returns its outcome (white-box tests;
    /// holds the core lock meanwhile, which a commit never does).
    #[doc(hidden)]
    pub fn wait_for_compaction(&self) -> Result<()> {
        match lock(&self.shared.core).disk.as_mut() {
            Some(disk) => disk.wait_for_compaction(),
            None => Ok(()),
        }
    }
}
