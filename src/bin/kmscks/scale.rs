//! The scale report (`kmscks bench --scale N [--custom-key-store]`): how the control plane
//! behaves as the key population grows. Issue 8's targets are ratios within one run (the last
//! CreateKeys against the first, random-key against one-key throughput), so the tool that
//! judges the work has to measure honestly and through the same path a user takes: only the
//! public [`Kms`] API and its request types, on a durable data directory (`Kms::open`, every
//! CreateKey committed to disk), never an in-memory instance or an internal shortcut.
//!
//! One run, in order:
//! 1. A fresh data directory in a new scratch directory under [`std::env::temp_dir`] (so
//!    `TMPDIR` picks the file system), removed afterwards (a run killed by a signal leaves its
//!    `kmscks-scale-*` directory behind).
//! 2. `N` CreateKeys, one at a time, each timed alone: in the default key store, or with
//!    `--custom-key-store` in a CONNECTED custom key store made by
//!    [`bootstrap::connected_store`] first (its setup is not timed).
//!    * `create_first_us` / `create_last_us`: the mean over the first / the last
//!      [`WINDOW`] creates. When `N < 2 × WINDOW` the two windows overlap, and when
//!      `N ≤ WINDOW` both are the mean over all `N` creates (so they are equal).
//!    * `create_p999_us`: the 99.9th percentile over all `N` creates (an HDR histogram).
//! 3. The instance is dropped (worker joined, directory unlocked); `dir_bytes_per_key` is the
//!    sum of the apparent sizes of every file under the data directory, divided by `N`.
//! 4. `rss_bytes_per_key`: the growth of `VmRSS` (`/proc/self/status`) from just before an
//!    open of the directory to just after it, divided by `N` (clamped at 0). Measured in this
//!    process (the first instance dropped, the key ids already held) the growth is only a
//!    lower bound, and a poor one: the allocator hands the open the pages the dropped instance
//!    freed (measured in release: 0.86 KB per key at 10,000 keys where a fresh process grows
//!    by 6.0 KB, and 0 at 100,000 keys). So when the `kmscks` binary is at hand
//!    ([`ScaleOpts::probe`], which the command line sets), the open is measured in a fresh
//!    child process that never held another instance (`kmscks bench --open-probe DIR`,
//!    [`open_probe`]); that growth includes what any open instance costs regardless of N
//!    (threads, shard tables). Without a probe, the in-process lower bound is reported.
//! 5. `open_ms`: the wall time of `Kms::open` on that directory in this process (only the
//!    open: the drop before it is not counted). The files are warm in the page cache, as they
//!    are for a restart.
//! 6. `gdk_random_ratio`: GenerateDataKey (AES_256) throughput on the reopened instance with a
//!    uniformly random key of the `N` per call, divided by the throughput on one key, with the
//!    same threads for the same duration. Both loops run the identical code: each call takes
//!    the next index from a precomputed list and uses the prebuilt request of that key. The
//!    random list has [`pick_count`] entries (at least 8 per key, read in order, each round
//!    and thread starting at its own place, so that the loop reaches nearly every key and no
//!    round replays another's); the one-key list holds one index as many times. After one
//!    warm-up call, the two loops alternate in [`ROUNDS`] rounds (one key, then random keys,
//!    each for a `ROUNDS`-th of the duration), so that a drift of the machine's load during
//!    the run (other processes, frequency changes) weighs on both alike.
//!    `seal_random_floor_ratio` is the same ratio for the work no implementation can skip:
//!    `N` AES-256-GCM keys expanded by aws-lc (the engine's subkeys), each call sealing a
//!    32-byte data key under the next key of the same kind of random list, or under one key
//!    ([`floor`]). Once `N` keys' contexts outgrow the caches, each random call pays for
//!    fetching one from memory; the engine pays that too, so `gdk_random_ratio` is judged
//!    against this floor measured in the same run. `expand_random_floor_ratio` measures the
//!    alternative that fetches less: the `N` keys kept as 32 bytes each (small enough for the
//!    L3) and expanded by aws-lc on every random call, against sealing under one expanded key;
//!    where expanding costs more than the fetch it saves, this floor is the lower of the two.
//! 7. `list_keys_full_ms`: the time to page through every key with ListKeys at the default
//!    limit (no `Limit`), following `NextMarker` until `Truncated` is false. The listing must
//!    hold exactly the `N` keys created, each once, or the run fails.
//!
//! Nothing is asserted about speed here: the report measures, the targets judge.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::loadgen;

mod floor;
use kmscks::api::kms::{CreateKeyRequest, GenerateDataKeyRequest, KeyListEntry, ListRequest};
use kmscks::daemon::bootstrap;
use kmscks::types::limits::{LIST_KEYS_DEFAULT, MAX_KEYS, MAX_KEYS_PER_CLUSTER};
use kmscks::types::{DataKeySpec, Origin};
use kmscks::{Kms, KmsError};

/// CreateKeys in each of the first and last windows.
pub(crate) const WINDOW: usize = 500;
/// Shortest length of the precomputed key-index lists of the GenerateDataKey loops.
pub(crate) const MIN_PICKS: usize = 1 << 16;
/// Rounds the two GenerateDataKey loops alternate in.
pub(crate) const ROUNDS: u32 = 4;
/// How long each GenerateDataKey loop runs (in all its rounds) unless told otherwise.
pub(crate) const DEFAULT_GDK_DURATION: Duration = Duration::from_secs(2);

/// What to run.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ScaleOpts {
    /// Keys to create (`N`).
    pub keys: usize,
    /// Create them in a connected custom key store instead of the default key store.
    pub custom_key_store: bool,
    /// Caller threads of each GenerateDataKey loop.
    pub threads: usize,
    /// Duration of each GenerateDataKey loop.
    pub duration: Duration,
    /// The `kmscks` binary to measure the open's RSS growth in, in a fresh process (`None`: in
    /// this process, a lower bound; see the module documentation, step 5).
    pub probe: Option<PathBuf>,
}

impl ScaleOpts {
    /// `keys` keys in the default key store, one thread, the default loop duration.
    #[cfg(test)]
    pub(crate) fn new(keys: usize) -> ScaleOpts {
        ScaleOpts {
            keys,
            custom_key_store: false,
            threads: 1,
            duration: DEFAULT_GDK_DURATION,
            probe: None,
        }
    }

    /// Refuses what cannot be run: no keys, or more keys than the store can hold (naming the
    /// limit, rather than capping silently).
    pub(crate) fn check(&self) -> Result<(), ScaleError> {
        if self.keys == 0 {
            return Err(ScaleError::Refused(
                "--scale: at least one key is needed".into(),
            ));
        }
        let (limit, name, what) = if self.custom_key_store {
            (
                MAX_KEYS_PER_CLUSTER,
                "MAX_KEYS_PER_CLUSTER",
                "the per-cluster key limit of a custom key store's CloudHSM cluster",
            )
        } else {
            (
                MAX_KEYS,
                "MAX_KEYS",
                "the KMS key limit per account and Region",
            )
        };
        if self.keys > limit {
            return Err(ScaleError::Refused(format!(
                "--scale {}: more than {limit} keys, {what} ({name} in src/types/limits.rs)",
                self.keys
            )));
        }
        Ok(())
    }
}

/// Why a scale run did not produce a report.
#[derive(Debug)]
pub(crate) enum ScaleError {
    /// The options ask for something that cannot be run (a usage error).
    Refused(String),
    /// A step failed, or a check of the run did not hold.
    Failed(String),
}

impl std::fmt::Display for ScaleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScaleError::Refused(m) | ScaleError::Failed(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for ScaleError {}

/// A failed service call, named by the step it was part of.
fn failed(step: &'static str) -> impl Fn(KmsError) -> ScaleError {
    move |e| ScaleError::Failed(format!("scale report: {step} failed: {e}"))
}

/// A failed I/O call, named by the step it was part of.
fn io_failed(step: &'static str) -> impl Fn(std::io::Error) -> ScaleError {
    move |e| ScaleError::Failed(format!("scale report: {step} failed: {e}"))
}

/// Declares the report's members once: the struct (hence the JSON object), the list of member
/// names and the rows of the human-readable table all come from this table.
macro_rules! report_members {
    ($($(#[doc = $doc:literal])+ $name:ident: $ty:ty => $fmt:literal, $unit:literal;)+) => {
        /// The scale report: one JSON object with exactly these members (a public contract:
        /// issue 8 names them; see the module documentation for how each is measured).
        #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub(crate) struct ScaleReport {
            $($(#[doc = $doc])+ pub(crate) $name: $ty,)+
        }

        impl ScaleReport {
            /// The members' names, in order.
            #[cfg(test)]
            pub(crate) const FIELDS: &'static [&'static str] = &[$(stringify!($name)),+];

            /// (member, value, unit, what it is) for each member, in order.
            fn rows(&self) -> Vec<(&'static str, String, &'static str, &'static str)> {
                vec![$((
                    stringify!($name),
                    format!($fmt, self.$name),
                    $unit,
                    concat!($($doc),+),
                )),+]
            }
        }
    };
}

report_members! {
    /// Keys created.
    keys: u64 => "{}", "";
    /// Mean CreateKey latency over the first 500 creates.
    create_first_us: f64 => "{:.1}", "µs";
    /// Mean CreateKey latency over the last 500 creates.
    create_last_us: f64 => "{:.1}", "µs";
    /// 99.9th percentile CreateKey latency over all creates.
    create_p999_us: f64 => "{:.1}", "µs";
    /// Data directory size after creating, per key.
    dir_bytes_per_key: f64 => "{:.0}", "B";
    /// Time to open the data directory again.
    open_ms: f64 => "{:.1}", "ms";
    /// RSS growth of the open, per key.
    rss_bytes_per_key: f64 => "{:.0}", "B";
    /// GenerateDataKey throughput, random key ÷ one key.
    gdk_random_ratio: f64 => "{:.3}", "";
    /// The machine's floor for that ratio: aws-lc AES-256-GCM seals of a data key under a
    /// random one of N expanded keys ÷ under one.
    seal_random_floor_ratio: f64 => "{:.3}", "";
    /// The same ratio when each random call expands its key from 32 stored bytes before it
    /// seals (one key: sealing under one expanded key).
    expand_random_floor_ratio: f64 => "{:.3}", "";
    /// Time to page through all keys with ListKeys at the default limit.
    list_keys_full_ms: f64 => "{:.1}", "ms";
}

impl ScaleReport {
    /// One-line JSON.
    pub(crate) fn to_json(&self) -> String {
        // Serialising plain numbers cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The human-readable table, one member per line.
    pub(crate) fn human(&self) -> String {
        let rows = self.rows();
        let value_width = rows.iter().map(|r| r.1.len()).max().unwrap_or(0);
        let mut s = String::new();
        for (name, value, unit, what) in rows {
            s.push_str(&format!(
                "{name:<18} {value:>value_width$} {unit:<2}  {}\n",
                what.trim()
            ));
        }
        s
    }
}

/// Runs the scale report. `progress`, when given, receives an in-place (`\r`) progress line;
/// the caller passes it only when that is a terminal.
pub(crate) fn run(
    opts: &ScaleOpts,
    progress: Option<&mut dyn Write>,
) -> Result<ScaleReport, ScaleError> {
    opts.check()?;
    let mut progress = Progress::new(progress);
    let scratch = ScratchDir::new().map_err(io_failed("creating the scratch directory"))?;
    let dir = scratch.path().join("data");
    let n = opts.keys;

    let created = create_keys(&dir, opts, &mut progress)?;
    let dir_bytes = dir_size(&dir).map_err(io_failed("measuring the data directory"))?;

    let child_rss = match &opts.probe {
        Some(exe) => {
            progress.phase("opening the data directory in a fresh process");
            Some(run_probe(exe, &dir)?.rss_growth_bytes)
        }
        None => None,
    };
    progress.phase("reopening the data directory");
    let rss_before = vm_rss_bytes()?;
    let started = Instant::now();
    let kms = Kms::open(&dir).map_err(failed("reopening the data directory"))?;
    let open = started.elapsed();
    let rss_growth = child_rss.unwrap_or(vm_rss_bytes()?.saturating_sub(rss_before));

    let gdk_random_ratio = gdk_ratio(&kms, &created.ids, opts, &mut progress)?;
    progress.phase("the floor: AES-GCM seals under random keys");
    let seal_random_floor_ratio = floor::seal_random_ratio(n, opts.duration)?;
    progress.phase("the floor: AES-GCM keys expanded per call");
    let expand_random_floor_ratio = floor::expand_random_ratio(n, opts.duration)?;
    progress.phase("listing every key");
    let list = list_all(&kms, &created.ids)?;
    drop(kms);
    progress.clear();

    let per_key = |total: f64| total / n as f64;
    Ok(ScaleReport {
        keys: n as u64,
        create_first_us: created.first_us,
        create_last_us: created.last_us,
        create_p999_us: created.p999_us,
        dir_bytes_per_key: per_key(dir_bytes as f64),
        open_ms: open.as_secs_f64() * 1e3,
        rss_bytes_per_key: per_key(rss_growth as f64),
        gdk_random_ratio,
        seal_random_floor_ratio,
        expand_random_floor_ratio,
        list_keys_full_ms: list.as_secs_f64() * 1e3,
    })
}

/// What the create phase measured.
struct Created {
    /// The key ids, in creation order.
    ids: Vec<String>,
    first_us: f64,
    last_us: f64,
    p999_us: f64,
}

/// Step 2: opens a fresh durable instance in `dir`, creates the keys one by one (each timed
/// alone), and drops the instance.
fn create_keys(
    dir: &Path,
    opts: &ScaleOpts,
    progress: &mut Progress<'_>,
) -> Result<Created, ScaleError> {
    let n = opts.keys;
    let kms = Kms::open(dir).map_err(failed("opening a fresh data directory"))?;
    let store = if opts.custom_key_store {
        progress.phase("bootstrapping a connected custom key store");
        let store = bootstrap::connected_store(&kms)
            .map_err(failed("bootstrapping a connected custom key store"))?;
        Some(store.custom_key_store_id)
    } else {
        None
    };
    let request = CreateKeyRequest {
        origin: store.is_some().then_some(Origin::AwsCloudhsm),
        custom_key_store_id: store,
        ..Default::default()
    };
    let mut nanos: Vec<u64> = Vec::with_capacity(n);
    let mut ids: Vec<String> = Vec::with_capacity(n);
    let mut hist = loadgen::new_hist();
    let started = Instant::now();
    for i in 0..n {
        let t = Instant::now();
        let result = kms.create_key(&request);
        let ns = u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let response = result.map_err(|e| {
            ScaleError::Failed(format!(
                "scale report: CreateKey {} of {n} failed: {e}",
                i + 1
            ))
        })?;
        ids.push(response.key_metadata.key_id);
        nanos.push(ns);
        // The histogram's range is 1 ns to 60 s; a slower create counts as 60 s.
        let _ = hist.record(ns.clamp(1, hist.high()));
        progress.creating(i + 1, n, started);
    }
    progress.phase("closing the instance");
    drop(kms);
    let window = WINDOW.min(n);
    let mean_us = |w: &[u64]| w.iter().map(|&ns| ns as f64).sum::<f64>() / w.len() as f64 / 1e3;
    Ok(Created {
        ids,
        first_us: mean_us(&nanos[..window]),
        last_us: mean_us(&nanos[n - window..]),
        p999_us: hist.value_at_quantile(0.999) as f64 / 1e3,
    })
}

/// Step 6: random-key ÷ one-key GenerateDataKey throughput on `kms`.
fn gdk_ratio(
    kms: &Kms,
    ids: &[String],
    opts: &ScaleOpts,
    progress: &mut Progress<'_>,
) -> Result<f64, ScaleError> {
    let requests: Arc<[GenerateDataKeyRequest]> = ids
        .iter()
        .map(|id| GenerateDataKeyRequest {
            key_id: id.clone(),
            key_spec: Some(DataKeySpec::Aes256),
            ..Default::default()
        })
        .collect();
    let random = random_picks(ids.len());
    let len = random.len();
    let one: Arc<[u32]> = vec![random[0]; len].into();
    kms.generate_data_key(&requests[random[0] as usize])
        .map_err(failed("GenerateDataKey (warm-up)"))?;
    let slice = opts.duration / ROUNDS;
    let (mut one_key, mut random_key) = (Throughput::default(), Throughput::default());
    for round in 1..=ROUNDS {
        // Each round reads its own part of the lists (both loops the same part).
        let start = (round - 1) as usize * (len / ROUNDS as usize);
        progress.phase(&format!("GenerateDataKey on one key ({round}/{ROUNDS})"));
        one_key.add(gdk_loop(kms, &requests, &one, start, opts, slice)?);
        progress.phase(&format!(
            "GenerateDataKey on random keys ({round}/{ROUNDS})"
        ));
        random_key.add(gdk_loop(kms, &requests, &random, start, opts, slice)?);
    }
    Ok(random_key.per_sec()? / one_key.per_sec()?)
}

/// The random key-index list of the GenerateDataKey loops (and of the floor beside them):
/// [`pick_count`] uniform indexes below `n`.
pub(crate) fn random_picks(n: usize) -> Arc<[u32]> {
    let mut rng = SplitMix64::seeded();
    (0..pick_count(n))
        .map(|_| {
            // `n` is at most MAX_KEYS (checked), so every index fits in u32.
            u32::try_from(rng.below(n)).unwrap_or(0)
        })
        .collect()
}

/// Calls completed and the time they took, summed over rounds.
#[derive(Default)]
pub(crate) struct Throughput {
    calls: u64,
    elapsed: Duration,
}

impl Throughput {
    pub(crate) fn add(&mut self, (calls, elapsed): (u64, Duration)) {
        self.calls += calls;
        self.elapsed += elapsed;
    }

    pub(crate) fn per_sec(&self) -> Result<f64, ScaleError> {
        if self.calls == 0 {
            return Err(ScaleError::Failed(
                "scale report: no call completed in a loop's duration".into(),
            ));
        }
        Ok(self.calls as f64 / self.elapsed.as_secs_f64())
    }
}

/// A caller thread of a GenerateDataKey loop.
struct GdkCaller {
    kms: Kms,
    requests: Arc<[GenerateDataKeyRequest]>,
    picks: Arc<[u32]>,
    at: usize,
}

/// The length of the key-index lists for `n` keys: a power of two, at least [`MIN_PICKS`] and
/// 8 per key, so that the random loop reaches (nearly) every key rather than a fixed subset.
pub(crate) fn pick_count(n: usize) -> usize {
    n.saturating_mul(8).next_power_of_two().max(MIN_PICKS)
}

/// GenerateDataKey calls completed on `opts.threads` threads in `duration`, each call with the
/// request `picks` names next (from `start` on), and the time it took. Any failed call fails
/// the run.
fn gdk_loop(
    kms: &Kms,
    requests: &Arc<[GenerateDataKeyRequest]>,
    picks: &Arc<[u32]>,
    start: usize,
    opts: &ScaleOpts,
    duration: Duration,
) -> Result<(u64, Duration), ScaleError> {
    let threads = opts.threads.max(1);
    // `picks.len()` is a power of two (`pick_count`): the mask wraps the position.
    let mask = picks.len() - 1;
    // Threads share the round's part of the list, each starting at its own place.
    let share = picks.len() / ROUNDS as usize / threads;
    let (kms, requests, picks) = (kms.clone(), requests.clone(), picks.clone());
    let (calls, errors, elapsed, _) = loadgen::drive(
        threads,
        duration,
        move |t| GdkCaller {
            kms: kms.clone(),
            requests: requests.clone(),
            picks: picks.clone(),
            at: (start + t * share) & mask,
        },
        move |c: &mut GdkCaller| {
            let request = &c.requests[c.picks[c.at] as usize];
            c.at = (c.at + 1) & mask;
            match c.kms.generate_data_key(request) {
                Ok(_) => (1, 0),
                Err(_) => (0, 1),
            }
        },
    );
    if errors > 0 {
        return Err(ScaleError::Failed(format!(
            "scale report: {errors} GenerateDataKey calls failed"
        )));
    }
    Ok((calls, elapsed))
}

/// Step 7: pages through every key at the default limit; fails unless the pages hold exactly
/// the keys in `ids`, each once.
fn list_all(kms: &Kms, ids: &[String]) -> Result<Duration, ScaleError> {
    let mut pages: Vec<Vec<KeyListEntry>> =
        Vec::with_capacity(ids.len() / LIST_KEYS_DEFAULT as usize + 2);
    let mut marker: Option<String> = None;
    let started = Instant::now();
    loop {
        let page = kms
            .list_keys(&ListRequest {
                marker: marker.take(),
                ..Default::default()
            })
            .map_err(failed("ListKeys"))?;
        pages.push(page.keys);
        if !page.truncated {
            break;
        }
        marker = Some(page.next_marker.ok_or_else(|| {
            ScaleError::Failed("scale report: ListKeys was truncated without a NextMarker".into())
        })?);
        if pages.len() > ids.len() + 1 {
            return Err(ScaleError::Failed(format!(
                "scale report: ListKeys still truncated after {} pages for {} keys",
                pages.len(),
                ids.len()
            )));
        }
    }
    let elapsed = started.elapsed();
    let listed: usize = pages.iter().map(Vec::len).sum();
    if listed != ids.len() {
        return Err(ScaleError::Failed(format!(
            "scale report: ListKeys paged {listed} keys in {} pages, but {} were created",
            pages.len(),
            ids.len()
        )));
    }
    let mut expected: HashSet<&str> = ids.iter().map(String::as_str).collect();
    for entry in pages.iter().flatten() {
        if !expected.remove(entry.key_id.as_str()) {
            return Err(ScaleError::Failed(format!(
                "scale report: ListKeys listed {} twice, or a key that was not created",
                entry.key_id
            )));
        }
    }
    Ok(elapsed)
}

/// The sum of the apparent sizes of every file below `dir`.
fn dir_size(dir: &Path) -> std::io::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() {
            dir_size(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}

/// What [`open_probe`] measured: one open of a data directory in a fresh process.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct OpenProbe {
    /// Wall time of `Kms::open`, ms.
    pub open_ms: f64,
    /// `VmRSS` after the open minus before it (0 if it shrank), bytes.
    pub rss_growth_bytes: u64,
}

/// Opens `dir` in this process and measures the open (what `kmscks bench --open-probe DIR`
/// runs, in a process that has held no other instance). The instance is dropped afterwards.
pub(crate) fn open_probe(dir: &Path) -> Result<OpenProbe, ScaleError> {
    let before = vm_rss_bytes()?;
    let started = Instant::now();
    let kms = Kms::open(dir).map_err(failed("opening the data directory (probe)"))?;
    let open = started.elapsed();
    let after = vm_rss_bytes()?;
    drop(kms);
    Ok(OpenProbe {
        open_ms: open.as_secs_f64() * 1e3,
        rss_growth_bytes: after.saturating_sub(before),
    })
}

/// Runs `exe bench --open-probe DIR` and reads its one line of JSON.
fn run_probe(exe: &Path, dir: &Path) -> Result<OpenProbe, ScaleError> {
    let output = std::process::Command::new(exe)
        .args(["bench", "--open-probe"])
        .arg(dir)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(io_failed("starting the open probe"))?;
    if !output.status.success() {
        return Err(ScaleError::Failed(format!(
            "scale report: the open probe ({} bench --open-probe) failed ({}): {}",
            exe.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    serde_json::from_slice(&output.stdout).map_err(|e| {
        ScaleError::Failed(format!(
            "scale report: the open probe printed no report ({e}): {}",
            String::from_utf8_lossy(&output.stdout).trim()
        ))
    })
}

/// This process's resident set size (`VmRSS` of `/proc/self/status`), in bytes.
fn vm_rss_bytes() -> Result<u64, ScaleError> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(io_failed("reading /proc/self/status"))?;
    parse_vm_rss(&status).ok_or_else(|| {
        ScaleError::Failed("scale report: no VmRSS line in /proc/self/status".into())
    })
}

/// `VmRSS:    1234 kB` → 1234 × 1024.
fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?;
    let kib: u64 = line.trim().strip_suffix("kB")?.trim().parse().ok()?;
    Some(kib * 1024)
}

/// A uniformly distributed index generator (SplitMix64): no cryptographic quality needed,
/// only an even spread over the keys.
struct SplitMix64(u64);

impl SplitMix64 {
    fn seeded() -> SplitMix64 {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        SplitMix64(nanos ^ (u64::from(std::process::id()) << 32))
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// An index below `n` (Lemire's multiply-shift; the bias is below 2⁻⁴⁰ for n ≤ 10⁵).
    fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next()) * n as u128) >> 64) as usize
    }
}

/// A new, empty directory under the system's temporary directory, removed on drop.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new() -> std::io::Result<ScratchDir> {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        loop {
            let path = std::env::temp_dir().join(format!(
                "kmscks-scale-{}-{}-{nanos:x}",
                std::process::id(),
                SEQ.fetch_add(1, Ordering::Relaxed)
            ));
            match std::fs::create_dir(&path) {
                Ok(()) => return Ok(ScratchDir(path)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The in-place progress line (when there is somewhere to draw it).
struct Progress<'a> {
    out: Option<&'a mut dyn Write>,
    drawn: Option<Instant>,
}

impl<'a> Progress<'a> {
    /// How often the create counter is redrawn.
    const EVERY: Duration = Duration::from_millis(100);

    fn new(out: Option<&'a mut dyn Write>) -> Progress<'a> {
        Progress { out, drawn: None }
    }

    fn draw(&mut self, line: &str) {
        if let Some(out) = self.out.as_mut() {
            // `\r` back to the line's start, `ESC [K` clears the rest of the previous line.
            let _ = write!(out, "\r{line}\x1b[K");
            let _ = out.flush();
            self.drawn = Some(Instant::now());
        }
    }

    /// After create `done` of `total`: redraws the counter and rate now and then.
    fn creating(&mut self, done: usize, total: usize, started: Instant) {
        if self.out.is_none() {
            return;
        }
        let due = self.drawn.is_none_or(|t| t.elapsed() >= Self::EVERY);
        if due || done == total {
            let rate = done as f64 / started.elapsed().as_secs_f64().max(1e-9);
            self.draw(&format!("CreateKey {done}/{total}  {rate:.0} keys/s"));
        }
    }

    /// Names the step now running.
    fn phase(&mut self, what: &str) {
        self.draw(&format!("{what}…"));
    }

    /// Clears the line (the report follows on stdout).
    fn clear(&mut self) {
        if let Some(out) = self.out.as_mut() {
            let _ = write!(out, "\r\x1b[K");
            let _ = out.flush();
        }
    }
}

#[cfg(test)]
mod unit_tests;

#[cfg(test)]
mod report_tests;
