//! GenerateDataKeyPair and GenerateDataKeyPairWithoutPlaintext of [`Kms`]: a fresh
//! asymmetric pair (`crypto::key_pair`), its private key sealed under a symmetric key of the
//! default key store by the engine exactly as Encrypt seals (so Decrypt opens it), checked
//! against the key policy and grants as `kms:GenerateDataKeyPair[WithoutPlaintext]`.
//!
//! No control-plane mutex. Generating an RSA pair takes milliseconds to a second, so the
//! checks the engine makes run first for RSA (a refused request costs no key generation), and
//! the daemon serves these operations off its event loop (see the op table). `DryRun` runs
//! every check and answers `DryRunOperationException` without generating anything.

use super::Kms;
use crate::api::kms::{GenerateDataKeyPairRequest, GenerateDataKeyPairResponse};
use crate::crypto::key_pair;
use crate::engine::Action;
use crate::error::{KmsError, Result};
use crate::kms::keys::check_grant_tokens;
use crate::ops::Op;
use crate::types::{DataKeyPairSpec, KeyRef};

/// What the engine seals in place of a private key when it only checks (DryRun, and before
/// an RSA key generation): one byte, the smallest plaintext Encrypt takes.
const PROBE: &[u8] = &[0];

/// Whether generating a pair of `spec` costs so much more than the engine's checks that the
/// checks run first.
fn slow_to_generate(spec: DataKeyPairSpec) -> bool {
    matches!(
        spec,
        DataKeyPairSpec::Rsa2048 | DataKeyPairSpec::Rsa3072 | DataKeyPairSpec::Rsa4096
    )
}

impl Kms {
    /// GenerateDataKeyPair: a pair whose private key is returned in plaintext and sealed
    /// under the KMS key.
    pub fn generate_data_key_pair(
        &self,
        req: &GenerateDataKeyPairRequest,
    ) -> Result<GenerateDataKeyPairResponse> {
        self.data_key_pair(req, true)
    }

    /// GenerateDataKeyPairWithoutPlaintext: the public key and the sealed private key only.
    pub fn generate_data_key_pair_without_plaintext(
        &self,
        req: &GenerateDataKeyPairRequest,
    ) -> Result<GenerateDataKeyPairResponse> {
        self.data_key_pair(req, false)
    }

    fn data_key_pair(
        &self,
        req: &GenerateDataKeyPairRequest,
        with_plaintext: bool,
    ) -> Result<GenerateDataKeyPairResponse> {
        let op = if with_plaintext {
            Op::GenerateDataKeyPair
        } else {
            Op::GenerateDataKeyPairWithoutPlaintext
        };
        let out = self.data_key_pair_uncounted(req, with_plaintext);
        self.count(op, &req.key_id, &out, |r| &r.key_id);
        out
    }

    fn data_key_pair_uncounted(
        &self,
        req: &GenerateDataKeyPairRequest,
        with_plaintext: bool,
    ) -> Result<GenerateDataKeyPairResponse> {
        let spec = req
            .key_pair_spec
            .ok_or_else(|| KmsError::not_null("keyPairSpec"))?;
        check_grant_tokens(&req.grant_tokens)?;
        let key = self.key_ref(&req.key_id)?;
        let action = if with_plaintext {
            Action::GenerateDataKeyPair
        } else {
            Action::GenerateDataKeyPairWithoutPlaintext
        };
        self.charge_data_key_pair(key.as_name(), spec)?;
        if req.dry_run || slow_to_generate(spec) {
            self.seal_private_key(&key, PROBE, req, action)?;
            key_pair::check_spec(spec)?;
            if req.dry_run {
                return Err(KmsError::dry_run_succeeded());
            }
        }
        let pair = key_pair::generate(spec)?;
        let sealed = self.seal_private_key(&key, pair.private_key.expose(), req, action)?;
        Ok(GenerateDataKeyPairResponse {
            private_key_ciphertext_blob: sealed.ciphertext_blob,
            private_key_plaintext: with_plaintext.then_some(pair.private_key),
            public_key: pair.public_key,
            key_id: sealed.key_arn,
            key_pair_spec: spec,
        })
    }

    fn seal_private_key(
        &self,
        key: &KeyRef,
        private_key: &[u8],
        req: &GenerateDataKeyPairRequest,
        action: Action,
    ) -> Result<crate::engine::EncryptOutput> {
        self.shared.engine.seal_key_pair(
            &self.principal,
            key,
            private_key,
            &req.encryption_context,
            action,
        )
    }
}
