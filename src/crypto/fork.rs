//! Fork detection. A process that forks after opening kmscks hands its child a copy of every
//! random pool (bytes already drawn) and every subkey schedule (salt and nonce counter): if
//! both went on serving, parent and child would seal under the same (subkey, nonce) pairs —
//! GCM nonce reuse — and hand out the same data keys. The child must not serve from the copy.
//!
//! A process-wide generation counts the forks in this process's line; whatever holds such
//! state records the generation it was made in ([`ForkGuard`]) and, seeing a newer one, refuses
//! with [`forked`] until it is made again in the child. Two signals move the generation on in
//! a child, between them once per fork (the handler, when it runs, sets the marker again):
//! - a `pthread_atfork` child handler. It runs only in children made by `fork()`: `_Fork()`
//!   (glibc 2.34 and later), a raw `fork` or `clone` system call run no atfork handler, and a
//!   child made so would serve from the copies unnoticed;
//! - a marker byte in a page of its own, mapped at registration with `MADV_WIPEONFORK`: the
//!   kernel hands every child that gets a copy of the address space — `fork`, `_Fork`, `clone`
//!   without `CLONE_VM`, whatever libc did or did not run — that page zero-filled. The first
//!   look at the generation that finds the marker zero moves the generation on and sets the
//!   marker again (other threads of the child wait the few instructions that takes), so state
//!   made before reads as forked and state made afresh in the child does not, as after the
//!   handler. (A `vfork` or `CLONE_VM` child shares the parent's memory rather than copying
//!   it: no copy to serve from, and nothing to detect.)
//!
//! A check is a few atomic loads (where the marker is, the marker, the generation): no system
//! call. `MADV_WIPEONFORK` is Linux 4.14 and later; on an older kernel (the `mmap` or the
//! `madvise` fails) the handler alone moves the generation on, and children made without it go
//! undetected, as before the marker. (The fallback is not a process-id comparison on every
//! check: that would be a system call on the hot path.) Should the handler fail to register
//! too, and the marker be missing, the guard compares process ids instead (a system call per
//! check, on that unlikely path only).
//!
//! A child also holds copies of the handles of the parent's threads, but none of the threads:
//! only the thread that called `fork` goes on in the child. Joining such a handle there panics
//! in std ("threads should not terminate unexpectedly"), so a child that closes what it
//! inherited would unwind out of the close. Threads that get joined are held as [`Joinable`],
//! whose join in a forked child forgets the handle instead.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Once, OnceLock};
use std::thread::JoinHandle;

use crate::err;
use crate::error::KmsError;

/// Forks so far in this process's line (moved on once in each child: [`generation`]).
static GENERATION: AtomicU64 = AtomicU64::new(0);
/// Runs [`register`]'s one-time setup.
static REGISTER: Once = Once::new();
/// Whether [`GENERATION`] tracks forks: the atfork handler is registered, or the wipe-on-fork
/// marker is in place (else guards compare process ids).
static TRACKED: AtomicBool = AtomicBool::new(false);
/// The marker in the wipe-on-fork page ([`wipe_on_fork_marker`]); unset when the kernel would
/// not make one.
static MARKER: OnceLock<&'static AtomicU8> = OnceLock::new();

/// The marker's value as the kernel hands it to a child: this process is a fork and
/// [`GENERATION`] has not been moved on for it yet.
const MARKER_WIPED: u8 = 0;
/// The marker's value once [`GENERATION`] is this process's own.
const MARKER_SET: u8 = 1;
/// The marker's value while a thread moves [`GENERATION`] on ([`note_wiped_marker`]).
const MARKER_MOVING: u8 = 2;

/// The atfork child handler: moves the generation on in a child made by `fork()`.
extern "C" fn on_fork_child() {
    // Runs in the child, in its only thread, before `fork` returns: atomic operations are
    // async-signal-safe, as a child handler must be. The kernel has wiped the marker for this
    // child too; setting it again here counts the fork once, not twice.
    GENERATION.fetch_add(1, Ordering::Relaxed);
    if let Some(marker) = MARKER.get() {
        marker.store(MARKER_SET, Ordering::Release);
    }
}

/// Sets up fork detection, once per process: the wipe-on-fork marker, then the atfork handler.
#[allow(unsafe_code)]
fn register() {
    REGISTER.call_once(|| {
        let marked = wipe_on_fork_marker().is_some_and(|marker| MARKER.set(marker).is_ok());
        // SAFETY: pthread_atfork stores three optional function pointers; `on_fork_child` is
        // an `extern "C" fn()` with static lifetime that touches only atomics.
        let rc = unsafe { libc::pthread_atfork(None, None, Some(on_fork_child)) };
        TRACKED.store(marked || rc == 0, Ordering::Relaxed);
    });
}

/// A marker byte, set to [`MARKER_SET`], alone in an anonymous private page that the kernel
/// zero-fills in every child that gets a copy of this address space (`MADV_WIPEONFORK`);
/// `None` when the kernel will not make such a page (before Linux 4.14, or out of memory).
/// The page stays mapped for the life of the process.
#[allow(unsafe_code)]
fn wipe_on_fork_marker() -> Option<&'static AtomicU8> {
    // SAFETY: sysconf reads a configuration value and touches no memory of ours.
    let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) })
        .ok()
        .filter(|&p| p > 0)?;
    // SAFETY: a fresh anonymous mapping at an address the kernel picks: no memory of ours is
    // touched or replaced.
    let at = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            page,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_ANONYMOUS | libc::MAP_PRIVATE,
            -1,
            0,
        )
    };
    if at == libc::MAP_FAILED {
        return None;
    }
    // SAFETY: `at` is the page-aligned start of the `page` bytes just mapped, which nothing
    // else knows of; madvise changes only what a child gets of them.
    if unsafe { libc::madvise(at, page, libc::MADV_WIPEONFORK) } != 0 {
        // SAFETY: unmaps the mapping just made, which nothing else refers to.
        unsafe { libc::munmap(at, page) };
        return None;
    }
    // SAFETY: `at` points to `page` (≥ 1) bytes mapped readable and writable, zero-filled,
    // never unmapped from here on (so `'static`), and referred to only through this one
    // reference. `AtomicU8` has the size and alignment of `u8`, every byte value is a valid
    // one, and all accesses go through the atomic (the kernel's wipe in a child happens
    // before the child runs).
    let marker: &'static AtomicU8 = unsafe { &*at.cast::<AtomicU8>() };
    marker.store(MARKER_SET, Ordering::Release);
    Some(marker)
}

/// This process's fork generation, moved on first if the wipe-on-fork marker shows this
/// process to be a child that no atfork handler has counted. On the common path, three loads
/// (where the marker is, the marker, the generation) and no system call.
fn generation() -> u64 {
    if let Some(marker) = MARKER.get() {
        if marker.load(Ordering::Acquire) != MARKER_SET {
            note_wiped_marker(marker);
        }
    }
    GENERATION.load(Ordering::Relaxed)
}

/// The marker is wiped or being set: moves [`GENERATION`] on exactly once for this process
/// (the thread that claims the marker does it) and returns once the marker is set again, so
/// that the caller's next load of the generation (ordered after the acquire here) sees the
/// moved-on value.
#[cold]
fn note_wiped_marker(marker: &AtomicU8) {
    loop {
        match marker.compare_exchange(
            MARKER_WIPED,
            MARKER_MOVING,
            Ordering::Acquire,
            Ordering::Acquire,
        ) {
            Ok(_) => {
                GENERATION.fetch_add(1, Ordering::Relaxed);
                marker.store(MARKER_SET, Ordering::Release);
                return;
            }
            Err(MARKER_SET) => return,
            // Another thread of this child is moving the generation on: a few instructions.
            Err(_) => {
                while marker.load(Ordering::Acquire) == MARKER_MOVING {
                    std::hint::spin_loop();
                }
            }
        }
    }
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
            generation: generation(),
            pid: std::process::id(),
        }
    }

    /// Whether this process is a fork of the one the state was made in.
    pub fn forked(&self) -> bool {
        if TRACKED.load(Ordering::Relaxed) {
            generation() != self.generation
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

    /// A child made by `clone` with no sharing flag — a copy of the address space, as `fork`
    /// makes, but with no atfork handler run, as after `_Fork()` or a raw `fork` system call —
    /// reads state made before it as forked, and state made in it as its own; the parent is
    /// not a fork. The child reports through its exit status. (Not on s390x, where `clone`
    /// takes the new stack before the flags.)
    #[cfg(not(target_arch = "s390x"))]
    #[allow(unsafe_code)]
    #[test]
    fn a_child_made_without_the_atfork_handlers_reads_as_forked() {
        let before = ForkGuard::new();
        if MARKER.get().is_none() {
            println!(
                "SKIPPED: this kernel makes no MADV_WIPEONFORK page (Linux 4.14 and later do)"
            );
            return;
        }
        let none: libc::c_long = 0;
        // SAFETY: `clone(SIGCHLD)` (no stack, no tids, no tls) is `fork` without libc's part:
        // the child is a copy of this process with only this thread in it, where locks other
        // threads of the test binary held at the clone (malloc's among them) stay held. So the
        // child runs only atomic loads and stores, `getpid` (in `ForkGuard::new`) and `_exit`:
        // async-signal-safe, with no lock, no allocation and no unwinding into the harness.
        let pid = unsafe {
            libc::syscall(
                libc::SYS_clone,
                libc::c_long::from(libc::SIGCHLD),
                none,
                none,
                none,
                none,
            )
        };
        if pid == 0 {
            let code = if !before.forked() {
                10
            } else if ForkGuard::new().forked() {
                20
            } else {
                0
            };
            // SAFETY: ends the child at once: no destructor, no atexit handler, no harness.
            unsafe { libc::_exit(code) }
        }
        assert!(pid > 0, "clone failed: {}", std::io::Error::last_os_error());
        let pid = libc::pid_t::try_from(pid).expect("a process id fits in pid_t");
        let mut status = 0;
        // SAFETY: waits for our own child, writing its status into a local.
        let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
        assert_eq!(waited, pid, "waitpid: {}", std::io::Error::last_os_error());
        assert!(
            libc::WIFEXITED(status),
            "the child exited: status {status:#x}"
        );
        assert_eq!(
            libc::WEXITSTATUS(status),
            0,
            "10: the child read state made before it as its own; 20: it read state made in it \
             as forked"
        );
        assert!(!before.forked(), "the parent is not a fork");
    }
}
