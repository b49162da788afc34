//! What KMS knows (custom key stores, KMS keys, aliases, the event log), the changes that move
//! it, and how a change applies.
//!
//! KMS owns its part of the control-plane state as the CloudHSM side owns its own
//! ([`crate::hsm::CloudHsmState`]); the control plane above journals both kinds of change in
//! one record. `apply` is deterministic and infallible.

use std::collections::BTreeMap;

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
                self.aliases.retain(|_, a| a.target != id);
            }
            KmsChange::PutAlias(a) => {
                self.aliases.insert(a.name.clone(), a);
            }
            KmsChange::DeleteAlias(name) => {
                self.aliases.remove(&name);
            }
            KmsChange::Trail(e) => self.trail.push(e),
        }
    }
}
