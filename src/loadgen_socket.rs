//! Load generator over the daemon's socket, and its floor: an in-process echo server.
//!
//! [`run_socket`] drives a daemon through `connections` [`Pipeline`](crate::client::Pipeline)s, each keeping `pipeline`
//! requests in flight, for `duration`. [`run_echo_baseline`] drives an echo server in this
//! process the same way (same client code, same C and D, the same request frames), answering
//! every request frame with the daemon's own reply bytes (request id patched), so the baseline
//! is "everything except the daemon's work": socket syscalls, framing and client-side decoding.
//! [`compare_socket`] runs both and fills in the ratio.
//!
//! The report reuses [`LoadReport`]: `threads` is the number of connections, `batch` the
//! pipeline depth. Latency is per request, from submit to reply.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::api::kms::{
    CreateKeyRequest, DecryptRequest, EncryptRequest, GenerateDataKeyRequest, GenerateRandomRequest,
};
use crate::client::Client;
use crate::error::{ErrorKind, KmsError, Result};
use crate::loadgen::{LoadOp, LoadReport};
use crate::ops::{Backend, Request, Response};
use crate::protocol::{
    encode_hello_reply, encode_response, split_frame, HelloReply, HEADER_LEN, MAX_BODY, OP_HELLO,
    VERSION,
};
use crate::secret::SecretBytes;

/// What to run over the socket.
#[derive(Clone, Debug)]
pub struct SocketLoadOpts {
    /// The operation.
    pub op: LoadOp,
    /// Connections (one driving thread each).
    pub connections: usize,
    /// Requests in flight per connection.
    pub pipeline: usize,
    /// Payload bytes (plaintext size, or data key / random length).
    pub payload: usize,
    /// How long to run.
    pub duration: Duration,
    /// The key to use; `None`: create one (default key store) for the run.
    pub key_id: Option<String>,
}

impl Default for SocketLoadOpts {
    fn default() -> SocketLoadOpts {
        SocketLoadOpts {
            op: LoadOp::GenerateDataKey,
            connections: 1,
            pipeline: 1,
            payload: 32,
            duration: Duration::from_secs(1),
            key_id: None,
        }
    }
}

/// Builds the request of one run (fresh each time: requests own their secrets).
#[derive(Clone)]
struct RequestMaker {
    op: LoadOp,
    key_id: String,
    payload: usize,
    ciphertext: Vec<u8>,
}

impl RequestMaker {
    fn make(&self) -> Request {
        let n = u32::try_from(self.payload).unwrap_or(u32::MAX);
        match self.op {
            LoadOp::Encrypt => Request::Encrypt(EncryptRequest {
                key_id: self.key_id.clone(),
                plaintext: SecretBytes::zeroed(self.payload),
                ..Default::default()
            }),
            LoadOp::Decrypt => Request::Decrypt(DecryptRequest {
                ciphertext_blob: self.ciphertext.clone(),
                ..Default::default()
            }),
            LoadOp::GenerateDataKey => Request::GenerateDataKey(GenerateDataKeyRequest {
                key_id: self.key_id.clone(),
                number_of_bytes: Some(n),
                ..Default::default()
            }),
            LoadOp::GenerateRandom => Request::GenerateRandom(GenerateRandomRequest {
                number_of_bytes: Some(n),
                custom_key_store_id: None,
            }),
        }
    }
}

/// Prepares the run against the daemon at `path`: the key (created unless given) and, for
/// Decrypt, a ciphertext of `payload` bytes.
fn prepare(client: &Client, opts: &SocketLoadOpts) -> Result<RequestMaker> {
    let key_id = match &opts.key_id {
        Some(k) => k.clone(),
        None => match client.call(&Request::CreateKey(CreateKeyRequest {
            description: Some("kmscks bench".into()),
            ..Default::default()
        }))? {
            Response::CreateKey(r) => r.key_metadata.key_id,
            other => return Err(unexpected(&other)),
        },
    };
    let mut maker = RequestMaker {
        op: opts.op,
        key_id,
        payload: opts.payload,
        ciphertext: Vec::new(),
    };
    if opts.op == LoadOp::Decrypt {
        let enc = client.call(
            &RequestMaker {
                op: LoadOp::Encrypt,
                ..maker.clone()
            }
            .make(),
        )?;
        match enc {
            Response::Encrypt(r) => maker.ciphertext = r.ciphertext_blob,
            other => return Err(unexpected(&other)),
        }
    }
    Ok(maker)
}

fn unexpected(r: &Response) -> KmsError {
    KmsError::new(
        ErrorKind::KMSInternalException,
        format!("unexpected {} response from the daemon", r.op().name()),
    )
}

/// Drives `path` with `opts.connections` pipelines for `opts.duration`.
fn drive(path: &Path, opts: &SocketLoadOpts, maker: &RequestMaker) -> Result<LoadReport> {
    let client = Arc::new(Client::connect(path)?);
    let conns = opts.connections.max(1);
    let depth = opts.pipeline.max(1);
    let stop = Arc::new(AtomicBool::new(false));
    let start = Arc::new(Barrier::new(conns + 1));
    let mut handles = Vec::with_capacity(conns);
    for _ in 0..conns {
        let (client, stop, start, maker) =
            (client.clone(), stop.clone(), start.clone(), maker.clone());
        handles.push(thread::spawn(
            move || -> Result<(u64, u64, Histogram<u64>)> {
                let mut hist = crate::loadgen::new_hist();
                let (mut done, mut errors) = (0u64, 0u64);
                let pipe = client.pipeline(depth);
                start.wait();
                let mut p = pipe?;
                let mut sent: HashMap<u64, Instant> = HashMap::with_capacity(depth * 2);
                while !stop.load(Ordering::Relaxed) {
                    while p.in_flight() + p.ready() < depth {
                        let id = p.submit(&maker.make())?;
                        sent.insert(id, Instant::now());
                    }
                    let (id, r) = p.recv()?;
                    if let Some(t) = sent.remove(&id) {
                        let _ = hist.record(t.elapsed().as_nanos().max(1) as u64);
                    }
                    match r {
                        Ok(_) => done += 1,
                        Err(_) => errors += 1,
                    }
                }
                // Collect the stragglers (not counted: the clock has stopped).
                while p.in_flight() > 0 || p.ready() > 0 {
                    let _ = p.recv()?;
                }
                Ok((done, errors, hist))
            },
        ));
    }
    start.wait();
    let t0 = Instant::now();
    thread::sleep(opts.duration);
    stop.store(true, Ordering::Relaxed);
    let elapsed = t0.elapsed();
    let mut hist = crate::loadgen::new_hist();
    let (mut done, mut errors) = (0u64, 0u64);
    let mut first_err = None;
    for h in handles {
        match h.join() {
            Ok(Ok((d, e, hh))) => {
                done += d;
                errors += e;
                let _ = hist.add(&hh);
            }
            Ok(Err(e)) => first_err = first_err.or(Some(e)),
            Err(_) => {
                first_err = first_err.or(Some(KmsError::new(
                    ErrorKind::KMSInternalException,
                    "a load generator thread panicked",
                )))
            }
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    Ok(LoadReport::measured(
        opts.op,
        (conns, depth),
        opts.payload,
        (done, errors),
        elapsed,
        &hist,
    ))
}

/// Drives the daemon at `path` as `opts` says.
pub fn run_socket(path: &Path, opts: &SocketLoadOpts) -> Result<LoadReport> {
    let client = Client::connect(path)?;
    let maker = prepare(&client, opts)?;
    drive(path, opts, &maker)
}

/// An echo server on a Unix socket in a temporary directory: it answers every request frame
/// with `reply` (a whole reply frame) with the request id patched in, writing the replies to
/// each read's frames in one write. Stops when dropped.
pub struct EchoServer {
    dir: PathBuf,
    path: PathBuf,
    stop: Arc<AtomicBool>,
}

impl EchoServer {
    /// Starts the server; `reply` is the full reply frame (header and body).
    pub fn start(reply: Vec<u8>) -> Result<EchoServer> {
        let dir = std::env::temp_dir().join(format!(
            "kmscks-echo-{}-{}",
            std::process::id(),
            crate::types::KeyId::generate()
        ));
        std::fs::create_dir_all(&dir).map_err(|e| io_err(&dir, &e))?;
        let path = dir.join("echo.sock");
        let listener = UnixListener::bind(&path).map_err(|e| io_err(&path, &e))?;
        let stop = Arc::new(AtomicBool::new(false));
        let (reply, stop2) = (Arc::new(reply), stop.clone());
        thread::spawn(move || {
            for s in listener.incoming() {
                if stop2.load(Ordering::Relaxed) {
                    return;
                }
                if let Ok(s) = s {
                    let reply = reply.clone();
                    thread::spawn(move || echo_conn(s, &reply));
                }
            }
        });
        Ok(EchoServer { dir, path, stop })
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop so it sees the flag.
        let _ = UnixStream::connect(&self.path);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn io_err(path: &Path, e: &std::io::Error) -> KmsError {
    KmsError::new(
        ErrorKind::StorageException,
        format!("echo server at {}: {e}", path.display()),
    )
}

fn echo_conn(mut s: UnixStream, reply: &[u8]) {
    let mut buf = vec![0u8; 256 * 1024];
    let (mut have, mut out) = (0usize, Vec::with_capacity(64 * 1024));
    loop {
        if have == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
        match s.read(&mut buf[have..]) {
            Ok(0) | Err(_) => return,
            Ok(n) => have += n,
        }
        let mut at = 0;
        while let Ok(Some((h, _, used))) = split_frame(&buf[at..have]) {
            if h.op == OP_HELLO {
                let hello = HelloReply {
                    version: VERSION,
                    server: "kmscks-echo".into(),
                    max_body: MAX_BODY,
                    max_in_flight: u32::MAX,
                    principal: String::new(),
                };
                encode_hello_reply(&mut out, h.request_id, &hello);
                at += used;
                continue;
            }
            let start = out.len();
            out.extend_from_slice(reply);
            out[start + 8..start + 16].copy_from_slice(&h.request_id.to_le_bytes());
            at += used;
        }
        if split_frame(&buf[at..have]).is_err() {
            return;
        }
        buf.copy_within(at..have, 0);
        have -= at;
        if !out.is_empty() {
            if s.write_all(&out).is_err() {
                return;
            }
            out.clear();
        }
    }
}

/// The echo floor for `opts`: the same requests, connections and depth against an in-process
/// echo server that answers with `reply` (a reply as the daemon would send it).
pub fn run_echo_baseline(
    opts: &SocketLoadOpts,
    key_id: &str,
    reply: &Result<Response, KmsError>,
) -> Result<LoadReport> {
    let mut frame = Vec::new();
    encode_response(&mut frame, 0, opts.op_code(), reply);
    debug_assert!(frame.len() >= HEADER_LEN);
    let server = EchoServer::start(frame)?;
    let maker = RequestMaker {
        op: opts.op,
        key_id: key_id.to_owned(),
        payload: opts.payload,
        ciphertext: Vec::new(),
    };
    drive(server.path(), opts, &maker)
}

impl SocketLoadOpts {
    fn op_code(&self) -> u16 {
        let op = match self.op {
            LoadOp::Encrypt => crate::ops::Op::Encrypt,
            LoadOp::Decrypt => crate::ops::Op::Decrypt,
            LoadOp::GenerateDataKey => crate::ops::Op::GenerateDataKey,
            LoadOp::GenerateRandom => crate::ops::Op::GenerateRandom,
        };
        op.code()
    }
}

/// Runs the daemon at `path`, then the echo floor with the same frame sizes, C and D; fills in
/// the baseline members and `ratio` = daemon ops/s ÷ echo ops/s.
pub fn compare_socket(path: &Path, opts: &SocketLoadOpts) -> Result<LoadReport> {
    let client = Client::connect(path)?;
    let maker = prepare(&client, opts)?;
    // One real reply: the echo server sends exactly these bytes back.
    let sample = client.call(&maker.make());
    if let Err(e) = &sample {
        return Err(e.clone());
    }
    let r = drive(path, opts, &maker)?;
    let mut frame = Vec::new();
    encode_response(&mut frame, 0, opts.op_code(), &sample);
    let server = EchoServer::start(frame)?;
    let b = drive(server.path(), opts, &maker)?;
    Ok(r.with_baseline(&b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::kms::GenerateDataKeyResponse;

    #[test]
    fn echo_baseline_answers_every_request() {
        let opts = SocketLoadOpts {
            connections: 2,
            pipeline: 8,
            duration: Duration::from_millis(200),
            ..Default::default()
        };
        let reply = Ok(Response::GenerateDataKey(GenerateDataKeyResponse {
            ciphertext_blob: vec![1; 120],
            plaintext: Some(SecretBytes::zeroed(32)),
            key_id: "arn:aws:kms:us-east-1:111122223333:key/x".into(),
        }));
        let r = run_echo_baseline(&opts, "alias/bench", &reply).unwrap();
        assert_eq!(r.errors, 0);
        assert!(r.ops_per_sec > 0.0, "{r:?}");
        assert_eq!((r.threads, r.batch), (2, 8));
        assert!(r.p50_us > 0.0 && r.p50_us <= r.p99_us, "{r:?}");
    }
}
