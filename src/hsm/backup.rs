//! Cluster backups: taken on demand and when a cluster is deleted, described (per Region, with
//! AWS's filters), copied to another Region, deleted (PENDING_DELETION, restorable for seven
//! days on the clock) and restored. A backup keeps the cluster's certificates, users, key objects and
//! wrapping-key lineage, so a cluster restored from it holds the same keys.

use super::cluster::cluster;
use super::paging::page;
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
        copied: None,
        never_expires: false,
        delete_timestamp: None,
        tags: Default::default(),
    };
    let d = describe_backup(&backup, tx.scope);
    tx.push(HsmChange::PutBackup(Box::new(backup)));
    d
}

/// Takes a backup of an initialised cluster now (AWS takes them on a schedule).
pub fn create_backup(tx: &mut HsmTx<'_>, cluster_id: &str) -> Result<BackupDescription> {
    purge_expired(tx);
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

/// Whether a backup deleted at `delete_timestamp` is past its restore window at `now` (then it
/// is gone for good: not described, not restorable).
fn expired(b: &Backup, now: Timestamp) -> bool {
    b.delete_timestamp
        .is_some_and(|d| now >= d.plus_days(limits::BACKUP_RESTORE_DAYS))
}

/// Removes, in `tx`, every backup whose restore window has closed (done lazily, by the backup
/// operations that write: what is past its window is already invisible to readers).
fn purge_expired(tx: &mut HsmTx<'_>) {
    let gone: Vec<BackupId> = tx
        .state
        .backups
        .values()
        .filter(|b| expired(b, tx.now))
        .map(|b| b.id.clone())
        .collect();
    for id in gone {
        tx.push(HsmChange::DeleteBackup(id));
    }
}

/// DescribeBackups view of a backup (cloudhsmv2's `Backup`).
pub(super) fn describe_backup(b: &Backup, scope: &Scope) -> BackupDescription {
    BackupDescription {
        backup_id: b.id.clone(),
        backup_arn: format!(
            "arn:aws:cloudhsm:{}:{}:backup/{}",
            b.region, scope.account_id, b.id
        ),
        backup_state: b.state,
        cluster_id: b.cluster_id.clone(),
        create_timestamp: b.created,
        copy_timestamp: b.copied,
        never_expires: b.never_expires,
        source_region: b.copied_from.as_ref().map(|(_, r)| r.clone()),
        source_backup: b.copied_from.as_ref().map(|(id, _)| id.clone()),
        source_cluster: b.copied_from.as_ref().map(|_| b.cluster_id.clone()),
        delete_timestamp: b.delete_timestamp,
        hsm_type: b.hsm_type.clone(),
        mode: CLUSTER_MODE.to_owned(),
        tag_list: super::cluster::tag_list(&b.tags),
    }
}

/// The filters DescribeBackups takes (AWS's names).
const BACKUP_FILTERS: [&str; 5] = [
    "backupIds",
    "sourceBackupIds",
    "clusterIds",
    "states",
    "neverExpires",
];

/// DescribeBackups: the backups of one Region (the request's, else the configured one) that
/// pass every filter, a page at a time (`MaxResults`, `NextToken`); backups past their restore
/// window are gone.
pub fn describe_backups(
    state: &CloudHsmState,
    now: Timestamp,
    scope: &Scope,
    req: &DescribeBackupsRequest,
) -> Result<DescribeBackupsResponse> {
    for name in req.filters.keys() {
        if !BACKUP_FILTERS.contains(&name.as_str()) {
            return Err(err!(
                CloudHsmInvalidRequestException,
                "Unknown filter {name}; use {}",
                BACKUP_FILTERS.join(", ")
            ));
        }
    }
    let region = req.region.as_deref().unwrap_or(&scope.region);
    let wanted = |name: &str, value: Option<&str>| {
        req.filters
            .get(name)
            .is_none_or(|vals| value.is_some_and(|v| vals.iter().any(|w| w == v)))
    };
    let (backups, next_token) = page(
        "backups",
        &state.backups,
        req.max_results,
        limits::DESCRIBE_BACKUPS_MAX_RESULTS,
        req.next_token.as_deref(),
        (BackupId::as_str, BackupId::parse),
        |_, b| {
            let never = if b.never_expires { "true" } else { "false" };
            let kept = b.region == region
                && !expired(b, now)
                && wanted("backupIds", Some(b.id.as_str()))
                && wanted(
                    "sourceBackupIds",
                    b.copied_from.as_ref().map(|(id, _)| id.as_str()),
                )
                && wanted("clusterIds", Some(b.cluster_id.as_str()))
                && wanted("states", Some(b.state.as_str()))
                && wanted("neverExpires", Some(never));
            kept.then(|| describe_backup(b, scope))
        },
    )?;
    Ok(DescribeBackupsResponse {
        backups,
        next_token,
    })
}

/// The backup `id`, unless it is gone (unknown, or past its restore window).
pub(super) fn backup<'s>(state: &'s CloudHsmState, now: Timestamp, id: &str) -> Result<&'s Backup> {
    BackupId::parse(id)
        .and_then(|b| state.backups.get(&b))
        .filter(|b| !expired(b, now))
        .ok_or_else(|| {
            err!(
                CloudHsmResourceNotFoundException,
                "The backup {id} does not exist."
            )
        })
}

/// The backup `id`, which must be READY (not PENDING_DELETION) to be copied or restored from.
pub(super) fn ready_backup<'s>(
    state: &'s CloudHsmState,
    now: Timestamp,
    id: &str,
    op: &str,
) -> Result<&'s Backup> {
    let b = backup(state, now, id)?;
    if b.state != BackupState::Ready {
        return Err(err!(
            CloudHsmInvalidRequestException,
            "{op}: the backup {id} is {}, not READY (RestoreBackup brings a deleted backup back)",
            b.state
        ));
    }
    Ok(b)
}

/// CopyBackupToRegion: the copy is a new backup in the destination Region (found there with
/// DescribeBackups, filter `sourceBackupIds`); a cluster restored from it is related to
/// (shares backup history with) the source cluster.
pub fn copy_backup_to_region(
    tx: &mut HsmTx<'_>,
    req: &CopyBackupToRegionRequest,
) -> Result<CopyBackupToRegionResponse> {
    purge_expired(tx);
    let b = ready_backup(tx.state, tx.now, &req.backup_id, "CopyBackupToRegion")?.clone();
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
    let response = CopyBackupToRegionResponse {
        destination_backup: DestinationBackup {
            create_timestamp: tx.now,
            source_region: b.region.clone(),
            source_backup: b.id.clone(),
            source_cluster: b.cluster_id.clone(),
        },
    };
    let copy = Backup {
        id: BackupId::generate(),
        region: req.destination_region.clone(),
        copied_from: Some((b.id.clone(), b.region.clone())),
        copied: Some(tx.now),
        never_expires: false,
        delete_timestamp: None,
        tags: Default::default(),
        ..b
    };
    tx.push(HsmChange::PutBackup(Box::new(copy)));
    Ok(response)
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

/// DeleteBackup: the backup becomes PENDING_DELETION and stays restorable (RestoreBackup) for
/// [`limits::BACKUP_RESTORE_DAYS`] days; it cannot be copied or restored from meanwhile.
pub fn delete_backup(tx: &mut HsmTx<'_>, backup_id: &str) -> Result<BackupResponse> {
    purge_expired(tx);
    let mut b = backup(tx.state, tx.now, backup_id)?.clone();
    if b.state == BackupState::PendingDeletion {
        return Err(err!(
            CloudHsmInvalidRequestException,
            "The backup {} is already PENDING_DELETION",
            b.id
        ));
    }
    b.state = BackupState::PendingDeletion;
    b.delete_timestamp = Some(tx.now);
    let backup = describe_backup(&b, tx.scope);
    tx.push(HsmChange::PutBackup(Box::new(b)));
    Ok(BackupResponse { backup })
}

/// ModifyBackupAttributes: exempts the backup from its cluster's retention policy, or not.
pub fn modify_backup_attributes(
    tx: &mut HsmTx<'_>,
    req: &ModifyBackupAttributesRequest,
) -> Result<BackupResponse> {
    purge_expired(tx);
    let mut b = backup(tx.state, tx.now, &req.backup_id)?.clone();
    b.never_expires = req.never_expires;
    let backup = describe_backup(&b, tx.scope);
    tx.push(HsmChange::PutBackup(Box::new(b)));
    Ok(BackupResponse { backup })
}

/// RestoreBackup: a PENDING_DELETION backup, within its window, becomes READY again.
pub fn restore_backup(tx: &mut HsmTx<'_>, backup_id: &str) -> Result<BackupResponse> {
    purge_expired(tx);
    let mut b = backup(tx.state, tx.now, backup_id)?.clone();
    if b.state != BackupState::PendingDeletion {
        return Err(err!(
            CloudHsmInvalidRequestException,
            "The backup {} is {}, not PENDING_DELETION; only a deleted backup can be restored",
            b.id,
            b.state
        ));
    }
    b.state = BackupState::Ready;
    b.delete_timestamp = None;
    let backup = describe_backup(&b, tx.scope);
    tx.push(HsmChange::PutBackup(Box::new(b)));
    Ok(BackupResponse { backup })
}
