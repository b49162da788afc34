//! The control threads: where the daemon's control-plane requests run — those of the socket's
//! loop and of the HTTP endpoint's — so that a CreateKey waiting for its fsync (or any request
//! waiting for the state's lock behind one) never holds an event loop, and other clients'
//! Decrypts go on being answered meanwhile.
//!
//! Two lanes, one thread each: [`Lane::State`] for the requests that read or change the
//! control-plane state (they serialise on its lock anyway), and [`Lane::Rsa`] for those that
//! do RSA private-key arithmetic: generating a key pair (GenerateDataKeyPair,
//! GetParametersForImport, the CreateKey of an RSA key: up to seconds for RSA_4096 on a busy
//! machine), or using one (an RSA Decrypt, a ReEncrypt from an RSA ciphertext, an RSA
//! signature: milliseconds each). So the calls on the state (a CreateKey of any other spec among
//! them) never wait behind an RSA key pair's generation, and the event loop, which answers
//! every other cryptographic request itself, is never held by RSA arithmetic while other
//! clients wait. (The CreateKey of an RSA key changes the state too: it generates its pair
//! before it locks the state, `Kms::create_key`, and holds the lock only for its commit, as a
//! state-lane call would. It waits behind the RSA lane's other work, and its `fdatasync` is
//! not paced, as the RSA lane is not.)
//!
//! Within a lane, callers take turns: each principal (a socket uid, an HTTP identity) has its
//! own queue and the thread serves one job of each principal with work in turn ([`Turns`]).
//! One uid opening many connections and filling them with slow requests delays another uid's
//! request by at most one job per other busy principal, not by its whole backlog.
//!
//! Why long-lived threads and not a thread per request: starting a thread costs more than a
//! DescribeKey. Each connection has at most one request here at a time (its later requests
//! wait for the answer; see `dispatch::Deferred::Control` and the HTTP loop), so the queues are
//! bounded by the connections. A job answers through whatever it captured (a channel and its
//! loop's waker).
//!
//! Both threads run `control_nice` steps below the loops' CPU priority (see `super::priority`):
//! when the cores are busy the data plane goes first.

use std::thread::JoinHandle;

use crossbeam::channel::{Receiver, Sender};

use super::control_pace::ServingClocks;
use super::turns::Turns;
use crate::api::kms::CreateKeyRequest;
use crate::err;
use crate::error::Result;
use crate::ops::Request;
use crate::types::{EncryptionAlgorithm, KeySpec, SigningAlgorithm};

/// A control-plane request to run, with where its answer goes.
pub(super) type Job = Box<dyn FnOnce() + Send>;

/// Which control thread runs a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Lane {
    /// Requests on the control-plane state.
    State,
    /// Requests that generate or use an RSA private key: milliseconds to a second each. The
    /// HTTP endpoint also runs its batch requests here (`http::lane_of`).
    Rsa,
}

/// Whether an encryption algorithm is RSA's (the key's private half decrypts).
fn rsa_encryption(alg: Option<EncryptionAlgorithm>) -> bool {
    matches!(
        alg,
        Some(EncryptionAlgorithm::RsaesOaepSha1 | EncryptionAlgorithm::RsaesOaepSha256)
    )
}

/// Whether a CreateKey of this spec (`KeySpec`, else `CustomerMasterKeySpec`) generates an RSA
/// key pair.
fn rsa_key_pair(r: &CreateKeyRequest) -> bool {
    matches!(
        r.key_spec.or(r.customer_master_key_spec),
        Some(KeySpec::Rsa2048 | KeySpec::Rsa3072 | KeySpec::Rsa4096)
    )
}

/// Whether a signing algorithm is RSA's.
fn rsa_signature(alg: Option<SigningAlgorithm>) -> bool {
    use SigningAlgorithm::*;
    matches!(
        alg,
        Some(
            RsassaPssSha256
                | RsassaPssSha384
                | RsassaPssSha512
                | RsassaPkcs1V15Sha256
                | RsassaPkcs1V15Sha384
                | RsassaPkcs1V15Sha512
        )
    )
}

impl Lane {
    /// The lane of a request; `None` for one the event loop answers itself (the data plane's,
    /// but for its RSA private-key operations, told by the algorithm the request names).
    pub(super) fn of(request: &Request) -> Option<Lane> {
        match request {
            Request::GenerateDataKeyPair(_)
            | Request::GenerateDataKeyPairWithoutPlaintext(_)
            | Request::GetParametersForImport(_) => Some(Lane::Rsa),
            Request::CreateKey(r) if rsa_key_pair(r) => Some(Lane::Rsa),
            Request::Decrypt(r) if rsa_encryption(r.encryption_algorithm) => Some(Lane::Rsa),
            Request::ReEncrypt(r) if rsa_encryption(r.source_encryption_algorithm) => {
                Some(Lane::Rsa)
            }
            Request::Sign(r) if rsa_signature(r.signing_algorithm) => Some(Lane::Rsa),
            r if !r.op().is_data_plane() => Some(Lane::State),
            _ => None,
        }
    }
}

/// A job and whose it is.
struct Submitted {
    principal: Box<str>,
    job: Job,
}

/// One lane's thread: waits for work, takes in everything submitted meanwhile, runs one job
/// of the principal whose turn it is, and ends when every sender is gone and nothing is left.
fn serve(rx: Receiver<Submitted>, pace: Option<(u32, ServingClocks)>) {
    let mut turns = Turns::default();
    let (busy_percent, serving) = pace.unwrap_or((100, ServingClocks::default()));
    let mut pace = super::control_pace::Pace::new(busy_percent, serving);
    loop {
        if turns.is_empty() {
            match rx.recv() {
                Ok(s) => turns.push(s.principal, s.job),
                Err(_) => return,
            }
        }
        while let Ok(s) = rx.try_recv() {
            turns.push(s.principal, s.job);
        }
        if let Some(job) = turns.next() {
            // A job that panics (a bug) ends alone: the lane goes on with every other
            // principal's jobs. (The jobs of the socket and the HTTP endpoint answer even
            // then: `Deferred::run`, `http::Control::submit`.)
            let ran = pace.run(|| std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)));
            if ran.is_err() {
                tracing::error!("a control-plane job panicked; its lane goes on");
            }
        }
    }
}

/// Starts a lane's thread, `nice` steps below the caller's priority (see `priority`).
fn start_lane(
    name: &str,
    nice: u32,
    pace: Option<(u32, ServingClocks)>,
) -> Result<(Sender<Submitted>, JoinHandle<()>)> {
    let (tx, rx) = crossbeam::channel::unbounded::<Submitted>();
    let thread = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            if nice > 0 {
                if let Err(e) = super::priority::lower_this_thread(nice) {
                    // It then competes with the loops as an equal: slower data-plane calls
                    // beside control-plane work, nothing wrong.
                    tracing::warn!(error = %e, "cannot lower a control thread's priority");
                }
            }
            serve(rx, pace)
        })
        .map_err(|e| err!(KMSInternalException, "cannot start the {name} thread: {e}"))?;
    Ok((tx, thread))
}

/// The threads; [`ControlThread::join`] waits for the jobs queued before it.
pub(super) struct ControlThread {
    queue: ControlQueue,
    threads: [JoinHandle<()>; 2],
}

/// A loop's way to the control threads.
#[derive(Clone)]
pub(super) struct ControlQueue {
    state: Sender<Submitted>,
    rsa: Sender<Submitted>,
    /// Where a serving thread adds its CPU clock for the state lane's pace.
    serving: ServingClocks,
}

impl ControlThread {
    /// Starts both lanes' threads, `nice` steps below the caller's CPU priority
    /// (`control_nice`).
    #[cfg(test)]
    pub(super) fn start(nice: u32) -> Result<ControlThread> {
        Self::start_paced(nice, 100)
    }

    /// [`ControlThread::start`], the state lane taking at most `busy_percent` of a core while
    /// the cores are contended (`control_busy_percent`, see `control_pace`); the RSA lane is
    /// not paced.
    pub(super) fn start_paced(nice: u32, busy_percent: u32) -> Result<ControlThread> {
        let serving = ServingClocks::default();
        let paced = Some((busy_percent, serving.clone()));
        let (state, state_thread) = start_lane("kmscksd-control", nice, paced)?;
        let (rsa, rsa_thread) = start_lane("kmscksd-rsa", nice, None)?;
        Ok(ControlThread {
            queue: ControlQueue {
                state,
                rsa,
                serving,
            },
            threads: [state_thread, rsa_thread],
        })
    }

    /// A queue to hand to a loop.
    pub(super) fn queue(&self) -> ControlQueue {
        self.queue.clone()
    }

    /// Runs what was queued, then ends: once every loop holding a [`ControlQueue`] has
    /// dropped it (each thread ends when the last sender of its lane goes).
    pub(super) fn join(self) {
        drop(self.queue);
        for t in self.threads {
            let _ = t.join();
        }
    }
}

impl ControlQueue {
    /// Counts the calling thread, which serves the data plane (an event loop, the HTTP
    /// endpoint's), in what makes the data plane busy for the state lane's pace.
    pub(super) fn serving_thread(&self) {
        self.serving.add_this_thread();
    }

    /// The sender of `lane`.
    fn lane(&self, lane: Lane) -> &Sender<Submitted> {
        match lane {
            Lane::State => &self.state,
            Lane::Rsa => &self.rsa,
        }
    }

    /// Jobs submitted to `lane` that its thread has not taken in yet: it takes in what was
    /// submitted only between two jobs, so while a job runs, those submitted since.
    #[cfg(test)]
    pub(super) fn submitted(&self, lane: Lane) -> usize {
        self.lane(lane).len()
    }

    /// Queues `job`, a request of `principal`'s, on `lane`; false if the lane's thread is gone
    /// (the job is dropped unrun).
    pub(super) fn submit(&self, lane: Lane, principal: &str, job: Job) -> bool {
        self.lane(lane)
            .send(Submitted {
                principal: principal.into(),
                job,
            })
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A job that says it started, waits until `release` is sent (or dropped), then reports
    /// `name`.
    fn gated(
        name: &'static str,
        started: Sender<()>,
        release: Receiver<()>,
        done: Sender<&'static str>,
    ) -> Job {
        Box::new(move || {
            let _ = started.send(());
            let _ = release.recv();
            let _ = done.send(name);
        })
    }

    fn reporting(name: &'static str, done: &Sender<&'static str>) -> Job {
        let done = done.clone();
        Box::new(move || {
            let _ = done.send(name);
        })
    }

    #[test]
    fn a_job_that_panics_ends_alone_and_the_lane_serves_the_next() {
        let control = ControlThread::start(0).unwrap();
        let q = control.queue();
        let (done_tx, done_rx) = crossbeam::channel::unbounded();
        assert!(q.submit(
            Lane::State,
            "uid-a",
            Box::new(|| panic!("a bug in a control-plane job"))
        ));
        assert!(q.submit(Lane::State, "uid-b", reporting("b1", &done_tx)));
        assert_eq!(done_rx.recv_timeout(Duration::from_secs(10)), Ok("b1"));
        drop(q);
        control.join();
    }

    #[test]
    fn a_principals_backlog_delays_anothers_request_by_one_job_not_all_of_them() {
        let control = ControlThread::start(0).unwrap();
        let q = control.queue();
        let (done_tx, done_rx) = crossbeam::channel::unbounded();
        let (release_tx, release_rx) = crossbeam::channel::bounded::<()>(0);
        let (started_tx, started_rx) = crossbeam::channel::bounded::<()>(1);
        // Hold the state lane while both principals queue their requests.
        assert!(q.submit(
            Lane::State,
            "uid-a",
            gated("a0", started_tx, release_rx, done_tx.clone())
        ));
        started_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        for name in ["a1", "a2", "a3"] {
            assert!(q.submit(Lane::State, "uid-a", reporting(name, &done_tx)));
        }
        assert!(q.submit(Lane::State, "uid-b", reporting("b1", &done_tx)));
        release_tx.send(()).unwrap();
        let order: Vec<&str> = (0..5)
            .map(|_| done_rx.recv_timeout(Duration::from_secs(10)).unwrap())
            .collect();
        // uid-a queued first, so its turn comes first; then the two alternate, and uid-b's one
        // request waits for one of uid-a's three, not for all of them (first come, first
        // served would give a0 a1 a2 a3 b1).
        assert_eq!(order, ["a0", "a1", "b1", "a2", "a3"]);
        drop(q);
        control.join();
    }

    #[test]
    fn both_lanes_run_their_jobs_the_given_steps_below_the_starting_threads_priority() {
        let nice = crate::daemon::priority::this_thread_nice().unwrap();
        let control = ControlThread::start(4).unwrap();
        let q = control.queue();
        let (tx, rx) = crossbeam::channel::unbounded();
        for lane in [Lane::State, Lane::Rsa] {
            let tx = tx.clone();
            let job: Job = Box::new(move || {
                let _ = tx.send(crate::daemon::priority::this_thread_nice().unwrap());
            });
            assert!(q.submit(lane, "uid-a", job));
        }
        let expected = (nice + 4).min(crate::daemon::priority::MAX_NICE as i32);
        for _ in 0..2 {
            assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), expected);
        }
        assert_eq!(crate::daemon::priority::this_thread_nice().unwrap(), nice);
        drop(q);
        control.join();
    }

    #[test]
    fn a_key_generation_in_progress_does_not_hold_up_the_state_lane() {
        let control = ControlThread::start(0).unwrap();
        let q = control.queue();
        let (done_tx, done_rx) = crossbeam::channel::unbounded();
        let (release_tx, release_rx) = crossbeam::channel::bounded::<()>(0);
        let (started_tx, started_rx) = crossbeam::channel::bounded::<()>(1);
        assert!(q.submit(
            Lane::Rsa,
            "uid-a",
            gated("pair", started_tx, release_rx, done_tx.clone())
        ));
        started_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert!(q.submit(Lane::State, "uid-a", reporting("create", &done_tx)));
        // The CreateKey is answered while the key generation still runs.
        assert_eq!(
            done_rx.recv_timeout(Duration::from_secs(10)).unwrap(),
            "create"
        );
        release_tx.send(()).unwrap();
        assert_eq!(
            done_rx.recv_timeout(Duration::from_secs(10)).unwrap(),
            "pair"
        );
        drop(q);
        control.join();
    }

    #[test]
    fn rsa_private_key_work_has_its_lane_the_control_plane_another_and_the_rest_none() {
        use crate::api::kms::*;
        use crate::types::{EncryptionAlgorithm as E, SigningAlgorithm as S};
        let decrypt = |alg| {
            Request::Decrypt(DecryptRequest {
                encryption_algorithm: alg,
                ..Default::default()
            })
        };
        let sign = |alg| {
            Request::Sign(SignRequest {
                signing_algorithm: alg,
                ..Default::default()
            })
        };
        let create_key = |key_spec, customer_master_key_spec| {
            Request::CreateKey(CreateKeyRequest {
                key_spec,
                customer_master_key_spec,
                ..Default::default()
            })
        };
        let re_encrypt = |source, destination| {
            Request::ReEncrypt(ReEncryptRequest {
                source_encryption_algorithm: source,
                destination_encryption_algorithm: destination,
                ..Default::default()
            })
        };
        let rsa = [
            Request::GenerateDataKeyPair(Default::default()),
            Request::GenerateDataKeyPairWithoutPlaintext(Default::default()),
            Request::GetParametersForImport(Default::default()),
            decrypt(Some(E::RsaesOaepSha256)),
            decrypt(Some(E::RsaesOaepSha1)),
            re_encrypt(Some(E::RsaesOaepSha1), None),
            sign(Some(S::RsassaPssSha256)),
            sign(Some(S::RsassaPkcs1V15Sha512)),
            create_key(Some(KeySpec::Rsa4096), None),
            create_key(None, Some(KeySpec::Rsa2048)),
        ];
        for r in &rsa {
            assert_eq!(Lane::of(r), Some(Lane::Rsa), "{:?}", r.op());
        }
        let state = [
            Request::CreateKey(Default::default()),
            create_key(Some(KeySpec::EccNistP256), None),
            create_key(Some(KeySpec::Hmac256), None),
            Request::ImportKeyMaterial(Default::default()),
            Request::DescribeKey(Default::default()),
        ];
        for r in &state {
            assert_eq!(Lane::of(r), Some(Lane::State), "{:?}", r.op());
        }
        let event_loop = [
            decrypt(None),
            decrypt(Some(E::SymmetricDefault)),
            re_encrypt(None, Some(E::RsaesOaepSha256)),
            sign(Some(S::EcdsaSha256)),
            sign(None),
            Request::Encrypt(EncryptRequest {
                encryption_algorithm: Some(E::RsaesOaepSha256),
                ..Default::default()
            }),
            Request::Verify(VerifyRequest {
                signing_algorithm: Some(S::RsassaPssSha256),
                ..Default::default()
            }),
            Request::GenerateDataKey(Default::default()),
        ];
        for r in &event_loop {
            assert_eq!(Lane::of(r), None, "{:?}", r.op());
        }
    }
}
