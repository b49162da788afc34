//! What KMS knows (custom key stores, KMS keys, aliases, grants, rotation schedules and
//! rotated material, how many events it has recorded), the changes that move it, and how a
//! change applies.
//!
//! The events themselves are not kept here: a [`KmsChange::Trail`] travels in its journal
//! record and, once committed, goes to the event log (`control::event_log`); applying it only
//! counts it, so that replay gives every event the same sequence number.
//!
//! KMS owns its part of the control-plane state as the CloudHSM side owns its own
//! ([`crate::hsm::CloudHsmState`]); the control plane above journals both kinds of change in
//! one record. `apply` is deterministic and infallible.
//!
//! Beside what it holds, the state keeps derived indexes (not serialised, maintained by `apply`
//! and rebuilt by [`KmsState::reindex`] after a snapshot is decoded) so that a write costs what
//! it changes: the deletion dates of keys pending deletion, in date order, so that the commit
//! path finds the next deletion due without scanning every key (and the next rotation dates,
//! likewise, for automatic rotation); the grants of each retiring
//! principal (ListRetirableGrants) and each key's grants by name (CreateGrant's idempotency),
//! so that neither scans the up to 50,000 grants of a key. It also interns key policy
//! texts: every key with the same policy (most carry the account's default one) holds the same
//! allocation, so 100,000 keys hold one copy of it in memory, not 100,000.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::ops::Bound::{Excluded, Included, Unbounded};

use serde::{Deserialize, Serialize};

use super::model::{Alias, Grant, Key, KeyStore, MaterialVersion, RotationSchedule, TrailEvent};
use crate::types::{CustomKeyStoreId, KeyId, Timestamp};

/// KMS's state in one account and Region.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct KmsState {
    /// Custom key stores.
    pub stores: BTreeMap<CustomKeyStoreId, KeyStore>,
    /// KMS keys.
    pub keys: BTreeMap<KeyId, Key>,
    /// Aliases, by name.
    pub aliases: BTreeMap<String, Alias>,
    /// Grants, by key, then by grant id. A key's grants go with it.
    pub grants: BTreeMap<KeyId, BTreeMap<String, Grant>>,
    /// The sequence number the next KMS event gets (how many were ever recorded).
    pub next_event_seq: u64,
    /// Automatic rotation schedules of the keys that have rotation enabled. A key's schedule
    /// goes with it.
    pub rotations: BTreeMap<KeyId, RotationSchedule>,
    /// The rotated material of the keys that rotated: versions 1, 2, … in order (version 0 is
    /// the key's own). A key's versions go with it.
    pub versions: BTreeMap<KeyId, Vec<MaterialVersion>>,
    /// Index: the keys with rotation enabled, by next rotation date (derived; rebuilt by
    /// [`KmsState::reindex`]).
    #[serde(skip)]
    rotation_dates: BTreeSet<(Timestamp, KeyId)>,
    /// Index: grants by retiring principal, key and grant id (derived; rebuilt by
    /// [`KmsState::reindex`]).
    #[serde(skip)]
    retirable: BTreeSet<(String, KeyId, String)>,
    /// Index: grants by key, name and grant id, for the named ones (derived; rebuilt by
    /// [`KmsState::reindex`]).
    #[serde(skip)]
    grant_names: BTreeSet<(KeyId, String, String)>,
    /// Index: alias names by target key, in listing order (derived; rebuilt by
    /// [`KmsState::reindex`]).
    #[serde(skip)]
    aliases_by_target: BTreeSet<(KeyId, String)>,
    /// Index: the keys pending deletion, by deletion date (derived; rebuilt by
    /// [`KmsState::reindex`]).
    #[serde(skip)]
    deletions: BTreeSet<(Timestamp, KeyId)>,
    /// Index: the keys whose imported material expires, by expiry (derived; rebuilt by
    /// [`KmsState::reindex`]).
    #[serde(skip)]
    expiries: BTreeSet<(Timestamp, KeyId)>,
    /// The distinct key policy texts in use, each held once: every key's `policy` is the
    /// allocation found here (derived; rebuilt by [`KmsState::reindex`]).
    #[serde(skip)]
    policy_texts: HashSet<Arc<str>>,
}

/// The allocation of `text` in `texts`, adding it when absent.
fn shared_text(texts: &mut HashSet<Arc<str>>, text: &Arc<str>) -> Arc<str> {
    match texts.get(&**text) {
        Some(shared) => shared.clone(),
        None => {
            texts.insert(text.clone());
            text.clone()
        }
    }
}

/// One atomic step of a KMS operation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)] // each variant reads as what it does
pub enum KmsChange {
    PutStore(Box<KeyStore>),
    DeleteStore(CustomKeyStoreId),
    PutKey(Box<Key>),
    /// Deletes the key and every alias pointing at it.
    DeleteKey(KeyId),
    PutAlias(Alias),
    DeleteAlias(String),
    /// Creates a grant (on a key that exists).
    PutGrant(Box<Grant>),
    /// Retires or revokes a grant: key, grant id.
    DeleteGrant(KeyId, String),
    /// A KMS event: it gets sequence number `next_event_seq`; the event itself goes to the
    /// event log, not into the state.
    Trail(TrailEvent),
    /// Enables automatic rotation of a key (that exists) on this schedule, or disables it
    /// (`None`).
    PutRotation(KeyId, Option<RotationSchedule>),
    /// Adds the next material version of a default-store key (that exists): it seals from
    /// now on, and every older version keeps opening.
    AddVersion(KeyId, Box<MaterialVersion>),
}

impl KmsState {
    /// Applies one change.
    pub fn apply(&mut self, change: KmsChange) {
        match change {
            KmsChange::PutStore(s) => {
                self.stores.insert(s.id.clone(), *s);
            }
            KmsChange::DeleteStore(id) => {
                self.stores.remove(&id);
            }
            KmsChange::PutKey(k) => {
                let mut k = *k;
                if let Some(date) = k.deletion_date() {
                    self.deletions.insert((date, k.id));
                }
                if let Some(t) = k.material_expiry() {
                    self.expiries.insert((t, k.id));
                }
                k.policy = self.intern(&k.policy);
                if let Some(old) = self.keys.insert(k.id, k) {
                    self.unindex(&old);
                    self.release(old.policy);
                }
            }
            KmsChange::DeleteKey(id) => {
                if let Some(old) = self.keys.remove(&id) {
                    self.unindex(&old);
                    self.release(old.policy);
                }
                // Its grants, rotation schedule and material versions go with it.
                if let Some(old) = self.rotations.remove(&id) {
                    self.rotation_dates.remove(&(old.next, id));
                }
                self.versions.remove(&id);
                if let Some(grants) = self.grants.remove(&id) {
                    for g in grants.into_values() {
                        self.unindex_grant(&g);
                    }
                }
                // Every alias pointing at the key, found in the index rather than by a scan.
                let names: Vec<String> =
                    self.aliases_of(&id, None).map(|a| a.name.clone()).collect();
                for name in names {
                    self.apply(KmsChange::DeleteAlias(name));
                }
            }
            KmsChange::PutAlias(a) => {
                let indexed = (a.target, a.name.clone());
                if let Some(old) = self.aliases.insert(a.name.clone(), a) {
                    self.aliases_by_target.remove(&(old.target, old.name));
                }
                self.aliases_by_target.insert(indexed);
            }
            KmsChange::DeleteAlias(name) => {
                if let Some(old) = self.aliases.remove(&name) {
                    self.aliases_by_target.remove(&(old.target, name));
                }
            }
            KmsChange::PutGrant(g) => {
                let old = self.grants.get_mut(&g.key).and_then(|m| m.remove(&g.id));
                if let Some(old) = old {
                    self.unindex_grant(&old);
                }
                self.index_grant(&g);
                self.grants.entry(g.key).or_default().insert(g.id.clone(), *g);
            }
            KmsChange::DeleteGrant(key, id) => {
                if let Some(grants) = self.grants.get_mut(&key) {
                    if let Some(old) = grants.remove(&id) {
                        if grants.is_empty() {
                            self.grants.remove(&key);
                        }
                        self.unindex_grant(&old);
                    }
                }
            }
            KmsChange::Trail(_) => self.next_event_seq += 1,
            KmsChange::PutRotation(key, schedule) => {
                let old = match schedule {
                    Some(s) => {
                        self.rotation_dates.insert((s.next, key));
                        self.rotations.insert(key, s)
                    }
                    None => self.rotations.remove(&key),
                };
                if let Some(old) = old {
                    if schedule.is_none_or(|s| s.next != old.next) {
                        self.rotation_dates.remove(&(old.next, key));
                    }
                }
            }
            KmsChange::AddVersion(key, v) => {
                self.versions.entry(key).or_default().push(*v);
            }
        }
    }

    fn index_grant(&mut self, g: &Grant) {
        if let Some(r) = &g.retiring {
            self.retirable.insert((r.clone(), g.key, g.id.clone()));
        }
        if let Some(n) = &g.name {
            self.grant_names.insert((g.key, n.clone(), g.id.clone()));
        }
    }

    fn unindex_grant(&mut self, g: &Grant) {
        if let Some(r) = &g.retiring {
            self.retirable.remove(&(r.clone(), g.key, g.id.clone()));
        }
        if let Some(n) = &g.name {
            self.grant_names.remove(&(g.key, n.clone(), g.id.clone()));
        }
    }

    /// The grants of `key` (empty for a key without any).
    pub fn grants_of<'s>(&'s self, key: &KeyId) -> impl Iterator<Item = &'s Grant> + 's {
        self.grants.get(key).into_iter().flat_map(|m| m.values())
    }

    /// How many grants `key` has.
    pub fn grant_count(&self, key: &KeyId) -> usize {
        self.grants.get(key).map_or(0, BTreeMap::len)
    }

    /// One grant of `key`.
    pub fn grant(&self, key: &KeyId, id: &str) -> Option<&Grant> {
        self.grants.get(key)?.get(id)
    }

    /// The grants of `key` named `name`: a seek in the index.
    pub fn grants_named<'s>(
        &'s self,
        key: &'s KeyId,
        name: &'s str,
    ) -> impl Iterator<Item = &'s Grant> + 's {
        self.grant_names
            .range((*key, name.to_owned(), String::new())..)
            .take_while(move |(k, n, _)| k == key && n == name)
            .filter_map(|(k, _, id)| self.grant(k, id))
    }

    /// The grants `principal` may retire as their retiring principal, by key and grant id,
    /// after `after` if given: a seek in the index.
    pub fn retirable_by<'s>(
        &'s self,
        principal: &'s str,
        after: Option<(KeyId, &str)>,
    ) -> impl Iterator<Item = &'s Grant> + 's {
        let from = match after {
            Some((key, id)) => Excluded((principal.to_owned(), key, id.to_owned())),
            None => Included((principal.to_owned(), KeyId::from_bytes([0; 16]), String::new())),
        };
        self.retirable
            .range((from, Unbounded))
            .take_while(move |(p, _, _)| p == principal)
            .filter_map(|(_, k, id)| self.grant(k, id))
    }

    /// Rebuilds the derived indexes (after decoding a snapshot).
    pub fn reindex(&mut self) {
        self.deletions = self
            .keys
            .values()
            .filter_map(|k| k.deletion_date().map(|d| (d, k.id)))
            .collect();
        self.expiries = self
            .keys
            .values()
            .filter_map(|k| k.material_expiry().map(|t| (t, k.id)))
            .collect();
        self.aliases_by_target = self
            .aliases
            .values()
            .map(|a| (a.target, a.name.clone()))
            .collect();
        self.rotation_dates = self.rotations.iter().map(|(id, s)| (s.next, *id)).collect();
        self.retirable.clear();
        self.grant_names.clear();
        let grants: Vec<Grant> = self.grants.values().flat_map(|m| m.values()).cloned().collect();
        for g in &grants {
            self.index_grant(g);
        }
        let mut texts = HashSet::new();
        let mut last: Option<Arc<str>> = None;
        for k in self.keys.values_mut() {
            // Keys decoded in `intern::sharing` already share: a run of one text costs a
            // pointer comparison.
            if last.as_ref().is_some_and(|l| Arc::ptr_eq(l, &k.policy)) {
                continue;
            }
            k.policy = shared_text(&mut texts, &k.policy);
            last = Some(k.policy.clone());
        }
        self.policy_texts = texts;
    }

    /// The one shared allocation of `text`.
    fn intern(&mut self, text: &Arc<str>) -> Arc<str> {
        shared_text(&mut self.policy_texts, text)
    }

    /// A key let go of `text`: the last key to hold it takes it out of the table.
    fn release(&mut self, text: Arc<str>) {
        // Held by the table and by `text` alone: no key uses it any more.
        if Arc::strong_count(&text) == 2 {
            self.policy_texts.remove(&text);
        }
    }

    /// How many distinct policy texts the keys hold (for tests).
    #[cfg(test)]
    pub(crate) fn policy_text_count(&self) -> usize {
        self.policy_texts.len()
    }

    /// The aliases pointing at `key`, by name, after `after` if given: a seek in the index.
    pub fn aliases_of<'s>(
        &'s self,
        key: &'s KeyId,
        after: Option<&str>,
    ) -> impl Iterator<Item = &'s Alias> + 's {
        let from = match after {
            Some(name) => Excluded((*key, name.to_owned())),
            None => Included((*key, String::new())),
        };
        self.aliases_by_target
            .range((from, Unbounded))
            .take_while(move |(target, _)| target == key)
            .filter_map(|(_, name)| self.aliases.get(name))
    }

    /// Drops `old`'s deletion date and material expiry from the indexes unless the key now in
    /// its place has the same one.
    fn unindex(&mut self, old: &Key) {
        let current = self.keys.get(&old.id);
        if let Some(date) = old.deletion_date() {
            if current.and_then(Key::deletion_date) != Some(date) {
                self.deletions.remove(&(date, old.id));
            }
        }
        if let Some(t) = old.material_expiry() {
            if current.and_then(Key::material_expiry) != Some(t) {
                self.expiries.remove(&(t, old.id));
            }
        }
    }

    /// The earliest expiry of any key's imported material.
    pub fn earliest_expiry(&self) -> Option<Timestamp> {
        self.expiries.first().map(|(t, _)| *t)
    }

    /// The keys whose imported material expires `now` or earlier, earliest first.
    pub fn due_for_expiry(&self, now: Timestamp) -> impl Iterator<Item = KeyId> + '_ {
        self.expiries
            .iter()
            .take_while(move |(t, _)| *t <= now)
            .map(|(_, id)| *id)
    }

    /// The earliest deletion date of any key pending deletion.
    pub fn earliest_deletion(&self) -> Option<Timestamp> {
        self.deletions.first().map(|(d, _)| *d)
    }

    /// The newest material version of `key` (0 for a key that never rotated).
    pub fn newest_version(&self, key: &KeyId) -> u32 {
        self.versions.get(key).map_or(0, |v| v.len() as u32)
    }

    /// The earliest next rotation date of any key with rotation enabled.
    pub fn earliest_rotation(&self) -> Option<Timestamp> {
        self.rotation_dates.first().map(|(d, _)| *d)
    }

    /// The keys whose next rotation date is `now` or earlier, earliest first.
    pub fn due_for_rotation(&self, now: Timestamp) -> impl Iterator<Item = KeyId> + '_ {
        self.rotation_dates
            .iter()
            .take_while(move |(d, _)| *d <= now)
            .map(|(_, id)| *id)
    }

    /// The keys whose deletion date is `now` or earlier, earliest first.
    pub fn due_for_deletion(&self, now: Timestamp) -> impl Iterator<Item = KeyId> + '_ {
        self.deletions
            .iter()
            .take_while(move |(d, _)| *d <= now)
            .map(|(_, id)| *id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Timestamp;
    use crate::kms::model::{Backing, ImportedMaterial, Lifecycle};
    use crate::types::{KeySpec, KeyUsage, Origin};
    use proptest::prelude::*;

    fn alias(name: &str, target: KeyId) -> KmsChange {
        KmsChange::PutAlias(Alias {
            name: name.into(),
            target,
            created: Timestamp(0),
            last_updated: Timestamp(0),
        })
    }

    fn names_of(state: &KmsState, key: &KeyId, after: Option<&str>) -> Vec<String> {
        state
            .aliases_of(key, after)
            .map(|a| a.name.clone())
            .collect()
    }

    #[test]
    fn keys_with_the_same_policy_text_share_one_allocation_until_the_last_goes() {
        let mut state = KmsState::default();
        let [a, b, c] = [KeyId::generate(), KeyId::generate(), KeyId::generate()];
        let with_policy = |id, text: &str| {
            let mut k = key(id, Lifecycle::Enabled);
            k.policy = text.into(); // each its own allocation, as decoded from a record
            KmsChange::PutKey(Box::new(k))
        };
        state.apply(with_policy(a, "P"));
        state.apply(with_policy(b, "P"));
        state.apply(with_policy(c, "Q"));
        assert!(Arc::ptr_eq(&state.keys[&a].policy, &state.keys[&b].policy));
        assert_eq!(state.policy_text_count(), 2);

        state.apply(with_policy(a, "Q")); // a's policy changes: P is still b's
        assert!(Arc::ptr_eq(&state.keys[&a].policy, &state.keys[&c].policy));
        assert_eq!(state.policy_text_count(), 2);
        state.apply(KmsChange::DeleteKey(b)); // P's last key
        assert_eq!(state.policy_text_count(), 1);

        // A decoded snapshot (one allocation per key) is shared again by reindex, and equals
        // the state it was taken from.
        let mut decoded = state.clone();
        for k in decoded.keys.values_mut() {
            k.policy = k.policy.to_string().into();
        }
        decoded.policy_texts.clear();
        decoded.reindex();
        assert!(Arc::ptr_eq(&decoded.keys[&a].policy, &decoded.keys[&c].policy));
        assert_eq!(decoded, state);
    }

    #[test]
    fn the_alias_index_follows_every_change_and_equals_a_rebuilt_one() {
        let [a, b] = [KeyId::generate(), KeyId::generate()];
        let mut state = KmsState::default();
        for change in [
            alias("alias/1", a),
            alias("alias/2", a),
            alias("alias/3", b),
            alias("alias/4", a),
            alias("alias/2", b), // re-pointed
            KmsChange::DeleteAlias("alias/4".into()),
            KmsChange::DeleteAlias("alias/none".into()),
        ] {
            state.apply(change);
        }
        assert_eq!(names_of(&state, &a, None), ["alias/1"]);
        assert_eq!(names_of(&state, &b, None), ["alias/2", "alias/3"]);
        assert_eq!(names_of(&state, &b, Some("alias/2")), ["alias/3"]);
        assert_eq!(names_of(&state, &b, Some("alias/25")), ["alias/3"]);
        let mut rebuilt = state.clone();
        rebuilt.aliases_by_target.clear();
        rebuilt.reindex();
        assert_eq!(rebuilt, state);

        state.apply(KmsChange::DeleteKey(b));
        assert!(names_of(&state, &b, None).is_empty());
        assert_eq!(
            state.aliases.keys().collect::<Vec<_>>(),
            ["alias/1"],
            "a key's deletion takes its aliases, and only them"
        );
        let mut rebuilt = state.clone();
        rebuilt.reindex();
        assert_eq!(rebuilt, state);
    }

    fn key(id: KeyId, lifecycle: Lifecycle) -> Key {
        Key {
            id,
            created: Timestamp(0),
            description: String::new(),
            lifecycle,
            origin: Origin::AwsKms,
            usage: KeyUsage::EncryptDecrypt,
            spec: KeySpec::SymmetricDefault,
            backing: Backing::Default {
                wrapped: Vec::new(),
            },
            policy: "".into(),
            tags: BTreeMap::new(),
        }
    }

    /// What the index must say, by a scan of every key.
    fn scanned(state: &KmsState) -> Vec<(Timestamp, KeyId)> {
        let mut due: Vec<(Timestamp, KeyId)> = state
            .keys
            .values()
            .filter_map(|k| k.deletion_date().map(|d| (d, k.id)))
            .collect();
        due.sort();
        due
    }

    proptest! {
        /// Keys put (enabled, disabled, or pending deletion on one of a few dates, so that
        /// dates collide) and deleted at random, over a few ids so that each is rewritten.
        #[test]
        fn the_deletion_index_matches_a_scan_of_every_key_after_any_changes(
            ops in proptest::collection::vec((0usize..6, 0u8..5, 0i64..4), 0..60),
            now in 0i64..5,
        ) {
            let ids: Vec<KeyId> = (0..6).map(|_| KeyId::generate()).collect();
            let mut state = KmsState::default();
            for (i, op, day) in ops {
                let id = ids[i];
                let change = match op {
                    0 => KmsChange::DeleteKey(id),
                    1 => KmsChange::PutKey(Box::new(key(id, Lifecycle::Enabled))),
                    2 => KmsChange::PutKey(Box::new(key(id, Lifecycle::Disabled))),
                    _ => KmsChange::PutKey(Box::new(key(
                        id,
                        Lifecycle::PendingDeletion {
                            deletion_date: Timestamp(day),
                            window_days: 7,
                        },
                    ))),
                };
                state.apply(change);
                prop_assert_eq!(state.deletions.iter().copied().collect::<Vec<_>>(), scanned(&state));
            }
            let scan = scanned(&state);
            prop_assert_eq!(state.earliest_deletion(), scan.first().map(|(d, _)| *d));
            let due: Vec<KeyId> = scan
                .iter()
                .filter(|(d, _)| *d <= Timestamp(now))
                .map(|(_, id)| *id)
                .collect();
            prop_assert_eq!(state.due_for_deletion(Timestamp(now)).collect::<Vec<_>>(), due);
            // A state decoded from a snapshot rebuilds the same index.
            let mut decoded = KmsState {
                deletions: BTreeSet::new(),
                ..state.clone()
            };
            decoded.reindex();
            prop_assert_eq!(decoded.deletions, state.deletions);
        }

        /// External keys put with material expiring on one of a few dates, without material,
        /// or with material that never expires, and deleted, at random.
        #[test]
        fn the_expiry_index_matches_a_scan_of_every_key_after_any_changes(
            ops in proptest::collection::vec((0usize..6, 0u8..4, 0i64..4), 0..60),
            now in 0i64..5,
        ) {
            let ids: Vec<KeyId> = (0..6).map(|_| KeyId::generate()).collect();
            let mut state = KmsState::default();
            for (i, op, day) in ops {
                let id = ids[i];
                let change = if op == 0 {
                    KmsChange::DeleteKey(id)
                } else {
                    let mut k = key(id, Lifecycle::Enabled);
                    k.origin = Origin::External;
                    k.backing = Backing::External(Box::new(ImportedMaterial {
                        wrapped: (op != 1).then(Vec::new),
                        valid_to: (op == 3).then_some(Timestamp(day)),
                        ..ImportedMaterial::default()
                    }));
                    KmsChange::PutKey(Box::new(k))
                };
                state.apply(change);
                let mut scan: Vec<(Timestamp, KeyId)> = state
                    .keys
                    .values()
                    .filter_map(|k| k.material_expiry().map(|t| (t, k.id)))
                    .collect();
                scan.sort();
                prop_assert_eq!(state.expiries.iter().copied().collect::<Vec<_>>(), scan);
            }
            let due: Vec<KeyId> = state
                .expiries
                .iter()
                .filter(|(t, _)| *t <= Timestamp(now))
                .map(|(_, id)| *id)
                .collect();
            prop_assert_eq!(state.due_for_expiry(Timestamp(now)).collect::<Vec<_>>(), due);
            prop_assert_eq!(state.earliest_expiry(), state.expiries.first().map(|(t, _)| *t));
            let mut decoded = KmsState {
                expiries: BTreeSet::new(),
                ..state.clone()
            };
            decoded.reindex();
            prop_assert_eq!(decoded.expiries, state.expiries);
        }
    }
}
