//! Sides of a comparison taking turns: `kmscks bench --socket … --baseline` measures the
//! daemon and its echo floors (`crate::loadgen_socket::compare_socket`), `--http … --baseline`
//! an endpoint and its HTTP echo floors (`crate::loadgen_http::compare_http`), in alternating
//! phases of about [`PHASE`](crate::loadgen::PHASE) on connections kept open, each side's
//! phases pooled. Why so:
//!
//! * **The same seconds of the machine for both sides.** This 2-core VM's speed drifts by a
//!   tenth or more within seconds. Measured one after the other, the daemon and the floor met
//!   different seconds, and a ratio moved with whichever met the slower ones; in turns each
//!   meets the drift as often as the other (the in-process comparison takes turns for the
//!   same reason).
//! * **Connections opened once.** Each side's connections are opened before the first phase
//!   and kept: the daemon places a connection on the loop serving the fewest when it is
//!   opened, and a side that reconnected every phase would be placed anew each time. Between
//!   its turns a side's driving threads wait on a barrier (parked), and its server's threads
//!   park after their spin as they would between any two bursts of a client.
//! * **A phase lasts until its requests are answered.** At the phase's end the side stops
//!   sending and takes the replies still in flight, which count for the phase: the other side
//!   never starts beside them.
//! * **Two floors, the faster kept.** The floor must be the best the machine does at the
//!   shape, and it has two ways to be slower than that: with one request in flight, whether
//!   the client spins for its reply (eight spinning clients take the cores the echo needs,
//!   one gets its answer sooner); with deep pipelines, how the scheduler places the client
//!   and the echo's thread (one connection pipelining 256 read 3.1 M/s in one run and 4.8 in
//!   the next). So there are two floors, each with its own echo server and connections (with
//!   one request in flight, the second's client does not spin), taking the floor's turns in
//!   the order 0 1 1 0 … ([`turns`]); the faster pool is the floor.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Barrier};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::loadgen::{add_run, empty_run, new_hist, LoadOp, LoadReport, Run};
use kmscks::error::{ErrorKind, KmsError, Result};

/// Who runs a phase of a comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Turn {
    /// The server measured: the daemon (or, over HTTP, any endpoint).
    Measured,
    /// Floor 0 or 1 (see the module doc).
    Floor(usize),
}

/// The phases of a comparison of `pairs` pairs. Each pair is a phase of the daemon's and one
/// of a floor's, the daemon first in even pairs (A B B A …); the floors take the pairs in the
/// order 0 1 1 0 …, so that over every four pairs each floor comes after the daemon once and
/// before it once.
pub(crate) fn turns(pairs: u32) -> Vec<Turn> {
    (0..pairs)
        .flat_map(|k| {
            let floor = Turn::Floor(((k + k / 2) % 2) as usize);
            match k % 2 {
                0 => [Turn::Measured, floor],
                _ => [floor, Turn::Measured],
            }
        })
        .collect()
}

/// The floors [`turns`] gives phases to: 1 or 2.
pub(crate) fn floors_in(turns: &[Turn]) -> usize {
    turns
        .iter()
        .filter_map(|t| match t {
            Turn::Floor(i) => Some(i + 1),
            Turn::Measured => None,
        })
        .max()
        .unwrap_or(0)
}

/// What a side's phases add up to, and the CPU its server used over them (`None` once a
/// reading failed: then none is told, rather than a part).
pub(crate) struct Pooled {
    pub run: Run,
    pub cpu_ns: Option<u64>,
}

impl Pooled {
    pub(crate) fn new() -> Pooled {
        Pooled {
            run: empty_run(),
            cpu_ns: Some(0),
        }
    }

    /// The report of the pooled phases of a load of `op` over `shape` (connections, depth)
    /// with `payload`, the server's CPU per request (if read) in `daemon_cpu_ns_per_op` (a
    /// floor's is moved to `baseline_cpu_ns_per_op` by its comparison).
    pub(crate) fn report(&self, op: LoadOp, shape: (usize, usize), payload: usize) -> LoadReport {
        let (done, errors, elapsed, hist) = &self.run;
        let mut r = LoadReport::measured(op, shape, payload, (*done, *errors), *elapsed, hist);
        r.daemon_cpu_ns_per_op = self.cpu_ns.map(|ns| ns as f64 / (*done).max(1) as f64);
        r
    }

    /// Runs one phase of `side` of about `len`, reading its server's CPU (`cpu`) before and
    /// after, and adds it.
    pub(crate) fn add_phase(
        &mut self,
        side: &Side,
        len: Duration,
        cpu: impl Fn() -> Option<u64>,
    ) -> Result<()> {
        let before = cpu();
        let run = side.phase(len)?;
        let used = before.zip(cpu()).map(|(b, a)| a.saturating_sub(b));
        self.cpu_ns = self.cpu_ns.zip(used).map(|(sum, n)| sum + n);
        add_run(&mut self.run, run);
        Ok(())
    }
}

/// What a side's driving threads and its measuring thread share.
struct Gate {
    /// Where a phase starts: every driver and the measuring thread.
    start: Barrier,
    /// Where a phase ends: every driver, its replies taken and its tally sent, and the
    /// measuring thread.
    end: Barrier,
    /// Raised by the measuring thread when the phase's time is up.
    stop: AtomicBool,
    /// Raised before the last `start`: the drivers end instead.
    quit: AtomicBool,
}

/// One side of a comparison: its connections, each kept by a driving thread that runs only in
/// the side's phases ([`Side::phase`]). The threads end when it is dropped.
pub(crate) struct Side {
    gate: Arc<Gate>,
    tallies: Receiver<Result<Run>>,
    drivers: Vec<JoinHandle<()>>,
}

/// A driving thread's place in its side's turns ([`Seat::serve`]).
pub(crate) struct Seat {
    gate: Arc<Gate>,
    tallies: Sender<Result<Run>>,
}

impl Side {
    /// A side of `connections` driving threads, each started by `spawn` with its [`Seat`]
    /// (which the thread serves once it has opened its connection).
    pub(crate) fn start(connections: usize, mut spawn: impl FnMut(Seat) -> JoinHandle<()>) -> Side {
        let connections = connections.max(1);
        let gate = Arc::new(Gate {
            start: Barrier::new(connections + 1),
            end: Barrier::new(connections + 1),
            stop: AtomicBool::new(false),
            quit: AtomicBool::new(false),
        });
        let (tx, tallies) = mpsc::channel();
        let drivers = (0..connections)
            .map(|_| {
                spawn(Seat {
                    gate: gate.clone(),
                    tallies: tx.clone(),
                })
            })
            .collect();
        Side {
            gate,
            tallies,
            drivers,
        }
    }

    /// One phase: lets the drivers send for `len`, then waits for them to take their
    /// replies. Answers their requests done and failed, their latencies, and how long the
    /// phase lasted, their last replies included.
    pub(crate) fn phase(&self, len: Duration) -> Result<Run> {
        // Seen by every driver: the barrier orders it before their start.
        self.gate.stop.store(false, Ordering::Relaxed);
        self.gate.start.wait();
        let t0 = Instant::now();
        thread::sleep(len);
        self.gate.stop.store(true, Ordering::Relaxed);
        self.gate.end.wait();
        let mut phase = (0, 0, t0.elapsed(), new_hist());
        let mut first_err = None;
        // Every driver sent its tally before it reached `end`.
        for _ in &self.drivers {
            match self.tallies.recv() {
                Ok(Ok(run)) => {
                    phase.0 += run.0;
                    phase.1 += run.1;
                    let _ = phase.3.add(&run.3);
                }
                Ok(Err(e)) => first_err = first_err.or(Some(e)),
                Err(_) => first_err = first_err.or_else(|| Some(panicked())),
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(phase),
        }
    }
}

impl Drop for Side {
    fn drop(&mut self) {
        self.gate.quit.store(true, Ordering::Relaxed);
        // Between phases every driver waits at `start` (a phase returns only after `end`).
        self.gate.start.wait();
        for d in self.drivers.drain(..) {
            let _ = d.join();
        }
    }
}

fn panicked() -> KmsError {
    KmsError::new(
        ErrorKind::KMSInternalException,
        "a load generator thread panicked",
    )
}

impl Seat {
    /// Takes part in the side's phases until the side is dropped: in each, `phase` runs on
    /// the thread's `driver` (its connection) and answers its tally — sending while the
    /// `stop` it is given is down, then taking the replies of what it sent, which count for
    /// the phase. The thread keeps meeting the barriers whatever happens (a driver that could
    /// not be made answers its error each phase, a panic in a phase is that phase's error),
    /// so that the measuring thread is never left waiting at one.
    pub(crate) fn serve<D>(
        self,
        mut driver: Result<D>,
        mut phase: impl FnMut(&mut D, &AtomicBool) -> Result<Run>,
    ) {
        let gate = &self.gate;
        loop {
            gate.start.wait();
            if gate.quit.load(Ordering::Relaxed) {
                return;
            }
            let tally = match &mut driver {
                Ok(d) => catch_unwind(AssertUnwindSafe(|| phase(d, &gate.stop)))
                    .unwrap_or_else(|_| Err(panicked())),
                Err(e) => Err(e.clone()),
            };
            // The measuring thread holds the receiver until every driver has ended.
            let _ = self.tallies.send(tally);
            gate.end.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(turns: &[Turn], who: Turn) -> usize {
        turns.iter().filter(|&&t| t == who).count()
    }

    #[test]
    fn the_daemon_and_the_floors_alternate_each_floor_as_often_before_the_daemon_as_after() {
        let t = turns(8);
        assert_eq!(t.len(), 16);
        assert_eq!(count(&t, Turn::Measured), 8);
        assert_eq!(
            (count(&t, Turn::Floor(0)), count(&t, Turn::Floor(1))),
            (4, 4)
        );
        for pair in t.chunks(2) {
            assert_eq!(
                count(pair, Turn::Measured),
                1,
                "{pair:?}: one daemon phase a pair"
            );
        }
        // Each floor's phases: after the daemon's in its pair as often as before it.
        for floor in [Turn::Floor(0), Turn::Floor(1)] {
            let after = t.chunks(2).filter(|p| p[1] == floor).count();
            let before = t.chunks(2).filter(|p| p[0] == floor).count();
            assert_eq!((after, before), (2, 2), "{floor:?} in {t:?}");
        }
        assert_eq!(
            turns(2),
            [
                Turn::Measured,
                Turn::Floor(0),
                Turn::Floor(1),
                Turn::Measured
            ]
        );
    }

    #[test]
    fn a_comparison_of_one_pair_has_one_floor_and_of_more_two() {
        assert_eq!(turns(1), [Turn::Measured, Turn::Floor(0)]);
        assert_eq!(floors_in(&turns(1)), 1);
        assert_eq!(floors_in(&turns(2)), 2);
        assert_eq!(floors_in(&turns(6)), 2);
        assert_eq!(floors_in(&[]), 0);
    }
}
