//! DeriveSharedSecret of [`Kms`]: ECDH with a KEY_AGREEMENT key of the default key store.
//! As the asymmetric encryption operations (`asymmetric_ops`): the engine admits the request
//! on the key's shard (state, policy, grants) and hands back the parsed key, and the curve
//! arithmetic runs on the caller's thread; `DryRun` runs every check, the peer's public key
//! included, and answers `DryRunOperationException`.

use super::throttle::Uses;
use super::Kms;
use crate::api::kms::{DeriveSharedSecretRequest, DeriveSharedSecretResponse};
use crate::engine::{check_len, Action};
use crate::err;
use crate::error::{KmsError, Result};
use crate::kms::keys::check_grant_tokens;
use crate::ops::Op;
use crate::types::limits::PUBLIC_KEY_LEN;
use crate::types::Origin;

impl Kms {
    /// DeriveSharedSecret: the raw ECDH shared secret of the key and the peer's public key.
    pub fn derive_shared_secret(
        &self,
        req: &DeriveSharedSecretRequest,
    ) -> Result<DeriveSharedSecretResponse> {
        let out = self.derive_shared_secret_uncounted(req);
        self.count(Op::DeriveSharedSecret, &req.key_id, &out, |r| &r.key_id);
        out
    }

    fn derive_shared_secret_uncounted(
        &self,
        req: &DeriveSharedSecretRequest,
    ) -> Result<DeriveSharedSecretResponse> {
        let algorithm = req
            .key_agreement_algorithm
            .ok_or_else(|| KmsError::required("KeyAgreementAlgorithm"))?;
        check_len(req.public_key.len(), "publicKey", PUBLIC_KEY_LEN)?;
        check_grant_tokens(&req.grant_tokens)?;
        let key = self.key_ref(&req.key_id)?;
        self.charge_by_key_type(&[Uses::Key(key.as_name())])?;
        let (private, key_id) =
            self.shared
                .engine
                .private_key(&self.principal, &key, Action::DeriveSharedSecret)?;
        let op = Op::DeriveSharedSecret.name();
        let private = private.ok_or_else(|| {
            err!(
                InvalidKeyUsageException,
                "{key_id} key usage is ENCRYPT_DECRYPT which is not valid for {op}."
            )
        })?;
        let shared_secret = private.agreement(&key_id, op)?.derive(&req.public_key)?;
        if req.dry_run {
            return Err(KmsError::dry_run_succeeded());
        }
        Ok(DeriveSharedSecretResponse {
            key_id,
            shared_secret,
            key_agreement_algorithm: algorithm,
            // kmscks makes KEY_AGREEMENT keys with their own material only (CreateKey refuses
            // Origin EXTERNAL for asymmetric specs).
            key_origin: Origin::AwsKms,
        })
    }
}
