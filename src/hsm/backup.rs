//! Cluster backups: taken as AWS takes them (when a cluster is activated, when an HSM is added
//! to or removed from an ACTIVE cluster, when a cluster is deleted, and at least once every 24
//! hours on the clock: [`backup_schedule`]), and on demand (kmscks's CreateBackup); described
//! (per Region, with AWS's filters), copied to another Region, deleted (PENDING_DELETION,
//! restorable for seven days on the clock) and restored; kept for the cluster's retention
//! policy unless they never expire. A backup keeps the cluster's certificates, users, key objects and
//! wrapping-key lineage, so a cluster restored from it holds the same keys.

use super::cluster::cluster;
use super::paging::page_set;
use super::state::BackupAge;
use std::cmp::Reverse;
use std::collections::BTreeMap;
use super::{CloudHsmState, HsmChange, HsmTx};
use crate::api::hsm::*;
use crate::err;
use crate::error::Result;
use crate::hsm::model::*;
use crate::types::*;

/// Records an automatic backup of `c` as it is now. Backups AWS takes of one cluster at one
/// instant are one backup (the latest content, the first one's id): on a clock that stands
/// still, as in a test, "the cluster's latest backup" is still one backup.
pub(super) fn take_backup(tx: &mut HsmTx<'_>, c: &Cluster) -> BackupDescription {
    let same_instant = tx
        .state
        .backups
        .values()
        .find(|b| {
            b.cluster_id == c.id
                && b.created == tx.now
                && b.copied_from.is_none()
                && b.state == BackupState::Ready
        })
        .map(|b| (b.id.clone(), b.never_expires, b.tags.clone()));
    let mut backup = new_backup(tx, c);
    if let Some((id, never_expires, tags)) = same_instant {
        backup.id = id;
        backup.never_expires = never_expires;
        backup.tags = tags;
    }
    let d = describe_backup(&backup, tx.scope);
    tx.push(HsmChange::PutBackup(Box::new(backup)));
    d
}

/// A new backup of `c` as it is now (not yet recorded): its users and key objects as the
/// transaction leaves them, the state's with the changes pushed so far applied, since a
/// backup can be taken by the very operation that changed them (activation sets the admin
/// password, then backs up).
fn new_backup(tx: &HsmTx<'_>, c: &Cluster) -> Backup {
    let mut users: BTreeMap<String, HsmUser> = tx
        .state
        .cluster_users(&c.id)
        .map(|u| (u.username.clone(), u.clone()))
        .collect();
    let mut objects: BTreeMap<u64, KeyObject> = tx
        .state
        .cluster_objects(&c.id)
        .map(|o| (o.handle, o.clone()))
        .collect();
    let mut next_handle = c.next_handle;
    for change in tx.changes() {
        match change {
            HsmChange::SetNextHandle(id, next) if *id == c.id => next_handle = *next,
            HsmChange::PutUser(id, u) if *id == c.id => {
                users.insert(u.username.clone(), u.clone());
            }
            HsmChange::DeleteUser(id, name) if *id == c.id => {
                users.remove(name);
            }
            HsmChange::PutObject(id, o) if *id == c.id => {
                objects.insert(o.handle, o.clone());
            }
            HsmChange::DeleteObject(id, handle) if *id == c.id => {
                objects.remove(handle);
            }
            _ => {}
        }
    }
    let users = users
        .into_values()
        .map(|u| HsmUser { session: None, ..u })
        .collect();
    let objects = objects.into_values().collect();
    Backup {
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
        next_handle,
        copied_from: None,
        copied: None,
        never_expires: false,
        delete_timestamp: None,
        tags: Default::default(),
    }
}

/// Whether [`backup_schedule`] has anything to do at `now`: an ACTIVE cluster without a backup
/// for [`limits::AUTOMATIC_BACKUP_HOURS`], a backup past its cluster's retention, or a deleted
/// backup past its restore window. Reads only (the worker asks every few seconds).
pub fn backups_due(state: &CloudHsmState, now: Timestamp) -> bool {
    let period = std::time::Duration::from_secs(u64::from(limits::AUTOMATIC_BACKUP_HOURS) * 3600);
    state
        .clusters
        .values()
        .any(|c| c.state == ClusterState::Active && latest_backup(state, c).plus(period) <= now)
        || state
            .backups
            .values()
            .any(|b| expired(b, now) || retention_over(state, b, now))
}

/// When the latest backup of `c` (in its Region, not a copy) was taken; the cluster's creation
/// for a cluster without one (a cluster restored from a backup: its first automatic backup
/// comes a period after its creation).
fn latest_backup(state: &CloudHsmState, c: &Cluster) -> Timestamp {
    state
        .backups
        .values()
        .filter(|b| b.cluster_id == c.id && b.copied_from.is_none())
        .map(|b| b.created)
        .max()
        .unwrap_or(c.created)
}

/// Whether the READY backup `b` has outlived its cluster's retention policy at `now`. The
/// policy applies to backups taken in the cluster's Region while the cluster exists; copies
/// in other Regions, backups that never expire, and backups of deleted clusters are kept
/// (kmscks's reading: the policy is the cluster's).
fn retention_over(state: &CloudHsmState, b: &Backup, now: Timestamp) -> bool {
    b.state == BackupState::Ready
        && !b.never_expires
        && b.copied_from.is_none()
        && state
            .clusters
            .get(&b.cluster_id)
            .is_some_and(|c| now >= b.created.plus_days(c.backup_retention_days))
}

/// The automatic backups and the retention policy, on the clock (the background worker's
/// task): a backup of each ACTIVE cluster that has had none for
/// [`limits::AUTOMATIC_BACKUP_HOURS`]; each backup past its cluster's retention becomes
/// PENDING_DELETION (restorable for [`limits::BACKUP_RESTORE_DAYS`] days, as after
/// DeleteBackup); deleted backups past that window go for good.
pub fn backup_schedule(tx: &mut HsmTx<'_>) {
    purge_expired(tx);
    let period = std::time::Duration::from_secs(u64::from(limits::AUTOMATIC_BACKUP_HOURS) * 3600);
    let due: Vec<Cluster> = tx
        .state
        .clusters
        .values()
        .filter(|c| {
            c.state == ClusterState::Active
                && latest_backup(tx.state, c).plus(period) <= tx.now
        })
        .cloned()
        .collect();
    for c in &due {
        take_backup(tx, c);
    }
    let over: Vec<Backup> = tx
        .state
        .backups
        .values()
        .filter(|b| retention_over(tx.state, b, tx.now))
        .cloned()
        .collect();
    for mut b in over {
        b.state = BackupState::PendingDeletion;
        b.delete_timestamp = Some(tx.now);
        tx.push(HsmChange::PutBackup(Box::new(b)));
    }
}

/// Takes a backup of an initialised cluster now (kmscks's extra: AWS takes them only as
/// [`backup_schedule`] and the cluster operations do).
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
    let backup = new_backup(tx, &c);
    let d = describe_backup(&backup, tx.scope);
    tx.push(HsmChange::PutBackup(Box::new(backup)));
    Ok(d)
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
    let region = scope.region_or(req.region.as_deref());
    let wanted = |name: &str, value: Option<&str>| {
        req.filters
            .get(name)
            .is_none_or(|vals| value.is_some_and(|v| vals.iter().any(|w| w == v)))
    };
    // Newest first, as AWS lists them (`SortAscending` false, the only order kmscks gives).
    let (backups, next_token) = page_set(
        "backups",
        state.backups_newest_first(),
        req.max_results,
        limits::DESCRIBE_BACKUPS_MAX_RESULTS,
        req.next_token.as_deref(),
        (write_age, read_age),
        |(_, id)| {
            // The index names only backups the state holds (`CloudHsmState::apply`).
            let b = state.backups.get(id)?;
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

/// A backup's place in the newest-first list as a token writes it: `<millis>.<id>`.
fn write_age((Reverse(taken), id): &BackupAge) -> String {
    format!("{}.{}", taken.millis(), id.as_str())
}

/// The place [`write_age`] wrote.
fn read_age(text: &str) -> Option<BackupAge> {
    let (millis, id) = text.split_once('.')?;
    Some((Reverse(Timestamp(millis.parse().ok()?)), BackupId::parse(id)?))
}

/// The backup `id` in `region`, unless it is gone (unknown, or past its restore window).
/// Backups are regional, as on AWS: one is found only in its own Region (the request's
/// `Region`, else the configured one), so a backup copied away is reached there by its copy's
/// id, and the source by naming the source's Region.
pub(super) fn backup<'s>(
    state: &'s CloudHsmState,
    now: Timestamp,
    region: &str,
    id: &str,
) -> Result<&'s Backup> {
    BackupId::parse(id)
        .and_then(|b| state.backups.get(&b))
        .filter(|b| b.region == region && !expired(b, now))
        .ok_or_else(|| {
            err!(
                CloudHsmResourceNotFoundException,
                "The backup {id} does not exist in {region}."
            )
        })
}

/// The backup `id` in `region`, which must be READY (not PENDING_DELETION) to be copied or
/// restored from.
pub(super) fn ready_backup<'s>(
    state: &'s CloudHsmState,
    now: Timestamp,
    region: &str,
    id: &str,
    op: &str,
) -> Result<&'s Backup> {
    let b = backup(state, now, region, id)?;
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
///
/// As AWS documents it: the copy holds the same cluster content as its source, so its
/// CreateTimestamp (in the response's `DestinationBackup` and in DescribeBackups) is when the
/// source backup was created, and when it was copied is its CopyTimestamp; without a TagList
/// the copy takes the source's tags ("If you do not specify tags, the service copies tags
/// from the source backup"), with one exactly the tags given.
pub fn copy_backup_to_region(
    tx: &mut HsmTx<'_>,
    req: &CopyBackupToRegionRequest,
) -> Result<CopyBackupToRegionResponse> {
    purge_expired(tx);
    let region = tx.scope.region_or(req.region.as_deref());
    let b = ready_backup(tx.state, tx.now, region, &req.backup_id, "CopyBackupToRegion")?.clone();
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
    let tags = if req.tag_list.is_empty() {
        b.tags.clone()
    } else {
        super::cluster::tag_map(&req.tag_list)?
    };
    let response = CopyBackupToRegionResponse {
        destination_backup: DestinationBackup {
            create_timestamp: b.created,
            source_region: b.region.clone(),
            source_backup: b.id.clone(),
            source_cluster: b.cluster_id.clone(),
        },
    };
    // `created` stays the source's (the content's creation; see above), `copied` is now.
    let copy = Backup {
        id: BackupId::generate(),
        region: req.destination_region.clone(),
        copied_from: Some((b.id.clone(), b.region.clone())),
        copied: Some(tx.now),
        never_expires: false,
        delete_timestamp: None,
        tags,
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
pub fn delete_backup(tx: &mut HsmTx<'_>, req: &BackupIdRequest) -> Result<BackupResponse> {
    purge_expired(tx);
    let region = tx.scope.region_or(req.region.as_deref());
    let mut b = backup(tx.state, tx.now, region, &req.backup_id)?.clone();
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
    let region = tx.scope.region_or(req.region.as_deref());
    let mut b = backup(tx.state, tx.now, region, &req.backup_id)?.clone();
    b.never_expires = req.never_expires;
    let backup = describe_backup(&b, tx.scope);
    tx.push(HsmChange::PutBackup(Box::new(b)));
    Ok(BackupResponse { backup })
}

/// RestoreBackup: a PENDING_DELETION backup, within its window, becomes READY again.
pub fn restore_backup(tx: &mut HsmTx<'_>, req: &BackupIdRequest) -> Result<BackupResponse> {
    purge_expired(tx);
    let region = tx.scope.region_or(req.region.as_deref());
    let mut b = backup(tx.state, tx.now, region, &req.backup_id)?.clone();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backups_place_round_trips_through_its_token_text_and_garbage_names_none() {
        let place: BackupAge = (Reverse(Timestamp(1_765_000_000_123)), BackupId::generate());
        assert_eq!(read_age(&write_age(&place)), Some(place.clone()));
        let id = place.1.as_str();
        for bad in [
            "",
            "123",
            id,
            &format!("x.{id}"),
            &format!("1.{id}x"),
            "99999999999999999999.backup-aaaaaaaaaaa",
        ] {
            assert_eq!(read_age(bad), None, "{bad:?}");
        }
        // A time before the epoch is a time like another: it names a place, never a panic.
        assert!(read_age(&format!("-5.{id}")).is_some());
    }
}
