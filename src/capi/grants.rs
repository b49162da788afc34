//! Grants through the C API: create one (operations by AWS's names, an optional
//! `EncryptionContextSubset` constraint) and revoke it. Listing and retiring stay with the
//! JSON-speaking clients (the CLI, the HTTP endpoint).

use std::ffi::c_char;

use super::boundary::{array, client, context, distinct, guard, out, put, text, CResult};
use super::handle::{expect_response, kmscks_client};
use super::memory::{c_string, kmscks_context_entry, kmscks_string_free};
use super::result::{kmscks_result, Failure};
use crate::api::kms::{CreateGrantRequest, GrantConstraints, GrantOperation, RevokeGrantRequest};
use crate::ops::Request;

/// Creates a grant on `key_id` (key id or key ARN) letting `grantee_principal` (an IAM ARN, e.g.
/// `arn:aws:iam::111122223333:user/uid-1001`) perform `operations_len` operations, each named
/// as AWS names it (`"Encrypt"`, `"Decrypt"`, `"GenerateDataKey"`, `"DescribeKey"`…), under an
/// `EncryptionContextSubset` constraint of `subset_len` pairs (none when 0). Writes the grant id
/// and a grant token (free each with `kmscks_string_free`).
///
/// # Safety
/// `c` is a live handle; strings are NUL-terminated; `operations` points to `operations_len`
/// NUL-terminated strings; `subset` to `subset_len` entries (NULL allowed when 0); `grant_id`
/// and `grant_token` are valid for a write.
#[no_mangle]
#[allow(clippy::too_many_arguments)] // C has no structs-by-name for a one-call API
pub unsafe extern "C" fn kmscks_create_grant(
    c: *const kmscks_client,
    key_id: *const c_char,
    grantee_principal: *const c_char,
    operations: *const *const c_char,
    operations_len: usize,
    subset: *const kmscks_context_entry,
    subset_len: usize,
    grant_id: *mut *mut c_char,
    grant_token: *mut *mut c_char,
) -> kmscks_result {
    guard(|| {
        // SAFETY: caller's contract (each argument below likewise).
        let c = unsafe { client(c) }?;
        let key_id = unsafe { text(key_id, "key_id") }?;
        let grantee = unsafe { text(grantee_principal, "grantee_principal") }?;
        let names = unsafe { array(operations, operations_len, "operations") }?;
        let subset = unsafe { context(subset, subset_len, "subset") }?;
        let id_out = out(grant_id, "grant_id")?;
        let token_out = out(grant_token, "grant_token")?;
        distinct(&[id_out.named("grant_id"), token_out.named("grant_token")])?;
        let operations = names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let name = format!("operations[{i}]");
                // SAFETY: each pointer NUL-terminated by the caller's contract.
                let op = unsafe { text(*n, &name) }?;
                GrantOperation::parse(op).ok_or_else(|| {
                    Failure::invalid(&name, format!("'{op}' is not a grant operation"))
                })
            })
            .collect::<CResult<Vec<_>>>()?;
        let request = Request::CreateGrant(CreateGrantRequest {
            key_id: key_id.to_owned(),
            grantee_principal: grantee.to_owned(),
            operations,
            constraints: (!subset.is_empty()).then_some(GrantConstraints {
                encryption_context_subset: Some(subset),
                encryption_context_equals: None,
            }),
            ..Default::default()
        });
        let r = expect_response!(c.call(&request)?, CreateGrant)?;
        let id = c_string(&r.grant_id)?;
        let token = c_string(&r.grant_token).inspect_err(|_| {
            // SAFETY: `id` was just allocated by `c_string` and lent to no one: a failed call
            // writes neither output, so it is freed here rather than lost.
            unsafe { kmscks_string_free(id) }
        })?;
        // SAFETY: checked non-NULL, writable by the caller's contract.
        unsafe {
            put(id_out, id);
            put(token_out, token);
        }
        Ok(())
    })
}

/// Revokes the grant `grant_id` of `key_id`: from the next request on, it allows nothing.
///
/// # Safety
/// `c` is a live handle; strings are NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn kmscks_revoke_grant(
    c: *const kmscks_client,
    key_id: *const c_char,
    grant_id: *const c_char,
) -> kmscks_result {
    guard(|| {
        // SAFETY: caller's contract (each argument below likewise).
        let c = unsafe { client(c) }?;
        let key_id = unsafe { text(key_id, "key_id") }?;
        let grant_id = unsafe { text(grant_id, "grant_id") }?;
        let request = Request::RevokeGrant(RevokeGrantRequest {
            key_id: key_id.to_owned(),
            grant_id: grant_id.to_owned(),
            dry_run: false,
        });
        expect_response!(c.call(&request)?, RevokeGrant)?;
        Ok(())
    })
}
