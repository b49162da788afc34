//! Requests and responses of the KMS operations, with AWS's JSON member names, so that the
//! socket, C and HTTP layers can serialise them unchanged; and [`Refused`], the one list of the
//! `aws kms` operations kmscks refuses. Below the operation table (`crate::ops`), which names
//! these types.

use serde::{Deserialize, Serialize};

use crate::secret::Password;
use crate::types::{
    ConnectionErrorCode, ConnectionState, CustomKeyStoreType, EncryptionAlgorithm, KeyManager,
    KeySpec, KeyState, KeyUsage, Origin, PolicyAction, Timestamp,
};

/// An empty response (`{}`).
#[derive(
    Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, bincode::Encode, bincode::Decode,
)]
pub struct Empty {}

/// CreateCustomKeyStore.
#[derive(Debug, Default, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "PascalCase", default)]
pub struct CreateCustomKeyStoreRequest {
    /// Unique name.
    pub custom_key_store_name: String,
    /// Backing cluster.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cloud_hsm_cluster_id: Option<String>,
    /// The cluster's trust anchor (PEM).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trust_anchor_certificate: Option<String>,
    /// kmsuser's current password.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_store_password: Option<Password>,
    /// `AWS_CLOUDHSM` (default) or `EXTERNAL_KEY_STORE` (refused).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_key_store_type: Option<CustomKeyStoreType>,
}

/// CreateCustomKeyStore response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "PascalCase")]
pub struct CreateCustomKeyStoreResponse {
    /// The new (or identical existing) store's id.
    pub custom_key_store_id: String,
}

/// A request that names one custom key store (Connect, Disconnect, Delete).
#[derive(
    Clone, Debug, Default, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode,
)]
#[serde(rename_all = "PascalCase")]
pub struct CustomKeyStoreIdRequest {
    /// The store.
    pub custom_key_store_id: String,
}

/// DescribeCustomKeyStores.
#[derive(
    Clone, Debug, Default, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode,
)]
#[serde(rename_all = "PascalCase", default)]
pub struct DescribeCustomKeyStoresRequest {
    /// Only this store.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_key_store_id: Option<String>,
    /// Only the store with this name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_key_store_name: Option<String>,
    /// Page size, within [`LIST_LIMIT`](crate::types::limits::LIST_LIMIT).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// From a previous `NextMarker`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub marker: Option<String>,
}

/// One entry of DescribeCustomKeyStores.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "PascalCase")]
pub struct CustomKeyStoreEntry {
    /// Id.
    pub custom_key_store_id: String,
    /// Name.
    pub custom_key_store_name: String,
    /// Backing cluster.
    pub cloud_hsm_cluster_id: String,
    /// Trust anchor (PEM).
    pub trust_anchor_certificate: String,
    /// Connection state.
    pub connection_state: ConnectionState,
    /// Only while FAILED.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection_error_code: Option<ConnectionErrorCode>,
    /// When it was created.
    pub creation_date: Timestamp,
    /// Always `AWS_CLOUDHSM`.
    pub custom_key_store_type: CustomKeyStoreType,
}

/// DescribeCustomKeyStores response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeCustomKeyStoresResponse {
    /// The stores.
    pub custom_key_stores: Vec<CustomKeyStoreEntry>,
    /// Where the next page starts, when truncated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_marker: Option<String>,
    /// Whether there are more.
    pub truncated: bool,
}

/// UpdateCustomKeyStore.
#[derive(Debug, Default, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "PascalCase", default)]
pub struct UpdateCustomKeyStoreRequest {
    /// The store.
    pub custom_key_store_id: String,
    /// New name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_custom_key_store_name: Option<String>,
    /// kmsuser's current password.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_store_password: Option<Password>,
    /// A related cluster to move to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cloud_hsm_cluster_id: Option<String>,
}

/// A tag.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "PascalCase")]
pub struct Tag {
    /// Key, [`TAG_KEY_LEN`](crate::types::limits::TAG_KEY_LEN) characters.
    pub tag_key: String,
    /// Value, [`TAG_VALUE_LEN`](crate::types::limits::TAG_VALUE_LEN) characters.
    pub tag_value: String,
}

/// CreateKey.
#[derive(
    Clone, Debug, Default, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode,
)]
#[serde(rename_all = "PascalCase", default)]
pub struct CreateKeyRequest {
    /// Key policy (default policy when absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// Description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Must be absent or ENCRYPT_DECRYPT in kmscks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_usage: Option<KeyUsage>,
    /// Deprecated twin of KeySpec.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer_master_key_spec: Option<KeySpec>,
    /// Must be absent or SYMMETRIC_DEFAULT in kmscks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_spec: Option<KeySpec>,
    /// AWS_KMS (default) or AWS_CLOUDHSM (with a store id).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<Origin>,
    /// The custom key store to create the key in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_key_store_id: Option<String>,
    /// Skip the lockout safety check.
    pub bypass_policy_lockout_safety_check: bool,
    /// Tags.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Tag>,
    /// Must be absent or false in kmscks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub multi_region: Option<bool>,
}

/// KeyMetadata, as DescribeKey and CreateKey return it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "PascalCase")]
pub struct KeyMetadata {
    /// Account.
    #[serde(rename = "AWSAccountId")]
    pub aws_account_id: String,
    /// Key id.
    pub key_id: String,
    /// Key ARN.
    pub arn: String,
    /// When it was created.
    pub creation_date: Timestamp,
    /// True only when KeyState is Enabled.
    pub enabled: bool,
    /// Description.
    pub description: String,
    /// Usage.
    pub key_usage: KeyUsage,
    /// State.
    pub key_state: KeyState,
    /// Only while PendingDeletion.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deletion_date: Option<Timestamp>,
    /// Origin.
    pub origin: Origin,
    /// Store, for custom key store keys.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_key_store_id: Option<String>,
    /// The store's cluster, for custom key store keys.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cloud_hsm_cluster_id: Option<String>,
    /// CUSTOMER.
    pub key_manager: KeyManager,
    /// Deprecated twin of KeySpec.
    pub customer_master_key_spec: KeySpec,
    /// Spec.
    pub key_spec: KeySpec,
    /// `["SYMMETRIC_DEFAULT"]`.
    pub encryption_algorithms: Vec<EncryptionAlgorithm>,
    /// False.
    pub multi_region: bool,
}

/// CreateKey / DescribeKey response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "PascalCase")]
pub struct KeyMetadataResponse {
    /// The key.
    pub key_metadata: KeyMetadata,
}

/// A request that names one key (DescribeKey, EnableKey, DisableKey, CancelKeyDeletion, the
/// rotation operations…).
#[derive(
    Clone, Debug, Default, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode,
)]
#[serde(rename_all = "PascalCase", default)]
pub struct KeyIdRequest {
    /// The key.
    pub key_id: String,
    /// Grant tokens (accepted, checked for shape).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub grant_tokens: Vec<String>,
}

/// A response that names one key by ARN (CancelKeyDeletion).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "PascalCase")]
pub struct KeyIdResponse {
    /// The key ARN.
    pub key_id: String,
}

/// ListKeys / ListAliases-style paging.
#[derive(
    Clone, Debug, Default, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode,
)]
#[serde(rename_all = "PascalCase", default)]
pub struct ListRequest {
    /// Only for this key (ListAliases, ListResourceTags, ListKeyPolicies).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// Page size.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// From a previous `NextMarker`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub marker: Option<String>,
}

/// One entry of ListKeys.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "PascalCase")]
pub struct KeyListEntry {
    /// Key id.
    pub key_id: String,
    /// Key ARN.
    pub key_arn: String,
}

/// ListKeys response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "PascalCase")]
pub struct ListKeysResponse {
    /// Keys.
    pub keys: Vec<KeyListEntry>,
    /// Next page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_marker: Option<String>,
    /// More to come.
    pub truncated: bool,
}

/// UpdateKeyDescription.
#[derive(
    Clone, Debug, Default, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode,
)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateKeyDescriptionRequest {
    /// The key.
    pub key_id: String,
    /// New description.
    pub description: String,
}

/// ScheduleKeyDeletion.
#[derive(
    Clone, Debug, Default, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode,
)]
#[serde(rename_all = "PascalCase", default)]
pub struct ScheduleKeyDeletionRequest {
    /// The key.
    pub key_id: String,
    /// Days within [`PENDING_WINDOW_DAYS`](crate::types::limits::PENDING_WINDOW_DAYS), default
    /// [`DEFAULT_PENDING_WINDOW_DAYS`](crate::types::limits::DEFAULT_PENDING_WINDOW_DAYS).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_window_in_days: Option<u32>,
}

/// ScheduleKeyDeletion response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "PascalCase")]
pub struct ScheduleKeyDeletionResponse {
    /// Key ARN.
    pub key_id: String,
    /// When it will be deleted.
    pub deletion_date: Timestamp,
    /// PendingDeletion.
    pub key_state: KeyState,
    /// The waiting period.
    pub pending_window_in_days: u32,
}

/// CreateAlias / UpdateAlias.
#[derive(
    Clone, Debug, Default, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode,
)]
#[serde(rename_all = "PascalCase")]
pub struct AliasRequest {
    /// `alias/…`.
    pub alias_name: String,
    /// The key (id or ARN).
    pub target_key_id: String,
}

/// DeleteAlias.
#[derive(
    Clone, Debug, Default, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode,
)]
#[serde(rename_all = "PascalCase")]
pub struct DeleteAliasRequest {
    /// `alias/…`.
    pub alias_name: String,
}

/// One entry of ListAliases.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "PascalCase")]
pub struct AliasListEntry {
    /// Name.
    pub alias_name: String,
    /// ARN.
    pub alias_arn: String,
    /// Key id.
    pub target_key_id: String,
    /// Created.
    pub creation_date: Timestamp,
    /// Last re-pointed.
    pub last_updated_date: Timestamp,
}

/// ListAliases response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "PascalCase")]
pub struct ListAliasesResponse {
    /// Aliases.
    pub aliases: Vec<AliasListEntry>,
    /// Next page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_marker: Option<String>,
    /// More to come.
    pub truncated: bool,
}

/// TagResource.
#[derive(
    Clone, Debug, Default, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode,
)]
#[serde(rename_all = "PascalCase")]
pub struct TagResourceRequest {
    /// The key.
    pub key_id: String,
    /// Tags to add or overwrite.
    pub tags: Vec<Tag>,
}

/// UntagResource.
#[derive(
    Clone, Debug, Default, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode,
)]
#[serde(rename_all = "PascalCase")]
pub struct UntagResourceRequest {
    /// The key.
    pub key_id: String,
    /// Tag keys to remove.
    pub tag_keys: Vec<String>,
}

/// ListResourceTags response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "PascalCase")]
pub struct ListResourceTagsResponse {
    /// Tags.
    pub tags: Vec<Tag>,
    /// Next page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_marker: Option<String>,
    /// More to come.
    pub truncated: bool,
}

/// PutKeyPolicy.
#[derive(
    Clone, Debug, Default, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode,
)]
#[serde(rename_all = "PascalCase", default)]
pub struct PutKeyPolicyRequest {
    /// The key.
    pub key_id: String,
    /// Only `default`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_name: Option<String>,
    /// The policy document.
    pub policy: String,
    /// Skip the lockout safety check.
    pub bypass_policy_lockout_safety_check: bool,
}

/// GetKeyPolicy.
#[derive(
    Clone, Debug, Default, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode,
)]
#[serde(rename_all = "PascalCase", default)]
pub struct GetKeyPolicyRequest {
    /// The key.
    pub key_id: String,
    /// Only `default`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_name: Option<String>,
}

/// GetKeyPolicy response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "PascalCase")]
pub struct GetKeyPolicyResponse {
    /// The policy document.
    pub policy: String,
    /// `default`.
    pub policy_name: String,
}

/// ListKeyPolicies response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "PascalCase")]
pub struct ListKeyPoliciesResponse {
    /// `["default"]`.
    pub policy_names: Vec<String>,
    /// Always false.
    pub truncated: bool,
}

// ---- Cryptographic operations (spec §4.4) ------------------------------------------------------

/// Serde for binary members: standard base64 (with padding) in JSON, as AWS writes blobs; raw
/// bytes in binary encodings.
pub mod blob {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serialises bytes.
    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&STANDARD.encode(bytes))
        } else {
            s.serialize_bytes(bytes)
        }
    }

    /// Deserialises bytes.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        if d.is_human_readable() {
            let text = String::deserialize(d)?;
            STANDARD
                .decode(text.as_bytes())
                .map_err(|e| D::Error::custom(format!("invalid base64: {e}")))
        } else {
            serde_bytes_vec(d)
        }
    }

    fn serde_bytes_vec<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
                Ok(v)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Vec<u8>, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 16));
                while let Some(b) = seq.next_element::<u8>()? {
                    out.push(b);
                }
                Ok(out)
            }
        }
        d.deserialize_byte_buf(V)
    }

    /// The same, for secret bytes (plaintexts, data keys).
    pub mod secret {
        use serde::{Deserializer, Serializer};

        use crate::secret::SecretBytes;

        /// Serialises secret bytes.
        pub fn serialize<S: Serializer>(bytes: &SecretBytes, s: S) -> Result<S::Ok, S::Error> {
            super::serialize(bytes.expose(), s)
        }

        /// Deserialises secret bytes.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SecretBytes, D::Error> {
            super::deserialize(d).map(SecretBytes::new)
        }

        /// For optional secret members.
        pub mod option {
            use serde::{Deserialize, Deserializer, Serialize, Serializer};

            use crate::secret::SecretBytes;

            #[derive(Serialize, Deserialize, bincode::Encode, bincode::Decode)]
            struct Wrap(#[serde(with = "super")] SecretBytes);

            /// Serialises optional secret bytes.
            pub fn serialize<S: Serializer>(
                bytes: &Option<SecretBytes>,
                s: S,
            ) -> Result<S::Ok, S::Error> {
                match bytes {
                    Some(b) => s.serialize_some(&WrapRef(b)),
                    None => s.serialize_none(),
                }
            }

            struct WrapRef<'a>(&'a SecretBytes);
            impl Serialize for WrapRef<'_> {
                fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                    super::serialize(self.0, s)
                }
            }

            /// Deserialises optional secret bytes.
            pub fn deserialize<'de, D: Deserializer<'de>>(
                d: D,
            ) -> Result<Option<SecretBytes>, D::Error> {
                Ok(Option::<Wrap>::deserialize(d)?.map(|w| w.0))
            }
        }
    }
}

pub use crate::types::EncryptionContext;

/// Encrypt.
#[derive(Debug, Default, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "PascalCase", default)]
pub struct EncryptRequest {
    /// Key id, key ARN, alias name or alias ARN.
    pub key_id: String,
    /// [`PLAINTEXT_LEN`](crate::types::limits::PLAINTEXT_LEN) bytes.
    #[serde(with = "blob::secret")]
    pub plaintext: crate::secret::SecretBytes,
    /// Bound to the ciphertext as AAD.
    #[serde(skip_serializing_if = "EncryptionContext::is_empty")]
    pub encryption_context: EncryptionContext,
    /// Grant tokens (shape-checked).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub grant_tokens: Vec<String>,
    /// Only SYMMETRIC_DEFAULT.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encryption_algorithm: Option<EncryptionAlgorithm>,
    /// Check access and parameters without encrypting.
    pub dry_run: bool,
}

/// Encrypt response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "PascalCase")]
pub struct EncryptResponse {
    /// The ciphertext blob.
    #[serde(with = "blob")]
    pub ciphertext_blob: Vec<u8>,
    /// Key ARN.
    pub key_id: std::sync::Arc<str>,
    /// SYMMETRIC_DEFAULT.
    pub encryption_algorithm: EncryptionAlgorithm,
}

/// Decrypt.
#[derive(
    Clone, Debug, Default, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode,
)]
#[serde(rename_all = "PascalCase", default)]
pub struct DecryptRequest {
    /// The blob.
    #[serde(with = "blob")]
    pub ciphertext_blob: Vec<u8>,
    /// The context it was encrypted with.
    #[serde(skip_serializing_if = "EncryptionContext::is_empty")]
    pub encryption_context: EncryptionContext,
    /// Grant tokens.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub grant_tokens: Vec<String>,
    /// Optional: must be the blob's key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// Only SYMMETRIC_DEFAULT.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encryption_algorithm: Option<EncryptionAlgorithm>,
    /// Check access and parameters without decrypting.
    pub dry_run: bool,
}

/// Decrypt response.
#[derive(Debug, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "PascalCase")]
pub struct DecryptResponse {
    /// Key ARN.
    pub key_id: std::sync::Arc<str>,
    /// The plaintext.
    #[serde(with = "blob::secret")]
    pub plaintext: crate::secret::SecretBytes,
    /// SYMMETRIC_DEFAULT.
    pub encryption_algorithm: EncryptionAlgorithm,
}

/// ReEncrypt.
#[derive(
    Clone, Debug, Default, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode,
)]
#[serde(rename_all = "PascalCase", default)]
pub struct ReEncryptRequest {
    /// The blob.
    #[serde(with = "blob")]
    pub ciphertext_blob: Vec<u8>,
    /// Its context.
    #[serde(skip_serializing_if = "EncryptionContext::is_empty")]
    pub source_encryption_context: EncryptionContext,
    /// Optional: must be the blob's key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_key_id: Option<String>,
    /// The key to re-encrypt under.
    pub destination_key_id: String,
    /// The new context.
    #[serde(skip_serializing_if = "EncryptionContext::is_empty")]
    pub destination_encryption_context: EncryptionContext,
    /// Only SYMMETRIC_DEFAULT.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_encryption_algorithm: Option<EncryptionAlgorithm>,
    /// Only SYMMETRIC_DEFAULT.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination_encryption_algorithm: Option<EncryptionAlgorithm>,
    /// Grant tokens.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub grant_tokens: Vec<String>,
    /// Check access and parameters without re-encrypting.
    pub dry_run: bool,
}

/// ReEncrypt response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "PascalCase")]
pub struct ReEncryptResponse {
    /// The new blob.
    #[serde(with = "blob")]
    pub ciphertext_blob: Vec<u8>,
    /// Source key ARN.
    pub source_key_id: std::sync::Arc<str>,
    /// Destination key ARN.
    pub key_id: std::sync::Arc<str>,
    /// SYMMETRIC_DEFAULT.
    pub source_encryption_algorithm: EncryptionAlgorithm,
    /// SYMMETRIC_DEFAULT.
    pub destination_encryption_algorithm: EncryptionAlgorithm,
}

/// GenerateDataKey / GenerateDataKeyWithoutPlaintext.
#[derive(
    Clone, Debug, Default, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode,
)]
#[serde(rename_all = "PascalCase", default)]
pub struct GenerateDataKeyRequest {
    /// Key id, key ARN, alias name or alias ARN.
    pub key_id: String,
    /// AES_256 or AES_128 (exactly one of this and NumberOfBytes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_spec: Option<crate::types::DataKeySpec>,
    /// Within [`NUMBER_OF_BYTES`](crate::types::limits::NUMBER_OF_BYTES).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub number_of_bytes: Option<u32>,
    /// Bound to the ciphertext as AAD.
    #[serde(skip_serializing_if = "EncryptionContext::is_empty")]
    pub encryption_context: EncryptionContext,
    /// Grant tokens.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub grant_tokens: Vec<String>,
    /// Check access and parameters without generating.
    pub dry_run: bool,
}

/// GenerateDataKey / GenerateDataKeyWithoutPlaintext response.
#[derive(Debug, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "PascalCase")]
pub struct GenerateDataKeyResponse {
    /// The data key encrypted under the KMS key.
    #[serde(with = "blob")]
    pub ciphertext_blob: Vec<u8>,
    /// The data key (absent for WithoutPlaintext).
    #[serde(
        with = "blob::secret::option",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub plaintext: Option<crate::secret::SecretBytes>,
    /// Key ARN.
    pub key_id: std::sync::Arc<str>,
}

/// GenerateRandom.
#[derive(
    Clone, Debug, Default, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode,
)]
#[serde(rename_all = "PascalCase", default)]
pub struct GenerateRandomRequest {
    /// Within [`NUMBER_OF_BYTES`](crate::types::limits::NUMBER_OF_BYTES).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub number_of_bytes: Option<u32>,
    /// Draw from this store's cluster.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_key_store_id: Option<String>,
}

/// GenerateRandom response.
#[derive(Debug, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "PascalCase")]
pub struct GenerateRandomResponse {
    /// The random bytes.
    #[serde(with = "blob::secret")]
    pub plaintext: crate::secret::SecretBytes,
}

macro_rules! refused_operations {
    ($($name:ident,)*) => {
        /// An `aws kms` operation kmscks accepts by name but refuses (`kms::unsupported` says
        /// with which exception).
        #[derive(
            Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, bincode::Encode,
            bincode::Decode,
        )]
        #[allow(missing_docs)] // AWS operation names
        pub enum Refused {
            $($name,)*
        }

        impl Refused {
            /// Every refused operation, in table order (the CLI has one verb for each).
            pub const ALL: &'static [Refused] = &[$(Refused::$name),*];

            /// The AWS operation name, e.g. `EnableKeyRotation`.
            pub const fn name(self) -> &'static str {
                match self { $(Refused::$name => stringify!($name),)* }
            }

            /// The policy action AWS checks before refusing, e.g. `kms:EnableKeyRotation`.
            pub const fn action(self) -> PolicyAction {
                match self {
                    $(Refused::$name => PolicyAction::from_table(concat!("kms:", stringify!($name))),)*
                }
            }
        }
    };
}

// The operations kmscks refuses: the one list of them (the CLI's verbs derive from it).
refused_operations! {
    EnableKeyRotation,
    DisableKeyRotation,
    RotateKeyOnDemand,
    GetParametersForImport,
    ImportKeyMaterial,
    DeleteImportedKeyMaterial,
    GenerateDataKeyPair,
    GenerateDataKeyPairWithoutPlaintext,
    ReplicateKey,
    Sign,
    Verify,
    GenerateMac,
    VerifyMac,
    GetPublicKey,
}

/// GetKeyRotationStatus response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "PascalCase")]
pub struct KeyRotationStatusResponse {
    /// Always false: kmscks does not rotate key material.
    pub key_rotation_enabled: bool,
}

/// A refused operation on a key (rotation, import, key pairs, signing, MACs, replication).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "PascalCase")]
pub struct RefusedRequest {
    /// Which operation.
    pub operation: Refused,
    /// The key.
    pub key_id: String,
}

/// The KMS event log (what CloudTrail's LookupEvents would show).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "PascalCase")]
pub struct LookupEventsResponse {
    /// Events, oldest first.
    pub events: Vec<TrailEvent>,
}

/// A batch request (beyond AWS): many requests of one operation in one call.
#[derive(Debug, Default, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "PascalCase")]
pub struct BatchRequest<T> {
    /// The requests, answered in order.
    pub items: Vec<T>,
}

/// One answer of a batch: the response, or the error for that item alone.
#[derive(Debug, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
pub enum BatchItem<T> {
    /// The item succeeded.
    Ok(T),
    /// The item failed.
    Err(ErrorBody),
}

/// An error as the wire carries it: the AWS exception name and message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
pub struct ErrorBody {
    /// AWS exception name.
    #[serde(rename = "__type")]
    pub kind: String,
    /// Message.
    pub message: String,
}

impl From<&crate::KmsError> for ErrorBody {
    fn from(e: &crate::KmsError) -> ErrorBody {
        ErrorBody {
            kind: e.aws_name().to_owned(),
            message: e.message().to_owned(),
        }
    }
}

impl From<ErrorBody> for crate::KmsError {
    fn from(b: ErrorBody) -> crate::KmsError {
        let kind = crate::ErrorKind::from_aws_name(&b.kind)
            .unwrap_or(crate::ErrorKind::KMSInternalException);
        crate::KmsError::new(kind, b.message)
    }
}

/// A batch response.
#[derive(Debug, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "PascalCase")]
pub struct BatchResponse<T> {
    /// One answer per request, in order.
    pub results: Vec<BatchItem<T>>,
}

impl<T> BatchResponse<T> {
    /// Builds a batch response from per-item results.
    pub fn from_results(results: Vec<crate::Result<T>>) -> BatchResponse<T> {
        BatchResponse {
            results: results
                .into_iter()
                .map(|r| match r {
                    Ok(v) => BatchItem::Ok(v),
                    Err(e) => BatchItem::Err(ErrorBody::from(&e)),
                })
                .collect(),
        }
    }
}

/// WaitForConnection (kmscks): waits until the store is neither CONNECTING nor DISCONNECTING.
#[derive(
    Clone, Debug, Default, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode,
)]
#[serde(rename_all = "PascalCase")]
pub struct WaitForConnectionRequest {
    /// The store.
    pub custom_key_store_id: String,
    /// How long to wait at most, in milliseconds.
    pub timeout_millis: u64,
}

/// One entry of the KMS event log (what CloudTrail records for KMS). Never holds secrets.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
pub struct TrailEvent {
    /// Time.
    pub time: Timestamp,
    /// Operation name, e.g. `CreateKey`, or `DeleteKey` for the deletion at window end.
    pub event_name: String,
    /// The principal, or `AWS Internal` for service events.
    pub principal: String,
    /// Request parameters and additional event data as JSON text (no secrets).
    pub detail: String,
}
