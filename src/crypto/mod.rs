//! Cryptography that knows nothing of HSMs, stores or sockets.
//!
//! [`wrap`] seals secrets (key material, passwords) under a key-encryption key with
//! AES-256-GCM, binding each wrapped object to its identity through the AAD.

pub mod wrap;
