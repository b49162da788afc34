//! The KMS event log as CloudTrail shows it: LookupEvents (newest first, paged, filtered), and
//! the records no journal holds — failed calls (written when [`Kms::dispatch`] answers with an
//! error) and the data-plane counters (`tally`) flushed into one record per (operation, key,
//! principal, outcome) per interval.
//!
//! Neither kind changes the state, so neither is journaled: they are written to the event log
//! files like the others (no fsync) and marked `"journaled":false` (`control::event_log`).

use serde_json::{json, Value};

use super::commit::{Core, Shared};
use super::Kms;
use crate::api::kms::*;
use crate::control::cloudtrail;
use crate::control::event_log::Query;
use crate::err;
use crate::error::{KmsError, Result};
use crate::kms::keys;
use crate::kms::model::{Backing, TrailEvent};
use crate::ops::{Op, Request};

impl Kms {
    /// LookupEvents: the KMS event log as CloudTrail records, newest first, a page at a time
    /// (`docs/events.md`). Only the account root may read it. Data-plane calls counted so far
    /// are written first, so a lookup sees every call made before it.
    pub fn lookup_events(&self, req: &LookupEventsRequest) -> Result<LookupEventsResponse> {
        let start = req
            .start_time
            .as_deref()
            .map(|t| cloudtrail::parse_time(t, "StartTime"))
            .transpose()?;
        let end = req
            .end_time
            .as_deref()
            .map(|t| cloudtrail::parse_time(t, "EndTime"))
            .transpose()?;
        if let (Some(s), Some(e)) = (start, end) {
            if s > e {
                return Err(err!(
                    ValidationException,
                    "StartTime must not be after EndTime"
                ));
            }
        }
        let max = req.max_results.unwrap_or(LOOKUP_EVENTS_MAX_RESULTS);
        let (lo, hi) = LOOKUP_EVENTS_MAX_RESULTS_RANGE;
        if !(lo..=hi).contains(&max) {
            return Err(err!(
                ValidationException,
                "MaxResults {max} must be between {lo} and {hi}"
            ));
        }
        let before = req
            .next_token
            .as_deref()
            .map(cloudtrail::parse_token)
            .transpose()?;
        self.read(|tx| keys::require_root(tx, Op::LookupEvents.action()))?;
        let mut core = self.shared.core()?;
        self.shared.flush_data_plane(&mut core);
        let name = req.event_name.as_deref();
        let wanted =
            |e: &crate::control::event_line::Entry| name.is_none_or(|n| e.event.event_name == n);
        let page = core.events.lookup(&Query {
            before,
            max: max as usize,
            start,
            end,
            wanted: &wanted,
        })?;
        let scope = self.scope();
        Ok(LookupEventsResponse {
            events: page
                .entries
                .iter()
                .map(|e| CloudTrailRecord(cloudtrail::record(e, scope).to_string()))
                .collect(),
            next_token: page.next.map(cloudtrail::token),
        })
    }

    /// Records a KMS call that failed (a record no journal holds). Calls of the data plane
    /// are counted instead (`tally`); CloudHSM calls and kmscks's extras are not KMS events.
    pub(super) fn record_failure(&self, request: &Request, error: &KmsError) {
        let op = request.op();
        let name = match request {
            Request::Refused(r) => r.operation.name(),
            _ if !is_kms_event(op) => return,
            _ => op.name(),
        };
        let detail = json!({
            "requestParameters": request_parameters(request),
            "responseElements": null,
            "errorCode": error.aws_name(),
            "errorMessage": redacted(request, error.message()),
        });
        let event = TrailEvent {
            time: self.shared.config.clock.now(),
            event_name: name.to_owned(),
            principal: self.principal().to_owned(),
            detail: detail.to_string(),
        };
        let now = event.time;
        let Ok(mut core) = self.shared.core() else {
            return;
        };
        // Best effort: a failed write is logged by the event log and retried with the next.
        let _ = core.events.append_unjournaled([event], now);
    }
}

/// Whether calls of `op` are KMS events recorded on failure here (not the cryptographic
/// operations, which are counted, not the simulated CloudHSM, not kmscks's extras).
fn is_kms_event(op: Op) -> bool {
    op.code() < 100
        && !op.is_cryptographic()
        && !matches!(op, Op::WaitForConnection | Op::LookupEvents)
}

/// The request parameters of a failed call, as CloudTrail names them: identifiers and options
/// only, never a password, a policy or a plaintext.
fn request_parameters(request: &Request) -> Value {
    match request {
        Request::CreateCustomKeyStore(r) => json!({
            "customKeyStoreName": r.custom_key_store_name,
            "cloudHsmClusterId": r.cloud_hsm_cluster_id,
        }),
        Request::DescribeCustomKeyStores(r) => json!({
            "customKeyStoreId": r.custom_key_store_id,
            "customKeyStoreName": r.custom_key_store_name,
        }),
        Request::UpdateCustomKeyStore(r) => json!({
            "customKeyStoreId": r.custom_key_store_id,
            "newCustomKeyStoreName": r.new_custom_key_store_name,
            "cloudHsmClusterId": r.cloud_hsm_cluster_id,
        }),
        Request::DeleteCustomKeyStore(r)
        | Request::ConnectCustomKeyStore(r)
        | Request::DisconnectCustomKeyStore(r) => {
            json!({"customKeyStoreId": r.custom_key_store_id})
        }
        Request::CreateKey(r) => json!({
            "origin": r.origin,
            "customKeyStoreId": r.custom_key_store_id,
            "keySpec": r.key_spec,
            "keyUsage": r.key_usage,
        }),
        Request::DescribeKey(r)
        | Request::EnableKey(r)
        | Request::DisableKey(r)
        | Request::CancelKeyDeletion(r)
        | Request::GetKeyRotationStatus(r)
        | Request::DisableKeyRotation(r)
        | Request::RotateKeyOnDemand(r) => json!({"keyId": r.key_id}),
        Request::ListKeyRotations(r) => json!({
            "keyId": r.key_id,
            "includeKeyMaterial": r.include_key_material,
            "limit": r.limit,
            "marker": r.marker,
        }),
        Request::EnableKeyRotation(r) => json!({
            "keyId": r.key_id,
            "rotationPeriodInDays": r.rotation_period_in_days,
        }),
        Request::UpdateKeyDescription(r) => json!({"keyId": r.key_id}),
        Request::ScheduleKeyDeletion(r) => json!({
            "keyId": r.key_id,
            "pendingWindowInDays": r.pending_window_in_days,
        }),
        Request::PutKeyPolicy(r) => json!({"keyId": r.key_id, "policyName": r.policy_name}),
        Request::GetKeyPolicy(r) => json!({"keyId": r.key_id, "policyName": r.policy_name}),
        Request::ListKeys(r)
        | Request::ListKeyPolicies(r)
        | Request::ListResourceTags(r)
        | Request::ListAliases(r) => {
            json!({"keyId": r.key_id, "limit": r.limit, "marker": r.marker})
        }
        Request::TagResource(r) => json!({"keyId": r.key_id}),
        Request::UntagResource(r) => json!({"keyId": r.key_id, "tagKeys": r.tag_keys}),
        Request::CreateAlias(r) | Request::UpdateAlias(r) => json!({
            "aliasName": r.alias_name,
            "targetKeyId": r.target_key_id,
        }),
        Request::DeleteAlias(r) => json!({"aliasName": r.alias_name}),
        Request::Refused(r) => json!({"keyId": r.key_id}),
        Request::CreateGrant(r) => json!({
            "keyId": r.key_id,
            "granteePrincipal": r.grantee_principal,
            "retiringPrincipal": r.retiring_principal,
            "operations": r.operations,
            "name": r.name,
        }),
        Request::ListGrants(r) => json!({
            "keyId": r.key_id,
            "grantId": r.grant_id,
            "granteePrincipal": r.grantee_principal,
            "limit": r.limit,
            "marker": r.marker,
        }),
        Request::ListRetirableGrants(r) => json!({
            "retiringPrincipal": r.retiring_principal,
            "limit": r.limit,
            "marker": r.marker,
        }),
        Request::RetireGrant(r) => json!({"keyId": r.key_id, "grantId": r.grant_id}),
        Request::RevokeGrant(r) => json!({"keyId": r.key_id, "grantId": r.grant_id}),
        _ => json!({}),
    }
}

/// An error message without the password the request carried (should a message ever quote
/// it).
fn redacted(request: &Request, message: &str) -> String {
    let password = match request {
        Request::CreateCustomKeyStore(r) => r.key_store_password.as_ref(),
        Request::UpdateCustomKeyStore(r) => r.key_store_password.as_ref(),
        _ => None,
    };
    match password.map(|p| p.expose()).filter(|p| !p.is_empty()) {
        Some(p) if message.contains(p) => message.replace(p, "***"),
        _ => message.to_owned(),
    }
}

impl Kms {
    /// GetKeyLastUsage: the key's last successful cryptographic operation counted since this
    /// instance began tracking (the counters are written to the event log first, so a call
    /// that returned before this one is seen).
    pub fn get_key_last_usage(&self, req: &KeyIdRequest) -> Result<GetKeyLastUsageResponse> {
        let (id, created) = self.read(|tx| {
            let key = keys::resolve_id(tx.state, tx.scope, &req.key_id)?;
            keys::authorize(tx, key, Op::GetKeyLastUsage.action())?;
            Ok((key.id, key.created))
        })?;
        let mut core = self.shared.core()?;
        self.shared.flush_data_plane(&mut core);
        let key_last_usage = core.last_usage.get(&id).map(|&(op, at)| KeyLastUsage {
            operation: op.name().to_owned(),
            timestamp: at,
        });
        Ok(GetKeyLastUsageResponse {
            key_id: self.scope().key_arn(&id),
            key_last_usage,
            // Without data-plane counting nothing is tracked: tracking starts now, every time.
            tracking_start_date: match &self.shared.tally {
                Some(_) => core.tracking_since,
                None => self.shared.config.clock.now(),
            },
            key_creation_date: created,
        })
    }
}

impl Shared {
    /// Writes the data-plane counters as records: one per (operation, key, principal,
    /// outcome) counted since the last flush, at the time of this one.
    pub(super) fn flush_data_plane(&self, core: &mut Core) {
        let Some(tally) = &self.tally else {
            return;
        };
        let now = self.config.clock.now();
        let since = std::mem::replace(&mut core.tally_since, now);
        let counts = tally.drain();
        if counts.is_empty() {
            return;
        }
        let scope = &self.config.scope;
        for (key, c) in &counts {
            if c.outcome.is_none() {
                if let Ok(id) = scope.parse_key_id(key) {
                    core.last_usage.insert(id, (c.op, now));
                }
            }
        }
        if core.last_usage.len() > core.state.kms.keys.len() {
            // Deleted keys leave: the record never outgrows the keys there are.
            let keys = &core.state.kms.keys;
            core.last_usage.retain(|id, _| keys.contains_key(id));
        }
        let events: Vec<TrailEvent> = counts
            .into_iter()
            .map(|(key, c)| {
                let mut extra = key_store_data(core, scope, &key);
                extra["aggregated"] = json!({
                    "calls": c.calls,
                    "periodStart": cloudtrail::iso8601_seconds(since),
                    "periodEnd": cloudtrail::iso8601_seconds(now),
                });
                let mut detail = json!({
                    "requestParameters": {"keyId": &*key},
                    "responseElements": null,
                    "additionalEventData": extra,
                });
                if let Some(kind) = c.outcome {
                    detail["errorCode"] = json!(kind.aws_name());
                    detail["errorMessage"] = json!(format!(
                        "{} of {} calls failed with {}",
                        c.calls,
                        c.calls,
                        kind.aws_name()
                    ));
                }
                TrailEvent {
                    time: now,
                    event_name: c.op.name().to_owned(),
                    principal: c.principal.to_string(),
                    detail: detail.to_string(),
                }
            })
            .collect();
        let _ = core.events.append_unjournaled(events, now);
    }
}

/// `customKeyStoreId`, `clusterId` and `backingKey` of a key in a custom key store, as
/// CloudTrail's `additionalEventData` shows them; `{}` for another key or a reference that
/// names none.
fn key_store_data(core: &Core, scope: &crate::types::Scope, key: &str) -> Value {
    let kms = &core.state.kms;
    let Some(key) = keys::resolve(kms, scope, key).ok() else {
        return json!({});
    };
    match &key.backing {
        Backing::CloudHsm {
            store,
            handle,
            backing_key_id,
        } => json!({
            "customKeyStoreId": store.as_str(),
            "clusterId": kms.stores.get(store).map(|s| s.cluster_id.to_string()),
            "backingKey": json!({"keyHandle": handle.to_string(), "backingKeyId": backing_key_id}).to_string(),
        }),
        Backing::Default { .. } | Backing::External(_) => json!({}),
    }
}

/// The counters of data-plane calls, when the configuration records them.
pub(super) fn tally_for(config: &super::KmsConfig) -> Option<super::tally::Tally> {
    config
        .data_plane_event_interval
        .map(|_| super::tally::Tally::new())
}
