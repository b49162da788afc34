//! The journal: `journal-<gen>.log`, an append-only file of framed records.
//!
//! Layout (all integers little-endian):
//!
//! ```text
//! file header (20 bytes): magic "KCKJ" | version u32 | generation u64 | crc32 of the 16 bytes before
//! frame (16-byte header + payload + 32-byte tag):
//!     magic u32 | payload length u32 | crc32(payload and tag) u32 | crc32(the 12 header bytes before) u32
//!     payload
//!     tag: HMAC-SHA256 of (generation, the frame's offset, magic, length, payload) (see `auth`)
//! ```
//!
//! A frame is either one record ([`RECORD_MAGIC`]) or a batch ([`BATCH_MAGIC`]) whose payload is
//! a sequence of `length u32 | bytes` sub-records, so a batch is recovered all or nothing.
//!
//! Recovery (`scan`): appends are fsynced one frame at a time, so only the last frame can be
//! torn. A frame that is incomplete or fails its checksums with no verifying frame after it is
//! a torn tail (the caller copies it aside, then truncates it away: a last record damaged
//! after it was acknowledged looks the same, so its bytes are kept as evidence); one followed
//! by a verifying frame is damage, and so is one whose header verifies (its length is genuine)
//! and whose payload does not while bytes follow it: it was whole once. A frame whose
//! checksums hold but whose tag does not was changed, not torn: damage wherever it is.

use std::path::Path;

use super::auth::{StoreAuth, TAG_LEN};
use crate::err;
use crate::Result;

/// Magic at the start of a journal file.
pub const JOURNAL_MAGIC: [u8; 4] = *b"KCKJ";
/// Data-directory format version this build writes and reads, in the header of every journal
/// and snapshot file. It covers both the framing here and the encoding of the payloads (the
/// control plane's `State`, `Change` and `Record`, and anything they hold): bump it whenever
/// either changes shape. Version 2: the state split into its CloudHSM and KMS halves.
/// Version 3: a key object's generation records the cluster's handle counter alone
/// (`HsmChange::SetNextHandle`), not the whole cluster. Version 4: the KMS state no longer
/// holds the event log (`trail`), only the next event's sequence number (`next_event_seq`);
/// the events live in `events/` beside the journal. Version 5: every journal frame and
/// snapshot carries an HMAC-SHA256 tag (`store::auth`), and HSM user password hashes are
/// stored wrapped. Version 6: HSM audit records are hash-chained (`reboot_counter`,
/// `previous_hash`, `hash`; see `api::hsm_audit`) and each HSM keeps its reboot counter; a
/// CloudHSM backup records when it was copied, whether it never expires, and when it was
/// deleted (PENDING_DELETION, restorable for seven days); a custom key store records its
/// cluster's certificate (what relatedness is judged by). Version 7: each event log line
/// carries its place in the log (`eventSeq`, over every line) and in the journal
/// (`journalSeq`), and the log holds lines no journal record holds (failed calls, data-plane
/// counts), marked `"journaled":false` (`docs/events.md`); a cluster's faults record when a
/// timed network cut heals (`network_heals_at`) and each HSM its added latency (`latency_ms`,
/// a slow HSM); a CloudHSM cluster records when its passing state
/// (CREATE/INITIALIZE/DELETE_IN_PROGRESS) ends, its backup retention policy and its tags; a
/// backup its tags. Version 8: the KMS state holds grants (`KmsState::grants`), journaled as
/// `KmsChange::PutGrant` / `DeleteGrant`, one grant each. Version 9: it holds automatic
/// rotation schedules (`KmsState::rotations`), journaled as `KmsChange::PutRotation`, one
/// schedule each. Version 10: a key of Origin EXTERNAL holds its imported material, its
/// identifier and expiry (`Backing::External`); a default-store HMAC or signing key's wrapped
/// material is its HMAC key or PKCS #8 private key (its `spec` says which).
pub const FORMAT_VERSION: u32 = 10;
/// Length of the journal file header.
pub const JOURNAL_HEADER_LEN: usize = 20;
/// Length of a frame header.
pub const RECORD_HEADER_LEN: usize = 16;
/// Largest frame payload accepted, checked before anything is allocated.
pub const MAX_RECORD_LEN: usize = 64 << 20;
/// Magic of a single-record frame ("KCR1").
pub const RECORD_MAGIC: u32 = u32::from_le_bytes(*b"KCR1");
/// Magic of a batch frame ("KCB1").
pub const BATCH_MAGIC: u32 = u32::from_le_bytes(*b"KCB1");

/// The journal file header for `generation`.
pub(crate) fn encode_file_header(generation: u64) -> [u8; JOURNAL_HEADER_LEN] {
    let mut h = [0u8; JOURNAL_HEADER_LEN];
    h[0..4].copy_from_slice(&JOURNAL_MAGIC);
    h[4..8].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h[8..16].copy_from_slice(&generation.to_le_bytes());
    let crc = crc32fast::hash(&h[0..16]);
    h[16..20].copy_from_slice(&crc.to_le_bytes());
    h
}

pub(crate) fn damaged(path: &Path, offset: u64, what: impl std::fmt::Display) -> crate::KmsError {
    err!(
        StorageException,
        "journal {} damaged at offset {offset}: {what}",
        path.display()
    )
}

/// The refusal of a well-formed file written in another data-directory format.
pub(crate) fn other_format(kind: &str, path: &Path, version: u32) -> crate::KmsError {
    err!(
        StorageException,
        "{kind} {} is in data-directory format {version}, but this build reads only format \
         {FORMAT_VERSION}: it was written by another version of kmscks (there is no conversion)",
        path.display()
    )
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

/// Checks the file header of journal `path`, which must be of `generation`.
pub(crate) fn check_file_header(path: &Path, data: &[u8], generation: u64) -> Result<()> {
    if data.len() < JOURNAL_HEADER_LEN {
        return Err(damaged(
            path,
            0,
            format_args!(
                "file header truncated ({} of {JOURNAL_HEADER_LEN} bytes)",
                data.len()
            ),
        ));
    }
    if data[0..4] != JOURNAL_MAGIC {
        return Err(damaged(path, 0, "bad file magic (not a kmscks journal)"));
    }
    let crc = u32_at(data, 16);
    if crc32fast::hash(&data[0..16]) != crc {
        return Err(damaged(path, 16, "file header checksum mismatch"));
    }
    let version = u32_at(data, 4);
    if version != FORMAT_VERSION {
        return Err(other_format("journal", path, version));
    }
    let mut g = [0u8; 8];
    g.copy_from_slice(&data[8..16]);
    let found = u64::from_le_bytes(g);
    if found != generation {
        return Err(damaged(
            path,
            8,
            format_args!("header says generation {found}, file name says {generation}"),
        ));
    }
    Ok(())
}

/// Where a frame is written: the journal's generation and the frame's offset in the file
/// (both covered by its tag), and the key that tags it.
#[derive(Clone, Copy)]
pub(crate) struct At<'a> {
    pub auth: &'a StoreAuth,
    pub generation: u64,
    pub offset: u64,
}

/// Appends one frame with `magic` to `out`, which will be written at `at`; `fill` writes the
/// payload after the header. Returns the payload length.
fn encode_frame(out: &mut Vec<u8>, at: At<'_>, magic: u32, fill: impl FnOnce(&mut Vec<u8>)) -> usize {
    let start = out.len();
    out.resize(start + RECORD_HEADER_LEN, 0);
    fill(out);
    let len = out.len() - start - RECORD_HEADER_LEN;
    let tag = at
        .auth
        .journal_tag(at.generation, at.offset, magic, &out[start + RECORD_HEADER_LEN..]);
    out.extend_from_slice(&tag);
    let payload_crc = crc32fast::hash(&out[start + RECORD_HEADER_LEN..]);
    let h = &mut out[start..start + RECORD_HEADER_LEN];
    h[0..4].copy_from_slice(&magic.to_le_bytes());
    // Callers check `len <= MAX_RECORD_LEN` (< 4 GiB) before encoding.
    h[4..8].copy_from_slice(&(len as u32).to_le_bytes());
    h[8..12].copy_from_slice(&payload_crc.to_le_bytes());
    let header_crc = crc32fast::hash(&h[0..12]);
    h[12..16].copy_from_slice(&header_crc.to_le_bytes());
    len
}

/// Appends a single-record frame holding `record` to `out`, to be written at `at`.
pub(crate) fn encode_record(out: &mut Vec<u8>, at: At<'_>, record: &[u8]) {
    encode_frame(out, at, RECORD_MAGIC, |o| o.extend_from_slice(record));
}

/// Payload length of a batch frame holding `records`.
#[cfg(any(test, feature = "internals"))]
pub(crate) fn batch_payload_len(records: &[&[u8]]) -> usize {
    records.iter().map(|r| 4 + r.len()).sum()
}

/// Appends a batch frame holding `records` to `out`, to be written at `at`.
#[cfg(any(test, feature = "internals"))]
pub(crate) fn encode_batch(out: &mut Vec<u8>, at: At<'_>, records: &[&[u8]]) {
    encode_frame(out, at, BATCH_MAGIC, |o| {
        for r in records {
            // Each record is shorter than the frame, itself at most MAX_RECORD_LEN.
            o.extend_from_slice(&(r.len() as u32).to_le_bytes());
            o.extend_from_slice(r);
        }
    });
}

/// One frame as found at an offset.
enum Frame<'a> {
    /// A frame that verifies: its magic, payload and end offset.
    Good {
        magic: u32,
        payload: &'a [u8],
        end: usize,
    },
    /// A frame that does not verify: why, and where a later verifying frame may start.
    Bad { reason: String, resume: usize },
    /// A frame whose checksums verify but whose tag does not: changed, not torn.
    Unauthentic,
    /// A frame whose header verifies but whose payload does not, followed by more bytes:
    /// damaged, not torn (why, in words).
    Broken { reason: String },
}

/// What a scan checks frames with: the key, and the generation of the journal scanned.
#[derive(Clone, Copy)]
pub(crate) struct Check<'a> {
    pub auth: &'a StoreAuth,
    pub generation: u64,
}

fn parse_frame<'d>(data: &'d [u8], pos: usize, check: Check<'_>) -> Frame<'d> {
    let rest = data.len() - pos;
    if rest < RECORD_HEADER_LEN {
        return Frame::Bad {
            reason: format!("incomplete record header ({rest} of {RECORD_HEADER_LEN} bytes)"),
            resume: data.len(),
        };
    }
    let magic = u32_at(data, pos);
    if magic != RECORD_MAGIC && magic != BATCH_MAGIC {
        return Frame::Bad {
            reason: format!("bad record magic {magic:#010x}"),
            resume: pos + 1,
        };
    }
    if crc32fast::hash(&data[pos..pos + 12]) != u32_at(data, pos + 12) {
        return Frame::Bad {
            reason: "record header checksum mismatch".into(),
            resume: pos + 1,
        };
    }
    let len = u32_at(data, pos + 4) as usize;
    if len > MAX_RECORD_LEN {
        return Frame::Bad {
            reason: format!("impossible record length {len} (limit {MAX_RECORD_LEN})"),
            resume: pos + 1,
        };
    }
    let start = pos + RECORD_HEADER_LEN;
    if len + TAG_LEN > data.len() - start {
        // The header verifies, so the length is genuine: everything after `pos` belongs to
        // this frame and nothing valid can follow it.
        return Frame::Bad {
            reason: format!(
                "incomplete record ({len} payload bytes and a {TAG_LEN}-byte tag declared, {} \
                 present)",
                data.len() - start
            ),
            resume: data.len(),
        };
    }
    let end = start + len + TAG_LEN;
    if crc32fast::hash(&data[start..end]) != u32_at(data, pos + 8) {
        if end < data.len() {
            // Each frame is written and synced before the next is begun, so a crash can cut
            // short only the last: one whose genuine length ends before the file does was
            // whole once.
            return Frame::Broken {
                reason: format!(
                    "payload checksum mismatch, with {} bytes after the record: a crash cuts \
                     short only the last record written, so this one was damaged after it was \
                     written",
                    data.len() - end
                ),
            };
        }
        return Frame::Bad {
            reason: "payload checksum mismatch".into(),
            resume: end,
        };
    }
    let payload = &data[start..start + len];
    if !check.auth.journal_tag_matches(
        check.generation,
        pos as u64,
        magic,
        payload,
        &data[start + len..end],
    ) {
        return Frame::Unauthentic;
    }
    Frame::Good {
        magic,
        payload,
        end,
    }
}

/// The offset of the first verifying frame at or after `from`, if any.
fn find_valid_frame(data: &[u8], from: usize, check: Check<'_>) -> Option<usize> {
    let last = data.len().checked_sub(RECORD_HEADER_LEN)?;
    (from..=last).find(|&q| {
        let m = u32_at(data, q);
        (m == RECORD_MAGIC || m == BATCH_MAGIC)
            && matches!(parse_frame(data, q, check), Frame::Good { .. })
    })
}

fn split_batch(path: &Path, offset: usize, payload: &[u8], out: &mut Vec<Vec<u8>>) -> Result<()> {
    let mut at = 0;
    while at < payload.len() {
        if payload.len() - at < 4 {
            return Err(damaged(
                path,
                (offset + RECORD_HEADER_LEN + at) as u64,
                "malformed batch: truncated sub-record length",
            ));
        }
        let len = u32_at(payload, at) as usize;
        at += 4;
        if len > payload.len() - at {
            return Err(damaged(
                path,
                (offset + RECORD_HEADER_LEN + at - 4) as u64,
                format_args!(
                    "malformed batch: sub-record of {len} bytes overruns the frame ({} left)",
                    payload.len() - at
                ),
            ));
        }
        out.push(payload[at..at + len].to_vec());
        at += len;
    }
    Ok(())
}

/// What a journal scan found.
#[derive(Debug)]
pub(crate) struct Scan {
    /// Every record, batches flattened, in order.
    pub records: Vec<Vec<u8>>,
    /// Length of the valid prefix of the file (header plus whole frames).
    pub valid_len: u64,
    /// Where a torn final frame starts, if there is one.
    pub torn_at: Option<u64>,
}

/// Reads every record of journal `path` (contents `data`, header already checked).
pub(crate) fn scan(path: &Path, data: &[u8], check: Check<'_>) -> Result<Scan> {
    let mut records = Vec::new();
    let mut pos = JOURNAL_HEADER_LEN;
    while pos < data.len() {
        match parse_frame(data, pos, check) {
            Frame::Good {
                magic,
                payload,
                end,
            } => {
                if magic == BATCH_MAGIC {
                    split_batch(path, pos, payload, &mut records)?;
                } else {
                    records.push(payload.to_vec());
                }
                pos = end;
            }
            Frame::Unauthentic => {
                return Err(damaged(
                    path,
                    pos as u64,
                    "authentication tag mismatch: the record's checksums hold but its \
                     HMAC-SHA256 tag does not, so it was changed after it was written (or \
                     written under another master key)",
                ));
            }
            Frame::Broken { reason } => return Err(damaged(path, pos as u64, reason)),
            Frame::Bad { reason, resume } => {
                if let Some(next) = find_valid_frame(data, resume, check) {
                    return Err(damaged(
                        path,
                        pos as u64,
                        format_args!("{reason} (a valid record follows at offset {next})"),
                    ));
                }
                return Ok(Scan {
                    records,
                    valid_len: pos as u64,
                    torn_at: Some(pos as u64),
                });
            }
        }
    }
    Ok(Scan {
        records,
        valid_len: pos as u64,
        torn_at: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::auth::tests::test_auth;

    fn at(auth: &StoreAuth, generation: u64, offset: usize) -> At<'_> {
        At {
            auth,
            generation,
            offset: offset as u64,
        }
    }

    fn check(auth: &StoreAuth, generation: u64) -> Check<'_> {
        Check { auth, generation }
    }

    fn journal(auth: &StoreAuth, frames: &[&[u8]]) -> (Vec<u8>, Vec<usize>) {
        let mut d = encode_file_header(3).to_vec();
        let mut starts = Vec::new();
        for f in frames {
            starts.push(d.len());
            let o = d.len();
            encode_record(&mut d, at(auth, 3, o), f);
        }
        (d, starts)
    }

    #[test]
    fn header_round_trip_and_checks() {
        let p = Path::new("/x/journal-3.log");
        let h = encode_file_header(3);
        check_file_header(p, &h, 3).unwrap();
        let e = check_file_header(p, &h, 4).unwrap_err();
        assert!(e.message().contains("offset 8"), "{e}");
        let e = check_file_header(p, &h[..7], 3).unwrap_err();
        assert!(
            e.message()
                .contains("journal /x/journal-3.log damaged at offset 0: file header truncated"),
            "{e}"
        );
        let mut bad = h;
        bad[10] ^= 1;
        assert!(check_file_header(p, &bad, 3)
            .unwrap_err()
            .message()
            .contains("offset 16: file header checksum mismatch"));
    }

    #[test]
    fn scan_reads_records_and_batches_in_order() {
        let a = test_auth();
        let mut d = encode_file_header(0).to_vec();
        let o = d.len();
        encode_record(&mut d, at(&a, 0, o), b"one");
        let o = d.len();
        encode_batch(&mut d, at(&a, 0, o), &[b"two", b"", b"three"]);
        let o = d.len();
        encode_record(&mut d, at(&a, 0, o), b"");
        let s = scan(Path::new("j"), &d, check(&a, 0)).unwrap();
        assert_eq!(
            s.records,
            vec![
                b"one".to_vec(),
                b"two".to_vec(),
                vec![],
                b"three".to_vec(),
                vec![]
            ]
        );
        assert_eq!(s.valid_len, d.len() as u64);
        assert_eq!(s.torn_at, None);
    }

    #[test]
    fn torn_tail_versus_damage() {
        let a = test_auth();
        let (d, starts) = journal(&a, &[b"aaaa", b"bbbb", b"cccc"]);
        // Torn last record: every proper prefix of it.
        for cut in starts[2] + 1..d.len() {
            let s = scan(Path::new("j"), &d[..cut], check(&a, 3)).unwrap();
            assert_eq!(s.records.len(), 2, "cut {cut}");
            assert_eq!(s.torn_at, Some(starts[2] as u64));
        }
        // Damaged middle record.
        let mut bad = d.clone();
        bad[starts[1] + RECORD_HEADER_LEN] ^= 0x40;
        let e = scan(Path::new("/d/journal-3.log"), &bad, check(&a, 3)).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::StorageException);
        assert!(
            e.message().starts_with(&format!(
                "journal /d/journal-3.log damaged at offset {}: payload checksum mismatch",
                starts[1]
            )),
            "{e}"
        );
    }

    #[test]
    fn records_damaged_through_to_the_end_are_damage_not_a_torn_tail() {
        let a = test_auth();
        let (d, starts) = journal(&a, &[b"aaaa", b"bbbb", b"cccc"]);
        // Zeros from inside the second record's payload to the end: its header still gives
        // its genuine length, and the third record's bytes follow it, so no crash cut it.
        let mut zeroed = d.clone();
        zeroed[starts[1] + RECORD_HEADER_LEN + 1..].fill(0);
        // The last two records' payloads changed: the second is followed by the third.
        let mut flipped = d.clone();
        for &s in &starts[1..] {
            flipped[s + RECORD_HEADER_LEN] ^= 0x40;
        }
        for bad in [zeroed, flipped] {
            let e = scan(Path::new("/d/journal-3.log"), &bad, check(&a, 3)).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::StorageException);
            assert!(
                e.message().starts_with(&format!(
                    "journal /d/journal-3.log damaged at offset {}: payload checksum mismatch, \
                     with {} bytes after the record: a crash cuts short only the last record \
                     written, so this one was damaged after it was written",
                    starts[1],
                    d.len() - starts[2]
                )),
                "{e}"
            );
        }
        // Only the last record changed is what a crash can leave: a torn tail.
        let mut last = d.clone();
        last[starts[2] + RECORD_HEADER_LEN] ^= 0x40;
        let s = scan(Path::new("j"), &last, check(&a, 3)).unwrap();
        assert_eq!(s.torn_at, Some(starts[2] as u64));
        assert_eq!(s.records.len(), 2);
    }

    #[test]
    fn impossible_length_is_rejected_before_allocating() {
        let a = test_auth();
        let (mut d, starts) = journal(&a, &[b"x", b"y"]);
        let at = starts[0];
        d[at + 4..at + 8].copy_from_slice(&u32::MAX.to_le_bytes());
        let crc = crc32fast::hash(&d[at..at + 12]);
        d[at + 12..at + 16].copy_from_slice(&crc.to_le_bytes());
        let e = scan(Path::new("j"), &d, check(&a, 3)).unwrap_err();
        assert!(e.message().contains("impossible record length"), "{e}");
    }

    #[test]
    fn zero_filled_tail_is_torn() {
        let a = test_auth();
        let (mut d, _) = journal(&a, &[b"x"]);
        let good = d.len();
        d.extend_from_slice(&[0u8; 100]);
        let s = scan(Path::new("j"), &d, check(&a, 3)).unwrap();
        assert_eq!(s.torn_at, Some(good as u64));
        assert_eq!(s.records, vec![b"x".to_vec()]);
    }

    /// Changes payload byte `i` of the frame at `start` and recomputes both checksums, as an
    /// offline edit would.
    fn edit_with_checksums(d: &mut [u8], start: usize, i: usize) {
        let len = u32_at(d, start + 4) as usize;
        let body = start + RECORD_HEADER_LEN;
        d[body + i] ^= 0x01;
        let crc = crc32fast::hash(&d[body..body + len + TAG_LEN]);
        d[start + 8..start + 12].copy_from_slice(&crc.to_le_bytes());
        let crc = crc32fast::hash(&d[start..start + 12]);
        d[start + 12..start + 16].copy_from_slice(&crc.to_le_bytes());
    }

    #[test]
    fn an_edited_record_with_its_checksums_recomputed_is_damage_at_its_offset_even_last() {
        let a = test_auth();
        let (good, starts) = journal(&a, &[b"aaaa", b"bbbb", b"cccc"]);
        for (n, &start) in starts.iter().enumerate() {
            let mut d = good.clone();
            edit_with_checksums(&mut d, start, 2);
            let e = scan(Path::new("/d/journal-3.log"), &d, check(&a, 3)).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::StorageException);
            assert!(
                e.message().starts_with(&format!(
                    "journal /d/journal-3.log damaged at offset {start}: authentication tag \
                     mismatch"
                )),
                "frame {n}: {e}"
            );
        }
        // The same bytes under another key, or as another generation, do not verify either.
        let other = StoreAuth::derive(&crate::secret::KeyMaterial::generate());
        assert!(scan(Path::new("j"), &good, check(&other, 3)).is_err());
        assert!(scan(Path::new("j"), &good, check(&a, 4)).is_err());
        // A frame moved to another offset does not verify: drop the first one.
        let mut moved = good[..JOURNAL_HEADER_LEN].to_vec();
        moved.extend_from_slice(&good[starts[1]..]);
        assert!(scan(Path::new("j"), &moved, check(&a, 3)).is_err());
    }
}
