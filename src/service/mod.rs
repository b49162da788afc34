//! [`Kms`]: the thread-safe handle to one kmscks instance — how it is opened, configured and
//! shut down. What each operation does lives beside it, one file per subject:
//!
//! - `commit`: the commit path — the one control-plane [`State`] behind a mutex, transactions,
//!   the journal write (fsync) before a change is applied and acknowledged, the data-plane sync,
//!   the committed events handed to the event log (`control::event_log`);
//! - `compaction`: how snapshots and records become the state (at open and in the background
//!   compaction the commit path starts);
//! - `worker`: the background worker that finishes Connect/Disconnect and sweeps deletions, on
//!   the injectable [`Clock`];
//! - `keystore_ops`, `key_ops`, `grant_ops`, `cloudhsm_ops`, `crypto_ops`: the operation façade, one method
//!   of [`Kms`] per operation, named after it;
//! - `dispatch`: [`Kms::dispatch`], generated from the op table;
//! - `trail_ops`, `tally`: the event log as CloudTrail shows it (LookupEvents), failed calls,
//!   and the data-plane counters flushed into it.

mod agreement_ops;
mod asymmetric_ops;
mod cloudhsm_ops;
mod commit;
mod compaction;
mod crypto_ops;
mod dispatch;
mod grant_ops;
mod import_ops;
mod key_ops;
mod key_pair_ops;
mod keystore_ops;
mod mac_ops;
mod rotation_ops;
mod sign_ops;
mod tally;
mod throttle;
mod trail_ops;
mod worker;

pub use crypto_ops::BatchScratch;
pub use throttle::QuotaConfig;

use commit::{Core, Shared};
use worker::{background, clock_waker, FollowUpKey, Lifetime, Task, Tasks};

use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use crate::control::{EventLog, EventLogOptions, Keyring, State};
use crate::crypto::fork::{ForkGuard, Joinable};
use crate::dataplane::Mirror;
use crate::engine::{Engine, EngineConfig};
use crate::err;
use crate::error::Result;
use crate::secret::Password;
use crate::store::keyfile::{self, KeyFileOptions};
use crate::store::DataDir;
use crate::types::*;

/// How a kmscks instance behaves.
#[derive(Clone)]
pub struct KmsConfig {
    /// Account and Region in every ARN.
    pub scope: Scope,
    /// The clock (replace it in tests to jump past a deletion window).
    pub clock: Arc<dyn Clock>,
    /// How long CONNECTING and DISCONNECTING last before the attempt completes.
    pub connect_delay: Duration,
    /// How long a CloudHSM cluster's passing states (CREATE_IN_PROGRESS,
    /// INITIALIZE_IN_PROGRESS, DELETE_IN_PROGRESS) last before the background worker ends
    /// them. Default zero: CreateCluster, InitializeCluster and DeleteCluster answer with the
    /// passing state, as on AWS, and the cluster is already past it.
    pub cluster_transition: Duration,
    /// How often the background worker looks for keys whose waiting period has ended.
    pub deletion_check_interval: Duration,
    /// Journal size after which the state is compacted into a snapshot in the background
    /// (the floor: at scale, compaction waits for the journal to outgrow a fixed share of the
    /// last snapshot, see `store::SNAPSHOT_FRACTION`).
    pub compact_after_bytes: u64,
    /// An event log file is rotated when the next event would take it past this many bytes.
    pub event_log_file_bytes: u64,
    /// Rotated event log files whose events are all older than this many days are deleted.
    pub event_log_retain_days: u32,
    /// How data-plane calls (Encrypt, Decrypt, ReEncrypt, GenerateDataKey…, single or batched)
    /// reach the event log: counted per (operation, key, principal, outcome) and written as one
    /// record per tuple every this often (and before a LookupEvents), so the hot path pays a
    /// counter, not a record. `None`: data-plane calls are not recorded. Default: 60 s.
    pub data_plane_event_interval: Option<Duration>,
    /// Principals, besides the account root, allowed `kms:GenerateRandom` (an account-level
    /// permission that no key policy grants); `"*"` allows every principal. Default: none.
    pub generate_random_principals: Vec<String>,
    /// The data-plane engine (shards, pinning, subkey lifetime); its `scope` is taken from
    /// [`KmsConfig::scope`].
    pub engine: EngineConfig,
    /// Where the passphrase sealing the data directory's key files comes from.
    pub passphrase: Passphrase,
    /// PBKDF2-HMAC-SHA256 iterations for the CloudHSM user password hashes made from now on
    /// (each hash keeps its own count, so hashes made at another count still verify). The
    /// default, 600,000, costs about 0.3 s per hash, paid by user create and change-password,
    /// by logins, and twice by each ConnectCustomKeyStore (kmsuser's login, then its
    /// rotated password). Lower it only in tests that make many users or connections
    /// ([`KmsConfig::TEST_HSM_PASSWORD_ITERATIONS`]); values below 1,000 count as 1,000.
    pub hsm_password_iterations: u32,
    /// AWS's quotas, emulated (spec §6): request rates answering `ThrottlingException`, and
    /// the 10-store limit. `None` (the default): no request is throttled and the number of
    /// custom key stores is unlimited. `Some(QuotaConfig::default())` has AWS's numbers.
    pub quotas: Option<QuotaConfig>,
}

/// Default [`KmsConfig::data_plane_event_interval`].
pub(crate) const DEFAULT_DATA_PLANE_EVENT_INTERVAL: Duration = Duration::from_secs(60);

/// Where the passphrase that seals a data directory's key files (`keys/*.key`: PBKDF2-HMAC-
/// SHA256, then AES-256-GCM) comes from. Without one the key files hold the wrapping keys in
/// the clear.
#[derive(Clone, Default)]
pub enum Passphrase {
    /// Read when the instance opens: the file named by `KMSCKS_PASSPHRASE_FILE` (owned by the
    /// effective uid, no group or other access), else `KMSCKS_PASSPHRASE`; neither set: no
    /// passphrase. The environment is left as it is.
    #[default]
    FromEnvironment,
    /// Given by the caller (`kmscksd` reads it once at start and removes the variable), or
    /// `None`: no passphrase.
    Given(Option<Arc<Password>>),
}

impl std::fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Passphrase::FromEnvironment => f.write_str("FromEnvironment"),
            Passphrase::Given(None) => f.write_str("Given(None)"),
            Passphrase::Given(Some(_)) => f.write_str("Given(<redacted>)"),
        }
    }
}

impl Passphrase {
    /// The environment variable holding a passphrase.
    pub const ENV: &'static str = keyfile::PASSPHRASE_ENV;
    /// The environment variable naming a file that holds the passphrase (preferred).
    pub const FILE_ENV: &'static str = keyfile::PASSPHRASE_FILE_ENV;
    /// The subdirectory of a data directory holding the key files.
    pub const KEY_FILES_DIR: &'static str = keyfile::KEYS_DIR;

    /// Reads the passphrase now, as [`Passphrase::FromEnvironment`] would at open, then
    /// wipes the value of `KMSCKS_PASSPHRASE` in place (so `/proc/<pid>/environ` no longer
    /// shows it) and removes the variable from the process's environment. Sound only while no
    /// other thread
    /// reads the environment through the C library: call it at the start of a program,
    /// before it spawns threads.
    pub fn take_from_environment() -> Result<Passphrase> {
        Ok(Passphrase::Given(
            KeyFileOptions::take_from_env()?.passphrase.map(Arc::new),
        ))
    }

    /// Whether this is a passphrase given (not to be read later, and not none).
    pub fn is_given(&self) -> bool {
        matches!(self, Passphrase::Given(Some(_)))
    }

    /// The key-file options this passphrase makes.
    fn key_file_options(&self) -> Result<KeyFileOptions> {
        match self {
            Passphrase::FromEnvironment => KeyFileOptions::from_env(),
            Passphrase::Given(p) => Ok(KeyFileOptions {
                passphrase: p.as_deref().map(Password::duplicate),
            }),
        }
    }
}

impl Default for KmsConfig {
    fn default() -> KmsConfig {
        KmsConfig {
            scope: Scope::default(),
            clock: Arc::new(SystemClock),
            connect_delay: Duration::from_millis(20),
            cluster_transition: Duration::ZERO,
            deletion_check_interval: Duration::from_secs(1),
            compact_after_bytes: 8 << 20,
            event_log_file_bytes: EventLogOptions::default().file_bytes,
            event_log_retain_days: EventLogOptions::default().retain_days,
            data_plane_event_interval: Some(DEFAULT_DATA_PLANE_EVENT_INTERVAL),
            generate_random_principals: Vec::new(),
            engine: EngineConfig::default(),
            passphrase: Passphrase::default(),
            hsm_password_iterations: crate::hsm::PASSWORD_ITERATIONS,
            quotas: None,
        }
    }
}

impl KmsConfig {
    /// The [`KmsConfig::hsm_password_iterations`] kmscks's own tests use: the floor, so that
    /// a test making dozens of connections does not spend seconds hashing. Never for a
    /// directory that holds anything worth protecting.
    pub const TEST_HSM_PASSWORD_ITERATIONS: u32 = crate::hsm::MIN_PASSWORD_ITERATIONS;

    /// The CloudHSM side's settings: passing-state length, and AWS CloudHSM's resource quotas
    /// when quotas are emulated.
    pub(crate) fn hsm_settings(&self) -> crate::hsm::HsmSettings {
        crate::hsm::HsmSettings {
            transition: self.cluster_transition,
            max_clusters_per_region: self.quotas.as_ref().map(|q| q.max_clusters_per_region),
            max_hsms_per_cluster: self.quotas.as_ref().map(|q| q.max_hsms_per_cluster),
        }
    }

    /// The event log's rotation and retention.
    fn event_log_options(&self) -> EventLogOptions {
        EventLogOptions {
            file_bytes: self.event_log_file_bytes,
            retain_days: self.event_log_retain_days,
        }
    }
}

impl std::fmt::Debug for KmsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KmsConfig")
            .field("scope", &self.scope)
            .field("connect_delay", &self.connect_delay)
            .field("cluster_transition", &self.cluster_transition)
            .field("compact_after_bytes", &self.compact_after_bytes)
            .field("event_log_file_bytes", &self.event_log_file_bytes)
            .field("event_log_retain_days", &self.event_log_retain_days)
            .field("data_plane_event_interval", &self.data_plane_event_interval)
            .field(
                "generate_random_principals",
                &self.generate_random_principals,
            )
            .field("passphrase", &self.passphrase)
            .field("hsm_password_iterations", &self.hsm_password_iterations)
            .field("quotas", &self.quotas)
            .finish_non_exhaustive()
    }
}

/// A handle to a kmscks instance. Cheap to clone; all clones share the instance. The instance
/// shuts down (background worker joined, data directory unlocked) when the last handle drops.
#[derive(Clone)]
pub struct Kms {
    shared: Arc<Shared>,
    principal: Arc<str>,
    _life: Arc<Lifetime>,
}

impl std::fmt::Debug for Kms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kms")
            .field("principal", &self.principal)
            .finish_non_exhaustive()
    }
}

/// Locks a mutex, recovering from poisoning: every critical section here leaves the state
/// consistent before anything that could panic (commit applies only after a durable write).
pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// When a wait of `timeout` that starts now ends; `None` for never: a timeout past what an
/// `Instant` can hold (`Duration::MAX`, which a caller of the Rust API may well pass for "no
/// limit") waits as long as it takes, where adding it to the clock would panic.
pub(super) fn deadline_after(timeout: Duration) -> Option<std::time::Instant> {
    std::time::Instant::now().checked_add(timeout)
}

pub(super) const BINCODE: bincode::config::Configuration = bincode::config::standard();

impl Kms {
    /// Opens (or creates) a durable instance in `dir` with the default configuration.
    pub fn open(dir: impl AsRef<Path>) -> Result<Kms> {
        Kms::open_with(dir, KmsConfig::default())
    }

    /// Opens (or creates) a durable instance in `dir`.
    pub fn open_with(dir: impl AsRef<Path>, config: KmsConfig) -> Result<Kms> {
        // The master key is read first (a sealed key file with a missing or wrong passphrase
        // stops the open here): the journal and snapshots are authenticated with a key derived
        // from it, so they are checked as they are read.
        let (mut keyring, mut disk, recovered) =
            Keyring::open_data_dir(dir.as_ref(), config.passphrase.key_file_options()?)?;
        let mut state = match &recovered.snapshot {
            Some(bytes) => compaction::decode_snapshot(bytes, disk.path())?,
            None => State::new(config.scope.clone()),
        };
        if state.scope != config.scope {
            return Err(err!(
                StorageException,
                "data directory {} belongs to account {} in {}, not account {} in {}",
                disk.path().display(),
                state.scope.account_id,
                state.scope.region,
                config.scope.account_id,
                config.scope.region
            ));
        }
        let mut replayed = Vec::new();
        compaction::replay(
            &mut state,
            &recovered.records,
            disk.path(),
            Some(&mut replayed),
        )?;
        let now = config.clock.now();
        let journal_from = replayed
            .first()
            .map_or(state.kms.next_event_seq, |(seq, _)| *seq);
        let (mut events, need) = EventLog::open(
            disk.path(),
            config.event_log_options(),
            now,
            state.kms.next_event_seq,
            journal_from,
        )?;
        for (seq, event) in replayed.iter().filter(|(seq, _)| *seq >= need) {
            events.append(*seq, [event], now)?;
        }
        // Every event is on disk before a compaction drops the records that hold them.
        events.sync()?;
        if recovered.snapshot.is_none() {
            // Journal records do not carry the scope; only a snapshot does. Write one now, so
            // that the account and Region are checked on every later open.
            disk.compact(&compaction::encode_snapshot(&state)?)?;
        }
        // Every lineage key the state names is loaded here, before any transaction.
        keyring.load(Some(&disk), state.hsm.wrapping_keys());
        Kms::start(state, Some(disk), events, keyring, config)
    }

    /// A non-durable instance (for tests and experiments): nothing is written anywhere.
    pub fn in_memory() -> Kms {
        Kms::in_memory_with(KmsConfig::default())
    }

    /// A non-durable instance with this configuration.
    pub fn in_memory_with(config: KmsConfig) -> Kms {
        let state = State::new(config.scope.clone());
        Kms::start(
            state,
            None,
            EventLog::in_memory(),
            Keyring::in_memory(),
            config,
        )
        .expect("an in-memory instance has no I/O to fail")
    }

    fn start(
        state: State,
        disk: Option<DataDir>,
        events: EventLog,
        keyring: Keyring,
        config: KmsConfig,
    ) -> Result<Kms> {
        let principal: Arc<str> = config.scope.root_principal().into();
        let engine = Engine::new(EngineConfig {
            scope: config.scope.clone(),
            ..config.engine.clone()
        })?;
        let mut mirror = Mirror::with_clock(config.clock.clone());
        // A key whose state cannot reach the engine (a damaged cluster key file, say) is
        // closed there, with its error, and retried at every sync; the other keys serve.
        if let Err(e) = mirror.sync(&engine, &state, &config.scope, &keyring, &[]) {
            // An engine that refused the first batch whole holds nothing: that is no open.
            if mirror.needs_sync() {
                return Err(e);
            }
            tracing::warn!("opened with a key closed to the data plane: {e}");
        }
        let throttle = config
            .quotas
            .clone()
            .map(|q| throttle::Throttle::new(q, config.clock.now()));
        let tally_since = config.clock.now();
        let shared = Arc::new(Shared {
            throttle,
            tally: trail_ops::tally_for(&config),
            engine,
            core: Mutex::new(Core {
                state,
                disk,
                events,
                keyring,
                mirror,
                tally_since,
                last_usage: std::collections::HashMap::new(),
                tracking_since: tally_since,
            }),
            config,
            changed: Condvar::new(),
            tasks: Mutex::new(Tasks::default()),
            tasks_cv: Condvar::new(),
            fork: ForkGuard::new(),
            data_plane_stale: Default::default(),
            state_suspect: Default::default(),
        });
        // Resume what a previous run left half-way: CONNECTING and DISCONNECTING stores …
        {
            let core = lock(&shared.core);
            for s in core.state.kms.stores.values() {
                match s.state {
                    ConnectionState::Connecting => shared.schedule(
                        Task::Complete(FollowUpKey::Connect(s.id.clone(), s.epoch)),
                        Duration::ZERO,
                    ),
                    ConnectionState::Disconnecting => shared.schedule(
                        Task::Complete(FollowUpKey::Disconnect(s.id.clone(), s.epoch)),
                        Duration::ZERO,
                    ),
                    _ => {}
                }
            }
            // … timed network cuts …
            for (cluster_id, due) in crate::hsm::timed_cuts(&core.state.hsm) {
                shared.schedule_at(Task::HealNetwork(cluster_id.to_string(), due), due);
            }
            // … and clusters in a passing state.
            let now = shared.config.clock.now();
            for (cluster, at) in crate::hsm::passing_clusters(&core.state.hsm) {
                let after = if at > now {
                    at.since(now)
                } else {
                    Duration::ZERO
                };
                shared.schedule(Task::SettleCluster(cluster), after);
            }
        }
        shared.schedule(Task::DeletionSweep, shared.config.deletion_check_interval);
        if let Some(at) = lock(&shared.core).state.kms.earliest_expiry() {
            shared.schedule_at(Task::MaterialExpiry, at);
        }
        if let Some(every) = shared.config.data_plane_event_interval {
            shared.schedule(Task::FlushDataPlaneEvents, every);
        }
        let weak = Arc::downgrade(&shared);
        let worker = std::thread::Builder::new()
            .name("kmscks-control".into())
            .spawn(move || background(weak))
            .map_err(|e| {
                err!(
                    KMSInternalException,
                    "cannot start the background worker: {e}"
                )
            })?;
        let waker = clock_waker(&shared);
        shared.config.clock.on_jump(Arc::downgrade(&waker));
        let life = Arc::new(Lifetime {
            shared: Arc::downgrade(&shared),
            worker: Mutex::new(Some(Joinable::new(worker))),
            _clock_waker: waker,
        });
        Ok(Kms {
            shared,
            principal,
            _life: life,
        })
    }

    /// A handle to the same instance that acts as `principal` (an IAM-style ARN), so that key
    /// policies are evaluated for it. In-process handles start as the account root.
    pub fn acting_as(&self, principal: &str) -> Kms {
        Kms {
            principal: principal.into(),
            ..self.clone()
        }
    }

    /// The principal this handle acts as.
    pub fn principal(&self) -> &str {
        &self.principal
    }

    /// The account and Region.
    pub fn scope(&self) -> &Scope {
        &self.shared.config.scope
    }

    /// The AWS quotas this instance emulates, if any ([`KmsConfig::quotas`]).
    pub fn quotas(&self) -> Option<&QuotaConfig> {
        self.shared
            .throttle
            .as_ref()
            .map(throttle::Throttle::config)
    }

    internal_item! {
        /// A copy of the whole control-plane state (for tests and diagnostics; holds no secrets
        /// in the clear: key material and passwords are wrapped).
        pub fn state_snapshot(&self) -> State {
            lock(&self.shared.core).state.clone()
        }
    }

    /// How much work the data-plane mirror has done since this instance opened (for kmscks's
    /// white-box tests: what a control-plane call cost the data plane).
    #[cfg(feature = "internals")]
    #[doc(hidden)]
    pub fn mirror_stats(&self) -> crate::dataplane::MirrorStats {
        lock(&self.shared.core).mirror.stats()
    }
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T> {
    match bincode::serde::decode_from_slice::<T, _>(bytes, BINCODE) {
        Ok((value, used)) if used == bytes.len() => Ok(value),
        Ok((_, used)) => Err(err!(
            StorageException,
            "{what}: {} trailing bytes after offset {used}",
            bytes.len() - used
        )),
        Err(e) => Err(err!(StorageException, "{what} cannot be decoded: {e}")),
    }
}

#[cfg(test)]
mod sync_tests;
#[cfg(test)]
mod worker_tests;
