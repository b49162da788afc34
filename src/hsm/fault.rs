//! Fault injection: the failures a real cluster can suffer (a lost HSM, a network outage, a
//! changed or locked-out kmsuser, a deleted subnet, a deleted key object), for testing how KMS
//! reacts to them.

use super::audit::{audit_all, opcode};
use super::cluster::cluster;
use super::password::{hash_password, ROTATED_PASSWORD_LEN};
use super::user::user;
use super::{HsmChange, HsmTx};
use crate::api::hsm::*;
use crate::err;
use crate::error::Result;
use crate::hsm::model::*;
use crate::secret::Password;
use crate::types::limits;
use crate::types::*;

/// Injects a fault.
pub fn inject_fault(tx: &mut HsmTx<'_>, cluster_id: &str, fault: &Fault) -> Result<()> {
    let mut c = cluster(tx.state, cluster_id)?.clone();
    match fault {
        Fault::HsmLost(hsm) => {
            let h = c.hsms.get_mut(hsm).ok_or_else(|| {
                err!(
                    CloudHsmResourceNotFoundException,
                    "The HSM {hsm} does not exist in cluster {}",
                    cluster_id
                )
            })?;
            h.state = HsmState::Degraded;
            h.state_message = Some("HSM lost (injected fault)".into());
        }
        Fault::NetworkDown => c.faults.network_down = true,
        Fault::NetworkRestored => c.faults.network_down = false,
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
            let s = c.subnets.get_mut(availability_zone).ok_or_else(|| {
                err!(
                    CloudHsmResourceNotFoundException,
                    "Cluster {cluster_id} has no subnet in {availability_zone}"
                )
            })?;
            if matches!(fault, Fault::SubnetDeleted { .. }) {
                s.deleted = true;
            } else {
                s.free_addresses = 0;
            }
        }
        Fault::SecurityGroupBroken => c.security_group_ok = false,
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
