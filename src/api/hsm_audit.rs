//! The hash chain that makes each HSM's audit stream tamper-evident, and its verifier.
//!
//! Why here, in `api`: the chain is part of what an audit record *is* (its `previous_hash` and
//! `hash` members travel in every AuditLog response and every exported line), and a client must
//! be able to check a stream without the server — the CLI's `cloudhsm audit verify` does so, and
//! so can any program linking the library. The simulated HSMs (`hsm`, above this layer) write
//! the chain with the same two functions the verifier uses: [`canonical_encoding`] and
//! [`record_hash`]. `docs/hsm-audit.md` describes the format for readers outside Rust.
//!
//! * **Canonical encoding** of a record ([`canonical_encoding`]): a fixed binary layout, every
//!   integer big-endian — `sequence` u64, `reboot_counter` u32, `time` i64 (milliseconds since
//!   the Unix epoch), `opcode_id` u32, `opcode` and `response` each as a u32 byte length and
//!   their UTF-8 bytes, `user` as byte 0 (absent) or byte 1 and a length-prefixed string,
//!   `key_handle` as byte 0 or byte 1 and a u64, then the 32 bytes of `previous_hash`. The
//!   record's own `hash` is not part of it.
//! * **Record hash**: SHA-256 of the canonical encoding ([`record_hash`]).
//! * **Chain**: record *n* carries in `previous_hash` the hash of record *n − 1*; record 0
//!   carries the **genesis** value, SHA-256 of the HSM id's ASCII text ([`genesis_hash`]), so a
//!   stream cannot be passed off as another HSM's.
//! * **Verification** ([`verify_stream`]) walks the stream from record 0 and stops at the first
//!   break, which it reports as a [`ChainBreak`]: the sequence number and the [`BreakKind`].
//!
//! What a chain cannot show: records cut off the *end* of a stream, or a stream whose every hash
//! after some point was recomputed. Against those, keep the [`StreamVerdict::head_hash`] a
//! verification reports somewhere the HSM's host cannot write, and compare later.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::hsm::AuditEvent;
use crate::types::HsmId;

/// A SHA-256 value in an audit record. In JSON it is 64 lowercase hex digits; in binary
/// encodings, the 32 bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, bincode::Encode, bincode::Decode)]
pub struct AuditHash(pub [u8; 32]);

impl AuditHash {
    /// All zeros: the value a writer puts in a record before the stream assigns the real ones.
    pub const ZERO: AuditHash = AuditHash([0; 32]);

    /// Parses 64 hex digits (either case), and nothing else: `u8::from_str_radix` alone
    /// would also take a sign (`+a` for `0a`), a second spelling of the same hash.
    pub fn from_hex(text: &str) -> Option<AuditHash> {
        if text.len() != 64 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(AuditHash(out))
    }
}

impl fmt::Display for AuditHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for AuditHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for AuditHash {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.collect_str(self)
        } else {
            self.0.serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for AuditHash {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<AuditHash, D::Error> {
        if d.is_human_readable() {
            let text = String::deserialize(d)?;
            AuditHash::from_hex(&text).ok_or_else(|| {
                serde::de::Error::custom(format!("{text:?} is not 64 hex digits (a SHA-256)"))
            })
        } else {
            <[u8; 32]>::deserialize(d).map(AuditHash)
        }
    }
}

fn sha256(bytes: &[u8]) -> AuditHash {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    AuditHash(out)
}

/// The `previous_hash` of an HSM's first record: SHA-256 of the HSM id's text.
pub fn genesis_hash(hsm: &HsmId) -> AuditHash {
    sha256(hsm.as_str().as_bytes())
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    // Audit strings are opcode names, responses and user names: far below 4 GiB.
    let len = u32::try_from(s.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// The bytes a record's hash is taken over (the layout is in the module doc). Every member but
/// `hash` takes part, `previous_hash` included: that is what links the chain.
pub fn canonical_encoding(event: &AuditEvent) -> Vec<u8> {
    let mut out = Vec::with_capacity(96 + event.opcode.len() + event.response.len());
    out.extend_from_slice(&event.sequence.to_be_bytes());
    out.extend_from_slice(&event.reboot_counter.to_be_bytes());
    out.extend_from_slice(&event.time.0.to_be_bytes());
    out.extend_from_slice(&event.opcode_id.to_be_bytes());
    put_str(&mut out, &event.opcode);
    put_str(&mut out, &event.response);
    match &event.user {
        None => out.push(0),
        Some(user) => {
            out.push(1);
            put_str(&mut out, user);
        }
    }
    match event.key_handle {
        None => out.push(0),
        Some(handle) => {
            out.push(1);
            out.extend_from_slice(&handle.to_be_bytes());
        }
    }
    out.extend_from_slice(&event.previous_hash.0);
    out
}

/// SHA-256 of the record's [`canonical_encoding`]: what its `hash` member must hold and what
/// the next record's `previous_hash` must hold.
pub fn record_hash(event: &AuditEvent) -> AuditHash {
    sha256(&canonical_encoding(event))
}

/// How a chain was broken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BreakKind {
    /// A record is missing: the sequence numbers skip the reported one, and it appears nowhere
    /// later in the stream.
    Removed,
    /// Records are out of order: the reported sequence number is not where it belongs (it
    /// appears later, or a lower one appears where it should be).
    Reordered,
    /// A record's content changed: its sequence number is in place, but its hash does not
    /// match its content, or the next record's `previous_hash` no longer matches it.
    Edited,
}

/// Where and how a stream's chain breaks (the first break; what follows it is not trusted).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ChainBreak {
    /// For [`BreakKind::Removed`], the first missing sequence number; for
    /// [`BreakKind::Reordered`], the sequence number expected where the order breaks; for
    /// [`BreakKind::Edited`], the sequence number of the edited record.
    pub sequence: u64,
    /// What happened.
    pub kind: BreakKind,
}

/// The result of verifying one HSM's stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StreamVerdict {
    /// The HSM.
    pub hsm_id: HsmId,
    /// How many records the stream has.
    pub records: u64,
    /// The hash of the last record (the genesis value for an empty stream): record it elsewhere
    /// to detect later truncation or wholesale rewriting.
    pub head_hash: AuditHash,
    /// The first break, if the chain is broken.
    #[serde(rename = "Break", default, skip_serializing_if = "Option::is_none")]
    pub chain_break: Option<ChainBreak>,
}

impl StreamVerdict {
    /// Whether the chain holds from the genesis to the last record.
    pub fn is_intact(&self) -> bool {
        self.chain_break.is_none()
    }
}

/// Verifies one HSM's stream, as given (in the order given): see the module doc.
pub fn verify_stream(hsm: &HsmId, events: &[AuditEvent]) -> StreamVerdict {
    let mut verdict = StreamVerdict {
        hsm_id: hsm.clone(),
        records: events.len() as u64,
        head_hash: genesis_hash(hsm),
        chain_break: None,
    };
    let mut previous = verdict.head_hash;
    for (i, event) in events.iter().enumerate() {
        let expected = i as u64;
        let found = |kind| ChainBreak {
            sequence: expected,
            kind,
        };
        if event.sequence != expected {
            let later = events[i + 1..].iter().any(|e| e.sequence == expected);
            verdict.chain_break = Some(if event.sequence > expected && !later {
                found(BreakKind::Removed)
            } else {
                found(BreakKind::Reordered)
            });
            break;
        }
        let hash = record_hash(event);
        if event.hash != hash {
            verdict.chain_break = Some(found(BreakKind::Edited));
            break;
        }
        if event.previous_hash != previous {
            // This record is intact, so what it committed to changed: the record before it
            // (or, for record 0, its link to the genesis).
            verdict.chain_break = Some(ChainBreak {
                sequence: expected.saturating_sub(1),
                kind: BreakKind::Edited,
            });
            break;
        }
        previous = hash;
    }
    verdict.head_hash = events.last().map_or(verdict.head_hash, |e| e.hash);
    verdict
}

/// Verifies records of any number of HSMs (as read from an export: each with its HSM),
/// grouped by HSM in order of first appearance, each group in the order given.
///
/// A verdict is only for a stream that is there: no records give no verdict (nothing was
/// verified), and a stream left out whole gives none either, as a chain cannot show it. A
/// caller that reports "all intact" must check that it has the streams it expects.
pub fn verify_records(
    records: impl IntoIterator<Item = (HsmId, AuditEvent)>,
) -> Vec<StreamVerdict> {
    let mut streams: Vec<(HsmId, Vec<AuditEvent>)> = Vec::new();
    for (hsm, event) in records {
        match streams.iter_mut().find(|(h, _)| *h == hsm) {
            Some((_, events)) => events.push(event),
            None => streams.push((hsm, vec![event])),
        }
    }
    streams
        .iter()
        .map(|(hsm, events)| verify_stream(hsm, events))
        .collect()
}

/// One line of an exported audit stream (`kmscks cloudhsm audit export`): the HSM and the
/// record's members, hashes included.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditRecordLine {
    /// The HSM whose stream the record belongs to.
    pub hsm_id: HsmId,
    /// The record.
    #[serde(flatten)]
    pub event: AuditEvent,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Timestamp;

    /// A stream of `n` records chained as the HSM writes them.
    fn chained(hsm: &HsmId, n: u64) -> Vec<AuditEvent> {
        let mut out: Vec<AuditEvent> = Vec::new();
        for sequence in 0..n {
            let mut event = AuditEvent {
                sequence,
                time: Timestamp(1_700_000_000_000 + sequence as i64),
                opcode: "CN_LOGIN".into(),
                opcode_id: 0xd,
                response: "SUCCESS".into(),
                user: Some("kmsuser".into()),
                key_handle: (sequence % 2 == 0).then_some(262_145 + sequence),
                reboot_counter: 0,
                previous_hash: out.last().map_or_else(|| genesis_hash(hsm), |e| e.hash),
                hash: AuditHash::ZERO,
            };
            event.hash = record_hash(&event);
            out.push(event);
        }
        out
    }

    fn broken_at(events: &[AuditEvent], hsm: &HsmId) -> Option<ChainBreak> {
        verify_stream(hsm, events).chain_break
    }

    #[test]
    fn a_hash_is_read_from_64_hex_digits_only() {
        let hash = record_hash(&chained(&HsmId::generate(), 1)[0]);
        let text = hash.to_string();
        assert_eq!(AuditHash::from_hex(&text), Some(hash));
        assert_eq!(AuditHash::from_hex(&text.to_uppercase()), Some(hash));
        // A sign is not a hex digit, though `from_str_radix` takes one: `+a` is not `0a`.
        let signed = format!("+{}", &text[1..]);
        assert_eq!(AuditHash::from_hex(&signed), None, "{signed}");
        assert_eq!(AuditHash::from_hex(&text[1..]), None, "63 digits");
        assert_eq!(AuditHash::from_hex(&format!("{text}0")), None, "65 digits");
        assert_eq!(AuditHash::from_hex(&format!("g{}", &text[1..])), None);
    }

    #[test]
    fn a_stream_as_written_verifies_and_reports_its_head() {
        let hsm = HsmId::generate();
        let events = chained(&hsm, 5);
        let v = verify_stream(&hsm, &events);
        assert!(v.is_intact(), "{v:?}");
        assert_eq!(v.records, 5);
        assert_eq!(v.head_hash, events[4].hash);
        let empty = verify_stream(&hsm, &[]);
        assert!(empty.is_intact());
        assert_eq!(empty.head_hash, genesis_hash(&hsm));
    }

    #[test]
    fn a_removed_record_is_reported_at_its_sequence_number() {
        let hsm = HsmId::generate();
        let mut events = chained(&hsm, 6);
        events.remove(3);
        let b = broken_at(&events, &hsm).expect("broken");
        assert_eq!((b.sequence, b.kind), (3, BreakKind::Removed));
        let mut events = chained(&hsm, 6);
        events.remove(0);
        let b = broken_at(&events, &hsm).expect("broken");
        assert_eq!((b.sequence, b.kind), (0, BreakKind::Removed));
    }

    #[test]
    fn two_swapped_records_are_reported_as_reordered_at_the_first() {
        let hsm = HsmId::generate();
        let mut events = chained(&hsm, 6);
        events.swap(2, 3);
        let b = broken_at(&events, &hsm).expect("broken");
        assert_eq!((b.sequence, b.kind), (2, BreakKind::Reordered));
    }

    #[test]
    fn an_edited_field_is_reported_at_the_edited_record() {
        let hsm = HsmId::generate();
        let mut events = chained(&hsm, 6);
        events[4].user = Some("mallory".into());
        let b = broken_at(&events, &hsm).expect("broken");
        assert_eq!((b.sequence, b.kind), (4, BreakKind::Edited));
        // An editor who also recomputes the record's own hash is caught by the next link.
        events[4].hash = record_hash(&events[4]);
        let b = broken_at(&events, &hsm).expect("broken");
        assert_eq!((b.sequence, b.kind), (4, BreakKind::Edited));
        // Every member counts, the reboot counter and the time included.
        for edit in [
            (|e: &mut AuditEvent| e.reboot_counter += 1) as fn(&mut AuditEvent),
            |e| e.time = Timestamp(e.time.0 + 1),
            |e| e.key_handle = Some(1),
            |e| e.opcode_id = 0x11,
        ] {
            let mut events = chained(&hsm, 3);
            edit(&mut events[1]);
            assert_eq!(
                broken_at(&events, &hsm),
                Some(ChainBreak {
                    sequence: 1,
                    kind: BreakKind::Edited
                })
            );
        }
    }

    #[test]
    fn a_stream_does_not_verify_as_another_hsms() {
        let hsm = HsmId::generate();
        let events = chained(&hsm, 2);
        let b = broken_at(&events, &HsmId::generate()).expect("broken");
        assert_eq!((b.sequence, b.kind), (0, BreakKind::Edited));
    }

    #[test]
    fn records_of_several_hsms_are_verified_per_hsm_in_order_of_appearance() {
        let (a, b) = (HsmId::generate(), HsmId::generate());
        let mut ea = chained(&a, 3);
        ea.swap(0, 1);
        let eb = chained(&b, 2);
        let lines = eb
            .iter()
            .map(|e| (b.clone(), e.clone()))
            .chain(ea.iter().map(|e| (a.clone(), e.clone())));
        let verdicts = verify_records(lines);
        assert_eq!(verdicts.len(), 2);
        assert_eq!(verdicts[0].hsm_id, b);
        assert!(verdicts[0].is_intact());
        assert_eq!(
            verdicts[1].chain_break,
            Some(ChainBreak {
                sequence: 0,
                kind: BreakKind::Reordered
            })
        );
    }

    #[test]
    fn an_exported_line_round_trips_through_json_with_hex_hashes() {
        let hsm = HsmId::generate();
        let event = chained(&hsm, 1).remove(0);
        let line = AuditRecordLine {
            hsm_id: hsm.clone(),
            event,
        };
        let text = serde_json::to_string(&line).unwrap();
        assert!(
            text.contains(&format!("\"previous_hash\":\"{}\"", genesis_hash(&hsm))),
            "{text}"
        );
        let back: AuditRecordLine = serde_json::from_str(&text).unwrap();
        assert_eq!(back, line);
        assert_eq!(record_hash(&back.event), back.event.hash);
    }
}
