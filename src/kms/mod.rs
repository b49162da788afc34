//! The KMS layer: custom key stores and their connection states, KMS keys, aliases, tags, key
//! policies, the operations AWS refuses for custom key stores, and the KMS event log. Pure
//! state transitions over [`crate::state::State`]: no threads, no I/O.

pub mod aliases;
pub mod api;
pub mod keys;
pub mod model;
pub mod paging;
pub mod policy;
pub mod stores;
pub mod tags;
pub mod trail;
pub mod unsupported;
