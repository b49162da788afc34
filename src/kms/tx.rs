//! A KMS transaction: read KMS's state (and the CloudHSM side's), decide, collect the changes.
//!
//! KMS sits above the simulated CloudHSM: a KMS operation reads [`CloudHsmState`] directly and
//! changes it only by running CloudHSM operations in an [`HsmTx`] ([`Tx::in_hsm`]), whose
//! changes are collected beside KMS's own. Wrapping goes through the same narrow
//! [`Wrapper`] the HSMs use, over keys already loaded: a transaction does no I/O.

use super::state::{KmsChange, KmsState};
use crate::hsm::{CloudHsmState, HsmOutcome, HsmSettings, HsmTx, Wrapper};
use crate::types::{Scope, Timestamp};

/// Name of the wrapping key KMS keeps default-store key material and key store passwords
/// under (the KMS master key).
pub const MASTER_KEY: &str = "kms-master";

/// One KMS operation in progress. Nothing it pushes is visible until the caller commits it.
pub struct Tx<'a> {
    /// KMS's state as it was when the operation started.
    pub state: &'a KmsState,
    /// The CloudHSM side's state as it was when the operation started.
    pub cloudhsm: &'a CloudHsmState,
    /// The operation's time.
    pub now: Timestamp,
    /// Account and Region.
    pub scope: &'a Scope,
    /// Wrapping keys (already loaded).
    pub keys: &'a dyn Wrapper,
    /// The principal making the call.
    pub principal: &'a str,
    /// PBKDF2 iterations for the HSM user password hashes made in this transaction (see
    /// [`HsmTx::password_iterations`]).
    pub hsm_password_iterations: u32,
    /// The number of custom key stores allowed, when AWS quotas are emulated; `None`: no
    /// limit (the seed's custom key stores have no resource quota).
    pub max_custom_key_stores: Option<usize>,
    /// The CloudHSM side's passing-state length and emulated quotas (see [`HsmSettings`]).
    pub hsm_settings: HsmSettings,
    changes: Vec<KmsChange>,
    hsm: HsmOutcome,
}

/// What a finished [`Tx`] leaves for the caller to commit.
#[derive(Debug, Default)]
pub struct Outcome {
    /// CloudHSM changes and the wrapping keys they need created.
    pub hsm: HsmOutcome,
    /// KMS changes, in order.
    pub kms: Vec<KmsChange>,
}

impl<'a> Tx<'a> {
    /// Starts a transaction.
    pub fn new(
        state: &'a KmsState,
        cloudhsm: &'a CloudHsmState,
        now: Timestamp,
        scope: &'a Scope,
        keys: &'a dyn Wrapper,
        principal: &'a str,
    ) -> Tx<'a> {
        Tx {
            state,
            cloudhsm,
            now,
            scope,
            keys,
            principal,
            hsm_password_iterations: crate::hsm::PASSWORD_ITERATIONS,
            max_custom_key_stores: None,
            hsm_settings: HsmSettings::default(),
            changes: Vec::new(),
            hsm: HsmOutcome::default(),
        }
    }

    /// Records a change.
    pub fn push(&mut self, change: KmsChange) {
        self.changes.push(change);
    }

    /// Runs a CloudHSM operation as part of this transaction, keeping what it records.
    pub fn in_hsm<R>(&mut self, f: impl FnOnce(&mut HsmTx<'a>) -> R) -> R {
        let mut h = HsmTx::new(self.cloudhsm, self.now, self.scope, self.keys);
        h.password_iterations = self.hsm_password_iterations;
        h.settings = self.hsm_settings;
        let out = f(&mut h);
        let done = h.finish();
        self.hsm.changes.extend(done.changes);
        self.hsm.new_keys.extend(done.new_keys);
        out
    }

    /// Ends the transaction, giving back its changes.
    pub fn finish(self) -> Outcome {
        Outcome {
            hsm: self.hsm,
            kms: self.changes,
        }
    }
}
