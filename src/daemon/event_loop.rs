//! The mio event loops: `event_loops` threads, each serving its share of the connections; the
//! first also accepts them all and hands each to the loop serving the fewest (itself included).
//!
//! Why several: one loop is one core's worth of decoding, engine batches and syscalls, and
//! with many connections the other core sits idle while answers queue behind each other in
//! that loop. Each loop owns its poller, connections, batcher, helpers' completions and waker;
//! nothing of a connection is shared once it is handed over. What the loops share is
//! [`Shared`]: each loop's mailbox and waker (accepted connections, completions, wakes), how
//! many connections each serves, and the per-uid quotas, which are the daemon's, not a loop's
//! (a uid's connections and memory are counted across every loop; a connection stalled for its
//! uid's memory on one loop is woken through its loop's mailbox when memory is freed on
//! another). Control-plane requests go to the control threads from every loop, their answers
//! back to the loop that sent them (each job captures its loop's mailbox and waker).
//!
//! Tokens are constant for the listener and the waker; connection `i` of the slab is token
//! `FIRST_CONN + i`. Connections always have READABLE interest and WRITABLE only while replies
//! are pending. Accepts run until `WouldBlock`. Only the data plane (`Op::is_data_plane`) and
//! Hello run on the loops: control-plane requests and RSA private-key operations go to the
//! control threads ([`super::control_thread`], one at a time per connection, the connection's
//! later frames waiting for the answer), requests that may block (WaitForConnection) and large
//! batches to helper threads; their replies come back through a channel and the waker.
//!
//! Fairness, within each loop: each connection gets at most [`WORK_PER_TURN`] work units per
//! turn (a huge batch is answered over several turns); one with work left goes to the back of
//! the `again` list, behind the events of the next poll. A connection with no room — its
//! unwritten replies at `max_pending_reply_bytes`, `max_in_flight` requests outstanding, or its
//! uid at `max_memory_per_uid` beyond each connection's [`CONN_FLOOR`] — is *stalled*: not read
//! (the kernel's socket buffers then push back on the client) until replies are written or the
//! uid's memory goes down, which puts it back on the `again` list. Connections are counted per
//! uid at accept ([`super::quota`]).
//!
//! Slow HSMs (`Fault::SlowHsm`): this thread never sleeps off the latency a slow HSM adds
//! (see `engine::latency`). A read whose requests owe some *holds* the connection — its
//! replies unwritten and its input unread — until the time has passed, while the loop serves
//! every other connection; the poll wakes for the earliest hold.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crossbeam::channel::{Receiver, Sender};
use mio::net::UnixStream;
use mio::{Events, Interest, Poll, Token, Waker};

use super::conn::{Conn, Filled, READ_CAP};
use super::control_thread::{self, ControlQueue};
use super::dispatch::{self, Allowance, Batcher, Deferred, Stop, WORK_PER_TURN};
use super::identity::{self, Peer};
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
/// Work units handled between two writes of a connection's replies: a pipelining client
/// decodes the first answers while the loop computes the next ones.
const CHUNK_WORK: usize = 64;

/// Helper threads answering deferred requests, at most, across the connections of one loop.
const MAX_DEFERRED: usize = 64;
/// How long shutdown waits for in-flight work and unflushed replies.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// What reaches a loop from other threads, followed by a wake of its waker.
enum Mail {
    /// A reply computed off the loop.
    Done(Completion),
    /// A connection the first loop accepted (and counted in the quotas) for this one.
    Admit(UnixStream, Peer),
    /// A connection of this loop stalled for its uid's memory: memory was freed elsewhere.
    Wake(usize),
}

/// A stalled connection waiting for its uid's memory: (loop, slot).
type Waiter = (usize, usize);

/// One loop as the other threads see it.
struct Door {
    mail: Sender<Mail>,
    waker: Arc<Waker>,
    /// Connections handed to this loop and not yet closed.
    conns: AtomicUsize,
}

impl Door {
    /// Posts `mail`; gives it back when the loop is gone (shut down).
    fn post(&self, mail: Mail) -> std::result::Result<(), Mail> {
        self.mail.send(mail).map_err(|e| e.0)?;
        let _ = self.waker.wake();
        Ok(())
    }
}

/// What the loops share (see the module doc).
pub(super) struct Shared {
    doors: Vec<Door>,
    quotas: Mutex<Quotas<Waiter>>,
}

impl Shared {
    fn quotas(&self) -> MutexGuard<'_, Quotas<Waiter>> {
        // A loop that panicked holding the lock left the counts as they were: go on with them.
        self.quotas.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many connections each loop serves, in loop order.
    #[cfg(test)]
    pub(super) fn conns_per_loop(&self) -> Vec<usize> {
        self.doors
            .iter()
            .map(|d| d.conns.load(Ordering::SeqCst))
            .collect()
    }

    /// The loop to hand a new connection to: the one serving the fewest (the first of those).
    fn least_loaded(&self) -> usize {
        (0..self.doors.len())
            .min_by_key(|&i| self.doors[i].conns.load(Ordering::SeqCst))
            .unwrap_or(0)
    }
}

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
    /// This loop's place in [`Shared::doors`].
    index: usize,
    shared: Arc<Shared>,
    poll: Poll,
    waker: Arc<Waker>,
    /// The first loop's: it accepts for all.
    listener: Option<Listener>,
    kms: Kms,
    daemon_uid: u32,
    config: DaemonConfig,
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
    next_serial: u64,
    batcher: Batcher<'static>,
    deferred: Vec<Deferred>,
    deferred_running: usize,
    mail_tx: Sender<Mail>,
    mail_rx: Receiver<Mail>,
    /// Where control-plane requests run (see `control_thread`).
    control: ControlQueue,
    /// Connections that still had input when their rounds ran out.
    again: Vec<usize>,
    /// Held connections (slot, serial) and when their hold ends, in no order.
    held: Vec<(Instant, usize, u64)>,
}

/// Builds `n` loops (at least one) sharing the quotas; the first holds `listener`. Each loop's
/// waker is given to `shutdown`.
pub(super) fn build(
    n: usize,
    listener: Listener,
    kms: Kms,
    config: DaemonConfig,
    shutdown: &Shutdown,
    control: &ControlQueue,
) -> Result<(Vec<EventLoop>, Arc<Shared>)> {
    let n = n.max(1);
    let mut parts = Vec::with_capacity(n);
    for _ in 0..n {
        let poll =
            Poll::new().map_err(|e| err!(KMSInternalException, "cannot create the poller: {e}"))?;
        let waker = Arc::new(
            Waker::new(poll.registry(), WAKER)
                .map_err(|e| err!(KMSInternalException, "cannot create the waker: {e}"))?,
        );
        shutdown.add_waker(waker.clone());
        let (mail_tx, mail_rx) = crossbeam::channel::unbounded();
        parts.push((poll, waker, mail_tx, mail_rx));
    }
    let daemon_uid = identity::daemon_uid();
    let shared = Arc::new(Shared {
        doors: parts
            .iter()
            .map(|(_, waker, mail, _)| Door {
                mail: mail.clone(),
                waker: waker.clone(),
                conns: AtomicUsize::new(0),
            })
            .collect(),
        quotas: Mutex::new(Quotas::new(&config, daemon_uid)),
    });
    let mut listener = Some(listener);
    let mut loops = Vec::with_capacity(n);
    for (index, (poll, waker, mail_tx, mail_rx)) in parts.into_iter().enumerate() {
        let mut listener = listener.take();
        if let Some(l) = &mut listener {
            poll.registry()
                .register(&mut l.inner, LISTENER, Interest::READABLE)
                .map_err(|e| err!(KMSInternalException, "cannot register the listener: {e}"))?;
        }
        loops.push(EventLoop {
            index,
            shared: shared.clone(),
            poll,
            waker,
            listener,
            kms: kms.clone(),
            daemon_uid,
            config: config.clone(),
            conns: Vec::new(),
            free: Vec::new(),
            next_serial: 0,
            batcher: Batcher::default(),
            deferred: Vec::new(),
            deferred_running: 0,
            mail_tx,
            mail_rx,
            control: control.clone(),
            again: Vec::new(),
            held: Vec::new(),
        });
    }
    Ok((loops, shared))
}

/// Runs `loops` until `shutdown`: the first on this thread, the others on threads of their
/// own (`kmscksd-loop-<i>`), each finishing its own connections; returns once all have ended,
/// with the first error any returned.
pub(super) fn serve(loops: Vec<EventLoop>, shutdown: &Shutdown) -> Result<()> {
    let mut loops = loops.into_iter();
    let Some(first) = loops.next() else {
        return Ok(());
    };
    let mut threads = Vec::new();
    for l in loops {
        let index = l.index;
        let s = shutdown.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("kmscksd-loop-{index}"))
            .spawn(move || l.run(&s));
        match spawned {
            Ok(t) => threads.push(t),
            Err(e) => {
                // The loops already running stop too: a daemon short of a loop would leave the
                // connections handed to it unserved.
                shutdown.trigger();
                let _ = first.run(shutdown);
                for t in threads {
                    let _ = t.join();
                }
                return Err(err!(
                    KMSInternalException,
                    "cannot start event loop {index}: {e}"
                ));
            }
        }
    }
    let mut out = first.run(shutdown);
    for t in threads {
        let joined = t
            .join()
            .unwrap_or_else(|_| Err(err!(KMSInternalException, "an event loop panicked")));
        out = out.and(joined);
    }
    out
}

impl EventLoop {
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
                    WAKER => self.mailbox(),
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

    /// Counts an accepted connection in the quotas (or refuses it) and hands it to the loop
    /// serving the fewest.
    fn admit(&mut self, mut stream: UnixStream) {
        let peer = match identity::peer_credentials(&stream) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "connection refused: no peer credentials");
                return;
            }
        };
        let admitted = self.shared.quotas().admit(peer.uid);
        if let Err(e) = admitted {
            tracing::warn!(uid = peer.uid, pid = peer.pid, error = %e, "connection refused");
            let mut out = Vec::new();
            protocol::encode_response(&mut out, 0, protocol::OP_HELLO, &Err(e));
            let _ = std::io::Write::write(&mut stream, &out);
            return;
        }
        let to = self.shared.least_loaded();
        self.shared.doors[to].conns.fetch_add(1, Ordering::SeqCst);
        if to == self.index {
            self.serve_conn(stream, peer);
            return;
        }
        if let Err(Mail::Admit(_, peer)) = self.shared.doors[to].post(Mail::Admit(stream, peer)) {
            // That loop has ended (shutting down): the connection is closed unserved.
            self.shared.doors[to].conns.fetch_sub(1, Ordering::SeqCst);
            self.shared.quotas().release(peer.uid);
        }
    }

    /// Starts serving a connection handed to this loop (already counted in the quotas and in
    /// this loop's door).
    fn serve_conn(&mut self, mut stream: UnixStream, peer: Peer) {
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
            self.forget(peer.uid);
            return;
        }
        self.next_serial += 1;
        tracing::debug!(uid = peer.uid, gid = peer.gid, pid = peer.pid, principal = %principal, event_loop = self.index, slot, "connection accepted");
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
            let woken = self.shared.quotas().charge(uid, charged, 0);
            self.forget(uid);
            self.free.push(slot);
            self.wake_all(woken);
        }
    }

    /// Uncounts a connection of `uid` this loop served (its memory already uncharged).
    fn forget(&mut self, uid: u32) {
        self.shared.quotas().release(uid);
        self.shared.doors[self.index]
            .conns
            .fetch_sub(1, Ordering::SeqCst);
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

    /// Wakes stalled connections, this loop's here and other loops' through their mailboxes.
    fn wake_all(&mut self, waiters: Vec<Waiter>) {
        for (at, slot) in waiters {
            if at == self.index {
                self.wake(slot);
            } else if let Some(door) = self.shared.doors.get(at) {
                // A loop that has ended has no connection left to wake.
                let _ = door.post(Mail::Wake(slot));
            }
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
        let woken = self
            .shared
            .quotas()
            .charge(conn.peer.uid, conn.charged, now);
        conn.charged = now;
        self.wake_all(woken);
    }

    /// Bytes `slot` may still take: what is left of its floor, plus its uid's room.
    fn room(&self, slot: usize) -> usize {
        let Some(conn) = self.conns.get(slot).and_then(Option::as_ref) else {
            return 0;
        };
        CONN_FLOOR.saturating_sub(conn.memory()) + self.shared.quotas().room(conn.peer.uid)
    }

    /// Stops reading `slot` until there is room again (see the module doc). `for_memory`: it
    /// stops for its uid's memory alone, which another loop may have freed since `room` was
    /// read: the room is read again under the same lock as the wait is registered, and a
    /// connection that has some goes on (no wake is lost between the two).
    fn stall(&mut self, slot: usize, for_memory: bool) {
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
        if for_memory && room > 0 {
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
        // The socket was read empty this turn: later rounds (the next chunks of what was read)
        // do not read it again; bytes arriving meanwhile raise an event of their own.
        let mut drained = false;
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
            } else if drained {
                Filled::WouldBlock
            } else if room == 0 {
                Filled::Limited
            } else {
                match conn.fill(room.min(READ_CAP)) {
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
            let chunk = work.min(CHUNK_WORK);
            let mut allow = Allowance {
                work: chunk,
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
            work -= chunk - allow.work;
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
                        self.stall(slot, !busy && !full);
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
                            self.stall(slot, true);
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
                let (tx, waker, serial) = (self.mail_tx.clone(), self.waker.clone(), conn.serial);
                let kms = conn.kms.clone();
                let job: control_thread::Job = Box::new(move || {
                    let (bytes, close) = d.run(&kms);
                    let _ = tx.send(Mail::Done(Completion {
                        slot,
                        serial,
                        bytes,
                        close,
                        frame_bytes,
                    }));
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
            let tx = self.mail_tx.clone();
            let waker = self.waker.clone();
            let serial = conn.serial;
            let spawned = std::thread::Builder::new()
                .name("kmscksd-helper".into())
                .spawn(move || {
                    let (bytes, close) = d.run(&kms);
                    let _ = tx.send(Mail::Done(Completion {
                        slot,
                        serial,
                        bytes,
                        close,
                        frame_bytes,
                    }));
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

    /// Takes in what other threads posted: completions, connections, wakes.
    fn mailbox(&mut self) {
        while let Ok(mail) = self.mail_rx.try_recv() {
            match mail {
                Mail::Done(done) => self.complete(done),
                Mail::Admit(stream, peer) => self.serve_conn(stream, peer),
                Mail::Wake(slot) => self.wake(slot),
            }
        }
    }

    /// Appends a reply computed off the loop to its connection (if it is still there).
    fn complete(&mut self, done: Completion) {
        self.deferred_running -= 1;
        let Some(conn) = self.conns.get_mut(done.slot).and_then(Option::as_mut) else {
            return;
        };
        if conn.serial != done.serial {
            return;
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
            // Connections handed over meanwhile are closed as the others are.
            self.mailbox();
            for c in self.conns.iter_mut().flatten() {
                c.closing = true;
                c.stalled = false;
            }
            let slots: Vec<usize> = (0..self.conns.len()).collect();
            for slot in slots {
                self.after_output(slot);
            }
            if self.live() == 0 || Instant::now() >= deadline {
                break;
            }
            let _ = self.poll.poll(&mut events, Some(Duration::from_millis(50)));
        }
        let unfinished = self.live();
        for slot in 0..self.conns.len() {
            self.close(slot, "shutdown");
        }
        tracing::info!(event_loop = self.index, unfinished, "connections closed");
    }

    /// Connections this loop serves now.
    fn live(&self) -> usize {
        self.conns.iter().flatten().count()
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream as Client;
    use std::time::{Duration, Instant};

    use super::*;
    use crate::api::kms::{BatchRequest, EncryptRequest, GenerateRandomRequest};
    use crate::ops::{Op, Response};
    use crate::protocol::{Header, HEADER_LEN, MAX_BODY};

    /// A daemon's loops serving `config` on a fresh socket, on a thread of their own.
    struct Served {
        _dir: tempfile::TempDir,
        socket: std::path::PathBuf,
        shared: Arc<Shared>,
        shutdown: Shutdown,
        thread: Option<std::thread::JoinHandle<Result<()>>>,
        control: Option<control_thread::ControlThread>,
    }

    impl Served {
        fn start(config: DaemonConfig) -> Served {
            let dir = tempfile::tempdir().unwrap();
            let socket = dir.path().join("k.sock");
            let listener = Listener::bind(&socket, 0o600, None).unwrap();
            let shutdown = Shutdown::new();
            let control = control_thread::ControlThread::start().unwrap();
            let (loops, shared) = build(
                config.event_loop_count(),
                listener,
                Kms::in_memory(),
                config,
                &shutdown,
                &control.queue(),
            )
            .unwrap();
            let s = shutdown.clone();
            let thread = std::thread::spawn(move || serve(loops, &s));
            Served {
                _dir: dir,
                socket,
                shared,
                shutdown,
                thread: Some(thread),
                control: Some(control),
            }
        }

        /// A connection whose Hello was answered.
        fn connect(&self) -> Client {
            let mut c = Client::connect(&self.socket).unwrap();
            c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
            let mut out = Vec::new();
            protocol::encode_hello(
                &mut out,
                0,
                &protocol::Hello {
                    version: protocol::VERSION,
                    client: "event_loop tests".into(),
                },
            );
            c.write_all(&out).unwrap();
            let (h, _) = read_frame(&mut c);
            assert_eq!(h.op, protocol::OP_HELLO);
            c
        }
    }

    impl Drop for Served {
        fn drop(&mut self) {
            self.shutdown.trigger();
            if let Some(t) = self.thread.take() {
                let out = t.join();
                if !std::thread::panicking() {
                    out.expect("no loop panicked")
                        .expect("the loops stop cleanly");
                }
            }
            if let Some(c) = self.control.take() {
                c.join();
            }
        }
    }

    fn read_frame(c: &mut Client) -> (Header, Vec<u8>) {
        let mut head = [0u8; HEADER_LEN];
        c.read_exact(&mut head).expect("a reply frame");
        let h = protocol::parse_header(&head).unwrap().unwrap();
        let mut body = vec![0u8; h.body_len as usize];
        c.read_exact(&mut body).expect("a reply body");
        (h, body)
    }

    /// Waits (up to a minute) for `what` to hold, checking it every millisecond.
    fn until(what: &str, mut holds: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !holds() {
            assert!(Instant::now() < deadline, "timed out waiting until {what}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn connections_are_spread_over_the_loops_each_counted_by_the_loop_serving_it() {
        let served = Served::start(DaemonConfig {
            event_loops: 2,
            ..DaemonConfig::default()
        });
        let a = served.connect();
        let _b = served.connect();
        assert_eq!(served.shared.conns_per_loop(), [1, 1]);
        let _c = served.connect();
        assert_eq!(served.shared.conns_per_loop(), [2, 1]);
        // Only the loop serving a connection uncounts it when it closes.
        drop(a);
        until("the first loop has closed its connection", || {
            served.shared.conns_per_loop() == [1, 1]
        });
    }

    #[test]
    fn a_connection_stalled_for_its_uids_memory_on_one_loop_is_woken_when_another_frees_it() {
        let largest = HEADER_LEN + MAX_BODY as usize;
        let served = Served::start(DaemonConfig {
            event_loops: 2,
            max_memory_per_uid: 2 * largest,
            max_pending_reply_bytes: 64 << 20,
            max_in_flight: 1 << 20,
            ..DaemonConfig::default()
        });
        let uid = identity::daemon_uid();

        // A (on the first loop) asks for 4 MiB of replies and reads none: past the socket's
        // buffers they fill the uid's quota.
        let mut a = served.connect();
        let requests = 4096;
        let mut frames = Vec::new();
        for id in 1..=requests {
            let r = Request::GenerateRandom(GenerateRandomRequest {
                number_of_bytes: Some(1024),
                ..Default::default()
            });
            protocol::encode_request(&mut frames, id, &r);
        }
        let mut a_writer = a.try_clone().unwrap();
        let writing_a = std::thread::spawn(move || a_writer.write_all(&frames));
        until("the uid's memory quota is full", || {
            served.shared.quotas().room(uid) == 0
        });

        // B (on the second loop) sends a frame larger than its floor: it is read up to the
        // floor and waits for its uid's memory.
        let mut b = served.connect();
        assert_eq!(served.shared.conns_per_loop(), [1, 1]);
        let batch = Request::EncryptBatch(BatchRequest {
            items: (0..24)
                .map(|_| EncryptRequest {
                    key_id: "alias/none".into(),
                    plaintext: crate::secret::SecretBytes::new(vec![7; 4096]),
                    ..Default::default()
                })
                .collect(),
        });
        let mut frame = Vec::new();
        protocol::encode_request(&mut frame, 9, &batch);
        assert!(frame.len() > CONN_FLOOR);
        let mut b_writer = b.try_clone().unwrap();
        let writing_b = std::thread::spawn(move || b_writer.write_all(&frame));
        until("B waits for its uid's memory on the second loop", || {
            served.shared.quotas().waiting(uid).iter().any(|w| w.0 == 1)
        });

        // A reads its replies: the first loop frees the uid's memory, and B goes on.
        for _ in 0..requests {
            let (h, _) = read_frame(&mut a);
            assert_eq!(h.op, Op::GenerateRandom.code());
        }
        writing_a.join().unwrap().unwrap();
        writing_b.join().unwrap().unwrap();
        let (h, body) = read_frame(&mut b);
        assert_eq!(h.request_id, 9);
        match protocol::decode_response(&h, &body).unwrap() {
            Ok(Response::EncryptBatch(r)) => assert_eq!(r.results.len(), 24),
            other => panic!("not an EncryptBatch answer: {other:?}"),
        }
    }
}
