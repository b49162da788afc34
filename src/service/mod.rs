//! [`Kms`]: the thread-safe handle to one kmscks instance, with one method per operation.
//!
//! The control plane is a single [`State`] behind a mutex (control-plane calls are rare: AWS
//! allows 5 per second). Every call that changes something runs as a [`Tx`]; its changes are
//! written to the journal (fsync) and only then applied and acknowledged. Connect and
//! Disconnect finish asynchronously on a background worker, as on AWS; the same worker deletes
//! keys whose waiting period has ended.

use std::cmp::Reverse;
mod crypto;
mod dispatch;

use std::collections::BinaryHeap;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::control::{Change, Keyring, Record, State};
use crate::dataplane::Mirror;
use crate::engine::{Engine, EngineConfig};
use crate::err;
use crate::error::Result;
use crate::api::hsm::*;
use crate::hsm::model::AuditEvent;
use crate::hsm::{self, HsmTx};
use crate::api::kms::*;
use crate::kms::model::TrailEvent;
use crate::kms::state::KmsChange;
use crate::kms::stores::FollowUp;
use crate::kms::tx::Tx;
use crate::kms::unsupported;
use crate::kms::{aliases, keys, stores, tags};
use crate::ops::Op;
use crate::secret::Password;
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
    /// How often the background worker looks for keys whose waiting period has ended.
    pub deletion_check_interval: Duration,
    /// Journal size after which the state is compacted into a snapshot.
    pub compact_after_bytes: u64,
    /// The data-plane engine (shards, pinning, subkey lifetime); its `scope` is taken from
    /// [`KmsConfig::scope`].
    pub engine: EngineConfig,
}

impl Default for KmsConfig {
    fn default() -> KmsConfig {
        KmsConfig {
            scope: Scope::default(),
            clock: Arc::new(SystemClock),
            connect_delay: Duration::from_millis(20),
            deletion_check_interval: Duration::from_secs(1),
            compact_after_bytes: 8 << 20,
            engine: EngineConfig::default(),
        }
    }
}

impl std::fmt::Debug for KmsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KmsConfig")
            .field("scope", &self.scope)
            .field("connect_delay", &self.connect_delay)
            .field("compact_after_bytes", &self.compact_after_bytes)
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

struct Shared {
    core: Mutex<Core>,
    /// The data plane: HSM workers holding expanded keys. Never behind the core mutex.
    engine: Engine,
    config: KmsConfig,
    /// Notified after every commit, so waiters on a connection state can re-check.
    changed: Condvar,
    tasks: Mutex<Tasks>,
    tasks_cv: Condvar,
}

struct Core {
    state: State,
    disk: Option<DataDir>,
    keyring: Keyring,
    /// Earliest deletion date of any key pending deletion (recomputed when keys change).
    earliest_deletion: Option<Timestamp>,
    /// What the engine has been told.
    mirror: Mirror,
}

#[derive(Default)]
struct Tasks {
    queue: BinaryHeap<Reverse<(Instant, u64, Task)>>,
    seq: u64,
    stop: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Task {
    Complete(FollowUpKey),
    DeletionSweep,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum FollowUpKey {
    Connect(CustomKeyStoreId, u64),
    Disconnect(CustomKeyStoreId, u64),
}

/// Joins the background worker when the last user handle drops.
struct Lifetime {
    shared: Weak<Shared>,
    worker: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Lifetime {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.upgrade() {
            lock(&shared.tasks).stop = true;
            shared.tasks_cv.notify_all();
        }
        if let Some(worker) = lock(&self.worker).take() {
            let _ = worker.join();
        }
    }
}

/// Locks a mutex, recovering from poisoning: every critical section here leaves the state
/// consistent before anything that could panic (commit applies only after a durable write).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

const BINCODE: bincode::config::Configuration = bincode::config::standard();

impl Kms {
    /// Opens (or creates) a durable instance in `dir` with the default configuration.
    pub fn open(dir: impl AsRef<Path>) -> Result<Kms> {
        Kms::open_with(dir, KmsConfig::default())
    }

    /// Opens (or creates) a durable instance in `dir`.
    pub fn open_with(dir: impl AsRef<Path>, config: KmsConfig) -> Result<Kms> {
        let (mut disk, recovered) = DataDir::open(dir.as_ref())?;
        let mut state = match &recovered.snapshot {
            Some(bytes) => {
                let mut state =
                    decode::<State>(bytes, &format!("snapshot of {}", disk.path().display()))?;
                state.reindex();
                state
            }
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
        for (i, bytes) in recovered.records.iter().enumerate() {
            let record = decode::<Record>(
                bytes,
                &format!("journal record {i} of {}", disk.path().display()),
            )?;
            state.apply_record(record);
        }
        if recovered.snapshot.is_none() {
            // Journal records do not carry the scope; only a snapshot does. Write one now, so
            // that the account and Region are checked on every later open.
            let snapshot = bincode::serde::encode_to_vec(&state, BINCODE)
                .map_err(|e| err!(KMSInternalException, "cannot encode the snapshot: {e}"))?;
            disk.compact(&snapshot)?;
        }
        // Key files are read here, before any transaction: the master key (a sealed file with
        // a missing or wrong passphrase stops the open) and every lineage key the state names.
        let mut keyring = Keyring::open(&disk)?;
        keyring.load(Some(&disk), state.hsm.wrapping_keys());
        Kms::start(state, Some(disk), keyring, config)
    }

    /// A non-durable instance (for tests and experiments): nothing is written anywhere.
    pub fn in_memory() -> Kms {
        Kms::in_memory_with(KmsConfig::default())
    }

    /// A non-durable instance with this configuration.
    pub fn in_memory_with(config: KmsConfig) -> Kms {
        let state = State::new(config.scope.clone());
        Kms::start(state, None, Keyring::in_memory(), config)
            .expect("an in-memory instance has no I/O to fail")
    }

    fn start(
        state: State,
        disk: Option<DataDir>,
        keyring: Keyring,
        config: KmsConfig,
    ) -> Result<Kms> {
        let principal: Arc<str> = config.scope.root_principal().into();
        let earliest_deletion = earliest_deletion(&state);
        let engine = Engine::new(EngineConfig {
            scope: config.scope.clone(),
            ..config.engine.clone()
        })?;
        let mut mirror = Mirror::default();
        mirror.sync(&engine, &state, &config.scope, &keyring, &[])?;
        let shared = Arc::new(Shared {
            engine,
            core: Mutex::new(Core {
                state,
                disk,
                keyring,
                earliest_deletion,
                mirror,
            }),
            config,
            changed: Condvar::new(),
            tasks: Mutex::new(Tasks::default()),
            tasks_cv: Condvar::new(),
        });
        // Resume what a previous run left half-way: CONNECTING and DISCONNECTING stores.
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
        }
        shared.schedule(Task::DeletionSweep, shared.config.deletion_check_interval);
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
        let life = Arc::new(Lifetime {
            shared: Arc::downgrade(&shared),
            worker: Mutex::new(Some(worker)),
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

    /// Runs a read-only operation.
    fn read<R>(&self, f: impl FnOnce(&Tx<'_>) -> Result<R>) -> Result<R> {
        let core = self.shared.core_after_sweep()?;
        let now = self.shared.config.clock.now();
        let tx = Tx::new(
            &core.state.kms,
            &core.state.hsm,
            now,
            &self.shared.config.scope,
            &core.keyring,
            &self.principal,
        );
        f(&tx)
    }

    /// Runs an operation that changes state: its changes are durable before it returns `Ok`.
    fn write<R>(&self, f: impl FnOnce(&mut Tx<'_>) -> Result<R>) -> Result<R> {
        let mut core = self.shared.core_after_sweep()?;
        let out = self.shared.run(&mut core, &self.principal, f);
        drop(core);
        self.shared.changed.notify_all();
        out
    }

    /// Like [`Kms::write`], for operations whose failures change state too (a failed login is
    /// counted): the inner result is returned after the changes are committed.
    fn write_always<R>(&self, f: impl FnOnce(&mut Tx<'_>) -> Result<R>) -> Result<R> {
        self.write(|tx| Ok(f(tx)))?
    }

    fn follow_up(&self, follow: FollowUp) {
        let delay = self.shared.config.connect_delay;
        match follow {
            FollowUp::None => {}
            FollowUp::Connect(id, epoch) => self
                .shared
                .schedule(Task::Complete(FollowUpKey::Connect(id, epoch)), delay),
            FollowUp::Disconnect(id, epoch) => self
                .shared
                .schedule(Task::Complete(FollowUpKey::Disconnect(id, epoch)), delay),
        }
    }

    // ---- Custom key stores ------------------------------------------------------------------

    /// CreateCustomKeyStore.
    pub fn create_custom_key_store(
        &self,
        req: &CreateCustomKeyStoreRequest,
    ) -> Result<CreateCustomKeyStoreResponse> {
        self.write(|tx| {
            keys::require_root(tx, Op::CreateCustomKeyStore.action())?;
            stores::create(tx, req)
        })
    }

    /// DescribeCustomKeyStores.
    pub fn describe_custom_key_stores(
        &self,
        req: &DescribeCustomKeyStoresRequest,
    ) -> Result<DescribeCustomKeyStoresResponse> {
        self.read(|tx| {
            keys::require_root(tx, Op::DescribeCustomKeyStores.action())?;
            stores::describe(tx.state, req)
        })
    }

    /// UpdateCustomKeyStore.
    pub fn update_custom_key_store(&self, req: &UpdateCustomKeyStoreRequest) -> Result<Empty> {
        self.write(|tx| {
            keys::require_root(tx, Op::UpdateCustomKeyStore.action())?;
            stores::update(tx, req)
        })
    }

    /// DeleteCustomKeyStore.
    pub fn delete_custom_key_store(&self, req: &CustomKeyStoreIdRequest) -> Result<Empty> {
        self.write(|tx| {
            keys::require_root(tx, Op::DeleteCustomKeyStore.action())?;
            stores::delete(tx, req)
        })
    }

    /// ConnectCustomKeyStore: returns at once; poll DescribeCustomKeyStores (or
    /// [`Kms::wait_for_connection`]) for CONNECTED or FAILED.
    pub fn connect_custom_key_store(&self, req: &CustomKeyStoreIdRequest) -> Result<Empty> {
        let follow = self.write(|tx| {
            keys::require_root(tx, Op::ConnectCustomKeyStore.action())?;
            stores::connect(tx, req)
        })?;
        self.follow_up(follow);
        Ok(Empty {})
    }

    /// DisconnectCustomKeyStore: keys are unusable at once; the store reads DISCONNECTING
    /// until the logout completes.
    pub fn disconnect_custom_key_store(&self, req: &CustomKeyStoreIdRequest) -> Result<Empty> {
        let follow = self.write(|tx| {
            keys::require_root(tx, Op::DisconnectCustomKeyStore.action())?;
            stores::disconnect(tx, req)
        })?;
        self.follow_up(follow);
        Ok(Empty {})
    }

    /// Waits until the store is neither CONNECTING nor DISCONNECTING (or `timeout` passes)
    /// and returns its description.
    pub fn wait_for_connection(
        &self,
        custom_key_store_id: &str,
        timeout: Duration,
    ) -> Result<CustomKeyStoreEntry> {
        let deadline = Instant::now() + timeout;
        let req = DescribeCustomKeyStoresRequest {
            custom_key_store_id: Some(custom_key_store_id.to_owned()),
            ..Default::default()
        };
        let mut core = lock(&self.shared.core);
        loop {
            let entry = stores::describe(&core.state.kms, &req)?
                .custom_key_stores
                .remove(0);
            let settled = !matches!(
                entry.connection_state,
                ConnectionState::Connecting | ConnectionState::Disconnecting
            );
            let now = Instant::now();
            if settled || now >= deadline {
                return Ok(entry);
            }
            core = self
                .shared
                .changed
                .wait_timeout(core, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    // ---- Keys -----------------------------------------------------------------------------

    /// CreateKey.
    pub fn create_key(&self, req: &CreateKeyRequest) -> Result<KeyMetadataResponse> {
        self.write(|tx| keys::create(tx, req))
            .map(|created| created.response)
    }

    /// DescribeKey.
    pub fn describe_key(&self, req: &KeyIdRequest) -> Result<KeyMetadataResponse> {
        self.read(|tx| keys::describe(tx, req))
    }

    /// ListKeys.
    pub fn list_keys(&self, req: &ListRequest) -> Result<ListKeysResponse> {
        self.read(|tx| keys::list(tx, req))
    }

    /// EnableKey.
    pub fn enable_key(&self, req: &KeyIdRequest) -> Result<Empty> {
        self.write(|tx| keys::set_enabled(tx, req, true))
    }

    /// DisableKey.
    pub fn disable_key(&self, req: &KeyIdRequest) -> Result<Empty> {
        self.write(|tx| keys::set_enabled(tx, req, false))
    }

    /// UpdateKeyDescription.
    pub fn update_key_description(&self, req: &UpdateKeyDescriptionRequest) -> Result<Empty> {
        self.write(|tx| keys::update_description(tx, req))
    }

    /// ScheduleKeyDeletion.
    pub fn schedule_key_deletion(
        &self,
        req: &ScheduleKeyDeletionRequest,
    ) -> Result<ScheduleKeyDeletionResponse> {
        self.write(|tx| keys::schedule_deletion(tx, req))
    }

    /// CancelKeyDeletion.
    pub fn cancel_key_deletion(&self, req: &KeyIdRequest) -> Result<KeyIdResponse> {
        self.write(|tx| keys::cancel_deletion(tx, req))
    }

    /// PutKeyPolicy.
    pub fn put_key_policy(&self, req: &PutKeyPolicyRequest) -> Result<Empty> {
        self.write(|tx| keys::put_policy(tx, req))
    }

    /// GetKeyPolicy.
    pub fn get_key_policy(&self, req: &GetKeyPolicyRequest) -> Result<GetKeyPolicyResponse> {
        self.read(|tx| keys::get_policy(tx, req))
    }

    /// ListKeyPolicies.
    pub fn list_key_policies(&self, req: &ListRequest) -> Result<ListKeyPoliciesResponse> {
        self.read(|tx| keys::list_policies(tx, req))
    }

    /// TagResource.
    pub fn tag_resource(&self, req: &TagResourceRequest) -> Result<Empty> {
        self.write(|tx| tags::tag(tx, req))
    }

    /// UntagResource.
    pub fn untag_resource(&self, req: &UntagResourceRequest) -> Result<Empty> {
        self.write(|tx| tags::untag(tx, req))
    }

    /// ListResourceTags.
    pub fn list_resource_tags(&self, req: &ListRequest) -> Result<ListResourceTagsResponse> {
        self.read(|tx| tags::list(tx, req))
    }

    /// CreateAlias.
    pub fn create_alias(&self, req: &AliasRequest) -> Result<Empty> {
        self.write(|tx| aliases::create(tx, req))
    }

    /// UpdateAlias.
    pub fn update_alias(&self, req: &AliasRequest) -> Result<Empty> {
        self.write(|tx| aliases::update(tx, req))
    }

    /// DeleteAlias.
    pub fn delete_alias(&self, req: &DeleteAliasRequest) -> Result<Empty> {
        self.write(|tx| aliases::delete(tx, req))
    }

    /// ListAliases.
    pub fn list_aliases(&self, req: &ListRequest) -> Result<ListAliasesResponse> {
        self.read(|tx| aliases::list(tx, req))
    }

    /// GetKeyRotationStatus.
    pub fn get_key_rotation_status(&self, req: &KeyIdRequest) -> Result<KeyRotationStatusResponse> {
        self.read(|tx| unsupported::rotation_status(tx, req))
    }

    /// Any operation kmscks refuses (rotation, import, key pairs, signing, MACs,
    /// replication): always an error, AWS's for custom key store keys.
    pub fn refused(&self, op: Refused, req: &KeyIdRequest) -> Result<Empty> {
        self.read(|tx| unsupported::refuse(tx, op, req))
            .map(|()| Empty {})
    }

    /// Deletes every key whose waiting period has ended (the background worker does this on
    /// its own every `deletion_check_interval`; every call also does it first). Returns how
    /// many keys were deleted.
    pub fn run_scheduled_deletions(&self) -> Result<usize> {
        let mut core = lock(&self.shared.core);
        self.shared.sweep(&mut core)
    }

    /// The KMS event log (what CloudTrail would record), oldest first.
    pub fn kms_events(&self) -> Result<Vec<TrailEvent>> {
        self.read(|tx| {
            keys::require_root(tx, Op::LookupEvents.action())?;
            Ok(tx.state.trail.clone())
        })
    }

    // ---- Simulated CloudHSM ---------------------------------------------------------------

    /// Runs a CloudHSM operation for the account root.
    fn cluster_admin<R>(&self, op: Op, f: impl FnOnce(&mut HsmTx<'_>) -> Result<R>) -> Result<R> {
        self.write(|tx| {
            require_cluster_admin(tx, op.action())?;
            tx.in_hsm(f)
        })
    }

    /// CreateCluster.
    pub fn create_cluster(&self, req: &CreateClusterRequest) -> Result<ClusterResponse> {
        self.cluster_admin(Op::CreateCluster, |tx| hsm::create_cluster(tx, req))
            .map(|cluster| ClusterResponse { cluster })
    }

    /// DescribeClusters.
    pub fn describe_clusters(
        &self,
        req: &DescribeClustersRequest,
    ) -> Result<DescribeClustersResponse> {
        self.read(|tx| {
            require_cluster_admin(tx, Op::DescribeClusters.action())?;
            hsm::describe_clusters(tx.cloudhsm, req)
        })
    }

    /// DeleteCluster.
    pub fn delete_cluster(&self, cluster_id: &str) -> Result<ClusterResponse> {
        self.cluster_admin(Op::DeleteCluster, |tx| hsm::delete_cluster(tx, cluster_id))
            .map(|cluster| ClusterResponse { cluster })
    }

    /// CreateHsm.
    pub fn create_hsm(&self, req: &CreateHsmRequest) -> Result<HsmResponse> {
        self.cluster_admin(Op::CreateHsm, |tx| hsm::create_hsm(tx, req))
            .map(|hsm| HsmResponse { hsm })
    }

    /// DeleteHsm.
    pub fn delete_hsm(&self, req: &DeleteHsmRequest) -> Result<DeleteHsmResponse> {
        self.cluster_admin(Op::DeleteHsm, |tx| hsm::delete_hsm(tx, req))
    }

    /// InitializeCluster with the user's signed certificate and trust anchor.
    pub fn initialize_cluster(
        &self,
        req: &InitializeClusterRequest,
    ) -> Result<InitializeClusterResponse> {
        self.cluster_admin(Op::InitializeCluster, |tx| hsm::initialize_cluster(tx, req))
    }

    /// InitializeCluster with a CA kmscks makes: signs the CSR itself and returns the CA
    /// certificate as `TrustAnchor` (what tests and bootstrap use).
    pub fn initialize_cluster_with_new_ca(
        &self,
        cluster_id: &str,
    ) -> Result<InitializeClusterResponse> {
        self.cluster_admin(Op::InitializeClusterWithNewCa, |tx| {
            hsm::initialize_cluster_with_new_ca(tx, cluster_id)
        })
    }

    /// Takes a backup of a cluster now.
    pub fn create_backup(&self, cluster_id: &str) -> Result<BackupDescription> {
        self.cluster_admin(Op::CreateBackup, |tx| hsm::create_backup(tx, cluster_id))
    }

    /// DescribeBackups.
    pub fn describe_backups(&self) -> Result<Vec<BackupDescription>> {
        self.read(|tx| {
            require_cluster_admin(tx, Op::DescribeBackups.action())?;
            Ok(tx
                .cloudhsm
                .backups
                .values()
                .map(hsm::describe_backup)
                .collect())
        })
    }

    /// CopyBackupToRegion.
    pub fn copy_backup_to_region(
        &self,
        req: &CopyBackupToRegionRequest,
    ) -> Result<BackupDescription> {
        self.cluster_admin(Op::CopyBackupToRegion, |tx| {
            hsm::copy_backup_to_region(tx, req)
        })
    }

    /// DeleteBackup.
    pub fn delete_backup(&self, backup_id: &str) -> Result<BackupDescription> {
        self.cluster_admin(Op::DeleteBackup, |tx| hsm::delete_backup(tx, backup_id))
    }

    /// `user create` (CloudHSM CLI).
    pub fn create_hsm_user(&self, req: &UserRequest) -> Result<UserDescription> {
        self.cluster_admin(Op::CreateUser, |tx| hsm::create_user(tx, req))
    }

    /// `user delete`.
    pub fn delete_hsm_user(&self, cluster_id: &str, username: &str) -> Result<()> {
        self.cluster_admin(Op::DeleteUser, |tx| {
            hsm::delete_user(tx, cluster_id, username)
        })
    }

    /// `user change-password` (also unlocks the user).
    pub fn change_hsm_user_password(&self, req: &UserRequest) -> Result<()> {
        self.cluster_admin(Op::ChangePassword, |tx| hsm::change_password(tx, req))
    }

    /// `user list`.
    pub fn list_hsm_users(&self, cluster_id: &str) -> Result<Vec<UserDescription>> {
        self.read(|tx| {
            require_cluster_admin(tx, Op::ListUsers.action())?;
            hsm::list_users(tx.cloudhsm, cluster_id)
        })
    }

    /// `login` from the CloudHSM CLI; a wrong password counts towards the lockout.
    pub fn login_hsm_user(
        &self,
        cluster_id: &str,
        username: &str,
        password: &Password,
    ) -> Result<()> {
        self.write_always(|tx| {
            require_cluster_admin(tx, Op::Login.action())?;
            tx.in_hsm(|h| hsm::login_external(h, cluster_id, username, password))
        })
    }

    /// `logout` of a CloudHSM CLI session.
    pub fn logout_hsm_user(&self, cluster_id: &str, username: &str) -> Result<()> {
        self.cluster_admin(Op::Logout, |tx| {
            hsm::logout_external(tx, cluster_id, username)
        })
    }

    /// `key list`: metadata of the cluster's key objects, never their bytes.
    pub fn list_key_objects(&self, cluster_id: &str) -> Result<Vec<KeyObjectDescription>> {
        self.read(|tx| {
            require_cluster_admin(tx, Op::ListKeyObjects.action())?;
            hsm::list_key_objects(tx.cloudhsm, cluster_id)
        })
    }

    /// `key delete` as the key's owner (removing an orphaned key by hand).
    pub fn delete_key_object(
        &self,
        cluster_id: &str,
        handle: u64,
        username: &str,
        password: &Password,
    ) -> Result<()> {
        self.cluster_admin(Op::DeleteKeyObject, |tx| {
            hsm::delete_key_object(tx, cluster_id, handle, username, password)
        })
    }

    /// The cluster's audit log: each HSM's stream, independent of the KMS event log.
    pub fn hsm_audit_log(
        &self,
        cluster_id: &str,
        hsm_id: Option<&str>,
    ) -> Result<Vec<(HsmId, Vec<AuditEvent>)>> {
        self.read(|tx| {
            require_cluster_admin(tx, Op::AuditLog.action())?;
            hsm::audit_log(tx.cloudhsm, cluster_id, hsm_id)
        })
    }

    /// Injects a fault into a cluster.
    pub fn inject_fault(&self, cluster_id: &str, fault: &Fault) -> Result<()> {
        self.cluster_admin(Op::InjectFault, |tx| {
            hsm::inject_fault(tx, cluster_id, fault)
        })
    }

    internal_item! {
        /// A copy of the whole control-plane state (for tests and diagnostics; holds no secrets
        /// in the clear: key material and passwords are wrapped).
        pub fn state_snapshot(&self) -> State {
            lock(&self.shared.core).state.clone()
        }
    }
}

/// Cluster administration and fault injection are for the account root (the daemon's uid).
fn require_cluster_admin(tx: &Tx<'_>, action: PolicyAction) -> Result<()> {
    if tx.principal == tx.scope.root_principal() {
        Ok(())
    } else {
        Err(err!(
            AccessDeniedException,
            "User: {} is not authorized to perform: {action}",
            tx.principal
        ))
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

fn earliest_deletion(state: &State) -> Option<Timestamp> {
    state
        .kms
        .keys
        .values()
        .filter_map(|k| k.deletion_date())
        .min()
}

impl Shared {
    fn schedule(&self, task: Task, after: Duration) {
        let mut tasks = lock(&self.tasks);
        tasks.seq += 1;
        let seq = tasks.seq;
        tasks
            .queue
            .push(Reverse((Instant::now() + after, seq, task)));
        drop(tasks);
        self.tasks_cv.notify_all();
    }

    /// Locks the core, first deleting keys whose waiting period has ended.
    fn core_after_sweep(&self) -> Result<MutexGuard<'_, Core>> {
        let mut core = lock(&self.core);
        self.sweep(&mut core)?;
        Ok(core)
    }

    fn sweep(&self, core: &mut Core) -> Result<usize> {
        let now = self.config.clock.now();
        if core.earliest_deletion.is_none_or(|t| t > now) {
            return Ok(0);
        }
        let due = keys::due_for_deletion(&core.state.kms, now);
        let root: String = self.config.scope.root_principal();
        let n = due.len();
        self.run(core, &root, |tx| {
            for id in &due {
                keys::delete_now(tx, id);
            }
            Ok(())
        })?;
        Ok(n)
    }

    /// Runs `f` as a transaction and commits what it recorded when it succeeds.
    fn run<R>(
        &self,
        core: &mut Core,
        principal: &str,
        f: impl FnOnce(&mut Tx<'_>) -> Result<R>,
    ) -> Result<R> {
        let now = self.config.clock.now();
        let (out, mut outcome) = {
            let mut tx = Tx::new(
                &core.state.kms,
                &core.state.hsm,
                now,
                &self.config.scope,
                &core.keyring,
                principal,
            );
            let out = f(&mut tx)?;
            (out, tx.finish())
        };
        // Wrapping keys the operation named are created now, outside the transaction and
        // before its record is written.
        for name in std::mem::take(&mut outcome.hsm.new_keys) {
            core.keyring.create(core.disk.as_ref(), &name)?;
        }
        self.commit(core, now, Change::all_of(outcome))?;
        Ok(out)
    }

    fn commit(&self, core: &mut Core, now: Timestamp, changes: Vec<Change>) -> Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        let keys_changed = changes.iter().any(|c| {
            matches!(
                c,
                Change::Kms(KmsChange::PutKey(_) | KmsChange::DeleteKey(_))
            )
        });
        let record = Record { at: now, changes };
        let changes_applied = record.changes.clone();
        if let Some(disk) = core.disk.as_mut() {
            let bytes = bincode::serde::encode_to_vec(&record, BINCODE)
                .map_err(|e| err!(KMSInternalException, "cannot encode a journal record: {e}"))?;
            disk.append(&bytes)?;
        }
        core.state.apply_record(record);
        // The record is durable: the data plane must follow it. A failure here (a wrapped key
        // that no longer unwraps) is reported to the caller, though the change stands.
        let synced = core.mirror.sync(
            &self.engine,
            &core.state,
            &self.config.scope,
            &core.keyring,
            &changes_applied,
        );
        if keys_changed {
            core.earliest_deletion = earliest_deletion(&core.state);
        }
        if let Some(disk) = core.disk.as_mut() {
            if disk.journal_bytes() > self.config.compact_after_bytes {
                let snapshot = bincode::serde::encode_to_vec(&core.state, BINCODE)
                    .map_err(|e| err!(KMSInternalException, "cannot encode the snapshot: {e}"))?;
                // The record is durable already; a failed compaction only delays the next one.
                let _ = disk.compact(&snapshot);
            }
        }
        synced
    }

    fn complete(&self, follow: &FollowUpKey) {
        let mut core = lock(&self.core);
        let root = self.config.scope.root_principal();
        // A failure here (e.g. the disk) leaves the store CONNECTING/DISCONNECTING; the next
        // open resumes it.
        let _ = self.run(&mut core, &root, |tx| match follow {
            FollowUpKey::Connect(id, epoch) => stores::complete_connect(tx, id, *epoch),
            FollowUpKey::Disconnect(id, epoch) => stores::complete_disconnect(tx, id, *epoch),
        });
        drop(core);
        self.changed.notify_all();
    }
}

/// The background worker: finishes connects and disconnects when due, and sweeps deletions.
fn background(shared: Weak<Shared>) {
    loop {
        let Some(strong) = shared.upgrade() else {
            return;
        };
        let next = {
            let mut tasks = lock(&strong.tasks);
            loop {
                if tasks.stop {
                    return;
                }
                let now = Instant::now();
                match tasks.queue.peek() {
                    Some(Reverse((at, _, _))) if *at <= now => {
                        break tasks.queue.pop().map(|Reverse((_, _, t))| t)
                    }
                    Some(Reverse((at, _, _))) => {
                        let wait = *at - now;
                        tasks = strong
                            .tasks_cv
                            .wait_timeout(tasks, wait)
                            .unwrap_or_else(|p| p.into_inner())
                            .0;
                    }
                    None => {
                        tasks = strong
                            .tasks_cv
                            .wait(tasks)
                            .unwrap_or_else(|p| p.into_inner())
                    }
                }
            }
        };
        match next {
            Some(Task::Complete(follow)) => strong.complete(&follow),
            Some(Task::DeletionSweep) => {
                let _ = strong.sweep(&mut lock(&strong.core));
                strong.changed.notify_all();
                strong.schedule(Task::DeletionSweep, strong.config.deletion_check_interval);
            }
            None => {}
        }
        drop(strong);
    }
}
