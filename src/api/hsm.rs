//! Requests and responses of the simulated CloudHSM (cloudhsmv2 and CloudHSM CLI shapes), with
//! AWS's JSON member names.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::hsm_audit::AuditHash;
use crate::secret::Password;
use crate::types::{
    BackupId, BackupState, ClusterId, ClusterState, HsmId, HsmState, HsmUserRole, Timestamp,
};

/// The older HSM type: a cluster of it holds fewer keys and users (spec §6).
pub const HSM1_MEDIUM: &str = "hsm1.medium";
/// The current HSM type.
pub const HSM2M_MEDIUM: &str = "hsm2m.medium";
/// The HSM types AWS CloudHSM offers (`--hsm-type`); CreateCluster refuses any other.
pub const HSM_TYPES: [&str; 2] = [HSM1_MEDIUM, HSM2M_MEDIUM];
/// The HSM type of a cluster created without `HsmType` (AWS requires it; kmscks defaults it).
pub const DEFAULT_HSM_TYPE: &str = HSM2M_MEDIUM;
/// A cluster's `BackupPolicy` (the only one AWS has).
pub const BACKUP_POLICY: &str = "DEFAULT";
/// A cluster's `NetworkType` (kmscks simulates IPv4 subnets only).
pub const NETWORK_TYPE: &str = "IPV4";
/// A cluster's (and its backups') `Mode` (kmscks simulates FIPS clusters only).
pub const CLUSTER_MODE: &str = "FIPS";

/// A CloudHSM tag (cloudhsmv2's `Tag`: `Key`, `Value`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "PascalCase")]
pub struct HsmTag {
    /// Key (1–128 characters).
    pub key: String,
    /// Value (0–256 characters).
    pub value: String,
}

/// cloudhsmv2's `BackupRetentionPolicy`: how long a backup is kept before it is deleted (both
/// members optional in AWS's model; ModifyCluster refuses what is not `DAYS` and 7 to 379).
#[derive(
    Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, bincode::Encode, bincode::Decode,
)]
#[serde(rename_all = "PascalCase", default)]
pub struct BackupRetentionPolicy {
    /// `DAYS`, the only type.
    #[serde(rename = "Type")]
    pub kind: String,
    /// The number of days, as a string (7–379).
    pub value: String,
}

/// CreateCluster.
#[derive(Clone, Debug, Default, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "PascalCase", default)]
pub struct CreateClusterRequest {
    /// HSM type, one of [`HSM_TYPES`] (default [`DEFAULT_HSM_TYPE`]).
    pub hsm_type: Option<String>,
    /// The cluster's private subnets, as AWS takes them (`subnet-[0-9a-fA-F]{8,17}`): each is
    /// placed in a zone of the Region (`<region>a`, `<region>b`, … in the order given) unless
    /// kmscks already knows the subnet. Exclusive with `AvailabilityZones`.
    pub subnet_ids: Vec<String>,
    /// kmscks: the availability zones to give the cluster a simulated private subnet in
    /// (default, when neither this nor `SubnetIds` is given: the Region's `a` and `b` zones).
    pub availability_zones: Vec<String>,
    /// Restore from this backup (the cluster is then ACTIVE and related to the backup's).
    pub source_backup_id: Option<BackupId>,
    /// The Region to create the cluster in, as `aws --region` (default: the configured
    /// Region); a source backup must be in it (a backup is only found in its own Region).
    pub region: Option<String>,
    /// Tags for the cluster.
    pub tag_list: Vec<HsmTag>,
}

/// `cluster activate` (CloudHSM CLI): the admin password that activates an INITIALIZED cluster.
#[derive(Debug, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "PascalCase")]
pub struct ActivateClusterRequest {
    /// Cluster.
    pub cluster_id: String,
    /// The admin password to set.
    pub password: Password,
}

/// CreateCluster / DeleteCluster / InitializeCluster response.
#[derive(Clone, Debug, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "PascalCase")]
pub struct ClusterResponse {
    /// The cluster.
    pub cluster: ClusterDescription,
}

/// A cluster as DescribeClusters shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "PascalCase")]
pub struct ClusterDescription {
    /// Id.
    pub cluster_id: ClusterId,
    /// When it was created.
    pub create_timestamp: Timestamp,
    /// HSMs.
    pub hsms: Vec<HsmDescription>,
    /// HSM type.
    pub hsm_type: String,
    /// Security group.
    pub security_group: String,
    /// Source backup.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_backup_id: Option<BackupId>,
    /// State.
    pub state: ClusterState,
    /// Availability zone → subnet id.
    pub subnet_mapping: BTreeMap<String, String>,
    /// VPC id.
    pub vpc_id: String,
    /// Certificates.
    pub certificates: Certificates,
    /// `DEFAULT`.
    pub backup_policy: String,
    /// How long its backups are kept.
    pub backup_retention_policy: BackupRetentionPolicy,
    /// `IPV4`.
    pub network_type: String,
    /// `FIPS`.
    pub mode: String,
    /// Why the cluster is in its state.
    pub state_message: String,
    /// Tags.
    pub tag_list: Vec<HsmTag>,
}

/// `Certificates` of a cluster.
#[derive(
    Clone, Debug, Default, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode,
)]
#[serde(rename_all = "PascalCase")]
pub struct Certificates {
    /// The cluster's CSR, once its first HSM exists (kept after initialization, as on AWS).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_csr: Option<String>,
    /// The signed cluster certificate, once initialised.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_certificate: Option<String>,
}

/// An HSM as DescribeClusters shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "PascalCase")]
pub struct HsmDescription {
    /// Zone.
    pub availability_zone: String,
    /// Cluster.
    pub cluster_id: ClusterId,
    /// Subnet.
    pub subnet_id: String,
    /// Network interface id (`eni-…`).
    pub eni_id: String,
    /// Network interface IP.
    pub eni_ip: String,
    /// Id.
    pub hsm_id: HsmId,
    /// The cluster's HSM type.
    pub hsm_type: String,
    /// State.
    pub state: HsmState,
    /// Why the HSM is in its state.
    pub state_message: String,
}

/// DescribeClusters.
#[derive(Clone, Debug, Default, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "PascalCase", default)]
pub struct DescribeClustersRequest {
    /// Filters: `clusterIds`, `states`, `vpcIds` (AWS's filter names).
    pub filters: BTreeMap<String, Vec<String>>,
    /// The Region whose clusters to list (as `aws --region`; default: the configured Region).
    pub region: Option<String>,
    /// Page size (1–25; absent: every cluster in one answer).
    pub max_results: Option<u32>,
    /// The previous page's `NextToken`.
    pub next_token: Option<String>,
}

/// DescribeClusters response.
#[derive(Clone, Debug, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeClustersResponse {
    /// Matching clusters.
    pub clusters: Vec<ClusterDescription>,
    /// Set when more clusters follow: pass it as `NextToken` for the next page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

/// CreateHsm.
#[derive(Clone, Debug, Default, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "PascalCase")]
pub struct CreateHsmRequest {
    /// Cluster.
    pub cluster_id: String,
    /// Zone, one of the cluster's subnets' zones.
    pub availability_zone: String,
    /// The cluster's Region, as `aws --region` (default: the configured Region): a cluster is
    /// found only in its own Region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

/// CreateHsm response.
#[derive(Clone, Debug, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "PascalCase")]
pub struct HsmResponse {
    /// The HSM.
    pub hsm: HsmDescription,
}

/// DeleteHsm: the HSM is named, as on AWS, by one of `HsmId`, `EniId` and `EniIp` (when
/// several are given, they must name the same HSM).
#[derive(Clone, Debug, Default, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "PascalCase")]
pub struct DeleteHsmRequest {
    /// Cluster.
    pub cluster_id: String,
    /// HSM (empty: named by `EniId` or `EniIp`).
    #[serde(default)]
    pub hsm_id: String,
    /// The HSM's network interface (`eni-…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eni_id: Option<String>,
    /// The IP address of the HSM's network interface.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eni_ip: Option<String>,
    /// The cluster's Region, as `aws --region` (default: the configured Region): a cluster is
    /// found only in its own Region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

/// DeleteHsm response.
#[derive(Clone, Debug, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "PascalCase")]
pub struct DeleteHsmResponse {
    /// The deleted HSM.
    pub hsm_id: HsmId,
}

/// InitializeCluster.
#[derive(Clone, Debug, Default, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "PascalCase")]
pub struct InitializeClusterRequest {
    /// Cluster.
    pub cluster_id: String,
    /// The cluster CSR signed by the user's CA (PEM).
    pub signed_cert: String,
    /// The CA's certificate (PEM).
    pub trust_anchor: String,
    /// The cluster's Region, as `aws --region` (default: the configured Region): a cluster is
    /// found only in its own Region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

/// InitializeCluster response.
#[derive(Clone, Debug, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "PascalCase")]
pub struct InitializeClusterResponse {
    /// New state: INITIALIZE_IN_PROGRESS (then INITIALIZED, until `cluster activate`); ACTIVE
    /// for kmscks's one-step variant, which activates the cluster too.
    pub state: ClusterState,
    /// Message.
    pub state_message: String,
    /// kmscks: the trust anchor, for the variant that generated the CA itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trust_anchor: Option<String>,
}

/// A backup as DescribeBackups shows it (cloudhsmv2's `Backup`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "PascalCase")]
pub struct BackupDescription {
    /// Id.
    pub backup_id: BackupId,
    /// `arn:aws:cloudhsm:<region>:<account>:backup/<id>`: names the backup's Region.
    pub backup_arn: String,
    /// State.
    pub backup_state: BackupState,
    /// The cluster the backup was taken of.
    pub cluster_id: ClusterId,
    /// When it was taken.
    pub create_timestamp: Timestamp,
    /// For copies: when it was copied into this Region.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub copy_timestamp: Option<Timestamp>,
    /// Whether the backup is exempt from the retention policy.
    pub never_expires: bool,
    /// For copies: the Region it was copied from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_region: Option<String>,
    /// For copies: the backup it was copied from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_backup: Option<BackupId>,
    /// For copies: the cluster the source backup was taken of.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_cluster: Option<ClusterId>,
    /// While PENDING_DELETION: when DeleteBackup was called (the backup stays restorable for
    /// [`crate::types::limits::BACKUP_RESTORE_DAYS`] days after it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delete_timestamp: Option<Timestamp>,
    /// HSM type of the cluster it was taken of.
    pub hsm_type: String,
    /// `FIPS`.
    pub mode: String,
    /// Tags.
    pub tag_list: Vec<HsmTag>,
}

/// DescribeBackups.
#[derive(Clone, Debug, Default, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "PascalCase", default)]
pub struct DescribeBackupsRequest {
    /// Filters (AWS's names): `backupIds`, `sourceBackupIds`, `clusterIds`, `states`,
    /// `neverExpires`.
    pub filters: BTreeMap<String, Vec<String>>,
    /// The Region whose backups to list (as `aws --region`; default: the configured Region).
    pub region: Option<String>,
    /// Page size (1–50; absent: every backup in one answer).
    pub max_results: Option<u32>,
    /// The previous page's `NextToken`.
    pub next_token: Option<String>,
}

/// CopyBackupToRegion.
#[derive(Clone, Debug, Default, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "PascalCase")]
pub struct CopyBackupToRegionRequest {
    /// Backup to copy.
    pub backup_id: String,
    /// The Region the backup to copy is in, as `aws --region` (default: the configured
    /// Region): a backup is found only in its own Region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Destination Region.
    pub destination_region: String,
    /// Tags for the copy.
    #[serde(default)]
    pub tag_list: Vec<HsmTag>,
}

/// CopyBackupToRegion response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "PascalCase")]
pub struct CopyBackupToRegionResponse {
    /// What was copied (AWS names the source; the copy is found with DescribeBackups in the
    /// destination Region, filter `sourceBackupIds`).
    pub destination_backup: DestinationBackup,
}

/// cloudhsmv2's `DestinationBackup`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "PascalCase")]
pub struct DestinationBackup {
    /// When the source backup was created (the copy's `CopyTimestamp` says when it was copied).
    pub create_timestamp: Timestamp,
    /// The Region copied from.
    pub source_region: String,
    /// The backup copied.
    pub source_backup: BackupId,
    /// The cluster the copied backup was taken of.
    pub source_cluster: ClusterId,
}

/// DeleteBackup / RestoreBackup response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "PascalCase")]
pub struct BackupResponse {
    /// The backup as it is now.
    pub backup: BackupDescription,
}

/// A CloudHSM user as `user list` shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "kebab-case")]
pub struct UserDescription {
    /// User name.
    pub username: String,
    /// Role.
    pub role: HsmUserRole,
    /// Whether the user is locked out.
    pub locked: bool,
    /// Always `false` in kmscks.
    pub mfa: bool,
    /// Whether a login session is open, and whose (`kms:<store id>` or `external`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logged_in: Option<String>,
}

/// `user create` / `user change-password`.
#[derive(Debug, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "PascalCase")]
pub struct UserRequest {
    /// Cluster.
    pub cluster_id: String,
    /// User name.
    pub username: String,
    /// Role (create only).
    #[serde(default)]
    pub role: Option<HsmUserRole>,
    /// Password.
    pub password: Password,
}

/// A key object as `key list` shows it: metadata only, never the key bytes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "kebab-case")]
pub struct KeyObjectDescription {
    /// Key handle.
    pub key_reference: u64,
    /// Label (the KMS key ARN).
    pub label: String,
    /// Owner.
    pub owner: String,
    /// `aes`.
    pub key_type: String,
    /// 256.
    pub key_length_bits: u32,
    /// Always false.
    pub extractable: bool,
    /// Always true (persistent).
    pub token: bool,
    /// HSMs holding a replica.
    pub hsms: Vec<HsmId>,
}

/// A fault to inject into a cluster. In JSON its members are PascalCase, as every other
/// member kmscks writes; the snake_case names earlier builds wrote are still read.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all_fields = "PascalCase")]
pub enum Fault {
    /// The HSM fails (DEGRADED, no longer serves).
    HsmLost(HsmId),
    /// The network between KMS and the cluster goes down.
    NetworkDown,
    /// The network comes back.
    NetworkRestored,
    /// Every KMS-side call to the cluster fails internally (until cleared).
    InternalError(bool),
    /// A user's password is changed behind KMS's back.
    PasswordChanged {
        /// User.
        #[serde(alias = "username")]
        username: String,
    },
    /// A user is locked out (as after five failed logins).
    UserLockedOut {
        /// User.
        #[serde(alias = "username")]
        username: String,
    },
    /// Somebody logs in as the user from elsewhere (CloudHSM CLI).
    UserLoggedInElsewhere {
        /// User.
        #[serde(alias = "username")]
        username: String,
    },
    /// The subnet of a zone is deleted.
    SubnetDeleted {
        /// Zone.
        #[serde(alias = "availability_zone")]
        availability_zone: String,
    },
    /// The subnet of a zone runs out of free IP addresses.
    SubnetFull {
        /// Zone.
        #[serde(alias = "availability_zone")]
        availability_zone: String,
    },
    /// The cluster security group loses its self-referencing rule.
    SecurityGroupBroken,
    /// A key object is deleted from the cluster (as a CU could, with `deleteKey`).
    KeyObjectDeleted {
        /// Handle.
        #[serde(alias = "handle")]
        handle: u64,
    },
    /// A DEGRADED HSM comes back (ACTIVE again; its reboot counter goes up by one).
    HsmRestored(HsmId),
    /// The cluster security group's self-referencing rule is put back.
    SecurityGroupFixed,
    /// Every HSM of an Availability Zone fails (DEGRADED, no longer serves).
    AvailabilityZoneDown {
        /// Zone.
        #[serde(alias = "availability_zone")]
        availability_zone: String,
    },
    /// Every HSM an `AvailabilityZoneDown` took down in that zone comes back.
    AvailabilityZoneUp {
        /// Zone.
        #[serde(alias = "availability_zone")]
        availability_zone: String,
    },
    /// The network between KMS and the cluster goes down for a while, then heals by itself
    /// (as `NetworkRestored` would) once the instance's clock has moved `duration_ms` on.
    /// `fault list` shows it with the time left.
    NetworkDownFor {
        /// How long the cut lasts, in milliseconds: within `limits::FAULT_DURATION_MS`.
        #[serde(alias = "duration_ms")]
        duration_ms: u64,
    },
    /// The HSM answers slowly: every cryptographic operation it serves takes `latency_ms`
    /// longer (the calls other HSMs serve do not); 0 clears it.
    SlowHsm {
        /// The HSM.
        #[serde(alias = "hsm_id")]
        hsm_id: HsmId,
        /// Added latency per operation, in milliseconds: 0 to `limits::MAX_HSM_LATENCY_MS`.
        #[serde(alias = "latency_ms")]
        latency_ms: u32,
    },
}

/// The faults in force in a cluster (`fault list`), each as the [`Fault`] that would inject it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "PascalCase")]
pub struct ListFaultsResponse {
    /// The active faults: lost HSMs (`HsmLost`, or `AvailabilityZoneDown` for a whole zone),
    /// `NetworkDown`, `InternalError(true)`, locked-out users, users logged in elsewhere,
    /// deleted or full subnets, a broken security group. One-off events (a changed password,
    /// a deleted key object) leave nothing to list.
    pub faults: Vec<Fault>,
}

/// A request naming one cluster (DeleteCluster, the CA-making InitializeCluster, CreateBackup,
/// `user list`, `key list`, `fault list`).
#[derive(
    Clone, Debug, Default, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode,
)]
#[serde(rename_all = "PascalCase")]
pub struct ClusterIdRequest {
    /// The cluster.
    pub cluster_id: String,
    /// The cluster's Region, as `aws --region` (default: the configured Region): for the
    /// cloudhsmv2 verbs (DeleteCluster, InitializeCluster) a cluster is found only in its own
    /// Region. The others taking this request (kmscks's CreateBackup and `fault list`, the
    /// CloudHSM CLI's `user list` and `key list`) find it by its id alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

/// A request naming one backup (DeleteBackup, RestoreBackup).
#[derive(
    Clone, Debug, Default, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode,
)]
#[serde(rename_all = "PascalCase")]
pub struct BackupIdRequest {
    /// The backup.
    pub backup_id: String,
    /// The backup's Region, as `aws --region` (default: the configured Region): a backup is
    /// found only in its own Region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

/// DescribeBackups response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeBackupsResponse {
    /// The backups.
    pub backups: Vec<BackupDescription>,
    /// Set when more backups follow: pass it as `NextToken` for the next page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

/// `user delete` / `logout`.
#[derive(
    Clone, Debug, Default, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode,
)]
#[serde(rename_all = "PascalCase")]
pub struct UsernameRequest {
    /// Cluster.
    pub cluster_id: String,
    /// User name.
    pub username: String,
}

/// `user list` response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "PascalCase")]
pub struct ListUsersResponse {
    /// The users.
    pub users: Vec<UserDescription>,
}

/// `key list` response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "PascalCase")]
pub struct ListKeyObjectsResponse {
    /// The key objects (metadata only).
    pub keys: Vec<KeyObjectDescription>,
}

/// `key delete` as the owner.
#[derive(Debug, Deserialize, Serialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "PascalCase")]
pub struct DeleteKeyObjectRequest {
    /// Cluster.
    pub cluster_id: String,
    /// Key handle.
    pub key_reference: u64,
    /// The owner.
    pub username: String,
    /// The owner's password.
    pub password: Password,
}

/// The audit log of a cluster (optionally of one HSM).
#[derive(
    Clone, Debug, Default, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode,
)]
#[serde(rename_all = "PascalCase")]
pub struct AuditLogRequest {
    /// Cluster.
    pub cluster_id: String,
    /// Only this HSM's stream.
    #[serde(default)]
    pub hsm_id: Option<String>,
}

/// One HSM's audit stream.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "PascalCase")]
pub struct AuditStream {
    /// The HSM.
    pub hsm_id: HsmId,
    /// Its events, in sequence order.
    pub events: Vec<AuditEvent>,
}

/// The audit log response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "PascalCase")]
pub struct AuditLogResponse {
    /// One stream per HSM.
    pub streams: Vec<AuditStream>,
}

/// Injects a fault into a cluster.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "PascalCase")]
pub struct InjectFaultRequest {
    /// Cluster.
    pub cluster_id: String,
    /// The fault.
    pub fault: Fault,
}

/// One record of an HSM's audit log (CloudHSM audit log format, simplified), chained to the
/// record before it (see [`hsm_audit`](super::hsm_audit) for the encoding and the verifier).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
pub struct AuditEvent {
    /// Gap-free sequence number within the HSM's stream, from 0.
    pub sequence: u64,
    /// CloudHSM's `Reboot counter`: how many times the HSM has come back since it was first
    /// created (0 for a new HSM; an HSM created in a cluster restored from a backup starts at 1,
    /// as it boots from the backup's image).
    pub reboot_counter: u32,
    /// Time.
    pub time: Timestamp,
    /// Opcode name, e.g. `CN_LOGIN`.
    pub opcode: String,
    /// Opcode number, e.g. 0xd.
    pub opcode_id: u32,
    /// `SUCCESS` or a failure reason.
    pub response: String,
    /// User the command ran as or acted on.
    pub user: Option<String>,
    /// Key handle, for key commands.
    pub key_handle: Option<u64>,
    /// SHA-256 of the previous record's canonical encoding (of the HSM id, for record 0).
    pub previous_hash: AuditHash,
    /// SHA-256 of this record's canonical encoding (which includes `previous_hash`).
    pub hash: AuditHash,
}

/// TagResource (cloudhsmv2) on a cluster or a backup.
#[derive(Clone, Debug, Default, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "PascalCase")]
pub struct TagHsmResourceRequest {
    /// `cluster-…` or `backup-…`.
    pub resource_id: String,
    /// Tags to add (a key given again takes the new value).
    pub tag_list: Vec<HsmTag>,
    /// The cluster's or backup's Region, as `aws --region` (default: the configured Region):
    /// either is found only in its own Region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

/// UntagResource (cloudhsmv2) on a cluster or a backup.
#[derive(Clone, Debug, Default, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "PascalCase")]
pub struct UntagHsmResourceRequest {
    /// `cluster-…` or `backup-…`.
    pub resource_id: String,
    /// Keys of the tags to remove.
    pub tag_key_list: Vec<String>,
    /// The cluster's or backup's Region, as `aws --region` (default: the configured Region):
    /// either is found only in its own Region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

/// ListTags (cloudhsmv2) of a cluster or a backup.
#[derive(Clone, Debug, Default, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "PascalCase", default)]
pub struct ListHsmTagsRequest {
    /// `cluster-…` or `backup-…`.
    pub resource_id: String,
    /// Page size (absent: every tag).
    pub max_results: Option<u32>,
    /// The previous page's `NextToken`.
    pub next_token: Option<String>,
    /// The cluster's or backup's Region, as `aws --region` (default: the configured Region):
    /// either is found only in its own Region.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

/// ListTags response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "PascalCase")]
pub struct ListHsmTagsResponse {
    /// The tags, by key.
    pub tag_list: Vec<HsmTag>,
    /// Set when more tags follow.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

/// ModifyCluster (cloudhsmv2): the cluster's backup retention policy.
#[derive(Clone, Debug, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "PascalCase")]
pub struct ModifyClusterRequest {
    /// Cluster.
    pub cluster_id: String,
    /// The new policy: `Type` `DAYS`, `Value` 7 to 379.
    pub backup_retention_policy: BackupRetentionPolicy,
    /// The cluster's Region, as `aws --region` (default: the configured Region): a cluster is
    /// found only in its own Region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

/// ModifyBackupAttributes (cloudhsmv2): whether the backup is exempt from the retention policy.
#[derive(Clone, Debug, Default, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "PascalCase")]
pub struct ModifyBackupAttributesRequest {
    /// Backup.
    pub backup_id: String,
    /// Exempt from the retention policy.
    pub never_expires: bool,
    /// The backup's Region, as `aws --region` (default: the configured Region): a backup is
    /// found only in its own Region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fault_writes_pascal_case_members_and_still_reads_the_snake_case_ones() {
        let slow = Fault::SlowHsm {
            hsm_id: HsmId::generate(),
            latency_ms: 300,
        };
        let Fault::SlowHsm { hsm_id, .. } = &slow else {
            unreachable!("made just above")
        };
        let id = hsm_id.as_str();
        let json = serde_json::to_value(&slow).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"SlowHsm": {"HsmId": id, "LatencyMs": 300}})
        );
        let old = serde_json::json!({"SlowHsm": {"hsm_id": id, "latency_ms": 300}});
        assert_eq!(serde_json::from_value::<Fault>(old).unwrap(), slow);
        let old = r#"{"NetworkDownFor": {"duration_ms": 5}}"#;
        assert_eq!(
            serde_json::from_str::<Fault>(old).unwrap(),
            Fault::NetworkDownFor { duration_ms: 5 }
        );
    }
}
