//! GenerateDataKeyPair and GenerateDataKeyPairWithoutPlaintext: the request and response of
//! the data key pair operations, with AWS's member names (in AWS's model order). Apart from
//! `data` (symmetric data keys), because a pair's members (spec, PKCS#8 private key, SPKI
//! public key) are theirs alone.

use super::*;
use crate::types::DataKeyPairSpec;

/// GenerateDataKeyPair / GenerateDataKeyPairWithoutPlaintext (AWS's `Recipient`, of the first
/// only, is refused by name: see `protocol::unhonoured`).
#[derive(
    Clone, Debug, Default, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode,
)]
#[serde(rename_all = "PascalCase", default)]
pub struct GenerateDataKeyPairRequest {
    /// Bound to the encrypted private key as AAD.
    #[serde(skip_serializing_if = "EncryptionContext::is_empty")]
    pub encryption_context: EncryptionContext,
    /// Key id, key ARN, alias name or alias ARN of a symmetric encryption key of the default
    /// key store.
    pub key_id: String,
    /// Required: the type of pair.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_pair_spec: Option<DataKeyPairSpec>,
    /// Grant tokens (shape-checked).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub grant_tokens: Vec<String>,
    /// Check access and parameters without generating a pair.
    pub dry_run: bool,
}

/// GenerateDataKeyPair / GenerateDataKeyPairWithoutPlaintext response.
#[derive(Debug, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "PascalCase")]
pub struct GenerateDataKeyPairResponse {
    /// The private key encrypted under the KMS key: a ciphertext Decrypt takes.
    #[serde(with = "blob")]
    pub private_key_ciphertext_blob: Vec<u8>,
    /// The private key, PKCS#8 DER (absent for WithoutPlaintext).
    #[serde(
        with = "blob::secret::option",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub private_key_plaintext: Option<crate::secret::SecretBytes>,
    /// The public key, DER SubjectPublicKeyInfo.
    #[serde(with = "blob")]
    pub public_key: Vec<u8>,
    /// ARN of the key that encrypted the private key.
    pub key_id: std::sync::Arc<str>,
    /// The type of pair.
    pub key_pair_spec: DataKeyPairSpec,
}
