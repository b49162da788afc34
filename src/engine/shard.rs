//! One shard's state and the request logic that runs inside it.
//!
//! Every shard holds a full copy of the directories (keys, aliases, which HSM slots hold which
//! key, where each HSM is placed) and the key material of the HSM slots placed on it, so a
//! request is answered entirely inside one shard once it holds the shard's lock.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use crossbeam::utils::CachePadded;
use zeroize::Zeroize;

use super::{Action, Authorizer, Control, Gate, HsmSlot};
use crate::crypto::blob;
use crate::crypto::random::RandomPool;
use crate::crypto::subkey::{SubkeyCache, SubkeySchedule};
use crate::err;
use crate::error::{KmsError, Result};
use crate::secret::SecretBytes;
use crate::types::{EncryptionContext, HsmId, KeyId, KeyRef, Scope};

/// A data-plane request, borrowed from the caller (inline path) or owned (queued path).
pub(crate) enum Req<'a> {
    Encrypt {
        key: Cow<'a, KeyRef>,
        plaintext: Cow<'a, [u8]>,
        ctx: Cow<'a, EncryptionContext>,
        action: Action,
    },
    Decrypt {
        blob: Cow<'a, [u8]>,
        ctx: Cow<'a, EncryptionContext>,
        key: Option<Cow<'a, KeyRef>>,
        action: Action,
    },
    DataKey {
        key: Cow<'a, KeyRef>,
        len: usize,
        ctx: Cow<'a, EncryptionContext>,
        plaintext: bool,
    },
    Random {
        len: usize,
        fleet: Option<Cow<'a, [HsmSlot]>>,
    },
}

fn own<T: ToOwned + ?Sized>(c: &T) -> Cow<'static, T> {
    Cow::Owned(c.to_owned())
}

impl Req<'_> {
    /// An owned copy, for handing to another thread.
    pub(crate) fn to_static(&self) -> Req<'static> {
        match self {
            Req::Encrypt {
                key,
                plaintext,
                ctx,
                action,
            } => Req::Encrypt {
                key: own(&**key),
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
                key: key.as_deref().map(own),
                action: *action,
            },
            Req::DataKey {
                key,
                len,
                ctx,
                plaintext,
            } => Req::DataKey {
                key: own(&**key),
                len: *len,
                ctx: own(&**ctx),
                plaintext: *plaintext,
            },
            Req::Random { len, fleet } => Req::Random {
                len: *len,
                fleet: fleet.as_deref().map(own),
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
    }
}

/// A successful answer, before the facade turns it into an output type.
pub(crate) enum Resp {
    Blob(Vec<u8>, Arc<str>),
    Plain(SecretBytes, Arc<str>),
    DataKey(Vec<u8>, Option<SecretBytes>, Arc<str>),
    Random(SecretBytes),
}

/// The last admitted (key reference, action) within one lock hold, so a batch on one key
/// resolves and authorizes once. Only valid while the shard lock is held and for one principal:
/// `apply` cannot run in between, so gates and authorizers cannot change under it.
#[derive(Default)]
pub(crate) struct Memo(Option<(KeyRef, Action, KeyId, Arc<str>)>);

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

struct KeyInfo {
    arn: Arc<str>,
    gate: Gate,
    authorizer: Arc<dyn Authorizer>,
}

struct LocalKey {
    /// Local HSM slots holding a replica.
    slots: Vec<HsmSlot>,
    /// Written on every seal: on its own cache lines, so it never shares one with another
    /// shard's data (the maps of all shards are allocated by the control-plane thread).
    schedule: Box<CachePadded<SubkeySchedule>>,
}

/// Everything one shard owns. Only touched with the shard's mutex held.
pub(crate) struct ShardState {
    idx: usize,
    nshards: usize,
    scope: Scope,
    keys: IdMap<KeyInfo>,
    aliases: HashMap<String, KeyId>,
    /// Every HSM slot (on any shard) holding each key.
    holders: IdMap<Vec<HsmSlot>>,
    /// The shard of every custom HSM.
    placement: HashMap<HsmId, usize>,
    default_fleet: bool,
    /// Slots placed on this shard, with the keys they hold.
    local_slots: HashMap<HsmSlot, HashSet<KeyId>>,
    local: IdMap<LocalKey>,
    pool: RandomPool,
    cache: SubkeyCache,
    max_uses: u64,
}

fn bit(i: usize) -> u64 {
    1u64 << i
}

fn unreachable_cluster(arn: &str) -> KmsError {
    err!(
        KMSInvalidStateException,
        "{arn} is unavailable: KMS cannot communicate with the CloudHSM cluster that holds its \
         key material (no active HSM holds the key)"
    )
}

impl ShardState {
    pub(crate) fn new(
        idx: usize,
        nshards: usize,
        scope: Scope,
        max_uses: u64,
        cache: usize,
    ) -> ShardState {
        ShardState {
            idx,
            nshards,
            scope,
            keys: IdMap::default(),
            aliases: HashMap::new(),
            holders: IdMap::default(),
            placement: HashMap::new(),
            default_fleet: false,
            local_slots: HashMap::new(),
            local: IdMap::default(),
            pool: RandomPool::new(),
            cache: SubkeyCache::new(cache),
            max_uses,
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
        self.holders
            .get(id)
            .map_or(0, |v| v.iter().fold(0, |m, s| m | self.slot_mask(s)))
    }

    /// How many custom HSMs each shard hosts (for placing a new one).
    pub(crate) fn least_loaded_shard(&self) -> usize {
        let mut load = vec![0usize; self.nshards];
        for &s in self.placement.values() {
            load[s] += 1;
        }
        (0..self.nshards).min_by_key(|&s| load[s]).unwrap_or(0)
    }

    fn resolve(&self, key: &KeyRef) -> Result<KeyId> {
        match key {
            KeyRef::Id(id) if self.keys.contains_key(id) => Ok(*id),
            KeyRef::Id(id) => Err(KmsError::key_not_found(self.scope.key_arn(id))),
            KeyRef::Alias(a) => self
                .aliases
                .get(a)
                .copied()
                .filter(|id| self.keys.contains_key(id))
                .ok_or_else(|| KmsError::alias_not_found(self.scope.alias_arn(a))),
        }
    }

    /// Authorizer, then gate. Returns the key's ARN.
    fn admit(&self, id: &KeyId, principal: &str, action: Action) -> Result<Arc<str>> {
        let info = self
            .keys
            .get(id)
            .ok_or_else(|| KmsError::key_not_found(self.scope.key_arn(id)))?;
        if !info.authorizer.allows(principal, action) {
            return Err(KmsError::not_authorized(
                principal,
                action.as_str(),
                &info.arn,
            ));
        }
        match &info.gate {
            Gate::Open => Ok(info.arn.clone()),
            Gate::Closed(e) => Err(e.clone()),
        }
    }

    /// Where the request can be served: a mask of shards (this shard's bit included when it
    /// can). Requests that will fail anyway report this shard, which produces the error.
    pub(crate) fn holder_mask(&self, req: &Req<'_>) -> u64 {
        let here = bit(self.idx);
        let id = match req {
            Req::Encrypt { key, .. } | Req::DataKey { key, .. } => self.resolve(key).ok(),
            Req::Decrypt { blob, .. } => blob::parse(blob).ok().map(|v| v.key_id),
            Req::Random { fleet: None, .. } => return self.all_mask(),
            Req::Random {
                fleet: Some(slots), ..
            } => {
                let m = slots.iter().fold(0, |m, s| m | self.slot_mask(s));
                return if m == 0 { here } else { m };
            }
        };
        match id {
            Some(id) if self.keys.contains_key(&id) => {
                let m = self.key_mask(&id);
                if m == 0 {
                    here
                } else {
                    m
                }
            }
            _ => here,
        }
    }

    fn not_here(&self, id: &KeyId, arn: &str) -> Step {
        let m = self.key_mask(id) & !bit(self.idx);
        if m == 0 {
            Step::Done(Err(unreachable_cluster(arn)))
        } else {
            Step::Elsewhere(m)
        }
    }

    /// Runs one request on this shard.
    /// Resolve + admit, through the memo.
    fn admit_ref(
        &self,
        key: &KeyRef,
        principal: &str,
        action: Action,
        memo: &mut Memo,
    ) -> Result<(KeyId, Arc<str>)> {
        if let Some((k, a, id, arn)) = &memo.0 {
            if *a == action && k == key {
                return Ok((*id, arn.clone()));
            }
        }
        let id = self.resolve(key)?;
        let arn = self.admit(&id, principal, action)?;
        memo.0 = Some((key.clone(), action, id, arn.clone()));
        Ok((id, arn))
    }

    pub(crate) fn execute(&mut self, principal: &str, req: &Req<'_>, memo: &mut Memo) -> Step {
        match req {
            Req::Encrypt {
                key,
                plaintext,
                ctx,
                action,
            } => self.encrypt(principal, key, plaintext, ctx, *action, memo),
            Req::Decrypt {
                blob,
                ctx,
                key,
                action,
            } => self.decrypt(principal, blob, ctx, key.as_deref(), *action),
            Req::DataKey {
                key,
                len,
                ctx,
                plaintext,
            } => self.data_key(principal, key, *len, ctx, *plaintext, memo),
            Req::Random { len, fleet } => self.random(*len, fleet.as_deref()),
        }
    }

    fn encrypt(
        &mut self,
        principal: &str,
        key: &KeyRef,
        plaintext: &[u8],
        ctx: &EncryptionContext,
        action: Action,
        memo: &mut Memo,
    ) -> Step {
        let (id, arn) = match self.admit_ref(key, principal, action, memo) {
            Ok(x) => x,
            Err(e) => return Step::Done(Err(e)),
        };
        let Some(local) = self.local.get_mut(&id) else {
            return self.not_here(&id, &arn);
        };
        let r = local
            .schedule
            .next(&mut self.pool)
            .and_then(|p| blob::seal(&id, p, plaintext, ctx));
        Step::Done(r.map(|b| Resp::Blob(b, arn)))
    }

    fn data_key(
        &mut self,
        principal: &str,
        key: &KeyRef,
        len: usize,
        ctx: &EncryptionContext,
        with_plaintext: bool,
        memo: &mut Memo,
    ) -> Step {
        let action = if with_plaintext {
            Action::GenerateDataKey
        } else {
            Action::GenerateDataKeyWithoutPlaintext
        };
        let (id, arn) = match self.admit_ref(key, principal, action, memo) {
            Ok(x) => x,
            Err(e) => return Step::Done(Err(e)),
        };
        let Some(local) = self.local.get_mut(&id) else {
            return self.not_here(&id, &arn);
        };
        let r = self.pool.secret(len).and_then(|dk| {
            let p = local.schedule.next(&mut self.pool)?;
            let b = blob::seal(&id, p, dk.expose(), ctx)?;
            Ok(Resp::DataKey(b, with_plaintext.then_some(dk), arn))
        });
        Step::Done(r)
    }

    fn decrypt(
        &mut self,
        principal: &str,
        blob_bytes: &[u8],
        ctx: &EncryptionContext,
        key: Option<&KeyRef>,
        action: Action,
    ) -> Step {
        let view = match blob::parse(blob_bytes) {
            Ok(v) => v,
            Err(e) => return Step::Done(Err(e)),
        };
        let id = view.key_id;
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
        if !self.keys.contains_key(&id) {
            return Step::Done(Err(err!(
                InvalidCiphertextException,
                "The ciphertext refers to a KMS key that does not exist in this account and Region"
            )));
        }
        let arn = match self.admit(&id, principal, action) {
            Ok(a) => a,
            Err(e) => return Step::Done(Err(e)),
        };
        let Some(local) = self.local.get(&id) else {
            return self.not_here(&id, &arn);
        };
        let r = if let Some(k) = local.schedule.current(&view.salt) {
            view.open(k, ctx)
        } else if let Some(k) = self.cache.get(&id, &view.salt) {
            view.open(k, ctx)
        } else {
            // Cache a derived subkey only once it authenticated a blob, so forged salts can
            // neither fill the cache nor evict useful entries.
            local.schedule.derive(&view.salt).and_then(|k| {
                let p = view.open(&k, ctx)?;
                self.cache.insert(id, view.salt, k);
                Ok(p)
            })
        };
        Step::Done(r.map(|p| Resp::Plain(p, arn)))
    }

    fn random(&mut self, len: usize, fleet: Option<&[HsmSlot]>) -> Step {
        if let Some(slots) = fleet {
            let here = slots.iter().any(|s| self.local_slots.contains_key(s));
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

    fn drop_local_replica(&mut self, slot: &HsmSlot, key: &KeyId) {
        if let Some(lk) = self.local.get_mut(key) {
            lk.slots.retain(|s| s != slot);
            if lk.slots.is_empty() {
                self.local.remove(key);
                self.cache.remove_key(key);
            }
        }
    }

    fn is_local(&self, slot: &HsmSlot) -> bool {
        self.local_slots.contains_key(slot)
    }

    /// Applies one control change. Validates before mutating, so an error leaves the shard
    /// unchanged (and, directories being identical, every shard fails the same way).
    /// `target` is the shard chosen for an `AddHsm` of a custom HSM.
    pub(crate) fn apply(&mut self, c: &Control, target: usize) -> Result<()> {
        match c {
            Control::AddHsm { hsm } => {
                match hsm {
                    HsmSlot::Default => self.default_fleet = true,
                    HsmSlot::Hsm(h) => {
                        if self.placement.contains_key(h) {
                            return Ok(());
                        }
                        self.placement.insert(h.clone(), target);
                    }
                }
                if self.slot_mask(hsm) & bit(self.idx) != 0 {
                    self.local_slots.entry(hsm.clone()).or_default();
                }
            }
            Control::RemoveHsm { hsm } => {
                if self.slot_mask(hsm) == 0 {
                    return Err(err!(
                        CloudHsmResourceNotFoundException,
                        "HSM {hsm:?} is not active in the engine"
                    ));
                }
                if let Some(keys) = self.local_slots.remove(hsm) {
                    for k in keys {
                        self.drop_local_replica(hsm, &k);
                    }
                }
                for v in self.holders.values_mut() {
                    v.retain(|s| s != hsm);
                }
                self.holders.retain(|_, v| !v.is_empty());
                match hsm {
                    HsmSlot::Default => self.default_fleet = false,
                    HsmSlot::Hsm(h) => {
                        self.placement.remove(h);
                    }
                }
            }
            Control::PutReplica { hsm, key, material } => {
                if self.slot_mask(hsm) == 0 {
                    return Err(err!(
                        CloudHsmResourceNotFoundException,
                        "HSM {hsm:?} is not active in the engine; add it before its replicas"
                    ));
                }
                let h = self.holders.entry(*key).or_default();
                if !h.contains(hsm) {
                    h.push(hsm.clone());
                }
                if self.is_local(hsm) {
                    if let Some(keys) = self.local_slots.get_mut(hsm) {
                        keys.insert(*key);
                    }
                    match self.local.get_mut(key) {
                        Some(lk) => {
                            if !lk.slots.contains(hsm) {
                                lk.slots.push(hsm.clone());
                            }
                        }
                        None => {
                            let schedule =
                                SubkeySchedule::new(*key, material.duplicate(), self.max_uses);
                            self.local.insert(
                                *key,
                                LocalKey {
                                    slots: vec![hsm.clone()],
                                    schedule: Box::new(CachePadded::new(schedule)),
                                },
                            );
                        }
                    }
                }
            }
            Control::RemoveReplica { hsm, key } => {
                if let Some(v) = self.holders.get_mut(key) {
                    v.retain(|s| s != hsm);
                    if v.is_empty() {
                        self.holders.remove(key);
                    }
                }
                if let Some(keys) = self.local_slots.get_mut(hsm) {
                    keys.remove(key);
                }
                self.drop_local_replica(hsm, key);
            }
            Control::PutKey {
                key,
                arn,
                gate,
                authorizer,
            } => {
                // Each shard gets its own ARN allocation, so answering never bounces one
                // reference count between cores.
                self.keys.insert(
                    *key,
                    KeyInfo {
                        arn: Arc::from(&**arn),
                        gate: gate.clone(),
                        authorizer: authorizer.clone(),
                    },
                );
            }
            Control::SetGate { key, gate } => match self.keys.get_mut(key) {
                Some(info) => info.gate = gate.clone(),
                None => return Err(KmsError::key_not_found(self.scope.key_arn(key))),
            },
            Control::RemoveKey { key } => {
                self.keys.remove(key);
                self.aliases.retain(|_, k| k != key);
                self.holders.remove(key);
                for keys in self.local_slots.values_mut() {
                    keys.remove(key);
                }
                self.local.remove(key);
                self.cache.remove_key(key);
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
        }
        Ok(())
    }
}
