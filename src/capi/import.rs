//! Importing key material through the C API: create an Origin EXTERNAL key, fetch the wrapping
//! public key and import token, import the wrapped material, delete it. The wrapping itself
//! (RSA-OAEP with the public key, or RSA-AES key wrap) is the caller's, as on AWS: OpenSSL's
//! `EVP_PKEY_encrypt` does it.

use std::ffi::c_char;

use super::boundary::{
    bytes, client, distinct, guard, optional_out, optional_text, out, put, text,
};
use super::handle::{expect_response, kmscks_client};
use super::memory::{c_string, kmscks_buffer};
use super::result::{kmscks_result, Failure};
use crate::api::kms::{
    CreateKeyRequest, DeleteImportedKeyMaterialRequest, GetParametersForImportRequest,
    ImportKeyMaterialRequest,
};
use crate::ops::Request;
use crate::types::{ExpirationModel, Origin, Timestamp, WrappingAlgorithm, WrappingKeySpec};

/// Creates a symmetric encryption KMS key with Origin EXTERNAL: it has no material and is
/// `PendingImport` until `kmscks_import_key_material`. Writes the key id to `*key_id`.
///
/// # Safety
/// `c` is a live handle; `description_or_null` is NULL or NUL-terminated; `key_id` is valid for
/// a write.
#[no_mangle]
pub unsafe extern "C" fn kmscks_create_external_key(
    c: *const kmscks_client,
    description_or_null: *const c_char,
    key_id: *mut *mut c_char,
) -> kmscks_result {
    guard(|| {
        // SAFETY: caller's contract (each argument below likewise).
        let c = unsafe { client(c) }?;
        let description = unsafe { optional_text(description_or_null, "description_or_null") }?;
        let out = out(key_id, "key_id")?;
        let request = CreateKeyRequest {
            description: description.map(str::to_owned),
            origin: Some(Origin::External),
            ..Default::default()
        };
        super::keys::create(c, request, out)
    })
}

/// GetParametersForImport: for `wrapping_algorithm` (AWS's name, e.g. `"RSAES_OAEP_SHA_256"`,
/// `"RSA_AES_KEY_WRAP_SHA_256"`) and `wrapping_key_spec` (`"RSA_2048"`, `"RSA_3072"`,
/// `"RSA_4096"`), writes the wrapping public key (DER SubjectPublicKeyInfo) to `*public_key`
/// and the import token to `*import_token`, and, when `valid_to_or_null` is not NULL, when
/// both stop being accepted (seconds since the epoch; 24 hours from now).
///
/// # Safety
/// `c` is a live handle; strings are NUL-terminated; `public_key` and `import_token` are valid
/// for a write; `valid_to_or_null` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn kmscks_get_parameters_for_import(
    c: *const kmscks_client,
    key_id: *const c_char,
    wrapping_algorithm: *const c_char,
    wrapping_key_spec: *const c_char,
    public_key: *mut kmscks_buffer,
    import_token: *mut kmscks_buffer,
    valid_to_or_null: *mut i64,
) -> kmscks_result {
    guard(|| {
        // SAFETY: caller's contract (each argument below likewise).
        let c = unsafe { client(c) }?;
        let key_id = unsafe { text(key_id, "key_id") }?;
        let algorithm = unsafe { text(wrapping_algorithm, "wrapping_algorithm") }?;
        let spec = unsafe { text(wrapping_key_spec, "wrapping_key_spec") }?;
        let algorithm = WrappingAlgorithm::parse(algorithm).ok_or_else(|| {
            Failure::invalid(
                "wrapping_algorithm",
                format!("'{algorithm}' is not a wrapping algorithm"),
            )
        })?;
        let spec = WrappingKeySpec::parse(spec).ok_or_else(|| {
            Failure::invalid(
                "wrapping_key_spec",
                format!("'{spec}' is not a wrapping key spec"),
            )
        })?;
        let public_out = out(public_key, "public_key")?;
        let token_out = out(import_token, "import_token")?;
        let valid_to_out = optional_out(valid_to_or_null);
        let (public, token) = (
            public_out.named("public_key"),
            token_out.named("import_token"),
        );
        match &valid_to_out {
            Some(v) => distinct(&[public, token, v.named("valid_to_or_null")])?,
            None => distinct(&[public, token])?,
        }
        let request = Request::GetParametersForImport(GetParametersForImportRequest {
            key_id: key_id.to_owned(),
            wrapping_algorithm: Some(algorithm),
            wrapping_key_spec: Some(spec),
        });
        let r = expect_response!(c.call(&request)?, GetParametersForImport)?;
        // SAFETY: checked non-NULL, writable by the caller's contract.
        unsafe {
            put(public_out, kmscks_buffer::from_vec(r.public_key));
            put(token_out, kmscks_buffer::from_vec(r.import_token));
            if let Some(o) = valid_to_out {
                put(o, r.parameters_valid_to.0.div_euclid(1000));
            }
        }
        Ok(())
    })
}

/// ImportKeyMaterial: imports the material wrapped under the public key that came with
/// `import_token`. `valid_to` is when the material expires, in seconds since the epoch (at most
/// 365 days ahead), or 0 for material that does not expire. Writes the material's identifier
/// (64 hex digits) to `*key_material_id_or_null` when it is not NULL. A reimport must bring the
/// same material (`KMSCKS_INCORRECT_KEY_MATERIAL`).
///
/// # Safety
/// `c` is a live handle; `key_id` is NUL-terminated; `import_token` and `encrypted_key_material`
/// are readable for their lengths; `key_material_id_or_null` is NULL or valid for a write.
#[no_mangle]
#[allow(clippy::too_many_arguments)] // C has no structs-by-name for a one-call API
pub unsafe extern "C" fn kmscks_import_key_material(
    c: *const kmscks_client,
    key_id: *const c_char,
    import_token: *const u8,
    import_token_len: usize,
    encrypted_key_material: *const u8,
    encrypted_key_material_len: usize,
    valid_to: i64,
    key_material_id_or_null: *mut *mut c_char,
) -> kmscks_result {
    guard(|| {
        // SAFETY: caller's contract (each argument below likewise).
        let c = unsafe { client(c) }?;
        let key_id = unsafe { text(key_id, "key_id") }?;
        let token = unsafe { bytes(import_token, import_token_len, "import_token") }?;
        let sealed = unsafe {
            bytes(
                encrypted_key_material,
                encrypted_key_material_len,
                "encrypted_key_material",
            )
        }?;
        if valid_to < 0 {
            return Err(Failure::invalid(
                "valid_to",
                "must be seconds since the epoch, or 0 for material that does not expire",
            ));
        }
        let id_out = optional_out(key_material_id_or_null);
        let (valid_to, model) = match valid_to {
            0 => (None, ExpirationModel::KeyMaterialDoesNotExpire),
            secs => (
                Some(Timestamp(secs.saturating_mul(1000))),
                ExpirationModel::KeyMaterialExpires,
            ),
        };
        let request = Request::ImportKeyMaterial(ImportKeyMaterialRequest {
            key_id: key_id.to_owned(),
            import_token: token.to_vec(),
            encrypted_key_material: sealed.to_vec(),
            valid_to,
            expiration_model: Some(model),
            ..Default::default()
        });
        let r = expect_response!(c.call(&request)?, ImportKeyMaterial)?;
        if let Some(o) = id_out {
            let id = c_string(&r.key_material_id)?;
            // SAFETY: checked non-NULL, writable by the caller's contract.
            unsafe { put(o, id) };
        }
        Ok(())
    })
}

/// DeleteImportedKeyMaterial: the key loses its material and is `PendingImport` until the same
/// material is imported again (a key pending deletion stays `PendingDeletion`). A key without
/// material is left as it is: the call succeeds.
///
/// # Safety
/// `c` is a live handle; `key_id` is NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn kmscks_delete_imported_key_material(
    c: *const kmscks_client,
    key_id: *const c_char,
) -> kmscks_result {
    guard(|| {
        // SAFETY: caller's contract.
        let c = unsafe { client(c) }?;
        let key_id = unsafe { text(key_id, "key_id") }?;
        let request = Request::DeleteImportedKeyMaterial(DeleteImportedKeyMaterialRequest {
            key_id: key_id.to_owned(),
            key_material_id: None,
        });
        expect_response!(c.call(&request)?, DeleteImportedKeyMaterial)?;
        Ok(())
    })
}
