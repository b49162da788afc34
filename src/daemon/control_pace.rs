//! A control lane's pace beside a busy data plane: at most `control_busy_percent` of one core,
//! measured with the lane's and its process's CPU clocks.
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
//! How: after each job the lane reads its own CPU time and its process's
//! (`CLOCK_THREAD_CPUTIME_ID`, `CLOCK_PROCESS_CPUTIME_ID`). Over windows of at least
//! [`WINDOW`] (the process clock counts other threads' time in scheduler ticks, so a shorter
//! span would read 0 or a whole tick), the daemon's other threads, the event loops first,
//! keeping at least half a core busy make a busy data plane. While it is busy, each job is
//! followed by a pause until `ran ÷ share` has passed since the job began, so that the lane
//! takes at most `share` of a core; beside an idle data plane, no pause. (The lane's own wait
//! for a core is no such signal: the costly creates are those that found a core idle for a
//! moment between a client's requests, and held it in their `fdatasync` when the client
//! wanted it back.) At the default of 2 %, a CreateKey's 150–220 µs of CPU make a pause of
//! about 7–11 ms: about 100 creates a second beside a busy data plane, twenty times AWS's
//! quota of 5.

use std::time::{Duration, Instant};

/// How long the data plane's activity is measured over before the lane judges it busy or not.
const WINDOW: Duration = Duration::from_millis(20);

/// Paces one lane's jobs (see the module doc); used on the lane's own thread.
pub(super) struct Pace {
    /// The share of one core the lane may take beside a busy data plane, in (0, 1]; 1: no
    /// pause.
    share: f64,
    /// Where the current window began: the time, this thread's CPU time, the process's.
    window: Option<(Instant, Duration, Duration)>,
    /// Whether the last whole window found the data plane busy.
    busy: bool,
}

impl Pace {
    /// A pace of `percent` of one core (1–100; 100: never pause).
    pub(super) fn new(percent: u32) -> Pace {
        Pace {
            share: f64::from(percent.clamp(1, 100)) / 100.0,
            window: None,
            busy: false,
        }
    }

    /// Runs `job` on the calling thread, then pauses as long as the share asks.
    pub(super) fn run<T>(&mut self, job: impl FnOnce() -> T) -> T {
        if self.share >= 1.0 {
            return job();
        }
        let before = cpu_times();
        let began = Instant::now();
        let out = job();
        let (Some(b), Some(a)) = (before, cpu_times()) else {
            return out;
        };
        let now = Instant::now();
        let (at, own, process) = *self.window.get_or_insert((began, b.0, b.1));
        let span = now.saturating_duration_since(at);
        if span >= WINDOW {
            let others =
                a.1.saturating_sub(process)
                    .saturating_sub(a.0.saturating_sub(own));
            self.busy = busy(others, span);
            self.window = Some((now, a.0, a.1));
        }
        if self.busy {
            let pause = pause(a.0.saturating_sub(b.0), now - began, self.share);
            if !pause.is_zero() {
                std::thread::sleep(pause);
            }
        }
        out
    }
}

/// Whether the process's other threads running `others` over `span` make a busy data plane:
/// half a core or more.
fn busy(others: Duration, span: Duration) -> bool {
    others >= span / 2
}

/// The pause after a job that `ran` on a CPU and took `spent` in all, for a lane allowed
/// `share` of a core beside a busy data plane: what is left of `ran ÷ share` after `spent`.
fn pause(ran: Duration, spent: Duration, share: f64) -> Duration {
    if share >= 1.0 {
        return Duration::ZERO;
    }
    ran.div_f64(share).saturating_sub(spent)
}

/// (this thread's CPU time, this process's), or `None` where the clocks cannot be read.
#[allow(unsafe_code)]
fn cpu_times() -> Option<(Duration, Duration)> {
    let read = |clock| {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec for the call, which writes only it.
        let r = unsafe { libc::clock_gettime(clock, &mut ts) };
        (r == 0).then(|| Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
    };
    Some((
        read(libc::CLOCK_THREAD_CPUTIME_ID)?,
        read(libc::CLOCK_PROCESS_CPUTIME_ID)?,
    ))
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
    fn the_data_plane_is_busy_when_the_other_threads_kept_half_a_core_or_more() {
        assert!(busy(MS * 10, MS * 20));
        assert!(busy(MS * 35, MS * 20), "two cores");
        assert!(!busy(MS * 9, MS * 20));
        assert!(!busy(Duration::ZERO, MS * 20));
    }

    #[test]
    fn a_lane_beside_a_busy_thread_pauses_until_it_has_kept_to_its_share() {
        if cpu_times().is_none() {
            eprintln!("skipped: the CPU-time clocks cannot be read here");
            return;
        }
        let work = |d: Duration| {
            let t = Instant::now();
            let mut x = 0u64;
            while t.elapsed() < d {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        };
        // A thread kept busy throughout (the tests running beside this one in the process
        // only add to what the lane sees: "alone" cannot be had here, and the arithmetic
        // tests above cover it).
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (started_tx, started) = std::sync::mpsc::channel();
        let busy = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let _ = started_tx.send(());
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    work(MS);
                }
            })
        };
        started.recv().unwrap();
        // At 50 %, each job is followed by a pause as long as its CPU time; the first job
        // opens the window and is judged by it.
        let mut pace = Pace::new(50);
        let own = || cpu_times().map(|(own, _)| own).unwrap_or_default();
        let (t, c) = (Instant::now(), own());
        pace.run(|| work(WINDOW + MS * 5));
        let (took, ran) = (t.elapsed(), own() - c);
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        busy.join().unwrap();
        assert!(pace.busy, "the busy thread was seen");
        // The job and its pause: twice its CPU time at least (a little less for the clocks'
        // steps).
        assert!(took >= ran.mul_f64(1.9), "took {took:?}, ran {ran:?}");
    }
}
