//! White-box tests of the C API, calling the `extern "C"` functions from Rust: the result
//! table, the enums, the argument checks, buffers and the embedded flow. The C programs in
//! `ffi/tests/` exercise the header itself, in both modes and against both libraries
//! (`tests/capi_c.rs` builds and runs them).

use std::collections::HashSet;
use std::ffi::{c_char, CStr, CString};
use std::ptr::{null, null_mut};

use super::crypto::*;
use super::enums::*;
use super::handle::*;
use super::json::*;
use super::key_pair::*;
use super::keys::*;
use super::memory::*;
use super::result::*;
use crate::error::ErrorKind;
use crate::types::{ConnectionErrorCode, ConnectionState, KeyState};

/// AWS's spelling in SCREAMING_SNAKE_CASE (`PendingDeletion` → `PENDING_DELETION`).
fn screaming(aws: &str) -> String {
    let mut out = String::new();
    let mut prev_lower = false;
    for c in aws.chars() {
        if prev_lower && c.is_ascii_uppercase() {
            out.push('_');
        }
        prev_lower = c.is_ascii_lowercase();
        out.push(c.to_ascii_uppercase());
    }
    out
}

fn last_error() -> String {
    // SAFETY: kmscks_last_error_message never returns NULL and the string lives until this
    // thread's next call.
    unsafe { CStr::from_ptr(kmscks_last_error_message()) }
        .to_string_lossy()
        .into_owned()
}

fn name_of(code: u32) -> String {
    // SAFETY: kmscks_result_name returns a static string.
    unsafe { CStr::from_ptr(kmscks_result_name(code)) }
        .to_str()
        .unwrap()
        .to_owned()
}

/// Takes a string kmscks returned, and frees it.
fn take(s: *mut c_char) -> String {
    assert!(!s.is_null());
    // SAFETY: a string kmscks returned, freed just after.
    let text = unsafe { CStr::from_ptr(s) }.to_str().unwrap().to_owned();
    // SAFETY: returned by kmscks, not yet freed.
    unsafe { kmscks_string_free(s) };
    text
}

/// Takes a buffer's bytes, and frees it.
fn take_buffer(mut b: kmscks_buffer) -> Vec<u8> {
    let bytes = if b.data.is_null() {
        Vec::new()
    } else {
        // SAFETY: `len` bytes at `data`, filled by kmscks.
        unsafe { std::slice::from_raw_parts(b.data, b.len) }.to_vec()
    };
    // SAFETY: filled by kmscks, not yet freed.
    unsafe { kmscks_buffer_free(&mut b) };
    bytes
}

/// An embedded handle with nothing on disk.
fn open_in_memory() -> *mut kmscks_client {
    let mut c = null_mut();
    // SAFETY: NULL data directory; `c` is writable.
    assert_eq!(
        unsafe { kmscks_open(null(), &mut c) },
        kmscks_result::KMSCKS_OK
    );
    c
}

fn create_key(c: *mut kmscks_client) -> CString {
    let mut key = null_mut();
    // SAFETY: live handle, NULL optional strings, writable out.
    let r = unsafe { kmscks_create_key(c, null(), null(), &mut key) };
    assert_eq!(r, kmscks_result::KMSCKS_OK, "{}", last_error());
    CString::new(take(key)).unwrap()
}

#[test]
fn result_codes_are_the_error_tables_numbers_plus_four_c_only_codes_pinned_at_0_to_3() {
    use kmscks_result::*;
    assert_eq!(
        [
            KMSCKS_OK,
            KMSCKS_INVALID_ARGUMENT,
            KMSCKS_IO,
            KMSCKS_INTERNAL
        ]
        .map(|r| r as u32),
        [0, 1, 2, 3]
    );
    let mut numbers = HashSet::new();
    for &r in kmscks_result::ALL {
        assert!(numbers.insert(r as u32), "{r:?} reuses {}", r as u32);
        assert_eq!(kmscks_result::from_u32(r as u32), Some(r));
    }
    for &kind in ErrorKind::ALL {
        let r = kmscks_result::of_kind(kind);
        assert_eq!(r as u32, kind.code(), "{kind:?}");
        assert_eq!(name_of(r as u32), kind.aws_name());
    }
    assert_eq!(kmscks_result::ALL.len(), ErrorKind::ALL.len() + 4);
    // The names the contract spells out.
    for (r, name) in [
        (
            KMSCKS_CUSTOM_KEY_STORE_NOT_FOUND,
            "CustomKeyStoreNotFoundException",
        ),
        (KMSCKS_KMS_INVALID_STATE, "KMSInvalidStateException"),
        (KMSCKS_DISABLED, "DisabledException"),
        (KMSCKS_INVALID_CIPHERTEXT, "InvalidCiphertextException"),
        (KMSCKS_VALIDATION, "ValidationException"),
        (
            KMSCKS_CLOUD_HSM_CLUSTER_INVALID_CONFIGURATION,
            "CloudHsmClusterInvalidConfigurationException",
        ),
        (
            KMSCKS_CUSTOM_KEY_STORE_HAS_CMKS,
            "CustomKeyStoreHasCMKsException",
        ),
    ] {
        assert_eq!(name_of(r as u32), name);
    }
    assert_eq!(name_of(0), "OK");
    assert_eq!(name_of(1), "InvalidArgument");
    assert_eq!(name_of(999_999), "Unknown");
}

#[test]
fn every_aws_state_and_error_code_has_a_c_constant_named_after_its_aws_spelling() {
    for &s in KeyState::ALL {
        let c = kmscks_key_state::from(s);
        assert_eq!(
            format!("{c:?}"),
            format!("KMSCKS_KEY_STATE_{}", screaming(s.as_str()))
        );
    }
    for &s in ConnectionState::ALL {
        let c = kmscks_connection_state::from(s);
        assert_eq!(
            format!("{c:?}"),
            format!("KMSCKS_CONNECTION_STATE_{}", s.as_str())
        );
    }
    for &s in ConnectionErrorCode::ALL {
        let c = kmscks_connection_error_code::from(Some(s));
        assert_eq!(
            format!("{c:?}"),
            format!("KMSCKS_CONNECTION_ERROR_CODE_{}", s.as_str())
        );
        assert_ne!(c as u32, 0, "0 is NONE");
    }
    assert_eq!(
        kmscks_connection_error_code::from(None),
        kmscks_connection_error_code::KMSCKS_CONNECTION_ERROR_CODE_NONE
    );
}

#[test]
fn a_transport_error_is_io_and_a_service_error_keeps_its_exception() {
    let io = Failure::from(crate::KmsError::transport(
        ErrorKind::DependencyTimeoutException,
        "nothing listens",
    ));
    assert_eq!(io.code, kmscks_result::KMSCKS_IO);
    let served = Failure::from(crate::err!(DependencyTimeoutException, "slow HSM"));
    assert_eq!(served.code, kmscks_result::KMSCKS_DEPENDENCY_TIMEOUT);
    assert!(served.message.contains("slow HSM"));
}

#[test]
fn null_and_non_utf8_arguments_are_refused_by_name_and_leave_outputs_and_state_untouched() {
    let c = open_in_memory();
    let key = create_key(c);
    let mut ct = kmscks_buffer::EMPTY;
    // SAFETY: every pointer is valid or deliberately NULL.
    let r = unsafe { kmscks_encrypt(c, null(), b"x".as_ptr(), 1, null(), 0, &mut ct) };
    assert_eq!(r, kmscks_result::KMSCKS_INVALID_ARGUMENT);
    assert_eq!(last_error(), "argument key_id: is NULL");
    assert!(ct.data.is_null());

    let bad = [0x66u8, 0xff, 0];
    // SAFETY: as above; `bad` is NUL-terminated.
    let r = unsafe { kmscks_encrypt(c, bad.as_ptr().cast(), null(), 0, null(), 0, &mut ct) };
    assert_eq!(r, kmscks_result::KMSCKS_INVALID_ARGUMENT);
    assert!(last_error().contains("key_id: is not UTF-8 (invalid byte at offset 1)"));

    // SAFETY: as above.
    let r = unsafe { kmscks_encrypt(c, key.as_ptr(), null(), 5, null(), 0, &mut ct) };
    assert_eq!(r, kmscks_result::KMSCKS_INVALID_ARGUMENT);
    assert_eq!(last_error(), "argument pt: is NULL with length 5");

    // A NULL output: refused before anything is done (no key is created).
    // SAFETY: as above.
    let r = unsafe { kmscks_create_key(c, null(), null(), null_mut()) };
    assert_eq!(r, kmscks_result::KMSCKS_INVALID_ARGUMENT);
    assert_eq!(
        last_error(),
        "argument key_id: is NULL (an output is required)"
    );
    let mut json = null_mut();
    // SAFETY: as above.
    assert_eq!(
        unsafe { kmscks_list_keys_json(c, 0, null(), &mut json) },
        kmscks_result::KMSCKS_OK
    );
    let listed: serde_json::Value = serde_json::from_str(&take(json)).unwrap();
    assert_eq!(listed["Keys"].as_array().unwrap().len(), 1, "{listed}");
    // A success clears the thread's last error.
    assert_eq!(last_error(), "");
    // SAFETY: the handle, closed once.
    unsafe { kmscks_close(c) };
}

#[test]
fn an_encryption_context_with_a_null_or_repeated_key_is_refused_naming_the_entry() {
    let c = open_in_memory();
    let key = create_key(c);
    let (k, v) = (c"purpose".as_ptr(), c"test".as_ptr());
    let ctx = [
        kmscks_context_entry { key: k, value: v },
        kmscks_context_entry { key: k, value: v },
    ];
    let mut ct = kmscks_buffer::EMPTY;
    // SAFETY: valid pointers; two entries.
    let r = unsafe { kmscks_encrypt(c, key.as_ptr(), null(), 0, ctx.as_ptr(), 2, &mut ct) };
    assert_eq!(r, kmscks_result::KMSCKS_INVALID_ARGUMENT);
    assert_eq!(
        last_error(),
        "argument ctx[1].key: 'purpose' appears twice in the encryption context"
    );
    let ctx = [kmscks_context_entry {
        key: k,
        value: null(),
    }];
    // SAFETY: as above.
    let r = unsafe { kmscks_encrypt(c, key.as_ptr(), null(), 0, ctx.as_ptr(), 1, &mut ct) };
    assert_eq!(r, kmscks_result::KMSCKS_INVALID_ARGUMENT);
    assert_eq!(last_error(), "argument ctx[0].value: is NULL");
    // SAFETY: as above.
    let r = unsafe { kmscks_encrypt(c, key.as_ptr(), null(), 0, null(), 3, &mut ct) };
    assert_eq!(last_error(), "argument ctx: is NULL with count 3");
    assert_eq!(r, kmscks_result::KMSCKS_INVALID_ARGUMENT);
    // SAFETY: closed once.
    unsafe { kmscks_close(c) };
}

#[test]
fn data_keys_round_trip_and_a_disabled_key_or_tampered_blob_gets_its_aws_code() {
    let c = open_in_memory();
    let key = create_key(c);
    let ctx = [kmscks_context_entry {
        key: c"app".as_ptr(),
        value: c"capi".as_ptr(),
    }];
    let (mut pt, mut ct) = (kmscks_buffer::EMPTY, kmscks_buffer::EMPTY);
    // SAFETY: valid pointers throughout.
    let r =
        unsafe { kmscks_generate_data_key(c, key.as_ptr(), 32, ctx.as_ptr(), 1, &mut pt, &mut ct) };
    assert_eq!(r, kmscks_result::KMSCKS_OK, "{}", last_error());
    let data_key = take_buffer(pt);
    let mut blob = take_buffer(ct);
    assert_eq!(data_key.len(), 32);

    let mut back = kmscks_buffer::EMPTY;
    let mut arn = null_mut();
    // SAFETY: as above.
    let r = unsafe {
        kmscks_decrypt(
            c,
            blob.as_ptr(),
            blob.len(),
            ctx.as_ptr(),
            1,
            &mut back,
            &mut arn,
        )
    };
    assert_eq!(r, kmscks_result::KMSCKS_OK, "{}", last_error());
    assert_eq!(take_buffer(back), data_key);
    assert!(take(arn).ends_with(key.to_str().unwrap()));

    let last = blob.len() - 1;
    blob[last] ^= 1;
    let mut back = kmscks_buffer::EMPTY;
    // SAFETY: as above.
    let r = unsafe {
        kmscks_decrypt(
            c,
            blob.as_ptr(),
            blob.len(),
            ctx.as_ptr(),
            1,
            &mut back,
            null_mut(),
        )
    };
    assert_eq!(r, kmscks_result::KMSCKS_INVALID_CIPHERTEXT);
    assert!(back.data.is_null(), "outputs are written only on success");

    // SAFETY: as above.
    assert_eq!(
        unsafe { kmscks_disable_key(c, key.as_ptr()) },
        kmscks_result::KMSCKS_OK
    );
    let mut state = kmscks_key_state::KMSCKS_KEY_STATE_ENABLED;
    // SAFETY: as above.
    assert_eq!(
        unsafe { kmscks_get_key_state(c, key.as_ptr(), &mut state) },
        kmscks_result::KMSCKS_OK
    );
    assert_eq!(state, kmscks_key_state::KMSCKS_KEY_STATE_DISABLED);
    let (mut pt, mut ct) = (kmscks_buffer::EMPTY, kmscks_buffer::EMPTY);
    // SAFETY: as above.
    let r = unsafe { kmscks_generate_data_key(c, key.as_ptr(), 32, null(), 0, &mut pt, &mut ct) };
    assert_eq!(r, kmscks_result::KMSCKS_DISABLED);
    assert!(last_error().contains("is disabled"), "{}", last_error());
    assert!(
        !last_error().starts_with("Disabled"),
        "the name is not repeated"
    );
    // SAFETY: closed once.
    unsafe { kmscks_close(c) };
}

#[test]
fn outputs_sharing_memory_are_refused_naming_the_second_before_anything_is_made() {
    let c = open_in_memory();
    let key = create_key(c);
    let mut b = kmscks_buffer::EMPTY;
    let shared: *mut kmscks_buffer = &mut b;
    // SAFETY: valid pointers; the same buffer twice, which is what is refused.
    let r = unsafe { kmscks_generate_data_key(c, key.as_ptr(), 32, null(), 0, shared, shared) };
    assert_eq!(r, kmscks_result::KMSCKS_INVALID_ARGUMENT);
    assert_eq!(
        last_error(),
        "argument ciphertext: shares its memory with plaintext (each output needs its own)"
    );
    assert!(b.data.is_null() && b.len == 0, "nothing written");

    // A pointer into the plaintext's buffer given for the key's ARN.
    let (mut pt, mut ct) = (kmscks_buffer::EMPTY, kmscks_buffer::EMPTY);
    // SAFETY: valid pointers throughout.
    let r = unsafe { kmscks_generate_data_key(c, key.as_ptr(), 32, null(), 0, &mut pt, &mut ct) };
    assert_eq!(r, kmscks_result::KMSCKS_OK, "{}", last_error());
    let blob = take_buffer(ct);
    let mut back = kmscks_buffer::EMPTY;
    let inside = std::ptr::addr_of_mut!(back.len).cast::<*mut c_char>();
    // SAFETY: as above; `inside` is aligned and writable, and overlaps `back`.
    let r = unsafe { kmscks_decrypt(c, blob.as_ptr(), blob.len(), null(), 0, &mut back, inside) };
    assert_eq!(r, kmscks_result::KMSCKS_INVALID_ARGUMENT);
    assert!(last_error().starts_with("argument key_id_or_null: shares its memory with plaintext"));
    assert!(back.data.is_null() && back.len == 0, "nothing written");
    take_buffer(pt);

    // Any two of a key pair's three outputs.
    let spec = c"ECC_NIST_P256";
    let (mut one, mut two) = (kmscks_buffer::EMPTY, kmscks_buffer::EMPTY);
    // SAFETY: as above; the public key's buffer is the plaintext's.
    let r = unsafe {
        kmscks_generate_data_key_pair(
            c,
            key.as_ptr(),
            spec.as_ptr(),
            null(),
            0,
            &mut one,
            &mut two,
            &mut one,
        )
    };
    assert_eq!(r, kmscks_result::KMSCKS_INVALID_ARGUMENT);
    assert!(last_error()
        .starts_with("argument public_key: shares its memory with private_key_plaintext"));
    assert!(one.data.is_null() && two.data.is_null(), "nothing written");
    // SAFETY: the handle from open_in_memory, closed once.
    unsafe { kmscks_close(c) };
}

#[test]
fn a_batch_answers_each_item_with_its_own_code_and_names_a_bad_item_member() {
    let c = open_in_memory();
    let key = create_key(c);
    let items = [
        kmscks_data_key_request {
            key_id: key.as_ptr(),
            number_of_bytes: 32,
            ctx: null(),
            ctx_len: 0,
        },
        kmscks_data_key_request {
            key_id: c"alias/none".as_ptr(),
            number_of_bytes: 16,
            ctx: null(),
            ctx_len: 0,
        },
    ];
    let mut results: Vec<kmscks_data_key_result> = (0..2)
        .map(|_| kmscks_data_key_result {
            result: kmscks_result::KMSCKS_INTERNAL,
            plaintext: kmscks_buffer::EMPTY,
            ciphertext: kmscks_buffer::EMPTY,
        })
        .collect();
    // SAFETY: two items, two result slots.
    let r = unsafe { kmscks_generate_data_key_batch(c, items.as_ptr(), 2, results.as_mut_ptr()) };
    assert_eq!(r, kmscks_result::KMSCKS_OK, "{}", last_error());
    assert_eq!(results[0].result, kmscks_result::KMSCKS_OK);
    assert_eq!(results[1].result, kmscks_result::KMSCKS_NOT_FOUND);
    assert!(results[1].plaintext.data.is_null());
    for r in results {
        assert_eq!(
            take_buffer(r.plaintext).len(),
            if r.result == kmscks_result::KMSCKS_OK {
                32
            } else {
                0
            }
        );
        take_buffer(r.ciphertext);
    }

    let bad = [kmscks_encrypt_request {
        key_id: key.as_ptr(),
        pt: null(),
        pt_len: 4,
        ctx: null(),
        ctx_len: 0,
    }];
    let mut out = [kmscks_encrypt_result {
        result: kmscks_result::KMSCKS_INTERNAL,
        ciphertext: kmscks_buffer::EMPTY,
    }];
    // SAFETY: one item, one slot.
    let r = unsafe { kmscks_encrypt_batch(c, bad.as_ptr(), 1, out.as_mut_ptr()) };
    assert_eq!(r, kmscks_result::KMSCKS_INVALID_ARGUMENT);
    assert_eq!(last_error(), "argument items[0].pt: is NULL with length 4");
    assert_eq!(
        out[0].result,
        kmscks_result::KMSCKS_INTERNAL,
        "results untouched"
    );
    // SAFETY: closed once.
    unsafe { kmscks_close(c) };
}

#[test]
fn freeing_a_buffer_wipes_it_resets_it_and_a_second_free_or_a_null_one_does_nothing() {
    let mut b = kmscks_buffer::from_secret(crate::secret::SecretBytes::from_slice(b"secret"));
    assert_eq!(b.len, 6);
    // SAFETY: filled by kmscks.
    unsafe { kmscks_buffer_free(&mut b) };
    assert!(b.data.is_null() && b.len == 0);
    // SAFETY: a freed (reset) struct, then NULL.
    unsafe {
        kmscks_buffer_free(&mut b);
        kmscks_buffer_free(null_mut());
        kmscks_string_free(null_mut());
        kmscks_close(null_mut());
    }
}

#[test]
fn a_panic_inside_an_entry_point_becomes_internal_with_a_message() {
    let code = super::boundary::guard(|| panic!("boom"));
    assert_eq!(code, kmscks_result::KMSCKS_INTERNAL);
    assert!(last_error().contains("boom"), "{}", last_error());
}

#[test]
fn a_call_from_a_thread_exit_destructor_after_the_last_error_is_gone_is_answered_not_aborted() {
    use std::sync::atomic::{AtomicU32, Ordering};
    // What the late calls answered: the code, then whether the message was readable ("").
    static LATE_CODE: AtomicU32 = AtomicU32::new(u32::MAX);
    static LATE_MESSAGE_EMPTY: AtomicU32 = AtomicU32::new(u32::MAX);
    struct Late;
    impl Drop for Late {
        fn drop(&mut self) {
            let mut out = kmscks_buffer::EMPTY;
            // SAFETY: every pointer is NULL or a live local; a NULL handle is refused.
            let r = unsafe { kmscks_encrypt(null(), null(), null(), 0, null(), 0, &mut out) };
            LATE_CODE.store(r as u32, Ordering::SeqCst);
            // SAFETY: kmscks_last_error_message never returns NULL.
            let m = unsafe { CStr::from_ptr(kmscks_last_error_message()) };
            LATE_MESSAGE_EMPTY.store(u32::from(m.is_empty()), Ordering::SeqCst);
        }
    }
    thread_local!(static LATE: Late = const { Late });
    std::thread::spawn(|| {
        // Registered first, so destroyed after the library's own thread-locals.
        LATE.with(|_| {});
        let mut out = kmscks_buffer::EMPTY;
        // SAFETY: as above: a failure, which records the thread's last error.
        let r = unsafe { kmscks_encrypt(null(), null(), null(), 0, null(), 0, &mut out) };
        assert_eq!(r, kmscks_result::KMSCKS_INVALID_ARGUMENT);
        assert!(last_error().contains("argument c"), "{}", last_error());
    })
    .join()
    .unwrap();
    assert_eq!(
        LATE_CODE.load(Ordering::SeqCst),
        kmscks_result::KMSCKS_INVALID_ARGUMENT as u32
    );
    assert_eq!(LATE_MESSAGE_EMPTY.load(Ordering::SeqCst), 1);
}

#[test]
fn the_version_is_the_package_version() {
    // SAFETY: a static string.
    let v = unsafe { CStr::from_ptr(super::handle::kmscks_version()) };
    assert_eq!(v.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
}

#[test]
fn imported_material_goes_through_the_c_api_and_a_bad_algorithm_name_is_refused_by_name() {
    use super::import::*;
    use aws_lc_rs::rsa::{OaepPublicEncryptingKey, PublicEncryptingKey, OAEP_SHA256_MGF1SHA256};

    let c = open_in_memory();
    let mut key = null_mut();
    // SAFETY: live handle, NULL description, writable out.
    let r = unsafe { kmscks_create_external_key(c, null(), &mut key) };
    assert_eq!(r, kmscks_result::KMSCKS_OK, "{}", last_error());
    let key = CString::new(take(key)).unwrap();
    let mut state = kmscks_key_state::KMSCKS_KEY_STATE_ENABLED;
    // SAFETY: live handle, NUL-terminated id, writable out.
    let r = unsafe { kmscks_get_key_state(c, key.as_ptr(), &mut state) };
    assert_eq!(r, kmscks_result::KMSCKS_OK, "{}", last_error());
    assert_eq!(state, kmscks_key_state::KMSCKS_KEY_STATE_PENDING_IMPORT);

    let (mut public, mut token) = (kmscks_buffer::EMPTY, kmscks_buffer::EMPTY);
    let mut valid_to = 0i64;
    let bad = CString::new("RSAES_OAEP_SHA_512").unwrap();
    let spec = CString::new("RSA_2048").unwrap();
    // SAFETY: live handle, NUL-terminated strings, writable outs.
    let r = unsafe {
        kmscks_get_parameters_for_import(
            c,
            key.as_ptr(),
            bad.as_ptr(),
            spec.as_ptr(),
            &mut public,
            &mut token,
            &mut valid_to,
        )
    };
    assert_eq!(r, kmscks_result::KMSCKS_INVALID_ARGUMENT);
    assert!(
        last_error().contains("wrapping_algorithm"),
        "{}",
        last_error()
    );
    assert!(public.data.is_null() && token.data.is_null());

    let algorithm = CString::new("RSAES_OAEP_SHA_256").unwrap();
    // SAFETY: as above.
    let r = unsafe {
        kmscks_get_parameters_for_import(
            c,
            key.as_ptr(),
            algorithm.as_ptr(),
            spec.as_ptr(),
            &mut public,
            &mut token,
            &mut valid_to,
        )
    };
    assert_eq!(r, kmscks_result::KMSCKS_OK, "{}", last_error());
    assert!(valid_to > 0);
    let (public, token) = (take_buffer(public), take_buffer(token));
    let wrapping =
        OaepPublicEncryptingKey::new(PublicEncryptingKey::from_der(&public).unwrap()).unwrap();
    let mut sealed = vec![0; wrapping.ciphertext_size()];
    let n = wrapping
        .encrypt(&OAEP_SHA256_MGF1SHA256, &[3u8; 32], &mut sealed, None)
        .unwrap()
        .len();
    sealed.truncate(n);

    let mut material_id = null_mut();
    // SAFETY: live handle; the byte arrays are readable for their lengths; writable out.
    let import = |valid_to: i64, id: *mut *mut c_char| unsafe {
        kmscks_import_key_material(
            c,
            key.as_ptr(),
            token.as_ptr(),
            token.len(),
            sealed.as_ptr(),
            sealed.len(),
            valid_to,
            id,
        )
    };
    assert_eq!(
        import(-1, null_mut()),
        kmscks_result::KMSCKS_INVALID_ARGUMENT
    );
    assert!(last_error().contains("valid_to"), "{}", last_error());
    assert_eq!(
        import(0, &mut material_id),
        kmscks_result::KMSCKS_OK,
        "{}",
        last_error()
    );
    assert_eq!(take(material_id).len(), 64);

    let mut ct = kmscks_buffer::EMPTY;
    // SAFETY: live handle, NUL-terminated id, readable plaintext, writable out.
    let r = unsafe { kmscks_encrypt(c, key.as_ptr(), b"x".as_ptr(), 1, null(), 0, &mut ct) };
    assert_eq!(r, kmscks_result::KMSCKS_OK, "{}", last_error());
    take_buffer(ct);

    // SAFETY: live handle, NUL-terminated id.
    let r = unsafe { kmscks_delete_imported_key_material(c, key.as_ptr()) };
    assert_eq!(r, kmscks_result::KMSCKS_OK, "{}", last_error());
    let mut ct = kmscks_buffer::EMPTY;
    // SAFETY: as above.
    let r = unsafe { kmscks_encrypt(c, key.as_ptr(), b"x".as_ptr(), 1, null(), 0, &mut ct) };
    assert_eq!(r, kmscks_result::KMSCKS_KMS_INVALID_STATE);
    // SAFETY: a handle from kmscks_open, closed once.
    unsafe { kmscks_close(c) };
}

#[test]
fn connect_options_start_at_the_clients_default_spin_and_the_header_states_the_limit() {
    let mut o = kmscks_connect_options {
        struct_size: 0,
        reply_spin_us: 7,
        reply_timeout_ms: 7,
    };
    // As a C program built against this header calls it (the macro passes `sizeof`).
    // SAFETY: a valid, writable struct of the size given.
    unsafe { kmscks_connect_options_init_sized(&mut o, size_of::<kmscks_connect_options>()) };
    assert_eq!(o.struct_size, size_of::<kmscks_connect_options>());
    let default = crate::client::DEFAULT_REPLY_SPIN.as_micros();
    assert_eq!(u128::from(o.reply_spin_us), default);
    // No reply timeout unless asked for, as the Rust client.
    assert_eq!(o.reply_timeout_ms, 0);
    // The limit's text in the header and the C guide is the constant's.
    let limit = group_thousands(MAX_REPLY_SPIN_US);
    let header = include_str!("../../include/kmscks.h");
    assert!(header.contains(&format!("at most {limit}")), "{limit}");
    let guide = include_str!("../../docs/c-api.md");
    assert!(guide.contains(&format!("at most {limit}")), "{limit}");
    // The header makes the init function's name the sized call.
    assert!(
        header.contains("#define kmscks_connect_options_init(options)")
            && header.contains("kmscks_connect_options_init_sized((options), sizeof *(options))"),
        "the macro is missing from the header"
    );
}

#[test]
fn connect_options_init_writes_no_more_than_the_struct_its_caller_was_built_with() {
    let first = std::mem::offset_of!(kmscks_connect_options, reply_timeout_ms);
    let fresh = || kmscks_connect_options {
        struct_size: 0,
        reply_spin_us: 7,
        reply_timeout_ms: 7,
    };
    // The function itself, as a program built against the first header calls it: that
    // layout only; the field added since is left as it was.
    let mut o = fresh();
    // SAFETY: a valid, writable struct (larger than the first layout).
    unsafe { kmscks_connect_options_init(&mut o) };
    assert_eq!(o.struct_size, kmscks_connect_options::V1_SIZE);
    assert!(first >= kmscks_connect_options::V1_SIZE);
    assert_eq!(o.reply_timeout_ms, 7);
    let default = crate::client::DEFAULT_REPLY_SPIN.as_micros();
    assert_eq!(u128::from(o.reply_spin_us), default);
    // The sized call with that size: the same.
    let mut o = fresh();
    // SAFETY: as above; `struct_size` bytes are writable.
    unsafe { kmscks_connect_options_init_sized(&mut o, first) };
    assert_eq!((o.struct_size, o.reply_timeout_ms), (first, 7));
    // A size too small to be any header's struct: nothing written.
    let mut o = fresh();
    // SAFETY: as above.
    unsafe { kmscks_connect_options_init_sized(&mut o, 4) };
    assert_eq!((o.struct_size, o.reply_spin_us), (0, 7));
    // NULL: nothing, and no crash.
    // SAFETY: NULL is allowed.
    unsafe { kmscks_connect_options_init_sized(null_mut(), 64) };
}

#[test]
fn connect_options_refuse_a_wrong_size_and_a_spin_past_the_limit_leaving_out_untouched() {
    let sentinel = 0x5a5a as *mut kmscks_client;
    let mut out = sentinel;
    let path = CString::new("/nonexistent-dir/kmscks.sock").unwrap();
    let mut o = kmscks_connect_options {
        struct_size: 0,
        reply_spin_us: 0,
        reply_timeout_ms: 0,
    };
    // SAFETY: valid pointers throughout.
    unsafe {
        kmscks_connect_options_init_sized(&mut o, size_of::<kmscks_connect_options>());
        o.struct_size = 4;
        let r = kmscks_connect_with(path.as_ptr(), &o, &mut out);
        assert_eq!(r, kmscks_result::KMSCKS_INVALID_ARGUMENT);
        kmscks_connect_options_init_sized(&mut o, size_of::<kmscks_connect_options>());
        o.reply_spin_us = MAX_REPLY_SPIN_US + 1;
        let r = kmscks_connect_with(path.as_ptr(), &o, &mut out);
        assert_eq!(r, kmscks_result::KMSCKS_INVALID_ARGUMENT);
        let message = CStr::from_ptr(super::result::kmscks_last_error_message());
        let message = message.to_str().unwrap();
        assert!(
            message.contains(&format!("over the limit of {MAX_REPLY_SPIN_US}")),
            "{message}"
        );
        // At the limit the options are accepted: nothing listens there, which is I/O.
        o.reply_spin_us = MAX_REPLY_SPIN_US;
        let r = kmscks_connect_with(path.as_ptr(), &o, &mut out);
        assert_eq!(r, kmscks_result::KMSCKS_IO);
    }
    assert_eq!(out, sentinel);
}

#[test]
fn connect_options_of_a_newer_header_are_read_as_far_as_this_library_knows_them() {
    /// The struct as a later header might declare it: a field appended.
    #[repr(C)]
    struct Newer {
        known: kmscks_connect_options,
        appended: u64,
    }
    let mut newer = Newer {
        known: kmscks_connect_options {
            struct_size: 0,
            reply_spin_us: 0,
            reply_timeout_ms: 0,
        },
        appended: 0,
    };
    let path = CString::new("/nonexistent-dir/kmscks.sock").unwrap();
    let mut out = null_mut();
    // SAFETY: valid pointers; `struct_size` bytes are readable.
    let r = unsafe {
        kmscks_connect_options_init_sized(&mut newer.known, size_of::<kmscks_connect_options>());
        newer.known.struct_size = size_of::<Newer>();
        kmscks_connect_with(path.as_ptr(), &newer.known, &mut out)
    };
    // Accepted: what fails is the connection (nothing listens there).
    assert_eq!(r, kmscks_result::KMSCKS_IO);
    assert!(out.is_null());
}

/// A socket in a fresh directory served by a daemon that answers the Hello exchange and then
/// reads every request and answers none (wedged, or stopped after it accepted): the directory
/// (kept while the test runs) and the socket's path.
fn silent_daemon() -> (tempfile::TempDir, CString) {
    use crate::protocol::{encode_hello_reply, split_frame, HelloReply, MAX_BODY, OP_HELLO};
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kmscks.sock");
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    std::thread::spawn(move || {
        for mut s in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 65536];
                let mut held = Vec::new();
                while let Ok(n @ 1..) = s.read(&mut buf) {
                    held.extend_from_slice(&buf[..n]);
                    while let Ok(Some((h, _, used))) = split_frame(&held) {
                        if h.op == OP_HELLO {
                            let reply = HelloReply {
                                version: crate::protocol::VERSION,
                                server: "silent".into(),
                                max_body: MAX_BODY,
                                max_in_flight: 16,
                                principal: "arn:aws:iam::111122223333:root".into(),
                            };
                            let mut out = Vec::new();
                            encode_hello_reply(&mut out, h.request_id, &reply);
                            let _ = s.write_all(&out);
                        }
                        held.drain(..used);
                    }
                }
            });
        }
    });
    let path = CString::new(path.into_os_string().into_encoded_bytes()).unwrap();
    (dir, path)
}

#[test]
fn a_reply_timeout_ends_a_call_the_daemon_never_answers_with_io_naming_the_limit() {
    // Long enough that the silent daemon answers the Hello exchange within it on a loaded
    // machine (the limit bounds that too).
    let limit = 1000;
    let (_dir, path) = silent_daemon();
    let mut o = kmscks_connect_options {
        struct_size: 0,
        reply_spin_us: 0,
        reply_timeout_ms: 0,
    };
    let mut c = null_mut();
    // SAFETY: valid pointers throughout.
    let r = unsafe {
        kmscks_connect_options_init_sized(&mut o, size_of::<kmscks_connect_options>());
        o.reply_timeout_ms = limit;
        kmscks_connect_with(path.as_ptr(), &o, &mut c)
    };
    assert_eq!(r, kmscks_result::KMSCKS_OK, "{}", last_error());
    let began = std::time::Instant::now();
    let mut rnd = kmscks_buffer::EMPTY;
    // SAFETY: a live handle, a writable buffer.
    let r = unsafe { kmscks_generate_random(c, null(), 16, &mut rnd) };
    let waited = began.elapsed();
    assert_eq!(r, kmscks_result::KMSCKS_IO, "{}", last_error());
    assert!(rnd.data.is_null());
    let message = last_error();
    assert!(message.contains("did not answer in time"), "{message}");
    assert!(message.contains(&format!("{limit} ms")), "{message}");
    assert!(
        waited >= std::time::Duration::from_millis(limit),
        "{waited:?}"
    );
    // Bounded: far under the test harness's patience, whatever the machine's load.
    assert!(waited < std::time::Duration::from_secs(30), "{waited:?}");
    // SAFETY: a handle from kmscks_connect_with, closed once.
    unsafe { kmscks_close(c) };
}

#[test]
fn a_reply_timeout_bounds_connecting_to_a_daemon_whose_listen_queue_stays_full() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kmscks.sock");
    let (listener, _queued) = crate::sockwait::full_listener(&path);
    let path = CString::new(path.into_os_string().into_encoded_bytes()).unwrap();
    let mut o = kmscks_connect_options {
        struct_size: 0,
        reply_spin_us: 0,
        reply_timeout_ms: 0,
    };
    let mut c = null_mut();
    let began = std::time::Instant::now();
    // SAFETY: valid pointers throughout.
    let r = unsafe {
        kmscks_connect_options_init_sized(&mut o, size_of::<kmscks_connect_options>());
        o.reply_timeout_ms = 100;
        kmscks_connect_with(path.as_ptr(), &o, &mut c)
    };
    assert_eq!(r, kmscks_result::KMSCKS_IO, "{}", last_error());
    assert!(c.is_null());
    assert!(began.elapsed() >= std::time::Duration::from_millis(100));
    let message = last_error();
    assert!(
        message.contains("took no new connection for 100 ms"),
        "{message}"
    );
    drop(listener);
}

/// `n` with a comma between each group of three digits, as the docs write numbers.
fn group_thousands(n: u32) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(d);
    }
    out
}
