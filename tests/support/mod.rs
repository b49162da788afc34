//! The test harness every integration test binary (and the socket bench) shares, so that no
//! test lies about timing or about its environment:
//! - [`wait_until`]: wait for an observable state with a deadline that fails the test with a
//!   clear message, instead of sleeping and hoping;
//! - [`wait_ready`]: the one way to wait for a daemon (in-process or a `kmscksd` process) —
//!   it completes a Hello, not just "the socket file exists";
//! - [`runnable`]: what a test needs from the machine (root, `setpriv`, `flock(1)`), checked
//!   once here, so such a test skips with a printed reason instead of failing.
//!
//! Include it with `mod support;` at the root of the test binary (`tests/daemon_support`
//! uses it as `crate::support`); the bench includes it by `#[path]`.
#![allow(dead_code)] // each test binary uses a different subset

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use kmscks::protocol::{self, Hello, HelloReply};

/// How long a daemon may take to answer its first Hello. Generous: the machine may be busy
/// with other builds; a daemon that is not ready by then is broken, not slow.
pub(crate) const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Polls `done` until it returns true; panics naming `what` once `timeout` has passed. The
/// pause between polls starts at 1 ms and grows to 20 ms: it bounds how often we look, it is
/// never what the test relies on.
#[track_caller]
pub(crate) fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(1);
    loop {
        if done() {
            return;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// Waits until the daemon at `socket` completes a Hello, and returns its reply. The probe
/// connection is then closed and we wait for the daemon to close its side too, so the probe
/// holds no connection slot once this returns (tests of `max_connections` rely on that).
/// Panics with the last failure after `timeout`.
#[track_caller]
pub(crate) fn wait_ready(socket: &Path, timeout: Duration) -> HelloReply {
    let mut last = String::from("no attempt made");
    let mut reply = None;
    wait_until(
        &format!("a daemon to answer Hello on {}", socket.display()),
        timeout,
        || match hello(socket) {
            Ok(r) => {
                reply = Some(r);
                true
            }
            Err(e) => {
                last = e;
                false
            }
        },
    );
    // `wait_until` returned, so the closure stored a reply; a panic names the last failure.
    reply.unwrap_or_else(|| panic!("no Hello reply from {}: {last}", socket.display()))
}

/// One Hello on a fresh connection; then half-closes and reads to the daemon's close.
fn hello(socket: &Path) -> Result<HelloReply, String> {
    let mut s = UnixStream::connect(socket).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(READY_TIMEOUT))
        .map_err(|e| format!("set_read_timeout: {e}"))?;
    let mut out = Vec::new();
    protocol::encode_hello(
        &mut out,
        1,
        &Hello {
            version: protocol::VERSION,
            client: "kmscks-tests/wait_ready".into(),
        },
    );
    s.write_all(&out).map_err(|e| format!("send Hello: {e}"))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let reply = loop {
        match protocol::split_frame(&buf).map_err(|e| format!("bad reply frame: {e}"))? {
            Some((h, body, _)) => {
                break protocol::decode_hello_reply(&h, body)
                    .map_err(|e| format!("bad Hello reply: {e}"))?
                    .map_err(|e| format!("Hello refused: {e}"))?;
            }
            None => match s.read(&mut chunk) {
                Ok(0) => return Err("closed before replying to Hello".into()),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) => return Err(format!("read Hello reply: {e}")),
            },
        }
    };
    // Our EOF makes the daemon close the connection (and free its slot) before we see its EOF.
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut rest = Vec::new();
    match s.read_to_end(&mut rest) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => return Err(format!("wait for the daemon to close the probe: {e}")),
    }
    Ok(reply)
}

/// Something a test needs from the machine it runs on.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Need {
    /// Running as root (effective uid 0), e.g. to switch uid or give a socket another group.
    Root,
    /// An executable of this name on `PATH` (e.g. `setpriv`, `flock` from util-linux).
    Tool(&'static str),
}

impl Need {
    /// Why the need is unmet, or None when it is met.
    fn unmet(self) -> Option<String> {
        match self {
            Need::Root => match effective_uid() {
                Some(0) => None,
                Some(uid) => Some(format!("needs root (running as uid {uid})")),
                None => Some("needs root (cannot read the effective uid)".into()),
            },
            Need::Tool(name) => (!on_path(name)).then(|| format!("{name} not found on PATH")),
        }
    }
}

/// Whether every need is met; if not, prints `skipped: <reason>` to stderr and returns false,
/// so the test can `return` (it then passes without having checked anything, and says so):
///
/// ```ignore
/// if !support::runnable(&[Need::Root, Need::Tool("setpriv")]) {
///     return;
/// }
/// ```
pub(crate) fn runnable(needs: &[Need]) -> bool {
    match needs.iter().find_map(|n| n.unmet()) {
        None => true,
        Some(reason) => {
            eprintln!("skipped: {reason}");
            false
        }
    }
}

/// The effective uid, from `/proc/self/status` (`Uid: real effective saved fs`).
pub(crate) fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// Whether an executable file called `name` is in a directory of `PATH`.
fn on_path(name: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let Some(path) = std::env::var_os("PATH") else {
        return false;
    };
    std::env::split_paths(&path).any(|dir| {
        std::fs::metadata(dir.join(name))
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    })
}

/// A memory figure of process `pid` from `/proc/<pid>/status` (`field` with its colon, e.g.
/// `VmRSS:` or `VmHWM:`, the peak), in bytes.
pub(crate) fn memory_of(pid: u32, field: &str) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: usize = status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"));
    kb * 1024
}
