//! Sign, Verify and GetPublicKey of [`Kms`]: asymmetric keys of the default key store
//! (GetPublicKey for every usage). As `mac_ops`: no control-plane mutex, the engine's shards hold each key parsed once
//! with its gate, policy and grants; `DryRun` runs every check and answers
//! `DryRunOperationException`.

use super::throttle::Uses;
use super::Kms;
use crate::api::kms::{
    GetPublicKeyResponse, KeyIdRequest, SignRequest, SignResponse, VerifyRequest, VerifyResponse,
};
use crate::error::{KmsError, Result};
use crate::kms::keys::check_grant_tokens;
use crate::ops::Op;
use crate::types::{KeyUsage, MessageType, SigningAlgorithm};

/// The request's `SigningAlgorithm`, which AWS requires.
fn required_algorithm(alg: Option<SigningAlgorithm>) -> Result<SigningAlgorithm> {
    alg.ok_or_else(|| KmsError::required("SigningAlgorithm"))
}

impl Kms {
    /// Sign: a signature of a message (RAW, up to 4096 bytes) or of its digest (DIGEST).
    pub fn sign(&self, req: &SignRequest) -> Result<SignResponse> {
        let out = self.sign_uncounted(req);
        self.count(Op::Sign, &req.key_id, &out, |r| &r.key_id);
        out
    }

    fn sign_uncounted(&self, req: &SignRequest) -> Result<SignResponse> {
        let algorithm = required_algorithm(req.signing_algorithm)?;
        check_grant_tokens(&req.grant_tokens)?;
        let key = self.key_ref(&req.key_id)?;
        self.charge_by_key_type(&[Uses::Key(key.as_name())])?;
        let out = self.shared.engine.sign(
            &self.principal,
            &key,
            req.message.expose(),
            req.message_type.unwrap_or(MessageType::Raw),
            algorithm,
        )?;
        if req.dry_run {
            return Err(KmsError::dry_run_succeeded());
        }
        Ok(SignResponse {
            key_id: out.key_arn,
            signature: out.signature,
            signing_algorithm: algorithm,
        })
    }

    /// Verify: whether `Signature` is one of the message by the key with the algorithm
    /// (`KMSInvalidSignatureException` when it is not).
    pub fn verify(&self, req: &VerifyRequest) -> Result<VerifyResponse> {
        let out = self.verify_uncounted(req);
        self.count(Op::Verify, &req.key_id, &out, |r| &r.key_id);
        out
    }

    fn verify_uncounted(&self, req: &VerifyRequest) -> Result<VerifyResponse> {
        let algorithm = required_algorithm(req.signing_algorithm)?;
        check_grant_tokens(&req.grant_tokens)?;
        let key = self.key_ref(&req.key_id)?;
        self.charge_by_key_type(&[Uses::Key(key.as_name())])?;
        let key_id = self.shared.engine.verify(
            &self.principal,
            &key,
            (
                req.message.expose(),
                req.message_type.unwrap_or(MessageType::Raw),
            ),
            algorithm,
            &req.signature,
        )?;
        if req.dry_run {
            return Err(KmsError::dry_run_succeeded());
        }
        Ok(VerifyResponse {
            key_id,
            signature_valid: true,
            signing_algorithm: algorithm,
        })
    }

    /// GetPublicKey: the public key of a signing key, DER SubjectPublicKeyInfo, with its spec,
    /// usage and algorithms.
    pub fn get_public_key(&self, req: &KeyIdRequest) -> Result<GetPublicKeyResponse> {
        let out = self.get_public_key_uncounted(req);
        self.count(Op::GetPublicKey, &req.key_id, &out, |r| &r.key_id);
        out
    }

    fn get_public_key_uncounted(&self, req: &KeyIdRequest) -> Result<GetPublicKeyResponse> {
        check_grant_tokens(&req.grant_tokens)?;
        let key = self.key_ref(&req.key_id)?;
        let (private, key_id) = self.shared.engine.public_key(&self.principal, &key)?;
        let (spec, usage) = (private.spec(), private.usage());
        let of_usage = |u: KeyUsage| usage == u;
        Ok(GetPublicKeyResponse {
            key_id,
            // Invariant: the engine answers GetPublicKey for keys with a public key only.
            public_key: private.public_der().unwrap_or_default().to_vec(),
            customer_master_key_spec: spec,
            key_spec: spec,
            key_usage: usage,
            encryption_algorithms: spec
                .encryption_algorithms()
                .iter()
                .copied()
                .filter(|_| of_usage(KeyUsage::EncryptDecrypt))
                .collect(),
            signing_algorithms: spec
                .signing_algorithms()
                .iter()
                .copied()
                .filter(|_| of_usage(KeyUsage::SignVerify))
                .collect(),
            key_agreement_algorithms: spec
                .key_agreement_algorithms()
                .iter()
                .copied()
                .filter(|_| of_usage(KeyUsage::KeyAgreement))
                .collect(),
        })
    }
}
