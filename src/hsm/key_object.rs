//! Key objects as the CloudHSM CLI sees them: `key list` (metadata only) and `key delete` by
//! the owner (the manual clean-up of an orphaned KMS key).

use super::audit::{audit_all, opcode};
use super::cluster::{active_cluster, cluster};
use super::user::{cli_login, cli_logout};
use super::{CloudHsmState, HsmChange, HsmTx};
use crate::api::hsm::*;
use crate::err;
use crate::error::Result;
use crate::hsm::model::Cluster;
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

/// `key delete` as the owner (the manual clean-up of an orphaned KMS key), as a CloudHSM CLI
/// session runs it: log in as `username`, delete, log out. The login follows every rule of a
/// CLI `login` ([`cli_login`]): a wrong password counts towards the lockout and is audited, a
/// locked-out user is refused even with the right password, and so is kmsuser while KMS holds
/// its session. The caller commits even when this fails, so that a failed attempt is kept.
pub fn delete_key_object(
    tx: &mut HsmTx<'_>,
    cluster_id: &str,
    handle: u64,
    username: &str,
    password: &Password,
) -> Result<()> {
    let c = active_cluster(tx.state, cluster_id)?.clone();
    let session = cli_login(tx, &c, username, password)?;
    let deleted = destroy_owned(tx, &c, handle, username);
    cli_logout(tx, &c, session);
    deleted
}

/// Deletes key `handle` of `c` for its owner `username`, who is logged in.
fn destroy_owned(tx: &mut HsmTx<'_>, c: &Cluster, handle: u64, username: &str) -> Result<()> {
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
    if o.owner != username {
        return Err(err!(
            CloudHsmAccessDeniedException,
            "Only the owner {} may delete key {handle}",
            o.owner
        ));
    }
    audit_all(
        tx,
        c,
        opcode::DESTROY_OBJECT,
        "SUCCESS",
        Some(username),
        Some(handle),
    );
    tx.push(HsmChange::DeleteObject(c.id.clone(), handle));
    Ok(())
}
