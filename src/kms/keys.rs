//! KMS key operations: create, describe, list, enable/disable, deletion, description, key
//! policies, and the deletion that happens when a waiting period ends (spec §4.1–4.3, §4.5).

use serde_json::json;

use crate::api::kms::*;
use crate::crypto::private_key::{generate_material, is_private_spec, usages};
use crate::err;
use crate::error::{check_value, Result};
use crate::hsm;
use crate::kms::model::{Backing, Key, Lifecycle};
use crate::kms::policy::{self, KeyPolicy};
use crate::kms::state::{KmsChange, KmsState};
use crate::kms::stores::{self, check_two_zones};
use crate::kms::tx::Tx;
use crate::kms::{import, MASTER_KEY};
use crate::kms::{paging, tags, trail};
use crate::ops::Op;
use crate::secret::KeyMaterial;
use crate::types::limits::*;
use crate::types::*;
use crate::KmsError;

/// Whether the store behind a key (if any) is connected.
pub fn store_connected(state: &KmsState, key: &Key) -> bool {
    match key.store() {
        None => true,
        Some(s) => state
            .stores
            .get(s)
            .is_some_and(|s| s.state == ConnectionState::Connected),
    }
}

/// The key's visible state.
pub fn key_state(state: &KmsState, key: &Key) -> KeyState {
    key.state(store_connected(state, key))
}

/// AAD binding a default-store key's wrapped material to its key id.
pub fn default_material_aad(id: &KeyId) -> Vec<u8> {
    format!("kmscks default key {id}").into_bytes()
}

/// AAD binding a default-store key's material version to its key id and version number
/// (version 0, the key's first material, is [`default_material_aad`]).
pub fn version_material_aad(id: &KeyId, version: u32) -> Vec<u8> {
    if version == 0 {
        default_material_aad(id)
    } else {
        format!("kmscks default key {id} version {version}").into_bytes()
    }
}

/// Finds a key from a key id, key ARN, alias name or alias ARN.
pub fn resolve<'s>(state: &'s KmsState, scope: &Scope, text: &str) -> Result<&'s Key> {
    match scope.parse_key_ref(text)? {
        KeyRef::Id(id) => by_id(state, scope, &id),
        KeyRef::Alias(name) => {
            let alias = state
                .aliases
                .get(&name)
                .ok_or_else(|| KmsError::alias_not_found(scope.alias_arn(&name)))?;
            by_id(state, scope, &alias.target)
        }
    }
}

/// Finds a key from a key id or key ARN only (management operations).
pub fn resolve_id<'s>(state: &'s KmsState, scope: &Scope, text: &str) -> Result<&'s Key> {
    let id = scope.parse_key_id(text)?;
    by_id(state, scope, &id)
}

fn by_id<'s>(state: &'s KmsState, scope: &Scope, id: &KeyId) -> Result<&'s Key> {
    state
        .keys
        .get(id)
        .ok_or_else(|| KmsError::key_not_found(scope.key_arn(id)))
}

/// Checks that the key policy lets the transaction's principal perform `action` (an
/// operation's, from the table: `Op::DescribeKey.action()`).
pub fn authorize(tx: &Tx<'_>, key: &Key, action: PolicyAction) -> Result<()> {
    match policy_verdict(tx, key, action) {
        PolicyVerdict::Allow => Ok(()),
        refused => Err(policy_refusal(tx, key, action, refused)),
    }
}

/// What the key policy of `key` answers the caller performing `action` (a stored policy always
/// parses, as PutKeyPolicy and CreateKey check it and [`KeyPolicy::parse_stored`] reads it as
/// they did; one that did not would allow nothing).
pub fn policy_verdict(tx: &Tx<'_>, key: &Key, action: PolicyAction) -> PolicyVerdict {
    let arn = tx.scope.key_arn(&key.id);
    KeyPolicy::parse_stored(&key.policy)
        .map(|p| p.verdict(tx.principal, action.as_str(), &arn))
        .unwrap_or(PolicyVerdict::ImplicitDeny)
}

/// The refusal of the caller performing `action` on `key`, which the key policy answered
/// `verdict` (not an Allow), in AWS's wording for an explicit or an implicit deny.
pub fn policy_refusal(
    tx: &Tx<'_>,
    key: &Key,
    action: PolicyAction,
    verdict: PolicyVerdict,
) -> KmsError {
    KmsError::policy_refusal(
        verdict == PolicyVerdict::ExplicitDeny,
        tx.principal,
        action.as_str(),
        tx.scope.key_arn(&key.id),
    )
}

/// AWS's AccessDeniedException wording for a key-policy refusal.
pub fn access_denied(principal: &str, action: &str, arn: &str) -> KmsError {
    KmsError::not_authorized(principal, action, arn)
}

/// Whether the caller is the account root: who holds, with no IAM, every permission only an IAM
/// policy could give.
pub fn is_root(tx: &Tx<'_>) -> bool {
    tx.principal == tx.scope.root_principal()
}

/// Account-level operations (creating keys and stores, listing, cluster administration) are for
/// the account root only: there is no IAM to grant them to anyone else.
pub fn require_root(tx: &Tx<'_>, action: PolicyAction) -> Result<()> {
    if is_root(tx) {
        Ok(())
    } else {
        Err(err!(
            AccessDeniedException,
            "User: {} is not authorized to perform: {action} because only the account root may perform account-level operations",
            tx.principal
        ))
    }
}

fn pending_deletion(tx: &Tx<'_>, key: &Key) -> KmsError {
    KmsError::pending_deletion(tx.scope.key_arn(&key.id))
}

fn refuse_if_pending(tx: &Tx<'_>, key: &Key) -> Result<()> {
    match key.lifecycle {
        Lifecycle::PendingDeletion { .. } => Err(pending_deletion(tx, key)),
        _ => Ok(()),
    }
}

/// Checks `GrantTokens` as AWS does (see [`crate::kms::grants::check_tokens`]).
pub fn check_grant_tokens(tokens: &[String]) -> Result<()> {
    crate::kms::grants::check_tokens(tokens)
}

/// KeyMetadata of a key as DescribeKey shows it.
pub fn metadata(state: &KmsState, scope: &Scope, key: &Key) -> KeyMetadata {
    let st = key_state(state, key);
    let store = key.store().and_then(|s| state.stores.get(s));
    KeyMetadata {
        aws_account_id: scope.account_id.clone(),
        key_id: key.id.to_string(),
        arn: scope.key_arn(&key.id),
        creation_date: key.created,
        enabled: st == KeyState::Enabled,
        description: key.description.clone(),
        key_usage: key.usage,
        key_state: st,
        deletion_date: key.deletion_date(),
        origin: key.origin,
        custom_key_store_id: key.store().map(|s| s.to_string()),
        cloud_hsm_cluster_id: store.map(|s| s.cluster_id.to_string()),
        key_manager: KeyManager::Customer,
        customer_master_key_spec: key.spec,
        key_spec: key.spec,
        encryption_algorithms: match key.usage {
            KeyUsage::EncryptDecrypt => key.spec.encryption_algorithms().to_vec(),
            _ => Vec::new(),
        },
        key_agreement_algorithms: match key.usage {
            KeyUsage::KeyAgreement => key.spec.key_agreement_algorithms().to_vec(),
            _ => Vec::new(),
        },
        mac_algorithms: key.spec.mac_algorithm().into_iter().collect(),
        signing_algorithms: match key.usage {
            KeyUsage::SignVerify => key.spec.signing_algorithms().to_vec(),
            _ => Vec::new(),
        },
        multi_region: false,
        expiration_model: match &key.backing {
            Backing::External(m) if m.wrapped.is_some() => Some(if m.valid_to.is_some() {
                ExpirationModel::KeyMaterialExpires
            } else {
                ExpirationModel::KeyMaterialDoesNotExpire
            }),
            _ => None,
        },
        valid_to: key.material_expiry(),
    }
}

fn check_description(d: &str) -> Result<()> {
    let n = d.chars().count();
    if n > DESCRIPTION_LEN.1 {
        return Err(KmsError::validation(
            format!("{n} characters"),
            "description",
            crate::error::Constraint::MaxLength(DESCRIPTION_LEN.1),
        ));
    }
    Ok(())
}

/// Parses a policy document and, unless bypassed, checks that it keeps the caller able to
/// change it.
fn accept_policy(tx: &Tx<'_>, text: &str, key_arn: &str, bypass: bool) -> Result<()> {
    let parsed = KeyPolicy::parse(text)?;
    if !bypass {
        parsed.check_lockout_safety(tx.principal, key_arn)?;
    }
    Ok(())
}

/// What CreateKey made: the response (the data plane takes the new key's material from the
/// state it mirrors).
pub struct Created {
    /// The response.
    pub response: KeyMetadataResponse,
}

/// What a CreateKey request asks for, as [`check_create`] read it.
struct Checked {
    spec: KeySpec,
    usage: KeyUsage,
    origin: Origin,
    new_tags: std::collections::BTreeMap<String, String>,
}

/// The key material CreateKey `req` will generate for a key of the default key store (a key
/// pair, or an HMAC key), when the request is one the state would take as it is now; `None`
/// for any other key. The caller generates it ([`generate_material`]) before it locks the state
/// to [`create`] the key: an RSA_4096 key pair takes up to seconds of CPU, during which every
/// other control call (any principal's) would wait for the lock.
///
/// Errors: those of [`create`] that do not depend on the key's ARN (a refused caller, spec,
/// usage, origin, tags, the key limit, a policy that does not parse), so that nothing is
/// generated for a request refused that way. (A policy that would lock the caller out is
/// refused only by [`create`], which knows the ARN it is checked against.)
pub fn material_to_generate(tx: &Tx<'_>, req: &CreateKeyRequest) -> Result<Option<KeySpec>> {
    let c = check_create(tx, req)?;
    let default_store = req.custom_key_store_id.is_none() && c.origin == Origin::AwsKms;
    Ok((default_store && is_private_spec(c.spec)).then_some(c.spec))
}

/// The checks of CreateKey that do not depend on the new key's ARN (all but the policy's).
fn check_create(tx: &Tx<'_>, req: &CreateKeyRequest) -> Result<Checked> {
    require_root(tx, Op::CreateKey.action())?;
    let in_store = req.custom_key_store_id.is_some();
    let where_ = if in_store {
        "in a custom key store"
    } else {
        "in kmscks"
    };
    let spec = match (req.key_spec, req.customer_master_key_spec) {
        (Some(a), Some(b)) if a != b => {
            return Err(err!(
                ValidationException,
                "KeySpec and CustomerMasterKeySpec differ; specify only KeySpec"
            ))
        }
        (Some(s), _) | (None, Some(s)) => s,
        (None, None) => KeySpec::SymmetricDefault,
    };
    // A custom key store holds symmetric keys only (AWS's rule); the default key store also
    // HMAC keys.
    let supported = spec == KeySpec::SymmetricDefault || (!in_store && is_private_spec(spec));
    if !supported {
        let only = if in_store {
            "only SYMMETRIC_DEFAULT keys are"
        } else {
            "only SYMMETRIC_DEFAULT, HMAC, RSA and ECC keys are"
        };
        return Err(err!(
            UnsupportedOperationException,
            "KeySpec {spec} is not supported {where_}; {only}"
        ));
    }
    // AWS's default usage is ENCRYPT_DECRYPT whatever the spec, so an HMAC key must name its.
    let usage = req.key_usage.unwrap_or(KeyUsage::EncryptDecrypt);
    if in_store && usage != KeyUsage::EncryptDecrypt {
        return Err(err!(
            UnsupportedOperationException,
            "KeyUsage {usage} is not supported {where_}; only ENCRYPT_DECRYPT is"
        ));
    }
    let listed = |usages: &[KeyUsage]| {
        usages
            .iter()
            .map(|u| u.as_str())
            .collect::<Vec<_>>()
            .join(" or ")
    };
    if !spec.aws_usages().contains(&usage) {
        return Err(err!(
            ValidationException,
            "KeyUsage {usage} is not compatible with KeySpec {spec}; {spec} keys are {}",
            listed(spec.aws_usages())
        ));
    }
    if !usages(spec).contains(&usage) {
        return Err(err!(
            UnsupportedOperationException,
            "KeyUsage {usage} is not supported for {spec} keys {where_}; only {} is",
            listed(usages(spec))
        ));
    }
    if req.multi_region == Some(true) {
        return Err(err!(
            UnsupportedOperationException,
            "Multi-Region keys are not supported {where_}"
        ));
    }
    // AWS's default, also with a CustomKeyStoreId: a key in a store must say AWS_CLOUDHSM.
    let origin = req.origin.unwrap_or(Origin::AwsKms);
    match (origin, in_store) {
        (Origin::AwsKms, false) | (Origin::AwsCloudhsm, true) => {}
        // kmscks imports 256-bit symmetric material only (`kms::import`).
        (Origin::External, false) if spec != KeySpec::SymmetricDefault => {
            return Err(err!(
                UnsupportedOperationException,
                "Origin EXTERNAL is supported for SYMMETRIC_DEFAULT keys only in kmscks"
            ))
        }
        (Origin::External, false) => {}
        (Origin::AwsCloudhsm, false) => {
            return Err(err!(
                UnsupportedOperationException,
                "Origin AWS_CLOUDHSM requires a CustomKeyStoreId"
            ))
        }
        (Origin::AwsKms, true) => {
            return Err(err!(
                UnsupportedOperationException,
                "A key in a custom key store must have Origin AWS_CLOUDHSM (Origin defaults to \
                 AWS_KMS)"
            ))
        }
        (o, _) => {
            return Err(err!(
                UnsupportedOperationException,
                "Origin {o} is not supported {where_}"
            ))
        }
    }
    if let Some(d) = &req.description {
        check_description(d)?;
    }
    let new_tags = tags::validate_new(&req.tags)?;
    if new_tags.len() > MAX_TAGS_PER_KEY {
        return Err(KmsError::per_key_limit(MAX_TAGS_PER_KEY, "tags"));
    }
    if tx.state.keys.len() >= MAX_KEYS {
        return Err(err!(
            LimitExceededException,
            "You have reached the limit of {MAX_KEYS} KMS keys"
        ));
    }
    if let Some(p) = &req.policy {
        KeyPolicy::parse(p)?;
    }
    Ok(Checked {
        spec,
        usage,
        origin,
        new_tags,
    })
}

/// CreateKey in the default key store or in a custom key store. `material`: what
/// [`material_to_generate`] asked the caller to generate, with its spec, if it did; used only
/// for a key of that spec (else the material is generated here).
pub fn create(
    tx: &mut Tx<'_>,
    req: &CreateKeyRequest,
    material: Option<(KeySpec, crate::secret::SecretBytes)>,
) -> Result<Created> {
    let Checked {
        spec,
        usage,
        origin,
        new_tags,
    } = check_create(tx, req)?;
    let id = KeyId::generate();
    let arn = tx.scope.key_arn(&id);
    let policy = match &req.policy {
        Some(p) => {
            accept_policy(tx, p, &arn, req.bypass_policy_lockout_safety_check)?;
            p.clone()
        }
        None => policy::default_policy(tx.scope),
    };

    let (backing, extra) = match &req.custom_key_store_id {
        None if origin == Origin::External => (import::new_backing(tx, &id)?, json!({})),
        None if is_private_spec(spec) => {
            // The data plane parses it once, when it places the key (`dataplane`).
            let material = match material {
                Some((made_for, m)) if made_for == spec => m,
                _ => generate_material(spec)?,
            };
            let wrapped =
                tx.keys
                    .wrap_bytes(MASTER_KEY, &default_material_aad(&id), material.expose())?;
            (Backing::Default { wrapped }, json!({}))
        }
        None => {
            let material = KeyMaterial::generate();
            let wrapped = tx
                .keys
                .wrap_key(MASTER_KEY, &default_material_aad(&id), &material)?;
            (Backing::Default { wrapped }, json!({}))
        }
        Some(store_id) => {
            let s = stores::store(tx.state, store_id)?.clone();
            if s.state != ConnectionState::Connected {
                return Err(err!(
                    CustomKeyStoreInvalidStateException,
                    "Custom key store {} is {}; it must be CONNECTED to create keys in it",
                    s.id,
                    s.state
                ));
            }
            let c = hsm::reachability(tx.cloudhsm, &s.cluster_id, &tx.scope.region)
                .map_err(|code| KmsError::cluster_unreachable(&s.cluster_id, &s.id, code))?;
            check_two_zones(c)?;
            if !hsm::kms_logged_in(tx.cloudhsm, &s.cluster_id, &s.id) {
                return Err(err!(KMSInternalException, "KMS is not logged in to CloudHSM cluster {} as kmsuser; disconnect and reconnect the custom key store", s.cluster_id));
            }
            // The key object (and so its material) stays in the HSM's state, which the data
            // plane mirrors.
            let (handle, _material) =
                tx.in_hsm(|h| hsm::kms_generate_key(h, &s.cluster_id, &arn))?;
            let backing_key_id = backing_key_id(handle, &arn);
            let extra = json!({
                "customKeyStoreId": s.id.as_str(),
                "clusterId": s.cluster_id.as_str(),
                "backingKey": json!({"keyHandle": handle.to_string(), "backingKeyId": backing_key_id}).to_string(),
            });
            (
                Backing::CloudHsm {
                    store: s.id.clone(),
                    handle,
                    backing_key_id,
                },
                extra,
            )
        }
    };
    let key = Key {
        id,
        created: tx.now,
        description: req.description.clone().unwrap_or_default(),
        lifecycle: Lifecycle::Enabled,
        origin,
        usage,
        spec,
        backing,
        policy: policy.into(),
        tags: new_tags,
    };
    let response = KeyMetadataResponse {
        key_metadata: metadata_after(tx, &key),
    };
    trail::record(
        tx,
        "CreateKey",
        json!({
            "requestParameters": {"origin": origin.as_str(), "customKeyStoreId": req.custom_key_store_id, "description": key.description},
            "responseElements": {"keyMetadata": response.key_metadata},
            "additionalEventData": extra,
        }),
    );
    tx.push(KmsChange::PutKey(Box::new(key)));
    Ok(Created { response })
}

/// Metadata of a key that is not in the state yet (its store is).
fn metadata_after(tx: &Tx<'_>, key: &Key) -> KeyMetadata {
    metadata(tx.state, tx.scope, key)
}

/// An opaque, stable backing-key id (as CloudTrail's `backingKeyId`): SHA-256 of handle and label.
pub fn backing_key_id(handle: u64, label: &str) -> String {
    let digest = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        format!("{handle}\n{label}").as_bytes(),
    );
    crate::types::hex::encode(digest.as_ref())
}

/// DescribeKey (any key state; key id, key ARN, alias name or alias ARN).
pub fn describe(tx: &Tx<'_>, req: &KeyIdRequest) -> Result<KeyMetadataResponse> {
    check_grant_tokens(&req.grant_tokens)?;
    let key = resolve(tx.state, tx.scope, &req.key_id)?;
    crate::kms::grants::authorize_with_grants(tx, key, Op::DescribeKey.action())?;
    Ok(KeyMetadataResponse {
        key_metadata: metadata(tx.state, tx.scope, key),
    })
}

/// ListKeys: every key of the account and Region, any state.
pub fn list(tx: &Tx<'_>, req: &ListRequest) -> Result<ListKeysResponse> {
    require_root(tx, Op::ListKeys.action())?;
    let limit = paging::limit(req.limit, LIST_LIMIT, LIST_KEYS_DEFAULT)?;
    let page = paging::page(
        "keys",
        &tx.state.keys,
        limit,
        req.marker.as_deref(),
        |id, _| KeyListEntry {
            key_id: id.to_string(),
            key_arn: tx.scope.key_arn(id),
        },
    )?;
    Ok(ListKeysResponse {
        truncated: page.truncated(),
        next_marker: page.next_marker,
        keys: page.items,
    })
}

fn put(tx: &mut Tx<'_>, key: Key) {
    tx.push(KmsChange::PutKey(Box::new(key)));
}

/// EnableKey / DisableKey. On an Unavailable key it succeeds and takes effect on reconnect.
pub fn set_enabled(tx: &mut Tx<'_>, req: &KeyIdRequest, enabled: bool) -> Result<Empty> {
    let op = if enabled {
        Op::EnableKey
    } else {
        Op::DisableKey
    };
    let key = resolve_id(tx.state, tx.scope, &req.key_id)?;
    authorize(tx, key, op.action())?;
    refuse_if_pending(tx, key)?;
    if key.pending_import() {
        return Err(err!(
            KMSInvalidStateException,
            "{} is pending import.",
            tx.scope.key_arn(&key.id)
        ));
    }
    let mut key = key.clone();
    key.lifecycle = if enabled {
        Lifecycle::Enabled
    } else {
        Lifecycle::Disabled
    };
    trail::record(
        tx,
        op.name(),
        json!({"requestParameters": {"keyId": req.key_id}}),
    );
    put(tx, key);
    Ok(Empty {})
}

/// UpdateKeyDescription.
pub fn update_description(tx: &mut Tx<'_>, req: &UpdateKeyDescriptionRequest) -> Result<Empty> {
    check_description(&req.description)?;
    let key = resolve_id(tx.state, tx.scope, &req.key_id)?;
    authorize(tx, key, Op::UpdateKeyDescription.action())?;
    refuse_if_pending(tx, key)?;
    let mut key = key.clone();
    key.description = req.description.clone();
    put(tx, key);
    Ok(Empty {})
}

fn backing_keys_json(tx: &Tx<'_>, key: &Key) -> serde_json::Value {
    match &key.backing {
        Backing::CloudHsm {
            store,
            handle,
            backing_key_id,
        } => {
            let cluster = tx.state.stores.get(store).map(|s| s.cluster_id.to_string());
            json!({
                "customKeyStoreId": store.as_str(),
                "clusterId": cluster,
                "backingKeys": json!([{"keyHandle": handle.to_string(), "backingKeyId": backing_key_id}]).to_string(),
            })
        }
        Backing::Default { .. } | Backing::External(_) => json!({}),
    }
}

/// ScheduleKeyDeletion: [`PENDING_WINDOW_DAYS`] (default [`DEFAULT_PENDING_WINDOW_DAYS`]);
/// allowed while Unavailable.
pub fn schedule_deletion(
    tx: &mut Tx<'_>,
    req: &ScheduleKeyDeletionRequest,
) -> Result<ScheduleKeyDeletionResponse> {
    let days = req
        .pending_window_in_days
        .unwrap_or(DEFAULT_PENDING_WINDOW_DAYS);
    check_value("pendingWindowInDays", days, PENDING_WINDOW_MODEL_DAYS)?;
    if !(PENDING_WINDOW_DAYS.0..=PENDING_WINDOW_DAYS.1).contains(&days) {
        return Err(err!(
            ValidationException,
            "PendingWindowInDays must be between {} and {}",
            PENDING_WINDOW_DAYS.0,
            PENDING_WINDOW_DAYS.1
        ));
    }
    let key = resolve_id(tx.state, tx.scope, &req.key_id)?;
    authorize(tx, key, Op::ScheduleKeyDeletion.action())?;
    refuse_if_pending(tx, key)?;
    let mut key = key.clone();
    let deletion_date = tx.now.plus_days(days);
    key.lifecycle = Lifecycle::PendingDeletion {
        deletion_date,
        window_days: days,
    };
    let arn = tx.scope.key_arn(&key.id);
    let extra = backing_keys_json(tx, &key);
    trail::record(
        tx,
        "ScheduleKeyDeletion",
        json!({
            "requestParameters": {"keyId": req.key_id, "pendingWindowInDays": days},
            "responseElements": {"keyId": arn, "deletionDate": deletion_date, "keyState": "PendingDeletion"},
            "additionalEventData": extra,
        }),
    );
    put(tx, key);
    Ok(ScheduleKeyDeletionResponse {
        key_id: arn,
        deletion_date,
        key_state: KeyState::PendingDeletion,
        pending_window_in_days: days,
    })
}

/// CancelKeyDeletion: the key comes back Disabled.
pub fn cancel_deletion(tx: &mut Tx<'_>, req: &KeyIdRequest) -> Result<KeyIdResponse> {
    let key = resolve_id(tx.state, tx.scope, &req.key_id)?;
    authorize(tx, key, Op::CancelKeyDeletion.action())?;
    let arn = tx.scope.key_arn(&key.id);
    if !matches!(key.lifecycle, Lifecycle::PendingDeletion { .. }) {
        return Err(err!(
            KMSInvalidStateException,
            "{arn} is not pending deletion."
        ));
    }
    let mut key = key.clone();
    key.lifecycle = Lifecycle::Disabled;
    trail::record(
        tx,
        "CancelKeyDeletion",
        json!({"requestParameters": {"keyId": req.key_id}}),
    );
    put(tx, key);
    Ok(KeyIdResponse { key_id: arn })
}

fn check_policy_name(name: Option<&str>) -> Result<()> {
    match name {
        None | Some("default") => Ok(()),
        Some(other) => Err(err!(
            NotFoundException,
            "Policy {other} does not exist; the only key policy name is default"
        )),
    }
}

/// PutKeyPolicy.
pub fn put_policy(tx: &mut Tx<'_>, req: &PutKeyPolicyRequest) -> Result<Empty> {
    check_policy_name(req.policy_name.as_deref())?;
    let key = resolve_id(tx.state, tx.scope, &req.key_id)?;
    authorize(tx, key, Op::PutKeyPolicy.action())?;
    let arn = tx.scope.key_arn(&key.id);
    accept_policy(
        tx,
        &req.policy,
        &arn,
        req.bypass_policy_lockout_safety_check,
    )?;
    let mut key = key.clone();
    key.policy = req.policy.as_str().into();
    trail::record(
        tx,
        "PutKeyPolicy",
        json!({"requestParameters": {"keyId": req.key_id, "policyName": "default"}}),
    );
    put(tx, key);
    Ok(Empty {})
}

/// GetKeyPolicy.
pub fn get_policy(tx: &Tx<'_>, req: &GetKeyPolicyRequest) -> Result<GetKeyPolicyResponse> {
    check_policy_name(req.policy_name.as_deref())?;
    let key = resolve_id(tx.state, tx.scope, &req.key_id)?;
    authorize(tx, key, Op::GetKeyPolicy.action())?;
    Ok(GetKeyPolicyResponse {
        policy: key.policy.to_string(),
        policy_name: "default".into(),
    })
}

/// ListKeyPolicies: always `["default"]`.
pub fn list_policies(tx: &Tx<'_>, req: &ListRequest) -> Result<ListKeyPoliciesResponse> {
    paging::limit(req.limit, LIST_LIMIT, LIST_LIMIT.1)?;
    let key_id = req
        .key_id
        .as_deref()
        .ok_or_else(|| KmsError::required("KeyId"))?;
    let key = resolve_id(tx.state, tx.scope, key_id)?;
    authorize(tx, key, Op::ListKeyPolicies.action())?;
    Ok(ListKeyPoliciesResponse {
        policy_names: vec!["default".into()],
        truncated: false,
    })
}

/// Keys whose waiting period has ended, oldest first.
pub fn due_for_deletion(state: &KmsState, now: Timestamp) -> Vec<KeyId> {
    state.due_for_deletion(now).collect()
}

/// Deletes a key at the end of its waiting period: metadata and aliases, then a best-effort
/// deletion of the HSM key (it fails, leaving an orphan, when the store is not connected).
pub fn delete_now(tx: &mut Tx<'_>, id: &KeyId) {
    let Some(key) = tx.state.keys.get(id).cloned() else {
        return;
    };
    let arn = tx.scope.key_arn(id);
    let mut extra = backing_keys_json(tx, &key);
    if let Backing::CloudHsm {
        store,
        handle,
        backing_key_id,
    } = &key.backing
    {
        let deleted = tx.state.stores.get(store).cloned().is_some_and(|s| {
            s.state == ConnectionState::Connected
                && tx.in_hsm(|h| hsm::kms_delete_key(h, &s.cluster_id, &s.id, &arn))
        });
        let status = json!([{
            "keyHandle": handle.to_string(),
            "backingKeyId": backing_key_id,
            "deletionStatus": if deleted { "SUCCESS" } else { "FAILURE" },
        }]);
        extra["backingKeysDeletionStatus"] = json!(status.to_string());
    }
    trail::record_as(
        tx,
        "DeleteKey",
        trail::SERVICE_PRINCIPAL,
        json!({"eventType": "AwsServiceEvent", "requestParameters": {"keyId": arn}, "additionalEventData": extra}),
    );
    tx.push(KmsChange::DeleteKey(*id));
}
