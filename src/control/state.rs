//! The whole control-plane state, the change that moves it, and the journal record.
//!
//! Every control-plane operation reads the state, decides, and produces a list of [`Change`]s
//! (CloudHSM changes and KMS changes). The list is written to the journal as one [`Record`]
//! and only then applied, so an operation is either wholly durable and visible or not at all.
//! `apply` is deterministic and infallible: replaying the journal over the last snapshot
//! rebuilds exactly the same state.

use serde::{Deserialize, Serialize};

use crate::hsm::{CloudHsmState, HsmChange};
use crate::kms::state::{KmsChange, KmsState};
use crate::kms::tx::Outcome;
use crate::types::{Scope, Timestamp};

/// Everything kmscks knows, in memory.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// Account and Region this state belongs to.
    pub scope: Scope,
    /// The simulated CloudHSM service.
    pub hsm: CloudHsmState,
    /// KMS: custom key stores, keys, aliases, the event count (the events are in the event
    /// log, [`super::event_log`]).
    pub kms: KmsState,
}

/// One atomic step of a [`Record`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Change {
    /// A change to the CloudHSM side.
    Hsm(HsmChange),
    /// A change to KMS.
    Kms(KmsChange),
}

/// What one acknowledged operation wrote: the unit of the journal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// When it was committed.
    pub at: Timestamp,
    /// The changes, applied in order.
    pub changes: Vec<Change>,
}

impl State {
    /// An empty state for `scope`.
    pub fn new(scope: Scope) -> State {
        State {
            scope,
            ..State::default()
        }
    }

    /// Applies one change.
    pub fn apply(&mut self, change: Change) {
        match change {
            Change::Hsm(c) => self.hsm.apply(c),
            Change::Kms(c) => self.kms.apply(c),
        }
    }

    /// Applies a whole record.
    pub fn apply_record(&mut self, record: Record) {
        for change in record.changes {
            self.apply(change);
        }
    }

    /// Rebuilds the derived indexes (after decoding a snapshot).
    pub fn reindex(&mut self) {
        self.hsm.reindex();
        self.kms.reindex();
    }
}

impl Change {
    /// The changes a finished KMS transaction recorded, as one list: the CloudHSM side's
    /// first, then KMS's (the two halves apply independently of each other).
    pub fn all_of(outcome: Outcome) -> Vec<Change> {
        outcome
            .hsm
            .changes
            .into_iter()
            .map(Change::Hsm)
            .chain(outcome.kms.into_iter().map(Change::Kms))
            .collect()
    }
}
