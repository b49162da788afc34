//! GenerateMac and VerifyMac of [`Kms`]: HMAC keys of the default key store.
//!
//! Like the symmetric cryptographic operations (`crypto_ops`), these never take the
//! control-plane mutex: the request is checked and goes to the engine, whose shards hold each
//! HMAC key parsed once, its gate, policy and grants. `DryRun` runs every check (and the MAC,
//! whose cost is the check's) and answers `DryRunOperationException` instead of the result.

use super::throttle::{CryptoCost, Uses};
use super::Kms;
use crate::api::kms::{
    GenerateMacRequest, GenerateMacResponse, VerifyMacRequest, VerifyMacResponse,
};
use crate::error::{KmsError, Result};
use crate::kms::keys::check_grant_tokens;
use crate::ops::Op;
use crate::types::MacAlgorithm;

/// The request's `MacAlgorithm`, which AWS requires.
fn required_algorithm(alg: Option<MacAlgorithm>) -> Result<MacAlgorithm> {
    alg.ok_or_else(|| KmsError::required("MacAlgorithm"))
}

impl Kms {
    /// GenerateMac: the HMAC of 1–4096 bytes under an HMAC key, with the key's algorithm.
    pub fn generate_mac(&self, req: &GenerateMacRequest) -> Result<GenerateMacResponse> {
        let out = self.generate_mac_uncounted(req);
        self.count(Op::GenerateMac, &req.key_id, &out, |r| &r.key_id);
        out
    }

    fn generate_mac_uncounted(&self, req: &GenerateMacRequest) -> Result<GenerateMacResponse> {
        let algorithm = required_algorithm(req.mac_algorithm)?;
        check_grant_tokens(&req.grant_tokens)?;
        let key = self.key_ref(&req.key_id)?;
        self.charge_crypto(&[Uses::Key(key.as_name())], CryptoCost::Plain)?;
        let out = self.shared.engine.generate_mac(
            &self.principal,
            &key,
            req.message.expose(),
            algorithm,
        )?;
        if req.dry_run {
            return Err(KmsError::dry_run_succeeded());
        }
        Ok(GenerateMacResponse {
            mac: out.mac,
            mac_algorithm: algorithm,
            key_id: out.key_arn,
        })
    }

    /// VerifyMac: whether `Mac` is the HMAC of the message under the key with its algorithm
    /// (`KMSInvalidMacException` when it is not).
    pub fn verify_mac(&self, req: &VerifyMacRequest) -> Result<VerifyMacResponse> {
        let out = self.verify_mac_uncounted(req);
        self.count(Op::VerifyMac, &req.key_id, &out, |r| &r.key_id);
        out
    }

    fn verify_mac_uncounted(&self, req: &VerifyMacRequest) -> Result<VerifyMacResponse> {
        let algorithm = required_algorithm(req.mac_algorithm)?;
        check_grant_tokens(&req.grant_tokens)?;
        let key = self.key_ref(&req.key_id)?;
        self.charge_crypto(&[Uses::Key(key.as_name())], CryptoCost::Plain)?;
        let key_id = self.shared.engine.verify_mac(
            &self.principal,
            &key,
            req.message.expose(),
            algorithm,
            &req.mac,
        )?;
        if req.dry_run {
            return Err(KmsError::dry_run_succeeded());
        }
        Ok(VerifyMacResponse {
            key_id,
            mac_valid: true,
            mac_algorithm: algorithm,
        })
    }
}
