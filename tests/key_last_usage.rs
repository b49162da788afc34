//! GetKeyLastUsage: the last successful cryptographic operation with a key since this instance
//! began tracking, as the data-plane counters of the event log saw it.

mod common;

use std::time::Duration;

use common::*;
use kmscks::api::kms::*;
use kmscks::secret::SecretBytes;
use kmscks::types::Clock;
use kmscks::{ErrorKind, Kms, KmsConfig};

fn encrypt(kms: &Kms, key_id: &str) -> Result<EncryptResponse, kmscks::KmsError> {
    kms.encrypt(&EncryptRequest {
        key_id: key_id.into(),
        plaintext: SecretBytes::new(b"hello".to_vec()),
        ..Default::default()
    })
}

#[test]
fn a_key_never_used_has_no_last_usage_and_tracking_starts_when_the_instance_opened() {
    let (kms, clock) = kms();
    let started = clock.now();
    clock.advance(Duration::from_secs(60));
    let key = create_key(&kms, None);
    let r = kms.get_key_last_usage(&key_req(&key)).unwrap();
    assert_eq!(r.key_last_usage, None);
    assert_eq!(r.tracking_start_date, started);
    assert_eq!(r.key_creation_date, describe_key(&kms, &key).creation_date);
    assert!(r.key_id.ends_with(&format!(":key/{key}")), "{}", r.key_id);
}

#[test]
fn the_last_successful_operation_is_reported_and_a_failed_one_is_not() {
    let (kms, clock) = kms();
    let key = create_key(&kms, None);
    let blob = encrypt(&kms, &key).unwrap().ciphertext_blob;
    clock.advance(Duration::from_secs(10));
    let r = kms.get_key_last_usage(&key_req(&key)).unwrap();
    let usage = r.key_last_usage.expect("the Encrypt was counted");
    assert_eq!(usage.operation, "Encrypt");
    assert_eq!(usage.timestamp, clock.now());

    clock.advance(Duration::from_secs(10));
    kms.decrypt(&DecryptRequest {
        ciphertext_blob: blob,
        ..Default::default()
    })
    .unwrap();
    // A failure (wrong context) is not a use.
    let bad = kms.decrypt(&DecryptRequest {
        ciphertext_blob: encrypt(&kms, &key).unwrap().ciphertext_blob,
        encryption_context: [("k".to_owned(), "v".to_owned())].into(),
        ..Default::default()
    });
    assert_aws(bad, ErrorKind::InvalidCiphertextException);
    let usage = kms
        .get_key_last_usage(&key_req(&key))
        .unwrap()
        .key_last_usage
        .unwrap();
    // Decrypt and Encrypt were counted in the same interval; either is the last one then.
    assert!(
        ["Encrypt", "Decrypt"].contains(&usage.operation.as_str()),
        "{usage:?}"
    );
    assert_eq!(usage.timestamp, clock.now());
}

#[test]
fn other_keys_usage_is_not_this_keys() {
    let (kms, _clock) = kms();
    let (used, unused) = (create_key(&kms, None), create_key(&kms, None));
    encrypt(&kms, &used).unwrap();
    assert!(kms
        .get_key_last_usage(&key_req(&used))
        .unwrap()
        .key_last_usage
        .is_some());
    assert_eq!(
        kms.get_key_last_usage(&key_req(&unused))
            .unwrap()
            .key_last_usage,
        None
    );
}

#[test]
fn aliases_are_refused_and_unknown_keys_are_not_found() {
    let (kms, _clock) = kms();
    let key = create_key(&kms, None);
    kms.create_alias(&AliasRequest {
        alias_name: "alias/used".into(),
        target_key_id: key,
    })
    .unwrap();
    assert!(kms.get_key_last_usage(&key_req("alias/used")).is_err());
    assert_aws(
        kms.get_key_last_usage(&key_req("1234abcd-12ab-34cd-56ef-1234567890ab")),
        ErrorKind::NotFoundException,
    );
}

#[test]
fn without_data_plane_counting_nothing_is_tracked_and_tracking_starts_at_each_call() {
    let (config, clock) = config();
    let kms = Kms::in_memory_with(KmsConfig {
        data_plane_event_interval: None,
        ..config
    });
    let key = create_key(&kms, None);
    encrypt(&kms, &key).unwrap();
    clock.advance(Duration::from_secs(5));
    let r = kms.get_key_last_usage(&key_req(&key)).unwrap();
    assert_eq!(r.key_last_usage, None);
    assert_eq!(r.tracking_start_date, clock.now());
}
