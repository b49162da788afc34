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
//! asleep for ever.
//!
//! Why `unsafe`: the standard library has neither `recv` with flags nor `poll`. Both calls
//! here are given a buffer or a `pollfd` that lives on the caller's stack for the call, with
//! its exact length, and a descriptor borrowed from an open stream.

use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

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
