//! The control thread: where the socket loop's control-plane requests run, one at a time, in
//! arrival order, so that a CreateKey waiting for its fsync (or any request waiting for the
//! state's lock behind one) never holds the event loop, and another client's Decrypt goes on
//! being answered meanwhile.
//!
//! Why one long-lived thread and not a thread per request: control-plane requests serialise on
//! the state's lock anyway, and starting a thread costs more than a DescribeKey. Each
//! connection has at most one request here at a time (its later frames wait for the answer,
//! see `dispatch::Deferred::Control`), so the queue is bounded by the connections.

use std::sync::Arc;

use crossbeam::channel::{Receiver, Sender};
use mio::Waker;

use super::dispatch::Deferred;
use crate::err;
use crate::error::Result;
use crate::Kms;

/// A control-plane request and where its answer goes.
pub(super) struct Job {
    pub work: Deferred,
    /// The handle of the connection's principal.
    pub kms: Kms,
    /// Called with the reply frame and whether to close after it, on the control thread.
    pub done: Box<dyn FnOnce(Vec<u8>, bool) + Send>,
}

/// The sending end; the thread ends once it is dropped and the queue is drained.
pub(super) struct ControlThread {
    tx: Sender<Job>,
}

impl ControlThread {
    /// Starts the thread; `waker` wakes the event loop after each answer.
    pub(super) fn start(waker: Arc<Waker>) -> Result<ControlThread> {
        let (tx, rx) = crossbeam::channel::unbounded::<Job>();
        std::thread::Builder::new()
            .name("kmscksd-control".into())
            .spawn(move || serve(&rx, &waker))
            .map_err(|e| err!(KMSInternalException, "cannot start the control thread: {e}"))?;
        Ok(ControlThread { tx })
    }

    /// Queues `job`; false if the thread is gone (the job is dropped unanswered).
    pub(super) fn submit(&self, job: Job) -> bool {
        self.tx.send(job).is_ok()
    }
}

fn serve(rx: &Receiver<Job>, waker: &Waker) {
    for job in rx {
        let (bytes, close) = job.work.run(&job.kms);
        (job.done)(bytes, close);
        let _ = waker.wake();
    }
}
