//! Custom key store operations (spec §1.1–1.6), the connection state machine (§2) as a table,
//! and a property test of its invariants over random operation sequences.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use kmscks::api::hsm::{CreateClusterRequest, CreateHsmRequest, DeleteHsmRequest, Fault};
use kmscks::api::kms::*;
use kmscks::secret::Password;
use kmscks::types::{ConnectionErrorCode, ConnectionState, HsmUserRole, KeyState, Origin};
use kmscks::{ErrorKind, Kms, KmsConfig};

fn id_req(store_id: &str) -> CustomKeyStoreIdRequest {
    CustomKeyStoreIdRequest {
        custom_key_store_id: store_id.into(),
    }
}

fn create_store(kms: &Kms, c: &ClusterFixture, name: &str) -> String {
    kms.create_custom_key_store(&store_request(c, name))
        .unwrap()
        .custom_key_store_id
}

fn update_name(kms: &Kms, store_id: &str, name: &str) -> kmscks::Result<Empty> {
    kms.update_custom_key_store(&UpdateCustomKeyStoreRequest {
        custom_key_store_id: store_id.into(),
        new_custom_key_store_name: Some(name.into()),
        ..Default::default()
    })
}

fn update_password(kms: &Kms, store_id: &str, password: &str) -> kmscks::Result<Empty> {
    kms.update_custom_key_store(&UpdateCustomKeyStoreRequest {
        custom_key_store_id: store_id.into(),
        key_store_password: Some(Password::new(password)),
        ..Default::default()
    })
}

fn update_cluster(kms: &Kms, store_id: &str, cluster_id: &str) -> kmscks::Result<Empty> {
    kms.update_custom_key_store(&UpdateCustomKeyStoreRequest {
        custom_key_store_id: store_id.into(),
        cloud_hsm_cluster_id: Some(cluster_id.into()),
        ..Default::default()
    })
}

fn create_key_in(kms: &Kms, store_id: &str) -> kmscks::Result<KeyMetadataResponse> {
    kms.create_key(&CreateKeyRequest {
        custom_key_store_id: Some(store_id.into()),
        origin: Some(Origin::AwsCloudhsm),
        ..Default::default()
    })
}

fn all_stores(kms: &Kms) -> Vec<CustomKeyStoreEntry> {
    kms.describe_custom_key_stores(&DescribeCustomKeyStoresRequest::default())
        .unwrap()
        .custom_key_stores
}

/// The HSMs of the cluster, as DescribeClusters shows them.
fn hsms_of(kms: &Kms, cluster_id: &str) -> Vec<kmscks::api::hsm::HsmDescription> {
    let mut req = kmscks::api::hsm::DescribeClustersRequest::default();
    req.filters
        .insert("clusterIds".into(), vec![cluster_id.to_owned()]);
    kms.describe_clusters(&req).unwrap().clusters.remove(0).hsms
}

fn hsm_ids(kms: &Kms, cluster_id: &str) -> Vec<String> {
    hsms_of(kms, cluster_id)
        .iter()
        .map(|h| h.hsm_id.to_string())
        .collect()
}

/// Whether any HSM of the cluster is ACTIVE.
fn any_hsm_active(kms: &Kms, cluster_id: &str) -> bool {
    hsms_of(kms, cluster_id)
        .iter()
        .any(|h| h.state == kmscks::types::HsmState::Active)
}

// ---- §1.1 CreateCustomKeyStore ------------------------------------------------------------

#[test]
fn create_starts_disconnected_and_describes_every_member() {
    let (kms, _clock) = kms();
    let c = active_cluster(&kms);
    let id = create_store(&kms, &c, "Store1");
    assert!(id.starts_with("cks-"), "{id}");
    let e = describe_store(&kms, &id);
    assert_eq!(e.custom_key_store_name, "Store1");
    assert_eq!(e.cloud_hsm_cluster_id, c.cluster_id);
    assert_eq!(e.trust_anchor_certificate, c.trust_anchor);
    assert_eq!(e.connection_state, ConnectionState::Disconnected);
    assert_eq!(e.connection_error_code, None);
    let json = serde_json::to_value(&e).unwrap();
    assert_eq!(json["CustomKeyStoreType"], "AWS_CLOUDHSM");
    assert!(json.get("ConnectionErrorCode").is_none());
    assert!(json.get("KeyStorePassword").is_none());
    assert!(!json.to_string().contains(KMSUSER_PASSWORD));
}

#[test]
fn identical_recreate_of_a_disconnected_store_returns_the_same_id() {
    let (kms, clock) = kms();
    let c = active_cluster(&kms);
    let id = create_store(&kms, &c, "Same");
    let again = create_store(&kms, &c, "Same");
    assert_eq!(id, again);
    assert_eq!(all_stores(&kms).len(), 1);

    // A difference in any property is not idempotent: the name is in use.
    let mut req = store_request(&c, "Same");
    req.key_store_password = Some(Password::new("anotherPassw0rd"));
    assert_aws(
        kms.create_custom_key_store(&req),
        ErrorKind::CustomKeyStoreNameInUseException,
    );
    let other = active_cluster(&kms);
    let mut req = store_request(&other, "Same");
    assert_aws(
        kms.create_custom_key_store(&req),
        ErrorKind::CustomKeyStoreNameInUseException,
    );
    req = store_request(&c, "Same");
    req.trust_anchor_certificate = Some(other.trust_anchor.clone());
    assert_aws(
        kms.create_custom_key_store(&req),
        ErrorKind::CustomKeyStoreNameInUseException,
    );
    assert_eq!(all_stores(&kms).len(), 1);

    // Only a DISCONNECTED store is re-created idempotently.
    connect(&kms, &clock, &id);
    assert_aws(
        kms.create_custom_key_store(&store_request(&c, "Same")),
        ErrorKind::CustomKeyStoreNameInUseException,
    );
}

#[test]
fn create_refuses_unknown_used_inactive_and_misconfigured_clusters() {
    let (kms, _clock) = kms();
    let c = active_cluster(&kms);
    create_store(&kms, &c, "First");

    // Not found (well-formed and malformed ids of a cluster id's length alike).
    for bad in ["cluster-abcdefghijk", "cluster-0189-0189-0"] {
        let mut req = store_request(&c, "X");
        req.cloud_hsm_cluster_id = Some(bad.into());
        assert_aws(
            kms.create_custom_key_store(&req),
            ErrorKind::CloudHsmClusterNotFoundException,
        );
    }

    // In use: the same cluster, and a cluster restored (same Region) from its backup.
    assert_aws(
        kms.create_custom_key_store(&store_request(&c, "Second")),
        ErrorKind::CloudHsmClusterInUseException,
    );
    let restored = restored_cluster(&kms, &c.cluster_id);
    let related = ClusterFixture {
        cluster_id: restored.clone(),
        trust_anchor: c.trust_anchor.clone(),
        zones: c.zones.clone(),
    };
    assert_aws(
        kms.create_custom_key_store(&store_request(&related, "Second")),
        ErrorKind::CloudHsmClusterInUseException,
    );

    // Not active: an UNINITIALIZED cluster (with HSMs in two zones).
    let raw = kms
        .create_cluster(&CreateClusterRequest::default())
        .unwrap()
        .cluster;
    for zone in raw.subnet_mapping.keys() {
        kms.create_hsm(&CreateHsmRequest {
            cluster_id: raw.cluster_id.to_string(),
            availability_zone: zone.clone(),
            region: None,
        })
        .unwrap();
    }
    let mut req = store_request(&c, "Uninit");
    req.cloud_hsm_cluster_id = Some(raw.cluster_id.to_string());
    assert_aws(
        kms.create_custom_key_store(&req),
        ErrorKind::CloudHsmClusterNotActiveException,
    );

    // Invalid configuration: one HSM.
    let one = active_cluster(&kms);
    let mut req = kmscks::api::hsm::DescribeClustersRequest::default();
    req.filters
        .insert("clusterIds".into(), vec![one.cluster_id.clone()]);
    let in_second_zone = kms.describe_clusters(&req).unwrap().clusters[0]
        .hsms
        .iter()
        .find(|h| h.availability_zone == one.zones[1])
        .unwrap()
        .hsm_id
        .to_string();
    kms.delete_hsm(&DeleteHsmRequest {
        cluster_id: one.cluster_id.clone(),
        hsm_id: in_second_zone,
        ..Default::default()
    })
    .unwrap();
    assert_aws(
        kms.create_custom_key_store(&store_request(&one, "OneHsm")),
        ErrorKind::CloudHsmClusterInvalidConfigurationException,
    );
    // Two HSMs, both in the same zone.
    kms.create_hsm(&CreateHsmRequest {
        cluster_id: one.cluster_id.clone(),
        availability_zone: one.zones[0].clone(),
        region: None,
    })
    .unwrap();
    assert_eq!(hsm_ids(&kms, &one.cluster_id).len(), 2);
    assert_aws(
        kms.create_custom_key_store(&store_request(&one, "SameZone")),
        ErrorKind::CloudHsmClusterInvalidConfigurationException,
    );
    // Security group without the self-referencing rule.
    let sg = active_cluster(&kms);
    kms.inject_fault(&sg.cluster_id, &Fault::SecurityGroupBroken)
        .unwrap();
    let e = assert_aws(
        kms.create_custom_key_store(&store_request(&sg, "BrokenSg")),
        ErrorKind::CloudHsmClusterInvalidConfigurationException,
    );
    assert!(e.message().contains("2223-2225"), "{}", e.message());

    // Incorrect trust anchor: another CA's certificate.
    let other = active_cluster(&kms);
    let mut req = store_request(&other, "WrongAnchor");
    req.trust_anchor_certificate = Some(c.trust_anchor.clone());
    assert_aws(
        kms.create_custom_key_store(&req),
        ErrorKind::IncorrectTrustAnchorException,
    );
    // None of the failures created a store.
    assert_eq!(all_stores(&kms).len(), 1);
}

#[test]
fn a_cluster_restored_from_a_deleted_store_cluster_is_still_in_use() {
    let (kms, clock) = kms();
    let c = active_cluster(&kms);
    let id = create_store(&kms, &c, "A");
    for hsm in hsm_ids(&kms, &c.cluster_id) {
        kms.delete_hsm(&DeleteHsmRequest {
            cluster_id: c.cluster_id.clone(),
            hsm_id: hsm,
            ..Default::default()
        })
        .unwrap();
    }
    kms.delete_cluster(&cluster_named(&c.cluster_id)).unwrap();
    // Rebuilt from the final backup (the latest: CloudHSM also backs up a cluster when it is
    // activated and when an HSM is removed): it shares backup history with the cluster behind
    // "A".
    let backup = kms
        .describe_backups(&Default::default())
        .unwrap()
        .backups
        .into_iter()
        .filter(|b| b.cluster_id.as_str() == c.cluster_id)
        .max_by_key(|b| b.create_timestamp)
        .expect("DeleteCluster takes a final backup")
        .backup_id;
    let rebuilt = kms
        .create_cluster(&CreateClusterRequest {
            source_backup_id: Some(backup),
            ..Default::default()
        })
        .unwrap()
        .cluster;
    for zone in rebuilt.subnet_mapping.keys() {
        kms.create_hsm(&CreateHsmRequest {
            cluster_id: rebuilt.cluster_id.to_string(),
            availability_zone: zone.clone(),
            region: None,
        })
        .unwrap();
    }
    let related = ClusterFixture {
        cluster_id: rebuilt.cluster_id.to_string(),
        trust_anchor: c.trust_anchor.clone(),
        zones: c.zones.clone(),
    };
    assert_aws(
        kms.create_custom_key_store(&store_request(&related, "B")),
        ErrorKind::CloudHsmClusterInUseException,
    );
    // The store's own remedy: re-point it at the rebuilt cluster.
    update_cluster(&kms, &id, &related.cluster_id).unwrap();
    assert_eq!(
        connect(&kms, &clock, &id).connection_state,
        ConnectionState::Connected
    );
}

#[test]
fn create_validates_members() {
    let (kms, _clock) = kms();
    let c = active_cluster(&kms);
    let mut req = store_request(&c, "");
    assert_aws(
        kms.create_custom_key_store(&req),
        ErrorKind::ValidationException,
    );
    req = store_request(&c, "Short");
    req.key_store_password = Some(Password::new("short"));
    let e = assert_aws(
        kms.create_custom_key_store(&req),
        ErrorKind::ValidationException,
    );
    assert!(!e.message().contains("short"), "password echoed: {e}");
    req = store_request(&c, "NoAnchor");
    req.trust_anchor_certificate = None;
    assert_aws(
        kms.create_custom_key_store(&req),
        ErrorKind::ValidationException,
    );
}

#[test]
fn store_and_cluster_ids_of_the_wrong_length_are_validation_errors_naming_the_member() {
    // Spec §0: CustomKeyStoreId 1–64, CustomKeyStoreName 1–256, CloudHsmClusterId 19–24;
    // §9: a broken constraint is a ValidationException, before any lookup.
    let (kms, _clock) = kms();
    let c = active_cluster(&kms);
    let long_id = "c".repeat(65);
    for bad in ["", long_id.as_str()] {
        let e = assert_aws(
            kms.connect_custom_key_store(&id_req(bad)),
            ErrorKind::ValidationException,
        );
        assert!(e.message().contains("'customKeyStoreId'"), "{e}");
        assert!(e.message().contains("Member must have length"), "{e}");
        let e = assert_aws(
            kms.describe_custom_key_stores(&DescribeCustomKeyStoresRequest {
                custom_key_store_id: Some(bad.into()),
                ..Default::default()
            }),
            ErrorKind::ValidationException,
        );
        assert!(e.message().contains("'customKeyStoreId'"), "{e}");
        for result in [
            kms.disconnect_custom_key_store(&id_req(bad)),
            kms.delete_custom_key_store(&id_req(bad)),
            update_name(&kms, bad, "X"),
        ] {
            assert_aws(result, ErrorKind::ValidationException);
        }
        assert_aws(create_key_in(&kms, bad), ErrorKind::ValidationException);
    }
    // 64 characters is a length the API accepts: merely not found.
    assert_aws(
        kms.connect_custom_key_store(&id_req(&"c".repeat(64))),
        ErrorKind::CustomKeyStoreNotFoundException,
    );
    // The name filter of DescribeCustomKeyStores: 1–256.
    for bad in [String::new(), "n".repeat(257)] {
        let e = assert_aws(
            kms.describe_custom_key_stores(&DescribeCustomKeyStoresRequest {
                custom_key_store_name: Some(bad),
                ..Default::default()
            }),
            ErrorKind::ValidationException,
        );
        assert!(e.message().contains("'customKeyStoreName'"), "{e}");
    }
    // A cluster id shorter than 19 or longer than 24, on create and on update.
    for bad in ["abc".to_owned(), format!("cluster-{}", "a".repeat(17))] {
        let mut req = store_request(&c, "BadCluster");
        req.cloud_hsm_cluster_id = Some(bad);
        let e = assert_aws(
            kms.create_custom_key_store(&req),
            ErrorKind::ValidationException,
        );
        assert!(e.message().contains("'cloudHsmClusterId'"), "{e}");
        assert!(e.message().contains("Member must have length"), "{e}");
    }
    let id = create_store(&kms, &c, "S");
    let e = assert_aws(
        update_cluster(&kms, &id, "abc"),
        ErrorKind::ValidationException,
    );
    assert!(e.message().contains("'cloudHsmClusterId'"), "{e}");
}

#[test]
fn with_aws_quotas_emulated_the_eleventh_store_exceeds_the_limit() {
    let (mut config, clock) = config();
    config.quotas = Some(kmscks::QuotaConfig {
        // Eleven clusters, one per store: over AWS CloudHSM's default of 4 per Region.
        max_clusters_per_region: 11,
        ..kmscks::QuotaConfig::default()
    });
    let kms = Kms::in_memory_with(config);
    for i in 0..10 {
        let c = active_cluster(&kms);
        create_store(&kms, &c, &format!("Store{i}"));
        // Under the custom key store API rate (5 per second).
        clock.advance(Duration::from_secs(1));
    }
    let c = active_cluster(&kms);
    assert_aws(
        kms.create_custom_key_store(&store_request(&c, "Store10")),
        ErrorKind::LimitExceededException,
    );
    clock.advance(Duration::from_secs(1));
    assert_eq!(all_stores(&kms).len(), 10);
}

#[test]
fn without_quota_emulation_there_is_no_limit_on_custom_key_stores() {
    let (kms, _clock) = kms();
    for i in 0..12 {
        let c = active_cluster(&kms);
        create_store(&kms, &c, &format!("Store{i}"));
    }
    assert_eq!(all_stores(&kms).len(), 12);
}

// ---- §1.2 DescribeCustomKeyStores ---------------------------------------------------------

#[test]
fn describe_by_id_name_both_unknown_and_in_pages() {
    let (kms, _clock) = kms();
    let mut ids = Vec::new();
    for name in ["A", "B", "C"] {
        let c = active_cluster(&kms);
        ids.push(create_store(&kms, &c, name));
    }
    let by_name = kms
        .describe_custom_key_stores(&DescribeCustomKeyStoresRequest {
            custom_key_store_name: Some("B".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(by_name.custom_key_stores.len(), 1);
    assert_eq!(by_name.custom_key_stores[0].custom_key_store_id, ids[1]);
    assert_eq!(describe_store(&kms, &ids[2]).custom_key_store_name, "C");

    assert_aws(
        kms.describe_custom_key_stores(&DescribeCustomKeyStoresRequest {
            custom_key_store_id: Some(ids[0].clone()),
            custom_key_store_name: Some("A".into()),
            ..Default::default()
        }),
        ErrorKind::ValidationException,
    );
    for req in [
        DescribeCustomKeyStoresRequest {
            custom_key_store_id: Some("cks-0000000000000000a".into()),
            ..Default::default()
        },
        DescribeCustomKeyStoresRequest {
            custom_key_store_name: Some("Nope".into()),
            ..Default::default()
        },
    ] {
        assert_aws(
            kms.describe_custom_key_stores(&req),
            ErrorKind::CustomKeyStoreNotFoundException,
        );
    }

    // Paging: 2 + 1, every store exactly once.
    let first = kms
        .describe_custom_key_stores(&DescribeCustomKeyStoresRequest {
            limit: Some(2),
            ..Default::default()
        })
        .unwrap();
    assert!(first.truncated);
    assert_eq!(first.custom_key_stores.len(), 2);
    let second = kms
        .describe_custom_key_stores(&DescribeCustomKeyStoresRequest {
            limit: Some(2),
            marker: first.next_marker.clone(),
            ..Default::default()
        })
        .unwrap();
    assert!(!second.truncated);
    assert_eq!(second.next_marker, None);
    let mut seen: Vec<String> = first
        .custom_key_stores
        .iter()
        .chain(&second.custom_key_stores)
        .map(|e| e.custom_key_store_id.clone())
        .collect();
    seen.sort();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(seen, want);

    assert_aws(
        kms.describe_custom_key_stores(&DescribeCustomKeyStoresRequest {
            marker: Some("not-a-marker".into()),
            ..Default::default()
        }),
        ErrorKind::InvalidMarkerException,
    );
    for limit in [0, 1001] {
        assert_aws(
            kms.describe_custom_key_stores(&DescribeCustomKeyStoresRequest {
                limit: Some(limit),
                ..Default::default()
            }),
            ErrorKind::ValidationException,
        );
    }
}

// ---- §1.3 UpdateCustomKeyStore ------------------------------------------------------------

#[test]
fn update_name_password_and_cluster() {
    let (kms, clock) = kms();
    let f = connected_store(&kms, &clock, "Orig");
    let other = active_cluster(&kms);
    let other_id = create_store(&kms, &other, "Other");

    // Rename while CONNECTED is allowed; a taken name is not.
    update_name(&kms, &f.store_id, "Renamed").unwrap();
    assert_eq!(
        describe_store(&kms, &f.store_id).custom_key_store_name,
        "Renamed"
    );
    assert_aws(
        update_name(&kms, &f.store_id, "Other"),
        ErrorKind::CustomKeyStoreNameInUseException,
    );
    // Password and cluster need DISCONNECTED.
    assert_aws(
        update_password(&kms, &f.store_id, KMSUSER_PASSWORD),
        ErrorKind::CustomKeyStoreInvalidStateException,
    );
    let related = restored_cluster(&kms, &f.cluster.cluster_id);
    assert_aws(
        update_cluster(&kms, &f.store_id, &related),
        ErrorKind::CustomKeyStoreInvalidStateException,
    );
    assert_aws(
        update_name(&kms, "cks-0000000000000000a", "X"),
        ErrorKind::CustomKeyStoreNotFoundException,
    );

    disconnect(&kms, &clock, &f.store_id);
    assert_aws(
        update_cluster(&kms, &f.store_id, "cluster-abcdefghijk"),
        ErrorKind::CloudHsmClusterNotFoundException,
    );
    assert_aws(
        update_cluster(&kms, &f.store_id, &other.cluster_id),
        ErrorKind::CloudHsmClusterNotRelatedException,
    );
    // A related cluster without HSMs is not a valid configuration.
    let bare = kms
        .create_cluster(&CreateClusterRequest {
            source_backup_id: Some(kms.create_backup(&f.cluster.cluster_id).unwrap().backup_id),
            ..Default::default()
        })
        .unwrap()
        .cluster
        .cluster_id;
    assert_aws(
        update_cluster(&kms, &f.store_id, bare.as_str()),
        ErrorKind::CloudHsmClusterInvalidConfigurationException,
    );
    // Move to the related (restored) cluster; connect and use it there.
    update_cluster(&kms, &f.store_id, &related).unwrap();
    assert_eq!(
        describe_store(&kms, &f.store_id).cloud_hsm_cluster_id,
        related
    );
    assert_eq!(
        connect(&kms, &clock, &f.store_id).connection_state,
        ConnectionState::Connected
    );
    let md = create_key_in(&kms, &f.store_id).unwrap().key_metadata;
    assert_eq!(md.cloud_hsm_cluster_id.as_deref(), Some(related.as_str()));
    disconnect(&kms, &clock, &f.store_id);

    // A new password is only recorded: the wrong one makes the next connect FAIL.
    update_password(&kms, &f.store_id, "wrongPassw0rd").unwrap();
    let e = connect(&kms, &clock, &f.store_id);
    assert_eq!(e.connection_state, ConnectionState::Failed);
    assert_eq!(
        e.connection_error_code,
        Some(ConnectionErrorCode::InvalidCredentials)
    );
    assert_aws(
        update_password(&kms, &f.store_id, "short"),
        ErrorKind::ValidationException,
    );
    let _ = other_id;
}

// ---- §1.4 DeleteCustomKeyStore ------------------------------------------------------------

#[test]
fn delete_needs_disconnected_and_no_keys_even_pending_deletion() {
    let (kms, clock) = kms();
    let f = connected_store(&kms, &clock, "Del");
    let key_id = create_key(&kms, Some(&f.store_id));
    assert_aws(
        kms.delete_custom_key_store(&id_req(&f.store_id)),
        ErrorKind::CustomKeyStoreInvalidStateException,
    );
    disconnect(&kms, &clock, &f.store_id);
    assert_aws(
        kms.delete_custom_key_store(&id_req(&f.store_id)),
        ErrorKind::CustomKeyStoreHasCMKsException,
    );
    kms.schedule_key_deletion(&ScheduleKeyDeletionRequest {
        key_id: key_id.clone(),
        pending_window_in_days: Some(7),
    })
    .unwrap();
    assert_eq!(
        describe_key(&kms, &key_id).key_state,
        KeyState::PendingDeletion
    );
    assert_aws(
        kms.delete_custom_key_store(&id_req(&f.store_id)),
        ErrorKind::CustomKeyStoreHasCMKsException,
    );
    clock.advance_days(8);
    // The jump wakes the background sweep, which may get there before this call does.
    assert!(kms.run_scheduled_deletions().unwrap() <= 1);
    assert_aws(
        kms.describe_key(&key_req(&key_id)),
        ErrorKind::NotFoundException,
    );
    kms.delete_custom_key_store(&id_req(&f.store_id)).unwrap();
    assert_aws(
        kms.describe_custom_key_stores(&DescribeCustomKeyStoresRequest {
            custom_key_store_id: Some(f.store_id.clone()),
            ..Default::default()
        }),
        ErrorKind::CustomKeyStoreNotFoundException,
    );
    assert_aws(
        kms.delete_custom_key_store(&id_req(&f.store_id)),
        ErrorKind::CustomKeyStoreNotFoundException,
    );
    // The cluster is untouched and can back a new store (the orphaned HSM key stays).
    assert_eq!(
        kms.list_key_objects(&f.cluster.cluster_id).unwrap().len(),
        1
    );
    create_store(&kms, &f.cluster, "Again");
}

// ---- §1.5 / §1.6 Connect and Disconnect ---------------------------------------------------

#[test]
fn connect_and_disconnect_errors() {
    let (kms, _clock) = kms();
    assert_aws(
        kms.connect_custom_key_store(&id_req("cks-0000000000000000a")),
        ErrorKind::CustomKeyStoreNotFoundException,
    );
    assert_aws(
        kms.disconnect_custom_key_store(&id_req("cks-0000000000000000a")),
        ErrorKind::CustomKeyStoreNotFoundException,
    );
    assert_aws(
        create_key_in(&kms, "cks-0000000000000000a"),
        ErrorKind::CustomKeyStoreNotFoundException,
    );
    let c = active_cluster(&kms);
    let id = create_store(&kms, &c, "S");
    assert_aws(
        kms.disconnect_custom_key_store(&id_req(&id)),
        ErrorKind::CustomKeyStoreInvalidStateException,
    );
    // Fast failures leave the store DISCONNECTED: broken security group, then no HSMs.
    kms.inject_fault(&c.cluster_id, &Fault::SecurityGroupBroken)
        .unwrap();
    assert_aws(
        kms.connect_custom_key_store(&id_req(&id)),
        ErrorKind::CloudHsmClusterInvalidConfigurationException,
    );
    assert_eq!(connection_state(&kms, &id), ConnectionState::Disconnected);
    let c2 = active_cluster(&kms);
    let id2 = create_store(&kms, &c2, "T");
    for hsm in hsm_ids(&kms, &c2.cluster_id) {
        kms.delete_hsm(&DeleteHsmRequest {
            cluster_id: c2.cluster_id.clone(),
            hsm_id: hsm,
            ..Default::default()
        })
        .unwrap();
    }
    assert_aws(
        kms.connect_custom_key_store(&id_req(&id2)),
        ErrorKind::CloudHsmClusterInvalidConfigurationException,
    );
    assert_eq!(connection_state(&kms, &id2), ConnectionState::Disconnected);
}

// ---- §2 The state table -------------------------------------------------------------------

const STATES: [ConnectionState; 5] = [
    ConnectionState::Disconnected,
    ConnectionState::Connecting,
    ConnectionState::Connected,
    ConnectionState::Failed,
    ConnectionState::Disconnecting,
];

#[derive(Clone, Copy, Debug, PartialEq)]
enum Op {
    Connect,
    Disconnect,
    UpdateName,
    UpdatePassword,
    UpdateCluster,
    Delete,
    CreateKey,
    DescribeKey,
}

const OPS: [Op; 8] = [
    Op::Connect,
    Op::Disconnect,
    Op::UpdateName,
    Op::UpdatePassword,
    Op::UpdateCluster,
    Op::Delete,
    Op::CreateKey,
    Op::DescribeKey,
];

/// Spec §2: whether `op` is allowed in `state` (✗ = CustomKeyStoreInvalidStateException).
fn allowed(op: Op, state: ConnectionState) -> bool {
    use ConnectionState::*;
    match op {
        Op::Connect => matches!(state, Disconnected | Connecting | Connected),
        Op::Disconnect => matches!(state, Connecting | Connected | Failed),
        Op::UpdateName => matches!(state, Disconnected | Connected),
        Op::UpdatePassword | Op::UpdateCluster | Op::Delete => state == Disconnected,
        Op::CreateKey => state == Connected,
        Op::DescribeKey => true,
    }
}

fn slow_config(base: &KmsConfig) -> KmsConfig {
    KmsConfig {
        connect_delay: Duration::from_secs(10),
        ..base.clone()
    }
}

/// A store in `state`, on its own durable instance, holding one key unless `with_key` is
/// false. The store is set up with a fast connect, then the instance is reopened with a 10 s
/// connect delay, so that CONNECTING and DISCONNECTING last (nothing waits for them) and no
/// transition races the operation under test.
fn store_in(
    state: ConnectionState,
    with_key: bool,
    dir: &Path,
) -> (Kms, StoreFixture, Option<String>) {
    let (config, clock) = config();
    let kms = Kms::open_with(dir, config.clone()).unwrap();
    let f = connected_store(&kms, &clock, "S");
    let key = with_key.then(|| create_key(&kms, Some(&f.store_id)));
    match state {
        ConnectionState::Connected | ConnectionState::Disconnecting => {}
        ConnectionState::Disconnected | ConnectionState::Connecting => {
            disconnect(&kms, &clock, &f.store_id);
        }
        ConnectionState::Failed => {
            disconnect(&kms, &clock, &f.store_id);
            update_password(&kms, &f.store_id, "wrongPassw0rd").unwrap();
            connect(&kms, &clock, &f.store_id);
        }
    }
    drop(kms);
    let kms = Kms::open_with(dir, slow_config(&config)).unwrap();
    match state {
        ConnectionState::Connecting => {
            kms.connect_custom_key_store(&id_req(&f.store_id)).unwrap();
        }
        ConnectionState::Disconnecting => {
            kms.disconnect_custom_key_store(&id_req(&f.store_id))
                .unwrap();
        }
        _ => {}
    }
    assert_eq!(connection_state(&kms, &f.store_id), state);
    (kms, f, key)
}

fn run_op(kms: &Kms, f: &StoreFixture, key: Option<&str>, op: Op) -> kmscks::Result<()> {
    let id = &f.store_id;
    match op {
        Op::Connect => kms.connect_custom_key_store(&id_req(id)).map(drop),
        Op::Disconnect => kms.disconnect_custom_key_store(&id_req(id)).map(drop),
        Op::UpdateName => update_name(kms, id, "NewName").map(drop),
        Op::UpdatePassword => update_password(kms, id, KMSUSER_PASSWORD).map(drop),
        Op::UpdateCluster => {
            let related = restored_cluster(kms, &f.cluster.cluster_id);
            update_cluster(kms, id, &related).map(drop)
        }
        Op::Delete => kms.delete_custom_key_store(&id_req(id)).map(drop),
        Op::CreateKey => create_key_in(kms, id).map(drop),
        Op::DescribeKey => {
            let key = key.expect("DescribeKey runs with a key");
            let state = describe_key(kms, key).key_state;
            let connected = connection_state(kms, id) == ConnectionState::Connected;
            let want = if connected {
                KeyState::Enabled
            } else {
                KeyState::Unavailable
            };
            assert_eq!(state, want, "key state of a store key");
            Ok(())
        }
    }
}

#[test]
fn connection_state_table() {
    for state in STATES {
        for op in OPS {
            let dir = tempfile::tempdir().unwrap();
            let (kms, f, key) = store_in(state, op != Op::Delete, dir.path());
            let result = run_op(&kms, &f, key.as_deref(), op);
            let ok = result.is_ok();
            if allowed(op, state) {
                assert!(
                    result.is_ok(),
                    "{op:?} in {state} should be allowed: {result:?}"
                );
            } else {
                let e = result.expect_err(&format!("{op:?} in {state} should be refused"));
                assert_eq!(
                    e.kind(),
                    ErrorKind::CustomKeyStoreInvalidStateException,
                    "{op:?} in {state}: {e}"
                );
            }
            if op == Op::Delete && allowed(op, state) {
                continue;
            }
            // ConnectionErrorCode only while FAILED (and cleared when leaving FAILED).
            let e = describe_store(&kms, &f.store_id);
            assert_eq!(
                e.connection_error_code.is_some(),
                e.connection_state == ConnectionState::Failed,
                "{op:?} in {state}: {e:?}"
            );
            let after = match (op, state, ok) {
                (Op::Connect, ConnectionState::Disconnected, true) => ConnectionState::Connecting,
                (Op::Disconnect, _, true) => ConnectionState::Disconnecting,
                _ => state,
            };
            assert_eq!(e.connection_state, after, "{op:?} in {state}");
        }
    }
}

// ---- Property test ------------------------------------------------------------------------

mod prop {
    use super::*;
    use kmscks::hsm::model::SessionHolder;
    use proptest::prelude::*;

    #[derive(Clone, Debug)]
    pub(crate) enum Step {
        Connect,
        Disconnect,
        Rename(u8),
        SetPassword(bool),
        Delete,
        CreateKey,
        ScheduleDeletion,
        PassTime,
        PasswordChanged,
        ResetPassword,
        NetworkDown(bool),
        LoggedInElsewhere(bool),
        LoseHsm(usize),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            3 => Just(Step::Connect),
            3 => Just(Step::Disconnect),
            1 => (0u8..3).prop_map(Step::Rename),
            2 => any::<bool>().prop_map(Step::SetPassword),
            1 => Just(Step::Delete),
            2 => Just(Step::CreateKey),
            1 => Just(Step::ScheduleDeletion),
            1 => Just(Step::PassTime),
            1 => Just(Step::PasswordChanged),
            1 => Just(Step::ResetPassword),
            1 => any::<bool>().prop_map(Step::NetworkDown),
            1 => any::<bool>().prop_map(Step::LoggedInElsewhere),
            1 => (0usize..2).prop_map(Step::LoseHsm),
        ]
    }

    /// Checks every invariant on a consistent snapshot.
    fn check(kms: &Kms, store_id: &str, cluster_id: &str) {
        let snap = kms.state_snapshot();
        let sid = kmscks::types::CustomKeyStoreId::parse(store_id).unwrap();
        let cid = kmscks::types::ClusterId::parse_lenient(cluster_id).unwrap();
        let kms_sessions: Vec<&SessionHolder> = snap
            .hsm
            .cluster_users(&cid)
            .filter_map(|u| u.session.as_ref())
            .filter(|s| matches!(s, SessionHolder::Kms(_)))
            .collect();
        assert!(kms_sessions.len() <= 1, "{kms_sessions:?}");
        let store = snap.kms.stores.get(&sid);
        if let Some(s) = store {
            let e = describe_store(kms, store_id);
            assert_eq!(
                e.connection_error_code.is_some(),
                e.connection_state == ConnectionState::Failed,
                "{e:?}"
            );
            let held = kms_sessions
                .iter()
                .any(|h| **h == SessionHolder::Kms(store_id.to_owned()));
            match s.state {
                ConnectionState::Connected => assert!(held, "CONNECTED without a kmsuser session"),
                ConnectionState::Disconnected
                | ConnectionState::Failed
                | ConnectionState::Connecting => {
                    assert!(!held, "{} with a kmsuser session", s.state)
                }
                ConnectionState::Disconnecting => {}
            }
        }
        let connected = store.is_some_and(|s| s.state == ConnectionState::Connected);
        for key in snap.kms.keys.values() {
            let md = describe_key(kms, &key.id.to_string());
            let pending = key.deletion_date().is_some();
            assert_eq!(md.key_state == KeyState::PendingDeletion, pending);
            assert_eq!(
                md.key_state == KeyState::Unavailable,
                !connected && !pending,
                "{md:?}"
            );
            assert_eq!(md.enabled, md.key_state == KeyState::Enabled);
            // The backing key is in the cluster, labelled with the key ARN.
            assert!(
                snap.hsm.cluster_objects(&cid).any(|o| o.label == md.arn),
                "no HSM key for {}",
                md.arn
            );
        }
        for ((c, _), events) in &snap.hsm.audit {
            if *c == cid {
                for (i, ev) in events.iter().enumerate() {
                    assert_eq!(ev.sequence, i as u64);
                }
            }
        }
    }

    fn run(steps: &[Step]) {
        let (kms, clock) = kms();
        let c = active_cluster(&kms);
        let store_id = create_store(&kms, &c, "P0");
        let req = || id_req(&store_id);
        let mut deleted = false;
        for st in steps {
            let before = kms
                .state_snapshot()
                .kms
                .stores
                .values()
                .next()
                .map(|s| s.state);
            assert_eq!(before.is_none(), deleted);
            let result: kmscks::Result<()> = match st {
                Step::Connect => kms.connect_custom_key_store(&req()).map(|_| {
                    settle(&kms, &clock, &store_id);
                }),
                Step::Disconnect => kms.disconnect_custom_key_store(&req()).map(|_| {
                    settle(&kms, &clock, &store_id);
                }),
                Step::Rename(n) => update_name(&kms, &store_id, &format!("P{n}")).map(drop),
                Step::SetPassword(right) => {
                    let pw = if *right {
                        KMSUSER_PASSWORD
                    } else {
                        "wrongPassw0rd"
                    };
                    update_password(&kms, &store_id, pw).map(drop)
                }
                Step::Delete => kms.delete_custom_key_store(&req()).map(drop),
                Step::CreateKey => create_key_in(&kms, &store_id).map(drop),
                Step::ScheduleDeletion => {
                    let first = kms.state_snapshot().kms.keys.keys().next().copied();
                    match first {
                        Some(k) => kms
                            .schedule_key_deletion(&ScheduleKeyDeletionRequest {
                                key_id: k.to_string(),
                                pending_window_in_days: Some(7),
                            })
                            .map(drop)
                            .or_else(|e| match e.kind() {
                                ErrorKind::KMSInvalidStateException => Ok(()),
                                _ => Err(e),
                            }),
                        None => Ok(()),
                    }
                }
                Step::PassTime => {
                    clock.advance_days(8);
                    kms.run_scheduled_deletions().map(drop)
                }
                Step::PasswordChanged => kms.inject_fault(
                    &c.cluster_id,
                    &Fault::PasswordChanged {
                        username: "kmsuser".into(),
                    },
                ),
                Step::ResetPassword => {
                    kms.change_hsm_user_password(&kmscks::api::hsm::UserRequest {
                        cluster_id: c.cluster_id.clone(),
                        username: "kmsuser".into(),
                        role: Some(HsmUserRole::CryptoUser),
                        password: Password::new(KMSUSER_PASSWORD),
                    })
                    .or_else(|e| match e.kind() {
                        // No active HSM left to run the command on.
                        ErrorKind::CloudHsmInvalidRequestException => Ok(()),
                        _ => Err(e),
                    })
                }
                Step::NetworkDown(down) => kms.inject_fault(
                    &c.cluster_id,
                    if *down {
                        &Fault::NetworkDown
                    } else {
                        &Fault::NetworkRestored
                    },
                ),
                Step::LoggedInElsewhere(on) => {
                    let r = if *on {
                        kms.inject_fault(
                            &c.cluster_id,
                            &Fault::UserLoggedInElsewhere {
                                username: "kmsuser".into(),
                            },
                        )
                    } else {
                        kms.logout_hsm_user(&c.cluster_id, "kmsuser")
                    };
                    // Refused when KMS (or nobody) holds the session: a CloudHSM error.
                    r.or_else(|e| match e.kind() {
                        ErrorKind::CloudHsmInvalidRequestException => Ok(()),
                        _ => Err(e),
                    })
                }
                Step::LoseHsm(i) => {
                    let hsms = hsm_ids(&kms, &c.cluster_id);
                    let id = kmscks::types::HsmId::parse(&hsms[*i]).unwrap();
                    kms.inject_fault(&c.cluster_id, &Fault::HsmLost(id))
                }
            };
            // Store-level operations: allowed per the §2 table, or the exact exception.
            let op = match st {
                Step::Connect => Some(Op::Connect),
                Step::Disconnect => Some(Op::Disconnect),
                Step::Rename(_) => Some(Op::UpdateName),
                Step::SetPassword(_) => Some(Op::UpdatePassword),
                Step::Delete => Some(Op::Delete),
                Step::CreateKey => Some(Op::CreateKey),
                _ => None,
            };
            match (op, before) {
                (Some(_), None) => {
                    let e = result.expect_err("the store is deleted");
                    assert_eq!(e.kind(), ErrorKind::CustomKeyStoreNotFoundException);
                }
                (Some(op), Some(state)) if !allowed(op, state) => {
                    let e = result.expect_err("refused by the state table");
                    assert_eq!(
                        e.kind(),
                        ErrorKind::CustomKeyStoreInvalidStateException,
                        "{op:?} in {state}"
                    );
                }
                (Some(Op::Delete), Some(_)) => match result {
                    Ok(()) => deleted = true,
                    Err(e) => assert_eq!(e.kind(), ErrorKind::CustomKeyStoreHasCMKsException),
                },
                (Some(Op::Connect), Some(state)) => match result {
                    Ok(()) => {}
                    // §1.5: without an active HSM, Connect fails at once and the store stays
                    // DISCONNECTED.
                    Err(e)
                        if e.kind() == ErrorKind::CloudHsmClusterInvalidConfigurationException
                            && !any_hsm_active(&kms, &c.cluster_id) =>
                    {
                        assert_eq!(state, ConnectionState::Disconnected, "{e}");
                        assert_eq!(
                            connection_state(&kms, &store_id),
                            ConnectionState::Disconnected
                        );
                    }
                    Err(e) => panic!("connect from {before:?}: {e}"),
                },
                (Some(Op::CreateKey), Some(_)) => {
                    if let Err(e) = result {
                        // CONNECTED, but the cluster is in trouble (§3.3).
                        assert!(
                            matches!(
                                e.kind(),
                                ErrorKind::KMSInvalidStateException
                                    | ErrorKind::CloudHsmClusterInvalidConfigurationException
                            ),
                            "{e}"
                        );
                    }
                }
                _ => {
                    result.unwrap_or_else(|e| panic!("{st:?}: {e}"));
                }
            }
            check(&kms, &store_id, &c.cluster_id);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]
        #[test]
        fn invariants_hold_over_random_sequences(steps in proptest::collection::vec(step(), 1..=20)) {
            run(&steps);
        }
    }
}

#[test]
fn a_connection_attempt_completes_when_the_instance_clock_passes_the_connect_delay() {
    let (kms, clock) = kms();
    let store_id = create_store(&kms, &active_cluster(&kms), "Timed");
    kms.connect_custom_key_store(&id_req(&store_id)).unwrap();
    // The manual clock has not moved: however long real time runs, the attempt is pending.
    let pending = kms
        .wait_for_connection(&store_id, Duration::from_millis(50))
        .unwrap();
    assert_eq!(pending.connection_state, ConnectionState::Connecting);
    clock.advance(CONNECT_DELAY - Duration::from_millis(1));
    let still = kms
        .wait_for_connection(&store_id, Duration::from_millis(50))
        .unwrap();
    assert_eq!(still.connection_state, ConnectionState::Connecting);
    clock.advance(Duration::from_millis(1));
    let done = kms
        .wait_for_connection(&store_id, Duration::from_secs(10))
        .unwrap();
    assert_eq!(done.connection_state, ConnectionState::Connected);
}

#[test]
fn a_wait_for_a_connection_without_end_returns_when_the_attempt_completes() {
    let (kms, clock) = kms();
    let store_id = create_store(&kms, &active_cluster(&kms), "Endless wait");
    kms.connect_custom_key_store(&id_req(&store_id)).unwrap();
    // `Duration::MAX` is past what the clock can add: the wait has no deadline, and ends
    // when the attempt does.
    std::thread::scope(|s| {
        let waiting = s.spawn(|| kms.wait_for_connection(&store_id, Duration::MAX));
        clock.advance(CONNECT_DELAY);
        let done = waiting.join().expect("the wait does not panic").unwrap();
        assert_eq!(done.connection_state, ConnectionState::Connected);
    });
}
