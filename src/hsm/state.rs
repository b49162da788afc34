//! Everything the simulated CloudHSM service knows, the changes that move it, and how a change
//! applies.
//!
//! The CloudHSM side owns its state so that it stands on its own below KMS: operations in this
//! module's siblings read a [`CloudHsmState`] and record [`HsmChange`]s in an
//! [`HsmTx`](super::HsmTx); the control plane above journals them with KMS's own changes and
//! applies them here. `apply` is deterministic and infallible: replaying the journal over the
//! last snapshot rebuilds exactly the same state.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use super::model::{AuditEvent, Backup, Cluster, HsmUser, KeyObject};
use crate::api::hsm_audit;
use crate::types::{BackupId, ClusterId, HsmId, Timestamp};

/// The simulated CloudHSM service's state (clusters of any Region, their users, key objects,
/// audit streams, and backups).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CloudHsmState {
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
    /// Index: key object handle by cluster and label (derived; rebuilt by
    /// [`CloudHsmState::reindex`]).
    #[serde(skip)]
    labels: HashMap<(ClusterId, String), u64>,
    /// Index: how many key objects each cluster holds (derived; rebuilt by
    /// [`CloudHsmState::reindex`]), so that CreateKey checks the per-cluster limit without
    /// counting them.
    #[serde(skip)]
    object_counts: HashMap<ClusterId, usize>,
    /// Index: the backups newest first (by when each was taken, then by id), the order
    /// DescribeBackups lists them in (derived; rebuilt by [`CloudHsmState::reindex`]).
    #[serde(skip)]
    backups_by_age: BTreeSet<BackupAge>,
}

/// A backup's place in [`CloudHsmState::backups_newest_first`]: newest first, then by id.
pub type BackupAge = (Reverse<Timestamp>, BackupId);

fn age_of(b: &Backup) -> BackupAge {
    (Reverse(b.created), b.id.clone())
}

/// One atomic step of a CloudHSM operation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)] // each variant reads as what it does
pub enum HsmChange {
    PutCluster(Box<Cluster>),
    /// Advances the cluster's handle counter (a key object was generated): recorded instead of
    /// the whole cluster, so that a CreateKey's record holds only what it changed.
    SetNextHandle(ClusterId, u64),
    DeleteCluster(ClusterId),
    PutUser(ClusterId, HsmUser),
    DeleteUser(ClusterId, String),
    PutObject(ClusterId, KeyObject),
    DeleteObject(ClusterId, u64),
    /// Appends to the HSM's audit stream; `sequence` (gap-free), `previous_hash` and `hash`
    /// are assigned on apply, so replaying the journal rebuilds the same chain.
    Audit(ClusterId, HsmId, AuditEvent),
    PutBackup(Box<Backup>),
    DeleteBackup(BackupId),
}

impl CloudHsmState {
    /// Applies one change.
    pub fn apply(&mut self, change: HsmChange) {
        match change {
            HsmChange::PutCluster(c) => {
                self.clusters.insert(c.id.clone(), *c);
            }
            HsmChange::SetNextHandle(id, next) => {
                if let Some(c) = self.clusters.get_mut(&id) {
                    c.next_handle = next;
                }
            }
            HsmChange::DeleteCluster(id) => {
                self.clusters.remove(&id);
                self.object_counts.remove(&id);
                self.users.retain(|(c, _), _| *c != id);
                self.objects.retain(|(c, _), _| *c != id);
                self.labels.retain(|(c, _), _| *c != id);
            }
            HsmChange::PutUser(c, u) => {
                self.users.insert((c, u.username.clone()), u);
            }
            HsmChange::DeleteUser(c, name) => {
                self.users.remove(&(c, name));
            }
            HsmChange::PutObject(c, o) => {
                self.labels.insert((c.clone(), o.label.clone()), o.handle);
                match self.objects.insert((c.clone(), o.handle), o) {
                    Some(old) => self.unindex(&c, &old),
                    None => *self.object_counts.entry(c).or_default() += 1,
                }
            }
            HsmChange::DeleteObject(c, handle) => {
                if let Some(old) = self.objects.remove(&(c.clone(), handle)) {
                    self.unindex(&c, &old);
                    if let Some(n) = self.object_counts.get_mut(&c) {
                        *n -= 1;
                        if *n == 0 {
                            self.object_counts.remove(&c);
                        }
                    }
                }
            }
            HsmChange::Audit(c, h, mut event) => {
                let genesis = hsm_audit::genesis_hash(&h);
                let stream = self.audit.entry((c, h)).or_default();
                event.sequence = stream.len() as u64;
                event.previous_hash = stream.last().map_or(genesis, |last| last.hash);
                event.hash = hsm_audit::record_hash(&event);
                stream.push(event);
            }
            HsmChange::PutBackup(b) => {
                self.backups_by_age.insert(age_of(&b));
                if let Some(old) = self.backups.insert(b.id.clone(), *b) {
                    let id = &old.id;
                    if old.created != self.backups[id].created {
                        self.backups_by_age.remove(&age_of(&old));
                    }
                }
            }
            HsmChange::DeleteBackup(id) => {
                if let Some(old) = self.backups.remove(&id) {
                    self.backups_by_age.remove(&age_of(&old));
                }
            }
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
        self.object_counts.clear();
        for (c, _) in self.objects.keys() {
            *self.object_counts.entry(c.clone()).or_default() += 1;
        }
        self.backups_by_age = self.backups.values().map(age_of).collect();
    }

    /// The backups newest first (by when each was taken, then by id): each one's place, to
    /// look it up in [`CloudHsmState::backups`] by its id.
    pub fn backups_newest_first(&self) -> &BTreeSet<BackupAge> {
        &self.backups_by_age
    }

    /// How many key objects `cluster` holds.
    pub fn object_count(&self, cluster: &ClusterId) -> usize {
        self.object_counts.get(cluster).copied().unwrap_or(0)
    }

    /// The key object labelled `label` in `cluster` (`findKey -l <label>`).
    pub fn object_by_label(&self, cluster: &ClusterId, label: &str) -> Option<&KeyObject> {
        let handle = self.labels.get(&(cluster.clone(), label.to_owned()))?;
        self.objects.get(&(cluster.clone(), *handle))
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

    /// Every wrapping key the state names (of clusters and of backups), each once: the keys
    /// the control plane loads before any transaction may unwrap under them.
    pub fn wrapping_keys(&self) -> std::collections::BTreeSet<&str> {
        self.clusters
            .values()
            .map(|c| c.wrapping_key.as_str())
            .chain(self.backups.values().map(|b| b.wrapping_key.as_str()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Timestamp;
    use proptest::prelude::*;

    fn object(handle: u64, label: u8) -> KeyObject {
        KeyObject {
            handle,
            label: format!("label-{label}"),
            owner: "kmsuser".into(),
            wrapped: Vec::new(),
            created: Timestamp(0),
        }
    }

    proptest! {
        /// Objects put (new or in place of one), deleted, and whole clusters deleted at random:
        /// the derived indexes say what a count and a rebuild say.
        #[test]
        fn the_object_indexes_match_a_rebuild_after_any_changes(
            ops in proptest::collection::vec((0usize..2, 0u8..4, 0u64..5, 0u8..3), 0..60),
        ) {
            let clusters = [ClusterId::generate(), ClusterId::generate()];
            let mut state = CloudHsmState::default();
            for (c, op, handle, label) in ops {
                let c = clusters[c].clone();
                let change = match op {
                    0 => HsmChange::DeleteObject(c, handle),
                    1 => HsmChange::DeleteCluster(c),
                    _ => HsmChange::PutObject(c, object(handle, label)),
                };
                state.apply(change);
                for c in &clusters {
                    prop_assert_eq!(state.object_count(c), state.cluster_objects(c).count());
                }
            }
            let mut rebuilt = state.clone();
            rebuilt.labels.clear();
            rebuilt.object_counts.clear();
            rebuilt.reindex();
            prop_assert_eq!(rebuilt.object_counts, state.object_counts);
        }
    }
}
