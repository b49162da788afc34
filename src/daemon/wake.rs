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
//!
//! A pipelining client is different: its next requests wait on its own CPU (decoding the
//! answers it has), not on our wake-up. With more busy threads than cores, a loop spinning
//! for it takes the very core those requests need. So after a turn that found more than one
//! request waiting on a connection, each spin first yields the core (`sched_yield`) to
//! whichever thread wants it; with a core to spare nobody does, and the spin goes on as before.
//! Measured at two connections pipelining 256 GenerateDataKeys on two cores: the daemon's CPU
//! per request went from 234–256 ns to 193–202 and its rate from 4.0–4.4 M/s to 4.4–4.7;
//! yielding after one request at a time instead took eight such connections from 164–179 k/s
//! to 102–133 (the bench's clients spin for a lone answer, and got the core), hence the two
//! cases (docs/performance-history.md, 2026-12-06 afternoon).

use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use mio::event::Source;
use mio::{Events, Interest, Poll, Token};

/// How long a loop keeps polling without sleeping after its last event.
pub const BUSY_POLL: Duration = Duration::from_micros(50);

/// What a loop does before its next poll ([`Spin::plan`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wait {
    /// Work is waiting: poll without sleeping.
    Now,
    /// Spinning: poll without sleeping, first yielding the core when `yield_first` (the last
    /// requests came pipelined).
    Spin {
        /// Offer the core to other threads before the poll.
        yield_first: bool,
    },
    /// Park for at most this long.
    Park(Duration),
}

/// An event loop's spin-then-park clock: poll with a zero timeout while activity is recent,
/// with the loop's own timeout otherwise; spins after pipelined requests yield the core first.
#[derive(Debug)]
pub(crate) struct Spin {
    last_busy: Instant,
    /// The last turn that served requests found more than one waiting on one connection.
    pipelined: bool,
}

impl Spin {
    pub(crate) fn new() -> Spin {
        Spin {
            last_busy: Instant::now()
                .checked_sub(BUSY_POLL)
                .unwrap_or_else(Instant::now),
            pipelined: false,
        }
    }

    /// What to do before the next poll: [`Wait::Now`] when `ready_now` (work is waiting),
    /// [`Wait::Spin`] within [`BUSY_POLL`] of the last activity, else park for `idle`. `now`
    /// is the loop's clock, read once per turn (after its last poll): a spin polls a few times
    /// per microsecond, and reading the clock is a good part of an empty poll's cost.
    pub(crate) fn plan(&self, ready_now: bool, idle: Duration, now: Instant) -> Wait {
        if ready_now {
            Wait::Now
        } else if now.saturating_duration_since(self.last_busy) < BUSY_POLL {
            Wait::Spin {
                yield_first: self.pipelined,
            }
        } else {
            Wait::Park(idle)
        }
    }

    /// Carries out [`Spin::plan`] up to the poll: yields the core when the plan says so, and
    /// returns the poll's timeout.
    pub(crate) fn next_poll(&self, ready_now: bool, idle: Duration, now: Instant) -> Duration {
        match self.plan(ready_now, idle, now) {
            Wait::Now | Wait::Spin { yield_first: false } => Duration::ZERO,
            Wait::Spin { yield_first: true } => {
                std::thread::yield_now();
                Duration::ZERO
            }
            Wait::Park(idle) => idle,
        }
    }

    /// Notes the outcome of a poll that returned at `now`: any event restarts the spin.
    pub(crate) fn saw(&mut self, events: bool, now: Instant) {
        if events {
            self.last_busy = now;
        }
    }

    /// Notes the most requests one connection had waiting in a turn: more than one means a
    /// pipelining client. A turn that served none (0) leaves the last verdict standing.
    pub(crate) fn served(&mut self, most_waiting: usize) {
        if most_waiting > 0 {
            self.pipelined = most_waiting > 1;
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
    /// The caller's last read held more than one request ([`SpinStream::served`]).
    pipelined: bool,
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
            pipelined: false,
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

    /// Notes how many requests the last read held, as [`Spin::served`]: after more than
    /// one, the spin yields the core before each retry.
    pub fn served(&mut self, requests: usize) {
        if requests > 0 {
            self.pipelined = requests > 1;
        }
    }

    /// Spins while the last data is recent (yielding the core first after pipelined
    /// requests, as [`Spin`] does), else parks until the stream is ready.
    fn wait(&mut self) -> io::Result<()> {
        if self.last_data.elapsed() < BUSY_POLL {
            if self.pipelined {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
            return Ok(());
        }
        match self.poll.poll(&mut self.events, None) {
            Err(e) if e.kind() != io::ErrorKind::Interrupted => Err(e),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spin_yields_the_core_only_after_a_turn_found_requests_pipelined() {
        let mut spin = Spin::new();
        let now = Instant::now();
        let idle = Duration::from_secs(1);
        assert_eq!(
            spin.plan(false, idle, now),
            Wait::Park(idle),
            "no activity yet"
        );
        spin.saw(true, now);
        assert_eq!(
            spin.plan(false, idle, now),
            Wait::Spin { yield_first: false }
        );
        spin.served(2);
        assert_eq!(
            spin.plan(false, idle, now),
            Wait::Spin { yield_first: true }
        );
        spin.served(0);
        assert_eq!(
            spin.plan(false, idle, now),
            Wait::Spin { yield_first: true },
            "a turn that served nothing leaves the verdict"
        );
        spin.served(1);
        assert_eq!(
            spin.plan(false, idle, now),
            Wait::Spin { yield_first: false }
        );
        assert_eq!(spin.plan(true, idle, now), Wait::Now, "work waiting");
        assert_eq!(
            spin.plan(false, idle, now + BUSY_POLL),
            Wait::Park(idle),
            "the spin ends BUSY_POLL after the last event"
        );
        assert_eq!(spin.next_poll(false, idle, now + BUSY_POLL), idle);
        spin.served(3);
        assert_eq!(spin.next_poll(false, idle, now), Duration::ZERO);
    }
}
