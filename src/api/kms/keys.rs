//! KMS key operations: keys, tags, aliases, key policies, listing and paging members.

use super::*;

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
    /// AWS_KMS (the default, also when a store id is given) or AWS_CLOUDHSM (required with a
    /// store id: without it a store id is `UnsupportedOperationException`, as on AWS).
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

/// KeyMetadata, as DescribeKey and CreateKey return it: its members in the order of AWS's
/// model, which is the order the aws CLI prints them in.
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
    /// When the imported material expires (`KEY_MATERIAL_EXPIRES` only).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub valid_to: Option<Timestamp>,
    /// Origin.
    pub origin: Origin,
    /// Store, for custom key store keys.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_key_store_id: Option<String>,
    /// The store's cluster, for custom key store keys.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cloud_hsm_cluster_id: Option<String>,
    /// Whether the imported material expires (Origin EXTERNAL keys with material only).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub expiration_model: Option<crate::types::ExpirationModel>,
    /// CUSTOMER.
    pub key_manager: KeyManager,
    /// Deprecated twin of KeySpec.
    pub customer_master_key_spec: KeySpec,
    /// Spec.
    pub key_spec: KeySpec,
    /// The encryption algorithms of an ENCRYPT_DECRYPT key (`["SYMMETRIC_DEFAULT"]` for a
    /// symmetric key); absent for other keys.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub encryption_algorithms: Vec<EncryptionAlgorithm>,
    /// The signing algorithms of a SIGN_VERIFY key; absent for other keys.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub signing_algorithms: Vec<crate::types::SigningAlgorithm>,
    /// The key agreement algorithms of a KEY_AGREEMENT key; absent for other keys.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub key_agreement_algorithms: Vec<crate::types::KeyAgreementAlgorithm>,
    /// False.
    pub multi_region: bool,
    /// The one MAC algorithm of an HMAC key; absent for other keys.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub mac_algorithms: Vec<crate::types::MacAlgorithm>,
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
