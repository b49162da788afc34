//! GetKeyLastUsage's answer: the last successful cryptographic operation kmscks counted for a
//! key, and since when it counts.

use super::*;

/// GetKeyLastUsage response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "PascalCase")]
pub struct GetKeyLastUsageResponse {
    /// The key ARN.
    pub key_id: String,
    /// The last successful cryptographic operation since `TrackingStartDate`; absent when
    /// there was none.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub key_last_usage: Option<KeyLastUsage>,
    /// Since when kmscks records cryptographic use: when this instance opened the data
    /// directory (the record is kept in memory).
    pub tracking_start_date: Timestamp,
    /// When the key was created.
    pub key_creation_date: Timestamp,
}

/// GetKeyLastUsage's `KeyLastUsage`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "PascalCase")]
pub struct KeyLastUsage {
    /// The operation, e.g. `Encrypt`.
    pub operation: String,
    /// When: the end of the event-log interval that counted the call (at most
    /// `data_plane_event_interval` after it).
    pub timestamp: Timestamp,
}
