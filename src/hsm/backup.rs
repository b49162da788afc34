//! Cluster backups: taken on demand and when a cluster is deleted, described, copied to
//! another Region, deleted. A backup keeps the cluster's certificates, users, key objects and
//! wrapping-key lineage, so a cluster restored from it holds the same keys.

use super::cluster::cluster;
use super::{CloudHsmState, HsmChange, HsmTx};
use crate::api::hsm::*;
use crate::err;
use crate::error::Result;
use crate::hsm::model::*;
use crate::types::*;

/// Records a backup of `c` as it is now.
pub(super) fn take_backup(tx: &mut HsmTx<'_>, c: &Cluster) -> BackupDescription {
    let users = tx
        .state
        .cluster_users(&c.id)
        .map(|u| HsmUser {
            session: None,
            ..u.clone()
        })
        .collect();
    let objects = tx.state.cluster_objects(&c.id).cloned().collect();
    let backup = Backup {
        id: BackupId::generate(),
        state: BackupState::Ready,
        region: c.region.clone(),
        cluster_id: c.id.clone(),
        created: tx.now,
        hsm_type: c.hsm_type.clone(),
        pki: ClusterPki {
            csr: None,
            ..c.pki.clone()
        },
        wrapping_key: c.wrapping_key.clone(),
        users,
        objects,
        next_handle: c.next_handle,
        copied_from: None,
    };
    let d = describe_backup(&backup);
    tx.push(HsmChange::PutBackup(Box::new(backup)));
    d
}

/// Takes a backup of an initialised cluster now (AWS takes them on a schedule).
pub fn create_backup(tx: &mut HsmTx<'_>, cluster_id: &str) -> Result<BackupDescription> {
    let c = cluster(tx.state, cluster_id)?.clone();
    if c.pki.cluster_certificate.is_none() {
        return Err(err!(
            CloudHsmInvalidRequestException,
            "Cluster {} is not initialized; nothing to back up",
            c.id
        ));
    }
    Ok(take_backup(tx, &c))
}

/// DescribeBackups view of a backup.
pub fn describe_backup(b: &Backup) -> BackupDescription {
    BackupDescription {
        backup_id: b.id.clone(),
        backup_state: b.state,
        cluster_id: b.cluster_id.clone(),
        create_timestamp: b.created,
        region: b.region.clone(),
        source_backup: b.copied_from.as_ref().map(|(id, _)| id.clone()),
        source_region: b.copied_from.as_ref().map(|(_, r)| r.clone()),
    }
}

fn backup<'s>(state: &'s CloudHsmState, id: &str) -> Result<&'s Backup> {
    BackupId::parse(id)
        .and_then(|b| state.backups.get(&b))
        .ok_or_else(|| {
            err!(
                CloudHsmResourceNotFoundException,
                "The backup {id} does not exist."
            )
        })
}

/// CopyBackupToRegion: the copy is a new backup in the destination Region; a cluster restored
/// from it is related to (shares backup history with) the source cluster.
pub fn copy_backup_to_region(
    tx: &mut HsmTx<'_>,
    req: &CopyBackupToRegionRequest,
) -> Result<BackupDescription> {
    let b = backup(tx.state, &req.backup_id)?.clone();
    if req.destination_region == b.region {
        return Err(err!(
            CloudHsmInvalidRequestException,
            "The backup {} is already in {}",
            b.id,
            b.region
        ));
    }
    if !is_region_name(&req.destination_region) {
        return Err(err!(
            CloudHsmInvalidRequestException,
            "Invalid DestinationRegion '{}'",
            req.destination_region
        ));
    }
    let copy = Backup {
        id: BackupId::generate(),
        region: req.destination_region.clone(),
        created: tx.now,
        copied_from: Some((b.id.clone(), b.region.clone())),
        ..b
    };
    let d = describe_backup(&copy);
    tx.push(HsmChange::PutBackup(Box::new(copy)));
    Ok(d)
}

fn is_region_name(r: &str) -> bool {
    let parts: Vec<&str> = r.split('-').collect();
    parts.len() >= 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
        && parts
            .last()
            .is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()))
}

/// DeleteBackup.
pub fn delete_backup(tx: &mut HsmTx<'_>, backup_id: &str) -> Result<BackupDescription> {
    let b = backup(tx.state, backup_id)?.clone();
    let mut d = describe_backup(&b);
    d.backup_state = BackupState::Deleted;
    tx.push(HsmChange::DeleteBackup(b.id));
    Ok(d)
}
