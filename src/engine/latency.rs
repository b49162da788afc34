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
/// store-forwarding stall). A call that panics pays nothing, as it did before it held one: its
/// debt stays owed. A call made while the thread already unwinds (from a `Drop`) pays as any
/// other, so the guard notes whether the thread was unwinding when the call began.
pub(super) struct PayOnReturn {
    unwinding_before: bool,
}

impl PayOnReturn {
    /// Held from here to the call's return.
    #[must_use = "bind it to a named variable (`_pay`): `let _ =` pays at once"]
    pub(super) fn new() -> PayOnReturn {
        PayOnReturn {
            unwinding_before: std::thread::panicking(),
        }
    }
}

impl Drop for PayOnReturn {
    fn drop(&mut self) {
        // Unwinding now and not when the call began: the call itself panicked.
        if self.unwinding_before || !std::thread::panicking() {
            pay();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn a_batch_owes_its_slowest_item_and_taking_the_debt_clears_it() {
        owe(Duration::from_millis(5));
        owe(Duration::from_millis(20));
        owe(Duration::from_millis(10));
        assert_eq!(take_owed(), Duration::from_millis(20));
        assert_eq!(take_owed(), Duration::ZERO);
    }

    #[test]
    fn a_call_holding_pay_on_return_sleeps_off_its_debt_but_not_when_it_panics_itself() {
        std::thread::spawn(|| {
            let answer = || {
                let _pay = PayOnReturn::new();
                owe(Duration::from_millis(20));
                "answer"
            };
            let t0 = Instant::now();
            assert_eq!(answer(), "answer");
            assert!(t0.elapsed() >= Duration::from_millis(20));
            assert_eq!(take_owed(), Duration::ZERO, "the debt was paid");

            let t0 = Instant::now();
            let panicked = std::panic::catch_unwind(|| {
                let _pay = PayOnReturn::new();
                owe(Duration::from_millis(500));
                panic!("a call that fails on the way (injected)");
            });
            assert!(panicked.is_err());
            assert!(
                t0.elapsed() < Duration::from_millis(500),
                "slept while unwinding"
            );
            assert_eq!(take_owed(), Duration::from_millis(500), "still owed");
        })
        .join()
        .expect("the assertions hold");
    }

    #[test]
    fn a_call_made_while_the_thread_unwinds_from_elsewhere_pays_its_debt() {
        /// Makes a call from its `Drop`, as a value dropped during an unwind may.
        struct CallsOnDrop;
        impl Drop for CallsOnDrop {
            fn drop(&mut self) {
                let _pay = PayOnReturn::new();
                owe(Duration::from_millis(20));
            }
        }
        std::thread::spawn(|| {
            let t0 = Instant::now();
            let panicked = std::panic::catch_unwind(|| {
                let _calls = CallsOnDrop;
                panic!("an unrelated failure (injected)");
            });
            assert!(panicked.is_err());
            assert!(
                t0.elapsed() >= Duration::from_millis(20),
                "the call did not pay"
            );
            assert_eq!(take_owed(), Duration::ZERO, "the debt was paid");
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
