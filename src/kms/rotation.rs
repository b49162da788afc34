//! Key rotation, AWS-exact at the API, for default-store symmetric keys: EnableKeyRotation
//! (with its rotation period), DisableKeyRotation, GetKeyRotationStatus, RotateKeyOnDemand
//! (at most [`MAX_ON_DEMAND_ROTATIONS`] a key) and ListKeyRotations; and the automatic
//! rotations the service's sweep makes when a key's next rotation date has passed
//! ([`rotate_due`]). A key in a custom key store, and an HMAC key, refuses every rotation
//! operation with AWS's `UnsupportedOperationException`, as AWS does (spec §5).
//!
//! A schedule is its own record ([`RotationSchedule`] in `KmsState::rotations`), journaled
//! alone as `KmsChange::PutRotation`; a rotation adds one [`MaterialVersion`] (fresh material
//! wrapped under the KMS master key, bound to the key id and version number), journaled alone
//! as `KmsChange::AddVersion`. Neither rewrites the key. Rotations complete within the call,
//! so no on-demand rotation is ever in progress (`OnDemandRotationStartDate` never appears,
//! and `ConflictException` never answers).

use serde_json::json;

use crate::api::kms::{
    EnableKeyRotationRequest, Empty, KeyIdRequest, KeyRotationStatusResponse,
    ListKeyRotationsRequest, ListKeyRotationsResponse, RotateKeyOnDemandResponse,
    RotationsListEntry,
};
use crate::err;
use crate::error::{check_value, Result};
use crate::kms::keys::{authorize, resolve_id, version_material_aad};
use crate::kms::model::{Key, Lifecycle, MaterialVersion, RotationSchedule};
use crate::kms::state::{KmsChange, KmsState};
use crate::kms::tx::Tx;
use crate::kms::{paging, trail, MASTER_KEY};
use crate::ops::Op;
use crate::secret::KeyMaterial;
use crate::types::limits::{
    DEFAULT_ROTATION_PERIOD_DAYS, LIST_ROTATIONS_DEFAULT, LIST_ROTATIONS_LIMIT,
    MAX_ON_DEMAND_ROTATIONS, ROTATION_PERIOD_DAYS,
};
use crate::types::{KeyId, KeySpec, Origin, RotationType, Timestamp};
use crate::KmsError;

/// AWS's refusal of every rotation operation (GetKeyRotationStatus included) for a key in a
/// custom key store or a key that is not a symmetric encryption key (an HMAC or signing key).
fn refuse_unrotatable_status(tx: &Tx<'_>, key: &Key) -> Result<()> {
    if key.origin == Origin::AwsCloudhsm {
        return Err(err!(
            UnsupportedOperationException,
            "{} origin is AWS_CLOUDHSM which is not valid for this operation.",
            tx.scope.key_arn(&key.id)
        ));
    }
    if key.spec != KeySpec::SymmetricDefault {
        return Err(err!(
            UnsupportedOperationException,
            "{} key spec is {} which is not valid for this operation.",
            tx.scope.key_arn(&key.id),
            key.spec
        ));
    }
    Ok(())
}

/// AWS's refusal of a rotation (or a rotation listing) of a key whose material kmscks does
/// not rotate: those [`refuse_unrotatable_status`] refuses, and imported material (Origin
/// EXTERNAL: GetKeyRotationStatus answers `false` for it, as AWS does).
fn refuse_unrotatable(tx: &Tx<'_>, key: &Key) -> Result<()> {
    refuse_unrotatable_status(tx, key)?;
    if key.origin == Origin::External {
        return Err(err!(
            UnsupportedOperationException,
            "{} origin is EXTERNAL: kmscks does not rotate imported key material.",
            tx.scope.key_arn(&key.id)
        ));
    }
    Ok(())
}

/// A key whose schedule may change: enabled (a disabled key is `DisabledException`, one
/// pending deletion `KMSInvalidStateException`, as AWS's key state table says).
fn require_enabled(tx: &Tx<'_>, key: &Key) -> Result<()> {
    let arn = tx.scope.key_arn(&key.id);
    match key.lifecycle {
        Lifecycle::Enabled => Ok(()),
        Lifecycle::Disabled => Err(KmsError::disabled(arn)),
        Lifecycle::PendingDeletion { .. } => Err(KmsError::pending_deletion(arn)),
    }
}

/// The rotation period asked for, checked against AWS's member constraint.
fn period(req: &EnableKeyRotationRequest) -> Result<u32> {
    let days = req
        .rotation_period_in_days
        .unwrap_or(DEFAULT_ROTATION_PERIOD_DAYS);
    check_value("rotationPeriodInDays", days, ROTATION_PERIOD_DAYS)
}

/// EnableKeyRotation: the next rotation is due `RotationPeriodInDays` (default 365) after now.
/// Enabling it again sets the new period and counts from now.
pub fn enable(tx: &mut Tx<'_>, req: &EnableKeyRotationRequest) -> Result<Empty> {
    let days = period(req)?;
    let key = resolve_id(tx.state, tx.scope, &req.key_id)?;
    authorize(tx, key, Op::EnableKeyRotation.action())?;
    refuse_unrotatable(tx, key)?;
    require_enabled(tx, key)?;
    let id = key.id;
    let schedule = RotationSchedule {
        period_days: days,
        next: tx.now.plus_days(days),
    };
    trail::record(
        tx,
        Op::EnableKeyRotation.name(),
        json!({"requestParameters": {"keyId": req.key_id, "rotationPeriodInDays": days}}),
    );
    tx.push(KmsChange::PutRotation(id, Some(schedule)));
    Ok(Empty {})
}

/// DisableKeyRotation.
pub fn disable(tx: &mut Tx<'_>, req: &KeyIdRequest) -> Result<Empty> {
    let key = resolve_id(tx.state, tx.scope, &req.key_id)?;
    authorize(tx, key, Op::DisableKeyRotation.action())?;
    refuse_unrotatable(tx, key)?;
    require_enabled(tx, key)?;
    let id = key.id;
    trail::record(
        tx,
        Op::DisableKeyRotation.name(),
        json!({"requestParameters": {"keyId": req.key_id}}),
    );
    if tx.state.rotations.contains_key(&id) {
        tx.push(KmsChange::PutRotation(id, None));
    }
    Ok(Empty {})
}

/// GetKeyRotationStatus: allowed in every state; a disabled key keeps its status, a key
/// pending deletion reports `false` (its schedule is kept, so CancelKeyDeletion restores it).
pub fn status(tx: &Tx<'_>, req: &KeyIdRequest) -> Result<KeyRotationStatusResponse> {
    let key = resolve_id(tx.state, tx.scope, &req.key_id)?;
    authorize(tx, key, Op::GetKeyRotationStatus.action())?;
    refuse_unrotatable_status(tx, key)?;
    let key_id = tx.scope.key_arn(&key.id);
    let pending = matches!(key.lifecycle, Lifecycle::PendingDeletion { .. });
    Ok(match tx.state.rotations.get(&key.id) {
        Some(s) if !pending => KeyRotationStatusResponse {
            key_rotation_enabled: true,
            key_id,
            rotation_period_in_days: Some(s.period_days),
            next_rotation_date: Some(s.next),
            on_demand_rotation_start_date: None,
        },
        _ => KeyRotationStatusResponse {
            key_rotation_enabled: false,
            key_id,
            ..Default::default()
        },
    })
}

/// Adds the key's next material version: fresh material, wrapped under the KMS master key and
/// bound to the key id and version number.
fn add_version(tx: &mut Tx<'_>, id: KeyId, how: RotationType) -> Result<()> {
    let version = tx.state.newest_version(&id) + 1;
    let material = KeyMaterial::generate();
    let wrapped = tx
        .keys
        .wrap_key(MASTER_KEY, &version_material_aad(&id, version), &material)?;
    tx.push(KmsChange::AddVersion(
        id,
        Box::new(MaterialVersion {
            wrapped,
            created: tx.now,
            how,
        }),
    ));
    Ok(())
}

/// RotateKeyOnDemand: the key's material rotates now; its automatic schedule is unchanged.
pub fn rotate_on_demand(tx: &mut Tx<'_>, req: &KeyIdRequest) -> Result<RotateKeyOnDemandResponse> {
    let key = resolve_id(tx.state, tx.scope, &req.key_id)?;
    authorize(tx, key, Op::RotateKeyOnDemand.action())?;
    refuse_unrotatable(tx, key)?;
    require_enabled(tx, key)?;
    let id = key.id;
    let done = tx
        .state
        .versions
        .get(&id)
        .map_or(0, |v| v.iter().filter(|v| v.how == RotationType::OnDemand).count());
    if done >= MAX_ON_DEMAND_ROTATIONS {
        return Err(err!(
            LimitExceededException,
            "{} has reached the limit of {MAX_ON_DEMAND_ROTATIONS} on-demand rotations",
            tx.scope.key_arn(&id)
        ));
    }
    trail::record(
        tx,
        Op::RotateKeyOnDemand.name(),
        json!({
            "requestParameters": {"keyId": req.key_id},
            "responseElements": {"keyId": id.to_string()},
        }),
    );
    add_version(tx, id, RotationType::OnDemand)?;
    Ok(RotateKeyOnDemandResponse {
        key_id: id.to_string(),
    })
}

/// The keys whose automatic rotation is due at `now` and that may rotate (enabled keys:
/// AWS rotates no disabled key nor one pending deletion; theirs waits until they are enabled).
pub fn due(state: &KmsState, now: Timestamp) -> Vec<KeyId> {
    state
        .due_for_rotation(now)
        .filter(|id| {
            state
                .keys
                .get(id)
                .is_some_and(|k| k.lifecycle == Lifecycle::Enabled)
        })
        .collect()
}

/// The automatic rotation of one key whose date has passed (see [`due`]), by the service: a
/// new material version, and the next rotation one period from now.
pub fn rotate_due(tx: &mut Tx<'_>, id: KeyId) -> Result<()> {
    let Some(schedule) = tx.state.rotations.get(&id).copied() else {
        return Ok(());
    };
    trail::record_as(
        tx,
        "RotateKey",
        trail::SERVICE_PRINCIPAL,
        json!({"additionalEventData": {"keyId": id.to_string(), "rotationType": "AUTOMATIC"}}),
    );
    add_version(tx, id, RotationType::Automatic)?;
    tx.push(KmsChange::PutRotation(
        id,
        Some(RotationSchedule {
            period_days: schedule.period_days,
            next: tx.now.plus_days(schedule.period_days),
        }),
    ));
    Ok(())
}

/// A material version's identifier, as ListKeyRotations shows it: 64 hex digits naming the
/// key and version (no secret goes into it).
fn material_id(id: &KeyId, version: u32) -> String {
    let mut input = b"kmscks key material ".to_vec();
    input.extend_from_slice(id.as_bytes());
    input.extend_from_slice(&version.to_be_bytes());
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &input);
    crate::types::hex::encode(digest.as_ref())
}

/// ListKeyRotations: the key's rotations, oldest first (with `ALL_KEY_MATERIAL`, its first
/// material before them). Allowed in every key state.
pub fn list(tx: &Tx<'_>, req: &ListKeyRotationsRequest) -> Result<ListKeyRotationsResponse> {
    const LIST: &str = "rotations";
    let all = match req.include_key_material.as_deref() {
        None | Some("ROTATIONS_ONLY") => false,
        Some("ALL_KEY_MATERIAL") => true,
        Some(other) => {
            return Err(KmsError::validation(
                other,
                "includeKeyMaterial",
                "Member must satisfy enum value set: [ALL_KEY_MATERIAL, ROTATIONS_ONLY]",
            ))
        }
    };
    let limit = paging::limit(req.limit, LIST_ROTATIONS_LIMIT, LIST_ROTATIONS_DEFAULT)?;
    let after = paging::after::<String>(LIST, req.marker.as_deref())?;
    let key = resolve_id(tx.state, tx.scope, &req.key_id)?;
    authorize(tx, key, Op::ListKeyRotations.action())?;
    refuse_unrotatable(tx, key)?;
    let id = key.id;
    let versions = tx.state.versions.get(&id).map_or(&[][..], Vec::as_slice);
    let newest = versions.len();
    // Versions by their number, zero-padded so that the marker's order is the numbers'.
    let first = if all { 0 } else { 1 };
    let keys: Vec<String> = (first..=newest).map(|v| format!("{v:010}")).collect();
    let entries = keys
        .iter()
        .enumerate()
        .map(|(i, k)| (k, first + i))
        .filter(|(k, _)| after.as_ref().is_none_or(|a| *k > a));
    let page = paging::take(LIST, entries, limit, |_, v| {
        let (rotation_date, rotation_type) = match v.checked_sub(1).map(|i| &versions[i]) {
            None => (key.created, None),
            Some(m) => (m.created, Some(m.how)),
        };
        RotationsListEntry {
            key_id: id.to_string(),
            key_material_id: material_id(&id, v as u32),
            key_material_state: if v == newest { "CURRENT" } else { "NON_CURRENT" }.into(),
            rotation_date,
            rotation_type,
        }
    });
    Ok(ListKeyRotationsResponse {
        truncated: page.truncated(),
        next_marker: page.next_marker,
        rotations: page.items,
    })
}
