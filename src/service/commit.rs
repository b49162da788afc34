//! The commit path: every control-plane call runs as a transaction over the one [`State`]
//! (behind a mutex: control-plane calls are rare — AWS allows 5 per second); the changes it
//! records are written to the journal (fsync) and only then applied, mirrored into the data
//! plane, their KMS events appended to the event log (no fsync) and acknowledged. Keys whose
//! waiting period has ended are deleted first.

use super::worker::Task;
use super::{lock, Kms, KmsConfig, Tasks, BINCODE};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use crate::control::event_log::events_of;
use crate::control::{Change, EventLog, Keyring, Record, State};
use crate::crypto::fork::ForkGuard;
use crate::dataplane::{self, Mirror};
use crate::engine::Engine;
use crate::err;
use crate::error::Result;
use crate::kms::tx::Tx;
use crate::kms::{import, keys, rotation};
use crate::store::DataDir;
use crate::types::*;

pub(super) struct Shared {
    pub(super) core: Mutex<Core>,
    /// The data plane: HSM workers holding expanded keys. Never behind the core mutex.
    pub(super) engine: Engine,
    pub(super) config: KmsConfig,
    /// The data-plane calls counted for the event log, when
    /// [`KmsConfig::data_plane_event_interval`] asks for them.
    pub(super) tally: Option<super::tally::Tally>,
    /// The emulated AWS quotas, when [`KmsConfig::quotas`] asks for them.
    pub(super) throttle: Option<super::throttle::Throttle>,
    /// Notified after every commit, so waiters on a connection state can re-check.
    pub(super) changed: Condvar,
    pub(super) tasks: Mutex<Tasks>,
    pub(super) tasks_cv: Condvar,
    /// The process this instance was opened in (see [`crate::crypto::fork`]).
    pub(super) fork: ForkGuard,
    /// Set when a commit unwound with its record perhaps durable and the engine perhaps behind
    /// it ([`FailClosedOnUnwind`]); the next sync, the worker's or a commit's, rebuilds the
    /// engine whole.
    pub(super) data_plane_stale: AtomicBool,
    /// Set when a commit unwound before the in-memory state held its whole record: the state
    /// may then lack part of a change the journal holds (a revocation, say), so nothing is
    /// rebuilt from it: the engine stays empty and every later commit is refused until a
    /// restart replays the journal.
    pub(super) state_suspect: AtomicBool,
}

/// Fails the data plane closed should a commit unwind (a bug: a panic in the journal's write,
/// the state's apply, the event log or the sync) before the engine has followed its record:
/// the change may revoke what the engine would go on serving, and the next sync would send
/// only its own changes. So the engine is emptied ([`dataplane::fail_closed`]); if the state
/// holds the whole record, the background worker rebuilds the engine from it at once
/// ([`Task::ResyncDataPlane`]), and if not, the state is suspect ([`Shared::state_suspect`]).
pub(super) struct FailClosedOnUnwind<'s> {
    shared: &'s Shared,
    /// False once the engine has followed the record, and for a commit made while its thread
    /// was already unwinding (a write in a `Drop`): no unwinding is then this commit's.
    armed: bool,
    /// Whether the in-memory state holds the whole record.
    applied: bool,
}

impl<'s> FailClosedOnUnwind<'s> {
    pub(super) fn new(shared: &'s Shared) -> FailClosedOnUnwind<'s> {
        FailClosedOnUnwind {
            shared,
            armed: !std::thread::panicking(),
            applied: false,
        }
    }

    /// The state holds the whole record.
    pub(super) fn applied(&mut self) {
        self.applied = true;
    }

    /// The engine has followed the record.
    fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for FailClosedOnUnwind<'_> {
    fn drop(&mut self) {
        if self.armed && std::thread::panicking() {
            let shared = self.shared;
            if !self.applied {
                shared.state_suspect.store(true, Ordering::SeqCst);
            }
            shared.data_plane_stale.store(true, Ordering::SeqCst);
            dataplane::fail_closed(&shared.engine);
            shared.schedule(Task::ResyncDataPlane, Duration::ZERO);
        }
    }
}

/// The refusal of every commit once the state is suspect ([`Shared::state_suspect`]).
fn suspect_state() -> crate::KmsError {
    err!(
        KMSInternalException,
        "an internal error interrupted a change, so kmscks's in-memory state may lack part of \
         it; every acknowledged change is in the journal: restart kmscks (until then every \
         key is refused and nothing more is changed)"
    )
}

pub(super) struct Core {
    pub(super) state: State,
    pub(super) disk: Option<DataDir>,
    /// Where committed KMS events go (files beside the journal, or an in-memory ring).
    pub(super) events: EventLog,
    pub(super) keyring: Keyring,
    /// What the engine has been told.
    pub(super) mirror: Mirror,
    /// When the data-plane counters were last written to the event log.
    pub(super) tally_since: Timestamp,
    /// GetKeyLastUsage's record: each key's last successful cryptographic operation counted
    /// since [`Core::tracking_since`] and when it was written to the event log. Kept in memory
    /// (a restart starts tracking again), and only when the data plane is counted.
    pub(super) last_usage: std::collections::HashMap<KeyId, (crate::ops::Op, Timestamp)>,
    /// Since when `last_usage` records.
    pub(super) tracking_since: Timestamp,
}

impl Kms {
    /// Runs a read-only operation.
    pub(super) fn read<R>(&self, f: impl FnOnce(&Tx<'_>) -> Result<R>) -> Result<R> {
        self.read_core(|tx, _| f(tx))
    }

    /// Runs a read-only operation that also reads what the core holds beside the state (the
    /// event log).
    pub(super) fn read_core<R>(&self, f: impl FnOnce(&Tx<'_>, &Core) -> Result<R>) -> Result<R> {
        let core = self.shared.core_after_sweep()?;
        let now = self.shared.config.clock.now();
        let tx = Tx::new(
            &core.state.kms,
            &core.state.hsm,
            now,
            &self.shared.config.scope,
            &core.keyring,
            &self.principal,
        );
        f(&tx, &core)
    }

    /// Runs an operation that changes state: its changes are durable before it returns `Ok`.
    pub(super) fn write<R>(&self, f: impl FnOnce(&mut Tx<'_>) -> Result<R>) -> Result<R> {
        let mut core = self.shared.core_after_sweep()?;
        let out = self.shared.run(&mut core, &self.principal, f);
        drop(core);
        self.shared.changed.notify_all();
        out
    }

    /// Like [`Kms::write`], for operations whose failures change state too (a failed login is
    /// counted): the inner result is returned after the changes are committed.
    pub(super) fn write_always<R>(&self, f: impl FnOnce(&mut Tx<'_>) -> Result<R>) -> Result<R> {
        self.write(|tx| Ok(f(tx)))?
    }
}

impl Shared {
    /// Rebuilds the engine whole from the state if a commit unwound since the last sync
    /// ([`FailClosedOnUnwind`]). A key that still fails stays closed, retried at every sync.
    pub(super) fn resync_if_stale(&self, core: &mut Core) {
        if self.state_suspect.load(Ordering::SeqCst) {
            tracing::error!("{}", suspect_state());
            return;
        }
        if self.data_plane_stale.swap(false, Ordering::SeqCst) {
            core.mirror.force_resync();
            let core = &mut *core;
            if let Err(e) = core.mirror.sync(
                &self.engine,
                &core.state,
                &self.config.scope,
                &core.keyring,
                &[],
            ) {
                tracing::warn!("the data plane's rebuild left a key closed: {e}");
            }
        }
    }

    /// Locks the core for a caller's operation; in a forked child refuses instead
    /// (`KMSInternalException`). Every caller's path takes the core through here: in a child the
    /// mutex may have been held by a parent's thread at the fork (it would never be released),
    /// and the journal is shared with the parent. The worker thread, which a child does not
    /// have, locks the core directly.
    pub(super) fn core(&self) -> Result<MutexGuard<'_, Core>> {
        self.fork.check()?;
        Ok(lock(&self.core))
    }

    /// Locks the core ([`Shared::core`]), first deleting keys whose waiting period has ended.
    pub(super) fn core_after_sweep(&self) -> Result<MutexGuard<'_, Core>> {
        let mut core = self.core()?;
        self.sweep(&mut core)?;
        Ok(core)
    }

    /// What the clock has made due, in order: automatic rotations, expired imported material,
    /// keys at the end of their waiting period. Returns how many keys were deleted.
    pub(super) fn sweep(&self, core: &mut Core) -> Result<usize> {
        self.rotate_due(core)?;
        self.expire_due(core)?;
        // The state indexes each kind of date: nothing due costs O(1), not a scan of every key.
        let now = self.config.clock.now();
        if core.state.kms.earliest_deletion().is_none_or(|t| t > now) {
            return Ok(0);
        }
        let due = keys::due_for_deletion(&core.state.kms, now);
        self.run_due(core, &due, |tx, id| {
            keys::delete_now(tx, &id);
            Ok(())
        })
    }

    /// Rotates the material of every enabled key whose next automatic rotation date has
    /// passed. Returns how many rotated.
    pub(super) fn rotate_due(&self, core: &mut Core) -> Result<usize> {
        let now = self.config.clock.now();
        if core.state.kms.earliest_rotation().is_none_or(|t| t > now) {
            return Ok(0);
        }
        let due = rotation::due(&core.state.kms, now);
        self.run_due(core, &due, rotation::rotate_due)
    }

    /// Deletes the imported material of every key whose material has expired. Returns how
    /// many keys lost theirs.
    pub(super) fn expire_due(&self, core: &mut Core) -> Result<usize> {
        let now = self.config.clock.now();
        if core.state.kms.earliest_expiry().is_none_or(|t| t > now) {
            return Ok(0);
        }
        let due = import::due(&core.state.kms, now);
        self.run_due(core, &due, |tx, id| {
            import::expire_due(tx, id);
            Ok(())
        })
    }

    /// Runs `step` on each key of `due` in one transaction by the account's root (the service
    /// acting on its own), committed together. Returns how many keys it ran on.
    fn run_due(
        &self,
        core: &mut Core,
        due: &[KeyId],
        step: impl Fn(&mut Tx<'_>, KeyId) -> Result<()>,
    ) -> Result<usize> {
        if due.is_empty() {
            return Ok(0);
        }
        let root: String = self.config.scope.root_principal();
        self.run(core, &root, |tx| {
            due.iter().try_for_each(|id| step(tx, *id))
        })?;
        Ok(due.len())
    }

    /// Runs `f` as a transaction and commits what it recorded when it succeeds.
    pub(super) fn run<R>(
        &self,
        core: &mut Core,
        principal: &str,
        f: impl FnOnce(&mut Tx<'_>) -> Result<R>,
    ) -> Result<R> {
        let now = self.config.clock.now();
        let (out, mut outcome) = {
            let mut tx = Tx::new(
                &core.state.kms,
                &core.state.hsm,
                now,
                &self.config.scope,
                &core.keyring,
                principal,
            );
            tx.hsm_password_iterations = self.config.hsm_password_iterations;
            tx.max_custom_key_stores = self.config.quotas.as_ref().map(|q| q.max_custom_key_stores);
            tx.hsm_settings = self.config.hsm_settings();
            let out = f(&mut tx)?;
            (out, tx.finish())
        };
        // Wrapping keys the operation named are created now, outside the transaction and
        // before its record is written.
        for name in std::mem::take(&mut outcome.hsm.new_keys) {
            core.keyring
                .create(core.disk.as_ref().map(AsRef::as_ref), &name)?;
        }
        self.commit(core, now, Change::all_of(outcome))?;
        Ok(out)
    }

    pub(super) fn commit(
        &self,
        core: &mut Core,
        now: Timestamp,
        changes: Vec<Change>,
    ) -> Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        if self.state_suspect.load(Ordering::SeqCst) {
            return Err(suspect_state());
        }
        let record = Record { at: now, changes };
        let changes_applied = record.changes.clone();
        let mut fail_closed = FailClosedOnUnwind::new(self);
        if let Some(disk) = core.disk.as_mut() {
            let bytes = bincode::serde::encode_to_vec(&record, BINCODE)
                .map_err(|e| err!(KMSInternalException, "cannot encode a journal record: {e}"))?;
            disk.append(&bytes)?;
        }
        let first_event_seq = core.state.kms.next_event_seq;
        core.state.apply_record(record);
        fail_closed.applied();
        // The events go to the event log (no fsync: the journal holds them). A failed write is
        // retried at the next commit and at reopen; the operation stands and is not failed.
        let _ = core
            .events
            .append(first_event_seq, events_of(&changes_applied), now);
        // The record is durable: the data plane must follow it. A failure here (a wrapped key
        // that no longer unwraps) is reported to the caller, though the change stands.
        if self.data_plane_stale.swap(false, Ordering::SeqCst) {
            core.mirror.force_resync();
        }
        let synced = core.mirror.sync(
            &self.engine,
            &core.state,
            &self.config.scope,
            &core.keyring,
            &changes_applied,
        );
        fail_closed.disarm();
        if let Some(disk) = core.disk.as_mut() {
            if disk.compaction_due(self.config.compact_after_bytes) {
                // A snapshot lets the closed journals go, and their records hold events: those
                // must be on disk first. A failed sync only delays the compaction.
                if core.events.sync().is_ok() {
                    // At most a journal rotation: the snapshot is built in the background.
                    self.compact_if_due(disk);
                }
            }
        }
        synced
    }
}
