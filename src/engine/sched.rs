//! Scheduling: shards, the try-lock-or-hand-off path, worker threads, liveness.
//!
//! A caller `try_lock`s a shard and runs its request inline (first draining what is queued
//! there, to keep order). Only when every eligible shard is busy does it push an owned copy
//! of the request into a shard's bounded queue and wait on a completion slot: it spins (and
//! helps by draining the queue itself whenever it can take the lock), then parks. Workers
//! drain their shard's queue, spin briefly when idle, then park; a pusher wakes a worker only
//! when that worker is parked.
//!
//! Back-pressure: each queue holds at most [`QUEUE_CAPACITY`] jobs. A caller that finds the
//! queue full keeps retrying: it takes the shard and runs the backlog plus its own job as soon
//! as the lock is free, or pushes once a slot frees up. Memory is bounded; callers slow down.

use std::sync::atomic::{fence, AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, TryLockError};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use crossbeam::queue::ArrayQueue;
use crossbeam::utils::CachePadded;

use super::shard::{Memo, Req, Resp, ShardState, Step};
use super::sink::Sink;
use crate::crypto::fork::{self, ForkGuard};
use crate::err;
use crate::error::{KmsError, Result};
use crate::types::KeyName;

/// Jobs a shard's queue holds before callers must wait (each job is one request or one
/// batch part).
pub const QUEUE_CAPACITY: usize = 256;
/// How long an idle worker spins before parking.
pub const WORKER_SPIN: Duration = Duration::from_micros(50);
/// How long a waiting caller spins before parking.
pub const CALLER_SPIN: Duration = Duration::from_micros(100);
/// Safety-net park timeout (wake-ups are explicit; this bounds any lost-wake-up window).
const PARK_SLICE: Duration = Duration::from_millis(2);
/// How many times a request may be re-routed because placement changed under it.
const MAX_HOPS: usize = 4;
/// Batches at least this long are split across shards.
pub const SPLIT_MIN: usize = 16;
/// A shard used inline by a batch caller this recently is not split onto: its core is busy
/// with that caller, and splitting would only make the two callers contend.
pub const RECENT_CALLER: Duration = Duration::from_micros(500);
/// Batches that skip splitting after a split whose remote part finished late.
pub const SPLIT_BACKOFF: u32 = 8;

pub(crate) struct Shard {
    pub(crate) state: Mutex<ShardState>,
    queue: ArrayQueue<Job>,
    parked: AtomicBool,
    dead: AtomicBool,
    /// When a batch caller last ran on this shard inline (µs since `Inner::epoch`).
    last_caller_us: AtomicU64,
    pub(crate) worker: OnceLock<Thread>,
}

pub(crate) struct Inner {
    /// Each shard on its own cache lines: two callers on two shards share no written line.
    pub(crate) shards: Box<[CachePadded<Shard>]>,
    pub(crate) shutdown: AtomicBool,
    /// Batch calls in progress (decides whether splitting can find an idle core).
    pub(crate) batch_callers: CachePadded<AtomicUsize>,
    /// Time origin for `Shard::last_caller_us`.
    pub(crate) epoch: Instant,
    /// Batches left before splitting is tried again (see `dispatch_batch`).
    pub(crate) split_skip: CachePadded<AtomicU32>,
    /// [`EngineConfig::split_batches`](super::EngineConfig::split_batches).
    pub(crate) split: bool,
    /// The process the engine was started in: a forked child holds copies of the shards'
    /// random pools and nonce counters and must not serve from them.
    pub(crate) fork: ForkGuard,
}

struct Leave<'a>(&'a AtomicUsize);

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

type Outcome = Vec<(usize, Step)>;

struct Slot {
    done: AtomicBool,
    value: Mutex<Option<Outcome>>,
    waiter: Thread,
}

/// Completes its slot exactly once: with the results, or (if dropped unrun, e.g. at shutdown
/// or in a panic) with nothing, which the waiter reports as `KMSInternalException`.
struct Completer(Arc<Slot>);

impl Completer {
    fn complete(self, v: Outcome) {
        if let Ok(mut g) = self.0.value.lock() {
            *g = Some(v);
        }
        // Drop sets `done` and wakes the waiter.
    }
}

impl Drop for Completer {
    fn drop(&mut self) {
        self.0.done.store(true, Ordering::Release);
        self.0.waiter.unpark();
    }
}

struct Job {
    principal: Arc<str>,
    reqs: Vec<(usize, Req<'static>)>,
    done: Completer,
}

impl Job {
    fn run(self, st: &mut ShardState) {
        let mut memo = Memo::default();
        let out = self
            .reqs
            .iter()
            .map(|(i, r)| (*i, execute_owned(st, &self.principal, r, &mut memo)))
            .collect();
        self.done.complete(out);
    }
}

/// Runs `req` on `st` with answers of their own (for another thread, or a caller without a
/// [`Sink`]).
fn execute_owned<'r>(
    st: &mut ShardState,
    principal: &str,
    req: &'r Req<'_>,
    memo: &mut Memo<'r>,
) -> Step {
    let mut sink = Sink::new();
    match st.execute(principal, req, memo, &mut sink) {
        Step::Done(r) => Step::Done(r.map(|resp| resp.into_owned(&mut sink))),
        elsewhere => elsewhere,
    }
}

pub(crate) enum Lock<'a> {
    Got(MutexGuard<'a, ShardState>),
    Busy,
    Dead,
}

/// The answer of an engine that is shut down (one wording for every path).
pub(super) fn stopped() -> KmsError {
    err!(KMSInternalException, "the kmscks engine is shut down")
}

fn dead_shard(i: usize) -> KmsError {
    err!(
        KMSInternalException,
        "engine shard {i} failed (its worker panicked); retry later"
    )
}

thread_local! {
    static THREAD_SLOT: usize = {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        NEXT.fetch_add(1, Ordering::Relaxed)
    };
}

/// Shard indices in `mask`, starting at `start` (a shard index, below `n`) and wrapping.
fn order(n: usize, start: usize, mask: u64) -> impl Iterator<Item = usize> {
    debug_assert!(start < n, "{start} is not a shard index of {n}");
    // A subtraction, not `% n`: a division per shard tried was a visible part of a single
    // call's dispatch.
    (0..n)
        .map(move |k| {
            if start + k >= n {
                start + k - n
            } else {
                start + k
            }
        })
        .filter(move |&i| mask & (1u64 << i) != 0)
}

impl Shard {
    pub(crate) fn new(state: ShardState) -> Shard {
        Shard {
            state: Mutex::new(state),
            queue: ArrayQueue::new(QUEUE_CAPACITY),
            parked: AtomicBool::new(false),
            dead: AtomicBool::new(false),
            last_caller_us: AtomicU64::new(0),
            worker: OnceLock::new(),
        }
    }

    pub(crate) fn try_lock(&self) -> Lock<'_> {
        if self.dead.load(Ordering::Relaxed) {
            return Lock::Dead;
        }
        match self.state.try_lock() {
            // Checked again under the lock: a change that fails partway on this shard marks it
            // dead while still holding the lock (`Engine::apply`), so a caller that read the
            // flag just before then and took the lock just after would serve from a state the
            // change only partly reached. The flag's store happens before that unlock, which
            // happens before this lock, so the relaxed load sees it.
            Ok(_) if self.dead.load(Ordering::Relaxed) => Lock::Dead,
            Ok(g) => Lock::Got(g),
            Err(TryLockError::WouldBlock) => Lock::Busy,
            Err(TryLockError::Poisoned(_)) => {
                self.dead.store(true, Ordering::SeqCst);
                self.discard_queue();
                Lock::Dead
            }
        }
    }

    /// Runs every queued job (the caller holds the lock).
    fn drain(&self, st: &mut ShardState) {
        // Usually empty: two loads say so, where `pop` on an empty queue also pays a SeqCst
        // fence (a job pushed just after this check is one pushed just after the last pop).
        if self.queue.is_empty() {
            return;
        }
        while let Some(job) = self.queue.pop() {
            job.run(st);
        }
    }

    /// Drops every queued job unrun: their callers get `KMSInternalException`.
    pub(crate) fn discard_queue(&self) {
        while let Some(job) = self.queue.pop() {
            drop(job);
        }
    }

    fn wake_worker(&self) {
        fence(Ordering::SeqCst);
        if self.parked.load(Ordering::SeqCst) {
            if let Some(t) = self.worker.get() {
                t.unpark();
            }
        }
    }

    /// Jobs waiting in this shard's queue (a snapshot; see [`super::Engine::queued_jobs`]).
    pub(crate) fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Whether the shard failed (a panic while its lock was held): it never serves again.
    pub(crate) fn is_dead(&self) -> bool {
        self.dead.load(Ordering::SeqCst)
    }

    pub(crate) fn mark_dead(&self) {
        self.dead.store(true, Ordering::SeqCst);
        self.discard_queue();
    }
}

/// Marks the shard dead if its worker unwinds, so callers get errors instead of hanging.
struct LivenessGuard<'a>(&'a Shard);

impl Drop for LivenessGuard<'_> {
    fn drop(&mut self) {
        if thread::panicking() {
            self.0.mark_dead();
        }
    }
}

pub(crate) fn worker_loop(inner: Arc<Inner>, idx: usize) {
    let shard = &inner.shards[idx];
    let _guard = LivenessGuard(shard);
    let mut idle_since: Option<Instant> = None;
    let mut spins = 0u32;
    loop {
        if inner.shutdown.load(Ordering::Acquire) {
            break;
        }
        if !shard.queue.is_empty() {
            match shard.try_lock() {
                Lock::Got(mut g) => shard.drain(&mut g),
                Lock::Busy => std::hint::spin_loop(),
                Lock::Dead => break,
            }
            idle_since = None;
            continue;
        }
        std::hint::spin_loop();
        spins = spins.wrapping_add(1);
        if !spins.is_multiple_of(64) {
            continue;
        }
        // Callers are not pinned: if one shares this core, let it run.
        thread::yield_now();
        let since = *idle_since.get_or_insert_with(Instant::now);
        if since.elapsed() < WORKER_SPIN {
            continue;
        }
        shard.parked.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        if shard.queue.is_empty() && !inner.shutdown.load(Ordering::SeqCst) {
            thread::park_timeout(PARK_SLICE * 25);
        }
        shard.parked.store(false, Ordering::SeqCst);
        idle_since = None;
    }
}

impl Inner {
    pub(crate) fn is_shut_down(&self) -> bool {
        self.shutdown.load(Ordering::Acquire)
    }

    /// Why the engine cannot serve now, if it cannot: shut down, or in a forked child (checked
    /// before any shard lock, which a parent's thread may have held at the fork).
    pub(crate) fn refusal(&self) -> Option<KmsError> {
        if self.is_shut_down() {
            Some(stopped())
        } else if self.fork.forked() {
            Some(fork::forked())
        } else {
            None
        }
    }

    fn n(&self) -> usize {
        self.shards.len()
    }

    fn all_mask(&self) -> u64 {
        if self.n() >= 64 {
            u64::MAX
        } else {
            (1u64 << self.n()) - 1
        }
    }

    fn preferred(&self) -> usize {
        let (slot, n) = (THREAD_SLOT.with(|s| *s), self.n());
        // One shard per core: usually a power of two, which needs no division.
        if n.is_power_of_two() {
            slot & (n - 1)
        } else {
            slot % n
        }
    }

    /// Pushes `job` to shard `i` (with back-pressure) and wakes its worker if parked.
    /// Returns `false` if the job had to be dropped (shard dead, engine stopped).
    fn push(&self, i: usize, job: Job) -> bool {
        self.push_inner(i, job, true)
    }

    /// As `push`, but gives up (returns `false`, dropping the job) when the queue is full
    /// instead of waiting: used while holding another shard's lock, where waiting for a full
    /// queue could deadlock with a caller doing the same in the other direction.
    fn try_push(&self, i: usize, job: Job) -> bool {
        self.push_inner(i, job, false)
    }

    fn push_inner(&self, i: usize, mut job: Job, may_wait: bool) -> bool {
        let shard = &self.shards[i];
        loop {
            if self.is_shut_down() {
                return false;
            }
            match shard.queue.push(job) {
                Ok(()) => break,
                Err(j) if !may_wait => {
                    // Dropping the unrun job completes its slot with an error nobody waits on.
                    drop(j);
                    return false;
                }
                Err(j) => {
                    job = j;
                    match shard.try_lock() {
                        Lock::Got(mut g) => {
                            shard.drain(&mut g);
                            job.run(&mut g);
                            return true;
                        }
                        Lock::Busy => thread::yield_now(),
                        Lock::Dead => return false,
                    }
                }
            }
        }
        shard.wake_worker();
        // A job pushed after shutdown or death would never run: discard it (and any others).
        if self.is_shut_down() || shard.dead.load(Ordering::SeqCst) {
            shard.discard_queue();
        }
        true
    }

    /// Waits for a slot, helping shard `i` drain its queue while spinning.
    fn wait(&self, i: usize, slot: &Slot) -> Option<Outcome> {
        let shard = &self.shards[i];
        let start = Instant::now();
        let mut spins = 0u32;
        while !slot.done.load(Ordering::Acquire) {
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(32) && start.elapsed() >= CALLER_SPIN {
                shard.wake_worker();
                thread::park_timeout(PARK_SLICE);
                if self.is_shut_down() || shard.dead.load(Ordering::SeqCst) {
                    shard.discard_queue();
                }
                continue;
            }
            if spins.is_multiple_of(8) {
                if let Lock::Got(mut g) = shard.try_lock() {
                    shard.drain(&mut g);
                }
                // If the worker we wait for shares our core, give it the core.
                thread::yield_now();
            }
            std::hint::spin_loop();
        }
        slot.value.lock().ok().and_then(|mut g| g.take())
    }

    fn new_job(principal: &str, reqs: Vec<(usize, Req<'static>)>) -> (Job, Arc<Slot>) {
        let slot = Arc::new(Slot {
            done: AtomicBool::new(false),
            value: Mutex::new(None),
            waiter: thread::current(),
        });
        let job = Job {
            principal: Arc::from(principal),
            reqs,
            done: Completer(slot.clone()),
        };
        (job, slot)
    }

    /// Queues owned requests on shard `i` and waits for their outcomes.
    fn queue_and_wait(
        &self,
        i: usize,
        principal: &str,
        reqs: Vec<(usize, Req<'static>)>,
    ) -> Result<Outcome> {
        let (job, slot) = Self::new_job(principal, reqs);
        if !self.push(i, job) {
            return Err(if self.is_shut_down() {
                stopped()
            } else {
                dead_shard(i)
            });
        }
        self.wait(i, &slot).ok_or_else(|| {
            if self.is_shut_down() {
                stopped()
            } else {
                dead_shard(i)
            }
        })
    }

    /// Runs one request: inline on the first free eligible shard, else through a queue.
    /// Its answer's outputs are owned.
    pub(crate) fn dispatch_one(&self, principal: &str, req: &Req<'_>) -> Result<Resp> {
        let mut sink = Sink::new();
        self.dispatch_one_in(principal, req, &mut sink)
            .map(|resp| resp.into_owned(&mut sink))
    }

    /// [`Inner::dispatch_one`], an answer computed inline writing its outputs into `sink` (a
    /// queued one's come back owned): a single call takes them out of its own fresh sink
    /// without moving the answer through an owned copy first.
    pub(crate) fn dispatch_one_in(
        &self,
        principal: &str,
        req: &Req<'_>,
        sink: &mut Sink,
    ) -> Result<Resp> {
        let n = self.n();
        let pref = self.preferred();
        let mut mask = self.all_mask();
        for _ in 0..MAX_HOPS {
            if let Some(e) = self.refusal() {
                return Err(e);
            }
            let mut step = None;
            let mut live = None;
            for i in order(n, pref, mask) {
                match self.shards[i].try_lock() {
                    Lock::Got(mut g) => {
                        self.shards[i].drain(&mut g);
                        // Answered here (the usual case): returned as it is, not moved
                        // through `step`.
                        match g.execute(principal, req, &mut Memo::single(), sink) {
                            Step::Done(r) => return r,
                            elsewhere => step = Some(elsewhere),
                        }
                        break;
                    }
                    Lock::Busy => {
                        live.get_or_insert(i);
                    }
                    Lock::Dead => {}
                }
            }
            let step = match (step, live) {
                (Some(s), _) => s,
                (None, None) => {
                    let i = order(n, pref, mask).next().unwrap_or(0);
                    return Err(dead_shard(i));
                }
                (None, Some(i)) => {
                    let mut out = self.queue_and_wait(i, principal, vec![(0, req.to_static())])?;
                    match out.pop() {
                        Some((_, s)) => s,
                        None => return Err(dead_shard(i)),
                    }
                }
            };
            match step {
                Step::Done(r) => return r,
                Step::Elsewhere(m) => mask = m,
            }
        }
        Err(err!(
            KMSInternalException,
            "the request could not be placed: key placement kept changing; retry"
        ))
    }

    /// Runs a batch: the part the home shard can serve inline (its answers written into
    /// `sink`), the rest split across the other shards holding the keys, one queue push per
    /// shard (their answers owned). `results` gets one entry per request (None: lost).
    ///
    /// Splitting only pays when another core is idle: it is done, when the engine's config
    /// and the caller (`may_split`) allow it at all, for batches of at least [`SPLIT_MIN`]
    /// items while fewer batch callers than shards are active, and only onto shards that are
    /// free at that moment. Items whose key lives only on other shards are handed to those
    /// shards in one job each.
    pub(crate) fn dispatch_batch(
        &self,
        principal: &str,
        reqs: &[Req<'_>],
        may_split: bool,
        results: &mut Vec<Option<Result<Resp>>>,
        sink: &mut Sink,
    ) {
        let n = self.n();
        results.clear();
        if reqs.is_empty() {
            return;
        }
        if let Some(e) = self.refusal() {
            results.extend(reqs.iter().map(|_| Some(Err(e.clone()))));
            return;
        }
        let active = self.batch_callers.fetch_add(1, Ordering::Relaxed) + 1;
        let _leave = Leave(&self.batch_callers);
        // Filled in order on the usual path (all inline on one shard); sized here otherwise.
        let all =
            |results: &mut Vec<Option<Result<Resp>>>| results.resize_with(reqs.len(), || None);
        let pref = self.preferred();
        let mut retry: Vec<usize> = Vec::new();
        let start = Instant::now();
        let mut home = None;
        loop {
            for i in order(n, pref, self.all_mask()) {
                if let Lock::Got(g) = self.shards[i].try_lock() {
                    home = Some((i, g));
                    break;
                }
            }
            if home.is_some() || start.elapsed() >= CALLER_SPIN {
                break;
            }
            std::hint::spin_loop();
        }
        let mut pending = Vec::new();
        let mut split_at: Option<(Instant, Instant)> = None;
        match home {
            None => {
                all(results);
                // Every shard stayed busy: hand the whole batch over as one job.
                let owned = reqs
                    .iter()
                    .enumerate()
                    .map(|(k, r)| (k, r.to_static()))
                    .collect();
                let i = order(n, pref, self.all_mask())
                    .find(|&i| !self.shards[i].dead.load(Ordering::Relaxed))
                    .unwrap_or(pref);
                match self.queue_and_wait(i, principal, owned) {
                    Ok(out) => self.collect(out, results, &mut retry),
                    Err(e) => {
                        for r in results.iter_mut() {
                            *r = Some(Err(e.clone()));
                        }
                    }
                }
            }
            Some((h, mut g)) => {
                self.shards[h].drain(&mut g);
                let mut parts: Vec<Vec<usize>> = Vec::new();
                let mut free = 0u64;
                let now_us = self.epoch.elapsed().as_micros() as u64;
                if self.split
                    && may_split
                    && active < n
                    && reqs.iter().map(Req::items).sum::<usize>() >= SPLIT_MIN
                    && !self.split_backing_off()
                {
                    let recent = RECENT_CALLER.as_micros() as u64;
                    for q in (0..n).filter(|&q| q != h) {
                        let last = self.shards[q].last_caller_us.load(Ordering::Relaxed);
                        if last != 0 && now_us.saturating_sub(last) < recent {
                            continue;
                        }
                        if let Lock::Got(_) = self.shards[q].try_lock() {
                            free |= 1 << q;
                        }
                    }
                }
                if free != 0 {
                    parts.resize_with(n, Vec::new);
                    // The items each part holds (a run request holds several).
                    let mut load = vec![0usize; n];
                    // A batch usually names one key throughout: its holders are looked up
                    // once per run of items naming the same key (the lock is held, so
                    // placement cannot change in between), not once per item.
                    let mut last: Option<(&KeyName<'_>, u64)> = None;
                    for (k, r) in reqs.iter().enumerate() {
                        let m = match (r.named_key(), last) {
                            (Some(key), Some((named, m))) if named.same(key) => m,
                            (key, _) => {
                                let m = g.holder_mask(r);
                                last = key.map(|key| (key, m));
                                m
                            }
                        };
                        let cands = if m & (1 << h) != 0 {
                            m & (free | 1 << h)
                        } else {
                            m
                        };
                        let target = order(n, h, cands).min_by_key(|&q| load[q]).unwrap_or(h);
                        parts[target].push(k);
                        load[target] += r.items();
                    }
                }
                for q in (0..parts.len()).filter(|&q| q != h) {
                    let part = std::mem::take(&mut parts[q]);
                    self.hand_off(q, principal, reqs, part, &mut pending, &mut retry, true);
                }
                let mut late: Vec<Vec<usize>> = Vec::new();
                let mut memo = Memo::default();
                let mut place = |k: usize, step: Step| match step {
                    Step::Done(r) => Some(r),
                    Step::Elsewhere(m) => {
                        match order(n, h, m).next() {
                            Some(q) => {
                                late.resize_with(n, Vec::new);
                                late[q].push(k)
                            }
                            None => retry.push(k),
                        }
                        None
                    }
                };
                if free == 0 {
                    // Answers come in item order: pushed as they come.
                    g.execute_all(principal, reqs, &mut memo, sink, |k, step| {
                        results.push(place(k, step))
                    });
                } else {
                    all(results);
                    let t0 = Instant::now();
                    for &k in &parts[h] {
                        results[k] = place(k, g.execute(principal, &reqs[k], &mut memo, sink));
                    }
                    split_at = Some((t0, Instant::now()));
                }
                self.shards[h]
                    .last_caller_us
                    .store(now_us.max(1), Ordering::Relaxed);
                drop(g);
                for (q, part) in late.into_iter().enumerate() {
                    self.hand_off(q, principal, reqs, part, &mut pending, &mut retry, false);
                }
            }
        }
        let had_pending = !pending.is_empty();
        for (q, slot, part) in pending {
            match self.wait(q, &slot) {
                Some(out) => self.collect(out, results, &mut retry),
                None => {
                    let e = if self.is_shut_down() {
                        stopped()
                    } else {
                        dead_shard(q)
                    };
                    for k in part {
                        results[k] = Some(Err(e.clone()));
                    }
                }
            }
        }
        if let (Some((t0, t1)), true) = (split_at, had_pending) {
            // Splitting paid off unless we waited for the other shards about as long as our
            // own share took (a parked worker, or a worker sharing our core): then doing it
            // all ourselves would have been as fast, so stop splitting for a while.
            if t1.elapsed() > t1 - t0 {
                self.split_skip.store(SPLIT_BACKOFF, Ordering::Relaxed);
            }
        }
        for k in retry {
            results[k] = Some(self.dispatch_one(principal, &reqs[k]));
        }
    }

    /// Whether splitting is paused after a split that did not overlap (counts down per batch).
    fn split_backing_off(&self) -> bool {
        let left = self.split_skip.load(Ordering::Relaxed);
        if left == 0 {
            return false;
        }
        self.split_skip.store(left - 1, Ordering::Relaxed);
        true
    }

    /// Pushes the items `part` of `reqs` to shard `q` as one job.
    #[allow(clippy::too_many_arguments)] // private helper; the arguments are the batch state
    fn hand_off(
        &self,
        q: usize,
        principal: &str,
        reqs: &[Req<'_>],
        part: Vec<usize>,
        pending: &mut Vec<(usize, Arc<Slot>, Vec<usize>)>,
        retry: &mut Vec<usize>,
        holding_lock: bool,
    ) {
        if part.is_empty() {
            return;
        }
        let owned = part.iter().map(|&k| (k, reqs[k].to_static())).collect();
        let (job, slot) = Self::new_job(principal, owned);
        let pushed = if holding_lock {
            self.try_push(q, job)
        } else {
            self.push(q, job)
        };
        if pushed {
            pending.push((q, slot, part));
        } else {
            retry.extend(part);
        }
    }

    fn collect(&self, out: Outcome, results: &mut [Option<Result<Resp>>], retry: &mut Vec<usize>) {
        for (k, s) in out {
            match s {
                Step::Done(r) => results[k] = Some(r),
                Step::Elsewhere(_) => retry.push(k),
            }
        }
    }
}
