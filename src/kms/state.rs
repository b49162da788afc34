//! What KMS knows (custom key stores, KMS keys, aliases, the event log), the changes that move
//! it, and how a change applies.
//!
//! KMS owns its part of the control-plane state as the CloudHSM side owns its own
//! ([`crate::hsm::CloudHsmState`]); the control plane above journals both kinds of change in
//! one record. `apply` is deterministic and infallible.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound::{Excluded, Included, Unbounded};

use serde::{Deserialize, Serialize};

use super::model::{Alias, Key, KeyStore, TrailEvent};
use crate::types::{CustomKeyStoreId, KeyId};

/// KMS's state in one account and Region.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct KmsState {
    /// Custom key stores.
    pub stores: BTreeMap<CustomKeyStoreId, KeyStore>,
    /// KMS keys.
    pub keys: BTreeMap<KeyId, Key>,
    /// Aliases, by name.
    pub aliases: BTreeMap<String, Alias>,
    /// The KMS event log.
    pub trail: Vec<TrailEvent>,
    /// Index: alias names by target key, in listing order (derived; rebuilt by
    /// [`KmsState::reindex`]).
    #[serde(skip)]
    aliases_by_target: BTreeSet<(KeyId, String)>,
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
    Trail(TrailEvent),
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
                self.keys.insert(k.id, *k);
            }
            KmsChange::DeleteKey(id) => {
                self.keys.remove(&id);
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
            KmsChange::Trail(e) => self.trail.push(e),
        }
    }

    /// Rebuilds the derived indexes (after decoding a snapshot).
    pub fn reindex(&mut self) {
        self.aliases_by_target = self
            .aliases
            .values()
            .map(|a| (a.target, a.name.clone()))
            .collect();
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Timestamp;

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
}
