//! Fixtures shared by the integration tests.
#![allow(dead_code)] // each test binary uses a different subset

use std::sync::Arc;
use std::time::Duration;

use kmscks::api::hsm::{ClusterIdRequest, CreateClusterRequest, CreateHsmRequest, UserRequest};
use kmscks::api::kms::*;
use kmscks::secret::Password;
use kmscks::types::{
    ConnectionState, HsmUserRole, KeySpec, KeyUsage, ManualClock, Origin, SystemClock,
};
use kmscks::{ErrorKind, Kms, KmsConfig, KmsError};

/// A request naming cluster `id` in the configured Region.
pub(crate) fn cluster_named(id: &str) -> ClusterIdRequest {
    ClusterIdRequest {
        cluster_id: id.to_owned(),
        region: None,
    }
}

/// kmsuser's password in every fixture.
pub(crate) const KMSUSER_PASSWORD: &str = "kmsuserPassw0rd";

/// The clock of an instance under test, as the fixtures drive it: a [`ManualClock`] is
/// advanced; the system clock passes by itself.
pub(crate) trait TestClock {
    /// Lets `d` pass.
    fn pass(&self, d: Duration);
}

impl TestClock for ManualClock {
    fn pass(&self, d: Duration) {
        self.advance(d);
    }
}

impl TestClock for SystemClock {
    fn pass(&self, _d: Duration) {}
}

/// How long a connection attempt takes in the fixtures, on the test's clock.
pub(crate) const CONNECT_DELAY: Duration = Duration::from_millis(5);

/// A configuration with a clock the test controls (connect and disconnect complete when it
/// passes [`CONNECT_DELAY`]), hashing HSM passwords at the test-only iteration count.
pub(crate) fn config() -> (KmsConfig, ManualClock) {
    let clock = ManualClock::starting_now();
    let config = KmsConfig {
        clock: Arc::new(clock.clone()),
        connect_delay: CONNECT_DELAY,
        hsm_password_iterations: KmsConfig::TEST_HSM_PASSWORD_ITERATIONS,
        ..KmsConfig::default()
    };
    (config, clock)
}

/// An in-memory instance with [`config`].
pub(crate) fn kms() -> (Kms, ManualClock) {
    let (config, clock) = config();
    (Kms::in_memory_with(config), clock)
}

/// An ACTIVE cluster with one HSM in each of its two zones, initialised with a CA kmscks made,
/// and a kmsuser crypto user.
pub(crate) struct ClusterFixture {
    pub cluster_id: String,
    pub trust_anchor: String,
    pub zones: Vec<String>,
}

pub(crate) fn active_cluster(kms: &Kms) -> ClusterFixture {
    let cluster = kms
        .create_cluster(&CreateClusterRequest::default())
        .unwrap()
        .cluster;
    let cluster_id = cluster.cluster_id.to_string();
    let zones: Vec<String> = cluster.subnet_mapping.keys().cloned().collect();
    for zone in &zones {
        kms.create_hsm(&CreateHsmRequest {
            cluster_id: cluster_id.clone(),
            availability_zone: zone.clone(),
            region: None,
        })
        .unwrap();
    }
    let trust_anchor = kms
        .initialize_cluster_with_new_ca(&cluster_named(&cluster_id))
        .unwrap()
        .trust_anchor
        .unwrap();
    kms.create_hsm_user(&UserRequest {
        cluster_id: cluster_id.clone(),
        username: "kmsuser".into(),
        role: Some(HsmUserRole::CryptoUser),
        password: Password::new(KMSUSER_PASSWORD),
    })
    .unwrap();
    ClusterFixture {
        cluster_id,
        trust_anchor,
        zones,
    }
}

/// The request that creates a store named `name` on the fixture's cluster.
pub(crate) fn store_request(c: &ClusterFixture, name: &str) -> CreateCustomKeyStoreRequest {
    CreateCustomKeyStoreRequest {
        custom_key_store_name: name.into(),
        cloud_hsm_cluster_id: Some(c.cluster_id.clone()),
        trust_anchor_certificate: Some(c.trust_anchor.clone()),
        key_store_password: Some(Password::new(KMSUSER_PASSWORD)),
        custom_key_store_type: None,
    }
}

/// A store on a fresh active cluster, connected.
pub(crate) struct StoreFixture {
    pub cluster: ClusterFixture,
    pub store_id: String,
}

pub(crate) fn connected_store(kms: &Kms, clock: &impl TestClock, name: &str) -> StoreFixture {
    let cluster = active_cluster(kms);
    let store_id = kms
        .create_custom_key_store(&store_request(&cluster, name))
        .unwrap()
        .custom_key_store_id;
    connect(kms, clock, &store_id);
    assert_eq!(connection_state(kms, &store_id), ConnectionState::Connected);
    StoreFixture { cluster, store_id }
}

/// Connects, lets the connect delay pass on the test's clock, and waits for the attempt to
/// settle (the background worker completes it when the clock passes its due time).
pub(crate) fn connect(kms: &Kms, clock: &impl TestClock, store_id: &str) -> CustomKeyStoreEntry {
    kms.connect_custom_key_store(&CustomKeyStoreIdRequest {
        custom_key_store_id: store_id.into(),
    })
    .unwrap();
    settle(kms, clock, store_id)
}

/// Disconnects, lets the delay pass on the test's clock, and waits for DISCONNECTED.
pub(crate) fn disconnect(kms: &Kms, clock: &impl TestClock, store_id: &str) -> CustomKeyStoreEntry {
    kms.disconnect_custom_key_store(&CustomKeyStoreIdRequest {
        custom_key_store_id: store_id.into(),
    })
    .unwrap();
    settle(kms, clock, store_id)
}

/// Advances the clock past the connect delay and waits until the store is neither
/// CONNECTING nor DISCONNECTING.
pub(crate) fn settle(kms: &Kms, clock: &impl TestClock, store_id: &str) -> CustomKeyStoreEntry {
    clock.pass(CONNECT_DELAY);
    kms.wait_for_connection(store_id, Duration::from_secs(10))
        .unwrap()
}

pub(crate) fn connection_state(kms: &Kms, store_id: &str) -> ConnectionState {
    describe_store(kms, store_id).connection_state
}

pub(crate) fn describe_store(kms: &Kms, store_id: &str) -> CustomKeyStoreEntry {
    let req = DescribeCustomKeyStoresRequest {
        custom_key_store_id: Some(store_id.into()),
        ..Default::default()
    };
    kms.describe_custom_key_stores(&req)
        .unwrap()
        .custom_key_stores
        .remove(0)
}

/// Creates a key in `store_id` (or the default store) and returns its id.
pub(crate) fn create_key(kms: &Kms, store_id: Option<&str>) -> String {
    let req = CreateKeyRequest {
        custom_key_store_id: store_id.map(str::to_owned),
        origin: store_id.map(|_| Origin::AwsCloudhsm),
        ..Default::default()
    };
    kms.create_key(&req).unwrap().key_metadata.key_id
}

/// Creates a default-store key of `spec` with `usage` (an HMAC or asymmetric key) and returns
/// its id.
pub(crate) fn create_key_of(kms: &Kms, spec: KeySpec, usage: KeyUsage) -> String {
    let req = CreateKeyRequest {
        key_spec: Some(spec),
        key_usage: Some(usage),
        ..Default::default()
    };
    kms.create_key(&req).unwrap().key_metadata.key_id
}

pub(crate) fn key_req(key_id: &str) -> KeyIdRequest {
    KeyIdRequest {
        key_id: key_id.into(),
        ..Default::default()
    }
}

pub(crate) fn describe_key(kms: &Kms, key_id: &str) -> KeyMetadata {
    kms.describe_key(&key_req(key_id)).unwrap().key_metadata
}

/// Asserts that `result` failed with the AWS exception `kind`.
#[track_caller]
pub(crate) fn assert_aws<T: std::fmt::Debug>(
    result: Result<T, KmsError>,
    kind: ErrorKind,
) -> KmsError {
    match result {
        Err(e) if e.kind() == kind => e,
        other => panic!("expected {}, got {other:?}", kind.aws_name()),
    }
}

/// A cluster restored (in the same Region) from a fresh backup of `cluster_id`, with one HSM
/// in each of its zones: related to the original, holding its users and key objects.
pub(crate) fn restored_cluster(kms: &Kms, cluster_id: &str) -> String {
    let backup = kms.create_backup(cluster_id).unwrap().backup_id;
    let cluster = kms
        .create_cluster(&CreateClusterRequest {
            source_backup_id: Some(backup),
            ..Default::default()
        })
        .unwrap()
        .cluster;
    let id = cluster.cluster_id.to_string();
    for zone in cluster.subnet_mapping.keys() {
        kms.create_hsm(&CreateHsmRequest {
            cluster_id: id.clone(),
            availability_zone: zone.clone(),
            region: None,
        })
        .unwrap();
    }
    id
}

/// Whether the `openssl` command line is installed, for the checks that use it as an
/// independent implementation; says so on stderr when it is not (those checks skip).
pub(crate) fn openssl_present() -> bool {
    let ok = std::process::Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("skipped the openssl checks: the openssl command is not installed");
    }
    ok
}
