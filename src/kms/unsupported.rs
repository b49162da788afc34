//! The KMS operations kmscks accepts by name but refuses, with the exception AWS returns for a
//! key in a CloudHSM key store (spec §5), and an honest one for default-store keys where kmscks
//! lacks the feature. The list of them is [`Refused`], in `api::kms`.

use crate::api::kms::{KeyIdRequest, Refused};
use crate::err;
use crate::error::Result;
use crate::kms::keys::{authorize, resolve, resolve_id};
use crate::kms::tx::Tx;
use crate::types::Origin;

/// Answers a refused operation on a key with AWS's exception.
pub fn refuse(tx: &Tx<'_>, op: Refused, req: &KeyIdRequest) -> Result<()> {
    // Replication takes a key id or key ARN only, as AWS's management operations do; the
    // data-plane style operations also take an alias.
    let key = match op {
        Refused::ReplicateKey | Refused::UpdatePrimaryRegion => resolve_id(tx.state, tx.scope, &req.key_id)?,
        _ => resolve(tx.state, tx.scope, &req.key_id)?,
    };
    let name = op.name();
    authorize(tx, key, op.action())?;
    let arn = tx.scope.key_arn(&key.id);
    match op {
        // kmscks makes single-Region keys only (CreateKey refuses MultiRegion), and AWS refuses
        // both operations for a single-Region key.
        Refused::ReplicateKey | Refused::UpdatePrimaryRegion => Err(err!(
            UnsupportedOperationException,
            "{arn} is not a multi-Region key; {name} applies to multi-Region keys only."
        )),
        _ if key.origin == Origin::AwsCloudhsm => Err(err!(
            UnsupportedOperationException,
            "{arn} origin is AWS_CLOUDHSM which is not valid for this operation."
        )),
        _ => Err(err!(
            UnsupportedOperationException,
            "kmscks does not support {name}"
        )),
    }
}
