//! Shared by the daemon tests: a daemon served on a thread of the test process, and a raw
//! frame client written with the protocol functions only (so that every byte on the wire is
//! the documented protocol). Needs `mod support;` beside it at the test binary's root (the
//! ready-wait lives there, shared with the tests that spawn `kmscksd`).
#![allow(dead_code)]

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::Duration;

use kmscks::daemon::{Daemon, DaemonConfig, Shutdown};
use kmscks::ops::{Request, Response};
use kmscks::protocol::{self, Header, HEADER_LEN};
use kmscks::KmsError;

/// A daemon serving on a thread; shut down (and checked) on drop.
pub(crate) struct TestDaemon {
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub shutdown: Shutdown,
    thread: Option<JoinHandle<kmscks::Result<()>>>,
}

/// The daemon's `event_loops`: `KMSCKS_TEST_EVENT_LOOPS` when set (to run the daemon tests
/// with several loops), else the default.
fn event_loops() -> usize {
    match std::env::var("KMSCKS_TEST_EVENT_LOOPS") {
        Ok(n) => n
            .parse()
            .expect("KMSCKS_TEST_EVENT_LOOPS is a number of event loops"),
        Err(_) => DaemonConfig::default().event_loops,
    }
}

/// A temp dir others can traverse (tempfile makes them 0700).
pub(crate) fn open_tempdir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

impl TestDaemon {
    /// Starts a daemon with `tweak` applied to a config whose paths are in a fresh temp dir,
    /// and returns once it has answered a Hello ([`crate::support::wait_ready`]).
    pub(crate) fn start(tweak: impl FnOnce(&mut DaemonConfig)) -> TestDaemon {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let dir = open_tempdir();
        let mut config = DaemonConfig {
            data_dir: dir.path().join("data"),
            socket: dir.path().join("kmscks.sock"),
            event_loops: event_loops(),
            ..DaemonConfig::default()
        };
        tweak(&mut config);
        let daemon = Daemon::bind(config).expect("daemon binds");
        let socket = daemon.socket().to_path_buf();
        let shutdown = Shutdown::new();
        let s = shutdown.clone();
        let thread = std::thread::spawn(move || daemon.serve(s));
        crate::support::wait_ready(&socket, crate::support::READY_TIMEOUT);
        TestDaemon {
            dir,
            socket,
            shutdown,
            thread: Some(thread),
        }
    }

    pub(crate) fn connect(&self) -> Raw {
        Raw::connect(&self.socket)
    }

    /// Triggers shutdown and returns what `serve` returned.
    pub(crate) fn stop(&mut self) -> kmscks::Result<()> {
        self.shutdown.trigger();
        match self.thread.take() {
            Some(t) => t.join().expect("the daemon thread panicked"),
            None => Ok(()),
        }
    }
}

impl Drop for TestDaemon {
    fn drop(&mut self) {
        if self.thread.is_some() && !std::thread::panicking() {
            self.stop().expect("the daemon stops cleanly");
        } else {
            self.shutdown.trigger();
        }
    }
}

/// One reply.
pub(crate) struct Reply {
    pub header: Header,
    pub result: Result<Response, KmsError>,
}

/// A blocking client that speaks raw frames.
pub(crate) struct Raw {
    pub stream: UnixStream,
    buf: Vec<u8>,
    next_id: u64,
}

impl Raw {
    /// Connects and completes the Hello exchange (the daemon requires it first).
    pub(crate) fn connect(path: &Path) -> Raw {
        let mut raw = Raw::connect_without_hello(path);
        raw.hello();
        raw
    }

    /// Connects and sends nothing: the first frame is the test's.
    pub(crate) fn connect_without_hello(path: &Path) -> Raw {
        let stream = UnixStream::connect(path).expect("connect to the daemon");
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        Raw {
            stream,
            buf: Vec::new(),
            next_id: 1,
        }
    }

    /// Sends a Hello and checks its reply.
    pub(crate) fn hello(&mut self) -> protocol::HelloReply {
        let id = self.next_id;
        self.next_id += 1;
        let mut out = Vec::new();
        protocol::encode_hello(
            &mut out,
            id,
            &protocol::Hello {
                version: protocol::VERSION,
                client: "kmscks-tests/raw".into(),
            },
        );
        self.stream.write_all(&out).unwrap();
        let (h, body) = self
            .read_frame()
            .expect("the daemon closed instead of answering Hello");
        assert_eq!(h.request_id, id, "reply to another request than the Hello");
        protocol::decode_hello_reply(&h, &body)
            .expect("a Hello reply frame")
            .expect("the daemon accepted the Hello")
    }

    /// Sends one request; returns its id.
    pub(crate) fn send(&mut self, req: &Request) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let mut out = Vec::new();
        protocol::encode_request(&mut out, id, req);
        self.stream.write_all(&out).unwrap();
        id
    }

    /// Reads one frame (header and body), or None at end of stream.
    pub(crate) fn read_frame(&mut self) -> Option<(Header, Vec<u8>)> {
        loop {
            if let Some(h) = protocol::parse_header(&self.buf).expect("daemon sent a bad header") {
                let end = HEADER_LEN + h.body_len as usize;
                if self.buf.len() >= end {
                    let body = self.buf[HEADER_LEN..end].to_vec();
                    self.buf.drain(..end);
                    return Some((h, body));
                }
            }
            let mut chunk = [0u8; 65536];
            match self.stream.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return None,
                Err(e) => panic!("read from the daemon: {e}"),
            }
        }
    }

    /// Reads one reply.
    pub(crate) fn recv(&mut self) -> Option<Reply> {
        let (header, body) = self.read_frame()?;
        let result = protocol::decode_response(&header, &body).expect("daemon sent a bad body");
        Some(Reply { header, result })
    }

    /// One call, waiting for its reply.
    pub(crate) fn call(&mut self, req: &Request) -> Result<Response, KmsError> {
        let id = self.send(req);
        let reply = self.recv().expect("the daemon closed the connection");
        assert_eq!(reply.header.request_id, id, "reply to another request");
        reply.result
    }

    /// True when the daemon closes the connection (after any replies already sent).
    pub(crate) fn closed(&mut self) -> bool {
        while self.read_frame().is_some() {}
        true
    }
}

/// Unwraps a response of one variant: `expect!(resp, Response::Encrypt)`.
#[macro_export]
macro_rules! expect {
    ($value:expr, $variant:path) => {
        match $value {
            Ok($variant(v)) => v,
            other => panic!("expected {}, got {:?}", stringify!($variant), other),
        }
    };
}

impl Raw {
    /// A raw client over an already connected stream.
    pub(crate) fn from_stream(stream: UnixStream) -> Raw {
        Raw {
            stream,
            buf: Vec::new(),
            next_id: 1,
        }
    }
}

/// A write that blocks this long means the daemon stopped reading the connection. Not a
/// synchronisation: the daemon is idle otherwise, and a slower daemon only makes the flood
/// stop earlier (every assertion holds for any amount sent).
pub(crate) const STALL: Duration = Duration::from_secs(2);

/// Requests per flooding connection at most (each a 29-byte GenerateRandom(1024) frame).
const FLOOD_FRAMES: usize = 400_000;

/// Connections that send GenerateRandom(1024) requests as fast as they can and never read,
/// until the daemon stops reading them ([`STALL`]); then, on [`Flood::drain`], read every
/// reply. A daemon that buffers replies without bound, or closes such clients, fails it.
pub(crate) struct Flood {
    conns: Vec<Flooding>,
}

struct Flooding {
    raw: Raw,
    stream_bytes: Vec<u8>,
    frame_len: usize,
    written: usize,
}

impl Flood {
    /// Opens `n` connections to `socket` and floods each until the daemon stops reading it.
    /// Panics if the daemon closes one or reads all [`FLOOD_FRAMES`] of one.
    pub(crate) fn start(socket: &Path, n: usize) -> Flood {
        let mut frame = Vec::new();
        protocol::encode_request(
            &mut frame,
            1,
            &Request::GenerateRandom(kmscks::api::kms::GenerateRandomRequest {
                number_of_bytes: Some(1024),
                ..Default::default()
            }),
        );
        let frame_len = frame.len();
        let mut stream_bytes = Vec::with_capacity(frame_len * FLOOD_FRAMES);
        for id in 1..=FLOOD_FRAMES as u64 {
            frame[8..16].copy_from_slice(&id.to_le_bytes());
            stream_bytes.extend_from_slice(&frame);
        }
        let mut conns = Vec::new();
        for _ in 0..n {
            let raw = Raw::connect(socket);
            raw.stream.set_write_timeout(Some(STALL)).unwrap();
            conns.push(Flooding {
                raw,
                stream_bytes: stream_bytes.clone(),
                frame_len,
                written: 0,
            });
        }
        // Round robin in chunks, so that every connection is flooding at once.
        let mut open: Vec<usize> = (0..n).collect();
        while !open.is_empty() {
            open.retain(|&i| {
                let c = &mut conns[i];
                let end = (c.written + (64 << 10)).min(c.stream_bytes.len());
                match c.raw.stream.write(&c.stream_bytes[c.written..end]) {
                    Ok(0) => panic!("the daemon closed a flooding connection"),
                    Ok(k) => {
                        c.written += k;
                        assert!(
                            c.written < c.stream_bytes.len(),
                            "the daemon read all {FLOOD_FRAMES} requests of a client that never reads"
                        );
                        true
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) =>
                    {
                        false
                    }
                    Err(e) => panic!("the daemon cut a client that never reads off: {e}"),
                }
            });
        }
        Flood { conns }
    }

    /// Requests sent (a partly written one counts: [`Flood::drain`] completes it).
    pub(crate) fn sent(&self) -> usize {
        self.conns
            .iter()
            .map(|c| c.written.div_ceil(c.frame_len))
            .sum()
    }

    /// Completes each connection's last request and reads every reply; returns how many
    /// replies came (each checked to answer one of the requests sent).
    pub(crate) fn drain(&mut self) -> usize {
        let mut answered = 0;
        for c in &mut self.conns {
            let expected = c.written.div_ceil(c.frame_len);
            let mut reader = Raw::from_stream(c.raw.stream.try_clone().unwrap());
            let counting = std::thread::spawn(move || {
                for _ in 0..expected {
                    let reply = reader.recv().expect("a reply for every request sent");
                    assert!((1..=expected as u64).contains(&reply.header.request_id));
                }
                expected
            });
            c.raw.stream.set_write_timeout(None).unwrap();
            let end = expected * c.frame_len;
            c.raw
                .stream
                .write_all(&c.stream_bytes[c.written..end])
                .unwrap();
            c.written = end;
            answered += counting.join().expect("every reply read");
        }
        answered
    }

    /// Connection `i`, to use as an ordinary client once drained.
    pub(crate) fn raw(&mut self, i: usize) -> &mut Raw {
        let raw = &mut self.conns[i].raw;
        raw.next_id = FLOOD_FRAMES as u64 + 1;
        raw
    }
}

impl TestDaemon {
    /// Starts the daemon again after [`TestDaemon::stop`], on the same data directory and
    /// socket as [`TestDaemon::start`] chose (`tweak` applied as there: give the same one), and
    /// returns once it has answered a Hello. For tests of what outlives a daemon restart.
    pub(crate) fn restart(&mut self, tweak: impl FnOnce(&mut DaemonConfig)) {
        assert!(self.thread.is_none(), "restart follows stop");
        let mut config = DaemonConfig {
            data_dir: self.dir.path().join("data"),
            socket: self.socket.clone(),
            ..DaemonConfig::default()
        };
        tweak(&mut config);
        let daemon = Daemon::bind(config).expect("the daemon binds again");
        self.shutdown = Shutdown::new();
        let s = self.shutdown.clone();
        self.thread = Some(std::thread::spawn(move || daemon.serve(s)));
        crate::support::wait_ready(&self.socket, crate::support::READY_TIMEOUT);
    }
}
