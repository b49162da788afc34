//! The data-plane engine: Encrypt, Decrypt, ReEncrypt, GenerateDataKey(WithoutPlaintext),
//! GenerateRandom and their batch forms, GenerateMac and VerifyMac, Sign, Verify and
//! GetPublicKey, as fast as the machine allows.
//!
//! # Model
//! The engine has N shards (default: one per core). Each shard has a worker thread (pinned to
//! a core when possible), a `Mutex<ShardState>` and a bounded job queue. A shard owns the HSM
//! slots placed on it with their keys' material and per-key subkey schedules, a random pool,
//! a decrypt-subkey cache, and a full copy of the key and alias directories.
//!
//! A call runs on the caller's own thread whenever it can take a shard that holds the key
//! (`try_lock` only, never a blocking lock on the hot path; each thread prefers shard
//! `thread index % N` and tries the others when that one is busy). Only when every eligible
//! shard is busy is an owned copy of the request pushed to a shard's bounded queue
//! ([`QUEUE_CAPACITY`] jobs); the caller then spins (helping to drain that queue whenever it can
//! take the lock) for [`CALLER_SPIN`], and then parks. Workers drain their queue, spin for
//! [`WORKER_SPIN`] when idle, then park; a pusher wakes a worker only when it is parked.
//! Back-pressure: a caller facing a full queue runs the backlog and its own job as soon as it
//! can take the shard, or pushes once there is room — memory stays bounded, callers slow down.
//!
//! Batches: the caller takes a home shard, hands items whose keys live only elsewhere to those
//! shards (one queue push per shard), and — for batches of at least [`SPLIT_MIN`] items, while
//! fewer batch callers than shards are active — splits the rest evenly with shards that are
//! free and not used by another batch caller within [`RECENT_CALLER`], so one caller can use
//! both cores but two callers don't fight over each other's shards. A split whose remote part
//! finishes late (its worker was parked, or shares the caller's core — callers are not pinned)
//! pauses splitting for [`SPLIT_BACKOFF`] batches. A caller that copies every answer out
//! afterwards keeps its batches on its own shard (`BatchOut::keep_home`): the service's owned
//! batch calls do.
//!
//! Each shard is cache-padded, and every piece of shard state written per request (subkey
//! counters, random pool) lives on its own cache lines, so two cores serving two shards never
//! write a shared line.
//!
//! # Control plane
//! The control plane decides states and pushes outcomes with [`Engine::apply`], which takes
//! every shard's lock (blocking), applies the changes to all shards, and returns: a request
//! that starts after `apply` returns sees them. A custom HSM is placed on the least loaded
//! shard; the default fleet ([`HsmSlot::Default`]) is on every shard.
//!
//! # Errors
//! Unknown key [`KmsError::key_not_found`], unknown alias [`KmsError::alias_not_found`],
//! authorizer refusal [`KmsError::not_authorized`] (checked before the gate), closed gate: the
//! gate's error, no live replica `KMSInvalidStateException`. Decrypt of a blob that names a key
//! the engine does not know answers `InvalidCiphertextException` (a damaged key-id byte must
//! read as a damaged blob). A shut-down engine or a shard whose worker panicked answers `KMSInternalException`.
//!
//! # Encryption context
//! Contexts are [`EncryptionContext`] (`BTreeMap<String, String>`); an empty map means none.
//! Member order never matters (see `docs/ciphertext.md`).

pub(crate) mod latency;
mod sched;
mod shard;
mod sink;
mod types;

use std::borrow::Cow;
use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

pub use sched::{
    CALLER_SPIN, QUEUE_CAPACITY, RECENT_CALLER, SPLIT_BACKOFF, SPLIT_MIN, WORKER_SPIN,
};

use crate::crypto::fork::{ForkGuard, Joinable};
/// The raw-crypto floor's parts: the pooled randomness and the counter nonces the engine's
/// shards use. They are public so that a raw aws-lc-rs loop can be built from the same parts
/// the engine uses — the floor that `kmscks bench` and the crypto benches measure it against.
pub use crate::crypto::random::RandomPool;
/// See [`RandomPool`]: the engine's nonce construction, public for the raw floor.
pub use crate::crypto::subkey::counter_nonce;
use crate::err;
use crate::error::{check_value, Constraint, KmsError, Result};
use crate::secret::SecretBytes;
use crate::types::limits::{
    CIPHERTEXT_LEN, MAC_LEN, MESSAGE_LEN, NUMBER_OF_BYTES, PLAINTEXT_LEN, SIGNATURE_LEN,
};
pub use crate::types::EncryptionContext;
use crate::types::{DataKeySpec, KeyName, KeyRef, MacAlgorithm, MessageType, SigningAlgorithm};
use sched::{Inner, Shard};
pub(crate) use shard::Req;
use shard::{Resp, ShardState};
pub use sink::{reuse_vec, BatchOut, Sink};
pub use types::*;

/// The data key length for GenerateDataKey's `KeySpec` / `NumberOfBytes` pair.
pub fn data_key_len(spec: Option<DataKeySpec>, number_of_bytes: Option<u32>) -> Result<usize> {
    match (spec, number_of_bytes) {
        (Some(s), None) => Ok(s.byte_len()),
        (None, Some(n)) => check_number_of_bytes(n),
        _ => Err(err!(
            ValidationException,
            "Please specify either number of bytes or key spec."
        )),
    }
}

/// The request of a GenerateDataKey of `len` bytes ([`data_key_len`] checked it; `plaintext`:
/// with the data key in the answer).
pub(crate) fn data_key_req<'a>(
    key: KeyName<'a>,
    len: usize,
    context: &'a EncryptionContext,
    plaintext: bool,
) -> Req<'a> {
    data_key_run_req(key, len, context, plaintext, 1)
}

/// The request of `items` GenerateDataKey items alike, as [`data_key_req`] builds one: a
/// run of batch items (at most [`DATA_KEY_RUN`]) that one shard seals together. The shard
/// may answer only the run's first items; the batch call then sends the others again, each
/// on its own (`Engine::send_again`), so [`BatchOut::data_key_item`] answers every item.
pub(crate) fn data_key_run_req<'a>(
    key: KeyName<'a>,
    len: usize,
    context: &'a EncryptionContext,
    plaintext: bool,
    items: u32,
) -> Req<'a> {
    Req::DataKey {
        key,
        len,
        ctx: Cow::Borrowed(context),
        plaintext,
        items,
    }
}

/// The most batch items one run request ([`data_key_run_req`]) stands for: enough to pay its
/// dispatch once for many items, few enough that a batch split across the shards still
/// splits into parts of about equal size.
pub(crate) const DATA_KEY_RUN: usize = 32;

/// Encrypt's check of its plaintext: within [`PLAINTEXT_LEN`] bytes.
pub(crate) fn check_plaintext(plaintext: &[u8]) -> Result<()> {
    check_len(plaintext.len(), "plaintext", PLAINTEXT_LEN)
}

/// The request of an Encrypt of `plaintext` ([`check_plaintext`] checked it) under `key`,
/// checked as `action`.
pub(crate) fn encrypt_req<'a>(
    key: KeyName<'a>,
    plaintext: &'a [u8],
    context: &'a EncryptionContext,
    action: Action,
) -> Req<'a> {
    Req::Encrypt {
        key,
        plaintext: Cow::Borrowed(plaintext),
        ctx: Cow::Borrowed(context),
        action,
    }
}

/// Decrypt's check of its blob: within [`CIPHERTEXT_LEN`] bytes.
pub(crate) fn check_ciphertext(ciphertext: &[u8]) -> Result<()> {
    check_len(ciphertext.len(), "ciphertextBlob", CIPHERTEXT_LEN)
}

/// The request of a Decrypt of `ciphertext` ([`check_ciphertext`] checked it; `key`, if
/// given, must be the blob's), checked as `action`.
pub(crate) fn decrypt_req<'a>(
    ciphertext: &'a [u8],
    context: &'a EncryptionContext,
    key: Option<KeyName<'a>>,
    action: Action,
) -> Req<'a> {
    Req::Decrypt {
        blob: Cow::Borrowed(ciphertext),
        ctx: Cow::Borrowed(context),
        key,
        action,
    }
}

fn check_number_of_bytes(n: u32) -> Result<usize> {
    check_value("numberOfBytes", n, NUMBER_OF_BYTES).map(|n| n as usize)
}

/// `len` within `bounds` (inclusive), else AWS's `ValidationException` for `member`, worded
/// without the value (a secret, or a blob). Also the service's check for the requests that
/// only pass through the engine for their key (the asymmetric operations).
pub(crate) fn check_len(len: usize, member: &str, bounds: (usize, usize)) -> Result<()> {
    if len < bounds.0 {
        return Err(KmsError::validation_of_secret(
            member,
            Constraint::MinLength(bounds.0),
        ));
    }
    if len > bounds.1 {
        return Err(KmsError::validation_of_secret(
            member,
            Constraint::MaxLength(bounds.1),
        ));
    }
    Ok(())
}

fn internal_mismatch() -> KmsError {
    err!(
        KMSInternalException,
        "engine answered with the wrong response kind"
    )
}

// A single call's answer: its outputs written into a sink of its own (inline) or owned
// (queued), taken out whole (`Sink::take_blob` hands over the sink's buffer, no copy).

fn to_encrypt(inner: &Inner, principal: &str, req: &Req<'_>) -> Result<EncryptOutput> {
    let mut sink = Sink::new();
    let mut resp = inner.dispatch_one_in(principal, req, &mut sink)?;
    resp.settle();
    match resp {
        Resp::Blob(b, key_arn) => Ok(EncryptOutput {
            ciphertext_blob: sink.take_blob(b),
            key_arn,
        }),
        _ => Err(internal_mismatch()),
    }
}

fn to_decrypt(inner: &Inner, principal: &str, req: &Req<'_>) -> Result<DecryptOutput> {
    let mut sink = Sink::new();
    let mut resp = inner.dispatch_one_in(principal, req, &mut sink)?;
    resp.settle();
    match resp {
        Resp::Plain(p, key_arn) => Ok(DecryptOutput {
            plaintext: sink.take_secret(p),
            key_arn,
        }),
        _ => Err(internal_mismatch()),
    }
}

fn to_data_key(inner: &Inner, principal: &str, req: &Req<'_>) -> Result<DataKeyOutput> {
    let mut sink = Sink::new();
    let mut resp = inner.dispatch_one_in(principal, req, &mut sink)?;
    resp.settle();
    match resp {
        Resp::DataKey(b, p, key_arn) => Ok(DataKeyOutput {
            ciphertext_blob: sink.take_blob(b),
            plaintext: p.map(|p| sink.take_secret(p)),
            key_arn,
        }),
        _ => Err(internal_mismatch()),
    }
}

/// Batches of at least this many controls are applied to the shards in parallel (one thread
/// per shard): only bulk loads are that large, and a thread costs more than a small batch.
const PARALLEL_APPLY: usize = 4096;

/// The engine. Share it between threads by reference or `Arc`.
pub struct Engine {
    inner: Arc<Inner>,
    workers: Mutex<Vec<Joinable<()>>>,
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("shards", &self.inner.shards.len())
            .field("shut_down", &self.inner.is_shut_down())
            .finish()
    }
}

impl Engine {
    /// Starts an engine with its worker threads.
    pub fn new(config: EngineConfig) -> Result<Engine> {
        let n = config.shard_count();
        let shards = (0..n)
            .map(|i| crossbeam::utils::CachePadded::new(Shard::new(ShardState::new(i, n, &config))))
            .collect::<Vec<_>>()
            .into_boxed_slice();
        let inner = Arc::new(Inner {
            shards,
            shutdown: Default::default(),
            batch_callers: Default::default(),
            epoch: std::time::Instant::now(),
            split_skip: Default::default(),
            split: config.split_batches,
            fork: ForkGuard::new(),
        });
        let cores = if config.pin_workers {
            core_affinity::get_core_ids().unwrap_or_default()
        } else {
            Vec::new()
        };
        let mut workers = Vec::with_capacity(n);
        for i in 0..n {
            let inner2 = inner.clone();
            let core = (!cores.is_empty()).then(|| cores[i % cores.len()]);
            let spawned = std::thread::Builder::new()
                .name(format!("kmscks-shard-{i}"))
                .spawn(move || {
                    if let Some(c) = core {
                        core_affinity::set_for_current(c);
                    }
                    sched::worker_loop(inner2, i)
                });
            match spawned {
                Ok(h) => {
                    // Each OnceLock is set exactly once, here.
                    let _ = inner.shards[i].worker.set(h.thread().clone());
                    workers.push(Joinable::new(h));
                }
                Err(e) => {
                    let engine = Engine {
                        inner,
                        workers: Mutex::new(workers),
                    };
                    engine.shutdown();
                    return Err(err!(
                        KMSInternalException,
                        "could not start engine worker {i}: {e}"
                    ));
                }
            }
        }
        Ok(Engine {
            inner,
            workers: Mutex::new(workers),
        })
    }

    /// Number of shards.
    pub fn shards(&self) -> usize {
        self.inner.shards.len()
    }

    /// Applies control-plane changes to every shard that serves, in order, before returning.
    /// All or nothing: the batch is checked whole first (an unknown HSM, a replica, alias or
    /// gate of a missing key) and, if any change is invalid, none is applied and its error
    /// returned.
    ///
    /// A shard that failed (a panic while its lock was held poisons it) is marked dead and
    /// skipped: it never serves again, so a revocation that reaches every other shard has
    /// reached every shard that answers — one failed shard must not keep the rest serving what
    /// the control plane has since closed. Only when every shard failed is the change refused.
    pub fn apply(&self, changes: &[Control]) -> Result<()> {
        if let Some(e) = self.inner.refusal() {
            return Err(e);
        }
        let mut guards = Vec::with_capacity(self.shards());
        let mut dead = 0u64;
        for (i, s) in self.inner.shards.iter().enumerate() {
            let guard = if s.is_dead() {
                None
            } else {
                s.state.lock().ok()
            };
            match guard {
                Some(g) => guards.push((i, g)),
                None => {
                    s.mark_dead();
                    dead |= 1u64 << i;
                }
            }
        }
        if guards.is_empty() {
            return Err(err!(
                KMSInternalException,
                "every engine shard failed (their workers panicked); restart kmscks"
            ));
        }
        // Every shard holds the same directories, so one shard's view validates for all.
        guards[0].1.validate(changes)?;
        if changes.len() < PARALLEL_APPLY || guards.len() < 2 {
            for c in changes {
                let target = guards[0].1.least_loaded_shard(dead);
                for (_, g) in guards.iter_mut() {
                    g.apply(c, target)?;
                }
            }
            return Ok(());
        }
        // A bulk load (the first sync after an open, 100,000 keys at AWS's quota): each shard
        // applies the whole batch on its own thread. The shard each new HSM goes to is chosen
        // first, as the sequential path would choose it, so every shard places it alike.
        let targets = guards[0].1.plan_targets(changes, dead);
        let added = changes
            .iter()
            .filter(|c| matches!(c, Control::PutKey { .. }))
            .count();
        let apply_all = |st: &mut ShardState| -> Result<()> {
            st.reserve_keys(added);
            for (c, &target) in changes.iter().zip(&targets) {
                st.apply(c, target)?;
            }
            Ok(())
        };
        let (first, rest) = guards.split_at_mut(1);
        std::thread::scope(|scope| {
            let others: Vec<_> = rest
                .iter_mut()
                .map(|(i, g)| {
                    let st: &mut ShardState = g;
                    (*i, scope.spawn(move || apply_all(st)))
                })
                .collect();
            let mine = apply_all(&mut first[0].1);
            others.into_iter().fold(mine, |acc, (i, h)| {
                // A panic in a shard's apply is a bug: that shard, left part applied (its lock
                // is held here, so not poisoned), serves no more; reported as an internal error.
                let r = h.join().unwrap_or_else(|_| {
                    self.inner.shards[i].mark_dead();
                    Err(err!(
                        KMSInternalException,
                        "engine shard {i}'s apply panicked"
                    ))
                });
                acc.and(r)
            })
        })
    }

    /// Encrypt: [`PLAINTEXT_LEN`] bytes under `key`.
    pub fn encrypt(
        &self,
        principal: &str,
        key: &KeyRef,
        plaintext: &[u8],
        context: &EncryptionContext,
    ) -> Result<EncryptOutput> {
        self.encrypt_as(principal, key, plaintext, context, Action::Encrypt)
    }

    /// [`Engine::encrypt`] checked against `action` (`ReEncryptTo` for the destination half
    /// of a ReEncrypt whose source is an asymmetric key).
    pub fn encrypt_as(
        &self,
        principal: &str,
        key: &KeyRef,
        plaintext: &[u8],
        context: &EncryptionContext,
        action: Action,
    ) -> Result<EncryptOutput> {
        check_plaintext(plaintext)?;
        let req = encrypt_req(key.as_name(), plaintext, context, action);
        let _pay = latency::PayOnReturn::new();
        to_encrypt(&self.inner, principal, &req)
    }

    /// Seals a data key pair's private key under `key` as Encrypt would (a blob Decrypt
    /// takes), checked as `action` (GenerateDataKeyPair or its WithoutPlaintext form), which
    /// AWS allows under symmetric keys of the default key store only.
    pub fn seal_key_pair(
        &self,
        principal: &str,
        key: &KeyRef,
        private_key: &[u8],
        context: &EncryptionContext,
        action: Action,
    ) -> Result<EncryptOutput> {
        debug_assert!(action.seals_key_pair(), "{action:?}");
        check_len(private_key.len(), "privateKey", PLAINTEXT_LEN)?;
        let req = Req::Encrypt {
            key: key.as_name(),
            plaintext: Cow::Borrowed(private_key),
            ctx: Cow::Borrowed(context),
            action,
        };
        let _pay = latency::PayOnReturn::new();
        to_encrypt(&self.inner, principal, &req)
    }

    /// Decrypt: the key comes from the blob; `key`, if given, must be that key
    /// (`IncorrectKeyException`).
    pub fn decrypt(
        &self,
        principal: &str,
        ciphertext: &[u8],
        context: &EncryptionContext,
        key: Option<&KeyRef>,
    ) -> Result<DecryptOutput> {
        self.decrypt_as(principal, ciphertext, context, key, Action::Decrypt)
    }

    /// [`Engine::decrypt`] checked against `action` (`ReEncryptFrom` for the source half of
    /// a ReEncrypt whose destination is an asymmetric key).
    pub fn decrypt_as(
        &self,
        principal: &str,
        ciphertext: &[u8],
        context: &EncryptionContext,
        key: Option<&KeyRef>,
        action: Action,
    ) -> Result<DecryptOutput> {
        check_ciphertext(ciphertext)?;
        let req = decrypt_req(ciphertext, context, key.map(KeyRef::as_name), action);
        let _pay = latency::PayOnReturn::new();
        to_decrypt(&self.inner, principal, &req)
    }

    /// ReEncrypt: decrypts under the blob's key (checked against `source_key` if given) and
    /// encrypts the plaintext under `destination_key`; the plaintext never leaves the engine.
    pub fn re_encrypt(
        &self,
        principal: &str,
        ciphertext: &[u8],
        source_context: &EncryptionContext,
        source_key: Option<&KeyRef>,
        destination_key: &KeyRef,
        destination_context: &EncryptionContext,
    ) -> Result<ReEncryptOutput> {
        check_len(ciphertext.len(), "ciphertextBlob", CIPHERTEXT_LEN)?;
        let dec = Req::Decrypt {
            blob: Cow::Borrowed(ciphertext),
            ctx: Cow::Borrowed(source_context),
            key: source_key.map(KeyRef::as_name),
            action: Action::ReEncryptFrom,
        };
        let plain = to_decrypt(&self.inner, principal, &dec);
        let out = plain.and_then(|plain| {
            let enc = Req::Encrypt {
                key: destination_key.as_name(),
                plaintext: Cow::Borrowed(plain.plaintext.expose()),
                ctx: Cow::Borrowed(destination_context),
                action: Action::ReEncryptTo,
            };
            let out = to_encrypt(&self.inner, principal, &enc);
            drop(enc);
            out.map(|out| (plain, out))
        });
        latency::pay();
        let (plain, out) = out?;
        Ok(ReEncryptOutput {
            ciphertext_blob: out.ciphertext_blob,
            source_key_arn: plain.key_arn,
            key_arn: out.key_arn,
        })
    }

    /// GenerateDataKey: exactly one of `key_spec` and `number_of_bytes`.
    pub fn generate_data_key(
        &self,
        principal: &str,
        key: &KeyRef,
        key_spec: Option<DataKeySpec>,
        number_of_bytes: Option<u32>,
        context: &EncryptionContext,
    ) -> Result<DataKeyOutput> {
        self.data_key(principal, key, key_spec, number_of_bytes, context, true)
    }

    /// GenerateDataKeyWithoutPlaintext: as GenerateDataKey, without the plaintext.
    pub fn generate_data_key_without_plaintext(
        &self,
        principal: &str,
        key: &KeyRef,
        key_spec: Option<DataKeySpec>,
        number_of_bytes: Option<u32>,
        context: &EncryptionContext,
    ) -> Result<DataKeyOutput> {
        self.data_key(principal, key, key_spec, number_of_bytes, context, false)
    }

    fn data_key(
        &self,
        principal: &str,
        key: &KeyRef,
        key_spec: Option<DataKeySpec>,
        number_of_bytes: Option<u32>,
        context: &EncryptionContext,
        plaintext: bool,
    ) -> Result<DataKeyOutput> {
        let len = data_key_len(key_spec, number_of_bytes)?;
        let req = data_key_req(key.as_name(), len, context, plaintext);
        let _pay = latency::PayOnReturn::new();
        to_data_key(&self.inner, principal, &req)
    }

    /// GenerateRandom: [`NUMBER_OF_BYTES`] bytes from the HSMs in `fleet` (None: any shard).
    pub fn generate_random(
        &self,
        number_of_bytes: u32,
        fleet: Option<&[HsmSlot]>,
    ) -> Result<SecretBytes> {
        let len = check_number_of_bytes(number_of_bytes)?;
        let req = Req::Random {
            len,
            fleet: fleet.map(Cow::Borrowed),
        };
        let mut resp = self.inner.dispatch_one("", &req)?;
        resp.settle();
        match resp {
            Resp::Random(b) => Ok(b),
            _ => Err(internal_mismatch()),
        }
    }

    /// GenerateMac: the HMAC of `message` ([`MESSAGE_LEN`] bytes) under the HMAC key `key`,
    /// whose one algorithm `algorithm` must be (`InvalidKeyUsageException`).
    pub fn generate_mac(
        &self,
        principal: &str,
        key: &KeyRef,
        message: &[u8],
        algorithm: MacAlgorithm,
    ) -> Result<MacOutput> {
        check_len(message.len(), "message", MESSAGE_LEN)?;
        let req = Req::Mac {
            key: key.as_name(),
            message: Cow::Borrowed(message),
            algorithm,
            mac: None,
        };
        let mut resp = self.inner.dispatch_one(principal, &req)?;
        resp.settle();
        match resp {
            Resp::Mac(mac, key_arn) => Ok(MacOutput { mac, key_arn }),
            _ => Err(internal_mismatch()),
        }
    }

    /// VerifyMac: whether `mac` is the HMAC of `message` under `key` with `algorithm`; the
    /// key's ARN when it is, `KMSInvalidMacException` when it is not.
    pub fn verify_mac(
        &self,
        principal: &str,
        key: &KeyRef,
        message: &[u8],
        algorithm: MacAlgorithm,
        mac: &[u8],
    ) -> Result<Arc<str>> {
        check_len(message.len(), "message", MESSAGE_LEN)?;
        check_len(mac.len(), "mac", MAC_LEN)?;
        let req = Req::Mac {
            key: key.as_name(),
            message: Cow::Borrowed(message),
            algorithm,
            mac: Some(Cow::Borrowed(mac)),
        };
        let mut resp = self.inner.dispatch_one(principal, &req)?;
        resp.settle();
        match resp {
            Resp::MacValid(key_arn) => Ok(key_arn),
            _ => Err(internal_mismatch()),
        }
    }

    /// Sign: the signature of `message` (RAW, up to [`MESSAGE_LEN`] bytes, or the DIGEST of
    /// the algorithm's length) with the signing key `key` and one of its algorithms.
    pub fn sign(
        &self,
        principal: &str,
        key: &KeyRef,
        message: &[u8],
        message_type: MessageType,
        algorithm: SigningAlgorithm,
    ) -> Result<SignOutput> {
        check_len(message.len(), "message", MESSAGE_LEN)?;
        let req = Req::Sign {
            key: key.as_name(),
            message: Cow::Borrowed(message),
            message_type,
            algorithm,
            signature: None,
        };
        let mut resp = self.inner.dispatch_one(principal, &req)?;
        resp.settle();
        match resp {
            Resp::Signature(signature, key_arn) => Ok(SignOutput { signature, key_arn }),
            _ => Err(internal_mismatch()),
        }
    }

    /// Verify: whether `signature` is one of `message` by `key` with `algorithm`; the key's
    /// ARN when it is, `KMSInvalidSignatureException` when it is not.
    pub fn verify(
        &self,
        principal: &str,
        key: &KeyRef,
        (message, message_type): (&[u8], MessageType),
        algorithm: SigningAlgorithm,
        signature: &[u8],
    ) -> Result<Arc<str>> {
        check_len(message.len(), "message", MESSAGE_LEN)?;
        check_len(signature.len(), "signature", SIGNATURE_LEN)?;
        let req = Req::Sign {
            key: key.as_name(),
            message: Cow::Borrowed(message),
            message_type,
            algorithm,
            signature: Some(Cow::Borrowed(signature)),
        };
        let mut resp = self.inner.dispatch_one(principal, &req)?;
        resp.settle();
        match resp {
            Resp::SignatureValid(key_arn) => Ok(key_arn),
            _ => Err(internal_mismatch()),
        }
    }

    /// GetPublicKey: the asymmetric key `key` (its public key, spec and usage) and its ARN;
    /// `UnsupportedOperationException` for a symmetric or HMAC key.
    pub fn public_key(&self, principal: &str, key: &KeyRef) -> Result<(Arc<PrivateKey>, Arc<str>)> {
        let (private, arn) = self.private_key(principal, key, Action::GetPublicKey)?;
        match private {
            Some(p) if p.public_der().is_some() => Ok((p, arn)),
            Some(p) => Err(err!(
                UnsupportedOperationException,
                "{arn} key spec is {} which is not valid for GetPublicKey.",
                p.spec()
            )),
            None => Err(err!(
                UnsupportedOperationException,
                "{arn} key spec is SYMMETRIC_DEFAULT which is not valid for GetPublicKey."
            )),
        }
    }

    /// The parsed key of `key` (None for a symmetric key) and its ARN, once the key is
    /// usable and `principal` may perform `action` with it: the asymmetric operations
    /// (Encrypt, Decrypt and ReEncrypt with an RSA algorithm, DeriveSharedSecret) run their
    /// cryptography with it on the caller's thread, outside the shard's lock.
    pub fn private_key(
        &self,
        principal: &str,
        key: &KeyRef,
        action: Action,
    ) -> Result<(Option<Arc<PrivateKey>>, Arc<str>)> {
        let req = Req::Private {
            key: key.as_name(),
            action,
        };
        let mut resp = self.inner.dispatch_one(principal, &req)?;
        resp.settle();
        match resp {
            Resp::Private(k, key_arn) => Ok((k, key_arn)),
            _ => Err(internal_mismatch()),
        }
    }

    /// Encrypt, many at once; one result per item, in order.
    pub fn encrypt_batch(
        &self,
        principal: &str,
        items: &[EncryptItem<'_>],
    ) -> Vec<Result<EncryptOutput>> {
        let mut out = BatchOut::new();
        self.encrypt_batch_into(principal, items, &mut out);
        (0..out.len())
            .map(|i| {
                out.encrypt(i)
                    .map(|v| EncryptOutput {
                        ciphertext_blob: v.ciphertext_blob.to_vec(),
                        key_arn: v.key_arn.clone(),
                    })
                    .map_err(Clone::clone)
            })
            .collect()
    }

    /// [`Engine::encrypt_batch`], the answers left in `out` ([`BatchOut::encrypt`]): with an
    /// `out` reused from batch to batch, a batch served on the caller's thread allocates
    /// nothing.
    pub fn encrypt_batch_into(
        &self,
        principal: &str,
        items: &[EncryptItem<'_>],
        out: &mut BatchOut,
    ) {
        self.batch_into(
            principal,
            items,
            |it| {
                check_plaintext(it.plaintext)?;
                Ok(encrypt_req(
                    it.key.borrowed(),
                    it.plaintext,
                    it.context,
                    Action::Encrypt,
                ))
            },
            out,
        )
    }

    /// Decrypt, many at once; one result per item, in order.
    pub fn decrypt_batch(
        &self,
        principal: &str,
        items: &[DecryptItem<'_>],
    ) -> Vec<Result<DecryptOutput>> {
        let mut out = BatchOut::new();
        self.decrypt_batch_into(principal, items, &mut out);
        (0..out.len())
            .map(|i| {
                out.decrypt(i)
                    .map(|v| DecryptOutput {
                        plaintext: SecretBytes::from_slice(v.plaintext),
                        key_arn: v.key_arn.clone(),
                    })
                    .map_err(Clone::clone)
            })
            .collect()
    }

    /// [`Engine::decrypt_batch`], the answers left in `out` ([`BatchOut::decrypt`]).
    pub fn decrypt_batch_into(
        &self,
        principal: &str,
        items: &[DecryptItem<'_>],
        out: &mut BatchOut,
    ) {
        self.batch_into(
            principal,
            items,
            |it| {
                check_ciphertext(it.ciphertext)?;
                Ok(decrypt_req(
                    it.ciphertext,
                    it.context,
                    it.key.as_ref().map(KeyName::borrowed),
                    Action::Decrypt,
                ))
            },
            out,
        )
    }

    /// GenerateDataKey (or WithoutPlaintext when `with_plaintext` is false), many at once.
    pub fn generate_data_key_batch(
        &self,
        principal: &str,
        items: &[DataKeyItem<'_>],
        with_plaintext: bool,
    ) -> Vec<Result<DataKeyOutput>> {
        let mut out = BatchOut::new();
        self.generate_data_key_batch_into(principal, items, with_plaintext, &mut out);
        (0..out.len())
            .map(|i| {
                out.data_key(i)
                    .map(|v| DataKeyOutput {
                        ciphertext_blob: v.ciphertext_blob.to_vec(),
                        plaintext: v.plaintext.map(SecretBytes::from_slice),
                        key_arn: v.key_arn.clone(),
                    })
                    .map_err(Clone::clone)
            })
            .collect()
    }

    /// [`Engine::generate_data_key_batch`], the answers left in `out`
    /// ([`BatchOut::data_key`]).
    pub fn generate_data_key_batch_into(
        &self,
        principal: &str,
        items: &[DataKeyItem<'_>],
        with_plaintext: bool,
        out: &mut BatchOut,
    ) {
        self.batch_into(
            principal,
            items,
            |it| {
                let len = data_key_len(it.key_spec, it.number_of_bytes)?;
                Ok(data_key_req(
                    it.key.borrowed(),
                    len,
                    it.context,
                    with_plaintext,
                ))
            },
            out,
        )
    }

    /// A batch of requests the caller built (each with [`encrypt_req`], [`decrypt_req`] or
    /// [`data_key_req`]), in the spare vector [`BatchOut::spare_reqs`] gave it, the answers
    /// left in `out` as by [`Engine::encrypt_batch_into`] and its siblings (one per request,
    /// in order); the vector goes back to `out` as its spare. The service's batch calls build
    /// each item's request in their own pass over the items, rather than a list of items that
    /// a second pass here turns into requests.
    pub(crate) fn dispatch_reqs_into(
        &self,
        principal: &str,
        reqs: Vec<Req<'_>>,
        out: &mut BatchOut,
    ) {
        out.clear();
        self.dispatch_built(principal, reqs, out);
    }

    fn batch_into<'a, I>(
        &self,
        principal: &str,
        items: &'a [I],
        make: impl Fn(&'a I) -> Result<Req<'a>>,
        out: &mut BatchOut,
    ) {
        out.clear();
        // Invalid items are answered here; `errors` is usually empty.
        let mut reqs: Vec<Req<'a>> = reuse_vec(std::mem::take(&mut out.reqs));
        for (i, it) in items.iter().enumerate() {
            match make(it) {
                Ok(r) => reqs.push(r),
                Err(e) => out.errors.push((i, e)),
            }
        }
        self.dispatch_built(principal, reqs, out);
    }

    /// Dispatches the requests built for a batch whose other items `out.errors` refused
    /// (by index), leaving one answer per item in `out` and `reqs`' allocation as its spare;
    /// then pays the latency the answers owe (see `Resp::settle`).
    fn dispatch_built(&self, principal: &str, reqs: Vec<Req<'_>>, out: &mut BatchOut) {
        if out.errors.is_empty() {
            // The usual case: the engine's answers are the items' answers, left in place.
            self.inner.dispatch_batch(
                principal,
                &reqs,
                !out.home_only,
                &mut out.results,
                &mut out.sink,
            );
            self.send_again(principal, &reqs, out);
        } else {
            self.inner.dispatch_batch(
                principal,
                &reqs,
                !out.home_only,
                &mut out.answers,
                &mut out.sink,
            );
            let items = reqs.len() + out.errors.len();
            let mut answers = out.answers.drain(..);
            let mut errors = out.errors.drain(..).peekable();
            for i in 0..items {
                let r = match errors.next_if(|(k, _)| *k == i) {
                    Some((_, e)) => Some(Err(e)),
                    None => answers.next().flatten(),
                };
                out.results.push(r);
            }
        }
        out.reqs = reuse_vec(reqs);
        // Only an answer a slow HSM served owes latency: `settle` looks at each answer's kind.
        for resp in out
            .results
            .iter_mut()
            .chain(&mut out.again)
            .flatten()
            .flatten()
        {
            resp.settle();
        }
        latency::pay();
    }

    /// Sends the items of the run requests in `reqs` that their run did not reach (it stops
    /// early: see `ShardState::data_key_items`) again, one request each, their answers left
    /// in `out.again`. A run's items are alike, so each is its run's request for one item.
    /// The usual batch has none, and costs one look at each run.
    fn send_again(&self, principal: &str, reqs: &[Req<'_>], out: &mut BatchOut) {
        let mut again = Vec::new();
        for (j, req) in reqs.iter().enumerate() {
            let Req::DataKey {
                key,
                len,
                ctx,
                plaintext,
                items,
            } = req
            else {
                continue;
            };
            let answered = out.items_answered(j);
            if answered < *items {
                out.again_at.push((j, again.len()));
                for _ in answered..*items {
                    again.push(data_key_req(key.borrowed(), *len, ctx, *plaintext));
                }
            }
        }
        if !again.is_empty() {
            self.inner.dispatch_batch(
                principal,
                &again,
                !out.home_only,
                &mut out.again,
                &mut out.sink,
            );
        }
    }

    /// Stops and joins every worker. Queued requests and requests arriving later answer
    /// `KMSInternalException`; requests already running inline finish. Idempotent; also run
    /// on drop. (Takes `&self` so it can be called while other threads still share the engine
    /// through an `Arc`.)
    pub fn shutdown(&self) {
        self.inner.shutdown.store(true, Ordering::SeqCst);
        // In a forked child the workers, and the callers whose jobs are queued, are the
        // parent's threads: this process has none of them to wake, wait for or answer.
        let forked = self.inner.fork.forked();
        if !forked {
            for s in self.inner.shards.iter() {
                if let Some(t) = s.worker.get() {
                    t.unpark();
                }
            }
        }
        let handles = match self.workers.lock() {
            Ok(mut g) => std::mem::take(&mut *g),
            Err(p) => std::mem::take(&mut *p.into_inner()),
        };
        for h in handles {
            let _ = h.join();
        }
        if !forked {
            for s in self.inner.shards.iter() {
                s.discard_queue();
            }
        }
    }

    /// Jobs waiting in the shards' queues right now: requests (or batch parts) handed over
    /// because every shard that could serve them was busy. A snapshot for tests, which use it
    /// to prove callers are queued before they act (`tests/engine.rs` shuts down with callers
    /// in flight); not a synchronisation primitive, and not part of the supported API.
    #[doc(hidden)]
    pub fn queued_jobs(&self) -> usize {
        self.inner.shards.iter().map(|s| s.queued()).sum()
    }

    /// Whether [`Engine::shutdown`] has run.
    pub fn is_shut_down(&self) -> bool {
        self.inner.is_shut_down()
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
mod tests;
