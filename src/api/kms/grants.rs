//! The grant operations (CreateGrant, ListGrants, ListRetirableGrants, RetireGrant,
//! RevokeGrant), with AWS's members: a grant lets a grantee principal use one key for the
//! operations it lists, beside the key policy.

use super::*;

pub use crate::types::{GrantConstraints, GrantOperation};

/// CreateGrant.
#[derive(
    Clone, Debug, Default, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode,
)]
#[serde(rename_all = "PascalCase", default)]
pub struct CreateGrantRequest {
    /// Key id or key ARN.
    pub key_id: String,
    /// Who may use the key through the grant.
    pub grantee_principal: String,
    /// Who may retire the grant (beside the grantee when the grant lists RetireGrant).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retiring_principal: Option<String>,
    /// What the grant allows (at least one).
    pub operations: Vec<GrantOperation>,
    /// Encryption context constraints on the cryptographic operations it allows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub constraints: Option<GrantConstraints>,
    /// Grant tokens.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub grant_tokens: Vec<String>,
    /// A name: the same name with the same parameters returns the existing grant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Check access and parameters without creating the grant.
    pub dry_run: bool,
}

/// CreateGrant response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "PascalCase")]
pub struct CreateGrantResponse {
    /// A token that makes the grant usable at once (a new one on every call).
    pub grant_token: String,
    /// The grant's id (64 hex digits).
    pub grant_id: String,
}

/// ListGrants.
#[derive(
    Clone, Debug, Default, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode,
)]
#[serde(rename_all = "PascalCase", default)]
pub struct ListGrantsRequest {
    /// Key id or key ARN.
    pub key_id: String,
    /// Page size.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// From a previous `NextMarker`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub marker: Option<String>,
    /// Only this grant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grant_id: Option<String>,
    /// Only grants to this principal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grantee_principal: Option<String>,
}

/// ListRetirableGrants.
#[derive(
    Clone, Debug, Default, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode,
)]
#[serde(rename_all = "PascalCase", default)]
pub struct ListRetirableGrantsRequest {
    /// The retiring principal whose grants to list.
    pub retiring_principal: String,
    /// Page size.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// From a previous `NextMarker`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub marker: Option<String>,
}

/// One grant, as ListGrants and ListRetirableGrants show it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "PascalCase")]
pub struct GrantListEntry {
    /// The key ARN.
    pub key_id: String,
    /// The grant id.
    pub grant_id: String,
    /// Its name, when it was given one.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub name: Option<String>,
    /// When it was created.
    pub creation_date: Timestamp,
    /// Who may use the key through it.
    pub grantee_principal: String,
    /// Who may retire it.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub retiring_principal: Option<String>,
    /// The account that created it (`arn:aws:iam::<account>:root`).
    pub issuing_account: String,
    /// What it allows.
    pub operations: Vec<GrantOperation>,
    /// Its constraints, when it has any.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub constraints: Option<GrantConstraints>,
}

/// ListGrants / ListRetirableGrants response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "PascalCase")]
pub struct ListGrantsResponse {
    /// The grants of this page.
    pub grants: Vec<GrantListEntry>,
    /// Next page.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub next_marker: Option<String>,
    /// More to come.
    pub truncated: bool,
}

/// RetireGrant: by `GrantToken`, or by `KeyId` and `GrantId`.
#[derive(
    Clone, Debug, Default, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode,
)]
#[serde(rename_all = "PascalCase", default)]
pub struct RetireGrantRequest {
    /// The grant's token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grant_token: Option<String>,
    /// Key id or key ARN (with `GrantId`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// The grant id (with `KeyId`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grant_id: Option<String>,
    /// Check access and parameters without retiring.
    pub dry_run: bool,
}

/// RevokeGrant.
#[derive(
    Clone, Debug, Default, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode,
)]
#[serde(rename_all = "PascalCase", default)]
pub struct RevokeGrantRequest {
    /// Key id or key ARN.
    pub key_id: String,
    /// The grant id.
    pub grant_id: String,
    /// Check access and parameters without revoking.
    pub dry_run: bool,
}
