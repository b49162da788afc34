//! A CloudHSM transaction: read the [`CloudHsmState`], decide, collect the [`HsmChange`]s.
//!
//! The simulated HSMs keep key objects wrapped under a per-lineage wrapping key. They reach
//! those keys only through the narrow [`Wrapper`] trait, implemented above by the control
//! plane's keyring over keys it has already loaded: a transaction never touches the disk or the
//! environment. A transaction that needs a *new* wrapping key (CreateCluster) only names it
//! ([`HsmTx::create_key`]); whoever commits creates it before the changes become durable.

use super::state::{CloudHsmState, HsmChange};
use crate::error::Result;
use crate::secret::{KeyMaterial, SecretBytes};
use crate::types::{Scope, Timestamp};

/// Wrapping and unwrapping under named wrapping keys that are already loaded.
pub trait Wrapper {
    /// Wraps `material` under key `name`, binding it to `aad`.
    fn wrap_key(&self, name: &str, aad: &[u8], material: &KeyMaterial) -> Result<Vec<u8>>;
    /// Unwraps key material wrapped by [`Wrapper::wrap_key`].
    fn unwrap_key(&self, name: &str, aad: &[u8], wrapped: &[u8]) -> Result<KeyMaterial>;
    /// Wraps arbitrary secret bytes (passwords, PKCS#8 keys) under key `name`.
    fn wrap_bytes(&self, name: &str, aad: &[u8], secret: &[u8]) -> Result<Vec<u8>>;
    /// Unwraps bytes wrapped by [`Wrapper::wrap_bytes`].
    fn unwrap_bytes(&self, name: &str, aad: &[u8], wrapped: &[u8]) -> Result<SecretBytes>;
}

/// How the simulated CloudHSM service behaves beyond its state: how long a cluster's passing
/// states last, and AWS CloudHSM's resource quotas when they are emulated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HsmSettings {
    /// How long CREATE_IN_PROGRESS, INITIALIZE_IN_PROGRESS and DELETE_IN_PROGRESS last on the
    /// instance's clock (the background worker ends them). Zero: the operation's response
    /// shows the passing state, and the cluster is already past it.
    pub transition: std::time::Duration,
    /// Clusters per Region (AWS's quota), when emulated; `None`: no limit.
    pub max_clusters_per_region: Option<usize>,
    /// HSMs per cluster (AWS's quota), when emulated; `None`: CloudHSM's hard limit only.
    pub max_hsms_per_cluster: Option<usize>,
}

/// One CloudHSM operation in progress. Nothing it pushes is visible until the caller commits.
pub struct HsmTx<'a> {
    /// The state as it was when the operation started.
    pub state: &'a CloudHsmState,
    /// The operation's time.
    pub now: Timestamp,
    /// Account and Region of the caller.
    pub scope: &'a Scope,
    /// Wrapping keys (already loaded).
    pub keys: &'a dyn Wrapper,
    /// PBKDF2 iterations for the user password hashes this transaction makes:
    /// [`PASSWORD_ITERATIONS`] unless configured lower for tests (`KmsConfig::
    /// hsm_password_iterations`); never below [`MIN_PASSWORD_ITERATIONS`].
    ///
    /// [`PASSWORD_ITERATIONS`]: super::password::PASSWORD_ITERATIONS
    /// [`MIN_PASSWORD_ITERATIONS`]: super::password::MIN_PASSWORD_ITERATIONS
    pub password_iterations: u32,
    /// Passing-state length and emulated quotas.
    pub settings: HsmSettings,
    changes: Vec<HsmChange>,
    new_keys: Vec<String>,
}

impl<'a> HsmTx<'a> {
    /// Starts a transaction.
    pub fn new(
        state: &'a CloudHsmState,
        now: Timestamp,
        scope: &'a Scope,
        keys: &'a dyn Wrapper,
    ) -> HsmTx<'a> {
        HsmTx {
            state,
            now,
            scope,
            keys,
            password_iterations: super::password::PASSWORD_ITERATIONS,
            settings: HsmSettings::default(),
            changes: Vec::new(),
            new_keys: Vec::new(),
        }
    }

    /// Records a change.
    pub fn push(&mut self, change: HsmChange) {
        self.changes.push(change);
    }

    /// The changes recorded so far.
    pub fn changes(&self) -> &[HsmChange] {
        &self.changes
    }

    /// Asks for a new wrapping key called `name`, to exist before the changes are committed
    /// (it cannot be used within this transaction).
    pub fn create_key(&mut self, name: String) {
        self.new_keys.push(name);
    }

    /// Ends the transaction, giving back its changes and the wrapping keys it needs created.
    pub fn finish(self) -> HsmOutcome {
        HsmOutcome {
            changes: self.changes,
            new_keys: self.new_keys,
        }
    }
}

/// What a finished [`HsmTx`] leaves for the caller to commit.
#[derive(Debug, Default)]
pub struct HsmOutcome {
    /// The changes, in order.
    pub changes: Vec<HsmChange>,
    /// Wrapping keys to create before the changes are made durable.
    pub new_keys: Vec<String>,
}
