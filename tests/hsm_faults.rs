//! The simulated CloudHSM side: every ConnectionErrorCode (spec §2.1) from its fault and its
//! remedy, kmsuser's password rotation, cluster trouble under a CONNECTED store (§3.3), the
//! cluster/user/backup operations, and the HSM audit log beside the KMS event log (§8).

mod common;
mod support;

use std::time::Duration;

use common::*;
use kmscks::api::hsm::*;
use kmscks::api::kms::*;
use kmscks::hsm::pki::CertificateAuthority;
use kmscks::secret::Password;
use kmscks::types::{
    limits, BackupState, ClusterState, ConnectionErrorCode, ConnectionState, HsmId, HsmUserRole,
    KeyState, ManualClock, Origin,
};
use kmscks::{ErrorKind, Kms};

const NEW_PASSWORD: &str = "brandNewPassw0rd";

fn id_req(store_id: &str) -> CustomKeyStoreIdRequest {
    CustomKeyStoreIdRequest {
        custom_key_store_id: store_id.into(),
    }
}

fn user_req(cluster_id: &str, username: &str, password: &str) -> UserRequest {
    UserRequest {
        cluster_id: cluster_id.into(),
        username: username.into(),
        role: Some(HsmUserRole::CryptoUser),
        password: Password::new(password),
    }
}

fn set_store_password(kms: &Kms, store_id: &str, password: &str) {
    kms.update_custom_key_store(&UpdateCustomKeyStoreRequest {
        custom_key_store_id: store_id.into(),
        key_store_password: Some(Password::new(password)),
        ..Default::default()
    })
    .unwrap();
}

fn set_store_cluster(kms: &Kms, store_id: &str, cluster_id: &str) {
    kms.update_custom_key_store(&UpdateCustomKeyStoreRequest {
        custom_key_store_id: store_id.into(),
        cloud_hsm_cluster_id: Some(cluster_id.into()),
        ..Default::default()
    })
    .unwrap();
}

fn create_key_in(kms: &Kms, store_id: &str) -> kmscks::Result<KeyMetadataResponse> {
    kms.create_key(&CreateKeyRequest {
        custom_key_store_id: Some(store_id.into()),
        origin: Some(Origin::AwsCloudhsm),
        ..Default::default()
    })
}

fn hsm_ids(kms: &Kms, cluster_id: &str) -> Vec<HsmId> {
    describe_cluster(kms, cluster_id)
        .hsms
        .iter()
        .map(|h| h.hsm_id.clone())
        .collect()
}

/// `cluster activate`: the admin password that makes an INITIALIZED cluster ACTIVE.
fn activate(kms: &Kms, cluster_id: &str) {
    kms.activate_cluster(&ActivateClusterRequest {
        cluster_id: cluster_id.to_owned(),
        password: Password::new("adminPassw0rd"),
    })
    .unwrap();
}

fn describe_cluster(kms: &Kms, cluster_id: &str) -> ClusterDescription {
    let mut req = DescribeClustersRequest::default();
    req.filters
        .insert("clusterIds".into(), vec![cluster_id.to_owned()]);
    kms.describe_clusters(&req).unwrap().clusters.remove(0)
}

fn kmsuser(kms: &Kms, cluster_id: &str) -> UserDescription {
    kms.list_hsm_users(cluster_id)
        .unwrap()
        .into_iter()
        .find(|u| u.username == "kmsuser")
        .expect("kmsuser exists")
}

// ---- §2.1 every ConnectionErrorCode, and its remedy ---------------------------------------

/// What a case needs: the instance, the cluster fixture, the store.
struct Ctx<'a> {
    kms: &'a Kms,
    clock: &'a ManualClock,
    c: &'a ClusterFixture,
    store_id: &'a str,
}

struct Case {
    name: &'static str,
    code: ConnectionErrorCode,
    /// The store is created with this password (the fault may be the password itself).
    create_password: &'static str,
    /// Breaks things while the store is DISCONNECTED.
    fault: fn(&Ctx<'_>),
    /// The documented fix, run after Disconnect (it includes any Update of the store).
    remedy: fn(&Ctx<'_>),
}

fn unlock_and_tell_kms(x: &Ctx<'_>) {
    x.kms
        .change_hsm_user_password(&user_req(&x.c.cluster_id, "kmsuser", NEW_PASSWORD))
        .unwrap();
    set_store_password(x.kms, x.store_id, NEW_PASSWORD);
}

fn move_to_restored_cluster(x: &Ctx<'_>) {
    let restored = restored_cluster(x.kms, &x.c.cluster_id);
    set_store_cluster(x.kms, x.store_id, &restored);
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "wrong password at create",
            code: ConnectionErrorCode::InvalidCredentials,
            create_password: "wrongPassw0rd",
            fault: |_| {},
            remedy: |x| set_store_password(x.kms, x.store_id, KMSUSER_PASSWORD),
        },
        Case {
            name: "password changed after a disconnect",
            code: ConnectionErrorCode::InvalidCredentials,
            create_password: KMSUSER_PASSWORD,
            fault: |x| {
                connect(x.kms, x.clock, x.store_id);
                disconnect(x.kms, x.clock, x.store_id);
                x.kms
                    .inject_fault(
                        &x.c.cluster_id,
                        &Fault::PasswordChanged {
                            username: "kmsuser".into(),
                        },
                    )
                    .unwrap();
            },
            remedy: unlock_and_tell_kms,
        },
        Case {
            name: "cluster deleted",
            code: ConnectionErrorCode::ClusterNotFound,
            create_password: KMSUSER_PASSWORD,
            fault: |x| {
                for hsm in hsm_ids(x.kms, &x.c.cluster_id) {
                    x.kms
                        .delete_hsm(&DeleteHsmRequest {
                            cluster_id: x.c.cluster_id.clone(),
                            hsm_id: hsm.to_string(),
                            ..Default::default()
                        })
                        .unwrap();
                }
                x.kms
                    .delete_cluster(&cluster_named(&x.c.cluster_id))
                    .unwrap();
            },
            remedy: |x| {
                // Rebuild from the final backup DeleteCluster took, then re-point the store.
                let backup = x
                    .kms
                    .describe_backups(&Default::default())
                    .unwrap()
                    .backups
                    .into_iter()
                    .filter(|b| b.cluster_id.as_str() == x.c.cluster_id)
                    // The latest: CloudHSM also backs up a cluster when it is activated.
                    .max_by_key(|b| b.create_timestamp)
                    .expect("DeleteCluster takes a final backup");
                let cluster = x
                    .kms
                    .create_cluster(&CreateClusterRequest {
                        source_backup_id: Some(backup.backup_id),
                        ..Default::default()
                    })
                    .unwrap()
                    .cluster;
                for zone in cluster.subnet_mapping.keys() {
                    x.kms
                        .create_hsm(&CreateHsmRequest {
                            cluster_id: cluster.cluster_id.to_string(),
                            availability_zone: zone.clone(),
                            region: None,
                        })
                        .unwrap();
                }
                set_store_cluster(x.kms, x.store_id, cluster.cluster_id.as_str());
            },
        },
        Case {
            name: "network down",
            code: ConnectionErrorCode::NetworkErrors,
            create_password: KMSUSER_PASSWORD,
            fault: |x| {
                x.kms
                    .inject_fault(&x.c.cluster_id, &Fault::NetworkDown)
                    .unwrap()
            },
            remedy: |x| {
                x.kms
                    .inject_fault(&x.c.cluster_id, &Fault::NetworkRestored)
                    .unwrap()
            },
        },
        Case {
            name: "internal error",
            code: ConnectionErrorCode::InternalError,
            create_password: KMSUSER_PASSWORD,
            fault: |x| {
                x.kms
                    .inject_fault(&x.c.cluster_id, &Fault::InternalError(true))
                    .unwrap()
            },
            remedy: |x| {
                x.kms
                    .inject_fault(&x.c.cluster_id, &Fault::InternalError(false))
                    .unwrap()
            },
        },
        Case {
            name: "every HSM lost while connecting",
            code: ConnectionErrorCode::InsufficientCloudhsmHsms,
            create_password: KMSUSER_PASSWORD,
            fault: |x| {
                // Lost before Connect, they fail it at once (CloudHsmClusterInvalid-
                // ConfigurationException); lost once it is accepted, before KMS logs in, they
                // fail the attempt. The connect that follows is a no-op while CONNECTING.
                x.kms.connect_custom_key_store(&id_req(x.store_id)).unwrap();
                for hsm in hsm_ids(x.kms, &x.c.cluster_id) {
                    x.kms
                        .inject_fault(&x.c.cluster_id, &Fault::HsmLost(hsm))
                        .unwrap();
                }
            },
            remedy: |x| {
                x.kms
                    .create_hsm(&CreateHsmRequest {
                        cluster_id: x.c.cluster_id.clone(),
                        availability_zone: x.c.zones[0].clone(),
                        region: None,
                    })
                    .unwrap();
            },
        },
        Case {
            name: "five failed connects",
            code: ConnectionErrorCode::UserLockedOut,
            create_password: "wrongPassw0rd",
            fault: |x| {
                for _ in 0..5 {
                    let e = connect(x.kms, x.clock, x.store_id);
                    assert_eq!(
                        e.connection_error_code,
                        Some(ConnectionErrorCode::InvalidCredentials)
                    );
                    disconnect(x.kms, x.clock, x.store_id);
                }
                assert!(kmsuser(x.kms, &x.c.cluster_id).locked);
            },
            remedy: unlock_and_tell_kms,
        },
        Case {
            name: "user locked out",
            code: ConnectionErrorCode::UserLockedOut,
            create_password: KMSUSER_PASSWORD,
            fault: |x| {
                x.kms
                    .inject_fault(
                        &x.c.cluster_id,
                        &Fault::UserLockedOut {
                            username: "kmsuser".into(),
                        },
                    )
                    .unwrap()
            },
            remedy: unlock_and_tell_kms,
        },
        Case {
            name: "kmsuser deleted",
            code: ConnectionErrorCode::UserNotFound,
            create_password: KMSUSER_PASSWORD,
            fault: |x| x.kms.delete_hsm_user(&x.c.cluster_id, "kmsuser").unwrap(),
            remedy: |x| {
                x.kms
                    .create_hsm_user(&user_req(&x.c.cluster_id, "kmsuser", NEW_PASSWORD))
                    .unwrap();
                set_store_password(x.kms, x.store_id, NEW_PASSWORD);
            },
        },
        Case {
            name: "kmsuser logged in elsewhere (fault)",
            code: ConnectionErrorCode::UserLoggedIn,
            create_password: KMSUSER_PASSWORD,
            fault: |x| {
                x.kms
                    .inject_fault(
                        &x.c.cluster_id,
                        &Fault::UserLoggedInElsewhere {
                            username: "kmsuser".into(),
                        },
                    )
                    .unwrap()
            },
            remedy: |x| x.kms.logout_hsm_user(&x.c.cluster_id, "kmsuser").unwrap(),
        },
        Case {
            name: "kmsuser logged in with the CLI",
            code: ConnectionErrorCode::UserLoggedIn,
            create_password: KMSUSER_PASSWORD,
            fault: |x| {
                x.kms
                    .login_hsm_user(&x.c.cluster_id, "kmsuser", &Password::new(KMSUSER_PASSWORD))
                    .unwrap()
            },
            remedy: |x| x.kms.logout_hsm_user(&x.c.cluster_id, "kmsuser").unwrap(),
        },
        Case {
            name: "subnet deleted",
            code: ConnectionErrorCode::SubnetNotFound,
            create_password: KMSUSER_PASSWORD,
            fault: |x| {
                x.kms
                    .inject_fault(
                        &x.c.cluster_id,
                        &Fault::SubnetDeleted {
                            availability_zone: x.c.zones[0].clone(),
                        },
                    )
                    .unwrap()
            },
            remedy: move_to_restored_cluster,
        },
        Case {
            name: "subnet full",
            code: ConnectionErrorCode::InsufficientFreeAddressesInSubnet,
            create_password: KMSUSER_PASSWORD,
            fault: |x| {
                x.kms
                    .inject_fault(
                        &x.c.cluster_id,
                        &Fault::SubnetFull {
                            availability_zone: x.c.zones[1].clone(),
                        },
                    )
                    .unwrap()
            },
            remedy: move_to_restored_cluster,
        },
    ]
}

#[test]
fn every_connection_error_code_and_its_remedy() {
    let mut seen = Vec::new();
    for case in cases() {
        let (kms, clock) = kms();
        let c = active_cluster(&kms);
        let mut req = store_request(&c, "S");
        req.key_store_password = Some(Password::new(case.create_password));
        let store_id = kms
            .create_custom_key_store(&req)
            .unwrap()
            .custom_key_store_id;
        let x = Ctx {
            kms: &kms,
            clock: &clock,
            c: &c,
            store_id: &store_id,
        };
        (case.fault)(&x);
        let e = connect(&kms, &clock, &store_id);
        assert_eq!(e.connection_state, ConnectionState::Failed, "{}", case.name);
        assert_eq!(e.connection_error_code, Some(case.code), "{}", case.name);
        // FAILED must be disconnected before anything else.
        assert_aws(
            kms.connect_custom_key_store(&id_req(&store_id)),
            ErrorKind::CustomKeyStoreInvalidStateException,
        );
        let e = disconnect(&kms, &clock, &store_id);
        assert_eq!(e.connection_state, ConnectionState::Disconnected);
        assert_eq!(e.connection_error_code, None, "{}: cleared", case.name);
        (case.remedy)(&x);
        let e = connect(&kms, &clock, &store_id);
        assert_eq!(
            (e.connection_state, e.connection_error_code),
            (ConnectionState::Connected, None),
            "{}: remedy",
            case.name
        );
        seen.push(case.code);
    }
    // Every CloudHSM code of §2.1 was produced.
    for code in [
        ConnectionErrorCode::InvalidCredentials,
        ConnectionErrorCode::ClusterNotFound,
        ConnectionErrorCode::NetworkErrors,
        ConnectionErrorCode::InternalError,
        ConnectionErrorCode::InsufficientCloudhsmHsms,
        ConnectionErrorCode::UserLockedOut,
        ConnectionErrorCode::UserNotFound,
        ConnectionErrorCode::UserLoggedIn,
        ConnectionErrorCode::SubnetNotFound,
        ConnectionErrorCode::InsufficientFreeAddressesInSubnet,
    ] {
        assert!(seen.contains(&code), "{code} not covered");
    }
}

#[test]
fn a_kmsuser_that_is_not_a_crypto_user_fails_connect_with_user_not_found() {
    // §3.2: kmsuser is an ordinary crypto user named exactly `kmsuser`; an admin of that name
    // is no kmsuser (§2.1 USER_NOT_FOUND), even with the password KMS knows.
    let (kms, clock) = kms();
    let c = active_cluster(&kms);
    let cid = &c.cluster_id;
    kms.delete_hsm_user(cid, "kmsuser").unwrap();
    kms.create_hsm_user(&UserRequest {
        role: Some(HsmUserRole::Admin),
        ..user_req(cid, "kmsuser", KMSUSER_PASSWORD)
    })
    .unwrap();
    let store_id = kms
        .create_custom_key_store(&store_request(&c, "S"))
        .unwrap()
        .custom_key_store_id;
    let e = connect(&kms, &clock, &store_id);
    assert_eq!(
        (e.connection_state, e.connection_error_code),
        (
            ConnectionState::Failed,
            Some(ConnectionErrorCode::UserNotFound)
        )
    );
    assert_eq!(kmsuser(&kms, cid).logged_in, None, "KMS never logged in");
    // The remedy: a crypto user named kmsuser, and its password told to KMS.
    disconnect(&kms, &clock, &store_id);
    kms.delete_hsm_user(cid, "kmsuser").unwrap();
    kms.create_hsm_user(&user_req(cid, "kmsuser", NEW_PASSWORD))
        .unwrap();
    set_store_password(&kms, &store_id, NEW_PASSWORD);
    let e = connect(&kms, &clock, &store_id);
    assert_eq!(
        (e.connection_state, e.connection_error_code),
        (ConnectionState::Connected, None)
    );
}

// ---- kmsuser while connected --------------------------------------------------------------

#[test]
fn connect_rotates_the_kmsuser_password_and_holds_its_session() {
    let (kms, clock) = kms();
    let f = connected_store(&kms, &clock, "S");
    let cid = &f.cluster.cluster_id;
    assert_eq!(
        kmsuser(&kms, cid).logged_in,
        Some(format!("kms:{}", f.store_id))
    );
    let old = Password::new(KMSUSER_PASSWORD);
    assert_aws(
        kms.login_hsm_user(cid, "kmsuser", &old),
        ErrorKind::CloudHsmAccessDeniedException,
    );
    disconnect(&kms, &clock, &f.store_id);
    assert_eq!(kmsuser(&kms, cid).logged_in, None);
    // Not merely "already logged in": the old password is no longer kmsuser's.
    let e = assert_aws(
        kms.login_hsm_user(cid, "kmsuser", &old),
        ErrorKind::CloudHsmAccessDeniedException,
    );
    assert!(e.message().contains("wrong password"), "{e}");
    // KMS knows the rotated password: it reconnects without help.
    assert_eq!(
        connect(&kms, &clock, &f.store_id).connection_state,
        ConnectionState::Connected
    );
}

#[test]
fn connect_fails_at_once_with_invalid_configuration_when_no_hsm_of_the_cluster_is_active() {
    let (kms, clock) = kms();
    let c = active_cluster(&kms);
    let store_id = kms
        .create_custom_key_store(&store_request(&c, "S"))
        .unwrap()
        .custom_key_store_id;
    let hsms = hsm_ids(&kms, &c.cluster_id);
    for hsm in &hsms {
        kms.inject_fault(&c.cluster_id, &Fault::HsmLost(hsm.clone()))
            .unwrap();
    }
    assert_eq!(describe_cluster(&kms, &c.cluster_id).hsms.len(), hsms.len());

    let e = assert_aws(
        kms.connect_custom_key_store(&id_req(&store_id)),
        ErrorKind::CloudHsmClusterInvalidConfigurationException,
    );
    assert!(e.message().contains("no active HSM"), "{e}");
    let entry = describe_store(&kms, &store_id);
    assert_eq!(
        (entry.connection_state, entry.connection_error_code),
        (ConnectionState::Disconnected, None)
    );

    // One HSM back is enough to connect.
    kms.inject_fault(&c.cluster_id, &Fault::HsmRestored(hsms[0].clone()))
        .unwrap();
    assert_eq!(
        connect(&kms, &clock, &store_id).connection_state,
        ConnectionState::Connected
    );
}

#[test]
fn cluster_trouble_leaves_a_connected_store_connected_and_create_key_fails() {
    let (kms, clock) = kms();
    let f = connected_store(&kms, &clock, "S");
    let cid = f.cluster.cluster_id.clone();
    let key = create_key(&kms, Some(&f.store_id));

    kms.inject_fault(&cid, &Fault::NetworkDown).unwrap();
    assert_eq!(
        connection_state(&kms, &f.store_id),
        ConnectionState::Connected
    );
    assert_aws(
        create_key_in(&kms, &f.store_id),
        ErrorKind::KMSInvalidStateException,
    );
    kms.inject_fault(&cid, &Fault::NetworkRestored).unwrap();

    let hsms = hsm_ids(&kms, &cid);
    kms.inject_fault(&cid, &Fault::HsmLost(hsms[0].clone()))
        .unwrap();
    // One active HSM is enough to stay connected, not to create keys.
    assert_aws(
        create_key_in(&kms, &f.store_id),
        ErrorKind::CloudHsmClusterInvalidConfigurationException,
    );
    kms.inject_fault(&cid, &Fault::HsmLost(hsms[1].clone()))
        .unwrap();
    assert_eq!(
        connection_state(&kms, &f.store_id),
        ConnectionState::Connected
    );
    assert_aws(
        create_key_in(&kms, &f.store_id),
        ErrorKind::CloudHsmClusterInvalidConfigurationException,
    );
    assert_eq!(describe_key(&kms, &key).key_state, KeyState::Enabled);
    assert_eq!(kms.list_key_objects(&cid).unwrap().len(), 1);
}

/// Whether the store's key encrypts (the network is up).
fn encrypts(kms: &Kms, key: &str) -> bool {
    kms.encrypt(&EncryptRequest {
        key_id: key.into(),
        plaintext: kmscks::secret::SecretBytes::from_slice(b"hi"),
        ..Default::default()
    })
    .is_ok()
}

#[test]
fn a_timed_network_cut_heals_when_the_clock_reaches_its_end_and_not_before() {
    let (kms, clock) = kms();
    let f = connected_store(&kms, &clock, "S");
    let cid = f.cluster.cluster_id.clone();
    let key = create_key(&kms, Some(&f.store_id));
    kms.inject_fault(
        &cid,
        &Fault::NetworkDownFor {
            duration_ms: 60_000,
        },
    )
    .unwrap();
    assert_eq!(
        kms.list_faults(&cid).unwrap(),
        vec![Fault::NetworkDownFor {
            duration_ms: 60_000
        }]
    );
    assert!(!encrypts(&kms, &key));
    clock.advance(Duration::from_millis(59_999));
    assert_eq!(
        kms.list_faults(&cid).unwrap(),
        vec![Fault::NetworkDownFor { duration_ms: 1 }]
    );
    assert!(!encrypts(&kms, &key));
    clock.advance(Duration::from_millis(1));
    support::wait_until("the cut heals", Duration::from_secs(20), || {
        kms.list_faults(&cid).unwrap().is_empty()
    });
    assert!(encrypts(&kms, &key));
    assert_eq!(
        connection_state(&kms, &f.store_id),
        ConnectionState::Connected
    );
}

#[test]
fn a_timed_network_cut_still_heals_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (config, clock) = config();
    let kms = Kms::open_with(dir.path(), config.clone()).unwrap();
    let f = connected_store(&kms, &clock, "S");
    let cid = f.cluster.cluster_id.clone();
    let key = create_key(&kms, Some(&f.store_id));
    kms.inject_fault(&cid, &Fault::NetworkDownFor { duration_ms: 5_000 })
        .unwrap();
    drop(kms);
    let kms = Kms::open_with(dir.path(), config).unwrap();
    assert!(!encrypts(&kms, &key));
    clock.advance(Duration::from_millis(5_000));
    support::wait_until(
        "the cut heals after the restart",
        Duration::from_secs(20),
        || kms.list_faults(&cid).unwrap().is_empty(),
    );
    assert!(encrypts(&kms, &key));
}

#[test]
fn a_slow_hsm_is_listed_until_latency_zero_and_bad_values_are_refused_naming_them() {
    let (kms, clock) = kms();
    let f = connected_store(&kms, &clock, "S");
    let cid = f.cluster.cluster_id.clone();
    let hsm = hsm_ids(&kms, &cid)[0].clone();
    let slow = |ms| Fault::SlowHsm {
        hsm_id: hsm.clone(),
        latency_ms: ms,
    };
    kms.inject_fault(&cid, &slow(25)).unwrap();
    assert_eq!(kms.list_faults(&cid).unwrap(), vec![slow(25)]);
    let e = kms
        .inject_fault(&cid, &slow(limits::MAX_HSM_LATENCY_MS + 1))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ValidationException);
    assert!(e.to_string().contains("latencyMs"), "{e}");
    let e = kms
        .inject_fault(&cid, &Fault::NetworkDownFor { duration_ms: 0 })
        .unwrap_err();
    assert!(e.to_string().contains("durationMs"), "{e}");
    let e = kms
        .inject_fault(
            &cid,
            &Fault::SlowHsm {
                hsm_id: HsmId::generate(),
                latency_ms: 5,
            },
        )
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::CloudHsmResourceNotFoundException);
    // Nothing the refused faults named changed.
    assert_eq!(kms.list_faults(&cid).unwrap(), vec![slow(25)]);
    // Both HSMs slow: a call through the Rust API pays the latency on the caller's thread.
    let key = create_key(&kms, Some(&f.store_id));
    for h in hsm_ids(&kms, &cid) {
        kms.inject_fault(
            &cid,
            &Fault::SlowHsm {
                hsm_id: h,
                latency_ms: 200,
            },
        )
        .unwrap();
    }
    let start = std::time::Instant::now();
    assert!(encrypts(&kms, &key));
    assert!(start.elapsed() >= Duration::from_millis(200));
    for h in hsm_ids(&kms, &cid) {
        kms.inject_fault(
            &cid,
            &Fault::SlowHsm {
                hsm_id: h,
                latency_ms: 0,
            },
        )
        .unwrap();
    }
    assert!(kms.list_faults(&cid).unwrap().is_empty());
}

// ---- Cluster operations -------------------------------------------------------------------

#[test]
fn cluster_lifecycle_errors() {
    let (kms, _clock) = kms();
    for req in [
        CreateClusterRequest {
            availability_zones: vec!["eu-west-1a".into(), "eu-west-1b".into()],
            ..Default::default()
        },
        CreateClusterRequest {
            availability_zones: vec!["us-east-1a".into(), "us-east-1a".into()],
            ..Default::default()
        },
    ] {
        assert_aws(
            kms.create_cluster(&req),
            ErrorKind::CloudHsmInvalidRequestException,
        );
    }
    let cluster = kms
        .create_cluster(&CreateClusterRequest::default())
        .unwrap()
        .cluster;
    let cid = cluster.cluster_id.to_string();
    // CreateCluster answers CREATE_IN_PROGRESS (as on AWS); with no transition configured
    // the cluster is UNINITIALIZED already.
    assert_eq!(cluster.state, ClusterState::CreateInProgress);
    assert_eq!(
        describe_cluster(&kms, &cid).state,
        ClusterState::Uninitialized
    );
    // InitializeCluster before there is a CSR (no HSM yet).
    assert_aws(
        kms.initialize_cluster_with_new_ca(&cluster_named(&cid)),
        ErrorKind::CloudHsmInvalidRequestException,
    );
    assert_aws(
        kms.create_hsm(&CreateHsmRequest {
            cluster_id: cid.clone(),
            availability_zone: "us-east-1c".into(),
            region: None,
        }),
        ErrorKind::CloudHsmInvalidRequestException,
    );
    assert_aws(
        kms.create_hsm(&CreateHsmRequest {
            cluster_id: "cluster-abcdefghijk".into(),
            availability_zone: "us-east-1a".into(),
            region: None,
        }),
        ErrorKind::CloudHsmResourceNotFoundException,
    );
    let hsm = kms
        .create_hsm(&CreateHsmRequest {
            cluster_id: cid.clone(),
            availability_zone: "us-east-1a".into(),
            region: None,
        })
        .unwrap()
        .hsm;
    assert_aws(
        kms.delete_hsm(&DeleteHsmRequest {
            cluster_id: cid.clone(),
            hsm_id: "hsm-abcdefghijk".into(),
            ..Default::default()
        }),
        ErrorKind::CloudHsmResourceNotFoundException,
    );
    let csr = describe_cluster(&kms, &cid)
        .certificates
        .cluster_csr
        .expect("an UNINITIALIZED cluster with an HSM offers its CSR");
    // Signed by one CA, presented with another's certificate.
    let ca1 = CertificateAuthority::generate("CA one").unwrap();
    let ca2 = CertificateAuthority::generate("CA two").unwrap();
    let signed = ca1.sign_csr(&csr).unwrap();
    assert_aws(
        kms.initialize_cluster(&InitializeClusterRequest {
            cluster_id: cid.clone(),
            signed_cert: signed.clone(),
            trust_anchor: ca2.certificate_pem().into(),
            region: None,
        }),
        ErrorKind::CloudHsmInvalidRequestException,
    );
    let resp = kms
        .initialize_cluster(&InitializeClusterRequest {
            cluster_id: cid.clone(),
            signed_cert: signed.clone(),
            trust_anchor: ca1.certificate_pem().into(),
            region: None,
        })
        .unwrap();
    // As on AWS: INITIALIZE_IN_PROGRESS, then INITIALIZED until `cluster activate`.
    assert_eq!(resp.state, ClusterState::InitializeInProgress);
    assert_eq!(
        describe_cluster(&kms, &cid).state,
        ClusterState::Initialized
    );
    activate(&kms, &cid);
    assert_eq!(describe_cluster(&kms, &cid).state, ClusterState::Active);
    // Not UNINITIALIZED any more.
    assert_aws(
        kms.initialize_cluster(&InitializeClusterRequest {
            cluster_id: cid.clone(),
            signed_cert: signed,
            trust_anchor: ca1.certificate_pem().into(),
            region: None,
        }),
        ErrorKind::CloudHsmInvalidRequestException,
    );

    // DescribeClusters filters.
    let other = active_cluster(&kms);
    let uninit = kms
        .create_cluster(&CreateClusterRequest::default())
        .unwrap()
        .cluster
        .cluster_id;
    let mut req = DescribeClustersRequest::default();
    req.filters
        .insert("states".into(), vec!["UNINITIALIZED".into()]);
    let found: Vec<String> = kms
        .describe_clusters(&req)
        .unwrap()
        .clusters
        .iter()
        .map(|c| c.cluster_id.to_string())
        .collect();
    assert_eq!(found, vec![uninit.to_string()]);
    req.filters.insert("states".into(), vec!["ACTIVE".into()]);
    assert_eq!(kms.describe_clusters(&req).unwrap().clusters.len(), 2);
    req.filters
        .insert("clusterIds".into(), vec![other.cluster_id.clone()]);
    let only = kms.describe_clusters(&req).unwrap().clusters;
    assert_eq!(only.len(), 1);
    assert_eq!(only[0].cluster_id.as_str(), other.cluster_id);
    req.filters.insert("colour".into(), vec!["blue".into()]);
    assert_aws(
        kms.describe_clusters(&req),
        ErrorKind::CloudHsmInvalidRequestException,
    );

    // DeleteCluster needs every HSM gone.
    assert_aws(
        kms.delete_cluster(&cluster_named(&cid)),
        ErrorKind::CloudHsmInvalidRequestException,
    );
    kms.delete_hsm(&DeleteHsmRequest {
        cluster_id: cid.clone(),
        hsm_id: hsm.hsm_id.to_string(),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(
        kms.delete_cluster(&cluster_named(&cid))
            .unwrap()
            .cluster
            .state,
        ClusterState::DeleteInProgress
    );
    assert_aws(
        kms.delete_cluster(&cluster_named(&cid)),
        ErrorKind::CloudHsmResourceNotFoundException,
    );
    // An uninitialised cluster can be deleted without a backup.
    kms.delete_cluster(&cluster_named(uninit.as_str())).unwrap();
}

#[test]
fn users_and_cli_lockout() {
    let (kms, clock) = kms();
    let c = active_cluster(&kms);
    let cid = &c.cluster_id;
    kms.create_hsm_user(&user_req(cid, "alice", "alicePassw0rd"))
        .unwrap();
    assert_aws(
        kms.create_hsm_user(&user_req(cid, "alice", "alicePassw0rd")),
        ErrorKind::CloudHsmInvalidRequestException,
    );
    for bad in ["short", "has spaces in it", "ümlautPassword"] {
        assert_aws(
            kms.create_hsm_user(&user_req(cid, "bob", bad)),
            ErrorKind::CloudHsmInvalidRequestException,
        );
    }
    let names: Vec<String> = kms
        .list_hsm_users(cid)
        .unwrap()
        .into_iter()
        .map(|u| u.username)
        .collect();
    assert!(names.contains(&"alice".to_owned()) && names.contains(&"kmsuser".to_owned()));
    assert!(!names.contains(&"bob".to_owned()));

    // Five wrong passwords lock alice; then even the right one is refused.
    let wrong = Password::new("wrongPassw0rd");
    for _ in 0..5 {
        assert_aws(
            kms.login_hsm_user(cid, "alice", &wrong),
            ErrorKind::CloudHsmAccessDeniedException,
        );
    }
    let alice = |kms: &Kms| {
        kms.list_hsm_users(cid)
            .unwrap()
            .into_iter()
            .find(|u| u.username == "alice")
            .unwrap()
    };
    assert!(alice(&kms).locked);
    let e = assert_aws(
        kms.login_hsm_user(cid, "alice", &Password::new("alicePassw0rd")),
        ErrorKind::CloudHsmAccessDeniedException,
    );
    assert!(e.message().contains("locked"), "{e}");
    // change-password unlocks.
    kms.change_hsm_user_password(&user_req(cid, "alice", "alicePassw0rd2"))
        .unwrap();
    assert!(!alice(&kms).locked);
    kms.login_hsm_user(cid, "alice", &Password::new("alicePassw0rd2"))
        .unwrap();
    assert_eq!(alice(&kms).logged_in.as_deref(), Some("external"));
    assert_aws(
        kms.delete_hsm_user(cid, "alice"),
        ErrorKind::CloudHsmInvalidRequestException,
    );
    kms.logout_hsm_user(cid, "alice").unwrap();
    assert_aws(
        kms.logout_hsm_user(cid, "alice"),
        ErrorKind::CloudHsmInvalidRequestException,
    );
    kms.delete_hsm_user(cid, "alice").unwrap();
    assert_aws(
        kms.delete_hsm_user(cid, "alice"),
        ErrorKind::CloudHsmResourceNotFoundException,
    );
    assert_aws(
        kms.login_hsm_user(cid, "alice", &Password::new("alicePassw0rd2")),
        ErrorKind::CloudHsmResourceNotFoundException,
    );
    assert_aws(
        kms.change_hsm_user_password(&user_req(cid, "nobody", "somePassw0rd")),
        ErrorKind::CloudHsmResourceNotFoundException,
    );

    // kmsuser owns a key: it cannot be deleted.
    let store_id = kms
        .create_custom_key_store(&store_request(&c, "S"))
        .unwrap()
        .custom_key_store_id;
    connect(&kms, &clock, &store_id);
    create_key(&kms, Some(&store_id));
    disconnect(&kms, &clock, &store_id);
    assert_aws(
        kms.delete_hsm_user(cid, "kmsuser"),
        ErrorKind::CloudHsmInvalidRequestException,
    );
}

/// What each HSM's audit stream records of `username`: (opcode, response, key handle), in order,
/// one list per HSM.
fn audit_of(
    kms: &Kms,
    cluster_id: &str,
    username: &str,
) -> Vec<Vec<(String, String, Option<u64>)>> {
    events_of(kms, cluster_id)
        .into_iter()
        .map(|(_, events)| {
            events
                .into_iter()
                .filter(|e| e.user.as_deref() == Some(username))
                .map(|e| (e.opcode, e.response, e.key_handle))
                .collect()
        })
        .collect()
}

/// `(opcode, response, handle)` as [`audit_of`] lists it.
fn rec(opcode: &str, response: &str, handle: Option<u64>) -> (String, String, Option<u64>) {
    (opcode.to_owned(), response.to_owned(), handle)
}

/// A store's key whose store was then disconnected (KMS logged out): its key object's handle.
fn orphanable_key_object(kms: &Kms, clock: &ManualClock) -> (StoreFixture, u64) {
    let f = connected_store(kms, clock, "S");
    create_key(kms, Some(&f.store_id));
    disconnect(kms, clock, &f.store_id);
    let objects = kms.list_key_objects(&f.cluster.cluster_id).unwrap();
    let [object] = &objects[..] else {
        panic!("one key object: {objects:?}")
    };
    let handle = object.key_reference;
    (f, handle)
}

fn delete_object(
    kms: &Kms,
    cluster_id: &str,
    handle: u64,
    user: &str,
    password: &str,
) -> kmscks::Result<()> {
    kms.delete_key_object(cluster_id, handle, user, &Password::new(password))
}

#[test]
fn a_wrong_password_to_delete_a_key_object_counts_toward_the_lockout_and_is_audited() {
    let (kms, clock) = kms();
    let (f, handle) = orphanable_key_object(&kms, &clock);
    let cid = &f.cluster.cluster_id;
    kms.change_hsm_user_password(&user_req(cid, "kmsuser", NEW_PASSWORD))
        .unwrap();
    let before: Vec<usize> = audit_of(&kms, cid, "kmsuser")
        .iter()
        .map(Vec::len)
        .collect();

    for _ in 0..limits::MAX_FAILED_LOGINS {
        let e = assert_aws(
            delete_object(&kms, cid, handle, "kmsuser", "wrongPassw0rd"),
            ErrorKind::CloudHsmAccessDeniedException,
        );
        assert!(e.message().contains("wrong password"), "{e}");
    }
    assert!(kmsuser(&kms, cid).locked, "the failed attempts were kept");
    // Locked out: the right password no longer deletes.
    let e = assert_aws(
        delete_object(&kms, cid, handle, "kmsuser", NEW_PASSWORD),
        ErrorKind::CloudHsmAccessDeniedException,
    );
    assert!(e.message().contains("locked"), "{e}");
    assert_eq!(kms.list_key_objects(cid).unwrap().len(), 1);

    let mut expected =
        vec![rec("CN_LOGIN", "RET_USER_LOGIN_FAILURE", None); limits::MAX_FAILED_LOGINS as usize];
    expected.push(rec("CN_LOGIN", "RET_USER_LOCKED_OUT", None));
    for (stream, skip) in audit_of(&kms, cid, "kmsuser").iter().zip(before) {
        assert_eq!(stream[skip..], expected[..]);
    }
}

#[test]
fn deleting_a_key_object_logs_in_as_the_user_and_out_again_even_when_the_key_is_not_theirs() {
    let (kms, clock) = kms();
    let (f, handle) = orphanable_key_object(&kms, &clock);
    let cid = &f.cluster.cluster_id;
    kms.create_hsm_user(&user_req(cid, "alice", "alicePassw0rd"))
        .unwrap();
    let e = assert_aws(
        delete_object(&kms, cid, handle, "alice", "alicePassw0rd"),
        ErrorKind::CloudHsmAccessDeniedException,
    );
    assert!(e.message().contains("Only the owner kmsuser"), "{e}");
    let users = kms.list_hsm_users(cid).unwrap();
    let alice = users.iter().find(|u| u.username == "alice").unwrap();
    assert_eq!(alice.logged_in, None, "logged out after the refusal");
    for stream in audit_of(&kms, cid, "alice") {
        assert_eq!(
            stream,
            [
                rec("CN_CREATE_USER", "SUCCESS", None),
                rec("CN_LOGIN", "SUCCESS", None),
                rec("CN_LOGOUT", "SUCCESS", None),
            ]
        );
    }

    kms.change_hsm_user_password(&user_req(cid, "kmsuser", NEW_PASSWORD))
        .unwrap();
    delete_object(&kms, cid, handle, "kmsuser", NEW_PASSWORD).unwrap();
    assert!(kms.list_key_objects(cid).unwrap().is_empty());
    assert_eq!(kmsuser(&kms, cid).logged_in, None);
    for stream in audit_of(&kms, cid, "kmsuser") {
        assert_eq!(
            stream[stream.len() - 3..],
            [
                rec("CN_LOGIN", "SUCCESS", None),
                rec("CN_DESTROY_OBJECT", "SUCCESS", Some(handle)),
                rec("CN_LOGOUT", "SUCCESS", None),
            ]
        );
    }
}

#[test]
fn kmsuser_cannot_delete_a_key_object_while_kms_holds_its_session() {
    let (kms, clock) = kms();
    let f = connected_store(&kms, &clock, "S");
    let cid = &f.cluster.cluster_id;
    let key_id = create_key(&kms, Some(&f.store_id));
    let handle = kms.list_key_objects(cid).unwrap()[0].key_reference;
    // An admin may change kmsuser's password while KMS is logged in as kmsuser.
    kms.change_hsm_user_password(&user_req(cid, "kmsuser", NEW_PASSWORD))
        .unwrap();

    let e = assert_aws(
        delete_object(&kms, cid, handle, "kmsuser", NEW_PASSWORD),
        ErrorKind::CloudHsmAccessDeniedException,
    );
    assert!(e.message().contains("already logged in"), "{e}");
    assert_eq!(kms.list_key_objects(cid).unwrap().len(), 1);
    assert_eq!(
        kmsuser(&kms, cid).logged_in,
        Some(format!("kms:{}", f.store_id)),
        "KMS keeps its session"
    );
    assert_eq!(describe_key(&kms, &key_id).key_state, KeyState::Enabled);
    for stream in audit_of(&kms, cid, "kmsuser") {
        assert_eq!(
            stream.last(),
            Some(&rec("CN_LOGIN", "RET_USER_ALREADY_LOGGED_IN", None))
        );
    }
}

#[test]
fn a_disconnect_during_a_network_cut_ends_kmsusers_session_as_a_lost_connection_not_a_logout() {
    let (kms, clock) = kms();
    let f = connected_store(&kms, &clock, "S");
    let cid = &f.cluster.cluster_id;
    let before: Vec<usize> = audit_of(&kms, cid, "kmsuser")
        .iter()
        .map(Vec::len)
        .collect();
    kms.inject_fault(cid, &Fault::NetworkDown).unwrap();
    assert_eq!(
        disconnect(&kms, &clock, &f.store_id).connection_state,
        ConnectionState::Disconnected
    );
    // The HSMs record that the session ended: KMS's logout never reached them.
    assert_eq!(kmsuser(&kms, cid).logged_in, None);
    for (stream, skip) in audit_of(&kms, cid, "kmsuser").iter().zip(before) {
        assert_eq!(stream[skip..], [rec("CN_APP_FINALIZE", "SUCCESS", None)]);
    }
    // Once the network is back, KMS logs in again with the password it rotated to.
    kms.inject_fault(cid, &Fault::NetworkRestored).unwrap();
    assert_eq!(
        connect(&kms, &clock, &f.store_id).connection_state,
        ConnectionState::Connected
    );
}

#[test]
fn backups_copy_and_restore_related_clusters() {
    let (kms, clock) = kms();
    let f = connected_store(&kms, &clock, "S");
    let cid = f.cluster.cluster_id.clone();
    let key = describe_key(&kms, &create_key(&kms, Some(&f.store_id)));
    let backup = kms.create_backup(&cid).unwrap();
    assert_eq!(backup.backup_state, BackupState::Ready);
    assert_eq!(backup.cluster_id.as_str(), cid);
    assert!(
        backup.backup_arn.starts_with("arn:aws:cloudhsm:us-east-1:"),
        "{}",
        backup.backup_arn
    );
    assert!(!backup.never_expires);

    // Copy to another Region; a cluster restored from the copy is there, not here.
    assert_aws(
        kms.copy_backup_to_region(&CopyBackupToRegionRequest {
            backup_id: backup.backup_id.to_string(),
            destination_region: "us-east-1".into(),
            ..Default::default()
        }),
        ErrorKind::CloudHsmInvalidRequestException,
    );
    assert_aws(
        kms.copy_backup_to_region(&CopyBackupToRegionRequest {
            backup_id: "backup-abcdefghijk".into(),
            destination_region: "us-west-2".into(),
            ..Default::default()
        }),
        ErrorKind::CloudHsmResourceNotFoundException,
    );
    let copy = kms
        .copy_backup_to_region(&CopyBackupToRegionRequest {
            backup_id: backup.backup_id.to_string(),
            destination_region: "us-west-2".into(),
            ..Default::default()
        })
        .unwrap();
    let copied = copy.destination_backup;
    assert_eq!(copied.source_backup, backup.backup_id);
    assert_eq!(copied.source_region, "us-east-1");
    assert_eq!(copied.source_cluster.as_str(), cid);
    // The copy is found in its Region by its source, not in the source's Region.
    let west_backups = kms
        .describe_backups(&DescribeBackupsRequest {
            filters: [(
                "sourceBackupIds".to_owned(),
                vec![backup.backup_id.to_string()],
            )]
            .into(),
            region: Some("us-west-2".into()),
            ..Default::default()
        })
        .unwrap()
        .backups;
    let [copy] = &west_backups[..] else {
        panic!("one copy in us-west-2: {west_backups:?}")
    };
    assert!(copy.backup_arn.starts_with("arn:aws:cloudhsm:us-west-2:"));
    assert_eq!(
        copy.source_cluster.as_ref().map(|c| c.as_str()),
        Some(cid.as_str())
    );
    assert!(kms
        .describe_backups(&Default::default())
        .unwrap()
        .backups
        .iter()
        .all(|b| b.backup_id != copy.backup_id));
    let west = kms
        .create_cluster(&CreateClusterRequest {
            source_backup_id: Some(copy.backup_id.clone()),
            region: Some("us-west-2".into()),
            ..Default::default()
        })
        .unwrap()
        .cluster;
    // Clusters are regional: us-west-2's is listed there, not in the configured Region.
    let listed = |region: Option<&str>| {
        kms.describe_clusters(&DescribeClustersRequest {
            region: region.map(str::to_owned),
            ..Default::default()
        })
        .unwrap()
        .clusters
        .iter()
        .any(|c| c.cluster_id == west.cluster_id)
    };
    assert!(listed(Some("us-west-2")));
    assert!(!listed(None));
    assert_eq!(west.state, ClusterState::CreateInProgress);
    let mut req = DescribeClustersRequest {
        region: Some("us-west-2".into()),
        ..Default::default()
    };
    req.filters
        .insert("clusterIds".into(), vec![west.cluster_id.to_string()]);
    assert_eq!(
        kms.describe_clusters(&req).unwrap().clusters[0].state,
        ClusterState::Active
    );
    assert!(west
        .subnet_mapping
        .keys()
        .all(|z| z.starts_with("us-west-2")));
    let mut req = store_request(&f.cluster, "West");
    req.cloud_hsm_cluster_id = Some(west.cluster_id.to_string());
    assert_aws(
        kms.create_custom_key_store(&req),
        ErrorKind::CloudHsmClusterNotFoundException,
    );

    // Restore in the same Region: related (same certificate), same users and key objects.
    let restored = restored_cluster(&kms, &cid);
    let a = describe_cluster(&kms, &cid);
    let b = describe_cluster(&kms, &restored);
    assert_eq!(
        a.certificates.cluster_certificate,
        b.certificates.cluster_certificate
    );
    assert!(b.source_backup_id.is_some());
    let users = |id: &str| -> Vec<(String, HsmUserRole)> {
        kms.list_hsm_users(id)
            .unwrap()
            .into_iter()
            .map(|u| (u.username, u.role))
            .collect()
    };
    assert_eq!(users(&cid), users(&restored));
    // The restored kmsuser is not logged in (sessions are not backed up).
    assert_eq!(kmsuser(&kms, &restored).logged_in, None);
    let objects = |id: &str| -> Vec<(u64, String, String)> {
        kms.list_key_objects(id)
            .unwrap()
            .into_iter()
            .map(|o| (o.key_reference, o.label, o.owner))
            .collect()
    };
    assert_eq!(objects(&cid), objects(&restored));
    assert_eq!(objects(&restored)[0].1, key.arn);

    // A deleted backup (PENDING_DELETION) restores no cluster until RestoreBackup.
    kms.delete_backup(&backup_named(backup.backup_id.as_str()))
        .unwrap();
    assert_aws(
        kms.create_cluster(&CreateClusterRequest {
            source_backup_id: Some(backup.backup_id.clone()),
            ..Default::default()
        }),
        ErrorKind::CloudHsmInvalidRequestException,
    );
}

#[test]
fn a_deleted_backup_is_restorable_for_seven_days_then_gone() {
    let (kms, clock) = kms();
    let f = connected_store(&kms, &clock, "S");
    let backup = kms.create_backup(&f.cluster.cluster_id).unwrap();
    let id = backup.backup_id.to_string();

    let deleted = kms.delete_backup(&backup_named(&id)).unwrap().backup;
    assert_eq!(deleted.backup_state, BackupState::PendingDeletion);
    assert!(deleted.delete_timestamp.is_some());
    assert_aws(
        kms.delete_backup(&backup_named(&id)),
        ErrorKind::CloudHsmInvalidRequestException,
    );
    assert_aws(
        kms.copy_backup_to_region(&CopyBackupToRegionRequest {
            backup_id: id.clone(),
            destination_region: "us-west-2".into(),
            ..Default::default()
        }),
        ErrorKind::CloudHsmInvalidRequestException,
    );
    // Just inside the window: back to READY, restorable from again.
    clock.advance_days(limits::BACKUP_RESTORE_DAYS - 1);
    clock.advance(std::time::Duration::from_millis(86_400_000 - 1));
    let restored = kms.restore_backup(&backup_named(&id)).unwrap().backup;
    assert_eq!(restored.backup_state, BackupState::Ready);
    assert_eq!(restored.delete_timestamp, None);
    assert_aws(
        kms.restore_backup(&backup_named(&id)),
        ErrorKind::CloudHsmInvalidRequestException,
    );
    kms.create_cluster(&CreateClusterRequest {
        source_backup_id: Some(backup.backup_id.clone()),
        ..Default::default()
    })
    .unwrap();

    // Deleted again and left seven days: gone for good.
    kms.delete_backup(&backup_named(&id)).unwrap();
    let pending = kms
        .describe_backups(&DescribeBackupsRequest {
            filters: [("states".to_owned(), vec!["PENDING_DELETION".to_owned()])].into(),
            region: None,
            ..Default::default()
        })
        .unwrap()
        .backups;
    assert_eq!(pending.len(), 1, "{pending:?}");
    clock.advance_days(limits::BACKUP_RESTORE_DAYS);
    assert_aws(
        kms.restore_backup(&backup_named(&id)),
        ErrorKind::CloudHsmResourceNotFoundException,
    );
    assert!(kms
        .describe_backups(&Default::default())
        .unwrap()
        .backups
        .iter()
        .all(|b| b.backup_id != backup.backup_id));
}

#[test]
fn describe_backups_refuses_an_unknown_filter_naming_it() {
    let (kms, _clock) = kms();
    let e = assert_aws(
        kms.describe_backups(&DescribeBackupsRequest {
            filters: [("vpcIds".to_owned(), vec!["x".to_owned()])].into(),
            region: None,
            ..Default::default()
        }),
        ErrorKind::CloudHsmInvalidRequestException,
    );
    assert!(e.message().contains("vpcIds"), "{e}");
}

/// Backups are regional, as on AWS (where the endpoint's Region is the only one searched):
/// every verb naming a backup finds it in the request's Region, else the configured one, and
/// nowhere else; CreateCluster restores into its own Region (the configured one unless given),
/// so only from a backup there.
#[test]
fn a_backup_is_found_only_in_its_own_region() {
    let (kms, clock) = kms();
    let f = connected_store(&kms, &clock, "S");
    let backup = kms.create_backup(&f.cluster.cluster_id).unwrap();
    assert_aws(
        kms.create_cluster(&CreateClusterRequest {
            source_backup_id: Some(backup.backup_id.clone()),
            region: Some("us-west-2".into()),
            ..Default::default()
        }),
        ErrorKind::CloudHsmResourceNotFoundException,
    );
    let c = kms
        .create_cluster(&CreateClusterRequest {
            source_backup_id: Some(backup.backup_id.clone()),
            region: Some("us-east-1".into()),
            ..Default::default()
        })
        .unwrap()
        .cluster;
    assert_eq!(c.source_backup_id, Some(backup.backup_id.clone()));

    // A copy in us-west-2, reached from the configured Region (us-east-1) by no verb.
    kms.copy_backup_to_region(&CopyBackupToRegionRequest {
        backup_id: backup.backup_id.to_string(),
        destination_region: "us-west-2".into(),
        ..Default::default()
    })
    .unwrap();
    let copy_id = kms
        .describe_backups(&DescribeBackupsRequest {
            region: Some("us-west-2".into()),
            ..Default::default()
        })
        .unwrap()
        .backups
        .remove(0)
        .backup_id;
    let copy = copy_id.to_string();
    let west = || Some("us-west-2".to_owned());
    let in_region = |region: Option<String>| BackupIdRequest {
        backup_id: copy.clone(),
        region,
    };
    let not_here = |r: kmscks::Result<()>, verb: &str| {
        let e = assert_aws(r, ErrorKind::CloudHsmResourceNotFoundException);
        assert!(
            e.message().contains(&copy) && e.message().contains("us-east-1"),
            "{verb}: {e}"
        );
    };
    let copy_home = |region| {
        kms.copy_backup_to_region(&CopyBackupToRegionRequest {
            backup_id: copy.clone(),
            region,
            destination_region: "us-east-1".into(),
            tag_list: vec![],
        })
    };
    not_here(copy_home(None).map(drop), "CopyBackupToRegion");
    not_here(
        kms.create_cluster(&CreateClusterRequest {
            source_backup_id: Some(copy_id.clone()),
            ..Default::default()
        })
        .map(drop),
        "CreateCluster",
    );
    not_here(
        kms.modify_backup_attributes(&ModifyBackupAttributesRequest {
            backup_id: copy.clone(),
            never_expires: true,
            region: None,
        })
        .map(drop),
        "ModifyBackupAttributes",
    );
    not_here(
        kms.tag_hsm_resource(&TagHsmResourceRequest {
            resource_id: copy.clone(),
            tag_list: one_tag(),
            region: None,
        }),
        "TagResource",
    );
    not_here(
        kms.list_hsm_tags(&ListHsmTagsRequest {
            resource_id: copy.clone(),
            ..Default::default()
        })
        .map(drop),
        "ListTags",
    );
    not_here(
        kms.delete_backup(&in_region(None)).map(drop),
        "DeleteBackup",
    );
    not_here(
        kms.restore_backup(&in_region(None)).map(drop),
        "RestoreBackup",
    );

    // Named in its Region, every verb finds it.
    tag_round_trip(&kms, &copy, west());
    let kept = kms
        .modify_backup_attributes(&ModifyBackupAttributesRequest {
            backup_id: copy.clone(),
            never_expires: true,
            region: west(),
        })
        .unwrap()
        .backup;
    assert!(kept.never_expires && kept.tag_list.is_empty(), "{kept:?}");
    copy_home(west()).unwrap();
    let restored = kms
        .create_cluster(&CreateClusterRequest {
            source_backup_id: Some(copy_id.clone()),
            region: west(),
            ..Default::default()
        })
        .unwrap()
        .cluster;
    assert_eq!(restored.source_backup_id, Some(copy_id));
    let deleted = kms.delete_backup(&in_region(west())).unwrap().backup;
    assert_eq!(deleted.backup_state, BackupState::PendingDeletion);
    let back = kms.restore_backup(&in_region(west())).unwrap().backup;
    assert_eq!(back.backup_state, BackupState::Ready);
}

/// Clusters are regional, as on AWS (where the endpoint's Region is the only one searched):
/// every cloudhsmv2 verb naming a cluster (CreateHsm, DeleteHsm, InitializeCluster in both
/// forms, ModifyCluster, TagResource, UntagResource, ListTags, DeleteCluster) finds it in the
/// request's Region, else the configured one, and nowhere else. The CloudHSM CLI's verbs find
/// a cluster by its id alone.
#[test]
fn a_cluster_is_found_only_in_its_own_region() {
    let (kms, _clock) = kms();
    let west = || Some("us-west-2".to_owned());
    let c = kms
        .create_cluster(&CreateClusterRequest {
            region: west(),
            ..Default::default()
        })
        .unwrap()
        .cluster;
    let id = c.cluster_id.to_string();
    let zones: Vec<String> = c.subnet_mapping.keys().cloned().collect();
    assert_eq!(zones, ["us-west-2a", "us-west-2b"]);
    let not_here = |r: kmscks::Result<()>, verb: &str| {
        let e = assert_aws(r, ErrorKind::CloudHsmResourceNotFoundException);
        assert!(
            e.message().contains(&id) && e.message().contains("us-east-1"),
            "{verb}: {e}"
        );
    };
    let create_hsm = |zone: &str, region| {
        kms.create_hsm(&CreateHsmRequest {
            cluster_id: id.clone(),
            availability_zone: zone.to_owned(),
            region,
        })
    };
    let in_region = |region| ClusterIdRequest {
        cluster_id: id.clone(),
        region,
    };
    let retention = |region| ModifyClusterRequest {
        cluster_id: id.clone(),
        backup_retention_policy: BackupRetentionPolicy {
            kind: "DAYS".into(),
            value: "30".into(),
        },
        region,
    };

    // Named from the configured Region (us-east-1), the us-west-2 cluster does not exist.
    not_here(create_hsm(&zones[0], None).map(drop), "CreateHsm");
    not_here(
        kms.initialize_cluster_with_new_ca(&in_region(None))
            .map(drop),
        "InitializeCluster (kmscks's CA)",
    );
    let hsm = create_hsm(&zones[0], west()).unwrap().hsm.hsm_id;
    create_hsm(&zones[1], west()).unwrap();
    not_here(
        kms.initialize_cluster(&InitializeClusterRequest {
            cluster_id: id.clone(),
            signed_cert: "-----BEGIN CERTIFICATE-----".into(),
            trust_anchor: "-----BEGIN CERTIFICATE-----".into(),
            region: None,
        })
        .map(drop),
        "InitializeCluster",
    );
    let trust_anchor = kms
        .initialize_cluster_with_new_ca(&in_region(west()))
        .unwrap()
        .trust_anchor;
    assert!(trust_anchor.is_some());
    not_here(
        kms.modify_cluster(&retention(None)).map(drop),
        "ModifyCluster",
    );
    not_here(
        kms.tag_hsm_resource(&TagHsmResourceRequest {
            resource_id: id.clone(),
            tag_list: one_tag(),
            region: None,
        }),
        "TagResource",
    );
    not_here(
        kms.untag_hsm_resource(&UntagHsmResourceRequest {
            resource_id: id.clone(),
            tag_key_list: vec!["k".into()],
            region: None,
        }),
        "UntagResource",
    );
    not_here(
        kms.list_hsm_tags(&ListHsmTagsRequest {
            resource_id: id.clone(),
            ..Default::default()
        })
        .map(drop),
        "ListTags",
    );
    let delete_hsm = |hsm_id: &HsmId, region| {
        kms.delete_hsm(&DeleteHsmRequest {
            cluster_id: id.clone(),
            hsm_id: hsm_id.to_string(),
            region,
            ..Default::default()
        })
    };
    not_here(delete_hsm(&hsm, None).map(drop), "DeleteHsm");
    not_here(
        kms.delete_cluster(&in_region(None)).map(drop),
        "DeleteCluster",
    );
    // A Region named explicitly is the one searched, and named in the refusal.
    let e = assert_aws(
        kms.delete_cluster(&in_region(Some("eu-west-1".into()))),
        ErrorKind::CloudHsmResourceNotFoundException,
    );
    assert!(e.message().contains("eu-west-1"), "{e}");
    // The other way round: a cluster of the configured Region is not in us-west-2.
    let home = kms
        .create_cluster(&CreateClusterRequest::default())
        .unwrap()
        .cluster;
    assert_aws(
        kms.create_hsm(&CreateHsmRequest {
            cluster_id: home.cluster_id.to_string(),
            availability_zone: "us-east-1a".into(),
            region: west(),
        }),
        ErrorKind::CloudHsmResourceNotFoundException,
    );
    // The CloudHSM CLI talks to the cluster's HSMs, not to a Region's endpoint.
    assert!(kms.list_key_objects(&id).unwrap().is_empty());

    // Named in its Region, every verb finds it.
    let policy = kms.modify_cluster(&retention(west())).unwrap().cluster;
    assert_eq!(policy.backup_retention_policy.value, "30");
    tag_round_trip(&kms, &id, west());
    for hsm in west_hsm_ids(&kms, &id) {
        assert_eq!(delete_hsm(&hsm, west()).unwrap().hsm_id, hsm);
    }
    let deleted = kms.delete_cluster(&in_region(west())).unwrap().cluster;
    assert_eq!(deleted.state, ClusterState::DeleteInProgress);
    assert!(deleted.tag_list.is_empty(), "{deleted:?}");
}

/// One tag, `k` = `v`.
fn one_tag() -> Vec<HsmTag> {
    vec![HsmTag {
        key: "k".into(),
        value: "v".into(),
    }]
}

/// Tags `resource` (a cluster or a backup) named in `region`, lists the tag back, and removes
/// it: every tag verb finds the resource there.
fn tag_round_trip(kms: &Kms, resource: &str, region: Option<String>) {
    kms.tag_hsm_resource(&TagHsmResourceRequest {
        resource_id: resource.to_owned(),
        tag_list: one_tag(),
        region: region.clone(),
    })
    .unwrap();
    let tags = kms
        .list_hsm_tags(&ListHsmTagsRequest {
            resource_id: resource.to_owned(),
            region: region.clone(),
            ..Default::default()
        })
        .unwrap()
        .tag_list;
    assert_eq!(tags, one_tag());
    kms.untag_hsm_resource(&UntagHsmResourceRequest {
        resource_id: resource.to_owned(),
        tag_key_list: vec!["k".into()],
        region,
    })
    .unwrap();
}

/// The HSMs of cluster `id` in us-west-2.
fn west_hsm_ids(kms: &Kms, id: &str) -> Vec<HsmId> {
    let mut req = DescribeClustersRequest {
        region: Some("us-west-2".into()),
        ..Default::default()
    };
    req.filters.insert("clusterIds".into(), vec![id.to_owned()]);
    kms.describe_clusters(&req).unwrap().clusters[0]
        .hsms
        .iter()
        .map(|h| h.hsm_id.clone())
        .collect()
}

/// CopyBackupToRegion as AWS documents it: without a TagList the copy takes the source's tags
/// (with one, exactly the tags given); the response's DestinationBackup.CreateTimestamp is when
/// the source backup was created, and so is the copy's CreateTimestamp in its Region, where
/// CopyTimestamp says when it was copied.
#[test]
fn a_backup_copied_without_tags_takes_the_sources_tags_and_keeps_its_creation_time() {
    use kmscks::types::Clock;
    let (kms, clock) = kms();
    let c = active_cluster(&kms);
    let source = kms.create_backup(&c.cluster_id).unwrap();
    let tag = |key: &str, value: &str| HsmTag {
        key: key.into(),
        value: value.into(),
    };
    let source_tags = vec![tag("team", "crypto"), tag("tier", "gold")];
    kms.tag_hsm_resource(&TagHsmResourceRequest {
        resource_id: source.backup_id.to_string(),
        tag_list: source_tags.clone(),
        region: None,
    })
    .unwrap();
    // The copies are made an hour after the source was taken.
    clock.advance(Duration::from_secs(3600));
    let copied_at = clock.now();
    assert_ne!(copied_at, source.create_timestamp);
    let copy_to = |region: &str, tag_list: Vec<HsmTag>| -> BackupDescription {
        let made = kms
            .copy_backup_to_region(&CopyBackupToRegionRequest {
                backup_id: source.backup_id.to_string(),
                destination_region: region.into(),
                tag_list,
                region: None,
            })
            .unwrap()
            .destination_backup;
        assert_eq!(made.create_timestamp, source.create_timestamp, "{region}");
        let found = kms
            .describe_backups(&DescribeBackupsRequest {
                filters: [(
                    "sourceBackupIds".to_owned(),
                    vec![source.backup_id.to_string()],
                )]
                .into(),
                region: Some(region.into()),
                ..Default::default()
            })
            .unwrap()
            .backups;
        let [copy] = &found[..] else {
            panic!("one copy in {region}: {found:?}")
        };
        assert_eq!(copy.create_timestamp, source.create_timestamp, "{region}");
        assert_eq!(copy.copy_timestamp, Some(copied_at), "{region}");
        copy.clone()
    };
    assert_eq!(copy_to("us-west-2", vec![]).tag_list, source_tags);
    let given = vec![tag("copy", "dr")];
    assert_eq!(copy_to("eu-west-1", given.clone()).tag_list, given);
}

/// On AWS a subnet is the VPC's, not a cluster's: a rebuild from a backup that reuses the
/// subnet `subnet-deleted` deleted is refused naming it, one that reuses the subnet
/// `subnet-full` filled gets no HSM in it (as the old cluster gets none), and the documented
/// remedy, a rebuild on new subnets, gives a cluster the store connects to.
#[test]
fn a_rebuild_reusing_a_deleted_or_full_subnet_fails_as_the_old_cluster_and_new_subnets_work() {
    let (kms, clock) = kms();
    let f = connected_store(&kms, &clock, "S");
    let cid = &f.cluster.cluster_id;
    let (gone_zone, full_zone) = (&f.cluster.zones[0], &f.cluster.zones[1]);
    let old = describe_cluster(&kms, cid);
    let gone_subnet = old.subnet_mapping[gone_zone].clone();
    let full_subnet = old.subnet_mapping[full_zone].clone();
    let backup = kms.create_backup(cid).unwrap().backup_id;
    kms.inject_fault(
        cid,
        &Fault::SubnetDeleted {
            availability_zone: gone_zone.clone(),
        },
    )
    .unwrap();
    kms.inject_fault(
        cid,
        &Fault::SubnetFull {
            availability_zone: full_zone.clone(),
        },
    )
    .unwrap();
    let rebuild = |subnet_ids: &[&str]| {
        kms.create_cluster(&CreateClusterRequest {
            source_backup_id: Some(backup.clone()),
            subnet_ids: subnet_ids.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        })
        .map(|r| r.cluster)
    };
    let hsm_in = |cluster_id: &str, zone: &str| {
        kms.create_hsm(&CreateHsmRequest {
            cluster_id: cluster_id.to_owned(),
            availability_zone: zone.to_owned(),
            region: None,
        })
    };

    // The deleted subnet no longer exists, for any cluster.
    let e = assert_aws(
        rebuild(&[gone_subnet.as_str(), "subnet-0a1b2c3d"]),
        ErrorKind::CloudHsmInvalidRequestException,
    );
    assert!(e.message().contains(&gone_subnet), "{e}");

    // The full subnet is full for the new cluster too: its HSM there is refused as the old
    // cluster's is; its HSM in a new subnet is made.
    let reused = rebuild(&["subnet-0a1b2c3d", full_subnet.as_str()]).unwrap();
    assert_eq!(reused.subnet_mapping[full_zone], full_subnet);
    let reused_id = reused.cluster_id.as_str();
    let in_old = assert_aws(
        hsm_in(cid, full_zone),
        ErrorKind::CloudHsmInvalidRequestException,
    );
    let in_new = assert_aws(
        hsm_in(reused_id, full_zone),
        ErrorKind::CloudHsmInvalidRequestException,
    );
    assert_eq!(in_new.message(), in_old.message());
    assert!(in_new.message().contains(&full_subnet), "{in_new}");
    hsm_in(reused_id, gone_zone).unwrap();

    // README's remedy: rebuild on new subnets, re-point the store, connect.
    let rebuilt = rebuild(&["subnet-1a2b3c4d", "subnet-5e6f7a8b"]).unwrap();
    let rebuilt_id = rebuilt.cluster_id.to_string();
    for zone in rebuilt.subnet_mapping.keys() {
        hsm_in(&rebuilt_id, zone).unwrap();
    }
    disconnect(&kms, &clock, &f.store_id);
    set_store_cluster(&kms, &f.store_id, &rebuilt_id);
    let e = connect(&kms, &clock, &f.store_id);
    assert_eq!(
        (e.connection_state, e.connection_error_code),
        (ConnectionState::Connected, None)
    );
}

#[test]
fn a_subnet_fault_reaches_every_cluster_given_that_subnet() {
    let (kms, clock) = kms();
    let f = connected_store(&kms, &clock, "S");
    let cid = f.cluster.cluster_id.to_string();
    let (gone_zone, full_zone) = (&f.cluster.zones[0], &f.cluster.zones[1]);
    let first = describe_cluster(&kms, &cid);
    // A second cluster in the same two subnets, and a third in others.
    let on_subnets = |ids: Vec<String>| {
        kms.create_cluster(&CreateClusterRequest {
            subnet_ids: ids,
            ..Default::default()
        })
        .unwrap()
        .cluster
    };
    let same = on_subnets(first.subnet_mapping.values().cloned().collect());
    assert_eq!(same.subnet_mapping, first.subnet_mapping);
    let apart = on_subnets(vec!["subnet-0a1b2c3d".into(), "subnet-5e6f7a8b".into()]);
    kms.inject_fault(
        &cid,
        &Fault::SubnetDeleted {
            availability_zone: gone_zone.clone(),
        },
    )
    .unwrap();
    // Injected through the second cluster, it reaches the first as well.
    kms.inject_fault(
        same.cluster_id.as_str(),
        &Fault::SubnetFull {
            availability_zone: full_zone.clone(),
        },
    )
    .unwrap();
    let subnet_faults = |cluster_id: &str| -> Vec<Fault> {
        kms.list_faults(cluster_id)
            .unwrap()
            .into_iter()
            .filter(|f| matches!(f, Fault::SubnetDeleted { .. } | Fault::SubnetFull { .. }))
            .collect()
    };
    let both = vec![
        Fault::SubnetDeleted {
            availability_zone: gone_zone.clone(),
        },
        Fault::SubnetFull {
            availability_zone: full_zone.clone(),
        },
    ];
    assert_eq!(subnet_faults(&cid), both);
    assert_eq!(subnet_faults(same.cluster_id.as_str()), both);
    assert_eq!(subnet_faults(apart.cluster_id.as_str()), []);
    // The full subnet takes no HSM of the second cluster; the other cluster's subnets do.
    let e = assert_aws(
        kms.create_hsm(&CreateHsmRequest {
            cluster_id: same.cluster_id.to_string(),
            availability_zone: full_zone.clone(),
            region: None,
        }),
        ErrorKind::CloudHsmInvalidRequestException,
    );
    assert!(
        e.message().contains(&first.subnet_mapping[full_zone]),
        "{e}"
    );
    kms.create_hsm(&CreateHsmRequest {
        cluster_id: apart.cluster_id.to_string(),
        availability_zone: full_zone.clone(),
        region: None,
    })
    .unwrap();
}

#[test]
fn key_object_listing_never_exposes_key_bytes() {
    let (kms, clock) = kms();
    let f = connected_store(&kms, &clock, "S");
    create_key(&kms, Some(&f.store_id));
    let objects = kms.list_key_objects(&f.cluster.cluster_id).unwrap();
    assert_eq!(objects.len(), 1);
    let json = serde_json::to_value(&objects).unwrap();
    let mut fields: Vec<&str> = json[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        [
            "extractable",
            "hsms",
            "key-length-bits",
            "key-reference",
            "key-type",
            "label",
            "owner",
            "token"
        ]
    );
    let text = json.to_string();
    assert!(
        !text.contains("wrapped") && !text.contains("material"),
        "{text}"
    );
}

// ---- Audit logs ---------------------------------------------------------------------------

fn events_of(kms: &Kms, cluster_id: &str) -> Vec<(HsmId, Vec<kmscks::hsm::model::AuditEvent>)> {
    kms.hsm_audit_log(cluster_id, None).unwrap()
}

#[test]
fn hsm_audit_log_records_what_kms_does_as_kmsuser() {
    let (kms, clock) = kms();
    let f = connected_store(&kms, &clock, "S");
    let cid = f.cluster.cluster_id.clone();
    let key_id = create_key(&kms, Some(&f.store_id));
    let handle = kms.list_key_objects(&cid).unwrap()[0].key_reference;
    kms.schedule_key_deletion(&ScheduleKeyDeletionRequest {
        key_id: key_id.clone(),
        pending_window_in_days: Some(7),
    })
    .unwrap();
    clock.advance_days(7);
    // The jump wakes the background sweep, which may get there before this call does.
    assert!(kms.run_scheduled_deletions().unwrap() <= 1);
    assert_aws(
        kms.describe_key(&key_req(&key_id)),
        ErrorKind::NotFoundException,
    );
    assert!(kms.list_key_objects(&cid).unwrap().is_empty());
    disconnect(&kms, &clock, &f.store_id);

    let streams = events_of(&kms, &cid);
    let hsms = hsm_ids(&kms, &cid);
    assert_eq!(streams.len(), hsms.len(), "one stream per HSM");
    for (hsm, events) in &streams {
        assert!(hsms.contains(hsm));
        for (i, e) in events.iter().enumerate() {
            assert_eq!(e.sequence, i as u64, "gap-free from 0 on {hsm}");
        }
        let kms_ops: Vec<(&str, Option<u64>)> = events
            .iter()
            .filter(|e| e.user.as_deref() == Some("kmsuser") && e.response == "SUCCESS")
            .map(|e| (e.opcode.as_str(), e.key_handle))
            .filter(|(op, _)| *op != "CN_CREATE_USER")
            .collect();
        assert_eq!(
            kms_ops,
            vec![
                ("CN_LOGIN", None),
                ("CN_CHANGE_PSWD", None),
                ("CN_GENERATE_KEY", Some(handle)),
                ("CN_DESTROY_OBJECT", Some(handle)),
                ("CN_LOGOUT", None),
            ],
            "on {hsm}"
        );
        let login = events.iter().find(|e| e.opcode == "CN_LOGIN").unwrap();
        assert_eq!(login.opcode_id, 0xd);
    }
    // Audit streams of one HSM only.
    let one = kms.hsm_audit_log(&cid, Some(hsms[0].as_str())).unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].0, hsms[0]);
    assert_aws(
        kms.hsm_audit_log("cluster-abcdefghijk", None),
        ErrorKind::CloudHsmResourceNotFoundException,
    );
}

#[test]
fn kms_event_log_and_hsm_audit_log_are_independent_and_hold_no_secrets() {
    let (kms, clock) = kms();
    let f = connected_store(&kms, &clock, "S");
    let cid = f.cluster.cluster_id.clone();
    create_key(&kms, Some(&f.store_id));
    kms.create_hsm_user(&user_req(&cid, "alice", "alicePassw0rd"))
        .unwrap();
    let kms_before = kms.kms_events().unwrap();
    let audit_before: usize = events_of(&kms, &cid).iter().map(|(_, e)| e.len()).sum();

    kms.login_hsm_user(&cid, "alice", &Password::new("alicePassw0rd"))
        .unwrap();
    assert_eq!(
        kms.kms_events().unwrap(),
        kms_before,
        "CLI login is not a KMS event"
    );
    let audit_after = events_of(&kms, &cid);
    let n: usize = audit_after.iter().map(|(_, e)| e.len()).sum();
    assert_eq!(n, audit_before + 2, "one CN_LOGIN per active HSM");
    for (_, events) in &audit_after {
        let last = events.last().unwrap();
        assert_eq!(
            (last.opcode.as_str(), last.user.as_deref()),
            ("CN_LOGIN", Some("alice"))
        );
    }

    // The KMS events name the store operations; neither log holds a secret.
    let names: Vec<&str> = kms_before.iter().map(|e| e.event_name.as_str()).collect();
    for want in ["CreateCustomKeyStore", "ConnectCustomKeyStore", "CreateKey"] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    let kms_text = serde_json::to_string(&kms_before).unwrap();
    let audit_text = serde_json::to_string(&audit_after).unwrap();
    let anchor_body = f
        .cluster
        .trust_anchor
        .lines()
        .nth(1)
        .expect("a PEM body line")
        .to_owned();
    for text in [&kms_text, &audit_text] {
        assert!(!text.contains(KMSUSER_PASSWORD));
        assert!(!text.contains("alicePassw0rd"));
        assert!(!text.contains(&anchor_body));
        assert!(!text.contains("BEGIN CERTIFICATE"));
    }
}

/// An active cluster with an HSM in each zone, its CSR signed by `ca`.
fn cluster_signed_by(kms: &Kms, ca: &CertificateAuthority) -> String {
    let c = kms
        .create_cluster(&CreateClusterRequest::default())
        .unwrap()
        .cluster;
    let id = c.cluster_id.to_string();
    for zone in c.subnet_mapping.keys() {
        kms.create_hsm(&CreateHsmRequest {
            cluster_id: id.clone(),
            availability_zone: zone.clone(),
            region: None,
        })
        .unwrap();
    }
    let csr = describe_cluster(kms, &id)
        .certificates
        .cluster_csr
        .expect("an UNINITIALIZED cluster with an HSM offers its CSR");
    kms.initialize_cluster(&InitializeClusterRequest {
        cluster_id: id.clone(),
        signed_cert: ca.sign_csr(&csr).unwrap(),
        trust_anchor: ca.certificate_pem().into(),
        region: None,
    })
    .unwrap();
    activate(kms, &id);
    kms.create_hsm_user(&user_req(&id, "kmsuser", KMSUSER_PASSWORD))
        .unwrap();
    id
}

#[test]
fn relatedness_is_the_cluster_certificate_even_after_the_original_cluster_is_gone() {
    // One customer CA signs two clusters (as on AWS, where one CA often signs them all):
    // same trust anchor, different cluster certificates, so unrelated.
    let (kms, clock) = kms();
    let ca = CertificateAuthority::generate("the customer's CA").unwrap();
    let original = cluster_signed_by(&kms, &ca);
    let unrelated = cluster_signed_by(&kms, &ca);
    let store_id = kms
        .create_custom_key_store(&CreateCustomKeyStoreRequest {
            custom_key_store_name: "S".into(),
            cloud_hsm_cluster_id: Some(original.clone()),
            trust_anchor_certificate: Some(ca.certificate_pem().into()),
            key_store_password: Some(Password::new(KMSUSER_PASSWORD)),
            custom_key_store_type: None,
        })
        .unwrap()
        .custom_key_store_id;
    connect(&kms, &clock, &store_id);
    create_key(&kms, Some(&store_id));
    disconnect(&kms, &clock, &store_id);
    let restored = restored_cluster(&kms, &original);
    for hsm in describe_cluster(&kms, &original).hsms {
        kms.delete_hsm(&DeleteHsmRequest {
            cluster_id: original.clone(),
            hsm_id: hsm.hsm_id.to_string(),
            ..Default::default()
        })
        .unwrap();
    }
    kms.delete_cluster(&cluster_named(&original)).unwrap();

    let to = |cluster: &str| UpdateCustomKeyStoreRequest {
        custom_key_store_id: store_id.clone(),
        cloud_hsm_cluster_id: Some(cluster.to_owned()),
        ..Default::default()
    };
    assert_aws(
        kms.update_custom_key_store(&to(&unrelated)),
        ErrorKind::CloudHsmClusterNotRelatedException,
    );
    kms.update_custom_key_store(&to(&restored)).unwrap();
    // Another store may not take a cluster sharing the store's backup history.
    let mut req = store_request(
        &ClusterFixture {
            cluster_id: restored.clone(),
            trust_anchor: ca.certificate_pem().into(),
            zones: Vec::new(),
        },
        "T",
    );
    req.cloud_hsm_cluster_id = Some(restored_cluster(&kms, &restored));
    assert_aws(
        kms.create_custom_key_store(&req),
        ErrorKind::CloudHsmClusterInUseException,
    );
}

/// A custom key store's cluster must be in the KMS's Region (spec §3.1): CreateCustomKeyStore
/// and UpdateCustomKeyStore naming a cluster of another Region answer as for a cluster that
/// does not exist, CloudHsmClusterNotFoundException, before any other check (here the cluster,
/// restored from a copy of the store's backup, would otherwise be in use by the store, and
/// related to it). The same restore in the KMS's Region is taken.
#[test]
fn a_key_store_refuses_a_cluster_of_another_region_as_not_found() {
    let (kms, clock) = kms();
    let f = connected_store(&kms, &clock, "S");
    let backup = kms.create_backup(&f.cluster.cluster_id).unwrap().backup_id;
    kms.copy_backup_to_region(&CopyBackupToRegionRequest {
        backup_id: backup.to_string(),
        destination_region: "us-west-2".into(),
        ..Default::default()
    })
    .unwrap();
    let mut copies = DescribeBackupsRequest {
        region: Some("us-west-2".into()),
        ..Default::default()
    };
    copies
        .filters
        .insert("sourceBackupIds".into(), vec![backup.to_string()]);
    let copy = kms.describe_backups(&copies).unwrap().backups.remove(0);
    let west = kms
        .create_cluster(&CreateClusterRequest {
            source_backup_id: Some(copy.backup_id),
            region: Some("us-west-2".into()),
            ..Default::default()
        })
        .unwrap()
        .cluster;
    let west_id = west.cluster_id.to_string();
    for zone in west.subnet_mapping.keys() {
        kms.create_hsm(&CreateHsmRequest {
            cluster_id: west_id.clone(),
            availability_zone: zone.clone(),
            region: Some("us-west-2".into()),
        })
        .unwrap();
    }
    let not_found = |r: kmscks::Result<()>, op: &str| {
        let e = assert_aws(r, ErrorKind::CloudHsmClusterNotFoundException);
        assert!(e.message().contains(&west_id), "{op}: {e}");
    };

    let mut create = store_request(&f.cluster, "T");
    create.cloud_hsm_cluster_id = Some(west_id.clone());
    not_found(
        kms.create_custom_key_store(&create).map(drop),
        "CreateCustomKeyStore",
    );
    disconnect(&kms, &clock, &f.store_id);
    let to = |cluster: &str| UpdateCustomKeyStoreRequest {
        custom_key_store_id: f.store_id.clone(),
        cloud_hsm_cluster_id: Some(cluster.to_owned()),
        ..Default::default()
    };
    not_found(
        kms.update_custom_key_store(&to(&west_id)).map(drop),
        "UpdateCustomKeyStore",
    );
    let entry = describe_store(&kms, &f.store_id);
    assert_eq!(entry.cloud_hsm_cluster_id, f.cluster.cluster_id);
    kms.update_custom_key_store(&to(&restored_cluster(&kms, &f.cluster.cluster_id)))
        .unwrap();
}

/// A request naming backup `id` in the configured Region.
fn backup_named(id: &str) -> BackupIdRequest {
    BackupIdRequest {
        backup_id: id.to_owned(),
        ..Default::default()
    }
}
