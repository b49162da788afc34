//! `kmscks kms …`: one verb per KMS operation of the table ([`Op::ALL`]), named as `aws kms`
//! names it (the operation name in kebab case), with `aws kms`'s flag names.
//!
//! kmscks extras: `wait-for-connection` (waits until a store is neither CONNECTING nor
//! DISCONNECTING), `lookup-events` (the KMS event log as CloudTrail records, newest first,
//! with CloudTrail's `--start-time`, `--end-time`, `--max-results`, `--next-token`, and
//! `--event-name` for its `EventName` lookup attribute), and the batch operations `encrypt-batch`, `decrypt-batch`, `generate-data-key-batch`,
//! `generate-data-key-without-plaintext-batch` (`--items` takes a JSON list of the single
//! operation's requests, blobs in base64). The operations kmscks refuses (import, key pairs,
//! replication; [`kmscks::api::kms::Refused::ALL`]) have their `aws kms` verbs
//! too; they answer with the exception AWS gives for a key of a custom key store.

use super::args::{opt, req, specs, ArgSpec, Kind::*};
use kmscks::api::kms::Refused;
use kmscks::ops::Op;

/// How a blob flag's value is written, for its help: the one text of every blob flag's.
macro_rules! blob_forms {
    () => {
        "base64, file://base64-text or fileb://raw-bytes (see --cli-binary-format)"
    };
}

const KEY_ID: ArgSpec = req("key-id", Str, "Key id, key ARN, alias name or alias ARN");
const STORE_ID: ArgSpec = req("custom-key-store-id", Str, "The custom key store's id");
const GRANT_TOKENS: ArgSpec = opt("grant-tokens", List, "Grant tokens");
const LIMIT: ArgSpec = opt("limit", Int, "Page size");
const MARKER: ArgSpec = opt("marker", Str, "NextMarker of the previous page");
const CONTEXT: ArgSpec = opt(
    "encryption-context",
    Map,
    "Encryption context: k=v,k2=v2 or JSON",
);
const DRY_RUN: ArgSpec = opt("dry-run", Bool, "Check access and parameters only");
pub(crate) const ITEMS: ArgSpec = req(
    "items",
    Json,
    "JSON list of requests (file:// allowed), blobs in base64",
);
const BYPASS: ArgSpec = opt(
    "bypass-policy-lockout-safety-check",
    Bool,
    "Skip the policy lockout safety check",
);

/// A structure of two string members, read in the forms AWS CLI reads it.
const RECIPIENT: ArgSpec = opt(
    "recipient",
    Structure,
    "Nitro Enclaves recipient: KeyEncryptionAlgorithm=…,AttestationDocument=… or JSON",
);
const DRY_RUN_MODIFIERS: ArgSpec = opt(
    "dry-run-modifiers",
    List,
    "DryRun modifiers, e.g. IGNORE_CIPHERTEXT",
);
/// CreateCustomKeyStore's and UpdateCustomKeyStore's members for external key stores, which
/// kmscks parses and does not implement.
const XKS_PROXY: [ArgSpec; 6] = [
    opt(
        "xks-proxy-uri-endpoint",
        Str,
        "External key store proxy endpoint",
    ),
    opt("xks-proxy-uri-path", Str, "External key store proxy path"),
    opt(
        "xks-proxy-vpc-endpoint-service-name",
        Str,
        "External key store proxy VPC endpoint service",
    ),
    opt(
        "xks-proxy-vpc-endpoint-service-owner",
        Str,
        "Owner of that VPC endpoint service",
    ),
    opt(
        "xks-proxy-authentication-credential",
        Json,
        "AccessKeyId=…,RawSecretAccessKey=… as JSON",
    ),
    opt(
        "xks-proxy-connectivity",
        Str,
        "PUBLIC_ENDPOINT or VPC_ENDPOINT_SERVICE",
    ),
];

const SIGN_MESSAGE: ArgSpec = req(
    "message",
    SecretBlob,
    concat!("The message or its digest: ", blob_forms!()),
);
const MESSAGE_TYPE: ArgSpec = opt("message-type", Str, "RAW (default) or DIGEST");
const SIGNING_ALGORITHM: ArgSpec = req(
    "signing-algorithm",
    Str,
    "One of the key's: RSASSA_PSS_SHA_256, ECDSA_SHA_256, …",
);

const KEY_PAIR_SPEC: ArgSpec = req(
    "key-pair-spec",
    Str,
    "RSA_2048/3072/4096, ECC_NIST_P256/P384/P521, ECC_SECG_P256K1 or ECC_NIST_EDWARDS25519",
);

const GENERATE_DATA_KEY: &[ArgSpec] = &[
    KEY_ID,
    opt("key-spec", Str, "AES_256 or AES_128"),
    opt("number-of-bytes", Int, "1-1024"),
    CONTEXT,
    GRANT_TOKENS,
    RECIPIENT,
    DRY_RUN,
];
const GENERATE_DATA_KEY_WITHOUT_PLAINTEXT: &[ArgSpec] = &[
    KEY_ID,
    opt("key-spec", Str, "AES_256 or AES_128"),
    opt("number-of-bytes", Int, "1-1024"),
    CONTEXT,
    GRANT_TOKENS,
    DRY_RUN,
];

/// The flags of a KMS operation's verb; `None` for operations that are not `kms` verbs (the
/// simulated CloudHSM's).
pub(crate) fn args(op: Op) -> Option<&'static [ArgSpec]> {
    Some(match op {
        Op::CreateCustomKeyStore => specs![
            req("custom-key-store-name", Str, "Unique name of the store"),
            opt("cloud-hsm-cluster-id", Str, "The backing cluster"),
            opt(
                "trust-anchor-certificate",
                Str,
                "The cluster's trust anchor, PEM (file://ca.pem)",
            ),
            opt("key-store-password", Password, "kmsuser's password"),
            opt("custom-key-store-type", Str, "AWS_CLOUDHSM"),
            XKS_PROXY[0],
            XKS_PROXY[1],
            XKS_PROXY[2],
            XKS_PROXY[3],
            XKS_PROXY[4],
            XKS_PROXY[5],
        ],
        Op::DescribeCustomKeyStores => specs![
            opt("custom-key-store-id", Str, "Only this store"),
            opt(
                "custom-key-store-name",
                Str,
                "Only the store with this name"
            ),
            LIMIT,
            MARKER,
        ],
        Op::UpdateCustomKeyStore => specs![
            STORE_ID,
            opt("new-custom-key-store-name", Str, "New name"),
            opt("key-store-password", Password, "kmsuser's current password"),
            opt("cloud-hsm-cluster-id", Str, "A related cluster to move to"),
            XKS_PROXY[0],
            XKS_PROXY[1],
            XKS_PROXY[2],
            XKS_PROXY[3],
            XKS_PROXY[4],
            XKS_PROXY[5],
        ],
        Op::DeleteCustomKeyStore | Op::ConnectCustomKeyStore | Op::DisconnectCustomKeyStore => {
            specs![STORE_ID]
        }
        Op::WaitForConnection => specs![
            STORE_ID,
            opt(
                "timeout-millis",
                Int,
                "How long to wait at most (default 30000)",
            ),
        ],
        Op::CreateKey => specs![
            opt("policy", Str, "Key policy document (file://policy.json)"),
            opt("description", Str, "Description"),
            opt(
                "key-usage",
                Str,
                "ENCRYPT_DECRYPT, GENERATE_VERIFY_MAC (HMAC) or SIGN_VERIFY (RSA, ECC)"
            ),
            opt(
                "customer-master-key-spec",
                Str,
                "Deprecated twin of --key-spec"
            ),
            opt(
                "key-spec",
                Str,
                "SYMMETRIC_DEFAULT, HMAC_224/256/384/512, RSA_2048/3072/4096 or ECC_NIST_P256/P384/P521, ECC_SECG_P256K1"
            ),
            opt(
                "origin",
                Str,
                "AWS_KMS (default) or AWS_CLOUDHSM (required with --custom-key-store-id)"
            ),
            opt(
                "custom-key-store-id",
                Str,
                "Create the key in this custom key store",
            ),
            BYPASS,
            opt("tags", Tags, "TagKey=k,TagValue=v …"),
            opt("multi-region", Bool, "Must be false"),
            opt("xks-key-id", Str, "The key's id in an external key manager"),
        ],
        Op::DescribeKey => specs![KEY_ID, GRANT_TOKENS],
        Op::EnableKey
        | Op::DisableKey
        | Op::CancelKeyDeletion
        | Op::GetKeyRotationStatus
        | Op::GetKeyLastUsage => {
            specs![KEY_ID]
        }
        Op::ListKeys => specs![LIMIT, MARKER],
        Op::ListKeyPolicies | Op::ListResourceTags => specs![KEY_ID, LIMIT, MARKER],
        Op::ListAliases => specs![opt("key-id", Str, "Only this key's aliases"), LIMIT, MARKER],
        Op::UpdateKeyDescription => specs![KEY_ID, req("description", Str, "New description")],
        Op::ScheduleKeyDeletion => specs![KEY_ID, opt("pending-window-in-days", Int, "7-30")],
        Op::PutKeyPolicy => specs![
            KEY_ID,
            opt("policy-name", Str, "default"),
            req("policy", Str, "Policy document (file://policy.json)"),
            BYPASS,
        ],
        Op::GetKeyPolicy => specs![KEY_ID, opt("policy-name", Str, "default")],
        Op::TagResource => specs![KEY_ID, req("tags", Tags, "TagKey=k,TagValue=v …")],
        Op::UntagResource => specs![KEY_ID, req("tag-keys", List, "Tag keys to remove")],
        Op::CreateAlias | Op::UpdateAlias => specs![
            req("alias-name", Str, "alias/…"),
            req("target-key-id", Str, "The key (id or ARN)"),
        ],
        Op::DeleteAlias => specs![req("alias-name", Str, "alias/…")],
        // Each refused operation ([`kmscks::api::kms::Refused::ALL`]) has its own verb too; this is the generic form.
        Op::Refused => specs![
            req(
                "operation",
                Str,
                "The refused operation's name, e.g. ReplicateKey",
            ),
            KEY_ID,
        ],
        Op::LookupEvents => specs![
            opt(
                "start-time",
                Str,
                "Only events at or after: ISO 8601 (2026-12-03T11:18:03Z) or epoch seconds",
            ),
            opt("end-time", Str, "Only events at or before (same forms)"),
            opt(
                "event-name",
                Str,
                "Only this operation's events, e.g. CreateKey"
            ),
            opt("max-results", Int, "Records per page, 1-50 (default 50)"),
            opt("next-token", Str, "NextToken of the previous page"),
        ],
        Op::GetParametersForImport => specs![
            KEY_ID,
            req("wrapping-algorithm", Str, "e.g. RSAES_OAEP_SHA_256"),
            req("wrapping-key-spec", Str, "e.g. RSA_4096"),
        ],
        Op::ImportKeyMaterial => specs![
            KEY_ID,
            req("import-token", Blob, "GetParametersForImport's ImportToken"),
            req("encrypted-key-material", Blob, "The wrapped key material"),
            opt(
                "valid-to",
                Str,
                "When the material expires (ISO 8601 or epoch seconds)"
            ),
            opt(
                "expiration-model",
                Str,
                "KEY_MATERIAL_EXPIRES or KEY_MATERIAL_DOES_NOT_EXPIRE"
            ),
            opt(
                "import-type",
                Str,
                "NEW_KEY_MATERIAL or EXISTING_KEY_MATERIAL"
            ),
            opt(
                "key-material-description",
                Str,
                "Description of the material"
            ),
            opt("key-material-id", Str, "Which material to reimport"),
        ],
        Op::DeleteImportedKeyMaterial => {
            specs![
                KEY_ID,
                opt("key-material-id", Str, "Which material to delete")
            ]
        }
        Op::CreateGrant => specs![
            req("key-id", Str, "Key id or key ARN"),
            req(
                "grantee-principal",
                Str,
                "Who may use the key through the grant (an ARN)"
            ),
            opt("retiring-principal", Str, "Who may retire the grant"),
            req(
                "operations",
                List,
                "What the grant allows: Encrypt Decrypt GenerateDataKey DescribeKey …",
            ),
            opt(
                "constraints",
                Constraints,
                "EncryptionContextSubset={k=v} or EncryptionContextEquals={k=v}, or JSON",
            ),
            GRANT_TOKENS,
            opt(
                "name",
                Str,
                "A name; the same name and parameters return the same grant"
            ),
            DRY_RUN,
        ],
        Op::ListGrants => specs![
            req("key-id", Str, "Key id or key ARN"),
            LIMIT,
            MARKER,
            opt("grant-id", Str, "Only this grant"),
            opt("grantee-principal", Str, "Only grants to this principal"),
        ],
        Op::ListRetirableGrants => specs![
            req("retiring-principal", Str, "The retiring principal (an ARN)"),
            LIMIT,
            MARKER,
        ],
        Op::RetireGrant => specs![
            opt("grant-token", Str, "The grant's token"),
            opt("key-id", Str, "Key id or key ARN (with --grant-id)"),
            opt("grant-id", Str, "The grant id (with --key-id)"),
            DRY_RUN,
        ],
        Op::RevokeGrant => specs![
            req("key-id", Str, "Key id or key ARN"),
            req("grant-id", Str, "The grant id"),
            DRY_RUN,
        ],
        Op::EnableKeyRotation => specs![
            req("key-id", Str, "Key id or key ARN"),
            opt("rotation-period-in-days", Int, "90-2560 (default 365)"),
        ],
        Op::DisableKeyRotation | Op::RotateKeyOnDemand => {
            specs![req("key-id", Str, "Key id or key ARN")]
        }
        Op::ListKeyRotations => specs![
            req("key-id", Str, "Key id or key ARN"),
            opt(
                "include-key-material",
                Str,
                "ROTATIONS_ONLY (default) or ALL_KEY_MATERIAL"
            ),
            LIMIT,
            MARKER,
        ],
        Op::Encrypt => specs![
            KEY_ID,
            req(
                "plaintext",
                SecretBlob,
                concat!("The plaintext: ", blob_forms!()),
            ),
            CONTEXT,
            GRANT_TOKENS,
            opt("encryption-algorithm", Str, "SYMMETRIC_DEFAULT"),
            DRY_RUN,
        ],
        Op::Decrypt => specs![
            req(
                "ciphertext-blob",
                Blob,
                concat!("The ciphertext: ", blob_forms!()),
            ),
            CONTEXT,
            GRANT_TOKENS,
            opt("key-id", Str, "Must be the ciphertext's key"),
            opt("encryption-algorithm", Str, "SYMMETRIC_DEFAULT"),
            RECIPIENT,
            DRY_RUN,
            DRY_RUN_MODIFIERS,
        ],
        Op::ReEncrypt => specs![
            req(
                "ciphertext-blob",
                Blob,
                concat!("The ciphertext: ", blob_forms!()),
            ),
            opt("source-encryption-context", Map, "k=v,… or JSON"),
            opt("source-key-id", Str, "Must be the ciphertext's key"),
            req("destination-key-id", Str, "The key to re-encrypt under"),
            opt("destination-encryption-context", Map, "k=v,… or JSON"),
            opt("source-encryption-algorithm", Str, "SYMMETRIC_DEFAULT"),
            opt("destination-encryption-algorithm", Str, "SYMMETRIC_DEFAULT"),
            GRANT_TOKENS,
            DRY_RUN,
            DRY_RUN_MODIFIERS,
        ],
        Op::GenerateDataKey => GENERATE_DATA_KEY,
        Op::GenerateDataKeyWithoutPlaintext => GENERATE_DATA_KEY_WITHOUT_PLAINTEXT,
        Op::GenerateDataKeyPair => specs![
            CONTEXT,
            KEY_ID,
            KEY_PAIR_SPEC,
            GRANT_TOKENS,
            RECIPIENT,
            DRY_RUN,
        ],
        Op::GenerateDataKeyPairWithoutPlaintext => {
            specs![CONTEXT, KEY_ID, KEY_PAIR_SPEC, GRANT_TOKENS, DRY_RUN]
        }
        Op::GenerateRandom => specs![
            opt("number-of-bytes", Int, "1-1024"),
            opt("custom-key-store-id", Str, "Draw from this store's cluster",),
            RECIPIENT,
        ],
        Op::EncryptBatch
        | Op::DecryptBatch
        | Op::GenerateDataKeyBatch
        | Op::GenerateDataKeyWithoutPlaintextBatch => specs![ITEMS],
        Op::GenerateMac => specs![
            req(
                "message",
                SecretBlob,
                concat!("The message: ", blob_forms!()),
            ),
            KEY_ID,
            req("mac-algorithm", Str, "The key's: HMAC_SHA_224/256/384/512"),
            GRANT_TOKENS,
            DRY_RUN,
        ],
        Op::Sign => specs![
            KEY_ID,
            SIGN_MESSAGE,
            MESSAGE_TYPE,
            GRANT_TOKENS,
            SIGNING_ALGORITHM,
            DRY_RUN,
        ],
        Op::Verify => specs![
            KEY_ID,
            SIGN_MESSAGE,
            MESSAGE_TYPE,
            req(
                "signature",
                Blob,
                concat!("The signature: ", blob_forms!())
            ),
            SIGNING_ALGORITHM,
            GRANT_TOKENS,
            DRY_RUN,
        ],
        Op::GetPublicKey => specs![KEY_ID, GRANT_TOKENS],
        Op::DeriveSharedSecret => specs![
            KEY_ID,
            req("key-agreement-algorithm", Str, "ECDH"),
            req(
                "public-key",
                Blob,
                "The other party's public key, DER SPKI (fileb://…)"
            ),
            GRANT_TOKENS,
            DRY_RUN,
            RECIPIENT,
        ],
        Op::VerifyMac => specs![
            req(
                "message",
                SecretBlob,
                concat!("The message: ", blob_forms!()),
            ),
            KEY_ID,
            req("mac-algorithm", Str, "The key's: HMAC_SHA_224/256/384/512"),
            req("mac", Blob, concat!("The MAC: ", blob_forms!())),
            GRANT_TOKENS,
            DRY_RUN,
        ],
        Op::CreateCluster
        | Op::DescribeClusters
        | Op::DeleteCluster
        | Op::CreateHsm
        | Op::DeleteHsm
        | Op::InitializeCluster
        | Op::InitializeClusterWithNewCa
        | Op::ActivateCluster
        | Op::ModifyCluster
        | Op::ModifyBackupAttributes
        | Op::TagHsmResource
        | Op::UntagHsmResource
        | Op::ListHsmTags
        | Op::CreateBackup
        | Op::DescribeBackups
        | Op::CopyBackupToRegion
        | Op::DeleteBackup
        | Op::CreateUser
        | Op::DeleteUser
        | Op::ChangePassword
        | Op::ListUsers
        | Op::Login
        | Op::Logout
        | Op::ListKeyObjects
        | Op::DeleteKeyObject
        | Op::AuditLog
        | Op::InjectFault
        | Op::RestoreBackup
        | Op::ListFaults => return None,
    })
}

/// Default member values of a verb (filled when the flag is absent).
pub(crate) fn defaults(op: Op) -> &'static [(&'static str, u64)] {
    match op {
        Op::WaitForConnection => &[("TimeoutMillis", 30_000)],
        _ => &[],
    }
}

/// The flags of a refused operation's verb: all of `aws kms <verb>`'s, so that an AWS-shaped
/// line parses and reaches the server, which answers with AWS's exception (the server reads
/// only the key; the other members are parsed as the AWS CLI parses them, then left out).
pub(crate) fn refused_args(r: Refused) -> &'static [ArgSpec] {
    match r {
        Refused::UpdatePrimaryRegion => specs![
            KEY_ID,
            req(
                "primary-region",
                Str,
                "The Region of the replica to make primary"
            ),
        ],
        Refused::ReplicateKey => specs![
            KEY_ID,
            req("replica-region", Str, "The Region of the replica"),
            opt("policy", Str, "Key policy document (file://policy.json)"),
            BYPASS,
            opt("description", Str, "Description"),
            opt("tags", Tags, "TagKey=k,TagValue=v …"),
        ],
    }
}
