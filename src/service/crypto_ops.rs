//! The cryptographic operations of [`Kms`] (spec §4.4): Encrypt, Decrypt, ReEncrypt,
//! GenerateDataKey(WithoutPlaintext), GenerateRandom, and batch forms beyond AWS.
//!
//! These never take the control-plane mutex: they parse the request and go straight to the
//! engine, whose shards hold the keys, their gates and their policies. Each call (each item of
//! a batch) is counted for the event log (`tally`) by operation, key, principal and outcome. Only with AWS quotas
//! emulated (`throttle`) is each request first charged to its rates, which looks a key's
//! store up in the state the first time the key is seen (and each time for an alias).

use std::sync::Arc;

use super::tally::Call;
use super::throttle::{CryptoCost, Uses};
use super::{lock, Kms};
use crate::api::kms::*;
use crate::dataplane;
use crate::engine::{DataKeyItem, DataKeyOutput, DecryptItem, EncryptItem};
use crate::err;
use crate::error::{KmsError, Result};
use crate::kms::keys::check_grant_tokens;
use crate::ops::Op;
use crate::types::{EncryptionAlgorithm, KeyRef};

/// Only SYMMETRIC_DEFAULT suits a symmetric key.
fn check_algorithm(alg: Option<EncryptionAlgorithm>, member: &str) -> Result<()> {
    match alg {
        None | Some(EncryptionAlgorithm::SymmetricDefault) => Ok(()),
        Some(other) => Err(err!(
            InvalidKeyUsageException,
            "{member} {other} is not valid for a symmetric KMS key; use SYMMETRIC_DEFAULT"
        )),
    }
}

/// What a `DryRun` request answers when it would have succeeded.
fn dry_run_succeeded() -> KmsError {
    KmsError::dry_run_succeeded()
}

/// The key reference a Decrypt gave (none: empty).
fn decrypt_key(req: &DecryptRequest) -> &str {
    req.key_id.as_deref().unwrap_or_default()
}

/// The operation a data-key call is recorded as.
fn data_key_op(with_plaintext: bool) -> Op {
    if with_plaintext {
        Op::GenerateDataKey
    } else {
        Op::GenerateDataKeyWithoutPlaintext
    }
}

fn data_key_response(out: DataKeyOutput) -> GenerateDataKeyResponse {
    GenerateDataKeyResponse {
        ciphertext_blob: out.ciphertext_blob,
        plaintext: out.plaintext,
        key_id: out.key_arn,
    }
}

impl Kms {
    pub(super) fn key_ref(&self, text: &str) -> Result<KeyRef> {
        self.scope().parse_key_ref(text)
    }

    /// Counts a call for the event log: under the key ARN the engine answered with, or the
    /// reference the request gave when it failed.
    pub(super) fn count<R>(
        &self,
        op: Op,
        key: &str,
        out: &Result<R>,
        arn: impl Fn(&R) -> &Arc<str>,
    ) {
        if let Some(tally) = &self.shared.tally {
            let call = match out {
                Ok(r) => Call::Ok(arn(r)),
                Err(e) => Call::Failed(key, e.kind()),
            };
            tally.add(op, &self.principal, call);
        }
    }

    /// Counts the calls of a batch (see [`Kms::count`]).
    fn count_batch<Q, R>(
        &self,
        op: Op,
        items: &[Q],
        results: &[Result<R>],
        key: impl Fn(&Q) -> &str,
        arn: impl Fn(&R) -> &Arc<str>,
    ) {
        if let Some(tally) = &self.shared.tally {
            let calls = items.iter().zip(results).map(|(q, out)| match out {
                Ok(r) => Call::Ok(arn(r)),
                Err(e) => Call::Failed(key(q), e.kind()),
            });
            tally.add_batch(op, &self.principal, calls);
        }
    }

    /// Encrypt: 1–4096 bytes under a KMS key, bound to the encryption context.
    pub fn encrypt(&self, req: &EncryptRequest) -> Result<EncryptResponse> {
        let out = self.encrypt_uncounted(req);
        self.count(Op::Encrypt, &req.key_id, &out, |r| &r.key_id);
        out
    }

    fn encrypt_uncounted(&self, req: &EncryptRequest) -> Result<EncryptResponse> {
        check_algorithm(req.encryption_algorithm, "EncryptionAlgorithm")?;
        check_grant_tokens(&req.grant_tokens)?;
        let key = self.key_ref(&req.key_id)?;
        self.charge_crypto(&[Uses::Key(&key)], CryptoCost::Plain)?;
        let out = self.shared.engine.encrypt(
            &self.principal,
            &key,
            req.plaintext.expose(),
            &req.encryption_context,
        )?;
        if req.dry_run {
            return Err(dry_run_succeeded());
        }
        Ok(EncryptResponse {
            ciphertext_blob: out.ciphertext_blob,
            key_id: out.key_arn,
            encryption_algorithm: EncryptionAlgorithm::SymmetricDefault,
        })
    }

    /// Decrypt: the key is found from the blob; `KeyId`, if given, must be that key.
    pub fn decrypt(&self, req: &DecryptRequest) -> Result<DecryptResponse> {
        let out = self.decrypt_uncounted(req);
        let key = req.key_id.as_deref().unwrap_or_default();
        self.count(Op::Decrypt, key, &out, |r| &r.key_id);
        out
    }

    fn decrypt_uncounted(&self, req: &DecryptRequest) -> Result<DecryptResponse> {
        check_algorithm(req.encryption_algorithm, "EncryptionAlgorithm")?;
        check_grant_tokens(&req.grant_tokens)?;
        let key = req.key_id.as_deref().map(|k| self.key_ref(k)).transpose()?;
        self.charge_crypto(&[Uses::Blob(&req.ciphertext_blob)], CryptoCost::Plain)?;
        let out = self.shared.engine.decrypt(
            &self.principal,
            &req.ciphertext_blob,
            &req.encryption_context,
            key.as_ref(),
        )?;
        if req.dry_run {
            return Err(dry_run_succeeded());
        }
        Ok(DecryptResponse {
            key_id: out.key_arn,
            plaintext: out.plaintext,
            encryption_algorithm: EncryptionAlgorithm::SymmetricDefault,
        })
    }

    /// ReEncrypt: from the blob's key (checked against `SourceKeyId` if given) to
    /// `DestinationKeyId`, across keys and key stores; the plaintext never leaves the engine.
    pub fn re_encrypt(&self, req: &ReEncryptRequest) -> Result<ReEncryptResponse> {
        let out = self.re_encrypt_uncounted(req);
        self.count(Op::ReEncrypt, &req.destination_key_id, &out, |r| &r.key_id);
        out
    }

    fn re_encrypt_uncounted(&self, req: &ReEncryptRequest) -> Result<ReEncryptResponse> {
        check_algorithm(req.source_encryption_algorithm, "SourceEncryptionAlgorithm")?;
        check_algorithm(
            req.destination_encryption_algorithm,
            "DestinationEncryptionAlgorithm",
        )?;
        check_grant_tokens(&req.grant_tokens)?;
        let source = req
            .source_key_id
            .as_deref()
            .map(|k| self.key_ref(k))
            .transpose()?;
        let destination = self.key_ref(&req.destination_key_id)?;
        self.charge_crypto(
            &[Uses::Blob(&req.ciphertext_blob), Uses::Key(&destination)],
            CryptoCost::Plain,
        )?;
        let out = self.shared.engine.re_encrypt(
            &self.principal,
            &req.ciphertext_blob,
            &req.source_encryption_context,
            source.as_ref(),
            &destination,
            &req.destination_encryption_context,
        )?;
        if req.dry_run {
            return Err(dry_run_succeeded());
        }
        Ok(ReEncryptResponse {
            ciphertext_blob: out.ciphertext_blob,
            source_key_id: out.source_key_arn,
            key_id: out.key_arn,
            source_encryption_algorithm: EncryptionAlgorithm::SymmetricDefault,
            destination_encryption_algorithm: EncryptionAlgorithm::SymmetricDefault,
        })
    }

    /// GenerateDataKey: a data key in plaintext and encrypted under the KMS key.
    pub fn generate_data_key(
        &self,
        req: &GenerateDataKeyRequest,
    ) -> Result<GenerateDataKeyResponse> {
        self.data_key(req, true)
    }

    /// GenerateDataKeyWithoutPlaintext: only the encrypted data key.
    pub fn generate_data_key_without_plaintext(
        &self,
        req: &GenerateDataKeyRequest,
    ) -> Result<GenerateDataKeyResponse> {
        self.data_key(req, false)
    }

    fn data_key(
        &self,
        req: &GenerateDataKeyRequest,
        with_plaintext: bool,
    ) -> Result<GenerateDataKeyResponse> {
        let out = self.data_key_uncounted(req, with_plaintext);
        self.count(data_key_op(with_plaintext), &req.key_id, &out, |r| {
            &r.key_id
        });
        out
    }

    fn data_key_uncounted(
        &self,
        req: &GenerateDataKeyRequest,
        with_plaintext: bool,
    ) -> Result<GenerateDataKeyResponse> {
        check_grant_tokens(&req.grant_tokens)?;
        let key = self.key_ref(&req.key_id)?;
        self.charge_crypto(&[Uses::Key(&key)], CryptoCost::DataKey)?;
        let engine = &self.shared.engine;
        let out = if with_plaintext {
            engine.generate_data_key(
                &self.principal,
                &key,
                req.key_spec,
                req.number_of_bytes,
                &req.encryption_context,
            )?
        } else {
            engine.generate_data_key_without_plaintext(
                &self.principal,
                &key,
                req.key_spec,
                req.number_of_bytes,
                &req.encryption_context,
            )?
        };
        if req.dry_run {
            return Err(dry_run_succeeded());
        }
        Ok(data_key_response(out))
    }

    /// GenerateRandom: 1–1024 bytes; with `CustomKeyStoreId`, drawn from the store's cluster,
    /// which must be CONNECTED. Allowed to the account root and the principals of
    /// [`crate::KmsConfig::generate_random_principals`] (an account-level permission).
    pub fn generate_random(&self, req: &GenerateRandomRequest) -> Result<GenerateRandomResponse> {
        self.may_generate_random()?;
        let n = req
            .number_of_bytes
            // AWS's words, period included (the model marks the member optional).
            .ok_or_else(|| err!(ValidationException, "NumberOfBytes is required."))?;
        match &req.custom_key_store_id {
            None => self.charge_crypto(&[], CryptoCost::DataKey)?,
            Some(store) => self.charge_crypto(&[Uses::Store(store)], CryptoCost::DataKey)?,
        }
        let plaintext = match &req.custom_key_store_id {
            None => self.shared.engine.generate_random(n, None)?,
            Some(store) => {
                let fleet = {
                    let core = lock(&self.shared.core);
                    dataplane::store_fleet(&core.state, self.scope(), store)?
                };
                self.shared.engine.generate_random(n, Some(&fleet))?
            }
        };
        Ok(GenerateRandomResponse { plaintext })
    }

    /// `kms:GenerateRandom` is account-level (AWS grants it with IAM, not a key policy): the
    /// account root, and the principals the instance was configured with.
    fn may_generate_random(&self) -> Result<()> {
        let principal = self.principal();
        let granted = &self.shared.config.generate_random_principals;
        if principal == self.scope().root_principal()
            || granted.iter().any(|p| p == "*" || p == principal)
        {
            return Ok(());
        }
        Err(err!(
            AccessDeniedException,
            "User: {principal} is not authorized to perform: {} because no identity-based \
             policy allows it (an account-level permission: kmscksd allows it to root, its own \
             uid and the uids of its generate_random_uids option)",
            Op::GenerateRandom.action()
        ))
    }

    /// Checks every item and parses its key reference, once per distinct reference text (a
    /// batch usually names one key): returns the parsed references and, per item, the index of
    /// its reference or its error.
    fn batch_refs<'r>(
        &self,
        items: impl Iterator<Item = (Option<&'r str>, Result<()>)>,
    ) -> (Vec<Option<KeyRef>>, Vec<Result<usize>>) {
        let mut refs: Vec<Option<KeyRef>> = Vec::new();
        let mut last: Option<(Option<&'r str>, usize)> = None;
        let slots = items
            .map(|(text, checked)| {
                checked?;
                if let Some((t, i)) = last {
                    if t == text {
                        return Ok(i);
                    }
                }
                let parsed = text.map(|t| self.key_ref(t)).transpose()?;
                refs.push(parsed);
                last = Some((text, refs.len() - 1));
                Ok(refs.len() - 1)
            })
            .collect();
        (refs, slots)
    }

    /// Encrypt many plaintexts in one call (beyond AWS): one result per item, in order. Routing
    /// and queueing are amortised over the batch, which both cores share.
    pub fn encrypt_batch(&self, items: &[EncryptRequest]) -> Vec<Result<EncryptResponse>> {
        let (refs, mut slots) = self.batch_refs(items.iter().map(|r| {
            let checked = check_algorithm(r.encryption_algorithm, "EncryptionAlgorithm")
                .and_then(|()| check_grant_tokens(&r.grant_tokens));
            (Some(r.key_id.as_str()), checked)
        }));
        self.charge_batch(&mut slots, CryptoCost::Plain, |_, r| {
            refs[r].as_ref().map(Uses::Key)
        });
        let valid: Vec<EncryptItem<'_>> = items
            .iter()
            .zip(&slots)
            .filter_map(|(r, slot)| {
                let key = refs[*slot.as_ref().ok()?].as_ref()?;
                Some(EncryptItem {
                    key,
                    plaintext: r.plaintext.expose(),
                    context: &r.encryption_context,
                })
            })
            .collect();
        let results = self.shared.engine.encrypt_batch(&self.principal, &valid);
        let out = merge(slots, results, |out| EncryptResponse {
            ciphertext_blob: out.ciphertext_blob,
            key_id: out.key_arn,
            encryption_algorithm: EncryptionAlgorithm::SymmetricDefault,
        });
        self.count_batch(Op::Encrypt, items, &out, |q| &q.key_id, |r| &r.key_id);
        out
    }

    /// Decrypt many blobs in one call (beyond AWS): one result per item, in order.
    pub fn decrypt_batch(&self, items: &[DecryptRequest]) -> Vec<Result<DecryptResponse>> {
        let (refs, mut slots) = self.batch_refs(items.iter().map(|r| {
            let checked = check_algorithm(r.encryption_algorithm, "EncryptionAlgorithm")
                .and_then(|()| check_grant_tokens(&r.grant_tokens));
            (r.key_id.as_deref(), checked)
        }));
        self.charge_batch(&mut slots, CryptoCost::Plain, |i, _| {
            Some(Uses::Blob(&items[i].ciphertext_blob))
        });
        let valid: Vec<DecryptItem<'_>> = items
            .iter()
            .zip(&slots)
            .filter_map(|(r, slot)| {
                let key = refs[*slot.as_ref().ok()?].as_ref();
                Some(DecryptItem {
                    ciphertext: &r.ciphertext_blob,
                    context: &r.encryption_context,
                    key,
                })
            })
            .collect();
        let results = self.shared.engine.decrypt_batch(&self.principal, &valid);
        let out = merge(slots, results, |out| DecryptResponse {
            key_id: out.key_arn,
            plaintext: out.plaintext,
            encryption_algorithm: EncryptionAlgorithm::SymmetricDefault,
        });
        self.count_batch(Op::Decrypt, items, &out, decrypt_key, |r| &r.key_id);
        out
    }

    /// GenerateDataKey (or WithoutPlaintext) many times in one call (beyond AWS).
    pub fn generate_data_key_batch(
        &self,
        items: &[GenerateDataKeyRequest],
        with_plaintext: bool,
    ) -> Vec<Result<GenerateDataKeyResponse>> {
        let (refs, mut slots) = self.batch_refs(
            items
                .iter()
                .map(|r| (Some(r.key_id.as_str()), check_grant_tokens(&r.grant_tokens))),
        );
        self.charge_batch(&mut slots, CryptoCost::DataKey, |_, r| {
            refs[r].as_ref().map(Uses::Key)
        });
        let valid: Vec<DataKeyItem<'_>> = items
            .iter()
            .zip(&slots)
            .filter_map(|(r, slot)| {
                let key = refs[*slot.as_ref().ok()?].as_ref()?;
                Some(DataKeyItem {
                    key,
                    key_spec: r.key_spec,
                    number_of_bytes: r.number_of_bytes,
                    context: &r.encryption_context,
                })
            })
            .collect();
        let results =
            self.shared
                .engine
                .generate_data_key_batch(&self.principal, &valid, with_plaintext);
        let out = merge(slots, results, data_key_response);
        let op = data_key_op(with_plaintext);
        self.count_batch(op, items, &out, |q| &q.key_id, |r| &r.key_id);
        out
    }
}

/// Puts the engine's answers for the valid items back among the items that failed checks.
fn merge<O, R>(
    slots: Vec<Result<usize>>,
    results: Vec<Result<O>>,
    convert: impl Fn(O) -> R,
) -> Vec<Result<R>> {
    let mut results = results.into_iter();
    slots
        .into_iter()
        .map(|slot| {
            slot?;
            let out = results.next().ok_or_else(|| {
                err!(KMSInternalException, "the engine returned too few results")
            })??;
            Ok(convert(out))
        })
        .collect()
}
