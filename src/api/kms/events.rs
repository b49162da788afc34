//! The KMS event log as operations return it: CloudTrail's records of KMS calls (spec §8.1),
//! looked up a page at a time as CloudTrail's LookupEvents pages them.

use super::*;

/// The most records one LookupEvents page holds (CloudTrail's `MaxResults` limit), and the
/// default.
pub const LOOKUP_EVENTS_MAX_RESULTS: u32 = 50;
/// The `MaxResults` a LookupEvents request may ask for.
pub const LOOKUP_EVENTS_MAX_RESULTS_RANGE: (u32, u32) = (1, LOOKUP_EVENTS_MAX_RESULTS);

/// LookupEvents: which records, newest first, one page at a time.
#[derive(
    Clone, Debug, Default, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode,
)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct LookupEventsRequest {
    /// Only events at or after this time: ISO 8601 / RFC 3339 (`2026-12-03T11:18:03Z`,
    /// `2026-12-03T12:18:03+01:00`, `2026-12-03`), or seconds since the epoch (`1764760683`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    /// Only events at or before this time (same forms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<String>,
    /// Only events of this operation, e.g. `CreateKey`, `Encrypt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_name: Option<String>,
    /// At most this many records (1–50, default 50).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_results: Option<u32>,
    /// The `NextToken` of the previous page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

/// LookupEvents: a page of CloudTrail records, newest first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "PascalCase")]
pub struct LookupEventsResponse {
    /// The records, newest first.
    pub events: Vec<CloudTrailRecord>,
    /// Where the next page starts; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

/// One CloudTrail record of a KMS call (`eventVersion`, `eventTime`, `eventSource`,
/// `eventName`, `userIdentity`, `requestParameters`, … as `docs/events.md` lists them), kept
/// as its JSON text and serialized as the JSON object itself. Never holds secrets.
#[derive(Clone, Debug, PartialEq, bincode::Encode, bincode::Decode)]
pub struct CloudTrailRecord(pub String);

impl CloudTrailRecord {
    /// The record as JSON text.
    pub fn json(&self) -> &str {
        &self.0
    }

    /// The record as a JSON value (`Null` if the text were not JSON, which kmscks never makes).
    pub fn value(&self) -> serde_json::Value {
        serde_json::from_str(&self.0).unwrap_or(serde_json::Value::Null)
    }
}

impl Serialize for CloudTrailRecord {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.value().serialize(s)
    }
}

impl<'de> Deserialize<'de> for CloudTrailRecord {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<CloudTrailRecord, D::Error> {
        serde_json::Value::deserialize(d).map(|v| CloudTrailRecord(v.to_string()))
    }
}

/// One entry of the KMS event log as the files hold it (see `docs/events.md`). Never holds
/// secrets.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
pub struct TrailEvent {
    /// Time.
    pub time: Timestamp,
    /// Operation name, e.g. `CreateKey`, or `DeleteKey` for the deletion at window end.
    pub event_name: String,
    /// The principal, or `AWS Internal` for service events.
    pub principal: String,
    /// Request parameters, response elements, error and additional event data as JSON text
    /// (no secrets).
    pub detail: String,
}
