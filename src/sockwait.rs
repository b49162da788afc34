//! Waiting for a reply on a Unix stream socket without being woken for nothing.
//!
//! Why: a thread blocked in `read` on a Unix stream socket sleeps on the socket's one wait
//! queue, and Linux wakes everything on that queue whenever the socket's *write* space grows
//! too (`unix_write_space`, with `EPOLLOUT` as the key, which a blocked reader does not look
//! at). The daemon frees a client's write space each time it reads a request, so a client that
//! sent a request and blocked in `read` for the answer was woken once for nothing — a context
//! switch for the client and a cross-core wake-up the daemon pays for (in `perf`, two fifths
//! of the daemon's time with eight connections holding one request each) — before the real
//! wake-up for the reply. `poll` with `POLLIN` sleeps on the same queue but filters on the key,
//! so only data (or a hangup) wakes it.
//!
//! A waiting thread first keeps checking for a while (the caller's `spin`, [`recv`]): a reply
//! that comes within it costs no sleep and no wake-up at all, which on this kind of machine is
//! most of a short request's round trip (tens of µs to wake a parked thread on the other core,
//! `perf-anchors.md`). [`recv`] says how long it waited, so that a caller can stop spinning
//! where replies take longer than its spin.
//!
//! A wait may have a deadline ([`recv`]'s `limit`): a daemon that stopped answering (stopped by
//! a signal, wedged) then costs its client an error after that long rather than a thread
//! asleep for ever. So may the wait for the daemon to take a new connection ([`connect`]):
//! Linux holds a `connect` to a Unix stream socket whose listen queue is full until the
//! listener accepts, and a daemon that stopped accepting, or one flooded with connections by
//! another local user, would otherwise hold its caller there for ever.
//!
//! Why `unsafe`: the standard library has neither `recv` with flags nor `poll`, nor a way to
//! bound a `connect`. The calls here are given a buffer, a `pollfd` or a socket address that
//! lives on the caller's stack for the call, with its exact length, and a descriptor borrowed
//! from an open stream; the one descriptor created here is owned at once.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// Connects to the Unix stream socket at `path`, waiting at most `limit` (`None`: for as long
/// as it takes) for the listener to have room in its listen queue; signals do not stretch the
/// wait. The stream is returned blocking; with a `limit`, what was left of it is its write
/// timeout (the caller sets its own timeouts next).
///
/// Errors: `TimedOut` when the listen queue stayed full for `limit`; `InvalidInput` when
/// `path` is empty or does not fit a socket address; else the kernel's (`NotFound`,
/// `ConnectionRefused`: nothing listens there).
pub(crate) fn connect(path: &Path, limit: Option<Duration>) -> io::Result<UnixStream> {
    let Some(limit) = limit else {
        return UnixStream::connect(path);
    };
    let (addr, len) = socket_address(path)?;
    let stream = unix_stream_socket()?;
    let began = Instant::now();
    // The first attempt is made whatever the limit (`set_write_timeout` refuses zero, and a
    // microsecond is the least it sets).
    let mut left = limit.max(Duration::from_micros(1));
    loop {
        // Linux bounds the wait of a blocking `connect` on a Unix socket by its send timeout
        // (`SO_SNDTIMEO`) and then fails it with `EAGAIN`.
        stream.set_write_timeout(Some(left))?;
        match connect_raw(&stream, &addr, len) {
            Ok(()) => return Ok(stream),
            // A signal ends the wait early and leaves the socket unconnected: wait again for
            // what is left.
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                match limit.checked_sub(began.elapsed()).filter(|l| !l.is_zero()) {
                    Some(rest) => left = rest,
                    None => return Err(queue_full(limit)),
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Err(queue_full(limit)),
            Err(e) => return Err(e),
        }
    }
}

/// `TimedOut`: the listen queue stayed full for `limit`.
fn queue_full(limit: Duration) -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        format!(
            "the daemon took no new connection for {} ms (its listen queue is full)",
            limit.as_millis()
        ),
    )
}

/// The socket address of `path`, with its length (the path and its NUL).
///
/// Errors: `InvalidInput` when the path is empty (an address of no path names Linux's abstract
/// namespace, where anyone may bind any name), holds a NUL or does not fit `sun_path`.
#[allow(unsafe_code)]
fn socket_address(path: &Path) -> io::Result<(libc::sockaddr_un, libc::socklen_t)> {
    // SAFETY: `sockaddr_un` is plain old data (an integer and a byte array), for which all
    // zeroes is a valid value: the empty address, filled in below.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    let bytes = path.as_os_str().as_bytes();
    // One byte is kept for the NUL that ends the path.
    if bytes.is_empty() || bytes.contains(&0) || bytes.len() >= addr.sun_path.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "a socket path is not empty, holds no NUL and is shorter than {} bytes: {:?}",
                addr.sun_path.len(),
                path
            ),
        ));
    }
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (to, &b) in addr.sun_path.iter_mut().zip(bytes) {
        *to = b as libc::c_char;
    }
    let len = std::mem::offset_of!(libc::sockaddr_un, sun_path) + bytes.len() + 1;
    // Fits: at most the size of `sockaddr_un`, checked above.
    Ok((addr, len as libc::socklen_t))
}

/// A new, unconnected Unix stream socket, closed on `exec`.
///
/// Errors: the kernel's.
#[allow(unsafe_code)]
fn unix_stream_socket() -> io::Result<UnixStream> {
    // SAFETY: socket(2) takes no pointers.
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a non-negative result is an open descriptor that nothing else holds, so
    // `OwnedFd` may own (and close) it.
    Ok(UnixStream::from(unsafe { OwnedFd::from_raw_fd(fd) }))
}

/// connect(2) of `stream` to `addr` (`len` bytes of it).
///
/// Errors: the kernel's.
#[allow(unsafe_code)]
fn connect_raw(
    stream: &UnixStream,
    addr: &libc::sockaddr_un,
    len: libc::socklen_t,
) -> io::Result<()> {
    // SAFETY: `addr` is a live `sockaddr_un` the kernel only reads, and `len` is at most its
    // size (`socket_address`); the descriptor is borrowed from `stream`, open for the call.
    let rc = unsafe {
        libc::connect(
            stream.as_raw_fd(),
            (addr as *const libc::sockaddr_un).cast(),
            len,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Reads what the socket holds into `buf`, waiting for data when it holds none: checking again
/// for up to `spin`, then sleeping in [`wait_readable`], for at most `limit` in all (`None`:
/// for as long as it takes). Returns the bytes read (0 at the end of the stream) and how long
/// it waited for them (zero when they were there).
///
/// Errors: `TimedOut` when nothing came within `limit`; else the kernel's.
pub(crate) fn recv(
    stream: &UnixStream,
    buf: &mut [u8],
    spin: Duration,
    limit: Option<Duration>,
) -> io::Result<(usize, Duration)> {
    let mut since: Option<Instant> = None;
    loop {
        match recv_now(stream, buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                // The clock is read only once the socket was found empty.
                let waited = since.get_or_insert_with(Instant::now).elapsed();
                if waited < spin {
                    std::hint::spin_loop();
                } else {
                    let left = limit.map(|l| l.saturating_sub(waited));
                    match (limit, left) {
                        (Some(limit), Some(Duration::ZERO)) => return Err(timed_out(limit)),
                        _ => wait_readable(stream, left)?,
                    }
                }
            }
            Ok(n) => return Ok((n, since.map_or(Duration::ZERO, |t| t.elapsed()))),
            Err(e) => return Err(e),
        }
    }
}

/// Reads what the socket holds into `buf` without blocking, whatever the socket's mode;
/// `WouldBlock` when it holds nothing, `Ok(0)` at the end of the stream.
///
/// Errors: the kernel's.
#[allow(unsafe_code)]
fn recv_now(stream: &UnixStream, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is a live, writable slice and the kernel writes at most `buf.len()` bytes
    // into it; the descriptor is borrowed from `stream`, open for the call.
    let n = unsafe {
        libc::recv(
            stream.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// `TimedOut`, naming the `limit` waited for.
fn timed_out(limit: Duration) -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        format!("the daemon sent nothing for {} ms", limit.as_millis()),
    )
}

/// Sleeps until the socket has data to read, an error or a hangup, until `limit` has passed
/// (`None`: no limit; rounded up to whole milliseconds, `poll`'s unit), or until a signal
/// interrupts it: the caller looks again and bounds the next wait by what is left of its limit,
/// so that signals, however frequent, never stretch it.
///
/// Errors: the kernel's.
#[allow(unsafe_code)]
fn wait_readable(stream: &UnixStream, limit: Option<Duration>) -> io::Result<()> {
    let mut fd = libc::pollfd {
        fd: stream.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = limit.map_or(-1, |l| {
        let ms = l.as_nanos().div_ceil(1_000_000);
        libc::c_int::try_from(ms).unwrap_or(libc::c_int::MAX)
    });
    // SAFETY: `fd` is one live `pollfd` on this stack frame and the count given is 1; the
    // descriptor is borrowed from `stream`, open for the call.
    let rc = unsafe { libc::poll(&mut fd, 1, ms) };
    if rc >= 0 {
        // A timeout (rc 0) returns too: the next look finds the socket empty, and the
        // caller's clock says the limit has passed.
        return Ok(());
    }
    let e = io::Error::last_os_error();
    match e.kind() {
        io::ErrorKind::Interrupted => Ok(()),
        _ => Err(e),
    }
}

/// For tests: a listener bound at `path` whose listen queue is full, as a stopped or wedged
/// daemon's is, with the connection that fills it.
#[cfg(test)]
#[allow(unsafe_code)]
pub(crate) fn full_listener(path: &Path) -> (std::os::unix::net::UnixListener, UnixStream) {
    let listener = std::os::unix::net::UnixListener::bind(path).unwrap();
    // SAFETY: listen(2) on a descriptor borrowed from the open listener, no pointers. Called
    // again, it sets the listen queue's length; Linux queues one connection past it, so 0
    // queues one.
    assert_eq!(unsafe { libc::listen(listener.as_raw_fd(), 0) }, 0);
    let queued = UnixStream::connect(path).unwrap();
    (listener, queued)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::net::UnixListener;

    #[test]
    fn a_connect_to_a_full_listen_queue_ends_in_timed_out_after_its_limit_and_then_connects() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let (listener, first) = full_listener(&path);
        let limit = Duration::from_millis(50);
        let began = Instant::now();
        let e = connect(&path, Some(limit)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
        assert!(
            began.elapsed() >= limit,
            "gave up after {:?}",
            began.elapsed()
        );
        assert!(e.to_string().contains("no new connection for 50 ms"), "{e}");
        // Accepting makes room, and the next connect is taken at once and works both ways.
        let (accepted, _) = listener.accept().unwrap();
        let mut second = connect(&path, Some(limit)).unwrap();
        second.write_all(b"x").unwrap();
        drop(first);
        let (mut accepted2, _) = listener.accept().unwrap();
        let mut buf = [0u8; 1];
        let n = std::io::Read::read(&mut accepted2, &mut buf).unwrap();
        assert_eq!(&buf[..n], b"x");
        // What was left of the limit is the stream's write timeout.
        assert!(second.write_timeout().unwrap().is_some());
        drop(accepted);
    }

    #[test]
    fn a_connect_without_a_limit_or_to_nothing_says_what_the_kernel_says() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("none.sock");
        for limit in [None, Some(Duration::from_millis(50))] {
            let e = connect(&path, limit).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::NotFound, "{e}");
        }
        let listener = UnixListener::bind(&path).unwrap();
        let mut a = connect(&path, None).unwrap();
        let (mut b, _) = listener.accept().unwrap();
        a.write_all(b"hi").unwrap();
        let mut buf = [0u8; 2];
        std::io::Read::read_exact(&mut b, &mut buf).unwrap();
        assert_eq!(&buf, b"hi");
    }

    #[test]
    fn a_socket_path_empty_too_long_for_an_address_or_holding_a_nul_is_refused_by_name() {
        let long = std::path::PathBuf::from(format!("/tmp/{}", "x".repeat(200)));
        let e = connect(&long, Some(Duration::from_millis(10))).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
        assert!(e.to_string().contains("shorter than 108 bytes"), "{e}");
        assert!(e.to_string().contains(&"x".repeat(200)), "{e}");
        let nul = Path::new(std::ffi::OsStr::from_bytes(b"/tmp/a\0b"));
        let e = connect(nul, Some(Duration::from_millis(10))).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
        // Not the abstract socket named by an address of no path, which anyone may bind.
        let e = connect(Path::new(""), Some(Duration::from_millis(10))).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
        assert!(e.to_string().contains("not empty"), "{e}");
    }

    #[test]
    fn a_limit_shorter_than_a_microsecond_still_connects_to_a_listener_with_room() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let _listener = UnixListener::bind(&path).unwrap();
        assert!(connect(&path, Some(Duration::from_nanos(1))).is_ok());
    }

    #[test]
    fn an_empty_socket_would_block_and_one_with_data_gives_it_without_waiting() {
        let (a, mut b) = UnixStream::pair().unwrap();
        let mut buf = [0u8; 16];
        let e = recv_now(&a, &mut buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        b.write_all(b"reply").unwrap();
        assert_eq!(recv_now(&a, &mut buf).unwrap(), 5);
        assert_eq!(&buf[..5], b"reply");
        // A blocking socket is read without blocking all the same.
        a.set_nonblocking(false).unwrap();
        assert_eq!(
            recv_now(&a, &mut buf).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
    }

    #[test]
    fn recv_returns_data_another_thread_writes_then_the_end_of_the_stream() {
        let (a, b) = UnixStream::pair().unwrap();
        // Written whenever the thread runs: before `recv` looks, while it spins or once it
        // sleeps in `poll`, it must return the data.
        let writer = std::thread::spawn(move || {
            let mut b = b;
            b.write_all(b"late reply").unwrap();
            b
        });
        let mut buf = [0u8; 32];
        // One write of 10 bytes arrives whole on a Unix stream socket.
        let (n, _) = recv(&a, &mut buf, Duration::ZERO, None).unwrap();
        assert_eq!(&buf[..n], b"late reply");
        drop(writer.join().unwrap());
        // The peer is gone: the end of the stream, not a wait forever, spinning or not.
        assert_eq!(
            recv(&a, &mut buf, Duration::from_micros(20), None)
                .unwrap()
                .0,
            0
        );
    }

    #[test]
    fn a_hangup_ends_the_wait_with_the_end_of_the_stream() {
        let (a, b) = UnixStream::pair().unwrap();
        let closer = std::thread::spawn(move || drop(b));
        let mut buf = [0u8; 8];
        assert_eq!(recv(&a, &mut buf, Duration::ZERO, None).unwrap().0, 0);
        closer.join().unwrap();
    }

    #[test]
    fn a_wait_with_a_limit_ends_in_timed_out_after_it_and_one_without_data_then_still_reads() {
        let (a, mut b) = UnixStream::pair().unwrap();
        let mut buf = [0u8; 8];
        let limit = Duration::from_millis(30);
        for spin in [Duration::ZERO, Duration::from_micros(20)] {
            let began = Instant::now();
            let e = recv(&a, &mut buf, spin, Some(limit)).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
            assert!(
                began.elapsed() >= limit,
                "gave up after {:?}",
                began.elapsed()
            );
            assert!(e.to_string().contains("sent nothing for 30 ms"), "{e}");
        }
        // The socket is as it was: what comes later is read.
        b.write_all(b"late").unwrap();
        let (n, _) = recv(&a, &mut buf, Duration::ZERO, Some(limit)).unwrap();
        assert_eq!(&buf[..n], b"late");
    }
}
