//! The CPU time a process has used, as Linux's `/proc` tells it: how `kmscks bench --socket`
//! puts a number on the daemon's efficiency (its CPU per request, beside the raw crypto's).
//!
//! Why from `/proc` and not from the daemon: any kmscksd (or another server on the socket) is
//! measured the same way, with nothing added to the protocol, and the pid comes from the
//! kernel (`SO_PEERCRED`), not from what the server says.

use std::path::Path;

/// Nanoseconds of CPU `pid` has used so far, all its threads together — those that have
/// exited too — as user plus system time from `/proc/<pid>/stat` (in `USER_HZ` = 100 units
/// per second, as `/proc` always reports them; the kernel derives them from its exact
/// runtime). Not the sum of the live threads' `schedstat`: a thread that exits mid-window
/// would take its time out of the sum. `None` when it cannot be read (not Linux, another pid
/// namespace, the process gone).
pub(crate) fn process_cpu_ns(pid: u32) -> Option<u64> {
    stat_ns(&Path::new("/proc").join(pid.to_string()))
}

fn stat_ns(proc: &Path) -> Option<u64> {
    /// `/proc` reports times in these units whatever the kernel's own tick.
    const USER_HZ: u64 = 100;
    let text = std::fs::read_to_string(proc.join("stat")).ok()?;
    // The command name (2nd field) is in parentheses and may hold spaces: fields are counted
    // after its closing one, from the state (3rd field).
    let after = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15, i.e. the 12th and 13th after the name.
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks * (1_000_000_000 / USER_HZ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_processs_cpu_time_grows_while_it_works() {
        let me = std::process::id();
        let Some(before) = process_cpu_ns(me) else {
            eprintln!("skipped: /proc does not tell this process's CPU time here");
            return;
        };
        // Work until the counter moves (a tick-based `stat` moves every 10 ms of CPU).
        let mut x = 0u64;
        let mut after = before;
        for i in 0..2_000_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
            if i % 1_000_000 == 0 {
                after = process_cpu_ns(me).unwrap_or(before);
                if after > before {
                    break;
                }
            }
        }
        std::hint::black_box(x);
        assert!(after > before, "{before} -> {after}");
    }

    #[test]
    fn stat_times_are_read_after_a_command_name_with_spaces_and_parentheses() {
        let dir = tempfile::tempdir().unwrap();
        let fields: Vec<String> = (3..=20).map(|i| i.to_string()).collect();
        let line = format!("42 (a b) c) {}\n", fields.join(" "));
        std::fs::write(dir.path().join("stat"), line).unwrap();
        // utime = field 14, stime = field 15: 14 + 15 ticks of 10 ms.
        assert_eq!(stat_ns(dir.path()), Some(29 * 10_000_000));
    }
}
