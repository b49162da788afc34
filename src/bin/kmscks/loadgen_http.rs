//! Load generator over HTTP (AWS JSON 1.1), and its floor: an in-process HTTP echo server.
//!
//! Why its own mode: the AWS SDKs reach kmscks through `kmscksd --http`, and the claim to
//! check is how that path compares with other AWS-JSON KMS endpoints (moto's server) and with
//! the Unix socket. So the generator speaks only what any such endpoint accepts — `POST /`,
//! `X-Amz-Target: TrentService.<Op>`, a JSON body, an `Authorization` header of SigV4's shape
//! (signed by nobody: local emulators accept any) — and judges answers by their status alone.
//!
//! [`run_http`] keeps `connections` keep-alive connections, each with `pipeline` requests in
//! flight, for `duration`; every request of a run is the same bytes, built once. Answers are
//! read with `httparse` (one per `Content-Length` body); a server that closes a connection (or
//! says `Connection: close`) gets a new one and the unanswered requests again. The floor
//! ([`compare_http`]) is the faster of two echo servers in this process answering every
//! request with the bytes of one real answer of the endpoint, over loopback TCP with the same
//! C and D, waiting for requests as kmscksd does (spin, then park): what is left is
//! "everything except the server's work". The endpoint and the floors take turns in phases
//! (`crate::loadgen_turns`). The report is the socket mode's
//! [`LoadReport`] (`threads` = connections, `batch` = pipeline depth).

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use base64::Engine as _;
use hdrhistogram::Histogram;
use serde_json::{json, Value};

use crate::loadgen::{LoadOp, LoadReport, Run};
use crate::loadgen_turns::{alone, faster, take_turns, Pooled, Side, REPLY_TIMEOUT};
use kmscks::daemon::wake::SpinStream;

/// The access key id the requests claim (kmscksd's default root access key; moto accepts any).
const ACCESS_KEY_ID: &str = "test";
/// The Region of the requests' credential scope (moto takes its Region from it).
const REGION: &str = "us-east-1";
/// The media type of the request bodies.
const CONTENT_TYPE: &str = kmscks::protocol::aws_json::CONTENT_TYPE;
/// Headers an answer may have.
const MAX_ANSWER_HEADERS: usize = 64;
/// Bytes read per `read` call (grown when one answer is larger).
const READ_CHUNK: usize = 64 << 10;

/// What to run over HTTP.
#[derive(Clone, Debug)]
pub(crate) struct HttpLoadOpts {
    /// The operation.
    pub op: LoadOp,
    /// Keep-alive connections (one driving thread each).
    pub connections: usize,
    /// Requests in flight per connection.
    pub pipeline: usize,
    /// Payload bytes (plaintext size, or data key / random length).
    pub payload: usize,
    /// How long to run.
    pub duration: Duration,
    /// The key to use; `None`: create one with CreateKey first.
    pub key_id: Option<String>,
}

/// Where requests go: `http://host[:port][/]`.
#[derive(Clone, Debug)]
pub(crate) struct Endpoint {
    addr: SocketAddr,
    /// The `Host` header.
    host: String,
    /// The longest a read or a write on a connection waits ([`Endpoint::with_timeout`]).
    timeout: Option<Duration>,
}

/// Why an exchange with an endpoint failed.
#[derive(Debug)]
pub(crate) enum HttpFailure {
    /// The endpoint took nothing or answered nothing for the connection's timeout: a server
    /// wedged, not gone.
    TimedOut(String),
    /// Anything else (cannot connect, closed, malformed).
    Other(String),
}

impl std::fmt::Display for HttpFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpFailure::TimedOut(m) | HttpFailure::Other(m) => f.write_str(m),
        }
    }
}

impl From<HttpFailure> for String {
    fn from(f: HttpFailure) -> String {
        f.to_string()
    }
}

impl From<String> for HttpFailure {
    fn from(m: String) -> HttpFailure {
        HttpFailure::Other(m)
    }
}

impl Endpoint {
    /// Parses and resolves `url` (plain `http` only: the endpoints measured are local).
    pub(crate) fn parse(url: &str) -> Result<Endpoint, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("--http: {url:?} is not an http:// URL"))?;
        let host = rest.trim_end_matches('/');
        if host.is_empty() || host.contains('/') {
            return Err(format!(
                "--http: {url:?} must be http://HOST:PORT (the path is /)"
            ));
        }
        let with_port = if host.rsplit_once(':').is_some_and(|(_, p)| !p.contains(']')) {
            host.to_owned()
        } else {
            format!("{host}:80")
        };
        let addr = with_port
            .to_socket_addrs()
            .map_err(|e| format!("--http: cannot resolve {host:?}: {e}"))?
            .next()
            .ok_or_else(|| format!("--http: {host:?} has no address"))?;
        Ok(Endpoint {
            addr,
            host: host.to_owned(),
            timeout: None,
        })
    }

    /// The same endpoint, every read and write on its connections bounded by `limit` (`None`:
    /// they wait for as long as it takes): a server that stops answering without closing
    /// costs its caller an error ([`HttpFailure::TimedOut`]) after that long.
    pub(crate) fn with_timeout(mut self, limit: Option<Duration>) -> Endpoint {
        self.timeout = limit;
        self
    }

    fn connect(&self) -> Result<TcpStream, String> {
        let s = TcpStream::connect(self.addr)
            .map_err(|e| format!("cannot connect to {}: {e}", self.addr))?;
        // Latency is the point: no Nagle delay on the small requests.
        let _ = s.set_nodelay(true);
        s.set_read_timeout(self.timeout)
            .and_then(|()| s.set_write_timeout(self.timeout))
            .map_err(|e| format!("cannot bound the waits on {}: {e}", self.addr))?;
        Ok(s)
    }

    /// What a read or write (`doing`: "read from", "send to") that failed with `e` says: a
    /// timeout of the connection's (which the kernel reports as `EAGAIN`) names the limit.
    fn failed(&self, doing: &str, e: &std::io::Error) -> HttpFailure {
        match self.timeout {
            Some(limit) if e.kind() == std::io::ErrorKind::WouldBlock => {
                HttpFailure::TimedOut(format!(
                    "cannot {doing} {}: nothing for {} ms (the read timeout)",
                    self.addr,
                    limit.as_millis()
                ))
            }
            _ => HttpFailure::Other(format!("cannot {doing} {}: {e}", self.addr)),
        }
    }

    /// The bytes of one request of `operation` (a KMS operation name) with `body`, with an
    /// `Authorization` header of SigV4's shape signed by nobody (local emulators accept any).
    fn request(&self, operation: &str, body: &str) -> Vec<u8> {
        self.request_for(
            &format!("TrentService.{operation}"),
            body.as_bytes(),
            &Auth::Claim {
                key_id: ACCESS_KEY_ID,
                region: REGION,
            },
        )
        // Invariant: only signing can fail, and a claim is not signed.
        .unwrap_or_default()
    }

    /// The bytes of one request with `X-Amz-Target: target` and `body`, authenticated as
    /// `auth` says (an error only when signing fails).
    pub(crate) fn request_for(
        &self,
        target: &str,
        body: &[u8],
        auth: &Auth<'_>,
    ) -> Result<Vec<u8>, String> {
        let amz_date = kmscks::daemon::sigv4_amz_date(std::time::SystemTime::now());
        let authorization = match auth {
            Auth::None => None,
            Auth::Claim { key_id, region } => Some(format!(
                "AWS4-HMAC-SHA256 Credential={key_id}/{date}/{region}/kms/aws4_request, \
                 SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature={sig}",
                date = &amz_date[..8],
                sig = "0".repeat(64),
            )),
            Auth::Sign {
                key_id,
                secret,
                region,
            } => {
                let service = if target.starts_with("BaldrApiService.") {
                    "cloudhsm"
                } else {
                    "kms"
                };
                let signed: [(&str, &[u8]); 4] = [
                    ("Content-Type", CONTENT_TYPE.as_bytes()),
                    ("Host", self.host.as_bytes()),
                    ("X-Amz-Date", amz_date.as_bytes()),
                    ("X-Amz-Target", target.as_bytes()),
                ];
                Some(
                    kmscks::daemon::sigv4_authorization(
                        key_id, secret, region, service, &signed, body, &amz_date,
                    )
                    .map_err(|e| e.message().to_owned())?,
                )
            }
        };
        let auth_line = authorization
            .map(|a| format!("Authorization: {a}\r\n"))
            .unwrap_or_default();
        let mut out = format!(
            "POST / HTTP/1.1\r\nHost: {host}\r\nX-Amz-Target: {target}\r\n\
             Content-Type: {CONTENT_TYPE}\r\nX-Amz-Date: {amz_date}\r\n\
             {auth_line}Content-Length: {len}\r\n\r\n",
            host = self.host,
            len = body.len(),
        )
        .into_bytes();
        out.extend_from_slice(body);
        Ok(out)
    }

    /// Sends `request` on a fresh connection: the answer's status and body.
    pub(crate) fn exchange(&self, request: &[u8]) -> Result<(u16, Vec<u8>), HttpFailure> {
        let (status, answer, body_at) = call_raw(self, request)?;
        Ok((status, answer[body_at..].to_vec()))
    }
}

/// How a request is authenticated.
pub(crate) enum Auth<'a> {
    /// No `Authorization` header.
    None,
    /// An `Authorization` header of SigV4's shape claiming `key_id` in `region`, signed by
    /// nobody (local emulators accept any).
    Claim {
        /// The access key id claimed.
        key_id: &'a str,
        /// The Region of the credential scope.
        region: &'a str,
    },
    /// Signed with SigV4 ([`kmscks::daemon::sigv4_authorization`]).
    Sign {
        /// The access key id.
        key_id: &'a str,
        /// Its secret.
        secret: &'a str,
        /// The Region of the credential scope.
        region: &'a str,
    },
}

/// One answer read off a connection's buffer.
struct Answer {
    status: u16,
    /// Bytes it took (head and body).
    len: usize,
    /// The server closes the connection after it.
    close: bool,
    /// Where its body starts.
    body_at: usize,
}

/// The answer at the start of `buf`, if whole.
fn parse_answer(buf: &[u8]) -> Result<Option<Answer>, String> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_ANSWER_HEADERS];
    let mut r = httparse::Response::new(&mut headers);
    let head = match r.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(format!("malformed HTTP answer: {e}")),
    };
    let status = r.code.unwrap_or(0);
    let mut length = None;
    let mut close = r.version == Some(0);
    for h in r.headers.iter() {
        let value = std::str::from_utf8(h.value).unwrap_or("").trim();
        if h.name.eq_ignore_ascii_case("content-length") {
            length = Some(
                value
                    .parse::<usize>()
                    .map_err(|_| format!("bad Content-Length {value:?} in an answer"))?,
            );
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(format!(
                "answers with Transfer-Encoding {value:?} are not supported"
            ));
        } else if h.name.eq_ignore_ascii_case("connection") {
            close = value.eq_ignore_ascii_case("close");
        }
    }
    let length = match (length, status) {
        (Some(n), _) => n,
        (None, 100..=199 | 204 | 304) => 0,
        (None, _) => return Err(format!("an answer ({status}) has no Content-Length")),
    };
    if buf.len() < head + length {
        return Ok(None);
    }
    Ok(Some(Answer {
        status,
        len: head + length,
        close,
        body_at: head,
    }))
}

/// Sends `request` on a fresh connection and reads its answer: (status, JSON body, the raw
/// answer bytes).
fn call_once(ep: &Endpoint, request: &[u8]) -> Result<(u16, Value, Vec<u8>), HttpFailure> {
    let (status, raw, body_at) = call_raw(ep, request)?;
    let body = serde_json::from_slice(&raw[body_at..]).unwrap_or(Value::Null);
    Ok((status, body, raw))
}

/// Sends `request` on a fresh connection and reads its answer: (status, the raw answer bytes,
/// where its body starts).
fn call_raw(ep: &Endpoint, request: &[u8]) -> Result<(u16, Vec<u8>, usize), HttpFailure> {
    let mut s = ep.connect()?;
    s.write_all(request).map_err(|e| ep.failed("send to", &e))?;
    let mut buf = Vec::new();
    loop {
        if let Some(a) = parse_answer(&buf)? {
            if (100..200).contains(&a.status) {
                buf.drain(..a.len);
                continue;
            }
            buf.truncate(a.len);
            return Ok((a.status, buf, a.body_at));
        }
        let at = buf.len();
        buf.resize(at + READ_CHUNK, 0);
        let n = s
            .read(&mut buf[at..])
            .map_err(|e| ep.failed("read from", &e))?;
        buf.truncate(at + n);
        if n == 0 {
            let closed = format!("{} closed the connection unanswered", ep.addr);
            return Err(HttpFailure::Other(closed));
        }
    }
}

/// Calls `operation` and gives its JSON answer, or the endpoint's error.
fn call_ok(ep: &Endpoint, operation: &str, body: &Value) -> Result<(Value, Vec<u8>), String> {
    let (status, answer, raw) = call_once(ep, &ep.request(operation, &body.to_string()))?;
    if status != 200 {
        return Err(format!("{operation} answered {status}: {answer}"));
    }
    Ok((answer, raw))
}

/// The body of one request of `op` on `key_id`.
fn body(op: LoadOp, key_id: &str, payload: usize, ciphertext: &str) -> Value {
    let plaintext = base64::engine::general_purpose::STANDARD.encode(vec![0x5a; payload]);
    match op {
        LoadOp::GenerateDataKey if payload == 32 => json!({"KeyId": key_id, "KeySpec": "AES_256"}),
        LoadOp::GenerateDataKey => json!({"KeyId": key_id, "NumberOfBytes": payload}),
        LoadOp::Encrypt => json!({"KeyId": key_id, "Plaintext": plaintext}),
        LoadOp::Decrypt => json!({"KeyId": key_id, "CiphertextBlob": ciphertext}),
        LoadOp::GenerateRandom => json!({"NumberOfBytes": payload}),
        LoadOp::GenerateMac => {
            json!({"KeyId": key_id, "Message": plaintext, "MacAlgorithm": "HMAC_SHA_256"})
        }
        LoadOp::Sign => {
            json!({"KeyId": key_id, "Message": plaintext, "SigningAlgorithm": "ECDSA_SHA_256"})
        }
        // DeriveSharedSecret's peer public key comes as `ciphertext` (base64).
        LoadOp::DeriveSharedSecret => json!({
            "KeyId": key_id,
            "KeyAgreementAlgorithm": "ECDH",
            "PublicKey": ciphertext
        }),
        // Verify's signature comes as `ciphertext`: the sample blob the run made first.
        LoadOp::Verify => json!({
            "KeyId": key_id,
            "Message": plaintext,
            "SigningAlgorithm": "ECDSA_SHA_256",
            "Signature": ciphertext
        }),
        LoadOp::GenerateDataKeyPair => {
            serde_json::to_value(crate::loadgen::key_pair_request(key_id)).unwrap_or(Value::Null)
        }
    }
}

/// The request of the run (the key created unless given; for Decrypt, a ciphertext made
/// first) and one real answer to it.
fn prepare(ep: &Endpoint, opts: &HttpLoadOpts) -> Result<(Vec<u8>, Vec<u8>), String> {
    let key_id = match &opts.key_id {
        Some(k) => k.clone(),
        None if opts.op == LoadOp::GenerateRandom => String::new(),
        None => {
            let create = match crate::loadgen::bench_key_request(opts.op) {
                Some(r) => serde_json::to_value(&r).unwrap_or(Value::Null),
                None => json!({"Description": "kmscks bench"}),
            };
            let (answer, _) = call_ok(ep, "CreateKey", &create)?;
            answer["KeyMetadata"]["KeyId"]
                .as_str()
                .ok_or_else(|| format!("CreateKey answered without a KeyId: {answer}"))?
                .to_owned()
        }
    };
    let mut ciphertext = String::new();
    if opts.op == LoadOp::Verify {
        let (answer, _) = call_ok(ep, "Sign", &body(LoadOp::Sign, &key_id, opts.payload, ""))?;
        ciphertext = answer["Signature"]
            .as_str()
            .ok_or_else(|| format!("Sign answered without a Signature: {answer}"))?
            .to_owned();
    }
    if opts.op == LoadOp::DeriveSharedSecret {
        let peer = crate::loadgen::peer_public_key().map_err(|e| e.to_string())?;
        ciphertext = base64::engine::general_purpose::STANDARD.encode(peer);
    }
    if opts.op == LoadOp::Decrypt {
        let (answer, _) = call_ok(
            ep,
            "Encrypt",
            &body(LoadOp::Encrypt, &key_id, opts.payload, ""),
        )?;
        ciphertext = answer["CiphertextBlob"]
            .as_str()
            .ok_or_else(|| format!("Encrypt answered without a CiphertextBlob: {answer}"))?
            .to_owned();
    }
    let b = body(opts.op, &key_id, opts.payload, &ciphertext).to_string();
    let request = ep.request(opts.op.name(), &b);
    // One real answer: a setup error shows here, not as error counts; the floor echoes it.
    let (_, sample) = call_ok(
        ep,
        opts.op.name(),
        &serde_json::from_str(&b).unwrap_or(Value::Null),
    )?;
    Ok((request, sample))
}

/// What one connection counted: answers 200, other answers, latencies.
type Counts = (u64, u64, Histogram<u64>);

/// A keep-alive connection kept `depth` requests deep with one request, and when each request
/// in flight was sent: the driver of a side ([`side`]), alone ([`run_http`]) or taking turns
/// ([`compare_http`]).
struct Kept {
    ep: Endpoint,
    /// `depth` copies of the request: any number of them goes out with one write.
    burst: Vec<u8>,
    request_len: usize,
    depth: usize,
    stream: TcpStream,
    /// The server said it closes `stream` (or closed it) when nothing was owed: the next run
    /// connects again first.
    closed: bool,
    sent: VecDeque<Instant>,
    buf: Vec<u8>,
    filled: usize,
}

impl Kept {
    fn connect(ep: &Endpoint, request: &[u8], depth: usize) -> Result<Kept, String> {
        Ok(Kept {
            ep: ep.clone(),
            burst: request.repeat(depth),
            request_len: request.len(),
            depth,
            stream: ep.connect()?,
            closed: false,
            sent: VecDeque::with_capacity(depth),
            buf: vec![0u8; READ_CHUNK],
            filled: 0,
        })
    }

    /// Sends until `stop`, keeping `depth` in flight, then takes the answers still owed, which
    /// count too (a phase lasts until its last answer). A connection the server closes is
    /// made again and the requests it left unanswered are sent again on it.
    fn run(&mut self, stop: &AtomicBool) -> Result<Counts, String> {
        let mut hist = crate::loadgen::new_hist();
        let (mut done, mut errors) = (0u64, 0u64);
        let mut to_send = self.depth;
        let mut silent_reconnects = 0;
        if self.closed {
            self.reconnect()?;
        }
        loop {
            if to_send > 0 {
                self.stream
                    .write_all(&self.burst[..to_send * self.request_len])
                    .map_err(|e| self.ep.failed("send to", &e))?;
                let now = Instant::now();
                self.sent.extend(std::iter::repeat_n(now, to_send));
                to_send = 0;
            }
            let n = match self.stream.read(&mut self.buf[self.filled..]) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => 0,
                Err(e) => return Err(self.ep.failed("read from", &e).into()),
            };
            self.filled += n;
            let stopped = stop.load(Ordering::Relaxed);
            let (mut pos, mut close) = (0, n == 0);
            while !close {
                let Some(a) = parse_answer(&self.buf[pos..self.filled])? else {
                    break;
                };
                pos += a.len;
                close = a.close;
                if (100..200).contains(&a.status) {
                    continue;
                }
                let Some(t) = self.sent.pop_front() else {
                    return Err(format!("{} sent an answer nobody asked for", self.ep.addr));
                };
                let _ = hist.record(t.elapsed().as_nanos().max(1) as u64);
                if a.status == 200 {
                    done += 1;
                } else {
                    errors += 1;
                }
                if !stopped {
                    to_send += 1;
                }
                silent_reconnects = 0;
            }
            self.buf.copy_within(pos..self.filled, 0);
            self.filled -= pos;
            if self.filled == self.buf.len() {
                self.buf.resize(self.buf.len() * 2, 0);
            }
            if close {
                if self.sent.is_empty() && to_send == 0 {
                    self.closed = true;
                    break;
                }
                silent_reconnects += 1;
                if silent_reconnects > 3 {
                    return Err(format!(
                        "{} closes connections without answering",
                        self.ep.addr
                    ));
                }
                // Whatever was not answered is asked again on a new connection.
                self.reconnect()?;
                to_send += self.sent.len();
                self.sent.clear();
            }
            if stopped && self.sent.is_empty() && to_send == 0 {
                break;
            }
        }
        Ok((done, errors, hist))
    }

    fn reconnect(&mut self) -> Result<(), String> {
        self.stream = self.ep.connect()?;
        self.closed = false;
        self.filled = 0;
        Ok(())
    }

    /// One phase of a side ([`Kept::run`]).
    fn phase(&mut self, stop: &AtomicBool) -> kmscks::error::Result<Run> {
        let (done, errors, hist) = self.run(stop).map_err(turn_failed)?;
        Ok((done, errors, Duration::ZERO, hist))
    }
}

/// Drives the endpoint at `url` as `opts` says, alone for `opts.duration` (counted as a
/// comparison's phases are, `crate::loadgen_turns::alone`).
pub(crate) fn run_http(url: &str, opts: &HttpLoadOpts) -> Result<LoadReport, String> {
    let ep = Endpoint::parse(url)?.with_timeout(Some(REPLY_TIMEOUT));
    let (request, _) = prepare(&ep, opts)?;
    let shape = (opts.connections.max(1), opts.pipeline.max(1));
    let load = side(&ep, shape, &request);
    let pooled = alone(&load, &|| None, opts.duration).map_err(|e| e.message().to_owned())?;
    Ok(pooled.report(opts.op, shape, opts.payload))
}

/// Runs the endpoint at `url` and two echo floors with the same requests, answers, C and D,
/// taking turns on connections kept open (`crate::loadgen_turns`); fills in the baseline
/// members (the faster floor's) and `ratio` = endpoint ops/s ÷ floor ops/s.
pub(crate) fn compare_http(url: &str, opts: &HttpLoadOpts) -> Result<LoadReport, String> {
    let ep = Endpoint::parse(url)?.with_timeout(Some(REPLY_TIMEOUT));
    let (request, sample) = prepare(&ep, opts)?;
    let shape = (opts.connections.max(1), opts.pipeline.max(1));
    let servers = [
        EchoServer::start(sample.clone())?,
        EchoServer::start(sample)?,
    ];
    let ours = side(&ep, shape, &request);
    let floors = [
        side(&servers[0].endpoint(), shape, &request),
        side(&servers[1].endpoint(), shape, &request),
    ];
    let (pooled, theirs) = take_turns(&ours, &floors, [&|| None; 3], opts.duration)
        .map_err(|e| e.message().to_owned())?;
    // The floors' connections close before their servers stop accepting.
    drop((ours, floors, servers));
    let report = |p: &Pooled| p.report(opts.op, shape, opts.payload);
    Ok(report(&pooled).with_baseline(&report(&theirs[faster(&theirs)])))
}

/// A side of a comparison: `connections` connections to `ep`, each keeping `depth` of
/// `request` in flight in the side's phases. A connection that cannot be made is the error of
/// the side's first phase.
fn side(ep: &Endpoint, (connections, depth): (usize, usize), request: &[u8]) -> Side {
    let request: Arc<[u8]> = request.into();
    Side::start(connections, |seat| {
        let (ep, request) = (ep.clone(), request.clone());
        thread::spawn(move || {
            seat.serve(
                || Kept::connect(&ep, &request, depth).map_err(turn_failed),
                Kept::phase,
            );
        })
    })
}

/// A driver's failure as the sides taking turns carry it (their errors are the library's;
/// [`compare_http`] gives back the message).
fn turn_failed(message: String) -> kmscks::error::KmsError {
    kmscks::error::KmsError::new(kmscks::error::ErrorKind::KMSInternalException, message)
}

/// An HTTP server in this process answering every request with the same bytes: a thread per
/// connection, each read's whole requests answered with one write. Stops accepting when
/// dropped (its connections end when their clients close).
struct EchoServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    accept: Option<thread::JoinHandle<()>>,
}

impl EchoServer {
    fn start(answer: Vec<u8>) -> Result<EchoServer, String> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .map_err(|e| format!("cannot start the echo floor: {e}"))?;
        let addr = listener
            .local_addr()
            .map_err(|e| format!("the echo floor has no address: {e}"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let answer: Arc<[u8]> = answer.into();
        let flag = stop.clone();
        let accept = thread::spawn(move || {
            for conn in listener.incoming() {
                if flag.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let answer = answer.clone();
                thread::spawn(move || echo(conn, &answer));
            }
        });
        Ok(EchoServer {
            addr,
            stop,
            accept: Some(accept),
        })
    }

    fn endpoint(&self) -> Endpoint {
        Endpoint {
            addr: self.addr,
            host: self.addr.to_string(),
            timeout: Some(REPLY_TIMEOUT),
        }
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wakes the accepting thread, which then sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

/// Serves one echo connection until the client closes it (or sends what is not a request),
/// waiting for requests as kmscksd's loops wait (`kmscks::daemon::wake`: spin, then park), so
/// that the floor is never slower than the endpoint it is the floor of.
fn echo(s: TcpStream, answer: &[u8]) {
    let _ = s.set_nodelay(true);
    let Ok(mut s) = s
        .set_nonblocking(true)
        .and_then(|()| SpinStream::new(mio::net::TcpStream::from_std(s)))
    else {
        return;
    };
    let mut buf = vec![0u8; READ_CHUNK];
    let mut filled = 0;
    let mut out = Vec::new();
    loop {
        let n = match s.read(&mut buf[filled..]) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        filled += n;
        let mut pos = 0;
        loop {
            let mut headers = [httparse::EMPTY_HEADER; MAX_ANSWER_HEADERS];
            let mut req = httparse::Request::new(&mut headers);
            let head = match req.parse(&buf[pos..filled]) {
                Ok(httparse::Status::Complete(n)) => n,
                Ok(httparse::Status::Partial) => break,
                Err(_) => return,
            };
            let length = req
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse().ok())
                .unwrap_or(0usize);
            if filled - pos < head + length {
                break;
            }
            pos += head + length;
            out.extend_from_slice(answer);
        }
        buf.copy_within(pos..filled, 0);
        filled -= pos;
        if filled == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
        if !out.is_empty() {
            if s.write_all(&out).is_err() {
                return;
            }
            out.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_an_address_and_a_host_header() {
        let ep = Endpoint::parse("http://127.0.0.1:4599/").unwrap();
        assert_eq!(ep.addr, "127.0.0.1:4599".parse().unwrap());
        assert_eq!(ep.host, "127.0.0.1:4599");
        assert_eq!(Endpoint::parse("http://127.0.0.1").unwrap().addr.port(), 80);
        for bad in [
            "https://127.0.0.1:1",
            "127.0.0.1:1",
            "http://",
            "http://h:1/kms",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn answers_are_framed_by_content_length_and_may_close() {
        let two = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}HTTP/1.1 400 Bad\r\n\
                    Connection: close\r\nContent-Length: 0\r\n\r\n";
        let a = parse_answer(two).unwrap().unwrap();
        assert_eq!(
            (a.status, a.close, &two[a.body_at..a.len]),
            (200, false, &b"{}"[..])
        );
        let b = parse_answer(&two[a.len..]).unwrap().unwrap();
        assert_eq!((b.status, b.close, a.len + b.len), (400, true, two.len()));
        assert!(parse_answer(&two[..a.len - 1]).unwrap().is_none());
        assert!(parse_answer(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").is_err());
    }

    #[test]
    fn a_side_whose_endpoint_stops_answering_fails_its_phase_after_the_read_timeout() {
        // Accepts (the kernel does, into the backlog) and never answers.
        let silent = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", silent.local_addr().unwrap());
        let limit = Duration::from_millis(100);
        let ep = Endpoint::parse(&url).unwrap().with_timeout(Some(limit));
        let request = ep.request("GenerateDataKey", r#"{"KeyId":"alias/x"}"#);
        for shape in [(1, 1), (2, 8)] {
            let load = side(&ep, shape, &request);
            let e = load.phase(Duration::from_millis(10)).unwrap_err();
            assert!(e.message().contains("nothing for 100 ms"), "{e:?}");
        }
        // One exchange too, which the command line's --endpoint-url makes.
        match ep.exchange(&request) {
            Err(HttpFailure::TimedOut(m)) => assert!(m.contains("read timeout"), "{m}"),
            other => panic!("{other:?}"),
        }
        // The floors' endpoints have the bench's limit.
        let echo = EchoServer::start(Vec::new()).unwrap();
        assert_eq!(echo.endpoint().timeout, Some(REPLY_TIMEOUT));
    }

    #[test]
    fn the_echo_floor_answers_every_pipelined_request() {
        let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}".to_vec();
        let echo = EchoServer::start(answer).unwrap();
        let ep = echo.endpoint();
        let request = ep.request("GenerateDataKey", r#"{"KeyId":"alias/x"}"#);
        let load = side(&ep, (2, 8), &request);
        let pooled = alone(&load, &|| None, Duration::from_millis(100)).unwrap();
        let r = pooled.report(LoadOp::GenerateDataKey, (2, 8), 32);
        assert_eq!((r.errors, r.threads, r.batch), (0, 2, 8));
        assert!(r.ops_per_sec > 0.0 && r.p50_us <= r.p99_us, "{r:?}");
    }

    #[test]
    fn a_side_in_turns_counts_every_answer_of_each_phase_and_asks_again_on_a_new_connection() {
        // Every answer says the connection closes: each is followed by a new connection and
        // the requests it left unanswered sent again, within a phase and after its stop.
        let answer = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}";
        let echo = EchoServer::start(answer.to_vec()).unwrap();
        let ep = echo.endpoint();
        let request = ep.request("GenerateDataKey", r#"{"KeyId":"alias/x"}"#);
        let closing = side(&ep, (2, 4), &request);
        for _ in 0..3 {
            let (done, errors, elapsed, hist) = closing.phase(Duration::from_millis(50)).unwrap();
            assert!(done > 0 && errors == 0, "{done} done, {errors} failed");
            // Every answer of the phase is counted, and its latency kept.
            assert_eq!(hist.len(), done);
            assert!(elapsed >= Duration::from_millis(50), "{elapsed:?}");
        }
        // Stopped from the start: the answers owed still count, and a connection the last
        // answer closed is made again before the next run sends.
        let mut kept = Kept::connect(&ep, &request, 2).unwrap();
        let stopped = AtomicBool::new(true);
        for _ in 0..2 {
            let (done, errors, hist) = kept.run(&stopped).unwrap();
            assert_eq!((done, errors, hist.len()), (2, 0, 2));
            assert!(kept.closed, "the last answer said the connection closes");
        }
        let failing = side(
            &Endpoint::parse("http://127.0.0.1:1").unwrap(),
            (1, 1),
            &request,
        );
        let e = failing.phase(Duration::from_millis(10)).unwrap_err();
        assert!(e.message().contains("cannot connect"), "{e:?}");
    }
}
