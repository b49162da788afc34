//! Answers too rich for C structs, as JSON with AWS's member names (the same serde form the
//! CLI prints and the AWS JSON protocol uses): key metadata, store descriptions, listings.

use std::ffi::c_char;

use serde::Serialize;

use super::boundary::{client, guard, optional_text, out, put, CResult};
use super::handle::{expect_response, kmscks_client};
use super::memory::c_string;
use super::result::{kmscks_result, Failure};
use crate::api::kms::ListRequest;
use crate::ops::Request;

/// `value` as JSON text.
pub(super) fn to_json(value: &impl Serialize) -> CResult<String> {
    serde_json::to_string(value).map_err(|e| Failure::internal(format!("JSON encoding: {e}")))
}

/// Writes one page of ListKeys as JSON (`{"Keys": [{"KeyId": …, "KeyArn": …}], "Truncated":
/// …, "NextMarker": …}`) to `*json`: up to `limit` keys (0: AWS's default, 100) after
/// `marker_or_null` (the previous page's `NextMarker`).
///
/// # Safety
/// `c` is a live handle; `marker_or_null` is NULL or NUL-terminated; `json` is valid for a
/// write.
#[no_mangle]
pub unsafe extern "C" fn kmscks_list_keys_json(
    c: *const kmscks_client,
    limit: u32,
    marker_or_null: *const c_char,
    json: *mut *mut c_char,
) -> kmscks_result {
    guard(|| {
        // SAFETY: caller's contract (each argument below likewise).
        let c = unsafe { client(c) }?;
        let marker = unsafe { optional_text(marker_or_null, "marker_or_null") }?;
        let o = out(json, "json")?;
        let request = Request::ListKeys(list_request(None, limit, marker));
        let text = to_json(&expect_response!(c.call(&request)?, ListKeys)?)?;
        // SAFETY: checked non-NULL, writable by the caller's contract.
        unsafe { put(o, c_string(&text)?) };
        Ok(())
    })
}

/// Writes one page of ListAliases as JSON (`{"Aliases": [{"AliasName": …, "AliasArn": …,
/// "TargetKeyId": …}], …}`) to `*json`: the aliases of `key_id_or_null`, or all of them.
///
/// # Safety
/// As `kmscks_list_keys_json`; `key_id_or_null` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn kmscks_list_aliases_json(
    c: *const kmscks_client,
    key_id_or_null: *const c_char,
    limit: u32,
    marker_or_null: *const c_char,
    json: *mut *mut c_char,
) -> kmscks_result {
    guard(|| {
        // SAFETY: caller's contract (each argument below likewise).
        let c = unsafe { client(c) }?;
        let key_id = unsafe { optional_text(key_id_or_null, "key_id_or_null") }?;
        let marker = unsafe { optional_text(marker_or_null, "marker_or_null") }?;
        let o = out(json, "json")?;
        let request = Request::ListAliases(list_request(key_id, limit, marker));
        let text = to_json(&expect_response!(c.call(&request)?, ListAliases)?)?;
        // SAFETY: checked non-NULL, writable by the caller's contract.
        unsafe { put(o, c_string(&text)?) };
        Ok(())
    })
}

fn list_request(key_id: Option<&str>, limit: u32, marker: Option<&str>) -> ListRequest {
    ListRequest {
        key_id: key_id.map(str::to_owned),
        limit: (limit != 0).then_some(limit),
        marker: marker.map(str::to_owned),
    }
}
