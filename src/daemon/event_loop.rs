//! The mio event loop: one thread serving the listener and every connection.
//!
//! Tokens are constant for the listener and the waker; connection `i` of the slab is token
//! `FIRST_CONN + i`. Connections always have READABLE interest and WRITABLE only while replies
//! are pending. Accepts run until `WouldBlock`. Only the data plane (`Op::is_data_plane`) and
//! Hello run on this thread: control-plane requests and RSA private-key operations go to the
//! control threads ([`super::control_thread`], one at a time per connection, the connection's
//! later frames waiting for the answer), requests that may block (WaitForConnection) and large
//! batches to helper threads; their replies come back through a channel and the waker.
//!
//! Fairness: each connection gets at most [`WORK_PER_TURN`] work units per turn (a huge batch
//! is answered over several turns); one with work left goes to the back of the `again` list,
//! behind the events of the next poll. A connection with no room — its unwritten replies at
//! `max_pending_reply_bytes`, `max_in_flight` requests outstanding, or its uid at
//! `max_memory_per_uid` beyond each connection's [`CONN_FLOOR`] — is *stalled*: not read (the kernel's socket buffers then push back
//! on the client) until replies are written or the uid's memory goes down, which puts it back
//! on the `again` list. Connections are counted per uid at accept ([`super::quota`]).
//!
//! Slow HSMs (`Fault::SlowHsm`): this thread never sleeps off the latency a slow HSM adds
//! (see `engine::latency`). A read whose requests owe some *holds* the connection — its
//! replies unwritten and its input unread — until the time has passed, while the loop serves
//! every other connection; the poll wakes for the earliest hold.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam::channel::{Receiver, Sender};
use mio::net::UnixStream;
use mio::{Events, Interest, Poll, Token, Waker};

use super::conn::{Conn, Filled, READ_CAP};
use super::control_thread::{self, ControlQueue};
use super::dispatch::{self, Allowance, Batcher, Deferred, Stop, WORK_PER_TURN};
use super::identity;
use super::listener::Listener;
use super::quota::{Quotas, CONN_FLOOR};
use super::wake::Spin;
use super::{DaemonConfig, Shutdown};
use crate::err;
use crate::error::Result;
use crate::ops::Request;
use crate::protocol;
use crate::Kms;

const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);
const FIRST_CONN: usize = 2;
/// Read-and-handle rounds for one connection per turn before others get theirs.
const MAX_ROUNDS: usize = 8;

/// Helper threads answering deferred requests, at most, across all connections.
const MAX_DEFERRED: usize = 64;
/// How long shutdown waits for in-flight work and unflushed replies.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A reply computed off the loop.
struct Completion {
    slot: usize,
    serial: u64,
    bytes: Vec<u8>,
    /// The frame did not decode: close the connection after this reply.
    close: bool,
    /// The size of a batch frame answered off the loop (0 for other work).
    frame_bytes: usize,
}

pub(crate) struct EventLoop {
    poll: Poll,
    waker: Arc<Waker>,
    listener: Option<Listener>,
    kms: Kms,
    daemon_uid: u32,
    config: DaemonConfig,
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
    quotas: Quotas,
    next_serial: u64,
    batcher: Batcher<'static>,
    deferred: Vec<Deferred>,
    deferred_running: usize,
    done_tx: Sender<Completion>,
    done_rx: Receiver<Completion>,
    /// Where control-plane requests run (see `control_thread`).
    control: ControlQueue,
    /// Connections that still had input when their rounds ran out.
    again: Vec<usize>,
    /// Held connections (slot, serial) and when their hold ends, in no order.
    held: Vec<(Instant, usize, u64)>,
}

impl EventLoop {
    pub(super) fn new(
        listener: Listener,
        kms: Kms,
        config: DaemonConfig,
        shutdown: &Shutdown,
        control: ControlQueue,
    ) -> Result<EventLoop> {
        let poll =
            Poll::new().map_err(|e| err!(KMSInternalException, "cannot create the poller: {e}"))?;
        let waker = Arc::new(
            Waker::new(poll.registry(), WAKER)
                .map_err(|e| err!(KMSInternalException, "cannot create the waker: {e}"))?,
        );
        let mut listener = listener;
        poll.registry()
            .register(&mut listener.inner, LISTENER, Interest::READABLE)
            .map_err(|e| err!(KMSInternalException, "cannot register the listener: {e}"))?;
        shutdown.set_waker(waker.clone());
        let (done_tx, done_rx) = crossbeam::channel::unbounded();
        let daemon_uid = identity::daemon_uid();
        Ok(EventLoop {
            poll,
            waker,
            listener: Some(listener),
            kms,
            daemon_uid,
            quotas: Quotas::new(&config, daemon_uid),
            config,
            conns: Vec::new(),
            free: Vec::new(),
            next_serial: 0,
            batcher: Batcher::default(),
            deferred: Vec::new(),
            deferred_running: 0,
            done_tx,
            done_rx,
            control,
            again: Vec::new(),
            held: Vec::new(),
        })
    }

    /// Serves until `shutdown` is triggered, then stops accepting, finishes in-flight work,
    /// flushes replies (bounded by a grace period) and closes everything.
    pub(super) fn run(mut self, shutdown: &Shutdown) -> Result<()> {
        let mut events = Events::with_capacity(1024);
        let idle = Duration::from_secs(self.config.idle_timeout_secs);
        let mut last_sweep = Instant::now();
        let mut spin = Spin::new();
        crate::engine::latency::defer_on_this_thread();
        while !shutdown.is_triggered() {
            // Poll without sleeping for a moment after activity (see `wake`).
            let timeout = spin.timeout(!self.again.is_empty(), Duration::from_secs(1));
            let timeout = match self.held.iter().map(|h| h.0).min() {
                Some(until) => timeout.min(until.saturating_duration_since(Instant::now())),
                None => timeout,
            };
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(err!(KMSInternalException, "poll failed: {e}"));
            }
            spin.saw(!events.is_empty());
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept_all(),
                    WAKER => self.completions(),
                    Token(t) => {
                        let slot = t - FIRST_CONN;
                        if event.is_writable() {
                            self.on_writable(slot);
                        }
                        if event.is_read_closed() {
                            if let Some(conn) = self.conns.get_mut(slot).and_then(Option::as_mut) {
                                conn.hangup = true;
                            }
                        }
                        if event.is_readable() || event.is_read_closed() {
                            self.on_readable(slot);
                        }
                    }
                }
            }
            self.release_held();
            for slot in std::mem::take(&mut self.again) {
                self.on_readable(slot);
            }
            if last_sweep.elapsed() >= Duration::from_secs(1) {
                last_sweep = Instant::now();
                self.sweep_idle(idle);
            }
        }
        self.shut_down();
        Ok(())
    }

    fn accept_all(&mut self) {
        loop {
            let Some(listener) = &self.listener else {
                return;
            };
            match listener.inner.accept() {
                Ok((stream, _)) => self.admit(stream),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // EMFILE and the like: leave the rest in the backlog until the next wake-up.
                    tracing::warn!(error = %e, "accept failed");
                    return;
                }
            }
        }
    }

    fn admit(&mut self, mut stream: UnixStream) {
        let peer = match identity::peer_credentials(&stream) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "connection refused: no peer credentials");
                return;
            }
        };
        if let Err(e) = self.quotas.admit(peer.uid) {
            tracing::warn!(uid = peer.uid, pid = peer.pid, error = %e, "connection refused");
            let mut out = Vec::new();
            protocol::encode_response(&mut out, 0, protocol::OP_HELLO, &Err(e));
            let _ = std::io::Write::write(&mut stream, &out);
            return;
        }
        let principal = peer.principal(self.kms.scope(), self.daemon_uid);
        let kms = self.kms.acting_as(&principal);
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.conns.push(None);
                self.conns.len() - 1
            }
        };
        if let Err(e) =
            self.poll
                .registry()
                .register(&mut stream, Token(FIRST_CONN + slot), Interest::READABLE)
        {
            tracing::warn!(error = %e, "cannot register a connection");
            self.free.push(slot);
            self.quotas.release(peer.uid);
            return;
        }
        self.next_serial += 1;
        tracing::debug!(uid = peer.uid, gid = peer.gid, pid = peer.pid, principal = %principal, slot, "connection accepted");
        self.conns[slot] = Some(Conn::new(stream, self.next_serial, peer, kms));
    }

    fn close(&mut self, slot: usize, why: &str) {
        if let Some(mut conn) = self.conns.get_mut(slot).and_then(Option::take) {
            let _ = self.poll.registry().deregister(&mut conn.stream);
            tracing::debug!(
                uid = conn.peer.uid,
                pid = conn.peer.pid,
                slot,
                why,
                "connection closed"
            );
            let uid = conn.peer.uid;
            let charged = conn.charged;
            drop(conn);
            let woken = self.quotas.charge(uid, charged, 0);
            self.quotas.release(uid);
            self.free.push(slot);
            self.wake_all(woken);
        }
    }

    /// Puts a stalled connection back on the `again` list, to be read on this turn.
    fn wake(&mut self, slot: usize) {
        if let Some(conn) = self.conns.get_mut(slot).and_then(Option::as_mut) {
            if conn.stalled {
                conn.stalled = false;
                self.again.push(slot);
            }
        }
    }

    fn wake_all(&mut self, slots: Vec<usize>) {
        for slot in slots {
            self.wake(slot);
        }
    }

    /// Brings the uid's memory charge for `slot` up to date; wakes the uid's stalled
    /// connections when it went down.
    fn sync_charge(&mut self, slot: usize) {
        let Some(conn) = self.conns.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        let now = conn.memory().saturating_sub(CONN_FLOOR);
        if now == conn.charged {
            return;
        }
        let woken = self.quotas.charge(conn.peer.uid, conn.charged, now);
        conn.charged = now;
        self.wake_all(woken);
    }

    /// Bytes `slot` may still take: what is left of its floor, plus its uid's room.
    fn room(&self, slot: usize) -> usize {
        let Some(conn) = self.conns.get(slot).and_then(Option::as_ref) else {
            return 0;
        };
        CONN_FLOOR.saturating_sub(conn.memory()) + self.quotas.room(conn.peer.uid)
    }

    /// Stops reading `slot` until there is room again (see the module doc).
    fn stall(&mut self, slot: usize) {
        if let Some(conn) = self.conns.get_mut(slot).and_then(Option::as_mut) {
            conn.stalled = true;
            let uid = conn.peer.uid;
            self.quotas.wait(uid, slot);
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
    fn release_held(&mut self) {
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
    fn on_readable(&mut self, slot: usize) {
        let cap = self.config.max_pending_reply_bytes;
        let max_in_flight = self.config.max_in_flight;
        let mut work = WORK_PER_TURN;
        for _ in 0..MAX_ROUNDS {
            let Some(conn) = self.conns.get_mut(slot).and_then(Option::as_mut) else {
                return;
            };
            if conn.stalled || conn.held_until.is_some() {
                return;
            }
            if conn.offloaded > 0 {
                // A batch on a helper thread comes before the next frame: its completion
                // wakes the connection.
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
            let room = self.room(slot);
            let Some(conn) = self.conns.get_mut(slot).and_then(Option::as_mut) else {
                return;
            };
            let filled = if conn.eof {
                Filled::Eof
            } else if room == 0 {
                Filled::Limited
            } else {
                match conn.fill(room.min(READ_CAP)) {
                    Ok(f) => f,
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
            let mut allow = Allowance {
                work,
                reply_bytes,
                replies: (max_in_flight as usize)
                    .saturating_sub(conn.outstanding() + conn.in_flight),
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
            work = allow.work;
            conn.consume(handled.consumed);
            conn.job = handled.job;
            if handled.frames > 0 {
                conn.last_progress = Instant::now();
            }
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
                        self.stall(slot);
                        return;
                    }
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
                        if self.room(slot) == 0 {
                            self.stall(slot);
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
    fn after_output(&mut self, slot: usize) -> bool {
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

    fn on_writable(&mut self, slot: usize) {
        self.after_output(slot);
    }

    /// Hands the deferred work of the last read to helper threads.
    fn start_deferred(&mut self, slot: usize) {
        if self.deferred.is_empty() {
            return;
        }
        let max_wait = self.config.max_wait_millis;
        let Some(conn) = self.conns.get_mut(slot).and_then(Option::as_mut) else {
            self.deferred.clear();
            return;
        };
        for mut d in self.deferred.drain(..) {
            let (id, op) = d.ids();
            if let Deferred::Control {
                frame_bytes, lane, ..
            } = d
            {
                // Not counted against MAX_DEFERRED: one per connection at most.
                let (tx, waker, serial) = (self.done_tx.clone(), self.waker.clone(), conn.serial);
                let kms = conn.kms.clone();
                let job: control_thread::Job = Box::new(move || {
                    let (bytes, close) = d.run(&kms);
                    let _ = tx.send(Completion {
                        slot,
                        serial,
                        bytes,
                        close,
                        frame_bytes,
                    });
                    let _ = waker.wake();
                });
                if self.control.submit(lane, conn.kms.principal(), job) {
                    conn.in_flight += 1;
                    conn.offloaded += frame_bytes;
                    self.deferred_running += 1;
                } else {
                    let e = err!(KMSInternalException, "the control thread is gone");
                    protocol::encode_response(&mut conn.wbuf, id, op, &Err(e));
                }
                continue;
            }
            if self.deferred_running >= MAX_DEFERRED {
                let e = err!(
                    ThrottlingException,
                    "{} requests are already waiting; try again later",
                    MAX_DEFERRED
                );
                protocol::encode_response(&mut conn.wbuf, id, op, &Err(e));
                continue;
            }
            let frame_bytes = match &mut d {
                Deferred::Blocking {
                    request: Request::WaitForConnection(w),
                    ..
                } => {
                    w.timeout_millis = w.timeout_millis.min(max_wait);
                    0
                }
                Deferred::Blocking { .. } => 0,
                Deferred::Batch { body, .. } => protocol::HEADER_LEN + body.len(),
                Deferred::Control { frame_bytes, .. } => *frame_bytes,
            };
            let kms = conn.kms.clone();
            let tx = self.done_tx.clone();
            let waker = self.waker.clone();
            let serial = conn.serial;
            let spawned = std::thread::Builder::new()
                .name("kmscksd-helper".into())
                .spawn(move || {
                    let (bytes, close) = d.run(&kms);
                    let _ = tx.send(Completion {
                        slot,
                        serial,
                        bytes,
                        close,
                        frame_bytes,
                    });
                    let _ = waker.wake();
                });
            match spawned {
                Ok(_) => {
                    conn.in_flight += 1;
                    conn.offloaded += frame_bytes;
                    self.deferred_running += 1;
                }
                Err(e) => {
                    let e = err!(ThrottlingException, "cannot start a helper thread: {e}");
                    protocol::encode_response(&mut conn.wbuf, id, op, &Err(e));
                }
            }
        }
    }

    fn completions(&mut self) {
        while let Ok(done) = self.done_rx.try_recv() {
            self.deferred_running -= 1;
            let Some(conn) = self.conns.get_mut(done.slot).and_then(Option::as_mut) else {
                continue;
            };
            if conn.serial != done.serial {
                continue;
            }
            conn.in_flight -= 1;
            conn.offloaded -= done.frame_bytes;
            conn.last_progress = Instant::now();
            if done.close {
                tracing::warn!(
                    uid = conn.peer.uid,
                    pid = conn.peer.pid,
                    "bad batch frame; closing the connection"
                );
                conn.closing = true;
            }
            crate::secret::extend_wiping(&mut conn.wbuf, &done.bytes);
            let mut bytes = done.bytes;
            zeroize::Zeroize::zeroize(&mut bytes);
            if self.after_output(done.slot) {
                // One fewer request outstanding: room for another.
                self.wake(done.slot);
            }
        }
    }

    fn sweep_idle(&mut self, idle: Duration) {
        let now = Instant::now();
        let stale: Vec<usize> = self
            .conns
            .iter()
            .enumerate()
            .filter_map(|(i, c)| {
                let c = c.as_ref()?;
                (c.in_flight == 0 && c.job.is_none() && now.duration_since(c.last_progress) > idle)
                    .then_some(i)
            })
            .collect();
        for slot in stale {
            self.close(slot, "idle timeout");
        }
    }

    fn shut_down(&mut self) {
        tracing::info!("shutting down: no longer accepting");
        if let Some(mut listener) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut listener.inner);
            drop(listener); // removes the socket file
        }
        for c in self.conns.iter_mut().flatten() {
            c.closing = true;
            c.stalled = false;
            // Replies held for a slow HSM go out now rather than after the grace period.
            c.held_until = None;
            // A batch being answered is finished: its client is owed the reply.
            if let Some(mut job) = c.job.take() {
                let mut work = usize::MAX;
                while !job.step(&c.kms, &mut work) {}
                job.finish(&mut c.wbuf);
            }
        }
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        let mut events = Events::with_capacity(256);
        loop {
            self.completions();
            let slots: Vec<usize> = (0..self.conns.len()).collect();
            for slot in slots {
                self.after_output(slot);
            }
            if self.quotas.live() == 0 || Instant::now() >= deadline {
                break;
            }
            let _ = self.poll.poll(&mut events, Some(Duration::from_millis(50)));
        }
        let unfinished = self.quotas.live();
        for slot in 0..self.conns.len() {
            self.close(slot, "shutdown");
        }
        tracing::info!(unfinished, "connections closed");
    }
}
