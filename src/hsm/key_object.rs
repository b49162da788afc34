//! Key objects as the CloudHSM CLI sees them: `key list` (metadata only) and `key delete` by
//! the owner (the manual clean-up of an orphaned KMS key).

use super::audit::{audit_all, opcode};
use super::cluster::{active_cluster, cluster};
use super::password::password_matches;
use super::user::user;
use super::{CloudHsmState, HsmChange, HsmTx};
use crate::api::hsm::*;
use crate::err;
use crate::error::Result;
use crate::secret::Password;
use crate::types::*;

/// `key list`: metadata of every key object, never the key bytes.
pub fn list_key_objects(
    state: &CloudHsmState,
    cluster_id: &str,
) -> Result<Vec<KeyObjectDescription>> {
    let c = cluster(state, cluster_id)?;
    let hsms: Vec<HsmId> = c.active_hsms().map(|h| h.id.clone()).collect();
    Ok(state
        .cluster_objects(&c.id)
        .map(|o| KeyObjectDescription {
            key_reference: o.handle,
            label: o.label.clone(),
            owner: o.owner.clone(),
            key_type: "aes".into(),
            key_length_bits: 256,
            extractable: false,
            token: true,
            hsms: hsms.clone(),
        })
        .collect())
}

/// `key delete` as the owner (the manual clean-up of an orphaned KMS key).
pub fn delete_key_object(
    tx: &mut HsmTx<'_>,
    cluster_id: &str,
    handle: u64,
    username: &str,
    password: &Password,
) -> Result<()> {
    let c = active_cluster(tx.state, cluster_id)?.clone();
    let o = tx
        .state
        .objects
        .get(&(c.id.clone(), handle))
        .ok_or_else(|| {
            err!(
                CloudHsmResourceNotFoundException,
                "Key {handle} does not exist in cluster {}",
                c.id
            )
        })?;
    let u = user(tx.state, &c, username)?;
    let matches = !u.locked_out()
        && password_matches(tx, &c, username, &u.password, password)
            .map_err(|e| super::password::unavailable(username, &e))?;
    if !matches {
        return Err(err!(
            CloudHsmAccessDeniedException,
            "Login failed for user {username}"
        ));
    }
    if o.owner != username {
        return Err(err!(
            CloudHsmAccessDeniedException,
            "Only the owner {} may delete key {handle}",
            o.owner
        ));
    }
    audit_all(
        tx,
        &c,
        opcode::DESTROY_OBJECT,
        "SUCCESS",
        Some(username),
        Some(handle),
    );
    tx.push(HsmChange::DeleteObject(c.id.clone(), handle));
    Ok(())
}
