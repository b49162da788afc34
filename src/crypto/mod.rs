//! Cryptography that knows nothing of HSMs, stores or sockets: ciphertext blobs, pooled
//! randomness, per-key subkeys, fork detection for the state those hold ([`fork`]),
//! AES-256-GCM wrapping of stored secrets ([`wrap`] binds each wrapped object to its identity
//! through the AAD), the parsed HMAC and asymmetric keys of the default key store
//! ([`private_key`]; [`signing`], [`rsa_encryption`], [`agreement`] by usage), the RSA side of
//! importing key material ([`import_wrap`]), and the data key pairs handed out by
//! GenerateDataKeyPair ([`key_pair`]).

pub mod agreement;
pub mod blob;
pub mod fork;
pub mod import_wrap;
pub mod key_pair;
pub mod private_key;
pub mod random;
pub mod rsa_encryption;
pub mod signing;
pub mod subkey;
pub mod wrap;
