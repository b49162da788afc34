//! The cryptographic operations of [`Kms`] (spec §4.4): Encrypt, Decrypt, ReEncrypt,
//! GenerateDataKey(WithoutPlaintext), GenerateRandom, and batch forms beyond AWS.
//!
//! These never take the control-plane mutex: they parse the request and go straight to the
//! engine, whose shards hold the keys, their gates and their policies. Each call (each item of
//! a batch) is counted for the event log (`tally`) by operation, key, principal and outcome. Only with AWS quotas
//! emulated (`throttle`) is each request first charged to its rates, which looks a key's
//! store up in the state the first time the key is seen (and each time for an alias).

use std::cell::RefCell;
use std::sync::Arc;

use super::tally::{Call, Runs};
use super::throttle::{CryptoCost, Uses};
use super::Kms;
use crate::api::kms::*;
use crate::dataplane;
use crate::engine::{
    check_ciphertext, check_plaintext, data_key_len, data_key_run_req, decrypt_req, encrypt_req,
    Action, BatchOut, DataKeyOutput, DataKeyView, DecryptView, EncryptView, DATA_KEY_RUN,
};
use crate::err;
use crate::error::{ErrorKind, KmsError, Result};
use crate::kms::keys::check_grant_tokens;
use crate::ops::Op;
use crate::secret::SecretBytes;
use crate::types::{same_text, EncryptionAlgorithm, EncryptionContext, KeyName, KeyRef};
use crate::vecs::push_in_room;

/// The algorithm of a request for the asymmetric path (`asymmetric_ops`); None for the
/// symmetric one.
fn asymmetric(alg: Option<EncryptionAlgorithm>) -> Option<EncryptionAlgorithm> {
    alg.filter(|&a| !EncryptionAlgorithm::is_symmetric(Some(a)))
}

/// Only SYMMETRIC_DEFAULT suits a symmetric key (and the batch calls, which serve symmetric
/// keys only).
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

    /// A ReEncrypt's grant tokens checked, then its source key (if named) and destination
    /// key parsed: the first checks of both ReEncrypt paths (symmetric and asymmetric).
    pub(super) fn re_encrypt_keys(
        &self,
        req: &ReEncryptRequest,
    ) -> Result<(Option<KeyRef>, KeyRef)> {
        check_grant_tokens(&req.grant_tokens)?;
        let source = req
            .source_key_id
            .as_deref()
            .map(|k| self.key_ref(k))
            .transpose()?;
        Ok((source, self.key_ref(&req.destination_key_id)?))
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

    /// Encrypt: 1–4096 bytes under a KMS key, bound to the encryption context.
    pub fn encrypt(&self, req: &EncryptRequest) -> Result<EncryptResponse> {
        let out = match asymmetric(req.encryption_algorithm) {
            Some(alg) => self.encrypt_asymmetric(req, alg),
            None => self.encrypt_symmetric(&req.borrowed()),
        };
        self.count(Op::Encrypt, &req.key_id, &out, |r| &r.key_id);
        out
    }

    /// [`Kms::encrypt`] on a borrowed request (`Backend::encrypt_borrowed`).
    pub(super) fn encrypt_ref(&self, req: &EncryptRequestRef<'_>) -> Result<EncryptResponse> {
        let out = match asymmetric(req.encryption_algorithm) {
            // Milliseconds of RSA: the owned request it takes is built.
            Some(alg) => self.encrypt_asymmetric(&req.to_request(), alg),
            None => self.encrypt_symmetric(req),
        };
        self.count(Op::Encrypt, req.key_id, &out, |r| &r.key_id);
        out
    }

    fn encrypt_symmetric(&self, req: &EncryptRequestRef<'_>) -> Result<EncryptResponse> {
        check_algorithm(req.encryption_algorithm, "EncryptionAlgorithm")?;
        check_grant_tokens(req.grant_tokens)?;
        let key = self.key_ref(req.key_id)?;
        self.charge_crypto(&[Uses::Key(key.as_name())], CryptoCost::Plain)?;
        let out = self.shared.engine.encrypt(
            &self.principal,
            &key,
            req.plaintext,
            req.encryption_context,
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
        let out = match asymmetric(req.encryption_algorithm) {
            Some(alg) => self.decrypt_asymmetric(req, alg),
            None => self.decrypt_symmetric(&req.borrowed()),
        };
        let key = req.key_id.as_deref().unwrap_or_default();
        self.count(Op::Decrypt, key, &out, |r| &r.key_id);
        out
    }

    /// [`Kms::decrypt`] on a borrowed request (`Backend::decrypt_borrowed`).
    pub(super) fn decrypt_ref(&self, req: &DecryptRequestRef<'_>) -> Result<DecryptResponse> {
        let out = match asymmetric(req.encryption_algorithm) {
            // Milliseconds of RSA: the owned request it takes is built.
            Some(alg) => self.decrypt_asymmetric(&req.to_request(), alg),
            None => self.decrypt_symmetric(req),
        };
        self.count(Op::Decrypt, req.key_id.unwrap_or_default(), &out, |r| {
            &r.key_id
        });
        out
    }

    fn decrypt_symmetric(&self, req: &DecryptRequestRef<'_>) -> Result<DecryptResponse> {
        check_algorithm(req.encryption_algorithm, "EncryptionAlgorithm")?;
        check_grant_tokens(req.grant_tokens)?;
        let key = req.key_id.map(|k| self.key_ref(k)).transpose()?;
        self.charge_crypto(&[Uses::Blob(req.ciphertext_blob)], CryptoCost::Plain)?;
        let out = self.shared.engine.decrypt(
            &self.principal,
            req.ciphertext_blob,
            req.encryption_context,
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
        if asymmetric(req.source_encryption_algorithm).is_some()
            || asymmetric(req.destination_encryption_algorithm).is_some()
        {
            return self.re_encrypt_asymmetric(req);
        }
        check_algorithm(req.source_encryption_algorithm, "SourceEncryptionAlgorithm")?;
        check_algorithm(
            req.destination_encryption_algorithm,
            "DestinationEncryptionAlgorithm",
        )?;
        let (source, destination) = self.re_encrypt_keys(req)?;
        self.charge_crypto(
            &[
                Uses::Blob(&req.ciphertext_blob),
                Uses::Key(destination.as_name()),
            ],
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
        self.data_key(&req.borrowed(), true)
    }

    /// GenerateDataKeyWithoutPlaintext: only the encrypted data key.
    pub fn generate_data_key_without_plaintext(
        &self,
        req: &GenerateDataKeyRequest,
    ) -> Result<GenerateDataKeyResponse> {
        self.data_key(&req.borrowed(), false)
    }

    /// GenerateDataKey(WithoutPlaintext) on a borrowed request (the owned calls above, and
    /// `Backend::generate_data_key_borrowed`).
    pub(super) fn data_key(
        &self,
        req: &GenerateDataKeyRequestRef<'_>,
        with_plaintext: bool,
    ) -> Result<GenerateDataKeyResponse> {
        let out = self.data_key_uncounted(req, with_plaintext);
        self.count(data_key_op(with_plaintext), req.key_id, &out, |r| &r.key_id);
        out
    }

    fn data_key_uncounted(
        &self,
        req: &GenerateDataKeyRequestRef<'_>,
        with_plaintext: bool,
    ) -> Result<GenerateDataKeyResponse> {
        check_grant_tokens(req.grant_tokens)?;
        let key = self.key_ref(req.key_id)?;
        self.charge_crypto(&[Uses::Key(key.as_name())], CryptoCost::DataKey)?;
        let engine = &self.shared.engine;
        let out = if with_plaintext {
            engine.generate_data_key(
                &self.principal,
                &key,
                req.key_spec,
                req.number_of_bytes,
                req.encryption_context,
            )?
        } else {
            engine.generate_data_key_without_plaintext(
                &self.principal,
                &key,
                req.key_spec,
                req.number_of_bytes,
                req.encryption_context,
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
                    let core = self.shared.core()?;
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

    /// The key reference `text` names, parsed once for a run of items naming the same text
    /// (a batch usually names one key): `last` holds the previous item's. Inlined: it runs
    /// once per batch item.
    #[inline(always)]
    fn key_name<'a>(
        &self,
        text: &'a str,
        last: &mut Option<(&'a str, KeyName<'a>)>,
    ) -> Result<KeyName<'a>> {
        if let Some((t, name)) = last {
            if same_text(t, text) {
                return Ok(name.clone());
            }
        }
        let name = self.scope().parse_key_name(text)?;
        *last = Some((text, name.clone()));
        Ok(name)
    }

    /// Encrypt many plaintexts in one call (beyond AWS): one result per item, in order. Routing
    /// and queueing are amortised over the batch (it runs through the engine in chunks,
    /// `OWNED_CHUNK`, as the other owned batch calls do, each on the caller's shard: see
    /// `BatchOut::keep_home`).
    pub fn encrypt_batch(&self, items: &[EncryptRequest]) -> Vec<Result<EncryptResponse>> {
        let mut out = Vec::with_capacity(items.len());
        in_owned_chunks(items, EncryptRequest::borrowed, |refs, scratch| {
            self.encrypt_batch_with(refs, scratch, |r| {
                push_in_room(
                    &mut out,
                    r.map(|v| EncryptResponse {
                        ciphertext_blob: v.ciphertext_blob.to_vec(),
                        key_id: v.key_arn.clone(),
                        encryption_algorithm: EncryptionAlgorithm::SymmetricDefault,
                    })
                    .map_err(Clone::clone),
                )
            })
        });
        out
    }

    /// [`Kms::encrypt_batch`] on borrowed requests, each answer handed to `emit` in order
    /// (borrowed from `scratch`, and wiped there once every answer was emitted): with a
    /// `scratch` reused from batch to batch, a batch served on the caller's thread allocates
    /// nothing. An item with `DryRun` answers
    /// `DryRunOperationException` when it would have succeeded, as a single call does.
    pub fn encrypt_batch_with(
        &self,
        items: &[EncryptRequestRef<'_>],
        scratch: &mut BatchScratch,
        emit: impl FnMut(std::result::Result<EncryptView<'_>, &KmsError>),
    ) {
        scratch.slots.clear();
        // Each item's engine request is built here, in the one pass over the items (its
        // plaintext's size checked last, as the engine's own batch call checks it).
        let mut reqs = scratch.out.spare_reqs();
        let mut last = None;
        for r in items {
            let slot = check_algorithm(r.encryption_algorithm, "EncryptionAlgorithm")
                .and_then(|()| check_batch_grant_tokens(r.grant_tokens))
                .and_then(|()| self.key_name(r.key_id, &mut last))
                .and_then(|key| {
                    self.charge_crypto(&[Uses::Key(key.borrowed())], CryptoCost::Plain)?;
                    check_plaintext(r.plaintext)?;
                    // Built in place in the vector, not moved through a `Result`.
                    reqs.push(encrypt_req(
                        key,
                        r.plaintext,
                        r.encryption_context,
                        Action::Encrypt,
                    ));
                    Ok(Slot::sent(reqs.len() - 1))
                });
            scratch.slots.push(slot);
        }
        let engine = &self.shared.engine;
        engine.dispatch_reqs_into(&self.principal, reqs, &mut scratch.out);
        let answer = |i: usize| -> Answer<'_, EncryptView<'_>> {
            match &scratch.slots[i] {
                Err(e) => Answer::Failed(e),
                Ok(slot) => match scratch.out.encrypt(slot.req) {
                    Ok(_) if items[i].dry_run => Answer::DryRun,
                    Ok(v) => Answer::Ok(v),
                    Err(e) => Answer::Failed(e),
                },
            }
        };
        let key = |i: usize| items[i].key_id;
        self.emit_counted(Op::Encrypt, items.len(), answer, key, |v| v.key_arn, emit);
        // The data keys and plaintexts are in the replies now: wipe them here.
        scratch.out.clear();
    }

    /// Decrypt many blobs in one call (beyond AWS): one result per item, in order.
    pub fn decrypt_batch(&self, items: &[DecryptRequest]) -> Vec<Result<DecryptResponse>> {
        let mut out = Vec::with_capacity(items.len());
        in_owned_chunks(items, DecryptRequest::borrowed, |refs, scratch| {
            self.decrypt_batch_with(refs, scratch, |r| {
                push_in_room(
                    &mut out,
                    r.map(|v| DecryptResponse {
                        key_id: v.key_arn.clone(),
                        plaintext: SecretBytes::from_slice(v.plaintext),
                        encryption_algorithm: EncryptionAlgorithm::SymmetricDefault,
                    })
                    .map_err(Clone::clone),
                )
            })
        });
        out
    }

    /// [`Kms::decrypt_batch`] on borrowed requests, as [`Kms::encrypt_batch_with`].
    pub fn decrypt_batch_with(
        &self,
        items: &[DecryptRequestRef<'_>],
        scratch: &mut BatchScratch,
        emit: impl FnMut(std::result::Result<DecryptView<'_>, &KmsError>),
    ) {
        scratch.slots.clear();
        // As in `encrypt_batch_with`: one pass, the blob's size checked last.
        let mut reqs = scratch.out.spare_reqs();
        let mut last = None;
        for r in items {
            let slot = check_algorithm(r.encryption_algorithm, "EncryptionAlgorithm")
                .and_then(|()| check_batch_grant_tokens(r.grant_tokens))
                .and_then(|()| {
                    r.key_id
                        .map(|text| self.key_name(text, &mut last))
                        .transpose()
                })
                .and_then(|key| {
                    self.charge_crypto(&[Uses::Blob(r.ciphertext_blob)], CryptoCost::Plain)?;
                    check_ciphertext(r.ciphertext_blob)?;
                    reqs.push(decrypt_req(
                        r.ciphertext_blob,
                        r.encryption_context,
                        key,
                        Action::Decrypt,
                    ));
                    Ok(Slot::sent(reqs.len() - 1))
                });
            scratch.slots.push(slot);
        }
        let engine = &self.shared.engine;
        engine.dispatch_reqs_into(&self.principal, reqs, &mut scratch.out);
        let answer = |i: usize| -> Answer<'_, DecryptView<'_>> {
            match &scratch.slots[i] {
                Err(e) => Answer::Failed(e),
                Ok(slot) => match scratch.out.decrypt(slot.req) {
                    Ok(_) if items[i].dry_run => Answer::DryRun,
                    Ok(v) => Answer::Ok(v),
                    Err(e) => Answer::Failed(e),
                },
            }
        };
        let key = |i: usize| items[i].key_id.unwrap_or_default();
        self.emit_counted(Op::Decrypt, items.len(), answer, key, |v| v.key_arn, emit);
        // The data keys and plaintexts are in the replies now: wipe them here.
        scratch.out.clear();
    }

    /// GenerateDataKey (or WithoutPlaintext) many times in one call (beyond AWS).
    pub fn generate_data_key_batch(
        &self,
        items: &[GenerateDataKeyRequest],
        with_plaintext: bool,
    ) -> Vec<Result<GenerateDataKeyResponse>> {
        let mut out = Vec::with_capacity(items.len());
        in_owned_chunks(items, GenerateDataKeyRequest::borrowed, |refs, scratch| {
            self.generate_data_key_batch_with(refs, with_plaintext, scratch, |r| {
                push_in_room(
                    &mut out,
                    r.map(|v| GenerateDataKeyResponse {
                        ciphertext_blob: v.ciphertext_blob.to_vec(),
                        plaintext: v.plaintext.map(SecretBytes::from_slice),
                        key_id: v.key_arn.clone(),
                    })
                    .map_err(Clone::clone),
                )
            })
        });
        out
    }

    /// [`Kms::generate_data_key_batch`] on borrowed requests, as [`Kms::encrypt_batch_with`].
    /// Items alike (one key named the same way, one size and context, no grant tokens) go to
    /// the engine as one run request each, up to `engine::DATA_KEY_RUN` of them, sealed together
    /// on one shard; with quotas on, each item goes alone, as each is charged.
    pub fn generate_data_key_batch_with(
        &self,
        items: &[GenerateDataKeyRequestRef<'_>],
        with_plaintext: bool,
        scratch: &mut BatchScratch,
        mut emit: impl FnMut(std::result::Result<DataKeyView<'_>, &KmsError>),
    ) {
        scratch.slots.clear();
        // Each run's engine request is built here, in the one pass over the items (its size
        // checked last, as the engine's own batch call checks it).
        let mut reqs = scratch.out.spare_reqs();
        let mut last = None;
        let runs = self.shared.throttle.is_none();
        let mut i = 0;
        while let Some(r) = items.get(i) {
            let n = if runs { run_len(&items[i..]) } else { 1 };
            let sent = check_batch_grant_tokens(r.grant_tokens)
                .and_then(|()| self.key_name(r.key_id, &mut last))
                .and_then(|key| {
                    self.charge_crypto(&[Uses::Key(key.borrowed())], CryptoCost::DataKey)?;
                    let len = data_key_len(r.key_spec, r.number_of_bytes)?;
                    let ctx = r.encryption_context;
                    // Built in place in the vector, not moved through a `Result`.
                    reqs.push(data_key_run_req(key, len, ctx, with_plaintext, n as u32));
                    Ok(reqs.len() - 1)
                });
            match sent {
                Ok(req) => {
                    let slot = |item| Ok(Slot { req, item });
                    scratch.slots.extend((0..n as u32).map(slot));
                }
                // Items alike fail alike.
                Err(e) => {
                    scratch.slots.extend((1..n).map(|_| Err(e.clone())));
                    scratch.slots.push(Err(e));
                }
            }
            i += n;
        }
        let engine = &self.shared.engine;
        engine.dispatch_reqs_into(&self.principal, reqs, &mut scratch.out);
        let answer = |i: usize| -> Answer<'_, DataKeyView<'_>> {
            match &scratch.slots[i] {
                Err(e) => Answer::Failed(e),
                Ok(slot) => match scratch.out.data_key_item(slot.req, slot.item) {
                    Ok(_) if items[i].dry_run => Answer::DryRun,
                    Ok(v) => Answer::Ok(v),
                    Err(e) => Answer::Failed(e),
                },
            }
        };
        let mut runs = self.runs(data_key_op(with_plaintext));
        let mut i = 0;
        while i < items.len() {
            let run = match &scratch.slots[i] {
                Ok(slot) if slot.item == 0 => scratch.out.data_key_run(slot.req),
                _ => None,
            };
            let Some(run) = run else {
                let a = answer(i);
                count(&mut runs, &a, items[i].key_id, |v| v.key_arn);
                a.emit(&mut emit);
                i += 1;
                continue;
            };
            // A run the engine answered: its items side by side, its data keys counted at
            // once (each dry run in it on its own, in order).
            let mut sealed = 0;
            for (k, r) in items[i..i + run.len()].iter().enumerate() {
                if r.dry_run {
                    count_n(&mut runs, Call::Ok(run.arn()), std::mem::take(&mut sealed));
                    let a = Answer::DryRun;
                    count(&mut runs, &a, r.key_id, |v: &DataKeyView<'_>| v.key_arn);
                    a.emit(&mut emit);
                } else {
                    sealed += 1;
                    emit(Ok(run.item(k)));
                }
            }
            count_n(&mut runs, Call::Ok(run.arn()), sealed);
            i += run.len();
        }
        // The counts (which borrow the answers' ARNs) go to the tally before the answers go.
        drop(runs);
        // The data keys and plaintexts are in the replies now: wipe them here.
        scratch.out.clear();
    }

    /// Hands the answers of a batch to `emit` in order, counting each for the event log as
    /// it goes (see [`Kms::count`]; runs of calls alike are added at once, [`Runs`]): each
    /// answer is looked up once.
    fn emit_counted<'s, V: 's>(
        &self,
        op: Op,
        n: usize,
        answer: impl Fn(usize) -> Answer<'s, V>,
        key: impl Fn(usize) -> &'s str,
        arn: impl Fn(&V) -> &'s Arc<str>,
        mut emit: impl FnMut(std::result::Result<V, &KmsError>),
    ) {
        let mut runs = self.runs(op);
        for i in 0..n {
            let a = answer(i);
            count(&mut runs, &a, key(i), &arn);
            a.emit(&mut emit);
        }
    }

    /// The event log's counters of a batch of `op` calls, when it keeps any.
    fn runs<'k>(&self, op: Op) -> Option<Runs<'_, 'k>> {
        self.shared
            .tally
            .as_ref()
            .map(|t| t.runs(op, &self.principal))
    }
}

/// Counts answer `a` to a batch item naming `key` in `runs` (see [`Kms::emit_counted`]).
fn count<'s, V>(
    runs: &mut Option<Runs<'_, 's>>,
    a: &Answer<'s, V>,
    key: &'s str,
    arn: impl Fn(&V) -> &'s Arc<str>,
) {
    let call = match a {
        Answer::Ok(v) => Call::Ok(arn(v)),
        Answer::Failed(e) => Call::Failed(key, e.kind()),
        Answer::DryRun => Call::Failed(key, ErrorKind::DryRunOperationException),
    };
    count_n(runs, call, 1);
}

/// Counts `n` calls alike in `runs` (none: nothing).
fn count_n<'s>(runs: &mut Option<Runs<'_, 's>>, call: Call<'s>, n: u64) {
    if let (Some(runs), 1..) = (runs, n) {
        runs.add_n(call, n);
    }
}

/// Checks a batch item's grant tokens; an item rarely has any, and then there is nothing to
/// check (no call).
#[inline]
fn check_batch_grant_tokens(tokens: &[String]) -> Result<()> {
    if tokens.is_empty() {
        return Ok(());
    }
    check_grant_tokens(tokens)
}

/// Items of an owned batch ([`Kms::encrypt_batch`] …) run through the engine at a time, in
/// its thread's reused [`BatchScratch`] (as the daemon runs its batches of 64): what one pass
/// touches (requests, answers lent from the scratch, the copies made of them) then stays in
/// the core's first-level cache, where a whole batch of 256 data keys did not; and what a
/// thread keeps between batches is bounded by this many answers (at most 4 KiB each).
const OWNED_CHUNK: usize = 64;

thread_local! {
    /// The scratch of the owned batch calls made on this thread. Its secrets are wiped after
    /// every batch (`BatchOut::clear`) and when the thread ends (`Sink`'s drop).
    static THREAD_SCRATCH: RefCell<BatchScratch> = RefCell::default();
}

/// Runs an owned batch call: `items` borrowed ([`EncryptRequest::borrowed`] …) and handed to
/// `run` [`OWNED_CHUNK`] at a time, in this thread's reused scratch.
fn in_owned_chunks<'a, T, R>(
    items: &'a [T],
    borrow: impl Fn(&'a T) -> R,
    mut run: impl FnMut(&[R], &mut BatchScratch),
) {
    with_thread_scratch(|scratch| {
        // Every answer is copied out of the scratch: splitting would not pay (`keep_home`).
        scratch.out.keep_home();
        let mut refs = Vec::with_capacity(items.len().min(OWNED_CHUNK));
        for chunk in items.chunks(OWNED_CHUNK) {
            refs.clear();
            refs.extend(chunk.iter().map(&borrow));
            run(&refs, scratch);
        }
    })
}

/// Runs `f` with this thread's reused scratch, so that a warm owned batch grows no buffer. The
/// scratch is taken out of the thread-local for the call and put back after, so a nested call
/// (or a thread being torn down) simply finds an empty one.
fn with_thread_scratch<R>(f: impl FnOnce(&mut BatchScratch) -> R) -> R {
    let mut scratch = THREAD_SCRATCH.try_with(RefCell::take).unwrap_or_default();
    let r = f(&mut scratch);
    // Gone only while the thread is torn down: the scratch is then dropped (and wiped).
    let _ = THREAD_SCRATCH.try_with(|cell| cell.replace(scratch));
    r
}

/// The reusable state of [`Kms::encrypt_batch_with`] and its siblings: the engine's answers
/// and the spare capacity of the vectors a batch builds. Reuse one across batches (the
/// daemon keeps one per event loop) so that a warm batch allocates nothing.
#[derive(Debug, Default)]
pub struct BatchScratch {
    out: BatchOut,
    /// Per item: where its answer is, or why it was refused first.
    slots: Vec<Result<Slot>>,
}

/// Where a batch item's answer is: item `item` of request `req` of those sent to the engine
/// (`item` is 0 but in a run of data keys, `data_key_run_req`).
#[derive(Debug, Clone, Copy)]
struct Slot {
    req: usize,
    item: u32,
}

impl Slot {
    /// The slot of an item sent as a request of its own.
    fn sent(req: usize) -> Slot {
        Slot { req, item: 0 }
    }
}

/// `a == b`, at once when both are the same map or empty (the commonest context is none).
#[inline]
fn same_context(a: &EncryptionContext, b: &EncryptionContext) -> bool {
    (a.is_empty() && b.is_empty()) || std::ptr::eq(a, b) || a == b
}

/// How many items from the first of `items` on are alike — one key named by the same text,
/// one size, one context, no grant tokens — and so go to the engine as one run request: at
/// most [`DATA_KEY_RUN`].
fn run_len(items: &[GenerateDataKeyRequestRef<'_>]) -> usize {
    let Some((head, rest)) = items.split_first() else {
        return 0;
    };
    if !head.grant_tokens.is_empty() {
        return 1;
    }
    let alike = |r: &&GenerateDataKeyRequestRef<'_>| {
        same_text(head.key_id, r.key_id)
            && r.grant_tokens.is_empty()
            && head.key_spec == r.key_spec
            && head.number_of_bytes == r.number_of_bytes
            && same_context(head.encryption_context, r.encryption_context)
    };
    1 + rest.iter().take(DATA_KEY_RUN - 1).take_while(alike).count()
}

/// One item's answer in a batch, as counted and emitted.
enum Answer<'s, V> {
    Ok(V),
    Failed(&'s KmsError),
    /// Succeeded, but the item asked for a dry run.
    DryRun,
}

impl<V> Answer<'_, V> {
    fn emit(self, emit: &mut impl FnMut(std::result::Result<V, &KmsError>)) {
        match self {
            Answer::Ok(v) => emit(Ok(v)),
            Answer::Failed(e) => emit(Err(e)),
            Answer::DryRun => emit(Err(&dry_run_succeeded())),
        }
    }
}
