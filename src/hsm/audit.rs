//! The per-HSM audit streams: what each command writes to every active HSM of the cluster (as
//! CloudHSM replicates commands), and reading the streams back.
//!
//! Each stream is a hash chain (tamper-evident): every record carries its HSM's reboot counter,
//! the SHA-256 of the previous record's canonical encoding and its own; the chain is assigned
//! as a record is appended (`CloudHsmState::apply`) with the functions of
//! [`crate::api::hsm_audit`], which also verifies streams. `docs/hsm-audit.md` has the format.

use super::cluster::parse_cluster_id;
use super::{CloudHsmState, HsmChange, HsmTx};
use crate::api::hsm_audit::AuditHash;
use crate::err;
use crate::error::Result;
use crate::hsm::model::*;
use crate::types::*;

/// Audit opcodes. The numbers of LOGIN, LOGOUT, CREATE_USER and DESTROY_OBJECT are
/// CloudHSM's; the others are kmscks's own.
pub(super) mod opcode {
    pub(crate) const CREATE_USER: (&str, u32) = ("CN_CREATE_USER", 0x3);
    pub(crate) const DELETE_USER: (&str, u32) = ("CN_DELETE_USER", 0x4);
    pub(crate) const CHANGE_PSWD: (&str, u32) = ("CN_CHANGE_PSWD", 0x5);
    pub(crate) const LOGIN: (&str, u32) = ("CN_LOGIN", 0xd);
    pub(crate) const LOGOUT: (&str, u32) = ("CN_LOGOUT", 0xe);
    /// The connection closed without a logout (CloudHSM logs it only then).
    pub(crate) const APP_FINALIZE: (&str, u32) = ("CN_APP_FINALIZE", 0x2);
    pub(crate) const DESTROY_OBJECT: (&str, u32) = ("CN_DESTROY_OBJECT", 0x11);
    pub(crate) const GENERATE_KEY: (&str, u32) = ("CN_GENERATE_KEY", 0x1a);
    pub(crate) const INIT_TOKEN: (&str, u32) = ("CN_INIT_TOKEN", 0x1);
}

/// Writes one command's record to the stream of every active HSM of `cluster`.
pub(super) fn audit_all(
    tx: &mut HsmTx<'_>,
    cluster: &Cluster,
    op: (&str, u32),
    response: &str,
    user: Option<&str>,
    handle: Option<u64>,
) {
    for hsm in cluster.active_hsms() {
        let event = record(tx, hsm, op, response, user, handle);
        tx.push(HsmChange::Audit(cluster.id.clone(), hsm.id.clone(), event));
    }
}

/// One record for `hsm`'s stream, with the HSM's reboot counter. Its position and hashes are
/// placeholders: applying the [`HsmChange::Audit`] assigns them (see `CloudHsmState::apply`).
pub(super) fn record(
    tx: &HsmTx<'_>,
    hsm: &Hsm,
    op: (&str, u32),
    response: &str,
    user: Option<&str>,
    handle: Option<u64>,
) -> AuditEvent {
    AuditEvent {
        sequence: 0,
        reboot_counter: hsm.reboot_counter,
        time: tx.now,
        opcode: op.0.to_owned(),
        opcode_id: op.1,
        response: response.to_owned(),
        user: user.map(str::to_owned),
        key_handle: handle,
        previous_hash: AuditHash::ZERO,
        hash: AuditHash::ZERO,
    }
}

/// The audit stream of one HSM (or of every HSM of the cluster, in HSM id order).
pub fn audit_log(
    state: &CloudHsmState,
    cluster_id: &str,
    hsm: Option<&str>,
) -> Result<Vec<(HsmId, Vec<AuditEvent>)>> {
    let cid = parse_cluster_id(cluster_id)?;
    let streams: Vec<(HsmId, Vec<AuditEvent>)> = state
        .audit
        .iter()
        .filter(|((c, h), _)| *c == cid && hsm.is_none_or(|want| h.as_str() == want))
        .map(|((_, h), events)| (h.clone(), events.clone()))
        .collect();
    if streams.is_empty() && !state.clusters.contains_key(&cid) {
        return Err(err!(
            CloudHsmResourceNotFoundException,
            "No audit log for cluster {cluster_id}"
        ));
    }
    Ok(streams)
}
