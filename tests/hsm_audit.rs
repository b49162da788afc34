//! The HSM audit streams are tamper-evident (spec §8.2, issue 11 item 2): streams written by the
//! service verify, across a reopen of the data directory too; a record removed from, reordered
//! in, or edited in the *stored* state (reached through the `internals` feature) is caught by
//! the library's verifier at the right HSM, sequence number and kind; the reboot counter of an
//! HSM in a restored cluster starts at 1.

mod common;

use common::*;
use kmscks::api::hsm::*;
use kmscks::api::hsm_audit::{self, BreakKind, ChainBreak, StreamVerdict};
use kmscks::hsm::CloudHsmState;
use kmscks::types::HsmId;
use kmscks::Kms;

/// A store connected on a fresh cluster, and a key made in it: every HSM's stream has records
/// (CN_INIT_TOKEN, CN_CREATE_USER, CN_LOGIN, CN_CHANGE_PSWD, CN_GENERATE_KEY).
fn busy_cluster(kms: &Kms, clock: &kmscks::types::ManualClock) -> String {
    let f = connected_store(kms, clock, "S");
    create_key(kms, Some(&f.store_id));
    f.cluster.cluster_id
}

/// Verifies every stream of `cluster_id` in `state`, as a client would.
fn verify_state(state: &CloudHsmState, cluster_id: &str) -> Vec<StreamVerdict> {
    kmscks::hsm::audit_log(state, cluster_id, None)
        .unwrap()
        .iter()
        .map(|(hsm, events)| hsm_audit::verify_stream(hsm, events))
        .collect()
}

/// The stored state, with the stream of the cluster's second HSM handed to `tamper`; returns
/// that HSM.
fn tampered(
    kms: &Kms,
    cluster_id: &str,
    tamper: impl FnOnce(&mut Vec<AuditEvent>),
) -> (CloudHsmState, HsmId) {
    let mut state = kms.state_snapshot().hsm;
    let (key, stream) = state
        .audit
        .iter_mut()
        .filter(|((c, _), _)| c.as_str() == cluster_id)
        .nth(1)
        .expect("the cluster has two HSMs");
    assert!(stream.len() >= 5, "{} records", stream.len());
    tamper(stream);
    let hsm = key.1.clone();
    (state, hsm)
}

/// The one broken verdict: it is `hsm`'s, and every other stream is intact.
fn the_break(verdicts: &[StreamVerdict], hsm: &HsmId) -> ChainBreak {
    let broken: Vec<&StreamVerdict> = verdicts.iter().filter(|v| !v.is_intact()).collect();
    assert_eq!(broken.len(), 1, "{verdicts:?}");
    assert_eq!(&broken[0].hsm_id, hsm);
    broken[0].chain_break.expect("broken")
}

#[test]
fn streams_written_by_the_service_verify_with_hashes_in_the_audit_log_response() {
    let (kms, clock) = kms();
    let cid = busy_cluster(&kms, &clock);
    let verdicts = verify_state(&kms.state_snapshot().hsm, &cid);
    assert_eq!(verdicts.len(), 2);
    for v in &verdicts {
        assert!(v.is_intact(), "{v:?}");
        assert!(v.records >= 5, "{v:?}");
    }
    // The response carries what a client needs: each record's hashes, chained from the genesis.
    for (hsm, events) in kms.hsm_audit_log(&cid, None).unwrap() {
        assert_eq!(events[0].previous_hash, hsm_audit::genesis_hash(&hsm));
        for pair in events.windows(2) {
            assert_eq!(pair[1].previous_hash, pair[0].hash);
        }
        assert!(events.iter().all(|e| e.reboot_counter == 0));
    }
}

#[test]
fn a_chain_replayed_from_the_journal_is_the_chain_that_was_written() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, clock) = config();
    let kms = Kms::open_with(dir.path(), cfg).unwrap();
    let cid = busy_cluster(&kms, &clock);
    let before = kms.hsm_audit_log(&cid, None).unwrap();
    drop(kms);
    let (cfg, _) = config();
    let kms = Kms::open_with(dir.path(), cfg).unwrap();
    assert_eq!(kms.hsm_audit_log(&cid, None).unwrap(), before);
    assert!(verify_state(&kms.state_snapshot().hsm, &cid)
        .iter()
        .all(StreamVerdict::is_intact));
}

#[test]
fn a_record_removed_from_the_stored_stream_is_reported_as_removed_at_its_sequence_number() {
    let (kms, clock) = kms();
    let cid = busy_cluster(&kms, &clock);
    let (state, hsm) = tampered(&kms, &cid, |s| {
        s.remove(3);
    });
    let b = the_break(&verify_state(&state, &cid), &hsm);
    assert_eq!((b.sequence, b.kind), (3, BreakKind::Removed));
}

#[test]
fn two_stored_records_swapped_are_reported_as_reordered_at_the_first() {
    let (kms, clock) = kms();
    let cid = busy_cluster(&kms, &clock);
    let (state, hsm) = tampered(&kms, &cid, |s| s.swap(1, 2));
    let b = the_break(&verify_state(&state, &cid), &hsm);
    assert_eq!((b.sequence, b.kind), (1, BreakKind::Reordered));
}

#[test]
fn a_stored_record_with_an_edited_field_is_reported_as_edited_at_its_sequence_number() {
    let (kms, clock) = kms();
    let cid = busy_cluster(&kms, &clock);
    let (state, hsm) = tampered(&kms, &cid, |s| s[2].response = "FAILURE".into());
    let b = the_break(&verify_state(&state, &cid), &hsm);
    assert_eq!((b.sequence, b.kind), (2, BreakKind::Edited));
    // Rehashing the edited record does not help: the next record's link gives it away.
    let (state, hsm) = tampered(&kms, &cid, |s| {
        s[2].user = Some("mallory".into());
        s[2].hash = hsm_audit::record_hash(&s[2]);
    });
    let b = the_break(&verify_state(&state, &cid), &hsm);
    assert_eq!((b.sequence, b.kind), (2, BreakKind::Edited));
}

#[test]
fn an_hsm_of_a_cluster_restored_from_a_backup_records_reboot_counter_one() {
    let (kms, clock) = kms();
    let cid = busy_cluster(&kms, &clock);
    let backup = kms.create_backup(&cid).unwrap();
    let restored = kms
        .create_cluster(&CreateClusterRequest {
            source_backup_id: Some(backup.backup_id.clone()),
            ..Default::default()
        })
        .unwrap()
        .cluster;
    let zone = restored.subnet_mapping.keys().next().unwrap().clone();
    kms.create_hsm(&CreateHsmRequest {
        cluster_id: restored.cluster_id.to_string(),
        availability_zone: zone,
        region: None,
    })
    .unwrap();
    let streams = kms
        .hsm_audit_log(restored.cluster_id.as_str(), None)
        .unwrap();
    assert_eq!(streams.len(), 1);
    let (hsm, events) = &streams[0];
    assert_eq!(events[0].opcode, "CN_INIT_TOKEN");
    assert!(events.iter().all(|e| e.reboot_counter == 1), "{events:?}");
    assert!(hsm_audit::verify_stream(hsm, events).is_intact());
}
