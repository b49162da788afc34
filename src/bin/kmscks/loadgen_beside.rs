//! `kmscks bench --socket … --beside OP`: what one connection calling OP in a loop costs the
//! load of the others (the data-plane issue's "a CreateKey never delays another client's
//! Decrypt").
//!
//! The load runs without a pause for the whole measurement, on connections opened once; the
//! other connection, opened once after them, alternates between idle and calling in phases of
//! about [`PHASE`](crate::loadgen::PHASE): alone, beside, alone, … beside, alone ([`rounds`]
//! beside phases, one more alone), after a short warm-up that counts for neither. Why so:
//!
//! * **The same connections in every phase, placed as two clients' would be.** The daemon
//!   hands each new connection to the loop serving the fewest, idle ones included. When every
//!   phase opened its own connections, whether the load and the other connection shared a loop
//!   changed from round to round with whether the daemon had read the previous phase's close.
//!   Opened once, after the load's, the other connection lands on the loop the load's pipeline
//!   is not on (the bench's idle connections, the one that prepared the run and the load's own
//!   handle, count for one loop each), as a second busy client of the daemon would.
//! * **Many short phases, each beside phase against the alone phases either side.** The rate
//!   of the load alone swings on this 2-core VM by a fifth from one second to the next; a
//!   beside phase compared with the mean of its two neighbours cancels a drift, and the report
//!   pools every phase: the load's requests over all beside phases per second, against those
//!   over all alone phases (`ops_per_sec` against `alone_ops_per_sec`), with each beside
//!   phase's share (`beside_kept_shares`).
//! * **A beside phase lasts until the calls it sent are answered**: the other connection stops
//!   sending at the phase's end and takes its answers (a CreateKey can take milliseconds on a
//!   busy machine); the load is beside those calls until then, and counts for the phase.
//! * **The measuring thread tells the other connection's thread each phase by a message**, and
//!   that thread answers each with its count of calls: a thread that wakes late finds the
//!   phase over and answers nothing sent, rather than waiting for a wake-up already spent.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::loadgen::LoadReport;
use crate::loadgen_socket::{keep_full, unexpected, RequestMaker, SocketLoadOpts};
use kmscks::api::kms::{CreateKeyRequest, DecryptRequest, EncryptRequest, GenerateDataKeyRequest};
use kmscks::client::{Client, ClientBuilder, Pipeline};
use kmscks::error::{ErrorKind, KmsError, Result};
use kmscks::ops::{Backend, Request, Response};
use kmscks::secret::SecretBytes;
use kmscks::types::{DataKeySpec, EncryptionAlgorithm, KeySpec, KeyUsage};

/// What the other connection of `--beside` does in its loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Beside {
    /// CreateKey in the default key store: a control-plane call, with its fsync.
    CreateKey,
    /// Decrypt under an RSA_4096 ENCRYPT_DECRYPT key (RSAES_OAEP_SHA_256): milliseconds of
    /// RSA arithmetic per call.
    RsaDecrypt,
    /// GenerateDataKey of AES_256 data keys (under a key of its own in the default key store)
    /// pipelined [`BESIDE_DEPTH`] deep: a client that keeps a loop and a core busy, beside
    /// which a small client's latency shows what the loops' spin and yield cost it. Which
    /// loop serves it, and whether the load's loop too, is the daemon's choice (the loop with
    /// the fewest connections, idle ones included), not the bench's.
    PipelinedDataKeys,
}

/// Requests the `pipelined-generate-data-key` connection keeps in flight: the depth of the
/// README's pipelined rows.
pub(crate) const BESIDE_DEPTH: usize = 256;

impl Beside {
    /// Every `--beside` value with what it names, in the order the help lists them.
    pub(crate) const ALL: [(&'static str, Beside); 3] = [
        ("create-key", Beside::CreateKey),
        ("rsa-decrypt", Beside::RsaDecrypt),
        ("pipelined-generate-data-key", Beside::PipelinedDataKeys),
    ];

    /// What the loop does, for the help.
    pub(crate) fn what(self) -> String {
        match self {
            Beside::CreateKey => {
                "a control-plane call with its fsync; the keys it creates stay".to_owned()
            }
            Beside::RsaDecrypt => {
                "an RSA_4096 decryption, milliseconds each; the key the run makes stays".to_owned()
            }
            Beside::PipelinedDataKeys => format!(
                "GenerateDataKey with {BESIDE_DEPTH} requests in flight; the key the run \
                 makes stays"
            ),
        }
    }

    /// The `--beside` value.
    pub(crate) fn parse(s: &str) -> Option<Beside> {
        Self::ALL
            .iter()
            .find(|(name, _)| *name == s)
            .map(|&(_, b)| b)
    }

    /// The operation the loop calls, as the report names it.
    pub(crate) fn op_name(self) -> &'static str {
        match self {
            Beside::CreateKey => "CreateKey",
            Beside::RsaDecrypt => "Decrypt",
            Beside::PipelinedDataKeys => "GenerateDataKey",
        }
    }

    /// Requests the loop keeps in flight.
    fn depth(self) -> usize {
        match self {
            Beside::CreateKey | Beside::RsaDecrypt => 1,
            Beside::PipelinedDataKeys => BESIDE_DEPTH,
        }
    }

    /// The loop's one request, made once (an RSA key and a ciphertext for `RsaDecrypt`).
    fn request(self, client: &Client) -> Result<Request> {
        let create = |req| match client.call(&Request::CreateKey(req))? {
            Response::CreateKey(r) => Ok(r.key_metadata.key_id),
            other => Err(unexpected(&other)),
        };
        let description = Some(format!("kmscks bench --beside {}", self.op_name()));
        match self {
            Beside::CreateKey => Ok(Request::CreateKey(CreateKeyRequest {
                description,
                ..Default::default()
            })),
            Beside::PipelinedDataKeys => {
                let key_id = create(CreateKeyRequest {
                    description,
                    ..Default::default()
                })?;
                Ok(Request::GenerateDataKey(GenerateDataKeyRequest {
                    key_id,
                    key_spec: Some(DataKeySpec::Aes256),
                    ..Default::default()
                }))
            }
            Beside::RsaDecrypt => {
                let key_id = create(CreateKeyRequest {
                    description,
                    key_spec: Some(KeySpec::Rsa4096),
                    key_usage: Some(KeyUsage::EncryptDecrypt),
                    ..Default::default()
                })?;
                let algorithm = Some(EncryptionAlgorithm::RsaesOaepSha256);
                let sealed = match client.call(&Request::Encrypt(EncryptRequest {
                    key_id: key_id.clone(),
                    plaintext: SecretBytes::from_slice(b"kmscks bench --beside rsa-decrypt"),
                    encryption_algorithm: algorithm,
                    ..Default::default()
                }))? {
                    Response::Encrypt(r) => r.ciphertext_blob,
                    other => return Err(unexpected(&other)),
                };
                Ok(Request::Decrypt(DecryptRequest {
                    key_id: Some(key_id),
                    ciphertext_blob: sealed,
                    encryption_algorithm: algorithm,
                    ..Default::default()
                }))
            }
        }
    }
}

/// Rounds (beside phases) in a run of `duration`: one per [`PHASE`](crate::loadgen::PHASE) of
/// it, at least three.
pub(crate) fn rounds(duration: Duration) -> u32 {
    crate::loadgen::phases_in(duration, 3)
}

/// The phase index the load's replies are not counted in: before the first phase and after
/// the last.
const BETWEEN: usize = usize::MAX;

/// Phase `k` (0-based) is beside the other connection's calls when odd.
fn is_beside(k: usize) -> bool {
    k != BETWEEN && k % 2 == 1
}

/// One driving connection's count of replies in each phase, and its latencies alone and
/// beside.
struct Tally {
    done: Vec<u64>,
    errors: u64,
    alone: Histogram<u64>,
    beside: Histogram<u64>,
}

impl Tally {
    fn new(phases: usize) -> Tally {
        Tally {
            done: vec![0; phases],
            errors: 0,
            alone: crate::loadgen::new_hist(),
            beside: crate::loadgen::new_hist(),
        }
    }

    /// A reply taken in `phase` after `ns`: its latency kept as [`keep_full`]'s callers keep
    /// every reply's, a failed one counted whenever it came.
    fn record(&mut self, phase: usize, ns: u64, ok: bool) {
        if !ok {
            self.errors += 1;
        }
        let Some(done) = self.done.get_mut(phase) else {
            return; // before the first phase or after the last
        };
        *done += u64::from(ok);
        let hist = if is_beside(phase) {
            &mut self.beside
        } else {
            &mut self.alone
        };
        let _ = hist.record(ns);
    }
}

/// What the phases add up to, from the load's replies `done[k]` and the other connection's
/// calls `calls[k]` in phase `k`, which lasted `elapsed[k]`.
#[derive(Debug, PartialEq)]
struct Summary {
    /// The load's replies over all beside phases, and how long those lasted.
    beside: (u64, Duration),
    /// The same over all alone phases.
    alone: (u64, Duration),
    /// The other connection's calls sent in the beside phases, per second of them.
    calls_rate: f64,
    /// Each beside phase's rate over the mean rate of the alone phases either side of it.
    shares: Vec<f64>,
}

fn summarize(done: &[u64], calls: &[u64], elapsed: &[Duration]) -> Summary {
    let per_sec = |n: u64, t: Duration| n as f64 / t.as_secs_f64().max(f64::MIN_POSITIVE);
    let rate = |k: usize| per_sec(done[k], elapsed[k]);
    let pooled = |counts: &[u64], beside: bool| {
        (0..elapsed.len())
            .filter(|&k| is_beside(k) == beside)
            .fold((0, Duration::ZERO), |(n, t), k| {
                (n + counts[k], t + elapsed[k])
            })
    };
    let (called, beside_time) = pooled(calls, true);
    let shares = (1..elapsed.len().saturating_sub(1))
        .step_by(2)
        .map(|k| rate(k) / ((rate(k - 1) + rate(k + 1)) / 2.0).max(f64::MIN_POSITIVE))
        .collect();
    Summary {
        beside: pooled(done, true),
        alone: pooled(done, false),
        calls_rate: per_sec(called, beside_time),
        shares,
    }
}

/// The load of `opts` (made by `maker`) alone and beside one more connection calling `other`
/// in a loop, in [`rounds`]`(opts.duration)` rounds (see the module doc). The report's own
/// members are the load's beside the calls, pooled over the beside phases; `alone_*` the same
/// over the alone phases; `errors` the load's failed requests in every phase. The daemon's CPU
/// per request is not given: its process paid for the other connection's calls too.
pub(crate) fn measure(
    path: &Path,
    opts: &SocketLoadOpts,
    maker: &RequestMaker,
    other: Beside,
) -> Result<LoadReport> {
    let rounds = rounds(opts.duration) as usize;
    let phases = 2 * rounds + 1;
    let phase_len = opts.duration / rounds as u32;
    let phase = Arc::new(AtomicUsize::new(BETWEEN));
    let stop = Arc::new(AtomicBool::new(false));
    let client = Arc::new(crate::loadgen_socket::connect(path, opts).connect()?);
    let (conns, depth) = (opts.connections.max(1), opts.pipeline.max(1));
    let start = Arc::new(Barrier::new(conns + 1));
    let drivers: Vec<_> = (0..conns)
        .map(|_| {
            let (client, phase, stop, start, maker) = (
                client.clone(),
                phase.clone(),
                stop.clone(),
                start.clone(),
                maker.clone(),
            );
            thread::spawn(move || -> Result<Tally> {
                let mut tally = Tally::new(phases);
                keep_full(&client, depth, &maker, &start, &stop, |ns, ok| {
                    tally.record(phase.load(Ordering::Relaxed), ns, ok)
                })?;
                Ok(tally)
            })
        })
        .collect();
    // The drivers' pipelines are connected once they wait here: the other connection comes
    // after them.
    start.wait();
    let to = crate::loadgen_socket::connect(path, opts);
    let phased = run_phases(to, other, &phase, phases, phase_len);
    stop.store(true, Ordering::Relaxed);
    let mut tallies = Vec::with_capacity(conns);
    for d in drivers {
        tallies.push(d.join().map_err(|_| panicked("load generator"))??);
    }
    let (elapsed, calls) = phased?;
    let mut done = vec![0u64; phases];
    let (mut alone, mut beside, mut errors) =
        (crate::loadgen::new_hist(), crate::loadgen::new_hist(), 0);
    for t in &tallies {
        done.iter_mut().zip(&t.done).for_each(|(d, n)| *d += n);
        let _ = alone.add(&t.alone);
        let _ = beside.add(&t.beside);
        errors += t.errors;
    }
    let s = summarize(&done, &calls, &elapsed);
    let shape = (conns, depth);
    let (alone_done, alone_time) = s.alone;
    let alone = LoadReport::measured(
        opts.op,
        shape,
        opts.payload,
        (alone_done, 0),
        alone_time,
        &alone,
    );
    let (beside_done, beside_time) = s.beside;
    let mut report = LoadReport::measured(
        opts.op,
        shape,
        opts.payload,
        (beside_done, errors),
        beside_time,
        &beside,
    );
    report.alone_ops_per_sec = Some(alone.ops_per_sec);
    report.alone_p50_us = Some(alone.p50_us);
    report.alone_p99_us = Some(alone.p99_us);
    report.beside_ops_per_sec = Some(s.calls_rate);
    report.beside_op = Some(other.op_name().to_owned());
    report.beside_kept_shares = Some(s.shares);
    Ok(report)
}

fn panicked(what: &str) -> KmsError {
    KmsError::new(
        ErrorKind::KMSInternalException,
        format!("the {what} thread panicked"),
    )
}

/// The phases, while the load runs: connects the other connection (on a thread of its own,
/// [`call_in_phases`]), lets the load warm up, then sets each phase in `phase` in turn and,
/// in beside ones, has the other connection call. Answers each phase's length and the calls
/// sent in it. The other connection's thread has ended when this returns.
fn run_phases(
    to: ClientBuilder,
    other: Beside,
    phase: &AtomicUsize,
    phases: usize,
    phase_len: Duration,
) -> Result<(Vec<Duration>, Vec<u64>)> {
    let sending = Arc::new(AtomicBool::new(false));
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let (sent_tx, sent_rx) = mpsc::channel::<Result<u64>>();
    let caller = {
        let sending = sending.clone();
        thread::spawn(move || call_in_phases(to, other, &sending, &go_rx, &sent_tx))
    };
    // What the other connection's thread answered; its end (an error it sent, or a panic)
    // ends the run.
    let answer = |got: std::result::Result<Result<u64>, mpsc::RecvError>| match got {
        Ok(sent) => sent,
        Err(_) => Err(panicked(&format!("{} loop", other.op_name()))),
    };
    let run = (|| {
        answer(sent_rx.recv())?; // connected, its request made
        thread::sleep(crate::loadgen::WARM_UP);
        let mut elapsed = vec![Duration::ZERO; phases];
        let mut calls = vec![0u64; phases];
        for k in 0..phases {
            phase.store(k, Ordering::Relaxed);
            let t0 = Instant::now();
            if is_beside(k) {
                sending.store(true, Ordering::Relaxed);
                // A thread that has ended answers below.
                let _ = go_tx.send(());
            }
            thread::sleep(phase_len);
            if is_beside(k) {
                sending.store(false, Ordering::Relaxed);
                calls[k] = answer(sent_rx.recv())?;
            }
            elapsed[k] = t0.elapsed();
        }
        Ok((elapsed, calls))
    })();
    phase.store(BETWEEN, Ordering::Relaxed);
    // Its channel closed, the other connection's thread ends after the phase it is in.
    sending.store(false, Ordering::Relaxed);
    drop(go_tx);
    let _ = caller.join();
    run
}

/// The other connection's thread: connects to `path`, makes `other`'s request and says so on
/// `sent`; then for each message on `go`, calls in a loop (`other.depth()` in flight) while
/// `sending` holds, takes the answers still in flight, and answers on `sent` how many calls it
/// sent. Ends when `go` closes, or after answering an error.
fn call_in_phases(
    to: ClientBuilder,
    other: Beside,
    sending: &AtomicBool,
    go: &Receiver<()>,
    sent: &Sender<Result<u64>>,
) {
    let ready = to.connect().and_then(|c| other.request(&c).map(|r| (c, r)));
    let (client, request) = match ready {
        Ok(ready) => ready,
        Err(e) => {
            let _ = sent.send(Err(e));
            return;
        }
    };
    let mut pipeline = match other.depth() {
        1 => None,
        depth => match client.pipeline(depth) {
            Ok(p) => Some(p),
            Err(e) => {
                let _ = sent.send(Err(e));
                return;
            }
        },
    };
    if sent.send(Ok(0)).is_err() {
        return;
    }
    for () in go.iter() {
        let calls = call_while(&client, pipeline.as_mut(), &request, sending);
        let failed = calls.is_err();
        if sent.send(calls).is_err() || failed {
            return;
        }
    }
}

/// Calls `request` on `client` (or keeps `pipeline` full of it) while `sending` holds, then
/// takes every answer still in flight; answers the calls sent.
fn call_while(
    client: &Client,
    pipeline: Option<&mut Pipeline<'_>>,
    request: &Request,
    sending: &AtomicBool,
) -> Result<u64> {
    let mut calls = 0;
    match pipeline {
        None => {
            while sending.load(Ordering::Relaxed) {
                client.call(request)?;
                calls += 1;
            }
        }
        Some(p) => {
            while sending.load(Ordering::Relaxed) {
                p.submit(request)?;
                calls += 1;
                for (_, answer) in p.drain_ready() {
                    answer?;
                }
            }
            while p.in_flight() > 0 || p.ready() > 0 {
                p.recv()?.1?;
            }
        }
    }
    Ok(calls)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_beside_loop_has_a_value_the_command_line_takes_and_the_help_names_and_no_other() {
        // A variant added without its row in `ALL` fails to compile here first.
        let listed = |b: Beside| match b {
            Beside::CreateKey | Beside::RsaDecrypt | Beside::PipelinedDataKeys => {
                Beside::ALL.iter().filter(|(_, x)| *x == b).count()
            }
        };
        for b in [
            Beside::CreateKey,
            Beside::RsaDecrypt,
            Beside::PipelinedDataKeys,
        ] {
            assert_eq!(listed(b), 1, "{b:?} is in Beside::ALL once");
        }
        let mut help = Vec::new();
        crate::cli::bench::command()
            .write_long_help(&mut help)
            .expect("help writes to a Vec");
        let help = String::from_utf8(help).expect("help is UTF-8");
        for (name, b) in Beside::ALL {
            let m = crate::cli::bench::command()
                .try_get_matches_from(["bench", "--beside", name])
                .unwrap_or_else(|e| panic!("--beside {name}: {e}"));
            let taken = m.get_one::<String>("beside").map(String::as_str);
            assert_eq!(taken.and_then(Beside::parse), Some(b));
            assert!(help.contains(&format!("{name} (")), "{name} in the help");
        }
        assert!(crate::cli::bench::command()
            .try_get_matches_from(["bench", "--beside", "sign"])
            .is_err());
        // Its baseline is the load alone: an echo floor's ratio would measure nothing asked.
        let both = crate::cli::bench::command()
            .try_get_matches_from(["bench", "--beside", "create-key", "--baseline"])
            .expect_err("--beside with --baseline is refused");
        assert_eq!(both.kind(), clap::error::ErrorKind::ArgumentConflict);
        assert_eq!(Beside::parse("sign"), None);
    }

    #[test]
    fn a_run_has_one_phase_beside_the_calls_per_half_second_and_at_least_three() {
        assert_eq!(rounds(Duration::from_secs(6)), 12);
        assert_eq!(rounds(Duration::from_millis(1_750)), 3);
        assert_eq!(rounds(Duration::from_millis(2_000)), 4);
        assert_eq!(rounds(Duration::from_millis(200)), 3);
        assert_eq!(rounds(Duration::ZERO), 3);
    }

    #[test]
    fn phases_alternate_alone_and_beside_starting_alone_and_between_them_is_neither() {
        assert!(!is_beside(0));
        assert!(is_beside(1));
        assert!(!is_beside(2));
        assert!(!is_beside(BETWEEN));
    }

    #[test]
    fn the_summary_pools_each_kind_of_phase_and_sets_each_beside_phase_against_its_neighbours() {
        let s = Duration::from_secs(1);
        let elapsed = [s, s, 2 * s, s, s];
        let done = [100, 90, 220, 80, 100];
        let calls = [0, 5, 0, 7, 0];
        let summary = summarize(&done, &calls, &elapsed);
        assert_eq!(summary.beside, (170, 2 * s));
        assert_eq!(summary.alone, (420, 4 * s));
        assert_eq!(summary.calls_rate, 6.0);
        // Rates alone: 100, 110 and 100 a second.
        assert_eq!(summary.shares.len(), 2);
        assert!(
            (summary.shares[0] - 90.0 / 105.0).abs() < 1e-12,
            "{summary:?}"
        );
        assert!(
            (summary.shares[1] - 80.0 / 105.0).abs() < 1e-12,
            "{summary:?}"
        );
    }

    #[test]
    fn a_tally_counts_replies_by_phase_keeps_latencies_alone_and_beside_apart_and_every_failure() {
        let mut t = Tally::new(3);
        t.record(0, 1_000, true);
        t.record(1, 9_000, true);
        t.record(1, 9_000, true);
        t.record(1, 12_000, false);
        t.record(BETWEEN, 50_000, true);
        t.record(BETWEEN, 50_000, false);
        t.record(2, 2_000, true);
        assert_eq!(t.done, [1, 2, 1], "replies done, by phase");
        assert_eq!(t.errors, 2, "a failure between phases is no less a failure");
        // Every reply's latency in its phase's kind, a failed one's too (as `drive` keeps
        // them); none of those between phases.
        assert_eq!((t.alone.len(), t.beside.len()), (2, 3));
        assert!(t.alone.max() < 3_000 && t.beside.min() > 8_000 && t.beside.max() < 13_000);
    }
}
