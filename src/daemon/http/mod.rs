//! The AWS JSON 1.1 endpoint over HTTP/1.1 (`kmscksd --http 127.0.0.1:4599`), so that code
//! written against an AWS SDK or the `aws` CLI reaches kmscks with only an endpoint URL.
//!
//! Why a loop of its own: it runs on its own thread with its own `mio` poll, beside the Unix
//! socket's loop, so that neither protocol's framing leaks into the other; both end in the
//! same place — `protocol::aws_json` turns a target and a body into the same [`Request`] the
//! socket decodes, and [`Kms::dispatch`] performs it — so there is one op table, one set of
//! request and response types and one error table behind both.
//!
//! Each connection: keep-alive and pipelined requests (answered in order), `Expect:
//! 100-continue`, bodies framed by a `Content-Length` or by chunks, [`exchange::MAX_HEAD`] /
//! [`exchange::MAX_BODY`] limits (a refusal with AWS's error shape, then the close), the
//! socket's per-uid connection quotas (`max_connections`, `max_connections_per_uid`,
//! `reserved_connections` for root and the daemon's uid: a connection over them gets one
//! `LimitExceededException` answer naming the quota and is closed at accept, so another local
//! user cannot take every connection), closed after `idle_timeout_secs` without a whole
//! request nor answer bytes taken (a client dribbling a request byte by byte is closed as an
//! idle one; one reading a long answer slowly is not). Request bytes are wiped once handled
//! and answer bytes once written (they carry plaintexts and data keys), and a buffer that
//! grows or shrinks leaves no copy behind. A slow HSM's latency holds the connection's
//! answers, never the thread (see `engine::latency`).
//!
//! Fairness, as on the socket: a connection's turn reads at most [`MAX_ROUNDS`] ×
//! [`READ_CHUNK`] bytes before the others get theirs (a connection with more goes to the back,
//! served after the next poll's events); a connection is read only while its unwritten answers
//! are under `max_pending_reply_bytes` and while its uid's bytes held here (requests not yet
//! answered, those waiting for a control thread among them, answers not yet written, beyond
//! [`CONN_FLOOR`] per connection) are under `max_memory_per_uid` — a connection without that
//! room is *stalled* until the uid's memory goes down. Answers are held to the same room
//! ([`answer_room`]): a request may ask for an answer hundreds of times its size, and a client
//! that sends many and reads none gets no more answered than its unwritten limit and its
//! uid's memory allow; the kernel's share is capped too ([`SEND_BUFFER`]). A request's body
//! is read only once the whole request (its length is in its head) fits in that room, and is
//! charged whole from then on, so that many large requests arriving at once cannot share out
//! a uid's quota with none of them complete ([`quota::next_read`]); a request whose body comes
//! in chunks, whose length no head gives, is charged the largest body it may be until it is
//! whole (`exchange::parse`). The HTTP endpoint counts its connections and memory apart from
//! the socket's.
//!
//! Who a request acts as is `identity`'s: the uid owning the client's end first (another
//! local user is never the daemon's principals), then the access key id it signs with.
//!
//! With `http_credentials`, every request's SigV4 signature is verified (`sigv4`) and the
//! signing key's principal is the request's, whoever connected.
//!
//! Control-plane requests (every operation but the data plane's, `Op::is_data_plane`) and RSA
//! private-key operations (`control_thread::Lane::of`) run on the daemon's control threads
//! (`super::control_thread`, shared with the socket's loop, callers taking turns), so that a
//! CreateKey's fsync or an RSA decryption holds no other connection; the connection's later
//! requests wait for its answer (answers go out in request order). So do kmscks's batch
//! operations (EncryptBatch and the like, up to a megabyte of items: [`lane_of`]), on the
//! lane of slow work, and no answer grows past [`MAX_ANSWER`] bytes (a batch of many small
//! items that would is answered `LimitExceededException`): one request cannot hold the loop,
//! nor make an answer twenty times its size.
//!
//! Pipelined data-plane requests (Encrypt, Decrypt, GenerateDataKey[WithoutPlaintext]) that
//! one read brings reach the engine as one batch call, through the socket's own
//! [`Batcher`]: routing and queueing are paid once per read, and each request still gets its
//! own answer (its own error), in order. A request that closes the connection, a change of
//! principal, and any other operation end the batch first.

mod chunked;
mod exchange;
mod identity;
mod sigv4;

pub use sigv4::{amz_date, authorization};

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam::channel::{Receiver, Sender};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use zeroize::Zeroizing;

use super::control_thread::{ControlQueue, Lane};
use super::dispatch::{self, Batcher, Replies};
use super::quota::{self, NextRead, Quotas, ACCEPTS_PER_TURN, CONN_FLOOR};
use super::wake::Spin;
use super::Shutdown;
use crate::api::kms::WaitForConnectionRequest;
use crate::error::Result;
use crate::ops::{Op, Request, Response};
use crate::protocol::aws_json;
use crate::types::Scope;
use crate::{err, Kms};
use exchange::{Parsed, CONTINUE, MAX_BODY, MAX_HEAD};

const LISTENER: Token = Token(usize::MAX);
/// The control thread's answers (see `control_thread`).
const WAKER: Token = Token(usize::MAX - 1);
/// How often the loop looks at the shutdown flag and the idle connections when nothing
/// happens.
const TICK: Duration = Duration::from_millis(200);
/// Bytes read per round of a connection's turn.
const READ_CHUNK: usize = 16 << 10;
/// Read-and-answer rounds for one connection per turn before the others get theirs.
const MAX_ROUNDS: usize = 8;
/// How long a connection closed after a refusal is still read (what it sends thrown away, at
/// most a turn's worth of bytes per turn) once its answer is written and its sending side
/// shut: a client still sending the body of a refused request (most send the whole body
/// before they read) would otherwise have its send fail on a reset before it reads the
/// answer. RFC 9112 §9.6.
const LINGER: Duration = Duration::from_secs(2);

/// The bound HTTP listener, not yet serving.
#[derive(Debug)]
pub(super) struct HttpEndpoint {
    listener: TcpListener,
    addr: SocketAddr,
}

/// The limits the endpoint applies, from the daemon's configuration.
#[derive(Debug)]
pub(super) struct Limits {
    /// Connections and memory per uid (the HTTP listener counts its own, beside the
    /// socket's).
    pub quotas: Quotas,
    pub idle_timeout: Duration,
    /// Answers a connection may leave unwritten before it is read no more
    /// (`max_pending_reply_bytes`).
    pub max_pending_answers: usize,
}

/// Who requests act as (see `identity` and `sigv4`).
#[derive(Debug)]
pub(super) struct Identities {
    /// Access key ids acting as the account root (without credentials).
    root_keys: Vec<String>,
    /// The daemon's uid.
    daemon_uid: u32,
    /// When configured, every request's signature is verified against these.
    credentials: Option<sigv4::Credentials>,
    /// The names a request's `Host` may give: a request for another (a web page re-pointed
    /// at this machine) acts as no one.
    hosts: exchange::Hosts,
}

impl Identities {
    /// From the options `http_root_access_keys`, `http_credentials` (the file is read now,
    /// so that a bad one stops the daemon at start) and `http_hosts`.
    pub(super) fn new(
        root_keys: &str,
        credentials: &str,
        hosts: &str,
        scope: &Scope,
    ) -> Result<Identities> {
        let credentials = if credentials.is_empty() {
            None
        } else {
            Some(sigv4::Credentials::load(Path::new(credentials), scope)?)
        };
        Ok(Identities {
            root_keys: identity::root_keys(root_keys),
            daemon_uid: crate::peer::effective_uid(),
            credentials,
            hosts: exchange::Hosts::new(hosts),
        })
    }
}

impl HttpEndpoint {
    /// Binds `addr` (port 0: any free port; [`HttpEndpoint::local_addr`] says which).
    pub(super) fn bind(addr: SocketAddr) -> Result<HttpEndpoint> {
        let listener = TcpListener::bind(addr)
            .map_err(|e| err!(ValidationException, "cannot listen on http {addr}: {e}"))?;
        let addr = listener
            .local_addr()
            .map_err(|e| err!(KMSInternalException, "http listener has no address: {e}"))?;
        Ok(HttpEndpoint { listener, addr })
    }

    /// The address it listens on.
    pub(super) fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves on a thread of its own until `shutdown` is triggered.
    pub(super) fn spawn(
        self,
        kms: Kms,
        limits: Limits,
        ids: Identities,
        shutdown: Shutdown,
        control: ControlQueue,
    ) -> Result<JoinHandle<()>> {
        std::thread::Builder::new()
            .name("kmscksd-http".into())
            .spawn(move || {
                control.serving_thread();
                if let Err(e) = serve(self.listener, &kms, limits, &ids, &shutdown, control) {
                    tracing::error!(error = %e, "the HTTP endpoint stopped");
                }
            })
            .map_err(|e| err!(KMSInternalException, "cannot start the HTTP thread: {e}"))
    }
}

/// One HTTP connection.
struct Conn {
    stream: TcpStream,
    /// Unhandled request bytes.
    rbuf: Vec<u8>,
    /// Answers not yet written: `wbuf[wpos..]`.
    wbuf: Vec<u8>,
    wpos: usize,
    /// Last whole request received, or answer bytes the peer took: a client reading a long
    /// answer slowly is not idle.
    last_active: Instant,
    /// `100 Continue` was sent for the request at the head of `rbuf`.
    continued: bool,
    /// Close once `wbuf` is written.
    close_after_write: bool,
    /// A request was refused before its body was read: once its answer is written, the
    /// connection lingers ([`LINGER`]) rather than close on the body still coming.
    refused_unread: bool,
    /// The peer closed its side.
    eof: bool,
    /// An event reported the peer's side closed: reads go on to the end of the stream, which
    /// raises no further event (see `fill`).
    hangup: bool,
    /// A slow HSM served a request: write nothing, read nothing before this time.
    held_until: Option<Instant>,
    /// The uid owning the client's end (see `identity`).
    uid: u32,
    /// The handle acting as the last principal seen (most connections keep one).
    acting: Option<(String, Kms)>,
    /// Without credentials: the access key id (`None`: unsigned) `acting` was derived from,
    /// so that a connection's requests, signed with one key, skip deriving the principal.
    acting_key: Option<Option<String>>,
    /// Bytes charged to the uid's memory quota (what it holds beyond [`CONN_FLOOR`]).
    charged: usize,
    /// Not read for lack of memory room, until the uid's memory goes down.
    stalled: bool,
    /// A control-plane request of this connection runs on the control thread: nothing more
    /// is parsed until its answer is written (answers go out in request order).
    awaiting: bool,
    /// The bytes of that request (head and body): still held, decoded, until its answer is
    /// back, and charged to the uid as they were while in `rbuf`.
    deferred: usize,
    /// The length of the request at the head of `rbuf` once its head is whole and its body
    /// not (see [`read_limit`]).
    next_len: Option<usize>,
    /// That length, charged whole before the body is read (0: nothing reserved).
    reserved: usize,
    /// Tells this connection from a later one in the same slot (control answers name it).
    serial: u64,
    /// Its answers are written and its sending side shut: what it still sends is read and
    /// thrown away until it closes or this time passes ([`LINGER`]).
    lingering: Option<Instant>,
}

impl Conn {
    /// A connection just accepted, from `uid`.
    fn new(stream: TcpStream, uid: u32, serial: u64) -> Conn {
        Conn {
            stream,
            rbuf: Vec::new(),
            wbuf: Vec::new(),
            wpos: 0,
            last_active: Instant::now(),
            continued: false,
            close_after_write: false,
            refused_unread: false,
            eof: false,
            hangup: false,
            held_until: None,
            uid,
            acting: None,
            acting_key: None,
            charged: 0,
            stalled: false,
            awaiting: false,
            deferred: 0,
            next_len: None,
            reserved: 0,
            serial,
            lingering: None,
        }
    }

    /// What the connection holds against its uid's memory quota: request bytes read and not
    /// yet answered (in `rbuf` or reserved for the request being read, or on a control
    /// thread), answers not yet written.
    fn memory(&self) -> usize {
        self.rbuf.len().max(self.reserved) + self.deferred + self.unwritten()
    }

    fn unwritten(&self) -> usize {
        self.wbuf.len() - self.wpos
    }
}

/// What a connection's turn ended with.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// Nothing to do before the socket or the clock says so.
    Wait,
    /// Work left (bytes on the socket, requests in the buffer): to be served again after the
    /// others, on this turn of the loop.
    More,
    /// No memory room to read another request: read again once the uid's memory goes down.
    Stalled,
    /// To be closed.
    Close,
}

impl Drop for Conn {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.rbuf);
        zeroize::Zeroize::zeroize(&mut self.wbuf);
    }
}

/// A request's answer from a control thread, encoded there ([`encode_answer`]). The body may
/// hold a plaintext or a data key: one whose connection is gone is wiped when dropped.
struct Done {
    slot: usize,
    serial: u64,
    answer: (u16, Zeroizing<Vec<u8>>),
    close: bool,
}

/// The lane of a request this loop does not answer itself: the control threads' lanes as on
/// the socket ([`Lane::of`]), and the batch operations (kmscks's own, not AWS's) on the slow
/// lane. The socket's loop answers a batch a slice at a time, between other connections'
/// requests; this loop could only answer one whole, holding every other client meanwhile.
fn lane_of(request: &Request) -> Option<Lane> {
    Lane::of(request)
        .or_else(|| super::dispatch::is_batch(request.op().code()).then_some(Lane::Rsa))
}

/// The largest answer body: four times the largest request body. An Encrypt batch filling a
/// request with 4 KiB plaintexts is answered in about 1.1 MiB; a batch of many small items can
/// ask for twenty times its size (an empty item `{}` is answered with a 70-byte error), and
/// is refused with `LimitExceededException` instead.
const MAX_ANSWER: usize = 4 * MAX_BODY;

/// The HTTP status and JSON body answering `result`; an answer over [`MAX_ANSWER`] bytes is a
/// `LimitExceededException` naming its size, what it would have held wiped.
fn encode_answer(result: Result<Response>) -> (u16, Vec<u8>) {
    let response = match result {
        Ok(response) => response,
        Err(e) => return aws_json::encode_error(&e),
    };
    let body = aws_json::encode_response(&response);
    if body.len() <= MAX_ANSWER {
        return (200, body);
    }
    let e = err!(
        LimitExceededException,
        "the {} answer of {} bytes exceeds the endpoint's limit of {MAX_ANSWER} bytes; send \
         fewer items per batch",
        response.op().name(),
        body.len()
    );
    wipe(body);
    aws_json::encode_error(&e)
}

/// How the loop hands control-plane requests to the control thread and hears back.
struct Control {
    queue: ControlQueue,
    done: Sender<Done>,
    waker: Arc<Waker>,
}

impl Control {
    /// Runs `request` as `handle` on its control thread's lane; its answer comes back as a
    /// [`Done`] for `(slot, serial)`. False if the thread is gone, or the request is one this
    /// loop answers itself.
    fn submit(
        &self,
        (slot, serial): (usize, u64),
        handle: &Kms,
        request: Request,
        close: bool,
    ) -> bool {
        let Some(lane) = lane_of(&request) else {
            return false;
        };
        let principal = handle.principal().to_owned();
        let (handle, done, waker) = (handle.clone(), self.done.clone(), self.waker.clone());
        self.queue.submit(
            lane,
            &principal,
            Box::new(move || {
                // A panic (a bug) is answered too, and the connection closed, so that it does
                // not wait for its answer for good (the lane goes on either way).
                let dispatched = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    handle.dispatch(&request)
                }));
                let panicked = dispatched.is_err();
                let result = dispatched.unwrap_or_else(|_| Err(dispatch::panicked()));
                let (status, body) = encode_answer(result);
                let answer = (status, Zeroizing::new(body));
                let _ = done.send(Done {
                    slot,
                    serial,
                    answer,
                    close: close || panicked,
                });
                let _ = waker.wake();
            }),
        )
    }
}

fn serve(
    mut listener: TcpListener,
    kms: &Kms,
    mut limits: Limits,
    ids: &Identities,
    shutdown: &Shutdown,
    queue: ControlQueue,
) -> Result<()> {
    let mut poll =
        Poll::new().map_err(|e| err!(KMSInternalException, "cannot create the poller: {e}"))?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)
        .map_err(|e| err!(KMSInternalException, "cannot register the listener: {e}"))?;
    let waker = Arc::new(
        Waker::new(poll.registry(), WAKER)
            .map_err(|e| err!(KMSInternalException, "cannot create the waker: {e}"))?,
    );
    let (done_tx, done_rx) = crossbeam::channel::unbounded::<Done>();
    let control = Control {
        queue,
        done: done_tx,
        waker,
    };
    let mut serial = 0u64;
    // The latency a slow HSM adds is paid by holding a connection, not by this thread.
    crate::engine::latency::defer_on_this_thread();
    let mut conns: Vec<Option<Conn>> = Vec::new();
    // One for the loop: every `answer` leaves it empty.
    let mut batcher = Batcher::default();
    let mut events = Events::with_capacity(256);
    let mut last_sweep = Instant::now();
    // Connections with work left after their turn, or woken from a stall: served after the
    // next poll's events.
    let mut again: Vec<usize> = Vec::new();
    // The connections to serve on this turn (kept to reuse its allocation).
    let mut ready: Vec<usize> = Vec::new();
    let mut spin = Spin::new();
    // Connections may be waiting to be accepted: the listener was ready, and the last turn's
    // accepts stopped at their cap.
    let mut accept_more = false;
    while !shutdown.is_triggered() {
        let now = Instant::now();
        let idle = conns
            .iter()
            .flatten()
            .filter_map(|c| c.held_until)
            .map(|t| t.saturating_duration_since(now))
            .fold(TICK, Duration::min);
        // Poll without sleeping for a moment after activity, as the socket's loop does.
        let timeout = spin.next_poll(!again.is_empty() || accept_more, idle, now);
        if let Err(e) = poll.poll(&mut events, Some(timeout)) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err!(KMSInternalException, "poll failed: {e}"));
        }
        spin.saw(!events.is_empty(), Instant::now());
        for event in events.iter() {
            match event.token() {
                LISTENER => accept_more = true,
                WAKER => answered(&mut conns, &done_rx, &mut ready),
                token => {
                    if event.is_read_closed() {
                        if let Some(c) = conns.get_mut(token.0).and_then(Option::as_mut) {
                            c.hangup = true;
                        }
                    }
                    ready.push(token.0)
                }
            }
        }
        if accept_more {
            accept_more = accept_all(
                &listener,
                &poll,
                &mut conns,
                &mut limits.quotas,
                &mut serial,
            );
        }
        ready.append(&mut again);
        // Held connections whose time has come.
        let now = Instant::now();
        for (slot, conn) in conns.iter_mut().enumerate() {
            if let Some(c) = conn
                .as_mut()
                .filter(|c| c.held_until.is_some_and(|t| t <= now))
            {
                c.held_until = None;
                ready.push(slot);
            }
        }
        for slot in ready.drain(..) {
            let Some(conn) = conns.get_mut(slot).and_then(Option::as_mut) else {
                continue;
            };
            let outcome = turn((slot, conn), kms, ids, &mut batcher, &mut limits, &control);
            let woken = sync_charge(conn, &mut limits.quotas);
            match outcome {
                Outcome::Wait => {}
                Outcome::More => again.push(slot),
                // The turn's own releases (a request answered, a control answer back) are
                // charged only now, by `sync_charge` above: when they made the room the
                // connection waits for, it reads again rather than wait for a release that
                // has already happened.
                Outcome::Stalled if can_read(conn, &limits.quotas) => again.push(slot),
                Outcome::Stalled => {
                    conn.stalled = true;
                    limits.quotas.wait(conn.uid, slot);
                }
                Outcome::Close => close(&poll, &mut conns, slot, &mut limits.quotas, &mut again),
            }
            wake(&mut conns, woken, &mut again);
        }
        if last_sweep.elapsed() >= Duration::from_secs(1) {
            last_sweep = Instant::now();
            for slot in 0..conns.len() {
                // A stalled connection is idle too: one waiting for room its uid's other
                // connections never give back is closed like any other idle one. One waiting
                // for a control-plane answer waits for us.
                let idle = conns[slot].as_ref().is_some_and(|c| {
                    c.lingering.is_some_and(|until| Instant::now() >= until)
                        || (c.held_until.is_none()
                            && !c.awaiting
                            && c.last_active.elapsed() >= limits.idle_timeout)
                });
                if idle {
                    close(&poll, &mut conns, slot, &mut limits.quotas, &mut again);
                }
            }
        }
    }
    Ok(())
}

/// Writes the control-plane answers that came back, each to its connection (if it is still
/// there), which is then served again: its answer to write, its next requests to parse.
fn answered(conns: &mut [Option<Conn>], done: &Receiver<Done>, ready: &mut Vec<usize>) {
    while let Ok(mut d) = done.try_recv() {
        let Some(conn) = conns
            .get_mut(d.slot)
            .and_then(Option::as_mut)
            .filter(|c| c.serial == d.serial)
        else {
            continue;
        };
        let body = std::mem::take(&mut *d.answer.1);
        Answers(&mut conn.wbuf).write_encoded((d.answer.0, body), d.close);
        conn.close_after_write |= d.close;
        conn.awaiting = false;
        conn.deferred = 0;
        conn.last_active = Instant::now();
        ready.push(d.slot);
    }
}

/// Brings the uid's memory charge for `conn` up to date; the slots of the uid's stalled
/// connections to read again, when it went down.
fn sync_charge(conn: &mut Conn, quotas: &mut Quotas) -> Vec<usize> {
    let now = conn.memory().saturating_sub(CONN_FLOOR);
    if now == conn.charged {
        return Vec::new();
    }
    let old = std::mem::replace(&mut conn.charged, now);
    quotas.charge(conn.uid, old, now)
}

/// Puts the stalled connections among `slots` back to be served on this turn.
fn wake(conns: &mut [Option<Conn>], slots: Vec<usize>, again: &mut Vec<usize>) {
    for slot in slots {
        if let Some(conn) = conns.get_mut(slot).and_then(Option::as_mut) {
            if conn.stalled {
                conn.stalled = false;
                again.push(slot);
            }
        }
    }
}

/// Tells a connection refused at accept why, as the socket does with its error frame: one
/// AWS JSON error answer (`LimitExceededException`, the message naming the quota) with
/// `Connection: close`, then the close. Written only as far as the socket takes it at once
/// (a fresh connection's send buffer takes it whole); the request, if any, is not read.
fn refuse_at_accept(stream: &mut TcpStream, e: &crate::KmsError) {
    let (status, body) = aws_json::encode_error(e);
    let mut answer = Vec::new();
    exchange::write_answer(&mut answer, status, &request_id(), &body, true);
    let _ = stream.write(&answer);
}

/// Accepts waiting connections, at most [`ACCEPTS_PER_TURN`]; whether more may be waiting
/// (the cap was reached: accept again on the next turn, as the listener's readiness, edge-
/// triggered, will not be reported again for them).
fn accept_all(
    listener: &TcpListener,
    poll: &Poll,
    conns: &mut Vec<Option<Conn>>,
    quotas: &mut Quotas,
    serial: &mut u64,
) -> bool {
    for _ in 0..ACCEPTS_PER_TURN {
        let (mut stream, peer) = match listener.accept() {
            Ok(s) => s,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::warn!(error = %e, "http accept failed");
                return false;
            }
        };
        let owner = stream
            .local_addr()
            .ok()
            .and_then(|local| crate::peer::loopback_tcp_peer_uid(local, peer));
        let Some(uid) = owner else {
            tracing::warn!(%peer, "cannot tell which uid connected over HTTP; closing");
            continue;
        };
        if let Err(e) = quotas.admit(uid) {
            tracing::warn!(%peer, uid, reason = %e, "HTTP connection refused");
            refuse_at_accept(&mut stream, &e);
            continue;
        }
        let slot = conns.iter().position(Option::is_none).unwrap_or_else(|| {
            conns.push(None);
            conns.len() - 1
        });
        let _ = stream.set_nodelay(true);
        // A failure leaves the kernel's default, and costs nothing else.
        let _ = cap_buffer(&stream, libc::SO_SNDBUF);
        if poll
            .registry()
            .register(
                &mut stream,
                Token(slot),
                Interest::READABLE | Interest::WRITABLE,
            )
            .is_err()
        {
            quotas.release(uid);
            continue;
        }
        conns[slot] = Some(Conn::new(stream, uid, *serial));
        *serial += 1;
    }
    true
}

fn close(
    poll: &Poll,
    conns: &mut [Option<Conn>],
    slot: usize,
    quotas: &mut Quotas,
    again: &mut Vec<usize>,
) {
    if let Some(mut conn) = conns.get_mut(slot).and_then(Option::take) {
        let _ = poll.registry().deregister(&mut conn.stream);
        let woken = quotas.charge(conn.uid, conn.charged, 0);
        quotas.release(conn.uid);
        wake(conns, woken, again);
    }
}

/// Reads, answers and writes what the connection allows now, for at most [`MAX_ROUNDS`]
/// rounds of at most [`READ_CHUNK`] bytes read each, so that one busy client cannot keep the
/// loop from the others; reads only what the uid's memory quota and the connection's unwritten
/// answers leave room for.
fn turn(
    (slot, conn): (usize, &mut Conn),
    kms: &Kms,
    ids: &Identities,
    batcher: &mut Batcher,
    limits: &mut Limits,
    control: &Control,
) -> Outcome {
    if conn.held_until.is_some() {
        return Outcome::Wait;
    }
    if let Some(until) = conn.lingering {
        return linger(conn, until);
    }
    if conn.awaiting {
        // Its answer's arrival serves it again; meanwhile its bytes wait in the kernel.
        return match flush(conn) {
            Err(_) => Outcome::Close,
            Ok(_) => Outcome::Wait,
        };
    }
    // The engine work this connection may take this turn, as on the socket's loops: one unit
    // per request and KiB, and one per microsecond a request answered here took beyond that
    // (a signature under an ECC key takes hundreds whatever its size).
    let mut work = dispatch::WORK_PER_TURN;
    for _ in 0..MAX_ROUNDS {
        let read = if conn.unwritten() >= limits.max_pending_answers {
            // The client reads its answers too slowly: read it no more until they are
            // written (a WRITABLE event comes then).
            Filled::Limit(0)
        } else {
            let limit = read_limit(conn, &mut limits.quotas);
            fill(conn, limit.min(READ_CHUNK))
        };
        let (buffered, unwritten) = (conn.rbuf.len(), conn.unwritten());
        let room = answer_room(conn, limits);
        let held = answer((slot, conn), kms, ids, batcher, control, room, &mut work);
        if let Some(owed) = Some(crate::engine::latency::take_owed()).filter(|d| !d.is_zero()) {
            conn.held_until = Some(Instant::now() + owed);
            return Outcome::Wait;
        }
        let answered = conn.rbuf.len() < buffered || conn.unwritten() > unwritten;
        match flush(conn) {
            Err(_) => return Outcome::Close,
            Ok(true) if conn.close_after_write && conn.refused_unread && !conn.eof => {
                // The client may still be sending: shut our side and read what comes until
                // it closes, so that its answer is not lost to a reset.
                let _ = conn.stream.shutdown(std::net::Shutdown::Write);
                let until = Instant::now() + LINGER;
                conn.lingering = Some(until);
                return linger(conn, until);
            }
            Ok(true) if conn.close_after_write => return Outcome::Close,
            Ok(true) if conn.eof && conn.rbuf.is_empty() && !conn.awaiting => {
                return Outcome::Close
            }
            Ok(_) => {}
        }
        if conn.awaiting {
            // Read nothing more until the answer is back (it serves the connection again).
            return Outcome::Wait;
        }
        if work == 0 {
            // Its turn's work is spent: the others' turns come first, then the rest of its
            // requests (left in its buffer) on its next.
            return Outcome::More;
        }
        if held {
            // Answering stopped for room (`answer_room`). Answers the kernel did not take
            // wait for the client to read (its WRITABLE event serves it again); once it has
            // taken them all, the next round has room again.
            if conn.unwritten() > 0 {
                return Outcome::Wait;
            }
            continue;
        }
        let written = conn.unwritten() < unwritten;
        match read {
            Filled::Drained => return Outcome::Wait,
            Filled::Limit(n) if n == 0 && !answered && !written => {
                // Nothing moved: the client reads nothing (its WRITABLE event wakes it), or
                // the uid has no memory room left (its next uncharge wakes it).
                return if conn.unwritten() > 0 {
                    Outcome::Wait
                } else {
                    Outcome::Stalled
                };
            }
            Filled::Limit(_) if conn.close_after_write => return Outcome::Wait,
            Filled::Limit(_) => {}
        }
    }
    Outcome::More
}

/// Reads and throws away what a lingering connection sends (see [`LINGER`]): `Close` once it
/// has closed or failed, or `until` has passed; `More` after a turn's worth of bytes (the
/// other connections' turns come first); otherwise `Wait` for its next bytes. Nothing read is
/// kept or charged.
fn linger(conn: &mut Conn, until: Instant) -> Outcome {
    let mut sink = [0u8; READ_CHUNK];
    for _ in 0..MAX_ROUNDS {
        if Instant::now() >= until {
            return Outcome::Close;
        }
        loop {
            match conn.stream.read(&mut sink) {
                Ok(0) => return Outcome::Close,
                Ok(_) => break,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Outcome::Wait,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Outcome::Close,
            }
        }
    }
    Outcome::More
}

/// The kernel's send buffer of a connection, at most (`SO_SNDBUF`; Linux doubles it for its
/// bookkeeping). Answers the kernel holds are memory no quota here counts, and TCP grows a
/// connection's buffer up to `tcp_wmem`'s maximum (4 MiB by default) for a client that does not
/// read: a uid's hundreds of connections would hold gigabytes. Loopback needs no more than
/// this to keep a pipelined client busy.
const SEND_BUFFER: libc::c_int = 256 * 1024;

/// Sets `socket`'s kernel buffer `option` (`SO_SNDBUF` or `SO_RCVBUF`) to [`SEND_BUFFER`],
/// which also stops the kernel from growing it.
#[allow(unsafe_code)]
fn cap_buffer(socket: &impl std::os::fd::AsRawFd, option: libc::c_int) -> io::Result<()> {
    let size = SEND_BUFFER;
    // SAFETY: the descriptor is open for the call (borrowed from a live socket), and the value
    // is a c_int whose address and size are passed together.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            option,
            std::ptr::from_ref(&size).cast(),
            std::mem::size_of_val(&size) as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// How many answer bytes a connection may add to its unwritten ones now ([`answer_room`]).
#[derive(Clone, Copy, Debug)]
struct AnswerRoom {
    /// Up to `max_pending_reply_bytes` unwritten.
    pending: usize,
    /// What its floor and its uid's quota let it hold beyond what it holds now; answering
    /// gives back its requests' bytes, which count as room as they are consumed.
    memory: usize,
}

impl AnswerRoom {
    /// No bound: the tests of what a turn's work allows.
    #[cfg(test)]
    const UNBOUNDED: AnswerRoom = AnswerRoom {
        pending: usize::MAX,
        memory: usize::MAX,
    };
}

/// The answer bytes `conn` may add now. The read limits alone do not bound answers: a
/// request of 170 bytes may ask for one of 30 KB (GetKeyPolicy), and a client that sends many
/// and reads none would otherwise have them all answered into memory charged after the fact.
/// What it was charged at the last sync counts as its own: its answers written since (a
/// control-plane answer back, say) are in `memory()` and not yet in its uid's.
fn answer_room(conn: &Conn, limits: &Limits) -> AnswerRoom {
    AnswerRoom {
        pending: limits.max_pending_answers.saturating_sub(conn.unwritten()),
        memory: (CONN_FLOOR + limits.quotas.room(conn.uid) + conn.charged)
            .saturating_sub(conn.memory()),
    }
}

/// What [`quota::next_read`]'s rule lets `conn` read now, with the room its floor and its
/// uid's quota leave.
fn next_read_of(conn: &Conn, quotas: &Quotas) -> NextRead {
    let room = CONN_FLOOR.saturating_sub(conn.memory()) + quotas.room(conn.uid);
    // A request is charged its length: JSON bodies are decoded by the request, on this thread.
    quota::next_read(room, conn.rbuf.len(), conn.next_len, 0, conn.reserved)
}

/// Whether [`read_limit`] would let `conn` read (or reserve) anything now. Asks without
/// reserving.
fn can_read(conn: &Conn, quotas: &Quotas) -> bool {
    match next_read_of(conn, quotas) {
        NextRead::UpTo(n) => n > 0,
        NextRead::Reserve { .. } => true,
        NextRead::Wait { .. } => false,
    }
}

/// How many bytes `conn` may read now, by [`quota::next_read`]'s rule; a request it reserves
/// is charged at once, so that the next connection's room is read with it.
fn read_limit(conn: &mut Conn, quotas: &mut Quotas) -> usize {
    match next_read_of(conn, quotas) {
        NextRead::UpTo(n) => n,
        NextRead::Reserve { charge, rest } => {
            conn.reserved = charge;
            // A charge that went up wakes no one.
            let _ = sync_charge(conn, quotas);
            rest
        }
        NextRead::Wait { .. } => 0,
    }
}

/// How a `fill` ended.
#[derive(Debug, PartialEq, Eq)]
enum Filled {
    /// The socket has nothing more now (or the peer closed its side).
    Drained,
    /// Read this many bytes and stopped at the limit: more may wait on the socket.
    Limit(usize),
}

/// Reads what the socket has, up to `limit` bytes and one whole request's worth of buffer.
///
/// A read returning fewer bytes than asked has drained the socket (epoll(7), stream
/// sockets): no second read to see `EAGAIN` between a request and its answer; later bytes
/// raise a new event. After a hangup event reading goes on to the end of the stream.
fn fill(conn: &mut Conn, limit: usize) -> Filled {
    let cap = MAX_HEAD + MAX_BODY;
    let mut read = 0;
    while !conn.eof && !conn.close_after_write {
        let start = conn.rbuf.len();
        let want = (limit - read).min(cap.saturating_sub(start));
        if want == 0 {
            return Filled::Limit(read);
        }
        // Grown by moving to a larger allocation, the old one is wiped before it is freed. A
        // request reserved whole grows it to its length exactly: doubling past it would hold
        // up to twice what the uid is charged.
        if conn.reserved > start {
            crate::secret::reserve_exact_wiping(&mut conn.rbuf, conn.reserved - start);
        }
        crate::secret::reserve_wiping(&mut conn.rbuf, want);
        conn.rbuf.resize(start + want, 0);
        match conn.stream.read(&mut conn.rbuf[start..]) {
            Ok(0) => {
                conn.rbuf.truncate(start);
                conn.eof = true;
            }
            Ok(n) => {
                conn.rbuf.truncate(start + n);
                read += n;
                if n < want && !conn.hangup {
                    return Filled::Drained;
                }
            }
            Err(e) => {
                conn.rbuf.truncate(start);
                if e.kind() == io::ErrorKind::WouldBlock {
                    return Filled::Drained;
                }
                if e.kind() != io::ErrorKind::Interrupted {
                    conn.eof = true;
                }
            }
        }
    }
    Filled::Drained
}

/// Answers the whole requests at the head of the buffer, in order, while `work` is left (each
/// pays [`dispatch::work_cost`] of its length, and one answered here on its own also the time
/// it took beyond that, [`dispatch::work_taken`]) and while its answers stay within `room`
/// ([`answer_room`]; an answer begun is finished: a control-plane answer's size is known only
/// once it is back, and a batch's answers are written at its end); consecutive data-plane
/// requests go to the engine as one batch (`batcher`, empty again on return). Whether it
/// stopped for room with requests left.
fn answer(
    (slot, conn): (usize, &mut Conn),
    kms: &Kms,
    ids: &Identities,
    batcher: &mut Batcher,
    control: &Control,
    room: AnswerRoom,
    work: &mut usize,
) -> bool {
    let mut used = 0;
    let mut answered = false;
    let mut held = false;
    let start = conn.unwritten();
    while !conn.close_after_write && !conn.awaiting && *work > 0 {
        // Held only while answers are unwritten, whose WRITABLE event serves the connection
        // again (once the client reads, the memory they hold is given back too); with none,
        // one more is always answered, so that every connection moves.
        let added = conn.unwritten().saturating_sub(start);
        if conn.unwritten() > 0
            && (added >= room.pending || added >= room.memory.saturating_add(used))
        {
            held = used < conn.rbuf.len();
            break;
        }
        match exchange::parse(&conn.rbuf[used..], &ids.hosts) {
            Parsed::Partial {
                expects_continue,
                whole,
            } => {
                // Its length from its start, which is the buffer's once what was used is
                // consumed (before the next read).
                conn.next_len = whole;
                if expects_continue && !conn.continued {
                    answer_batch(batcher, &conn.acting, &mut conn.wbuf);
                    crate::secret::extend_wiping(&mut conn.wbuf, CONTINUE);
                    conn.continued = true;
                }
                if conn.eof && conn.rbuf.len() > used {
                    // The peer closed mid-request: nothing can complete it.
                    conn.close_after_write = true;
                }
                break;
            }
            Parsed::Refused(status, e) => {
                answer_batch(batcher, &conn.acting, &mut conn.wbuf);
                let (_, body) = aws_json::encode_error(&e);
                exchange::write_answer(&mut conn.wbuf, status, &request_id(), &body, true);
                conn.close_after_write = true;
                conn.refused_unread = true;
                used = conn.rbuf.len();
            }
            Parsed::Whole(ex) => {
                let close = !ex.keep_alive;
                conn.next_len = None;
                conn.reserved = 0;
                let request = act_as(
                    (&mut conn.acting, &mut conn.acting_key),
                    conn.uid,
                    kms,
                    ids,
                    &ex,
                    batcher,
                    &mut conn.wbuf,
                )
                .and_then(|()| request_of(&ex));
                let mut out = Answers(&mut conn.wbuf);
                match (request, conn.acting.as_ref()) {
                    (Ok(request), Some((_, handle))) if lane_of(&request).is_some() => {
                        // Off this thread (it may wait for the state's lock and an fsync);
                        // nothing more is parsed until the answer is back.
                        batcher.flush(handle, &mut out);
                        if control.submit((slot, conn.serial), handle, request, close) {
                            conn.awaiting = true;
                            conn.deferred = ex.len;
                        } else {
                            let e = err!(KMSInternalException, "the control thread is gone");
                            out.write(Err(e), close);
                        }
                    }
                    (Ok(request), Some((_, handle))) => {
                        let rest = if close {
                            Some(request)
                        } else {
                            batcher.push(0, request, handle, &mut out)
                        };
                        if let Some(request) = rest {
                            batcher.flush(handle, &mut out);
                            let started = Instant::now();
                            let result = handle.dispatch(&request);
                            let beyond_size = dispatch::work_taken(started.elapsed())
                                .saturating_sub(dispatch::work_cost(ex.len));
                            *work = work.saturating_sub(beyond_size);
                            out.write(result, close);
                        }
                    }
                    (Ok(_), None) => {
                        // Not reached: `act_as` sets the handle whenever it succeeds.
                        let e = err!(KMSInternalException, "no principal");
                        out.write(Err(e), close);
                    }
                    (Err(e), acting) => {
                        if let Some((_, handle)) = acting {
                            batcher.flush(handle, &mut out);
                        }
                        out.write(Err(e), close);
                    }
                }
                *work = work.saturating_sub(dispatch::work_cost(ex.len));
                used += ex.len;
                conn.continued = false;
                // A request answered later closes the connection when its answer is written.
                conn.close_after_write = close && !conn.awaiting;
                answered = true;
            }
        }
    }
    answer_batch(batcher, &conn.acting, &mut conn.wbuf);
    if answered {
        conn.last_active = Instant::now();
    }
    if used > 0 {
        consume(&mut conn.rbuf, used);
    }
    held
}

/// Drops the first `used` bytes of `rbuf`, leaving no copy of them, nor of the bytes moved to
/// the front, in its spare capacity; a buffer that grew past [`CONN_FLOOR`] (a large request)
/// and now holds less than half of it gives its allocation back, wiped, keeping what is left
/// (the start of the next requests) in one of its length. Its uid is charged its length, not
/// its capacity: a large allocation kept for a few bytes would be memory charged to no one.
fn consume(rbuf: &mut Vec<u8>, used: usize) {
    crate::secret::drop_front_wiping(rbuf, used);
    if rbuf.capacity() > CONN_FLOOR && rbuf.len() < rbuf.capacity() / 2 {
        crate::secret::shrink_wiping(rbuf);
    }
}

/// Answers the collected batch (as the principal that collected it).
fn answer_batch(batcher: &mut Batcher, acting: &Option<(String, Kms)>, wbuf: &mut Vec<u8>) {
    if let Some((_, handle)) = acting {
        batcher.flush(handle, &mut Answers(wbuf));
    }
}

/// The HTTP answers of a connection, appended to its write buffer in the order written.
struct Answers<'a>(&'a mut Vec<u8>);

impl Answers<'_> {
    /// Appends the answer to one request.
    fn write(&mut self, result: Result<Response>, close: bool) {
        self.write_encoded(encode_answer(result), close);
    }

    /// Appends an answer [`encode_answer`] made.
    fn write_encoded(&mut self, (status, body): (u16, Vec<u8>), close: bool) {
        exchange::write_answer(self.0, status, &request_id(), &body, close);
        wipe(body);
    }
}

impl Replies for Answers<'_> {
    /// Batched requests are kept-alive ones: none of their answers closes the connection.
    fn reply(&mut self, _id: u64, _op: Op, result: Result<Response>) {
        self.write(result, false);
    }
}

/// Makes `acting` the handle of the principal `ex` acts as (see `identity` and `sigv4`),
/// answering the batch collected so far first when the principal changes; the error of a
/// request whose signature does not verify.
fn act_as(
    (acting, acting_key): (&mut Option<(String, Kms)>, &mut Option<Option<String>>),
    uid: u32,
    kms: &Kms,
    ids: &Identities,
    ex: &exchange::Exchange<'_>,
    batcher: &mut Batcher,
    wbuf: &mut Vec<u8>,
) -> Result<()> {
    let principal = match &ids.credentials {
        Some(creds) => {
            let signed = sigv4::Signed {
                method: "POST",
                target: ex.path,
                headers: &ex.headers,
                body: &ex.body,
            };
            sigv4::verify(creds, kms.scope(), &signed, std::time::SystemTime::now())?
        }
        None => {
            let key = ex.authorization.and_then(identity::access_key_id);
            if acting.is_some() && acting_key.as_ref().is_some_and(|k| k.as_deref() == key) {
                return Ok(());
            }
            *acting_key = Some(key.map(str::to_owned));
            identity::principal(
                kms.scope(),
                &ids.root_keys,
                uid,
                ids.daemon_uid,
                ex.authorization,
            )
        }
    };
    if acting.as_ref().is_none_or(|(p, _)| *p != principal) {
        answer_batch(batcher, acting, wbuf);
        let handle = kms.acting_as(&principal);
        *acting = Some((principal, handle));
    }
    Ok(())
}

/// The request `ex` names and carries.
fn request_of(ex: &exchange::Exchange<'_>) -> Result<Request> {
    let target = ex.target.ok_or_else(|| {
        err!(
            UnknownOperationException,
            "The request has no X-Amz-Target header"
        )
    })?;
    let mut request = aws_json::decode_request(aws_json::operation(target)?, &ex.body)?;
    if let Request::WaitForConnection(WaitForConnectionRequest { timeout_millis, .. }) =
        &mut request
    {
        // Never block this thread: over HTTP it answers the state at once.
        *timeout_millis = 0;
    }
    Ok(request)
}

/// Writes what the socket takes; true once everything is written. Bytes taken count as
/// activity (`last_active`).
fn flush(conn: &mut Conn) -> io::Result<bool> {
    let from = conn.wpos;
    while conn.wpos < conn.wbuf.len() {
        match conn.stream.write(&conn.wbuf[conn.wpos..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => conn.wpos += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if conn.wpos > from {
                    conn.last_active = Instant::now();
                }
                // Answers written go (wiped) once they are half the buffer, or a client that
                // keeps its answers coming, never all written, grows it without bound: only
                // the unwritten part is charged and limited.
                if conn.wpos >= CONN_FLOOR && conn.wpos * 2 >= conn.wbuf.len() {
                    crate::secret::drop_front_wiping(&mut conn.wbuf, conn.wpos);
                    conn.wpos = 0;
                }
                return Ok(false);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    if conn.wpos > from {
        conn.last_active = Instant::now();
    }
    // Its spare capacity holds nothing to wipe: the buffer only grows by `extend_wiping` and
    // `reserve_wiping`, and is emptied only here, after its bytes are wiped.
    crate::secret::wipe(&mut conn.wbuf);
    conn.wbuf.clear();
    conn.wpos = 0;
    if conn.wbuf.capacity() > CONN_FLOOR {
        // Large answers were written: give the allocation back (wiped above).
        conn.wbuf = Vec::new();
    }
    Ok(true)
}

fn wipe(mut body: Vec<u8>) {
    crate::secret::wipe(&mut body);
}

/// A fresh `x-amzn-RequestId`: a UUID made of a random per-thread prefix and a counter, so
/// ids are unique without drawing randomness per request.
fn request_id() -> String {
    use std::cell::Cell;
    thread_local! {
        static NEXT: Cell<(u64, u64)> = Cell::new((random_u64(), 0));
    }
    let (prefix, n) = NEXT.with(|c| {
        let (p, n) = c.get();
        c.set((p, n.wrapping_add(1)));
        (p, n)
    });
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&prefix.to_be_bytes());
    bytes[8..].copy_from_slice(&n.to_be_bytes());
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .to_string()
}

fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    // Without randomness the ids are still unique within the process (the counter).
    let _ = aws_lc_rs::rand::fill(&mut b);
    u64::from_ne_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consuming_a_request_keeps_the_rest_at_the_front() {
        let mut rbuf = b"first-request|second-partial".to_vec();
        consume(&mut rbuf, "first-request|".len());
        assert_eq!(rbuf, b"second-partial");
    }

    #[test]
    fn an_emptied_buffer_that_grew_past_the_floor_gives_its_allocation_back() {
        let mut rbuf = vec![7u8; CONN_FLOOR + 1];
        consume(&mut rbuf, CONN_FLOOR + 1);
        assert_eq!(rbuf.capacity(), 0);
        let mut small = vec![7u8; 100];
        consume(&mut small, 100);
        assert!(
            small.capacity() >= 100,
            "a small buffer keeps its allocation"
        );
    }

    #[test]
    fn a_large_buffer_left_holding_the_start_of_the_next_request_shrinks_to_it() {
        // As a chunked request, charged and read up to the largest body, leaves it: the next
        // request's first bytes read with it.
        let mut rbuf = Vec::with_capacity(MAX_HEAD + MAX_BODY);
        rbuf.resize(200_000, b'x');
        rbuf.extend_from_slice(b"POST / HT");
        consume(&mut rbuf, 200_000);
        assert_eq!(rbuf, b"POST / HT");
        assert_eq!(rbuf.capacity(), rbuf.len(), "uncharged memory kept");
        // Half full or more, it is kept as it is (the next request is large too).
        let mut half = Vec::with_capacity(4 * CONN_FLOOR);
        half.resize(3 * CONN_FLOOR, b'y');
        consume(&mut half, CONN_FLOOR);
        assert_eq!(
            (half.len(), half.capacity()),
            (2 * CONN_FLOOR, 4 * CONN_FLOOR)
        );
    }

    #[test]
    fn a_request_reserved_whole_is_read_into_a_buffer_of_its_length() {
        use std::io::Write;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut peer = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (ours, _) = listener.accept().unwrap();
        ours.set_nonblocking(true).unwrap();
        let mut conn = Conn::new(TcpStream::from_std(ours), 0, 0);
        let head = format!("POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n", MAX_BODY);
        let whole = head.len() + MAX_BODY;
        // As `read_limit` leaves it once the head is read: the whole request charged.
        (conn.next_len, conn.reserved) = (Some(whole), whole);
        // All but the last byte: read 16 KiB at a time, the buffer grows all the way.
        let sender = std::thread::spawn(move || {
            peer.write_all(head.as_bytes()).unwrap();
            peer.write_all(&vec![b' '; MAX_BODY - 1]).unwrap();
            peer
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        while conn.rbuf.len() < whole - 1 {
            assert!(
                Instant::now() < deadline,
                "read {} of {whole}",
                conn.rbuf.len()
            );
            // As `read_limit` limits it: never past the request's end.
            let limit = READ_CHUNK.min(whole - conn.rbuf.len());
            if let Filled::Drained = fill(&mut conn, limit) {
                std::thread::yield_now();
            }
        }
        let _peer = sender.join().unwrap();
        assert!(
            conn.rbuf.capacity() <= whole,
            "a buffer of {} bytes for a request of {whole} charged",
            conn.rbuf.capacity()
        );
    }

    #[test]
    fn connections_waiting_to_be_accepted_are_taken_a_capped_number_a_turn() {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = std_listener.local_addr().unwrap();
        std_listener.set_nonblocking(true).unwrap();
        let listener = TcpListener::from_std(std_listener);
        let poll = Poll::new().unwrap();
        let config = crate::daemon::DaemonConfig::default();
        let mut quotas = Quotas::new(&config, crate::peer::effective_uid());
        let waiting = ACCEPTS_PER_TURN + 8;
        // Connected (the kernel completes a loopback handshake before `connect` returns),
        // so all of them wait in the backlog.
        let _clients: Vec<_> = (0..waiting)
            .map(|_| std::net::TcpStream::connect(addr).unwrap())
            .collect();
        let (mut conns, mut serial) = (Vec::new(), 0);
        let more = accept_all(&listener, &poll, &mut conns, &mut quotas, &mut serial);
        assert!(more, "the cap was reached: more may wait");
        assert_eq!(conns.iter().flatten().count(), ACCEPTS_PER_TURN);
        let more = accept_all(&listener, &poll, &mut conns, &mut quotas, &mut serial);
        assert!(!more, "the backlog is empty");
        assert_eq!(conns.iter().flatten().count(), waiting);
    }

    #[test]
    fn a_connection_pipelining_slow_signatures_is_answered_a_turns_work_of_them_at_a_time() {
        use crate::api::kms::CreateKeyRequest;
        use crate::types::{KeySpec, KeyUsage};
        use base64::Engine as _;
        let kms = Kms::in_memory();
        let key = kms
            .create_key(&CreateKeyRequest {
                key_spec: Some(KeySpec::EccNistP521),
                key_usage: Some(KeyUsage::SignVerify),
                ..Default::default()
            })
            .unwrap()
            .key_metadata
            .key_id;
        let ids = Identities::new("", "", "", kms.scope()).unwrap();
        let thread = super::super::control_thread::ControlThread::start(0).unwrap();
        let poll = Poll::new().unwrap();
        let control = Control {
            queue: thread.queue(),
            done: crossbeam::channel::unbounded().0,
            waker: Arc::new(Waker::new(poll.registry(), WAKER).unwrap()),
        };
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let _peer = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (ours, _) = listener.accept().unwrap();
        ours.set_nonblocking(true).unwrap();
        let mut conn = Conn::new(TcpStream::from_std(ours), crate::peer::effective_uid(), 0);
        // 64 signatures of a few hundred bytes each: 64 units by their size, and so all in one
        // turn, but each P-521 signature takes tens of microseconds at the least.
        let message = base64::engine::general_purpose::STANDARD.encode(b"message");
        let body = format!(
            r#"{{"KeyId":"{key}","Message":"{message}","SigningAlgorithm":"ECDSA_SHA_512"}}"#
        );
        for _ in 0..64 {
            let head = format!(
                "POST / HTTP/1.1\r\nHost: localhost\r\nX-Amz-Target: TrentService.Sign\r\n\
                 Content-Type: application/x-amz-json-1.1\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            conn.rbuf.extend_from_slice(head.as_bytes());
            conn.rbuf.extend_from_slice(body.as_bytes());
        }
        let answers = |conn: &Conn| {
            conn.wbuf
                .windows(15)
                .filter(|w| *w == b"HTTP/1.1 200 OK")
                .count()
        };
        let mut batcher = Batcher::default();
        // A turn's answers within `room`: the work it leaves, and whether it was held.
        let mut turn_in = |conn: &mut Conn, room: AnswerRoom| {
            let mut work = dispatch::WORK_PER_TURN;
            let held = answer(
                (0, conn),
                &kms,
                &ids,
                &mut batcher,
                &control,
                room,
                &mut work,
            );
            (work, held)
        };
        // Held to its room: with room for one byte, one answer goes and the rest wait.
        let one_byte = AnswerRoom {
            pending: 1,
            memory: usize::MAX,
        };
        assert!(
            turn_in(&mut conn, one_byte).1,
            "stopped for room with requests left"
        );
        assert_eq!(answers(&conn), 1);
        // One turn: the work it leaves.
        let mut turn = |conn: &mut Conn| turn_in(conn, AnswerRoom::UNBOUNDED).0;
        assert_eq!(turn(&mut conn), 0, "the turn's work is spent");
        let first = answers(&conn);
        assert!((1..64).contains(&first), "{first} signatures in one turn");
        assert!(!conn.rbuf.is_empty(), "the rest wait in the buffer");
        // The rest, in later turns, are all answered.
        while !conn.rbuf.is_empty() {
            turn(&mut conn);
        }
        assert_eq!(answers(&conn), 64);
        drop(control);
        thread.join();
    }

    #[test]
    fn answers_written_leave_the_buffer_while_the_rest_waits_for_a_slow_peer() {
        use std::io::Read;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut peer = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (ours, _) = listener.accept().unwrap();
        ours.set_nonblocking(true).unwrap();
        // Fixed kernel buffers: autotuned, a receive buffer may grow to `tcp_rmem`'s maximum
        // (32 MiB on some machines) and take every answer, and the test would prove nothing.
        cap_buffer(&peer, libc::SO_RCVBUF).unwrap();
        cap_buffer(&ours, libc::SO_SNDBUF).unwrap();
        let mut conn = Conn::new(TcpStream::from_std(ours), 0, 0);
        // 4 MiB of answers, more than the kernel's buffers on both ends hold: the flush stops
        // partway, and so does every one after it, as the peer reads about as much as the
        // daemon adds. Kept, the answers written would pile up at the buffer's head.
        let answers = vec![0x5a; 1 << 20];
        for _ in 0..4 {
            crate::secret::extend_wiping(&mut conn.wbuf, &answers);
        }
        let mut read = vec![0; 1 << 20];
        for round in 0..48 {
            assert!(
                !flush(&mut conn).unwrap(),
                "round {round}: the peer took everything"
            );
            assert!(
                conn.wpos < CONN_FLOOR.max(conn.unwritten()),
                "round {round}: {} bytes written are still held beside {} unwritten",
                conn.wpos,
                conn.unwritten()
            );
            let n = peer.read(&mut read).unwrap();
            crate::secret::extend_wiping(&mut conn.wbuf, &answers[..n]);
        }
    }
}
