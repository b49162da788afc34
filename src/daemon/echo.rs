//! The socket floor: an echo server that speaks the protocol's framing and answers every
//! request frame with one fixed reply frame, so a load generator or a bench can measure
//! "everything except the daemon's work" (socket syscalls, framing, client-side decoding)
//! with the same client code it points at a daemon.
//!
//! It waits for requests as the daemon's loops do ([`super::wake`]: spin, then park), so that
//! it is the best round trip this machine gives: a floor that parked in a blocking `read`
//! while the daemon spins would be slower than the daemon and the ratio against it would
//! prove nothing. Up to one connection per core, each connection has a thread of its own
//! spinning on its socket (nothing is faster); with more connections than cores, as many
//! threads as cores each serve their share through a mio poller, as the daemon's event loops
//! do — a thread per connection would then have more threads spinning than cores, and the
//! floor would lose to the daemon. It is public because both `kmscks bench` and
//! `benches/socket_roundtrip.rs` measure against it.
//!
//! It also tells the CPU time its serving threads use ([`EchoServer::cpu_ns`]): what serving
//! the same frames costs a server that does no work on them and waits as the daemon waits, so
//! that a bench can show how much of the daemon's CPU per request is its own work. Where a
//! serving thread has a core to itself it spins there while its client is the slower side,
//! and that spin is then most of the figure, as it is of the daemon's.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam::channel::{Receiver, Sender};
use mio::{Events, Interest, Poll, Token};

use super::wake::{Spin, SpinStream};
use crate::error::{ErrorKind, KmsError, Result};
use crate::protocol::{encode_hello_reply, split_frame, HelloReply, MAX_BODY, OP_HELLO, VERSION};

/// An echo server on a Unix socket in a temporary directory: it answers every request frame
/// with `reply` (a whole reply frame) with the request id patched in, writing the replies to
/// each read's frames in one write. Stops when dropped.
pub struct EchoServer {
    dir: PathBuf,
    path: PathBuf,
    stop: Arc<AtomicBool>,
    ledger: Arc<Ledger>,
}

impl EchoServer {
    /// Starts the server with a thread per connection; `reply` is the full reply frame
    /// (header and body).
    pub fn start(reply: Vec<u8>) -> Result<EchoServer> {
        EchoServer::start_for(reply, 1)
    }

    /// Starts the server for a load of `connections` connections: a thread per connection
    /// when they are no more than the cores, else one polling thread per core, connections
    /// dealt to them in turn (see the module doc).
    pub fn start_for(reply: Vec<u8>, connections: usize) -> Result<EchoServer> {
        let dir = std::env::temp_dir().join(format!(
            "kmscks-echo-{}-{}",
            std::process::id(),
            crate::types::KeyId::generate()
        ));
        std::fs::create_dir_all(&dir).map_err(|e| io_err(&dir, &e))?;
        let path = dir.join("echo.sock");
        let listener = UnixListener::bind(&path).map_err(|e| io_err(&path, &e))?;
        let stop = Arc::new(AtomicBool::new(false));
        let (reply, stop2) = (Arc::new(reply), stop.clone());
        let ledger = Arc::new(Ledger::default());
        let cores = thread::available_parallelism().map_or(1, |n| n.get());
        let loops: Vec<Sender<UnixStream>> = if connections > cores {
            (0..cores)
                .map(|_| {
                    let (tx, rx) = crossbeam::channel::unbounded();
                    let (reply, stop, ledger) = (reply.clone(), stop.clone(), ledger.clone());
                    thread::spawn(move || {
                        let _booked = ledger.enter();
                        echo_loop(&rx, &reply, &stop);
                    });
                    tx
                })
                .collect()
        } else {
            Vec::new()
        };
        let ledger2 = ledger.clone();
        thread::spawn(move || {
            for (i, s) in listener.incoming().enumerate() {
                if stop2.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(s) = s else { continue };
                match loops.get(i % loops.len().max(1)) {
                    Some(lp) => {
                        let _ = lp.send(s);
                    }
                    None => {
                        let (reply, ledger) = (reply.clone(), ledger2.clone());
                        thread::spawn(move || {
                            let _booked = ledger.enter();
                            echo_conn(s, &reply);
                        });
                    }
                }
            }
        });
        Ok(EchoServer {
            dir,
            path,
            stop,
            ledger,
        })
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Nanoseconds of CPU the threads serving connections have used so far, those that ended
    /// too (a connection closed mid-window keeps its thread's time in the sum); the thread
    /// accepting connections is not counted. `None` where Linux's `/proc` does not tell a
    /// thread's CPU time (`/proc/<pid>/task/<tid>/schedstat`).
    pub fn cpu_ns(&self) -> Option<u64> {
        self.ledger.cpu_ns()
    }
}

/// The CPU time of the server's serving threads: each books itself in as it starts and books
/// its last reading as it ends, so that the sum holds every thread that ever served.
#[derive(Default)]
struct Ledger(Mutex<Books>);

/// What a [`Ledger`] holds, under its lock.
struct Books {
    /// The `/proc` task directory of every serving thread still running (each names its
    /// thread: no two live threads share one).
    live: Vec<PathBuf>,
    /// What the threads that ended had used; `None` once a thread could not be read (then
    /// the ledger tells nothing, rather than a part).
    ended_ns: Option<u64>,
}

/// A serving thread's booking: takes its time to the ended threads' when dropped.
struct Booked<'a> {
    ledger: &'a Ledger,
    /// The thread's task directory, as booked in `live` (`None`: not told).
    task: Option<PathBuf>,
}

impl Ledger {
    /// Books the calling thread in.
    fn enter(&self) -> Booked<'_> {
        let task = own_task();
        let mut books = self.books();
        match &task {
            Some(task) => books.live.push(task.clone()),
            None => books.ended_ns = None,
        }
        Booked { ledger: self, task }
    }

    /// The time on a CPU of every thread booked so far, ns.
    fn cpu_ns(&self) -> Option<u64> {
        let books = self.books();
        let live = books.live.iter().map(|task| task_cpu_ns(task));
        live.sum::<Option<u64>>()?.checked_add(books.ended_ns?)
    }

    fn books(&self) -> std::sync::MutexGuard<'_, Books> {
        // A thread that panicked while booking left the books whole (each change is one
        // push, one removal or one addition): they stay readable.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Default for Books {
    fn default() -> Books {
        Books {
            live: Vec::new(),
            ended_ns: Some(0),
        }
    }
}

impl Drop for Booked<'_> {
    fn drop(&mut self) {
        let Some(task) = &self.task else { return };
        // The thread's own last reading, brought up to date (see `own_task`).
        thread::yield_now();
        let mut books = self.ledger.books();
        if let Some(at) = books.live.iter().position(|t| t == task) {
            books.live.swap_remove(at);
            let ended = task_cpu_ns(task);
            books.ended_ns = books.ended_ns.zip(ended).map(|(a, b)| a + b);
        }
    }
}

/// The calling thread's `/proc` task directory (`/proc/<pid>/task/<tid>`, from
/// `/proc/thread-self`), when its CPU time can be read there: `None` without `/proc`, and on
/// kernels that print zeros in `schedstat` (without scheduler statistics), where a thread
/// that has run reads 0 once its time is brought up to date.
///
/// A thread's `schedstat` holds its time as of the kernel's last update of it: a running
/// thread's current slice is added at its next tick, switch or yield. Another thread's
/// reading may lag by up to a tick (and catches up on the next); a thread's own reading after
/// `yield_now` is current, which is how an ending thread books its last one.
fn own_task() -> Option<PathBuf> {
    let task = Path::new("/proc").join(std::fs::read_link("/proc/thread-self").ok()?);
    thread::yield_now();
    (task_cpu_ns(&task)? > 0).then_some(task)
}

/// Nanoseconds of CPU the thread whose `/proc` task directory is `task` has used (the first
/// field of its `schedstat`; see [`own_task`] for how current it is).
fn task_cpu_ns(task: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(task.join("schedstat")).ok()?;
    text.split_whitespace().next()?.parse().ok()
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop so it sees the flag.
        let _ = UnixStream::connect(&self.path);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn io_err(path: &Path, e: &std::io::Error) -> KmsError {
    KmsError::new(
        ErrorKind::StorageException,
        format!("echo server at {}: {e}", path.display()),
    )
}

/// What one connection has read and not yet answered.
struct Input {
    buf: Vec<u8>,
    have: usize,
}

impl Input {
    fn new() -> Input {
        Input {
            buf: vec![0u8; 256 * 1024],
            have: 0,
        }
    }

    /// Where the next read goes (the buffer doubles when full).
    fn room(&mut self) -> &mut [u8] {
        if self.have == self.buf.len() {
            self.buf.resize(self.buf.len() * 2, 0);
        }
        &mut self.buf[self.have..]
    }

    /// Answers the whole frames read, at most `chunk` of them, into `out`: `None` when the
    /// input is not a frame, else whether whole frames are left to answer, and how many were
    /// answered. The daemon's loops write a connection's replies after each chunk of work (a
    /// pipelining client decodes the first answers while the next are computed), and a floor
    /// that wrote less often would lose that overlap and prove nothing: `chunk` is the loops'
    /// ([`Spin::chunk_work`]), a small request (a GenerateDataKey, an Encrypt under 1 KiB)
    /// being one of their work units.
    fn answer(&mut self, reply: &[u8], out: &mut Vec<u8>, chunk: usize) -> Option<(bool, usize)> {
        let (mut at, mut answered) = (0, 0);
        while answered < chunk {
            let Ok(Some((h, _, used))) = split_frame(&self.buf[at..self.have]) else {
                break;
            };
            answered += 1;
            if h.op == OP_HELLO {
                let hello = HelloReply {
                    version: VERSION,
                    server: "kmscks-echo".into(),
                    max_body: MAX_BODY,
                    max_in_flight: u32::MAX,
                    principal: String::new(),
                };
                encode_hello_reply(out, h.request_id, &hello);
                at += used;
                continue;
            }
            let start = out.len();
            out.extend_from_slice(reply);
            out[start + 8..start + 16].copy_from_slice(&h.request_id.to_le_bytes());
            at += used;
        }
        let more = match split_frame(&self.buf[at..self.have]) {
            Err(_) => return None,
            Ok(next) => next.is_some(),
        };
        self.buf.copy_within(at..self.have, 0);
        self.have -= at;
        Some((more, answered))
    }
}

/// A connection with a thread of its own, spinning on its socket.
fn echo_conn(s: UnixStream, reply: &[u8]) {
    let Ok(mut s) = s
        .set_nonblocking(true)
        .and_then(|()| SpinStream::new(mio::net::UnixStream::from_std(s)))
    else {
        return;
    };
    let (mut input, mut out) = (Input::new(), Vec::with_capacity(64 * 1024));
    loop {
        match s.read(input.room()) {
            Ok(0) | Err(_) => return,
            Ok(n) => input.have += n,
        }
        // The most frames one chunk of this read answered: the daemon's loops count a turn's
        // largest chunk, and this floor waits as they do after the same requests.
        let mut most = 0;
        loop {
            let Some((more, answered)) = input.answer(reply, &mut out, s.chunk_frames()) else {
                return;
            };
            most = most.max(answered);
            if !out.is_empty() {
                if s.write_all(&out).is_err() {
                    return;
                }
                out.clear();
            }
            if !more {
                break;
            }
        }
        s.served(most);
    }
}

/// A connection of a polling thread: its input and the answers not yet written.
struct Polled {
    stream: mio::net::UnixStream,
    input: Input,
    out: Vec<u8>,
    /// Writing failed: the connection is done.
    broken: bool,
}

impl Polled {
    /// Writes what it can of the answers: true when all are written.
    fn flush_some(&mut self) -> bool {
        while !self.out.is_empty() {
            match self.stream.write(&self.out) {
                Ok(0) => {
                    self.broken = true;
                    return false;
                }
                Ok(n) => {
                    self.out.drain(..n);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.broken = true;
                    return false;
                }
            }
        }
        true
    }

    /// Writes what it can of the answers, reads what has come and answers it; false when the
    /// connection is done (closed, broken, or not speaking frames), writing after each `chunk`
    /// frames answered. `most` gets the most requests answered in one chunk, as the daemon's
    /// loops count them for their [`Spin`].
    fn serve(&mut self, reply: &[u8], chunk: usize, most: &mut usize) -> bool {
        loop {
            if !self.flush_some() {
                return !self.broken;
            }
            match self.input.answer(reply, &mut self.out, chunk) {
                None => return false,
                Some((_, answered)) => *most = (*most).max(answered),
            }
            // A chunk answered: write it before answering more, as the daemon does.
            if !self.out.is_empty() {
                continue;
            }
            match self.stream.read(self.input.room()) {
                Ok(0) => return false,
                Ok(n) => self.input.have += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
    }
}

/// A polling thread: serves the connections `incoming` deals it, waiting as the daemon's
/// loops wait, until `stop`.
fn echo_loop(incoming: &Receiver<UnixStream>, reply: &[u8], stop: &AtomicBool) {
    let Ok(mut poll) = Poll::new() else {
        return;
    };
    let mut events = Events::with_capacity(256);
    let mut conns: Vec<Option<Polled>> = Vec::new();
    let mut spin = Spin::new();
    // The clock, read once per turn right after the poll, as the daemon's loops read it.
    let mut now = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        while let Ok(s) = incoming.try_recv() {
            let Ok(()) = s.set_nonblocking(true) else {
                continue;
            };
            let mut stream = mio::net::UnixStream::from_std(s);
            let token = Token(conns.len());
            let interest = Interest::READABLE | Interest::WRITABLE;
            if poll
                .registry()
                .register(&mut stream, token, interest)
                .is_ok()
            {
                conns.push(Some(Polled {
                    stream,
                    input: Input::new(),
                    out: Vec::with_capacity(64 * 1024),
                    broken: false,
                }));
            }
        }
        // Parked, a new connection waits at most this long to be registered (before the
        // measured window: the load generator connects every connection first).
        let timeout = spin.next_poll(false, Duration::from_millis(1), now);
        if poll.poll(&mut events, Some(timeout)).is_err() {
            return;
        }
        now = Instant::now();
        spin.saw(!events.is_empty(), now);
        let (mut most, chunk) = (0, spin.chunk_work(now));
        for event in events.iter() {
            let slot = conns.get_mut(event.token().0);
            if let Some(conn) = slot {
                if conn
                    .as_mut()
                    .is_some_and(|c| !c.serve(reply, chunk, &mut most))
                {
                    if let Some(mut c) = conn.take() {
                        let _ = poll.registry().deregister(&mut c.stream);
                    }
                }
            }
        }
        spin.served(most);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    /// Spins on this thread until its own CPU time (as `/proc` tells it) has grown by `ns`.
    fn burn(task: &Path, ns: u64) {
        let start = task_cpu_ns(task).unwrap_or(0);
        while task_cpu_ns(task).unwrap_or(u64::MAX) < start + ns {
            std::hint::black_box((0..10_000u64).sum::<u64>());
        }
    }

    #[test]
    fn the_ledger_counts_each_thread_once_whether_it_ended_or_still_runs() {
        let ledger = Arc::new(Ledger::default());
        assert_eq!(ledger.cpu_ns(), Some(0), "no thread has served yet");
        if own_task().is_none() {
            eprintln!("skipped: /proc does not tell a thread's CPU time here");
            return;
        }
        // A thread that burns 20 ms and ends: its time stays in the sum, once. It sends its
        // own last reading just before its booking takes the final one.
        let l = ledger.clone();
        let last = thread::spawn(move || {
            let _booked = l.enter();
            // Invariant: `own_task` answered on the test's thread, so it does on this one.
            let task = own_task().expect("/proc tells this thread's CPU time");
            burn(&task, 20 * MS);
            thread::yield_now();
            task_cpu_ns(&task).unwrap_or(0)
        })
        .join()
        .unwrap();
        let ended = ledger.cpu_ns().unwrap();
        assert!(last >= 20 * MS, "{last}");
        // The booking read it a moment later: a few µs more, never a second count.
        assert!(ended >= last && ended < last + 5 * MS, "{last} -> {ended}");
        assert!(ledger.books().live.is_empty());
        assert_eq!(
            ledger.cpu_ns(),
            Some(ended),
            "nothing runs: the sum stands still"
        );
        // A live thread's time is read as it goes: the sum grows while it burns.
        let (tx, rx) = std::sync::mpsc::channel();
        let (go_on, wait) = std::sync::mpsc::channel::<()>();
        let l = ledger.clone();
        let live = thread::spawn(move || {
            let _booked = l.enter();
            // Invariant: as above.
            let task = own_task().expect("/proc tells this thread's CPU time");
            burn(&task, 20 * MS);
            tx.send(()).unwrap();
            let _ = wait.recv();
        });
        rx.recv().unwrap();
        let with_live = ledger.cpu_ns().unwrap();
        assert!(with_live >= ended + 20 * MS, "{ended} -> {with_live}");
        assert_eq!(ledger.books().live.len(), 1);
        go_on.send(()).unwrap();
        live.join().unwrap();
        assert!(ledger.cpu_ns().unwrap() >= with_live);
        assert!(ledger.books().live.is_empty());
    }
}
