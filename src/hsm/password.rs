//! HSM user passwords: salted PBKDF2 hashes, stored wrapped, constant-time checks, and the
//! password rules.
//!
//! Kept apart from the user commands so that the one place passwords are hashed is easy to
//! audit. A hash is PBKDF2-HMAC-SHA256 at [`PASSWORD_ITERATIONS`] (the transaction's count:
//! lower only in tests, see [`HsmTx::password_iterations`]), with a 16-byte random salt; the
//! count is stored with it, so a hash made at another count still verifies. The derived bytes
//! are then wrapped under the cluster's wrapping key (through the transaction's [`Wrapper`],
//! like the cluster's key objects — and carried with them into backups and restored
//! clusters), bound to the wrapping key's name, the user's name, the salt and the count: the
//! journal and snapshots never hold a hash that could be attacked offline without that key,
//! and a hash moved to another user or given another count no longer verifies.
//!
//! [`Wrapper`]: super::Wrapper

use std::num::NonZeroU32;

use zeroize::Zeroizing;

use super::HsmTx;
use crate::err;
use crate::error::Result;
use crate::hsm::model::{Cluster, PasswordHash};
use crate::secret::Password;
use crate::types::limits::HSM_PASSWORD_LEN;

/// PBKDF2 iterations for HSM user passwords (the same strength as the key files: OWASP's
/// 2023 figure for PBKDF2-HMAC-SHA256). The default of `KmsConfig::hsm_password_iterations`.
pub const PASSWORD_ITERATIONS: u32 = 600_000;
/// The fewest iterations a transaction hashes with, whatever it is configured with.
pub const MIN_PASSWORD_ITERATIONS: u32 = 1_000;
/// Length of the password KMS sets when it rotates kmsuser's password on connect (and of the
/// random passwords kmscks gives users it creates or scrambles).
pub(super) const ROTATED_PASSWORD_LEN: usize = 32;

/// What a wrapped hash is bound to.
fn aad(wrapping_key: &str, username: &str, salt: &[u8; 16], iterations: u32) -> Vec<u8> {
    let mut aad =
        format!("kmscks hsm user password {wrapping_key}/{username}/{iterations}/").into_bytes();
    aad.extend_from_slice(salt);
    aad
}

fn derive(password: &Password, salt: &[u8; 16], iterations: NonZeroU32) -> Zeroizing<[u8; 32]> {
    let mut hash = Zeroizing::new([0u8; 32]);
    aws_lc_rs::pbkdf2::derive(
        aws_lc_rs::pbkdf2::PBKDF2_HMAC_SHA256,
        iterations,
        salt,
        password.expose().as_bytes(),
        &mut hash[..],
    );
    hash
}

/// A salted hash of `username`'s `password` in cluster `c`, wrapped under its wrapping key.
pub(super) fn hash_password(
    tx: &HsmTx<'_>,
    c: &Cluster,
    username: &str,
    password: &Password,
) -> Result<PasswordHash> {
    let mut salt = [0u8; 16];
    aws_lc_rs::rand::fill(&mut salt).expect("system randomness unavailable");
    let count = tx.password_iterations.max(MIN_PASSWORD_ITERATIONS);
    // Invariant: `count` is at least MIN_PASSWORD_ITERATIONS, which is not zero.
    let iterations = NonZeroU32::new(count).expect("nonzero iterations");
    let hash = derive(password, &salt, iterations);
    let wrapped = tx.keys.wrap_bytes(
        &c.wrapping_key,
        &aad(&c.wrapping_key, username, &salt, count),
        &hash[..],
    )?;
    Ok(PasswordHash {
        salt,
        iterations: count,
        wrapped,
    })
}

/// Whether `password` matches `username`'s `hash` in cluster `c` (constant time). Fails only
/// when the hash cannot be unwrapped (the wrapping key is unavailable, or the hash was not
/// made for this user and cluster lineage).
pub(super) fn password_matches(
    tx: &HsmTx<'_>,
    c: &Cluster,
    username: &str,
    hash: &PasswordHash,
    password: &Password,
) -> Result<bool> {
    let Some(iterations) = NonZeroU32::new(hash.iterations) else {
        return Ok(false);
    };
    let expected = tx.keys.unwrap_bytes(
        &c.wrapping_key,
        &aad(&c.wrapping_key, username, &hash.salt, hash.iterations),
        &hash.wrapped,
    )?;
    Ok(aws_lc_rs::pbkdf2::verify(
        aws_lc_rs::pbkdf2::PBKDF2_HMAC_SHA256,
        iterations,
        &hash.salt,
        password.expose().as_bytes(),
        expected.expose(),
    )
    .is_ok())
}

/// Checks a new password against CloudHSM's rules.
pub(super) fn check_hsm_password(p: &Password) -> Result<()> {
    let n = p.char_len();
    let ok = (HSM_PASSWORD_LEN.0..=HSM_PASSWORD_LEN.1).contains(&n)
        && p.expose().chars().all(|c| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(err!(
            CloudHsmInvalidRequestException,
            "Password must be {} to {} alphanumeric characters",
            HSM_PASSWORD_LEN.0,
            HSM_PASSWORD_LEN.1
        ))
    }
}

/// An internal failure to reach a user's password hash, as the CloudHSM CLI reports it.
pub(super) fn unavailable(username: &str, e: &crate::KmsError) -> crate::KmsError {
    err!(
        CloudHsmInternalFailureException,
        "The password of user {username} cannot be checked: {}",
        e.message()
    )
}
