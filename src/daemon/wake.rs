//! How kmscksd's loops wait for work: spin for [`BUSY_POLL`] after the last activity, then
//! park in the kernel.
//!
//! Why: on this kind of machine waking a parked thread on the other core costs tens of µs
//! (`perf-anchors.md`), more than a request's work. A client that sends its next request
//! within a few µs of its last answer finds the server awake, and neither side pays a
//! wake-up per exchange. One place says how long, so that the floors the benchmarks measure
//! against (the echo servers, [`super::echo`] and the HTTP load generator's) wait exactly as
//! the daemon does: a floor that waited worse would be slower than the daemon and prove
//! nothing.

use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use mio::event::Source;
use mio::{Events, Interest, Poll, Token};

/// How long a loop keeps polling without sleeping after its last event.
pub const BUSY_POLL: Duration = Duration::from_micros(50);

/// An event loop's spin-then-park clock: poll with a zero timeout while activity is recent,
/// with the loop's own timeout otherwise.
#[derive(Debug)]
pub(crate) struct Spin {
    last_busy: Instant,
}

impl Spin {
    pub(crate) fn new() -> Spin {
        Spin {
            last_busy: Instant::now()
                .checked_sub(BUSY_POLL)
                .unwrap_or_else(Instant::now),
        }
    }

    /// The timeout of the next poll: zero while spinning (or when `ready_now`: work is
    /// waiting), else `idle`. `now` is the loop's clock, read once per turn (after its last
    /// poll): a spin polls a few times per microsecond, and reading the clock is a good part
    /// of an empty poll's cost.
    pub(crate) fn timeout(&self, ready_now: bool, idle: Duration, now: Instant) -> Duration {
        if ready_now || now.saturating_duration_since(self.last_busy) < BUSY_POLL {
            Duration::ZERO
        } else {
            idle
        }
    }

    /// Notes the outcome of a poll that returned at `now`: any event restarts the spin.
    pub(crate) fn saw(&mut self, events: bool, now: Instant) {
        if events {
            self.last_busy = now;
        }
    }
}

/// One non-blocking stream read and written with the loops' wait: a read that finds nothing
/// spins for [`BUSY_POLL`] since the last data, then parks in `poll` until the stream is
/// readable. For servers with a thread per connection (the benchmarks' echo floors).
#[derive(Debug)]
pub struct SpinStream<S: Read + Write + Source> {
    stream: S,
    poll: Poll,
    events: Events,
    last_data: Instant,
}

impl<S: Read + Write + Source> SpinStream<S> {
    /// Takes a stream already in non-blocking mode.
    ///
    /// Errors: the kernel's, creating or registering the poller.
    pub fn new(mut stream: S) -> io::Result<SpinStream<S>> {
        let poll = Poll::new()?;
        poll.registry().register(
            &mut stream,
            Token(0),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        Ok(SpinStream {
            stream,
            poll,
            events: Events::with_capacity(4),
            last_data: Instant::now(),
        })
    }

    /// Reads into `buf`, waiting as the daemon's loops wait; `Ok(0)` at the end of the stream.
    ///
    /// Errors: the stream's.
    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.stream.read(buf) {
                Ok(n) => {
                    self.last_data = Instant::now();
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.wait()?,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Writes all of `bytes`, waiting for room as [`SpinStream::read`] waits for data.
    ///
    /// Errors: the stream's; `WriteZero` if it takes nothing.
    pub fn write_all(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            match self.stream.write(bytes) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => bytes = &bytes[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.wait()?,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Spins while the last data is recent, else parks until the stream is ready.
    fn wait(&mut self) -> io::Result<()> {
        if self.last_data.elapsed() < BUSY_POLL {
            std::hint::spin_loop();
            return Ok(());
        }
        match self.poll.poll(&mut self.events, None) {
            Err(e) if e.kind() != io::ErrorKind::Interrupted => Err(e),
            _ => Ok(()),
        }
    }
}
