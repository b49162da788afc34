//! Per-uid quotas, so that one uid cannot starve another: how many connections each uid holds
//! (with capacity reserved for root and the daemon's uid), and how much memory each uid's
//! connections hold in the daemon (request bytes read and not yet handled, replies not yet
//! written).
//!
//! Connections over a quota are refused at accept. Memory is not refused but waited for: a
//! connection whose uid is at its memory quota stops being read (back-pressure) and is
//! registered here as waiting; when the uid's memory goes down, its waiting connections are
//! handed back to be read again. A waiter is whatever names a connection to its server: a slot
//! for the HTTP endpoint's one loop, a (loop, slot) pair for the socket's loops, which share
//! one `Quotas` (a uid's connections may sit on several loops, and memory freed on one must
//! wake those stalled on another).
//!
//! Every connection may hold [`CONN_FLOOR`] bytes whatever its uid's quota says, and only what
//! it holds beyond that is charged to the uid: so a connection of a uid whose other
//! connections never read still moves (a uid's memory is then at most its quota plus a floor
//! per connection).
//!
//! A request longer than what was read of it is read on only once it fits whole, and is then
//! charged whole ([`next_read`]: both endpoints read by that rule).
//!
//! A loop asks how much room its connection's uid has before each read and each chunk of
//! replies; a [`UidMemory`] answers that without the lock the loops share (charges, waits and
//! wakes still take it), so that loops serving clients within their floors never meet on it.

/// Connections a loop accepts per turn before it serves the connections already there (the
/// socket's loop and the HTTP endpoint's): each accept asks the kernel who connected, and a
/// local user connecting in a loop must not keep the loop accepting while everyone else waits.
pub(super) const ACCEPTS_PER_TURN: usize = 32;

/// What each connection may hold without being charged to its uid's memory quota: small
/// requests and replies (a 4 KiB Encrypt is about 4.3 KB) always flow.
pub(super) const CONN_FLOOR: usize = 64 << 10;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::DaemonConfig;
use crate::err;
use crate::error::Result;

/// What a connection may read next (see [`next_read`]).
#[derive(Debug, PartialEq, Eq)]
pub(super) enum NextRead {
    /// Up to this many bytes.
    UpTo(usize),
    /// First charge the request at the start of the buffer whole (`charge` bytes: its length,
    /// head and body, or more), then read `rest` bytes: the rest of it.
    Reserve { charge: usize, rest: usize },
    /// Nothing, until the uid's memory goes down by `rest`: the request's charge does not fit.
    Wait { rest: usize },
}

/// The rule both endpoints read by. `room`: what the connection's floor and its uid's quota
/// leave; `buffered`: bytes read and not yet handled; `next_len`: the length of the request
/// (a socket frame, an HTTP request) at the start of the buffer, once its head is read and
/// its body is not; `charge`: what that request is charged from then on until answered (at
/// least its length: the socket charges a frame for what it decodes into,
/// `dispatch::held_charge`); `reserved`: what is charged for it already.
///
/// A request longer than what was read of it is read on only once its whole length fits in
/// the room, and is charged whole from then on; one that does not fit is not read at all.
/// Without that, a connection reading a large request as room comes would hold what it read
/// while waiting for the rest, and enough of them (a uid's clients sending many requests of a
/// megabyte at once) would hold the uid's whole quota with no request complete: none would
/// move until the idle timeout closed them. While where a request ends is not known, at most
/// [`CONN_FLOOR`] is read at a time, so that a read that stops inside a large request holds
/// what fits in the connection's floor, none of its uid's room. A pipeline of small requests
/// loses nothing by it (256 socket requests are about 25 KiB).
pub(super) fn next_read(
    room: usize,
    buffered: usize,
    next_len: Option<usize>,
    charge: usize,
    reserved: usize,
) -> NextRead {
    let Some(whole) = next_len.filter(|&n| n > buffered) else {
        return NextRead::UpTo(room.min(CONN_FLOOR));
    };
    let charge = charge.max(whole);
    if reserved >= charge {
        NextRead::UpTo(whole - buffered)
    } else if charge - buffered <= room {
        NextRead::Reserve {
            charge,
            rest: whole - buffered,
        }
    } else {
        NextRead::Wait {
            rest: charge - buffered,
        }
    }
}

/// What one uid holds.
#[derive(Debug)]
struct Use<W> {
    conns: usize,
    /// Bytes charged: written under the quotas' lock, read without it by [`UidMemory`].
    memory: Arc<AtomicUsize>,
    /// Connections stopped for lack of memory room, to read again once there is some.
    waiting: Vec<W>,
}

// Not derived: a derived `Default` would require `W: Default`.
impl<W> Default for Use<W> {
    fn default() -> Self {
        Use {
            conns: 0,
            memory: Arc::default(),
            waiting: Vec::new(),
        }
    }
}

/// The quotas of every connected uid; `W` names a waiting connection (see the module doc).
#[derive(Debug)]
pub(super) struct Quotas<W = usize> {
    daemon_uid: u32,
    max_connections: usize,
    /// Connections every uid but root and the daemon's may hold together.
    unprivileged_connections: usize,
    per_uid_connections: usize,
    per_uid_memory: usize,
    live: usize,
    live_unprivileged: usize,
    uids: HashMap<u32, Use<W>>,
}

impl<W: PartialEq> Quotas<W> {
    pub(super) fn new(config: &DaemonConfig, daemon_uid: u32) -> Quotas<W> {
        Quotas {
            daemon_uid,
            max_connections: config.max_connections,
            unprivileged_connections: config.max_connections - config.reserved(),
            per_uid_connections: config.max_connections_per_uid,
            per_uid_memory: config.max_memory_per_uid,
            live: 0,
            live_unprivileged: 0,
            uids: HashMap::new(),
        }
    }

    /// Root and the daemon's uid: the account root, for whom connections are reserved.
    fn privileged(&self, uid: u32) -> bool {
        uid == 0 || uid == self.daemon_uid
    }

    /// Counts a new connection of `uid`, or refuses it naming the limit it would pass.
    ///
    /// Errors: `LimitExceededException` naming `max_connections`, `max_connections_per_uid`
    /// or the connections left to uids other than root and the daemon's.
    pub(super) fn admit(&mut self, uid: u32) -> Result<()> {
        if self.live >= self.max_connections {
            return Err(err!(
                LimitExceededException,
                "the daemon serves at most {} connections (max_connections)",
                self.max_connections
            ));
        }
        let privileged = self.privileged(uid);
        if !privileged && self.live_unprivileged >= self.unprivileged_connections {
            return Err(err!(
                LimitExceededException,
                "the {} connections open to uids other than root and the daemon's are all taken \
                 (max_connections - reserved_connections)",
                self.unprivileged_connections
            ));
        }
        let held = self.uids.get(&uid).map_or(0, |u| u.conns);
        if held >= self.per_uid_connections {
            return Err(err!(
                LimitExceededException,
                "uid {uid} already holds {held} connections (max_connections_per_uid)"
            ));
        }
        self.uids.entry(uid).or_default().conns += 1;
        self.live += 1;
        if !privileged {
            self.live_unprivileged += 1;
        }
        Ok(())
    }

    /// Forgets a connection of `uid` (whose memory was already uncharged, but for work of it
    /// still out, which stays charged until it completes).
    pub(super) fn release(&mut self, uid: u32) {
        self.live -= 1;
        if !self.privileged(uid) {
            self.live_unprivileged -= 1;
        }
        if let Some(u) = self.uids.get_mut(&uid) {
            u.conns -= 1;
            if u.conns == 0 && u.memory.load(Ordering::Relaxed) == 0 {
                self.uids.remove(&uid);
            }
        }
    }

    /// Connections served now.
    #[cfg(test)]
    pub(super) fn live(&self) -> usize {
        self.live
    }

    /// Moves `uid`'s charge from `old` to `new` bytes. When it goes down, returns the
    /// connections that were waiting for room (to be read again); otherwise an empty list. A
    /// uid with no connection left is forgotten once its last charge (work its closed
    /// connections left running) is given back.
    pub(super) fn charge(&mut self, uid: u32, old: usize, new: usize) -> Vec<W> {
        let Some(u) = self.uids.get_mut(&uid) else {
            return Vec::new();
        };
        // Every write is under the lock: a load and a store do not race another write.
        let memory = u.memory.load(Ordering::Relaxed) - old + new;
        u.memory.store(memory, Ordering::Relaxed);
        if u.conns == 0 && memory == 0 {
            self.uids.remove(&uid);
            return Vec::new();
        }
        if new < old {
            std::mem::take(&mut u.waiting)
        } else {
            Vec::new()
        }
    }

    /// Bytes `uid` may still take before its memory quota.
    pub(super) fn room(&self, uid: u32) -> usize {
        let used = self
            .uids
            .get(&uid)
            .map_or(0, |u| u.memory.load(Ordering::Relaxed));
        self.per_uid_memory.saturating_sub(used)
    }

    /// `uid`'s memory, for a connection of it (admitted: its uid is counted) to read its room
    /// without this lock.
    pub(super) fn memory_of(&mut self, uid: u32) -> UidMemory {
        UidMemory {
            used: self.uids.entry(uid).or_default().memory.clone(),
            quota: self.per_uid_memory,
        }
    }

    /// The connections of `uid` waiting for memory room.
    #[cfg(test)]
    pub(super) fn waiting(&self, uid: u32) -> &[W] {
        self.uids.get(&uid).map_or(&[], |u| &u.waiting)
    }

    /// Registers `waiter` (a connection of `uid`) as waiting for memory room.
    pub(super) fn wait(&mut self, uid: u32, waiter: W) {
        if let Some(u) = self.uids.get_mut(&uid) {
            if !u.waiting.contains(&waiter) {
                u.waiting.push(waiter);
            }
        }
    }
}

/// A uid's memory as one of its connections reads it: [`Quotas::room`] without the lock.
///
/// What it reads may be a charge behind another loop's, as it would be a moment after reading
/// it under the lock: the room only bounds how much the loop reads and answers next. A stall
/// reads the room again under the lock, where it registers its wait (`EventLoop::stall`).
#[derive(Debug, Clone)]
pub(crate) struct UidMemory {
    used: Arc<AtomicUsize>,
    quota: usize,
}

impl UidMemory {
    /// Bytes the uid may still take before its memory quota.
    pub(super) fn room(&self) -> usize {
        self.quota.saturating_sub(self.used.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_longer_than_what_was_read_is_read_on_only_once_it_is_charged_whole() {
        let mib = 1 << 20;
        // Nothing known: the room, a floor at a time.
        assert_eq!(next_read(10, 0, None, 0, 0), NextRead::UpTo(10));
        assert_eq!(
            next_read(3 * mib, 0, None, 0, 0),
            NextRead::UpTo(CONN_FLOOR)
        );
        // A megabyte request of which 40 KB were read: reserved when its rest fits ...
        let (whole, read) = (mib, 40_000);
        assert_eq!(
            next_read(mib, read, Some(whole), 0, 0),
            NextRead::Reserve {
                charge: whole,
                rest: whole - read
            }
        );
        // ... read on without asking again once reserved ...
        assert_eq!(
            next_read(0, read, Some(whole), 0, whole),
            NextRead::UpTo(whole - read)
        );
        // ... and not read at all while it does not fit.
        assert_eq!(
            next_read(whole - read - 1, read, Some(whole), 0, 0),
            NextRead::Wait { rest: whole - read }
        );
        // Read whole, it asks for nothing more.
        assert_eq!(
            next_read(7, whole, Some(whole), 0, whole),
            NextRead::UpTo(7)
        );
    }

    #[test]
    fn a_request_charged_more_than_its_length_is_read_only_once_its_charge_fits() {
        let (whole, read, charge) = (200_000, 40_000, 3_000_000);
        // Its length fits and its charge does not: not read, and it waits for the charge.
        assert_eq!(
            next_read(whole, read, Some(whole), charge, 0),
            NextRead::Wait {
                rest: charge - read
            }
        );
        // Once the charge fits, charged whole and its bytes read.
        assert_eq!(
            next_read(charge, read, Some(whole), charge, 0),
            NextRead::Reserve {
                charge,
                rest: whole - read
            }
        );
        assert_eq!(
            next_read(0, read, Some(whole), charge, charge),
            NextRead::UpTo(whole - read)
        );
    }

    #[test]
    fn the_protocol_doc_states_the_accepts_per_turn_of_both_listeners_as_they_are() {
        let doc = include_str!("../../docs/protocol.md");
        let flat = doc.split_whitespace().collect::<Vec<_>>().join(" ");
        for stated in [
            format!("accepts connections accepts at most {ACCEPTS_PER_TURN} new connections"),
            format!("it accepts at most {ACCEPTS_PER_TURN} new connections per turn, asking"),
        ] {
            assert!(flat.contains(&stated), "docs/protocol.md lacks: {stated}");
        }
    }

    #[test]
    fn the_protocol_doc_states_the_floor_as_it_is() {
        let doc = include_str!("../../docs/protocol.md");
        let flat = doc.split_whitespace().collect::<Vec<_>>().join(" ");
        let kib = CONN_FLOOR >> 10;
        for stated in [
            format!("beyond {kib} KiB per connection that are never counted"),
            format!("at most its quota plus {kib} KiB per connection"),
            format!("reads at most {kib} KiB at a time while it does not know"),
        ] {
            assert!(flat.contains(&stated), "docs/protocol.md lacks: {stated}");
        }
    }

    fn quotas(max: usize, reserved: usize, per_uid: usize) -> Quotas {
        let config = DaemonConfig {
            max_connections: max,
            reserved_connections: reserved,
            max_connections_per_uid: per_uid,
            ..DaemonConfig::default()
        };
        Quotas::new(&config, 1000)
    }

    #[test]
    fn a_uid_at_its_connection_quota_is_refused_naming_the_quota() {
        let mut q = quotas(10, 2, 3);
        for _ in 0..3 {
            q.admit(65534).unwrap();
        }
        let e = q.admit(65534).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::LimitExceededException);
        assert!(e.message().contains("max_connections_per_uid"), "{e}");
        q.admit(65533).unwrap();
        q.release(65534);
        q.admit(65534).unwrap();
    }

    #[test]
    fn other_uids_never_take_the_reserved_connections() {
        let mut q = quotas(4, 2, 10);
        q.admit(65534).unwrap();
        q.admit(65533).unwrap();
        let e = q.admit(65532).unwrap_err();
        assert!(e.message().contains("reserved_connections"), "{e}");
        // Root and the daemon's uid still get the reserved two.
        q.admit(0).unwrap();
        q.admit(1000).unwrap();
        let e = q.admit(0).unwrap_err();
        assert!(e.message().contains("max_connections"), "{e}");
        assert_eq!(q.live(), 4);
    }

    #[test]
    fn the_reservation_always_leaves_other_uids_one_connection() {
        let mut q = quotas(3, 16, 10);
        q.admit(65534).unwrap();
        assert!(q.admit(65533).is_err());
    }

    /// Quotas of 4 MiB of memory per uid (the daemon's uid 1000).
    fn memory_quotas() -> Quotas {
        let config = DaemonConfig {
            max_memory_per_uid: 4 << 20,
            ..DaemonConfig::default()
        };
        Quotas::new(&config, 1000)
    }

    #[test]
    fn memory_room_is_per_uid_and_waiters_are_woken_when_it_goes_down() {
        let mut q = memory_quotas();
        q.admit(65534).unwrap();
        q.admit(0).unwrap();
        assert!(q.charge(65534, 0, 4 << 20).is_empty());
        assert_eq!(q.room(65534), 0);
        assert_eq!(q.room(0), 4 << 20);
        q.wait(65534, 7);
        q.wait(65534, 7);
        assert!(q.charge(65534, 4 << 20, 5 << 20).is_empty());
        assert_eq!(q.charge(65534, 5 << 20, 1 << 20), vec![7]);
        assert_eq!(q.room(65534), 3 << 20);
        assert!(q.charge(65534, 1 << 20, 0).is_empty());
    }

    #[test]
    fn a_uid_whose_last_connection_closed_with_work_out_is_forgotten_once_that_is_uncharged() {
        let mut q = memory_quotas();
        q.admit(65534).unwrap();
        q.charge(65534, 0, 3 << 20);
        // The connection closes with 1 MiB of work still out: that stays charged.
        q.charge(65534, 3 << 20, 1 << 20);
        q.release(65534);
        assert_eq!(q.room(65534), 3 << 20);
        assert!(q.uids.contains_key(&65534));
        q.charge(65534, 1 << 20, 0);
        assert!(!q.uids.contains_key(&65534), "nothing left of the uid");
    }

    #[test]
    fn a_connection_reads_its_uids_room_as_the_lock_holder_does_after_every_charge() {
        let mut q = memory_quotas();
        q.admit(65534).unwrap();
        q.admit(65534).unwrap();
        q.admit(0).unwrap();
        let (a, b, root) = (q.memory_of(65534), q.memory_of(65534), q.memory_of(0));
        assert_eq!(a.room(), 4 << 20);
        q.charge(65534, 0, 3 << 20);
        assert_eq!(
            (a.room(), b.room()),
            (1 << 20, 1 << 20),
            "both connections see it"
        );
        assert_eq!(root.room(), 4 << 20, "another uid's room is its own");
        q.charge(65534, 0, 2 << 20);
        assert_eq!(a.room(), 0, "over the quota: no room, not an underflow");
        assert_eq!(a.room(), q.room(65534));
        q.charge(65534, 5 << 20, 0);
        assert_eq!(a.room(), 4 << 20);
        // Once the uid's last connection goes and its memory is uncharged it is forgotten: a
        // later connection reads a fresh count, not the old one's.
        q.release(65534);
        q.release(65534);
        q.admit(65534).unwrap();
        q.charge(65534, 0, 1 << 20);
        assert_eq!(q.memory_of(65534).room(), 3 << 20);
        assert_eq!(
            a.room(),
            4 << 20,
            "the released connections' view is left as it was"
        );
    }
}
