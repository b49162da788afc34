//! The simulated CloudHSM cluster.

pub mod api;
pub mod model;
pub mod ops;
pub mod pki;
