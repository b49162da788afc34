//! The CloudTrail view of the KMS event log: each line of the files (`event_log`) shown as the
//! record CloudTrail delivers for a KMS call (spec §8.1), and the parameters of a lookup
//! (times as the `aws` CLI takes them, the page token).
//!
//! Why a view and not a format: the files stay the one log (journaled with the state, cut at
//! recovery, rotated and expired); what CloudTrail adds — `eventID`, `requestID`,
//! `userIdentity`, `readOnly`, `resources`, `recipientAccountId` — is derived from the line and
//! the instance's account and Region, the same every time it is read. The record members are
//! documented in `docs/events.md`.

use serde_json::{json, Map, Value};

use super::event_line::{self, Entry};
use crate::kms::trail::SERVICE_PRINCIPAL;
use crate::types::{Scope, Timestamp};
use crate::{err, Result};

/// CloudTrail's record version of the records shown.
pub const EVENT_VERSION: &str = "1.08";

/// The CloudTrail record of one line, as JSON.
pub fn record(entry: &Entry, scope: &Scope) -> Value {
    let e = &entry.event;
    let detail: Value = serde_json::from_str(&e.detail).unwrap_or(Value::Null);
    let member = |name: &str| detail.get(name).cloned();
    let mut r = Map::new();
    r.insert("eventVersion".into(), json!(EVENT_VERSION));
    r.insert("userIdentity".into(), user_identity(&e.principal, scope));
    r.insert(
        "eventTime".into(),
        json!(iso8601_seconds(e.time)),
    );
    r.insert("eventSource".into(), json!(event_line::EVENT_SOURCE));
    r.insert("eventName".into(), json!(e.event_name));
    r.insert("awsRegion".into(), json!(scope.region));
    let source = if e.principal == SERVICE_PRINCIPAL {
        SERVICE_PRINCIPAL
    } else {
        "kmscks"
    };
    r.insert("sourceIPAddress".into(), json!(source));
    if let Some(code) = member("errorCode") {
        r.insert("errorCode".into(), code);
        r.insert(
            "errorMessage".into(),
            member("errorMessage").unwrap_or(Value::Null),
        );
    }
    let request = member("requestParameters").unwrap_or(Value::Null);
    r.insert("requestParameters".into(), request.clone());
    r.insert(
        "responseElements".into(),
        member("responseElements").map_or(Value::Null, lower_camel_keys),
    );
    if let Some(extra) = member("additionalEventData").filter(|v| !v.is_null()) {
        r.insert("additionalEventData".into(), extra);
    }
    r.insert("requestID".into(), json!(guid("request", entry)));
    r.insert("eventID".into(), json!(guid("event", entry)));
    r.insert("readOnly".into(), json!(read_only(&e.event_name)));
    let resources: Vec<Value> = key_arn(&detail, scope)
        .map(|arn| json!({"accountId": scope.account_id, "type": "AWS::KMS::Key", "ARN": arn}))
        .into_iter()
        .collect();
    r.insert("resources".into(), json!(resources));
    let event_type = member("eventType").unwrap_or_else(|| json!("AwsApiCall"));
    r.insert("eventType".into(), event_type);
    r.insert("managementEvent".into(), json!(true));
    r.insert("recipientAccountId".into(), json!(scope.account_id));
    r.insert("eventCategory".into(), json!("Management"));
    Value::Object(r)
}

/// `v` with every object member's first letter in lower case, as CloudTrail writes the KMS API's
/// response shapes (`KeyMetadata.AWSAccountId` becomes `keyMetadata.aWSAccountId`).
fn lower_camel_keys(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .map(|(k, v)| {
                    let mut c = k.chars();
                    let k = match c.next() {
                        Some(first) => first.to_lowercase().chain(c).collect(),
                        None => k,
                    };
                    (k, lower_camel_keys(v))
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(lower_camel_keys).collect()),
        other => other,
    }
}

/// `userIdentity` from the principal's ARN: the account root, an IAM user (over the socket,
/// `user/uid-<N>`), or KMS itself.
fn user_identity(principal: &str, scope: &Scope) -> Value {
    if principal == SERVICE_PRINCIPAL {
        return json!({"accountId": scope.account_id, "invokedBy": SERVICE_PRINCIPAL});
    }
    // arn:aws:iam::<account>:<resource>
    let mut parts = principal.splitn(6, ':');
    let (account, resource) = match (parts.nth(4), parts.next()) {
        (Some(a), Some(r)) if principal.starts_with("arn:aws:iam::") => (a, r),
        _ => return json!({"type": "Unknown", "principalId": principal, "arn": principal}),
    };
    if resource == "root" {
        return json!({"type": "Root", "principalId": account, "arn": principal, "accountId": account});
    }
    let (kind, name) = resource.split_once('/').unwrap_or(("user", resource));
    let kind = match kind {
        "user" => "IAMUser",
        "role" | "assumed-role" => "AssumedRole",
        _ => "Unknown",
    };
    let name = name.rsplit('/').next().unwrap_or(name);
    json!({"type": kind, "principalId": name, "arn": principal, "accountId": account, "userName": name})
}

/// Whether CloudTrail marks the operation read-only: reads, and the cryptographic operations
/// (they change no resource).
fn read_only(event_name: &str) -> bool {
    ["Describe", "List", "Get", "Encrypt", "Decrypt", "ReEncrypt", "GenerateDataKey", "GenerateRandom"]
        .iter()
        .any(|p| event_name.starts_with(p))
        && event_name != "GetParametersForImport"
}

/// The KMS key the event is about, as an ARN, if it names one.
fn key_arn(detail: &Value, scope: &Scope) -> Option<String> {
    let candidates = [
        &detail["responseElements"]["keyMetadata"]["Arn"],
        &detail["responseElements"]["keyId"],
        &detail["requestParameters"]["keyId"],
        &detail["requestParameters"]["targetKeyId"],
    ];
    candidates.iter().filter_map(|v| v.as_str()).find_map(|k| {
        if k.starts_with("arn:aws:kms:") && k.contains(":key/") {
            Some(k.to_owned())
        } else if !k.is_empty() && !k.starts_with("alias/") && !k.starts_with("arn:") {
            crate::types::KeyId::parse(k).map(|id| scope.key_arn(&id))
        } else {
            None
        }
    })
}

/// A stable GUID for the line (CloudTrail's `eventID` and `requestID` are random GUIDs; these
/// are the same every time the line is read, and differ between lines and between the two).
fn guid(what: &str, entry: &Entry) -> String {
    let digest = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        format!(
            "kmscks {what} {} {} {}",
            entry.seq,
            entry.event.time.millis(),
            entry.event.event_name
        )
        .as_bytes(),
    );
    let mut b = [0u8; 16];
    b.copy_from_slice(&digest.as_ref()[..16]);
    // A version 8 (custom) RFC 9562 UUID.
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    uuid::Uuid::from_bytes(b).to_string()
}

/// `t` as ISO 8601 in UTC to the second, as CloudTrail writes `eventTime`:
/// `2026-12-03T11:18:03Z`.
pub fn iso8601_seconds(t: Timestamp) -> String {
    let with_millis = event_line::rfc3339(t);
    // `YYYY-MM-DDTHH:MM:SS.mmmZ` → `YYYY-MM-DDTHH:MM:SSZ`
    format!("{}Z", &with_millis[..19])
}

/// Parses a lookup time as the `aws` CLI takes one ([`Timestamp::parse_cli`]). `member` names
/// the request member in the error.
pub fn parse_time(text: &str, member: &str) -> Result<Timestamp> {
    Timestamp::parse_cli(text.trim()).ok_or_else(|| {
        err!(
            ValidationException,
            "{member} {text:?} is not a time: use ISO 8601 (2026-12-03T11:18:03Z) or seconds \
             since the epoch"
        )
    })
}

/// The `NextToken` of a page that continues below line `seq`.
pub fn token(seq: u64) -> String {
    format!("kmscks-events-{seq}")
}

/// The line a `NextToken` continues below.
pub fn parse_token(text: &str) -> Result<u64> {
    text.strip_prefix("kmscks-events-")
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| {
            err!(
                InvalidMarkerException,
                "NextToken {text:?} is not one LookupEvents returned"
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::kms::TrailEvent;

    fn entry(name: &str, principal: &str, detail: Value) -> Entry {
        Entry {
            seq: 3,
            journal_seq: 2,
            journaled: true,
            event: TrailEvent {
                time: Timestamp(1_764_760_683_042),
                event_name: name.into(),
                principal: principal.into(),
                detail: detail.to_string(),
            },
        }
    }

    #[test]
    fn a_record_has_cloudtrails_members_for_a_kms_call() {
        let scope = Scope::default();
        let arn = scope.key_arn(&crate::types::KeyId::parse("1234abcd-12ab-34cd-56ef-1234567890ab").unwrap());
        let e = entry(
            "DisableKey",
            "arn:aws:iam::111122223333:user/uid-1000",
            json!({"requestParameters": {"keyId": arn}}),
        );
        let r = record(&e, &scope);
        assert_eq!(r["eventVersion"], EVENT_VERSION);
        assert_eq!(r["eventTime"], "2025-12-03T11:18:03Z");
        assert_eq!(r["eventSource"], "kms.amazonaws.com");
        assert_eq!(r["awsRegion"], "us-east-1");
        assert_eq!(r["userIdentity"]["type"], "IAMUser");
        assert_eq!(r["userIdentity"]["principalId"], "uid-1000");
        assert_eq!(r["userIdentity"]["accountId"], "111122223333");
        assert_eq!(r["readOnly"], false);
        assert_eq!(r["eventType"], "AwsApiCall");
        assert_eq!(r["recipientAccountId"], "111122223333");
        assert_eq!(r["resources"][0]["ARN"], arn.as_str());
        assert_eq!(r["resources"][0]["type"], "AWS::KMS::Key");
        assert!(r.get("errorCode").is_none());
        assert_eq!(record(&e, &scope)["eventID"], r["eventID"], "stable");
        assert_ne!(r["eventID"], r["requestID"]);
        let mut other = e.clone();
        other.seq += 1;
        assert_ne!(record(&other, &scope)["eventID"], r["eventID"]);
    }

    #[test]
    fn the_root_and_kms_itself_are_identified_as_cloudtrail_identifies_them() {
        let scope = Scope::default();
        let root = record(&entry("CreateKey", &scope.root_principal(), json!({})), &scope);
        assert_eq!(root["userIdentity"]["type"], "Root");
        assert_eq!(root["userIdentity"]["principalId"], "111122223333");
        let internal = record(
            &entry("DeleteKey", SERVICE_PRINCIPAL, json!({"eventType": "AwsServiceEvent"})),
            &scope,
        );
        assert_eq!(internal["userIdentity"]["invokedBy"], "AWS Internal");
        assert_eq!(internal["eventType"], "AwsServiceEvent");
        let failed = record(
            &entry("Encrypt", &scope.root_principal(), json!({"errorCode": "NotFoundException", "errorMessage": "no"})),
            &scope,
        );
        assert_eq!(failed["errorCode"], "NotFoundException");
        assert_eq!(failed["errorMessage"], "no");
        assert_eq!(failed["readOnly"], true);
    }

    #[test]
    fn lookup_times_take_iso_8601_and_epoch_seconds() {
        let t = Timestamp(1_764_760_683_000);
        for text in [
            "2025-12-03T11:18:03Z",
            "2025-12-03T11:18:03",
            "2025-12-03 11:18:03Z",
            "2025-12-03T12:18:03+01:00",
            "2025-12-03T06:18:03-05:00",
            "2025-12-03T11:18:03.000Z",
            "1764760683",
        ] {
            assert_eq!(parse_time(text, "StartTime").unwrap(), t, "{text}");
        }
        assert_eq!(parse_time("1764760683.5", "StartTime").unwrap(), Timestamp(1_764_760_683_500));
        assert_eq!(parse_time("2025-12-03T11:18:03.042Z", "x").unwrap(), Timestamp(1_764_760_683_042));
        assert_eq!(parse_time("2025-12-03T11:18Z", "x").unwrap(), Timestamp(1_764_760_680_000));
        assert_eq!(parse_time("2025-12-03", "x").unwrap(), Timestamp(1_764_720_000_000));
        for bad in ["", "yesterday", "2025-13-03", "2025-12-03T25:00Z", "12:00"] {
            let e = parse_time(bad, "EndTime").unwrap_err();
            assert!(e.message().contains("EndTime"), "{bad}: {e}");
        }
    }

    #[test]
    fn tokens_round_trip_and_foreign_ones_are_refused() {
        assert_eq!(parse_token(&token(42)).unwrap(), 42);
        assert!(parse_token("42").is_err());
    }
}
