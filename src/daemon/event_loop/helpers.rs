//! A loop's helper threads, shared fairly between uids. A request that may block
//! (WaitForConnection) or a large batch frame runs on a helper thread of its own, so that the
//! loop goes on serving everyone else meanwhile. The threads are bounded per loop
//! ([`PER_LOOP`]). Were they handed out first come, first served, one uid holding many
//! connections — each with long WaitForConnections or large batches in flight — could take
//! every one of them, and other uids' such requests would wait (or, as before, be refused) for
//! as long as it liked. So:
//!
//! - a uid's requests run on at most [`PER_UID`] of a loop's helpers at once: any other uid
//!   finds a helper free while fewer than `PER_LOOP / PER_UID` uids are at their share;
//! - requests beyond that wait, queued per uid, and free helpers go to the waiting uids in
//!   turn ([`Turns`]). Nothing is refused for want of a helper.
//!
//! Control-plane requests are not counted here: they run on the control threads, which take
//! each principal's requests in turn (`control_thread`), one per connection at a time.

use std::collections::HashMap;

use super::super::conn::Conn;
use super::super::dispatch::Deferred;
use super::super::turns::Turns;
use crate::error::KmsError;
use crate::protocol;

/// Helper threads running at once on one loop, all uids together.
pub(super) const PER_LOOP: usize = 64;
/// Helper threads one uid's requests may run on at once on one loop.
pub(super) const PER_UID: usize = 16;

/// A deferred request waiting for a helper, with the connection it answers.
pub(super) struct Waiting {
    pub(super) slot: usize,
    /// The connection's serial: a slot reused by a later connection is not this one.
    pub(super) serial: u64,
    pub(super) uid: u32,
    /// Held against the connection until it is answered.
    pub(super) frame_bytes: usize,
    pub(super) deferred: Deferred,
}

/// Answers the request `ids` (request id, op) of `conn`, counted as outstanding off the loop
/// with `frame_bytes` held, with `e` without running it (it never got, or never started on, a
/// helper), and takes it off what the connection has outstanding.
pub(super) fn answer_unrun(conn: &mut Conn, (id, op): (u64, u16), frame_bytes: usize, e: KmsError) {
    conn.in_flight -= 1;
    conn.offloaded -= frame_bytes;
    protocol::encode_response(&mut conn.wbuf, id, op, &Err(e));
}

/// The helpers running per uid (only uids with one), and the requests waiting for one.
#[derive(Default)]
pub(super) struct Helpers {
    by_uid: HashMap<u32, usize>,
    waiting: Turns<u32, Waiting>,
}

impl Helpers {
    /// Queues `w` behind its uid's other waiting requests.
    pub(super) fn queue(&mut self, w: Waiting) {
        self.waiting.push(w.uid, w);
    }

    /// The next request to start on a helper, counted as running: that of the uid whose turn
    /// it is among the uids under their share. `None` while the loop's helpers are all
    /// running, or every waiting uid is at its share.
    pub(super) fn start_next(&mut self) -> Option<Waiting> {
        if self.running() >= PER_LOOP {
            return None;
        }
        let by_uid = &self.by_uid;
        let w = self
            .waiting
            .next_of(|uid| by_uid.get(uid).copied().unwrap_or(0) < PER_UID)?;
        *self.by_uid.entry(w.uid).or_default() += 1;
        Some(w)
    }

    /// Gives back a helper [`Helpers::start_next`] counted for `uid`.
    pub(super) fn give_back(&mut self, uid: u32) {
        if let Some(held) = self.by_uid.get_mut(&uid) {
            *held -= 1;
            if *held == 0 {
                self.by_uid.remove(&uid);
            }
        }
    }

    /// Drops the waiting requests of the connection (`slot`, `serial`) of `uid`, which
    /// closed: nobody is left to answer (a batch's plaintexts are wiped as it drops). Returns
    /// what they were charged (their `frame_bytes`), which no completion will give back.
    pub(super) fn forget(&mut self, uid: u32, slot: usize, serial: u64) -> usize {
        let mut dropped = 0;
        self.waiting.retain(&uid, |w| {
            let keep = (w.slot, w.serial) != (slot, serial);
            if !keep {
                dropped += w.frame_bytes;
            }
            keep
        });
        dropped
    }

    /// Takes every waiting request out, in turn order (at shutdown: they are answered that
    /// they did not run, rather than started then).
    pub(super) fn take_waiting(&mut self) -> Vec<Waiting> {
        std::iter::from_fn(|| self.waiting.next()).collect()
    }

    /// Helpers running, all uids together (summed over the uids running any: a handful).
    fn running(&self) -> usize {
        self.by_uid.values().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::kms::WaitForConnectionRequest;
    use crate::ops::Request;

    fn waiting(uid: u32, slot: usize) -> Waiting {
        Waiting {
            slot,
            serial: slot as u64,
            uid,
            frame_bytes: 1000 + slot,
            deferred: Deferred::Blocking {
                request_id: 0,
                request: Request::WaitForConnection(WaitForConnectionRequest::default()),
                held: 0,
            },
        }
    }

    /// Starts what may start; the uids started, in order.
    fn start_all(h: &mut Helpers) -> Vec<u32> {
        std::iter::from_fn(|| h.start_next())
            .map(|w| w.uid)
            .collect()
    }

    #[test]
    fn the_protocol_doc_states_both_limits() {
        let doc = include_str!("../../../docs/protocol.md");
        let flat = doc.split_whitespace().collect::<Vec<_>>().join(" ");
        let stated = format!(
            "at most {PER_LOOP} at once per event loop, of which one uid's requests run on at \
             most {PER_UID}"
        );
        assert!(flat.contains(&stated), "docs/protocol.md lacks: {stated}");
    }

    #[test]
    fn a_uid_at_its_share_waits_while_another_uids_request_starts_at_once() {
        let mut h = Helpers::default();
        for slot in 0..PER_UID + 3 {
            h.queue(waiting(1000, slot));
        }
        assert_eq!(start_all(&mut h), vec![1000; PER_UID]);
        h.queue(waiting(1001, 100));
        assert_eq!(start_all(&mut h), [1001]);
        assert_eq!(h.running(), PER_UID + 1);
        // One of 1000's finishes: the next of its waiting requests starts.
        h.give_back(1000);
        assert_eq!(start_all(&mut h), [1000]);
    }

    #[test]
    fn free_helpers_go_to_the_waiting_uids_in_turn() {
        let mut h = Helpers::default();
        let uids = (PER_LOOP / PER_UID) as u32;
        for uid in 0..uids {
            for slot in 0..PER_UID {
                h.queue(waiting(uid, slot));
            }
        }
        assert_eq!(start_all(&mut h).len(), PER_LOOP);
        // Every helper runs: a newcomer and the uids at their share all wait.
        h.queue(waiting(uids, 0));
        h.queue(waiting(0, 99));
        h.queue(waiting(1, 99));
        assert!(start_all(&mut h).is_empty());
        // Helpers come back from uids 2 and 3: the newcomer starts; uids 0 and 1 stay at
        // their share, so the other free helper waits for whoever comes next.
        h.give_back(2);
        h.give_back(3);
        assert_eq!(start_all(&mut h), [uids]);
        assert_eq!(h.running(), PER_LOOP - 1);
        h.give_back(0);
        assert_eq!(start_all(&mut h), [0]);
    }

    #[test]
    fn at_shutdown_the_waiting_requests_are_taken_out_and_none_starts() {
        let mut h = Helpers::default();
        for slot in 0..PER_UID + 2 {
            h.queue(waiting(9, slot));
        }
        h.queue(waiting(10, 50));
        assert_eq!(start_all(&mut h).len(), PER_UID + 1);
        let taken: Vec<usize> = h.take_waiting().into_iter().map(|w| w.slot).collect();
        assert_eq!(taken, [PER_UID, PER_UID + 1]);
        h.give_back(9);
        assert!(start_all(&mut h).is_empty());
    }

    #[test]
    fn a_closed_connections_waiting_requests_are_dropped() {
        let mut h = Helpers::default();
        for slot in 0..PER_UID {
            h.queue(waiting(5, slot));
        }
        assert_eq!(start_all(&mut h).len(), PER_UID);
        h.queue(waiting(5, 40));
        h.queue(waiting(5, 41));
        // What the dropped request was charged is said, for its uid to be uncharged.
        assert_eq!(h.forget(5, 40, 40), 1040);
        h.give_back(5);
        let started: Vec<usize> = std::iter::from_fn(|| h.start_next())
            .map(|w| w.slot)
            .collect();
        assert_eq!(started, [41]);
    }
}
