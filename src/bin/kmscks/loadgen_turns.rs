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
//!   never starts beside them. A run without `--baseline` is one such phase of the server
//!   alone ([`alone`]), counted the same way.
//! * **Two floors, the faster kept, each running as long as the server.** The floor must be
//!   the best the machine does at the shape, and it has two ways to be slower than that: with
//!   one request in flight, whether the client spins for its reply (eight spinning clients
//!   take the cores the echo needs, one gets its answer sooner); with deep pipelines, how the
//!   scheduler places the client and the echo's thread (one connection pipelining 256 read 3.1
//!   M/s in one run and 4.8 in the next). So there are two floors, each with its own echo
//!   server and connections (with one request in flight over the socket, the second's client
//!   does not spin). Each round of turns gives the server and each floor a phase, the order
//!   rotating ([`turns`]), so that each floor pools as many phases as the server: keeping the
//!   faster of two noisy means raises the floor by a part of their spread, and the more phases
//!   each pools, the smaller that part. The bias lowers the ratio, never raises it.
//! * **A server that stops answering fails the run.** Every connection of a side waits at most
//!   [`REPLY_TIMEOUT`] for a reply (or for the server to take a request): a server wedged
//!   without closing is a phase's error naming the limit, not a bench that hangs.
//! * **Each server's CPU is read once around all the turns**, not per phase: a server idles
//!   outside its side's phases, and a reading taken while its threads still spin after a
//!   phase would miss what the kernel had not yet charged them.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Barrier};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::loadgen::{add_run, empty_run, new_hist, LoadOp, LoadReport, Run};
use kmscks::error::{ErrorKind, KmsError, Result};

/// The longest any connection of a bench waits for its server to answer or to take a request
/// (`ClientBuilder::reply_timeout`, `Endpoint::with_timeout`), the AWS CLI's read timeout: far
/// above any reply of a phase (a pipeline's slowest reply waits for the requests before it,
/// microseconds each; the CreateKey beside a load waits for an fsync) and above the slowest
/// call a run makes first on a machine the bench has to itself (`--beside rsa-decrypt` creates
/// an RSA_4096 key, whose pair the daemon generates at its control threads' low priority: up
/// to seconds beside a busy data plane, and more than 10 s in CI beside other tests), so it
/// ends only a server that has stopped.
pub(crate) const REPLY_TIMEOUT: Duration = Duration::from_secs(60);

/// The floors of a comparison (see the module doc).
pub(crate) const FLOORS: usize = 2;

/// The sides of a comparison: the server measured, then the floors.
const SIDES: usize = 1 + FLOORS;

/// The phases of a comparison of `rounds` rounds, each side by its index (0: the server
/// measured, 1 and 2: the floors). Each round has one phase of every side, the order rotating
/// from round to round (0 1 2, 2 0 1, 1 2 0, …), so that over every three rounds each side
/// takes each place in a round once, and each side runs as long as the others.
fn turns(rounds: u32) -> impl Iterator<Item = usize> {
    (0..rounds as usize).flat_map(|k| (0..SIDES).map(move |i| (i + SIDES - k % SIDES) % SIDES))
}

/// What a side's phases add up to, and the CPU its server used over them (`None` when it
/// could not be read).
pub(crate) struct Pooled {
    pub run: Run,
    pub cpu_ns: Option<u64>,
}

impl Pooled {
    /// The report of the pooled phases of a load of `op` over `shape` (connections, depth)
    /// with `payload`, the server's CPU per request (if read) in `daemon_cpu_ns_per_op` (a
    /// floor's is moved to `baseline_cpu_ns_per_op` by its comparison).
    pub(crate) fn report(&self, op: LoadOp, shape: (usize, usize), payload: usize) -> LoadReport {
        let (done, errors, elapsed, hist) = &self.run;
        let mut r = LoadReport::measured(op, shape, payload, (*done, *errors), *elapsed, hist);
        r.daemon_cpu_ns_per_op = self.cpu_ns.map(|ns| ns as f64 / (*done).max(1) as f64);
        r
    }

    /// Requests answered per second over the phases.
    fn rate(&self) -> f64 {
        let (done, _, elapsed, _) = &self.run;
        *done as f64 / elapsed.as_secs_f64().max(f64::MIN_POSITIVE)
    }
}

/// The measured server's side and the floors' taking turns for `duration` each, in phases of
/// about [`PHASE`](crate::loadgen::PHASE) ([`turns`]), after a warm-up phase each that counts
/// for nothing; `cpu[i]` reads side `i`'s server's CPU time. Answers each side's pooled phases
/// and its server's CPU over them: read before the first counted phase and after the last,
/// since a server idles outside its side's phases (a reading per phase would lose, each time,
/// what a thread still spinning had not yet been charged).
pub(crate) fn take_turns(
    measured: &Side,
    floors: &[Side; FLOORS],
    cpu: [&dyn Fn() -> Option<u64>; SIDES],
    duration: Duration,
) -> Result<(Pooled, [Pooled; FLOORS])> {
    let sides = [measured, &floors[0], &floors[1]];
    let rounds = crate::loadgen::phases_in(duration, 1);
    let phase = duration / rounds;
    for side in sides {
        side.phase(crate::loadgen::WARM_UP)?;
    }
    let before = cpu.map(|read| read());
    let mut runs = [empty_run(), empty_run(), empty_run()];
    for i in turns(rounds) {
        add_run(&mut runs[i], sides[i].phase(phase)?);
    }
    let after = cpu.map(|read| read());
    let [ours, f0, f1] = std::array::from_fn(|i| Pooled {
        run: std::mem::replace(&mut runs[i], empty_run()),
        cpu_ns: before[i].zip(after[i]).map(|(b, a)| a.saturating_sub(b)),
    });
    Ok((ours, [f0, f1]))
}

/// `side` measured alone for `duration` in one phase, after a warm-up phase that counts for
/// nothing, its server's CPU (`cpu`) read around it: a run without a floor, counted as the
/// phases of a comparison are.
pub(crate) fn alone(
    side: &Side,
    cpu: &dyn Fn() -> Option<u64>,
    duration: Duration,
) -> Result<Pooled> {
    side.phase(crate::loadgen::WARM_UP)?;
    let before = cpu();
    let run = side.phase(duration)?;
    Ok(Pooled {
        run,
        cpu_ns: before.zip(cpu()).map(|(b, a)| a.saturating_sub(b)),
    })
}

/// The index of the faster of `floors`: the baseline (a floor is the best the machine does).
pub(crate) fn faster(floors: &[Pooled; FLOORS]) -> usize {
    usize::from(floors[1].rate() > floors[0].rate())
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
    /// Opens the thread's driver (its connection) with `open`, then takes part in the side's
    /// phases until the side is dropped: in each, `phase` runs on the driver and answers its
    /// tally — sending while the `stop` it is given is down, then taking the replies of what
    /// it sent, which count for the phase. The thread keeps meeting the barriers whatever
    /// happens (a driver that could not be made, or whose opening panicked, answers its error
    /// each phase; a panic in a phase is that phase's error), so that the measuring thread is
    /// never left waiting at one.
    pub(crate) fn serve<D>(
        self,
        open: impl FnOnce() -> Result<D>,
        mut phase: impl FnMut(&mut D, &AtomicBool) -> Result<Run>,
    ) {
        let mut driver = catch_unwind(AssertUnwindSafe(open)).unwrap_or_else(|_| Err(panicked()));
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

    #[test]
    fn each_side_has_a_phase_each_round_and_every_place_in_a_round_once_over_three_rounds() {
        let t: Vec<usize> = turns(6).collect();
        assert_eq!(t[..9], [0, 1, 2, 2, 0, 1, 1, 2, 0]);
        assert_eq!(t.len(), 18);
        for round in t.chunks(SIDES) {
            let mut sides = round.to_vec();
            sides.sort_unstable();
            assert_eq!(
                sides,
                [0, 1, 2],
                "one phase of each side a round: {round:?}"
            );
        }
        for side in 0..SIDES {
            for place in 0..SIDES {
                let times = t[..9].chunks(SIDES).filter(|r| r[place] == side).count();
                assert_eq!(times, 1, "side {side} in place {place} over three rounds");
            }
        }
        assert_eq!(
            turns(1).collect::<Vec<_>>(),
            [0, 1, 2],
            "a short run has every side"
        );
    }

    fn pooled(done: u64, secs: u64) -> Pooled {
        Pooled {
            run: (done, 0, Duration::from_secs(secs), new_hist()),
            cpu_ns: None,
        }
    }

    #[test]
    fn the_faster_floor_is_the_one_with_more_requests_a_second_not_more_requests() {
        assert_eq!(faster(&[pooled(100, 1), pooled(150, 1)]), 1);
        assert_eq!(faster(&[pooled(100, 1), pooled(150, 2)]), 0);
        assert_eq!(
            faster(&[pooled(100, 1), pooled(100, 1)]),
            0,
            "a tie keeps the first"
        );
    }

    /// A side of `n` drivers that count one request per phase each; `open` and `phase` can fail.
    fn counting(
        n: usize,
        open: impl Fn(usize) -> Result<u64> + Send + Sync + 'static,
        fail: impl Fn(usize, u64) -> Option<KmsError> + Send + Sync + 'static,
    ) -> Side {
        let (open, fail) = (Arc::new(open), Arc::new(fail));
        let mut k = 0;
        Side::start(n, |seat| {
            let (open, fail, me) = (open.clone(), fail.clone(), k);
            k += 1;
            thread::spawn(move || {
                seat.serve(
                    || open(me),
                    |phases, stop| {
                        *phases += 1;
                        if let Some(e) = fail(me, *phases) {
                            return Err(e);
                        }
                        while !stop.load(Ordering::Relaxed) {
                            thread::yield_now();
                        }
                        let mut hist = new_hist();
                        let _ = hist.record(7);
                        Ok((1, 0, Duration::ZERO, hist))
                    },
                )
            })
        })
    }

    fn failed(what: &str) -> KmsError {
        KmsError::new(ErrorKind::KMSInternalException, what)
    }

    #[test]
    fn a_phase_adds_every_drivers_tally_and_lasts_at_least_its_length() {
        let side = counting(3, |_| Ok(0), |_, _| None);
        for _ in 0..2 {
            let (done, errors, elapsed, hist) = side.phase(Duration::from_millis(5)).unwrap();
            assert_eq!((done, errors, hist.len()), (3, 0, 3));
            assert!(elapsed >= Duration::from_millis(5), "{elapsed:?}");
        }
    }

    #[test]
    fn a_driver_that_could_not_open_fails_every_phase_and_the_side_still_ends() {
        let side = counting(
            2,
            |me| {
                if me == 1 {
                    Err(failed("no connection"))
                } else {
                    Ok(0)
                }
            },
            |_, _| None,
        );
        for _ in 0..2 {
            let e = side.phase(Duration::from_millis(1)).unwrap_err();
            assert!(e.message().contains("no connection"), "{e:?}");
        }
        drop(side); // returns: every driver met the barriers
    }

    #[test]
    fn a_panic_opening_or_in_a_phase_is_an_error_not_a_hang() {
        let side = counting(
            2,
            |me| if me == 0 { panic!("opening") } else { Ok(0) },
            |_, _| None,
        );
        let e = side.phase(Duration::from_millis(1)).unwrap_err();
        assert!(e.message().contains("panicked"), "{e:?}");
        drop(side);
        // A panic in the first phase only: the next phase counts again.
        let side = counting(
            2,
            |_| Ok(0),
            |me, phase| {
                if me == 1 && phase == 1 {
                    panic!("in a phase")
                }
                None
            },
        );
        let e = side.phase(Duration::from_millis(1)).unwrap_err();
        assert!(e.message().contains("panicked"), "{e:?}");
        assert_eq!(side.phase(Duration::from_millis(1)).unwrap().0, 2);
    }

    #[test]
    fn a_side_dropped_before_any_phase_ends_its_threads() {
        drop(counting(4, |_| Ok(0), |_, _| None));
    }
}
