//! Every quota and size limit kmscks enforces, in one place (spec §0, §4, §6).

use super::{DataKeyPairSpec, RequestRate};

/// Custom key stores per account and Region, any type or state — enforced only when AWS
/// quotas are emulated (the seed says there is no such quota; AWS added it later).
pub const MAX_CUSTOM_KEY_STORES: usize = 10;
/// Customer managed keys per account and Region, all states.
pub const MAX_KEYS: usize = 100_000;
/// Aliases per KMS key.
pub const MAX_ALIASES_PER_KEY: usize = 50;
/// Tags per KMS key.
pub const MAX_TAGS_PER_KEY: usize = 50;
/// Key policy document size in bytes (the 32 KB quota).
pub const MAX_POLICY_BYTES: usize = 32 * 1024;

/// Custom key store ID length as the API accepts it (AWS issues `cks-` and 17 hex digits).
pub const CUSTOM_KEY_STORE_ID_LEN: (usize, usize) = (1, 64);
/// Custom key store name length (also DescribeCustomKeyStores' name filter).
pub const STORE_NAME_LEN: (usize, usize) = (1, 256);
/// CloudHSM cluster ID length (`cluster-` and 11 to 16 characters).
pub const CLUSTER_ID_LEN: (usize, usize) = (19, 24);
/// kmsuser password length as KMS validates it.
pub const KEY_STORE_PASSWORD_LEN: (usize, usize) = (7, 32);
/// Trust anchor certificate length.
pub const TRUST_ANCHOR_LEN: (usize, usize) = (1, 5000);
/// Key description length.
pub const DESCRIPTION_LEN: (usize, usize) = (0, 8192);
/// Alias name length (including the `alias/` prefix).
pub const ALIAS_NAME_LEN: (usize, usize) = (1, 256);
/// Tag key length.
pub const TAG_KEY_LEN: (usize, usize) = (1, 128);
/// Tag value length.
pub const TAG_VALUE_LEN: (usize, usize) = (0, 256);
/// Paging marker length.
pub const MARKER_LEN: (usize, usize) = (1, 1024);

/// ScheduleKeyDeletion waiting period in days, and its default.
pub const PENDING_WINDOW_DAYS: (u32, u32) = (7, 30);
/// The waiting period's range in AWS's model (`PendingWindowInDays` 1–365): a value outside
/// it is the model's validation error, one inside it and outside [`PENDING_WINDOW_DAYS`] the
/// service's.
pub const PENDING_WINDOW_MODEL_DAYS: (u32, u32) = (1, 365);
/// Default waiting period when none is given.
pub const DEFAULT_PENDING_WINDOW_DAYS: u32 = 30;

/// EnableKeyRotation `RotationPeriodInDays` range.
pub const ROTATION_PERIOD_DAYS: (u32, u32) = (90, 2560);
/// Rotation period when EnableKeyRotation gives none.
pub const DEFAULT_ROTATION_PERIOD_DAYS: u32 = 365;
/// RotateKeyOnDemand calls a key allows over its life (AWS's quota, not adjustable; the
/// developer guide's current figure).
pub const MAX_ON_DEMAND_ROTATIONS: usize = 25;
/// ListKeyRotations `Limit` range and default.
pub const LIST_ROTATIONS_LIMIT: (u32, u32) = (1, 1000);
/// ListKeyRotations default page size.
pub const LIST_ROTATIONS_DEFAULT: u32 = 100;

/// How long GetParametersForImport's public key and import token are accepted.
pub const IMPORT_PARAMETERS_VALID: std::time::Duration = std::time::Duration::from_secs(24 * 3600);
/// The latest ImportKeyMaterial `ValidTo`, in days after the request.
pub const MAX_IMPORTED_MATERIAL_DAYS: u32 = 365;

/// DescribeCustomKeyStores / ListKeys `Limit` range and ListKeys default.
pub const LIST_LIMIT: (u32, u32) = (1, 1000);
/// ListKeys default page size.
pub const LIST_KEYS_DEFAULT: u32 = 100;
/// ListAliases `Limit` range and default.
pub const LIST_ALIASES_LIMIT: (u32, u32) = (1, 100);
/// ListAliases default page size.
pub const LIST_ALIASES_DEFAULT: u32 = 50;
/// ListResourceTags `Limit` range (the default is the maximum).
pub const LIST_TAGS_LIMIT: (u32, u32) = (1, 50);

/// Encrypt plaintext size in bytes.
pub const PLAINTEXT_LEN: (usize, usize) = (1, 4096);
/// GenerateMac / VerifyMac (and Sign / Verify with MessageType RAW) `Message` size in bytes.
pub const MESSAGE_LEN: (usize, usize) = (1, 4096);
/// VerifyMac `Mac` size in bytes.
pub const MAC_LEN: (usize, usize) = (1, 6144);
/// Verify `Signature` size in bytes.
pub const SIGNATURE_LEN: (usize, usize) = (1, 6144);
/// DeriveSharedSecret `PublicKey` size in bytes.
pub const PUBLIC_KEY_LEN: (usize, usize) = (1, 8192);
/// Ciphertext blob size in bytes.
pub const CIPHERTEXT_LEN: (usize, usize) = (1, 6144);
/// GenerateDataKey / GenerateRandom `NumberOfBytes`.
pub const NUMBER_OF_BYTES: (u32, u32) = (1, 1024);
/// Grant tokens per request.
pub const MAX_GRANT_TOKENS: usize = 10;
/// Grant token length in characters.
pub const GRANT_TOKEN_LEN: (usize, usize) = (1, 8192);
/// Grants per KMS key.
pub const MAX_GRANTS_PER_KEY: usize = 50_000;
/// Grant name length (CreateGrant's `Name`, pattern `[a-zA-Z0-9:/_-]+`).
pub const GRANT_NAME_LEN: (usize, usize) = (1, 256);
/// Grant id length as the API accepts it (kmscks issues 64 hex digits, as AWS does).
pub const GRANT_ID_LEN: (usize, usize) = (1, 128);
/// Grantee and retiring principal length (pattern `[\w+=,.@:/-]+`).
pub const GRANT_PRINCIPAL_LEN: (usize, usize) = (1, 256);
/// Encryption context pairs in one grant constraint.
pub const MAX_GRANT_CONSTRAINT_PAIRS: usize = 8;
/// Length of a value in a grant constraint.
pub const GRANT_CONSTRAINT_VALUE_LEN: usize = 384;
/// ListGrants / ListRetirableGrants `Limit` range and default.
pub const LIST_GRANTS_LIMIT: (u32, u32) = (1, 100);
/// ListGrants / ListRetirableGrants default page size.
pub const LIST_GRANTS_DEFAULT: u32 = 50;

/// CloudHSM: HSMs per cluster (the hard limit).
pub const MAX_HSMS_PER_CLUSTER: usize = 28;
/// Emulated resource quota: AWS CloudHSM's default HSMs per cluster (adjustable on AWS, up to
/// [`MAX_HSMS_PER_CLUSTER`]).
pub const HSMS_PER_CLUSTER_QUOTA: usize = 6;
/// Emulated resource quota: AWS CloudHSM's default clusters per account and Region.
pub const CLUSTERS_PER_REGION_QUOTA: usize = 4;
/// CloudHSM: what one cluster holds at most, which depends on the type of its HSMs (a
/// cluster's own: `hsm::model::Cluster::limits`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClusterLimits {
    /// Key objects.
    pub keys: usize,
    /// Users, the admin and kmsuser among them.
    pub users: usize,
}
/// CloudHSM: the limits of a cluster of hsm1.medium HSMs.
pub const HSM1_CLUSTER_LIMITS: ClusterLimits = ClusterLimits {
    keys: 3_300,
    users: 250,
};
/// CloudHSM: the limits of a cluster of hsm2m.medium HSMs (the default type).
pub const HSM2M_CLUSTER_LIMITS: ClusterLimits = ClusterLimits {
    keys: 16_666,
    users: 1024,
};
/// CloudHSM: key objects per cluster of the default HSM type (hsm2m.medium), the most any
/// cluster holds.
pub const MAX_KEYS_PER_CLUSTER: usize = HSM2M_CLUSTER_LIMITS.keys;
/// CloudHSM: users per cluster of the default HSM type (hsm2m.medium), the most any cluster
/// holds.
pub const MAX_USERS_PER_CLUSTER: usize = HSM2M_CLUSTER_LIMITS.users;
/// CloudHSM: days a deleted backup stays restorable (`PENDING_DELETION`) with RestoreBackup.
pub const BACKUP_RESTORE_DAYS: u32 = 7;
/// CloudHSM: days a cluster's backups are kept (`BackupRetentionPolicy`), by default.
pub const DEFAULT_BACKUP_RETENTION_DAYS: u32 = 90;
/// CloudHSM: the days ModifyCluster accepts as a backup retention policy.
pub const BACKUP_RETENTION_DAYS: (u32, u32) = (7, 379);
/// CloudHSM: hours between the automatic backups of an ACTIVE cluster (AWS takes one at least
/// once a day).
pub const AUTOMATIC_BACKUP_HOURS: u32 = 24;
/// CloudHSM: DescribeClusters' `MaxResults`.
pub const DESCRIBE_CLUSTERS_MAX_RESULTS: (u32, u32) = (1, 25);
/// CloudHSM: DescribeBackups' `MaxResults`.
pub const DESCRIBE_BACKUPS_MAX_RESULTS: (u32, u32) = (1, 50);
/// CloudHSM: ListTags' `MaxResults`.
pub const LIST_TAGS_MAX_RESULTS: (u32, u32) = (1, 100);
/// CloudHSM: tags per resource.
pub const MAX_HSM_TAGS: usize = 50;
/// CloudHSM: failed logins before a user is locked out.
pub const MAX_FAILED_LOGINS: u32 = 5;
/// CloudHSM CLI password length.
pub const HSM_PASSWORD_LEN: (usize, usize) = (7, 32);
/// kmscks faults: the longest timed network cut (`NetworkDownFor`), one day in milliseconds.
pub const MAX_FAULT_DURATION_MS: u64 = 86_400_000;
/// kmscks faults: how long a timed network cut lasts, in milliseconds (it lasts some time).
pub const FAULT_DURATION_MS: (u64, u64) = (1, MAX_FAULT_DURATION_MS);
/// kmscks faults: the most latency a slow HSM (`SlowHsm`) may add per operation, one minute.
pub const MAX_HSM_LATENCY_MS: u32 = 60_000;

/// Emulated request quota: cryptographic requests per second on the keys of one custom key
/// store (shared by every caller, charged on top of the account's rate).
pub const STORE_CRYPTO_RATE: u32 = 1_800;
/// Emulated request quota: what GenerateDataKey(WithoutPlaintext) and GenerateRandom cost
/// against [`STORE_CRYPTO_RATE`], in Encrypt/Decrypt/ReEncrypt requests (≈600 GDK/s).
pub const STORE_DATA_KEY_COST: u32 = 3;
/// Emulated request quota: the account's symmetric cryptographic requests per second (the
/// us-east-1 figure; 5,500 or 10,000 in smaller Regions).
pub const ACCOUNT_CRYPTO_RATE: u32 = 50_000;
/// Emulated request quota: the account's requests per second on RSA keys (Sign, Verify, and
/// Encrypt, Decrypt and ReEncrypt with an RSAES-OAEP algorithm), apart from the symmetric
/// rate: AWS's "Cryptographic operations (RSA) request rate", 1,000 on its Request quotas page
/// since it lists ML-DSA keys (500 before).
pub const RSA_CRYPTO_RATE: u32 = 1_000;
/// Emulated request quota: the account's requests per second on elliptic curve keys (Sign,
/// Verify, DeriveSharedSecret), apart from the symmetric and RSA rates: AWS's "Cryptographic
/// operations (ECC) request rate", 1,000 on the same page (300 before).
pub const ECC_CRYPTO_RATE: u32 = 1_000;

/// Emulated request quota: GenerateDataKeyPair and GenerateDataKeyPairWithoutPlaintext
/// requests per second for pairs of `spec`, each spec counted on its own and apart from every
/// other rate (AWS's "GenerateDataKeyPair (`<spec>`) request rate"; an RSA_3072 pair is one in
/// two seconds, an RSA_4096 pair one in ten). No AWS rate for ECC_NIST_EDWARDS25519 pairs was
/// found (they came after the table kmscks follows): they get the other 256-bit curves' 25.
/// `None` for SM2, of AWS's China Regions only, which kmscks refuses.
pub const fn data_key_pair_rate(spec: DataKeyPairSpec) -> Option<RequestRate> {
    use DataKeyPairSpec::*;
    Some(match spec {
        Rsa2048 => RequestRate::per_second(1),
        Rsa3072 => RequestRate::from_millis(500),
        Rsa4096 => RequestRate::from_millis(100),
        EccNistP256 | EccSecgP256k1 | EccNistEdwards25519 => RequestRate::per_second(25),
        EccNistP384 => RequestRate::per_second(10),
        EccNistP521 => RequestRate::per_second(5),
        Sm2 => return None,
    })
}
/// Emulated request quota: requests per second of each custom key store operation (Create,
/// Describe, Update, Delete, Connect, Disconnect), each counted on its own.
pub const KEY_STORE_API_RATE: u32 = 5;
