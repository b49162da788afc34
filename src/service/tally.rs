//! Data-plane calls counted for the KMS event log: each Encrypt, Decrypt, ReEncrypt,
//! GenerateDataKey… adds one to a counter of (operation, key, principal, outcome), and the
//! counters become one event log record per tuple per interval (written off the hot path by the
//! background worker, or before a LookupEvents reads the log).
//!
//! Why counters and not a record per call: a record costs a JSON line and a write, and the data
//! plane answers millions of calls per second. A successful call is counted in its thread's
//! [`Slot`] for this instance (within bounds: [`SLOTS_PER_THREAD`], [`MAX_SLOTS`]): the thread
//! alone writes the slot's counter, with a plain load and store. Every other way of counting (a
//! mutex, an atomic add) takes a `lock`-prefixed instruction on x86, which waits for the stores
//! before it to drain; the seal has just made thousands, and two such instructions were a
//! visible part of a single Encrypt. When a thread moves to another (operation, key,
//! principal) its slot's calls are spilled, under locks, into the thread's shard of hashed
//! counters, as failed calls are counted directly. The shards are picked by thread (a thread
//! keeps its shard), so callers do not contend on one lock; a batch counts once per run of calls
//! alike ([`Runs`]), usually once.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
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

/// The counters of one shard, by key (the key ARN, or the key reference a failed call gave).
#[derive(Default)]
struct Counts {
    by_key: HashMap<Box<str>, Vec<Count>>,
}

/// The counter of one thread's successful calls on one [`Tally`], on (operation, key,
/// principal) alike. Its thread alone writes `calls` (a total that only grows); a drain reads
/// it and takes what it finds beyond `Ident::taken`. What is counted changes under `ident`,
/// which a drain also holds while it takes.
struct Slot {
    ident: Mutex<Ident>,
    calls: AtomicU64,
}

/// What a [`Slot`] counts, and how many of its calls were taken already.
struct Ident {
    counts: (Op, Arc<str>, Arc<str>),
    taken: u64,
}

/// A thread's slot in one tally, with what it counts as this thread last compared it. The
/// `Arc`s of the key ARN and the principal are held, so their addresses cannot be reused for
/// other text while they are compared by address.
struct Mine {
    tally: u64,
    op: Op,
    key: Arc<str>,
    principal: Arc<str>,
    slot: Arc<Slot>,
}

/// The instances a thread keeps a slot in at once (one, almost always). A thread that counts
/// on more counts there under the shard's lock; a slot whose instance was dropped is given up
/// to make room. (Giving up a live one instead would let a thread going round five instances
/// add a slot per call, each kept until the next drain.)
const SLOTS_PER_THREAD: usize = 4;
/// The most slots one tally keeps between two drains; threads beyond it count under the
/// shard's lock. Bounds what threads that count once and end (a thread per request) leave.
const MAX_SLOTS: usize = 4096;

thread_local! {
    static MINE: RefCell<Vec<Mine>> = const { RefCell::new(Vec::new()) };
}

/// Tally ids: a thread's slots are found by id, never by an address a dropped tally frees.
static NEXT_TALLY: AtomicU64 = AtomicU64::new(1);

/// One data-plane call, as counted.
pub(super) enum Call<'a> {
    /// It succeeded on this key (the ARN the engine answered with).
    Ok(&'a Arc<str>),
    /// It failed; the key reference the request gave.
    Failed(&'a str, ErrorKind),
}

impl Counts {
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
    /// This tally's id, by which threads find their slot in it.
    id: u64,
    /// Each on cache lines of its own: two threads counting into neighbouring shards wrote
    /// one line (one's lock word beside the other's counters) on every call.
    shards: Box<[CachePadded<Mutex<Counts>>]>,
    /// Every thread's slot in this tally, until a drain finds its thread has let it go (the
    /// thread ended, or counts on other instances now): one per thread that counted here.
    slots: Mutex<Vec<Arc<Slot>>>,
}

static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// The shard this thread counts into.
    static SHARD: usize = NEXT_SHARD.fetch_add(1, Ordering::Relaxed) % SHARDS;
}

impl Tally {
    pub(super) fn new() -> Tally {
        Tally {
            id: NEXT_TALLY.fetch_add(1, Ordering::Relaxed),
            shards: (0..SHARDS).map(|_| CachePadded::default()).collect(),
            slots: Mutex::new(Vec::new()),
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
        match call {
            Call::Ok(key) => {
                // The thread-local is gone only while this thread is being torn down.
                let counted = MINE.try_with(|mine| match mine.try_borrow_mut() {
                    Ok(mut mine) => self.add_mine(&mut mine, op, principal, key, n),
                    // Not reached: `add_mine` does not count anything itself.
                    Err(_) => false,
                });
                if counted != Ok(true) {
                    lock(self.shard()).add(op, principal, key, None, n);
                }
            }
            Call::Failed(key, kind) => lock(self.shard()).add(op, principal, key, Some(kind), n),
        }
    }

    /// Counts `n` successful calls in this thread's slot (see the module doc); false when the
    /// thread has no slot here and may not take one (they are counted under the lock then).
    fn add_mine(
        &self,
        mine: &mut Vec<Mine>,
        op: Op,
        principal: &Arc<str>,
        key: &Arc<str>,
        n: u64,
    ) -> bool {
        let Some(m) = mine.iter_mut().find(|m| m.tally == self.id) else {
            return self.take_slot(mine, op, principal, key, n);
        };
        if m.op == op && Arc::ptr_eq(&m.key, key) && Arc::ptr_eq(&m.principal, principal) {
            // The usual case. Only this thread writes `calls`: a load and a store.
            let calls = m.slot.calls.load(Ordering::Relaxed);
            m.slot.calls.store(calls + n, Ordering::Release);
            return true;
        }
        let mut ident = lock(&m.slot.ident);
        let calls = m.slot.calls.load(Ordering::Relaxed);
        // The same text under another `Arc` (each engine shard keeps its own copy of a key's
        // ARN) is the same counter.
        if !(m.op == op && *m.key == **key && *m.principal == **principal) {
            let (was, pending) = (&ident.counts, calls - ident.taken);
            if pending > 0 {
                lock(self.shard()).add(was.0, &was.2, &was.1, None, pending);
            }
            ident.counts = (op, Arc::clone(key), Arc::clone(principal));
            ident.taken = calls;
        }
        m.slot.calls.store(calls + n, Ordering::Release);
        drop(ident);
        m.op = op;
        m.key = Arc::clone(key);
        m.principal = Arc::clone(principal);
        true
    }

    /// Gives this thread a slot in this tally counting `n` calls, if it may take one: room
    /// among its slots once those of dropped instances are given up (a slot only the thread
    /// still holds), and room in this tally.
    fn take_slot(
        &self,
        mine: &mut Vec<Mine>,
        op: Op,
        principal: &Arc<str>,
        key: &Arc<str>,
        n: u64,
    ) -> bool {
        mine.retain(|m| Arc::strong_count(&m.slot) > 1);
        if mine.len() >= SLOTS_PER_THREAD {
            return false;
        }
        let mut slots = lock(&self.slots);
        if slots.len() >= MAX_SLOTS {
            return false;
        }
        let slot = Arc::new(Slot {
            ident: Mutex::new(Ident {
                counts: (op, Arc::clone(key), Arc::clone(principal)),
                taken: 0,
            }),
            calls: AtomicU64::new(n),
        });
        slots.push(Arc::clone(&slot));
        drop(slots);
        mine.push(Mine {
            tally: self.id,
            op,
            key: Arc::clone(key),
            principal: Arc::clone(principal),
            slot,
        });
        true
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
        // The slots first: a slot spilled meanwhile is found in its shard below. (Lock order:
        // `slots`, then a slot's `ident`; a thread spilling holds its `ident`, then a shard.)
        lock(&self.slots).retain(|slot| {
            let mut ident = lock(&slot.ident);
            let calls = slot.calls.load(Ordering::Acquire);
            let (counts, pending) = (&ident.counts, calls - ident.taken);
            if pending > 0 {
                all.count_into(counts.0, &counts.2, &counts.1, None, pending);
            }
            ident.taken = calls;
            // Kept while its thread holds it; once let go, nothing can count in it again.
            Arc::strong_count(slot) > 1
        });
        for shard in self.shards.iter() {
            let taken = std::mem::take(&mut *lock(shard));
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
    use std::sync::atomic::AtomicBool;

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

    fn total(drained: &[(Box<str>, Count)]) -> u64 {
        drained.iter().map(|(_, c)| c.calls).sum()
    }

    #[test]
    fn calls_of_a_thread_that_ended_are_drained_and_its_slot_is_then_forgotten() {
        let t = Arc::new(Tally::new());
        let counting = Arc::clone(&t);
        // Joined through its handle, which waits for the thread's exit, thread-locals dropped
        // (a scoped thread's end is signalled before them).
        std::thread::spawn(move || {
            let (p, k): (Arc<str>, Arc<str>) = ("p".into(), "k".into());
            for _ in 0..3 {
                counting.add(Op::Encrypt, &p, Call::Ok(&k));
            }
        })
        .join()
        .expect("the counting thread");
        assert_eq!(lock(&t.slots).len(), 1);
        let drained = t.drain();
        assert_eq!(drained.len(), 1);
        assert_eq!((&*drained[0].0, drained[0].1.calls), ("k", 3));
        assert!(
            lock(&t.slots).is_empty(),
            "the ended thread's slot is let go"
        );
        assert!(t.drain().is_empty());
    }

    #[test]
    fn a_thread_counting_on_more_instances_than_it_keeps_slots_for_loses_no_call() {
        let tallies: Vec<Tally> = (0..SLOTS_PER_THREAD + 2).map(|_| Tally::new()).collect();
        let (p, k): (Arc<str>, Arc<str>) = ("p".into(), "k".into());
        for round in 0..5 {
            for (i, t) in tallies.iter().enumerate() {
                for _ in 0..=i {
                    t.add(Op::Decrypt, &p, Call::Ok(&k));
                }
            }
            if round == 2 {
                // A drain in the middle takes what was counted so far, and only that.
                for (i, t) in tallies.iter().enumerate() {
                    assert_eq!(total(&t.drain()), 3 * (i as u64 + 1));
                }
            }
        }
        for (i, t) in tallies.iter().enumerate() {
            assert_eq!(total(&t.drain()), 2 * (i as u64 + 1));
            // One slot at most per thread and live instance: none is taken per call.
            assert!(lock(&t.slots).len() <= 1);
        }
        let with_slots = tallies
            .iter()
            .filter(|t| !lock(&t.slots).is_empty())
            .count();
        assert_eq!(with_slots, SLOTS_PER_THREAD);
        // The slots of dropped instances are given up for the next instance counted on.
        drop(tallies);
        let next = Tally::new();
        next.add(Op::Decrypt, &p, Call::Ok(&k));
        assert_eq!(lock(&next.slots).len(), 1);
        assert_eq!(total(&next.drain()), 1);
    }

    #[test]
    fn threads_beyond_a_tallys_slots_are_counted_under_the_lock() {
        let t = Arc::new(Tally::new());
        for _ in 0..=MAX_SLOTS {
            let t = Arc::clone(&t);
            std::thread::spawn(move || {
                let (p, k): (Arc<str>, Arc<str>) = ("p".into(), "k".into());
                t.add(Op::Encrypt, &p, Call::Ok(&k));
            })
            .join()
            .expect("a counting thread");
        }
        assert_eq!(lock(&t.slots).len(), MAX_SLOTS);
        assert_eq!(total(&t.drain()), MAX_SLOTS as u64 + 1);
        assert!(lock(&t.slots).is_empty());
    }

    #[test]
    fn drains_racing_a_counting_thread_take_every_call_exactly_once() {
        const CALLS: u64 = 200_000;
        let t = Tally::new();
        let p: Arc<str> = "p".into();
        let keys: [Arc<str>; 3] = ["k0".into(), "k1".into(), "k2".into()];
        let done = AtomicBool::new(false);
        let mut seen = [0u64; 3];
        let mut take = |drained: Vec<(Box<str>, Count)>| {
            for (key, c) in drained {
                let i = keys
                    .iter()
                    .position(|k| **k == *key)
                    .expect("a counted key");
                seen[i] += c.calls;
            }
        };
        std::thread::scope(|s| {
            s.spawn(|| {
                for i in 0..CALLS {
                    // Runs of 1,000 calls on one key, then the next key: slots spill.
                    let key = &keys[(i / 1000 % 3) as usize];
                    t.add(Op::Encrypt, &p, Call::Ok(key));
                }
                done.store(true, Ordering::Release);
            });
            while !done.load(Ordering::Acquire) {
                take(t.drain());
            }
        });
        take(t.drain());
        let runs = CALLS / 1000;
        let want = |k: u64| (runs / 3 + u64::from(runs % 3 > k)) * 1000;
        assert_eq!(seen, [want(0), want(1), want(2)]);
    }
}
