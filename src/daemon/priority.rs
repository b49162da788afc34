//! The control threads' CPU priority: below the event loops', so that when the cores are busy
//! the data plane is served first and control-plane calls take what is left.
//!
//! Why: on a machine whose cores the data plane already fills (two here: a pipelining client
//! and the loop answering it), every CPU-second a CreateKey takes comes out of other clients'
//! Decrypts. A CreateKey costs the daemon a few hundred µs of CPU, much of it the kernel's
//! (its `fdatasync`, the virtual disk's notification), against a microsecond for a
//! GenerateDataKey, and nobody waits on a CreateKey's microseconds: AWS itself allows 5 per
//! second. So the control threads run at a nice value `control_nice` above the loops'. On a
//! core they share with a busy thread, the kernel's fair scheduler then gives them a share set
//! by the two weights (at the default of 19, 15 against 1,024: about a seventieth; at 10, 110:
//! about a tenth), plus whatever time the cores leave idle: they are never starved, and on an
//! idle machine they run as fast as at 0, since a nice value only decides shares under
//! contention. Which core they run on stays the scheduler's choice. The default was 10 until
//! the bench beside a connection creating keys could tell 10 and 19 apart: at 19 the load kept
//! more of its rate beside the creates and beside RSA decryptions, while the creates still ran
//! far above AWS's quota of 5 a second (README, Performance). A priority decides when a thread
//! starts, not how long its system calls then hold a core: the state lane also paces itself
//! beside a busy data plane (`super::control_pace`).
//!
//! Why `unsafe`: the standard library has no way to change a thread's nice value. `nice(2)`
//! takes an integer and touches no memory; on Linux the nice value is an attribute of each
//! thread (`setpriority(2)`, BUGS), so it lowers only the calling thread.

use std::io;

/// The highest nice value there is (the lowest priority); `control_nice` is at most this.
pub(crate) const MAX_NICE: u32 = 19;

/// Raises the calling thread's nice value by `by` (at most to [`MAX_NICE`]; the kernel caps
/// it there) and returns the new value.
///
/// Errors: the kernel's. Raising a nice value needs no privilege, so in practice none.
#[allow(unsafe_code)]
pub(super) fn lower_this_thread(by: u32) -> io::Result<i32> {
    let by = by.min(MAX_NICE) as libc::c_int;
    // nice(2) returns the new value, which may be -1; only errno tells a failure apart, so it
    // is cleared first. SAFETY: `__errno_location` returns this thread's errno, valid for
    // writes for the thread's lifetime; `nice` reads and writes no memory of ours.
    let (new, errno) = unsafe {
        *libc::__errno_location() = 0;
        let new = libc::nice(by);
        (new, *libc::__errno_location())
    };
    if new == -1 && errno != 0 {
        return Err(io::Error::from_raw_os_error(errno));
    }
    Ok(new)
}

/// The calling thread's nice value, from `/proc/thread-self/stat` (its 19th field).
///
/// Errors: reading the file; `InvalidData` if it does not parse.
#[cfg(test)]
pub(super) fn this_thread_nice() -> io::Result<i32> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat")?;
    // The command name (field 2) is in parentheses and may hold spaces: count from after it.
    let after_comm = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no ')' in stat"))?;
    after_comm
        .split_whitespace()
        .nth(19 - 3)
        .and_then(|f| f.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no nice field in stat"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowering_a_thread_raises_its_nice_value_and_leaves_the_others_alone() {
        let before = this_thread_nice().unwrap();
        let lowered = std::thread::spawn(|| {
            let returned = lower_this_thread(3).unwrap();
            (returned, this_thread_nice().unwrap())
        })
        .join()
        .unwrap();
        let expected = (before + 3).min(MAX_NICE as i32);
        assert_eq!(lowered, (expected, expected));
        assert_eq!(
            this_thread_nice().unwrap(),
            before,
            "the caller is unchanged"
        );
    }

    #[test]
    fn a_thread_cannot_be_lowered_past_the_lowest_priority() {
        let nice = std::thread::spawn(|| {
            lower_this_thread(MAX_NICE).unwrap();
            lower_this_thread(MAX_NICE).unwrap()
        })
        .join()
        .unwrap();
        assert_eq!(nice, MAX_NICE as i32);
    }
}
