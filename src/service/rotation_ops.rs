//! The rotation operations of [`Kms`] (EnableKeyRotation, DisableKeyRotation,
//! GetKeyRotationStatus, RotateKeyOnDemand, ListKeyRotations): each a transaction over
//! `kms::rotation`. A schedule changes no key material; a rotation's new material version
//! reaches the engine through the mirror at commit, before the call returns.

use super::Kms;

use crate::api::kms::*;
use crate::error::Result;
use crate::kms::rotation;

impl Kms {
    /// EnableKeyRotation.
    pub fn enable_key_rotation(&self, req: &EnableKeyRotationRequest) -> Result<Empty> {
        self.write(|tx| rotation::enable(tx, req))
    }

    /// DisableKeyRotation.
    pub fn disable_key_rotation(&self, req: &KeyIdRequest) -> Result<Empty> {
        self.write(|tx| rotation::disable(tx, req))
    }

    /// GetKeyRotationStatus.
    pub fn get_key_rotation_status(&self, req: &KeyIdRequest) -> Result<KeyRotationStatusResponse> {
        self.read(|tx| rotation::status(tx, req))
    }

    /// RotateKeyOnDemand.
    pub fn rotate_key_on_demand(&self, req: &KeyIdRequest) -> Result<RotateKeyOnDemandResponse> {
        self.write(|tx| rotation::rotate_on_demand(tx, req))
    }

    /// ListKeyRotations.
    pub fn list_key_rotations(
        &self,
        req: &ListKeyRotationsRequest,
    ) -> Result<ListKeyRotationsResponse> {
        self.read(|tx| rotation::list(tx, req))
    }
}
