//! Fault injection: the failures a real cluster can suffer (a lost HSM or zone, a network
//! outage, a changed or locked-out kmsuser, a deleted subnet, a deleted key object), for
//! testing how KMS reacts to them, with the simple ways back (an HSM or zone up again, the
//! network healed, the security group fixed); and the faults in force, read back from the
//! cluster's state (`fault list`).

use super::audit::{audit_all, opcode};
use super::cluster::cluster;
use super::password::{hash_password, ROTATED_PASSWORD_LEN};
use super::user::user;
use super::{CloudHsmState, HsmChange, HsmTx};
use crate::api::hsm::*;
use crate::err;
use crate::error::{Constraint, KmsError, Result};
use crate::hsm::model::*;
use crate::secret::Password;
use crate::types::limits;
use crate::types::*;

/// `state_message` of an HSM lost by [`Fault::HsmLost`].
const HSM_LOST: &str = "HSM lost (injected fault)";
/// `state_message` of an HSM lost by [`Fault::AvailabilityZoneDown`] (what `AvailabilityZoneUp`
/// brings back, and what tells `fault list` the zone is down).
const ZONE_DOWN: &str = "Availability Zone down (injected fault)";

/// Injects a fault.
pub fn inject_fault(tx: &mut HsmTx<'_>, cluster_id: &str, fault: &Fault) -> Result<()> {
    let mut c = cluster(tx.state, cluster_id)?.clone();
    match fault {
        Fault::HsmLost(hsm) => {
            let h = hsm_of(&mut c, hsm)?;
            h.state = HsmState::Degraded;
            h.state_message = Some(HSM_LOST.into());
        }
        Fault::HsmRestored(hsm) => {
            let h = hsm_of(&mut c, hsm)?;
            if h.state != HsmState::Degraded {
                return Err(err!(
                    CloudHsmInvalidRequestException,
                    "The HSM {hsm} is {}, not DEGRADED: there is nothing to bring back",
                    h.state
                ));
            }
            come_back(h);
        }
        Fault::AvailabilityZoneDown { availability_zone } => {
            zone_known(&c, availability_zone)?;
            for h in c.hsms.values_mut() {
                if &h.availability_zone == availability_zone && h.state == HsmState::Active {
                    h.state = HsmState::Degraded;
                    h.state_message = Some(ZONE_DOWN.into());
                }
            }
        }
        Fault::AvailabilityZoneUp { availability_zone } => {
            zone_known(&c, availability_zone)?;
            let mut back = 0;
            for h in c.hsms.values_mut() {
                if &h.availability_zone == availability_zone
                    && h.state_message.as_deref() == Some(ZONE_DOWN)
                {
                    come_back(h);
                    back += 1;
                }
            }
            if back == 0 {
                return Err(err!(
                    CloudHsmInvalidRequestException,
                    "No HSM of cluster {cluster_id} is down with Availability Zone {availability_zone}"
                ));
            }
        }
        Fault::NetworkDown => {
            c.faults.network_down = true;
            c.faults.network_heals_at = None;
        }
        Fault::NetworkRestored => {
            c.faults.network_down = false;
            c.faults.network_heals_at = None;
        }
        Fault::NetworkDownFor { duration_ms } => {
            let (min, max) = limits::FAULT_DURATION_MS;
            if *duration_ms < min {
                return Err(KmsError::validation(
                    duration_ms,
                    "durationMs",
                    Constraint::MinValue(min),
                ));
            }
            if *duration_ms > max {
                return Err(KmsError::validation(
                    duration_ms,
                    "durationMs",
                    Constraint::MaxValue(max),
                ));
            }
            c.faults.network_down = true;
            c.faults.network_heals_at =
                Some(tx.now.plus(std::time::Duration::from_millis(*duration_ms)));
        }
        Fault::SlowHsm { hsm_id, latency_ms } => {
            if *latency_ms > limits::MAX_HSM_LATENCY_MS {
                return Err(KmsError::validation(
                    latency_ms,
                    "latencyMs",
                    Constraint::MaxValue(limits::MAX_HSM_LATENCY_MS.into()),
                ));
            }
            hsm_of(&mut c, hsm_id)?.latency_ms = *latency_ms;
        }
        Fault::InternalError(on) => c.faults.internal_error = *on,
        Fault::PasswordChanged { username } => {
            let mut u = user(tx.state, &c, username)?.clone();
            u.password = hash_password(
                tx,
                &c,
                username,
                &Password::generate(ROTATED_PASSWORD_LEN),
            )?;
            audit_all(tx, &c, opcode::CHANGE_PSWD, "SUCCESS", Some(username), None);
            tx.push(HsmChange::PutUser(c.id.clone(), u));
        }
        Fault::UserLockedOut { username } => {
            let mut u = user(tx.state, &c, username)?.clone();
            u.failed_logins = u.failed_logins.max(limits::MAX_FAILED_LOGINS);
            tx.push(HsmChange::PutUser(c.id.clone(), u));
        }
        Fault::UserLoggedInElsewhere { username } => {
            let mut u = user(tx.state, &c, username)?.clone();
            if matches!(u.session, Some(SessionHolder::Kms(_))) {
                return Err(err!(
                    CloudHsmInvalidRequestException,
                    "User {username} is logged in by KMS"
                ));
            }
            u.session = Some(SessionHolder::External);
            audit_all(tx, &c, opcode::LOGIN, "SUCCESS", Some(username), None);
            tx.push(HsmChange::PutUser(c.id.clone(), u));
        }
        Fault::SubnetDeleted { availability_zone } | Fault::SubnetFull { availability_zone } => {
            zone_known(&c, availability_zone)?;
            let s = c
                .subnets
                .get_mut(availability_zone)
                .expect("zone_known checked the zone has a subnet");
            let deleted = matches!(fault, Fault::SubnetDeleted { .. });
            mark_subnet(s, deleted);
            let id = s.id.clone();
            // On AWS a subnet is the VPC's, shared by every cluster given it: each holding a
            // copy of it here (`cluster::shared_subnet`) finds it deleted or full as well.
            let sharing: Vec<Cluster> = tx
                .state
                .clusters
                .values()
                .filter(|o| o.id != c.id && o.subnets.values().any(|s| s.id == id))
                .cloned()
                .collect();
            for mut other in sharing {
                for s in other.subnets.values_mut().filter(|s| s.id == id) {
                    mark_subnet(s, deleted);
                }
                tx.push(HsmChange::PutCluster(Box::new(other)));
            }
        }
        Fault::SecurityGroupBroken => c.security_group_ok = false,
        Fault::SecurityGroupFixed => c.security_group_ok = true,
        Fault::KeyObjectDeleted { handle } => {
            if !tx.state.objects.contains_key(&(c.id.clone(), *handle)) {
                return Err(err!(
                    CloudHsmResourceNotFoundException,
                    "Key {handle} does not exist in cluster {cluster_id}"
                ));
            }
            audit_all(
                tx,
                &c,
                opcode::DESTROY_OBJECT,
                "SUCCESS",
                None,
                Some(*handle),
            );
            tx.push(HsmChange::DeleteObject(c.id.clone(), *handle));
        }
    }
    tx.push(HsmChange::PutCluster(Box::new(c)));
    Ok(())
}

/// Heals the timed network cut of `cluster_id` that was due at `due` (the background worker's
/// task): nothing when the cluster is gone or its cut has since been healed or replaced (by
/// another timed cut, or an untimed one).
pub fn heal_timed_cut(tx: &mut HsmTx<'_>, cluster_id: &str, due: Timestamp) -> Result<()> {
    let Ok(c) = cluster(tx.state, cluster_id) else {
        return Ok(());
    };
    if !c.faults.network_down || c.faults.network_heals_at != Some(due) {
        return Ok(());
    }
    let mut c = c.clone();
    c.faults.network_down = false;
    c.faults.network_heals_at = None;
    tx.push(HsmChange::PutCluster(Box::new(c)));
    Ok(())
}

/// Every timed network cut in force: (cluster, when it heals), for the worker to schedule at
/// open.
pub fn timed_cuts(state: &CloudHsmState) -> impl Iterator<Item = (&ClusterId, Timestamp)> + '_ {
    state.clusters.values().filter_map(|c| {
        c.faults
            .network_heals_at
            .filter(|_| c.faults.network_down)
            .map(|at| (&c.id, at))
    })
}

fn hsm_of<'c>(c: &'c mut Cluster, hsm: &HsmId) -> Result<&'c mut Hsm> {
    let cluster_id = c.id.clone();
    c.hsms.get_mut(hsm).ok_or_else(|| {
        err!(
            CloudHsmResourceNotFoundException,
            "The HSM {hsm} does not exist in cluster {cluster_id}"
        )
    })
}

/// What `subnet-deleted` (`deleted`) or `subnet-full` does to a copy of a subnet.
fn mark_subnet(s: &mut Subnet, deleted: bool) {
    if deleted {
        s.deleted = true;
    } else {
        s.free_addresses = 0;
    }
}

fn zone_known(c: &Cluster, availability_zone: &str) -> Result<()> {
    if c.subnets.contains_key(availability_zone) {
        Ok(())
    } else {
        Err(err!(
            CloudHsmResourceNotFoundException,
            "Cluster {} has no subnet in {availability_zone}",
            c.id
        ))
    }
}

/// A DEGRADED HSM serves again: ACTIVE, and its reboot counter says it came back.
fn come_back(h: &mut Hsm) {
    h.state = HsmState::Active;
    h.state_message = None;
    h.reboot_counter += 1;
}

/// The faults in force in a cluster, each as the [`Fault`] that would inject it (`fault list`).
/// `now` gives the time left of a timed network cut.
pub fn active_faults(state: &CloudHsmState, cluster_id: &str, now: Timestamp) -> Result<Vec<Fault>> {
    let c = cluster(state, cluster_id)?;
    let mut out = Vec::new();
    let mut zones_down: Vec<&str> = Vec::new();
    for h in c.hsms.values().filter(|h| h.state == HsmState::Degraded) {
        if h.state_message.as_deref() == Some(ZONE_DOWN) {
            if !zones_down.contains(&h.availability_zone.as_str()) {
                zones_down.push(&h.availability_zone);
            }
        } else {
            out.push(Fault::HsmLost(h.id.clone()));
        }
    }
    out.extend(
        zones_down
            .into_iter()
            .map(|z| Fault::AvailabilityZoneDown {
                availability_zone: z.to_owned(),
            }),
    );
    match (c.faults.network_down, c.faults.network_heals_at) {
        (false, _) => {}
        (true, None) => out.push(Fault::NetworkDown),
        (true, Some(at)) => out.push(Fault::NetworkDownFor {
            // At least 1: a cut not yet healed by the worker still has a moment left.
            duration_ms: (at.since(now).as_millis() as u64).max(1),
        }),
    }
    for h in c.hsms.values().filter(|h| h.latency_ms > 0) {
        out.push(Fault::SlowHsm {
            hsm_id: h.id.clone(),
            latency_ms: h.latency_ms,
        });
    }
    if c.faults.internal_error {
        out.push(Fault::InternalError(true));
    }
    for u in state.cluster_users(&c.id) {
        if u.locked_out() {
            out.push(Fault::UserLockedOut {
                username: u.username.clone(),
            });
        }
        if u.session == Some(SessionHolder::External) {
            out.push(Fault::UserLoggedInElsewhere {
                username: u.username.clone(),
            });
        }
    }
    for (zone, s) in &c.subnets {
        if s.deleted {
            out.push(Fault::SubnetDeleted {
                availability_zone: zone.clone(),
            });
        } else if s.free_addresses == 0 {
            out.push(Fault::SubnetFull {
                availability_zone: zone.clone(),
            });
        }
    }
    if !c.security_group_ok {
        out.push(Fault::SecurityGroupBroken);
    }
    Ok(out)
}
