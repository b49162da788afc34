//! Encrypt, Decrypt and ReEncrypt of [`Kms`] with an asymmetric algorithm (RSAES-OAEP, on RSA
//! keys made for ENCRYPT_DECRYPT). `crypto_ops` routes a request here when it names an
//! algorithm other than SYMMETRIC_DEFAULT, so the symmetric paths stay as they are.
//!
//! Why apart: AWS's rules differ (the algorithm is required, no encryption context, Decrypt
//! needs the KeyId since the raw RSA ciphertext names no key), and so does the work: the engine
//! admits the request on the key's shard (state, policy, grants) and hands back the parsed
//! key, and the RSA operation runs here, on the caller's thread, so the milliseconds of an RSA
//! private operation never hold a shard's lock.

use std::sync::Arc;

use super::throttle::Uses;
use super::Kms;
use crate::api::kms::{
    DecryptRequest, DecryptResponse, EncryptRequest, EncryptResponse, ReEncryptRequest,
    ReEncryptResponse,
};
use crate::crypto::private_key::PrivateKey;
use crate::engine::{check_len, Action};
use crate::err;
use crate::error::{KmsError, Result};
use crate::kms::keys::check_grant_tokens;
use crate::secret::SecretBytes;
use crate::types::limits::{CIPHERTEXT_LEN, PLAINTEXT_LEN};
use crate::types::{EncryptionAlgorithm, EncryptionContext, KeyRef};

/// AWS's refusal of an encryption context with an asymmetric algorithm.
fn no_context(ctx: &EncryptionContext, member: &str) -> Result<()> {
    if ctx.is_empty() {
        return Ok(());
    }
    Err(err!(
        ValidationException,
        "{member} is not supported with asymmetric KMS keys: their encryption algorithms take \
         no encryption context"
    ))
}

impl Kms {
    /// The RSA encryption key `key` for `action`, checked as AWS checks it: usable and allowed
    /// (the engine), then of the right spec and usage, then without encryption context.
    fn rsa_key(
        &self,
        key: &KeyRef,
        action: Action,
        alg: EncryptionAlgorithm,
        (ctx, ctx_member): (&EncryptionContext, &str),
        op: &str,
    ) -> Result<(Arc<PrivateKey>, Arc<str>)> {
        let (private, arn) = self
            .shared
            .engine
            .private_key(&self.principal, key, action)?;
        let private = private.ok_or_else(|| {
            err!(
                InvalidKeyUsageException,
                "{arn} key spec is SYMMETRIC_DEFAULT which is not valid for EncryptionAlgorithm \
                 {alg}."
            )
        })?;
        private.decrypting(&arn, op)?;
        no_context(ctx, ctx_member)?;
        Ok((private, arn))
    }

    /// Encrypt with an RSAES-OAEP algorithm: the raw RSA ciphertext.
    pub(super) fn encrypt_asymmetric(
        &self,
        req: &EncryptRequest,
        alg: EncryptionAlgorithm,
    ) -> Result<EncryptResponse> {
        check_len(req.plaintext.len(), "plaintext", PLAINTEXT_LEN)?;
        check_grant_tokens(&req.grant_tokens)?;
        let key = self.key_ref(&req.key_id)?;
        self.charge_by_key_type(&[Uses::Key(key.as_name())])?;
        let context = (&req.encryption_context, "EncryptionContext");
        let (private, arn) = self.rsa_key(&key, Action::Encrypt, alg, context, "Encrypt")?;
        let k = private.decrypting(&arn, "Encrypt")?;
        if req.dry_run {
            // Every check, the plaintext's length for the algorithm included; no encryption.
            k.check_plaintext(alg, req.plaintext.len(), &arn)?;
            return Err(KmsError::dry_run_succeeded());
        }
        Ok(EncryptResponse {
            ciphertext_blob: k.encrypt(alg, req.plaintext.expose(), &arn)?,
            key_id: arn,
            encryption_algorithm: alg,
        })
    }

    /// Decrypt with an RSAES-OAEP algorithm: `KeyId` is required (the ciphertext names no key).
    pub(super) fn decrypt_asymmetric(
        &self,
        req: &DecryptRequest,
        alg: EncryptionAlgorithm,
    ) -> Result<DecryptResponse> {
        check_len(req.ciphertext_blob.len(), "ciphertextBlob", CIPHERTEXT_LEN)?;
        check_grant_tokens(&req.grant_tokens)?;
        let key_id = req
            .key_id
            .as_deref()
            .ok_or_else(|| KmsError::required("KeyId"))?;
        let key = self.key_ref(key_id)?;
        self.charge_by_key_type(&[Uses::Key(key.as_name())])?;
        let context = (&req.encryption_context, "EncryptionContext");
        let (private, arn) = self.rsa_key(&key, Action::Decrypt, alg, context, "Decrypt")?;
        let k = private.decrypting(&arn, "Decrypt")?;
        let plaintext = k.decrypt(alg, &req.ciphertext_blob, &arn)?;
        if req.dry_run {
            return Err(KmsError::dry_run_succeeded());
        }
        Ok(DecryptResponse {
            key_id: arn,
            plaintext,
            encryption_algorithm: alg,
        })
    }

    /// ReEncrypt where the source or the destination algorithm (or both) is asymmetric: the
    /// source half as Decrypt checked against `kms:ReEncryptFrom`, the destination half as
    /// Encrypt against `kms:ReEncryptTo`; the plaintext stays in this process.
    pub(super) fn re_encrypt_asymmetric(
        &self,
        req: &ReEncryptRequest,
    ) -> Result<ReEncryptResponse> {
        check_len(req.ciphertext_blob.len(), "ciphertextBlob", CIPHERTEXT_LEN)?;
        let (source, destination) = self.re_encrypt_keys(req)?;
        let source_alg = req
            .source_encryption_algorithm
            .unwrap_or(EncryptionAlgorithm::SymmetricDefault);
        let destination_alg = req
            .destination_encryption_algorithm
            .unwrap_or(EncryptionAlgorithm::SymmetricDefault);
        let source_uses = match &source {
            Some(k) if !EncryptionAlgorithm::is_symmetric(Some(source_alg)) => {
                Uses::Key(k.as_name())
            }
            _ => Uses::Blob(&req.ciphertext_blob),
        };
        self.charge_by_key_type(&[source_uses, Uses::Key(destination.as_name())])?;
        let engine = &self.shared.engine;
        let (plaintext, source_arn): (SecretBytes, Arc<str>) =
            if EncryptionAlgorithm::is_symmetric(Some(source_alg)) {
                let out = engine.decrypt_as(
                    &self.principal,
                    &req.ciphertext_blob,
                    &req.source_encryption_context,
                    source.as_ref(),
                    Action::ReEncryptFrom,
                )?;
                (out.plaintext, out.key_arn)
            } else {
                let source = source.ok_or_else(|| KmsError::required("SourceKeyId"))?;
                let context = (&req.source_encryption_context, "SourceEncryptionContext");
                let (private, arn) = self.rsa_key(
                    &source,
                    Action::ReEncryptFrom,
                    source_alg,
                    context,
                    "ReEncrypt",
                )?;
                let k = private.decrypting(&arn, "ReEncrypt")?;
                (k.decrypt(source_alg, &req.ciphertext_blob, &arn)?, arn)
            };
        let (ciphertext_blob, key_id) = if EncryptionAlgorithm::is_symmetric(Some(destination_alg))
        {
            let out = engine.encrypt_as(
                &self.principal,
                &destination,
                plaintext.expose(),
                &req.destination_encryption_context,
                Action::ReEncryptTo,
            )?;
            (out.ciphertext_blob, out.key_arn)
        } else {
            let context = (
                &req.destination_encryption_context,
                "DestinationEncryptionContext",
            );
            let (private, arn) = self.rsa_key(
                &destination,
                Action::ReEncryptTo,
                destination_alg,
                context,
                "ReEncrypt",
            )?;
            let k = private.decrypting(&arn, "ReEncrypt")?;
            (k.encrypt(destination_alg, plaintext.expose(), &arn)?, arn)
        };
        if req.dry_run {
            return Err(KmsError::dry_run_succeeded());
        }
        Ok(ReEncryptResponse {
            ciphertext_blob,
            source_key_id: source_arn,
            key_id,
            source_encryption_algorithm: source_alg,
            destination_encryption_algorithm: destination_alg,
        })
    }
}
