//! Key wrapping: AES-256-GCM under a key-encryption key (KEK), with a random 96-bit nonce.
//!
//! Wire format of a wrapped object: `version (1 byte) ‖ nonce (12) ‖ ciphertext ‖ tag (16)`.
//! Random nonces are fine here: wrapping is a control-plane operation (a few objects per KEK),
//! far below the 2^32 messages per key where random 96-bit nonces start to collide.
//!
//! The AAD binds a wrapped object to its identity (e.g. cluster id ‖ key handle), so that a
//! wrapped blob moved to another identity fails to unwrap.

use std::fmt;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};

use crate::error::{ErrorKind, KmsError};
use crate::secret::{KeyMaterial, SecretBytes};

/// The format version byte this build writes and reads.
pub const WRAP_VERSION: u8 = 1;
/// Length of the GCM authentication tag.
pub const TAG_LEN: usize = 16;
/// Bytes a wrapped object adds to its plaintext (version, nonce, tag).
pub const WRAP_OVERHEAD: usize = 1 + NONCE_LEN + TAG_LEN;

/// Why a wrapped object could not be unwrapped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WrapError {
    /// The blob failed authentication: wrong KEK, wrong AAD, or altered bytes.
    AuthenticationFailed,
    /// The blob is shorter than the fixed overhead (`len` bytes given).
    Truncated {
        /// Length of the blob given.
        len: usize,
    },
    /// The blob's version byte is not one this build reads.
    UnsupportedVersion {
        /// The version byte found.
        version: u8,
    },
    /// The blob authenticated but does not hold a 32-byte key (`unwrap_key` only).
    WrongKeyLength {
        /// Length of the plaintext found.
        len: usize,
    },
}

impl fmt::Display for WrapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WrapError::AuthenticationFailed => f.write_str(
                "wrapped object failed authentication (wrong key, wrong identity, or altered)",
            ),
            WrapError::Truncated { len } => write!(
                f,
                "wrapped object is truncated: {len} bytes, at least {WRAP_OVERHEAD} needed"
            ),
            WrapError::UnsupportedVersion { version } => write!(
                f,
                "wrapped object has unsupported format version {version} (this build reads \
                 {WRAP_VERSION})"
            ),
            WrapError::WrongKeyLength { len } => write!(
                f,
                "wrapped object holds {len} bytes, not a {}-byte key",
                KeyMaterial::LEN
            ),
        }
    }
}

impl std::error::Error for WrapError {}

/// A wrapped object that does not unwrap is stored data that is damaged or was tampered with:
/// it becomes a `StorageException`. Callers wanting another kind map [`WrapError`] themselves.
impl From<WrapError> for KmsError {
    fn from(e: WrapError) -> KmsError {
        KmsError::new(ErrorKind::StorageException, e.to_string())
    }
}

fn gcm_key(kek: &KeyMaterial) -> LessSafeKey {
    // Invariant: AES_256_GCM takes exactly 32-byte keys and KeyMaterial is always 32 bytes.
    let unbound = UnboundKey::new(&AES_256_GCM, kek.expose()).expect("32-byte AES-256 key");
    LessSafeKey::new(unbound)
}

/// Wraps `plaintext` under `kek`, bound to `aad`. Output: version ‖ nonce ‖ ciphertext ‖ tag.
pub fn wrap(kek: &KeyMaterial, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN];
    aws_lc_rs::rand::fill(&mut nonce).expect("system randomness unavailable");
    let mut out = Vec::with_capacity(WRAP_OVERHEAD + plaintext.len());
    out.push(WRAP_VERSION);
    out.extend_from_slice(&nonce);
    // The plaintext copied here is encrypted in place just below, so no copy of it survives.
    out.extend_from_slice(plaintext);
    let header = 1 + NONCE_LEN;
    let tag = gcm_key(kek)
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut out[header..],
        )
        // Invariant: sealing fails only for inputs over GCM's ~64 GiB message limit.
        .expect("plaintext within AES-GCM length limit");
    out.extend_from_slice(tag.as_ref());
    out
}

/// Unwraps a blob made by [`wrap`] with the same `kek` and `aad`.
pub fn unwrap(kek: &KeyMaterial, aad: &[u8], wrapped: &[u8]) -> Result<SecretBytes, WrapError> {
    if wrapped.len() < WRAP_OVERHEAD {
        return Err(WrapError::Truncated { len: wrapped.len() });
    }
    if wrapped[0] != WRAP_VERSION {
        return Err(WrapError::UnsupportedVersion {
            version: wrapped[0],
        });
    }
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&wrapped[1..1 + NONCE_LEN]);
    // Decrypt inside a SecretBytes so that the plaintext (and any partial output on failure)
    // is zeroized when dropped.
    let mut buf = SecretBytes::from_slice(&wrapped[1 + NONCE_LEN..]);
    let plain_len = gcm_key(kek)
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            buf.expose_mut(),
        )
        .map_err(|_| WrapError::AuthenticationFailed)?
        .len();
    buf.expose_mut().truncate(plain_len);
    Ok(buf)
}

/// Wraps a 32-byte key under `kek`, bound to `aad`.
pub fn wrap_key(kek: &KeyMaterial, aad: &[u8], key: &KeyMaterial) -> Vec<u8> {
    wrap(kek, aad, key.expose())
}

/// Unwraps a key made by [`wrap_key`]; the plaintext must be exactly 32 bytes.
pub fn unwrap_key(kek: &KeyMaterial, aad: &[u8], wrapped: &[u8]) -> Result<KeyMaterial, WrapError> {
    let plain = unwrap(kek, aad, wrapped)?;
    KeyMaterial::from_slice(plain.expose()).ok_or(WrapError::WrongKeyLength { len: plain.len() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_layout() {
        let kek = KeyMaterial::generate();
        let w = wrap(&kek, b"cluster-1/handle-7", b"hello wrapped world");
        assert_eq!(w.len(), WRAP_OVERHEAD + 19);
        assert_eq!(w[0], WRAP_VERSION);
        assert!(!w.windows(5).any(|s| s == b"hello"), "plaintext visible");
        let p = unwrap(&kek, b"cluster-1/handle-7", &w).unwrap();
        assert_eq!(p.expose(), b"hello wrapped world");
        // Two wraps of the same input differ (random nonce).
        assert_ne!(w, wrap(&kek, b"cluster-1/handle-7", b"hello wrapped world"));
    }

    #[test]
    fn empty_plaintext_round_trips() {
        let kek = KeyMaterial::generate();
        let w = wrap(&kek, b"", b"");
        assert_eq!(w.len(), WRAP_OVERHEAD);
        assert!(unwrap(&kek, b"", &w).unwrap().is_empty());
    }

    #[test]
    fn tampering_any_byte_fails_authentication() {
        let kek = KeyMaterial::generate();
        let w = wrap(&kek, b"aad", b"0123456789abcdef");
        for i in 1..w.len() {
            let mut t = w.clone();
            t[i] ^= 0x01;
            assert_eq!(
                unwrap(&kek, b"aad", &t).unwrap_err(),
                WrapError::AuthenticationFailed,
                "byte {i}"
            );
        }
        let mut t = w.clone();
        t[0] ^= 0x01;
        assert_eq!(
            unwrap(&kek, b"aad", &t).unwrap_err(),
            WrapError::UnsupportedVersion { version: 0 }
        );
    }

    #[test]
    fn wrong_aad_or_kek_fails() {
        let kek = KeyMaterial::generate();
        let w = wrap(&kek, b"cluster-1/handle-7", b"secret");
        assert_eq!(
            unwrap(&kek, b"cluster-1/handle-8", &w).unwrap_err(),
            WrapError::AuthenticationFailed
        );
        assert_eq!(
            unwrap(&KeyMaterial::generate(), b"cluster-1/handle-7", &w).unwrap_err(),
            WrapError::AuthenticationFailed
        );
    }

    #[test]
    fn truncated_blobs_are_typed() {
        let kek = KeyMaterial::generate();
        let w = wrap(&kek, b"a", b"x");
        for len in 0..WRAP_OVERHEAD {
            assert_eq!(
                unwrap(&kek, b"a", &w[..len]).unwrap_err(),
                WrapError::Truncated { len }
            );
        }
        // Dropping one ciphertext byte keeps the length valid but breaks the tag.
        assert_eq!(
            unwrap(&kek, b"a", &w[..w.len() - 1]).unwrap_err(),
            WrapError::AuthenticationFailed
        );
    }

    #[test]
    fn key_wrapping_round_trip_and_length_check() {
        let kek = KeyMaterial::generate();
        let key = KeyMaterial::generate();
        let w = wrap_key(&kek, b"id", &key);
        assert_eq!(unwrap_key(&kek, b"id", &w).unwrap().expose(), key.expose());
        let not_a_key = wrap(&kek, b"id", &[7u8; 31]);
        assert_eq!(
            unwrap_key(&kek, b"id", &not_a_key).unwrap_err(),
            WrapError::WrongKeyLength { len: 31 }
        );
        let e: KmsError = WrapError::AuthenticationFailed.into();
        assert_eq!(e.kind(), ErrorKind::StorageException);
    }
}
