//! Custom key stores through the C API: create, connect, disconnect, update, delete, and
//! their connection state (AWS's ConnectionState and ConnectionErrorCode as C enums).

use std::ffi::c_char;

use super::boundary::{
    client, distinct, guard, optional_out, optional_text, out, put, text, CResult,
};
use super::enums::{kmscks_connection_error_code, kmscks_connection_state};
use super::handle::{expect_response, kmscks_client};
use super::memory::c_string;
use super::result::{kmscks_result, Failure};
use crate::api::kms::{
    CreateCustomKeyStoreRequest, CustomKeyStoreEntry, CustomKeyStoreIdRequest,
    DescribeCustomKeyStoresRequest, UpdateCustomKeyStoreRequest, WaitForConnectionRequest,
};
use crate::ops::Request;
use crate::secret::Password;
use crate::types::{ConnectionState, CustomKeyStoreType};

/// Creates a custom key store (AWS_CLOUDHSM) on an initialized cluster with at least two
/// active HSMs in different zones. `trust_anchor_pem` is the cluster's trust anchor
/// (`kmscks_initialize_cluster` returned it); `key_store_password` is the `kmsuser` crypto
/// user's password. Writes the store's id (`cks-…`) to `*store_id`. The store starts
/// DISCONNECTED: connect it with `kmscks_connect_custom_key_store`.
///
/// # Safety
/// `c` is a live handle; strings are NUL-terminated; `store_id` is valid for a write.
#[no_mangle]
pub unsafe extern "C" fn kmscks_create_custom_key_store(
    c: *const kmscks_client,
    name: *const c_char,
    cluster_id: *const c_char,
    trust_anchor_pem: *const c_char,
    key_store_password: *const c_char,
    store_id: *mut *mut c_char,
) -> kmscks_result {
    guard(|| {
        // SAFETY: caller's contract (each argument below likewise).
        let c = unsafe { client(c) }?;
        let name = unsafe { text(name, "name") }?;
        let cluster_id = unsafe { text(cluster_id, "cluster_id") }?;
        let anchor = unsafe { text(trust_anchor_pem, "trust_anchor_pem") }?;
        let password = unsafe { text(key_store_password, "key_store_password") }?;
        let out = out(store_id, "store_id")?;
        let request = Request::CreateCustomKeyStore(CreateCustomKeyStoreRequest {
            custom_key_store_name: name.to_owned(),
            cloud_hsm_cluster_id: Some(cluster_id.to_owned()),
            trust_anchor_certificate: Some(anchor.to_owned()),
            key_store_password: Some(Password::new(password)),
            custom_key_store_type: Some(CustomKeyStoreType::AwsCloudhsm),
        });
        let r = expect_response!(c.call(&request)?, CreateCustomKeyStore)?;
        let id = c_string(&r.custom_key_store_id)?;
        // SAFETY: checked non-NULL, writable by the caller's contract.
        unsafe { put(out, id) };
        Ok(())
    })
}

/// Starts connecting a DISCONNECTED store (→ CONNECTING); the attempt ends CONNECTED or FAILED
/// a moment later: `kmscks_wait_connected` waits for it. A FAILED store is disconnected first
/// (`kmscks_disconnect_custom_key_store`), fixed, then connected again, as on AWS;
/// connecting it as it is: `KMSCKS_CUSTOM_KEY_STORE_INVALID_STATE`.
///
/// # Safety
/// `c` is a live handle; `store_id` is NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn kmscks_connect_custom_key_store(
    c: *const kmscks_client,
    store_id: *const c_char,
) -> kmscks_result {
    guard(|| {
        // SAFETY: caller's contract.
        let (c, req) = unsafe { store_request(c, store_id) }?;
        expect_response!(
            c.call(&Request::ConnectCustomKeyStore(req))?,
            ConnectCustomKeyStore
        )?;
        Ok(())
    })
}

/// Disconnects the store: its keys are unusable at once (KMSCKS_KMS_INVALID_STATE) until it is
/// connected again. The store reads DISCONNECTING for a moment, then DISCONNECTED;
/// `kmscks_wait_settled` waits for that (settings that change only while DISCONNECTED are
/// refused until then).
///
/// # Safety
/// `c` is a live handle; `store_id` is NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn kmscks_disconnect_custom_key_store(
    c: *const kmscks_client,
    store_id: *const c_char,
) -> kmscks_result {
    guard(|| {
        // SAFETY: caller's contract.
        let (c, req) = unsafe { store_request(c, store_id) }?;
        let request = Request::DisconnectCustomKeyStore(req);
        expect_response!(c.call(&request)?, DisconnectCustomKeyStore)?;
        Ok(())
    })
}

/// Deletes a store that holds no keys and is DISCONNECTED.
///
/// # Safety
/// `c` is a live handle; `store_id` is NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn kmscks_delete_custom_key_store(
    c: *const kmscks_client,
    store_id: *const c_char,
) -> kmscks_result {
    guard(|| {
        // SAFETY: caller's contract.
        let (c, req) = unsafe { store_request(c, store_id) }?;
        expect_response!(
            c.call(&Request::DeleteCustomKeyStore(req))?,
            DeleteCustomKeyStore
        )?;
        Ok(())
    })
}

/// Changes a store's name, `kmsuser` password, or cluster (a related one: a cluster restored
/// from a backup of the original); NULL leaves that setting as it is. The password and the
/// cluster change only while the store is DISCONNECTED, as on AWS. The password is the one
/// `kmsuser` has on the cluster: connecting rotates it there (as AWS does) and the store keeps
/// the new one, so after a wrong password the way back is to set one on the cluster
/// (`kmscks_change_crypto_user_password`) and then here.
///
/// # Safety
/// `c` is a live handle; strings are NULL or NUL-terminated (`store_id` not NULL).
#[no_mangle]
pub unsafe extern "C" fn kmscks_update_custom_key_store(
    c: *const kmscks_client,
    store_id: *const c_char,
    new_name_or_null: *const c_char,
    new_password_or_null: *const c_char,
    new_cluster_id_or_null: *const c_char,
) -> kmscks_result {
    guard(|| {
        // SAFETY: caller's contract (each argument below likewise).
        let c = unsafe { client(c) }?;
        let store_id = unsafe { text(store_id, "store_id") }?;
        let name = unsafe { optional_text(new_name_or_null, "new_name_or_null") }?;
        let password = unsafe { optional_text(new_password_or_null, "new_password_or_null") }?;
        let cluster = unsafe { optional_text(new_cluster_id_or_null, "new_cluster_id_or_null") }?;
        let request = Request::UpdateCustomKeyStore(UpdateCustomKeyStoreRequest {
            custom_key_store_id: store_id.to_owned(),
            new_custom_key_store_name: name.map(str::to_owned),
            key_store_password: password.map(Password::new),
            cloud_hsm_cluster_id: cluster.map(str::to_owned),
        });
        expect_response!(c.call(&request)?, UpdateCustomKeyStore)?;
        Ok(())
    })
}

/// Writes the store's connection state and, when it is FAILED, why (`…_NONE` otherwise).
/// Either out-pointer may be NULL when that answer is not wanted.
///
/// # Safety
/// `c` is a live handle; `store_id` is NUL-terminated; `state` and `error_code` are NULL or
/// valid for a write.
#[no_mangle]
pub unsafe extern "C" fn kmscks_get_connection_state(
    c: *const kmscks_client,
    store_id: *const c_char,
    state: *mut kmscks_connection_state,
    error_code: *mut kmscks_connection_error_code,
) -> kmscks_result {
    guard(|| {
        // SAFETY: caller's contract (each argument below likewise).
        let c = unsafe { client(c) }?;
        let store_id = unsafe { text(store_id, "store_id") }?;
        let (state, error_code) = (optional_out(state), optional_out(error_code));
        if let (Some(s), Some(e)) = (&state, &error_code) {
            distinct(&[s.named("state"), e.named("error_code")])?;
        }
        let entry = describe_one(c, store_id)?;
        if let Some(o) = state {
            // SAFETY: non-NULL, writable by the caller's contract.
            unsafe { put(o, entry.connection_state.into()) };
        }
        if let Some(o) = error_code {
            // SAFETY: as above.
            unsafe { put(o, entry.connection_error_code.into()) };
        }
        Ok(())
    })
}

/// Waits up to `timeout_ms` for a CONNECTING (or DISCONNECTING) store to settle. `KMSCKS_OK`
/// when it is CONNECTED; when it ends FAILED, `KMSCKS_CUSTOM_KEY_STORE_INVALID_STATE` with a
/// message naming AWS's ConnectionErrorCode (`kmscks_get_connection_state` gives it as an
/// enum); likewise when it is DISCONNECTED; `KMSCKS_DEPENDENCY_TIMEOUT` when it is still
/// connecting at the deadline.
///
/// # Safety
/// `c` is a live handle; `store_id` is NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn kmscks_wait_connected(
    c: *const kmscks_client,
    store_id: *const c_char,
    timeout_ms: u32,
) -> kmscks_result {
    guard(|| {
        // SAFETY: caller's contract (each argument below likewise).
        let c = unsafe { client(c) }?;
        let store_id = unsafe { text(store_id, "store_id") }?;
        let entry = wait(c, store_id, timeout_ms)?;
        let state = entry.connection_state;
        match state {
            ConnectionState::Connected => Ok(()),
            ConnectionState::Failed
            | ConnectionState::Disconnected
            | ConnectionState::Connecting
            | ConnectionState::Disconnecting => {
                let why = entry
                    .connection_error_code
                    .map(|code| format!(" with ConnectionErrorCode {code}"))
                    .unwrap_or_default();
                Err(Failure::from(crate::err!(
                    CustomKeyStoreInvalidStateException,
                    "custom key store {store_id} is {state}{why}, not CONNECTED"
                )))
            }
        }
    })
}

/// Waits up to `timeout_ms` until the store is neither CONNECTING nor DISCONNECTING and writes
/// the state it settled in to `*state` (which may be NULL): `KMSCKS_OK` whatever that state
/// is (`kmscks_wait_connected` is the form that fails unless it is CONNECTED);
/// `KMSCKS_DEPENDENCY_TIMEOUT` when it has not settled by then.
///
/// # Safety
/// `c` is a live handle; `store_id` is NUL-terminated; `state` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn kmscks_wait_settled(
    c: *const kmscks_client,
    store_id: *const c_char,
    timeout_ms: u32,
    state: *mut kmscks_connection_state,
) -> kmscks_result {
    guard(|| {
        // SAFETY: caller's contract (each argument below likewise).
        let c = unsafe { client(c) }?;
        let store_id = unsafe { text(store_id, "store_id") }?;
        let entry = wait(c, store_id, timeout_ms)?;
        if let Some(o) = super::boundary::optional_out(state) {
            // SAFETY: non-NULL, writable by the caller's contract.
            unsafe { put(o, entry.connection_state.into()) };
        }
        Ok(())
    })
}

/// WaitForConnection; `KMSCKS_DEPENDENCY_TIMEOUT` when the store is still moving at the
/// deadline.
fn wait(c: &kmscks_client, store_id: &str, timeout_ms: u32) -> CResult<CustomKeyStoreEntry> {
    let request = Request::WaitForConnection(WaitForConnectionRequest {
        custom_key_store_id: store_id.to_owned(),
        timeout_millis: timeout_ms.into(),
    });
    let entry = expect_response!(c.call(&request)?, WaitForConnection)?;
    let state = entry.connection_state;
    if matches!(
        state,
        ConnectionState::Connecting | ConnectionState::Disconnecting
    ) {
        return Err(Failure::from(crate::err!(
            DependencyTimeoutException,
            "custom key store {store_id} is still {state} after {timeout_ms} ms"
        )));
    }
    Ok(*entry)
}

/// Writes DescribeCustomKeyStores as JSON (AWS's member names) to `*json`: one store when
/// `store_id_or_null` names one, else every store.
///
/// # Safety
/// `c` is a live handle; `store_id_or_null` is NULL or NUL-terminated; `json` is valid for a
/// write.
#[no_mangle]
pub unsafe extern "C" fn kmscks_describe_custom_key_stores_json(
    c: *const kmscks_client,
    store_id_or_null: *const c_char,
    json: *mut *mut c_char,
) -> kmscks_result {
    guard(|| {
        // SAFETY: caller's contract (each argument below likewise).
        let c = unsafe { client(c) }?;
        let store_id = unsafe { optional_text(store_id_or_null, "store_id_or_null") }?;
        let out = out(json, "json")?;
        let request = Request::DescribeCustomKeyStores(DescribeCustomKeyStoresRequest {
            custom_key_store_id: store_id.map(str::to_owned),
            ..Default::default()
        });
        let r = expect_response!(c.call(&request)?, DescribeCustomKeyStores)?;
        let text = super::json::to_json(&r)?;
        // SAFETY: checked non-NULL, writable by the caller's contract.
        unsafe { put(out, c_string(&text)?) };
        Ok(())
    })
}

/// The handle and a request naming one store.
///
/// # Safety
/// As the callers'.
unsafe fn store_request<'a>(
    c: *const kmscks_client,
    store_id: *const c_char,
) -> CResult<(&'a kmscks_client, CustomKeyStoreIdRequest)> {
    // SAFETY: forwarded contract.
    let c = unsafe { client(c) }?;
    // SAFETY: forwarded contract.
    let store_id = unsafe { text(store_id, "store_id") }?;
    Ok((
        c,
        CustomKeyStoreIdRequest {
            custom_key_store_id: store_id.to_owned(),
        },
    ))
}

/// DescribeCustomKeyStores for one store.
fn describe_one(c: &kmscks_client, store_id: &str) -> CResult<CustomKeyStoreEntry> {
    let request = Request::DescribeCustomKeyStores(DescribeCustomKeyStoresRequest {
        custom_key_store_id: Some(store_id.to_owned()),
        ..Default::default()
    });
    let mut r = expect_response!(c.call(&request)?, DescribeCustomKeyStores)?;
    r.custom_key_stores
        .pop()
        .ok_or_else(|| Failure::internal("DescribeCustomKeyStores for one id answered none"))
}
