//! White-box: the background worker's recurring tasks outlive a run that panics (a bug), so a
//! deletion falls due on time even when nothing else calls in.

use super::*;
use crate::api::kms::{CreateKeyRequest, ScheduleKeyDeletionRequest};
use crate::types::{Clock, KeyId, ManualClock};
use worker::Task;

/// An in-memory instance whose clock the test moves.
fn on_a_manual_clock() -> (Kms, ManualClock) {
    let clock = ManualClock::starting_now();
    let kms = Kms::in_memory_with(KmsConfig {
        clock: Arc::new(clock.clone()),
        hsm_password_iterations: KmsConfig::TEST_HSM_PASSWORD_ITERATIONS,
        ..KmsConfig::default()
    });
    (kms, clock)
}

#[test]
fn a_deletion_sweep_that_panics_keeps_the_periodic_sweeps_going() {
    let (kms, clock) = on_a_manual_clock();
    let interval = kms.shared.config.deletion_check_interval;
    let key = kms
        .create_key(&CreateKeyRequest::default())
        .unwrap()
        .key_metadata
        .key_id;
    kms.schedule_key_deletion(&ScheduleKeyDeletionRequest {
        key_id: key.clone(),
        pending_window_in_days: Some(7),
    })
    .unwrap();
    // Invariant: the id came from CreateKey.
    let id = KeyId::parse(&key).unwrap();

    lock(&kms.shared.tasks).panic_next = true;
    clock.advance(interval);
    kms.wait_for_background();
    assert!(
        !lock(&kms.shared.tasks).panic_next,
        "the sweep was to run, and panic"
    );

    // No call comes in: only the worker's own next sweep can delete the key.
    clock.advance(Duration::from_secs(8 * 24 * 3600));
    kms.wait_for_background();
    assert!(
        !lock(&kms.shared.core).state.kms.keys.contains_key(&id),
        "the sweep after the one that panicked deletes the key"
    );
}

#[test]
fn a_task_scheduled_twice_for_the_same_time_runs_once_so_expiry_chains_merge() {
    let (kms, clock) = on_a_manual_clock();
    let due = clock.now().plus(Duration::from_secs(3600));
    let queued = |kms: &Kms| {
        lock(&kms.shared.tasks)
            .queue
            .iter()
            .filter(|std::cmp::Reverse((_, _, t))| *t == Task::MaterialExpiry)
            .count()
    };
    // Two imports expiring at the same instant each ask for a sweep then.
    kms.shared.schedule_at(Task::MaterialExpiry, due);
    kms.shared.schedule_at(Task::MaterialExpiry, due);
    assert_eq!(queued(&kms), 1);
    // Another time is another run.
    kms.shared
        .schedule_at(Task::MaterialExpiry, due.plus(Duration::from_secs(1)));
    assert_eq!(queued(&kms), 2);
}
