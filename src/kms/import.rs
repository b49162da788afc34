//! Importing key material into Origin EXTERNAL keys, AWS-exact at the API:
//! GetParametersForImport (a fresh RSA wrapping key pair and an import token, valid
//! [`IMPORT_PARAMETERS_VALID`]), ImportKeyMaterial (with `ExpirationModel`/`ValidTo`; a
//! reimport must bring the same material), DeleteImportedKeyMaterial, and the deletion of
//! expired material by the service's sweep ([`expire_due`]). Symmetric (256-bit) material only:
//! CreateKey refuses Origin EXTERNAL for other key specs.
//!
//! The import token is self-contained: the wrapping private key, the algorithm and the token's
//! end of validity sealed under the KMS master key and bound to the key id. So a token holds
//! across daemon restarts, a token of one key is refused for another, and nothing of a
//! GetParametersForImport is stored in the state. The material is kept wrapped under the KMS
//! master key like default-store material ([`material_aad`]); deleting it really drops it. What
//! remains is the material's identifier, an HMAC of the material under a per-key secret salt
//! (stored wrapped), so that a reimport can be checked and nobody can test guesses of weak
//! imported material against the identifier.

use aws_lc_rs::hmac;
use serde_json::json;

use crate::api::kms::{
    DeleteImportedKeyMaterialRequest, DeleteImportedKeyMaterialResponse,
    GetParametersForImportRequest, GetParametersForImportResponse, ImportKeyMaterialRequest,
    KeyMaterialResponse,
};
use crate::crypto::import_wrap::{self, OaepHash, Sealing, WrappingKeyPair};
use crate::err;
use crate::error::Result;
use crate::kms::keys::{authorize, resolve_id};
use crate::kms::model::{Backing, ImportedMaterial, Key, Lifecycle};
use crate::kms::state::{KmsChange, KmsState};
use crate::kms::tx::Tx;
use crate::kms::{trail, MASTER_KEY};
use crate::ops::Op;
use crate::secret::{KeyMaterial, SecretBytes};
use crate::types::limits::{IMPORT_PARAMETERS_VALID, MAX_IMPORTED_MATERIAL_DAYS};
use crate::types::{
    ExpirationModel, ImportType, KeyId, Timestamp, WrappingAlgorithm, WrappingKeySpec,
};
use crate::KmsError;

/// The AAD binding an Origin EXTERNAL key's wrapped material to the key.
pub fn material_aad(id: &KeyId) -> Vec<u8> {
    format!("kmscks imported key {id}").into_bytes()
}

fn salt_aad(id: &KeyId) -> Vec<u8> {
    format!("kmscks import salt {id}").into_bytes()
}

fn token_aad(id: &KeyId) -> Vec<u8> {
    format!("kmscks import token {id}").into_bytes()
}

/// The version byte of the import token's sealed contents.
const TOKEN_VERSION: u8 = 1;
/// Version, end of validity (ms, big-endian), algorithm: then the PKCS #8 key.
const TOKEN_HEADER: usize = 1 + 8 + 1;

/// The backing of a new Origin EXTERNAL key: no material, a fresh salt for its identifier.
pub fn new_backing(tx: &Tx<'_>, id: &KeyId) -> Result<Backing> {
    let salt = KeyMaterial::generate();
    Ok(Backing::External(Box::new(ImportedMaterial {
        salt: tx.keys.wrap_key(MASTER_KEY, &salt_aad(id), &salt)?,
        ..ImportedMaterial::default()
    })))
}

/// How material sealed with `algorithm` opens; AWS's refusals for the algorithms it no longer
/// (or only in China Regions) accepts.
fn sealing(algorithm: WrappingAlgorithm) -> Result<Sealing> {
    Ok(match algorithm {
        WrappingAlgorithm::RsaesOaepSha1 => Sealing::Oaep(OaepHash::Sha1),
        WrappingAlgorithm::RsaesOaepSha256 => Sealing::Oaep(OaepHash::Sha256),
        WrappingAlgorithm::RsaAesKeyWrapSha1 => Sealing::RsaAesKeyWrap(OaepHash::Sha1),
        WrappingAlgorithm::RsaAesKeyWrapSha256 => Sealing::RsaAesKeyWrap(OaepHash::Sha256),
        WrappingAlgorithm::RsaesPkcs1V15 => {
            return Err(err!(
                ValidationException,
                "The RSAES_PKCS1_V1_5 wrapping algorithm is no longer supported; use \
                 RSAES_OAEP_SHA_256 or RSA_AES_KEY_WRAP_SHA_256"
            ))
        }
        WrappingAlgorithm::Sm2Pke => {
            return Err(err!(
                UnsupportedOperationException,
                "The SM2PKE wrapping algorithm is supported in China Regions only"
            ))
        }
    })
}

/// The RSA modulus size of a wrapping key spec.
fn wrapping_bits(spec: WrappingKeySpec) -> Result<u32> {
    Ok(match spec {
        WrappingKeySpec::Rsa2048 => 2048,
        WrappingKeySpec::Rsa3072 => 3072,
        WrappingKeySpec::Rsa4096 => 4096,
        WrappingKeySpec::Sm2 => {
            return Err(err!(
                UnsupportedOperationException,
                "The SM2 wrapping key spec is supported in China Regions only"
            ))
        }
    })
}

/// Every check of a GetParametersForImport request (its members, then the key: it exists, the
/// caller may, its origin is EXTERNAL, it is not pending deletion); the wrapping algorithm and
/// the RSA size asked for. Run once before the key pair is made, so that nobody who may not
/// import makes the daemon generate RSA keys, and again in the transaction that answers.
pub fn check_parameters(
    tx: &Tx<'_>,
    req: &GetParametersForImportRequest,
) -> Result<(WrappingAlgorithm, u32)> {
    let algorithm = req
        .wrapping_algorithm
        .ok_or_else(|| KmsError::not_null("wrappingAlgorithm"))?;
    let spec = req
        .wrapping_key_spec
        .ok_or_else(|| KmsError::not_null("wrappingKeySpec"))?;
    sealing(algorithm)?;
    let bits = wrapping_bits(spec)?;
    let key = resolve_id(tx.state, tx.scope, &req.key_id)?;
    authorize(tx, key, Op::GetParametersForImport.action())?;
    external(tx, key)?;
    refuse_pending_deletion(tx, key)?;
    Ok((algorithm, bits))
}

/// A wrapping key pair of `bits` (as [`check_parameters`] gave them): made outside any
/// transaction, so that an RSA key generation (up to a second for 4096 bits) never holds the
/// state.
pub fn wrapping_key_pair(bits: u32) -> Result<WrappingKeyPair> {
    import_wrap::generate(bits).map_err(|why| {
        err!(
            KMSInternalException,
            "no RSA wrapping key of {bits} bits: {why}"
        )
    })
}

/// The key's imported-material record, or AWS's refusal for a key of another origin.
fn external<'k>(tx: &Tx<'_>, key: &'k Key) -> Result<&'k ImportedMaterial> {
    match &key.backing {
        Backing::External(m) => Ok(m),
        _ => Err(err!(
            UnsupportedOperationException,
            "{} origin is {} which is not valid for this operation.",
            tx.scope.key_arn(&key.id),
            key.origin
        )),
    }
}

fn refuse_pending_deletion(tx: &Tx<'_>, key: &Key) -> Result<()> {
    match key.lifecycle {
        Lifecycle::PendingDeletion { .. } => {
            Err(KmsError::pending_deletion(tx.scope.key_arn(&key.id)))
        }
        _ => Ok(()),
    }
}

/// GetParametersForImport, with the key pair [`wrapping_key_pair`] made for the request (the
/// checks run again: the key may have changed since).
pub fn get_parameters(
    tx: &mut Tx<'_>,
    req: &GetParametersForImportRequest,
    pair: WrappingKeyPair,
) -> Result<GetParametersForImportResponse> {
    let (algorithm, _) = check_parameters(tx, req)?;
    let id = resolve_id(tx.state, tx.scope, &req.key_id)?.id;
    let valid_to = tx.now.plus(IMPORT_PARAMETERS_VALID);
    let pkcs8 = pair.pkcs8.expose();
    let mut sealed = SecretBytes::zeroed(TOKEN_HEADER + pkcs8.len());
    let body = sealed.expose_mut();
    body[0] = TOKEN_VERSION;
    body[1..9].copy_from_slice(&valid_to.0.to_be_bytes());
    body[9] = algorithm_index(algorithm);
    body[TOKEN_HEADER..].copy_from_slice(pkcs8);
    let import_token = tx
        .keys
        .wrap_bytes(MASTER_KEY, &token_aad(&id), sealed.expose())?;
    trail::record(
        tx,
        Op::GetParametersForImport.name(),
        json!({"requestParameters": {
            "keyId": req.key_id,
            "wrappingAlgorithm": algorithm.as_str(),
            "wrappingKeySpec": req.wrapping_key_spec.map(|s| s.as_str()),
        }}),
    );
    Ok(GetParametersForImportResponse {
        key_id: tx.scope.key_arn(&id),
        import_token,
        public_key: pair.public_der,
        parameters_valid_to: valid_to,
    })
}

fn algorithm_index(a: WrappingAlgorithm) -> u8 {
    // Invariant: the enum has a handful of values.
    WrappingAlgorithm::ALL
        .iter()
        .position(|x| *x == a)
        .and_then(|i| u8::try_from(i).ok())
        .expect("WrappingAlgorithm has fewer than 256 values")
}

/// What an import token holds, once opened and checked.
struct Token {
    sealing: Sealing,
    pkcs8: SecretBytes,
}

fn open_token(tx: &Tx<'_>, key: &Key, token: &[u8]) -> Result<Token> {
    let arn = tx.scope.key_arn(&key.id);
    let invalid = || {
        err!(
            InvalidImportTokenException,
            "The import token is not one GetParametersForImport returned for {arn}"
        )
    };
    let body = tx
        .keys
        .unwrap_bytes(MASTER_KEY, &token_aad(&key.id), token)
        .map_err(|_| invalid())?;
    let b = body.expose();
    if b.len() <= TOKEN_HEADER || b[0] != TOKEN_VERSION {
        return Err(invalid());
    }
    let mut at = [0u8; 8];
    at.copy_from_slice(&b[1..9]);
    let valid_to = Timestamp(i64::from_be_bytes(at));
    let algorithm = *WrappingAlgorithm::ALL
        .get(usize::from(b[9]))
        .ok_or_else(invalid)?;
    if tx.now > valid_to {
        return Err(err!(
            ExpiredImportTokenException,
            "The import token for {arn} expired at {}; call GetParametersForImport again",
            valid_to.cli_iso8601()
        ));
    }
    Ok(Token {
        sealing: sealing(algorithm)?,
        pkcs8: SecretBytes::from_slice(&b[TOKEN_HEADER..]),
    })
}

/// The material's identifier: 64 hex digits of an HMAC-SHA-256 under the key's salt.
fn material_id(
    tx: &Tx<'_>,
    key: &Key,
    m: &ImportedMaterial,
    material: &KeyMaterial,
) -> Result<String> {
    let salt = tx
        .keys
        .unwrap_key(MASTER_KEY, &salt_aad(&key.id), &m.salt)?;
    let tag = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, salt.expose()),
        material.expose(),
    );
    Ok(crate::types::hex::encode(tag.as_ref()))
}

/// When the imported material expires, per the request's model and `ValidTo`.
fn expiry(tx: &Tx<'_>, req: &ImportKeyMaterialRequest) -> Result<Option<Timestamp>> {
    let model = req
        .expiration_model
        .unwrap_or(ExpirationModel::KeyMaterialExpires);
    match (model, req.valid_to) {
        (ExpirationModel::KeyMaterialDoesNotExpire, None) => Ok(None),
        (ExpirationModel::KeyMaterialDoesNotExpire, Some(_)) => Err(err!(
            ValidationException,
            "ValidTo must be omitted when ExpirationModel is KEY_MATERIAL_DOES_NOT_EXPIRE"
        )),
        (ExpirationModel::KeyMaterialExpires, None) => Err(err!(
            ValidationException,
            "ValidTo is required when ExpirationModel is KEY_MATERIAL_EXPIRES (the default)"
        )),
        (ExpirationModel::KeyMaterialExpires, Some(t)) => {
            let latest = tx.now.plus_days(MAX_IMPORTED_MATERIAL_DAYS);
            if t <= tx.now || t > latest {
                return Err(err!(
                    ValidationException,
                    "ValidTo must be in the future and at most {MAX_IMPORTED_MATERIAL_DAYS} days \
                     from now ({}); got {}",
                    latest.cli_iso8601(),
                    t.cli_iso8601()
                ));
            }
            Ok(Some(t))
        }
    }
}

/// ImportKeyMaterial: the key's material (again), and when it expires.
pub fn import(tx: &mut Tx<'_>, req: &ImportKeyMaterialRequest) -> Result<KeyMaterialResponse> {
    if req.import_token.is_empty() {
        return Err(KmsError::not_null("importToken"));
    }
    if req.encrypted_key_material.is_empty() {
        return Err(KmsError::not_null("encryptedKeyMaterial"));
    }
    let key = resolve_id(tx.state, tx.scope, &req.key_id)?;
    authorize(tx, key, Op::ImportKeyMaterial.action())?;
    let m = external(tx, key)?;
    refuse_pending_deletion(tx, key)?;
    let valid_to = expiry(tx, req)?;
    let arn = tx.scope.key_arn(&key.id);
    let token = open_token(tx, key, &req.import_token)?;
    let opened = import_wrap::open(
        token.pkcs8.expose(),
        token.sealing,
        &req.encrypted_key_material,
    )
    .map_err(|e| err!(InvalidCiphertextException, "{e}"))?;
    let material = KeyMaterial::from_slice(opened.expose()).ok_or_else(|| {
        err!(
            IncorrectKeyMaterialException,
            "{arn} takes 256-bit (32-byte) symmetric key material; the wrapped material is {} \
             bytes",
            opened.len()
        )
    })?;
    let id = material_id(tx, key, m, &material)?;
    match (&m.material_id, req.import_type) {
        (Some(first), _) if *first != id => {
            return Err(err!(
                IncorrectKeyMaterialException,
                "The key material is not the material {arn} had before; a key takes only its \
                 own material again"
            ))
        }
        (Some(_), Some(ImportType::NewKeyMaterial)) => {
            return Err(err!(
                UnsupportedOperationException,
                "{arn} keeps one imported key material; reimport it with ImportType \
                 EXISTING_KEY_MATERIAL"
            ))
        }
        (None, Some(ImportType::ExistingKeyMaterial)) => {
            return Err(err!(
                IncorrectKeyMaterialException,
                "{arn} has had no key material to reimport; import with ImportType \
                 NEW_KEY_MATERIAL"
            ))
        }
        _ => {}
    }
    if req
        .key_material_id
        .as_ref()
        .is_some_and(|given| *given != id)
    {
        return Err(err!(
            IncorrectKeyMaterialException,
            "KeyMaterialId {} is not the id of the material imported",
            req.key_material_id.as_deref().unwrap_or_default()
        ));
    }
    let wrapped = tx
        .keys
        .wrap_key(MASTER_KEY, &material_aad(&key.id), &material)?;
    let mut key = key.clone();
    if key.pending_import() {
        key.lifecycle = Lifecycle::Enabled;
    }
    key.backing = Backing::External(Box::new(ImportedMaterial {
        wrapped: Some(wrapped),
        material_id: Some(id.clone()),
        valid_to,
        salt: m.salt.clone(),
    }));
    trail::record(
        tx,
        Op::ImportKeyMaterial.name(),
        json!({"requestParameters": {
            "keyId": req.key_id,
            "expirationModel": if valid_to.is_some() { "KEY_MATERIAL_EXPIRES" } else { "KEY_MATERIAL_DOES_NOT_EXPIRE" },
            "validTo": valid_to.map(Timestamp::cli_iso8601),
        }, "responseElements": {"keyMaterialId": id}}),
    );
    tx.push(KmsChange::PutKey(Box::new(key)));
    Ok(KeyMaterialResponse {
        key_id: arn,
        key_material_id: id,
    })
}

/// Drops the key's material (keeping its identifier, for a reimport): the key becomes
/// `PendingImport`, or stays `PendingDeletion` (its lifecycle is left as it is).
fn drop_material(tx: &mut Tx<'_>, key: &Key, m: &ImportedMaterial) {
    let mut key = key.clone();
    key.backing = Backing::External(Box::new(ImportedMaterial {
        wrapped: None,
        valid_to: None,
        material_id: m.material_id.clone(),
        salt: m.salt.clone(),
    }));
    tx.push(KmsChange::PutKey(Box::new(key)));
}

/// DeleteImportedKeyMaterial. As AWS's key state table has it: on a key pending deletion too
/// (the key loses its material and stays `PendingDeletion`; CancelKeyDeletion then leaves it
/// `PendingImport`), and on a key without material (`PendingImport`) it succeeds and changes
/// nothing, naming no `KeyMaterialId` when the key never had material.
pub fn delete(
    tx: &mut Tx<'_>,
    req: &DeleteImportedKeyMaterialRequest,
) -> Result<DeleteImportedKeyMaterialResponse> {
    let key = resolve_id(tx.state, tx.scope, &req.key_id)?;
    authorize(tx, key, Op::DeleteImportedKeyMaterial.action())?;
    let m = external(tx, key)?;
    let arn = tx.scope.key_arn(&key.id);
    if let Some(given) = &req.key_material_id {
        if m.material_id.as_ref() != Some(given) {
            return Err(err!(
                NotFoundException,
                "{arn} has no key material with id {given}"
            ));
        }
    }
    let id = m.material_id.clone();
    trail::record(
        tx,
        Op::DeleteImportedKeyMaterial.name(),
        json!({
            "requestParameters": {"keyId": req.key_id},
            "responseElements": id.as_ref().map(|id| json!({"keyMaterialId": id})),
        }),
    );
    if m.wrapped.is_some() {
        drop_material(tx, key, m);
    }
    Ok(DeleteImportedKeyMaterialResponse {
        key_id: arn,
        key_material_id: id,
    })
}

/// The keys whose imported material has expired at `now`.
pub fn due(state: &KmsState, now: Timestamp) -> Vec<KeyId> {
    state.due_for_expiry(now).collect()
}

/// Deletes the expired material of one key (see [`due`]), by the service, as AWS records it.
pub fn expire_due(tx: &mut Tx<'_>, id: KeyId) {
    let Some(key) = tx.state.keys.get(&id) else {
        return;
    };
    let Backing::External(m) = &key.backing else {
        return;
    };
    if m.wrapped.is_none() {
        return;
    }
    let (key, m) = (key.clone(), m.clone());
    trail::record_as(
        tx,
        "DeleteExpiredKeyMaterial",
        trail::SERVICE_PRINCIPAL,
        json!({"additionalEventData": {"keyId": id.to_string()}}),
    );
    drop_material(tx, &key, &m);
}
