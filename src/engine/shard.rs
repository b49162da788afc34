//! One shard's state and the request logic that runs inside it.
//!
//! Every shard holds a full copy of the directories (keys, aliases, which HSM slots hold which
//! key, where each HSM is placed) and the key material of the HSM slots placed on it, so a
//! request is answered entirely inside one shard once it holds the shard's lock.
//!
//! The copy is compact, because it is one per shard of up to 100,000 keys: one map entry per key
//! (its shared authorizer, its gate, its holders and its material, and once it seals, its
//! epoch's salt, counter and 32-byte subkey); the ARN answers carry and the expanded sealing
//! context only for the keys used most, at most [`EngineConfig::seal_cache`] of them (a CLOCK
//! sweep drops the least recently used). A key beyond them seals by expanding its subkey for
//! that one call.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use zeroize::Zeroize;

use super::sink::{Out, Sink};
use super::{
    Action, ActionSet, Authorizer, Control, EngineConfig, EngineGrant, Expiry, Gate, HsmSlot,
    KeyVersions, PrivateKey, SlotSet,
};
use crate::crypto::blob;
use crate::crypto::random::RandomPool;
use crate::crypto::subkey::{derive_subkey, nonce_version, SubkeyCache, SubkeySchedule};
use crate::err;
use crate::error::{ErrorKind, KmsError, Result};
use crate::secret::SecretBytes;
use crate::types::{
    EncryptionContext, HsmId, KeyId, KeyName, MacAlgorithm, MessageType, PolicyVerdict, Scope,
    SigningAlgorithm,
};

/// The encryption context of the operations that take none (GenerateMac, VerifyMac), for the
/// grant checks that read one.
static NO_CONTEXT: EncryptionContext = EncryptionContext::new();

/// Seals of keys with no kept context, while the kept set is full, per step of its clock hand.
pub(super) const SWEEP_EVERY: u32 = 8;

/// A data-plane request, borrowed from the caller (inline path) or owned (queued path).
pub(crate) enum Req<'a> {
    Encrypt {
        key: KeyName<'a>,
        plaintext: Cow<'a, [u8]>,
        ctx: Cow<'a, EncryptionContext>,
        action: Action,
    },
    Decrypt {
        blob: Cow<'a, [u8]>,
        ctx: Cow<'a, EncryptionContext>,
        key: Option<KeyName<'a>>,
        action: Action,
    },
    /// `items` GenerateDataKey items alike (one key, length, context and action): one item,
    /// or a run of them answered together (`ShardState::data_key_items`).
    DataKey {
        key: KeyName<'a>,
        len: usize,
        ctx: Cow<'a, EncryptionContext>,
        plaintext: bool,
        items: u32,
    },
    Random {
        len: usize,
        fleet: Option<Cow<'a, [HsmSlot]>>,
    },
    /// Sign (`signature` None) or Verify (`signature` the signature to verify).
    Sign {
        key: KeyName<'a>,
        message: Cow<'a, [u8]>,
        message_type: MessageType,
        algorithm: SigningAlgorithm,
        signature: Option<Cow<'a, [u8]>>,
    },
    /// The parsed key of an asymmetric operation, admitted for `action` (see
    /// `ShardState::private_key`).
    Private { key: KeyName<'a>, action: Action },
    /// GenerateMac (`mac` None) or VerifyMac (`mac` the MAC to verify).
    Mac {
        key: KeyName<'a>,
        message: Cow<'a, [u8]>,
        algorithm: MacAlgorithm,
        mac: Option<Cow<'a, [u8]>>,
    },
}

fn own<T: ToOwned + ?Sized>(c: &T) -> Cow<'static, T> {
    Cow::Owned(c.to_owned())
}

impl Req<'_> {
    /// The key the request names, when its placement follows from that alone (a Decrypt's
    /// key is in its blob; GenerateRandom names none).
    pub(crate) fn named_key(&self) -> Option<&KeyName<'_>> {
        match self {
            Req::Encrypt { key, .. }
            | Req::DataKey { key, .. }
            | Req::Mac { key, .. }
            | Req::Sign { key, .. }
            | Req::Private { key, .. } => Some(key),
            Req::Decrypt { .. } | Req::Random { .. } => None,
        }
    }

    /// How many batch items the request stands for (a run of data keys: its length).
    pub(crate) fn items(&self) -> usize {
        match self {
            Req::DataKey { items, .. } => *items as usize,
            _ => 1,
        }
    }

    /// An owned copy, for handing to another thread.
    pub(crate) fn to_static(&self) -> Req<'static> {
        match self {
            Req::Encrypt {
                key,
                plaintext,
                ctx,
                action,
            } => Req::Encrypt {
                key: key.to_static(),
                plaintext: own(&**plaintext),
                ctx: own(&**ctx),
                action: *action,
            },
            Req::Decrypt {
                blob,
                ctx,
                key,
                action,
            } => Req::Decrypt {
                blob: own(&**blob),
                ctx: own(&**ctx),
                key: key.as_ref().map(KeyName::to_static),
                action: *action,
            },
            Req::DataKey {
                key,
                len,
                ctx,
                plaintext,
                items,
            } => Req::DataKey {
                key: key.to_static(),
                len: *len,
                ctx: own(&**ctx),
                plaintext: *plaintext,
                items: *items,
            },
            Req::Random { len, fleet } => Req::Random {
                len: *len,
                fleet: fleet.as_deref().map(own),
            },
            Req::Mac {
                key,
                message,
                algorithm,
                mac,
            } => Req::Mac {
                key: key.to_static(),
                message: own(&**message),
                algorithm: *algorithm,
                mac: mac.as_deref().map(own),
            },
            Req::Sign {
                key,
                message,
                message_type,
                algorithm,
                signature,
            } => Req::Sign {
                key: key.to_static(),
                message: own(&**message),
                message_type: *message_type,
                algorithm: *algorithm,
                signature: signature.as_deref().map(own),
            },
            Req::Private { key, action } => Req::Private {
                key: key.to_static(),
                action: *action,
            },
        }
    }
}

impl Drop for Req<'_> {
    fn drop(&mut self) {
        // An owned copy of a caller's plaintext is a secret: wipe it.
        if let Req::Encrypt {
            plaintext: Cow::Owned(p),
            ..
        } = self
        {
            p.zeroize();
        }
        // So is a message to MAC or sign.
        if let Req::Mac {
            message: Cow::Owned(m),
            ..
        }
        | Req::Sign {
            message: Cow::Owned(m),
            ..
        } = self
        {
            m.zeroize();
        }
    }
}

/// A successful answer, before the facade turns it into an output type. Its outputs are in
/// the [`Sink`] the request ran with, or owned ([`Resp::into_owned`]).
pub(crate) enum Resp {
    Blob(Out, Arc<str>),
    Plain(Out, Arc<str>),
    DataKey(Out, Option<Out>, Arc<str>),
    /// The first items of a run of data keys (`Req::DataKey` with `items` > 1), sealed back
    /// to back: their blobs (and data keys) one after another, each as long as the first.
    /// The run's items after them were not reached; the batch call sends them again
    /// (`Engine::send_again`).
    DataKeys(Out, Option<Out>, Arc<str>, RunShape),
    Random(SecretBytes),
    /// A MAC computed (GenerateMac).
    Mac(Vec<u8>, Arc<str>),
    /// A MAC verified (VerifyMac).
    MacValid(Arc<str>),
    /// A signature made (Sign).
    Signature(Vec<u8>, Arc<str>),
    /// A signature verified (Verify).
    SignatureValid(Arc<str>),
    /// The parsed key of an asymmetric operation (None: the key has none, it is symmetric).
    Private(Option<Arc<PrivateKey>>, Arc<str>),
    /// An answer served by a slow HSM, and the latency it owes (paid on the caller's thread:
    /// see `engine::latency`). Boxed: only slow HSMs pay for it.
    Slowed(Box<Resp>, Duration),
}

/// How the outputs of a [`Resp::DataKeys`] are laid out: `items` of them, each blob
/// `blob` bytes long and each data key `key` bytes long.
#[derive(Clone, Copy)]
pub(crate) struct RunShape {
    pub(crate) items: u32,
    pub(crate) blob: u32,
    pub(crate) key: u32,
}

impl Resp {
    /// Replaces an answer a slow HSM served by the answer itself, the latency it owes recorded
    /// on this (the caller's) thread. In place, so that an answer no slow HSM served (nearly
    /// all) is not moved through a pass-through.
    #[inline]
    pub(crate) fn settle(&mut self) {
        if matches!(self, Resp::Slowed(..)) {
            self.settle_slowed();
        }
    }

    /// [`Resp::settle`] of an answer a slow HSM served.
    #[cold]
    fn settle_slowed(&mut self) {
        while let Resp::Slowed(inner, owed) = self {
            super::latency::owe(*owed);
            // The placeholder left in the box, dropped at once, allocates nothing.
            *self = std::mem::replace(&mut **inner, Resp::Random(SecretBytes::new(Vec::new())));
        }
    }

    /// The answer with its outputs taken out of `sink` (which then no longer holds them).
    pub(crate) fn into_owned(self, sink: &mut Sink) -> Resp {
        match self {
            Resp::Blob(b, arn) => Resp::Blob(Out::Blob(sink.take_blob(b)), arn),
            Resp::Plain(p, arn) => Resp::Plain(Out::Secret(sink.take_secret(p)), arn),
            Resp::DataKey(b, p, arn) => {
                let p = p.map(|p| Out::Secret(sink.take_secret(p)));
                Resp::DataKey(Out::Blob(sink.take_blob(b)), p, arn)
            }
            Resp::DataKeys(b, p, arn, n) => {
                let p = p.map(|p| Out::Secret(sink.take_secret(p)));
                Resp::DataKeys(Out::Blob(sink.take_blob(b)), p, arn, n)
            }
            Resp::Slowed(inner, owed) => Resp::Slowed(Box::new(inner.into_owned(sink)), owed),
            r @ (Resp::Random(_)
            | Resp::Mac(..)
            | Resp::MacValid(_)
            | Resp::Signature(..)
            | Resp::SignatureValid(_)
            | Resp::Private(..)) => r,
        }
    }
}

/// The last admitted (key reference, action) within one lock hold, so a batch on one key
/// resolves and authorizes once. Only valid while the shard lock is held and for one principal:
/// `apply` cannot run in between, so gates and authorizers cannot change under it.
pub(crate) struct Memo<'r> {
    last: Option<(KeyName<'r>, Action, KeyId, Arc<str>)>,
    /// Whether to remember at all: not for a single request, which would only pay for it
    /// (the ARN's reference count taken and given back, two atomic operations).
    keep: bool,
}

impl Default for Memo<'_> {
    /// A memo that remembers (a batch's, a queued job's).
    fn default() -> Self {
        Memo {
            last: None,
            keep: true,
        }
    }
}

impl Memo<'_> {
    /// The key and ARN admitted last, if that was `key` for `action`.
    fn hit(&self, key: &KeyName<'_>, action: Action) -> Option<(KeyId, Arc<str>)> {
        match &self.last {
            Some((k, a, id, arn)) if *a == action && k.same(key) => Some((*id, arn.clone())),
            _ => None,
        }
    }

    /// The memo of a single request: it remembers nothing.
    pub(crate) fn single() -> Self {
        Memo {
            last: None,
            keep: false,
        }
    }
}

/// The outcome of running a request on one shard.
pub(crate) enum Step {
    /// Answered (successfully or not).
    Done(Result<Resp>),
    /// Not answerable here: the key's material lives on the shards in this bit mask.
    Elsewhere(u64),
}

/// A fast hasher for maps keyed by [`KeyId`]. Key ids are random UUIDs issued by the service
/// and only the control plane inserts them, so no caller can choose colliding keys; lookups of
/// unknown ids cannot degrade a map. (Maps keyed by caller-chosen text, such as aliases, keep
/// the default SipHash.) SipHash would cost ~20 ns per lookup, several lookups per request.
#[derive(Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

const FX: u64 = 0x517c_c1b7_2722_0a95;

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(b)).wrapping_mul(FX);
        }
    }

    fn write_usize(&mut self, n: usize) {
        self.0 = (self.0.rotate_left(5) ^ n as u64).wrapping_mul(FX);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type IdMap<V> = HashMap<KeyId, V, BuildHasherDefault<IdHasher>>;

/// Grants by id, as one grantee holds them on one key.
type GranteeGrants = Vec<(Box<str>, Arc<EngineGrant>)>;

/// The grants of one key, by grantee (a request looks up its principal's only) and by id.
#[derive(Default)]
struct KeyGrants {
    by_grantee: HashMap<Box<str>, GranteeGrants>,
    /// The grantee of each grant id.
    grantee_of: HashMap<Box<str>, Box<str>>,
}

impl KeyEntry {
    /// The key policy's verdict on `principal` performing `action`, through `allowed`.
    fn policy_verdict(&mut self, principal: &str, action: Action, id: &KeyId) -> PolicyVerdict {
        if let Some(m) = &self.allowed {
            if m.0.contains(action) && *m.1 == *principal {
                return PolicyVerdict::Allow;
            }
        }
        let verdict = self.authorizer.verdict(principal, action, id);
        if verdict == PolicyVerdict::Allow && self.authorizer.is_pure() {
            match &mut self.allowed {
                Some(m) if *m.1 == *principal => m.0 = m.0.with(action),
                slot => {
                    *slot = Some(Box::new((
                        ActionSet::default().with(action),
                        principal.into(),
                    )))
                }
            }
        }
        verdict
    }
}

impl KeyEntry {
    /// Authorizer (then the grants, for `ctx`), then gate: see [`ShardState::admit`].
    fn admit(
        &mut self,
        id: &KeyId,
        principal: &str,
        action: Action,
        ctx: &EncryptionContext,
        scope: &Scope,
    ) -> Result<bool> {
        let any_context = match self.policy_verdict(principal, action, id) {
            PolicyVerdict::Allow => true,
            // Only where the policy is silent may a grant allow: an explicit Deny overrides
            // every grant, as on AWS.
            PolicyVerdict::ImplicitDeny
                if self
                    .grants
                    .as_ref()
                    .is_some_and(|g| g.allows(principal, action, ctx)) =>
            {
                false
            }
            refused => {
                return Err(KmsError::policy_refusal(
                    refused == PolicyVerdict::ExplicitDeny,
                    principal,
                    action.as_str(),
                    scope.key_arn(id),
                ))
            }
        };
        if let Some(e) = &self.closed {
            return Err((**e).clone());
        }
        match self.expiry.as_deref().and_then(Expiry::refusal) {
            None => Ok(any_context),
            Some(e) => Err(e.clone()),
        }
    }
}

/// What a key entry holds of `gate`: the error a closed key answers, the expiry of one open
/// until a time.
fn entry_gate(gate: &Gate) -> (Option<Box<KmsError>>, Option<Arc<Expiry>>) {
    match gate {
        Gate::Open => (None, None),
        Gate::OpenUntil(x) => (None, Some(x.clone())),
        Gate::Closed(e) => (Some(Box::new(e.clone())), None),
    }
}

impl KeyGrants {
    fn allows(&self, principal: &str, action: Action, ctx: &EncryptionContext) -> bool {
        self.by_grantee
            .get(principal)
            .is_some_and(|gs| gs.iter().any(|(_, g)| g.allows(principal, action, ctx)))
    }

    fn put(&mut self, id: &str, grant: &Arc<EngineGrant>) {
        self.remove(id);
        self.grantee_of.insert(id.into(), grant.grantee.clone());
        self.by_grantee
            .entry(grant.grantee.clone())
            .or_default()
            .push((id.into(), grant.clone()));
    }

    fn remove(&mut self, id: &str) {
        if let Some(grantee) = self.grantee_of.remove(id) {
            if let Some(gs) = self.by_grantee.get_mut(&grantee) {
                gs.retain(|(g, _)| **g != *id);
                if gs.is_empty() {
                    self.by_grantee.remove(&grantee);
                }
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.grantee_of.is_empty()
    }
}

/// Everything a shard knows about one key, in one map entry: a request on a key costs one
/// lookup, and a key in memory costs one entry per shard plus its material where it is local.
struct KeyEntry {
    /// The key policy's verdicts (shared by every key with the same policy).
    authorizer: Arc<dyn Authorizer>,
    /// The actions `authorizer` allowed the key's last allowed caller here, when it is pure
    /// ([`Authorizer::is_pure`]): a run of calls by one principal asks it once per action.
    /// Cleared whenever the key is given an authorizer (`Control::PutKey`).
    allowed: Option<Box<(ActionSet, Box<str>)>>,
    /// The key's grants, consulted when the policy refuses; `None` for a key without any, so
    /// such a key's requests pay one branch for grants.
    grants: Option<Box<KeyGrants>>,
    /// `Some` when the key is not usable: the error every request answers.
    closed: Option<Box<KmsError>>,
    /// `Some` when the key is usable until a time only ([`Gate::OpenUntil`]).
    expiry: Option<Arc<Expiry>>,
    /// Every HSM slot (on any shard) holding the key.
    holders: SlotSet,
    /// The key's material and sealing state, when a slot placed on this shard holds it.
    local: Option<SubkeySchedule>,
    /// This shard's copy of the key's ARN, while the key is in use here (see `ShardState::admit`).
    arn: Option<Arc<str>>,
}

/// Everything one shard owns. Only touched with the shard's mutex held.
pub(crate) struct ShardState {
    idx: usize,
    nshards: usize,
    scope: Scope,
    keys: IdMap<KeyEntry>,
    aliases: HashMap<String, KeyId>,
    /// The shard of every custom HSM.
    placement: HashMap<HsmId, usize>,
    /// The keys each custom HSM (on any shard) holds, so that removing an HSM costs its keys.
    held: HashMap<HsmId, HashSet<KeyId, BuildHasherDefault<IdHasher>>>,
    default_fleet: bool,
    pool: RandomPool,
    cache: SubkeyCache,
    max_uses: u64,
    /// Keys whose schedule began to keep an expanded sealing context, oldest first: the clock
    /// of the bounded set of kept contexts. May name keys that since lost theirs; stepping
    /// over those only makes room.
    live: VecDeque<KeyId>,
    seal_cache: usize,
    /// Seals that found no context kept and no room to keep one (see `count_seal`).
    cold_seals: u32,
    /// Slow HSMs and their added latency per operation (`Control::SetHsmLatency`); usually
    /// empty, which is all a request checks then.
    latency: HashMap<HsmId, Duration>,
    /// The material versions of the keys that rotated (`Control::PutVersions`), apart from
    /// the key map so that a key that never rotated costs nothing more: a seal reads its
    /// version from its schedule, and only a Decrypt of an older version looks here.
    rotated: VersionMap,
    /// The parsed keys of the default-store keys that are not symmetric encryption keys
    /// (`Control::PutPrivate`), apart from the key map so that symmetric keys cost nothing
    /// more; shared with the other shards (the key objects are read-only).
    private: HashMap<KeyId, Arc<PrivateKey>, BuildHasherDefault<IdHasher>>,
}

/// The material versions of the keys that rotated, by key (`ShardState::rotated`).
type VersionMap = HashMap<KeyId, Arc<KeyVersions>, BuildHasherDefault<IdHasher>>;

/// [`ShardState::resolve`], on the shard's directories.
fn resolve_in(
    keys: &IdMap<KeyEntry>,
    aliases: &HashMap<String, KeyId>,
    scope: &Scope,
    key: &KeyName<'_>,
) -> Result<KeyId> {
    match key {
        KeyName::Id(id) if keys.contains_key(id) => Ok(*id),
        KeyName::Id(id) => Err(KmsError::key_not_found(scope.key_arn(id))),
        KeyName::Alias(a) => aliases
            .get(&**a)
            .copied()
            .filter(|id| keys.contains_key(id))
            .ok_or_else(|| KmsError::alias_not_found(scope.alias_arn(a))),
    }
}

/// [`ShardState::admit`], on the shard's key map, also handing back the key's entry: a seal
/// then finds its subkey schedule without looking the key up a second time.
fn admit_in<'k>(
    keys: &'k mut IdMap<KeyEntry>,
    scope: &Scope,
    id: &KeyId,
    principal: &str,
    action: Action,
    ctx: &EncryptionContext,
) -> Result<(bool, Arc<str>, &'k mut KeyEntry)> {
    let entry = keys
        .get_mut(id)
        .ok_or_else(|| KmsError::key_not_found(scope.key_arn(id)))?;
    let any_context = entry.admit(id, principal, action, ctx, scope)?;
    if let Some(arn) = &entry.arn {
        let arn = arn.clone();
        return Ok((any_context, arn, entry));
    }
    let arn: Arc<str> = scope.key_arn(id).into();
    if entry
        .local
        .as_ref()
        .is_some_and(SubkeySchedule::keeps_context)
    {
        entry.arn = Some(arn.clone());
    }
    Ok((any_context, arn, entry))
}

/// [`ShardState::admit_ref`], on the shard's directories, also handing back the key's entry
/// (looked up once: by admission, or after a memo hit).
#[allow(clippy::too_many_arguments)] // the shard's directories, then `admit_ref`'s own
fn admit_ref_in<'k, 'r>(
    keys: &'k mut IdMap<KeyEntry>,
    aliases: &HashMap<String, KeyId>,
    scope: &Scope,
    key: &'r KeyName<'_>,
    principal: &str,
    action: Action,
    ctx: &EncryptionContext,
    memo: &mut Memo<'r>,
) -> Result<(KeyId, Arc<str>, &'k mut KeyEntry)> {
    if let Some((id, arn)) = memo.hit(key, action) {
        // The memo is only valid while the lock is held, when no key can have gone.
        let entry = keys
            .get_mut(&id)
            .ok_or_else(|| KmsError::key_not_found(scope.key_arn(&id)))?;
        return Ok((id, arn, entry));
    }
    let id = match key {
        // A key id needs no resolving: admission's lookup of the key is its check.
        KeyName::Id(id) => *id,
        KeyName::Alias(_) => resolve_in(keys, aliases, scope, key)?,
    };
    let (any_context, arn, entry) = admit_in(keys, scope, &id, principal, action, ctx)?;
    // A grant's verdict may depend on the context: only the policy's is remembered. A key open
    // until a time is not remembered: its gate changes with the clock, under the lock too.
    if any_context && memo.keep && entry.expiry.is_none() {
        memo.last = Some((key.borrowed(), action, id, arn.clone()));
    }
    Ok((id, arn, entry))
}

/// The action a GenerateDataKey request is authorized for (with or without the plaintext).
fn data_key_action(with_plaintext: bool) -> Action {
    if with_plaintext {
        Action::GenerateDataKey
    } else {
        Action::GenerateDataKeyWithoutPlaintext
    }
}

/// Draws a data key of `len` bytes into `sink`'s secrets and seals it under the key `id`
/// (its `schedule`) into its blobs: where the answer is, the data key kept only when the
/// caller gets it (`with_plaintext`), and whether the seal began to keep the key's sealing
/// context (`keep`: there is room for one). One seal, for [`ShardState::data_key`] and each
/// item of [`ShardState::data_key_run`].
// Inlined into both callers: a call returning the answer through memory cost a run
// ~60 instructions per item (callgrind).
#[inline(always)]
fn seal_data_key(
    (schedule, id): (&mut SubkeySchedule, &KeyId),
    (pool, rotated, max_uses): (&mut RandomPool, &VersionMap, u64),
    (len, ctx, with_plaintext, keep): (usize, &EncryptionContext, bool, bool),
    sink: &mut Sink,
) -> (Result<Sealed>, bool) {
    let (blobs, secrets) = sink.areas_mut();
    // The data key is drawn into the sink's secrets, sealed from there, and kept there only
    // when the caller gets it.
    let at = secrets.len();
    crate::secret::reserve_wiping(secrets, len);
    let (r, started) = match pool.extend(secrets, len) {
        Ok(()) => seal_drawn(
            (schedule, id),
            (pool, rotated, max_uses),
            (&secrets[at..], ctx, keep),
            blobs,
        ),
        Err(e) => (Err(e), false),
    };
    let r = match r {
        Ok(blob) if with_plaintext => Ok(Sealed {
            blob,
            key: Some(at..at + len),
        }),
        r => {
            crate::secret::wipe(&mut secrets[at..]);
            secrets.truncate(at);
            r.map(|blob| Sealed { blob, key: None })
        }
    };
    (r, started)
}

/// Seals the data key `key`, drawn already, under the key `id` (its `schedule`) into
/// `blobs`: where the blob is, and whether the seal began to keep the key's sealing context
/// (`keep`: there is room for one; it may have begun even when the seal then failed).
#[inline(always)]
fn seal_drawn(
    (schedule, id): (&mut SubkeySchedule, &KeyId),
    (pool, rotated, max_uses): (&mut RandomPool, &VersionMap, u64),
    (key, ctx, keep): (&[u8], &EncryptionContext, bool),
    blobs: &mut Vec<u8>,
) -> (Result<Range<usize>>, bool) {
    let version = || rotated.get(id).map_or(0, |v| v.newest);
    match schedule.next(id, max_uses, pool, version, keep) {
        Ok(sealed) => (
            blob::seal_into(id, sealed.params, key, ctx, blobs),
            sealed.became_live,
        ),
        Err(e) => (Err(e), false),
    }
}

/// Where [`seal_data_key`] left a data key in the sink: its blob, and the key itself when
/// the caller gets it.
struct Sealed {
    blob: Range<usize>,
    key: Option<Range<usize>>,
}

impl Sealed {
    /// The answer naming these outputs.
    fn answer(self, arn: Arc<str>) -> Resp {
        Resp::DataKey(Out::At(self.blob), self.key.map(Out::At), arn)
    }
}

/// Why a data key pair's private key may not be sealed under `id` (its `entry`), if it may
/// not: AWS seals them under symmetric keys of the default key store only (an asymmetric or
/// HMAC key answers as for Encrypt, through `not_here`).
fn key_pair_refusal(
    private: &IdMap<Arc<PrivateKey>>,
    entry: &KeyEntry,
    id: &KeyId,
    arn: &str,
    action: Action,
) -> Option<KmsError> {
    // Symmetric keys of the default key store are held by its default slot; the other
    // keys of that store have no symmetric material and hold no slot.
    let in_default_store = private.contains_key(id) || matches!(entry.holders, SlotSet::Default);
    let op = action.as_str().trim_start_matches("kms:");
    (!in_default_store).then(|| {
        err!(
            UnsupportedOperationException,
            "{arn} is in a custom key store; {op} needs a key of the default key store."
        )
    })
}

fn hsm_not_active(hsm: &HsmSlot) -> KmsError {
    err!(
        CloudHsmResourceNotFoundException,
        "HSM {hsm:?} is not active in the engine"
    )
}

fn replica_without_hsm(hsm: &HsmSlot) -> KmsError {
    err!(
        CloudHsmResourceNotFoundException,
        "HSM {hsm:?} is not active in the engine; add it before its replicas"
    )
}

fn least_loaded(load: &[usize]) -> usize {
    (0..load.len()).min_by_key(|&s| load[s]).unwrap_or(0)
}

fn bit(i: usize) -> u64 {
    1u64 << i
}

fn missing_version(version: u32) -> KmsError {
    err!(
        InvalidCiphertextException,
        "The ciphertext names material version {version}, which its KMS key does not have"
    )
}

fn unreachable_cluster(arn: &str) -> KmsError {
    err!(
        KMSInvalidStateException,
        "{arn} is unavailable: KMS cannot communicate with the CloudHSM cluster that holds its \
         key material (no active HSM holds the key)"
    )
}

impl ShardState {
    pub(crate) fn new(idx: usize, nshards: usize, config: &EngineConfig) -> ShardState {
        ShardState {
            idx,
            nshards,
            scope: config.scope.clone(),
            keys: IdMap::default(),
            aliases: HashMap::new(),
            placement: HashMap::new(),
            held: HashMap::new(),
            default_fleet: false,
            pool: RandomPool::new(),
            cache: SubkeyCache::new(config.decrypt_cache),
            max_uses: config.subkey_max_uses,
            live: VecDeque::new(),
            seal_cache: config.seal_cache.max(1),
            cold_seals: 0,
            latency: HashMap::new(),
            rotated: HashMap::default(),
            private: HashMap::default(),
        }
    }

    fn all_mask(&self) -> u64 {
        if self.nshards >= 64 {
            u64::MAX
        } else {
            bit(self.nshards) - 1
        }
    }

    /// Shards that host `slot` (0 if the slot is not added).
    fn slot_mask(&self, slot: &HsmSlot) -> u64 {
        match slot {
            HsmSlot::Default if self.default_fleet => self.all_mask(),
            HsmSlot::Default => 0,
            HsmSlot::Hsm(h) => self.placement.get(h).map_or(0, |&s| bit(s)),
        }
    }

    fn key_mask(&self, id: &KeyId) -> u64 {
        self.keys
            .get(id)
            .map_or(0, |e| self.holders_mask(&e.holders))
    }

    fn holders_mask(&self, holders: &SlotSet) -> u64 {
        match holders {
            SlotSet::None => 0,
            SlotSet::Default => self.slot_mask(&HsmSlot::Default),
            SlotSet::Hsms(v) => v
                .iter()
                .fold(0, |m, h| m | self.placement.get(h).map_or(0, |&s| bit(s))),
        }
    }

    /// The shard a new custom HSM goes to: the one hosting the fewest.
    pub(crate) fn least_loaded_shard(&self, dead: u64) -> usize {
        least_loaded(&self.loads(dead))
    }

    /// How many custom HSMs each shard hosts; the shards in `dead` (bits by index: failed, they
    /// never serve again) as full, so that no HSM is placed there while another shard lives.
    fn loads(&self, dead: u64) -> Vec<usize> {
        let mut load = vec![0usize; self.nshards];
        for &s in self.placement.values() {
            load[s] += 1;
        }
        for (s, l) in load.iter_mut().enumerate() {
            if dead & bit(s) != 0 {
                *l = usize::MAX;
            }
        }
        load
    }

    /// For each control of `changes`, the `target` that applying them one by one would pass
    /// ([`ShardState::least_loaded_shard`] before each): HSMs added and removed along the way
    /// are counted, so shards applying the batch in parallel place every HSM alike.
    pub(crate) fn plan_targets(&self, changes: &[Control], dead: u64) -> Vec<usize> {
        let mut load = self.loads(dead);
        let mut placed = self.placement.clone();
        changes
            .iter()
            .map(|c| {
                let target = least_loaded(&load);
                match c {
                    Control::AddHsm {
                        hsm: HsmSlot::Hsm(h),
                    } if !placed.contains_key(h) => {
                        placed.insert(h.clone(), target);
                        load[target] = load[target].saturating_add(1);
                    }
                    Control::RemoveHsm {
                        hsm: HsmSlot::Hsm(h),
                    } => {
                        if let Some(s) = placed.remove(h) {
                            load[s] = load[s].saturating_sub(1);
                        }
                    }
                    _ => {}
                }
                target
            })
            .collect()
    }

    fn resolve(&self, key: &KeyName<'_>) -> Result<KeyId> {
        resolve_in(&self.keys, &self.aliases, &self.scope, key)
    }

    /// Authorizer (then the key's grants, for `ctx`), then gate, and the ARN the answer carries,
    /// in one lookup of the key. The verdict is `true` when it holds for any encryption context
    /// (the policy allowed), so it may be memoized; `false` when a grant allowed, whose
    /// constraints may read the context.
    ///
    /// The ARN is this shard's copy, kept while the key keeps an expanded sealing context here
    /// and dropped with it (so only the keys used most hold one; the others' answers build
    /// theirs). Each shard has its own, so two cores answering on one key never share its
    /// reference count.
    fn admit(
        &mut self,
        id: &KeyId,
        principal: &str,
        action: Action,
        ctx: &EncryptionContext,
    ) -> Result<(bool, Arc<str>)> {
        admit_in(&mut self.keys, &self.scope, id, principal, action, ctx)
            .map(|(any_context, arn, _)| (any_context, arn))
    }

    /// Where the request can be served: a mask of shards (this shard's bit included when it
    /// can). Requests that will fail anyway report this shard, which produces the error.
    pub(crate) fn holder_mask(&self, req: &Req<'_>) -> u64 {
        let here = bit(self.idx);
        let id = match req {
            Req::Encrypt { key, .. }
            | Req::DataKey { key, .. }
            | Req::Mac { key, .. }
            | Req::Sign { key, .. }
            | Req::Private { key, .. } => self.resolve(key).ok(),
            Req::Decrypt { blob, .. } => blob::parse(blob).ok().map(|v| v.key_id),
            Req::Random { fleet: None, .. } => return self.all_mask(),
            Req::Random {
                fleet: Some(slots), ..
            } => {
                let m = slots.iter().fold(0, |m, s| m | self.slot_mask(s));
                return if m == 0 { here } else { m };
            }
        };
        match id.and_then(|id| self.keys.get(&id)) {
            Some(entry) => match self.holders_mask(&entry.holders) {
                0 => here,
                m => m,
            },
            None => here,
        }
    }

    fn not_here(&self, id: &KeyId) -> Step {
        if let Some(private) = self.private.get(id) {
            // Not a symmetric encryption key: it has no material for the symmetric operations.
            let arn = self.scope.key_arn(id);
            return Step::Done(Err(match &**private {
                PrivateKey::Decrypting(k) => err!(
                    InvalidKeyUsageException,
                    "{arn} key spec is {} which is not valid for this operation with \
                     EncryptionAlgorithm SYMMETRIC_DEFAULT.",
                    k.spec()
                ),
                p => p.wrong_usage(&arn, "this operation"),
            }));
        }
        let m = self.key_mask(id) & !bit(self.idx);
        if m == 0 {
            Step::Done(Err(unreachable_cluster(&self.scope.key_arn(id))))
        } else {
            Step::Elsewhere(m)
        }
    }

    /// Resolve + admit, through the memo.
    fn admit_ref<'r>(
        &mut self,
        key: &'r KeyName<'_>,
        principal: &str,
        action: Action,
        ctx: &EncryptionContext,
        memo: &mut Memo<'r>,
    ) -> Result<(KeyId, Arc<str>)> {
        if let Some(hit) = memo.hit(key, action) {
            return Ok(hit);
        }
        let (keys, aliases, scope) = (&mut self.keys, &self.aliases, &self.scope);
        admit_ref_in(keys, aliases, scope, key, principal, action, ctx, memo)
            .map(|(id, arn, _)| (id, arn))
    }

    /// Runs one request on this shard, writing its outputs into `sink`.
    pub(crate) fn execute<'r>(
        &mut self,
        principal: &str,
        req: &'r Req<'_>,
        memo: &mut Memo<'r>,
        sink: &mut Sink,
    ) -> Step {
        match req {
            Req::Encrypt {
                key,
                plaintext,
                ctx,
                action,
            } => self.encrypt(principal, key, plaintext, ctx, *action, memo, sink),
            Req::Decrypt {
                blob,
                ctx,
                key,
                action,
            } => self.decrypt(principal, blob, ctx, key.as_ref(), *action, sink),
            Req::DataKey {
                key,
                len,
                ctx,
                plaintext,
                items,
            } => match *items {
                1 => self.data_key(principal, key, *len, ctx, *plaintext, memo, sink),
                n => self.data_key_items(principal, key, (*len, ctx, *plaintext), n, memo, sink),
            },
            Req::Random { len, fleet } => self.random(*len, fleet.as_deref()),
            Req::Mac {
                key,
                message,
                algorithm,
                mac,
            } => Step::Done(self.mac(principal, key, message, *algorithm, mac.as_deref(), memo)),
            Req::Sign {
                key,
                message,
                message_type,
                algorithm,
                signature,
            } => Step::Done(self.sign(
                principal,
                key,
                (message, *message_type),
                *algorithm,
                signature.as_deref(),
                memo,
            )),
            Req::Private { key, action } => {
                Step::Done(self.private_key(principal, key, *action, memo))
            }
        }
    }

    /// Sign (`signature` None) or Verify: like the MAC operations, served on any shard.
    fn sign<'r>(
        &mut self,
        principal: &str,
        key: &'r KeyName<'_>,
        (message, message_type): (&[u8], MessageType),
        algorithm: SigningAlgorithm,
        signature: Option<&[u8]>,
        memo: &mut Memo<'r>,
    ) -> Result<Resp> {
        let (action, op) = if signature.is_some() {
            (Action::Verify, "Verify")
        } else {
            (Action::Sign, "Sign")
        };
        let (id, arn) = self.admit_ref(key, principal, action, &NO_CONTEXT, memo)?;
        let Some(private) = self.private.get(&id) else {
            return Err(err!(
                InvalidKeyUsageException,
                "{arn} key usage is ENCRYPT_DECRYPT which is not valid for {op}."
            ));
        };
        let signing = match &**private {
            PrivateKey::Signing(k) => k,
            other => return Err(other.wrong_usage(&arn, op)),
        };
        match signature {
            None => {
                let sig = signing.sign(algorithm, message_type, message, &arn)?;
                Ok(Resp::Signature(sig, arn))
            }
            Some(sig) => {
                if signing.verify(algorithm, message_type, message, sig, &arn)? {
                    Ok(Resp::SignatureValid(arn))
                } else {
                    Err(KmsError::new(ErrorKind::KMSInvalidSignatureException, ""))
                }
            }
        }
    }

    /// The parsed key of `key` once the caller may perform `action` with it (None for a key
    /// that has none: a symmetric key). The caller runs the cryptography on its own thread,
    /// outside this shard's lock: an RSA private operation takes milliseconds, which the
    /// symmetric requests queued on the shard must not wait for.
    fn private_key<'r>(
        &mut self,
        principal: &str,
        key: &'r KeyName<'_>,
        action: Action,
        memo: &mut Memo<'r>,
    ) -> Result<Resp> {
        let (id, arn) = self.admit_ref(key, principal, action, &NO_CONTEXT, memo)?;
        Ok(Resp::Private(self.private.get(&id).cloned(), arn))
    }

    /// GenerateMac (`mac` None) or VerifyMac: any shard serves an HMAC key (its key object is
    /// on every shard), so the request never moves.
    fn mac<'r>(
        &mut self,
        principal: &str,
        key: &'r KeyName<'_>,
        message: &[u8],
        algorithm: MacAlgorithm,
        mac: Option<&[u8]>,
        memo: &mut Memo<'r>,
    ) -> Result<Resp> {
        let action = if mac.is_some() {
            Action::VerifyMac
        } else {
            Action::GenerateMac
        };
        let (id, arn) = self.admit_ref(key, principal, action, &NO_CONTEXT, memo)?;
        let Some(private) = self.private.get(&id) else {
            return Err(err!(
                InvalidKeyUsageException,
                "{arn} key usage is ENCRYPT_DECRYPT which is not valid for {}.",
                if mac.is_some() {
                    "VerifyMac"
                } else {
                    "GenerateMac"
                }
            ));
        };
        let hmac_key = private.hmac_key(algorithm, &arn)?;
        match mac {
            None => {
                let tag = aws_lc_rs::hmac::sign(hmac_key, message);
                Ok(Resp::Mac(tag.as_ref().to_vec(), arn))
            }
            Some(expected) => match aws_lc_rs::hmac::verify(hmac_key, message, expected) {
                Ok(()) => Ok(Resp::MacValid(arn)),
                Err(_) => Err(KmsError::new(ErrorKind::KMSInvalidMacException, "")),
            },
        }
    }

    #[allow(clippy::too_many_arguments)] // the request's parts, as `execute` unpacks them
    fn encrypt<'r>(
        &mut self,
        principal: &str,
        key: &'r KeyName<'_>,
        plaintext: &[u8],
        ctx: &EncryptionContext,
        action: Action,
        memo: &mut Memo<'r>,
        sink: &mut Sink,
    ) -> Step {
        let (keys, aliases, scope) = (&mut self.keys, &self.aliases, &self.scope);
        let (id, arn, entry) =
            match admit_ref_in(keys, aliases, scope, key, principal, action, ctx, memo) {
                Ok(x) => x,
                Err(e) => return Step::Done(Err(e)),
            };
        if action.seals_key_pair() {
            if let Some(e) = key_pair_refusal(&self.private, entry, &id, &arn, action) {
                return Step::Done(Err(e));
            }
        }
        let Some(schedule) = entry.local.as_mut() else {
            return self.not_here(&id);
        };
        let rotated = &self.rotated;
        let version = || rotated.get(&id).map_or(0, |v| v.newest);
        let (keep, kept) = (self.live.len() < self.seal_cache, schedule.keeps_context());
        let r = match schedule.next(&id, self.max_uses, &mut self.pool, version, keep) {
            Ok(sealed) => {
                let started = sealed.became_live;
                let r = blob::seal_into(&id, sealed.params, plaintext, ctx, sink.areas_mut().0);
                self.count_seal(id, kept, started);
                r
            }
            Err(e) => Err(e),
        };
        self.done(&id, r.map(|b| Resp::Blob(Out::At(b), arn)))
    }

    #[allow(clippy::too_many_arguments)] // the request's parts, as `execute` unpacks them
    fn data_key<'r>(
        &mut self,
        principal: &str,
        key: &'r KeyName<'_>,
        len: usize,
        ctx: &EncryptionContext,
        with_plaintext: bool,
        memo: &mut Memo<'r>,
        sink: &mut Sink,
    ) -> Step {
        let action = data_key_action(with_plaintext);
        let (keys, aliases, scope) = (&mut self.keys, &self.aliases, &self.scope);
        let (id, arn, entry) =
            match admit_ref_in(keys, aliases, scope, key, principal, action, ctx, memo) {
                Ok(x) => x,
                Err(e) => return Step::Done(Err(e)),
            };
        let Some(schedule) = entry.local.as_mut() else {
            return self.not_here(&id);
        };
        let (keep, kept) = (self.live.len() < self.seal_cache, schedule.keeps_context());
        let (pool, rotated) = (&mut self.pool, &self.rotated);
        let (r, started) = seal_data_key(
            (schedule, &id),
            (pool, rotated, self.max_uses),
            (len, ctx, with_plaintext, keep),
            sink,
        );
        self.count_seal(id, kept, started);
        self.done(&id, r.map(|s| s.answer(arn)))
    }

    /// Runs `reqs` in order as [`ShardState::execute`] runs each, handing each item's step to
    /// `each` with its index. A run of GenerateDataKey items naming one key — a batch usually
    /// is one — is admitted once and sealed in one loop ([`ShardState::data_key_run`]): the
    /// admission, the request's dispatch and the seal count are then paid once per run, not
    /// once per item.
    pub(crate) fn execute_all<'r>(
        &mut self,
        principal: &str,
        reqs: &'r [Req<'_>],
        memo: &mut Memo<'r>,
        sink: &mut Sink,
        mut each: impl FnMut(usize, Step),
    ) {
        let mut k = 0;
        while let Some(req) = reqs.get(k) {
            if matches!(req, Req::DataKey { items: 1, .. }) && self.latency.is_empty() {
                k = self.data_key_run(principal, reqs, k, memo, sink, &mut each);
            } else {
                each(k, self.execute(principal, req, memo, sink));
                k += 1;
            }
        }
    }

    /// Runs the GenerateDataKey item `reqs[start]` and then every item after it that names
    /// the same key for the same action (with or without the plaintext), while the memo
    /// holds that key's admission (a verdict that depends on no encryption context, so it
    /// holds for every item whatever its context); returns the index after the last item run.
    /// Each item is answered exactly as [`ShardState::data_key`] answers it — the run only
    /// skips what its first item already did. No HSM is slow (the caller checked), so no
    /// answer owes latency.
    fn data_key_run<'r>(
        &mut self,
        principal: &str,
        reqs: &'r [Req<'_>],
        start: usize,
        memo: &mut Memo<'r>,
        sink: &mut Sink,
        each: &mut impl FnMut(usize, Step),
    ) -> usize {
        let Some(Req::DataKey {
            key,
            len,
            ctx,
            plaintext,
            items: 1,
        }) = reqs.get(start)
        else {
            // Not reached (`execute_all` sends only data-key items here); every item is
            // answered all the same.
            if let Some(req) = reqs.get(start) {
                each(start, self.execute(principal, req, memo, sink));
            }
            return start + 1;
        };
        each(
            start,
            self.data_key(principal, key, *len, ctx, *plaintext, memo, sink),
        );
        let with_plaintext = *plaintext;
        let action = data_key_action(with_plaintext);
        let Some((id, arn)) = memo.hit(key, action) else {
            return start + 1;
        };
        let ShardState {
            keys,
            pool,
            rotated,
            live,
            max_uses,
            seal_cache,
            ..
        } = self;
        let Some(schedule) = keys.get_mut(&id).and_then(|e| e.local.as_mut()) else {
            return start + 1;
        };
        let mut cold = false;
        let mut k = start + 1;
        while let Some(Req::DataKey {
            key: next,
            len,
            ctx,
            plaintext,
            items: 1,
        }) = reqs.get(k)
        {
            if *plaintext != with_plaintext || !next.same(key) {
                break;
            }
            let (keep, kept) = (live.len() < *seal_cache, schedule.keeps_context());
            let (r, started) = seal_data_key(
                (schedule, &id),
                (pool, rotated, *max_uses),
                (*len, ctx, with_plaintext, keep),
                sink,
            );
            each(k, Step::Done(r.map(|s| s.answer(arn.clone()))));
            k += 1;
            if started {
                live.push_back(id);
            } else if !kept {
                // A seal with no context kept owes the clock a step, which may make room
                // for this key's: the run ends here, and the next item begins another.
                cold = true;
                break;
            }
        }
        if cold {
            self.count_seal(id, false, false);
        }
        k
    }

    /// The `items` GenerateDataKey items of one run request (`Req::DataKey` with more than
    /// one item: items alike, one key, length, context and action). The first is run as
    /// [`ShardState::data_key`] runs it; while the memo then holds the key's admission (a
    /// verdict that depends on no encryption context, and the run's items share theirs
    /// anyway), the others are sealed in one loop, their data keys drawn from the pool at
    /// once, each sealed as `data_key` seals one and counted as it counts its seals, with no
    /// admission, dispatch or answer of its own:
    /// their blobs (and data keys) follow the first's in the sink, each as long
    /// ([`Resp::DataKeys`]). The run stops early — an HSM slow (its answers owe latency), a
    /// verdict the memo does not keep, a seal that failed — and the batch call then sends
    /// the items after the last one sealed again, each on its own (`Engine::send_again`), so
    /// every item is answered as a single request would be. A seal that failed leaves no
    /// trace but the randomness and the nonce it drew, and is tried again with its item.
    fn data_key_items<'r>(
        &mut self,
        principal: &str,
        key: &'r KeyName<'_>,
        (len, ctx, with_plaintext): (usize, &EncryptionContext, bool),
        items: u32,
        memo: &mut Memo<'r>,
        sink: &mut Sink,
    ) -> Step {
        let first = self.data_key(principal, key, len, ctx, with_plaintext, memo, sink);
        let Step::Done(Ok(Resp::DataKey(Out::At(blobs), keys, arn))) = first else {
            return first; // an error, another shard's, or a slow HSM's (latency owed)
        };
        let mut keys = match keys {
            None => None,
            Some(Out::At(k)) => Some(k),
            // Not reached: `seal_data_key` writes into the sink.
            Some(k) => return Step::Done(Ok(Resp::DataKey(Out::At(blobs), Some(k), arn))),
        };
        let action = data_key_action(with_plaintext);
        let id = match memo.hit(key, action) {
            Some((id, _)) if self.latency.is_empty() => id,
            _ => return Step::Done(Ok(Resp::DataKey(Out::At(blobs), keys.map(Out::At), arn))),
        };
        let (mut blobs, mut done) = (blobs, 1u32);
        // The run's other data keys are drawn at once, after the first's, and sealed from
        // there one by one: `used` of them so far.
        let (_, secrets) = sink.areas_mut();
        let drawn = secrets.len();
        let want = (items - done) as usize * len;
        crate::secret::reserve_wiping(secrets, want);
        let mut used = 0;
        if self.pool.extend(secrets, want).is_ok() {
            'run: while done < items {
                let ShardState {
                    keys: entries,
                    pool,
                    rotated,
                    live,
                    max_uses,
                    seal_cache,
                    ..
                } = &mut *self;
                let Some(schedule) = entries.get_mut(&id).and_then(|e| e.local.as_mut()) else {
                    break;
                };
                while done < items {
                    let (keep, kept) = (live.len() < *seal_cache, schedule.keeps_context());
                    let (blob_area, secrets) = sink.areas_mut();
                    let key = &secrets[drawn + used * len..][..len];
                    let (r, started) = seal_drawn(
                        (schedule, &id),
                        (pool, rotated, *max_uses),
                        (key, ctx, keep),
                        blob_area,
                    );
                    if started {
                        live.push_back(id);
                    }
                    let Ok(blob) = r else {
                        break 'run;
                    };
                    // The blobs are appended to and nothing else wrote to them since the
                    // first item: this one follows the previous one, as long as the first.
                    debug_assert_eq!(blob.start, blobs.end);
                    blobs.end = blob.end;
                    used += 1;
                    done += 1;
                    if !started && !kept {
                        // The clock's count, as `count_seal` keeps it, which needs the whole
                        // shard: the schedule is looked up again after it.
                        self.count_seal(id, false, false);
                        continue 'run;
                    }
                }
            }
        }
        // With the plaintext, the keys sealed are the answers', after the first's; the keys
        // drawn and not sealed, and without the plaintext all of them, are wiped and let go.
        let (_, secrets) = sink.areas_mut();
        let answered = if with_plaintext {
            drawn + used * len
        } else {
            drawn
        };
        crate::secret::wipe(&mut secrets[answered..]);
        secrets.truncate(answered);
        if let Some(all) = keys.as_mut() {
            debug_assert_eq!(all.end, drawn);
            all.end = answered;
        }
        let shape = RunShape {
            items: done,
            blob: (blobs.len() / done as usize) as u32,
            key: len as u32,
        };
        let (blobs, keys) = (Out::At(blobs), keys.map(Out::At));
        Step::Done(Ok(if done == 1 {
            Resp::DataKey(blobs, keys, arn)
        } else {
            Resp::DataKeys(blobs, keys, arn, shape)
        }))
    }

    fn decrypt(
        &mut self,
        principal: &str,
        blob_bytes: &[u8],
        ctx: &EncryptionContext,
        key: Option<&KeyName<'_>>,
        action: Action,
        sink: &mut Sink,
    ) -> Step {
        let view = match blob::parse(blob_bytes) {
            Ok(v) => v,
            Err(e) => return Step::Done(Err(e)),
        };
        let id = view.key_id;
        // A blob naming no key here is damaged whatever key the request names (a flipped byte
        // of its key id, or another kind of ciphertext that happens to parse): checked first,
        // so that the answer does not depend on whether the request named a key.
        if !self.keys.contains_key(&id) {
            return Step::Done(Err(err!(
                InvalidCiphertextException,
                "The ciphertext refers to a KMS key that does not exist in this account and Region"
            )));
        }
        if let Some(k) = key {
            match self.resolve(k) {
                Ok(named) if named == id => {}
                Ok(named) => {
                    return Step::Done(Err(err!(
                        IncorrectKeyException,
                        "The key ID in the request ({}) does not identify the KMS key that was \
                         used to encrypt the ciphertext",
                        self.scope.key_arn(&named)
                    )))
                }
                Err(e) => return Step::Done(Err(e)),
            }
        }
        let arn = match self.admit(&id, principal, action, ctx) {
            Ok((_, arn)) => arn,
            Err(e) => return Step::Done(Err(e)),
        };
        let Some(schedule) = self.keys.get(&id).and_then(|e| e.local.as_ref()) else {
            return self.not_here(&id);
        };
        let version = nonce_version(&view.nonce);
        let plain = sink.areas_mut().1;
        let r = if let Some(k) = schedule.current(&view.salt, version) {
            k.and_then(|k| view.open_into(&k, ctx, plain))
        } else if let Some(k) = self.cache.get(&id, &view.salt) {
            view.open_into(k, ctx, plain)
        } else {
            // The material of the blob's version: the schedule's for a key that never rotated,
            // else from the key's versions; a version the key lacks is a damaged blob.
            let derived = match self.rotated.get(&id) {
                None if version == 0 => schedule.derive(&id, &view.salt),
                Some(v) => match v.material(version) {
                    Some(m) => derive_subkey(m, &id, &view.salt),
                    None => Err(missing_version(version)),
                },
                None => Err(missing_version(version)),
            };
            // Cache a derived subkey only once it authenticated a blob, so forged salts can
            // neither fill the cache nor evict useful entries.
            derived.and_then(|k| {
                let p = view.open_into(&k, ctx, plain)?;
                self.cache.insert(id, view.salt, k);
                Ok(p)
            })
        };
        self.done(&id, r.map(|p| Resp::Plain(Out::At(p), arn)))
    }

    fn random(&mut self, len: usize, fleet: Option<&[HsmSlot]>) -> Step {
        if let Some(slots) = fleet {
            let here = slots.iter().any(|s| self.is_local(s));
            if !here {
                let m = slots.iter().fold(0, |m, s| m | self.slot_mask(s)) & !bit(self.idx);
                if m == 0 {
                    return Step::Done(Err(err!(
                        KMSInvalidStateException,
                        "KMS cannot communicate with the CloudHSM cluster: none of the named \
                         HSMs is active"
                    )));
                }
                return Step::Elsewhere(m);
            }
        }
        Step::Done(self.pool.secret(len).map(Resp::Random))
    }

    /// The step that answers `r`, marked with the latency it owes when a slow HSM of this
    /// shard served it: the fastest of the key's HSMs placed here serves (a key also held by
    /// a fast HSM here is not slowed). While no HSM is slow this is one `is_empty` check, and
    /// the answer is not moved once more through a pass-through.
    #[inline]
    fn done(&self, id: &KeyId, r: Result<Resp>) -> Step {
        if self.latency.is_empty() {
            Step::Done(r)
        } else {
            Step::Done(r.map(|resp| self.slowed(id, resp)))
        }
    }

    /// [`ShardState::done`] while some HSM is slow.
    #[cold]
    fn slowed(&self, id: &KeyId, resp: Resp) -> Resp {
        let Some(SlotSet::Hsms(hsms)) = self.keys.get(id).map(|e| &e.holders) else {
            return resp;
        };
        let owed = hsms
            .iter()
            .filter(|h| self.placement.get(*h) == Some(&self.idx))
            .map(|h| self.latency.get(h).copied().unwrap_or_default())
            .min()
            .unwrap_or_default();
        if owed.is_zero() {
            resp
        } else {
            Resp::Slowed(Box::new(resp), owed)
        }
    }

    /// Keeps the count of the kept sealing contexts after a seal of `id`: a context it began
    /// to keep (`started`) joins the clock; a seal that found none kept (`kept` false) and no
    /// room to keep one counts towards the next step of the clock hand, taken every
    /// [`SWEEP_EVERY`] such seals, so that the kept set follows the keys in use at a small,
    /// bounded cost to the seals of keys that are not (and none to those of keys that are).
    fn count_seal(&mut self, id: KeyId, kept: bool, started: bool) {
        if started {
            self.live.push_back(id);
        } else if !kept {
            self.cold_seals = self.cold_seals.wrapping_add(1);
            if self.cold_seals.is_multiple_of(SWEEP_EVERY) {
                self.sweep_step();
            }
        }
    }

    /// One step of the clock (CLOCK: second chances) over the kept sealing contexts: the
    /// oldest is kept for another round if it sealed since the hand last passed it, else its
    /// context (and the ARN kept with it) is dropped, which makes room for one more. An entry
    /// of a key that since lost its context or its material only makes room.
    fn sweep_step(&mut self) {
        let Some(old) = self.live.pop_front() else {
            return;
        };
        let Some(entry) = self.keys.get_mut(&old) else {
            return; // the key is gone
        };
        let Some(schedule) = entry.local.as_mut() else {
            return; // its material is gone
        };
        if schedule.age() {
            self.live.push_back(old); // used since the last pass: a second chance
        } else {
            schedule.evict();
            entry.arn = None;
        }
    }

    /// Drops the key's material here once no slot placed on this shard holds it.
    fn drop_local_if_unheld(&mut self, key: &KeyId) {
        let Some(entry) = self.keys.get(key) else {
            return;
        };
        let local = entry.holders.slots().any(|s| self.is_local(&s));
        if !local {
            if let Some(entry) = self.keys.get_mut(key) {
                if entry.local.take().is_some() {
                    self.cache.remove_key(key);
                }
            }
        }
    }

    fn is_local(&self, slot: &HsmSlot) -> bool {
        self.slot_mask(slot) & bit(self.idx) != 0
    }

    /// Applies one control change. Validates before mutating, so an error leaves the shard
    /// unchanged (and, directories being identical, every shard fails the same way).
    /// `target` is the shard chosen for an `AddHsm` of a custom HSM.
    pub(crate) fn apply(&mut self, c: &Control, target: usize) -> Result<()> {
        match c {
            Control::AddHsm { hsm } => match hsm {
                HsmSlot::Default => self.default_fleet = true,
                HsmSlot::Hsm(h) => {
                    if !self.placement.contains_key(h) {
                        self.placement.insert(h.clone(), target);
                        self.held.entry(h.clone()).or_default();
                    }
                }
            },
            Control::RemoveHsm { hsm } => {
                if self.slot_mask(hsm) == 0 {
                    return Err(hsm_not_active(hsm));
                }
                // The keys the slot holds: for an HSM, its index; for the default fleet, every
                // default-store key (removing the fleet changes them all).
                let keys: Vec<KeyId> = match hsm {
                    HsmSlot::Hsm(h) => self
                        .held
                        .remove(h)
                        .map(|k| k.into_iter().collect())
                        .unwrap_or_default(),
                    HsmSlot::Default => self
                        .keys
                        .iter()
                        .filter(|(_, e)| matches!(e.holders, SlotSet::Default))
                        .map(|(id, _)| *id)
                        .collect(),
                };
                for k in &keys {
                    if let Some(entry) = self.keys.get_mut(k) {
                        entry.holders.remove(hsm);
                    }
                }
                match hsm {
                    HsmSlot::Default => self.default_fleet = false,
                    HsmSlot::Hsm(h) => {
                        self.placement.remove(h);
                        self.latency.remove(h);
                    }
                }
                for k in &keys {
                    self.drop_local_if_unheld(k);
                }
            }
            Control::PutReplica { hsm, key, material } => {
                if self.slot_mask(hsm) == 0 {
                    return Err(replica_without_hsm(hsm));
                }
                let local = self.is_local(hsm);
                let Some(entry) = self.keys.get_mut(key) else {
                    return Err(KmsError::key_not_found(self.scope.key_arn(key)));
                };
                entry.holders.insert(hsm);
                if local && entry.local.is_none() {
                    // A rotated key seals with its newest version, whatever the replica says.
                    entry.local = Some(SubkeySchedule::new(match self.rotated.get(key) {
                        Some(v) => v.current.duplicate(),
                        None => material.duplicate(),
                    }));
                }
                if let HsmSlot::Hsm(h) = hsm {
                    if let Some(keys) = self.held.get_mut(h) {
                        keys.insert(*key);
                    }
                }
            }
            Control::RemoveReplica { hsm, key } => {
                if let Some(entry) = self.keys.get_mut(key) {
                    entry.holders.remove(hsm);
                }
                if let HsmSlot::Hsm(h) = hsm {
                    if let Some(keys) = self.held.get_mut(h) {
                        keys.remove(key);
                    }
                }
                self.drop_local_if_unheld(key);
            }
            Control::PutKey {
                key,
                gate,
                authorizer,
            } => {
                let (closed, expiry) = entry_gate(gate);
                match self.keys.get_mut(key) {
                    Some(entry) => {
                        entry.authorizer = authorizer.clone();
                        entry.allowed = None;
                        entry.closed = closed;
                        entry.expiry = expiry;
                    }
                    None => {
                        self.keys.insert(
                            *key,
                            KeyEntry {
                                authorizer: authorizer.clone(),
                                allowed: None,
                                grants: None,
                                closed,
                                expiry,
                                holders: SlotSet::None,
                                local: None,
                                arn: None,
                            },
                        );
                    }
                }
            }
            Control::PutGrant { key, id, grant } => match self.keys.get_mut(key) {
                Some(entry) => entry
                    .grants
                    .get_or_insert_with(Default::default)
                    .put(id, grant),
                None => return Err(KmsError::key_not_found(self.scope.key_arn(key))),
            },
            Control::RemoveGrant { key, id } => {
                if let Some(entry) = self.keys.get_mut(key) {
                    if let Some(grants) = entry.grants.as_mut() {
                        grants.remove(id);
                        if grants.is_empty() {
                            entry.grants = None;
                        }
                    }
                }
            }
            Control::SetGate { key, gate } => match self.keys.get_mut(key) {
                Some(entry) => (entry.closed, entry.expiry) = entry_gate(gate),
                None => return Err(KmsError::key_not_found(self.scope.key_arn(key))),
            },
            Control::RemoveKey { key } => {
                if let Some(entry) = self.keys.remove(key) {
                    if let SlotSet::Hsms(hsms) = &entry.holders {
                        for h in hsms {
                            if let Some(keys) = self.held.get_mut(h) {
                                keys.remove(key);
                            }
                        }
                    }
                    if entry.local.is_some() {
                        self.cache.remove_key(key);
                    }
                }
                self.rotated.remove(key);
                self.private.remove(key);
                self.aliases.retain(|_, k| k != key);
            }
            Control::PutAlias { alias, key } => {
                if !self.keys.contains_key(key) {
                    return Err(KmsError::key_not_found(self.scope.key_arn(key)));
                }
                self.aliases.insert(alias.clone(), *key);
            }
            Control::RemoveAlias { alias } => {
                self.aliases.remove(alias);
            }
            Control::SetHsmLatency { hsm, latency } => {
                if latency.is_zero() {
                    self.latency.remove(hsm);
                } else {
                    self.latency.insert(hsm.clone(), *latency);
                }
            }
            Control::Reset => {
                self.latency.clear();
                self.keys.clear();
                self.aliases.clear();
                self.placement.clear();
                self.held.clear();
                self.default_fleet = false;
                self.cache = SubkeyCache::new(self.cache.capacity());
                self.live.clear();
                self.rotated.clear();
                self.private.clear();
            }
            Control::PutPrivate { key, private } => {
                if !self.keys.contains_key(key) {
                    return Err(KmsError::key_not_found(self.scope.key_arn(key)));
                }
                self.private.insert(*key, private.clone());
            }
            Control::PutVersions { key, versions } => {
                let Some(entry) = self.keys.get_mut(key) else {
                    return Err(KmsError::key_not_found(self.scope.key_arn(key)));
                };
                // Where the key is local, its schedule moves to the newest version (a new
                // epoch at its next seal); subkeys of older versions stay cached.
                if let Some(schedule) = entry.local.as_mut() {
                    *schedule = SubkeySchedule::new(versions.current.duplicate());
                }
                self.rotated.insert(*key, versions.clone());
            }
        }
        Ok(())
    }

    /// Checks that every control of `changes` would apply, as [`ShardState::apply`] checks
    /// it, over what the controls before it add and remove — without changing anything, so
    /// that a batch applies whole or not at all.
    pub(crate) fn validate(&self, changes: &[Control]) -> Result<()> {
        // What the batch changed so far: HSM slots and keys, present (true) or gone (false).
        let mut slots: HashMap<&HsmSlot, bool> = HashMap::new();
        let mut keys: HashMap<&KeyId, bool> = HashMap::new();
        let mut reset = false;
        let active = |slots: &HashMap<&HsmSlot, bool>, reset: bool, h: &HsmSlot| {
            slots
                .get(h)
                .copied()
                .unwrap_or(!reset && self.slot_mask(h) != 0)
        };
        let known = |keys: &HashMap<&KeyId, bool>, reset: bool, k: &KeyId| {
            keys.get(k)
                .copied()
                .unwrap_or(!reset && self.keys.contains_key(k))
        };
        for c in changes {
            match c {
                Control::AddHsm { hsm } => {
                    slots.insert(hsm, true);
                }
                Control::RemoveHsm { hsm } => {
                    if !active(&slots, reset, hsm) {
                        return Err(hsm_not_active(hsm));
                    }
                    slots.insert(hsm, false);
                }
                Control::PutReplica { hsm, key, .. } => {
                    if !active(&slots, reset, hsm) {
                        return Err(replica_without_hsm(hsm));
                    }
                    if !known(&keys, reset, key) {
                        return Err(KmsError::key_not_found(self.scope.key_arn(key)));
                    }
                }
                Control::PutKey { key, .. } => {
                    keys.insert(key, true);
                }
                Control::RemoveKey { key } => {
                    keys.insert(key, false);
                }
                Control::SetGate { key, .. }
                | Control::PutAlias { key, .. }
                | Control::PutGrant { key, .. }
                | Control::PutVersions { key, .. }
                | Control::PutPrivate { key, .. } => {
                    if !known(&keys, reset, key) {
                        return Err(KmsError::key_not_found(self.scope.key_arn(key)));
                    }
                }
                Control::RemoveReplica { .. }
                | Control::RemoveGrant { .. }
                | Control::RemoveAlias { .. }
                | Control::SetHsmLatency { .. } => {}
                Control::Reset => {
                    slots.clear();
                    keys.clear();
                    reset = true;
                }
            }
        }
        Ok(())
    }

    /// Keys whose schedule keeps an expanded sealing context.
    #[cfg(test)]
    pub(crate) fn kept_contexts(&self) -> usize {
        self.keys
            .values()
            .filter(|e| e.local.as_ref().is_some_and(SubkeySchedule::keeps_context))
            .count()
    }

    /// Whether `id`'s schedule keeps an expanded sealing context.
    #[cfg(test)]
    pub(crate) fn keeps_context(&self, id: &KeyId) -> bool {
        self.keys
            .get(id)
            .and_then(|e| e.local.as_ref())
            .is_some_and(SubkeySchedule::keeps_context)
    }

    /// Keys this shard knows.
    #[cfg(test)]
    pub(crate) fn key_count(&self) -> usize {
        self.keys.len()
    }

    /// Room for `additional` more keys (a bulk load at open), so that the map grows once.
    pub(crate) fn reserve_keys(&mut self, additional: usize) {
        self.keys.reserve(additional);
    }
}
