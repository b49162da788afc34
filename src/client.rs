//! The Rust client of `kmscksd`: blocking calls through [`Backend`], and a [`Pipeline`] that
//! keeps many requests in flight on one connection.
//!
//! A [`Client`] is `Sync`: threads share it, each call borrowing an idle connection from a small
//! pool (or opening one), so calls from different threads run concurrently on different
//! connections. Every new connection starts with the Hello exchange. A connection that breaks is
//! dropped; the call that was in flight gets a `KMSInternalException` naming the socket and the
//! operation (its outcome is unknown), and the next call connects afresh.
//!
//! A client waits for the daemon for as long as it takes, unless told a limit
//! ([`ClientBuilder::reply_timeout`]): a daemon that sends nothing of a reply (or takes none of
//! a request's bytes) for that long fails the call with a `DependencyTimeoutException` naming
//! the limit, and the connection is dropped as a broken one is, since its late reply could
//! otherwise answer the next call.
//!
//! # Which daemon a client talks to
//!
//! Before a single byte is sent on a new connection, the client asks the kernel who serves the
//! socket (`SO_PEERCRED`: the uid of the process that listens on it) and refuses, with an
//! `UntrustedSocketException` naming the socket, that uid and the uids it trusts, any daemon
//! not run by its own effective uid, by root (uid 0), or by a uid configured explicitly
//! ([`DAEMON_UID_ENV`], [`ClientBuilder::daemon_uid`]). A process that squats on the socket
//! path so receives nothing. When the socket is in the per-user default directory
//! ([`default_socket`]), that directory must also be owned by the caller with no group or
//! other access.
//!
//! ```no_run
//! use kmscks::ops::{Backend, Request};
//! use kmscks::api::kms::ListRequest;
//! let client = kmscks::Client::connect_default()?;
//! let keys = client.call(&Request::ListKeys(ListRequest::default()))?;
//! # Ok::<(), kmscks::KmsError>(())
//! ```

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::crypto::fork::ForkGuard;
use crate::err;
use crate::error::{ErrorKind, KmsError, Result};
use crate::ops::{Backend, Request, Response};
/// The per-user default socket path (`$KMSCKS_SOCKET`, else `kmscks.sock` in the first private
/// per-user directory that holds one: `$XDG_RUNTIME_DIR/kmscks/`, `/run/user/<euid>/kmscks/`,
/// `~/.local/state/kmscks/`, `/tmp/kmscks-<euid>/`): where a client looks for the daemon unless
/// told otherwise.
pub use crate::paths::default_socket;
use crate::peer;
use crate::sockwait;

use crate::protocol::{
    decode_hello_reply, decode_response, decode_response_sharing, encode_hello, split_frame,
    try_encode_request, Hello, HelloReply, ProtocolError, OP_HELLO, VERSION,
};

/// Environment variable naming one more uid the client trusts to run the daemon, besides its
/// own effective uid and root (e.g. the uid of a shared system daemon). Read when a client is
/// built; see [`ClientBuilder::daemon_uid`].
pub const DAEMON_UID_ENV: &str = "KMSCKS_DAEMON_UID";

/// Idle connections a [`Client`] keeps for reuse.
const POOL_MAX: usize = 16;
/// Read buffer growth step.
const READ_CHUNK: usize = 64 * 1024;
/// A pipeline flushes its write buffer once it holds this many bytes.
const FLUSH_AT: usize = 64 * 1024;

/// How a read waits when no reply is there yet.
#[derive(Clone, Copy, Debug)]
enum Wait {
    /// For the reply to a lone request: due within microseconds, so checked for this long
    /// before sleeping, and slept for in `poll`, which only data wakes (see `sockwait`).
    Lone(Duration),
    /// For more replies of a deep pipeline: one blocking `read`, a single system call where
    /// the other takes three (the check, `poll`, the read). Reads there are few and large,
    /// and so are the daemon's reads of the requests, which wake a blocked `read` for nothing
    /// once each (see `sockwait`). Pipelining 256 on one connection, waiting in `poll` read
    /// 0.75–0.82 of the echo floor where this read 0.85–0.87 (README, Performance).
    Stream,
}

/// How a client's connections wait for the daemon ([`ClientBuilder::reply_spin`],
/// [`ClientBuilder::reply_timeout`]).
#[derive(Clone, Copy, Debug)]
struct Waits {
    /// How long a wait for a lone request's reply checks for it before it sleeps.
    spin: Duration,
    /// The longest any read or write waits; `None`, for as long as it takes.
    limit: Option<Duration>,
}

/// Whether to spin for the next lone reply, after one that took `waited` against a spin of
/// `spin`: yes if it came within the spin (spinning caught it, or would have), no if it took
/// longer; `None` (unchanged) if it was there at once and says nothing.
fn spin_pays_after(waited: Duration, spin: Duration) -> Option<bool> {
    (!waited.is_zero()).then_some(waited <= spin)
}

/// One connection: the stream and its read buffer.
struct Conn {
    stream: UnixStream,
    /// Replies read, `inbuf[start..end]` not yet consumed. Its length is what has been
    /// initialised, not what was read: bytes past `end` are old replies' or zeros, so that a
    /// read needs no fresh 64 KiB zeroed first (a microsecond or more of each round trip).
    inbuf: Vec<u8>,
    /// Start of unconsumed bytes in `inbuf`.
    start: usize,
    /// End of the bytes read into `inbuf`.
    end: usize,
    nonblocking: bool,
    /// The last wait for a lone request's reply ended within the spin: spin for the next.
    spin_pays: bool,
    /// The longest a write waits ([`ClientBuilder::reply_timeout`]); the socket's own
    /// `SO_SNDTIMEO` bounds its blocking writes to it.
    limit: Option<Duration>,
    /// The longest a read waits: `limit`, plus the waits of the requests in flight that the
    /// daemon holds by their own terms ([`held_for`]). The socket's `SO_RCVTIMEO` is always
    /// this ([`Conn::set_read_limit`]); Some exactly when `limit` is.
    read_limit: Option<Duration>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        // Replies held plaintexts and data keys.
        crate::secret::wipe_vec(&mut self.inbuf);
    }
}

impl Conn {
    fn set_nonblocking(&mut self, on: bool) -> io::Result<()> {
        if self.nonblocking != on {
            self.stream.set_nonblocking(on)?;
            self.nonblocking = on;
        }
        Ok(())
    }

    /// Makes the write limit plus `held` the longest a read waits, for a poll and a blocking
    /// read (the socket's `SO_RCVTIMEO`) alike; a system call only when that changes, so never
    /// for a request the daemon does not hold.
    fn set_read_limit(&mut self, held: Duration) -> io::Result<()> {
        let limit = self.limit.map(|l| l.saturating_add(held));
        if self.read_limit != limit {
            self.stream.set_read_timeout(limit)?;
            self.read_limit = limit;
        }
        Ok(())
    }

    /// Reads once, appending to `inbuf`, waiting for data if there is none as `wait` says.
    /// EOF is an error: the daemon closed.
    fn read_some(&mut self, wait: Wait) -> io::Result<()> {
        if self.start == self.end {
            (self.start, self.end) = (0, 0);
        } else if self.start > READ_CHUNK {
            self.inbuf.copy_within(self.start..self.end, 0);
            (self.start, self.end) = (0, self.end - self.start);
        }
        let len = self.end;
        let short = (len + READ_CHUNK).saturating_sub(self.inbuf.len());
        if short > 0 {
            // Replies carry plaintexts and data keys: growing wipes the allocation left behind.
            crate::secret::reserve_wiping(&mut self.inbuf, short);
            self.inbuf.resize(len + READ_CHUNK, 0);
        }
        let n = match wait {
            Wait::Lone(spin) => self.recv_lone(len, spin),
            Wait::Stream => self.read_blocking(len),
        }?;
        self.end = len + n;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the daemon closed the connection",
            ));
        }
        Ok(())
    }

    /// Reads into `inbuf[from..]` as [`Wait::Lone`] says: spinning only while spinning pays (a
    /// reply that took longer than the spin last time — a CreateKey, a busy machine — is not
    /// spun for this time; one that came within it, spinning or asleep, is).
    fn recv_lone(&mut self, from: usize, spin: Duration) -> io::Result<usize> {
        let spinning = if self.spin_pays { spin } else { Duration::ZERO };
        let buf = &mut self.inbuf[from..];
        let (n, waited) = sockwait::recv(&self.stream, buf, spinning, self.read_limit)?;
        self.spin_pays = spin_pays_after(waited, spin).unwrap_or(self.spin_pays);
        Ok(n)
    }

    /// Reads into `inbuf[from..]` as [`Wait::Stream`] says: one blocking `read` (bounded by
    /// the socket's receive timeout when there is a limit).
    fn read_blocking(&mut self, from: usize) -> io::Result<usize> {
        self.set_nonblocking(false)?;
        let began = self.began();
        loop {
            match self.stream.read(&mut self.inbuf[from..]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                    retry_after_signal(began, self.read_limit, "sent nothing")?
                }
                other => {
                    return other.map_err(|e| blocked_too_long(e, self.read_limit, "sent nothing"))
                }
            }
        }
    }

    /// When a blocking read or write begins, for [`Conn::retry_after_signal`]: read only
    /// when there is a limit, so that a connection without one reads no clock per call.
    fn began(&self) -> Option<Instant> {
        self.limit.is_some().then(Instant::now)
    }

    /// The next complete reply in the buffer, decoded by `f`, consuming it.
    fn next_frame<T>(
        &mut self,
        f: impl FnOnce(&crate::protocol::Header, &[u8]) -> std::result::Result<T, ProtocolError>,
    ) -> std::result::Result<Option<(u64, T)>, ProtocolError> {
        let Some((h, body, used)) = split_frame(&self.inbuf[self.start..self.end])? else {
            return Ok(None);
        };
        let v = f(&h, body)?;
        self.start += used;
        Ok(Some((h.request_id, v)))
    }

    /// Writes all of `bytes`, blocking.
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.write_request(bytes).map_err(WriteFailure::into_error)
    }

    /// [`Conn::write_all`], telling a failure before any byte was taken (`Err(Unsent)`): on a
    /// connection the daemon has closed, the first write fails whole, and the request never
    /// reached it.
    fn write_request(&mut self, bytes: &[u8]) -> std::result::Result<(), WriteFailure> {
        let mut sent = 0;
        let failed = |e, sent| {
            if sent == 0 {
                WriteFailure::Unsent(e)
            } else {
                WriteFailure::Partial(e)
            }
        };
        self.set_nonblocking(false).map_err(|e| failed(e, 0))?;
        let began = self.began();
        while sent < bytes.len() {
            match self.stream.write(&bytes[sent..]) {
                Ok(0) => return Err(failed(io::ErrorKind::WriteZero.into(), sent)),
                Ok(n) => sent += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                    retry_after_signal(began, self.limit, "took no bytes")
                        .map_err(|e| failed(e, sent))?
                }
                Err(e) => {
                    let e = blocked_too_long(e, self.limit, "took no bytes");
                    return Err(failed(e, sent));
                }
            }
        }
        Ok(())
    }
}

/// `e` from a blocking read or write on a connection with a `limit`: the socket's timeout
/// (which the kernel reports as `EAGAIN`, `WouldBlock`) becomes `TimedOut`, saying that the
/// daemon `did` nothing within the limit; anything else is returned as it is.
fn blocked_too_long(e: io::Error, limit: Option<Duration>, did: &str) -> io::Error {
    match limit {
        Some(limit) if e.kind() == io::ErrorKind::WouldBlock => io::Error::new(
            io::ErrorKind::TimedOut,
            format!("the daemon {did} for {} ms", limit.as_millis()),
        ),
        _ => e,
    }
}

/// Whether a blocking read or write bounded by `limit` that began at `began` and was
/// interrupted by a signal may be tried again: yes, unless the limit has passed since it began
/// (then `TimedOut`, the daemon having `did` nothing). A retry waits the socket's whole timeout
/// again, so signals stretch a blocking wait to less than twice the limit, and never for ever.
fn retry_after_signal(
    began: Option<Instant>,
    limit: Option<Duration>,
    did: &str,
) -> io::Result<()> {
    match (limit, began) {
        (Some(limit), Some(began)) if began.elapsed() >= limit => Err(blocked_too_long(
            io::ErrorKind::WouldBlock.into(),
            Some(limit),
            did,
        )),
        _ => Ok(()),
    }
}

/// How a request's write failed: before any byte of it was taken, or after some.
enum WriteFailure {
    Unsent(io::Error),
    Partial(io::Error),
}

impl WriteFailure {
    fn error(&self) -> &io::Error {
        match self {
            WriteFailure::Unsent(e) | WriteFailure::Partial(e) => e,
        }
    }

    fn into_error(self) -> io::Error {
        match self {
            WriteFailure::Unsent(e) | WriteFailure::Partial(e) => e,
        }
    }

    /// Whether the connection had been closed by the daemon before the request was written:
    /// nothing of it was taken, and the socket's peer is gone.
    fn peer_gone_before(&self) -> bool {
        matches!(self, WriteFailure::Unsent(e) if matches!(
            e.kind(),
            io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset | io::ErrorKind::NotConnected
        ))
    }
}

/// How to connect a [`Client`]: `Client::builder(path).daemon_uid(999).connect()`.
/// [`Client::connect`] is `Client::builder(path).connect()`.
#[derive(Clone, Debug)]
pub struct ClientBuilder {
    path: PathBuf,
    daemon_uids: Vec<u32>,
    reply_spin: Duration,
    reply_timeout: Option<Duration>,
}

/// How long a thread waiting for the reply to a lone request (a call, or a pipeline with one
/// request in flight) keeps checking its socket before it sleeps, unless
/// [`ClientBuilder::reply_spin`] says otherwise: 20 µs.
///
/// Why: a thread that sleeps must be woken, and waking a parked thread on this kind of
/// machine costs tens of µs, more than the daemon takes to answer a GenerateDataKey or an
/// Encrypt. Checking for that long first let one request in flight go round in p50 5.6 µs
/// where sleeping at once took 20 (README, Performance). A reply that takes longer (a
/// CreateKey, a busy daemon) costs the wait this much CPU and then a sleep, as before. A
/// pipeline with more requests in flight never spins: the daemon answers those in chunks, and
/// a client spinning between them takes a core the daemon needs (pipelining 256 on each of
/// two connections lost a quarter of its rate when it did).
pub const DEFAULT_REPLY_SPIN: Duration = Duration::from_micros(20);

impl ClientBuilder {
    /// Also trust a daemon run by `uid` (besides this process's effective uid, root, and
    /// [`DAEMON_UID_ENV`]). May be called more than once.
    pub fn daemon_uid(mut self, uid: u32) -> ClientBuilder {
        self.daemon_uids.push(uid);
        self
    }

    /// How long a thread waiting for a lone request's reply keeps checking for it before it
    /// sleeps (default [`DEFAULT_REPLY_SPIN`]); `Duration::ZERO` sleeps at once, sparing the
    /// CPU at the price of a wake-up per reply that is not already there.
    pub fn reply_spin(mut self, spin: Duration) -> ClientBuilder {
        self.reply_spin = spin;
        self
    }

    /// How long a call, or a pipeline's wait for its next reply, may wait for the daemon
    /// before it fails (default: for as long as it takes). A daemon that sends nothing (or
    /// takes none of a request's bytes) for `limit` costs the call a
    /// `DependencyTimeoutException` naming the limit; the request's outcome is unknown (the
    /// daemon may still carry it out), and the connection is dropped, every request in flight
    /// on it lost, as when it breaks. `Duration::ZERO` means no limit. The limit is per wait,
    /// not per reply: a daemon trickling bytes keeps a call going, as the AWS CLI's read
    /// timeout does; a signal may stretch one wait to less than twice the limit.
    ///
    /// A WaitForConnection call waits its own `timeout_millis` beyond the limit (on a
    /// [`Pipeline`], the reads wait those of all such requests in flight beyond it: their
    /// replies may come that much later). Every new connection is bounded too, by the limit
    /// for each of its two waits: the `connect` (which waits only while the daemon's listen
    /// queue is full: a stopped or wedged daemon, or one flooded with connections) and the
    /// Hello exchange. Choose a limit above the slowest
    /// answer you expect: a CreateKey waits for the daemon's journal to reach the disk, and a
    /// deep pipeline for the requests before it.
    pub fn reply_timeout(mut self, limit: Duration) -> ClientBuilder {
        self.reply_timeout = (!limit.is_zero()).then_some(limit);
        self
    }

    /// Connects, checks who serves the socket, and performs the Hello exchange.
    ///
    /// Errors: `ValidationException` when [`DAEMON_UID_ENV`] is set and is not a uid;
    /// `UntrustedSocketException` when the daemon runs as an untrusted uid or the default
    /// socket's directory is not private; `DependencyTimeoutException` when nothing listens, or
    /// when the daemon takes the connection or answers the Hello not within
    /// [`ClientBuilder::reply_timeout`].
    pub fn connect(self) -> Result<Client> {
        let mut configured = self.daemon_uids;
        if let Some(v) = std::env::var_os(DAEMON_UID_ENV).filter(|v| !v.is_empty()) {
            let text = v.to_string_lossy();
            let uid = text.trim().parse::<u32>().map_err(|e| {
                err!(
                    ValidationException,
                    "{DAEMON_UID_ENV}='{text}' is not a numeric uid: {e}"
                )
            })?;
            configured.push(uid);
        }
        let trust = Trust {
            own: peer::effective_uid(),
            configured,
        };
        let waits = Waits {
            spin: self.reply_spin,
            limit: self.reply_timeout,
        };
        let (conn, server) = open(&self.path, &trust, 0, waits)?;
        // Checked once already by `open`; asked again only to remember the pid.
        let daemon_pid = peer::credentials(&conn.stream)
            .ok()
            .and_then(|c| u32::try_from(c.pid).ok())
            .filter(|&pid| pid != 0);
        Ok(Client {
            path: self.path,
            trust,
            pool: Mutex::new(vec![conn]),
            next_id: AtomicU64::new(1),
            server,
            daemon_pid,
            waits,
            made: ForkGuard::new(),
        })
    }
}

/// A client of the kmscks daemon. See the module documentation.
pub struct Client {
    path: PathBuf,
    /// Who may serve the socket; checked on every new connection.
    trust: Trust,
    pool: Mutex<Vec<Conn>>,
    next_id: AtomicU64,
    server: HelloReply,
    /// The process serving the socket, as the kernel recorded it (`SO_PEERCRED`).
    daemon_pid: Option<u32>,
    /// How each connection waits for the daemon.
    waits: Waits,
    /// The process that connected: a forked child shares its connections with the parent, and
    /// refuses to use them ([`Client::not_forked`]).
    made: ForkGuard,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("socket", &self.path)
            .field("server", &self.server.server)
            .finish()
    }
}

fn connect_error(path: &Path, e: &io::Error) -> KmsError {
    let hint = match e.kind() {
        // `sockwait::connect`'s error says the daemon is there and takes no connection.
        io::ErrorKind::TimedOut => {
            "a stopped or wedged daemon, or one flooded with connections; nothing was sent"
        }
        _ => "is kmscksd running?",
    };
    KmsError::transport(
        ErrorKind::DependencyTimeoutException,
        format!(
            "cannot connect to the kmscks daemon at {}: {e} ({hint})",
            path.display()
        ),
    )
}

/// The error of a call whose connection failed with `e` while `what` was in flight: a
/// `DependencyTimeoutException` when the daemon let the limit pass ([`blocked_too_long`],
/// `sockwait`), else the connection broke ([`broken`]).
fn lost(path: &Path, what: &str, e: &io::Error) -> KmsError {
    if e.kind() != io::ErrorKind::TimedOut {
        return broken(path, what, e);
    }
    KmsError::transport(
        ErrorKind::DependencyTimeoutException,
        format!(
            "the kmscks daemon at {} did not answer in time while {what} was in flight ({e}, \
             the client's reply timeout); its outcome is unknown; the connection was dropped \
             and the next call reconnects",
            path.display()
        ),
    )
}

/// The error of a new connection whose Hello exchange failed with `e`: nothing but the
/// greeting was sent, so there is no outcome to speak of.
fn hello_failed(path: &Path, e: &io::Error) -> KmsError {
    if e.kind() != io::ErrorKind::TimedOut {
        return broken(path, "the Hello exchange", e);
    }
    KmsError::transport(
        ErrorKind::DependencyTimeoutException,
        format!(
            "the process serving {} did not answer the Hello exchange in time ({e}, the \
             client's reply timeout): a kmscksd stopped or wedged, or not a kmscksd; no \
             request was sent",
            path.display()
        ),
    )
}

fn broken(path: &Path, what: &str, e: &dyn std::fmt::Display) -> KmsError {
    KmsError::transport(
        ErrorKind::KMSInternalException,
        format!(
            "the connection to the kmscks daemon at {} broke while {what} was in flight ({e}); \
             its outcome is unknown; the next call reconnects",
            path.display()
        ),
    )
}

/// The uids a client accepts as the daemon's: its own effective uid, root, and those
/// configured.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Trust {
    own: u32,
    configured: Vec<u32>,
}

impl Trust {
    fn allows(&self, uid: u32) -> bool {
        uid == self.own || uid == 0 || self.configured.contains(&uid)
    }

    /// The trusted uids, for a message: `1000 (this client's), 0 (root), 999 (configured)`.
    fn describe(&self) -> String {
        let mut parts = vec![format!("{} (this client's)", self.own)];
        if self.own != 0 {
            parts.push("0 (root)".into());
        }
        parts.extend(self.configured.iter().map(|u| format!("{u} (configured)")));
        parts.join(", ")
    }
}

/// Refuses a daemon whose process (`daemon`, from `SO_PEERCRED`) runs as an untrusted uid.
fn check_daemon(path: &Path, daemon: &peer::Credentials, trust: &Trust) -> Result<()> {
    if trust.allows(daemon.uid) {
        return Ok(());
    }
    use std::os::unix::fs::MetadataExt;
    let file_owner = std::fs::symlink_metadata(path)
        .map(|m| format!("uid {}", m.uid()))
        .unwrap_or_else(|e| format!("unknown ({e})"));
    Err(err!(
        UntrustedSocketException,
        "refusing the socket {}: the process serving it (pid {}) runs as uid {}, and this client \
         trusts only uid {}; the socket file's owner is {file_owner}. Nothing was sent. If uid {} \
         is a daemon you trust, set {DAEMON_UID_ENV}={} (or ClientBuilder::daemon_uid)",
        path.display(),
        daemon.pid,
        daemon.uid,
        trust.describe(),
        daemon.uid,
        daemon.uid
    ))
}

/// Connects to `path`, waiting at most `limit` for the daemon to take the connection, and
/// checks who serves it (and, for the default socket, its directory), before anything is sent.
fn connect_checked(path: &Path, trust: &Trust, limit: Option<Duration>) -> Result<UnixStream> {
    if crate::paths::in_default_socket_dir(path) {
        if let Some(dir) = path.parent().filter(|d| d.symlink_metadata().is_ok()) {
            crate::paths::check_private_dir(dir)?;
        }
    }
    let stream = sockwait::connect(path, limit).map_err(|e| connect_error(path, &e))?;
    let daemon = peer::credentials(&stream).map_err(|e| {
        err!(
            KMSInternalException,
            "cannot tell who serves the socket {}: {}",
            path.display(),
            e.message()
        )
    })?;
    check_daemon(path, &daemon, trust)?;
    Ok(stream)
}

/// Opens a connection to a trusted daemon and performs the Hello exchange.
fn open(path: &Path, trust: &Trust, id: u64, waits: Waits) -> Result<(Conn, HelloReply)> {
    let stream = connect_checked(path, trust, waits.limit)?;
    // Bounds every blocking read and write on the connection (`None` clears nothing: a new
    // socket has no timeouts).
    stream
        .set_read_timeout(waits.limit)
        .and_then(|()| stream.set_write_timeout(waits.limit))
        .map_err(|e| broken(path, "setting its timeouts", &e))?;
    let mut conn = Conn {
        stream,
        inbuf: Vec::with_capacity(READ_CHUNK),
        start: 0,
        end: 0,
        nonblocking: false,
        spin_pays: true,
        limit: waits.limit,
        read_limit: waits.limit,
    };
    let mut out = Vec::with_capacity(64);
    let hello = Hello {
        version: VERSION,
        client: concat!("kmscks-rs/", env!("CARGO_PKG_VERSION")).to_owned(),
    };
    encode_hello(&mut out, id, &hello);
    conn.write_all(&out).map_err(|e| hello_failed(path, &e))?;
    loop {
        match conn.next_frame(|h, body| {
            if h.op != OP_HELLO {
                return Err(ProtocolError::Malformed(format!(
                    "the daemon answered Hello with op {}",
                    h.op
                )));
            }
            decode_hello_reply(h, body)
        }) {
            Ok(Some((_, Ok(reply)))) => {
                if reply.version != VERSION {
                    return Err(version_error(path, reply.version));
                }
                return Ok((conn, reply));
            }
            Ok(Some((_, Err(e)))) => {
                return Err(KmsError::new(
                    e.kind(),
                    format!(
                        "the kmscks daemon at {} refused the Hello: {}",
                        path.display(),
                        e.message()
                    ),
                ))
            }
            Ok(None) => {}
            Err(ProtocolError::UnsupportedVersion(v)) => return Err(version_error(path, v)),
            Err(e) => return Err(broken(path, "the Hello exchange", &e)),
        }
        conn.read_some(Wait::Lone(waits.spin))
            .map_err(|e| hello_failed(path, &e))?;
    }
}

fn version_error(path: &Path, theirs: u8) -> KmsError {
    KmsError::new(
        ErrorKind::SerializationException,
        format!(
            "the kmscks daemon at {} speaks protocol version {theirs}; this client speaks version \
             {VERSION}: upgrade the older of the two",
            path.display()
        ),
    )
}

fn local_too_large(req: &Request, e: ProtocolError) -> KmsError {
    KmsError::new(
        ErrorKind::ValidationException,
        format!(
            "the {} request does not fit in one frame ({e}); split it into smaller requests",
            req.op().name()
        ),
    )
}

impl Client {
    /// Connects to the daemon listening on `path`, refusing one run by an untrusted uid (see
    /// the module documentation), and performs the Hello exchange. See [`ClientBuilder`] for
    /// options.
    pub fn connect(path: impl AsRef<Path>) -> Result<Client> {
        Client::builder(path).connect()
    }

    /// The options of a connection to `path`, to set before [`ClientBuilder::connect`].
    pub fn builder(path: impl AsRef<Path>) -> ClientBuilder {
        ClientBuilder {
            path: path.as_ref().to_path_buf(),
            daemon_uids: Vec::new(),
            reply_spin: DEFAULT_REPLY_SPIN,
            reply_timeout: None,
        }
    }

    /// Connects to the default socket ([`default_socket`]: `KMSCKS_SOCKET`, else
    /// `kmscks.sock` in the first of `$XDG_RUNTIME_DIR/kmscks/`, `/run/user/<euid>/kmscks/`,
    /// `~/.local/state/kmscks/` and `/tmp/kmscks-<euid>/` that holds one).
    pub fn connect_default() -> Result<Client> {
        Client::connect(default_socket())
    }

    /// The socket this client talks to.
    pub fn socket_path(&self) -> &Path {
        &self.path
    }

    /// What the daemon said in its Hello reply (version, limits, the caller's principal).
    pub fn server(&self) -> &HelloReply {
        &self.server
    }

    /// The pid of the process serving the socket, as the kernel recorded it when the daemon
    /// listened (`SO_PEERCRED`; `None` when the kernel does not say, e.g. across a pid
    /// namespace). `kmscks bench` reads the daemon's CPU time through it.
    pub fn daemon_pid(&self) -> Option<u32> {
        self.daemon_pid
    }

    fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// A new connection, checked and greeted.
    fn open_conn(&self) -> Result<(Conn, HelloReply)> {
        open(&self.path, &self.trust, self.next_id(), self.waits)
    }

    /// A connection from the pool (`true`), else a new one (`false`).
    fn take_conn(&self) -> Result<(Conn, bool)> {
        let pooled = self.pool.lock().unwrap_or_else(|p| p.into_inner()).pop();
        match pooled {
            Some(c) => Ok((c, true)),
            None => self.open_conn().map(|(c, _)| (c, false)),
        }
    }

    /// Writes `request` on a pooled connection if one is left, else on a new one. A pooled
    /// connection may be one the daemon closed while it sat idle (its `idle_timeout_secs`, a
    /// restart): its write fails before the daemon saw anything, so the request goes on a new
    /// connection instead of failing with an outcome it does not have; the pool's other
    /// connections, as old, are dropped with it. Any other failure is the call's.
    fn send_request(&self, request: &[u8], what: &str) -> Result<Conn> {
        let (mut conn, pooled) = self.take_conn()?;
        match conn.write_request(request) {
            Ok(()) => Ok(conn),
            Err(f) if pooled && f.peer_gone_before() => {
                drop(conn);
                let stale =
                    std::mem::take(&mut *self.pool.lock().unwrap_or_else(|p| p.into_inner()));
                drop(stale);
                let (mut conn, _) = self.open_conn()?;
                conn.write_all(request)
                    .map_err(|e| lost(&self.path, what, &e))?;
                Ok(conn)
            }
            Err(f) => Err(lost(&self.path, what, f.error())),
        }
    }

    fn give_back(&self, conn: Conn) {
        let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
        if pool.len() < POOL_MAX {
            pool.push(conn);
        }
    }

    /// `KMSInternalException` in a child forked after this client connected. Its pooled
    /// connections and pipelines are the parent's sockets (the descriptors are copies), and
    /// its request ids the parent's: a reply could reach the wrong process, or a frame be
    /// split between two readers. The child connects again instead.
    fn not_forked(&self) -> Result<()> {
        if self.made.forked() {
            return Err(err!(
                KMSInternalException,
                "this process is a fork of the one that connected to the kmscks daemon at {}; \
                 its connections are the parent's, so it refuses to use them: connect again \
                 in the child",
                self.path.display()
            ));
        }
        Ok(())
    }

    /// A pipeline on a connection of its own, keeping up to `depth` requests in flight.
    pub fn pipeline(&self, depth: usize) -> Result<Pipeline<'_>> {
        self.not_forked()?;
        let (conn, _) = self.open_conn()?;
        Ok(Pipeline {
            client: self,
            conn: Some(conn),
            depth: depth.max(1),
            out: Vec::with_capacity(FLUSH_AT * 2),
            written: 0,
            frame_ends: VecDeque::new(),
            in_flight: 0,
            ready: VecDeque::new(),
            last_arn: None,
            holds: Vec::new(),
        })
    }
}

impl Backend for Client {
    fn call(&self, request: &Request) -> Result<Response> {
        self.not_forked()?;
        let id = self.next_id();
        // The request carries plaintexts and passwords: wiped (its whole allocation) on every
        // way out of this call, as growing it wipes what it leaves behind.
        let mut out = zeroize::Zeroizing::new(Vec::with_capacity(256));
        try_encode_request(&mut out, id, request).map_err(|e| local_too_large(request, e))?;
        let what = format!("{} (request id {id})", request.op().name());
        let mut conn = self.send_request(&out, &what)?;
        // The daemon holds a request that waits (WaitForConnection) as long as it asks, before
        // it answers: that wait is the request's, not a wedged daemon's.
        let held = held_for(request);
        conn.set_read_limit(held)
            .map_err(|e| broken(&self.path, &what, &e))?;
        loop {
            match conn.next_frame(decode_response) {
                Ok(Some((rid, result))) if rid == id => {
                    // A connection whose read limit could not be put back is dropped, not
                    // pooled; the answer stands.
                    if held.is_zero() || conn.set_read_limit(Duration::ZERO).is_ok() {
                        self.give_back(conn);
                    }
                    return result;
                }
                Ok(Some((rid, _))) => {
                    let e = format!("reply for request id {rid}, which this connection never sent");
                    return Err(broken(&self.path, &what, &e));
                }
                Ok(None) => {}
                Err(e) => return Err(broken(&self.path, &what, &e)),
            }
            conn.read_some(Wait::Lone(self.waits.spin))
                .map_err(|e| lost(&self.path, &what, &e))?;
        }
    }
}

/// How long the daemon may hold `request` by the request's own terms before it answers: a
/// WaitForConnection's wait; nothing for any other. A call's reply timeout
/// ([`ClientBuilder::reply_timeout`]) is counted beyond it.
fn held_for(request: &Request) -> Duration {
    match request {
        Request::WaitForConnection(w) => Duration::from_millis(w.timeout_millis),
        _ => Duration::ZERO,
    }
}

/// Many requests in flight on one connection. [`Pipeline::submit`] queues a request and returns
/// its id (waiting for a reply first when `depth` are already in flight); [`Pipeline::recv`]
/// returns the next reply, whichever request it answers, with its id. Replies may come out of
/// order.
///
/// Writes are batched: submitted requests go out once a quarter of `depth` of them (or 64 KiB)
/// are queued, on [`Pipeline::flush`], or when the pipeline must wait for a reply. The quarter:
/// a caller that sent nothing until it had digested every reply it read would leave the daemon
/// idle meanwhile, and the two would take turns instead of working at once. Writing never
/// deadlocks against a daemon that stops reading because its replies to us are backed up: the
/// pipeline reads replies whenever a write would block.
pub struct Pipeline<'c> {
    client: &'c Client,
    conn: Option<Conn>,
    depth: usize,
    out: Vec<u8>,
    /// Bytes of `out` already written.
    written: usize,
    /// End offsets (in `out`) of frames not yet completely written.
    frame_ends: VecDeque<usize>,
    in_flight: usize,
    ready: VecDeque<(u64, Result<Response>)>,
    /// The key ARN of the last Encrypt, Decrypt or GenerateDataKey reply, which the next
    /// naming the same key shares (`protocol::decode_response_sharing`).
    last_arn: Option<Arc<str>>,
    /// The requests in flight that the daemon holds by their own terms ([`held_for`]: a
    /// WaitForConnection), by request id, with how long: their replies may come that much
    /// later, so the reads wait as long beyond the client's limit.
    holds: Vec<(u64, Duration)>,
}

impl std::fmt::Debug for Pipeline<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("socket", &self.client.path)
            .field("depth", &self.depth)
            .field("in_flight", &self.in_flight)
            .finish()
    }
}

/// Empties a pipeline's write buffer, wiping the requests it held (they carry plaintexts);
/// bytes past its length were wiped when they were cleared before.
fn wipe_sent(out: &mut Vec<u8>) {
    crate::secret::wipe(out);
    out.clear();
}

impl Drop for Pipeline<'_> {
    fn drop(&mut self) {
        wipe_sent(&mut self.out);
    }
}

impl Pipeline<'_> {
    /// Requests submitted and not yet answered (replies already read but not yet returned by
    /// [`Pipeline::recv`] do not count).
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Replies read and waiting to be returned by [`Pipeline::recv`].
    pub fn ready(&self) -> usize {
        self.ready.len()
    }

    /// The maximum number of requests in flight.
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// Queues `request` (sending the queue once it holds a quarter of the depth); returns its
    /// request id. A request too large for one frame is refused here (`ValidationException`)
    /// without being sent; a broken connection fails as in [`Pipeline::recv`].
    pub fn submit(&mut self, request: &Request) -> Result<u64> {
        self.client.not_forked()?;
        while self.in_flight >= self.depth {
            self.read_replies()?;
        }
        if self.conn.is_none() {
            let (conn, _) = self.client.open_conn()?;
            self.conn = Some(conn);
        }
        let id = self.client.next_id();
        try_encode_request(&mut self.out, id, request).map_err(|e| local_too_large(request, e))?;
        self.frame_ends.push_back(self.out.len());
        self.in_flight += 1;
        let hold = held_for(request);
        if !hold.is_zero() {
            self.holds.push((id, hold));
            self.apply_holds()?;
        }
        if self.out.len() - self.written >= FLUSH_AT || self.frame_ends.len() >= self.flush_frames()
        {
            self.flush()?;
        }
        Ok(id)
    }

    /// Requests queued that are sent without waiting for a flush: a quarter of the depth.
    fn flush_frames(&self) -> usize {
        (self.depth / 4).max(1)
    }

    /// Sends every queued request.
    pub fn flush(&mut self) -> Result<()> {
        self.client.not_forked()?;
        while self.written < self.out.len() {
            self.write_some()?;
        }
        wipe_sent(&mut self.out);
        self.written = 0;
        Ok(())
    }

    /// The next reply: its request id and the operation's result. `Err` only for a broken
    /// connection (every request in flight on it is then lost, and the error says how many) or
    /// when nothing is in flight.
    pub fn recv(&mut self) -> Result<(u64, Result<Response>)> {
        self.client.not_forked()?;
        loop {
            if let Some(r) = self.ready.pop_front() {
                return Ok(r);
            }
            if self.in_flight == 0 {
                return Err(KmsError::new(
                    ErrorKind::ValidationException,
                    "Pipeline::recv called with no request in flight",
                ));
            }
            self.read_replies()?;
        }
    }

    /// Returns every reply that is already read, without waiting.
    pub fn drain_ready(&mut self) -> impl Iterator<Item = (u64, Result<Response>)> + '_ {
        self.ready.drain(..)
    }

    /// Drops the connection and everything in flight on it after `e`, a broken connection.
    fn fail(&mut self, e: &dyn std::fmt::Display) -> KmsError {
        let what = self.drop_conn();
        broken(&self.client.path, &what, e)
    }

    /// [`Pipeline::fail`] after a read or write failed with `e` (which may be a wait that ran
    /// out, [`lost`]).
    fn fail_io(&mut self, e: &io::Error) -> KmsError {
        let what = self.drop_conn();
        lost(&self.client.path, &what, e)
    }

    /// Sets the connection's read limit to the client's plus every hold in flight (their sum,
    /// a bound that holds however the daemon schedules them).
    fn apply_holds(&mut self) -> Result<()> {
        let held = self
            .holds
            .iter()
            .fold(Duration::ZERO, |all, &(_, d)| all.saturating_add(d));
        let Some(conn) = self.conn.as_mut() else {
            return Err(self.fail(&"no connection"));
        };
        match conn.set_read_limit(held) {
            Ok(()) => Ok(()),
            Err(e) => Err(self.fail(&format!("setting its read timeout: {e}"))),
        }
    }

    /// Drops the connection with every request queued or in flight on it; says what was lost.
    fn drop_conn(&mut self) -> String {
        let lost = self.in_flight;
        self.conn = None;
        self.in_flight = 0;
        self.holds.clear();
        wipe_sent(&mut self.out);
        self.written = 0;
        self.frame_ends.clear();
        format!("a pipeline with {lost} requests")
    }

    /// Writes what it can; when the socket is full and replies are due, reads them instead.
    fn write_some(&mut self) -> Result<()> {
        let answered_due = self.in_flight - self.frame_ends.len() > 0;
        let Some(conn) = self.conn.as_mut() else {
            return Err(self.fail(&"no connection"));
        };
        let res = if answered_due {
            // Replies are due: never block on the write, read them when it would block.
            match conn
                .set_nonblocking(true)
                .and_then(|()| conn.stream.write(&self.out[self.written..]))
            {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return self.read_replies_no_flush()
                }
                other => other,
            }
        } else {
            // Nothing is due back, so the daemon is reading: a blocking write completes.
            conn.set_nonblocking(false)
                .and_then(|()| conn.stream.write(&self.out[self.written..]))
                .map_err(|e| blocked_too_long(e, conn.limit, "took no bytes"))
        };
        match res {
            Ok(0) => Err(self.fail(&"the socket accepted no bytes")),
            Ok(n) => {
                self.written += n;
                while self
                    .frame_ends
                    .front()
                    .is_some_and(|&end| end <= self.written)
                {
                    self.frame_ends.pop_front();
                }
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(()),
            Err(e) => Err(self.fail_io(&e)),
        }
    }

    /// Flushes, then reads at least one reply into `ready`.
    fn read_replies(&mut self) -> Result<()> {
        self.flush()?;
        self.read_replies_no_flush()
    }

    fn read_replies_no_flush(&mut self) -> Result<()> {
        let before = self.ready.len();
        loop {
            let Some(conn) = self.conn.as_mut() else {
                return Err(self.fail(&"no connection"));
            };
            let mut released = false;
            loop {
                let last_arn = &mut self.last_arn;
                match conn.next_frame(|h, body| decode_response_sharing(h, body, last_arn)) {
                    Ok(Some((id, result))) => {
                        self.in_flight = self.in_flight.saturating_sub(1);
                        if let Some(i) = self.holds.iter().position(|&(held, _)| held == id) {
                            self.holds.swap_remove(i);
                            released = true;
                        }
                        self.ready.push_back((id, result));
                    }
                    Ok(None) => break,
                    Err(e) => return Err(self.fail(&e)),
                }
            }
            if released {
                self.apply_holds()?;
            }
            if self.ready.len() > before {
                return Ok(());
            }
            let Some(conn) = self.conn.as_mut() else {
                return Err(self.fail(&"no connection"));
            };
            // A lone request's reply is due within microseconds: check for it before
            // sleeping. With more in flight the daemon answers them in chunks, and the time to
            // the next chunk is its work, which a spinning client would only take cores from
            // (see `Wait`).
            let wait = if self.in_flight <= 1 {
                Wait::Lone(self.client.waits.spin)
            } else {
                Wait::Stream
            };
            if let Err(e) = conn.read_some(wait) {
                return Err(self.fail_io(&e));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn squatter(uid: u32) -> peer::Credentials {
        peer::Credentials {
            pid: 4242,
            uid,
            gid: uid,
        }
    }

    #[test]
    fn a_lone_reply_is_spun_for_while_replies_come_within_the_spin_and_not_after_a_slower_one() {
        let spin = DEFAULT_REPLY_SPIN;
        let us = Duration::from_micros;
        assert_eq!(spin_pays_after(us(5), spin), Some(true));
        assert_eq!(spin_pays_after(spin, spin), Some(true));
        assert_eq!(spin_pays_after(spin + us(1), spin), Some(false));
        // Asleep and woken within the spin: spinning would have caught it, so spin again.
        assert_eq!(spin_pays_after(us(1), spin), Some(true));
        // Already there: nothing learnt.
        assert_eq!(spin_pays_after(Duration::ZERO, spin), None);
        // A client told not to spin never learns to.
        assert_eq!(spin_pays_after(us(1), Duration::ZERO), Some(false));
    }

    #[test]
    fn a_daemon_of_our_uid_root_or_a_configured_uid_is_trusted() {
        let trust = Trust {
            own: 1000,
            configured: vec![999],
        };
        let path = Path::new("/nonexistent/kmscks.sock");
        for uid in [1000, 0, 999] {
            check_daemon(path, &squatter(uid), &trust).unwrap();
        }
    }

    #[test]
    fn a_daemon_of_another_uid_is_refused_naming_socket_owner_and_trusted_uids() {
        let trust = Trust {
            own: 1000,
            configured: vec![999],
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kmscks.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let e = check_daemon(&path, &squatter(65534), &trust).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::UntrustedSocketException);
        let m = e.message();
        for part in [
            path.to_str().unwrap(),
            "runs as uid 65534",
            "pid 4242",
            "1000 (this client's), 0 (root), 999 (configured)",
            &format!("owner is uid {}", peer::effective_uid()),
            "KMSCKS_DAEMON_UID=65534",
        ] {
            assert!(m.contains(part), "missing {part:?} in {m}");
        }
    }

    #[test]
    fn connect_checked_refuses_a_listener_whose_real_uid_is_untrusted_before_sending() {
        // The listener is this process. A trust set naming another uid as "ours" refuses it,
        // unless we are root, whom every client trusts.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kmscks.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let me = peer::effective_uid();
        let trust = Trust {
            own: if me == 1 { 2 } else { 1 },
            configured: vec![],
        };
        let result = connect_checked(&path, &trust, None);
        if me == 0 {
            assert!(result.is_ok(), "root's daemon is always trusted");
            return;
        }
        let e = result.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::UntrustedSocketException, "{e}");
        assert!(e.message().contains(&format!("runs as uid {me}")), "{e}");
        // The refused connection was dropped with nothing written.
        let (mut accepted, _) = listener.accept().unwrap();
        let mut got = Vec::new();
        accepted.read_to_end(&mut got).unwrap();
        assert!(got.is_empty(), "the client sent {} bytes", got.len());
    }
}
