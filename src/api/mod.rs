//! The vocabulary of every operation: request and response types, named and shaped as AWS
//! names and shapes them (serde names are AWS's JSON members), and the records operations
//! return (the KMS event log, HSM audit records).
//!
//! This is the lowest layer an interface needs: the op table ([`crate::ops`]), the socket
//! protocol, the client and (later) the C and HTTP layers speak in these types, while the
//! simulated CloudHSM and KMS sit above it and fill them in. Nothing here knows how an
//! operation is performed.

pub mod hsm;
pub mod hsm_audit;
pub mod kms;
