//! HSM user passwords: salted PBKDF2 hashes, constant-time checks, and the password rules.
//!
//! Kept apart from the user commands so that the one place passwords are hashed is easy to
//! audit.

use std::num::NonZeroU32;

use crate::err;
use crate::error::Result;
use crate::hsm::model::PasswordHash;
use crate::secret::Password;
use crate::types::limits::HSM_PASSWORD_LEN;

/// PBKDF2 iterations for HSM user passwords.
const PASSWORD_ITERATIONS: u32 = 10_000;
/// Length of the password KMS sets when it rotates kmsuser's password on connect (and of the
/// random passwords kmscks gives users it creates or scrambles).
pub(super) const ROTATED_PASSWORD_LEN: usize = 32;

/// A salted hash of `password`.
pub(super) fn hash_password(password: &Password) -> PasswordHash {
    let mut salt = [0u8; 16];
    aws_lc_rs::rand::fill(&mut salt).expect("system randomness unavailable");
    let mut hash = [0u8; 32];
    let iterations = NonZeroU32::new(PASSWORD_ITERATIONS).expect("nonzero constant");
    aws_lc_rs::pbkdf2::derive(
        aws_lc_rs::pbkdf2::PBKDF2_HMAC_SHA256,
        iterations,
        &salt,
        password.expose().as_bytes(),
        &mut hash,
    );
    PasswordHash {
        salt,
        iterations: PASSWORD_ITERATIONS,
        hash,
    }
}

/// Whether `password` matches `hash` (constant time).
pub(super) fn password_matches(hash: &PasswordHash, password: &Password) -> bool {
    let Some(iterations) = NonZeroU32::new(hash.iterations) else {
        return false;
    };
    aws_lc_rs::pbkdf2::verify(
        aws_lc_rs::pbkdf2::PBKDF2_HMAC_SHA256,
        iterations,
        &hash.salt,
        password.expose().as_bytes(),
        &hash.hash,
    )
    .is_ok()
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
