//! White-box: the background worker's recurring tasks outlive a run that panics (a bug), so a
//! deletion falls due on time even when nothing else calls in.

use super::*;
use crate::api::kms::{CreateKeyRequest, ScheduleKeyDeletionRequest};
use crate::types::{KeyId, ManualClock};

#[test]
fn a_deletion_sweep_that_panics_keeps_the_periodic_sweeps_going() {
    let clock = ManualClock::starting_now();
    let kms = Kms::in_memory_with(KmsConfig {
        clock: Arc::new(clock.clone()),
        hsm_password_iterations: KmsConfig::TEST_HSM_PASSWORD_ITERATIONS,
        ..KmsConfig::default()
    });
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
