//! One line of the KMS event log files: a [`TrailEvent`] with its place in the log as one JSON
//! object (CloudTrail-like member names), and back.
//!
//! Why a format of its own: the files are read by other tools (the CloudTrail view of the
//! fault/audit work, `jq`, an operator's `grep`), so each event is a self-contained JSON object
//! on one line, with an RFC 3339 time rather than the protocol's epoch milliseconds. The members
//! are documented in `docs/events.md`; this file is their one definition.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::api::kms::TrailEvent;
use crate::types::Timestamp;

/// The service every event comes from, as CloudTrail names it (`eventSource`).
pub const EVENT_SOURCE: &str = "kms.amazonaws.com";

/// One line of the log: an event and where it stands.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// The line's place in the log: 0 for the first line of a data directory, then +1 per line
    /// (journaled or not). Files are named after the `seq` of their first line.
    pub seq: u64,
    /// For a journaled event, its number among journaled events (the state's
    /// `next_event_seq` numbering, the same after every replay). For an event that is not
    /// journaled (a failed call, a data-plane aggregate), the number the next journaled event
    /// gets: where it stands relative to the journal, which recovery cuts by.
    pub journal_seq: u64,
    /// Whether a journal record holds the event (`false`: written only here, see
    /// `docs/events.md`).
    pub journaled: bool,
    /// The event.
    pub event: TrailEvent,
}

fn yes() -> bool {
    true
}

fn is_yes(b: &bool) -> bool {
    *b
}

/// The JSON object of one line. Member order is the order written.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Line {
    /// [`Entry::seq`].
    event_seq: u64,
    /// [`Entry::journal_seq`].
    journal_seq: u64,
    /// [`Entry::journaled`]; written only when `false`.
    #[serde(default = "yes", skip_serializing_if = "is_yes")]
    journaled: bool,
    /// When the operation was committed, RFC 3339 in UTC with milliseconds.
    event_time: String,
    /// Always [`EVENT_SOURCE`].
    event_source: String,
    /// The operation, e.g. `CreateKey`.
    event_name: String,
    /// Who called, or `AWS Internal` for what KMS does by itself.
    principal: String,
    /// Request parameters and additional event data, as a nested JSON object.
    detail: serde_json::Value,
}

/// The line (with its `\n`) of `entry`.
pub fn render(entry: &Entry) -> String {
    let event = &entry.event;
    // `detail` is always the text of a JSON value (`kms::trail` writes it from one); were it
    // not, it is kept as a JSON string rather than lost.
    let detail = serde_json::from_str(&event.detail)
        .unwrap_or_else(|_| serde_json::Value::String(event.detail.clone()));
    let line = Line {
        event_seq: entry.seq,
        journal_seq: entry.journal_seq,
        journaled: entry.journaled,
        event_time: rfc3339(event.time),
        event_source: EVENT_SOURCE.to_owned(),
        event_name: event.event_name.clone(),
        principal: event.principal.clone(),
        detail,
    };
    // Every member is a string, an integer or a JSON value: serializing cannot fail.
    let mut text = serde_json::to_string(&line).expect("an event line serializes");
    text.push('\n');
    text
}

/// Parses one line (without its `\n`) back into its entry; the error says what is wrong with
/// it.
pub fn parse(line: &[u8]) -> std::result::Result<Entry, String> {
    let l: Line = serde_json::from_slice(line).map_err(|e| e.to_string())?;
    if l.event_source != EVENT_SOURCE {
        return Err(format!("eventSource is {:?}", l.event_source));
    }
    let time = parse_rfc3339(&l.event_time)
        .ok_or_else(|| format!("eventTime {:?} is not RFC 3339 UTC", l.event_time))?;
    Ok(Entry {
        seq: l.event_seq,
        journal_seq: l.journal_seq,
        journaled: l.journaled,
        event: TrailEvent {
            time,
            event_name: l.event_name,
            principal: l.principal,
            detail: l.detail.to_string(),
        },
    })
}

/// `t` as RFC 3339 in UTC with milliseconds: `2026-12-03T11:18:03.042Z`.
pub fn rfc3339(t: Timestamp) -> String {
    let nanos = i128::from(t.millis()) * 1_000_000;
    // Out of `time`'s range (beyond year ±9999) only for a nonsensical clock: clamp to the epoch.
    let d = OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        d.year(),
        u8::from(d.month()),
        d.day(),
        d.hour(),
        d.minute(),
        d.second(),
        d.millisecond()
    )
}

/// Parses exactly what [`rfc3339`] writes.
pub fn parse_rfc3339(s: &str) -> Option<Timestamp> {
    let b = s.as_bytes();
    if b.len() != 24 || [b[4], b[7], b[10], b[13], b[16], b[19], b[23]] != *b"--T::.Z" {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<u32> {
        let digits = s.get(from..to)?;
        digits
            .bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| digits.parse().ok())?
    };
    let year = i32::try_from(num(0, 4)?).ok()?;
    let month = time::Month::try_from(u8::try_from(num(5, 7)?).ok()?).ok()?;
    let date = time::Date::from_calendar_date(year, month, u8::try_from(num(8, 10)?).ok()?).ok()?;
    let clock = time::Time::from_hms_milli(
        u8::try_from(num(11, 13)?).ok()?,
        u8::try_from(num(14, 16)?).ok()?,
        u8::try_from(num(17, 19)?).ok()?,
        u16::try_from(num(20, 23)?).ok()?,
    )
    .ok()?;
    let nanos = date.with_time(clock).assume_utc().unix_timestamp_nanos();
    i64::try_from(nanos / 1_000_000).ok().map(Timestamp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(millis: i64) -> TrailEvent {
        TrailEvent {
            time: Timestamp(millis),
            event_name: "CreateKey".into(),
            principal: "arn:aws:iam::111122223333:root".into(),
            detail: serde_json::json!({"keyId": "k", "n": 3, "ok": true}).to_string(),
        }
    }

    #[test]
    fn a_line_is_one_json_object_with_the_documented_members_and_parses_back() {
        let e = Entry {
            seq: 7,
            journal_seq: 5,
            journaled: true,
            event: event(1_764_760_683_042),
        };
        let line = render(&e);
        assert!(line.ends_with('\n') && !line[..line.len() - 1].contains('\n'));
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["eventSeq"], 7);
        assert_eq!(v["journalSeq"], 5);
        assert!(v.get("journaled").is_none(), "only the exception is marked");
        assert_eq!(v["eventTime"], "2025-12-03T11:18:03.042Z");
        assert_eq!(v["eventSource"], EVENT_SOURCE);
        assert_eq!(v["eventName"], "CreateKey");
        assert_eq!(v["principal"], "arn:aws:iam::111122223333:root");
        assert_eq!(v["detail"]["n"], 3, "detail is a nested object, not text");
        assert_eq!(parse(line.trim_end().as_bytes()).unwrap(), e);
    }

    #[test]
    fn a_line_not_journaled_carries_its_marker_and_parses_back() {
        let e = Entry {
            seq: 8,
            journal_seq: 6,
            journaled: false,
            event: event(1),
        };
        let line = render(&e);
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["journaled"], false);
        assert_eq!(parse(line.trim_end().as_bytes()).unwrap(), e);
    }

    #[test]
    fn times_round_trip_through_rfc3339_and_malformed_ones_are_refused() {
        for millis in [0, 1, 999, 86_399_999, 1_764_760_683_042, 4_102_444_800_000] {
            let t = Timestamp(millis);
            assert_eq!(parse_rfc3339(&rfc3339(t)), Some(t), "{}", rfc3339(t));
        }
        for bad in [
            "",
            "2025-12-03T11:18:03Z",
            "2025-12-03 11:18:03.042Z",
            "2025-13-03T11:18:03.042Z",
            "2025-12-03T11:18:03.04xZ",
            "+025-12-03T11:18:03.042Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_line_with_unknown_members_or_another_source_is_refused() {
        let line = render(&Entry {
            seq: 1,
            journal_seq: 1,
            journaled: true,
            event: event(0),
        });
        let mut v: serde_json::Value = serde_json::from_str(&line).unwrap();
        v["extra"] = 1.into();
        assert!(parse(v.to_string().as_bytes()).is_err());
        let mut v: serde_json::Value = serde_json::from_str(&line).unwrap();
        v["eventSource"] = "s3.amazonaws.com".into();
        assert!(parse(v.to_string().as_bytes()).unwrap_err().contains("eventSource"));
        assert!(parse(b"{\"eventSeq\":1").is_err());
    }
}
