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
//! A client pipelining deep is different: its next requests wait on its own CPU (decoding the
//! many answers it has), not on our wake-up. With more busy threads than cores, a loop spinning
//! for it takes the very core those requests need. So after a turn that found `DEEP` or more
//! requests waiting on a connection, each spin first yields the core (`sched_yield`) to
//! whichever thread wants it; with a core to spare nobody does, and the spin goes on as
//! before. After fewer the spin does not yield: those clients come back within microseconds,
//! and a yield in each round of the spin costs a system call there (a pipeline of 16 lost a
//! sixth of its rate to it); some (the bench's, one request at a time) also spin for their
//! answer themselves, so a yield would hand them the core the answer needs.
//!
//! A yield also tells whether the core is shared: one that comes back after another thread
//! ran (`YIELD_GAVE_CORE`) means a client runs on the loop's own core, between the loop's
//! writes. The loops write a connection's replies after each chunk of work so that a client on
//! another core decodes the first answers while the next are computed (`CHUNK_WORK`); on a
//! shared core there is no such overlap, and each write only wakes the client to take the core
//! for a moment: two context switches per chunk. So for a while after a yield gave the core
//! away (`SHARED_FOR`), the chunk is `CHUNK_WORK_SHARED`. What each choice was measured
//! against is in docs/performance-history.md (2026-12-06, afternoon).

use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use mio::event::Source;
use mio::{Events, Interest, Poll, Token};

/// How long a loop keeps polling without sleeping after its last event.
pub const BUSY_POLL: Duration = Duration::from_micros(50);

/// Work units a loop handles between two writes of a connection's replies while its core is
/// its own: a pipelining client on the other core decodes the first answers while the loop
/// computes the next ones. A small request (a GenerateDataKey, an Encrypt under 1 KiB) is one
/// unit. The echo floors answer as many frames between two writes.
pub(crate) const CHUNK_WORK: usize = 64;

/// [`CHUNK_WORK`] while the loop shares its core with the threads it serves (its yields give
/// the core away): a write per 256 requests wakes the client a quarter as often.
pub(crate) const CHUNK_WORK_SHARED: usize = 256;

/// Requests handled from one connection in one chunk (so found waiting there at once) from
/// which its client counts as pipelining deep enough that its next requests wait on its own
/// CPU rather than on our answers: half a chunk, as a client that refills its window as its
/// answers come sends about a chunk at a time. The loops count requests of any size, and
/// their chunks work units, so a pipeline of large requests (a 4 KiB Encrypt is five units)
/// fills a chunk with fewer; the echo floors count the frames of their one small reply.
const DEEP: usize = CHUNK_WORK / 2;

/// A yield that takes longer than this came back after another thread ran on the core (the
/// bare system call takes well under a microsecond).
const YIELD_GAVE_CORE: Duration = Duration::from_micros(20);

/// How long a loop counts its core as shared after a yield gave it away: the yields that find
/// the client blocked (it has its answers to send on) come back at once, and the verdict
/// should not flip with each.
const SHARED_FOR: Duration = Duration::from_millis(10);

/// How a waiting server paces itself from what it served and what its yields found: whether
/// to yield during a spin, and how much work to do between two writes. One for the event
/// loops' [`Spin`] and the floors' [`SpinStream`], so that both pace alike.
#[derive(Debug, Clone, Copy)]
struct Pacing {
    /// The last requests served came [`DEEP`] or more from one connection in one chunk.
    pipelined: bool,
    /// Until when the core counts as shared (the last yield that gave it away + [`SHARED_FOR`]).
    until: Option<Instant>,
}

impl Pacing {
    /// Nothing served yet; a core not known to be shared.
    fn new() -> Pacing {
        Pacing {
            pipelined: false,
            until: None,
        }
    }

    /// Notes the most requests handled from one connection in one chunk: [`DEEP`] or more
    /// means a client pipelining deep. None served (0) leaves the last verdict standing.
    fn served(&mut self, most: usize) {
        if most > 0 {
            self.pipelined = most >= DEEP;
        }
    }

    /// Yields the core, noting whether another thread took it meanwhile.
    fn yield_core(&mut self) {
        let t = Instant::now();
        std::thread::yield_now();
        let back = Instant::now();
        self.note_yield(back.saturating_duration_since(t), back);
    }

    /// Notes a yield that took `took` and came back at `back`.
    fn note_yield(&mut self, took: Duration, back: Instant) {
        if took > YIELD_GAVE_CORE {
            self.until = Some(back + SHARED_FOR);
        }
    }

    /// The chunk of work between two writes at `now`.
    fn chunk_work(&self, now: Instant) -> usize {
        match self.until {
            Some(until) if now < until => CHUNK_WORK_SHARED,
            _ => CHUNK_WORK,
        }
    }
}

/// What a loop does before its next poll ([`Spin::plan`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wait {
    /// Work is waiting: poll without sleeping.
    Now,
    /// Spinning: poll without sleeping, first yielding the core when `yield_first` (the last
    /// requests came pipelined deep).
    Spin {
        /// Offer the core to other threads before the poll.
        yield_first: bool,
    },
    /// Park for at most this long.
    Park(Duration),
}

/// An event loop's spin-then-park clock: poll with a zero timeout while activity is recent,
/// with the loop's own timeout otherwise; spins after deep pipelines yield the core first.
#[derive(Debug)]
pub(crate) struct Spin {
    last_busy: Instant,
    pacing: Pacing,
}

impl Spin {
    pub(crate) fn new() -> Spin {
        Spin {
            last_busy: Instant::now()
                .checked_sub(BUSY_POLL)
                .unwrap_or_else(Instant::now),
            pacing: Pacing::new(),
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
                yield_first: self.pacing.pipelined,
            }
        } else {
            Wait::Park(idle)
        }
    }

    /// Carries out [`Spin::plan`] up to the poll: yields the core when the plan says so
    /// (noting whether another thread took it), and returns the poll's timeout.
    pub(crate) fn next_poll(&mut self, ready_now: bool, idle: Duration, now: Instant) -> Duration {
        match self.plan(ready_now, idle, now) {
            Wait::Now | Wait::Spin { yield_first: false } => Duration::ZERO,
            Wait::Spin { yield_first: true } => {
                self.pacing.yield_core();
                Duration::ZERO
            }
            Wait::Park(idle) => idle,
        }
    }

    /// Work units to handle between two writes of a connection's replies at `now`:
    /// [`CHUNK_WORK`], or [`CHUNK_WORK_SHARED`] within [`SHARED_FOR`] of a yield that gave the
    /// core away.
    pub(crate) fn chunk_work(&self, now: Instant) -> usize {
        self.pacing.chunk_work(now)
    }

    /// Notes the outcome of a poll that returned at `now`: any event restarts the spin.
    pub(crate) fn saw(&mut self, events: bool, now: Instant) {
        if events {
            self.last_busy = now;
        }
    }

    /// Notes the most requests handled from one connection in one chunk of a turn: [`DEEP`] or
    /// more means a client pipelining deep. A turn that served none (0) leaves the last verdict
    /// standing.
    pub(crate) fn served(&mut self, most_waiting: usize) {
        self.pacing.served(most_waiting);
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
    pacing: Pacing,
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
            pacing: Pacing::new(),
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

    /// Notes the most requests one chunk of the last read held, as the event loops' spin notes
    /// them: after `DEEP` or more, the spin yields the core before each retry.
    pub fn served(&mut self, requests: usize) {
        self.pacing.served(requests);
    }

    /// Frames to answer between two writes, as the event loops size their chunks of work:
    /// bigger for a while after a yield gave the core away (see the module doc).
    pub fn chunk_frames(&self) -> usize {
        self.pacing.chunk_work(Instant::now())
    }

    /// Spins while the last data is recent (yielding the core first after pipelined
    /// requests, as [`Spin`] does), else parks until the stream is ready.
    fn wait(&mut self) -> io::Result<()> {
        if self.last_data.elapsed() < BUSY_POLL {
            if self.pacing.pipelined {
                self.pacing.yield_core();
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
    fn a_spin_yields_the_core_only_after_a_turn_found_requests_pipelined_deep() {
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
        spin.served(DEEP);
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
        spin.served(DEEP - 1);
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
        spin.served(DEEP + 1);
        assert_eq!(spin.next_poll(false, idle, now), Duration::ZERO);
    }

    #[test]
    fn replies_go_out_in_bigger_chunks_for_a_while_after_a_yield_gave_the_core_away() {
        let mut pacing = Pacing::new();
        let now = Instant::now();
        assert_eq!(pacing.chunk_work(now), CHUNK_WORK);
        pacing.note_yield(Duration::from_micros(1), now);
        assert_eq!(pacing.chunk_work(now), CHUNK_WORK, "a bare yield");
        pacing.note_yield(YIELD_GAVE_CORE + Duration::from_micros(1), now);
        assert_eq!(pacing.chunk_work(now), CHUNK_WORK_SHARED);
        pacing.note_yield(Duration::from_micros(1), now);
        assert_eq!(
            pacing.chunk_work(now + SHARED_FOR / 2),
            CHUNK_WORK_SHARED,
            "a quick yield after one that gave the core away keeps the verdict"
        );
        assert_eq!(pacing.chunk_work(now + SHARED_FOR), CHUNK_WORK);
    }

    #[test]
    fn a_yield_next_to_a_spinning_thread_on_the_same_core_finds_the_core_shared() {
        use std::sync::atomic::{AtomicBool, Ordering};
        let Some(core) = core_affinity::get_core_ids().and_then(|c| c.first().copied()) else {
            eprintln!("skipped: the cores cannot be listed here");
            return;
        };
        if !core_affinity::set_for_current(core) {
            eprintln!("skipped: this thread cannot be pinned to a core");
            return;
        }
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let (pinned_tx, pinned_rx) = std::sync::mpsc::channel();
        let spinner = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let pinned = core_affinity::set_for_current(core);
                let _ = pinned_tx.send(pinned);
                while pinned && !stop.load(Ordering::Relaxed) {
                    std::hint::spin_loop();
                }
            })
        };
        let pinned = pinned_rx.recv().unwrap_or(false);
        let mut pacing = Pacing::new();
        // The spinner runs a slice of its own whenever it gets the core: some yield of these
        // gives it the core (a scheduler slice is milliseconds, the threshold microseconds).
        let deadline = Instant::now() + Duration::from_secs(5);
        while pinned && pacing.until.is_none() && Instant::now() < deadline {
            pacing.yield_core();
        }
        // Read before the spinner is stopped and joined, which may take longer than the
        // verdict lasts on a busy machine.
        let found = pacing.until;
        stop.store(true, Ordering::Relaxed);
        // The spinner only loops until `stop`; a panic there is the test's failure.
        spinner.join().expect("the spinner ends");
        if !pinned {
            eprintln!("skipped: the spinner could not be pinned to the core");
            return;
        }
        assert!(
            found.is_some(),
            "no yield of 5 s of them came back after the spinner ran"
        );
    }
}
