//! Stateless vocabulary shared by every layer: identifiers, states, limits, time.

pub mod action;
pub mod ids;
pub mod limits;
pub mod state;
pub mod time;

pub use action::PolicyAction;
pub use ids::*;
pub use state::*;
pub use time::{Clock, ManualClock, SystemClock, Timestamp};
