//! The control thread: where the daemon's control-plane requests run — those of the socket's
//! loop and of the HTTP endpoint's — one at a time, in arrival order, so that a CreateKey
//! waiting for its fsync (or any request waiting for the state's lock behind one) never holds
//! an event loop, and other clients' Decrypts go on being answered meanwhile.
//!
//! Why one long-lived thread and not a thread per request: control-plane requests serialise on
//! the state's lock anyway, and starting a thread costs more than a DescribeKey. Each
//! connection has at most one request here at a time (its later requests wait for the answer;
//! see `dispatch::Deferred::Control` and the HTTP loop), so the queue is bounded by the
//! connections. A job answers through whatever it captured (a channel and its loop's waker).

use std::thread::JoinHandle;

use crossbeam::channel::Sender;

use crate::err;
use crate::error::Result;

/// A control-plane request to run, with where its answer goes.
pub(super) type Job = Box<dyn FnOnce() + Send>;

/// The thread; [`ControlThread::join`] waits for the jobs queued before it.
pub(super) struct ControlThread {
    queue: ControlQueue,
    thread: JoinHandle<()>,
}

/// A loop's way to the control thread.
#[derive(Clone)]
pub(super) struct ControlQueue(Sender<Job>);

impl ControlThread {
    pub(super) fn start() -> Result<ControlThread> {
        let (tx, rx) = crossbeam::channel::unbounded::<Job>();
        let thread = std::thread::Builder::new()
            .name("kmscksd-control".into())
            .spawn(move || {
                for job in rx {
                    job();
                }
            })
            .map_err(|e| err!(KMSInternalException, "cannot start the control thread: {e}"))?;
        Ok(ControlThread {
            queue: ControlQueue(tx),
            thread,
        })
    }

    /// A queue to hand to a loop.
    pub(super) fn queue(&self) -> ControlQueue {
        self.queue.clone()
    }

    /// Runs what was queued, then ends: once every loop holding a [`ControlQueue`] has
    /// dropped it (the thread ends when the last sender goes).
    pub(super) fn join(self) {
        drop(self.queue);
        let _ = self.thread.join();
    }
}

impl ControlQueue {
    /// Queues `job`; false if the thread is gone (the job is dropped unrun).
    pub(super) fn submit(&self, job: Job) -> bool {
        self.0.send(job).is_ok()
    }
}
