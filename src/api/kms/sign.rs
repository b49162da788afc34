//! Sign, Verify and GetPublicKey: the requests and responses of the asymmetric signing key
//! operations, with AWS's member names.

use super::*;
use crate::types::{MessageType, SigningAlgorithm};

/// Sign.
#[derive(Debug, Default, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "PascalCase", default)]
pub struct SignRequest {
    /// Key id, key ARN, alias name or alias ARN of a signing key.
    pub key_id: String,
    /// The message (RAW: up to 4096 bytes) or its digest (DIGEST); a secret: never logged.
    #[serde(with = "blob::secret")]
    pub message: crate::secret::SecretBytes,
    /// RAW (default) or DIGEST.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_type: Option<MessageType>,
    /// Grant tokens (shape-checked).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub grant_tokens: Vec<String>,
    /// Required: one of the key's signing algorithms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signing_algorithm: Option<SigningAlgorithm>,
    /// Check access and parameters without returning a signature.
    pub dry_run: bool,
}

/// Sign response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "PascalCase")]
pub struct SignResponse {
    /// Key ARN.
    pub key_id: std::sync::Arc<str>,
    /// The signature (DER for ECDSA).
    #[serde(with = "blob")]
    pub signature: Vec<u8>,
    /// The algorithm it was made with.
    pub signing_algorithm: SigningAlgorithm,
}

/// Verify.
#[derive(Debug, Default, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "PascalCase", default)]
pub struct VerifyRequest {
    /// Key id, key ARN, alias name or alias ARN of a signing key.
    pub key_id: String,
    /// The message or its digest, as for Sign.
    #[serde(with = "blob::secret")]
    pub message: crate::secret::SecretBytes,
    /// RAW (default) or DIGEST.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_type: Option<MessageType>,
    /// The signature to verify.
    #[serde(with = "blob")]
    pub signature: Vec<u8>,
    /// Required: the algorithm it was made with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signing_algorithm: Option<SigningAlgorithm>,
    /// Grant tokens (shape-checked).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub grant_tokens: Vec<String>,
    /// Check access and parameters without verifying.
    pub dry_run: bool,
}

/// Verify response (a signature that does not verify is `KMSInvalidSignatureException`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "PascalCase")]
pub struct VerifyResponse {
    /// Key ARN.
    pub key_id: std::sync::Arc<str>,
    /// Always true (false is an exception).
    pub signature_valid: bool,
    /// The algorithm it was verified with.
    pub signing_algorithm: SigningAlgorithm,
}

/// GetPublicKey response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "PascalCase")]
pub struct GetPublicKeyResponse {
    /// Key ARN.
    pub key_id: std::sync::Arc<str>,
    /// DER SubjectPublicKeyInfo.
    #[serde(with = "blob")]
    pub public_key: Vec<u8>,
    /// Deprecated twin of KeySpec.
    pub customer_master_key_spec: KeySpec,
    /// Spec.
    pub key_spec: KeySpec,
    /// SIGN_VERIFY, ENCRYPT_DECRYPT or KEY_AGREEMENT.
    pub key_usage: KeyUsage,
    /// The encryption algorithms of an ENCRYPT_DECRYPT key; absent for other keys.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub encryption_algorithms: Vec<crate::types::EncryptionAlgorithm>,
    /// The signing algorithms of a SIGN_VERIFY key; absent for other keys.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub signing_algorithms: Vec<SigningAlgorithm>,
    /// The key agreement algorithms of a KEY_AGREEMENT key; absent for other keys.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub key_agreement_algorithms: Vec<crate::types::KeyAgreementAlgorithm>,
}
