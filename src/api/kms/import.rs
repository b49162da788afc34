//! Requests and responses of the key material import operations (GetParametersForImport,
//! ImportKeyMaterial, DeleteImportedKeyMaterial), with AWS's member names, so that every layer
//! serialises them unchanged.

use super::*;
use crate::types::{ExpirationModel, ImportType, WrappingAlgorithm, WrappingKeySpec};

/// GetParametersForImport request. The algorithm and key spec are required by AWS; absent
/// ones are refused by name.
#[derive(
    Clone, Debug, Default, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode,
)]
#[serde(rename_all = "PascalCase", default)]
pub struct GetParametersForImportRequest {
    /// The key (key id or key ARN) of Origin EXTERNAL.
    pub key_id: String,
    /// How the material will be wrapped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wrapping_algorithm: Option<WrappingAlgorithm>,
    /// The RSA key the material will be wrapped under.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wrapping_key_spec: Option<WrappingKeySpec>,
}

/// GetParametersForImport response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "PascalCase")]
pub struct GetParametersForImportResponse {
    /// The key ARN.
    pub key_id: String,
    /// The token to send with the wrapped material (opaque; sealed by kmscks).
    #[serde(with = "blob")]
    pub import_token: Vec<u8>,
    /// The wrapping public key, DER SubjectPublicKeyInfo.
    #[serde(with = "blob")]
    pub public_key: Vec<u8>,
    /// When the token and public key stop being accepted.
    pub parameters_valid_to: Timestamp,
}

/// ImportKeyMaterial request.
#[derive(Debug, Default, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "PascalCase", default)]
pub struct ImportKeyMaterialRequest {
    /// The key (key id or key ARN) of Origin EXTERNAL.
    pub key_id: String,
    /// The token GetParametersForImport returned with the public key used.
    #[serde(with = "blob")]
    pub import_token: Vec<u8>,
    /// The key material wrapped under that public key.
    #[serde(with = "blob")]
    pub encrypted_key_material: Vec<u8>,
    /// When the material expires (required with `KEY_MATERIAL_EXPIRES`, the default model;
    /// refused with `KEY_MATERIAL_DOES_NOT_EXPIRE`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub valid_to: Option<Timestamp>,
    /// Whether the material expires.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expiration_model: Option<ExpirationModel>,
    /// The key's first material, or the same material again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub import_type: Option<ImportType>,
    /// The material the request reimports, when given: must be the key's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_material_id: Option<String>,
}

/// ImportKeyMaterial response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "PascalCase")]
pub struct KeyMaterialResponse {
    /// The key ARN.
    pub key_id: String,
    /// The material's identifier (64 hex digits).
    pub key_material_id: String,
}

/// DeleteImportedKeyMaterial response. Apart from [`KeyMaterialResponse`] because its
/// `KeyMaterialId` is optional, as in AWS's response: a key that never had material has none
/// to name (the call then changes nothing).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "PascalCase")]
pub struct DeleteImportedKeyMaterialResponse {
    /// The key ARN.
    pub key_id: String,
    /// The identifier (64 hex digits) of the material deleted, or of the material deleted
    /// before (expired or deleted: the key is then unchanged); `None` when the key never had
    /// material.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_material_id: Option<String>,
}

/// DeleteImportedKeyMaterial request.
#[derive(
    Clone, Debug, Default, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode,
)]
#[serde(rename_all = "PascalCase", default)]
pub struct DeleteImportedKeyMaterialRequest {
    /// The key (key id or key ARN) of Origin EXTERNAL.
    pub key_id: String,
    /// The material to delete, when given: must be the key's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_material_id: Option<String>,
}
