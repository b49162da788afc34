//! Keeps the data-plane engine in step with the control-plane state.
//!
//! After every commit the service calls [`Mirror::sync`] with the changes it just applied. The
//! mirror remembers what the engine was told (HSM slots, each key's gate, policy and replicas,
//! aliases), recomputes what the state now implies for the affected keys only, and sends the
//! difference as one ordered batch of [`Control`]s. Because the engine applies a batch to every
//! shard before `apply` returns, a request that starts after a control-plane call returns sees
//! its effect.
//!
//! A revocation must reach the data plane or fail closed. The engine applies a batch whole or
//! not at all. A key whose sync fails part-way (its material cannot be unwrapped) is closed in
//! the engine with an error naming the cause, and re-checked at every later sync until one
//! succeeds; the other keys of the batch are synced as usual, so a DisableKey committed beside
//! the failure is enforced. Should the engine refuse a batch, every key it touched is closed
//! and the next sync resets the engine and sends everything again. So does a sync that never
//! reaches the engine: the mirror records what it sends while it builds the batch, so a sync
//! that unwinds part-way (a panic, the caller's lock then recovered) would leave records of
//! controls the engine never got, and every later sync would see no difference to send. A sync
//! therefore marks the mirror for a reset as it starts and clears the mark only once its batch
//! is applied (or it had nothing to send).
//!
//! A rotation travels the same way: a default-store key's new material version is one
//! `PutVersions` for that key, carrying every version (the newest seals, the older ones open),
//! in the commit's batch, so a blob sealed after RotateKeyOnDemand returns uses the new
//! material. Keys that never rotated get no such control.
//!
//! An HMAC key has no replicas: its material is unwrapped and parsed once, into the key object
//! every shard shares (`PutPrivate`), when the key is first sent.
//!
//! Grants travel the same way: a grant created, retired or revoked is one `PutGrant` or
//! `RemoveGrant` for that grant alone, in the same batch as the commit's other controls, so a
//! revocation is enforced for every request that starts after RevokeGrant returns — or, should
//! the batch fail, the key is closed like any other whose sync failed.
//!
//! A change costs what it names: the mirror indexes the keys of the state by custom key store
//! and by the key object backing them, so that a change to a cluster re-checks the keys of that
//! cluster's stores only, and a key object put or deleted re-checks only the key it backs (or,
//! by its label, will back).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use crate::control::{Change, State};
use crate::crypto::private_key::{is_private_spec, PrivateKey};
use crate::engine::{
    Action, ActionSet, AllowAll, Authorizer, Control, Engine, EngineGrant, Expiry, Gate, HsmSlot,
    KeyVersions, SlotSet,
};
use crate::err;
use crate::error::Result;
use crate::hsm::model::KeyObject;
use crate::hsm::{self, HsmChange, Wrapper};
use crate::kms::keys::{default_material_aad, store_connected, version_material_aad};
use crate::kms::model::{Backing, Grant, Key, Lifecycle};
use crate::kms::policy::KeyPolicy;
use crate::kms::state::KmsChange;
use crate::kms::{import, MASTER_KEY};
use crate::types::{
    Clock, ClusterId, ConnectionState, CustomKeyStoreId, GrantOperation, HsmId, KeyId,
    PolicyVerdict, Scope,
};

/// A key policy as the engine's authorizer, shared by every key whose policy has the same
/// text (see [`PolicyTable`]): it is parsed once, and the ARN a statement's `Resource` is
/// matched against is written from the key id only when some statement looks at it.
struct PolicyAuthorizer {
    policy: KeyPolicy,
    scope: Scope,
    ignores_resource: bool,
}

impl Authorizer for PolicyAuthorizer {
    fn allows(&self, principal: &str, action: Action, key: &KeyId) -> bool {
        self.verdict(principal, action, key) == PolicyVerdict::Allow
    }

    fn verdict(&self, principal: &str, action: Action, key: &KeyId) -> PolicyVerdict {
        if self.ignores_resource {
            // No statement reads the resource: any text gives the verdict.
            self.policy.verdict(principal, action.as_str(), "")
        } else {
            self.policy
                .verdict(principal, action.as_str(), &self.scope.key_arn(key))
        }
    }

    /// A parsed policy's verdict reads only the principal, the action and the key's ARN (its
    /// conditions read the caller's ARN), and a policy change sends the key a new authorizer.
    fn is_pure(&self) -> bool {
        true
    }
}

/// Parsed key policies by text, shared by every key whose policy reads the same — most keys
/// carry their account's default policy — so a policy is parsed and held once however many
/// keys use it. Each entry counts the mirrored keys using it and goes when the last one does.
#[derive(Default)]
struct PolicyTable {
    by_text: HashMap<Arc<str>, PolicyEntry>,
}

/// One entry of the [`PolicyTable`].
struct PolicyEntry {
    /// The text (the same allocation as the map's key).
    text: Arc<str>,
    authorizer: Arc<PolicyAuthorizer>,
    /// Mirrored keys using it.
    users: usize,
}

impl PolicyTable {
    /// The shared text and authorizer for `text`, counting one more key using it. A text that
    /// does not parse changes nothing.
    fn acquire(&mut self, text: &str, scope: &Scope) -> Result<(Arc<str>, Arc<PolicyAuthorizer>)> {
        if let Some(entry) = self.by_text.get_mut(text) {
            entry.users += 1;
            return Ok((entry.text.clone(), entry.authorizer.clone()));
        }
        let policy = KeyPolicy::parse_stored(text)?;
        let authorizer = Arc::new(PolicyAuthorizer {
            ignores_resource: policy.ignores_resource(),
            policy,
            scope: scope.clone(),
        });
        let shared: Arc<str> = text.into();
        let entry = PolicyEntry {
            text: shared.clone(),
            authorizer: authorizer.clone(),
            users: 1,
        };
        self.by_text.insert(shared.clone(), entry);
        Ok((shared, authorizer))
    }

    /// One key fewer uses `text`.
    fn release(&mut self, text: &str) {
        if let Some(entry) = self.by_text.get_mut(text) {
            entry.users -= 1;
            if entry.users == 0 {
                self.by_text.remove(text);
            }
        }
    }
}

/// What the engine was last told about one key.
struct Mirrored {
    gate: Option<Box<str>>,
    /// The policy text the engine was given (shared through [`PolicyTable`]); `None` until
    /// the key was first sent.
    policy: Option<Arc<str>>,
    replicas: SlotSet,
    /// The newest material version the engine was told of (0: none sent, the replica's).
    version: u32,
    /// Whether the engine was given the key's parsed key (`Control::PutPrivate`: HMAC keys).
    private: bool,
}

/// Where a key lives, as the mirror last looked: its custom key store and the key object that
/// backs it (both `None` for a key in the default key store).
#[derive(Default)]
struct Placement {
    store: Option<CustomKeyStoreId>,
    object: Option<(ClusterId, u64)>,
}

/// How much work the mirror has done since it started (for tests and diagnostics).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MirrorStats {
    /// Keys whose engine state was recomputed from the control-plane state.
    pub keys_checked: u64,
    /// Controls sent to the engine.
    pub controls_sent: u64,
}

/// What the engine holds, as far as the control plane told it.
#[derive(Default)]
pub struct Mirror {
    hsms: HashSet<HsmId>,
    /// The slow HSMs the engine was told of, with their added latency in milliseconds.
    latency: HashMap<HsmId, u32>,
    keys: HashMap<KeyId, Mirrored>,
    aliases: HashMap<String, KeyId>,
    /// The grant ids the engine holds, by key (only keys with grants).
    grants: HashMap<KeyId, HashSet<String>>,
    /// The parsed policies the keys share.
    policies: PolicyTable,
    /// Index: where each key of the state lives (kept for every key the mirror re-checks).
    placements: HashMap<KeyId, Placement>,
    /// Index: the keys of each custom key store.
    by_store: HashMap<CustomKeyStoreId, BTreeSet<KeyId>>,
    /// Index: the key each key object backs.
    by_object: HashMap<(ClusterId, u64), KeyId>,
    stats: MirrorStats,
    started: bool,
    /// Keys whose last sync failed: closed in the engine, re-checked at every sync until one
    /// succeeds.
    retry: BTreeSet<KeyId>,
    /// What the engine holds is unknown — it refused a batch, or a sync did not finish (set
    /// as each sync starts, cleared once its batch is applied): the next sync resets it and
    /// sends everything.
    resync: bool,
    /// The instance's clock, for the keys usable until a time ([`Gate::OpenUntil`]); without
    /// one (a mirror made for a test) such keys are open until the control plane closes them.
    clock: Option<Arc<dyn Clock>>,
}

/// What a batch of changes may have affected.
#[derive(Default)]
struct Affected {
    everything: bool,
    keys: BTreeSet<KeyId>,
    stores: BTreeSet<CustomKeyStoreId>,
    clusters: BTreeSet<ClusterId>,
    aliases: BTreeSet<String>,
    grants: BTreeSet<(KeyId, String)>,
}

impl Affected {
    /// What `changes` may have affected; `by_object` names the key each key object backs.
    fn from_changes(
        changes: &[Change],
        scope: &Scope,
        by_object: &HashMap<(ClusterId, u64), KeyId>,
    ) -> Affected {
        let mut a = Affected::default();
        for c in changes {
            match c {
                Change::Kms(KmsChange::PutKey(k)) => {
                    a.keys.insert(k.id);
                }
                Change::Kms(KmsChange::DeleteKey(id)) => {
                    a.keys.insert(*id);
                }
                Change::Kms(KmsChange::PutStore(s)) => {
                    a.stores.insert(s.id.clone());
                }
                Change::Kms(KmsChange::DeleteStore(id)) => {
                    a.stores.insert(id.clone());
                }
                Change::Hsm(HsmChange::PutCluster(c)) => {
                    a.clusters.insert(c.id.clone());
                }
                Change::Hsm(HsmChange::DeleteCluster(id)) => {
                    a.clusters.insert(id.clone());
                }
                // An object backs the key its label names (the key's ARN); one put in place of
                // another may also take the place of what backed another key.
                Change::Hsm(HsmChange::PutObject(cluster, o)) => {
                    if let Ok(id) = scope.parse_key_id(&o.label) {
                        a.keys.insert(id);
                    }
                    if let Some(id) = by_object.get(&(cluster.clone(), o.handle)) {
                        a.keys.insert(*id);
                    }
                }
                Change::Hsm(HsmChange::DeleteObject(cluster, handle)) => {
                    if let Some(id) = by_object.get(&(cluster.clone(), *handle)) {
                        a.keys.insert(*id);
                    }
                }
                Change::Kms(KmsChange::PutAlias(al)) => {
                    a.aliases.insert(al.name.clone());
                }
                Change::Kms(KmsChange::DeleteAlias(name)) => {
                    a.aliases.insert(name.clone());
                }
                Change::Kms(KmsChange::PutGrant(g)) => {
                    a.grants.insert((g.key, g.id.clone()));
                }
                Change::Kms(KmsChange::AddVersion(key, _)) => {
                    a.keys.insert(*key);
                }
                Change::Kms(KmsChange::DeleteGrant(key, id)) => {
                    a.grants.insert((*key, id.clone()));
                }
                Change::Hsm(
                    HsmChange::SetNextHandle(..)
                    | HsmChange::PutUser(..)
                    | HsmChange::DeleteUser(..)
                    | HsmChange::Audit(..)
                    | HsmChange::PutBackup(_)
                    | HsmChange::DeleteBackup(_),
                )
                | Change::Kms(KmsChange::Trail(_))
                // A schedule changes no material (until a rotation adds some).
                | Change::Kms(KmsChange::PutRotation(..)) => {}
            }
        }
        a
    }
}

/// A grant as the engine checks it: the data-plane actions among its operations (`None` when
/// it lists none, so the engine need not hold it).
fn engine_grant(g: &Grant) -> Option<EngineGrant> {
    let actions = Action::ALL
        .iter()
        .filter(|a| GrantOperation::of_action(a.as_str()).is_some_and(|op| g.allows(op)))
        .fold(ActionSet::default(), |set, a| set.with(*a));
    (actions != ActionSet::default()).then(|| EngineGrant {
        grantee: g.grantee.as_str().into(),
        actions,
        constraints: g.constraints.clone(),
    })
}

/// The error a closed key answers with, or None when the key is usable.
pub fn gate(state: &State, scope: &Scope, key: &Key) -> Option<crate::KmsError> {
    // (Imported material past its ValidTo is deleted by the control plane, which makes the
    // key pending import; until then the engine refuses it itself: `Mirror::engine_gate`.)
    let arn = scope.key_arn(&key.id);
    if matches!(key.lifecycle, Lifecycle::PendingDeletion { .. }) {
        return Some(crate::KmsError::pending_deletion(&arn));
    }
    if !store_connected(&state.kms, key) {
        return Some(crate::KmsError::unavailable(&arn));
    }
    if key.pending_import() {
        return Some(pending_import(&arn));
    }
    if key.lifecycle == Lifecycle::Disabled {
        return Some(crate::KmsError::disabled(&arn));
    }
    if let Backing::CloudHsm { store, .. } = &key.backing {
        let s = state.kms.stores.get(store)?;
        if let Err(code) = hsm::reachability(&state.hsm, &s.cluster_id, &scope.region) {
            return Some(crate::KmsError::cluster_unreachable(
                &s.cluster_id,
                &s.id,
                code,
            ));
        }
        if hsm::find_key(&state.hsm, &s.cluster_id, &arn).is_none() {
            return Some(err!(
                KMSInvalidStateException,
                "The backing key of {arn} is not in CloudHSM cluster {}",
                s.cluster_id
            ));
        }
    }
    None
}

/// What a key without key material answers: AWS's state error for PendingImport.
fn pending_import(arn: &str) -> crate::KmsError {
    err!(KMSInvalidStateException, "{arn} is pending import.")
}

/// The HSM slots that hold a replica of `key`, per the state.
fn replicas(state: &State, scope: &Scope, key: &Key) -> SlotSet {
    match &key.backing {
        // An HMAC key has no replica: its parsed key is on every shard (`PutPrivate`).
        Backing::Default { .. } if is_private_spec(key.spec) => SlotSet::None,
        Backing::Default { .. } => SlotSet::Default,
        Backing::External(m) if m.wrapped.is_some() => SlotSet::Default,
        Backing::External(_) => SlotSet::None,
        Backing::CloudHsm { store, .. } => {
            let Some(s) = state.kms.stores.get(store) else {
                return SlotSet::None;
            };
            let Some(c) = state.hsm.clusters.get(&s.cluster_id) else {
                return SlotSet::None;
            };
            if hsm::find_key(&state.hsm, &c.id, &scope.key_arn(&key.id)).is_none() {
                return SlotSet::None;
            }
            let mut set = SlotSet::None;
            for h in c.active_hsms() {
                set.insert(&HsmSlot::Hsm(h.id.clone()));
            }
            set
        }
    }
}

/// The slow HSMs (`Fault::SlowHsm`) among those that should have a slot, with their added
/// latency in milliseconds.
fn desired_latency(state: &State, scope: &Scope) -> HashMap<HsmId, u32> {
    state
        .hsm
        .clusters
        .values()
        .filter(|c| c.region == scope.region)
        .flat_map(|c| c.active_hsms().filter(|h| h.latency_ms > 0))
        .map(|h| (h.id.clone(), h.latency_ms))
        .collect()
}

/// The HSMs that should have a slot: every active HSM of a cluster in this Region.
fn desired_hsms(state: &State, scope: &Scope) -> HashSet<HsmId> {
    state
        .hsm
        .clusters
        .values()
        .filter(|c| c.region == scope.region)
        .flat_map(|c| c.active_hsms().map(|h| h.id.clone()))
        .collect()
}

/// Unwraps the material of `key` as held by its HSMs (or the default fleet).
fn material(
    state: &State,
    scope: &Scope,
    keys: &dyn Wrapper,
    key: &Key,
) -> Result<crate::secret::KeyMaterial> {
    match &key.backing {
        Backing::Default { wrapped } => {
            keys.unwrap_key(MASTER_KEY, &default_material_aad(&key.id), wrapped)
        }
        Backing::External(m) => {
            let wrapped = m.wrapped.as_ref().ok_or_else(|| {
                err!(
                    KMSInternalException,
                    "key {} is pending import and has no material",
                    key.id
                )
            })?;
            keys.unwrap_key(MASTER_KEY, &import::material_aad(&key.id), wrapped)
        }
        Backing::CloudHsm { store, .. } => {
            let s = state
                .kms
                .stores
                .get(store)
                .ok_or_else(|| err!(KMSInternalException, "store {store} vanished"))?;
            let c = state
                .hsm
                .clusters
                .get(&s.cluster_id)
                .ok_or_else(|| err!(KMSInternalException, "cluster vanished"))?;
            let o = hsm::find_key(&state.hsm, &c.id, &scope.key_arn(&key.id))
                .ok_or_else(|| err!(KMSInternalException, "backing key vanished"))?;
            keys.unwrap_key(
                &c.wrapping_key,
                &KeyObject::wrap_aad(&c.wrapping_key, o.handle),
                &o.wrapped,
            )
        }
    }
}

/// Unwraps and parses the material of a default-store key that is not a symmetric
/// encryption key (an HMAC or asymmetric key), as its usage wants it.
fn private_key(keys: &dyn Wrapper, key: &Key) -> Result<PrivateKey> {
    let Backing::Default { wrapped } = &key.backing else {
        return Err(err!(
            KMSInternalException,
            "key {} of spec {} is not in the default key store",
            key.id,
            key.spec
        ));
    };
    let material = keys.unwrap_bytes(MASTER_KEY, &default_material_aad(&key.id), wrapped)?;
    PrivateKey::parse(key.spec, key.usage, material.expose())
}

/// Unwraps every material version of a default-store key that rotated.
fn versions(state: &State, keys: &dyn Wrapper, key: &Key) -> Result<KeyVersions> {
    let Backing::Default { wrapped } = &key.backing else {
        return Err(err!(
            KMSInternalException,
            "key {} is in a custom key store and has no material versions",
            key.id
        ));
    };
    let rotated = state.kms.versions.get(&key.id).map_or(&[][..], Vec::as_slice);
    let mut older = Vec::with_capacity(rotated.len());
    older.push((
        0,
        keys.unwrap_key(MASTER_KEY, &default_material_aad(&key.id), wrapped)?,
    ));
    for (i, v) in rotated.iter().enumerate() {
        let n = i as u32 + 1;
        older.push((
            n,
            keys.unwrap_key(MASTER_KEY, &version_material_aad(&key.id, n), &v.wrapped)?,
        ));
    }
    // Invariant: `older` holds version 0 at least, so there is a newest to take.
    let (newest, current) = older
        .pop()
        .ok_or_else(|| err!(KMSInternalException, "key {} has no material", key.id))?;
    Ok(KeyVersions {
        newest,
        current,
        older,
    })
}

/// Empties the engine, so that it serves no key until a [`Mirror`] told
/// [`Mirror::force_resync`] syncs it whole again: what the caller does when the engine may
/// hold less than the state revokes and the mirror cannot follow now (a commit unwinding
/// between its durable record and its sync). Every key is then refused, as an unknown key,
/// until the rebuild.
pub fn fail_closed(engine: &Engine) {
    // An engine that refuses the batch (shut down, forked, every shard dead) serves nothing.
    let _ = engine.apply(&[Control::Reset]);
}

impl Mirror {
    /// A mirror whose keys with expiring material are refused by the engine at their expiry
    /// on `clock`.
    pub fn with_clock(clock: Arc<dyn Clock>) -> Mirror {
        Mirror {
            clock: Some(clock),
            ..Mirror::default()
        }
    }

    /// What the engine is told of `key`: closed with [`gate`]'s error, else open until its
    /// material expires (if it does and this mirror has the clock), else open.
    fn engine_gate(&self, state: &State, scope: &Scope, key: &Key) -> Gate {
        if let Some(e) = gate(state, scope, key) {
            return Gate::Closed(e);
        }
        match (key.material_expiry(), &self.clock) {
            (Some(until), Some(clock)) => Gate::OpenUntil(Arc::new(Expiry {
                until,
                clock: clock.clone(),
                then: pending_import(&scope.key_arn(&key.id)),
            })),
            _ => Gate::Open,
        }
    }

    /// Makes the next sync rebuild the engine whole from the state, whatever it is told of.
    pub fn force_resync(&mut self) {
        self.resync = true;
    }

    /// Whether what the engine holds is unknown (it refused a sync's batch, or a sync did not
    /// finish), so that the next sync rebuilds it whole; a sync that failed for some keys only
    /// (closed in the engine, retried) leaves it false.
    pub fn needs_sync(&self) -> bool {
        self.resync
    }

    /// Brings the engine in line with `state` after `changes` (all of it on the first call).
    ///
    /// Errors: the first error of a key that `changes` touched (or of any key on the first
    /// call) whose state did not reach the engine; that key is closed in the engine and
    /// retried at every later sync. A key still failing from an earlier sync is closed and
    /// retried, but does not fail a later change that does not touch it.
    pub fn sync(
        &mut self,
        engine: &Engine,
        state: &State,
        scope: &Scope,
        keys: &dyn Wrapper,
        changes: &[Change],
    ) -> Result<()> {
        let mut affected = Affected::from_changes(changes, scope, &self.by_object);
        let retried = self.retry.clone();
        let mut out = Vec::new();
        if self.resync {
            *self = Mirror {
                stats: self.stats,
                clock: self.clock.take(),
                ..Mirror::default()
            };
            out.push(Control::Reset);
        }
        // Until the batch is applied below, the records the mirror makes while building it run
        // ahead of the engine: should this sync unwind part-way, the next one starts over.
        self.resync = true;
        if !self.started {
            affected.everything = true;
            out.push(Control::AddHsm {
                hsm: HsmSlot::Default,
            });
            self.started = true;
        }

        // HSM slots to add first, to remove last.
        let mut removed_hsms = Vec::new();
        if affected.everything || !affected.clusters.is_empty() {
            let desired = desired_hsms(state, scope);
            for h in &desired {
                if self.hsms.insert(h.clone()) {
                    out.push(Control::AddHsm {
                        hsm: HsmSlot::Hsm(h.clone()),
                    });
                }
            }
            removed_hsms = self
                .hsms
                .iter()
                .filter(|h| !desired.contains(*h))
                .cloned()
                .collect();
            self.sync_latency(state, scope, &mut out);
        }

        // The keys to recompute.
        let key_ids: BTreeSet<KeyId> = if affected.everything {
            state
                .kms
                .keys
                .keys()
                .copied()
                .chain(self.keys.keys().copied())
                .collect()
        } else {
            let mut ids = affected.keys.clone();
            ids.extend(&self.retry);
            // A key whose grants change is re-checked too, so that it is closed should the
            // batch carrying the change fail.
            ids.extend(affected.grants.iter().map(|(k, _)| *k));
            // Stores are few (AWS allows ten per account and Region): finding those on a
            // changed cluster by looking at each is cheap; their keys come from the index.
            let stores = state
                .kms
                .stores
                .values()
                .filter(|s| affected.clusters.contains(&s.cluster_id))
                .map(|s| &s.id)
                .chain(&affected.stores);
            for store in stores {
                if let Some(keys) = self.by_store.get(store) {
                    ids.extend(keys);
                }
            }
            ids
        };
        // The indexes first, for every key, so that they follow the state even when a key's
        // sync fails below.
        for id in &key_ids {
            self.place(state, scope, id);
        }
        // A key whose sync fails is closed, not skipped: a DisableKey, a narrowed policy or a
        // disconnect committed with it must reach the engine whatever else failed.
        let mut failed = None;
        for id in &key_ids {
            self.stats.keys_checked += 1;
            match self.sync_key(state, scope, keys, id, &removed_hsms, &mut out) {
                Ok(()) => {
                    self.retry.remove(id);
                }
                Err(e) => {
                    self.close(scope, id, &e, &mut out);
                    let asked = affected.everything || affected.keys.contains(id);
                    if asked || !retried.contains(id) {
                        failed.get_or_insert(e);
                    }
                }
            }
        }

        // Grants, once their keys are in the engine.
        let grants: BTreeSet<(KeyId, String)> = if affected.everything {
            let held = self
                .grants
                .iter()
                .flat_map(|(k, ids)| ids.iter().map(move |id| (*k, id.clone())));
            let wanted = state
                .kms
                .grants
                .values()
                .flat_map(|m| m.values())
                .map(|g| (g.key, g.id.clone()));
            held.chain(wanted).collect()
        } else {
            std::mem::take(&mut affected.grants)
        };
        for (key, id) in grants {
            self.sync_grant(state, &key, &id, &mut out);
        }

        // Aliases.
        let alias_names: BTreeSet<String> = if affected.everything {
            state
                .kms
                .aliases
                .keys()
                .cloned()
                .chain(self.aliases.keys().cloned())
                .collect()
        } else {
            affected.aliases
        };
        for name in alias_names.iter().cloned() {
            match state.kms.aliases.get(&name) {
                Some(a) if self.keys.contains_key(&a.target) => {
                    if self.aliases.insert(name.clone(), a.target) != Some(a.target) {
                        out.push(Control::PutAlias {
                            alias: name,
                            key: a.target,
                        });
                    }
                }
                _ => {
                    if self.aliases.remove(&name).is_some() {
                        out.push(Control::RemoveAlias { alias: name });
                    }
                }
            }
        }

        for h in removed_hsms {
            self.hsms.remove(&h);
            for m in self.keys.values_mut() {
                m.replicas.remove(&HsmSlot::Hsm(h.clone()));
            }
            out.push(Control::RemoveHsm {
                hsm: HsmSlot::Hsm(h),
            });
        }
        if !out.is_empty() {
            self.stats.controls_sent += out.len() as u64;
            if let Err(e) = engine.apply(&out) {
                // Nothing of the batch was applied (it is checked whole), yet the mirror
                // recorded it: close every key it touched, take away every alias it touched
                // (a DeleteAlias or an alias moved off a key must not go on naming the old
                // key), remove every key it deleted, and start over at the next sync.
                self.resync = true;
                let mut closing = Vec::new();
                for id in &key_ids {
                    if state.kms.keys.contains_key(id) {
                        self.close(scope, id, &e, &mut closing);
                    } else {
                        // Removing a key the engine lacks is no error: this batch is not
                        // refused for it.
                        closing.push(Control::RemoveKey { key: *id });
                    }
                }
                closing.extend(
                    alias_names
                        .into_iter()
                        .map(|alias| Control::RemoveAlias { alias }),
                );
                let _ = engine.apply(&closing);
                return Err(e);
            }
        }
        // The engine holds what the mirror records.
        self.resync = false;
        failed.map_or(Ok(()), Err)
    }

    /// Tells the engine of one grant's creation or end, if it changed what the engine holds.
    fn sync_grant(&mut self, state: &State, key: &KeyId, id: &str, out: &mut Vec<Control>) {
        let wanted = state.kms.grant(key, id).and_then(engine_grant);
        let held = self.grants.get(key).is_some_and(|ids| ids.contains(id));
        match wanted {
            // Grants never change in place: one held is the one wanted.
            Some(grant) if !held && self.keys.contains_key(key) => {
                self.grants.entry(*key).or_default().insert(id.to_owned());
                out.push(Control::PutGrant {
                    key: *key,
                    id: id.into(),
                    grant: Arc::new(grant),
                });
            }
            None if held => {
                if let Some(ids) = self.grants.get_mut(key) {
                    ids.remove(id);
                    if ids.is_empty() {
                        self.grants.remove(key);
                    }
                }
                out.push(Control::RemoveGrant {
                    key: *key,
                    id: id.into(),
                });
            }
            _ => {}
        }
    }

    /// Tells the engine of every HSM whose added latency changed (after the HSM slots are
    /// added, so a slow HSM coming up is slow from its first call).
    fn sync_latency(&mut self, state: &State, scope: &Scope, out: &mut Vec<Control>) {
        let desired = desired_latency(state, scope);
        for (h, &ms) in &desired {
            if self.latency.get(h) != Some(&ms) {
                out.push(Control::SetHsmLatency {
                    hsm: h.clone(),
                    latency: std::time::Duration::from_millis(ms.into()),
                });
            }
        }
        for h in self.latency.keys().filter(|h| !desired.contains_key(*h)) {
            out.push(Control::SetHsmLatency {
                hsm: h.clone(),
                latency: std::time::Duration::ZERO,
            });
        }
        self.latency = desired;
    }

    /// Fails `id` closed: the engine answers every request on it with an error naming `cause`,
    /// whatever controls before this one said, and the mirror forgets what it sent for the key
    /// (its policy), so that the next sync — which re-checks it — sends it whole again.
    fn close(&mut self, scope: &Scope, id: &KeyId, cause: &crate::KmsError, out: &mut Vec<Control>) {
        let arn = scope.key_arn(id);
        out.push(Control::PutKey {
            key: *id,
            gate: Gate::Closed(err!(
                KMSInternalException,
                "{arn} cannot be used: its state could not be brought to the data plane \
                 ({cause}); kmscks retries at the next change"
            )),
            authorizer: Arc::new(AllowAll),
        });
        if let Some(m) = self.keys.get_mut(id) {
            if let Some(text) = m.policy.take() {
                self.policies.release(&text);
            }
            m.gate = None;
            m.version = 0;
        }
        self.retry.insert(*id);
    }

    /// Forgets which HSM slots hold `id` (white-box tests: the next sync of the key then needs
    /// its material).
    #[cfg(test)]
    pub(crate) fn forget_replicas(&mut self, id: &KeyId) {
        if let Some(m) = self.keys.get_mut(id) {
            m.replicas = SlotSet::None;
        }
    }

    #[cfg(any(test, feature = "internals"))]
    /// How much work the mirror has done since it started.
    pub fn stats(&self) -> MirrorStats {
        self.stats
    }

    /// Brings the indexes in line with where key `id` lives now, per the state.
    fn place(&mut self, state: &State, scope: &Scope, id: &KeyId) {
        let now = match state.kms.keys.get(id) {
            None => Placement::default(),
            Some(key) => match &key.backing {
                Backing::Default { .. } | Backing::External(_) => Placement::default(),
                Backing::CloudHsm { store, .. } => Placement {
                    store: Some(store.clone()),
                    object: state.kms.stores.get(store).and_then(|s| {
                        hsm::find_key(&state.hsm, &s.cluster_id, &scope.key_arn(id))
                            .map(|o| (s.cluster_id.clone(), o.handle))
                    }),
                },
            },
        };
        let before = self.placements.remove(id).unwrap_or_default();
        if before.store != now.store {
            if let Some(store) = &before.store {
                if let Some(keys) = self.by_store.get_mut(store) {
                    keys.remove(id);
                    if keys.is_empty() {
                        self.by_store.remove(store);
                    }
                }
            }
            if let Some(store) = &now.store {
                self.by_store.entry(store.clone()).or_default().insert(*id);
            }
        }
        if before.object != now.object {
            if let Some(object) = &before.object {
                if self.by_object.get(object) == Some(id) {
                    self.by_object.remove(object);
                }
            }
            if let Some(object) = &now.object {
                self.by_object.insert(object.clone(), *id);
            }
        }
        if now.store.is_some() {
            self.placements.insert(*id, now);
        }
    }

    fn sync_key(
        &mut self,
        state: &State,
        scope: &Scope,
        keys: &dyn Wrapper,
        id: &KeyId,
        removed_hsms: &[HsmId],
        out: &mut Vec<Control>,
    ) -> Result<()> {
        let Some(key) = state.kms.keys.get(id) else {
            if let Some(old) = self.keys.remove(id) {
                if let Some(text) = old.policy {
                    self.policies.release(&text);
                }
                // The engine drops the key's grants with it.
                self.grants.remove(id);
                self.aliases.retain(|_, k| k != id);
                out.push(Control::RemoveKey { key: *id });
            }
            return Ok(());
        };
        let engine_gate = self.engine_gate(state, scope, key);
        // What the engine was told, to compare with: the error, or the end of an open time.
        let gate_text: Option<Box<str>> = match &engine_gate {
            Gate::Open => None,
            Gate::OpenUntil(x) => Some(format!("open until {}", x.until.0).into()),
            Gate::Closed(e) => Some(e.to_string().into()),
        };
        let want = replicas(state, scope, key);
        let m = self.keys.entry(*id).or_insert_with(|| Mirrored {
            gate: None,
            policy: None,
            replicas: SlotSet::default(),
            version: 0,
            private: false,
        });
        if m.policy.as_deref() != Some(&*key.policy) {
            let (text, authorizer) = self.policies.acquire(&key.policy, scope)?;
            if let Some(old) = m.policy.replace(text) {
                self.policies.release(&old);
            }
            out.push(Control::PutKey {
                key: *id,
                gate: engine_gate,
                authorizer,
            });
            m.gate = gate_text;
        } else if m.gate != gate_text {
            out.push(Control::SetGate {
                key: *id,
                gate: engine_gate,
            });
            m.gate = gate_text;
        }
        if !m.private && is_private_spec(key.spec) {
            out.push(Control::PutPrivate {
                key: *id,
                private: Arc::new(private_key(keys, key)?),
            });
            m.private = true;
        }
        let newest = state.kms.newest_version(id);
        if newest != m.version {
            out.push(Control::PutVersions {
                key: *id,
                versions: Arc::new(versions(state, keys, key)?),
            });
            m.version = newest;
        }
        let missing: Vec<HsmSlot> = want.slots().filter(|s| !m.replicas.contains(s)).collect();
        if !missing.is_empty() {
            let material = material(state, scope, keys, key)?;
            for slot in missing {
                out.push(Control::PutReplica {
                    hsm: slot.clone(),
                    key: *id,
                    material: material.duplicate(),
                });
                m.replicas.insert(&slot);
            }
        }
        let extra: Vec<HsmSlot> = m.replicas.slots().filter(|s| !want.contains(s)).collect();
        for slot in extra {
            m.replicas.remove(&slot);
            let going = matches!(&slot, HsmSlot::Hsm(h) if removed_hsms.contains(h));
            if !going {
                out.push(Control::RemoveReplica {
                    hsm: slot,
                    key: *id,
                });
            }
        }
        Ok(())
    }
}

/// The fleet GenerateRandom draws from for a custom key store: its cluster's active HSMs.
pub fn store_fleet(state: &State, scope: &Scope, store_id: &str) -> Result<Vec<HsmSlot>> {
    let s = crate::kms::stores::store(&state.kms, store_id)?;
    if s.state != ConnectionState::Connected {
        return Err(err!(
            CustomKeyStoreInvalidStateException,
            "Custom key store {} is {}; GenerateRandom needs it CONNECTED",
            s.id,
            s.state
        ));
    }
    let c = hsm::reachability(&state.hsm, &s.cluster_id, &scope.region).map_err(|code| {
        err!(
            KMSInvalidStateException,
            "KMS cannot communicate with the CloudHSM cluster {} ({code})",
            s.cluster_id
        )
    })?;
    let fleet: Vec<HsmSlot> = c
        .active_hsms()
        .map(|h| HsmSlot::Hsm(h.id.clone()))
        .collect();
    if fleet.is_empty() {
        return Err(err!(
            KMSInvalidStateException,
            "The CloudHSM cluster {} has no active HSM",
            c.id
        ));
    }
    Ok(fleet)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kms::policy::default_policy;

    #[test]
    fn keys_with_the_same_policy_share_one_parse_until_the_last_lets_go() {
        let scope = Scope::default();
        let default = default_policy(&scope);
        let mut table = PolicyTable::default();
        let (text_a, policy_a) = table.acquire(&default, &scope).unwrap();
        let (text_b, policy_b) = table.acquire(&default, &scope).unwrap();
        assert!(Arc::ptr_eq(&policy_a, &policy_b), "one parse for one text");
        assert!(Arc::ptr_eq(&text_a, &text_b), "one copy of the text");
        assert_eq!(table.by_text.len(), 1);

        let custom = default.replace("Enable IAM User Permissions", "Another statement id");
        let (_, policy_c) = table.acquire(&custom, &scope).unwrap();
        assert!(!Arc::ptr_eq(&policy_a, &policy_c));
        assert_eq!(table.by_text.len(), 2);

        table.release(&default);
        assert_eq!(table.by_text[&*default].users, 1, "one key still uses it");
        table.release(&default);
        table.release(&custom);
        assert!(table.by_text.is_empty(), "entries go with their last user");
    }

    #[test]
    fn a_shared_policy_naming_one_key_still_allows_that_key_only() {
        let scope = Scope::default();
        let (named, other) = (KeyId::generate(), KeyId::generate());
        let root = scope.root_principal();
        let text = default_policy(&scope).replace(
            r#""Resource" : "*""#,
            &format!(r#""Resource" : "{}""#, scope.key_arn(&named)),
        );
        let mut table = PolicyTable::default();
        let (_, narrow) = table.acquire(&text, &scope).unwrap();
        assert!(!narrow.ignores_resource);
        assert!(narrow.allows(&root, Action::Encrypt, &named));
        assert!(!narrow.allows(&root, Action::Encrypt, &other));

        let (_, any) = table.acquire(&default_policy(&scope), &scope).unwrap();
        assert!(any.ignores_resource, "the default policy's Resource is *");
        assert!(any.allows(&root, Action::Encrypt, &other));
        assert!(!any.allows("arn:aws:iam::999999999999:root", Action::Encrypt, &other));
    }

    #[test]
    fn a_policy_that_does_not_parse_is_refused_and_leaves_the_table_as_it_was() {
        let mut table = PolicyTable::default();
        assert!(table.acquire("{not json", &Scope::default()).is_err());
        assert!(table.by_text.is_empty());
    }
}
