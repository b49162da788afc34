//! Tags on KMS keys: TagResource, UntagResource, ListResourceTags (spec §4.3).

use std::collections::BTreeMap;

use crate::api::kms::*;
use crate::err;
use crate::error::Result;
use crate::kms::keys::{authorize, resolve_id};
use crate::kms::model::Lifecycle;
use crate::kms::paging;
use crate::kms::state::KmsChange;
use crate::kms::tx::Tx;
use crate::ops::Op;
use crate::types::limits::*;

fn check_key(k: &str) -> Result<()> {
    let n = k.chars().count();
    if n < TAG_KEY_LEN.0 || n > TAG_KEY_LEN.1 {
        return Err(err!(
            TagException,
            "Tag key '{k}' must be {} to {} characters long",
            TAG_KEY_LEN.0,
            TAG_KEY_LEN.1
        ));
    }
    if k.starts_with("aws:") {
        return Err(err!(
            TagException,
            "Tag key '{k}' uses the reserved prefix aws:"
        ));
    }
    Ok(())
}

/// Validates the tags of a request; duplicate keys within one request are refused.
pub fn validate_new(tags: &[Tag]) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for t in tags {
        check_key(&t.tag_key)?;
        if t.tag_value.chars().count() > TAG_VALUE_LEN.1 {
            return Err(err!(
                TagException,
                "The value of tag '{}' must be at most {} characters long",
                t.tag_key,
                TAG_VALUE_LEN.1
            ));
        }
        if out.insert(t.tag_key.clone(), t.tag_value.clone()).is_some() {
            return Err(err!(
                TagException,
                "Duplicate tag key '{}' in the request",
                t.tag_key
            ));
        }
    }
    Ok(out)
}

fn pending(tx: &Tx<'_>, lifecycle: &Lifecycle, id: &crate::types::KeyId) -> Result<()> {
    if matches!(lifecycle, Lifecycle::PendingDeletion { .. }) {
        return Err(crate::KmsError::pending_deletion(tx.scope.key_arn(id)));
    }
    Ok(())
}

/// TagResource: adds or overwrites; at most [`MAX_TAGS_PER_KEY`] tags per key.
pub fn tag(tx: &mut Tx<'_>, req: &TagResourceRequest) -> Result<Empty> {
    let new = validate_new(&req.tags)?;
    let key = resolve_id(tx.state, tx.scope, &req.key_id)?;
    authorize(tx, key, Op::TagResource.action())?;
    pending(tx, &key.lifecycle, &key.id)?;
    let mut key = key.clone();
    key.tags.extend(new);
    if key.tags.len() > MAX_TAGS_PER_KEY {
        return Err(crate::KmsError::per_key_limit(MAX_TAGS_PER_KEY, "tags"));
    }
    tx.push(KmsChange::PutKey(Box::new(key)));
    Ok(Empty {})
}

/// UntagResource: removing a tag that is not there is not an error.
pub fn untag(tx: &mut Tx<'_>, req: &UntagResourceRequest) -> Result<Empty> {
    for k in &req.tag_keys {
        check_key(k)?;
    }
    let key = resolve_id(tx.state, tx.scope, &req.key_id)?;
    authorize(tx, key, Op::UntagResource.action())?;
    pending(tx, &key.lifecycle, &key.id)?;
    let mut key = key.clone();
    for k in &req.tag_keys {
        key.tags.remove(k);
    }
    tx.push(KmsChange::PutKey(Box::new(key)));
    Ok(Empty {})
}

/// ListResourceTags (any key state).
pub fn list(tx: &Tx<'_>, req: &ListRequest) -> Result<ListResourceTagsResponse> {
    let limit = paging::limit(req.limit, LIST_TAGS_LIMIT, LIST_TAGS_LIMIT.1)?;
    let key_id = req
        .key_id
        .as_deref()
        .ok_or_else(|| crate::KmsError::required("KeyId"))?;
    let key = resolve_id(tx.state, tx.scope, key_id)?;
    authorize(tx, key, Op::ListResourceTags.action())?;
    let page = paging::page("tags", &key.tags, limit, req.marker.as_deref(), |k, v| {
        Tag {
            tag_key: k.clone(),
            tag_value: v.clone(),
        }
    })?;
    Ok(ListResourceTagsResponse {
        truncated: page.truncated(),
        next_marker: page.next_marker,
        tags: page.items,
    })
}
