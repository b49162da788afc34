//! Tags on CloudHSM resources, as cloudhsmv2 has them: TagResource, UntagResource and ListTags
//! on a cluster (`cluster-…`) or a backup (`backup-…`), `ResourceId` naming either. Either is
//! found only in its own Region (the request's `Region`, else the configured one), as every
//! cluster or backup verb finds it.

use std::collections::BTreeMap;

use super::backup::backup;
use super::cluster::{cluster_in, tag_list, tag_map};
use super::paging::page;
use super::{CloudHsmState, HsmChange, HsmTx};
use crate::api::hsm::*;
use crate::err;
use crate::error::Result;
use crate::types::*;

/// The tags of the resource `id` (a cluster or a backup in `region`).
fn tags_of<'s>(
    state: &'s CloudHsmState,
    now: Timestamp,
    region: &str,
    id: &str,
) -> Result<&'s BTreeMap<String, String>> {
    if id.starts_with("backup-") {
        Ok(&backup(state, now, region, id)?.tags)
    } else if id.starts_with("cluster-") {
        Ok(&cluster_in(state, region, id)?.tags)
    } else {
        Err(err!(
            CloudHsmInvalidRequestException,
            "ResourceId '{id}' is neither a cluster (cluster-…) nor a backup (backup-…)"
        ))
    }
}

/// Records `tags` as the resource `id`'s (a cluster or a backup in `region`).
fn put_tags(
    tx: &mut HsmTx<'_>,
    region: &str,
    id: &str,
    tags: BTreeMap<String, String>,
) -> Result<()> {
    if id.starts_with("backup-") {
        let mut b = backup(tx.state, tx.now, region, id)?.clone();
        b.tags = tags;
        tx.push(HsmChange::PutBackup(Box::new(b)));
    } else {
        let mut c = cluster_in(tx.state, region, id)?.clone();
        c.tags = tags;
        tx.push(HsmChange::PutCluster(Box::new(c)));
    }
    Ok(())
}

/// TagResource: adds the tags (a key given again takes the new value).
pub fn tag_resource(tx: &mut HsmTx<'_>, req: &TagHsmResourceRequest) -> Result<()> {
    // The scope outlives the transaction's borrow: the Region stays at hand for put_tags.
    let scope = tx.scope;
    let region = scope.region_or(req.region.as_deref());
    let mut tags = tags_of(tx.state, tx.now, region, &req.resource_id)?.clone();
    for (k, v) in tag_map(&req.tag_list)? {
        tags.insert(k, v);
    }
    // The limit holds for the tags the resource ends with.
    tag_map(&tag_list(&tags))?;
    put_tags(tx, region, &req.resource_id, tags)
}

/// UntagResource: removes the tags with these keys (a key the resource lacks is no error).
pub fn untag_resource(tx: &mut HsmTx<'_>, req: &UntagHsmResourceRequest) -> Result<()> {
    // The scope outlives the transaction's borrow: the Region stays at hand for put_tags.
    let scope = tx.scope;
    let region = scope.region_or(req.region.as_deref());
    let mut tags = tags_of(tx.state, tx.now, region, &req.resource_id)?.clone();
    for k in &req.tag_key_list {
        tags.remove(k);
    }
    put_tags(tx, region, &req.resource_id, tags)
}

/// ListTags: the resource's tags by key, a page at a time.
pub fn list_tags(
    state: &CloudHsmState,
    now: Timestamp,
    scope: &Scope,
    req: &ListHsmTagsRequest,
) -> Result<ListHsmTagsResponse> {
    let region = scope.region_or(req.region.as_deref());
    let tags = tags_of(state, now, region, &req.resource_id)?;
    let (tag_list, next_token) = page(
        "tags",
        tags,
        req.max_results,
        limits::LIST_TAGS_MAX_RESULTS,
        req.next_token.as_deref(),
        (String::as_str, |t| Some(t.to_owned())),
        |key, value| {
            Some(HsmTag {
                key: key.clone(),
                value: value.clone(),
            })
        },
    )?;
    Ok(ListHsmTagsResponse {
        tag_list,
        next_token,
    })
}
