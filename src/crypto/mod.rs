//! Cryptography that knows nothing of HSMs, stores or sockets: ciphertext blobs, pooled
//! randomness, per-key subkeys, and AES-256-GCM wrapping of stored secrets ([`wrap`] binds each
//! wrapped object to its identity through the AAD).

pub mod blob;
pub mod random;
pub mod subkey;
pub mod wrap;
