//! HMAC and signing keys through the C API: creating a key of any spec the default key store
//! makes, GenerateMac / VerifyMac, Sign / Verify and GetPublicKey. Algorithms and specs are
//! AWS's spellings as strings (`"HMAC_SHA_256"`, `"ECDSA_SHA_256"`, `"ECC_NIST_P256"`), so the
//! header grows no enum for them; a spelling kmscks does not know is
//! `KMSCKS_INVALID_ARGUMENT`, naming the argument.

use std::ffi::c_char;

use super::boundary::{
    bytes, client, guard, optional_text, out, put, spelled, spelling, text, CResult,
};
use super::handle::{expect_response, kmscks_client};
use super::memory::{c_string, kmscks_buffer};
use super::result::kmscks_result;
use crate::api::kms::{
    CreateKeyRequest, GenerateMacRequest, KeyIdRequest, SignRequest, VerifyMacRequest,
    VerifyRequest,
};
use crate::ops::Request;
use crate::secret::SecretBytes;
use crate::types::{KeySpec, KeyUsage, MacAlgorithm, MessageType, SigningAlgorithm};

/// `message_type_or_null`: NULL is RAW, else AWS's spelling (`"RAW"`, `"DIGEST"`).
///
/// # Safety
/// The pointer is NULL or NUL-terminated.
unsafe fn message_type(ptr: *const c_char) -> CResult<MessageType> {
    // SAFETY: forwarded contract.
    match unsafe { optional_text(ptr, "message_type_or_null") }? {
        None => Ok(MessageType::Raw),
        Some(t) => spelling(t, "message_type_or_null", MessageType::parse),
    }
}

/// Creates a KMS key of `key_spec` with `key_usage` in the default key store (AWS's spellings:
/// `"HMAC_256"` with `"GENERATE_VERIFY_MAC"`, `"ECC_NIST_P256"` or `"RSA_2048"` with
/// `"SIGN_VERIFY"`, `"SYMMETRIC_DEFAULT"` with `"ENCRYPT_DECRYPT"`). Writes the key id to
/// `*key_id`.
///
/// # Safety
/// `c` is a live handle; `key_spec` and `key_usage` are NUL-terminated; `key_id` is valid for
/// a write.
#[no_mangle]
pub unsafe extern "C" fn kmscks_create_key_of_spec(
    c: *const kmscks_client,
    key_spec: *const c_char,
    key_usage: *const c_char,
    key_id: *mut *mut c_char,
) -> kmscks_result {
    guard(|| {
        // SAFETY: caller's contract (each argument below likewise).
        let c = unsafe { client(c) }?;
        let spec = unsafe { spelled(key_spec, "key_spec", KeySpec::parse) }?;
        let usage = unsafe { spelled(key_usage, "key_usage", KeyUsage::parse) }?;
        let o = out(key_id, "key_id")?;
        let request = Request::CreateKey(CreateKeyRequest {
            key_spec: Some(spec),
            key_usage: Some(usage),
            ..Default::default()
        });
        let r = expect_response!(c.call(&request)?, CreateKey)?;
        let id = c_string(&r.key_metadata.key_id)?;
        // SAFETY: checked non-NULL, writable by the caller's contract.
        unsafe { put(o, id) };
        Ok(())
    })
}

/// GenerateMac: writes the HMAC of `msg_len` bytes (1 to 4096) under the HMAC key `key_id`
/// with `mac_algorithm` (the key's, e.g. `"HMAC_SHA_256"`) to `*mac`.
///
/// # Safety
/// `c` is a live handle; strings are NUL-terminated; `msg` is readable for `msg_len` bytes;
/// `mac` is valid for a write.
#[no_mangle]
pub unsafe extern "C" fn kmscks_generate_mac(
    c: *const kmscks_client,
    key_id: *const c_char,
    mac_algorithm: *const c_char,
    msg: *const u8,
    msg_len: usize,
    mac: *mut kmscks_buffer,
) -> kmscks_result {
    guard(|| {
        // SAFETY: caller's contract (each argument below likewise).
        let c = unsafe { client(c) }?;
        let key_id = unsafe { text(key_id, "key_id") }?;
        let alg = unsafe { spelled(mac_algorithm, "mac_algorithm", MacAlgorithm::parse) }?;
        let message = unsafe { bytes(msg, msg_len, "msg") }?;
        let o = out(mac, "mac")?;
        let request = Request::GenerateMac(GenerateMacRequest {
            key_id: key_id.to_owned(),
            message: SecretBytes::from_slice(message),
            mac_algorithm: Some(alg),
            ..Default::default()
        });
        let r = expect_response!(c.call(&request)?, GenerateMac)?;
        // SAFETY: checked non-NULL, writable by the caller's contract.
        unsafe { put(o, kmscks_buffer::from_vec(r.mac)) };
        Ok(())
    })
}

/// VerifyMac: `KMSCKS_OK` when `mac` is the HMAC of `msg` under `key_id` with
/// `mac_algorithm`, `KMSCKS_KMS_INVALID_MAC` when it is not.
///
/// # Safety
/// `c` is a live handle; strings are NUL-terminated; `msg` and `mac` are readable for their
/// lengths.
#[no_mangle]
pub unsafe extern "C" fn kmscks_verify_mac(
    c: *const kmscks_client,
    key_id: *const c_char,
    mac_algorithm: *const c_char,
    msg: *const u8,
    msg_len: usize,
    mac: *const u8,
    mac_len: usize,
) -> kmscks_result {
    guard(|| {
        // SAFETY: caller's contract (each argument below likewise).
        let c = unsafe { client(c) }?;
        let key_id = unsafe { text(key_id, "key_id") }?;
        let alg = unsafe { spelled(mac_algorithm, "mac_algorithm", MacAlgorithm::parse) }?;
        let message = unsafe { bytes(msg, msg_len, "msg") }?;
        let mac = unsafe { bytes(mac, mac_len, "mac") }?;
        let request = Request::VerifyMac(VerifyMacRequest {
            key_id: key_id.to_owned(),
            message: SecretBytes::from_slice(message),
            mac_algorithm: Some(alg),
            mac: mac.to_vec(),
            ..Default::default()
        });
        expect_response!(c.call(&request)?, VerifyMac)?;
        Ok(())
    })
}

/// Sign: writes the signature of `msg` (the message, 1 to 4096 bytes, with
/// `message_type_or_null` NULL or `"RAW"`; its digest with `"DIGEST"`) by the signing key
/// `key_id` with `signing_algorithm` (one of the key's, e.g. `"ECDSA_SHA_256"`) to
/// `*signature`.
///
/// # Safety
/// `c` is a live handle; strings are NUL-terminated (the message type may be NULL); `msg` is
/// readable for `msg_len` bytes; `signature` is valid for a write.
#[no_mangle]
pub unsafe extern "C" fn kmscks_sign(
    c: *const kmscks_client,
    key_id: *const c_char,
    signing_algorithm: *const c_char,
    msg: *const u8,
    msg_len: usize,
    message_type_or_null: *const c_char,
    signature: *mut kmscks_buffer,
) -> kmscks_result {
    guard(|| {
        // SAFETY: caller's contract (each argument below likewise).
        let c = unsafe { client(c) }?;
        let key_id = unsafe { text(key_id, "key_id") }?;
        let alg = unsafe {
            spelled(
                signing_algorithm,
                "signing_algorithm",
                SigningAlgorithm::parse,
            )
        }?;
        let message = unsafe { bytes(msg, msg_len, "msg") }?;
        let o = out(signature, "signature")?;
        let request = Request::Sign(SignRequest {
            key_id: key_id.to_owned(),
            message: SecretBytes::from_slice(message),
            message_type: Some(unsafe { message_type(message_type_or_null) }?),
            signing_algorithm: Some(alg),
            ..Default::default()
        });
        let r = expect_response!(c.call(&request)?, Sign)?;
        // SAFETY: checked non-NULL, writable by the caller's contract.
        unsafe { put(o, kmscks_buffer::from_vec(r.signature)) };
        Ok(())
    })
}

/// Verify: `KMSCKS_OK` when `signature` is one of `msg` (or, with `message_type_or_null`
/// `"DIGEST"`, of the message whose digest `msg` is) by `key_id` with `signing_algorithm`,
/// `KMSCKS_KMS_INVALID_SIGNATURE` when it is not.
///
/// # Safety
/// `c` is a live handle; strings are NUL-terminated; `msg` and `signature` are readable for
/// their lengths.
#[no_mangle]
pub unsafe extern "C" fn kmscks_verify(
    c: *const kmscks_client,
    key_id: *const c_char,
    signing_algorithm: *const c_char,
    msg: *const u8,
    msg_len: usize,
    message_type_or_null: *const c_char,
    signature: *const u8,
    signature_len: usize,
) -> kmscks_result {
    guard(|| {
        // SAFETY: caller's contract (each argument below likewise).
        let c = unsafe { client(c) }?;
        let key_id = unsafe { text(key_id, "key_id") }?;
        let alg = unsafe {
            spelled(
                signing_algorithm,
                "signing_algorithm",
                SigningAlgorithm::parse,
            )
        }?;
        let message = unsafe { bytes(msg, msg_len, "msg") }?;
        let signature = unsafe { bytes(signature, signature_len, "signature") }?;
        let request = Request::Verify(VerifyRequest {
            key_id: key_id.to_owned(),
            message: SecretBytes::from_slice(message),
            message_type: Some(unsafe { message_type(message_type_or_null) }?),
            signature: signature.to_vec(),
            signing_algorithm: Some(alg),
            ..Default::default()
        });
        expect_response!(c.call(&request)?, Verify)?;
        Ok(())
    })
}

/// GetPublicKey: writes the public key of the signing key `key_id`, DER SubjectPublicKeyInfo,
/// to `*public_key`.
///
/// # Safety
/// `c` is a live handle; `key_id` is NUL-terminated; `public_key` is valid for a write.
#[no_mangle]
pub unsafe extern "C" fn kmscks_get_public_key(
    c: *const kmscks_client,
    key_id: *const c_char,
    public_key: *mut kmscks_buffer,
) -> kmscks_result {
    guard(|| {
        // SAFETY: caller's contract (each argument below likewise).
        let c = unsafe { client(c) }?;
        let key_id = unsafe { text(key_id, "key_id") }?;
        let o = out(public_key, "public_key")?;
        let request = Request::GetPublicKey(KeyIdRequest {
            key_id: key_id.to_owned(),
            ..Default::default()
        });
        let r = expect_response!(c.call(&request)?, GetPublicKey)?;
        // SAFETY: checked non-NULL, writable by the caller's contract.
        unsafe { put(o, kmscks_buffer::from_vec(r.public_key)) };
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use std::ffi::CString;
    use std::ptr::null_mut;

    use super::*;
    use crate::capi::handle::{kmscks_close, kmscks_open};
    use crate::capi::memory::{kmscks_buffer_free, kmscks_string_free};

    fn open() -> *mut kmscks_client {
        let mut c = null_mut();
        // SAFETY: NULL data directory; `c` is writable.
        assert_eq!(
            unsafe { kmscks_open(std::ptr::null(), &mut c) },
            kmscks_result::KMSCKS_OK
        );
        c
    }

    fn create(c: *mut kmscks_client, spec: &str, usage: &str) -> CString {
        let (spec, usage) = (CString::new(spec).unwrap(), CString::new(usage).unwrap());
        let mut key = null_mut();
        // SAFETY: live handle, NUL-terminated strings, writable out.
        let r = unsafe { kmscks_create_key_of_spec(c, spec.as_ptr(), usage.as_ptr(), &mut key) };
        assert_eq!(r, kmscks_result::KMSCKS_OK);
        // SAFETY: a string kmscks returned, copied then freed.
        let id = unsafe { std::ffi::CStr::from_ptr(key) }.to_owned();
        // SAFETY: returned by kmscks, not yet freed.
        unsafe { kmscks_string_free(key) };
        id
    }

    fn take(mut b: kmscks_buffer) -> Vec<u8> {
        // SAFETY: `len` bytes at `data`, filled by kmscks; freed just after.
        let v = unsafe { std::slice::from_raw_parts(b.data, b.len) }.to_vec();
        // SAFETY: filled by kmscks, not yet freed.
        unsafe { kmscks_buffer_free(&mut b) };
        v
    }

    #[test]
    fn macs_and_signatures_round_trip_and_a_wrong_one_gets_its_aws_code() {
        let c = open();
        let hmac = create(c, "HMAC_256", "GENERATE_VERIFY_MAC");
        let alg = CString::new("HMAC_SHA_256").unwrap();
        let mut mac = kmscks_buffer::EMPTY;
        // SAFETY: live handle, valid strings and buffers (likewise below).
        let r = unsafe {
            kmscks_generate_mac(c, hmac.as_ptr(), alg.as_ptr(), b"m".as_ptr(), 1, &mut mac)
        };
        assert_eq!(r, kmscks_result::KMSCKS_OK);
        let mac = take(mac);
        assert_eq!(mac.len(), 32);
        let ok = unsafe {
            kmscks_verify_mac(
                c,
                hmac.as_ptr(),
                alg.as_ptr(),
                b"m".as_ptr(),
                1,
                mac.as_ptr(),
                32,
            )
        };
        assert_eq!(ok, kmscks_result::KMSCKS_OK);
        let bad = unsafe {
            kmscks_verify_mac(
                c,
                hmac.as_ptr(),
                alg.as_ptr(),
                b"n".as_ptr(),
                1,
                mac.as_ptr(),
                32,
            )
        };
        assert_eq!(bad, kmscks_result::KMSCKS_KMS_INVALID_MAC);
        let unknown = CString::new("HMAC_SHA_1").unwrap();
        let mut none = kmscks_buffer::EMPTY;
        let r = unsafe {
            kmscks_generate_mac(
                c,
                hmac.as_ptr(),
                unknown.as_ptr(),
                b"m".as_ptr(),
                1,
                &mut none,
            )
        };
        assert_eq!(r, kmscks_result::KMSCKS_INVALID_ARGUMENT);

        let ec = create(c, "ECC_NIST_P256", "SIGN_VERIFY");
        let alg = CString::new("ECDSA_SHA_256").unwrap();
        let mut sig = kmscks_buffer::EMPTY;
        let r = unsafe {
            kmscks_sign(
                c,
                ec.as_ptr(),
                alg.as_ptr(),
                b"m".as_ptr(),
                1,
                std::ptr::null(),
                &mut sig,
            )
        };
        assert_eq!(r, kmscks_result::KMSCKS_OK);
        let sig = take(sig);
        let ok = unsafe {
            kmscks_verify(
                c,
                ec.as_ptr(),
                alg.as_ptr(),
                b"m".as_ptr(),
                1,
                std::ptr::null(),
                sig.as_ptr(),
                sig.len(),
            )
        };
        assert_eq!(ok, kmscks_result::KMSCKS_OK);
        let bad = unsafe {
            kmscks_verify(
                c,
                ec.as_ptr(),
                alg.as_ptr(),
                b"n".as_ptr(),
                1,
                std::ptr::null(),
                sig.as_ptr(),
                sig.len(),
            )
        };
        assert_eq!(bad, kmscks_result::KMSCKS_KMS_INVALID_SIGNATURE);
        let mut public = kmscks_buffer::EMPTY;
        let r = unsafe { kmscks_get_public_key(c, ec.as_ptr(), &mut public) };
        assert_eq!(r, kmscks_result::KMSCKS_OK);
        assert_eq!(take(public)[0], 0x30, "DER SEQUENCE");
        // SAFETY: live handle, closed once.
        unsafe { kmscks_close(c) };
    }
}
