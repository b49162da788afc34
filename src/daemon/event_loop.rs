//! The mio event loop: one thread serving the listener and every connection.
//!
//! Tokens are constant for the listener and the waker; connection `i` of the slab is token
//! `FIRST_CONN + i`. Connections always have READABLE interest and WRITABLE only while replies
//! are pending. Accepts run until `WouldBlock`. Requests that may block (WaitForConnection)
//! run on a helper thread whose reply comes back through a channel and the waker.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam::channel::{Receiver, Sender};
use mio::net::UnixStream;
use mio::{Events, Interest, Poll, Token, Waker};

use super::conn::{Conn, Filled};
use super::dispatch::{self, Batcher, Deferred};
use super::identity;
use super::listener::Listener;
use super::{DaemonConfig, Shutdown};
use crate::err;
use crate::error::Result;
use crate::ops::{Request, Response};
use crate::protocol;
use crate::Kms;

const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);
const FIRST_CONN: usize = 2;
/// Read-and-handle rounds for one connection per wake-up before others get their turn.
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
}

/// How long the loop keeps polling without sleeping after its last event.
const BUSY_POLL: Duration = Duration::from_micros(50);

pub(crate) struct EventLoop {
    poll: Poll,
    waker: Arc<Waker>,
    listener: Option<Listener>,
    kms: Kms,
    daemon_uid: u32,
    config: DaemonConfig,
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
    live: usize,
    next_serial: u64,
    batcher: Batcher,
    deferred: Vec<Deferred>,
    deferred_running: usize,
    done_tx: Sender<Completion>,
    done_rx: Receiver<Completion>,
    /// Connections that still had input when their rounds ran out.
    again: Vec<usize>,
}

impl EventLoop {
    pub(super) fn new(
        listener: Listener,
        kms: Kms,
        config: DaemonConfig,
        shutdown: &Shutdown,
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
        Ok(EventLoop {
            poll,
            waker,
            listener: Some(listener),
            kms,
            daemon_uid: identity::daemon_uid(),
            config,
            conns: Vec::new(),
            free: Vec::new(),
            live: 0,
            next_serial: 0,
            batcher: Batcher::default(),
            deferred: Vec::new(),
            deferred_running: 0,
            done_tx,
            done_rx,
            again: Vec::new(),
        })
    }

    /// Serves until `shutdown` is triggered, then stops accepting, finishes in-flight work,
    /// flushes replies (bounded by a grace period) and closes everything.
    pub(super) fn run(mut self, shutdown: &Shutdown) -> Result<()> {
        let mut events = Events::with_capacity(1024);
        let idle = Duration::from_secs(self.config.idle_timeout_secs);
        let mut last_sweep = Instant::now();
        let mut last_busy = Instant::now() - BUSY_POLL;
        while !shutdown.is_triggered() {
            // Poll without sleeping for a moment after activity: a client that sends its next
            // requests then finds the loop awake, and neither side pays a cross-core wake-up
            // (tens of µs on this kind of VM) per exchange.
            let timeout = if !self.again.is_empty() || last_busy.elapsed() < BUSY_POLL {
                Duration::ZERO
            } else {
                Duration::from_secs(1)
            };
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(err!(KMSInternalException, "poll failed: {e}"));
            }
            if !events.is_empty() {
                last_busy = Instant::now();
            }
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept_all(),
                    WAKER => self.completions(),
                    Token(t) => {
                        let slot = t - FIRST_CONN;
                        if event.is_writable() {
                            self.on_writable(slot);
                        }
                        if event.is_readable() || event.is_read_closed() {
                            self.on_readable(slot);
                        }
                    }
                }
            }
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
        if self.live >= self.config.max_connections {
            tracing::warn!(
                max = self.config.max_connections,
                "connection refused: too many connections"
            );
            let mut out = Vec::new();
            let e = err!(
                LimitExceededException,
                "the daemon serves at most {} connections",
                self.config.max_connections
            );
            protocol::encode_response(&mut out, 0, protocol::OP_HELLO, &Err(e));
            let _ = std::io::Write::write(&mut stream, &out);
            return;
        }
        let peer = match identity::peer_credentials(&stream) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "connection refused: no peer credentials");
                return;
            }
        };
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
            return;
        }
        self.next_serial += 1;
        tracing::debug!(uid = peer.uid, gid = peer.gid, pid = peer.pid, principal = %principal, slot, "connection accepted");
        self.conns[slot] = Some(Conn::new(stream, self.next_serial, peer, kms));
        self.live += 1;
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
            self.live -= 1;
            self.free.push(slot);
        }
    }

    fn on_readable(&mut self, slot: usize) {
        // Advertised in Hello: with replies of up to 4 KiB (every data-plane reply of a 4 KiB
        // payload or less), this many requests in flight never exceed the reply cap.
        let max_in_flight =
            u32::try_from(self.config.max_pending_reply_bytes / 4096).unwrap_or(u32::MAX);
        for _ in 0..MAX_ROUNDS {
            let Some(conn) = self.conns.get_mut(slot).and_then(Option::as_mut) else {
                return;
            };
            if conn.closing {
                return;
            }
            let filled = match conn.fill() {
                Ok(f) => f,
                Err(e) => {
                    tracing::debug!(error = %e, "read failed");
                    self.close(slot, "read error");
                    return;
                }
            };
            let handled = dispatch::handle_frames(
                &conn.rbuf[..conn.filled],
                &mut conn.greeted,
                &conn.kms,
                &mut self.batcher,
                &mut conn.wbuf,
                &mut self.deferred,
                max_in_flight,
                filled == Filled::Eof,
            );
            conn.consume(handled.consumed);
            if handled.frames > 0 {
                conn.last_progress = Instant::now();
            }
            if let Some(e) = &handled.error {
                tracing::warn!(uid = conn.peer.uid, pid = conn.peer.pid, error = %e.to_error(), "bad frame; closing the connection");
                conn.closing = true;
            }
            let eof = filled == Filled::Eof;
            if eof && conn.filled > 0 && handled.error.is_none() {
                // The peer closed mid-frame: nothing can complete it.
                conn.closing = true;
            }
            self.start_deferred(slot);
            if !self.after_output(slot) {
                return;
            }
            let Some(conn) = self.conns.get_mut(slot).and_then(Option::as_mut) else {
                return;
            };
            if eof {
                conn.closing = true;
                if conn.pending() == 0 && conn.in_flight == 0 {
                    self.close(slot, "peer closed");
                }
                return;
            }
            if conn.closing || filled == Filled::WouldBlock {
                return;
            }
        }
        self.again.push(slot);
    }

    /// Writes what is pending, adjusts WRITABLE interest, enforces the reply cap, closes a
    /// closing connection once drained. Returns false when the connection is gone.
    fn after_output(&mut self, slot: usize) -> bool {
        let cap = self.config.max_pending_reply_bytes;
        let Some(conn) = self.conns.get_mut(slot).and_then(Option::as_mut) else {
            return false;
        };
        let drained = match conn.flush() {
            Ok(d) => d,
            Err(e) => {
                tracing::debug!(error = %e, "write failed");
                self.close(slot, "write error");
                return false;
            }
        };
        if conn.pending() > cap {
            tracing::warn!(
                uid = conn.peer.uid,
                pid = conn.peer.pid,
                pending = conn.pending(),
                cap,
                "client does not read its replies; closing"
            );
            self.close(slot, "reply cap exceeded");
            return false;
        }
        if drained && conn.closing && conn.in_flight == 0 {
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
        true
    }

    fn on_writable(&mut self, slot: usize) {
        self.after_output(slot);
    }

    /// Hands the deferred requests of the last read to helper threads.
    fn start_deferred(&mut self, slot: usize) {
        if self.deferred.is_empty() {
            return;
        }
        let max_wait = self.config.max_wait_millis;
        let Some(conn) = self.conns.get_mut(slot).and_then(Option::as_mut) else {
            self.deferred.clear();
            return;
        };
        for d in self.deferred.drain(..) {
            let op = d.request.op();
            if self.deferred_running >= MAX_DEFERRED {
                let e = err!(
                    ThrottlingException,
                    "{} requests are already waiting; try again later",
                    MAX_DEFERRED
                );
                protocol::encode_response(&mut conn.wbuf, d.request_id, op.code(), &Err(e));
                continue;
            }
            let mut request = d.request;
            if let Request::WaitForConnection(w) = &mut request {
                w.timeout_millis = w.timeout_millis.min(max_wait);
            }
            let kms = conn.kms.clone();
            let tx = self.done_tx.clone();
            let waker = self.waker.clone();
            let (serial, id) = (conn.serial, d.request_id);
            let spawned = std::thread::Builder::new()
                .name("kmscksd-wait".into())
                .spawn(move || {
                    let result: Result<Response> = kms.dispatch(&request);
                    let mut bytes = Vec::new();
                    protocol::encode_response(&mut bytes, id, op.code(), &result);
                    let _ = tx.send(Completion {
                        slot,
                        serial,
                        bytes,
                    });
                    let _ = waker.wake();
                });
            match spawned {
                Ok(_) => {
                    conn.in_flight += 1;
                    self.deferred_running += 1;
                }
                Err(e) => {
                    let e = err!(ThrottlingException, "cannot start a helper thread: {e}");
                    protocol::encode_response(&mut conn.wbuf, id, op.code(), &Err(e));
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
            conn.wbuf.extend_from_slice(&done.bytes);
            let mut bytes = done.bytes;
            zeroize::Zeroize::zeroize(&mut bytes);
            self.after_output(done.slot);
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
                (c.in_flight == 0 && now.duration_since(c.last_progress) > idle).then_some(i)
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
        }
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        let mut events = Events::with_capacity(256);
        loop {
            self.completions();
            let slots: Vec<usize> = (0..self.conns.len()).collect();
            for slot in slots {
                self.after_output(slot);
            }
            if self.live == 0 || Instant::now() >= deadline {
                break;
            }
            let _ = self.poll.poll(&mut events, Some(Duration::from_millis(50)));
        }
        let unfinished = self.live;
        for slot in 0..self.conns.len() {
            self.close(slot, "shutdown");
        }
        tracing::info!(unfinished, "connections closed");
    }
}
