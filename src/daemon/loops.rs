//! The daemon's event loops together: `event_loops` of them, built and run here, and what they
//! share ([`Shared`]); each loop itself is [`super::event_loop`].
//!
//! Why several: one loop is one core's worth of decoding, engine batches and syscalls, and
//! with many connections the other core sits idle while answers queue behind each other in
//! that loop. Each loop owns its poller, connections, batcher, helpers' completions and waker;
//! nothing of a connection is shared once it is handed over. The first loop accepts every
//! connection and hands each to the loop serving the fewest (itself included). What the loops
//! share is each loop's mailbox and waker (accepted connections, completions, wakes: [`Mail`]),
//! how many connections each serves, and the per-uid quotas, which are the daemon's, not a
//! loop's (a uid's connections and memory are counted across every loop; a connection stalled
//! for its uid's memory on one loop is woken through its loop's mailbox when memory is freed on
//! another). Control-plane requests go to the control threads from every loop, their answers
//! back to the loop that sent them (each job captures its loop's mailbox and waker).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crossbeam::channel::Sender;
use mio::net::UnixStream;
use mio::Waker;

use super::control_thread::ControlQueue;
use super::event_loop::{Completion, EventLoop, Unshared};
use super::identity::{self, Peer};
use super::listener::Listener;
use super::quota::Quotas;
use super::{DaemonConfig, Shutdown};
use crate::err;
use crate::error::Result;
use crate::Kms;

/// What reaches a loop from other threads, followed by a wake of its waker.
pub(super) enum Mail {
    /// A reply computed off the loop.
    Done(Completion),
    /// A connection the first loop accepted (and counted in the quotas) for this one.
    Admit(UnixStream, Peer),
    /// A connection of this loop stalled for its uid's memory: memory was freed elsewhere.
    Wake(usize),
}

/// A stalled connection waiting for its uid's memory: (loop, slot).
pub(super) type Waiter = (usize, usize);

/// One loop as the other threads see it.
struct Door {
    mail: Sender<Mail>,
    waker: Arc<Waker>,
    /// Connections handed to this loop and not yet closed.
    conns: AtomicUsize,
}

impl Door {
    /// Posts `mail`; gives it back when the loop is gone (shut down).
    fn post(&self, mail: Mail) -> std::result::Result<(), Mail> {
        self.mail.send(mail).map_err(|e| e.0)?;
        let _ = self.waker.wake();
        Ok(())
    }
}

/// What the loops share (see the module doc).
pub(super) struct Shared {
    doors: Vec<Door>,
    quotas: Mutex<Quotas<Waiter>>,
}

impl Shared {
    pub(super) fn quotas(&self) -> MutexGuard<'_, Quotas<Waiter>> {
        // A loop that panicked holding the lock left the counts as they were: go on with them.
        self.quotas.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many connections each loop serves, in loop order.
    #[cfg(test)]
    pub(super) fn conns_per_loop(&self) -> Vec<usize> {
        self.doors
            .iter()
            .map(|d| d.conns.load(Ordering::SeqCst))
            .collect()
    }

    /// Hands a connection accepted by loop `from` (and counted in the quotas) to the loop
    /// serving the fewest (the first of those), counting it there. Gives it back when that
    /// loop is `from` itself, for it to serve.
    pub(super) fn hand_over(
        &self,
        from: usize,
        stream: UnixStream,
        peer: Peer,
    ) -> Option<(UnixStream, Peer)> {
        let to = (0..self.doors.len())
            .min_by_key(|&i| self.doors[i].conns.load(Ordering::SeqCst))
            .unwrap_or(0);
        self.doors[to].conns.fetch_add(1, Ordering::SeqCst);
        if to == from {
            return Some((stream, peer));
        }
        if let Err(Mail::Admit(_, peer)) = self.doors[to].post(Mail::Admit(stream, peer)) {
            // That loop has ended (shutting down): the connection is closed unserved.
            self.closed(to, peer.uid);
        }
        None
    }

    /// Uncounts a connection of `uid` loop `at` served (its memory already uncharged).
    pub(super) fn closed(&self, at: usize, uid: u32) {
        self.quotas().release(uid);
        self.doors[at].conns.fetch_sub(1, Ordering::SeqCst);
    }

    /// Posts `mail` to loop `to`; gives it back when that loop is gone (shut down).
    pub(super) fn post(&self, to: usize, mail: Mail) -> std::result::Result<(), Mail> {
        match self.doors.get(to) {
            Some(door) => door.post(mail),
            None => Err(mail),
        }
    }
}

/// Builds `n` loops (at least one) sharing the quotas; the first holds `listener`. Each loop's
/// waker is given to `shutdown`.
pub(super) fn build(
    n: usize,
    listener: Listener,
    kms: Kms,
    config: DaemonConfig,
    shutdown: &Shutdown,
    control: &ControlQueue,
) -> Result<(Vec<EventLoop>, Arc<Shared>)> {
    let n = n.max(1);
    let unshared = (0..n)
        .map(|_| Unshared::new(shutdown))
        .collect::<Result<Vec<_>>>()?;
    let shared = Arc::new(Shared {
        doors: unshared
            .iter()
            .map(|u| {
                let (mail, waker) = u.door();
                Door {
                    mail,
                    waker,
                    conns: AtomicUsize::new(0),
                }
            })
            .collect(),
        quotas: Mutex::new(Quotas::new(&config, identity::daemon_uid())),
    });
    let mut listener = Some(listener);
    let mut loops = Vec::with_capacity(n);
    for (index, u) in unshared.into_iter().enumerate() {
        loops.push(u.share(
            index,
            shared.clone(),
            listener.take(),
            kms.clone(),
            config.clone(),
            control.clone(),
        )?);
    }
    Ok((loops, shared))
}

/// Runs `loops` until `shutdown`: the first on this thread, the others on threads of their
/// own (`kmscksd-loop-<i>`), each finishing its own connections; returns once all have ended,
/// with the first error any returned.
pub(super) fn serve(loops: Vec<EventLoop>, shutdown: &Shutdown) -> Result<()> {
    let mut loops = loops.into_iter();
    let Some(first) = loops.next() else {
        return Ok(());
    };
    let mut threads = Vec::new();
    for l in loops {
        let index = l.index();
        let s = shutdown.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("kmscksd-loop-{index}"))
            .spawn(move || l.run(&s));
        match spawned {
            Ok(t) => threads.push(t),
            Err(e) => {
                // The loops already running stop too: a daemon short of a loop would leave the
                // connections handed to it unserved.
                shutdown.trigger();
                let _ = first.run(shutdown);
                for t in threads {
                    let _ = t.join();
                }
                return Err(err!(
                    KMSInternalException,
                    "cannot start event loop {index}: {e}"
                ));
            }
        }
    }
    let mut out = first.run(shutdown);
    for t in threads {
        let joined = t
            .join()
            .unwrap_or_else(|_| Err(err!(KMSInternalException, "an event loop panicked")));
        out = out.and(joined);
    }
    out
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream as Client;
    use std::time::{Duration, Instant};

    use super::*;
    use crate::api::kms::{BatchRequest, CreateKeyRequest, EncryptRequest, GenerateRandomRequest};
    use crate::daemon::control_thread::{self, Lane};
    use crate::daemon::dispatch;
    use crate::daemon::quota::CONN_FLOOR;
    use crate::ops::Request;
    use crate::ops::{Op, Response};
    use crate::protocol;
    use crate::protocol::{Header, HEADER_LEN, MAX_BODY};

    /// A daemon's loops serving `config` on a fresh socket, on a thread of their own.
    struct Served {
        _dir: tempfile::TempDir,
        socket: std::path::PathBuf,
        shared: Arc<Shared>,
        shutdown: Shutdown,
        thread: Option<std::thread::JoinHandle<Result<()>>>,
        control: Option<control_thread::ControlThread>,
    }

    impl Served {
        fn start(config: DaemonConfig) -> Served {
            let dir = tempfile::tempdir().unwrap();
            let socket = dir.path().join("k.sock");
            let listener = Listener::bind(&socket, 0o600, None).unwrap();
            let shutdown = Shutdown::new();
            let control = control_thread::ControlThread::start(0).unwrap();
            let (loops, shared) = build(
                config.event_loop_count(),
                listener,
                Kms::in_memory(),
                config,
                &shutdown,
                &control.queue(),
            )
            .unwrap();
            let s = shutdown.clone();
            let thread = std::thread::spawn(move || serve(loops, &s));
            Served {
                _dir: dir,
                socket,
                shared,
                shutdown,
                thread: Some(thread),
                control: Some(control),
            }
        }

        /// A connection whose Hello was answered.
        fn connect(&self) -> Client {
            let mut c = Client::connect(&self.socket).unwrap();
            c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
            let mut out = Vec::new();
            protocol::encode_hello(
                &mut out,
                0,
                &protocol::Hello {
                    version: protocol::VERSION,
                    client: "event_loop tests".into(),
                },
            );
            c.write_all(&out).unwrap();
            let (h, _) = read_frame(&mut c);
            assert_eq!(h.op, protocol::OP_HELLO);
            c
        }
    }

    impl Drop for Served {
        fn drop(&mut self) {
            self.shutdown.trigger();
            if let Some(t) = self.thread.take() {
                let out = t.join();
                if !std::thread::panicking() {
                    out.expect("no loop panicked")
                        .expect("the loops stop cleanly");
                }
            }
            if let Some(c) = self.control.take() {
                c.join();
            }
        }
    }

    fn read_frame(c: &mut Client) -> (Header, Vec<u8>) {
        let mut head = [0u8; HEADER_LEN];
        c.read_exact(&mut head).expect("a reply frame");
        let h = protocol::parse_header(&head).unwrap().unwrap();
        let mut body = vec![0u8; h.body_len as usize];
        c.read_exact(&mut body).expect("a reply body");
        (h, body)
    }

    /// `n` GenerateRandom frames of a KiB each, ids 1 to `n`.
    fn random_frames(n: u64) -> Vec<u8> {
        let mut frames = Vec::new();
        for id in 1..=n {
            let r = Request::GenerateRandom(GenerateRandomRequest {
                number_of_bytes: Some(1024),
                ..Default::default()
            });
            protocol::encode_request(&mut frames, id, &r);
        }
        frames
    }

    /// Waits (up to a minute) for `what` to hold, checking it every millisecond.
    fn until(what: &str, mut holds: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !holds() {
            assert!(Instant::now() < deadline, "timed out waiting until {what}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn connections_are_spread_over_the_loops_each_counted_by_the_loop_serving_it() {
        let served = Served::start(DaemonConfig {
            event_loops: 2,
            ..DaemonConfig::default()
        });
        let a = served.connect();
        let _b = served.connect();
        assert_eq!(served.shared.conns_per_loop(), [1, 1]);
        let _c = served.connect();
        assert_eq!(served.shared.conns_per_loop(), [2, 1]);
        // Only the loop serving a connection uncounts it when it closes.
        drop(a);
        until("the first loop has closed its connection", || {
            served.shared.conns_per_loop() == [1, 1]
        });
    }

    #[test]
    fn a_connection_stalled_for_its_uids_memory_on_one_loop_is_woken_when_another_frees_it() {
        let largest = HEADER_LEN + MAX_BODY as usize;
        let served = Served::start(DaemonConfig {
            event_loops: 2,
            max_memory_per_uid: 2 * largest,
            max_pending_reply_bytes: 64 << 20,
            max_in_flight: 1 << 20,
            ..DaemonConfig::default()
        });
        let uid = identity::daemon_uid();

        // A (on the first loop) asks for 4 MiB of replies and reads none: past the socket's
        // buffers they fill the uid's quota.
        let mut a = served.connect();
        let requests = 4096;
        let frames = random_frames(requests);
        let mut a_writer = a.try_clone().unwrap();
        let writing_a = std::thread::spawn(move || a_writer.write_all(&frames));
        until("the uid's memory quota is full", || {
            served.shared.quotas().room(uid) == 0
        });

        // B (on the second loop) sends a frame larger than its floor: it is read up to the
        // floor and waits for its uid's memory.
        let mut b = served.connect();
        assert_eq!(served.shared.conns_per_loop(), [1, 1]);
        let batch = Request::EncryptBatch(BatchRequest {
            items: (0..24)
                .map(|_| EncryptRequest {
                    key_id: "alias/none".into(),
                    plaintext: crate::secret::SecretBytes::new(vec![7; 4096]),
                    ..Default::default()
                })
                .collect(),
        });
        let mut frame = Vec::new();
        protocol::encode_request(&mut frame, 9, &batch);
        assert!(frame.len() > CONN_FLOOR);
        let mut b_writer = b.try_clone().unwrap();
        let writing_b = std::thread::spawn(move || b_writer.write_all(&frame));
        until("B waits for its uid's memory on the second loop", || {
            served.shared.quotas().waiting(uid).iter().any(|w| w.0 == 1)
        });

        // A reads its replies: the first loop frees the uid's memory, and B goes on.
        for _ in 0..requests {
            let (h, _) = read_frame(&mut a);
            assert_eq!(h.op, Op::GenerateRandom.code());
        }
        writing_a.join().unwrap().unwrap();
        writing_b.join().unwrap().unwrap();
        let (h, body) = read_frame(&mut b);
        assert_eq!(h.request_id, 9);
        match protocol::decode_response(&h, &body).unwrap() {
            Ok(Response::EncryptBatch(r)) => assert_eq!(r.results.len(), 24),
            other => panic!("not an EncryptBatch answer: {other:?}"),
        }
    }

    #[test]
    fn a_control_call_queued_when_its_connection_closes_stays_charged_until_its_lane_drops_it_unrun(
    ) {
        let config = DaemonConfig {
            max_in_flight: 1 << 20,
            ..DaemonConfig::default()
        };
        let held_cap = config.max_memory_per_uid / 2;
        let served = Served::start(config);
        let uid = identity::daemon_uid();
        let full = served.shared.quotas().room(uid);
        let all_closed = || served.shared.conns_per_loop().iter().sum::<usize>() == 0;

        // A job holds the state lane until released.
        let lane = served
            .control
            .as_ref()
            .expect("the control threads run until the test ends")
            .queue();
        let (started_tx, started_rx) = crossbeam::channel::bounded::<()>(1);
        let (release_tx, release_rx) = crossbeam::channel::bounded::<()>(0);
        let gate: control_thread::Job = Box::new(move || {
            let _ = started_tx.send(());
            let _ = release_rx.recv();
        });
        assert!(lane.submit(Lane::State, "the gate", gate));
        started_rx.recv().expect("the gate runs");

        // More replies than the socket's buffers take, which the client never reads (so that
        // the loop has some to write when the client goes), then a CreateKey charged more
        // than a connection's floor.
        let mut c = served.connect();
        let mut frames = random_frames(1000);
        let at = frames.len();
        let create = Request::CreateKey(CreateKeyRequest {
            description: Some("d".repeat(4000)),
            ..Default::default()
        });
        protocol::encode_request(&mut frames, 1001, &create);
        let held = dispatch::held_charge(frames.len() - at, held_cap);
        assert!(held > CONN_FLOOR);
        c.write_all(&frames).unwrap();
        until("the CreateKey waits for the state lane", || {
            lane.submitted(Lane::State) == 1
        });

        // The client goes: writing its replies fails, and the loop closes the connection. The
        // call still holds its memory, and its uid stays charged for it.
        drop(c);
        until("the connection is closed", all_closed);
        assert_eq!(served.shared.quotas().room(uid), full - held);

        // Released, the lane drops the call unrun and its charge is given back.
        release_tx.send(()).expect("the gate waits for its release");
        until("the call's charge is given back", || {
            served.shared.quotas().room(uid) == full
        });
        let mut c = served.connect();
        let mut list = Vec::new();
        protocol::encode_request(&mut list, 1, &Request::ListKeys(Default::default()));
        c.write_all(&list).unwrap();
        let (h, body) = read_frame(&mut c);
        match protocol::decode_response(&h, &body).unwrap() {
            Ok(Response::ListKeys(r)) => assert!(r.keys.is_empty(), "the CreateKey ran: {r:?}"),
            other => panic!("not a ListKeys answer: {other:?}"),
        }
    }

    #[test]
    fn a_turn_accepts_a_capped_number_of_waiting_connections_after_serving_those_already_there() {
        use crate::daemon::quota::ACCEPTS_PER_TURN;
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("k.sock");
        let listener = Listener::bind(&socket, 0o600, None).unwrap();
        let control = control_thread::ControlThread::start(0).unwrap();
        // One loop, not running: this thread drives its turns.
        let (loops, shared) = build(
            1,
            listener,
            Kms::in_memory(),
            DaemonConfig::default(),
            &Shutdown::new(),
            &control.queue(),
        )
        .unwrap();
        let [mut event_loop] = <[EventLoop; 1]>::try_from(loops)
            .unwrap_or_else(|_| unreachable!("one loop was asked for"));
        let mut events = mio::Events::with_capacity(1024);

        // A connection accepted, then sending its Hello and a request.
        let mut there = Client::connect(&socket).unwrap();
        event_loop.turn(&mut events).unwrap();
        assert_eq!(shared.conns_per_loop(), [1]);
        let mut frames = Vec::new();
        let hello = protocol::Hello {
            version: protocol::VERSION,
            client: "event_loop tests".into(),
        };
        protocol::encode_hello(&mut frames, 0, &hello);
        frames.extend(random_frames(1));
        there.write_all(&frames).unwrap();

        // More connections waiting than a turn accepts.
        let waiting: Vec<Client> = (0..ACCEPTS_PER_TURN + 8)
            .map(|_| Client::connect(&socket).unwrap())
            .collect();
        event_loop.turn(&mut events).unwrap();
        // That turn answered the connection already there (the answers are written: read
        // without waiting) and accepted no more than its cap.
        there.set_nonblocking(true).unwrap();
        assert_eq!(read_frame(&mut there).0.op, protocol::OP_HELLO);
        assert_eq!(read_frame(&mut there).0.request_id, 1);
        assert_eq!(shared.conns_per_loop(), [1 + ACCEPTS_PER_TURN]);
        // The next turn accepts the rest, though the listener reports no new readiness.
        event_loop.turn(&mut events).unwrap();
        assert_eq!(shared.conns_per_loop(), [1 + waiting.len()]);
        drop(event_loop);
        control.join();
    }
}
