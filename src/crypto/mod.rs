//! Cryptographic building blocks: ciphertext blobs, pooled randomness, per-key subkeys.
pub mod blob;
pub mod random;
pub mod subkey;
