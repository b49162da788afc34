//! The KMS key operations of [`Kms`]: keys, policies, tags, aliases, the refused operations,
//! scheduled deletions and the KMS event log.

use super::Kms;

use crate::api::kms::*;
use crate::crypto::private_key::generate_material;
use crate::error::Result;
use crate::kms::model::TrailEvent;
use crate::kms::unsupported;
use crate::kms::{aliases, keys, tags};
use crate::ops::Op;

impl Kms {
    // ---- Keys -----------------------------------------------------------------------------

    /// CreateKey. A key pair (or HMAC key) of the default key store is generated before the
    /// state is locked, the request checked first (`keys::material_to_generate`): an RSA_4096
    /// pair takes up to seconds of CPU, and the lock serialises every control call of every
    /// principal. A request that check refuses goes on to be refused, and recorded, as any.
    pub fn create_key(&self, req: &CreateKeyRequest) -> Result<KeyMetadataResponse> {
        // A symmetric key (the default) has nothing to generate ahead: no check before the
        // write for it.
        let asks = req.key_spec.or(req.customer_master_key_spec);
        let spec = match asks {
            None | Some(crate::types::KeySpec::SymmetricDefault) => None,
            Some(_) => self
                .read(|tx| keys::material_to_generate(tx, req))
                .ok()
                .flatten(),
        };
        let material = match spec {
            Some(spec) => Some((spec, generate_material(spec)?)),
            None => None,
        };
        self.write(|tx| keys::create(tx, req, material))
            .map(|created| created.response)
    }

    /// DescribeKey.
    pub fn describe_key(&self, req: &KeyIdRequest) -> Result<KeyMetadataResponse> {
        self.read(|tx| keys::describe(tx, req))
    }

    /// ListKeys.
    pub fn list_keys(&self, req: &ListRequest) -> Result<ListKeysResponse> {
        self.read(|tx| keys::list(tx, req))
    }

    /// EnableKey.
    pub fn enable_key(&self, req: &KeyIdRequest) -> Result<Empty> {
        self.write(|tx| keys::set_enabled(tx, req, true))
    }

    /// DisableKey.
    pub fn disable_key(&self, req: &KeyIdRequest) -> Result<Empty> {
        self.write(|tx| keys::set_enabled(tx, req, false))
    }

    /// UpdateKeyDescription.
    pub fn update_key_description(&self, req: &UpdateKeyDescriptionRequest) -> Result<Empty> {
        self.write(|tx| keys::update_description(tx, req))
    }

    /// ScheduleKeyDeletion.
    pub fn schedule_key_deletion(
        &self,
        req: &ScheduleKeyDeletionRequest,
    ) -> Result<ScheduleKeyDeletionResponse> {
        self.write(|tx| keys::schedule_deletion(tx, req))
    }

    /// CancelKeyDeletion.
    pub fn cancel_key_deletion(&self, req: &KeyIdRequest) -> Result<KeyIdResponse> {
        self.write(|tx| keys::cancel_deletion(tx, req))
    }

    /// PutKeyPolicy.
    pub fn put_key_policy(&self, req: &PutKeyPolicyRequest) -> Result<Empty> {
        self.write(|tx| keys::put_policy(tx, req))
    }

    /// GetKeyPolicy.
    pub fn get_key_policy(&self, req: &GetKeyPolicyRequest) -> Result<GetKeyPolicyResponse> {
        self.read(|tx| keys::get_policy(tx, req))
    }

    /// ListKeyPolicies.
    pub fn list_key_policies(&self, req: &ListRequest) -> Result<ListKeyPoliciesResponse> {
        self.read(|tx| keys::list_policies(tx, req))
    }

    /// TagResource.
    pub fn tag_resource(&self, req: &TagResourceRequest) -> Result<Empty> {
        self.write(|tx| tags::tag(tx, req))
    }

    /// UntagResource.
    pub fn untag_resource(&self, req: &UntagResourceRequest) -> Result<Empty> {
        self.write(|tx| tags::untag(tx, req))
    }

    /// ListResourceTags.
    pub fn list_resource_tags(&self, req: &ListRequest) -> Result<ListResourceTagsResponse> {
        self.read(|tx| tags::list(tx, req))
    }

    /// CreateAlias.
    pub fn create_alias(&self, req: &AliasRequest) -> Result<Empty> {
        self.write(|tx| aliases::create(tx, req))
    }

    /// UpdateAlias.
    pub fn update_alias(&self, req: &AliasRequest) -> Result<Empty> {
        self.write(|tx| aliases::update(tx, req))
    }

    /// DeleteAlias.
    pub fn delete_alias(&self, req: &DeleteAliasRequest) -> Result<Empty> {
        self.write(|tx| aliases::delete(tx, req))
    }

    /// ListAliases.
    pub fn list_aliases(&self, req: &ListRequest) -> Result<ListAliasesResponse> {
        self.read(|tx| aliases::list(tx, req))
    }

    /// Any operation kmscks refuses (on-demand rotation, import, key pairs, signing, MACs,
    /// replication): always an error, AWS's for custom key store keys.
    pub fn refused(&self, op: Refused, req: &KeyIdRequest) -> Result<Empty> {
        self.read(|tx| unsupported::refuse(tx, op, req))
            .map(|()| Empty {})
    }

    /// Deletes every key whose waiting period has ended (the background worker does this on
    /// its own every `deletion_check_interval`; every call also does it first). Returns how
    /// many keys were deleted.
    pub fn run_scheduled_deletions(&self) -> Result<usize> {
        let mut core = self.shared.core()?;
        self.shared.sweep(&mut core)
    }

    /// Rotates every key whose automatic rotation is due (the background worker does this
    /// on its own every `deletion_check_interval`; every write also does it first). Returns
    /// how many keys rotated.
    pub fn run_scheduled_rotations(&self) -> Result<usize> {
        let mut core = self.shared.core()?;
        self.shared.rotate_due(&mut core)
    }

    /// The KMS event log (what CloudTrail would record), oldest first.
    pub fn kms_events(&self) -> Result<Vec<TrailEvent>> {
        self.read_core(|tx, core| {
            keys::require_root(tx, Op::LookupEvents.action())?;
            core.events.read_all()
        })
    }
}
