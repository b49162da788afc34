//! KMS keys and aliases through the C API: create, describe, state, enable/disable, scheduled
//! deletion, aliases, tags.

use std::ffi::c_char;

use super::boundary::{array, client, guard, optional_text, out, put, text, CResult, Out};
use super::enums::kmscks_key_state;
use super::handle::{expect_response, kmscks_client};
use super::memory::{c_string, kmscks_context_entry};
use super::result::kmscks_result;
use crate::api::kms::{
    AliasRequest, CreateKeyRequest, DeleteAliasRequest, KeyIdRequest, KeyMetadata,
    ScheduleKeyDeletionRequest, Tag, TagResourceRequest, UntagResourceRequest,
};
use crate::ops::Request;

/// Creates a symmetric encryption KMS key, in the custom key store `custom_key_store_id_or_null`
/// (its material is made in the store's cluster; the store must be CONNECTED) or, when NULL,
/// in the default key store. Writes the key id (a UUID) to `*key_id`.
///
/// # Safety
/// `c` is a live handle; strings are NULL or NUL-terminated; `key_id` is valid for a write.
#[no_mangle]
pub unsafe extern "C" fn kmscks_create_key(
    c: *const kmscks_client,
    custom_key_store_id_or_null: *const c_char,
    description_or_null: *const c_char,
    key_id: *mut *mut c_char,
) -> kmscks_result {
    guard(|| {
        // SAFETY: caller's contract (each argument below likewise).
        let c = unsafe { client(c) }?;
        let store =
            unsafe { optional_text(custom_key_store_id_or_null, "custom_key_store_id_or_null") }?;
        let description = unsafe { optional_text(description_or_null, "description_or_null") }?;
        let out = out(key_id, "key_id")?;
        let request = CreateKeyRequest {
            custom_key_store_id: store.map(str::to_owned),
            description: description.map(str::to_owned),
            origin: store.map(|_| crate::types::Origin::AwsCloudhsm),
            ..Default::default()
        };
        create(c, request, out)
    })
}

/// CreateKey with `request`; the new key's id goes to `out`.
pub(super) fn create(
    c: &kmscks_client,
    request: CreateKeyRequest,
    out: Out<*mut c_char>,
) -> CResult {
    let r = expect_response!(c.call(&Request::CreateKey(request))?, CreateKey)?;
    let id = c_string(&r.key_metadata.key_id)?;
    // SAFETY: checked non-NULL, writable by the caller's contract.
    unsafe { put(out, id) };
    Ok(())
}

/// Writes DescribeKey's `KeyMetadata` as JSON (AWS's member names, epoch-second dates) to
/// `*json`. `key_id` may be a key id, key ARN, alias name or alias ARN.
///
/// # Safety
/// `c` is a live handle; `key_id` is NUL-terminated; `json` is valid for a write.
#[no_mangle]
pub unsafe extern "C" fn kmscks_describe_key_json(
    c: *const kmscks_client,
    key_id: *const c_char,
    json: *mut *mut c_char,
) -> kmscks_result {
    guard(|| {
        let out = out(json, "json")?;
        // SAFETY: caller's contract.
        let metadata = unsafe { describe(c, key_id) }?;
        let text = super::json::to_json(&metadata)?;
        // SAFETY: checked non-NULL, writable by the caller's contract.
        unsafe { put(out, c_string(&text)?) };
        Ok(())
    })
}

/// Writes the key's state (AWS's KeyState) to `*state`.
///
/// # Safety
/// `c` is a live handle; `key_id` is NUL-terminated; `state` is valid for a write.
#[no_mangle]
pub unsafe extern "C" fn kmscks_get_key_state(
    c: *const kmscks_client,
    key_id: *const c_char,
    state: *mut kmscks_key_state,
) -> kmscks_result {
    guard(|| {
        let out = out(state, "state")?;
        // SAFETY: caller's contract.
        let metadata = unsafe { describe(c, key_id) }?;
        // SAFETY: checked non-NULL, writable by the caller's contract.
        unsafe { put(out, metadata.key_state.into()) };
        Ok(())
    })
}

/// DescribeKey's metadata.
///
/// # Safety
/// As the callers'.
unsafe fn describe(c: *const kmscks_client, key_id: *const c_char) -> CResult<KeyMetadata> {
    // SAFETY: forwarded contract.
    let (c, req) = unsafe { key_request(c, key_id) }?;
    Ok(expect_response!(c.call(&Request::DescribeKey(req))?, DescribeKey)?.key_metadata)
}

/// Enables a key.
///
/// # Safety
/// `c` is a live handle; `key_id` is NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn kmscks_enable_key(
    c: *const kmscks_client,
    key_id: *const c_char,
) -> kmscks_result {
    guard(|| {
        // SAFETY: caller's contract.
        let (c, req) = unsafe { key_request(c, key_id) }?;
        expect_response!(c.call(&Request::EnableKey(req))?, EnableKey)?;
        Ok(())
    })
}

/// Disables a key: cryptographic operations with it fail with `KMSCKS_DISABLED` until it is
/// enabled again.
///
/// # Safety
/// `c` is a live handle; `key_id` is NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn kmscks_disable_key(
    c: *const kmscks_client,
    key_id: *const c_char,
) -> kmscks_result {
    guard(|| {
        // SAFETY: caller's contract.
        let (c, req) = unsafe { key_request(c, key_id) }?;
        expect_response!(c.call(&Request::DisableKey(req))?, DisableKey)?;
        Ok(())
    })
}

/// Schedules the key's deletion after `pending_window_days` (7 to 30; 0 means AWS's default,
/// 30) and writes the deletion date, in seconds since the Unix epoch, to
/// `*deletion_date_unix` (which may be NULL).
///
/// # Safety
/// `c` is a live handle; `key_id` is NUL-terminated; `deletion_date_unix` is NULL or valid for
/// a write.
#[no_mangle]
pub unsafe extern "C" fn kmscks_schedule_key_deletion(
    c: *const kmscks_client,
    key_id: *const c_char,
    pending_window_days: u32,
    deletion_date_unix: *mut i64,
) -> kmscks_result {
    guard(|| {
        // SAFETY: caller's contract.
        let (c, req) = unsafe { key_request(c, key_id) }?;
        let request = Request::ScheduleKeyDeletion(ScheduleKeyDeletionRequest {
            key_id: req.key_id,
            pending_window_in_days: (pending_window_days != 0).then_some(pending_window_days),
        });
        let r = expect_response!(c.call(&request)?, ScheduleKeyDeletion)?;
        if let Some(o) = super::boundary::optional_out(deletion_date_unix) {
            // SAFETY: non-NULL, writable by the caller's contract.
            unsafe { put(o, r.deletion_date.millis().div_euclid(1000)) };
        }
        Ok(())
    })
}

/// Cancels a scheduled deletion; the key is then Disabled, as on AWS.
///
/// # Safety
/// `c` is a live handle; `key_id` is NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn kmscks_cancel_key_deletion(
    c: *const kmscks_client,
    key_id: *const c_char,
) -> kmscks_result {
    guard(|| {
        // SAFETY: caller's contract.
        let (c, req) = unsafe { key_request(c, key_id) }?;
        expect_response!(c.call(&Request::CancelKeyDeletion(req))?, CancelKeyDeletion)?;
        Ok(())
    })
}

/// Creates an alias (`alias/…`) for a key.
///
/// # Safety
/// `c` is a live handle; strings are NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn kmscks_create_alias(
    c: *const kmscks_client,
    alias_name: *const c_char,
    key_id: *const c_char,
) -> kmscks_result {
    guard(|| {
        // SAFETY: caller's contract (each argument below likewise).
        let c = unsafe { client(c) }?;
        let alias = unsafe { text(alias_name, "alias_name") }?;
        let key_id = unsafe { text(key_id, "key_id") }?;
        let request = Request::CreateAlias(AliasRequest {
            alias_name: alias.to_owned(),
            target_key_id: key_id.to_owned(),
        });
        expect_response!(c.call(&request)?, CreateAlias)?;
        Ok(())
    })
}

/// Deletes an alias (the key stays).
///
/// # Safety
/// `c` is a live handle; `alias_name` is NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn kmscks_delete_alias(
    c: *const kmscks_client,
    alias_name: *const c_char,
) -> kmscks_result {
    guard(|| {
        // SAFETY: caller's contract (each argument below likewise).
        let c = unsafe { client(c) }?;
        let alias = unsafe { text(alias_name, "alias_name") }?;
        let request = Request::DeleteAlias(DeleteAliasRequest {
            alias_name: alias.to_owned(),
        });
        expect_response!(c.call(&request)?, DeleteAlias)?;
        Ok(())
    })
}

/// Adds or overwrites tags on a key: `tags_len` pairs, each `key` a tag key and `value` its
/// value (a `kmscks_context_entry` array, as encryption contexts are passed).
///
/// # Safety
/// `c` is a live handle; `key_id` is NUL-terminated; `tags` points to `tags_len` entries whose
/// strings are NUL-terminated (NULL allowed when `tags_len` is 0).
#[no_mangle]
pub unsafe extern "C" fn kmscks_tag_resource(
    c: *const kmscks_client,
    key_id: *const c_char,
    tags: *const kmscks_context_entry,
    tags_len: usize,
) -> kmscks_result {
    guard(|| {
        // SAFETY: caller's contract (each argument below likewise).
        let (c, req) = unsafe { key_request(c, key_id) }?;
        let pairs = unsafe { super::boundary::context(tags, tags_len, "tags") }?;
        let request = Request::TagResource(TagResourceRequest {
            key_id: req.key_id,
            tags: pairs
                .into_iter()
                .map(|(tag_key, tag_value)| Tag { tag_key, tag_value })
                .collect(),
        });
        expect_response!(c.call(&request)?, TagResource)?;
        Ok(())
    })
}

/// Removes tags from a key: `tag_keys_len` tag keys.
///
/// # Safety
/// `c` is a live handle; `key_id` is NUL-terminated; `tag_keys` points to `tag_keys_len`
/// NUL-terminated strings (NULL allowed when `tag_keys_len` is 0).
#[no_mangle]
pub unsafe extern "C" fn kmscks_untag_resource(
    c: *const kmscks_client,
    key_id: *const c_char,
    tag_keys: *const *const c_char,
    tag_keys_len: usize,
) -> kmscks_result {
    guard(|| {
        // SAFETY: caller's contract (each argument below likewise).
        let (c, req) = unsafe { key_request(c, key_id) }?;
        let keys = unsafe { array(tag_keys, tag_keys_len, "tag_keys") }?;
        let tag_keys = keys
            .iter()
            .enumerate()
            // SAFETY: each pointer NUL-terminated by the caller's contract.
            .map(|(i, k)| unsafe { text(*k, &format!("tag_keys[{i}]")) }.map(str::to_owned))
            .collect::<CResult<Vec<_>>>()?;
        let request = Request::UntagResource(UntagResourceRequest {
            key_id: req.key_id,
            tag_keys,
        });
        expect_response!(c.call(&request)?, UntagResource)?;
        Ok(())
    })
}

/// The handle and a request naming one key.
///
/// # Safety
/// As the callers'.
unsafe fn key_request<'a>(
    c: *const kmscks_client,
    key_id: *const c_char,
) -> CResult<(&'a kmscks_client, KeyIdRequest)> {
    // SAFETY: forwarded contract.
    let c = unsafe { client(c) }?;
    // SAFETY: forwarded contract.
    let key_id = unsafe { text(key_id, "key_id") }?;
    Ok((
        c,
        KeyIdRequest {
            key_id: key_id.to_owned(),
            grant_tokens: Vec::new(),
        },
    ))
}
