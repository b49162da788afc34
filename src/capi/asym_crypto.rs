//! RSA encryption and ECDH key agreement through the C API: Encrypt and Decrypt naming an
//! encryption algorithm (`"RSAES_OAEP_SHA_256"` with an RSA ENCRYPT_DECRYPT key, or
//! `"SYMMETRIC_DEFAULT"`), and DeriveSharedSecret with a KEY_AGREEMENT key.
//!
//! Why new functions: `kmscks_encrypt` and `kmscks_decrypt` are a public contract whose
//! arguments cannot grow; an RSA ciphertext names no key, so its Decrypt takes the key id,
//! which `kmscks_decrypt` does not. Algorithms are AWS's spellings, as in `asym.rs`.

use std::ffi::c_char;

use super::boundary::{bytes, client, context, guard, out, put, spelled, text};
use super::handle::{expect_response, kmscks_client};
use super::memory::{kmscks_buffer, kmscks_context_entry};
use super::result::kmscks_result;
use crate::api::kms::{DecryptRequest, DeriveSharedSecretRequest, EncryptRequest};
use crate::ops::Request;
use crate::secret::SecretBytes;
use crate::types::{EncryptionAlgorithm, KeyAgreementAlgorithm};

/// Encrypt with `encryption_algorithm` (AWS's spelling): as `kmscks_encrypt`, and with an RSA
/// key and `"RSAES_OAEP_SHA_1"` or `"RSAES_OAEP_SHA_256"` the raw RSA ciphertext (no
/// encryption context: `ctx_len` 0).
///
/// # Safety
/// As `kmscks_encrypt`; `encryption_algorithm` is NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn kmscks_encrypt_with_algorithm(
    c: *const kmscks_client,
    key_id: *const c_char,
    encryption_algorithm: *const c_char,
    pt: *const u8,
    pt_len: usize,
    ctx: *const kmscks_context_entry,
    ctx_len: usize,
    ciphertext: *mut kmscks_buffer,
) -> kmscks_result {
    guard(|| {
        // SAFETY: caller's contract (each argument below likewise).
        let c = unsafe { client(c) }?;
        let key_id = unsafe { text(key_id, "key_id") }?;
        let alg = unsafe {
            spelled(
                encryption_algorithm,
                "encryption_algorithm",
                EncryptionAlgorithm::parse,
            )
        }?;
        let plaintext = unsafe { bytes(pt, pt_len, "pt") }?;
        let encryption_context = unsafe { context(ctx, ctx_len, "ctx") }?;
        let o = out(ciphertext, "ciphertext")?;
        let request = Request::Encrypt(EncryptRequest {
            key_id: key_id.to_owned(),
            plaintext: SecretBytes::from_slice(plaintext),
            encryption_context,
            encryption_algorithm: Some(alg),
            ..Default::default()
        });
        let r = expect_response!(c.call(&request)?, Encrypt)?;
        // SAFETY: checked non-NULL, writable by the caller's contract.
        unsafe { put(o, kmscks_buffer::from_vec(r.ciphertext_blob)) };
        Ok(())
    })
}

/// Decrypt with `encryption_algorithm` (AWS's spelling) under `key_id`, which an RSA
/// ciphertext needs (it names no key); writes the plaintext to `*plaintext`. A ciphertext that
/// does not decrypt: `KMSCKS_INVALID_CIPHERTEXT`.
///
/// # Safety
/// `c` is a live handle; strings are NUL-terminated; `ct` is readable for `ct_len` bytes;
/// `ctx` as in `kmscks_encrypt`; `plaintext` is valid for a write.
#[no_mangle]
pub unsafe extern "C" fn kmscks_decrypt_with_algorithm(
    c: *const kmscks_client,
    key_id: *const c_char,
    encryption_algorithm: *const c_char,
    ct: *const u8,
    ct_len: usize,
    ctx: *const kmscks_context_entry,
    ctx_len: usize,
    plaintext: *mut kmscks_buffer,
) -> kmscks_result {
    guard(|| {
        // SAFETY: caller's contract (each argument below likewise).
        let c = unsafe { client(c) }?;
        let key_id = unsafe { text(key_id, "key_id") }?;
        let alg = unsafe {
            spelled(
                encryption_algorithm,
                "encryption_algorithm",
                EncryptionAlgorithm::parse,
            )
        }?;
        let blob = unsafe { bytes(ct, ct_len, "ct") }?;
        let encryption_context = unsafe { context(ctx, ctx_len, "ctx") }?;
        let o = out(plaintext, "plaintext")?;
        let request = Request::Decrypt(DecryptRequest {
            key_id: Some(key_id.to_owned()),
            ciphertext_blob: blob.to_vec(),
            encryption_context,
            encryption_algorithm: Some(alg),
            ..Default::default()
        });
        let r = expect_response!(c.call(&request)?, Decrypt)?;
        // SAFETY: checked non-NULL, writable by the caller's contract.
        unsafe { put(o, kmscks_buffer::from_secret(r.plaintext)) };
        Ok(())
    })
}

/// DeriveSharedSecret: writes the ECDH shared secret of the KEY_AGREEMENT key `key_id` and
/// the peer's `public_key` (DER SubjectPublicKeyInfo of the key's curve) with
/// `key_agreement_algorithm` (`"ECDH"`) to `*shared_secret`.
///
/// # Safety
/// `c` is a live handle; strings are NUL-terminated; `public_key` is readable for
/// `public_key_len` bytes; `shared_secret` is valid for a write.
#[no_mangle]
pub unsafe extern "C" fn kmscks_derive_shared_secret(
    c: *const kmscks_client,
    key_id: *const c_char,
    key_agreement_algorithm: *const c_char,
    public_key: *const u8,
    public_key_len: usize,
    shared_secret: *mut kmscks_buffer,
) -> kmscks_result {
    guard(|| {
        // SAFETY: caller's contract (each argument below likewise).
        let c = unsafe { client(c) }?;
        let key_id = unsafe { text(key_id, "key_id") }?;
        let alg = unsafe {
            spelled(
                key_agreement_algorithm,
                "key_agreement_algorithm",
                KeyAgreementAlgorithm::parse,
            )
        }?;
        let peer = unsafe { bytes(public_key, public_key_len, "public_key") }?;
        let o = out(shared_secret, "shared_secret")?;
        let request = Request::DeriveSharedSecret(DeriveSharedSecretRequest {
            key_id: key_id.to_owned(),
            key_agreement_algorithm: Some(alg),
            public_key: peer.to_vec(),
            ..Default::default()
        });
        let r = expect_response!(c.call(&request)?, DeriveSharedSecret)?;
        // SAFETY: checked non-NULL, writable by the caller's contract.
        unsafe { put(o, kmscks_buffer::from_secret(r.shared_secret)) };
        Ok(())
    })
}
