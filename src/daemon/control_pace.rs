//! A control lane's pace beside a busy data plane: at most `control_busy_percent` of one core
//! (for calls of ordinary cost: a pause is capped, below), measured with the lane's and the
//! serving threads' CPU clocks.
//!
//! Why: the kernel this daemon is measured on does not preempt a thread inside a system call
//! (`PREEMPT_NONE`), so a CreateKey's journal `fdatasync` holds its core for tens of µs
//! whatever the control thread's priority, and a client waking on that core waits for it.
//! Beside a client keeping both cores busy, what a connection creating keys in a loop costs
//! that client follows how many creates run per second: about a tenth of its rate at a few
//! hundred a second, a quarter or more at a thousand (README, Performance). Nice values and
//! `SCHED_IDLE` decide when the control thread starts, not how long its system calls hold a
//! core; a pace holds the number of creates per second itself.
//!
//! How: after each job the lane reads its own CPU time and the serving threads' (the event
//! loops and the HTTP endpoint's, each registered in [`ServingClocks`] as it starts: their
//! `pthread_getcpuclockid` clocks, so that nothing else in the process, an embedding program's
//! threads or a test's, counts). Over windows of at least [`WINDOW`] (the kernel counts a
//! thread running on another core in scheduler ticks, so a shorter span would read 0 or a
//! whole tick), serving threads keeping at least half a core busy make a busy data plane. While it is busy, each job is
//! followed by a pause until `ran ÷ share` has passed since the job began, so that the lane
//! takes at most `share` of a core (for jobs of up to [`MAX_PAUSE`] × `share` of CPU, 1 ms at
//! 2 %); beside an idle data plane, no pause. (The lane's own wait
//! for a core is no such signal: the costly creates are those that found a core idle for a
//! moment between a client's requests, and held it in their `fdatasync` when the client
//! wanted it back.) At the default of 2 %, a CreateKey's 150–220 µs of CPU make a pause of
//! about 7–11 ms: about 100 creates a second beside a busy data plane, twenty times AWS's
//! quota of 5.
//!
//! A pause is at most [`MAX_PAUSE`]. What the pace holds down is the number of calls a second
//! (each call's `fdatasync` is what holds a core), and a costly call is not more of them: a
//! call spending a few hundred ms of CPU would ask at 2 % for a pause of tens of seconds, and
//! the lane's next call, any principal's, would wait that long behind it. (The CreateKey of
//! an RSA-4096 key did, while it generated its pair on this lane: a bench creating such a key
//! before its run waited 20 s. It runs on the RSA lane now, `control_thread`.)

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long the data plane's activity is measured over before the lane judges it busy or not.
const WINDOW: Duration = Duration::from_millis(20);

/// The longest pause after one job (see the module doc): above what a CreateKey's CPU asks for
/// at 1 % (150–220 µs: 15–22 ms), far below what a costly call would ask for.
pub(super) const MAX_PAUSE: Duration = Duration::from_millis(50);

/// The CPU clocks of the threads that serve the data plane, each added by its thread as it
/// starts; shared by the loops and the control lanes.
#[derive(Clone, Debug, Default)]
pub(super) struct ServingClocks(Arc<Mutex<Vec<libc::clockid_t>>>);

impl ServingClocks {
    /// Adds the calling thread's CPU clock (a thread whose clock cannot be had is not
    /// counted: the pace then sees less of the data plane, never more).
    #[allow(unsafe_code)]
    pub(super) fn add_this_thread(&self) {
        let mut clock: libc::clockid_t = 0;
        // SAFETY: `pthread_self` is the calling thread, alive for the call; `clock` is a valid
        // place for the one value the call writes.
        let r = unsafe { libc::pthread_getcpuclockid(libc::pthread_self(), &mut clock) };
        if r == 0 {
            self.0.lock().unwrap_or_else(|p| p.into_inner()).push(clock);
        }
    }

    /// The serving threads' CPU time so far (a thread that has ended counts for nothing).
    fn cpu_time(&self) -> Duration {
        let clocks = self.0.lock().unwrap_or_else(|p| p.into_inner());
        clocks.iter().filter_map(|&c| read_clock(c)).sum()
    }
}

/// Paces one lane's jobs (see the module doc); used on the lane's own thread.
pub(super) struct Pace {
    /// The share of one core the lane may take beside a busy data plane, in (0, 1]; 1: no
    /// pause.
    share: f64,
    /// The serving threads whose work makes a busy data plane.
    serving: ServingClocks,
    /// Where the current window began: the time, the serving threads' CPU time.
    window: Option<(Instant, Duration)>,
    /// Whether the last whole window found the data plane busy.
    busy: bool,
}

impl Pace {
    /// A pace of `percent` of one core (1–100; 100: never pause) beside `serving`.
    pub(super) fn new(percent: u32, serving: ServingClocks) -> Pace {
        Pace {
            share: f64::from(percent.clamp(1, 100)) / 100.0,
            serving,
            window: None,
            busy: false,
        }
    }

    /// Runs `job` on the calling thread, then pauses as long as the share asks.
    pub(super) fn run<T>(&mut self, job: impl FnOnce() -> T) -> T {
        if self.share >= 1.0 {
            return job();
        }
        let before = read_clock(libc::CLOCK_THREAD_CPUTIME_ID);
        let began = Instant::now();
        if self.window.is_none() {
            self.window = Some((began, self.serving.cpu_time()));
        }
        let out = job();
        let (Some(b), Some(a)) = (before, read_clock(libc::CLOCK_THREAD_CPUTIME_ID)) else {
            return out;
        };
        let now = Instant::now();
        let serving = self.serving.cpu_time();
        let (at, then) = self.window.unwrap_or((began, serving));
        let span = now.saturating_duration_since(at);
        if span >= WINDOW {
            self.busy = busy(serving.saturating_sub(then), span);
            self.window = Some((now, serving));
        }
        if self.busy {
            let pause = pause(a.saturating_sub(b), now - began, self.share);
            if !pause.is_zero() {
                std::thread::sleep(pause);
            }
        }
        out
    }
}

/// Whether serving threads running `serving` over `span` make a busy data plane: half a core
/// or more.
fn busy(serving: Duration, span: Duration) -> bool {
    serving >= span / 2
}

/// The pause after a job that `ran` on a CPU and took `spent` in all, for a lane allowed
/// `share` of a core beside a busy data plane: what is left of `ran ÷ share` after `spent`,
/// at most [`MAX_PAUSE`].
fn pause(ran: Duration, spent: Duration, share: f64) -> Duration {
    if share >= 1.0 {
        return Duration::ZERO;
    }
    ran.div_f64(share).saturating_sub(spent).min(MAX_PAUSE)
}

/// CPU clock `clock`'s time, or `None` where it cannot be read (a thread that has ended).
#[allow(unsafe_code)]
fn read_clock(clock: libc::clockid_t) -> Option<Duration> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the call, which writes only it.
    let r = unsafe { libc::clock_gettime(clock, &mut ts) };
    (r == 0).then(|| Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn beside_a_busy_data_plane_a_job_is_followed_by_a_pause_that_holds_the_lane_to_its_share() {
        // 0.2 ms on a CPU, 0.7 ms in all, at 2 %: 10 ms from the job's start.
        assert_eq!(pause(MS / 5, MS * 7 / 10, 0.02), MS * 93 / 10);
        // A job that took longer than its share allows is not paused further; no limit, no
        // pause.
        assert_eq!(pause(MS / 5, MS * 30, 0.02), Duration::ZERO);
        assert_eq!(pause(MS / 5, MS, 1.0), Duration::ZERO);
    }

    #[test]
    fn a_costly_job_pauses_the_lane_no_longer_than_the_cap_the_daemons_docs_state() {
        // A call's 400 ms of CPU would ask for 20 s at 2 %.
        assert_eq!(pause(MS * 400, MS * 410, 0.02), MAX_PAUSE);
        // At 1 % a CreateKey's CPU is still paced in full.
        assert_eq!(pause(MS / 5, MS / 2, 0.01), MS * 195 / 10);
        assert!(MS * 195 / 10 < MAX_PAUSE);
        let said = format!("at most {} ms", MAX_PAUSE.as_millis());
        let sample = include_str!("../../kmscksd.toml");
        assert!(sample.contains(&said), "kmscksd.toml lacks {said:?}");
        let readme = include_str!("../../README.md");
        assert!(readme.contains(&said), "README lacks {said:?}");
    }

    #[test]
    fn the_data_plane_is_busy_when_the_other_threads_kept_half_a_core_or_more() {
        assert!(busy(MS * 10, MS * 20));
        assert!(busy(MS * 35, MS * 20), "two cores");
        assert!(!busy(MS * 9, MS * 20));
        assert!(!busy(Duration::ZERO, MS * 20));
    }

    /// Spins until the calling thread has run `d` on a CPU (not `d` of wall time: a loaded
    /// machine gives it less).
    fn run_on_cpu(d: Duration) {
        let own = || read_clock(libc::CLOCK_THREAD_CPUTIME_ID).unwrap_or_default();
        let start = own();
        let mut x = 0u64;
        while own() - start < d {
            x = std::hint::black_box(x.wrapping_add(1));
        }
    }

    #[test]
    fn serving_clocks_count_the_threads_that_added_themselves_and_no_other() {
        if read_clock(libc::CLOCK_THREAD_CPUTIME_ID).is_none() {
            eprintln!("skipped: this thread's CPU clock cannot be read here");
            return;
        }
        let serving = ServingClocks::default();
        let (worked_tx, worked) = std::sync::mpsc::channel();
        let (go_tx, go) = std::sync::mpsc::channel::<()>();
        let thread = {
            let serving = serving.clone();
            std::thread::spawn(move || {
                serving.add_this_thread();
                run_on_cpu(MS * 5);
                let _ = worked_tx.send(());
                // Alive, and not running, until let go: its clock reads what it ran.
                let _ = go.recv();
            })
        };
        worked.recv().unwrap();
        let counted = serving.cpu_time();
        // Work on a thread that did not add itself: not the data plane.
        run_on_cpu(MS * 5);
        let after = serving.cpu_time();
        go_tx.send(()).unwrap();
        thread.join().unwrap();
        assert!(counted >= MS * 5, "the serving thread's 5 ms: {counted:?}");
        assert!(after - counted < MS, "{counted:?} → {after:?}");
    }

    #[test]
    fn a_lane_without_a_limit_runs_its_jobs_without_a_pause_and_reads_no_clock() {
        let mut pace = Pace::new(100, ServingClocks::default());
        let t = Instant::now();
        assert_eq!(pace.run(|| 7), 7);
        assert!(t.elapsed() < MS * 100);
        assert!(pace.window.is_none() && !pace.busy);
    }
}
