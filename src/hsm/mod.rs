//! The simulated CloudHSM cluster.

pub mod pki;
