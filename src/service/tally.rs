//! Data-plane calls counted for the KMS event log: each Encrypt, Decrypt, ReEncrypt,
//! GenerateDataKey… adds one to a counter of (operation, key, principal, outcome), and the
//! counters become one event log record per tuple per interval (written off the hot path by the
//! background worker, or before a LookupEvents reads the log).
//!
//! Why counters and not a record per call: a record costs a JSON line and a write, and the data
//! plane answers millions of calls per second; a counter costs an uncontended mutex and, for
//! a run of successful calls on one key (the usual case), a pointer comparison with the key ARN
//! the engine interns — other calls also hash the key. The counters are sharded by thread (a
//! thread keeps its shard), so the engine's callers do not contend on one lock; a batch takes
//! its shard once per run of calls alike ([`Runs`]), usually once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crossbeam::utils::CachePadded;

use super::lock;
use crate::error::ErrorKind;
use crate::ops::Op;

/// Shards of counters: enough that the threads calling the data plane rarely share one.
const SHARDS: usize = 16;
/// The most keys one shard counts between two flushes; calls on further keys (a client sending
/// made-up key ids) are counted under [`OTHER_KEYS`], so neither the counters nor the records
/// of one interval grow with what a client invents.
const MAX_KEYS_PER_SHARD: usize = 1024;
/// The key further keys are counted under.
pub(super) const OTHER_KEYS: &str = "*";

/// One counter: calls of `op` on a key by `principal` that ended with `outcome` (`None`:
/// succeeded).
#[derive(Debug)]
pub(super) struct Count {
    pub(super) op: Op,
    pub(super) principal: Arc<str>,
    pub(super) outcome: Option<ErrorKind>,
    pub(super) calls: u64,
}

/// The counter of the last successful calls a shard saw, kept out of the map so that a run of
/// calls on one key costs no hash. Holds the engine's `Arc` of the key ARN (so its address
/// cannot be reused for another key while it is compared by address).
struct Hot {
    key: Arc<str>,
    op: Op,
    principal: Arc<str>,
    calls: u64,
}

/// The counters of one shard, by key (the key ARN, or the key reference a failed call gave).
#[derive(Default)]
struct Counts {
    by_key: HashMap<Box<str>, Vec<Count>>,
    hot: Option<Hot>,
}

/// One data-plane call, as counted.
pub(super) enum Call<'a> {
    /// It succeeded on this key (the ARN the engine answered with).
    Ok(&'a Arc<str>),
    /// It failed; the key reference the request gave.
    Failed(&'a str, ErrorKind),
}

impl Counts {
    /// Counts `n` successful calls.
    fn add_ok(&mut self, op: Op, principal: &Arc<str>, key: &Arc<str>, n: u64) {
        if let Some(h) = &mut self.hot {
            if h.op == op
                && (Arc::ptr_eq(&h.key, key) || h.key == *key)
                && (Arc::ptr_eq(&h.principal, principal) || h.principal == *principal)
            {
                h.calls += n;
                return;
            }
        }
        self.spill();
        self.hot = Some(Hot {
            key: Arc::clone(key),
            op,
            principal: Arc::clone(principal),
            calls: n,
        });
    }

    /// Moves the hot counter into the map.
    fn spill(&mut self) {
        if let Some(h) = self.hot.take() {
            self.add(h.op, &h.principal, &h.key, None, h.calls);
        }
    }

    fn add(&mut self, op: Op, principal: &Arc<str>, key: &str, outcome: Option<ErrorKind>, n: u64) {
        let key = if self.by_key.len() >= MAX_KEYS_PER_SHARD && !self.by_key.contains_key(key) {
            OTHER_KEYS
        } else {
            key
        };
        self.count_into(op, principal, key, outcome, n);
    }

    /// Counts `n` calls under `key` as it is (no limit on keys: for merging shards).
    fn count_into(
        &mut self,
        op: Op,
        principal: &Arc<str>,
        key: &str,
        outcome: Option<ErrorKind>,
        n: u64,
    ) {
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
    /// Each on cache lines of its own: two threads counting into neighbouring shards wrote
    /// one line (one's lock word beside the other's hot counter) on every call.
    shards: Box<[CachePadded<Mutex<Counts>>]>,
}

static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// The shard this thread counts into.
    static SHARD: usize = NEXT_SHARD.fetch_add(1, Ordering::Relaxed) % SHARDS;
}

impl Tally {
    pub(super) fn new() -> Tally {
        Tally {
            shards: (0..SHARDS).map(|_| CachePadded::default()).collect(),
        }
    }

    fn shard(&self) -> &Mutex<Counts> {
        &self.shards[SHARD.with(|s| *s)]
    }

    /// Counts one call.
    pub(super) fn add(&self, op: Op, principal: &Arc<str>, call: Call<'_>) {
        self.add_n(op, principal, call, 1);
    }

    /// Counts `n` calls alike.
    fn add_n(&self, op: Op, principal: &Arc<str>, call: Call<'_>, n: u64) {
        let mut counts = lock(self.shard());
        match call {
            Call::Ok(key) => counts.add_ok(op, principal, key, n),
            Call::Failed(key, kind) => counts.add(op, principal, key, Some(kind), n),
        }
    }

    /// A counter of the calls of a batch as they are answered, by `principal` of `op`.
    pub(super) fn runs<'t, 'k>(&'t self, op: Op, principal: &'t Arc<str>) -> Runs<'t, 'k> {
        Runs {
            tally: self,
            op,
            principal,
            run: None,
        }
    }

    /// Takes every counter, leaving them at zero: (key, counter) pairs, merged across shards.
    pub(super) fn drain(&self) -> Vec<(Box<str>, Count)> {
        let mut all = Counts::default();
        for shard in self.shards.iter() {
            let mut taken = std::mem::take(&mut *lock(shard));
            taken.spill();
            for (key, counts) in taken.by_key {
                for c in counts {
                    all.count_into(c.op, &c.principal, &key, c.outcome, c.calls);
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

impl Call<'_> {
    /// Whether `other` counts under the same counter as this call. Successful calls compare
    /// their ARNs by pointer first (the engine interns them), then by text: the shards each
    /// keep their own copy of a key's ARN, and a batch split across shards answers with both
    /// copies in turn, which by pointer alone would make a run (and a counter lock) per item.
    fn same(&self, other: &Call<'_>) -> bool {
        match (self, other) {
            (Call::Ok(a), Call::Ok(b)) => Arc::ptr_eq(a, b) || **a == **b,
            (Call::Failed(a, e), Call::Failed(b, f)) => e == f && a == b,
            _ => false,
        }
    }
}

/// Counts the calls of a batch as they are answered: consecutive calls alike (a batch on one
/// key usually answers alike throughout) are added at once, when the run ends or this is
/// dropped, so a batch takes its shard's lock once per run, not per call.
pub(super) struct Runs<'t, 'k> {
    tally: &'t Tally,
    op: Op,
    principal: &'t Arc<str>,
    /// The current run: its call and its length.
    run: Option<(Call<'k>, u64)>,
}

impl<'k> Runs<'_, 'k> {
    /// Counts `n` calls alike.
    pub(super) fn add_n(&mut self, call: Call<'k>, n: u64) {
        if let Some((last, count)) = &mut self.run {
            if last.same(&call) {
                *count += n;
                return;
            }
        }
        if let Some((last, count)) = self.run.replace((call, n)) {
            self.tally.add_n(self.op, self.principal, last, count);
        }
    }
}

impl Drop for Runs<'_, '_> {
    fn drop(&mut self) {
        if let Some((last, n)) = self.run.take() {
            self.tally.add_n(self.op, self.principal, last, n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_counted_per_operation_key_principal_and_outcome_and_drained_once() {
        let t = Tally::new();
        let (alice, bob): (Arc<str>, Arc<str>) = ("alice".into(), "bob".into());
        let (k1, k2): (Arc<str>, Arc<str>) = ("k1".into(), "k2".into());
        let k1_again: Arc<str> = "k1".into();
        t.add(Op::Encrypt, &alice, Call::Ok(&k1));
        t.add(Op::Encrypt, &alice, Call::Ok(&k1_again));
        t.add(Op::Encrypt, &bob, Call::Ok(&k1));
        let bad = ErrorKind::InvalidCiphertextException;
        t.add(Op::Decrypt, &alice, Call::Failed("k1", bad));
        let mut runs = t.runs(Op::Encrypt, &alice);
        for k in [&k1, &k1, &k2, &k1] {
            runs.add_n(Call::Ok(k), 1);
        }
        drop(runs);
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

    #[test]
    fn keys_beyond_the_limit_of_a_shard_are_counted_together() {
        let t = Tally::new();
        let p: Arc<str> = "p".into();
        let keys: Vec<String> = (0..MAX_KEYS_PER_SHARD + 10)
            .map(|i| format!("k{i}"))
            .collect();
        let bad = ErrorKind::NotFoundException;
        let mut runs = t.runs(Op::Decrypt, &p);
        for k in &keys {
            runs.add_n(Call::Failed(k, bad), 1);
        }
        drop(runs);
        let drained = t.drain();
        assert_eq!(drained.len(), MAX_KEYS_PER_SHARD + 1);
        let other = drained.iter().find(|(k, _)| &**k == OTHER_KEYS).unwrap();
        assert_eq!(other.1.calls, 10);
    }
}
