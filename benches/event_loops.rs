//! The daemon's paths for many connections and long pipelines (issue 14): several event loops,
//! and replies written in chunks while the rest of a read is computed. Each is measured
//! against a daemon in this process (bootstrapped, key `alias/demo`) with one and with two
//! event loops, and, as the baseline in the same run, against
//! [`kmscks::daemon::echo::EchoServer`] started for the same number of connections (threaded
//! as the daemon is, answering every frame with a GenerateDataKey reply of the same size):
//! the same client code against each, so daemon ÷ echo is what the daemon's work costs.
//!
//! - `eight_connections`: eight client threads, each on a connection of its own with one
//!   GenerateDataKey call in flight; an iteration is one call per thread (time per round of
//!   eight calls, measured over the whole run of rounds, the threads not synchronised per
//!   round).
//! - `pipeline256`: one connection, 256 GenerateDataKey requests submitted, then their 256
//!   replies read: one read of the daemon's holds all of them, answered in chunks of 64 work
//!   units (256 while a loop's yields find its core shared, `kmscks::daemon::wake`), each
//!   chunk's replies written before the next is computed. With two loops, the
//!   other loop has nothing to serve: the row shows what an idle extra loop costs.

mod socket;
#[path = "../tests/support/mod.rs"]
mod support;

use std::hint::black_box;
use std::path::Path;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion};
use kmscks::daemon::echo::EchoServer;
use kmscks::ops::Backend;
use kmscks::Client;
use socket::{echo_reply, request, ServedDaemon};

/// Client connections of the `eight_connections` group.
const CONNECTIONS: usize = 8;
/// Requests per pipelined burst of the `pipeline256` group.
const BURST: usize = 256;
/// The daemons measured: their `event_loops`.
const LOOPS: [usize; 2] = [1, 2];

/// `CONNECTIONS` client threads, each with a connection of its own to one server; each makes
/// the number of calls it is sent, then reports.
struct Crowd {
    go: Vec<mpsc::Sender<u64>>,
    done: mpsc::Receiver<()>,
    threads: Vec<JoinHandle<()>>,
}

impl Crowd {
    fn new(socket: &Path) -> Crowd {
        let (done_tx, done) = mpsc::channel();
        let mut go = Vec::new();
        let mut threads = Vec::new();
        for _ in 0..CONNECTIONS {
            let client = Client::connect(socket).expect("connect");
            // The connection is opened (and greeted) before any timing.
            client.call(&request()).expect("a first call");
            let (go_tx, go_rx) = mpsc::channel::<u64>();
            let done_tx = done_tx.clone();
            threads.push(std::thread::spawn(move || {
                for calls in go_rx {
                    for _ in 0..calls {
                        black_box(client.call(&request()).expect("a call"));
                    }
                    // The bench waits for every thread's report; it ends only after the last.
                    done_tx
                        .send(())
                        .expect("the bench is waiting for this report");
                }
            }));
            go.push(go_tx);
        }
        Crowd { go, done, threads }
    }

    /// The time for every thread to make `calls` calls.
    fn run(&self, calls: u64) -> Duration {
        let start = Instant::now();
        for g in &self.go {
            g.send(calls).expect("the client thread is running");
        }
        for _ in 0..CONNECTIONS {
            self.done.recv().expect("every client thread reports");
        }
        start.elapsed()
    }
}

impl Drop for Crowd {
    fn drop(&mut self) {
        self.go.clear(); // the threads' loops end
        for t in self.threads.drain(..) {
            let joined = t.join();
            if !std::thread::panicking() {
                joined.expect("a client thread panicked");
            }
        }
    }
}

/// One group: `bench` against the echo floor started for `connections`, then against a daemon
/// of each of [`LOOPS`] event loops (one server at a time, each stopped before the next).
fn against_the_floor(
    c: &mut Criterion,
    group: &str,
    connections: usize,
    bench: fn(&mut BenchmarkGroup<'_, WallTime>, &str, &Path),
) {
    let mut g = c.benchmark_group(group);
    settle(&mut g);
    let echo = EchoServer::start_for(echo_reply(), connections).expect("echo server");
    bench(&mut g, "echo", echo.path());
    drop(echo);
    for loops in LOOPS {
        let daemon = ServedDaemon::start(loops);
        bench(&mut g, &format!("daemon/{loops} loops"), daemon.socket());
    }
    g.finish();
}

fn eight_connections(c: &mut Criterion) {
    against_the_floor(c, "eight_connections", CONNECTIONS, bench_crowd);
}

fn bench_crowd(g: &mut BenchmarkGroup<'_, WallTime>, name: &str, socket: &Path) {
    let crowd = Crowd::new(socket);
    g.bench_function(
        format!("{name}/GenerateDataKey x{CONNECTIONS} connections"),
        |b| b.iter_custom(|iters| crowd.run(iters)),
    );
}

fn pipeline256(c: &mut Criterion) {
    against_the_floor(c, "pipeline256", 1, bench_pipeline);
}

fn bench_pipeline(g: &mut BenchmarkGroup<'_, WallTime>, name: &str, socket: &Path) {
    let client = Client::connect(socket).expect("connect");
    let mut p = client.pipeline(BURST).expect("pipeline");
    g.bench_function(format!("{name}/GenerateDataKey x{BURST}"), |b| {
        b.iter(|| {
            for _ in 0..BURST {
                p.submit(&request()).expect("submitted");
            }
            for _ in 0..BURST {
                black_box(p.recv().expect("a reply").1.expect("a data key"));
            }
        })
    });
}

/// Few, short samples: the bench is meant to be run now and then for a ratio, not to resolve
/// small changes.
fn settle(g: &mut BenchmarkGroup<'_, WallTime>) {
    g.sample_size(10);
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(2));
}

criterion_group!(benches, eight_connections, pipeline256);
criterion_main!(benches);
