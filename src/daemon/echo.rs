//! The socket floor: an echo server that speaks the protocol's framing and answers every
//! request frame with one fixed reply frame, so a load generator or a bench can measure
//! "everything except the daemon's work" (socket syscalls, framing, client-side decoding)
//! with the same client code it points at a daemon.
//!
//! It waits for requests as the daemon's loop does ([`super::wake`]: spin, then park), with a
//! thread per connection, so that it is the best round trip this machine gives: a floor that
//! parked in a blocking `read` while the daemon spins would be slower than the daemon and the
//! ratio against it would prove nothing. It is public because both `kmscks bench` and
//! `benches/socket_roundtrip.rs` measure against it.

use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

use super::wake::SpinStream;
use crate::error::{ErrorKind, KmsError, Result};
use crate::protocol::{encode_hello_reply, split_frame, HelloReply, MAX_BODY, OP_HELLO, VERSION};

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

fn echo_conn(s: UnixStream, reply: &[u8]) {
    let Ok(mut s) = s
        .set_nonblocking(true)
        .and_then(|()| SpinStream::new(mio::net::UnixStream::from_std(s)))
    else {
        return;
    };
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
