//! Slow HSMs (`Fault::SlowHsm`): the latency a call owes because a slow HSM served it, and
//! where that latency is paid.
//!
//! Why it is paid outside the shard: a shard serves many keys and HSMs, so sleeping while it
//! is locked would slow calls the slow HSM does not serve. The shard only marks its answer
//! ([`Resp::Slowed`](super::shard::Resp)); the engine's public call unwraps it on the
//! caller's own thread and records the debt here, then pays it by sleeping on that thread
//! after the shard is released — unless the thread pays its debts itself
//! ([`defer_on_this_thread`]): the daemon's event loop holds the connection's replies until
//! the time has passed instead, so one slow HSM never stalls other connections.
//!
//! A call that owes nothing (every call while no HSM is slow) pays one thread-local read.

use std::cell::Cell;
use std::time::Duration;

thread_local! {
    /// The most a call on this thread owes since the last [`take_owed`].
    static OWED: Cell<Duration> = const { Cell::new(Duration::ZERO) };
    /// This thread pays its own debts ([`defer_on_this_thread`]).
    static DEFER: Cell<bool> = const { Cell::new(false) };
}

/// Records that the call running on this thread was served by an HSM `d` slower than it
/// should be. Items of one batch are served side by side: the batch owes the most of them.
pub(crate) fn owe(d: Duration) {
    OWED.with(|o| o.set(o.get().max(d)));
}

/// What this thread's calls owe since the last call to this function, reset to zero.
pub(crate) fn take_owed() -> Duration {
    OWED.with(|o| o.replace(Duration::ZERO))
}

/// From now on, this thread's engine calls leave their debt for [`take_owed`] instead of
/// sleeping it off (the daemon's event loop).
pub(crate) fn defer_on_this_thread() {
    DEFER.with(|d| d.set(true));
}

/// Pays what this thread owes by sleeping, unless it defers its debts.
pub(super) fn pay() {
    if DEFER.with(Cell::get) {
        return;
    }
    let owed = take_owed();
    if !owed.is_zero() {
        std::thread::sleep(owed);
    }
}

/// Pays what this thread owes ([`pay`]) when dropped. A single call holds one while it
/// computes its answer, so that the answer is the call's last expression, written by the
/// callee straight into the caller's return slot rather than into a local and copied out
/// after paying (that copy read 16-byte pieces of the 8-byte stores just made, a
/// store-forwarding stall). Nothing is paid while the thread unwinds from a panic.
pub(super) struct PayOnReturn;

impl Drop for PayOnReturn {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            pay();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_owes_its_slowest_item_and_taking_the_debt_clears_it() {
        owe(Duration::from_millis(5));
        owe(Duration::from_millis(20));
        owe(Duration::from_millis(10));
        assert_eq!(take_owed(), Duration::from_millis(20));
        assert_eq!(take_owed(), Duration::ZERO);
    }

    #[test]
    fn a_call_holding_pay_on_return_sleeps_off_its_debt_after_its_answer_and_not_in_a_panic() {
        std::thread::spawn(|| {
            let answer = || {
                let _pay = PayOnReturn;
                owe(Duration::from_millis(20));
                "answer"
            };
            let t0 = std::time::Instant::now();
            assert_eq!(answer(), "answer");
            assert!(t0.elapsed() >= Duration::from_millis(20));
            assert_eq!(take_owed(), Duration::ZERO, "the debt was paid");

            let panicked = std::panic::catch_unwind(|| {
                let _pay = PayOnReturn;
                owe(Duration::from_secs(3600));
                panic!("a call that fails on the way");
            });
            assert!(panicked.is_err());
            // Not slept off while unwinding: still owed (the test would take an hour if not).
            assert_eq!(take_owed(), Duration::from_secs(3600));
        })
        .join()
        .expect("the assertions hold");
    }

    #[test]
    fn a_deferring_thread_keeps_its_debt_for_its_owner() {
        std::thread::spawn(|| {
            defer_on_this_thread();
            owe(Duration::from_secs(3600));
            pay(); // would sleep an hour if it did not defer
            assert_eq!(take_owed(), Duration::from_secs(3600));
        })
        .join()
        .expect("the test thread does not panic");
    }
}
