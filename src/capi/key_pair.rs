//! Data key pairs through the C API: GenerateDataKeyPair and its WithoutPlaintext form. The
//! pair's spec is AWS's spelling as a string (`"ECC_NIST_P256"`, `"RSA_2048"`), as for key
//! specs in `asym`; the outputs are DER (PKCS#8 private key, SubjectPublicKeyInfo public key)
//! and a ciphertext blob `kmscks_decrypt` opens.

use std::ffi::c_char;

use super::boundary::{client, context, distinct, guard, out, put, spelled, text, CResult, Out};
use super::handle::{expect_response, kmscks_client};
use super::memory::{kmscks_buffer, kmscks_context_entry};
use super::result::{kmscks_result, Failure};
use crate::api::kms::{GenerateDataKeyPairRequest, GenerateDataKeyPairResponse};
use crate::ops::Request;
use crate::types::DataKeyPairSpec;

/// A GenerateDataKeyPair request from C's arguments.
///
/// # Safety
/// As `kmscks_generate_data_key_pair`'s arguments.
unsafe fn key_pair_request(
    key_id: *const c_char,
    key_pair_spec: *const c_char,
    ctx: *const kmscks_context_entry,
    ctx_len: usize,
) -> CResult<GenerateDataKeyPairRequest> {
    // SAFETY: forwarded contract (each argument below likewise).
    let key_id = unsafe { text(key_id, "key_id") }?;
    let spec = unsafe { spelled(key_pair_spec, "key_pair_spec", DataKeyPairSpec::parse) }?;
    let encryption_context = unsafe { context(ctx, ctx_len, "ctx") }?;
    Ok(GenerateDataKeyPairRequest {
        key_id: key_id.to_owned(),
        key_pair_spec: Some(spec),
        encryption_context,
        ..Default::default()
    })
}

/// Writes a pair's outputs.
///
/// # Safety
/// Each `Out` was checked non-NULL and is writable by the caller's contract.
unsafe fn put_pair(
    r: GenerateDataKeyPairResponse,
    private_plain: Option<Out<kmscks_buffer>>,
    private_cipher: Out<kmscks_buffer>,
    public: Out<kmscks_buffer>,
) -> CResult {
    if let Some(o) = private_plain {
        let key = r.private_key_plaintext.ok_or_else(|| {
            Failure::internal("GenerateDataKeyPair answered without a private key")
        })?;
        // SAFETY: forwarded contract.
        unsafe { put(o, kmscks_buffer::from_secret(key)) };
    }
    // SAFETY: forwarded contract (both writes).
    unsafe {
        put(
            private_cipher,
            kmscks_buffer::from_vec(r.private_key_ciphertext_blob),
        )
    };
    unsafe { put(public, kmscks_buffer::from_vec(r.public_key)) };
    Ok(())
}

/// GenerateDataKeyPair: a fresh asymmetric pair of `key_pair_spec` (`"RSA_2048"`,
/// `"RSA_3072"`, `"RSA_4096"`, `"ECC_NIST_P256"`, `"ECC_NIST_P384"`, `"ECC_NIST_P521"`,
/// `"ECC_SECG_P256K1"` or `"ECC_NIST_EDWARDS25519"`). Writes its private key as PKCS#8 DER to
/// `*private_key_plaintext` (zeroized by `kmscks_buffer_free`), that private key encrypted
/// under the symmetric key `key_id` with `ctx` to `*private_key_ciphertext` (open it with
/// `kmscks_decrypt`), and its public key as DER SubjectPublicKeyInfo to `*public_key`. An RSA
/// pair takes milliseconds to a second to generate.
///
/// # Safety
/// `c` is a live handle; `key_id` and `key_pair_spec` are NUL-terminated; `ctx` points to
/// `ctx_len` entries (NULL when 0); the three outputs are valid for a write.
#[no_mangle]
pub unsafe extern "C" fn kmscks_generate_data_key_pair(
    c: *const kmscks_client,
    key_id: *const c_char,
    key_pair_spec: *const c_char,
    ctx: *const kmscks_context_entry,
    ctx_len: usize,
    private_key_plaintext: *mut kmscks_buffer,
    private_key_ciphertext: *mut kmscks_buffer,
    public_key: *mut kmscks_buffer,
) -> kmscks_result {
    guard(|| {
        let plain_out = out(private_key_plaintext, "private_key_plaintext")?;
        let cipher_out = out(private_key_ciphertext, "private_key_ciphertext")?;
        let public_out = out(public_key, "public_key")?;
        distinct(&[
            plain_out.named("private_key_plaintext"),
            cipher_out.named("private_key_ciphertext"),
            public_out.named("public_key"),
        ])?;
        // SAFETY: forwarded contract (each argument below likewise).
        let c = unsafe { client(c) }?;
        let request = unsafe { key_pair_request(key_id, key_pair_spec, ctx, ctx_len) }?;
        let answer = c.call(&Request::GenerateDataKeyPair(request))?;
        let r = expect_response!(answer, GenerateDataKeyPair)?;
        // SAFETY: checked non-NULL, writable by the caller's contract.
        unsafe { put_pair(*r, Some(plain_out), cipher_out, public_out) }
    })
}

/// As `kmscks_generate_data_key_pair`, without the plaintext private key: writes only the
/// encrypted private key to `*private_key_ciphertext` and the public key to `*public_key`.
///
/// # Safety
/// As `kmscks_generate_data_key_pair` for the matching arguments.
#[no_mangle]
pub unsafe extern "C" fn kmscks_generate_data_key_pair_without_plaintext(
    c: *const kmscks_client,
    key_id: *const c_char,
    key_pair_spec: *const c_char,
    ctx: *const kmscks_context_entry,
    ctx_len: usize,
    private_key_ciphertext: *mut kmscks_buffer,
    public_key: *mut kmscks_buffer,
) -> kmscks_result {
    guard(|| {
        let cipher_out = out(private_key_ciphertext, "private_key_ciphertext")?;
        let public_out = out(public_key, "public_key")?;
        distinct(&[
            cipher_out.named("private_key_ciphertext"),
            public_out.named("public_key"),
        ])?;
        // SAFETY: forwarded contract (each argument below likewise).
        let c = unsafe { client(c) }?;
        let request = unsafe { key_pair_request(key_id, key_pair_spec, ctx, ctx_len) }?;
        let answer = c.call(&Request::GenerateDataKeyPairWithoutPlaintext(request))?;
        let r = expect_response!(answer, GenerateDataKeyPairWithoutPlaintext)?;
        // SAFETY: checked non-NULL, writable by the caller's contract.
        unsafe { put_pair(*r, None, cipher_out, public_out) }
    })
}
