//! Custom key store operations: create, describe, update, delete, connect, disconnect, and
//! waiting for a connection attempt to settle (kmscks).

use super::*;

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
