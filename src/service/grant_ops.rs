//! The grant operations of [`Kms`] (CreateGrant, ListGrants, ListRetirableGrants,
//! RetireGrant, RevokeGrant): each a transaction over `kms::grants`; what a grant allows
//! reaches the engine through the mirror at commit, like a key policy.

use super::Kms;

use crate::api::kms::*;
use crate::error::Result;
use crate::kms::grants;

impl Kms {
    /// CreateGrant.
    pub fn create_grant(&self, req: &CreateGrantRequest) -> Result<CreateGrantResponse> {
        self.write(|tx| grants::create(tx, req))
    }

    /// ListGrants.
    pub fn list_grants(&self, req: &ListGrantsRequest) -> Result<ListGrantsResponse> {
        self.read(|tx| grants::list(tx, req))
    }

    /// ListRetirableGrants.
    pub fn list_retirable_grants(
        &self,
        req: &ListRetirableGrantsRequest,
    ) -> Result<ListGrantsResponse> {
        self.read(|tx| grants::list_retirable(tx, req))
    }

    /// RetireGrant.
    pub fn retire_grant(&self, req: &RetireGrantRequest) -> Result<Empty> {
        self.write(|tx| grants::retire(tx, req))
    }

    /// RevokeGrant.
    pub fn revoke_grant(&self, req: &RevokeGrantRequest) -> Result<Empty> {
        self.write(|tx| grants::revoke(tx, req))
    }
}
