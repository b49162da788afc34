//! The KMS event log as operations return it (what CloudTrail records for KMS).

use super::*;

/// The KMS event log (what CloudTrail's LookupEvents would show).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "PascalCase")]
pub struct LookupEventsResponse {
    /// Events, oldest first.
    pub events: Vec<TrailEvent>,
}

/// One entry of the KMS event log (what CloudTrail records for KMS). Never holds secrets.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
pub struct TrailEvent {
    /// Time.
    pub time: Timestamp,
    /// Operation name, e.g. `CreateKey`, or `DeleteKey` for the deletion at window end.
    pub event_name: String,
    /// The principal, or `AWS Internal` for service events.
    pub principal: String,
    /// Request parameters and additional event data as JSON text (no secrets).
    pub detail: String,
}
