//! A CloudHSM cluster's life in AWS's states: CREATE_IN_PROGRESS, UNINITIALIZED,
//! INITIALIZE_IN_PROGRESS, INITIALIZED, ACTIVE (after `cluster activate`), DELETE_IN_PROGRESS,
//! each passing state lasting `KmsConfig::cluster_transition` on the test's clock and ended by
//! the background worker (also after a reopen); AWS CloudHSM's cluster and HSM quotas under
//! quota emulation; the users a cluster holds, which its HSM type sets.

mod common;
mod support;

use std::time::Duration;

use common::*;
use kmscks::api::hsm::*;
use kmscks::hsm::pki::CertificateAuthority;
use kmscks::secret::Password;
use kmscks::types::{BackupState, Clock, ClusterState, HsmUserRole, ManualClock};
use kmscks::{ErrorKind, Kms, KmsConfig, QuotaConfig};

/// How long a passing state lasts in these tests, on the test's clock.
const TRANSITION: Duration = Duration::from_secs(60);

fn transition_config() -> (KmsConfig, ManualClock) {
    let (mut config, clock) = config();
    config.cluster_transition = TRANSITION;
    (config, clock)
}

fn clusters(kms: &Kms, cluster_id: &str) -> Vec<ClusterDescription> {
    let mut req = DescribeClustersRequest::default();
    req.filters
        .insert("clusterIds".into(), vec![cluster_id.to_owned()]);
    kms.describe_clusters(&req).unwrap().clusters
}

fn state(kms: &Kms, cluster_id: &str) -> ClusterState {
    clusters(kms, cluster_id)[0].state
}

/// Lets the transition pass and waits for the worker to move the cluster to `to`.
fn settles(kms: &Kms, clock: &ManualClock, cluster_id: &str, to: ClusterState) {
    clock.pass(TRANSITION);
    support::wait_until(
        &format!("{cluster_id} {to}"),
        Duration::from_secs(10),
        || state(kms, cluster_id) == to,
    );
}

fn hsm_in(kms: &Kms, cluster_id: &str, zone: &str) -> kmscks::Result<HsmResponse> {
    kms.create_hsm(&CreateHsmRequest {
        cluster_id: cluster_id.to_owned(),
        availability_zone: zone.to_owned(),
        region: None,
    })
}

/// The admin password `cluster activate` sets in these tests.
const ADMIN_PASSWORD: &str = "adminPassw0rd";

fn activate(kms: &Kms, cluster_id: &str) -> kmscks::Result<ClusterResponse> {
    kms.activate_cluster(&ActivateClusterRequest {
        cluster_id: cluster_id.to_owned(),
        password: Password::new(ADMIN_PASSWORD),
    })
}

#[test]
fn a_cluster_passes_through_aws_states_on_the_clock_and_cluster_activate_makes_it_active() {
    let (config, clock) = transition_config();
    let kms = Kms::in_memory_with(config);
    let created = kms
        .create_cluster(&CreateClusterRequest::default())
        .unwrap()
        .cluster;
    let id = created.cluster_id.to_string();
    let zones: Vec<String> = created.subnet_mapping.keys().cloned().collect();
    assert_eq!(created.state, ClusterState::CreateInProgress);
    assert_eq!(state(&kms, &id), ClusterState::CreateInProgress);
    // No HSM while it is being created.
    let e = assert_aws(
        hsm_in(&kms, &id, &zones[0]),
        ErrorKind::CloudHsmInvalidRequestException,
    );
    assert!(e.message().contains("CREATE_IN_PROGRESS"), "{e}");
    settles(&kms, &clock, &id, ClusterState::Uninitialized);

    for zone in &zones {
        hsm_in(&kms, &id, zone).unwrap();
    }
    let csr = clusters(&kms, &id)[0].certificates.cluster_csr.clone();
    let init = initialize(&kms, &id);
    assert_eq!(init.state, ClusterState::InitializeInProgress);
    assert_eq!(init.trust_anchor, None);
    assert_eq!(state(&kms, &id), ClusterState::InitializeInProgress);
    assert_aws(
        activate(&kms, &id),
        ErrorKind::CloudHsmInvalidRequestException,
    );
    settles(&kms, &clock, &id, ClusterState::Initialized);

    // INITIALIZED is not ACTIVE: no users, no custom key store yet.
    assert_aws(
        kms.create_hsm_user(&UserRequest {
            cluster_id: id.clone(),
            username: "kmsuser".into(),
            role: None,
            password: Password::new(KMSUSER_PASSWORD),
        }),
        ErrorKind::CloudHsmInvalidRequestException,
    );
    let activated = activate(&kms, &id).unwrap().cluster;
    assert_eq!(activated.state, ClusterState::Active);
    assert_eq!(state(&kms, &id), ClusterState::Active);
    // The CSR stays in Certificates, beside the cluster certificate.
    let d = &clusters(&kms, &id)[0];
    assert!(csr.is_some());
    assert_eq!(d.certificates.cluster_csr, csr);
    assert!(d.certificates.cluster_certificate.is_some());
    // Activation happens once.
    assert_aws(
        activate(&kms, &id),
        ErrorKind::CloudHsmInvalidRequestException,
    );

    // Deleting: DELETE_IN_PROGRESS, then gone.
    for h in &d.hsms {
        kms.delete_hsm(&DeleteHsmRequest {
            cluster_id: id.clone(),
            hsm_id: h.hsm_id.to_string(),
            ..Default::default()
        })
        .unwrap();
    }
    assert_eq!(
        kms.delete_cluster(&cluster_named(&id))
            .unwrap()
            .cluster
            .state,
        ClusterState::DeleteInProgress
    );
    assert_eq!(state(&kms, &id), ClusterState::DeleteInProgress);
    assert_aws(
        kms.delete_cluster(&cluster_named(&id)),
        ErrorKind::CloudHsmInvalidRequestException,
    );
    clock.pass(TRANSITION);
    support::wait_until("the cluster gone", Duration::from_secs(10), || {
        clusters(&kms, &id).is_empty()
    });
}

#[test]
fn kmscks_one_step_initialize_cluster_still_makes_the_cluster_active_at_once() {
    let (config, clock) = transition_config();
    let kms = Kms::in_memory_with(config);
    let c = kms
        .create_cluster(&CreateClusterRequest::default())
        .unwrap()
        .cluster;
    let id = c.cluster_id.to_string();
    settles(&kms, &clock, &id, ClusterState::Uninitialized);
    hsm_in(&kms, &id, c.subnet_mapping.keys().next().unwrap()).unwrap();
    let init = kms
        .initialize_cluster_with_new_ca(&cluster_named(&id))
        .unwrap();
    assert_eq!(init.state, ClusterState::Active);
    assert!(init.trust_anchor.is_some());
    assert_eq!(state(&kms, &id), ClusterState::Active);
}

/// InitializeCluster of `id` (which has an HSM) with its CSR signed by a new CA.
fn initialize(kms: &Kms, id: &str) -> InitializeClusterResponse {
    let csr = clusters(kms, id)[0]
        .certificates
        .cluster_csr
        .clone()
        .expect("a CSR once the first HSM exists");
    let ca = CertificateAuthority::generate("the customer's CA").unwrap();
    kms.initialize_cluster(&InitializeClusterRequest {
        cluster_id: id.to_owned(),
        signed_cert: ca.sign_csr(&csr).unwrap(),
        trust_anchor: ca.certificate_pem().into(),
        region: None,
    })
    .unwrap()
}

/// A cluster restored from `backup`, with an HSM in one of its zones.
fn restored_from(kms: &Kms, backup: &BackupDescription) -> String {
    with_an_hsm(
        kms,
        CreateClusterRequest {
            source_backup_id: Some(backup.backup_id.clone()),
            ..Default::default()
        },
    )
}

/// A cluster made by `req`, with an HSM in one of its zones.
fn with_an_hsm(kms: &Kms, req: CreateClusterRequest) -> String {
    let c = kms.create_cluster(&req).unwrap().cluster;
    let id = c.cluster_id.to_string();
    hsm_in(kms, &id, c.subnet_mapping.keys().next().unwrap()).unwrap();
    id
}

/// The only backup of `cluster_id`: the one its activation took.
fn activation_backup(kms: &Kms, cluster_id: &str) -> BackupDescription {
    let backups = backups_of(kms, cluster_id);
    let [backup] = &backups[..] else {
        panic!("one backup, taken at activation: {backups:?}")
    };
    backup.clone()
}

fn admin_of(kms: &Kms, cluster_id: &str) -> Option<UserDescription> {
    kms.list_hsm_users(cluster_id)
        .unwrap()
        .into_iter()
        .find(|u| u.username == "admin")
}

#[test]
fn the_backup_cluster_activate_takes_holds_the_admin_password_it_just_set() {
    let (kms, _clock) = kms();
    let id = with_an_hsm(&kms, CreateClusterRequest::default());
    initialize(&kms, &id);
    assert_eq!(state(&kms, &id), ClusterState::Initialized);
    activate(&kms, &id).unwrap();

    let restored = restored_from(&kms, &activation_backup(&kms, &id));
    let admin = admin_of(&kms, &restored).expect("the restored cluster has the admin");
    assert_eq!(admin.role, HsmUserRole::Admin);
    kms.login_hsm_user(&restored, "admin", &Password::new(ADMIN_PASSWORD))
        .unwrap();
}

#[test]
fn the_backup_kmscks_one_step_initialize_takes_holds_the_admin() {
    let (kms, _clock) = kms();
    let id = with_an_hsm(&kms, CreateClusterRequest::default());
    kms.initialize_cluster_with_new_ca(&cluster_named(&id))
        .unwrap();

    let restored = restored_from(&kms, &activation_backup(&kms, &id));
    assert!(
        admin_of(&kms, &restored).is_some(),
        "the restored cluster has the admin"
    );
    assert_eq!(admin_of(&kms, &restored), admin_of(&kms, &id));
}

#[test]
fn a_passing_state_interrupted_by_a_close_ends_after_the_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (config, clock) = transition_config();
    let id = {
        let kms = Kms::open_with(dir.path(), config.clone()).unwrap();
        let c = kms
            .create_cluster(&CreateClusterRequest::default())
            .unwrap()
            .cluster;
        c.cluster_id.to_string()
    };
    clock.pass(TRANSITION);
    let kms = Kms::open_with(dir.path(), config).unwrap();
    support::wait_until(
        "UNINITIALIZED after the reopen",
        Duration::from_secs(10),
        || state(&kms, &id) == ClusterState::Uninitialized,
    );
}

#[test]
fn with_aws_quotas_emulated_a_fifth_cluster_in_a_region_and_a_seventh_hsm_are_refused() {
    let (mut config, _clock) = config();
    config.quotas = Some(QuotaConfig::default());
    let kms = Kms::in_memory_with(config);
    let mut ids = Vec::new();
    for _ in 0..4 {
        ids.push(
            kms.create_cluster(&CreateClusterRequest::default())
                .unwrap()
                .cluster,
        );
    }
    let e = assert_aws(
        kms.create_cluster(&CreateClusterRequest::default()),
        ErrorKind::CloudHsmResourceLimitExceededException,
    );
    assert!(e.message().contains("(4)"), "{e}");
    // The quota is per Region.
    kms.create_cluster(&CreateClusterRequest {
        region: Some("us-west-2".into()),
        ..Default::default()
    })
    .unwrap();

    let c = &ids[0];
    let id = c.cluster_id.to_string();
    let zone = c.subnet_mapping.keys().next().unwrap();
    for _ in 0..6 {
        hsm_in(&kms, &id, zone).unwrap();
    }
    let e = assert_aws(
        hsm_in(&kms, &id, zone),
        ErrorKind::CloudHsmResourceLimitExceededException,
    );
    assert!(e.message().contains("(6)"), "{e}");
}

#[test]
fn without_quota_emulation_clusters_are_unlimited_and_hsms_stop_at_cloudhsm_hard_limit() {
    let (kms, _clock) = kms();
    for _ in 0..5 {
        kms.create_cluster(&CreateClusterRequest::default())
            .unwrap();
    }
    let c = kms
        .create_cluster(&CreateClusterRequest::default())
        .unwrap()
        .cluster;
    let id = c.cluster_id.to_string();
    let zone = c.subnet_mapping.keys().next().unwrap();
    for _ in 0..kmscks::types::limits::MAX_HSMS_PER_CLUSTER {
        hsm_in(&kms, &id, zone).unwrap();
    }
    assert_aws(hsm_in(&kms, &id, zone), ErrorKind::CloudHsmServiceException);
}

/// An ACTIVE cluster of `hsm_type` HSMs with one HSM, initialised with a CA kmscks made.
fn active_cluster_of(kms: &Kms, hsm_type: &str) -> String {
    let c = kms
        .create_cluster(&CreateClusterRequest {
            hsm_type: Some(hsm_type.to_owned()),
            ..Default::default()
        })
        .unwrap()
        .cluster;
    let id = c.cluster_id.to_string();
    // Invariant: a cluster created without subnets has the Region's a and b zones.
    let zone = c.subnet_mapping.keys().next().unwrap();
    hsm_in(kms, &id, zone).unwrap();
    kms.initialize_cluster_with_new_ca(&cluster_named(&id))
        .unwrap();
    id
}

/// Creates crypto users in `cluster_id` until it holds `users` (each accepted), then one
/// more: its answer.
fn one_user_past(kms: &Kms, cluster_id: &str, users: usize) -> kmscks::Result<UserDescription> {
    let user = |n: usize| UserRequest {
        cluster_id: cluster_id.to_owned(),
        username: format!("user{n}"),
        role: Some(HsmUserRole::CryptoUser),
        password: Password::new("userPassw0rd"),
    };
    let have = kms.list_hsm_users(cluster_id).unwrap().len();
    for n in have..users {
        kms.create_hsm_user(&user(n)).unwrap();
    }
    assert_eq!(kms.list_hsm_users(cluster_id).unwrap().len(), users);
    kms.create_hsm_user(&user(users))
}

#[test]
fn an_hsm1_cluster_refuses_its_251st_user_as_an_hsm2m_cluster_refuses_its_1025th() {
    use kmscks::types::limits::{HSM1_CLUSTER_LIMITS, HSM2M_CLUSTER_LIMITS};
    let (kms, _clock) = kms();
    let mut refusals = Vec::new();
    for (hsm_type, limit) in [
        (HSM1_MEDIUM, HSM1_CLUSTER_LIMITS.users),
        (HSM2M_MEDIUM, HSM2M_CLUSTER_LIMITS.users),
    ] {
        let id = active_cluster_of(&kms, hsm_type);
        let e = assert_aws(
            one_user_past(&kms, &id, limit),
            ErrorKind::CloudHsmServiceException,
        );
        assert!(e.message().contains(&format!("{limit} users")), "{e}");
        assert!(e.message().contains(hsm_type), "{e}");
        assert_eq!(kms.list_hsm_users(&id).unwrap().len(), limit, "{hsm_type}");
        refusals.push(
            e.message()
                .replace(&id, "<cluster>")
                .replace(&limit.to_string(), "<n>")
                .replace(hsm_type, "<type>"),
        );
    }
    assert_eq!(refusals[0], refusals[1], "one refusal, whatever the type");
}

fn backups_of(kms: &Kms, cluster_id: &str) -> Vec<BackupDescription> {
    let mut req = DescribeBackupsRequest::default();
    req.filters
        .insert("clusterIds".into(), vec![cluster_id.to_owned()]);
    kms.describe_backups(&req).unwrap().backups
}

#[test]
fn describe_backups_lists_newest_first_across_pages_as_aws_does() {
    let (kms, clock) = kms();
    let c = active_cluster(&kms);
    let mut taken = vec![backups_of(&kms, &c.cluster_id)[0].backup_id.clone()];
    for _ in 0..6 {
        clock.advance(Duration::from_millis(1));
        taken.push(kms.create_backup(&c.cluster_id).unwrap().backup_id);
    }
    let newest_first: Vec<_> = taken.iter().rev().cloned().collect();
    let listed = backups_of(&kms, &c.cluster_id);
    let ids: Vec<_> = listed.iter().map(|b| b.backup_id.clone()).collect();
    assert_eq!(ids, newest_first, "newest first, not by id");
    assert!(listed
        .windows(2)
        .all(|w| w[0].create_timestamp > w[1].create_timestamp));
    // Page by page, the same order.
    let mut paged = Vec::new();
    let mut req = DescribeBackupsRequest {
        max_results: Some(2),
        ..Default::default()
    };
    req.filters
        .insert("clusterIds".into(), vec![c.cluster_id.clone()]);
    loop {
        let page = kms.describe_backups(&req).unwrap();
        assert!(page.backups.len() <= 2);
        paged.extend(page.backups.into_iter().map(|b| b.backup_id));
        match page.next_token {
            Some(t) => req.next_token = Some(t),
            None => break,
        }
    }
    assert_eq!(paged, newest_first);
}

#[test]
fn cloudhsm_backs_up_a_cluster_when_activated_when_an_hsm_comes_or_goes_and_daily_on_the_clock() {
    let (kms, clock) = kms();
    let c = active_cluster(&kms);
    // Activation took one (the HSMs added before it took none).
    assert_eq!(backups_of(&kms, &c.cluster_id).len(), 1);
    clock.advance(Duration::from_millis(1));
    let added = hsm_in(&kms, &c.cluster_id, &c.zones[0]).unwrap().hsm;
    assert_eq!(backups_of(&kms, &c.cluster_id).len(), 2);
    clock.advance(Duration::from_millis(1));
    kms.delete_hsm(&DeleteHsmRequest {
        cluster_id: c.cluster_id.clone(),
        hsm_id: added.hsm_id.to_string(),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(backups_of(&kms, &c.cluster_id).len(), 3);
    // Nothing more until a day has passed on the clock; then one.
    clock.advance(Duration::from_secs(23 * 3600));
    clock.advance(Duration::from_secs(3600));
    support::wait_until("the daily backup", Duration::from_secs(10), || {
        backups_of(&kms, &c.cluster_id).len() == 4
    });
    let daily = backups_of(&kms, &c.cluster_id)
        .into_iter()
        .max_by_key(|b| b.create_timestamp)
        .unwrap();
    assert_eq!(daily.create_timestamp, clock.now());
}

#[test]
fn backups_past_the_retention_policy_become_pending_deletion_unless_they_never_expire() {
    let (kms, clock) = kms();
    let c = active_cluster(&kms);
    kms.modify_cluster(&ModifyClusterRequest {
        cluster_id: c.cluster_id.clone(),
        backup_retention_policy: BackupRetentionPolicy {
            kind: "DAYS".into(),
            value: "7".into(),
        },
        region: None,
    })
    .unwrap();
    let expiring = backups_of(&kms, &c.cluster_id).remove(0).backup_id;
    let kept = kms.create_backup(&c.cluster_id).unwrap().backup_id;
    kms.modify_backup_attributes(&ModifyBackupAttributesRequest {
        backup_id: kept.to_string(),
        never_expires: true,
        region: None,
    })
    .unwrap();
    clock.advance(Duration::from_secs(7 * 86_400));
    let state_of = |id: &kmscks::types::BackupId| {
        backups_of(&kms, &c.cluster_id)
            .into_iter()
            .find(|b| b.backup_id == *id)
            .map(|b| b.backup_state)
    };
    support::wait_until("retention applied", Duration::from_secs(10), || {
        state_of(&expiring) == Some(BackupState::PendingDeletion)
    });
    assert_eq!(state_of(&kept), Some(BackupState::Ready));
    // Deleted by the policy, it is restorable as after DeleteBackup.
    kms.restore_backup(&BackupIdRequest {
        backup_id: expiring.to_string(),
        ..Default::default()
    })
    .unwrap();
}

#[test]
fn delete_hsm_names_the_hsm_by_its_id_its_network_interface_or_its_ip_address_as_on_aws() {
    let (kms, _clock) = kms();
    let c = active_cluster(&kms);
    let zone = &c.zones[0];
    let delete = |hsm_id: &str, eni_id: Option<&str>, eni_ip: Option<&str>| {
        kms.delete_hsm(&DeleteHsmRequest {
            cluster_id: c.cluster_id.clone(),
            hsm_id: hsm_id.to_owned(),
            eni_id: eni_id.map(str::to_owned),
            eni_ip: eni_ip.map(str::to_owned),
            region: None,
        })
    };
    let by_ip = hsm_in(&kms, &c.cluster_id, zone).unwrap().hsm;
    let by_eni = hsm_in(&kms, &c.cluster_id, zone).unwrap().hsm;
    // Names that disagree name no HSM; none at all is refused.
    assert_aws(
        delete(by_ip.hsm_id.as_str(), Some(&by_eni.eni_id), None),
        ErrorKind::CloudHsmResourceNotFoundException,
    );
    assert_aws(
        delete("", None, Some("10.9.9.9")),
        ErrorKind::CloudHsmResourceNotFoundException,
    );
    assert_aws(
        delete("", None, None),
        ErrorKind::CloudHsmInvalidRequestException,
    );
    let gone = delete("", None, Some(&by_ip.eni_ip)).unwrap();
    assert_eq!(gone.hsm_id, by_ip.hsm_id);
    let gone = delete("", Some(&by_eni.eni_id), None).unwrap();
    assert_eq!(gone.hsm_id, by_eni.hsm_id);
    let left: Vec<_> = clusters(&kms, &c.cluster_id)[0]
        .hsms
        .iter()
        .map(|h| h.hsm_id.clone())
        .collect();
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(!left.contains(&by_ip.hsm_id) && !left.contains(&by_eni.hsm_id));
}

#[test]
fn a_wait_for_a_cluster_without_end_returns_when_the_cluster_settles() {
    let (config, clock) = transition_config();
    let kms = Kms::in_memory_with(config);
    let id = kms
        .create_cluster(&CreateClusterRequest::default())
        .unwrap()
        .cluster
        .cluster_id
        .to_string();
    // `Duration::MAX` is past what the clock can add: the wait has no deadline, and ends
    // when the cluster leaves CREATE_IN_PROGRESS.
    std::thread::scope(|s| {
        let waiting = s.spawn(|| kms.wait_for_cluster(&id, Duration::MAX));
        clock.pass(TRANSITION);
        let settled = waiting.join().expect("the wait does not panic").unwrap();
        assert_eq!(settled.map(|c| c.state), Some(ClusterState::Uninitialized));
    });
}
