//! The background worker: finishes ConnectCustomKeyStore and DisconnectCustomKeyStore when
//! their delay has passed (asynchronously, as on AWS), ends a CloudHSM cluster's passing state
//! (CREATE/INITIALIZE/DELETE_IN_PROGRESS) when its time is up, takes the CloudHSM backups AWS
//! takes on a schedule (with the retention policies), and sweeps keys whose deletion date has
//! come. Times are read from the instance's injectable [`Clock`], so a test that holds a
//! `ManualClock` decides when a connection completes.

use super::{lock, Kms, Shared};
use std::cmp::Reverse;

use std::collections::BinaryHeap;
use std::sync::{Mutex, Weak};
use std::time::Duration;

use crate::crypto::fork::Joinable;
use crate::kms::stores;
use crate::kms::stores::FollowUp;
use crate::types::*;

#[derive(Default)]
pub(super) struct Tasks {
    /// Due tasks by the instance's clock time, then by scheduling order.
    pub(super) queue: BinaryHeap<Reverse<(Timestamp, u64, Task)>>,
    pub(super) seq: u64,
    pub(super) stop: bool,
    /// The worker has popped a task and not yet finished it.
    pub(super) running: bool,
    /// Test-only: the next recurring task the worker runs panics part-way.
    #[cfg(test)]
    pub(super) panic_next: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Task {
    Complete(FollowUpKey),
    SettleCluster(ClusterId),
    DeletionSweep,
    /// Imported key material expires now: sweep, then wait for the next expiry.
    MaterialExpiry,
    /// A timed network cut of this cluster ends at this time (see `hsm::heal_timed_cut`).
    HealNetwork(String, Timestamp),
    /// Writes the data-plane counters to the event log, then again after the interval.
    FlushDataPlaneEvents,
    /// A commit unwound: rebuild the engine from the state (`Shared::resync_if_stale`).
    ResyncDataPlane,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum FollowUpKey {
    Connect(CustomKeyStoreId, u64),
    Disconnect(CustomKeyStoreId, u64),
}

/// Joins the background worker when the last user handle drops.
pub(super) struct Lifetime {
    pub(super) shared: Weak<Shared>,
    pub(super) worker: Mutex<Option<Joinable<()>>>,
    /// Subscribed to the clock's jumps (held here: the clock keeps only a weak reference).
    pub(super) _clock_waker: std::sync::Arc<dyn Fn() + Send + Sync>,
}

impl Drop for Lifetime {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.upgrade() {
            if shared.fork.forked() {
                close_inherited(shared);
            } else {
                // The calls counted since the last flush are written before the files close.
                shared.flush_data_plane(&mut lock(&shared.core));
                lock(&shared.tasks).stop = true;
                shared.tasks_cv.notify_all();
            }
        }
        if let Some(worker) = lock(&self.worker).take() {
            // In a forked child the worker is the parent's: nothing to wait for.
            let _ = worker.join();
        }
    }
}

/// The last handle's drop in a forked child, which has only the thread that called `fork`:
/// the worker is the parent's (nothing to stop), and a lock one of the parent's threads held
/// at the fork stays held for good, over state it may have been changing.
///
/// - With the core and the task queue free, the data directory is closed. The child's copy
///   of its lock file's descriptor would otherwise keep the directory locked after the parent
///   closes it, so neither could open it again while the child lives (the lock belongs to the
///   open file, which both processes share).
/// - Otherwise the instance is never dropped here (`shared` is forgotten): state a parent's
///   thread may have been changing is not walked. The child's copy stays as the fork made it
///   until the child exits or execs.
fn close_inherited(shared: std::sync::Arc<Shared>) {
    let closed = match (shared.tasks.try_lock(), shared.core.try_lock()) {
        (Ok(_), Ok(mut core)) => {
            drop(core.disk.take());
            true
        }
        _ => false,
    };
    if !closed {
        std::mem::forget(shared);
    }
}

impl Kms {
    pub(super) fn follow_up(&self, follow: FollowUp) {
        let delay = self.shared.config.connect_delay;
        match follow {
            FollowUp::None => {}
            FollowUp::Connect(id, epoch) => self
                .shared
                .schedule(Task::Complete(FollowUpKey::Connect(id, epoch)), delay),
            FollowUp::Disconnect(id, epoch) => self
                .shared
                .schedule(Task::Complete(FollowUpKey::Disconnect(id, epoch)), delay),
        }
    }
}

impl Kms {
    /// Has the worker end the passing state of `cluster` when it is due (nothing to do when
    /// passing states take no time: the operation has settled the cluster already).
    pub(super) fn settle_later(&self, cluster: &ClusterId) {
        let after = self.shared.config.cluster_transition;
        if !after.is_zero() {
            self.shared
                .schedule(Task::SettleCluster(cluster.clone()), after);
        }
    }
}

impl Shared {
    /// Takes the automatic CloudHSM backups that are due and applies the backup retention
    /// policies ([`crate::hsm::backup_schedule`]), when anything is due.
    pub(super) fn backup_sweep(&self) {
        let mut core = lock(&self.core);
        if !crate::hsm::backups_due(&core.state.hsm, self.config.clock.now()) {
            return;
        }
        let root = self.config.scope.root_principal();
        // A failure here (e.g. the disk) is retried at the next sweep.
        let _ = self.run(&mut core, &root, |tx| {
            tx.in_hsm(crate::hsm::backup_schedule);
            Ok(())
        });
    }

    /// Ends the passing state of `cluster` if it is due.
    pub(super) fn settle_cluster(&self, cluster: &ClusterId) {
        let mut core = lock(&self.core);
        let root = self.config.scope.root_principal();
        // A failure here (e.g. the disk) leaves the cluster in its passing state; the next
        // open resumes it.
        let _ = self.run(&mut core, &root, |tx| {
            tx.in_hsm(|h| crate::hsm::settle_cluster(h, cluster));
            Ok(())
        });
        drop(core);
        self.changed.notify_all();
    }

    /// Schedules `task` for `after` from now, by the instance's clock.
    pub(super) fn schedule(&self, task: Task, after: Duration) {
        self.schedule_at(task, self.config.clock.now().plus(after));
    }

    /// Schedules `task` for `due`, by the instance's clock, unless it is already scheduled
    /// for then: a task run once answers every request for it at that time. So chains that
    /// each schedule their next run from the state (every import with a `ValidTo` starts a
    /// `MaterialExpiry` one, and each schedules the earliest expiry next) merge rather than
    /// multiply.
    pub(super) fn schedule_at(&self, task: Task, due: Timestamp) {
        let mut tasks = lock(&self.tasks);
        if tasks
            .queue
            .iter()
            .any(|Reverse((at, _, queued))| *at == due && *queued == task)
        {
            return;
        }
        tasks.seq += 1;
        let seq = tasks.seq;
        tasks.queue.push(Reverse((due, seq, task)));
        drop(tasks);
        self.tasks_cv.notify_all();
    }

    pub(super) fn complete(&self, follow: &FollowUpKey) {
        let mut core = lock(&self.core);
        let root = self.config.scope.root_principal();
        // A failure here (e.g. the disk) leaves the store CONNECTING/DISCONNECTING; the next
        // open resumes it.
        let _ = self.run(&mut core, &root, |tx| match follow {
            FollowUpKey::Connect(id, epoch) => stores::complete_connect(tx, id, *epoch),
            FollowUpKey::Disconnect(id, epoch) => stores::complete_disconnect(tx, id, *epoch),
        });
        drop(core);
        self.changed.notify_all();
    }
}

impl Shared {
    /// Test-only: panics if a test asked the next recurring task to ([`Tasks::panic_next`]).
    fn injected_panic(&self) {
        #[cfg(test)]
        if std::mem::take(&mut lock(&self.tasks).panic_next) {
            panic!("a recurring background task panics (injected)");
        }
    }

    /// Ends the timed network cut of `cluster_id` due at `due`, if it is still the one in force.
    fn heal_network(&self, cluster_id: &str, due: Timestamp) {
        let mut core = lock(&self.core);
        let root = self.config.scope.root_principal();
        // A failure here (e.g. the disk) leaves the cut in force; the next open reschedules it.
        let _ = self.run(&mut core, &root, |tx| {
            tx.in_hsm(|h| crate::hsm::heal_timed_cut(h, cluster_id, due))
        });
        drop(core);
        self.changed.notify_all();
    }
}

/// Wakes the worker when the instance's clock jumps (see [`Clock::on_jump`]): it takes the
/// tasks lock first, so the worker is either waiting (and is woken) or has not yet read the
/// clock (and will read the new time).
pub(super) fn clock_waker(
    shared: &std::sync::Arc<Shared>,
) -> std::sync::Arc<dyn Fn() + Send + Sync> {
    let weak = std::sync::Arc::downgrade(shared);
    std::sync::Arc::new(move || {
        if let Some(shared) = weak.upgrade() {
            drop(lock(&shared.tasks));
            shared.tasks_cv.notify_all();
        }
    })
}

/// The background worker: finishes connects and disconnects when due, and sweeps deletions.
pub(super) fn background(shared: Weak<Shared>) {
    loop {
        let Some(strong) = shared.upgrade() else {
            return;
        };
        let next = {
            let mut tasks = lock(&strong.tasks);
            loop {
                if tasks.stop {
                    return;
                }
                let now = strong.config.clock.now();
                match tasks.queue.peek() {
                    Some(Reverse((at, _, _))) if *at <= now => {
                        tasks.running = true;
                        break tasks.queue.pop().map(|Reverse((_, _, t))| t);
                    }
                    Some(Reverse((at, _, _))) => {
                        // As long as the clock needs to pass in real time (a clock that jumps
                        // instead wakes us through `on_jump`); at least 1 ms, so a clock that
                        // stands still costs a wake-up per due task per millisecond at most.
                        let wait = at.since(now).max(Duration::from_millis(1));
                        tasks = strong
                            .tasks_cv
                            .wait_timeout(tasks, wait)
                            .unwrap_or_else(|p| p.into_inner())
                            .0;
                    }
                    None => {
                        tasks = strong
                            .tasks_cv
                            .wait(tasks)
                            .unwrap_or_else(|p| p.into_inner())
                    }
                }
            }
        };
        // A task that panics (a bug) ends, not the worker: the tasks after it still run (a
        // commit that unwound here has queued the data plane's rebuild among them).
        // A recurring task whose successor is scheduled only after it ran (from what the run
        // found): what to schedule should it unwind before then.
        let retry = match next {
            Some(Task::MaterialExpiry) => Some(strong.config.deletion_check_interval),
            _ => None,
        };
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match next {
            Some(Task::Complete(follow)) => strong.complete(&follow),
            Some(Task::HealNetwork(cluster_id, due)) => {
                strong.heal_network(&cluster_id, due);
            }
            Some(Task::SettleCluster(cluster)) => strong.settle_cluster(&cluster),
            Some(Task::DeletionSweep) => {
                // Scheduled first: a sweep that panics must not end the periodic sweeps.
                strong.schedule(Task::DeletionSweep, strong.config.deletion_check_interval);
                strong.injected_panic();
                let _ = strong.sweep(&mut lock(&strong.core));
                strong.backup_sweep();
                strong.changed.notify_all();
            }
            Some(Task::MaterialExpiry) => {
                // A sweep that panics is tried again after the periodic sweep's interval
                // (`retry`): the next expiry is read only after it.
                strong.injected_panic();
                let mut core = lock(&strong.core);
                let _ = strong.sweep(&mut core);
                let next = core.state.kms.earliest_expiry();
                drop(core);
                strong.changed.notify_all();
                if let Some(at) = next {
                    strong.schedule_at(Task::MaterialExpiry, at);
                }
            }
            Some(Task::ResyncDataPlane) => strong.resync_if_stale(&mut lock(&strong.core)),
            Some(Task::FlushDataPlaneEvents) => {
                // Scheduled first, as the sweep is.
                if let Some(every) = strong.config.data_plane_event_interval {
                    strong.schedule(Task::FlushDataPlaneEvents, every);
                }
                strong.injected_panic();
                strong.flush_data_plane(&mut lock(&strong.core));
            }
            None => {}
        }));
        if ran.is_err() {
            tracing::error!("a background task panicked; the worker goes on with the next");
            if let Some(after) = retry {
                strong.schedule(Task::MaterialExpiry, after);
            }
        }
        lock(&strong.tasks).running = false;
        strong.tasks_cv.notify_all();
        drop(strong);
    }
}

impl Kms {
    internal_item! {
        /// Blocks until the background worker has run every task due at the clock's current
        /// time (a test that jumps a `ManualClock` and then compares states uses it; the
        /// worker's results are otherwise only eventually visible, as on AWS).
        #[cfg_attr(not(feature = "internals"), allow(dead_code))]
        pub fn wait_for_background(&self) {
            let shared = &self.shared;
            let mut tasks = lock(&shared.tasks);
            loop {
                let now = shared.config.clock.now();
                let due = matches!(tasks.queue.peek(), Some(Reverse((at, _, _))) if *at <= now);
                if tasks.stop || (!due && !tasks.running) {
                    return;
                }
                // Woken by the worker after each task (and by every scheduling and clock jump).
                tasks = shared
                    .tasks_cv
                    .wait(tasks)
                    .unwrap_or_else(|p| p.into_inner());
            }
        }
    }
}
