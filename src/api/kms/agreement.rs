//! DeriveSharedSecret: the request and response of ECDH key agreement with a KEY_AGREEMENT
//! key, with AWS's member names.

use super::*;
use crate::types::KeyAgreementAlgorithm;

/// DeriveSharedSecret.
#[derive(Debug, Default, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "PascalCase", default)]
pub struct DeriveSharedSecretRequest {
    /// Key id, key ARN, alias name or alias ARN of a KEY_AGREEMENT key.
    pub key_id: String,
    /// Required: ECDH.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_agreement_algorithm: Option<KeyAgreementAlgorithm>,
    /// The other party's public key: DER SubjectPublicKeyInfo of the key's curve.
    #[serde(with = "blob")]
    pub public_key: Vec<u8>,
    /// Grant tokens (shape-checked).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub grant_tokens: Vec<String>,
    /// Check access and parameters without deriving.
    pub dry_run: bool,
}

/// DeriveSharedSecret response (`CiphertextForRecipient` is AWS's answer to a `Recipient`,
/// which kmscks refuses).
#[derive(Debug, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "PascalCase")]
pub struct DeriveSharedSecretResponse {
    /// Key ARN.
    pub key_id: std::sync::Arc<str>,
    /// The raw shared secret (the x coordinate of the shared point); a secret: never logged.
    #[serde(with = "blob::secret")]
    pub shared_secret: crate::secret::SecretBytes,
    /// ECDH.
    pub key_agreement_algorithm: KeyAgreementAlgorithm,
    /// Where the key's material came from.
    pub key_origin: Origin,
}
