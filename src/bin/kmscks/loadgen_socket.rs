//! Load generator over the daemon's socket, and its floor: an in-process echo server.
//!
//! [`run_socket`] drives a daemon through `connections` [`Pipeline`](kmscks::client::Pipeline)s, each keeping `pipeline`
//! requests in flight, for `duration`. The echo floor drives an echo server in this
//! process ([`EchoServer`]) the same way (same client code, same C and D, the same request frames), answering
//! every request frame with the daemon's own reply bytes (request id patched), so the baseline
//! is "everything except the daemon's work": socket syscalls, framing and client-side decoding.
//! [`compare_socket`] runs both, taking turns (`crate::loadgen_turns`), and fills in the ratio.
//!
//! The report reuses [`LoadReport`]: `threads` is the number of connections, `batch` the
//! pipeline depth. Latency is per request, from submit to reply.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use crate::loadgen::{LoadOp, LoadReport, Run};
use crate::loadgen_turns::{alone, faster, take_turns, Pooled, Side};
use crate::proc_cpu::process_cpu_ns;
use kmscks::api::kms::{
    CreateKeyRequest, DecryptRequest, DeriveSharedSecretRequest, EncryptRequest,
    GenerateDataKeyRequest, GenerateMacRequest, GenerateRandomRequest, SignRequest, VerifyRequest,
};
use kmscks::client::{Client, ClientBuilder, Pipeline};
use kmscks::daemon::echo::EchoServer;
use kmscks::error::{ErrorKind, KmsError, Result};
use kmscks::ops::{Backend, Request, Response};
use kmscks::protocol::encode_response;
use kmscks::secret::SecretBytes;
use kmscks::types::{KeyAgreementAlgorithm, MacAlgorithm, SigningAlgorithm};

/// What to run over the socket.
#[derive(Clone, Debug)]
pub(crate) struct SocketLoadOpts {
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
    /// Measure alone and beside one more connection issuing this call in a loop, in turns
    /// (`crate::loadgen_beside`).
    pub beside: Option<crate::loadgen_beside::Beside>,
    /// How long the client's threads keep checking for a reply before they sleep.
    pub reply_spin: Duration,
    /// How long any connection waits for the server to answer or to take a request
    /// (`ClientBuilder::reply_timeout`; zero: no limit).
    pub reply_timeout: Duration,
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
            beside: None,
            reply_spin: kmscks::client::DEFAULT_REPLY_SPIN,
            reply_timeout: crate::loadgen_turns::REPLY_TIMEOUT,
        }
    }
}

/// Builds the request of one run (fresh each time: requests own their secrets).
#[derive(Clone)]
pub(crate) struct RequestMaker {
    op: LoadOp,
    key_id: String,
    payload: usize,
    ciphertext: Vec<u8>,
    /// Verify's signature (made by a Sign first).
    signature: Vec<u8>,
    /// DeriveSharedSecret's peer public key.
    peer: Vec<u8>,
}

impl RequestMaker {
    pub(crate) fn make(&self) -> Request {
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
            LoadOp::GenerateMac => Request::GenerateMac(GenerateMacRequest {
                key_id: self.key_id.clone(),
                message: SecretBytes::zeroed(self.payload),
                mac_algorithm: Some(MacAlgorithm::HmacSha256),
                ..Default::default()
            }),
            LoadOp::Sign => Request::Sign(SignRequest {
                key_id: self.key_id.clone(),
                message: SecretBytes::zeroed(self.payload),
                signing_algorithm: Some(SigningAlgorithm::EcdsaSha256),
                ..Default::default()
            }),
            LoadOp::Verify => Request::Verify(VerifyRequest {
                key_id: self.key_id.clone(),
                message: SecretBytes::zeroed(self.payload),
                signing_algorithm: Some(SigningAlgorithm::EcdsaSha256),
                signature: self.signature.clone(),
                ..Default::default()
            }),
            LoadOp::GenerateDataKeyPair => {
                Request::GenerateDataKeyPair(crate::loadgen::key_pair_request(&self.key_id))
            }
            LoadOp::DeriveSharedSecret => Request::DeriveSharedSecret(DeriveSharedSecretRequest {
                key_id: self.key_id.clone(),
                key_agreement_algorithm: Some(KeyAgreementAlgorithm::Ecdh),
                public_key: self.peer.clone(),
                ..Default::default()
            }),
        }
    }
}

/// Prepares the run against the daemon at `path`: the key (created unless given) and, for
/// Decrypt, a ciphertext of `payload` bytes.
fn prepare(client: &Client, opts: &SocketLoadOpts) -> Result<RequestMaker> {
    let key_id = match &opts.key_id {
        Some(k) => k.clone(),
        None if crate::loadgen::bench_key_request(opts.op).is_some() => {
            let req = crate::loadgen::bench_key_request(opts.op).unwrap_or_default();
            match client.call(&Request::CreateKey(req))? {
                Response::CreateKey(r) => r.key_metadata.key_id,
                other => return Err(unexpected(&other)),
            }
        }
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
        signature: Vec::new(),
        peer: crate::loadgen::peer_public_key()?,
    };
    if opts.op == LoadOp::Verify {
        let signed = client.call(
            &RequestMaker {
                op: LoadOp::Sign,
                ..maker.clone()
            }
            .make(),
        )?;
        match signed {
            Response::Sign(r) => maker.signature = r.signature,
            other => return Err(unexpected(&other)),
        }
    }
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

pub(crate) fn unexpected(r: &Response) -> KmsError {
    KmsError::new(
        ErrorKind::KMSInternalException,
        format!("unexpected {} response from the daemon", r.op().name()),
    )
}

/// One connection's driving loop: waits at `start`, then keeps `depth` of `maker`'s request
/// in flight on `client` until `stop`, calling `record` with each reply's latency (ns, from
/// submit) and whether it succeeded; the replies still in flight at `stop` are taken but not
/// recorded (the clock has stopped). A pipeline that cannot be opened is an error only after
/// `start`, so that the other drivers and the measuring thread are not left at the barrier.
pub(crate) fn keep_full(
    client: &Client,
    depth: usize,
    maker: &RequestMaker,
    start: &Barrier,
    stop: &AtomicBool,
    mut record: impl FnMut(u64, bool),
) -> Result<()> {
    let pipe = client.pipeline(depth);
    // Every request of a run is the same: made once, so the client's work per request is the
    // protocol's (encode, decode), not building a request.
    let request = maker.make();
    start.wait();
    let mut kept = Kept::new(pipe?, request, depth);
    while !stop.load(Ordering::Relaxed) {
        kept.step(&mut record)?;
    }
    kept.drain(&mut |_, _| {})
}

/// A pipeline kept `depth` deep with one request, and when each request in flight was sent:
/// the driving step shared by [`keep_full`] and the sides taking turns ([`side`]).
struct Kept<'c> {
    pipe: Pipeline<'c>,
    request: Request,
    depth: usize,
    sent: SentAt,
    /// The last clock read. One per request: the time a reply is taken is also the time the
    /// next request (submitted right after it) is sent.
    now: Instant,
}

impl<'c> Kept<'c> {
    /// `pipe` to be kept `depth` deep with `request` (made once, so that the client's work per
    /// request is the protocol's, encode and decode, not building a request).
    fn new(pipe: Pipeline<'c>, request: Request, depth: usize) -> Kept<'c> {
        Kept {
            pipe,
            request,
            depth,
            sent: SentAt::with_capacity_and_hasher(depth * 2, Default::default()),
            now: Instant::now(),
        }
    }

    /// Reads the clock afresh: the next requests are sent now (after a pause between turns).
    fn restart(&mut self) {
        self.now = Instant::now();
    }

    /// Tops the pipeline up to its depth and takes one reply, calling `record` with its
    /// latency (ns, from submit) and whether it succeeded.
    fn step(&mut self, record: &mut impl FnMut(u64, bool)) -> Result<()> {
        while self.pipe.in_flight() + self.pipe.ready() < self.depth {
            let id = self.pipe.submit(&self.request)?;
            self.sent.insert(id, self.now);
        }
        self.take(record)
    }

    /// Takes every reply still in flight, each through `record`.
    fn drain(&mut self, record: &mut impl FnMut(u64, bool)) -> Result<()> {
        while self.pipe.in_flight() > 0 || self.pipe.ready() > 0 {
            self.take(record)?;
        }
        Ok(())
    }

    /// One phase of a side taking turns: sends until `stop`, then takes the replies still in
    /// flight; every reply counts (the phase lasts until the last).
    fn phase(&mut self, stop: &AtomicBool) -> Result<Run> {
        let mut hist = crate::loadgen::new_hist();
        let (mut done, mut errors) = (0u64, 0u64);
        let mut record = |ns: u64, ok: bool| {
            let _ = hist.record(ns);
            if ok {
                done += 1;
            } else {
                errors += 1;
            }
        };
        self.restart();
        // At least one step: a phase whose thread first ran after its stop (a loaded machine)
        // still sends, and its server's silence is still an error rather than an empty phase.
        loop {
            self.step(&mut record)?;
            if stop.load(Ordering::Relaxed) {
                break;
            }
        }
        self.drain(&mut record)?;
        Ok((done, errors, Duration::ZERO, hist))
    }

    fn take(&mut self, record: &mut impl FnMut(u64, bool)) -> Result<()> {
        let (id, r) = self.pipe.recv()?;
        self.now = Instant::now();
        if let Some(t) = self.sent.remove(&id) {
            record(
                self.now.duration_since(t).as_nanos().max(1) as u64,
                r.is_ok(),
            );
        }
        Ok(())
    }
}

/// A side of a comparison (`crate::loadgen_turns`): `connections` pipelines `depth` deep of
/// `maker`'s request to the server `to` connects to ([`connect`], with the wait for a lone
/// reply the side's). A pipeline that cannot be opened is the error of the side's first
/// phase.
fn side(
    to: ClientBuilder,
    (connections, depth): (usize, usize),
    maker: &RequestMaker,
) -> Result<Side> {
    let client = Arc::new(to.connect()?);
    Ok(Side::start(connections, |seat| {
        let (client, request) = (client.clone(), maker.make());
        thread::spawn(move || {
            let open = || {
                let pipe = client.pipeline(depth)?;
                Ok(Kept::new(pipe, request, depth))
            };
            seat.serve(open, Kept::phase);
        })
    }))
}

/// A bench's connections to the server at `path`, waiting for it as `opts` says (at most
/// `reply_timeout`, spinning `reply_spin` for a lone reply).
pub(crate) fn connect(path: &Path, opts: &SocketLoadOpts) -> ClientBuilder {
    Client::builder(path)
        .reply_timeout(opts.reply_timeout)
        .reply_spin(opts.reply_spin)
}

/// When each request in flight was sent, by request id.
type SentAt = HashMap<u64, Instant, BuildHasherDefault<IdHasher>>;

/// Hashes a request id with one multiplication: ids are unique counters, so SipHash's
/// resistance to chosen keys buys nothing here and cost the driving thread more than the
/// daemon's routing of a request.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_u64(&mut self, id: u64) {
        // Fibonacci hashing: spreads consecutive ids over the high bits the table probes by.
        self.0 = id.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// Items per call of the raw loop behind [`raw_cpu_ns_per_op`]: enough that the loop's own
/// clock reads and latency record per call (about 50 ns, more than a third of a 32-byte data
/// key's sealing) are spread thin, as the daemon spreads its per-read costs over a pipeline.
const RAW_CPU_BATCH: usize = 256;

/// The raw crypto's CPU per request for `opts`' operation and payload: the raw aws-lc-rs loop
/// on one thread, [`RAW_CPU_BATCH`] items per call, for a fraction of the window; data keys
/// drawn and sealed into reused buffers (`LoadOpts::lend`), as the daemon seals them into its
/// write buffer. Its wall time per request is scaled by the share of the wall time this
/// process was on a CPU (`/proc/self/stat`), so that a loop preempted by other work on the
/// machine is not counted as costlier: the daemon's side is CPU time too.
fn raw_cpu_ns_per_op(opts: &SocketLoadOpts) -> f64 {
    let me = std::process::id();
    let (cpu_before, started) = (process_cpu_ns(me), Instant::now());
    let raw = crate::loadgen::run_baseline(&crate::loadgen::LoadOpts {
        op: opts.op,
        threads: 1,
        batch: RAW_CPU_BATCH,
        payload: opts.payload,
        duration: (opts.duration / 4).clamp(Duration::from_millis(100), Duration::from_secs(1)),
        lend: true,
    });
    let wall_ns = started.elapsed().as_nanos() as f64;
    let wall_per_op = 1e9 / raw.ops_per_sec.max(f64::MIN_POSITIVE);
    match (cpu_before, process_cpu_ns(me)) {
        (Some(before), Some(after)) if wall_ns > 0.0 => {
            // Only this thread works meanwhile; a share above 1 is the counters' granularity.
            let on_cpu = (after.saturating_sub(before) as f64 / wall_ns).min(1.0);
            wall_per_op * on_cpu
        }
        _ => wall_per_op,
    }
}

/// The daemon's measured `report` with the raw crypto's CPU per request beside its own.
fn with_raw_cpu(mut report: LoadReport, opts: &SocketLoadOpts) -> LoadReport {
    report.raw_cpu_ns_per_op = Some(raw_cpu_ns_per_op(opts));
    report
}

/// Drives the daemon at `path` as `opts` says: the load alone for `opts.duration` (counted
/// as a comparison's phases are, `crate::loadgen_turns::alone`), or beside one more connection
/// calling in a loop (`opts.beside`, [`crate::loadgen_beside`]).
pub(crate) fn run_socket(path: &Path, opts: &SocketLoadOpts) -> Result<LoadReport> {
    let client = connect(path, opts).connect()?;
    let maker = prepare(&client, opts)?;
    let report = match opts.beside {
        None => {
            let shape = (opts.connections.max(1), opts.pipeline.max(1));
            let load = side(connect(path, opts), shape, &maker)?;
            let pid = client.daemon_pid();
            let pooled = alone(&load, &|| pid.and_then(process_cpu_ns), opts.duration)?;
            pooled_report(opts, &pooled)
        }
        Some(other) => crate::loadgen_beside::measure(path, opts, &maker, other)?,
    };
    Ok(with_raw_cpu(report, opts))
}

/// The echo floor for `opts`: the same requests, connections and depth against an in-process
/// echo server that answers with `reply` (a reply as the daemon would send it). Only its test
/// uses it alone; [`compare_socket`] runs the floor with a real reply.
#[cfg(test)]
pub(crate) fn run_echo_baseline(
    opts: &SocketLoadOpts,
    key_id: &str,
    reply: &Result<Response, KmsError>,
) -> Result<LoadReport> {
    let mut frame = Vec::new();
    encode_response(&mut frame, 0, opts.op_code(), reply);
    debug_assert!(frame.len() >= kmscks::protocol::HEADER_LEN);
    let server = EchoServer::start_for(frame, opts.connections)?;
    let shape = (opts.connections.max(1), opts.pipeline.max(1));
    let maker = RequestMaker {
        op: opts.op,
        key_id: key_id.to_owned(),
        payload: opts.payload,
        ciphertext: Vec::new(),
        signature: Vec::new(),
        // As long as the measured run's, so the echo's frames are the same size.
        peer: crate::loadgen::peer_public_key()?,
    };
    let to = connect(server.path(), opts);
    let side = side(to, shape, &maker)?;
    let floor = alone(&side, &|| server.cpu_ns(), opts.duration)?;
    Ok(pooled_report(opts, &floor))
}

/// The report of a side's pooled phases (see [`Pooled::report`]).
fn pooled_report(opts: &SocketLoadOpts, pooled: &Pooled) -> LoadReport {
    let shape = (opts.connections.max(1), opts.pipeline.max(1));
    pooled.report(opts.op, shape, opts.payload)
}

impl SocketLoadOpts {
    fn op_code(&self) -> u16 {
        let op = match self.op {
            LoadOp::Encrypt => kmscks::ops::Op::Encrypt,
            LoadOp::Decrypt => kmscks::ops::Op::Decrypt,
            LoadOp::GenerateDataKey => kmscks::ops::Op::GenerateDataKey,
            LoadOp::GenerateRandom => kmscks::ops::Op::GenerateRandom,
            LoadOp::GenerateMac => kmscks::ops::Op::GenerateMac,
            LoadOp::Sign => kmscks::ops::Op::Sign,
            LoadOp::Verify => kmscks::ops::Op::Verify,
            LoadOp::GenerateDataKeyPair => kmscks::ops::Op::GenerateDataKeyPair,
            LoadOp::DeriveSharedSecret => kmscks::ops::Op::DeriveSharedSecret,
        };
        op.code()
    }
}

/// Runs the daemon at `path` and two echo floors with the same frame sizes, C and D, taking
/// turns on connections kept open (`crate::loadgen_turns`); fills in the baseline members
/// (the faster floor's) and `ratio` = daemon ops/s ÷ floor ops/s. With `--beside` there is no
/// floor: the load's own rate alone is its baseline (the command line refuses the pair).
pub(crate) fn compare_socket(path: &Path, opts: &SocketLoadOpts) -> Result<LoadReport> {
    if opts.beside.is_some() {
        return Err(KmsError::new(
            ErrorKind::ValidationException,
            "a load beside another connection's calls is measured against itself alone, not \
             against an echo floor: leave out --baseline",
        ));
    }
    let client = connect(path, opts).connect()?;
    let maker = prepare(&client, opts)?;
    // One real reply: the echo servers send exactly these bytes back.
    let sample = client.call(&maker.make());
    if let Err(e) = &sample {
        return Err(e.clone());
    }
    let mut frame = Vec::new();
    encode_response(&mut frame, 0, opts.op_code(), &sample);
    let shape = (opts.connections.max(1), opts.pipeline.max(1));
    // The second floor's client, with one request in flight, sleeps at once rather than spin
    // for its reply (deeper pipelines never spin: the client spins only for a lone reply).
    let lone = opts.pipeline <= 1 && !opts.reply_spin.is_zero();
    let waits = [
        opts.reply_spin,
        if lone {
            Duration::ZERO
        } else {
            opts.reply_spin
        },
    ];
    let daemon = side(connect(path, opts), shape, &maker)?;
    let servers = [
        EchoServer::start_for(frame.clone(), shape.0)?,
        EchoServer::start_for(frame, shape.0)?,
    ];
    let floor = |i: usize| {
        side(
            connect(servers[i].path(), opts).reply_spin(waits[i]),
            shape,
            &maker,
        )
    };
    let floors = [floor(0)?, floor(1)?];
    let pid = client.daemon_pid();
    let (ours, theirs) = take_turns(
        &daemon,
        &floors,
        [
            &|| pid.and_then(process_cpu_ns),
            &|| servers[0].cpu_ns(),
            &|| servers[1].cpu_ns(),
        ],
        opts.duration,
    )?;
    // Stopped before the raw loop runs, whose CPU share is read from this process's time.
    drop((daemon, floors, servers));
    let best = faster(&theirs);
    let b = pooled_report(opts, &theirs[best]);
    let mut r = pooled_report(opts, &ours).with_baseline(&b);
    r.baseline_reply_spin_us = Some(waits[best].as_secs_f64() * 1e6);
    r.baseline_cpu_ns_per_op = r.daemon_cpu_ns_per_op.and(b.daemon_cpu_ns_per_op);
    Ok(with_raw_cpu(r, opts))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::loadgen_beside::Beside;
    use kmscks::api::kms::GenerateDataKeyResponse;
    use kmscks::daemon::{Daemon, DaemonConfig, Shutdown};

    #[test]
    fn echo_baseline_answers_every_request_with_a_thread_per_connection_or_polling_threads() {
        let cores = thread::available_parallelism().map_or(1, |n| n.get());
        // As many connections as cores (a thread each), then more (polling threads).
        for connections in [cores.min(2), cores + 3] {
            let opts = SocketLoadOpts {
                connections,
                pipeline: 8,
                duration: Duration::from_millis(200),
                ..Default::default()
            };
            let reply = Ok(Response::GenerateDataKey(GenerateDataKeyResponse {
                ciphertext_blob: vec![1; 120],
                plaintext: Some(SecretBytes::zeroed(32)),
                key_id: "arn:aws:kms:us-east-1:111122223333:key/x".into(),
            }));
            let me = std::process::id();
            let before = crate::proc_cpu::process_cpu_ns(me);
            let r = run_echo_baseline(&opts, "alias/bench", &reply).unwrap();
            let ours = before.zip(crate::proc_cpu::process_cpu_ns(me));
            assert_eq!(r.errors, 0);
            assert!(r.ops_per_sec > 0.0, "{r:?}");
            assert_eq!((r.threads, r.batch), (connections, 8));
            assert!(r.p50_us > 0.0 && r.p50_us <= r.p99_us, "{r:?}");
            // The floor's serving threads' CPU: more than nothing, and no more of each second
            // than those threads (one per connection, or one per core) could run on the cores.
            // Nor more than this whole process used over the run (its `/proc` counter moves in
            // steps of 10 ms): a thread counted twice would show.
            if let Some(cpu) = r.daemon_cpu_ns_per_op {
                let threads = connections.min(cores) as f64;
                let share = cpu * r.ops_per_sec / 1e9;
                assert!(
                    share > 0.0 && share <= threads * 1.1,
                    "{share} of {threads}: {r:?}"
                );
                if let Some((before, after)) = ours {
                    let echo_ns = share * opts.duration.as_nanos() as f64;
                    let ours_ns = after.saturating_sub(before) as f64;
                    assert!(echo_ns <= ours_ns + 20e6, "{echo_ns} of {ours_ns}: {r:?}");
                }
            } else {
                eprintln!("not checked: /proc does not tell the echo threads' CPU time here");
            }
        }
    }

    /// A daemon of the library served on a thread, in a fresh temporary directory; stopped
    /// when dropped.
    struct Served {
        _dir: tempfile::TempDir,
        socket: PathBuf,
        shutdown: Shutdown,
        thread: Option<thread::JoinHandle<Result<()>>>,
    }

    impl Served {
        fn start() -> Served {
            let dir = tempfile::tempdir().unwrap();
            let config = DaemonConfig {
                data_dir: dir.path().join("data"),
                socket: dir.path().join("kmscks.sock"),
                ..DaemonConfig::default()
            };
            let daemon = Daemon::bind(config).expect("daemon binds");
            let socket = daemon.socket().to_path_buf();
            let shutdown = Shutdown::new();
            let s = shutdown.clone();
            let thread = Some(thread::spawn(move || daemon.serve(s)));
            Served {
                _dir: dir,
                socket,
                shutdown,
                thread,
            }
        }
    }

    impl Drop for Served {
        fn drop(&mut self) {
            self.shutdown.trigger();
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
    }

    #[test]
    fn beside_another_connection_the_load_runs_alone_and_beside_its_calls_in_turn_and_every_phase_beside_is_reported(
    ) {
        let served = Served::start();
        for (other, name) in Beside::ALL.map(|(_, b)| (b, b.op_name())) {
            let opts = SocketLoadOpts {
                connections: 1,
                pipeline: 4,
                duration: Duration::from_millis(300),
                beside: Some(other),
                // The RSA_4096 key rsa-decrypt creates first is generated at the daemon's
                // control threads' low priority, beside this binary's other tests: in CI, more
                // than the bench's own limit.
                reply_timeout: Duration::from_secs(600),
                ..Default::default()
            };
            let r = run_socket(&served.socket, &opts).unwrap();
            assert_eq!(r.errors, 0, "{r:?}");
            assert!(r.alone_ops_per_sec.unwrap() > 0.0, "{r:?}");
            assert!(r.alone_p50_us.unwrap() > 0.0, "{r:?}");
            assert!(r.alone_p99_us.unwrap() > 0.0, "{r:?}");
            assert!(r.beside_ops_per_sec.unwrap() > 0.0, "{r:?}");
            assert_eq!(r.beside_op.as_deref(), Some(name));
            assert!(r.ops_per_sec > 0.0 && r.p50_us > 0.0, "{r:?}");
            // One share per phase beside the calls, each against the phases alone around it.
            let shares = r.beside_kept_shares.clone().unwrap();
            let rounds = crate::loadgen_beside::rounds(opts.duration) as usize;
            assert_eq!(shares.len(), rounds, "{r:?}");
            assert!(shares.iter().all(|k| k.is_finite() && *k > 0.0), "{r:?}");
            // The daemon's CPU over the phases paid for the other connection's calls too.
            assert_eq!(r.daemon_cpu_ns_per_op, None, "{r:?}");
        }
    }

    #[test]
    fn with_one_request_in_flight_the_floor_is_the_faster_of_a_client_spinning_and_one_sleeping() {
        let served = Served::start();
        let opts = SocketLoadOpts {
            connections: 2,
            pipeline: 1,
            // Two pairs of phases: each floor has one.
            duration: Duration::from_millis(1_000),
            ..Default::default()
        };
        assert_eq!(crate::loadgen::compared_pairs(opts.duration), 2);
        let r = compared(&served, &opts);
        let spin = r.baseline_reply_spin_us.unwrap();
        assert!(spin == default_spin_us() || spin == 0.0, "{r:?}");
    }

    /// `opts` compared on `served`: every request answered, both sides measured.
    fn compared(served: &Served, opts: &SocketLoadOpts) -> LoadReport {
        let r = compare_socket(&served.socket, opts).unwrap();
        assert_eq!(r.errors, 0, "{r:?}");
        assert!(
            r.ops_per_sec > 0.0 && r.baseline_ops_per_sec.unwrap() > 0.0,
            "{r:?}"
        );
        r
    }

    /// The client's default spin for a lone reply, as `baseline_reply_spin_us` gives it.
    fn default_spin_us() -> f64 {
        kmscks::client::DEFAULT_REPLY_SPIN.as_secs_f64() * 1e6
    }

    #[test]
    fn a_load_beside_another_connection_is_not_compared_with_an_echo_floor() {
        let opts = SocketLoadOpts {
            beside: Some(Beside::CreateKey),
            ..Default::default()
        };
        // Refused before anything is connected: no daemon listens here.
        let e = compare_socket(Path::new("/nonexistent/kmscks.sock"), &opts).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ValidationException);
        assert!(e.message().contains("--baseline"), "{e:?}");
    }

    #[test]
    fn socket_load_generator_compares_with_the_echo_floor() {
        let served = Served::start();
        for op in [
            LoadOp::GenerateDataKey,
            LoadOp::Decrypt,
            LoadOp::GenerateMac,
            LoadOp::Verify,
        ] {
            let opts = SocketLoadOpts {
                op,
                connections: 2,
                pipeline: 4,
                payload: 32,
                duration: Duration::from_millis(200),
                key_id: None,
                beside: None,
                reply_spin: kmscks::client::DEFAULT_REPLY_SPIN,
                reply_timeout: crate::loadgen_turns::REPLY_TIMEOUT,
            };
            let r = compared(&served, &opts);
            // Four in flight never spin: both floors have the client as configured.
            assert_eq!(r.baseline_reply_spin_us, Some(default_spin_us()), "{r:?}");
            assert!(r.ratio.unwrap() > 0.0);
            assert!(r.to_json().contains("\"ratio\""));
            // The daemon is this process here: its CPU per request is read from /proc.
            if crate::proc_cpu::process_cpu_ns(std::process::id()).is_some() {
                assert!(r.daemon_cpu_ns_per_op.unwrap() > 0.0, "{r:?}");
            }
            assert!(r.raw_cpu_ns_per_op.unwrap() > 0.0, "{r:?}");
            assert!(r.to_json().contains("\"daemon_cpu_ns_per_op\""));
            // The floor's CPU is read from its threads, beside the daemon's, and written as
            // the number it is.
            let json: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
            match r.baseline_cpu_ns_per_op {
                Some(cpu) => {
                    assert!(cpu > 0.0, "{r:?}");
                    // serde_json's default parser may miss the shortest decimal's last bit.
                    let written = json["baseline_cpu_ns_per_op"].as_f64().unwrap();
                    assert!((written - cpu).abs() <= cpu * 1e-12, "{written} vs {r:?}");
                }
                None => eprintln!("not checked: the floor's CPU time is not told here"),
            }
        }
    }

    /// A server at a fresh socket that answers every connection's Hello and then reads its
    /// requests without ever answering: a daemon wedged without closing.
    fn silent_daemon() -> (tempfile::TempDir, PathBuf) {
        use kmscks::protocol::{encode_hello_reply, split_frame, HelloReply, MAX_BODY, VERSION};
        use std::io::{Read, Write};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("silent.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        thread::spawn(move || {
            for mut s in listener.incoming().flatten() {
                thread::spawn(move || {
                    let (mut buf, mut filled) = (vec![0u8; 4096], 0);
                    let hello = loop {
                        match s.read(&mut buf[filled..]) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => filled += n,
                        }
                        if let Ok(Some((h, _, _))) = split_frame(&buf[..filled]) {
                            break h.request_id;
                        }
                    };
                    let reply = HelloReply {
                        version: VERSION,
                        server: "silent".into(),
                        max_body: MAX_BODY,
                        max_in_flight: 1024,
                        principal: "arn:aws:iam::111122223333:root".into(),
                    };
                    let mut out = Vec::new();
                    encode_hello_reply(&mut out, hello, &reply);
                    let _ = s.write_all(&out);
                    while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
                });
            }
        });
        (dir, path)
    }

    #[test]
    fn a_side_whose_server_stops_answering_fails_its_phase_after_the_reply_timeout() {
        let (_dir, path) = silent_daemon();
        let maker = RequestMaker {
            op: LoadOp::GenerateDataKey,
            key_id: "alias/any".into(),
            payload: 32,
            ciphertext: Vec::new(),
            signature: Vec::new(),
            peer: Vec::new(),
        };
        let limit = Duration::from_millis(100);
        for shape in [(1, 1), (2, 16)] {
            let to = Client::builder(&path).reply_timeout(limit);
            let load = side(to, shape, &maker).unwrap();
            let e = load.phase(Duration::from_millis(10)).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::DependencyTimeoutException, "{e:?}");
            assert!(e.message().contains("did not answer in time"), "{e:?}");
        }
        // The bench's own connections have a limit (whose error the above is).
        let bench = format!("{:?}", connect(&path, &SocketLoadOpts::default()));
        let limit = crate::loadgen_turns::REPLY_TIMEOUT;
        assert!(
            bench.contains(&format!("reply_timeout: Some({limit:?})")),
            "{bench}"
        );
    }
}
