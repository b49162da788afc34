//! One line per operation saying what it does, for the CLI's help (and anything else that
//! lists operations). A `match` over [`Op`] without a wildcard, beside the table: an operation
//! added to the table does not compile until it says what it does.

use super::Op;

impl Op {
    /// What the operation does, in one line without a final period (e.g. `Creates a KMS key`).
    pub const fn summary(self) -> &'static str {
        match self {
            Op::CreateCustomKeyStore => "Creates a custom key store backed by a CloudHSM cluster",
            Op::DescribeCustomKeyStores => "Describes custom key stores and their connection state",
            Op::UpdateCustomKeyStore => {
                "Renames a custom key store, or changes its cluster or kmsuser password"
            }
            Op::DeleteCustomKeyStore => {
                "Deletes a disconnected custom key store that holds no KMS keys"
            }
            Op::ConnectCustomKeyStore => "Connects a custom key store to its CloudHSM cluster",
            Op::DisconnectCustomKeyStore => {
                "Disconnects a custom key store from its CloudHSM cluster"
            }
            Op::WaitForConnection => {
                "Waits until a custom key store leaves CONNECTING or DISCONNECTING"
            }
            Op::CreateKey => "Creates a KMS key, in the default key store or in a custom key store",
            Op::DescribeKey => "Describes a KMS key",
            Op::ListKeys => "Lists the KMS keys of the account and Region",
            Op::EnableKey => "Enables a KMS key",
            Op::DisableKey => "Disables a KMS key",
            Op::UpdateKeyDescription => "Changes the description of a KMS key",
            Op::ScheduleKeyDeletion => "Schedules the deletion of a KMS key after a waiting period",
            Op::CancelKeyDeletion => "Cancels the scheduled deletion of a KMS key",
            Op::PutKeyPolicy => "Replaces the key policy of a KMS key",
            Op::GetKeyPolicy => "Gets the key policy of a KMS key",
            Op::ListKeyPolicies => "Lists the names of a KMS key's policies (always default)",
            Op::TagResource => "Adds or overwrites tags on a KMS key",
            Op::UntagResource => "Removes tags from a KMS key",
            Op::ListResourceTags => "Lists the tags of a KMS key",
            Op::CreateAlias => "Creates an alias for a KMS key",
            Op::UpdateAlias => "Points an alias at another KMS key",
            Op::DeleteAlias => "Deletes an alias",
            Op::ListAliases => "Lists aliases, of the account or of one KMS key",
            Op::GetKeyLastUsage => {
                "Tells the last successful cryptographic operation with a KMS key since tracking began"
            }
            Op::GenerateDataKeyPair => {
                "Generates an asymmetric data key pair, its private key also encrypted under a KMS key"
            }
            Op::GenerateDataKeyPairWithoutPlaintext => {
                "Generates an asymmetric data key pair: its public key and its encrypted private key"
            }
            Op::GetKeyRotationStatus => "Tells whether automatic rotation is enabled for a KMS key",
            Op::Refused => {
                "An AWS operation kmscks refuses: one that applies to multi-Region keys only"
            }
            Op::LookupEvents => "Looks up KMS events as CloudTrail records, newest first",
            Op::CreateGrant => "Lets a principal use a KMS key for the operations a grant lists",
            Op::ListGrants => "Lists the grants of a KMS key",
            Op::ListRetirableGrants => "Lists the grants a principal may retire",
            Op::RetireGrant => "Retires a grant, by its token or by key and grant id",
            Op::RevokeGrant => "Revokes a grant of a KMS key",
            Op::EnableKeyRotation => "Enables automatic rotation of a KMS key, every N days",
            Op::DisableKeyRotation => "Disables automatic rotation of a KMS key",
            Op::RotateKeyOnDemand => "Rotates a KMS key's material now (at most 25 times a key)",
            Op::ListKeyRotations => "Lists the rotations of a KMS key's material, oldest first",
            Op::GetParametersForImport => {
                "Returns a wrapping public key and import token for an Origin EXTERNAL key"
            }
            Op::ImportKeyMaterial => "Imports key material into an Origin EXTERNAL key",
            Op::DeleteImportedKeyMaterial => {
                "Deletes the imported key material of a key (it becomes PendingImport)"
            }
            Op::Encrypt => "Encrypts up to 4,096 bytes under a KMS key",
            Op::Decrypt => "Decrypts a ciphertext made by Encrypt or GenerateDataKey",
            Op::ReEncrypt => {
                "Decrypts a ciphertext and encrypts it again, under another key or context"
            }
            Op::GenerateDataKey => "Returns a data key in plaintext and encrypted under a KMS key",
            Op::GenerateDataKeyWithoutPlaintext => {
                "Returns a data key encrypted under a KMS key only"
            }
            Op::GenerateRandom => "Returns random bytes",
            Op::EncryptBatch => "Encrypts many plaintexts in one call, a kmscks extension",
            Op::DecryptBatch => "Decrypts many ciphertexts in one call, a kmscks extension",
            Op::GenerateDataKeyBatch => "Generates many data keys in one call, a kmscks extension",
            Op::GenerateDataKeyWithoutPlaintextBatch => {
                "Generates many encrypted data keys in one call, a kmscks extension"
            }
            Op::GenerateMac => "Computes the HMAC of a message under an HMAC KMS key",
            Op::VerifyMac => "Verifies an HMAC of a message under an HMAC KMS key",
            Op::Sign => "Signs a message or its digest with an asymmetric KMS key",
            Op::Verify => "Verifies a signature made with an asymmetric KMS key",
            Op::GetPublicKey => "Returns the public key of an asymmetric KMS key (DER SubjectPublicKeyInfo)",
            Op::DeriveSharedSecret => {
                "Derives the ECDH shared secret of a key agreement KMS key and a public key"
            }
            Op::CreateCluster => "Creates a CloudHSM cluster, empty or restored from a backup",
            Op::DescribeClusters => "Describes CloudHSM clusters, their HSMs and certificates",
            Op::DeleteCluster => "Deletes a CloudHSM cluster that has no HSMs",
            Op::CreateHsm => "Creates an HSM in a cluster, in one of its Availability Zones",
            Op::DeleteHsm => "Deletes an HSM from a cluster",
            Op::InitializeCluster => "Initializes a cluster with its certificate signed by your CA",
            Op::InitializeClusterWithNewCa => {
                "Initializes and activates a cluster in one step, kmscks signing its CSR"
            }
            Op::CreateBackup => "Takes a backup of a cluster now, a kmscks extension",
            Op::DescribeBackups => "Describes CloudHSM backups of a Region",
            Op::CopyBackupToRegion => "Copies a backup to another Region",
            Op::DeleteBackup => "Deletes a backup (restorable for 7 days)",
            Op::CreateUser => "Creates an HSM user in a cluster (CloudHSM CLI user create)",
            Op::DeleteUser => "Deletes an HSM user (CloudHSM CLI user delete)",
            Op::ChangePassword => {
                "Changes an HSM user's password (CloudHSM CLI user change-password)"
            }
            Op::ListUsers => "Lists the HSM users of a cluster (CloudHSM CLI user list)",
            Op::Login => "Logs an HSM user in (CloudHSM CLI login)",
            Op::Logout => "Logs an HSM user out, ending its session (CloudHSM CLI logout)",
            Op::ListKeyObjects => {
                "Lists the key objects in a cluster's HSMs (CloudHSM CLI key list)"
            }
            Op::DeleteKeyObject => {
                "Deletes a key object from a cluster's HSMs (CloudHSM CLI key delete)"
            }
            Op::AuditLog => "Reads an HSM's hash-chained audit stream",
            Op::InjectFault => "Injects a fault into a cluster, as raw JSON (see the fault verbs)",
            Op::RestoreBackup => "Restores a backup pending deletion",
            Op::ListFaults => "Lists the faults in force in a cluster",
            Op::ActivateCluster => {
                "Activates an initialized cluster (CloudHSM CLI cluster activate)"
            }
            Op::ModifyCluster => "Changes a cluster's backup retention policy",
            Op::ModifyBackupAttributes => "Sets whether a backup never expires",
            Op::TagHsmResource => "Adds or overwrites tags on a cluster or backup",
            Op::UntagHsmResource => "Removes tags from a cluster or backup",
            Op::ListHsmTags => "Lists the tags of a cluster or backup",
        }
    }
}
