//! The key material import operations of [`Kms`] (GetParametersForImport, ImportKeyMaterial,
//! DeleteImportedKeyMaterial): each a transaction over `kms::import`. An import or a deletion
//! reaches the engine through the mirror at commit, before the call returns; material that
//! expires is deleted by the sweep, which the background worker runs at the expiry.

use super::worker::Task;
use super::Kms;

use crate::api::kms::*;
use crate::error::Result;
use crate::kms::import;

impl Kms {
    /// GetParametersForImport. The request is checked first (a caller who may not import
    /// costs no RSA key generation), then the RSA wrapping key is generated with the state
    /// unlocked, then the answer is made in a transaction that checks again.
    pub fn get_parameters_for_import(
        &self,
        req: &GetParametersForImportRequest,
    ) -> Result<GetParametersForImportResponse> {
        let (_, bits) = self.read(|tx| import::check_parameters(tx, req))?;
        let pair = import::wrapping_key_pair(bits)?;
        self.write(|tx| import::get_parameters(tx, req, pair))
    }

    /// ImportKeyMaterial.
    pub fn import_key_material(
        &self,
        req: &ImportKeyMaterialRequest,
    ) -> Result<KeyMaterialResponse> {
        let out = self.write(|tx| import::import(tx, req))?;
        if let Some(at) = req.valid_to {
            self.shared.schedule_at(Task::MaterialExpiry, at);
        }
        Ok(out)
    }

    /// DeleteImportedKeyMaterial.
    pub fn delete_imported_key_material(
        &self,
        req: &DeleteImportedKeyMaterialRequest,
    ) -> Result<DeleteImportedKeyMaterialResponse> {
        self.write(|tx| import::delete(tx, req))
    }
}
