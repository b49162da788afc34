//! One connection's turn on its event loop: reading and handling its frames in chunks,
//! writing the replies, and stopping — for the next connection's turn, for room, or for a slow
//! HSM.
//!
//! Fairness, within each loop: each connection gets at most [`WORK_PER_TURN`] work units per
//! turn (a huge batch is answered over several turns), in rounds of at most [`CHUNK_WORK`]
//! (more while the loop shares its core with its clients, [`crate::daemon::wake`]) whose
//! replies are written before the next; one with work left goes to the back of the `again`
//! list, behind the events of the next poll. A connection with no room — its unwritten replies
//! at `max_pending_reply_bytes`, `max_in_flight` requests outstanding, or its uid at
//! `max_memory_per_uid` beyond each connection's [`CONN_FLOOR`] — is *stalled*: not read (the
//! kernel's socket buffers then push back on the client) until replies are written or the uid's
//! memory goes down, which puts it back on the `again` list. A frame longer than what was read
//! of it is read on only once its whole length fits in that room ([`quota::next_read`]), so
//! that a uid's many large frames cannot share its quota out with none of them whole.
//! Connections are counted per uid at accept ([`crate::daemon::quota`]).
//!
//! Slow HSMs (`Fault::SlowHsm`): the loop's thread never sleeps off the latency a slow HSM adds
//! (see `engine::latency`). A read whose requests owe some *holds* the connection — its
//! replies unwritten and its input unread — until the time has passed, while the loop serves
//! every other connection; the poll wakes for the earliest hold.

use std::time::Instant;

use mio::{Interest, Token};

use super::{EventLoop, FIRST_CONN};
use crate::daemon::conn::{Conn, Filled, READ_CAP};
use crate::daemon::dispatch::{self, Allowance, Stop, WORK_PER_TURN};
use crate::daemon::loops::{Mail, Waiter};
use crate::daemon::quota::{self, NextRead, CONN_FLOOR};
use crate::daemon::wake::CHUNK_WORK;

/// Read-and-handle rounds of [`CHUNK_WORK`] for one connection per turn before others get
/// theirs; with bigger chunks, as many rounds as make the same work (so a connection holds its
/// loop no longer while chunks are bigger).
const MAX_ROUNDS: usize = 8;

impl EventLoop {
    /// Puts a stalled connection back on the `again` list, to be read on this turn.
    pub(super) fn wake(&mut self, slot: usize) {
        if let Some(conn) = self.conns.get_mut(slot).and_then(Option::as_mut) {
            if conn.stalled {
                conn.stalled = false;
                self.again.push(slot);
            }
        }
    }

    /// Wakes stalled connections, this loop's here and other loops' through their mailboxes.
    pub(super) fn wake_all(&mut self, waiters: Vec<Waiter>) {
        for (at, slot) in waiters {
            if at == self.index {
                self.wake(slot);
            } else {
                // A loop that has ended has no connection left to wake.
                let _ = self.shared.post(at, Mail::Wake(slot));
            }
        }
    }

    /// Brings the uid's memory charge for `slot` up to date; wakes the uid's stalled
    /// connections when it went down.
    pub(super) fn sync_charge(&mut self, slot: usize) {
        let Some(conn) = self.conns.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        let now = conn.memory().saturating_sub(CONN_FLOOR);
        if now == conn.charged {
            return;
        }
        let woken = self
            .shared
            .quotas()
            .charge(conn.peer.uid, conn.charged, now);
        conn.charged = now;
        self.wake_all(woken);
    }

    /// Bytes `slot` may still take: what is left of its floor, plus its uid's room (read
    /// without the quotas' lock).
    fn room(&self, slot: usize) -> usize {
        let Some(conn) = self.conns.get(slot).and_then(Option::as_ref) else {
            return 0;
        };
        CONN_FLOOR.saturating_sub(conn.memory()) + conn.uid_memory.room()
    }

    /// The most a request held past its turn is charged: half its uid's quota, which a
    /// connection alone can always be given (see [`dispatch::held_charge`]).
    fn held_cap(&self) -> usize {
        self.config.max_memory_per_uid / 2
    }

    /// [`quota::next_read`] for `conn` with `room`: a frame longer than what was read of it is
    /// charged for what it decodes into ([`dispatch::held_charge`]) before it is read on, so
    /// that a frame read whole is always taken and a connection never waits for room while
    /// holding a frame it cannot use.
    fn next_read_of(&self, conn: &Conn, room: usize) -> NextRead {
        let charge = conn
            .next_len
            .map_or(0, |n| dispatch::held_charge(n, self.held_cap()));
        quota::next_read(room, conn.filled, conn.next_len, charge, conn.reserved)
    }

    /// Bytes `slot` may read now, by [`quota::next_read`]'s rule; a frame it reserves is
    /// charged at once, so that the next connection's room is read with it.
    fn read_limit(&mut self, slot: usize) -> usize {
        let room = self.room(slot);
        let Some(conn) = self.conns.get(slot).and_then(Option::as_ref) else {
            return 0;
        };
        match self.next_read_of(conn, room) {
            NextRead::UpTo(n) => n,
            NextRead::Reserve { charge, rest } => {
                if let Some(conn) = self.conns.get_mut(slot).and_then(Option::as_mut) {
                    conn.reserved = charge;
                }
                self.sync_charge(slot);
                rest
            }
            NextRead::Wait { .. } => 0,
        }
    }

    /// The room in its uid's memory `slot` waits for to read on: a byte, or for a frame to
    /// reserve, what its floor leaves of the frame's rest.
    fn room_wanted(&self, slot: usize) -> usize {
        let Some(conn) = self.conns.get(slot).and_then(Option::as_ref) else {
            return 1;
        };
        // With no room at all, the rule says what a frame to reserve still wants.
        match self.next_read_of(conn, 0) {
            NextRead::Wait { rest } => rest
                .saturating_sub(CONN_FLOOR.saturating_sub(conn.memory()))
                .max(1),
            _ => 1,
        }
    }

    /// Stops reading `slot` until there is room again (see the module doc). `wanted`: the room
    /// in its uid's memory that lets it go on (0: it waits for something else, a write or a
    /// helper's completion). Another loop may have freed that since the room was read: the
    /// room is read again under the same lock as the wait is registered, and a connection
    /// that has what it wants goes on (no wake is lost between the two).
    fn stall(&mut self, slot: usize, wanted: usize) {
        let index = self.index;
        let Some(conn) = self.conns.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        let uid = conn.peer.uid;
        let room = {
            let mut quotas = self.shared.quotas();
            quotas.wait(uid, (index, slot));
            quotas.room(uid)
        };
        if wanted > 0 && room >= wanted {
            self.again.push(slot);
        } else {
            conn.stalled = true;
        }
    }

    /// Holds `slot` for what the requests just handled on this thread owe to slow HSMs, if
    /// anything.
    fn hold_owed(&mut self, slot: usize) {
        let owed = crate::engine::latency::take_owed();
        if owed.is_zero() {
            return;
        }
        let Some(conn) = self.conns.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        let until = Instant::now() + owed;
        conn.held_until = Some(conn.held_until.map_or(until, |u| u.max(until)));
        self.held.push((until, slot, conn.serial));
    }

    /// Ends the holds whose time has come: their replies are written and their input read.
    pub(super) fn release_held(&mut self) {
        if self.held.is_empty() {
            return;
        }
        let now = Instant::now();
        let mut due = Vec::new();
        self.held.retain(|&(until, slot, serial)| {
            let keep = until > now;
            if !keep {
                due.push((slot, serial));
            }
            keep
        });
        for (slot, serial) in due {
            let Some(conn) = self.conns.get_mut(slot).and_then(Option::as_mut) else {
                continue;
            };
            if conn.serial != serial || conn.held_until.is_none_or(|u| u > now) {
                continue; // another connection in the slot, or held longer since
            }
            conn.held_until = None;
            if self.after_output(slot) {
                self.again.push(slot);
            }
        }
    }

    /// Reads and handles `slot` within one turn's work: a batch in progress first, then the
    /// frames in its buffer, then more from the socket, while there is room.
    pub(super) fn on_readable(&mut self, slot: usize) {
        let cap = self.config.max_pending_reply_bytes;
        let held_cap = self.held_cap();
        let max_in_flight = self.config.max_in_flight;
        let mut work = WORK_PER_TURN;
        // The socket was read empty this turn: later rounds (the next chunks of what was read)
        // do not read it again; bytes arriving meanwhile raise an event of their own.
        let mut drained = false;
        let rounds = (MAX_ROUNDS * CHUNK_WORK).div_ceil(self.chunk_work.max(1));
        for _ in 0..rounds {
            let Some(conn) = self.conns.get_mut(slot).and_then(Option::as_mut) else {
                return;
            };
            if conn.stalled || conn.held_until.is_some() {
                return;
            }
            if conn.offloaded > 0 {
                // A request answered off the loop (a batch, a WaitForConnection, a control-
                // plane call) comes before the next frame: its completion wakes the connection.
                conn.stalled = true;
                return;
            }
            if let Some(job) = conn.job.as_mut() {
                let done = job.step(&conn.kms, &mut work);
                if done {
                    if let Some(job) = conn.job.take() {
                        job.finish(&mut conn.wbuf);
                    }
                    conn.last_progress = Instant::now();
                }
                self.hold_owed(slot);
                if !self.after_output(slot) {
                    return;
                }
                if !done || work == 0 {
                    self.again.push(slot);
                    return;
                }
                continue;
            }
            if conn.closing {
                return;
            }
            if work == 0 {
                self.again.push(slot);
                return;
            }
            // Read what the memory quota leaves room for (the frames already buffered are
            // handled whatever it says).
            let limit = self.read_limit(slot);
            let Some(conn) = self.conns.get_mut(slot).and_then(Option::as_mut) else {
                return;
            };
            let filled = if conn.eof {
                Filled::Eof
            } else if drained {
                Filled::WouldBlock
            } else if limit == 0 {
                Filled::Limited
            } else {
                match conn.fill(limit.min(READ_CAP)) {
                    Ok(f) => {
                        drained = f == Filled::WouldBlock;
                        f
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "read failed");
                        self.close(slot, "read error");
                        return;
                    }
                }
            };
            self.sync_charge(slot);
            let room = self.room(slot);
            let Some(conn) = self.conns.get_mut(slot).and_then(Option::as_mut) else {
                return;
            };
            let pending = conn.pending();
            let mut reply_bytes = cap.saturating_sub(pending).min(room);
            if pending == 0 {
                // A connection with nothing unwritten may always start one more request, so
                // that each connection of a uid at its quota still moves.
                reply_bytes = reply_bytes.max(1);
            }
            let chunk = work.min(self.chunk_work);
            let mut allow = Allowance {
                work: chunk,
                reply_bytes,
                replies: (max_in_flight as usize)
                    .saturating_sub(conn.outstanding() + conn.in_flight),
                // The frame read whole after its reservation is charged already.
                held: room + conn.reserved,
                held_cap,
            };
            let handled = dispatch::handle_frames(
                &conn.rbuf[..conn.filled],
                &mut conn.greeted,
                &conn.kms,
                &mut self.batcher,
                &mut conn.wbuf,
                &mut self.deferred,
                max_in_flight,
                conn.eof,
                &mut allow,
            );
            work -= chunk - allow.work;
            conn.consume(handled.consumed);
            conn.track_partial(handled.consumed, handled.stop == Stop::Input);
            conn.job = handled.job;
            if handled.frames > 0 {
                conn.last_progress = Instant::now();
            }
            self.most_waiting = self.most_waiting.max(handled.frames);
            if let Some(e) = &handled.error {
                tracing::warn!(uid = conn.peer.uid, pid = conn.peer.pid, error = %e.to_error(), "bad frame; closing the connection");
                conn.closing = true;
            }
            if handled.stop == Stop::Input && conn.eof && conn.filled > 0 {
                // The peer closed mid-frame: nothing can complete it.
                conn.closing = true;
            }
            self.hold_owed(slot);
            self.start_deferred(slot);
            if !self.after_output(slot) {
                return;
            }
            let Some(conn) = self.conns.get_mut(slot).and_then(Option::as_mut) else {
                return;
            };
            match handled.stop {
                Stop::Error => return,
                // A batch to run on the loop, or one on a helper thread (the next round
                // stalls until its completion).
                Stop::Job => {}
                // A chunk answered and written: the next round handles more of the turn's work.
                Stop::Work if work > 0 => {}
                Stop::Work => {
                    self.again.push(slot);
                    return;
                }
                Stop::Room => {
                    // Stall only where an event will come to wake it: a reply to write (the
                    // socket turning writable), a helper thread's completion. Writing may have
                    // made room already, and a connection with nothing unwritten may always
                    // start one more request: then go on.
                    let busy = conn.outstanding() + conn.in_flight >= max_in_flight as usize;
                    let full = conn.pending() >= cap;
                    let pending = conn.pending() > 0;
                    if busy || full || (pending && self.room(slot) == 0) {
                        self.stall(slot, usize::from(!busy && !full));
                        return;
                    }
                }
                Stop::Memory(held) => {
                    // Waits for its uid's memory to go down by what its floor (and a
                    // reservation) does not cover.
                    let covered = CONN_FLOOR.saturating_sub(conn.memory()) + conn.reserved;
                    let wanted = held.saturating_sub(covered);
                    self.stall(slot, wanted.max(1));
                    return;
                }
                Stop::Input => match filled {
                    Filled::Eof => {
                        conn.closing = true;
                        if conn.pending() == 0 && conn.in_flight == 0 {
                            self.close(slot, "peer closed");
                        }
                        return;
                    }
                    Filled::WouldBlock => return,
                    Filled::Full => {}
                    Filled::Limited => {
                        if self.read_limit(slot) == 0 {
                            let wanted = self.room_wanted(slot);
                            self.stall(slot, wanted);
                            return;
                        }
                    }
                },
            }
        }
        self.again.push(slot);
    }

    /// Writes what is pending, adjusts WRITABLE interest, wakes a stalled connection that
    /// wrote something, closes a closing connection once drained. Returns false when the
    /// connection is gone.
    pub(super) fn after_output(&mut self, slot: usize) -> bool {
        let Some(conn) = self.conns.get_mut(slot).and_then(Option::as_mut) else {
            return false;
        };
        if conn.held_until.is_some() {
            return true; // written when the hold ends (`release_held`)
        }
        let before = conn.pending();
        let drained = match conn.flush() {
            Ok(d) => d,
            Err(e) => {
                tracing::debug!(error = %e, "write failed");
                self.close(slot, "write error");
                return false;
            }
        };
        let wrote = conn.pending() < before;
        if drained && conn.closing && conn.in_flight == 0 && conn.job.is_none() {
            self.close(slot, "closing");
            return false;
        }
        if drained == conn.writable_interest {
            let interest = if drained {
                Interest::READABLE
            } else {
                Interest::READABLE | Interest::WRITABLE
            };
            if let Err(e) = self.poll.registry().reregister(
                &mut conn.stream,
                Token(FIRST_CONN + slot),
                interest,
            ) {
                tracing::warn!(error = %e, "cannot reregister a connection");
                self.close(slot, "reregister failed");
                return false;
            }
            conn.writable_interest = !drained;
        }
        self.sync_charge(slot);
        if wrote {
            self.wake(slot);
        }
        true
    }

    pub(super) fn on_writable(&mut self, slot: usize) {
        self.after_output(slot);
    }
}
