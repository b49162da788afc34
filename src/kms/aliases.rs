//! Aliases: CreateAlias, UpdateAlias, DeleteAlias, ListAliases (spec §4.3).
//!
//! Who may write an alias: on AWS, whoever the key policy of each key it points at allows the
//! operation *and* whom an IAM policy allows it on the alias itself (key policies cannot). With
//! no IAM here, the alias's part is the account root's ([`may_write`]). Without it, any
//! principal a key policy lets create aliases (`kms:*` on a key of its own) could take a name
//! no one uses yet but another application means to trust (`alias/prod-db`) and point it at a
//! key it can decrypt with.

use crate::api::kms::*;
use crate::err;
use crate::error::Result;
use crate::kms::keys::{authorize, is_root, require_root, resolve_id};
use crate::kms::model::{Alias, Key, Lifecycle};
use crate::kms::paging;
use crate::kms::state::KmsChange;
use crate::kms::tx::Tx;
use crate::ops::Op;
use crate::types::limits::*;
use crate::types::PolicyAction;

/// Checks AWS's alias naming rules.
pub fn check_name(name: &str) -> Result<()> {
    let n = name.chars().count();
    if n < ALIAS_NAME_LEN.0 || n > ALIAS_NAME_LEN.1 {
        return Err(err!(
            InvalidAliasNameException,
            "Alias name must be {} to {} characters long",
            ALIAS_NAME_LEN.0,
            ALIAS_NAME_LEN.1
        ));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'/' | b'_' | b'-'))
    {
        return Err(err!(
            InvalidAliasNameException,
            "Alias name {name} may contain only letters, digits, ':', '/', '_' and '-'"
        ));
    }
    if !name.starts_with("alias/") || name.len() == "alias/".len() {
        return Err(err!(
            InvalidAliasNameException,
            "Alias name {name} must begin with alias/ followed by a name"
        ));
    }
    if name.starts_with("alias/aws/") {
        return Err(err!(
            InvalidAliasNameException,
            "Alias name {name} uses the reserved prefix alias/aws/"
        ));
    }
    Ok(())
}

/// The alias's own permission for `op` ([module docs](self)): the account root's.
fn may_write(tx: &Tx<'_>, op: Op, name: &str) -> Result<()> {
    if is_root(tx) {
        return Ok(());
    }
    let action = op.action();
    Err(err!(
        AccessDeniedException,
        "User: {} is not authorized to perform: {action} on resource: {} because no \
         identity-based policy allows the {action} action (an alias's own permission is an IAM \
         one; with no IAM, the account root's)",
        tx.principal,
        tx.scope.alias_arn(name)
    ))
}

fn usable_target<'s>(tx: &Tx<'s>, target: &str, action: PolicyAction) -> Result<&'s Key> {
    let key = resolve_id(tx.state, tx.scope, target)?;
    authorize(tx, key, action)?;
    if matches!(key.lifecycle, Lifecycle::PendingDeletion { .. }) {
        return Err(crate::KmsError::pending_deletion(tx.scope.key_arn(&key.id)));
    }
    Ok(key)
}

/// How many aliases point at `key`, counted up to the per-key limit: a seek in the index of
/// aliases by key, not a scan of the account's.
fn aliases_of(tx: &Tx<'_>, key: &Key) -> usize {
    tx.state
        .aliases_of(&key.id, None)
        .take(MAX_ALIASES_PER_KEY)
        .count()
}

/// CreateAlias.
pub fn create(tx: &mut Tx<'_>, req: &AliasRequest) -> Result<Empty> {
    check_name(&req.alias_name)?;
    may_write(tx, Op::CreateAlias, &req.alias_name)?;
    if tx.state.aliases.contains_key(&req.alias_name) {
        return Err(err!(
            AlreadyExistsException,
            "An alias with the name {} already exists",
            tx.scope.alias_arn(&req.alias_name)
        ));
    }
    let key = usable_target(tx, &req.target_key_id, Op::CreateAlias.action())?;
    if aliases_of(tx, key) >= MAX_ALIASES_PER_KEY {
        return Err(crate::KmsError::per_key_limit(
            MAX_ALIASES_PER_KEY,
            "aliases",
        ));
    }
    let alias = Alias {
        name: req.alias_name.clone(),
        target: key.id,
        created: tx.now,
        last_updated: tx.now,
    };
    tx.push(KmsChange::PutAlias(alias));
    Ok(Empty {})
}

/// UpdateAlias: re-points an existing alias at another key of the same type and usage.
pub fn update(tx: &mut Tx<'_>, req: &AliasRequest) -> Result<Empty> {
    check_name(&req.alias_name)?;
    may_write(tx, Op::UpdateAlias, &req.alias_name)?;
    let alias = tx
        .state
        .aliases
        .get(&req.alias_name)
        .ok_or_else(|| crate::KmsError::alias_not_found(tx.scope.alias_arn(&req.alias_name)))?
        .clone();
    if let Some(current) = tx.state.keys.get(&alias.target) {
        authorize(tx, current, Op::UpdateAlias.action())?;
    }
    let key = usable_target(tx, &req.target_key_id, Op::UpdateAlias.action())?;
    if let Some(current) = tx.state.keys.get(&alias.target) {
        if current.spec != key.spec || current.usage != key.usage {
            return Err(err!(
                ValidationException,
                "The new target key must have the same key spec and key usage as the current one"
            ));
        }
    }
    if key.id != alias.target && aliases_of(tx, key) >= MAX_ALIASES_PER_KEY {
        return Err(crate::KmsError::per_key_limit(
            MAX_ALIASES_PER_KEY,
            "aliases",
        ));
    }
    let alias = Alias {
        target: key.id,
        last_updated: tx.now,
        ..alias
    };
    tx.push(KmsChange::PutAlias(alias));
    Ok(Empty {})
}

/// DeleteAlias.
pub fn delete(tx: &mut Tx<'_>, req: &DeleteAliasRequest) -> Result<Empty> {
    may_write(tx, Op::DeleteAlias, &req.alias_name)?;
    let alias = tx
        .state
        .aliases
        .get(&req.alias_name)
        .ok_or_else(|| crate::KmsError::alias_not_found(tx.scope.alias_arn(&req.alias_name)))?;
    if let Some(key) = tx.state.keys.get(&alias.target) {
        authorize(tx, key, Op::DeleteAlias.action())?;
    }
    tx.push(KmsChange::DeleteAlias(req.alias_name.clone()));
    Ok(Empty {})
}

/// ListAliases, for one key (through the index of aliases by target key) or for the account.
pub fn list(tx: &Tx<'_>, req: &ListRequest) -> Result<ListAliasesResponse> {
    const LIST: &str = "aliases";
    let limit = paging::limit(req.limit, LIST_ALIASES_LIMIT, LIST_ALIASES_DEFAULT)?;
    let only = match &req.key_id {
        Some(k) => {
            let key = resolve_id(tx.state, tx.scope, k)?;
            authorize(tx, key, Op::ListAliases.action())?;
            Some(key.id)
        }
        None => {
            require_root(tx, Op::ListAliases.action())?;
            None
        }
    };
    let entry = |_: &String, a: &Alias| AliasListEntry {
        alias_name: a.name.clone(),
        alias_arn: tx.scope.alias_arn(&a.name),
        target_key_id: a.target.to_string(),
        creation_date: a.created,
        last_updated_date: a.last_updated,
    };
    let marker = req.marker.as_deref();
    let page = match &only {
        None => paging::page(LIST, &tx.state.aliases, limit, marker, entry)?,
        Some(key) => {
            let after = paging::after::<String>(LIST, marker)?;
            let aliases = tx.state.aliases_of(key, after.as_deref());
            paging::take(LIST, aliases.map(|a| (&a.name, a)), limit, entry)
        }
    };
    Ok(ListAliasesResponse {
        truncated: page.truncated(),
        next_marker: page.next_marker,
        aliases: page.items,
    })
}
