//! The whole control-plane state, the changes that move it, and how a change applies.
//!
//! Every control-plane operation reads the state, decides, and produces a list of [`Change`]s.
//! The list is written to the journal as one record and only then applied, so an operation is
//! either wholly durable and visible or not at all. `apply` is deterministic and infallible:
//! replaying the journal over the last snapshot rebuilds exactly the same state.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::hsm::model::{AuditEvent, Backup, Cluster, HsmUser, KeyObject};
use crate::kms::model::{Alias, Key, KeyStore, TrailEvent};
use crate::types::{BackupId, ClusterId, CustomKeyStoreId, HsmId, KeyId, Scope, Timestamp};

/// Version of the snapshot and record encoding.
pub const STATE_FORMAT: u32 = 1;

/// Everything kmscks knows, in memory.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// Account and Region this state belongs to.
    pub scope: Scope,
    /// CloudHSM clusters (of any Region).
    pub clusters: BTreeMap<ClusterId, Cluster>,
    /// CloudHSM users, by cluster and user name.
    pub users: BTreeMap<(ClusterId, String), HsmUser>,
    /// HSM key objects, by cluster and handle.
    pub objects: BTreeMap<(ClusterId, u64), KeyObject>,
    /// Audit streams, one per HSM (kept after the HSM is deleted, as CloudWatch keeps them).
    pub audit: BTreeMap<(ClusterId, HsmId), Vec<AuditEvent>>,
    /// Cluster backups (of any Region).
    pub backups: BTreeMap<BackupId, Backup>,
    /// Custom key stores.
    pub stores: BTreeMap<CustomKeyStoreId, KeyStore>,
    /// KMS keys.
    pub keys: BTreeMap<KeyId, Key>,
    /// Aliases, by name.
    pub aliases: BTreeMap<String, Alias>,
    /// The KMS event log.
    pub trail: Vec<TrailEvent>,
    /// Index: key object handle by cluster and label (derived; rebuilt by [`State::reindex`]).
    #[serde(skip)]
    labels: HashMap<(ClusterId, String), u64>,
}

/// One atomic step of a [`Record`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)] // each variant reads as what it does
pub enum Change {
    PutCluster(Box<Cluster>),
    DeleteCluster(ClusterId),
    PutUser(ClusterId, HsmUser),
    DeleteUser(ClusterId, String),
    PutObject(ClusterId, KeyObject),
    DeleteObject(ClusterId, u64),
    /// Appends to the HSM's audit stream; `sequence` is assigned on apply (gap-free).
    Audit(ClusterId, HsmId, AuditEvent),
    PutBackup(Box<Backup>),
    DeleteBackup(BackupId),
    PutStore(Box<KeyStore>),
    DeleteStore(CustomKeyStoreId),
    PutKey(Box<Key>),
    DeleteKey(KeyId),
    PutAlias(Alias),
    DeleteAlias(String),
    Trail(TrailEvent),
}

/// What one acknowledged operation wrote: the unit of the journal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// When it was committed.
    pub at: Timestamp,
    /// The changes, applied in order.
    pub changes: Vec<Change>,
}

impl State {
    /// An empty state for `scope`.
    pub fn new(scope: Scope) -> State {
        State {
            scope,
            ..State::default()
        }
    }

    /// Applies one change.
    pub fn apply(&mut self, change: Change) {
        match change {
            Change::PutCluster(c) => {
                self.clusters.insert(c.id.clone(), *c);
            }
            Change::DeleteCluster(id) => {
                self.clusters.remove(&id);
                self.users.retain(|(c, _), _| *c != id);
                self.objects.retain(|(c, _), _| *c != id);
                self.labels.retain(|(c, _), _| *c != id);
            }
            Change::PutUser(c, u) => {
                self.users.insert((c, u.username.clone()), u);
            }
            Change::DeleteUser(c, name) => {
                self.users.remove(&(c, name));
            }
            Change::PutObject(c, o) => {
                self.labels.insert((c.clone(), o.label.clone()), o.handle);
                if let Some(old) = self.objects.insert((c.clone(), o.handle), o) {
                    self.unindex(&c, &old);
                }
            }
            Change::DeleteObject(c, handle) => {
                if let Some(old) = self.objects.remove(&(c.clone(), handle)) {
                    self.unindex(&c, &old);
                }
            }
            Change::Audit(c, h, mut event) => {
                let stream = self.audit.entry((c, h)).or_default();
                event.sequence = stream.len() as u64;
                stream.push(event);
            }
            Change::PutBackup(b) => {
                self.backups.insert(b.id.clone(), *b);
            }
            Change::DeleteBackup(id) => {
                self.backups.remove(&id);
            }
            Change::PutStore(s) => {
                self.stores.insert(s.id.clone(), *s);
            }
            Change::DeleteStore(id) => {
                self.stores.remove(&id);
            }
            Change::PutKey(k) => {
                self.keys.insert(k.id, *k);
            }
            Change::DeleteKey(id) => {
                self.keys.remove(&id);
                self.aliases.retain(|_, a| a.target != id);
            }
            Change::PutAlias(a) => {
                self.aliases.insert(a.name.clone(), a);
            }
            Change::DeleteAlias(name) => {
                self.aliases.remove(&name);
            }
            Change::Trail(e) => self.trail.push(e),
        }
    }

    fn unindex(&mut self, cluster: &ClusterId, old: &KeyObject) {
        let key = (cluster.clone(), old.label.clone());
        if self.labels.get(&key) == Some(&old.handle) {
            self.labels.remove(&key);
            // Another object may carry the same label (CloudHSM allows it): keep one indexed.
            let other = self
                .cluster_objects(cluster)
                .find(|o| o.label == old.label)
                .map(|o| o.handle);
            if let Some(handle) = other {
                self.labels.insert(key, handle);
            }
        }
    }

    /// Rebuilds the derived indexes (after decoding a snapshot).
    pub fn reindex(&mut self) {
        self.labels = self
            .objects
            .iter()
            .map(|((c, h), o)| ((c.clone(), o.label.clone()), *h))
            .collect();
    }

    /// The key object labelled `label` in `cluster` (`findKey -l <label>`).
    pub fn object_by_label(&self, cluster: &ClusterId, label: &str) -> Option<&KeyObject> {
        let handle = self.labels.get(&(cluster.clone(), label.to_owned()))?;
        self.objects.get(&(cluster.clone(), *handle))
    }

    /// Applies a whole record.
    pub fn apply_record(&mut self, record: Record) {
        for change in record.changes {
            self.apply(change);
        }
    }

    /// Users of one cluster.
    pub fn cluster_users<'a>(
        &'a self,
        cluster: &'a ClusterId,
    ) -> impl Iterator<Item = &'a HsmUser> + 'a {
        self.users
            .range((cluster.clone(), String::new())..)
            .take_while(move |((c, _), _)| c == cluster)
            .map(|(_, u)| u)
    }

    /// Key objects of one cluster.
    pub fn cluster_objects<'a>(
        &'a self,
        cluster: &'a ClusterId,
    ) -> impl Iterator<Item = &'a KeyObject> + 'a {
        self.objects
            .range((cluster.clone(), 0)..=(cluster.clone(), u64::MAX))
            .map(|(_, o)| o)
    }

    /// A user of a cluster.
    pub fn user(&self, cluster: &ClusterId, name: &str) -> Option<&HsmUser> {
        self.users.get(&(cluster.clone(), name.to_owned()))
    }
}
