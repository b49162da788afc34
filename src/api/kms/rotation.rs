//! Requests and responses of the automatic key rotation operations (EnableKeyRotation,
//! DisableKeyRotation, GetKeyRotationStatus), with AWS's member names, so that every layer
//! serialises them unchanged.

use super::*;

/// EnableKeyRotation request.
#[derive(
    Clone, Debug, Default, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode,
)]
#[serde(rename_all = "PascalCase", default)]
pub struct EnableKeyRotationRequest {
    /// The key (key id or key ARN).
    pub key_id: String,
    /// Days between automatic rotations (`types::limits::ROTATION_PERIOD_DAYS`; default
    /// `DEFAULT_ROTATION_PERIOD_DAYS`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotation_period_in_days: Option<u32>,
}

/// GetKeyRotationStatus response: AWS's members, the optional ones present when they apply.
#[derive(
    Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, bincode::Encode, bincode::Decode,
)]
#[serde(rename_all = "PascalCase")]
pub struct KeyRotationStatusResponse {
    /// Whether automatic rotation is enabled (false while the key is pending deletion).
    pub key_rotation_enabled: bool,
    /// The key ARN.
    pub key_id: String,
    /// Days between automatic rotations, while enabled.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub rotation_period_in_days: Option<u32>,
    /// When the next automatic rotation is due, while enabled.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub next_rotation_date: Option<Timestamp>,
    /// When an on-demand rotation in progress began (never: kmscks has none in progress).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub on_demand_rotation_start_date: Option<Timestamp>,
}

/// RotateKeyOnDemand response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "PascalCase")]
pub struct RotateKeyOnDemandResponse {
    /// The key id of the key rotated.
    pub key_id: String,
}

/// ListKeyRotations request.
#[derive(
    Clone, Debug, Default, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode,
)]
#[serde(rename_all = "PascalCase", default)]
pub struct ListKeyRotationsRequest {
    /// The key (key id or key ARN).
    pub key_id: String,
    /// `ROTATIONS_ONLY` (the default) or `ALL_KEY_MATERIAL` (the key's first material too).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub include_key_material: Option<String>,
    /// Page size (1–1000, default 100).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// From a previous `NextMarker`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub marker: Option<String>,
}

/// One entry of ListKeyRotations: a material version of the key, AWS's members for a key whose
/// material KMS generated (the import members never apply).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "PascalCase")]
pub struct RotationsListEntry {
    /// The key id.
    pub key_id: String,
    /// The material version's identifier (64 hex digits).
    pub key_material_id: String,
    /// `CURRENT` for the newest material, `NON_CURRENT` for the others.
    pub key_material_state: String,
    /// When the rotation happened (for the first material: when the key was created).
    pub rotation_date: Timestamp,
    /// `AUTOMATIC` or `ON_DEMAND` (absent for the first material).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub rotation_type: Option<RotationType>,
}

/// ListKeyRotations response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "PascalCase")]
pub struct ListKeyRotationsResponse {
    /// The rotations, oldest first.
    pub rotations: Vec<RotationsListEntry>,
    /// Set when more follow.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub next_marker: Option<String>,
    /// Whether more follow.
    pub truncated: bool,
}
