//! Data-plane calls counted for the KMS event log: each Encrypt, Decrypt, ReEncrypt,
//! GenerateDataKey… adds one to a counter of (operation, key, principal, outcome), and the
//! counters become one event log record per tuple per interval (written off the hot path by the
//! background worker, or before a LookupEvents reads the log).
//!
//! Why counters and not a record per call: a record costs a JSON line and a write, and the data
//! plane answers hundreds of thousands of calls per second; a counter costs an uncontended
//! mutex and a hash of the key ARN. The counters are sharded by thread (a thread keeps its
//! shard), so the engine's callers do not contend on one lock; a batch takes its shard once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::lock;
use crate::error::ErrorKind;
use crate::ops::Op;

/// Shards of counters: enough that the threads calling the data plane rarely share one.
const SHARDS: usize = 16;

/// One counter: calls of `op` on a key by `principal` that ended with `outcome` (`None`:
/// succeeded).
#[derive(Debug)]
pub(super) struct Count {
    pub(super) op: Op,
    pub(super) principal: Arc<str>,
    pub(super) outcome: Option<ErrorKind>,
    pub(super) calls: u64,
}

/// The counters of one shard, by key (the key ARN, or the key reference a failed call gave).
#[derive(Default)]
struct Counts {
    by_key: HashMap<Box<str>, Vec<Count>>,
}

impl Counts {
    fn add(&mut self, op: Op, principal: &Arc<str>, key: &str, outcome: Option<ErrorKind>, n: u64) {
        let counts = match self.by_key.get_mut(key) {
            Some(c) => c,
            None => self.by_key.entry(key.into()).or_default(),
        };
        match counts.iter_mut().find(|c| {
            c.op == op
                && c.outcome == outcome
                && (Arc::ptr_eq(&c.principal, principal) || c.principal == *principal)
        }) {
            Some(c) => c.calls += n,
            None => counts.push(Count {
                op,
                principal: Arc::clone(principal),
                outcome,
                calls: n,
            }),
        }
    }
}

/// The data-plane counters of one instance.
pub(super) struct Tally {
    shards: Box<[Mutex<Counts>]>,
}

static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// The shard this thread counts into.
    static SHARD: usize = NEXT_SHARD.fetch_add(1, Ordering::Relaxed) % SHARDS;
}

impl Tally {
    pub(super) fn new() -> Tally {
        Tally {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
        }
    }

    fn shard(&self) -> &Mutex<Counts> {
        &self.shards[SHARD.with(|s| *s)]
    }

    /// Counts one call.
    pub(super) fn add(&self, op: Op, principal: &Arc<str>, key: &str, outcome: Option<ErrorKind>) {
        lock(self.shard()).add(op, principal, key, outcome, 1);
    }

    /// Counts the calls of a batch (one lock; runs of the same key and outcome counted at once).
    pub(super) fn add_batch<'k>(
        &self,
        op: Op,
        principal: &Arc<str>,
        calls: impl Iterator<Item = (&'k str, Option<ErrorKind>)>,
    ) {
        let mut counts = lock(self.shard());
        let mut run: Option<(&str, Option<ErrorKind>, u64)> = None;
        for (key, outcome) in calls {
            match &mut run {
                Some((k, o, n)) if *k == key && *o == outcome => *n += 1,
                _ => {
                    if let Some((k, o, n)) = run.take() {
                        counts.add(op, principal, k, o, n);
                    }
                    run = Some((key, outcome, 1));
                }
            }
        }
        if let Some((k, o, n)) = run {
            counts.add(op, principal, k, o, n);
        }
    }

    /// Takes every counter, leaving them at zero: (key, counter) pairs, merged across shards.
    pub(super) fn drain(&self) -> Vec<(Box<str>, Count)> {
        let mut all = Counts::default();
        for shard in self.shards.iter() {
            let taken = std::mem::take(&mut *lock(shard));
            for (key, counts) in taken.by_key {
                for c in counts {
                    all.add(c.op, &c.principal, &key, c.outcome, c.calls);
                }
            }
        }
        let mut out: Vec<(Box<str>, Count)> = all
            .by_key
            .into_iter()
            .flat_map(|(key, counts)| counts.into_iter().map(move |c| (key.clone(), c)))
            .collect();
        // A stable order, so the records of one interval come out the same way every time.
        out.sort_by(|a, b| {
            (a.1.op, &a.0, &a.1.principal, a.1.outcome).cmp(&(
                b.1.op,
                &b.0,
                &b.1.principal,
                b.1.outcome,
            ))
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_counted_per_operation_key_principal_and_outcome_and_drained_once() {
        let t = Tally::new();
        let (alice, bob): (Arc<str>, Arc<str>) = ("alice".into(), "bob".into());
        t.add(Op::Encrypt, &alice, "k1", None);
        t.add(Op::Encrypt, &alice, "k1", None);
        t.add(Op::Encrypt, &bob, "k1", None);
        t.add(
            Op::Decrypt,
            &alice,
            "k1",
            Some(ErrorKind::InvalidCiphertextException),
        );
        let keys = ["k1", "k1", "k2", "k1"];
        t.add_batch(Op::Encrypt, &alice, keys.iter().map(|k| (*k, None)));
        let drained: Vec<(String, Op, String, Option<ErrorKind>, u64)> = t
            .drain()
            .into_iter()
            .map(|(k, c)| (k.into(), c.op, c.principal.to_string(), c.outcome, c.calls))
            .collect();
        assert_eq!(
            drained,
            [
                ("k1".into(), Op::Encrypt, "alice".into(), None, 5),
                ("k1".into(), Op::Encrypt, "bob".into(), None, 1),
                ("k2".into(), Op::Encrypt, "alice".into(), None, 1),
                (
                    "k1".into(),
                    Op::Decrypt,
                    "alice".into(),
                    Some(ErrorKind::InvalidCiphertextException),
                    1
                ),
            ]
        );
        assert!(t.drain().is_empty());
    }
}
