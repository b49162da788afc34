//! Key rotation on default-store keys, AWS-exact: the schedule (EnableKeyRotation,
//! DisableKeyRotation, GetKeyRotationStatus: the period's bounds and default, the next rotation
//! date), RotateKeyOnDemand and its limit, ListKeyRotations and its paging, what each key
//! state allows, the policy actions, custom key store keys refused; and the material: every
//! version keeps decrypting, new blobs use the newest, automatic rotations follow the clock
//! across simulated years, and versions and schedules survive a restart.

mod common;

use common::*;
use kmscks::api::kms::*;
use kmscks::secret::SecretBytes;
use kmscks::types::{ManualClock, RotationType, Timestamp};
use kmscks::{ErrorKind, Kms};

const DAY_MS: i64 = 86_400_000;

fn enable(kms: &Kms, key_id: &str, days: Option<u32>) -> kmscks::Result<Empty> {
    kms.enable_key_rotation(&EnableKeyRotationRequest {
        key_id: key_id.into(),
        rotation_period_in_days: days,
    })
}

fn status(kms: &Kms, key_id: &str) -> KeyRotationStatusResponse {
    kms.get_key_rotation_status(&key_req(key_id)).unwrap()
}

fn encrypt(kms: &Kms, key_id: &str) -> Vec<u8> {
    kms.encrypt(&EncryptRequest {
        key_id: key_id.into(),
        plaintext: SecretBytes::new(b"rotating".to_vec()),
        ..Default::default()
    })
    .unwrap()
    .ciphertext_blob
}

fn decrypts(kms: &Kms, blob: &[u8]) -> kmscks::Result<()> {
    let p = kms.decrypt(&DecryptRequest {
        ciphertext_blob: blob.to_vec(),
        ..Default::default()
    })?;
    assert_eq!(p.plaintext.expose(), b"rotating");
    Ok(())
}

/// The material version a blob names (docs/ciphertext.md: the nonce's first 4 bytes).
fn version_of(blob: &[u8]) -> u32 {
    u32::from_be_bytes(blob[33..37].try_into().unwrap())
}

fn rotate(kms: &Kms, key_id: &str) -> kmscks::Result<RotateKeyOnDemandResponse> {
    kms.rotate_key_on_demand(&key_req(key_id))
}

fn rotations(kms: &Kms, key_id: &str) -> Vec<RotationsListEntry> {
    kms.list_key_rotations(&ListKeyRotationsRequest {
        key_id: key_id.into(),
        ..Default::default()
    })
    .unwrap()
    .rotations
}

fn now(clock: &ManualClock) -> Timestamp {
    use kmscks::types::Clock;
    clock.now()
}

#[test]
fn a_new_key_has_rotation_disabled_and_status_names_its_arn() {
    let (kms, _clock) = kms();
    let key = create_key(&kms, None);
    let s = status(&kms, &key);
    assert_eq!(
        s,
        KeyRotationStatusResponse {
            key_rotation_enabled: false,
            key_id: describe_key(&kms, &key).arn,
            ..Default::default()
        }
    );
}

#[test]
fn enabling_rotation_schedules_the_next_one_a_period_from_now_365_days_by_default() {
    let (kms, clock) = kms();
    let key = create_key(&kms, None);
    enable(&kms, &key, None).unwrap();
    let s = status(&kms, &key);
    assert!(s.key_rotation_enabled);
    assert_eq!(s.rotation_period_in_days, Some(365));
    assert_eq!(s.next_rotation_date, Some(now(&clock).plus_days(365)));
    assert_eq!(s.on_demand_rotation_start_date, None);

    // Enabling again with another period counts the new period from now.
    clock.advance_days(10);
    enable(&kms, &key, Some(90)).unwrap();
    let s = status(&kms, &key);
    assert_eq!(s.rotation_period_in_days, Some(90));
    assert_eq!(s.next_rotation_date, Some(now(&clock).plus_days(90)));
    // By key ARN too.
    let arn = describe_key(&kms, &key).arn;
    enable(&kms, &arn, Some(2560)).unwrap();
    assert_eq!(status(&kms, &arn).rotation_period_in_days, Some(2560));
}

#[test]
fn the_rotation_period_is_90_to_2560_days_checked_before_the_key_is_looked_up() {
    let (kms, _clock) = kms();
    let key = create_key(&kms, None);
    for (days, words) in [
        (89, "Member must have value greater than or equal to 90"),
        (0, "Member must have value greater than or equal to 90"),
        (2561, "Member must have value less than or equal to 2560"),
    ] {
        let e = assert_aws(
            enable(&kms, &key, Some(days)),
            ErrorKind::ValidationException,
        );
        assert!(e.message().contains(words), "{e}");
        assert!(e.message().contains("rotationPeriodInDays"), "{e}");
        // Even for a key that does not exist.
        assert_aws(
            enable(&kms, "1234abcd-12ab-34cd-56ef-1234567890ab", Some(days)),
            ErrorKind::ValidationException,
        );
    }
    assert!(!status(&kms, &key).key_rotation_enabled);
    for days in [90, 2560] {
        enable(&kms, &key, Some(days)).unwrap();
    }
}

#[test]
fn disabling_rotation_clears_the_schedule_and_is_idempotent() {
    let (kms, _clock) = kms();
    let key = create_key(&kms, None);
    kms.disable_key_rotation(&key_req(&key)).unwrap();
    enable(&kms, &key, Some(100)).unwrap();
    kms.disable_key_rotation(&key_req(&key)).unwrap();
    let s = status(&kms, &key);
    assert!(!s.key_rotation_enabled);
    assert_eq!(s.rotation_period_in_days, None);
    assert_eq!(s.next_rotation_date, None);
    kms.disable_key_rotation(&key_req(&key)).unwrap();
}

#[test]
fn a_disabled_key_keeps_its_status_but_refuses_changes_with_disabled_exception() {
    let (kms, _clock) = kms();
    let key = create_key(&kms, None);
    enable(&kms, &key, Some(120)).unwrap();
    kms.disable_key(&key_req(&key)).unwrap();
    let s = status(&kms, &key);
    assert!(s.key_rotation_enabled);
    assert_eq!(s.rotation_period_in_days, Some(120));
    let arn = describe_key(&kms, &key).arn;
    for result in [
        enable(&kms, &key, None),
        kms.disable_key_rotation(&key_req(&key)),
    ] {
        let e = assert_aws(result, ErrorKind::DisabledException);
        assert!(e.message().contains(&arn), "{e}");
    }
    kms.enable_key(&key_req(&key)).unwrap();
    assert!(status(&kms, &key).key_rotation_enabled);
}

#[test]
fn a_key_pending_deletion_reports_false_refuses_changes_and_cancelling_restores_its_status() {
    let (kms, _clock) = kms();
    let key = create_key(&kms, None);
    enable(&kms, &key, Some(200)).unwrap();
    let before = status(&kms, &key);
    kms.schedule_key_deletion(&ScheduleKeyDeletionRequest {
        key_id: key.clone(),
        pending_window_in_days: Some(7),
    })
    .unwrap();
    let s = status(&kms, &key);
    assert!(!s.key_rotation_enabled);
    assert_eq!(s.next_rotation_date, None);
    for result in [
        enable(&kms, &key, None),
        kms.disable_key_rotation(&key_req(&key)),
    ] {
        assert_aws(result, ErrorKind::KMSInvalidStateException);
    }
    kms.cancel_key_deletion(&key_req(&key)).unwrap();
    assert_eq!(status(&kms, &key), before);
}

#[test]
fn rotation_operations_take_a_key_id_or_arn_not_an_alias_and_name_a_missing_key() {
    let (kms, _clock) = kms();
    let key = create_key(&kms, None);
    kms.create_alias(&AliasRequest {
        alias_name: "alias/r".into(),
        target_key_id: key.clone(),
    })
    .unwrap();
    let missing = "1234abcd-12ab-34cd-56ef-1234567890ab";
    for by in ["alias/r", missing] {
        assert_aws(enable(&kms, by, None), ErrorKind::NotFoundException);
        assert_aws(
            kms.disable_key_rotation(&key_req(by)),
            ErrorKind::NotFoundException,
        );
        assert_aws(
            kms.get_key_rotation_status(&key_req(by)),
            ErrorKind::NotFoundException,
        );
    }
}

#[test]
fn each_rotation_operation_is_checked_against_its_own_policy_action() {
    let (kms, _clock) = kms();
    let key = create_key(&kms, None);
    let user = kms.acting_as("arn:aws:iam::111122223333:user/uid-1001");
    for (result, action) in [
        (enable(&user, &key, None), "kms:EnableKeyRotation"),
        (
            user.disable_key_rotation(&key_req(&key)),
            "kms:DisableKeyRotation",
        ),
        (
            user.get_key_rotation_status(&key_req(&key))
                .map(|_| Empty {}),
            "kms:GetKeyRotationStatus",
        ),
    ] {
        let e = assert_aws(result, ErrorKind::AccessDeniedException);
        assert!(e.message().contains(action), "{e}");
    }
}

#[test]
fn custom_key_store_keys_refuse_every_rotation_operation() {
    let (kms, clock) = kms();
    let f = connected_store(&kms, &clock, "s1");
    let key = create_key(&kms, Some(&f.store_id));
    for result in [
        enable(&kms, &key, None),
        enable(&kms, &key, Some(90)),
        kms.disable_key_rotation(&key_req(&key)),
        kms.get_key_rotation_status(&key_req(&key))
            .map(|_| Empty {}),
    ] {
        let e = assert_aws(result, ErrorKind::UnsupportedOperationException);
        assert!(e.message().contains("AWS_CLOUDHSM"), "{e}");
    }
}

#[test]
fn enabling_and_disabling_rotation_are_recorded_in_the_event_log() {
    let (kms, _clock) = kms();
    let key = create_key(&kms, None);
    enable(&kms, &key, Some(99)).unwrap();
    kms.disable_key_rotation(&key_req(&key)).unwrap();
    let events = kms.kms_events().unwrap();
    let names: Vec<&str> = events.iter().map(|e| e.event_name.as_str()).collect();
    assert!(
        names.ends_with(&["EnableKeyRotation", "DisableKeyRotation"]),
        "{names:?}"
    );
    let enable_event = &events[events.len() - 2];
    assert!(
        enable_event.detail.contains("\"rotationPeriodInDays\":99"),
        "{}",
        enable_event.detail
    );
}

#[test]
fn a_schedule_survives_a_restart_from_the_journal_and_from_a_snapshot_and_goes_with_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let (mut config, clock) = config();
    let (kept, dropped, doomed) = {
        let kms = Kms::open_with(dir.path(), config.clone()).unwrap();
        let [kept, dropped, doomed] = [(); 3].map(|_| create_key(&kms, None));
        enable(&kms, &kept, Some(300)).unwrap();
        enable(&kms, &dropped, None).unwrap();
        kms.disable_key_rotation(&key_req(&dropped)).unwrap();
        enable(&kms, &doomed, None).unwrap();
        (kept, dropped, doomed)
    };
    let expected = {
        let kms = Kms::open_with(dir.path(), config.clone()).unwrap();
        let s = status(&kms, &kept);
        assert_eq!(s.rotation_period_in_days, Some(300));
        assert!(!status(&kms, &dropped).key_rotation_enabled);
        assert!(status(&kms, &doomed).key_rotation_enabled);
        kms.schedule_key_deletion(&ScheduleKeyDeletionRequest {
            key_id: doomed.clone(),
            pending_window_in_days: Some(7),
        })
        .unwrap();
        clock.advance_millis(8 * DAY_MS);
        kms.run_scheduled_deletions().unwrap();
        kms.state_snapshot()
    };
    // A compaction is due after every commit: the next open reads a snapshot.
    config.compact_after_bytes = 1;
    {
        let kms = Kms::open_with(dir.path(), config.clone()).unwrap();
        assert_eq!(kms.state_snapshot(), expected);
        enable(&kms, &dropped, Some(91)).unwrap();
        // Dropping the instance would cancel the compaction in flight.
        kms.wait_for_compaction().unwrap();
    }
    let kms = Kms::open_with(dir.path(), config).unwrap();
    assert_eq!(status(&kms, &kept).rotation_period_in_days, Some(300));
    assert_eq!(status(&kms, &dropped).rotation_period_in_days, Some(91));
    assert_aws(
        kms.get_key_rotation_status(&key_req(&doomed)),
        ErrorKind::NotFoundException,
    );
}

#[test]
fn an_on_demand_rotation_seals_new_blobs_under_new_material_and_old_blobs_still_decrypt() {
    let (kms, _clock) = kms();
    let key = create_key(&kms, None);
    let before = encrypt(&kms, &key);
    assert_eq!(
        version_of(&before),
        0,
        "a key that never rotated seals version 0"
    );
    assert_eq!(rotate(&kms, &key).unwrap().key_id, key);
    let after = encrypt(&kms, &key);
    assert_eq!(version_of(&after), 1);
    decrypts(&kms, &before).unwrap();
    decrypts(&kms, &after).unwrap();
    // ReEncrypt re-seals an old blob under the newest material.
    let again = kms
        .re_encrypt(&ReEncryptRequest {
            ciphertext_blob: before.clone(),
            destination_key_id: key.clone(),
            ..Default::default()
        })
        .unwrap()
        .ciphertext_blob;
    assert_eq!(version_of(&again), 1);
    decrypts(&kms, &again).unwrap();
    // GenerateDataKey too.
    let dk = kms
        .generate_data_key(&GenerateDataKeyRequest {
            key_id: key.clone(),
            number_of_bytes: Some(32),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(version_of(&dk.ciphertext_blob), 1);
}

#[test]
fn a_blob_naming_a_material_version_the_key_lacks_is_invalid_ciphertext() {
    let (kms, _clock) = kms();
    let key = create_key(&kms, None);
    rotate(&kms, &key).unwrap();
    let blob = encrypt(&kms, &key);
    for version in [2u32, 7, u32::MAX] {
        let mut forged = blob.clone();
        forged[33..37].copy_from_slice(&version.to_be_bytes());
        assert_aws(
            decrypts(&kms, &forged),
            ErrorKind::InvalidCiphertextException,
        );
    }
    let mut older = blob.clone();
    older[33..37].copy_from_slice(&0u32.to_be_bytes());
    assert_aws(
        decrypts(&kms, &older),
        ErrorKind::InvalidCiphertextException,
    );
}

#[test]
fn on_demand_rotation_is_allowed_25_times_a_key_then_limit_exceeded() {
    let (kms, _clock) = kms();
    let key = create_key(&kms, None);
    let blob = encrypt(&kms, &key);
    for _ in 0..25 {
        rotate(&kms, &key).unwrap();
    }
    let e = assert_aws(rotate(&kms, &key), ErrorKind::LimitExceededException);
    assert!(e.message().contains("25"), "{e}");
    assert_eq!(version_of(&encrypt(&kms, &key)), 25);
    decrypts(&kms, &blob).unwrap();
    // Another key has its own 25.
    rotate(&kms, &create_key(&kms, None)).unwrap();
}

#[test]
fn on_demand_rotation_refuses_disabled_pending_and_custom_store_keys_and_keeps_the_schedule() {
    let (kms, clock) = kms();
    let key = create_key(&kms, None);
    enable(&kms, &key, Some(730)).unwrap();
    let scheduled = status(&kms, &key);
    clock.advance_days(3);
    rotate(&kms, &key).unwrap();
    assert_eq!(
        status(&kms, &key),
        scheduled,
        "on demand leaves the schedule alone"
    );

    kms.disable_key(&key_req(&key)).unwrap();
    assert_aws(rotate(&kms, &key), ErrorKind::DisabledException);
    kms.enable_key(&key_req(&key)).unwrap();
    kms.schedule_key_deletion(&ScheduleKeyDeletionRequest {
        key_id: key.clone(),
        pending_window_in_days: Some(7),
    })
    .unwrap();
    assert_aws(rotate(&kms, &key), ErrorKind::KMSInvalidStateException);
    // ListKeyRotations still answers in every state.
    assert_eq!(rotations(&kms, &key).len(), 1);

    let f = connected_store(&kms, &clock, "s1");
    let store_key = create_key(&kms, Some(&f.store_id));
    assert_aws(
        rotate(&kms, &store_key),
        ErrorKind::UnsupportedOperationException,
    );
    assert_aws(rotate(&kms, "alias/none"), ErrorKind::NotFoundException);
    let user = kms.acting_as("arn:aws:iam::111122223333:user/uid-1001");
    let e = assert_aws(rotate(&user, &key), ErrorKind::AccessDeniedException);
    assert!(e.message().contains("kms:RotateKeyOnDemand"), "{e}");
}

#[test]
fn automatic_rotation_follows_the_clock_across_simulated_years_and_old_blobs_still_decrypt() {
    let (kms, clock) = kms();
    let key = create_key(&kms, None);
    let idle = create_key(&kms, None); // rotation never enabled
    enable(&kms, &key, Some(90)).unwrap();
    let mut blobs = vec![encrypt(&kms, &key)];
    // Just before the date nothing happens.
    clock.advance_days(89);
    assert_eq!(kms.run_scheduled_rotations().unwrap(), 0);
    // A year and more, in steps past each 90-day date.
    for n in 1..=5u32 {
        clock.advance_days(if n == 1 { 1 } else { 90 });
        kms.run_scheduled_rotations().unwrap(); // or the background worker did already
        assert_eq!(rotations(&kms, &key).len(), n as usize);
        let s = status(&kms, &key);
        assert_eq!(s.next_rotation_date, Some(now(&clock).plus_days(90)));
        let blob = encrypt(&kms, &key);
        assert_eq!(version_of(&blob), n, "new blobs use the newest version");
        blobs.push(blob);
    }
    for blob in &blobs {
        decrypts(&kms, blob).unwrap();
    }
    let listed = rotations(&kms, &key);
    assert_eq!(listed.len(), 5);
    assert!(listed
        .iter()
        .all(|r| r.rotation_type == Some(RotationType::Automatic)));
    assert!(listed
        .windows(2)
        .all(|w| w[0].rotation_date < w[1].rotation_date));
    assert_eq!(listed[4].key_material_state, "CURRENT");
    assert_eq!(listed[0].key_material_state, "NON_CURRENT");
    assert!(rotations(&kms, &idle).is_empty());
    assert_eq!(version_of(&encrypt(&kms, &idle)), 0);
    // The service recorded each as its own event.
    let automatic = kms
        .kms_events()
        .unwrap()
        .into_iter()
        .filter(|e| e.event_name == "RotateKey")
        .count();
    assert_eq!(automatic, 5);
}

#[test]
fn any_write_first_makes_the_rotations_that_are_due() {
    let (kms, clock) = kms();
    let key = create_key(&kms, None);
    enable(&kms, &key, Some(90)).unwrap();
    clock.advance_days(91);
    create_key(&kms, None); // a write: the sweep before it rotates
    assert_eq!(rotations(&kms, &key).len(), 1);
    assert_eq!(kms.run_scheduled_rotations().unwrap(), 0);
}

#[test]
fn a_disabled_key_is_not_rotated_until_it_is_enabled_again() {
    let (kms, clock) = kms();
    let key = create_key(&kms, None);
    enable(&kms, &key, Some(90)).unwrap();
    kms.disable_key(&key_req(&key)).unwrap();
    clock.advance_days(200);
    assert_eq!(kms.run_scheduled_rotations().unwrap(), 0);
    assert!(rotations(&kms, &key).is_empty());
    // EnableKey's own sweep ran while the key was still disabled: the next one rotates it.
    kms.enable_key(&key_req(&key)).unwrap();
    kms.run_scheduled_rotations().unwrap(); // or the background worker did already
    assert_eq!(rotations(&kms, &key).len(), 1);
}

#[test]
fn list_key_rotations_pages_oldest_first_and_can_include_the_first_material() {
    let (kms, _clock) = kms();
    let key = create_key(&kms, None);
    for _ in 0..5 {
        rotate(&kms, &key).unwrap();
    }
    let mut seen = Vec::new();
    let mut marker = None;
    loop {
        let page = kms
            .list_key_rotations(&ListKeyRotationsRequest {
                key_id: key.clone(),
                limit: Some(2),
                marker: marker.clone(),
                ..Default::default()
            })
            .unwrap();
        assert!(page.rotations.len() <= 2);
        assert_eq!(page.truncated, page.next_marker.is_some());
        seen.extend(page.rotations);
        match page.next_marker {
            Some(m) => marker = Some(m),
            None => break,
        }
    }
    assert_eq!(seen, rotations(&kms, &key));
    assert_eq!(seen.len(), 5);
    assert!(seen
        .iter()
        .all(|r| r.key_id == key && r.rotation_type == Some(RotationType::OnDemand)));
    let ids: std::collections::BTreeSet<&str> =
        seen.iter().map(|r| r.key_material_id.as_str()).collect();
    assert_eq!(ids.len(), 5);
    assert!(ids.iter().all(|id| id.len() == 64));

    let all = kms
        .list_key_rotations(&ListKeyRotationsRequest {
            key_id: key.clone(),
            include_key_material: Some("ALL_KEY_MATERIAL".into()),
            ..Default::default()
        })
        .unwrap()
        .rotations;
    assert_eq!(all.len(), 6);
    assert_eq!(all[0].rotation_type, None);
    assert_eq!(all[0].rotation_date, describe_key(&kms, &key).creation_date);
    assert_eq!(&all[1..], &seen[..]);

    for (req, kind) in [
        (
            ListKeyRotationsRequest {
                marker: Some("bm90IGEgbWFya2Vy".into()),
                ..Default::default()
            },
            ErrorKind::InvalidMarkerException,
        ),
        (
            ListKeyRotationsRequest {
                limit: Some(0),
                ..Default::default()
            },
            ErrorKind::ValidationException,
        ),
        (
            ListKeyRotationsRequest {
                limit: Some(1001),
                ..Default::default()
            },
            ErrorKind::ValidationException,
        ),
        (
            ListKeyRotationsRequest {
                include_key_material: Some("SOME".into()),
                ..Default::default()
            },
            ErrorKind::ValidationException,
        ),
    ] {
        let req = ListKeyRotationsRequest {
            key_id: key.clone(),
            ..req
        };
        assert_aws(kms.list_key_rotations(&req), kind);
    }
}

#[test]
fn material_versions_survive_a_restart_from_the_journal_and_from_a_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let (mut config, clock) = config();
    let (key, mut blobs) = {
        let kms = Kms::open_with(dir.path(), config.clone()).unwrap();
        let key = create_key(&kms, None);
        enable(&kms, &key, Some(90)).unwrap();
        let mut blobs = vec![encrypt(&kms, &key)];
        rotate(&kms, &key).unwrap();
        blobs.push(encrypt(&kms, &key));
        clock.advance_days(91);
        kms.run_scheduled_rotations().unwrap(); // or the background worker did already
        assert_eq!(rotations(&kms, &key).len(), 2);
        blobs.push(encrypt(&kms, &key));
        (key, blobs)
    };
    {
        let kms = Kms::open_with(dir.path(), config.clone()).unwrap();
        for blob in &blobs {
            decrypts(&kms, blob).unwrap();
        }
        assert_eq!(version_of(&encrypt(&kms, &key)), 2);
        assert_eq!(rotations(&kms, &key).len(), 2);
    }
    config.compact_after_bytes = 1;
    {
        let kms = Kms::open_with(dir.path(), config.clone()).unwrap();
        rotate(&kms, &key).unwrap(); // compacts after it
        blobs.push(encrypt(&kms, &key));
        // Dropping the instance would cancel the compaction in flight.
        kms.wait_for_compaction().unwrap();
    }
    let kms = Kms::open_with(dir.path(), config).unwrap();
    for blob in &blobs {
        decrypts(&kms, blob).unwrap();
    }
    assert_eq!(version_of(&encrypt(&kms, &key)), 3);
    let listed = rotations(&kms, &key);
    let kinds: Vec<_> = listed.iter().map(|r| r.rotation_type).collect();
    assert_eq!(
        kinds,
        [
            Some(RotationType::OnDemand),
            Some(RotationType::Automatic),
            Some(RotationType::OnDemand)
        ]
    );
}
