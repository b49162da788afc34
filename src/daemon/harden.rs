//! Process hardening of the daemon: key material and plaintexts live in its memory, so nothing
//! may copy that memory out — no core dump (a crash would write every key it holds to disk,
//! unwrapped), no `ptrace` attach or `/proc/<pid>/mem` read by another process of the same uid.
//!
//! `PR_SET_DUMPABLE 0` does both for the whole process at once, which is why the daemon does
//! not also mark key-holding pages `MADV_DONTDUMP`: with no core dump at all there is nothing to
//! exclude pages from, and the keys are small heap objects scattered among others, not
//! page-aligned regions a flag could cover. A program that links kmscks as a library decides
//! for its own process; the library does not change process-wide settings behind its back.

use crate::err;
use crate::error::Result;

/// Makes this process non-dumpable (no core dumps; no ptrace or `/proc/<pid>/mem` access by
/// other unprivileged processes of the same uid). Call once at start, before any secret is
/// loaded.
#[allow(unsafe_code)]
pub fn forbid_core_dumps() -> Result<()> {
    // SAFETY: prctl(PR_SET_DUMPABLE, 0) takes plain integers and touches no memory of ours.
    let rc = unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    if rc == 0 {
        Ok(())
    } else {
        Err(err!(
            KMSInternalException,
            "cannot make the daemon non-dumpable (prctl PR_SET_DUMPABLE): {}",
            std::io::Error::last_os_error()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// In a forked child (so the test process itself stays dumpable): 0 when the call left the
    /// process non-dumpable.
    #[allow(unsafe_code)]
    #[test]
    fn the_daemon_process_is_made_non_dumpable() {
        // SAFETY: the child only calls prctl twice and `_exit`s; the parent only waits.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            let ok = forbid_core_dumps().is_ok();
            let dumpable = unsafe { libc::prctl(libc::PR_GET_DUMPABLE, 0, 0, 0, 0) };
            unsafe { libc::_exit(if ok && dumpable == 0 { 0 } else { 1 }) }
        }
        let mut status = 0;
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
    }
}
