//! The KMS layer: custom key stores and their connection states, KMS keys, aliases, tags, key
//! policies, grants, automatic rotation's schedule, the operations AWS refuses for custom key stores, and the KMS event log. Pure
//! state transitions over [`state::KmsState`] through a [`tx::Tx`]: no threads, no I/O.
//!
//! Layering: `kms` sits above `hsm` (it reads the CloudHSM state and runs CloudHSM operations
//! as `kmsuser` inside its transactions) and below the control plane (`control`), which
//! journals, applies and keeps the keyring. It names nothing above it.

pub mod aliases;
pub mod grants;
pub mod import;
pub mod intern;
pub mod keys;
pub mod model;
pub mod paging;
pub mod policy;
pub mod rotation;
pub mod state;
pub mod stores;
pub mod tags;
pub mod trail;
pub mod tx;
pub mod unsupported;

pub use tx::MASTER_KEY;
