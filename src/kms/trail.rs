//! The KMS event log (what CloudTrail records for KMS), separate from each cluster's HSM audit
//! log. Entries never hold secrets: no passwords, certificates, plaintexts or key material.
//!
//! An event is recorded into the transaction as a change, so it is journaled with the
//! operation's record; once committed it goes to the event log files (the control layer's
//! `event_log`), and the state only counts it.

use crate::kms::model::TrailEvent;
use crate::kms::state::KmsChange;
use crate::kms::tx::Tx;

/// Principal name of events KMS itself causes (the deletion at the end of a waiting period).
pub const SERVICE_PRINCIPAL: &str = "AWS Internal";

/// Records `event_name` by the transaction's principal, with `detail` (JSON).
pub fn record(tx: &mut Tx<'_>, event_name: &str, detail: serde_json::Value) {
    let principal = tx.principal.to_owned();
    record_as(tx, event_name, &principal, detail);
}

/// Records an event by an explicit principal.
pub fn record_as(tx: &mut Tx<'_>, event_name: &str, principal: &str, detail: serde_json::Value) {
    let event = TrailEvent {
        time: tx.now,
        event_name: event_name.to_owned(),
        principal: principal.to_owned(),
        detail: detail.to_string(),
    };
    tx.push(KmsChange::Trail(event));
}
