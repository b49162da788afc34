//! GenerateMac and VerifyMac: the requests and responses of the HMAC key operations, with
//! AWS's member names. Apart from `data` (the symmetric operations), because their members
//! (message, MAC, algorithm) are theirs alone.

use super::*;
use crate::types::MacAlgorithm;

/// GenerateMac.
#[derive(Debug, Default, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "PascalCase", default)]
pub struct GenerateMacRequest {
    /// [`MESSAGE_LEN`](crate::types::limits::MESSAGE_LEN) bytes (a secret: never logged).
    #[serde(with = "blob::secret")]
    pub message: crate::secret::SecretBytes,
    /// Key id, key ARN, alias name or alias ARN of an HMAC key.
    pub key_id: String,
    /// Required: the key's one MAC algorithm.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac_algorithm: Option<MacAlgorithm>,
    /// Grant tokens (shape-checked).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub grant_tokens: Vec<String>,
    /// Check access and parameters without returning a MAC.
    pub dry_run: bool,
}

/// GenerateMac response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "PascalCase")]
pub struct GenerateMacResponse {
    /// The MAC.
    #[serde(with = "blob")]
    pub mac: Vec<u8>,
    /// The algorithm it was computed with.
    pub mac_algorithm: MacAlgorithm,
    /// Key ARN.
    pub key_id: std::sync::Arc<str>,
}

/// VerifyMac.
#[derive(Debug, Default, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "PascalCase", default)]
pub struct VerifyMacRequest {
    /// [`MESSAGE_LEN`](crate::types::limits::MESSAGE_LEN) bytes (a secret: never logged).
    #[serde(with = "blob::secret")]
    pub message: crate::secret::SecretBytes,
    /// Key id, key ARN, alias name or alias ARN of an HMAC key.
    pub key_id: String,
    /// Required: the key's one MAC algorithm.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac_algorithm: Option<MacAlgorithm>,
    /// [`MAC_LEN`](crate::types::limits::MAC_LEN) bytes: the MAC to verify.
    #[serde(with = "blob")]
    pub mac: Vec<u8>,
    /// Grant tokens (shape-checked).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub grant_tokens: Vec<String>,
    /// Check access and parameters without verifying.
    pub dry_run: bool,
}

/// VerifyMac response (a MAC that does not verify is `KMSInvalidMacException`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "PascalCase")]
pub struct VerifyMacResponse {
    /// Key ARN.
    pub key_id: std::sync::Arc<str>,
    /// Always true (false is an exception).
    pub mac_valid: bool,
    /// The algorithm it was verified with.
    pub mac_algorithm: MacAlgorithm,
}
