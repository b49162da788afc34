//! The control plane's own layer: the whole state of one instance (the CloudHSM side and KMS
//! side together), the journal record that moves it, and the keyring of wrapping keys.
//!
//! Layering: `hsm` ← `kms` ← `control` ← `service`. The CloudHSM side and KMS each own their
//! state, changes and transaction type; this layer composes them into one [`State`] and one
//! [`Record`] per acknowledged operation (so an operation is durable all or nothing), loads and
//! creates wrapping-key files (only here, never inside a transaction), and keeps the KMS event
//! log out of the state, in rotated JSON-lines files beside the journal ([`event_log`]), shown
//! as CloudTrail records ([`cloudtrail`]). The
//! on-disk encoding version of its state and records is the store's
//! (`store::journal::FORMAT_VERSION`). The commit path that uses it is in `service`; the data
//! plane mirror (`dataplane`) reads the [`State`] it keeps.

pub mod cloudtrail;
pub mod event_line;
pub mod event_log;
pub mod keyring;
pub mod state;

pub use event_log::{EventLog, EventLogOptions};
pub use keyring::Keyring;
pub use state::{Change, Record, State};
