//! KMS-side records: custom key stores, KMS keys, aliases, grants, rotation schedules and
//! rotated key material, and the KMS event log.

pub use crate::api::kms::TrailEvent;
use std::collections::BTreeMap;

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::types::{
    ClusterId, ConnectionErrorCode, ConnectionState, CustomKeyStoreId, GrantConstraints,
    GrantOperation, KeyId, KeySpec, KeyState, KeyUsage, Origin, RotationType, Timestamp,
};

/// A custom key store of type AWS_CLOUDHSM.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KeyStore {
    /// `cks-…`.
    pub id: CustomKeyStoreId,
    /// Unique name.
    pub name: String,
    /// The backing cluster.
    pub cluster_id: ClusterId,
    /// The trust anchor given at creation (PEM).
    pub trust_anchor: String,
    /// The cluster certificate of the cluster the store was created with (PEM): a cluster is
    /// related to the store's (shares its backup history) when its certificate is this one,
    /// whether or not the original cluster still exists.
    pub cluster_certificate: String,
    /// kmsuser's password as KMS knows it, wrapped under the KMS master key.
    pub wrapped_password: Vec<u8>,
    /// Connection state.
    pub state: ConnectionState,
    /// Why the last connection attempt failed (only while FAILED).
    pub error_code: Option<ConnectionErrorCode>,
    /// When it was created.
    pub created: Timestamp,
    /// Bumped on each Connect/Disconnect so a stale background step can tell it is stale.
    pub epoch: u64,
}

/// The lifecycle a caller controls; the visible [`KeyState`] is derived from it and from the
/// store's connection (see `Key::state`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Lifecycle {
    /// Enabled (when available).
    Enabled,
    /// Disabled.
    Disabled,
    /// Scheduled for deletion at this time.
    PendingDeletion {
        /// When the key will be deleted.
        deletion_date: Timestamp,
        /// The waiting period that was asked for.
        window_days: u32,
    },
}

/// Where a key's material lives.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Backing {
    /// Default key store: material wrapped under the KMS master key.
    Default {
        /// Wrapped 32-byte material.
        wrapped: Vec<u8>,
    },
    /// A custom key store: an HSM key object labelled with the key ARN.
    CloudHsm {
        /// The key store.
        store: CustomKeyStoreId,
        /// The key handle it was generated under (as CloudTrail reports it).
        handle: u64,
        /// Opaque backing key id (SHA-256 of the handle and label, hex).
        backing_key_id: String,
    },
    /// Origin EXTERNAL: material the caller imported (`kms::import`), wrapped under the KMS
    /// master key as default-store material is, while it is imported. Boxed: it is the largest
    /// variant by far, and inline it made every key of the state (100,000 at AWS's quota, nearly
    /// all of them not EXTERNAL) carry its size.
    External(Box<ImportedMaterial>),
}

/// What an Origin EXTERNAL key holds of its imported material.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ImportedMaterial {
    /// The 32-byte material wrapped under the KMS master key, while imported (`None`: the key
    /// is `PendingImport`: never imported, deleted, or expired).
    pub wrapped: Option<Vec<u8>>,
    /// The identifier of the material first imported (`kms::import::material_id`): a reimport
    /// must bring the same material. Kept after the material is deleted.
    pub material_id: Option<String>,
    /// When the imported material expires (`KEY_MATERIAL_EXPIRES`), while imported.
    pub valid_to: Option<Timestamp>,
    /// The secret salt of the material's identifier, wrapped under the KMS master key.
    pub salt: Vec<u8>,
}

/// A KMS key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Key {
    /// UUID.
    pub id: KeyId,
    /// When it was created.
    pub created: Timestamp,
    /// Description.
    pub description: String,
    /// Enabled / disabled / pending deletion.
    pub lifecycle: Lifecycle,
    /// Origin (AWS_KMS, EXTERNAL or AWS_CLOUDHSM).
    pub origin: Origin,
    /// Usage (always ENCRYPT_DECRYPT in kmscks).
    pub usage: KeyUsage,
    /// Spec (always SYMMETRIC_DEFAULT in kmscks).
    pub spec: KeySpec,
    /// Where the material is.
    pub backing: Backing,
    /// Key policy document: one allocation shared by every key with the same text (most keys
    /// carry their account's default policy; see `KmsState`'s interning and
    /// [`crate::kms::intern`]).
    #[serde(deserialize_with = "crate::kms::intern::shared_policy")]
    pub policy: Arc<str>,
    /// Tags, by tag key.
    pub tags: BTreeMap<String, String>,
}

impl Key {
    /// The custom key store holding the key, if any.
    pub fn store(&self) -> Option<&CustomKeyStoreId> {
        match &self.backing {
            Backing::CloudHsm { store, .. } => Some(store),
            Backing::Default { .. } | Backing::External(_) => None,
        }
    }

    /// Whether the key is Origin EXTERNAL without its material (`PendingImport`).
    pub fn pending_import(&self) -> bool {
        matches!(&self.backing, Backing::External(m) if m.wrapped.is_none())
    }

    /// When the key's imported material expires, if it does.
    pub fn material_expiry(&self) -> Option<Timestamp> {
        match &self.backing {
            Backing::External(m) if m.wrapped.is_some() => m.valid_to,
            _ => None,
        }
    }

    /// The visible state, given whether the key's store (if any) is connected.
    pub fn state(&self, store_connected: bool) -> KeyState {
        match self.lifecycle {
            Lifecycle::PendingDeletion { .. } => KeyState::PendingDeletion,
            _ if self.pending_import() => KeyState::PendingImport,
            _ if self.store().is_some() && !store_connected => KeyState::Unavailable,
            Lifecycle::Enabled => KeyState::Enabled,
            Lifecycle::Disabled => KeyState::Disabled,
        }
    }

    /// The deletion date, while pending deletion.
    pub fn deletion_date(&self) -> Option<Timestamp> {
        match self.lifecycle {
            Lifecycle::PendingDeletion { deletion_date, .. } => Some(deletion_date),
            _ => None,
        }
    }
}

/// An alias.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Alias {
    /// `alias/…`.
    pub name: String,
    /// The key it points at.
    pub target: KeyId,
    /// When it was created.
    pub created: Timestamp,
    /// When it was last re-pointed.
    pub last_updated: Timestamp,
}

/// A grant: lets `grantee` use the key `key` for `operations`, under `constraints`, beside the
/// key policy (`kms::grants`). Kept apart from its key in the state, so a grant costs what it
/// is, not its key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// 64 hex digits.
    pub id: String,
    /// The key it is on.
    pub key: KeyId,
    /// The name it was created with, if any.
    pub name: Option<String>,
    /// When it was created.
    pub created: Timestamp,
    /// Who may use the key through it.
    pub grantee: String,
    /// Who may retire it.
    pub retiring: Option<String>,
    /// What it allows, each once, in the order given.
    pub operations: Vec<GrantOperation>,
    /// Its encryption context constraints (`None`: none).
    #[serde(with = "stored_constraints")]
    pub constraints: Option<GrantConstraints>,
}

/// Grant constraints in the journal and snapshots: the API type skips absent members, which a
/// binary encoding cannot tell, so the state writes both members, always.
mod stored_constraints {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use crate::types::{EncryptionContext, GrantConstraints};

    type Stored = Option<(Option<EncryptionContext>, Option<EncryptionContext>)>;

    pub(super) fn serialize<S: Serializer>(c: &Option<GrantConstraints>, s: S) -> Result<S::Ok, S::Error> {
        let stored: Stored = c.as_ref().map(|c| {
            (
                c.encryption_context_subset.clone(),
                c.encryption_context_equals.clone(),
            )
        });
        stored.serialize(s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<GrantConstraints>, D::Error> {
        Ok(Stored::deserialize(d)?.map(|(subset, equals)| GrantConstraints {
            encryption_context_subset: subset,
            encryption_context_equals: equals,
        }))
    }
}

impl Grant {
    /// Whether the grant lists `op`.
    pub fn allows(&self, op: GrantOperation) -> bool {
        self.operations.contains(&op)
    }
}

/// A default-store key's automatic rotation schedule, while rotation is enabled. Kept apart
/// from its key in the state (`KmsState::rotations`), so that enabling rotation journals these
/// few bytes and a key that never had rotation enabled carries nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotationSchedule {
    /// Days between automatic rotations.
    pub period_days: u32,
    /// When the next automatic rotation is due.
    pub next: Timestamp,
}

/// One rotation of a default-store key: a material version after the first. The key's own
/// `Backing::Default` material is version 0; its rotations are versions 1, 2, … in order, kept
/// apart from the key (`KmsState::versions`) so that a rotation journals one wrapped material,
/// not the key, and a key that never rotated carries nothing more.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaterialVersion {
    /// 32-byte material wrapped under the KMS master key, bound to the key id and version
    /// (`kms::keys::version_material_aad`).
    pub wrapped: Vec<u8>,
    /// When the rotation happened.
    pub created: Timestamp,
    /// Automatic or on demand.
    pub how: RotationType,
}
