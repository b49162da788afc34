//! Grants (CreateGrant, ListGrants, ListRetirableGrants, RetireGrant, RevokeGrant), with AWS's
//! rules, and how a grant lets its grantee use a key beside the key policy.
//!
//! A grant is its own record in the state (`KmsState::grants`), so creating or retiring one
//! journals that grant alone. It is effective as soon as the call that created it returns —
//! AWS documents up to about five minutes of eventual consistency, which a grant token skips;
//! kmscks has one copy of the state, so every grant is at once what AWS's is with its token.
//! Tokens are still checked for shape wherever `GrantTokens` is accepted
//! ([`check_tokens`]): a token kmscks did not issue is `InvalidGrantTokenException`.
//!
//! Who may do what:
//! - CreateGrant: the key policy's `kms:CreateGrant`, or a grant to the caller listing
//!   CreateGrant, for a grant that allows no more than it (a subset of its operations, and
//!   constraints at least as strict).
//! - RetireGrant: the grant's retiring principal, its grantee when it lists RetireGrant, or the
//!   account root, as on AWS, where `kms:RetireGrant` is an IAM permission and not effective
//!   in a key policy.
//! - RevokeGrant, ListGrants: the key policy.
//! - ListRetirableGrants: an IAM permission on AWS, so (no IAM here) the account root.
//!
//! The data plane learns each grant through the mirror (`dataplane`), and checks its
//! constraints against each request's encryption context (`types::grant`).

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::json;

use crate::api::kms::*;
use crate::err;
use crate::error::{Constraint, Result};
use crate::kms::keys::{
    access_denied, authorize, is_root, key_state, policy_refusal, policy_verdict, require_root, resolve_id,
};
use crate::kms::model::{Grant, Key};
use crate::kms::state::KmsChange;
use crate::kms::tx::Tx;
use crate::kms::{paging, trail};
use crate::ops::Op;
use crate::types::limits::*;
use crate::types::{
    hex, EncryptionContext, GrantConstraints, GrantOperation, KeyId, KeySpec, KeyState,
    PolicyAction, PolicyVerdict,
};
use crate::KmsError;

/// The first bytes of every grant token kmscks issues (then the key id, the grant id, a nonce).
const TOKEN_MAGIC: &[u8; 3] = b"KG\x01";
/// Random bytes in a token, so that every CreateGrant returns a new one.
const TOKEN_NONCE: usize = 16;
/// Bytes of a grant id (written as twice as many hex digits).
const GRANT_ID_BYTES: usize = 32;
const TOKEN_BYTES: usize = TOKEN_MAGIC.len() + 16 + GRANT_ID_BYTES + TOKEN_NONCE;

fn random(buf: &mut [u8]) {
    // Invariant: the system's random source works (aws-lc's fill fails only when the process
    // cannot produce randomness at all), as for every identifier kmscks makes.
    aws_lc_rs::rand::fill(buf).expect("system randomness unavailable");
}

/// A new token for the grant `id` on `key`.
fn issue_token(key: &KeyId, id: &str) -> String {
    let mut bytes = Vec::with_capacity(TOKEN_BYTES);
    bytes.extend_from_slice(TOKEN_MAGIC);
    bytes.extend_from_slice(key.as_bytes());
    bytes.extend(hex::decode(id).unwrap_or_default());
    let mut nonce = [0u8; TOKEN_NONCE];
    random(&mut nonce);
    bytes.extend_from_slice(&nonce);
    STANDARD.encode(bytes)
}

/// The key and grant id a token names, when it is one kmscks issued.
fn parse_token(token: &str) -> Option<(KeyId, String)> {
    let bytes = STANDARD.decode(token).ok()?;
    if bytes.len() != TOKEN_BYTES || !bytes.starts_with(TOKEN_MAGIC) {
        return None;
    }
    let rest = &bytes[TOKEN_MAGIC.len()..];
    let key = KeyId::from_bytes(rest[..16].try_into().ok()?);
    Some((key, hex::encode(&rest[16..16 + GRANT_ID_BYTES])))
}

fn invalid_token() -> KmsError {
    err!(InvalidGrantTokenException, "The grant token is not valid")
}

/// Checks `GrantTokens` as AWS does: at most [`MAX_GRANT_TOKENS`], each
/// [`GRANT_TOKEN_LEN`] characters and a token this service issued
/// (`InvalidGrantTokenException` otherwise). A valid token adds nothing to a grant here: every
/// grant is effective at once (see the module doc).
pub fn check_tokens(tokens: &[String]) -> Result<()> {
    if tokens.len() > MAX_GRANT_TOKENS {
        return Err(KmsError::validation(
            tokens.len(),
            "grantTokens",
            Constraint::MaxLength(MAX_GRANT_TOKENS),
        ));
    }
    let (min, max) = GRANT_TOKEN_LEN;
    for t in tokens {
        if !(min..=max).contains(&t.chars().count()) {
            return Err(err!(
                InvalidGrantTokenException,
                "A grant token must be {min} to {max} characters long"
            ));
        }
        parse_token(t).ok_or_else(invalid_token)?;
    }
    Ok(())
}

/// Checks a grant id's length, then that it is one kmscks could have issued
/// (`InvalidGrantIdException` otherwise).
fn check_grant_id(id: &str) -> Result<()> {
    let (min, max) = GRANT_ID_LEN;
    let n = id.chars().count();
    if !(min..=max).contains(&n) {
        return Err(KmsError::validation(
            id,
            "grantId",
            Constraint::LengthBetween(min, max),
        ));
    }
    if n != 2 * GRANT_ID_BYTES || hex::decode(id).is_none() {
        return Err(err!(InvalidGrantIdException, "Grant ID {id} is not valid"));
    }
    Ok(())
}

fn grant_not_found(id: &str, key_arn: &str) -> KmsError {
    err!(
        NotFoundException,
        "Grant ID {id} not found on KMS key {key_arn}"
    )
}

/// Checks a principal member (GranteePrincipal, RetiringPrincipal) against AWS's length and
/// pattern `[\w+=,.@:/-]+`.
fn check_principal(member: &str, p: &str) -> Result<()> {
    let (min, max) = GRANT_PRINCIPAL_LEN;
    let n = p.chars().count();
    if !(min..=max).contains(&n) {
        return Err(KmsError::validation(
            p,
            member,
            Constraint::LengthBetween(min, max),
        ));
    }
    let ok = p
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_+=,.@:/-".contains(c));
    if !ok {
        return Err(KmsError::validation(
            p,
            member,
            Constraint::Pattern("^[\\w+=,.@:/-]+$"),
        ));
    }
    Ok(())
}

fn check_name(name: &str) -> Result<()> {
    let (min, max) = GRANT_NAME_LEN;
    let n = name.chars().count();
    if !(min..=max).contains(&n) {
        return Err(KmsError::validation(
            name,
            "name",
            Constraint::LengthBetween(min, max),
        ));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b":/_-".contains(&b))
    {
        return Err(KmsError::validation(
            name,
            "name",
            Constraint::Pattern("^[a-zA-Z0-9:/_-]+$"),
        ));
    }
    Ok(())
}

fn check_constraint_map(member: &str, map: &EncryptionContext) -> Result<()> {
    if map.len() > MAX_GRANT_CONSTRAINT_PAIRS {
        return Err(KmsError::validation(
            format!("{} pairs", map.len()),
            member,
            Constraint::MaxLength(MAX_GRANT_CONSTRAINT_PAIRS),
        ));
    }
    if let Some(v) = map
        .values()
        .find(|v| v.chars().count() > GRANT_CONSTRAINT_VALUE_LEN)
    {
        return Err(KmsError::validation(
            format!("{} characters", v.chars().count()),
            member,
            Constraint::MaxLength(GRANT_CONSTRAINT_VALUE_LEN),
        ));
    }
    if let Some((a, b)) = crate::types::grant::keys_differing_only_in_case(map) {
        return Err(err!(
            ValidationException,
            "{member} has the keys '{a}' and '{b}', which differ only in case: a constraint \
             compares keys without regard to case"
        ));
    }
    Ok(())
}

/// The constraints as stored: `None` when none is given (empty maps count as none, as on AWS).
fn check_constraints(
    c: Option<&GrantConstraints>,
    ops: &[GrantOperation],
) -> Result<Option<GrantConstraints>> {
    let Some(c) = c.filter(|c| !c.is_empty()) else {
        return Ok(None);
    };
    if let Some(m) = &c.encryption_context_subset {
        check_constraint_map("constraints.encryptionContextSubset", m)?;
    }
    if let Some(m) = &c.encryption_context_equals {
        check_constraint_map("constraints.encryptionContextEquals", m)?;
    }
    // AWS: constraints are for operations with an encryption context; DescribeKey,
    // RetireGrant and CreateGrant may sit beside them, the asymmetric and HMAC operations not.
    let without_context = ops.iter().find(|op| {
        !op.takes_context()
            && !matches!(
                op,
                GrantOperation::DescribeKey
                    | GrantOperation::RetireGrant
                    | GrantOperation::CreateGrant
            )
    });
    if let Some(op) = without_context {
        return Err(err!(
            ValidationException,
            "Grant constraints are not supported for the {op} operation: it takes no \
             encryption context"
        ));
    }
    let drop_empty = |m: &Option<EncryptionContext>| m.clone().filter(|m| !m.is_empty());
    Ok(Some(GrantConstraints {
        encryption_context_subset: drop_empty(&c.encryption_context_subset),
        encryption_context_equals: drop_empty(&c.encryption_context_equals),
    }))
}

/// Whether a grant on `key` lets `principal` perform `op` where no encryption context is at
/// stake (DescribeKey, and the refused operations' checks): the grant lists it, and its
/// constraints, if any, do not apply to `op`.
pub fn grant_allows(tx: &Tx<'_>, key: &KeyId, action: PolicyAction) -> bool {
    let Some(op) = GrantOperation::of_action(action.as_str()) else {
        return false;
    };
    tx.state.grants_of(key).any(|g| {
        g.grantee == tx.principal
            && g.allows(op)
            && (!op.takes_context() || g.constraints.is_none())
    })
}

/// The key policy, or a grant (as [`grant_allows`] says), lets the caller perform `action`.
pub fn authorize_with_grants(tx: &Tx<'_>, key: &Key, action: PolicyAction) -> Result<()> {
    match policy_verdict(tx, key, action) {
        PolicyVerdict::Allow => Ok(()),
        // An explicit Deny in the key policy overrides every grant, as on AWS.
        PolicyVerdict::ImplicitDeny if grant_allows(tx, &key.id, action) => Ok(()),
        refused => Err(policy_refusal(tx, key, action, refused)),
    }
}

/// Whether two operation lists allow the same operations.
fn same_operations(a: &[GrantOperation], b: &[GrantOperation]) -> bool {
    a.iter().all(|op| b.contains(op)) && b.iter().all(|op| a.contains(op))
}

/// AWS's `ValidationException` for a grant that allows an operation the key cannot perform
/// (Sign on a symmetric key, Encrypt on an HMAC key…), or that constrains the encryption
/// context of a key whose operations take none (every key but a symmetric encryption key).
fn check_fits_key(
    key: &Key,
    operations: &[GrantOperation],
    constrained: bool,
    arn: &str,
) -> Result<()> {
    let symmetric = key.spec == KeySpec::SymmetricDefault;
    if let Some(op) = operations.iter().find(|op| !op.fits(key.usage, symmetric)) {
        return Err(err!(
            ValidationException,
            "{arn} is a {} key of usage {}, which does not support the grant operation {op}",
            key.spec,
            key.usage
        ));
    }
    if constrained && !symmetric {
        return Err(err!(
            ValidationException,
            "Grant constraints apply to symmetric encryption keys only; {arn} is a {} key",
            key.spec
        ));
    }
    Ok(())
}

/// CreateGrant.
pub fn create(tx: &mut Tx<'_>, req: &CreateGrantRequest) -> Result<CreateGrantResponse> {
    check_tokens(&req.grant_tokens)?;
    check_principal("granteePrincipal", &req.grantee_principal)?;
    if let Some(r) = &req.retiring_principal {
        check_principal("retiringPrincipal", r)?;
    }
    if req.operations.is_empty() {
        return Err(KmsError::validation(
            "[]",
            "operations",
            Constraint::MinLength(1),
        ));
    }
    let mut operations: Vec<GrantOperation> = Vec::with_capacity(req.operations.len());
    for op in &req.operations {
        if !operations.contains(op) {
            operations.push(*op);
        }
    }
    if let Some(n) = &req.name {
        check_name(n)?;
    }
    let constraints = check_constraints(req.constraints.as_ref(), &operations)?;
    let key = resolve_id(tx.state, tx.scope, &req.key_id)?;
    let arn = tx.scope.key_arn(&key.id);
    let action = Op::CreateGrant.action();
    let verdict = policy_verdict(tx, key, action);
    if verdict != PolicyVerdict::Allow {
        // Through a grant: one that lists CreateGrant and allows at least as much — unless
        // the key policy denies CreateGrant outright, which no grant overrides.
        let mine = constraints.clone().unwrap_or_default();
        let through_grant = verdict == PolicyVerdict::ImplicitDeny
            && tx.state.grants_of(&key.id).any(|g| {
                g.grantee == tx.principal
                    && g.allows(GrantOperation::CreateGrant)
                    && operations.iter().all(|op| g.allows(*op))
                    && g.constraints
                        .as_ref()
                        .is_none_or(|parent| mine.at_least_as_strict_as(parent))
            });
        if !through_grant {
            return Err(policy_refusal(tx, key, action, verdict));
        }
    }
    // The state the key shows (spec §4.5): a key of a disconnected store shows Unavailable,
    // where CreateGrant is allowed, whether it is enabled or disabled underneath.
    match key_state(tx.state, key) {
        KeyState::PendingDeletion => return Err(KmsError::pending_deletion(&arn)),
        KeyState::Disabled => return Err(KmsError::disabled(&arn)),
        _ => {}
    }
    check_fits_key(key, &operations, constraints.is_some(), &arn)?;
    // Name idempotency: the same name with the same parameters is the same grant.
    let existing = req.name.as_deref().and_then(|name| {
        tx.state.grants_named(&key.id, name).find(|g| {
            g.grantee == req.grantee_principal
                && g.retiring == req.retiring_principal
                && same_operations(&g.operations, &operations)
                && g.constraints == constraints
        })
    });
    if let Some(g) = existing {
        if req.dry_run {
            return Err(KmsError::dry_run_succeeded());
        }
        return Ok(CreateGrantResponse {
            grant_token: issue_token(&key.id, &g.id),
            grant_id: g.id.clone(),
        });
    }
    if tx.state.grant_count(&key.id) >= MAX_GRANTS_PER_KEY {
        return Err(KmsError::per_key_limit(MAX_GRANTS_PER_KEY, "grants"));
    }
    if req.dry_run {
        return Err(KmsError::dry_run_succeeded());
    }
    let mut raw = [0u8; GRANT_ID_BYTES];
    random(&mut raw);
    let grant = Grant {
        id: hex::encode(&raw),
        key: key.id,
        name: req.name.clone(),
        created: tx.now,
        grantee: req.grantee_principal.clone(),
        retiring: req.retiring_principal.clone(),
        operations,
        constraints,
    };
    let response = CreateGrantResponse {
        grant_token: issue_token(&grant.key, &grant.id),
        grant_id: grant.id.clone(),
    };
    trail::record(
        tx,
        "CreateGrant",
        json!({
            "requestParameters": {
                "keyId": req.key_id,
                "granteePrincipal": grant.grantee,
                "retiringPrincipal": grant.retiring,
                "operations": grant.operations,
                "constraints": grant.constraints,
                "name": grant.name,
            },
            "responseElements": {"grantId": grant.id},
        }),
    );
    tx.push(KmsChange::PutGrant(Box::new(grant)));
    Ok(response)
}

/// A grant as ListGrants shows it.
fn entry(tx: &Tx<'_>, g: &Grant) -> GrantListEntry {
    GrantListEntry {
        key_id: tx.scope.key_arn(&g.key),
        grant_id: g.id.clone(),
        name: g.name.clone(),
        creation_date: g.created,
        grantee_principal: g.grantee.clone(),
        retiring_principal: g.retiring.clone(),
        issuing_account: tx.scope.root_principal(),
        operations: g.operations.clone(),
        constraints: g.constraints.clone(),
    }
}

/// ListGrants: one key's grants, by grant id, optionally only one grant or one grantee's.
pub fn list(tx: &Tx<'_>, req: &ListGrantsRequest) -> Result<ListGrantsResponse> {
    const LIST: &str = "grants";
    let limit = paging::limit(req.limit, LIST_GRANTS_LIMIT, LIST_GRANTS_DEFAULT)?;
    if let Some(id) = &req.grant_id {
        check_grant_id(id)?;
    }
    if let Some(p) = &req.grantee_principal {
        check_principal("granteePrincipal", p)?;
    }
    let key = resolve_id(tx.state, tx.scope, &req.key_id)?;
    authorize(tx, key, Op::ListGrants.action())?;
    let after = paging::after::<String>(LIST, req.marker.as_deref())?;
    let empty = Default::default();
    let grants = tx.state.grants.get(&key.id).unwrap_or(&empty);
    let from = match &after {
        Some(a) => std::ops::Bound::Excluded(a.clone()),
        None => std::ops::Bound::Unbounded,
    };
    let wanted = |g: &Grant| {
        req.grant_id.as_ref().is_none_or(|id| *id == g.id)
            && req
                .grantee_principal
                .as_ref()
                .is_none_or(|p| *p == g.grantee)
    };
    let entries = grants
        .range((from, std::ops::Bound::Unbounded))
        .filter(|(_, g)| wanted(g));
    let page = paging::take(LIST, entries, limit, |_, g| entry(tx, g));
    Ok(ListGrantsResponse {
        truncated: page.truncated(),
        next_marker: page.next_marker,
        grants: page.items,
    })
}

/// ListRetirableGrants: the grants naming `RetiringPrincipal`, across keys, by key and grant
/// id.
pub fn list_retirable(tx: &Tx<'_>, req: &ListRetirableGrantsRequest) -> Result<ListGrantsResponse> {
    const LIST: &str = "retirable-grants";
    let limit = paging::limit(req.limit, LIST_GRANTS_LIMIT, LIST_GRANTS_DEFAULT)?;
    check_principal("retiringPrincipal", &req.retiring_principal)?;
    require_root(tx, Op::ListRetirableGrants.action())?;
    // The marker names the last (key, grant) returned, as `<key id>/<grant id>`.
    let after = paging::after::<String>(LIST, req.marker.as_deref())?;
    let after = match &after {
        None => None,
        Some(text) => {
            let parsed = text
                .split_once('/')
                .and_then(|(k, id)| Some((KeyId::parse(k)?, id)));
            Some(parsed.ok_or_else(|| {
                err!(
                    InvalidMarkerException,
                    "The marker is not valid for this request"
                )
            })?)
        }
    };
    let page: Vec<(String, &Grant)> = tx
        .state
        .retirable_by(&req.retiring_principal, after)
        .take(limit + 1)
        .map(|g| (format!("{}/{}", g.key, g.id), g))
        .collect();
    let page = paging::take(LIST, page.iter().map(|(k, g)| (k, *g)), limit, |_, g| {
        entry(tx, g)
    });
    Ok(ListGrantsResponse {
        truncated: page.truncated(),
        next_marker: page.next_marker,
        grants: page.items,
    })
}

/// RetireGrant: by token, or by key and grant id; by the retiring principal, the grantee when
/// the grant lists RetireGrant, or whom the key policy allows `kms:RetireGrant`. Any key state.
pub fn retire(tx: &mut Tx<'_>, req: &RetireGrantRequest) -> Result<Empty> {
    let (key_id, grant_id) = match (&req.grant_token, &req.key_id, &req.grant_id) {
        (Some(token), _, _) => {
            check_tokens(std::slice::from_ref(token))?;
            // Invariant: check_tokens accepted it, so it parses.
            parse_token(token).ok_or_else(invalid_token)?
        }
        (None, Some(key), Some(id)) => {
            check_grant_id(id)?;
            (resolve_id(tx.state, tx.scope, key)?.id, id.clone())
        }
        _ => {
            return Err(err!(
                ValidationException,
                "Specify either GrantToken, or both KeyId and GrantId"
            ))
        }
    };
    let key = tx
        .state
        .keys
        .get(&key_id)
        .ok_or_else(|| KmsError::key_not_found(tx.scope.key_arn(&key_id)))?;
    let arn = tx.scope.key_arn(&key.id);
    let grant = tx
        .state
        .grant(&key.id, &grant_id)
        .ok_or_else(|| grant_not_found(&grant_id, &arn))?;
    // The grant decides, and the account as a backstop; `kms:RetireGrant` in a key policy
    // is not effective on AWS (it is an IAM permission, and kmscks has no IAM), so a key
    // policy allowing it (`kms:*` say) makes no second RevokeGrant of it.
    let may = grant.retiring.as_deref() == Some(tx.principal)
        || (grant.grantee == tx.principal && grant.allows(GrantOperation::RetireGrant))
        || is_root(tx);
    if !may {
        return Err(access_denied(
            tx.principal,
            Op::RetireGrant.action().as_str(),
            &arn,
        ));
    }
    if req.dry_run {
        return Err(KmsError::dry_run_succeeded());
    }
    let (key, id) = (key.id, grant.id.clone());
    trail::record(
        tx,
        "RetireGrant",
        json!({"requestParameters": {"keyId": arn, "grantId": id}}),
    );
    tx.push(KmsChange::DeleteGrant(key, id));
    Ok(Empty {})
}

/// RevokeGrant: by whom the key policy allows `kms:RevokeGrant`. Any key state.
pub fn revoke(tx: &mut Tx<'_>, req: &RevokeGrantRequest) -> Result<Empty> {
    check_grant_id(&req.grant_id)?;
    let key = resolve_id(tx.state, tx.scope, &req.key_id)?;
    authorize(tx, key, Op::RevokeGrant.action())?;
    let arn = tx.scope.key_arn(&key.id);
    if tx.state.grant(&key.id, &req.grant_id).is_none() {
        return Err(grant_not_found(&req.grant_id, &arn));
    }
    if req.dry_run {
        return Err(KmsError::dry_run_succeeded());
    }
    let key = key.id;
    trail::record(
        tx,
        "RevokeGrant",
        json!({"requestParameters": {"keyId": req.key_id, "grantId": req.grant_id}}),
    );
    tx.push(KmsChange::DeleteGrant(key, req.grant_id.clone()));
    Ok(Empty {})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_names_its_key_and_grant_and_is_new_each_time() {
        let key = KeyId::generate();
        let id = hex::encode(&[7u8; GRANT_ID_BYTES]);
        let (a, b) = (issue_token(&key, &id), issue_token(&key, &id));
        assert_ne!(a, b);
        assert_eq!(parse_token(&a), Some((key, id.clone())));
        assert!(check_tokens(&[a, b]).is_ok());
    }

    #[test]
    fn tokens_kmscks_did_not_issue_are_invalid_grant_tokens() {
        for bad in ["x", "AQID", &"A".repeat(100)] {
            let e = check_tokens(&[bad.to_owned()]).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::InvalidGrantTokenException, "{bad}");
        }
        let e = check_tokens(&[String::new()]).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::InvalidGrantTokenException);
        let too_many = vec!["t".to_owned(); MAX_GRANT_TOKENS + 1];
        assert_eq!(
            check_tokens(&too_many).unwrap_err().kind(),
            crate::ErrorKind::ValidationException
        );
    }

    #[test]
    fn grant_ids_are_64_hex_digits_and_others_are_invalid_grant_ids() {
        assert!(check_grant_id(&hex::encode(&[0xab; GRANT_ID_BYTES])).is_ok());
        let kind = |id: &str| check_grant_id(id).unwrap_err().kind();
        assert_eq!(kind("abc"), crate::ErrorKind::InvalidGrantIdException);
        assert_eq!(kind(&"G".repeat(64)), crate::ErrorKind::InvalidGrantIdException);
        assert_eq!(kind(""), crate::ErrorKind::ValidationException);
        assert_eq!(kind(&"a".repeat(129)), crate::ErrorKind::ValidationException);
    }
}
