//! Fork detection. A process that forks after opening kmscks hands its child a copy of every
//! random pool (bytes already drawn) and every subkey schedule (salt and nonce counter): if
//! both went on serving, parent and child would seal under the same (subkey, nonce) pairs —
//! GCM nonce reuse — and hand out the same data keys. The child must not serve from the copy.
//!
//! A `pthread_atfork` child handler bumps a process-wide generation; whatever holds such state
//! records the generation it was made in ([`ForkGuard`]) and, seeing a newer one, refuses with
//! [`forked`] until it is made again in the child. The check is one relaxed atomic load. Should
//! the handler fail to register, the guard compares process ids instead (a system call per
//! check, on that unlikely path only).
//!
//! A child also holds copies of the handles of the parent's threads, but none of the threads:
//! only the thread that called `fork` goes on in the child. Joining such a handle there panics
//! in std ("threads should not terminate unexpectedly"), so a child that closes what it
//! inherited would unwind out of the close. Threads that get joined are held as [`Joinable`],
//! whose join in a forked child forgets the handle instead.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Once;
use std::thread::JoinHandle;

use crate::err;
use crate::error::KmsError;

/// Forks so far in this process's line (bumped in each child).
static GENERATION: AtomicU64 = AtomicU64::new(0);
static REGISTER: Once = Once::new();
static REGISTERED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_fork_child() {
    // Runs in the child, in its only thread, before `fork` returns: an atomic add is
    // async-signal-safe, as a child handler must be.
    GENERATION.fetch_add(1, Ordering::Relaxed);
}

#[allow(unsafe_code)]
fn register() {
    REGISTER.call_once(|| {
        // SAFETY: pthread_atfork stores three optional function pointers; `on_fork_child` is
        // an `extern "C" fn()` with static lifetime that touches only an atomic.
        let rc = unsafe { libc::pthread_atfork(None, None, Some(on_fork_child)) };
        REGISTERED.store(rc == 0, Ordering::Relaxed);
    });
}

/// The process (and fork generation) some state was made in.
#[derive(Clone, Copy, Debug)]
pub struct ForkGuard {
    generation: u64,
    pid: u32,
}

impl ForkGuard {
    /// A guard for state made now, in this process.
    pub fn new() -> ForkGuard {
        register();
        ForkGuard {
            generation: GENERATION.load(Ordering::Relaxed),
            pid: std::process::id(),
        }
    }

    /// Whether this process is a fork of the one the state was made in.
    pub fn forked(&self) -> bool {
        if REGISTERED.load(Ordering::Relaxed) {
            GENERATION.load(Ordering::Relaxed) != self.generation
        } else {
            std::process::id() != self.pid
        }
    }

    /// `Err(`[`forked`]`)` in a forked child.
    pub fn check(&self) -> Result<(), KmsError> {
        if self.forked() {
            Err(forked())
        } else {
            Ok(())
        }
    }
}

impl Default for ForkGuard {
    fn default() -> ForkGuard {
        ForkGuard::new()
    }
}

/// The answer in a forked child.
pub fn forked() -> KmsError {
    err!(
        KMSInternalException,
        "this process is a fork of the one that opened kmscks; its random pools and nonce \
         counters are copies of the parent's, so it refuses to serve: open kmscks again in the \
         child"
    )
}

/// A thread's handle and the process the thread runs in. In a forked child, which holds a
/// copy of the handle but not the thread, [`Joinable::join`] does not wait (there is nothing
/// to wait for) and the handle is forgotten: neither joined nor detached, since both would
/// act on the parent's thread bookkeeping for a thread this process does not have.
#[derive(Debug)]
pub struct Joinable<T> {
    handle: JoinHandle<T>,
    made: ForkGuard,
}

impl<T> Joinable<T> {
    /// `handle`, of a thread just spawned by this process.
    pub fn new(handle: JoinHandle<T>) -> Joinable<T> {
        Joinable {
            handle,
            made: ForkGuard::new(),
        }
    }

    /// Waits for the thread and returns its outcome; `None` in a forked child, where the
    /// thread does not exist.
    pub fn join(self) -> Option<std::thread::Result<T>> {
        if self.made.forked() {
            std::mem::forget(self.handle);
            None
        } else {
            Some(self.handle.join())
        }
    }

    /// Whether the thread has ended (in a forked child: whether it had at the fork).
    pub fn is_finished(&self) -> bool {
        self.handle.is_finished()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_joinable_joins_its_thread_in_the_process_that_spawned_it() {
        let j = Joinable::new(std::thread::spawn(|| 7));
        assert_eq!(j.join().map(|r| r.expect("the thread returns")), Some(7));
    }
}
