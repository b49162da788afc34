//! Stateless vocabulary shared by every layer: identifiers, states, limits, time.

pub mod action;
pub mod grant;
pub mod hex;
pub mod ids;
pub mod limits;
pub mod rate;
pub mod state;
pub mod time;

pub use action::{PolicyAction, PolicyVerdict};
pub use grant::GrantConstraints;
pub use ids::*;
pub use rate::RequestRate;
pub use state::*;
pub use time::{Clock, ManualClock, SystemClock, Timestamp};

/// An encryption context: string keys to string values, order irrelevant. A `BTreeMap`
/// iterates in key byte order, which is the canonical order (see `crypto::blob`), and cannot
/// hold a key twice.
pub type EncryptionContext = std::collections::BTreeMap<String, String>;
