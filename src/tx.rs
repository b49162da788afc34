//! A control-plane transaction: read the state, decide, collect the [`Change`]s to commit.

use crate::keyring::KeyAccess;
use crate::state::{Change, State};
use crate::types::{Scope, Timestamp};

/// One operation in progress. Nothing it pushes is visible until the caller commits it.
pub struct Tx<'a> {
    /// The state as it was when the operation started.
    pub state: &'a State,
    /// The operation's time.
    pub now: Timestamp,
    /// Account and Region.
    pub scope: &'a Scope,
    /// Wrapping keys.
    pub keys: KeyAccess<'a>,
    /// The principal making the call.
    pub principal: &'a str,
    changes: Vec<Change>,
}

impl<'a> Tx<'a> {
    /// Starts a transaction.
    pub fn new(
        state: &'a State,
        now: Timestamp,
        scope: &'a Scope,
        keys: KeyAccess<'a>,
        principal: &'a str,
    ) -> Tx<'a> {
        Tx {
            state,
            now,
            scope,
            keys,
            principal,
            changes: Vec::new(),
        }
    }

    /// Records a change.
    pub fn push(&mut self, change: Change) {
        self.changes.push(change);
    }

    /// The changes recorded so far.
    pub fn changes(&self) -> &[Change] {
        &self.changes
    }

    /// Ends the transaction, giving back its changes.
    pub fn into_changes(self) -> Vec<Change> {
        self.changes
    }
}
