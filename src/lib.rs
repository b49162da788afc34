//! kmscks: AWS KMS custom key stores, on one machine.
//!
//! kmscks re-implements the AWS KMS *custom key store* feature: KMS keys whose key material is
//! generated and kept inside the HSMs of a (here simulated) CloudHSM cluster that the user owns.
//! Layers, each in its own module, depend one way:
//! `types`/`secret`/`error` ← `crypto` ← `hsm` ← `kms` ← interfaces.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod bootstrap;
pub mod cli;
pub mod client;
pub mod crypto;
pub mod daemon;
pub mod dataplane;
pub mod engine;
pub mod error;
pub mod hsm;
pub mod keyring;
pub mod kms;
pub mod loadgen;
pub mod loadgen_socket;
pub mod ops;
pub mod paths;
pub mod protocol;
pub mod scale;
pub mod secret;
pub mod service;
pub mod state;
pub mod store;
pub mod tx;
pub mod types;

pub use client::Client;
pub use service::{Kms, KmsConfig};

pub use error::{ErrorKind, KmsError, Result};
