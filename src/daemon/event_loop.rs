//! One mio event loop: its poller, its connections (accepted by the first loop and handed over
//! through its mailbox, see [`super::loops`]), the replies computed off it, and its shutdown.
//! What one connection's turn does is [`turn`].
//!
//! Tokens are constant for the listener and the waker; connection `i` of the slab is token
//! `FIRST_CONN + i`. Connections always have READABLE interest and WRITABLE only while replies are
//! pending. A turn accepts at most [`ACCEPTS_PER_TURN`] connections after serving those already
//! there, so that a uid connecting in a loop (even one refused each time) cannot keep the first
//! loop accepting while its connections wait. Only the data plane (`Op::is_data_plane`) and Hello
//! run on the loops: control-plane requests and RSA private-key operations go to the control
//! threads ([`super::control_thread`], one at a time per connection, the connection's later frames
//! waiting for the answer), requests that may block (WaitForConnection) and large batches to helper
//! threads (the connection's later frames waiting too); their replies come back through the loop's
//! mailbox and waker.

mod helpers;
mod turn;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam::channel::{Receiver, Sender};
use mio::net::UnixStream;
use mio::{Events, Interest, Poll, Token, Waker};

use super::conn::Conn;
use super::control_thread::{self, ControlQueue};
use super::dispatch::{Batcher, Deferred};
use super::identity::{self, Peer};
use super::listener::Listener;
use super::loops::{Mail, Shared};
use super::quota::ACCEPTS_PER_TURN;
use super::wake::Spin;
use super::{DaemonConfig, Shutdown};
use crate::err;
use crate::error::Result;
use crate::ops::Request;
use crate::protocol;
use crate::Kms;
use helpers::{Helpers, Waiting};

const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);
const FIRST_CONN: usize = 2;

/// How long shutdown waits for in-flight work and unflushed replies.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A reply computed off the loop.
pub(super) struct Completion {
    slot: usize,
    serial: u64,
    /// Replies holding plaintexts, data keys or private keys: wiped however this is dropped
    /// (appended to its connection, the connection gone, the loop gone).
    bytes: zeroize::Zeroizing<Vec<u8>>,
    /// The frame did not decode: close the connection after this reply.
    close: bool,
    /// What the request was charged until answered ([`super::dispatch::held_charge`] of its
    /// frame).
    frame_bytes: usize,
    /// Whose request it was: the charge is given back to it even when the connection closed
    /// meanwhile.
    uid: u32,
    /// A helper thread answered (else a control thread did).
    helper: bool,
}

/// One event loop (see the module doc).
pub(super) struct EventLoop {
    /// This loop's place among the loops [`Shared`] knows.
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
    /// The helper threads running deferred requests, shared fairly between uids.
    helpers: Helpers,
    mail_tx: Sender<Mail>,
    mail_rx: Receiver<Mail>,
    /// Where control-plane requests run (see `control_thread`).
    control: ControlQueue,
    /// Connections that still had input when their rounds ran out.
    again: Vec<usize>,
    /// Held connections (slot, serial) and when their hold ends, in no order.
    held: Vec<(Instant, usize, u64)>,
    /// The most requests one connection had waiting in one chunk this turn (for [`Spin`]).
    most_waiting: usize,
    /// Work units between two writes of a connection's replies ([`Spin::chunk_work`]).
    chunk_work: usize,
    /// Connections may be waiting to be accepted: the listener was ready, and the last
    /// turn's accepts stopped at their cap.
    accept_more: bool,
    /// How the loop waits for work (see `wake`).
    spin: Spin,
    /// The loop's clock, read once per turn, right after the poll.
    now: Instant,
    /// When the idle connections were last looked for.
    last_sweep: Instant,
}

/// A loop's poller, waker and mailbox, made before the loops know each other (each needs
/// the others' doors, which [`Shared`] holds).
pub(super) struct Unshared {
    poll: Poll,
    waker: Arc<Waker>,
    mail_tx: Sender<Mail>,
    mail_rx: Receiver<Mail>,
}

impl Unshared {
    /// A poller with its waker, which is given to `shutdown`, and an empty mailbox.
    pub(super) fn new(shutdown: &Shutdown) -> Result<Unshared> {
        let poll =
            Poll::new().map_err(|e| err!(KMSInternalException, "cannot create the poller: {e}"))?;
        let waker = Arc::new(
            Waker::new(poll.registry(), WAKER)
                .map_err(|e| err!(KMSInternalException, "cannot create the waker: {e}"))?,
        );
        shutdown.add_waker(waker.clone());
        let (mail_tx, mail_rx) = crossbeam::channel::unbounded();
        Ok(Unshared {
            poll,
            waker,
            mail_tx,
            mail_rx,
        })
    }

    /// How other threads reach this loop: its mailbox and its waker.
    pub(super) fn door(&self) -> (Sender<Mail>, Arc<Waker>) {
        (self.mail_tx.clone(), self.waker.clone())
    }

    /// The loop at `index` of `shared`; with `listener`, it accepts for all.
    pub(super) fn share(
        self,
        index: usize,
        shared: Arc<Shared>,
        mut listener: Option<Listener>,
        kms: Kms,
        config: DaemonConfig,
        control: ControlQueue,
    ) -> Result<EventLoop> {
        if let Some(l) = &mut listener {
            self.poll
                .registry()
                .register(&mut l.inner, LISTENER, Interest::READABLE)
                .map_err(|e| err!(KMSInternalException, "cannot register the listener: {e}"))?;
        }
        Ok(EventLoop {
            index,
            shared,
            poll: self.poll,
            waker: self.waker,
            listener,
            kms,
            daemon_uid: identity::daemon_uid(),
            config,
            conns: Vec::new(),
            free: Vec::new(),
            next_serial: 0,
            batcher: Batcher::default(),
            deferred: Vec::new(),
            helpers: Helpers::default(),
            mail_tx: self.mail_tx,
            mail_rx: self.mail_rx,
            control,
            again: Vec::new(),
            held: Vec::new(),
            most_waiting: 0,
            chunk_work: super::wake::CHUNK_WORK,
            accept_more: false,
            spin: Spin::new(),
            now: Instant::now(),
            last_sweep: Instant::now(),
        })
    }
}

/// The connection at `slot` if it is still the one of `serial` (a slot is reused by later
/// connections).
fn conn_of(conns: &mut [Option<Conn>], slot: usize, serial: u64) -> Option<&mut Conn> {
    conns
        .get_mut(slot)
        .and_then(Option::as_mut)
        .filter(|c| c.serial == serial)
}

impl EventLoop {
    /// This loop's place among the loops.
    pub(super) fn index(&self) -> usize {
        self.index
    }
    /// Serves until `shutdown` is triggered, then stops accepting, finishes in-flight work,
    /// flushes replies (bounded by a grace period) and closes everything.
    pub(super) fn run(mut self, shutdown: &Shutdown) -> Result<()> {
        let mut events = Events::with_capacity(1024);
        crate::engine::latency::defer_on_this_thread();
        self.control.serving_thread();
        while !shutdown.is_triggered() {
            self.turn(&mut events)?;
        }
        self.shut_down();
        Ok(())
    }

    /// One turn: a poll (waiting for at most a second), then what it found, the connections
    /// accepted (at most [`ACCEPTS_PER_TURN`]), the holds that ended and the connections with
    /// work left from the last turn, each served in turn.
    pub(super) fn turn(&mut self, events: &mut Events) -> Result<()> {
        // Poll without sleeping for a moment after activity (see `wake`); not at all while
        // there is work left or connections to accept.
        let busy = !self.again.is_empty() || self.accept_more;
        let timeout = self.spin.next_poll(busy, Duration::from_secs(1), self.now);
        let timeout = match self.held.iter().map(|h| h.0).min() {
            // A hold ends on time: measured from the clock as it is, not as the turn began.
            Some(until) => timeout.min(until.saturating_duration_since(Instant::now())),
            None => timeout,
        };
        if let Err(e) = self.poll.poll(events, Some(timeout)) {
            if e.kind() == std::io::ErrorKind::Interrupted {
                return Ok(());
            }
            return Err(err!(KMSInternalException, "poll failed: {e}"));
        }
        let now = Instant::now();
        self.now = now;
        self.spin.saw(!events.is_empty(), now);
        self.chunk_work = self.spin.chunk_work(now);
        for event in events.iter() {
            match event.token() {
                // Accepted below, after the connections already there are served.
                LISTENER => self.accept_more = true,
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
        if self.accept_more {
            self.accept_more = self.accept_some();
        }
        self.release_held();
        for slot in std::mem::take(&mut self.again) {
            self.on_readable(slot);
        }
        self.spin.served(std::mem::take(&mut self.most_waiting));
        if now.saturating_duration_since(self.last_sweep) >= Duration::from_secs(1) {
            self.last_sweep = now;
            self.sweep_idle(Duration::from_secs(self.config.idle_timeout_secs));
        }
        Ok(())
    }

    /// Accepts waiting connections, at most [`ACCEPTS_PER_TURN`]; whether more may be waiting
    /// (the cap was reached: accept again on the next turn, as the listener's readiness,
    /// edge-triggered, will not be reported again for them).
    fn accept_some(&mut self) -> bool {
        for _ in 0..ACCEPTS_PER_TURN {
            let Some(listener) = &self.listener else {
                return false;
            };
            match listener.inner.accept() {
                Ok((stream, _)) => self.admit(stream),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // EMFILE and the like: leave the rest in the backlog until the next wake-up.
                    tracing::warn!(error = %e, "accept failed");
                    return false;
                }
            }
        }
        true
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
        if let Some((stream, peer)) = self.shared.hand_over(self.index, stream, peer) {
            self.serve_conn(stream, peer);
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
            self.shared.closed(self.index, peer.uid);
            return;
        }
        self.next_serial += 1;
        tracing::debug!(uid = peer.uid, gid = peer.gid, pid = peer.pid, principal = %principal, event_loop = self.index, slot, "connection accepted");
        let memory = self.shared.quotas().memory_of(peer.uid);
        self.conns[slot] = Some(Conn::new(stream, self.next_serial, peer, memory, kms));
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
            let dropped = self.helpers.forget(uid, slot, conn.serial);
            // A control-plane call still queued is not run for nobody.
            conn.gone.store(true, Ordering::Release);
            // Work still out (a control-plane call queued or running, a request on a helper
            // thread) holds its memory until it completes: its charge stays, whole (the
            // connection's floor went with it), until `complete` gives it back.
            let out = conn.offloaded - dropped;
            drop(conn);
            let woken = self.shared.quotas().charge(uid, charged, out);
            self.shared.closed(self.index, uid);
            self.free.push(slot);
            self.wake_all(woken);
        }
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
                // No helper thread: one per connection at most, on the control threads.
                let (tx, waker, serial) = (self.mail_tx.clone(), self.waker.clone(), conn.serial);
                let (kms, uid, gone) = (conn.kms.clone(), conn.peer.uid, conn.gone.clone());
                let job: control_thread::Job = Box::new(move || {
                    // Its connection closed while it waited: dropped unrun (a call that has
                    // started runs to its end), and only its charge is given back.
                    let (bytes, close) = if gone.load(Ordering::Acquire) {
                        (Vec::new(), false)
                    } else {
                        d.run(&kms)
                    };
                    let _ = tx.send(Mail::Done(Completion {
                        slot,
                        serial,
                        bytes: zeroize::Zeroizing::new(bytes),
                        close,
                        frame_bytes,
                        uid,
                        helper: false,
                    }));
                    let _ = waker.wake();
                });
                if self.control.submit(lane, conn.kms.principal(), job) {
                    conn.in_flight += 1;
                    conn.offloaded += frame_bytes;
                } else {
                    let e = err!(KMSInternalException, "the control thread is gone");
                    protocol::encode_response(&mut conn.wbuf, id, op, &Err(e));
                }
                continue;
            }
            let frame_bytes = match &mut d {
                Deferred::Blocking {
                    request: Request::WaitForConnection(w),
                    held,
                    ..
                } => {
                    w.timeout_millis = w.timeout_millis.min(max_wait);
                    *held
                }
                Deferred::Blocking { held, .. } | Deferred::Batch { held, .. } => *held,
                Deferred::Control { frame_bytes, .. } => *frame_bytes,
            };
            // Outstanding from now, waiting for a helper or running on one.
            conn.in_flight += 1;
            conn.offloaded += frame_bytes;
            self.helpers.queue(Waiting {
                slot,
                serial: conn.serial,
                uid: conn.peer.uid,
                frame_bytes,
                deferred: d,
            });
        }
        self.start_helpers();
    }

    /// Starts the waiting deferred requests that may start now (see [`helpers`]), each on a
    /// helper thread of its own.
    fn start_helpers(&mut self) {
        while let Some(w) = self.helpers.start_next() {
            let Waiting {
                slot,
                serial,
                uid,
                frame_bytes,
                deferred: d,
            } = w;
            let Some(conn) = conn_of(&mut self.conns, slot, serial) else {
                // Its connection closed meanwhile (`close` drops its waiting requests; this
                // is one that raced it): nothing to answer, and its charge, which `close`
                // left, given back.
                self.helpers.give_back(uid);
                self.uncharge_gone(uid, frame_bytes);
                continue;
            };
            let ids = d.ids();
            let kms = conn.kms.clone();
            let tx = self.mail_tx.clone();
            let waker = self.waker.clone();
            let spawned = std::thread::Builder::new()
                .name("kmscksd-helper".into())
                .spawn(move || {
                    let (bytes, close) = d.run(&kms);
                    let _ = tx.send(Mail::Done(Completion {
                        slot,
                        serial,
                        bytes: zeroize::Zeroizing::new(bytes),
                        close,
                        frame_bytes,
                        uid,
                        helper: true,
                    }));
                    let _ = waker.wake();
                });
            if let Err(e) = spawned {
                self.helpers.give_back(uid);
                let e = err!(ThrottlingException, "cannot start a helper thread: {e}");
                helpers::answer_unrun(conn, ids, frame_bytes, e);
                if self.after_output(slot) {
                    self.wake(slot);
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
        if done.helper {
            self.helpers.give_back(done.uid);
            self.start_helpers();
        }
        let Some(conn) = conn_of(&mut self.conns, done.slot, done.serial) else {
            // Its connection closed first, leaving the request's charge to its uid (`close`).
            self.uncharge_gone(done.uid, done.frame_bytes);
            return;
        };
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
        if self.after_output(done.slot) {
            // One fewer request outstanding: room for another.
            self.wake(done.slot);
        }
    }

    /// Gives back to `uid` the `charge` of a request whose connection closed before it was
    /// answered (`close` left it charged), waking the uid's connections waiting for room.
    fn uncharge_gone(&mut self, uid: u32, charge: usize) {
        if charge > 0 {
            let woken = self.shared.quotas().charge(uid, charge, 0);
            self.wake_all(woken);
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
        // Requests still waiting for a helper do not start now: each is answered that it did
        // not run (those running finish within the grace period, or are cut off with it).
        for w in self.helpers.take_waiting() {
            if let Some(c) = conn_of(&mut self.conns, w.slot, w.serial) {
                let e = err!(
                    KMSInternalException,
                    "kmscksd is shutting down; the request did not run"
                );
                helpers::answer_unrun(c, w.deferred.ids(), w.frame_bytes, e);
            }
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
