//! The simulated CloudHSM side as data: clusters, HSMs, users, key objects, backups, audit
//! records. Plain serialisable values; the operations that change them live in the sibling
//! modules (one per subject), the state that holds them in `state.rs`.

pub use crate::api::hsm::AuditEvent;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::api::hsm::HSM1_MEDIUM;
use crate::types::limits::{ClusterLimits, HSM1_CLUSTER_LIMITS, HSM2M_CLUSTER_LIMITS};
use crate::types::{
    BackupId, BackupState, ClusterId, ClusterState, HsmId, HsmState, HsmUserRole, SubnetId,
    Timestamp,
};

/// A CloudHSM cluster (without its users, key objects and audit streams, which are kept
/// beside it so that a change to one of them does not rewrite the cluster).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Cluster {
    /// `cluster-…`.
    pub id: ClusterId,
    /// The Region the cluster lives in.
    pub region: String,
    /// Lifecycle state.
    pub state: ClusterState,
    /// HSM type, e.g. `hsm2m.medium`.
    pub hsm_type: String,
    /// When it was created.
    pub created: Timestamp,
    /// Private subnets, one per availability zone.
    pub subnets: BTreeMap<String, Subnet>,
    /// The cluster security group `sg-…`.
    pub security_group: String,
    /// Whether the security group still allows TCP 2223–2225 to and from itself.
    pub security_group_ok: bool,
    /// The HSMs, by id.
    pub hsms: BTreeMap<HsmId, Hsm>,
    /// Certificates and identity, filled in as the cluster is initialised.
    pub pki: ClusterPki,
    /// Name of the wrapping-key file that protects this cluster's key objects. Clusters
    /// restored from a backup share the key of the backup's lineage.
    pub wrapping_key: String,
    /// The next key handle to hand out.
    pub next_handle: u64,
    /// The backup this cluster was created from, if any.
    pub source_backup: Option<BackupId>,
    /// Injected faults currently in force.
    pub faults: ClusterFaults,
    /// While `state` is one of the passing states (CREATE_IN_PROGRESS, INITIALIZE_IN_PROGRESS,
    /// DELETE_IN_PROGRESS): when it ends, on the instance's clock (the background worker then
    /// moves the cluster to [`Cluster::settled_state`]).
    pub settles_at: Option<Timestamp>,
    /// `BackupRetentionPolicy`: days a backup is kept (ModifyCluster changes it).
    pub backup_retention_days: u32,
    /// Tags (TagResource), by key.
    pub tags: BTreeMap<String, String>,
}

impl Cluster {
    /// Where the current passing state leads: CREATE_IN_PROGRESS to UNINITIALIZED (ACTIVE for a
    /// cluster restored from a backup), INITIALIZE_IN_PROGRESS to INITIALIZED,
    /// DELETE_IN_PROGRESS to DELETED. Any other state stays.
    pub fn settled_state(&self) -> ClusterState {
        match self.state {
            ClusterState::CreateInProgress if self.source_backup.is_some() => ClusterState::Active,
            ClusterState::CreateInProgress => ClusterState::Uninitialized,
            ClusterState::InitializeInProgress => ClusterState::Initialized,
            ClusterState::DeleteInProgress => ClusterState::Deleted,
            other => other,
        }
    }

    /// HSMs in state ACTIVE.
    pub fn active_hsms(&self) -> impl Iterator<Item = &Hsm> {
        self.hsms.values().filter(|h| h.state == HsmState::Active)
    }

    /// Number of distinct availability zones among active HSMs.
    pub fn active_zones(&self) -> usize {
        let mut zones: Vec<&str> = self
            .active_hsms()
            .map(|h| h.availability_zone.as_str())
            .collect();
        zones.sort_unstable();
        zones.dedup();
        zones.len()
    }

    /// The most key objects and users this cluster holds, which its HSM type sets.
    pub fn limits(&self) -> ClusterLimits {
        cluster_limits(&self.hsm_type)
    }
}

/// The most key objects and users a cluster of `hsm_type` HSMs holds (spec §6): hsm1.medium's
/// limits for that type, hsm2m.medium's for any other (CreateCluster accepts no type but
/// those two, `api::hsm::HSM_TYPES`, and a restored cluster keeps its backup's).
pub fn cluster_limits(hsm_type: &str) -> ClusterLimits {
    if hsm_type == HSM1_MEDIUM {
        HSM1_CLUSTER_LIMITS
    } else {
        HSM2M_CLUSTER_LIMITS
    }
}

/// A subnet of the cluster's VPC.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Subnet {
    /// `subnet-…`.
    pub id: SubnetId,
    /// Whether the subnet has been deleted (a fault).
    pub deleted: bool,
    /// Free IP addresses left (KMS needs one per subnet to connect).
    pub free_addresses: u32,
}

/// Certificates of a cluster.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ClusterPki {
    /// The cluster's CSR, offered once the first HSM exists (PEM).
    pub csr: Option<String>,
    /// The signed cluster certificate: equal certificates mean related clusters (PEM).
    pub cluster_certificate: Option<String>,
    /// The user's CA certificate (`customerCA.crt`, PEM).
    pub trust_anchor: Option<String>,
    /// The cluster's private key (PKCS#8), wrapped under the cluster's wrapping key.
    pub wrapped_identity_key: Option<Vec<u8>>,
}

/// Injected faults of a cluster.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ClusterFaults {
    /// The network between KMS and the cluster is gone.
    pub network_down: bool,
    /// When a timed cut (`Fault::NetworkDownFor`) heals by itself; None for a cut that lasts
    /// until `NetworkRestored`, or no cut. The background worker heals it when the instance's
    /// clock reaches this time (and reschedules it at open).
    pub network_heals_at: Option<Timestamp>,
    /// Every KMS-side call to the cluster fails internally.
    pub internal_error: bool,
}

/// One HSM of a cluster.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Hsm {
    /// `hsm-…`.
    pub id: HsmId,
    /// Availability zone, e.g. `us-east-1a`.
    pub availability_zone: String,
    /// Subnet the HSM's network interface is in.
    pub subnet_id: SubnetId,
    /// The HSM's private IP address.
    pub eni_ip: String,
    /// Lifecycle state.
    pub state: HsmState,
    /// Why the HSM is not active, for DEGRADED HSMs.
    pub state_message: Option<String>,
    /// How many times the HSM has come back (CloudHSM's `Reboot counter`), written into each
    /// of its audit records: 0 for a new HSM, 1 for one created in a cluster restored from a
    /// backup (it boots from the backup's image); whatever brings a DEGRADED HSM back to ACTIVE
    /// (the fault verbs' `hsm-up`) must add 1.
    pub reboot_counter: u32,
    /// Latency added to each cryptographic operation this HSM serves (`Fault::SlowHsm`), in
    /// milliseconds; 0 for none.
    pub latency_ms: u32,
}

/// Who holds a user's login session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SessionHolder {
    /// KMS, on behalf of the custom key store with this id.
    Kms(String),
    /// Somebody else (a CloudHSM CLI session).
    External,
}

/// A salted PBKDF2-HMAC-SHA256 password hash, stored wrapped: the derived bytes are sealed
/// (AES-256-GCM) under the cluster's wrapping key, so a copy of the journal or a snapshot is
/// no start for guessing the password offline without that key.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasswordHash {
    /// Random salt.
    pub salt: [u8; 16],
    /// PBKDF2 iterations (kept with the hash, so a hash made at another count still verifies).
    pub iterations: u32,
    /// The 32 derived bytes, wrapped under the cluster's wrapping key, bound to the user's
    /// name, the salt and the iteration count (see `hsm::password`).
    pub wrapped: Vec<u8>,
}

impl std::fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordHash(<redacted>)")
    }
}

/// A CloudHSM user (present on every HSM of the cluster).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HsmUser {
    /// User name, e.g. `kmsuser`.
    pub username: String,
    /// Role.
    pub role: HsmUserRole,
    /// Password hash.
    pub password: PasswordHash,
    /// Failed logins since the last successful one; the user is locked at 5.
    pub failed_logins: u32,
    /// The open login session, if any.
    pub session: Option<SessionHolder>,
}

impl HsmUser {
    /// Whether the user is locked out.
    pub fn locked_out(&self) -> bool {
        self.failed_logins >= crate::types::limits::MAX_FAILED_LOGINS
    }
}

/// A persistent, non-extractable AES-256 key object, replicated on every HSM of its cluster.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KeyObject {
    /// Numeric key handle.
    pub handle: u64,
    /// `OBJ_ATTR_LABEL`: the KMS key ARN.
    pub label: String,
    /// Owner user name (`kmsuser` for KMS keys).
    pub owner: String,
    /// The 32-byte material, wrapped under the cluster's wrapping key (never stored plain).
    pub wrapped: Vec<u8>,
    /// When it was generated.
    pub created: Timestamp,
}

impl KeyObject {
    /// The additional data binding a wrapped object to its wrapping key and handle.
    pub fn wrap_aad(wrapping_key: &str, handle: u64) -> Vec<u8> {
        format!("kmscks key object {wrapping_key}/{handle}").into_bytes()
    }
}

/// A cluster backup, in its Region. Holds what a restored cluster needs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Backup {
    /// `backup-…`.
    pub id: BackupId,
    /// State.
    pub state: BackupState,
    /// Region the backup is in.
    pub region: String,
    /// The cluster it was taken of.
    pub cluster_id: ClusterId,
    /// When it was taken.
    pub created: Timestamp,
    /// HSM type of the source cluster.
    pub hsm_type: String,
    /// Certificates of the source cluster (the cluster certificate is what relates restores).
    pub pki: ClusterPki,
    /// Wrapping key the objects are wrapped under.
    pub wrapping_key: String,
    /// Users at backup time (sessions dropped).
    pub users: Vec<HsmUser>,
    /// Key objects at backup time.
    pub objects: Vec<KeyObject>,
    /// Next handle at backup time.
    pub next_handle: u64,
    /// For copies: the backup and Region this one was copied from (the source cluster is
    /// `cluster_id`).
    pub copied_from: Option<(BackupId, String)>,
    /// For copies: when the copy was made.
    pub copied: Option<Timestamp>,
    /// Exempt from the retention policy.
    pub never_expires: bool,
    /// When DeleteBackup was called (state PENDING_DELETION); the backup is gone for good
    /// [`crate::types::limits::BACKUP_RESTORE_DAYS`] days later.
    pub delete_timestamp: Option<Timestamp>,
    /// Tags (TagResource), by key.
    pub tags: BTreeMap<String, String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::hsm::{DEFAULT_HSM_TYPE, HSM2M_MEDIUM, HSM_TYPES};

    #[test]
    fn an_hsm1_cluster_holds_3300_keys_and_250_users_and_an_hsm2m_cluster_16666_and_1024() {
        assert_eq!(
            cluster_limits(HSM1_MEDIUM),
            ClusterLimits {
                keys: 3_300,
                users: 250
            }
        );
        assert_eq!(
            cluster_limits(HSM2M_MEDIUM),
            ClusterLimits {
                keys: 16_666,
                users: 1024
            }
        );
        assert_eq!(cluster_limits(DEFAULT_HSM_TYPE), HSM2M_CLUSTER_LIMITS);
        // Each type CreateCluster accepts has limits of its own.
        assert_ne!(cluster_limits(HSM_TYPES[0]), cluster_limits(HSM_TYPES[1]));
    }
}
