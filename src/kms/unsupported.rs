//! The KMS operations kmscks accepts by name but refuses, with the exception AWS returns for
//! the keys kmscks makes (spec §5). The list of them is [`Refused`], in `api::kms`.

use crate::api::kms::{KeyIdRequest, Refused};
use crate::err;
use crate::error::Result;
use crate::kms::keys::{authorize, resolve_id};
use crate::kms::tx::Tx;

/// Answers a refused operation on a key with AWS's exception.
pub fn refuse(tx: &Tx<'_>, op: Refused, req: &KeyIdRequest) -> Result<()> {
    // The refused operations (replication) take a key id or key ARN only, as AWS's management
    // operations do.
    let key = resolve_id(tx.state, tx.scope, &req.key_id)?;
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
    }
}
